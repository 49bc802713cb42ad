//! A stay's reminder: the day before arrival, at the merchant's `booking_reminder_hour` (18 by default)
//! in the property's timezone, once per confirmed booking; inside the messaging window as a message,
//! after it through the Page's approved `booking_reminder` template, else held until the guest writes.
//! The booking records how (`reminder`) and when (`reminded_at`).

use chrono::{NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
use diesel::prelude::*;
use uuid::Uuid;

use super::schedule::{self, Job, JobError, JobKind, Step};
use crate::bookings::{self, Booking, BookingStatus};
use crate::conversations::notices::{self, Stay, Told, Update};
use crate::db::schema::bookings as bookings_table;
use crate::db::{DbConnection, DbUuid, now};
use crate::kernel::MerchantId;

/// The instant (UTC) of the reminder of a stay arriving on `arrival` in `tz`: the day before, at
/// `hour` local time. A local hour that does not exist that day (a clock change) moves to the next
/// that does.
pub fn due_at(arrival: NaiveDate, hour: u32, tz: chrono_tz::Tz) -> Option<NaiveDateTime> {
    let day_before = arrival.pred_opt()?;
    (hour..24).find_map(|h| {
        let local = day_before.and_time(NaiveTime::from_hms_opt(h, 0, 0)?);
        tz.from_local_datetime(&local).earliest().map(|t| t.naive_utc())
    })
}

/// Plans the reminder of a booking just confirmed; none when its time has already passed (booked the
/// evening before arrival).
pub fn plan(conn: &mut DbConnection, booking: &Booking) -> QueryResult<()> {
    let Some(room) = bookings::get(conn, booking.merchant_id, booking.bookable_id)? else {
        return Ok(());
    };
    let merchant = crate::merchants::get(conn, booking.merchant_id)?;
    let hour = u32::try_from(merchant.follow_ups.booking_reminder_hour).unwrap_or(18);
    let Some(due) = due_at(booking.stay.arrival(), hour, room.spec.timezone) else {
        return Ok(());
    };
    if due <= now() {
        return Ok(());
    }
    schedule::plan(
        conn,
        schedule::Plan {
            merchant_id: booking.merchant_id,
            kind: JobKind::BookingReminder,
            subject_id: booking.id,
            purpose: "",
            thread_id: booking.thread_id,
            due_at: Some(due),
        },
    )
}

/// The booking, as the guest is told of it, when it is in `status` and its guest has not left yet.
fn stay_in(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    booking_id: Uuid,
    status: BookingStatus,
) -> QueryResult<Option<Stay>> {
    let Some(booking) = bookings::get_booking(conn, merchant_id, booking_id)? else {
        return Ok(None);
    };
    let Some(room) = bookings::get(conn, merchant_id, booking.bookable_id)? else {
        return Ok(None);
    };
    let today = chrono::Utc::now().with_timezone(&room.spec.timezone).date_naive();
    if booking.status != status || booking.stay.departure() <= today {
        return Ok(None);
    }
    Ok(Some(Stay {
        booking_id,
        thread_id: booking.thread_id,
        room: room.spec.name,
        arrival: booking.stay.arrival(),
        departure: booking.stay.departure(),
        check_in: room.spec.check_in,
    }))
}

/// A confirmed booking whose guest has not left yet, as the guest is told of it; `None` otherwise.
pub fn confirmed_stay(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    booking_id: Uuid,
) -> QueryResult<Option<Stay>> {
    stay_in(conn, merchant_id, booking_id, BookingStatus::Confirmed)
}

/// The reminder of a confirmed booking whose guest has not left yet; `None` otherwise.
pub fn update_for(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    booking_id: Uuid,
) -> QueryResult<Option<Update>> {
    Ok(stay_in(conn, merchant_id, booking_id, BookingStatus::Confirmed)?.map(Update::StayReminder))
}

/// The word that a confirmed stay, still to come, was cancelled; `None` otherwise.
pub fn cancellation_for(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    booking_id: Uuid,
) -> QueryResult<Option<Update>> {
    Ok(stay_in(conn, merchant_id, booking_id, BookingStatus::Cancelled)?.map(Update::StayCancelled))
}

/// A confirmed stay was cancelled: the guest is told (see `notices::owe`); its reminder, if planned,
/// finds the booking cancelled and sends nothing.
pub fn cancelled(conn: &mut DbConnection, merchant_id: MerchantId, booking_id: Uuid) -> QueryResult<()> {
    if let Some(update) = cancellation_for(conn, merchant_id, booking_id)? {
        notices::owe(conn, &update)?;
    }
    Ok(())
}

/// Records how and when the guest was reminded.
pub fn record(conn: &mut DbConnection, booking_id: Uuid, told: Told, at: NaiveDateTime) -> QueryResult<()> {
    let reminded_at = (told != Told::Held).then_some(at);
    diesel::update(bookings_table::table.find(DbUuid(booking_id)))
        .set((
            bookings_table::reminder.eq(told.as_str()),
            bookings_table::reminded_at.eq(reminded_at),
        ))
        .execute(conn)?;
    Ok(())
}

/// The reminder's job.
pub fn remind(conn: &mut DbConnection, job: &Job, at: NaiveDateTime) -> Result<Step, JobError> {
    let Some(update) = update_for(conn, job.merchant_id, job.subject_id.0)? else {
        return Ok(Step::Done("not_confirmed"));
    };
    let told = notices::owe(conn, &update)?;
    record(conn, job.subject_id.0, told, at)?;
    Ok(Step::Done(told.as_str()))
}
