//! The sender: drains the outbox in order per thread, within the thread's channel's window and Meta's
//! rate limit, rendering each neutral reply within its channel's limits as it sends it, and records
//! Meta's message id or the final error of every send.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, watch};

use super::{WorkerContext, backoff};
use crate::channels::meta::{self, graph::ErrorClass};
use crate::conversations::outbox::{self, Queued};
use crate::conversations::{MessagingType, OutboxStatus, Thread};
use crate::db::groups::{Groups, together_or_each_alone};
use crate::db::{DbConnection, DbError, now};
use crate::kernel::{Channel, PageId, ThreadId};

/// Sends after this many failed tries are dead-lettered.
const MAX_ATTEMPTS: i32 = 8;
/// Meta allows 300 Send API calls per second per Page.
const PAGE_CALLS_PER_SECOND: u32 = 300;
/// The lease a sender takes on a thread.
const LEASE: chrono::Duration = chrono::Duration::seconds(60);

/// A one-second window of calls per Page, shared by this process's sends.
#[derive(Default)]
struct PageLimiter {
    windows: Mutex<HashMap<PageId, (Instant, u32)>>,
}

impl PageLimiter {
    /// Waits until the Page may take another call.
    async fn acquire(&self, page_id: &PageId) {
        loop {
            let wait = {
                let mut windows = self.windows.lock().await;
                let entry = windows.entry(page_id.to_owned()).or_insert((Instant::now(), 0));
                let elapsed = entry.0.elapsed();
                if elapsed >= Duration::from_secs(1) {
                    *entry = (Instant::now(), 0);
                }
                if entry.1 < PAGE_CALLS_PER_SECOND {
                    entry.1 += 1;
                    None
                } else {
                    Some(Duration::from_secs(1).saturating_sub(elapsed))
                }
            };
            match wait {
                None => return,
                Some(d) => tokio::time::sleep(d).await,
            }
        }
    }
}

/// The most threads one lease or one record statement serves.
const MAX_GROUP: usize = 64;

/// The sender's database work, grouped across the threads being sent to at the same moment: one
/// statement leases and one reads the queues of every thread that asks while the last group is written,
/// and one statement records their outcomes and gives their leases back (two on SQLite; see
/// [`outbox::record`]).
#[derive(Clone)]
struct Books {
    leases: Groups<ThreadId, Option<outbox::Queue>>,
    records: Groups<Record, ()>,
}

/// Outcomes to record, and the thread whose lease to give back after them.
struct Record {
    marks: Vec<outbox::Marked>,
    release: Option<ThreadId>,
}

impl Books {
    fn start(ctx: &WorkerContext) -> Books {
        let (owner, secrets) = (ctx.owner.clone(), ctx.secrets.clone());
        let leases = Groups::start(
            ctx.db.clone(),
            2,
            MAX_GROUP,
            "send leases",
            move |conn, threads| {
                together_or_each_alone(conn, threads, "send leases", |conn, threads| {
                    lease_all(conn, &secrets, threads, &owner)
                })
            },
        );
        let owner = ctx.owner.clone();
        let records = Groups::start(
            ctx.db.clone(),
            2,
            MAX_GROUP,
            "send records",
            move |conn, records| {
                together_or_each_alone(conn, records, "send records", |conn, records| {
                    record_all(conn, records, &owner)
                })
            },
        );
        Books { leases, records }
    }

    /// Records `marks` (and gives `release` back after them); answers once they are committed.
    async fn record(&self, marks: Vec<outbox::Marked>, release: Option<ThreadId>) -> Result<(), DbError> {
        if marks.is_empty() && release.is_none() {
            return Ok(());
        }
        self.records
            .submit(Record { marks, release })
            .await
            .map_err(DbError::from)
    }
}

/// Leases those of `threads` no other sender holds and reads their queues: two statements for the
/// group; `None` for a thread another sender holds, or with nothing queued any more (its lease given
/// back at once, a third statement).
fn lease_all(
    conn: &mut DbConnection,
    secrets: &crate::secrets::Secrets,
    threads: &[ThreadId],
    owner: &str,
) -> diesel::QueryResult<Vec<Option<outbox::Queue>>> {
    let leased = outbox::lease(conn, threads, owner, now() + LEASE)?;
    let queues = outbox::queues(conn, secrets, &leased)?;
    let idle: Vec<ThreadId> = leased
        .iter()
        .zip(&queues)
        .filter(|(_, queue)| queue.is_none())
        .map(|(id, _)| *id)
        .collect();
    if !idle.is_empty() {
        outbox::release(conn, &idle, owner)?;
    }
    let mut queues: HashMap<ThreadId, outbox::Queue> = leased
        .into_iter()
        .zip(queues)
        .filter_map(|(id, queue)| Some((id, queue?)))
        .collect();
    Ok(threads.iter().map(|id| queues.remove(id)).collect())
}

