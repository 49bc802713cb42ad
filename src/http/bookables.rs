//! Bookable routes: a merchant's room types, their nightly rates and availability.

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Api, ListBody, PageParams, created, timestamp};
use crate::auth::{Caller, Permission};
use crate::bookings::{
    self, Bookable, BookableError, BookablePatch, BookableQuery, BookableSpec, MAX_GUESTS, MAX_UNITS,
    NightAvailability, RateRange, stay::MAX_STAY_NIGHTS,
};
use crate::catalog::domain::{optional_text, optional_url, text};
use crate::catalog::wire::double_option;
use crate::error::{ApiError, ErrorCode};
use crate::http::AppState;
use crate::kernel::{FieldError, Labels, MerchantId};
use crate::merchants::{self, Merchant};
use crate::money::{Money, MoneyDto};

/// The most nights one availability answer or one rate range covers.
pub const MAX_RANGE_NIGHTS: i64 = 366;
/// The most rate ranges in one `PUT .../rates`.
const MAX_RATE_RANGES: usize = 100;
/// Longest name and description, in characters.
const MAX_NAME_CHARS: usize = 200;
const MAX_DESCRIPTION_CHARS: usize = 5000;

pub(super) fn routes(api: &mut Api<'_>) {
    api.route(Method::GET, "/v1/bookables", list_bookables)
        .route(Method::POST, "/v1/bookables", create_bookable)
        .route(Method::GET, "/v1/bookables/{bookable_id}", get_bookable)
        .route(Method::PATCH, "/v1/bookables/{bookable_id}", update_bookable)
        .route(Method::DELETE, "/v1/bookables/{bookable_id}", delete_bookable)
        .route(Method::PUT, "/v1/bookables/{bookable_id}/rates", put_rates)
        .route(
            Method::GET,
            "/v1/bookables/{bookable_id}/availability",
            availability,
        );
}

impl From<BookableError> for ApiError {
    fn from(e: BookableError) -> Self {
        match e {
            BookableError::NotFound => ApiError::not_found("bookable"),
            BookableError::Invalid(errors) => ApiError::validation(errors),
            BookableError::UnitsTaken { night, taken } => ApiError::conflict(
                ErrorCode::UnitsTaken,
                format!(
                    "{taken} units are held or booked on the night of {night}: units cannot go below that"
                ),
            ),
            BookableError::HasStays => ApiError::conflict(
                ErrorCode::BookableHasStays,
                "stays are held or booked in this bookable from today on: cancel them first, or set `active` to false",
            ),
            BookableError::Db(db) => db.into(),
            BookableError::Unavailable(db) => db.into(),
        }
    }
}

// ---- field rules --------------------------------------------------------------------------------

fn count_in(field: &str, value: i64, min: u32, max: u32, errors: &mut Vec<FieldError>) -> u32 {
    match u32::try_from(value) {
        Ok(n) if (min..=max).contains(&n) => n,
        _ => {
            errors.push(FieldError::new(
                field,
                "out_of_range",
                format!("must be a whole number from {min} to {max}"),
            ));
            min
        }
    }
}

fn time(field: &str, value: &str, errors: &mut Vec<FieldError>) -> chrono::NaiveTime {
    bookings::parse_time(value).unwrap_or_else(|| {
        errors.push(FieldError::new(
            field,
            "invalid_time",
            "must be a time such as \"15:00\"",
        ));
        chrono::NaiveTime::MIN
    })
}

fn timezone(field: &str, value: &str, errors: &mut Vec<FieldError>) -> chrono_tz::Tz {
    value.parse().unwrap_or_else(|_| {
        errors.push(FieldError::new(
            field,
            "unknown_timezone",
            format!("`{value}` is not an IANA timezone such as Europe/Paris"),
        ));
        chrono_tz::UTC
    })
}

fn price(field: &str, dto: &MoneyDto, merchant: &Merchant, errors: &mut Vec<FieldError>) -> Money {
    match dto.parse_price() {
        Ok(m) if m.currency() == merchant.currency => m,
        Ok(_) => {
            errors.push(FieldError::new(
                field,
                "currency_mismatch",
                format!("prices must be in the merchant's currency {}", merchant.currency),
            ));
            Money::zero(merchant.currency)
        }
        Err(e) => {
            errors.push(FieldError::new(field, e.code(), e.to_string()));
            Money::zero(merchant.currency)
        }
    }
}

