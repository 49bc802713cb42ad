//! Typed builders for Send API `message` objects that Meta cannot reject for their shape or length, and
//! [`render`], which turns a neutral [`Reply`] into them within a channel's limits.
//!
//! Messenger and Instagram share the Send API and most of its limits; Instagram takes text of at most
//! 1000 bytes (Messenger: 2000 characters) and has no receipt template, so a receipt goes to an
//! Instagram shopper as text (see `fixtures/reference/meta.md`).
//!
//! The Send API refuses a message that breaks one of its limits. The shopper then never sees the
//! reply, and we only find out from a log line after the conversation has moved on. So every
//! documented limit on text, quick replies, buttons, and the generic, button and receipt templates
//! is enforced here, in one place. Display text is cut on a grapheme boundary and gets an ellipsis.
//! Anything that cannot be shortened without changing its meaning (payloads, URLs, amounts,
//! currencies) is refused with a `RenderError`. Lengths are counted in Unicode scalar values
//! (`chars()`), as Meta counts characters. Amounts leave as JSON numbers written from `Money`'s
//! exact decimal string, never through a float.

use serde::Serialize;
use serde_json::value::RawValue;
use unicode_segmentation::UnicodeSegmentation;

use crate::engine::reply::{self, Reply};
use crate::kernel::Channel;
use crate::money::{Currency, Money};

/// Longest `text` message; longer text goes out as several messages.
const MAX_TEXT_CHARS: usize = 2000;
/// Most quick replies on one message.
const MAX_QUICK_REPLIES: usize = 13;
/// Longest quick reply or button title.
const MAX_TITLE_CHARS: usize = 20;
/// Longest quick reply or postback payload.
const MAX_PAYLOAD_CHARS: usize = 1000;
/// Longest `metadata`: Meta wants fewer than 1000 characters.
const MAX_METADATA_CHARS: usize = 999;
/// Most buttons on a card or a button template.
const MAX_BUTTONS: usize = 3;
/// Longest card or receipt line title or subtitle.
const MAX_ELEMENT_CHARS: usize = 80;
/// Most elements in a generic template (a carousel).
const MAX_CAROUSEL_CARDS: usize = 10;
/// Longest button template text.
const MAX_BUTTON_TEXT_CHARS: usize = 640;
/// Most lines on a receipt.
const MAX_RECEIPT_LINES: usize = 100;
/// Latest accepted receipt timestamp (year 5138): a larger value is almost surely in milliseconds,
/// the unit of webhook timestamps, where the receipt wants seconds.
const MAX_TIMESTAMP_SECS: i64 = 99_999_999_999;
/// Marks text that had to be cut.
const ELLIPSIS: char = '…';

/// One Send API `message` object: text or a template, with optional quick replies and metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    /// The `text` or `attachment` key.
    #[serde(flatten)]
    content: Content,
    /// Chips shown until the next message.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    quick_replies: Vec<QuickReply>,
    /// Echoed back in `message_echoes`, so we can recognise our own sends.
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<String>,
}

/// What a message carries: Meta takes exactly one of `text` and `attachment`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Content {
    /// Plain text of at most `MAX_TEXT_CHARS`.
    Text(String),
    /// A template.
    Attachment(Attachment),
    /// A utility message from a template Meta approved for the Page (`messaging_type: UTILITY`).
    Template(UtilityTemplate),
}

/// `{"name", "language": {"code"}, "components": [{"type": "body", "parameters": [...]}]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct UtilityTemplate {
    name: String,
    language: LanguageCode,
    components: Vec<Component>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct LanguageCode {
    code: String,
}

/// A template component: the body's parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct Component {
    #[serde(rename = "type")]
    kind: &'static str,
    parameters: Vec<TextParameter>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct TextParameter {
    #[serde(rename = "type")]
    kind: &'static str,
    text: String,
}

/// `{"type": ..., "payload": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "payload", rename_all = "snake_case")]
enum Attachment {
    /// A structured template.
    Template(Template),
}

/// A template payload, tagged by `template_type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "template_type", rename_all = "snake_case")]
enum Template {
    /// One card or a carousel of cards.
    Generic {
        /// 1 to `MAX_CAROUSEL_CARDS` cards.
        elements: Vec<Element>,
    },
    /// Text with 1 to 3 buttons.
    Button {
        /// At most `MAX_BUTTON_TEXT_CHARS`.
        text: String,
        /// 1 to `MAX_BUTTONS`.
        buttons: Vec<Button>,
    },
    /// An order confirmation.
    Receipt(Box<ReceiptPayload>),
}

/// A tappable reply shown above the composer until the next message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuickReply {
    /// Always `text` for now: the only kind that carries our payload.
    content_type: ContentType,
    /// At most `MAX_TITLE_CHARS`.
    title: String,
    /// Comes back in `message.quick_reply.payload`.
    payload: String,
    /// Icon shown before the title.
    #[serde(skip_serializing_if = "Option::is_none")]
    image_url: Option<String>,
}

/// The quick reply kinds we send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum ContentType {
    /// A titled chip that sends a payload.
    Text,
}

/// A button on a card or a button template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Button(ButtonKind);

/// The button kinds we send; private so that a button can only be built by the checking constructors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ButtonKind {
    /// Sends `payload` back as a `messaging_postbacks` event.
    Postback {
        /// At most `MAX_TITLE_CHARS`.
        title: String,
        /// At most `MAX_PAYLOAD_CHARS`.
        payload: String,
    },
    /// Opens a page in the in-app browser.
    WebUrl {
        /// An http(s) URL.
        url: String,
        /// At most `MAX_TITLE_CHARS`.
        title: String,
    },
}

/// The wire shape of a card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct Element {
    title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    subtitle: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    default_action: Option<DefaultAction>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    buttons: Vec<Button>,
}

/// What tapping a card does: a URL button without a title.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum DefaultAction {
    /// Opens `url`.
    WebUrl {
        /// An http(s) URL.
        url: String,
    },
}

/// An order confirmation to render as a receipt template; every amount must be in `total`'s currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The shopper's name as printed on the receipt.
    pub recipient_name: String,
    /// Our order reference; Meta wants it unique.
    pub order_number: String,
    /// Free text such as "Visa 4242".
    pub payment_method: String,
    /// When the order was placed, in Unix seconds (not the milliseconds of webhooks).
    pub timestamp_secs: Option<i64>,
    /// An http(s) page showing the order.
    pub order_url: Option<String>,
    /// The items ordered, at most 100.
    pub elements: Vec<ReceiptLine>,
    /// Named discounts, each a positive amount that Meta shows as taken off.
    pub adjustments: Vec<(String, Money)>,
    /// Sum of the lines before adjustments, shipping and tax.
    pub subtotal: Option<Money>,
    /// Shipping cost.
    pub shipping: Option<Money>,
    /// Tax.
    pub tax: Option<Money>,
    /// The amount charged; its currency is the receipt's currency.
    pub total: Money,
}

/// One item on a receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptLine {
    /// Product name, cut to 80 characters.
    pub title: String,
    /// Variant or detail, cut to 80 characters.
    pub subtitle: Option<String>,
    /// Number of units.
    pub quantity: Option<u32>,
    /// Price of the line; zero is allowed, negative is not.
    pub price: Money,
    /// An http(s) product picture.
    pub image_url: Option<String>,
}

/// The wire shape of a receipt template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct ReceiptPayload {
    recipient_name: String,
    order_number: String,
    currency: &'static str,
    payment_method: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    order_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    elements: Vec<ReceiptElement>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    adjustments: Vec<Adjustment>,
    summary: Summary,
}

/// The wire shape of a receipt line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct ReceiptElement {
    title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    subtitle: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    quantity: Option<u32>,
    price: Amount,
    currency: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    image_url: Option<String>,
}

/// The wire shape of a receipt adjustment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct Adjustment {
    name: String,
    amount: Amount,
}

/// The wire shape of a receipt summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct Summary {
    #[serde(skip_serializing_if = "Option::is_none")]
    subtotal: Option<Amount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    shipping_cost: Option<Amount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    total_tax: Option<Amount>,
    total_cost: Amount,
}

/// A JSON number written verbatim from `Money::amount_string`, so "59.90" keeps its digits and
/// never passes through an `f64`.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
struct Amount(Box<RawValue>);

