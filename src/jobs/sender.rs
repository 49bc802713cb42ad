//! The sender: drains the outbox in order per thread, within the messaging window and Meta's rate limit,
//! and records Meta's message id or the final error of every send.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, watch};

use super::{WorkerContext, backoff};
use crate::conversations::{HUMAN_AGENT_WINDOW, Thread};
use crate::db::{DbConnection, DbError, DbUuid, now};
use crate::messenger::graph::ErrorClass;
use crate::messenger::outbox::{self, Queued};

/// Sends after this many failed tries are dead-lettered.
const MAX_ATTEMPTS: i32 = 8;
/// Meta allows 300 Send API calls per second per Page.
const PAGE_CALLS_PER_SECOND: u32 = 300;
/// The lease a sender takes on a thread.
const LEASE: chrono::Duration = chrono::Duration::seconds(60);

/// A one-second window of calls per Page, shared by this process's sends.
#[derive(Default)]
struct PageLimiter {
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

impl PageLimiter {
    /// Waits until the Page may take another call.
    async fn acquire(&self, page_id: &str) {
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

/// Sends what is due, `worker_concurrency` threads at a time (each under its lease, so one thread's
/// messages go in order across every process).
pub(super) async fn send_loop(ctx: Arc<WorkerContext>, mut stopped: watch::Receiver<bool>) {
    let limiter = Arc::new(PageLimiter::default());
    let due = |limit: usize| {
        let ctx = ctx.clone();
        async move {
            let limit = i64::try_from(limit).unwrap_or(64);
            ctx.db
                .query(move |conn| outbox::threads_due(conn, now(), limit))
                .await
        }
    };
    let work = |thread_id: DbUuid| leased_send(ctx.clone(), limiter.clone(), thread_id);
    let concurrency = ctx.config.worker_concurrency;
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
    Final(Queued, &'static str, String),
}

impl Mark {
    fn record(&self, conn: &mut DbConnection) -> diesel::QueryResult<()> {
        match self {
            Mark::Sent(q, id) => outbox::mark_sent(conn, q, id.as_deref()),
            Mark::Retry(q, error, next) => outbox::mark_retry(conn, q, error, *next),
            Mark::Final(q, status, error) => outbox::mark_final(conn, q, status, error),
        }
    }

    /// A message's outcome (not a sender action's, which may be recorded late: sending one twice after a
    /// crash does no harm).
    fn of_message(&self) -> bool {
        let (Mark::Sent(q, _) | Mark::Retry(q, ..) | Mark::Final(q, ..)) = self;
        q.kind == "message"
    }
}

/// Records outcomes, each on its own (a transaction would cost two more round trips than it saves).
fn record_all(conn: &mut DbConnection, marks: &[Mark]) -> diesel::QueryResult<()> {
    marks.iter().try_for_each(|mark| mark.record(conn))
}

/// Leases the thread and reads its queue and its Page's token in one visit to the database, sends what
/// is due, and records the last outcomes together with giving the lease back.
async fn leased_send(
    ctx: Arc<WorkerContext>,
    limiter: Arc<PageLimiter>,
    thread_id: DbUuid,
) -> Result<usize, DbError> {
    let (owner, secrets) = (ctx.owner.clone(), ctx.secrets.clone());
    let leased = ctx
        .db
        .query(move |conn| {
            let Some(thread) = outbox::lease(conn, thread_id, &owner, now() + LEASE)? else {
                return Ok(None);
            };
            let (queued, token) = outbox::queued_with_token(conn, &secrets, thread_id)?;
            Ok(Some((thread, queued, token)))
        })
        .await?;
    let Some((thread, queued, token)) = leased else {
        return Ok(0);
    };
    let mut marks = Vec::new();
    let result = send_thread(&ctx, &limiter, &thread, queued, token, &mut marks).await;
    let owner = ctx.owner.clone();
    ctx.db
        .query(move |conn| {
            let recorded = record_all(conn, &marks);
            let released = outbox::release(conn, thread_id, &owner);
            recorded.and(released)
        })
        .await?;
    result
}

/// Sends the thread's due messages in order. A message's outcome is recorded before the next send (so a
/// crash can repeat at most the one send in flight); the outcomes still in `marks` at the end (sender
/// actions', the last message's) are left for the caller to record with the lease's release.
async fn send_thread(
    ctx: &WorkerContext,
    limiter: &PageLimiter,
    thread: &Thread,
    queued: Vec<Queued>,
    mut token: Option<String>,
    marks: &mut Vec<Mark>,
) -> Result<usize, DbError> {
    let mut handled = 0;
    for q in queued {
        if q.next_attempt_at > now() {
            break;
        }
        if marks.iter().any(Mark::of_message) {
            let done = std::mem::take(marks);
            ctx.db.query(move |conn| record_all(conn, &done)).await?;
        }
        handled += 1;
        // The window is checked again at sending time: it may have closed while the message waited.
        let at = now();
        let allowed = match q.messaging_type.as_deref() {
            Some("MESSAGE_TAG") => thread
                .last_inbound_at
                .is_some_and(|l| at < l + HUMAN_AGENT_WINDOW),
            _ => thread.window_open(at),
        };
        if !allowed {
            marks.push(Mark::Final(
                q,
                "expired",
                "the messaging window closed before sending".into(),
            ));
            continue;
        }
        let Some(page_token) = token.as_deref() else {
            marks.push(Mark::Final(
                q,
                "failed",
                "the Page is disconnected or its token is broken".into(),
            ));
            continue;
        };
        limiter.acquire(&q.page_id).await;
        match ctx.graph.send(&q.page_id, page_token, &q.body).await {
            Ok(message_id) => marks.push(Mark::Sent(q, message_id)),
            Err(e) => {
                let class = e.class();
                let error = e.to_string();
                // Typing indicators and read marks are best effort: a failed one never holds up the
                // messages behind it.
                if q.kind == "sender_action" && class != ErrorClass::TokenBroken {
                    marks.push(Mark::Final(q, "failed", error));
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
                    ErrorClass::Retry => marks.push(Mark::Final(q, "dead", error)),
                    ErrorClass::TokenBroken => {
                        let page_id = q.page_id.clone();
                        ctx.db
                            .query(move |conn| crate::merchants::pages::mark_token_broken(conn, &page_id))
                            .await?;
                        // The rest of the batch is not sent with the broken token.
                        token = None;
                        marks.push(Mark::Final(q, "failed", error));
                    }
                    ErrorClass::OutsideWindow | ErrorClass::Unreachable | ErrorClass::Permanent => {
                        marks.push(Mark::Final(q, "failed", error))
                    }
                }
            }
        }
    }
    Ok(handled)
}
