//! Dev mode: the simulator's routes exist only with it, drive the real webhook → inbox → engine → outbox →
//! Send API path, and the dev Stripe and its payment page take an order to paid and the receipt.

use serde_json::{Value, json};
use threadcart::config::Config;
use threadcart::db::Db;
use threadcart::startup::Application;

use crate::helpers::{
    TestApp, TestDatabase, assert_problem, eventually, spawn_app, spawn_app_with, test_config,
};

/// The demo shoe shop's Page.
pub const DEMO_PAGE: &str = "100000000000001";
/// The demo shoe shop's public API key (fixtures/demo.json).
pub const DEMO_KEY: &str = "tc_demo_comfy_shoes_owner_key_0000000000000000000000000000000000";

/// A server in dev mode with the demo merchants loaded, as `cargo run` starts.
pub async fn spawn_dev_app() -> TestApp {
    let app = spawn_app_with(&[("THREADCART_DEV", "true"), ("THREADCART_RETRY_BASE_MS", "10")]).await;
    threadcart::demo::load(&app.db, &app.secrets).unwrap();
    app
}

/// A shopper of the demo shoe shop, acting through the simulator's endpoint.
struct Shopper<'a> {
    app: &'a TestApp,
    psid: String,
    seen: u64,
}

impl<'a> Shopper<'a> {
    fn new(app: &'a TestApp, psid: &str) -> Self {
        Shopper {
            app,
            psid: psid.to_owned(),
            seen: 0,
        }
    }

    async fn act(&self, action: Value) -> reqwest::Response {
        self.app
            .client
            .post(format!("{}/dev/simulator/send", self.app.address))
            .json(&json!({"page_id": DEMO_PAGE, "psid": self.psid, "name": "Anna", "action": action}))
            .send()
            .await
            .unwrap()
    }

    async fn messages(&self, after: u64) -> Vec<Value> {
        let body: Value = self
            .app
            .client
            .get(format!("{}/dev/simulator/messages", self.app.address))
            .query(&[
                ("page_id", DEMO_PAGE),
                ("psid", &self.psid),
                ("after", &after.to_string()),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["messages"].as_array().unwrap().clone()
    }

    /// Waits for a message from the Page, after the ones seen, that satisfies `pick`; returns it.
    async fn expect(&mut self, what: &str, pick: impl Fn(&Value) -> bool) -> Value {
        let (pick, me) = (&pick, &*self);
        eventually(what, || async move {
            me.messages(me.seen)
                .await
                .iter()
                .any(|e| e["from"] == "page" && pick(&e["message"]))
        })
        .await;
        let found = self
            .messages(self.seen)
            .await
            .into_iter()
            .find(|e| e["from"] == "page" && pick(&e["message"]))
            .unwrap();
        self.seen = found["seq"].as_u64().unwrap();
        found["message"].clone()
    }
}

/// The button (in a card or a button template) or quick reply titled `title` of a message.
fn control<'m>(message: &'m Value, title: &str) -> Option<&'m Value> {
    let payload = &message["attachment"]["payload"];
    payload["elements"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|e| e["buttons"].as_array().into_iter().flatten())
        .chain(payload["buttons"].as_array().into_iter().flatten())
        .chain(message["quick_replies"].as_array().into_iter().flatten())
        .find(|b| b["title"] == title)
}

fn has(title: &str) -> impl Fn(&Value) -> bool + '_ {
    move |m| control(m, title).is_some()
}

