//! Payments that go astray: a lost answer from Stripe, a webhook that never comes, a payment that arrives
//! after the order ended here, delayed payment methods, refunds made in Stripe's dashboard, a receipt the
//! window no longer allows. Through the webhook, the workers and the local Stripe and Graph servers.

use std::time::Duration;

use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
use serde_json::{Value, json};
use threadcart::checkout::orders::{self, OrderStatus};
use threadcart::db::schema;
use threadcart::db::{DbError, DbUuid, now};

use crate::checkout::{
    cart_of_size_42, paid_order, post_event_object, post_stripe_event, shop_with_stripe,
    shop_with_stripe_and, stock_of_42,
};
use crate::helpers::{
    MessengerApp, PAGE_ID, body_parameters, button, eventually, next_message, sent_to, tap_postback,
    template, template_sends_to,
};

/// A shopper checks out size 42 and gets the Pay button; answers the (newest, so first listed) order's id and session id.
async fn awaiting_payment(m: &MessengerApp, psid: &str) -> (String, String) {
    let total = cart_of_size_42(m, psid).await;
    let seen = sent_to(m, psid).len();
    let checkout = button(&template(&total)["buttons"], "Checkout").to_owned();
    tap_postback(m, psid, "Checkout", &checkout).await;
    next_message(m, psid, seen, |v| {
        template(v)["buttons"][0]["title"] == "Pay 49.90 EUR"
    })
    .await;
    let orders: Value = m
        .app
        .get("/v1/orders", &m.merchant.token)
        .await
        .json()
        .await
        .unwrap();
    let order = orders["data"].as_array().unwrap().first().unwrap();
    (
        order["id"].as_str().unwrap().to_owned(),
        order["stripe_session_id"].as_str().unwrap().to_owned(),
    )
}

async fn order(m: &MessengerApp, id: &str) -> Value {
    m.app
        .get(&format!("/v1/orders/{id}"), &m.merchant.token)
        .await
        .json()
        .await
        .unwrap()
}

async fn wait_for_status(m: &MessengerApp, id: &str, status: &str) -> Value {
    eventually(&format!("the order is {status}"), || async {
        order(m, id).await["status"] == status
    })
    .await;
    order(m, id).await
}

async fn stock_42(m: &MessengerApp) -> i64 {
    let products: Value = m
        .app
        .get("/v1/products?q=slippers", &m.merchant.token)
        .await
        .json()
        .await
        .unwrap();
    stock_of_42(&products)
}

/// The order ends here as the sweeper would end it, while its page at Stripe is still open.
fn expire_here(m: &MessengerApp, id: &str) {
    let id: threadcart::kernel::OrderId = id.parse().unwrap();
    let moved = m
        .app
        .db
        .run_blocking(move |conn| {
            Ok::<_, DbError>(orders::transition(conn, id, OrderStatus::Expired, None, now()))
        })
        .unwrap()
        .unwrap();
    assert!(moved);
}

fn set_stock_of_42(m: &MessengerApp, stock: i64) {
    m.app
        .db
        .query_blocking(move |conn| {
            diesel::update(schema::variants::table.filter(schema::variants::sku.eq("SLIP-01-42")))
                .set(schema::variants::stock.eq(stock))
                .execute(conn)
        })
        .unwrap();
}

fn texts_to(m: &MessengerApp, psid: &str) -> Vec<String> {
    sent_to(m, psid)
        .iter()
        .filter_map(|v| v["text"].as_str().map(str::to_owned))
        .collect()
}

fn receipts_to(m: &MessengerApp, psid: &str) -> usize {
    sent_to(m, psid)
        .iter()
        .filter(|v| template(v)["template_type"] == "receipt")
        .count()
}

