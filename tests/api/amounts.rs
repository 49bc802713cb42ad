//! Prices and totals are bounded by what Stripe charges in one payment (8 digits of minor units for
//! most currencies: 999999.99 EUR): larger amounts are refused with a field error where a merchant gives
//! them, reported by row in an import, and a cart that would exceed it answers the shopper.

use serde_json::{Value, json};

use crate::helpers::{
    MessengerApp, PAGE_ID, TestApp, ad_postback, assert_problem, button, delivery, next_message, now_ms,
    product_body, sent_to, spawn_app, spawn_messenger_app, tap_postback, template, threads,
};

/// The most Stripe charges in EUR, and one cent more.
const MAX_EUR: &str = "999999.99";
const OVER_EUR: &str = "1000000.00";

fn eur(amount: &str) -> Value {
    json!({"amount": amount, "currency": "EUR"})
}

/// Asserts a 422 whose only field error is `field` with `amount_too_large`.
async fn assert_too_large(res: reqwest::Response, field: &str) {
    let problem = assert_problem(res, 422, "validation_failed").await;
    let errors: Vec<(String, String)> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["field"].as_str().unwrap().to_owned(),
                e["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        errors,
        [(field.to_owned(), "amount_too_large".to_owned())],
        "{problem}"
    );
    assert!(
        problem.to_string().contains("999999.99 EUR"),
        "the maximum is named: {problem}"
    );
}

#[tokio::test]
async fn a_product_price_above_what_stripe_charges_is_refused_naming_the_field() {
    // Arrange
    let app = spawn_app().await;
    let m = app.merchant("Comfy Shoes").await;
    let product = app
        .create_product(
            &m.token,
            product_body("GOLD-01", "Golden slippers", &[("GOLD-01-42", "42", MAX_EUR, 2)]),
        )
        .await;
    let id = product["id"].as_str().unwrap();

    // Act
    let created = app
        .post(
            "/v1/products",
            &m.token,
            product_body("GOLD-02", "Dearer", &[("GOLD-02-42", "42", OVER_EUR, 1)]),
        )
        .await;
    let added = app
        .post(
            &format!("/v1/products/{id}/variants"),
            &m.token,
            json!({"sku": "GOLD-01-43", "name": "43", "price": eur(OVER_EUR), "stock": 1}),
        )
        .await;

    // Assert
    assert_eq!(
        product["variants"][0]["price"],
        eur(MAX_EUR),
        "the maximum itself is fine"
    );
    assert_too_large(created, "variants[0].price").await;
    assert_too_large(added, "price").await;
}

#[tokio::test]
async fn a_nightly_price_or_a_rate_above_what_stripe_charges_is_refused_naming_the_field() {
    // Arrange
    let app = spawn_app().await;
    let m = app.merchant("Dream Hotels").await;
    let room = |price: &str| {
        json!({"name": "Palace Suite", "units": 1, "max_guests": 2, "nightly_price": eur(price),
               "timezone": "Europe/Paris"})
    };
    let res = app.post("/v1/bookables", &m.token, room(MAX_EUR)).await;
    assert_eq!(res.status(), 201);
    let id = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let night = (chrono::Utc::now().date_naive() + chrono::Days::new(10)).to_string();
    let next = (chrono::Utc::now().date_naive() + chrono::Days::new(11)).to_string();

    // Act
    let created = app.post("/v1/bookables", &m.token, room(OVER_EUR)).await;
    let rated = app
        .request(
            reqwest::Method::PUT,
            &format!("/v1/bookables/{id}/rates"),
            &m.token,
            Some(json!({"rates": [{"from": night, "to": next, "price": eur(OVER_EUR)}]})),
        )
        .await;

    // Assert
    assert_too_large(created, "nightly_price").await;
    assert_too_large(rated, "rates[0].price").await;
}

#[tokio::test]
async fn offer_and_discount_amounts_above_what_stripe_charges_are_refused_naming_the_field() {
    // Arrange
    let app = spawn_app().await;
    let m = app.merchant("Comfy Shoes").await;
    let boots = app
        .create_product(
            &m.token,
            product_body("BOOT-01", "Boots", &[("BOOT-01-42", "42", "99.00", 5)]),
        )
        .await;
    let socks = app
        .create_product(
            &m.token,
            product_body("SOCK-01", "Socks", &[("SOCK-01-M", "M", "9.00", 5)]),
        )
        .await;

    // Act
    let offer = app
        .post(
            "/v1/offers",
            &m.token,
            json!({"kind": "cross_sell", "trigger": {"product_id": boots["id"]},
                   "offer": {"variant_id": socks["variants"][0]["id"]}, "text": "Socks?",
                   "price_delta": eur(OVER_EUR)}),
        )
        .await;
    let amount_off = app
        .post(
            "/v1/discounts",
            &m.token,
            json!({"code": "HUGE", "amount_off": eur(OVER_EUR)}),
        )
        .await;
    let min_subtotal = app
        .post(
            "/v1/discounts",
            &m.token,
            json!({"code": "FARAWAY", "percent_off": "10", "min_subtotal": eur(OVER_EUR)}),
        )
        .await;

    // Assert
    assert_too_large(offer, "price_delta").await;
    assert_too_large(amount_off, "amount_off").await;
    assert_too_large(min_subtotal, "min_subtotal").await;
}

