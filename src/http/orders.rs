//! Orders for the merchant (read), and the pages Stripe sends the shopper back to.

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, web};
use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Api, ListBody, PageParams, parse_instant, timestamp};
use crate::auth::{Caller, Permission};
use crate::checkout::orders::{self, Order, OrderQuery, OrderStatus, RecordedRefund};
use crate::checkout::payments::{self, PaymentsError, RefundAsk, RefundMade};
use crate::checkout::stripe::RefundReason;
use crate::error::{ApiError, ErrorCode};
use crate::http::AppState;
use crate::kernel::{FieldError, OrderId, ThreadId};
use crate::money::MoneyDto;

pub(super) fn routes(api: &mut Api<'_>) {
    api.route(Method::GET, "/v1/orders", list)
        .route(Method::GET, "/v1/orders/{order_id}", get)
        .route(Method::POST, "/v1/orders/{order_id}/refunds", refund)
        .route(Method::GET, "/checkout/success", success)
        .route(Method::GET, "/checkout/cancel", cancel);
}

#[derive(Serialize)]
struct LineBody {
    product_id: Option<Uuid>,
    variant_id: Option<Uuid>,
    booking_id: Option<Uuid>,
    title: String,
    variant_name: String,
    sku: String,
    unit_price: MoneyDto,
    quantity: u32,
    total: MoneyDto,
}

/// An order as answered.
#[derive(Serialize)]
pub(super) struct OrderBody {
    id: OrderId,
    number: String,
    status: &'static str,
    disputed: bool,
    subtotal: MoneyDto,
    discount: MoneyDto,
    discount_code: Option<String>,
    total: MoneyDto,
    refunded: MoneyDto,
    thread_id: Option<ThreadId>,
    customer_name: Option<String>,
    channel: String,
    ad_id: Option<String>,
    lines: Vec<LineBody>,
    stripe_session_id: Option<String>,
    stripe_payment_intent_id: Option<String>,
    receipt: Option<String>,
    late_payment: Option<String>,
    expires_at: Option<String>,
    paid_at: Option<String>,
    created_at: String,
    /// The refunds, on the order's own page only (lists leave them out).
    #[serde(skip_serializing_if = "Option::is_none")]
    refunds: Option<Vec<RefundBody>>,
    /// How and when the shopper was told of the order, on its own page only.
    #[serde(skip_serializing_if = "Option::is_none")]
    notices: Option<Vec<NoticeBody>>,
}

/// How and when the shopper was told an update (`conversations::notices::told_of`).
#[derive(Debug, Serialize)]
pub(super) struct NoticeBody {
    purpose: String,
    told: String,
    at: String,
}

impl NoticeBody {
    /// The notices as answered.
    pub(super) fn all(rows: Vec<(String, String, chrono::NaiveDateTime)>) -> Vec<NoticeBody> {
        rows.into_iter()
            .map(|(purpose, told, at)| NoticeBody {
                purpose,
                told,
                at: timestamp(at),
            })
            .collect()
    }
}

/// A refund as listed on its order.
#[derive(Serialize)]
struct RefundBody {
    id: Uuid,
    status: String,
    amount: MoneyDto,
    reason: Option<String>,
    stripe_refund_id: Option<String>,
    created_at: String,
}

impl From<RecordedRefund> for RefundBody {
    fn from(r: RecordedRefund) -> Self {
        RefundBody {
            id: r.id,
            status: r.status,
            amount: r.amount.into(),
            reason: r.reason,
            stripe_refund_id: r.stripe_refund_id,
            created_at: timestamp(r.created_at),
        }
    }
}

impl OrderBody {
    /// The order with its customer's first name, as lists answer it.
    /// The order with its customer's first name.
    pub(super) fn with_name(o: Order, name: Option<String>) -> Self {
        OrderBody {
            customer_name: name,
            ..OrderBody::from(o)
        }
    }

    fn named(o: Order, names: &HashMap<ThreadId, String>) -> Self {
        let name = o.thread_id.and_then(|t| names.get(&t).cloned());
        OrderBody {
            customer_name: name,
            ..OrderBody::from(o)
        }
    }
}

impl From<Order> for OrderBody {
    fn from(o: Order) -> Self {
        OrderBody {
            customer_name: None,
            refunds: None,
            notices: None,
            id: o.id,
            number: o.number,
            status: o.status.as_str(),
            disputed: o.disputed,
            subtotal: o.subtotal.into(),
            discount: o.discount.into(),
            discount_code: o.discount_code,
            total: o.total.into(),
            refunded: o.refunded.into(),
            thread_id: o.thread_id,
            channel: o.channel.to_string(),
            ad_id: o.ad_id,
            lines: o
                .lines
                .into_iter()
                .map(|l| LineBody {
                    product_id: l.product_id,
                    variant_id: l.variant_id,
                    booking_id: l.booking_id,
                    title: l.title,
                    variant_name: l.variant_name,
                    sku: l.sku,
                    unit_price: l.unit_price.into(),
                    quantity: l.quantity,
                    total: l.total.into(),
                })
                .collect(),
            stripe_session_id: o.stripe_session_id,
            stripe_payment_intent_id: o.stripe_payment_intent_id,
            receipt: o.receipt,
            late_payment: o.late_payment.map(|l| l.as_str().to_owned()),
            expires_at: o.expires_at.map(timestamp),
            paid_at: o.paid_at.map(timestamp),
            created_at: timestamp(o.created_at),
        }
    }
}

