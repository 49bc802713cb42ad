//! The conversation engine: from what the shopper did (a tap, a typed text, an ad click) and what the
//! thread holds (its cart), to commands for the caller to apply and the replies to send.
//!
//! The engine writes nothing: it reads the catalog through [`Shop`] and returns [`Outcome`]. The caller
//! applies the commands in the same transaction as the event, and asks the engine again to render the
//! cart once changed ([`cart_replies`]) or to explain a refusal ([`out_of_stock`]).

mod memory;
pub mod payload;
mod referral;
pub mod reply;
pub mod stays;
pub mod text;

pub use memory::MemoryShop;
pub use referral::{Referral, Utm};
pub use stays::{StayOfferKind, StayOfferView, stay_replies, unavailable};

use uuid::Uuid;

use chrono::NaiveDate;

use crate::bookings::{Alternatives, Bookable, Booking, NightAvailability, StayDates};
use crate::carts::Cart;
use crate::catalog::{Product, Variant};
use crate::kernel::RetailerId;
use payload::Payload;
use reply::{Action, Card, Choice, EmptyPage, Reply};
use text::TextIntent;

pub use payload::GET_STARTED;

/// Why the engine could not answer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The shop could not be read: its storage failed, or holds a row it cannot read.
    #[error("the shop could not be read: {0}")]
    Shop(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// An amount could not be worked out (a sum overflowed, or currencies mixed).
    #[error(transparent)]
    Money(#[from] crate::money::MoneyError),
}

impl Error {
    /// The shop failed with `e`.
    pub fn shop(e: impl std::error::Error + Send + Sync + 'static) -> Error {
        Error::Shop(Box::new(e))
    }
}

impl From<diesel::result::Error> for Error {
    fn from(e: diesel::result::Error) -> Self {
        Error::shop(e)
    }
}

/// What the engine's reads and answers return.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Products a carousel considers (its pages show 9 or 10 of them at a time).
const BROWSE_LIMIT: usize = 100;

/// What the engine may read of the merchant's catalog.
pub trait Shop {
    /// A product by id.
    fn product(&mut self, id: Uuid) -> Result<Option<Product>>;
    /// A product by retailer id (what ads send back as `ads_context_data.product_id`).
    fn product_by_retailer_id(&mut self, retailer_id: &RetailerId) -> Result<Option<Product>>;
    /// A variant with its product.
    fn variant(&mut self, id: Uuid) -> Result<Option<(Product, Variant)>>;
    /// Products to browse: featured first.
    fn browse(&mut self, limit: usize) -> Result<Vec<Product>>;
    /// Products matching every word.
    fn search(&mut self, words: &[String], limit: usize) -> Result<Vec<Product>>;
    /// The active offers triggered by adding `product`.
    fn offers_for(&mut self, product: Uuid) -> Result<Vec<OfferView>>;
    /// An offer by id, when still active and its variant still sold.
    fn offer(&mut self, id: Uuid) -> Result<Option<OfferView>>;
    /// The discount code `code` (any case), whatever its state.
    fn discount(&mut self, code: &str) -> Result<Option<crate::discounts::Discount>>;
    /// The room types offered to shoppers, in creation order.
    fn rooms(&mut self) -> Result<Vec<Bookable>>;
    /// A room type offered to shoppers, by id.
    fn room(&mut self, id: Uuid) -> Result<Option<Bookable>> {
        Ok(self.rooms()?.into_iter().find(|r| r.id == id))
    }
    /// Units free and price of each night of `room` from `from` (included) to `to` (excluded).
    fn nights(&mut self, room: &Bookable, from: NaiveDate, to: NaiveDate) -> Result<Vec<NightAvailability>>;
    /// The active upgrade and add-on offers for a stay held in `room`.
    fn stay_offers(&mut self, room: Uuid) -> Result<Vec<StayOfferView>>;
    /// An upgrade or add-on offer by id, when still active and its target still offered.
    fn stay_offer(&mut self, id: Uuid) -> Result<Option<StayOfferView>>;
    /// What else would do when `stay` cannot be had in `room`: the nearest arrival that works (within
    /// [`crate::bookings::SEARCH_DAYS`], not before `today`) and the other rooms free on those dates,
    /// as [`crate::bookings::nearest_available`] answers them.
    fn alternatives(
        &mut self,
        room: &Bookable,
        stay: StayDates,
        guests: u32,
        today: NaiveDate,
    ) -> Result<Alternatives> {
        let window = chrono::Days::new(u64::from(crate::bookings::SEARCH_DAYS));
        let from = stay.arrival().checked_sub_days(window).unwrap_or(stay.arrival());
        let to = stay
            .departure()
            .checked_add_days(window)
            .unwrap_or(stay.departure());
        let free: std::collections::BTreeMap<NaiveDate, u32> = self
            .nights(room, from, to)?
            .into_iter()
            .map(|n| (n.night, n.available))
            .collect();
        let arrival = crate::bookings::nearest_arrival(
            stay.arrival(),
            stay.nights(),
            crate::bookings::SEARCH_DAYS,
            today,
            |night| free.get(&night).is_some_and(|units| *units > 0),
        );
        let dates = arrival
            .filter(|a| *a != stay.arrival())
            .and_then(|a| StayDates::new(a, stay.nights()).ok());
        let mut rooms = Vec::new();
        for other in self.rooms()? {
            let fits = other.id != room.id
                && other.spec.max_guests >= guests
                && (other.spec.min_nights..=other.spec.max_nights).contains(&stay.nights());
            if fits {
                let nights = self.nights(&other, stay.arrival(), stay.departure())?;
                if nights.len() == stay.nights() as usize && nights.iter().all(|n| n.available > 0) {
                    rooms.push(other);
                }
            }
        }
        Ok(Alternatives { dates, rooms })
    }
}

/// What happened in the thread.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// A postback button or quick reply tap, with the referral when the tap opened the thread from an ad
    /// or a link.
    Tap {
        /// The payload.
        payload: &'a str,
        /// The referral, on a new thread.
        referral: Option<&'a Referral>,
    },
    /// The shopper came back through an ad or a link (an existing thread).
    Referral(&'a Referral),
    /// The shopper typed text.
    Text(&'a str),
    /// The shopper sent a picture, a sticker, a file.
    Attachment,
}

/// An offer ready to show: its text, what it offers, at what price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferView {
    /// The offer.
    pub id: Uuid,
    /// The merchant's sentence ("Add wool socks?").
    pub text: String,
    /// The offered variant's product.
    pub product: Product,
    /// The offered variant.
    pub variant: Variant,
    /// Its price through the offer.
    pub price: crate::money::Money,
}

/// The thread as the engine sees it.
#[derive(Debug, Clone, Copy)]
pub struct Turn<'a> {
    /// Now (UTC): discount codes have validity windows.
    pub at: chrono::NaiveDateTime,
    /// The shop's name.
    pub merchant_name: &'a str,
    /// The shopper's first name, when Meta gave it.
    pub first_name: Option<&'a str>,
    /// The open cart.
    pub cart: Option<&'a Cart>,
    /// The stays in the open cart, as they stand now.
    pub stays: &'a [Booking],
    /// The room whose arrival date the thread was last asked (a typed date answers it).
    pub stay_room: Option<Uuid>,
    /// Whether the merchant has rooms to book (the menu offers "Book a stay").
    pub has_rooms: bool,
    /// The bot's last answer in the thread could not help: a second in a row hands the thread over.
    pub missed_before: bool,
    /// What happened.
    pub input: Input<'a>,
}

