//! Shopping in the thread, end to end: signed webhook events in, the engine's cards and quick replies out
//! at a local Graph API server, the shopper tapping what they were shown.

use serde_json::{Value, json};

use crate::helpers::{
    PAGE_ID, ad_postback, button, delivery, eventually, next_message, now_ms, sent_to, spawn_messenger_app,
    tap_postback, tap_quick_reply, template, threads,
};

fn is_total(message: &Value, text: &str) -> bool {
    template(message)["template_type"] == "button" && template(message)["text"] == text
}

#[tokio::test]
async fn a_shopper_from_a_slippers_ad_picks_size_42_and_sees_the_right_total() {
    let m = spawn_messenger_app().await;

    // The ad opens on the advertised product's card.
    m.app
        .post_webhook(&delivery(
            PAGE_ID,
            vec![ad_postback(
                "U1",
                now_ms(),
                "pb-ad",
                "AD-42",
                "Comfy slippers",
                "SLIP-01",
            )],
        ))
        .await;
    let card = next_message(&m, "U1", 0, |v| template(v)["template_type"] == "generic").await;
    let element = &template(&card)["elements"][0];
    assert_eq!(element["title"], "Comfy slippers");
    assert_eq!(element["subtitle"], "49.90 EUR");

    // "Choose size" offers the sizes in stock only.
    let seen = sent_to(&m, "U1").len();
    tap_postback(
        &m,
        "U1",
        "Choose size",
        button(&element["buttons"], "Choose size"),
    )
    .await;
    let sizes = next_message(&m, "U1", seen, |v| v["text"] == "Which size of Comfy slippers?").await;
    let titles: Vec<&str> = sizes["quick_replies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["42", "43"], "size 41 is out of stock");

    // Size 42 goes in the cart.
    let seen = sent_to(&m, "U1").len();
    tap_quick_reply(&m, "U1", "42", button(&sizes["quick_replies"], "42")).await;
    next_message(&m, "U1", seen, |v| {
        v["text"] == "Added Comfy slippers (42) to your cart."
    })
    .await;
    let total = next_message(&m, "U1", seen, |v| {
        is_total(v, "Your cart: 1 item(s), total 49.90 EUR.")
    })
    .await;

    // One more of the line, through the cart's card.
    let seen = sent_to(&m, "U1").len();
    let lines = sent_to(&m, "U1")
        .into_iter()
        .rev()
        .find(|v| template(v)["template_type"] == "generic")
        .unwrap();
    tap_postback(
        &m,
        "U1",
        "Add one",
        button(&template(&lines)["elements"][0]["buttons"], "Add one"),
    )
    .await;
    next_message(&m, "U1", seen, |v| {
        is_total(v, "Your cart: 2 item(s), total 99.80 EUR.")
    })
    .await;

    // Agents can find the threads with something in the cart.
    let with_cart: Value = m
        .app
        .get("/v1/threads?has_open_cart=true", &m.merchant.token)
        .await
        .json()
        .await
        .unwrap();
    let without: Value = m
        .app
        .get("/v1/threads?has_open_cart=false", &m.merchant.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(with_cart["data"].as_array().unwrap().len(), 1);
    assert!(without["data"].as_array().unwrap().is_empty());

    // The cart through the API, and the funnel events with the ad's touch.
    let thread = threads(&m.app, &m.merchant.token).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let cart: Value = m
        .app
        .get(&format!("/v1/threads/{thread}/cart"), &m.merchant.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(cart["lines"][0]["sku"], "SLIP-01-42");
    assert_eq!(cart["lines"][0]["quantity"], 2);
    assert_eq!(cart["subtotal"], json!({"amount": "99.80", "currency": "EUR"}));
    let funnel: Vec<(String, Option<String>)> = {
        use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
        use threadcart::db::schema::funnel_events;
        m.app
            .db
            .query_blocking(|conn| {
                // `engaged` marks the thread's first step; the steps themselves follow it.
                funnel_events::table
                    .filter(funnel_events::kind.ne("engaged"))
                    .order(funnel_events::occurred_at.asc())
                    .select((funnel_events::kind, funnel_events::ad_id))
                    .load(conn)
            })
            .unwrap()
    };
    assert_eq!(funnel[0], ("product_view".to_owned(), Some("AD-42".to_owned())));
    assert!(
        funnel
            .iter()
            .any(|(k, ad)| k == "add_to_cart" && ad.as_deref() == Some("AD-42"))
    );
    // The daily rollup the reports read (the events are added to it in batches, moments later) counts
    // every one of those events, and their value, under the ad.
    let read = || {
        use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
        use threadcart::db::schema::{funnel_daily, funnel_events};
        m.app
            .db
            .query_blocking(|conn| {
                let events: Vec<(String, Option<i64>)> = funnel_events::table
                    .filter(funnel_events::ad_id.eq("AD-42"))
                    .select((funnel_events::kind, funnel_events::value_minor))
                    .load(conn)?;
                let rolled_up: Vec<(String, i64, i64)> = funnel_daily::table
                    .filter(funnel_daily::ad_id.eq("AD-42"))
                    .select((
                        funnel_daily::kind,
                        funnel_daily::events,
                        funnel_daily::value_minor,
                    ))
                    .order(funnel_daily::kind)
                    .load(conn)?;
                diesel::QueryResult::Ok((events, rolled_up))
            })
            .unwrap()
    };
    let counted = |events: Vec<(String, Option<i64>)>| {
        let mut by_kind = std::collections::BTreeMap::<String, (i64, i64)>::new();
        for (kind, value) in events {
            let entry = by_kind.entry(kind).or_default();
            *entry = (entry.0 + 1, entry.1 + value.unwrap_or(0));
        }
        by_kind
            .into_iter()
            .map(|(k, (n, v))| (k, n, v))
            .collect::<Vec<(String, i64, i64)>>()
    };
    eventually("the rollup counts every event", || async {
        let (events, rolled_up) = read();
        rolled_up == counted(events)
    })
    .await;
    let (events, rolled_up) = read();
    let events = counted(events);
    assert!(events.iter().any(|(kind, ..)| kind == "engaged"), "{events:?}");
    assert_eq!(rolled_up, events);

    // Checkout is not open yet: a person takes over, and the bot stays quiet.
    let seen = sent_to(&m, "U1").len();
    tap_postback(
        &m,
        "U1",
        "Checkout",
        button(&template(&total)["buttons"], "Checkout"),
    )
    .await;
    next_message(&m, "U1", seen, |v| {
        v["text"].as_str().is_some_and(|t| t.starts_with("Thank you!"))
    })
    .await;
    let detail: Value = m
        .app
        .get(&format!("/v1/threads/{thread}"), &m.merchant.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(detail["mode"], "agent");
}

#[tokio::test]
async fn typing_a_product_name_finds_it_and_typing_human_hands_over() {
    let m = spawn_messenger_app().await;
    let ask = |text: &str, mid: &str| {
        json!({"sender": {"id": "U2"}, "recipient": {"id": PAGE_ID}, "timestamp": now_ms(),
               "message": {"mid": mid, "text": text}})
    };

    m.app
        .post_webhook(&delivery(PAGE_ID, vec![ask("Comfy SLIPPERS", "m-1")]))
        .await;
    let card = next_message(&m, "U2", 0, |v| template(v)["template_type"] == "generic").await;
    assert_eq!(template(&card)["elements"][0]["title"], "Comfy slippers");

    let seen = sent_to(&m, "U2").len();
    m.app
        .post_webhook(&delivery(PAGE_ID, vec![ask("human", "m-2")]))
        .await;
    next_message(&m, "U2", seen, |v| {
        v["text"].as_str().is_some_and(|t| t.contains("a person"))
    })
    .await;
    let thread = &threads(&m.app, &m.merchant.token).await[0];
    assert_eq!(thread["mode"], "agent");
}

#[tokio::test]
async fn connecting_a_page_sets_its_get_started_button_and_menu() {
    let m = spawn_messenger_app().await;

    let call = m
        .graph
        .received()
        .into_iter()
        .find(|r| r.path == "/v25.0/me/messenger_profile")
        .expect("the Messenger profile is set when the Page is connected");

    assert_eq!(
        call.param("access_token").as_deref(),
        Some("EAAG-page-token-1234")
    );
    assert_eq!(call.body["get_started"]["payload"], "GET_STARTED");
    let menu: Vec<&str> = call.body["persistent_menu"][0]["call_to_actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["title"].as_str().unwrap())
        .collect();
    assert_eq!(menu, ["Shop", "My cart", "Talk to a person"]);
    let page: Value = m
        .app
        .get(&format!("/v1/pages/{PAGE_ID}"), &m.merchant.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["messenger_profile"], "ok");
}

#[tokio::test]
async fn outside_business_hours_the_first_message_of_the_day_gets_the_away_text_once() {
    let m = spawn_messenger_app().await;
    // Closed every day of the week: the shop is always outside its hours.
    let res = m
        .app
        .patch(
            "/v1/merchant",
            &m.merchant.token,
            json!({"business_hours": {"mon": []}, "away_text": "We are closed, back tomorrow at 9."}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let say = |text: &str, mid: &str| {
        json!({"sender": {"id": "U3"}, "recipient": {"id": PAGE_ID}, "timestamp": now_ms(),
               "message": {"mid": mid, "text": text}})
    };

    m.app
        .post_webhook(&delivery(PAGE_ID, vec![say("hello", "m-1")]))
        .await;
    let first = next_message(&m, "U3", 0, |v| v["text"].is_string()).await;
    assert!(crate::graph::is_disclosure(
        first["text"].as_str().unwrap_or_default()
    ));
    let away = next_message(&m, "U3", 1, |v| v["text"].is_string()).await;
    assert_eq!(away["text"], "We are closed, back tomorrow at 9.");
    next_message(&m, "U3", 2, |v| v["text"] == "Hi Anna! How can I help?").await;
    let seen = sent_to(&m, "U3").len();
    m.app
        .post_webhook(&delivery(PAGE_ID, vec![say("cart", "m-2")]))
        .await;

    next_message(&m, "U3", seen, |v| v["text"] == "Your cart is empty.").await;
    let away_count = sent_to(&m, "U3")
        .iter()
        .filter(|v| v["text"] == "We are closed, back tomorrow at 9.")
        .count();
    assert_eq!(away_count, 1, "once a day");
}

#[tokio::test]
async fn business_hours_are_validated_and_shown_on_the_merchant() {
    let app = crate::helpers::spawn_app().await;
    let m = app.merchant("Shop").await;

    let bad = app
        .patch(
            "/v1/merchant",
            &m.token,
            json!({"business_hours": {"monday": ["9-5"]}}),
        )
        .await;
    let ok = app
        .patch(
            "/v1/merchant",
            &m.token,
            json!({"timezone": "America/New_York", "business_hours": {"mon": ["09:00-17:30"], "sat": ["10:00-14:00"]}}),
        )
        .await;

    crate::helpers::assert_problem(bad, 422, "validation_failed").await;
    assert_eq!(ok.status(), 200);
    let merchant: Value = app.get("/v1/merchant", &m.token).await.json().await.unwrap();
    assert_eq!(merchant["timezone"], "America/New_York");
    assert_eq!(merchant["business_hours"]["sat"][0], "10:00-14:00");
    let catalog = app.key_with_role(&m, "catalog").await;
    let forbidden = app
        .patch("/v1/merchant", &catalog.token, json!({"away_text": "x"}))
        .await;
    assert_eq!(forbidden.status(), 403);
}

#[tokio::test]
async fn ad_for_slippers_then_size_42_then_the_socks_upsell_then_a_code_gives_the_right_total() {
    let m = spawn_messenger_app().await;
    let token = m.merchant.token.clone();
    let socks = m
        .app
        .create_product(
            &token,
            json!({"retailer_id": "SOCK-WOOL", "title": "Wool socks", "variants": [
                {"sku": "SOCK-WOOL-1", "name": "One size", "price": {"amount": "9.00", "currency": "EUR"}, "stock": 20}]}),
        )
        .await;
    let slippers: Value = m
        .app
        .get("/v1/products?q=slippers", &token)
        .await
        .json()
        .await
        .unwrap();
    let offer = m
        .app
        .post(
            "/v1/offers",
            &token,
            json!({"kind": "upsell", "trigger": {"product_id": slippers["data"][0]["id"]},
                   "offer": {"variant_id": socks["variants"][0]["id"]}, "discount_percent": "20",
                   "text": "Add wool socks?"}),
        )
        .await;
    assert_eq!(offer.status(), 201);
    let code = m
        .app
        .post(
            "/v1/discounts",
            &token,
            json!({"code": "XMAS10", "percent_off": "10"}),
        )
        .await;
    assert_eq!(code.status(), 201);

    // Ad, card, size 42.
    m.app
        .post_webhook(&delivery(
            PAGE_ID,
            vec![ad_postback(
                "U9",
                now_ms(),
                "pb-ad",
                "AD-9",
                "Comfy slippers",
                "SLIP-01",
            )],
        ))
        .await;
    let card = next_message(&m, "U9", 0, |v| template(v)["template_type"] == "generic").await;
    let seen = sent_to(&m, "U9").len();
    tap_postback(
        &m,
        "U9",
        "Choose size",
        button(&template(&card)["elements"][0]["buttons"], "Choose size"),
    )
    .await;
    let sizes = next_message(&m, "U9", seen, |v| v["quick_replies"].is_array()).await;
    let seen = sent_to(&m, "U9").len();
    tap_quick_reply(&m, "U9", "42", button(&sizes["quick_replies"], "42")).await;

    // The upsell follows the cart, once.
    let upsell = next_message(&m, "U9", seen, |v| {
        template(v)["template_type"] == "button"
            && template(v)["text"]
                == "Add wool socks? Wool socks (One size) for 7.20 EUR instead of 9.00 EUR."
    })
    .await;
    let seen = sent_to(&m, "U9").len();
    tap_postback(
        &m,
        "U9",
        "Yes, add it",
        button(&template(&upsell)["buttons"], "Yes, add it"),
    )
    .await;
    next_message(&m, "U9", seen, |v| {
        v["text"] == "Added Wool socks (One size) for 7.20 EUR."
    })
    .await;
    next_message(&m, "U9", seen, |v| {
        is_total(v, "Your cart: 2 item(s), total 57.10 EUR.")
    })
    .await;

    // The code, typed.
    let seen = sent_to(&m, "U9").len();
    let typed = json!({"sender": {"id": "U9"}, "recipient": {"id": PAGE_ID}, "timestamp": now_ms(),
                       "message": {"mid": "m-code", "text": "xmas10"}});
    m.app.post_webhook(&delivery(PAGE_ID, vec![typed])).await;
    next_message(&m, "U9", seen, |v| v["text"] == "Code XMAS10 applied.").await;
    next_message(&m, "U9", seen, |v| {
        is_total(
            v,
            "Your cart: 2 item(s), 57.10 EUR with code XMAS10 (-5.71 EUR): total 51.39 EUR.",
        )
    })
    .await;
    let upsells = sent_to(&m, "U9")
        .iter()
        .filter(|v| {
            template(v)["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("Add wool socks?"))
        })
        .count();
    assert_eq!(upsells, 1, "an offer is shown once per cart");
}

#[tokio::test]
async fn the_bot_shows_typing_before_sending_several_messages() {
    let m = spawn_messenger_app().await;

    m.app
        .post_webhook(&delivery(
            PAGE_ID,
            vec![ad_postback(
                "U7",
                now_ms(),
                "pb-typing",
                "AD-1",
                "Comfy slippers",
                "SLIP-01",
            )],
        ))
        .await;

    next_message(&m, "U7", 0, |v| template(v)["template_type"] == "generic").await;
    let to_u7: Vec<Value> = m
        .graph
        .received()
        .into_iter()
        .filter(|r| r.path.ends_with("/messages") && r.body["recipient"]["id"] == "U7")
        .map(|r| r.body)
        .collect();
    assert_eq!(to_u7[0]["sender_action"], "typing_on", "typing first: {to_u7:?}");
    assert!(to_u7[1]["message"]["text"].is_string());
}