#[tokio::test]
async fn an_imported_row_priced_above_what_stripe_charges_is_reported_and_the_others_kept() {
    // Arrange
    let app = spawn_app().await;
    let m = app.merchant("Comfy Shoes").await;
    let feed = [
        "id,title,description,availability,condition,price,link,image_link,brand,item_group_id,size,color",
        "GOLD-1,Golden slippers,,in stock,new,999999.99 EUR,,,,,,",
        "GOLD-2,Dearer slippers,,in stock,new,1000000.00 EUR,,,,,,",
    ]
    .join("\n");

    // Act
    let res = app
        .post_raw("/v1/catalog/import", &m.token, "text/csv", feed.into_bytes())
        .await;

    // Assert
    assert_eq!(res.status(), 200);
    let report: Value = res.json().await.unwrap();
    assert_eq!(report["created"], 1, "{report}");
    assert_eq!(report["errors"][0]["row"], 2, "{report}");
    assert_eq!(report["errors"][0]["code"], "amount_too_large", "{report}");
    assert!(
        report["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("999999.99 EUR")
    );
}

#[tokio::test]
async fn a_json_import_priced_above_what_stripe_charges_is_reported_by_row() {
    let app = spawn_app().await;
    let m = app.merchant("Comfy Shoes").await;
    let body = json!([
        product_body("GOLD-1", "Golden", &[("GOLD-1-42", "42", MAX_EUR, 1)]),
        product_body("GOLD-2", "Dearer", &[("GOLD-2-42", "42", OVER_EUR, 1)]),
    ]);

    let res = app.post("/v1/catalog/import", &m.token, body).await;

    assert_eq!(res.status(), 200);
    let report: Value = res.json().await.unwrap();
    assert_eq!(report["created"], 1, "{report}");
    assert_eq!(report["errors"][0]["code"], "amount_too_large", "{report}");
}

/// Used by the cart tests: the Page's shop with one variant at the largest EUR price.
pub async fn golden_slippers(app: &TestApp, token: &str) -> Value {
    app.create_product(
        token,
        json!({"retailer_id": "GOLD-01", "title": "Golden slippers", "featured": true,
               "variants": [{"sku": "GOLD-01-42", "name": "42", "price": eur(MAX_EUR), "stock": 5}]}),
    )
    .await
}

/// The thread's dead-lettered and failing events (none when every event got its answer).
async fn failed_events(m: &MessengerApp) -> Vec<Value> {
    let body: Value = m
        .app
        .get("/v1/webhook-events", &m.merchant.token)
        .await
        .json()
        .await
        .unwrap();
    body["data"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_cart_that_would_exceed_what_stripe_charges_answers_the_shopper_instead_of_retrying() {
    // Arrange: one pair of golden slippers in the cart.
    let m = spawn_messenger_app().await;
    golden_slippers(&m.app, &m.merchant.token).await;
    m.app
        .post_webhook(&delivery(
            PAGE_ID,
            vec![ad_postback(
                "U1",
                now_ms(),
                "pb-ad",
                "AD-GOLD",
                "Golden slippers",
                "GOLD-01",
            )],
        ))
        .await;
    let card = next_message(&m, "U1", 0, |v| template(v)["template_type"] == "generic").await;
    let add = button(&template(&card)["elements"][0]["buttons"], "Add to cart").to_owned();
    let seen = sent_to(&m, "U1").len();
    tap_postback(&m, "U1", "Add to cart", &add).await;
    next_message(&m, "U1", seen, |v| {
        v["text"] == "Added Golden slippers (42) to your cart."
    })
    .await;

    // Act: a second pair, from the product card and from the cart's line.
    let seen = sent_to(&m, "U1").len();
    tap_postback(&m, "U1", "Add to cart", &add).await;
    let refused = next_message(&m, "U1", seen, |v| {
        v["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("Your cart cannot hold that much"))
    })
    .await;
    let lines = sent_to(&m, "U1")
        .into_iter()
        .rev()
        .find(|v| {
            template(v)["template_type"] == "generic"
                && template(v)["elements"][0]["buttons"]
                    .to_string()
                    .contains("Add one")
        })
        .unwrap();
    let seen = sent_to(&m, "U1").len();
    tap_postback(
        &m,
        "U1",
        "Add one",
        button(&template(&lines)["elements"][0]["buttons"], "Add one"),
    )
    .await;
    next_message(&m, "U1", seen, |v| {
        v["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("Your cart cannot hold that much"))
    })
    .await;

    // Assert
    assert_eq!(
        refused["text"],
        "Your cart cannot hold that much: a cart holds at most 999999.99 EUR."
    );
    let thread = threads(&m.app, &m.merchant.token).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let cart: Value = m
        .app
        .get(&format!("/v1/threads/{thread}/cart"), &m.merchant.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(cart["total"], eur(MAX_EUR), "{cart}");
    assert_eq!(
        failed_events(&m).await,
        Vec::<Value>::new(),
        "no event failed or was retried"
    );
}

#[tokio::test]
async fn a_stay_that_would_exceed_what_stripe_charges_answers_the_shopper_and_gives_its_nights_back() {
    // Arrange
    let m = spawn_messenger_app().await;
    let suite = crate::stays::room(&m, "Honeymoon Suite", 1, MAX_EUR).await;
    let arrival = crate::stays::in_days(3);

    // Act: two nights at the largest price.
    let answer = crate::stays::hold_the_suite(&m, "U1", arrival).await;

    // Assert
    assert_eq!(
        answer["text"],
        "Your cart cannot hold that much: a cart holds at most 999999.99 EUR."
    );
    assert_eq!(crate::stays::available(&m, suite, arrival, 2).await, [1, 1]);
    assert_eq!(failed_events(&m).await, Vec::<Value>::new());
}