impl PartialEq for Amount {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

impl Eq for Amount {}

/// Why a message could not be rendered within Meta's limits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// A required text was empty or only whitespace.
    #[error("{field} must not be empty")]
    Empty {
        /// The Send API field.
        field: &'static str,
    },
    /// A payload is longer than Meta accepts; payloads are never cut, they would stop matching.
    #[error("payload has {chars} characters; at most {max} are allowed")]
    PayloadTooLong {
        /// Characters given.
        chars: usize,
        /// Characters allowed.
        max: usize,
    },
    /// The metadata is longer than Meta accepts.
    #[error("metadata has {chars} characters; at most {max} are allowed")]
    MetadataTooLong {
        /// Characters given.
        chars: usize,
        /// Characters allowed.
        max: usize,
    },
    /// A URL is not an absolute http:// or https:// URL.
    #[error("{field} must be an absolute http:// or https:// URL")]
    InvalidUrl {
        /// The Send API field.
        field: &'static str,
    },
    /// More quick replies than fit on one message; `reply::paginate_choices` pages them.
    #[error("{count} quick replies given; at most {max} fit on a message")]
    TooManyQuickReplies {
        /// Replies given.
        count: usize,
        /// Replies allowed.
        max: usize,
    },
    /// The request could not be written as JSON.
    #[error("the message could not be written as JSON: {0}")]
    Json(String),
    /// More cards than a carousel takes.
    #[error("{count} cards given; at most {max} fit in a carousel")]
    TooManyCards {
        /// Cards given.
        count: usize,
        /// Cards allowed.
        max: usize,
    },
    /// More buttons than a card or a button template takes.
    #[error("{count} buttons given; at most {max} are allowed")]
    TooManyButtons {
        /// Buttons given.
        count: usize,
        /// Buttons allowed.
        max: usize,
    },
    /// A card has nothing but a title, which Meta refuses.
    #[error("a card needs a subtitle, an image, a default URL or a button besides its title")]
    CardTitleOnly,
    /// More receipt lines than Meta accepts.
    #[error("{count} receipt lines given; at most {max} are allowed")]
    TooManyReceiptLines {
        /// Lines given.
        count: usize,
        /// Lines allowed.
        max: usize,
    },
    /// A receipt amount is not in the total's currency.
    #[error("{field} is in {found} but the receipt total is in {expected}")]
    CurrencyMismatch {
        /// The Send API field.
        field: &'static str,
        /// The total's currency.
        expected: &'static str,
        /// The amount's currency.
        found: &'static str,
    },
    /// A receipt amount is below zero.
    #[error("{field} must not be negative")]
    NegativeAmount {
        /// The Send API field.
        field: &'static str,
    },
    /// A receipt timestamp is negative or too large to be in seconds.
    #[error("timestamp must be Unix seconds between 0 and {MAX_TIMESTAMP_SECS}")]
    InvalidTimestamp,
    /// An amount did not form a JSON number.
    #[error("{field} is not a valid JSON number")]
    InvalidAmount {
        /// The Send API field.
        field: &'static str,
    },
}

impl RenderError {
    /// Stable snake_case identifier for logs and API error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            RenderError::Empty { .. } => "empty_field",
            RenderError::PayloadTooLong { .. } => "payload_too_long",
            RenderError::MetadataTooLong { .. } => "metadata_too_long",
            RenderError::InvalidUrl { .. } => "invalid_url",
            RenderError::TooManyQuickReplies { .. } => "too_many_quick_replies",
            RenderError::TooManyButtons { .. } => "too_many_buttons",
            RenderError::TooManyCards { .. } => "too_many_cards",
            RenderError::Json(_) => "json",
            RenderError::CardTitleOnly => "card_title_only",
            RenderError::TooManyReceiptLines { .. } => "too_many_receipt_lines",
            RenderError::CurrencyMismatch { .. } => "currency_mismatch",
            RenderError::NegativeAmount { .. } => "negative_amount",
            RenderError::InvalidTimestamp => "invalid_timestamp",
            RenderError::InvalidAmount { .. } => "invalid_amount",
        }
    }
}

impl Message {
    /// A message with no quick replies and no metadata.
    fn new(content: Content) -> Message {
        Message {
            content,
            quick_replies: Vec::new(),
            metadata: None,
        }
    }

    /// A template message.
    fn template(template: Template) -> Message {
        Message::new(Content::Attachment(Attachment::Template(template)))
    }

    /// Text messages for `body`: one if it fits in 2000 characters, else several cut where a word ends.
    ///
    /// Blank text yields no message, since Meta refuses an empty one. A body that fits is sent as
    /// given. A longer one is trimmed and cut at the last whitespace before the limit (the
    /// whitespace at a cut is dropped), or, in a run with no whitespace, at the last grapheme
    /// boundary. Only a single grapheme cluster longer than the limit is cut between characters.
    pub fn text(body: &str) -> Vec<Message> {
        split_text_by(body, MAX_TEXT_CHARS, Measure::Chars)
            .into_iter()
            .map(|chunk| Message::new(Content::Text(chunk.to_owned())))
            .collect()
    }

    /// Like `text`, with the quick replies on the last message; blank text or over 13 replies is refused.
    pub fn text_with_quick_replies(
        body: &str,
        replies: Vec<QuickReply>,
    ) -> Result<Vec<Message>, RenderError> {
        if replies.len() > MAX_QUICK_REPLIES {
            return Err(RenderError::TooManyQuickReplies {
                count: replies.len(),
                max: MAX_QUICK_REPLIES,
            });
        }
        let mut messages = Message::text(body);
        // Quick replies cannot ride alone: they need a message to attach to.
        let last = messages.last_mut().ok_or(RenderError::Empty { field: "text" })?;
        last.quick_replies = replies;
        Ok(messages)
    }

    /// A button template: `text` cut to 640 characters, above 1 to 3 buttons.
    pub fn buttons(text: &str, buttons: Vec<Button>) -> Result<Message, RenderError> {
        let text = cut_required(text, MAX_BUTTON_TEXT_CHARS, "text")?;
        if buttons.is_empty() {
            return Err(RenderError::Empty { field: "buttons" });
        }
        check_button_count(&buttons)?;
        Ok(Message::template(Template::Button { text, buttons }))
    }

    /// A receipt template in the total's currency, with amounts as exact JSON numbers.
    pub fn receipt(receipt: Receipt) -> Result<Message, RenderError> {
        let currency = receipt.total.currency();
        let count = receipt.elements.len();
        if count > MAX_RECEIPT_LINES {
            return Err(RenderError::TooManyReceiptLines {
                count,
                max: MAX_RECEIPT_LINES,
            });
        }
        let elements = receipt
            .elements
            .iter()
            .map(|line| receipt_element(line, currency))
            .collect::<Result<Vec<_>, _>>()?;
        let adjustments = receipt
            .adjustments
            .iter()
            .map(|(name, money)| {
                Ok(Adjustment {
                    name: non_blank(name, "adjustments.name")?,
                    amount: amount(*money, currency, "adjustments.amount")?,
                })
            })
            .collect::<Result<Vec<_>, RenderError>>()?;
        let optional_amount =
            |money: Option<Money>, field| money.map(|money| amount(money, currency, field)).transpose();
        let summary = Summary {
            subtotal: optional_amount(receipt.subtotal, "summary.subtotal")?,
            shipping_cost: optional_amount(receipt.shipping, "summary.shipping_cost")?,
            total_tax: optional_amount(receipt.tax, "summary.total_tax")?,
            total_cost: amount(receipt.total, currency, "summary.total_cost")?,
        };
        let timestamp = receipt
            .timestamp_secs
            .map(|secs| match secs {
                0..=MAX_TIMESTAMP_SECS => Ok(secs.to_string()),
                _ => Err(RenderError::InvalidTimestamp),
            })
            .transpose()?;
        let payload = ReceiptPayload {
            recipient_name: non_blank(&receipt.recipient_name, "recipient_name")?,
            order_number: non_blank(&receipt.order_number, "order_number")?,
            currency: currency.code(),
            payment_method: non_blank(&receipt.payment_method, "payment_method")?,
            order_url: optional_url(receipt.order_url.as_deref(), "order_url")?,
            timestamp,
            elements,
            adjustments,
            summary,
        };
        Ok(Message::template(Template::Receipt(Box::new(payload))))
    }

    /// The text of a text message, for recording it on the thread; `None` for a template.
    pub fn as_text(&self) -> Option<&str> {
        match &self.content {
            Content::Text(text) => Some(text),
            Content::Attachment(_) | Content::Template(_) => None,
        }
    }

