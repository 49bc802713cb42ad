//! Holds and bookings: a stay takes its nights when held, keeps them when confirmed (paid), and gives
//! them back when it expires, is released or is cancelled. Every status move is a conditional update
//! from the status read, so whoever else moves the same booking at the same time, its nights move once.

use std::fmt;

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use uuid::Uuid;

use super::bookables::{self, corrupt, int};
use super::inventory::{self, Taken};
use super::stay::{StayDates, local_today};
use crate::db::schema::bookings;
use crate::db::{DbConnection, DbUuid, now, write_or_nested_transaction};
use crate::kernel::{MerchantId, OrderId, ThreadId};
use crate::money::{Currency, Money};

/// Where a booking stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BookingStatus {
    /// Nights taken until `expires_at`, waiting for payment.
    Held,
    /// Paid: nights booked.
    Confirmed,
    /// Not paid in time: nights given back.
    Expired,
    /// Given up before payment (the shopper changed the stay): nights given back.
    Released,
    /// Cancelled by the merchant: nights given back.
    Cancelled,
}

impl BookingStatus {
    /// Every status.
    pub const ALL: [BookingStatus; 5] = [
        BookingStatus::Held,
        BookingStatus::Confirmed,
        BookingStatus::Expired,
        BookingStatus::Released,
        BookingStatus::Cancelled,
    ];

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            BookingStatus::Held => "held",
            BookingStatus::Confirmed => "confirmed",
            BookingStatus::Expired => "expired",
            BookingStatus::Released => "released",
            BookingStatus::Cancelled => "cancelled",
        }
    }

    /// The status named `name`.
    pub fn parse(name: &str) -> Option<BookingStatus> {
        BookingStatus::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for BookingStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A held or booked stay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Booking {
    /// Id.
    pub id: Uuid,
    /// The merchant.
    pub merchant_id: MerchantId,
    /// The room type.
    pub bookable_id: Uuid,
    /// The Messenger thread it was booked in, if any.
    pub thread_id: Option<ThreadId>,
    /// The order paying for it, once checkout made one.
    pub order_id: Option<OrderId>,
    /// Arrival and nights.
    pub stay: StayDates,
    /// Guests.
    pub guests: u32,
    /// Where it stands.
    pub status: BookingStatus,
    /// The price of the stay when it was held.
    pub total: Money,
    /// When an unpaid hold gives its nights back (UTC).
    pub expires_at: NaiveDateTime,
    /// Created (UTC).
    pub created_at: NaiveDateTime,
    /// Last changed (UTC).
    pub updated_at: NaiveDateTime,
    /// How the guest was reminded the day before arrival (`crate::conversations::notices::Told`).
    pub reminder: Option<String>,
    /// When (none while held).
    pub reminded_at: Option<NaiveDateTime>,
}

/// A stay to hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldRequest {
    /// The room type.
    pub bookable_id: Uuid,
    /// Arrival and nights.
    pub stay: StayDates,
    /// Guests.
    pub guests: u32,
    /// The thread asking, if any.
    pub thread_id: Option<ThreadId>,
    /// When the hold gives its nights back unless confirmed (UTC).
    pub expires_at: NaiveDateTime,
}

/// Why a stay could not be held.
#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    /// No such bookable for this merchant, or it is not offered.
    #[error("bookable not found")]
    BookableNotFound,
    /// Zero guests, or more than the bookable takes.
    #[error("the room takes 1 to {max} guests")]
    Guests {
        /// The bookable's limit.
        max: u32,
    },
    /// Fewer or more nights than the bookable allows.
    #[error("stays are {min} to {max} nights")]
    Nights {
        /// Shortest stay.
        min: u32,
        /// Longest stay.
        max: u32,
    },
    /// The arrival date is already past in the property's timezone.
    #[error("the arrival date is past")]
    ArrivalPassed,
    /// Some night has no unit free (nothing was taken).
    #[error("not available for these dates")]
    Unavailable,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
    /// The database could not be reached.
    #[error(transparent)]
    DbUnavailable(#[from] crate::db::DbError),
}

