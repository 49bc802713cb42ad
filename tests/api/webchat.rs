//! The merchant's web chat through its public API, as the widget calls it: a visitor arrives from a link
//! naming a product, shops, pays on Stripe's page and reads the receipt on the event stream; tokens,
//! origins and sizes are held to their rules.

use std::time::Duration;

use serde_json::{Value, json};

use crate::checkout::{post_stripe_event, shop_with_stripe};
use crate::helpers::{MessengerApp, assert_problem, eventually, spawn_messenger_app};
use crate::stripe_fake::FakeStripe;

const SITE: &str = "https://comfy.example";

/// The merchant's web chat key, with [`SITE`] allowed.
async fn webchat_key(m: &MessengerApp) -> String {
    let res = m
        .app
        .request(
            reqwest::Method::PUT,
            "/v1/webchat",
            &m.merchant.token,
            Some(json!({"allowed_origins": [SITE]})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["allowed_origins"], json!([SITE]));
    body["public_key"].as_str().unwrap().to_owned()
}

/// A visitor's browser on [`SITE`].
struct Visitor<'a> {
    m: &'a MessengerApp,
    conversation: String,
    token: String,
}

async fn open(m: &MessengerApp, body: Value, token: Option<&str>) -> reqwest::Response {
    let mut req = m
        .app
        .client
        .post(format!("{}/webchat/v1/conversations", m.app.address))
        .header("origin", SITE)
        .json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

impl<'a> Visitor<'a> {
    async fn arrive(m: &'a MessengerApp, key: &str, body: Value) -> Visitor<'a> {
        let mut body = body;
        body["key"] = key.into();
        let res = open(m, body, None).await;
        assert_eq!(res.status(), 201);
        assert_eq!(res.headers()["access-control-allow-origin"], SITE);
        let opened: Value = res.json().await.unwrap();
        Visitor {
            m,
            conversation: opened["conversation_id"].as_str().unwrap().to_owned(),
            token: opened["visitor_token"].as_str().unwrap().to_owned(),
        }
    }

    fn url(&self, tail: &str) -> String {
        format!(
            "{}/webchat/v1/conversations/{}/{tail}",
            self.m.app.address, self.conversation
        )
    }

    async fn messages(&self) -> Vec<Value> {
        let res = self
            .m
            .app
            .client
            .get(self.url("messages"))
            .header("origin", SITE)
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        body["data"].as_array().unwrap().clone()
    }

    /// Waits for a message from the business that `pick` accepts.
    async fn reply(&self, what: &str, pick: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..200 {
            if let Some(m) = self
                .messages()
                .await
                .into_iter()
                .find(|m| m["direction"] == "out" && pick(m))
            {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no reply: {what}; messages: {:#?}", self.messages().await)
    }

    async fn say(&self, body: Value) -> reqwest::Response {
        self.m
            .app
            .client
            .post(self.url("messages"))
            .header("origin", SITE)
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn tap(&self, title: &str, payload: &str) {
        let res = self.say(json!({"payload": payload, "title": title})).await;
        assert_eq!(res.status(), 202);
    }
}

fn payload_of<'v>(buttons: &'v Value, title: &str) -> &'v str {
    buttons
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["title"] == title)
        .unwrap_or_else(|| panic!("no button {title} in {buttons}"))["payload"]
        .as_str()
        .unwrap()
}

/// Reads the event stream until `pick` accepts an event's data; answers it and the ids seen.
pub(crate) async fn stream_until(
    res: &mut reqwest::Response,
    pick: impl Fn(&Value) -> bool,
) -> (Value, Vec<String>) {
    let mut buffer = String::new();
    let mut ids = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let chunk = tokio::time::timeout_at(deadline, res.chunk())
            .await
            .expect("no event in time")
            .unwrap()
            .expect("the stream ended");
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            let mut data = None;
            for line in event.lines() {
                if let Some(id) = line.strip_prefix("id: ") {
                    ids.push(id.to_owned());
                }
                if let Some(d) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str::<Value>(d).unwrap());
                }
            }
            if let Some(data) = data
                && pick(&data)
            {
                return (data, ids);
            }
        }
    }
}

