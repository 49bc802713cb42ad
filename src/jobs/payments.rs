//! The payments worker: creates the Stripe Checkout Session of each new order (the HTTP call happens
//! outside any transaction: the order is the recorded intent, the session is recorded after), applies
//! Stripe's events after asking Stripe for the session's state, and expires unpaid orders whose time
//! ran out, giving their stock back.

use std::sync::Arc;
use std::time::Instant;

use chrono::NaiveDateTime;
use tokio::sync::watch;

use super::{WorkerContext, backoff, idle};
use crate::checkout::events::{self, Pending};
use crate::checkout::orders::{self, LatePayment, Order, OrderStatus, SessionTry};
use crate::checkout::stripe::{
    CheckoutLine, CheckoutSession, NewCheckout, PaymentStatus, RefundReason, SessionStatus, StripeClient,
    StripeError,
};
use crate::checkout::webhook::{EventKind, RefundObject};
use crate::conversations::notices as thread;
use crate::db::{DbError, now};

/// Calls at creating a session before the order is given up.
const MAX_SESSION_TRIES: i32 = 5;

/// How often Stripe is asked about an order whose payment is not settled, whatever the webhooks say.
const RECONCILE_EVERY: chrono::Duration = chrono::Duration::minutes(5);

/// The margin added to a session's expiry, so that Stripe's 30-minute minimum still holds when the
/// request takes time or is repeated after a lost answer.
const EXPIRY_MARGIN: chrono::Duration = chrono::Duration::seconds(90);

