//! Money going back: refunds recorded once per Stripe refund id (made through our API or in Stripe's
//! dashboard), never adding up to more than the order's total, and disputes flagged on the order.

use diesel::prelude::*;
use uuid::Uuid;

use super::moves::mark_refunded;
use super::rows::{corrupt, load, order_row};
use super::{LateSettlement, Order, OrderStatus, lock_order, one_transaction};
use crate::db::schema::{orders, refunds};
use crate::db::{DbConnection, DbUuid, now};
use crate::kernel::OrderId;
use crate::money::{Currency, Money};

/// Why a refund was not recorded. Nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum RefundError {
    /// No such order.
    #[error("order not found")]
    NotFound,
    /// The amount is not positive or not in the order's currency.
    #[error("a refund must be a positive amount in the order's currency")]
    InvalidAmount,
    /// Refunds would add up to more than the order's total.
    #[error("refunds would reach {refunded}, above the total of {total}")]
    AboveTotal {
        /// What the refunds would add up to.
        refunded: Money,
        /// The order's total.
        total: Money,
    },
    /// The database failed.
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

/// Records the full refund of a late payment that could not be honoured: the refund (as
/// [`record_refund`] does), then the order `refunded` with `late_payment = refunded`.
pub fn record_late_refund(
    conn: &mut DbConnection,
    order_id: OrderId,
    stripe_refund_id: &str,
    amount: Money,
    status: &str,
) -> Result<Order, RefundError> {
    one_transaction(conn, |conn| {
        record_refund(conn, order_id, stripe_refund_id, amount, status)?;
        diesel::update(
            orders::table
                .filter(orders::id.eq(order_id))
                .filter(orders::late_payment.eq(LateSettlement::RefundDue)),
        )
        .set((
            orders::status.eq(OrderStatus::Refunded.as_str()),
            orders::late_payment.eq(LateSettlement::Refunded),
            orders::updated_at.eq(now()),
        ))
        .execute(conn)?;
        Ok(load(conn, order_id)?)
    })
}

/// Marks or clears an open dispute on the order's payment. An unknown order is `NotFound`.
pub fn set_disputed(conn: &mut DbConnection, order_id: OrderId, disputed: bool) -> QueryResult<()> {
    let changed = diesel::update(orders::table.filter(orders::id.eq(order_id)))
        .set((orders::disputed.eq(disputed), orders::updated_at.eq(now())))
        .execute(conn)?;
    if changed == 0 {
        return Err(diesel::result::Error::NotFound);
    }
    Ok(())
}

/// Refund statuses (Stripe's) whose amount does not count as refunded.
const REFUND_NOT_COUNTED: [&str; 2] = ["failed", "canceled"];

/// Records a Stripe refund of the order, or a new status of one already recorded (by its Stripe id: a
/// repeated event changes nothing more), in one write transaction. The order's `refunded` becomes the sum
/// of its refunds that are not failed or canceled, never above the total (`AboveTotal`, nothing
/// recorded); its status moves to `partially_refunded` or, at the total, `refunded`, where the state
/// machine allows (an order never paid keeps its status but still records the money).
#[tracing::instrument(skip_all, fields(order.id = %order_id, refund.status = %status))]
pub fn record_refund(
    conn: &mut DbConnection,
    order_id: OrderId,
    stripe_refund_id: &str,
    amount: Money,
    status: &str,
) -> Result<Order, RefundError> {
    one_transaction(conn, |conn| {
        lock_order(conn, order_id)?;
        let row = order_row(conn, order_id)?.ok_or(RefundError::NotFound)?;
        let currency = row.currency()?;
        if amount.currency() != currency || amount.minor() <= 0 {
            return Err(RefundError::InvalidAmount);
        }
        let at = now();
        let known = diesel::update(
            refunds::table
                .filter(refunds::stripe_refund_id.eq(stripe_refund_id))
                .filter(refunds::order_id.eq(order_id)),
        )
        .set((refunds::status.eq(status), refunds::updated_at.eq(at)))
        .execute(conn)?;
        if known == 0 {
            diesel::insert_into(refunds::table)
                .values((
                    refunds::id.eq(DbUuid(Uuid::now_v7())),
                    refunds::merchant_id.eq(row.merchant_id),
                    refunds::order_id.eq(order_id),
                    refunds::stripe_refund_id.eq(stripe_refund_id),
                    refunds::amount_minor.eq(amount.minor()),
                    refunds::currency.eq(currency.code()),
                    refunds::status.eq(status),
                    refunds::created_at.eq(at),
                    refunds::updated_at.eq(at),
                ))
                .execute(conn)?;
        }
        let amounts: Vec<i64> = refunds::table
            .filter(refunds::order_id.eq(order_id))
            .filter(refunds::status.ne_all(REFUND_NOT_COUNTED))
            .select(refunds::amount_minor)
            .load(conn)?;
        let refunded = amounts.iter().try_fold(0_i64, |sum, a| sum.checked_add(*a));
        let total = Money::from_minor(row.total_minor, currency);
        let refunded = match refunded {
            Some(sum) if sum <= row.total_minor => sum,
            sum => {
                return Err(RefundError::AboveTotal {
                    refunded: Money::from_minor(sum.unwrap_or(i64::MAX), currency),
                    total,
                });
            }
        };
        diesel::update(orders::table.filter(orders::id.eq(order_id)))
            .set((orders::refunded_minor.eq(refunded), orders::updated_at.eq(at)))
            .execute(conn)?;
        // Reports net refunds out of revenue where the purchase was attributed.
        let delta = Money::from_minor(refunded - row.refunded_minor, currency);
        crate::attribution::record_refund(conn, order_id, delta, at)?;
        let next = if refunded == row.total_minor {
            OrderStatus::Refunded
        } else {
            OrderStatus::PartiallyRefunded
        };
        let current = row.status()?;
        if refunded > 0 && current != next && !mark_refunded(conn, &row, next, at)? {
            tracing::warn!(
                order.id = %order_id,
                order.status = %current,
                order.refunded_minor = refunded,
                "refund recorded on an order whose status does not move to {next}"
            );
        }
        let order = load(conn, order_id)?;
        // The shopper hears of money going back once, when it is first counted; a late payment's refund
        // has its own words (`notices::late_payment_refunded`).
        if delta.minor() > 0 && order.late_payment.is_none() && order.thread_id.is_some() {
            crate::conversations::notices::refunded(conn, &order, delta)?;
        }
        Ok(order)
    })
}

