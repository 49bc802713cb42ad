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
    MessengerApp, PAGE_ID, body_parameters, button, delivery, eventually, messenger_env, next_message,
    now_ms, sent_to, tap_postback, template, template_sends_to, text_message,
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

/// No request to the Send API carried a tag: an automated follow-up never takes one (the retired tags
/// fail, and `HUMAN_AGENT` is for people).
fn assert_no_tag(m: &MessengerApp) {
    let tagged: Vec<Value> = m
        .graph
        .messages()
        .into_iter()
        .filter(|b| b.get("tag").is_some_and(|t| !t.is_null()))
        .collect();
    assert!(tagged.is_empty(), "sends with a tag: {tagged:#?}");
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
    assert_no_tag(&m);
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
    let row = m.app.funnel_row_of_ad(&m.merchant.token, "AD-7").await;
    assert_eq!(row["cart_reminders"], 1);
    assert_eq!(row["purchases"], 1);
    assert_eq!(row["recovered_purchases"], 1);
}

/// A date `days` from today, in the future in any timezone.
fn in_days(days: u64) -> NaiveDate {
    chrono::Utc::now().date_naive() + Days::new(days + 2)
}

/// Submits the `booking_reminder` template in English; the local Graph server approves it.
async fn approve_booking_reminder(m: &MessengerApp) {
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
}

/// The shopper holds the suite for two nights from `arrival`, books and pays through the local Stripe.
async fn book_and_pay(
    m: &MessengerApp,
    stripe: &crate::stripe_fake::FakeStripe,
    psid: &str,
    arrival: NaiveDate,
) {
    let session = book(m, psid, arrival).await;
    stripe.complete_session(&session);
    post_stripe_event(m, "checkout.session.completed", &session).await;
}

/// The shopper holds the suite for two nights from `arrival` and taps Book and pay; answers the
/// order's Checkout Session.
async fn book(m: &MessengerApp, psid: &str, arrival: NaiveDate) -> String {
    let held = crate::stays::hold_the_suite(m, psid, arrival).await;
    assert!(
        held["text"].as_str().unwrap().starts_with("Honeymoon Suite,"),
        "{held}"
    );
    let seen = sent_to(m, psid).len();
    let book = next_message(m, psid, 0, |v| {
        template(v)["text"]
            .as_str()
            .is_some_and(|t| t.ends_with("Ready to book?"))
    })
    .await;
    tap_postback(
        m,
        psid,
        "Book and pay",
        button(&template(&book)["buttons"], "Book and pay"),
    )
    .await;
    next_message(m, psid, seen, |v| {
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
    orders["data"][0]["stripe_session_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_stay_is_reminded_the_day_before_arrival_through_the_approved_template_after_the_window() {
    let (m, stripe) = shop_with_stripe().await;
    approve_booking_reminder(&m).await;
    crate::stays::room(&m, "Honeymoon Suite", 1, "240.00").await;
    let arrival = in_days(3);
    book_and_pay(&m, &stripe, "B1", arrival).await;
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
        !template_sends_to(&m, "B1").is_empty()
    })
    .await;

    let sends = template_sends_to(&m, "B1");
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0]["messaging_type"], "UTILITY");
    assert!(sends[0].get("tag").is_none_or(Value::is_null), "never a tag");
    let parameters = body_parameters(&sends[0]["message"]["template"]);
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
    let booking: Value = m
        .app
        .get(
            &format!("/v1/bookings/{}", bookings["data"][0]["id"].as_str().unwrap()),
            &m.merchant.token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(booking["notices"][0]["purpose"], "booking_reminder");
    assert_eq!(booking["notices"][0]["told"], "template");
    assert!(booking["notices"][0]["at"].is_string());
    assert_no_tag(&m);
}

/// A second `threadcart serve` process on the test server's database, Graph API and Stripe; stopped
/// when dropped.
struct SecondProcess(std::process::Child);

