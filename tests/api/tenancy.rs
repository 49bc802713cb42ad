//! Tenancy: another merchant's resource answers 404 exactly as a missing one, lists hold only the
//! caller's items, and uniqueness of retailer ids and SKUs is per merchant.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::Response;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, TestMerchant, assert_problem, product_body, spawn_app};

/// Asserts both answers are 404 `not_found` problems with the same body (the request id aside).
async fn assert_same_404(others: Response, missing: Response, what: &str) {
    let mut others = assert_problem(others, 404, "not_found").await;
    let mut missing = assert_problem(missing, 404, "not_found").await;
    for body in [&mut others, &mut missing] {
        if let Some(map) = body.as_object_mut() {
            map.remove("request_id");
        }
    }
    assert_eq!(others["code"], missing["code"], "{what}");
    assert_eq!(others["status"], missing["status"], "{what}");
    assert_eq!(
        others, missing,
        "{what}: another merchant's resource must look missing"
    );
}

/// Two merchants; A has a product with two variants.
struct Tenants {
    app: TestApp,
    a: TestMerchant,
    b: TestMerchant,
    product: Value,
}

impl Tenants {
    async fn new() -> Tenants {
        let app = spawn_app().await;
        let a = app.merchant("Shop A").await;
        let b = app.merchant("Shop B").await;
        let product = app
            .create_product(
                &a.token,
                product_body(
                    "SLIP-01",
                    "Slipper",
                    &[("SLIP-01-40", "40", "49.90", 5), ("SLIP-01-41", "41", "49.90", 5)],
                ),
            )
            .await;
        Tenants { app, a, b, product }
    }

    fn product_path(&self) -> String {
        format!("/v1/products/{}", self.product["id"].as_str().unwrap())
    }

    fn variant_path(&self) -> String {
        format!(
            "{}/variants/{}",
            self.product_path(),
            self.product["variants"][0]["id"].as_str().unwrap()
        )
    }

    /// A's product as A sees it now.
    async fn product_seen_by_a(&self) -> Value {
        let res = self.app.get(&self.product_path(), &self.a.token).await;
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }
}

#[tokio::test]
async fn another_merchants_product_answers_404_like_a_missing_one() {
    // Arrange
    let t = Tenants::new().await;
    let missing = format!("/v1/products/{}", Uuid::now_v7());
    let patch = json!({"title": "Stolen"});

    // Act & Assert, for each method
    let (others, absent) = (
        t.app.get(&t.product_path(), &t.b.token).await,
        t.app.get(&missing, &t.b.token).await,
    );
    assert_same_404(others, absent, "GET product").await;

    let (others, absent) = (
        t.app.patch(&t.product_path(), &t.b.token, patch.clone()).await,
        t.app.patch(&missing, &t.b.token, patch).await,
    );
    assert_same_404(others, absent, "PATCH product").await;

    let (others, absent) = (
        t.app.delete(&t.product_path(), &t.b.token).await,
        t.app.delete(&missing, &t.b.token).await,
    );
    assert_same_404(others, absent, "DELETE product").await;

    // A's product is untouched.
    let after = t.product_seen_by_a().await;
    assert_eq!(after, t.product);
}

