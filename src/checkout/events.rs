//! Stripe's webhook events, stored (raw, as received) before the 200 and deduplicated by Stripe's event id;
//! a worker reads each back into its [`StripeEvent`] and applies it, retrying failures with backoff.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::stripe::StripeError;
use super::webhook::StripeEvent;
use crate::db::schema::stripe_events;
use crate::db::{DbConnection, now};

crate::text_state! {
    /// Where a stored Stripe event stands.
    EventStatus {
        /// Waiting to be applied (or retried).
        Pending = "pending",
        /// Applied: its effect is on the order.
        Done = "done",
        /// Names nothing of ours, or is not an event threadcart acts on.
        Ignored = "ignored",
        /// Applied, and a person should look at it (Stripe charged another amount than the order's total).
        Review = "review",
        /// Failed too often.
        Dead = "dead",
    }
}

/// Tries before an event is dead-lettered.
pub const MAX_ATTEMPTS: i32 = 8;

/// Stores an event unless its id was seen; true when new.
pub fn store(conn: &mut DbConnection, event: &StripeEvent, body: &str) -> QueryResult<bool> {
    let seen: bool =
        diesel::select(diesel::dsl::exists(stripe_events::table.find(&event.id))).get_result(conn)?;
    if seen {
        return Ok(false);
    }
    let at = now();
    let inserted = diesel::insert_into(stripe_events::table)
        .values((
            stripe_events::id.eq(&event.id),
            stripe_events::kind.eq(event.kind.type_name()),
            stripe_events::payload.eq(body),
            stripe_events::status.eq(EventStatus::Pending),
            stripe_events::attempts.eq(0),
            stripe_events::next_attempt_at.eq(at),
            stripe_events::received_at.eq(at),
        ))
        .execute(conn);
    match inserted {
        Ok(_) => Ok(true),
        // Delivered twice at the same moment: the other request stored it.
        Err(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)) => {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// A stored event waiting to be applied.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = stripe_events)]
pub struct Pending {
    /// `evt_...`.
    pub id: String,
    /// The raw body.
    pub payload: String,
    /// Tries so far.
    pub attempts: i32,
}

impl Pending {
    /// The event, read from its raw body with the parser that accepted it when it arrived.
    pub fn event(&self) -> Result<StripeEvent, StripeError> {
        StripeEvent::parse(self.payload.as_bytes())
    }
}

/// Events due now, oldest first.
pub fn due(conn: &mut DbConnection, at: NaiveDateTime, limit: i64) -> QueryResult<Vec<Pending>> {
    stripe_events::table
        .filter(stripe_events::status.eq(EventStatus::Pending))
        .filter(stripe_events::next_attempt_at.le(at))
        .order(stripe_events::received_at.asc())
        .limit(limit)
        .select(Pending::as_select())
        .load(conn)
}

/// How an applied event ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Its effect is on the order (or there was none to have: the order was there already).
    Done,
    /// It names nothing of ours, or is not an event threadcart acts on.
    Ignored,
    /// Stripe charged another amount than the order's total: a person looks at it.
    Review,
}

impl Outcome {
    /// The stored status.
    pub fn status(self) -> EventStatus {
        match self {
            Outcome::Done => EventStatus::Done,
            Outcome::Ignored => EventStatus::Ignored,
            Outcome::Review => EventStatus::Review,
        }
    }
}

/// Marks an event applied, with how it ended.
pub fn done(conn: &mut DbConnection, id: &str, outcome: Outcome) -> QueryResult<()> {
    diesel::update(stripe_events::table.find(id))
        .set((
            stripe_events::status.eq(outcome.status()),
            stripe_events::processed_at.eq(now()),
        ))
        .execute(conn)?;
    Ok(())
}

/// Records a failure: retried at `next`, dead-lettered after [`MAX_ATTEMPTS`].
pub fn failed(conn: &mut DbConnection, event: &Pending, error: &str, next: NaiveDateTime) -> QueryResult<()> {
    let attempts = event.attempts + 1;
    diesel::update(stripe_events::table.find(&event.id))
        .set((
            stripe_events::attempts.eq(attempts),
            stripe_events::last_error.eq(error),
            stripe_events::next_attempt_at.eq(next),
            stripe_events::status.eq(if attempts >= MAX_ATTEMPTS {
                EventStatus::Dead
            } else {
                EventStatus::Pending
            }),
        ))
        .execute(conn)?;
    Ok(())
}
