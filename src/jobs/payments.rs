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
use crate::checkout::orders::{self, Order, OrderStatus};
use crate::checkout::stripe::{
    CheckoutLine, CheckoutSession, NewCheckout, PaymentStatus, SessionStatus, StripeClient, StripeError,
};
use crate::db::{DbError, now};
use crate::messenger::payments as thread;

/// Tries at creating a session before the order is given up.
const MAX_SESSION_ATTEMPTS: i32 = 5;

pub(super) async fn payments_loop(ctx: Arc<WorkerContext>, mut stopped: watch::Receiver<bool>) {
    let Some(stripe) = ctx.stripe.clone() else {
        // Without Stripe keys there is nothing to pay with: checkout hands shoppers to a person.
        let _ = stopped.changed().await;
        return;
    };
    let mut last_sweep = Instant::now();
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
        if last_sweep.elapsed() >= ctx.config.sweep_interval {
            last_sweep = Instant::now();
            if let Err(e) = sweep(&ctx, &stripe).await {
                tracing::error!(error = %e, "sweeping overdue orders failed");
            }
        }
        if busy > 0 {
            ctx.wakers.outbox.notify_one();
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

async fn create_sessions(ctx: &WorkerContext, stripe: &StripeClient) -> Result<usize, DbError> {
    let waiting = ctx.db.query(|conn| orders::needing_session(conn, 20)).await?;
    let mut handled = 0;
    for order in waiting {
        // Retries wait longer each time.
        if order.attempt > 0 && now() < order.updated_at + backoff(ctx.config.retry_base, order.attempt - 1) {
            continue;
        }
        let (id, seen) = (order.id, order.attempt);
        let claimed = ctx
            .db
            .query(move |conn| orders::claim_session_attempt(conn, id, seen))
            .await?;
        if !claimed {
            continue;
        }
        handled += 1;
        create_session(ctx, stripe, order).await?;
    }
    Ok(handled)
}

async fn create_session(ctx: &WorkerContext, stripe: &StripeClient, order: Order) -> Result<(), DbError> {
    let attempt = order.attempt + 1;
    let minutes = i64::try_from(ctx.config.checkout_ttl.as_secs() / 60).unwrap_or(30);
    let expires_at = now() + chrono::Duration::minutes(minutes);
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
        expires_at: unix(expires_at),
        success_url: format!("{base}/checkout/success?order={}", order.id),
        cancel_url: format!("{base}/checkout/cancel?order={}", order.id),
        locale: locale(customer_locale.as_deref()),
    };
    let key = format!("order-{}-{attempt}", order.id);
    match stripe.create_checkout_session(&request, &key).await {
        Ok(session) => {
            let Some(url) = session.url.clone() else {
                tracing::error!(order.id = %order.id, "Stripe answered a session without a URL");
                return Ok(());
            };
            let expires = session.expires_at.map_or(expires_at, from_unix);
            let order_id = order.id;
            let session_id = session.id.clone();
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
                tracing::info!(order.id = %order_id, "Checkout Session created");
            } else if let Err(e) = stripe.expire_checkout_session(&session_id).await {
                // The order ended while its session was being made: that page must not take a payment.
                tracing::warn!(order.id = %order_id, error = %e, "session of an ended order not expired at Stripe");
            }
        }
        Err(e) if e.is_retryable() && attempt < MAX_SESSION_ATTEMPTS => {
            tracing::warn!(order.id = %order.id, attempt, error = %e, "Checkout Session not created; will retry");
        }
        Err(e) => {
            tracing::error!(order.id = %order.id, attempt, error = %e, "Checkout Session could not be created");
            let order_id = order.id;
            ctx.db
                .query(move |conn| {
                    orders::transition(conn, order_id, OrderStatus::PaymentFailed, None, now())?;
                    thread::payment_unavailable(conn, &order)
                })
                .await?;
        }
    }
    Ok(())
}

