//! Utility message templates: submitted to Meta for one of the merchant's Pages or WhatsApp numbers (a
//! number's go to its WhatsApp Business Account), listed with Meta's review, forgotten. (What they are
//! for: `crate::followups::templates`.)

use actix_web::http::{Method, StatusCode};
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Api, ListBody, PageParams, created, timestamp};
use crate::auth::{Caller, Permission};
use crate::channels::meta::graph::GraphError;
use crate::error::{ApiError, ErrorCode};
use crate::followups::templates::{self, NewTemplate, Template};
use crate::http::AppState;
use crate::kernel::PageId;

pub(super) fn routes(api: &mut Api<'_>) {
    api.route(Method::GET, "/v1/templates", list)
        .route(Method::POST, "/v1/templates", create)
        .route(Method::GET, "/v1/templates/{template_id}", get)
        .route(Method::DELETE, "/v1/templates/{template_id}", delete);
}

#[derive(Serialize)]
struct TemplateBody {
    id: Uuid,
    page_id: PageId,
    purpose: &'static str,
    language: String,
    name: String,
    body: String,
    placeholders: Vec<&'static str>,
    meta_template_id: Option<String>,
    status: &'static str,
    reason: Option<String>,
    created_at: String,
    updated_at: String,
}

impl From<Template> for TemplateBody {
    fn from(t: Template) -> Self {
        TemplateBody {
            id: t.id.0,
            page_id: t.page_id,
            purpose: t.purpose.as_str(),
            language: t.language,
            name: t.name,
            body: t.body,
            placeholders: t.purpose.placeholders().iter().map(|p| p.name()).collect(),
            meta_template_id: t.meta_template_id,
            status: t.status.as_str(),
            reason: t.reason,
            created_at: timestamp(t.created_at),
            updated_at: timestamp(t.updated_at),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateCreate {
    page_id: String,
    purpose: String,
    language: String,
    body: String,
}

/// Submits the template to Meta with the Page's token (`POST /{page-id}/message_templates`; for a
/// WhatsApp number `POST /{waba-id}/message_templates` with the number's), then stores it with Meta's
/// review.
async fn create(
    caller: Caller,
    state: web::Data<AppState>,
    body: web::Json<TemplateCreate>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ManagePages)?;
    let body = body.into_inner();
    let new = NewTemplate::parse(
        PageId::from(body.page_id),
        &body.purpose,
        &body.language,
        &body.body,
    )
    .map_err(ApiError::validation)?;
    let merchant_id = caller.merchant_id;
    let (page, lang, purpose) = (new.page_id.clone(), new.language.clone(), new.purpose);
    let (node, taken) = state
        .db
        .query(move |conn| {
            use diesel::OptionalExtension;
            // Meta keeps a Page's templates on the Page and a number's on its WhatsApp Business Account.
            let node = match crate::merchants::pages::get(conn, merchant_id, &page).optional()? {
                Some(p) => Some(p.page_id.0),
                None => crate::merchants::whatsapp::find(conn, merchant_id, &page)?.and_then(|n| n.waba_id),
            };
            let taken = templates::existing(conn, &page, purpose, &lang)?;
            Ok((node, taken))
        })
        .await?;
    let Some(node) = node else {
        return Err(ApiError::not_found("Page or WhatsApp number"));
    };
    if let Some(holder) = taken {
        let whose = if holder == new.page_id {
            "the Page has".to_owned()
        } else {
            format!("the number's WhatsApp Business Account has (submitted for number {holder})")
        };
        return Err(ApiError::conflict(
            ErrorCode::TemplateTaken,
            format!(
                "{whose} a {} template in `{}` already: delete it to submit another",
                new.purpose.as_str(),
                new.language
            ),
        ));
    }
    let token = super::pages::stored_token(&state, &new.page_id).await?;
    let answer = state
        .graph
        .create_template(&node, &token, &new.meta_request())
        .await
        .map_err(refused)?;
    let review = templates::status_of(answer.status.as_deref().unwrap_or("PENDING"), None);
    let stored = state
        .db
        .query(move |conn| templates::insert(conn, merchant_id, &new, &answer.id, review))
        .await?;
    tracing::info!(
        merchant.id = %merchant_id,
        template.id = %stored.id.0,
        status = stored.status.as_str(),
        "message template submitted"
    );
    Ok(created(TemplateBody::from(stored)))
}

fn refused(e: GraphError) -> ApiError {
    match e {
        GraphError::Api { status, message, .. } if status < 500 => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::TemplateRefused,
            format!("Meta refused the template: {message}"),
        ),
        GraphError::Api { .. } => ApiError::upstream(
            StatusCode::BAD_GATEWAY,
            ErrorCode::MetaError,
            "Meta's Graph API failed to take the template; try again",
            Some(e.into()),
        ),
        GraphError::Transport(_) => ApiError::upstream(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::MetaUnreachable,
            "Meta's Graph API could not be reached to submit the template; try again",
            Some(e.into()),
        ),
    }
}

#[derive(Deserialize)]
struct ListParams {
    limit: Option<i64>,
    cursor: Option<String>,
    order: Option<String>,
}

/// The merchant's templates, newest first.
async fn list(
    caller: Caller,
    state: web::Data<AppState>,
    params: web::Query<ListParams>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ManagePages)?;
    let params = params.into_inner();
    let page = PageParams {
        limit: params.limit,
        cursor: params.cursor,
        order: params.order,
    };
    let (limit, keyset) = (page.limit()?, page.keyset()?);
    let merchant_id = caller.merchant_id;
    let items = state
        .db
        .query(move |conn| templates::list(conn, merchant_id, keyset, limit + 1))
        .await?;
    Ok(HttpResponse::Ok().json(ListBody::from_items(
        items,
        limit,
        |t| t.id.0.to_string(),
        TemplateBody::from,
    )))
}

async fn get(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ManagePages)?;
    let id = path.into_inner();
    let merchant_id = caller.merchant_id;
    let found = state
        .db
        .query(move |conn| templates::get(conn, merchant_id, id))
        .await?
        .ok_or_else(|| ApiError::not_found("template"))?;
    Ok(HttpResponse::Ok().json(TemplateBody::from(found)))
}

/// Forgets the template here: threadcart stops using it (Meta keeps it on the Page until it is deleted
/// there).
async fn delete(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ManagePages)?;
    let id = path.into_inner();
    let merchant_id = caller.merchant_id;
    let gone = state
        .db
        .query(move |conn| templates::delete(conn, merchant_id, id))
        .await?;
    if !gone {
        return Err(ApiError::not_found("template"));
    }
    Ok(HttpResponse::NoContent().finish())
}
