//! Products and variants: create, read, update, delete, validation, uniqueness, lists and search.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;

use reqwest::Response;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, product_body, spawn_app};

/// Asserts a 422 `validation_failed` whose `errors` name `field` with `code`, and returns the body.
async fn assert_field_error(res: Response, field: &str, code: &str) -> Value {
    let body = assert_problem(res, 422, "validation_failed").await;
    let errors = body["errors"].as_array().expect("an errors list");
    assert!(
        errors.iter().any(|e| e["field"] == field && e["code"] == code),
        "expected {field} with {code} in {body}"
    );
    body
}

/// A product body with one variant priced `amount` in `currency`.
fn priced(retailer_id: &str, amount: &str, currency: &str) -> Value {
    json!({
        "retailer_id": retailer_id,
        "title": "Priced thing",
        "variants": [{"sku": format!("{retailer_id}-1"), "name": "One",
                      "price": {"amount": amount, "currency": currency}, "stock": 1}],
    })
}

/// The slippers of the examples: two sizes, with options, an image and a page.
fn slippers() -> Value {
    json!({
        "retailer_id": "SLIP-01",
        "title": "Comfy slippers",
        "description": "Warm felt slippers.",
        "image_url": "https://example.com/slip-01.jpg",
        "url": "https://example.com/slip-01",
        "brand": "Comfy",
        "variants": [
            {"sku": "SLIP-01-42", "name": "42", "options": {"size": "42"},
             "price": {"amount": "49.90", "currency": "EUR"}, "stock": 10},
            {"sku": "SLIP-01-43", "name": "43", "options": {"size": "43"},
             "price": {"amount": "49.90", "currency": "EUR"}, "stock": 3},
        ],
    })
}

/// Creates the slippers for a new merchant and returns the app, the token and the product.
async fn app_with_slippers() -> (TestApp, String, Value) {
    let app = spawn_app().await;
    let m = app.merchant("Comfy shoes").await;
    let product = app.create_product(&m.token, slippers()).await;
    (app, m.token, product)
}

fn product_path(product: &Value) -> String {
    format!("/v1/products/{}", product["id"].as_str().unwrap())
}

fn variant_path(product: &Value, index: usize) -> String {
    format!(
        "{}/variants/{}",
        product_path(product),
        product["variants"][index]["id"].as_str().unwrap()
    )
}

// ---------------------------------------------------------------------------------------------------
// Create, read, update, delete

#[tokio::test]
async fn creating_a_product_answers_201_with_its_variants() {
    let app = spawn_app().await;
    let m = app.merchant("Comfy shoes").await;

    let res = app.post("/v1/products", &m.token, slippers()).await;

    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    assert!(uuid::Uuid::parse_str(body["id"].as_str().unwrap()).is_ok());
    assert_eq!(body["retailer_id"], "SLIP-01");
    assert_eq!(body["title"], "Comfy slippers");
    assert_eq!(body["description"], "Warm felt slippers.");
    assert_eq!(body["image_url"], "https://example.com/slip-01.jpg");
    assert_eq!(body["url"], "https://example.com/slip-01");
    assert_eq!(body["brand"], "Comfy");
    assert_eq!(body["featured"], false);
    let variants = body["variants"].as_array().unwrap();
    assert_eq!(variants.len(), 2);
    assert!(uuid::Uuid::parse_str(variants[0]["id"].as_str().unwrap()).is_ok());
    assert_ne!(variants[0]["id"], variants[1]["id"]);
    assert_eq!(variants[0]["sku"], "SLIP-01-42");
    assert_eq!(variants[0]["name"], "42");
    assert_eq!(
        variants[0]["price"],
        json!({"amount": "49.90", "currency": "EUR"})
    );
    assert_eq!(variants[0]["stock"], 10);
    assert_eq!(variants[0]["options"], json!({"size": "42"}));
    assert_eq!(variants[1]["sku"], "SLIP-01-43");
    assert_eq!(variants[1]["stock"], 3);
}

#[tokio::test]
async fn a_created_product_reads_back_equal() {
    let (app, token, created) = app_with_slippers().await;

    let res = app.get(&product_path(&created), &token).await;

    assert_eq!(res.status(), 200);
    let read: Value = res.json().await.unwrap();
    assert_eq!(read, created);
}