#[derive(Deserialize)]
struct ListParams {
    limit: Option<i64>,
    cursor: Option<String>,
    order: Option<String>,
    status: Option<String>,
    thread_id: Option<ThreadId>,
    ad_id: Option<String>,
    from: Option<String>,
    to: Option<String>,
    channel: Option<String>,
    q: Option<String>,
}

async fn list(
    caller: Caller,
    state: web::Data<AppState>,
    params: web::Query<ListParams>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ReadOrders)?;
    let params = params.into_inner();
    let status = match params.status.as_deref() {
        None => None,
        Some(s) => Some(OrderStatus::parse(s).ok_or_else(|| {
            ApiError::validation(vec![FieldError::new(
                "status",
                "invalid_status",
                "status is awaiting_payment, processing, paid, payment_failed, expired, partially_refunded or refunded",
            )])
        })?),
    };
    let page = PageParams {
        limit: params.limit,
        cursor: params.cursor,
        order: params.order.clone(),
    };
    let limit = page.limit()?;
    let query = OrderQuery {
        page: page.keyset()?,
        limit: limit + 1,
        status,
        thread_id: params.thread_id,
        ad_id: params.ad_id.filter(|a| !a.is_empty()),
        from: params
            .from
            .as_deref()
            .map(|f| parse_instant("from", f))
            .transpose()?,
        to: params.to.as_deref().map(|t| parse_instant("to", t)).transpose()?,
        channel: params.channel.as_deref().map(super::parse_channel).transpose()?,
        text: params.q.map(|q| q.trim().to_owned()).filter(|q| !q.is_empty()),
    };
    let (items, names) = state
        .db
        .query(move |conn| {
            let items = orders::list(conn, caller.merchant_id, &query)?;
            let names = orders::customer_names(conn, &items)?;
            Ok((items, names))
        })
        .await?;
    Ok(HttpResponse::Ok().json(ListBody::from_items(
        items,
        limit,
        |o| o.id.to_string(),
        |o| OrderBody::named(o, &names),
    )))
}

async fn get(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<OrderId>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ReadOrders)?;
    let id = path.into_inner();
    let (order, names, refunds, notices) = state
        .db
        .query(move |conn| {
            let Some(order) = orders::get(conn, caller.merchant_id, id)? else {
                return Err(diesel::result::Error::NotFound);
            };
            let names = orders::customer_names(conn, std::slice::from_ref(&order))?;
            let refunds = orders::refunds_of(conn, caller.merchant_id, id)?;
            let notices = crate::conversations::notices::told_of(conn, caller.merchant_id, id.0)?;
            Ok((order, names, refunds, notices))
        })
        .await
        .map_err(|e| super::pages::not_found_as("order", e))?;
    Ok(HttpResponse::Ok().json(OrderBody {
        refunds: Some(refunds.into_iter().map(RefundBody::from).collect()),
        notices: Some(NoticeBody::all(notices)),
        ..OrderBody::named(order, &names)
    }))
}

fn page(title: &str, text: &str, page_id: Option<&str>) -> HttpResponse {
    // Page ids are digits (checked when the Page was connected): safe in a URL and in HTML.
    let back = page_id
        .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        .map(|p| format!("<p><a href=\"https://m.me/{p}\">Back to Messenger</a></p>"))
        .unwrap_or_default();
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{title}</title></head>\
         <body style=\"font-family: system-ui, sans-serif; max-width: 32rem; margin: 3rem auto; padding: 0 1rem\">\
         <h1>{title}</h1><p>{text}</p>{back}</body></html>"
    ))
}

#[derive(Deserialize)]
struct ReturnParams {
    order: Option<OrderId>,
}

/// The Page to go back to, for the order named in the return URL (none when unknown).
async fn page_for(state: &AppState, order: Option<OrderId>) -> Option<String> {
    let order = order?;
    state
        .db
        .query(move |conn| orders::page_of(conn, order))
        .await
        .ok()
        .flatten()
}

/// Where Stripe sends the shopper after paying. The visit proves nothing (anyone can open the URL): it only
/// makes the worker ask Stripe about the order now; the page says so and links back to the conversation.
async fn success(state: web::Data<AppState>, params: web::Query<ReturnParams>) -> HttpResponse {
    let page_id = page_for(&state, params.order).await;
    if page_id.is_some()
        && let Some(order) = params.order
    {
        // Stripe is asked about this order at once, as a webhook would make it: the same idempotent
        // fulfilment, so a late or lost webhook does not keep the shopper waiting.
        if let Err(e) = state
            .db
            .query(move |conn| orders::mark_checked(conn, order, None))
            .await
        {
            tracing::warn!(error = %e, "order not marked for a check with Stripe");
        }
    }
    state.wakers.payments.notify_one();
    page(
        "Thank you!",
        "Your payment is being confirmed. You can go back to Messenger: your receipt arrives there.",
        page_id.as_deref(),
    )
}