fn date(field: &str, value: Option<&str>, errors: &mut Vec<FieldError>) -> Option<NaiveDate> {
    let Some(value) = value else {
        errors.push(FieldError::new(
            field,
            "required",
            "give a date such as 2026-12-24",
        ));
        return None;
    };
    let parsed = NaiveDate::parse_from_str(value, "%Y-%m-%d").ok();
    if parsed.is_none() {
        errors.push(FieldError::new(
            field,
            "invalid_date",
            format!("`{value}` is not a date such as 2026-12-24"),
        ));
    }
    parsed
}

/// `from` (included) to `to` (excluded), at most [`MAX_RANGE_NIGHTS`] nights apart.
fn date_range(
    (from_field, from): (&str, Option<&str>),
    (to_field, to): (&str, Option<&str>),
    errors: &mut Vec<FieldError>,
) -> Option<(NaiveDate, NaiveDate)> {
    let (from, to) = (date(from_field, from, errors)?, date(to_field, to, errors)?);
    let nights = (to - from).num_days();
    if nights <= 0 {
        errors.push(FieldError::new(
            to_field,
            "out_of_range",
            format!("must be after `{from_field}`"),
        ));
        None
    } else if nights > MAX_RANGE_NIGHTS {
        errors.push(FieldError::new(
            to_field,
            "range_too_long",
            format!("covers at most {MAX_RANGE_NIGHTS} nights"),
        ));
        None
    } else {
        Some((from, to))
    }
}

fn validated<T>(value: T, errors: Vec<FieldError>) -> Result<T, ApiError> {
    if errors.is_empty() {
        Ok(value)
    } else {
        Err(ApiError::validation(errors))
    }
}

// ---- wire shapes --------------------------------------------------------------------------------

/// `POST /v1/bookables`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BookableCreate {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    image_url: Option<String>,
    units: i64,
    max_guests: i64,
    nightly_price: MoneyDto,
    #[serde(default)]
    min_nights: Option<i64>,
    #[serde(default)]
    max_nights: Option<i64>,
    #[serde(default)]
    check_in_time: Option<String>,
    #[serde(default)]
    check_out_time: Option<String>,
    #[serde(default)]
    timezone: Option<String>,
    #[serde(default)]
    active: Option<bool>,
    #[serde(default)]
    labels: Vec<String>,
}

/// Defaults of the optional fields: one night to a month, in at 15:00, out at 11:00.
const DEFAULT_MAX_NIGHTS: i64 = 30;
const DEFAULT_CHECK_IN: &str = "15:00";
const DEFAULT_CHECK_OUT: &str = "11:00";

impl BookableCreate {
    fn parse(self, merchant: &Merchant) -> Result<BookableSpec, ApiError> {
        let mut e = Vec::new();
        let max_stay = MAX_STAY_NIGHTS;
        let spec = BookableSpec {
            name: text("name", &self.name, MAX_NAME_CHARS, &mut e),
            description: optional_text(
                "description",
                self.description.as_deref(),
                MAX_DESCRIPTION_CHARS,
                &mut e,
            ),
            image_url: optional_url("image_url", self.image_url.as_deref(), &mut e),
            units: count_in("units", self.units, 0, MAX_UNITS, &mut e),
            max_guests: count_in("max_guests", self.max_guests, 1, MAX_GUESTS, &mut e),
            base_price: price("nightly_price", &self.nightly_price, merchant, &mut e),
            min_nights: count_in("min_nights", self.min_nights.unwrap_or(1), 1, max_stay, &mut e),
            max_nights: count_in(
                "max_nights",
                self.max_nights.unwrap_or(DEFAULT_MAX_NIGHTS),
                1,
                max_stay,
                &mut e,
            ),
            check_in: time(
                "check_in_time",
                self.check_in_time.as_deref().unwrap_or(DEFAULT_CHECK_IN),
                &mut e,
            ),
            check_out: time(
                "check_out_time",
                self.check_out_time.as_deref().unwrap_or(DEFAULT_CHECK_OUT),
                &mut e,
            ),
            timezone: match self.timezone.as_deref() {
                Some(tz) => timezone("timezone", tz, &mut e),
                None => merchant.timezone,
            },
            active: self.active.unwrap_or(true),
            labels: Labels::parse("labels", &self.labels, &mut e),
        };
        validated(spec, e)
    }
}

/// `PATCH /v1/bookables/{bookable_id}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BookableUpdate {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    description: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    image_url: Option<Option<String>>,
    #[serde(default)]
    units: Option<i64>,
    #[serde(default)]
    max_guests: Option<i64>,
    #[serde(default)]
    nightly_price: Option<MoneyDto>,
    #[serde(default)]
    min_nights: Option<i64>,
    #[serde(default)]
    max_nights: Option<i64>,
    #[serde(default)]
    check_in_time: Option<String>,
    #[serde(default)]
    check_out_time: Option<String>,
    #[serde(default)]
    timezone: Option<String>,
    #[serde(default)]
    active: Option<bool>,
    #[serde(default)]
    labels: Option<Vec<String>>,
}

