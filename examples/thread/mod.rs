//! What the example journeys share: a local Graph API that answers as Meta does and keeps what threadcart
//! sends to the shopper, the local Stripe API of the tests, threadcart itself on a temporary SQLite database
//! with the demo data, and a shopper who sends signed Messenger deliveries and prints the replies the way
//! Messenger shows them.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use anyhow::{Context, Result, anyhow, bail};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

// The local Stripe API of the tests: test support code, where a poisoned lock may panic.
#[path = "../../tests/api/stripe_fake.rs"]
#[allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]
pub mod stripe_fake;

const APP_SECRET: &str = "example-app-secret";
const STRIPE_WEBHOOK_SECRET: &str = "whsec_example";

type Inbox = Arc<Mutex<Vec<Value>>>;

/// Conversions API events the local Graph API received (`POST /{version}/{dataset_id}/events`); a type
/// of its own, as actix finds app data by type.
#[derive(Clone, Default)]
pub struct Datasets(pub Arc<Mutex<Vec<Value>>>);

/// The local Graph API: answers as Meta does and keeps the messages sent to the shopper.
async fn graph(
    req: HttpRequest,
    body: web::Bytes,
    inbox: web::Data<Inbox>,
    name: web::Data<&'static str>,
    datasets: web::Data<Datasets>,
) -> HttpResponse {
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if req.path().ends_with("/events") {
        if let Ok(mut received) = datasets.0.lock() {
            received.push(parsed);
        }
        return HttpResponse::Ok().json(json!({"events_received": 1, "fbtrace_id": "local"}));
    }
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
        return HttpResponse::Ok().json(json!({"first_name": **name, "locale": "en_GB", "timezone": 0}));
    }
    HttpResponse::Ok().json(json!({"result": "success"}))
}

