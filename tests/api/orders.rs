//! Orders: a cart frozen at checkout with its stock reserved, numbered per merchant, moved forward by
//! Stripe's outcome exactly once, never overselling under concurrent checkouts, refunded up to the total.
//! These call `threadcart::checkout::orders` directly through the test server's database handle.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Barrier;

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use serde_json::{Value, json};
use threadcart::carts::{self, Cart};
use threadcart::checkout::orders::{
    self, CheckedOut, CheckoutRefusal, HOLD_BEFORE_SESSION, Order, OrderQuery, OrderStatus, RefundError,
};
use threadcart::conversations;
use threadcart::db::schema::{carts as carts_table, order_counters, refunds, reservations, variants};
use threadcart::db::{Db, DbError, DbUuid, Keyset, now, write_transaction};
use threadcart::kernel::{OrderId, ThreadId};
use threadcart::money::{Currency, Money};
use uuid::Uuid;

use crate::helpers::{TestApp, TestMerchant, product_body, spawn_app};

const PAGE: &str = "1000000001";

fn eur() -> Currency {
    Currency::parse("EUR").unwrap()
}

fn euros(minor: i64) -> Money {
    Money::from_minor(minor, eur())
}

/// A server, the merchant "Comfy Shoes", slippers (42, 49.90 EUR, `slipper_stock`) and wool socks
/// (M, 9.00 EUR, 10 in stock).
struct Shop {
    app: TestApp,
    merchant: TestMerchant,
    slippers: Uuid,
    slippers_path: String,
    socks: Uuid,
}

async fn shop(slipper_stock: i64) -> Shop {
    let app = spawn_app().await;
    let merchant = app.merchant("Comfy Shoes").await;
    let (slippers, slippers_path) = stocked(
        &app,
        &merchant,
        "SLIP-01",
        "Comfy slippers",
        "49.90",
        slipper_stock,
    )
    .await;
    let (socks, _) = stocked(&app, &merchant, "SOCK-01", "Wool socks", "9.00", 10).await;
    Shop {
        app,
        merchant,
        slippers,
        slippers_path,
        socks,
    }
}

/// A product with one variant; its variant id and the variant's API path.
async fn stocked(
    app: &TestApp,
    merchant: &TestMerchant,
    retailer_id: &str,
    title: &str,
    price: &str,
    stock: i64,
) -> (Uuid, String) {
    let sku = format!("{retailer_id}-A");
    let product = app
        .create_product(
            &merchant.token,
            product_body(retailer_id, title, &[(&sku, "42", price, stock)]),
        )
        .await;
    let variant = product["variants"][0]["id"].as_str().unwrap();
    let path = format!(
        "/v1/products/{}/variants/{variant}",
        product["id"].as_str().unwrap()
    );
    (variant.parse().unwrap(), path)
}

/// The thread of a new shopper `psid` of the merchant.
fn thread(db: &Db, merchant_id: threadcart::kernel::MerchantId, psid: &str) -> ThreadId {
    db.query_blocking(|conn| {
        let customer = conversations::ensure_customer(
            conn,
            merchant_id,
            threadcart::kernel::Channel::Messenger,
            &PAGE.into(),
            &psid.into(),
        )?;
        let customer = conversations::customer(conn, customer)?;
        Ok(conversations::ensure_thread(conn, &customer)?.id)
    })
    .unwrap()
}

/// Adds `quantity` of a variant to the thread's cart.
fn add(
    db: &Db,
    merchant_id: threadcart::kernel::MerchantId,
    thread_id: ThreadId,
    variant_id: Uuid,
    quantity: u32,
) -> Cart {
    db.query_blocking(|conn| {
        let (product, variant) = threadcart::catalog::variant_with_product(conn, merchant_id, variant_id)
            .unwrap()
            .unwrap();
        Ok(carts::add(conn, merchant_id, thread_id, &product, &variant, quantity).unwrap())
    })
    .unwrap()
}

fn open_cart(db: &Db, thread_id: ThreadId) -> Option<Cart> {
    db.query_blocking(|conn| carts::open_cart(conn, thread_id))
        .unwrap()
}

fn checkout_at(
    db: &Db,
    merchant_id: threadcart::kernel::MerchantId,
    thread_id: ThreadId,
    at: NaiveDateTime,
    minimum: Option<Money>,
) -> Result<CheckedOut, CheckoutRefusal> {
    db.query_blocking(|conn| Ok(orders::checkout(conn, merchant_id, thread_id, at, minimum, None)))
        .unwrap()
}

fn checkout(
    db: &Db,
    merchant_id: threadcart::kernel::MerchantId,
    thread_id: ThreadId,
) -> Result<CheckedOut, CheckoutRefusal> {
    checkout_at(db, merchant_id, thread_id, now(), None)
}

fn transition(db: &Db, order_id: OrderId, next: OrderStatus) -> bool {
    db.run_blocking(|conn| Ok::<_, DbError>(orders::transition(conn, order_id, next, Some("pi_123"), now())))
        .unwrap()
        .unwrap()
}

fn order(db: &Db, merchant_id: threadcart::kernel::MerchantId, id: OrderId) -> Order {
    db.query_blocking(|conn| orders::get(conn, merchant_id, id))
        .unwrap()
        .unwrap()
}

fn stock(db: &Db, variant_id: Uuid) -> i64 {
    db.query_blocking(|conn| {
        variants::table
            .filter(variants::id.eq(DbUuid(variant_id)))
            .select(variants::stock)
            .first(conn)
    })
    .unwrap()
}

/// `(variant, quantity, status)` of the order's reservations, by variant.
fn reservations_of(db: &Db, order_id: OrderId) -> Vec<(Uuid, i32, String)> {
    db.query_blocking(|conn| {
        reservations::table
            .filter(reservations::order_id.eq(order_id))
            .order(reservations::variant_id.asc())
            .select((
                reservations::variant_id,
                reservations::quantity,
                reservations::status,
            ))
            .load::<(DbUuid, i32, String)>(conn)
    })
    .unwrap()
    .into_iter()
    .map(|(v, q, s)| (v.0, q, s))
    .collect()
}

/// Units of a variant reserved with `status` across all orders.
fn reserved(db: &Db, variant_id: Uuid, status: &str) -> i64 {
    db.query_blocking(|conn| {
        reservations::table
            .filter(reservations::variant_id.eq(DbUuid(variant_id)))
            .filter(reservations::status.eq(status))
            .select(reservations::quantity)
            .load::<i32>(conn)
    })
    .unwrap()
    .into_iter()
    .map(i64::from)
    .sum()
}

fn cart_status(db: &Db, cart_id: Uuid) -> String {
    db.query_blocking(|conn| {
        carts_table::table
            .filter(carts_table::id.eq(DbUuid(cart_id)))
            .select(carts_table::status)
            .first(conn)
    })
    .unwrap()
}

fn all_orders(db: &Db, merchant_id: threadcart::kernel::MerchantId) -> Vec<Order> {
    let q = OrderQuery {
        limit: 100,
        ..OrderQuery::default()
    };
    db.query_blocking(|conn| orders::list(conn, merchant_id, &q))
        .unwrap()
}

/// Creates a discount code through the API and returns its id.
async fn discount(app: &TestApp, token: &str, body: Value) -> Uuid {
    let res = app.post("/v1/discounts", token, body).await;
    assert_eq!(res.status(), 201, "creating a discount");
    let body: Value = res.json().await.unwrap();
    body["id"].as_str().unwrap().parse().unwrap()
}

fn apply_code(db: &Db, cart_id: Uuid, discount_id: Uuid) {
    db.query_blocking(|conn| carts::set_discount(conn, cart_id, Some(discount_id)))
        .unwrap();
}

fn redemptions(db: &Db, merchant_id: threadcart::kernel::MerchantId, discount_id: Uuid) -> u32 {
    db.query_blocking(|conn| threadcart::discounts::get(conn, merchant_id, discount_id))
        .unwrap()
        .unwrap()
        .redemptions
}

/// A shopper's thread with `quantity` slippers, checked out; the order.
fn ordered(s: &Shop, psid: &str, quantity: u32) -> Order {
    let t = thread(&s.app.db, s.merchant.id, psid);
    add(&s.app.db, s.merchant.id, t, s.slippers, quantity);
    checkout(&s.app.db, s.merchant.id, t).unwrap().order
}

