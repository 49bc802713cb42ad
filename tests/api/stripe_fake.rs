//! A local HTTP server that answers as Stripe's API does (stripe.md §1, §5.3, §6) for the calls threadcart
//! makes: Checkout Sessions (create, retrieve, expire) and refunds, form-encoded in, JSON out, objects shaped
//! like Stripe's published fixtures (`fixtures/stripe/`). Sessions, refunds and Stripe's idempotency are the
//! library's ledger (`threadcart::dev::stripe::StripeBook`, which dev mode serves too); around it this
//! server checks the API key, answers scripted failures and late answers, and records every request.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};
pub use threadcart::dev::stripe::stripe_error;
use threadcart::dev::stripe::{StripeBook, request_form};

/// One request the fake Stripe received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub content_type: Option<String>,
    pub idempotency_key: Option<String>,
    pub stripe_version: Option<String>,
    /// The form body, decoded (`line_items[0][quantity]`, `2`), in order.
    pub form: Vec<(String, String)>,
}

impl Received {
    /// A decoded form field.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Stripe's ledger (the library's, shared with dev mode) and what only tests need around it.
struct State {
    book: StripeBook,
    received: Vec<Received>,
    scripted: VecDeque<(u16, Value)>,
    /// The next answers to a session creation are held back this long, after the session was made.
    late_answers: VecDeque<std::time::Duration>,
}

/// The fake Stripe API.
#[derive(Clone)]
pub struct FakeStripe {
    pub base: String,
    state: Arc<Mutex<State>>,
}

impl FakeStripe {
    /// Starts the server on a random port.
    pub async fn start() -> FakeStripe {
        let state = Arc::new(Mutex::new(State {
            book: StripeBook::new("fake", "https://checkout.stripe.com/c/pay"),
            received: Vec::new(),
            scripted: VecDeque::new(),
            late_answers: VecDeque::new(),
        }));
        let data = web::Data::new(state.clone());
        let server =
            HttpServer::new(move || App::new().app_data(data.clone()).default_service(web::to(answer)))
                .workers(1)
                .bind("127.0.0.1:0")
                .unwrap();
        let port = server.addrs()[0].port();
        tokio::spawn(server.run());
        FakeStripe {
            base: format!("http://127.0.0.1:{port}"),
            state,
        }
    }

    /// The next requests get these answers, in order, ahead of the idempotency layer (as Stripe's rate
    /// limiter and validation answer before it): nothing is created and nothing is cached.
    pub fn fail_next(&self, replies: Vec<(u16, Value)>) {
        self.state.lock().unwrap().scripted.extend(replies);
    }

    /// The next session creations make their session but answer only after `delay`: what a lost answer
    /// (or a crash of the caller) looks like from the caller's side.
    pub fn answer_late(&self, delay: std::time::Duration) {
        self.state.lock().unwrap().late_answers.push_back(delay);
    }

    /// Sessions made so far.
    pub fn sessions(&self) -> Vec<Value> {
        self.state.lock().unwrap().book.sessions()
    }

    /// A refund made in Stripe's dashboard; answers the refund object.
    pub fn refund_in_dashboard(&self, payment_intent: &str, amount: i64) -> Value {
        let form = vec![
            ("payment_intent".to_owned(), payment_intent.to_owned()),
            ("amount".to_owned(), amount.to_string()),
        ];
        let (status, refund) = self.state.lock().unwrap().book.create_refund(&form);
        assert_eq!(status, 200, "{refund}");
        refund
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// Stripe reports another total for the session (what a mismatch looks like).
    pub fn set_amount_total(&self, id: &str, amount: i64) {
        let mut s = self.state.lock().unwrap();
        s.book.session_mut(id).unwrap()["amount_total"] = json!(amount);
    }

    /// The shopper pays with a delayed method (SEPA debit): the session completes unpaid; answers the
    /// PaymentIntent id.
    pub fn complete_session_unpaid(&self, id: &str) -> String {
        let intent = self.complete_session(id);
        let mut s = self.state.lock().unwrap();
        s.book.session_mut(id).unwrap()["payment_status"] = json!("unpaid");
        intent
    }

    /// The delayed payment of a completed session succeeds or fails.
    pub fn settle_delayed_payment(&self, id: &str, succeeded: bool) {
        let mut s = self.state.lock().unwrap();
        s.book.session_mut(id).unwrap()["payment_status"] = json!(if succeeded { "paid" } else { "unpaid" });
    }

    /// The shopper pays: the session completes as after a card payment; answers the PaymentIntent id.
    pub fn complete_session(&self, id: &str) -> String {
        let mut s = self.state.lock().unwrap();
        s.book.complete_session(id, "shopper@example.com").unwrap()
    }
}

async fn answer(req: HttpRequest, body: web::Bytes, state: web::Data<Arc<Mutex<State>>>) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let form = request_form(req.method().as_str(), req.query_string(), &body);
    let received = Received {
        method: req.method().to_string(),
        path: req.path().to_owned(),
        content_type: header("content-type"),
        idempotency_key: header("idempotency-key"),
        stripe_version: header("stripe-version"),
        form,
    };
    let (response, late) = respond(&state, received, header("authorization"));
    if let Some(delay) = late {
        // The session exists; its answer is lost on the way (the caller gives up waiting first).
        tokio::time::sleep(delay).await;
    }
    response
}

/// The answer to a request, and how long to hold it back.
fn respond(
    state: &Mutex<State>,
    received: Received,
    authorization: Option<String>,
) -> (HttpResponse, Option<std::time::Duration>) {
    let mut s = state.lock().unwrap();
    s.received.push(received.clone());

    if !authorization.is_some_and(|a| a.starts_with("Bearer sk_test_")) {
        let message = "Invalid API Key provided: sk_test_****";
        let body = stripe_error("invalid_request_error", None, message, None);
        return (reply(401, body, false), None);
    }
    if let Some((status, body)) = s.scripted.pop_front() {
        return (reply(status, body, false), None);
    }
    let answer = s.book.call(
        &received.method,
        &received.path,
        &received.form,
        received.idempotency_key.as_deref(),
    );
    let refused = answer.body["error"]["type"] == "idempotency_error";
    let late = (received.path == "/v1/checkout/sessions" && !answer.replayed && !refused)
        .then(|| s.late_answers.pop_front())
        .flatten();
    (reply(answer.status, answer.body, answer.replayed), late)
}

fn reply(status: u16, body: Value, replayed: bool) -> HttpResponse {
    let mut response = HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap());
    response.insert_header(("request-id", "req_fake"));
    if replayed {
        response.insert_header(("idempotent-replayed", "true"));
    }
    response.json(body)
}
