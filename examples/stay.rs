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

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use anyhow::{Context, Result, anyhow, bail};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

const APP_SECRET: &str = "stay-example-secret";
const STRIPE_WEBHOOK_SECRET: &str = "whsec_stay_example";
const DEMO_KEY: &str = "tc_demo_dream_hotels_owner_key_000000000000000000000000000000000";

// The local Stripe API of the tests: test support code, where a poisoned lock may panic.
#[path = "../tests/api/stripe_fake.rs"]
#[allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod stripe_fake;
const PAGE_ID: &str = "100000000000002";
const SHOPPER: &str = "PSID-LEA";

type Inbox = Arc<Mutex<Vec<Value>>>;

/// The local Graph API: answers as Meta does and keeps the messages sent to the shopper.
async fn graph(req: HttpRequest, body: web::Bytes, inbox: web::Data<Inbox>) -> HttpResponse {
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if req.path().ends_with("/messages") {
        if let Some(message) = parsed.get("message")
            && let Ok(mut inbox) = inbox.lock()
        {
            inbox.push(message.clone());
            let id = format!("m_{}", inbox.len());
            return HttpResponse::Ok()
                .json(json!({"recipient_id": parsed["recipient"]["id"], "message_id": id}));
        }
        return HttpResponse::Ok().json(json!({"recipient_id": parsed["recipient"]["id"]}));
    }
    if req.method() == "GET" {
        return HttpResponse::Ok().json(json!({"first_name": "Léa", "locale": "en_GB", "timezone": 0}));
    }
    HttpResponse::Ok().json(json!({"result": "success"}))
}

/// Prints a message the way Messenger shows it.
fn show(message: &Value) {
    let payload = &message["attachment"]["payload"];
    if let Some(text) = message["text"].as_str() {
        println!("  Dream Hotels: {text}");
    }
    match payload["template_type"].as_str() {
        Some("generic") => {
            for card in payload["elements"].as_array().into_iter().flatten() {
                let buttons = titles(&card["buttons"]);
                println!(
                    "  ┌ {} — {}  {buttons}",
                    card["title"].as_str().unwrap_or_default(),
                    card["subtitle"].as_str().unwrap_or_default()
                );
            }
        }
        Some("receipt") => {
            println!(
                "  ┌ Receipt {} for {}",
                payload["order_number"].as_str().unwrap_or_default(),
                payload["recipient_name"].as_str().unwrap_or_default()
            );
            for line in payload["elements"].as_array().into_iter().flatten() {
                println!(
                    "  │ {} {} × {}  {} {}",
                    line["title"].as_str().unwrap_or_default(),
                    line["subtitle"].as_str().unwrap_or_default(),
                    line["quantity"],
                    line["price"],
                    payload["currency"].as_str().unwrap_or_default()
                );
            }
            println!(
                "  └ Total {} {}",
                payload["summary"]["total_cost"],
                payload["currency"].as_str().unwrap_or_default()
            );
        }
        Some("button") => {
            println!(
                "  Dream Hotels: {}  {}",
                payload["text"].as_str().unwrap_or_default(),
                titles(&payload["buttons"])
            );
        }
        _ => {}
    }
    if message["quick_replies"].is_array() {
        println!("  {}", titles(&message["quick_replies"]));
    }
}

fn titles(buttons: &Value) -> String {
    buttons
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| format!("[{}]", b["title"].as_str().unwrap_or_default()))
        .collect::<Vec<_>>()
        .join(" ")
}

struct Shopper {
    client: reqwest::Client,
    webhook: String,
    inbox: Inbox,
    seen: usize,
    n: u64,
}

impl Shopper {
    fn sign(body: &str) -> Result<String> {
        let mut mac = Hmac::<Sha256>::new_from_slice(APP_SECRET.as_bytes())?;
        mac.update(body.as_bytes());
        Ok(format!(
            "sha256={}",
            mac.finalize()
                .into_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        ))
    }

