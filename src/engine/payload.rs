//! Postback and quick-reply payloads: what a button or quick reply meant when the shopper taps it.
//!
//! Meta echoes back the `payload` string of the button or quick reply the shopper tapped, at most 1000
//! characters, sometimes days after we sent it. The engine must know what the tap meant without
//! guessing from text, so every button we render carries a [`Payload`] written by [`encode`], and every
//! tap is read back by [`decode`] into the same typed value.
//!
//! The format is compact and versioned: `tc1:<tag>[:<field>...]`. The version lets a later format
//! change tell an old button (still visible higher up in the thread) from a forged or broken one, and
//! the `tc` prefix tells our payloads from Meta's (ice breakers) and other apps' on the same page.
//! Ids are 32 lower-case hex digits (`Uuid::simple`), numbers are plain decimals without leading
//! zeros, and a search query escapes `%` as `%25` and `:` as `%3A`, so any query round-trips. The one
//! unversioned payload is Meta's Get Started button, `GET_STARTED`.
//!
//! | variant | payload |
//! |---|---|
//! | `GetStarted` | `GET_STARTED` |
//! | `Shop` | `tc1:shop:<page>` |
//! | `Product` | `tc1:p:<product>` |
//! | `ChooseOption` | `tc1:opt:<product>:<page>` |
//! | `Add` | `tc1:add:<variant>` |
//! | `Cart` | `tc1:cart` |
//! | `SetQuantity` | `tc1:qty:<line>:<quantity>` |
//! | `Remove` | `tc1:rm:<line>` |
//! | `Checkout` | `tc1:pay:<cart>` |
//! | `AcceptOffer` | `tc1:take:<offer>:<cart>` |
//! | `DeclineOffer` | `tc1:skip:<offer>:<cart>` |
//! | `Search` | `tc1:q:<page>:<escaped query>` |
//! | `Human` | `tc1:human` |
//! | `Help` | `tc1:help` |
//! | `Rooms` | `tc1:rooms:<page>` |
//! | `Room` | `tc1:room:<bookable>` |
//! | `Arrival` | `tc1:arr:<bookable>:<yyyymmdd>` |
//! | `Nights` | `tc1:nts:<bookable>:<yyyymmdd>:<nights>` |
//! | `Guests` | `tc1:gst:<bookable>:<yyyymmdd>:<nights>:<guests>` |
//! | `Upgrade` | `tc1:upg:<offer>:<booking>` |
//! | `AddOn` | `tc1:addon:<offer>:<booking>` |
//!
//! Dates are the property's calendar dates, 8 digits without separators.
//!
//! [`decode`] accepts exactly what [`encode`] writes and nothing else, so a decoded payload encodes
//! back to the same string.

use chrono::NaiveDate;
use uuid::Uuid;

/// Longest payload we write or read, in bytes; Meta's limit is 1000 characters, which this implies.
pub const MAX_PAYLOAD: usize = 1000;

/// The payload of Meta's Get Started button, the only one without our prefix and version.
pub const GET_STARTED: &str = "GET_STARTED";

/// Starts every payload of this version.
const PREFIX: &str = "tc1:";

/// The marker that starts every versioned payload of ours, before the version number.
const MARKER: &str = "tc";

/// The version this module writes and reads.
const VERSION: &str = "1";

/// The tag after the version, one per variant.
mod tag {
    pub const SHOP: &str = "shop";
    pub const PRODUCT: &str = "p";
    pub const CHOOSE_OPTION: &str = "opt";
    pub const ADD: &str = "add";
    pub const CART: &str = "cart";
    pub const SET_QUANTITY: &str = "qty";
    pub const REMOVE: &str = "rm";
    pub const CHECKOUT: &str = "pay";
    pub const ACCEPT_OFFER: &str = "take";
    pub const DECLINE_OFFER: &str = "skip";
    pub const SEARCH: &str = "q";
    pub const HUMAN: &str = "human";
    pub const HELP: &str = "help";
    pub const ROOMS: &str = "rooms";
    pub const ROOM: &str = "room";
    pub const ARRIVAL: &str = "arr";
    pub const NIGHTS: &str = "nts";
    pub const GUESTS: &str = "gst";
    pub const UPGRADE: &str = "upg";
    pub const ADD_ON: &str = "addon";
}