#[tokio::test]
async fn patching_a_product_changes_the_given_fields_and_null_clears_the_description() {
    let (app, token, created) = app_with_slippers().await;

    let res = app
        .patch(
            &product_path(&created),
            &token,
            json!({"title": "Comfy slippers (felt)", "brand": "Comfy Co", "featured": true, "description": null}),
        )
        .await;

    assert_eq!(res.status(), 200);
    let patched: Value = res.json().await.unwrap();
    assert_eq!(patched["title"], "Comfy slippers (felt)");
    assert_eq!(patched["brand"], "Comfy Co");
    assert_eq!(patched["featured"], true);
    assert_eq!(patched["description"], Value::Null);
    assert_eq!(patched["image_url"], created["image_url"], "absent fields stay");
    assert_eq!(patched["url"], created["url"]);
    assert_eq!(patched["variants"], created["variants"]);
    let read: Value = app
        .get(&product_path(&created), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read, patched);
}

#[tokio::test]
async fn patching_a_product_with_an_empty_title_answers_422() {
    let (app, token, created) = app_with_slippers().await;

    let res = app
        .patch(&product_path(&created), &token, json!({"title": "  "}))
        .await;

    assert_field_error(res, "title", "required").await;
}

#[tokio::test]
async fn deleting_a_product_answers_204_then_404() {
    let (app, token, created) = app_with_slippers().await;

    let deleted = app.delete(&product_path(&created), &token).await;
    let read = app.get(&product_path(&created), &token).await;
    let deleted_again = app.delete(&product_path(&created), &token).await;

    assert_eq!(deleted.status(), 204);
    assert_problem(read, 404, "not_found").await;
    assert_problem(deleted_again, 404, "not_found").await;
}

#[tokio::test]
async fn a_deleted_products_retailer_id_and_skus_can_be_used_again() {
    let (app, token, created) = app_with_slippers().await;
    assert_eq!(app.delete(&product_path(&created), &token).await.status(), 204);

    let res = app.post("/v1/products", &token, slippers()).await;

    assert_eq!(res.status(), 201);
}

// ---------------------------------------------------------------------------------------------------
// Validation

