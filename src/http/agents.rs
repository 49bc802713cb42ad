//! Agents (`crate::agents`): the owner adds, changes and removes the people who answer; each agent
//! sets their own presence with their own key.

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Api, ListBody, PageParams, created, timestamp};
use crate::agents::{self, Agent, AgentError, AgentSpec, Presence, RawAgent};
use crate::auth::{Caller, Permission};
use crate::error::{ApiError, ErrorCode};
use crate::http::AppState;
use crate::kernel::FieldError;

pub(super) fn routes(api: &mut Api<'_>) {
    api.route(Method::GET, "/v1/agents", list)
        .route(Method::POST, "/v1/agents", create)
        .route(Method::PUT, "/v1/agents/me/presence", set_presence)
        .route(Method::GET, "/v1/agents/{agent_id}", get)
        .route(Method::PATCH, "/v1/agents/{agent_id}", update)
        .route(Method::DELETE, "/v1/agents/{agent_id}", delete);
}

#[derive(Serialize)]
struct AgentBody {
    id: Uuid,
    name: String,
    email: String,
    languages: Vec<String>,
    skills: Vec<String>,
    max_threads: u32,
    presence: &'static str,
    presence_at: Option<String>,
    seen_at: Option<String>,
    open_threads: u32,
    created_at: String,
    updated_at: String,
}

impl From<Agent> for AgentBody {
    fn from(a: Agent) -> Self {
        AgentBody {
            id: a.id,
            name: a.name,
            email: a.email,
            languages: a.languages,
            skills: a.skills,
            max_threads: a.max_threads,
            presence: a.presence.as_str(),
            presence_at: a.presence_at.map(timestamp),
            seen_at: a.seen_at.map(timestamp),
            open_threads: a.open_threads,
            created_at: timestamp(a.created_at),
            updated_at: timestamp(a.updated_at),
        }
    }
}

/// A new agent, with their key shown once.
#[derive(Serialize)]
struct CreatedBody {
    #[serde(flatten)]
    agent: AgentBody,
    api_key: KeyBody,
}

#[derive(Serialize)]
struct KeyBody {
    id: Uuid,
    role: &'static str,
    prefix: String,
    /// The key itself: shown this once.
    key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentInput {
    name: Option<String>,
    email: Option<String>,
    languages: Option<Vec<String>>,
    skills: Option<Vec<String>>,
    max_threads: Option<i64>,
}

impl From<AgentInput> for RawAgent {
    fn from(i: AgentInput) -> Self {
        RawAgent {
            name: i.name,
            email: i.email,
            languages: i.languages,
            skills: i.skills,
            max_threads: i.max_threads,
        }
    }
}

fn refused(e: AgentError) -> ApiError {
    match e {
        AgentError::EmailTaken => ApiError::conflict(
            ErrorCode::EmailTaken,
            "another agent of this merchant has this email",
        ),
        AgentError::Db(e) => e.into(),
    }
}

async fn create(
    caller: Caller,
    state: web::Data<AppState>,
    body: web::Json<AgentInput>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ManageKeys)?;
    let spec = AgentSpec::check(body.into_inner().into(), None).map_err(ApiError::validation)?;
    let merchant_id = caller.merchant_id;
    let (agent, key) = state
        .db
        .run(move |conn| agents::create(conn, merchant_id, &spec).map_err(refused))
        .await?;
    tracing::info!(merchant.id = %merchant_id, agent.id = %agent.id, "agent added");
    Ok(created(CreatedBody {
        api_key: KeyBody {
            id: key.record.id,
            role: key.record.role.as_str(),
            prefix: key.record.prefix.clone(),
            key: key.plaintext,
        },
        agent: agent.into(),
    }))
}

async fn list(
    caller: Caller,
    state: web::Data<AppState>,
    page: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ReadThreads)?;
    let (limit, keyset) = (page.limit()?, page.keyset()?);
    let merchant_id = caller.merchant_id;
    let items = state
        .db
        .query(move |conn| agents::list(conn, merchant_id, keyset, limit + 1))
        .await?;
    Ok(HttpResponse::Ok().json(ListBody::from_items(
        items,
        limit,
        |a| a.id.to_string(),
        AgentBody::from,
    )))
}

async fn get(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ReadThreads)?;
    let (id, merchant_id) = (path.into_inner(), caller.merchant_id);
    let agent = state
        .db
        .query(move |conn| agents::get(conn, merchant_id, id))
        .await?
        .ok_or_else(|| ApiError::not_found("agent"))?;
    Ok(HttpResponse::Ok().json(AgentBody::from(agent)))
}

async fn update(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    body: web::Json<AgentInput>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ManageKeys)?;
    let (id, merchant_id) = (path.into_inner(), caller.merchant_id);
    let raw: RawAgent = body.into_inner().into();
    let agent = state
        .db
        .run(move |conn| {
            let Some(current) = agents::get(conn, merchant_id, id)? else {
                return Err(ApiError::not_found("agent"));
            };
            let base = AgentSpec {
                name: current.name,
                email: current.email,
                languages: current.languages,
                skills: current.skills,
                max_threads: current.max_threads,
            };
            let spec = AgentSpec::check(raw, Some(&base)).map_err(ApiError::validation)?;
            agents::update(conn, merchant_id, id, &spec)
                .map_err(refused)?
                .ok_or_else(|| ApiError::not_found("agent"))
        })
        .await?;
    state.wakers.routing.notify_one();
    Ok(HttpResponse::Ok().json(AgentBody::from(agent)))
}

/// Removes the agent: their key stops working and their threads go back to the queue.
async fn delete(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ManageKeys)?;
    let (id, merchant_id) = (path.into_inner(), caller.merchant_id);
    let gone = state
        .db
        .query(move |conn| agents::delete(conn, merchant_id, id))
        .await?;
    if !gone {
        return Err(ApiError::not_found("agent"));
    }
    state.wakers.routing.notify_one();
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PresenceInput {
    status: String,
}

/// The calling agent says whether they take threads: `online`, `away` or `offline` (their threads go
/// back to the queue).
async fn set_presence(
    caller: Caller,
    state: web::Data<AppState>,
    body: web::Json<PresenceInput>,
) -> Result<HttpResponse, ApiError> {
    let Some(agent_id) = caller.agent_id else {
        return Err(ApiError::forbidden(
            "only an agent's own key sets a presence: create the agent with POST /v1/agents and use the key it answers",
        ));
    };
    let presence = Presence::parse(&body.status).ok_or_else(|| {
        ApiError::validation(vec![FieldError::new(
            "status",
            "invalid_status",
            "the status is online, away or offline",
        )])
    })?;
    let merchant_id = caller.merchant_id;
    let agent = state
        .db
        .query(move |conn| agents::set_presence(conn, merchant_id, agent_id, presence))
        .await?
        .ok_or_else(|| ApiError::not_found("agent"))?;
    state.wakers.routing.notify_one();
    Ok(HttpResponse::Ok().json(AgentBody::from(agent)))
}
