//! The agent API: threads with their customer, touches and window; messages; agent replies; handover;
//! and the dead-lettered webhook events.

use actix_web::http::{Method, StatusCode};
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::{Api, ListBody, PageParams, timestamp};
use crate::attribution::{Touch, touches};
use crate::auth::{Caller, Permission};
use crate::conversations::EventStatus;
use crate::conversations::agent::{self, AgentSendError};
use crate::conversations::inbox::{self, StoredEvent};
use crate::conversations::{self, Customer, Delivery, Mode, StoredMessage, Thread, ThreadQuery};
use crate::db::now;
use crate::error::{ApiError, ErrorCode};
use crate::http::AppState;
use crate::kernel::{PageId, Psid, ThreadId};

pub(super) fn routes(api: &mut Api<'_>) {
    api.route(Method::GET, "/v1/threads", list)
        .route(Method::GET, "/v1/threads/{thread_id}", get)
        .route(Method::GET, "/v1/threads/{thread_id}/messages", messages)
        .route(Method::POST, "/v1/threads/{thread_id}/messages", send)
        .route(Method::POST, "/v1/threads/{thread_id}/handover", handover)
        .route(Method::GET, "/v1/threads/{thread_id}/cart", cart)
        .route(
            Method::GET,
            "/v1/threads/{thread_id}/context",
            super::context::context,
        )
        .route(Method::POST, "/v1/threads/{thread_id}/checkout", checkout)
        .route(Method::GET, "/v1/webhook-events", events)
        .route(Method::POST, "/v1/webhook-events/{event_id}/replay", replay);
}

#[derive(Serialize)]
pub(super) struct TouchBody {
    id: Uuid,
    channel: String,
    source: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(rename = "ref")]
    ref_: Option<String>,
    ad_id: Option<String>,
    ad_title: Option<String>,
    post_id: Option<String>,
    product_id: Option<String>,
    ads_context_data: Option<serde_json::Value>,
    page_url: Option<String>,
    utm: Option<crate::engine::Utm>,
    occurred_at: String,
}

impl From<Touch> for TouchBody {
    fn from(t: Touch) -> Self {
        let utm = crate::engine::Utm {
            utm_source: t.utm_source,
            utm_medium: t.utm_medium,
            utm_campaign: t.utm_campaign,
            utm_content: t.utm_content,
            utm_term: t.utm_term,
        };
        TouchBody {
            id: t.id.0,
            channel: t.channel.to_string(),
            source: t.source,
            kind: t.kind,
            ref_: t.ref_,
            ad_id: t.ad_id,
            ad_title: t.ad_title,
            post_id: t.post_id,
            product_id: t.product_id,
            ads_context_data: t.ads_context_data.and_then(|d| serde_json::from_str(&d).ok()),
            page_url: t.page_url,
            utm: (!utm.is_empty()).then_some(utm),
            occurred_at: timestamp(t.occurred_at),
        }
    }
}

#[derive(Serialize)]
struct CustomerBody {
    id: Uuid,
    psid: Psid,
    first_name: Option<String>,
    locale: Option<String>,
}

#[derive(Serialize)]
struct WindowBody {
    open: bool,
    ends_at: Option<String>,
}

#[derive(Serialize)]
struct ThreadBody {
    id: Uuid,
    channel: &'static str,
    page_id: Option<PageId>,
    mode: &'static str,
    bot_paused_until: Option<String>,
    customer: CustomerBody,
    window: WindowBody,
    last_inbound_at: Option<String>,
    latest_ad_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    touches: Option<Vec<TouchBody>>,
    /// The agent answering it, once routed.
    assigned_agent_id: Option<Uuid>,
    /// Why that agent.
    routing_reason: Option<String>,
    /// Since when it waits for a person.
    queued_at: Option<String>,
    /// Its place in the queue while it waits for an agent (1 is next); on the thread's own page only.
    #[serde(skip_serializing_if = "Option::is_none")]
    queue_position: Option<usize>,
    created_at: String,
}

fn thread_body(t: Thread, c: Customer, touches: Option<Vec<Touch>>) -> ThreadBody {
    let at = now();
    ThreadBody {
        id: t.id.0,
        channel: t.channel.as_str(),
        // A web chat thread belongs to no Page: its account is the merchant's web chat.
        page_id: t.channel.via_graph().then(|| t.page_id.clone()),
        mode: t.mode.as_str(),
        bot_paused_until: t.human_active_until.filter(|u| *u > at).map(timestamp),
        customer: CustomerBody {
            id: c.id.0,
            psid: c.psid,
            first_name: c.first_name,
            locale: c.locale,
        },
        window: WindowBody {
            open: t.window_open(at),
            ends_at: t.window_ends_at.map(timestamp),
        },
        last_inbound_at: t.last_inbound_at.map(timestamp),
        latest_ad_id: t.latest_ad_id,
        touches: touches.map(|ts| ts.into_iter().map(TouchBody::from).collect()),
        assigned_agent_id: t.assigned_agent_id.map(|a| a.0),
        routing_reason: t.routing_reason,
        queued_at: t.queued_at.map(timestamp),
        queue_position: None,
        created_at: timestamp(t.created_at),
    }
}

