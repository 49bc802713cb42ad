//! The neutral reply model: what the engine (and the checkout's notices, and agents) say to a shopper,
//! in no channel's wire format.
//!
//! A reply is text with quick replies, a carousel of cards, text above buttons, or a receipt. The model
//! keeps what was meant, whole (titles are not cut, long text is not split): each channel renders it
//! within its own limits and degrades what it cannot show (a receipt as text, buttons as quick
//! replies). The only limits here are the counts every channel we speak shares (Messenger's and
//! Instagram's: 10 cards, 3 buttons, 13 quick replies); pages of more are made here, with a "More"
//! entry of the caller's, so a channel never has to drop an item.
//!
//! Serialized, a reply is the web chat's message JSON (`text`, `quick_replies`, `cards`, `buttons`,
//! `receipt`), which is also what the thread's messages keep as their `content`.

use serde::{Deserialize, Serialize};

use crate::money::{Money, MoneyDto};

/// Most cards in one carousel.
pub const MAX_CARDS: usize = 10;
/// Most buttons on a card or under a text.
pub const MAX_BUTTONS: usize = 3;
/// Most quick replies on one message.
pub const MAX_QUICK_REPLIES: usize = 13;

/// One message to the shopper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Text, with quick replies shown until the next message.
    Text {
        /// The text, never blank.
        text: String,
        /// At most [`MAX_QUICK_REPLIES`].
        quick_replies: Vec<Choice>,
    },
    /// A carousel of 1 to [`MAX_CARDS`] cards.
    Cards(Vec<Card>),
    /// Text above 1 to [`MAX_BUTTONS`] buttons.
    Buttons {
        /// The text, never blank.
        text: String,
        /// The buttons.
        buttons: Vec<Action>,
    },
    /// An order's receipt.
    Receipt(Box<Receipt>),
    /// A utility message from a template Meta approved, for after the messaging window.
    Utility(Box<Utility>),
}

/// A utility message: the approved template's name and language, its placeholders' values in Meta's
/// order, and the body they fill (what the thread's records and channels without templates show).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Utility {
    /// The name Meta knows the template by.
    pub template: String,
    /// Its language.
    pub language: String,
    /// The values of `{{1}}`, `{{2}}` ...
    pub parameters: Vec<String>,
    /// The body, filled.
    pub text: String,
}

/// A quick reply: a title that sends `payload` back when tapped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Choice {
    /// What the shopper reads (and what the channel echoes back as the shopper's text).
    pub title: String,
    /// What comes back.
    pub payload: String,
}

/// A button on a card or under a text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Action {
    /// Sends `payload` back.
    Postback {
        /// The label.
        title: String,
        /// What comes back.
        payload: String,
    },
    /// Opens the payment page of an order (outside the conversation). Read before [`Action::Link`],
    /// whose fields it has too.
    Pay {
        /// The label ("Pay 59.90 EUR").
        title: String,
        /// Stripe's page.
        url: String,
        /// Always true: tells a client this link pays.
        pay: bool,
    },
    /// Opens a page.
    Link {
        /// The label.
        title: String,
        /// An http(s) URL.
        url: String,
    },
}

/// A card: a title with a subtitle, a picture, a page it opens and up to [`MAX_BUTTONS`] buttons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Card {
    /// The title.
    pub title: String,
    /// The line under it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtitle: Option<String>,
    /// An http(s) picture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    /// The http(s) page the card opens when tapped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_url: Option<String>,
    /// The buttons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buttons: Vec<Action>,
    /// The catalog item it shows (a product's variant's SKU, the retailer id of Meta's catalog), for
    /// channels that show the merchant's catalog themselves (WhatsApp's product messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_item: Option<String>,
}

/// An order confirmation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The shopper's name as printed on the receipt.
    pub recipient_name: String,
    /// Our order number.
    pub order_number: String,
    /// "Stripe", "Visa 4242" ...
    pub payment_method: String,
    /// When it was paid, in Unix seconds.
    pub timestamp_secs: Option<i64>,
    /// An http(s) page showing the order.
    pub order_url: Option<String>,
    /// The items.
    pub lines: Vec<ReceiptLine>,
    /// Named discounts, each a positive amount taken off.
    pub adjustments: Vec<(String, Money)>,
    /// The lines' sum before adjustments.
    pub subtotal: Option<Money>,
    /// The amount charged.
    pub total: Money,
}

