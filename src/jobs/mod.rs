//! The background workers that drain the durable queues: the Messenger inbox (deliveries into events,
//! events into effects), the outbox (queued messages to the Send API), payments, stay holds,
//! Conversions API events, the schedule (reminders, held updates) and the agents' queues. Each loop wakes when work is
//! queued in this process and polls for work queued by other processes; leases in the database keep
//! one worker per shopper and per thread across every process.

mod conversions;
mod holds;
mod inbox;
mod payments;
mod rollup;
mod routing;
mod scheduled;
mod sender;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::channels::meta::graph::GraphClient;
use crate::config::Config;
use crate::db::Db;
use crate::kernel::{CustomerId, ThreadId};

/// Wakes the workers when work is queued in this process.
#[derive(Debug, Default)]
pub struct Wakers {
    /// A delivery was stored.
    pub inbox: Notify,
    /// Events were stored (for these shoppers, when known).
    pub events: Hints<CustomerId>,
    /// Messages were queued (on these threads, when known).
    pub outbox: Hints<ThreadId>,
    /// Orders need a Checkout Session, or Stripe events arrived.
    pub payments: Notify,
    /// Conversions API events were queued.
    pub conversions: Notify,
    /// Messages were recorded on these threads (the web chat's event streams listen).
    pub messages: Bulletin,
    /// Scheduled work became due (a shopper wrote to a thread holding updates, the dev clock moved).
    pub scheduled: Notify,
    /// A queue changed (a thread was handed to a person, an agent's presence changed).
    pub routing: Notify,
}

impl Wakers {
    /// Replies were queued on `thread`: its sender starts, and its listeners read them.
    pub fn replies_queued(&self, thread: ThreadId) {
        self.outbox.wake_for(thread);
        self.messages.publish(thread);
    }
}

/// Tells this process's listeners that a thread has new messages. A listener that falls behind misses
/// names, not messages: the listeners also read the database at an interval (other processes'
/// messages).
#[derive(Debug)]
pub struct Bulletin(tokio::sync::broadcast::Sender<ThreadId>);

impl Default for Bulletin {
    fn default() -> Self {
        Bulletin(tokio::sync::broadcast::channel(1024).0)
    }
}

impl Bulletin {
    /// `thread` has new messages.
    pub fn publish(&self, thread: ThreadId) {
        // No listener is not an error.
        let _ = self.0.send(thread);
    }

    /// Listens from now on.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<ThreadId> {
        self.0.subscribe()
    }
}

/// Wakes a worker that works key by key (shoppers, threads) when work is queued in this process, naming
/// the key when the producer knows it: the worker then starts on that key without asking the database
/// what is due. Work of keys not named (queued by a producer that does not say, or by another process)
/// is found by asking, on an unnamed wake-up or at the next poll. A name carries the instant it was
/// given (after the work was committed): work on the key started later has seen that work.
#[derive(Debug)]
pub struct Hints<K> {
    notify: Notify,
    named: std::sync::Mutex<Named<K>>,
}

impl<K> Default for Hints<K> {
    fn default() -> Self {
        Hints {
            notify: Notify::new(),
            named: std::sync::Mutex::new(Named {
                keys: Vec::new(),
                unnamed: false,
            }),
        }
    }
}

#[derive(Debug)]
struct Named<K> {
    keys: Vec<(K, Instant)>,
    /// Work of keys not named is due too (or too many were named).
    unnamed: bool,
}

/// The most keys kept between two wake-ups; beyond, the worker asks the database instead.
const MAX_NAMED: usize = 4096;

impl<K> Hints<K> {
    /// Work is due for `key`.
    pub fn wake_for(&self, key: K) {
        {
            let mut named = self.named();
            if named.keys.len() < MAX_NAMED {
                named.keys.push((key, Instant::now()));
            } else {
                named.unnamed = true;
            }
        }
        self.notify.notify_one();
    }

    /// Work is due, for keys the caller does not name.
    pub fn wake(&self) {
        self.named().unnamed = true;
        self.notify.notify_one();
    }

