//! The durable outbox: every message to a shopper is first recorded here, in the same transaction as what
//! caused it, so a crash never loses a reply and processing an event twice can never queue its reply
//! twice.
//!
//! On a Meta channel (Messenger, Instagram) each reply is also a row for the sender worker, which sends
//! them in order per thread: the row holds the neutral reply (or a sender action), and the channel
//! renders it within its own limits when it is sent. On the web chat the thread's messages are the
//! stream the visitor reads, so a reply is only recorded.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use uuid::Uuid;

use super::window::MessagingType;
use crate::conversations::{Direction, OutboxStatus, Thread};
use crate::db::schema::{outbox, send_leases, threads};
use crate::db::{DbConnection, DbUuid, now, prepared};
use crate::engine::reply::Reply;
use crate::kernel::{PageId, Psid, ThreadId};

/// What a send shows the shopper besides messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SenderAction {
    /// The shopper's message was seen.
    MarkSeen,
    /// An answer is on its way.
    TypingOn,
}

impl SenderAction {
    /// The Send API name (stored as the row's body).
    pub fn as_str(self) -> &'static str {
        match self {
            SenderAction::MarkSeen => "mark_seen",
            SenderAction::TypingOn => "typing_on",
        }
    }
}

/// One send to queue: a message (recorded on the thread too) or a sender action.
enum Outgoing {
    Message {
        message_id: Uuid,
        kind: &'static str,
        text: Option<String>,
        messaging_type: MessagingType,
    },
    Action,
}

/// A row of the outbox, ready to insert.
struct Row {
    id: Uuid,
    body: String,
    what: Outgoing,
}

/// The row (and the thread's message) for `reply`.
fn message_row(reply: &Reply, messaging_type: MessagingType) -> Row {
    let kind = match reply {
        Reply::Text { .. } => "text",
        Reply::Cards(_) | Reply::Buttons { .. } | Reply::Receipt(_) => "template",
        Reply::Utility(_) => "utility",
    };
    Row {
        id: Uuid::now_v7(),
        body: reply.to_json().to_string(),
        what: Outgoing::Message {
            message_id: Uuid::now_v7(),
            kind,
            text: reply.text_of().map(str::to_owned),
            messaging_type,
        },
    }
}

/// The row for a sender action.
fn action_row(action: SenderAction) -> Row {
    Row {
        id: Uuid::now_v7(),
        body: action.as_str().to_owned(),
        what: Outgoing::Action,
    }
}

/// Queues `reply` to the thread's shopper and records it on the thread.
pub fn enqueue_message(
    conn: &mut DbConnection,
    thread: &Thread,
    psid: &Psid,
    reply: &Reply,
    author: &str,
    messaging_type: MessagingType,
) -> QueryResult<()> {
    insert(conn, thread, psid, author, &[message_row(reply, messaging_type)])
}

/// Queues the bot's replies to the shopper, in order, after marking the shopper's message seen (when
/// `mark_seen`) and a typing indicator when there are several (cards with pictures take a moment to
/// arrive), and records them on the thread: two statements whatever their number.
pub fn enqueue_replies(
    conn: &mut DbConnection,
    thread: &Thread,
    psid: &Psid,
    mark_seen: bool,
    replies: &[Reply],
) -> QueryResult<()> {
    let mut rows = Vec::with_capacity(replies.len() + 2);
    if mark_seen {
        rows.push(action_row(SenderAction::MarkSeen));
    }
    if replies.len() > 1 {
        rows.push(action_row(SenderAction::TypingOn));
    }
    rows.extend(replies.iter().map(|r| message_row(r, MessagingType::Response)));
    insert(conn, thread, psid, "bot", &rows)
}

/// Queues a sender action.
pub fn enqueue_action(
    conn: &mut DbConnection,
    thread: &Thread,
    psid: &Psid,
    action: SenderAction,
) -> QueryResult<()> {
    insert(conn, thread, psid, "bot", &[action_row(action)])
}

