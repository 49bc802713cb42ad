//! What the business owes the shopper after the conversation moved on: utility message templates for
//! updates sent after a Meta channel's messaging window closed, cart reminders, stay reminders, and
//! updates held until the shopper writes again, all run from the database's schedule.

pub mod recovery;
pub mod reminders;
pub mod schedule;
pub mod templates;

use chrono::NaiveDateTime;

use crate::checkout::orders::{load_order, set_receipt};
use crate::conversations::notices::{self, Update};
use crate::db::DbConnection;
use crate::kernel::OrderId;
use schedule::{Job, JobError, JobKind, Step};
use templates::Purpose;

/// Does one due job (see [`schedule::run_next_due`]).
pub fn run_job(conn: &mut DbConnection, job: &Job, at: NaiveDateTime) -> Result<Step, JobError> {
    match job.kind {
        JobKind::CartReminder => recovery::remind(conn, job, at),
        JobKind::BookingReminder => reminders::remind(conn, job, at),
        JobKind::HeldUpdate => send_held(conn, job, at),
    }
}

/// A held update, now that its shopper wrote: sent inside the window, and its order or booking says so;
/// held again when the window closed meanwhile.
fn send_held(conn: &mut DbConnection, job: &Job, at: NaiveDateTime) -> Result<Step, JobError> {
    let subject = job.subject_id.0;
    let update = match Purpose::parse(&job.purpose) {
        Some(Purpose::OrderPaid) => Update::Receipt(load_order(conn, OrderId(subject))?),
        Some(Purpose::OrderRefunded) => {
            let order = load_order(conn, OrderId(subject))?;
            if order.late_payment.is_some() {
                Update::LateRefund(order)
            } else {
                // Refunds held one after the other are told together: the order's refunded amount.
                Update::Refund { order, amount: None }
            }
        }
        Some(Purpose::BookingReminder) => match reminders::update_for(conn, job.merchant_id, subject)? {
            Some(update) => update,
            None => return Ok(Step::Done("not_confirmed")),
        },
        Some(Purpose::BookingCancelled) => {
            match reminders::cancellation_for(conn, job.merchant_id, subject)? {
                Some(update) => update,
                None => return Ok(Step::Done("not_cancelled")),
            }
        }
        Some(Purpose::BookingConfirmed) | None => {
            return Ok(Step::Done("unknown_update"));
        }
    };
    let Some(told) = notices::send_held(conn, &update)? else {
        return Ok(Step::Later(None));
    };
    match &update {
        Update::Receipt(order) => set_receipt(conn, order.id, told.as_str())?,
        Update::LateRefund(_) | Update::Refund { .. } => {}
        Update::StayReminder(r) => reminders::record(conn, r.booking_id, told, at)?,
        Update::StayCancelled(_) => {}
    }
    Ok(Step::Done(told.as_str()))
}
