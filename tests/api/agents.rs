//! Agents are people: the owner adds them with their own keys, they say when they are online, and a
//! thread handed to a person goes to the agent who speaks the shopper's language and has room, waits
//! in the queue when nobody has, and goes to the next when its agent stays silent. Through real HTTP,
//! the webhook, the workers and the local Graph server.

use serde_json::{Value, json};
use threadcart::dev::clock;

use crate::helpers::{
    MessengerApp, PAGE_ID, assert_problem, delivery, eventually, now_ms, spawn_messenger_app, text_message,
};

/// An agent of the shop, with the token of their own key.
pub(crate) struct TestAgent {
    pub(crate) id: String,
    pub(crate) token: String,
}

async fn add_agent(
    m: &MessengerApp,
    name: &str,
    email: &str,
    languages: &[&str],
    max_threads: i64,
) -> TestAgent {
    add_skilled_agent(m, name, email, languages, &[], max_threads).await
}

/// Adds an agent who knows `skills`.
pub(crate) async fn add_skilled_agent(
    m: &MessengerApp,
    name: &str,
    email: &str,
    languages: &[&str],
    skills: &[&str],
    max_threads: i64,
) -> TestAgent {
    let res = m
        .app
        .post(
            "/v1/agents",
            &m.merchant.token,
            json!({"name": name, "email": email, "languages": languages, "skills": skills,
                   "max_threads": max_threads}),
        )
        .await;
    assert_eq!(res.status(), 201, "adding {name}");
    let body: Value = res.json().await.unwrap();
    let token = m.app.token(body["api_key"]["key"].as_str().unwrap()).await;
    TestAgent {
        id: body["id"].as_str().unwrap().to_owned(),
        token,
    }
}

pub(crate) async fn go_online(m: &MessengerApp, agent: &TestAgent) {
    let res = set_presence(&m.app, &agent.token, "online").await;
    assert_eq!(res.status(), 200);
}

/// `PUT /v1/agents/me/presence` with `token`.
async fn set_presence(app: &crate::helpers::TestApp, token: &str, status: &str) -> reqwest::Response {
    app.request(
        reqwest::Method::PUT,
        "/v1/agents/me/presence",
        token,
        Some(json!({"status": status})),
    )
    .await
}

