//! The durable outbox: every message to a shopper is first a row here (written in the same transaction
//! as what caused it), then sent by the sender worker in order per thread. A crash never loses a reply,
//! and processing an event twice can never queue its reply twice.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;
use uuid::Uuid;

use super::render::Message;
use crate::conversations::{Direction, Thread};
use crate::db::schema::{outbox, threads};
use crate::db::{DbConnection, DbUuid, now, prepared};

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

/// One send to queue: a message (recorded on the thread too) or a sender action.
enum Outgoing {
    Message {
        message_id: Uuid,
        text: Option<String>,
        json: String,
        messaging_type: &'static str,
        tag: Option<&'static str>,
    },
    Action,
}

/// A row of the outbox, ready to insert.
struct Row {
    id: Uuid,
    body: String,
    what: Outgoing,
}

fn serialization(e: impl std::error::Error + Send + Sync + 'static) -> diesel::result::Error {
    diesel::result::Error::SerializationError(Box::new(e))
}

/// The outbox row (and the thread's message) for `message` to `psid`.
fn message_row(psid: &str, message: Message, messaging_type: MessagingType) -> QueryResult<Row> {
    let id = Uuid::now_v7();
    let message = message
        .with_metadata(&format!("{METADATA_PREFIX}{id}"))
        .map_err(serialization)?;
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
    .map_err(serialization)?;
    Ok(Row {
        id,
        body,
        what: Outgoing::Message {
            message_id: Uuid::now_v7(),
            text: message.as_text().map(str::to_owned),
            json: serde_json::to_string(&message).map_err(serialization)?,
            messaging_type: type_name,
            tag,
        },
    })
}

/// The outbox row for a sender action (`mark_seen`, `typing_on`).
fn action_row(psid: &str, action: &str) -> QueryResult<Row> {
    let body = serde_json::to_string(&ActionBody {
        recipient: Recipient { id: psid },
        sender_action: action,
    })
    .map_err(serialization)?;
    Ok(Row {
        id: Uuid::now_v7(),
        body,
        what: Outgoing::Action,
    })
}

/// Queues `message` to the thread's shopper and records it on the thread; returns the outbox id.
pub fn enqueue_message(
    conn: &mut DbConnection,
    thread: &Thread,
    psid: &str,
    message: Message,
    author: &str,
    messaging_type: MessagingType,
) -> QueryResult<Uuid> {
    let row = message_row(psid, message, messaging_type)?;
    let id = row.id;
    insert(conn, thread, psid, author, &[row])?;
    Ok(id)
}

/// Queues the bot's replies to the shopper, in order, after marking the shopper's message seen (when
/// `mark_seen`) and a typing indicator when there are several (cards with pictures take a moment to
/// arrive), and records them on the thread: two statements whatever their number.
pub fn enqueue_replies(
    conn: &mut DbConnection,
    thread: &Thread,
    psid: &str,
    mark_seen: bool,
    replies: Vec<Message>,
) -> QueryResult<()> {
    let mut rows = Vec::with_capacity(replies.len() + 2);
    if mark_seen {
        rows.push(action_row(psid, "mark_seen")?);
    }
    if replies.len() > 1 {
        rows.push(action_row(psid, "typing_on")?);
    }
    for message in replies {
        rows.push(message_row(psid, message, MessagingType::Response)?);
    }
    insert(conn, thread, psid, "bot", &rows)
}

/// Queues a sender action (`mark_seen`, `typing_on`).
pub fn enqueue_action(
    conn: &mut DbConnection,
    thread: &Thread,
    psid: &str,
    action: &str,
) -> QueryResult<Uuid> {
    let row = action_row(psid, action)?;
    let id = row.id;
    insert(conn, thread, psid, "bot", &[row])?;
    Ok(id)
}

