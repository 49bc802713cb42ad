//! Checkout end to end: the cart frozen into an order with stock reserved, a Stripe Checkout Session at a
//! local Stripe server, the Pay button in the thread, Stripe's signed webhook, the receipt.

use hmac::{Hmac, Mac};
use serde_json::{Value, json};

use crate::helpers::{
    MessengerApp, PAGE_ID, ad_postback, button, delivery, eventually, next_message, now_ms, sent_to,
    spawn_messenger_app_with, tap_postback, tap_quick_reply, template,
};
use crate::stripe_fake::FakeStripe;

pub(crate) const WEBHOOK_SECRET: &str = "whsec_test_secret";

pub(crate) async fn shop_with_stripe() -> (MessengerApp, FakeStripe) {
    shop_with_stripe_and(vec![]).await
}

/// The shop with Stripe and more environment.
pub(crate) async fn shop_with_stripe_and(more: Vec<(&'static str, String)>) -> (MessengerApp, FakeStripe) {
    let stripe = FakeStripe::start().await;
    let mut env = stripe_env(&stripe);
    env.extend(more);
    (spawn_messenger_app_with(env).await, stripe)
}

/// The variables that point a server at the local Stripe.
pub(crate) fn stripe_env(stripe: &FakeStripe) -> Vec<(&'static str, String)> {
    vec![
        ("STRIPE_SECRET_KEY", "sk_test_threadcart".into()),
        ("STRIPE_API_BASE", stripe.base.clone()),
        ("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET.into()),
    ]
}

/// A shopper from an ad puts size 42 in the cart; answers the cart's total message.
pub(crate) async fn cart_of_size_42(m: &MessengerApp, psid: &str) -> Value {
    m.app
        .post_webhook(&delivery(
            PAGE_ID,
            vec![ad_postback(
                psid,
                now_ms(),
                &format!("pb-{psid}"),
                "AD-7",
                "Slippers",
                "SLIP-01",
            )],
        ))
        .await;
    let card = next_message(m, psid, 0, |v| template(v)["template_type"] == "generic").await;
    let seen = sent_to(m, psid).len();
    let choose = button(&template(&card)["elements"][0]["buttons"], "Choose size").to_owned();
    tap_postback(m, psid, "Choose size", &choose).await;
    let sizes = next_message(m, psid, seen, |v| v["quick_replies"].is_array()).await;
    let seen = sent_to(m, psid).len();
    let size = button(&sizes["quick_replies"], "42").to_owned();
    tap_quick_reply(m, psid, "42", &size).await;
    next_message(m, psid, seen, |v| template(v)["template_type"] == "button").await
}

pub(crate) fn signed(body: &str) -> String {
    let t = chrono::Utc::now().timestamp();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={t},v1={hex}")
}

pub(crate) async fn post_stripe_event(m: &MessengerApp, kind: &str, session_id: &str) -> reqwest::Response {
    let body = json!({"id": format!("evt_test_{}", uuid::Uuid::new_v4().simple()), "object": "event",
        "type": kind, "created": chrono::Utc::now().timestamp(), "livemode": false, "api_version": "2026-09-30",
        "data": {"object": {"id": session_id, "object": "checkout.session"}}})
    .to_string();
    m.app
        .client
        .post(format!("{}/webhooks/stripe", m.app.address))
        .header("stripe-signature", signed(&body))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

/// A shopper buys size 42 and pays on Stripe's page; answers the paid order's id and PaymentIntent.
pub(crate) async fn paid_order(m: &MessengerApp, stripe: &FakeStripe, psid: &str) -> (String, String) {
    let total = cart_of_size_42(m, psid).await;
    let seen = sent_to(m, psid).len();
    let checkout = button(&template(&total)["buttons"], "Checkout").to_owned();
    tap_postback(m, psid, "Checkout", &checkout).await;
    next_message(m, psid, seen, |v| {
        template(v)["buttons"][0]["title"] == "Pay 49.90 EUR"
    })
    .await;
    let token = m.merchant.token.clone();
    let orders: Value = m.app.get("/v1/orders", &token).await.json().await.unwrap();
    let order_id = orders["data"][0]["id"].as_str().unwrap().to_owned();
    let session_id = orders["data"][0]["stripe_session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let intent = stripe.complete_session(&session_id);
    post_stripe_event(m, "checkout.session.completed", &session_id).await;
    let order_url = format!("/v1/orders/{order_id}");
    eventually("the order is paid", || async {
        let o: Value = m.app.get(&order_url, &token).await.json().await.unwrap();
        o["status"] == "paid"
    })
    .await;
    (order_id, intent)
}

pub(crate) fn stock_of_42(products: &Value) -> i64 {
    products["data"][0]["variants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["sku"] == "SLIP-01-42")
        .unwrap()["stock"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn checkout_opens_a_stripe_page_reserves_stock_and_the_webhook_brings_the_receipt() {
    let (m, stripe) = shop_with_stripe().await;
    let total = cart_of_size_42(&m, "U1").await;

    // Checkout: an order, the stock reserved, a Checkout Session, the Pay button.
    let seen = sent_to(&m, "U1").len();
    let checkout = button(&template(&total)["buttons"], "Checkout").to_owned();
    tap_postback(&m, "U1", "Checkout", &checkout).await;
    let pay = next_message(&m, "U1", seen, |v| {
        template(v)["buttons"][0]["title"] == "Pay 49.90 EUR"
    })
    .await;
    let pay_button = &template(&pay)["buttons"][0];
    assert_eq!(pay_button["type"], "web_url");
    let created: Vec<_> = stripe
        .received()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/checkout/sessions")
        .collect();
    assert_eq!(created.len(), 1);
    assert_eq!(
        created[0].field("line_items[0][price_data][unit_amount]"),
        Some("4990")
    );
    assert_eq!(created[0].field("mode"), Some("payment"));
    let order_id = created[0].field("metadata[order_id]").unwrap().to_owned();
    let token = m.merchant.token.clone();
    let products: Value = m
        .app
        .get("/v1/products?q=slippers", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stock_of_42(&products), 4, "one of the five is held for the order");
    let order: Value = m
        .app
        .get(&format!("/v1/orders/{order_id}"), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(order["status"], "awaiting_payment");
    assert_eq!(order["ad_id"], "AD-7");
    let session_id = order["stripe_session_id"].as_str().unwrap().to_owned();

    // A second tap on Checkout with the same cart: the same page, no new session.
    let seen = sent_to(&m, "U1").len();
    tap_postback(&m, "U1", "Checkout", &checkout).await;
    let again = next_message(&m, "U1", seen, |v| {
        template(v)["buttons"][0]["title"] == "Pay 49.90 EUR"
    })
    .await;
    assert_eq!(template(&again)["buttons"][0]["url"], pay_button["url"]);
    let sessions = stripe
        .received()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/checkout/sessions")
        .count();
    assert_eq!(sessions, 1);

    // The shopper pays on Stripe's page; Stripe's webhook (twice) brings one receipt.
    stripe.complete_session(&session_id);
    let seen = sent_to(&m, "U1").len();
    assert_eq!(
        post_stripe_event(&m, "checkout.session.completed", &session_id)
            .await
            .status(),
        200
    );
    assert_eq!(
        post_stripe_event(&m, "checkout.session.completed", &session_id)
            .await
            .status(),
        200
    );
    let receipt = next_message(&m, "U1", seen, |v| template(v)["template_type"] == "receipt").await;
    // The exact decimal text ("49.90") is checked by the receipt's snapshot tests; JSON here reads it back.
    assert_eq!(template(&receipt)["summary"]["total_cost"], json!(49.9));
    assert_eq!(template(&receipt)["order_number"], order["number"]);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let receipts = sent_to(&m, "U1")
        .iter()
        .filter(|v| template(v)["template_type"] == "receipt")
        .count();
    assert_eq!(receipts, 1);
    let order: Value = m
        .app
        .get(&format!("/v1/orders/{order_id}"), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(order["status"], "paid");
    let products: Value = m
        .app
        .get("/v1/products?q=slippers", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stock_of_42(&products), 4, "the held unit is sold");
    let cart: Value = m
        .app
        .get(
            &format!("/v1/threads/{}/cart", order["thread_id"].as_str().unwrap()),
            &token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(cart["id"].is_null(), "the paid cart is closed");
}

#[tokio::test]
async fn a_stripe_event_with_a_bad_signature_is_refused() {
    let (m, _stripe) = shop_with_stripe().await;
    let body = json!({"id": "evt_1", "type": "checkout.session.completed", "created": 1, "livemode": false,
                      "data": {"object": {"id": "cs_test_1", "object": "checkout.session"}}})
    .to_string();

    let res = m
        .app
        .client
        .post(format!("{}/webhooks/stripe", m.app.address))
        .header(
            "stripe-signature",
            format!("t={},v1={}", chrono::Utc::now().timestamp(), "0".repeat(64)),
        )
        .body(body)
        .send()
        .await
        .unwrap();

    crate::helpers::assert_problem(res, 401, "invalid_signature").await;
}

#[tokio::test]
async fn without_stripe_keys_checkout_hands_the_shopper_to_a_person() {
    let m = crate::helpers::spawn_messenger_app().await;
    let total = cart_of_size_42(&m, "U2").await;
    let seen = sent_to(&m, "U2").len();
    let checkout = button(&template(&total)["buttons"], "Checkout").to_owned();

    tap_postback(&m, "U2", "Checkout", &checkout).await;

    next_message(&m, "U2", seen, |v| {
        v["text"].as_str().is_some_and(|t| t.contains("a person"))
    })
    .await;
}

#[tokio::test]
async fn an_unpaid_order_past_its_time_is_expired_at_stripe_and_its_stock_comes_back() {
    let stripe = FakeStripe::start().await;
    let m = spawn_messenger_app_with(vec![
        ("STRIPE_SECRET_KEY", "sk_test_threadcart".into()),
        ("STRIPE_API_BASE", stripe.base.clone()),
        ("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET.into()),
        ("THREADCART_SWEEP_SECS", "1".into()),
    ])
    .await;
    let total = cart_of_size_42(&m, "U3").await;
    let seen = sent_to(&m, "U3").len();
    let checkout = button(&template(&total)["buttons"], "Checkout").to_owned();
    tap_postback(&m, "U3", "Checkout", &checkout).await;
    next_message(&m, "U3", seen, |v| {
        template(v)["buttons"][0]["title"] == "Pay 49.90 EUR"
    })
    .await;
    let token = m.merchant.token.clone();
    let orders: Value = m.app.get("/v1/orders", &token).await.json().await.unwrap();
    let order_id = orders["data"][0]["id"].as_str().unwrap().to_owned();

    // The shopper never pays: the session's time runs out.
    {
        use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
        use threadcart::db::schema::orders;
        let id = threadcart::db::DbUuid(order_id.parse().unwrap());
        let past = threadcart::db::now() - chrono::Duration::minutes(1);
        m.app
            .db
            .query_blocking(move |conn| {
                diesel::update(orders::table.find(id))
                    .set(orders::expires_at.eq(past))
                    .execute(conn)
            })
            .unwrap();
    }

    eventually("the order expires", || async {
        let order: Value = m
            .app
            .get(&format!("/v1/orders/{order_id}"), &token)
            .await
            .json()
            .await
            .unwrap();
        order["status"] == "expired"
    })
    .await;
    let expired_at_stripe = stripe
        .received()
        .iter()
        .any(|r| r.method == "POST" && r.path.ends_with("/expire"));
    assert!(
        expired_at_stripe,
        "the session is expired at Stripe before the stock is released"
    );
    let products: Value = m
        .app
        .get("/v1/products?q=slippers", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stock_of_42(&products), 5, "the held unit is back");
}

#[tokio::test]
async fn a_changed_cart_makes_a_new_order_and_the_old_page_is_closed_at_stripe() {
    let stripe = FakeStripe::start().await;
    let m = spawn_messenger_app_with(vec![
        ("STRIPE_SECRET_KEY", "sk_test_threadcart".into()),
        ("STRIPE_API_BASE", stripe.base.clone()),
        ("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET.into()),
        ("THREADCART_SWEEP_SECS", "1".into()),
    ])
    .await;
    let total = cart_of_size_42(&m, "U4").await;
    let checkout = button(&template(&total)["buttons"], "Checkout").to_owned();
    let seen = sent_to(&m, "U4").len();
    tap_postback(&m, "U4", "Checkout", &checkout).await;
    next_message(&m, "U4", seen, |v| {
        template(v)["buttons"][0]["title"] == "Pay 49.90 EUR"
    })
    .await;

    // The shopper adds a second pair through the cart's card, then checks out again.
    let lines = sent_to(&m, "U4")
        .into_iter()
        .rev()
        .find(|v| {
            template(v)["template_type"] == "generic"
                && template(v)["elements"][0]["buttons"][0]["title"] == "Add one"
        })
        .unwrap();
    let seen = sent_to(&m, "U4").len();
    let add_one = button(&template(&lines)["elements"][0]["buttons"], "Add one").to_owned();
    tap_postback(&m, "U4", "Add one", &add_one).await;
    let total = next_message(&m, "U4", seen, |v| template(v)["template_type"] == "button").await;
    let checkout = button(&template(&total)["buttons"], "Checkout").to_owned();
    let seen = sent_to(&m, "U4").len();
    tap_postback(&m, "U4", "Checkout", &checkout).await;
    next_message(&m, "U4", seen, |v| {
        template(v)["buttons"][0]["title"] == "Pay 99.80 EUR"
    })
    .await;

    eventually("the first session is expired at Stripe", || async {
        stripe
            .received()
            .iter()
            .any(|r| r.method == "POST" && r.path.ends_with("/expire"))
    })
    .await;
    let orders: Value = m
        .app
        .get("/v1/orders", &m.merchant.token)
        .await
        .json()
        .await
        .unwrap();
    let statuses: Vec<&str> = orders["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["awaiting_payment", "expired"], "newest first");
}

#[tokio::test]
async fn a_paid_order_is_refunded_in_parts_through_stripe_and_never_beyond_its_total() {
    let (m, stripe) = shop_with_stripe().await;
    let (order_id, _) = paid_order(&m, &stripe, "U5").await;
    let token = m.merchant.token.clone();
    let refunds = format!("/v1/orders/{order_id}/refunds");

    let part = m
        .app
        .post(
            &refunds,
            &token,
            json!({"amount": {"amount": "10.00", "currency": "EUR"}, "reason": "requested_by_customer"}),
        )
        .await;
    let too_much = m
        .app
        .post(
            &refunds,
            &token,
            json!({"amount": {"amount": "40.00", "currency": "EUR"}}),
        )
        .await;
    let rest = m.app.post(&refunds, &token, json!({})).await;
    let again = m.app.post(&refunds, &token, json!({})).await;

    assert_eq!(part.status(), 201);
    let part: Value = part.json().await.unwrap();
    assert_eq!(part["order"]["status"], "partially_refunded");
    crate::helpers::assert_problem(too_much, 422, "validation_failed").await;
    assert_eq!(rest.status(), 201);
    let rest: Value = rest.json().await.unwrap();
    assert_eq!(rest["amount"], json!({"amount": "39.90", "currency": "EUR"}));
    assert_eq!(rest["order"]["status"], "refunded");
    assert_eq!(
        rest["order"]["refunded"],
        json!({"amount": "49.90", "currency": "EUR"})
    );
    assert_eq!(again.status(), 422, "nothing is left to refund");
    let refund_calls = stripe
        .received()
        .iter()
        .filter(|r| r.path == "/v1/refunds")
        .count();
    assert_eq!(refund_calls, 2);
    let marketing = m.app.key_with_role(&m.merchant, "marketing").await;
    let forbidden = m.app.post(&refunds, &marketing.token, json!({})).await;
    assert_eq!(forbidden.status(), 403);
}

#[tokio::test]
async fn an_agent_checks_out_the_shoppers_cart_and_the_shopper_gets_the_pay_button() {
    let (m, _stripe) = shop_with_stripe().await;
    cart_of_size_42(&m, "U6").await;
    let token = m.merchant.token.clone();
    let thread = crate::helpers::threads(&m.app, &token).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let seen = sent_to(&m, "U6").len();

    let res = m
        .app
        .post(&format!("/v1/threads/{thread}/checkout"), &token, json!({}))
        .await;

    assert_eq!(res.status(), 201);
    let order: Value = res.json().await.unwrap();
    assert_eq!(order["status"], "awaiting_payment");
    assert_eq!(order["total"], json!({"amount": "49.90", "currency": "EUR"}));
    next_message(&m, "U6", seen, |v| {
        template(v)["buttons"][0]["title"] == "Pay 49.90 EUR"
    })
    .await;
    let back = format!("https://m.me/{PAGE_ID}");
    for page in ["success", "cancel"] {
        let html = reqwest::get(format!(
            "{}/checkout/{page}?order={}",
            m.app.address,
            order["id"].as_str().unwrap()
        ))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
        assert!(html.contains(&back), "{page} links back to the conversation");
    }
    let unknown = reqwest::get(format!(
        "{}/checkout/success?order={}",
        m.app.address,
        uuid::Uuid::now_v7()
    ))
    .await
    .unwrap();
    assert_eq!(unknown.status(), 200);
    assert!(!unknown.text().await.unwrap().contains("m.me"));
    let again_empty = m
        .app
        .post(
            &format!("/v1/threads/{}/checkout", uuid::Uuid::now_v7()),
            &token,
            json!({}),
        )
        .await;
    assert_eq!(again_empty.status(), 404);
}

pub(crate) async fn post_event_object(m: &MessengerApp, kind: &str, object: Value) -> reqwest::Response {
    let body = json!({"id": format!("evt_test_{}", uuid::Uuid::new_v4().simple()), "object": "event",
        "type": kind, "created": chrono::Utc::now().timestamp(), "livemode": false,
        "data": {"object": object}})
    .to_string();
    m.app
        .client
        .post(format!("{}/webhooks/stripe", m.app.address))
        .header("stripe-signature", signed(&body))
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn refunds_made_at_stripe_and_disputes_reach_the_order_once() {
    let (m, stripe) = shop_with_stripe().await;
    let (order_id, intent) = paid_order(&m, &stripe, "U8").await;
    let token = m.merchant.token.clone();
    let order_url = format!("/v1/orders/{order_id}");
    let refund = json!({"id": "re_test_dashboard1", "object": "refund", "amount": 1000, "currency": "eur",
                        "payment_intent": intent, "status": "succeeded"});

    post_event_object(&m, "refund.created", refund.clone()).await;
    post_event_object(&m, "refund.updated", refund).await;
    post_event_object(
        &m,
        "charge.dispute.created",
        json!({"id": "dp_test_1", "object": "dispute", "payment_intent": intent, "status": "needs_response"}),
    )
    .await;

    eventually("the refund and the dispute are on the order", || async {
        let o: Value = m.app.get(&order_url, &token).await.json().await.unwrap();
        o["status"] == "partially_refunded" && o["disputed"] == true
    })
    .await;
    let order: Value = m.app.get(&order_url, &token).await.json().await.unwrap();
    assert_eq!(
        order["refunded"],
        json!({"amount": "10.00", "currency": "EUR"}),
        "recorded once"
    );
}

#[tokio::test]
async fn a_payment_of_another_amount_than_the_order_is_left_for_review_not_accepted() {
    let (m, stripe) = shop_with_stripe().await;
    let total = cart_of_size_42(&m, "U9").await;
    let seen = sent_to(&m, "U9").len();
    let checkout = button(&template(&total)["buttons"], "Checkout").to_owned();
    tap_postback(&m, "U9", "Checkout", &checkout).await;
    next_message(&m, "U9", seen, |v| {
        template(v)["buttons"][0]["title"] == "Pay 49.90 EUR"
    })
    .await;
    let token = m.merchant.token.clone();
    let orders: Value = m.app.get("/v1/orders", &token).await.json().await.unwrap();
    let order_id = orders["data"][0]["id"].as_str().unwrap().to_owned();
    let session_id = orders["data"][0]["stripe_session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    stripe.complete_session(&session_id);
    stripe.set_amount_total(&session_id, 100);

    post_stripe_event(&m, "checkout.session.completed", &session_id).await;

    eventually("the event is set aside for review", || async {
        use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
        use threadcart::db::schema::stripe_events;
        m.app
            .db
            .query_blocking(|conn| {
                stripe_events::table
                    .filter(stripe_events::status.eq("review"))
                    .count()
                    .get_result::<i64>(conn)
            })
            .unwrap()
            == 1
    })
    .await;
    let order: Value = m
        .app
        .get(&format!("/v1/orders/{order_id}"), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        order["status"], "awaiting_payment",
        "never marked paid for another amount"
    );
}