/// The shopper `psid` writes, then asks for a person; answers their thread's id.
pub(crate) async fn asks_for_a_person(m: &MessengerApp, psid: &str) -> String {
    for (i, text) in ["hello", "human"].into_iter().enumerate() {
        let mid = format!("m-{psid}-{i}");
        let res = m
            .app
            .post_webhook(&delivery(PAGE_ID, vec![text_message(psid, now_ms(), &mid, text)]))
            .await;
        assert_eq!(res.status(), 200);
    }
    let psid = psid.to_owned();
    let mut thread = None;
    for _ in 0..200 {
        let p = psid.clone();
        thread = m
            .app
            .db
            .query_blocking(move |conn| clock::thread_of(conn, PAGE_ID, &p))
            .unwrap();
        if let Some(t) = thread
            && thread_of(m, &t.to_string()).await["queued_at"].is_string()
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    thread.expect("the shopper's thread").to_string()
}

pub(crate) async fn thread_of(m: &MessengerApp, id: &str) -> Value {
    m.app
        .get(&format!("/v1/threads/{id}"), &m.merchant.token)
        .await
        .json()
        .await
        .unwrap()
}

pub(crate) async fn assigned_to(m: &MessengerApp, thread: &str) -> Option<String> {
    thread_of(m, thread).await["assigned_agent_id"]
        .as_str()
        .map(str::to_owned)
}

#[tokio::test]
async fn an_owner_adds_an_agent_whose_own_key_is_shown_once_and_stops_working_when_removed() {
    let m = spawn_messenger_app().await;

    let res = m
        .app
        .post(
            "/v1/agents",
            &m.merchant.token,
            json!({"name": "Léa", "email": "Lea@Example.com", "languages": ["fr", "en"],
                   "skills": ["slippers"], "max_threads": 3}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let key = created["api_key"]["key"].as_str().unwrap().to_owned();
    let token = m.app.token(&key).await;
    let listed: Value = m
        .app
        .get("/v1/agents", &m.merchant.token)
        .await
        .json()
        .await
        .unwrap();
    let again = m
        .app
        .post(
            "/v1/agents",
            &m.merchant.token,
            json!({"name": "Léa bis", "email": "lea@example.com"}),
        )
        .await;
    let bad = m
        .app
        .post(
            "/v1/agents",
            &m.merchant.token,
            json!({"name": "", "email": "nope", "languages": ["french"], "max_threads": 0}),
        )
        .await;
    let as_agent = m
        .app
        .post(
            "/v1/agents",
            &token,
            json!({"name": "Me", "email": "me@example.com"}),
        )
        .await;
    let patched: Value = m
        .app
        .patch(
            &format!("/v1/agents/{id}"),
            &m.merchant.token,
            json!({"max_threads": 5}),
        )
        .await
        .json()
        .await
        .unwrap();
    let removed = m.app.delete(&format!("/v1/agents/{id}"), &m.merchant.token).await;
    let after = m.app.post_token(&key).await;

    assert_eq!(created["email"], "lea@example.com");
    assert_eq!(created["languages"], json!(["fr", "en"]));
    assert_eq!(created["presence"], "offline");
    assert_eq!(created["api_key"]["role"], "agent");
    assert!(key.starts_with("tc_"));
    assert_eq!(listed["data"][0]["id"], id.as_str());
    assert!(
        listed["data"][0].get("api_key").is_none(),
        "the key is shown once"
    );
    assert_problem(again, 409, "email_taken").await;
    let problem = assert_problem(bad, 422, "validation_failed").await;
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["name", "email", "languages", "max_threads"]);
    assert_problem(as_agent, 403, "forbidden").await;
    assert_eq!(patched["max_threads"], 5);
    assert_eq!(patched["name"], "Léa", "what the change does not name stays");
    assert_eq!(removed.status(), 204);
    assert_eq!(after.status(), 401, "the removed agent's key no longer works");
}

#[tokio::test]
async fn only_an_agents_own_key_sets_a_presence_and_it_is_one_of_three() {
    let m = spawn_messenger_app().await;
    let lea = add_agent(&m, "Léa", "lea@example.com", &["fr"], 3).await;

    let owner = set_presence(&m.app, &m.merchant.token, "online").await;
    let wrong = set_presence(&m.app, &lea.token, "busy").await;
    go_online(&m, &lea).await;
    let shown: Value = m
        .app
        .get(&format!("/v1/agents/{}", lea.id), &m.merchant.token)
        .await
        .json()
        .await
        .unwrap();

    assert_problem(owner, 403, "forbidden").await;
    assert_problem(wrong, 422, "validation_failed").await;
    assert_eq!(shown["presence"], "online");
    assert!(shown["presence_at"].is_string());
}

#[tokio::test]
async fn a_french_shopper_who_asks_for_a_person_goes_to_the_french_agent() {
    let m = spawn_messenger_app().await;
    let ben = add_agent(&m, "Ben", "ben@example.com", &["en"], 3).await;
    let lea = add_agent(&m, "Léa", "lea@example.com", &["fr"], 3).await;
    go_online(&m, &ben).await;
    go_online(&m, &lea).await;

    let thread = asks_for_a_person(&m, "FR1").await;
    eventually("the thread is assigned", || async {
        assigned_to(&m, &thread).await.is_some()
    })
    .await;

    let t = thread_of(&m, &thread).await;
    assert_eq!(t["mode"], "agent");
    assert_eq!(t["assigned_agent_id"], lea.id.as_str());
    assert_eq!(t["routing_reason"], "language");
    let lea_sees: Value = m.app.get("/v1/threads", &lea.token).await.json().await.unwrap();
    assert_eq!(lea_sees["data"].as_array().unwrap().len(), 1);
    let ben_reads = m.app.get(&format!("/v1/threads/{thread}"), &ben.token).await;
    assert_eq!(
        ben_reads.status(),
        404,
        "another agent's thread is not theirs to read"
    );
    let ben_sees: Value = m.app.get("/v1/threads", &ben.token).await.json().await.unwrap();
    assert!(ben_sees["data"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn at_capacity_the_next_shopper_waits_in_the_queue_and_is_assigned_when_a_thread_goes_back_to_the_bot()
{
    let m = spawn_messenger_app().await;
    let lea = add_agent(&m, "Léa", "lea@example.com", &["fr"], 1).await;
    go_online(&m, &lea).await;
    let first = asks_for_a_person(&m, "Q1").await;
    eventually("the first thread is assigned", || async {
        assigned_to(&m, &first).await.is_some()
    })
    .await;

    let second = asks_for_a_person(&m, "Q2").await;
    let waiting = thread_of(&m, &second).await;
    let lea_sees: Value = m.app.get("/v1/threads", &lea.token).await.json().await.unwrap();
    let handback = m
        .app
        .post(
            &format!("/v1/threads/{first}/handover"),
            &lea.token,
            json!({"to": "bot"}),
        )
        .await;
    assert_eq!(handback.status(), 200);
    eventually("the waiting thread is assigned", || async {
        assigned_to(&m, &second).await.as_deref() == Some(lea.id.as_str())
    })
    .await;

    assert!(waiting["assigned_agent_id"].is_null());
    assert_eq!(waiting["queue_position"], 1);
    assert_eq!(
        lea_sees["data"].as_array().unwrap().len(),
        2,
        "her thread and the one waiting in the queue"
    );
    let back = thread_of(&m, &first).await;
    assert_eq!(back["mode"], "bot");
    assert!(back["queued_at"].is_null() && back["assigned_agent_id"].is_null());
}

#[tokio::test]
async fn an_agent_who_does_not_answer_in_time_loses_the_thread_to_the_next() {
    let m = spawn_messenger_app().await;
    m.graph.speaks("S1", "en_GB");
    let ann = add_agent(&m, "Ann", "ann@example.com", &["en"], 3).await;
    let bob = add_agent(&m, "Bob", "bob@example.com", &["de"], 3).await;
    go_online(&m, &ann).await;
    let thread = asks_for_a_person(&m, "S1").await;
    eventually("the thread goes to Ann", || async {
        assigned_to(&m, &thread).await.as_deref() == Some(ann.id.as_str())
    })
    .await;
    go_online(&m, &bob).await;

    // Six minutes pass without a word from Ann (the merchant gives agents 5 by default).
    let id: threadcart::kernel::ThreadId = thread.parse().unwrap();
    m.app
        .db
        .query_blocking(move |conn| clock::advance(conn, id, chrono::Duration::minutes(6)))
        .unwrap();
    eventually("the thread goes to Bob", || async {
        assigned_to(&m, &thread).await.as_deref() == Some(bob.id.as_str())
    })
    .await;

    let t = thread_of(&m, &thread).await;
    assert_eq!(
        t["routing_reason"], "available",
        "Bob does not speak English, but he is there"
    );
}

#[tokio::test]
async fn an_agent_going_offline_gives_their_threads_back_to_the_queue() {
    let m = spawn_messenger_app().await;
    let lea = add_agent(&m, "Léa", "lea@example.com", &["fr"], 3).await;
    go_online(&m, &lea).await;
    let thread = asks_for_a_person(&m, "O1").await;
    eventually("the thread is assigned", || async {
        assigned_to(&m, &thread).await.is_some()
    })
    .await;

    let res = set_presence(&m.app, &lea.token, "offline").await;
    assert_eq!(res.status(), 200);

    let t = thread_of(&m, &thread).await;
    assert!(t["assigned_agent_id"].is_null());
    assert_eq!(t["queue_position"], 1);
    let agent: Value = m
        .app
        .get(&format!("/v1/agents/{}", lea.id), &m.merchant.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(agent["open_threads"], 0);
}

#[tokio::test]
async fn an_agent_whose_live_connection_is_gone_for_minutes_counts_as_offline_and_one_whose_stream_is_open_stays()
 {
    let m = spawn_messenger_app().await;
    let lea = add_agent(&m, "Léa", "lea@example.com", &["fr"], 3).await;
    let ben = add_agent(&m, "Ben", "ben@example.com", &["fr"], 3).await;
    go_online(&m, &lea).await;
    let thread = asks_for_a_person(&m, "L1").await;
    eventually("the thread is assigned", || async {
        assigned_to(&m, &thread).await.is_some()
    })
    .await;
    let agent = |id: String| {
        let m = &m;
        async move {
            m.app
                .get(&format!("/v1/agents/{id}"), &m.merchant.token)
                .await
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let _open = feed(&m, &ben.token, None).await;
    go_online(&m, &ben).await;
    eventually("Ben's open stream says he is there", || async {
        agent(ben.id.clone()).await["seen_at"].is_string()
    })
    .await;

    // Both set their presence four minutes ago; only Ben's stream is open.
    for (id, and_connection) in [(&lea.id, true), (&ben.id, false)] {
        let id = uuid::Uuid::parse_str(id).unwrap();
        m.app
            .db
            .query_blocking(move |conn| {
                clock::agent_silent_for(conn, id, chrono::Duration::minutes(4), and_connection)
            })
            .unwrap();
    }

    eventually("Léa, gone, is offline", || async {
        agent(lea.id.clone()).await["presence"] == "offline"
    })
    .await;
    eventually("her thread goes to Ben", || async {
        assigned_to(&m, &thread).await.as_deref() == Some(ben.id.as_str())
    })
    .await;
    assert_eq!(agent(ben.id.clone()).await["presence"], "online");
}

#[tokio::test]
async fn a_shopper_far_down_the_queue_is_told_their_place_once() {
    let m = spawn_messenger_app().await;
    for psid in ["Q1", "Q2", "Q3"] {
        asks_for_a_person(&m, psid).await;
    }
    let told = |psid: &str| {
        m.graph
            .texts_to(psid)
            .into_iter()
            .filter(|t| t.contains("in line"))
            .collect::<Vec<_>>()
    };

    eventually("the third shopper is told their place", || async {
        !told("Q3").is_empty()
    })
    .await;
    // More routing passes (one a second) tell nobody again.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;

    assert_eq!(
        told("Q3"),
        ["You are number 3 in line: a person from our team will answer you here as soon as they can."]
    );
    assert!(
        told("Q1").is_empty() && told("Q2").is_empty(),
        "a short wait is not worth a word"
    );
}

#[tokio::test]
async fn the_agent_given_a_thread_reads_who_the_shopper_is_beside_it() {
    let m = spawn_messenger_app().await;
    let lea = add_agent(&m, "Léa", "lea@example.com", &["fr"], 3).await;
    let ben = add_agent(&m, "Ben", "ben@example.com", &["en"], 3).await;
    go_online(&m, &lea).await;
    crate::checkout::cart_of_size_42(&m, "C1").await;
    let thread = asks_for_a_person(&m, "C1").await;
    eventually("the thread is assigned", || async {
        assigned_to(&m, &thread).await.is_some()
    })
    .await;

    let res = m
        .app
        .get(&format!("/v1/threads/{thread}/context"), &lea.token)
        .await;
    let other = m
        .app
        .get(&format!("/v1/threads/{thread}/context"), &ben.token)
        .await;

    assert_eq!(res.status(), 200);
    let context: Value = res.json().await.unwrap();
    assert_eq!(context["customer"]["first_name"], "Anna");
    assert_eq!(context["customer"]["locale"], "fr_FR");
    assert_eq!(context["customer"]["channel"], "messenger");
    assert_eq!(context["customer"]["timezone_offset"], 1);
    assert!(context["customer"]["local_time"].is_string());
    assert_eq!(context["touches"][0]["ad_id"], "AD-7");
    assert_eq!(context["cart"]["lines"][0]["variant_name"], "42");
    assert_eq!(context["cart"]["total"]["amount"], "49.90");
    assert_eq!(context["orders"], json!([]));
    assert_eq!(context["lifetime_paid"], json!([]));
    assert_eq!(context["routing"]["assigned_agent_id"], lea.id.as_str());
    assert_eq!(context["routing"]["reason"], "language");
    assert_eq!(other.status(), 404, "another agent's thread");
}

#[tokio::test]
async fn a_customer_with_paid_orders_is_served_before_one_who_came_first_when_the_merchant_says_so() {
    let (m, stripe) = crate::checkout::shop_with_stripe().await;
    let res = m
        .app
        .patch("/v1/merchant", &m.merchant.token, json!({"vip_paid_orders": 1}))
        .await;
    assert_eq!(res.status(), 200);
    let lea = add_agent(&m, "Léa", "lea@example.com", &["fr"], 1).await;
    let first = asks_for_a_person(&m, "N1").await;
    crate::checkout::paid_order(&m, &stripe, "V1").await;
    let vip = asks_for_a_person(&m, "V1").await;
    let before = thread_of(&m, &first).await["queue_position"].clone();

    go_online(&m, &lea).await;
    eventually("the VIP is served", || async {
        assigned_to(&m, &vip).await.as_deref() == Some(lea.id.as_str())
    })
    .await;

    assert_eq!(before, 2, "the VIP is ahead in the queue");
    let waiting = thread_of(&m, &first).await;
    assert!(waiting["assigned_agent_id"].is_null());
    assert_eq!(waiting["queue_position"], 1);
}

#[tokio::test]
async fn the_demo_shop_has_an_agent_whose_public_key_sets_her_presence() {
    let app = crate::simulator::spawn_dev_app().await;
    // Loading the demo again (every start does) changes nothing.
    threadcart::demo::load(&app.db, &app.secrets).unwrap();
    let token = app
        .token("tc_demo_comfy_shoes_agent_lea_00000000000000000000000000000000000")
        .await;

    let res = set_presence(&app, &token, "online").await;

    assert_eq!(res.status(), 200);
    let lea: Value = res.json().await.unwrap();
    assert_eq!(lea["name"], "Léa");
    assert_eq!(lea["languages"], json!(["fr", "en"]));
    let owner = app.token(crate::simulator::DEMO_KEY).await;
    let agents: Value = app.get("/v1/agents", &owner).await.json().await.unwrap();
    assert_eq!(
        agents["data"].as_array().unwrap().len(),
        1,
        "once, however often the demo loads"
    );
}

/// Opens the merchant's live feed with `token` (after `last`, when given).
async fn feed(m: &MessengerApp, token: &str, last: Option<&str>) -> reqwest::Response {
    let mut req = m
        .app
        .client
        .get(format!("{}/v1/events", m.app.address))
        .bearer_auth(token);
    if let Some(last) = last {
        req = req.header("last-event-id", last);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    res
}

fn is(kind: &'static str) -> impl Fn(&Value) -> bool {
    move |e| e["kind"] == kind
}

#[tokio::test]
async fn the_live_feed_shows_a_thread_queued_assigned_and_its_messages_and_resumes_where_it_stopped() {
    let m = spawn_messenger_app().await;
    let lea = add_agent(&m, "Léa", "lea@example.com", &["fr"], 3).await;
    let ben = add_agent(&m, "Ben", "ben@example.com", &["en"], 3).await;
    let mut owner = feed(&m, &m.merchant.token, None).await;
    let mut bens = feed(&m, &ben.token, None).await;

    let thread = asks_for_a_person(&m, "E1").await;
    let (queued, _) = crate::webchat::stream_until(&mut owner, is("thread.queued")).await;
    go_online(&m, &lea).await;
    let (assigned, _) = crate::webchat::stream_until(&mut owner, is("thread.assigned")).await;
    let res = m
        .app
        .post(
            &format!("/v1/threads/{thread}/messages"),
            &lea.token,
            json!({"text": "Bonjour, je suis Léa."}),
        )
        .await;
    assert_eq!(res.status(), 202);
    let (out, ids) = crate::webchat::stream_until(&mut owner, is("message.out")).await;
    drop(owner);
    let mid = "m-E1-later";
    m.app
        .post_webhook(&delivery(
            PAGE_ID,
            vec![text_message("E1", now_ms(), mid, "merci !")],
        ))
        .await;
    // Reconnected after the last event it had: the shopper's message, missed meanwhile, comes first.
    let mut again = feed(&m, &m.merchant.token, Some(ids.last().unwrap())).await;
    let (back, _) = crate::webchat::stream_until(&mut again, |_| true).await;
    // Ben saw the queue, not Léa's conversation.
    let (bens_first, _) = crate::webchat::stream_until(&mut bens, |_| true).await;
    let (bens_second, _) = crate::webchat::stream_until(&mut bens, |_| true).await;

    assert_eq!(queued["thread_id"], thread.as_str());
    assert_eq!(assigned["agent_id"], lea.id.as_str());
    assert_eq!(assigned["reason"], "language");
    assert_eq!(out["text"], "Bonjour, je suis Léa.");
    assert_eq!(back["kind"], "message.in");
    assert_eq!(back["text"], "merci !");
    assert_eq!(bens_first["kind"], "thread.queued");
    assert_eq!(bens_second["kind"], "thread.assigned");
    let mut bens_rest = feed(&m, &ben.token, Some(bens_second["id"].as_str().unwrap())).await;
    let quiet = tokio::time::timeout(std::time::Duration::from_millis(1500), async {
        crate::webchat::stream_until(&mut bens_rest, |_| true).await
    })
    .await;
    assert!(quiet.is_err(), "Léa's messages are not Ben's to see: {quiet:?}");
}

#[tokio::test]
async fn the_owners_feed_shows_a_shoppers_cart_changing_and_their_checkout_opening() {
    let (m, _stripe) = crate::checkout::shop_with_stripe().await;
    let mut owner = feed(&m, &m.merchant.token, None).await;

    let total = crate::checkout::cart_of_size_42(&m, "K1").await;
    let (changed, _) = crate::webchat::stream_until(&mut owner, is("cart.changed")).await;
    let checkout =
        crate::helpers::button(&crate::helpers::template(&total)["buttons"], "Checkout").to_owned();
    crate::helpers::tap_postback(&m, "K1", "Checkout", &checkout).await;
    let (opened, _) = crate::webchat::stream_until(&mut owner, is("checkout.opened")).await;

    assert_eq!(changed["units"], 1);
    assert_eq!(changed["subtotal"], json!({"amount": "49.90", "currency": "EUR"}));
    assert_eq!(opened["thread_id"], changed["thread_id"]);
    assert!(opened["number"].is_string());
}

#[tokio::test]
async fn live_events_older_than_a_week_are_forgotten_and_newer_ones_kept() {
    let m = spawn_messenger_app().await;
    asks_for_a_person(&m, "P9").await;
    let at = threadcart::db::now();

    let today = m
        .app
        .db
        .query_blocking(move |conn| threadcart::events::prune(conn, at, 100))
        .unwrap();
    let later = m
        .app
        .db
        .query_blocking(move |conn| threadcart::events::prune(conn, at + chrono::Duration::days(8), 100))
        .unwrap();

    assert_eq!(today, 0, "a fresh event is kept");
    assert_eq!(later, 1, "the thread's queued event, eight days on");
}

#[tokio::test]
async fn when_the_bot_cannot_help_twice_in_a_row_the_thread_goes_to_a_person() {
    let m = spawn_messenger_app().await;
    for (i, text) in ["umbrella", "parasol"].into_iter().enumerate() {
        m.app
            .post_webhook(&delivery(
                PAGE_ID,
                vec![text_message("M1", now_ms(), &format!("m-miss-{i}"), text)],
            ))
            .await;
    }

    eventually("the shopper is told a person will answer", || async {
        m.graph
            .texts_to("M1")
            .iter()
            .any(|t| t == threadcart::engine::MISSED_TWICE)
    })
    .await;
    let thread = m
        .app
        .db
        .query_blocking(|conn| clock::thread_of(conn, PAGE_ID, "M1"))
        .unwrap()
        .unwrap();
    let t = thread_of(&m, &thread.to_string()).await;
    assert_eq!(t["mode"], "agent");
    assert!(t["queued_at"].is_string());
}
