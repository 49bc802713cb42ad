//! Runs the engine on one event of a thread and carries out what it decided: cart changes, funnel
//! events, handover, and the replies queued in the outbox, all in the caller's transaction.

use diesel::QueryResult;
use uuid::Uuid;

use super::outbox;
use crate::attribution::{self, FunnelStep};
use crate::bookings::{self, Bookable, HoldError, HoldRequest, NightAvailability};
use crate::carts::{self, CartError};
use crate::catalog::{self, CatalogError, Product, ProductQuery, Variant};
use crate::conversations::{self, Customer, Mode, Thread};
use crate::db::DbConnection;
use crate::engine::{self, Command, Input, OfferView, Shop, StayOfferKind, StayOfferView, Turn};
use crate::messenger::render::Message;

/// The merchant's catalog, read through the connection of the event's transaction.
struct DbShop<'c> {
    conn: &'c mut DbConnection,
    merchant_id: Uuid,
}

fn query<T>(r: Result<T, CatalogError>) -> QueryResult<T> {
    match r {
        Ok(v) => Ok(v),
        Err(CatalogError::NotFound(_)) => Err(diesel::result::Error::NotFound),
        Err(CatalogError::Db(e)) => Err(e),
        Err(other) => Err(diesel::result::Error::QueryBuilderError(other.to_string().into())),
    }
}

fn found<T>(r: QueryResult<T>) -> QueryResult<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(diesel::result::Error::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

impl Shop for DbShop<'_> {
    fn product(&mut self, id: Uuid) -> QueryResult<Option<Product>> {
        found(query(catalog::get_product(self.conn, self.merchant_id, id)))
    }

    fn product_by_retailer_id(&mut self, retailer_id: &str) -> QueryResult<Option<Product>> {
        query(catalog::find_by_retailer_id(
            self.conn,
            self.merchant_id,
            retailer_id,
        ))
    }

    fn variant(&mut self, id: Uuid) -> QueryResult<Option<(Product, Variant)>> {
        query(catalog::variant_with_product(self.conn, self.merchant_id, id))
    }

    fn browse(&mut self, limit: usize) -> QueryResult<Vec<Product>> {
        catalog::browse(self.conn, self.merchant_id, i64::try_from(limit).unwrap_or(100))
    }

    fn search(&mut self, words: &[String], limit: usize) -> QueryResult<Vec<Product>> {
        let q = ProductQuery {
            after: None,
            limit: i64::try_from(limit).unwrap_or(100),
            words: words.to_vec(),
        };
        catalog::list_products(self.conn, self.merchant_id, &q)
    }

    fn offers_for(&mut self, product: Uuid) -> QueryResult<Vec<OfferView>> {
        let offers = crate::offers::triggered_by(self.conn, self.merchant_id, product)?;
        let mut views = Vec::with_capacity(offers.len());
        for offer in offers {
            if let Some(view) = self.view(offer)? {
                views.push(view);
            }
        }
        Ok(views)
    }

    fn offer(&mut self, id: Uuid) -> QueryResult<Option<OfferView>> {
        match crate::offers::get(self.conn, self.merchant_id, id)? {
            Some(offer) if offer.active => self.view(offer),
            _ => Ok(None),
        }
    }

    fn discount(&mut self, code: &str) -> QueryResult<Option<crate::discounts::Discount>> {
        crate::discounts::find_by_code(self.conn, self.merchant_id, code)
    }

    fn rooms(&mut self) -> QueryResult<Vec<Bookable>> {
        let q = bookings::BookableQuery {
            after: None,
            limit: 100,
            active_only: true,
        };
        bookings::list(self.conn, self.merchant_id, &q)
    }

    fn room(&mut self, id: Uuid) -> QueryResult<Option<Bookable>> {
        Ok(bookings::get(self.conn, self.merchant_id, id)?.filter(|b| b.spec.active))
    }

    fn nights(
        &mut self,
        room: &Bookable,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> QueryResult<Vec<NightAvailability>> {
        match bookings::availability(self.conn, self.merchant_id, room.id, from, to) {
            Ok(nights) => Ok(nights),
            Err(bookings::BookableError::Db(e)) => Err(e),
            Err(other) => Err(diesel::result::Error::QueryBuilderError(other.to_string().into())),
        }
    }

    fn stay_offers(&mut self, room: Uuid) -> QueryResult<Vec<StayOfferView>> {
        let offers = crate::offers::triggered_by_bookable(self.conn, self.merchant_id, room)?;
        let mut views = Vec::with_capacity(offers.len());
        for offer in offers {
            if let Some(view) = self.stay_view(offer)? {
                views.push(view);
            }
        }
        Ok(views)
    }

    fn stay_offer(&mut self, id: Uuid) -> QueryResult<Option<StayOfferView>> {
        match crate::offers::get(self.conn, self.merchant_id, id)? {
            Some(offer) if offer.active => self.stay_view(offer),
            _ => Ok(None),
        }
    }
}

impl DbShop<'_> {
    /// An upgrade or add-on with its room or item, when they are still offered.
    fn stay_view(&mut self, offer: crate::offers::Offer) -> QueryResult<Option<StayOfferView>> {
        use crate::offers::{OfferTarget, OfferTrigger};
        if !matches!(offer.trigger, OfferTrigger::Bookable(_)) {
            return Ok(None);
        }
        let kind = match offer.target {
            OfferTarget::Bookable { id, night_delta } => match self.room(id)? {
                Some(room) => StayOfferKind::Upgrade { room, night_delta },
                None => return Ok(None),
            },
            OfferTarget::Variant { id, per_night } => {
                let Some((product, variant)) =
                    query(catalog::variant_with_product(self.conn, self.merchant_id, id))?
                else {
                    return Ok(None);
                };
                let price = offer
                    .price(variant.price)
                    .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
                StayOfferKind::AddOn {
                    product,
                    variant,
                    price,
                    per_night,
                }
            }
        };
        Ok(Some(StayOfferView {
            id: offer.id,
            text: offer.text,
            kind,
        }))
    }

    /// An offer with its variant and price, when the variant is still sold.
    fn view(&mut self, offer: crate::offers::Offer) -> QueryResult<Option<OfferView>> {
        let Some(variant_id) = offer.target.variant() else {
            return Ok(None);
        };
        let Some((product, variant)) = query(catalog::variant_with_product(
            self.conn,
            self.merchant_id,
            variant_id,
        ))?
        else {
            return Ok(None);
        };
        let price = offer
            .price(variant.price)
            .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
        Ok(Some(OfferView {
            id: offer.id,
            text: offer.text,
            product,
            variant,
            price,
        }))
    }
}