#[tokio::test]
async fn another_merchants_variant_answers_404_like_a_missing_one() {
    // Arrange
    let t = Tenants::new().await;
    let b_product = t
        .app
        .create_product(
            &t.b.token,
            product_body("B-01", "B thing", &[("B-01-1", "one", "10.00", 1)]),
        )
        .await;
    let a_variant = t.product["variants"][0]["id"].as_str().unwrap();
    let others_paths = [
        // A's product and variant, called by B.
        t.variant_path(),
        // B's own product with A's variant.
        format!(
            "/v1/products/{}/variants/{a_variant}",
            b_product["id"].as_str().unwrap()
        ),
    ];
    let missing = format!("/v1/products/{}/variants/{}", Uuid::now_v7(), Uuid::now_v7());

    for path in &others_paths {
        // Act & Assert
        let body = json!({"name": "Stolen", "stock": 0});
        let (others, absent) = (
            t.app.patch(path, &t.b.token, body.clone()).await,
            t.app.patch(&missing, &t.b.token, body).await,
        );
        assert_same_404(others, absent, &format!("PATCH {path}")).await;

        let (others, absent) = (
            t.app.delete(path, &t.b.token).await,
            t.app.delete(&missing, &t.b.token).await,
        );
        assert_same_404(others, absent, &format!("DELETE {path}")).await;

        let delta = json!({"delta": -5});
        let (others, absent) = (
            t.app
                .post(&format!("{path}/stock-adjustments"), &t.b.token, delta.clone())
                .await,
            t.app
                .post(&format!("{missing}/stock-adjustments"), &t.b.token, delta)
                .await,
        );
        assert_same_404(others, absent, &format!("POST {path}/stock-adjustments")).await;
    }

    // Adding a variant to A's product answers the same as to a missing product.
    let variant =
        json!({"sku": "B-SNEAK", "name": "42", "price": {"amount": "1.00", "currency": "EUR"}, "stock": 1});
    let (others, absent) = (
        t.app
            .post(
                &format!("{}/variants", t.product_path()),
                &t.b.token,
                variant.clone(),
            )
            .await,
        t.app
            .post(
                &format!("/v1/products/{}/variants", Uuid::now_v7()),
                &t.b.token,
                variant,
            )
            .await,
    );
    assert_same_404(others, absent, "POST variants").await;

    // A's product and variants are untouched.
    assert_eq!(t.product_seen_by_a().await, t.product);
}

