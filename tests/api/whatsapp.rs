//! WhatsApp on the conversation core: a merchant connects a Cloud API number Meta confirms, shoppers'
//! messages arrive on the signed webhook as `whatsapp_business_account` deliveries, and the bot answers
//! through `POST /{phone-number-id}/messages` within WhatsApp's limits. Through real HTTP, against the
//! local Graph server answering as the Cloud API does.

use serde_json::{Value, json};
use threadcart::dev::clock;

use crate::helpers::{MessengerApp, assert_problem, eventually, spawn_messenger_app};

const WABA: &str = "102290129340398";
const NUMBER: &str = "106540352242922";
const TOKEN: &str = "EAAG-whatsapp-system-user-1234";

/// Connects the shop's WhatsApp number (Meta lists it on the account for the token); answers its body.
async fn connect_number(m: &MessengerApp) -> Value {
    m.graph
        .knows_whatsapp_number(WABA, NUMBER, "+1 555-078-3881", TOKEN);
    let res = m
        .app
        .post(
            "/v1/whatsapp/numbers",
            &m.merchant.token,
            json!({"phone_number_id": NUMBER, "waba_id": WABA, "access_token": TOKEN,
                   "catalog_id": "194836987003835"}),
        )
        .await;
    assert_eq!(res.status(), 201, "connecting the number");
    res.json().await.unwrap()
}

/// A Cloud API delivery of `value` for the shop's number.
fn delivery(value: Value) -> String {
    let mut value = value;
    value["messaging_product"] = json!("whatsapp");
    value["metadata"] = json!({"display_phone_number": "15550783881", "phone_number_id": NUMBER});
    json!({"object": "whatsapp_business_account",
           "entry": [{"id": WABA, "changes": [{"field": "messages", "value": value}]}]})
    .to_string()
}

/// A delivery of one message from `wa_id` (named Sheena).
fn from_shopper(wa_id: &str, message: Value) -> String {
    let mut message = message;
    message["from"] = json!(wa_id);
    message["timestamp"] = json!(chrono::Utc::now().timestamp().to_string());
    delivery(json!({"contacts": [{"profile": {"name": "Sheena"}, "wa_id": wa_id}], "messages": [message]}))
}

/// `wa_id` writes "hello".
async fn says_hello(m: &MessengerApp, wa_id: &str) {
    let hello = json!({"id": format!("wamid.H-{wa_id}"), "type": "text", "text": {"body": "hello"}});
    assert_eq!(
        m.app.post_webhook(&from_shopper(wa_id, hello)).await.status(),
        200
    );
}

/// `wa_id` writes "hello" and the bot answers.
async fn hello_answered(m: &MessengerApp, wa_id: &str) {
    says_hello(m, wa_id).await;
    eventually("the bot answers", || async {
        !m.graph.whatsapp_to(wa_id).is_empty()
    })
    .await;
}

fn tap(id: &str, button_id: &str, title: &str) -> Value {
    json!({"id": id, "type": "interactive",
           "interactive": {"type": "button_reply", "button_reply": {"id": button_id, "title": title}}})
}

