//! From a stored webhook delivery to effects on threads: deliveries are split into events (deduplicated
//! on the Page and the event's key), and each shopper's events are applied in timestamp order, one
//! shopper at a time across every server process (the customer's row is held while they are applied).

use chrono::{DateTime, Duration, NaiveDateTime};
use diesel::prelude::*;
use uuid::Uuid;

use super::outbox::{self, METADATA_PREFIX};
use super::webhook::{self, EventKind, InboundEvent};
use crate::conversations::{self, Customer, Direction, NewMessage};
use crate::db::schema::{customers, messenger_events, pages, webhook_inbox};
use crate::db::{DbConnection, DbUuid, now, prepared, write_transaction};

/// Retries of an event before it is dead-lettered.
pub const MAX_ATTEMPTS: i32 = 8;

/// Stores a verified delivery; the 200 goes out only after this commits.
pub fn store_delivery(conn: &mut DbConnection, source: &str, body: &str) -> QueryResult<Uuid> {
    let id = Uuid::now_v7();
    diesel::insert_into(webhook_inbox::table)
        .values((
            webhook_inbox::id.eq(DbUuid(id)),
            webhook_inbox::source.eq(source),
            webhook_inbox::body.eq(body),
            webhook_inbox::status.eq("pending"),
            webhook_inbox::attempts.eq(0),
            webhook_inbox::received_at.eq(now()),
        ))
        .execute(conn)?;
    Ok(id)
}

/// Deliveries waiting to be split, oldest first.
pub fn pending_deliveries(conn: &mut DbConnection, limit: i64) -> QueryResult<Vec<(DbUuid, String)>> {
    webhook_inbox::table
        .filter(webhook_inbox::source.eq("messenger"))
        .filter(webhook_inbox::status.eq("pending"))
        .order(webhook_inbox::id.asc())
        .select((webhook_inbox::id, webhook_inbox::body))
        .limit(limit)
        .load(conn)
}

fn millis_to_utc(ms: i64) -> NaiveDateTime {
    DateTime::from_timestamp_millis(ms)
        .map(|d| d.naive_utc())
        .unwrap_or_else(now)
}

/// Stores a verified delivery already split into its events, in one transaction (the 200 goes out only
/// after it commits): the common path, one commit and no worker in between. When that transaction fails
/// (two deliveries racing to create the same customer, say), the delivery is stored whole instead and the
/// split worker takes it later. Returns the delivery's id and the shoppers it brought events for, or
/// `None` when it still waits to be split.
pub fn receive_delivery(
    conn: &mut DbConnection,
    source: &str,
    body: &str,
) -> QueryResult<(Uuid, Option<Vec<DbUuid>>)> {
    let id = Uuid::now_v7();
    let parsed = webhook::parse(body.as_bytes());
    let split = write_transaction(conn, |conn| {
        diesel::insert_into(webhook_inbox::table)
            .values((
                webhook_inbox::id.eq(DbUuid(id)),
                webhook_inbox::source.eq(source),
                webhook_inbox::body.eq(body),
                webhook_inbox::status.eq(if parsed.is_ok() { "done" } else { "dead" }),
                webhook_inbox::attempts.eq(0),
                webhook_inbox::last_error.eq(parsed.as_ref().err().map(ToString::to_string)),
                webhook_inbox::received_at.eq(now()),
                webhook_inbox::processed_at.eq(now()),
            ))
            .execute(conn)?;
        store_events(conn, DbUuid(id), parsed.as_deref().unwrap_or_default())
    });
    match split {
        Ok(customers) => Ok((id, Some(customers))),
        Err(e) => {
            tracing::debug!(error = %e, "delivery not split on arrival; stored for the split worker");
            Ok((store_delivery(conn, source, body)?, None))
        }
    }
}

