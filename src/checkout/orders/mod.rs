//! Orders: a thread's cart frozen at checkout (lines, unit prices and totals copied), its stock reserved
//! until Stripe says the payment succeeded (the reservation is committed) or did not (the stock is given
//! back), numbered per merchant (`CS-00042`), and moved only forward through a small state machine, so
//! that a Stripe event delivered twice or out of order has exactly one effect.
//!
//! Stock lives in `variants.stock` (units still sellable): reserving takes units away with one
//! conditional `UPDATE ... WHERE stock >= quantity`, which can never take it below zero on either backend,
//! and records a `reservations` row. No HTTP call happens here: the caller talks to Stripe before or after
//! these short transactions, never inside them.
//!
//! One file per thing that changes on its own: `freeze` (a cart into an order), `stock` (reservations),
//! `status` and `moves` (where an order stands and what each move does), `sessions` (its Checkout
//! Session's bookkeeping), `refunds` (refunds and disputes), `rows` (the row types and the queries that
//! read them). Callers use the names re-exported here.

mod freeze;
mod moves;
mod refunds;
mod rows;
mod sessions;
mod status;
mod stock;

use diesel::prelude::*;
use uuid::Uuid;

use crate::db::schema::{self, orders};
use crate::db::{DbConnection, DbUuid};
use crate::kernel::{MerchantId, OrderId, ThreadId};

pub use freeze::{
    CheckedOut, CheckoutRefusal, FALLBACK_PREFIX, HOLD_BEFORE_SESSION, checkout, fingerprint, format_number,
    number_prefix,
};
pub use moves::{LatePayment, MoveError, settle_late_payment, transition};
pub use refunds::{
    KeyedRefund, RecordedRefund, RefundError, record_late_refund, record_refund, refund_by_request_key,
    refunds_of, set_disputed, set_refund_request_key,
};
pub use rows::{
    Order, OrderLine, OrderQuery, customer_names, find_by_payment_intent, find_by_session, get, list,
    load_order, page_of, paid_in_thread, set_receipt,
};
pub use sessions::{
    SessionTry, claim_session_try, drop_session_key, mark_checked, mark_session_closed, needing_session,
    overdue, record_session, sessions_to_close, to_reconcile,
};
pub use status::{LateSettlement, OrderStatus};

// ---- transactions -------------------------------------------------------------------------------

/// The orders' write transactions: their own, or a savepoint of the caller's (a shopper's tap on Checkout
/// is applied inside the conversation's transaction).
fn one_transaction<T, E>(
    conn: &mut DbConnection,
    f: impl FnOnce(&mut DbConnection) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<diesel::result::Error>,
{
    crate::db::write_or_nested_transaction(conn, f)
}

// ---- locks --------------------------------------------------------------------------------------
//
// On PostgreSQL these no-op updates take the row's lock, so concurrent writers of one cart or one order
// queue up instead of both acting on what they read (SQLite's BEGIN IMMEDIATE already admits one writer).
// Every transaction here locks in the same order (cart, then orders, then variants by id), so two of
// them never wait on each other in a circle.

/// Locks the thread's open cart of the merchant; false when there is none.
fn lock_open_cart(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    thread_id: ThreadId,
) -> QueryResult<bool> {
    let locked = diesel::update(
        schema::carts::table
            .filter(schema::carts::thread_id.eq(thread_id))
            .filter(schema::carts::merchant_id.eq(merchant_id))
            .filter(schema::carts::status.eq(crate::carts::CartStatus::Open)),
    )
    .set(schema::carts::status.eq(schema::carts::status))
    .execute(conn)?;
    Ok(locked > 0)
}

fn lock_cart(conn: &mut DbConnection, cart_id: Uuid) -> QueryResult<()> {
    diesel::update(schema::carts::table.filter(schema::carts::id.eq(DbUuid(cart_id))))
        .set(schema::carts::status.eq(schema::carts::status))
        .execute(conn)?;
    Ok(())
}

fn lock_order(conn: &mut DbConnection, order_id: OrderId) -> QueryResult<()> {
    diesel::update(orders::table.filter(orders::id.eq(order_id)))
        .set(orders::status.eq(orders::status))
        .execute(conn)?;
    Ok(())
}