#[tokio::test]
async fn an_empty_title_answers_422_naming_the_title() {
    let app = spawn_app().await;
    let m = app.merchant("Shop").await;

    let res = app
        .post(
            "/v1/products",
            &m.token,
            product_body("P-1", "", &[("P-1-A", "A", "10.00", 1)]),
        )
        .await;

    let body = assert_field_error(res, "title", "required").await;
    assert_eq!(body["errors"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_product_without_variants_answers_422() {
    let app = spawn_app().await;
    let m = app.merchant("Shop").await;

    let res = app
        .post("/v1/products", &m.token, product_body("P-1", "Thing", &[]))
        .await;

    assert_field_error(res, "variants", "required").await;
}

#[tokio::test]
async fn a_sku_repeated_within_the_body_answers_422_on_the_second_variant() {
    let app = spawn_app().await;
    let m = app.merchant("Shop").await;
    let body = product_body(
        "P-1",
        "Thing",
        &[("SAME", "A", "10.00", 1), ("SAME", "B", "10.00", 1)],
    );

    let res = app.post("/v1/products", &m.token, body).await;

    let problem = assert_field_error(res, "variants[1].sku", "duplicate").await;
    assert!(
        !problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["field"] == "variants[0].sku")
    );
}

#[tokio::test]
async fn a_negative_stock_answers_422() {
    let app = spawn_app().await;
    let m = app.merchant("Shop").await;

    let res = app
        .post(
            "/v1/products",
            &m.token,
            product_body("P-1", "Thing", &[("P-1-A", "A", "10.00", -1)]),
        )
        .await;

    assert_field_error(res, "variants[0].stock", "out_of_range").await;
}

#[tokio::test]
async fn a_price_with_too_many_decimals_answers_422() {
    let app = spawn_app().await;
    let m = app.merchant("Shop").await;

    let res = app
        .post("/v1/products", &m.token, priced("P-1", "49.999", "EUR"))
        .await;

    assert_field_error(res, "variants[0].price", "too_many_decimals").await;
}

#[tokio::test]
async fn a_negative_price_answers_422() {
    let app = spawn_app().await;
    let m = app.merchant("Shop").await;

    let res = app
        .post("/v1/products", &m.token, priced("P-1", "-1.00", "EUR"))
        .await;

    assert_field_error(res, "variants[0].price", "negative_amount").await;
}

#[tokio::test]
async fn an_amount_that_is_not_a_decimal_answers_422() {
    let app = spawn_app().await;
    let m = app.merchant("Shop").await;

    let res = app
        .post("/v1/products", &m.token, priced("P-1", "49,90", "EUR"))
        .await;

    assert_field_error(res, "variants[0].price", "invalid_amount").await;
}

#[tokio::test]
async fn an_unknown_currency_answers_422() {
    let app = spawn_app().await;
    let m = app.merchant("Shop").await;

    let res = app
        .post("/v1/products", &m.token, priced("P-1", "49.90", "XYZ"))
        .await;

    assert_field_error(res, "variants[0].price", "unknown_currency").await;
}

#[tokio::test]
async fn a_price_in_another_currency_than_the_merchants_answers_422() {
    let app = spawn_app().await;
    let m = app.merchant("Shop").await;

    let res = app
        .post("/v1/products", &m.token, priced("P-1", "49.90", "USD"))
        .await;

    assert_field_error(res, "variants[0].price", "currency_mismatch").await;
}

#[tokio::test]
async fn an_invalid_image_url_answers_422() {
    let app = spawn_app().await;
    let m = app.merchant("Shop").await;
    let mut body = product_body("P-1", "Thing", &[("P-1-A", "A", "10.00", 1)]);
    body["image_url"] = json!("not a url");

    let res = app.post("/v1/products", &m.token, body).await;

    assert_field_error(res, "image_url", "invalid_url").await;
}

#[tokio::test]
async fn every_broken_field_is_listed_at_once() {
    let app = spawn_app().await;
    let m = app.merchant("Shop").await;
    let mut body = product_body(
        "P-1",
        "",
        &[("P-1-A", "A", "49.999", 1), ("P-1-B", "B", "10.00", -5)],
    );
    body["url"] = json!("ftp://example.com");

    let res = app.post("/v1/products", &m.token, body).await;

    let problem = assert_field_error(res, "title", "required").await;
    let fields: HashSet<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        HashSet::from(["title", "url", "variants[0].price", "variants[1].stock"])
    );
}

#[tokio::test]
async fn a_json_number_as_amount_answers_400_invalid_json() {
    let app = spawn_app().await;
    let m = app.merchant("Shop").await;
    let mut body = product_body("P-1", "Thing", &[("P-1-A", "A", "10.00", 1)]);
    body["variants"][0]["price"]["amount"] = json!(49.9);

    let res = app.post("/v1/products", &m.token, body).await;

    assert_problem(res, 400, "invalid_json").await;
}

#[tokio::test]
async fn malformed_json_answers_400_invalid_json() {
    let app = spawn_app().await;
    let m = app.merchant("Shop").await;

    let res = app
        .post_raw(
            "/v1/products",
            &m.token,
            "application/json",
            br#"{"retailer_id": "P-1", "title": "#.to_vec(),
        )
        .await;

    assert_problem(res, 400, "invalid_json").await;
}

#[tokio::test]
async fn an_unknown_field_answers_400_invalid_json() {
    let app = spawn_app().await;
    let m = app.merchant("Shop").await;
    let mut body = product_body("P-1", "Thing", &[("P-1-A", "A", "10.00", 1)]);
    body["colour"] = json!("red");

    let res = app.post("/v1/products", &m.token, body).await;

    assert_problem(res, 400, "invalid_json").await;
}

#[tokio::test]
async fn a_yen_merchant_accepts_whole_yen() {
    let app = spawn_app().await;
    let m = app.merchant_in("Tokyo", "JPY").await;

    let res = app
        .post("/v1/products", &m.token, priced("P-1", "5990", "JPY"))
        .await;

    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["variants"][0]["price"],
        json!({"amount": "5990", "currency": "JPY"})
    );
}

#[tokio::test]
async fn a_yen_merchant_refuses_decimals() {
    let app = spawn_app().await;
    let m = app.merchant_in("Tokyo", "JPY").await;

    let res = app
        .post("/v1/products", &m.token, priced("P-1", "59.90", "JPY"))
        .await;

    assert_field_error(res, "variants[0].price", "too_many_decimals").await;
}

