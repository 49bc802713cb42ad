//! Expires unpaid stay holds and gives their nights back, whether or not Stripe is configured (a hold
//! whose shopper never reached checkout must not keep a room).

use std::sync::Arc;

use tokio::sync::watch;

use super::WorkerContext;
use crate::bookings;
use crate::db::now;

pub(super) async fn holds_loop(ctx: Arc<WorkerContext>, mut stopped: watch::Receiver<bool>) {
    loop {
        if let Err(e) = ctx.db.query(|conn| bookings::expire_holds(conn, now())).await {
            tracing::error!(error = %e, "expiring stay holds failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(ctx.config.sweep_interval) => {}
            _ = stopped.changed() => {}
        }
        if *stopped.borrow() {
            return;
        }
    }
}
