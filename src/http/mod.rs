//! The HTTP edge: thin handlers per context, one route table, shared extraction rules.
//!
//! Every route is registered through [`Api`], which also records it: the test that compares the app
//! with `openapi.yaml` reads the same table the server is built from.

mod bookables;
mod bookings;
mod catalog;
pub mod client_ip;
mod dashboard;
mod discounts;
mod health;

pub use client_ip::client_ip;
pub use health::OPENAPI_YAML;
pub use state::AppState;
mod agents;
mod context;
mod events;
mod merchant;
mod offers;
mod orders;
mod pages;
mod reports;
mod rules;
mod state;
mod templates;
mod threads;
mod webchat;
mod webhooks;
mod whatsapp;

use actix_web::http::Method;
use actix_web::http::header;
use actix_web::{FromRequest, Handler, HttpRequest, HttpResponse, Responder, web};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ErrorCode};

/// The JSON body limit of ordinary routes.
pub const JSON_LIMIT: usize = 256 * 1024;

/// Registers routes on an actix config and records them.
pub struct Api<'a> {
    cfg: Option<&'a mut web::ServiceConfig>,
    routes: Vec<(Method, &'static str)>,
}

impl<'a> Api<'a> {
    /// Adds one route.
    pub fn route<F, Args>(&mut self, method: Method, path: &'static str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.routes.push((method.clone(), path));
        if let Some(cfg) = self.cfg.as_deref_mut() {
            cfg.route(path, web::method(method).to(handler));
        }
        self
    }
}

fn register(api: &mut Api<'_>) {
    health::routes(api);
    merchant::routes(api);
    pages::routes(api);
    catalog::routes(api);
    offers::routes(api);
    bookables::routes(api);
    bookings::routes(api);
    discounts::routes(api);
    orders::routes(api);
    reports::routes(api);
    templates::routes(api);
    agents::routes(api);
    rules::routes(api);
    whatsapp::routes(api);
    events::routes(api);
    threads::routes(api);
    webhooks::routes(api);
    webchat::routes(api);
    dashboard::routes(api);
}

/// Every route of the application, as (method, path pattern).
pub fn route_table() -> Vec<(Method, &'static str)> {
    let mut api = Api {
        cfg: None,
        routes: Vec::new(),
    };
    register(&mut api);
    api.routes
}

/// Installs every route, then a 405 fallback for known paths with another method.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let mut api = Api {
        cfg: Some(cfg),
        routes: Vec::new(),
    };
    register(&mut api);
    let mut paths: Vec<&'static str> = api.routes.iter().map(|(_, p)| *p).collect();
    paths.sort_unstable();
    paths.dedup();
    for path in paths {
        cfg.route(path, web::route().to(method_not_allowed));
    }
    cfg.app_data(json_config(JSON_LIMIT))
        .app_data(web::QueryConfig::default().error_handler(|e, _| {
            ApiError::bad_request(ErrorCode::BadRequest, format!("invalid query string: {e}")).into()
        }))
        .app_data(web::PathConfig::default().error_handler(|_, _| ApiError::not_found("resource").into()));
}

/// A JSON extractor config with `limit` and problem+json errors.
pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(move |e, _| {
            use actix_web::error::JsonPayloadError;
            match e {
                JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
                    ApiError::payload_too_large(limit).into()
                }
                JsonPayloadError::ContentType => ApiError::new(
                    actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    ErrorCode::UnsupportedMediaType,
                    "send the body as application/json",
                )
                .into(),
                other => ApiError::bad_request(
                    ErrorCode::InvalidJson,
                    format!("the body is not valid JSON for this route: {other}"),
                )
                .into(),
            }
        })
}

async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    use actix_web::ResponseError;
    ApiError::new(
        actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        format!("{} is not allowed on {}", req.method(), req.path()),
    )
    .error_response()
}

/// The answer for paths no route matches.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    use actix_web::ResponseError;
    ApiError::new(
        actix_web::http::StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
        format!("no route for {} {}", req.method(), req.path()),
    )
    .error_response()
}

pub use crate::kernel::timestamp;

/// A timestamp query parameter: RFC 3339 with an offset (`2026-11-25T10:00:00Z`) or a date
/// (`2026-11-25`, midnight UTC); a clear validation problem naming `field` otherwise.
pub fn parse_instant(field: &str, value: &str) -> Result<chrono::NaiveDateTime, ApiError> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(value) {
        return Ok(t.naive_utc());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        return Ok(d.and_time(chrono::NaiveTime::MIN));
    }
    Err(ApiError::validation(vec![crate::kernel::FieldError::new(
        field,
        "invalid_timestamp",
        "a date (2026-11-25) or an RFC 3339 timestamp (2026-11-25T10:00:00Z)",
    )]))
}