/// What a tapped button or quick reply asks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Payload {
    /// Meta's Get Started button, tapped when a shopper opens the thread for the first time.
    GetStarted,
    /// The featured-products carousel, page `page`.
    Shop {
        /// Carousel page.
        page: u16,
    },
    /// Open a product's card.
    Product {
        /// The product.
        product: Uuid,
    },
    /// Quick replies for the product's variants in stock, page `page`.
    ChooseOption {
        /// The product whose variants to offer.
        product: Uuid,
        /// Page of quick replies.
        page: u16,
    },
    /// Add one of this variant to the open cart.
    Add {
        /// The variant to add.
        variant: Uuid,
    },
    /// Show the cart.
    Cart,
    /// Change a cart line's quantity; 0 removes the line.
    SetQuantity {
        /// The cart line.
        line: Uuid,
        /// The new quantity.
        quantity: u16,
    },
    /// Remove a cart line.
    Remove {
        /// The cart line.
        line: Uuid,
    },
    /// Check the cart out.
    Checkout {
        /// The cart the button was rendered for, so a stale button cannot check out a newer cart.
        cart: Uuid,
    },
    /// Take an upsell offer.
    AcceptOffer {
        /// The offer.
        offer: Uuid,
        /// The cart the offer was made for.
        cart: Uuid,
    },
    /// Decline an upsell offer.
    DeclineOffer {
        /// The offer.
        offer: Uuid,
        /// The cart the offer was made for.
        cart: Uuid,
    },
    /// More results of a search.
    Search {
        /// The query as the engine searched it; [`encode`] cuts a query too long for the payload.
        query: String,
        /// Results page.
        page: u16,
    },
    /// Talk to a person.
    Human,
    /// What the shopper can do here.
    Help,
    /// "Book a stay": the room types, page `page`.
    Rooms {
        /// Carousel page.
        page: u16,
    },
    /// This room type: ask for the arrival date.
    Room {
        /// The bookable.
        bookable: Uuid,
    },
    /// Arrival chosen: ask for the number of nights.
    Arrival {
        /// The bookable.
        bookable: Uuid,
        /// Arrival (the property's date).
        arrival: NaiveDate,
    },
    /// Nights chosen: ask for the guests.
    Nights {
        /// The bookable.
        bookable: Uuid,
        /// Arrival.
        arrival: NaiveDate,
        /// Nights.
        nights: u16,
    },
    /// Guests chosen: hold the stay.
    Guests {
        /// The bookable.
        bookable: Uuid,
        /// Arrival.
        arrival: NaiveDate,
        /// Nights.
        nights: u16,
        /// Guests.
        guests: u16,
    },
    /// Take an upgrade offer for a held stay.
    Upgrade {
        /// The offer.
        offer: Uuid,
        /// The held stay it was made for.
        booking: Uuid,
    },
    /// Take an add-on offer for a held stay.
    AddOn {
        /// The offer.
        offer: Uuid,
        /// The held stay it was made for.
        booking: Uuid,
    },
}

/// Why a payload string is not one of ours, or not one we can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// The payload is the empty string.
    #[error("the payload is empty")]
    Empty,
    /// Ours, but written in a version this build does not read, e.g. `tc2`.
    #[error("payload version `{0}` is not one this build reads")]
    UnknownVersion(String),
    /// Ours by its prefix, but broken: unknown tag, wrong field count, bad id, number or escape. The
    /// reason never quotes a search query, which is the shopper's own text.
    #[error("malformed payload: {0}")]
    Malformed(String),
    /// Not one of ours: Meta's ice breakers, another app's buttons, free text.
    #[error("the payload is not one of ours")]
    Foreign,
}

impl PayloadError {
    /// Stable snake_case identifier for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            PayloadError::Empty => "empty_payload",
            PayloadError::UnknownVersion(_) => "unknown_payload_version",
            PayloadError::Malformed(_) => "malformed_payload",
            PayloadError::Foreign => "foreign_payload",
        }
    }
}

/// Writes a payload; the result is at most [`MAX_PAYLOAD`] bytes, a search query is cut to fit.
pub fn encode(payload: &Payload) -> String {
    match payload {
        Payload::GetStarted => GET_STARTED.to_owned(),
        Payload::Shop { page } => format!("{PREFIX}{}:{page}", tag::SHOP),
        Payload::Product { product } => format!("{PREFIX}{}:{}", tag::PRODUCT, product.simple()),
        Payload::ChooseOption { product, page } => {
            format!("{PREFIX}{}:{}:{page}", tag::CHOOSE_OPTION, product.simple())
        }
        Payload::Add { variant } => format!("{PREFIX}{}:{}", tag::ADD, variant.simple()),
        Payload::Cart => format!("{PREFIX}{}", tag::CART),
        Payload::SetQuantity { line, quantity } => {
            format!("{PREFIX}{}:{}:{quantity}", tag::SET_QUANTITY, line.simple())
        }
        Payload::Remove { line } => format!("{PREFIX}{}:{}", tag::REMOVE, line.simple()),
        Payload::Checkout { cart } => format!("{PREFIX}{}:{}", tag::CHECKOUT, cart.simple()),
        Payload::AcceptOffer { offer, cart } => {
            format!(
                "{PREFIX}{}:{}:{}",
                tag::ACCEPT_OFFER,
                offer.simple(),
                cart.simple()
            )
        }
        Payload::DeclineOffer { offer, cart } => {
            format!(
                "{PREFIX}{}:{}:{}",
                tag::DECLINE_OFFER,
                offer.simple(),
                cart.simple()
            )
        }
        Payload::Search { query, page } => {
            let mut out = format!("{PREFIX}{}:{page}:", tag::SEARCH);
            push_escaped(&mut out, query);
            out
        }
        Payload::Human => format!("{PREFIX}{}", tag::HUMAN),
        Payload::Help => format!("{PREFIX}{}", tag::HELP),
        Payload::Rooms { page } => format!("{PREFIX}{}:{page}", tag::ROOMS),
        Payload::Room { bookable } => format!("{PREFIX}{}:{}", tag::ROOM, bookable.simple()),
        Payload::Arrival { bookable, arrival } => format!(
            "{PREFIX}{}:{}:{}",
            tag::ARRIVAL,
            bookable.simple(),
            arrival.format(DATE)
        ),
        Payload::Nights {
            bookable,
            arrival,
            nights,
        } => format!(
            "{PREFIX}{}:{}:{}:{nights}",
            tag::NIGHTS,
            bookable.simple(),
            arrival.format(DATE)
        ),
        Payload::Guests {
            bookable,
            arrival,
            nights,
            guests,
        } => format!(
            "{PREFIX}{}:{}:{}:{nights}:{guests}",
            tag::GUESTS,
            bookable.simple(),
            arrival.format(DATE)
        ),
        Payload::Upgrade { offer, booking } => {
            format!("{PREFIX}{}:{}:{}", tag::UPGRADE, offer.simple(), booking.simple())
        }
        Payload::AddOn { offer, booking } => {
            format!("{PREFIX}{}:{}:{}", tag::ADD_ON, offer.simple(), booking.simple())
        }
    }
}

