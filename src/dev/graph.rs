//! Meta's Graph API as dev mode answers it: the Send API (messages recorded per Page and shopper for the
//! simulator), the User Profile APIs of Messenger and Instagram (the first name the simulator gave), the
//! Messenger profile, `GET /me`, which says whose a token is when a Page is connected (a demo Page's
//! token is its Page's, `dev-page-token-<Page id>` is that Page's, so any Page can be connected in dev
//! mode, and any other token is refused as Meta refuses one it does not know), and a Page's linked
//! Instagram account (a demo Page's from the fixture; any other Page `<Page id>`'s is `9<Page id>`).
//! For WhatsApp: the Cloud API's `POST /{phone-number-id}/messages` (recorded under the number and the
//! shopper's WhatsApp id, answering a `wamid.`), and a WhatsApp Business Account's numbers (the demo
//! number for its token; `dev-whatsapp-token-<number id>` sees that number on any account).

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::DevState;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/dev/graph/{version}/me/messenger_profile",
        web::post().to(messenger_profile),
    )
    .route("/dev/graph/{version}/{page_id}/messages", web::post().to(send))
    .route(
        "/dev/graph/{version}/{page_id}/message_templates",
        web::post().to(create_template),
    )
    .route("/dev/graph/{version}/me", web::get().to(me))
    .route(
        "/dev/graph/{version}/{waba_id}/phone_numbers",
        web::get().to(phone_numbers),
    )
    .route("/dev/graph/{version}/{psid}", web::get().to(profile));
}

/// The prefix of the tokens dev mode takes as the Page named after it.
const DEV_PAGE_TOKEN_PREFIX: &str = "dev-page-token-";

/// The `access_token` of a call.
fn token_of(req: &HttpRequest) -> Option<String> {
    web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .ok()?
        .into_inner()
        .into_iter()
        .find_map(|(k, v)| (k == "access_token" && !v.is_empty()).then_some(v))
}

/// Whose Page the token is.
async fn me(req: HttpRequest) -> HttpResponse {
    let Some(token) = token_of(&req) else {
        return oauth_error(400, 104, "An access token is required to request this resource.");
    };
    let named = token
        .strip_prefix(DEV_PAGE_TOKEN_PREFIX)
        .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
        .map(|id| (id.to_owned(), None));
    match named.or_else(|| crate::demo::page_of_token(&token)) {
        Some((id, name)) => {
            HttpResponse::Ok().json(json!({"id": id, "name": name.unwrap_or_else(|| format!("Page {id}"))}))
        }
        None => oauth_error(400, 190, "Invalid OAuth access token - Cannot parse access token"),
    }
}

/// Meta's error body.
fn oauth_error(status: u16, code: i64, message: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap_or_default()).json(json!({
        "error": {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "dev"}
    }))
}

fn has_token(req: &HttpRequest) -> bool {
    token_of(req).is_some()
}

async fn messenger_profile(req: HttpRequest) -> HttpResponse {
    if !has_token(&req) {
        return oauth_error(400, 104, "An access token is required to request this resource.");
    }
    HttpResponse::Ok().json(json!({"result": "success"}))
}

/// A utility template submitted for a Page: approved at once, as Meta says it approves Page-owned
/// templates "within seconds".
async fn create_template(req: HttpRequest) -> HttpResponse {
    if !has_token(&req) {
        return oauth_error(400, 104, "An access token is required to request this resource.");
    }
    let id = u128::from_le_bytes(crate::secrets::random_bytes::<16>()) % 1_000_000_000_000_000;
    HttpResponse::Ok().json(json!({"id": id.to_string(), "status": "APPROVED", "category": "UTILITY"}))
}

/// The prefix of the tokens dev mode takes as seeing the WhatsApp number named after it.
const DEV_WHATSAPP_TOKEN_PREFIX: &str = "dev-whatsapp-token-";

