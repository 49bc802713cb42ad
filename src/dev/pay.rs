//! Payments in dev mode without Stripe keys: Stripe's API under `/dev/stripe` (the ledger of
//! [`super::stripe`]), and the page a Checkout Session's `url` opens, `/dev/pay/{session_id}`, which says
//! it is a simulation and, on "Pay", completes the session and posts a `checkout.session.completed`
//! event signed with the webhook secret to the server's own `/webhooks/stripe`, as Stripe would.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::{DevState, escape, hmac_hex, locked};
use crate::http::AppState;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/dev/stripe/{tail:.*}", web::to(stripe_api))
        .route("/dev/pay/{session_id}", web::get().to(pay_page))
        .route("/dev/pay/{session_id}", web::post().to(pay));
}

fn stripe_reply(status: u16, body: Value, replayed: bool) -> HttpResponse {
    let mut res = HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST));
    res.insert_header(("request-id", "req_dev"));
    if replayed {
        res.insert_header(("idempotent-replayed", "true"));
    }
    res.json(body)
}

/// Stripe's API, form-encoded in and JSON out, for the calls threadcart makes.
async fn stripe_api(req: HttpRequest, body: web::Bytes, dev: web::Data<DevState>) -> HttpResponse {
    let Some(book) = &dev.stripe else {
        return HttpResponse::NotFound().finish();
    };
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    if !header("authorization").is_some_and(|a| a.starts_with("Bearer sk_test_")) {
        let body = super::stripe::stripe_error(
            "invalid_request_error",
            None,
            "Invalid API Key provided: sk_test_****",
            None,
        );
        return stripe_reply(401, body, false);
    }
    let form = super::stripe::request_form(req.method().as_str(), req.query_string(), &body);
    let path = req.path().trim_start_matches("/dev/stripe");
    let answer = locked(book).call(req.method().as_str(), path, &form, header("idempotency-key"));
    stripe_reply(answer.status, answer.body, answer.replayed)
}

fn page(status: StatusCode, title: &str, body: &str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header(("cache-control", "no-store"))
        .body(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{title}</title>\
             <style>body{{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f6f9fc;color:#1a1f36}}\
             main{{max-width:26rem;margin:2rem auto;padding:1.5rem;background:#fff;border-radius:12px;\
             box-shadow:0 2px 12px #0002}}.sim{{background:#fff3cd;border:2px dashed #b7791f;padding:.75rem;\
             border-radius:8px;font-weight:600}}.total{{font-size:1.6rem;font-weight:700}}\
             button{{font:inherit;width:100%;padding:.8rem;border:0;border-radius:8px;background:#635bff;\
             color:#fff;font-weight:600;cursor:pointer}}button:focus-visible{{outline:3px solid #1a1f36}}\
             </style></head><body><main>{body}</main></body></html>",
            title = escape(title)
        ))
}

fn amount_text(session: &Value) -> String {
    let currency = session["currency"].as_str().unwrap_or_default().to_uppercase();
    let amount = session["amount_total"].as_i64().unwrap_or_default();
    crate::money::Currency::parse(&currency)
        .ok()
        .and_then(|c| crate::checkout::stripe::from_stripe_amount(amount, c))
        .map(|m| m.to_string())
        .unwrap_or_else(|| format!("{amount} {currency} (minor units)"))
}

const SIMULATION: &str = "<p class=\"sim\" role=\"note\">Simulation: this is threadcart's dev payment page, \
    not Stripe. No card is asked for and no money moves.</p>";

/// The Checkout page of a session: what it costs, and a "Pay" that simulates a card payment.
async fn pay_page(path: web::Path<String>, dev: web::Data<DevState>) -> HttpResponse {
    let Some(book) = &dev.stripe else {
        return HttpResponse::NotFound().finish();
    };
    let id = path.into_inner();
    let Some(session) = locked(book).session(&id).cloned() else {
        return page(
            StatusCode::NOT_FOUND,
            "Unknown payment",
            "<h1>Unknown payment</h1><p>No such Checkout Session.</p>",
        );
    };
    let amount = escape(&amount_text(&session));
    let body = match session["status"].as_str() {
        Some("open") => format!(
            "<h1>Pay {amount}</h1>{SIMULATION}<p class=\"total\" id=\"total\">{amount}</p>\
             <form method=\"post\" action=\"/dev/pay/{id}\"><button type=\"submit\" id=\"pay\">Pay {amount} \
             (simulated)</button></form>",
            id = escape(&id)
        ),
        Some("complete") => format!("<h1>Paid</h1>{SIMULATION}<p>This payment of {amount} is done.</p>"),
        _ => format!("<h1>Expired</h1>{SIMULATION}<p>This payment page of {amount} has expired.</p>"),
    };
    page(StatusCode::OK, "Dev payment (simulation)", &body)
}

/// Completes the session and sends Stripe's signed `checkout.session.completed` to `/webhooks/stripe`.
async fn pay(path: web::Path<String>, dev: web::Data<DevState>, state: web::Data<AppState>) -> HttpResponse {
    let Some(book) = &dev.stripe else {
        return HttpResponse::NotFound().finish();
    };
    let id = path.into_inner();
    let session = {
        let mut book = locked(book);
        match book.session(&id).map(|s| s["status"] == "open") {
            None => None,
            Some(false) => {
                return page(
                    StatusCode::CONFLICT,
                    "Not payable",
                    &format!(
                        "<h1>Not payable</h1>{SIMULATION}<p>This payment is already done or has expired.</p>"
                    ),
                );
            }
            Some(true) => book
                .complete_session(&id, "shopper@example.com")
                .and_then(|_| book.session(&id).cloned()),
        }
    };
    let Some(session) = session else {
        return page(
            StatusCode::NOT_FOUND,
            "Unknown payment",
            "<h1>Unknown payment</h1><p>No such Checkout Session.</p>",
        );
    };
    let Some(secret) = state.config.stripe_webhook_secret.as_ref() else {
        return page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "No webhook secret",
            "<h1>No webhook secret</h1>",
        );
    };
    let now = chrono::Utc::now().timestamp();
    let event = json!({
        "id": format!("evt_dev_{}", uuid::Uuid::new_v4().simple()),
        "object": "event",
        "type": "checkout.session.completed",
        "created": now,
        "livemode": false,
        "pending_webhooks": 1,
        "data": {"object": session},
    })
    .to_string();
    let signed = hmac_hex(secret, format!("{now}.{event}").as_bytes()).unwrap_or_default();
    let header = format!("t={now},v1={signed}");
    match dev
        .post_to_self("/webhooks/stripe", &[("stripe-signature", header)], event)
        .await
    {
        Ok(status) if (200..300).contains(&status) => page(
            StatusCode::OK,
            "Paid (simulation)",
            &format!(
                "<h1 id=\"paid\">Paid {}</h1>{SIMULATION}<p>Stripe's signed <code>checkout.session.completed</code> \
                 was sent to <code>/webhooks/stripe</code>: the receipt is on its way to the thread. You can \
                 close this page.</p>",
                escape(&amount_text(&session))
            ),
        ),
        Ok(status) => {
            tracing::warn!(http.status = status, "the dev payment's Stripe event was refused");
            page(
                StatusCode::BAD_GATEWAY,
                "Event refused",
                &format!("<h1>Event refused</h1><p>/webhooks/stripe answered {status}.</p>"),
            )
        }
        Err(e) => {
            tracing::warn!(error = %e.without_url(), "the dev payment's Stripe event could not be sent");
            page(
                StatusCode::BAD_GATEWAY,
                "Event not sent",
                "<h1>Event not sent</h1>",
            )
        }
    }
}
