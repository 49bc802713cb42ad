//! Rules (`crate::rules`): the owner says what happens to a conversation when the shopper writes
//! (priority, label, hand over, skill), and when (channel, ad, ref, cart value, VIP, words).

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Api, ListBody, created, merchant_currency, timestamp};
use crate::auth::{Caller, Permission};
use crate::error::ApiError;
use crate::http::AppState;
use crate::kernel::{Channel, FieldError};
use crate::money::{Currency, Money, MoneyDto};
use crate::rules::{self, RawRule, RuleError, Then, When};

pub(super) fn routes(api: &mut Api<'_>) {
    api.route(Method::GET, "/v1/rules", list)
        .route(Method::POST, "/v1/rules", create)
        .route(Method::GET, "/v1/rules/{rule_id}", get)
        .route(Method::PATCH, "/v1/rules/{rule_id}", update)
        .route(Method::DELETE, "/v1/rules/{rule_id}", delete);
}

/// The conditions as sent.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WhenInput {
    #[serde(default)]
    channels: Vec<String>,
    #[serde(default)]
    ad_ids: Vec<String>,
    #[serde(default)]
    refs: Vec<String>,
    #[serde(default)]
    cart_value_at_least: Option<MoneyDto>,
    #[serde(default)]
    vip: Option<bool>,
    #[serde(default)]
    words: Vec<String>,
}

impl WhenInput {
    fn parse(self, currency: Currency, errors: &mut Vec<FieldError>) -> When {
        let mut channels = Vec::new();
        for name in &self.channels {
            match Channel::parse(name) {
                Some(c) if !channels.contains(&c) => channels.push(c),
                Some(_) => {}
                None => errors.push(FieldError::new(
                    "when.channels",
                    "invalid_channel",
                    "each channel is messenger, instagram, webchat or whatsapp",
                )),
            }
        }
        let cart_value_at_least = self.cart_value_at_least.and_then(|dto| match dto.parse_price() {
            Ok(m) if m.currency() == currency => Some(m.into()),
            Ok(_) => {
                errors.push(FieldError::new(
                    "when.cart_value_at_least",
                    "currency_mismatch",
                    format!("carts are in the merchant's currency {currency}"),
                ));
                None
            }
            Err(e) => {
                errors.push(FieldError::new(
                    "when.cart_value_at_least",
                    e.code(),
                    e.to_string(),
                ));
                None
            }
        });
        When {
            channels,
            ad_ids: self.ad_ids,
            refs: self.refs,
            cart_value_at_least,
            vip: self.vip,
            words: self.words,
        }
    }
}

/// The actions as sent and answered.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct ThenBody {
    #[serde(default)]
    priority: Option<i32>,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    hand_over: bool,
    #[serde(default)]
    skill: Option<String>,
}

impl From<ThenBody> for Then {
    fn from(t: ThenBody) -> Self {
        Then {
            priority: t.priority,
            label: t.label,
            hand_over: t.hand_over,
            skill: t.skill,
        }
    }
}

/// `POST /v1/rules`, and every field of `PATCH /v1/rules/{id}` (given ones replace).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleInput {
    name: Option<String>,
    position: Option<i64>,
    enabled: Option<bool>,
    when: Option<WhenInput>,
    then: Option<ThenBody>,
}

#[derive(Serialize)]
struct WhenBody {
    channels: Vec<Channel>,
    ad_ids: Vec<String>,
    refs: Vec<String>,
    cart_value_at_least: Option<MoneyDto>,
    vip: Option<bool>,
    words: Vec<String>,
}

#[derive(Serialize)]
struct RuleBody {
    id: Uuid,
    name: String,
    position: i32,
    enabled: bool,
    when: WhenBody,
    then: ThenBody,
    created_at: String,
    updated_at: String,
}

impl From<rules::StoredRule> for RuleBody {
    fn from(s: rules::StoredRule) -> Self {
        let (rule, when, then) = (s.rule.clone(), s.rule.when, s.rule.then);
        RuleBody {
            id: rule.id,
            name: rule.name,
            position: rule.position,
            enabled: rule.enabled,
            when: WhenBody {
                channels: when.channels,
                ad_ids: when.ad_ids,
                refs: when.refs,
                cart_value_at_least: when.cart_value_at_least.map(|m| Money::from(m).into()),
                vip: when.vip,
                words: when.words,
            },
            then: ThenBody {
                priority: then.priority,
                label: then.label,
                hand_over: then.hand_over,
                skill: then.skill,
            },
            created_at: timestamp(s.created_at),
            updated_at: timestamp(s.updated_at),
        }
    }
}