/// Reads a payload that Meta echoed back; accepts exactly what [`encode`] writes.
pub fn decode(payload: &str) -> Result<Payload, PayloadError> {
    if payload.is_empty() {
        return Err(PayloadError::Empty);
    }
    if payload == GET_STARTED {
        return Ok(Payload::GetStarted);
    }
    // Ours starts with `tc`, a version number, then `:` or the end.
    let Some(rest) = payload.strip_prefix(MARKER) else {
        return Err(PayloadError::Foreign);
    };
    let (version, body) = match rest.split_once(':') {
        Some((version, body)) => (version, Some(body)),
        None => (rest, None),
    };
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PayloadError::Foreign);
    }
    // Checked before the version, so that an unknown version quoted in the error is short.
    if payload.len() > MAX_PAYLOAD {
        return Err(PayloadError::Malformed(format!(
            "{} bytes, more than {MAX_PAYLOAD}",
            payload.len()
        )));
    }
    if version != VERSION {
        return Err(PayloadError::UnknownVersion(format!("{MARKER}{version}")));
    }
    match body {
        Some(body) => decode_v1(body),
        None => Err(PayloadError::Malformed("no tag after the version".to_owned())),
    }
}

/// Reads what follows `tc1:`.
fn decode_v1(body: &str) -> Result<Payload, PayloadError> {
    let mut parts = body.split(':');
    let tag = parts.next().unwrap_or_default();
    let fields: Vec<&str> = parts.collect();
    let payload = match tag {
        tag::SHOP => {
            let [page] = exactly(tag, &fields)?;
            Payload::Shop {
                page: number(page, "page")?,
            }
        }
        tag::PRODUCT => {
            let [product] = exactly(tag, &fields)?;
            Payload::Product {
                product: id(product, "product")?,
            }
        }
        tag::CHOOSE_OPTION => {
            let [product, page] = exactly(tag, &fields)?;
            Payload::ChooseOption {
                product: id(product, "product")?,
                page: number(page, "page")?,
            }
        }
        tag::ADD => {
            let [variant] = exactly(tag, &fields)?;
            Payload::Add {
                variant: id(variant, "variant")?,
            }
        }
        tag::CART => {
            let [] = exactly(tag, &fields)?;
            Payload::Cart
        }
        tag::SET_QUANTITY => {
            let [line, quantity] = exactly(tag, &fields)?;
            Payload::SetQuantity {
                line: id(line, "line")?,
                quantity: number(quantity, "quantity")?,
            }
        }
        tag::REMOVE => {
            let [line] = exactly(tag, &fields)?;
            Payload::Remove {
                line: id(line, "line")?,
            }
        }
        tag::CHECKOUT => {
            let [cart] = exactly(tag, &fields)?;
            Payload::Checkout {
                cart: id(cart, "cart")?,
            }
        }
        tag::ACCEPT_OFFER => {
            let [offer, cart] = exactly(tag, &fields)?;
            Payload::AcceptOffer {
                offer: id(offer, "offer")?,
                cart: id(cart, "cart")?,
            }
        }
        tag::DECLINE_OFFER => {
            let [offer, cart] = exactly(tag, &fields)?;
            Payload::DeclineOffer {
                offer: id(offer, "offer")?,
                cart: id(cart, "cart")?,
            }
        }
        tag::SEARCH => {
            let [page, query] = exactly(tag, &fields)?;
            Payload::Search {
                page: number(page, "page")?,
                query: unescape(query)?,
            }
        }
        tag::HUMAN => {
            let [] = exactly(tag, &fields)?;
            Payload::Human
        }
        tag::HELP => {
            let [] = exactly(tag, &fields)?;
            Payload::Help
        }
        tag::ROOMS => {
            let [page] = exactly(tag, &fields)?;
            Payload::Rooms {
                page: number(page, "page")?,
            }
        }
        tag::ROOM => {
            let [bookable] = exactly(tag, &fields)?;
            Payload::Room {
                bookable: id(bookable, "bookable")?,
            }
        }
        tag::ARRIVAL => {
            let [bookable, arrival] = exactly(tag, &fields)?;
            Payload::Arrival {
                bookable: id(bookable, "bookable")?,
                arrival: date(arrival)?,
            }
        }
        tag::NIGHTS => {
            let [bookable, arrival, nights] = exactly(tag, &fields)?;
            Payload::Nights {
                bookable: id(bookable, "bookable")?,
                arrival: date(arrival)?,
                nights: number(nights, "nights")?,
            }
        }
        tag::GUESTS => {
            let [bookable, arrival, nights, guests] = exactly(tag, &fields)?;
            Payload::Guests {
                bookable: id(bookable, "bookable")?,
                arrival: date(arrival)?,
                nights: number(nights, "nights")?,
                guests: number(guests, "guests")?,
            }
        }
        tag::UPGRADE => {
            let [offer, booking] = exactly(tag, &fields)?;
            Payload::Upgrade {
                offer: id(offer, "offer")?,
                booking: id(booking, "booking")?,
            }
        }
        tag::ADD_ON => {
            let [offer, booking] = exactly(tag, &fields)?;
            Payload::AddOn {
                offer: id(offer, "offer")?,
                booking: id(booking, "booking")?,
            }
        }
        "" => return Err(PayloadError::Malformed("no tag after the version".to_owned())),
        other => return Err(PayloadError::Malformed(format!("unknown tag `{}`", clip(other)))),
    };
    Ok(payload)
}

