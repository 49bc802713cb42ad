//! Discount code routes: create, list, read, change and delete a merchant's codes.

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Api, ListBody, PageParams, created, timestamp};
use crate::auth::{Caller, Permission};
use crate::catalog::wire::double_option;
use crate::discounts::{
    self, Discount, DiscountError, DiscountInput, DiscountKind, DiscountPatch, DiscountQuery, NewDiscount,
    PatchInput,
};
use crate::error::{ApiError, ErrorCode};
use crate::http::AppState;
use crate::money::MoneyDto;

pub(super) fn routes(api: &mut Api<'_>) {
    api.route(Method::GET, "/v1/discounts", list_discounts)
        .route(Method::POST, "/v1/discounts", create_discount)
        .route(Method::GET, "/v1/discounts/{discount_id}", get_discount)
        .route(Method::PATCH, "/v1/discounts/{discount_id}", update_discount)
        .route(Method::DELETE, "/v1/discounts/{discount_id}", delete_discount);
}

impl From<DiscountError> for ApiError {
    fn from(e: DiscountError) -> Self {
        match e {
            DiscountError::NotFound => ApiError::not_found("discount"),
            DiscountError::CodeTaken(_) => ApiError::conflict(ErrorCode::CodeTaken, e.to_string()),
            DiscountError::Invalid(errors) => ApiError::validation(errors),
            DiscountError::Db(db) => db.into(),
            DiscountError::Unavailable(db) => db.into(),
        }
    }
}

/// `POST /v1/discounts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DiscountCreate {
    code: String,
    #[serde(default)]
    percent_off: Option<String>,
    #[serde(default)]
    amount_off: Option<MoneyDto>,
    #[serde(default)]
    starts_at: Option<String>,
    #[serde(default)]
    ends_at: Option<String>,
    #[serde(default)]
    min_subtotal: Option<MoneyDto>,
    #[serde(default)]
    max_redemptions: Option<i64>,
    #[serde(default = "active_by_default")]
    active: bool,
}

fn active_by_default() -> bool {
    true
}

impl DiscountCreate {
    fn input(&self) -> DiscountInput<'_> {
        DiscountInput {
            code: &self.code,
            percent_off: self.percent_off.as_deref(),
            amount_off: self.amount_off.as_ref().map(MoneyDto::parse_price),
            starts_at: self.starts_at.as_deref(),
            ends_at: self.ends_at.as_deref(),
            min_subtotal: self.min_subtotal.as_ref().map(MoneyDto::parse_price),
            max_redemptions: self.max_redemptions,
            active: self.active,
        }
    }
}

/// `PATCH /v1/discounts/{discount_id}`: the code and the kind are immutable, so they are unknown fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DiscountUpdate {
    #[serde(default)]
    active: Option<bool>,
    #[serde(default, deserialize_with = "double_option")]
    ends_at: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    max_redemptions: Option<Option<i64>>,
    #[serde(default, deserialize_with = "double_option")]
    min_subtotal: Option<Option<MoneyDto>>,
}

impl DiscountUpdate {
    fn input(&self) -> PatchInput<'_> {
        PatchInput {
            active: self.active,
            ends_at: self.ends_at.as_ref().map(Option::as_deref),
            max_redemptions: self.max_redemptions,
            min_subtotal: self
                .min_subtotal
                .as_ref()
                .map(|m| m.as_ref().map(MoneyDto::parse_price)),
        }
    }
}

/// A discount as answered.
#[derive(Debug, Serialize)]
struct DiscountBody {
    id: Uuid,
    code: String,
    percent_off: Option<String>,
    amount_off: Option<MoneyDto>,
    starts_at: Option<String>,
    ends_at: Option<String>,
    min_subtotal: Option<MoneyDto>,
    max_redemptions: Option<u32>,
    redemptions: u32,
    active: bool,
    created_at: String,
    updated_at: String,
}

impl From<Discount> for DiscountBody {
    fn from(d: Discount) -> Self {
        let (percent_off, amount_off) = match d.kind {
            DiscountKind::Percent(percent) => (Some(percent.normalize().to_string()), None),
            DiscountKind::Fixed(amount) => (None, Some(amount.into())),
        };
        DiscountBody {
            id: d.id,
            code: d.code,
            percent_off,
            amount_off,
            starts_at: d.starts_at.map(timestamp),
            ends_at: d.ends_at.map(timestamp),
            min_subtotal: d.min_subtotal.map(MoneyDto::from),
            max_redemptions: d.max_redemptions,
            redemptions: d.redemptions,
            active: d.active,
            created_at: timestamp(d.created_at),
            updated_at: timestamp(d.updated_at),
        }
    }
}

#[derive(Deserialize)]
struct ListParams {
    limit: Option<i64>,
    cursor: Option<String>,
    order: Option<String>,
    active: Option<bool>,
}

async fn list_discounts(
    caller: Caller,
    state: web::Data<AppState>,
    params: web::Query<ListParams>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::WriteCatalog)?;
    let params = params.into_inner();
    let page = PageParams {
        limit: params.limit,
        cursor: params.cursor,
        order: params.order.clone(),
    };
    let limit = page.limit()?;
    let query = DiscountQuery {
        page: page.keyset()?,
        limit: limit + 1,
        active: params.active,
    };
    let items = state
        .db
        .query(move |conn| discounts::list(conn, caller.merchant_id, &query))
        .await?;
    Ok(HttpResponse::Ok().json(ListBody::from_items(
        items,
        limit,
        |d| d.id.to_string(),
        DiscountBody::from,
    )))
}

async fn create_discount(
    caller: Caller,
    state: web::Data<AppState>,
    body: web::Json<DiscountCreate>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::WriteCatalog)?;
    let currency = super::merchant_currency(&state, caller.merchant_id).await?;
    let new = NewDiscount::parse(&body.input(), currency).map_err(ApiError::validation)?;
    let discount = super::run(&state, move |conn| {
        discounts::create(conn, caller.merchant_id, currency, &new)
    })
    .await?;
    tracing::info!(merchant.id = %caller.merchant_id, discount.id = %discount.id, "discount created");
    Ok(created(DiscountBody::from(discount)))
}

async fn get_discount(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::WriteCatalog)?;
    let id = path.into_inner();
    let discount = state
        .db
        .query(move |conn| discounts::get(conn, caller.merchant_id, id))
        .await?
        .ok_or_else(|| ApiError::not_found("discount"))?;
    Ok(HttpResponse::Ok().json(DiscountBody::from(discount)))
}

async fn update_discount(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    body: web::Json<DiscountUpdate>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::WriteCatalog)?;
    let currency = super::merchant_currency(&state, caller.merchant_id).await?;
    let patch = DiscountPatch::parse(&body.input(), currency).map_err(ApiError::validation)?;
    let id = path.into_inner();
    let discount = super::run(&state, move |conn| {
        discounts::update(conn, caller.merchant_id, id, &patch)
    })
    .await?;
    Ok(HttpResponse::Ok().json(DiscountBody::from(discount)))
}

async fn delete_discount(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::WriteCatalog)?;
    let id = path.into_inner();
    super::run(&state, move |conn| {
        discounts::delete(conn, caller.merchant_id, id)
    })
    .await?;
    tracing::info!(merchant.id = %caller.merchant_id, discount.id = %id, "discount deleted");
    Ok(HttpResponse::NoContent().finish())
}