/// What an event means for its order, from the session as Stripe says it is now.
fn next_status(kind: &str, session: &CheckoutSession) -> Option<OrderStatus> {
    match (session.status, session.payment_status) {
        (SessionStatus::Complete, PaymentStatus::Paid | PaymentStatus::NoPaymentRequired) => {
            Some(OrderStatus::Paid)
        }
        (SessionStatus::Complete, _) if kind == "checkout.session.async_payment_failed" => {
            Some(OrderStatus::PaymentFailed)
        }
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
}

async fn apply_event(ctx: &WorkerContext, stripe: &StripeClient, event: &Pending) -> Result<(), ApplyError> {
    let id = event.id.clone();
    if event.kind.starts_with("refund.") || event.kind.starts_with("charge.dispute.") {
        let outcome = apply_refund_or_dispute(ctx, event).await?;
        ctx.db.query(move |conn| events::done(conn, &id, outcome)).await?;
        return Ok(());
    }
    if !event.kind.starts_with("checkout.session.") {
        ctx.db
            .query(move |conn| events::done(conn, &id, "ignored"))
            .await?;
        return Ok(());
    }
    let parsed = crate::checkout::stripe::parse_event(event.payload.as_bytes())?;
    let Some(session_id) = parsed.object_id else {
        ctx.db
            .query(move |conn| events::done(conn, &id, "ignored"))
            .await?;
        return Ok(());
    };
    let sid = session_id.clone();
    let Some(order) = ctx
        .db
        .query(move |conn| orders::find_by_session(conn, &sid))
        .await?
    else {
        // Not one of ours (another integration on the same Stripe account).
        ctx.db
            .query(move |conn| events::done(conn, &id, "ignored"))
            .await?;
        return Ok(());
    };
    // Events can be late, repeated or out of order: Stripe's current state decides.
    let session = stripe.retrieve_checkout_session(&session_id).await?;
    let Some(next) = next_status(&event.kind, &session) else {
        ctx.db.query(move |conn| events::done(conn, &id, "done")).await?;
        return Ok(());
    };
    if next == OrderStatus::Paid && session.total() != Some(order.total) {
        // Stripe charged another amount than the order's: never accepted silently.
        tracing::error!(
            order.id = %order.id,
            order.total = %order.total,
            stripe.total = ?session.total(),
            "paid amount differs from the order's total: left for review"
        );
        ctx.db
            .query(move |conn| events::done(conn, &id, "review"))
            .await?;
        return Ok(());
    }
    apply_status(ctx, order, next, session.payment_intent.clone()).await?;
    ctx.db.query(move |conn| events::done(conn, &id, "done")).await?;
    Ok(())
}

/// Moves an order and tells the shopper (a receipt once paid).
async fn apply_status(
    ctx: &WorkerContext,
    order: Order,
    next: OrderStatus,
    payment_intent: Option<String>,
) -> Result<(), DbError> {
    let order_id = order.id;
    ctx.db
        .query(move |conn| {
            let moved = orders::transition(conn, order_id, next, payment_intent.as_deref(), now())?;
            if moved {
                thread::order_moved(conn, &order, next)?;
            } else if next == OrderStatus::Paid && order.status != OrderStatus::Paid {
                // Paid at Stripe while expired here: the money must not be lost; an agent settles it.
                tracing::error!(order.id = %order.id, status = order.status.as_str(), "payment for an order that is not awaiting it");
            }
            Ok(())
        })
        .await
}

/// Expires unpaid orders whose session ran out: Stripe is asked first, so a payment that completed at the
/// last moment is kept, and the session is expired at Stripe before the stock is given back.
async fn sweep(ctx: &WorkerContext, stripe: &StripeClient) -> Result<(), DbError> {
    close_sessions(ctx, stripe).await?;
    let overdue = ctx.db.query(|conn| orders::overdue(conn, now(), 50)).await?;
    for order in overdue {
        let next = match order.stripe_session_id.as_deref() {
            None => Some(OrderStatus::Expired),
            Some(session_id) => match stripe.retrieve_checkout_session(session_id).await {
                Ok(s) if s.status == SessionStatus::Open => {
                    match stripe.expire_checkout_session(session_id).await {
                        Ok(s) => next_status("checkout.session.expired", &s),
                        Err(e) => {
                            tracing::warn!(order.id = %order.id, error = %e, "session not expired at Stripe; will retry");
                            None
                        }
                    }
                }
                Ok(s) => next_status("checkout.session.expired", &s),
                Err(e) => {
                    tracing::warn!(order.id = %order.id, error = %e, "session not read from Stripe; will retry");
                    None
                }
            },
        };
        if let Some(next) = next {
            let intent = None;
            apply_status(ctx, order, next, intent).await?;
        }
    }
    Ok(())
}

/// Expires at Stripe the sessions of orders that ended here (superseded by a changed cart, expired,
/// failed), so none of them can still be paid.
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
                    // Paid for an order that ended here: the money is at Stripe and must be settled by
                    // a person (refund or honour); it is never silently kept.
                    tracing::error!(order.id = %order_id, "a superseded or expired order was paid at Stripe");
                    true
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

/// `refund.*`: the refund (made through our API or in Stripe's dashboard) is recorded on its order, once
/// per refund id; `charge.dispute.created` flags the order, a dispute closed as `won` clears the flag.
/// Answers how the event ended: `done`, or `ignored` when it names no order of ours.
async fn apply_refund_or_dispute(ctx: &WorkerContext, event: &Pending) -> Result<&'static str, DbError> {
    let body: serde_json::Value = serde_json::from_str(&event.payload).unwrap_or_default();
    let object = body["data"]["object"].clone();
    let Some(intent) = object["payment_intent"].as_str().map(str::to_owned) else {
        return Ok("ignored");
    };
    let kind = event.kind.clone();
    ctx.db
        .query(move |conn| {
            let Some(order) = orders::find_by_payment_intent(conn, &intent)? else {
                return Ok("ignored");
            };
            if kind.starts_with("refund.") {
                let (Some(id), Some(amount)) = (object["id"].as_str(), object["amount"].as_i64()) else {
                    return Ok("ignored");
                };
                let status = object["status"].as_str().unwrap_or("pending");
                let Some(amount) = crate::checkout::stripe::from_stripe_amount(amount, order.currency) else {
                    return Ok("ignored");
                };
                match orders::record_refund(conn, order.id, id, amount, status) {
                    Ok(_) => Ok("done"),
                    Err(orders::RefundError::Db(e)) => Err(e),
                    Err(e) => {
                        tracing::error!(order.id = %order.id, error = %e, "refund event not recorded");
                        Ok("ignored")
                    }
                }
            } else if kind == "charge.dispute.created" {
                orders::set_disputed(conn, order.id, true)?;
                Ok("done")
            } else if kind == "charge.dispute.closed" && object["status"] == "won" {
                orders::set_disputed(conn, order.id, false)?;
                Ok("done")
            } else {
                Ok("ignored")
            }
        })
        .await
}
