//! The Stripe client against the fake Stripe server, over real HTTP: what it sends, what it understands of
//! Stripe's answers, and how failures are sorted into retryable or not.

use secrecy::SecretString;
use serde_json::json;
use threadcart::checkout::stripe::{
    CheckoutLine, NewCheckout, PaymentStatus, RefundReason, SessionStatus, StripeClient, StripeError,
};
use threadcart::money::{Currency, Money};
use uuid::Uuid;

use crate::stripe_fake::{FakeStripe, stripe_error};

fn client(fake: &FakeStripe) -> StripeClient {
    StripeClient::new(&SecretString::from("sk_test_threadcart"), &fake.base).unwrap()
}

fn eur(minor: i64) -> Money {
    Money::from_minor(minor, Currency::parse("EUR").unwrap())
}

fn in_an_hour() -> i64 {
    chrono::Utc::now().timestamp() + 3600
}

/// One pair of slippers at 49.90 EUR, paid from a French thread.
fn slippers_order() -> NewCheckout {
    NewCheckout {
        order_id: threadcart::kernel::OrderId(Uuid::new_v4()),
        lines: vec![CheckoutLine {
            name: "Comfy slippers, 42".into(),
            image_url: Some("https://shop.example/slippers.png".into()),
            unit_amount: eur(4990),
            quantity: 1,
        }],
        discount: None,
        currency: Currency::parse("EUR").unwrap(),
        expires_at: in_an_hour(),
        success_url: "https://shop.example/paid?session_id={CHECKOUT_SESSION_ID}".into(),
        cancel_url: "https://shop.example/cancelled".into(),
        locale: Some("fr_FR".into()),
    }
}

fn key(order: &NewCheckout) -> String {
    format!("checkout:{}:1", order.order_id)
}

#[tokio::test]
async fn a_session_is_created_with_the_orders_lines_and_references() {
    let fake = FakeStripe::start().await;
    let order = slippers_order();

    let session = client(&fake)
        .create_checkout_session(&order, &key(&order))
        .await
        .unwrap();

    let sent = &fake.received()[0];
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str()),
        ("POST", "/v1/checkout/sessions")
    );
    assert_eq!(
        sent.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(sent.idempotency_key.as_deref(), Some(key(&order).as_str()));
    assert!(sent.stripe_version.is_some());
    let order_id = order.order_id.to_string();
    let expires_at = order.expires_at.to_string();
    for (field, value) in [
        ("mode", "payment"),
        ("line_items[0][price_data][currency]", "eur"),
        ("line_items[0][price_data][unit_amount]", "4990"),
        (
            "line_items[0][price_data][product_data][name]",
            "Comfy slippers, 42",
        ),
        (
            "line_items[0][price_data][product_data][images][0]",
            "https://shop.example/slippers.png",
        ),
        ("line_items[0][quantity]", "1"),
        ("client_reference_id", &order_id),
        ("metadata[order_id]", &order_id),
        ("payment_intent_data[metadata][order_id]", &order_id),
        ("expires_at", &expires_at),
        (
            "success_url",
            "https://shop.example/paid?session_id={CHECKOUT_SESSION_ID}",
        ),
        ("cancel_url", "https://shop.example/cancelled"),
        ("locale", "fr"),
    ] {
        assert_eq!(sent.field(field), Some(value), "{field}");
    }
    assert_eq!(sent.field("customer_email"), None);
    assert_eq!(sent.field("discounts[0][coupon]"), None);

    assert!(session.id.starts_with("cs_test_"));
    assert!(
        session
            .url
            .as_deref()
            .unwrap()
            .starts_with("https://checkout.stripe.com/")
    );
    assert_eq!(session.status, SessionStatus::Open);
    assert_eq!(session.payment_status, PaymentStatus::Unpaid);
    assert_eq!(session.payment_intent, None);
    assert_eq!(session.amount_total, Some(4990));
    assert_eq!(session.currency.as_deref(), Some("eur"));
    assert_eq!(session.total(), Some(eur(4990)));
    assert_eq!(session.client_reference_id.as_deref(), Some(order_id.as_str()));
    assert_eq!(session.metadata_order_id.as_deref(), Some(order_id.as_str()));
    assert_eq!(session.expires_at, Some(order.expires_at));
}

#[tokio::test]
async fn the_same_idempotency_key_twice_returns_the_same_session() {
    let fake = FakeStripe::start().await;
    let stripe = client(&fake);
    let order = slippers_order();

    let first = stripe
        .create_checkout_session(&order, &key(&order))
        .await
        .unwrap();
    let again = stripe
        .create_checkout_session(&order, &key(&order))
        .await
        .unwrap();
    let next_attempt = stripe
        .create_checkout_session(&order, &format!("checkout:{}:2", order.order_id))
        .await
        .unwrap();

    assert_eq!(again, first);
    assert_ne!(next_attempt.id, first.id);
    assert_eq!(fake.received().len(), 3);
}

