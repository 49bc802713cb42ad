//! What the shopper hears about their order, on whatever channel the order was made: the Pay button once
//! Stripe has a page for it, the receipt once paid, a word when the payment failed. On a Meta channel
//! they go out inside the messaging window (no tag may carry them). The updates the business owes the
//! shopper whatever the window ([`Update`]: the receipt, a late payment's refund, a stay's reminder) go
//! after it through the approved utility template (`crate::followups::templates`: the Page's on
//! Messenger, the WhatsApp Business Account's on WhatsApp), or are held until the shopper writes again
//! (`crate::followups::schedule`; Instagram has no templates); the web chat has no window.

use diesel::prelude::*;

use super::outbox;
use super::window::{MessagingType, Writer};
use crate::attribution::{self, FunnelStep};
use crate::checkout::orders::{Order, OrderStatus};
use crate::conversations::{self, Mode};
use crate::db::schema::{customers, shopper_notices};
use crate::db::{DbConnection, DbUuid, now};
use crate::engine::reply::{Action, Choice, Receipt, ReceiptLine, Reply, Utility};
use crate::followups::schedule;
use crate::followups::templates::{self, Placeholder, Purpose};
use crate::kernel::{Channel, MerchantId, Psid, ThreadId};
use crate::money::Money;

/// The thread's shopper's Messenger locale.
pub fn customer_locale(conn: &mut DbConnection, thread_id: ThreadId) -> QueryResult<Option<String>> {
    let thread = conversations::get_thread(conn, thread_id)?;
    customers::table
        .find(thread.customer_id)
        .select(customers::locale)
        .first(conn)
}

/// Queues replies on the order's thread when its channel allows it now; false when they could not be
/// sent.
pub fn tell(conn: &mut DbConnection, order: &Order, replies: &[Reply]) -> QueryResult<bool> {
    let Some(thread_id) = order.thread_id else {
        return Ok(false);
    };
    let thread = conversations::get_thread(conn, thread_id)?;
    let Some(messaging_type @ MessagingType::Response) =
        thread.window().allows(&thread, now(), Writer::Automation)
    else {
        tracing::info!(order.id = %order.id, "messaging window closed: the shopper is not told");
        return Ok(false);
    };
    let psid: Psid = customers::table
        .find(thread.customer_id)
        .select(customers::psid)
        .first(conn)?;
    for reply in replies {
        outbox::enqueue_message(conn, &thread, &psid, reply, "bot", messaging_type)?;
    }
    Ok(true)
}

crate::text_state! {
    /// How the shopper was told of an update the business owed them.
    Told {
        /// Inside the messaging window (or on the web chat), as an ordinary message.
        Sent = "sent",
        /// After the window, through the Page's approved utility template for the update.
        Template = "template",
        /// Neither was possible (no approved template, or a channel without templates): held, and sent
        /// when the shopper writes again.
        Held = "held",
        /// The order has no conversation to tell.
        NoThread = "no_thread",
    }
}

/// A stay, as the guest is told of it.
#[derive(Debug, Clone)]
pub struct Stay {
    /// The booking.
    pub booking_id: uuid::Uuid,
    /// Its thread.
    pub thread_id: Option<ThreadId>,
    /// The room type's name.
    pub room: String,
    /// Arrival.
    pub arrival: chrono::NaiveDate,
    /// Departure.
    pub departure: chrono::NaiveDate,
    /// From when the guest may arrive, local time.
    pub check_in: chrono::NaiveTime,
}

/// An update the business owes the shopper, whatever the state of the messaging window: inside it, it
/// goes as an ordinary message; after it, through the approved utility template for its purpose (on
/// Messenger and WhatsApp); else it is held until the shopper writes again (see [`owe`]).
#[derive(Debug, Clone)]
pub enum Update {
    /// The receipt of a paid order.
    Receipt(Order),
    /// A late payment went back in full.
    LateRefund(Order),
    /// Money went back on a paid order (from the API or Stripe's dashboard).
    Refund {
        /// The order as it stands after the refund.
        order: Order,
        /// The amount of this refund; none for the word sent after refunds were held, which gives
        /// the order's refunded amount.
        amount: Option<Money>,
    },
    /// A stay starts tomorrow.
    StayReminder(Stay),
    /// A confirmed stay was cancelled by the business.
    StayCancelled(Stay),
}

impl Update {
    /// The template purpose that carries it after the window.
    pub fn purpose(&self) -> Purpose {
        match self {
            Update::Receipt(_) => Purpose::OrderPaid,
            Update::LateRefund(_) | Update::Refund { .. } => Purpose::OrderRefunded,
            Update::StayReminder(_) => Purpose::BookingReminder,
            Update::StayCancelled(_) => Purpose::BookingCancelled,
        }
    }

