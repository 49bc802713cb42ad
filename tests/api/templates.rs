//! Utility message templates: submitted to Meta (the local Graph server) for the merchant's Page, with
//! Meta's review kept and followed on the Page's webhook.

use serde_json::{Value, json};

use crate::graph::graph_error;
use crate::helpers::{PAGE_ID, spawn_messenger_app};

const PAID: &str = "Hi {first_name}, your order {order_number} of {amount} is paid. Thank you!";

fn template(purpose: &str, language: &str, body: &str) -> Value {
    json!({"page_id": PAGE_ID, "purpose": purpose, "language": language, "body": body})
}

/// Submits the receipt template in English and answers what the API said.
async fn submit_receipt_template(m: &crate::helpers::MessengerApp) -> reqwest::Response {
    m.app
        .post(
            "/v1/templates",
            &m.merchant.token,
            template("order_paid", "en", PAID),
        )
        .await
}

#[tokio::test]
async fn a_receipt_template_is_submitted_to_meta_with_positional_placeholders_and_kept_approved() {
    let m = spawn_messenger_app().await;

    let res = submit_receipt_template(&m).await;

    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    assert_eq!(created["status"], "approved");
    assert_eq!(created["name"], "threadcart_order_paid_en");
    assert_eq!(
        created["placeholders"],
        json!(["first_name", "order_number", "amount"])
    );
    let sent = m.graph.templates();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].path.ends_with(&format!("/{PAGE_ID}/message_templates")));
    assert_eq!(sent[0].body["category"], "UTILITY");
    assert_eq!(
        sent[0].body["components"][0]["text"],
        "Hi {{1}}, your order {{2}} of {{3}} is paid. Thank you!"
    );
    assert!(
        created["meta_template_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("10459512934"))
    );

    let id = created["id"].as_str().unwrap();
    let listed: Value = m
        .app
        .get("/v1/templates", &m.merchant.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["data"][0]["id"], id);
    let res = m
        .app
        .delete(&format!("/v1/templates/{id}"), &m.merchant.token)
        .await;
    assert_eq!(res.status(), 204);
    let res = m.app.get(&format!("/v1/templates/{id}"), &m.merchant.token).await;
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn a_template_meta_refuses_answers_its_reason_and_is_not_kept() {
    let m = spawn_messenger_app().await;
    m.graph.answer_next_templates(vec![(
        400,
        graph_error(100, 2388047, "Template doesn't qualify for Utility Messages"),
    )]);

    let res = submit_receipt_template(&m).await;

    assert_eq!(res.status(), 422);
    let problem: Value = res.json().await.unwrap();
    assert_eq!(problem["code"], "template_refused");
    assert!(problem["detail"].as_str().unwrap().contains("doesn't qualify"));
    let listed: Value = m
        .app
        .get("/v1/templates", &m.merchant.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["data"], json!([]));
}

#[tokio::test]
async fn one_template_per_purpose_and_language_another_merchants_page_and_bad_bodies_are_refused() {
    let m = spawn_messenger_app().await;
    let ok = submit_receipt_template(&m).await;
    assert_eq!(ok.status(), 201);

    let again = submit_receipt_template(&m).await;
    assert_eq!(again.status(), 409);
    assert_eq!(again.json::<Value>().await.unwrap()["code"], "template_taken");

    let other = m.app.merchant("Other shop").await;
    let res = m
        .app
        .post("/v1/templates", &other.token, template("order_paid", "fr", PAID))
        .await;
    assert_eq!(res.status(), 404, "another merchant's Page is not found");

    let res = m
        .app
        .post(
            "/v1/templates",
            &m.merchant.token,
            template("order_paid", "fr", "Payé ! Profitez des soldes sur {room}."),
        )
        .await;
    assert_eq!(res.status(), 422);
    let problem: Value = res.json().await.unwrap();
    let codes: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["unknown_placeholder", "promotional"]);
    assert_eq!(m.graph.templates().len(), 1, "nothing invalid reaches Meta");
}

#[tokio::test]
async fn metas_review_on_the_pages_webhook_changes_the_status_under_either_field_name() {
    let m = spawn_messenger_app().await;
    let created: Value = submit_receipt_template(&m).await.json().await.unwrap();
    let meta_id = created["meta_template_id"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    let review = |field: &str, event: &str, reason: &str| {
        json!({"object": "page", "entry": [{"id": PAGE_ID, "time": 1_765_000_000, "changes": [
            {"field": field, "value": {"event": event, "message_template_id": meta_id.parse::<i64>().unwrap(),
             "message_template_name": "threadcart_order_paid_en", "message_template_language": "en",
             "reason": reason}}]}]})
        .to_string()
    };
    let status = || async {
        let t: Value = m
            .app
            .get(&format!("/v1/templates/{id}"), &m.merchant.token)
            .await
            .json()
            .await
            .unwrap();
        (t["status"].as_str().unwrap().to_owned(), t["reason"].clone())
    };

    let body = review(
        "messenger_template_status_update",
        "REJECTED",
        "TAG_SHOULD_BE_MARKETING",
    );
    assert_eq!(m.app.post_webhook(&body).await.status(), 200);
    assert_eq!(m.app.post_webhook(&body).await.status(), 200);
    assert_eq!(
        status().await,
        ("rejected".to_owned(), json!("TAG_SHOULD_BE_MARKETING"))
    );

    let body = review("message_template_status_update", "APPROVED", "NONE");
    assert_eq!(m.app.post_webhook(&body).await.status(), 200);
    assert_eq!(status().await, ("approved".to_owned(), Value::Null));
}
