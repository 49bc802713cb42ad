//! How an order moves: forward only, through [`OrderStatus`]'s state machine, each move with what it means
//! for stock, cart, discount code and stays; and a payment that arrives after the order had ended here.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::rows::{OrderRow, order_row};
use super::stock::{commit, release, take_stock};
use super::{LateSettlement, OrderStatus, lock_cart, lock_order, one_transaction};
use crate::bookings::BookingError;
use crate::db::schema::{self, order_lines, orders, reservations};
use crate::db::{DbConnection, DbUuid};
use crate::kernel::OrderId;

/// The columns a status move sets; `None` leaves a column alone.
#[derive(AsChangeset)]
#[diesel(table_name = orders)]
struct StatusMove<'a> {
    status: &'a str,
    updated_at: NaiveDateTime,
    paid_at: Option<NaiveDateTime>,
    stripe_payment_intent_id: Option<&'a str>,
}

/// Why an order did not move. Nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    /// A stay the order pays for can no longer be booked: its hold ended before the order's and another
    /// shopper took the last room. The payment is settled as a late one once the order expires.
    #[error("a stay the order pays for can no longer be booked")]
    StayTaken(#[source] BookingError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

/// Sets `row`'s status to `next` if the state machine allows it and nobody moved it first; `paid_at` is
/// set with `paid`, `payment_intent` stored when given. Call inside a write transaction.
fn set_status(
    conn: &mut DbConnection,
    row: &OrderRow,
    next: OrderStatus,
    payment_intent: Option<&str>,
    at: NaiveDateTime,
) -> QueryResult<bool> {
    let current = row.status()?;
    if !current.can_become(next) {
        return Ok(false);
    }
    let moved = diesel::update(
        orders::table
            .filter(orders::id.eq(row.id))
            .filter(orders::status.eq(current.as_str())),
    )
    .set(StatusMove {
        status: next.as_str(),
        updated_at: at,
        paid_at: (next == OrderStatus::Paid).then_some(at),
        stripe_payment_intent_id: payment_intent,
    })
    .execute(conn)?;
    if moved == 0 {
        return Ok(false);
    }
    tracing::info!(order.id = %row.id, from = %current, to = %next, "order moved");
    Ok(true)
}

/// Moves `row` to `next` (see [`set_status`]) with what the move means for stock, cart, discount and
/// stays. Call inside a write transaction: a paid order whose stay is taken (`StayTaken`) leaves it to
/// be rolled back.
fn apply(
    conn: &mut DbConnection,
    row: &OrderRow,
    next: OrderStatus,
    payment_intent: Option<&str>,
    at: NaiveDateTime,
) -> Result<bool, MoveError> {
    if !set_status(conn, row, next, payment_intent, at)? {
        return Ok(false);
    }
    match next {
        OrderStatus::Paid => {
            commit(conn, row.id, at)?;
            confirm_stays(conn, row.id)?;
            close_cart_and_redeem(conn, row, at)?;
        }
        OrderStatus::Expired | OrderStatus::PaymentFailed => give_back(conn, row, at)?,
        OrderStatus::AwaitingPayment
        | OrderStatus::Processing
        | OrderStatus::PartiallyRefunded
        | OrderStatus::Refunded => {}
    }
    Ok(true)
}

/// Expires `row` (a newer cart content supersedes it) and gives its stock and stays back; false when it
/// had moved already. Call inside a write transaction.
pub(super) fn expire(conn: &mut DbConnection, row: &OrderRow, at: NaiveDateTime) -> QueryResult<bool> {
    if !set_status(conn, row, OrderStatus::Expired, None, at)? {
        return Ok(false);
    }
    give_back(conn, row, at)?;
    Ok(true)
}

/// Moves `row` to a refund status (`partially_refunded`, `refunded`): nothing else changes with it.
pub(super) fn mark_refunded(
    conn: &mut DbConnection,
    row: &OrderRow,
    next: OrderStatus,
    at: NaiveDateTime,
) -> QueryResult<bool> {
    debug_assert!(matches!(
        next,
        OrderStatus::PartiallyRefunded | OrderStatus::Refunded
    ));
    set_status(conn, row, next, None, at)
}

/// An order that ended unpaid gives its stock and its stays back.
fn give_back(conn: &mut DbConnection, row: &OrderRow, at: NaiveDateTime) -> QueryResult<()> {
    release(conn, row.id, at)?;
    crate::bookings::release_order(conn, row.id)?;
    Ok(())
}

/// Books the stays the order pays for. A stay whose nights went meanwhile (its hold ended before the
/// order's, and another shopper took the last room) is `StayTaken`: nothing is booked once the caller's
/// transaction rolls back, and the payment is settled as a late one once the order expires.
fn confirm_stays(conn: &mut DbConnection, order_id: OrderId) -> Result<(), MoveError> {
    match crate::bookings::confirm_order(conn, order_id) {
        Ok(()) => Ok(()),
        Err(BookingError::Db(e)) => Err(e.into()),
        Err(e) => {
            tracing::warn!(order.id = %order_id, error = %e, "a paid stay could not be booked");
            Err(MoveError::StayTaken(e))
        }
    }
}

/// What payment means for the order's cart and code: the cart is done, the code redeemed.
fn close_cart_and_redeem(conn: &mut DbConnection, row: &OrderRow, at: NaiveDateTime) -> QueryResult<()> {
    if let Some(cart_id) = row.cart_id {
        // The order's lines are what was bought; lines the shopper added afterwards go with the cart,
        // which is done either way.
        diesel::update(
            schema::carts::table
                .filter(schema::carts::id.eq(cart_id))
                .filter(schema::carts::status.eq(crate::carts::CartStatus::Open)),
        )
        .set((
            schema::carts::status.eq(crate::carts::CartStatus::CheckedOut),
            schema::carts::updated_at.eq(at),
        ))
        .execute(conn)?;
    }
    if let Some(discount_id) = row.discount_id
        && !crate::discounts::redeem(conn, row.merchant_id, discount_id.0)?
    {
        tracing::warn!(
            order.id = %row.id,
            discount.id = %discount_id.0,
            "discount code used up before this order was paid; the order keeps its discount"
        );
    }
    Ok(())
}

/// What [`settle_late_payment`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatePayment {
    /// The order had not ended here (it awaits payment, or is paid or refunded already): nothing to settle.
    NotLate,
    /// Its stock could be taken again: the order is paid after all.
    Honoured,
    /// Some of its stock is gone: the payment goes back in full (then [`super::record_late_refund`]).
    RefundDue,
}