/// Answers one shopper event on the thread, first marking it seen when `mark_seen`.
pub fn answer(
    conn: &mut DbConnection,
    customer: &Customer,
    thread: &Thread,
    input: Input<'_>,
    payments: bool,
    mark_seen: bool,
) -> QueryResult<()> {
    let (merchant, has_rooms) = crate::merchants::get_with_rooms(conn, customer.merchant_id.0)?;
    let cart = carts::open_cart(conn, thread.id.0)?;
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
        input,
    };
    let outcome = engine::respond(
        &turn,
        &mut DbShop {
            conn,
            merchant_id: merchant.id,
        },
    )?;
    let mut replies = outcome.replies;
    // The cart as the commands leave it, when they say; `None` when a change leaves it to be read again.
    let mut changed_cart: Option<Option<carts::Cart>> = Some(cart.clone());
    let mut show_cart = outcome.then_show_cart;
    let mut funnel =
        attribution::ThreadFunnel::with_settings(thread, merchant.timezone, merchant.attribution_window_days)
            .hold_rollup();
    let mut offer_for = outcome.then_offer_for;
    let mut show_stay = outcome.then_show_stay;
    // Outside business hours the first message of the (local) day gets the away text; shopping goes on.
    if let Some(away) = merchant.away_text_at(at) {
        let today = crate::merchants::hours::BusinessHours::local_date(merchant.timezone, at);
        if thread.away_sent_on.as_deref() != Some(today.as_str()) {
            conversations::set_away_sent_on(conn, thread.id.0, &today)?;
            replies.splice(0..0, crate::messenger::render::Message::text(away));
        }
    }
    for command in outcome.commands {
        match command {
            Command::Viewed { product } => {
                funnel.record(conn, FunnelStep::ProductView, Some(product), None)?;
            }
            Command::Add { variant, quantity } => {
                let Some((product, variant)) =
                    query(catalog::variant_with_product(conn, merchant.id, variant))?
                else {
                    continue;
                };
                match carts::add(conn, merchant.id, thread.id.0, &product, &variant, quantity) {
                    Ok(updated) => {
                        changed_cart = Some(Some(updated));
                        let value = variant.price.checked_mul(i64::from(quantity)).ok();
                        funnel.record(conn, FunnelStep::AddToCart, Some(product.id), value)?;
                    }
                    // Sold between the engine's look and now: say so instead of the confirmation.
                    Err(CartError::OutOfStock { available }) => {
                        replies = engine::out_of_stock(&product, &variant, available)?;
                        show_cart = false;
                        offer_for = None;
                    }
                    Err(CartError::Full) => {
                        replies = crate::messenger::render::Message::text(
                            "Your cart is full: check it out or remove something first.",
                        );
                    }
                    Err(e @ CartError::TooLarge { .. }) => {
                        replies = Message::text(&format!("Your cart cannot hold that much: {e}."));
                    }
                    Err(CartError::StaleLine) => {}
                    Err(CartError::Db(e)) => return Err(e),
                }
            }
            Command::SetQuantity { line, quantity } => {
                let stay = cart
                    .as_ref()
                    .and_then(|c| c.lines.iter().find(|l| l.id == line))
                    .and_then(|l| l.booking_id);
                if let Some(booking) = stay {
                    if quantity == 0 && carts::set_quantity(conn, thread.id.0, line, 0, None).is_ok() {
                        release_quietly(conn, booking)?;
                        changed_cart = None;
                    }
                    continue;
                }
                let stock = match cart.as_ref().and_then(|c| c.lines.iter().find(|l| l.id == line)) {
                    Some(l) => match l.variant_id {
                        Some(v) => {
                            query(catalog::variant_with_product(conn, merchant.id, v))?.map(|(_, v)| v.stock)
                        }
                        None => None,
                    },
                    None => None,
                };
                match carts::set_quantity(conn, thread.id.0, line, quantity, stock) {
                    Ok(updated) => changed_cart = Some(Some(updated)),
                    Err(CartError::StaleLine) => {}
                    Err(CartError::OutOfStock { available }) => {
                        replies.extend(crate::messenger::render::Message::text(&format!(
                            "Sorry, only {available} in stock."
                        )));
                    }
                    Err(CartError::Full) => {}
                    Err(e @ CartError::TooLarge { .. }) => {
                        replies.extend(Message::text(&format!("Your cart cannot hold that much: {e}.")));
                    }
                    Err(CartError::Db(e)) => return Err(e),
                }
            }
            Command::HandToAgent => conversations::set_mode(conn, thread.id.0, Mode::Agent)?,
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
                    thread.id.0,
                    &view.product,
                    &view.variant,
                    1,
                    Some((offer, view.price)),
                ) {
                    Ok(mut updated) => {
                        carts::record_offer(conn, cart.id, offer, "accepted")?;
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
                        replies = engine::out_of_stock(&view.product, &view.variant, available)?;
                        show_cart = false;
                    }
                    Err(CartError::Full | CartError::StaleLine) => {}
                    Err(e @ CartError::TooLarge { .. }) => {
                        replies = Message::text(&format!("Your cart cannot hold that much: {e}."));
                    }
                    Err(CartError::Db(e)) => return Err(e),
                }
            }
            Command::DeclineOffer { offer } => {
                if let Some(cart) = cart.as_ref() {
                    carts::record_offer(conn, cart.id, offer, "declined")?;
                }
                if let Some(Some(updated)) = changed_cart.as_mut()
                    && !updated.offers_seen.contains(&offer)
                {
                    updated.offers_seen.push(offer);
                }
            }
            Command::Checkout { cart: _ } if !payments => {
                replies.extend(crate::messenger::render::Message::text(
                    "Thank you! Online payment is not open yet in this shop: a person from our team will \
                     finish your order with you here.",
                ));
                conversations::set_mode(conn, thread.id.0, Mode::Agent)?;
            }
            Command::Checkout { cart: _ } => {
                replies.extend(checkout(conn, &merchant, &mut funnel, cart.as_ref(), at)?);
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
            Command::AskDates { bookable } => {
                conversations::set_stay_room(conn, thread.id.0, Some(bookable))?
            }
            Command::Hold {
                bookable,
                stay,
                guests,
            } => {
                let request = HoldRequest {
                    bookable_id: bookable,
                    stay,
                    guests,
                    thread_id: Some(thread.id.0),
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
                    thread_id: Some(thread.id.0),
                    expires_at: old.expires_at,
                };
                changed_cart = None;
                match hold_in_cart(conn, &merchant, thread, &request, Some(price))? {
                    Ok(_) => {
                        carts::record_offer(conn, cart.id, offer, "accepted")?;
                        let extra = price.checked_sub(current).ok();
                        funnel.record_stay(conn, FunnelStep::AddToCart, room.id, extra)?;
                        replies.extend(Message::text(&format!("Upgraded to the {}.", room.spec.name)));
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
                    thread.id.0,
                    &product,
                    &variant,
                    units,
                    Some((offer, price)),
                ) {
                    Ok(_) => {
                        changed_cart = None;
                        carts::record_offer(conn, cart.id, offer, "accepted")?;
                        let value = price.checked_mul(i64::from(units)).ok();
                        funnel.record(conn, FunnelStep::AddToCart, Some(product.id), value)?;
                        replies.extend(Message::text(&format!("Added {}.", product.fields.title)));
                    }
                    Err(CartError::OutOfStock { available }) => {
                        replies = engine::out_of_stock(&product, &variant, available)?;
                    }
                    Err(CartError::Full | CartError::StaleLine) => {}
                    Err(e @ CartError::TooLarge { .. }) => {
                        replies = Message::text(&format!("Your cart cannot hold that much: {e}."));
                    }
                    Err(CartError::Db(e)) => return Err(e),
                }
            }
        }
    }
    if show_stay {
        replies.extend(held_stay_replies(conn, merchant.id, thread, at)?);
    }
    if show_cart {
        let cart = match changed_cart {
            Some(known) => known,
            None => carts::open_cart(conn, thread.id.0)?,
        };
        replies.extend(engine::cart_replies(cart.as_ref(), at)?);
        if let (Some(product), Some(cart)) = (offer_for, cart.as_ref()) {
            let offers = DbShop {
                conn,
                merchant_id: merchant.id,
            }
            .offers_for(product)?;
            if let Some(offer) = engine::pick_offer(cart, &offers) {
                replies.extend(engine::offer_replies(cart, offer)?);
                carts::record_offer(conn, cart.id, offer.id, "shown")?;
            }
        }
    }
    outbox::enqueue_replies(conn, thread, &customer.psid, mark_seen, replies)?;
    funnel.flush_rollup(conn)
}

