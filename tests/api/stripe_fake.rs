//! A local HTTP server that answers as Stripe's API does (stripe.md §1, §5.3, §6) for the calls threadcart
//! makes: Checkout Sessions (create, retrieve, expire) and refunds, form-encoded in, JSON out, objects shaped
//! like Stripe's published fixtures (`fixtures/stripe/`). It keeps sessions in memory, applies Stripe's
//! idempotency (a repeated `Idempotency-Key` replays the first answer; the same key with other parameters is
//! an `idempotency_error`), answers scripted failures, and records every request.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

const SESSION: &str = include_str!("../../fixtures/stripe/checkout_session.json");
const REFUND: &str = include_str!("../../fixtures/stripe/refund.json");

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

/// The first answer to an idempotent request, and what it was an answer to.
struct Replay {
    request: (String, String, Vec<(String, String)>),
    status: u16,
    body: Value,
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    sessions: HashMap<String, Value>,
    replays: HashMap<String, Replay>,
    scripted: VecDeque<(u16, Value)>,
    objects: u64,
    refunds: Vec<Value>,
    /// The next answers to a session creation are held back this long, after the session was made.
    late_answers: VecDeque<std::time::Duration>,
}

impl State {
    fn next_id(&mut self, prefix: &str) -> String {
        self.objects += 1;
        format!("{prefix}_test_fake{:06}", self.objects)
    }
}

/// The fake Stripe API.
#[derive(Clone)]
pub struct FakeStripe {
    pub base: String,
    state: Arc<Mutex<State>>,
}

/// Stripe's error body.
pub fn stripe_error(kind: &str, code: Option<&str>, message: &str, param: Option<&str>) -> Value {
    json!({"error": {"type": kind, "code": code, "message": message, "param": param}})
}

impl FakeStripe {
    /// Starts the server on a random port.
    pub async fn start() -> FakeStripe {
        let state = Arc::new(Mutex::new(State::default()));
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
        self.state.lock().unwrap().sessions.values().cloned().collect()
    }

    /// A refund made in Stripe's dashboard; answers the refund object.
    pub fn refund_in_dashboard(&self, payment_intent: &str, amount: i64) -> Value {
        let mut s = self.state.lock().unwrap();
        let received = Received {
            method: "POST".into(),
            path: "/v1/refunds".into(),
            content_type: None,
            idempotency_key: None,
            stripe_version: None,
            form: vec![
                ("payment_intent".into(), payment_intent.into()),
                ("amount".into(), amount.to_string()),
            ],
        };
        let (status, refund) = create_refund(&mut s, &received);
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
        s.sessions.get_mut(id).unwrap()["amount_total"] = json!(amount);
    }

    /// The shopper pays with a delayed method (SEPA debit): the session completes unpaid; answers the
    /// PaymentIntent id.
    pub fn complete_session_unpaid(&self, id: &str) -> String {
        let intent = self.complete_session(id);
        let mut s = self.state.lock().unwrap();
        s.sessions.get_mut(id).unwrap()["payment_status"] = json!("unpaid");
        intent
    }

    /// The delayed payment of a completed session succeeds or fails.
    pub fn settle_delayed_payment(&self, id: &str, succeeded: bool) {
        let mut s = self.state.lock().unwrap();
        s.sessions.get_mut(id).unwrap()["payment_status"] = json!(if succeeded { "paid" } else { "unpaid" });
    }