/// One item of a receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptLine {
    /// Product name.
    pub title: String,
    /// Variant or detail.
    pub subtitle: Option<String>,
    /// Units.
    pub quantity: Option<u32>,
    /// The line's price.
    pub price: Money,
    /// An http(s) product picture.
    pub image_url: Option<String>,
}

/// The requested page of a list has no items (an old "More" button after the list shrank).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("page {page} has no items")]
pub struct EmptyPage {
    /// The page asked for, from 0.
    pub page: usize,
}

impl Reply {
    /// Text alone, or no reply when `text` is blank.
    pub fn text(text: &str) -> Vec<Reply> {
        Reply::text_with_choices(text, Vec::new())
    }

    /// Text with quick replies (no reply when `text` is blank: quick replies need a message).
    pub fn text_with_choices(text: &str, quick_replies: Vec<Choice>) -> Vec<Reply> {
        if text.trim().is_empty() {
            return Vec::new();
        }
        vec![Reply::Text {
            text: text.to_owned(),
            quick_replies,
        }]
    }

    /// Text above buttons.
    pub fn buttons(text: &str, buttons: Vec<Action>) -> Reply {
        Reply::Buttons {
            text: text.to_owned(),
            buttons,
        }
    }

    /// One card.
    pub fn card(card: Card) -> Reply {
        Reply::Cards(vec![card])
    }

    /// A carousel showing `page` of `cards`: up to [`MAX_CARDS`], or one fewer and `more(next_page)`.
    ///
    /// A list of at most 10 cards has a single page 0. A longer one shows 9 cards per page and leaves
    /// the tenth slot to the card `more` builds for the next page, except on the last page, which shows
    /// the remaining 1 to 10 cards.
    pub fn carousel(cards: &[Card], page: usize, more: impl Fn(usize) -> Card) -> Result<Reply, EmptyPage> {
        let (shown, next) = page_of(cards, page, MAX_CARDS)?;
        let mut shown = shown.to_vec();
        if let Some(next) = next {
            shown.push(more(next));
        }
        Ok(Reply::Cards(shown))
    }

    /// The text, if the reply has one.
    pub fn text_of(&self) -> Option<&str> {
        match self {
            Reply::Text { text, .. } | Reply::Buttons { text, .. } => Some(text),
            Reply::Utility(u) => Some(&u.text),
            Reply::Cards(_) | Reply::Receipt(_) => None,
        }
    }

    /// The reply as the web chat shows it and the thread's messages keep it.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(Wire::from(self)).unwrap_or(serde_json::Value::Null)
    }

    /// Reads a reply back from [`Reply::to_json`]'s text; `None` for anything else.
    pub fn from_json(text: &str) -> Option<Reply> {
        serde_json::from_str::<Wire>(text).ok()?.into_reply()
    }

    /// The reply in words, for a channel or a list that shows no structure: the text, the cards'
    /// titles and subtitles, the receipt's lines and total.
    pub fn to_plain_text(&self) -> String {
        match self {
            Reply::Text { text, .. } | Reply::Buttons { text, .. } => text.clone(),
            Reply::Cards(cards) => cards
                .iter()
                .map(|c| match &c.subtitle {
                    Some(s) => format!("{}: {s}", c.title),
                    None => c.title.clone(),
                })
                .collect::<Vec<_>>()
                .join("\n"),
            Reply::Receipt(r) => r.to_plain_text(),
            Reply::Utility(u) => u.text.clone(),
        }
    }
}

impl Choice {
    /// A quick reply.
    pub fn new(title: &str, payload: &str) -> Choice {
        Choice {
            title: title.to_owned(),
            payload: payload.to_owned(),
        }
    }
}

