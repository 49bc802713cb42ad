//! The web chat's routes: the merchant's settings (`/v1/webchat`, owner) and the public API the widget
//! calls (`/webchat/v1`), with CORS for the web chat's allowed origins only, the visitor's token in the
//! `Authorization` header, the conversation's messages as a list and as Server-Sent Events, and the
//! widget's script.

use std::time::Duration;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Api;
use crate::auth::{Caller, Permission};
use crate::channels::webchat::{self, Arrival, Said, Visitor, Webchat};
use crate::db::DbUuid;
use crate::engine::Utm;
use crate::error::{ApiError, ErrorCode};
use crate::http::AppState;
use crate::kernel::ThreadId;

/// The largest body the public API takes.
const BODY_LIMIT: usize = 16 * 1024;
/// Most messages one list answers.
const MAX_MESSAGES: i64 = 200;
/// How often an event stream looks for messages written by other processes.
const STREAM_POLL: Duration = Duration::from_secs(3);
/// A comment line this often keeps proxies from closing a quiet stream.
const STREAM_KEEPALIVE: Duration = Duration::from_secs(20);
/// An event stream ends after this long; the widget reconnects with `Last-Event-ID`.
const STREAM_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// The widget's script.
const WIDGET_JS: &str = include_str!("webchat_widget.js");

