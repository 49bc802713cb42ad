//! `spawn_app()` and typed helpers shared by every test.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::LazyLock;

use reqwest::{Method, Response};
use serde_json::{Value, json};
use threadcart::auth::{Role, keys};
use threadcart::config::Config;
use threadcart::db::{Backend, Db};
use threadcart::merchants::{self, NewMerchant};
use threadcart::startup::Application;
use uuid::Uuid;

/// The JWT secret every test server signs with (tests forge tokens with it).
pub const JWT_SECRET: &str = "test-jwt-secret-test-jwt-secret-0123456789";

/// The key every test server encrypts tokens with (32 bytes, `threadcart-test-secrets-key-0032`); a test
/// of SQLite's key file unsets it with `("THREADCART_SECRETS_KEY", "")`.
pub const SECRETS_KEY: &str = "dGhyZWFkY2FydC10ZXN0LXNlY3JldHMta2V5LTAwMzI=";

static TRACING: LazyLock<()> = LazyLock::new(|| {
    if std::env::var("TEST_LOG").is_ok() {
        threadcart::telemetry::init(threadcart::config::LogFormat::Pretty, "info");
    }
});

/// A fresh database: a temporary SQLite file, or a new PostgreSQL database dropped afterwards.
pub struct TestDatabase {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    postgres: Option<(String, String)>,
}

impl TestDatabase {
    pub fn new() -> TestDatabase {
        match std::env::var("TEST_DATABASE_URL") {
            Ok(admin) if admin.starts_with("postgres") => {
                let name = format!("threadcart_test_{}", Uuid::new_v4().simple());
                admin_execute(&admin, &format!("CREATE DATABASE {name}"));
                let (path, query) = admin.split_once('?').unwrap_or((&admin, ""));
                let base = path.rsplit_once('/').map(|(b, _)| b).unwrap_or(path);
                // The servers of a test run talk to the local PostgreSQL without TLS unless told
                // otherwise: libpq's OpenSSL state, torn down as the test process exits while pooled
                // connections still close on other threads, crashed a passing test now and then.
                let query = if query.contains("sslmode=") {
                    query.to_owned()
                } else if query.is_empty() {
                    "sslmode=disable".to_owned()
                } else {
                    format!("{query}&sslmode=disable")
                };
                TestDatabase {
                    url: format!("{base}/{name}?{query}"),
                    _dir: None,
                    postgres: Some((admin, name)),
                }
            }
            _ => TestDatabase::sqlite(),
        }
    }