/// Records a group's outcomes and gives back the leases of the threads done (see [`outbox::record`]).
fn record_all(conn: &mut DbConnection, records: &[Record], owner: &str) -> diesel::QueryResult<Vec<()>> {
    let marks: Vec<outbox::Marked> = records.iter().flat_map(|r| r.marks.iter().cloned()).collect();
    let released: Vec<ThreadId> = records.iter().filter_map(|r| r.release).collect();
    outbox::record(conn, &marks, &released, owner)?;
    Ok(vec![(); records.len()])
}

/// How many threads the sender works on at once, per `THREADCART_WORKER_CONCURRENCY`: a send mostly
/// waits for Meta's answer, and its database work is grouped with the others', so many in flight cost no
/// more connections.
const SENDS_PER_WORKER: usize = 8;

/// Sends what is due, [`SENDS_PER_WORKER`] × `worker_concurrency` threads at a time (each under its
/// lease, so one thread's messages go in order across every process).
pub(super) async fn send_loop(ctx: Arc<WorkerContext>, mut stopped: watch::Receiver<bool>) {
    let limiter = Arc::new(PageLimiter::default());
    let books = Books::start(&ctx);
    let due = |limit: usize| {
        let ctx = ctx.clone();
        async move {
            let limit = i64::try_from(limit).unwrap_or(64);
            ctx.db
                .query(move |conn| outbox::threads_due(conn, now(), limit))
                .await
        }
    };
    let work = |thread_id: ThreadId| leased_send(ctx.clone(), books.clone(), limiter.clone(), thread_id);
    let concurrency = ctx.config.worker_concurrency * SENDS_PER_WORKER;
    super::pipeline(
        &ctx.wakers.outbox,
        super::POLL,
        &mut stopped,
        concurrency,
        "sender",
        due,
        work,
    )
    .await;
}

/// What a send came to, recorded on its outbox row.
enum Mark {
    /// Meta took it (with its message id, for messages).
    Sent(Queued, Option<String>),
    /// Try again at the given time.
    Retry(Queued, String, chrono::NaiveDateTime),
    /// It will never reach the shopper: `failed`, `expired` or `dead`, and why.
    Final(Queued, OutboxStatus, String),
}

impl Mark {
    fn queued(&self) -> &Queued {
        let (Mark::Sent(q, _) | Mark::Retry(q, ..) | Mark::Final(q, ..)) = self;
        q
    }

    /// The row to record.
    fn marked(self) -> outbox::Marked {
        let (q, outcome) = match self {
            Mark::Sent(q, id) => (q, outbox::Outcome::Sent(id)),
            Mark::Retry(q, error, next) => (q, outbox::Outcome::Retry(error, next)),
            Mark::Final(q, status, error) => (q, outbox::Outcome::Final(status, error)),
        };
        outbox::Marked {
            id: q.id,
            attempts: q.attempts + 1,
            outcome,
        }
    }

    /// A message's outcome (not a sender action's, which may be recorded late: sending one twice after a
    /// crash does no harm).
    fn of_message(&self) -> bool {
        self.queued().kind == "message"
    }
}

/// Leases the thread and reads its queue and its Page's token (with the other threads asking at the same
/// moment), sends what is due, and records the last outcomes together with giving the lease back.
async fn leased_send(
    ctx: Arc<WorkerContext>,
    books: Books,
    limiter: Arc<PageLimiter>,
    thread_id: ThreadId,
) -> Result<usize, DbError> {
    let Some(outbox::Queue { thread, queued, page }) = books.leases.submit(thread_id).await? else {
        return Ok(0);
    };
    let mut marks = Vec::new();
    let result = send_thread(&ctx, &books, &limiter, &thread, queued, page, &mut marks).await;
    let marks = marks.into_iter().map(Mark::marked).collect();
    books.record(marks, Some(thread_id)).await?;
    result
}

