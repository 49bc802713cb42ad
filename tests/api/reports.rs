//! Attribution, funnel reports and the Conversions API. Shoppers, touches and orders are made through
//! the library on the test server's database (touch times chosen by the test), the way the conversation
//! and the payments worker make them; reports are read over HTTP.

use chrono::{Duration, NaiveDateTime, TimeZone};
use serde_json::{Value, json};
use threadcart::attribution::{self, FunnelStep};
use threadcart::checkout::orders::{self, Order, OrderStatus};
use threadcart::conversations;
use threadcart::db::{Db, now};
use threadcart::engine::Referral;
use threadcart::kernel::{OrderId, ThreadId};
use threadcart::money::{Currency, Money};
use uuid::Uuid;

use crate::helpers::{MessengerApp, PAGE_ID, TestApp, assert_problem, eventually, spawn_messenger_app};

/// The shop of [`spawn_messenger_app`] with a gift card (20.00 EUR, plenty in stock) to sell.
struct Shop {
    m: MessengerApp,
    variant: Uuid,
}

async fn shop() -> Shop {
    let m = spawn_messenger_app().await;
    let product = m
        .app
        .create_product(
            &m.merchant.token,
            json!({"retailer_id": "GIFT-01", "title": "Gift card",
                   "variants": [{"sku": "GIFT-01-20", "name": "20", "price": {"amount": "20.00", "currency": "EUR"}, "stock": 100000}]}),
        )
        .await;
    let variant = product["variants"][0]["id"].as_str().unwrap().parse().unwrap();
    Shop { m, variant }
}

impl Shop {
    fn db(&self) -> &Db {
        &self.m.app.db
    }

    fn merchant(&self) -> threadcart::kernel::MerchantId {
        self.m.merchant.id
    }
}

fn eur(minor: i64) -> Money {
    Money::from_minor(minor, Currency::parse("EUR").unwrap())
}

/// A new shopper's thread on the Page.
fn shopper(db: &Db, merchant_id: threadcart::kernel::MerchantId, psid: &str) -> ThreadId {
    db.query_blocking(|conn| {
        let customer = conversations::ensure_customer(
            conn,
            merchant_id,
            threadcart::kernel::Channel::Messenger,
            &PAGE_ID.into(),
            &psid.into(),
        )?;
        let customer = conversations::customer(conn, customer)?;
        Ok(conversations::ensure_thread(conn, &customer)?.id)
    })
    .unwrap()
}

/// A touch on the thread at `at`: an ad click (`ad` set, source ADS) or an m.me link (source SHORTLINK).
fn touched(db: &Db, thread_id: ThreadId, ad: Option<&str>, ref_: Option<&str>, at: NaiveDateTime) {
    let referral = Referral {
        source: if ad.is_some() { "ADS" } else { "SHORTLINK" }.into(),
        kind: "OPEN_THREAD".into(),
        ref_: ref_.map(str::to_owned),
        ad_id: ad.map(str::to_owned),
        ad_title: ad.map(|a| format!("Ad {a}")),
        post_id: None,
        product_id: ad.map(|_| "GIFT-01".to_owned()),
        ads_context_data: None,
        ..Referral::default()
    };
    db.query_blocking(|conn| {
        let thread = conversations::get_thread(conn, thread_id)?;
        conversations::record_touch(conn, &thread, &referral, at)?;
        Ok(())
    })
    .unwrap();
}

/// The shopper views the card, adds `quantity` gift cards, checks out and pays, as the conversation
/// and the payments worker do.
fn buys(s: &Shop, thread_id: ThreadId, quantity: u32) -> Order {
    let (merchant_id, variant) = (s.merchant(), s.variant);
    s.db()
        .query_blocking(move |conn| {
            let thread = conversations::get_thread(conn, thread_id)?;
            let (product, v) = threadcart::catalog::variant_with_product(conn, merchant_id, variant)
                .unwrap()
                .unwrap();
            let mut funnel = attribution::ThreadFunnel::new(thread.funnel_view());
            funnel.record(conn, FunnelStep::ProductView, Some(product.id), None)?;
            threadcart::carts::add(conn, merchant_id, thread_id, &product, &v, quantity).unwrap();
            funnel.record(conn, FunnelStep::AddToCart, Some(product.id), None)?;
            let at = now();
            let touch = funnel.attributed_touch(conn, at)?.map(|t| (t.id.0, t.ad_id));
            let order = orders::checkout(conn, merchant_id, thread_id, at, None, touch)
                .unwrap()
                .order;
            funnel.record_order(conn, FunnelStep::Checkout, order.id, order.total, at)?;
            assert!(orders::transition(conn, order.id, OrderStatus::Paid, Some("pi_1"), now()).unwrap());
            threadcart::conversations::notices::order_moved(conn, &order, OrderStatus::Paid)?;
            orders::load_order(conn, order.id)
        })
        .unwrap()
}