    /// This message with the Send API `metadata` (1 to 999 characters) that echoes carry back.
    pub fn with_metadata(self, metadata: &str) -> Result<Message, RenderError> {
        if metadata.is_empty() {
            return Err(RenderError::Empty { field: "metadata" });
        }
        let chars = metadata.chars().count();
        if chars > MAX_METADATA_CHARS {
            return Err(RenderError::MetadataTooLong {
                chars,
                max: MAX_METADATA_CHARS,
            });
        }
        Ok(Message {
            metadata: Some(metadata.to_owned()),
            ..self
        })
    }
}

impl QuickReply {
    /// A text quick reply: the title is cut to 20 characters, the payload (at most 1000) never is.
    ///
    /// An empty payload is refused even though Meta allows one with an image: we route on payloads.
    pub fn text(title: &str, payload: &str) -> Result<QuickReply, RenderError> {
        Ok(QuickReply {
            content_type: ContentType::Text,
            title: cut_required(title, MAX_TITLE_CHARS, "title")?,
            payload: checked_payload(payload)?,
            image_url: None,
        })
    }

    /// This reply with an icon (at least 24×24 px) at an http(s) `url`.
    pub fn with_image(self, url: &str) -> Result<QuickReply, RenderError> {
        Ok(QuickReply {
            image_url: Some(web_url(url, "image_url")?),
            ..self
        })
    }
}

impl Button {
    /// A button that sends `payload` (at most 1000 characters) back as a postback; title cut to 20.
    pub fn postback(title: &str, payload: &str) -> Result<Button, RenderError> {
        Ok(Button(ButtonKind::Postback {
            title: cut_required(title, MAX_TITLE_CHARS, "title")?,
            payload: checked_payload(payload)?,
        }))
    }

    /// A button that opens an http(s) `url` in the in-app browser; title cut to 20.
    pub fn url(title: &str, url: &str) -> Result<Button, RenderError> {
        Ok(Button(ButtonKind::WebUrl {
            url: web_url(url, "url")?,
            title: cut_required(title, MAX_TITLE_CHARS, "title")?,
        }))
    }
}

/// A neutral card as a Send API card, checked against Meta's limits.
fn element(card: &reply::Card) -> Result<Element, RenderError> {
    let buttons = card.buttons.iter().map(button).collect::<Result<Vec<_>, _>>()?;
    check_button_count(&buttons)?;
    let title = cut_required(&card.title, MAX_ELEMENT_CHARS, "title")?;
    let subtitle = optional_cut(card.subtitle.as_deref(), MAX_ELEMENT_CHARS);
    let image_url = optional_url(card.image_url.as_deref(), "image_url")?;
    let default_action = optional_url(card.default_url.as_deref(), "default_action.url")?
        .map(|url| DefaultAction::WebUrl { url });
    if subtitle.is_none() && image_url.is_none() && default_action.is_none() && buttons.is_empty() {
        return Err(RenderError::CardTitleOnly);
    }
    Ok(Element {
        title,
        subtitle,
        image_url,
        default_action,
        buttons,
    })
}

/// `text` shortened to at most `max_chars` characters on a grapheme boundary, ending in `…` when cut.
///
/// Characters are Unicode scalar values, as Meta counts them; a grapheme cluster (a flag, an
/// accented letter, a ZWJ family) is kept whole or dropped whole. Whitespace before the ellipsis
/// is dropped so that it stays attached to the last word. Text that fits is returned unchanged.
pub fn cut(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let Some(budget) = max_chars.checked_sub(1) else {
        return String::new();
    };
    let mut used = 0;
    let mut end = 0;
    for (start, grapheme) in text.grapheme_indices(true) {
        let chars = grapheme.chars().count();
        if used + chars > budget {
            break;
        }
        used += chars;
        end = start + grapheme.len();
    }
    let head = trim_blank_end(text.get(..end).unwrap_or_default());
    format!("{head}{ELLIPSIS}")
}

/// A required display text, cut to `max_chars`; blank is `Empty`.
fn cut_required(text: &str, max_chars: usize, field: &'static str) -> Result<String, RenderError> {
    if is_blank(text) {
        return Err(RenderError::Empty { field });
    }
    Ok(cut(text, max_chars))
}

/// An optional display text, cut to `max_chars`; a blank one is left out rather than sent empty.
fn optional_cut(text: Option<&str>, max_chars: usize) -> Option<String> {
    text.filter(|text| !is_blank(text))
        .map(|text| cut(text, max_chars))
}

/// A required text that has no length limit and must not be altered; blank is `Empty`.
fn non_blank(text: &str, field: &'static str) -> Result<String, RenderError> {
    if is_blank(text) {
        return Err(RenderError::Empty { field });
    }
    Ok(text.to_owned())
}

/// A quick reply or postback payload, which must come back exactly as sent, so is never cut.
fn checked_payload(payload: &str) -> Result<String, RenderError> {
    if is_blank(payload) {
        return Err(RenderError::Empty { field: "payload" });
    }
    let chars = payload.chars().count();
    if chars > MAX_PAYLOAD_CHARS {
        return Err(RenderError::PayloadTooLong {
            chars,
            max: MAX_PAYLOAD_CHARS,
        });
    }
    Ok(payload.to_owned())
}

/// An absolute http(s) URL with a host and no whitespace; the URL is not echoed in the error,
/// since ours can carry signed tokens.
fn web_url(url: &str, field: &'static str) -> Result<String, RenderError> {
    let after_scheme = ["https://", "http://"].iter().find_map(|scheme| {
        url.get(..scheme.len())
            .filter(|head| head.eq_ignore_ascii_case(scheme))
            .and_then(|_| url.get(scheme.len()..))
    });
    let has_host = after_scheme
        .and_then(|rest| rest.split(['/', '?', '#']).next())
        .is_some_and(|host| !host.is_empty());
    if has_host && !url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Ok(url.to_owned())
    } else {
        Err(RenderError::InvalidUrl { field })
    }
}

/// An optional http(s) URL.
fn optional_url(url: Option<&str>, field: &'static str) -> Result<Option<String>, RenderError> {
    url.map(|url| web_url(url, field)).transpose()
}

/// Fails unless there are at most `MAX_BUTTONS` buttons.
fn check_button_count(buttons: &[Button]) -> Result<(), RenderError> {
    if buttons.len() > MAX_BUTTONS {
        return Err(RenderError::TooManyButtons {
            count: buttons.len(),
            max: MAX_BUTTONS,
        });
    }
    Ok(())
}

/// The wire line for a receipt in `currency`.
fn receipt_element(line: &ReceiptLine, currency: Currency) -> Result<ReceiptElement, RenderError> {
    Ok(ReceiptElement {
        title: cut_required(&line.title, MAX_ELEMENT_CHARS, "elements.title")?,
        subtitle: optional_cut(line.subtitle.as_deref(), MAX_ELEMENT_CHARS),
        quantity: line.quantity,
        price: amount(line.price, currency, "elements.price")?,
        currency: currency.code(),
        image_url: optional_url(line.image_url.as_deref(), "elements.image_url")?,
    })
}

/// `money` as a JSON number in its currency's precision, if it is non-negative and in `currency`.
fn amount(money: Money, currency: Currency, field: &'static str) -> Result<Amount, RenderError> {
    if money.currency() != currency {
        return Err(RenderError::CurrencyMismatch {
            field,
            expected: currency.code(),
            found: money.currency().code(),
        });
    }
    if money.is_negative() {
        return Err(RenderError::NegativeAmount { field });
    }
    RawValue::from_string(money.amount_string())
        .map(Amount)
        .map_err(|_| RenderError::InvalidAmount { field })
}

/// How a channel counts the length of text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Measure {
    /// Unicode scalar values (Messenger).
    Chars,
    /// UTF-8 bytes (Instagram).
    Bytes,
}

impl Measure {
    fn of(self, text: &str) -> usize {
        match self {
            Measure::Chars => text.chars().count(),
            Measure::Bytes => text.len(),
        }
    }
}

/// Splits `body` into non-blank chunks of at most `max_chars` characters (see `Message::text`).
#[cfg(test)]
fn split_text(body: &str, max_chars: usize) -> Vec<&str> {
    split_text_by(body, max_chars, Measure::Chars)
}

