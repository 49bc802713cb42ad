//! The stay flow: "Book a stay" (or an ad or ref naming a room) -> room types with from-prices ->
//! arrival date (quick replies or typed) -> nights -> guests -> a hold and the price night by night ->
//! an upgrade or add-on offer -> "Book and pay", which is the cart's checkout.
//!
//! Every step's payload carries what was chosen so far, so an old button still means what it said; the
//! one thing remembered in the thread is the room whose arrival date was asked ([`Command::AskDates`]),
//! so that a typed date answers it. The hold itself is the caller's ([`Command::Hold`]): the engine only
//! checks that the nights look free, and renders the alternatives when they are not, or when the
//! caller lost the last room to another shopper ([`unavailable`]).

use super::Result;
use chrono::{Datelike, Days, NaiveDate};
use uuid::Uuid;

use super::payload::{self, Payload};
use super::reply::{Action, Card, Choice, Reply};
use super::{Command, Outcome, Shop, Turn, stale, with_menu};
use crate::bookings::{Alternatives, Bookable, Booking, BookingStatus, StayDates, stay::local_today};
use crate::carts::Cart;
use crate::money::Money;

/// How many arrival dates the quick replies offer, from today.
const ARRIVAL_CHOICES: u64 = 10;
/// How many nights ahead a room's "from" price looks.
const FROM_PRICE_NIGHTS: u64 = 60;
/// The most quick replies of nights or guests (Meta allows 13).
const MAX_CHOICES: u32 = 12;

/// What an offer for a held stay proposes.
#[derive(Debug, Clone, PartialEq)]
pub enum StayOfferKind {
    /// A better room type for the same stay.
    Upgrade {
        /// The better room type.
        room: Bookable,
        /// Its price difference per night, when fixed; else the difference of the rates.
        night_delta: Option<Money>,
    },
    /// A catalog item for the stay.
    AddOn {
        /// Its product.
        product: crate::catalog::Product,
        /// Its variant.
        variant: crate::catalog::Variant,
        /// Its unit price through the offer.
        price: Money,
        /// One per night, else one per stay.
        per_night: bool,
    },
}

/// An upgrade or add-on offer ready to show for a held stay.
#[derive(Debug, Clone, PartialEq)]
pub struct StayOfferView {
    /// The offer.
    pub id: Uuid,
    /// The merchant's sentence.
    pub text: String,
    /// What it proposes.
    pub kind: StayOfferKind,
}

/// The `b=` part of a `ref` (see the README's `ref` convention), naming a room by id or name.
pub(super) fn ref_room(reference: &str) -> Option<&str> {
    reference
        .split('_')
        .find_map(|part| part.strip_prefix("b="))
        .filter(|id| !id.is_empty())
}

/// The merchant's active room named `wanted` (its id, or its name in any case; in a ref, `-` or `+`
/// stand for spaces).
pub(super) fn find_room(shop: &mut dyn Shop, wanted: &str) -> Result<Option<Bookable>> {
    let name = wanted.replace(['-', '+'], " ").to_lowercase();
    Ok(shop.rooms()?.into_iter().find(|r| {
        r.id.simple().to_string() == wanted
            || r.id.to_string() == wanted
            || r.spec.name.to_lowercase() == name
            || r.spec.name.to_lowercase().replace('-', " ") == name
    }))
}

/// Whether the shopper's words ask for a room: "book a stay", "une chambre", "réserver".
pub(super) fn asks_for_a_stay(words: &[String]) -> bool {
    const WORDS: &[&str] = &[
        "stay",
        "stays",
        "room",
        "rooms",
        "book",
        "booking",
        "hotel",
        "night",
        "nights",
        "sejour",
        "chambre",
        "chambres",
        "reserver",
        "reservation",
        "nuit",
        "nuits",
    ];
    !words.is_empty() && words.iter().any(|w| WORDS.contains(&w.as_str()))
}

fn today(turn: &Turn<'_>, room: &Bookable) -> NaiveDate {
    local_today(room.spec.timezone, turn.at)
}

/// "Thu 24 Dec".
fn day(date: NaiveDate) -> String {
    date.format("%a %-d %b").to_string()
}

/// "Thu 24 Dec → Sun 27 Dec 2026".
pub fn stay_dates(stay: StayDates) -> String {
    format!(
        "{} → {} {}",
        day(stay.arrival()),
        day(stay.departure()),
        stay.departure().year()
    )
}

