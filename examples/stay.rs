//! Books a stay in the demo hotel end to end through signed webhook calls, with the sea-view upgrade,
//! pays, and prints the conversation as the shopper would see it in Messenger, then the booking and the
//! availability as the merchant's API shows them.
//!
//! It starts threadcart on a temporary SQLite database with the demo data, a local Graph API that receives
//! what threadcart sends, and a local Stripe API (the one the tests use, `tests/api/stripe_fake.rs`); then
//! a shopper clicks an ad for the Honeymoon Suite (`ref` `b=honeymoon-suite`), types an arrival date, picks
//! 2 nights and 2 guests, takes the sea-view upgrade, declines breakfast, taps "Book and pay" and pays on
//! the Checkout page; Stripe's signed `checkout.session.completed` webhook confirms the booking and brings
//! the receipt. Finally `GET /v1/bookables/{id}/availability` shows one unit fewer on exactly those nights.
//!
//! `cargo run --example stay`

mod thread;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

const DEMO_KEY: &str = "tc_demo_dream_hotels_owner_key_000000000000000000000000000000000";

#[actix_web::main]
async fn main() -> Result<()> {
    let (mut lea, stripe) = thread::start("Dream Hotels", "100000000000002", "PSID-LEA", "Léa").await?;
    let base = lea.base.clone();
    let token = lea.token(DEMO_KEY).await?;
    let rooms: Value = lea
        .client
        .get(format!("{base}/v1/bookables"))
        .bearer_auth(&token)
        .send()
        .await?
        .json()
        .await?;
    let sea_view = rooms["data"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["name"] == "Sea-view Honeymoon Suite")
        .and_then(|r| r["id"].as_str())
        .context("no Sea-view Honeymoon Suite in the demo")?
        .to_owned();
    // A Tuesday two to three weeks ahead: two weekday nights, then the nights around them for contrast.
    let today = chrono::Utc::now().date_naive();
    let arrival = today
        .iter_days()
        .skip(14)
        .find(|d| chrono::Datelike::weekday(d) == chrono::Weekday::Tue)
        .context("no Tuesday ahead")?;
    let from = arrival - chrono::Days::new(1);
    let availability = |client: reqwest::Client| {
        let url = format!(
            "{base}/v1/bookables/{sea_view}/availability?from={from}&to={}",
            arrival + chrono::Days::new(3)
        );
        let token = token.clone();
        async move {
            let body: Value = client.get(url).bearer_auth(token).send().await?.json().await?;
            Ok::<Vec<(String, i64)>, anyhow::Error>(
                body["nights"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|n| {
                        (
                            n["date"].as_str().unwrap_or_default().to_owned(),
                            n["available"].as_i64().unwrap_or(-1),
                        )
                    })
                    .collect(),
            )
        }
    };
    let before = availability(lea.client.clone()).await?;

    println!("Léa sees an ad for the Honeymoon Suite at Dream Hotels and taps “Send message”.");
    let ad = json!({"postback": {"title": "Get Started", "payload": "GET_STARTED", "mid": "pb-ad",
        "referral": {"ref": "c=honeymoon_b=honeymoon-suite", "ad_id": "AD-HONEYMOON", "source": "ADS",
                     "type": "OPEN_THREAD",
                     "ads_context_data": {"ad_title": "Honeymoon Suite", "post_id": "POST-2"}}}});
    lea.act("Léa taps “Get Started” under the ad", ad).await?;
    let replies = lea.say(&arrival.format("%-d/%m").to_string()).await?;
    let replies = lea.tap(&replies, "2 nights").await?;
    let replies = lea.tap(&replies, "2 guests").await?;
    let replies = lea.tap(&replies, "Upgrade").await?;
    let replies = match thread::find(&replies, "No thanks") {
        Some(_) => lea.tap(&replies, "No thanks").await?,
        None => replies,
    };
    let replies = lea.tap(&replies, "Book and pay").await?;
    lea.pay(&replies, &stripe).await?;

    let bookings: Value = lea
        .client
        .get(format!("{base}/v1/bookings?status=confirmed"))
        .bearer_auth(&token)
        .send()
        .await?
        .json()
        .await?;
    let booking = &bookings["data"][0];
    println!(
        "\nThe merchant's API (GET /v1/bookings?status=confirmed): booking {} is {}, arriving {} for {} nights, total {} {}.",
        booking["id"].as_str().unwrap_or_default(),
        booking["status"].as_str().unwrap_or_default(),
        booking["arrival"].as_str().unwrap_or_default(),
        booking["nights"],
        booking["total"]["amount"].as_str().unwrap_or_default(),
        booking["total"]["currency"].as_str().unwrap_or_default(),
    );
    if booking["bookable_id"] != sea_view.as_str() {
        bail!("the confirmed booking is not the upgraded room: {booking}");
    }
    let after = availability(lea.client.clone()).await?;
    println!("\nGET /v1/bookables/{{id}}/availability of the Sea-view Honeymoon Suite, before and after:");
    for ((night, was), (_, is)) in before.iter().zip(&after) {
        println!("  {night}: {was} -> {is}");
    }
    let stay_nights = [arrival.to_string(), (arrival + chrono::Days::new(1)).to_string()];
    for ((night, was), (_, is)) in before.iter().zip(&after) {
        let expected = if stay_nights.contains(night) {
            was - 1
        } else {
            *was
        };
        if *is != expected {
            bail!("night {night}: {is} free, expected {expected}");
        }
    }
    println!("Availability dropped by one for exactly the two nights of the stay.");
    println!(
        "\n(The conversation above went through threadcart's webhooks, engine, outbox and payments worker for real,\n \
         against local Graph and Stripe APIs.)"
    );
    Ok(())
}