/// A change for the caller to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// The shopper saw a product's card (a funnel event).
    Viewed {
        /// The product.
        product: Uuid,
    },
    /// Put units of a variant in the cart.
    Add {
        /// The variant.
        variant: Uuid,
        /// Units.
        quantity: u32,
    },
    /// Change a line (0 removes it).
    SetQuantity {
        /// The line.
        line: Uuid,
        /// New units.
        quantity: u32,
    },
    /// Flag the thread for agents; the bot stays quiet until it is handed back.
    HandToAgent,
    /// Put the offered variant in the cart at the offer's price and remember the offer was taken.
    AcceptOffer {
        /// The offer.
        offer: Uuid,
    },
    /// Remember the offer was declined.
    DeclineOffer {
        /// The offer.
        offer: Uuid,
    },
    /// Freeze the cart into an order and send the shopper to pay (or, without payments, to a person).
    Checkout {
        /// The cart, as the shopper saw it.
        cart: Uuid,
    },
    /// Apply a discount code to the cart (replacing another).
    ApplyCode {
        /// The discount.
        discount: Uuid,
    },
    /// The shopper saw a room type's card (a funnel event).
    ViewedRoom {
        /// The room type.
        bookable: Uuid,
    },
    /// Remember that the thread was asked the arrival date for this room.
    AskDates {
        /// The room type.
        bookable: Uuid,
    },
    /// Hold the stay and put it in the cart, instead of any stay there; then show it
    /// (`then_show_stay`), or, if the nights went meanwhile, [`unavailable`].
    Hold {
        /// The room type.
        bookable: Uuid,
        /// The dates.
        stay: StayDates,
        /// Guests.
        guests: u32,
    },
    /// Move a held stay to the upgrade's room at the upgrade's price, and remember the offer taken.
    Upgrade {
        /// The offer.
        offer: Uuid,
        /// The held stay.
        booking: Uuid,
    },
    /// Put an add-on in the cart for a held stay (per night or once) at the offer's price.
    AddOn {
        /// The offer.
        offer: Uuid,
        /// The held stay.
        booking: Uuid,
    },
}

/// The engine's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Changes to make, in order.
    pub commands: Vec<Command>,
    /// Messages to send, in order.
    pub replies: Vec<Reply>,
    /// After the commands, send the cart as it then is ([`cart_replies`]).
    pub then_show_cart: bool,
    /// A product was added: after the cart, show the first offer it triggers ([`pick_offer`]).
    pub then_offer_for: Option<Uuid>,
    /// After the commands, show the cart's held stay with its price and next offer ([`stay_replies`]).
    pub then_show_stay: bool,
    /// The bot could not help (nothing found for the words, a picture it cannot look at).
    pub missed: bool,
}

impl Outcome {
    fn reply(replies: Vec<Reply>) -> Outcome {
        Outcome {
            replies,
            ..Outcome::default()
        }
    }
}

/// Decides what to do about one event.
pub fn respond(turn: &Turn<'_>, shop: &mut dyn Shop) -> Result<Outcome> {
    let outcome = match turn.input {
        Input::Tap { payload, referral } => match (payload::decode(payload), referral) {
            (_, Some(r)) => entry(turn, r, shop)?,
            (Ok(p), None) => tap(turn, p, shop)?,
            (Err(_), None) => stale(turn)?,
        },
        Input::Referral(r) => entry(turn, r, shop)?,
        Input::Text(t) => typed(turn, t, shop)?,
        Input::Attachment => Outcome {
            missed: true,
            ..Outcome::reply(with_menu(
                turn,
                "Thanks! I can't look at pictures, but I can help you shop:",
            ))
        },
    };
    // Twice in a row the bot could not help: a person takes over.
    if outcome.missed && turn.missed_before {
        return Ok(Outcome {
            commands: vec![Command::HandToAgent],
            replies: Reply::text(MISSED_TWICE),
            ..Outcome::default()
        });
    }
    Ok(outcome)
}

/// What the shopper is told when the bot could not help twice in a row.
pub const MISSED_TWICE: &str =
    "Sorry, I can't help with that: a person from our team will answer you here shortly.";

/// The quick replies every dead end offers: "Book a stay" too when the merchant has rooms.
fn menu(has_rooms: bool) -> Vec<Choice> {
    let mut replies = vec![Choice::new("Shop", &payload::encode(&Payload::Shop { page: 0 }))];
    if has_rooms {
        replies.push(Choice::new(
            "Book a stay",
            &payload::encode(&Payload::Rooms { page: 0 }),
        ));
    }
    replies.push(Choice::new("My cart", &payload::encode(&Payload::Cart)));
    replies.push(Choice::new("Talk to a person", &payload::encode(&Payload::Human)));
    replies
}

fn with_menu(turn: &Turn<'_>, text: &str) -> Vec<Reply> {
    Reply::text_with_choices(text, menu(turn.has_rooms))
}

fn hello(turn: &Turn<'_>) -> String {
    match turn.first_name {
        Some(name) => format!("Hi {name}!"),
        None => "Hi!".to_owned(),
    }
}

/// The `p=` part of a `ref` (see the README's `ref` convention), naming a product's retailer id.
fn ref_product(reference: &str) -> Option<&str> {
    reference
        .split('_')
        .find_map(|part| part.strip_prefix("p="))
        .filter(|id| !id.is_empty())
}

/// An ad click or a link: open on the advertised product or room, or the featured products.
fn entry(turn: &Turn<'_>, referral: &Referral, shop: &mut dyn Shop) -> Result<Outcome> {
    if let Some(outcome) = room_entry(turn, referral, shop)? {
        return Ok(outcome);
    }
    let wanted = referral
        .product_id
        .as_deref()
        .or_else(|| referral.ref_.as_deref().and_then(ref_product));
    if let Some(retailer_id) = wanted
        && let Some(product) = shop.product_by_retailer_id(&RetailerId::from(retailer_id))?
    {
        let intro = match &referral.ad_title {
            Some(title) => format!(
                "{} Thanks for your interest in “{title}”. Here it is:",
                hello(turn)
            ),
            None => format!("{} Here is the product you asked about:", hello(turn)),
        };
        let mut outcome = product_card(&product)?;
        outcome.replies.splice(0..0, Reply::text(&intro));
        return Ok(outcome);
    }
    let intro = format!(
        "{} Welcome to {}. Here is what we have:",
        hello(turn),
        turn.merchant_name
    );
    let mut outcome = browse(shop, 0)?;
    outcome.replies.splice(0..0, Reply::text(&intro));
    Ok(outcome)
}

/// An ad or ref naming a room (`b=` in the ref, or the ad's product id when it is no catalog product but
/// a room's id or name): its card and the arrival question.
fn room_entry(turn: &Turn<'_>, referral: &Referral, shop: &mut dyn Shop) -> Result<Option<Outcome>> {
    if !turn.has_rooms {
        return Ok(None);
    }
    let by_ref = referral.ref_.as_deref().and_then(stays::ref_room);
    let by_ad = match referral.product_id.as_deref() {
        Some(id) if shop.product_by_retailer_id(&RetailerId::from(id))?.is_none() => Some(id),
        _ => None,
    };
    let mut found = None;
    for wanted in [by_ref, by_ad].into_iter().flatten() {
        if let Some(room) = stays::find_room(shop, wanted)? {
            found = Some(room);
            break;
        }
    }
    let Some(room) = found else { return Ok(None) };
    let intro = match &referral.ad_title {
        Some(title) => format!(
            "{} Thanks for your interest in “{title}”. Here it is:",
            hello(turn)
        ),
        None => format!("{} Here is the room you asked about:", hello(turn)),
    };
    let mut outcome = stays::room(turn, &room, shop)?;
    outcome.replies.splice(0..0, Reply::text(&intro));
    Ok(Some(outcome))
}

/// Whether a variant may be offered.
fn in_stock(v: &Variant) -> bool {
    v.stock > 0
}

/// "49.90 EUR", or "from 39.90 EUR" when the variants in stock differ.
fn price_label(product: &Product) -> Option<String> {
    let prices: Vec<_> = product
        .variants
        .iter()
        .filter(|v| in_stock(v))
        .map(|v| v.price)
        .collect();
    let min = prices.iter().min_by_key(|p| p.minor())?;
    if prices.iter().all(|p| p == min) {
        Some(min.to_string())
    } else {
        Some(format!("from {min}"))
    }
}