/// What a stay's cart line says under the room's name.
pub fn stay_line_name(stay: StayDates, guests: u32) -> String {
    let nights = if stay.nights() == 1 { "night" } else { "nights" };
    let people = if guests == 1 { "guest" } else { "guests" };
    format!(
        "{} · {} {nights} · {guests} {people}",
        stay_dates(stay),
        stay.nights()
    )
}

/// The lowest nightly price of the next [`FROM_PRICE_NIGHTS`] nights.
fn from_price(turn: &Turn<'_>, room: &Bookable, shop: &mut dyn Shop) -> Result<Money> {
    let from = today(turn, room);
    let to = from + Days::new(FROM_PRICE_NIGHTS);
    Ok(shop
        .nights(room, from, to)?
        .into_iter()
        .map(|n| n.price)
        .min_by_key(|p| p.minor())
        .unwrap_or(room.spec.base_price))
}

fn room_card(turn: &Turn<'_>, room: &Bookable, shop: &mut dyn Shop) -> Result<Card> {
    let people = if room.spec.max_guests == 1 {
        "guest"
    } else {
        "guests"
    };
    let mut card = Card::new(&room.spec.name).subtitle(&format!(
        "from {} / night · up to {} {people}",
        from_price(turn, room, shop)?,
        room.spec.max_guests
    ));
    if let Some(image) = &room.spec.image_url {
        card = card.image(image);
    }
    Ok(card.button(Action::postback(
        "Choose dates",
        &payload::encode(&Payload::Room { bookable: room.id }),
    )))
}

/// The room types as a carousel.
pub(super) fn rooms(turn: &Turn<'_>, shop: &mut dyn Shop, page: u16) -> Result<Outcome> {
    let rooms = shop.rooms()?;
    if rooms.is_empty() {
        return Ok(Outcome::reply(with_menu(
            turn,
            "There are no rooms to book for now. Anything else?",
        )));
    }
    let mut cards = Vec::with_capacity(rooms.len());
    for room in &rooms {
        cards.push(room_card(turn, room, shop)?);
    }
    let message = Reply::carousel(&cards, usize::from(page), |next| {
        let more = payload::encode(&Payload::Rooms {
            page: u16::try_from(next).unwrap_or(u16::MAX),
        });
        Card::new("More rooms")
            .subtitle("See the next page")
            .button(Action::postback("More", &more))
    });
    match message {
        Ok(message) => Ok(Outcome::reply(vec![message])),
        Err(_) if page > 0 => rooms_page_zero(turn, shop),
        // Page 0 of a list that is not empty always has items.
        Err(_) => Ok(Outcome::default()),
    }
}

fn rooms_page_zero(turn: &Turn<'_>, shop: &mut dyn Shop) -> Result<Outcome> {
    rooms(turn, shop, 0)
}

/// One room's card, recorded as viewed, and the arrival question.
pub(super) fn room(turn: &Turn<'_>, room: &Bookable, shop: &mut dyn Shop) -> Result<Outcome> {
    let card = room_card(turn, room, shop)?;
    let mut replies = vec![Reply::card(card)];
    let mut ask = ask_arrival(turn, room)?;
    replies.append(&mut ask.replies);
    let mut commands = vec![Command::ViewedRoom { bookable: room.id }];
    commands.append(&mut ask.commands);
    Ok(Outcome {
        commands,
        replies,
        ..Outcome::default()
    })
}

/// Quick replies for the next days, and the invitation to type a date.
fn ask_arrival(turn: &Turn<'_>, room: &Bookable) -> Result<Outcome> {
    let first = today(turn, room);
    let mut replies = Vec::new();
    for (i, date) in first.iter_days().take(ARRIVAL_CHOICES as usize).enumerate() {
        let label = match i {
            0 => "Today".to_owned(),
            1 => "Tomorrow".to_owned(),
            _ => day(date),
        };
        replies.push(Choice::new(
            &label,
            &payload::encode(&Payload::Arrival {
                bookable: room.id,
                arrival: date,
            }),
        ));
    }
    Ok(Outcome {
        commands: vec![Command::AskDates { bookable: room.id }],
        replies: Reply::text_with_choices(
            &format!(
                "When would you like to arrive at the {}? Tap a day, or type a date (24/12, 24 Dec).",
                room.spec.name
            ),
            replies,
        ),
        ..Outcome::default()
    })
}

