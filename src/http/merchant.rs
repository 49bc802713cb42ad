//! The caller's merchant, its API keys, and the token exchange.

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Api, ListBody, PageParams, created, timestamp};
use crate::auth::keys::{self, ApiKey};
use crate::auth::{self, Caller, Exchange, Permission, Role};
use crate::error::{ApiError, ErrorCode};
use crate::http::AppState;
use crate::kernel::FieldError;
use crate::merchants;
use crate::merchants::hours::BusinessHours;

pub(super) fn routes(api: &mut Api<'_>) {
    api.route(Method::POST, "/v1/auth/token", token)
        .route(Method::POST, "/v1/auth/refresh", refresh)
        .route(Method::GET, "/v1/merchant", merchant)
        .route(Method::PATCH, "/v1/merchant", update_merchant)
        .route(Method::GET, "/v1/api-keys", list_keys)
        .route(Method::POST, "/v1/api-keys", create_key)
        .route(Method::DELETE, "/v1/api-keys/{key_id}", revoke_key);
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    api_key: String,
}

#[derive(Serialize)]
struct TokenBody {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
    /// The key's role, so a client can show only what the token may do.
    role: Role,
}

#[tracing::instrument(skip_all)]
async fn token(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<TokenRequest>,
) -> Result<HttpResponse, ApiError> {
    let config = &state.config;
    let client = super::client_ip(
        req.headers(),
        req.peer_addr(),
        config.trusted_proxy_header.as_ref(),
    );
    let (max, window) = (config.auth_max_failures, config.auth_failure_window);
    let plaintext = body.into_inner().api_key;
    let exchanged = state
        .db
        .query(move |conn| auth::exchange(conn, &plaintext, client, max, window))
        .await?;
    let key = match exchanged {
        Exchange::Key(key) => key,
        Exchange::Refused => {
            tracing::info!(client.ip = %client, "token refused: unknown or revoked API key");
            return Err(ApiError::unauthorized(
                ErrorCode::InvalidApiKey,
                "the API key is unknown or revoked",
            ));
        }
        Exchange::Limited(secs) => {
            tracing::warn!(client.ip = %client, retry_after_secs = secs, "token refused: too many failures");
            return Err(ApiError::too_many_requests(secs));
        }
    };
    let access_token = state.tokens.issue(key.merchant_id, key.id, key.role)?;
    tracing::info!(merchant.id = %key.merchant_id, key.id = %key.id, "access token issued");
    Ok(HttpResponse::Ok().json(TokenBody {
        access_token,
        token_type: "Bearer",
        expires_in: state.tokens.ttl().as_secs(),
        role: key.role,
    }))
}

/// A fresh token for the caller's key, so a client that is in use (the dashboard) stays signed in
/// without keeping the key: the key is checked live as for any call, so a revoked key renews nothing.
async fn refresh(caller: Caller, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let access_token = state
        .tokens
        .issue(caller.merchant_id, caller.key_id, caller.role)?;
    tracing::info!(merchant.id = %caller.merchant_id, key.id = %caller.key_id, "access token renewed");
    Ok(HttpResponse::Ok().json(TokenBody {
        access_token,
        token_type: "Bearer",
        expires_in: state.tokens.ttl().as_secs(),
        role: caller.role,
    }))
}

#[derive(Serialize)]
struct MerchantBody {
    id: crate::kernel::MerchantId,
    name: String,
    currency: &'static str,
    timezone: &'static str,
    business_hours: Option<BusinessHours>,
    away_text: Option<String>,
    attribution_window_days: i32,
    bot_disclosure: std::collections::BTreeMap<String, String>,
    bot_disclosure_after_hours: i32,
    cart_reminder_minutes: i32,
    booking_reminder_hour: i32,
    agent_answer_minutes: i32,
    vip_paid_orders: i32,
    created_at: String,
}