/// "size" when every variant has a size, else "option".
fn option_word(product: &Product) -> &'static str {
    if product.variants.iter().all(|v| v.options.contains_key("size")) {
        "size"
    } else {
        "option"
    }
}

fn card(product: &Product, with_details_button: bool) -> Card {
    let mut card = Card::new(&product.fields.title);
    card = card.subtitle(&price_label(product).unwrap_or_else(|| "Out of stock".into()));
    if let Some(image) = &product.fields.image_url {
        card = card.image(image);
    }
    if let Some(url) = &product.fields.url {
        card = card.default_url(url);
    }
    let available: Vec<&Variant> = product.variants.iter().filter(|v| in_stock(v)).collect();
    // The catalog item: the first size in stock, else the first (Meta's catalog holds variants).
    if let Some(item) = available.first().copied().or_else(|| product.variants.first()) {
        card = card.catalog_item(&item.sku);
    }
    match available.as_slice() {
        [] => {}
        [only] if product.variants.len() == 1 => {
            card = card.button(Action::postback(
                "Add to cart",
                &payload::encode(&Payload::Add { variant: only.id }),
            ));
        }
        _ => {
            let title = format!("Choose {}", option_word(product));
            card = card.button(Action::postback(
                &title,
                &payload::encode(&Payload::ChooseOption {
                    product: product.id,
                    page: 0,
                }),
            ));
        }
    }
    if with_details_button {
        card = card.button(Action::postback(
            "Details",
            &payload::encode(&Payload::Product { product: product.id }),
        ));
    }
    card
}

/// One product's card, and the funnel event of seeing it.
fn product_card(product: &Product) -> Result<Outcome> {
    let mut replies = vec![Reply::card(card(product, false))];
    if product.variants.iter().all(|v| !in_stock(v)) {
        replies.extend(Reply::text_with_choices(
            "This one is sold out for now. Anything else?",
            menu(false),
        ));
    }
    Ok(Outcome {
        commands: vec![Command::Viewed { product: product.id }],
        replies,
        ..Outcome::default()
    })
}

/// A page of products as a carousel.
fn carousel(products: &[Product], page: usize, more: impl Fn(usize) -> Payload) -> Result<Reply, EmptyPage> {
    let cards: Vec<Card> = products.iter().map(|p| card(p, true)).collect();
    Reply::carousel(&cards, page, |next| {
        Card::new("More products")
            .subtitle("See the next page")
            .button(Action::postback("More", &payload::encode(&more(next))))
    })
}

fn browse(shop: &mut dyn Shop, page: u16) -> Result<Outcome> {
    let products = shop.browse(BROWSE_LIMIT)?;
    if products.is_empty() {
        return Ok(Outcome::reply(Reply::text_with_choices(
            "Our catalog is empty for now. Would you like to talk to a person?",
            vec![Choice::new("Talk to a person", &payload::encode(&Payload::Human))],
        )));
    }
    let page = usize::from(page);
    match carousel(&products, page, |next| Payload::Shop {
        page: u16::try_from(next).unwrap_or(u16::MAX),
    }) {
        Ok(message) => Ok(Outcome::reply(vec![message])),
        // A page past the end (an old "More" button): start again.
        Err(_) if page > 0 => browse(shop, 0),
        // Page 0 of a list that is not empty always has items.
        Err(_) => Ok(Outcome::default()),
    }
}

fn tap(turn: &Turn<'_>, p: Payload, shop: &mut dyn Shop) -> Result<Outcome> {
    match p {
        Payload::GetStarted => {
            let text = format!(
                "{} Welcome to {}. What would you like to do?",
                hello(turn),
                turn.merchant_name
            );
            Ok(Outcome::reply(with_menu(turn, &text)))
        }
        Payload::Shop { page } => browse(shop, page),
        Payload::Product { product } => match shop.product(product)? {
            Some(product) => product_card(&product),
            None => stale(turn),
        },
        Payload::ChooseOption { product, page } => match shop.product(product)? {
            Some(product) => choose_option(turn, &product, page),
            None => stale(turn),
        },
        Payload::Add { variant } => match shop.variant(variant)? {
            Some((product, variant)) => add(turn, &product, &variant),
            None => stale(turn),
        },
        Payload::Cart => Ok(Outcome::reply(cart_replies(turn.cart, turn.at)?)),
        Payload::SetQuantity { line, quantity } => change_line(turn, line, Some(u32::from(quantity))),
        Payload::Remove { line } => change_line(turn, line, None),
        Payload::Checkout { cart } => checkout(turn, cart),
        Payload::AcceptOffer { offer, cart } => accept_offer(turn, offer, cart, shop),
        Payload::DeclineOffer { offer, cart } => match turn.cart {
            Some(c) if c.id == cart && c.offers_seen.contains(&offer) => Ok(Outcome {
                commands: vec![Command::DeclineOffer { offer }],
                replies: Reply::text("No problem."),
                then_show_stay: c.lines.iter().any(|l| l.booking_id.is_some()),
                ..Outcome::default()
            }),
            _ => stale(turn),
        },
        Payload::Rooms { page } => stays::rooms(turn, shop, page),
        Payload::Room { bookable } => match shop.room(bookable)? {
            Some(room) => stays::room(turn, &room, shop),
            None => stale(turn),
        },
        Payload::Arrival { bookable, arrival } => match shop.room(bookable)? {
            Some(room) => stays::ask_nights(turn, &room, arrival),
            None => stale(turn),
        },
        Payload::Nights {
            bookable,
            arrival,
            nights,
        } => match shop.room(bookable)? {
            Some(room) => stays::ask_guests(turn, &room, arrival, nights),
            None => stale(turn),
        },
        Payload::Guests {
            bookable,
            arrival,
            nights,
            guests,
        } => match shop.room(bookable)? {
            Some(room) => stays::hold(turn, &room, arrival, nights, guests, shop),
            None => stale(turn),
        },
        Payload::Upgrade { offer, booking } => stays::take_offer(turn, offer, booking, true, shop),
        Payload::AddOn { offer, booking } => stays::take_offer(turn, offer, booking, false, shop),
        Payload::Search { query, page } => search(
            turn,
            &crate::catalog::search::query_words(&query),
            &query,
            page,
            shop,
        ),
        Payload::Human => Ok(hand_over()),
        Payload::Help => Ok(Outcome::reply(help(turn))),
    }
}

fn accept_offer(turn: &Turn<'_>, offer: Uuid, cart_id: Uuid, shop: &mut dyn Shop) -> Result<Outcome> {
    let Some(cart) = turn
        .cart
        .filter(|c| c.id == cart_id && c.offers_seen.contains(&offer))
    else {
        return stale(turn);
    };
    if cart.lines.iter().any(|l| l.offer_id == Some(offer)) {
        // Tapped twice: it is in the cart already.
        return Ok(Outcome::reply(cart_replies(Some(cart), turn.at)?));
    }
    let Some(view) = shop.offer(offer)? else {
        return stale(turn);
    };
    if !in_stock(&view.variant) {
        return Ok(Outcome::reply(out_of_stock(&view.product, &view.variant, 0)));
    }
    Ok(Outcome {
        commands: vec![Command::AcceptOffer { offer }],
        replies: Reply::text(&format!(
            "Added {} for {}.",
            line_name(&view.product.fields.title, &view.variant.name),
            view.price
        )),
        then_show_cart: true,
        ..Outcome::default()
    })
}

/// The first offer to show after an add: not yet seen for this cart, its variant in stock and not in
/// the cart already.
pub fn pick_offer<'o>(cart: &Cart, offers: &'o [OfferView]) -> Option<&'o OfferView> {
    offers.iter().find(|o| {
        !cart.offers_seen.contains(&o.id) && in_stock(&o.variant) && cart.line_of(o.variant.id).is_none()
    })
}

