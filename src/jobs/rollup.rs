//! The funnel's daily rollup worker: adds the funnel events recorded since it last looked to
//! `funnel_daily`, in batches (see `crate::attribution::fold_pending`). Reports add the events it has
//! not folded yet, so they never lag; the rollup only keeps them fast.

use std::sync::Arc;

use tokio::sync::watch;

use super::{POLL, WorkerContext};
use crate::attribution;

pub(super) async fn rollup_loop(ctx: Arc<WorkerContext>, mut stopped: watch::Receiver<bool>) {
    loop {
        let folded = ctx
            .db
            .query(|conn| attribution::fold_pending(conn, attribution::FOLD_BATCH))
            .await;
        let full = match folded {
            Ok(n) => n as i64 == attribution::FOLD_BATCH,
            Err(e) => {
                tracing::error!(error = %e, "adding funnel events to the daily rollup failed");
                false
            }
        };
        // A full batch means more are waiting: go on at once.
        if !full {
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = stopped.changed() => {}
            }
        }
        if *stopped.borrow() {
            return;
        }
    }
}
