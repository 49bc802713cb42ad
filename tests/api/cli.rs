//! The `threadcart` binary's commands (CONTRACT.md), run as a user would, on a fresh database.

use std::process::{Command, Output};

use serde_json::Value;

use crate::helpers::{TestDatabase, spawn_app_on};

fn threadcart(database_url: &str, args: &[&str]) -> Output {
    threadcart_with(database_url, args, &[])
}

/// `threadcart ARGS` with more environment variables.
fn threadcart_with(database_url: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_threadcart"))
        .args(args)
        .envs(env.iter().copied())
        .env("DATABASE_URL", database_url)
        .env("THREADCART_LOG_FORMAT", "pretty")
        .env("THREADCART_SECRETS_KEY", crate::helpers::SECRETS_KEY)
        .env_remove("THREADCART_DEMO")
        .output()
        .unwrap()
}

fn json_stdout(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "command failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn one_line_error(out: &Output) -> String {
    assert!(!out.status.success(), "command should have failed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "exactly one error line: {stderr}");
    errors[0].to_owned()
}

#[tokio::test]
async fn migrate_applies_every_migration_on_an_empty_database() {
    let db = TestDatabase::new();
    let mut conn = threadcart::db::establish(&db.url).unwrap();
    assert!(!threadcart::db::migrations_applied(&mut conn).unwrap());

    let out = threadcart(&db.url, &["migrate"]);

    assert_eq!(json_stdout(&out)["migrated"], true);
    assert!(threadcart::db::migrations_applied(&mut conn).unwrap());
    drop(conn);
}

#[tokio::test]
async fn merchant_create_prints_a_merchant_and_an_owner_key_that_works() {
    let db = TestDatabase::new();

    let out = threadcart(
        &db.url,
        &["merchant", "create", "--name", "Chez Nous", "--currency", "jpy"],
    );

    let printed = json_stdout(&out);
    let key = printed["api_key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("tc_") && key.len() == 67);
    let app = spawn_app_on(db, &[]).await;
    let token = app.token(&key).await;
    let merchant: Value = app.get("/v1/merchant", &token).await.json().await.unwrap();
    assert_eq!(merchant["id"], printed["merchant_id"]);
    assert_eq!(merchant["currency"], "JPY");
    assert_eq!(merchant["timezone"], "Europe/Paris");
}

#[tokio::test]
async fn merchant_create_with_an_unknown_currency_fails_with_one_line() {
    let db = TestDatabase::new();

    let out = threadcart(
        &db.url,
        &["merchant", "create", "--name", "X", "--currency", "EURO"],
    );

    assert!(one_line_error(&out).contains("--currency"));
}

/// `threadcart ARGS` against the local Graph API `graph`, run off the test's runtime (which must go on
/// serving `graph` meanwhile).
async fn threadcart_meta(database_url: &str, args: &[&str], graph: &crate::graph::FakeGraph) -> Output {
    let (url, base) = (database_url.to_owned(), graph.base.clone());
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        threadcart_with(&url, &args, &[("GRAPH_API_BASE", &base)])
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn page_connect_links_a_page_and_refuses_one_already_connected() {
    let db = TestDatabase::new();
    let graph = crate::graph::FakeGraph::start().await;
    graph.knows_page("123456789", "EAAGsecret1234");
    graph.knows_page("987654321", "EAAGsecret5678");
    let merchant = json_stdout(&threadcart(&db.url, &["merchant", "create", "--name", "Shop"]));
    let id = merchant["merchant_id"].as_str().unwrap();
    let connect = |page: &'static str, token: &'static str| {
        let args = [
            "page",
            "connect",
            "--merchant",
            id,
            "--page-id",
            page,
            "--access-token",
            token,
        ];
        let (url, graph) = (&db.url, &graph);
        async move { threadcart_meta(url, &args, graph).await }
    };

    let first = json_stdout(&connect("123456789", "EAAGsecret1234").await);
    let again = connect("123456789", "EAAGsecret1234").await;

    assert_eq!(first["page_id"], "123456789");
    assert_eq!(first["token_last4"], "1234");
    assert!(
        !String::from_utf8_lossy(&connect("987654321", "EAAGsecret5678").await.stdout).contains("EAAGsecret")
    );
    assert!(one_line_error(&again).contains("already connected"));
}

#[tokio::test]
async fn whatsapp_connect_links_a_number_meta_lists_and_refuses_one_it_does_not() {
    let db = TestDatabase::new();
    let graph = crate::graph::FakeGraph::start().await;
    graph.knows_whatsapp_number(
        "102290129340398",
        "106540352242922",
        "+1 555-078-3881",
        "EAAGwhatsapp1234",
    );
    let merchant = json_stdout(&threadcart(&db.url, &["merchant", "create", "--name", "Shop"]));
    let id = merchant["merchant_id"].as_str().unwrap();
    let connect = |number: &'static str| {
        let args = [
            "whatsapp",
            "connect",
            "--merchant",
            id,
            "--phone-number-id",
            number,
            "--waba-id",
            "102290129340398",
            "--access-token",
            "EAAGwhatsapp1234",
        ];
        let (url, graph) = (&db.url, &graph);
        async move { threadcart_meta(url, &args, graph).await }
    };

    let out = connect("106540352242922").await;
    let refused = connect("999").await;

    let number = json_stdout(&out);
    assert_eq!(number["phone_number_id"], "106540352242922");
    assert_eq!(number["display_phone_number"], "+1 555-078-3881");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("EAAGwhatsapp"));
    assert!(
        one_line_error(&refused).contains("not"),
        "{}",
        one_line_error(&refused)
    );
}

#[tokio::test]
async fn page_connect_to_an_unknown_merchant_fails_with_one_line() {
    let db = TestDatabase::new();
    let unknown = uuid::Uuid::now_v7().to_string();

    let out = threadcart(
        &db.url,
        &[
            "page",
            "connect",
            "--merchant",
            &unknown,
            "--page-id",
            "1",
            "--access-token",
            "EAAGsecret1234",
        ],
    );

    assert!(one_line_error(&out).contains("no merchant"));
}

#[tokio::test]
async fn demo_loads_two_merchants_idempotently_and_prints_working_keys() {
    let db = TestDatabase::new();
    let url = db.url.clone();

    let first = json_stdout(&threadcart(&url, &["demo"]));
    let app = spawn_app_on(db, &[]).await;
    let shoes = first["merchants"][0].clone();
    let token = app.token(shoes["api_key"].as_str().unwrap()).await;
    let before: Value = app
        .get("/v1/products?limit=200", &token)
        .await
        .json()
        .await
        .unwrap();
    let second = json_stdout(&threadcart(&url, &["demo"]));
    let after: Value = app
        .get("/v1/products?limit=200", &token)
        .await
        .json()
        .await
        .unwrap();

    assert_eq!(first, second, "a second run finds the same merchants");
    assert_eq!(before, after, "a second run changes nothing, not even updated_at");
    let names: Vec<&str> = first["merchants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Comfy Shoes", "Dream Hotels"]);
    assert_eq!(
        before["data"].as_array().unwrap().len() as u64,
        shoes["products"].as_u64().unwrap()
    );
    let slippers = before["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["retailer_id"] == "SLIP-01")
        .expect("the demo shop sells SLIP-01");
    let sizes: Vec<&str> = slippers["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(sizes, ["38", "39", "40", "41", "42", "43", "44", "45"]);
}

#[tokio::test]
async fn an_unknown_database_scheme_is_refused_with_one_line() {
    let out = threadcart("mysql://localhost/threadcart", &["migrate"]);

    assert!(one_line_error(&out).contains("sqlite://"));
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn a_postgres_login_failure_reports_its_real_cause() {
    let out = threadcart(
        "postgres://no_such_role_here@127.0.0.1:5432/postgres",
        &["migrate"],
    );

    let line = one_line_error(&out);
    assert!(line.contains("no_such_role_here"), "{line}");
    assert!(!line.contains("multiconnection"), "{line}");
}

#[cfg(not(feature = "postgres"))]
#[tokio::test]
async fn a_postgres_url_without_the_feature_says_how_to_build_it() {
    let out = threadcart("postgres://postgres@127.0.0.1:5432/postgres", &["migrate"]);

    assert!(one_line_error(&out).contains("--features postgres"));
}

#[tokio::test]
async fn serve_stops_cleanly_on_sigterm() {
    let db = TestDatabase::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_threadcart"))
        .arg("serve")
        .env("DATABASE_URL", &db.url)
        .env("THREADCART_ADDR", format!("127.0.0.1:{port}"))
        .env("THREADCART_DEMO", "false")
        .env("THREADCART_SECRETS_KEY", crate::helpers::SECRETS_KEY)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let healthz = format!("http://127.0.0.1:{port}/healthz");
    let mut up = false;
    for _ in 0..100 {
        if reqwest::get(&healthz).await.is_ok_and(|r| r.status() == 200) {
            up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(up, "the server never answered /healthz");

    let killed = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();

    assert!(killed.success());
    let mut status = None;
    for _ in 0..100 {
        status = server.try_wait().unwrap();
        if status.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let status = status.unwrap_or_else(|| {
        let _ = server.kill();
        panic!("the server did not stop within 10 s of SIGTERM")
    });
    assert!(status.success(), "exit status {status}");
}

#[tokio::test]
async fn page_connect_refuses_a_token_meta_says_is_another_pages_with_one_line() {
    let db = TestDatabase::new();
    let graph = crate::graph::FakeGraph::start().await;
    graph.knows_page("200000000000002", "EAAGtheirs5678");
    let merchant = json_stdout(&threadcart(&db.url, &["merchant", "create", "--name", "Shop"]));
    let id = merchant["merchant_id"].as_str().unwrap();
    let connect = |token: &'static str| {
        let args = [
            "page",
            "connect",
            "--merchant",
            id,
            "--page-id",
            "123456789",
            "--access-token",
            token,
        ];
        let (url, graph) = (&db.url, &graph);
        async move { threadcart_meta(url, &args, graph).await }
    };

    let mismatch = connect("EAAGtheirs5678").await;
    let unknown = connect("EAAGunknown9999").await;

    assert!(one_line_error(&mismatch).contains("not Page 123456789's"));
    assert!(one_line_error(&unknown).contains("Meta refused the access token"));
    assert!(!String::from_utf8_lossy(&mismatch.stderr).contains("EAAGtheirs"));
}