impl SecondProcess {
    async fn start(m: &MessengerApp, stripe: &crate::stripe_fake::FakeStripe) -> SecondProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_threadcart"));
        command
            .arg("serve")
            .env("DATABASE_URL", &m.app.database.url)
            .env("THREADCART_ADDR", format!("127.0.0.1:{port}"))
            .env("THREADCART_DEMO", "false")
            .env_remove("THREADCART_DEV")
            .env("THREADCART_SECRETS_KEY", crate::helpers::SECRETS_KEY)
            .env("THREADCART_JWT_SECRET", crate::helpers::JWT_SECRET)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        for (k, v) in messenger_env(&m.graph)
            .into_iter()
            .chain(crate::checkout::stripe_env(stripe))
        {
            command.env(k, v);
        }
        let second = SecondProcess(command.spawn().unwrap());
        let healthz = format!("http://127.0.0.1:{port}/healthz");
        eventually("the second process answers", || async {
            reqwest::get(&healthz).await.is_ok_and(|r| r.status() == 200)
        })
        .await;
        second
    }
}

impl Drop for SecondProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn two_server_processes_on_one_database_send_each_reminder_and_template_once() {
    let (m, stripe) = shop_with_stripe().await;
    approve_booking_reminder(&m).await;
    crate::stays::room(&m, "Honeymoon Suite", 1, "240.00").await;
    let _second = SecondProcess::start(&m, &stripe).await;
    let shoppers = ["T1", "T2", "T3", "T4", "T5", "T6"];
    for psid in shoppers {
        cart_of_size_42(&m, psid).await;
    }
    book_and_pay(&m, &stripe, "T7", in_days(3)).await;
    eventually("the stay's reminder is planned", || async {
        jobs(&m, "booking_reminder") == [None]
    })
    .await;

    for psid in shoppers {
        time_passes(&m, psid, 61);
    }
    time_passes(&m, "T7", 5 * 24 * 60);
    // The guest's cart (the stay) was checked out: its reminder's job ends `cart_closed`.
    eventually("every reminder is done", || async {
        let carts = jobs(&m, "cart_reminder");
        carts.iter().all(Option::is_some)
            && carts.iter().filter(|o| o.as_deref() == Some("sent")).count() == shoppers.len()
            && jobs(&m, "booking_reminder") == [Some("template".to_owned())]
    })
    .await;
    for psid in shoppers {
        eventually("the reminder reaches the shopper", || async {
            cart_reminders_to(&m, psid) >= 1
        })
        .await;
    }
    eventually("the template reaches the guest", || async {
        !template_sends_to(&m, "T7").is_empty()
    })
    .await;
    // Long enough for a second send of either process to arrive, were there one.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;

    for psid in shoppers {
        assert_eq!(cart_reminders_to(&m, psid), 1, "{psid} is reminded once");
    }
    assert_eq!(template_sends_to(&m, "T7").len(), 1, "the stay's template once");
    assert_no_tag(&m);
}

