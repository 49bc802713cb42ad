//! Webhook endpoints. A Messenger or Instagram delivery (one endpoint, one app secret) is verified over
//! its raw bytes, stored with its events (or whole, for the split worker, when that fails) and
//! acknowledged before any of them is applied, so Meta gets its 200 in milliseconds and a crash loses
//! nothing.

use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::ExposeSecret;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::Api;
use crate::channels::meta::webhook;
use crate::checkout::webhook::{self as stripe_webhook, StripeEvent};
use crate::conversations::ingest::{Delivery, IngestError};
use crate::error::{ApiError, ErrorCode};
use crate::http::AppState;
use crate::rate_limit::{self, Verdict};

/// The largest delivery accepted.
pub const MAX_DELIVERY_BYTES: usize = 1024 * 1024;

/// The rate-limit bucket of refused webhook calls, per client address.
pub const REJECTED_BY_CLIENT: &str = "webhook_rejected_client";

/// Counts a refused webhook call from the client: `refusal` within the limit, 429 past it (so a
/// client probing signatures or verify tokens is slowed down, on every instance alike).
async fn refuse(state: &AppState, req: &HttpRequest, refusal: ApiError) -> ApiError {
    let config = &state.config;
    let client = super::client_ip(
        req.headers(),
        req.peer_addr(),
        config.trusted_proxy_header.as_ref(),
    );
    let (max, window) = (config.webhook_max_rejects, config.webhook_reject_window);
    let counted = state
        .db
        .query(move |conn| rate_limit::hit(conn, REJECTED_BY_CLIENT, &client.to_string(), max, window))
        .await;
    match counted {
        Ok(Verdict::Allowed) => refusal,
        Ok(Verdict::RetryAfter(secs)) => ApiError::too_many_requests(secs),
        Err(e) => e.into(),
    }
}

pub(super) fn routes(api: &mut Api<'_>) {
    api.route(Method::GET, "/webhooks/messenger", handshake)
        .route(Method::POST, "/webhooks/messenger", receive)
        .route(Method::POST, "/webhooks/stripe", receive_stripe);
}

#[derive(Deserialize)]
struct Handshake {
    #[serde(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    verify_token: Option<String>,
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
}

/// Meta's subscription check: echo `hub.challenge` when the verify token matches.
async fn handshake(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<Handshake>,
) -> Result<HttpResponse, ApiError> {
    let expected = state.config.messenger_verify_token.as_ref();
    let ok = match (expected, &query.mode, &query.verify_token, &query.challenge) {
        (Some(expected), Some(mode), Some(given), Some(_)) if mode == "subscribe" => {
            bool::from(expected.expose_secret().as_bytes().ct_eq(given.as_bytes()))
        }
        _ => false,
    };
    match (ok, &query.challenge) {
        (true, Some(challenge)) => Ok(HttpResponse::Ok()
            .content_type("text/plain")
            .body(challenge.clone())),
        _ => {
            tracing::warn!("Messenger webhook handshake refused");
            let refusal = ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::VerifyTokenMismatch,
                "hub.verify_token does not match MESSENGER_VERIFY_TOKEN",
            );
            Err(refuse(&state, &req, refusal).await)
        }
    }
}

/// A delivery: verified with `X-Hub-Signature-256` over the raw body, stored, acknowledged.
async fn receive(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let Some(secret) = state.config.messenger_app_secret.clone() else {
        return Err(ApiError::upstream(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::WebhooksDisabled,
            "MESSENGER_APP_SECRET is not set: Messenger webhooks are refused",
            None,
        ));
    };
    let body = super::read_limited(&req, payload, MAX_DELIVERY_BYTES).await?;
    let signature = req
        .headers()
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    if !webhook::signature_is_valid(secret.expose_secret().as_bytes(), &body, signature) {
        tracing::warn!(
            signature.present = signature.is_some(),
            "Messenger delivery with a bad signature refused"
        );
        let refusal = ApiError::unauthorized(
            ErrorCode::InvalidSignature,
            "X-Hub-Signature-256 does not match the body",
        );
        return Err(refuse(&state, &req, refusal).await);
    }
    let text = String::from_utf8(body)
        .map_err(|_| ApiError::bad_request(ErrorCode::BadRequest, "the delivery is not UTF-8"))?;
    let parsed = webhook::parse(text.as_bytes()).map_err(|e| e.to_string());
    // Meta's reviews of utility templates come on the same webhook: applied with the delivery, before
    // the 200 (a retry applies them again, to the same effect).
    let reviews = if text.contains("template_status_update") {
        serde_json::from_str(&text)
            .map(|v| crate::followups::templates::status_changes(&v))
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    // Answered once the delivery's group has committed (see `conversations::ingest`).
    let (id, split) = state
        .ingest
        .store(Delivery {
            source: "messenger",
            body: text,
            parsed,
            reviews,
        })
        .await
        .map_err(|e| match e {
            IngestError::Db(e) => ApiError::from(e),
            other => ApiError::unavailable(other),
        })?;
    let unsplit = split.is_none();
    match split {
        Some(customers) => customers
            .into_iter()
            .for_each(|c| state.wakers.events.wake_for(c)),
        None => state.wakers.inbox.notify_one(),
    }
    tracing::debug!(inbox.id = %id, unsplit, "Messenger delivery stored");
    Ok(HttpResponse::Ok()
        .content_type("text/plain")
        .body("EVENT_RECEIVED"))
}

/// The tolerance on `Stripe-Signature` timestamps, as Stripe's own libraries use.
const STRIPE_TOLERANCE_SECS: i64 = 300;

/// A Stripe event: verified over the raw body against every `v1` signature, parsed into its
/// [`StripeEvent`] (the one parse: the worker reads the stored body back with the same parser), stored raw
/// once per event id, acknowledged; a worker applies it.
async fn receive_stripe(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let Some(secret) = state.config.stripe_webhook_secret.clone() else {
        return Err(ApiError::upstream(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::WebhooksDisabled,
            "STRIPE_WEBHOOK_SECRET is not set: Stripe webhooks are refused",
            None,
        ));
    };
    let body = super::read_limited(&req, payload, MAX_DELIVERY_BYTES).await?;
    let header = req
        .headers()
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    let now = chrono::Utc::now().timestamp();
    if let Err(e) = stripe_webhook::verify_webhook(
        secret.expose_secret().as_bytes(),
        &body,
        header,
        now,
        STRIPE_TOLERANCE_SECS,
    ) {
        tracing::warn!(error = %e, "Stripe event with a bad signature refused");
        let refusal = ApiError::unauthorized(
            ErrorCode::InvalidSignature,
            "Stripe-Signature does not match the body",
        );
        return Err(refuse(&state, &req, refusal).await);
    }
    let event = StripeEvent::parse(&body)
        .map_err(|_| ApiError::bad_request(ErrorCode::BadRequest, "the body is not a Stripe event"))?;
    let text = String::from_utf8(body)
        .map_err(|_| ApiError::bad_request(ErrorCode::BadRequest, "the event is not UTF-8"))?;
    let (id, kind) = (event.id.clone(), event.kind.type_name().to_owned());
    let new = state
        .db
        .query(move |conn| crate::checkout::events::store(conn, &event, &text))
        .await?;
    if new {
        state.wakers.payments.notify_one();
    }
    tracing::info!(stripe.event = %id, stripe.type = %kind, duplicate = !new, "Stripe event stored");
    Ok(HttpResponse::Ok().json(serde_json::json!({"received": true})))
}
