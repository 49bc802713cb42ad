//! Messenger Pages: connect, read, list, disconnect; the access token is never returned; a Page
//! belongs to one merchant at a time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::Response;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, spawn_app, spawn_app_with};

const PAGE_ID: &str = "100000000000001";

/// A fresh, realistic-looking Page access token.
fn page_token() -> String {
    format!("EAAB{}", uuid::Uuid::new_v4().simple())
}

/// The last four characters of `token`.
fn last4(token: &str) -> String {
    token[token.len() - 4..].to_owned()
}

/// `POST /v1/pages` with a token Meta knows as the Page's.
async fn connect(app: &TestApp, token: &str, page_id: &str, name: &str, access_token: &str) -> Response {
    app.graph.knows_page(page_id, access_token);
    app.post(
        "/v1/pages",
        token,
        json!({"page_id": page_id, "name": name, "access_token": access_token}),
    )
    .await
}

/// The body as text, asserting it never carries the Page access token.
async fn text_without_token(res: Response, access_token: &str) -> String {
    let text = res.text().await.unwrap();
    assert!(!text.contains(access_token), "the access token leaked: {text}");
    assert!(!text.contains("access_token"), "an access_token field: {text}");
    text
}

#[tokio::test]
async fn connecting_a_page_answers_201_with_only_the_last_four_characters_of_its_token() {
    // Arrange
    let app = spawn_app().await;
    let m = app.merchant("Comfy Shoes").await;
    let access_token = page_token();

    // Act
    let res = connect(&app, &m.token, PAGE_ID, "Comfy Shoes", &access_token).await;

    // Assert
    assert_eq!(res.status(), 201);
    let body: Value = serde_json::from_str(&text_without_token(res, &access_token).await).unwrap();
    assert_eq!(body["page_id"], PAGE_ID);
    assert_eq!(body["name"], "Comfy Shoes");
    assert_eq!(body["token_last4"], last4(&access_token));
    assert!(body["connected_at"].as_str().unwrap().ends_with('Z'));
    assert!(body.get("access_token").is_none());
}

#[tokio::test]
async fn a_connected_page_can_be_read_and_listed_without_its_token() {
    // Arrange
    let app = spawn_app().await;
    let m = app.merchant("Comfy Shoes").await;
    let access_token = page_token();
    let res = connect(&app, &m.token, PAGE_ID, "Comfy Shoes", &access_token).await;
    let connected: Value = res.json().await.unwrap();

    // Act
    let got = app.get(&format!("/v1/pages/{PAGE_ID}"), &m.token).await;
    let list = app.get("/v1/pages", &m.token).await;

    // Assert
    assert_eq!(got.status(), 200);
    let got: Value = serde_json::from_str(&text_without_token(got, &access_token).await).unwrap();
    assert_eq!(got, connected);
    assert_eq!(list.status(), 200);
    let list: Value = serde_json::from_str(&text_without_token(list, &access_token).await).unwrap();
    assert_eq!(list["data"], json!([connected]));
    assert!(list["next_cursor"].is_null());
}

#[tokio::test]
async fn disconnecting_a_page_answers_204_and_then_404() {
    // Arrange
    let app = spawn_app().await;
    let m = app.merchant("Comfy Shoes").await;
    let res = connect(&app, &m.token, PAGE_ID, "Comfy Shoes", &page_token()).await;
    assert_eq!(res.status(), 201);
    let path = format!("/v1/pages/{PAGE_ID}");

    // Act
    let res = app.delete(&path, &m.token).await;

    // Assert
    assert_eq!(res.status(), 204);
    assert!(res.text().await.unwrap().is_empty());
    assert_problem(app.get(&path, &m.token).await, 404, "not_found").await;
    assert_problem(app.delete(&path, &m.token).await, 404, "not_found").await;
    let list: Value = app.get("/v1/pages", &m.token).await.json().await.unwrap();
    assert_eq!(list["data"], json!([]));
}