/// Where Stripe's back button goes.
async fn cancel(state: web::Data<AppState>, params: web::Query<ReturnParams>) -> HttpResponse {
    let page_id = page_for(&state, params.order).await;
    page(
        "Payment cancelled",
        "Nothing was charged. Your cart is still waiting for you in Messenger.",
        page_id.as_deref(),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefundRequest {
    /// What to give back; the whole remaining amount when absent.
    #[serde(default)]
    amount: Option<MoneyDto>,
    /// `duplicate`, `fraudulent` or `requested_by_customer`.
    #[serde(default)]
    reason: Option<String>,
}

/// The request's `Idempotency-Key`: 1 to 255 visible ASCII characters.
fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(key) if (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic()) => {
            Ok(Some(key.to_owned()))
        }
        _ => Err(ApiError::new(
            actix_web::http::StatusCode::BAD_REQUEST,
            ErrorCode::InvalidIdempotencyKey,
            "Idempotency-Key is 1 to 255 visible ASCII characters",
        )),
    }
}

impl RefundRequest {
    /// The refund asked, with the request's `Idempotency-Key`.
    fn parse(self, req: &HttpRequest) -> Result<RefundAsk, ApiError> {
        let reason = match self.reason.as_deref() {
            None => None,
            Some("duplicate") => Some(RefundReason::Duplicate),
            Some("fraudulent") => Some(RefundReason::Fraudulent),
            Some("requested_by_customer") => Some(RefundReason::RequestedByCustomer),
            Some(_) => {
                return Err(ApiError::validation(vec![FieldError::new(
                    "reason",
                    "invalid_reason",
                    "reason is duplicate, fraudulent or requested_by_customer",
                )]));
            }
        };
        let amount = self
            .amount
            .map(|dto| dto.parse_price())
            .transpose()
            .map_err(|e| ApiError::validation(vec![FieldError::new("amount", e.code(), e.to_string())]))?;
        Ok(RefundAsk {
            amount,
            reason,
            request_key: idempotency_key(req)?,
        })
    }
}

/// A refund as answered.
pub(super) fn refund_body(refund: RefundMade) -> serde_json::Value {
    serde_json::json!({
        "id": refund.id,
        "status": refund.status,
        "amount": MoneyDto::from(refund.amount),
    })
}

/// Refunds a paid order through Stripe, then records the refund (see [`payments::refund_order`]).
async fn refund(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<OrderId>,
    req: HttpRequest,
    body: web::Json<RefundRequest>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ManageOrders)?;
    let ask = body.into_inner().parse(&req)?;
    let refunded = payments::refund_order(
        &state.db,
        state.stripe.as_ref(),
        caller.merchant_id,
        path.into_inner(),
        ask,
    )
    .await?;
    let mut answer = refund_body(refunded.refund);
    answer["order"] = serde_json::to_value(OrderBody::from(refunded.order)).map_err(ApiError::internal)?;
    Ok(HttpResponse::Created().json(answer))
}

/// What the payments service's refusals and failures answer, for orders and stays alike.
impl From<PaymentsError> for ApiError {
    fn from(e: PaymentsError) -> Self {
        use actix_web::http::StatusCode;
        match e {
            PaymentsError::Disabled => ApiError::upstream(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::PaymentsDisabled,
                "STRIPE_SECRET_KEY is not set: refunds go through Stripe",
                None,
            ),
            PaymentsError::OrderNotFound => ApiError::not_found("order"),
            PaymentsError::NotRefundable => {
                ApiError::conflict(ErrorCode::NotRefundable, "only a paid order can be refunded")
            }
            PaymentsError::InvalidRefund { remaining } => ApiError::validation(vec![FieldError::new(
                "amount",
                "invalid_refund",
                format!("a refund is more than zero and at most the {remaining} not yet refunded"),
            )]),
            PaymentsError::KeyReused => ApiError::conflict(
                ErrorCode::IdempotencyKeyReused,
                "this Idempotency-Key was used for a refund of another amount",
            ),
            // A refund Stripe did not make: 503 when a retry may succeed, 502 when it will not.
            PaymentsError::Stripe(e) if e.is_retryable() => {
                ApiError::unavailable(anyhow::anyhow!("Stripe refund failed: {e}"))
            }
            PaymentsError::Stripe(e) => ApiError::new(
                StatusCode::BAD_GATEWAY,
                ErrorCode::StripeRefused,
                format!("Stripe refused the refund: {e}"),
            ),
            PaymentsError::Booking(e) => e.into(),
            PaymentsError::Db(e) => e.into(),
            e @ (PaymentsError::RefundNotRecorded(_)
            | PaymentsError::StayTaken(_)
            | PaymentsError::Money(_)) => ApiError::internal(e),
        }
    }
}