/// Settles a payment Stripe took for an order that had already ended here (expired, superseded, failed):
/// its payment page outlived our hold, or the shopper paid while the sweeper was expiring it. The
/// shopper's money is never kept without the goods, and goods are never sold twice: if every unit the
/// order held can be taken from the stock again, the order is paid after all, as if on time (stock
/// committed, cart closed, code redeemed, `late_payment = honoured`); if not, it is marked for a full
/// refund (`refund_due`), which is then final, so a refund sent to Stripe is never followed by a change
/// of mind. One write transaction; repeating it changes nothing more.
#[tracing::instrument(skip_all, fields(order.id = %order_id))]
pub fn settle_late_payment(
    conn: &mut DbConnection,
    order_id: OrderId,
    payment_intent: Option<&str>,
    at: NaiveDateTime,
) -> QueryResult<LatePayment> {
    one_transaction(conn, |conn| {
        let cart_id: Option<DbUuid> = orders::table
            .filter(orders::id.eq(order_id))
            .select(orders::cart_id)
            .first(conn)?;
        if let Some(cart_id) = cart_id {
            lock_cart(conn, cart_id.0)?;
        }
        lock_order(conn, order_id)?;
        let row = order_row(conn, order_id)?.ok_or(diesel::result::Error::NotFound)?;
        if !matches!(row.status()?, OrderStatus::Expired | OrderStatus::PaymentFailed) {
            return Ok(LatePayment::NotLate);
        }
        if row.late_payment == Some(LateSettlement::RefundDue) {
            return Ok(LatePayment::RefundDue);
        }
        let intent = payment_intent.or(row.stripe_payment_intent_id.as_deref());
        let retaken = conn.transaction(|conn| retake_stock(conn, &row, at));
        let outcome = match retaken {
            Ok(()) => LatePayment::Honoured,
            Err(Retake::Gone) => LatePayment::RefundDue,
            Err(Retake::Db(e)) => return Err(e),
        };
        let status = match outcome {
            LatePayment::Honoured => OrderStatus::Paid,
            _ => row.status()?,
        };
        diesel::update(orders::table.filter(orders::id.eq(row.id)))
            .set((
                orders::status.eq(status.as_str()),
                orders::late_payment.eq(if outcome == LatePayment::Honoured {
                    LateSettlement::Honoured
                } else {
                    LateSettlement::RefundDue
                }),
                orders::stripe_payment_intent_id.eq(intent),
                orders::paid_at.eq((outcome == LatePayment::Honoured).then_some(at)),
                orders::updated_at.eq(at),
            ))
            .execute(conn)?;
        if outcome == LatePayment::Honoured {
            close_cart_and_redeem(conn, &row, at)?;
        }
        tracing::warn!(order.id = %order_id, outcome = ?outcome, "payment arrived after the order had ended");
        Ok(outcome)
    })
}