// ---------------------------------------------------------------------------------------------------
// Freezing the cart

#[tokio::test]
async fn checkout_freezes_the_lines_unit_prices_and_discounted_totals_and_reserves_the_stock() {
    let s = shop(5).await;
    let db = &s.app.db;
    let code = discount(
        &s.app,
        &s.merchant.token,
        json!({"code": "XMAS10", "percent_off": "10"}),
    )
    .await;
    let t = thread(db, s.merchant.id, "psid-1");
    add(db, s.merchant.id, t, s.slippers, 2);
    let cart = add(db, s.merchant.id, t, s.socks, 1);
    apply_code(db, cart.id, code);
    let touch = Uuid::now_v7();
    let at = now();

    let done = db
        .query_blocking(|conn| {
            Ok(orders::checkout(
                conn,
                s.merchant.id,
                t,
                at,
                Some(euros(50)),
                Some((touch, Some("AD-1".into()))),
            ))
        })
        .unwrap()
        .unwrap();

    let o = done.order;
    assert!(done.created);
    assert!(done.superseded.is_empty());
    assert_eq!(o.number, "CS-00001");
    assert_eq!(o.status, OrderStatus::AwaitingPayment);
    assert_eq!((o.thread_id, o.cart_id), (Some(t), Some(cart.id)));
    assert_eq!(o.subtotal, euros(2 * 4990 + 900));
    assert_eq!(o.discount, euros(1088));
    assert_eq!(o.total, euros(10880 - 1088));
    assert_eq!(o.refunded, euros(0));
    assert_eq!(o.discount_id, Some(code));
    assert_eq!(o.discount_code.as_deref(), Some("XMAS10"));
    assert_eq!((o.touch_id, o.ad_id.as_deref()), (Some(touch), Some("AD-1")));
    assert_eq!(o.expires_at, Some(at + HOLD_BEFORE_SESSION));
    assert_eq!((o.paid_at, o.stripe_session_id.as_deref()), (None, None));
    let lines: Vec<_> = o
        .lines
        .iter()
        .map(|l| (l.variant_id, l.title.as_str(), l.unit_price, l.quantity, l.total))
        .collect();
    assert_eq!(
        lines,
        [
            (Some(s.slippers), "Comfy slippers", euros(4990), 2, euros(9980)),
            (Some(s.socks), "Wool socks", euros(900), 1, euros(900)),
        ]
    );
    assert_eq!(stock(db, s.slippers), 3);
    assert_eq!(stock(db, s.socks), 9);
    let mut expected = vec![
        (s.slippers, 2, "held".to_owned()),
        (s.socks, 1, "held".to_owned()),
    ];
    expected.sort();
    assert_eq!(reservations_of(db, o.id), expected);
    assert_eq!(cart_status(db, cart.id), "open", "the cart stays open until paid");
    assert_eq!(redemptions(db, s.merchant.id, code), 0, "redeemed only when paid");
}

#[tokio::test]
async fn the_order_keeps_the_cart_prices_when_the_catalog_price_changes_afterwards() {
    let s = shop(5).await;
    let db = &s.app.db;
    let t = thread(db, s.merchant.id, "psid-1");
    add(db, s.merchant.id, t, s.slippers, 1);
    let o = checkout(db, s.merchant.id, t).unwrap().order;

    let res = s
        .app
        .patch(
            &s.slippers_path,
            &s.merchant.token,
            json!({"price": {"amount": "99.00", "currency": "EUR"}}),
        )
        .await;
    assert_eq!(res.status(), 200);

    let again = order(db, s.merchant.id, o.id);
    assert_eq!(again.lines[0].unit_price, euros(4990));
    assert_eq!(again.total, euros(4990));
}

#[tokio::test]
async fn a_code_that_no_longer_applies_is_left_out_of_the_order() {
    let s = shop(5).await;
    let db = &s.app.db;
    let code = discount(
        &s.app,
        &s.merchant.token,
        json!({"code": "BIG10", "percent_off": "10", "min_subtotal": {"amount": "100.00", "currency": "EUR"}}),
    )
    .await;
    let t = thread(db, s.merchant.id, "psid-1");
    let cart = add(db, s.merchant.id, t, s.slippers, 1);
    apply_code(db, cart.id, code);

    let o = checkout(db, s.merchant.id, t).unwrap().order;

    assert_eq!((o.discount, o.total), (euros(0), euros(4990)));
    assert_eq!((o.discount_id, o.discount_code), (None, None));
}

#[tokio::test]
async fn a_threads_cart_in_the_api_shows_the_code_applied_what_it_takes_off_and_the_total() {
    // Arrange: 2 slippers and socks (108.80 EUR) with XMAS10, and another cart under BIG10's minimum
    let s = shop(5).await;
    let db = &s.app.db;
    let xmas = discount(
        &s.app,
        &s.merchant.token,
        json!({"code": "XMAS10", "percent_off": "10"}),
    )
    .await;
    let big = discount(
        &s.app,
        &s.merchant.token,
        json!({"code": "BIG10", "percent_off": "10", "min_subtotal": {"amount": "100.00", "currency": "EUR"}}),
    )
    .await;
    let t = thread(db, s.merchant.id, "psid-1");
    add(db, s.merchant.id, t, s.slippers, 2);
    let cart = add(db, s.merchant.id, t, s.socks, 1);
    apply_code(db, cart.id, xmas);
    let small = thread(db, s.merchant.id, "psid-2");
    let small_cart = add(db, s.merchant.id, small, s.slippers, 1);
    apply_code(db, small_cart.id, big);
    let empty = thread(db, s.merchant.id, "psid-3");
    let cart_of = |thread: ThreadId| {
        let app = &s.app;
        let token = s.merchant.token.clone();
        async move {
            let res = app.get(&format!("/v1/threads/{thread}/cart"), &token).await;
            assert_eq!(res.status(), 200);
            res.json::<Value>().await.unwrap()
        }
    };

    // Act
    let discounted = cart_of(t).await;
    let below_minimum = cart_of(small).await;
    let none = cart_of(empty).await;

    // Assert
    let eur = |amount: &str| json!({"amount": amount, "currency": "EUR"});
    assert_eq!(discounted["subtotal"], eur("108.80"));
    assert_eq!(
        discounted["discount"],
        json!({"code": "XMAS10", "amount": eur("10.88")})
    );
    assert_eq!(discounted["total"], eur("97.92"));
    assert_eq!(discounted["lines"].as_array().unwrap().len(), 2);
    assert!(
        below_minimum["discount"].is_null(),
        "a code under its minimum takes nothing off"
    );
    assert_eq!(below_minimum["total"], eur("49.90"));
    for field in ["id", "subtotal", "discount", "total"] {
        assert!(none[field].is_null(), "{field} of no cart: {none}");
    }
    assert_eq!(none["lines"], json!([]));
}

#[tokio::test]
async fn order_numbers_count_up_per_merchant_and_independently_for_each_merchant() {
    let s = shop(50).await;
    let db = &s.app.db;
    let hotel = s.app.merchant("Hotel du Lac").await;
    let (room, _) = stocked(&s.app, &hotel, "ROOM-1", "Room", "120.00", 10).await;
    let hotel_order = |psid: &str| {
        let t = thread(db, hotel.id, psid);
        add(db, hotel.id, t, room, 1);
        checkout(db, hotel.id, t).unwrap().order.number
    };

    let first = ordered(&s, "psid-1", 1).number;
    let second = ordered(&s, "psid-2", 1).number;
    let hotel_first = hotel_order("psid-h1");
    let third = ordered(&s, "psid-3", 1).number;
    let hotel_second = hotel_order("psid-h2");

    assert_eq!([first, second, third], ["CS-00001", "CS-00002", "CS-00003"]);
    assert_eq!([hotel_first, hotel_second], ["HD-00001", "HD-00002"]);
    let counters: i64 = db
        .query_blocking(|conn| order_counters::table.count().get_result(conn))
        .unwrap();
    assert_eq!(counters, 2, "one counter per merchant");
}