/// A refund of an order as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRefund {
    /// Id.
    pub id: Uuid,
    /// `re_...`, once Stripe made it.
    pub stripe_refund_id: Option<String>,
    /// Stripe's status when last heard of (`pending`, `succeeded`, `failed`, `canceled`).
    pub status: String,
    /// The amount.
    pub amount: Money,
    /// Why, when said: `duplicate`, `fraudulent` or `requested_by_customer`.
    pub reason: Option<String>,
    /// Recorded (UTC).
    pub created_at: chrono::NaiveDateTime,
}

/// The refunds of the merchant's order, oldest first (the order they were made in).
pub fn refunds_of(
    conn: &mut DbConnection,
    merchant_id: crate::kernel::MerchantId,
    order_id: OrderId,
) -> QueryResult<Vec<RecordedRefund>> {
    type Row = (
        DbUuid,
        Option<String>,
        String,
        i64,
        String,
        Option<String>,
        chrono::NaiveDateTime,
    );
    let rows: Vec<Row> = refunds::table
        .filter(refunds::order_id.eq(order_id))
        .filter(refunds::merchant_id.eq(merchant_id))
        .order(refunds::id.asc())
        .select((
            refunds::id,
            refunds::stripe_refund_id,
            refunds::status,
            refunds::amount_minor,
            refunds::currency,
            refunds::reason,
            refunds::created_at,
        ))
        .load(conn)?;
    rows.into_iter()
        .map(
            |(id, stripe_refund_id, status, minor, currency, reason, created_at)| {
                let currency = Currency::parse(&currency).map_err(|e| corrupt(e.to_string()))?;
                Ok(RecordedRefund {
                    id: id.0,
                    stripe_refund_id,
                    status,
                    amount: Money::from_minor(minor, currency),
                    reason,
                    created_at,
                })
            },
        )
        .collect()
}

/// A refund asked through the API under an `Idempotency-Key`, as recorded: Stripe's id, status and amount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedRefund {
    /// `re_...`.
    pub stripe_refund_id: String,
    /// Stripe's status when last heard of.
    pub status: String,
    /// The amount.
    pub amount: Money,
}

/// The refund of the order asked under the merchant's `request_key`, if one was made.
pub fn refund_by_request_key(
    conn: &mut DbConnection,
    order_id: OrderId,
    request_key: &str,
) -> QueryResult<Option<KeyedRefund>> {
    let row: Option<(Option<String>, String, i64, String)> = refunds::table
        .filter(refunds::order_id.eq(order_id))
        .filter(refunds::request_key.eq(request_key))
        .select((
            refunds::stripe_refund_id,
            refunds::status,
            refunds::amount_minor,
            refunds::currency,
        ))
        .first(conn)
        .optional()?;
    row.map(|(id, status, minor, currency)| {
        let currency = Currency::parse(&currency).map_err(|e| corrupt(e.to_string()))?;
        Ok(KeyedRefund {
            stripe_refund_id: id.unwrap_or_default(),
            status,
            amount: Money::from_minor(minor, currency),
        })
    })
    .transpose()
}

/// Remembers the merchant's `request_key` on the recorded refund `stripe_refund_id`.
pub fn set_refund_request_key(
    conn: &mut DbConnection,
    stripe_refund_id: &str,
    request_key: &str,
) -> QueryResult<()> {
    diesel::update(refunds::table.filter(refunds::stripe_refund_id.eq(stripe_refund_id)))
        .set(refunds::request_key.eq(request_key))
        .execute(conn)?;
    Ok(())
}
