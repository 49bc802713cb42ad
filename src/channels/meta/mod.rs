//! Meta's Messenger Platform, shared by Messenger and Instagram Direct: webhook deliveries in (verified,
//! parsed into neutral events), neutral replies rendered within each channel's limits and sent through
//! the Send API with the Page's token, the Page's Messenger profile, Meta's word that a token is the
//! Page's (and an Instagram account the Page's), and Meta's errors sorted into what to do about them.

pub mod graph;
pub mod ownership;
pub mod profile;
pub mod render;
pub mod webhook;

use serde::Serialize;

use crate::engine::reply::Reply;
use crate::kernel::Channel;
use render::{Message, RenderError};

/// The prefix of the Send API `metadata` we put on our messages, so their echoes are recognised.
pub const METADATA_PREFIX: &str = "threadcart:";

#[derive(Serialize)]
struct Recipient<'a> {
    id: &'a str,
}

#[derive(Serialize)]
struct MessageBody<'a> {
    recipient: Recipient<'a>,
    messaging_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tag: Option<&'a str>,
    message: &'a Message,
}

#[derive(Serialize)]
struct ActionBody<'a> {
    recipient: Recipient<'a>,
    sender_action: &'a str,
}

/// One queued send, as the outbox holds it.
#[derive(Debug, Clone, Copy)]
pub struct Queued<'a> {
    /// The outbox row's id (our messages' `metadata` names it, so their echoes are known).
    pub id: uuid::Uuid,
    /// The shopper's id on the channel.
    pub psid: &'a str,
    /// `message` or `sender_action`.
    pub kind: &'a str,
    /// A message's neutral reply as JSON, a sender action's name, or (rows queued by an earlier version)
    /// a whole Send API body.
    pub body: &'a str,
    /// `RESPONSE` or `MESSAGE_TAG`.
    pub messaging_type: Option<&'a str>,
}

/// The Send API bodies that carry a queued send on `channel`, in order (a long reply takes several).
pub fn send_bodies(channel: Channel, q: Queued<'_>) -> Result<Vec<String>, RenderError> {
    let recipient = || Recipient { id: q.psid };
    if q.kind == "sender_action" {
        return Ok(vec![encode(&ActionBody {
            recipient: recipient(),
            sender_action: q.body,
        })?]);
    }
    let Some(reply) = Reply::from_json(q.body) else {
        // Queued by an earlier version: the body is the whole Send API request already.
        return Ok(vec![q.body.to_owned()]);
    };
    let messaging_type = q.messaging_type.unwrap_or("RESPONSE");
    let tag = (messaging_type == "MESSAGE_TAG").then_some("HUMAN_AGENT");
    let metadata = format!("{METADATA_PREFIX}{}", q.id);
    render::render(&reply, channel)?
        .into_iter()
        .map(|message| {
            let message = message.with_metadata(&metadata)?;
            encode(&MessageBody {
                recipient: recipient(),
                messaging_type,
                tag,
                message: &message,
            })
        })
        .collect()
}

/// A request body as JSON text.
fn encode(body: &impl Serialize) -> Result<String, RenderError> {
    serde_json::to_string(body).map_err(|e| RenderError::Json(e.to_string()))
}
