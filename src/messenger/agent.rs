//! Messages written by the merchant's agents through the API: sent inside the messaging window, or with
//! the `HUMAN_AGENT` tag up to 7 days after the shopper's last action when the Page has that
//! permission; refused otherwise, never sent with a retired tag.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use uuid::Uuid;

use super::outbox::{self, MessagingType};
use super::render::Message;
use crate::conversations::{self, HUMAN_AGENT_WINDOW, Mode};
use crate::db::schema::{customers, pages};
use crate::db::{DbConnection, now, write_transaction};

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
    /// The outbox rows, one per chunk of text.
    pub outbox_ids: usize,
    /// How it will be sent.
    pub messaging_type: MessagingType,
}

/// Queues an agent's text on the merchant's thread and hands the thread to agents.
pub fn send_text(
    conn: &mut DbConnection,
    merchant_id: Uuid,
    thread_id: Uuid,
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
        let thread = conversations::thread(conn, merchant_id, thread_id).map_err(|e| match e {
            diesel::result::Error::NotFound => AgentSendError::NotFound,
            other => other.into(),
        })?;
        let at = now();
        let messaging_type = if thread.window_open(at) {
            MessagingType::Response
        } else {
            let human_agent: bool = pages::table
                .filter(pages::page_id.eq(&thread.page_id))
                .select(pages::human_agent_enabled)
                .first(conn)
                .optional()?
                .unwrap_or(false);
            let within_seven_days = thread
                .last_inbound_at
                .is_some_and(|l| at < l + HUMAN_AGENT_WINDOW);
            if !(human_agent && within_seven_days) {
                return Err(AgentSendError::WindowClosed {
                    window_ends_at: thread.window_ends_at,
                });
            }
            MessagingType::HumanAgent
        };
        let psid: String = customers::table
            .find(thread.customer_id)
            .select(customers::psid)
            .first(conn)?;
        let messages = Message::text(text);
        let count = messages.len();
        for message in messages {
            outbox::enqueue_message(conn, &thread, &psid, message, "agent", messaging_type)?;
        }
        conversations::set_mode(conn, thread.id.0, Mode::Agent)?;
        Ok(Queued {
            outbox_ids: count,
            messaging_type,
        })
    })
}