/// Splits `body` into non-blank chunks of at most `max` in `measure` (see `Message::text`).
fn split_text_by(body: &str, max: usize, measure: Measure) -> Vec<&str> {
    if is_blank(body) {
        return Vec::new();
    }
    if measure.of(body) <= max {
        return vec![body];
    }
    let mut chunks = Vec::new();
    let mut rest = trim_blank_start(body);
    while !rest.is_empty() {
        if measure.of(rest) <= max {
            chunks.push(trim_blank_end(rest));
            break;
        }
        let (chunk, next) = split_once(rest, max, measure);
        // Only a cut inside an oversized cluster such as "\r\n" at a limit of 1 can leave a blank head.
        if !is_blank(chunk) {
            chunks.push(chunk);
        }
        rest = trim_blank_start(next);
    }
    chunks
}

/// Cuts a head of at most `max` (in `measure`) off `text`, which starts with a non-blank grapheme and
/// is longer than that: at the last whitespace that fits, else at the last grapheme boundary.
fn split_once(text: &str, max: usize, measure: Measure) -> (&str, &str) {
    let max = max.max(1);
    let mut used = 0;
    let mut fitting_end = 0;
    let mut content_end = 0;
    let mut word_end = None;
    for (start, grapheme) in text.grapheme_indices(true) {
        let blank = is_blank(grapheme);
        // Checked before the fit test: whitespace just past the limit still ends the word before it.
        if blank && content_end > 0 {
            word_end = Some(content_end);
        }
        let size = measure.of(grapheme);
        if used + size > max {
            break;
        }
        used += size;
        fitting_end = start + grapheme.len();
        if !blank {
            content_end = fitting_end;
        }
    }
    let cut_at = match (word_end, fitting_end) {
        (Some(end), _) => end,
        // A single grapheme longer than the limit: cut between its characters, at least one.
        (None, 0) => {
            let mut end = 0;
            for (index, c) in text.char_indices() {
                let next = index + c.len_utf8();
                if end > 0 && text.get(..next).is_some_and(|head| measure.of(head) > max) {
                    break;
                }
                end = next;
            }
            end
        }
        (None, end) => end,
    };
    text.split_at_checked(cut_at).unwrap_or((text, ""))
}

/// Whether `text` is empty or only whitespace.
fn is_blank(text: &str) -> bool {
    text.chars().all(char::is_whitespace)
}

/// `text` without its leading whitespace graphemes.
fn trim_blank_start(text: &str) -> &str {
    let start = text
        .grapheme_indices(true)
        .find(|(_, grapheme)| !is_blank(grapheme))
        .map_or(text.len(), |(index, _)| index);
    text.get(start..).unwrap_or_default()
}

/// `text` without its trailing whitespace graphemes (whole graphemes, so no cluster is split).
fn trim_blank_end(text: &str) -> &str {
    let end = text
        .grapheme_indices(true)
        .rev()
        .find(|(_, grapheme)| !is_blank(grapheme))
        .map_or(0, |(index, grapheme)| index + grapheme.len());
    text.get(..end).unwrap_or_default()
}

/// What a channel of the Send API accepts beyond the shared limits.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// Longest text message.
    max_text: usize,
    /// How text is measured.
    measure: Measure,
    /// Whether the receipt template exists.
    receipt: bool,
}

impl Limits {
    fn of(channel: Channel) -> Limits {
        match channel {
            // Instagram: "Message text must be UTF-8 and be 1,000 bytes or less"; no receipt template.
            Channel::Instagram => Limits {
                max_text: 1000,
                measure: Measure::Bytes,
                receipt: false,
            },
            Channel::Messenger | Channel::Webchat | Channel::Whatsapp => Limits {
                max_text: MAX_TEXT_CHARS,
                measure: Measure::Chars,
                receipt: true,
            },
        }
    }

    /// Text messages for `body`, the quick replies on the last one.
    fn text(self, body: &str, quick_replies: Vec<QuickReply>) -> Result<Vec<Message>, RenderError> {
        if quick_replies.len() > MAX_QUICK_REPLIES {
            return Err(RenderError::TooManyQuickReplies {
                count: quick_replies.len(),
                max: MAX_QUICK_REPLIES,
            });
        }
        let mut messages: Vec<Message> = split_text_by(body, self.max_text, self.measure)
            .into_iter()
            .map(|chunk| Message::new(Content::Text(chunk.to_owned())))
            .collect();
        if !quick_replies.is_empty() {
            let last = messages.last_mut().ok_or(RenderError::Empty { field: "text" })?;
            last.quick_replies = quick_replies;
        }
        Ok(messages)
    }
}

/// A neutral button as a Send API button.
fn button(action: &reply::Action) -> Result<Button, RenderError> {
    match action {
        reply::Action::Postback { title, payload } => Button::postback(title, payload),
        reply::Action::Link { title, url } | reply::Action::Pay { title, url, .. } => Button::url(title, url),
    }
}