/// The fields of a tag that takes exactly `N`.
fn exactly<'a, const N: usize>(tag: &str, fields: &[&'a str]) -> Result<[&'a str; N], PayloadError> {
    <[&str; N]>::try_from(fields)
        .map_err(|_| PayloadError::Malformed(format!("`{tag}` takes {N} fields, not {}", fields.len())))
}

/// A `u16` written as `encode` writes it: decimal digits, no sign, no leading zero.
fn number(field: &str, name: &str) -> Result<u16, PayloadError> {
    let canonical = !field.is_empty()
        && field.bytes().all(|b| b.is_ascii_digit())
        && (field == "0" || !field.starts_with('0'));
    canonical
        .then(|| field.parse().ok())
        .flatten()
        .ok_or_else(|| PayloadError::Malformed(format!("{name} is not a number from 0 to 65535")))
}

/// How dates are written: `20261224`.
const DATE: &str = "%Y%m%d";

/// A date written as `encode` writes it: 8 digits, a real date.
fn date(field: &str) -> Result<NaiveDate, PayloadError> {
    let digits = field.len() == 8 && field.bytes().all(|b| b.is_ascii_digit());
    digits
        .then(|| NaiveDate::parse_from_str(field, DATE).ok())
        .flatten()
        .ok_or_else(|| PayloadError::Malformed("date is not 8 digits of a real date".to_owned()))
}

/// A UUID written as `encode` writes it: 32 lower-case hex digits.
fn id(field: &str, name: &str) -> Result<Uuid, PayloadError> {
    let simple = field.len() == 32 && field.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    simple
        .then(|| Uuid::try_parse(field).ok())
        .flatten()
        .ok_or_else(|| PayloadError::Malformed(format!("{name} is not an id of 32 lower-case hex digits")))
}

/// Appends the longest prefix of `query` whose escaped form keeps `out` within [`MAX_PAYLOAD`] bytes.
fn push_escaped(out: &mut String, query: &str) {
    for c in query.chars() {
        let escape = match c {
            '%' => Some("%25"),
            ':' => Some("%3A"),
            _ => None,
        };
        let width = escape.map_or(c.len_utf8(), str::len);
        if out.len() + width > MAX_PAYLOAD {
            break;
        }
        match escape {
            Some(escape) => out.push_str(escape),
            None => out.push(c),
        }
    }
}