/// How long a stay is held before checkout; checkout moves its end to the Checkout Session's.
const HOLD_BEFORE_CHECKOUT: chrono::Duration = chrono::Duration::minutes(15);

/// The stays of the cart's lines, as they stand.
fn stays_of(
    conn: &mut DbConnection,
    merchant_id: Uuid,
    cart: Option<&carts::Cart>,
) -> QueryResult<Vec<bookings::Booking>> {
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
fn release_quietly(conn: &mut DbConnection, booking: Uuid) -> QueryResult<()> {
    match bookings::release(conn, booking) {
        Ok(_) | Err(bookings::BookingError::WrongStatus(_) | bookings::BookingError::NotFound) => Ok(()),
        Err(bookings::BookingError::Db(e)) => Err(e),
        Err(other) => Err(diesel::result::Error::QueryBuilderError(other.to_string().into())),
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
) -> QueryResult<Result<bookings::Booking, Vec<Message>>> {
    let booking = match bookings::hold(conn, merchant.id, request) {
        Ok(booking) => booking,
        Err(HoldError::Db(e)) => return Err(e),
        Err(HoldError::DbUnavailable(e)) => {
            return Err(diesel::result::Error::QueryBuilderError(e.to_string().into()));
        }
        Err(HoldError::Unavailable) => {
            let Some(room) = bookings::get(conn, merchant.id, request.bookable_id)? else {
                return Ok(Err(Message::text("Sorry, that room is no longer offered.")));
            };
            let today = bookings::stay::local_today(room.spec.timezone, crate::db::now());
            let alternatives = match bookings::nearest_available(
                conn,
                merchant.id,
                room.id,
                request.stay,
                request.guests,
                today,
            ) {
                Ok(a) => a,
                Err(bookings::BookableError::Db(e)) => return Err(e),
                Err(e) => return Err(diesel::result::Error::QueryBuilderError(e.to_string().into())),
            };
            return Ok(Err(engine::unavailable(
                &room,
                request.stay,
                request.guests,
                &alternatives,
            )?));
        }
        Err(refusal) => return Ok(Err(Message::text(&format!("Sorry: {refusal}.")))),
    };
    let Some(room) = bookings::get(conn, merchant.id, booking.bookable_id)? else {
        return Err(diesel::result::Error::NotFound);
    };
    let price = price.unwrap_or(booking.total);
    if price != booking.total {
        bookings::reprice(conn, booking.id, price)?;
    }
    let replaced = match carts::put_stay(
        conn,
        merchant.id,
        thread.id.0,
        booking.id,
        &room.spec.name,
        &engine::stays::stay_line_name(booking.stay, booking.guests),
        room.spec.image_url.as_deref(),
        price,
    ) {
        Ok(replaced) => replaced,
        Err(e @ CartError::TooLarge { .. }) => {
            release_quietly(conn, booking.id)?;
            return Ok(Err(Message::text(&format!(
                "Your cart cannot hold that much: {e}."
            ))));
        }
        Err(CartError::Db(e)) => return Err(e),
        Err(e) => return Err(diesel::result::Error::QueryBuilderError(e.to_string().into())),
    };
    for old in replaced {
        release_quietly(conn, old)?;
    }
    conversations::set_stay_room(conn, thread.id.0, None)?;
    Ok(Ok(booking))
}

/// The cart's held stay with its price, its next offer (remembered as shown) and "Book and pay".
fn held_stay_replies(
    conn: &mut DbConnection,
    merchant_id: Uuid,
    thread: &Thread,
    at: chrono::NaiveDateTime,
) -> QueryResult<Vec<Message>> {
    let Some(cart) = carts::open_cart(conn, thread.id.0)? else {
        return Ok(Vec::new());
    };
    let Some(booking) = stays_of(conn, merchant_id, Some(&cart))?
        .into_iter()
        .find(|b| b.status == bookings::BookingStatus::Held)
    else {
        return engine::cart_replies(Some(&cart), at);
    };
    let Some(room) = bookings::get(conn, merchant_id, booking.bookable_id)? else {
        return engine::cart_replies(Some(&cart), at);
    };
    let mut shop = DbShop { conn, merchant_id };
    let (replies, shown) = engine::stay_replies(at, &cart, &booking, &room, &mut shop)?;
    if let Some(offer) = shown {
        carts::record_offer(conn, cart.id, offer, "shown")?;
    }
    Ok(replies)
}

/// Freezes the thread's cart into an order at Stripe's minimum for the currency, attributed to the
/// thread's latest touch within the attribution window, and records the checkout in the funnel when the order is new.
fn freeze(
    conn: &mut DbConnection,
    merchant: &crate::merchants::Merchant,
    funnel: &mut attribution::ThreadFunnel<'_>,
    at: chrono::NaiveDateTime,
) -> QueryResult<Result<crate::checkout::orders::CheckedOut, crate::checkout::orders::CheckoutRefusal>> {
    use crate::checkout::orders::{self, CheckoutRefusal};
    let minimum = crate::checkout::stripe::minimum_charge(merchant.currency)
        .map(|m| crate::money::Money::from_minor(m, merchant.currency));
    let thread = funnel.thread();
    let touch = funnel.attributed_touch(conn, at)?.map(|t| (t.id.0, t.ad_id));
    match orders::checkout(conn, merchant.id, thread.id.0, at, minimum, touch) {
        Ok(done) => {
            if done.created {
                funnel.record_order(conn, FunnelStep::Checkout, done.order.id, done.order.total, at)?;
            }
            Ok(Ok(done))
        }
        Err(CheckoutRefusal::Db(e)) => Err(e),
        Err(CheckoutRefusal::Money(e)) => Err(diesel::result::Error::SerializationError(Box::new(e))),
        Err(refusal) => Ok(Err(refusal)),
    }
}

/// What the shopper reads once their order exists: the Pay button, or a word while the payment page
/// is being made.
fn order_messages(order: &crate::checkout::orders::Order) -> QueryResult<Vec<Message>> {
    match &order.stripe_session_url {
        Some(url) => super::payments::pay_button(order, url),
        None => Ok(Message::text(&format!(
            "Order {}: {}. One moment, I am preparing your secure payment page…",
            order.number, order.total
        ))),
    }
}

/// The shopper tapped Checkout: the order's messages, or why not.
fn checkout(
    conn: &mut DbConnection,
    merchant: &crate::merchants::Merchant,
    funnel: &mut attribution::ThreadFunnel<'_>,
    cart: Option<&carts::Cart>,
    at: chrono::NaiveDateTime,
) -> QueryResult<Vec<Message>> {
    use crate::checkout::orders::CheckoutRefusal;
    match freeze(conn, merchant, funnel, at)? {
        Ok(done) => order_messages(&done.order),
        Err(CheckoutRefusal::EmptyCart) => engine::cart_replies(cart, at),
        Err(CheckoutRefusal::SoldOut {
            title,
            variant_name,
            available,
        }) => {
            let mut replies = Message::text(&format!(
                "Sorry, only {available} left of {title} ({variant_name}): please change your cart."
            ));
            replies.extend(engine::cart_replies(cart, at)?);
            Ok(replies)
        }
        Err(CheckoutRefusal::StayEnded { title, dates }) => Message::text_with_quick_replies(
            &format!("Sorry, the hold on the {title} ({dates}) has ended. Book it again?"),
            vec![
                crate::messenger::render::QuickReply::text(
                    "Book a stay",
                    &engine::payload::encode(&engine::payload::Payload::Rooms { page: 0 }),
                )
                .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?,
            ],
        )
        .map_err(|e| diesel::result::Error::SerializationError(Box::new(e))),
        Err(CheckoutRefusal::BelowMinimum { minimum }) => Ok(Message::text(&format!(
            "Online payment needs an order of at least {minimum}: add something to your cart."
        ))),
        Err(CheckoutRefusal::PaymentInProgress { number }) => Ok(Message::text(&format!(
            "The payment of order {number} is being processed; we will tell you here when it is confirmed."
        ))),
        // Handled by `freeze`.
        Err(CheckoutRefusal::Money(_) | CheckoutRefusal::Db(_)) => Ok(Vec::new()),
    }
}

/// An agent checks out the shopper's cart (`POST /v1/threads/{id}/checkout`): the order, or why not
/// (sold out, empty, below Stripe's minimum...). The shopper is told in the thread as when they tap
/// Checkout themselves.
pub fn checkout_for_agent(
    conn: &mut DbConnection,
    merchant_id: Uuid,
    thread_id: Uuid,
) -> QueryResult<Result<crate::checkout::orders::Order, String>> {
    crate::db::write_transaction(conn, |conn| {
        let thread = conversations::thread(conn, merchant_id, thread_id)?;
        let merchant = crate::merchants::get(conn, merchant_id)?;
        let mut funnel = attribution::ThreadFunnel::with_settings(
            &thread,
            merchant.timezone,
            merchant.attribution_window_days,
        );
        match freeze(conn, &merchant, &mut funnel, crate::db::now())? {
            Ok(done) => {
                super::payments::tell(conn, &done.order, order_messages(&done.order)?)?;
                Ok(Ok(done.order))
            }
            Err(refusal) => Ok(Err(refusal.to_string())),
        }
    })
}