impl From<merchants::Merchant> for MerchantBody {
    fn from(m: merchants::Merchant) -> Self {
        MerchantBody {
            id: m.id,
            name: m.name,
            currency: m.currency.code(),
            timezone: m.timezone.name(),
            business_hours: m.business_hours,
            away_text: m.away_text,
            attribution_window_days: m.attribution_window_days,
            bot_disclosure: m.bot_disclosure.wording,
            bot_disclosure_after_hours: m.bot_disclosure.after_hours,
            cart_reminder_minutes: m.follow_ups.cart_reminder_minutes,
            booking_reminder_hour: m.follow_ups.booking_reminder_hour,
            agent_answer_minutes: m.agent_answer_minutes,
            vip_paid_orders: m.vip_paid_orders,
            created_at: timestamp(m.created_at),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MerchantUpdate {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    timezone: Option<String>,
    #[serde(default, deserialize_with = "crate::catalog::wire::double_option")]
    business_hours: Option<Option<std::collections::BTreeMap<String, Vec<String>>>>,
    #[serde(default, deserialize_with = "crate::catalog::wire::double_option")]
    away_text: Option<Option<String>>,
    #[serde(default)]
    attribution_window_days: Option<i32>,
    #[serde(default, deserialize_with = "crate::catalog::wire::double_option")]
    bot_disclosure: Option<Option<std::collections::BTreeMap<String, String>>>,
    #[serde(default)]
    bot_disclosure_after_hours: Option<i32>,
    #[serde(default)]
    cart_reminder_minutes: Option<i32>,
    #[serde(default)]
    booking_reminder_hour: Option<i32>,
    #[serde(default)]
    agent_answer_minutes: Option<i32>,
    #[serde(default)]
    vip_paid_orders: Option<i32>,
}

/// What is wrong with the merchant's disclosure sentences: each keyed by a language (`en`, `fr`), each
/// saying something, none too long, not too many.
fn disclosure_errors(wording: &std::collections::BTreeMap<String, String>) -> Vec<FieldError> {
    use crate::conversations::disclosure::{MAX_SENTENCE, is_language};
    let mut errors = Vec::new();
    if wording.len() > 20 {
        errors.push(FieldError::new(
            "bot_disclosure",
            "too_many",
            "at most 20 languages",
        ));
    }
    for (language, sentence) in wording {
        let field = format!("bot_disclosure.{language}");
        if !is_language(language) {
            errors.push(FieldError::new(
                field,
                "invalid_language",
                format!("`{language}` is not a two-letter language code such as en or fr"),
            ));
            continue;
        }
        let sentence = sentence.trim();
        if sentence.is_empty() || sentence.chars().count() > MAX_SENTENCE {
            errors.push(FieldError::new(
                field,
                "invalid_sentence",
                format!("the sentence takes 1 to {MAX_SENTENCE} characters"),
            ));
        }
    }
    errors
}

async fn update_merchant(
    caller: Caller,
    state: web::Data<AppState>,
    body: web::Json<MerchantUpdate>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ManageMerchant)?;
    let body = body.into_inner();
    let mut errors = Vec::new();
    let name = body.name.map(|n| n.trim().to_owned());
    if name
        .as_ref()
        .is_some_and(|n| n.is_empty() || n.chars().count() > 200)
    {
        errors.push(FieldError::new(
            "name",
            "invalid_name",
            "a name takes 1 to 200 characters",
        ));
    }
    let timezone = match body.timezone {
        None => None,
        Some(tz) => match tz.parse::<chrono_tz::Tz>() {
            Ok(tz) => Some(tz),
            Err(_) => {
                errors.push(FieldError::new(
                    "timezone",
                    "unknown_timezone",
                    format!("`{tz}` is not an IANA timezone such as Europe/Paris"),
                ));
                None
            }
        },
    };
    let business_hours = match body.business_hours {
        None => None,
        Some(None) => Some(None),
        Some(Some(days)) => match BusinessHours::parse(days) {
            Ok(h) => Some(Some(h)),
            Err(e) => {
                errors.extend(e);
                None
            }
        },
    };
    let away_text = body
        .away_text
        .map(|t| t.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()));
    if away_text
        .as_ref()
        .is_some_and(|t| t.as_ref().is_some_and(|t| t.chars().count() > 640))
    {
        errors.push(FieldError::new(
            "away_text",
            "too_long",
            "must be at most 640 characters",
        ));
    }
    if body
        .attribution_window_days
        .is_some_and(|d| !(1..=90).contains(&d))
    {
        errors.push(FieldError::new(
            "attribution_window_days",
            "out_of_range",
            "the attribution window takes 1 to 90 days",
        ));
    }
    let bot_disclosure = body.bot_disclosure.map(|w| {
        let w = w.unwrap_or_default();
        errors.extend(disclosure_errors(&w));
        w.into_iter().map(|(l, s)| (l, s.trim().to_owned())).collect()
    });
    if body
        .bot_disclosure_after_hours
        .is_some_and(|h| !(1..=720).contains(&h))
    {
        errors.push(FieldError::new(
            "bot_disclosure_after_hours",
            "out_of_range",
            "the silence after which the assistant says again that it is automated takes 1 to 720 hours",
        ));
    }
    if body
        .cart_reminder_minutes
        .is_some_and(|m| !(0..=10_080).contains(&m))
    {
        errors.push(FieldError::new(
            "cart_reminder_minutes",
            "out_of_range",
            "the wait before a cart reminder takes 0 (no reminders) to 10080 minutes (a week)",
        ));
    }
    if body.booking_reminder_hour.is_some_and(|h| !(0..=23).contains(&h)) {
        errors.push(FieldError::new(
            "booking_reminder_hour",
            "out_of_range",
            "the hour of booking reminders takes 0 to 23",
        ));
    }
    if body
        .agent_answer_minutes
        .is_some_and(|m| !(1..=1440).contains(&m))
    {
        errors.push(FieldError::new(
            "agent_answer_minutes",
            "out_of_range",
            "the time an agent has to answer takes 1 to 1440 minutes",
        ));
    }
    if body.vip_paid_orders.is_some_and(|n| !(0..=10_000).contains(&n)) {
        errors.push(FieldError::new(
            "vip_paid_orders",
            "out_of_range",
            "the paid orders that make a customer a VIP take 0 (nobody) to 10000",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let change = merchants::MerchantChange {
        name,
        timezone,
        business_hours,
        away_text,
        attribution_window_days: body.attribution_window_days,
        bot_disclosure,
        bot_disclosure_after_hours: body.bot_disclosure_after_hours,
        cart_reminder_minutes: body.cart_reminder_minutes,
        booking_reminder_hour: body.booking_reminder_hour,
        agent_answer_minutes: body.agent_answer_minutes,
        vip_paid_orders: body.vip_paid_orders,
    };
    let m = state
        .db
        .query(move |conn| merchants::update(conn, caller.merchant_id, &change))
        .await?;
    Ok(HttpResponse::Ok().json(MerchantBody::from(m)))
}

async fn merchant(caller: Caller, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ReadMerchant)?;
    let m = state
        .db
        .query(move |conn| merchants::get(conn, caller.merchant_id))
        .await?;
    Ok(HttpResponse::Ok().json(MerchantBody::from(m)))
}

#[derive(Serialize)]
struct KeyBody {
    id: Uuid,
    role: Role,
    label: Option<String>,
    prefix: String,
    created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_key: Option<String>,
}

impl From<ApiKey> for KeyBody {
    fn from(k: ApiKey) -> Self {
        KeyBody {
            id: k.id,
            role: k.role,
            label: k.label,
            prefix: k.prefix,
            created_at: timestamp(k.created_at),
            api_key: None,
        }
    }
}

async fn list_keys(
    caller: Caller,
    state: web::Data<AppState>,
    page: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ManageKeys)?;
    let (limit, keyset) = (page.limit()?, page.keyset()?);
    let items = state
        .db
        .query(move |conn| keys::list(conn, caller.merchant_id, keyset, limit + 1))
        .await?;
    Ok(HttpResponse::Ok().json(ListBody::from_items(
        items,
        limit,
        |k| k.id.to_string(),
        KeyBody::from,
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyRequest {
    role: String,
    #[serde(default)]
    label: Option<String>,
}

async fn create_key(
    caller: Caller,
    state: web::Data<AppState>,
    body: web::Json<KeyRequest>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ManageKeys)?;
    let KeyRequest { role, label } = body.into_inner();
    let mut errors = Vec::new();
    let role = Role::parse(&role);
    if role.is_none() {
        errors.push(FieldError::new(
            "role",
            "invalid_role",
            "role is one of owner, catalog, marketing, agent",
        ));
    }
    let label = label.map(|l| l.trim().to_owned()).filter(|l| !l.is_empty());
    if label.as_ref().is_some_and(|l| l.chars().count() > 100) {
        errors.push(FieldError::new(
            "label",
            "too_long",
            "must be at most 100 characters",
        ));
    }
    let Some(role) = role.filter(|_| errors.is_empty()) else {
        return Err(ApiError::validation(errors));
    };
    let new = state
        .db
        .query(move |conn| keys::create(conn, caller.merchant_id, role, label, None))
        .await?;
    tracing::info!(merchant.id = %caller.merchant_id, key.id = %new.record.id, key.role = role.as_str(), "API key created");
    let mut body = KeyBody::from(new.record);
    body.api_key = Some(new.plaintext);
    Ok(created(body))
}

async fn revoke_key(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ManageKeys)?;
    let key_id = path.into_inner();
    let revoked = state
        .db
        .query(move |conn| keys::revoke(conn, caller.merchant_id, key_id))
        .await?;
    if !revoked {
        return Err(ApiError::not_found("API key"));
    }
    tracing::info!(merchant.id = %caller.merchant_id, key.id = %key_id, "API key revoked");
    Ok(HttpResponse::NoContent().finish())
}