#[tokio::test]
async fn a_lost_answer_is_asked_again_with_the_same_key_and_gives_the_same_session() {
    let (m, stripe) = shop_with_stripe_and(vec![("STRIPE_TIMEOUT_SECS", "1".into())]).await;
    // Stripe makes the session, but its answer does not arrive before the worker stops waiting: what a
    // crash between Stripe's answer and our write looks like from the order's side.
    stripe.answer_late(Duration::from_secs(3));

    let (order_id, session_id) = awaiting_payment(&m, "L1").await;

    let creates: Vec<_> = stripe
        .received()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/checkout/sessions")
        .collect();
    assert_eq!(creates.len(), 2, "asked once, then again after the lost answer");
    assert_eq!(creates[0].idempotency_key, creates[1].idempotency_key);
    assert_eq!(
        creates[0].idempotency_key.as_deref(),
        Some(format!("order-{order_id}-checkout-1").as_str())
    );
    assert_eq!(stripe.sessions().len(), 1, "no second session at Stripe");
    assert_eq!(stripe.sessions()[0]["id"], session_id.as_str());
    let pay_buttons = sent_to(&m, "L1")
        .iter()
        .filter(|v| template(v)["template_type"] == "button")
        .filter(|v| template(v)["buttons"][0]["title"] == "Pay 49.90 EUR")
        .count();
    assert_eq!(pay_buttons, 1);
}

#[tokio::test]
async fn a_payment_after_the_order_expired_here_is_honoured_while_the_stock_lasts() {
    let (m, stripe) = shop_with_stripe().await;
    let (order_id, session_id) = awaiting_payment(&m, "L2").await;
    expire_here(&m, &order_id);
    assert_eq!(stock_42(&m).await, 5, "the expired order gave its unit back");

    stripe.complete_session(&session_id);
    post_stripe_event(&m, "checkout.session.completed", &session_id).await;

    let paid = wait_for_status(&m, &order_id, "paid").await;
    assert_eq!(paid["late_payment"], "honoured");
    assert!(paid["paid_at"].is_string());
    assert_eq!(stock_42(&m).await, 4, "its unit is taken again, once");
    eventually("the receipt reaches the shopper", || async {
        receipts_to(&m, "L2") == 1
    })
    .await;
    assert_eq!(order(&m, &order_id).await["receipt"], "sent");
    let refunds = stripe
        .received()
        .iter()
        .filter(|r| r.path == "/v1/refunds")
        .count();
    assert_eq!(refunds, 0);
}

#[tokio::test]
async fn a_payment_after_the_order_expired_here_is_refunded_in_full_when_the_stock_is_gone() {
    let (m, stripe) = shop_with_stripe().await;
    let (order_id, session_id) = awaiting_payment(&m, "L3").await;
    expire_here(&m, &order_id);
    set_stock_of_42(&m, 0); // sold to someone else meanwhile

    let intent = stripe.complete_session(&session_id);
    post_stripe_event(&m, "checkout.session.completed", &session_id).await;
    post_stripe_event(&m, "checkout.session.completed", &session_id).await; // Stripe retries

    let refunded = wait_for_status(&m, &order_id, "refunded").await;
    assert_eq!(refunded["late_payment"], "refunded");
    assert_eq!(
        refunded["refunded"],
        json!({"amount": "49.90", "currency": "EUR"})
    );
    assert_eq!(stock_42(&m).await, 0, "nothing sold twice");
    let refund_calls: Vec<_> = stripe
        .received()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/refunds")
        .collect();
    assert!(!refund_calls.is_empty());
    assert!(
        refund_calls
            .iter()
            .all(|r| r.idempotency_key.as_deref() == Some(format!("order-{order_id}-late-refund").as_str()))
    );
    assert!(
        refund_calls
            .iter()
            .all(|r| r.field("payment_intent") == Some(intent.as_str()) && r.field("amount") == Some("4990"))
    );
    eventually("the shopper is told about the refund", || async {
        texts_to(&m, "L3")
            .iter()
            .any(|t| t.contains("We refunded the full 49.90 EUR"))
    })
    .await;
    assert_eq!(receipts_to(&m, "L3"), 0);
}

