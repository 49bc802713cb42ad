//! Routes the queues: every second (and when woken), for each merchant with threads waiting for a
//! person or assigned to one, takes threads back from agents who did not answer in time and gives the
//! waiting ones to agents with room (`crate::routing`); every 5 seconds it takes offline the agents
//! whose live connection is gone (`crate::agents::expire_presence`); every minute it forgets the live
//! feed's events older than `crate::events::KEPT`. Each merchant's pass is one write transaction,
//! so two processes never give one thread twice.

use std::sync::Arc;
use std::time::Duration;

use diesel::prelude::*;
use tokio::sync::watch;

use super::WorkerContext;
use crate::db::schema::{merchants, threads};
use crate::db::{now, write_transaction};
use crate::kernel::{MerchantId, ThreadId};

/// How often the queues are looked at when nothing woke the worker.
const POLL: Duration = Duration::from_secs(1);

pub(super) async fn routing_loop(ctx: Arc<WorkerContext>, mut stopped: watch::Receiver<bool>) {
    let mut last_prune: Option<std::time::Instant> = None;
    let mut last_expiry: Option<std::time::Instant> = None;
    loop {
        if last_expiry.is_none_or(|t| t.elapsed() >= Duration::from_secs(5)) {
            last_expiry = Some(std::time::Instant::now());
            // Each agent taken offline in its own statement, guarded by its silence: no write
            // transaction held when nobody is due.
            let expired = ctx
                .db
                .query(|conn| crate::agents::expire_presence(conn, now()))
                .await;
            if let Err(e) = expired {
                tracing::error!(error = %e, "taking absent agents offline failed");
            }
        }
        match ctx.db.run(route_all).await {
            Ok(told) => {
                for thread in told {
                    ctx.wakers.replies_queued(thread);
                }
            }
            Err(e) => tracing::error!(error = %e, "routing the queues failed"),
        }
        // The live feed's old events, a batch at a time, every minute.
        if last_prune.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
            last_prune = Some(std::time::Instant::now());
            if let Err(e) = ctx
                .db
                .query(|conn| crate::events::prune(conn, now(), 5_000))
                .await
            {
                tracing::error!(error = %e, "forgetting old live events failed");
            }
        }
        tokio::select! {
            _ = ctx.wakers.routing.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
            _ = stopped.changed() => {}
        }
        if *stopped.borrow() {
            return;
        }
    }
}

/// One pass over every merchant with threads with a person; answers the threads whose shoppers were
/// told their place in the queue.
fn route_all(conn: &mut crate::db::DbConnection) -> Result<Vec<ThreadId>, crate::db::DbError> {
    let mut told = Vec::new();
    let busy: Vec<(MerchantId, i32)> = threads::table
        .inner_join(merchants::table.on(merchants::id.eq(threads::merchant_id)))
        .filter(threads::queued_at.is_not_null())
        .select((threads::merchant_id, merchants::agent_answer_minutes))
        .distinct()
        .limit(1000)
        .load(conn)?;
    for (merchant_id, minutes) in busy {
        write_transaction(conn, |conn| {
            let at = now();
            crate::routing::release_silent(conn, merchant_id, minutes, at)?;
            told.extend(crate::routing::route(conn, merchant_id, at)?.told);
            Ok::<_, diesel::result::Error>(())
        })?;
    }
    Ok(told)
}