/// Inserts the rows' messages into the thread (one multi-row statement), then, on a Meta channel, the
/// rows into the outbox (another).
fn insert(
    conn: &mut DbConnection,
    thread: &Thread,
    psid: &Psid,
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
                kind,
                text,
                ..
            } => Some((
                messages::id.eq(DbUuid(*message_id)),
                messages::merchant_id.eq(thread.merchant_id),
                messages::thread_id.eq(thread.id),
                messages::direction.eq(Direction::Out.as_str()),
                messages::author.eq(author),
                messages::kind.eq(*kind),
                messages::mid.eq(None::<&str>),
                messages::text.eq(text.as_deref()),
                messages::payload.eq(Some(row.body.as_str())),
                messages::occurred_at.eq(at),
                messages::created_at.eq(at),
                messages::channel.eq(&thread.channel),
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
    if !thread.channel.via_graph() {
        return Ok(());
    }
    let queued: Vec<_> = rows
        .iter()
        .map(|row| {
            let (kind, message_id, wire) = match &row.what {
                Outgoing::Message {
                    message_id,
                    messaging_type,
                    ..
                } => ("message", Some(DbUuid(*message_id)), Some(messaging_type.wire())),
                Outgoing::Action => ("sender_action", None, None),
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
                outbox::messaging_type.eq(wire.map(|(t, _)| t)),
                outbox::tag.eq(wire.and_then(|(_, tag)| tag)),
                outbox::status.eq(OutboxStatus::Queued),
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
    pub thread_id: ThreadId,
    /// The channel account.
    pub page_id: PageId,
    /// The shopper.
    pub psid: Psid,
    /// `message` or `sender_action`.
    pub kind: String,
    /// A message's neutral reply as JSON; a sender action's name. (Rows queued before replies were
    /// neutral hold a whole Send API body.)
    pub body: String,
    /// `RESPONSE` or `MESSAGE_TAG`.
    pub messaging_type: Option<String>,
    /// Tries so far.
    pub attempts: i32,
    /// Not before.
    pub next_attempt_at: NaiveDateTime,
    /// How many Send API messages of a reply sent in several went already.
    pub parts_sent: i32,
}

/// Threads with a send due now.
pub fn threads_due(conn: &mut DbConnection, at: NaiveDateTime, limit: i64) -> QueryResult<Vec<ThreadId>> {
    outbox::table
        .filter(outbox::status.eq(OutboxStatus::Queued))
        .filter(outbox::next_attempt_at.le(at))
        .select(outbox::thread_id)
        .distinct()
        .limit(limit)
        .load(conn)
}

/// Takes the send lease of those of `threads` no other sender holds (one sender per thread, across
/// processes), in one statement (an upsert into `send_leases`, whose rows only the sender touches: a
/// shopper's turn holding the thread's row never waits for it, nor it for the turn); answers the threads
/// leased.
pub fn lease(
    conn: &mut DbConnection,
    threads: &[ThreadId],
    owner: &str,
    until: NaiveDateTime,
) -> QueryResult<Vec<ThreadId>> {
    if threads.is_empty() {
        return Ok(Vec::new());
    }
    let at = now();
    match conn {
        #[cfg(feature = "postgres")]
        DbConnection::Postgres(c) => LeaseOnPostgres {
            threads,
            owner,
            until,
            at,
        }
        .load(c),
        DbConnection::Sqlite(c) => {
            use diesel::sql_types::{Text, Timestamp};
            let values = vec!["(?, ?, ?)"; threads.len()].join(", ");
            let sql = format!("{LEASE_INTO}VALUES {values}{LEASE_WHEN_FREE}?{LEASE_RETURNING}");
            let mut query = diesel::sql_query(sql).into_boxed();
            for thread in threads {
                query = query
                    .bind::<crate::db::PortableUuid, _>(*thread)
                    .bind::<Text, _>(owner)
                    .bind::<Timestamp, _>(until);
            }
            let leased: Vec<LeasedRow> = query.bind::<Timestamp, _>(at).load(c)?;
            Ok(leased.into_iter().map(|row| row.thread_id).collect())
        }
    }
}

/// [`lease`]'s statement, around the rows to insert and the time leases run out before.
const LEASE_INTO: &str = "INSERT INTO send_leases (thread_id, owner, lease_until) ";
const LEASE_WHEN_FREE: &str = " ON CONFLICT (thread_id) DO UPDATE SET owner = excluded.owner, \
     lease_until = excluded.lease_until WHERE send_leases.lease_until IS NULL \
     OR send_leases.owner = excluded.owner OR send_leases.lease_until < ";
const LEASE_RETURNING: &str = " RETURNING thread_id";

/// A thread [`lease`] leased (on SQLite, whose statement is untyped text).
#[derive(QueryableByName)]
struct LeasedRow {
    #[diesel(sql_type = crate::db::PortableUuid)]
    thread_id: ThreadId,
}

/// [`lease`]'s PostgreSQL statement: the threads come as an array (`SELECT unnest($1), $2, $3`), so its
/// text never changes and the connection prepares it once.
#[cfg(feature = "postgres")]
struct LeaseOnPostgres<'a> {
    threads: &'a [ThreadId],
    owner: &'a str,
    until: NaiveDateTime,
    at: NaiveDateTime,
}

#[cfg(feature = "postgres")]
impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for LeaseOnPostgres<'_> {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> QueryResult<()> {
        use diesel::sql_types::{Array, Text, Timestamp};
        out.push_sql(LEASE_INTO);
        out.push_sql("SELECT unnest(");
        out.push_bind_param::<Array<crate::db::PortableUuid>, _>(&self.threads)?;
        out.push_sql("), ");
        out.push_bind_param::<Text, _>(&self.owner)?;
        out.push_sql(", ");
        out.push_bind_param::<Timestamp, _>(&self.until)?;
        out.push_sql(LEASE_WHEN_FREE);
        out.push_bind_param::<Timestamp, _>(&self.at)?;
        out.push_sql(LEASE_RETURNING);
        Ok(())
    }
}

#[cfg(feature = "postgres")]
impl diesel::query_builder::Query for LeaseOnPostgres<'_> {
    type SqlType = crate::db::PortableUuid;
}

