//! The payments worker decides when, the payments service ([`crate::checkout::payments`]) what: it claims
//! the Checkout Session call of each new order, applies Stripe's stored events (retrying failures with
//! backoff), sweeps orders whose time ran out and the sessions of orders that ended, reconciles unsettled
//! orders with Stripe, and wakes the senders of the threads whose shopper was told something.

use std::sync::Arc;
use std::time::Instant;

use chrono::NaiveDateTime;
use tokio::sync::watch;

use super::{WorkerContext, backoff, idle};
use crate::checkout::events::{self, Pending};
use crate::checkout::orders::{self, Order, OrderStatus};
use crate::checkout::payments::{self, Payments, PaymentsError, Shopper, Told};
use crate::conversations::notices;
use crate::db::{DbConnection, DbError, now};

/// How often Stripe is asked about an order whose payment is not settled, whatever the webhooks say.
const RECONCILE_EVERY: chrono::Duration = chrono::Duration::minutes(5);

/// What the shopper is told, through the conversation's notices.
struct ThreadNotices;

impl Shopper for ThreadNotices {
    fn locale(
        &self,
        conn: &mut DbConnection,
        thread_id: crate::kernel::ThreadId,
    ) -> diesel::QueryResult<Option<String>> {
        notices::customer_locale(conn, thread_id)
    }

    fn pay_button(&self, conn: &mut DbConnection, order: &Order, url: &str) -> diesel::QueryResult<()> {
        notices::send_pay_button(conn, order, url)
    }

    fn payment_unavailable(&self, conn: &mut DbConnection, order: &Order) -> diesel::QueryResult<()> {
        notices::payment_unavailable(conn, order)
    }

    fn order_moved(
        &self,
        conn: &mut DbConnection,
        order: &Order,
        next: OrderStatus,
    ) -> diesel::QueryResult<()> {
        notices::order_moved(conn, order, next)
    }

    fn late_payment_refunded(&self, conn: &mut DbConnection, order: &Order) -> diesel::QueryResult<()> {
        notices::late_payment_refunded(conn, order)
    }
}

pub(super) async fn payments_loop(ctx: Arc<WorkerContext>, mut stopped: watch::Receiver<bool>) {
    let Some(stripe) = ctx.stripe.clone() else {
        // Without Stripe keys there is nothing to pay with: checkout hands shoppers to a person.
        let _ = stopped.changed().await;
        return;
    };
    let payments = Payments::new(&ctx.db, &stripe, &ThreadNotices, &ctx.config.public_url);
    // The first turn sweeps and reconciles: what happened while no worker ran is caught up at start.
    let mut last_sweep: Option<Instant> = None;
    let mut started = false;
    loop {
        let mut busy = 0;
        match create_sessions(&ctx, &payments).await {
            Ok(n) => busy += n,
            Err(e) => tracing::error!(error = %e, "checkout sessions failed"),
        }
        match apply_events(&ctx, &payments).await {
            Ok(n) => busy += n,
            Err(e) => tracing::error!(error = %e, "Stripe events failed"),
        }
        let sweep_due = last_sweep.is_none_or(|t| t.elapsed() >= ctx.config.sweep_interval);
        if sweep_due {
            last_sweep = Some(Instant::now());
            if let Err(e) = sweep(&ctx, &payments).await {
                tracing::error!(error = %e, "sweeping overdue orders failed");
            }
        }
        // At start every unsettled order is asked about; afterwards, those not asked for a while.
        let stale_before = match (started, sweep_due) {
            (false, _) => Some(now()),
            (true, true) => Some(now() - RECONCILE_EVERY),
            (true, false) => None,
        };
        started = true;
        match reconcile(&ctx, &payments, stale_before).await {
            Ok(n) => busy += n,
            Err(e) => tracing::error!(error = %e, "reconciling unpaid orders failed"),
        }
        if busy > 0 {
            ctx.wakers.outbox.wake();
        }
        if busy == 0 && !idle(&ctx.wakers.payments, &mut stopped).await {
            return;
        }
        if *stopped.borrow() {
            return;
        }
    }
}