/// What a visitor (or a client address, before there is a visitor) may do per window, on every
/// instance alike: (rate-limit bucket, events, window in seconds).
struct Limit(&'static str, u32, u64);

/// Conversations opened or resumed, per client address.
const OPENS: Limit = Limit("webchat_open_client", 30, 60);
/// Messages said, per visitor.
const SAYS: Limit = Limit("webchat_say_visitor", 20, 60);
/// Lists read, per visitor.
const LISTS: Limit = Limit("webchat_list_visitor", 120, 60);
/// Event streams opened, per visitor (a stream lasts 10 minutes; reconnects are few).
const STREAMS: Limit = Limit("webchat_stream_visitor", 30, 600);

/// Counts one event of `limit` for `key`: an error past the limit.
fn count(conn: &mut crate::db::DbConnection, limit: &Limit, key: &str) -> Result<(), ApiError> {
    let Limit(bucket, max, secs) = *limit;
    match crate::rate_limit::hit(conn, bucket, key, max, Duration::from_secs(secs))? {
        crate::rate_limit::Verdict::Allowed => Ok(()),
        crate::rate_limit::Verdict::RetryAfter(secs) => Err(ApiError::too_many_requests(secs)),
    }
}

pub(super) fn routes(api: &mut Api<'_>) {
    api.route(Method::GET, "/v1/webchat", get_settings)
        .route(Method::PUT, "/v1/webchat", put_settings)
        .route(Method::POST, "/webchat/v1/conversations", open)
        .route(Method::OPTIONS, "/webchat/v1/conversations", preflight_open)
        .route(
            Method::POST,
            "/webchat/v1/conversations/{conversation_id}/messages",
            say,
        )
        .route(
            Method::GET,
            "/webchat/v1/conversations/{conversation_id}/messages",
            list,
        )
        .route(
            Method::OPTIONS,
            "/webchat/v1/conversations/{conversation_id}/messages",
            preflight_conversation,
        )
        .route(
            Method::GET,
            "/webchat/v1/conversations/{conversation_id}/events",
            events,
        )
        .route(
            Method::OPTIONS,
            "/webchat/v1/conversations/{conversation_id}/events",
            preflight_conversation,
        )
        .route(Method::GET, "/webchat/widget.js", widget);
}

#[derive(Serialize)]
struct SettingsBody {
    public_key: String,
    allowed_origins: Vec<String>,
    /// The tag to put on a page of an allowed origin.
    script_tag: String,
    updated_at: String,
}

fn settings_body(state: &AppState, w: Webchat) -> SettingsBody {
    let base = state.config.public_url.trim_end_matches('/');
    SettingsBody {
        script_tag: format!(
            "<script src=\"{base}/webchat/widget.js\" data-key=\"{}\" async></script>",
            w.public_key
        ),
        public_key: w.public_key,
        allowed_origins: w.allowed_origins,
        updated_at: super::timestamp(w.updated_at),
    }
}

async fn get_settings(caller: Caller, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ManagePages)?;
    let w = state
        .db
        .query(move |conn| webchat::settings(conn, caller.merchant_id))
        .await?;
    Ok(HttpResponse::Ok().json(settings_body(&state, w)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsRequest {
    allowed_origins: Vec<String>,
}

async fn put_settings(
    caller: Caller,
    state: web::Data<AppState>,
    body: web::Json<SettingsRequest>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ManagePages)?;
    let origins = webchat::parse_origins(&body.allowed_origins).map_err(ApiError::validation)?;
    let w = state
        .db
        .query(move |conn| webchat::set_origins(conn, caller.merchant_id, &origins))
        .await?;
    Ok(HttpResponse::Ok().json(settings_body(&state, w)))
}

/// The request's `Origin`, when a browser sent one.
fn origin_of(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Answers `result`, with the CORS headers that let the allowed `origin`'s page read it.
fn with_cors(origin: Option<&str>, result: Result<HttpResponse, ApiError>) -> HttpResponse {
    let mut res = result.unwrap_or_else(|e| e.error_response());
    if let Some(value) = origin.and_then(|o| HeaderValue::from_str(o).ok()) {
        let headers = res.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    res
}

/// Whether `origin` is this server's own (its pages, such as the dev shop, are no other site).
fn own(state: &AppState, origin: &str) -> bool {
    match (
        webchat::Origin::parse(origin),
        webchat::Origin::parse(origin_part(&state.config.public_url)),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// `scheme://host[:port]` of a URL.
fn origin_part(url: &str) -> &str {
    let start = url.find("://").map_or(0, |i| i + 3);
    let end = url
        .get(start..)
        .and_then(|rest| rest.find('/'))
        .map_or(url.len(), |i| start + i);
    url.get(..end).unwrap_or(url)
}

fn origin_refused() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        ErrorCode::OriginNotAllowed,
        "this site is not among the web chat's allowed origins",
    )
}

/// A preflight's answer for an allowed origin.
fn preflight_ok(origin: &str) -> HttpResponse {
    with_cors(
        Some(origin),
        Ok(HttpResponse::NoContent()
            .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST, OPTIONS"))
            .insert_header((
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                "authorization, content-type, last-event-id",
            ))
            .insert_header((header::ACCESS_CONTROL_MAX_AGE, "600"))
            .finish()),
    )
}

/// The preflight before opening a conversation: it carries no key, so an origin any web chat allows
/// passes; the request itself is then held to its own web chat's origins.
async fn preflight_open(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let Some(origin) = origin_of(&req) else {
        return HttpResponse::NoContent().finish();
    };
    let checked = origin.clone();
    match state
        .db
        .query(move |conn| webchat::origin_known(conn, &checked))
        .await
    {
        Ok(true) => preflight_ok(&origin),
        Ok(false) => origin_refused().error_response(),
        Err(e) => ApiError::from(e).error_response(),
    }
}

/// The preflight before a conversation's own routes: the origins of the conversation's web chat.
async fn preflight_conversation(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<ThreadId>,
) -> HttpResponse {
    let Some(origin) = origin_of(&req) else {
        return HttpResponse::NoContent().finish();
    };
    let conversation = path.into_inner();
    let checked = origin.clone();
    let allowed = state
        .db
        .query(move |conn| {
            use crate::db::schema::{threads, webchats};
            let w: Option<String> = threads::table
                .inner_join(webchats::table.on(webchats::merchant_id.eq(threads::merchant_id)))
                .filter(threads::id.eq(conversation))
                .filter(threads::channel.eq(crate::kernel::Channel::Webchat))
                .select(webchats::allowed_origins)
                .first(conn)
                .optional()?;
            Ok(w.is_some_and(|list| {
                let list: Vec<String> = serde_json::from_str(&list).unwrap_or_default();
                webchat::Origin::parse(&checked).is_ok_and(|o| list.iter().any(|a| a == o.as_str()))
            }))
        })
        .await;
    match allowed {
        Ok(true) => preflight_ok(&origin),
        Ok(false) => origin_refused().error_response(),
        Err(e) => ApiError::from(e).error_response(),
    }
}

/// The visitor token of `Authorization: Bearer wv_...`.
fn bearer(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenRequest {
    key: String,
    #[serde(rename = "ref")]
    ref_: Option<String>,
    page_url: Option<String>,
    utm: Option<Utm>,
    name: Option<String>,
    locale: Option<String>,
}

async fn read_json<T: serde::de::DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<T, ApiError> {
    let body = super::read_limited(req, payload, BODY_LIMIT).await?;
    serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            ErrorCode::InvalidJson,
            format!("the body is not valid JSON for this route: {e}"),
        )
    })
}

/// Opens a conversation (201 with the visitor's token), or resumes the visitor's own when their token
/// comes with it (200).
async fn open(req: HttpRequest, state: web::Data<AppState>, payload: web::Payload) -> HttpResponse {
    let origin = origin_of(&req);
    let result = open_inner(&req, &state, payload, origin.as_deref()).await;
    let allowed = !matches!(&result, Err(e) if e.code() == ErrorCode::OriginNotAllowed);
    with_cors(origin.as_deref().filter(|_| allowed), result)
}

async fn open_inner(
    req: &HttpRequest,
    state: &web::Data<AppState>,
    payload: web::Payload,
    origin: Option<&str>,
) -> Result<HttpResponse, ApiError> {
    let body: OpenRequest = read_json(req, payload).await?;
    let arrival = Arrival {
        ref_: body.ref_,
        page_url: body.page_url,
        utm: body.utm.unwrap_or_default(),
        name: body.name,
        locale: body.locale,
    }
    .check()
    .map_err(ApiError::validation)?;
    let key = body.key;
    let token = bearer(req);
    let origin = origin.filter(|o| !own(state, o)).map(str::to_owned);
    let client = super::client_ip(
        req.headers(),
        req.peer_addr(),
        state.config.trusted_proxy_header.as_ref(),
    )
    .to_string();
    let opened = state
        .db
        .run(move |conn| {
            count(conn, &OPENS, &client)?;
            let Some(w) = webchat::by_key(conn, &key)? else {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    ErrorCode::UnknownWebchatKey,
                    "no web chat has this key",
                ));
            };
            if origin.as_deref().is_some_and(|o| !w.allows(o)) {
                return Err(origin_refused());
            }
            Ok(webchat::open(conn, &w, token.as_deref(), &arrival)?)
        })
        .await?;
    state.wakers.events.wake_for(opened.customer);
    let body = serde_json::json!({
        "conversation_id": opened.conversation_id,
        "visitor_token": opened.visitor_token,
    });
    Ok(if opened.resumed {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::Created().json(body)
    })
}