impl BookableUpdate {
    fn parse(self, merchant: &Merchant) -> Result<BookablePatch, ApiError> {
        let mut e = Vec::new();
        let max_stay = MAX_STAY_NIGHTS;
        let patch = BookablePatch {
            name: self.name.map(|n| text("name", &n, MAX_NAME_CHARS, &mut e)),
            description: self
                .description
                .map(|d| optional_text("description", d.as_deref(), MAX_DESCRIPTION_CHARS, &mut e)),
            image_url: self
                .image_url
                .map(|u| optional_url("image_url", u.as_deref(), &mut e)),
            units: self.units.map(|n| count_in("units", n, 0, MAX_UNITS, &mut e)),
            max_guests: self
                .max_guests
                .map(|n| count_in("max_guests", n, 1, MAX_GUESTS, &mut e)),
            base_price: self
                .nightly_price
                .map(|p| price("nightly_price", &p, merchant, &mut e)),
            min_nights: self
                .min_nights
                .map(|n| count_in("min_nights", n, 1, max_stay, &mut e)),
            max_nights: self
                .max_nights
                .map(|n| count_in("max_nights", n, 1, max_stay, &mut e)),
            check_in: self.check_in_time.map(|t| time("check_in_time", &t, &mut e)),
            check_out: self.check_out_time.map(|t| time("check_out_time", &t, &mut e)),
            timezone: self.timezone.map(|tz| timezone("timezone", &tz, &mut e)),
            active: self.active,
            labels: self.labels.map(|l| Labels::parse("labels", &l, &mut e)),
        };
        validated(patch, e)
    }
}

/// A bookable as answered.
#[derive(Debug, Serialize)]
struct BookableBody {
    id: Uuid,
    name: String,
    description: Option<String>,
    image_url: Option<String>,
    units: u32,
    max_guests: u32,
    nightly_price: MoneyDto,
    min_nights: u32,
    max_nights: u32,
    check_in_time: String,
    check_out_time: String,
    timezone: &'static str,
    active: bool,
    labels: Labels,
    created_at: String,
    updated_at: String,
}

impl From<Bookable> for BookableBody {
    fn from(b: Bookable) -> Self {
        let s = b.spec;
        BookableBody {
            id: b.id,
            name: s.name,
            description: s.description,
            image_url: s.image_url,
            units: s.units,
            max_guests: s.max_guests,
            nightly_price: s.base_price.into(),
            min_nights: s.min_nights,
            max_nights: s.max_nights,
            check_in_time: bookings::format_time(s.check_in),
            check_out_time: bookings::format_time(s.check_out),
            timezone: s.timezone.name(),
            active: s.active,
            labels: s.labels,
            created_at: timestamp(b.created_at),
            updated_at: timestamp(b.updated_at),
        }
    }
}

/// One range of `PUT /v1/bookables/{bookable_id}/rates`: nights `from` to `to` (excluded).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateInput {
    from: String,
    to: String,
    price: Option<MoneyDto>,
}

/// `PUT /v1/bookables/{bookable_id}/rates`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RatesPut {
    rates: Vec<RateInput>,
}

impl RatesPut {
    fn parse(self) -> Result<Vec<RateRange>, ApiError> {
        let mut e = Vec::new();
        if self.rates.is_empty() || self.rates.len() > MAX_RATE_RANGES {
            e.push(FieldError::new(
                "rates",
                "out_of_range",
                format!("give 1 to {MAX_RATE_RANGES} ranges"),
            ));
        }
        let mut ranges = Vec::new();
        for (i, r) in self.rates.iter().enumerate() {
            let from_field = format!("rates[{i}].from");
            let to_field = format!("rates[{i}].to");
            let dates = date_range((&from_field, Some(&r.from)), (&to_field, Some(&r.to)), &mut e);
            let price = match r.price.as_ref().map(MoneyDto::parse_price) {
                None => None,
                Some(Ok(m)) => Some(m),
                Some(Err(err)) => {
                    e.push(FieldError::new(
                        format!("rates[{i}].price"),
                        err.code(),
                        err.to_string(),
                    ));
                    None
                }
            };
            if let Some((from, to)) = dates {
                ranges.push(RateRange { from, to, price });
            }
        }
        validated(ranges, e)
    }
}

#[derive(Debug, Serialize)]
struct RatesBody {
    nights: usize,
}

#[derive(Debug, Deserialize)]
struct AvailabilityParams {
    from: Option<String>,
    to: Option<String>,
}