fn refunds(db: &Db, order_id: OrderId, minor: i64) {
    let id = format!("re_{}", Uuid::new_v4().simple());
    db.query_blocking(move |conn| {
        orders::record_refund(conn, order_id, &id, eur(minor), "succeeded").unwrap();
        Ok(())
    })
    .unwrap();
}

/// The last 30 days to tomorrow, in Paris (the test merchant's timezone).
fn period() -> String {
    let today = chrono_tz::Europe::Paris.from_utc_datetime(&now()).date_naive();
    format!(
        "from={}&to={}",
        today - Duration::days(30),
        today + Duration::days(1)
    )
}

async fn funnel(app: &TestApp, token: &str, group_by: &str) -> Value {
    let res = app
        .get(
            &format!("/v1/reports/funnel?{}&group_by={group_by}", period()),
            token,
        )
        .await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

fn row<'a>(report: &'a Value, key: &str) -> &'a Value {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == key && r["organic"] == false)
        .unwrap_or_else(|| panic!("no row {key} in {report}"))
}

fn organic(report: &Value) -> &Value {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["organic"] == true)
        .unwrap()
}

fn revenue(row: &Value) -> Value {
    row["revenue"].clone()
}

#[tokio::test]
async fn reports_a_purchase_just_inside_the_window_belongs_to_the_ad_and_one_just_outside_is_organic() {
    let s = shop().await;
    let inside = shopper(s.db(), s.merchant(), "psid-inside");
    touched(
        s.db(),
        inside,
        Some("ad-in"),
        None,
        now() - Duration::days(7) + Duration::minutes(5),
    );
    let outside = shopper(s.db(), s.merchant(), "psid-outside");
    touched(
        s.db(),
        outside,
        Some("ad-out"),
        None,
        now() - Duration::days(7) - Duration::minutes(5),
    );

    let kept = buys(&s, inside, 1);
    let lost = buys(&s, outside, 2);

    assert_eq!(kept.ad_id.as_deref(), Some("ad-in"));
    assert_eq!(lost.ad_id, None, "the order outside the window carries no ad");
    let report = funnel(&s.m.app, &s.m.merchant.token, "ad").await;
    let ad = row(&report, "ad-in");
    assert_eq!(ad["purchases"], 1);
    assert_eq!(ad["checkouts"], 1);
    assert_eq!(ad["add_to_carts"], 1);
    assert_eq!(revenue(ad), json!([{"amount": "20.00", "currency": "EUR"}]));
    assert_eq!(ad["referrals"], 1);
    let org = organic(&report);
    assert_eq!(org["purchases"], 1);
    assert_eq!(revenue(org), json!([{"amount": "40.00", "currency": "EUR"}]));
}

#[tokio::test]
async fn reports_a_longer_attribution_window_set_on_the_merchant_keeps_an_older_touch() {
    let s = shop().await;
    let res =
        s.m.app
            .patch(
                "/v1/merchant",
                &s.m.merchant.token,
                json!({"attribution_window_days": 10}),
            )
            .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["attribution_window_days"], 10);
    let thread = shopper(s.db(), s.merchant(), "psid-1");
    touched(s.db(), thread, Some("ad-9"), None, now() - Duration::days(9));

    buys(&s, thread, 1);

    let report = funnel(&s.m.app, &s.m.merchant.token, "ad").await;
    assert_eq!(row(&report, "ad-9")["purchases"], 1);
    assert_eq!(organic(&report)["purchases"], 0);
}