#[cfg(feature = "postgres")]
crate::fixed_text_statement!(LeaseOnPostgres);

/// Gives the leases of `threads` back, in one statement (keyed on the primary key for one thread, whose
/// prepared plan never scans the table).
pub fn release(conn: &mut DbConnection, threads: &[ThreadId], owner: &str) -> QueryResult<()> {
    let none: Option<NaiveDateTime> = None;
    let mine = send_leases::owner.eq(owner);
    match threads {
        [one] => prepared::update(
            send_leases::table,
            send_leases::lease_until.eq(none),
            send_leases::thread_id.eq(one).and(mine),
        )
        .execute(conn)?,
        many => prepared::update(
            send_leases::table,
            send_leases::lease_until.eq(none),
            send_leases::thread_id.eq_any(many).and(mine),
        )
        .execute(conn)?,
    };
    Ok(())
}

/// The Page a thread's sends go through: a Messenger thread's own Page, or the Page an Instagram
/// account is connected to; with its access token while it works (never shown by `Debug`).
#[derive(Clone)]
pub struct SendingPage {
    /// The Page's id (the Send API's `/{page-id}/messages`).
    pub page_id: PageId,
    /// Its access token.
    pub token: String,
    /// The Meta catalog linked to it (a WhatsApp number's), for product messages.
    pub catalog_id: Option<String>,
}

impl std::fmt::Debug for SendingPage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendingPage")
            .field("page_id", &self.page_id)
            .field("token", &"[redacted]")
            .field("catalog_id", &self.catalog_id)
            .finish()
    }
}

/// A thread's queued sends, in order, with the Page they go through while its token works.
pub struct Queue {
    /// The thread.
    pub thread: Thread,
    /// Its queued sends, in order.
    pub queued: Vec<Queued>,
    /// The Page they go through, while its token works.
    pub page: Option<SendingPage>,
}

