//! `GET /v1/events`: the merchant's live feed (`crate::events`) as Server-Sent Events, with the caller's
//! token in the `Authorization` header. Each event is `event:` its kind, `id:` its id, `data:` its JSON;
//! a client that reconnects with `Last-Event-ID` gets what it missed first. An agent's own key sees its
//! threads' events and the queue's; other keys see everything.

use std::time::Duration;

use actix_web::http::{Method, header};
use actix_web::{HttpRequest, HttpResponse, web};
use uuid::Uuid;

use super::Api;
use crate::auth::{Caller, Permission};
use crate::error::ApiError;
use crate::events::{self, Event};
use crate::http::AppState;
use crate::kernel::MerchantId;

/// How often an open stream looks for new events (they come within a second).
const POLL: Duration = Duration::from_millis(400);
/// A comment line this often keeps proxies from closing a quiet stream.
const KEEPALIVE: Duration = Duration::from_secs(20);
/// A stream ends after this long; the client reconnects with `Last-Event-ID`.
const LIFETIME: Duration = Duration::from_secs(10 * 60);
/// How often an agent's open stream says they are there (`crate::agents::seen`): an agent whose stream
/// is gone for `crate::agents::PRESENCE_TIMEOUT` counts as offline.
const HEARTBEAT: Duration = Duration::from_secs(30);
/// The most events one read takes.
const BATCH: i64 = 100;

pub(super) fn routes(api: &mut Api<'_>) {
    api.route(Method::GET, "/v1/events", stream);
}

async fn stream(
    caller: Caller,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ReadThreads)?;
    let merchant_id = caller.merchant_id;
    let last = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            Uuid::parse_str(v.trim()).map_err(|_| {
                ApiError::bad_request(
                    crate::error::ErrorCode::BadRequest,
                    "Last-Event-ID is the id of an event this stream sent (a UUID)",
                )
            })
        })
        .transpose()?;
    // Without a last id the stream starts now: the client read the lists before.
    let after = match last {
        Some(id) => Some(id),
        None => {
            state
                .db
                .query(move |conn| events::newest(conn, merchant_id))
                .await?
        }
    };
    let feed = Feed {
        state: state.clone(),
        merchant_id,
        agent: caller.agent_id,
        after,
        pending: std::collections::VecDeque::new(),
        ends_at: tokio::time::Instant::now() + LIFETIME,
        wrote_at: None,
        beat_at: None,
    };
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(futures_util::stream::unfold(feed, Feed::next)))
}

/// An open feed.
struct Feed {
    state: web::Data<AppState>,
    merchant_id: MerchantId,
    agent: Option<Uuid>,
    after: Option<Uuid>,
    pending: std::collections::VecDeque<Event>,
    ends_at: tokio::time::Instant,
    wrote_at: Option<tokio::time::Instant>,
    beat_at: Option<tokio::time::Instant>,
}

impl Feed {
    /// The next chunk: an event, a keep-alive comment, or the end.
    async fn next(mut self) -> Option<(Result<web::Bytes, actix_web::Error>, Feed)> {
        let Some(wrote_at) = self.wrote_at else {
            self.wrote_at = Some(tokio::time::Instant::now());
            return Some((Ok(web::Bytes::from_static(b"retry: 2000\n\n")), self));
        };
        loop {
            if let Some(e) = self.pending.pop_front() {
                self.after = Some(e.id.0);
                self.wrote_at = Some(tokio::time::Instant::now());
                return Some((Ok(web::Bytes::from(chunk(&e))), self));
            }
            let now = tokio::time::Instant::now();
            if now >= self.ends_at {
                return None;
            }
            if now >= wrote_at + KEEPALIVE {
                self.wrote_at = Some(now);
                return Some((Ok(web::Bytes::from_static(b": keep-alive\n\n")), self));
            }
            if let Some(agent) = self.agent
                && self.beat_at.is_none_or(|t| now >= t + HEARTBEAT)
            {
                self.beat_at = Some(now);
                let merchant_id = self.merchant_id;
                let seen = self
                    .state
                    .db
                    .query(move |conn| crate::agents::seen(conn, merchant_id, agent, crate::db::now()))
                    .await;
                if let Err(e) = seen {
                    tracing::warn!(error = %e, "the agent's live connection could not be noted");
                }
            }
            let (merchant_id, agent, after) = (self.merchant_id, self.agent, self.after);
            match self
                .state
                .db
                .query(move |conn| events::after(conn, merchant_id, agent, after, BATCH))
                .await
            {
                Ok(found) if !found.is_empty() => self.pending.extend(found),
                Ok(_) => tokio::time::sleep(POLL).await,
                Err(e) => {
                    tracing::warn!(error = %e, "the event stream could not read events");
                    return None;
                }
            }
        }
    }
}

/// The SSE lines of an event: its kind, id, and its data with the kind, thread and time added.
fn chunk(e: &Event) -> String {
    let mut data: serde_json::Value = serde_json::from_str(&e.data).unwrap_or_default();
    if let Some(map) = data.as_object_mut() {
        map.insert("kind".into(), e.kind.as_str().into());
        map.insert("id".into(), e.id.0.to_string().into());
        map.insert("at".into(), super::timestamp(e.created_at).into());
    }
    format!("event: {}\nid: {}\ndata: {}\n\n", e.kind, e.id.0, data)
}