#[tokio::test]
async fn the_same_key_with_other_parameters_is_an_idempotency_error_that_is_not_retried() {
    let fake = FakeStripe::start().await;
    let stripe = client(&fake);
    let order = slippers_order();
    stripe
        .create_checkout_session(&order, &key(&order))
        .await
        .unwrap();

    let mut changed = order.clone();
    changed.lines[0].quantity = 2;
    let err = stripe
        .create_checkout_session(&changed, &key(&order))
        .await
        .unwrap_err();

    assert!(matches!(&err, StripeError::Api { status: 400, kind, .. } if kind == "idempotency_error"));
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn a_discounted_order_reaches_stripe_as_reduced_prices_with_the_exact_total() {
    let fake = FakeStripe::start().await;
    let mut order = slippers_order();
    order.lines.push(CheckoutLine {
        name: "Wool socks".into(),
        image_url: None,
        unit_amount: eur(1000),
        quantity: 3,
    });
    order.discount = Some(eur(1099));

    let session = client(&fake)
        .create_checkout_session(&order, &key(&order))
        .await
        .unwrap();

    let sent = &fake.received()[0];
    let lines: Vec<(&str, &str, &str)> = (0..3)
        .map(|i| {
            let field = |name: &str| sent.field(&format!("line_items[{i}]{name}")).unwrap();
            (
                field("[price_data][product_data][name]"),
                field("[price_data][unit_amount]"),
                field("[quantity]"),
            )
        })
        .collect();
    assert_eq!(
        lines,
        vec![
            ("Comfy slippers, 42", "4304", "1"),
            ("Wool socks", "863", "1"),
            ("Wool socks", "862", "2"),
        ]
    );
    assert_eq!(sent.field("line_items[3][quantity]"), None);
    assert_eq!(session.total(), Some(eur(4990 + 3000 - 1099)));
}

#[tokio::test]
async fn a_session_is_retrieved_as_stripe_has_it_now() {
    let fake = FakeStripe::start().await;
    let stripe = client(&fake);
    let order = slippers_order();
    let created = stripe
        .create_checkout_session(&order, &key(&order))
        .await
        .unwrap();

    let open = stripe.retrieve_checkout_session(&created.id).await.unwrap();
    let payment_intent = fake.complete_session(&created.id);
    let paid = stripe.retrieve_checkout_session(&created.id).await.unwrap();

    assert_eq!(open, created);
    assert_eq!(paid.status, SessionStatus::Complete);
    assert_eq!(paid.payment_status, PaymentStatus::Paid);
    assert_eq!(paid.payment_intent, Some(payment_intent));
    assert_eq!(paid.url, None);
    assert_eq!(paid.metadata_order_id, created.metadata_order_id);
    let get = &fake.received()[1];
    assert_eq!(
        (get.method.as_str(), get.path.as_str()),
        ("GET", created_path(&created.id).as_str())
    );
    assert_eq!(get.idempotency_key, None);
}

fn created_path(id: &str) -> String {
    format!("/v1/checkout/sessions/{id}")
}

#[tokio::test]
async fn an_unknown_session_is_a_404_that_is_not_retried() {
    let fake = FakeStripe::start().await;

    let err = client(&fake)
        .retrieve_checkout_session("cs_test_nothing")
        .await
        .unwrap_err();

    assert!(
        matches!(&err, StripeError::Api { status: 404, code: Some(code), .. } if code == "resource_missing")
    );
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn an_open_session_is_expired_once() {
    let fake = FakeStripe::start().await;
    let stripe = client(&fake);
    let order = slippers_order();
    let created = stripe
        .create_checkout_session(&order, &key(&order))
        .await
        .unwrap();

    let expired = stripe.expire_checkout_session(&created.id).await.unwrap();
    let again = stripe.expire_checkout_session(&created.id).await.unwrap_err();

    assert_eq!(expired.id, created.id);
    assert_eq!(expired.status, SessionStatus::Expired);
    assert_eq!(expired.url, None);
    let post = &fake.received()[1];
    assert_eq!(post.method, "POST");
    assert_eq!(post.path, format!("{}/expire", created_path(&created.id)));
    assert!(matches!(again, StripeError::Api { status: 400, .. }));
    assert!(!again.is_retryable());
}

#[tokio::test]
async fn a_paid_session_is_refunded_in_part() {
    let fake = FakeStripe::start().await;
    let stripe = client(&fake);
    let order = slippers_order();
    let created = stripe
        .create_checkout_session(&order, &key(&order))
        .await
        .unwrap();
    let payment_intent = fake.complete_session(&created.id);
    let refund_key = format!("refund:{}:1", order.order_id);

    let refund = stripe
        .create_refund(
            &payment_intent,
            eur(1000),
            &refund_key,
            Some(RefundReason::RequestedByCustomer),
        )
        .await
        .unwrap();

    assert!(refund.id.starts_with("re_"));
    assert_eq!(refund.status, "succeeded");
    assert_eq!((refund.amount, refund.currency.as_str()), (1000, "eur"));
    let sent = fake.received().pop().unwrap();
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str()),
        ("POST", "/v1/refunds")
    );
    assert_eq!(sent.idempotency_key.as_deref(), Some(refund_key.as_str()));
    assert_eq!(sent.field("payment_intent"), Some(payment_intent.as_str()));
    assert_eq!(sent.field("amount"), Some("1000"));
    assert_eq!(sent.field("reason"), Some("requested_by_customer"));
}

