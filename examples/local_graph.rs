//! A local stand-in for Meta's Graph API, for trying threadcart without a Meta app: it answers the Send
//! API and the User Profile API as Meta does and prints every message threadcart sends, one JSON line
//! each; `GET /me` takes `dev-page-token-<Page id>` as that Page's token (threadcart connects a Page only
//! when Meta says so). Run it, then start threadcart with `GRAPH_API_BASE=http://127.0.0.1:9099` (see the
//! README).
//!
//! `cargo run --example local_graph [-- PORT]`

use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

static SENT: AtomicU64 = AtomicU64::new(0);

async fn answer(req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if req.path().ends_with("/messages") {
        println!("{} {}", req.path(), parsed);
        if parsed.get("sender_action").is_some() {
            return HttpResponse::Ok().json(json!({"recipient_id": parsed["recipient"]["id"]}));
        }
        let n = SENT.fetch_add(1, Ordering::Relaxed) + 1;
        return HttpResponse::Ok()
            .json(json!({"recipient_id": parsed["recipient"]["id"], "message_id": format!("m_local_{n}")}));
    }
    if req.method() == "GET" && req.path().ends_with("/me") {
        let page = req.query_string().split('&').find_map(|pair| {
            pair.strip_prefix("access_token=")?
                .strip_prefix("dev-page-token-")
        });
        return match page {
            Some(page) => HttpResponse::Ok().json(json!({"id": page, "name": format!("Page {page}")})),
            None => HttpResponse::BadRequest().json(
                json!({"error": {"message": "Invalid OAuth access token - Cannot parse access token",
                "type": "OAuthException", "code": 190}}),
            ),
        };
    }
    if req.method() == "GET" {
        return HttpResponse::Ok().json(json!({"first_name": "Anna", "locale": "en_GB", "timezone": 0}));
    }
    HttpResponse::NotFound()
        .json(json!({"error": {"message": "Unknown path components", "type": "OAuthException", "code": 100}}))
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(9099);
    eprintln!("local Graph API on http://127.0.0.1:{port}: messages threadcart sends are printed below");
    HttpServer::new(|| App::new().default_service(web::to(answer)))
        .workers(1)
        .bind(("127.0.0.1", port))?
        .run()
        .await
}