/// Splits one delivery into events, in one transaction with marking it done, so a crash or a second
/// process can never split it twice. Returns how many new events were stored.
pub fn split_delivery(conn: &mut DbConnection, id: DbUuid, body: &str) -> QueryResult<usize> {
    let parsed = webhook::parse(body.as_bytes());
    write_transaction(conn, |conn| {
        let claimed = diesel::update(
            webhook_inbox::table
                .find(id)
                .filter(webhook_inbox::status.eq("pending")),
        )
        .set((
            webhook_inbox::status.eq(if parsed.is_ok() { "done" } else { "dead" }),
            webhook_inbox::processed_at.eq(now()),
            webhook_inbox::last_error.eq(parsed.as_ref().err().map(ToString::to_string)),
        ))
        .execute(conn)?;
        match (claimed, &parsed) {
            (1, Ok(events)) => Ok(store_events(conn, id, events)?.len()),
            _ => Ok(0),
        }
    })
}

/// Records a failed split so it is retried later (and given up after a while).
pub fn delivery_failed(conn: &mut DbConnection, id: DbUuid, error: &str) -> QueryResult<()> {
    diesel::update(webhook_inbox::table.find(id))
        .set((
            webhook_inbox::attempts.eq(webhook_inbox::attempts + 1),
            webhook_inbox::last_error.eq(error),
        ))
        .execute(conn)?;
    diesel::update(
        webhook_inbox::table
            .find(id)
            .filter(webhook_inbox::attempts.ge(MAX_ATTEMPTS)),
    )
    .set(webhook_inbox::status.eq("dead"))
    .execute(conn)?;
    Ok(())
}

/// Stores a delivery's events; returns how many were new.
/// Stores the events (a redelivered one is skipped); returns the shoppers with a new event to apply,
/// each once.
fn store_events(
    conn: &mut DbConnection,
    inbox_id: DbUuid,
    events: &[InboundEvent],
) -> QueryResult<Vec<DbUuid>> {
    let mut customers = Vec::new();
    for event in events {
        if let Some(customer) = store_event(conn, inbox_id, event)?
            && !customers.contains(&customer)
        {
            customers.push(customer);
        }
    }
    Ok(customers)
}

/// Stores one event unless its Page already has one with the same key (a redelivery); returns its
/// shopper when it was stored for a known Page (to be applied).
fn store_event(conn: &mut DbConnection, inbox_id: DbUuid, e: &InboundEvent) -> QueryResult<Option<DbUuid>> {
    // The Page's merchant and the shopper's customer row, in one round trip.
    let known: Option<(DbUuid, Option<DbUuid>)> = pages::table
        .left_join(
            customers::table.on(customers::page_id
                .eq(pages::page_id)
                .and(customers::psid.eq(&e.psid))),
        )
        .filter(pages::page_id.eq(&e.page_id))
        .select((pages::merchant_id, customers::id.nullable()))
        .first(conn)
        .optional()?;
    let (merchant, customer) = match known {
        Some((merchant, Some(customer))) => (Some(merchant), Some(customer)),
        Some((merchant, None)) => (
            Some(merchant),
            Some(DbUuid(conversations::ensure_customer(
                conn, merchant.0, &e.page_id, &e.psid,
            )?)),
        ),
        None => (None, None),
    };
    let at = now();
    let insert = diesel::insert_into(messenger_events::table)
        .values((
            messenger_events::id.eq(DbUuid(Uuid::now_v7())),
            messenger_events::inbox_id.eq(inbox_id),
            messenger_events::merchant_id.eq(merchant),
            messenger_events::customer_id.eq(customer),
            messenger_events::page_id.eq(&e.page_id),
            messenger_events::psid.eq(&e.psid),
            messenger_events::dedup_key.eq(&e.dedup_key),
            messenger_events::kind.eq(e.kind.name()),
            messenger_events::occurred_at.eq(millis_to_utc(e.timestamp_ms)),
            messenger_events::payload.eq(e.raw.to_string()),
            // Unknown Pages are recorded and skipped, never retried.
            messenger_events::status.eq(if customer.is_some() {
                "pending"
            } else {
                "unknown_page"
            }),
            messenger_events::attempts.eq(0),
            messenger_events::next_attempt_at.eq(at),
            messenger_events::created_at.eq(at),
        ))
        .on_conflict((messenger_events::page_id, messenger_events::dedup_key))
        .do_nothing();
    let stored = crate::per_backend!(conn, |c| insert.execute(c))? == 1;
    if stored && customer.is_none() {
        tracing::warn!(page.id = %e.page_id, "event for a Page no merchant connected: recorded and skipped");
    }
    Ok(customer.filter(|_| stored))
}