/// The visitor the request's token names, when their conversation is `conversation` and the request's
/// origin is allowed by their web chat. Another visitor's conversation is 404, as a missing one.
async fn visitor_of(
    req: &HttpRequest,
    state: &AppState,
    conversation: ThreadId,
    limit: &'static Limit,
) -> Result<(Visitor, Option<String>), ApiError> {
    let Some(token) = bearer(req) else {
        return Err(ApiError::unauthorized(
            ErrorCode::MissingToken,
            "send the visitor token as Authorization: Bearer <visitor_token>",
        ));
    };
    let origin = origin_of(req);
    let checked = origin.clone().filter(|o| !own(state, o));
    let (visitor, allowed) = state
        .db
        .run(move |conn| {
            let Some(visitor) = webchat::visitor(conn, &token)? else {
                return Err(ApiError::unauthorized(
                    ErrorCode::InvalidVisitorToken,
                    "the visitor token is not one this web chat gave out",
                ));
            };
            let allowed = match &checked {
                None => true,
                Some(o) => webchat::settings(conn, visitor.merchant_id)?.allows(o),
            };
            if allowed && visitor.conversation_id == Some(conversation) {
                count(conn, limit, &visitor.customer_id.to_string())?;
            }
            Ok((visitor, allowed))
        })
        .await?;
    if !allowed {
        return Err(origin_refused());
    }
    if visitor.conversation_id != Some(conversation) {
        return Err(ApiError::not_found("conversation"));
    }
    Ok((visitor, origin))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SayRequest {
    text: Option<String>,
    payload: Option<String>,
    title: Option<String>,
    /// The widget's id for this message: a retried request with the same one is taken once.
    client_id: Option<String>,
}

async fn say(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<ThreadId>,
    payload: web::Payload,
) -> HttpResponse {
    let conversation = path.into_inner();
    let (visitor, origin) = match visitor_of(&req, &state, conversation, &SAYS).await {
        Ok(v) => v,
        Err(e) => return with_cors(allowed_origin(&req, &e).as_deref(), Err(e)),
    };
    let result = async {
        let body: SayRequest = read_json(&req, payload).await?;
        let said = match (body.text, body.payload) {
            (Some(text), None) => Said::Text(text),
            (None, Some(payload)) => Said::Tap {
                payload,
                title: body.title,
            },
            _ => {
                return Err(ApiError::validation(vec![crate::kernel::FieldError::new(
                    "text",
                    "text_or_payload",
                    "send either text or payload",
                )]));
            }
        }
        .check()
        .map_err(ApiError::validation)?;
        let client_id = body.client_id.filter(|c| {
            !c.is_empty() && c.len() <= 64 && c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-')
        });
        let customer = state
            .db
            .query(move |conn| webchat::say(conn, &visitor, said, client_id.as_deref()))
            .await?;
        if let Some(customer) = customer {
            state.wakers.events.wake_for(customer);
        }
        Ok(HttpResponse::Accepted().json(serde_json::json!({"accepted": true})))
    }
    .await;
    with_cors(origin.as_deref(), result)
}

/// The origin to let read an error that happened before the visitor was known: the request's, unless
/// the error is that this origin is not allowed.
fn allowed_origin(req: &HttpRequest, e: &ApiError) -> Option<String> {
    origin_of(req).filter(|_| e.code() != ErrorCode::OriginNotAllowed)
}

#[derive(Deserialize)]
struct ListParams {
    after: Option<String>,
    limit: Option<i64>,
}

async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<ThreadId>,
    params: web::Query<ListParams>,
) -> HttpResponse {
    let conversation = path.into_inner();
    let (_, origin) = match visitor_of(&req, &state, conversation, &LISTS).await {
        Ok(v) => v,
        Err(e) => return with_cors(allowed_origin(&req, &e).as_deref(), Err(e)),
    };
    let result = async {
        let after = params
            .after
            .as_deref()
            .map(|a| {
                Uuid::parse_str(a)
                    .map_err(|_| ApiError::bad_request(ErrorCode::BadRequest, "after is a message id"))
            })
            .transpose()?;
        let limit = match params.limit {
            None => 100,
            Some(n) if (1..=MAX_MESSAGES).contains(&n) => n,
            Some(_) => {
                return Err(ApiError::validation(vec![crate::kernel::FieldError::new(
                    "limit",
                    "out_of_range",
                    format!("limit must be between 1 and {MAX_MESSAGES}"),
                )]));
            }
        };
        let messages = state
            .db
            .query(move |conn| webchat::messages_after(conn, conversation, after, limit))
            .await?;
        let data: Vec<serde_json::Value> = messages.into_iter().map(|m| m.json).collect();
        Ok(HttpResponse::Ok().json(serde_json::json!({"data": data})))
    }
    .await;
    with_cors(origin.as_deref(), result)
}

