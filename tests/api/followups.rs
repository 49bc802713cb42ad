//! What the business writes first, run from the database's schedule: a cart's one reminder, a stay's
//! reminder the day before arrival, and each done once by two servers on one database. Time passes
//! the way the simulator makes it pass (`threadcart::dev::clock`: the thread's recorded past moves
//! back, its scheduled work falls due), never by sleeping.

use chrono::{Days, NaiveDate};
use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
use serde_json::{Value, json};
use threadcart::db::schema::scheduled_jobs;
use threadcart::dev::clock;

use crate::checkout::{cart_of_size_42, post_stripe_event, shop_with_stripe};
use crate::helpers::{
    MessengerApp, PAGE_ID, button, delivery, eventually, messenger_env, next_message, now_ms, sent_to,
    tap_postback, template, test_config, text_message,
};

/// Time passes for `psid`'s thread: `minutes` minutes.
fn time_passes(m: &MessengerApp, psid: &str, minutes: i64) {
    let psid = psid.to_owned();
    m.app
        .db
        .query_blocking(move |conn| {
            let thread = clock::thread_of(conn, PAGE_ID, &psid)?.expect("the shopper has a thread");
            clock::advance(conn, thread, chrono::Duration::minutes(minutes))
        })
        .unwrap();
}

/// The shopper writes `text`.
async fn say(m: &MessengerApp, psid: &str, text: &str) {
    let mid = format!("m-{}", uuid::Uuid::new_v4());
    let res = m
        .app
        .post_webhook(&delivery(PAGE_ID, vec![text_message(psid, now_ms(), &mid, text)]))
        .await;
    assert_eq!(res.status(), 200);
}

fn is_cart_reminder(message: &Value) -> bool {
    message["text"]
        .as_str()
        .is_some_and(|t| t.starts_with("You left "))
}

fn cart_reminders_to(m: &MessengerApp, psid: &str) -> usize {
    sent_to(m, psid).iter().filter(|v| is_cart_reminder(v)).count()
}

/// The outcomes of the jobs of `kind`, done or not (`None` while pending).
fn jobs(m: &MessengerApp, kind: &str) -> Vec<Option<String>> {
    let kind = kind.to_owned();
    m.app
        .db
        .query_blocking(move |conn| {
            scheduled_jobs::table
                .filter(scheduled_jobs::kind.eq(kind))
                .select(scheduled_jobs::outcome)
                .load::<Option<String>>(conn)
        })
        .unwrap()
}

#[tokio::test]
async fn a_cart_left_for_an_hour_is_reminded_once_with_its_checkout_button() {
    let m = crate::helpers::spawn_messenger_app().await;
    cart_of_size_42(&m, "R1").await;
    assert_eq!(jobs(&m, "cart_reminder"), [None], "planned, not due yet");

    let seen = sent_to(&m, "R1").len();
    time_passes(&m, "R1", 61);
    let reminder = next_message(&m, "R1", seen, is_cart_reminder).await;
    let total = next_message(&m, "R1", seen, |v| template(v)["template_type"] == "button").await;

    // The shopper comes back, looks around and leaves again: never a second reminder for this cart.
    let seen = sent_to(&m, "R1").len();
    say(&m, "R1", "hello").await;
    eventually("the shopper's message is answered", || async {
        sent_to(&m, "R1").len() > seen
    })
    .await;
    time_passes(&m, "R1", 61);

    assert_eq!(
        reminder["text"],
        "You left 1 item in your cart. It is kept for you: check out whenever you are ready."
    );
    assert_eq!(template(&total)["text"], "Your cart: 1 item(s), total 49.90 EUR.");
    assert!(!button(&template(&total)["buttons"], "Checkout").is_empty());
    assert_eq!(
        jobs(&m, "cart_reminder"),
        [Some("sent".to_owned())],
        "one job, done"
    );
    assert_eq!(cart_reminders_to(&m, "R1"), 1);
}