#[tokio::test]
async fn reports_an_mme_touch_after_an_ad_touch_takes_the_purchase_and_time_counts_from_the_first_touch() {
    let s = shop().await;
    let thread = shopper(s.db(), s.merchant(), "psid-2");
    touched(
        s.db(),
        thread,
        Some("ad-1"),
        Some("c=xmas24_p=GIFT-01"),
        now() - Duration::hours(3),
    );
    touched(
        s.db(),
        thread,
        None,
        Some("c=winter_p=GIFT-01"),
        now() - Duration::hours(1),
    );

    buys(&s, thread, 1);

    let by_source = funnel(&s.m.app, &s.m.merchant.token, "source").await;
    assert_eq!(row(&by_source, "SHORTLINK")["purchases"], 1);
    assert_eq!(row(&by_source, "ADS")["purchases"], 0);
    assert_eq!(row(&by_source, "ADS")["referrals"], 1);
    assert_eq!(row(&by_source, "ADS")["threads"], 1, "the ad opened the thread");
    let seconds = row(&by_source, "SHORTLINK")["median_seconds_to_purchase"]
        .as_i64()
        .unwrap();
    assert!(
        (3 * 3600 - 5..3 * 3600 + 60).contains(&seconds),
        "{seconds}s from the first touch"
    );
    let by_campaign = funnel(&s.m.app, &s.m.merchant.token, "campaign").await;
    assert_eq!(row(&by_campaign, "winter")["purchases"], 1);
    assert_eq!(row(&by_campaign, "xmas24")["referrals"], 1);
}

