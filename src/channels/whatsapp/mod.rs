//! WhatsApp's Cloud API: a business phone number's webhook deliveries in (on Meta's signed endpoint,
//! parsed into neutral events), neutral replies rendered within WhatsApp's limits and sent through
//! `POST /{phone-number-id}/messages` with the number's token. The number is connected like a Page
//! (`crate::merchants::whatsapp`), so the outbox, the sender and the token handling are shared.

pub mod render;
pub mod webhook;

use crate::channels::meta::Queued;
use crate::engine::reply::Reply;
pub use render::RenderError;

/// The Cloud API bodies that carry a queued send, in order (a reply may take several), products shown
/// from the number's `catalog` when it has one. Sender actions (Messenger's typing and read marks) have
/// none on WhatsApp.
pub fn send_bodies(q: Queued<'_>, catalog: Option<&str>) -> Result<Vec<String>, RenderError> {
    if q.kind == "sender_action" {
        return Ok(Vec::new());
    }
    let reply = Reply::from_json(q.body).ok_or(RenderError::Empty)?;
    Ok(render::render(&reply, catalog)?
        .iter()
        .map(|m| m.to(q.psid).to_string())
        .collect())
}