/// Undoes `push_escaped`; any other `%` sequence is refused, so decoding stays the inverse of encoding.
fn unescape(field: &str) -> Result<String, PayloadError> {
    let mut out = String::with_capacity(field.len());
    let mut rest = field;
    while let Some((before, after)) = rest.split_once('%') {
        out.push_str(before);
        if let Some(after) = after.strip_prefix("25") {
            out.push('%');
            rest = after;
        } else if let Some(after) = after.strip_prefix("3A") {
            out.push(':');
            rest = after;
        } else {
            return Err(PayloadError::Malformed(
                "query has a `%` that is not `%25` or `%3A`".to_owned(),
            ));
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// At most 32 characters of a piece of an unreadable payload, for an error message.
fn clip(text: &str) -> &str {
    text.char_indices()
        .nth(32)
        .map_or(text, |(end, _)| text.get(..end).unwrap_or(text))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A: &str = "0190a1b2c3d47e8f9a0b1c2d3e4f5a6b";
    const B: &str = "ffffffffffffffffffffffffffffffff";

    fn a() -> Uuid {
        Uuid::try_parse(A).unwrap()
    }

    fn b() -> Uuid {
        Uuid::try_parse(B).unwrap()
    }

    /// One example of each variant with the string `encode` writes for it.
    fn examples() -> Vec<(Payload, String)> {
        vec![
            (Payload::GetStarted, "GET_STARTED".to_owned()),
            (Payload::Shop { page: 2 }, "tc1:shop:2".to_owned()),
            (Payload::Product { product: a() }, format!("tc1:p:{A}")),
            (
                Payload::ChooseOption {
                    product: a(),
                    page: 1,
                },
                format!("tc1:opt:{A}:1"),
            ),
            (Payload::Add { variant: a() }, format!("tc1:add:{A}")),
            (Payload::Cart, "tc1:cart".to_owned()),
            (
                Payload::SetQuantity {
                    line: a(),
                    quantity: 0,
                },
                format!("tc1:qty:{A}:0"),
            ),
            (Payload::Remove { line: a() }, format!("tc1:rm:{A}")),
            (Payload::Checkout { cart: b() }, format!("tc1:pay:{B}")),
            (
                Payload::AcceptOffer {
                    offer: a(),
                    cart: b(),
                },
                format!("tc1:take:{A}:{B}"),
            ),
            (
                Payload::DeclineOffer {
                    offer: a(),
                    cart: b(),
                },
                format!("tc1:skip:{A}:{B}"),
            ),
            (
                Payload::Search {
                    query: "pull 100% laine: bleu".to_owned(),
                    page: 3,
                },
                "tc1:q:3:pull 100%25 laine%3A bleu".to_owned(),
            ),
            (Payload::Human, "tc1:human".to_owned()),
            (Payload::Help, "tc1:help".to_owned()),
            (Payload::Rooms { page: 2 }, "tc1:rooms:2".to_owned()),
            (Payload::Room { bookable: a() }, format!("tc1:room:{A}")),
            (
                Payload::Arrival {
                    bookable: a(),
                    arrival: christmas_eve(),
                },
                format!("tc1:arr:{A}:20261224"),
            ),
            (
                Payload::Nights {
                    bookable: a(),
                    arrival: christmas_eve(),
                    nights: 3,
                },
                format!("tc1:nts:{A}:20261224:3"),
            ),
            (
                Payload::Guests {
                    bookable: a(),
                    arrival: christmas_eve(),
                    nights: 3,
                    guests: 2,
                },
                format!("tc1:gst:{A}:20261224:3:2"),
            ),
            (
                Payload::Upgrade {
                    offer: a(),
                    booking: b(),
                },
                format!("tc1:upg:{A}:{B}"),
            ),
            (
                Payload::AddOn {
                    offer: a(),
                    booking: b(),
                },
                format!("tc1:addon:{A}:{B}"),
            ),
        ]
    }

    fn christmas_eve() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, 24).unwrap()
    }

    #[test]
    fn a_date_that_does_not_exist_or_is_not_8_digits_is_malformed() {
        assert!(is_malformed(&format!("tc1:arr:{A}:20260230")));
        assert!(is_malformed(&format!("tc1:arr:{A}:2026-12-24")));
        assert!(is_malformed(&format!("tc1:arr:{A}:+2026122")));
    }

    fn is_malformed(payload: &str) -> bool {
        matches!(decode(payload), Err(PayloadError::Malformed(_)))
    }

    #[test]
    fn every_variant_is_written_in_the_documented_format() {
        for (payload, text) in examples() {
            assert_eq!(encode(&payload), text);
        }
    }

    #[test]
    fn every_variant_round_trips() {
        for (payload, _) in examples() {
            assert_eq!(decode(&encode(&payload)), Ok(payload));
        }
    }

    #[test]
    fn the_examples_cover_every_variant() {
        let mut seen = std::collections::HashSet::new();
        for (payload, _) in examples() {
            // A new variant fails to compile here until it gets an example.
            let name = match payload {
                Payload::GetStarted => "GetStarted",
                Payload::Shop { .. } => "Shop",
                Payload::Product { .. } => "Product",
                Payload::ChooseOption { .. } => "ChooseOption",
                Payload::Add { .. } => "Add",
                Payload::Cart => "Cart",
                Payload::SetQuantity { .. } => "SetQuantity",
                Payload::Remove { .. } => "Remove",
                Payload::Checkout { .. } => "Checkout",
                Payload::AcceptOffer { .. } => "AcceptOffer",
                Payload::DeclineOffer { .. } => "DeclineOffer",
                Payload::Search { .. } => "Search",
                Payload::Human => "Human",
                Payload::Help => "Help",
                Payload::Rooms { .. } => "Rooms",
                Payload::Room { .. } => "Room",
                Payload::Arrival { .. } => "Arrival",
                Payload::Nights { .. } => "Nights",
                Payload::Guests { .. } => "Guests",
                Payload::Upgrade { .. } => "Upgrade",
                Payload::AddOn { .. } => "AddOn",
            };
            seen.insert(name);
        }
        assert_eq!(seen.len(), 21);
    }

    #[test]
    fn the_largest_numbers_round_trip() {
        let payload = Payload::SetQuantity {
            line: Uuid::nil(),
            quantity: u16::MAX,
        };
        assert_eq!(encode(&payload), "tc1:qty:00000000000000000000000000000000:65535");
        assert_eq!(decode(&encode(&payload)), Ok(payload));
    }

    #[test]
    fn an_empty_search_query_round_trips() {
        let payload = Payload::Search {
            query: String::new(),
            page: 0,
        };
        assert_eq!(encode(&payload), "tc1:q:0:");
        assert_eq!(decode("tc1:q:0:"), Ok(payload));
    }

    #[test]
    fn a_query_made_of_escapes_round_trips() {
        let payload = Payload::Search {
            query: "%3A:%25%::%".to_owned(),
            page: 1,
        };
        assert_eq!(decode(&encode(&payload)), Ok(payload));
    }

    #[test]
    fn a_long_query_is_cut_so_the_payload_is_exactly_the_maximum() {
        let payload = Payload::Search {
            query: "a".repeat(2000),
            page: 7,
        };
        let text = encode(&payload);
        assert_eq!(text.len(), MAX_PAYLOAD);
        let Ok(Payload::Search { query, page: 7 }) = decode(&text) else {
            panic!("{text} did not decode to a search");
        };
        assert_eq!(query.len(), MAX_PAYLOAD - "tc1:q:7:".len());
    }

    #[test]
    fn a_long_query_is_cut_on_a_character_boundary_and_never_inside_an_escape() {
        for filler in ["é", "👍", "%", ":"] {
            let payload = Payload::Search {
                query: filler.repeat(1000),
                page: 12345,
            };
            let text = encode(&payload);
            assert!(text.len() <= MAX_PAYLOAD, "{filler}: {} bytes", text.len());
            let Ok(Payload::Search { query, .. }) = decode(&text) else {
                panic!("{filler}: cut payload did not decode");
            };
            assert!(!query.is_empty());
            assert!(query.chars().all(|c| c.to_string() == filler));
        }
    }

    #[test]
    fn an_empty_string_is_empty() {
        assert_eq!(decode(""), Err(PayloadError::Empty));
    }

    #[test]
    fn get_started_is_read_only_in_meta_s_exact_spelling() {
        assert_eq!(decode("GET_STARTED"), Ok(Payload::GetStarted));
        assert_eq!(decode("get_started"), Err(PayloadError::Foreign));
        assert_eq!(decode("GET_STARTED "), Err(PayloadError::Foreign));
    }

    #[test]
    fn another_version_is_an_unknown_version() {
        assert_eq!(
            decode(&format!("tc2:p:{A}")),
            Err(PayloadError::UnknownVersion("tc2".to_owned()))
        );
        assert_eq!(decode("tc0"), Err(PayloadError::UnknownVersion("tc0".to_owned())));
        assert_eq!(
            decode("tc01:cart"),
            Err(PayloadError::UnknownVersion("tc01".to_owned()))
        );
        assert_eq!(
            decode("tc12:anything"),
            Err(PayloadError::UnknownVersion("tc12".to_owned()))
        );
    }

    #[test]
    fn payloads_that_are_not_ours_are_foreign() {
        for payload in [
            "ICE_BREAKER_WHERE_IS_MY_ORDER",
            "How do I order?",
            "OTHER_APP:tc1:cart",
            " tc1:cart",
            "TC1:cart",
            "tc",
            "tc:cart",
            "tcx:cart",
            "tc1x:cart",
            "tcp_connect",
            "{\"tc1\":\"cart\"}",
        ] {
            assert_eq!(decode(payload), Err(PayloadError::Foreign), "{payload}");
        }
    }

    #[test]
    fn wrong_field_counts_are_malformed() {
        for payload in [
            "tc1:p".to_owned(),
            format!("tc1:p:{A}:{A}"),
            "tc1:cart:1".to_owned(),
            "tc1:cart:".to_owned(),
            "tc1:help:".to_owned(),
            format!("tc1:take:{A}"),
            format!("tc1:qty:{A}"),
            "tc1:q:1".to_owned(),
            "tc1:shop".to_owned(),
            "tc1:shop:1:2".to_owned(),
        ] {
            assert!(is_malformed(&payload), "{payload}");
        }
    }

    #[test]
    fn a_missing_or_unknown_tag_is_malformed() {
        for payload in ["tc1", "tc1:", "tc1:zz", "tc1::cart", "tc1:CART", "tc1:Human"] {
            assert!(is_malformed(payload), "{payload}");
        }
    }

    #[test]
    fn ids_in_another_spelling_are_malformed() {
        for id in [
            "",
            "0190a1b2c3d47e8f9a0b1c2d3e4f5a6",
            "0190a1b2c3d47e8f9a0b1c2d3e4f5a6b0",
            "0190A1B2C3D47E8F9A0B1C2D3E4F5A6B",
            "0190a1b2-c3d4-7e8f-9a0b-1c2d3e4f5a6b",
            "{0190a1b2c3d47e8f9a0b1c2d3e4f5a6b}",
            "0190a1b2c3d47e8f9a0b1c2d3e4f5a6g",
            "0190a1b2c3d47e8f9a0b1c2d3e4f5a6é",
        ] {
            assert!(is_malformed(&format!("tc1:add:{id}")), "{id}");
            assert!(is_malformed(&format!("tc1:take:{A}:{id}")), "{id}");
        }
    }

    #[test]
    fn numbers_out_of_range_or_in_another_spelling_are_malformed() {
        for number in [
            "",
            "65536",
            "99999999999",
            "-1",
            "+1",
            "01",
            "00",
            "1.0",
            " 1",
            "1e3",
            "١",
        ] {
            assert!(is_malformed(&format!("tc1:shop:{number}")), "{number}");
            assert!(is_malformed(&format!("tc1:qty:{A}:{number}")), "{number}");
            assert!(is_malformed(&format!("tc1:q:{number}:socks")), "{number}");
        }
    }

    #[test]
    fn a_query_with_an_unknown_escape_is_malformed() {
        for query in ["%", "100%", "%3a", "%2", "%41", "a%:b"] {
            assert!(is_malformed(&format!("tc1:q:0:{query}")), "{query}");
        }
    }

    #[test]
    fn a_raw_colon_in_a_query_is_malformed() {
        assert!(is_malformed("tc1:q:0:a:b"));
    }

    #[test]
    fn a_payload_longer_than_the_maximum_is_malformed() {
        let long = format!("tc1:q:0:{}", "a".repeat(MAX_PAYLOAD));
        assert!(is_malformed(&long));
        let long_other_version = format!("tc2:{}", "a".repeat(MAX_PAYLOAD));
        assert!(matches!(
            decode(&long_other_version),
            Err(PayloadError::Malformed(_))
        ));
    }

    #[test]
    fn malformed_reasons_do_not_quote_the_shopper_s_query() {
        let Err(PayloadError::Malformed(reason)) = decode("tc1:q:0:my secret address 100%") else {
            panic!("expected a malformed payload");
        };
        assert!(!reason.contains("secret"), "{reason}");
    }

    #[test]
    fn an_unknown_tag_is_quoted_at_most_32_characters_long() {
        let Err(PayloadError::Malformed(reason)) = decode(&format!("tc1:{}", "é".repeat(100))) else {
            panic!("expected a malformed payload");
        };
        assert_eq!(reason.matches('é').count(), 32);
    }

    #[test]
    fn error_codes_are_stable() {
        assert_eq!(PayloadError::Empty.code(), "empty_payload");
        assert_eq!(
            PayloadError::UnknownVersion("tc2".to_owned()).code(),
            "unknown_payload_version"
        );
        assert_eq!(PayloadError::Malformed(String::new()).code(), "malformed_payload");
        assert_eq!(PayloadError::Foreign.code(), "foreign_payload");
    }

    fn any_uuid() -> impl Strategy<Value = Uuid> {
        any::<u128>().prop_map(Uuid::from_u128)
    }

    /// Any text, with `:`, `%` and the escapes themselves more often than chance would give them.
    fn any_query(max_chars: usize) -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                4 => any::<char>(),
                1 => Just(':'),
                1 => Just('%'),
                1 => prop::sample::select(vec!['2', '5', '3', 'A', 'a', ' ', 'é', '👍']),
            ],
            0..=max_chars,
        )
        .prop_map(String::from_iter)
    }

    fn any_payload(max_query_chars: usize) -> impl Strategy<Value = Payload> {
        prop_oneof![
            Just(Payload::GetStarted),
            any::<u16>().prop_map(|page| Payload::Shop { page }),
            any_uuid().prop_map(|product| Payload::Product { product }),
            (any_uuid(), any::<u16>()).prop_map(|(product, page)| Payload::ChooseOption { product, page }),
            any_uuid().prop_map(|variant| Payload::Add { variant }),
            Just(Payload::Cart),
            (any_uuid(), any::<u16>()).prop_map(|(line, quantity)| Payload::SetQuantity { line, quantity }),
            any_uuid().prop_map(|line| Payload::Remove { line }),
            any_uuid().prop_map(|cart| Payload::Checkout { cart }),
            (any_uuid(), any_uuid()).prop_map(|(offer, cart)| Payload::AcceptOffer { offer, cart }),
            (any_uuid(), any_uuid()).prop_map(|(offer, cart)| Payload::DeclineOffer { offer, cart }),
            (any_query(max_query_chars), any::<u16>())
                .prop_map(|(query, page)| Payload::Search { query, page }),
            Just(Payload::Human),
            Just(Payload::Help),
            any::<u16>().prop_map(|page| Payload::Rooms { page }),
            any_uuid().prop_map(|bookable| Payload::Room { bookable }),
            (any_uuid(), any_date()).prop_map(|(bookable, arrival)| Payload::Arrival { bookable, arrival }),
            (any_uuid(), any_date(), any::<u16>()).prop_map(|(bookable, arrival, nights)| Payload::Nights {
                bookable,
                arrival,
                nights
            }),
            (any_uuid(), any_date(), any::<u16>(), any::<u16>()).prop_map(
                |(bookable, arrival, nights, guests)| Payload::Guests {
                    bookable,
                    arrival,
                    nights,
                    guests
                }
            ),
            (any_uuid(), any_uuid()).prop_map(|(offer, booking)| Payload::Upgrade { offer, booking }),
            (any_uuid(), any_uuid()).prop_map(|(offer, booking)| Payload::AddOn { offer, booking }),
        ]
    }

    /// Dates of years 1000 to 9999, which `encode` writes in 8 digits.
    fn any_date() -> impl Strategy<Value = NaiveDate> {
        (1000i32..=9999, 1u32..=366).prop_filter_map("a day of that year", |(year, day)| {
            NaiveDate::from_yo_opt(year, day)
        })
    }

    /// Strings shaped like ours, from pieces that are sometimes valid and sometimes nearly so.
    fn payload_like() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just(A.to_owned()),
            Just(A.to_uppercase()),
            Just(String::new()),
            any::<u16>().prop_map(|n| n.to_string()),
            Just("065535".to_owned()),
            Just("65536".to_owned()),
            any_query(6),
            prop::sample::select(vec![
                "shop", "p", "opt", "add", "cart", "qty", "rm", "pay", "take", "skip", "q", "human", "help",
            ])
            .prop_map(str::to_owned),
        ];
        (
            prop::sample::select(vec!["tc1", "tc2", "tc", "GET_STARTED", "tc1:", ""]),
            prop::collection::vec(piece, 0..5),
        )
            .prop_map(|(head, pieces)| {
                std::iter::once(head.to_owned())
                    .chain(pieces)
                    .collect::<Vec<_>>()
                    .join(":")
            })
    }

    proptest! {
        #[test]
        fn decoding_an_encoded_payload_gives_it_back(payload in any_payload(200)) {
            // 200 characters of at most 4 bytes each always fit, so nothing is cut.
            prop_assert_eq!(decode(&encode(&payload)), Ok(payload));
        }

        #[test]
        fn an_encoded_payload_never_exceeds_the_maximum(payload in any_payload(1500)) {
            let text = encode(&payload);
            prop_assert!(text.len() <= MAX_PAYLOAD, "{} bytes", text.len());
            prop_assert!(text.chars().count() <= MAX_PAYLOAD);
        }

        #[test]
        fn a_cut_query_is_the_longest_prefix_that_fits(query in any_query(1500), page in any::<u16>()) {
            let text = encode(&Payload::Search { query: query.clone(), page });
            let decoded = decode(&text);
            let Ok(Payload::Search { query: cut, page: decoded_page }) = decoded else {
                return Err(TestCaseError::fail(format!("{text:?} did not decode to a search")));
            };
            prop_assert_eq!(decoded_page, page);
            let rest = query.strip_prefix(cut.as_str());
            prop_assert!(rest.is_some(), "the decoded query is not a prefix of the original");
            if let Some(next) = rest.and_then(|rest| rest.chars().next()) {
                let width = match next { '%' | ':' => 3, c => c.len_utf8() };
                prop_assert!(text.len() + width > MAX_PAYLOAD, "{next:?} would still have fit");
            }
        }

        #[test]
        fn decode_never_panics_on_any_text(text in "\\PC{0,1200}") {
            let _ = decode(&text);
        }

        #[test]
        fn decode_never_panics_on_text_that_starts_like_ours(rest in any_query(300)) {
            let _ = decode(&format!("tc1:{rest}"));
            let _ = decode(&format!("tc1:q:0:{rest}"));
        }

        #[test]
        fn whatever_decodes_encodes_back_to_the_same_string(text in payload_like()) {
            if let Ok(payload) = decode(&text) {
                prop_assert_eq!(encode(&payload), text);
            }
        }
    }
}