/// The queued sends of each of `threads`, in order, with the thread and the Page they go through while
/// its token works, in one statement: one entry per thread, in the order of `threads` (`None` when
/// nothing is queued on it).
pub fn queues(
    conn: &mut DbConnection,
    secrets: &crate::secrets::Secrets,
    threads: &[ThreadId],
) -> QueryResult<Vec<Option<Queue>>> {
    use crate::db::schema::pages;
    use std::collections::HashMap;
    type Row = (Queued, Thread, Option<PageId>, Option<String>, Option<String>);
    let rows: Vec<Row> = outbox::table
        .inner_join(threads::table)
        .left_join(
            pages::table.on(pages::page_id
                .eq(outbox::page_id)
                .or(pages::instagram_account_id.eq(outbox::page_id.nullable()))
                .and(pages::token_status.eq(crate::merchants::pages::TokenStatus::Ok))),
        )
        .filter(outbox::thread_id.eq_any(threads))
        .filter(outbox::status.eq(OutboxStatus::Queued))
        .order(outbox::id.asc())
        .select((
            Queued::as_select(),
            Thread::as_select(),
            pages::page_id.nullable(),
            pages::access_token.nullable(),
            pages::catalog_id.nullable(),
        ))
        .load(conn)?;
    let mut by_thread: HashMap<ThreadId, Vec<Row>> = HashMap::new();
    for row in rows {
        by_thread.entry(row.0.thread_id).or_default().push(row);
    }
    // A token is opened once per Page, however many of its threads are in the group.
    let mut opened: HashMap<PageId, String> = HashMap::new();
    threads
        .iter()
        .map(|id| {
            let mut rows = by_thread.remove(id).unwrap_or_default().into_iter();
            let Some((first, thread, page_id, sealed, catalog_id)) = rows.next() else {
                return Ok(None);
            };
            let page = match (page_id, sealed) {
                (Some(page_id), Some(sealed)) => {
                    let token = match opened.get(&page_id) {
                        Some(token) => token.clone(),
                        None => {
                            let token = crate::secrets::open_stored(secrets, sealed)?;
                            opened.insert(page_id.clone(), token.clone());
                            token
                        }
                    };
                    Some(SendingPage {
                        page_id,
                        token,
                        catalog_id,
                    })
                }
                _ => None,
            };
            let queued = std::iter::once(first)
                .chain(rows.map(|(queued, ..)| queued))
                .collect();
            Ok(Some(Queue { thread, queued, page }))
        })
        .collect()
}

/// What became of one try of a send.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The channel took it, with its message id (for messages).
    Sent(Option<String>),
    /// Try again at the given time, after this error.
    Retry(String, NaiveDateTime),
    /// It will never reach the shopper: `failed`, `expired` or `dead`, and why.
    Final(OutboxStatus, String),
}

/// A try of a send, to record on its row.
#[derive(Debug, Clone)]
pub struct Marked {
    /// The outbox row.
    pub id: DbUuid,
    /// Its tries, this one included.
    pub attempts: i32,
    /// What the try came to.
    pub outcome: Outcome,
}

/// How [`record`] marks rows: from a relation `v` whose columns are, in order, the row's id, status,
/// channel message id, sending time, tries, last error and next try.
const SET_MARKS: &str = "UPDATE outbox SET status = v.column2, \
     provider_message_id = COALESCE(v.column3, outbox.provider_message_id), \
     sent_at = COALESCE(v.column4, outbox.sent_at), attempts = v.column5, \
     last_error = COALESCE(v.column6, outbox.last_error), \
     next_attempt_at = COALESCE(v.column7, outbox.next_attempt_at) FROM ";
const WHERE_MARKS: &str = " WHERE outbox.id = v.column1";

/// The values [`record`] writes, column by column.
#[derive(Default)]
struct MarkColumns {
    ids: Vec<DbUuid>,
    statuses: Vec<&'static str>,
    provider_ids: Vec<Option<String>>,
    sent_at: Vec<Option<NaiveDateTime>>,
    attempts: Vec<i32>,
    errors: Vec<Option<String>>,
    next: Vec<Option<NaiveDateTime>>,
}