    /// Sends one messaging event, as Meta would, and prints the replies once they stop coming.
    async fn act(&mut self, what: &str, mut event: Value) -> Result<Vec<Value>> {
        self.n += 1;
        let now = chrono::Utc::now().timestamp_millis();
        event["sender"] = json!({"id": SHOPPER});
        event["recipient"] = json!({"id": PAGE_ID});
        event["timestamp"] = json!(now);
        let body = json!({"object": "page", "entry": [{"id": PAGE_ID, "time": now, "messaging": [event]}]})
            .to_string();
        println!("\n> {what}");
        let res = self
            .client
            .post(&self.webhook)
            .header("x-hub-signature-256", Self::sign(&body)?)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        if !res.status().is_success() {
            bail!("the webhook answered {}", res.status());
        }
        self.wait_for_replies().await
    }

    /// Waits for the workers' replies, until some arrive and then none for a moment; prints them.
    async fn wait_for_replies(&mut self) -> Result<Vec<Value>> {
        // Replies are sent by the workers: wait until some arrive and then none for a moment.
        let started = Instant::now();
        let mut last = (self.count(), Instant::now());
        while started.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let count = self.count();
            if count != last.0 {
                last = (count, Instant::now());
            } else if count > self.seen && last.1.elapsed() > Duration::from_millis(400) {
                break;
            }
        }
        let new: Vec<Value> = self
            .inbox
            .lock()
            .map_err(|_| anyhow!("inbox poisoned"))?
            .iter()
            .skip(self.seen)
            .cloned()
            .collect();
        self.seen += new.len();
        new.iter().for_each(show);
        Ok(new)
    }

    /// Posts a Stripe event about the session, signed as Stripe signs it, and prints what the shopper gets.
    async fn stripe_event(&mut self, what: &str, base: &str, session_id: &str) -> Result<Vec<Value>> {
        let now = chrono::Utc::now().timestamp();
        let body = json!({"id": format!("evt_shop_{}", uuid::Uuid::new_v4().simple()), "object": "event",
            "type": "checkout.session.completed", "created": now, "livemode": false,
            "data": {"object": {"id": session_id, "object": "checkout.session"}}})
        .to_string();
        let mut mac = Hmac::<Sha256>::new_from_slice(STRIPE_WEBHOOK_SECRET.as_bytes())?;
        mac.update(format!("{now}.{body}").as_bytes());
        let signature: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let res = self
            .client
            .post(format!("{base}/webhooks/stripe"))
            .header("stripe-signature", format!("t={now},v1={signature}"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        if !res.status().is_success() {
            bail!("the Stripe webhook answered {}", res.status());
        }
        println!("\n> {what}");
        self.wait_for_replies().await
    }

    fn count(&self) -> usize {
        self.inbox.lock().map(|i| i.len()).unwrap_or(0)
    }

    async fn tap(&mut self, replies: &[Value], title: &str) -> Result<Vec<Value>> {
        let (payload, quick) = find(replies, title).with_context(|| format!("no “{title}” to tap"))?;
        let event = if quick {
            json!({"message": {"mid": format!("m-{}", self.n), "text": title, "quick_reply": {"payload": payload}}})
        } else {
            json!({"postback": {"title": title, "payload": payload, "mid": format!("pb-{}", self.n)}})
        };
        self.act(&format!("Léa taps “{title}”"), event).await
    }

    async fn say(&mut self, text: &str) -> Result<Vec<Value>> {
        let event = json!({"message": {"mid": format!("m-{}", self.n), "text": text}});
        self.act(&format!("Léa types “{text}”"), event).await
    }
}

/// The payload of the button or quick reply titled `title`, and whether it is a quick reply.
fn find(replies: &[Value], title: &str) -> Option<(String, bool)> {
    for message in replies.iter().rev() {
        let payload = &message["attachment"]["payload"];
        let buttons = payload["elements"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|e| e["buttons"].as_array().into_iter().flatten())
            .chain(payload["buttons"].as_array().into_iter().flatten());
        for b in buttons {
            if b["title"] == title {
                return Some((b["payload"].as_str()?.to_owned(), false));
            }
        }
        for q in message["quick_replies"].as_array().into_iter().flatten() {
            if q["title"] == title {
                return Some((q["payload"].as_str()?.to_owned(), true));
            }
        }
    }
    None
}

#[actix_web::main]
async fn main() -> Result<()> {
    let dir = tempfile_dir()?;
    let inbox: Inbox = Arc::default();
    let data = web::Data::new(inbox.clone());
    let graph_server =
        HttpServer::new(move || App::new().app_data(data.clone()).default_service(web::to(graph)))
            .workers(1)
            .bind("127.0.0.1:0")?;
    let graph_base = format!("http://127.0.0.1:{}", graph_server.addrs()[0].port());
    actix_web::rt::spawn(graph_server.run());

    let stripe = stripe_fake::FakeStripe::start().await;
    let database_url = format!("sqlite://{}/stay.db", dir.display());
    let vars = [
        ("STRIPE_SECRET_KEY", "sk_test_stay_example"),
        ("STRIPE_API_BASE", stripe.base.as_str()),
        ("STRIPE_WEBHOOK_SECRET", STRIPE_WEBHOOK_SECRET),
        ("DATABASE_URL", database_url.as_str()),
        ("THREADCART_ADDR", "127.0.0.1:0"),
        ("GRAPH_API_BASE", graph_base.as_str()),
        ("MESSENGER_APP_SECRET", APP_SECRET),
        (
            "THREADCART_JWT_SECRET",
            "stay-example-jwt-secret-0123456789abcdef",
        ),
    ];
    let config = threadcart::config::Config::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    })?;
    let db = threadcart::db::Db::connect(config.database_url(), 4)?;
    threadcart::demo::load(&db)?;
    let app = threadcart::startup::Application::build(config, db)?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let webhook = format!("{base}/webhooks/messenger");
    actix_web::rt::spawn(app.run_until_stopped());

    let mut lea = Shopper {
        client: reqwest::Client::new(),
        webhook,
        inbox,
        seen: 0,
        n: 0,
    };
    let token: Value = lea
        .client
        .post(format!("{base}/v1/auth/token"))
        .json(&json!({"api_key": DEMO_KEY}))
        .send()
        .await?
        .json()
        .await?;
    let token = token["access_token"].as_str().context("no token")?.to_owned();
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
    let replies = match find(&replies, "No thanks") {
        Some(_) => lea.tap(&replies, "No thanks").await?,
        None => replies,
    };
    let replies = lea.tap(&replies, "Book and pay").await?;
    let pay = replies
        .iter()
        .flat_map(|m| {
            m["attachment"]["payload"]["buttons"]
                .as_array()
                .into_iter()
                .flatten()
        })
        .find(|b| b["type"] == "web_url")
        .context("no Pay button")?;
    println!(
        "\n> Léa taps “{}” and pays on Stripe's Checkout page ({})",
        pay["title"].as_str().unwrap_or_default(),
        pay["url"].as_str().unwrap_or_default()
    );
    let session = stripe
        .sessions()
        .into_iter()
        .find(|s| s["status"] == "open")
        .context("no open Checkout Session at Stripe")?;
    let session_id = session["id"].as_str().unwrap_or_default().to_owned();
    stripe.complete_session(&session_id);
    let replies = lea
        .stripe_event("Stripe sends checkout.session.completed", &base, &session_id)
        .await?;
    if !replies
        .iter()
        .any(|m| m["attachment"]["payload"]["template_type"] == "receipt")
    {
        bail!("no receipt reached the thread");
    }

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

/// A fresh directory for the example's database.
fn tempfile_dir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("threadcart-stay-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
