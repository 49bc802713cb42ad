//! Stock reservations: units taken from `variants.stock` when an order is frozen, given back when it ends
//! unpaid, kept for good once it is paid. Each change is one conditional statement, so stock never goes
//! below zero and a reservation's units come back once, on either backend.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use uuid::Uuid;

use crate::db::schema::{reservations, variants};
use crate::db::{DbConnection, DbUuid};
use crate::kernel::{MerchantId, OrderId};

crate::text_state! {
    /// Where an order's units of one variant stand.
    ReservationStatus {
        /// Taken from the stock while the order awaits payment.
        Held = "held",
        /// Given back: the order ended unpaid.
        Released = "released",
        /// Kept for good: the order is paid.
        Committed = "committed",
    }
}

/// Takes `quantity` units of the merchant's variant in one conditional statement; false when fewer are
/// left (nothing taken).
pub(super) fn take_stock(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    variant_id: Uuid,
    quantity: i64,
    at: NaiveDateTime,
) -> QueryResult<bool> {
    let taken = diesel::update(
        variants::table
            .filter(variants::id.eq(DbUuid(variant_id)))
            .filter(variants::merchant_id.eq(merchant_id))
            .filter(variants::stock.ge(quantity)),
    )
    .set((
        variants::stock.eq(variants::stock - quantity),
        variants::updated_at.eq(at),
    ))
    .execute(conn)?;
    Ok(taken == 1)
}

/// Units left of the merchant's variant (0 when it left the catalog).
pub(super) fn stock_left(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    variant_id: Uuid,
) -> QueryResult<i64> {
    let stock: Option<i64> = variants::table
        .filter(variants::id.eq(DbUuid(variant_id)))
        .filter(variants::merchant_id.eq(merchant_id))
        .select(variants::stock)
        .first(conn)
        .optional()?;
    Ok(stock.unwrap_or(0).max(0))
}

/// Records the order's reservations, one `held` row per variant and its units (already taken with
/// [`take_stock`]).
pub(super) fn reserve(
    conn: &mut DbConnection,
    order_id: OrderId,
    units: impl IntoIterator<Item = (Uuid, i64)>,
    at: NaiveDateTime,
) -> QueryResult<()> {
    for (variant_id, quantity) in units {
        diesel::insert_into(reservations::table)
            .values((
                reservations::id.eq(DbUuid(Uuid::now_v7())),
                reservations::order_id.eq(order_id),
                reservations::variant_id.eq(DbUuid(variant_id)),
                reservations::quantity.eq(i32::try_from(quantity).unwrap_or(i32::MAX)),
                reservations::status.eq(ReservationStatus::Held),
                reservations::created_at.eq(at),
                reservations::updated_at.eq(at),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Gives back the stock of the order's held reservations. Each reservation is marked released with a
/// conditional update first, so its units come back once, whoever else releases it.
pub(super) fn release(conn: &mut DbConnection, order_id: OrderId, at: NaiveDateTime) -> QueryResult<()> {
    let held: Vec<(DbUuid, DbUuid, i32)> = reservations::table
        .filter(reservations::order_id.eq(order_id))
        .filter(reservations::status.eq(ReservationStatus::Held))
        .order(reservations::variant_id.asc())
        .select((reservations::id, reservations::variant_id, reservations::quantity))
        .load(conn)?;
    for (id, variant_id, quantity) in held {
        let released = diesel::update(
            reservations::table
                .filter(reservations::id.eq(id))
                .filter(reservations::status.eq(ReservationStatus::Held)),
        )
        .set((
            reservations::status.eq(ReservationStatus::Released),
            reservations::updated_at.eq(at),
        ))
        .execute(conn)?;
        if released == 1 {
            diesel::update(variants::table.filter(variants::id.eq(variant_id)))
                .set((
                    variants::stock.eq(variants::stock + i64::from(quantity)),
                    variants::updated_at.eq(at),
                ))
                .execute(conn)?;
        }
    }
    Ok(())
}

/// Keeps the order's held stock for good: it was sold.
pub(super) fn commit(conn: &mut DbConnection, order_id: OrderId, at: NaiveDateTime) -> QueryResult<()> {
    diesel::update(
        reservations::table
            .filter(reservations::order_id.eq(order_id))
            .filter(reservations::status.eq(ReservationStatus::Held)),
    )
    .set((
        reservations::status.eq(ReservationStatus::Committed),
        reservations::updated_at.eq(at),
    ))
    .execute(conn)?;
    Ok(())
}