/// Why a booking could not move.
#[derive(Debug, thiserror::Error)]
pub enum BookingError {
    /// No such booking (for this merchant).
    #[error("booking not found")]
    NotFound,
    /// The booking's status does not allow it.
    #[error("the booking is {0}")]
    WrongStatus(BookingStatus),
    /// Already confirmed by another order.
    #[error("the booking is confirmed by another order")]
    OtherOrder,
    /// Paid after the hold had ended, and the nights have gone meanwhile.
    #[error("the nights are no longer available")]
    NoLongerAvailable,
    /// A refund was asked for a booking without a paid order.
    #[error("the booking has no paid order to refund")]
    NothingToRefund,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
    /// The database could not be reached.
    #[error(transparent)]
    Unavailable(#[from] crate::db::DbError),
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct BookingQuery {
    /// Where the page starts and which way it reads.
    pub page: crate::db::Keyset,
    /// Page size.
    pub limit: i64,
    /// Only this status.
    pub status: Option<BookingStatus>,
    /// Only stays with a night on or after this date.
    pub from: Option<NaiveDate>,
    /// Only stays with a night before this date.
    pub to: Option<NaiveDate>,
    /// Only this room type.
    pub bookable_id: Option<Uuid>,
    /// Only stays booked in this thread.
    pub thread_id: Option<ThreadId>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = bookings)]
struct BookingRow {
    id: DbUuid,
    merchant_id: MerchantId,
    bookable_id: DbUuid,
    thread_id: Option<ThreadId>,
    order_id: Option<OrderId>,
    arrival: NaiveDate,
    nights: i32,
    guests: i32,
    status: String,
    total_minor: i64,
    currency: String,
    expires_at: NaiveDateTime,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    reminder: Option<String>,
    reminded_at: Option<NaiveDateTime>,
}

impl TryFrom<BookingRow> for Booking {
    type Error = diesel::result::Error;

