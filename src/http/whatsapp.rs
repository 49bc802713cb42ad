//! Connecting WhatsApp Cloud API numbers to the caller's merchant, once Meta confirms the number is on
//! the WhatsApp Business Account the token can see.

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Api, ListBody, PageParams, created, timestamp};
use crate::auth::{Caller, Permission};
use crate::channels::meta::ownership::{self, OwnershipError};
use crate::db::is_unique_violation_on;
use crate::error::{ApiError, ErrorCode};
use crate::http::AppState;
use crate::merchants::whatsapp::{self, NewNumber, Number, NumberChange};

pub(super) fn routes(api: &mut Api<'_>) {
    api.route(Method::POST, "/v1/whatsapp/numbers", connect)
        .route(Method::GET, "/v1/whatsapp/numbers", list)
        .route(Method::GET, "/v1/whatsapp/numbers/{number_id}", get)
        .route(Method::PATCH, "/v1/whatsapp/numbers/{number_id}", update)
        .route(Method::DELETE, "/v1/whatsapp/numbers/{number_id}", disconnect)
        .route(
            Method::PUT,
            "/v1/whatsapp/numbers/{number_id}/conversions",
            set_conversions,
        );
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectRequest {
    phone_number_id: String,
    waba_id: String,
    access_token: String,
    #[serde(default)]
    catalog_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateRequest {
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default, deserialize_with = "crate::catalog::wire::double_option")]
    catalog_id: Option<Option<String>>,
}

#[derive(Serialize)]
struct NumberBody {
    id: Uuid,
    phone_number_id: String,
    waba_id: Option<String>,
    display_phone_number: Option<String>,
    verified_name: Option<String>,
    catalog_id: Option<String>,
    token_last4: String,
    token_status: &'static str,
    connected_at: String,
}

impl From<Number> for NumberBody {
    fn from(n: Number) -> Self {
        NumberBody {
            id: n.id.0,
            phone_number_id: n.phone_number_id.0,
            waba_id: n.waba_id,
            display_phone_number: n.display_phone_number,
            verified_name: n.verified_name,
            catalog_id: n.catalog_id,
            token_last4: n.token_last4,
            token_status: n.token_status.as_str(),
            connected_at: timestamp(n.connected_at),
        }
    }
}

fn refused(e: OwnershipError) -> ApiError {
    super::pages::ownership_refused(
        e,
        "give the id of a number on that account, and a token of the account's system user",
        "the number",
    )
}

/// Connects a number: Meta must list it among the WhatsApp Business Account's numbers for the token.
/// The token is sealed and never shown again.
async fn connect(
    caller: Caller,
    state: web::Data<AppState>,
    body: web::Json<ConnectRequest>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ManagePages)?;
    let body = body.into_inner();
    let new = NewNumber::parse(
        &body.phone_number_id,
        &body.waba_id,
        &body.access_token,
        body.catalog_id.as_deref(),
    )
    .map_err(ApiError::validation)?;
    let described = ownership::confirm_whatsapp(
        &state.graph,
        &new.waba_id,
        new.phone_number_id.as_str(),
        &body.access_token,
    )
    .await
    .map_err(refused)?;
    let shown = new.phone_number_id.clone();
    let number = state
        .db
        .query({
            let state = state.clone();
            move |conn| whatsapp::connect(conn, &state.secrets, caller.merchant_id, &new, &described)
        })
        .await
        .map_err(|e| match e {
            crate::db::DbError::Query(q) if is_unique_violation_on(&q, "pages") => ApiError::conflict(
                ErrorCode::PageAlreadyConnected,
                format!("WhatsApp number {shown} is already connected to a merchant"),
            ),
            other => other.into(),
        })?;
    tracing::info!(merchant.id = %caller.merchant_id, phone_number.id = %number.phone_number_id, "WhatsApp number connected");
    Ok(created(NumberBody::from(number)))
}

async fn list(
    caller: Caller,
    state: web::Data<AppState>,
    page: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ManagePages)?;
    let (limit, keyset) = (page.limit()?, page.keyset()?);
    let items = state
        .db
        .query(move |conn| whatsapp::list(conn, caller.merchant_id, keyset, limit + 1))
        .await?;
    Ok(HttpResponse::Ok().json(ListBody::from_items(
        items,
        limit,
        |n| n.id.0.to_string(),
        NumberBody::from,
    )))
}

async fn get(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ManagePages)?;
    let id = path.into_inner();
    let number = state
        .db
        .query(move |conn| whatsapp::get(conn, caller.merchant_id, id))
        .await?
        .ok_or_else(|| ApiError::not_found("WhatsApp number"))?;
    Ok(HttpResponse::Ok().json(NumberBody::from(number)))
}

/// Gives the number a new token (Meta must still list the number on its account for it: the token is
/// then sealed and the number marked working again) or links another catalog (`null` unlinks it), in
/// place: its threads, templates and Conversions API dataset stay.
async fn update(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    body: web::Json<UpdateRequest>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ManagePages)?;
    let id = path.into_inner();
    let body = body.into_inner();
    let change = NumberChange::parse(
        body.access_token.as_deref(),
        body.catalog_id.as_ref().map(|c| c.as_deref()),
    )
    .map_err(ApiError::validation)?;
    let number = state
        .db
        .query(move |conn| whatsapp::get(conn, caller.merchant_id, id))
        .await?
        .ok_or_else(|| ApiError::not_found("WhatsApp number"))?;
    // A new token is stored only once Meta lists the number on its account for it.
    let described = match &body.access_token {
        Some(token) => {
            let waba = number.waba_id.as_deref().unwrap_or_default();
            let confirmed =
                ownership::confirm_whatsapp(&state.graph, waba, number.phone_number_id.as_str(), token)
                    .await
                    .map_err(refused)?;
            Some(confirmed)
        }
        None => None,
    };
    let updated = state
        .db
        .query({
            let state = state.clone();
            move |conn| {
                whatsapp::update(
                    conn,
                    &state.secrets,
                    caller.merchant_id,
                    id,
                    &change,
                    described.as_ref(),
                )
            }
        })
        .await?
        .ok_or_else(|| ApiError::not_found("WhatsApp number"))?;
    tracing::info!(merchant.id = %caller.merchant_id, number.id = %id, token = body.access_token.is_some(), "WhatsApp number changed");
    Ok(HttpResponse::Ok().json(NumberBody::from(updated)))
}

/// Sets the number's Conversions API dataset (and its token): WhatsApp purchases that followed a
/// Click-to-WhatsApp ad are then told to Meta with the ad click's `ctwa_clid`.
async fn set_conversions(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    body: web::Json<super::reports::ConversionsSettings>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ManagePages)?;
    let id = path.into_inner();
    let number = state
        .db
        .query(move |conn| whatsapp::get(conn, caller.merchant_id, id))
        .await?
        .ok_or_else(|| ApiError::not_found("WhatsApp number"))?;
    super::reports::set_dataset(
        &state,
        caller.merchant_id,
        (number.phone_number_id, crate::merchants::pages::WHATSAPP),
        body.into_inner(),
        "WhatsApp number",
    )
    .await
}

/// Disconnects the number: nothing more is received or sent through it (its threads stay).
async fn disconnect(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ManagePages)?;
    let id = path.into_inner();
    let gone = state
        .db
        .query(move |conn| whatsapp::delete(conn, caller.merchant_id, id))
        .await?;
    if !gone {
        return Err(ApiError::not_found("WhatsApp number"));
    }
    tracing::info!(merchant.id = %caller.merchant_id, number.id = %id, "WhatsApp number disconnected");
    Ok(HttpResponse::NoContent().finish())
}
