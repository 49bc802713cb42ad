//! Limits shared through the database: `rate_limit::hit` on both backends, and the webhooks' refusals
//! counted per client address.

use std::time::Duration;

use serde_json::json;
use threadcart::rate_limit::{self, Verdict};

use crate::helpers::{
    PAGE_ID, assert_problem, delivery, now_ms, spawn_app, spawn_messenger_app_with, text_message,
};

/// One `hit` on the test server's database.
async fn hit(
    app: &crate::helpers::TestApp,
    bucket: &'static str,
    key: &'static str,
    window: Duration,
) -> Verdict {
    app.db
        .query(move |conn| rate_limit::hit(conn, bucket, key, 3, window))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_key_is_allowed_up_to_the_limit_then_told_how_long_to_wait() {
    let app = spawn_app().await;
    let window = Duration::from_secs(60);

    let verdicts = [
        hit(&app, "test", "a", window).await,
        hit(&app, "test", "a", window).await,
        hit(&app, "test", "a", window).await,
        hit(&app, "test", "a", window).await,
    ];

    assert_eq!(verdicts[..3], [Verdict::Allowed; 3]);
    assert!(
        matches!(verdicts[3], Verdict::RetryAfter(s) if (59..=60).contains(&s)),
        "{verdicts:?}"
    );
}

#[tokio::test]
async fn other_keys_and_other_buckets_count_apart() {
    let app = spawn_app().await;
    let window = Duration::from_secs(60);
    for _ in 0..4 {
        hit(&app, "test", "a", window).await;
    }

    let other_key = hit(&app, "test", "b", window).await;
    let other_bucket = hit(&app, "other", "a", window).await;

    assert_eq!((other_key, other_bucket), (Verdict::Allowed, Verdict::Allowed));
}

#[tokio::test]
async fn a_window_that_ended_starts_the_count_again() {
    let app = spawn_app().await;
    let window = Duration::from_secs(1);
    for _ in 0..4 {
        hit(&app, "test", "a", window).await;
    }
    assert!(matches!(
        hit(&app, "test", "a", window).await,
        Verdict::RetryAfter(1)
    ));

    tokio::time::sleep(Duration::from_millis(1100)).await;

    assert_eq!(hit(&app, "test", "a", window).await, Verdict::Allowed);
}

#[tokio::test]
async fn concurrent_hits_never_let_more_than_the_limit_through() {
    let app = spawn_app().await;
    let window = Duration::from_secs(60);

    let verdicts = futures_util::future::join_all((0..20).map(|_| hit(&app, "test", "burst", window))).await;

    let allowed = verdicts.iter().filter(|v| **v == Verdict::Allowed).count();
    assert_eq!(allowed, 3, "{verdicts:?}");
}

#[tokio::test]
async fn unsigned_messenger_deliveries_from_one_address_are_rate_limited() {
    // Arrange
    let m = spawn_messenger_app_with(vec![("THREADCART_WEBHOOK_MAX_REJECTS", "3".into())]).await;
    let body = delivery(PAGE_ID, vec![text_message("U1", now_ms(), "m-1", "hi")]);
    let unsigned = || {
        m.app
            .client
            .post(format!("{}/webhooks/messenger", m.app.address))
            .header("x-hub-signature-256", format!("sha256={}", "0".repeat(64)))
            .body(body.clone())
            .send()
    };
    for _ in 0..3 {
        assert_problem(unsigned().await.unwrap(), 401, "invalid_signature").await;
    }

    // Act
    let fourth = unsigned().await.unwrap();
    let signed = m.app.post_webhook(&body).await;

    // Assert
    assert!(fourth.headers().contains_key("retry-after"));
    assert_problem(fourth, 429, "rate_limited").await;
    assert_eq!(
        signed.status(),
        200,
        "a signed delivery is never counted nor refused"
    );
}

#[tokio::test]
async fn wrong_verify_tokens_and_bad_stripe_signatures_count_as_refused_webhooks() {
    // Arrange
    let m = spawn_messenger_app_with(vec![
        ("THREADCART_WEBHOOK_MAX_REJECTS", "2".into()),
        ("STRIPE_WEBHOOK_SECRET", "whsec_test_rate_limits".into()),
    ])
    .await;
    let handshake = m
        .app
        .client
        .get(format!(
            "{}/webhooks/messenger?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1",
            m.app.address
        ))
        .send()
        .await
        .unwrap();
    let stripe = || {
        m.app
            .client
            .post(format!("{}/webhooks/stripe", m.app.address))
            .header("stripe-signature", "t=1,v1=00")
            .json(&json!({"id": "evt_1", "type": "checkout.session.completed"}))
            .send()
    };
    let first_stripe = stripe().await.unwrap();

    // Act
    let third = stripe().await.unwrap();

    // Assert
    assert_problem(handshake, 403, "verify_token_mismatch").await;
    assert_problem(first_stripe, 401, "invalid_signature").await;
    assert_problem(third, 429, "rate_limited").await;
}
