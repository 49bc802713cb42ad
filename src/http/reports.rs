//! Funnel reports (JSON or CSV), an ad's daily series, and the Conversions API: a Page's dataset
//! settings and the status of every event told to Meta.

use actix_web::http::{Method, header};
use actix_web::{HttpRequest, HttpResponse, web};
use std::collections::HashMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Api, ListBody, PageParams, timestamp};
use crate::attribution::conversions::{self, ConversionEvent, ConversionQuery, ConversionStatus};
use crate::attribution::report::{self, AdDay, FunnelRow, GroupBy, MAX_DAYS, Period};
use crate::auth::{Caller, Permission};
use crate::error::ApiError;
use crate::http::AppState;
use crate::kernel::{FieldError, MerchantId, OrderId, PageId};
use crate::money::MoneyDto;

pub(super) fn routes(api: &mut Api<'_>) {
    api.route(Method::GET, "/v1/reports/funnel", funnel)
        .route(Method::GET, "/v1/reports/ads/{ad_id}", ad)
        .route(Method::PUT, "/v1/pages/{page_id}/conversions", set_conversions)
        .route(Method::GET, "/v1/conversions", list_conversions);
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportParams {
    from: String,
    to: String,
    #[serde(default)]
    group_by: Option<String>,
    #[serde(default)]
    tz: Option<String>,
}

/// Parses the period; `tz` defaults to the merchant's timezone.
async fn period(state: &AppState, merchant_id: MerchantId, p: &ReportParams) -> Result<Period, ApiError> {
    let mut errors = Vec::new();
    let date = |field: &str, v: &str, errors: &mut Vec<FieldError>| {
        NaiveDate::parse_from_str(v, "%Y-%m-%d")
            .map_err(|_| {
                errors.push(FieldError::new(
                    field,
                    "invalid_date",
                    "a date such as 2026-11-25",
                ))
            })
            .ok()
    };
    let from = date("from", &p.from, &mut errors);
    let to = date("to", &p.to, &mut errors);
    let tz = match &p.tz {
        None => Some(
            state
                .db
                .query(move |conn| crate::merchants::get(conn, merchant_id))
                .await?
                .timezone,
        ),
        Some(tz) => tz
            .parse::<chrono_tz::Tz>()
            .map_err(|_| {
                errors.push(FieldError::new(
                    "tz",
                    "unknown_timezone",
                    format!("`{tz}` is not an IANA timezone such as Europe/Paris"),
                ))
            })
            .ok(),
    };
    if let (Some(from), Some(to)) = (from, to)
        && (to < from || (to - from).num_days() >= MAX_DAYS)
    {
        errors.push(FieldError::new(
            "to",
            "invalid_period",
            format!("`to` is on or after `from`, at most {MAX_DAYS} days later"),
        ));
    }
    match (from, to, tz) {
        (Some(from), Some(to), Some(tz)) if errors.is_empty() => Ok(Period { from, to, tz }),
        _ => Err(ApiError::validation(errors)),
    }
}

#[derive(Serialize)]
struct RowBody {
    key: Option<String>,
    /// The ad's latest title, in reports grouped by ad.
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<String>,
    organic: bool,
    referrals: i64,
    threads: i64,
    engaged_threads: i64,
    product_views: i64,
    add_to_carts: i64,
    checkouts: i64,
    purchases: i64,
    cart_reminders: i64,
    recovered_purchases: i64,
    revenue: Vec<MoneyDto>,
    refunds: Vec<MoneyDto>,
    conversion_rates: std::collections::BTreeMap<&'static str, Option<rust_decimal::Decimal>>,
    median_seconds_to_purchase: Option<i64>,
}

impl From<FunnelRow> for RowBody {
    fn from(r: FunnelRow) -> Self {
        RowBody {
            conversion_rates: r.rates().into_iter().collect(),
            title: None,
            key: r.key,
            organic: r.organic,
            referrals: r.referrals,
            threads: r.threads,
            engaged_threads: r.engaged,
            product_views: r.product_views,
            add_to_carts: r.add_to_carts,
            checkouts: r.checkouts,
            purchases: r.purchases,
            cart_reminders: r.cart_reminders,
            recovered_purchases: r.recovered_purchases,
            revenue: r.revenue.into_iter().map(MoneyDto::from).collect(),
            refunds: r.refunds.into_iter().map(MoneyDto::from).collect(),
            median_seconds_to_purchase: r.median_seconds_to_purchase,
        }
    }
}

#[derive(Serialize)]
struct FunnelBody {
    from: NaiveDate,
    to: NaiveDate,
    timezone: &'static str,
    group_by: String,
    rows: Vec<RowBody>,
}

impl RowBody {
    /// The row with its ad's title, when one is known.
    fn titled(r: FunnelRow, titles: &HashMap<String, String>) -> Self {
        let title = r.key.as_ref().and_then(|k| titles.get(k)).cloned();
        RowBody {
            title,
            ..RowBody::from(r)
        }
    }
}

/// The CSV header of a funnel report.
const CSV_HEADER: &[&str] = &[
    "key",
    "organic",
    "referrals",
    "threads",
    "engaged_threads",
    "product_views",
    "add_to_carts",
    "checkouts",
    "purchases",
    "revenue",
    "refunds",
    "view_to_cart",
    "cart_to_checkout",
    "checkout_to_purchase",
    "thread_to_purchase",
    "median_seconds_to_purchase",
    "cart_reminders",
    "recovered_purchases",
];

/// A CSV field, quoted when it holds a comma, quote or line break (RFC 4180). A cell a spreadsheet would
/// run as a formula (starting with `=`, `+`, `-`, `@`, a tab or a carriage return: an ad id or a ref
/// comes from outside) starts with a single quote, which spreadsheets read as "text follows".
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// Amounts as `59.90 EUR`, several currencies joined with `; `.
fn csv_money(m: &[crate::money::Money]) -> String {
    m.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

fn csv(rows: Vec<FunnelRow>) -> String {
    let mut out = CSV_HEADER.join(",");
    out.push_str("\r\n");
    for r in rows {
        let rates = r
            .rates()
            .map(|(_, v)| v.map(|d| d.to_string()).unwrap_or_default());
        let fields: Vec<String> = [
            r.key.clone().unwrap_or_default(),
            r.organic.to_string(),
            r.referrals.to_string(),
            r.threads.to_string(),
            r.engaged.to_string(),
            r.product_views.to_string(),
            r.add_to_carts.to_string(),
            r.checkouts.to_string(),
            r.purchases.to_string(),
            csv_money(&r.revenue),
            csv_money(&r.refunds),
        ]
        .into_iter()
        .chain(rates)
        .chain([r
            .median_seconds_to_purchase
            .map(|s| s.to_string())
            .unwrap_or_default()])
        .chain([r.cart_reminders.to_string(), r.recovered_purchases.to_string()])
        .map(|f| csv_field(&f))
        .collect();
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    }
    out
}

fn wants_csv(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/csv"))
}

async fn funnel(
    req: HttpRequest,
    caller: Caller,
    state: web::Data<AppState>,
    params: web::Query<ReportParams>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ReadReports)?;
    let group_name = params.group_by.clone().unwrap_or_else(|| "ad".into());
    let Some(group_by) = GroupBy::parse(&group_name) else {
        return Err(ApiError::validation(vec![FieldError::new(
            "group_by",
            "invalid_group_by",
            "group_by is one of ad, ref, campaign, source, product",
        )]));
    };
    let p = period(&state, caller.merchant_id, &params).await?;
    let merchant_id = caller.merchant_id;
    let csv_wanted = wants_csv(&req);
    let (rows, titles) = state
        .db
        .query(move |conn| {
            // The rollup and the events not folded into it yet, read at one moment.
            let rows = crate::db::snapshot(conn, |conn| report::funnel(conn, merchant_id, &p, group_by))?;
            let titles = if group_by == GroupBy::Ad && !csv_wanted {
                report::ad_titles(
                    conn,
                    merchant_id,
                    rows.iter().filter_map(|r| r.key.clone()).collect(),
                )?
            } else {
                HashMap::new()
            };
            Ok((rows, titles))
        })
        .await?;
    if csv_wanted {
        return Ok(HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .body(csv(rows)));
    }
    Ok(HttpResponse::Ok().json(FunnelBody {
        from: p.from,
        to: p.to,
        timezone: p.tz.name(),
        group_by: group_name,
        rows: rows.into_iter().map(|r| RowBody::titled(r, &titles)).collect(),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeriesParams {
    from: String,
    to: String,
    #[serde(default)]
    tz: Option<String>,
}

#[derive(Serialize)]
struct DayBody {
    day: NaiveDate,
    #[serde(flatten)]
    funnel: RowBody,
}

#[derive(Serialize)]
struct SeriesBody {
    ad_id: String,
    /// The ad's latest title, when its touches carried one.
    title: Option<String>,
    timezone: &'static str,
    days: Vec<DayBody>,
}

async fn ad(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
    params: web::Query<SeriesParams>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ReadReports)?;
    let SeriesParams { from, to, tz } = params.into_inner();
    let p = period(
        &state,
        caller.merchant_id,
        &ReportParams {
            from,
            to,
            group_by: None,
            tz,
        },
    )
    .await?;
    let ad_id = path.into_inner();
    let merchant_id = caller.merchant_id;
    let id = ad_id.clone();
    let (days, mut titles) = state
        .db
        .query(move |conn| {
            let days = crate::db::snapshot(conn, |conn| report::ad_series(conn, merchant_id, &id, &p))?;
            let titles = report::ad_titles(conn, merchant_id, vec![id])?;
            Ok((days, titles))
        })
        .await?;
    Ok(HttpResponse::Ok().json(SeriesBody {
        title: titles.remove(&ad_id),
        ad_id,
        timezone: p.tz.name(),
        days: days
            .into_iter()
            .map(|AdDay { day, funnel }| DayBody {
                day,
                funnel: RowBody::from(funnel),
            })
            .collect(),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConversionsSettings {
    dataset_id: String,
    access_token: String,
}

#[derive(Serialize)]
struct ConversionsSettingsBody {
    page_id: PageId,
    dataset_id: String,
    access_token_set: bool,
}

async fn set_conversions(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<PageId>,
    body: web::Json<ConversionsSettings>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ManagePages)?;
    set_dataset(
        &state,
        caller.merchant_id,
        (path.into_inner(), crate::merchants::pages::MESSENGER),
        body.into_inner(),
        "Page",
    )
    .await
}

/// Sets the Conversions API dataset of the merchant's channel account `page_id` (a Page, or a WhatsApp
/// number's id); 404 naming `what` when the merchant has none.
pub(super) async fn set_dataset(
    state: &web::Data<AppState>,
    merchant_id: crate::kernel::MerchantId,
    (page_id, kind): (PageId, &'static str),
    settings: ConversionsSettings,
    what: &str,
) -> Result<HttpResponse, ApiError> {
    let ConversionsSettings {
        dataset_id,
        access_token,
    } = settings;
    let mut errors = Vec::new();
    let dataset_id = dataset_id.trim().to_owned();
    if dataset_id.is_empty() || dataset_id.len() > 64 || !dataset_id.chars().all(|c| c.is_ascii_digit()) {
        errors.push(FieldError::new(
            "dataset_id",
            "invalid_dataset_id",
            "the dataset id Meta gave, digits only",
        ));
    }
    if let Err(e) = crate::merchants::pages::NewPage::parse_token(&access_token) {
        errors.push(e);
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let (page, dataset) = (page_id.clone(), dataset_id.clone());
    let secrets = state.secrets.clone();
    let found = state
        .db
        .query(move |conn| {
            conversions::configure(
                conn,
                &secrets,
                merchant_id,
                (&page, kind),
                &dataset,
                &access_token,
            )
        })
        .await?;
    if !found {
        return Err(ApiError::not_found(what));
    }
    tracing::info!(merchant.id = %merchant_id, page.id = %page_id, "Conversions API dataset set");
    Ok(HttpResponse::Ok().json(ConversionsSettingsBody {
        page_id,
        dataset_id,
        access_token_set: true,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConversionParams {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    order_id: Option<OrderId>,
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    cursor: Option<String>,
    order: Option<String>,
}

#[derive(Serialize)]
struct ConversionBody {
    id: Uuid,
    event_id: String,
    event_name: String,
    event_time: String,
    page_id: PageId,
    order_id: Option<OrderId>,
    value: Option<MoneyDto>,
    status: String,
    attempts: i32,
    last_error: Option<String>,
    created_at: String,
    sent_at: Option<String>,
}

impl From<ConversionEvent> for ConversionBody {
    fn from(e: ConversionEvent) -> Self {
        ConversionBody {
            id: e.id.0,
            value: e.value().ok().map(MoneyDto::from),
            event_id: e.event_id,
            event_name: e.event_name,
            event_time: timestamp(e.event_time),
            page_id: e.page_id,
            order_id: e.order_id,
            status: e.status.as_str().to_owned(),
            attempts: e.attempts,
            last_error: e.last_error,
            created_at: timestamp(e.created_at),
            sent_at: e.sent_at.map(timestamp),
        }
    }
}

async fn list_conversions(
    caller: Caller,
    state: web::Data<AppState>,
    params: web::Query<ConversionParams>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ReadReports)?;
    let params = params.into_inner();
    let page = PageParams {
        limit: params.limit,
        cursor: params.cursor,
        order: params.order.clone(),
    };
    let (limit, keyset) = (page.limit()?, page.keyset()?);
    let status = match params.status.as_deref() {
        None => None,
        Some(s) => Some(ConversionStatus::parse(s).ok_or_else(|| {
            ApiError::validation(vec![FieldError::new(
                "status",
                "invalid_status",
                "status is one of pending, sent, failed, skipped",
            )])
        })?),
    };
    let q = ConversionQuery {
        status,
        order_id: params.order_id,
        page: keyset,
        limit: limit + 1,
    };
    let merchant_id = caller.merchant_id;
    let items = state
        .db
        .query(move |conn| conversions::list(conn, merchant_id, &q))
        .await?;
    Ok(HttpResponse::Ok().json(ListBody::from_items(
        items,
        limit,
        |e| e.id.0.to_string(),
        ConversionBody::from,
    )))
}
