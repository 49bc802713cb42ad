//! The merchant's live feed: what happens in conversations with a person (queued, assigned, released,
//! messages in and out, read), every cart changed, checkout opened and order paid, written in the transaction that made it happen and
//! read by `GET /v1/events` (Server-Sent Events, resumable with `Last-Event-ID`). Ids are UUIDv7, so
//! "after this id" is "later".

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::Value;
use uuid::Uuid;

use crate::conversations::Thread;
use crate::db::schema::merchant_events;
use crate::db::{DbConnection, DbUuid, now};
use crate::kernel::{MerchantId, ThreadId};

crate::text_state! {
    /// What happened.
    EventKind {
        /// A thread was handed to a person and waits in the queue.
        ThreadQueued = "thread.queued",
        /// A waiting thread was given to an agent.
        ThreadAssigned = "thread.assigned",
        /// A thread left its agent (offline, silent, removed) or went back to the bot.
        ThreadReleased = "thread.released",
        /// The shopper wrote in a thread with a person.
        MessageIn = "message.in",
        /// A person wrote to the shopper.
        MessageOut = "message.out",
        /// The shopper read the thread's messages.
        MessageRead = "message.read",
        /// The shopper's cart changed.
        CartChanged = "cart.changed",
        /// A checkout was opened for the shopper (by them or an agent).
        CheckoutOpened = "checkout.opened",
        /// An order was paid.
        OrderPaid = "order.paid",
    }
}

/// Who sees an event besides the owner's and marketing's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Every agent (the queue's events).
    Agents,
    /// The agent whose thread it is.
    Agent(Uuid),
    /// No agent (a thread with the bot).
    Nobody,
}

/// Records an event of `merchant_id`.
pub fn record(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    kind: EventKind,
    thread: Option<ThreadId>,
    audience: Audience,
    data: &Value,
) -> QueryResult<()> {
    let (agent, for_agents) = match audience {
        Audience::Agents => (None, true),
        Audience::Agent(a) => (Some(a), true),
        Audience::Nobody => (None, false),
    };
    diesel::insert_into(merchant_events::table)
        .values((
            merchant_events::id.eq(DbUuid(Uuid::now_v7())),
            merchant_events::merchant_id.eq(merchant_id),
            merchant_events::kind.eq(kind),
            merchant_events::thread_id.eq(thread),
            merchant_events::agent_id.eq(agent.map(DbUuid)),
            merchant_events::for_agents.eq(for_agents),
            merchant_events::data.eq(data.to_string()),
            merchant_events::created_at.eq(now()),
        ))
        .execute(conn)?;
    Ok(())
}

/// Records an event of a thread: seen by its agent, by every agent while it waits in the queue, by no
/// agent while it is with the bot.
pub fn of_thread(conn: &mut DbConnection, thread: &Thread, kind: EventKind, data: &Value) -> QueryResult<()> {
    record(
        conn,
        thread.merchant_id,
        kind,
        Some(thread.id),
        audience_of(thread),
        data,
    )
}

/// Which agents see the events of `thread` now.
pub fn audience_of(thread: &Thread) -> Audience {
    match (thread.assigned_agent_id, thread.queued_at) {
        (Some(agent), _) => Audience::Agent(agent.0),
        (None, Some(_)) => Audience::Agents,
        (None, None) => Audience::Nobody,
    }
}

/// An event as the feed reads it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = merchant_events)]
pub struct Event {
    /// Id (UUIDv7: later is greater).
    pub id: DbUuid,
    /// What happened.
    pub kind: EventKind,
    /// The thread.
    pub thread_id: Option<ThreadId>,
    /// The agent whose thread it is.
    pub agent_id: Option<DbUuid>,
    /// Details, as JSON.
    pub data: String,
    /// When.
    pub created_at: NaiveDateTime,
}

/// The merchant's events after `after` (all kept ones when none), oldest first, at most `limit`; for an
/// agent's own key (`agent`), only theirs and the queue's.
pub fn after(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    agent: Option<Uuid>,
    after: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<Event>> {
    let mut query = merchant_events::table
        .filter(merchant_events::merchant_id.eq(merchant_id))
        .order(merchant_events::id.asc())
        .limit(limit)
        .select(Event::as_select())
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(merchant_events::id.gt(DbUuid(after)));
    }
    if let Some(agent) = agent {
        query = query.filter(merchant_events::for_agents).filter(
            merchant_events::agent_id
                .is_null()
                .or(merchant_events::agent_id.eq(DbUuid(agent))),
        );
    }
    query.load(conn)
}

/// How long events are kept for streams to resume from.
pub const KEPT: chrono::Duration = chrono::Duration::days(7);

/// Forgets events older than [`KEPT`] at `at`, at most `limit` of them; answers how many.
pub fn prune(conn: &mut DbConnection, at: NaiveDateTime, limit: i64) -> QueryResult<usize> {
    let old: Vec<DbUuid> = merchant_events::table
        .filter(merchant_events::created_at.lt(at - KEPT))
        .order(merchant_events::id.asc())
        .limit(limit)
        .select(merchant_events::id)
        .load(conn)?;
    if old.is_empty() {
        return Ok(0);
    }
    diesel::delete(merchant_events::table.filter(merchant_events::id.eq_any(old))).execute(conn)
}

/// The id of the merchant's newest event: a stream without `Last-Event-ID` starts after it.
pub fn newest(conn: &mut DbConnection, merchant_id: MerchantId) -> QueryResult<Option<Uuid>> {
    Ok(merchant_events::table
        .filter(merchant_events::merchant_id.eq(merchant_id))
        .order(merchant_events::id.desc())
        .select(merchant_events::id)
        .first::<DbUuid>(conn)
        .optional()?
        .map(|id| id.0))
}
