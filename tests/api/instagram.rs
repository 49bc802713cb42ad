//! Instagram Direct on the same core as Messenger: an account connected with its Page once Meta links
//! them, `"object": "instagram"` deliveries on the same webhook, a Click-to-Direct ad's first message
//! opening on the advertised product, replies through the Page's Send API to the shopper's
//! Instagram-scoped id within Instagram's limits (a receipt as text), the purchase told to the
//! Conversions API as Instagram's.

use serde_json::{Value, json};

use crate::checkout::{post_stripe_event, shop_with_stripe};
use crate::helpers::{
    MessengerApp, PAGE_ID, assert_problem, button, eventually, next_message, now_ms, sent_to,
    spawn_messenger_app, template,
};

const IG: &str = "17841400000000077";

fn instagram_delivery(messaging: Vec<Value>) -> String {
    json!({"object": "instagram", "entry": [{"id": IG, "time": now_ms(), "messaging": messaging}]})
        .to_string()
}

/// The shop's Page gets its Instagram account, as Meta links them.
async fn connect_instagram(m: &MessengerApp) {
    m.graph.links_instagram(PAGE_ID, IG);
    let res = m
        .app
        .patch(
            &format!("/v1/pages/{PAGE_ID}"),
            &m.merchant.token,
            json!({"instagram_account_id": IG}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let page: Value = res.json().await.unwrap();
    assert_eq!(page["instagram_account_id"], IG);
}

async fn say(m: &MessengerApp, event: Value) {
    let res = m.app.post_webhook(&instagram_delivery(vec![event])).await;
    assert_eq!(res.status(), 200);
}

fn from(igsid: &str, body: Value) -> Value {
    let mut event = body;
    event["sender"] = json!({"id": igsid});
    event["recipient"] = json!({"id": IG});
    event["timestamp"] = json!(now_ms());
    event
}

async fn tap(m: &MessengerApp, igsid: &str, title: &str, payload: &str) {
    let mid = format!("ig-pb-{}", uuid::Uuid::new_v4());
    say(
        m,
        from(
            igsid,
            json!({"postback": {"mid": mid, "title": title, "payload": payload}}),
        ),
    )
    .await;
}

async fn quick_reply(m: &MessengerApp, igsid: &str, title: &str, payload: &str) {
    let mid = format!("ig-m-{}", uuid::Uuid::new_v4());
    say(
        m,
        from(
            igsid,
            json!({"message": {"mid": mid, "text": title, "quick_reply": {"payload": payload}}}),
        ),
    )
    .await;
}

#[tokio::test]
async fn an_instagram_account_is_connected_only_when_meta_links_it_to_the_page() {
    let m = spawn_messenger_app().await;
    let page_url = format!("/v1/pages/{PAGE_ID}");

    let unlinked = m
        .app
        .patch(&page_url, &m.merchant.token, json!({"instagram_account_id": IG}))
        .await;
    assert_problem(unlinked, 422, "instagram_account_mismatch").await;
    m.graph.links_instagram(PAGE_ID, "17841400000000099");
    let other = m
        .app
        .patch(&page_url, &m.merchant.token, json!({"instagram_account_id": IG}))
        .await;
    assert_problem(other, 422, "instagram_account_mismatch").await;
    let bad = m
        .app
        .patch(
            &page_url,
            &m.merchant.token,
            json!({"instagram_account_id": "ig-1"}),
        )
        .await;
    assert_problem(bad, 422, "validation_failed").await;

    connect_instagram(&m).await;
    // Another merchant's Page linked to the same account cannot take it.
    let rival = m.app.merchant("Rival Shoes").await;
    m.graph.knows_page("200000000000009", "EAAG-rival-token-1234");
    m.graph.links_instagram("200000000000009", IG);
    let taken = m
        .app
        .post(
            "/v1/pages",
            &rival.token,
            json!({"page_id": "200000000000009", "access_token": "EAAG-rival-token-1234",
                   "instagram_account_id": IG}),
        )
        .await;
    assert_problem(taken, 409, "instagram_account_already_connected").await;

    let off = m
        .app
        .patch(
            &page_url,
            &m.merchant.token,
            json!({"instagram_account_id": null}),
        )
        .await;
    assert_eq!(off.status(), 200);
    let page: Value = off.json().await.unwrap();
    assert_eq!(page["instagram_account_id"], Value::Null);
}

#[tokio::test]
async fn a_shopper_from_a_click_to_direct_ad_buys_and_gets_the_receipt_as_text() {
    let (m, stripe) = shop_with_stripe().await;
    connect_instagram(&m).await;
    let dataset = m
        .app
        .request(
            reqwest::Method::PUT,
            &format!("/v1/pages/{PAGE_ID}/conversions"),
            &m.merchant.token,
            Some(json!({"dataset_id": "555000111", "access_token": "EAAG-capi-token-9999"})),
        )
        .await;
    assert_eq!(dataset.status(), 200, "{}", dataset.text().await.unwrap());
    let igsid = "IGSID-4242";

    // The ad's first message carries the ad: its ref names the product (Instagram's ads send no
    // product id).
    say(
        &m,
        from(
            igsid,
            json!({"message": {"mid": "ig-first", "text": "Is this available?",
                "referral": {"ref": "c=xmas24_p=SLIP-01", "ad_id": "AD-IG-1", "source": "ADS",
                    "type": "OPEN_THREAD", "ads_context_data": {"ad_title": "Slippers",
                        "photo_url": "https://example.com/ad.jpg"}}}}),
        ),
    )
    .await;
    let card = next_message(&m, igsid, 0, |v| template(v)["template_type"] == "generic").await;
    assert_eq!(template(&card)["elements"][0]["title"], "Comfy slippers");
    let said = sent_to(&m, igsid);
    assert!(
        crate::graph::is_disclosure(said[0]["text"].as_str().unwrap_or_default()),
        "the first message says an automated assistant answers: {}",
        said[0]
    );
    let greeting = said[1].clone();
    assert_eq!(
        greeting["text"],
        "Hi Inès! Thanks for your interest in “Slippers”. Here it is:"
    );
    // Every call went through the Page, to the shopper's Instagram-scoped id.
    assert!(
        m.graph
            .received()
            .iter()
            .filter(|r| r.path.ends_with("/messages"))
            .all(|r| r.path.ends_with(&format!("/{PAGE_ID}/messages")))
    );

    let seen = sent_to(&m, igsid).len();
    let choose = button(&template(&card)["elements"][0]["buttons"], "Choose size").to_owned();
    tap(&m, igsid, "Choose size", &choose).await;
    let sizes = next_message(&m, igsid, seen, |v| v["quick_replies"].is_array()).await;
    let seen = sent_to(&m, igsid).len();
    quick_reply(&m, igsid, "42", button(&sizes["quick_replies"], "42")).await;
    let total = next_message(&m, igsid, seen, |v| {
        template(v)["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("Your cart"))
    })
    .await;
    let seen = sent_to(&m, igsid).len();
    tap(
        &m,
        igsid,
        "Checkout",
        button(&template(&total)["buttons"], "Checkout"),
    )
    .await;
    next_message(&m, igsid, seen, |v| {
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
    let order = orders["data"][0].clone();
    assert_eq!(order["channel"], "instagram");
    assert_eq!(order["ad_id"], "AD-IG-1");
    let session = order["stripe_session_id"].as_str().unwrap().to_owned();
    stripe.complete_session(&session);
    let seen = sent_to(&m, igsid).len();
    post_stripe_event(&m, "checkout.session.completed", &session).await;

    let receipt = next_message(&m, igsid, seen, |v| {
        v["text"].as_str().is_some_and(|t| t.starts_with("Receipt "))
    })
    .await;
    assert!(receipt["text"].as_str().unwrap().contains("Total: 49.90 EUR"));
    assert!(
        sent_to(&m, igsid)
            .iter()
            .all(|v| template(v)["template_type"] != "receipt"),
        "Instagram has no receipt template"
    );

    let threads: Value = m
        .app
        .get("/v1/threads?channel=instagram", &m.merchant.token)
        .await
        .json()
        .await
        .unwrap();
    let thread = &threads["data"][0];
    assert_eq!(thread["page_id"], IG);
    assert_eq!(thread["customer"]["psid"], igsid);
    assert_eq!(thread["customer"]["first_name"], "Inès");
    // The ad's message opened the 7-day window of a Click-to-Direct ad.
    let ends: chrono::DateTime<chrono::Utc> = thread["window"]["ends_at"].as_str().unwrap().parse().unwrap();
    assert!(ends > chrono::Utc::now() + chrono::Duration::days(6));

    eventually("the purchase reaches the Conversions API", || async {
        !m.graph.events().is_empty()
    })
    .await;
    let event = &m.graph.events()[0].body["data"][0];
    assert_eq!(event["messaging_channel"], "instagram");
    assert_eq!(
        event["user_data"],
        json!({"instagram_business_account_id": IG, "ig_sid": igsid})
    );
    assert_eq!(event["custom_data"]["value"], json!(49.90));
}

#[tokio::test]
async fn an_instagram_delivery_for_an_account_no_merchant_connected_is_recorded_and_skipped() {
    let m = spawn_messenger_app().await;
    say(
        &m,
        from("IGSID-1", json!({"message": {"mid": "ig-lost", "text": "hello"}})),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(sent_to(&m, "IGSID-1").is_empty());
}
