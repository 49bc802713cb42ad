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

use anyhow::{Result, bail};
use serde_json::{Value, json};

const DEMO_KEY: &str = "tc_demo_comfy_shoes_owner_key_0000000000000000000000000000000000";

#[actix_web::main]
async fn main() -> Result<()> {
    let (mut anna, stripe) = thread::start("Comfy Shoes", "100000000000001", "PSID-ANNA", "Anna").await?;
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
    let token = anna.token(DEMO_KEY).await?;
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
    println!(
        "\n(The conversation above went through threadcart's webhooks, engine, outbox and payments worker for real,\n \
         against local Graph and Stripe APIs.)"
    );
    Ok(())
}