#[tokio::test]
async fn a_page_connected_by_another_merchant_answers_409_page_already_connected() {
    // Arrange
    let app = spawn_app().await;
    let a = app.merchant("Shop A").await;
    let b = app.merchant("Shop B").await;
    let a_token = page_token();
    assert_eq!(
        connect(&app, &a.token, PAGE_ID, "Shop A", &a_token)
            .await
            .status(),
        201
    );

    // Act
    let res = connect(&app, &b.token, PAGE_ID, "Shop B", &page_token()).await;

    // Assert
    assert_problem(res, 409, "page_already_connected").await;
    let again = connect(&app, &a.token, PAGE_ID, "Shop A again", &page_token()).await;
    assert_problem(again, 409, "page_already_connected").await;
    let list: Value = app.get("/v1/pages", &b.token).await.json().await.unwrap();
    assert_eq!(list["data"], json!([]), "B has no Page");
    let kept: Value = app
        .get(&format!("/v1/pages/{PAGE_ID}"), &a.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(kept["name"], "Shop A");
    assert_eq!(kept["token_last4"], last4(&a_token), "A's token was not replaced");
}

/// The `field` of every entry of a 422's `errors`.
fn error_fields(problem: &Value) -> Vec<&str> {
    problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_page_id_with_letters_answers_422_naming_page_id() {
    let app = spawn_app().await;
    let m = app.merchant("Comfy Shoes").await;

    let res = connect(&app, &m.token, "comfyshoes", "Comfy Shoes", &page_token()).await;

    let problem = assert_problem(res, 422, "validation_failed").await;
    assert_eq!(error_fields(&problem), ["page_id"]);
    let list: Value = app.get("/v1/pages", &m.token).await.json().await.unwrap();
    assert_eq!(list["data"], json!([]));
}

#[tokio::test]
async fn a_too_short_access_token_answers_422_naming_access_token() {
    let app = spawn_app().await;
    let m = app.merchant("Comfy Shoes").await;

    let res = connect(&app, &m.token, PAGE_ID, "Comfy Shoes", "EAAB").await;

    let problem = assert_problem(res, 422, "validation_failed").await;
    assert_eq!(error_fields(&problem), ["access_token"]);
    assert!(
        !problem.to_string().contains("EAAB"),
        "the token is not echoed: {problem}"
    );
}

#[tokio::test]
async fn every_invalid_field_is_named_at_once() {
    let app = spawn_app().await;
    let m = app.merchant("Comfy Shoes").await;

    let res = connect(&app, &m.token, "12ab", "Comfy Shoes", "short").await;

    let problem = assert_problem(res, 422, "validation_failed").await;
    let mut fields = error_fields(&problem);
    fields.sort_unstable();
    assert_eq!(fields, ["access_token", "page_id"]);
}

#[tokio::test]
async fn after_disconnecting_another_merchant_can_connect_the_page() {
    // Arrange
    let app = spawn_app().await;
    let a = app.merchant("Shop A").await;
    let b = app.merchant("Shop B").await;
    assert_eq!(
        connect(&app, &a.token, PAGE_ID, "Shop A", &page_token())
            .await
            .status(),
        201
    );
    let res = app.delete(&format!("/v1/pages/{PAGE_ID}"), &a.token).await;
    assert_eq!(res.status(), 204);
    let b_token = page_token();

    // Act
    let res = connect(&app, &b.token, PAGE_ID, "Shop B", &b_token).await;

    // Assert
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["name"], "Shop B");
    assert_eq!(body["token_last4"], last4(&b_token));
    let got = app.get(&format!("/v1/pages/{PAGE_ID}"), &b.token).await;
    assert_eq!(got.status(), 200);
    assert_problem(
        app.get(&format!("/v1/pages/{PAGE_ID}"), &a.token).await,
        404,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn the_page_list_pages_through_every_page_with_next_cursor() {
    // Arrange: Page ids of different lengths.
    let app = spawn_app().await;
    let m = app.merchant("Comfy Shoes").await;
    let mut expected = vec!["9", "10", "100000000000001", "200000000000002"];
    for page_id in &expected {
        assert_eq!(
            connect(&app, &m.token, page_id, "Comfy", &page_token())
                .await
                .status(),
            201
        );
    }

    // Act
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let path = match &cursor {
            None => "/v1/pages?limit=1".to_owned(),
            Some(c) => format!("/v1/pages?limit=1&cursor={c}"),
        };
        let res = app.get(&path, &m.token).await;
        assert_eq!(res.status(), 200);
        let page: Value = res.json().await.unwrap();
        assert_eq!(page["data"].as_array().unwrap().len(), 1, "{page}");
        seen.push(page["data"][0]["page_id"].as_str().unwrap().to_owned());
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }

    // Assert
    seen.sort();
    expected.sort_unstable();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn pages_are_listed_newest_connected_first_and_oldest_first_on_request() {
    let app = spawn_app().await;
    let m = app.merchant("Comfy Shoes").await;
    for page_id in ["300000000000003", "100000000000001", "200000000000002"] {
        assert_eq!(
            connect(&app, &m.token, page_id, "Comfy", &page_token())
                .await
                .status(),
            201
        );
    }
    let ids = |body: Value| -> Vec<String> {
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["page_id"].as_str().unwrap().to_owned())
            .collect()
    };

    let newest: Value = app.get("/v1/pages", &m.token).await.json().await.unwrap();
    let oldest: Value = app
        .get("/v1/pages?order=oldest", &m.token)
        .await
        .json()
        .await
        .unwrap();

    assert_eq!(
        ids(newest),
        ["200000000000002", "100000000000001", "300000000000003"]
    );
    assert_eq!(
        ids(oldest),
        ["300000000000003", "100000000000001", "200000000000002"]
    );
}

#[tokio::test]
async fn a_malformed_page_list_cursor_answers_400_bad_request() {
    let app = spawn_app().await;
    let m = app.merchant("Comfy Shoes").await;

    for cursor in ["abc", "12ab", "%20"] {
        let res = app.get(&format!("/v1/pages?cursor={cursor}"), &m.token).await;

        assert_problem(res, 400, "bad_request").await;
    }
}

// ---- Meta confirms the token is the Page's ------------------------------------------------------

#[tokio::test]
async fn a_merchant_cannot_connect_a_page_with_a_token_meta_says_is_another_pages() {
    // Arrange: the token is Meta's for the merchant's own Page 200000000000002.
    let app = spawn_app_with(&[("MESSENGER_APP_SECRET", "test-app-secret")]).await;
    let m = app.merchant("Comfy Shoes").await;
    let access_token = page_token();
    app.graph.knows_page("200000000000002", &access_token);

    // Act: claiming someone else's Page with it.
    let res = app
        .post(
            "/v1/pages",
            &m.token,
            json!({"page_id": PAGE_ID, "name": "Not mine", "access_token": access_token}),
        )
        .await;

    // Assert
    let problem = assert_problem(res, 422, "page_token_mismatch").await;
    assert!(!problem.to_string().contains(&access_token), "{problem}");
    let list: Value = app.get("/v1/pages", &m.token).await.json().await.unwrap();
    assert_eq!(list["data"], json!([]), "nothing was connected");
    let check = app.graph.token_checks().pop().expect("Meta was asked");
    assert_eq!(check.path, "/v25.0/me");
    assert_eq!(check.param("fields").as_deref(), Some("id%2Cname"));
    assert_eq!(check.param("access_token"), Some(access_token));
    assert!(check.param("appsecret_proof").is_some_and(|p| p.len() == 64));
}

#[tokio::test]
async fn a_token_meta_does_not_know_answers_422_page_token_invalid() {
    let app = spawn_app().await;
    let m = app.merchant("Comfy Shoes").await;

    let res = app
        .post(
            "/v1/pages",
            &m.token,
            json!({"page_id": PAGE_ID, "access_token": page_token()}),
        )
        .await;

    let problem = assert_problem(res, 422, "page_token_invalid").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("code 190"),
        "{problem}"
    );
    let list: Value = app.get("/v1/pages", &m.token).await.json().await.unwrap();
    assert_eq!(list["data"], json!([]));
}

#[tokio::test]
async fn when_meta_cannot_be_reached_connecting_a_page_answers_503_meta_unreachable() {
    // Nothing listens on port 9 (discard) of loopback here.
    let app = spawn_app_with(&[("GRAPH_API_BASE", "http://127.0.0.1:9")]).await;
    let m = app.merchant("Comfy Shoes").await;

    let res = app
        .post(
            "/v1/pages",
            &m.token,
            json!({"page_id": PAGE_ID, "access_token": page_token()}),
        )
        .await;

    assert_problem(res, 503, "meta_unreachable").await;
}

#[tokio::test]
async fn when_meta_fails_to_answer_connecting_a_page_answers_502_meta_error() {
    let app = spawn_app().await;
    let m = app.merchant("Comfy Shoes").await;
    let access_token = page_token();
    app.graph.knows_page(PAGE_ID, &access_token);
    app.graph.fail_next_token_check(500);

    let failed = app
        .post(
            "/v1/pages",
            &m.token,
            json!({"page_id": PAGE_ID, "access_token": access_token}),
        )
        .await;
    let again = connect(&app, &m.token, PAGE_ID, "Comfy Shoes", &access_token).await;

    assert_problem(failed, 502, "meta_error").await;
    assert_eq!(again.status(), 201, "a retry succeeds");
}

#[tokio::test]
async fn a_new_token_for_a_connected_page_is_checked_with_meta_too() {
    // Arrange
    let app = spawn_app().await;
    let m = app.merchant("Comfy Shoes").await;
    let first = page_token();
    assert_eq!(
        connect(&app, &m.token, PAGE_ID, "Comfy", &first).await.status(),
        201
    );
    let others = page_token();
    app.graph.knows_page("200000000000002", &others);
    let path = format!("/v1/pages/{PAGE_ID}");

    // Act
    let res = app.patch(&path, &m.token, json!({"access_token": others})).await;

    // Assert
    assert_problem(res, 422, "page_token_mismatch").await;
    let kept: Value = app.get(&path, &m.token).await.json().await.unwrap();
    assert_eq!(kept["token_last4"], last4(&first));
}