    fn named(&self) -> std::sync::MutexGuard<'_, Named<K>> {
        // The lists stay consistent whatever a panicking holder did: each change is one assignment.
        self.named
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The keys named since the last call with the instant of each naming, and whether work of other
    /// keys is due too.
    fn take(&self) -> (Vec<(K, Instant)>, bool) {
        let mut named = self.named();
        (
            std::mem::take(&mut named.keys),
            std::mem::take(&mut named.unnamed),
        )
    }
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
    /// Opens the stored tokens.
    pub secrets: crate::secrets::Secrets,
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
            tokio::spawn(scheduled::scheduled_loop(ctx.clone(), stopped.clone())),
            tokio::spawn(routing::routing_loop(ctx.clone(), stopped.clone())),
            tokio::spawn(rollup::rollup_loop(ctx.clone(), stopped.clone())),
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
/// the others up. Keys named by a wake-up are worked on directly. Due keys are asked for (`due(limit)`)
/// after an unnamed wake-up or at a poll (work queued by other processes), but only when every key of
/// the last answer has been started and a task is free: under load one question serves many keys. A
/// key named while it was being worked on is worked on again once done, unless it was named before that
/// work started (the work has seen what the naming announced: a key found by asking is often named
/// too); one found due by asking makes the question be asked again then. On stop, the tasks in flight
/// finish.
async fn pipeline<K, Q, QF, W, WF>(
    hints: &Hints<K>,
    poll_every: Duration,
    stopped: &mut watch::Receiver<bool>,
    concurrency: usize,
    what: &'static str,
    due: Q,
    work: W,
) where
    Q: Fn(usize) -> QF,
    K: Copy + Eq + std::hash::Hash,
    QF: std::future::Future<Output = Result<Vec<K>, crate::db::DbError>>,
    W: Fn(K) -> WF,
    WF: std::future::Future<Output = Result<usize, crate::db::DbError>> + Send + 'static,
{
    use std::collections::{HashMap, HashSet, VecDeque};
    let limit = concurrency * 8;
    let mut tasks = tokio::task::JoinSet::new();
    // The key each running task works on, and when it started.
    let mut working: HashMap<tokio::task::Id, (K, Instant)> = HashMap::new();
    // When the last work on each key done lately started: a naming before it is stale.
    let mut started: HashMap<K, Instant> = HashMap::new();
    // Keys found due (by asking) or named while in work.
    let mut again: HashSet<K> = HashSet::new();
    let mut named_again: HashSet<K> = HashSet::new();
    let mut queue: VecDeque<K> = VecDeque::new();
    let mut queued: HashSet<K> = HashSet::new();
    let mut poll = tokio::time::interval(poll_every);
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
                        if working.values().any(|(k, _)| *k == key) {
                            again.insert(key);
                        } else if queued.insert(key) {
                            queue.push_back(key);
                        }
                    }
                }
                Err(e) => tracing::error!(error = %e, worker = what, "looking for work failed"),
            }
        }
        while tasks.len() < concurrency {
            let Some(key) = queue.pop_front() else { break };
            queued.remove(&key);
            let task = tasks.spawn(work(key));
            working.insert(task.id(), (key, Instant::now()));
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
                if let Some((key, at)) = working.remove(&id) {
                    if named_again.remove(&key) && queued.insert(key) {
                        queue.push_back(key);
                    }
                    if again.remove(&key) {
                        maybe_due = true;
                    }
                    if started.len() >= MAX_NAMED {
                        started.retain(|_, at| at.elapsed() < STALE_NAMING);
                    }
                    started.insert(key, at);
                }
            }
            _ = hints.notify.notified() => {
                let (keys, unnamed) = hints.take();
                maybe_due |= unnamed;
                for (key, named) in keys {
                    let in_work = working.values().find(|(k, _)| *k == key).map(|(_, at)| *at);
                    match in_work.or_else(|| started.get(&key).copied()) {
                        Some(start) if named < start => {}
                        _ if in_work.is_some() => {
                            named_again.insert(key);
                        }
                        _ => {
                            if queued.insert(key) {
                                queue.push_back(key);
                            }
                        }
                    }
                }
            }
            _ = poll.tick() => maybe_due = true,
            _ = stopped.changed() => {}
        }
    }
    while tasks.join_next().await.is_some() {}
}

/// How long the pipeline remembers when the work on a key started, to recognise a stale naming of it
/// (names are taken within moments; one older than this is simply worked on).
const STALE_NAMING: Duration = Duration::from_secs(10);