/// Arrival chosen: how many nights (within the room's minimum and maximum stay).
pub(super) fn ask_nights(turn: &Turn<'_>, room: &Bookable, arrival: NaiveDate) -> Result<Outcome> {
    if arrival < today(turn, room) {
        let mut outcome = ask_arrival(turn, room)?;
        outcome.replies.splice(0..0, Reply::text("That date has passed."));
        return Ok(outcome);
    }
    let spec = &room.spec;
    let last = spec.max_nights.min(spec.min_nights + MAX_CHOICES - 1);
    let mut replies = Vec::new();
    for nights in spec.min_nights..=last {
        let label = if nights == 1 {
            "1 night".to_owned()
        } else {
            format!("{nights} nights")
        };
        replies.push(Choice::new(
            &label,
            &payload::encode(&Payload::Nights {
                bookable: room.id,
                arrival,
                nights: u16::try_from(nights).unwrap_or(u16::MAX),
            }),
        ));
    }
    Ok(Outcome::reply(Reply::text_with_choices(
        &format!("Arriving {}. How many nights?", day(arrival)),
        replies,
    )))
}

/// Nights chosen: how many guests.
pub(super) fn ask_guests(
    turn: &Turn<'_>,
    room: &Bookable,
    arrival: NaiveDate,
    nights: u16,
) -> Result<Outcome> {
    let Ok(stay) = StayDates::new(arrival, u32::from(nights)) else {
        return ask_nights(turn, room, arrival);
    };
    if !(room.spec.min_nights..=room.spec.max_nights).contains(&stay.nights()) {
        return ask_nights(turn, room, arrival);
    }
    let mut replies = Vec::new();
    for guests in 1..=room.spec.max_guests.min(MAX_CHOICES) {
        let label = if guests == 1 {
            "1 guest".to_owned()
        } else {
            format!("{guests} guests")
        };
        replies.push(Choice::new(
            &label,
            &payload::encode(&Payload::Guests {
                bookable: room.id,
                arrival,
                nights,
                guests: u16::try_from(guests).unwrap_or(u16::MAX),
            }),
        ));
    }
    Ok(Outcome::reply(Reply::text_with_choices(
        &format!("{}. How many guests?", stay_dates(stay)),
        replies,
    )))
}

/// Whether every night of `stay` has a unit free in `room`.
fn free(shop: &mut dyn Shop, room: &Bookable, stay: StayDates) -> Result<bool> {
    let nights = shop.nights(room, stay.arrival(), stay.departure())?;
    Ok(nights.len() == stay.nights() as usize && nights.iter().all(|n| n.available > 0))
}

/// Guests chosen: hold the stay if its nights look free, else the alternatives.
pub(super) fn hold(
    turn: &Turn<'_>,
    room: &Bookable,
    arrival: NaiveDate,
    nights: u16,
    guests: u16,
    shop: &mut dyn Shop,
) -> Result<Outcome> {
    let guests = u32::from(guests);
    if guests == 0 || guests > room.spec.max_guests {
        return ask_guests(turn, room, arrival, nights);
    }
    let Ok(stay) = StayDates::new(arrival, u32::from(nights)) else {
        return ask_nights(turn, room, arrival);
    };
    if arrival < today(turn, room) || !(room.spec.min_nights..=room.spec.max_nights).contains(&stay.nights())
    {
        return ask_nights(turn, room, arrival);
    }
    if !free(shop, room, stay)? {
        let alternatives = shop.alternatives(room, stay, guests, today(turn, room))?;
        return Ok(Outcome::reply(unavailable(room, stay, guests, &alternatives)));
    }
    Ok(Outcome {
        commands: vec![Command::Hold {
            bookable: room.id,
            stay,
            guests,
        }],
        then_show_stay: true,
        ..Outcome::default()
    })
}