// ---------------------------------------------------------------------------------------------------
// Checking out again

#[tokio::test]
async fn a_second_checkout_of_the_unchanged_cart_returns_the_same_order() {
    let s = shop(5).await;
    let db = &s.app.db;
    let t = thread(db, s.merchant.id, "psid-1");
    add(db, s.merchant.id, t, s.slippers, 2);
    let first = checkout(db, s.merchant.id, t).unwrap();

    let second = checkout(db, s.merchant.id, t).unwrap();

    assert!(!second.created);
    assert!(second.superseded.is_empty());
    assert_eq!(second.order, first.order);
    assert_eq!(stock(db, s.slippers), 3, "reserved once");
    assert_eq!(all_orders(db, s.merchant.id).len(), 1);
}

#[tokio::test]
async fn a_changed_cart_makes_a_new_order_and_supersedes_the_old_one() {
    let s = shop(5).await;
    let db = &s.app.db;
    let t = thread(db, s.merchant.id, "psid-1");
    add(db, s.merchant.id, t, s.slippers, 2);
    let old = checkout(db, s.merchant.id, t).unwrap().order;
    add(db, s.merchant.id, t, s.socks, 1);

    let new = checkout(db, s.merchant.id, t).unwrap();

    assert!(new.created);
    assert_ne!(new.order.id, old.id);
    assert_eq!(new.order.number, "CS-00002");
    assert_eq!(new.superseded.len(), 1);
    assert_eq!(new.superseded[0].id, old.id);
    assert_eq!(new.superseded[0].status, OrderStatus::Expired);
    assert_eq!(order(db, s.merchant.id, old.id).status, OrderStatus::Expired);
    assert_eq!(
        reservations_of(db, old.id),
        [(s.slippers, 2, "released".to_owned())]
    );
    assert_eq!(stock(db, s.slippers), 3, "2 given back, 2 taken again");
    assert_eq!(stock(db, s.socks), 9);
}

#[tokio::test]
async fn a_cart_grown_to_the_last_units_fits_because_the_old_order_gives_its_units_back_first() {
    let s = shop(3).await;
    let db = &s.app.db;
    let t = thread(db, s.merchant.id, "psid-1");
    add(db, s.merchant.id, t, s.slippers, 2);
    let old = checkout(db, s.merchant.id, t).unwrap().order;
    let line = open_cart(db, t).unwrap().lines[0].id;
    // 1 left on the shelf plus the 2 this thread's own order holds.
    db.query_blocking(|conn| Ok(carts::set_quantity(conn, t, line, 3, Some(3)).unwrap()))
        .unwrap();

    let new = checkout(db, s.merchant.id, t).unwrap();

    assert_eq!(new.order.lines[0].quantity, 3);
    assert_eq!(new.superseded[0].id, old.id);
    assert_eq!(stock(db, s.slippers), 0);
    assert_eq!(reserved(db, s.slippers, "held"), 3);
}

#[tokio::test]
async fn an_unchanged_cart_whose_hold_ended_gets_a_new_order() {
    let s = shop(5).await;
    let db = &s.app.db;
    let t = thread(db, s.merchant.id, "psid-1");
    add(db, s.merchant.id, t, s.slippers, 1);
    let at = now();
    let old = checkout_at(db, s.merchant.id, t, at, None).unwrap().order;

    let later = checkout_at(db, s.merchant.id, t, at + HOLD_BEFORE_SESSION, None).unwrap();

    assert!(later.created);
    assert_eq!(later.superseded[0].id, old.id);
    assert_eq!(later.order.cart_fingerprint, old.cart_fingerprint);
    assert_eq!(stock(db, s.slippers), 4);
}

// ---------------------------------------------------------------------------------------------------
// Refusals