/// The conversation's new messages as Server-Sent Events: `event: message`, `id:` the message's id,
/// `data:` its JSON. With `Last-Event-ID`, the messages after that one come first.
async fn events(req: HttpRequest, state: web::Data<AppState>, path: web::Path<ThreadId>) -> HttpResponse {
    let conversation = path.into_inner();
    let (_, origin) = match visitor_of(&req, &state, conversation, &STREAMS).await {
        Ok(v) => v,
        Err(e) => return with_cors(allowed_origin(&req, &e).as_deref(), Err(e)),
    };
    let last = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Uuid::parse_str(v.trim()).ok());
    // Without a last id the stream starts at the newest message: the page read the list before.
    let start = match last {
        Some(id) => Some(id),
        None => match state
            .db
            .query(move |conn| {
                use crate::db::schema::messages;
                messages::table
                    .filter(messages::thread_id.eq(conversation))
                    .order(messages::id.desc())
                    .select(messages::id)
                    .first::<DbUuid>(conn)
                    .optional()
            })
            .await
        {
            Ok(newest) => newest.map(|id| id.0),
            Err(e) => return with_cors(origin.as_deref(), Err(e.into())),
        },
    };
    let stream = Stream {
        state: state.clone(),
        conversation,
        after: start,
        listener: state.wakers.messages.subscribe(),
        pending: std::collections::VecDeque::new(),
        ends_at: tokio::time::Instant::now() + STREAM_LIFETIME,
        wrote_at: None,
    };
    let body = futures_util::stream::unfold(stream, Stream::next);
    with_cors(
        origin.as_deref(),
        Ok(HttpResponse::Ok()
            .content_type("text/event-stream")
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .insert_header(("x-accel-buffering", "no"))
            .streaming(body)),
    )
}

