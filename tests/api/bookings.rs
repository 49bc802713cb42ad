//! Bookables, nightly availability, holds and bookings: CRUD and validation through HTTP, holds
//! through the domain functions the conversation calls, and capacity under concurrency and in any order.

use chrono::{Days, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use proptest::prelude::*;
use serde_json::{Value, json};
use threadcart::bookings::{self, BookingError, BookingStatus, HoldError, HoldRequest, StayDates};
use threadcart::db::schema::{bookable_nights, orders};
use threadcart::db::{Db, DbConnection, DbUuid};
use threadcart::kernel::OrderId;
use uuid::Uuid;

use crate::helpers::{
    TestApp, TestDatabase, TestMerchant, assert_problem, eventually, spawn_app, spawn_app_with,
};

fn suite_body(units: i64) -> Value {
    json!({
        "name": "Honeymoon Suite",
        "description": "A king-size bed and a bath for two.",
        "units": units,
        "max_guests": 2,
        "nightly_price": {"amount": "240.00", "currency": "EUR"},
        "min_nights": 1,
        "max_nights": 14,
        "timezone": "Europe/Paris"
    })
}

async fn create_bookable(app: &TestApp, m: &TestMerchant, units: i64) -> Uuid {
    let res = app.post("/v1/bookables", &m.token, suite_body(units)).await;
    assert_eq!(res.status(), 201, "creating a bookable");
    let body: Value = res.json().await.unwrap();
    body["id"].as_str().unwrap().parse().unwrap()
}

/// A date `days` from today, far enough ahead to be in the future in any timezone.
fn in_days(days: u64) -> NaiveDate {
    Utc::now().date_naive() + Days::new(days + 2)
}

fn later(minutes: i64) -> NaiveDateTime {
    threadcart::db::now() + chrono::Duration::minutes(minutes)
}

fn request(bookable_id: Uuid, arrival: NaiveDate, nights: u32, expires_at: NaiveDateTime) -> HoldRequest {
    HoldRequest {
        bookable_id,
        stay: StayDates::new(arrival, nights).unwrap(),
        guests: 2,
        thread_id: None,
        expires_at,
    }
}

async fn hold(
    app: &TestApp,
    merchant_id: threadcart::kernel::MerchantId,
    req: HoldRequest,
) -> Result<bookings::Booking, HoldError> {
    app.db
        .run(move |conn| bookings::hold(conn, merchant_id, &req))
        .await
}

/// Units free per night from `from` for `nights` nights, read through the API.
async fn available(app: &TestApp, token: &str, bookable_id: Uuid, from: NaiveDate, nights: u64) -> Vec<i64> {
    let to = from + Days::new(nights);
    let res = app
        .get(
            &format!("/v1/bookables/{bookable_id}/availability?from={from}&to={to}"),
            token,
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    body["nights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["available"].as_i64().unwrap())
        .collect()
}

/// An order row of the merchant in `status`, as checkout would have left it.
fn order_in(conn: &mut DbConnection, merchant_id: threadcart::kernel::MerchantId, status: &str) -> OrderId {
    let id = OrderId::new();
    let at = threadcart::db::now();
    diesel::insert_into(orders::table)
        .values((
            orders::id.eq(id),
            orders::merchant_id.eq(merchant_id),
            orders::number.eq(format!("DH-{}", id.0.simple())),
            orders::status.eq(status),
            orders::currency.eq("EUR"),
            orders::subtotal_minor.eq(24_000_i64),
            orders::discount_minor.eq(0_i64),
            orders::total_minor.eq(24_000_i64),
            orders::cart_fingerprint.eq("test"),
            orders::created_at.eq(at),
            orders::updated_at.eq(at),
        ))
        .execute(conn)
        .unwrap();
    id
}

// ---- bookables ----------------------------------------------------------------------------------

#[tokio::test]
async fn a_bookable_is_created_read_listed_updated_and_deleted() {
    let app = spawn_app().await;
    let m = app.merchant("Dream Hotels").await;

    let res = app.post("/v1/bookables", &m.token, suite_body(2)).await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    let path = format!("/v1/bookables/{}", created["id"].as_str().unwrap());
    assert_eq!(created["units"], 2);
    assert_eq!(
        created["nightly_price"],
        json!({"amount": "240.00", "currency": "EUR"})
    );
    assert_eq!(created["check_in_time"], "15:00");
    assert_eq!(created["check_out_time"], "11:00");
    assert_eq!(created["timezone"], "Europe/Paris");

    let read: Value = app.get(&path, &m.token).await.json().await.unwrap();
    assert_eq!(read, created);
    let list: Value = app.get("/v1/bookables", &m.token).await.json().await.unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(list["next_cursor"], Value::Null);

    let res = app
        .patch(
            &path,
            &m.token,
            json!({"units": 3, "description": null, "check_in_time": "14:00"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let updated: Value = res.json().await.unwrap();
    assert_eq!(updated["units"], 3);
    assert_eq!(updated["description"], Value::Null);
    assert_eq!(updated["check_in_time"], "14:00");
    assert_eq!(updated["name"], "Honeymoon Suite");

    assert_eq!(app.delete(&path, &m.token).await.status(), 204);
    assert_problem(app.get(&path, &m.token).await, 404, "not_found").await;
    let list: Value = app.get("/v1/bookables", &m.token).await.json().await.unwrap();
    assert_eq!(list["data"], json!([]));
}

#[tokio::test]
async fn a_bookable_with_bad_fields_answers_422_naming_each() {
    let app = spawn_app().await;
    let m = app.merchant("Dream Hotels").await;

    let res = app
        .post(
            "/v1/bookables",
            &m.token,
            json!({
                "name": " ",
                "units": -1,
                "max_guests": 0,
                "nightly_price": {"amount": "240.00", "currency": "USD"},
                "check_in_time": "25:00",
                "timezone": "Mars/Olympus"
            }),
        )
        .await;

    let problem = assert_problem(res, 422, "validation_failed").await;
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "name",
            "units",
            "max_guests",
            "nightly_price",
            "check_in_time",
            "timezone"
        ]
    );
    let list: Value = app.get("/v1/bookables", &m.token).await.json().await.unwrap();
    assert_eq!(list["data"], json!([]));
}

#[tokio::test]
async fn a_shortest_stay_longer_than_the_longest_answers_422() {
    let app = spawn_app().await;
    let m = app.merchant("Dream Hotels").await;
    let id = create_bookable(&app, &m, 1).await;

    let res = app
        .patch(
            &format!("/v1/bookables/{id}"),
            &m.token,
            json!({"min_nights": 20}),
        )
        .await;

    let problem = assert_problem(res, 422, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "min_nights");
}

#[tokio::test]
async fn another_merchant_gets_404_for_a_bookable_and_its_bookings() {
    let app = spawn_app().await;
    let hotel = app.merchant("Dream Hotels").await;
    let other = app.merchant("Other Inn").await;
    let id = create_bookable(&app, &hotel, 1).await;
    let booking = hold(&app, hotel.id, request(id, in_days(10), 2, later(15)))
        .await
        .unwrap();
    let path = format!("/v1/bookables/{id}");

    assert_problem(app.get(&path, &other.token).await, 404, "not_found").await;
    assert_problem(
        app.patch(&path, &other.token, json!({"units": 9})).await,
        404,
        "not_found",
    )
    .await;
    assert_problem(app.delete(&path, &other.token).await, 404, "not_found").await;
    let rates = json!({"rates": [{"from": in_days(1), "to": in_days(2), "price": {"amount": "1.00", "currency": "EUR"}}]});
    assert_problem(
        app.request(
            reqwest::Method::PUT,
            &format!("{path}/rates"),
            &other.token,
            Some(rates),
        )
        .await,
        404,
        "not_found",
    )
    .await;
    let availability = format!("{path}/availability?from={}&to={}", in_days(1), in_days(3));
    assert_problem(app.get(&availability, &other.token).await, 404, "not_found").await;
    let booking_path = format!("/v1/bookings/{}", booking.id);
    assert_problem(app.get(&booking_path, &other.token).await, 404, "not_found").await;
    assert_problem(
        app.post(&format!("{booking_path}/cancel"), &other.token, json!({}))
            .await,
        404,
        "not_found",
    )
    .await;
    let list: Value = app.get("/v1/bookings", &other.token).await.json().await.unwrap();
    assert_eq!(list["data"], json!([]));
    let held = hold(&app, other.id, request(id, in_days(20), 1, later(15))).await;
    assert!(matches!(held, Err(HoldError::BookableNotFound)), "{held:?}");
}

// ---- rates and availability ---------------------------------------------------------------------

#[tokio::test]
async fn rates_override_the_base_price_of_their_nights_and_null_puts_it_back() {
    let app = spawn_app().await;
    let m = app.merchant("Dream Hotels").await;
    let id = create_bookable(&app, &m, 2).await;
    let day = in_days(30);
    let path = format!("/v1/bookables/{id}/rates");
    let put = |rates: Value| {
        app.request(
            reqwest::Method::PUT,
            &path,
            &m.token,
            Some(json!({"rates": rates})),
        )
    };

    let res = put(json!([
        {"from": day + Days::new(1), "to": day + Days::new(3), "price": {"amount": "320.00", "currency": "EUR"}},
        {"from": day + Days::new(2), "to": day + Days::new(3), "price": null}
    ]))
    .await;

    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["nights"], 3);
    let to = day + Days::new(4);
    let body: Value = app
        .get(
            &format!("/v1/bookables/{id}/availability?from={day}&to={to}"),
            &m.token,
        )
        .await
        .json()
        .await
        .unwrap();
    let prices: Vec<&str> = body["nights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["price"]["amount"].as_str().unwrap())
        .collect();
    assert_eq!(prices, ["240.00", "320.00", "240.00", "240.00"]);
    assert_eq!(body["nights"][1]["date"], (day + Days::new(1)).to_string());
    assert_eq!(body["nights"][1]["available"], 2);
    let quote = app
        .db
        .run(move |conn| bookings::quote(conn, m.id, id, StayDates::new(day, 3).unwrap()))
        .await
        .unwrap();
    assert_eq!(quote.total.minor(), 80_000);
    assert!(quote.varies());
}

#[tokio::test]
async fn rates_with_bad_ranges_or_another_currency_answer_422() {
    let app = spawn_app().await;
    let m = app.merchant("Dream Hotels").await;
    let id = create_bookable(&app, &m, 2).await;
    let day = in_days(30);
    let eur = json!({"amount": "300.00", "currency": "EUR"});

    let res = app
        .request(
            reqwest::Method::PUT,
            &format!("/v1/bookables/{id}/rates"),
            &m.token,
            Some(json!({"rates": [
                {"from": day, "to": day, "price": eur},
                {"from": "24/12/2026", "to": day, "price": eur},
                {"from": day, "to": day + Days::new(367), "price": eur}
            ]})),
        )
        .await;
    let problem = assert_problem(res, 422, "validation_failed").await;
    let codes: Vec<(&str, &str)> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["field"].as_str().unwrap(), e["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        codes,
        [
            ("rates[0].to", "out_of_range"),
            ("rates[1].from", "invalid_date"),
            ("rates[2].to", "range_too_long")
        ]
    );

    let res = app
        .request(
            reqwest::Method::PUT,
            &format!("/v1/bookables/{id}/rates"),
            &m.token,
            Some(json!({"rates": [{"from": day, "to": day + Days::new(1), "price": {"amount": "300.00", "currency": "USD"}}]})),
        )
        .await;
    let problem = assert_problem(res, 422, "validation_failed").await;
    assert_eq!(problem["errors"][0]["code"], "currency_mismatch");
}

#[tokio::test]
async fn availability_with_missing_malformed_or_too_long_dates_answers_422() {
    let app = spawn_app().await;
    let m = app.merchant("Dream Hotels").await;
    let id = create_bookable(&app, &m, 2).await;
    let cases = [
        ("to=2026-12-27", "from", "required"),
        ("from=2026-12-20&to=27/12/2026", "to", "invalid_date"),
        ("from=2026-12-20&to=2026-12-20", "to", "out_of_range"),
        ("from=2026-01-01&to=2027-01-03", "to", "range_too_long"),
    ];

    for (query, field, code) in cases {
        let res = app
            .get(&format!("/v1/bookables/{id}/availability?{query}"), &m.token)
            .await;

        let problem = assert_problem(res, 422, "validation_failed").await;
        assert_eq!(problem["errors"][0]["field"], field, "{query}");
        assert_eq!(problem["errors"][0]["code"], code, "{query}");
    }
}

// ---- holds --------------------------------------------------------------------------------------

#[tokio::test]
async fn twenty_overlapping_holds_on_the_last_room_let_exactly_one_win() {
    let app = spawn_app().await;
    let m = app.merchant("Dream Hotels").await;
    let id = create_bookable(&app, &m, 1).await;
    let first = in_days(40);

    let tasks: Vec<_> = (0..20u64)
        .map(|i| {
            let db = app.db.clone();
            // Stays of 3 or 4 nights arriving over 3 days: all of them share the third night.
            let req = request(id, first + Days::new(i % 3), 3 + (i % 2) as u32, later(15));
            tokio::spawn(async move { db.run(move |conn| bookings::hold(conn, m.id, &req)).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }

    let won: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
    assert_eq!(won.len(), 1, "{outcomes:?}");
    assert!(
        outcomes
            .iter()
            .filter(|o| o.is_err())
            .all(|o| matches!(o, Err(HoldError::Unavailable))),
        "{outcomes:?}"
    );
    let stay = won[0].stay;
    let nights = available(&app, &m.token, id, first, 7).await;
    let expected: Vec<i64> = (0..7)
        .map(|d| {
            let night = first + Days::new(d);
            i64::from(!(stay.arrival() <= night && night < stay.departure()))
        })
        .collect();
    assert_eq!(nights, expected);
}

#[tokio::test]
async fn a_hold_breaking_the_rooms_rules_is_refused_and_takes_nothing() {
    let app = spawn_app().await;
    let m = app.merchant("Dream Hotels").await;
    let id = create_bookable(&app, &m, 1).await;
    let day = in_days(10);

    let too_many = HoldRequest {
        guests: 3,
        ..request(id, day, 2, later(15))
    };
    let refused = [
        hold(&app, m.id, too_many).await,
        hold(&app, m.id, request(id, day, 15, later(15))).await,
        hold(
            &app,
            m.id,
            request(id, Utc::now().date_naive() - Days::new(3), 1, later(15)),
        )
        .await,
    ];

    assert!(
        matches!(refused[0], Err(HoldError::Guests { max: 2 })),
        "{:?}",
        refused[0]
    );
    assert!(
        matches!(refused[1], Err(HoldError::Nights { min: 1, max: 14 })),
        "{:?}",
        refused[1]
    );
    assert!(
        matches!(refused[2], Err(HoldError::ArrivalPassed)),
        "{:?}",
        refused[2]
    );
    assert_eq!(available(&app, &m.token, id, day, 3).await, [1, 1, 1]);
}

#[tokio::test]
async fn an_expired_hold_gives_its_nights_back() {
    let app = spawn_app().await;
    let m = app.merchant("Dream Hotels").await;
    let id = create_bookable(&app, &m, 1).await;
    let day = in_days(10);
    let held = hold(&app, m.id, request(id, day, 2, later(15))).await.unwrap();
    assert_eq!(available(&app, &m.token, id, day, 3).await, [0, 0, 1]);

    let before = app
        .db
        .query(move |conn| bookings::expire_holds(conn, later(14)))
        .await
        .unwrap();
    let after = app
        .db
        .query(move |conn| bookings::expire_holds(conn, later(16)))
        .await
        .unwrap();
    let again = app
        .db
        .query(move |conn| bookings::expire_holds(conn, later(17)))
        .await
        .unwrap();

    assert_eq!((before, after, again), (0, 1, 0));
    assert_eq!(available(&app, &m.token, id, day, 3).await, [1, 1, 1]);
    let booking: Value = app
        .get(&format!("/v1/bookings/{}", held.id), &m.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(booking["status"], "expired");
    assert!(hold(&app, m.id, request(id, day, 2, later(15))).await.is_ok());
}

#[tokio::test]
async fn the_sweeper_expires_a_hold_past_its_time_without_being_asked() {
    let app = spawn_app_with(&[("THREADCART_SWEEP_SECS", "1")]).await;
    let m = app.merchant("Dream Hotels").await;
    let id = create_bookable(&app, &m, 1).await;
    let day = in_days(10);
    let held = hold(&app, m.id, request(id, day, 2, later(-1))).await.unwrap();

    eventually("the overdue hold to expire", || async {
        available(&app, &m.token, id, day, 2).await == [1, 1]
    })
    .await;

    let booking: Value = app
        .get(&format!("/v1/bookings/{}", held.id), &m.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(booking["status"], "expired");
}

#[tokio::test]
async fn a_confirmed_stay_keeps_its_nights_past_the_hold_expiry() {
    let app = spawn_app().await;
    let m = app.merchant("Dream Hotels").await;
    let id = create_bookable(&app, &m, 1).await;
    let day = in_days(10);
    let held = hold(&app, m.id, request(id, day, 2, later(15))).await.unwrap();
    let order = app
        .db
        .run_blocking(|conn| Ok::<_, threadcart::db::DbError>(order_in(conn, m.id, "paid")))
        .unwrap();

    let confirmed = app
        .db
        .run(move |conn| bookings::confirm(conn, held.id, order))
        .await
        .unwrap();
    let twice = app
        .db
        .run(move |conn| bookings::confirm(conn, held.id, order))
        .await
        .unwrap();
    let expired = app
        .db
        .query(move |conn| bookings::expire_holds(conn, later(60)))
        .await
        .unwrap();

    assert_eq!(confirmed.status, BookingStatus::Confirmed);
    assert_eq!(twice, confirmed);
    assert_eq!(confirmed.order_id, Some(order));
    assert_eq!(expired, 0);
    assert_eq!(available(&app, &m.token, id, day, 3).await, [0, 0, 1]);
}

#[tokio::test]
async fn no_availability_proposes_the_nearest_dates_and_another_room() {
    let app = spawn_app().await;
    let m = app.merchant("Dream Hotels").await;
    let suite = create_bookable(&app, &m, 1).await;
    let double = create_bookable(&app, &m, 1).await;
    let day = in_days(10);
    hold(&app, m.id, request(suite, day, 2, later(15))).await.unwrap();
    let wanted = StayDates::new(day + Days::new(1), 2).unwrap();
    let today = Utc::now().date_naive();

    let refused = hold(&app, m.id, request(suite, wanted.arrival(), 2, later(15))).await;
    let alternatives = app
        .db
        .run(move |conn| bookings::nearest_available(conn, m.id, suite, wanted, 2, today))
        .await
        .unwrap();

    assert!(matches!(refused, Err(HoldError::Unavailable)), "{refused:?}");
    assert_eq!(
        alternatives.dates,
        Some(StayDates::new(day + Days::new(2), 2).unwrap())
    );
    assert_eq!(
        alternatives.rooms.iter().map(|r| r.id).collect::<Vec<_>>(),
        [double]
    );
}

// ---- bookings -----------------------------------------------------------------------------------

#[tokio::test]
async fn cancelling_a_booking_gives_its_nights_back_once() {
    let app = spawn_app().await;
    let m = app.merchant("Dream Hotels").await;
    let id = create_bookable(&app, &m, 1).await;
    let day = in_days(10);
    let held = hold(&app, m.id, request(id, day, 2, later(15))).await.unwrap();
    let path = format!("/v1/bookings/{}/cancel", held.id);

    let res = app.post(&path, &m.token, json!({})).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["status"], "cancelled");
    let again = app.request(reqwest::Method::POST, &path, &m.token, None).await;

    assert_eq!(again.status(), 200);
    assert_eq!(available(&app, &m.token, id, day, 3).await, [1, 1, 1]);
}

#[tokio::test]
async fn cancelling_a_confirmed_booking_frees_its_booked_nights() {
    let app = spawn_app().await;
    let m = app.merchant("Dream Hotels").await;
    let id = create_bookable(&app, &m, 1).await;
    let day = in_days(10);
    let held = hold(&app, m.id, request(id, day, 3, later(15))).await.unwrap();
    let order = app
        .db
        .run_blocking(|conn| Ok::<_, threadcart::db::DbError>(order_in(conn, m.id, "paid")))
        .unwrap();
    app.db
        .run(move |conn| bookings::confirm(conn, held.id, order))
        .await
        .unwrap();

    let res = app
        .post(&format!("/v1/bookings/{}/cancel", held.id), &m.token, json!({}))
        .await;

    assert_eq!(res.status(), 200);
    assert_eq!(available(&app, &m.token, id, day, 3).await, [1, 1, 1]);
}

#[tokio::test]
async fn a_refund_is_refused_for_a_booking_without_a_paid_order_and_nothing_is_cancelled() {
    let stripe = crate::stripe_fake::FakeStripe::start().await;
    let env = crate::checkout::stripe_env(&stripe);
    let extra: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = crate::helpers::spawn_app_with(&extra).await;
    let m = app.merchant("Dream Hotels").await;
    let id = create_bookable(&app, &m, 2).await;
    let unpaid = hold(&app, m.id, request(id, in_days(10), 2, later(15)))
        .await
        .unwrap();

    let refused = app
        .post(
            &format!("/v1/bookings/{}/cancel", unpaid.id),
            &m.token,
            json!({"refund": true}),
        )
        .await;

    assert_problem(refused, 409, "nothing_to_refund").await;
    assert_eq!(
        available(&app, &m.token, id, in_days(10), 2).await,
        [1, 1],
        "nothing cancelled"
    );
    assert!(stripe.received().is_empty());
}

#[tokio::test]
async fn cancelling_an_expired_hold_answers_409() {
    let app = spawn_app().await;
    let m = app.merchant("Dream Hotels").await;
    let id = create_bookable(&app, &m, 1).await;
    let held = hold(&app, m.id, request(id, in_days(10), 1, later(1)))
        .await
        .unwrap();
    app.db
        .query(move |conn| bookings::expire_holds(conn, later(2)))
        .await
        .unwrap();

    let res = app
        .post(&format!("/v1/bookings/{}/cancel", held.id), &m.token, json!({}))
        .await;

    assert_problem(res, 409, "booking_not_active").await;
    assert_eq!(available(&app, &m.token, id, in_days(10), 1).await, [1]);
}

#[tokio::test]
async fn bookings_are_listed_by_status_dates_and_bookable() {
    let app = spawn_app().await;
    let m = app.merchant("Dream Hotels").await;
    let suite = create_bookable(&app, &m, 3).await;
    let double = create_bookable(&app, &m, 3).await;
    let day = in_days(10);
    let a = hold(&app, m.id, request(suite, day, 2, later(15))).await.unwrap();
    let b = hold(&app, m.id, request(suite, day + Days::new(5), 2, later(15)))
        .await
        .unwrap();
    let c = hold(&app, m.id, request(double, day, 1, later(15)))
        .await
        .unwrap();
    app.post(&format!("/v1/bookings/{}/cancel", c.id), &m.token, json!({}))
        .await;
    let ids = |body: Value| -> Vec<String> {
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let list = |query: String| {
        let app = &app;
        let token = m.token.clone();
        async move {
            let res = app.get(&format!("/v1/bookings?{query}"), &token).await;
            assert_eq!(res.status(), 200, "{query}");
            res.json::<Value>().await.unwrap()
        }
    };

    assert_eq!(
        ids(list(String::new()).await),
        [c.id, b.id, a.id].map(|i| i.to_string())
    );
    assert_eq!(
        ids(list("status=held".into()).await),
        [b.id, a.id].map(|i| i.to_string())
    );
    assert_eq!(
        ids(list(format!("bookable_id={double}")).await),
        [c.id.to_string()]
    );
    let (from, to) = (day + Days::new(1), day + Days::new(6));
    assert_eq!(
        ids(list(format!("from={from}&to={to}&status=held")).await),
        [b.id, a.id].map(|i| i.to_string())
    );
    let (from, to) = (day + Days::new(2), day + Days::new(5));
    assert_eq!(
        ids(list(format!("from={from}&to={to}")).await),
        Vec::<String>::new()
    );
    let page = list("limit=2".into()).await;
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    assert_eq!(
        ids(list(format!("limit=2&cursor={cursor}")).await),
        [a.id.to_string()]
    );
    let bad = app.get("/v1/bookings?status=paid&from=tomorrow", &m.token).await;
    let problem = assert_problem(bad, 422, "validation_failed").await;
    assert_eq!(problem["errors"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn units_cannot_go_below_what_is_held_and_a_bookable_with_stays_cannot_be_deleted() {
    let app = spawn_app().await;
    let m = app.merchant("Dream Hotels").await;
    let id = create_bookable(&app, &m, 2).await;
    hold(&app, m.id, request(id, in_days(10), 2, later(15)))
        .await
        .unwrap();
    hold(&app, m.id, request(id, in_days(11), 2, later(15)))
        .await
        .unwrap();
    let path = format!("/v1/bookables/{id}");

    assert_problem(
        app.patch(&path, &m.token, json!({"units": 1})).await,
        409,
        "units_taken",
    )
    .await;
    assert_problem(app.delete(&path, &m.token).await, 409, "bookable_has_stays").await;
    assert_eq!(
        app.patch(&path, &m.token, json!({"units": 3})).await.status(),
        200
    );
}

// ---- capacity in any order ----------------------------------------------------------------------

/// One step of the property test.
#[derive(Debug, Clone)]
enum Step {
    Hold { arrival: u64, nights: u32 },
    Confirm(usize),
    Release(usize),
    Cancel(usize),
    ExpireUpTo(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0u64..5, 1u32..4).prop_map(|(arrival, nights)| Step::Hold { arrival, nights }),
        1 => (0usize..12).prop_map(Step::Confirm),
        1 => (0usize..12).prop_map(Step::Release),
        1 => (0usize..12).prop_map(Step::Cancel),
        1 => (0usize..12).prop_map(Step::ExpireUpTo),
    ]
}

const UNITS: u32 = 2;

/// The model: each stay's first night, nights, status, and hold expiry order.
struct Model {
    stays: Vec<(u64, u64, BookingStatus)>,
}

impl Model {
    fn taken(&self, night: u64) -> u32 {
        let takes = |s: &BookingStatus| matches!(s, BookingStatus::Held | BookingStatus::Confirmed);
        self.stays
            .iter()
            .filter(|(a, n, s)| takes(s) && *a <= night && night < a + n)
            .count() as u32
    }

    fn fits(&self, arrival: u64, nights: u64) -> bool {
        (arrival..arrival + nights).all(|night| self.taken(night) < UNITS)
    }
}

/// Applies `steps` through the domain functions and checks after each that the nights match the model
/// and are never negative or over-sold.
fn run_steps(
    db: &Db,
    merchant_id: threadcart::kernel::MerchantId,
    order_id: OrderId,
    steps: &[Step],
) -> Result<(), TestCaseError> {
    let first = in_days(20);
    let base = threadcart::db::now() + chrono::Duration::hours(1);
    let spec = bookings::BookableSpec {
        name: "Room".into(),
        description: None,
        image_url: None,
        units: UNITS,
        max_guests: 2,
        base_price: threadcart::money::Money::from_minor(10_000, "EUR".parse().unwrap()),
        min_nights: 1,
        max_nights: 5,
        check_in: chrono::NaiveTime::from_hms_opt(15, 0, 0).unwrap(),
        check_out: chrono::NaiveTime::from_hms_opt(11, 0, 0).unwrap(),
        timezone: chrono_tz::Europe::Paris,
        active: true,
        labels: threadcart::kernel::Labels::default(),
    };
    let bookable = db
        .run_blocking(|conn| bookings::create(conn, merchant_id, &spec))
        .unwrap();
    let mut model = Model { stays: Vec::new() };
    let mut ids: Vec<Uuid> = Vec::new();
    for step in steps {
        db.run_blocking(|conn| -> Result<(), TestCaseError> {
            apply(
                conn,
                &mut model,
                &mut ids,
                step,
                (merchant_id, bookable.id, order_id),
                (first, base),
            )
        })?;
        let rows: Vec<(NaiveDate, i32, i32)> = db
            .query_blocking(|conn| {
                bookable_nights::table
                    .filter(bookable_nights::bookable_id.eq(DbUuid(bookable.id)))
                    .select((
                        bookable_nights::night,
                        bookable_nights::held,
                        bookable_nights::booked,
                    ))
                    .load(conn)
            })
            .unwrap();
        for (night, held, booked) in rows {
            prop_assert!(
                held >= 0 && booked >= 0,
                "negative on {night}: {held} held, {booked} booked"
            );
            prop_assert!((held + booked) as u32 <= UNITS, "over-sold on {night}");
            let offset = (night - first).num_days() as u64;
            prop_assert_eq!(
                (held + booked) as u32,
                model.taken(offset),
                "night {} after {:?}",
                night,
                step
            );
        }
    }
    Ok(())
}

fn apply(
    conn: &mut DbConnection,
    model: &mut Model,
    ids: &mut Vec<Uuid>,
    step: &Step,
    (merchant_id, bookable_id, order_id): (threadcart::kernel::MerchantId, Uuid, OrderId),
    (first, base): (NaiveDate, NaiveDateTime),
) -> Result<(), TestCaseError> {
    let pick = |i: usize| (!ids.is_empty()).then(|| i % ids.len());
    match *step {
        Step::Hold { arrival, nights } => {
            let expires_at = base + chrono::Duration::minutes(ids.len() as i64);
            let req = request(bookable_id, first + Days::new(arrival), nights, expires_at);
            let fits = model.fits(arrival, u64::from(nights));
            match bookings::hold(conn, merchant_id, &req) {
                Ok(b) => {
                    prop_assert!(fits, "held a stay the model has no room for");
                    ids.push(b.id);
                    model
                        .stays
                        .push((arrival, u64::from(nights), BookingStatus::Held));
                }
                Err(HoldError::Unavailable) => prop_assert!(!fits, "refused a stay that fits"),
                Err(e) => return Err(TestCaseError::fail(format!("{e:?}"))),
            }
        }
        Step::Confirm(i) => {
            let Some(i) = pick(i) else { return Ok(()) };
            let (arrival, nights, status) = model.stays[i];
            let result = bookings::confirm(conn, ids[i], order_id);
            let expected = match status {
                BookingStatus::Held | BookingStatus::Confirmed => Some(BookingStatus::Confirmed),
                BookingStatus::Expired | BookingStatus::Released if model.fits(arrival, nights) => {
                    Some(BookingStatus::Confirmed)
                }
                _ => None,
            };
            match (result, expected) {
                (Ok(b), Some(s)) => {
                    prop_assert_eq!(b.status, s);
                    model.stays[i].2 = s;
                }
                (Err(BookingError::NoLongerAvailable | BookingError::WrongStatus(_)), None) => {}
                (other, expected) => {
                    return Err(TestCaseError::fail(format!(
                        "confirm {status}: {other:?}, expected {expected:?}"
                    )));
                }
            }
        }
        Step::Release(i) => {
            let Some(i) = pick(i) else { return Ok(()) };
            let status = model.stays[i].2;
            let result = bookings::release(conn, ids[i]);
            match status {
                BookingStatus::Held => {
                    prop_assert_eq!(result.map(|b| b.status).ok(), Some(BookingStatus::Released));
                    model.stays[i].2 = BookingStatus::Released;
                }
                BookingStatus::Expired | BookingStatus::Released => prop_assert!(result.is_ok()),
                _ => prop_assert!(matches!(result, Err(BookingError::WrongStatus(_)))),
            }
        }
        Step::Cancel(i) => {
            let Some(i) = pick(i) else { return Ok(()) };
            let status = model.stays[i].2;
            let result = bookings::cancel(conn, merchant_id, ids[i]);
            match status {
                BookingStatus::Held | BookingStatus::Confirmed | BookingStatus::Cancelled => {
                    prop_assert_eq!(result.map(|b| b.status).ok(), Some(BookingStatus::Cancelled));
                    model.stays[i].2 = BookingStatus::Cancelled;
                }
                _ => prop_assert!(matches!(result, Err(BookingError::WrongStatus(_)))),
            }
        }
        Step::ExpireUpTo(k) => {
            bookings::expire_holds(conn, base + chrono::Duration::minutes(k as i64)).unwrap();
            for (i, stay) in model.stays.iter_mut().enumerate() {
                if i <= k && stay.2 == BookingStatus::Held {
                    stay.2 = BookingStatus::Expired;
                }
            }
        }
    }
    Ok(())
}

#[test]
fn holds_confirmations_expiries_and_cancellations_in_any_order_never_oversell_a_night() {
    let database = TestDatabase::new();
    let db = Db::connect(&database.url, 2).unwrap();
    let merchant_id = db
        .run_blocking(|conn| {
            let new =
                threadcart::merchants::NewMerchant::parse("Dream Hotels", "EUR", "Europe/Paris").unwrap();
            threadcart::merchants::create(conn, &new, None).map_err(threadcart::db::DbError::from)
        })
        .unwrap();
    let merchant_id = merchant_id.id;
    let order_id = db
        .run_blocking(|conn| Ok::<_, threadcart::db::DbError>(order_in(conn, merchant_id, "paid")))
        .unwrap();
    let config = ProptestConfig {
        cases: 24,
        ..ProptestConfig::default()
    };

    proptest!(config, |(steps in proptest::collection::vec(step(), 1..30))| {
        run_steps(&db, merchant_id, order_id, &steps)?;
    });
}