/// No room for these dates: the nearest dates that work, or the other room types, as quick replies.
pub fn unavailable(room: &Bookable, stay: StayDates, guests: u32, alternatives: &Alternatives) -> Vec<Reply> {
    let mut replies = Vec::new();
    let nights = u16::try_from(stay.nights()).unwrap_or(u16::MAX);
    let guests16 = u16::try_from(guests).unwrap_or(u16::MAX);
    if let Some(dates) = alternatives.dates {
        replies.push(Choice::new(
            &format!("From {}", day(dates.arrival())),
            &payload::encode(&Payload::Guests {
                bookable: room.id,
                arrival: dates.arrival(),
                nights,
                guests: guests16,
            }),
        ));
    }
    for other in alternatives.rooms.iter().take(10) {
        replies.push(Choice::new(
            &other.spec.name,
            &payload::encode(&Payload::Guests {
                bookable: other.id,
                arrival: stay.arrival(),
                nights,
                guests: guests16,
            }),
        ));
    }
    replies.push(Choice::new(
        "Other dates",
        &payload::encode(&Payload::Room { bookable: room.id }),
    ));
    let text = match (alternatives.dates, alternatives.rooms.is_empty()) {
        (Some(dates), true) => format!(
            "Sorry, the {} is not available {}. It is from {}:",
            room.spec.name,
            stay_dates(stay),
            stay_dates(dates)
        ),
        (Some(dates), false) => format!(
            "Sorry, the {} is not available {}. It is from {}, or another room is free on your dates:",
            room.spec.name,
            stay_dates(stay),
            stay_dates(dates)
        ),
        (None, false) => format!(
            "Sorry, the {} is not available {}. Another room is free on your dates:",
            room.spec.name,
            stay_dates(stay)
        ),
        (None, true) => format!(
            "Sorry, the {} is not available {}, nor on nearby dates. Try other dates?",
            room.spec.name,
            stay_dates(stay)
        ),
    };
    Reply::text_with_choices(&text, replies)
}

/// The held stay a button was made for, while it is still held.
fn held<'t>(turn: &Turn<'t>, booking: Uuid) -> Option<&'t Booking> {
    turn.stays
        .iter()
        .find(|b| b.id == booking && b.status == BookingStatus::Held && b.expires_at > turn.at)
}

/// An upgrade or add-on tapped: the command, or a friendly word when the hold or the offer is gone.
pub(super) fn take_offer(
    turn: &Turn<'_>,
    offer: Uuid,
    booking: Uuid,
    upgrade: bool,
    shop: &mut dyn Shop,
) -> Result<Outcome> {
    let (Some(stay), Some(cart)) = (held(turn, booking), turn.cart) else {
        return Ok(Outcome::reply(with_menu(
            turn,
            "Sorry, that stay is no longer held for you. Book it again?",
        )));
    };
    if !cart.offers_seen.contains(&offer) {
        return stale(turn);
    }
    let Some(view) = shop.stay_offer(offer)? else {
        return stale(turn);
    };
    match (&view.kind, upgrade) {
        (StayOfferKind::Upgrade { room, .. }, true) => {
            if !free(shop, room, stay.stay)? {
                return Ok(Outcome::reply(with_menu(
                    turn,
                    &format!(
                        "Sorry, the {} has just been taken for your dates.",
                        room.spec.name
                    ),
                )));
            }
            Ok(Outcome {
                commands: vec![Command::Upgrade { offer, booking }],
                then_show_stay: true,
                ..Outcome::default()
            })
        }
        (StayOfferKind::AddOn { .. }, false) => Ok(Outcome {
            commands: vec![Command::AddOn { offer, booking }],
            then_show_stay: true,
            ..Outcome::default()
        }),
        _ => stale(turn),
    }
}

/// What an upgrade costs more for `stay` in `current` (the price the shopper holds it at): the fixed
/// difference per night, or the difference of the two rooms' rates.
pub fn upgrade_price(
    shop: &mut dyn Shop,
    current: Money,
    target: &Bookable,
    night_delta: Option<Money>,
    stay: StayDates,
) -> Result<Option<Money>> {
    let total = match night_delta {
        Some(delta) => delta
            .checked_mul(i64::from(stay.nights()))
            .and_then(|extra| current.checked_add(extra)),
        None => shop
            .nights(target, stay.arrival(), stay.departure())?
            .iter()
            .try_fold(Money::zero(current.currency()), |sum, n| sum.checked_add(n.price)),
    };
    Ok(total.ok().filter(|t| t.minor() >= current.minor()))
}

