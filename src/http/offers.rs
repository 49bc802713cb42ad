//! Offer routes: the merchant's upsell, cross-sell, upgrade and add-on offers, and their JSON shapes.

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Api, ListBody, PageParams, created, timestamp};
use crate::auth::{Caller, Permission};
use crate::catalog::wire::double_option;
use crate::error::ApiError;
use crate::http::AppState;
use crate::money::MoneyDto;
use crate::offers::{
    self, NewOffer, Offer, OfferDiscount, OfferError, OfferKind, OfferPatch, OfferQuery, OfferTarget,
    OfferTrigger,
};

pub(super) fn routes(api: &mut Api<'_>) {
    api.route(Method::GET, "/v1/offers", list_offers)
        .route(Method::POST, "/v1/offers", create_offer)
        .route(Method::GET, "/v1/offers/{offer_id}", get_offer)
        .route(Method::PATCH, "/v1/offers/{offer_id}", update_offer)
        .route(Method::DELETE, "/v1/offers/{offer_id}", delete_offer);
}

impl From<OfferError> for ApiError {
    fn from(e: OfferError) -> Self {
        match e {
            OfferError::NotFound => ApiError::not_found("offer"),
            OfferError::Invalid(errors) => ApiError::validation(errors),
            OfferError::Db(db) => db.into(),
            OfferError::Unavailable(db) => db.into(),
        }
    }
}

/// The wire names of the two discount forms.
const PERCENT_FIELD: &str = "discount_percent";
const FIXED_FIELD: &str = "price_delta";

/// `trigger` of an offer: the product the shopper adds to the cart, or the bookable they hold a stay in.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct TriggerRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    product_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bookable_id: Option<Uuid>,
}

impl TriggerRef {
    fn parse(&self, errors: &mut Vec<crate::kernel::FieldError>) -> Option<OfferTrigger> {
        match (self.product_id, self.bookable_id) {
            (Some(id), None) => Some(OfferTrigger::Product(id)),
            (None, Some(id)) => Some(OfferTrigger::Bookable(id)),
            _ => {
                errors.push(crate::kernel::FieldError::new(
                    "trigger",
                    "invalid_trigger",
                    "give `product_id` or `bookable_id`",
                ));
                None
            }
        }
    }
}

impl From<OfferTrigger> for TriggerRef {
    fn from(t: OfferTrigger) -> Self {
        match t {
            OfferTrigger::Product(id) => TriggerRef {
                product_id: Some(id),
                bookable_id: None,
            },
            OfferTrigger::Bookable(id) => TriggerRef {
                product_id: None,
                bookable_id: Some(id),
            },
        }
    }
}

/// `offer` of an offer: a variant (`per`: `stay` or `night` for add-ons), or a bookable with its price
/// difference per night (`night_delta`; without it, the difference of the two rooms' rates).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct TargetRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    variant_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bookable_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    per: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    night_delta: Option<MoneyDto>,
}

impl TargetRef {
    fn parse(&self, errors: &mut Vec<crate::kernel::FieldError>) -> Option<OfferTarget> {
        use crate::kernel::FieldError;
        let per_night = match self.per.as_deref() {
            None | Some("stay") => false,
            Some("night") => true,
            Some(_) => {
                errors.push(FieldError::new(
                    "offer.per",
                    "invalid_per",
                    "must be `stay` or `night`",
                ));
                false
            }
        };
        match (self.variant_id, self.bookable_id, &self.night_delta) {
            (Some(id), None, None) => Some(OfferTarget::Variant { id, per_night }),
            (None, Some(id), delta) if self.per.is_none() => {
                let night_delta = match delta.as_ref().map(MoneyDto::parse_price) {
                    None => None,
                    Some(Ok(m)) if m.minor() > 0 => Some(m),
                    Some(Ok(_)) => {
                        errors.push(FieldError::new(
                            "offer.night_delta",
                            "out_of_range",
                            "must be more than zero: leave it out to charge the difference of the rates",
                        ));
                        None
                    }
                    Some(Err(e)) => {
                        errors.push(FieldError::new("offer.night_delta", e.code(), e.to_string()));
                        None
                    }
                };
                Some(OfferTarget::Bookable { id, night_delta })
            }
            _ => {
                errors.push(FieldError::new(
                    "offer",
                    "invalid_target",
                    "give `variant_id` (with `per` for add-ons) or `bookable_id` (with `night_delta`)",
                ));
                None
            }
        }
    }
}

impl From<OfferTarget> for TargetRef {
    fn from(t: OfferTarget) -> Self {
        match t {
            OfferTarget::Variant { id, per_night } => TargetRef {
                variant_id: Some(id),
                bookable_id: None,
                per: per_night.then(|| "night".to_owned()),
                night_delta: None,
            },
            OfferTarget::Bookable { id, night_delta } => TargetRef {
                variant_id: None,
                bookable_id: Some(id),
                per: None,
                night_delta: night_delta.map(Into::into),
            },
        }
    }
}

/// `POST /v1/offers`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OfferCreate {
    kind: String,
    trigger: TriggerRef,
    offer: TargetRef,
    #[serde(default)]
    discount_percent: Option<String>,
    #[serde(default)]
    price_delta: Option<MoneyDto>,
    text: String,
    #[serde(default)]
    active: Option<bool>,
}

