//! Stays booked in the thread: rooms, dates, nights, guests, the hold, the view upgrade, Book and pay
//! through the local Stripe, and what it does to the nights. Through the signed webhook, the workers and
//! the local Graph and Stripe servers.

use chrono::{Days, NaiveDate, Utc};
use serde_json::{Value, json};
use threadcart::checkout::orders::{self, OrderStatus};
use threadcart::db::{DbError, now};
use uuid::Uuid;

use crate::checkout::{post_stripe_event, shop_with_stripe};
use crate::helpers::{
    MessengerApp, PAGE_ID, button, delivery, eventually, next_message, now_ms, sent_to, tap_postback,
    tap_quick_reply, template,
};

/// A date `days` from today, in the future in any timezone.
pub fn in_days(days: u64) -> NaiveDate {
    Utc::now().date_naive() + Days::new(days + 2)
}

/// A room type of the shop, in Paris, at `price` a night.
pub async fn room(m: &MessengerApp, name: &str, units: i64, price: &str) -> Uuid {
    let res = m
        .app
        .post(
            "/v1/bookables",
            &m.merchant.token,
            json!({"name": name, "units": units, "max_guests": 2,
                   "nightly_price": {"amount": price, "currency": "EUR"},
                   "min_nights": 1, "max_nights": 14, "timezone": "Europe/Paris"}),
        )
        .await;
    assert_eq!(res.status(), 201, "creating {name}");
    let body: Value = res.json().await.unwrap();
    body["id"].as_str().unwrap().parse().unwrap()
}

/// The suite (1 unit at 240.00) and its sea-view upgrade (1 unit) at +40.00 a night.
async fn hotel(m: &MessengerApp) -> (Uuid, Uuid) {
    let suite = room(m, "Honeymoon Suite", 1, "240.00").await;
    let sea = room(m, "Sea-view Honeymoon Suite", 1, "280.00").await;
    let res = m
        .app
        .post(
            "/v1/offers",
            &m.merchant.token,
            json!({"kind": "upgrade", "trigger": {"bookable_id": suite},
                   "offer": {"bookable_id": sea, "night_delta": {"amount": "40.00", "currency": "EUR"}},
                   "text": "Wake up to the sea:"}),
        )
        .await;
    assert_eq!(res.status(), 201, "creating the upgrade");
    (suite, sea)
}

/// Units free per night from `from` for `nights` nights.
pub async fn available(m: &MessengerApp, bookable: Uuid, from: NaiveDate, nights: u64) -> Vec<i64> {
    let to = from + Days::new(nights);
    let body: Value = m
        .app
        .get(
            &format!("/v1/bookables/{bookable}/availability?from={from}&to={to}"),
            &m.merchant.token,
        )
        .await
        .json()
        .await
        .unwrap();
    body["nights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["available"].as_i64().unwrap())
        .collect()
}

fn quick_reply<'a>(message: &'a Value, title: &str) -> &'a str {
    button(&message["quick_replies"], title)
}

async fn say(m: &MessengerApp, psid: &str, text: &str) {
    let event = json!({"sender": {"id": psid}, "recipient": {"id": PAGE_ID}, "timestamp": now_ms(),
        "message": {"mid": format!("m-{}", Uuid::new_v4()), "text": text}});
    assert_eq!(
        m.app.post_webhook(&delivery(PAGE_ID, vec![event])).await.status(),
        200
    );
}

fn text_starts(message: &Value, start: &str) -> bool {
    message["text"].as_str().is_some_and(|t| t.starts_with(start))
}