#[tokio::test]
async fn reports_a_purchase_without_any_touch_is_organic() {
    let s = shop().await;
    let thread = shopper(s.db(), s.merchant(), "psid-3");

    buys(&s, thread, 3);

    let report = funnel(&s.m.app, &s.m.merchant.token, "ad").await;
    let org = organic(&report);
    assert_eq!(org["purchases"], 1);
    assert_eq!(org["threads"], 1);
    assert_eq!(org["engaged_threads"], 1);
    assert_eq!(revenue(org), json!([{"amount": "60.00", "currency": "EUR"}]));
    assert_eq!(org["conversion_rates"]["checkout_to_purchase"], "100");
    assert_eq!(report["rows"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn reports_a_refund_after_a_purchase_reduces_the_ads_revenue() {
    let s = shop().await;
    let thread = shopper(s.db(), s.merchant(), "psid-4");
    touched(s.db(), thread, Some("ad-1"), None, now() - Duration::hours(1));
    let order = buys(&s, thread, 2);

    refunds(s.db(), order.id, 1500);

    let report = funnel(&s.m.app, &s.m.merchant.token, "ad").await;
    let ad = row(&report, "ad-1");
    assert_eq!(ad["purchases"], 1);
    assert_eq!(revenue(ad), json!([{"amount": "25.00", "currency": "EUR"}]));
    assert_eq!(ad["refunds"], json!([{"amount": "15.00", "currency": "EUR"}]));
}

/// A small deterministic generator (xorshift), so the random data is the same on every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[tokio::test]
async fn reports_revenue_and_purchases_add_up_to_the_paid_orders_on_random_data() {
    let s = shop().await;
    let mut rng = Rng(0x5eed_cafe_f00d);
    for i in 0..24 {
        let thread = shopper(s.db(), s.merchant(), &format!("psid-r{i}"));
        for _ in 0..rng.below(3) {
            let ad = format!("ad-{}", rng.below(4));
            let hours = i64::try_from(rng.below(24 * 12)).unwrap();
            let mme = rng.below(3) == 0;
            touched(
                s.db(),
                thread,
                (!mme).then_some(ad.as_str()),
                Some("c=r"),
                now() - Duration::hours(hours),
            );
        }
        if rng.below(4) > 0 {
            let order = buys(&s, thread, u32::try_from(1 + rng.below(3)).unwrap());
            if rng.below(3) == 0 {
                refunds(s.db(), order.id, i64::try_from(1 + rng.below(2000)).unwrap());
            }
        }
    }

    let (paid, net) = s
        .db()
        .query_blocking(|conn| {
            use diesel::prelude::*;
            use threadcart::db::schema::orders as o;
            let rows: Vec<(i64, i64)> = o::table
                .filter(o::merchant_id.eq(s.merchant()))
                .filter(o::paid_at.is_not_null())
                .select((o::total_minor, o::refunded_minor))
                .load(conn)?;
            Ok((rows.len() as i64, rows.iter().map(|(t, r)| t - r).sum::<i64>()))
        })
        .unwrap();
    for group_by in ["ad", "ref", "campaign", "source", "product"] {
        let report = funnel(&s.m.app, &s.m.merchant.token, group_by).await;
        let rows = report["rows"].as_array().unwrap();
        let purchases: i64 = rows.iter().map(|r| r["purchases"].as_i64().unwrap()).sum();
        let cents: i64 = rows
            .iter()
            .flat_map(|r| r["revenue"].as_array().unwrap().clone())
            .map(|m| {
                Money::parse_amount(m["amount"].as_str().unwrap(), Currency::parse("EUR").unwrap())
                    .unwrap()
                    .minor()
            })
            .sum();
        assert_eq!(purchases, paid, "purchases grouped by {group_by}");
        assert_eq!(cents, net, "revenue grouped by {group_by}");
    }
    let utc =
        s.m.app
            .get(
                &format!("/v1/reports/funnel?{}&tz=UTC", period()),
                &s.m.merchant.token,
            )
            .await
            .json::<Value>()
            .await
            .unwrap();
    let purchases: i64 = utc["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["purchases"].as_i64().unwrap())
        .sum();
    assert_eq!(purchases, paid, "the same from the events, in another timezone");
}

#[tokio::test]
async fn reports_the_csv_report_has_the_rows_and_numbers_of_the_json_one() {
    let s = shop().await;
    let thread = shopper(s.db(), s.merchant(), "psid-5");
    touched(
        s.db(),
        thread,
        Some("ad,with \"quotes\""),
        None,
        now() - Duration::hours(1),
    );
    buys(&s, thread, 1);
    buys(&s, shopper(s.db(), s.merchant(), "psid-6"), 2);

    let json = funnel(&s.m.app, &s.m.merchant.token, "ad").await;
    let res =
        s.m.app
            .client
            .get(format!(
                "{}/v1/reports/funnel?{}&group_by=ad",
                s.m.app.address,
                period()
            ))
            .bearer_auth(&s.m.merchant.token)
            .header("Accept", "text/csv")
            .send()
            .await
            .unwrap();

    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = res.text().await.unwrap();
    let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert!(lines[0].starts_with("key,organic,referrals,threads,engaged_threads,product_views"));
    assert_eq!(lines.len(), 1 + json["rows"].as_array().unwrap().len());
    assert_eq!(
        lines[1],
        "\"ad,with \"\"quotes\"\"\",false,1,1,1,1,1,1,1,20.00 EUR,,100,100,100,100,".to_owned()
            + &row(&json, "ad,with \"quotes\"")["median_seconds_to_purchase"].to_string()
            + ",0,0"
    );
    assert_eq!(lines[2], ",true,0,1,1,1,1,1,1,40.00 EUR,,100,100,100,100,,0,0");
}

#[tokio::test]
async fn reports_csv_cells_that_a_spreadsheet_would_run_as_formulas_start_with_a_quote() {
    // Arrange: shoppers from ads whose ids a spreadsheet would take for formulas (ids come from Meta's
    // deliveries, so from outside).
    let m = spawn_messenger_app().await;
    let ads = [
        "=HYPERLINK(\"http://evil.example\")",
        "+1+1",
        "-2+3",
        "@SUM(A1)",
        "\tTAB",
        "\rCR",
        "AD-PLAIN",
    ];
    for (n, ad) in ads.iter().enumerate() {
        let psid = format!("U{n}");
        let event = crate::helpers::ad_postback(
            &psid,
            crate::helpers::now_ms(),
            &format!("pb-{n}"),
            ad,
            "Slippers",
            "S",
        );
        assert_eq!(
            m.app
                .post_webhook(&crate::helpers::delivery(PAGE_ID, vec![event]))
                .await
                .status(),
            200
        );
    }
    let token = m.merchant.token.clone();
    eventually("every ad has its row", || async {
        let report = funnel(&m.app, &token, "ad").await;
        let rows = report["rows"].as_array().unwrap();
        rows.iter().filter(|r| r["key"].is_string()).count() == ads.len()
    })
    .await;

    // Act
    let csv = m
        .app
        .client
        .get(format!(
            "{}/v1/reports/funnel?{}&group_by=ad",
            m.app.address,
            period()
        ))
        .bearer_auth(&token)
        .header("Accept", "text/csv")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    // Assert: read as CSV, every cell that began with = + - @ tab or CR begins with a quote (the
    // organic row's key is empty).
    let keys: Vec<String> = csv::ReaderBuilder::new()
        .from_reader(csv.as_bytes())
        .records()
        .map(|r| r.unwrap()[0].to_owned())
        .filter(|key| !key.is_empty())
        .collect();
    let mut expected: Vec<String> = ads
        .iter()
        .map(|ad| {
            if ad.starts_with("AD") {
                (*ad).to_owned()
            } else {
                format!("'{ad}")
            }
        })
        .collect();
    expected.sort();
    let mut keys = keys;
    keys.sort();
    assert_eq!(keys, expected, "{csv}");
}

#[tokio::test]
async fn reports_the_ads_daily_series_shows_todays_steps() {
    let s = shop().await;
    let thread = shopper(s.db(), s.merchant(), "psid-7");
    touched(s.db(), thread, Some("ad-1"), None, now() - Duration::minutes(10));
    buys(&s, thread, 1);
    let today = chrono_tz::Europe::Paris.from_utc_datetime(&now()).date_naive();

    let res =
        s.m.app
            .get(
                &format!(
                    "/v1/reports/ads/ad-1?from={}&to={today}",
                    today - Duration::days(6)
                ),
                &s.m.merchant.token,
            )
            .await;

    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let days = body["days"].as_array().unwrap();
    assert_eq!(days.len(), 7);
    let last = days.last().unwrap();
    assert_eq!(last["day"], today.to_string());
    assert_eq!(last["purchases"], 1);
    assert_eq!(last["revenue"], json!([{"amount": "20.00", "currency": "EUR"}]));
    assert_eq!(days[0]["purchases"], 0);
}

#[tokio::test]
async fn reports_a_merchant_sees_only_its_own_numbers() {
    let s = shop().await;
    let thread = shopper(s.db(), s.merchant(), "psid-8");
    touched(s.db(), thread, Some("ad-1"), None, now() - Duration::hours(1));
    buys(&s, thread, 1);
    let other = s.m.app.merchant("Other Shop").await;

    let report = funnel(&s.m.app, &other.token, "ad").await;

    assert_eq!(report["rows"].as_array().unwrap().len(), 1);
    assert_eq!(organic(&report)["purchases"], 0);
    let series: Value =
        s.m.app
            .get(&format!("/v1/reports/ads/ad-1?{}", period()), &other.token)
            .await
            .json()
            .await
            .unwrap();
    assert!(
        series["days"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["purchases"] == 0)
    );
}

#[tokio::test]
async fn reports_are_refused_to_agents_and_catalog_keys_and_given_to_marketing() {
    let s = shop().await;
    for role in ["agent", "catalog"] {
        let key = s.m.app.key_with_role(&s.m.merchant, role).await;
        let res =
            s.m.app
                .get(&format!("/v1/reports/funnel?{}", period()), &key.token)
                .await;
        assert_problem(res, 403, "forbidden").await;
        let res = s.m.app.get("/v1/conversions", &key.token).await;
        assert_problem(res, 403, "forbidden").await;
    }
    let marketing = s.m.app.key_with_role(&s.m.merchant, "marketing").await;
    let res =
        s.m.app
            .get(&format!("/v1/reports/funnel?{}", period()), &marketing.token)
            .await;
    assert_eq!(res.status(), 200);
    let res =
        s.m.app
            .request(
                reqwest::Method::PUT,
                &format!("/v1/pages/{PAGE_ID}/conversions"),
                &marketing.token,
                Some(json!({"dataset_id": "123", "access_token": "capi-token-123456"})),
            )
            .await;
    assert_problem(res, 403, "forbidden").await;
}

#[tokio::test]
async fn reports_a_bad_period_or_grouping_is_a_validation_problem() {
    let s = shop().await;
    for query in [
        "from=2026-11-30&to=2026-11-01",
        "from=2026-11-01&to=2027-12-01",
        "from=yesterday&to=2026-11-01",
        "from=2026-11-01&to=2026-11-30&group_by=color",
        "from=2026-11-01&to=2026-11-30&tz=Mars/Olympus",
    ] {
        let res =
            s.m.app
                .get(&format!("/v1/reports/funnel?{query}"), &s.m.merchant.token)
                .await;
        assert_problem(res, 422, "validation_failed").await;
    }
}

async fn set_dataset(s: &Shop) {
    let res =
        s.m.app
            .request(
                reqwest::Method::PUT,
                &format!("/v1/pages/{PAGE_ID}/conversions"),
                &s.m.merchant.token,
                Some(json!({"dataset_id": "987654321", "access_token": "capi-secret-token-42"})),
            )
            .await;
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap();
    assert!(
        !body.contains("capi-secret-token-42"),
        "the token is never returned"
    );
}

async fn conversions(s: &Shop) -> Vec<Value> {
    let res = s.m.app.get("/v1/conversions", &s.m.merchant.token).await;
    assert_eq!(res.status(), 200);
    res.json::<Value>().await.unwrap()["data"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn reports_a_paid_order_reaches_the_conversions_api_once_with_every_field() {
    let s = shop().await;
    set_dataset(&s).await;
    let thread = shopper(s.db(), s.merchant(), "psid-capi");
    touched(s.db(), thread, Some("ad-1"), None, now() - Duration::hours(1));

    let order = buys(&s, thread, 2);
    eventually("the event is sent", || async {
        conversions(&s).await[0]["status"] == "sent"
    })
    .await;
    // The same purchase told again (a retried Stripe event) is not queued twice.
    s.db()
        .query_blocking(|conn| {
            let again =
                attribution::conversions::queue(conn, thread, "Purchase", order.id, order.total, now())?;
            assert!(!again);
            Ok(())
        })
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;

    let posts = s.m.graph.events();
    assert_eq!(posts.len(), 1, "sent once");
    let post = &posts[0];
    assert_eq!(post.path, "/v25.0/987654321/events");
    assert_eq!(
        post.param("access_token").as_deref(),
        Some("capi-secret-token-42")
    );
    let event = &post.body["data"][0];
    assert_eq!(post.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(event["event_name"], "Purchase");
    assert_eq!(event["action_source"], "business_messaging");
    assert_eq!(event["messaging_channel"], "messenger");
    assert_eq!(event["event_id"], format!("Purchase-{}", order.id));
    assert_eq!(
        event["user_data"],
        json!({"page_id": PAGE_ID, "page_scoped_user_id": "psid-capi"})
    );
    assert_eq!(event["custom_data"]["currency"], "EUR");
    assert!(
        post.raw
            .contains(r#""custom_data":{"value":40.00,"currency":"EUR"}"#),
        "{}",
        post.raw
    );
    let sent_at = event["event_time"].as_i64().unwrap();
    assert!((now().and_utc().timestamp() - sent_at).abs() < 60);
    let listed = conversions(&s).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["order_id"], order.id.to_string());
    assert_eq!(listed[0]["value"], json!({"amount": "40.00", "currency": "EUR"}));
}

#[tokio::test]
async fn reports_a_conversions_post_answered_5xx_is_retried_until_meta_takes_it() {
    let s = shop().await;
    set_dataset(&s).await;
    s.m.graph.fail_next_events(vec![
        (500, crate::graph::graph_error(1, 0, "An unknown error occurred")),
        (
            503,
            crate::graph::graph_error(2, 0, "Service temporarily unavailable"),
        ),
    ]);
    let thread = shopper(s.db(), s.merchant(), "psid-retry");

    buys(&s, thread, 1);

    eventually("the event is sent after two failures", || async {
        conversions(&s).await[0]["status"] == "sent"
    })
    .await;
    assert_eq!(s.m.graph.events().len(), 3);
    assert_eq!(conversions(&s).await[0]["attempts"], 3);
}

#[tokio::test]
async fn reports_a_conversions_event_older_than_seven_days_is_skipped_and_not_posted() {
    let s = shop().await;
    set_dataset(&s).await;
    let thread = shopper(s.db(), s.merchant(), "psid-old");

    s.db()
        .query_blocking(|conn| {
            attribution::conversions::queue(
                conn,
                thread,
                "Purchase",
                OrderId::new(),
                eur(990),
                now() - Duration::days(8),
            )
        })
        .unwrap();

    eventually("the event is skipped", || async {
        conversions(&s).await[0]["status"] == "skipped"
    })
    .await;
    assert!(s.m.graph.events().is_empty());
    let res =
        s.m.app
            .get("/v1/conversions?status=skipped", &s.m.merchant.token)
            .await;
    assert_eq!(
        res.json::<Value>().await.unwrap()["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