/// Exponential backoff with jitter: about `base` times 2^attempt, at most 5 minutes.
fn backoff(base: Duration, attempt: i32) -> chrono::Duration {
    let first = i64::try_from(base.as_millis()).unwrap_or(1000).max(1);
    let base_ms: i64 = first.saturating_mul(1i64 << attempt.clamp(0, 16)).min(300_000);
    let jitter = i64::from(u16::from_le_bytes(crate::secrets::random_bytes::<2>())) % (base_ms / 4 + 1);
    chrono::Duration::milliseconds(base_ms + jitter)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn key(n: u128) -> ThreadId {
        ThreadId(uuid::Uuid::from_u128(n))
    }

    /// A pipeline that never polls within a test, whose due query answers nothing (but `found_first` the
    /// first time, naming those keys too while it is asked) and counts how often it is asked, and whose
    /// work records each key (waiting for `gate` when it is set).
    struct Harness {
        hints: Hints<ThreadId>,
        asked: Arc<AtomicUsize>,
        worked: Arc<Mutex<Vec<ThreadId>>>,
        gate: Arc<Notify>,
        gated: bool,
        found_first: Vec<ThreadId>,
    }

    impl Harness {
        fn new(gated: bool) -> Harness {
            Harness {
                hints: Hints::default(),
                asked: Arc::default(),
                worked: Arc::default(),
                gate: Arc::default(),
                gated,
                found_first: Vec::new(),
            }
        }

        /// Runs the pipeline while `steps` run, then stops it.
        async fn run(&self, steps: impl std::future::Future<Output = ()>) {
            let (stop, mut stopped) = watch::channel(false);
            let due = |_limit: usize| {
                let first = self.asked.fetch_add(1, Ordering::SeqCst) == 0;
                let found = if first {
                    self.found_first.clone()
                } else {
                    Vec::new()
                };
                for key in &found {
                    self.hints.wake_for(*key);
                }
                async { Ok(found) }
            };
            let work = |k: ThreadId| {
                let (worked, gate, gated) = (self.worked.clone(), self.gate.clone(), self.gated);
                async move {
                    if gated {
                        gate.notified().await;
                    }
                    worked
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(k);
                    Ok(1)
                }
            };
            let hour = Duration::from_secs(3600);
            let driver = pipeline(&self.hints, hour, &mut stopped, 2, "test", due, work);
            let steps = async {
                let finished = tokio::time::timeout(Duration::from_secs(10), steps).await;
                let _ = stop.send(true);
                assert!(finished.is_ok(), "the pipeline did not do the work within 10 s");
            };
            tokio::join!(driver, steps);
        }

        fn worked(&self) -> Vec<ThreadId> {
            self.worked
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone()
        }

        async fn until_worked(&self, n: usize) {
            while self.worked().len() < n {
                tokio::task::yield_now().await;
            }
        }

        /// Lets the pipeline take up its first question and first poll.
        async fn settle() {
            for _ in 0..20 {
                tokio::task::yield_now().await;
            }
        }
    }

    #[tokio::test]
    async fn a_named_key_is_worked_on_without_asking_what_is_due() {
        let h = Harness::new(false);
        h.run(async {
            Harness::settle().await;
            let asked = h.asked.load(Ordering::SeqCst);

            h.hints.wake_for(key(1));
            h.hints.wake_for(key(2));
            h.until_worked(2).await;

            assert_eq!(h.asked.load(Ordering::SeqCst), asked);
        })
        .await;
        assert_eq!(h.worked(), [key(1), key(2)]);
    }

    #[tokio::test]
    async fn a_key_named_while_in_work_is_worked_on_again_once_done() {
        let h = Harness::new(true);
        h.run(async {
            Harness::settle().await;
            h.hints.wake_for(key(7));
            Harness::settle().await;
            h.hints.wake_for(key(7));
            Harness::settle().await;

            h.gate.notify_one();
            h.until_worked(1).await;
            h.gate.notify_one();
            h.until_worked(2).await;
        })
        .await;
        assert_eq!(h.worked(), [key(7), key(7)], "worked twice, one after the other");
    }

    #[tokio::test]
    async fn a_key_named_before_its_work_started_is_worked_on_once() {
        // The question finds key 7 due while its naming (for the same work) waits to be taken.
        let h = Harness {
            found_first: vec![key(7)],
            ..Harness::new(false)
        };
        h.run(async {
            h.until_worked(1).await;
            // Long enough for the naming to be taken after the work is done.
            for _ in 0..10 {
                Harness::settle().await;
            }
        })
        .await;
        assert_eq!(h.worked(), [key(7)]);
    }

    #[tokio::test]
    async fn an_unnamed_wake_up_asks_what_is_due() {
        let h = Harness::new(false);
        h.run(async {
            Harness::settle().await;
            let asked = h.asked.load(Ordering::SeqCst);

            h.hints.wake();
            while h.asked.load(Ordering::SeqCst) == asked {
                tokio::task::yield_now().await;
            }
        })
        .await;
        assert!(h.worked().is_empty());
    }
}
