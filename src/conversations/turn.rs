//! The turn: one event of a shopper, on any channel, carried out in the caller's transaction. The
//! shopper's message is recorded, an ad or link becomes a touch, the channel's window moves, and when the
//! bot may answer, the engine decides; its commands are applied (carts, offers, codes, holds, funnel
//! events, handover) and its neutral replies queued.

use chrono::NaiveDateTime;
use uuid::Uuid;

use super::event::{EventKind, Inbound};
use super::inbox::Policy;
use super::outbox::{self, SenderAction};
use super::shop::DbShop;
use crate::attribution::{self, FunnelStep};
use crate::bookings::{self, HoldError, HoldRequest};
use crate::carts::{self, CartError};
use crate::catalog::{self, CatalogError};
use crate::conversations::{self, Customer, Direction, Mode, NewMessage, Thread};
use crate::db::{DbConnection, now};
use crate::engine::reply::{Choice, Reply};
use crate::engine::{self, Command, Input, Shop, StayOfferKind, StayOfferView, Turn};
use crate::kernel::{MerchantId, ThreadId};

/// Why an event's turn could not be taken: the inbox retries the event with backoff and sets it aside
/// after its last attempt. A refusal the shopper can be told about (sold out, no such code) is an answer,
/// never one of these.
#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
    /// The engine could not answer.
    #[error(transparent)]
    Engine(#[from] engine::Error),
    /// The stored event is not one this version reads.
    #[error("the stored event cannot be read: {0}")]
    Unreadable(#[from] serde_json::Error),
    /// The catalog failed to answer a read.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// A room type's nights could not be read.
    #[error(transparent)]
    Room(#[from] bookings::BookableError),
    /// A held stay could not be given back.
    #[error(transparent)]
    Booking(#[from] bookings::BookingError),
    /// A stay could not be held for a reason the shopper cannot act on.
    #[error(transparent)]
    Hold(#[from] HoldError),
    /// The cart could not be changed for a reason the shopper cannot act on.
    #[error(transparent)]
    Cart(#[from] CartError),
    /// An amount could not be worked out.
    #[error(transparent)]
    Money(#[from] crate::money::MoneyError),
}

/// What a turn's steps return.
pub type TurnResult<T> = Result<T, TurnError>;

/// Carries out one event of the customer's conversation, in the caller's transaction; returns the
/// thread when replies were queued on it.
pub fn take(
    conn: &mut DbConnection,
    customer: &Customer,
    event: &Inbound,
    at: NaiveDateTime,
    policy: Policy,
) -> TurnResult<Option<ThreadId>> {
    let stored = conversations::ensure_thread(conn, customer)?;
    let mut thread = stored.clone();
    let mut input: Option<Input<'_>> = None;
    let mut mark_seen = false;
    let record = |conn: &mut DbConnection, thread: &Thread, m: NewMessage<'_>| {
        conversations::record_message(conn, thread, &m).map(|_| ())
    };
    match &event.kind {
        EventKind::Message {
            mid,
            text,
            quick_reply,
            attachments,
            referral,
        } => {
            let kind = if quick_reply.is_some() {
                "quick_reply"
            } else if text.is_none() && !attachments.is_empty() {
                "attachment"
            } else {
                "text"
            };
            let payload = quick_reply
                .clone()
                .or_else(|| (!attachments.is_empty()).then(|| attachments.join(",")));
            record(
                conn,
                &thread,
                NewMessage {
                    direction: Direction::In,
                    author: "shopper",
                    kind,
                    mid: Some(mid),
                    text: text.as_deref(),
                    payload: payload.as_deref(),
                    occurred_at: at,
                },
            )?;
            // Marked seen with the replies, in the same statement.
            mark_seen = !event.passive;
            input = Some(match (referral, quick_reply, text) {
                // A message that came from an ad or a link (Instagram's Click-to-Direct): the entry.
                (Some(r), _, _) => {
                    thread = conversations::add_touch(conn, &thread, r, at)?;
                    Input::Referral(r)
                }
                (None, Some(payload), _) => Input::Tap {
                    payload,
                    referral: None,
                },
                (None, None, Some(text)) => Input::Text(text),
                (None, None, None) => Input::Attachment,
            });
        }
        EventKind::Echo { mid, ours, text } => {
            if !ours {
                // A person answered from the Page Inbox (or another app): the bot steps back.
                record(
                    conn,
                    &thread,
                    NewMessage {
                        direction: Direction::Out,
                        author: "human",
                        kind: "text",
                        mid: Some(mid),
                        text: text.as_deref(),
                        payload: None,
                        occurred_at: at,
                    },
                )?;
                conversations::human_replied(conn, &thread, at + policy.human_idle)?;
                thread.human_active_until = Some(at + policy.human_idle);
            }
        }
        EventKind::Postback {
            title,
            payload,
            referral,
        } => {
            record(
                conn,
                &thread,
                NewMessage {
                    direction: Direction::In,
                    author: "shopper",
                    kind: "postback",
                    mid: None,
                    text: title.as_deref(),
                    payload: payload.as_deref(),
                    occurred_at: at,
                },
            )?;
            if let Some(r) = referral {
                thread = conversations::add_touch(conn, &thread, r, at)?;
            }
            input = Some(Input::Tap {
                payload: payload.as_deref().unwrap_or_default(),
                referral: referral.as_ref(),
            });
        }
        EventKind::Referral(r) => {
            thread = conversations::add_touch(conn, &thread, r, at)?;
            input = Some(Input::Referral(r));
        }
        EventKind::Visit(r) => {
            thread = conversations::add_touch(conn, &thread, r, at)?;
        }
        EventKind::Order { mid, text, items } => {
            let summary = serde_json::to_string(items)?;
            record(
                conn,
                &thread,
                NewMessage {
                    direction: Direction::In,
                    author: "shopper",
                    kind: "order",
                    mid: Some(mid),
                    text: text.as_deref(),
                    payload: Some(&summary),
                    occurred_at: at,
                },
            )?;
            mark_seen = !event.passive;
        }
        EventKind::SendFailed { mid, error } => {
            if outbox::mark_failed_after_sending(conn, thread.id, mid, error)? {
                tracing::warn!(thread.id = %thread.id, error = %error, "a sent message did not reach the shopper");
            }
        }
        EventKind::Delivery { .. }
        | EventKind::Read { .. }
        | EventKind::Reaction { .. }
        | EventKind::Optin { .. }
        | EventKind::Other(_) => {}
    }
    // The merchant's rules look at every message the shopper sends (see `crate::rules`); one may hand
    // the thread to a person, in which case the bot says so instead of answering.
    let mut handed_over = false;
    if let EventKind::Message { text, .. } = &event.kind
        && !event.passive
    {
        let verdict = crate::rules::verdict_for(conn, &thread, text.as_deref())?;
        crate::rules::apply(conn, &thread, &verdict)?;
        if verdict.hand_over && thread.mode == Mode::Bot {
            conversations::set_mode(conn, thread.id, Mode::Agent)?;
            thread.mode = Mode::Agent;
            thread.queued_at = Some(at);
            handed_over = true;
        }
    }
    // A thread with a person: its agent (or the queue) sees the shopper write and read, live.
    if stored.queued_at.is_some() || handed_over {
        live_event(conn, &thread, &event.kind)?;
    }
    // After the touch: the message that carries an ad (Instagram's Click-to-Direct) is the first message
    // after that ad, and opens the ad's longer window.
    if event.kind.is_shopper_action() {
        let is_message = matches!(event.kind, EventKind::Message { .. });
        thread = conversations::note_shopper_action(&thread, at, is_message);
    }
    let reply_at = now();
    // Updates held while the window was closed go out now that the shopper writes (after this turn's
    // answer, by the schedule).
    if stored.has_held && event.kind.is_shopper_action() {
        crate::followups::schedule::release_held(conn, thread.id, reply_at)?;
    }
    let sends = if let EventKind::Order { items, .. } = &event.kind
        && !event.passive
        && thread.window_open(reply_at)
    {
        // The shopper's cart is theirs whoever answers; the bot says so only when it may answer (a
        // person sees the cart change live and in the thread's context).
        let mut replies = super::native_cart::apply(conn, customer, &thread, items, reply_at)?;
        if thread.bot_may_answer(reply_at) {
            if disclose(conn, customer, (&stored, at), &mut replies)? {
                thread.disclosed_at = Some(at);
            }
            outbox::enqueue_replies(conn, &thread, &customer.psid, mark_seen, &replies)?;
            Some(thread.id)
        } else {
            None
        }
    } else if let Some(input) = input
        && !event.passive
        && thread.bot_may_answer(reply_at)
        && thread.window_open(reply_at)
    {
        let told = answer(
            conn,
            customer,
            &thread,
            input,
            policy.payments,
            mark_seen,
            (&stored, at),
        )?;
        if told {
            thread.disclosed_at = Some(at);
        }
        Some(thread.id)
    } else if handed_over && thread.window_open(reply_at) {
        let mut replies = Reply::text(engine::HANDED_OVER);
        if disclose(conn, customer, (&stored, at), &mut replies)? {
            thread.disclosed_at = Some(at);
        }
        outbox::enqueue_replies(conn, &thread, &customer.psid, mark_seen, &replies)?;
        Some(thread.id)
    } else if mark_seen && thread.channel.is_meta() {
        outbox::enqueue_action(conn, &thread, &customer.psid, SenderAction::MarkSeen)?;
        Some(thread.id)
    } else {
        None
    };
    // Last, so the thread's row stays locked only until the commit that follows.
    conversations::save_progress(conn, &stored, &thread)?;
    Ok(sends)
}

/// Puts the sentence saying an automated assistant answers before the automated `replies` when it is
/// due (see [`super::disclosure`]); `(before, at)` is the thread before the event and its instant. True
/// when it did.
fn disclosed(
    merchant: &crate::merchants::Merchant,
    customer: &Customer,
    (before, at): (&Thread, NaiveDateTime),
    replies: &mut Vec<Reply>,
) -> bool {
    let due = !replies.is_empty() && super::disclosure::due(before, at, merchant.bot_disclosure.after_hours);
    if due {
        let sentence = super::disclosure::sentence(
            &merchant.name,
            &merchant.bot_disclosure.wording,
            customer.locale.as_deref(),
        );
        replies.splice(0..0, Reply::text(&sentence));
    }
    due
}

/// [`disclosed`] for the automated replies a turn sends without the engine (a WhatsApp cart's, a rule's
/// hand-over), reading the merchant.
fn disclose(
    conn: &mut DbConnection,
    customer: &Customer,
    before: (&Thread, NaiveDateTime),
    replies: &mut Vec<Reply>,
) -> TurnResult<bool> {
    let merchant = crate::merchants::get(conn, customer.merchant_id)?;
    Ok(disclosed(&merchant, customer, before, replies))
}

/// Tells the live feed (`crate::events`) what the shopper did in a thread with a person.
fn live_event(conn: &mut DbConnection, thread: &Thread, kind: &EventKind) -> TurnResult<()> {
    use crate::events::{self, EventKind as Live};
    let (live, data) = match kind {
        EventKind::Message { mid, text, .. } => (
            Live::MessageIn,
            serde_json::json!({"thread_id": thread.id, "mid": mid, "text": text}),
        ),
        EventKind::Postback { title, .. } => (
            Live::MessageIn,
            serde_json::json!({"thread_id": thread.id, "text": title}),
        ),
        EventKind::Order { mid, text, items } => (
            Live::MessageIn,
            serde_json::json!({"thread_id": thread.id, "mid": mid,
                               "text": text.clone().unwrap_or_else(|| "(a WhatsApp cart)".into()),
                               "order": items}),
        ),
        EventKind::Read { .. } => (Live::MessageRead, serde_json::json!({"thread_id": thread.id})),
        _ => return Ok(()),
    };
    events::of_thread(conn, thread, live, &data)?;
    Ok(())
}

/// Answers one shopper event on the thread, first marking it seen when `mark_seen`; `(before, at)` is
/// the thread as it stood before the event and the event's instant, to decide whether the answer says
/// that an automated assistant is answering (see [`super::disclosure`]). True when it did.
pub fn answer(
    conn: &mut DbConnection,
    customer: &Customer,
    thread: &Thread,
    input: Input<'_>,
    payments: bool,
    mark_seen: bool,
    (before, event_at): (&Thread, NaiveDateTime),
) -> TurnResult<bool> {
    let (merchant, has_rooms) = crate::merchants::get_with_rooms(conn, customer.merchant_id)?;
    let cart = carts::open_cart(conn, thread.id)?;
    let at = crate::db::now();
    let stays = stays_of(conn, merchant.id, cart.as_ref())?;
    let stay_room = thread.stay_bookable_id.map(|r| r.0);
    let turn = Turn {
        at,
        merchant_name: &merchant.name,
        first_name: customer.first_name.as_deref(),
        cart: cart.as_ref(),
        stays: &stays,
        stay_room,
        has_rooms,
        missed_before: thread.bot_missed,
        input,
    };
    let outcome = engine::respond(
        &turn,
        &mut DbShop {
            conn,
            merchant_id: merchant.id,
        },
    )?;
    if outcome.missed != thread.bot_missed {
        conversations::set_bot_missed(conn, thread.id, outcome.missed)?;
    }
    let mut replies = outcome.replies;
    // The cart as the commands leave it, when they say; `None` when a change leaves it to be read again.
    let mut changed_cart: Option<Option<carts::Cart>> = Some(cart.clone());
    let mut show_cart = outcome.then_show_cart;
    let mut funnel = attribution::ThreadFunnel::with_settings(
        thread.funnel_view(),
        merchant.timezone,
        merchant.attribution_window_days,
    );
    let mut offer_for = outcome.then_offer_for;
    let mut show_stay = outcome.then_show_stay;
    // Outside business hours the first message of the (local) day gets the away text; shopping goes on.
    if let Some(away) = merchant.away_text_at(at) {
        let today = crate::merchants::hours::BusinessHours::local_date(merchant.timezone, at);
        if thread.away_sent_on.as_deref() != Some(today.as_str()) {
            conversations::set_away_sent_on(conn, thread.id, &today)?;
            replies.splice(0..0, Reply::text(away));
        }
    }
    for command in outcome.commands {
        match command {
            Command::Viewed { product } => {
                funnel.record(conn, FunnelStep::ProductView, Some(product), None)?;
            }
            Command::Add { variant, quantity } => {
                let Some((product, variant)) = catalog::variant_with_product(conn, merchant.id, variant)?
                else {
                    continue;
                };
                match carts::add(conn, merchant.id, thread.id, &product, &variant, quantity) {
                    Ok(updated) => {
                        changed_cart = Some(Some(updated));
                        let value = variant.price.checked_mul(i64::from(quantity)).ok();
                        funnel.record(conn, FunnelStep::AddToCart, Some(product.id), value)?;
                    }
                    // Sold between the engine's look and now: say so instead of the confirmation.
                    Err(CartError::OutOfStock { available }) => {
                        replies = engine::out_of_stock(&product, &variant, available);
                        show_cart = false;
                        offer_for = None;
                    }
                    Err(CartError::Full) => {
                        replies = Reply::text("Your cart is full: check it out or remove something first.");
                    }
                    Err(e @ CartError::TooLarge { .. }) => {
                        replies = Reply::text(&format!("Your cart cannot hold that much: {e}."));
                    }
                    Err(CartError::StaleLine) => {}
                    Err(CartError::Db(e)) => return Err(e.into()),
                }
            }
            Command::SetQuantity { line, quantity } => {
                let stay = cart
                    .as_ref()
                    .and_then(|c| c.lines.iter().find(|l| l.id == line))
                    .and_then(|l| l.booking_id);
                if let Some(booking) = stay {
                    if quantity == 0 && carts::set_quantity(conn, thread.id, line, 0, None).is_ok() {
                        release_quietly(conn, booking)?;
                        changed_cart = None;
                    }
                    continue;
                }
                let stock = match cart.as_ref().and_then(|c| c.lines.iter().find(|l| l.id == line)) {
                    Some(l) => match l.variant_id {
                        Some(v) => catalog::variant_with_product(conn, merchant.id, v)?.map(|(_, v)| v.stock),
                        None => None,
                    },
                    None => None,
                };
                match carts::set_quantity(conn, thread.id, line, quantity, stock) {
                    Ok(updated) => changed_cart = Some(Some(updated)),
                    Err(CartError::StaleLine) => {}
                    Err(CartError::OutOfStock { available }) => {
                        replies.extend(Reply::text(&format!("Sorry, only {available} in stock.")));
                    }
                    Err(CartError::Full) => {}
                    Err(e @ CartError::TooLarge { .. }) => {
                        replies.extend(Reply::text(&format!("Your cart cannot hold that much: {e}.")));
                    }
                    Err(CartError::Db(e)) => return Err(e.into()),
                }
            }
            Command::HandToAgent => conversations::set_mode(conn, thread.id, Mode::Agent)?,
            Command::AcceptOffer { offer } => {
                let mut shop = DbShop {
                    conn,
                    merchant_id: merchant.id,
                };
                let Some(view) = shop.offer(offer)? else { continue };
                let Some(cart) = cart.as_ref() else { continue };
                match carts::add_priced(
                    conn,
                    merchant.id,
                    thread.id,
                    &view.product,
                    &view.variant,
                    1,
                    Some((offer, view.price)),
                ) {
                    Ok(mut updated) => {
                        carts::record_offer(conn, cart.id, offer, carts::OfferStatus::Accepted)?;
                        if !updated.offers_seen.contains(&offer) {
                            updated.offers_seen.push(offer);
                        }
                        changed_cart = Some(Some(updated));
                        funnel.record(
                            conn,
                            FunnelStep::AddToCart,
                            Some(view.product.id),
                            Some(view.price),
                        )?;
                    }
                    Err(CartError::OutOfStock { available }) => {
                        replies = engine::out_of_stock(&view.product, &view.variant, available);
                        show_cart = false;
                    }
                    Err(CartError::Full | CartError::StaleLine) => {}
                    Err(e @ CartError::TooLarge { .. }) => {
                        replies = Reply::text(&format!("Your cart cannot hold that much: {e}."));
                    }
                    Err(CartError::Db(e)) => return Err(e.into()),
                }
            }
            Command::DeclineOffer { offer } => {
                if let Some(cart) = cart.as_ref() {
                    carts::record_offer(conn, cart.id, offer, carts::OfferStatus::Declined)?;
                }
                if let Some(Some(updated)) = changed_cart.as_mut()
                    && !updated.offers_seen.contains(&offer)
                {
                    updated.offers_seen.push(offer);
                }
            }
            Command::Checkout { cart: _ } if !payments => {
                replies.extend(Reply::text(
                    "Thank you! Online payment is not open yet in this shop: a person from our team will \
                     finish your order with you here.",
                ));
                conversations::set_mode(conn, thread.id, Mode::Agent)?;
            }
            Command::Checkout { cart: _ } => {
                replies.extend(checkout(conn, thread, &merchant, &mut funnel, cart.as_ref(), at)?);
                changed_cart = None;
            }
            Command::ApplyCode { discount } => {
                if let Some(cart) = cart.as_ref() {
                    carts::set_discount(conn, cart.id, Some(discount))?;
                }
                changed_cart = None;
            }
            Command::ViewedRoom { bookable } => {
                funnel.record_stay(conn, FunnelStep::ProductView, bookable, None)?;
            }
            Command::AskDates { bookable } => conversations::set_stay_room(conn, thread.id, Some(bookable))?,
            Command::Hold {
                bookable,
                stay,
                guests,
            } => {
                let request = HoldRequest {
                    bookable_id: bookable,
                    stay,
                    guests,
                    thread_id: Some(thread.id),
                    expires_at: at + HOLD_BEFORE_CHECKOUT,
                };
                changed_cart = None;
                match hold_in_cart(conn, &merchant, thread, &request, None)? {
                    Ok(booking) => {
                        funnel.record_stay(conn, FunnelStep::AddToCart, bookable, Some(booking.total))?;
                    }
                    Err(refusal) => {
                        replies = refusal;
                        show_stay = false;
                    }
                }
            }
            Command::Upgrade { offer, booking } => {
                let mut shop = DbShop {
                    conn,
                    merchant_id: merchant.id,
                };
                let Some(StayOfferView {
                    kind: StayOfferKind::Upgrade { room, night_delta },
                    ..
                }) = shop.stay_offer(offer)?
                else {
                    continue;
                };
                let (Some(old), Some(cart)) = (stays.iter().find(|b| b.id == booking), cart.as_ref()) else {
                    continue;
                };
                let current = cart
                    .lines
                    .iter()
                    .find(|l| l.booking_id == Some(booking))
                    .map_or(old.total, |l| l.unit_price);
                let Some(price) =
                    engine::stays::upgrade_price(&mut shop, current, &room, night_delta, old.stay)?
                else {
                    continue;
                };
                let request = HoldRequest {
                    bookable_id: room.id,
                    stay: old.stay,
                    guests: old.guests,
                    thread_id: Some(thread.id),
                    expires_at: old.expires_at,
                };
                changed_cart = None;
                match hold_in_cart(conn, &merchant, thread, &request, Some(price))? {
                    Ok(_) => {
                        carts::record_offer(conn, cart.id, offer, carts::OfferStatus::Accepted)?;
                        let extra = price.checked_sub(current).ok();
                        funnel.record_stay(conn, FunnelStep::AddToCart, room.id, extra)?;
                        replies.extend(Reply::text(&format!("Upgraded to the {}.", room.spec.name)));
                    }
                    Err(refusal) => {
                        replies = refusal;
                        show_stay = false;
                    }
                }
            }
            Command::AddOn { offer, booking } => {
                let Some(StayOfferView {
                    kind:
                        StayOfferKind::AddOn {
                            product,
                            variant,
                            price,
                            per_night,
                        },
                    ..
                }) = (DbShop {
                    conn,
                    merchant_id: merchant.id,
                })
                .stay_offer(offer)?
                else {
                    continue;
                };
                let (Some(stay), Some(cart)) = (stays.iter().find(|b| b.id == booking), cart.as_ref()) else {
                    continue;
                };
                let units = if per_night { stay.stay.nights() } else { 1 };
                match carts::add_priced(
                    conn,
                    merchant.id,
                    thread.id,
                    &product,
                    &variant,
                    units,
                    Some((offer, price)),
                ) {
                    Ok(_) => {
                        changed_cart = None;
                        carts::record_offer(conn, cart.id, offer, carts::OfferStatus::Accepted)?;
                        let value = price.checked_mul(i64::from(units)).ok();
                        funnel.record(conn, FunnelStep::AddToCart, Some(product.id), value)?;
                        replies.extend(Reply::text(&format!("Added {}.", product.fields.title)));
                    }
                    Err(CartError::OutOfStock { available }) => {
                        replies = engine::out_of_stock(&product, &variant, available);
                    }
                    Err(CartError::Full | CartError::StaleLine) => {}
                    Err(e @ CartError::TooLarge { .. }) => {
                        replies = Reply::text(&format!("Your cart cannot hold that much: {e}."));
                    }
                    Err(CartError::Db(e)) => return Err(e.into()),
                }
            }
        }
    }
    if show_stay {
        replies.extend(held_stay_replies(conn, merchant.id, thread, at)?);
    }
    let after = match changed_cart {
        Some(known) => known,
        None => carts::open_cart(conn, thread.id)?,
    };
    cart_changed(conn, thread, cart.as_ref(), after.as_ref())?;
    let cart = after;
    // The shopper is here: the cart's reminder, if any, waits from now.
    if let Some(cart) = &cart {
        crate::followups::recovery::plan(conn, &merchant, thread, cart, at)?;
    }
    if show_cart {
        replies.extend(engine::cart_replies(cart.as_ref(), at)?);
        if let (Some(product), Some(cart)) = (offer_for, cart.as_ref()) {
            let offers = DbShop {
                conn,
                merchant_id: merchant.id,
            }
            .offers_for(product)?;
            if let Some(offer) = engine::pick_offer(cart, &offers) {
                replies.extend(engine::offer_replies(cart, offer)?);
                carts::record_offer(conn, cart.id, offer.id, carts::OfferStatus::Shown)?;
            }
        }
    }
    let told = disclosed(&merchant, customer, (before, event_at), &mut replies);
    outbox::enqueue_replies(conn, thread, &customer.psid, mark_seen, &replies)?;
    Ok(told)
}

/// How long a stay is held before checkout; checkout moves its end to the Checkout Session's.
const HOLD_BEFORE_CHECKOUT: chrono::Duration = chrono::Duration::minutes(15);

/// The stays of the cart's lines, as they stand.
fn stays_of(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    cart: Option<&carts::Cart>,
) -> TurnResult<Vec<bookings::Booking>> {
    let mut stays = Vec::new();
    for id in cart
        .iter()
        .flat_map(|c| c.lines.iter().filter_map(|l| l.booking_id))
    {
        if let Some(booking) = bookings::get_booking(conn, merchant_id, id)? {
            stays.push(booking);
        }
    }
    Ok(stays)
}

/// Gives a held stay's nights back; one that already ended is left as it is.
fn release_quietly(conn: &mut DbConnection, booking: Uuid) -> TurnResult<()> {
    match bookings::release(conn, booking) {
        Ok(_) | Err(bookings::BookingError::WrongStatus(_) | bookings::BookingError::NotFound) => Ok(()),
        Err(other) => Err(other.into()),
    }
}

/// Holds a stay and puts it in the cart (at `price`, else the rates' price) instead of the stays there,
/// whose nights are given back; or the replies saying why not (the nights went meanwhile: the
/// alternatives).
fn hold_in_cart(
    conn: &mut DbConnection,
    merchant: &crate::merchants::Merchant,
    thread: &Thread,
    request: &HoldRequest,
    price: Option<crate::money::Money>,
) -> TurnResult<Result<bookings::Booking, Vec<Reply>>> {
    let booking = match bookings::hold(conn, merchant.id, request) {
        Ok(booking) => booking,
        Err(e @ (HoldError::Db(_) | HoldError::DbUnavailable(_))) => return Err(e.into()),
        Err(HoldError::Unavailable) => {
            let Some(room) = bookings::get(conn, merchant.id, request.bookable_id)? else {
                return Ok(Err(Reply::text("Sorry, that room is no longer offered.")));
            };
            let today = bookings::stay::local_today(room.spec.timezone, crate::db::now());
            let alternatives =
                bookings::nearest_available(conn, merchant.id, room.id, request.stay, request.guests, today)?;
            return Ok(Err(engine::unavailable(
                &room,
                request.stay,
                request.guests,
                &alternatives,
            )));
        }
        Err(refusal) => return Ok(Err(Reply::text(&format!("Sorry: {refusal}.")))),
    };
    let Some(room) = bookings::get(conn, merchant.id, booking.bookable_id)? else {
        return Err(diesel::result::Error::NotFound.into());
    };
    let price = price.unwrap_or(booking.total);
    if price != booking.total {
        bookings::reprice(conn, booking.id, price)?;
    }
    let replaced = match carts::put_stay(
        conn,
        merchant.id,
        thread.id,
        booking.id,
        &room.spec.name,
        &engine::stays::stay_line_name(booking.stay, booking.guests),
        room.spec.image_url.as_deref(),
        price,
    ) {
        Ok(replaced) => replaced,
        Err(e @ CartError::TooLarge { .. }) => {
            release_quietly(conn, booking.id)?;
            return Ok(Err(Reply::text(&format!(
                "Your cart cannot hold that much: {e}."
            ))));
        }
        Err(e) => return Err(e.into()),
    };
    for old in replaced {
        release_quietly(conn, old)?;
    }
    conversations::set_stay_room(conn, thread.id, None)?;
    Ok(Ok(booking))
}

/// The cart's held stay with its price, its next offer (remembered as shown) and "Book and pay".
fn held_stay_replies(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    thread: &Thread,
    at: chrono::NaiveDateTime,
) -> TurnResult<Vec<Reply>> {
    let Some(cart) = carts::open_cart(conn, thread.id)? else {
        return Ok(Vec::new());
    };
    let Some(booking) = stays_of(conn, merchant_id, Some(&cart))?
        .into_iter()
        .find(|b| b.status == bookings::BookingStatus::Held)
    else {
        return Ok(engine::cart_replies(Some(&cart), at)?);
    };
    let Some(room) = bookings::get(conn, merchant_id, booking.bookable_id)? else {
        return Ok(engine::cart_replies(Some(&cart), at)?);
    };
    let mut shop = DbShop { conn, merchant_id };
    let (replies, shown) = engine::stay_replies(at, &cart, &booking, &room, &mut shop)?;
    if let Some(offer) = shown {
        carts::record_offer(conn, cart.id, offer, carts::OfferStatus::Shown)?;
    }
    Ok(replies)
}

/// Freezes the thread's cart into an order at Stripe's minimum for the currency, attributed to the
/// thread's latest touch within the attribution window, and records the checkout in the funnel when the order is new.
fn freeze(
    conn: &mut DbConnection,
    merchant: &crate::merchants::Merchant,
    funnel: &mut attribution::ThreadFunnel,
    at: chrono::NaiveDateTime,
) -> TurnResult<Result<crate::checkout::orders::CheckedOut, crate::checkout::orders::CheckoutRefusal>> {
    use crate::checkout::orders::{self, CheckoutRefusal};
    let minimum = crate::checkout::stripe::minimum_charge(merchant.currency)
        .map(|m| crate::money::Money::from_minor(m, merchant.currency));
    let thread_id = funnel.thread().id;
    let touch = funnel.attributed_touch(conn, at)?.map(|t| (t.id.0, t.ad_id));
    match orders::checkout(conn, merchant.id, thread_id, at, minimum, touch) {
        Ok(done) => {
            if done.created {
                funnel.record_order(conn, FunnelStep::Checkout, done.order.id, done.order.total, at)?;
            }
            Ok(Ok(done))
        }
        Err(CheckoutRefusal::Db(e)) => Err(e.into()),
        Err(CheckoutRefusal::Money(e)) => Err(e.into()),
        Err(refusal) => Ok(Err(refusal)),
    }
}

/// What the shopper reads once their order exists: the Pay button, or a word while the payment page
/// is being made.
fn order_messages(order: &crate::checkout::orders::Order) -> TurnResult<Vec<Reply>> {
    match &order.stripe_session_url {
        Some(url) => Ok(super::notices::pay_button(order, url)),
        None => Ok(Reply::text(&format!(
            "Order {}: {}. One moment, I am preparing your secure payment page…",
            order.number, order.total
        ))),
    }
}

/// The shopper tapped Checkout: the order's messages, or why not.
fn checkout(
    conn: &mut DbConnection,
    thread: &Thread,
    merchant: &crate::merchants::Merchant,
    funnel: &mut attribution::ThreadFunnel,
    cart: Option<&carts::Cart>,
    at: chrono::NaiveDateTime,
) -> TurnResult<Vec<Reply>> {
    use crate::checkout::orders::CheckoutRefusal;
    match freeze(conn, merchant, funnel, at)? {
        Ok(done) => {
            checkout_opened(conn, thread, &done.order)?;
            order_messages(&done.order)
        }
        Err(CheckoutRefusal::EmptyCart) => Ok(engine::cart_replies(cart, at)?),
        Err(CheckoutRefusal::SoldOut {
            title,
            variant_name,
            available,
        }) => {
            let mut replies = Reply::text(&format!(
                "Sorry, only {available} left of {title} ({variant_name}): please change your cart."
            ));
            replies.extend(engine::cart_replies(cart, at)?);
            Ok(replies)
        }
        Err(CheckoutRefusal::StayEnded { title, dates }) => Ok(Reply::text_with_choices(
            &format!("Sorry, the hold on the {title} ({dates}) has ended. Book it again?"),
            vec![Choice::new(
                "Book a stay",
                &engine::payload::encode(&engine::payload::Payload::Rooms { page: 0 }),
            )],
        )),
        Err(CheckoutRefusal::BelowMinimum { minimum }) => Ok(Reply::text(&format!(
            "Online payment needs an order of at least {minimum}: add something to your cart."
        ))),
        Err(CheckoutRefusal::PaymentInProgress { number }) => Ok(Reply::text(&format!(
            "The payment of order {number} is being processed; we will tell you here when it is confirmed."
        ))),
        // Handled by `freeze`.
        Err(CheckoutRefusal::Money(_) | CheckoutRefusal::Db(_)) => Ok(Vec::new()),
    }
}

/// Tells the live feed a checkout was opened in the thread (by the shopper or an agent).
fn checkout_opened(
    conn: &mut DbConnection,
    thread: &Thread,
    order: &crate::checkout::orders::Order,
) -> TurnResult<()> {
    crate::events::of_thread(
        conn,
        thread,
        crate::events::EventKind::CheckoutOpened,
        &serde_json::json!({"thread_id": thread.id, "order_id": order.id, "number": order.number}),
    )?;
    Ok(())
}

/// Tells the live feed the shopper's cart changed (lines, quantities or code), with its new size and
/// subtotal; nothing when it did not.
pub(super) fn cart_changed(
    conn: &mut DbConnection,
    thread: &Thread,
    before: Option<&carts::Cart>,
    after: Option<&carts::Cart>,
) -> TurnResult<()> {
    let shape = |c: Option<&carts::Cart>| {
        c.map(|c| {
            (
                c.id,
                c.lines
                    .iter()
                    .map(|l| (l.id, l.quantity, l.unit_price))
                    .collect::<Vec<_>>(),
                c.discount.as_ref().map(|d| d.id),
            )
        })
    };
    if shape(before) == shape(after) {
        return Ok(());
    }
    let data = match after {
        Some(c) => serde_json::json!({
            "thread_id": thread.id,
            "cart_id": c.id,
            "units": c.lines.iter().map(|l| u64::from(l.quantity)).sum::<u64>(),
            "subtotal": crate::money::MoneyDto::from(c.subtotal()?),
            "code": c.discount.as_ref().map(|d| d.code.clone()),
        }),
        None => serde_json::json!({"thread_id": thread.id, "cart_id": null, "units": 0}),
    };
    crate::events::of_thread(conn, thread, crate::events::EventKind::CartChanged, &data)?;
    Ok(())
}

/// An agent checks out the shopper's cart (`POST /v1/threads/{id}/checkout`): the order, or why not
/// (sold out, empty, below Stripe's minimum...). The shopper is told in the thread as when they tap
/// Checkout themselves.
pub fn checkout_for_agent(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    agent: Option<uuid::Uuid>,
    thread_id: ThreadId,
) -> TurnResult<Result<crate::checkout::orders::Order, crate::checkout::orders::CheckoutRefusal>> {
    crate::db::write_transaction(conn, |conn| {
        let thread = conversations::thread_for(conn, merchant_id, agent, thread_id)?;
        let merchant = crate::merchants::get(conn, merchant_id)?;
        let mut funnel = attribution::ThreadFunnel::with_settings(
            thread.funnel_view(),
            merchant.timezone,
            merchant.attribution_window_days,
        );
        match freeze(conn, &merchant, &mut funnel, crate::db::now())? {
            Ok(done) => {
                super::notices::tell(conn, &done.order, &order_messages(&done.order)?)?;
                checkout_opened(conn, &thread, &done.order)?;
                Ok(Ok(done.order))
            }
            Err(refusal) => Ok(Err(refusal)),
        }
    })
}