#[tokio::test]
async fn a_cart_beyond_the_stock_is_refused_naming_the_item_and_changes_nothing() {
    let s = shop(3).await;
    let db = &s.app.db;
    let t = thread(db, s.merchant.id, "psid-1");
    add(db, s.merchant.id, t, s.socks, 1);
    add(db, s.merchant.id, t, s.slippers, 3);
    // Someone bought two in the shop meanwhile.
    let res = s
        .app
        .post(
            &format!("{}/stock-adjustments", s.slippers_path),
            &s.merchant.token,
            json!({"delta": -2}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let before = open_cart(db, t);

    let refusal = checkout(db, s.merchant.id, t).unwrap_err();

    match refusal {
        CheckoutRefusal::SoldOut {
            title,
            variant_name,
            available,
        } => assert_eq!(
            (title.as_str(), variant_name.as_str(), available),
            ("Comfy slippers", "42", 1)
        ),
        other => panic!("expected SoldOut, got {other:?}"),
    }
    assert!(all_orders(db, s.merchant.id).is_empty());
    assert_eq!(
        reserved(db, s.socks, "held") + reserved(db, s.slippers, "held"),
        0
    );
    assert_eq!((stock(db, s.slippers), stock(db, s.socks)), (1, 10));
    assert_eq!(open_cart(db, t), before);
}

#[tokio::test]
async fn a_refused_checkout_leaves_the_older_order_awaiting_payment_with_its_stock() {
    let s = shop(2).await;
    let db = &s.app.db;
    let t = thread(db, s.merchant.id, "psid-1");
    add(db, s.merchant.id, t, s.slippers, 2);
    let old = checkout(db, s.merchant.id, t).unwrap().order;
    let cart = add(db, s.merchant.id, t, s.socks, 1);
    db.query_blocking(|conn| {
        diesel::update(variants::table.filter(variants::id.eq(DbUuid(s.socks))))
            .set(variants::stock.eq(0_i64))
            .execute(conn)
    })
    .unwrap();

    let refusal = checkout(db, s.merchant.id, t).unwrap_err();

    assert!(
        matches!(refusal, CheckoutRefusal::SoldOut { available: 0, .. }),
        "{refusal:?}"
    );
    assert_eq!(
        order(db, s.merchant.id, old.id).status,
        OrderStatus::AwaitingPayment
    );
    assert_eq!(reservations_of(db, old.id), [(s.slippers, 2, "held".to_owned())]);
    assert_eq!(stock(db, s.slippers), 0);
    assert_eq!(open_cart(db, t).unwrap(), cart);
}

#[tokio::test]
async fn a_line_whose_variant_left_the_catalog_is_sold_out() {
    let s = shop(5).await;
    let db = &s.app.db;
    let product = s.slippers_path.split("/variants/").next().unwrap().to_owned();
    let res = s
        .app
        .post(
            &format!("{product}/variants"),
            &s.merchant.token,
            json!({"sku": "SLIP-01-43", "name": "43", "price": {"amount": "49.90", "currency": "EUR"}, "stock": 2}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let t = thread(db, s.merchant.id, "psid-1");
    add(db, s.merchant.id, t, s.slippers, 1);
    assert_eq!(
        s.app.delete(&s.slippers_path, &s.merchant.token).await.status(),
        204
    );

    let refusal = checkout(db, s.merchant.id, t).unwrap_err();

    assert!(
        matches!(&refusal, CheckoutRefusal::SoldOut { title, available: 0, .. } if title == "Comfy slippers"),
        "{refusal:?}"
    );
}

#[tokio::test]
async fn a_thread_without_a_cart_or_with_an_empty_cart_is_refused() {
    let s = shop(5).await;
    let db = &s.app.db;
    let t = thread(db, s.merchant.id, "psid-1");

    let no_cart = checkout(db, s.merchant.id, t).unwrap_err();
    let cart = add(db, s.merchant.id, t, s.slippers, 1);
    db.query_blocking(|conn| Ok(carts::set_quantity(conn, t, cart.lines[0].id, 0, Some(5)).unwrap()))
        .unwrap();
    let empty = checkout(db, s.merchant.id, t).unwrap_err();

    assert!(matches!(no_cart, CheckoutRefusal::EmptyCart), "{no_cart:?}");
    assert!(matches!(empty, CheckoutRefusal::EmptyCart), "{empty:?}");
}

#[tokio::test]
async fn another_merchants_thread_cannot_be_checked_out() {
    let s = shop(5).await;
    let db = &s.app.db;
    let other = s.app.merchant("Other Shop").await;
    let t = thread(db, s.merchant.id, "psid-1");
    add(db, s.merchant.id, t, s.slippers, 1);

    let refusal = checkout(db, other.id, t).unwrap_err();

    assert!(matches!(refusal, CheckoutRefusal::EmptyCart), "{refusal:?}");
    assert_eq!(stock(db, s.slippers), 5);
}

#[tokio::test]
async fn a_total_below_the_minimum_charge_is_refused_and_changes_nothing() {
    let s = shop(5).await;
    let db = &s.app.db;
    let t = thread(db, s.merchant.id, "psid-1");
    add(db, s.merchant.id, t, s.socks, 1);

    let refusal = checkout_at(db, s.merchant.id, t, now(), Some(euros(1000))).unwrap_err();
    let at_minimum = checkout_at(db, s.merchant.id, t, now(), Some(euros(900)));

    assert!(
        matches!(refusal, CheckoutRefusal::BelowMinimum { minimum } if minimum == euros(1000)),
        "{refusal:?}"
    );
    assert_eq!(
        at_minimum.unwrap().order.number,
        "CS-00001",
        "the refusal used no number"
    );
}

#[tokio::test]
async fn a_cart_whose_payment_is_processing_cannot_be_checked_out_again() {
    let s = shop(5).await;
    let db = &s.app.db;
    let t = thread(db, s.merchant.id, "psid-1");
    add(db, s.merchant.id, t, s.slippers, 1);
    let o = checkout(db, s.merchant.id, t).unwrap().order;
    assert!(transition(db, o.id, OrderStatus::Processing));
    add(db, s.merchant.id, t, s.socks, 1);

    let refusal = checkout(db, s.merchant.id, t).unwrap_err();

    assert!(
        matches!(&refusal, CheckoutRefusal::PaymentInProgress { number } if number == "CS-00001"),
        "{refusal:?}"
    );
}

#[tokio::test]
async fn a_checkout_inside_the_callers_write_transaction_is_part_of_it() {
    let s = shop(5).await;
    let db = &s.app.db;
    let t = thread(db, s.merchant.id, "psid-1");
    add(db, s.merchant.id, t, s.slippers, 2);

    let done = db
        .query_blocking(|conn| {
            write_transaction(conn, |conn| {
                Ok(orders::checkout(conn, s.merchant.id, t, now(), None, None))
            })
        })
        .unwrap()
        .unwrap();

    assert!(done.created);
    assert_eq!(stock(db, s.slippers), 3);
    assert_eq!(
        reservations_of(db, done.order.id),
        [(s.slippers, 2, "held".to_owned())]
    );
}

#[tokio::test]
async fn a_refusal_inside_the_callers_write_transaction_undoes_only_the_checkout() {
    let s = shop(2).await;
    let db = &s.app.db;
    let t = thread(db, s.merchant.id, "psid-1");
    add(db, s.merchant.id, t, s.slippers, 2);
    let old = checkout(db, s.merchant.id, t).unwrap().order;
    let cart = add(db, s.merchant.id, t, s.socks, 1);
    let code = discount(
        &s.app,
        &s.merchant.token,
        json!({"code": "XMAS10", "percent_off": "10"}),
    )
    .await;
    db.query_blocking(|conn| {
        diesel::update(variants::table.filter(variants::id.eq(DbUuid(s.socks))))
            .set(variants::stock.eq(0_i64))
            .execute(conn)
    })
    .unwrap();

    let refusal = db
        .query_blocking(|conn| {
            write_transaction(conn, |conn| {
                let refusal = orders::checkout(conn, s.merchant.id, t, now(), None, None).unwrap_err();
                carts::set_discount(conn, cart.id, Some(code))?;
                Ok(refusal)
            })
        })
        .unwrap();

    assert!(
        matches!(refusal, CheckoutRefusal::SoldOut { available: 0, .. }),
        "{refusal:?}"
    );
    assert_eq!(
        order(db, s.merchant.id, old.id).status,
        OrderStatus::AwaitingPayment
    );
    assert_eq!(reservations_of(db, old.id), [(s.slippers, 2, "held".to_owned())]);
    assert_eq!(stock(db, s.slippers), 0);
    assert_eq!(
        open_cart(db, t).unwrap().discount.map(|d| d.id),
        Some(code),
        "the caller's change is kept"
    );
}

// ---------------------------------------------------------------------------------------------------
// Moving forward

#[tokio::test]
async fn paid_commits_the_stock_closes_the_cart_and_redeems_the_code() {
    let s = shop(5).await;
    let db = &s.app.db;
    let code = discount(
        &s.app,
        &s.merchant.token,
        json!({"code": "XMAS10", "percent_off": "10"}),
    )
    .await;
    let t = thread(db, s.merchant.id, "psid-1");
    let cart = add(db, s.merchant.id, t, s.slippers, 2);
    apply_code(db, cart.id, code);
    let o = checkout(db, s.merchant.id, t).unwrap().order;

    let moved = transition(db, o.id, OrderStatus::Paid);

    assert!(moved);
    let paid = order(db, s.merchant.id, o.id);
    assert_eq!(paid.status, OrderStatus::Paid);
    assert!(paid.paid_at.is_some());
    assert_eq!(paid.stripe_payment_intent_id.as_deref(), Some("pi_123"));
    assert_eq!(
        reservations_of(db, o.id),
        [(s.slippers, 2, "committed".to_owned())]
    );
    assert_eq!(stock(db, s.slippers), 3);
    assert_eq!(cart_status(db, cart.id), "checked_out");
    assert_eq!(open_cart(db, t), None, "the next add starts a new cart");
    assert_eq!(redemptions(db, s.merchant.id, code), 1);
}

#[tokio::test]
async fn paid_twice_has_one_effect() {
    let s = shop(5).await;
    let db = &s.app.db;
    let code = discount(
        &s.app,
        &s.merchant.token,
        json!({"code": "XMAS10", "percent_off": "10"}),
    )
    .await;
    let t = thread(db, s.merchant.id, "psid-1");
    let cart = add(db, s.merchant.id, t, s.slippers, 2);
    apply_code(db, cart.id, code);
    let o = checkout(db, s.merchant.id, t).unwrap().order;
    assert!(transition(db, o.id, OrderStatus::Paid));
    let once = order(db, s.merchant.id, o.id);

    let again = transition(db, o.id, OrderStatus::Paid);

    assert!(!again);
    assert_eq!(order(db, s.merchant.id, o.id), once);
    assert_eq!(redemptions(db, s.merchant.id, code), 1);
    assert_eq!(stock(db, s.slippers), 3);
}

#[tokio::test]
async fn expired_gives_the_stock_back_once_and_leaves_the_cart_open() {
    let s = shop(5).await;
    let db = &s.app.db;
    let o = ordered(&s, "psid-1", 2);
    assert_eq!(stock(db, s.slippers), 3);

    let first = transition(db, o.id, OrderStatus::Expired);
    let second = transition(db, o.id, OrderStatus::Expired);

    assert!(first);
    assert!(!second);
    assert_eq!(stock(db, s.slippers), 5, "given back once");
    assert_eq!(
        reservations_of(db, o.id),
        [(s.slippers, 2, "released".to_owned())]
    );
    assert_eq!(cart_status(db, o.cart_id.unwrap()), "open");
    assert_eq!(order(db, s.merchant.id, o.id).paid_at, None);
}

#[tokio::test]
async fn a_failed_delayed_payment_gives_the_stock_back() {
    let s = shop(5).await;
    let db = &s.app.db;
    let o = ordered(&s, "psid-1", 2);
    assert!(transition(db, o.id, OrderStatus::Processing));
    assert_eq!(stock(db, s.slippers), 3, "processing still holds the stock");

    let failed = transition(db, o.id, OrderStatus::PaymentFailed);

    assert!(failed);
    assert_eq!(order(db, s.merchant.id, o.id).status, OrderStatus::PaymentFailed);
    assert_eq!(stock(db, s.slippers), 5);
    assert_eq!(cart_status(db, o.cart_id.unwrap()), "open");
    assert!(!transition(db, o.id, OrderStatus::PaymentFailed));
    assert_eq!(stock(db, s.slippers), 5);
}

#[tokio::test]
async fn a_delayed_payment_that_succeeds_commits_the_stock() {
    let s = shop(5).await;
    let db = &s.app.db;
    let o = ordered(&s, "psid-1", 2);
    assert!(transition(db, o.id, OrderStatus::Processing));

    assert!(transition(db, o.id, OrderStatus::Paid));

    assert_eq!(
        reservations_of(db, o.id),
        [(s.slippers, 2, "committed".to_owned())]
    );
    assert_eq!(stock(db, s.slippers), 3);
}

/// A payment that arrives for an order already expired (the shopper paid at the last moment, or paid an
/// older session after changing the cart) is refused here: the stock was given back. What to do with
/// the money (refund it, or honour the order if the stock is still there) is the Stripe webhook wiring's
/// decision, outside this module.
#[tokio::test]
async fn paid_after_expired_is_refused_and_changes_nothing() {
    let s = shop(5).await;
    let db = &s.app.db;
    let o = ordered(&s, "psid-1", 2);
    assert!(transition(db, o.id, OrderStatus::Expired));

    let paid = transition(db, o.id, OrderStatus::Paid);

    assert!(!paid);
    let after = order(db, s.merchant.id, o.id);
    assert_eq!((after.status, after.paid_at), (OrderStatus::Expired, None));
    assert_eq!(stock(db, s.slippers), 5);
    assert_eq!(cart_status(db, o.cart_id.unwrap()), "open");
}

#[tokio::test]
async fn an_expiry_arriving_after_the_payment_changes_nothing() {
    let s = shop(5).await;
    let db = &s.app.db;
    let o = ordered(&s, "psid-1", 2);
    assert!(transition(db, o.id, OrderStatus::Paid));

    let expired = transition(db, o.id, OrderStatus::Expired);
    let failed = transition(db, o.id, OrderStatus::PaymentFailed);

    assert!(!expired && !failed);
    assert_eq!(order(db, s.merchant.id, o.id).status, OrderStatus::Paid);
    assert_eq!(stock(db, s.slippers), 3);
    assert_eq!(
        reservations_of(db, o.id),
        [(s.slippers, 2, "committed".to_owned())]
    );
}

#[tokio::test]
async fn an_order_whose_code_was_used_up_meanwhile_is_still_paid() {
    let s = shop(5).await;
    let db = &s.app.db;
    let code = discount(
        &s.app,
        &s.merchant.token,
        json!({"code": "ONCE", "percent_off": "10", "max_redemptions": 1}),
    )
    .await;
    let mut orders_with_code = Vec::new();
    for psid in ["psid-1", "psid-2"] {
        let t = thread(db, s.merchant.id, psid);
        let cart = add(db, s.merchant.id, t, s.slippers, 1);
        apply_code(db, cart.id, code);
        orders_with_code.push(checkout(db, s.merchant.id, t).unwrap().order);
    }
    assert!(orders_with_code.iter().all(|o| o.discount == euros(499)));

    let first = transition(db, orders_with_code[0].id, OrderStatus::Paid);
    let second = transition(db, orders_with_code[1].id, OrderStatus::Paid);

    assert!(first && second);
    let late = order(db, s.merchant.id, orders_with_code[1].id);
    assert_eq!((late.status, late.total), (OrderStatus::Paid, euros(4491)));
    assert_eq!(redemptions(db, s.merchant.id, code), 1);
}

#[tokio::test]
async fn a_move_of_an_unknown_order_is_not_found() {
    let s = shop(5).await;

    let result = s
        .app
        .db
        .run_blocking(|conn| {
            Ok::<_, DbError>(orders::transition(
                conn,
                OrderId::new(),
                OrderStatus::Paid,
                None,
                now(),
            ))
        })
        .unwrap();

    assert!(result.is_err());
}

// ---------------------------------------------------------------------------------------------------
// Sessions, lookups, sweeping, disputes

#[tokio::test]
async fn a_recorded_session_is_found_by_its_id_and_ends_the_hold_with_it() {
    let s = shop(5).await;
    let db = &s.app.db;
    let o = ordered(&s, "psid-1", 1);
    let ends = now() + Duration::hours(2);

    let recorded = db
        .query_blocking(|conn| {
            orders::record_session(conn, o.id, "cs_test_1", "https://pay.example/1", ends, 1)
        })
        .unwrap();

    assert!(recorded);
    let found = db
        .query_blocking(|conn| orders::find_by_session(conn, "cs_test_1"))
        .unwrap()
        .unwrap();
    assert_eq!(found.id, o.id);
    assert_eq!(found.stripe_session_url.as_deref(), Some("https://pay.example/1"));
    assert_eq!((found.expires_at, found.attempt), (Some(ends), 1));
    assert_eq!(found.lines, o.lines);
    assert_eq!(
        db.query_blocking(|conn| orders::find_by_session(conn, "cs_test_unknown"))
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn a_session_is_not_recorded_on_an_order_that_no_longer_awaits_payment() {
    let s = shop(5).await;
    let db = &s.app.db;
    let o = ordered(&s, "psid-1", 1);
    assert!(transition(db, o.id, OrderStatus::Expired));

    let recorded = db
        .query_blocking(|conn| {
            orders::record_session(conn, o.id, "cs_test_1", "https://pay.example/1", now(), 1)
        })
        .unwrap();

    assert!(!recorded);
    assert_eq!(order(db, s.merchant.id, o.id).stripe_session_id, None);
}

#[tokio::test]
async fn a_second_tap_after_the_session_was_recorded_returns_the_order_with_its_session() {
    let s = shop(5).await;
    let db = &s.app.db;
    let t = thread(db, s.merchant.id, "psid-1");
    add(db, s.merchant.id, t, s.slippers, 1);
    let o = checkout(db, s.merchant.id, t).unwrap().order;
    let ends = now() + Duration::hours(1);
    db.query_blocking(|conn| {
        orders::record_session(conn, o.id, "cs_test_1", "https://pay.example/1", ends, 1)
    })
    .unwrap();

    let again = checkout(db, s.merchant.id, t).unwrap();

    assert!(!again.created);
    assert_eq!(
        again.order.stripe_session_url.as_deref(),
        Some("https://pay.example/1")
    );
}

#[tokio::test]
async fn another_merchants_order_is_not_found() {
    let s = shop(5).await;
    let db = &s.app.db;
    let other = s.app.merchant("Other Shop").await;
    let o = ordered(&s, "psid-1", 1);

    let theirs = db
        .query_blocking(|conn| orders::get(conn, other.id, o.id))
        .unwrap();

    assert_eq!(theirs, None);
    assert!(all_orders(db, other.id).is_empty());
}

#[tokio::test]
async fn orders_are_listed_newest_first_by_page_and_status() {
    let s = shop(50).await;
    let db = &s.app.db;
    let a = ordered(&s, "psid-1", 1);
    let b = ordered(&s, "psid-2", 1);
    let c = ordered(&s, "psid-3", 1);
    assert!(transition(db, b.id, OrderStatus::Paid));
    let list = |q: OrderQuery| -> Vec<String> {
        db.query_blocking(|conn| orders::list(conn, s.merchant.id, &q))
            .unwrap()
            .into_iter()
            .map(|o| o.number)
            .collect()
    };

    let first_page = list(OrderQuery {
        limit: 2,
        ..OrderQuery::default()
    });
    let next_page = list(OrderQuery {
        limit: 2,
        page: Keyset {
            cursor: Some(b.id.0),
            oldest_first: false,
        },
        ..OrderQuery::default()
    });
    let oldest_first = list(OrderQuery {
        limit: 10,
        page: Keyset::OLDEST_FIRST,
        ..OrderQuery::default()
    });
    let awaiting = list(OrderQuery {
        limit: 10,
        status: Some(OrderStatus::AwaitingPayment),
        ..OrderQuery::default()
    });

    assert_eq!(first_page, [c.number.as_str(), b.number.as_str()]);
    assert_eq!(next_page, [a.number.as_str()]);
    assert_eq!(
        oldest_first,
        [a.number.as_str(), b.number.as_str(), c.number.as_str()]
    );
    assert_eq!(awaiting, [c.number.as_str(), a.number.as_str()]);
}

#[tokio::test]
async fn overdue_lists_only_orders_awaiting_payment_whose_hold_ended() {
    let s = shop(50).await;
    let db = &s.app.db;
    let at = now();
    let ended = ordered(&s, "psid-1", 1);
    let running = ordered(&s, "psid-2", 1);
    let paid = ordered(&s, "psid-3", 1);
    assert!(transition(db, paid.id, OrderStatus::Paid));
    db.query_blocking(|conn| {
        orders::record_session(
            conn,
            ended.id,
            "cs_1",
            "https://pay.example/1",
            at - Duration::minutes(1),
            1,
        )?;
        orders::record_session(
            conn,
            running.id,
            "cs_2",
            "https://pay.example/2",
            at + Duration::hours(1),
            1,
        )
    })
    .unwrap();

    let due: Vec<OrderId> = db
        .query_blocking(|conn| orders::overdue(conn, at, 10))
        .unwrap()
        .into_iter()
        .map(|o| o.id)
        .collect();
    let later: Vec<OrderId> = db
        .query_blocking(|conn| orders::overdue(conn, at + Duration::hours(2), 10))
        .unwrap()
        .into_iter()
        .map(|o| o.id)
        .collect();

    assert_eq!(due, [ended.id]);
    assert_eq!(later, [ended.id, running.id]);
}

#[tokio::test]
async fn an_order_whose_session_was_never_made_is_overdue_after_the_hold() {
    let s = shop(5).await;
    let db = &s.app.db;
    let o = ordered(&s, "psid-1", 1);
    let created = o.created_at;

    let before = db
        .query_blocking(|conn| orders::overdue(conn, created + Duration::minutes(29), 10))
        .unwrap();
    let after = db
        .query_blocking(|conn| orders::overdue(conn, created + HOLD_BEFORE_SESSION, 10))
        .unwrap();

    assert!(before.is_empty());
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].id, o.id);
}

#[tokio::test]
async fn a_dispute_is_flagged_and_cleared() {
    let s = shop(5).await;
    let db = &s.app.db;
    let o = ordered(&s, "psid-1", 1);
    assert!(transition(db, o.id, OrderStatus::Paid));

    db.query_blocking(|conn| orders::set_disputed(conn, o.id, true))
        .unwrap();
    let flagged = order(db, s.merchant.id, o.id);
    db.query_blocking(|conn| orders::set_disputed(conn, o.id, false))
        .unwrap();
    let cleared = order(db, s.merchant.id, o.id);

    assert!(flagged.disputed);
    assert!(!cleared.disputed);
    assert_eq!(cleared.status, OrderStatus::Paid);
    assert!(
        db.query_blocking(|conn| orders::set_disputed(conn, OrderId::new(), true))
            .is_err()
    );
}

// ---------------------------------------------------------------------------------------------------
// Refunds

fn refund(db: &Db, order_id: OrderId, id: &str, minor: i64, status: &str) -> Result<Order, RefundError> {
    db.query_blocking(|conn| Ok(orders::record_refund(conn, order_id, id, euros(minor), status)))
        .unwrap()
}

fn refund_rows(db: &Db, order_id: OrderId) -> i64 {
    db.query_blocking(|conn| {
        refunds::table
            .filter(refunds::order_id.eq(order_id))
            .count()
            .get_result(conn)
    })
    .unwrap()
}

#[tokio::test]
async fn a_partial_then_the_remaining_refund_move_the_order_to_partially_then_fully_refunded() {
    let s = shop(5).await;
    let db = &s.app.db;
    let o = ordered(&s, "psid-1", 2);
    assert!(transition(db, o.id, OrderStatus::Paid));

    let partial = refund(db, o.id, "re_1", 2000, "succeeded").unwrap();
    let repeated = refund(db, o.id, "re_1", 2000, "succeeded").unwrap();
    let full = refund(db, o.id, "re_2", 9980 - 2000, "pending").unwrap();

    assert_eq!(
        (partial.status, partial.refunded),
        (OrderStatus::PartiallyRefunded, euros(2000))
    );
    assert_eq!(
        (repeated.status, repeated.refunded),
        (OrderStatus::PartiallyRefunded, euros(2000))
    );
    assert_eq!((full.status, full.refunded), (OrderStatus::Refunded, euros(9980)));
    assert_eq!(refund_rows(db, o.id), 2);
    assert_eq!(stock(db, s.slippers), 3, "a refund does not restock by itself");
}

#[tokio::test]
async fn two_partial_refunds_add_up() {
    let s = shop(5).await;
    let db = &s.app.db;
    let o = ordered(&s, "psid-1", 2);
    assert!(transition(db, o.id, OrderStatus::Paid));

    refund(db, o.id, "re_1", 1000, "succeeded").unwrap();
    let second = refund(db, o.id, "re_2", 1500, "succeeded").unwrap();

    assert_eq!(
        (second.status, second.refunded),
        (OrderStatus::PartiallyRefunded, euros(2500))
    );
}

#[tokio::test]
async fn a_refund_above_the_total_is_refused_and_records_nothing() {
    let s = shop(5).await;
    let db = &s.app.db;
    let o = ordered(&s, "psid-1", 2);
    assert!(transition(db, o.id, OrderStatus::Paid));
    refund(db, o.id, "re_1", 9000, "succeeded").unwrap();

    let above = refund(db, o.id, "re_2", 981, "succeeded").unwrap_err();
    let alone_above = refund(db, o.id, "re_3", 9981, "succeeded").unwrap_err();

    assert!(
        matches!(above, RefundError::AboveTotal { refunded, total } if refunded == euros(9981) && total == euros(9980)),
        "{above:?}"
    );
    assert!(
        matches!(alone_above, RefundError::AboveTotal { .. }),
        "{alone_above:?}"
    );
    let after = order(db, s.merchant.id, o.id);
    assert_eq!(
        (after.status, after.refunded),
        (OrderStatus::PartiallyRefunded, euros(9000))
    );
    assert_eq!(refund_rows(db, o.id), 1);
}

#[tokio::test]
async fn a_failed_refund_no_longer_counts() {
    let s = shop(5).await;
    let db = &s.app.db;
    let o = ordered(&s, "psid-1", 2);
    assert!(transition(db, o.id, OrderStatus::Paid));
    refund(db, o.id, "re_1", 9980, "pending").unwrap();

    let failed = refund(db, o.id, "re_1", 9980, "failed").unwrap();
    let retried = refund(db, o.id, "re_2", 9980, "succeeded").unwrap();

    assert_eq!(failed.refunded, euros(0));
    assert_eq!(
        (retried.status, retried.refunded),
        (OrderStatus::Refunded, euros(9980))
    );
}

#[tokio::test]
async fn a_refund_that_is_not_positive_or_in_another_currency_is_invalid() {
    let s = shop(5).await;
    let db = &s.app.db;
    let o = ordered(&s, "psid-1", 1);
    assert!(transition(db, o.id, OrderStatus::Paid));
    let dollars = Money::from_minor(100, Currency::parse("USD").unwrap());

    let zero = refund(db, o.id, "re_1", 0, "succeeded").unwrap_err();
    let usd = db
        .query_blocking(|conn| Ok(orders::record_refund(conn, o.id, "re_2", dollars, "succeeded")))
        .unwrap()
        .unwrap_err();
    let unknown = refund(db, OrderId::new(), "re_3", 100, "succeeded").unwrap_err();

    assert!(matches!(zero, RefundError::InvalidAmount), "{zero:?}");
    assert!(matches!(usd, RefundError::InvalidAmount), "{usd:?}");
    assert!(matches!(unknown, RefundError::NotFound), "{unknown:?}");
    assert_eq!(refund_rows(db, o.id), 0);
}

// ---------------------------------------------------------------------------------------------------
// Concurrency

/// Runs `a` and `b` on two threads released at the same moment.
fn at_once<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    let barrier = Barrier::new(2);
    std::thread::scope(|scope| {
        let first = scope.spawn(|| {
            barrier.wait();
            a()
        });
        let second = scope.spawn(|| {
            barrier.wait();
            b()
        });
        (first.join().unwrap(), second.join().unwrap())
    })
}

#[tokio::test]
async fn concurrent_checkouts_of_two_carts_never_sell_more_than_the_stock() {
    let s = shop(3).await;
    let db = &s.app.db;
    let m = s.merchant.id;

    for round in 0..25 {
        let t1 = thread(db, m, &format!("psid-a-{round}"));
        let t2 = thread(db, m, &format!("psid-b-{round}"));
        add(db, m, t1, s.slippers, 2);
        add(db, m, t2, s.slippers, 2);

        let (r1, r2) = at_once(|| checkout(db, m, t1), || checkout(db, m, t2));

        let (won, lost) = match (r1, r2) {
            (Ok(w), Err(l)) | (Err(l), Ok(w)) => (w, l),
            other => panic!("round {round}: exactly one checkout should win: {other:?}"),
        };
        assert!(
            matches!(lost, CheckoutRefusal::SoldOut { available: 1, .. }),
            "round {round}: {lost:?}"
        );
        assert_eq!(stock(db, s.slippers), 1, "round {round}");
        assert_eq!(reserved(db, s.slippers, "held"), 2, "round {round}");
        // Half the rounds end paid and restock the shelf, the other half expire: both keep the books.
        if round % 2 == 0 {
            assert!(transition(db, won.order.id, OrderStatus::Expired));
        } else {
            assert!(transition(db, won.order.id, OrderStatus::Paid));
            let res = s
                .app
                .post(
                    &format!("{}/stock-adjustments", s.slippers_path),
                    &s.merchant.token,
                    json!({"delta": 2}),
                )
                .await;
            assert_eq!(res.status(), 200);
        }
        let committed = reserved(db, s.slippers, "committed");
        assert_eq!(stock(db, s.slippers), 3, "round {round}");
        assert_eq!(committed, 2 * i64::from((round + 1) / 2), "round {round}");
    }
}

#[tokio::test]
async fn concurrent_checkouts_of_carts_of_several_variants_never_oversell_nor_deadlock() {
    let s = shop(3).await;
    let db = &s.app.db;
    let m = s.merchant.id;
    // Socks: 10 in stock; take them down to 3 too.
    db.query_blocking(|conn| {
        diesel::update(variants::table.filter(variants::id.eq(DbUuid(s.socks))))
            .set(variants::stock.eq(3_i64))
            .execute(conn)
    })
    .unwrap();

    for round in 0..15 {
        let t1 = thread(db, m, &format!("psid-a-{round}"));
        let t2 = thread(db, m, &format!("psid-b-{round}"));
        // Opposite orders of adding, the same two variants.
        add(db, m, t1, s.slippers, 2);
        add(db, m, t1, s.socks, 2);
        add(db, m, t2, s.socks, 2);
        add(db, m, t2, s.slippers, 2);

        let (r1, r2) = at_once(|| checkout(db, m, t1), || checkout(db, m, t2));

        let won: Vec<&CheckedOut> = [&r1, &r2].into_iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(won.len(), 1, "round {round}: {r1:?} {r2:?}");
        for v in [s.slippers, s.socks] {
            assert_eq!(stock(db, v), 1, "round {round}");
            assert_eq!(reserved(db, v, "held"), 2, "round {round}");
        }
        assert!(transition(db, won[0].order.id, OrderStatus::Expired));
    }
}

#[tokio::test]
async fn two_taps_on_checkout_at_once_make_one_order() {
    let s = shop(5).await;
    let db = &s.app.db;
    let m = s.merchant.id;

    for round in 0..10 {
        let t = thread(db, m, &format!("psid-{round}"));
        add(db, m, t, s.slippers, 2);

        let (a, b) = at_once(|| checkout(db, m, t), || checkout(db, m, t));

        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.order.id, b.order.id, "round {round}");
        assert_eq!([a.created, b.created].iter().filter(|c| **c).count(), 1);
        assert_eq!(stock(db, s.slippers), 3, "round {round}");
        assert!(transition(db, a.order.id, OrderStatus::Expired));
    }
}

#[tokio::test]
async fn a_payment_and_an_expiry_at_once_have_exactly_one_effect() {
    let s = shop(5).await;
    let db = &s.app.db;

    for round in 0..15 {
        let o = ordered(&s, &format!("psid-{round}"), 2);

        let (paid, expired) = at_once(
            || transition(db, o.id, OrderStatus::Paid),
            || transition(db, o.id, OrderStatus::Expired),
        );

        assert!(paid ^ expired, "round {round}: paid {paid}, expired {expired}");
        let after = order(db, s.merchant.id, o.id);
        let committed = reserved(db, s.slippers, "committed");
        if paid {
            assert_eq!(after.status, OrderStatus::Paid);
            assert_eq!(reservations_of(db, o.id)[0].2, "committed");
        } else {
            assert_eq!(after.status, OrderStatus::Expired);
            assert_eq!(reservations_of(db, o.id)[0].2, "released");
        }
        assert_eq!(stock(db, s.slippers) + committed, 5, "round {round}");
        if paid {
            // Put the sold pair back on the shelf for the next round.
            db.query_blocking(|conn| {
                diesel::update(variants::table.filter(variants::id.eq(DbUuid(s.slippers))))
                    .set(variants::stock.eq(variants::stock + 2))
                    .execute(conn)?;
                diesel::update(reservations::table.filter(reservations::order_id.eq(o.id)))
                    .set(reservations::status.eq("returned"))
                    .execute(conn)
            })
            .unwrap();
        }
    }
}

#[tokio::test]
async fn fifty_shoppers_checking_out_the_last_ten_units_at_once_make_exactly_ten_payable_orders() {
    let s = shop(10).await;
    let db = &s.app.db;
    let m = s.merchant.id;
    let threads: Vec<ThreadId> = (0..50)
        .map(|i| {
            let t = thread(db, m, &format!("psid-rush-{i}"));
            add(db, m, t, s.slippers, 1);
            t
        })
        .collect();

    let results: Vec<Result<CheckedOut, CheckoutRefusal>> = std::thread::scope(|scope| {
        let handles: Vec<_> = threads
            .iter()
            .map(|&t| scope.spawn(move || checkout(db, m, t)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    let won: Vec<&CheckedOut> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(won.len(), 10, "exactly the stock's worth of orders");
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| matches!(e, CheckoutRefusal::SoldOut { available: 0, .. })),
        "every other shopper is told it sold out"
    );
    assert_eq!(stock(db, s.slippers), 0);
    let paid = std::thread::scope(|scope| {
        let handles: Vec<_> = won
            .iter()
            .map(|w| {
                let id = w.order.id;
                scope.spawn(move || transition(db, id, OrderStatus::Paid))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|p| *p)
            .count()
    });
    assert_eq!(paid, 10);
    assert_eq!(reserved(db, s.slippers, "committed"), 10);
    assert_eq!(stock(db, s.slippers), 0, "never below zero, nothing oversold");
}

#[tokio::test]
async fn every_cart_change_answers_the_cart_exactly_as_it_is_then_stored() {
    let s = shop(20).await;
    let db = &s.app.db;
    let t = thread(db, s.merchant.id, "psid-cart");
    let offer_price = euros(720);

    // a new cart, a second line, the same variant again, the same variant at an offer's price
    let first = add(db, s.merchant.id, t, s.slippers, 1);
    assert_eq!(Some(&first), open_cart(db, t).as_ref());
    let second = add(db, s.merchant.id, t, s.socks, 2);
    assert_eq!(Some(&second), open_cart(db, t).as_ref());
    let merged = add(db, s.merchant.id, t, s.slippers, 2);
    assert_eq!(merged.lines.len(), 2);
    assert_eq!(merged.line_of(s.slippers).map(|l| l.quantity), Some(3));
    assert_eq!(Some(&merged), open_cart(db, t).as_ref());
    let offered = db
        .query_blocking(move |conn| {
            let (product, variant) = threadcart::catalog::variant_with_product(conn, s.merchant.id, s.socks)
                .unwrap()
                .unwrap();
            let offer = Uuid::now_v7();
            Ok(carts::add_priced(
                conn,
                s.merchant.id,
                t,
                &product,
                &variant,
                1,
                Some((offer, offer_price)),
            )
            .unwrap())
        })
        .unwrap();
    assert_eq!(
        offered.lines.len(),
        3,
        "an offer's line stays apart from the catalog-priced one"
    );
    assert_eq!(offered.lines[2].unit_price, offer_price);
    assert_eq!(Some(&offered), open_cart(db, t).as_ref());

    // quantity changed, then a line removed
    let line = offered.lines[1].id;
    let changed = db
        .query_blocking(move |conn| Ok(carts::set_quantity(conn, t, line, 5, Some(10)).unwrap()))
        .unwrap();
    assert_eq!(changed.lines[1].quantity, 5);
    assert_eq!(Some(&changed), open_cart(db, t).as_ref());
    let removed = db
        .query_blocking(move |conn| Ok(carts::set_quantity(conn, t, line, 0, None).unwrap()))
        .unwrap();
    assert_eq!(removed.lines.len(), 2);
    assert_eq!(Some(&removed), open_cart(db, t).as_ref());
}

// ---------------------------------------------------------------------------------------------------
// The orders list over HTTP: newest first, its cursor, its filters

/// The order numbers of a page of `GET /v1/orders?{query}`, and its next cursor.
async fn order_page(s: &Shop, query: &str) -> (Vec<String>, Option<String>) {
    let res = s.app.get(&format!("/v1/orders?{query}"), &s.merchant.token).await;
    assert_eq!(res.status(), 200, "{query}");
    let body: Value = res.json().await.unwrap();
    let numbers = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["number"].as_str().unwrap().to_owned())
        .collect();
    (numbers, body["next_cursor"].as_str().map(str::to_owned))
}

/// Every order number of `GET /v1/orders?{query}`, following the cursor two at a time.
async fn every_order(s: &Shop, query: &str) -> Vec<String> {
    let (mut all, mut cursor) = order_page(s, &format!("limit=2&{query}")).await;
    while let Some(c) = cursor {
        let (more, next) = order_page(s, &format!("limit=2&cursor={c}&{query}")).await;
        assert!(!more.is_empty(), "a cursor leads to a page with orders");
        all.extend(more);
        cursor = next;
    }
    all
}

/// Gives the customer of the order's thread a first name, as Meta's profile would.
fn name_customer(db: &Db, o: &Order, name: &'static str) {
    use threadcart::db::schema::{customers, threads};
    let thread_id = o.thread_id.unwrap();
    db.query_blocking(move |conn| {
        let customer: DbUuid = threads::table
            .find(thread_id)
            .select(threads::customer_id)
            .first(conn)?;
        diesel::update(customers::table.find(customer))
            .set(customers::first_name.eq(name))
            .execute(conn)
    })
    .unwrap();
}

#[tokio::test]
async fn the_orders_list_answers_the_newest_first_and_its_cursor_goes_on_to_older_ones() {
    let s = shop(50).await;
    let made: Vec<String> = (1..=5)
        .map(|i| ordered(&s, &format!("psid-{i}"), 1).number)
        .collect();
    let newest_first: Vec<String> = made.iter().rev().cloned().collect();

    let (first_page, _) = order_page(&s, "limit=2").await;
    let all_pages = every_order(&s, "").await;
    let oldest_first = every_order(&s, "order=oldest").await;

    assert_eq!(first_page, newest_first[..2]);
    assert_eq!(all_pages, newest_first);
    assert_eq!(oldest_first, made);
}

#[tokio::test]
async fn an_unknown_list_order_is_refused_naming_the_field() {
    let s = shop(50).await;

    let res = s.app.get("/v1/orders?order=sideways", &s.merchant.token).await;

    let problem = crate::helpers::assert_problem(res, 422, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "order");
}

#[tokio::test]
async fn orders_are_found_by_part_of_their_number_or_their_customers_name_whatever_the_case() {
    let s = shop(50).await;
    let ana = ordered(&s, "psid-ana", 1);
    let bruno = ordered(&s, "psid-bruno", 1);
    // a third order, whose customer has no name
    ordered(&s, "psid-anon", 1);
    name_customer(&s.app.db, &ana, "Ana");
    name_customer(&s.app.db, &bruno, "Bruno");
    let suffix = &bruno.number[bruno.number.len() - 3..];

    let (by_name, _) = order_page(&s, "q=ANA").await;
    let (by_number, _) = order_page(&s, &format!("q={suffix}")).await;
    let (by_nothing, _) = order_page(&s, "q=zelda").await;
    let (with_wildcards, _) = order_page(&s, "q=%25").await;
    let (everything, _) = order_page(&s, "q=").await;

    assert_eq!(by_name, [ana.number.as_str()]);
    assert_eq!(by_number, [bruno.number.as_str()]);
    assert!(by_nothing.is_empty());
    assert!(with_wildcards.is_empty(), "a % is searched for, not a wildcard");
    assert_eq!(everything.len(), 3);
    let listed: Value = s
        .app
        .get("/v1/orders", &s.merchant.token)
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<&Value> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| &o["customer_name"])
        .collect();
    assert_eq!(names, [&Value::Null, &json!("Bruno"), &json!("Ana")]);
}

#[tokio::test]
async fn orders_are_filtered_by_channel_and_an_unknown_channel_is_refused() {
    let s = shop(50).await;
    let made = ordered(&s, "psid-1", 1);

    let (on_messenger, _) = order_page(&s, "channel=messenger").await;
    let (on_webchat, _) = order_page(&s, "channel=webchat").await;
    let refused = s.app.get("/v1/orders?channel=fax", &s.merchant.token).await;

    assert_eq!(on_messenger, [made.number]);
    assert!(on_webchat.is_empty());
    let problem = crate::helpers::assert_problem(refused, 422, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "channel");
}

#[tokio::test]
async fn orders_are_filtered_by_status_and_date_range_newest_first() {
    let s = shop(50).await;
    let db = &s.app.db;
    let a = ordered(&s, "psid-1", 1);
    ordered(&s, "psid-2", 1);
    let c = ordered(&s, "psid-3", 1);
    assert!(transition(db, a.id, OrderStatus::Paid));
    assert!(transition(db, c.id, OrderStatus::Paid));
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1)).format("%Y-%m-%d");
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1)).format("%Y-%m-%d");

    let paid = every_order(&s, "status=paid").await;
    let paid_this_period = every_order(&s, &format!("status=paid&from={yesterday}&to={tomorrow}")).await;
    let paid_later = every_order(&s, &format!("status=paid&from={tomorrow}")).await;

    assert_eq!(paid, [c.number.clone(), a.number.clone()]);
    assert_eq!(paid_this_period, paid);
    assert!(paid_later.is_empty());
}