/// The shopper asks for a room, picks the suite, types the arrival, 2 nights, 2 guests; answers the
/// message of the held stay's summary (or of why it could not be held).
pub async fn hold_the_suite(m: &MessengerApp, psid: &str, arrival: NaiveDate) -> Value {
    let seen = sent_to(m, psid).len();
    say(m, psid, "book a room").await;
    let rooms = next_message(m, psid, seen, |v| template(v)["template_type"] == "generic").await;
    let suite_card = template(&rooms)["elements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["title"] == "Honeymoon Suite")
        .unwrap()
        .clone();
    let seen = sent_to(m, psid).len();
    tap_postback(
        m,
        psid,
        "Choose dates",
        button(&suite_card["buttons"], "Choose dates"),
    )
    .await;
    next_message(m, psid, seen, |v| text_starts(v, "When would you like to arrive")).await;
    let seen = sent_to(m, psid).len();
    say(m, psid, &arrival.format("%d/%m/%Y").to_string()).await;
    let nights = next_message(m, psid, seen, |v| text_starts(v, "Arriving")).await;
    let seen = sent_to(m, psid).len();
    tap_quick_reply(m, psid, "2 nights", quick_reply(&nights, "2 nights")).await;
    let guests = next_message(m, psid, seen, |v| {
        v["text"]
            .as_str()
            .is_some_and(|t| t.ends_with("How many guests?"))
    })
    .await;
    let seen = sent_to(m, psid).len();
    tap_quick_reply(m, psid, "2 guests", quick_reply(&guests, "2 guests")).await;
    next_message(m, psid, seen, |v| {
        text_starts(v, "Honeymoon Suite,")
            || text_starts(v, "Sorry, the Honeymoon Suite")
            || text_starts(v, "Your cart cannot hold that much")
    })
    .await
}

async fn orders_of(m: &MessengerApp) -> Vec<Value> {
    let body: Value = m
        .app
        .get("/v1/orders", &m.merchant.token)
        .await
        .json()
        .await
        .unwrap();
    body["data"].as_array().unwrap().clone()
}

async fn bookings_of(m: &MessengerApp, status: &str) -> Vec<Value> {
    let body: Value = m
        .app
        .get(&format!("/v1/bookings?status={status}"), &m.merchant.token)
        .await
        .json()
        .await
        .unwrap();
    body["data"].as_array().unwrap().clone()
}

/// Taps Upgrade, then Book and pay; answers the order once its Pay button is sent.
async fn upgrade_and_check_out(m: &MessengerApp, psid: &str) -> Value {
    let offer = next_message(m, psid, 0, |v| {
        template(v)["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("Wake up to the sea:"))
    })
    .await;
    // The summary's "Book and pay" comes after the offer: wait for it too before tapping.
    next_message(m, psid, 0, |v| {
        template(v)["text"]
            .as_str()
            .is_some_and(|t| t.ends_with("Ready to book?"))
    })
    .await;
    let seen = sent_to(m, psid).len();
    tap_postback(
        m,
        psid,
        "Upgrade",
        button(&template(&offer)["buttons"], "Upgrade"),
    )
    .await;
    next_message(m, psid, seen, |v| {
        text_starts(v, "Upgraded to the Sea-view Honeymoon Suite.")
    })
    .await;
    let book = next_message(m, psid, seen, |v| {
        template(v)["text"]
            .as_str()
            .is_some_and(|t| t.ends_with("Ready to book?"))
    })
    .await;
    let seen = sent_to(m, psid).len();
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
    orders_of(m).await.first().unwrap().clone()
}

#[tokio::test]
async fn a_stay_upgraded_in_the_thread_and_paid_is_booked_for_exactly_its_nights() {
    let (m, stripe) = shop_with_stripe().await;
    let (suite, sea) = hotel(&m).await;
    let arrival = in_days(10);

    let held = hold_the_suite(&m, "S1", arrival).await;
    let order = upgrade_and_check_out(&m, "S1").await;
    let session = order["stripe_session_id"].as_str().unwrap().to_owned();
    stripe.complete_session(&session);
    post_stripe_event(&m, "checkout.session.completed", &session).await;
    let order_url = format!("/v1/orders/{}", order["id"].as_str().unwrap());
    eventually("the order is paid", || async {
        let o: Value = m
            .app
            .get(&order_url, &m.merchant.token)
            .await
            .json()
            .await
            .unwrap();
        o["status"] == "paid"
    })
    .await;

    assert!(text_starts(&held, "Honeymoon Suite,"), "{held}");
    assert_eq!(
        order["total"],
        json!({"amount": "560.00", "currency": "EUR"}),
        "2 × 240.00 + 2 × 40.00"
    );
    let line = &order["lines"][0];
    assert_eq!(line["title"], "Sea-view Honeymoon Suite");
    assert_eq!(line["sku"], "STAY");
    let confirmed = bookings_of(&m, "confirmed").await;
    assert_eq!(confirmed.len(), 1);
    assert_eq!(line["booking_id"], confirmed[0]["id"]);
    assert_eq!(confirmed[0]["bookable_id"], json!(sea.to_string()));
    let before = arrival - Days::new(1);
    assert_eq!(available(&m, sea, before, 4).await, [1, 0, 0, 1]);
    assert_eq!(
        available(&m, suite, before, 4).await,
        [1, 1, 1, 1],
        "the suite was given back"
    );
    eventually("the receipt names the stay", || async {
        sent_to(&m, "S1").iter().any(|v| {
            template(v)["template_type"] == "receipt"
                && template(v)["elements"][0]["title"] == "Sea-view Honeymoon Suite"
        })
    })
    .await;
}

#[tokio::test]
async fn an_expired_order_gives_the_nights_of_its_stay_back() {
    let (m, _stripe) = shop_with_stripe().await;
    let (_, sea) = hotel(&m).await;
    let arrival = in_days(12);
    hold_the_suite(&m, "S2", arrival).await;
    let order = upgrade_and_check_out(&m, "S2").await;
    let before = arrival - Days::new(1);
    assert_eq!(available(&m, sea, before, 4).await, [1, 0, 0, 1]);

    let id: threadcart::kernel::OrderId = order["id"].as_str().unwrap().parse().unwrap();
    let moved = m
        .app
        .db
        .run_blocking(move |conn| {
            Ok::<_, DbError>(orders::transition(conn, id, OrderStatus::Expired, None, now()))
        })
        .unwrap()
        .unwrap();

    assert!(moved);
    assert_eq!(available(&m, sea, before, 4).await, [1, 1, 1, 1]);
    assert_eq!(
        bookings_of(&m, "released").await.len(),
        2,
        "the suite, then the upgraded stay"
    );
}

#[tokio::test]
async fn two_shoppers_racing_for_the_last_suite_leave_one_holding_it_and_the_other_offered_alternatives() {
    let (m, _stripe) = shop_with_stripe().await;
    let (suite, _) = hotel(&m).await;
    let arrival = in_days(14);

    let (first, second) = tokio::join!(
        hold_the_suite(&m, "S3", arrival),
        hold_the_suite(&m, "S4", arrival)
    );

    let replies = [first, second];
    let holding = replies
        .iter()
        .filter(|r| text_starts(r, "Honeymoon Suite,"))
        .count();
    let refused: Vec<&Value> = replies
        .iter()
        .filter(|r| text_starts(r, "Sorry, the Honeymoon Suite is not available"))
        .collect();
    assert_eq!(holding, 1);
    assert_eq!(refused.len(), 1);
    let titles: Vec<&str> = refused[0]["quick_replies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["title"].as_str().unwrap())
        .collect();
    assert!(titles.contains(&"Sea-view Honeymoon…"), "{titles:?}");
    assert_eq!(available(&m, suite, arrival, 2).await, [0, 0]);
    assert_eq!(bookings_of(&m, "held").await.len(), 1);
}

#[tokio::test]
async fn a_paid_stay_cancelled_with_a_refund_gives_the_nights_and_the_money_back_once() {
    let (m, stripe) = shop_with_stripe().await;
    let (_, sea) = hotel(&m).await;
    let arrival = in_days(12);
    hold_the_suite(&m, "S9", arrival).await;
    let order = upgrade_and_check_out(&m, "S9").await;
    let session = order["stripe_session_id"].as_str().unwrap().to_owned();
    stripe.complete_session(&session);
    post_stripe_event(&m, "checkout.session.completed", &session).await;
    eventually("the stay is confirmed", || async {
        bookings_of(&m, "confirmed").await.len() == 1
    })
    .await;
    let booking = bookings_of(&m, "confirmed").await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let cancel = format!("/v1/bookings/{booking}/cancel");
    let before = arrival - Days::new(1);
    assert_eq!(available(&m, sea, before, 4).await, [1, 0, 0, 1]);

    let first = m
        .app
        .post(&cancel, &m.merchant.token, json!({"refund": true}))
        .await;
    let again = m
        .app
        .post(&cancel, &m.merchant.token, json!({"refund": true}))
        .await;

    assert_eq!(first.status(), 200);
    assert_eq!(again.status(), 200);
    let (first, again): (Value, Value) = (first.json().await.unwrap(), again.json().await.unwrap());
    assert_eq!(first["status"], "cancelled");
    assert_eq!(
        first["refund"]["amount"],
        json!({"amount": "560.00", "currency": "EUR"})
    );
    assert_eq!(first["refund"]["id"], again["refund"]["id"], "one refund");
    let refunds: Vec<_> = stripe
        .received()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/refunds")
        .collect();
    assert_eq!(refunds.len(), 1, "Stripe was asked once");
    assert_eq!(
        refunds[0].idempotency_key.as_deref(),
        Some(format!("booking-{booking}-cancel-refund").as_str())
    );
    let o: Value = m
        .app
        .get(
            &format!("/v1/orders/{}", order["id"].as_str().unwrap()),
            &m.merchant.token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(o["status"], "refunded");
    assert_eq!(
        available(&m, sea, before, 4).await,
        [1, 1, 1, 1],
        "the nights are free again"
    );
}