/// An open event stream.
struct Stream {
    state: web::Data<AppState>,
    conversation: ThreadId,
    after: Option<Uuid>,
    listener: tokio::sync::broadcast::Receiver<ThreadId>,
    pending: std::collections::VecDeque<webchat::WebMessage>,
    ends_at: tokio::time::Instant,
    /// When the stream last wrote something (a keep-alive is due after [`STREAM_KEEPALIVE`]).
    wrote_at: Option<tokio::time::Instant>,
}

impl Stream {
    /// The next chunk: a message, a keep-alive comment, or the end.
    async fn next(mut self) -> Option<(Result<web::Bytes, actix_web::Error>, Stream)> {
        let Some(wrote_at) = self.wrote_at else {
            self.wrote_at = Some(tokio::time::Instant::now());
            // Reconnect after 2 seconds when the connection drops.
            return Some((Ok(web::Bytes::from_static(b"retry: 2000\n\n")), self));
        };
        loop {
            if let Some(m) = self.pending.pop_front() {
                self.after = Some(m.id);
                self.wrote_at = Some(tokio::time::Instant::now());
                let chunk = format!("event: message\nid: {}\ndata: {}\n\n", m.id, m.json);
                return Some((Ok(web::Bytes::from(chunk)), self));
            }
            let now = tokio::time::Instant::now();
            if now >= self.ends_at {
                return None;
            }
            if now >= wrote_at + STREAM_KEEPALIVE {
                self.wrote_at = Some(now);
                return Some((Ok(web::Bytes::from_static(b": keep-alive\n\n")), self));
            }
            match self.read().await {
                Ok(0) => {}
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "web chat stream could not read messages");
                    return None;
                }
            }
            let conversation = self.conversation;
            let listener = &mut self.listener;
            let listen = async {
                loop {
                    match listener.recv().await {
                        Ok(thread) if thread == conversation => return,
                        Ok(_) => {}
                        // Names were missed: look anyway.
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                            std::future::pending::<()>().await;
                        }
                    }
                }
            };
            tokio::select! {
                () = listen => {}
                () = tokio::time::sleep(STREAM_POLL) => {}
            }
        }
    }

    /// Reads the messages after the last one sent; returns how many.
    async fn read(&mut self) -> Result<usize, ApiError> {
        let (conversation, after) = (self.conversation, self.after);
        let found = self
            .state
            .db
            .query(move |conn| webchat::messages_after(conn, conversation, after, 50))
            .await?;
        let n = found.len();
        self.pending.extend(found);
        Ok(n)
    }
}

/// The widget: one script, no dependency, served with a day of caching.
async fn widget() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .body(WIDGET_JS)
}