#[tokio::test]
async fn a_dinar_merchant_accepts_three_decimals() {
    let app = spawn_app().await;
    let m = app.merchant_in("Kuwait", "KWD").await;

    let res = app
        .post("/v1/products", &m.token, priced("P-1", "1.250", "KWD"))
        .await;

    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["variants"][0]["price"],
        json!({"amount": "1.250", "currency": "KWD"})
    );
}

// ---------------------------------------------------------------------------------------------------
// Uniqueness

#[tokio::test]
async fn a_taken_retailer_id_answers_409_retailer_id_taken() {
    let (app, token, _) = app_with_slippers().await;

    let res = app
        .post(
            "/v1/products",
            &token,
            product_body("SLIP-01", "Other", &[("OTHER-1", "A", "10.00", 1)]),
        )
        .await;

    assert_problem(res, 409, "retailer_id_taken").await;
}

#[tokio::test]
async fn a_sku_of_another_product_answers_409_sku_taken_and_creates_nothing() {
    let (app, token, _) = app_with_slippers().await;

    let res = app
        .post(
            "/v1/products",
            &token,
            product_body(
                "OTHER",
                "Other",
                &[("OTHER-1", "A", "10.00", 1), ("SLIP-01-42", "B", "10.00", 1)],
            ),
        )
        .await;

    assert_problem(res, 409, "sku_taken").await;
    let list: Value = app
        .get("/v1/products?q=other", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"], json!([]), "the product was rolled back");
}

#[tokio::test]
async fn another_merchant_may_use_the_same_retailer_id_and_skus() {
    let (app, _, _) = app_with_slippers().await;
    let other = app.merchant("Other shoes").await;

    let res = app.post("/v1/products", &other.token, slippers()).await;

    assert_eq!(res.status(), 201);
}

// ---------------------------------------------------------------------------------------------------
// Variants

#[tokio::test]
async fn adding_a_variant_answers_201_and_appends_it() {
    let (app, token, product) = app_with_slippers().await;

    let res = app
        .post(
            &format!("{}/variants", product_path(&product)),
            &token,
            json!({"sku": "SLIP-01-44", "name": "44", "options": {"size": "44"},
                   "price": {"amount": "52.00", "currency": "EUR"}, "stock": 4}),
        )
        .await;

    assert_eq!(res.status(), 201);
    let variant: Value = res.json().await.unwrap();
    assert_eq!(variant["sku"], "SLIP-01-44");
    assert_eq!(variant["price"], json!({"amount": "52.00", "currency": "EUR"}));
    assert_eq!(variant["stock"], 4);
    let read: Value = app
        .get(&product_path(&product), &token)
        .await
        .json()
        .await
        .unwrap();
    let skus: Vec<&str> = read["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["sku"].as_str().unwrap())
        .collect();
    assert_eq!(skus, ["SLIP-01-42", "SLIP-01-43", "SLIP-01-44"]);
}

#[tokio::test]
async fn adding_a_variant_with_a_taken_sku_answers_409_sku_taken() {
    let (app, token, product) = app_with_slippers().await;

    let res = app
        .post(
            &format!("{}/variants", product_path(&product)),
            &token,
            json!({"sku": "SLIP-01-42", "name": "42 again",
                   "price": {"amount": "49.90", "currency": "EUR"}, "stock": 1}),
        )
        .await;

    assert_problem(res, 409, "sku_taken").await;
}

#[tokio::test]
async fn adding_a_variant_to_an_unknown_product_answers_404() {
    let app = spawn_app().await;
    let m = app.merchant("Shop").await;

    let res = app
        .post(
            &format!("/v1/products/{}/variants", uuid::Uuid::now_v7()),
            &m.token,
            json!({"sku": "X", "name": "X", "price": {"amount": "1.00", "currency": "EUR"}, "stock": 1}),
        )
        .await;

    assert_problem(res, 404, "not_found").await;
}

#[tokio::test]
async fn patching_a_variant_changes_its_price_and_options() {
    let (app, token, product) = app_with_slippers().await;

    let res = app
        .patch(
            &variant_path(&product, 0),
            &token,
            json!({"price": {"amount": "44.90", "currency": "EUR"}, "options": {"size": "42", "color": "Grey"}}),
        )
        .await;

    assert_eq!(res.status(), 200);
    let variant: Value = res.json().await.unwrap();
    assert_eq!(variant["price"], json!({"amount": "44.90", "currency": "EUR"}));
    assert_eq!(variant["options"], json!({"color": "Grey", "size": "42"}));
    assert_eq!(variant["sku"], "SLIP-01-42", "absent fields stay");
    assert_eq!(variant["stock"], 10);
    let read: Value = app
        .get(&product_path(&product), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read["variants"][0]["price"]["amount"], "44.90");
}

#[tokio::test]
async fn patching_a_variant_with_a_price_in_another_currency_answers_422() {
    let (app, token, product) = app_with_slippers().await;

    let res = app
        .patch(
            &variant_path(&product, 0),
            &token,
            json!({"price": {"amount": "44.90", "currency": "USD"}}),
        )
        .await;

    assert_field_error(res, "price", "currency_mismatch").await;
}

#[tokio::test]
async fn patching_a_variant_to_a_sku_of_another_variant_answers_409_sku_taken() {
    let (app, token, product) = app_with_slippers().await;

    let res = app
        .patch(&variant_path(&product, 0), &token, json!({"sku": "SLIP-01-43"}))
        .await;

    assert_problem(res, 409, "sku_taken").await;
}

#[tokio::test]
async fn deleting_a_variant_answers_204_and_removes_it() {
    let (app, token, product) = app_with_slippers().await;

    let res = app.delete(&variant_path(&product, 0), &token).await;

    assert_eq!(res.status(), 204);
    let read: Value = app
        .get(&product_path(&product), &token)
        .await
        .json()
        .await
        .unwrap();
    let variants = read["variants"].as_array().unwrap();
    assert_eq!(variants.len(), 1);
    assert_eq!(variants[0]["sku"], "SLIP-01-43");
}

#[tokio::test]
async fn deleting_the_last_variant_answers_409_last_variant() {
    let (app, token, product) = app_with_slippers().await;
    assert_eq!(app.delete(&variant_path(&product, 0), &token).await.status(), 204);

    let res = app.delete(&variant_path(&product, 1), &token).await;

    assert_problem(res, 409, "last_variant").await;
    let read: Value = app
        .get(&product_path(&product), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read["variants"].as_array().unwrap().len(), 1);
}

// ---------------------------------------------------------------------------------------------------
// Lists and search

#[tokio::test]
async fn the_list_walks_every_product_once_with_its_cursor() {
    let app = spawn_app().await;
    let m = app.merchant("Shop").await;
    let mut created = Vec::new();
    for i in 0..5 {
        let p = app
            .create_product(
                &m.token,
                product_body(
                    &format!("P-{i}"),
                    &format!("Thing {i}"),
                    &[(&format!("S-{i}"), "A", "1.00", 1)],
                ),
            )
            .await;
        created.push(p["id"].as_str().unwrap().to_owned());
    }

    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let path = match &cursor {
            None => "/v1/products?limit=2".to_owned(),
            Some(c) => format!("/v1/products?limit=2&cursor={c}"),
        };
        let res = app.get(&path, &m.token).await;
        assert_eq!(res.status(), 200);
        let page: Value = res.json().await.unwrap();
        let data = page["data"].as_array().unwrap();
        sizes.push(data.len());
        seen.extend(data.iter().map(|p| p["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => {
                assert_eq!(page["next_cursor"], Value::Null);
                break;
            }
        }
    }

    assert_eq!(sizes, [2, 2, 1]);
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), 5, "no duplicates: {seen:?}");
    assert_eq!(unique, created.iter().collect::<HashSet<_>>());
}