/// A shopper who came by themselves (no ad: Messenger's window is 24 hours) searches for slippers and
/// puts size 42 in the cart.
async fn organic_cart_of_size_42(m: &MessengerApp, psid: &str) {
    say(m, psid, "slippers").await;
    let card = next_message(m, psid, 0, |v| template(v)["template_type"] == "generic").await;
    let seen = sent_to(m, psid).len();
    let choose = button(&template(&card)["elements"][0]["buttons"], "Choose size").to_owned();
    tap_postback(m, psid, "Choose size", &choose).await;
    let sizes = next_message(m, psid, seen, |v| v["quick_replies"].is_array()).await;
    let seen = sent_to(m, psid).len();
    let size = button(&sizes["quick_replies"], "42").to_owned();
    crate::helpers::tap_quick_reply(m, psid, "42", &size).await;
    next_message(m, psid, seen, |v| template(v)["template_type"] == "button").await;
}

#[tokio::test]
async fn a_cart_left_for_25_hours_is_not_reminded_after_the_window_closed() {
    let m = crate::helpers::spawn_messenger_app().await;
    organic_cart_of_size_42(&m, "R2").await;
    let before = sent_to(&m, "R2").len();

    time_passes(&m, "R2", 25 * 60);
    eventually("the reminder's job gives up", || async {
        jobs(&m, "cart_reminder") == [Some("window_closed".to_owned())]
    })
    .await;

    assert_eq!(cart_reminders_to(&m, "R2"), 0);
    assert_eq!(sent_to(&m, "R2").len(), before, "nothing sent outside the window");
}

#[tokio::test]
async fn a_merchant_turns_cart_reminders_off_and_out_of_range_settings_are_refused() {
    let m = crate::helpers::spawn_messenger_app().await;
    let bad = m
        .app
        .patch(
            "/v1/merchant",
            &m.merchant.token,
            json!({"cart_reminder_minutes": -1, "booking_reminder_hour": 24}),
        )
        .await;
    let problem = crate::helpers::assert_problem(bad, 422, "validation_failed").await;
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["cart_reminder_minutes", "booking_reminder_hour"]);

    let off = m
        .app
        .patch(
            "/v1/merchant",
            &m.merchant.token,
            json!({"cart_reminder_minutes": 0}),
        )
        .await;
    assert_eq!(off.status(), 200);
    let settings: Value = off.json().await.unwrap();
    cart_of_size_42(&m, "R3").await;

    assert_eq!(settings["cart_reminder_minutes"], 0);
    assert_eq!(settings["booking_reminder_hour"], 18, "the default");
    assert!(jobs(&m, "cart_reminder").is_empty(), "no reminder planned");
}

#[tokio::test]
async fn a_reminded_cart_paid_afterwards_counts_as_a_recovered_purchase() {
    let (m, stripe) = shop_with_stripe().await;
    cart_of_size_42(&m, "R4").await;
    time_passes(&m, "R4", 61);
    let seen = sent_to(&m, "R4").len();
    next_message(&m, "R4", 0, is_cart_reminder).await;
    let total = next_message(&m, "R4", seen, |v| template(v)["template_type"] == "button").await;

    tap_postback(
        &m,
        "R4",
        "Checkout",
        button(&template(&total)["buttons"], "Checkout"),
    )
    .await;
    next_message(&m, "R4", seen, |v| {
        template(v)["buttons"][0]["title"] == "Pay 49.90 EUR"
    })
    .await;
    let orders: Value = m
        .app
        .get("/v1/orders", &m.merchant.token)
        .await
        .json()
        .await
        .unwrap();
    let session = orders["data"][0]["stripe_session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    stripe.complete_session(&session);
    post_stripe_event(&m, "checkout.session.completed", &session).await;
    eventually("the receipt is sent", || async {
        sent_to(&m, "R4")
            .iter()
            .any(|v| template(v)["template_type"] == "receipt")
    })
    .await;
    let today = chrono::Utc::now().date_naive();
    let report: Value = m
        .app
        .get(
            &format!(
                "/v1/reports/funnel?group_by=ad&from={}&to={}",
                today - Days::new(1),
                today + Days::new(1)
            ),
            &m.merchant.token,
        )
        .await
        .json()
        .await
        .unwrap();

    let row = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "AD-7")
        .unwrap();
    assert_eq!(row["cart_reminders"], 1);
    assert_eq!(row["purchases"], 1);
    assert_eq!(row["recovered_purchases"], 1);
}

/// A date `days` from today, in the future in any timezone.
fn in_days(days: u64) -> NaiveDate {
    chrono::Utc::now().date_naive() + Days::new(days + 2)
}