    /// A temporary SQLite file, whatever backend the suite runs on (for what only SQLite does: dev mode).
    pub fn sqlite() -> TestDatabase {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("threadcart.db").display());
        TestDatabase {
            url,
            _dir: Some(dir),
            postgres: None,
        }
    }

    pub fn backend(&self) -> Backend {
        Backend::from_url(&self.url).unwrap()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some((admin, name)) = &self.postgres {
            admin_execute(admin, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

#[cfg(feature = "postgres")]
fn admin_execute(admin_url: &str, sql: &str) {
    use diesel::{Connection, RunQueryDsl};
    let mut conn =
        diesel::PgConnection::establish(admin_url).expect("TEST_DATABASE_URL must reach PostgreSQL");
    diesel::sql_query(sql).execute(&mut conn).unwrap();
}

#[cfg(not(feature = "postgres"))]
fn admin_execute(_: &str, _: &str) {
    panic!("TEST_DATABASE_URL is a PostgreSQL URL: run the tests with --features postgres");
}

/// A running server and what tests need to talk to it.
pub struct TestApp {
    pub address: String,
    /// The local Graph API the server talks to (unless the test gave its own `GRAPH_API_BASE`).
    pub graph: crate::graph::FakeGraph,
    pub port: u16,
    pub db: Db,
    pub client: reqwest::Client,
    /// The server's keys, for tests that write or read tokens in the database themselves.
    pub secrets: threadcart::secrets::Secrets,
    pub database: TestDatabase,
}

/// Environment every test server starts with; `extra` overrides or adds variables.
pub fn test_config(database_url: &str, extra: &[(&str, &str)]) -> Config {
    let mut vars: Vec<(String, String)> = vec![
        ("DATABASE_URL".into(), database_url.into()),
        ("THREADCART_ADDR".into(), "127.0.0.1:0".into()),
        ("THREADCART_JWT_SECRET".into(), JWT_SECRET.into()),
        ("THREADCART_DB_MAX_CONNECTIONS".into(), "4".into()),
        ("THREADCART_SECRETS_KEY".into(), SECRETS_KEY.into()),
    ];
    for (k, v) in extra {
        vars.retain(|(name, _)| name != k);
        vars.push((k.to_string(), v.to_string()));
    }
    Config::from_lookup(move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())).unwrap()
}

/// Starts the application on a random port with a fresh database.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Like [`spawn_app`], with extra environment variables.
pub async fn spawn_app_with(extra: &[(&str, &str)]) -> TestApp {
    spawn_app_on(TestDatabase::new(), extra).await
}

/// Starts the application on an existing test database (to share it with the CLI), talking to a local
/// Graph API of its own.
pub async fn spawn_app_on(database: TestDatabase, extra: &[(&str, &str)]) -> TestApp {
    spawn_app_with_graph(database, crate::graph::FakeGraph::start().await, extra).await
}

/// Starts the application on `database`, talking to `graph` (unless `extra` names another
/// `GRAPH_API_BASE`).
pub async fn spawn_app_with_graph(
    database: TestDatabase,
    graph: crate::graph::FakeGraph,
    extra: &[(&str, &str)],
) -> TestApp {
    LazyLock::force(&TRACING);
    // Dev mode answers Meta's API itself (at /dev/graph) unless GRAPH_API_BASE is given.
    let dev = extra.contains(&("THREADCART_DEV", "true"));
    let mut vars: Vec<(&str, &str)> = Vec::new();
    if !dev {
        vars.push(("GRAPH_API_BASE", graph.base.as_str()));
    }
    vars.extend_from_slice(extra);
    let config = test_config(&database.url, &vars);
    let db = Db::connect(config.database_url(), config.db_max_connections).unwrap();
    let secrets = config.secrets().unwrap();
    let app = Application::build(config, db.clone()).unwrap();
    let port = app.port();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        graph,
        port,
        db,
        client: reqwest::Client::new(),
        secrets,
        database,
    }
}

/// A merchant made directly in the database, with an API key of some role.
#[derive(Debug, Clone)]
pub struct TestMerchant {
    pub id: threadcart::kernel::MerchantId,
    pub api_key: String,
    pub key_id: Uuid,
    pub token: String,
}

impl TestApp {
    /// Creates a merchant (EUR, Europe/Paris) with an owner key and a token for it.
    pub async fn merchant(&self, name: &str) -> TestMerchant {
        self.merchant_in(name, "EUR").await
    }

    /// Creates a merchant in `currency` with an owner key and a token.
    pub async fn merchant_in(&self, name: &str, currency: &str) -> TestMerchant {
        let new = NewMerchant::parse(name, currency, "Europe/Paris").unwrap();
        let (id, key) = self
            .db
            .run_blocking(|conn| -> Result<_, threadcart::db::DbError> {
                let m = merchants::create(conn, &new, None)?;
                let k = keys::create(conn, m.id, Role::Owner, None, None)?;
                Ok((m.id, k))
            })
            .unwrap();
        let token = self.token(&key.plaintext).await;
        TestMerchant {
            id,
            api_key: key.plaintext,
            key_id: key.record.id,
            token,
        }
    }

    /// A key of `role` for an existing merchant, with a token.
    pub async fn key_with_role(&self, merchant: &TestMerchant, role: &str) -> TestMerchant {
        let res = self
            .request(
                Method::POST,
                "/v1/api-keys",
                &merchant.token,
                Some(json!({"role": role})),
            )
            .await;
        assert_eq!(res.status(), 201, "creating a {role} key");
        let body: Value = res.json().await.unwrap();
        let api_key = body["api_key"].as_str().unwrap().to_owned();
        TestMerchant {
            id: merchant.id,
            key_id: body["id"].as_str().unwrap().parse().unwrap(),
            token: self.token(&api_key).await,
            api_key,
        }
    }

    /// Exchanges an API key for an access token, asserting success.
    pub async fn token(&self, api_key: &str) -> String {
        let res = self.post_token(api_key).await;
        assert_eq!(res.status(), 200, "token exchange");
        let body: Value = res.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// `POST /v1/auth/token`.
    pub async fn post_token(&self, api_key: &str) -> Response {
        self.client
            .post(format!("{}/v1/auth/token", self.address))
            .json(&json!({"api_key": api_key}))
            .send()
            .await
            .unwrap()
    }

    /// Any request with a bearer token and an optional JSON body.
    pub async fn request(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> Response {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.address))
            .bearer_auth(token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send().await.unwrap()
    }

    /// GET with a token.
    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.request(Method::GET, path, token, None).await
    }

    /// POST JSON with a token.
    pub async fn post(&self, path: &str, token: &str, body: Value) -> Response {
        self.request(Method::POST, path, token, Some(body)).await
    }

    /// PATCH JSON with a token.
    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Response {
        self.request(Method::PATCH, path, token, Some(body)).await
    }

    /// DELETE with a token.
    pub async fn delete(&self, path: &str, token: &str) -> Response {
        self.request(Method::DELETE, path, token, None).await
    }

    /// POST a raw body with a content type.
    pub async fn post_raw(&self, path: &str, token: &str, content_type: &str, body: Vec<u8>) -> Response {
        self.client
            .post(format!("{}{path}", self.address))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// Creates a product through the API and returns its JSON.
    pub async fn create_product(&self, token: &str, body: Value) -> Value {
        let res = self.post("/v1/products", token, body).await;
        assert_eq!(res.status(), 201, "creating a product");
        res.json().await.unwrap()
    }

    /// The row of ad `ad_id` in the funnel grouped by ad, from yesterday to tomorrow (today in any
    /// timezone); panics, showing the report, when the ad has none.
    pub async fn funnel_row_of_ad(&self, token: &str, ad_id: &str) -> Value {
        let today = chrono::Utc::now().date_naive();
        let funnel: Value = self
            .get(
                &format!(
                    "/v1/reports/funnel?group_by=ad&from={}&to={}",
                    today - chrono::Days::new(1),
                    today + chrono::Days::new(1)
                ),
                token,
            )
            .await
            .json()
            .await
            .unwrap();
        funnel["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["key"] == ad_id)
            .cloned()
            .unwrap_or_else(|| panic!("the ad's row: {funnel}"))
    }
}

/// A product body with one variant per `(sku, name, price, stock)`.
pub fn product_body(retailer_id: &str, title: &str, variants: &[(&str, &str, &str, i64)]) -> Value {
    json!({
        "retailer_id": retailer_id,
        "title": title,
        "brand": "Comfy",
        "variants": variants.iter().map(|(sku, name, price, stock)| json!({
            "sku": sku, "name": name, "price": {"amount": price, "currency": "EUR"}, "stock": stock
        })).collect::<Vec<_>>(),
    })
}

/// Asserts a problem+json answer with `status` and `code`, and returns its body.
pub async fn assert_problem(res: Response, status: u16, code: &str) -> Value {
    assert_eq!(res.status().as_u16(), status, "status");
    let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], code, "problem body: {body}");
    assert_eq!(body["status"], status);
    assert!(body["title"].is_string() && body["detail"].is_string() && body["type"].is_string());
    body
}

/// The Messenger app secret of test servers.
pub const APP_SECRET: &str = "test-app-secret";
/// The webhook verify token of test servers.
pub const VERIFY_TOKEN: &str = "test-verify-token";
/// The Page every Messenger test merchant connects.
pub const PAGE_ID: &str = "1000000001";

/// A server wired to a fake Graph API, and a merchant with a connected Page.
pub struct MessengerApp {
    pub app: TestApp,
    pub graph: crate::graph::FakeGraph,
    pub merchant: TestMerchant,
}

/// Environment for a server talking to `graph`.
pub fn messenger_env(graph: &crate::graph::FakeGraph) -> Vec<(&'static str, String)> {
    vec![
        ("GRAPH_API_BASE", graph.base.clone()),
        ("MESSENGER_APP_SECRET", APP_SECRET.into()),
        ("MESSENGER_VERIFY_TOKEN", VERIFY_TOKEN.into()),
        ("THREADCART_RETRY_BASE_MS", "10".into()),
    ]
}

/// Starts a fake Graph API, the app wired to it, and a merchant "Comfy Shoes" with Page [`PAGE_ID`].
pub async fn spawn_messenger_app() -> MessengerApp {
    spawn_messenger_app_on(TestDatabase::new()).await
}

/// Like [`spawn_messenger_app`], on an existing database.
pub async fn spawn_messenger_app_on(database: TestDatabase) -> MessengerApp {
    spawn_messenger_app_full(database, Vec::new()).await
}

/// Like [`spawn_messenger_app`], with more environment variables (Stripe's, say).
pub async fn spawn_messenger_app_with(more: Vec<(&'static str, String)>) -> MessengerApp {
    spawn_messenger_app_full(TestDatabase::new(), more).await
}

async fn spawn_messenger_app_full(database: TestDatabase, more: Vec<(&'static str, String)>) -> MessengerApp {
    let graph = crate::graph::FakeGraph::start().await;
    let mut env = messenger_env(&graph);
    env.extend(more);
    let extra: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = spawn_app_with_graph(database, graph.clone(), &extra).await;
    let merchant = app.merchant("Comfy Shoes").await;
    graph.knows_page(PAGE_ID, "EAAG-page-token-1234");
    let res = app
        .post(
            "/v1/pages",
            &merchant.token,
            json!({"page_id": PAGE_ID, "name": "Comfy Shoes", "access_token": "EAAG-page-token-1234"}),
        )
        .await;
    assert_eq!(res.status(), 201, "connecting the Page");
    app.create_product(
        &merchant.token,
        json!({"retailer_id": "SLIP-01", "title": "Comfy slippers", "featured": true,
               "image_url": "https://example.com/slip-01.jpg",
               "variants": [
                   {"sku": "SLIP-01-41", "name": "41", "options": {"size": "41"}, "price": {"amount": "49.90", "currency": "EUR"}, "stock": 0},
                   {"sku": "SLIP-01-42", "name": "42", "options": {"size": "42"}, "price": {"amount": "49.90", "currency": "EUR"}, "stock": 5},
                   {"sku": "SLIP-01-43", "name": "43", "options": {"size": "43"}, "price": {"amount": "49.90", "currency": "EUR"}, "stock": 2}]}),
    )
    .await;
    MessengerApp { app, graph, merchant }
}

/// `sha256=<hex>` of the body under the test app secret.
pub fn sign(body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(APP_SECRET.as_bytes()).unwrap();
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    format!(
        "sha256={}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

impl TestApp {
    /// Posts a Messenger delivery, signed.
    pub async fn post_webhook(&self, body: &str) -> Response {
        self.client
            .post(format!("{}/webhooks/messenger", self.address))
            .header("x-hub-signature-256", sign(body.as_bytes()))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
    }
}

/// Waits up to 10 seconds for `check` to hold.
pub async fn eventually<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// A delivery with these messaging objects for the Page.
pub fn delivery(page_id: &str, messaging: Vec<Value>) -> String {
    json!({"object": "page", "entry": [{"id": page_id, "time": 1_764_000_000_000_i64, "messaging": messaging}]})
        .to_string()
}

/// Milliseconds since the epoch, now (events must be recent for the window to be open).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A Get Started tap that opened the thread from a Click-to-Messenger ad.
pub fn ad_postback(psid: &str, ts: i64, mid: &str, ad_id: &str, ad_title: &str, product_id: &str) -> Value {
    json!({
        "sender": {"id": psid}, "recipient": {"id": PAGE_ID}, "timestamp": ts,
        "postback": {"title": "Get Started", "payload": "GET_STARTED", "mid": mid,
            "referral": {"ref": "c=xmas24", "ad_id": ad_id, "source": "ADS", "type": "OPEN_THREAD",
                "ads_context_data": {"ad_title": ad_title, "photo_url": "https://example.com/ad.jpg",
                                      "post_id": "POST-1", "product_id": product_id}}}
    })
}

/// A text message from the shopper.
pub fn text_message(psid: &str, ts: i64, mid: &str, text: &str) -> Value {
    json!({"sender": {"id": psid}, "recipient": {"id": PAGE_ID}, "timestamp": ts,
           "message": {"mid": mid, "text": text}})
}

/// The merchant's threads.
pub async fn threads(app: &TestApp, token: &str) -> Vec<Value> {
    let body: Value = app
        .get("/v1/threads?limit=200", token)
        .await
        .json()
        .await
        .unwrap();
    body["data"].as_array().unwrap().clone()
}

// ---- the shopper's side of a conversation -------------------------------------------------------

/// The Send API messages received for `psid` so far.
pub fn sent_to(m: &MessengerApp, psid: &str) -> Vec<Value> {
    m.graph
        .messages()
        .into_iter()
        .filter(|b| b["recipient"]["id"] == psid)
        .map(|b| b["message"].clone())
        .collect()
}

/// The Send API requests to `psid` that carry a utility template.
pub fn template_sends_to(m: &MessengerApp, psid: &str) -> Vec<Value> {
    m.graph
        .messages()
        .into_iter()
        .filter(|b| b["recipient"]["id"] == psid && b["message"]["template"].is_object())
        .collect()
}

/// The values of a sent template's body placeholders, in order.
pub fn body_parameters(template: &Value) -> Vec<&str> {
    template["components"][0]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["text"].as_str().unwrap())
        .collect()
}

/// Waits for the message after the first `seen` ones that satisfies `pick`, and returns it.
pub async fn next_message(m: &MessengerApp, psid: &str, seen: usize, pick: impl Fn(&Value) -> bool) -> Value {
    eventually("the expected reply", || async {
        sent_to(m, psid).iter().skip(seen).any(&pick)
    })
    .await;
    sent_to(m, psid).into_iter().skip(seen).find(|v| pick(v)).unwrap()
}

/// The template payload of a message.
pub fn template(message: &Value) -> &Value {
    &message["attachment"]["payload"]
}

/// The payload of the button or quick reply titled `title`.
pub fn button<'a>(buttons: &'a Value, title: &str) -> &'a str {
    buttons
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["title"] == title)
        .unwrap_or_else(|| panic!("no button {title} in {buttons}"))["payload"]
        .as_str()
        .unwrap()
}

/// The shopper taps a postback button.
pub async fn tap_postback(m: &MessengerApp, psid: &str, title: &str, payload: &str) {
    let event = json!({"sender": {"id": psid}, "recipient": {"id": PAGE_ID}, "timestamp": now_ms(),
        "postback": {"title": title, "payload": payload, "mid": format!("pb-{}", uuid::Uuid::new_v4())}});
    assert_eq!(
        m.app.post_webhook(&delivery(PAGE_ID, vec![event])).await.status(),
        200
    );
}

/// The shopper taps a quick reply.
pub async fn tap_quick_reply(m: &MessengerApp, psid: &str, title: &str, payload: &str) {
    let event = json!({"sender": {"id": psid}, "recipient": {"id": PAGE_ID}, "timestamp": now_ms(),
        "message": {"mid": format!("m-{}", uuid::Uuid::new_v4()), "text": title,
                    "quick_reply": {"payload": payload}}});
    assert_eq!(
        m.app.post_webhook(&delivery(PAGE_ID, vec![event])).await.status(),
        200
    );
}

/// A database with the merchant "Comfy Shoes" and Page [`PAGE_ID`] connected, made before any server runs
/// on it (as a process that stopped would leave it); answers a connection pool to read it.
pub fn comfy_shoes_with_page(database: &TestDatabase) -> Db {
    let db = Db::connect(&database.url, 2).unwrap();
    let new = NewMerchant::parse("Comfy Shoes", "EUR", "Europe/Paris").unwrap();
    let merchant = db
        .query_blocking(|conn| merchants::create(conn, &new, None))
        .unwrap();
    let page = merchants::pages::NewPage::parse(PAGE_ID, None, "EAAG-page-token-1234").unwrap();
    let secrets = test_config(&database.url, &[]).secrets().unwrap();
    db.query_blocking(|conn| merchants::pages::connect(conn, &secrets, merchant.id, &page))
        .unwrap();
    db
}

/// The thread's outgoing messages, as `GET /v1/threads/{id}/messages` lists them (each with its
/// `delivery`).
pub async fn outgoing_messages(app: &TestApp, token: &str, thread: &str) -> Vec<Value> {
    let body: Value = app
        .get(&format!("/v1/threads/{thread}/messages"), token)
        .await
        .json()
        .await
        .unwrap();
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|msg| msg["direction"] == "out")
        .cloned()
        .collect()
}
