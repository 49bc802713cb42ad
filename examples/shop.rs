//! Shops the demo shoe shop end to end through signed webhook calls, pays, and prints the conversation as
//! the shopper would see it in Messenger, then the order as the merchant's API shows it.
//!
//! It starts threadcart on a temporary SQLite database with the demo data, a local Graph API that receives
//! what threadcart sends, and a local Stripe API (the one the tests use, `tests/api/stripe_fake.rs`); then
//! a shopper clicks an ad for the slippers, picks size 42, takes the socks offer, types the demo code,
//! checks out and pays on the Checkout page; Stripe's signed `checkout.session.completed` webhook brings
//! the receipt. Every step goes through the real path: signed `POST /webhooks/messenger`, the inbox, the
//! engine, the outbox, the Send API over HTTP; the Checkout Session made over HTTP by the payments
//! worker; signed `POST /webhooks/stripe`, the session read back from Stripe, the order paid.
//!
//! `cargo run --example shop`

mod thread;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

const DEMO_KEY: &str = "tc_demo_comfy_shoes_owner_key_0000000000000000000000000000000000";

#[actix_web::main]
async fn main() -> Result<()> {
    let (mut anna, stripe) = thread::start("Comfy Shoes", "100000000000001", "PSID-ANNA", "Anna").await?;
    // The shop reports its purchases to Meta's Conversions API (here the local Graph API).
    let token = anna.token(DEMO_KEY).await?;
    let set = anna
        .client
        .put(format!("{}/v1/pages/100000000000001/conversions", anna.base))
        .bearer_auth(&token)
        .json(&json!({"dataset_id": "1234567890", "access_token": "EAAG-dataset-token"}))
        .send()
        .await?;
    if !set.status().is_success() {
        bail!("setting the Page's dataset answered {}", set.status());
    }
    println!("Anna sees an ad for Comfy slippers on Facebook and taps “Send message”.");
    let ad = json!({"postback": {"title": "Get Started", "payload": "GET_STARTED", "mid": "pb-ad",
        "referral": {"ref": "c=xmas24", "ad_id": "AD-XMAS-SLIPPERS", "source": "ADS", "type": "OPEN_THREAD",
                     "ads_context_data": {"ad_title": "Comfy slippers", "product_id": "SLIP-01", "post_id": "POST-1"}}}});
    let replies = anna.act("Anna taps “Get Started” under the ad", ad).await?;
    let replies = anna.tap(&replies, "Choose size").await?;
    let replies = anna.tap(&replies, "42").await?;
    let replies = match thread::find(&replies, "Yes, add it") {
        Some(_) => anna.tap(&replies, "Yes, add it").await?,
        None => replies,
    };
    let _ = replies;
    let replies = anna.say("welcome10").await?;
    let replies = anna.tap(&replies, "Checkout").await?;
    anna.pay(&replies, &stripe).await?;
    let orders: Value = anna
        .client
        .get(format!("{}/v1/orders?status=paid", anna.base))
        .bearer_auth(&token)
        .send()
        .await?
        .json()
        .await?;
    let order = &orders["data"][0];
    println!(
        "\nThe merchant's API (GET /v1/orders?status=paid): order {} is {}, total {} {}, from ad {}, receipt {}.",
        order["number"].as_str().unwrap_or_default(),
        order["status"].as_str().unwrap_or_default(),
        order["total"]["amount"].as_str().unwrap_or_default(),
        order["total"]["currency"].as_str().unwrap_or_default(),
        order["ad_id"].as_str().unwrap_or("none"),
        order["receipt"].as_str().unwrap_or("not sent"),
    );
    if order["status"] != "paid" || order["ad_id"] != "AD-XMAS-SLIPPERS" {
        bail!("the order is not paid with its ad: {order}");
    }
    let today = chrono::Utc::now().date_naive();
    let (from, to) = (today - chrono::Days::new(1), today + chrono::Days::new(1));
    let funnel: Value = anna
        .client
        .get(format!(
            "{}/v1/reports/funnel?from={from}&to={to}&group_by=ad",
            anna.base
        ))
        .bearer_auth(&token)
        .send()
        .await?
        .json()
        .await?;
    let row = funnel["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["key"] == "AD-XMAS-SLIPPERS")
        .with_context(|| format!("no row for the ad in {funnel}"))?;
    println!(
        "\nThe funnel by ad (GET /v1/reports/funnel?group_by=ad), row AD-XMAS-SLIPPERS: {} referral, {} product \
         views, {} add-to-carts, {} checkout, {} purchase, revenue {}.",
        row["referrals"],
        row["product_views"],
        row["add_to_carts"],
        row["checkouts"],
        row["purchases"],
        row["revenue"]
    );
    if row["purchases"] != 1 || row["revenue"][0]["amount"] != order["total"]["amount"] {
        bail!("the funnel row does not show the purchase with the order's total: {row}");
    }
    let started = std::time::Instant::now();
    while anna.datasets.0.lock().map(|d| d.is_empty()).unwrap_or(true) {
        if started.elapsed() > std::time::Duration::from_secs(10) {
            bail!("no Conversions API event reached the local Graph API");
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let sent = anna.datasets.0.lock().map(|d| d.clone()).unwrap_or_default();
    let event = &sent[0]["data"][0];
    println!(
        "The Conversions API received {} event: {} {} {} (event_id {}, action_source {}).",
        sent.len(),
        event["event_name"].as_str().unwrap_or_default(),
        event["custom_data"]["value"],
        event["custom_data"]["currency"].as_str().unwrap_or_default(),
        event["event_id"].as_str().unwrap_or_default(),
        event["action_source"].as_str().unwrap_or_default(),
    );
    if sent.len() != 1 {
        bail!("the Conversions API got {} posts, not one", sent.len());
    }
    println!(
        "\n(The conversation above went through threadcart's webhooks, engine, outbox and payments worker for real,\n \
         against local Graph and Stripe APIs.)"
    );
    Ok(())
}
