//! The merchant dashboard: one static HTML page (CSS and script embedded, no build step) that signs in
//! with an API key and reads the public `/v1` API with the token it gets, kept in memory only. The
//! page holds no secret, so it is served always, not only in dev mode.

use actix_web::HttpResponse;
use actix_web::http::Method;

use super::Api;

const PAGE: &str = include_str!("dashboard.html");

pub(super) fn routes(api: &mut Api<'_>) {
    api.route(Method::GET, "/dashboard", page);
}

async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("cache-control", "no-cache"))
        .insert_header(("x-content-type-options", "nosniff"))
        .insert_header(("referrer-policy", "no-referrer"))
        .insert_header((
            "content-security-policy",
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             connect-src 'self'; img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; \
             base-uri 'none'",
        ))
        .body(PAGE)
}