/// Customers with an event due now.
pub fn customers_due(conn: &mut DbConnection, at: NaiveDateTime, limit: i64) -> QueryResult<Vec<DbUuid>> {
    let ids: Vec<Option<DbUuid>> = messenger_events::table
        .filter(messenger_events::status.eq("pending"))
        .filter(messenger_events::next_attempt_at.le(at))
        .select(messenger_events::customer_id)
        .distinct()
        .limit(limit)
        .load(conn)?;
    Ok(ids.into_iter().flatten().collect())
}

/// A stored event waiting to be applied.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = messenger_events)]
pub struct PendingEvent {
    /// Id.
    pub id: DbUuid,
    /// Page.
    pub page_id: String,
    /// When it happened.
    pub occurred_at: NaiveDateTime,
    /// The messaging object.
    pub payload: String,
    /// Tries so far.
    pub attempts: i32,
    /// Not before.
    pub next_attempt_at: NaiveDateTime,
}

/// The customer's pending events in timestamp order.
pub fn pending_events(conn: &mut DbConnection, customer_id: DbUuid) -> QueryResult<Vec<PendingEvent>> {
    messenger_events::table
        .filter(messenger_events::customer_id.eq(customer_id))
        .filter(messenger_events::status.eq("pending"))
        .order((messenger_events::occurred_at.asc(), messenger_events::id.asc()))
        .select(PendingEvent::as_select())
        .load(conn)
}

/// Settings the event handling needs.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// How long the bot stays quiet after a human answered from the Page Inbox.
    pub human_idle: Duration,
    /// Stripe is configured: checkout opens a payment page (else a person takes over).
    pub payments: bool,
}

/// What became of a customer's due events.
#[derive(Debug)]
pub enum Applied {
    /// Another worker holds the customer: nothing was done.
    Busy,
    /// The shopper's profile must be asked for first (an HTTP call, outside any transaction); the
    /// Page's token, when it has a working one.
    NeedsProfile(Customer, Option<crate::secrets::Sealed>),
    /// This many events were applied; `sends`: the thread they queued sends on, if any.
    Done {
        /// Events applied.
        applied: usize,
        /// The shopper's thread, when sends were queued on it.
        sends: Option<DbUuid>,
    },
    /// An event failed: nothing of this pass was kept, the event is to be retried later (the ones
    /// before it are applied again on the next pass).
    Failed {
        /// The event that failed.
        event: PendingEvent,
        /// Why.
        error: diesel::result::Error,
    },
}

/// Why the transaction of [`apply_due`] ended early.
enum Abort {
    Db(diesel::result::Error),
    Event(Box<(PendingEvent, diesel::result::Error)>),
}

impl From<diesel::result::Error> for Abort {
    fn from(e: diesel::result::Error) -> Self {
        Abort::Db(e)
    }
}

/// Applies the customer's due events in timestamp order, and marks them done, in one transaction that
/// holds the customer's row: one worker per shopper across every process (PostgreSQL's `FOR UPDATE SKIP
/// LOCKED`; SQLite's `BEGIN IMMEDIATE` admits one writer), each event's effects (messages, touches,
/// window, queued replies) exactly once. A later event waits for an earlier one being retried.
pub fn apply_due(conn: &mut DbConnection, customer_id: DbUuid, policy: Policy) -> QueryResult<Applied> {
    let outcome = write_transaction(conn, |conn| {
        let Some(customer) = lock_customer(conn, customer_id)? else {
            return Ok(Applied::Busy);
        };
        if customer.profile_status == "pending" {
            let token = crate::merchants::pages::access_token(conn, &customer.page_id)?;
            return Ok(Applied::NeedsProfile(customer, token));
        }
        let (mut applied, mut sends) = (0, None);
        for event in pending_events(conn, customer_id)? {
            if event.next_attempt_at > now() {
                break;
            }
            match apply(conn, &customer, &event, policy) {
                Ok(queued) => {
                    applied += 1;
                    sends = sends.or(queued);
                }
                Err(e) => return Err(Abort::Event(Box::new((event, e)))),
            }
        }
        Ok(Applied::Done { applied, sends })
    });
    match outcome {
        Ok(applied) => Ok(applied),
        Err(Abort::Event(failed)) => {
            let (event, error) = *failed;
            Ok(Applied::Failed { event, error })
        }
        Err(Abort::Db(e)) => Err(e),
    }
}