#[tokio::test]
async fn a_page_that_ends_exactly_at_the_last_product_has_no_next_cursor() {
    let app = spawn_app().await;
    let m = app.merchant("Shop").await;
    for i in 0..2 {
        app.create_product(
            &m.token,
            product_body(&format!("P-{i}"), "Thing", &[(&format!("S-{i}"), "A", "1.00", 1)]),
        )
        .await;
    }

    let page: Value = app
        .get("/v1/products?limit=2", &m.token)
        .await
        .json()
        .await
        .unwrap();

    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    assert_eq!(page["next_cursor"], Value::Null);
}

#[tokio::test]
async fn a_limit_of_zero_or_over_200_answers_422() {
    let app = spawn_app().await;
    let m = app.merchant("Shop").await;

    let zero = app.get("/v1/products?limit=0", &m.token).await;
    let too_many = app.get("/v1/products?limit=500", &m.token).await;

    assert_field_error(zero, "limit", "out_of_range").await;
    assert_field_error(too_many, "limit", "out_of_range").await;
}

#[tokio::test]
async fn a_search_over_200_characters_answers_422() {
    let app = spawn_app().await;
    let m = app.merchant("Shop").await;

    let res = app
        .get(&format!("/v1/products?q={}", "a".repeat(201)), &m.token)
        .await;

    assert_field_error(res, "q", "too_long").await;
}

