//! Stock adjustments: atomic, never below zero, also under concurrent requests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, product_body, spawn_app};

/// A merchant with one product whose single variant holds `stock`; returns the token and the
/// variant's stock-adjustments path.
async fn variant_with_stock(app: &TestApp, stock: i64) -> (String, String) {
    let m = app.merchant("Stocked").await;
    let product = app
        .create_product(
            &m.token,
            product_body("P-1", "Thing", &[("P-1-A", "A", "10.00", stock)]),
        )
        .await;
    let path = format!(
        "/v1/products/{}/variants/{}/stock-adjustments",
        product["id"].as_str().unwrap(),
        product["variants"][0]["id"].as_str().unwrap()
    );
    (m.token, path)
}

/// The variant's stock, read through the product.
async fn stock_of(app: &TestApp, token: &str, adjustments_path: &str) -> i64 {
    let product_path = adjustments_path.split("/variants/").next().unwrap();
    let product: Value = app.get(product_path, token).await.json().await.unwrap();
    product["variants"][0]["stock"].as_i64().unwrap()
}

#[tokio::test]
async fn a_negative_adjustment_takes_units_away() {
    let app = spawn_app().await;
    let (token, path) = variant_with_stock(&app, 10).await;

    let res = app.post(&path, &token, json!({"delta": -3})).await;

    assert_eq!(res.status(), 200);
    let variant: Value = res.json().await.unwrap();
    assert_eq!(variant["stock"], 7);
    assert_eq!(stock_of(&app, &token, &path).await, 7);
}

#[tokio::test]
async fn a_positive_adjustment_adds_units() {
    let app = spawn_app().await;
    let (token, path) = variant_with_stock(&app, 10).await;

    let res = app.post(&path, &token, json!({"delta": 5})).await;

    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["stock"], 15);
}

#[tokio::test]
async fn an_adjustment_below_zero_answers_409_and_changes_nothing() {
    let app = spawn_app().await;
    let (token, path) = variant_with_stock(&app, 10).await;
    assert_eq!(app.post(&path, &token, json!({"delta": -3})).await.status(), 200);

    let res = app.post(&path, &token, json!({"delta": -8})).await;

    assert_problem(res, 409, "insufficient_stock").await;
    assert_eq!(stock_of(&app, &token, &path).await, 7);
}

#[tokio::test]
async fn taking_exactly_the_whole_stock_leaves_zero() {
    let app = spawn_app().await;
    let (token, path) = variant_with_stock(&app, 4).await;

    let res = app.post(&path, &token, json!({"delta": -4})).await;

    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["stock"], 0);
}

#[tokio::test]
async fn an_adjustment_above_the_maximum_stock_answers_422_and_changes_nothing() {
    let app = spawn_app().await;
    let (token, path) = variant_with_stock(&app, 4).await;

    let res = app.post(&path, &token, json!({"delta": 1_000_000_000})).await;

    let problem = assert_problem(res, 422, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "delta");
    assert_eq!(problem["errors"][0]["code"], "out_of_range");
    assert_eq!(stock_of(&app, &token, &path).await, 4);
}

#[tokio::test]
async fn an_adjustment_on_an_unknown_variant_answers_404() {
    let app = spawn_app().await;
    let (token, path) = variant_with_stock(&app, 4).await;
    let product_path = path.split("/variants/").next().unwrap();
    let unknown = format!(
        "{product_path}/variants/{}/stock-adjustments",
        uuid::Uuid::now_v7()
    );

    let res = app.post(&unknown, &token, json!({"delta": -1})).await;

    assert_problem(res, 404, "not_found").await;
}

#[tokio::test]
async fn an_adjustment_without_a_whole_number_delta_answers_400() {
    let app = spawn_app().await;
    let (token, path) = variant_with_stock(&app, 4).await;

    let res = app.post(&path, &token, json!({"delta": "-1"})).await;

    assert_problem(res, 400, "invalid_json").await;
    assert_eq!(stock_of(&app, &token, &path).await, 4);
}

#[tokio::test]
async fn concurrent_decrements_never_sell_more_than_the_stock() {
    let app = spawn_app().await;
    let (token, path) = variant_with_stock(&app, 10).await;
    let url = format!("{}{path}", app.address);

    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let client = app.client.clone();
            let (url, token) = (url.clone(), token.clone());
            tokio::spawn(async move {
                let res = client
                    .post(url)
                    .bearer_auth(token)
                    .json(&json!({"delta": -1}))
                    .send()
                    .await
                    .unwrap();
                let status = res.status().as_u16();
                let body: Value = res.json().await.unwrap();
                (status, body)
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }

    let succeeded: Vec<&Value> = outcomes
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, b)| b)
        .collect();
    let refused: Vec<&Value> = outcomes
        .iter()
        .filter(|(s, _)| *s == 409)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(succeeded.len(), 10, "{outcomes:?}");
    assert_eq!(refused.len(), 30, "{outcomes:?}");
    assert!(refused.iter().all(|b| b["code"] == "insufficient_stock"));
    assert!(succeeded.iter().all(|b| b["stock"].as_i64().unwrap() >= 0));
    assert_eq!(stock_of(&app, &token, &path).await, 0);
}
