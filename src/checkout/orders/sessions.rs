//! An order's Checkout Session, as bookkeeping: the call to Stripe claimed before it is made (its
//! `Idempotency-Key` stored first), the session recorded once made, the orders to ask Stripe about, and
//! the sessions of ended orders to close. The calls to Stripe themselves are the payments service's.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::rows::{OrderRow, with_lines};
use super::{Order, OrderStatus, one_transaction};
use crate::db::schema::orders;
use crate::db::{DbConnection, now};
use crate::kernel::OrderId;

/// Stores the Checkout Session made for an order awaiting payment: its id, URL, expiry (which becomes
/// the end of the stock hold) and the attempt it was made with. False when the order no longer awaits
/// payment (superseded or expired meanwhile): the caller expires the session it just made.
pub fn record_session(
    conn: &mut DbConnection,
    order_id: OrderId,
    session_id: &str,
    url: &str,
    expires_at: NaiveDateTime,
    attempt: i32,
) -> QueryResult<bool> {
    let recorded = diesel::update(
        orders::table
            .filter(orders::id.eq(order_id))
            .filter(orders::status.eq(OrderStatus::AwaitingPayment.as_str())),
    )
    .set((
        orders::stripe_session_id.eq(session_id),
        orders::stripe_session_url.eq(url),
        orders::expires_at.eq(expires_at),
        orders::attempt.eq(attempt),
        orders::checked_at.eq(now()),
        orders::updated_at.eq(now()),
    ))
    .execute(conn)?;
    if recorded == 1 {
        crate::bookings::follow_order(conn, order_id, expires_at)?;
    }
    Ok(recorded == 1)
}

/// Orders of every merchant whose payment is not settled (awaiting payment with a session, or
/// processing) and that should be checked at Stripe now: those a shopper came back from Stripe's page
/// for (or never checked), and, with `stale_before`, those last checked before it. A webhook lost for
/// good still ends in the right state this way.
pub fn to_reconcile(
    conn: &mut DbConnection,
    stale_before: Option<NaiveDateTime>,
    limit: i64,
) -> QueryResult<Vec<Order>> {
    let unsettled = [
        OrderStatus::AwaitingPayment.as_str(),
        OrderStatus::Processing.as_str(),
    ];
    let mut query = orders::table
        .filter(orders::status.eq_any(unsettled))
        .filter(orders::stripe_session_id.is_not_null())
        .order(orders::id.asc())
        .limit(limit)
        .select(OrderRow::as_select())
        .into_boxed();
    query = match stale_before {
        Some(before) => query.filter(orders::checked_at.is_null().or(orders::checked_at.lt(before))),
        None => query.filter(orders::checked_at.is_null()),
    };
    let rows = query.load(conn)?;
    with_lines(conn, rows)
}

/// Stripe was asked about the order at `at`; `None` asks for a check as soon as possible (the shopper
/// came back from the payment page).
pub fn mark_checked(
    conn: &mut DbConnection,
    order_id: OrderId,
    at: Option<NaiveDateTime>,
) -> QueryResult<()> {
    diesel::update(orders::table.filter(orders::id.eq(order_id)))
        .set(orders::checked_at.eq(at))
        .execute(conn)?;
    Ok(())
}

/// Orders awaiting payment that have no Checkout Session yet, oldest first: the payments worker makes
/// theirs.
pub fn needing_session(conn: &mut DbConnection, limit: i64) -> QueryResult<Vec<Order>> {
    let rows = orders::table
        .filter(orders::status.eq(OrderStatus::AwaitingPayment.as_str()))
        .filter(orders::stripe_session_id.is_null())
        .order(orders::id.asc())
        .limit(limit)
        .select(OrderRow::as_select())
        .load(conn)?;
    with_lines(conn, rows)
}

/// A claimed call to Stripe to make an order's Checkout Session: the `Idempotency-Key` and session expiry
/// to send, and how many calls this one makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionTry {
    /// `order-<uuid>-checkout-<n>`.
    pub key: String,
    /// That `n`.
    pub attempt: i32,
    /// The session's `expires_at`.
    pub expires_at: NaiveDateTime,
    /// Calls made so far, this one included.
    pub tries: i32,
}