pub(super) async fn payments_loop(ctx: Arc<WorkerContext>, mut stopped: watch::Receiver<bool>) {
    let Some(stripe) = ctx.stripe.clone() else {
        // Without Stripe keys there is nothing to pay with: checkout hands shoppers to a person.
        let _ = stopped.changed().await;
        return;
    };
    // The first turn sweeps and reconciles: what happened while no worker ran is caught up at start.
    let mut last_sweep: Option<Instant> = None;
    let mut started = false;
    loop {
        let mut busy = 0;
        match create_sessions(&ctx, &stripe).await {
            Ok(n) => busy += n,
            Err(e) => tracing::error!(error = %e, "checkout sessions failed"),
        }
        match apply_events(&ctx, &stripe).await {
            Ok(n) => busy += n,
            Err(e) => tracing::error!(error = %e, "Stripe events failed"),
        }
        let sweep_due = last_sweep.is_none_or(|t| t.elapsed() >= ctx.config.sweep_interval);
        if sweep_due {
            last_sweep = Some(Instant::now());
            if let Err(e) = sweep(&ctx, &stripe).await {
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
        match reconcile(&ctx, &stripe, stale_before).await {
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

fn unix(t: NaiveDateTime) -> i64 {
    t.and_utc().timestamp()
}

fn from_unix(secs: i64) -> NaiveDateTime {
    chrono::DateTime::from_timestamp(secs, 0).map_or_else(now, |d| d.naive_utc())
}

/// The Stripe locale of a Messenger locale (`fr_FR` -> `fr`).
fn locale(messenger: Option<&str>) -> Option<String> {
    messenger.map(|l| l.replace('_', "-"))
}

/// When a session asked for now ends: the configured time (30 minutes to 24 hours) and a margin, within
/// Stripe's bounds.
fn session_expiry(ttl: std::time::Duration) -> NaiveDateTime {
    let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::minutes(30));
    now() + (ttl + EXPIRY_MARGIN).min(chrono::Duration::hours(24) - EXPIRY_MARGIN)
}

async fn create_sessions(ctx: &WorkerContext, stripe: &StripeClient) -> Result<usize, ApplyError> {
    let waiting = ctx.db.query(|conn| orders::needing_session(conn, 20)).await?;
    let mut handled = 0;
    for order in waiting {
        // Retries wait longer each time; a call claimed by a worker that died is retried the same way.
        let tries = order.session_tries;
        if tries > 0 && now() < order.updated_at + backoff(ctx.config.retry_base, tries - 1) {
            continue;
        }
        let (id, expiry) = (order.id, session_expiry(ctx.config.checkout_ttl));
        let claimed = ctx
            .db
            .query(move |conn| orders::claim_session_try(conn, id, tries, expiry))
            .await?;
        let Some(call) = claimed else {
            continue;
        };
        handled += 1;
        create_session(ctx, stripe, order, call).await?;
    }
    Ok(handled)
}

async fn create_session(
    ctx: &WorkerContext,
    stripe: &StripeClient,
    order: Order,
    call: SessionTry,
) -> Result<(), ApplyError> {
    let thread_id = order.thread_id;
    let customer_locale = match thread_id {
        Some(t) => ctx.db.query(move |conn| thread::customer_locale(conn, t)).await?,
        None => None,
    };
    let base = &ctx.config.public_url;
    let request = NewCheckout {
        order_id: order.id,
        lines: order
            .lines
            .iter()
            .map(|l| CheckoutLine {
                name: if l.variant_name == l.title {
                    l.title.clone()
                } else {
                    format!("{} ({})", l.title, l.variant_name)
                },
                image_url: l.image_url.clone(),
                unit_amount: l.unit_price,
                quantity: l.quantity,
            })
            .collect(),
        discount: (!order.discount.is_negative() && order.discount.minor() > 0).then_some(order.discount),
        currency: order.currency,
        expires_at: unix(call.expires_at),
        success_url: format!("{base}/checkout/success?order={}", order.id),
        cancel_url: format!("{base}/checkout/cancel?order={}", order.id),
        locale: locale(customer_locale.as_deref()),
    };
    let (order_id, thread_id) = (order.id, order.thread_id);
    match stripe.create_checkout_session(&request, &call.key).await {
        Ok(session) => {
            let Some(url) = session.url.clone() else {
                tracing::error!(order.id = %order.id, "Stripe answered a session without a URL");
                return Ok(());
            };
            let expires = session.expires_at.map_or(call.expires_at, from_unix);
            let session_id = session.id.clone();
            let attempt = call.attempt;
            let recorded = ctx
                .db
                .query(move |conn| {
                    let recorded =
                        orders::record_session(conn, order_id, &session.id, &url, expires, attempt)?;
                    if recorded {
                        thread::send_pay_button(conn, &order, &url)?;
                    }
                    Ok(recorded)
                })
                .await?;
            if recorded {
                told(ctx, order_id, thread_id);
                tracing::info!(order.id = %order_id, "Checkout Session created");
            } else if let Err(e) = stripe.expire_checkout_session(&session_id).await {
                // The order ended while its session was being made: that page must not take a payment.
                tracing::warn!(order.id = %order_id, error = %e, "session of an ended order not expired at Stripe");
            }
        }
        Err(e) if e.is_retryable() && call.tries < MAX_SESSION_TRIES => {
            // The same key goes again: if Stripe made the session, it answers with that one.
            tracing::warn!(order.id = %order_id, tries = call.tries, error = %e, "Checkout Session not created; will retry");
        }
        Err(StripeError::Api {
            status: 400,
            param: Some(param),
            ..
        }) if param == "expires_at" && call.tries < MAX_SESSION_TRIES => {
            // A repeated request whose expiry is now too close: Stripe never ran it (or it would have
            // replayed the session), so a new key with a new expiry makes no second session.
            tracing::warn!(order.id = %order_id, tries = call.tries, "session expiry too close for a repeat; a new request follows");
            ctx.db
                .query(move |conn| orders::drop_session_key(conn, order_id))
                .await?;
        }
        Err(e) => {
            tracing::error!(order.id = %order_id, tries = call.tries, error = %e, "Checkout Session could not be created");
            ctx.db
                .run(move |conn| {
                    orders::transition(conn, order_id, OrderStatus::PaymentFailed, None, now())?;
                    thread::payment_unavailable(conn, &order)?;
                    Ok::<_, ApplyError>(())
                })
                .await?;
            told(ctx, order_id, thread_id);
        }
    }
    Ok(())
}

/// What a session's state at Stripe means for its order; `delayed_payment_failed` when Stripe said so
/// (`checkout.session.async_payment_failed`): a complete session is otherwise still processing.
fn next_status(session: &CheckoutSession, delayed_payment_failed: bool) -> Option<OrderStatus> {
    match (session.status, session.payment_status) {
        (SessionStatus::Complete, PaymentStatus::Paid | PaymentStatus::NoPaymentRequired) => {
            Some(OrderStatus::Paid)
        }
        (SessionStatus::Complete, _) if delayed_payment_failed => Some(OrderStatus::PaymentFailed),
        (SessionStatus::Complete, _) => Some(OrderStatus::Processing),
        (SessionStatus::Expired, _) => Some(OrderStatus::Expired),
        _ => None,
    }
}

async fn apply_events(ctx: &WorkerContext, stripe: &StripeClient) -> Result<usize, DbError> {
    let due = ctx.db.query(|conn| events::due(conn, now(), 20)).await?;
    let count = due.len();
    for event in due {
        if let Err(e) = apply_event(ctx, stripe, &event).await {
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

/// Why applying an event failed (it is retried).
#[derive(Debug, thiserror::Error)]
enum ApplyError {
    #[error(transparent)]
    Stripe(#[from] StripeError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Move(#[from] orders::MoveError),
}

impl From<diesel::result::Error> for ApplyError {
    fn from(e: diesel::result::Error) -> Self {
        ApplyError::Db(e.into())
    }
}

async fn apply_event(ctx: &WorkerContext, stripe: &StripeClient, event: &Pending) -> Result<(), ApplyError> {
    let id = event.id.clone();
    let outcome = match event.event()?.kind {
        EventKind::CheckoutSessionCompleted { session_id }
        | EventKind::CheckoutSessionAsyncPaymentSucceeded { session_id }
        | EventKind::CheckoutSessionExpired { session_id } => {
            apply_session_event(ctx, stripe, session_id, false).await?
        }
        EventKind::CheckoutSessionAsyncPaymentFailed { session_id } => {
            apply_session_event(ctx, stripe, session_id, true).await?
        }
        EventKind::ChargeRefunded { payment_intent } => sync_refunds(ctx, stripe, payment_intent).await?,
        EventKind::RefundCreated(refund)
        | EventKind::RefundUpdated(refund)
        | EventKind::RefundFailed(refund) => record_refund_event(ctx, refund).await?,
        EventKind::DisputeCreated { payment_intent } => set_disputed(ctx, payment_intent, true).await?,
        EventKind::DisputeClosed {
            payment_intent,
            status,
        } if status.as_deref() == Some("won") => set_disputed(ctx, payment_intent, false).await?,
        EventKind::DisputeClosed { .. } | EventKind::Other(_) => "ignored",
    };
    ctx.db.query(move |conn| events::done(conn, &id, outcome)).await?;
    Ok(())
}

/// A `checkout.session.*` event: its order is brought to what the session says at Stripe now (events can
/// be late, repeated or out of order). `ignored` when the session is not one of ours (another
/// integration on the same Stripe account).
async fn apply_session_event(
    ctx: &WorkerContext,
    stripe: &StripeClient,
    session_id: String,
    delayed_payment_failed: bool,
) -> Result<&'static str, ApplyError> {
    let sid = session_id.clone();
    let Some(order) = ctx
        .db
        .query(move |conn| orders::find_by_session(conn, &sid))
        .await?
    else {
        return Ok("ignored");
    };
    let session = stripe.retrieve_checkout_session(&session_id).await?;
    apply_session(ctx, stripe, order, delayed_payment_failed, &session).await
}

/// Brings the order to what its session says at Stripe now; answers `done`, or `review` when Stripe
/// charged another amount than the order's total (never accepted silently: a person looks at it).
async fn apply_session(
    ctx: &WorkerContext,
    stripe: &StripeClient,
    order: Order,
    delayed_payment_failed: bool,
    session: &CheckoutSession,
) -> Result<&'static str, ApplyError> {
    let Some(next) = next_status(session, delayed_payment_failed) else {
        return Ok("done");
    };
    if next == OrderStatus::Paid && session.total() != Some(order.total) {
        tracing::error!(
            order.id = %order.id,
            order.total = %order.total,
            stripe.total = ?session.total(),
            "paid amount differs from the order's total: left for review"
        );
        return Ok("review");
    }
    apply_status(ctx, stripe, order, next, session.payment_intent.clone()).await?;
    Ok("done")
}

/// Moves an order and tells the shopper (a receipt once paid). A payment for an order that had ended
/// here is settled (see [`settle_late`]).
async fn apply_status(
    ctx: &WorkerContext,
    stripe: &StripeClient,
    order: Order,
    next: OrderStatus,
    payment_intent: Option<String>,
) -> Result<(), ApplyError> {
    let (order_id, thread_id) = (order.id, order.thread_id);
    let intent = payment_intent.clone();
    let snapshot = order.clone();
    let moved = ctx
        .db
        .run(move |conn| {
            let moved = orders::transition(conn, order_id, next, intent.as_deref(), now())?;
            if moved {
                thread::order_moved(conn, &snapshot, next)?;
            }
            Ok::<_, ApplyError>(moved)
        })
        .await?;
    if moved {
        told(ctx, order_id, thread_id);
    }
    if !moved && next == OrderStatus::Paid {
        settle_late(ctx, stripe, order, payment_intent).await?;
    }
    Ok(())
}

/// A payment Stripe took for an order that had ended here (expired, superseded, failed): honoured when
/// its stock can be taken again (the shopper gets the receipt), otherwise refunded in full at once (the
/// shopper is told why). The shopper's money is never kept without the goods. Repeating it (a retried
/// event, a later sweep) changes nothing more: the refund goes with a key of its own.
async fn settle_late(
    ctx: &WorkerContext,
    stripe: &StripeClient,
    order: Order,
    payment_intent: Option<String>,
) -> Result<(), ApplyError> {
    let (order_id, thread_id) = (order.id, order.thread_id);
    let intent = payment_intent.clone();
    let outcome = ctx
        .db
        .query(move |conn| orders::settle_late_payment(conn, order_id, intent.as_deref(), now()))
        .await?;
    match outcome {
        LatePayment::NotLate => Ok(()),
        LatePayment::Honoured => {
            ctx.db
                .query(move |conn| {
                    let paid = orders::load_order(conn, order_id)?;
                    thread::order_moved(conn, &paid, OrderStatus::Paid)
                })
                .await?;
            told(ctx, order_id, thread_id);
            Ok(())
        }
        LatePayment::RefundDue => {
            let Some(intent) = payment_intent.or(order.stripe_payment_intent_id.clone()) else {
                tracing::error!(order.id = %order_id, "late payment to refund without its PaymentIntent");
                return Ok(());
            };
            let key = format!("order-{order_id}-late-refund");
            let refund = stripe
                .create_refund(
                    &intent,
                    order.total,
                    &key,
                    Some(RefundReason::RequestedByCustomer),
                )
                .await?;
            let amount = crate::checkout::stripe::from_stripe_amount(refund.amount, order.currency)
                .unwrap_or(order.total);
            ctx.db
                .query(move |conn| {
                    let refunded =
                        orders::record_late_refund(conn, order_id, &refund.id, amount, &refund.status)
                            .map_err(|e| match e {
                                orders::RefundError::Db(e) => e,
                                other => diesel::result::Error::SerializationError(Box::new(other)),
                            })?;
                    thread::late_payment_refunded(conn, &refunded)
                })
                .await?;
            told(ctx, order_id, thread_id);
            Ok(())
        }
    }
}

/// Expires unpaid orders whose session ran out: Stripe is asked first, so a payment that completed at the
/// last moment is kept, and the session is expired at Stripe before the stock is given back.
async fn sweep(ctx: &WorkerContext, stripe: &StripeClient) -> Result<(), DbError> {
    close_sessions(ctx, stripe).await?;
    let overdue = ctx.db.query(|conn| orders::overdue(conn, now(), 50)).await?;
    for order in overdue {
        let order_id = order.id;
        let Some(session_id) = order.stripe_session_id.clone() else {
            // No session was ever recorded: nothing at Stripe can be paid through us.
            if let Err(e) = apply_status(ctx, stripe, order, OrderStatus::Expired, None).await {
                tracing::warn!(order.id = %order_id, error = %e, "overdue order not expired; will retry");
            }
            continue;
        };
        let session = match stripe.retrieve_checkout_session(&session_id).await {
            Ok(s) if s.status == SessionStatus::Open => stripe.expire_checkout_session(&session_id).await,
            other => other,
        };
        let applied = match session {
            Ok(session) => apply_session(ctx, stripe, order, false, &session)
                .await
                .map(|_| ()),
            Err(e) => Err(e.into()),
        };
        if let Err(e) = applied {
            tracing::warn!(order.id = %order_id, error = %e, "overdue order not settled; will retry");
        }
    }
    Ok(())
}

/// Asks Stripe about orders whose payment is not settled (see [`orders::to_reconcile`]) and brings each to
/// what its session says, as its webhook would have: a webhook lost for good, or a worker that was down,
/// still ends in the right state. Answers how many orders were checked.
async fn reconcile(
    ctx: &WorkerContext,
    stripe: &StripeClient,
    stale_before: Option<NaiveDateTime>,
) -> Result<usize, DbError> {
    let due = ctx
        .db
        .query(move |conn| orders::to_reconcile(conn, stale_before, 50))
        .await?;
    let count = due.len();
    for order in due {
        let (order_id, session_id) = (order.id, order.stripe_session_id.clone().unwrap_or_default());
        ctx.db
            .query(move |conn| orders::mark_checked(conn, order_id, Some(now())))
            .await?;
        let applied = match stripe.retrieve_checkout_session(&session_id).await {
            Ok(session) => apply_session(ctx, stripe, order, false, &session)
                .await
                .map(|_| ()),
            Err(e) => Err(e.into()),
        };
        if let Err(e) = applied {
            tracing::warn!(order.id = %order_id, error = %e, "order not reconciled with Stripe; will retry");
        }
    }
    Ok(count)
}

/// Expires at Stripe the sessions of orders that ended here (superseded by a changed cart, expired,
/// failed), so none of them can still be paid. One that was paid meanwhile is settled (honoured or
/// refunded: see [`settle_late`]).
async fn close_sessions(ctx: &WorkerContext, stripe: &StripeClient) -> Result<(), DbError> {
    let open = ctx.db.query(|conn| orders::sessions_to_close(conn, 50)).await?;
    for (order_id, session_id) in open {
        let closed = match stripe.expire_checkout_session(&session_id).await {
            Ok(_) => true,
            Err(e) if e.is_retryable() => {
                tracing::warn!(order.id = %order_id, error = %e, "session not expired at Stripe; will retry");
                false
            }
            // Already expired or completed: Stripe says which.
            Err(_) => match stripe.retrieve_checkout_session(&session_id).await {
                Ok(s) if s.status == SessionStatus::Complete => {
                    let order = ctx
                        .db
                        .query(move |conn| orders::load_order(conn, order_id))
                        .await?;
                    match apply_session(ctx, stripe, order, false, &s).await {
                        Ok(_) => true,
                        Err(e) => {
                            tracing::warn!(order.id = %order_id, error = %e, "late payment not settled; will retry");
                            false
                        }
                    }
                }
                Ok(_) => true,
                Err(e) => {
                    tracing::warn!(order.id = %order_id, error = %e, "session state unknown; will retry");
                    false
                }
            },
        };
        if closed {
            ctx.db
                .query(move |conn| orders::mark_session_closed(conn, order_id))
                .await?;
        }
    }
    Ok(())
}

/// `charge.refunded` (sent for every refund, partial ones included, on every API version): the charge's
/// refunds are read from Stripe and each recorded once by its id, so refunds made in Stripe's dashboard
/// reach the order whether or not `refund.*` events are subscribed. `ignored` when it names no order.
async fn sync_refunds(
    ctx: &WorkerContext,
    stripe: &StripeClient,
    payment_intent: String,
) -> Result<&'static str, ApplyError> {
    let pi = payment_intent.clone();
    let Some(order) = ctx
        .db
        .query(move |conn| orders::find_by_payment_intent(conn, &pi))
        .await?
    else {
        return Ok("ignored");
    };
    let refunds = stripe.list_refunds(&payment_intent).await?;
    let order_id = order.id;
    ctx.db
        .query(move |conn| {
            for refund in refunds.iter().rev() {
                let Some(amount) = crate::checkout::stripe::from_stripe_amount(refund.amount, order.currency)
                else {
                    continue;
                };
                match orders::record_refund(conn, order_id, &refund.id, amount, &refund.status) {
                    Ok(_) => {}
                    Err(orders::RefundError::Db(e)) => return Err(e),
                    Err(e) => {
                        tracing::error!(order.id = %order_id, error = %e, "refund from Stripe not recorded")
                    }
                }
            }
            Ok(())
        })
        .await?;
    Ok("done")
}

/// `refund.*`: the refund (made through our API or in Stripe's dashboard) is recorded on its order, once
/// per refund id. Answers how the event ended: `done`, or `ignored` when it names no order of ours.
async fn record_refund_event(ctx: &WorkerContext, refund: RefundObject) -> Result<&'static str, DbError> {
    ctx.db
        .query(move |conn| {
            let Some(order) = orders::find_by_payment_intent(conn, &refund.payment_intent)? else {
                return Ok("ignored");
            };
            let Some(amount) = crate::checkout::stripe::from_stripe_amount(refund.amount, order.currency)
            else {
                return Ok("ignored");
            };
            match orders::record_refund(conn, order.id, &refund.id, amount, &refund.status) {
                Ok(_) => Ok("done"),
                Err(orders::RefundError::Db(e)) => Err(e),
                Err(e) => {
                    tracing::error!(order.id = %order.id, error = %e, "refund event not recorded");
                    Ok("ignored")
                }
            }
        })
        .await
}

/// `charge.dispute.created` flags the order, a dispute closed as `won` clears the flag. `ignored` when it
/// names no order of ours.
async fn set_disputed(
    ctx: &WorkerContext,
    payment_intent: String,
    disputed: bool,
) -> Result<&'static str, DbError> {
    ctx.db
        .query(move |conn| {
            let Some(order) = orders::find_by_payment_intent(conn, &payment_intent)? else {
                return Ok("ignored");
            };
            orders::set_disputed(conn, order.id, disputed)?;
            Ok("done")
        })
        .await
}

/// The shopper may have been told something about the order in its thread: the sender and the thread's
/// listeners are woken.
fn told(ctx: &WorkerContext, order_id: uuid::Uuid, thread_id: Option<uuid::Uuid>) {
    if let Some(thread) = thread_id {
        tracing::debug!(order.id = %order_id, "order's thread told");
        ctx.wakers.replies_queued(crate::db::DbUuid(thread));
    }
}