async fn paid_through_the_web_chat<'m>(m: &'m MessengerApp, stripe: &FakeStripe) -> (Visitor<'m>, String) {
    let key = webchat_key(m).await;
    let v = Visitor::arrive(
        m,
        &key,
        json!({"ref": "c=xmas24_p=SLIP-01", "page_url": format!("{SITE}/slippers?utm_source=newsletter"),
               "utm": {"utm_source": "newsletter", "utm_campaign": "winter"}, "name": "Anna"}),
    )
    .await;

    let card = v.reply("the product card", |m| m["cards"].is_array()).await;
    assert_eq!(card["cards"][0]["title"], "Comfy slippers");
    let greeting = v.messages().await;
    assert!(
        crate::graph::is_disclosure(greeting[0]["text"].as_str().unwrap_or_default()),
        "the web chat's first message says an automated assistant answers: {}",
        greeting[0]
    );
    assert_eq!(
        greeting[1]["text"],
        "Hi Anna! Here is the product you asked about:"
    );
    v.tap(
        "Choose size",
        payload_of(&card["cards"][0]["buttons"], "Choose size"),
    )
    .await;
    let sizes = v.reply("the sizes", |m| m["quick_replies"].is_array()).await;
    v.tap("42", payload_of(&sizes["quick_replies"], "42")).await;
    let total = v
        .reply("the cart", |m| {
            m["text"].as_str().is_some_and(|t| t.starts_with("Your cart"))
        })
        .await;
    v.tap("Checkout", payload_of(&total["buttons"], "Checkout")).await;
    let pay = v.reply("the pay link", |m| m["buttons"][0]["pay"] == true).await;
    assert_eq!(pay["buttons"][0]["title"], "Pay 49.90 EUR");
    assert!(pay["buttons"][0]["url"].as_str().unwrap().starts_with("http"));

    let orders: Value = m
        .app
        .get("/v1/orders", &m.merchant.token)
        .await
        .json()
        .await
        .unwrap();
    let order = &orders["data"][0];
    assert_eq!(order["channel"], "webchat");
    let session = order["stripe_session_id"].as_str().unwrap().to_owned();
    stripe.complete_session(&session);
    (v, session)
}