    /// The shopper pays: the session completes as after a card payment; answers the PaymentIntent id.
    pub fn complete_session(&self, id: &str) -> String {
        let mut s = self.state.lock().unwrap();
        let payment_intent = s.next_id("pi");
        let session = s.sessions.get_mut(id).unwrap();
        session["status"] = json!("complete");
        session["payment_status"] = json!("paid");
        session["url"] = Value::Null;
        session["payment_intent"] = json!(payment_intent);
        let fixture: Value = serde_json::from_str(SESSION).unwrap();
        session["customer_details"] = fixture["customer_details"].clone();
        session["customer_details"]["email"] = json!("shopper@example.com");
        payment_intent
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}

async fn answer(req: HttpRequest, body: web::Bytes, state: web::Data<Arc<Mutex<State>>>) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let encoded = if req.method() == actix_web::http::Method::GET {
        req.query_string().as_bytes()
    } else {
        &body[..]
    };
    let form = std::str::from_utf8(encoded)
        .ok()
        .and_then(|b| web::Query::<Vec<(String, String)>>::from_query(b).ok())
        .map(web::Query::into_inner)
        .unwrap_or_default();
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
    let key = received
        .idempotency_key
        .clone()
        .filter(|_| received.method == "POST");
    let mut form = received.form.clone();
    form.sort();
    let request = (received.method.clone(), received.path.clone(), form);
    if let Some(replay) = key.as_ref().and_then(|k| s.replays.get(k)) {
        if replay.request == request {
            return (reply(replay.status, replay.body.clone(), true), None);
        }
        let message = format!(
            "Keys for idempotent requests can only be used with the same parameters they were first used \
             with. Try using a key other than '{}' if you meant to execute a different request.",
            key.unwrap_or_default()
        );
        let body = stripe_error("idempotency_error", None, &message, None);
        return (reply(400, body, false), None);
    }

    let (status, body) = route(&mut s, &received);
    // Stripe keeps the answer once the endpoint ran (success or 5xx), not a refused request.
    if let Some(key) = key
        && !(400..500).contains(&status)
    {
        s.replays.insert(
            key,
            Replay {
                request,
                status,
                body: body.clone(),
            },
        );
    }
    let late = (received.path == "/v1/checkout/sessions")
        .then(|| s.late_answers.pop_front())
        .flatten();
    (reply(status, body, false), late)
}

fn reply(status: u16, body: Value, replayed: bool) -> HttpResponse {
    let mut response = HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap());
    response.insert_header(("request-id", "req_fake"));
    if replayed {
        response.insert_header(("idempotent-replayed", "true"));
    }
    response.json(body)
}

fn invalid(message: &str, param: &str) -> (u16, Value) {
    (
        400,
        stripe_error(
            "invalid_request_error",
            Some("parameter_invalid"),
            message,
            Some(param),
        ),
    )
}

fn route(s: &mut State, req: &Received) -> (u16, Value) {
    let parts: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    match (req.method.as_str(), parts.as_slice()) {
        ("POST", ["v1", "checkout", "sessions"]) => create_session(s, req),
        ("GET", ["v1", "checkout", "sessions", id]) => match s.sessions.get(*id) {
            Some(session) => (200, session.clone()),
            None => missing("checkout.session", id),
        },
        ("POST", ["v1", "checkout", "sessions", id, "expire"]) => match s.sessions.get_mut(*id) {
            Some(session) if session["status"] == "open" => {
                session["status"] = json!("expired");
                session["url"] = Value::Null;
                (200, session.clone())
            }
            Some(_) => invalid(
                "Only Checkout Sessions with a status of `open` can be expired.",
                "session",
            ),
            None => missing("checkout.session", id),
        },
        ("POST", ["v1", "refunds"]) => create_refund(s, req),
        ("GET", ["v1", "refunds"]) => {
            let data: Vec<Value> = s
                .refunds
                .iter()
                .filter(|r| {
                    req.field("payment_intent")
                        .is_none_or(|pi| r["payment_intent"] == pi)
                })
                .rev()
                .cloned()
                .collect();
            (
                200,
                json!({"object": "list", "data": data, "has_more": false, "url": "/v1/refunds"}),
            )
        }
        _ => (
            404,
            stripe_error(
                "invalid_request_error",
                None,
                &format!("Unrecognized request URL ({}: {}).", req.method, req.path),
                None,
            ),
        ),
    }
}

fn missing(object: &str, id: &str) -> (u16, Value) {
    let message = format!("No such {object}: '{id}'");
    (
        404,
        stripe_error(
            "invalid_request_error",
            Some("resource_missing"),
            &message,
            Some("id"),
        ),
    )
}