/// Prints a message the way Messenger shows it.
pub fn show(business: &str, message: &Value) {
    let payload = &message["attachment"]["payload"];
    if let Some(text) = message["text"].as_str() {
        println!("  {business}: {text}");
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
                "  {business}: {}  {}",
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

pub struct Shopper {
    /// Talks to threadcart.
    pub client: reqwest::Client,
    /// threadcart's base URL.
    pub base: String,
    /// What the local Graph API received for the Conversions API (read by the shop example only).
    #[allow(dead_code)]
    pub datasets: Datasets,
    /// The business's name, as the thread shows it.
    business: &'static str,
    /// The shopper's first name.
    name: &'static str,
    page_id: &'static str,
    psid: &'static str,
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
    pub async fn act(&mut self, what: &str, mut event: Value) -> Result<Vec<Value>> {
        self.n += 1;
        let now = chrono::Utc::now().timestamp_millis();
        event["sender"] = json!({"id": self.psid});
        event["recipient"] = json!({"id": self.page_id});
        event["timestamp"] = json!(now);
        let body =
            json!({"object": "page", "entry": [{"id": self.page_id, "time": now, "messaging": [event]}]})
                .to_string();
        println!("\n> {what}");
        let res = self
            .client
            .post(format!("{}/webhooks/messenger", self.base))
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
        new.iter().for_each(|m| show(self.business, m));
        Ok(new)
    }

    /// Posts a Stripe event about the session, signed as Stripe signs it, and prints what the shopper gets.
    pub async fn stripe_event(&mut self, what: &str, session_id: &str) -> Result<Vec<Value>> {
        let base = self.base.clone();
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

    pub async fn tap(&mut self, replies: &[Value], title: &str) -> Result<Vec<Value>> {
        let (payload, quick) = find(replies, title).with_context(|| format!("no “{title}” to tap"))?;
        let event = if quick {
            json!({"message": {"mid": format!("m-{}", self.n), "text": title, "quick_reply": {"payload": payload}}})
        } else {
            json!({"postback": {"title": title, "payload": payload, "mid": format!("pb-{}", self.n)}})
        };
        self.act(&format!("{} taps “{title}”", self.name), event).await
    }

    pub async fn say(&mut self, text: &str) -> Result<Vec<Value>> {
        let event = json!({"message": {"mid": format!("m-{}", self.n), "text": text}});
        self.act(&format!("{} types “{text}”", self.name), event).await
    }
}

/// The payload of the button or quick reply titled `title`, and whether it is a quick reply.
pub fn find(replies: &[Value], title: &str) -> Option<(String, bool)> {
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

/// threadcart, the local Graph and Stripe APIs, and the shopper `name` (`psid`) talking to the demo
/// business of `page_id`.
pub async fn start(
    business: &'static str,
    page_id: &'static str,
    psid: &'static str,
    name: &'static str,
) -> Result<(Shopper, stripe_fake::FakeStripe)> {
    let dir = std::env::temp_dir().join(format!("threadcart-example-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let inbox: Inbox = Arc::default();
    let datasets = Datasets::default();
    let (data, first_name) = (web::Data::new(inbox.clone()), web::Data::new(name));
    let events = web::Data::new(datasets.clone());
    let graph_server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(first_name.clone())
            .app_data(events.clone())
            .default_service(web::to(graph))
    })
    .workers(1)
    .bind("127.0.0.1:0")?;
    let graph_base = format!("http://127.0.0.1:{}", graph_server.addrs()[0].port());
    actix_web::rt::spawn(graph_server.run());

    let stripe = stripe_fake::FakeStripe::start().await;
    let database_url = format!("sqlite://{}/example.db", dir.display());
    let vars = [
        ("STRIPE_SECRET_KEY", "sk_test_example"),
        ("STRIPE_API_BASE", stripe.base.as_str()),
        ("STRIPE_WEBHOOK_SECRET", STRIPE_WEBHOOK_SECRET),
        ("DATABASE_URL", database_url.as_str()),
        ("THREADCART_ADDR", "127.0.0.1:0"),
        ("GRAPH_API_BASE", graph_base.as_str()),
        ("MESSENGER_APP_SECRET", APP_SECRET),
        ("THREADCART_JWT_SECRET", "example-jwt-secret-0123456789abcdef0123"),
    ];
    let config = threadcart::config::Config::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    })?;
    let db = threadcart::db::Db::connect(config.database_url(), 4)?;
    threadcart::demo::load(&db, &config.secrets()?)?;
    let app = threadcart::startup::Application::build(config, db)?;
    let base = format!("http://127.0.0.1:{}", app.port());
    actix_web::rt::spawn(app.run_until_stopped());
    let shopper = Shopper {
        client: reqwest::Client::new(),
        base,
        datasets,
        business,
        name,
        page_id,
        psid,
        inbox,
        seen: 0,
        n: 0,
    };
    Ok((shopper, stripe))
}

impl Shopper {
    /// An access token for the demo merchant's public `api_key`.
    pub async fn token(&self, api_key: &str) -> Result<String> {
        let token: Value = self
            .client
            .post(format!("{}/v1/auth/token", self.base))
            .json(&json!({"api_key": api_key}))
            .send()
            .await?
            .json()
            .await?;
        Ok(token["access_token"].as_str().context("no token")?.to_owned())
    }

    /// Taps the Pay button among `replies`, pays on the local Stripe's Checkout page and lets Stripe's
    /// signed webhook confirm it; fails without a receipt in the thread.
    pub async fn pay(&mut self, replies: &[Value], stripe: &stripe_fake::FakeStripe) -> Result<Vec<Value>> {
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
            "\n> {} taps “{}” and pays on Stripe's Checkout page ({})",
            self.name,
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
        let replies = self
            .stripe_event("Stripe sends checkout.session.completed", &session_id)
            .await?;
        if !replies
            .iter()
            .any(|m| m["attachment"]["payload"]["template_type"] == "receipt")
        {
            bail!("no receipt reached the thread");
        }
        Ok(replies)
    }
}
