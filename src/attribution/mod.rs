//! Attribution: funnel events recorded as they happen, each with the thread's latest touch (the ad or
//! link that brought the shopper), so reports can tell which ad brought which views, carts and sales.

use diesel::prelude::*;
use uuid::Uuid;

use crate::conversations::{self, Thread};
use crate::db::schema::funnel_events;
use crate::db::{DbConnection, DbUuid, now};
use crate::money::Money;

/// A step of the funnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FunnelStep {
    /// The shopper saw a product's card.
    ProductView,
    /// The shopper put something in the cart.
    AddToCart,
    /// The shopper started a checkout.
    Checkout,
    /// Stripe confirmed the payment.
    Purchase,
}

impl FunnelStep {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            FunnelStep::ProductView => "product_view",
            FunnelStep::AddToCart => "add_to_cart",
            FunnelStep::Checkout => "checkout",
            FunnelStep::Purchase => "purchase",
        }
    }
}

/// Records a funnel step on the thread, with its latest touch.
pub fn record(
    conn: &mut DbConnection,
    thread: &Thread,
    step: FunnelStep,
    product_id: Option<Uuid>,
    value: Option<Money>,
) -> QueryResult<()> {
    insert(conn, thread, step, (product_id, None), value)
}

/// Records a funnel step about a room type (viewed, held) on the thread, with its latest touch.
pub fn record_stay(
    conn: &mut DbConnection,
    thread: &Thread,
    step: FunnelStep,
    bookable_id: Uuid,
    value: Option<Money>,
) -> QueryResult<()> {
    insert(conn, thread, step, (None, Some(bookable_id)), value)
}

fn insert(
    conn: &mut DbConnection,
    thread: &Thread,
    step: FunnelStep,
    (product_id, bookable_id): (Option<Uuid>, Option<Uuid>),
    value: Option<Money>,
) -> QueryResult<()> {
    let touch = match thread.latest_touch_id {
        Some(id) => Some(conversations::touch(conn, id)?),
        None => None,
    };
    diesel::insert_into(funnel_events::table)
        .values((
            funnel_events::id.eq(DbUuid(Uuid::now_v7())),
            funnel_events::merchant_id.eq(thread.merchant_id),
            funnel_events::thread_id.eq(thread.id),
            funnel_events::kind.eq(step.as_str()),
            funnel_events::touch_id.eq(touch.as_ref().map(|t| t.id)),
            funnel_events::ad_id.eq(touch.as_ref().and_then(|t| t.ad_id.clone())),
            funnel_events::ref_.eq(touch.as_ref().and_then(|t| t.ref_.clone())),
            funnel_events::product_id.eq(product_id.map(DbUuid)),
            funnel_events::bookable_id.eq(bookable_id.map(DbUuid)),
            funnel_events::value_minor.eq(value.map(|v| v.minor())),
            funnel_events::currency.eq(value.map(|v| v.currency().code())),
            funnel_events::occurred_at.eq(now()),
        ))
        .execute(conn)?;
    Ok(())
}