#[tokio::test]
async fn products_discounts_and_api_keys_are_listed_newest_first_unless_asked_oldest_first() {
    let s = shop(50).await;
    let (app, token) = (&s.app, &s.merchant.token);
    for code in ["FIRST10", "SECOND10", "THIRD10"] {
        let res = app
            .post("/v1/discounts", token, json!({"code": code, "percent_off": "10"}))
            .await;
        assert_eq!(res.status(), 201);
    }
    for label in ["first", "second"] {
        let res = app
            .post("/v1/api-keys", token, json!({"role": "agent", "label": label}))
            .await;
        assert_eq!(res.status(), 201);
    }
    let field = |path: &'static str, name: &'static str| async move {
        let body: Value = app.get(path, token).await.json().await.unwrap();
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v[name].as_str().unwrap_or("").to_owned())
            .collect::<Vec<String>>()
    };

    let products = field("/v1/products", "retailer_id").await;
    let products_oldest = field("/v1/products?order=oldest", "retailer_id").await;
    let codes = field("/v1/discounts?limit=2", "code").await;
    let codes_oldest = field("/v1/discounts?order=oldest", "code").await;
    let keys = field("/v1/api-keys", "label").await;

    assert_eq!(products, ["SOCK-01", "SLIP-01"]);
    assert_eq!(products_oldest, ["SLIP-01", "SOCK-01"]);
    assert_eq!(codes, ["THIRD10", "SECOND10"]);
    assert_eq!(codes_oldest, ["FIRST10", "SECOND10", "THIRD10"]);
    assert_eq!(keys[..2], ["second", "first"]);
}
