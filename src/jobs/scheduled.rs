//! Runs the database's schedule (`crate::followups::schedule`): cart reminders, stay reminders, updates
//! held until the shopper writes. Each job is taken, done and marked done in one transaction, so a
//! restart loses none and several processes never do one twice.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::WorkerContext;
use crate::db::now;
use crate::followups::{self, schedule};

/// How often the schedule is read when nothing woke the worker.
const POLL: Duration = Duration::from_secs(1);

/// The most jobs done in a row before the worker looks at the stop signal again.
const BURST: usize = 100;

pub(super) async fn scheduled_loop(ctx: Arc<WorkerContext>, mut stopped: watch::Receiver<bool>) {
    loop {
        for _ in 0..BURST {
            let ran = ctx
                .db
                .run(|conn| {
                    schedule::run_next_due(conn, now(), |conn, job| followups::run_job(conn, job, now()))
                })
                .await;
            match ran {
                Ok(Some(ran)) => {
                    if let Some(thread) = ran.job.thread_id {
                        ctx.wakers.replies_queued(thread);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::error!(error = %e, "a scheduled job failed");
                    break;
                }
            }
        }
        tokio::select! {
            _ = ctx.wakers.scheduled.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
            _ = stopped.changed() => {}
        }
        if *stopped.borrow() {
            return;
        }
    }
}