impl OfferCreate {
    /// Validates into a new offer (the catalog items are checked when it is stored).
    fn parse(self) -> Result<NewOffer, ApiError> {
        let mut errors = Vec::new();
        let kind = OfferKind::parse("kind", &self.kind, &mut errors);
        let trigger = self.trigger.parse(&mut errors);
        let target = self.offer.parse(&mut errors);
        let discount = OfferDiscount::parse_either(
            (PERCENT_FIELD, self.discount_percent.as_deref()),
            (FIXED_FIELD, self.price_delta.as_ref().map(MoneyDto::parse_price)),
            &mut errors,
        );
        let text = offers::parse_text("text", &self.text, &mut errors);
        match (kind, trigger, target) {
            (Some(kind), Some(trigger), Some(target)) if errors.is_empty() => Ok(NewOffer {
                kind,
                trigger,
                target,
                discount,
                text,
                active: self.active.unwrap_or(true),
            }),
            _ => Err(ApiError::validation(errors)),
        }
    }
}

/// `PATCH /v1/offers/{offer_id}`: sending either discount field replaces the discount.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OfferUpdate {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    active: Option<bool>,
    #[serde(default, deserialize_with = "double_option")]
    discount_percent: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    price_delta: Option<Option<MoneyDto>>,
}

impl OfferUpdate {
    /// Validates into a patch.
    fn parse(self) -> Result<OfferPatch, ApiError> {
        let mut errors = Vec::new();
        let replaces_discount = self.discount_percent.is_some() || self.price_delta.is_some();
        let discount = OfferDiscount::parse_either(
            (PERCENT_FIELD, self.discount_percent.flatten().as_deref()),
            (
                FIXED_FIELD,
                self.price_delta.flatten().as_ref().map(MoneyDto::parse_price),
            ),
            &mut errors,
        );
        let patch = OfferPatch {
            text: self.text.map(|t| offers::parse_text("text", &t, &mut errors)),
            active: self.active,
            discount: replaces_discount.then_some(discount),
        };
        if errors.is_empty() {
            Ok(patch)
        } else {
            Err(ApiError::validation(errors))
        }
    }
}

/// An offer as answered.
#[derive(Debug, Serialize)]
struct OfferBody {
    id: Uuid,
    kind: &'static str,
    trigger: TriggerRef,
    offer: TargetRef,
    discount_percent: Option<String>,
    price_delta: Option<MoneyDto>,
    text: String,
    active: bool,
    created_at: String,
    updated_at: String,
}

impl From<Offer> for OfferBody {
    fn from(o: Offer) -> Self {
        let (discount_percent, price_delta) = match o.discount {
            None => (None, None),
            Some(OfferDiscount::Percent(p)) => (Some(p.normalize().to_string()), None),
            Some(OfferDiscount::Fixed(amount)) => (None, Some(amount.into())),
        };
        OfferBody {
            id: o.id,
            kind: o.kind.as_str(),
            trigger: o.trigger.into(),
            offer: o.target.into(),
            discount_percent,
            price_delta,
            text: o.text,
            active: o.active,
            created_at: timestamp(o.created_at),
            updated_at: timestamp(o.updated_at),
        }
    }
}

#[derive(Deserialize)]
struct ListParams {
    limit: Option<i64>,
    cursor: Option<String>,
    order: Option<String>,
    product_id: Option<Uuid>,
    bookable_id: Option<Uuid>,
}

async fn list_offers(
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
    let query = OfferQuery {
        page: page.keyset()?,
        limit: limit + 1,
        product_id: params.product_id,
        bookable_id: params.bookable_id,
    };
    let items = state
        .db
        .query(move |conn| offers::list(conn, caller.merchant_id, &query))
        .await?;
    Ok(HttpResponse::Ok().json(ListBody::from_items(
        items,
        limit,
        |o| o.id.to_string(),
        OfferBody::from,
    )))
}

async fn create_offer(
    caller: Caller,
    state: web::Data<AppState>,
    body: web::Json<OfferCreate>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::WriteCatalog)?;
    let new = body.into_inner().parse()?;
    let offer = state
        .db
        .run(move |conn| offers::create(conn, caller.merchant_id, &new))
        .await?;
    tracing::info!(merchant.id = %caller.merchant_id, offer.id = %offer.id, "offer created");
    Ok(created(OfferBody::from(offer)))
}

async fn get_offer(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::WriteCatalog)?;
    let id = path.into_inner();
    let offer = state
        .db
        .query(move |conn| offers::get(conn, caller.merchant_id, id))
        .await?
        .ok_or_else(|| ApiError::not_found("offer"))?;
    Ok(HttpResponse::Ok().json(OfferBody::from(offer)))
}

async fn update_offer(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    body: web::Json<OfferUpdate>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::WriteCatalog)?;
    let patch = body.into_inner().parse()?;
    let id = path.into_inner();
    let offer = state
        .db
        .run(move |conn| offers::update(conn, caller.merchant_id, id, patch))
        .await?;
    Ok(HttpResponse::Ok().json(OfferBody::from(offer)))
}

async fn delete_offer(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::WriteCatalog)?;
    let id = path.into_inner();
    let deleted = state
        .db
        .query(move |conn| offers::delete(conn, caller.merchant_id, id))
        .await?;
    if !deleted {
        return Err(ApiError::not_found("offer"));
    }
    tracing::info!(merchant.id = %caller.merchant_id, offer.id = %id, "offer deleted");
    Ok(HttpResponse::NoContent().finish())
}