#[derive(Deserialize)]
struct ListParams {
    limit: Option<i64>,
    cursor: Option<String>,
    order: Option<String>,
    mode: Option<String>,
    channel: Option<String>,
    ad_id: Option<String>,
    has_open_cart: Option<bool>,
    assigned_agent_id: Option<Uuid>,
}

async fn list(
    caller: Caller,
    state: web::Data<AppState>,
    params: web::Query<ListParams>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ReadThreads)?;
    let params = params.into_inner();
    let page = PageParams {
        limit: params.limit,
        cursor: params.cursor,
        order: params.order.clone(),
    };
    let limit = page.limit()?;
    let mode = match params.mode.as_deref() {
        None => None,
        Some(m) => Some(Mode::parse(m).ok_or_else(|| {
            ApiError::validation(vec![crate::kernel::FieldError::new(
                "mode",
                "invalid_mode",
                "mode is bot or agent",
            )])
        })?),
    };
    let channel = params.channel.as_deref().map(super::parse_channel).transpose()?;
    let query = ThreadQuery {
        mode,
        channel,
        ad_id: params.ad_id,
        has_open_cart: params.has_open_cart,
        page: page.keyset()?,
        limit: limit + 1,
        visible_to: caller.agent_id,
        assigned_agent_id: params.assigned_agent_id,
    };
    let items = state
        .db
        .query(move |conn| conversations::list_threads(conn, caller.merchant_id, &query))
        .await?;
    Ok(HttpResponse::Ok().json(ListBody::from_items(
        items,
        limit,
        |(t, _)| t.id.0.to_string(),
        |(t, c)| thread_body(t, c, None),
    )))
}

async fn get(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<ThreadId>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ReadThreads)?;
    let id = path.into_inner();
    let (thread, customer, touches, position) = state
        .db
        .query(move |conn| {
            let t = conversations::thread_for(conn, caller.merchant_id, caller.agent_id, id)?;
            let c = conversations::customer(conn, t.customer_id)?;
            let touches = touches::touches_of(conn, id)?;
            let position = match (t.queued_at, t.assigned_agent_id) {
                (Some(_), None) => crate::routing::queue_position(conn, caller.merchant_id, id)?,
                _ => None,
            };
            Ok((t, c, touches, position))
        })
        .await
        .map_err(|e| super::pages::not_found_as("thread", e))?;
    Ok(HttpResponse::Ok().json(ThreadBody {
        queue_position: position,
        ..thread_body(thread, customer, Some(touches))
    }))
}

#[derive(Serialize)]
struct MessageBody {
    id: Uuid,
    direction: String,
    author: String,
    kind: String,
    mid: Option<String>,
    text: Option<String>,
    payload: Option<String>,
    occurred_at: String,
    /// Outgoing messages: `queued`, `sent`, `failed`, `expired` or `dead`.
    #[serde(skip_serializing_if = "Option::is_none")]
    delivery: Option<String>,
    /// Why an outgoing message was not delivered.
    #[serde(skip_serializing_if = "Option::is_none")]
    delivery_error: Option<String>,
}

impl From<(StoredMessage, Option<Delivery>)> for MessageBody {
    fn from((m, delivery): (StoredMessage, Option<Delivery>)) -> Self {
        let (delivery, delivery_error) =
            delivery.map_or((None, None), |d| (Some(d.status.to_string()), d.error));
        MessageBody {
            delivery,
            delivery_error,
            id: m.id.0,
            direction: m.direction,
            author: m.author,
            kind: m.kind,
            mid: m.mid,
            text: m.text,
            payload: m.payload,
            occurred_at: timestamp(m.occurred_at),
        }
    }
}