/// Claims the next Checkout Session call of orders awaiting one, and has the service make it. Retries
/// wait longer each time; a call claimed by a worker that died is retried the same way.
async fn create_sessions(ctx: &WorkerContext, payments: &Payments<'_>) -> Result<usize, PaymentsError> {
    let waiting = ctx.db.query(|conn| orders::needing_session(conn, 20)).await?;
    let mut handled = 0;
    for order in waiting {
        let tries = order.session_tries;
        if tries > 0 && now() < order.updated_at + backoff(ctx.config.retry_base, tries - 1) {
            continue;
        }
        let (id, expiry) = (order.id, payments::session_expiry(ctx.config.checkout_ttl));
        let claimed = ctx
            .db
            .query(move |conn| orders::claim_session_try(conn, id, tries, expiry))
            .await?;
        let Some(call) = claimed else {
            continue;
        };
        handled += 1;
        wake(ctx, payments.open_session(order, call).await?);
    }
    Ok(handled)
}

/// Applies the stored events that are due, each read back into its typed event; a failure is retried
/// with backoff, and dead-lettered after [`events::MAX_ATTEMPTS`].
async fn apply_events(ctx: &WorkerContext, payments: &Payments<'_>) -> Result<usize, DbError> {
    let due = ctx.db.query(|conn| events::due(conn, now(), 20)).await?;
    let count = due.len();
    for event in due {
        if let Err(e) = apply_event(ctx, payments, &event).await {
            let next = now() + backoff(ctx.config.retry_base, event.attempts);
            let message = e.to_string();
            tracing::warn!(stripe.event = %event.id, error = %message, "Stripe event failed; will retry");
            ctx.db
                .query(move |conn| events::failed(conn, &event, &message, next))
                .await?;
        }
    }
    Ok(count)
}

async fn apply_event(
    ctx: &WorkerContext,
    payments: &Payments<'_>,
    event: &Pending,
) -> Result<(), PaymentsError> {
    let applied = payments.apply_event(event.event()?).await?;
    wake(ctx, applied.told);
    let id = event.id.clone();
    ctx.db
        .query(move |conn| events::done(conn, &id, applied.outcome))
        .await?;
    Ok(())
}

/// Closes at Stripe the sessions of orders that ended here, then ends the orders whose hold ran out;
/// what fails is tried again at the next sweep.
async fn sweep(ctx: &WorkerContext, payments: &Payments<'_>) -> Result<(), DbError> {
    let open = ctx.db.query(|conn| orders::sessions_to_close(conn, 50)).await?;
    for (order_id, session_id) in open {
        match payments.close_session(order_id, &session_id).await {
            Ok(told) => wake(ctx, told),
            Err(e) => {
                tracing::warn!(order.id = %order_id, error = %e, "session of an ended order not closed at Stripe; will retry")
            }
        }
    }
    let overdue = ctx.db.query(|conn| orders::overdue(conn, now(), 50)).await?;
    for order in overdue {
        let order_id = order.id;
        match payments.expire_overdue(order).await {
            Ok(told) => wake(ctx, told),
            Err(e) => {
                tracing::warn!(order.id = %order_id, error = %e, "overdue order not settled; will retry")
            }
        }
    }
    Ok(())
}

/// Has the service ask Stripe about orders whose payment is not settled (see [`orders::to_reconcile`]),
/// each marked as asked first. Answers how many orders were checked.
async fn reconcile(
    ctx: &WorkerContext,
    payments: &Payments<'_>,
    stale_before: Option<NaiveDateTime>,
) -> Result<usize, DbError> {
    let due = ctx
        .db
        .query(move |conn| orders::to_reconcile(conn, stale_before, 50))
        .await?;
    let count = due.len();
    for order in due {
        let order_id = order.id;
        ctx.db
            .query(move |conn| orders::mark_checked(conn, order_id, Some(now())))
            .await?;
        match payments.reconcile(order).await {
            Ok(told) => wake(ctx, told),
            Err(e) => {
                tracing::warn!(order.id = %order_id, error = %e, "order not reconciled with Stripe; will retry")
            }
        }
    }
    Ok(count)
}

/// The shopper may have been told something about the order in its thread: the sender and the thread's
/// listeners are woken.
fn wake(ctx: &WorkerContext, told: Option<Told>) {
    if let Some(told) = told {
        tracing::debug!(order.id = %told.order_id, "order's thread told");
        ctx.wakers.replies_queued(told.thread_id);
    }
}