/// A WhatsApp Business Account's numbers the token sees.
async fn phone_numbers(req: HttpRequest, path: web::Path<(String, String)>) -> HttpResponse {
    let Some(token) = token_of(&req) else {
        return oauth_error(400, 104, "An access token is required to request this resource.");
    };
    let (_, waba_id) = path.into_inner();
    let named = token
        .strip_prefix(DEV_WHATSAPP_TOKEN_PREFIX)
        .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
        .map(|id| {
            (
                id.to_owned(),
                format!("+1 555-{}", &id[id.len().saturating_sub(7)..]),
            )
        });
    let demo = crate::demo::whatsapp_of_token(&token)
        .filter(|(waba, ..)| *waba == waba_id)
        .map(|(_, id, shown)| (id, shown));
    match named.or(demo) {
        Some((id, shown)) => HttpResponse::Ok().json(json!({"data": [
            {"id": id, "display_phone_number": shown, "verified_name": "Dev shop", "quality_rating": "GREEN"}
        ]})),
        None => oauth_error(400, 190, "Invalid OAuth access token - Cannot parse access token"),
    }
}

async fn send(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    dev: web::Data<DevState>,
) -> HttpResponse {
    if !has_token(&req) {
        return oauth_error(400, 104, "An access token is required to request this resource.");
    }
    let (_, page_id) = path.into_inner();
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return oauth_error(400, 100, "(#100) The parameter recipient is required");
    };
    if body["messaging_product"] == "whatsapp" {
        // The Cloud API: the message is the body itself, addressed `to` the shopper.
        let Some(to) = body["to"].as_str() else {
            return oauth_error(400, 100, "(#100) The parameter to is required.");
        };
        let seq = dev.record(&page_id, to, "page", body.clone());
        return HttpResponse::Ok().json(json!({
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": to}],
            "messages": [{"id": format!("wamid.dev{seq}")}],
        }));
    }
    let Some(psid) = body["recipient"]["id"].as_str() else {
        return oauth_error(400, 100, "(#100) The parameter recipient is required");
    };
    if body.get("sender_action").is_some() {
        return HttpResponse::Ok().json(json!({"recipient_id": psid}));
    }
    if !body["message"].is_object() {
        return oauth_error(400, 100, "(#100) param message must be non-empty.");
    }
    // Meta refuses the tags it retired on 2026-04-27 with error 100.
    if body["tag"]
        .as_str()
        .is_some_and(|t| ["ACCOUNT_UPDATE", "POST_PURCHASE_UPDATE", "CONFIRMED_EVENT_UPDATE"].contains(&t))
    {
        return oauth_error(400, 100, "(#100) Param tag is not a valid message tag");
    }
    let seq = dev.record(&page_id, psid, "page", body["message"].clone());
    HttpResponse::Ok().json(json!({"recipient_id": psid, "message_id": format!("m_dev_{seq}")}))
}

async fn profile(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    dev: web::Data<DevState>,
) -> HttpResponse {
    if !has_token(&req) {
        return oauth_error(400, 104, "An access token is required to request this resource.");
    }
    let (_, node) = path.into_inner();
    let fields = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map(|q| {
            q.into_inner()
                .into_iter()
                .find_map(|(k, v)| (k == "fields").then_some(v))
        })
        .ok()
        .flatten()
        .unwrap_or_default();
    let name = || dev.name(&node).unwrap_or_else(|| "Shopper".to_owned());
    if fields.contains("instagram_business_account") {
        let linked = crate::demo::instagram_of_page(&node).unwrap_or_else(|| format!("9{node}"));
        return HttpResponse::Ok().json(json!({"instagram_business_account": {"id": linked}, "id": node}));
    }
    if fields.contains("username") {
        return HttpResponse::Ok()
            .json(json!({"name": name(), "username": name().to_lowercase(), "id": node}));
    }
    HttpResponse::Ok().json(json!({"first_name": name(), "locale": "en_GB", "timezone": 0, "id": node}))
}