#[derive(Debug, Serialize)]
struct NightBody {
    date: NaiveDate,
    available: u32,
    price: MoneyDto,
}

impl From<NightAvailability> for NightBody {
    fn from(n: NightAvailability) -> Self {
        NightBody {
            date: n.night,
            available: n.available,
            price: n.price.into(),
        }
    }
}

#[derive(Debug, Serialize)]
struct AvailabilityBody {
    bookable_id: Uuid,
    from: NaiveDate,
    to: NaiveDate,
    nights: Vec<NightBody>,
}

#[derive(Deserialize)]
struct ListParams {
    limit: Option<i64>,
    cursor: Option<String>,
    order: Option<String>,
    active: Option<bool>,
}

// ---- handlers -----------------------------------------------------------------------------------

async fn merchant(state: &AppState, merchant_id: MerchantId) -> Result<Merchant, ApiError> {
    Ok(state
        .db
        .query(move |conn| merchants::get(conn, merchant_id))
        .await?)
}

async fn list_bookables(
    caller: Caller,
    state: web::Data<AppState>,
    params: web::Query<ListParams>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ReadCatalog)?;
    let params = params.into_inner();
    let page = PageParams {
        limit: params.limit,
        cursor: params.cursor,
        order: params.order.clone(),
    };
    let limit = page.limit()?;
    let query = BookableQuery {
        page: page.keyset()?,
        limit: limit + 1,
        active_only: params.active.unwrap_or(false),
    };
    let items = state
        .db
        .query(move |conn| bookings::list(conn, caller.merchant_id, &query))
        .await?;
    Ok(HttpResponse::Ok().json(ListBody::from_items(
        items,
        limit,
        |b| b.id.to_string(),
        BookableBody::from,
    )))
}

async fn create_bookable(
    caller: Caller,
    state: web::Data<AppState>,
    body: web::Json<BookableCreate>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::WriteCatalog)?;
    let merchant = merchant(&state, caller.merchant_id).await?;
    let spec = body.into_inner().parse(&merchant)?;
    let bookable = super::run(&state, move |conn| {
        bookings::create(conn, caller.merchant_id, &spec)
    })
    .await?;
    tracing::info!(merchant.id = %caller.merchant_id, bookable.id = %bookable.id, "bookable created");
    Ok(created(BookableBody::from(bookable)))
}

async fn get_bookable(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ReadCatalog)?;
    let id = path.into_inner();
    let bookable = state
        .db
        .query(move |conn| bookings::get(conn, caller.merchant_id, id))
        .await?
        .ok_or_else(|| ApiError::not_found("bookable"))?;
    Ok(HttpResponse::Ok().json(BookableBody::from(bookable)))
}

async fn update_bookable(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    body: web::Json<BookableUpdate>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::WriteCatalog)?;
    let merchant = merchant(&state, caller.merchant_id).await?;
    let patch = body.into_inner().parse(&merchant)?;
    let id = path.into_inner();
    let bookable = super::run(&state, move |conn| {
        bookings::update(conn, caller.merchant_id, id, patch)
    })
    .await?;
    Ok(HttpResponse::Ok().json(BookableBody::from(bookable)))
}

async fn delete_bookable(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::WriteCatalog)?;
    let id = path.into_inner();
    super::run(&state, move |conn| bookings::delete(conn, caller.merchant_id, id)).await?;
    tracing::info!(merchant.id = %caller.merchant_id, bookable.id = %id, "bookable deleted");
    Ok(HttpResponse::NoContent().finish())
}

async fn put_rates(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    body: web::Json<RatesPut>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::WriteCatalog)?;
    let ranges = body.into_inner().parse()?;
    let id = path.into_inner();
    let nights = super::run(&state, move |conn| {
        bookings::set_rates(conn, caller.merchant_id, id, &ranges)
    })
    .await?;
    Ok(HttpResponse::Ok().json(RatesBody { nights }))
}

async fn availability(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    params: web::Query<AvailabilityParams>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ReadCatalog)?;
    let mut e = Vec::new();
    let range = date_range(
        ("from", params.from.as_deref()),
        ("to", params.to.as_deref()),
        &mut e,
    );
    let Some((from, to)) = range else {
        return Err(ApiError::validation(e));
    };
    let id = path.into_inner();
    let nights = super::run(&state, move |conn| {
        bookings::availability(conn, caller.merchant_id, id, from, to)
    })
    .await?;
    Ok(HttpResponse::Ok().json(AvailabilityBody {
        bookable_id: id,
        from,
        to,
        nights: nights.into_iter().map(NightBody::from).collect(),
    }))
}
