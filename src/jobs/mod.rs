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
use crate::db::Db;
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

/// Exponential backoff with jitter: about `base` times 2^attempt, at most 5 minutes.
fn backoff(base: Duration, attempt: i32) -> chrono::Duration {
    let first = i64::try_from(base.as_millis()).unwrap_or(1000).max(1);
    let base_ms: i64 = first.saturating_mul(1i64 << attempt.clamp(0, 16)).min(300_000);
    let jitter = i64::from(u16::from_le_bytes(crate::config::random_bytes::<2>())) % (base_ms / 4 + 1);
    chrono::Duration::milliseconds(base_ms + jitter)
}