#[tokio::test]
async fn a_late_payment_refunded_after_the_window_is_told_through_the_approved_refund_template() {
    let (m, stripe) = shop_with_stripe().await;
    approve_template(
        &m,
        "order_refunded",
        "Hi {first_name}, {amount} of your order {order_number} is refunded.",
    )
    .await;
    let (order_id, session_id) = awaiting_payment(&m, "L12").await;
    expire_here(&m, &order_id);
    set_stock_of_42(&m, 0);
    close_the_window(&m);

    stripe.complete_session(&session_id);
    post_stripe_event(&m, "checkout.session.completed", &session_id).await;

    let refunded = wait_for_status(&m, &order_id, "refunded").await;
    eventually("the refund is told through its template", || async {
        !template_sends_to(&m, "L12").is_empty()
    })
    .await;
    let sends = template_sends_to(&m, "L12");
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0]["messaging_type"], "UTILITY");
    let template = &sends[0]["message"]["template"];
    assert_eq!(template["name"], "threadcart_order_refunded_en");
    let parameters = body_parameters(template);
    assert_eq!(
        parameters,
        ["Anna", "49.90 EUR", refunded["number"].as_str().unwrap()]
    );
}

#[tokio::test]
async fn a_lost_webhook_is_made_up_for_when_the_shopper_comes_back_from_stripe() {
    let (m, stripe) = shop_with_stripe().await;
    let (order_id, session_id) = awaiting_payment(&m, "L4").await;
    stripe.complete_session(&session_id);

    // No webhook ever comes; the shopper lands on the success page.
    let page = m
        .app
        .client
        .get(format!("{}/checkout/success?order={order_id}", m.app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);

    wait_for_status(&m, &order_id, "paid").await;
    eventually("the receipt reaches the shopper", || async {
        receipts_to(&m, "L4") == 1
    })
    .await;
}

#[tokio::test]
async fn an_unsettled_order_is_reconciled_with_stripe_without_any_webhook() {
    let (m, stripe) = shop_with_stripe_and(vec![("THREADCART_SWEEP_SECS", "1".into())]).await;
    let (order_id, session_id) = awaiting_payment(&m, "L5").await;
    stripe.complete_session(&session_id);
    // Last asked about long ago: the periodic reconciliation comes round to it.
    let id = DbUuid(order_id.parse().unwrap());
    let long_ago = now() - chrono::Duration::hours(1);
    m.app
        .db
        .query_blocking(move |conn| {
            diesel::update(schema::orders::table.find(id))
                .set(schema::orders::checked_at.eq(long_ago))
                .execute(conn)
        })
        .unwrap();

    wait_for_status(&m, &order_id, "paid").await;
    assert_eq!(stock_42(&m).await, 4);
}

#[tokio::test]
async fn an_expiry_event_after_the_payment_leaves_the_order_paid() {
    let (m, stripe) = shop_with_stripe().await;
    let (order_id, _) = paid_order(&m, &stripe, "L6").await;
    let session_id = order(&m, &order_id).await["stripe_session_id"]
        .as_str()
        .unwrap()
        .to_owned();

    post_stripe_event(&m, "checkout.session.expired", &session_id).await;
    let done = eventually_event_done(&m).await;

    assert!(done);
    assert_eq!(order(&m, &order_id).await["status"], "paid");
    assert_eq!(stock_42(&m).await, 4);
}

/// Every Stripe event stored so far was processed.
async fn eventually_event_done(m: &MessengerApp) -> bool {
    eventually("every Stripe event is processed", || async {
        m.app
            .db
            .query_blocking(|conn| {
                schema::stripe_events::table
                    .filter(schema::stripe_events::processed_at.is_null())
                    .count()
                    .get_result::<i64>(conn)
            })
            .unwrap()
            == 0
    })
    .await;
    true
}

#[tokio::test]
async fn a_delayed_payment_is_processing_then_paid_with_the_receipt() {
    let (m, stripe) = shop_with_stripe().await;
    let (order_id, session_id) = awaiting_payment(&m, "L7").await;

    stripe.complete_session_unpaid(&session_id);
    post_stripe_event(&m, "checkout.session.completed", &session_id).await;
    wait_for_status(&m, &order_id, "processing").await;
    eventually("the shopper hears the bank must confirm", || async {
        texts_to(&m, "L7")
            .iter()
            .any(|t| t.contains("waits for your bank"))
    })
    .await;
    assert_eq!(receipts_to(&m, "L7"), 0);

    stripe.settle_delayed_payment(&session_id, true);
    post_stripe_event(&m, "checkout.session.async_payment_succeeded", &session_id).await;
    wait_for_status(&m, &order_id, "paid").await;
    eventually("the receipt reaches the shopper", || async {
        receipts_to(&m, "L7") == 1
    })
    .await;
    assert_eq!(stock_42(&m).await, 4);
}

#[tokio::test]
async fn a_failed_delayed_payment_gives_the_stock_back_and_offers_to_try_again() {
    let (m, stripe) = shop_with_stripe().await;
    let (order_id, session_id) = awaiting_payment(&m, "L8").await;
    stripe.complete_session_unpaid(&session_id);
    post_stripe_event(&m, "checkout.session.completed", &session_id).await;
    wait_for_status(&m, &order_id, "processing").await;

    stripe.settle_delayed_payment(&session_id, false);
    post_stripe_event(&m, "checkout.session.async_payment_failed", &session_id).await;

    wait_for_status(&m, &order_id, "payment_failed").await;
    assert_eq!(stock_42(&m).await, 5);
    eventually("the shopper may try again", || async {
        sent_to(&m, "L8").iter().any(|v| {
            v["text"]
                .as_str()
                .is_some_and(|t| t.contains("did not go through"))
                && v["quick_replies"][0]["title"] == "Try again"
        })
    })
    .await;
}

#[tokio::test]
async fn charge_refunded_brings_the_refunds_made_in_the_dashboard_once() {
    let (m, stripe) = shop_with_stripe().await;
    let (order_id, intent) = paid_order(&m, &stripe, "L9").await;
    stripe.refund_in_dashboard(&intent, 1000);
    let charge = json!({"id": "ch_test_1", "object": "charge", "payment_intent": intent, "amount": 4990,
                        "amount_refunded": 1000, "refunded": false});

    post_event_object(&m, "charge.refunded", charge.clone()).await;
    post_event_object(&m, "charge.refunded", charge).await;

    let o = wait_for_status(&m, &order_id, "partially_refunded").await;
    eventually_event_done(&m).await;
    let o2 = order(&m, &order_id).await;
    assert_eq!(o["refunded"], json!({"amount": "10.00", "currency": "EUR"}));
    assert_eq!(o2["refunded"], o["refunded"], "recorded once");

    stripe.refund_in_dashboard(&intent, 3990);
    post_event_object(
        &m,
        "charge.refunded",
        json!({"id": "ch_test_1", "object": "charge", "payment_intent": intent, "amount_refunded": 4990}),
    )
    .await;
    let o = wait_for_status(&m, &order_id, "refunded").await;
    assert_eq!(o["refunded"], json!({"amount": "49.90", "currency": "EUR"}));
}

/// Submits a utility template in English for the Page; the local Graph server approves it.
async fn approve_template(m: &MessengerApp, purpose: &str, body: &str) {
    let res = m
        .app
        .post(
            "/v1/templates",
            &m.merchant.token,
            json!({"page_id": PAGE_ID, "purpose": purpose, "language": "en", "body": body}),
        )
        .await;
    assert_eq!(res.status(), 201);
}

/// The shopper's last message was two days ago: Messenger's window is closed.
fn close_the_window(m: &MessengerApp) {
    let two_days_ago = now() - chrono::Duration::days(2);
    m.app
        .db
        .query_blocking(move |conn| {
            diesel::update(schema::threads::table)
                .set(schema::threads::window_ends_at.eq(two_days_ago))
                .execute(conn)
        })
        .unwrap();
}

#[tokio::test]
async fn a_payment_after_the_window_sends_the_approved_receipt_template_once_with_the_order_number() {
    let (m, stripe) = shop_with_stripe().await;
    approve_template(
        &m,
        "order_paid",
        "Hi {first_name}, your order {order_number} of {amount} is paid. Thank you!",
    )
    .await;
    let (order_id, session_id) = awaiting_payment(&m, "L11").await;
    close_the_window(&m);
    let before = sent_to(&m, "L11").len();

    stripe.complete_session(&session_id);
    post_stripe_event(&m, "checkout.session.completed", &session_id).await;
    post_stripe_event(&m, "checkout.session.completed", &session_id).await;

    let paid = wait_for_status(&m, &order_id, "paid").await;
    eventually("the receipt goes through the template", || async {
        order(&m, &order_id).await["receipt"] == "template"
    })
    .await;
    eventually("the template message is sent", || async {
        sent_to(&m, "L11").len() > before
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let sends = template_sends_to(&m, "L11");
    assert_eq!(sends.len(), 1, "sent once: {sends:?}");
    assert_eq!(sends[0]["messaging_type"], "UTILITY");
    assert!(sends[0].get("tag").is_none_or(Value::is_null), "never a tag");
    let template = &sends[0]["message"]["template"];
    assert_eq!(template["name"], "threadcart_order_paid_en");
    assert_eq!(template["language"]["code"], "en");
    let parameters = body_parameters(template);
    assert_eq!(
        parameters,
        ["Anna", paid["number"].as_str().unwrap(), "49.90 EUR"]
    );
}

#[tokio::test]
async fn with_the_template_rejected_the_receipt_is_held_until_the_shopper_writes_then_follows_in_the_window()
{
    let (m, stripe) = shop_with_stripe().await;
    // Meta rejects the Page's receipt template on review.
    approve_template(
        &m,
        "order_paid",
        "Hi {first_name}, your order {order_number} of {amount} is paid. Thank you!",
    )
    .await;
    let templates: Value = m
        .app
        .get("/v1/templates", &m.merchant.token)
        .await
        .json()
        .await
        .unwrap();
    let meta_id: i64 = templates["data"][0]["meta_template_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let review = json!({"object": "page", "entry": [{"id": PAGE_ID, "time": 1_765_000_000, "changes": [
        {"field": "message_template_status_update", "value": {"event": "REJECTED",
         "message_template_id": meta_id, "message_template_name": "threadcart_order_paid_en",
         "message_template_language": "en", "reason": "INCORRECT_CATEGORY"}}]}]});
    assert_eq!(m.app.post_webhook(&review.to_string()).await.status(), 200);
    let templates: Value = m
        .app
        .get("/v1/templates", &m.merchant.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(templates["data"][0]["status"], "rejected");
    let (order_id, session_id) = awaiting_payment(&m, "L10").await;
    // The shopper's last message is two days old when the payment is confirmed.
    close_the_window(&m);
    let before = sent_to(&m, "L10").len();

    stripe.complete_session(&session_id);
    post_stripe_event(&m, "checkout.session.completed", &session_id).await;
    let paid = wait_for_status(&m, &order_id, "paid").await;
    eventually("the receipt is held", || async {
        order(&m, &order_id).await["receipt"] == "held"
    })
    .await;
    assert!(paid["paid_at"].is_string());
    assert_eq!(
        sent_to(&m, "L10").len(),
        before,
        "nothing sent outside the window"
    );

    // The shopper writes again: the window opens and the receipt follows.
    let event = json!({"sender": {"id": "L10"}, "recipient": {"id": PAGE_ID}, "timestamp": crate::helpers::now_ms(),
        "message": {"mid": "m-back", "text": "did my payment go through?"}});
    m.app
        .post_webhook(&crate::helpers::delivery(PAGE_ID, vec![event]))
        .await;
    let receipt = next_message(&m, "L10", before, |v| template(v)["template_type"] == "receipt").await;
    eventually("the order says the receipt was sent", || async {
        order(&m, &order_id).await["receipt"] == "sent"
    })
    .await;

    assert_eq!(template(&receipt)["order_number"], paid["number"]);
    assert_eq!(receipts_to(&m, "L10"), 1, "once");
    let told: Vec<(Value, Value)> = order(&m, &order_id).await["notices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["purpose"].clone(), n["told"].clone()))
        .collect();
    assert_eq!(
        told,
        [
            (json!("order_paid"), json!("held")),
            (json!("order_paid"), json!("sent"))
        ],
        "how and when the shopper was told"
    );
    assert!(
        template_sends_to(&m, "L10").is_empty(),
        "the rejected template is never sent"
    );
    assert!(
        m.graph
            .messages()
            .iter()
            .all(|b| b.get("tag").is_none_or(Value::is_null)),
        "never a tag"
    );
}

#[tokio::test]
async fn orders_are_filtered_by_thread_ad_and_time() {
    let (m, stripe) = shop_with_stripe().await;
    let (first, _) = paid_order(&m, &stripe, "L11").await;
    let (second, _) = awaiting_payment(&m, "L12").await;
    let token = m.merchant.token.clone();
    let thread_of = |o: &Value| o["thread_id"].as_str().unwrap().to_owned();
    let first_thread = thread_of(&order(&m, &first).await);
    let ids = |v: Value| -> Vec<String> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let list = |q: String| {
        let (m, token) = (&m, token.clone());
        async move {
            let res = m.app.get(&format!("/v1/orders?{q}"), &token).await;
            assert_eq!(res.status(), 200, "{q}");
            res.json::<Value>().await.unwrap()
        }
    };

    assert_eq!(
        ids(list(format!("thread_id={first_thread}")).await),
        std::slice::from_ref(&first)
    );
    assert_eq!(
        ids(list("ad_id=AD-7".into()).await),
        [second.clone(), first.clone()]
    );
    assert!(ids(list("ad_id=AD-8".into()).await).is_empty());
    assert_eq!(
        ids(list("status=paid&ad_id=AD-7".into()).await),
        std::slice::from_ref(&first)
    );
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1)).format("%Y-%m-%d");
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1)).format("%Y-%m-%d");
    assert_eq!(
        ids(list(format!("from={yesterday}&to={tomorrow}")).await).len(),
        2
    );
    assert!(ids(list(format!("from={tomorrow}")).await).is_empty());
    assert!(ids(list(format!("to={yesterday}T00:00:00Z")).await).is_empty());

    let bad = m.app.get("/v1/orders?from=last-tuesday", &token).await;
    let problem = crate::helpers::assert_problem(bad, 422, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "from");
}

