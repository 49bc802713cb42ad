//! Messages written by the merchant's agents through the API, on the thread's channel and within its
//! rules (see [`super::window`]): on a Meta channel, inside the messaging window, or with the
//! `HUMAN_AGENT` tag up to 7 days after the shopper's last action when the Page has that permission;
//! refused otherwise, never sent with a retired tag. The web chat has no window.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::outbox;
use super::window::{MessagingType, Writer};
use crate::conversations::{self, Mode};
use crate::db::schema::{customers, pages};
use crate::db::{DbConnection, now, write_transaction};
use crate::engine::reply::Reply;
use crate::kernel::{MerchantId, Psid, ThreadId};

/// Why an agent's message was not queued.
#[derive(Debug, thiserror::Error)]
pub enum AgentSendError {
    /// No such thread for this merchant.
    #[error("thread not found")]
    NotFound,
    /// Neither the standard window nor the human-agent allowance is open.
    #[error("the messaging window is closed")]
    WindowClosed {
        /// When the standard window closed (none if the shopper never wrote).
        window_ends_at: Option<NaiveDateTime>,
    },
    /// The text cannot be sent.
    #[error("{0}")]
    Invalid(String),
    /// A query failed.
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
    /// The database could not be reached.
    #[error(transparent)]
    Unavailable(#[from] crate::db::DbError),
}

/// What was queued.
#[derive(Debug, Clone, Copy)]
pub struct Queued {
    /// How it will be sent.
    pub messaging_type: MessagingType,
}

/// Queues an agent's text on the merchant's thread and hands the thread to agents; `agent` (an agent's
/// own key) takes the thread when it waits in the queue.
pub fn send_text(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    thread_id: ThreadId,
    agent: Option<uuid::Uuid>,
    text: &str,
) -> Result<Queued, AgentSendError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(AgentSendError::Invalid("text must not be empty".into()));
    }
    if text.chars().count() > 20_000 {
        return Err(AgentSendError::Invalid(
            "text must be at most 20000 characters".into(),
        ));
    }
    write_transaction(conn, |conn| {
        let thread = conversations::thread_for(conn, merchant_id, agent, thread_id).map_err(|e| match e {
            diesel::result::Error::NotFound => AgentSendError::NotFound,
            other => other.into(),
        })?;
        let at = now();
        let human_agent_enabled = !thread.window_open(at)
            && pages::table
                .filter(
                    pages::page_id
                        .eq(&thread.page_id)
                        .or(pages::instagram_account_id.eq(&thread.page_id)),
                )
                .select(pages::human_agent_enabled)
                .first(conn)
                .optional()?
                .unwrap_or(false);
        let Some(messaging_type) =
            thread
                .window()
                .allows(&thread, at, Writer::Person { human_agent_enabled })
        else {
            return Err(AgentSendError::WindowClosed {
                window_ends_at: thread.window_ends_at,
            });
        };
        let psid: Psid = customers::table
            .find(thread.customer_id)
            .select(customers::psid)
            .first(conn)?;
        for reply in Reply::text(text) {
            outbox::enqueue_message(conn, &thread, &psid, &reply, "agent", messaging_type)?;
        }
        conversations::set_mode(conn, thread.id, Mode::Agent)?;
        // An agent who writes to a thread waiting in the queue takes it.
        if let Some(agent) = agent {
            crate::routing::take(conn, thread.id, agent, at)?;
        }
        let thread = conversations::get_thread(conn, thread.id)?;
        crate::events::of_thread(
            conn,
            &thread,
            crate::events::EventKind::MessageOut,
            &serde_json::json!({"thread_id": thread.id, "text": text, "agent_id": agent}),
        )?;
        Ok(Queued { messaging_type })
    })
}