impl MarkColumns {
    fn of(marks: &[Marked], at: NaiveDateTime) -> MarkColumns {
        let mut columns = MarkColumns::default();
        for mark in marks {
            let (status, provider_id, sent_at, error, next) = match &mark.outcome {
                Outcome::Sent(id) => (OutboxStatus::Sent, id.clone(), Some(at), None, None),
                Outcome::Retry(error, next) => {
                    (OutboxStatus::Queued, None, None, Some(error.clone()), Some(*next))
                }
                Outcome::Final(status, error) => (*status, None, None, Some(error.clone()), None),
            };
            columns.ids.push(mark.id);
            columns.statuses.push(status.as_str());
            columns.provider_ids.push(provider_id);
            columns.sent_at.push(sent_at);
            columns.attempts.push(mark.attempts);
            columns.errors.push(error);
            columns.next.push(next);
        }
        columns
    }
}

/// The most rows one SQLite `record` statement marks (its bound values stay far below SQLite's limit).
const MARKS_PER_SQLITE_STATEMENT: usize = 500;

/// Records the tries `marks` on their rows (a sent row becomes `sent` with the channel's message id,
/// which the thread's message list reads from here; a retried one waits until its next time; a final one
/// takes its status; each keeps its tries and its last error), then gives back the send leases `owner`
/// holds on `release`: never before the outcomes are committed, so no other sender sends a message
/// again.
///
/// One row and one lease (a thread sent to alone) take one prepared `UPDATE` each, keyed on the primary
/// key. More rows take one statement for the group: on PostgreSQL the rows come as arrays (`UPDATE ...
/// FROM unnest(...)`) and the release runs in the same statement (a data-modifying `WITH`), its text
/// the same whatever the number of rows; on SQLite (in-process, where preparing costs little) the rows
/// come as `VALUES`, and the release is a statement of its own, after. (PostgreSQL plans the array
/// statement at each call: with an array of unknown length its one-for-all plan would scan `threads`.
/// For one row the prepared key lookups cost less.)
pub fn record(
    conn: &mut DbConnection,
    marks: &[Marked],
    release: &[ThreadId],
    owner: &str,
) -> QueryResult<()> {
    if marks.len() <= 1 {
        if let Some(mark) = marks.first() {
            mark_one(conn, mark)?;
        }
        if !release.is_empty() {
            self::release(conn, release, owner)?;
        }
        return Ok(());
    }
    let columns = MarkColumns::of(marks, now());
    match conn {
        #[cfg(feature = "postgres")]
        DbConnection::Postgres(c) => {
            RecordOnPostgres {
                columns,
                release,
                owner,
            }
            .execute(c)?;
        }
        DbConnection::Sqlite(c) => {
            use diesel::sql_types::{Integer, Nullable, Text, Timestamp};
            for start in (0..marks.len()).step_by(MARKS_PER_SQLITE_STATEMENT) {
                let rows = start..(start + MARKS_PER_SQLITE_STATEMENT).min(marks.len());
                let values = vec!["(?, ?, ?, ?, ?, ?, ?)"; rows.len()].join(", ");
                let sql = format!("{SET_MARKS}(VALUES {values}) AS v{WHERE_MARKS}");
                let mut query = diesel::sql_query(sql).into_boxed();
                for i in rows {
                    query = query
                        .bind::<crate::db::PortableUuid, _>(columns.ids[i])
                        .bind::<Text, _>(columns.statuses[i])
                        .bind::<Nullable<Text>, _>(columns.provider_ids[i].clone())
                        .bind::<Nullable<Timestamp>, _>(columns.sent_at[i])
                        .bind::<Integer, _>(columns.attempts[i])
                        .bind::<Nullable<Text>, _>(columns.errors[i].clone())
                        .bind::<Nullable<Timestamp>, _>(columns.next[i]);
                }
                query.execute(c)?;
            }
            if !release.is_empty() {
                self::release(conn, release, owner)?;
            }
        }
    }
    Ok(())
}