    /// The order or booking it is about.
    pub fn subject(&self) -> uuid::Uuid {
        match self {
            Update::Receipt(o) | Update::LateRefund(o) | Update::Refund { order: o, .. } => o.id.0,
            Update::StayReminder(r) | Update::StayCancelled(r) => r.booking_id,
        }
    }

    fn thread_id(&self) -> Option<ThreadId> {
        match self {
            Update::Receipt(o) | Update::LateRefund(o) | Update::Refund { order: o, .. } => o.thread_id,
            Update::StayReminder(r) | Update::StayCancelled(r) => r.thread_id,
        }
    }

    /// The messages inside the window.
    fn replies(&self, first_name: Option<&str>) -> Vec<Reply> {
        match self {
            Update::Receipt(order) => {
                let mut messages = Reply::text(&format!("Thank you! Order {} is paid.", order.number));
                messages.push(receipt(order, first_name));
                messages
            }
            Update::LateRefund(order) => Reply::text(&format!(
                "Sorry: your payment for order {} arrived after the order had expired, and some items sold out \
                 meanwhile. We refunded the full {}; your bank shows it within a few days.",
                order.number, order.total
            )),
            Update::Refund {
                order,
                amount: Some(amount),
            } => Reply::text(&format!(
                "We refunded {amount} of order {}. Your bank shows it within a few days.",
                order.number
            )),
            Update::Refund { order, amount: None } => Reply::text(&format!(
                "Refunds of order {}: {} in all, of {}. Your bank shows them within a few days.",
                order.number, order.refunded, order.total
            )),
            Update::StayReminder(r) => Reply::text(&format!(
                "See you tomorrow{}! Your stay in the {} starts on {} (check-in from {}) and ends on {}.",
                first_name.map(|n| format!(", {n}")).unwrap_or_default(),
                r.room,
                r.arrival,
                r.check_in.format("%H:%M"),
                r.departure
            )),
            Update::StayCancelled(r) => Reply::text(&format!(
                "Your stay in the {} from {} to {} is cancelled. Write to us here with any question.",
                r.room, r.arrival, r.departure
            )),
        }
    }

    /// A template placeholder's value.
    fn value(&self, p: Placeholder, first_name: Option<&str>) -> String {
        match (self, p) {
            (_, Placeholder::FirstName) => first_name.unwrap_or("there").to_owned(),
            (
                Update::Receipt(o) | Update::LateRefund(o) | Update::Refund { order: o, .. },
                Placeholder::OrderNumber,
            ) => o.number.clone(),
            (Update::Refund { amount, order }, Placeholder::Amount) => {
                amount.unwrap_or(order.refunded).to_string()
            }
            (Update::LateRefund(o), Placeholder::Amount) if o.refunded.minor() > 0 => o.refunded.to_string(),
            (Update::Receipt(o) | Update::LateRefund(o), Placeholder::Amount) => o.total.to_string(),
            (Update::StayReminder(r) | Update::StayCancelled(r), Placeholder::Room) => r.room.clone(),
            (Update::StayReminder(r) | Update::StayCancelled(r), Placeholder::Arrival) => {
                r.arrival.to_string()
            }
            (Update::StayReminder(r) | Update::StayCancelled(r), Placeholder::Departure) => {
                r.departure.to_string()
            }
            _ => String::new(),
        }
    }
}

/// Tells the shopper `update` now if the channel allows it: inside the window as messages, after it
/// through the approved template for the update's purpose (Messenger: a `UTILITY` message, never a
/// tag; WhatsApp: a `template` message). When neither is possible the update is held, planned as a job due when the shopper writes
/// again ([`schedule::release_held`]). Answers how it went.
pub fn owe(conn: &mut DbConnection, update: &Update) -> QueryResult<Told> {
    let Some(thread_id) = update.thread_id() else {
        return Ok(Told::NoThread);
    };
    let thread = conversations::get_thread(conn, thread_id)?;
    let merchant_id = thread.merchant_id;
    if let Some(told) = tell_now(conn, &thread, update, true)? {
        record(conn, merchant_id, thread_id, update, told)?;
        return Ok(told);
    }
    record(conn, merchant_id, thread_id, update, Told::Held)?;
    schedule::plan(
        conn,
        schedule::Plan {
            merchant_id,
            kind: schedule::JobKind::HeldUpdate,
            subject_id: update.subject(),
            purpose: update.purpose().as_str(),
            thread_id: Some(thread_id),
            due_at: None,
        },
    )?;
    schedule::mark_holding(conn, thread_id)?;
    tracing::info!(thread.id = %thread_id, purpose = update.purpose().as_str(), "window closed and no approved template: the update is held until the shopper writes");
    Ok(Told::Held)
}

