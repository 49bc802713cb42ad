//! Page and Conversions API tokens at rest: stored encrypted, opened only to call Meta, plaintext rows
//! of older versions encrypted at start, keys rotated, and the key's absence handled per backend.

use diesel::prelude::*;
use serde_json::json;
use threadcart::db::schema::pages;
use threadcart::db::{Backend, DbUuid};
use threadcart::secrets::{Key, Sealed, Secrets};
use uuid::Uuid;

use crate::graph::FakeGraph;
use crate::helpers::{
    PAGE_ID, TestApp, TestDatabase, delivery, eventually, messenger_env, now_ms, spawn_app_on,
    spawn_messenger_app, text_message,
};

/// The Page's tokens as stored: (access token, Conversions API token).
async fn stored(app: &TestApp, page_id: &'static str) -> (String, Option<String>) {
    app.db
        .query_blocking(|conn| {
            pages::table
                .filter(pages::page_id.eq(page_id))
                .select((pages::access_token, pages::capi_access_token))
                .first(conn)
        })
        .unwrap()
}

/// The shopper writes; waits until the Page's answer reached the Graph API and returns the
/// `access_token` it was sent with.
async fn token_of_next_send(app: &TestApp, graph: &FakeGraph, psid: &str) -> String {
    let before = graph.received().len();
    app.post_webhook(&delivery(
        PAGE_ID,
        vec![text_message(
            psid,
            now_ms(),
            &format!("m-{}", Uuid::new_v4()),
            "hello",
        )],
    ))
    .await;
    eventually("the Page answers", || async {
        graph
            .received()
            .iter()
            .skip(before)
            .any(|r| r.path.ends_with("/messages"))
    })
    .await;
    graph
        .received()
        .into_iter()
        .skip(before)
        .find(|r| r.path.ends_with("/messages"))
        .and_then(|r| r.param("access_token"))
        .unwrap()
}

/// Starts another server on `database` talking to `graph`, with `extra` environment.
fn start_on(url: &str, graph: &FakeGraph, extra: &[(&str, &str)]) -> anyhow::Result<String> {
    let env = messenger_env(graph);
    let mut vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    vars.extend_from_slice(extra);
    let config = crate::helpers::test_config(url, &vars);
    let db = threadcart::db::Db::connect(config.database_url(), 2)?;
    let app = threadcart::startup::Application::build(config, db)?;
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    Ok(address)
}

#[tokio::test]
async fn page_and_conversions_api_tokens_are_stored_encrypted_and_used_in_clear() {
    // Arrange: the Page is connected with `EAAG-page-token-1234`.
    let m = spawn_messenger_app().await;

    // Act
    let res = m
        .app
        .request(
            reqwest::Method::PUT,
            &format!("/v1/pages/{PAGE_ID}/conversions"),
            &m.merchant.token,
            Some(json!({"dataset_id": "1234567890", "access_token": "EAAG-dataset-token-5678"})),
        )
        .await;
    assert_eq!(res.status(), 200);

    // Assert
    let (page_token, capi_token) = stored(&m.app, PAGE_ID).await;
    let capi_token = capi_token.unwrap();
    for (value, plaintext) in [
        (&page_token, "EAAG-page-token-1234"),
        (&capi_token, "EAAG-dataset-token-5678"),
    ] {
        assert!(
            value.starts_with("v1:") && !value.contains("EAAG"),
            "stored as {value}"
        );
        let opened = m.app.secrets.open(&Sealed::from_stored(value.clone())).unwrap();
        assert_eq!(secrecy::ExposeSecret::expose_secret(&opened), plaintext);
    }
    let page: serde_json::Value = m
        .app
        .get(&format!("/v1/pages/{PAGE_ID}"), &m.merchant.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["token_last4"], "1234");
    assert_eq!(
        token_of_next_send(&m.app, &m.graph, "U1").await,
        "EAAG-page-token-1234"
    );
}

