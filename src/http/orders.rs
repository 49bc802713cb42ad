//! Orders for the merchant (read), and the pages Stripe sends the shopper back to.

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Api, ListBody, PageParams, timestamp};
use crate::auth::{Caller, Permission};
use crate::checkout::orders::{self, Order, OrderQuery, OrderStatus};
use crate::error::ApiError;
use crate::money::MoneyDto;
use crate::startup::AppState;

pub(super) fn routes(api: &mut Api<'_>) {
    api.route(Method::GET, "/v1/orders", list)
        .route(Method::GET, "/v1/orders/{order_id}", get)
        .route(Method::GET, "/checkout/success", success)
        .route(Method::GET, "/checkout/cancel", cancel);
}

#[derive(Serialize)]
struct LineBody {
    product_id: Option<Uuid>,
    variant_id: Option<Uuid>,
    title: String,
    variant_name: String,
    sku: String,
    unit_price: MoneyDto,
    quantity: u32,
    total: MoneyDto,
}

#[derive(Serialize)]
struct OrderBody {
    id: Uuid,
    number: String,
    status: &'static str,
    disputed: bool,
    subtotal: MoneyDto,
    discount: MoneyDto,
    discount_code: Option<String>,
    total: MoneyDto,
    refunded: MoneyDto,
    thread_id: Option<Uuid>,
    ad_id: Option<String>,
    lines: Vec<LineBody>,
    stripe_session_id: Option<String>,
    stripe_payment_intent_id: Option<String>,
    expires_at: Option<String>,
    paid_at: Option<String>,
    created_at: String,
}

impl From<Order> for OrderBody {
    fn from(o: Order) -> Self {
        OrderBody {
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
            ad_id: o.ad_id,
            lines: o
                .lines
                .into_iter()
                .map(|l| LineBody {
                    product_id: l.product_id,
                    variant_id: l.variant_id,
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
    status: Option<String>,
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
            ApiError::validation(vec![crate::catalog::domain::FieldError::new(
                "status",
                "invalid_status",
                "status is awaiting_payment, processing, paid, payment_failed, expired, partially_refunded or refunded",
            )])
        })?),
    };
    let page = PageParams {
        limit: params.limit,
        cursor: params.cursor,
    };
    let limit = page.limit()?;
    let query = OrderQuery {
        after: page.uuid_cursor()?,
        limit: limit + 1,
        status,
    };
    let items = state
        .db
        .query(move |conn| orders::list(conn, caller.merchant_id, &query))
        .await?;
    Ok(HttpResponse::Ok().json(ListBody::from_items(
        items,
        limit,
        |o| o.id.to_string(),
        OrderBody::from,
    )))
}

async fn get(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ReadOrders)?;
    let id = path.into_inner();
    let order = state
        .db
        .query(move |conn| orders::get(conn, caller.merchant_id, id))
        .await?
        .ok_or_else(|| ApiError::not_found("order"))?;
    Ok(HttpResponse::Ok().json(OrderBody::from(order)))
}

fn page(title: &str, text: &str) -> HttpResponse {
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{title}</title></head>\
         <body style=\"font-family: system-ui, sans-serif; max-width: 32rem; margin: 3rem auto; padding: 0 1rem\">\
         <h1>{title}</h1><p>{text}</p></body></html>"
    ))
}

/// Where Stripe sends the shopper after paying. The payment is confirmed by Stripe's webhook, not by
/// this visit: the page only says so.
async fn success() -> HttpResponse {
    page(
        "Thank you!",
        "Your payment is being confirmed. You can go back to Messenger: your receipt arrives there.",
    )
}

/// Where Stripe's back button goes.
async fn cancel() -> HttpResponse {
    page(
        "Payment cancelled",
        "Nothing was charged. Your cart is still waiting for you in Messenger.",
    )
}