/// An offer: the merchant's text, the item, its price (and the usual one), Yes or No.
pub fn offer_replies(cart: &Cart, offer: &OfferView) -> Result<Vec<Reply>> {
    let name = line_name(&offer.product.fields.title, &offer.variant.name);
    let price = if offer.price == offer.variant.price {
        format!("{name} for {}.", offer.price)
    } else {
        format!("{name} for {} instead of {}.", offer.price, offer.variant.price)
    };
    let text = format!("{} {price}", offer.text.trim());
    Ok(vec![Reply::buttons(
        &text,
        vec![
            Action::postback(
                "Yes, add it",
                &payload::encode(&Payload::AcceptOffer {
                    offer: offer.id,
                    cart: cart.id,
                }),
            ),
            Action::postback(
                "No thanks",
                &payload::encode(&Payload::DeclineOffer {
                    offer: offer.id,
                    cart: cart.id,
                }),
            ),
        ],
    )])
}

fn apply_code(turn: &Turn<'_>, word: &str, shop: &mut dyn Shop) -> Result<Option<Outcome>> {
    let Some(discount) = shop.discount(word)? else {
        return Ok(None);
    };
    let Some(cart) = turn.cart.filter(|c| !c.lines.is_empty()) else {
        return Ok(Some(Outcome::reply(Reply::text_with_choices(
            &format!(
                "Code {}: add something to your cart first, then type it again.",
                discount.code
            ),
            vec![Choice::new("Shop", &payload::encode(&Payload::Shop { page: 0 }))],
        ))));
    };
    let subtotal = cart.subtotal()?;
    Ok(Some(match discount.check(turn.at, subtotal) {
        Ok(()) => Outcome {
            commands: vec![Command::ApplyCode {
                discount: discount.id,
            }],
            replies: Reply::text(&format!("Code {} applied.", discount.code)),
            then_show_cart: true,
            ..Outcome::default()
        },
        Err(refusal) => Outcome::reply(with_menu(turn, &format!("Code {}: {refusal}", discount.code))),
    }))
}

fn help(turn: &Turn<'_>) -> Vec<Reply> {
    with_menu(
        turn,
        "You can browse our products, type what you are looking for (\"wool socks\"), see your cart \
         (\"cart\"), or talk to a person (\"human\").",
    )
}

/// What the shopper is told when the thread goes to a person.
pub const HANDED_OVER: &str = "Sure: a person from our team will answer you here shortly.";

fn hand_over() -> Outcome {
    Outcome {
        commands: vec![Command::HandToAgent],
        replies: Reply::text(HANDED_OVER),
        ..Outcome::default()
    }
}

/// An old, deleted or foreign button: a friendly word and the menu, never an error.
fn stale(turn: &Turn<'_>) -> Result<Outcome> {
    Ok(Outcome::reply(with_menu(
        turn,
        "Sorry, that item or button is no longer available. What would you like to do?",
    )))
}

fn choose_option(turn: &Turn<'_>, product: &Product, page: u16) -> Result<Outcome> {
    let available: Vec<&Variant> = product.variants.iter().filter(|v| in_stock(v)).collect();
    if available.is_empty() {
        return Ok(Outcome::reply(with_menu(
            turn,
            &format!("{} is sold out for now. Anything else?", product.fields.title),
        )));
    }
    let replies = reply::paginate_choices(
        &available,
        usize::from(page),
        |v| Choice::new(&v.name, &payload::encode(&Payload::Add { variant: v.id })),
        |next| {
            Choice::new(
                "More",
                &payload::encode(&Payload::ChooseOption {
                    product: product.id,
                    page: u16::try_from(next).unwrap_or(u16::MAX),
                }),
            )
        },
    );
    match replies {
        Ok(replies) => Ok(Outcome::reply(Reply::text_with_choices(
            &format!("Which {} of {}?", option_word(product), product.fields.title),
            replies,
        ))),
        Err(_) if page > 0 => choose_option(turn, product, 0),
        Err(_) => Ok(Outcome::default()),
    }
}

fn add(turn: &Turn<'_>, product: &Product, variant: &Variant) -> Result<Outcome> {
    let already = turn
        .cart
        .and_then(|c| c.line_of(variant.id))
        .map_or(0, |l| l.quantity);
    let stock = u32::try_from(variant.stock.max(0)).unwrap_or(u32::MAX);
    if already >= stock.min(crate::carts::MAX_QUANTITY) {
        return Ok(Outcome::reply(out_of_stock(
            product,
            variant,
            stock.saturating_sub(already),
        )));
    }
    Ok(Outcome {
        commands: vec![Command::Add {
            variant: variant.id,
            quantity: 1,
        }],
        replies: Reply::text(&format!(
            "Added {} to your cart.",
            line_name(&product.fields.title, &variant.name)
        )),
        then_show_cart: true,
        then_offer_for: Some(product.id),
        ..Outcome::default()
    })
}

fn line_name(title: &str, variant_name: &str) -> String {
    if variant_name == title {
        title.to_owned()
    } else {
        format!("{title} ({variant_name})")
    }
}

/// The reply when a variant cannot be added (the engine's check, or the caller's under a race).
pub fn out_of_stock(product: &Product, variant: &Variant, available: u32) -> Vec<Reply> {
    let name = line_name(&product.fields.title, &variant.name);
    let text = if available == 0 {
        format!("Sorry, {name} is sold out.")
    } else {
        format!("Sorry, only {available} more of {name} can be added.")
    };
    let mut replies = vec![Choice::new("My cart", &payload::encode(&Payload::Cart))];
    if product.variants.iter().any(|v| v.id != variant.id && in_stock(v)) {
        replies.insert(
            0,
            Choice::new(
                &format!("Other {}s", option_word(product)),
                &payload::encode(&Payload::ChooseOption {
                    product: product.id,
                    page: 0,
                }),
            ),
        );
    }
    Reply::text_with_choices(&text, replies)
}

fn change_line(turn: &Turn<'_>, line: Uuid, quantity: Option<u32>) -> Result<Outcome> {
    let Some(found) = turn.cart.and_then(|c| c.lines.iter().find(|l| l.id == line)) else {
        return Ok(Outcome::reply(cart_replies(turn.cart, turn.at)?));
    };
    // A stay is one line of one unit: it is removed (and its nights given back), never multiplied.
    let quantity = match (found.booking_id, quantity) {
        (Some(_), Some(q)) if q > 0 => return Ok(Outcome::reply(cart_replies(turn.cart, turn.at)?)),
        (_, q) => q.unwrap_or(0),
    };
    Ok(Outcome {
        commands: vec![Command::SetQuantity { line, quantity }],
        replies: Vec::new(),
        then_show_cart: true,
        ..Outcome::default()
    })
}

fn checkout(turn: &Turn<'_>, cart_id: Uuid) -> Result<Outcome> {
    match turn.cart {
        Some(cart) if cart.id == cart_id && !cart.lines.is_empty() => Ok(Outcome {
            commands: vec![Command::Checkout { cart: cart.id }],
            ..Outcome::default()
        }),
        _ => {
            let mut replies = Reply::text("Your cart has changed since; here it is now:");
            replies.extend(cart_replies(turn.cart, turn.at)?);
            Ok(Outcome::reply(replies))
        }
    }
}

