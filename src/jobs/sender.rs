//! The sender: drains the outbox in order per thread, within the messaging window and Meta's rate limit,
//! and records Meta's message id or the final error of every send.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::{Mutex, watch};

use super::{WorkerContext, backoff, idle};
use crate::conversations::{self, HUMAN_AGENT_WINDOW};
use crate::db::{DbError, DbUuid, now};
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

pub(super) async fn send_loop(ctx: Arc<WorkerContext>, mut stopped: watch::Receiver<bool>) {
    let limiter = PageLimiter::default();
    loop {
        match send_some(&ctx, &limiter).await {
            Ok(0) => {
                if !idle(&ctx.wakers.outbox, &mut stopped).await {
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "outbox sending failed");
                if !idle(&ctx.wakers.outbox, &mut stopped).await {
                    return;
                }
            }
        }
        if *stopped.borrow() {
            return;
        }
    }
}

/// Sends what is due, `worker_concurrency` threads at a time (each under its lease, so one thread's
/// messages go in order).
async fn send_some(ctx: &WorkerContext, limiter: &PageLimiter) -> Result<usize, DbError> {
    let batch = i64::try_from(ctx.config.worker_concurrency * 8).unwrap_or(64);
    let due = ctx
        .db
        .query(move |conn| outbox::threads_due(conn, now(), batch))
        .await?;
    let results: Vec<Result<usize, DbError>> = futures_util::stream::iter(due)
        .map(|thread_id| leased_send(ctx, limiter, thread_id))
        .buffer_unordered(ctx.config.worker_concurrency)
        .collect()
        .await;
    results.into_iter().try_fold(0, |sum, r| r.map(|n| sum + n))
}

async fn leased_send(
    ctx: &WorkerContext,
    limiter: &PageLimiter,
    thread_id: DbUuid,
) -> Result<usize, DbError> {
    let owner = ctx.owner.clone();
    let leased = ctx
        .db
        .query(move |conn| outbox::lease(conn, thread_id, &owner, now() + LEASE))
        .await?;
    if !leased {
        return Ok(0);
    }
    let result = send_thread(ctx, limiter, thread_id).await;
    let owner = ctx.owner.clone();
    ctx.db
        .query(move |conn| outbox::release(conn, thread_id, &owner))
        .await?;
    result
}

async fn send_thread(
    ctx: &WorkerContext,
    limiter: &PageLimiter,
    thread_id: DbUuid,
) -> Result<usize, DbError> {
    let (thread, queued) = ctx
        .db
        .query(move |conn| {
            Ok((
                conversations::get_thread(conn, thread_id)?,
                outbox::queued_for(conn, thread_id)?,
            ))
        })
        .await?;
    let mut handled = 0;
    // A thread's messages all go through its Page: its token is read once per batch.
    let mut page_token: Option<(String, Option<String>)> = None;
    for q in queued {
        if q.next_attempt_at > now() {
            break;
        }
        // The window is checked again at sending time: it may have closed while the message waited.
        let at = now();
        let allowed = match q.messaging_type.as_deref() {
            Some("MESSAGE_TAG") => thread
                .last_inbound_at
                .is_some_and(|l| at < l + HUMAN_AGENT_WINDOW),
            _ => thread.window_open(at),
        };
        if !allowed {
            finish(ctx, &q, "expired", "the messaging window closed before sending").await?;
            handled += 1;
            continue;
        }
        let token = match &page_token {
            Some((page, token)) if *page == q.page_id => token.clone(),
            _ => {
                let page_id = q.page_id.clone();
                let token = ctx
                    .db
                    .query(move |conn| crate::merchants::pages::access_token(conn, &page_id))
                    .await?;
                page_token = Some((q.page_id.clone(), token.clone()));
                token
            }
        };
        let Some(token) = token else {
            finish(
                ctx,
                &q,
                "failed",
                "the Page is disconnected or its token is broken",
            )
            .await?;
            handled += 1;
            continue;
        };
        limiter.acquire(&q.page_id).await;
        match ctx.graph.send(&q.page_id, &token, &q.body).await {
            Ok(message_id) => {
                let q2 = q.clone();
                ctx.db
                    .query(move |conn| outbox::mark_sent(conn, &q2, message_id.as_deref()))
                    .await?;
                handled += 1;
            }
            Err(e) => {
                let class = e.class();
                let error = e.to_string();
                // Typing indicators and read marks are best effort: a failed one never holds up the
                // messages behind it.
                if q.kind == "sender_action" && class != ErrorClass::TokenBroken {
                    finish(ctx, &q, "failed", &error).await?;
                    handled += 1;
                    continue;
                }
                tracing::warn!(outbox.id = %q.id.0, page.id = %q.page_id, ?class, error = %error, "send failed");
                match class {
                    ErrorClass::Retry if q.attempts + 1 < MAX_ATTEMPTS => {
                        let next = now() + backoff(ctx.config.retry_base, q.attempts);
                        let q2 = q.clone();
                        ctx.db
                            .query(move |conn| outbox::mark_retry(conn, &q2, &error, next))
                            .await?;
                        // Later messages of this thread wait, to keep their order.
                        break;
                    }
                    ErrorClass::Retry => finish(ctx, &q, "dead", &error).await?,
                    ErrorClass::TokenBroken => {
                        let page_id = q.page_id.clone();
                        ctx.db
                            .query(move |conn| crate::merchants::pages::mark_token_broken(conn, &page_id))
                            .await?;
                        // The rest of the batch is not sent with the broken token.
                        page_token = Some((q.page_id.clone(), None));
                        finish(ctx, &q, "failed", &error).await?;
                    }
                    ErrorClass::OutsideWindow | ErrorClass::Unreachable | ErrorClass::Permanent => {
                        finish(ctx, &q, "failed", &error).await?
                    }
                }
                handled += 1;
            }
        }
    }
    Ok(handled)
}

async fn finish(ctx: &WorkerContext, q: &Queued, status: &'static str, error: &str) -> Result<(), DbError> {
    let (q, error) = (q.clone(), error.to_owned());
    ctx.db
        .query(move |conn| outbox::mark_final(conn, &q, status, &error))
        .await
}