/// Sends the thread's due messages in order. A message's outcome is recorded before the next send (so a
/// crash can repeat at most the one send in flight); the outcomes still in `marks` at the end (sender
/// actions', the last message's) are left for the caller to record with the lease's release.
async fn send_thread(
    ctx: &WorkerContext,
    books: &Books,
    limiter: &PageLimiter,
    thread: &Thread,
    queued: Vec<Queued>,
    mut page: Option<outbox::SendingPage>,
    marks: &mut Vec<Mark>,
) -> Result<usize, DbError> {
    let mut handled = 0;
    for q in queued {
        if q.next_attempt_at > now() {
            break;
        }
        if marks.iter().any(Mark::of_message) {
            let done = std::mem::take(marks).into_iter().map(Mark::marked).collect();
            books.record(done, None).await?;
        }
        handled += 1;
        // The window is checked again at sending time: it may have closed while the message waited.
        let messaging_type = MessagingType::from_wire(q.messaging_type.as_deref());
        if !thread.window().still_allows(thread, now(), messaging_type) {
            marks.push(Mark::Final(
                q,
                OutboxStatus::Expired,
                "the messaging window closed before sending".into(),
            ));
            continue;
        }
        let Some(sending) = page.as_ref() else {
            marks.push(Mark::Final(
                q,
                OutboxStatus::Failed,
                "the Page is disconnected or its token is broken".into(),
            ));
            continue;
        };
        let queued = meta::Queued {
            id: q.id.0,
            psid: &q.psid,
            kind: &q.kind,
            body: &q.body,
            messaging_type: q.messaging_type.as_deref(),
        };
        let bodies = match thread.channel {
            Channel::Whatsapp => {
                crate::channels::whatsapp::send_bodies(queued, sending.catalog_id.as_deref())
                    .map_err(|e| e.to_string())
            }
            channel => meta::send_bodies(channel, queued).map_err(|e| e.to_string()),
        };
        let bodies = match bodies {
            Ok(bodies) => bodies,
            Err(e) => {
                tracing::error!(outbox.id = %q.id.0, error = %e, "a queued reply cannot be rendered");
                marks.push(Mark::Final(
                    q,
                    OutboxStatus::Failed,
                    format!("cannot be rendered: {e}"),
                ));
                continue;
            }
        };
        match send_parts(ctx, limiter, &q, sending, &bodies).await {
            Ok(message_id) => marks.push(Mark::Sent(q, message_id)),
            Err(e) => {
                let class = e.class();
                let error = e.to_string();
                // Typing indicators and read marks are best effort: a failed one never holds up the
                // messages behind it.
                if q.kind == "sender_action" && class != ErrorClass::TokenBroken {
                    marks.push(Mark::Final(q, OutboxStatus::Failed, error));
                    continue;
                }
                tracing::warn!(outbox.id = %q.id.0, page.id = %q.page_id, ?class, error = %error, "send failed");
                match class {
                    ErrorClass::Retry if q.attempts + 1 < MAX_ATTEMPTS => {
                        let next = now() + backoff(ctx.config.retry_base, q.attempts);
                        marks.push(Mark::Retry(q, error, next));
                        // Later messages of this thread wait, to keep their order.
                        break;
                    }
                    ErrorClass::Retry => marks.push(Mark::Final(q, OutboxStatus::Dead, error)),
                    ErrorClass::TokenBroken => {
                        let page_id = sending.page_id.clone();
                        ctx.db
                            .query(move |conn| crate::merchants::pages::mark_token_broken(conn, &page_id))
                            .await?;
                        // The rest of the batch is not sent with the broken token.
                        page = None;
                        marks.push(Mark::Final(q, OutboxStatus::Failed, error));
                    }
                    ErrorClass::OutsideWindow | ErrorClass::Unreachable | ErrorClass::Permanent => {
                        marks.push(Mark::Final(q, OutboxStatus::Failed, error))
                    }
                }
            }
        }
    }
    Ok(handled)
}

/// Sends the Send API messages of one queued send in order, from the first not sent yet (a reply sent
/// in several remembers how many went, so a retry never repeats them); answers Meta's id of the last.
async fn send_parts(
    ctx: &WorkerContext,
    limiter: &PageLimiter,
    q: &Queued,
    page: &outbox::SendingPage,
    bodies: &[String],
) -> Result<Option<String>, crate::channels::meta::graph::GraphError> {
    let from = usize::try_from(q.parts_sent).unwrap_or(0);
    let mut message_id = None;
    for (part, body) in bodies.iter().enumerate().skip(from) {
        limiter.acquire(&page.page_id).await;
        message_id = ctx.graph.send(&page.page_id, &page.token, body).await?;
        let sent = i32::try_from(part + 1).unwrap_or(i32::MAX);
        if part + 1 < bodies.len() {
            let q = q.clone();
            if let Err(e) = ctx
                .db
                .query(move |conn| outbox::mark_parts_sent(conn, &q, sent))
                .await
            {
                tracing::warn!(error = %e, "progress of a reply sent in parts not saved");
            }
        }
    }
    Ok(message_id)
}
