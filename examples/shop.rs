//! Shops the demo shoe shop end to end through signed webhook calls, and prints the conversation as the
//! shopper would see it in Messenger.
//!
//! It starts threadcart on a temporary SQLite database with the demo data, and a local Graph API that
//! receives what threadcart sends; then a shopper clicks an ad for the slippers, picks size 42, takes the
//! socks offer, types the demo code and checks out. Every step goes through the real path: signed
//! `POST /webhooks/messenger`, the inbox, the engine, the outbox, the Send API over HTTP.
//!
//! `cargo run --example shop`

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use anyhow::{Context, Result, anyhow, bail};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

const APP_SECRET: &str = "shop-example-secret";
const PAGE_ID: &str = "100000000000001";
const SHOPPER: &str = "PSID-ANNA";

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
        return HttpResponse::Ok().json(json!({"first_name": "Anna", "locale": "en_GB", "timezone": 0}));
    }
    HttpResponse::Ok().json(json!({"result": "success"}))
}

/// Prints a message the way Messenger shows it.
fn show(message: &Value) {
    let payload = &message["attachment"]["payload"];
    if let Some(text) = message["text"].as_str() {
        println!("  Comfy Shoes: {text}");
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
        Some("button") => {
            println!(
                "  Comfy Shoes: {}  {}",
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
        self.act(&format!("Anna taps “{title}”"), event).await
    }

    async fn say(&mut self, text: &str) -> Result<Vec<Value>> {
        let event = json!({"message": {"mid": format!("m-{}", self.n), "text": text}});
        self.act(&format!("Anna types “{text}”"), event).await
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

    let database_url = format!("sqlite://{}/shop.db", dir.display());
    let vars = [
        ("DATABASE_URL", database_url.as_str()),
        ("THREADCART_ADDR", "127.0.0.1:0"),
        ("GRAPH_API_BASE", graph_base.as_str()),
        ("MESSENGER_APP_SECRET", APP_SECRET),
        (
            "THREADCART_JWT_SECRET",
            "shop-example-jwt-secret-0123456789abcdef",
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
    let webhook = format!("http://127.0.0.1:{}/webhooks/messenger", app.port());
    actix_web::rt::spawn(app.run_until_stopped());

    println!("Anna sees an ad for Comfy slippers on Facebook and taps “Send message”.");
    let mut anna = Shopper {
        client: reqwest::Client::new(),
        webhook,
        inbox,
        seen: 0,
        n: 0,
    };
    let ad = json!({"postback": {"title": "Get Started", "payload": "GET_STARTED", "mid": "pb-ad",
        "referral": {"ref": "c=xmas24", "ad_id": "AD-XMAS-SLIPPERS", "source": "ADS", "type": "OPEN_THREAD",
                     "ads_context_data": {"ad_title": "Comfy slippers", "product_id": "SLIP-01", "post_id": "POST-1"}}}});
    let replies = anna.act("Anna taps “Get Started” under the ad", ad).await?;
    let replies = anna.tap(&replies, "Choose size").await?;
    let replies = anna.tap(&replies, "42").await?;
    let replies = match find(&replies, "Yes, add it") {
        Some(_) => anna.tap(&replies, "Yes, add it").await?,
        None => replies,
    };
    let _ = replies;
    let replies = anna.say("welcome10").await?;
    anna.tap(&replies, "Checkout").await?;
    println!("\n(The conversation above went through threadcart's webhook, engine and outbox for real.)");
    Ok(())
}

/// A fresh directory for the example's database.
fn tempfile_dir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("threadcart-shop-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