#[tokio::test]
async fn tokens_stored_in_plaintext_are_encrypted_at_start_once_and_still_used() {
    // Arrange: a Page row as an older version stored it, token in plaintext.
    let database = TestDatabase::new();
    let db = threadcart::db::Db::connect(&database.url, 2).unwrap();
    let new = threadcart::merchants::NewMerchant::parse("Comfy Shoes", "EUR", "Europe/Paris").unwrap();
    let merchant = db
        .query_blocking(|conn| threadcart::merchants::create(conn, &new, None))
        .unwrap();
    db.query_blocking(|conn| {
        diesel::insert_into(pages::table)
            .values((
                pages::id.eq(DbUuid(Uuid::now_v7())),
                pages::merchant_id.eq(merchant.id),
                pages::page_id.eq(PAGE_ID),
                pages::access_token.eq("EAAG-legacy-token-9999"),
                pages::capi_dataset_id.eq("1234567890"),
                pages::capi_access_token.eq("EAAG-legacy-dataset-token"),
                pages::token_last4.eq("9999"),
                pages::connected_at.eq(threadcart::db::now()),
            ))
            .execute(conn)
    })
    .unwrap();
    drop(db);
    let graph = FakeGraph::start().await;

    // Act: start, then start again.
    let env = messenger_env(&graph);
    let extra: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = spawn_app_on(database, &extra).await;
    let first = stored(&app, PAGE_ID).await;
    start_on(&app.database.url, &graph, &[]).unwrap();
    let second = stored(&app, PAGE_ID).await;

    // Assert
    assert!(
        first.0.starts_with("v1:") && !first.0.contains("legacy"),
        "{first:?}"
    );
    assert!(
        first.1.as_deref().is_some_and(|t| t.starts_with("v1:")),
        "{first:?}"
    );
    assert_eq!(first, second, "a second start changes nothing");
    assert_eq!(
        token_of_next_send(&app, &graph, "U1").await,
        "EAAG-legacy-token-9999"
    );
}

#[tokio::test]
async fn a_rotated_key_reseals_the_tokens_at_start_and_the_old_key_can_then_go() {
    // Arrange: tokens sealed with the test key.
    let m = spawn_messenger_app().await;
    let url = m.app.database.url.clone();
    let new_key = Key::generate().to_base64();

    // Act: start with the new key and the old one as previous, then with the new key alone.
    start_on(
        &url,
        &m.graph,
        &[
            ("THREADCART_SECRETS_KEY", &new_key),
            ("THREADCART_SECRETS_KEY_PREVIOUS", crate::helpers::SECRETS_KEY),
        ],
    )
    .unwrap();
    let resealed = stored(&m.app, PAGE_ID).await.0;
    let new_alone = start_on(&url, &m.graph, &[("THREADCART_SECRETS_KEY", &new_key)]);
    let wrong = start_on(
        &url,
        &m.graph,
        &[("THREADCART_SECRETS_KEY", &Key::generate().to_base64())],
    );

    // Assert
    let new_secrets = Secrets::new(&Key::parse(&new_key).unwrap(), None);
    let opened = new_secrets.open(&Sealed::from_stored(resealed.clone())).unwrap();
    assert_eq!(
        secrecy::ExposeSecret::expose_secret(&opened),
        "EAAG-page-token-1234"
    );
    assert!(
        m.app.secrets.open(&Sealed::from_stored(resealed)).is_err(),
        "the old key no longer opens it"
    );
    assert!(new_alone.is_ok(), "{:?}", new_alone.err());
    let refusal = format!("{:#}", wrong.expect_err("a wrong key refuses to start"));
    assert!(refusal.contains("THREADCART_SECRETS_KEY"), "{refusal}");
}

#[tokio::test]
async fn without_a_secrets_key_sqlite_keeps_one_next_to_the_database_and_postgresql_refuses_to_start() {
    let database = TestDatabase::new();
    let url = database.url.clone();
    let no_key = [("THREADCART_SECRETS_KEY", "")];
    match database.backend() {
        Backend::Postgres => {
            let config = crate::helpers::test_config(&url, &no_key);
            let db = threadcart::db::Db::connect(config.database_url(), 2).unwrap();

            let refused = threadcart::startup::Application::build(config, db);

            let message = format!(
                "{:#}",
                refused.err().expect("PostgreSQL refuses to start without a key")
            );
            assert!(message.contains("THREADCART_SECRETS_KEY is not set"), "{message}");
        }
        Backend::Sqlite => {
            // Act: a first start makes the key; a Page is connected; a restart opens its token.
            let graph = FakeGraph::start().await;
            let mut env = messenger_env(&graph);
            env.push(("THREADCART_SECRETS_KEY", String::new()));
            let extra: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let app = spawn_app_on(database, &extra).await;
            let m = app.merchant("Comfy Shoes").await;
            graph.knows_page(PAGE_ID, "EAAG-page-token-1234");
            let res = app
                .post(
                    "/v1/pages",
                    &m.token,
                    json!({"page_id": PAGE_ID, "access_token": "EAAG-page-token-1234"}),
                )
                .await;
            assert_eq!(res.status(), 201);
            let restarted = start_on(&url, &graph, &no_key);

            // Assert
            let file = threadcart::secrets::key_file(&url).unwrap();
            let text = std::fs::read_to_string(&file).unwrap();
            assert!(Key::parse(&text).is_ok(), "{text}");
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600);
            }
            assert!(restarted.is_ok(), "{:?}", restarted.err());
            assert!(stored(&app, PAGE_ID).await.0.starts_with("v1:"));
        }
    }
}