#[tokio::test]
async fn a_web_chat_visitor_from_a_link_buys_and_reads_the_receipt_on_the_event_stream() {
    let (m, stripe) = shop_with_stripe().await;
    let (v, session) = paid_through_the_web_chat(&m, &stripe).await;
    let last = v.messages().await.last().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut stream = m
        .app
        .client
        .get(v.url("events"))
        .header("origin", SITE)
        .header("last-event-id", &last)
        .bearer_auth(&v.token)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    assert_eq!(stream.headers()["access-control-allow-origin"], SITE);

    post_stripe_event(&m, "checkout.session.completed", &session).await;

    let (receipt, ids) = stream_until(&mut stream, |d| d["receipt"].is_object()).await;
    assert_eq!(
        receipt["receipt"]["total"],
        json!({"amount": "49.90", "currency": "EUR"})
    );
    assert_eq!(receipt["receipt"]["lines"][0]["title"], "Comfy slippers");
    assert_eq!(receipt["direction"], "out");
    assert_eq!(ids.last().unwrap(), receipt["id"].as_str().unwrap());
    assert!(!ids.contains(&last), "the stream resumes after Last-Event-ID");

    let orders: Value = m
        .app
        .get("/v1/orders?status=paid", &m.merchant.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(orders["data"][0]["receipt"], "sent");
    // No Send API call is ever made for a web chat thread, and no Conversions API event.
    assert!(m.graph.messages().is_empty());
    assert!(m.graph.events().is_empty());
}

#[tokio::test]
async fn a_web_chat_arrival_is_a_touch_with_its_ref_page_and_utm_and_the_purchase_is_in_the_funnel() {
    let (m, stripe) = shop_with_stripe().await;
    let (v, session) = paid_through_the_web_chat(&m, &stripe).await;
    post_stripe_event(&m, "checkout.session.completed", &session).await;
    v.reply("the receipt", |m| m["receipt"].is_object()).await;

    let thread: Value = m
        .app
        .get(&format!("/v1/threads/{}", v.conversation), &m.merchant.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(thread["channel"], "webchat");
    assert_eq!(thread["page_id"], Value::Null);
    let touch = &thread["touches"][0];
    assert_eq!(touch["source"], "WEBCHAT");
    assert_eq!(touch["channel"], "webchat");
    assert_eq!(touch["ref"], "c=xmas24_p=SLIP-01");
    assert_eq!(
        touch["page_url"],
        format!("{SITE}/slippers?utm_source=newsletter")
    );
    assert_eq!(touch["utm"]["utm_campaign"], "winter");

    let webchat_only: Value = m
        .app
        .get("/v1/threads?channel=webchat", &m.merchant.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(webchat_only["data"].as_array().unwrap().len(), 1);
    let messenger_only: Value = m
        .app
        .get("/v1/threads?channel=messenger", &m.merchant.token)
        .await
        .json()
        .await
        .unwrap();
    assert!(messenger_only["data"].as_array().unwrap().is_empty());

    let today = chrono::Utc::now().date_naive();
    let range = format!(
        "from={}&to={}",
        today - chrono::Days::new(1),
        today + chrono::Days::new(1)
    );
    let by_channel: Value = m
        .app
        .get(
            &format!("/v1/reports/funnel?{range}&group_by=channel&tz=UTC"),
            &m.merchant.token,
        )
        .await
        .json()
        .await
        .unwrap();
    let row = by_channel["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "webchat")
        .unwrap();
    assert_eq!(row["purchases"], 1);
    assert_eq!(row["revenue"], json!([{"amount": "49.90", "currency": "EUR"}]));
    let by_campaign: Value = m
        .app
        .get(
            &format!("/v1/reports/funnel?{range}&group_by=campaign"),
            &m.merchant.token,
        )
        .await
        .json()
        .await
        .unwrap();
    let row = by_campaign["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "xmas24")
        .unwrap();
    assert_eq!(
        (row["referrals"].clone(), row["purchases"].clone()),
        (json!(1), json!(1))
    );
}

#[tokio::test]
async fn a_visitor_resumes_their_conversation_with_their_token_and_the_new_arrival_is_a_touch() {
    let m = spawn_messenger_app().await;
    let key = webchat_key(&m).await;
    let v = Visitor::arrive(&m, &key, json!({})).await;
    let greeting = v.reply("the greeting", |m| m["quick_replies"].is_array()).await;
    assert!(
        greeting["text"]
            .as_str()
            .unwrap()
            .starts_with("Hi! Welcome to Comfy Shoes.")
    );

    let again = open(&m, json!({"key": key, "ref": "p=SLIP-01"}), Some(&v.token)).await;
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["conversation_id"], v.conversation.as_str());
    assert_eq!(again["visitor_token"], v.token.as_str());
    v.reply("the card of the product the link names", |m| {
        m["cards"][0]["title"] == "Comfy slippers"
    })
    .await;

    let quiet = open(&m, json!({"key": key}), Some(&v.token)).await;
    assert_eq!(quiet.status(), 200);
    let thread_url = format!("/v1/threads/{}", v.conversation);
    eventually("three touches", || async {
        let t: Value = m
            .app
            .get(&thread_url, &m.merchant.token)
            .await
            .json()
            .await
            .unwrap();
        t["touches"].as_array().map(Vec::len) == Some(3)
    })
    .await;
    // A visit that names nothing is a touch, not a new answer: the history ends with the card.
    let last = v.messages().await.last().unwrap().clone();
    assert_eq!(last["cards"][0]["title"], "Comfy slippers");
}

#[tokio::test]
async fn a_visitor_token_opens_only_its_own_conversation() {
    let m = spawn_messenger_app().await;
    let key = webchat_key(&m).await;
    let anna = Visitor::arrive(&m, &key, json!({})).await;
    let ben = Visitor::arrive(&m, &key, json!({})).await;

    let as_ben = Visitor {
        m: &m,
        conversation: anna.conversation.clone(),
        token: ben.token.clone(),
    };
    let read = m
        .app
        .client
        .get(as_ben.url("messages"))
        .bearer_auth(&as_ben.token)
        .send()
        .await
        .unwrap();
    assert_problem(read, 404, "not_found").await;
    assert_problem(as_ben.say(json!({"text": "hi"})).await, 404, "not_found").await;
    let none = m.app.client.get(anna.url("messages")).send().await.unwrap();
    assert_problem(none, 401, "missing_token").await;
    let forged = m
        .app
        .client
        .get(anna.url("events"))
        .bearer_auth("wv_forged")
        .send()
        .await
        .unwrap();
    assert_problem(forged, 401, "invalid_visitor_token").await;
    // A token of one merchant's web chat does not resume another's conversation: a new one begins.
    let res = open(&m, json!({"key": key}), Some("wv_forged")).await;
    assert_eq!(res.status(), 201);
}

#[tokio::test]
async fn a_page_of_an_origin_the_web_chat_does_not_allow_is_refused() {
    let m = spawn_messenger_app().await;
    let key = webchat_key(&m).await;
    let v = Visitor::arrive(&m, &key, json!({})).await;

    let res = m
        .app
        .client
        .post(format!("{}/webchat/v1/conversations", m.app.address))
        .header("origin", "https://evil.example")
        .json(&json!({"key": key}))
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
    assert_problem(res, 403, "origin_not_allowed").await;

    let read = m
        .app
        .client
        .get(v.url("messages"))
        .header("origin", "https://evil.example")
        .bearer_auth(&v.token)
        .send()
        .await
        .unwrap();
    assert!(read.headers().get("access-control-allow-origin").is_none());
    assert_problem(read, 403, "origin_not_allowed").await;

    let preflight = |origin: &'static str, path: String| {
        m.app
            .client
            .request(reqwest::Method::OPTIONS, format!("{}{path}", m.app.address))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization, content-type")
            .send()
    };
    let ok = preflight(SITE, "/webchat/v1/conversations".into()).await.unwrap();
    assert_eq!(ok.status(), 204);
    assert_eq!(ok.headers()["access-control-allow-origin"], SITE);
    assert!(
        ok.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("authorization")
    );
    let path = format!("/webchat/v1/conversations/{}/messages", v.conversation);
    let ok = preflight(SITE, path.clone()).await.unwrap();
    assert_eq!(ok.status(), 204);
    let refused = preflight("https://evil.example", path).await.unwrap();
    assert_eq!(refused.status(), 403);
    assert!(refused.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn the_web_chat_refuses_unknown_keys_bad_sizes_and_bad_origins_clearly() {
    let m = spawn_messenger_app().await;
    let key = webchat_key(&m).await;
    let unknown = open(&m, json!({"key": "wc_nope"}), None).await;
    assert_problem(unknown, 404, "unknown_webchat_key").await;
    let bad_url = open(&m, json!({"key": key, "page_url": "javascript:alert(1)"}), None).await;
    assert_problem(bad_url, 422, "validation_failed").await;

    let v = Visitor::arrive(&m, &key, json!({})).await;
    assert_problem(
        v.say(json!({"text": "x".repeat(2001)})).await,
        422,
        "validation_failed",
    )
    .await;
    assert_problem(v.say(json!({"text": "   "})).await, 422, "validation_failed").await;
    assert_problem(
        v.say(json!({"text": "a", "payload": "b"})).await,
        422,
        "validation_failed",
    )
    .await;
    let huge = v.say(json!({"text": "x".repeat(20_000)})).await;
    assert_problem(huge, 413, "payload_too_large").await;

    let bad = m
        .app
        .request(
            reqwest::Method::PUT,
            "/v1/webchat",
            &m.merchant.token,
            Some(json!({"allowed_origins": ["https://ok.example", "https://bad.example/path", "shop.example"]})),
        )
        .await;
    let problem = assert_problem(bad, 422, "validation_failed").await;
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["allowed_origins[1]", "allowed_origins[2]"]);
    let agent = m.app.key_with_role(&m.merchant, "agent").await;
    let refused = m.app.get("/v1/webchat", &agent.token).await;
    assert_eq!(refused.status(), 403);
}

#[tokio::test]
async fn a_retried_message_with_the_same_client_id_is_taken_once() {
    let m = spawn_messenger_app().await;
    let key = webchat_key(&m).await;
    let v = Visitor::arrive(&m, &key, json!({})).await;
    v.reply("the greeting", |m| m["quick_replies"].is_array()).await;

    for _ in 0..2 {
        let res = v.say(json!({"text": "wool socks", "client_id": "c-1"})).await;
        assert_eq!(res.status(), 202);
    }
    v.reply("the search answer", |m| {
        m["text"].as_str().is_some_and(|t| t.contains("wool socks"))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let from_visitor = v
        .messages()
        .await
        .into_iter()
        .filter(|m| m["direction"] == "in" && m["text"] == "wool socks")
        .count();
    assert_eq!(from_visitor, 1);
}

#[tokio::test]
async fn a_visitor_who_says_too_much_too_fast_is_told_to_wait() {
    let m = spawn_messenger_app().await;
    let key = webchat_key(&m).await;
    let v = Visitor::arrive(&m, &key, json!({})).await;

    for i in 0..20 {
        let res = v.say(json!({"text": format!("hello {i}")})).await;
        assert_eq!(res.status(), 202, "message {i}");
    }
    let refused = v.say(json!({"text": "one more"})).await;
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(refused.headers()["access-control-allow-origin"], SITE);
    assert_problem(refused, 429, "rate_limited").await;
    // Another visitor is not held back.
    let other = Visitor::arrive(&m, &key, json!({})).await;
    assert_eq!(other.say(json!({"text": "hi"})).await.status(), 202);
}

#[tokio::test]
async fn one_address_opening_conversations_without_end_is_told_to_wait() {
    let m = spawn_messenger_app().await;
    let key = webchat_key(&m).await;
    for i in 0..30 {
        let res = open(&m, json!({"key": key}), None).await;
        assert_eq!(res.status(), 201, "opening {i}");
    }
    assert_problem(open(&m, json!({"key": key}), None).await, 429, "rate_limited").await;
}

#[tokio::test]
async fn a_web_chat_visitor_who_left_a_cart_reads_its_reminder_when_back() {
    let m = spawn_messenger_app().await;
    let key = webchat_key(&m).await;
    let v = Visitor::arrive(&m, &key, json!({"ref": "p=SLIP-01", "name": "Anna"})).await;
    let card = v.reply("the product card", |m| m["cards"].is_array()).await;
    v.tap(
        "Choose size",
        payload_of(&card["cards"][0]["buttons"], "Choose size"),
    )
    .await;
    let sizes = v.reply("the sizes", |m| m["quick_replies"].is_array()).await;
    v.tap("42", payload_of(&sizes["quick_replies"], "42")).await;
    v.reply("the cart", |m| {
        m["text"].as_str().is_some_and(|t| t.starts_with("Your cart"))
    })
    .await;

    // The visitor closes the tab; an hour and five minutes pass (the web chat has no window).
    let thread: threadcart::kernel::ThreadId = v.conversation.parse().unwrap();
    m.app
        .db
        .query_blocking(move |conn| {
            threadcart::dev::clock::advance(conn, thread, chrono::Duration::minutes(65))
        })
        .unwrap();

    let reminder = v
        .reply("the cart reminder", |m| {
            m["text"].as_str().is_some_and(|t| t.starts_with("You left"))
        })
        .await;
    assert_eq!(
        reminder["text"],
        "You left 1 item in your cart. It is kept for you: check out whenever you are ready."
    );
    let after: Vec<Value> = v
        .messages()
        .await
        .into_iter()
        .skip_while(|m| m["text"] != reminder["text"])
        .collect();
    assert!(
        after.iter().any(|m| m["buttons"]
            .as_array()
            .is_some_and(|b| b.iter().any(|b| b["title"] == "Checkout"))),
        "the cart follows with its Checkout button: {after:#?}"
    );
}