#[tokio::test]
async fn another_merchants_page_answers_404_like_a_missing_one() {
    // Arrange
    let app = spawn_app().await;
    let a = app.merchant("Shop A").await;
    let b = app.merchant("Shop B").await;
    app.graph.knows_page("100000000000001", "EAABpage-token-of-a");
    let res = app
        .post(
            "/v1/pages",
            &a.token,
            json!({"page_id": "100000000000001", "name": "Shop A", "access_token": "EAABpage-token-of-a"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let page: Value = res.json().await.unwrap();

    // Act & Assert
    let (others, absent) = (
        app.get("/v1/pages/100000000000001", &b.token).await,
        app.get("/v1/pages/100000000000999", &b.token).await,
    );
    assert_same_404(others, absent, "GET page").await;

    let (others, absent) = (
        app.delete("/v1/pages/100000000000001", &b.token).await,
        app.delete("/v1/pages/100000000000999", &b.token).await,
    );
    assert_same_404(others, absent, "DELETE page").await;

    // A's Page is still connected.
    let res = app.get("/v1/pages/100000000000001", &a.token).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap(), page);
}

#[tokio::test]
async fn another_merchants_api_key_answers_404_like_a_missing_one() {
    // Arrange
    let app = spawn_app().await;
    let a = app.merchant("Shop A").await;
    let b = app.merchant("Shop B").await;
    let a_catalog = app.key_with_role(&a, "catalog").await;

    // Act & Assert
    for key_id in [a.key_id, a_catalog.key_id] {
        let (others, absent) = (
            app.delete(&format!("/v1/api-keys/{key_id}"), &b.token).await,
            app.delete(&format!("/v1/api-keys/{}", Uuid::now_v7()), &b.token)
                .await,
        );
        assert_same_404(others, absent, "DELETE api key").await;
    }

    // A's keys still work.
    assert_eq!(app.post_token(&a.api_key).await.status(), 200);
    assert_eq!(app.post_token(&a_catalog.api_key).await.status(), 200);
    assert_eq!(app.get("/v1/merchant", &a_catalog.token).await.status(), 200);
}

/// The `field` of every item of a list.
async fn listed(app: &TestApp, path: &str, token: &str, field: &str) -> Vec<String> {
    let res = app.get(path, token).await;
    assert_eq!(res.status(), 200, "{path}");
    let body: Value = res.json().await.unwrap();
    assert!(body["next_cursor"].is_null(), "{path}: one page");
    let mut items: Vec<String> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item[field].as_str().unwrap().to_owned())
        .collect();
    items.sort();
    items
}

#[tokio::test]
async fn lists_contain_only_the_callers_own_items() {
    // Arrange: each merchant has two products, one Page and one extra key.
    let app = spawn_app().await;
    let a = app.merchant("Shop A").await;
    let b = app.merchant("Shop B").await;
    let mut expected = Vec::new();
    for (m, tag, page_id) in [(&a, "A", "200000000000001"), (&b, "B", "200000000000002")] {
        let mut products = Vec::new();
        for n in 1..=2 {
            let retailer_id = format!("{tag}-{n}");
            let sku = format!("{tag}-{n}-SKU");
            let p = app
                .create_product(
                    &m.token,
                    product_body(&retailer_id, "Thing", &[(&sku, "one", "5.00", 1)]),
                )
                .await;
            products.push(p["id"].as_str().unwrap().to_owned());
        }
        products.sort();
        let page_token = format!("EAABtoken-{tag}-0001");
        app.graph.knows_page(page_id, &page_token);
        let res = app
            .post(
                "/v1/pages",
                &m.token,
                json!({"page_id": page_id, "access_token": page_token}),
            )
            .await;
        assert_eq!(res.status(), 201);
        let extra = app.key_with_role(m, "agent").await;
        let mut keys = vec![m.key_id.to_string(), extra.key_id.to_string()];
        keys.sort();
        expected.push((m, products, vec![page_id.to_owned()], keys));
    }

    for (m, products, pages, keys) in expected {
        // Act
        let listed_products = listed(&app, "/v1/products", &m.token, "id").await;
        let listed_pages = listed(&app, "/v1/pages", &m.token, "page_id").await;
        let listed_keys = listed(&app, "/v1/api-keys", &m.token, "id").await;

        // Assert
        assert_eq!(listed_products, products);
        assert_eq!(listed_pages, pages);
        assert_eq!(listed_keys, keys);
    }
}

#[tokio::test]
async fn two_merchants_may_use_the_same_retailer_id_and_sku() {
    // Arrange
    let app = spawn_app().await;
    let a = app.merchant("Shop A").await;
    let b = app.merchant("Shop B").await;
    let body = product_body("SLIP-01", "Slipper", &[("SLIP-01-40", "40", "49.90", 3)]);
    let a_product = app.create_product(&a.token, body.clone()).await;

    // Act
    let res = app.post("/v1/products", &b.token, body.clone()).await;

    // Assert
    assert_eq!(res.status(), 201);
    let b_product: Value = res.json().await.unwrap();
    assert_eq!(b_product["retailer_id"], "SLIP-01");
    assert_eq!(b_product["variants"][0]["sku"], "SLIP-01-40");
    assert_ne!(b_product["id"], a_product["id"]);
    // Within one merchant they stay unique.
    assert_problem(
        app.post("/v1/products", &b.token, body).await,
        409,
        "retailer_id_taken",
    )
    .await;
    let other_product_same_sku = product_body("SLIP-02", "Slipper 2", &[("SLIP-01-40", "40", "49.90", 3)]);
    assert_problem(
        app.post("/v1/products", &a.token, other_product_same_sku).await,
        409,
        "sku_taken",
    )
    .await;
}

#[tokio::test]
async fn without_stripe_another_merchants_order_thread_or_booking_answers_404_not_payments_disabled() {
    // Arrange: no Stripe keys; ids that are not the caller's.
    let app = spawn_app().await;
    let m = app.merchant("Shop A").await;
    let (order, thread, booking) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());

    // Act
    let refund = app
        .post(&format!("/v1/orders/{order}/refunds"), &m.token, json!({}))
        .await;
    let checkout = app
        .post(&format!("/v1/threads/{thread}/checkout"), &m.token, json!({}))
        .await;
    let cancel = app
        .post(
            &format!("/v1/bookings/{booking}/cancel"),
            &m.token,
            json!({"refund": true}),
        )
        .await;

    // Assert
    for res in [refund, checkout, cancel] {
        assert_problem(res, 404, "not_found").await;
    }
}
