//! The durable outbox: every message to a shopper is first a row here (written in the same transaction
//! as what caused it), then sent by the sender worker in order per thread. A crash never loses a reply,
//! and processing an event twice can never queue its reply twice.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;
use uuid::Uuid;

use super::render::Message;
use crate::conversations::{self, Direction, NewMessage, Thread};
use crate::db::schema::{outbox, threads};
use crate::db::{DbConnection, DbUuid, now};

/// The prefix of the Send API `metadata` we put on our messages, so their echoes are recognised.
pub const METADATA_PREFIX: &str = "threadcart:";

/// How a message is sent (messenger.md §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessagingType {
    /// A reply inside the standard window.
    Response,
    /// A human agent's message after the standard window, within 7 days (`MESSAGE_TAG` + `HUMAN_AGENT`).
    HumanAgent,
}

#[derive(Serialize)]
struct Recipient<'a> {
    id: &'a str,
}

#[derive(Serialize)]
struct SendBody<'a> {
    recipient: Recipient<'a>,
    messaging_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tag: Option<&'static str>,
    message: &'a Message,
}

#[derive(Serialize)]
struct ActionBody<'a> {
    recipient: Recipient<'a>,
    sender_action: &'a str,
}

/// Queues `message` to the thread's shopper and records it on the thread; returns the outbox id.
pub fn enqueue_message(
    conn: &mut DbConnection,
    thread: &Thread,
    psid: &str,
    message: Message,
    author: &str,
    messaging_type: MessagingType,
) -> Result<Uuid, diesel::result::Error> {
    let id = Uuid::now_v7();
    let message = message
        .with_metadata(&format!("{METADATA_PREFIX}{id}"))
        .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
    let (type_name, tag) = match messaging_type {
        MessagingType::Response => ("RESPONSE", None),
        MessagingType::HumanAgent => ("MESSAGE_TAG", Some("HUMAN_AGENT")),
    };
    let body = serde_json::to_string(&SendBody {
        recipient: Recipient { id: psid },
        messaging_type: type_name,
        tag,
        message: &message,
    })
    .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
    let message_json = serde_json::to_string(&message).unwrap_or_default();
    let text = message.as_text().map(str::to_owned);
    let at = now();
    let message_id = conversations::record_message(
        conn,
        thread,
        &NewMessage {
            direction: Direction::Out,
            author,
            kind: if text.is_some() { "text" } else { "template" },
            mid: None,
            text: text.as_deref(),
            payload: Some(&message_json),
            occurred_at: at,
        },
    )?;
    insert(
        conn,
        id,
        thread,
        Some(message_id),
        psid,
        "message",
        &body,
        Some(type_name),
        tag,
        at,
    )?;
    Ok(id)
}

/// Queues a sender action (`mark_seen`, `typing_on`).
pub fn enqueue_action(
    conn: &mut DbConnection,
    thread: &Thread,
    psid: &str,
    action: &str,
) -> QueryResult<Uuid> {
    let id = Uuid::now_v7();
    let body = serde_json::to_string(&ActionBody {
        recipient: Recipient { id: psid },
        sender_action: action,
    })
    .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
    insert(
        conn,
        id,
        thread,
        None,
        psid,
        "sender_action",
        &body,
        None,
        None,
        now(),
    )?;
    Ok(id)
}

#[expect(
    clippy::too_many_arguments,
    reason = "one row's columns, written in one place"
)]
fn insert(
    conn: &mut DbConnection,
    id: Uuid,
    thread: &Thread,
    message_id: Option<Uuid>,
    psid: &str,
    kind: &str,
    body: &str,
    messaging_type: Option<&str>,
    tag: Option<&str>,
    at: NaiveDateTime,
) -> QueryResult<()> {
    diesel::insert_into(outbox::table)
        .values((
            outbox::id.eq(DbUuid(id)),
            outbox::merchant_id.eq(thread.merchant_id),
            outbox::thread_id.eq(thread.id),
            outbox::message_id.eq(message_id.map(DbUuid)),
            outbox::page_id.eq(&thread.page_id),
            outbox::psid.eq(psid),
            outbox::kind.eq(kind),
            outbox::body.eq(body),
            outbox::messaging_type.eq(messaging_type),
            outbox::tag.eq(tag),
            outbox::status.eq("queued"),
            outbox::attempts.eq(0),
            outbox::next_attempt_at.eq(at),
            outbox::created_at.eq(at),
        ))
        .execute(conn)?;
    Ok(())
}

