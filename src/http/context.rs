//! `GET /v1/threads/{thread_id}/context`: who the shopper is, for the person answering them. The
//! customer (name, channel, locale, the local time now), the touches that brought them, the open cart
//! with its code, their orders with the lifetime paid total, their stays, the offers they took or
//! declined, and how the thread was routed.

use actix_web::{HttpResponse, web};
use serde::Serialize;
use uuid::Uuid;

use super::bookings::BookingBody;
use super::orders::OrderBody;
use super::threads::{CartBody, TouchBody, cart_body};
use super::timestamp;
use crate::auth::{Caller, Permission};
use crate::bookings::BookingQuery;
use crate::checkout::orders::{self, OrderQuery};
use crate::conversations;
use crate::db::{Keyset, now};
use crate::error::ApiError;
use crate::http::AppState;
use crate::kernel::ThreadId;
use crate::money::MoneyDto;

/// The most orders, and stays, the context lists (newest first).
const RECENT: i64 = 10;

#[derive(Serialize)]
struct ContextBody {
    thread_id: Uuid,
    customer: CustomerContext,
    touches: Vec<TouchBody>,
    cart: CartBody,
    orders: Vec<OrderBody>,
    lifetime_paid: Vec<MoneyDto>,
    bookings: Vec<BookingBody>,
    offers: Vec<OfferBody>,
    routing: RoutingBody,
}

#[derive(Serialize)]
struct CustomerContext {
    id: Uuid,
    first_name: Option<String>,
    channel: &'static str,
    locale: Option<String>,
    /// Hours from UTC, as the channel's profile gave it.
    timezone_offset: Option<i32>,
    /// The shopper's local time now, when their offset is known (no zone: a wall clock).
    local_time: Option<String>,
}

#[derive(Serialize)]
struct OfferBody {
    offer_id: Uuid,
    text: String,
    status: &'static str,
    at: String,
}

#[derive(Serialize)]
struct RoutingBody {
    queued_at: Option<String>,
    assigned_agent_id: Option<Uuid>,
    reason: Option<String>,
    /// Served before lower priorities (set by rules).
    priority: i32,
    /// The thread's labels (put by rules).
    labels: crate::kernel::Labels,
    /// The labels of what the thread is about (the advertised product's, the cart's, the room's).
    about: Vec<String>,
    /// The skill a rule asked its agent to have.
    skill: Option<String>,
    /// The rule that routed it.
    rule: Option<RuleRef>,
}

#[derive(Serialize)]
struct RuleRef {
    id: Uuid,
    /// None when the rule was deleted since.
    name: Option<String>,
}

pub(super) async fn context(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<ThreadId>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ReadThreads)?;
    caller.require(Permission::ReadOrders)?;
    let id = path.into_inner();
    let merchant_id = caller.merchant_id;
    let newest = Keyset {
        cursor: None,
        oldest_first: false,
    };
    let found = state
        .db
        .query(move |conn| {
            let thread = conversations::thread_for(conn, merchant_id, caller.agent_id, id)?;
            let customer = conversations::customer(conn, thread.customer_id)?;
            let touches = crate::attribution::touches::touches_of(conn, id)?;
            let cart = crate::carts::open_cart(conn, id)?;
            let orders = orders::list(
                conn,
                merchant_id,
                &OrderQuery {
                    page: newest,
                    limit: RECENT,
                    status: None,
                    thread_id: Some(id),
                    ad_id: None,
                    from: None,
                    to: None,
                    channel: None,
                    text: None,
                },
            )?;
            let paid = orders::paid_in_thread(conn, id)?;
            let bookings = crate::bookings::list_bookings(
                conn,
                merchant_id,
                &BookingQuery {
                    page: newest,
                    limit: RECENT,
                    status: None,
                    from: None,
                    to: None,
                    bookable_id: None,
                    thread_id: Some(id),
                },
            )?;
            let offers = crate::carts::offers_seen(conn, id)?;
            let routed = crate::rules::routed(conn, id)?;
            let about = crate::routing::about(conn, merchant_id, &[id])?.remove(&id);
            Ok((
                thread,
                customer,
                touches,
                cart,
                orders,
                paid,
                bookings,
                offers,
                (routed, about.unwrap_or_default()),
            ))
        })
        .await
        .map_err(|e| super::pages::not_found_as("thread", e))?;
    let (thread, customer, touches, cart, orders, paid, bookings, offers, (routed, about)) = found;
    let local_time = customer.timezone_offset.map(|h| {
        (now() + chrono::Duration::hours(i64::from(h)))
            .format("%Y-%m-%dT%H:%M")
            .to_string()
    });
    let name = customer.first_name.clone();
    Ok(HttpResponse::Ok().json(ContextBody {
        thread_id: thread.id.0,
        customer: CustomerContext {
            id: customer.id.0,
            first_name: customer.first_name,
            channel: thread.channel.as_str(),
            locale: customer.locale,
            timezone_offset: customer.timezone_offset,
            local_time,
        },
        touches: touches.into_iter().map(TouchBody::from).collect(),
        cart: cart_body(cart)?,
        orders: orders
            .into_iter()
            .map(|o| OrderBody::with_name(o, name.clone()))
            .collect(),
        lifetime_paid: paid.into_iter().map(MoneyDto::from).collect(),
        bookings: bookings.into_iter().map(BookingBody::from).collect(),
        offers: offers
            .into_iter()
            .map(|o| OfferBody {
                offer_id: o.offer_id,
                text: o.text,
                status: o.status.as_str(),
                at: timestamp(o.at),
            })
            .collect(),
        routing: RoutingBody {
            queued_at: thread.queued_at.map(timestamp),
            assigned_agent_id: thread.assigned_agent_id.map(|a| a.0),
            reason: thread.routing_reason,
            priority: routed.priority,
            labels: routed.labels,
            about,
            skill: routed.skill,
            rule: routed.rule.map(|(id, name)| RuleRef { id, name }),
        },
    }))
}
