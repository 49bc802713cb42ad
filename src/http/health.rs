//! Operations routes: liveness, readiness, metrics, the API description.

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use serde_json::json;

use super::Api;
use crate::db;
use crate::error::ApiError;
use crate::http::AppState;

/// The OpenAPI description, embedded at build time.
pub const OPENAPI_YAML: &str = include_str!("../../openapi.yaml");

pub(super) fn routes(api: &mut Api<'_>) {
    api.route(Method::GET, "/healthz", healthz)
        .route(Method::GET, "/readyz", readyz)
        .route(Method::GET, "/metrics", metrics)
        .route(Method::GET, "/openapi.yaml", openapi);
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let applied = state
        .db
        .run(|conn| db::migrations_applied(conn).map_err(ApiError::unavailable))
        .await
        .map_err(|e| match e.code() {
            crate::error::ErrorCode::ServiceUnavailable => e,
            _ => ApiError::unavailable(anyhow::anyhow!("database unreachable")),
        })?;
    if !applied {
        return Err(ApiError::unavailable(anyhow::anyhow!("migrations pending")));
    }
    Ok(HttpResponse::Ok().json(json!({"status": "ready", "database": "ok", "migrations": "applied"})))
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render(state.db.usage()))
}

async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/yaml")
        .body(OPENAPI_YAML)
}
