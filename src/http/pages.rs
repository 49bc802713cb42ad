//! Connecting Messenger Pages to the caller's merchant, once Meta confirms the token is the Page's.

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::{Api, ListBody, PageParams, created, timestamp};
use crate::auth::{Caller, Permission};
use crate::channels::meta::ownership::{self, OwnershipError};
use crate::channels::meta::profile;
use crate::db::is_unique_violation_on;
use crate::error::{ApiError, ErrorCode};
use crate::http::AppState;
use crate::kernel::PageId;
use crate::merchants::pages::{self, NewPage, Page};

pub(super) fn routes(api: &mut Api<'_>) {
    api.route(Method::POST, "/v1/pages", connect)
        .route(Method::GET, "/v1/pages", list)
        .route(Method::GET, "/v1/pages/{page_id}", get)
        .route(Method::PATCH, "/v1/pages/{page_id}", update)
        .route(Method::DELETE, "/v1/pages/{page_id}", disconnect);
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectRequest {
    page_id: PageId,
    #[serde(default)]
    name: Option<String>,
    access_token: String,
    /// The Instagram professional account linked to the Page, to take its Direct messages too.
    #[serde(default)]
    instagram_account_id: Option<String>,
}

#[derive(Serialize)]
struct PageBody {
    page_id: PageId,
    name: Option<String>,
    token_last4: String,
    connected_at: String,
    token_status: String,
    human_agent_enabled: bool,
    messenger_profile: String,
    instagram_account_id: Option<String>,
}

impl From<Page> for PageBody {
    fn from(p: Page) -> Self {
        PageBody {
            page_id: p.page_id,
            name: p.name,
            token_last4: p.token_last4,
            connected_at: timestamp(p.connected_at),
            token_status: p.token_status.as_str().to_owned(),
            human_agent_enabled: p.human_agent_enabled,
            messenger_profile: p.profile_status,
            instagram_account_id: p.instagram_account_id,
        }
    }
}

async fn connect(
    caller: Caller,
    state: web::Data<AppState>,
    body: web::Json<ConnectRequest>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ManagePages)?;
    let mut new = NewPage::parse(&body.page_id, body.name.as_deref(), &body.access_token)
        .map_err(ApiError::validation)?;
    new.instagram_account_id = body
        .instagram_account_id
        .as_deref()
        .map(pages::parse_instagram_account_id)
        .transpose()
        .map_err(|e| ApiError::validation(vec![e]))?;
    ownership::confirm_page(&state.graph, &new.page_id, &body.access_token)
        .await
        .map_err(refused)?;
    if let Some(instagram) = &new.instagram_account_id {
        ownership::confirm_instagram(&state.graph, &new.page_id, &body.access_token, instagram)
            .await
            .map_err(refused_instagram)?;
    }
    let page_id = new.page_id.clone();
    let token = body.access_token.clone();
    let page = state
        .db
        .query({
            let state = state.clone();
            move |conn| pages::connect(conn, &state.secrets, caller.merchant_id, &new)
        })
        .await
        .map_err(|e| match e {
            crate::db::DbError::Query(q) => taken(q, &page_id),
            other => other.into(),
        })?;
    tracing::info!(merchant.id = %caller.merchant_id, page.id = %page.page_id, "Page connected");
    let status = profile::set_profile(&state.db, &state.graph, &page.page_id, &token).await;
    Ok(created(PageBody::from(pages::Page {
        profile_status: status,
        ..page
    })))
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
        .query(move |conn| pages::list(conn, caller.merchant_id, keyset, limit + 1))
        .await?;
    Ok(HttpResponse::Ok().json(ListBody::from_items(
        items,
        limit,
        |p| p.id.to_string(),
        PageBody::from,
    )))
}

async fn get(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<PageId>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ManagePages)?;
    let page_id = path.into_inner();
    let page = state
        .db
        .query(move |conn| pages::get(conn, caller.merchant_id, &page_id))
        .await
        .map_err(|e| not_found_as("Page", e))?;
    Ok(HttpResponse::Ok().json(PageBody::from(page)))
}

async fn disconnect(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<PageId>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ManagePages)?;
    let page_id = path.into_inner();
    let id = page_id.clone();
    let gone = state
        .db
        .query(move |conn| pages::disconnect(conn, caller.merchant_id, &id))
        .await?;
    if !gone {
        return Err(ApiError::not_found("Page"));
    }
    tracing::info!(merchant.id = %caller.merchant_id, page.id = %page_id, "Page disconnected");
    Ok(HttpResponse::NoContent().finish())
}

/// A Page or an Instagram account connected to a merchant already, or another failure.
fn taken(q: diesel::result::Error, page_id: &str) -> ApiError {
    use diesel::result::{DatabaseErrorKind, Error};
    let on_instagram = matches!(&q, Error::DatabaseError(DatabaseErrorKind::UniqueViolation, info)
        if info.constraint_name().is_some_and(|c| c.contains("instagram"))
            || info.message().contains("instagram_account_id"));
    if on_instagram {
        ApiError::conflict(
            ErrorCode::InstagramAccountAlreadyConnected,
            "this Instagram account is already connected to a merchant",
        )
    } else if is_unique_violation_on(&q, "pages") {
        ApiError::conflict(
            ErrorCode::PageAlreadyConnected,
            format!("Page {page_id} is already connected to a merchant"),
        )
    } else {
        q.into()
    }
}