/// A list's `channel` filter, checked.
pub fn parse_channel(value: &str) -> Result<crate::kernel::Channel, ApiError> {
    crate::kernel::Channel::parse(value).ok_or_else(|| {
        ApiError::validation(vec![crate::kernel::FieldError::new(
            "channel",
            "invalid_channel",
            "channel is messenger, instagram, webchat or whatsapp",
        )])
    })
}

/// `limit` and `cursor` of list routes.
#[derive(Debug, Deserialize)]
pub struct PageParams {
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// Opaque cursor from a previous page.
    pub cursor: Option<String>,
    /// `newest` (the default: newest created first) or `oldest`.
    pub order: Option<String>,
}

/// The largest page a list answers.
pub const MAX_LIMIT: i64 = 200;

impl PageParams {
    /// The page size, checked.
    pub fn limit(&self) -> Result<i64, ApiError> {
        match self.limit {
            None => Ok(50),
            Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            Some(_) => Err(ApiError::validation(vec![crate::kernel::FieldError::new(
                "limit",
                "out_of_range",
                format!("limit must be between 1 and {MAX_LIMIT}"),
            )])),
        }
    }

    /// Where the page starts and which way it reads (the lists keyed by UUIDv7).
    pub fn keyset(&self) -> Result<crate::db::Keyset, ApiError> {
        let oldest_first = match self.order.as_deref() {
            None | Some("newest") => false,
            Some("oldest") => true,
            Some(_) => {
                return Err(ApiError::validation(vec![crate::kernel::FieldError::new(
                    "order",
                    "invalid_order",
                    "order is newest or oldest",
                )]));
            }
        };
        Ok(crate::db::Keyset {
            cursor: self.uuid_cursor()?,
            oldest_first,
        })
    }

    /// The cursor as a UUID (the lists keyed by UUIDv7).
    pub fn uuid_cursor(&self) -> Result<Option<uuid::Uuid>, ApiError> {
        self.cursor
            .as_deref()
            .map(|c| {
                uuid::Uuid::parse_str(c).map_err(|_| {
                    ApiError::bad_request(ErrorCode::BadRequest, "the cursor is not one this API gave out")
                })
            })
            .transpose()
    }
}

/// A page of a list: `{"data": [...], "next_cursor": ...}`.
#[derive(Debug, Serialize)]
pub struct ListBody<T> {
    data: Vec<T>,
    next_cursor: Option<String>,
}

impl<T> ListBody<T> {
    /// Builds a page from up to `limit + 1` items: the extra one only says another page exists.
    pub fn from_items<I>(
        mut items: Vec<I>,
        limit: i64,
        cursor_of: impl Fn(&I) -> String,
        body: impl Fn(I) -> T,
    ) -> Self {
        let more = items.len() as i64 > limit;
        items.truncate(usize::try_from(limit).unwrap_or(0));
        let next_cursor = if more { items.last().map(&cursor_of) } else { None };
        ListBody {
            data: items.into_iter().map(body).collect(),
            next_cursor,
        }
    }
}

/// Reads a body of at most `limit` bytes, refusing larger ones before reading them all.
pub async fn read_limited(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Vec<u8>, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::payload_too_large(limit));
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(0).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::bad_request(ErrorCode::BadRequest, format!("the body could not be read: {e}"))
        })?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::payload_too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The caller's merchant's currency (prices and amounts must be in it).
pub async fn merchant_currency(
    state: &crate::http::AppState,
    merchant_id: crate::kernel::MerchantId,
) -> Result<crate::money::Currency, ApiError> {
    let m = state
        .db
        .query(move |conn| crate::merchants::get(conn, merchant_id))
        .await?;
    Ok(m.currency)
}

/// Runs a module's database function, mapping its error to the API's once.
pub async fn run<T, E>(
    state: &crate::http::AppState,
    f: impl FnOnce(&mut crate::db::DbConnection) -> Result<T, E> + Send + 'static,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    E: From<crate::db::DbError> + Into<ApiError> + Send + 'static,
{
    state.db.run(f).await.map_err(Into::into)
}

/// `201 Created` with a JSON body.
pub fn created<T: Serialize>(body: T) -> HttpResponse {
    HttpResponse::Created().json(body)
}