#[tokio::test]
async fn a_refund_repeated_with_its_idempotency_key_is_made_once_and_answered_again() {
    let (m, stripe) = shop_with_stripe().await;
    let (order_id, _) = paid_order(&m, &stripe, "L13").await;
    let url = format!("{}/v1/orders/{order_id}/refunds", m.app.address);
    let ask = |key: &'static str, amount: &'static str| {
        let (m, url) = (&m, url.clone());
        async move {
            m.app
                .client
                .post(url)
                .bearer_auth(&m.merchant.token)
                .header("idempotency-key", key)
                .json(&json!({"amount": {"amount": amount, "currency": "EUR"}}))
                .send()
                .await
                .unwrap()
        }
    };

    let first = ask("refund-ticket-1", "10.00").await;
    let repeated = ask("refund-ticket-1", "10.00").await;
    let other_amount = ask("refund-ticket-1", "5.00").await;

    assert_eq!(first.status(), 201);
    assert_eq!(repeated.status(), 201);
    let (first, repeated): (Value, Value) = (first.json().await.unwrap(), repeated.json().await.unwrap());
    assert_eq!(first["id"], repeated["id"]);
    assert_eq!(
        repeated["order"]["refunded"],
        json!({"amount": "10.00", "currency": "EUR"})
    );
    crate::helpers::assert_problem(other_amount, 409, "idempotency_key_reused").await;
    let refund_calls = stripe
        .received()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/refunds")
        .count();
    assert_eq!(refund_calls, 1, "Stripe was asked once");

    let bad_key = m
        .app
        .client
        .post(&url)
        .bearer_auth(&m.merchant.token)
        .header("idempotency-key", "")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    crate::helpers::assert_problem(bad_key, 400, "invalid_idempotency_key").await;
}