/// Checks a whole rule, merged onto `base` (a rule being changed) when there is one.
fn checked(input: RuleInput, base: Option<&rules::Rule>, currency: Currency) -> Result<RawRule, ApiError> {
    let mut errors = Vec::new();
    let when = match (input.when, base) {
        (Some(w), _) => w.parse(currency, &mut errors),
        (None, Some(b)) => b.when.clone(),
        (None, None) => When::default(),
    };
    let raw = RawRule {
        name: input
            .name
            .or_else(|| base.map(|b| b.name.clone()))
            .unwrap_or_default(),
        position: input.position.or_else(|| base.map(|b| i64::from(b.position))),
        enabled: input.enabled.or_else(|| base.map(|b| b.enabled)),
        when,
        then: match (input.then, base) {
            (Some(t), _) => t.into(),
            (None, Some(b)) => b.then.clone(),
            (None, None) => Then::default(),
        },
    };
    match rules::check(raw) {
        Ok(raw) if errors.is_empty() => Ok(raw),
        Ok(_) => Err(ApiError::validation(errors)),
        Err(more) => {
            errors.extend(more);
            Err(ApiError::validation(errors))
        }
    }
}

fn refused(e: RuleError) -> ApiError {
    match e {
        RuleError::TooMany => ApiError::validation(vec![FieldError::new(
            "rules",
            "too_many",
            format!(
                "a merchant has at most {} rules: delete one first",
                rules::MAX_RULES
            ),
        )]),
        RuleError::Db(e) => e.into(),
    }
}

/// Every rule of the merchant, in the order they are evaluated (at most `MAX_RULES`, one page).
async fn list(caller: Caller, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ReadThreads)?;
    let merchant_id = caller.merchant_id;
    let items = state.db.query(move |conn| rules::list(conn, merchant_id)).await?;
    let limit = i64::try_from(items.len()).unwrap_or(i64::MAX);
    Ok(HttpResponse::Ok().json(ListBody::from_items(
        items,
        limit,
        |r| r.rule.id.to_string(),
        RuleBody::from,
    )))
}

async fn create(
    caller: Caller,
    state: web::Data<AppState>,
    body: web::Json<RuleInput>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ManageMerchant)?;
    let merchant_id = caller.merchant_id;
    let currency = merchant_currency(&state, merchant_id).await?;
    let raw = checked(body.into_inner(), None, currency)?;
    let rule = state
        .db
        .run(move |conn| rules::create(conn, merchant_id, &raw).map_err(refused))
        .await?;
    tracing::info!(merchant.id = %merchant_id, rule.id = %rule.rule.id, "rule added");
    Ok(created(RuleBody::from(rule)))
}

async fn get(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ReadThreads)?;
    let (id, merchant_id) = (path.into_inner(), caller.merchant_id);
    let rule = state
        .db
        .query(move |conn| rules::get(conn, merchant_id, id))
        .await?
        .ok_or_else(|| ApiError::not_found("rule"))?;
    Ok(HttpResponse::Ok().json(RuleBody::from(rule)))
}

async fn update(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    body: web::Json<RuleInput>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ManageMerchant)?;
    let (id, merchant_id) = (path.into_inner(), caller.merchant_id);
    let currency = merchant_currency(&state, merchant_id).await?;
    let input = body.into_inner();
    let rule = state
        .db
        .run(move |conn| {
            let Some(current) = rules::get(conn, merchant_id, id)? else {
                return Err(ApiError::not_found("rule"));
            };
            let raw = checked(input, Some(&current.rule), currency)?;
            rules::update(conn, merchant_id, id, &raw)?.ok_or_else(|| ApiError::not_found("rule"))
        })
        .await?;
    Ok(HttpResponse::Ok().json(RuleBody::from(rule)))
}

async fn delete(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ManageMerchant)?;
    let (id, merchant_id) = (path.into_inner(), caller.merchant_id);
    let gone = state
        .db
        .query(move |conn| rules::delete(conn, merchant_id, id))
        .await?;
    if !gone {
        return Err(ApiError::not_found("rule"));
    }
    Ok(HttpResponse::NoContent().finish())
}