/// The customer, its row locked for the rest of the transaction; `None` when another transaction holds
/// it (PostgreSQL). On SQLite the transaction is the only writer already.
fn lock_customer(conn: &mut DbConnection, id: DbUuid) -> QueryResult<Option<Customer>> {
    match conn {
        #[cfg(feature = "postgres")]
        DbConnection::Postgres(c) => customers::table
            .find(id)
            .select(Customer::as_select())
            .for_update()
            .skip_locked()
            .first(c)
            .optional(),
        DbConnection::Sqlite(c) => customers::table
            .find(id)
            .select(Customer::as_select())
            .first(c)
            .optional(),
    }
}

/// Applies one event and marks it done, in the caller's transaction; returns the thread when sends were
/// queued on it.
fn apply(
    conn: &mut DbConnection,
    customer: &Customer,
    row: &PendingEvent,
    policy: Policy,
) -> QueryResult<Option<DbUuid>> {
    let done = prepared::update(
        messenger_events::table,
        (
            messenger_events::status.eq("done"),
            messenger_events::processed_at.eq(now()),
            messenger_events::attempts.eq(row.attempts + 1),
        ),
        messenger_events::id
            .eq(row.id)
            .and(messenger_events::status.eq("pending")),
    )
    .execute(conn)?;
    if done == 0 {
        return Ok(None);
    }
    let raw: serde_json::Value = serde_json::from_str(&row.payload)
        .map_err(|e| diesel::result::Error::DeserializationError(Box::new(e)))?;
    let Some(event) = webhook::event(&row.page_id, &raw, false, None) else {
        return Ok(None);
    };
    handle(conn, customer, &event, row.occurred_at, policy)
}

/// Carries out one event; returns the thread when sends were queued on it.
fn handle(
    conn: &mut DbConnection,
    customer: &Customer,
    event: &InboundEvent,
    at: NaiveDateTime,
    policy: Policy,
) -> QueryResult<Option<DbUuid>> {
    let stored = conversations::ensure_thread(conn, customer)?;
    let mut thread = stored.clone();
    if event.kind.is_shopper_action() {
        let is_message = matches!(event.kind, EventKind::Message { .. });
        thread = conversations::note_shopper_action(&thread, at, is_message);
    }
    let mut input: Option<crate::engine::Input<'_>> = None;
    let mut mark_seen = false;
    match &event.kind {
        EventKind::Message {
            mid,
            text,
            quick_reply,
            attachments,
        } => {
            let kind = if quick_reply.is_some() {
                "quick_reply"
            } else if text.is_none() && !attachments.is_empty() {
                "attachment"
            } else {
                "text"
            };
            let payload = quick_reply
                .clone()
                .or_else(|| (!attachments.is_empty()).then(|| attachments.join(",")));
            conversations::record_message(
                conn,
                &thread,
                &NewMessage {
                    direction: Direction::In,
                    author: "shopper",
                    kind,
                    mid: Some(mid),
                    text: text.as_deref(),
                    payload: payload.as_deref(),
                    occurred_at: at,
                },
            )?;
            // Marked seen with the replies, in the same statement.
            mark_seen = !event.standby;
            input = Some(match (quick_reply, text) {
                (Some(payload), _) => crate::engine::Input::Tap {
                    payload,
                    referral: None,
                },
                (None, Some(text)) => crate::engine::Input::Text(text),
                (None, None) => crate::engine::Input::Attachment,
            });
        }
        EventKind::Echo {
            mid, metadata, text, ..
        } => {
            let ours = metadata
                .as_deref()
                .is_some_and(|m| m.starts_with(METADATA_PREFIX));
            if !ours {
                // A person answered from the Page Inbox (or another app): the bot steps back.
                conversations::record_message(
                    conn,
                    &thread,
                    &NewMessage {
                        direction: Direction::Out,
                        author: "human",
                        kind: "text",
                        mid: Some(mid),
                        text: text.as_deref(),
                        payload: None,
                        occurred_at: at,
                    },
                )?;
                conversations::human_replied(conn, &thread, at + policy.human_idle)?;
                thread.human_active_until = Some(at + policy.human_idle);
            }
        }
        EventKind::Postback {
            title,
            payload,
            referral,
        } => {
            conversations::record_message(
                conn,
                &thread,
                &NewMessage {
                    direction: Direction::In,
                    author: "shopper",
                    kind: "postback",
                    mid: None,
                    text: title.as_deref(),
                    payload: payload.as_deref(),
                    occurred_at: at,
                },
            )?;
            if let Some(r) = referral {
                thread = conversations::add_touch(conn, &thread, r, at)?;
            }
            input = Some(crate::engine::Input::Tap {
                payload: payload.as_deref().unwrap_or_default(),
                referral: referral.as_ref(),
            });
        }
        EventKind::Referral(r) => {
            thread = conversations::add_touch(conn, &thread, r, at)?;
            input = Some(crate::engine::Input::Referral(r));
        }
        EventKind::Delivery { .. }
        | EventKind::Read { .. }
        | EventKind::Reaction { .. }
        | EventKind::Optin { .. }
        | EventKind::Other(_) => {}
    }
    let reply_at = now();
    let sends = if let Some(input) = input
        && !event.standby
        && thread.bot_may_answer(reply_at)
        && thread.window_open(reply_at)
    {
        super::conversation::answer(conn, customer, &thread, input, policy.payments, mark_seen)?;
        Some(thread.id)
    } else if mark_seen {
        outbox::enqueue_action(conn, &thread, &customer.psid, "mark_seen")?;
        Some(thread.id)
    } else {
        None
    };
    // Last, so the thread's row stays locked only until the commit that follows.
    conversations::save_progress(conn, &stored, &thread)?;
    Ok(sends)
}