/// Inserts the rows' messages into the thread (one multi-row statement), then the rows into the outbox
/// (another).
fn insert(
    conn: &mut DbConnection,
    thread: &Thread,
    psid: &str,
    author: &str,
    rows: &[Row],
) -> QueryResult<()> {
    use crate::db::schema::messages;
    let at = now();
    let messages: Vec<_> = rows
        .iter()
        .filter_map(|row| match &row.what {
            Outgoing::Message {
                message_id,
                text,
                json,
                ..
            } => Some((
                messages::id.eq(DbUuid(*message_id)),
                messages::merchant_id.eq(thread.merchant_id),
                messages::thread_id.eq(thread.id),
                messages::direction.eq(Direction::Out.as_str()),
                messages::author.eq(author),
                messages::kind.eq(if text.is_some() { "text" } else { "template" }),
                messages::mid.eq(None::<&str>),
                messages::text.eq(text.as_deref()),
                messages::payload.eq(Some(json.as_str())),
                messages::occurred_at.eq(at),
                messages::created_at.eq(at),
            )),
            Outgoing::Action => None,
        })
        .collect();
    if !messages.is_empty() {
        // Multi-row inserts are typed per backend: the statement is built in each arm.
        crate::per_backend!(conn, |c| diesel::insert_into(messages::table)
            .values(&messages)
            .execute(c))?;
    }
    let queued: Vec<_> = rows
        .iter()
        .map(|row| {
            let (kind, message_id, messaging_type, tag) = match &row.what {
                Outgoing::Message {
                    message_id,
                    messaging_type,
                    tag,
                    ..
                } => ("message", Some(DbUuid(*message_id)), Some(*messaging_type), *tag),
                Outgoing::Action => ("sender_action", None, None, None),
            };
            (
                outbox::id.eq(DbUuid(row.id)),
                outbox::merchant_id.eq(thread.merchant_id),
                outbox::thread_id.eq(thread.id),
                outbox::message_id.eq(message_id),
                outbox::page_id.eq(&thread.page_id),
                outbox::psid.eq(psid),
                outbox::kind.eq(kind),
                outbox::body.eq(&row.body),
                outbox::messaging_type.eq(messaging_type),
                outbox::tag.eq(tag),
                outbox::status.eq("queued"),
                outbox::attempts.eq(0),
                outbox::next_attempt_at.eq(at),
                outbox::created_at.eq(at),
            )
        })
        .collect();
    crate::per_backend!(conn, |c| diesel::insert_into(outbox::table)
        .values(&queued)
        .execute(c))?;
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

/// Takes the thread's send lease (one sender per thread, across processes) and reads the thread in the
/// same statement; `None` when another sender holds it.
pub fn lease(
    conn: &mut DbConnection,
    thread_id: DbUuid,
    owner: &str,
    until: NaiveDateTime,
) -> QueryResult<Option<Thread>> {
    let at = now();
    prepared::update(
        threads::table,
        (
            threads::send_lease_owner.eq(owner),
            threads::send_lease_until.eq(until),
        ),
        threads::id.eq(thread_id).and(
            threads::send_lease_until
                .is_null()
                .or(threads::send_lease_until.lt(at))
                .or(threads::send_lease_owner.eq(owner)),
        ),
    )
    .returning(Thread::as_returning())
    .get_result(conn)
    .optional()
}

/// Gives the lease back.
pub fn release(conn: &mut DbConnection, thread_id: DbUuid, owner: &str) -> QueryResult<()> {
    let none: Option<NaiveDateTime> = None;
    prepared::update(
        threads::table,
        threads::send_lease_until.eq(none),
        threads::id.eq(thread_id).and(threads::send_lease_owner.eq(owner)),
    )
    .execute(conn)?;
    Ok(())
}

/// The thread's queued sends, in order, with the access token of their Page while it works (a
/// thread's sends all go through its Page), in one round trip.
pub fn queued_with_token(
    conn: &mut DbConnection,
    secrets: &crate::secrets::Secrets,
    thread_id: DbUuid,
) -> QueryResult<(Vec<Queued>, Option<String>)> {
    use crate::db::schema::pages;
    let rows: Vec<(Queued, Option<String>)> = outbox::table
        .left_join(
            pages::table.on(pages::page_id
                .eq(outbox::page_id)
                .and(pages::token_status.eq("ok"))),
        )
        .filter(outbox::thread_id.eq(thread_id))
        .filter(outbox::status.eq("queued"))
        .order(outbox::id.asc())
        .select((Queued::as_select(), pages::access_token.nullable()))
        .load(conn)?;
    let token = match rows.first().and_then(|(_, token)| token.clone()) {
        Some(sealed) => Some(crate::secrets::open_stored(secrets, sealed)?),
        None => None,
    };
    Ok((rows.into_iter().map(|(queued, _)| queued).collect(), token))
}

/// Records Meta's answer to a successful send, with Meta's message id (which the thread's message list
/// reads from here).
pub fn mark_sent(conn: &mut DbConnection, q: &Queued, provider_id: Option<&str>) -> QueryResult<()> {
    prepared::update(
        outbox::table,
        (
            outbox::status.eq("sent"),
            outbox::provider_message_id.eq(provider_id),
            outbox::sent_at.eq(now()),
            outbox::attempts.eq(q.attempts + 1),
        ),
        outbox::id.eq(q.id),
    )
    .execute(conn)?;
    Ok(())
}

/// Schedules another try.
pub fn mark_retry(conn: &mut DbConnection, q: &Queued, error: &str, next: NaiveDateTime) -> QueryResult<()> {
    prepared::update(
        outbox::table,
        (
            outbox::attempts.eq(q.attempts + 1),
            outbox::last_error.eq(error),
            outbox::next_attempt_at.eq(next),
        ),
        outbox::id.eq(q.id),
    )
    .execute(conn)?;
    Ok(())
}

/// Ends a send without it reaching the shopper: `failed`, `expired` (window closed) or `dead` (retries
/// exhausted), with the reason.
pub fn mark_final(conn: &mut DbConnection, q: &Queued, status: &str, error: &str) -> QueryResult<()> {
    prepared::update(
        outbox::table,
        (
            outbox::status.eq(status),
            outbox::attempts.eq(q.attempts + 1),
            outbox::last_error.eq(error),
        ),
        outbox::id.eq(q.id),
    )
    .execute(conn)?;
    Ok(())
}