/// Sends a held update once its shopper wrote: `None` when the window closed again meanwhile (it stays
/// held).
pub fn send_held(conn: &mut DbConnection, update: &Update) -> QueryResult<Option<Told>> {
    let Some(thread_id) = update.thread_id() else {
        return Ok(Some(Told::NoThread));
    };
    let thread = conversations::get_thread(conn, thread_id)?;
    let told = tell_now(conn, &thread, update, false)?;
    if let Some(told) = told {
        record(conn, thread.merchant_id, thread_id, update, told)?;
    }
    Ok(told)
}

/// Records how the shopper was told `update`, now.
fn record(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    thread_id: ThreadId,
    update: &Update,
    told: Told,
) -> QueryResult<()> {
    diesel::insert_into(shopper_notices::table)
        .values((
            shopper_notices::id.eq(DbUuid(uuid::Uuid::now_v7())),
            shopper_notices::merchant_id.eq(merchant_id),
            shopper_notices::thread_id.eq(Some(thread_id)),
            shopper_notices::subject_id.eq(DbUuid(update.subject())),
            shopper_notices::purpose.eq(update.purpose().as_str()),
            shopper_notices::told.eq(told.as_str()),
            shopper_notices::created_at.eq(now()),
        ))
        .execute(conn)?;
    Ok(())
}

/// How the shopper was told of what concerns `subject` (an order or a booking), oldest first: the
/// purpose, how, and when.
pub fn told_of(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    subject: uuid::Uuid,
) -> QueryResult<Vec<(String, String, chrono::NaiveDateTime)>> {
    shopper_notices::table
        .filter(shopper_notices::merchant_id.eq(merchant_id))
        .filter(shopper_notices::subject_id.eq(DbUuid(subject)))
        .order((shopper_notices::created_at.asc(), shopper_notices::id.asc()))
        .limit(100)
        .select((
            shopper_notices::purpose,
            shopper_notices::told,
            shopper_notices::created_at,
        ))
        .load(conn)
}

/// The update as messages inside the window, or (when `template` and the thread is on Messenger or
/// WhatsApp) through the approved template after it; `None` when neither is possible now.
fn tell_now(
    conn: &mut DbConnection,
    thread: &conversations::Thread,
    update: &Update,
    template: bool,
) -> QueryResult<Option<Told>> {
    let (psid, locale, first_name): (Psid, Option<String>, Option<String>) = customers::table
        .find(thread.customer_id)
        .select((customers::psid, customers::locale, customers::first_name))
        .first(conn)?;
    if let Some(messaging_type @ MessagingType::Response) =
        thread.window().allows(thread, now(), Writer::Automation)
    {
        for reply in update.replies(first_name.as_deref()) {
            outbox::enqueue_message(conn, thread, &psid, &reply, "bot", messaging_type)?;
        }
        return Ok(Some(Told::Sent));
    }
    if !template || !matches!(thread.channel, Channel::Messenger | Channel::Whatsapp) {
        return Ok(None);
    }
    // A paid stay is confirmed through the Page's `booking_confirmed` template (room and dates) when
    // it has one, else through the receipt's.
    let stay = match update {
        Update::Receipt(order) => match order.lines.iter().find_map(|l| l.booking_id) {
            Some(booking) => crate::followups::reminders::confirmed_stay(conn, thread.merchant_id, booking)?,
            None => None,
        },
        _ => None,
    };
    let mut found = None;
    for purpose in stay
        .as_ref()
        .map(|_| Purpose::BookingConfirmed)
        .into_iter()
        .chain([update.purpose()])
    {
        if let Some(t) = templates::approved_for(conn, &thread.page_id, purpose, locale.as_deref())? {
            found = Some((purpose, t));
            break;
        }
    }
    let Some((purpose, template)) = found else {
        return Ok(None);
    };
    let value = |p: Placeholder| match (&stay, p) {
        (Some(s), Placeholder::Room) => s.room.clone(),
        (Some(s), Placeholder::Arrival) => s.arrival.to_string(),
        (Some(s), Placeholder::Departure) => s.departure.to_string(),
        _ => update.value(p, first_name.as_deref()),
    };
    let utility = Reply::Utility(Box::new(Utility {
        template: template.name.clone(),
        language: template.language.clone(),
        parameters: templates::parameters(&template.body, purpose, value),
        text: templates::fill(&template.body, purpose, value),
    }));
    outbox::enqueue_message(conn, thread, &psid, &utility, "bot", MessagingType::Utility)?;
    tracing::info!(thread.id = %thread.id, template = %template.name, "window closed: the update goes through its utility template");
    Ok(Some(Told::Template))
}

/// "Pay 59.90 EUR": a button to Stripe's page.
pub fn pay_button(order: &Order, url: &str) -> Vec<Reply> {
    vec![Reply::buttons(
        &format!(
            "Your order {} comes to {}. Pay securely on Stripe:",
            order.number, order.total
        ),
        vec![Action::pay(&format!("Pay {}", order.total), url)],
    )]
}

