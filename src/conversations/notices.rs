//! What the shopper hears about their order, on whatever channel the order was made: the Pay button once
//! Stripe has a page for it, the receipt once paid, a word when the payment failed. On a Meta channel
//! they go out inside the messaging window (no tag may carry them), and after it on Messenger only the
//! receipt and a late payment's refund, through the Page's approved utility template
//! (`crate::followups::templates`); the web chat has no window.

use diesel::prelude::*;

use super::outbox;
use super::window::{MessagingType, Writer};
use crate::attribution::{self, FunnelStep};
use crate::checkout::orders::{Order, OrderStatus};
use crate::conversations::{self, Mode};
use crate::db::schema::customers;
use crate::db::{DbConnection, now};
use crate::engine::reply::{Action, Choice, Receipt, ReceiptLine, Reply, Utility};
use crate::followups::templates::{self, Placeholder, Purpose};
use crate::kernel::{Channel, Psid, ThreadId};

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

/// Outside the messaging window, on Messenger: the Page's approved utility template for `purpose`, in
/// the shopper's language when there is one, queued as a `UTILITY` message. Answers what became of the
/// update: `template` (queued), `no_template` (none approved: not sent), or `window_closed` (a channel
/// without templates).
fn after_window(
    conn: &mut DbConnection,
    order: &Order,
    thread_id: ThreadId,
    purpose: Purpose,
) -> QueryResult<&'static str> {
    let thread = conversations::get_thread(conn, thread_id)?;
    if thread.channel != Channel::Messenger {
        tracing::info!(order.id = %order.id, "messaging window closed: the shopper is not told");
        return Ok("window_closed");
    }
    let (psid, locale, first_name): (Psid, Option<String>, Option<String>) = customers::table
        .find(thread.customer_id)
        .select((customers::psid, customers::locale, customers::first_name))
        .first(conn)?;
    let Some(template) = templates::approved_for(conn, &thread.page_id, purpose, locale.as_deref())? else {
        tracing::info!(order.id = %order.id, purpose = purpose.as_str(), "window closed and no approved template: the shopper is not told");
        return Ok("no_template");
    };
    let value = |p: Placeholder| match p {
        Placeholder::FirstName => first_name.as_deref().unwrap_or("there").to_owned(),
        Placeholder::OrderNumber => order.number.clone(),
        Placeholder::Amount if purpose == Purpose::OrderRefunded && order.refunded.minor() > 0 => {
            order.refunded.to_string()
        }
        Placeholder::Amount => order.total.to_string(),
        Placeholder::Room | Placeholder::Arrival | Placeholder::Departure => String::new(),
    };
    let utility = Reply::Utility(Box::new(Utility {
        template: template.name.clone(),
        language: template.language.clone(),
        parameters: templates::parameters(&template.body, purpose, value),
        text: templates::fill(&template.body, purpose, value),
    }));
    outbox::enqueue_message(conn, &thread, &psid, &utility, "bot", MessagingType::Utility)?;
    tracing::info!(order.id = %order.id, template = %template.name, "window closed: the update goes through its utility template");
    Ok("template")
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
/// full; the shopper is told why, and that the cart is still there (after Messenger's window, through
/// the Page's approved `order_refunded` template).
pub fn late_payment_refunded(conn: &mut DbConnection, order: &Order) -> QueryResult<()> {
    let text = format!(
        "Sorry: your payment for order {} arrived after the order had expired, and some items sold out \
         meanwhile. We refunded the full {}; your bank shows it within a few days.",
        order.number, order.total
    );
    if !tell(conn, order, &Reply::text(&text))?
        && let Some(thread_id) = order.thread_id
    {
        after_window(conn, order, thread_id, Purpose::OrderRefunded)?;
    }
    Ok(())
}

/// After an order moved: a receipt when paid (and the purchase in the funnel and queued for Meta's
/// Conversions API), a word when the payment
/// failed or waits for the bank.
pub fn order_moved(conn: &mut DbConnection, order: &Order, next: OrderStatus) -> QueryResult<()> {
    match next {
        OrderStatus::Paid => {
            let first_name = match order.thread_id {
                Some(t) => {
                    let thread = conversations::get_thread(conn, t)?;
                    let at = order.paid_at.unwrap_or_else(now);
                    attribution::record_order(
                        conn,
                        thread.funnel_view(),
                        FunnelStep::Purchase,
                        order.id,
                        order.total,
                        at,
                    )?;
                    attribution::conversions::queue(conn, t, "Purchase", order.id, order.total, at)?;
                    customers::table
                        .find(thread.customer_id)
                        .select(customers::first_name)
                        .first::<Option<String>>(conn)?
                }
                None => None,
            };
            let paid = Order {
                paid_at: order.paid_at.or(Some(now())),
                ..order.clone()
            };
            let mut messages = Reply::text(&format!("Thank you! Order {} is paid.", order.number));
            messages.push(receipt(&paid, first_name.as_deref()));
            let receipt = match order.thread_id {
                None => "no_thread",
                Some(_) if tell(conn, order, &messages)? => "sent",
                Some(t) => after_window(conn, &paid, t, Purpose::OrderPaid)?,
            };
            crate::checkout::orders::set_receipt(conn, order.id, receipt)?;
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