/// The held stay: its price (night by night when it varies), the first offer not yet seen, and "Book
/// and pay". Returns the offer shown, for the caller to remember.
pub fn stay_replies(
    turn_at: chrono::NaiveDateTime,
    cart: &Cart,
    booking: &Booking,
    room: &Bookable,
    shop: &mut dyn Shop,
) -> Result<(Vec<Reply>, Option<Uuid>)> {
    let line_price = cart
        .lines
        .iter()
        .find(|l| l.booking_id == Some(booking.id))
        .map_or(booking.total, |l| l.unit_price);
    let stay = booking.stay;
    let rates = shop.nights(room, stay.arrival(), stay.departure())?;
    let rates_total = rates
        .iter()
        .try_fold(Money::zero(line_price.currency()), |sum, n| {
            sum.checked_add(n.price)
        })
        .ok();
    let varies = rates.windows(2).any(|w| w[0].price != w[1].price);
    let mut text = format!(
        "{}, {} ({} guest{}):",
        room.spec.name,
        stay_dates(stay),
        booking.guests,
        if booking.guests == 1 { "" } else { "s" }
    );
    if varies && rates_total == Some(line_price) {
        for n in &rates {
            text.push_str(&format!("\n{}: {}", day(n.night), n.price));
        }
        text.push_str(&format!("\nTotal {line_price}."));
    } else if rates_total == Some(line_price)
        && let Some(first) = rates.first()
    {
        text.push_str(&format!(
            " {} night{} × {} = {line_price}.",
            stay.nights(),
            if stay.nights() == 1 { "" } else { "s" },
            first.price
        ));
    } else {
        text.push_str(&format!(
            " {} night{}, {line_price}.",
            stay.nights(),
            if stay.nights() == 1 { "" } else { "s" }
        ));
    }
    let minutes = (booking.expires_at - turn_at).num_minutes().max(1);
    text.push_str(&format!(" I am holding it for you for {minutes} minutes."));
    let mut replies = Reply::text(&text);
    let mut shown = None;
    for offer in shop.stay_offers(room.id)? {
        if cart.offers_seen.contains(&offer.id) {
            continue;
        }
        if let Some(message) = offer_message(cart, booking, line_price, &offer, shop)? {
            replies.push(message);
            shown = Some(offer.id);
            break;
        }
    }
    let total = cart.totals(turn_at)?.total;
    replies.push(Reply::buttons(
        &format!("Total {total}. Ready to book?"),
        vec![
            Action::postback(
                "Book and pay",
                &payload::encode(&Payload::Checkout { cart: cart.id }),
            ),
            Action::postback("My cart", &payload::encode(&Payload::Cart)),
        ],
    ));
    Ok((replies, shown))
}