impl Action {
    /// A button that sends `payload` back.
    pub fn postback(title: &str, payload: &str) -> Action {
        Action::Postback {
            title: title.to_owned(),
            payload: payload.to_owned(),
        }
    }

    /// A button that opens `url`.
    pub fn link(title: &str, url: &str) -> Action {
        Action::Link {
            title: title.to_owned(),
            url: url.to_owned(),
        }
    }

    /// A button that opens the payment page `url`.
    pub fn pay(title: &str, url: &str) -> Action {
        Action::Pay {
            title: title.to_owned(),
            url: url.to_owned(),
            pay: true,
        }
    }

    /// The label.
    pub fn title(&self) -> &str {
        match self {
            Action::Postback { title, .. } | Action::Link { title, .. } | Action::Pay { title, .. } => title,
        }
    }
}

impl Card {
    /// A card with a title.
    pub fn new(title: &str) -> Card {
        Card {
            title: title.to_owned(),
            subtitle: None,
            image_url: None,
            default_url: None,
            buttons: Vec::new(),
            catalog_item: None,
        }
    }

    /// Sets the line under the title.
    pub fn subtitle(self, subtitle: &str) -> Card {
        Card {
            subtitle: Some(subtitle.to_owned()),
            ..self
        }
    }

    /// Sets the picture.
    pub fn image(self, url: &str) -> Card {
        Card {
            image_url: Some(url.to_owned()),
            ..self
        }
    }

    /// Sets the page the card opens.
    pub fn default_url(self, url: &str) -> Card {
        Card {
            default_url: Some(url.to_owned()),
            ..self
        }
    }

    /// Names the catalog item it shows.
    pub fn catalog_item(self, retailer_id: &str) -> Card {
        Card {
            catalog_item: Some(retailer_id.to_owned()),
            ..self
        }
    }

    /// Adds a button.
    pub fn button(mut self, button: Action) -> Card {
        self.buttons.push(button);
        self
    }
}

impl Receipt {
    /// The receipt as text: a line per item, the adjustments, the total.
    pub fn to_plain_text(&self) -> String {
        let mut text = format!("Receipt {} for {}", self.order_number, self.recipient_name);
        for line in &self.lines {
            let detail = line
                .subtitle
                .as_deref()
                .map(|s| format!(" ({s})"))
                .unwrap_or_default();
            let units = line.quantity.map(|q| format!(" × {q}")).unwrap_or_default();
            text.push_str(&format!("\n{}{detail}{units}: {}", line.title, line.price));
        }
        for (name, amount) in &self.adjustments {
            text.push_str(&format!("\n{name}: -{amount}"));
        }
        text.push_str(&format!("\nTotal: {}", self.total));
        text
    }
}

/// A reply's JSON: the web chat's message, and the thread's stored message.
#[derive(Debug, Serialize, Deserialize)]
struct Wire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    quick_replies: Vec<Choice>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    cards: Vec<Card>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    buttons: Vec<Action>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    receipt: Option<ReceiptWire>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    utility: Option<Utility>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ReceiptWire {
    recipient_name: String,
    order_number: String,
    payment_method: String,
    timestamp: Option<i64>,
    order_url: Option<String>,
    lines: Vec<ReceiptLineWire>,
    adjustments: Vec<AdjustmentWire>,
    subtotal: Option<MoneyDto>,
    total: MoneyDto,
}