/// The Send API messages that say `reply` on `channel` (Messenger or Instagram), in order: long text in
/// several messages, a receipt as text where the channel has no receipt template.
pub fn render(reply: &Reply, channel: Channel) -> Result<Vec<Message>, RenderError> {
    let limits = Limits::of(channel);
    match reply {
        Reply::Text { text, quick_replies } => {
            let quick_replies = quick_replies
                .iter()
                .map(|c| QuickReply::text(&c.title, &c.payload))
                .collect::<Result<Vec<_>, _>>()?;
            limits.text(text, quick_replies)
        }
        Reply::Cards(cards) => {
            if cards.len() > MAX_CAROUSEL_CARDS {
                return Err(RenderError::TooManyCards {
                    count: cards.len(),
                    max: MAX_CAROUSEL_CARDS,
                });
            }
            let elements = cards.iter().map(element).collect::<Result<Vec<_>, _>>()?;
            if elements.is_empty() {
                return Err(RenderError::Empty { field: "elements" });
            }
            Ok(vec![Message::template(Template::Generic { elements })])
        }
        Reply::Buttons { text, buttons } => {
            let buttons = buttons.iter().map(button).collect::<Result<Vec<_>, _>>()?;
            Ok(vec![Message::buttons(text, buttons)?])
        }
        Reply::Receipt(receipt) if limits.receipt => Ok(vec![Message::receipt(Receipt {
            recipient_name: receipt.recipient_name.clone(),
            order_number: receipt.order_number.clone(),
            payment_method: receipt.payment_method.clone(),
            timestamp_secs: receipt.timestamp_secs,
            order_url: receipt.order_url.clone(),
            elements: receipt
                .lines
                .iter()
                .map(|l| ReceiptLine {
                    title: l.title.clone(),
                    subtitle: l.subtitle.clone(),
                    quantity: l.quantity,
                    price: l.price,
                    image_url: l.image_url.clone(),
                })
                .collect(),
            adjustments: receipt.adjustments.clone(),
            subtotal: receipt.subtotal,
            shipping: None,
            tax: None,
            total: receipt.total,
        })?]),
        Reply::Receipt(receipt) => limits.text(&receipt.to_plain_text(), Vec::new()),
        // Messenger's utility templates; Instagram has none, so the filled body goes as text.
        Reply::Utility(u) if channel == Channel::Messenger => {
            Ok(vec![Message::new(Content::Template(UtilityTemplate {
                name: u.template.clone(),
                language: LanguageCode {
                    code: u.language.clone(),
                },
                components: if u.parameters.is_empty() {
                    Vec::new()
                } else {
                    vec![Component {
                        kind: "body",
                        parameters: u
                            .parameters
                            .iter()
                            .map(|p| TextParameter {
                                kind: "text",
                                text: p.clone(),
                            })
                            .collect(),
                    }]
                },
            }))])
        }
        Reply::Utility(u) => limits.text(&u.text, Vec::new()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::engine::reply::{Action, Card};
    use proptest::prelude::*;

    fn json(value: &impl Serialize) -> String {
        serde_json::to_string_pretty(value).unwrap()
    }

    fn money(minor: i64, code: &str) -> Money {
        Money::from_minor(minor, Currency::parse(code).unwrap())
    }

    #[test]
    fn a_utility_message_is_messengers_template_and_instagrams_text() {
        let utility = Reply::Utility(Box::new(crate::engine::reply::Utility {
            template: "threadcart_order_paid_en".into(),
            language: "en".into(),
            parameters: vec!["Anna".into(), "CS-1042".into()],
            text: "Hi Anna, order CS-1042 is paid.".into(),
        }));
        let messenger = render(&utility, Channel::Messenger).unwrap();
        assert_eq!(
            serde_json::to_value(&messenger[0]).unwrap(),
            serde_json::json!({"template": {"name": "threadcart_order_paid_en", "language": {"code": "en"},
                "components": [{"type": "body", "parameters": [
                    {"type": "text", "text": "Anna"}, {"type": "text", "text": "CS-1042"}]}]}})
        );
        let instagram = render(&utility, Channel::Instagram).unwrap();
        assert_eq!(instagram[0].as_text(), Some("Hi Anna, order CS-1042 is paid."));
    }

    fn texts(messages: &[Message]) -> Vec<&str> {
        messages.iter().filter_map(Message::as_text).collect()
    }

    fn char_counts(chunks: &[&str]) -> Vec<usize> {
        chunks.iter().map(|chunk| chunk.chars().count()).collect()
    }

    fn hat(i: usize) -> Card {
        Card::new(&format!("Straw hat no. {i}"))
            .subtitle(&format!("{}.90 EUR", 20 + i))
            .button(Action::postback("Add to cart", &format!("CART_ADD:hat-{i}")))
    }

    fn more_hats(next_page: usize) -> Card {
        Card::new("More hats")
            .subtitle(&format!("Page {}", next_page + 1))
            .button(Action::postback("Show more", &format!("HATS_PAGE:{next_page}")))
    }

    /// Page `page` of `cards` as Messenger's one generic template.
    fn carousel(cards: &[Card], page: usize, more: impl Fn(usize) -> Card) -> Result<Message, RenderError> {
        let reply = Reply::carousel(cards, page, more).unwrap();
        let mut messages = render(&reply, Channel::Messenger)?;
        assert_eq!(messages.len(), 1);
        Ok(messages.remove(0))
    }

    fn line(title: &str, quantity: u32, price: Money) -> ReceiptLine {
        ReceiptLine {
            title: title.to_owned(),
            subtitle: None,
            quantity: Some(quantity),
            price,
            image_url: None,
        }
    }

    fn receipt(total: Money) -> Receipt {
        Receipt {
            recipient_name: "Ada Lovelace".to_owned(),
            order_number: "TC-1042".to_owned(),
            payment_method: "Visa 4242".to_owned(),
            timestamp_secs: None,
            order_url: None,
            elements: vec![line("Straw hat", 1, total)],
            adjustments: Vec::new(),
            subtotal: None,
            shipping: None,
            tax: None,
            total,
        }
    }

    /// Byte offsets where grapheme clusters of `text` start, plus its end.
    fn grapheme_boundaries(text: &str) -> Vec<usize> {
        let mut boundaries: Vec<usize> = text.grapheme_indices(true).map(|(index, _)| index).collect();
        boundaries.push(text.len());
        boundaries
    }

    fn offset_in(outer: &str, inner: &str) -> usize {
        inner.as_ptr() as usize - outer.as_ptr() as usize
    }

    // ---- the neutral model, per channel -------------------------------------------------------

    /// The replies of a shop's conversation, one of each shape.
    fn neutral_replies() -> Vec<Reply> {
        use crate::engine::reply::{Choice, Receipt as NReceipt, ReceiptLine as NLine};
        let eur = |minor| money(minor, "EUR");
        vec![
            Reply::text_with_choices(
                "Which size of Comfy slippers?",
                vec![
                    Choice::new("42", "tc1:add:42"),
                    Choice::new("Sea-view Honeymoon Suite", "tc1:room:1"),
                ],
            )
            .remove(0),
            Reply::Cards(vec![
                Card::new("Comfy slippers")
                    .subtitle("49.90 EUR")
                    .image("https://example.com/slip-01.jpg")
                    .default_url("https://example.com/slippers")
                    .button(Action::postback("Choose size", "tc1:opt:1:0")),
            ]),
            Reply::buttons(
                "Your order CS-00001 comes to 49.90 EUR. Pay securely on Stripe:",
                vec![Action::pay(
                    "Pay 49.90 EUR",
                    "https://checkout.stripe.com/c/pay/cs_test_1",
                )],
            ),
            Reply::Receipt(Box::new(NReceipt {
                recipient_name: "Anna".into(),
                order_number: "CS-00001".into(),
                payment_method: "Stripe".into(),
                timestamp_secs: Some(1_765_000_000),
                order_url: None,
                lines: vec![NLine {
                    title: "Comfy slippers".into(),
                    subtitle: Some("42".into()),
                    quantity: Some(1),
                    price: eur(4990),
                    image_url: None,
                }],
                adjustments: vec![("Code WELCOME10".into(), eur(499))],
                subtotal: Some(eur(4990)),
                total: eur(4491),
            })),
        ]
    }

    fn rendered(channel: Channel) -> Vec<Message> {
        neutral_replies()
            .iter()
            .flat_map(|r| render(r, channel).unwrap())
            .collect()
    }

    #[test]
    fn messenger_renders_every_reply_shape_with_its_templates() {
        insta::assert_snapshot!(json(&rendered(Channel::Messenger)));
    }

    #[test]
    fn instagram_renders_the_same_replies_with_a_receipt_as_text() {
        let messages = rendered(Channel::Instagram);
        assert!(
            messages
                .iter()
                .all(|m| !json(m).contains("\"template_type\": \"receipt\""))
        );
        insta::assert_snapshot!(json(&messages));
    }

    #[test]
    fn the_web_chat_shows_the_neutral_replies_as_they_are() {
        let shown: Vec<serde_json::Value> = neutral_replies().iter().map(Reply::to_json).collect();
        insta::assert_snapshot!(json(&shown));
    }

    #[test]
    fn instagram_text_is_cut_into_messages_of_at_most_1000_bytes() {
        // 600 two-byte letters: 1200 bytes, within Messenger's 2000 characters.
        let text = "é".repeat(300) + " " + &"é".repeat(300);
        let reply = Reply::text(&text).remove(0);

        let instagram = render(&reply, Channel::Instagram).unwrap();
        let messenger = render(&reply, Channel::Messenger).unwrap();

        assert_eq!(messenger.len(), 1);
        assert_eq!(instagram.len(), 2);
        assert!(texts(&instagram).iter().all(|t| t.len() <= 1000));
        assert_eq!(texts(&instagram).concat(), text.replace(' ', ""));
    }

    #[test]
    fn more_than_ten_cards_are_refused_rather_than_cut() {
        let cards: Vec<Card> = (0..11)
            .map(|i| Card::new(&format!("Card {i}")).subtitle("x"))
            .collect();
        assert_eq!(
            render(&Reply::Cards(cards), Channel::Messenger),
            Err(RenderError::TooManyCards { count: 11, max: 10 })
        );
    }

    // ---- cut --------------------------------------------------------------------------------

    #[test]
    fn cut_returns_text_that_fits_unchanged() {
        assert_eq!(cut("Red", 20), "Red");
        assert_eq!(cut("exactly twenty chars", 20), "exactly twenty chars");
        assert_eq!(cut("", 20), "");
    }

    #[test]
    fn cut_ends_long_text_with_an_ellipsis_within_the_limit() {
        let title = cut("Extra large straw hat with ribbon", 20);
        assert_eq!(title, "Extra large straw h…");
        assert_eq!(title.chars().count(), 20);
    }

    #[test]
    fn cut_drops_whitespace_before_the_ellipsis() {
        assert_eq!(cut("Straw hat with ribbon", 11), "Straw hat…");
    }

    #[test]
    fn cut_never_splits_a_flag_an_accent_or_a_zwj_family() {
        // Each flag is two scalar values: the third one does not fit before the ellipsis.
        assert_eq!(cut("🇫🇷🇩🇪🇮🇹🇪🇸", 6), "🇫🇷🇩🇪…");
        assert_eq!(cut("🇫🇷🇩🇪🇮🇹🇪🇸", 5), "🇫🇷🇩🇪…");
        assert_eq!(cut("Cafe\u{301} crème", 5), "Caf…");
        let family = "👨\u{200d}👩\u{200d}👧\u{200d}👦";
        assert_eq!(family.chars().count(), 7);
        assert_eq!(cut(&format!("Hi {family}!"), 9), "Hi…");
        assert_eq!(cut(&format!("Hi {family}!!"), 11), format!("Hi {family}…"));
    }

    #[test]
    fn cut_to_zero_characters_is_empty() {
        assert_eq!(cut("anything", 0), "");
    }

    // ---- text -------------------------------------------------------------------------------

    #[test]
    fn short_text_is_one_message_with_the_body_unchanged() {
        let messages = Message::text("Your cart has 2 items.\nTotal: 59.90 EUR ");
        assert_eq!(messages.len(), 1);
        insta::assert_snapshot!(json(&messages));
    }

    #[test]
    fn blank_text_yields_no_message() {
        assert!(Message::text("").is_empty());
        assert!(Message::text(" \n\t ").is_empty());
    }

    #[test]
    fn text_of_exactly_2000_characters_is_one_message() {
        let body = "é".repeat(2000);
        assert_eq!(texts(&Message::text(&body)), vec![body.as_str()]);
    }

    #[test]
    fn text_over_2000_characters_is_split_at_the_last_whitespace_before_the_limit() {
        // 333 "hello " fill 1998 characters; the 334th word straddles the limit.
        let body = ["hello"; 700].join(" ");
        assert_eq!(body.chars().count(), 4199);
        let messages = Message::text(&body);
        let chunks = texts(&messages);
        assert_eq!(char_counts(&chunks), vec![1997, 1997, 203]);
        assert!(
            chunks
                .iter()
                .all(|chunk| chunk.starts_with("hello") && chunk.ends_with("hello"))
        );
        assert_eq!(chunks.join(" "), body);
    }

    #[test]
    fn a_newline_is_a_place_to_split_too() {
        let body = format!("{}\n{}", "a".repeat(1500), "b".repeat(1500));
        let messages = Message::text(&body);
        assert_eq!(texts(&messages), vec!["a".repeat(1500), "b".repeat(1500)]);
    }

    #[test]
    fn text_without_whitespace_is_split_between_graphemes() {
        // The flag's two scalar values would straddle the limit, so it opens the second message.
        let body = format!("{}🇫🇷{}", "x".repeat(1999), "y".repeat(10));
        let messages = Message::text(&body);
        assert_eq!(
            texts(&messages),
            vec!["x".repeat(1999), format!("🇫🇷{}", "y".repeat(10))]
        );
    }

    #[test]
    fn a_word_ending_exactly_at_the_limit_stays_whole() {
        let body = format!("{} {}", "a".repeat(2000), "b".repeat(5));
        let messages = Message::text(&body);
        assert_eq!(texts(&messages), vec!["a".repeat(2000), "b".repeat(5)]);
    }

    #[test]
    fn a_single_grapheme_longer_than_the_limit_is_split_between_characters() {
        let zalgo = format!("a{}", "\u{301}".repeat(2500));
        let chunks = split_text(&zalgo, MAX_TEXT_CHARS);
        assert_eq!(char_counts(&chunks), vec![2000, 501]);
        assert_eq!(chunks.concat(), zalgo);
    }

    #[test]
    fn a_cut_inside_an_oversized_cluster_never_yields_a_blank_chunk() {
        // A space followed by a spacing mark is one grapheme of two characters.
        assert_eq!(split_text(" \u{d4a}", 1), vec!["\u{d4a}"]);
        assert_eq!(split_text("a\r\nb", 1), vec!["a", "b"]);
    }

    #[test]
    fn long_text_loses_its_outer_whitespace_only() {
        let body = format!("  \n{} {}  \n", "a".repeat(1500), "b".repeat(1500));
        let messages = Message::text(&body);
        assert_eq!(texts(&messages), vec!["a".repeat(1500), "b".repeat(1500)]);
    }

    // ---- quick replies ----------------------------------------------------------------------

    #[test]
    fn quick_replies_with_a_cut_title_and_an_image_render_on_the_text() {
        let replies = vec![
            QuickReply::text("Red", "COLOR:red")
                .unwrap()
                .with_image("https://shop.example/img/red.png")
                .unwrap(),
            QuickReply::text("Midnight blue with silver stripes", "COLOR:midnight-blue").unwrap(),
        ];
        let messages = Message::text_with_quick_replies("Pick a colour", replies).unwrap();
        insta::assert_snapshot!(json(&messages));
    }

    #[test]
    fn quick_reply_titles_are_cut_to_20_characters_with_an_ellipsis() {
        let reply = QuickReply::text("Midnight blue with silver stripes", "COLOR:midnight-blue").unwrap();
        assert_eq!(reply.title, "Midnight blue with…");
        assert!(reply.title.chars().count() <= 20);
    }

    #[test]
    fn quick_replies_ride_on_the_last_chunk_of_long_text() {
        let body = ["hello"; 700].join(" ");
        let replies = vec![QuickReply::text("Yes", "YES").unwrap()];
        let messages = Message::text_with_quick_replies(&body, replies.clone()).unwrap();
        assert_eq!(messages.len(), 3);
        assert!(
            messages
                .iter()
                .take(2)
                .all(|message| message.quick_replies.is_empty())
        );
        assert_eq!(messages.last().unwrap().quick_replies, replies);
    }

    #[test]
    fn more_than_13_quick_replies_are_refused() {
        let replies = vec![QuickReply::text("Yes", "YES").unwrap(); 14];
        let error = Message::text_with_quick_replies("Pick one", replies).unwrap_err();
        assert_eq!(error, RenderError::TooManyQuickReplies { count: 14, max: 13 });
        let thirteen = vec![QuickReply::text("Yes", "YES").unwrap(); 13];
        assert!(Message::text_with_quick_replies("Pick one", thirteen).is_ok());
    }

    #[test]
    fn quick_replies_need_text_to_ride_on() {
        let replies = vec![QuickReply::text("Yes", "YES").unwrap()];
        let error = Message::text_with_quick_replies("  ", replies).unwrap_err();
        assert_eq!(error, RenderError::Empty { field: "text" });
    }

    #[test]
    fn a_quick_reply_needs_a_title_and_a_payload() {
        assert_eq!(
            QuickReply::text("", "YES"),
            Err(RenderError::Empty { field: "title" })
        );
        assert_eq!(
            QuickReply::text(" ", "YES"),
            Err(RenderError::Empty { field: "title" })
        );
        assert_eq!(
            QuickReply::text("Yes", ""),
            Err(RenderError::Empty { field: "payload" })
        );
    }

    #[test]
    fn a_payload_over_1000_characters_is_refused_not_cut() {
        let payload = "é".repeat(1001);
        assert_eq!(
            QuickReply::text("Yes", &payload),
            Err(RenderError::PayloadTooLong {
                chars: 1001,
                max: 1000
            })
        );
        let fits = "é".repeat(1000);
        assert_eq!(QuickReply::text("Yes", &fits).unwrap().payload, fits);
    }

    #[test]
    fn a_quick_reply_image_must_be_an_http_url() {
        let reply = QuickReply::text("Red", "COLOR:red").unwrap();
        assert_eq!(
            reply.with_image("ftp://shop.example/red.png"),
            Err(RenderError::InvalidUrl { field: "image_url" })
        );
    }

    // ---- buttons ----------------------------------------------------------------------------

    #[test]
    fn buttons_serialize_as_postback_and_web_url() {
        let postback = Button::postback("Add to cart", "CART_ADD:hat-1").unwrap();
        let url = Button::url("See the shop", "https://shop.example/hats").unwrap();
        assert_eq!(
            serde_json::to_string(&postback).unwrap(),
            r#"{"type":"postback","title":"Add to cart","payload":"CART_ADD:hat-1"}"#
        );
        assert_eq!(
            serde_json::to_string(&url).unwrap(),
            r#"{"type":"web_url","url":"https://shop.example/hats","title":"See the shop"}"#
        );
    }

    #[test]
    fn button_titles_are_cut_to_20_characters() {
        let button = Button::postback("Add the extra large hat to cart", "CART_ADD:hat-xl").unwrap();
        let ButtonKind::Postback { title, .. } = &button.0 else {
            panic!("not a postback")
        };
        assert_eq!(title, "Add the extra large…");
    }

    #[test]
    fn a_url_button_needs_an_absolute_http_url() {
        for url in [
            "shop.example/hats",
            "ftp://shop.example",
            "https://",
            "http:///path",
            "https://a b.example",
        ] {
            assert_eq!(
                Button::url("Shop", url),
                Err(RenderError::InvalidUrl { field: "url" }),
                "{url}"
            );
        }
        assert!(Button::url("Shop", "HTTPS://shop.example").is_ok());
        assert!(Button::url("Shop", "http://localhost:8080/x?y=1").is_ok());
    }

    #[test]
    fn a_postback_payload_over_1000_characters_is_refused() {
        assert_eq!(
            Button::postback("Buy", &"x".repeat(1001)),
            Err(RenderError::PayloadTooLong {
                chars: 1001,
                max: 1000
            })
        );
    }

    #[test]
    fn a_button_template_renders_text_and_buttons() {
        let message = Message::buttons(
            "Your cart is ready: 2 items, 59.90 EUR.",
            vec![
                Button::url("Pay now", "https://pay.example/c/abc").unwrap(),
                Button::postback("Keep shopping", "BROWSE").unwrap(),
            ],
        )
        .unwrap();
        insta::assert_snapshot!(json(&message));
    }

    #[test]
    fn button_template_text_is_cut_to_640_characters() {
        let message =
            Message::buttons(&"word ".repeat(200), vec![Button::postback("OK", "OK").unwrap()]).unwrap();
        let Content::Attachment(Attachment::Template(Template::Button { text, .. })) = &message.content
        else {
            panic!("not a button template")
        };
        assert_eq!(text.chars().count(), 640);
        assert!(text.ends_with("word…"));
    }

    #[test]
    fn a_button_template_takes_one_to_three_buttons() {
        let ok = Button::postback("OK", "OK").unwrap();
        assert_eq!(
            Message::buttons("Sure?", vec![]),
            Err(RenderError::Empty { field: "buttons" })
        );
        assert_eq!(
            Message::buttons("Sure?", vec![ok.clone(); 4]),
            Err(RenderError::TooManyButtons { count: 4, max: 3 })
        );
        assert!(Message::buttons("Sure?", vec![ok.clone(); 3]).is_ok());
        assert_eq!(
            Message::buttons(" ", vec![ok]),
            Err(RenderError::Empty { field: "text" })
        );
    }

    // ---- carousel ---------------------------------------------------------------------------

    #[test]
    fn carousel_of_25_cards_page_0_shows_9_cards_and_more() {
        let cards: Vec<Card> = (1..=25).map(hat).collect();
        let message = carousel(&cards, 0, more_hats).unwrap();
        insta::assert_snapshot!(json(&message));
    }

    #[test]
    fn carousel_of_25_cards_page_1_shows_9_cards_and_more() {
        let cards: Vec<Card> = (1..=25).map(hat).collect();
        let message = carousel(&cards, 1, more_hats).unwrap();
        insta::assert_snapshot!(json(&message));
    }

    #[test]
    fn carousel_of_25_cards_page_2_shows_the_last_7() {
        let cards: Vec<Card> = (1..=25).map(hat).collect();
        let message = carousel(&cards, 2, more_hats).unwrap();
        insta::assert_snapshot!(json(&message));
    }

    #[test]
    fn ten_cards_fit_in_one_carousel_without_more() {
        let cards: Vec<Card> = (1..=10).map(hat).collect();
        let message = carousel(&cards, 0, more_hats).unwrap();
        let Content::Attachment(Attachment::Template(Template::Generic { elements })) = &message.content
        else {
            panic!("not a generic template")
        };
        assert_eq!(elements.len(), 10);
        assert_eq!(elements.last().unwrap().title, "Straw hat no. 10");
    }

    #[test]
    fn a_card_with_every_property_renders_them_all() {
        let card =
            Card::new("Panama hat, hand-woven in Ecuador from toquilla straw, with a black band and a box")
                .subtitle("Sizes 55 to 61")
                .image("https://shop.example/img/panama.jpg")
                .default_url("https://shop.example/p/panama")
                .button(Action::link("View", "https://shop.example/p/panama"))
                .button(Action::postback("Add to cart", "CART_ADD:panama"));
        let message = carousel(&[card], 0, more_hats).unwrap();
        insta::assert_snapshot!(json(&message));
    }

    #[test]
    fn card_titles_and_subtitles_are_cut_to_80_characters() {
        let long = "Panama hat ".repeat(10);
        let shown = element(&Card::new(&long).subtitle(&long)).unwrap();
        assert_eq!(shown.title.chars().count(), 80);
        assert!(shown.title.ends_with('…'));
        assert_eq!(shown.subtitle.unwrap().chars().count(), 80);
    }

    #[test]
    fn a_card_with_only_a_title_is_refused() {
        assert_eq!(element(&Card::new("Hat")), Err(RenderError::CardTitleOnly));
        assert_eq!(
            element(&Card::new("Hat").subtitle("  ")),
            Err(RenderError::CardTitleOnly)
        );
        assert!(element(&Card::new("Hat").default_url("https://shop.example")).is_ok());
    }

    #[test]
    fn a_card_with_more_than_three_buttons_is_refused() {
        let card = (0..4).fold(Card::new("Hat"), |card, _| {
            card.button(Action::postback("OK", "OK"))
        });
        assert_eq!(
            element(&card),
            Err(RenderError::TooManyButtons { count: 4, max: 3 })
        );
    }

    #[test]
    fn a_card_needs_a_title_and_http_urls() {
        assert_eq!(
            element(&Card::new("").subtitle("x")),
            Err(RenderError::Empty { field: "title" })
        );
        assert_eq!(
            element(&Card::new("Hat").image("/img/hat.jpg")),
            Err(RenderError::InvalidUrl { field: "image_url" })
        );
        assert_eq!(
            element(&Card::new("Hat").default_url("javascript:alert(1)")),
            Err(RenderError::InvalidUrl {
                field: "default_action.url"
            })
        );
    }

    #[test]
    fn an_invalid_more_card_fails_the_carousel() {
        let cards: Vec<Card> = (1..=25).map(hat).collect();
        assert_eq!(
            carousel(&cards, 0, |_| Card::new("More")),
            Err(RenderError::CardTitleOnly)
        );
    }

    // ---- receipt ----------------------------------------------------------------------------

    #[test]
    fn receipt_in_eur_renders_amounts_with_two_decimals() {
        let receipt = Receipt {
            recipient_name: "Ada Lovelace".to_owned(),
            order_number: "TC-1042".to_owned(),
            payment_method: "Visa 4242".to_owned(),
            timestamp_secs: Some(1_767_225_600),
            order_url: Some("https://shop.example/orders/TC-1042".to_owned()),
            elements: vec![
                ReceiptLine {
                    title: "Straw hat".to_owned(),
                    subtitle: Some("Size 57, natural".to_owned()),
                    quantity: Some(2),
                    price: money(5000, "EUR"),
                    image_url: Some("https://shop.example/img/straw.jpg".to_owned()),
                },
                line("Hat box", 1, money(0, "EUR")),
            ],
            adjustments: vec![("Welcome discount".to_owned(), money(500, "EUR"))],
            subtotal: Some(money(5000, "EUR")),
            shipping: Some(money(490, "EUR")),
            tax: Some(money(1000, "EUR")),
            total: money(5990, "EUR"),
        };
        let message = Message::receipt(receipt).unwrap();
        insta::assert_snapshot!(json(&message));
    }

    #[test]
    fn receipt_in_jpy_renders_amounts_without_decimals() {
        let mut receipt = receipt(money(5990, "JPY"));
        receipt.shipping = Some(money(500, "JPY"));
        let message = Message::receipt(receipt).unwrap();
        insta::assert_snapshot!(json(&message));
    }

    #[test]
    fn receipt_in_kwd_renders_amounts_with_three_decimals() {
        let mut receipt = receipt(money(1250, "KWD"));
        receipt.tax = Some(money(5, "KWD"));
        let message = Message::receipt(receipt).unwrap();
        insta::assert_snapshot!(json(&message));
    }

    #[test]
    fn receipt_amounts_are_json_numbers_not_strings() {
        let message = Message::receipt(receipt(money(5990, "EUR"))).unwrap();
        let compact = serde_json::to_string(&message).unwrap();
        assert!(compact.contains(r#""summary":{"total_cost":59.90}"#), "{compact}");
        assert!(compact.contains(r#""price":59.90,"currency":"EUR""#), "{compact}");
    }

    #[test]
    fn a_receipt_amount_in_another_currency_is_refused() {
        let mut mixed = receipt(money(5990, "EUR"));
        mixed.shipping = Some(money(490, "USD"));
        assert_eq!(
            Message::receipt(mixed),
            Err(RenderError::CurrencyMismatch {
                field: "summary.shipping_cost",
                expected: "EUR",
                found: "USD"
            })
        );
        let mut line_in_usd = receipt(money(5990, "EUR"));
        line_in_usd.elements = vec![line("Hat", 1, money(5990, "USD"))];
        assert_eq!(
            Message::receipt(line_in_usd).unwrap_err().code(),
            "currency_mismatch"
        );
    }

    #[test]
    fn a_negative_receipt_amount_is_refused() {
        let mut discount = receipt(money(5990, "EUR"));
        discount.adjustments = vec![("Coupon".to_owned(), money(-500, "EUR"))];
        assert_eq!(
            Message::receipt(discount),
            Err(RenderError::NegativeAmount {
                field: "adjustments.amount"
            })
        );
    }

    #[test]
    fn a_receipt_takes_at_most_100_lines() {
        let mut big = receipt(money(100, "EUR"));
        big.elements = vec![line("Pin", 1, money(1, "EUR")); 101];
        assert_eq!(
            Message::receipt(big.clone()),
            Err(RenderError::TooManyReceiptLines { count: 101, max: 100 })
        );
        big.elements.truncate(100);
        assert!(Message::receipt(big).is_ok());
    }

    #[test]
    fn a_receipt_timestamp_must_be_in_seconds() {
        let mut in_millis = receipt(money(100, "EUR"));
        in_millis.timestamp_secs = Some(1_767_225_600_000);
        assert_eq!(Message::receipt(in_millis), Err(RenderError::InvalidTimestamp));
        let mut negative = receipt(money(100, "EUR"));
        negative.timestamp_secs = Some(-1);
        assert_eq!(Message::receipt(negative), Err(RenderError::InvalidTimestamp));
    }

    #[test]
    fn a_receipt_needs_its_required_texts_and_an_http_order_url() {
        let mut unnamed = receipt(money(100, "EUR"));
        unnamed.order_number = " ".to_owned();
        assert_eq!(
            Message::receipt(unnamed),
            Err(RenderError::Empty {
                field: "order_number"
            })
        );
        let mut bad_url = receipt(money(100, "EUR"));
        bad_url.order_url = Some("shop.example/orders/1".to_owned());
        assert_eq!(
            Message::receipt(bad_url),
            Err(RenderError::InvalidUrl { field: "order_url" })
        );
    }

    // ---- metadata and errors ----------------------------------------------------------------

    #[test]
    fn metadata_is_sent_next_to_the_text() {
        let message = Message::text("Hi!")
            .pop()
            .unwrap()
            .with_metadata("tc:reply:42")
            .unwrap();
        assert_eq!(
            serde_json::to_string(&message).unwrap(),
            r#"{"text":"Hi!","metadata":"tc:reply:42"}"#
        );
    }

    #[test]
    fn only_text_messages_have_text() {
        let text = Message::text("Hi!").pop().unwrap();
        let template = Message::buttons("Sure?", vec![Button::postback("Yes", "YES").unwrap()]).unwrap();
        assert_eq!(text.as_text(), Some("Hi!"));
        assert_eq!(template.as_text(), None);
    }

    #[test]
    fn metadata_must_be_shorter_than_1000_characters() {
        let message = Message::text("Hi!").pop().unwrap();
        assert!(message.clone().with_metadata(&"m".repeat(999)).is_ok());
        assert_eq!(
            message.clone().with_metadata(&"m".repeat(1000)),
            Err(RenderError::MetadataTooLong {
                chars: 1000,
                max: 999
            })
        );
        assert_eq!(
            message.with_metadata(""),
            Err(RenderError::Empty { field: "metadata" })
        );
    }

    #[test]
    fn render_errors_have_distinct_stable_codes() {
        let errors = [
            RenderError::Empty { field: "text" },
            RenderError::PayloadTooLong {
                chars: 1001,
                max: 1000,
            },
            RenderError::MetadataTooLong {
                chars: 1000,
                max: 999,
            },
            RenderError::InvalidUrl { field: "url" },
            RenderError::TooManyQuickReplies { count: 14, max: 13 },
            RenderError::TooManyButtons { count: 4, max: 3 },
            RenderError::TooManyCards { count: 11, max: 10 },
            RenderError::CardTitleOnly,
            RenderError::TooManyReceiptLines { count: 101, max: 100 },
            RenderError::CurrencyMismatch {
                field: "x",
                expected: "EUR",
                found: "USD",
            },
            RenderError::NegativeAmount { field: "x" },
            RenderError::InvalidTimestamp,
            RenderError::InvalidAmount { field: "x" },
        ];
        let codes: Vec<&str> = errors.iter().map(RenderError::code).collect();
        assert_eq!(
            codes,
            [
                "empty_field",
                "payload_too_long",
                "metadata_too_long",
                "invalid_url",
                "too_many_quick_replies",
                "too_many_buttons",
                "too_many_cards",
                "card_title_only",
                "too_many_receipt_lines",
                "currency_mismatch",
                "negative_amount",
                "invalid_timestamp",
                "invalid_amount",
            ]
        );
        assert_eq!(
            RenderError::TooManyQuickReplies { count: 14, max: 13 }.to_string(),
            "14 quick replies given; at most 13 fit on a message"
        );
    }

    // ---- properties -------------------------------------------------------------------------

    /// Text built from pieces that stress segmentation: words, whitespace runs, combining marks,
    /// flags, skin tones, ZWJ families, CJK and arbitrary printable characters.
    fn tricky_text(max_pieces: usize) -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            4 => "[a-z]{1,9}",
            3 => prop::sample::select(vec![" ", "  ", "\n", "\r\n", " \n\t"]).prop_map(str::to_owned),
            2 => prop::sample::select(vec![
                "e\u{301}",
                "🇫🇷",
                "👍🏽",
                "👨\u{200d}👩\u{200d}👧\u{200d}👦",
                "日本語",
                "…",
                "\u{600}1",
            ])
            .prop_map(str::to_owned),
            1 => "\\PC{1,3}",
        ];
        prop::collection::vec(piece, 0..max_pieces).prop_map(|pieces| pieces.concat())
    }

    /// Checks every `split_text` invariant for `body` and `max_chars`.
    fn assert_split_is_lossless(body: &str, max_chars: usize) -> Result<(), TestCaseError> {
        let chunks = split_text(body, max_chars);
        let boundaries = grapheme_boundaries(body);
        let longest_grapheme = body.graphemes(true).map(|g| g.chars().count()).max().unwrap_or(0);
        let mut position = 0;
        for chunk in &chunks {
            prop_assert!(chunk.chars().count() <= max_chars);
            prop_assert!(!is_blank(chunk));
            let start = offset_in(body, chunk);
            prop_assert!(start >= position);
            // What lies between chunks is whitespace only: nothing else is lost.
            prop_assert!(is_blank(&body[position..start]));
            position = start + chunk.len();
            if longest_grapheme <= max_chars {
                prop_assert!(boundaries.binary_search(&start).is_ok());
                prop_assert!(boundaries.binary_search(&position).is_ok());
            }
        }
        prop_assert!(is_blank(&body[position..]));
        if is_blank(body) {
            prop_assert!(chunks.is_empty());
        } else if body.chars().count() <= max_chars {
            prop_assert_eq!(chunks, vec![body]);
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn cut_never_exceeds_the_limit(text in tricky_text(40), max in 0_usize..40) {
            prop_assert!(cut(&text, max).chars().count() <= max);
        }

        #[test]
        fn cut_returns_the_input_unchanged_when_it_fits(text in tricky_text(20)) {
            let chars = text.chars().count();
            prop_assert_eq!(cut(&text, chars), text.clone());
            prop_assert_eq!(cut(&text, chars + 5), text);
        }

        #[test]
        fn cut_keeps_a_prefix_that_ends_on_a_grapheme_boundary(text in tricky_text(40), max in 1_usize..40) {
            let short = cut(&text, max);
            if short != text {
                let head = short.strip_suffix(ELLIPSIS).unwrap();
                prop_assert!(text.starts_with(head));
                prop_assert!(grapheme_boundaries(&text).binary_search(&head.len()).is_ok());
            }
        }

        #[test]
        fn splitting_with_small_limits_loses_nothing_but_whitespace_at_cuts(
            body in tricky_text(120),
            max in 1_usize..40,
        ) {
            assert_split_is_lossless(&body, max)?;
        }
    }

    proptest! {
        // Few cases: each body runs to several thousand characters.
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn text_splitting_at_2000_loses_nothing_but_whitespace_at_cuts(body in tricky_text(2000)) {
            assert_split_is_lossless(&body, MAX_TEXT_CHARS)?;
            let messages = Message::text(&body);
            let kept: String = texts(&messages).concat().chars().filter(|c| !c.is_whitespace()).collect();
            let given: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            prop_assert_eq!(kept, given);
        }
    }
}
