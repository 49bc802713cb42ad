//! The background workers that drain the durable queues: the Messenger inbox (deliveries into events,
//! events into effects), the outbox (queued messages to the Send API), payments, stay holds and
//! Conversions API events. Each loop wakes when work is
//! queued in this process and polls for work queued by other processes; leases in the database keep
//! one worker per shopper and per thread across every process.

mod conversions;
mod holds;
mod inbox;
mod payments;
mod sender;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::db::{Db, DbUuid};
use crate::messenger::graph::GraphClient;

/// Wakes the workers when work is queued in this process.
#[derive(Debug, Default)]
pub struct Wakers {
    /// A delivery was stored.
    pub inbox: Notify,
    /// Events were stored.
    pub events: Notify,
    /// Messages were queued.
    pub outbox: Notify,
    /// Orders need a Checkout Session, or Stripe events arrived.
    pub payments: Notify,
    /// Conversions API events were queued.
    pub conversions: Notify,
}

/// What every worker uses.
pub struct WorkerContext {
    /// The database.
    pub db: Db,
    /// The Graph API.
    pub graph: GraphClient,
    /// Settings.
    pub config: Arc<Config>,
    /// Wake-ups.
    pub wakers: Arc<Wakers>,
    /// This process's name in leases.
    pub owner: String,
    /// Stripe, when `STRIPE_SECRET_KEY` is set.
    pub stripe: Option<crate::checkout::stripe::StripeClient>,
}

/// The running workers.
pub struct Workers {
    stop: watch::Sender<bool>,
    handles: Vec<JoinHandle<()>>,
}

/// How often idle workers look for work queued by other processes.
const POLL: Duration = Duration::from_millis(250);

impl Workers {
    /// Starts every worker on the current runtime.
    pub fn spawn(ctx: Arc<WorkerContext>) -> Workers {
        let (stop, stopped) = watch::channel(false);
        let handles = vec![
            tokio::spawn(inbox::split_loop(ctx.clone(), stopped.clone())),
            tokio::spawn(inbox::event_loop(ctx.clone(), stopped.clone())),
            tokio::spawn(sender::send_loop(ctx.clone(), stopped.clone())),
            tokio::spawn(holds::holds_loop(ctx.clone(), stopped.clone())),
            tokio::spawn(conversions::conversions_loop(ctx.clone(), stopped.clone())),
            tokio::spawn(payments::payments_loop(ctx, stopped)),
        ];
        Workers { stop, handles }
    }

    /// Asks the workers to finish their current item and waits for them.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for handle in self.handles {
            let _ = handle.await;
        }
    }
}

/// Waits for a wake-up, the poll interval, or the stop signal; false when stopping.
async fn idle(notify: &Notify, stopped: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = notify.notified() => {}
        _ = tokio::time::sleep(POLL) => {}
        _ = stopped.changed() => {}
    }
    !*stopped.borrow()
}

/// Works on up to `concurrency` keys (shoppers, threads) at once, each in its own task, and starts the
/// next as soon as one is done rather than after a whole batch, so one slow shopper or send never holds
/// the others up. Due keys are asked for (`due(limit)`) once woken (work queued in this process) or at a
/// poll (work queued by other processes), but only when every key of the last answer has been started
/// and a task is free: under load one question serves many keys. A key found due while it was being
/// worked on makes the question be asked again once it is done. On stop, the tasks in flight finish.
async fn pipeline<Q, QF, W, WF>(
    notify: &Notify,
    stopped: &mut watch::Receiver<bool>,
    concurrency: usize,
    what: &'static str,
    due: Q,
    work: W,
) where
    Q: Fn(usize) -> QF,
    QF: std::future::Future<Output = Result<Vec<DbUuid>, crate::db::DbError>>,
    W: Fn(DbUuid) -> WF,
    WF: std::future::Future<Output = Result<usize, crate::db::DbError>> + Send + 'static,
{
    use std::collections::{HashMap, HashSet, VecDeque};
    let limit = concurrency * 8;
    let mut tasks = tokio::task::JoinSet::new();
    // The key each running task works on.
    let mut working: HashMap<tokio::task::Id, DbUuid> = HashMap::new();
    let mut again: HashSet<DbUuid> = HashSet::new();
    let mut queue: VecDeque<DbUuid> = VecDeque::new();
    let mut poll = tokio::time::interval(POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Work may be due (woken, polled, or the last answer filled its limit).
    let mut maybe_due = true;
    while !*stopped.borrow() {
        if maybe_due && queue.is_empty() && tasks.len() < concurrency {
            maybe_due = false;
            match due(limit).await {
                Ok(keys) => {
                    maybe_due = keys.len() >= limit;
                    for key in keys {
                        if working.values().any(|k| *k == key) {
                            again.insert(key);
                        } else if !queue.contains(&key) {
                            queue.push_back(key);
                        }
                    }
                }
                Err(e) => tracing::error!(error = %e, worker = what, "looking for work failed"),
            }
        }
        while tasks.len() < concurrency {
            let Some(key) = queue.pop_front() else { break };
            let task = tasks.spawn(work(key));
            working.insert(task.id(), key);
        }
        tokio::select! {
            Some(joined) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                let id = match joined {
                    Ok((id, Ok(_))) => id,
                    Ok((id, Err(e))) => {
                        tracing::error!(error = %e, worker = what, "work failed");
                        id
                    }
                    Err(e) => {
                        tracing::error!(error = %e, worker = what, "a worker task failed");
                        e.id()
                    }
                };
                // A key found due while in work may have had its work done meanwhile: ask again
                // rather than redo it blindly.
                if let Some(key) = working.remove(&id)
                    && again.remove(&key)
                {
                    maybe_due = true;
                }
            }
            _ = notify.notified() => maybe_due = true,
            _ = poll.tick() => maybe_due = true,
            _ = stopped.changed() => {}
        }
    }
    while tasks.join_next().await.is_some() {}
}

/// Exponential backoff with jitter: about `base` times 2^attempt, at most 5 minutes.
fn backoff(base: Duration, attempt: i32) -> chrono::Duration {
    let first = i64::try_from(base.as_millis()).unwrap_or(1000).max(1);
    let base_ms: i64 = first.saturating_mul(1i64 << attempt.clamp(0, 16)).min(300_000);
    let jitter = i64::from(u16::from_le_bytes(crate::config::random_bytes::<2>())) % (base_ms / 4 + 1);
    chrono::Duration::milliseconds(base_ms + jitter)
}