/// A queued send.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = outbox)]
pub struct Queued {
    /// Id (time-ordered: the order of sending).
    pub id: DbUuid,
    /// Thread.
    pub thread_id: DbUuid,
    /// The message row it came from.
    pub message_id: Option<DbUuid>,
    /// Page.
    pub page_id: String,
    /// `message` or `sender_action`.
    pub kind: String,
    /// The Send API body.
    pub body: String,
    /// `RESPONSE` or `MESSAGE_TAG`.
    pub messaging_type: Option<String>,
    /// Tries so far.
    pub attempts: i32,
    /// Not before.
    pub next_attempt_at: NaiveDateTime,
}

/// Threads with a send due now.
pub fn threads_due(conn: &mut DbConnection, at: NaiveDateTime, limit: i64) -> QueryResult<Vec<DbUuid>> {
    outbox::table
        .filter(outbox::status.eq("queued"))
        .filter(outbox::next_attempt_at.le(at))
        .select(outbox::thread_id)
        .distinct()
        .limit(limit)
        .load(conn)
}

/// Takes the thread's send lease (one sender per thread, across processes); false when another holds it.
pub fn lease(
    conn: &mut DbConnection,
    thread_id: DbUuid,
    owner: &str,
    until: NaiveDateTime,
) -> QueryResult<bool> {
    let at = now();
    let n = diesel::update(
        threads::table.find(thread_id).filter(
            threads::send_lease_until
                .is_null()
                .or(threads::send_lease_until.lt(at))
                .or(threads::send_lease_owner.eq(owner)),
        ),
    )
    .set((
        threads::send_lease_owner.eq(owner),
        threads::send_lease_until.eq(until),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

/// Gives the lease back.
pub fn release(conn: &mut DbConnection, thread_id: DbUuid, owner: &str) -> QueryResult<()> {
    let none: Option<NaiveDateTime> = None;
    diesel::update(
        threads::table
            .find(thread_id)
            .filter(threads::send_lease_owner.eq(owner)),
    )
    .set(threads::send_lease_until.eq(none))
    .execute(conn)?;
    Ok(())
}

/// The thread's queued sends, in order.
pub fn queued_for(conn: &mut DbConnection, thread_id: DbUuid) -> QueryResult<Vec<Queued>> {
    outbox::table
        .filter(outbox::thread_id.eq(thread_id))
        .filter(outbox::status.eq("queued"))
        .order(outbox::id.asc())
        .select(Queued::as_select())
        .load(conn)
}

/// Records Meta's answer to a successful send: the send first (what keeps it from going twice), then
/// Meta's id on the message. Two statements without a transaction around them (half the round trips of
/// one): a crash between them only leaves the message without Meta's id.
pub fn mark_sent(conn: &mut DbConnection, q: &Queued, provider_id: Option<&str>) -> QueryResult<()> {
    diesel::update(outbox::table.find(q.id))
        .set((
            outbox::status.eq("sent"),
            outbox::provider_message_id.eq(provider_id),
            outbox::sent_at.eq(now()),
            outbox::attempts.eq(q.attempts + 1),
        ))
        .execute(conn)?;
    if let (Some(message_id), Some(mid)) = (q.message_id, provider_id) {
        conversations::set_message_mid(conn, message_id.0, mid)?;
    }
    Ok(())
}

/// Schedules another try.
pub fn mark_retry(conn: &mut DbConnection, q: &Queued, error: &str, next: NaiveDateTime) -> QueryResult<()> {
    diesel::update(outbox::table.find(q.id))
        .set((
            outbox::attempts.eq(q.attempts + 1),
            outbox::last_error.eq(error),
            outbox::next_attempt_at.eq(next),
        ))
        .execute(conn)?;
    Ok(())
}

/// Ends a send without it reaching the shopper: `failed`, `expired` (window closed) or `dead` (retries
/// exhausted), with the reason.
pub fn mark_final(conn: &mut DbConnection, q: &Queued, status: &str, error: &str) -> QueryResult<()> {
    diesel::update(outbox::table.find(q.id))
        .set((
            outbox::status.eq(status),
            outbox::attempts.eq(q.attempts + 1),
            outbox::last_error.eq(error),
        ))
        .execute(conn)?;
    Ok(())
}