/// Every limit WhatsApp sets on what we sent (whatsapp.md §2): panics naming the first broken.
fn within_whatsapps_limits(body: &Value) {
    let count = |v: &Value| v.as_str().map_or(0, |s| s.chars().count());
    assert_eq!(body["messaging_product"], "whatsapp");
    match body["type"].as_str().unwrap() {
        "text" => assert!(count(&body["text"]["body"]) <= 4096, "{body}"),
        "image" => assert!(body["image"]["link"].is_string(), "{body}"),
        "interactive" => {
            let i = &body["interactive"];
            match i["type"].as_str().unwrap() {
                "button" => {
                    let buttons = i["action"]["buttons"].as_array().unwrap();
                    assert!((1..=3).contains(&buttons.len()), "{body}");
                    let titles: Vec<&str> = buttons
                        .iter()
                        .map(|b| b["reply"]["title"].as_str().unwrap())
                        .collect();
                    assert!(titles.iter().all(|t| t.chars().count() <= 20), "{body}");
                    let mut unique = titles.clone();
                    unique.sort_unstable();
                    unique.dedup();
                    assert_eq!(unique.len(), titles.len(), "unique titles: {body}");
                    assert!(count(&i["body"]["text"]) <= 1024, "{body}");
                }
                "list" => {
                    let rows: Vec<&Value> = i["action"]["sections"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .flat_map(|s| s["rows"].as_array().unwrap())
                        .collect();
                    assert!((1..=10).contains(&rows.len()), "{body}");
                    assert!(rows.iter().all(|r| count(&r["title"]) <= 24), "{body}");
                    assert!(count(&i["action"]["button"]) <= 20, "{body}");
                }
                "cta_url" => assert!(count(&i["action"]["parameters"]["display_text"]) <= 20, "{body}"),
                "product" => assert!(i["action"]["product_retailer_id"].is_string(), "{body}"),
                "product_list" => {
                    let sections = i["action"]["sections"].as_array().unwrap();
                    assert!((1..=10).contains(&sections.len()), "{body}");
                    let items: usize = sections
                        .iter()
                        .map(|s| s["product_items"].as_array().unwrap().len())
                        .sum();
                    assert!((1..=30).contains(&items), "{body}");
                    assert!(count(&i["header"]["text"]) <= 60, "{body}");
                }
                other => panic!("unexpected interactive type {other}: {body}"),
            }
        }
        other => panic!("unexpected message type {other}: {body}"),
    }
}

/// The id of the reply button titled `title` among the messages sent to `wa_id`, waiting for it.
async fn button_id(m: &MessengerApp, wa_id: &str, title: &str) -> String {
    let find = || {
        m.graph.whatsapp_to(wa_id).into_iter().rev().find_map(|b| {
            b["interactive"]["action"]["buttons"]
                .as_array()?
                .iter()
                .find(|x| x["reply"]["title"] == title)
                .map(|x| x["reply"]["id"].as_str().unwrap().to_owned())
        })
    };
    eventually(&format!("a button {title}"), || async { find().is_some() }).await;
    find().unwrap()
}

/// Moves the thread `thread` (its window, its shopper's last message) `hours` into the past.
fn hours_pass(m: &MessengerApp, thread: &str, hours: i64) {
    let thread = threadcart::kernel::ThreadId(uuid::Uuid::parse_str(thread).unwrap());
    m.app
        .db
        .query_blocking(move |conn| clock::advance(conn, thread, chrono::Duration::hours(hours)))
        .unwrap();
}

async fn thread_of(m: &MessengerApp, wa_id: &str) -> String {
    let wa = wa_id.to_owned();
    let mut found = None;
    for _ in 0..200 {
        let wa = wa.clone();
        found = m
            .app
            .db
            .query_blocking(move |conn| clock::thread_of(conn, NUMBER, &wa))
            .unwrap();
        if found.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    found.expect("the shopper's thread").to_string()
}

#[tokio::test]
async fn a_merchant_connects_a_number_meta_lists_on_its_account_and_the_token_is_never_shown_again() {
    let m = spawn_messenger_app().await;

    let number = connect_number(&m).await;

    assert_eq!(number["phone_number_id"], NUMBER);
    assert_eq!(number["waba_id"], WABA);
    assert_eq!(number["display_phone_number"], "+1 555-078-3881");
    assert_eq!(number["verified_name"], "Comfy Shoes");
    assert_eq!(number["token_last4"], "1234");
    assert!(!number.to_string().contains(TOKEN), "the token is not answered");
    let listed: Value = m
        .app
        .get("/v1/whatsapp/numbers", &m.merchant.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["data"][0]["id"], number["id"]);
    let pages: Value = m
        .app
        .get("/v1/pages", &m.merchant.token)
        .await
        .json()
        .await
        .unwrap();
    assert!(
        pages["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["page_id"] != NUMBER),
        "a number is no Page"
    );
    let again = m
        .app
        .post(
            "/v1/whatsapp/numbers",
            &m.merchant.token,
            json!({"phone_number_id": NUMBER, "waba_id": WABA, "access_token": TOKEN}),
        )
        .await;
    assert_problem(again, 409, "page_already_connected").await;
    let not_on_the_account = m
        .app
        .post(
            "/v1/whatsapp/numbers",
            &m.merchant.token,
            json!({"phone_number_id": "999", "waba_id": WABA, "access_token": TOKEN}),
        )
        .await;
    assert_problem(not_on_the_account, 422, "page_token_mismatch").await;
    let bad_token = m
        .app
        .post(
            "/v1/whatsapp/numbers",
            &m.merchant.token,
            json!({"phone_number_id": NUMBER, "waba_id": WABA, "access_token": "EAAG-not-a-real-one"}),
        )
        .await;
    assert_problem(bad_token, 422, "page_token_invalid").await;
    let bad_ids = m
        .app
        .post(
            "/v1/whatsapp/numbers",
            &m.merchant.token,
            json!({"phone_number_id": "+1 555", "waba_id": "x", "access_token": TOKEN}),
        )
        .await;
    assert_problem(bad_ids, 422, "validation_failed").await;
    let id = number["id"].as_str().unwrap();
    let path = format!("/v1/whatsapp/numbers/{id}");
    assert_eq!(m.app.get(&path, &m.merchant.token).await.status(), 200);
    assert_eq!(m.app.delete(&path, &m.merchant.token).await.status(), 204);
    assert_eq!(m.app.get(&path, &m.merchant.token).await.status(), 404);
}

#[tokio::test]
async fn a_shopper_asking_about_a_catalog_item_gets_its_card_and_taps_through_to_the_cart_within_whatsapps_limits()
 {
    let m = spawn_messenger_app().await;
    connect_number(&m).await;
    let question = json!({"id": "wamid.Q1", "type": "text", "text": {"body": "Is it warm?"},
        "context": {"from": "15550783881", "id": "wamid.CTX",
                    "referred_product": {"catalog_id": "194836987003835", "product_retailer_id": "SLIP-01-42"}}});

    assert_eq!(
        m.app.post_webhook(&from_shopper("W1", question)).await.status(),
        200
    );
    let choose = button_id(&m, "W1", "Choose size").await;
    assert_eq!(
        m.app
            .post_webhook(&from_shopper("W1", tap("wamid.T1", &choose, "Choose size")))
            .await
            .status(),
        200
    );
    let size = button_id(&m, "W1", "42").await;
    m.app
        .post_webhook(&from_shopper("W1", tap("wamid.T2", &size, "42")))
        .await;
    button_id(&m, "W1", "Checkout").await;

    let sent = m.graph.whatsapp_to("W1");
    sent.iter().for_each(within_whatsapps_limits);
    let product = sent
        .iter()
        .find(|b| b["interactive"]["type"] == "product")
        .expect("the product, shown from the number's catalog");
    assert_eq!(product["interactive"]["action"]["catalog_id"], "194836987003835");
    assert_eq!(
        product["interactive"]["action"]["product_retailer_id"], "SLIP-01-42",
        "the first size in stock"
    );
    let calls = m.graph.whatsapp_messages();
    assert!(
        calls
            .iter()
            .all(|c| c.path.ends_with(&format!("/{NUMBER}/messages")))
    );
    assert_eq!(calls[0].param("access_token").as_deref(), Some(TOKEN));
    let thread = thread_of(&m, "W1").await;
    let context: Value = m
        .app
        .get(&format!("/v1/threads/{thread}/context"), &m.merchant.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(context["customer"]["channel"], "whatsapp");
    assert_eq!(context["customer"]["first_name"], "Sheena");
    assert_eq!(context["cart"]["lines"][0]["variant_name"], "42");
}

#[tokio::test]
async fn a_click_to_whatsapp_ad_becomes_the_threads_touch_and_a_redelivery_is_answered_once() {
    let m = spawn_messenger_app().await;
    connect_number(&m).await;
    let from_ad = from_shopper(
        "W2",
        json!({"id": "wamid.A1", "type": "text", "text": {"body": "Can I get more info about this?"},
               "referral": {"source_url": "https://fb.me/3cr4Wqqkv", "source_id": "120226305854810726",
                            "source_type": "ad", "headline": "Warm slippers", "body": "Winter is here",
                            "media_type": "image", "ctwa_clid": "Aff-n8ZTODiE79d22"}}),
    );

    m.app.post_webhook(&from_ad).await;
    eventually("the bot answers", || async {
        !m.graph.whatsapp_to("W2").is_empty()
    })
    .await;
    let thread = thread_of(&m, "W2").await;
    let answered = m.graph.whatsapp_to("W2").len();
    m.app.post_webhook(&from_ad).await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;

    assert_eq!(
        m.graph.whatsapp_to("W2").len(),
        answered,
        "the redelivery has no effect"
    );
    let context: Value = m
        .app
        .get(&format!("/v1/threads/{thread}/context"), &m.merchant.token)
        .await
        .json()
        .await
        .unwrap();
    let touch = &context["touches"][0];
    assert_eq!(touch["ad_id"], "120226305854810726");
    assert_eq!(touch["ad_title"], "Warm slippers");
    assert_eq!(touch["source"], "ADS");
    assert_eq!(touch["channel"], "whatsapp");
    assert_eq!(touch["ads_context_data"]["ctwa_clid"], "Aff-n8ZTODiE79d22");
}

#[tokio::test]
async fn a_failed_status_marks_the_message_and_a_person_cannot_write_after_the_24_hours() {
    let m = spawn_messenger_app().await;
    connect_number(&m).await;
    hello_answered(&m, "W3").await;
    let thread = thread_of(&m, "W3").await;
    let messages_path = format!("/v1/threads/{thread}/messages?order=oldest");
    let sent_id = || async {
        let messages: Value = m
            .app
            .get(&messages_path, &m.merchant.token)
            .await
            .json()
            .await
            .unwrap();
        messages["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["direction"] == "out")
            .find_map(|x| x["mid"].as_str().map(str::to_owned))
    };
    eventually("the answer is sent", || async { sent_id().await.is_some() }).await;
    let wamid = sent_id().await.unwrap();
    assert!(wamid.starts_with("wamid."), "{wamid}");

    let failed = delivery(
        json!({"statuses": [{"id": wamid, "status": "failed", "timestamp": "1751142888",
        "recipient_id": "W3", "errors": [{"code": 131026, "title": "Message Undeliverable",
        "message": "Message Undeliverable", "error_data": {"details": "Message Undeliverable."}}]}]}),
    );
    m.app.post_webhook(&failed).await;

    eventually("the message is marked failed", || async {
        let messages: Value = m
            .app
            .get(&messages_path, &m.merchant.token)
            .await
            .json()
            .await
            .unwrap();
        messages["data"].as_array().unwrap().iter().any(|x| {
            x["mid"] == wamid.as_str()
                && x["delivery"] == "failed"
                && x["delivery_error"].as_str().is_some_and(|e| e.contains("131026"))
        })
    })
    .await;
    hours_pass(&m, &thread, 25);
    let late = m
        .app
        .post(
            &format!("/v1/threads/{thread}/messages"),
            &m.merchant.token,
            json!({"text": "Are you still there?"}),
        )
        .await;
    assert_problem(late, 409, "messaging_window_closed").await;
}

#[tokio::test]
async fn a_whatsapp_cart_becomes_the_threads_cart_at_our_prices_and_stock_and_pays_through_a_link_button() {
    let (m, _stripe) = crate::checkout::shop_with_stripe().await;
    connect_number(&m).await;
    // SLIP-01 sizes: 41 sold out, 42 five in stock, 43 two; 49.90 EUR each.
    let order = json!({"id": "wamid.O1", "type": "order", "order": {
        "catalog_id": "194836987003835", "text": "For the family",
        "product_items": [
            {"product_retailer_id": "SLIP-01-42", "quantity": 2, "item_price": 45.00, "currency": "EUR"},
            {"product_retailer_id": "SLIP-01-43", "quantity": 5, "item_price": 49.90, "currency": "EUR"},
            {"product_retailer_id": "SLIP-01-41", "quantity": 1, "item_price": 49.90, "currency": "EUR"},
            {"product_retailer_id": "GONE-1", "quantity": 1, "item_price": 10, "currency": "EUR"}]}});

    assert_eq!(m.app.post_webhook(&from_shopper("W4", order)).await.status(), 200);
    let checkout = button_id(&m, "W4", "Checkout").await;
    m.app
        .post_webhook(&from_shopper("W4", tap("wamid.T9", &checkout, "Checkout")))
        .await;
    let pay = || {
        m.graph
            .whatsapp_to("W4")
            .into_iter()
            .find(|b| b["interactive"]["type"] == "cta_url")
    };
    eventually("the pay link", || async { pay().is_some() }).await;

    let told: Vec<String> = m
        .graph
        .whatsapp_to("W4")
        .iter()
        .filter_map(|b| b["text"]["body"].as_str().map(str::to_owned))
        .collect();
    let notes = told.join("\n");
    assert!(notes.contains("Comfy slippers (42) is 49.90 EUR now."), "{notes}");
    assert!(notes.contains("Only 2 left of Comfy slippers (43)"), "{notes}");
    assert!(notes.contains("Comfy slippers (41) is sold out."), "{notes}");
    assert!(notes.contains("We do not sell “GONE-1” any more."), "{notes}");
    let pay = pay().unwrap();
    within_whatsapps_limits(&pay);
    assert_eq!(
        pay["interactive"]["action"]["parameters"]["display_text"],
        "Pay 199.60 EUR"
    );
    assert!(
        pay["interactive"]["action"]["parameters"]["url"]
            .as_str()
            .unwrap()
            .starts_with("http")
    );
    let orders: Value = m
        .app
        .get("/v1/orders", &m.merchant.token)
        .await
        .json()
        .await
        .unwrap();
    let lines: Vec<(String, i64)> = orders["data"][0]["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["sku"].as_str().unwrap().to_owned(),
                l["quantity"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        [("SLIP-01-42".to_owned(), 2), ("SLIP-01-43".to_owned(), 2)]
    );
    assert_eq!(orders["data"][0]["channel"], "whatsapp");
}

/// `wa_id` sends a WhatsApp cart of one pair of slippers (42) and taps Checkout: answers the order's
/// Stripe session once it is open.
async fn order_and_check_out(m: &MessengerApp, wa_id: &str) -> String {
    m.app
        .post_webhook(&from_shopper(
            wa_id,
            json!({"id": format!("wamid.O-{wa_id}"), "type": "order", "order": {"catalog_id": "194836987003835",
                "product_items": [{"product_retailer_id": "SLIP-01-42", "quantity": 1, "item_price": 49.90, "currency": "EUR"}]}}),
        ))
        .await;
    let checkout = button_id(m, wa_id, "Checkout").await;
    m.app
        .post_webhook(&from_shopper(
            wa_id,
            tap(&format!("wamid.T-{wa_id}"), &checkout, "Checkout"),
        ))
        .await;
    let session = || async {
        let orders: Value = m
            .app
            .get("/v1/orders", &m.merchant.token)
            .await
            .json()
            .await
            .unwrap();
        orders["data"][0]["stripe_session_id"].as_str().map(str::to_owned)
    };
    eventually("the order is open for payment", || async {
        session().await.is_some()
    })
    .await;
    session().await.unwrap()
}

#[tokio::test]
async fn a_purchase_after_a_click_to_whatsapp_ad_reaches_the_conversions_api_with_its_click_id() {
    let (m, stripe) = crate::checkout::shop_with_stripe().await;
    let number = connect_number(&m).await;
    let res = m
        .app
        .request(
            reqwest::Method::PUT,
            &format!(
                "/v1/whatsapp/numbers/{}/conversions",
                number["id"].as_str().unwrap()
            ),
            &m.merchant.token,
            Some(json!({"dataset_id": "1234567890", "access_token": "EAAG-capi-token-5678"})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let as_a_page = m
        .app
        .request(
            reqwest::Method::PUT,
            &format!("/v1/pages/{NUMBER}/conversions"),
            &m.merchant.token,
            Some(json!({"dataset_id": "1234567890", "access_token": "EAAG-capi-token-5678"})),
        )
        .await;
    assert_eq!(as_a_page.status(), 404, "a number is no Page");
    m.app
        .post_webhook(&from_shopper(
            "W5",
            json!({"id": "wamid.AD5", "type": "text", "text": {"body": "Hello!"},
                   "referral": {"source_url": "https://fb.me/x", "source_id": "AD-WA-5", "source_type": "ad",
                                "headline": "Warm slippers", "ctwa_clid": "ARAkLkA8rmlFeiCktEJQ-QTwRiyYHAFDLMNDBH0CD3qpjd0HR4irJ6LEkR7JwFF4XvnO2E4Nx0-eM-GABDLOPaOdRMv-_zfUQ2a"}}),
        ))
        .await;
    eventually("the bot answers", || async {
        !m.graph.whatsapp_to("W5").is_empty()
    })
    .await;
    let session = order_and_check_out(&m, "W5").await;
    stripe.complete_session(&session);
    crate::checkout::post_stripe_event(&m, "checkout.session.completed", &session).await;
    eventually("the purchase is told to Meta", || async {
        !m.graph.events().is_empty()
    })
    .await;

    let event = &m.graph.events()[0];
    assert!(event.path.ends_with("/1234567890/events"), "{}", event.path);
    let data = &event.body["data"][0];
    assert_eq!(data["event_name"], "Purchase");
    assert_eq!(data["action_source"], "business_messaging");
    assert_eq!(data["messaging_channel"], "whatsapp");
    assert_eq!(data["user_data"]["whatsapp_business_account_id"], WABA);
    assert!(
        data["user_data"]["ctwa_clid"]
            .as_str()
            .unwrap()
            .starts_with("ARAkLkA8rmlF")
    );
    assert_eq!(data["custom_data"], json!({"value": 49.90, "currency": "EUR"}));
    let row = m.app.funnel_row_of_ad(&m.merchant.token, "AD-WA-5").await;
    assert_eq!(row["purchases"], 1);
}

#[tokio::test]
async fn a_whatsapp_cart_sent_while_a_person_has_the_thread_becomes_the_cart_without_the_bot_answering() {
    let m = spawn_messenger_app().await;
    connect_number(&m).await;
    m.app
        .post_webhook(&from_shopper(
            "W6",
            json!({"id": "wamid.H6", "type": "text", "text": {"body": "human"}}),
        ))
        .await;
    let thread = thread_of(&m, "W6").await;
    eventually("the thread is with a person", || async {
        let t: Value = m
            .app
            .get(&format!("/v1/threads/{thread}"), &m.merchant.token)
            .await
            .json()
            .await
            .unwrap();
        t["mode"] == "agent"
    })
    .await;
    eventually(
        "what the bot said before the person took over is sent",
        || async {
            crate::helpers::outgoing_messages(&m.app, &m.merchant.token, &thread)
                .await
                .iter()
                .all(|msg| msg["delivery"] == "sent")
        },
    )
    .await;
    let said = m.graph.whatsapp_to("W6").len();

    m.app
        .post_webhook(&from_shopper(
            "W6",
            json!({"id": "wamid.O6", "type": "order", "order": {"catalog_id": "194836987003835",
                "product_items": [{"product_retailer_id": "SLIP-01-43", "quantity": 1, "item_price": 49.90, "currency": "EUR"}]}}),
        ))
        .await;

    let context_path = format!("/v1/threads/{thread}/context");
    eventually("the cart holds the order", || async {
        let c: Value = m
            .app
            .get(&context_path, &m.merchant.token)
            .await
            .json()
            .await
            .unwrap();
        c["cart"]["lines"][0]["variant_name"] == "43"
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        m.graph.whatsapp_to("W6").len(),
        said,
        "the bot stays quiet while a person answers"
    );
}

#[tokio::test]
async fn a_status_about_someone_who_is_no_customer_makes_no_thread() {
    let m = spawn_messenger_app().await;
    connect_number(&m).await;
    let status = delivery(json!({"statuses": [{"id": "wamid.UNKNOWN", "status": "delivered",
        "timestamp": "1751142888", "recipient_id": "W-NOBODY"}]}));

    assert_eq!(m.app.post_webhook(&status).await.status(), 200);
    // A shopper's message after it is applied: the status before it was handled too.
    hello_answered(&m, "W7").await;

    let nobody = m
        .app
        .db
        .query_blocking(|conn| clock::thread_of(conn, NUMBER, "W-NOBODY"))
        .unwrap();
    assert!(nobody.is_none(), "no customer, no thread for a status");
}

#[tokio::test]
async fn a_send_whatsapp_refuses_as_outside_the_window_is_failed_and_never_retried() {
    let m = spawn_messenger_app().await;
    connect_number(&m).await;
    m.graph.fail_next_sends(vec![(
        400,
        crate::graph::graph_error(
            131047,
            2494010,
            "(#131047) Re-engagement message: more than 24 hours have passed since the customer last replied",
        ),
    )]);

    says_hello(&m, "W8").await;
    let thread = thread_of(&m, "W8").await;
    let path = format!("/v1/threads/{thread}/messages?order=oldest");
    eventually("the refused message is failed", || async {
        let messages: Value = m.app.get(&path, &m.merchant.token).await.json().await.unwrap();
        messages["data"].as_array().unwrap().iter().any(|x| {
            x["delivery"] == "failed" && x["delivery_error"].as_str().is_some_and(|e| e.contains("131047"))
        })
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;

    let messages: Value = m.app.get(&path, &m.merchant.token).await.json().await.unwrap();
    let outgoing: Vec<&Value> = messages["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["direction"] == "out")
        .collect();
    assert!(
        outgoing.iter().all(|x| x["delivery"] != "queued"),
        "nothing waits for a retry"
    );
    let calls = m.graph.whatsapp_messages();
    let refused = &calls[0].body;
    assert_eq!(
        calls.iter().filter(|c| c.body == *refused).count(),
        1,
        "the refused message was tried once: {refused}"
    );
}

/// WhatsApp's review of a template, on the account's webhook (whatsapp.md §3.1).
fn template_review(meta_id: &str, event: &str) -> String {
    json!({"object": "whatsapp_business_account", "entry": [{"id": WABA, "time": 1_765_000_000,
        "changes": [{"field": "message_template_status_update", "value": {"event": event,
            "message_template_id": meta_id.parse::<i64>().unwrap(),
            "message_template_name": "threadcart_order_paid_en", "message_template_language": "en",
            "reason": "NONE", "message_template_category": "UTILITY"}}]}]})
    .to_string()
}

#[tokio::test]
async fn after_the_24_hours_the_receipt_goes_as_the_accounts_approved_utility_template() {
    let (m, stripe) = crate::checkout::shop_with_stripe().await;
    connect_number(&m).await;
    let receipt_template = |number: &str| {
        json!({"page_id": number, "purpose": "order_paid", "language": "en",
               "body": "Hi {first_name}, your order {order_number} of {amount} is paid. Thank you!"})
    };

    let res = m
        .app
        .post("/v1/templates", &m.merchant.token, receipt_template(NUMBER))
        .await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    assert_eq!(created["status"], "pending", "WhatsApp reviews it first");
    let submitted = m.graph.templates();
    assert!(
        submitted[0].path.ends_with(&format!("/{WABA}/message_templates")),
        "submitted to the WhatsApp Business Account: {}",
        submitted[0].path
    );
    assert_eq!(submitted[0].param("access_token").as_deref(), Some(TOKEN));
    assert_eq!(submitted[0].body["category"], "UTILITY");

    // A second number on the same account shares its templates: the same one is refused here.
    m.graph
        .knows_whatsapp_number(WABA, "106540352242923", "+1 555-078-3882", TOKEN);
    let second = m
        .app
        .post(
            "/v1/whatsapp/numbers",
            &m.merchant.token,
            json!({"phone_number_id": "106540352242923", "waba_id": WABA, "access_token": TOKEN}),
        )
        .await;
    assert_eq!(second.status(), 201);
    let again = m
        .app
        .post(
            "/v1/templates",
            &m.merchant.token,
            receipt_template("106540352242923"),
        )
        .await;
    let problem = assert_problem(again, 409, "template_taken").await;
    assert!(problem["detail"].as_str().unwrap().contains(NUMBER), "{problem}");

    let id = created["id"].as_str().unwrap();
    let meta_id = created["meta_template_id"].as_str().unwrap();
    let status = || async {
        let t: Value = m
            .app
            .get(&format!("/v1/templates/{id}"), &m.merchant.token)
            .await
            .json()
            .await
            .unwrap();
        t["status"].as_str().unwrap().to_owned()
    };
    for (event, expected) in [("PAUSED", "unavailable"), ("APPROVED", "approved")] {
        let res = m.app.post_webhook(&template_review(meta_id, event)).await;
        assert_eq!(res.status(), 200);
        assert_eq!(status().await, expected, "after {event}");
    }

    let session = order_and_check_out(&m, "W7").await;
    hours_pass(&m, &thread_of(&m, "W7").await, 25);
    let texts_before = m.graph.whatsapp_to("W7").len();
    stripe.complete_session(&session);
    crate::checkout::post_stripe_event(&m, "checkout.session.completed", &session).await;
    let template = || {
        m.graph
            .whatsapp_to("W7")
            .into_iter()
            .find(|b| b["type"] == "template")
    };
    eventually("the receipt goes as the template", || async {
        template().is_some()
    })
    .await;

    let sent = template().unwrap();
    assert_eq!(sent["template"]["name"], "threadcart_order_paid_en");
    assert_eq!(sent["template"]["language"], json!({"code": "en"}));
    let orders: Value = m
        .app
        .get("/v1/orders", &m.merchant.token)
        .await
        .json()
        .await
        .unwrap();
    let number = orders["data"][0]["number"].as_str().unwrap();
    let parameters: Vec<&str> = sent["template"]["components"][0]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["text"].as_str().unwrap())
        .collect();
    assert_eq!(parameters, ["Sheena", number, "49.90 EUR"]);
    assert_eq!(
        m.graph.whatsapp_to("W7").len(),
        texts_before + 1,
        "nothing but the template after the 24 hours"
    );
    let order: Value = m
        .app
        .get(
            &format!("/v1/orders/{}", orders["data"][0]["id"].as_str().unwrap()),
            &m.merchant.token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(order["notices"][0]["told"], "template", "{order}");
}

#[tokio::test]
async fn a_number_on_a_later_page_of_the_accounts_numbers_is_found() {
    let m = spawn_messenger_app().await;
    for n in 0..4 {
        m.graph.knows_whatsapp_number(
            WABA,
            &format!("10654035224290{n}"),
            &format!("+1 555-078-390{n}"),
            TOKEN,
        );
    }
    m.graph
        .knows_whatsapp_number(WABA, NUMBER, "+1 555-078-3881", TOKEN);

    let res = m
        .app
        .post(
            "/v1/whatsapp/numbers",
            &m.merchant.token,
            json!({"phone_number_id": NUMBER, "waba_id": WABA, "access_token": TOKEN}),
        )
        .await;

    assert_eq!(res.status(), 201);
    let asked: Vec<Option<String>> = m
        .graph
        .received()
        .iter()
        .filter(|r| r.path.ends_with("/phone_numbers"))
        .map(|r| r.param("after"))
        .collect();
    assert_eq!(asked.len(), 3, "three pages of two: {asked:?}");
    assert_eq!(asked[0], None);
    let missing = m
        .app
        .post(
            "/v1/whatsapp/numbers",
            &m.merchant.token,
            json!({"phone_number_id": "999", "waba_id": WABA, "access_token": TOKEN}),
        )
        .await;
    assert_problem(missing, 422, "page_token_mismatch").await;
}

#[tokio::test]
async fn a_number_whose_token_broke_takes_a_new_one_meta_confirms_and_answers_with_it() {
    let m = spawn_messenger_app().await;
    let number = connect_number(&m).await;
    let path = format!("/v1/whatsapp/numbers/{}", number["id"].as_str().unwrap());
    m.app
        .db
        .query_blocking(|conn| {
            threadcart::merchants::pages::mark_token_broken(conn, &threadcart::kernel::PageId::from(NUMBER))
        })
        .unwrap();
    let patch = |body: Value| m.app.patch(&path, &m.merchant.token, body);

    let unknown = patch(json!({"access_token": "EAAG-nobody-knows-this"})).await;
    assert_problem(unknown, 422, "page_token_invalid").await;
    let still: Value = m.app.get(&path, &m.merchant.token).await.json().await.unwrap();
    assert_eq!(still["token_status"], "broken", "a refused token changes nothing");
    let nothing = patch(json!({})).await;
    let problem = assert_problem(nothing, 422, "validation_failed").await;
    assert_eq!(problem["errors"][0]["code"], "nothing_to_change");
    let other = m.app.merchant("Other shop").await;
    let theirs = m
        .app
        .patch(&path, &other.token, json!({"catalog_id": null}))
        .await;
    assert_eq!(theirs.status(), 404, "another merchant's number is not found");

    const NEW_TOKEN: &str = "EAAG-whatsapp-system-user-5678";
    m.graph
        .knows_whatsapp_number(WABA, NUMBER, "+1 555-078-3881", NEW_TOKEN);
    let res = patch(json!({"access_token": NEW_TOKEN, "catalog_id": null})).await;

    assert_eq!(res.status(), 200);
    let changed: Value = res.json().await.unwrap();
    assert_eq!(changed["token_status"], "ok");
    assert_eq!(changed["token_last4"], "5678");
    assert_eq!(changed["catalog_id"], Value::Null);
    assert!(
        !changed.to_string().contains(NEW_TOKEN),
        "the token is not answered"
    );
    says_hello(&m, "W8").await;
    eventually("the bot answers with the new token", || async {
        m.graph
            .whatsapp_messages()
            .iter()
            .any(|r| r.body["to"] == "W8" && r.param("access_token").as_deref() == Some(NEW_TOKEN))
    })
    .await;
}