/// Records one try, in the prepared statement of its outcome.
fn mark_one(conn: &mut DbConnection, mark: &Marked) -> QueryResult<()> {
    let row = outbox::id.eq(mark.id);
    match &mark.outcome {
        Outcome::Sent(provider_id) => prepared::update(
            outbox::table,
            (
                outbox::status.eq(OutboxStatus::Sent),
                outbox::provider_message_id.eq(provider_id.as_deref()),
                outbox::sent_at.eq(now()),
                outbox::attempts.eq(mark.attempts),
            ),
            row,
        )
        .execute(conn)?,
        Outcome::Retry(error, next) => prepared::update(
            outbox::table,
            (
                outbox::attempts.eq(mark.attempts),
                outbox::last_error.eq(error),
                outbox::next_attempt_at.eq(next),
            ),
            row,
        )
        .execute(conn)?,
        Outcome::Final(status, error) => prepared::update(
            outbox::table,
            (
                outbox::status.eq(status),
                outbox::attempts.eq(mark.attempts),
                outbox::last_error.eq(error),
            ),
            row,
        )
        .execute(conn)?,
    };
    Ok(())
}

/// [`record`]'s PostgreSQL statement: `WITH marked AS (UPDATE outbox ... FROM unnest($1, ..., $7) AS
/// v(column1, ..., column7) ...) UPDATE send_leases SET lease_until = NULL WHERE thread_id = ANY($8)
/// AND owner = $9`. Its text never changes, so the connection prepares it once.
#[cfg(feature = "postgres")]
struct RecordOnPostgres<'a> {
    columns: MarkColumns,
    release: &'a [ThreadId],
    owner: &'a str,
}

#[cfg(feature = "postgres")]
impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for RecordOnPostgres<'_> {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> QueryResult<()> {
        use diesel::sql_types::{Array, Integer, Nullable, Text, Timestamp};
        let c = &self.columns;
        out.push_sql("WITH marked AS (");
        out.push_sql(SET_MARKS);
        out.push_sql("unnest(");
        out.push_bind_param::<Array<crate::db::PortableUuid>, _>(&c.ids)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&c.statuses)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&c.provider_ids)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Timestamp>>, _>(&c.sent_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Integer>, _>(&c.attempts)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&c.errors)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Timestamp>>, _>(&c.next)?;
        out.push_sql(") AS v(column1, column2, column3, column4, column5, column6, column7)");
        out.push_sql(WHERE_MARKS);
        out.push_sql(") UPDATE send_leases SET lease_until = NULL WHERE thread_id = ANY(");
        out.push_bind_param::<Array<crate::db::PortableUuid>, _>(&self.release)?;
        out.push_sql(") AND owner = ");
        out.push_bind_param::<Text, _>(&self.owner)?;
        Ok(())
    }
}

#[cfg(feature = "postgres")]
crate::fixed_text_statement!(RecordOnPostgres);

/// Records that the first `parts` Send API messages of a reply sent in several went out.
pub fn mark_parts_sent(conn: &mut DbConnection, q: &Queued, parts: i32) -> QueryResult<()> {
    prepared::update(outbox::table, outbox::parts_sent.eq(parts), outbox::id.eq(q.id)).execute(conn)?;
    Ok(())
}

/// The channel says our sent message `provider_id` of `thread` will not reach the shopper (WhatsApp's
/// `failed` status): its row becomes `failed` with the channel's error. Answers whether one did.
pub fn mark_failed_after_sending(
    conn: &mut DbConnection,
    thread: ThreadId,
    provider_id: &str,
    error: &str,
) -> QueryResult<bool> {
    let n = diesel::update(
        outbox::table
            .filter(outbox::thread_id.eq(thread))
            .filter(outbox::provider_message_id.eq(provider_id))
            .filter(outbox::status.eq(OutboxStatus::Sent)),
    )
    .set((
        outbox::status.eq(OutboxStatus::Failed),
        outbox::last_error.eq(error),
    ))
    .execute(conn)?;
    Ok(n > 0)
}