fn create_session(s: &mut State, req: &Received) -> (u16, Value) {
    if req.field("mode") != Some("payment") {
        return invalid("This fake only knows `mode=payment`.", "mode");
    }
    let (mut total, mut currency) = (0_i64, None::<String>);
    let mut i = 0;
    while let Some(quantity) = req.field(&format!("line_items[{i}][quantity]")) {
        let field = |name: &str| req.field(&format!("line_items[{i}][price_data][{name}]"));
        let param = format!("line_items[{i}][price_data][unit_amount]");
        let Some(unit) = field("unit_amount")
            .and_then(|a| a.parse::<i64>().ok())
            .filter(|a| *a >= 0)
        else {
            return invalid("Invalid non-negative integer", &param);
        };
        let Some(quantity) = quantity.parse::<i64>().ok().filter(|q| *q >= 1) else {
            return invalid("Invalid positive integer", &format!("line_items[{i}][quantity]"));
        };
        let name = format!("line_items[{i}][price_data][product_data][name]");
        if req.field(&name).is_none_or(str::is_empty) {
            return invalid("Missing required param", &name);
        }
        match (&currency, field("currency")) {
            (_, None) => {
                return invalid(
                    "Missing required param",
                    &format!("line_items[{i}][price_data][currency]"),
                );
            }
            (Some(c), Some(given)) if c != given => {
                return invalid("All line items must share one currency.", "line_items");
            }
            (_, Some(given)) => currency = Some(given.to_owned()),
        }
        total += unit * quantity;
        i += 1;
    }
    if i == 0 || i > 100 {
        return invalid("A payment-mode session takes 1 to 100 line items.", "line_items");
    }
    let created = now();
    let expires_at = match req.field("expires_at").map(str::parse::<i64>) {
        None => created + 86_400,
        Some(Ok(t)) if (created + 1_800..=created + 86_400).contains(&t) => t,
        Some(_) => {
            return invalid(
                "The `expires_at` timestamp must be between 30 minutes and 24 hours from Checkout Session creation.",
                "expires_at",
            );
        }
    };
    let Some(success_url) = req.field("success_url") else {
        return invalid("Missing required param", "success_url");
    };
    let metadata: serde_json::Map<String, Value> = req
        .form
        .iter()
        .filter_map(|(k, v)| {
            let key = k.strip_prefix("metadata[")?.strip_suffix(']')?;
            Some((key.to_owned(), json!(v)))
        })
        .collect();
    let id = s.next_id("cs");
    let mut session: Value = serde_json::from_str(SESSION).unwrap();
    let fields = json!({
        "id": id,
        "url": format!("https://checkout.stripe.com/c/pay/{id}"),
        "status": "open",
        "payment_status": "unpaid",
        "payment_intent": null,
        "amount_subtotal": total,
        "amount_total": total,
        "currency": currency,
        "client_reference_id": req.field("client_reference_id"),
        "metadata": metadata,
        "expires_at": expires_at,
        "created": created,
        "success_url": success_url,
        "cancel_url": req.field("cancel_url"),
        "locale": req.field("locale"),
        "customer_details": null,
        "customer_email": null,
        "currency_conversion": null,
        "shipping_cost": null,
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
    });
    for (k, v) in fields.as_object().unwrap() {
        session[k] = v.clone();
    }
    s.sessions.insert(id, session.clone());
    (200, session)
}

fn create_refund(s: &mut State, req: &Received) -> (u16, Value) {
    let Some(payment_intent) = req.field("payment_intent") else {
        return invalid("Missing required param", "payment_intent");
    };
    let Some(session) = s
        .sessions
        .values()
        .find(|x| x["payment_intent"] == payment_intent)
    else {
        return missing("payment_intent", payment_intent);
    };
    let currency = session["currency"].clone();
    let paid = session["amount_total"].as_i64().unwrap_or_default();
    let refunded: i64 = s
        .refunds
        .iter()
        .filter(|r| r["payment_intent"] == payment_intent)
        .filter_map(|r| r["amount"].as_i64())
        .sum();
    let left = paid - refunded;
    let amount = match req.field("amount").map(str::parse::<i64>) {
        None if left > 0 => left,
        Some(Ok(a)) if (1..=left).contains(&a) => a,
        _ => return invalid("Refund amount is greater than the unrefunded amount.", "amount"),
    };
    let id = s.next_id("re");
    let mut refund: Value = serde_json::from_str(REFUND).unwrap();
    let fields = json!({
        "id": id,
        "amount": amount,
        "currency": currency,
        "payment_intent": payment_intent,
        "reason": req.field("reason"),
        "created": now(),
        "status": "succeeded",
    });
    for (k, v) in fields.as_object().unwrap() {
        refund[k] = v.clone();
    }
    s.refunds.push(refund.clone());
    (200, refund)
}
