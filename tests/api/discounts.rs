//! Discount codes: create, read, update, delete, validation, uniqueness per merchant, tenancy, roles, and
//! redemptions that never exceed the maximum under concurrency.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::{Method, Response};
use serde_json::{Value, json};
use threadcart::discounts::{self, DiscountKind, Refusal};
use threadcart::money::{Currency, Money};
use uuid::Uuid;

use crate::helpers::{TestApp, TestMerchant, assert_problem, spawn_app};

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

/// Creates a discount, asserting 201, and returns its JSON.
async fn create(app: &TestApp, token: &str, body: Value) -> Value {
    let res = app.post("/v1/discounts", token, body).await;
    assert_eq!(res.status(), 201, "creating a discount");
    res.json().await.unwrap()
}

fn path(discount: &Value) -> String {
    format!("/v1/discounts/{}", discount["id"].as_str().unwrap())
}

async fn app_with_merchant() -> (TestApp, TestMerchant) {
    let app = spawn_app().await;
    let m = app.merchant("Comfy shoes").await;
    (app, m)
}

async fn list(app: &TestApp, query: &str, token: &str) -> Value {
    let res = app.get(&format!("/v1/discounts{query}"), token).await;
    assert_eq!(res.status(), 200, "listing discounts");
    res.json().await.unwrap()
}