#[tokio::test]
async fn concurrent_workers_take_each_due_job_exactly_once() {
    use std::sync::{Arc, Mutex};
    use threadcart::followups::schedule::{self, JobKind, Plan, Step};
    let m = crate::helpers::spawn_messenger_app().await;
    let merchant = m.merchant.id;
    let due = threadcart::db::now() - chrono::Duration::seconds(1);
    m.app
        .db
        .query_blocking(move |conn| {
            for _ in 0..40 {
                schedule::plan(
                    conn,
                    Plan {
                        merchant_id: merchant,
                        kind: JobKind::CartReminder,
                        subject_id: uuid::Uuid::new_v4(),
                        purpose: "",
                        thread_id: None,
                        due_at: Some(due),
                    },
                )?;
            }
            Ok(())
        })
        .unwrap();
    let done = Arc::new(Mutex::new(Vec::new()));

    // Four workers with connections of their own, each taking jobs until none is due.
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let db = threadcart::db::Db::connect(&m.app.database.url, 1).unwrap();
            let done = done.clone();
            std::thread::spawn(move || {
                let at = threadcart::db::now();
                while let Some(ran) = db
                    .run_blocking(|conn| {
                        schedule::run_next_due(conn, at, |_, job| {
                            done.lock().unwrap().push(job.subject_id);
                            Ok(Step::Done("sent"))
                        })
                    })
                    .unwrap()
                {
                    assert_eq!(ran.step, Step::Done("sent"));
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }

    let mut done = done.lock().unwrap().clone();
    let taken = done.len();
    done.sort_by_key(|id| id.0);
    done.dedup();
    assert_eq!(taken, 40, "every job taken");
    assert_eq!(done.len(), 40, "none taken twice");
    assert!(
        jobs(&m, "cart_reminder")
            .iter()
            .all(|o| o.as_deref() == Some("sent"))
    );
}

async fn order_number(m: &MessengerApp, order_id: &str) -> String {
    let order: Value = m
        .app
        .get(&format!("/v1/orders/{order_id}"), &m.merchant.token)
        .await
        .json()
        .await
        .unwrap();
    order["number"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_refund_from_the_api_is_told_in_the_window_and_through_the_template_after_it() {
    let (m, stripe) = shop_with_stripe().await;
    let res = m
        .app
        .post(
            "/v1/templates",
            &m.merchant.token,
            json!({"page_id": PAGE_ID, "purpose": "order_refunded", "language": "en",
                   "body": "Hi {first_name}, we refunded {amount} of your order {order_number}."}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let (order_id, _) = crate::checkout::paid_order(&m, &stripe, "F1").await;
    let refunds = format!("/v1/orders/{order_id}/refunds");
    let order: Value = m
        .app
        .get(&format!("/v1/orders/{order_id}"), &m.merchant.token)
        .await
        .json()
        .await
        .unwrap();
    let number = order["number"].as_str().unwrap().to_owned();

    // Inside the window: a message with the amount.
    let part = m
        .app
        .post(
            &refunds,
            &m.merchant.token,
            json!({"amount": {"amount": "10.00", "currency": "EUR"}}),
        )
        .await;
    assert_eq!(part.status(), 201);
    let said = format!("We refunded 10.00 EUR of order {number}. Your bank shows it within a few days.");
    eventually("the shopper is told of the refund", || async {
        m.graph.texts_to("F1").contains(&said)
    })
    .await;

    // Eight days later (an ad's window lasts seven): through the approved template.
    time_passes(&m, "F1", 8 * 24 * 60);
    let rest = m
        .app
        .post(
            &refunds,
            &m.merchant.token,
            json!({"amount": {"amount": "15.00", "currency": "EUR"}}),
        )
        .await;
    assert_eq!(rest.status(), 201);
    eventually("the template carries the second refund", || async {
        !template_sends_to(&m, "F1").is_empty()
    })
    .await;

    let sends = template_sends_to(&m, "F1");
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0]["messaging_type"], "UTILITY");
    let parameters = body_parameters(&sends[0]["message"]["template"]);
    assert_eq!(parameters, ["Anna", "15.00 EUR", number.as_str()]);
    assert_eq!(
        m.graph
            .texts_to("F1")
            .iter()
            .filter(|t| t.starts_with("We refunded"))
            .count(),
        1,
        "the first refund told once, the second only through the template"
    );
    let order: Value = m
        .app
        .get(&format!("/v1/orders/{order_id}"), &m.merchant.token)
        .await
        .json()
        .await
        .unwrap();
    let told: Vec<(&str, &str)> = order["notices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["purpose"].as_str().unwrap(), n["told"].as_str().unwrap()))
        .collect();
    assert_eq!(
        told,
        [
            ("order_paid", "sent"),
            ("order_refunded", "sent"),
            ("order_refunded", "template")
        ]
    );
    assert_no_tag(&m);
}

#[tokio::test]
async fn a_confirmed_stay_cancelled_by_the_business_is_told_to_the_guest_once() {
    let (m, stripe) = shop_with_stripe().await;
    crate::stays::room(&m, "Honeymoon Suite", 1, "240.00").await;
    let arrival = in_days(6);
    book_and_pay(&m, &stripe, "C1", arrival).await;
    eventually("the stay is confirmed", || async {
        jobs(&m, "booking_reminder") == [None]
    })
    .await;
    let bookings: Value = m
        .app
        .get("/v1/bookings?status=confirmed", &m.merchant.token)
        .await
        .json()
        .await
        .unwrap();
    let cancel = format!(
        "/v1/bookings/{}/cancel",
        bookings["data"][0]["id"].as_str().unwrap()
    );

    let first = m.app.post(&cancel, &m.merchant.token, json!({})).await;
    let again = m.app.post(&cancel, &m.merchant.token, json!({})).await;

    assert_eq!(first.status(), 200);
    assert_eq!(again.status(), 200);
    let departure = arrival + Days::new(2);
    let said = format!(
        "Your stay in the Honeymoon Suite from {arrival} to {departure} is cancelled. Write to us here with any question."
    );
    eventually("the guest is told", || async {
        m.graph.texts_to("C1").contains(&said)
    })
    .await;
    time_passes(&m, "C1", 8 * 24 * 60);
    eventually("the reminder finds the stay cancelled", || async {
        jobs(&m, "booking_reminder") == [Some("not_confirmed".to_owned())]
    })
    .await;
    assert_eq!(m.graph.texts_to("C1").iter().filter(|t| **t == said).count(), 1);
    assert_no_tag(&m);
}

/// The thread of `psid`, as the API names it.
fn thread_id_of(m: &MessengerApp, psid: &str) -> String {
    let psid = psid.to_owned();
    m.app
        .db
        .query_blocking(move |conn| clock::thread_of(conn, PAGE_ID, &psid))
        .unwrap()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn no_cart_reminder_while_a_person_has_the_thread() {
    let m = crate::helpers::spawn_messenger_app().await;
    cart_of_size_42(&m, "P1").await;
    let handover = format!("/v1/threads/{}/handover", thread_id_of(&m, "P1"));
    let res = m
        .app
        .post(&handover, &m.merchant.token, json!({"to": "agent"}))
        .await;
    assert_eq!(res.status(), 200);

    time_passes(&m, "P1", 61);
    eventually("the reminder's job ends", || async {
        jobs(&m, "cart_reminder") == [Some("with_person".to_owned())]
    })
    .await;

    assert_eq!(cart_reminders_to(&m, "P1"), 0);
}

#[tokio::test]
async fn no_cart_reminder_when_the_merchant_is_away() {
    let m = crate::helpers::spawn_messenger_app().await;
    cart_of_size_42(&m, "P2").await;
    // Open only on a day that is not today in Paris (the merchant's timezone): away now.
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::Europe::Paris)
        .format("%a")
        .to_string()
        .to_lowercase();
    let open_day = if today == "mon" { "tue" } else { "mon" };
    let res = m
        .app
        .patch(
            "/v1/merchant",
            &m.merchant.token,
            json!({"business_hours": {open_day: ["09:00-18:00"]}}),
        )
        .await;
    assert_eq!(res.status(), 200);

    time_passes(&m, "P2", 61);
    eventually("the reminder's job ends", || async {
        jobs(&m, "cart_reminder") == [Some("away".to_owned())]
    })
    .await;

    assert_eq!(cart_reminders_to(&m, "P2"), 0);
}

#[tokio::test]
async fn a_second_refund_held_after_the_first_was_told_is_held_and_told_again() {
    let (m, stripe) = shop_with_stripe().await;
    let (order_id, _) = crate::checkout::paid_order(&m, &stripe, "H1").await;
    let refunds = format!("/v1/orders/{order_id}/refunds");
    let refund = |amount: &'static str| {
        let (m, refunds) = (&m, refunds.clone());
        async move {
            let res = m
                .app
                .post(
                    &refunds,
                    &m.merchant.token,
                    json!({"amount": {"amount": amount, "currency": "EUR"}}),
                )
                .await;
            assert_eq!(res.status(), 201);
        }
    };
    let number = order_number(&m, &order_id).await;
    let summary = |refunded: &str| {
        format!(
            "Refunds of order {number}: {refunded} EUR in all, of 49.90 EUR. Your bank shows them within a few days."
        )
    };
    let count = |text: String| {
        let m = &m;
        async move { m.graph.texts_to("H1").iter().filter(|t| **t == text).count() }
    };

    // No template for refunds: after the window (an ad's lasts seven days) the first refund is held
    // until the shopper writes.
    time_passes(&m, "H1", 8 * 24 * 60);
    refund("10.00").await;
    assert_eq!(count(summary("10.00")).await, 0, "held");
    say(&m, "H1", "any news?").await;
    eventually("the first refund is told", || async {
        count(summary("10.00")).await == 1
    })
    .await;

    // Eight days later again, a second refund: held again, told when the shopper writes again.
    time_passes(&m, "H1", 8 * 24 * 60);
    refund("15.00").await;
    assert_eq!(count(summary("25.00")).await, 0, "held");
    say(&m, "H1", "and now?").await;
    eventually(
        "the refunds held are told, with the order's refunded amount",
        || async { count(summary("25.00")).await == 1 },
    )
    .await;

    assert_eq!(count(summary("10.00")).await, 1);
    assert!(
        m.graph
            .texts_to("H1")
            .iter()
            .all(|t| !t.starts_with("We refunded")),
        "nothing went out while the window was closed"
    );
    assert!(template_sends_to(&m, "H1").is_empty());
    assert_no_tag(&m);
}

#[tokio::test]
async fn a_stay_paid_after_the_window_is_confirmed_through_the_booking_confirmed_template() {
    let (m, stripe) = shop_with_stripe().await;
    for (purpose, body) in [
        (
            "order_paid",
            "Hi {first_name}, your order {order_number} of {amount} is paid. Thank you!",
        ),
        (
            "booking_confirmed",
            "Hi {first_name}, your stay in the {room} from {arrival} to {departure} is confirmed.",
        ),
    ] {
        let res = m
            .app
            .post(
                "/v1/templates",
                &m.merchant.token,
                json!({"page_id": PAGE_ID, "purpose": purpose, "language": "en", "body": body}),
            )
            .await;
        assert_eq!(res.status(), 201);
    }
    crate::stays::room(&m, "Honeymoon Suite", 1, "240.00").await;
    let arrival = in_days(6);
    let session = book(&m, "BC1", arrival).await;

    // The guest pays the next day: the window (24 hours for a shopper who wrote first) is closed.
    time_passes(&m, "BC1", 25 * 60);
    stripe.complete_session(&session);
    post_stripe_event(&m, "checkout.session.completed", &session).await;
    eventually("the confirmation goes through the template", || async {
        !template_sends_to(&m, "BC1").is_empty()
    })
    .await;

    let sends = template_sends_to(&m, "BC1");
    assert_eq!(sends.len(), 1, "one word, not the receipt's template as well");
    assert_eq!(
        sends[0]["message"]["template"]["name"],
        "threadcart_booking_confirmed_en"
    );
    let parameters = body_parameters(&sends[0]["message"]["template"]);
    let (a, d) = (arrival.to_string(), (arrival + Days::new(2)).to_string());
    assert_eq!(parameters, ["Anna", "Honeymoon Suite", a.as_str(), d.as_str()]);
    assert_no_tag(&m);
}