async fn messages(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<ThreadId>,
    page: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ReadThreads)?;
    let id = path.into_inner();
    let (limit, keyset) = (page.limit()?, page.keyset()?);
    let items = state
        .db
        .query(move |conn| {
            conversations::thread_for(conn, caller.merchant_id, caller.agent_id, id)?;
            conversations::list_messages(conn, id, keyset, limit + 1)
        })
        .await
        .map_err(|e| super::pages::not_found_as("thread", e))?;
    Ok(HttpResponse::Ok().json(ListBody::from_items(
        items,
        limit,
        |(m, _)| m.id.0.to_string(),
        MessageBody::from,
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SendRequest {
    text: String,
}

/// An agent's text without control characters (escape sequences, bells, NULs, carriage returns ...):
/// only newlines and tabs are kept. The shopper's app would show them as garbage, or worse.
fn without_controls(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
        .collect()
}

async fn send(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<ThreadId>,
    body: web::Json<SendRequest>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::WriteThreads)?;
    let id = path.into_inner();
    let text = without_controls(&body.into_inner().text);
    let queued = state
        .db
        .run(move |conn| agent::send_text(conn, caller.merchant_id, id, caller.agent_id, &text))
        .await
        .map_err(|e| match e {
            AgentSendError::NotFound => ApiError::not_found("thread"),
            AgentSendError::WindowClosed { window_ends_at } => ApiError::conflict(
                ErrorCode::MessagingWindowClosed,
                match window_ends_at {
                    Some(end) => format!(
                        "the messaging window closed at {}; the shopper must write first",
                        timestamp(end)
                    ),
                    None => "the shopper has not written yet: the messaging window is closed".into(),
                },
            ),
            AgentSendError::Invalid(detail) => ApiError::validation(vec![crate::kernel::FieldError::new(
                "text",
                "invalid_text",
                detail,
            )]),
            AgentSendError::Db(e) => e.into(),
            AgentSendError::Unavailable(e) => e.into(),
        })?;
    state.wakers.replies_queued(id);
    Ok(HttpResponse::build(StatusCode::ACCEPTED).json(json!({
        "queued": 1,
        "messaging_type": queued.messaging_type.wire().0,
        "tag": queued.messaging_type.wire().1,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HandoverRequest {
    to: String,
}

async fn handover(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<ThreadId>,
    body: web::Json<HandoverRequest>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::WriteThreads)?;
    let id = path.into_inner();
    let mode = Mode::parse(&body.to).ok_or_else(|| {
        ApiError::validation(vec![crate::kernel::FieldError::new(
            "to",
            "invalid_mode",
            "to is bot or agent",
        )])
    })?;
    let (thread, customer) = state
        .db
        .query(move |conn| {
            conversations::thread_for(conn, caller.merchant_id, caller.agent_id, id)?;
            conversations::set_mode(conn, id, mode)?;
            // Read as it is now: an agent who hands it back no longer has it.
            let t = conversations::thread(conn, caller.merchant_id, id)?;
            let c = conversations::customer(conn, t.customer_id)?;
            Ok((t, c))
        })
        .await
        .map_err(|e| super::pages::not_found_as("thread", e))?;
    state.wakers.routing.notify_one();
    tracing::info!(merchant.id = %caller.merchant_id, thread.id = %id, mode = mode.as_str(), "thread handed over");
    Ok(HttpResponse::Ok().json(thread_body(thread, customer, None)))
}

#[derive(Deserialize)]
struct EventParams {
    limit: Option<i64>,
    cursor: Option<String>,
    order: Option<String>,
    status: Option<String>,
}

#[derive(Serialize)]
struct EventBody {
    id: Uuid,
    channel: String,
    page_id: PageId,
    psid: Psid,
    kind: String,
    status: String,
    attempts: i32,
    last_error: Option<String>,
    occurred_at: String,
    payload: serde_json::Value,
}

impl From<StoredEvent> for EventBody {
    fn from(e: StoredEvent) -> Self {
        EventBody {
            id: e.id.0,
            channel: e.channel.to_string(),
            page_id: e.page_id,
            psid: e.psid,
            kind: e.kind,
            status: e.status,
            attempts: e.attempts,
            last_error: e.last_error,
            occurred_at: timestamp(e.occurred_at),
            payload: serde_json::from_str(&e.payload).unwrap_or(serde_json::Value::Null),
        }
    }
}

async fn events(
    caller: Caller,
    state: web::Data<AppState>,
    params: web::Query<EventParams>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ManageWebhooks)?;
    let params = params.into_inner();
    let status = match params.status.as_deref().unwrap_or("dead") {
        "dead" => EventStatus::Dead,
        "pending" => EventStatus::Pending,
        "done" => EventStatus::Done,
        _ => {
            return Err(ApiError::validation(vec![crate::kernel::FieldError::new(
                "status",
                "invalid_status",
                "status is dead, pending or done",
            )]));
        }
    };
    let page = PageParams {
        limit: params.limit,
        cursor: params.cursor,
        order: params.order.clone(),
    };
    let (limit, keyset) = (page.limit()?, page.keyset()?);
    let items = state
        .db
        .query(move |conn| inbox::list_events(conn, caller.merchant_id, status, keyset, limit + 1))
        .await?;
    Ok(HttpResponse::Ok().json(ListBody::from_items(
        items,
        limit,
        |e| e.id.0.to_string(),
        EventBody::from,
    )))
}

async fn replay(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ManageWebhooks)?;
    let id = path.into_inner();
    let replayed = state
        .db
        .query(move |conn| inbox::replay(conn, caller.merchant_id, id))
        .await?;
    if !replayed {
        return Err(ApiError::not_found("dead event"));
    }
    state.wakers.events.wake();
    tracing::info!(merchant.id = %caller.merchant_id, event.id = %id, "dead event replayed");
    Ok(HttpResponse::build(StatusCode::ACCEPTED).json(json!({"id": id, "status": "pending"})))
}

#[derive(Serialize)]
struct CartLineBody {
    id: Uuid,
    product_id: Option<Uuid>,
    variant_id: Option<Uuid>,
    title: String,
    variant_name: String,
    sku: String,
    unit_price: crate::money::MoneyDto,
    quantity: u32,
    total: crate::money::MoneyDto,
}

#[derive(Serialize)]
struct CartDiscountBody {
    code: String,
    amount: crate::money::MoneyDto,
}

#[derive(Serialize)]
pub(super) struct CartBody {
    id: Option<Uuid>,
    lines: Vec<CartLineBody>,
    subtotal: Option<crate::money::MoneyDto>,
    /// The code applied and what it takes off now; null when none applies.
    discount: Option<CartDiscountBody>,
    total: Option<crate::money::MoneyDto>,
}

/// The thread's open cart (`id` null and no lines when there is none) with its totals as the shopper
/// sees them.
async fn cart(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<ThreadId>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ReadThreads)?;
    let id = path.into_inner();
    let cart = state
        .db
        .query(move |conn| {
            conversations::thread_for(conn, caller.merchant_id, caller.agent_id, id)?;
            crate::carts::open_cart(conn, id)
        })
        .await
        .map_err(|e| super::pages::not_found_as("thread", e))?;
    Ok(HttpResponse::Ok().json(cart_body(cart)?))
}

/// A cart as answered: its lines and totals as the shopper sees them now (`id` null and no lines when
/// there is none).
pub(super) fn cart_body(cart: Option<crate::carts::Cart>) -> Result<CartBody, ApiError> {
    let Some(cart) = cart else {
        return Ok(CartBody {
            id: None,
            lines: Vec::new(),
            subtotal: None,
            discount: None,
            total: None,
        });
    };
    let totals = cart.totals(now()).map_err(ApiError::internal)?;
    let mut lines = Vec::with_capacity(cart.lines.len());
    for l in cart.lines {
        lines.push(CartLineBody {
            id: l.id,
            product_id: l.product_id,
            variant_id: l.variant_id,
            total: l.total().map_err(ApiError::internal)?.into(),
            title: l.title,
            variant_name: l.variant_name,
            sku: l.sku,
            unit_price: l.unit_price.into(),
            quantity: l.quantity,
        });
    }
    Ok(CartBody {
        id: Some(cart.id),
        lines,
        subtotal: Some(totals.subtotal.into()),
        discount: totals.discount.map(|(code, amount)| CartDiscountBody {
            code,
            amount: amount.into(),
        }),
        total: Some(totals.total.into()),
    })
}

/// An agent checks out the thread's cart: the order, and the shopper gets the Pay button.
async fn checkout(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<ThreadId>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::WriteThreads)?;
    let id = path.into_inner();
    if state.stripe.is_none() {
        // Another merchant's thread answers 404 whatever the setup.
        state
            .db
            .query(move |conn| {
                crate::conversations::thread_for(conn, caller.merchant_id, caller.agent_id, id)
            })
            .await
            .map_err(|e| super::pages::not_found_as("thread", e))?;
        return Err(ApiError::upstream(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::PaymentsDisabled,
            "STRIPE_SECRET_KEY is not set: checkout needs Stripe",
            None,
        ));
    }
    let result = state
        .db
        .run(move |conn| {
            use crate::conversations::turn::{TurnError, checkout_for_agent};
            checkout_for_agent(conn, caller.merchant_id, caller.agent_id, id).map_err(|e| match e {
                TurnError::Db(diesel::result::Error::NotFound) => ApiError::not_found("thread"),
                TurnError::Db(e) => e.into(),
                other => ApiError::internal(other),
            })
        })
        .await?;
    match result {
        Ok(order) => {
            state.wakers.payments.notify_one();
            Ok(HttpResponse::Created().json(super::orders::OrderBody::from(order)))
        }
        Err(refusal) => Err(ApiError::conflict(
            ErrorCode::CheckoutRefused,
            refusal.to_string(),
        )),
    }
}