/// An offer's question, when it can be taken now (the better room free, the add-on in stock and not
/// in the cart).
fn offer_message(
    cart: &Cart,
    booking: &Booking,
    current: Money,
    offer: &StayOfferView,
    shop: &mut dyn Shop,
) -> Result<Option<Reply>> {
    let stay = booking.stay;
    let decline = Action::postback(
        "No thanks",
        &payload::encode(&Payload::DeclineOffer {
            offer: offer.id,
            cart: cart.id,
        }),
    );
    let (text, take) = match &offer.kind {
        StayOfferKind::Upgrade { room, night_delta } => {
            if booking.guests > room.spec.max_guests || !free(shop, room, stay)? {
                return Ok(None);
            }
            let Some(total) = upgrade_price(shop, current, room, *night_delta, stay)? else {
                return Ok(None);
            };
            let extra = total.checked_sub(current)?;
            let price = match night_delta {
                Some(delta) => format!("+{delta} / night (+{extra} for your stay)"),
                None => format!("+{extra} for your stay"),
            };
            (
                format!("{} {} for {price}.", offer.text.trim(), room.spec.name),
                Action::postback(
                    "Upgrade",
                    &payload::encode(&Payload::Upgrade {
                        offer: offer.id,
                        booking: booking.id,
                    }),
                ),
            )
        }
        StayOfferKind::AddOn {
            product,
            variant,
            price,
            per_night,
        } => {
            let units = if *per_night { stay.nights() } else { 1 };
            if variant.stock < i64::from(units) || cart.line_of(variant.id).is_some() {
                return Ok(None);
            }
            let total = price.checked_mul(i64::from(units))?;
            let price = if *per_night {
                format!("{price} per night ({total})")
            } else {
                format!("{price}")
            };
            (
                format!("{} {} for {price}.", offer.text.trim(), product.fields.title),
                Action::postback(
                    "Yes, add it",
                    &payload::encode(&Payload::AddOn {
                        offer: offer.id,
                        booking: booking.id,
                    }),
                ),
            )
        }
    };
    Ok(Some(Reply::buttons(&text, vec![take, decline])))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use chrono::{NaiveDateTime, NaiveTime};

    use super::*;
    use crate::bookings::BookableSpec;
    use crate::carts::CartLine;
    use crate::engine::Referral;
    use crate::engine::{GET_STARTED, Input, MemoryShop, respond};
    use crate::money::Currency;

    fn eur(minor: i64) -> Money {
        Money::from_minor(minor, Currency::parse("EUR").unwrap())
    }

    /// Noon UTC on Monday 21 December 2026: 13:00 in Paris.
    fn now() -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 12, 21)
            .unwrap()
            .and_hms_opt(12, 0, 0)
            .unwrap()
    }

    fn date(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, d).unwrap()
    }

    fn room(name: &str, units: u32, price: i64) -> Bookable {
        Bookable {
            id: Uuid::now_v7(),
            merchant_id: crate::kernel::MerchantId(Uuid::nil()),
            spec: BookableSpec {
                name: name.to_owned(),
                description: None,
                image_url: Some("https://example.com/room.jpg".into()),
                units,
                max_guests: 2,
                base_price: eur(price),
                min_nights: 1,
                max_nights: 14,
                check_in: NaiveTime::from_hms_opt(15, 0, 0).unwrap(),
                check_out: NaiveTime::from_hms_opt(11, 0, 0).unwrap(),
                timezone: chrono_tz::Europe::Paris,
                active: true,
                labels: crate::kernel::Labels::default(),
            },
            created_at: now(),
            updated_at: now(),
        }
    }

    /// The demo hotel: the suite (Friday night dearer), its sea-view upgrade at +40.00 a night, and a
    /// double room.
    fn hotel() -> MemoryShop {
        let suite = room("Honeymoon Suite", 1, 24_000);
        let sea = room("Sea-view Honeymoon Suite", 1, 28_000);
        let double = room("Double Room", 6, 14_000);
        let upgrade = StayOfferView {
            id: Uuid::now_v7(),
            text: "Wake up to the sea:".into(),
            kind: StayOfferKind::Upgrade {
                room: sea.clone(),
                night_delta: Some(eur(4_000)),
            },
        };
        MemoryShop {
            rates: vec![(suite.id, date(25), eur(29_000))],
            stay_offers: vec![(suite.id, upgrade)],
            rooms: vec![suite, sea, double],
            ..MemoryShop::default()
        }
    }

    fn turn<'a>(
        input: Input<'a>,
        cart: Option<&'a Cart>,
        stays: &'a [Booking],
        stay_room: Option<Uuid>,
    ) -> Turn<'a> {
        Turn {
            at: now(),
            merchant_name: "Dream Hotels",
            first_name: Some("Anna"),
            cart,
            stays,
            stay_room,
            has_rooms: true,
            missed_before: false,
            input,
        }
    }

    fn tap(payload: &str) -> Input<'_> {
        Input::Tap {
            payload,
            referral: None,
        }
    }

    fn json(m: &Reply) -> serde_json::Value {
        m.to_json()
    }

    fn quick_titles(m: &Reply) -> Vec<String> {
        json(m)["quick_replies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|q| q["title"].as_str().unwrap().to_owned())
            .collect()
    }

    fn held(shop: &MemoryShop, expires_in_minutes: i64) -> (Cart, Booking) {
        let suite = &shop.rooms[0];
        let booking = Booking {
            id: Uuid::now_v7(),
            merchant_id: crate::kernel::MerchantId(Uuid::nil()),
            bookable_id: suite.id,
            thread_id: None,
            order_id: None,
            stay: StayDates::new(date(24), 3).unwrap(),
            guests: 2,
            status: BookingStatus::Held,
            total: eur(77_000),
            expires_at: now() + chrono::Duration::minutes(expires_in_minutes),
            created_at: now(),
            updated_at: now(),
            reminder: None,
            reminded_at: None,
        };
        let cart = Cart {
            id: Uuid::now_v7(),
            thread_id: crate::kernel::ThreadId::new(),
            currency: Currency::parse("EUR").unwrap(),
            lines: vec![CartLine {
                id: Uuid::now_v7(),
                variant_id: None,
                product_id: None,
                title: suite.spec.name.clone(),
                variant_name: stay_line_name(booking.stay, 2),
                sku: "STAY".into(),
                image_url: None,
                unit_price: booking.total,
                quantity: 1,
                offer_id: None,
                booking_id: Some(booking.id),
            }],
            offers_seen: vec![shop.stay_offers[0].1.id],
            discount: None,
        };
        (cart, booking)
    }

    #[test]
    fn the_greeting_of_a_hotel_offers_to_book_a_stay_next_to_the_shop() {
        let mut shop = hotel();

        let out = respond(&turn(tap(GET_STARTED), None, &[], None), &mut shop).unwrap();

        assert_eq!(
            quick_titles(&out.replies[0]),
            ["Shop", "Book a stay", "My cart", "Talk to a person"]
        );
    }

    #[test]
    fn book_a_stay_shows_the_rooms_with_their_from_price_and_guests() {
        let mut shop = hotel();
        let rooms = payload::encode(&Payload::Rooms { page: 0 });

        let out = respond(&turn(tap(&rooms), None, &[], None), &mut shop).unwrap();

        let cards = json(&out.replies[0])["cards"].clone();
        assert_eq!(cards.as_array().unwrap().len(), 3);
        assert_eq!(cards[0]["title"], "Honeymoon Suite");
        assert_eq!(cards[0]["subtitle"], "from 240.00 EUR / night · up to 2 guests");
        assert_eq!(cards[0]["buttons"][0]["title"], "Choose dates");
    }

    #[test]
    fn a_ref_naming_a_room_opens_on_it_and_asks_the_arrival_date() {
        let mut shop = hotel();
        let suite = shop.rooms[0].id;
        let referral = Referral {
            source: "SHORTLINK".into(),
            kind: "OPEN_THREAD".into(),
            ref_: Some("c=honeymoon_b=honeymoon-suite".into()),
            ad_id: None,
            ad_title: None,
            post_id: None,
            product_id: None,
            ads_context_data: None,
            ..Referral::default()
        };

        let out = respond(&turn(Input::Referral(&referral), None, &[], None), &mut shop).unwrap();

        assert_eq!(
            out.commands,
            [
                Command::ViewedRoom { bookable: suite },
                Command::AskDates { bookable: suite }
            ]
        );
        assert_eq!(json(&out.replies[1])["cards"][0]["title"], "Honeymoon Suite");
        let days = quick_titles(&out.replies[2]);
        assert_eq!(&days[..3], ["Today", "Tomorrow", "Wed 23 Dec"]);
    }

    #[test]
    fn an_ad_whose_product_id_is_a_room_opens_on_that_room() {
        let mut shop = hotel();
        let sea = shop.rooms[1].id;
        let referral = Referral {
            source: "ADS".into(),
            kind: "OPEN_THREAD".into(),
            ref_: None,
            ad_id: Some("AD-9".into()),
            ad_title: Some("Sea view".into()),
            post_id: None,
            product_id: Some(sea.simple().to_string()),
            ads_context_data: None,
            ..Referral::default()
        };

        let out = respond(&turn(Input::Referral(&referral), None, &[], None), &mut shop).unwrap();

        assert_eq!(out.commands[0], Command::ViewedRoom { bookable: sea });
    }

    #[test]
    fn a_date_typed_in_english_or_french_answers_the_arrival_question() {
        let mut shop = hotel();
        let suite = shop.rooms[0].id;

        for typed in ["24 Dec", "24/12", "2026-12-24", "24 décembre", "le 24 décembre"] {
            let out = respond(&turn(Input::Text(typed), None, &[], Some(suite)), &mut shop).unwrap();

            assert_eq!(
                out.replies[0].text_of(),
                Some("Arriving Thu 24 Dec. How many nights?"),
                "{typed}"
            );
            assert_eq!(quick_titles(&out.replies[0])[..2], ["1 night", "2 nights"]);
        }
    }

    #[test]
    fn a_date_typed_without_a_room_asked_is_searched_as_usual() {
        let mut shop = hotel();

        let out = respond(&turn(Input::Text("24 Dec"), None, &[], None), &mut shop).unwrap();

        assert!(
            out.replies[0]
                .text_of()
                .unwrap()
                .starts_with("I found nothing for")
        );
    }

    #[test]
    fn free_nights_are_held_and_full_ones_offer_the_nearest_dates_and_other_rooms() {
        let mut shop = hotel();
        let suite = shop.rooms[0].id;
        let guests = |arrival| {
            payload::encode(&Payload::Guests {
                bookable: suite,
                arrival,
                nights: 3,
                guests: 2,
            })
        };

        let free = respond(&turn(tap(&guests(date(24))), None, &[], None), &mut shop).unwrap();
        shop.taken.push((suite, date(25), 1));
        let full = respond(&turn(tap(&guests(date(24))), None, &[], None), &mut shop).unwrap();

        assert_eq!(
            free.commands,
            [Command::Hold {
                bookable: suite,
                stay: StayDates::new(date(24), 3).unwrap(),
                guests: 2
            }]
        );
        assert!(free.then_show_stay);
        assert!(full.commands.is_empty());
        assert_eq!(
            full.replies[0].text_of(),
            Some(
                "Sorry, the Honeymoon Suite is not available Thu 24 Dec → Sun 27 Dec 2026. It is from \
                 Sat 26 Dec → Tue 29 Dec 2026, or another room is free on your dates:"
            )
        );
        assert_eq!(
            quick_titles(&full.replies[0]),
            [
                "From Sat 26 Dec",
                "Sea-view Honeymoon Suite",
                "Double Room",
                "Other dates"
            ]
        );
        // Messenger shows 20 characters of a quick reply's title.
        let rendered =
            crate::channels::meta::render::render(&full.replies[0], crate::kernel::Channel::Messenger)
                .unwrap();
        assert_eq!(
            serde_json::to_value(&rendered[0]).unwrap()["quick_replies"][1]["title"],
            "Sea-view Honeymoon…"
        );
    }

    #[test]
    fn a_deleted_room_or_a_past_arrival_gets_a_friendly_reply() {
        let mut shop = hotel();
        let gone = payload::encode(&Payload::Room {
            bookable: Uuid::now_v7(),
        });
        let past = payload::encode(&Payload::Arrival {
            bookable: shop.rooms[0].id,
            arrival: date(1),
        });

        let gone = respond(&turn(tap(&gone), None, &[], None), &mut shop).unwrap();
        let past = respond(&turn(tap(&past), None, &[], None), &mut shop).unwrap();

        assert!(gone.commands.is_empty());
        assert!(
            gone.replies[0]
                .text_of()
                .unwrap()
                .starts_with("Sorry, that item or button")
        );
        assert_eq!(past.replies[0].text_of(), Some("That date has passed."));
    }

    #[test]
    fn the_held_stay_is_priced_night_by_night_with_the_upgrade_offered_per_night() {
        let mut shop = hotel();
        let (mut cart, booking) = held(&shop, 15);
        cart.offers_seen.clear();
        let suite = shop.rooms[0].clone();

        let (replies, shown) = stay_replies(now(), &cart, &booking, &suite, &mut shop).unwrap();

        assert_eq!(
            replies[0].text_of(),
            Some(
                "Honeymoon Suite, Thu 24 Dec → Sun 27 Dec 2026 (2 guests):\nThu 24 Dec: 240.00 EUR\nFri \
                 25 Dec: 290.00 EUR\nSat 26 Dec: 240.00 EUR\nTotal 770.00 EUR. I am holding it for you for \
                 15 minutes."
            )
        );
        assert_eq!(
            json(&replies[1])["text"],
            "Wake up to the sea: Sea-view Honeymoon Suite for +40.00 EUR / night (+120.00 EUR for your stay)."
        );
        assert_eq!(shown, Some(shop.stay_offers[0].1.id));
        assert_eq!(json(&replies[2])["buttons"][0]["title"], "Book and pay");
    }

    #[test]
    fn an_upgrade_is_taken_while_held_declined_politely_and_refused_once_the_hold_ended() {
        let mut shop = hotel();
        let (cart, booking) = held(&shop, 15);
        let (_, expired) = held(&shop, -1);
        let offer = shop.stay_offers[0].1.id;
        let take = payload::encode(&Payload::Upgrade {
            offer,
            booking: booking.id,
        });
        let skip = payload::encode(&Payload::DeclineOffer { offer, cart: cart.id });
        let late = payload::encode(&Payload::Upgrade {
            offer,
            booking: expired.id,
        });
        let stays = [booking.clone(), expired.clone()];

        let taken = respond(&turn(tap(&take), Some(&cart), &stays, None), &mut shop).unwrap();
        let skipped = respond(&turn(tap(&skip), Some(&cart), &stays, None), &mut shop).unwrap();
        let late = respond(&turn(tap(&late), Some(&cart), &stays, None), &mut shop).unwrap();

        assert_eq!(
            taken.commands,
            [Command::Upgrade {
                offer,
                booking: booking.id
            }]
        );
        assert_eq!(skipped.commands, [Command::DeclineOffer { offer }]);
        assert!(skipped.then_show_stay);
        assert!(late.commands.is_empty());
        assert_eq!(
            late.replies[0].text_of(),
            Some("Sorry, that stay is no longer held for you. Book it again?")
        );
    }

    #[test]
    fn typing_book_a_room_or_reserver_une_chambre_shows_the_rooms() {
        let mut shop = hotel();

        for typed in ["book a room", "réserver une chambre", "rooms"] {
            let out = respond(&turn(Input::Text(typed), None, &[], None), &mut shop).unwrap();

            assert_eq!(
                json(&out.replies[0])["cards"][0]["title"],
                "Honeymoon Suite",
                "{typed}"
            );
        }
    }
}