fn codes_of(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["code"].as_str().unwrap().to_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------------------
// Create, read, update, delete

#[tokio::test]
async fn creating_a_percent_code_answers_201_with_the_code_upper_cased() {
    let (app, m) = app_with_merchant().await;

    let res = app
        .post(
            "/v1/discounts",
            &m.token,
            json!({"code": "xmas10", "percent_off": "10"}),
        )
        .await;

    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    assert!(Uuid::parse_str(body["id"].as_str().unwrap()).is_ok());
    assert_eq!(body["code"], "XMAS10");
    assert_eq!(body["percent_off"], "10");
    assert_eq!(body["amount_off"], Value::Null);
    assert_eq!(body["starts_at"], Value::Null);
    assert_eq!(body["ends_at"], Value::Null);
    assert_eq!(body["min_subtotal"], Value::Null);
    assert_eq!(body["max_redemptions"], Value::Null);
    assert_eq!(body["redemptions"], 0);
    assert_eq!(body["active"], true);
    assert!(body["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(body["created_at"], body["updated_at"]);
}

#[tokio::test]
async fn a_percent_with_decimals_reads_back_without_trailing_zeros() {
    let (app, m) = app_with_merchant().await;

    let body = create(&app, &m.token, json!({"code": "HALF", "percent_off": "12.50"})).await;

    assert_eq!(body["percent_off"], "12.5");
}

#[tokio::test]
async fn creating_a_fixed_code_answers_201_with_its_amount() {
    let (app, m) = app_with_merchant().await;

    let res = app
        .post(
            "/v1/discounts",
            &m.token,
            json!({"code": "TENOFF", "amount_off": {"amount": "10", "currency": "eur"}}),
        )
        .await;

    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "TENOFF");
    assert_eq!(body["percent_off"], Value::Null);
    assert_eq!(body["amount_off"], json!({"amount": "10.00", "currency": "EUR"}));
}

#[tokio::test]
async fn the_optional_fields_read_back_as_given_with_timestamps_in_utc() {
    let (app, m) = app_with_merchant().await;

    let created = create(
        &app,
        &m.token,
        json!({"code": "WINTER-26", "percent_off": "15", "starts_at": "2026-12-01T00:00:00+01:00",
               "ends_at": "2027-01-01T00:00:00Z", "min_subtotal": {"amount": "50.00", "currency": "EUR"},
               "max_redemptions": 100, "active": false}),
    )
    .await;
    let read: Value = app.get(&path(&created), &m.token).await.json().await.unwrap();

    assert_eq!(created["starts_at"], "2026-11-30T23:00:00.000000Z");
    assert_eq!(created["ends_at"], "2027-01-01T00:00:00.000000Z");
    assert_eq!(
        created["min_subtotal"],
        json!({"amount": "50.00", "currency": "EUR"})
    );
    assert_eq!(created["max_redemptions"], 100);
    assert_eq!(created["active"], false);
    assert_eq!(read, created);
}

#[tokio::test]
async fn patching_changes_the_given_fields_and_null_clears_them() {
    let (app, m) = app_with_merchant().await;
    let created = create(
        &app,
        &m.token,
        json!({"code": "XMAS10", "percent_off": "10", "starts_at": "2026-12-01T00:00:00Z",
               "ends_at": "2026-12-26T00:00:00Z", "max_redemptions": 5,
               "min_subtotal": {"amount": "20.00", "currency": "EUR"}}),
    )
    .await;

    let res = app
        .patch(
            &path(&created),
            &m.token,
            json!({"active": false, "ends_at": "2027-01-01T00:00:00Z", "max_redemptions": null}),
        )
        .await;

    assert_eq!(res.status(), 200);
    let patched: Value = res.json().await.unwrap();
    assert_eq!(patched["active"], false);
    assert_eq!(patched["ends_at"], "2027-01-01T00:00:00.000000Z");
    assert_eq!(patched["max_redemptions"], Value::Null);
    assert_eq!(
        patched["min_subtotal"], created["min_subtotal"],
        "absent fields stay"
    );
    assert_eq!(patched["starts_at"], created["starts_at"]);
    assert_eq!(patched["code"], "XMAS10");
    assert_eq!(patched["percent_off"], "10");
    assert_eq!(patched["created_at"], created["created_at"]);
    let cleared: Value = app
        .patch(
            &path(&created),
            &m.token,
            json!({"min_subtotal": null, "ends_at": null}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(cleared["min_subtotal"], Value::Null);
    assert_eq!(cleared["ends_at"], Value::Null);
    let read: Value = app.get(&path(&created), &m.token).await.json().await.unwrap();
    assert_eq!(read, cleared);
}

#[tokio::test]
async fn patching_the_code_or_the_kind_answers_400_invalid_json() {
    let (app, m) = app_with_merchant().await;
    let created = create(&app, &m.token, json!({"code": "XMAS10", "percent_off": "10"})).await;

    let code = app
        .patch(&path(&created), &m.token, json!({"code": "XMAS20"}))
        .await;
    let kind = app
        .patch(&path(&created), &m.token, json!({"percent_off": "20"}))
        .await;

    assert_problem(code, 400, "invalid_json").await;
    assert_problem(kind, 400, "invalid_json").await;
}

#[tokio::test]
async fn patching_an_end_at_or_before_the_start_answers_422_invalid_window() {
    let (app, m) = app_with_merchant().await;
    let created = create(
        &app,
        &m.token,
        json!({"code": "XMAS10", "percent_off": "10", "starts_at": "2026-12-01T00:00:00Z"}),
    )
    .await;

    let res = app
        .patch(
            &path(&created),
            &m.token,
            json!({"ends_at": "2026-12-01T00:00:00Z"}),
        )
        .await;

    assert_field_error(res, "ends_at", "invalid_window").await;
}

#[tokio::test]
async fn patching_with_a_bad_value_answers_422_naming_each_field() {
    let (app, m) = app_with_merchant().await;
    let created = create(&app, &m.token, json!({"code": "XMAS10", "percent_off": "10"})).await;

    let res = app
        .patch(
            &path(&created),
            &m.token,
            json!({"max_redemptions": 0, "min_subtotal": {"amount": "5.00", "currency": "USD"},
                   "ends_at": "next week"}),
        )
        .await;

    let body = assert_field_error(res, "max_redemptions", "out_of_range").await;
    assert_field_error_in(&body, "min_subtotal", "currency_mismatch");
    assert_field_error_in(&body, "ends_at", "invalid_timestamp");
}

fn assert_field_error_in(body: &Value, field: &str, code: &str) {
    let errors = body["errors"].as_array().unwrap();
    assert!(
        errors.iter().any(|e| e["field"] == field && e["code"] == code),
        "expected {field} with {code} in {body}"
    );
}

#[tokio::test]
async fn deleting_a_discount_answers_204_then_404() {
    let (app, m) = app_with_merchant().await;
    let created = create(&app, &m.token, json!({"code": "XMAS10", "percent_off": "10"})).await;

    let deleted = app.delete(&path(&created), &m.token).await;
    let read = app.get(&path(&created), &m.token).await;
    let deleted_again = app.delete(&path(&created), &m.token).await;
    let patched = app
        .patch(&path(&created), &m.token, json!({"active": false}))
        .await;

    assert_eq!(deleted.status(), 204);
    assert_problem(read, 404, "not_found").await;
    assert_problem(deleted_again, 404, "not_found").await;
    assert_problem(patched, 404, "not_found").await;
}

#[tokio::test]
async fn a_deleted_code_can_be_used_again() {
    let (app, m) = app_with_merchant().await;
    let created = create(&app, &m.token, json!({"code": "XMAS10", "percent_off": "10"})).await;
    assert_eq!(app.delete(&path(&created), &m.token).await.status(), 204);

    let res = app
        .post(
            "/v1/discounts",
            &m.token,
            json!({"code": "XMAS10", "percent_off": "20"}),
        )
        .await;

    assert_eq!(res.status(), 201);
}

#[tokio::test]
async fn an_id_that_is_not_a_uuid_answers_404() {
    let (app, m) = app_with_merchant().await;

    let res = app.get("/v1/discounts/not-a-uuid", &m.token).await;

    assert_problem(res, 404, "not_found").await;
}

// ---------------------------------------------------------------------------------------------------
// Lists

#[tokio::test]
async fn the_list_walks_every_discount_once_newest_first() {
    let (app, m) = app_with_merchant().await;
    for i in 0..5 {
        create(
            &app,
            &m.token,
            json!({"code": format!("CODE{i}"), "percent_off": "5"}),
        )
        .await;
    }

    let first = list(&app, "?limit=2", &m.token).await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = list(&app, &format!("?limit=2&cursor={cursor}"), &m.token).await;
    let cursor = second["next_cursor"].as_str().unwrap();
    let third = list(&app, &format!("?limit=2&cursor={cursor}"), &m.token).await;

    assert_eq!(codes_of(&first), ["CODE4", "CODE3"]);
    assert_eq!(codes_of(&second), ["CODE2", "CODE1"]);
    assert_eq!(codes_of(&third), ["CODE0"]);
    assert_eq!(third["next_cursor"], Value::Null);
}

#[tokio::test]
async fn the_list_filters_on_active() {
    let (app, m) = app_with_merchant().await;
    create(&app, &m.token, json!({"code": "ON1", "percent_off": "5"})).await;
    create(
        &app,
        &m.token,
        json!({"code": "OFF1", "percent_off": "5", "active": false}),
    )
    .await;
    create(
        &app,
        &m.token,
        json!({"code": "ON2", "percent_off": "5", "active": true}),
    )
    .await;

    let active = list(&app, "?active=true", &m.token).await;
    let inactive = list(&app, "?active=false", &m.token).await;
    let all = list(&app, "", &m.token).await;

    assert_eq!(codes_of(&active), ["ON2", "ON1"]);
    assert_eq!(codes_of(&inactive), ["OFF1"]);
    assert_eq!(codes_of(&all), ["ON2", "OFF1", "ON1"]);
}

#[tokio::test]
async fn a_bad_list_query_is_refused() {
    let (app, m) = app_with_merchant().await;

    let limit = app.get("/v1/discounts?limit=0", &m.token).await;
    let cursor = app.get("/v1/discounts?cursor=nope", &m.token).await;
    let active = app.get("/v1/discounts?active=maybe", &m.token).await;

    assert_problem(limit, 422, "validation_failed").await;
    assert_problem(cursor, 400, "bad_request").await;
    assert_problem(active, 400, "bad_request").await;
}

// ---------------------------------------------------------------------------------------------------
// Uniqueness

#[tokio::test]
async fn a_taken_code_in_any_case_answers_409_code_taken() {
    let (app, m) = app_with_merchant().await;
    create(&app, &m.token, json!({"code": "XMAS10", "percent_off": "10"})).await;

    let same = app
        .post(
            "/v1/discounts",
            &m.token,
            json!({"code": "XMAS10", "percent_off": "20"}),
        )
        .await;
    let lower = app
        .post(
            "/v1/discounts",
            &m.token,
            json!({"code": "xmas10", "amount_off": {"amount": "5.00", "currency": "EUR"}}),
        )
        .await;

    assert_problem(same, 409, "code_taken").await;
    assert_problem(lower, 409, "code_taken").await;
    assert_eq!(codes_of(&list(&app, "", &m.token).await), ["XMAS10"]);
}

#[tokio::test]
async fn another_merchant_may_use_the_same_code() {
    let (app, a) = app_with_merchant().await;
    let b = app.merchant("Other shop").await;
    create(&app, &a.token, json!({"code": "XMAS10", "percent_off": "10"})).await;

    let res = app
        .post(
            "/v1/discounts",
            &b.token,
            json!({"code": "XMAS10", "percent_off": "10"}),
        )
        .await;

    assert_eq!(res.status(), 201);
}

// ---------------------------------------------------------------------------------------------------
// Validation

#[tokio::test]
async fn a_code_of_the_wrong_shape_answers_422_invalid_code() {
    let (app, m) = app_with_merchant().await;

    for code in ["AB", "XMAS 10", "NOËL10", &"A".repeat(33)] {
        let res = app
            .post(
                "/v1/discounts",
                &m.token,
                json!({"code": code, "percent_off": "10"}),
            )
            .await;
        assert_field_error(res, "code", "invalid_code").await;
    }
}

#[tokio::test]
async fn a_percent_outside_a_hundredth_to_a_hundred_or_with_three_decimals_answers_422() {
    let (app, m) = app_with_merchant().await;

    for percent in ["0", "100.01", "12.345", "-5", "ten", "1e1"] {
        let res = app
            .post(
                "/v1/discounts",
                &m.token,
                json!({"code": "PCT", "percent_off": percent}),
            )
            .await;
        assert_field_error(res, "percent_off", "invalid_percent").await;
    }
    let hundred = app
        .post(
            "/v1/discounts",
            &m.token,
            json!({"code": "FREE", "percent_off": "100"}),
        )
        .await;
    assert_eq!(hundred.status(), 201);
}

#[tokio::test]
async fn a_percent_as_a_json_number_answers_400_invalid_json() {
    let (app, m) = app_with_merchant().await;

    let res = app
        .post(
            "/v1/discounts",
            &m.token,
            json!({"code": "XMAS10", "percent_off": 10}),
        )
        .await;

    assert_problem(res, 400, "invalid_json").await;
}

#[tokio::test]
async fn both_or_neither_of_percent_off_and_amount_off_answers_422() {
    let (app, m) = app_with_merchant().await;

    let both = app
        .post(
            "/v1/discounts",
            &m.token,
            json!({"code": "BOTH", "percent_off": "10", "amount_off": {"amount": "5.00", "currency": "EUR"}}),
        )
        .await;
    let neither = app
        .post("/v1/discounts", &m.token, json!({"code": "NEITHER"}))
        .await;

    assert_field_error(both, "percent_off", "both_or_neither").await;
    assert_field_error(neither, "percent_off", "both_or_neither").await;
}

#[tokio::test]
async fn an_amount_in_another_currency_than_the_merchants_answers_422_currency_mismatch() {
    let (app, m) = app_with_merchant().await;

    let amount = app
        .post(
            "/v1/discounts",
            &m.token,
            json!({"code": "TENOFF", "amount_off": {"amount": "10.00", "currency": "USD"}}),
        )
        .await;
    let minimum = app
        .post(
            "/v1/discounts",
            &m.token,
            json!({"code": "XMAS10", "percent_off": "10", "min_subtotal": {"amount": "50.00", "currency": "GBP"}}),
        )
        .await;

    assert_field_error(amount, "amount_off", "currency_mismatch").await;
    assert_field_error(minimum, "min_subtotal", "currency_mismatch").await;
}

#[tokio::test]
async fn a_zero_negative_or_too_precise_amount_answers_422() {
    let (app, m) = app_with_merchant().await;

    for (amount, code) in [
        ("0.00", "zero_amount"),
        ("-5.00", "negative_amount"),
        ("5.001", "too_many_decimals"),
    ] {
        let res = app
            .post(
                "/v1/discounts",
                &m.token,
                json!({"code": "OFF", "amount_off": {"amount": amount, "currency": "EUR"}}),
            )
            .await;
        assert_field_error(res, "amount_off", code).await;
    }
}

#[tokio::test]
async fn a_window_that_ends_at_or_before_it_starts_answers_422_invalid_window() {
    let (app, m) = app_with_merchant().await;

    let res = app
        .post(
            "/v1/discounts",
            &m.token,
            json!({"code": "XMAS10", "percent_off": "10", "starts_at": "2026-12-26T00:00:00Z",
                   "ends_at": "2026-12-01T00:00:00Z"}),
        )
        .await;

    assert_field_error(res, "ends_at", "invalid_window").await;
}

#[tokio::test]
async fn a_timestamp_that_is_not_rfc_3339_answers_422_invalid_timestamp() {
    let (app, m) = app_with_merchant().await;

    let res = app
        .post(
            "/v1/discounts",
            &m.token,
            json!({"code": "XMAS10", "percent_off": "10", "starts_at": "2026-12-01"}),
        )
        .await;

    assert_field_error(res, "starts_at", "invalid_timestamp").await;
}

#[tokio::test]
async fn max_redemptions_below_one_answers_422_out_of_range() {
    let (app, m) = app_with_merchant().await;

    let res = app
        .post(
            "/v1/discounts",
            &m.token,
            json!({"code": "XMAS10", "percent_off": "10", "max_redemptions": 0}),
        )
        .await;

    assert_field_error(res, "max_redemptions", "out_of_range").await;
}

#[tokio::test]
async fn every_broken_field_is_listed_at_once() {
    let (app, m) = app_with_merchant().await;

    let res = app
        .post(
            "/v1/discounts",
            &m.token,
            json!({"code": "X", "percent_off": "101", "ends_at": "soon", "max_redemptions": -1}),
        )
        .await;

    let body = assert_problem(res, 422, "validation_failed").await;
    assert_eq!(body["errors"].as_array().unwrap().len(), 4, "{body}");
    assert_eq!(list(&app, "", &m.token).await["data"], json!([]));
}

#[tokio::test]
async fn an_unknown_field_answers_400_invalid_json() {
    let (app, m) = app_with_merchant().await;

    let res = app
        .post(
            "/v1/discounts",
            &m.token,
            json!({"code": "XMAS10", "percent_off": "10", "stackable": true}),
        )
        .await;

    assert_problem(res, 400, "invalid_json").await;
}

// ---------------------------------------------------------------------------------------------------
// Tenancy and roles

#[tokio::test]
async fn another_merchants_discount_answers_404_and_stays_unchanged() {
    let (app, a) = app_with_merchant().await;
    let b = app.merchant("Other shop").await;
    let created = create(&app, &a.token, json!({"code": "XMAS10", "percent_off": "10"})).await;

    let read = app.get(&path(&created), &b.token).await;
    let patched = app
        .patch(&path(&created), &b.token, json!({"active": false}))
        .await;
    let deleted = app.delete(&path(&created), &b.token).await;
    let listed = list(&app, "", &b.token).await;

    assert_problem(read, 404, "not_found").await;
    assert_problem(patched, 404, "not_found").await;
    assert_problem(deleted, 404, "not_found").await;
    assert_eq!(listed["data"], json!([]));
    let still: Value = app.get(&path(&created), &a.token).await.json().await.unwrap();
    assert_eq!(still, created);
}

#[tokio::test]
async fn marketing_and_agent_keys_get_403_on_every_discount_route() {
    let (app, owner) = app_with_merchant().await;
    let created = create(&app, &owner.token, json!({"code": "XMAS10", "percent_off": "10"})).await;
    let one = path(&created);

    for role in ["marketing", "agent"] {
        let key = app.key_with_role(&owner, role).await;
        let calls = [
            (Method::GET, "/v1/discounts".to_owned(), None),
            (
                Method::POST,
                "/v1/discounts".to_owned(),
                Some(json!({"code": "MINE", "percent_off": "50"})),
            ),
            (Method::GET, one.clone(), None),
            (Method::PATCH, one.clone(), Some(json!({"active": false}))),
            (Method::DELETE, one.clone(), None),
        ];
        for (method, uri, body) in calls {
            let res = app.request(method.clone(), &uri, &key.token, body).await;
            assert_eq!(res.status(), 403, "{role} {method} {uri}");
            assert_problem(res, 403, "forbidden").await;
        }
    }
    let still: Value = app.get(&one, &owner.token).await.json().await.unwrap();
    assert_eq!(still, created);
}

#[tokio::test]
async fn a_catalog_key_manages_discounts() {
    let (app, owner) = app_with_merchant().await;
    let catalog = app.key_with_role(&owner, "catalog").await;

    let created = create(
        &app,
        &catalog.token,
        json!({"code": "XMAS10", "percent_off": "10"}),
    )
    .await;
    let listed = list(&app, "", &catalog.token).await;
    let read = app.get(&path(&created), &catalog.token).await;
    let patched = app
        .patch(&path(&created), &catalog.token, json!({"active": false}))
        .await;
    let deleted = app.delete(&path(&created), &catalog.token).await;

    assert_eq!(codes_of(&listed), ["XMAS10"]);
    assert_eq!(read.status(), 200);
    assert_eq!(patched.status(), 200);
    assert_eq!(deleted.status(), 204);
}

// ---------------------------------------------------------------------------------------------------
// What the conversation engine calls

#[tokio::test]
async fn find_by_code_ignores_case_and_never_finds_another_merchants_code() {
    let (app, a) = app_with_merchant().await;
    let b = app.merchant("Other shop").await;
    let created = create(&app, &a.token, json!({"code": "XMAS10", "percent_off": "10"})).await;
    let (a_id, b_id) = (a.id, b.id);

    let found = app
        .db
        .query(move |conn| discounts::find_by_code(conn, a_id, " xmas10"))
        .await
        .unwrap();
    let other = app
        .db
        .query(move |conn| discounts::find_by_code(conn, b_id, "XMAS10"))
        .await
        .unwrap();

    let found = found.expect("the code, found in lower case");
    assert_eq!(found.id.to_string(), created["id"].as_str().unwrap());
    assert_eq!(found.code, "XMAS10");
    assert_eq!(found.kind, DiscountKind::Percent(rust_decimal::Decimal::TEN));
    assert!(other.is_none());
}

#[tokio::test]
async fn twenty_concurrent_redemptions_of_a_code_limited_to_five_succeed_exactly_five_times() {
    let (app, m) = app_with_merchant().await;
    let created = create(
        &app,
        &m.token,
        json!({"code": "FIRST5", "percent_off": "50", "max_redemptions": 5}),
    )
    .await;
    let id: Uuid = created["id"].as_str().unwrap().parse().unwrap();
    let merchant_id = m.id;

    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let db = app.db.clone();
            tokio::spawn(async move {
                db.query(move |conn| discounts::redeem(conn, merchant_id, id))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut redeemed = 0;
    for task in tasks {
        if task.await.unwrap() {
            redeemed += 1;
        }
    }

    assert_eq!(redeemed, 5);
    let stored = app
        .db
        .query(move |conn| discounts::get(conn, merchant_id, id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.redemptions, 5);
    let read: Value = app.get(&path(&created), &m.token).await.json().await.unwrap();
    assert_eq!(read["redemptions"], 5);
    let eur = Currency::parse("EUR").unwrap();
    let exhausted = stored.check(threadcart::db::now(), Money::from_minor(10_000, eur));
    assert_eq!(exhausted, Err(Refusal::Exhausted));
}

#[tokio::test]
async fn a_code_without_a_maximum_counts_every_redemption() {
    let (app, m) = app_with_merchant().await;
    let created = create(&app, &m.token, json!({"code": "ALWAYS", "percent_off": "5"})).await;
    let id: Uuid = created["id"].as_str().unwrap().parse().unwrap();
    let merchant_id = m.id;

    for _ in 0..3 {
        let ok = app
            .db
            .query(move |conn| discounts::redeem(conn, merchant_id, id))
            .await
            .unwrap();
        assert!(ok);
    }

    let read: Value = app.get(&path(&created), &m.token).await.json().await.unwrap();
    assert_eq!(read["redemptions"], 3);
}

#[tokio::test]
async fn another_merchant_cannot_redeem_a_code() {
    let (app, a) = app_with_merchant().await;
    let b = app.merchant("Other shop").await;
    let created = create(&app, &a.token, json!({"code": "XMAS10", "percent_off": "10"})).await;
    let id: Uuid = created["id"].as_str().unwrap().parse().unwrap();
    let b_id = b.id;

    let ok = app
        .db
        .query(move |conn| discounts::redeem(conn, b_id, id))
        .await
        .unwrap();

    assert!(!ok);
    let read: Value = app.get(&path(&created), &a.token).await.json().await.unwrap();
    assert_eq!(read["redemptions"], 0);
}

#[tokio::test]
async fn lowering_the_maximum_to_the_redemptions_so_far_exhausts_the_code() {
    let (app, m) = app_with_merchant().await;
    let created = create(&app, &m.token, json!({"code": "XMAS10", "percent_off": "10"})).await;
    let id: Uuid = created["id"].as_str().unwrap().parse().unwrap();
    let merchant_id = m.id;
    for _ in 0..2 {
        app.db
            .query(move |conn| discounts::redeem(conn, merchant_id, id))
            .await
            .unwrap();
    }

    let res = app
        .patch(&path(&created), &m.token, json!({"max_redemptions": 2}))
        .await;
    let again = app
        .db
        .query(move |conn| discounts::redeem(conn, merchant_id, id))
        .await
        .unwrap();

    assert_eq!(res.status(), 200);
    assert!(!again);
}
