//! The Page's Messenger profile: a Get Started button (so ad clicks arrive as postbacks carrying their
//! referral) and a persistent menu with Shop, My cart and Talk to a person. Set when a Page is connected
//! (and when its token changes); the outcome is kept on the Page (`profile_status`).

use serde_json::{Value, json};

use super::graph::GraphClient;
use crate::db::Db;
use crate::engine::payload::{self, Payload};
use crate::kernel::PageId;

/// The profile threadcart sets on every Page.
pub fn profile_body() -> Value {
    let item =
        |title: &str, p: &Payload| json!({"type": "postback", "title": title, "payload": payload::encode(p)});
    json!({
        "get_started": {"payload": crate::engine::GET_STARTED},
        "persistent_menu": [{
            "locale": "default",
            "composer_input_disabled": false,
            "call_to_actions": [
                item("Shop", &Payload::Shop { page: 0 }),
                item("My cart", &Payload::Cart),
                item("Talk to a person", &Payload::Human),
            ],
        }],
    })
}

/// Sets the profile of `page_id` with its token and records how it went; failures are logged and kept
/// on the Page, never raised (connecting the Page succeeded either way).
pub async fn set_profile(db: &Db, graph: &GraphClient, page_id: &PageId, token: &str) -> String {
    let status = match graph.set_messenger_profile(token, &profile_body()).await {
        Ok(()) => "ok".to_owned(),
        Err(e) => {
            tracing::warn!(page.id = %page_id, error = %e, "Messenger profile not set");
            format!("failed: {e}")
        }
    };
    let (page, saved) = (page_id.to_owned(), status.clone());
    if let Err(e) = db
        .query(move |conn| crate::merchants::pages::set_profile_status(conn, &page, &saved))
        .await
    {
        tracing::warn!(page.id = %page_id, error = %e, "Messenger profile status not saved");
    }
    status
}