#[derive(Debug, Serialize, Deserialize)]
struct ReceiptLineWire {
    title: String,
    subtitle: Option<String>,
    quantity: Option<u32>,
    price: MoneyDto,
    image_url: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct AdjustmentWire {
    name: String,
    amount: MoneyDto,
}

impl From<&Reply> for Wire {
    fn from(reply: &Reply) -> Wire {
        let mut wire = Wire {
            text: None,
            quick_replies: Vec::new(),
            cards: Vec::new(),
            buttons: Vec::new(),
            receipt: None,
            utility: None,
        };
        match reply {
            Reply::Text { text, quick_replies } => {
                wire.text = Some(text.clone());
                wire.quick_replies = quick_replies.clone();
            }
            Reply::Cards(cards) => wire.cards = cards.clone(),
            Reply::Buttons { text, buttons } => {
                wire.text = Some(text.clone());
                wire.buttons = buttons.clone();
            }
            Reply::Utility(u) => {
                wire.text = Some(u.text.clone());
                wire.utility = Some((**u).clone());
            }
            Reply::Receipt(r) => {
                wire.receipt = Some(ReceiptWire {
                    recipient_name: r.recipient_name.clone(),
                    order_number: r.order_number.clone(),
                    payment_method: r.payment_method.clone(),
                    timestamp: r.timestamp_secs,
                    order_url: r.order_url.clone(),
                    lines: r
                        .lines
                        .iter()
                        .map(|l| ReceiptLineWire {
                            title: l.title.clone(),
                            subtitle: l.subtitle.clone(),
                            quantity: l.quantity,
                            price: l.price.into(),
                            image_url: l.image_url.clone(),
                        })
                        .collect(),
                    adjustments: r
                        .adjustments
                        .iter()
                        .map(|(name, amount)| AdjustmentWire {
                            name: name.clone(),
                            amount: (*amount).into(),
                        })
                        .collect(),
                    subtotal: r.subtotal.map(MoneyDto::from),
                    total: r.total.into(),
                })
            }
        }
        wire
    }
}

impl Wire {
    fn into_reply(self) -> Option<Reply> {
        if let Some(u) = self.utility {
            return Some(Reply::Utility(Box::new(u)));
        }
        if let Some(r) = self.receipt {
            let lines = r
                .lines
                .into_iter()
                .map(|l| {
                    Some(ReceiptLine {
                        title: l.title,
                        subtitle: l.subtitle,
                        quantity: l.quantity,
                        price: l.price.parse_amount().ok()?,
                        image_url: l.image_url,
                    })
                })
                .collect::<Option<Vec<_>>>()?;
            let adjustments = r
                .adjustments
                .into_iter()
                .map(|a| Some((a.name, a.amount.parse_amount().ok()?)))
                .collect::<Option<Vec<_>>>()?;
            let subtotal = match r.subtotal {
                Some(s) => Some(s.parse_amount().ok()?),
                None => None,
            };
            return Some(Reply::Receipt(Box::new(Receipt {
                recipient_name: r.recipient_name,
                order_number: r.order_number,
                payment_method: r.payment_method,
                timestamp_secs: r.timestamp,
                order_url: r.order_url,
                lines,
                adjustments,
                subtotal,
                total: r.total.parse_amount().ok()?,
            })));
        }
        if !self.cards.is_empty() {
            return Some(Reply::Cards(self.cards));
        }
        let text = self.text?;
        if self.buttons.is_empty() {
            Some(Reply::Text {
                text,
                quick_replies: self.quick_replies,
            })
        } else {
            Some(Reply::Buttons {
                text,
                buttons: self.buttons,
            })
        }
    }
}

/// The quick replies for `page` of `items`: up to [`MAX_QUICK_REPLIES`], or one fewer and
/// `more(next_page)` when more remain (see [`Reply::carousel`] for the pages).
pub fn paginate_choices<T>(
    items: &[T],
    page: usize,
    to_choice: impl Fn(&T) -> Choice,
    more: impl Fn(usize) -> Choice,
) -> Result<Vec<Choice>, EmptyPage> {
    let (shown, next) = page_of(items, page, MAX_QUICK_REPLIES)?;
    let mut choices: Vec<Choice> = shown.iter().map(to_choice).collect();
    if let Some(next) = next {
        choices.push(more(next));
    }
    Ok(choices)
}

/// The slice of `items` shown on `page` when at most `max` entries fit, and the next page if any.
///
/// Every page but the last shows `max - 1` items, leaving the last slot to a "more" entry; a list
/// that fits in `max` has a single page and needs no "more".
fn page_of<T>(items: &[T], page: usize, max: usize) -> Result<(&[T], Option<usize>), EmptyPage> {
    let empty = || EmptyPage { page };
    let per_page = max.saturating_sub(1).max(1);
    let pages = match items.len() {
        0 => 0,
        len => 1 + len.saturating_sub(max).div_ceil(per_page),
    };
    if page >= pages {
        return Err(empty());
    }
    let rest = page
        .checked_mul(per_page)
        .and_then(|start| items.get(start..))
        .ok_or_else(empty)?;
    if page + 1 == pages {
        Ok((rest, None))
    } else {
        Ok((rest.get(..per_page).ok_or_else(empty)?, Some(page + 1)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::money::Currency;

    fn cards(n: usize) -> Vec<Card> {
        (1..=n).map(|i| Card::new(&format!("Card {i}"))).collect()
    }

    fn titles(reply: &Reply) -> Vec<String> {
        match reply {
            Reply::Cards(cards) => cards.iter().map(|c| c.title.clone()).collect(),
            other => panic!("expected cards, got {other:?}"),
        }
    }

    #[test]
    fn a_carousel_of_25_cards_pages_by_nine_with_a_more_card_and_ends_with_the_last_seven() {
        let all = cards(25);
        let more = |next: usize| Card::new(&format!("More {next}"));

        let first = Reply::carousel(&all, 0, more).unwrap();
        let last = Reply::carousel(&all, 2, more).unwrap();

        assert_eq!(titles(&first).len(), 10);
        assert_eq!(titles(&first)[9], "More 1");
        assert_eq!(
            titles(&last),
            (19..=25).map(|i| format!("Card {i}")).collect::<Vec<_>>()
        );
        assert_eq!(Reply::carousel(&all, 3, more), Err(EmptyPage { page: 3 }));
    }

    #[test]
    fn ten_cards_fit_on_one_page_without_more() {
        let reply = Reply::carousel(&cards(10), 0, |_| Card::new("More")).unwrap();

        assert_eq!(titles(&reply).len(), 10);
        assert!(!titles(&reply).contains(&"More".to_owned()));
    }

    #[test]
    fn choices_past_thirteen_page_by_twelve_with_more() {
        let items: Vec<u32> = (1..=20).collect();
        let page = paginate_choices(
            &items,
            0,
            |i| Choice::new(&i.to_string(), &format!("p{i}")),
            |next| Choice::new("More", &format!("more{next}")),
        )
        .unwrap();

        assert_eq!(page.len(), 13);
        assert_eq!(page[12], Choice::new("More", "more1"));
    }

    fn sizes(items: &[u32], page: usize) -> Result<Vec<Choice>, EmptyPage> {
        paginate_choices(
            items,
            page,
            |size| Choice::new(&format!("EU {size}"), &format!("SIZE:{size}")),
            |next| Choice::new("More sizes", &format!("SIZES_PAGE:{next}")),
        )
    }

    fn payloads(choices: &[Choice]) -> Vec<&str> {
        choices.iter().map(|c| c.payload.as_str()).collect()
    }

    #[test]
    fn thirteen_choices_fit_on_one_page_without_more() {
        let items: Vec<u32> = (30..43).collect();
        let page = sizes(&items, 0).unwrap();
        assert_eq!(page.len(), 13);
        assert_eq!(page[12].payload, "SIZE:42");
        assert_eq!(sizes(&items, 1), Err(EmptyPage { page: 1 }));
    }

    #[test]
    fn the_last_page_of_choices_takes_up_to_thirteen_and_the_middle_ones_twelve_and_more() {
        let items: Vec<u32> = (1..=30).collect();
        let (first, second, last) = (
            sizes(&items, 0).unwrap(),
            sizes(&items, 1).unwrap(),
            sizes(&items, 2).unwrap(),
        );
        assert_eq!(payloads(&first)[11..], ["SIZE:12", "SIZES_PAGE:1"]);
        assert_eq!(payloads(&second)[11..], ["SIZE:24", "SIZES_PAGE:2"]);
        assert_eq!(
            payloads(&last),
            ["SIZE:25", "SIZE:26", "SIZE:27", "SIZE:28", "SIZE:29", "SIZE:30"]
        );
        let short: Vec<u32> = (1..=25).collect();
        assert_eq!(sizes(&short, 1).unwrap().len(), 13);
    }

    #[test]
    fn a_page_past_the_end_or_of_nothing_is_refused() {
        let items: Vec<u32> = (1..=30).collect();
        assert_eq!(sizes(&items, 3), Err(EmptyPage { page: 3 }));
        assert_eq!(sizes(&items, usize::MAX), Err(EmptyPage { page: usize::MAX }));
        assert_eq!(sizes(&[], 0), Err(EmptyPage { page: 0 }));
        assert_eq!(
            Reply::carousel(&[], 0, |_| Card::new("More")),
            Err(EmptyPage { page: 0 })
        );
    }

    proptest::proptest! {
        #[test]
        fn following_more_pages_shows_every_item_once(len in 0_usize..100, max in 2_usize..15) {
            let items: Vec<usize> = (0..len).collect();
            let mut seen = Vec::new();
            let mut page = Some(0);
            while let Some(current) = page.filter(|_| len > 0) {
                let (shown, next) = page_of(&items, current, max).unwrap();
                proptest::prop_assert!(!shown.is_empty());
                proptest::prop_assert!(shown.len() + usize::from(next.is_some()) <= max);
                seen.extend_from_slice(shown);
                page = next;
                if next.is_none() {
                    proptest::prop_assert_eq!(page_of(&items, current + 1, max), Err(EmptyPage { page: current + 1 }));
                }
            }
            proptest::prop_assert_eq!(seen, items);
        }
    }

    #[test]
    fn blank_text_makes_no_reply() {
        assert!(Reply::text("  \n").is_empty());
        assert_eq!(Reply::text("Hi").len(), 1);
    }

    #[test]
    fn a_reply_serializes_to_the_web_chat_message_shape() {
        let eur = Currency::parse("EUR").unwrap();
        let text = Reply::text_with_choices("Which size?", vec![Choice::new("42", "tc1:add:x")]);
        let pay = Reply::buttons(
            "Pay securely:",
            vec![Action::pay("Pay 49.90 EUR", "https://pay.example/x")],
        );
        let card = Reply::card(
            Card::new("Comfy slippers")
                .subtitle("49.90 EUR")
                .button(Action::postback("Choose size", "tc1:opt:x:0")),
        );
        let receipt = Reply::Receipt(Box::new(Receipt {
            recipient_name: "Anna".into(),
            order_number: "CS-00001".into(),
            payment_method: "Stripe".into(),
            timestamp_secs: None,
            order_url: None,
            lines: vec![ReceiptLine {
                title: "Comfy slippers".into(),
                subtitle: Some("42".into()),
                quantity: Some(1),
                price: Money::from_minor(4990, eur),
                image_url: None,
            }],
            adjustments: Vec::new(),
            subtotal: None,
            total: Money::from_minor(4990, eur),
        }));

        assert_eq!(
            text[0].to_json(),
            serde_json::json!({"text": "Which size?", "quick_replies": [{"title": "42", "payload": "tc1:add:x"}]})
        );
        assert_eq!(
            pay.to_json(),
            serde_json::json!({"text": "Pay securely:",
                "buttons": [{"title": "Pay 49.90 EUR", "url": "https://pay.example/x", "pay": true}]})
        );
        assert_eq!(
            card.to_json(),
            serde_json::json!({"cards": [{"title": "Comfy slippers", "subtitle": "49.90 EUR",
                "buttons": [{"title": "Choose size", "payload": "tc1:opt:x:0"}]}]})
        );
        assert_eq!(
            receipt.to_json()["receipt"]["total"],
            serde_json::json!({"amount": "49.90", "currency": "EUR"})
        );
        for reply in [&text[0], &pay, &card, &receipt] {
            assert_eq!(
                Reply::from_json(&reply.to_json().to_string()).as_ref(),
                Some(reply)
            );
        }
        assert_eq!(
            receipt.to_plain_text(),
            "Receipt CS-00001 for Anna\nComfy slippers (42) × 1: 49.90 EUR\nTotal: 49.90 EUR"
        );
    }
}