/// Records a failed attempt: retried later with backoff, dead-lettered after [`MAX_ATTEMPTS`].
pub fn event_failed(
    conn: &mut DbConnection,
    row: &PendingEvent,
    error: &str,
    next: NaiveDateTime,
) -> QueryResult<()> {
    let attempts = row.attempts + 1;
    diesel::update(messenger_events::table.find(row.id))
        .set((
            messenger_events::attempts.eq(attempts),
            messenger_events::last_error.eq(error),
            messenger_events::next_attempt_at.eq(next),
            messenger_events::status.eq(if attempts >= MAX_ATTEMPTS {
                "dead"
            } else {
                "pending"
            }),
        ))
        .execute(conn)?;
    Ok(())
}

/// An event as the dead-letter API shows it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = messenger_events)]
pub struct StoredEvent {
    /// Id.
    pub id: DbUuid,
    /// Page.
    pub page_id: String,
    /// Shopper.
    pub psid: String,
    /// `message`, `postback` ...
    pub kind: String,
    /// `pending`, `done`, `dead`, `unknown_page`.
    pub status: String,
    /// Tries.
    pub attempts: i32,
    /// The last failure.
    pub last_error: Option<String>,
    /// When it happened.
    pub occurred_at: NaiveDateTime,
    /// The messaging object.
    pub payload: String,
}

/// A page of the merchant's events in `status`, oldest first.
pub fn list_events(
    conn: &mut DbConnection,
    merchant_id: Uuid,
    status: &str,
    after: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<StoredEvent>> {
    let mut query = messenger_events::table
        .filter(messenger_events::merchant_id.eq(DbUuid(merchant_id)))
        .filter(messenger_events::status.eq(status.to_owned()))
        .order(messenger_events::id.asc())
        .limit(limit)
        .select(StoredEvent::as_select())
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(messenger_events::id.gt(DbUuid(after)));
    }
    query.load(conn)
}

/// Puts a dead event of the merchant back in the queue; false when there is no such dead event.
pub fn replay(conn: &mut DbConnection, merchant_id: Uuid, id: Uuid) -> QueryResult<bool> {
    let n = diesel::update(
        messenger_events::table
            .find(DbUuid(id))
            .filter(messenger_events::merchant_id.eq(DbUuid(merchant_id)))
            .filter(messenger_events::status.eq("dead")),
    )
    .set((
        messenger_events::status.eq("pending"),
        messenger_events::attempts.eq(0),
        messenger_events::next_attempt_at.eq(now()),
    ))
    .execute(conn)?;
    Ok(n == 1)
}
