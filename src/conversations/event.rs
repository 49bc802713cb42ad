//! What a shopper did, in no channel's shape. Every channel reads its own deliveries (Meta's webhook
//! `messaging` objects, the web chat's calls) into [`Inbound`] events, which the inbox stores and the
//! turn answers.

use serde::{Deserialize, Serialize};

use crate::engine::Referral;
use crate::kernel::{Channel, PageId, Psid};

/// One event of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inbound {
    /// The channel.
    pub channel: Channel,
    /// The business's account on the channel: a Page's id, an Instagram professional account's id, the
    /// merchant's web chat id.
    pub account: PageId,
    /// The shopper's id on that account (PSID, IGSID, web chat visitor).
    pub user: Psid,
    /// When it happened, Unix milliseconds.
    pub timestamp_ms: i64,
    /// Recognises a redelivery of the same event on the account.
    pub dedup_key: String,
    /// Came while another app owns the conversation (Messenger's `standby`): recorded, never answered.
    #[serde(default)]
    pub passive: bool,
    /// What happened.
    pub kind: EventKind,
    /// The shopper's name as the delivery gave it (WhatsApp's `contacts[].profile.name`), for channels
    /// without a profile API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_name: Option<String>,
    /// The event as delivered (kept for the dead-letter list).
    #[serde(skip)]
    pub raw: serde_json::Value,
}

/// One item of a channel's own cart: the catalog item's retailer id (our SKU, or a product's retailer
/// id), how many, and the price the shopper's app showed (a decimal string, with its currency).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderItem {
    /// `product_retailer_id`.
    pub retailer_id: String,
    /// Units.
    pub quantity: u32,
    /// `item_price` as sent (major units).
    pub price: Option<String>,
    /// Its currency.
    pub currency: Option<String>,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// The shopper sent a message: text, a quick reply's tap, attachments.
    Message {
        /// The channel's message id.
        mid: String,
        /// Text, or a quick reply's title.
        text: Option<String>,
        /// A quick reply's payload.
        quick_reply: Option<String>,
        /// Attachment types (`image`, `sticker` ...).
        #[serde(default)]
        attachments: Vec<String>,
        /// The ad or link the message came from (an Instagram Click-to-Direct ad, an ig.me link).
        #[serde(default)]
        referral: Option<Referral>,
    },
    /// A message the business sent, seen again: ours (threadcart sent it), or a person's from another
    /// app (the Page Inbox), after which the bot steps back.
    Echo {
        /// The channel's message id.
        mid: String,
        /// Sent by threadcart.
        ours: bool,
        /// Its text.
        text: Option<String>,
    },
    /// A button, Get Started or menu tap.
    Postback {
        /// The button's title.
        title: Option<String>,
        /// Our payload.
        payload: Option<String>,
        /// Present when the tap opened the conversation from an ad or a link.
        referral: Option<Referral>,
    },
    /// The shopper came back through an ad or a link: a touch, answered.
    Referral(Referral),
    /// The shopper came back to the web chat without naming anything: a touch, not answered.
    Visit(Referral),
    /// Our messages were delivered.
    Delivery {
        /// Everything before this instant is delivered (ms).
        watermark: i64,
    },
    /// The shopper read our messages.
    Read {
        /// Everything before this instant is read (ms).
        watermark: i64,
    },
    /// The shopper reacted to a message.
    Reaction {
        /// `react` or `unreact`.
        action: String,
        /// The reaction's name or emoji.
        reaction: Option<String>,
        /// The message reacted to.
        mid: Option<String>,
    },
    /// The shopper sent their cart from the channel's own catalog (WhatsApp's `order` message).
    Order {
        /// The channel's message id.
        mid: String,
        /// What the shopper wrote with it.
        text: Option<String>,
        /// The items, as the shopper's app priced them.
        items: Vec<OrderItem>,
    },
    /// One of our messages will not reach the shopper (WhatsApp's `failed` status).
    SendFailed {
        /// The channel's id of our message.
        mid: String,
        /// The channel's error, in words.
        error: String,
    },
    /// A marketing-messages opt-in.
    Optin {
        /// The opt-in's type.
        kind: Option<String>,
    },
    /// Anything else (handover notices, policy enforcement ...), kept but not acted on.
    Other(String),
}

impl EventKind {
    /// The stored name.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Message { .. } => "message",
            EventKind::Echo { .. } => "echo",
            EventKind::Postback { .. } => "postback",
            EventKind::Referral(_) => "referral",
            EventKind::Visit(_) => "visit",
            EventKind::Delivery { .. } => "delivery",
            EventKind::Read { .. } => "read",
            EventKind::Reaction { .. } => "reaction",
            EventKind::SendFailed { .. } => "send_failed",
            EventKind::Order { .. } => "order",
            EventKind::Optin { .. } => "optin",
            EventKind::Other(_) => "other",
        }
    }

    /// True for what the shopper did (it opens a Meta channel's messaging window).
    pub fn is_shopper_action(&self) -> bool {
        matches!(
            self,
            EventKind::Message { .. }
                | EventKind::Order { .. }
                | EventKind::Postback { .. }
                | EventKind::Referral(_)
                | EventKind::Visit(_)
                | EventKind::Reaction { .. }
                | EventKind::Optin { .. }
        )
    }
}