/// Why an Instagram account was not accepted, for the caller.
fn refused_instagram(e: OwnershipError) -> ApiError {
    match e {
        OwnershipError::Mismatch { .. } => ApiError::new(
            actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InstagramAccountMismatch,
            format!("{e}: Meta links another account (or none) to this Page"),
        ),
        other => refused(other),
    }
}

/// Why a Page's token was not accepted, for the caller.
fn refused(e: OwnershipError) -> ApiError {
    ownership_refused(e, "give the Page's own Page access token", "the token")
}

/// Why Meta did not confirm an account (a Page, a WhatsApp number) as the token's, for the caller:
/// `hint` says what to give on a mismatch, `what` names what Meta was asked to confirm.
pub(super) fn ownership_refused(e: OwnershipError, hint: &str, what: &str) -> ApiError {
    use actix_web::http::StatusCode;
    match e {
        OwnershipError::Mismatch { .. } => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::PageTokenMismatch,
            format!("{e}: {hint}"),
        ),
        OwnershipError::TokenRefused(_) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::PageTokenInvalid,
            e.to_string(),
        ),
        OwnershipError::MetaError(cause) => ApiError::upstream(
            StatusCode::BAD_GATEWAY,
            ErrorCode::MetaError,
            format!("Meta's Graph API failed to confirm {what}; try again"),
            Some(cause.into()),
        ),
        OwnershipError::Unreachable(cause) => ApiError::upstream(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::MetaUnreachable,
            format!("Meta's Graph API could not be reached to confirm {what}; try again"),
            Some(cause.into()),
        ),
    }
}

/// Maps a missing row to a 404 naming `what`.
pub(super) fn not_found_as(what: &str, e: crate::db::DbError) -> ApiError {
    match e {
        crate::db::DbError::Query(diesel::result::Error::NotFound) => ApiError::not_found(what),
        other => other.into(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateRequest {
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    human_agent_enabled: Option<bool>,
    /// An id connects the Page's Instagram account, `null` disconnects it.
    #[serde(default, deserialize_with = "present")]
    instagram_account_id: Option<Option<String>>,
}

/// A field given as a value or `null` (`Some`), told apart from one left out (`None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

async fn update(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<PageId>,
    body: web::Json<UpdateRequest>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ManagePages)?;
    let page_id = path.into_inner();
    let body = body.into_inner();
    let new_token = body.access_token.clone();
    let access_token = body
        .access_token
        .map(|t| NewPage::parse_token(&t))
        .transpose()
        .map_err(|e| ApiError::validation(vec![e]))?;
    let instagram = match body.instagram_account_id {
        Some(Some(id)) => Some(Some(
            pages::parse_instagram_account_id(&id).map_err(|e| ApiError::validation(vec![e]))?,
        )),
        other => other,
    };
    if new_token.is_some() || matches!(instagram, Some(Some(_))) {
        // The caller's Page first (another merchant's answers 404 before Meta is asked anything).
        let id = page_id.clone();
        state
            .db
            .query(move |conn| pages::get(conn, caller.merchant_id, &id))
            .await
            .map_err(|e| not_found_as("Page", e))?;
    }
    if let Some(token) = &new_token {
        ownership::confirm_page(&state.graph, &page_id, token)
            .await
            .map_err(refused)?;
    }
    if let Some(Some(account)) = &instagram {
        let token = match &new_token {
            Some(t) => t.clone(),
            None => stored_token(&state, &page_id).await?,
        };
        ownership::confirm_instagram(&state.graph, &page_id, &token, account)
            .await
            .map_err(refused_instagram)?;
    }
    let change = pages::PageChange {
        access_token,
        human_agent_enabled: body.human_agent_enabled,
        instagram_account_id: instagram,
    };
    let page = state
        .db
        .query({
            let state = state.clone();
            move |conn| pages::update(conn, &state.secrets, caller.merchant_id, &page_id, &change)
        })
        .await
        .map_err(|e| match e {
            crate::db::DbError::Query(diesel::result::Error::NotFound) => ApiError::not_found("Page"),
            crate::db::DbError::Query(q) => taken(q, "this Page"),
            other => other.into(),
        })?;
    let page = match new_token {
        // A new token may come with a new app: set the profile again.
        Some(token) => pages::Page {
            profile_status: profile::set_profile(&state.db, &state.graph, &page.page_id, &token).await,
            ..page
        },
        None => page,
    };
    Ok(HttpResponse::Ok().json(PageBody::from(page)))
}

/// The Page's working access token, opened, to ask Meta about it.
pub(super) async fn stored_token(state: &AppState, page_id: &PageId) -> Result<String, ApiError> {
    let id = page_id.to_owned();
    let sealed = state
        .db
        .query(move |conn| pages::access_token(conn, &id))
        .await?
        .ok_or_else(|| {
            ApiError::conflict(
                ErrorCode::PageTokenBroken,
                "the Page's access token was refused by Meta: give a new one with the Instagram account",
            )
        })?;
    state
        .secrets
        .open(&sealed)
        .map(|t| secrecy::ExposeSecret::expose_secret(&t).to_owned())
        .map_err(|e| ApiError::internal(anyhow::anyhow!("the Page's token does not decrypt: {e}")))
}