/// The cart: a card per line (add one, remove one, remove), then the total with Checkout and Keep
/// shopping.
pub fn cart_replies(cart: Option<&Cart>, at: chrono::NaiveDateTime) -> Result<Vec<Reply>> {
    let Some(cart) = cart.filter(|c| !c.lines.is_empty()) else {
        return Ok(Reply::text_with_choices(
            "Your cart is empty.",
            vec![Choice::new("Shop", &payload::encode(&Payload::Shop { page: 0 }))],
        ));
    };
    let mut cards = Vec::with_capacity(cart.lines.len());
    for line in &cart.lines {
        let total = line.total()?;
        let mut card = Card::new(&line.title).subtitle(&format!(
            "{} · {} × {} = {}",
            line.variant_name, line.quantity, line.unit_price, total
        ));
        if let Some(image) = &line.image_url {
            card = card.image(image);
        }
        let quantity = u16::try_from(line.quantity).unwrap_or(u16::MAX);
        if line.booking_id.is_some() {
            card = card.button(Action::postback(
                "Remove",
                &payload::encode(&Payload::Remove { line: line.id }),
            ));
            cards.push(card);
            continue;
        }
        card = card
            .button(Action::postback(
                "Add one",
                &payload::encode(&Payload::SetQuantity {
                    line: line.id,
                    quantity: quantity.saturating_add(1),
                }),
            ))
            .button(Action::postback(
                "Remove one",
                &payload::encode(&Payload::SetQuantity {
                    line: line.id,
                    quantity: quantity.saturating_sub(1),
                }),
            ))
            .button(Action::postback(
                "Remove",
                &payload::encode(&Payload::Remove { line: line.id }),
            ));
        cards.push(card);
    }
    // Past ten lines, the carousel shows nine and says how many more the cart holds.
    let hidden = cards.len().saturating_sub(reply::MAX_CARDS - 1);
    let shown = Reply::carousel(&cards, 0, |_| {
        Card::new("More items").subtitle(&format!("{hidden} more in your cart"))
    });
    let mut replies: Vec<Reply> = shown.into_iter().collect();
    let totals = cart.totals(at)?;
    let summary = match &totals.discount {
        Some((code, off)) => format!(
            "Your cart: {} item(s), {} with code {code} (-{off}): total {}.",
            cart.units(),
            totals.subtotal,
            totals.total
        ),
        None => format!("Your cart: {} item(s), total {}.", cart.units(), totals.total),
    };
    replies.push(Reply::buttons(
        &summary,
        vec![
            Action::postback("Checkout", &payload::encode(&Payload::Checkout { cart: cart.id })),
            Action::postback("Keep shopping", &payload::encode(&Payload::Shop { page: 0 })),
        ],
    ));
    Ok(replies)
}

fn typed(turn: &Turn<'_>, typed: &str, shop: &mut dyn Shop) -> Result<Outcome> {
    // The thread asked for an arrival date: a date answers it, read in the property's timezone.
    if let Some(room) = turn.stay_room.map(|id| shop.room(id)).transpose()?.flatten() {
        let today = crate::bookings::stay::local_today(room.spec.timezone, turn.at);
        if let Some(arrival) = crate::bookings::dates::parse_date(typed, today) {
            return stays::ask_nights(turn, &room, arrival);
        }
    }
    let intent = text::parse(typed);
    let words = match &intent {
        TextIntent::Word(w) => crate::catalog::search::query_words(w),
        TextIntent::Search(words) => words.clone(),
        _ => Vec::new(),
    };
    if turn.has_rooms && stays::asks_for_a_stay(&words) {
        return stays::rooms(turn, shop, 0);
    }
    match intent {
        TextIntent::Greeting => {
            let text = format!("{} How can I help?", hello(turn));
            Ok(Outcome::reply(with_menu(turn, &text)))
        }
        TextIntent::Cart => Ok(Outcome::reply(cart_replies(turn.cart, turn.at)?)),
        TextIntent::Checkout => match turn.cart {
            Some(cart) if !cart.lines.is_empty() => checkout(turn, cart.id),
            _ => Ok(Outcome::reply(cart_replies(None, turn.at)?)),
        },
        TextIntent::Help => Ok(Outcome::reply(help(turn))),
        TextIntent::Human => Ok(hand_over()),
        TextIntent::Shop => browse(shop, 0),
        TextIntent::Word(word) => match apply_code(turn, &word, shop)? {
            Some(outcome) => Ok(outcome),
            None => {
                let words = crate::catalog::search::query_words(&word);
                search(turn, &words, &word, 0, shop)
            }
        },
        TextIntent::Search(words) => search(turn, &words, typed, 0, shop),
        TextIntent::Empty => Ok(Outcome::reply(help(turn))),
    }
}

