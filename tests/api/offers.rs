//! Upsell and cross-sell offers: create with either discount form or none, read, list, patch, delete,
//! validation, catalog checks that never reveal another merchant's ids, tenancy and roles.

use reqwest::{Method, Response};
use serde_json::{Value, json};
use threadcart::offers::{self, OfferDiscount};
use uuid::Uuid;

use crate::helpers::{TestApp, TestMerchant, assert_problem, product_body, spawn_app};

/// A merchant's catalog: boots (the trigger, two sizes) and wool socks at 9.00 EUR (the offer).
struct Shop {
    merchant: TestMerchant,
    boots: Value,
    socks: Value,
}

impl Shop {
    fn boots_id(&self) -> &str {
        self.boots["id"].as_str().unwrap()
    }

    fn boots_variant_id(&self) -> &str {
        self.boots["variants"][0]["id"].as_str().unwrap()
    }

    fn socks_id(&self) -> &str {
        self.socks["id"].as_str().unwrap()
    }

    fn socks_variant_id(&self) -> &str {
        self.socks["variants"][0]["id"].as_str().unwrap()
    }

    fn token(&self) -> &str {
        &self.merchant.token
    }

    /// An offer body: socks offered when boots are added, plus `extra` fields.
    fn offer(&self, extra: Value) -> Value {
        let mut body = json!({
            "kind": "cross_sell",
            "trigger": {"product_id": self.boots_id()},
            "offer": {"variant_id": self.socks_variant_id()},
            "text": "Add wool socks?",
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    }
}

/// Creates a merchant named `name` with boots and socks.
async fn shop(app: &TestApp, name: &str, prefix: &str) -> Shop {
    let merchant = app.merchant(name).await;
    let boots = app
        .create_product(
            &merchant.token,
            product_body(
                &format!("{prefix}BOOT"),
                "Winter boots",
                &[
                    (&format!("{prefix}BOOT-42"), "42", "89.00", 5),
                    (&format!("{prefix}BOOT-43"), "43", "89.00", 5),
                ],
            ),
        )
        .await;
    let socks = app
        .create_product(
            &merchant.token,
            product_body(
                &format!("{prefix}SOCK"),
                "Wool socks",
                &[(&format!("{prefix}SOCK-1"), "One size", "9.00", 50)],
            ),
        )
        .await;
    Shop {
        merchant,
        boots,
        socks,
    }
}

async fn app_with_shop() -> (TestApp, Shop) {
    let app = spawn_app().await;
    let shop = shop(&app, "Boot shop", "").await;
    (app, shop)
}

/// Creates an offer, asserting 201, and returns it.
async fn create_offer(app: &TestApp, token: &str, body: Value) -> Value {
    let res = app.post("/v1/offers", token, body).await;
    assert_eq!(res.status(), 201, "creating an offer");
    res.json().await.unwrap()
}

fn offer_path(offer: &Value) -> String {
    format!("/v1/offers/{}", offer["id"].as_str().unwrap())
}

/// Asserts a 422 `validation_failed` whose `errors` are exactly `expected` (field, code), returning the body.
async fn assert_field_errors(res: Response, expected: &[(&str, &str)]) -> Value {
    let body = assert_problem(res, 422, "validation_failed").await;
    let errors: Vec<(String, String)> = body["errors"]
        .as_array()
        .expect("an errors list")
        .iter()
        .map(|e| {
            (
                e["field"].as_str().unwrap().to_owned(),
                e["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(f, c)| (f.to_string(), c.to_string()))
        .collect();
    assert_eq!(errors, expected, "in {body}");
    body
}

async fn list(app: &TestApp, token: &str, query: &str) -> Value {
    let res = app.get(&format!("/v1/offers{query}"), token).await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

fn ids(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------------------
// Create and read

#[tokio::test]
async fn creating_an_offer_with_a_percent_discount_answers_201_with_the_offer() {
    let (app, shop) = app_with_shop().await;

    let res = app
        .post(
            "/v1/offers",
            shop.token(),
            shop.offer(json!({"kind": "upsell", "discount_percent": "20"})),
        )
        .await;

    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    assert!(Uuid::parse_str(body["id"].as_str().unwrap()).is_ok());
    assert_eq!(body["kind"], "upsell");
    assert_eq!(body["trigger"], json!({"product_id": shop.boots_id()}));
    assert_eq!(body["offer"], json!({"variant_id": shop.socks_variant_id()}));
    assert_eq!(body["discount_percent"], "20");
    assert_eq!(body["price_delta"], Value::Null);
    assert_eq!(body["text"], "Add wool socks?");
    assert_eq!(body["active"], true);
    assert!(body["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(body["created_at"], body["updated_at"]);
}

#[tokio::test]
async fn a_fractional_percent_is_answered_without_trailing_zeros() {
    let (app, shop) = app_with_shop().await;

    let body = create_offer(
        &app,
        shop.token(),
        shop.offer(json!({"discount_percent": "12.50"})),
    )
    .await;

    assert_eq!(body["discount_percent"], "12.5");
}

#[tokio::test]
async fn creating_a_cross_sell_with_a_fixed_discount_answers_201_with_the_price_delta() {
    let (app, shop) = app_with_shop().await;

    let body = create_offer(
        &app,
        shop.token(),
        shop.offer(json!({"price_delta": {"amount": "2", "currency": "EUR"}})),
    )
    .await;

    assert_eq!(body["kind"], "cross_sell");
    assert_eq!(body["discount_percent"], Value::Null);
    assert_eq!(body["price_delta"], json!({"amount": "2.00", "currency": "EUR"}));
}

#[tokio::test]
async fn creating_an_offer_without_a_discount_and_inactive_answers_201() {
    let (app, shop) = app_with_shop().await;

    let body = create_offer(
        &app,
        shop.token(),
        shop.offer(json!({"discount_percent": null, "price_delta": null, "active": false})),
    )
    .await;

    assert_eq!(body["discount_percent"], Value::Null);
    assert_eq!(body["price_delta"], Value::Null);
    assert_eq!(body["active"], false);
}

#[tokio::test]
async fn a_created_offer_reads_back_equal() {
    let (app, shop) = app_with_shop().await;
    let created = create_offer(&app, shop.token(), shop.offer(json!({"discount_percent": "20"}))).await;

    let res = app.get(&offer_path(&created), shop.token()).await;

    assert_eq!(res.status(), 200);
    let read: Value = res.json().await.unwrap();
    assert_eq!(read, created);
}

#[tokio::test]
async fn the_merchants_text_is_stored_trimmed() {
    let (app, shop) = app_with_shop().await;

    let body = create_offer(
        &app,
        shop.token(),
        shop.offer(json!({"text": "  Add wool socks? \n"})),
    )
    .await;

    assert_eq!(body["text"], "Add wool socks?");
}

// ---------------------------------------------------------------------------------------------------
// Lists

#[tokio::test]
async fn listing_offers_pages_through_them_newest_first() {
    let (app, shop) = app_with_shop().await;
    let mut created = Vec::new();
    for text in ["First?", "Second?", "Third?"] {
        let offer = create_offer(&app, shop.token(), shop.offer(json!({"text": text}))).await;
        created.push(offer["id"].as_str().unwrap().to_owned());
    }

    let first = list(&app, shop.token(), "?limit=2").await;
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let second = list(&app, shop.token(), &format!("?limit=2&cursor={cursor}")).await;

    created.reverse();
    assert_eq!(ids(&first), created[..2]);
    assert_eq!(ids(&second), created[2..]);
    assert_eq!(second["next_cursor"], Value::Null);
    assert_eq!(first["data"][0]["text"], "Third?");
}

#[tokio::test]
async fn listing_offers_filters_by_trigger_product() {
    let (app, shop) = app_with_shop().await;
    let on_boots = create_offer(&app, shop.token(), shop.offer(json!({}))).await;
    let on_socks = create_offer(
        &app,
        shop.token(),
        shop.offer(json!({
            "kind": "cross_sell",
            "trigger": {"product_id": shop.socks_id()},
            "offer": {"variant_id": shop.boots_variant_id()},
            "text": "Boots to go with them?",
        })),
    )
    .await;

    let boots = list(&app, shop.token(), &format!("?product_id={}", shop.boots_id())).await;
    let socks = list(&app, shop.token(), &format!("?product_id={}", shop.socks_id())).await;
    let unknown = list(&app, shop.token(), &format!("?product_id={}", Uuid::now_v7())).await;
    let all = list(&app, shop.token(), "").await;

    assert_eq!(ids(&boots), [on_boots["id"].as_str().unwrap()]);
    assert_eq!(ids(&socks), [on_socks["id"].as_str().unwrap()]);
    assert!(ids(&unknown).is_empty());
    assert_eq!(ids(&all).len(), 2);
}

#[tokio::test]
async fn a_malformed_product_filter_or_cursor_answers_400_and_a_bad_limit_422() {
    let (app, shop) = app_with_shop().await;

    let filter = app.get("/v1/offers?product_id=boots", shop.token()).await;
    let cursor = app.get("/v1/offers?cursor=nope", shop.token()).await;
    let limit = app.get("/v1/offers?limit=0", shop.token()).await;

    assert_problem(filter, 400, "bad_request").await;
    assert_problem(cursor, 400, "bad_request").await;
    assert_field_errors(limit, &[("limit", "out_of_range")]).await;
}

// ---------------------------------------------------------------------------------------------------
// Patch and delete

#[tokio::test]
async fn patching_an_offer_changes_text_and_active_and_leaves_the_rest() {
    let (app, shop) = app_with_shop().await;
    let created = create_offer(&app, shop.token(), shop.offer(json!({"discount_percent": "20"}))).await;

    let res = app
        .patch(
            &offer_path(&created),
            shop.token(),
            json!({"text": "Warm socks for the trail?", "active": false}),
        )
        .await;

    assert_eq!(res.status(), 200);
    let patched: Value = res.json().await.unwrap();
    assert_eq!(patched["text"], "Warm socks for the trail?");
    assert_eq!(patched["active"], false);
    assert_eq!(patched["discount_percent"], "20", "absent fields stay");
    assert_eq!(patched["kind"], created["kind"]);
    assert_eq!(patched["trigger"], created["trigger"]);
    assert_eq!(patched["offer"], created["offer"]);
    assert_eq!(patched["created_at"], created["created_at"]);
    assert!(patched["updated_at"].as_str().unwrap() >= created["updated_at"].as_str().unwrap());
    let read: Value = app
        .get(&offer_path(&created), shop.token())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read, patched);
}

#[tokio::test]
async fn patching_one_discount_form_replaces_the_other_and_null_removes_it() {
    let (app, shop) = app_with_shop().await;
    let created = create_offer(&app, shop.token(), shop.offer(json!({"discount_percent": "20"}))).await;
    let path = offer_path(&created);

    let fixed: Value = app
        .patch(
            &path,
            shop.token(),
            json!({"price_delta": {"amount": "1.50", "currency": "EUR"}}),
        )
        .await
        .json()
        .await
        .unwrap();
    let percent: Value = app
        .patch(&path, shop.token(), json!({"discount_percent": "15"}))
        .await
        .json()
        .await
        .unwrap();
    let none: Value = app
        .patch(&path, shop.token(), json!({"discount_percent": null}))
        .await
        .json()
        .await
        .unwrap();

    assert_eq!(fixed["price_delta"], json!({"amount": "1.50", "currency": "EUR"}));
    assert_eq!(fixed["discount_percent"], Value::Null);
    assert_eq!(percent["discount_percent"], "15");
    assert_eq!(percent["price_delta"], Value::Null);
    assert_eq!(none["discount_percent"], Value::Null);
    assert_eq!(none["price_delta"], Value::Null);
    assert_eq!(none["text"], "Add wool socks?");
}

#[tokio::test]
async fn patching_with_invalid_fields_answers_422_and_changes_nothing() {
    let (app, shop) = app_with_shop().await;
    let created = create_offer(&app, shop.token(), shop.offer(json!({"discount_percent": "20"}))).await;

    let res = app
        .patch(
            &offer_path(&created),
            shop.token(),
            json!({"text": " ", "discount_percent": "150"}),
        )
        .await;
    let both = app
        .patch(
            &offer_path(&created),
            shop.token(),
            json!({"discount_percent": "10", "price_delta": {"amount": "1.00", "currency": "EUR"}}),
        )
        .await;
    let currency = app
        .patch(
            &offer_path(&created),
            shop.token(),
            json!({"price_delta": {"amount": "1.00", "currency": "USD"}}),
        )
        .await;

    assert_field_errors(
        res,
        &[("discount_percent", "invalid_percent"), ("text", "required")],
    )
    .await;
    assert_field_errors(both, &[("price_delta", "mutually_exclusive")]).await;
    assert_field_errors(currency, &[("price_delta", "currency_mismatch")]).await;
    let read: Value = app
        .get(&offer_path(&created), shop.token())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read, created);
}

#[tokio::test]
async fn patching_fields_that_cannot_change_answers_400() {
    let (app, shop) = app_with_shop().await;
    let created = create_offer(&app, shop.token(), shop.offer(json!({}))).await;

    let res = app
        .patch(&offer_path(&created), shop.token(), json!({"kind": "upsell"}))
        .await;

    assert_problem(res, 400, "invalid_json").await;
}

#[tokio::test]
async fn deleting_an_offer_answers_204_then_404() {
    let (app, shop) = app_with_shop().await;
    let created = create_offer(&app, shop.token(), shop.offer(json!({}))).await;

    let deleted = app.delete(&offer_path(&created), shop.token()).await;
    let read = app.get(&offer_path(&created), shop.token()).await;
    let patched = app
        .patch(&offer_path(&created), shop.token(), json!({"active": false}))
        .await;
    let deleted_again = app.delete(&offer_path(&created), shop.token()).await;

    assert_eq!(deleted.status(), 204);
    assert_problem(read, 404, "not_found").await;
    assert_problem(patched, 404, "not_found").await;
    assert_problem(deleted_again, 404, "not_found").await;
    assert!(ids(&list(&app, shop.token(), "").await).is_empty());
}

#[tokio::test]
async fn deleting_the_trigger_product_or_the_offered_variant_takes_the_offer_with_it() {
    let (app, shop) = app_with_shop().await;
    let on_boots = create_offer(&app, shop.token(), shop.offer(json!({}))).await;
    let extra_sock = app
        .post(
            &format!("/v1/products/{}/variants", shop.socks_id()),
            shop.token(),
            json!({"sku": "SOCK-2", "name": "Kids", "price": {"amount": "7.00", "currency": "EUR"}, "stock": 3}),
        )
        .await;
    assert_eq!(extra_sock.status(), 201);
    let extra_sock: Value = extra_sock.json().await.unwrap();
    let on_kids_sock = create_offer(
        &app,
        shop.token(),
        shop.offer(json!({"offer": {"variant_id": extra_sock["id"]}})),
    )
    .await;

    let variant = app
        .delete(
            &format!(
                "/v1/products/{}/variants/{}",
                shop.socks_id(),
                extra_sock["id"].as_str().unwrap()
            ),
            shop.token(),
        )
        .await;
    assert_eq!(variant.status(), 204);
    assert_problem(
        app.get(&offer_path(&on_kids_sock), shop.token()).await,
        404,
        "not_found",
    )
    .await;
    assert_eq!(app.get(&offer_path(&on_boots), shop.token()).await.status(), 200);

    let product = app
        .delete(&format!("/v1/products/{}", shop.boots_id()), shop.token())
        .await;
    assert_eq!(product.status(), 204);
    assert_problem(
        app.get(&offer_path(&on_boots), shop.token()).await,
        404,
        "not_found",
    )
    .await;
}

// ---------------------------------------------------------------------------------------------------
// Validation

#[tokio::test]
async fn both_discount_forms_answer_422_mutually_exclusive() {
    let (app, shop) = app_with_shop().await;

    let res = app
        .post(
            "/v1/offers",
            shop.token(),
            shop.offer(
                json!({"discount_percent": "20", "price_delta": {"amount": "2.00", "currency": "EUR"}}),
            ),
        )
        .await;

    assert_field_errors(res, &[("price_delta", "mutually_exclusive")]).await;
}

#[tokio::test]
async fn a_percent_above_100_or_not_above_0_or_finer_than_a_hundredth_answers_422() {
    let (app, shop) = app_with_shop().await;

    for percent in ["100.01", "150", "0", "-5", "12.345", "twenty", "1e1"] {
        let res = app
            .post(
                "/v1/offers",
                shop.token(),
                shop.offer(json!({"discount_percent": percent})),
            )
            .await;
        assert_field_errors(res, &[("discount_percent", "invalid_percent")]).await;
    }
    let hundred = create_offer(&app, shop.token(), shop.offer(json!({"discount_percent": "100"}))).await;
    assert_eq!(hundred["discount_percent"], "100");
}

#[tokio::test]
async fn a_percent_given_as_a_json_number_answers_400() {
    let (app, shop) = app_with_shop().await;

    let res = app
        .post(
            "/v1/offers",
            shop.token(),
            shop.offer(json!({"discount_percent": 20})),
        )
        .await;

    assert_problem(res, 400, "invalid_json").await;
}

#[tokio::test]
async fn a_bad_fixed_discount_answers_422_naming_price_delta() {
    let (app, shop) = app_with_shop().await;
    let cases = [
        (json!({"amount": "0.00", "currency": "EUR"}), "out_of_range"),
        (json!({"amount": "-1.00", "currency": "EUR"}), "negative_amount"),
        (json!({"amount": "1.001", "currency": "EUR"}), "too_many_decimals"),
        (json!({"amount": "1.00", "currency": "EUX"}), "unknown_currency"),
        (json!({"amount": "1.00", "currency": "USD"}), "currency_mismatch"),
    ];

    for (price_delta, code) in cases {
        let res = app
            .post(
                "/v1/offers",
                shop.token(),
                shop.offer(json!({"price_delta": price_delta})),
            )
            .await;
        assert_field_errors(res, &[("price_delta", code)]).await;
    }
}

#[tokio::test]
async fn an_empty_or_too_long_text_answers_422() {
    let (app, shop) = app_with_shop().await;

    let empty = app
        .post("/v1/offers", shop.token(), shop.offer(json!({"text": "  "})))
        .await;
    let long = app
        .post(
            "/v1/offers",
            shop.token(),
            shop.offer(json!({"text": "a".repeat(501)})),
        )
        .await;
    let longest = app
        .post(
            "/v1/offers",
            shop.token(),
            shop.offer(json!({"text": "é".repeat(500)})),
        )
        .await;

    assert_field_errors(empty, &[("text", "required")]).await;
    assert_field_errors(long, &[("text", "too_long")]).await;
    assert_eq!(longest.status(), 201);
}

#[tokio::test]
async fn an_unknown_kind_answers_422_invalid_kind() {
    let (app, shop) = app_with_shop().await;

    for kind in ["downsell", "UPSELL", ""] {
        let res = app
            .post("/v1/offers", shop.token(), shop.offer(json!({"kind": kind})))
            .await;
        assert_field_errors(res, &[("kind", "invalid_kind")]).await;
    }
}

#[tokio::test]
async fn an_upgrade_between_products_answers_422_asking_for_bookables() {
    let (app, shop) = app_with_shop().await;

    let res = app
        .post("/v1/offers", shop.token(), shop.offer(json!({"kind": "upgrade"})))
        .await;

    assert_field_errors(
        res,
        &[
            ("trigger.bookable_id", "required"),
            ("offer.bookable_id", "required"),
        ],
    )
    .await;
}

#[tokio::test]
async fn every_field_error_is_reported_at_once() {
    let (app, shop) = app_with_shop().await;

    let res = app
        .post(
            "/v1/offers",
            shop.token(),
            shop.offer(json!({"kind": "nope", "discount_percent": "101", "text": ""})),
        )
        .await;

    assert_field_errors(
        res,
        &[
            ("kind", "invalid_kind"),
            ("discount_percent", "invalid_percent"),
            ("text", "required"),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_missing_trigger_answers_400_and_a_cross_sell_for_a_bookable_answers_422() {
    let (app, shop) = app_with_shop().await;
    let mut missing = shop.offer(json!({}));
    missing.as_object_mut().unwrap().remove("trigger");

    let res = app.post("/v1/offers", shop.token(), missing).await;
    let bookable = app
        .post(
            "/v1/offers",
            shop.token(),
            shop.offer(json!({"trigger": {"bookable_id": Uuid::now_v7()}})),
        )
        .await;

    assert_problem(res, 400, "invalid_json").await;
    assert_field_errors(bookable, &[("trigger.product_id", "required")]).await;
}

#[tokio::test]
async fn offering_a_variant_of_the_trigger_product_itself_answers_422_same_product() {
    let (app, shop) = app_with_shop().await;

    let res = app
        .post(
            "/v1/offers",
            shop.token(),
            shop.offer(json!({"offer": {"variant_id": shop.boots_variant_id()}})),
        )
        .await;

    assert_field_errors(res, &[("offer.variant_id", "same_product")]).await;
}

#[tokio::test]
async fn unknown_trigger_and_offered_ids_answer_422_not_found() {
    let (app, shop) = app_with_shop().await;

    let res = app
        .post(
            "/v1/offers",
            shop.token(),
            shop.offer(
                json!({"trigger": {"product_id": Uuid::now_v7()}, "offer": {"variant_id": Uuid::now_v7()}}),
            ),
        )
        .await;

    assert_field_errors(
        res,
        &[
            ("trigger.product_id", "not_found"),
            ("offer.variant_id", "not_found"),
        ],
    )
    .await;
}

#[tokio::test]
async fn another_merchants_product_as_trigger_answers_exactly_as_an_unknown_one() {
    let app = spawn_app().await;
    let mine = shop(&app, "Boot shop", "").await;
    let theirs = shop(&app, "Other shop", "X-").await;
    let unknown = Uuid::now_v7().to_string();

    let foreign = app
        .post(
            "/v1/offers",
            mine.token(),
            mine.offer(json!({"trigger": {"product_id": theirs.boots_id()}})),
        )
        .await;
    let missing = app
        .post(
            "/v1/offers",
            mine.token(),
            mine.offer(json!({"trigger": {"product_id": unknown}})),
        )
        .await;

    let foreign = assert_field_errors(foreign, &[("trigger.product_id", "not_found")]).await;
    let missing = assert_field_errors(missing, &[("trigger.product_id", "not_found")]).await;
    assert_eq!(foreign, missing, "the answer does not tell the two apart");
    assert!(!foreign.to_string().contains(theirs.boots_id()));
}

#[tokio::test]
async fn another_merchants_variant_as_offer_answers_exactly_as_an_unknown_one() {
    let app = spawn_app().await;
    let mine = shop(&app, "Boot shop", "").await;
    let theirs = shop(&app, "Other shop", "X-").await;
    let unknown = Uuid::now_v7().to_string();

    let foreign = app
        .post(
            "/v1/offers",
            mine.token(),
            mine.offer(json!({"offer": {"variant_id": theirs.socks_variant_id()}})),
        )
        .await;
    let missing = app
        .post(
            "/v1/offers",
            mine.token(),
            mine.offer(json!({"offer": {"variant_id": unknown}})),
        )
        .await;

    let foreign = assert_field_errors(foreign, &[("offer.variant_id", "not_found")]).await;
    let missing = assert_field_errors(missing, &[("offer.variant_id", "not_found")]).await;
    assert_eq!(foreign, missing, "the answer does not tell the two apart");
    assert!(!foreign.to_string().contains(theirs.socks_variant_id()));
}

#[tokio::test]
async fn another_merchants_variant_of_my_trigger_product_id_is_not_found_rather_than_same_product() {
    let app = spawn_app().await;
    let mine = shop(&app, "Boot shop", "").await;
    let theirs = shop(&app, "Other shop", "X-").await;

    let res = app
        .post(
            "/v1/offers",
            mine.token(),
            mine.offer(json!({
                "trigger": {"product_id": theirs.boots_id()},
                "offer": {"variant_id": theirs.boots_variant_id()},
            })),
        )
        .await;

    assert_field_errors(
        res,
        &[
            ("trigger.product_id", "not_found"),
            ("offer.variant_id", "not_found"),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_yen_merchant_gives_a_fixed_discount_in_whole_yen() {
    let app = spawn_app().await;
    let m = app.merchant_in("Tokyo shop", "JPY").await;
    let yen = |sku: &str, amount: &str| {
        json!({"retailer_id": sku, "title": sku,
               "variants": [{"sku": format!("{sku}-1"), "name": "One", "price": {"amount": amount, "currency": "JPY"}, "stock": 1}]})
    };
    let tea = app.create_product(&m.token, yen("TEA", "1200")).await;
    let cup = app.create_product(&m.token, yen("CUP", "800")).await;
    let body = |amount: &str| {
        json!({"kind": "cross_sell", "trigger": {"product_id": tea["id"]},
               "offer": {"variant_id": cup["variants"][0]["id"]},
               "price_delta": {"amount": amount, "currency": "JPY"}, "text": "A cup for your tea?"})
    };

    let fractional = app.post("/v1/offers", &m.token, body("100.5")).await;
    let whole = create_offer(&app, &m.token, body("100")).await;

    assert_field_errors(fractional, &[("price_delta", "too_many_decimals")]).await;
    assert_eq!(whole["price_delta"], json!({"amount": "100", "currency": "JPY"}));
}

// ---------------------------------------------------------------------------------------------------
// What the conversation reads

#[tokio::test]
async fn triggered_by_answers_the_active_offers_of_that_product_oldest_first() {
    let app = spawn_app().await;
    let mine = shop(&app, "Boot shop", "").await;
    let theirs = shop(&app, "Other shop", "X-").await;
    let first = create_offer(&app, mine.token(), mine.offer(json!({"discount_percent": "20"}))).await;
    create_offer(&app, mine.token(), mine.offer(json!({"active": false}))).await;
    let third = create_offer(
        &app,
        mine.token(),
        mine.offer(json!({"price_delta": {"amount": "2.00", "currency": "EUR"}})),
    )
    .await;
    create_offer(&app, theirs.token(), theirs.offer(json!({}))).await;
    let (merchant_id, boots_id) = (mine.merchant.id, mine.boots_id().parse::<Uuid>().unwrap());

    let found = app
        .db
        .query_blocking(|conn| offers::triggered_by(conn, merchant_id, boots_id))
        .unwrap();

    let found_ids: Vec<String> = found.iter().map(|o| o.id.to_string()).collect();
    assert_eq!(
        found_ids,
        [first["id"].as_str().unwrap(), third["id"].as_str().unwrap()]
    );
    let socks_price =
        threadcart::money::Money::parse_price("9.00", threadcart::money::Currency::parse("EUR").unwrap())
            .unwrap();
    assert_eq!(found[0].price(socks_price).unwrap().amount_string(), "7.20");
    assert_eq!(found[1].price(socks_price).unwrap().amount_string(), "7.00");
    assert!(matches!(found[1].discount, Some(OfferDiscount::Fixed(_))));
    let theirs_seen = app
        .db
        .query_blocking(|conn| offers::triggered_by(conn, theirs.merchant.id, boots_id))
        .unwrap();
    assert!(theirs_seen.is_empty(), "another merchant never sees mine");
}

#[tokio::test]
async fn get_answers_none_for_another_merchants_offer() {
    let app = spawn_app().await;
    let mine = shop(&app, "Boot shop", "").await;
    let theirs = shop(&app, "Other shop", "X-").await;
    let offer = create_offer(&app, mine.token(), mine.offer(json!({}))).await;
    let id: Uuid = offer["id"].as_str().unwrap().parse().unwrap();
    let (mine_id, theirs_id) = (mine.merchant.id, theirs.merchant.id);

    let as_mine = app
        .db
        .query_blocking(|conn| offers::get(conn, mine_id, id))
        .unwrap();
    let as_theirs = app
        .db
        .query_blocking(|conn| offers::get(conn, theirs_id, id))
        .unwrap();

    assert_eq!(as_mine.map(|o| o.text), Some("Add wool socks?".to_owned()));
    assert_eq!(as_theirs, None);
}

// ---------------------------------------------------------------------------------------------------
// Tenancy and roles

#[tokio::test]
async fn another_merchants_offer_answers_404_on_get_patch_and_delete_and_stays_unchanged() {
    let app = spawn_app().await;
    let mine = shop(&app, "Boot shop", "").await;
    let theirs = shop(&app, "Other shop", "X-").await;
    let offer = create_offer(&app, mine.token(), mine.offer(json!({}))).await;
    let path = offer_path(&offer);

    let read = app.get(&path, theirs.token()).await;
    let patched = app.patch(&path, theirs.token(), json!({"active": false})).await;
    let deleted = app.delete(&path, theirs.token()).await;
    let listed = list(&app, theirs.token(), "").await;

    assert_problem(read, 404, "not_found").await;
    assert_problem(patched, 404, "not_found").await;
    assert_problem(deleted, 404, "not_found").await;
    assert!(ids(&listed).is_empty());
    let still: Value = app.get(&path, mine.token()).await.json().await.unwrap();
    assert_eq!(still, offer);
}

#[tokio::test]
async fn a_malformed_offer_id_answers_404() {
    let (app, shop) = app_with_shop().await;

    let res = app.get("/v1/offers/not-a-uuid", shop.token()).await;

    assert_problem(res, 404, "not_found").await;
}

#[tokio::test]
async fn the_catalog_role_may_manage_offers() {
    let (app, shop) = app_with_shop().await;
    let catalog = app.key_with_role(&shop.merchant, "catalog").await;

    let created = create_offer(&app, &catalog.token, shop.offer(json!({}))).await;
    let path = offer_path(&created);

    assert_eq!(app.get("/v1/offers", &catalog.token).await.status(), 200);
    assert_eq!(app.get(&path, &catalog.token).await.status(), 200);
    assert_eq!(
        app.patch(&path, &catalog.token, json!({"active": false}))
            .await
            .status(),
        200
    );
    assert_eq!(app.delete(&path, &catalog.token).await.status(), 204);
}

#[tokio::test]
async fn the_marketing_and_agent_roles_get_403_on_every_offer_route() {
    let (app, shop) = app_with_shop().await;
    let offer = create_offer(&app, shop.token(), shop.offer(json!({}))).await;
    let path = offer_path(&offer);

    for role in ["marketing", "agent"] {
        let key = app.key_with_role(&shop.merchant, role).await;
        let calls = [
            (Method::GET, "/v1/offers".to_owned(), None),
            (Method::POST, "/v1/offers".to_owned(), Some(shop.offer(json!({})))),
            (Method::GET, path.clone(), None),
            (Method::PATCH, path.clone(), Some(json!({"active": false}))),
            (Method::DELETE, path.clone(), None),
        ];
        for (method, route, body) in calls {
            let res = app.request(method.clone(), &route, &key.token, body).await;
            assert_eq!(res.status(), 403, "{role} {method} {route}");
            assert_problem(res, 403, "forbidden").await;
        }
    }
    let still: Value = app.get(&path, shop.token()).await.json().await.unwrap();
    assert_eq!(still, offer);
    assert_eq!(ids(&list(&app, shop.token(), "").await).len(), 1);
}

#[tokio::test]
async fn offer_routes_without_a_token_answer_401() {
    let (app, _shop) = app_with_shop().await;

    let res = app
        .client
        .get(format!("{}/v1/offers", app.address))
        .send()
        .await
        .unwrap();

    assert_problem(res, 401, "missing_token").await;
}