/// Why a late payment's goods cannot be sold to it after all.
#[derive(Debug, thiserror::Error)]
enum Retake {
    /// A line's variant left the catalog, a variant lacks the units, or a stay's nights are gone.
    #[error("some of the order's goods are gone")]
    Gone,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

impl From<MoveError> for Retake {
    fn from(e: MoveError) -> Self {
        match e {
            MoveError::StayTaken(_) => Retake::Gone,
            MoveError::Db(e) => Retake::Db(e),
        }
    }
}

/// Takes the units of the order's released reservations from the stock again and commits them, and
/// books its stays; `Gone` when any of it cannot be had (the caller's savepoint undoes what was taken).
fn retake_stock(conn: &mut DbConnection, row: &OrderRow, at: NaiveDateTime) -> Result<(), Retake> {
    let orphan_lines: i64 = order_lines::table
        .filter(order_lines::order_id.eq(row.id))
        .filter(order_lines::variant_id.is_null())
        .filter(order_lines::booking_id.is_null())
        .count()
        .get_result(conn)?;
    if orphan_lines > 0 {
        return Err(Retake::Gone);
    }
    let released: Vec<(DbUuid, DbUuid, i32)> = reservations::table
        .filter(reservations::order_id.eq(row.id))
        .filter(reservations::status.eq(super::stock::ReservationStatus::Released))
        .order(reservations::variant_id.asc())
        .select((reservations::id, reservations::variant_id, reservations::quantity))
        .load(conn)?;
    confirm_stays(conn, row.id)?;
    for (id, variant_id, quantity) in released {
        if !take_stock(conn, row.merchant_id, variant_id.0, i64::from(quantity), at)? {
            return Err(Retake::Gone);
        }
        diesel::update(reservations::table.filter(reservations::id.eq(id)))
            .set((
                reservations::status.eq(super::stock::ReservationStatus::Committed),
                reservations::updated_at.eq(at),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Moves an order forward, in one write transaction; returns whether it moved. A move the state machine
/// forbids, or a repeat of the current status, changes nothing (`Ok(false)`), so Stripe events delivered
/// twice or out of order have one effect. `paid`: reservations committed (the stock stays taken), the
/// cart closed (`checked_out`), the discount code redeemed (an exhausted code is logged, the order stays
/// paid), `paid_at` set. `expired` and `payment_failed`: stock given back, the cart left open.
/// `payment_intent`, when given, is stored. An unknown order is `Db(NotFound)`; a paid order whose stay
/// can no longer be booked is `StayTaken`, and nothing changes.
#[tracing::instrument(skip_all, fields(order.id = %order_id, order.next = %next))]
pub fn transition(
    conn: &mut DbConnection,
    order_id: OrderId,
    next: OrderStatus,
    payment_intent: Option<&str>,
    at: NaiveDateTime,
) -> Result<bool, MoveError> {
    one_transaction(conn, |conn| {
        if next == OrderStatus::Paid {
            // The cart before the order, as in `checkout`.
            let cart_id: Option<DbUuid> = orders::table
                .filter(orders::id.eq(order_id))
                .select(orders::cart_id)
                .first(conn)?;
            if let Some(cart_id) = cart_id {
                lock_cart(conn, cart_id.0)?;
            }
        }
        lock_order(conn, order_id)?;
        let row = order_row(conn, order_id)?.ok_or(diesel::result::Error::NotFound)?;
        apply(conn, &row, next, payment_intent, at)
    })
}