fn search(turn: &Turn<'_>, words: &[String], query: &str, page: u16, shop: &mut dyn Shop) -> Result<Outcome> {
    let found = if words.is_empty() {
        Vec::new()
    } else {
        shop.search(words, BROWSE_LIMIT)?
    };
    match found.as_slice() {
        [] => Ok(Outcome {
            missed: true,
            ..Outcome::reply(with_menu(
                turn,
                &format!(
                    "I found nothing for “{}”. Try other words, or browse the shop:",
                    query.trim()
                ),
            ))
        }),
        [only] => product_card(only),
        _ => {
            // The payload carries the search words, which find the same products again.
            let query = words.join(" ");
            let page_index = usize::from(page);
            match carousel(&found, page_index, |next| Payload::Search {
                query: query.clone(),
                page: u16::try_from(next).unwrap_or(u16::MAX),
            }) {
                Ok(message) => Ok(Outcome::reply(vec![message])),
                Err(_) if page > 0 => search(turn, words, &query, 0, shop),
                Err(_) => Ok(Outcome::default()),
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::carts::CartLine;
    use crate::catalog::domain::ProductFields;
    use crate::money::{Currency, Money};

    fn eur(minor: i64) -> Money {
        Money::from_minor(minor, Currency::parse("EUR").unwrap())
    }

    fn variant(product: Uuid, name: &str, price: i64, stock: i64) -> Variant {
        let t = crate::db::now();
        Variant {
            id: Uuid::now_v7(),
            product_id: product,
            sku: format!("SKU-{name}"),
            name: name.to_owned(),
            options: BTreeMap::from([("size".to_owned(), name.to_owned())]),
            price: eur(price),
            stock,
            created_at: t,
            updated_at: t,
        }
    }

    fn product(retailer_id: &str, title: &str, sizes: &[(&str, i64, i64)], featured: bool) -> Product {
        let id = Uuid::now_v7();
        let t = crate::db::now();
        Product {
            id,
            fields: ProductFields {
                retailer_id: retailer_id.into(),
                title: title.to_owned(),
                description: None,
                image_url: Some(format!("https://example.com/{retailer_id}.jpg")),
                url: None,
                brand: Some("Comfy".into()),
                featured,
                labels: crate::kernel::Labels::default(),
            },
            variants: sizes.iter().map(|(n, p, s)| variant(id, n, *p, *s)).collect(),
            created_at: t,
            updated_at: t,
        }
    }

    fn shop() -> MemoryShop {
        MemoryShop::new(vec![
            product(
                "SLIP-01",
                "Comfy slippers",
                &[("38", 4990, 3), ("42", 4990, 5), ("45", 4990, 0)],
                true,
            ),
            product("SOCK-WOOL", "Wool socks", &[("One size", 900, 20)], false),
            product("BOOT-01", "Winter boots", &[("40", 8900, 0)], false),
        ])
    }

    fn turn<'a>(input: Input<'a>, cart: Option<&'a Cart>) -> Turn<'a> {
        Turn {
            at: crate::db::now(),
            merchant_name: "Comfy Shoes",
            first_name: Some("Anna"),
            cart,
            stays: &[],
            stay_room: None,
            has_rooms: false,
            missed_before: false,
            input,
        }
    }

    fn json(m: &Reply) -> serde_json::Value {
        m.to_json()
    }

    fn ad(product_id: Option<&str>, reference: Option<&str>) -> Referral {
        Referral {
            source: "ADS".into(),
            kind: "OPEN_THREAD".into(),
            ref_: reference.map(str::to_owned),
            ad_id: Some("AD-1".into()),
            ad_title: Some("Slippers sale".into()),
            post_id: None,
            product_id: product_id.map(str::to_owned),
            ads_context_data: None,
            ..Referral::default()
        }
    }

    #[test]
    fn an_ad_for_a_catalog_product_opens_on_its_card_and_records_the_view() {
        let mut shop = shop();
        let slippers = shop.products[0].id;
        let referral = ad(Some("SLIP-01"), None);

        let out = respond(
            &turn(
                Input::Tap {
                    payload: GET_STARTED,
                    referral: Some(&referral),
                },
                None,
            ),
            &mut shop,
        )
        .unwrap();

        assert_eq!(out.commands, [Command::Viewed { product: slippers }]);
        assert_eq!(
            out.replies[0].text_of(),
            Some("Hi Anna! Thanks for your interest in “Slippers sale”. Here it is:")
        );
        let card = json(&out.replies[1]);
        let element = &card["cards"][0];
        assert_eq!(element["title"], "Comfy slippers");
        assert_eq!(element["subtitle"], "49.90 EUR");
        assert_eq!(element["buttons"][0]["title"], "Choose size");
    }

    #[test]
    fn a_ref_naming_a_product_opens_on_it_too() {
        let mut shop = shop();
        let referral = Referral {
            source: "SHORTLINK".into(),
            ad_id: None,
            ad_title: None,
            ..ad(None, Some("c=xmas24_p=SOCK-WOOL"))
        };

        let out = respond(&turn(Input::Referral(&referral), None), &mut shop).unwrap();

        let card = json(&out.replies[1]);
        assert_eq!(card["cards"][0]["title"], "Wool socks");
        assert_eq!(card["cards"][0]["buttons"][0]["title"], "Add to cart");
    }

    #[test]
    fn an_ad_for_an_unknown_product_falls_back_to_the_featured_products() {
        let mut shop = shop();
        let referral = ad(Some("GONE-99"), None);

        let out = respond(&turn(Input::Referral(&referral), None), &mut shop).unwrap();

        assert_eq!(
            out.replies[0].text_of(),
            Some("Hi Anna! Welcome to Comfy Shoes. Here is what we have:")
        );
        let carousel = json(&out.replies[1]);
        let titles: Vec<&str> = carousel["cards"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["title"].as_str().unwrap())
            .collect();
        assert_eq!(titles[0], "Comfy slippers", "featured first");
        assert_eq!(titles.len(), 3);
    }

    #[test]
    fn get_started_without_a_referral_greets_with_shop_cart_and_person() {
        let out = respond(
            &turn(
                Input::Tap {
                    payload: GET_STARTED,
                    referral: None,
                },
                None,
            ),
            &mut shop(),
        )
        .unwrap();

        let message = json(&out.replies[0]);
        let titles: Vec<&str> = message["quick_replies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|q| q["title"].as_str().unwrap())
            .collect();
        assert_eq!(titles, ["Shop", "My cart", "Talk to a person"]);
    }

    #[test]
    fn choosing_a_size_offers_only_the_sizes_in_stock() {
        let mut shop = shop();
        let slippers = shop.products[0].id;
        let tap = payload::encode(&Payload::ChooseOption {
            product: slippers,
            page: 0,
        });

        let out = respond(
            &turn(
                Input::Tap {
                    payload: &tap,
                    referral: None,
                },
                None,
            ),
            &mut shop,
        )
        .unwrap();

        let message = json(&out.replies[0]);
        assert_eq!(message["text"], "Which size of Comfy slippers?");
        let sizes: Vec<&str> = message["quick_replies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|q| q["title"].as_str().unwrap())
            .collect();
        assert_eq!(sizes, ["38", "42"]);
    }

    #[test]
    fn adding_a_size_asks_the_caller_to_add_it_and_show_the_cart() {
        let mut shop = shop();
        let size42 = shop.products[0].variants[1].id;
        let tap = payload::encode(&Payload::Add { variant: size42 });

        let out = respond(
            &turn(
                Input::Tap {
                    payload: &tap,
                    referral: None,
                },
                None,
            ),
            &mut shop,
        )
        .unwrap();

        assert_eq!(
            out.commands,
            [Command::Add {
                variant: size42,
                quantity: 1
            }]
        );
        assert!(out.then_show_cart);
        assert_eq!(
            out.replies[0].text_of(),
            Some("Added Comfy slippers (42) to your cart.")
        );
    }

    #[test]
    fn adding_beyond_the_stock_is_refused_with_other_sizes_offered() {
        let mut shop = shop();
        let product = shop.products[0].clone();
        let size38 = product.variants[0].clone();
        let cart = Cart {
            id: Uuid::now_v7(),
            thread_id: crate::kernel::ThreadId::new(),
            currency: Currency::parse("EUR").unwrap(),
            lines: vec![CartLine {
                id: Uuid::now_v7(),
                variant_id: Some(size38.id),
                product_id: Some(product.id),
                title: product.fields.title.clone(),
                variant_name: "38".into(),
                sku: size38.sku.clone(),
                image_url: None,
                unit_price: size38.price,
                quantity: 3,
                offer_id: None,
                booking_id: None,
            }],
            offers_seen: Vec::new(),
            discount: None,
        };
        let tap = payload::encode(&Payload::Add { variant: size38.id });

        let out = respond(
            &turn(
                Input::Tap {
                    payload: &tap,
                    referral: None,
                },
                Some(&cart),
            ),
            &mut shop,
        )
        .unwrap();

        assert!(out.commands.is_empty());
        let message = json(&out.replies[0]);
        assert_eq!(message["text"], "Sorry, Comfy slippers (38) is sold out.");
        assert_eq!(message["quick_replies"][0]["title"], "Other sizes");
    }

    #[test]
    fn a_stale_or_foreign_payload_gets_a_friendly_reply_and_no_effect() {
        let mut shop = shop();
        for payload in [
            payload::encode(&Payload::Add {
                variant: Uuid::now_v7(),
            }),
            payload::encode(&Payload::Product {
                product: Uuid::now_v7(),
            }),
            "SOMEONE_ELSES_PAYLOAD".to_owned(),
            "tc9:x".to_owned(),
        ] {
            let out = respond(
                &turn(
                    Input::Tap {
                        payload: &payload,
                        referral: None,
                    },
                    None,
                ),
                &mut shop,
            )
            .unwrap();

            assert!(out.commands.is_empty(), "{payload}");
            assert_eq!(
                out.replies[0].text_of(),
                Some("Sorry, that item or button is no longer available. What would you like to do?")
            );
        }
    }

    #[test]
    fn typing_cart_or_panier_shows_the_cart_and_human_hands_over() {
        let mut shop = shop();
        for typed in ["cart", "Mon PANIER"] {
            let out = respond(&turn(Input::Text(typed), None), &mut shop).unwrap();
            assert_eq!(out.replies[0].text_of(), Some("Your cart is empty."), "{typed}");
        }
        let out = respond(&turn(Input::Text("I want to talk to a human"), None), &mut shop).unwrap();
        assert_eq!(out.commands, [Command::HandToAgent]);
    }

    #[test]
    fn when_the_bot_cannot_help_twice_in_a_row_a_person_takes_over() {
        let mut shop = shop();
        let first = respond(&turn(Input::Text("umbrella"), None), &mut shop).unwrap();
        let again = Turn {
            missed_before: true,
            ..turn(Input::Text("parasol"), None)
        };
        let second = respond(&again, &mut shop).unwrap();
        let picture = Turn {
            missed_before: true,
            ..turn(Input::Attachment, None)
        };
        let found_after_a_miss = Turn {
            missed_before: true,
            ..turn(Input::Text("wool socks"), None)
        };

        assert!(first.missed && first.commands.is_empty());
        assert_eq!(second.commands, [Command::HandToAgent]);
        assert_eq!(second.replies[0].text_of(), Some(MISSED_TWICE));
        assert!(!second.missed);
        assert_eq!(
            respond(&picture, &mut shop).unwrap().commands,
            [Command::HandToAgent]
        );
        let found = respond(&found_after_a_miss, &mut shop).unwrap();
        assert!(
            !found.missed && !found.commands.contains(&Command::HandToAgent),
            "a hit in between resets it"
        );
    }

    #[test]
    fn typed_words_search_the_catalog_with_accents_folded() {
        let mut shop = shop();

        let one = respond(&turn(Input::Text("wool socks"), None), &mut shop).unwrap();
        let none = respond(&turn(Input::Text("umbrella"), None), &mut shop).unwrap();

        assert_eq!(json(&one.replies[0])["cards"][0]["title"], "Wool socks");
        assert!(
            none.replies[0]
                .text_of()
                .unwrap()
                .starts_with("I found nothing for “umbrella”")
        );
    }

    #[test]
    fn the_cart_shows_each_line_and_the_total_with_checkout() {
        let product = shop().products[1].clone();
        let socks = product.variants[0].clone();
        let cart = Cart {
            id: Uuid::now_v7(),
            thread_id: crate::kernel::ThreadId::new(),
            currency: Currency::parse("EUR").unwrap(),
            lines: vec![CartLine {
                id: Uuid::now_v7(),
                variant_id: Some(socks.id),
                product_id: Some(product.id),
                title: "Wool socks".into(),
                variant_name: "One size".into(),
                sku: socks.sku,
                image_url: None,
                unit_price: socks.price,
                quantity: 2,
                offer_id: None,
                booking_id: None,
            }],
            offers_seen: Vec::new(),
            discount: None,
        };

        let replies = cart_replies(Some(&cart), crate::db::now()).unwrap();

        let lines = json(&replies[0]);
        assert_eq!(
            lines["cards"][0]["subtitle"],
            "One size · 2 × 9.00 EUR = 18.00 EUR"
        );
        let total = json(&replies[1]);
        assert_eq!(total["text"], "Your cart: 2 item(s), total 18.00 EUR.");
        assert_eq!(total["buttons"][0]["title"], "Checkout");
    }

    fn cart_with(product: &Product, variant: &Variant, quantity: u32) -> Cart {
        Cart {
            id: Uuid::now_v7(),
            thread_id: crate::kernel::ThreadId::new(),
            currency: Currency::parse("EUR").unwrap(),
            lines: vec![CartLine {
                id: Uuid::now_v7(),
                variant_id: Some(variant.id),
                product_id: Some(product.id),
                title: product.fields.title.clone(),
                variant_name: variant.name.clone(),
                sku: variant.sku.clone(),
                image_url: None,
                unit_price: variant.price,
                quantity,
                offer_id: None,
                booking_id: None,
            }],
            offers_seen: Vec::new(),
            discount: None,
        }
    }

    fn tap<'a>(payload: &'a str, cart: Option<&'a Cart>) -> Turn<'a> {
        turn(
            Input::Tap {
                payload,
                referral: None,
            },
            cart,
        )
    }

    #[test]
    fn quantity_buttons_change_a_line_of_the_cart_and_show_it_again() {
        let mut shop = shop();
        let (product, variant) = (shop.products[0].clone(), shop.products[0].variants[1].clone());
        let cart = cart_with(&product, &variant, 2);
        let line = cart.lines[0].id;
        let more = payload::encode(&Payload::SetQuantity { line, quantity: 3 });
        let remove = payload::encode(&Payload::Remove { line });

        let more = respond(&tap(&more, Some(&cart)), &mut shop).unwrap();
        let remove = respond(&tap(&remove, Some(&cart)), &mut shop).unwrap();

        assert_eq!(more.commands, [Command::SetQuantity { line, quantity: 3 }]);
        assert!(more.then_show_cart);
        assert_eq!(remove.commands, [Command::SetQuantity { line, quantity: 0 }]);
    }

    #[test]
    fn a_quantity_button_of_an_old_cart_only_shows_the_current_cart() {
        let mut shop = shop();
        let stale = payload::encode(&Payload::SetQuantity {
            line: Uuid::now_v7(),
            quantity: 5,
        });

        let out = respond(&tap(&stale, None), &mut shop).unwrap();

        assert!(out.commands.is_empty());
        assert_eq!(out.replies[0].text_of(), Some("Your cart is empty."));
    }

    #[test]
    fn checkout_of_another_cart_shows_the_current_one_instead() {
        let mut shop = shop();
        let (product, variant) = (shop.products[1].clone(), shop.products[1].variants[0].clone());
        let cart = cart_with(&product, &variant, 1);
        let old = payload::encode(&Payload::Checkout { cart: Uuid::now_v7() });
        let current = payload::encode(&Payload::Checkout { cart: cart.id });

        let old = respond(&tap(&old, Some(&cart)), &mut shop).unwrap();
        let current = respond(&tap(&current, Some(&cart)), &mut shop).unwrap();

        assert!(old.commands.is_empty());
        assert_eq!(
            old.replies[0].text_of(),
            Some("Your cart has changed since; here it is now:")
        );
        assert_eq!(current.commands, [Command::Checkout { cart: cart.id }]);
    }

    fn offer_shop() -> (MemoryShop, OfferView) {
        let mut shop = shop();
        let socks = shop.products[1].clone();
        let offer = OfferView {
            id: Uuid::now_v7(),
            text: "Add wool socks?".into(),
            product: socks.clone(),
            variant: socks.variants[0].clone(),
            price: eur(720),
        };
        shop.offers.push((shop.products[0].id, offer.clone()));
        (shop, offer)
    }

    #[test]
    fn an_offer_is_picked_once_per_cart_and_never_for_what_is_in_it() {
        let (shop, offer) = offer_shop();
        let slippers = shop.products[0].clone();
        let mut cart = cart_with(&slippers, &slippers.variants[1], 1);

        assert_eq!(
            pick_offer(&cart, std::slice::from_ref(&offer)).map(|o| o.id),
            Some(offer.id)
        );
        let replies = offer_replies(&cart, &offer).unwrap();
        assert_eq!(
            json(&replies[0])["text"],
            "Add wool socks? Wool socks (One size) for 7.20 EUR instead of 9.00 EUR."
        );
        cart.offers_seen.push(offer.id);
        assert!(pick_offer(&cart, std::slice::from_ref(&offer)).is_none());
    }

    #[test]
    fn taking_an_offer_adds_it_at_its_price_and_declining_is_remembered() {
        let (mut shop, offer) = offer_shop();
        let slippers = shop.products[0].clone();
        let mut cart = cart_with(&slippers, &slippers.variants[1], 1);
        cart.offers_seen.push(offer.id);
        let take = payload::encode(&Payload::AcceptOffer {
            offer: offer.id,
            cart: cart.id,
        });
        let skip = payload::encode(&Payload::DeclineOffer {
            offer: offer.id,
            cart: cart.id,
        });
        let foreign = payload::encode(&Payload::AcceptOffer {
            offer: offer.id,
            cart: Uuid::now_v7(),
        });

        let taken = respond(&tap(&take, Some(&cart)), &mut shop).unwrap();
        let skipped = respond(&tap(&skip, Some(&cart)), &mut shop).unwrap();
        let stale = respond(&tap(&foreign, Some(&cart)), &mut shop).unwrap();

        assert_eq!(taken.commands, [Command::AcceptOffer { offer: offer.id }]);
        assert_eq!(
            taken.replies[0].text_of(),
            Some("Added Wool socks (One size) for 7.20 EUR.")
        );
        assert_eq!(skipped.commands, [Command::DeclineOffer { offer: offer.id }]);
        assert!(stale.commands.is_empty());
    }

    fn code(
        kind: crate::discounts::DiscountKind,
        min: Option<i64>,
        ends_in_days: Option<i64>,
    ) -> crate::discounts::Discount {
        let now = crate::db::now();
        crate::discounts::Discount {
            id: Uuid::now_v7(),
            code: "XMAS10".into(),
            kind,
            starts_at: None,
            ends_at: ends_in_days.map(|d| now + chrono::Duration::days(d)),
            min_subtotal: min.map(eur),
            max_redemptions: None,
            redemptions: 0,
            active: true,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn a_typed_code_applies_when_valid_and_says_why_when_not() {
        let mut shop = shop();
        let (product, variant) = (shop.products[1].clone(), shop.products[1].variants[0].clone());
        let cart = cart_with(&product, &variant, 2);
        let percent = crate::discounts::DiscountKind::Percent(rust_decimal::Decimal::TEN);

        shop.discounts = vec![code(percent, None, Some(3))];
        let applied = respond(&turn(Input::Text("xmas10"), Some(&cart)), &mut shop).unwrap();
        shop.discounts = vec![code(percent, None, Some(-1))];
        let expired = respond(&turn(Input::Text("XMAS10"), Some(&cart)), &mut shop).unwrap();
        shop.discounts = vec![code(percent, Some(5000), None)];
        let too_small = respond(&turn(Input::Text("XMAS10"), Some(&cart)), &mut shop).unwrap();
        let no_cart = respond(&turn(Input::Text("XMAS10"), None), &mut shop).unwrap();

        assert_eq!(applied.commands.len(), 1);
        assert!(matches!(applied.commands[0], Command::ApplyCode { .. }));
        assert_eq!(applied.replies[0].text_of(), Some("Code XMAS10 applied."));
        assert!(expired.commands.is_empty());
        assert!(expired.replies[0].text_of().unwrap().starts_with("Code XMAS10: "));
        assert!(too_small.replies[0].text_of().unwrap().contains("50.00 EUR"));
        assert!(
            no_cart.replies[0]
                .text_of()
                .unwrap()
                .contains("add something to your cart first")
        );
    }

    #[test]
    fn a_word_that_is_no_code_is_searched_instead() {
        let out = respond(&turn(Input::Text("Wool"), None), &mut shop()).unwrap();

        assert_eq!(json(&out.replies[0])["cards"][0]["title"], "Wool socks");
    }

    #[test]
    fn the_cart_total_shows_the_code_and_never_goes_below_zero() {
        let product = shop().products[1].clone();
        let mut cart = cart_with(&product, &product.variants[0], 1);
        cart.discount = Some(code(crate::discounts::DiscountKind::Fixed(eur(5000)), None, None));

        let replies = cart_replies(Some(&cart), crate::db::now()).unwrap();

        assert_eq!(
            json(&replies[1])["text"],
            "Your cart: 1 item(s), 9.00 EUR with code XMAS10 (-9.00 EUR): total 0.00 EUR."
        );
    }

    #[test]
    fn help_shop_pages_and_search_pages_answer_from_their_payloads() {
        let mut shop = MemoryShop::new(
            (0..25)
                .map(|i| {
                    product(
                        &format!("P-{i}"),
                        &format!("Slipper model {i}"),
                        &[("40", 1000, 1)],
                        false,
                    )
                })
                .collect(),
        );
        let help = payload::encode(&Payload::Help);
        let page2 = payload::encode(&Payload::Shop { page: 2 });
        let search2 = payload::encode(&Payload::Search {
            query: "slipper".into(),
            page: 1,
        });
        let beyond = payload::encode(&Payload::Shop { page: 40 });

        let help = respond(&tap(&help, None), &mut shop).unwrap();
        let page2 = respond(&tap(&page2, None), &mut shop).unwrap();
        let search2 = respond(&tap(&search2, None), &mut shop).unwrap();
        let beyond = respond(&tap(&beyond, None), &mut shop).unwrap();

        assert!(help.replies[0].text_of().unwrap().starts_with("You can browse"));
        let count = |o: &Outcome| json(&o.replies[0])["cards"].as_array().unwrap().len();
        assert_eq!(
            count(&page2),
            7,
            "25 products: 9 + more, 9 + more, then the last 7"
        );
        assert_eq!(count(&search2), 10, "page 1 of the results: 9 and a More card");
        assert_eq!(count(&beyond), 10, "an old More button past the end starts again");
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        /// Text as the catalog stores it: trimmed and never blank (it refuses anything else).
        fn catalog_text(max: usize) -> impl Strategy<Value = String> {
            proptest::string::string_regex(&format!("\\PC{{1,{max}}}"))
                .unwrap_or_else(|e| panic!("{e}"))
                .prop_map(|s| s.trim().to_owned())
                .prop_filter("the catalog refuses blank text", |s| !s.is_empty())
        }

        fn arbitrary_product() -> impl Strategy<Value = Product> {
            (
                "[A-Z]{1,4}-[0-9]{1,3}",
                catalog_text(200),
                proptest::collection::vec((catalog_text(80), 0i64..10_000_000, 0i64..3), 1..40),
                any::<bool>(),
            )
                .prop_map(|(retailer_id, title, variants, featured)| {
                    let sizes: Vec<(String, i64, i64)> = variants;
                    let refs: Vec<(&str, i64, i64)> =
                        sizes.iter().map(|(n, p, s)| (n.as_str(), *p, *s)).collect();
                    product(&retailer_id, &title, &refs, featured)
                })
        }

        /// Whether `reply` renders on every Meta channel, each Send API message within Meta's limits
        /// (Messenger's; Instagram's text is measured in bytes).
        fn within_limits(reply: &Reply) -> bool {
            use crate::channels::meta::render::render;
            use crate::kernel::Channel;
            [Channel::Messenger, Channel::Instagram]
                .into_iter()
                .all(|channel| {
                    let Ok(messages) = render(reply, channel) else {
                        return false;
                    };
                    messages.iter().all(|message| {
                        let v = serde_json::to_value(message).unwrap();
                        let text_ok = v["text"].as_str().is_none_or(|t| match channel {
                            Channel::Instagram => t.len() <= 1000,
                            _ => t.chars().count() <= 2000,
                        });
                        let quick = v["quick_replies"].as_array().map_or(0, Vec::len) <= 13
                            && v["quick_replies"].as_array().into_iter().flatten().all(|q| {
                                q["title"].as_str().is_some_and(|t| t.chars().count() <= 20)
                                    && q["payload"].as_str().is_some_and(|p| p.chars().count() <= 1000)
                            });
                        let payload = &v["attachment"]["payload"];
                        let elements = payload["elements"].as_array().map_or(0, Vec::len) <= 10
                            && payload["elements"].as_array().into_iter().flatten().all(|e| {
                                e["title"].as_str().is_some_and(|t| t.chars().count() <= 80)
                                    && e["subtitle"].as_str().is_none_or(|t| t.chars().count() <= 80)
                                    && e["buttons"].as_array().map_or(0, Vec::len) <= 3
                            });
                        let button_text = payload["text"].as_str().is_none_or(|t| t.chars().count() <= 640);
                        text_ok && quick && elements && button_text
                    })
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            #[test]
            fn any_catalog_renders_within_the_limits_of_every_meta_channel(products in proptest::collection::vec(arbitrary_product(), 1..30), page in 0u16..4) {
                let mut shop = MemoryShop::new(products);
                let first = shop.products[0].clone();
                let inputs = [
                    payload::encode(&Payload::Shop { page }),
                    payload::encode(&Payload::Product { product: first.id }),
                    payload::encode(&Payload::ChooseOption { product: first.id, page }),
                    payload::encode(&Payload::Add { variant: first.variants[0].id }),
                ];
                for input in &inputs {
                    let out = respond(&tap(input, None), &mut shop).unwrap();
                    prop_assert!(out.replies.iter().all(within_limits), "{input}");
                }
                let cart = cart_with(&first, &first.variants[0], 1);
                for message in cart_replies(Some(&cart), crate::db::now()).unwrap() {
                    prop_assert!(within_limits(&message));
                }
            }

            #[test]
            fn the_engine_answers_the_same_event_the_same_way(typed in "\\PC{0,60}") {
                let mut shop = shop();
                let once = respond(&turn(Input::Text(&typed), None), &mut shop).unwrap();
                let twice = respond(&turn(Input::Text(&typed), None), &mut shop).unwrap();
                prop_assert_eq!(once, twice);
            }

            #[test]
            fn cart_totals_are_never_negative(prices in proptest::collection::vec((0i64..1_000_000, 1u32..99), 1..20), off in 0i64..100_000_000) {
                let product = shop().products[1].clone();
                let mut cart = cart_with(&product, &product.variants[0], 1);
                cart.lines = prices.iter().map(|(p, q)| CartLine { unit_price: eur(*p), quantity: *q, id: Uuid::now_v7(), ..cart.lines[0].clone() }).collect();
                cart.discount = Some(code(crate::discounts::DiscountKind::Fixed(eur(off)), None, None));
                let totals = cart.totals(crate::db::now()).unwrap();
                prop_assert!(!totals.total.is_negative());
                prop_assert!(totals.discount.is_none_or(|(_, d)| d.minor() <= totals.subtotal.minor()));
            }
        }
    }
}