/// Sends the Pay button once the payments worker has the page.
pub fn send_pay_button(conn: &mut DbConnection, order: &Order, url: &str) -> QueryResult<()> {
    tell(conn, order, &pay_button(order, url))?;
    Ok(())
}

/// Stripe would not open a payment page: a person takes over.
pub fn payment_unavailable(conn: &mut DbConnection, order: &Order) -> QueryResult<()> {
    tell(
        conn,
        order,
        &Reply::text(
            "Sorry, the payment page could not be opened. A person from our team will help you here.",
        ),
    )?;
    if let Some(thread_id) = order.thread_id {
        conversations::set_mode(conn, thread_id, Mode::Agent)?;
    }
    Ok(())
}

fn receipt(order: &Order, first_name: Option<&str>) -> Reply {
    Reply::Receipt(Box::new(Receipt {
        recipient_name: first_name.unwrap_or("Customer").to_owned(),
        order_number: order.number.clone(),
        payment_method: "Stripe".into(),
        timestamp_secs: order.paid_at.map(|t| t.and_utc().timestamp()),
        order_url: None,
        lines: order
            .lines
            .iter()
            .map(|l| ReceiptLine {
                title: l.title.clone(),
                subtitle: (l.variant_name != l.title).then(|| l.variant_name.clone()),
                quantity: Some(l.quantity),
                price: l.total,
                image_url: l.image_url.clone(),
            })
            .collect(),
        adjustments: order
            .discount_code
            .clone()
            .filter(|_| order.discount.minor() > 0)
            .map(|code| (format!("Code {code}"), order.discount))
            .into_iter()
            .collect(),
        subtotal: Some(order.subtotal),
        total: order.total,
    }))
}

/// A payment that arrived after the order had ended, and whose stock was gone by then: it went back in
/// full; the shopper is told why, and that the cart is still there (see [`owe`]).
pub fn late_payment_refunded(conn: &mut DbConnection, order: &Order) -> QueryResult<()> {
    owe(conn, &Update::LateRefund(order.clone()))?;
    Ok(())
}

/// Money went back on a paid order: the shopper is told the amount (after the window, through
/// the Page's approved `order_refunded` template; see [`owe`]).
pub fn refunded(conn: &mut DbConnection, order: &Order, amount: Money) -> QueryResult<Told> {
    owe(
        conn,
        &Update::Refund {
            order: order.clone(),
            amount: Some(amount),
        },
    )
}

/// After an order moved: a receipt when paid (and the purchase in the funnel and queued for Meta's
/// Conversions API), a word when the payment
/// failed or waits for the bank.
pub fn order_moved(conn: &mut DbConnection, order: &Order, next: OrderStatus) -> QueryResult<()> {
    match next {
        OrderStatus::Paid => {
            if let Some(t) = order.thread_id {
                let thread = conversations::get_thread(conn, t)?;
                let at = order.paid_at.unwrap_or_else(now);
                let mut funnel = attribution::ThreadFunnel::new(thread.funnel_view());
                funnel.record_order(conn, FunnelStep::Purchase, order.id, order.total, at)?;
                if let Some(cart) = order.cart_id
                    && crate::followups::recovery::was_reminded(conn, cart)?
                {
                    funnel.record_order(conn, FunnelStep::RecoveredPurchase, order.id, order.total, at)?;
                }
                attribution::conversions::queue(conn, t, "Purchase", order.id, order.total, at)?;
                crate::events::of_thread(
                    conn,
                    &thread,
                    crate::events::EventKind::OrderPaid,
                    &serde_json::json!({"thread_id": t, "order_id": order.id, "number": order.number,
                                        "total": crate::money::MoneyDto::from(order.total)}),
                )?;
            }
            let paid = Order {
                paid_at: order.paid_at.or(Some(now())),
                ..order.clone()
            };
            let receipt = owe(conn, &Update::Receipt(paid))?;
            crate::checkout::orders::set_receipt(conn, order.id, receipt.as_str())?;
        }
        OrderStatus::Processing => {
            tell(
                conn,
                order,
                &Reply::text(&format!(
                    "Thank you! Order {} waits for your bank to confirm the payment; we will tell you here.",
                    order.number
                )),
            )?;
        }
        OrderStatus::PaymentFailed => {
            let text = format!(
                "The payment of order {} did not go through. Your cart is still here.",
                order.number
            );
            let retry = crate::engine::payload::encode(&crate::engine::payload::Payload::Cart);
            let messages = Reply::text_with_choices(&text, vec![Choice::new("Try again", &retry)]);
            tell(conn, order, &messages)?;
        }
        OrderStatus::Expired
        | OrderStatus::PartiallyRefunded
        | OrderStatus::Refunded
        | OrderStatus::AwaitingPayment => {}
    }
    Ok(())
}
