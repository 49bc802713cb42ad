//! The channels a shopper talks to the merchant through. A channel parses and verifies what arrives
//! into the conversation core's neutral events, renders the core's neutral replies within its own
//! limits, and sends them; it never decides what to say.
//!
//! - [`meta`]: Meta's Messenger Platform, for Messenger and Instagram Direct (one webhook, one Send API).
//! - [`webchat`]: the merchant's own web chat: a public API, an event stream and the widget.
//! - [`whatsapp`]: WhatsApp's Cloud API: a business phone number's webhook and messages.

pub mod meta;
pub mod webchat;
pub mod whatsapp;