#[tokio::test]
async fn dev_routes_answer_404_without_dev_mode() {
    let app = spawn_app().await;
    for (method, path) in [
        ("GET", "/dev/simulator"),
        ("GET", "/dev/simulator/pages"),
        ("POST", "/dev/simulator/send"),
        ("GET", "/dev/simulator/messages?page_id=1&psid=2"),
        ("POST", "/dev/graph/v25.0/100000000000001/messages"),
        ("POST", "/dev/stripe/v1/checkout/sessions"),
        ("GET", "/dev/pay/cs_test_dev000001"),
        ("POST", "/dev/pay/cs_test_dev000001"),
    ] {
        let res = app
            .client
            .request(method.parse().unwrap(), format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert_problem(res, 404, "not_found").await;
    }
}

#[tokio::test]
async fn dev_mode_refuses_to_start_on_an_address_other_than_loopback() {
    let database = TestDatabase::new();
    let config: Config = test_config(
        &database.url,
        &[
            ("THREADCART_DEV", "true"),
            ("THREADCART_PUBLIC_URL", "https://shop.example.com"),
        ],
    );
    let db = Db::connect(config.database_url(), config.db_max_connections).unwrap();
    let Err(e) = Application::build(config, db) else {
        panic!("dev mode started with a public URL");
    };
    assert!(e.to_string().contains("loopback"), "{e}");
}

#[tokio::test]
async fn dev_mode_refuses_a_public_url_whose_host_is_not_loopback_whatever_it_starts_with() {
    for public_url in [
        "http://localhost:1@evil.example",
        "http://127.0.0.1@evil.example:8080",
        "http://localhost.evil.example",
        "http://[::1]@evil.example/",
    ] {
        let database = TestDatabase::new();
        let config: Config = test_config(
            &database.url,
            &[("THREADCART_DEV", "true"), ("THREADCART_PUBLIC_URL", public_url)],
        );
        let db = Db::connect(config.database_url(), config.db_max_connections).unwrap();

        let started = Application::build(config, db);

        let Err(e) = started else {
            panic!("dev mode started with THREADCART_PUBLIC_URL={public_url}");
        };
        assert!(e.to_string().contains("loopback"), "{e}");
    }
}

#[tokio::test]
async fn the_simulator_page_is_served_with_its_script_and_no_secret() {
    let app = spawn_dev_app().await;
    let res = app
        .client
        .get(format!("{}/dev/simulator", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = res.text().await.unwrap();
    assert!(html.contains("<script>") && html.contains("/dev/simulator/send"));
    assert!(!html.contains("whsec_") && !html.contains("sk_test"));
}

#[tokio::test]
async fn an_ad_arrival_sent_through_the_simulator_comes_back_as_the_product_card() {
    // Arrange
    let app = spawn_dev_app().await;
    let mut anna = Shopper::new(&app, "SIM-ANNA");

    // Act
    let res = anna
        .act(
            json!({"kind": "ad", "ad_id": "AD-SIM-1", "ad_title": "Comfy slippers", "product_id": "SLIP-01"}),
        )
        .await;

    // Assert
    assert_eq!(res.status(), 202);
    let greeting = anna
        .expect("the greeting", |m| {
            m["text"].as_str().is_some_and(|t| t.contains("Hi Anna"))
        })
        .await;
    assert!(greeting["text"].as_str().unwrap().contains("Comfy slippers"));
    let card = anna.expect("the product card", has("Choose size")).await;
    let element = &card["attachment"]["payload"]["elements"][0];
    assert_eq!(element["title"], "Comfy slippers");
    assert_eq!(element["subtitle"], "49.90 EUR");
    let shown = anna.messages(0).await;
    assert_eq!(
        shown[0]["from"], "shopper",
        "the shopper's own tap is shown first"
    );
}

#[tokio::test]
async fn the_simulator_plays_an_instagram_shopper_from_a_click_to_direct_ad() {
    let app = spawn_dev_app().await;
    let mut ines = Shopper::new(&app, "IG-SIM-INES");
    let pages: Value = app
        .client
        .get(format!("{}/dev/simulator/pages", app.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let shop = &pages["pages"][0];
    assert_eq!(shop["instagram_account_id"], "17841400000000001");
    assert_eq!(
        shop["advertised"][0]["ref"],
        format!("p={}", shop["advertised"][0]["product_id"].as_str().unwrap())
    );

    let res = app
        .client
        .post(format!("{}/dev/simulator/send", app.address))
        .json(
            &json!({"page_id": DEMO_PAGE, "channel": "instagram", "psid": ines.psid, "name": "Inès",
                      "action": {"kind": "ad", "ad_id": "AD-IG-SIM", "ad_title": "Comfy slippers",
                                 "product_id": "SLIP-01", "ref": "p=SLIP-01"}}),
        )
        .send()
        .await
        .unwrap();

    assert_eq!(res.status(), 202);
    ines.expect("the greeting", |m| {
        m["text"].as_str().is_some_and(|t| t.starts_with("Hi Inès!"))
    })
    .await;
    let card = ines.expect("the product card", has("Choose size")).await;
    assert_eq!(
        card["attachment"]["payload"]["elements"][0]["title"],
        "Comfy slippers"
    );
    let token = app.token(DEMO_KEY).await;
    let threads: Value = app
        .get("/v1/threads?channel=instagram", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(threads["data"][0]["customer"]["psid"], "IG-SIM-INES");
    assert_eq!(threads["data"][0]["page_id"], "17841400000000001");
}

/// Takes `anna` from the ad `ad_id` to a cart of slippers in 42; answers the cart message.
async fn cart_slippers_from_ad(anna: &mut Shopper<'_>, ad_id: &str) -> Value {
    anna.act(json!({"kind": "ad", "ad_id": ad_id, "ad_title": "Comfy slippers", "product_id": "SLIP-01"}))
        .await;
    let card = anna.expect("the product card", has("Choose size")).await;
    let choose = control(&card, "Choose size").unwrap()["payload"].clone();
    anna.act(json!({"kind": "postback", "title": "Choose size", "payload": choose}))
        .await;
    let sizes = anna.expect("the sizes", has("42")).await;
    let size = control(&sizes, "42").unwrap()["payload"].clone();
    anna.act(json!({"kind": "quick_reply", "title": "42", "payload": size}))
        .await;
    anna.expect("the cart", has("Checkout")).await
}

/// A shopper of the demo shoe shop arrives from the ad `ad_id`, puts slippers in 42 in the cart and
/// types the discount code `code`; answers once the code is applied.
pub async fn cart_slippers_with_code(app: &TestApp, psid: &str, ad_id: &str, code: &str) {
    let mut shopper = Shopper::new(app, psid);
    cart_slippers_from_ad(&mut shopper, ad_id).await;
    shopper.act(json!({"kind": "text", "text": code})).await;
    shopper
        .expect("the code applied", |m| {
            m["text"].as_str().is_some_and(|t| t.contains("applied"))
        })
        .await;
}

/// Takes `anna` from the ad `ad_id` to a cart of slippers in 42, then Checkout; answers the pay URL.
async fn checkout_slippers_from_ad(anna: &mut Shopper<'_>, ad_id: &str) -> String {
    let cart = cart_slippers_from_ad(anna, ad_id).await;
    let checkout = control(&cart, "Checkout").unwrap()["payload"].clone();

    anna.act(json!({"kind": "postback", "title": "Checkout", "payload": checkout}))
        .await;
    let pay = anna
        .expect("the pay button", |m| {
            m["attachment"]["payload"]["buttons"][0]["type"] == "web_url"
        })
        .await;
    pay["attachment"]["payload"]["buttons"][0]["url"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A shopper of the demo shoe shop arrives from the ad `ad_id` and pays for slippers on the dev
/// payment page; answers once the receipt is in the thread (the order is paid).
pub async fn buy_slippers_from_ad(app: &TestApp, psid: &str, ad_id: &str) {
    let mut shopper = Shopper::new(app, psid);
    let url = checkout_slippers_from_ad(&mut shopper, ad_id).await;
    let paid = app.client.post(&url).send().await.unwrap();
    assert_eq!(paid.status(), 200, "{}", paid.text().await.unwrap());
    shopper
        .expect("the receipt", |m| {
            m["attachment"]["payload"]["template_type"] == "receipt"
        })
        .await;
}

#[tokio::test]
async fn paying_on_the_dev_payment_page_makes_the_order_paid_and_the_receipt_appear() {
    // Arrange
    let app = spawn_dev_app().await;
    let mut anna = Shopper::new(&app, "SIM-PAYER");

    // Act: from the ad to a cart of slippers in 42, checkout, then pay on the dev payment page
    let url = checkout_slippers_from_ad(&mut anna, "AD-SIM-2").await;
    assert!(
        url.starts_with(&format!("{}/dev/pay/cs_test_dev", app.address)),
        "{url}"
    );
    let page = app.client.get(&url).send().await.unwrap().text().await.unwrap();
    assert!(
        page.contains("Simulation") && page.contains("49.90 EUR"),
        "{page}"
    );
    let paid = app.client.post(&url).send().await.unwrap();
    assert_eq!(paid.status(), 200, "{}", paid.text().await.unwrap());

    // Assert: the receipt in the thread, the order paid in the merchant's API
    let receipt = anna
        .expect("the receipt", |m| {
            m["attachment"]["payload"]["template_type"] == "receipt"
        })
        .await;
    let payload = &receipt["attachment"]["payload"];
    assert_eq!(payload["recipient_name"], "Anna");
    assert_eq!(payload["elements"][0]["title"], "Comfy slippers");
    let token = app.token(DEMO_KEY).await;
    let orders: Value = app
        .get("/v1/orders?status=paid", &token)
        .await
        .json()
        .await
        .unwrap();
    let order = &orders["data"][0];
    assert_eq!(order["total"]["amount"], "49.90", "{orders}");
    let again = app.client.post(&url).send().await.unwrap();
    assert_eq!(again.status(), 409, "a completed session cannot be paid twice");
}

#[tokio::test]
async fn dev_mode_answers_who_a_page_token_is_for_so_pages_connect_without_meta() {
    // Arrange
    let app = spawn_dev_app().await;
    let token = app.token(DEMO_KEY).await;
    let connect = |page_id: &'static str, access_token: &'static str| {
        app.post(
            "/v1/pages",
            &token,
            json!({"page_id": page_id, "access_token": access_token}),
        )
    };

    // Act
    let named = connect("300000000000003", "dev-page-token-300000000000003").await;
    let someone_elses = connect("300000000000004", "dev-page-token-300000000000005").await;
    let unknown = connect("300000000000006", "EAAG-not-a-dev-token").await;
    let demo = connect("100000000000001", "demo-page-token-comfy-shoes").await;

    // Assert
    assert_eq!(named.status(), 201);
    assert_problem(someone_elses, 422, "page_token_mismatch").await;
    assert_problem(unknown, 422, "page_token_invalid").await;
    assert_problem(demo, 409, "page_already_connected").await;
}

impl Shopper<'_> {
    /// Presses one of the simulator's "Time passes" buttons.
    async fn time_passes(&self, minutes: i64) -> reqwest::Response {
        self.app
            .client
            .post(format!("{}/dev/simulator/advance", self.app.address))
            .json(&json!({"page_id": DEMO_PAGE, "psid": self.psid, "minutes": minutes}))
            .send()
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn the_simulator_clock_shows_a_cart_reminder_then_a_late_receipt_through_its_template() {
    let app = spawn_dev_app().await;
    let mut anna = Shopper::new(&app, "SIM-CLOCK");
    // From an m.me link: Messenger's window is 24 hours.
    anna.act(json!({"kind": "link", "ref": "p=SLIP-01"})).await;
    let card = anna.expect("the product card", has("Choose size")).await;
    let choose = control(&card, "Choose size").unwrap()["payload"].clone();
    anna.act(json!({"kind": "postback", "title": "Choose size", "payload": choose}))
        .await;
    let sizes = anna.expect("the sizes", has("42")).await;
    let size = control(&sizes, "42").unwrap()["payload"].clone();
    anna.act(json!({"kind": "quick_reply", "title": "42", "payload": size}))
        .await;
    anna.expect("the cart", has("Checkout")).await;

    // +65 min: the cart's reminder, with its Checkout button.
    assert_eq!(anna.time_passes(65).await.status(), 200);
    anna.expect("the cart reminder", |m| {
        m["text"].as_str().is_some_and(|t| t.starts_with("You left"))
    })
    .await;
    let cart = anna.expect("the reminded cart", has("Checkout")).await;
    let checkout = control(&cart, "Checkout").unwrap()["payload"].clone();
    anna.act(json!({"kind": "postback", "title": "Checkout", "payload": checkout}))
        .await;
    let pay = anna
        .expect("the pay button", |m| {
            m["attachment"]["payload"]["buttons"][0]["type"] == "web_url"
        })
        .await;
    let url = pay["attachment"]["payload"]["buttons"][0]["url"]
        .as_str()
        .unwrap()
        .to_owned();

    // +25 h, then the shopper pays: the receipt comes through the demo's approved template.
    assert_eq!(anna.time_passes(25 * 60).await.status(), 200);
    let paid = app.client.post(&url).send().await.unwrap();
    assert_eq!(paid.status(), 200, "{}", paid.text().await.unwrap());
    let receipt = anna
        .expect("the receipt's template", |m| m["template"].is_object())
        .await;

    assert_eq!(receipt["template"]["name"], "threadcart_order_paid_en");
    let wrong = anna.time_passes(0).await;
    assert_problem(wrong, 422, "validation_failed").await;
    let unknown = app
        .client
        .post(format!("{}/dev/simulator/advance", app.address))
        .json(&json!({"page_id": DEMO_PAGE, "psid": "NOBODY", "minutes": 5}))
        .send()
        .await
        .unwrap();
    assert_problem(unknown, 404, "not_found").await;
}
