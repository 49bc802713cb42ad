//! Booking routes: the merchant's held and booked stays, and cancelling them.

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Api, ListBody, PageParams, timestamp};
use crate::auth::{Caller, Permission};
use crate::bookings::{self, Booking, BookingError, BookingQuery, BookingStatus};
use crate::checkout::payments;
use crate::error::{ApiError, ErrorCode};
use crate::http::AppState;
use crate::kernel::{FieldError, OrderId, ThreadId};
use crate::money::MoneyDto;

pub(super) fn routes(api: &mut Api<'_>) {
    api.route(Method::GET, "/v1/bookings", list_bookings)
        .route(Method::GET, "/v1/bookings/{booking_id}", get_booking)
        .route(Method::POST, "/v1/bookings/{booking_id}/cancel", cancel_booking);
}

impl From<BookingError> for ApiError {
    fn from(e: BookingError) -> Self {
        match e {
            BookingError::NotFound => ApiError::not_found("booking"),
            BookingError::WrongStatus(status) => ApiError::conflict(
                ErrorCode::BookingNotActive,
                format!("the booking is {status}: only held or confirmed bookings change"),
            ),
            BookingError::OtherOrder => ApiError::conflict(
                ErrorCode::BookingConfirmedElsewhere,
                "the booking is confirmed by another order",
            ),
            BookingError::NoLongerAvailable => ApiError::conflict(
                ErrorCode::NotAvailable,
                "the nights of the booking are no longer available",
            ),
            BookingError::NothingToRefund => ApiError::conflict(
                ErrorCode::NothingToRefund,
                "the booking has no paid order to refund: cancel it without `refund`",
            ),
            BookingError::Db(db) => db.into(),
            BookingError::Unavailable(db) => db.into(),
        }
    }
}

/// A booking as answered.
#[derive(Debug, Serialize)]
pub(super) struct BookingBody {
    id: Uuid,
    bookable_id: Uuid,
    thread_id: Option<ThreadId>,
    order_id: Option<OrderId>,
    arrival: NaiveDate,
    departure: NaiveDate,
    nights: u32,
    guests: u32,
    status: &'static str,
    total: MoneyDto,
    expires_at: String,
    created_at: String,
    updated_at: String,
    reminder: Option<String>,
    reminded_at: Option<String>,
    /// How and when the guest was told of the booking, on its own page only.
    #[serde(skip_serializing_if = "Option::is_none")]
    notices: Option<Vec<super::orders::NoticeBody>>,
}

impl From<Booking> for BookingBody {
    fn from(b: Booking) -> Self {
        BookingBody {
            id: b.id,
            bookable_id: b.bookable_id,
            thread_id: b.thread_id,
            order_id: b.order_id,
            arrival: b.stay.arrival(),
            departure: b.stay.departure(),
            nights: b.stay.nights(),
            guests: b.guests,
            status: b.status.as_str(),
            total: b.total.into(),
            expires_at: timestamp(b.expires_at),
            created_at: timestamp(b.created_at),
            updated_at: timestamp(b.updated_at),
            reminder: b.reminder,
            reminded_at: b.reminded_at.map(timestamp),
            notices: None,
        }
    }
}

#[derive(Deserialize)]
struct ListParams {
    limit: Option<i64>,
    cursor: Option<String>,
    order: Option<String>,
    status: Option<String>,
    from: Option<String>,
    to: Option<String>,
    bookable_id: Option<Uuid>,
}

fn optional_date(field: &str, value: Option<&str>, errors: &mut Vec<FieldError>) -> Option<NaiveDate> {
    let value = value?;
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

impl ListParams {
    /// The filters, checked; `limit` is the page size plus one.
    fn query(&self, limit: i64, page: crate::db::Keyset) -> Result<BookingQuery, ApiError> {
        let mut errors = Vec::new();
        let status = self.status.as_deref().and_then(|s| {
            let status = BookingStatus::parse(s);
            if status.is_none() {
                errors.push(FieldError::new(
                    "status",
                    "invalid_status",
                    "must be held, confirmed, expired, released or cancelled",
                ));
            }
            status
        });
        let from = optional_date("from", self.from.as_deref(), &mut errors);
        let to = optional_date("to", self.to.as_deref(), &mut errors);
        if let (Some(from), Some(to)) = (from, to)
            && to <= from
        {
            errors.push(FieldError::new("to", "out_of_range", "must be after `from`"));
        }
        if !errors.is_empty() {
            return Err(ApiError::validation(errors));
        }
        Ok(BookingQuery {
            page,
            limit: limit + 1,
            status,
            from,
            to,
            bookable_id: self.bookable_id,
            thread_id: None,
        })
    }
}

/// `POST /v1/bookings/{booking_id}/cancel` (the body is optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelBody {
    #[serde(default)]
    refund: bool,
}

async fn list_bookings(
    caller: Caller,
    state: web::Data<AppState>,
    params: web::Query<ListParams>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ReadOrders)?;
    let params = params.into_inner();
    let page = PageParams {
        limit: params.limit,
        cursor: params.cursor.clone(),
        order: params.order.clone(),
    };
    let limit = page.limit()?;
    let query = params.query(limit, page.keyset()?)?;
    let items = state
        .db
        .query(move |conn| bookings::list_bookings(conn, caller.merchant_id, &query))
        .await?;
    Ok(HttpResponse::Ok().json(ListBody::from_items(
        items,
        limit,
        |b| b.id.to_string(),
        BookingBody::from,
    )))
}

async fn get_booking(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ReadOrders)?;
    let id = path.into_inner();
    let (booking, notices) = state
        .db
        .query(move |conn| {
            let booking = bookings::get_booking(conn, caller.merchant_id, id)?;
            let notices = crate::conversations::notices::told_of(conn, caller.merchant_id, id)?;
            Ok((booking, notices))
        })
        .await?;
    let booking = booking.ok_or_else(|| ApiError::not_found("booking"))?;
    Ok(HttpResponse::Ok().json(BookingBody {
        notices: Some(super::orders::NoticeBody::all(notices)),
        ..BookingBody::from(booking)
    }))
}

async fn cancel_booking(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ManageOrders)?;
    let body: CancelBody = if body.iter().all(u8::is_ascii_whitespace) {
        CancelBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(
                ErrorCode::InvalidJson,
                format!("the body is not valid JSON for this route: {e}"),
            )
        })?
    };
    let cancelled = payments::cancel_stay(
        &state.db,
        state.stripe.as_ref(),
        caller.merchant_id,
        path.into_inner(),
        body.refund,
    )
    .await?;
    let mut answer =
        serde_json::to_value(BookingBody::from(cancelled.booking)).map_err(ApiError::internal)?;
    if let Some(refund) = cancelled.refund {
        // A stay's refund is answered with the order it was made on.
        let order_id = refund.order_id;
        let mut refund = super::orders::refund_body(refund);
        refund["order_id"] = serde_json::json!(order_id);
        answer["refund"] = refund;
    }
    Ok(HttpResponse::Ok().json(answer))
}