#[tokio::test]
async fn a_stay_is_reminded_the_day_before_arrival_through_the_approved_template_after_the_window() {
    let (m, stripe) = shop_with_stripe().await;
    let res = m
        .app
        .post(
            "/v1/templates",
            &m.merchant.token,
            json!({"page_id": PAGE_ID, "purpose": "booking_reminder", "language": "en",
                   "body": "Hi {first_name}, your stay in the {room} starts on {arrival}. See you soon!"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    crate::stays::room(&m, "Honeymoon Suite", 1, "240.00").await;
    let arrival = in_days(3);
    let held = crate::stays::hold_the_suite(&m, "B1", arrival).await;
    let seen = sent_to(&m, "B1").len();
    let book = next_message(&m, "B1", 0, |v| {
        template(v)["text"]
            .as_str()
            .is_some_and(|t| t.ends_with("Ready to book?"))
    })
    .await;
    tap_postback(
        &m,
        "B1",
        "Book and pay",
        button(&template(&book)["buttons"], "Book and pay"),
    )
    .await;
    next_message(&m, "B1", seen, |v| {
        template(v)["buttons"][0]["title"]
            .as_str()
            .is_some_and(|t| t.starts_with("Pay "))
    })
    .await;
    let orders: Value = m
        .app
        .get("/v1/orders", &m.merchant.token)
        .await
        .json()
        .await
        .unwrap();
    let session = orders["data"][0]["stripe_session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    stripe.complete_session(&session);
    post_stripe_event(&m, "checkout.session.completed", &session).await;
    eventually("the reminder is planned", || async {
        jobs(&m, "booking_reminder") == [None]
    })
    .await;

    // Arrival is in 5 days (today + 3 + 2): the reminder falls due at 18:00 Paris time the day before.
    time_passes(&m, "B1", 5 * 24 * 60);
    eventually("the reminder goes through the template", || async {
        jobs(&m, "booking_reminder") == [Some("template".to_owned())]
    })
    .await;
    eventually("the template is sent", || async {
        m.graph
            .messages()
            .iter()
            .any(|b| b["recipient"]["id"] == "B1" && b["message"]["template"].is_object())
    })
    .await;

    assert!(
        held["text"].as_str().unwrap().starts_with("Honeymoon Suite,"),
        "{held}"
    );
    let sends: Vec<Value> = m
        .graph
        .messages()
        .into_iter()
        .filter(|b| b["recipient"]["id"] == "B1" && b["message"]["template"].is_object())
        .collect();
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0]["messaging_type"], "UTILITY");
    let parameters: Vec<&str> = sends[0]["message"]["template"]["components"][0]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["text"].as_str().unwrap())
        .collect();
    let arrival_text = arrival.to_string();
    assert_eq!(parameters, ["Anna", "Honeymoon Suite", arrival_text.as_str()]);
    let bookings: Value = m
        .app
        .get("/v1/bookings?status=confirmed", &m.merchant.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(bookings["data"][0]["reminder"], "template");
    assert!(bookings["data"][0]["reminded_at"].is_string());
}

#[tokio::test]
async fn two_servers_on_one_database_send_each_cart_reminder_once() {
    let m = crate::helpers::spawn_messenger_app().await;
    // A second server with its own workers and connections, on the same database and Graph API.
    let env = messenger_env(&m.graph);
    let extra: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let config = test_config(&m.app.database.url, &extra);
    let db = threadcart::db::Db::connect(config.database_url(), 4).unwrap();
    let second = threadcart::startup::Application::build(config, db).unwrap();
    tokio::spawn(second.run_until_stopped());
    let shoppers = ["T1", "T2", "T3", "T4", "T5", "T6"];
    for psid in shoppers {
        cart_of_size_42(&m, psid).await;
    }

    for psid in shoppers {
        time_passes(&m, psid, 61);
    }
    eventually("every cart's reminder is done", || async {
        let done = jobs(&m, "cart_reminder");
        done.len() == shoppers.len() && done.iter().all(|o| o.as_deref() == Some("sent"))
    })
    .await;
    for psid in shoppers {
        eventually("the reminder reaches the shopper", || async {
            cart_reminders_to(&m, psid) >= 1
        })
        .await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    for psid in shoppers {
        assert_eq!(cart_reminders_to(&m, psid), 1, "{psid} is reminded once");
    }
}