    fn try_from(row: BookingRow) -> QueryResult<Booking> {
        let status = BookingStatus::parse(&row.status)
            .ok_or_else(|| corrupt(format!("unknown booking status `{}`", row.status)))?;
        let currency = Currency::parse(&row.currency).map_err(|e| corrupt(e.to_string()))?;
        let nights = u32::try_from(row.nights).map_err(|e| corrupt(e.to_string()))?;
        let stay = StayDates::new(row.arrival, nights).map_err(|e| corrupt(e.to_string()))?;
        Ok(Booking {
            id: row.id.0,
            merchant_id: row.merchant_id,
            bookable_id: row.bookable_id.0,
            thread_id: row.thread_id,
            order_id: row.order_id,
            stay,
            guests: u32::try_from(row.guests).map_err(|e| corrupt(e.to_string()))?,
            status,
            total: Money::from_minor(row.total_minor, currency),
            expires_at: row.expires_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
            reminder: row.reminder,
            reminded_at: row.reminded_at,
        })
    }
}

fn load(conn: &mut DbConnection, id: Uuid) -> QueryResult<Option<Booking>> {
    bookings::table
        .filter(bookings::id.eq(DbUuid(id)))
        .select(BookingRow::as_select())
        .first(conn)
        .optional()?
        .map(Booking::try_from)
        .transpose()
}

/// Moves the booking from `from` to `to` if it is still `from`; false when someone moved it first.
fn move_status(
    conn: &mut DbConnection,
    id: Uuid,
    from: BookingStatus,
    to: BookingStatus,
    at: NaiveDateTime,
) -> QueryResult<bool> {
    let moved = diesel::update(
        bookings::table
            .filter(bookings::id.eq(DbUuid(id)))
            .filter(bookings::status.eq(from.as_str())),
    )
    .set((bookings::status.eq(to.as_str()), bookings::updated_at.eq(at)))
    .execute(conn)?;
    Ok(moved == 1)
}

fn reload(conn: &mut DbConnection, id: Uuid) -> Result<Booking, BookingError> {
    load(conn, id)?.ok_or(BookingError::NotFound)
}

/// Holds every night of a stay in the merchant's bookable, or none: one write transaction (a savepoint
/// of the caller's when one is open) that locks the bookable, checks its rules, prices the stay and takes
/// a unit of each night with one conditional update.
#[tracing::instrument(skip_all, fields(merchant.id = %merchant_id, bookable.id = %request.bookable_id, stay.nights = request.stay.nights()))]
pub fn hold(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    request: &HoldRequest,
) -> Result<Booking, HoldError> {
    let HoldRequest {
        bookable_id,
        stay,
        guests,
        thread_id,
        expires_at,
    } = *request;
    write_or_nested_transaction(conn, |conn| {
        if !bookables::lock(conn, merchant_id, bookable_id)? {
            return Err(HoldError::BookableNotFound);
        }
        let bookable = bookables::get(conn, merchant_id, bookable_id)?
            .filter(|b| b.spec.active)
            .ok_or(HoldError::BookableNotFound)?;
        let spec = &bookable.spec;
        if guests == 0 || guests > spec.max_guests {
            return Err(HoldError::Guests { max: spec.max_guests });
        }
        if !(spec.min_nights..=spec.max_nights).contains(&stay.nights()) {
            return Err(HoldError::Nights {
                min: spec.min_nights,
                max: spec.max_nights,
            });
        }
        let at = now();
        if stay.arrival() < local_today(spec.timezone, at) {
            return Err(HoldError::ArrivalPassed);
        }
        let quote = inventory::price_of(conn, &bookable, stay)?;
        if !inventory::take(conn, bookable_id, spec.units, stay, Taken::Held)? {
            return Err(HoldError::Unavailable);
        }
        let id = Uuid::now_v7();
        diesel::insert_into(bookings::table)
            .values((
                bookings::id.eq(DbUuid(id)),
                bookings::merchant_id.eq(merchant_id),
                bookings::bookable_id.eq(DbUuid(bookable_id)),
                bookings::thread_id.eq(thread_id),
                bookings::arrival.eq(stay.arrival()),
                bookings::departure.eq(stay.departure()),
                bookings::nights.eq(int(stay.nights())),
                bookings::guests.eq(int(guests)),
                bookings::status.eq(BookingStatus::Held.as_str()),
                bookings::total_minor.eq(quote.total.minor()),
                bookings::currency.eq(quote.total.currency().code()),
                bookings::expires_at.eq(expires_at),
                bookings::created_at.eq(at),
                bookings::updated_at.eq(at),
            ))
            .execute(conn)?;
        tracing::info!(booking.id = %id, "stay held");
        Ok(load(conn, id)?.ok_or(diesel::result::Error::NotFound)?)
    })
}

/// Sets the price of a held stay (an upgrade at a fixed difference per night is not the rates' price).
pub fn reprice(conn: &mut DbConnection, booking_id: Uuid, total: Money) -> QueryResult<()> {
    diesel::update(
        bookings::table
            .filter(bookings::id.eq(DbUuid(booking_id)))
            .filter(bookings::status.eq(BookingStatus::Held.as_str())),
    )
    .set((
        bookings::total_minor.eq(total.minor()),
        bookings::currency.eq(total.currency().code()),
        bookings::updated_at.eq(now()),
    ))
    .execute(conn)?;
    Ok(())
}

/// Unties held stays from the order they were checked out with, so that a new order of the same cart
/// takes them over instead of giving their nights back with the old one.
pub fn detach(conn: &mut DbConnection, booking_ids: &[Uuid]) -> QueryResult<()> {
    diesel::update(
        bookings::table
            .filter(bookings::id.eq_any(booking_ids.iter().copied().map(DbUuid)))
            .filter(bookings::status.eq(BookingStatus::Held.as_str())),
    )
    .set(bookings::order_id.eq(None::<DbUuid>))
    .execute(conn)?;
    Ok(())
}

/// Confirms every stay an order pays for; `NoLongerAvailable` when one's nights went meanwhile (the
/// caller's transaction then undoes the others).
pub fn confirm_order(conn: &mut DbConnection, order_id: OrderId) -> Result<(), BookingError> {
    for booking in of_order(conn, order_id)? {
        let booking = confirm(conn, booking.id, order_id)?;
        crate::followups::reminders::plan(conn, &booking)?;
    }
    Ok(())
}

/// Gives back the nights of the held stays an order paid for no more (expired, failed).
pub fn release_order(conn: &mut DbConnection, order_id: OrderId) -> QueryResult<()> {
    for booking in of_order(conn, order_id)? {
        if booking.status == BookingStatus::Held {
            // Released, or gone or no longer held meanwhile: nothing left to give back. Only the
            // database's failure is one.
            if let Err(BookingError::Db(e)) = release(conn, booking.id) {
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Moves the expiry of the held stays an order pays for to the order's (its Checkout Session's).
pub fn follow_order(
    conn: &mut DbConnection,
    order_id: OrderId,
    expires_at: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(
        bookings::table
            .filter(bookings::order_id.eq(order_id))
            .filter(bookings::status.eq(BookingStatus::Held.as_str())),
    )
    .set((
        bookings::expires_at.eq(expires_at),
        bookings::updated_at.eq(now()),
    ))
    .execute(conn)?;
    Ok(())
}

/// Ties a held stay to the order paying for it and moves its expiry to the order's (the Checkout
/// Session's); refused unless the stay is still held.
pub fn attach_to_order(
    conn: &mut DbConnection,
    booking_id: Uuid,
    order_id: OrderId,
    expires_at: NaiveDateTime,
) -> Result<Booking, BookingError> {
    let attached = diesel::update(
        bookings::table
            .filter(bookings::id.eq(DbUuid(booking_id)))
            .filter(bookings::status.eq(BookingStatus::Held.as_str())),
    )
    .set((
        bookings::order_id.eq(Some(order_id)),
        bookings::expires_at.eq(expires_at),
        bookings::updated_at.eq(now()),
    ))
    .execute(conn)?;
    let booking = reload(conn, booking_id)?;
    if attached == 0 {
        return Err(BookingError::WrongStatus(booking.status));
    }
    Ok(booking)
}

/// Confirms a stay paid by `order_id`: its held nights become booked. Paid after its hold ended (expired
/// or released), it takes its nights again if they are still free, or answers `NoLongerAvailable` so
/// that the payment is settled by hand. Confirming twice with the same order changes nothing.
#[tracing::instrument(skip_all, fields(booking.id = %booking_id, order.id = %order_id))]
pub fn confirm(
    conn: &mut DbConnection,
    booking_id: Uuid,
    order_id: OrderId,
) -> Result<Booking, BookingError> {
    write_or_nested_transaction(conn, |conn| {
        let booking = reload(conn, booking_id)?;
        let at = now();
        let set_order = |conn: &mut DbConnection| {
            diesel::update(bookings::table.filter(bookings::id.eq(DbUuid(booking_id))))
                .set(bookings::order_id.eq(Some(order_id)))
                .execute(conn)
        };
        match booking.status {
            BookingStatus::Confirmed if booking.order_id == Some(order_id) => return Ok(booking),
            BookingStatus::Confirmed => return Err(BookingError::OtherOrder),
            BookingStatus::Cancelled => return Err(BookingError::WrongStatus(booking.status)),
            BookingStatus::Held => {
                if !move_status(
                    conn,
                    booking_id,
                    BookingStatus::Held,
                    BookingStatus::Confirmed,
                    at,
                )? {
                    return Err(BookingError::WrongStatus(reload(conn, booking_id)?.status));
                }
                inventory::book_held(conn, booking.bookable_id, booking.stay)?;
            }
            BookingStatus::Expired | BookingStatus::Released => {
                let bookable = bookables::lock(conn, booking.merchant_id, booking.bookable_id)?
                    .then(|| bookables::get(conn, booking.merchant_id, booking.bookable_id))
                    .transpose()?
                    .flatten()
                    .ok_or(BookingError::NoLongerAvailable)?;
                if !move_status(conn, booking_id, booking.status, BookingStatus::Confirmed, at)? {
                    return Err(BookingError::WrongStatus(reload(conn, booking_id)?.status));
                }
                let units = bookable.spec.units;
                if !inventory::take(conn, booking.bookable_id, units, booking.stay, Taken::Booked)? {
                    return Err(BookingError::NoLongerAvailable);
                }
            }
        }
        set_order(conn)?;
        tracing::info!("stay confirmed");
        reload(conn, booking_id)
    })
}

/// Gives a held stay's nights back before it expires (the shopper chose other dates or another room).
/// Releasing a stay already expired or released changes nothing; a confirmed or cancelled one is refused.
pub fn release(conn: &mut DbConnection, booking_id: Uuid) -> Result<Booking, BookingError> {
    write_or_nested_transaction(conn, |conn| {
        let booking = reload(conn, booking_id)?;
        match booking.status {
            BookingStatus::Expired | BookingStatus::Released => Ok(booking),
            BookingStatus::Confirmed | BookingStatus::Cancelled => {
                Err(BookingError::WrongStatus(booking.status))
            }
            BookingStatus::Held => {
                if move_status(
                    conn,
                    booking_id,
                    BookingStatus::Held,
                    BookingStatus::Released,
                    now(),
                )? {
                    inventory::give_back(conn, booking.bookable_id, booking.stay, Taken::Held)?;
                }
                reload(conn, booking_id)
            }
        }
    })
}

/// Cancels the merchant's held or confirmed booking and gives its nights back; cancelling twice
/// changes nothing. (A refund, when asked, is made through Stripe by the payments service first.)
#[tracing::instrument(skip_all, fields(merchant.id = %merchant_id, booking.id = %booking_id))]
pub fn cancel(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    booking_id: Uuid,
) -> Result<Booking, BookingError> {
    write_or_nested_transaction(conn, |conn| {
        let booking = get_booking(conn, merchant_id, booking_id)?.ok_or(BookingError::NotFound)?;
        let taken = match booking.status {
            BookingStatus::Cancelled => return Ok(booking),
            BookingStatus::Expired | BookingStatus::Released => {
                return Err(BookingError::WrongStatus(booking.status));
            }
            BookingStatus::Held => Taken::Held,
            BookingStatus::Confirmed => Taken::Booked,
        };
        if !move_status(conn, booking_id, booking.status, BookingStatus::Cancelled, now())? {
            return Err(BookingError::WrongStatus(reload(conn, booking_id)?.status));
        }
        inventory::give_back(conn, booking.bookable_id, booking.stay, taken)?;
        tracing::info!("booking cancelled");
        if taken == Taken::Booked {
            crate::followups::reminders::cancelled(conn, merchant_id, booking_id)?;
        }
        reload(conn, booking_id)
    })
}

/// The most holds one sweep expires.
const EXPIRE_BATCH: i64 = 500;

/// Expires the holds whose time has come at `at`, giving their nights back; returns how many.
pub fn expire_holds(conn: &mut DbConnection, at: NaiveDateTime) -> QueryResult<usize> {
    let due: Vec<(DbUuid, DbUuid, NaiveDate, i32)> = bookings::table
        .filter(bookings::status.eq(BookingStatus::Held.as_str()))
        .filter(bookings::expires_at.le(at))
        .order(bookings::expires_at.asc())
        .limit(EXPIRE_BATCH)
        .select((
            bookings::id,
            bookings::bookable_id,
            bookings::arrival,
            bookings::nights,
        ))
        .load(conn)?;
    let mut expired = 0;
    for (id, bookable_id, arrival, nights) in due {
        let stay = u32::try_from(nights)
            .ok()
            .and_then(|n| StayDates::new(arrival, n).ok())
            .ok_or_else(|| corrupt(format!("booking {} has bad dates", id.0)))?;
        let moved = write_or_nested_transaction(conn, |conn| {
            // Still held and still due: a confirmation or a later expiry may have come meanwhile.
            let moved = diesel::update(
                bookings::table
                    .filter(bookings::id.eq(id))
                    .filter(bookings::status.eq(BookingStatus::Held.as_str()))
                    .filter(bookings::expires_at.le(at)),
            )
            .set((
                bookings::status.eq(BookingStatus::Expired.as_str()),
                bookings::updated_at.eq(now()),
            ))
            .execute(conn)?;
            if moved == 1 {
                inventory::give_back(conn, bookable_id.0, stay, Taken::Held)?;
            }
            Ok::<_, diesel::result::Error>(moved == 1)
        })?;
        if moved {
            expired += 1;
        }
    }
    if expired > 0 {
        tracing::info!(bookings.expired = expired, "holds expired");
    }
    Ok(expired)
}

/// The merchant's booking.
pub fn get_booking(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    id: Uuid,
) -> QueryResult<Option<Booking>> {
    Ok(load(conn, id)?.filter(|b| b.merchant_id == merchant_id))
}

/// The bookings an order pays for.
pub fn of_order(conn: &mut DbConnection, order_id: OrderId) -> QueryResult<Vec<Booking>> {
    bookings::table
        .filter(bookings::order_id.eq(order_id))
        .order(bookings::id.asc())
        .select(BookingRow::as_select())
        .load(conn)?
        .into_iter()
        .map(Booking::try_from)
        .collect()
}

/// A page of the merchant's bookings, filtered, newest created first unless the query asks oldest first.
pub fn list_bookings(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    q: &BookingQuery,
) -> QueryResult<Vec<Booking>> {
    let mut query = bookings::table
        .filter(bookings::merchant_id.eq(merchant_id))
        .limit(q.limit)
        .into_boxed();
    query = crate::keyset!(query, bookings::id, q.page);
    if let Some(status) = q.status {
        query = query.filter(bookings::status.eq(status.as_str()));
    }
    if let Some(from) = q.from {
        query = query.filter(bookings::departure.gt(from));
    }
    if let Some(to) = q.to {
        query = query.filter(bookings::arrival.lt(to));
    }
    if let Some(bookable_id) = q.bookable_id {
        query = query.filter(bookings::bookable_id.eq(DbUuid(bookable_id)));
    }
    if let Some(thread_id) = q.thread_id {
        query = query.filter(bookings::thread_id.eq(thread_id));
    }
    query
        .select(BookingRow::as_select())
        .load(conn)?
        .into_iter()
        .map(Booking::try_from)
        .collect()
}
