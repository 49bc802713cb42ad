//! Cart recovery: a cart left with items for the merchant's `cart_reminder_minutes` (60 by default; 0
//! turns it off) gets one reminder with the cart and its Checkout button, while the channel's window is
//! open, the bot answers the thread, and the merchant is not away. Every shopper action moves the
//! reminder later; once sent, a cart is never reminded again. The funnel counts the reminders
//! (`cart_reminder`) and the purchases of reminded carts (`recovered_purchase`).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use uuid::Uuid;

use super::schedule::{self, Job, JobError, JobKind, Step};
use crate::attribution::{FunnelStep, ThreadFunnel};
use crate::carts::{self, Cart};
use crate::conversations::window::{MessagingType, Writer};
use crate::conversations::{self, Thread, outbox};
use crate::db::DbConnection;
use crate::db::schema::customers;
use crate::engine::reply::Reply;
use crate::kernel::Psid;
use crate::merchants::Merchant;

/// After a shopper's action on `thread` at `at`: the cart's reminder is due `cart_reminder_minutes`
/// later (moved if it was planned, never planned again once sent). Nothing for an empty cart or when
/// the merchant turned reminders off.
pub fn plan(
    conn: &mut DbConnection,
    merchant: &Merchant,
    thread: &Thread,
    cart: &Cart,
    at: NaiveDateTime,
) -> QueryResult<()> {
    let minutes = merchant.follow_ups.cart_reminder_minutes;
    if minutes <= 0 || cart.lines.is_empty() {
        return Ok(());
    }
    schedule::plan(
        conn,
        schedule::Plan {
            merchant_id: merchant.id,
            kind: JobKind::CartReminder,
            subject_id: cart.id,
            purpose: "",
            thread_id: Some(thread.id),
            due_at: Some(at + chrono::Duration::minutes(i64::from(minutes))),
        },
    )
}

/// Whether the cart's shopper was reminded of it (its job says `sent`).
pub fn was_reminded(conn: &mut DbConnection, cart: Uuid) -> QueryResult<bool> {
    Ok(
        schedule::outcome_of(conn, JobKind::CartReminder, cart)?
            .is_some_and(|(outcome, _)| outcome == "sent"),
    )
}

/// The reminder's job: sends it when every condition holds at `at`, else says why not (`cart_closed`,
/// `empty`, `off`, `with_person`, `away`, `window_closed`), or waits when the shopper acted since.
pub fn remind(conn: &mut DbConnection, job: &Job, at: NaiveDateTime) -> Result<Step, JobError> {
    let Some(thread_id) = job.thread_id else {
        return Ok(Step::Done("no_thread"));
    };
    let thread = conversations::get_thread(conn, thread_id)?;
    let Some(cart) = carts::open_cart(conn, thread_id)?.filter(|c| c.id == job.subject_id.0) else {
        return Ok(Step::Done("cart_closed"));
    };
    if cart.lines.is_empty() {
        return Ok(Step::Done("empty"));
    }
    let merchant = crate::merchants::get(conn, job.merchant_id)?;
    let minutes = merchant.follow_ups.cart_reminder_minutes;
    if minutes <= 0 {
        return Ok(Step::Done("off"));
    }
    // The shopper acted since the reminder was planned (an action through another path than a turn).
    if let Some(last) = thread.last_inbound_at {
        let due = last + chrono::Duration::minutes(i64::from(minutes));
        if due > at {
            return Ok(Step::Later(Some(due)));
        }
    }
    if !thread.bot_may_answer(at) {
        return Ok(Step::Done("with_person"));
    }
    if merchant.away_text_at(at).is_some() {
        return Ok(Step::Done("away"));
    }
    let Some(MessagingType::Response) = thread.window().allows(&thread, at, Writer::Automation) else {
        return Ok(Step::Done("window_closed"));
    };
    let psid: Psid = customers::table
        .find(thread.customer_id)
        .select(customers::psid)
        .first(conn)?;
    let units = cart.units();
    let mut replies = Reply::text(&format!(
        "You left {} in your cart. It is kept for you: check out whenever you are ready.",
        if units == 1 {
            "1 item".to_owned()
        } else {
            format!("{units} items")
        }
    ));
    replies.extend(crate::engine::cart_replies(Some(&cart), at)?);
    for reply in &replies {
        outbox::enqueue_message(conn, &thread, &psid, reply, "bot", MessagingType::Response)?;
    }
    // The job's outcome (`sent`) records the reminder: the cart's row is left alone, so a turn that
    // changes the cart meanwhile never waits on this transaction nor it on the turn.
    let value = cart.totals(at).ok().map(|t| t.total);
    ThreadFunnel::new(thread.funnel_view()).record(conn, FunnelStep::CartReminder, None, value)?;
    tracing::info!(thread.id = %thread.id, cart.id = %cart.id, "cart reminder queued");
    Ok(Step::Done("sent"))
}