/// Claims the next call to Stripe for an order awaiting payment without a session: `session_tries` goes
/// from `seen` to `seen + 1` (and `updated_at` to now) in one conditional statement, so two workers never
/// make the same call at once. The request is repeated as it was while its key is in flight (the same
/// key and expiry: after a crash or a lost answer Stripe replays the session it made, so none is made
/// twice); a new key `order-<uuid>-checkout-<n+1>` with the expiry `new_expiry` is minted, and stored
/// before Stripe is called, when none is in flight. `None` when someone else claimed it, a session was
/// recorded, or the order no longer awaits payment.
pub fn claim_session_try(
    conn: &mut DbConnection,
    order_id: OrderId,
    seen: i32,
    new_expiry: NaiveDateTime,
) -> QueryResult<Option<SessionTry>> {
    one_transaction(conn, |conn| {
        let claimed = diesel::update(
            orders::table
                .filter(orders::id.eq(order_id))
                .filter(orders::status.eq(OrderStatus::AwaitingPayment.as_str()))
                .filter(orders::stripe_session_id.is_null())
                .filter(orders::session_tries.eq(seen)),
        )
        .set((
            orders::session_tries.eq(seen.saturating_add(1)),
            orders::updated_at.eq(now()),
        ))
        .execute(conn)?;
        if claimed == 0 {
            return Ok(None);
        }
        let (key, attempt, expires_at): (Option<String>, i32, Option<NaiveDateTime>) = orders::table
            .filter(orders::id.eq(order_id))
            .select((orders::session_key, orders::attempt, orders::expires_at))
            .first(conn)?;
        let tries = seen.saturating_add(1);
        if let (Some(key), Some(expires_at)) = (key, expires_at) {
            return Ok(Some(SessionTry {
                key,
                attempt,
                expires_at,
                tries,
            }));
        }
        let attempt = attempt.saturating_add(1);
        let key = format!("order-{order_id}-checkout-{attempt}");
        diesel::update(orders::table.filter(orders::id.eq(order_id)))
            .set((
                orders::session_key.eq(&key),
                orders::attempt.eq(attempt),
                orders::expires_at.eq(new_expiry),
            ))
            .execute(conn)?;
        Ok(Some(SessionTry {
            key,
            attempt,
            expires_at: new_expiry,
            tries,
        }))
    })
}

/// Gives up the key in flight: Stripe refused its request for good (its expiry, fixed when the key was
/// minted, is now too close), so the next call mints a new key with a new expiry. Safe because a
/// refused request made no session.
pub fn drop_session_key(conn: &mut DbConnection, order_id: OrderId) -> QueryResult<()> {
    diesel::update(orders::table.filter(orders::id.eq(order_id)))
        .set(orders::session_key.eq(None::<String>))
        .execute(conn)?;
    Ok(())
}

/// Orders of every merchant still awaiting payment whose hold ended at or before `at`, oldest first: the
/// sweeper asks Stripe about each session (it may have been paid at the last moment) before expiring it.
pub fn overdue(conn: &mut DbConnection, at: NaiveDateTime, limit: i64) -> QueryResult<Vec<Order>> {
    let rows = orders::table
        .filter(orders::status.eq(OrderStatus::AwaitingPayment.as_str()))
        .filter(orders::expires_at.le(at))
        .order((orders::expires_at.asc(), orders::id.asc()))
        .limit(limit)
        .select(OrderRow::as_select())
        .load(conn)?;
    with_lines(conn, rows)
}

/// Orders that ended (expired, payment failed) while their Checkout Session may still be open at
/// Stripe: the payments worker expires those sessions, so an old order can never be paid.
pub fn sessions_to_close(conn: &mut DbConnection, limit: i64) -> QueryResult<Vec<(OrderId, String)>> {
    let rows: Vec<(OrderId, Option<String>)> = orders::table
        .filter(orders::status.eq_any([OrderStatus::Expired.as_str(), OrderStatus::PaymentFailed.as_str()]))
        .filter(orders::stripe_session_id.is_not_null())
        .filter(orders::session_closed.eq(false))
        .order(orders::id.asc())
        .limit(limit)
        .select((orders::id, orders::stripe_session_id))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, s)| s.map(|s| (id, s)))
        .collect())
}

/// Remembers that the order's Checkout Session is closed at Stripe.
pub fn mark_session_closed(conn: &mut DbConnection, order_id: OrderId) -> QueryResult<()> {
    diesel::update(orders::table.filter(orders::id.eq(order_id)))
        .set(orders::session_closed.eq(true))
        .execute(conn)?;
    Ok(())
}