#[tokio::test]
async fn a_garbage_cursor_answers_400() {
    let app = spawn_app().await;
    let m = app.merchant("Shop").await;

    let res = app.get("/v1/products?cursor=not-a-cursor", &m.token).await;

    assert_eq!(res.status(), 400);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn search_ignores_case_and_accents() {
    let app = spawn_app().await;
    let m = app.merchant("Chaussons").await;
    let wanted = app
        .create_product(
            &m.token,
            product_body("PANT-1", "Pantoufles d'été", &[("PANT-1-40", "40", "39.00", 2)]),
        )
        .await;
    app.create_product(
        &m.token,
        product_body("BOOT-1", "Bottes d'hiver", &[("BOOT-1-40", "40", "89.00", 2)]),
    )
    .await;

    let res = app.get("/v1/products?q=ETE%20pantoufle", &m.token).await;

    assert_eq!(res.status(), 200);
    let page: Value = res.json().await.unwrap();
    let data = page["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "{page}");
    assert_eq!(data[0]["id"], wanted["id"]);
    let accented: Value = app
        .get("/v1/products?q=%C3%89T%C3%89", &m.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(accented["data"].as_array().unwrap().len(), 1, "ÉTÉ finds été");
}

#[tokio::test]
async fn search_matches_the_brand() {
    let app = spawn_app().await;
    let m = app.merchant("Shop").await;
    let mut by_brand = product_body("P-1", "Slippers", &[("P-1-A", "A", "10.00", 1)]);
    by_brand["brand"] = json!("Müller");
    let wanted = app.create_product(&m.token, by_brand).await;
    app.create_product(
        &m.token,
        product_body("P-2", "Slippers", &[("P-2-A", "A", "10.00", 1)]),
    )
    .await;

    let page: Value = app
        .get("/v1/products?q=muller", &m.token)
        .await
        .json()
        .await
        .unwrap();

    let data = page["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "{page}");
    assert_eq!(data[0]["id"], wanted["id"]);
}

#[tokio::test]
async fn search_follows_a_renamed_product() {
    let (app, token, product) = app_with_slippers().await;
    app.patch(&product_path(&product), &token, json!({"title": "Chaussons"}))
        .await;

    let old: Value = app
        .get("/v1/products?q=slippers", &token)
        .await
        .json()
        .await
        .unwrap();
    let new: Value = app
        .get("/v1/products?q=chaussons", &token)
        .await
        .json()
        .await
        .unwrap();

    assert_eq!(old["data"], json!([]));
    assert_eq!(new["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn search_treats_like_wildcards_as_plain_text() {
    let (app, token, _) = app_with_slippers().await;

    let page: Value = app.get("/v1/products?q=%25", &token).await.json().await.unwrap();
    let underscore: Value = app.get("/v1/products?q=_", &token).await.json().await.unwrap();

    // "%" and "_" are not words: they filter nothing rather than matching everything by accident.
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    assert_eq!(underscore["data"].as_array().unwrap().len(), 1);
}

// ---------------------------------------------------------------------------------------------------
// Body size

#[tokio::test]
async fn a_body_over_256_kib_answers_413() {
    let app = spawn_app().await;
    let m = app.merchant("Shop").await;
    let mut body = product_body("P-1", "Thing", &[("P-1-A", "A", "10.00", 1)]);
    body["description"] = json!("x".repeat(257 * 1024));

    let res = app
        .post_raw(
            "/v1/products",
            &m.token,
            "application/json",
            serde_json::to_vec(&body).unwrap(),
        )
        .await;

    assert_problem(res, 413, "payload_too_large").await;
}