#[tokio::test]
async fn a_declined_card_and_an_invalid_request_are_not_retryable() {
    let fake = FakeStripe::start().await;
    let stripe = client(&fake);
    let order = slippers_order();
    fake.fail_next(vec![
        (
            402,
            stripe_error(
                "card_error",
                Some("card_declined"),
                "Your card was declined.",
                None,
            ),
        ),
        (
            400,
            stripe_error(
                "invalid_request_error",
                Some("parameter_invalid_integer"),
                "Invalid integer: 49.90",
                Some("line_items[0][price_data][unit_amount]"),
            ),
        ),
    ]);

    let declined = stripe
        .create_checkout_session(&order, &key(&order))
        .await
        .unwrap_err();
    let invalid = stripe
        .create_checkout_session(&order, &key(&order))
        .await
        .unwrap_err();

    assert_eq!(
        declined,
        StripeError::Api {
            status: 402,
            kind: "card_error".into(),
            code: Some("card_declined".into()),
            message: "Your card was declined.".into(),
            param: None,
        }
    );
    assert!(
        matches!(&invalid, StripeError::Api { status: 400, kind, .. } if kind == "invalid_request_error")
    );
    assert!(!declined.is_retryable());
    assert!(!invalid.is_retryable());
}

#[tokio::test]
async fn a_server_error_and_rate_limiting_are_retryable() {
    let fake = FakeStripe::start().await;
    let stripe = client(&fake);
    let order = slippers_order();
    fake.fail_next(vec![
        (
            500,
            stripe_error("api_error", None, "Something went wrong on Stripe's end.", None),
        ),
        (
            429,
            stripe_error(
                "invalid_request_error",
                Some("rate_limit"),
                "Too many requests.",
                None,
            ),
        ),
    ]);

    let server_error = stripe
        .create_checkout_session(&order, &key(&order))
        .await
        .unwrap_err();
    let rate_limited = stripe.retrieve_checkout_session("cs_test_any").await.unwrap_err();
    let then = stripe.create_checkout_session(&order, &key(&order)).await;

    assert!(matches!(server_error, StripeError::Api { status: 500, .. }));
    assert!(matches!(rate_limited, StripeError::Api { status: 429, .. }));
    assert!(server_error.is_retryable());
    assert!(rate_limited.is_retryable());
    assert!(
        then.is_ok(),
        "one attempt per call: the scripted failures are used up"
    );
    assert_eq!(fake.received().len(), 3);
}

#[tokio::test]
async fn an_error_answer_without_stripes_body_is_a_retryable_transport_error() {
    let fake = FakeStripe::start().await;
    fake.fail_next(vec![(502, json!("<html>Bad gateway</html>"))]);

    let err = client(&fake)
        .retrieve_checkout_session("cs_test_any")
        .await
        .unwrap_err();

    assert!(matches!(err, StripeError::Transport(_)), "{err:?}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn a_closed_port_is_a_retryable_transport_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let stripe = StripeClient::new(
        &SecretString::from("sk_test_threadcart"),
        &format!("http://127.0.0.1:{port}"),
    )
    .unwrap();
    let order = slippers_order();

    let err = stripe
        .create_checkout_session(&order, &key(&order))
        .await
        .unwrap_err();

    assert!(matches!(err, StripeError::Transport(_)), "{err:?}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn a_refused_key_is_not_retried_and_not_repeated_in_the_error() {
    let fake = FakeStripe::start().await;
    let stripe = StripeClient::new(&SecretString::from("sk_live_not_for_tests"), &fake.base).unwrap();

    let err = stripe.retrieve_checkout_session("cs_test_any").await.unwrap_err();

    assert!(matches!(err, StripeError::Api { status: 401, .. }));
    assert!(!err.is_retryable());
    assert!(!format!("{err} {err:?}").contains("sk_"), "{err:?}");
}
