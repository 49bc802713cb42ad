//! The simulator in headless Chromium, through chromedriver's W3C WebDriver HTTP API spoken with the
//! `reqwest` the suite already has (a few calls: no WebDriver crate needed). Skipped, with a message,
//! when chromedriver is not installed (`apt-get install chromium chromium-driver`), unless
//! `THREADCART_BROWSER_TESTS=required` (what `.ci/run` sets after installing them).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::simulator::{DEMO_KEY, buy_slippers_from_ad, cart_slippers_with_code, spawn_dev_app};

/// The key W3C WebDriver names elements by.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// WebDriver's codes for the Tab and Enter keys.
const TAB: &str = "\u{E004}";
const ENTER: &str = "\u{E007}";

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// A chromedriver process and one headless Chromium session.
struct Browser {
    http: reqwest::Client,
    /// `http://127.0.0.1:<port>/session/<id>`.
    session: String,
    port: u16,
    driver: Child,
}

impl Drop for Browser {
    /// Ends the session (closing Chromium, even after a failed assertion), then chromedriver.
    fn drop(&mut self) {
        use std::io::{Read, Write};
        let path = self
            .session
            .split_once(&format!(":{}", self.port))
            .map_or("", |(_, p)| p);
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = write!(
                stream,
                "DELETE {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = stream.read_to_end(&mut Vec::new());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    /// Starts chromedriver and a headless session, or `None` when chromedriver is not installed.
    async fn start() -> Option<Browser> {
        let driver_path = std::env::var_os("CHROMEDRIVER")
            .map(PathBuf::from)
            .or_else(|| find_program(&["chromedriver"]))?;
        let chromium = find_program(&["chromium", "chromium-browser", "google-chrome"]);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            let ready = http.get(format!("{base}/status")).send().await;
            if let Ok(res) = ready
                && res.json::<Value>().await.unwrap()["value"]["ready"] == true
            {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut options = json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu",
            "--disable-dev-shm-usage", "--window-size=1100,900"]});
        if let Some(chromium) = chromium {
            options["binary"] = json!(chromium);
        }
        let res: Value = http
            .post(format!("{base}/session"))
            .json(&json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": options}}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = res["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {res}"));
        Some(Browser {
            session: format!("{base}/session/{session}"),
            http,
            port,
            driver,
        })
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res: Value = req.send().await.unwrap().json().await.unwrap();
        res["value"].clone()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> Value {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn open(&self, url: &str) {
        self.post("/url", json!({"url": url})).await;
    }

    /// Waits up to 15 seconds for an element matching the XPath; answers its id.
    async fn wait_for(&self, xpath: &str) -> String {
        let started = Instant::now();
        loop {
            let found = self
                .post("/element", json!({"using": "xpath", "value": xpath}))
                .await;
            if let Some(id) = found[ELEMENT].as_str() {
                return id.to_owned();
            }
            let page = self.get("/source").await;
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "no element {xpath} in the page:\n{}",
                page.as_str().unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn click(&self, xpath: &str) {
        let id = self.wait_for(xpath).await;
        let done = self.post(&format!("/element/{id}/click"), json!({})).await;
        assert!(done.is_null(), "clicking {xpath}: {done}");
    }

    /// Types `text` into the element matching the XPath.
    async fn type_into(&self, xpath: &str, text: &str) {
        let id = self.wait_for(xpath).await;
        let done = self
            .post(&format!("/element/{id}/value"), json!({"text": text}))
            .await;
        assert!(done.is_null(), "typing into {xpath}: {done}");
    }

    /// Empties the input matching the XPath.
    async fn clear(&self, xpath: &str) {
        let id = self.wait_for(xpath).await;
        let done = self.post(&format!("/element/{id}/clear"), json!({})).await;
        assert!(done.is_null(), "clearing {xpath}: {done}");
    }

    /// Presses keys one after the other, as a keyboard would (to whatever has the focus).
    async fn press(&self, keys: &[&str]) {
        let actions: Vec<Value> = keys
            .iter()
            .flat_map(|k| {
                [
                    json!({"type": "keyDown", "value": k}),
                    json!({"type": "keyUp", "value": k}),
                ]
            })
            .collect();
        let done = self
            .post(
                "/actions",
                json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]}),
            )
            .await;
        assert!(done.is_null(), "pressing keys: {done}");
    }

    /// Types `text` on the keyboard, to whatever has the focus.
    async fn press_text(&self, text: &str) {
        let keys: Vec<String> = text.chars().map(String::from).collect();
        self.press(&keys.iter().map(String::as_str).collect::<Vec<_>>())
            .await;
    }

    /// Runs `script` (a function body) in the page and answers what it returns.
    async fn script(&self, script: &str) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": []}))
            .await
    }

    /// Waits up to 15 seconds for `script` (a function body) to answer something other than null or
    /// false; answers it. On a timeout, `diagnose` (another body) says what the page showed.
    async fn wait_until(&self, what: &str, script: &str, diagnose: &str) -> Value {
        let started = Instant::now();
        loop {
            let found = self.script(script).await;
            if !found.is_null() && found != json!(false) && found.get("error").is_none() {
                return found;
            }
            if started.elapsed() > Duration::from_secs(15) {
                panic!(
                    "timed out waiting for {what} ({found}); the page shows:\n{}",
                    self.script(diagnose).await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks the element WebDriver named `id` (one a script answered, inside a shadow root too).
    async fn click_element(&self, id: &str) {
        let done = self.post(&format!("/element/{id}/click"), json!({})).await;
        assert!(done.is_null(), "clicking {id}: {done}");
    }

    async fn text(&self, id: &str) -> String {
        self.get(&format!("/element/{id}/text"))
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn frame(&self, id: Option<&str>) {
        match id {
            Some(id) => self.post("/frame", json!({"id": {ELEMENT: id}})).await,
            None => self.post("/frame/parent", json!({})).await,
        };
    }

    /// A PNG screenshot of the element, or of the page.
    async fn screenshot(&self, id: Option<&str>) -> Vec<u8> {
        let path = id.map_or("/screenshot".to_owned(), |id| format!("/element/{id}/screenshot"));
        base64_decode(self.get(&path).await.as_str().unwrap())
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let clean: Vec<u8> = text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, c)| n | u32::from(value(*c)) << (18 - 6 * i));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

/// The width and height of a PNG, checking its signature and IHDR chunk.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    assert_eq!(&png[12..16], b"IHDR");
    let word = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    (word(16), word(20))
}

/// A browser, or `None` (the test is skipped, saying so) when chromedriver is not installed, unless
/// `THREADCART_BROWSER_TESTS=required`.
async fn browser_or_skip(test: &str) -> Option<Browser> {
    let browser = Browser::start().await;
    if browser.is_none() {
        assert!(
            std::env::var("THREADCART_BROWSER_TESTS").as_deref() != Ok("required"),
            "THREADCART_BROWSER_TESTS=required but chromedriver is not installed"
        );
        eprintln!(
            "SKIPPED {test}: chromedriver is not installed \
             (apt-get install chromium chromium-driver, as .ci/run does)"
        );
    }
    browser
}

/// Opens the dashboard and signs in with `api_key`, waiting until the page says who is signed in.
async fn sign_in(browser: &Browser, app: &TestApp, api_key: &str) {
    browser.open(&format!("{}/dashboard", app.address)).await;
    browser.type_into("//input[@id='api-key']", api_key).await;
    browser.click("//button[@id='sign-in-button']").await;
    browser
        .wait_for("//div[@id='who' and not(@hidden)]/span[starts-with(., 'Signed in')]")
        .await;
}

/// Creates an API key of `role` for the demo shoe shop; answers the key.
async fn demo_key_with_role(app: &TestApp, role: &str) -> String {
    let owner = app.token(DEMO_KEY).await;
    let res = app.post("/v1/api-keys", &owner, json!({"role": role})).await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    body["api_key"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_shopper_goes_from_an_ad_to_the_receipt_in_the_simulator() {
    let Some(browser) = browser_or_skip("a_shopper_goes_from_an_ad_to_the_receipt_in_the_simulator").await
    else {
        return;
    };
    let app = spawn_dev_app().await;

    // Arrive from an ad for SLIP-01
    browser.open(&format!("{}/dev/simulator", app.address)).await;
    browser
        .click("//select[@id='product']/option[@value='SLIP-01']")
        .await;
    browser.click("//button[@id='start']").await;
    let card = browser
        .wait_for("//article[contains(@class,'card')][.//p[@class='card-title' and .='Comfy slippers']]")
        .await;
    let card_text = browser.text(&card).await;
    assert!(
        card_text.contains("49.90 EUR") && card_text.contains("Choose size"),
        "{card_text}"
    );
    let shot = browser.screenshot(Some(&card)).await;
    let (width, height) = png_size(&shot);
    assert!(
        width >= 150 && height >= 150,
        "the card's screenshot is {width}×{height}"
    );
    assert!(
        shot.len() > 2_000,
        "the card's screenshot is nearly blank ({} bytes)",
        shot.len()
    );

    // To the cart and Checkout
    browser.click("//button[.='Choose size']").await;
    browser.click("//div[@id='quick-replies']/button[.='42']").await;
    browser.click("(//button[.='Checkout'])[last()]").await;

    // Pay on the dev payment page, in the webview
    browser.click("//button[starts-with(., 'Pay ')]").await;
    let frame = browser.wait_for("//iframe[@id='webview-frame']").await;
    browser.frame(Some(&frame)).await;
    let note = browser.wait_for("//p[@class='sim']").await;
    assert!(browser.text(&note).await.contains("Simulation"));
    browser.click("//button[@id='pay']").await;
    browser.wait_for("//h1[@id='paid']").await;
    browser.frame(None).await;
    browser.click("//button[@id='close-webview']").await;

    // The receipt
    let receipt = browser.wait_for("//article[contains(@class,'receipt')]").await;
    let receipt_text = browser.text(&receipt).await;
    assert!(
        receipt_text.contains("Comfy slippers") && receipt_text.contains("Total"),
        "{receipt_text}"
    );
    let page = browser.screenshot(None).await;
    let (width, _) = png_size(&page);
    assert!(width >= 800);
    let saved = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("simulator-receipt.png");
    std::fs::write(&saved, &page).unwrap();
    eprintln!("screenshot of the receipt: {}", saved.display());
}

#[tokio::test]
async fn the_dashboard_shows_a_purchase_in_the_funnel_row_of_its_ad_and_in_recent_orders() {
    let Some(browser) =
        browser_or_skip("the_dashboard_shows_a_purchase_in_the_funnel_row_of_its_ad_and_in_recent_orders")
            .await
    else {
        return;
    };
    // Arrange: a shopper came from an ad and paid, through the simulator's path
    let app = spawn_dev_app().await;
    buy_slippers_from_ad(&app, "DASH-SHOPPER", "AD-DASH-1").await;

    // Act: sign in with the merchant's key
    browser.open(&format!("{}/dashboard", app.address)).await;
    browser.type_into("//input[@id='api-key']", DEMO_KEY).await;
    browser.click("//button[@id='sign-in-button']").await;

    // Assert: the ad's funnel row has the purchase and its revenue
    let row = "//table[@id='funnel-table']/tbody/tr[th/button[@data-ad='AD-DASH-1']]";
    browser
        .wait_for(&format!("{row}/td[@data-step='purchases' and .='1']"))
        .await;
    let revenue = browser.wait_for(&format!("{row}/td[@data-step='revenue']")).await;
    assert_eq!(browser.text(&revenue).await, "49.90 EUR");
    for step in ["referrals", "product_views", "add_to_carts", "checkouts"] {
        browser
            .wait_for(&format!("{row}/td[@data-step='{step}' and .='1']"))
            .await;
    }
    // the chart says the values in text too
    browser
        .wait_for(
            "//dl[@id='chart']/dt[.='Purchases']/following-sibling::dd[1]/span[@class='value' and .='1']",
        )
        .await;

    // the order in recent orders, paid, with its ad
    let order = browser
        .wait_for("//table[@id='orders-table']/tbody/tr[td[@data-col='ad' and .='AD-DASH-1']]")
        .await;
    let order_text = browser.text(&order).await;
    assert!(
        order_text.contains("paid") && order_text.contains("49.90 EUR"),
        "{order_text}"
    );

    // the ad's daily series
    browser.click(&format!("{row}/th/button")).await;
    browser
        .wait_for("//table[@id='series-table']/tbody/tr/td[@data-step='purchases' and .='1']")
        .await;

    // the token lives in memory only; signing out clears the page
    let stored = browser
        .post(
            "/execute/sync",
            json!({"script": "return localStorage.length + sessionStorage.length + document.cookie.length", "args": []}),
        )
        .await;
    assert_eq!(stored, json!(0));
    browser.click("//button[@id='sign-out']").await;
    browser.wait_for("//input[@id='api-key']").await;
    let rows = browser
        .post(
            "/execute/sync",
            json!({"script": "return document.querySelectorAll('#funnel-table tbody tr, #orders-table tbody tr').length", "args": []}),
        )
        .await;
    assert_eq!(rows, json!(0));
}

#[tokio::test]
async fn the_dashboard_shows_a_threads_touches_cart_and_messages() {
    let Some(browser) = browser_or_skip("the_dashboard_shows_a_threads_touches_cart_and_messages").await
    else {
        return;
    };
    // Arrange: one shopper paid after an ad; another has slippers in the cart with the demo code
    let app = spawn_dev_app().await;
    buy_slippers_from_ad(&app, "THREAD-BUYER", "AD-THREAD-1").await;
    cart_slippers_with_code(&app, "THREAD-CART", "AD-THREAD-2", "WELCOME10").await;

    // Act: sign in and open the buyer's thread
    sign_in(&browser, &app, DEMO_KEY).await;
    browser
        .click("//table[@id='threads-table']//button[@data-thread and contains(., 'THREAD-BUYER')]")
        .await;

    // Assert: the ad's touch, the paid cart closed, the shopper's taps and the receipt
    browser
        .wait_for("//h3[@id='thread-title' and contains(., 'THREAD-BUYER')]")
        .await;
    let touch = browser
        .wait_for("//table[@id='touches-table']/tbody/tr[td[@data-col='ad' and .='AD-THREAD-1']]")
        .await;
    let touch_text = browser.text(&touch).await;
    assert!(
        touch_text.contains("ADS") && touch_text.contains("Comfy slippers"),
        "{touch_text}"
    );
    browser.wait_for("//p[@id='cart-empty' and not(@hidden)]").await;
    browser
        .wait_for("//ol[@id='messages']/li[@data-author='shopper'][contains(., 'Chose “42”')]")
        .await;
    let receipt = browser
        .wait_for("//ol[@id='messages']/li[@data-author='bot'][contains(., 'Receipt for order')]")
        .await;
    assert!(
        browser.text(&receipt).await.contains("Comfy slippers"),
        "{}",
        browser.text(&receipt).await
    );

    // Act: the other shopper's thread
    browser
        .click("//table[@id='threads-table']//button[@data-thread and contains(., 'THREAD-CART')]")
        .await;

    // Assert: the open cart with its line, the code and what is due
    browser
        .wait_for("//h3[@id='thread-title' and contains(., 'THREAD-CART')]")
        .await;
    let line = browser
        .wait_for("//table[@id='cart-table']/tbody/tr[th[.='Comfy slippers – 42']]")
        .await;
    let line_text = browser.text(&line).await;
    assert!(
        line_text.contains("SLIP-01-42") && line_text.contains("49.90 EUR"),
        "{line_text}"
    );
    browser
        .wait_for(
            "//dl[@id='cart-totals']/div[@data-row='discount'][dt[.='Code WELCOME10'] and dd[.='−4.99 EUR']]",
        )
        .await;
    browser
        .wait_for("//dl[@id='cart-totals']/div[@data-row='total']/dd[.='44.91 EUR']")
        .await;
    browser
        .wait_for("//table[@id='touches-table']/tbody/tr/td[@data-col='ad' and .='AD-THREAD-2']")
        .await;
}

#[tokio::test]
async fn a_discount_code_created_and_offers_made_and_edited_in_the_dashboard_are_in_the_api() {
    let Some(browser) =
        browser_or_skip("a_discount_code_created_and_offers_made_and_edited_in_the_dashboard_are_in_the_api")
            .await
    else {
        return;
    };
    let app = spawn_dev_app().await;
    sign_in(&browser, &app, DEMO_KEY).await;

    // A code already taken: the API's problem shows next to the form
    browser
        .wait_for("//table[@id='discounts-table']/tbody/tr[@data-code='WELCOME10']")
        .await;
    browser
        .type_into("//input[@id='discount-code']", "welcome10")
        .await;
    browser.type_into("//input[@id='discount-value']", "15").await;
    browser.click("//button[@id='discount-save']").await;
    let problem = browser.wait_for("//div[@id='discount-error']/p").await;
    assert!(
        browser.text(&problem).await.contains("WELCOME10"),
        "{}",
        browser.text(&problem).await
    );

    // A new code, 15 % off, for at most 100 paid orders
    browser.clear("//input[@id='discount-code']").await;
    browser
        .type_into("//input[@id='discount-code']", "spring15")
        .await;
    browser.type_into("//input[@id='discount-max']", "100").await;
    browser.click("//button[@id='discount-save']").await;
    let row = browser
        .wait_for("//table[@id='discounts-table']/tbody/tr[@data-code='SPRING15']")
        .await;
    assert!(browser.text(&row).await.contains("15 %"));
    let error = browser.wait_for("//div[@id='discount-error']").await;
    assert_eq!(browser.text(&error).await, "", "the old problem is gone");

    // The demo offer, edited: its text and 25 % off; its product and variant shown by name
    browser
        .click("//table[@id='offers-table']/tbody/tr[th[contains(., 'wool socks')]]//button[contains(@class, 'edit')]")
        .await;
    let chosen = browser
        .script("return [document.getElementById('offer-trigger').selectedOptions[0].textContent, document.getElementById('offer-target').selectedOptions[0].textContent, document.activeElement.id]")
        .await;
    assert_eq!(chosen[0], "Comfy slippers");
    assert!(
        chosen[1].as_str().unwrap().starts_with("Wool socks – M"),
        "{chosen}"
    );
    assert_eq!(chosen[2], "offer-text", "editing starts in the text");
    browser.clear("//textarea[@id='offer-text']").await;
    browser
        .type_into("//textarea[@id='offer-text']", "Cold feet? Wool socks, 25 % off.")
        .await;
    browser.clear("//input[@id='offer-discount-value']").await;
    browser
        .type_into("//input[@id='offer-discount-value']", "25")
        .await;
    browser.click("//button[@id='offer-save']").await;
    browser
        .wait_for("//table[@id='offers-table']/tbody/tr[th[.='Cold feet? Wool socks, 25 % off.']]/td[@data-col='discount' and .='25 %']")
        .await;

    // A new offer, its trigger and item chosen by name
    browser
        .click("//select[@id='offer-trigger']//option[.='Chelsea boots']")
        .await;
    browser
        .click("//select[@id='offer-target']//option[starts-with(., 'Wool socks – L')]")
        .await;
    browser
        .click("//select[@id='offer-discount-kind']/option[@value='amount']")
        .await;
    browser
        .type_into("//input[@id='offer-discount-value']", "2.00")
        .await;
    browser
        .type_into("//textarea[@id='offer-text']", "Socks for your boots?")
        .await;
    browser.click("//button[@id='offer-save']").await;
    browser
        .wait_for("//table[@id='offers-table']/tbody/tr[th[.='Socks for your boots?']]")
        .await;

    // Assert: the API has all three
    let token = app.token(DEMO_KEY).await;
    let codes: Value = app.get("/v1/discounts", &token).await.json().await.unwrap();
    let spring = codes["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["code"] == "SPRING15")
        .unwrap_or_else(|| panic!("no SPRING15 in {codes}"));
    assert_eq!(spring["percent_off"], "15");
    assert_eq!(spring["max_redemptions"], 100);
    assert_eq!(spring["active"], true);
    let offers: Value = app.get("/v1/offers", &token).await.json().await.unwrap();
    let offers = offers["data"].as_array().unwrap();
    let edited = offers
        .iter()
        .find(|o| o["text"] == "Cold feet? Wool socks, 25 % off.")
        .unwrap_or_else(|| panic!("the edited offer is not in {offers:?}"));
    assert_eq!(edited["discount_percent"], "25");
    assert!(edited["price_delta"].is_null());
    assert_eq!(edited["kind"], "cross_sell", "the kind is kept");
    let created = offers
        .iter()
        .find(|o| o["text"] == "Socks for your boots?")
        .unwrap_or_else(|| panic!("the new offer is not in {offers:?}"));
    assert_eq!(
        created["price_delta"],
        json!({"amount": "2.00", "currency": "EUR"})
    );
    let products: Value = app
        .get("/v1/products?limit=200", &token)
        .await
        .json()
        .await
        .unwrap();
    let product = |title: &str| {
        products["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["title"] == title)
            .unwrap()
            .clone()
    };
    assert_eq!(created["trigger"]["product_id"], product("Chelsea boots")["id"]);
    let socks_l = product("Wool socks")["variants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "L")
        .unwrap()["id"]
        .clone();
    assert_eq!(created["offer"]["variant_id"], socks_l);
}

#[tokio::test]
async fn the_dashboard_fits_a_phone_screen_without_scrolling_sideways() {
    let Some(browser) = browser_or_skip("the_dashboard_fits_a_phone_screen_without_scrolling_sideways").await
    else {
        return;
    };
    // Arrange: a purchase, so every table has rows; a phone-sized window
    let app = spawn_dev_app().await;
    buy_slippers_from_ad(&app, "PHONE-SHOPPER", "AD-PHONE-1").await;
    browser
        .post("/window/rect", json!({"width": 390, "height": 844}))
        .await;

    // Act: sign in and open the thread
    sign_in(&browser, &app, DEMO_KEY).await;
    browser
        .wait_for("//table[@id='funnel-table']/tbody/tr[th/button[@data-ad='AD-PHONE-1']]")
        .await;
    browser.wait_for("//table[@id='offers-table']/tbody/tr").await;
    browser
        .click("//table[@id='threads-table']//button[@data-thread and contains(., 'PHONE-SHOPPER')]")
        .await;
    browser
        .wait_for("//ol[@id='messages']/li[contains(., 'Receipt for order')]")
        .await;

    // Assert: the page never scrolls sideways; wide tables scroll inside their wrapper
    let sizes = browser
        .script(
            "return [document.documentElement.scrollWidth, window.innerWidth, window.devicePixelRatio, \
             Array.from(document.querySelectorAll('.table-wrap')).some((w) => w.scrollWidth > w.clientWidth)]",
        )
        .await;
    let (scroll_width, inner_width) = (sizes[0].as_u64().unwrap(), sizes[1].as_u64().unwrap());
    assert!(inner_width <= 400, "not a phone-sized window: {sizes}");
    assert!(scroll_width <= inner_width, "the page scrolls sideways: {sizes}");
    assert_eq!(
        sizes[3], true,
        "the wide tables scroll in their wrappers: {sizes}"
    );
    let shot = browser.screenshot(None).await;
    let (width, height) = png_size(&shot);
    let ratio = sizes[2].as_f64().unwrap();
    assert_eq!(
        f64::from(width),
        (inner_width as f64 * ratio).round(),
        "the screenshot is {width}×{height}"
    );
    assert!(shot.len() > 10_000, "a nearly blank screenshot");
    let saved = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-phone.png");
    std::fs::write(&saved, &shot).unwrap();
    eprintln!("screenshot of the dashboard on a phone: {}", saved.display());
}

#[tokio::test]
async fn the_dashboard_can_be_used_with_the_keyboard_alone() {
    let Some(browser) = browser_or_skip("the_dashboard_can_be_used_with_the_keyboard_alone").await else {
        return;
    };
    let app = spawn_dev_app().await;
    browser.open(&format!("{}/dashboard", app.address)).await;
    let focused = || browser.script("return document.activeElement.id || document.activeElement.className");

    // Tab past the skip link to the key, type it, Enter
    browser.wait_for("//input[@id='api-key']").await;
    browser.press(&[TAB]).await;
    assert_eq!(focused().await, "skip");
    browser.press(&[TAB]).await;
    assert_eq!(focused().await, "api-key");
    browser.press_text(DEMO_KEY).await;
    browser.press(&[ENTER]).await;
    browser.wait_for("//div[@id='who' and not(@hidden)]").await;
    assert_eq!(
        focused().await,
        "funnel-title",
        "focus moves to the first section"
    );
    browser
        .wait_for("//table[@id='offers-table']/tbody/tr//button[contains(@class, 'edit')]")
        .await;

    // Tab through the page to the demo offer's Edit button; its focus is visible
    let mut presses = 0;
    loop {
        browser.press(&[TAB]).await;
        presses += 1;
        let at = browser
            .script("const e = document.activeElement; return e.classList.contains('edit') && e.closest('#offers-table') !== null")
            .await;
        if at == json!(true) {
            break;
        }
        assert!(presses < 80, "Tab never reached the offer's Edit button");
    }
    let outline = browser
        .script("const s = getComputedStyle(document.activeElement); return [s.outlineStyle, s.outlineWidth]")
        .await;
    assert_ne!(outline[0], "none", "the focus is visible: {outline}");

    // Enter opens the offer in the form, in its text; type, Tab to Save, Enter
    browser.press(&[ENTER]).await;
    assert_eq!(focused().await, "offer-text");
    browser.press(&["\u{E010}"]).await; // End
    browser.press_text(" Now.").await;
    browser.press(&[TAB, TAB, ENTER]).await;
    browser.wait_for("//p[@id='status' and .='Offer saved.']").await;
    assert_eq!(
        browser
            .script("return document.activeElement.classList.contains('edit')")
            .await,
        json!(true),
        "focus returns to the saved offer's Edit button"
    );
    let token = app.token(DEMO_KEY).await;
    let offers: Value = app.get("/v1/offers", &token).await.json().await.unwrap();
    assert_eq!(
        offers["data"][0]["text"],
        "Warm feet all the way: add wool socks? Now."
    );
}

#[tokio::test]
async fn the_dashboard_shows_each_role_only_what_it_may_use() {
    let Some(browser) = browser_or_skip("the_dashboard_shows_each_role_only_what_it_may_use").await else {
        return;
    };
    let app = spawn_dev_app().await;
    let marketing = demo_key_with_role(&app, "marketing").await;
    let catalog = demo_key_with_role(&app, "catalog").await;
    let shown = |id: &'static str| format!("//section[@id='{id}' and not(@hidden)]");
    let hidden = |id: &'static str| format!("//section[@id='{id}' and @hidden]");

    // Marketing: the funnel, orders and threads; not offers or codes, and the page says so
    sign_in(&browser, &app, &marketing).await;
    browser
        .wait_for("//p[@id='status' and starts-with(., 'Funnel loaded')]")
        .await;
    for id in ["funnel-section", "orders-section", "threads-section"] {
        browser.wait_for(&shown(id)).await;
    }
    for id in ["offers-section", "discounts-section"] {
        browser.wait_for(&hidden(id)).await;
    }
    browser.wait_for("//nav//li[@hidden][a[.='Offers']]").await;
    let note = browser.wait_for("//p[@id='role-note' and not(@hidden)]").await;
    assert!(
        browser
            .text(&note)
            .await
            .contains("offers and discount codes need an owner or catalog key"),
        "{}",
        browser.text(&note).await
    );

    // Catalog: offers and codes; not the funnel, orders or threads; no error anywhere
    browser.click("//button[@id='sign-out']").await;
    browser.type_into("//input[@id='api-key']", &catalog).await;
    browser.click("//button[@id='sign-in-button']").await;
    browser
        .wait_for("//table[@id='offers-table']/tbody/tr[th[contains(., 'wool socks')]]")
        .await;
    browser
        .wait_for("//table[@id='discounts-table']/tbody/tr[@data-code='WELCOME10']")
        .await;
    for id in ["offers-section", "discounts-section"] {
        browser.wait_for(&shown(id)).await;
    }
    for id in ["funnel-section", "orders-section", "threads-section"] {
        browser.wait_for(&hidden(id)).await;
    }
    let note = browser.wait_for("//p[@id='role-note' and not(@hidden)]").await;
    assert!(
        browser
            .text(&note)
            .await
            .contains("the funnel needs an owner or marketing key"),
        "{}",
        browser.text(&note).await
    );
    let status = browser.wait_for("//p[@id='status']").await;
    assert!(
        !browser.text(&status).await.starts_with("Could not"),
        "{}",
        browser.text(&status).await
    );
    assert_eq!(
        browser
            .script("return document.querySelectorAll('.denied:not([hidden])').length")
            .await,
        json!(0),
        "no section was refused"
    );
}

/// A function body run with `root` bound to the web chat widget's shadow root (it answers null before
/// the widget is on the page). XPath cannot reach into a shadow root; scripts can.
fn in_chat(body: &str) -> String {
    format!(
        "const host = document.getElementById('threadcart-chat'); \
         const root = host && host.shadowRoot; if (!root) return null; {body}"
    )
}

/// What the chat's panel shows, for a failed wait.
fn chat_text() -> String {
    in_chat(
        "return root.querySelector('.log').innerText + '\\n[quick replies] ' + root.querySelector('.qr').innerText + '\\n[status] ' + root.querySelector('.status').innerText",
    )
}

/// Waits for `script` (run in the chat's shadow root) to answer something.
async fn wait_in_chat(browser: &Browser, what: &str, script: &str) -> Value {
    browser.wait_until(what, &in_chat(script), &chat_text()).await
}

/// Waits for the chat's last button or link labelled `label`; answers its WebDriver element id.
async fn chat_control(browser: &Browser, label: &str) -> String {
    let label = serde_json::to_string(label).unwrap();
    let found = wait_in_chat(
        browser,
        &format!("the chat's {label}"),
        &format!(
            "return Array.from(root.querySelectorAll('button, a')).filter((b) => b.textContent.trim() === {label}).pop() || null"
        ),
    )
    .await;
    found[ELEMENT].as_str().unwrap().to_owned()
}

/// Taps the chat's last button or link labelled `label`.
async fn tap_in_chat(browser: &Browser, label: &str) {
    let id = chat_control(browser, label).await;
    browser.click_element(&id).await;
}

/// Opens the chat from its launcher, unless it is open already (it stays open from page to page).
async fn open_chat(browser: &Browser) {
    let launcher = wait_in_chat(
        browser,
        "the chat's launcher",
        "return root.querySelector('.launcher')",
    )
    .await;
    let expanded = browser
        .script(&in_chat(
            "return root.querySelector('.launcher').getAttribute('aria-expanded')",
        ))
        .await;
    if expanded != "true" {
        browser.click_element(launcher[ELEMENT].as_str().unwrap()).await;
    }
    wait_in_chat(
        browser,
        "the open panel",
        "return !root.querySelector('.panel').hidden",
    )
    .await;
}

/// Waits for the chat to show a receipt; answers its text.
async fn chat_receipt(browser: &Browser) -> String {
    let found = wait_in_chat(
        browser,
        "the receipt",
        "const r = root.querySelector('.log .receipt'); return r && r.innerText",
    )
    .await;
    found.as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_visitor_buys_through_the_web_chat_on_the_demo_shop_and_still_sees_the_history_after_a_reload() {
    let Some(browser) = browser_or_skip(
        "a_visitor_buys_through_the_web_chat_on_the_demo_shop_and_still_sees_the_history_after_a_reload",
    )
    .await
    else {
        return;
    };
    let app = spawn_dev_app().await;
    let shop = format!("{}/dev/shop", app.address);

    // Ask about the slippers: the chat opens on their card
    browser.open(&shop).await;
    browser
        .wait_until(
            "the widget's script",
            "return Boolean(window.threadcart)",
            "return document.body.innerHTML",
        )
        .await;
    browser
        .click("//li[h2[.='Comfy slippers']]/button[@data-threadcart-ref='p=SLIP-01']")
        .await;
    let card = wait_in_chat(
        &browser,
        "the slippers' card",
        "const c = Array.from(root.querySelectorAll('.log .card')).find((c) => c.querySelector('.title').textContent === 'Comfy slippers'); return c ? c.innerText : null",
    )
    .await;
    let card = card.as_str().unwrap();
    assert!(
        card.contains("49.90 EUR") && card.contains("Choose size"),
        "{card}"
    );
    let focused = browser
        .script(&in_chat("return root.activeElement && root.activeElement.id"))
        .await;
    assert_eq!(focused, "tc-input", "opening moves the focus into the panel");

    // Size 42, no socks, checkout
    tap_in_chat(&browser, "Choose size").await;
    let size = wait_in_chat(
        &browser,
        "the size quick replies",
        "return Array.from(root.querySelectorAll('.qr button')).find((b) => b.textContent === '42') || null",
    )
    .await;
    browser.click_element(size[ELEMENT].as_str().unwrap()).await;
    wait_in_chat(
        &browser,
        "the size tapped, shown as the shopper's and the quick replies gone",
        "return Array.from(root.querySelectorAll('.log li.in')).some((li) => li.textContent.includes('42')) \
         && root.querySelectorAll('.qr button').length === 0",
    )
    .await;
    tap_in_chat(&browser, "No thanks").await;
    wait_in_chat(
        &browser,
        "the offer declined",
        "return Array.from(root.querySelectorAll('.log li.out .bubble')).some((b) => b.textContent === 'No problem.')",
    )
    .await;
    tap_in_chat(&browser, "Checkout").await;

    // The pay link opens a new tab: follow it here, and pay on the dev payment page
    let pay = wait_in_chat(
        &browser,
        "the pay link",
        "const a = Array.from(root.querySelectorAll('.log a.btn.pay')).pop(); return a ? [a.href, a.target, a.rel, a.textContent] : null",
    )
    .await;
    assert_eq!(pay[1], "_blank", "{pay}");
    assert_eq!(pay[2], "noopener", "{pay}");
    assert!(pay[3].as_str().unwrap().starts_with("Pay "), "{pay}");
    let pay_url = pay[0].as_str().unwrap();
    assert!(
        pay_url.starts_with(&format!("{}/dev/pay/", app.address)),
        "{pay_url}"
    );
    browser.open(pay_url).await;
    browser.click("//button[@id='pay']").await;
    browser.wait_for("//h1[@id='paid']").await;

    // Back on the shop: the receipt is in the chat
    browser.open(&shop).await;
    open_chat(&browser).await;
    let receipt = chat_receipt(&browser).await;
    let token = app.token(DEMO_KEY).await;
    let orders: Value = app
        .get("/v1/orders?status=paid", &token)
        .await
        .json()
        .await
        .unwrap();
    let number = orders["data"][0]["number"].as_str().unwrap();
    assert!(
        receipt.contains(number) && receipt.contains("Comfy slippers") && receipt.contains("49.90 EUR"),
        "{receipt}"
    );
    let before = browser
        .script(&in_chat(
            "return Array.from(root.querySelectorAll('.log li')).map((li) => li.dataset.id)",
        ))
        .await;

    // A reload: the same conversation, its history shown once
    browser.post("/refresh", json!({})).await;
    open_chat(&browser).await;
    assert!(chat_receipt(&browser).await.contains(number));
    let after = wait_in_chat(
        &browser,
        "the whole history",
        &format!(
            "const ids = Array.from(root.querySelectorAll('.log li')).map((li) => li.dataset.id); \
             return ids.length >= {} ? ids : null",
            before.as_array().unwrap().len()
        ),
    )
    .await;
    let (before, after) = (before.as_array().unwrap(), after.as_array().unwrap());
    assert_eq!(
        after[..before.len()],
        before[..],
        "the history, in the same order"
    );
    let unique: std::collections::HashSet<&Value> = after.iter().collect();
    assert_eq!(unique.len(), after.len(), "each message once: {after:?}");
    wait_in_chat(
        &browser,
        "the slippers' card in the history",
        "return Array.from(root.querySelectorAll('.log .card .title')).some((t) => t.textContent === 'Comfy slippers')",
    )
    .await;

    // The token is kept in the browser, and never was in a URL
    let kept = browser
        .script(
            "const v = JSON.parse(localStorage.getItem('threadcart:wc_demo_comfy_shoes_00000000000000')); \
             return [v.token, v.conversation_id, performance.getEntries().map((e) => e.name)]",
        )
        .await;
    let visitor_token = kept[0].as_str().unwrap();
    assert!(visitor_token.starts_with("wv_"), "{kept}");
    assert!(
        !kept[2].to_string().contains(visitor_token),
        "the token is in a URL: {kept}"
    );
    let shot = browser.screenshot(None).await;
    let saved = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("webchat-receipt.png");
    std::fs::write(&saved, &shot).unwrap();
    eprintln!("screenshot of the web chat's receipt: {}", saved.display());
}

#[tokio::test]
async fn the_web_chat_fits_a_phone_and_can_be_used_with_the_keyboard() {
    let Some(browser) = browser_or_skip("the_web_chat_fits_a_phone_and_can_be_used_with_the_keyboard").await
    else {
        return;
    };
    let app = spawn_dev_app().await;
    browser
        .post("/window/rect", json!({"width": 390, "height": 844}))
        .await;
    browser.open(&format!("{}/dev/shop", app.address)).await;
    browser
        .wait_until(
            "the widget's script",
            "return Boolean(window.threadcart)",
            "return document.body.innerHTML",
        )
        .await;
    let on = |what: &str| {
        in_chat(&format!(
            "return document.activeElement === host && root.activeElement !== null && root.activeElement.matches('{what}')"
        ))
    };

    // Tab to the launcher; its focus is visible
    let mut presses = 0;
    while browser.script(&on(".launcher")).await != json!(true) {
        browser.press(&[TAB]).await;
        presses += 1;
        assert!(presses < 60, "Tab never reached the chat's launcher");
    }
    let outline = browser
        .script(&in_chat(
            "const s = getComputedStyle(root.querySelector('.launcher')); return [s.outlineStyle, s.outlineWidth]",
        ))
        .await;
    assert_ne!(outline[0], "none", "the focus is visible: {outline}");

    // Enter opens the panel, over the whole screen, the focus in its input
    browser.press(&[ENTER]).await;
    assert_eq!(browser.script(&on("#tc-input")).await, json!(true));
    wait_in_chat(
        &browser,
        "the greeting",
        "return root.querySelector('.log li.out') !== null",
    )
    .await;
    let fits = browser
        .script(&in_chat(
            "const box = (s) => { const r = root.querySelector(s).getBoundingClientRect(); \
               return r.left >= 0 && r.top >= 0 && r.right <= innerWidth && r.bottom <= innerHeight && r.width > 0 && r.height > 0; }; \
             const panel = root.querySelector('.panel').getBoundingClientRect(); \
             return [box('.panel'), box('#tc-input'), box('.send'), panel.width, \
               document.documentElement.clientWidth, document.documentElement.scrollWidth <= innerWidth]",
        ))
        .await;
    assert_eq!(
        fits.as_array().unwrap()[..3],
        [json!(true), json!(true), json!(true)],
        "the panel, its input and Send are inside the screen: {fits}"
    );
    assert!(
        fits[4].as_f64().unwrap() <= 400.0,
        "not a phone-sized window: {fits}"
    );
    assert_eq!(
        fits[3], fits[4],
        "the panel takes the whole width (but a desktop scroll bar): {fits}"
    );
    assert_eq!(fits[5], true, "nothing scrolls sideways: {fits}");

    // Type and Enter: the message is sent and shown as the shopper's, the input emptied
    browser.press_text("Do you have boots?").await;
    browser.press(&[ENTER]).await;
    wait_in_chat(
        &browser,
        "the shopper's message",
        "return Array.from(root.querySelectorAll('.log li.in .bubble')).some((b) => b.textContent === 'Do you have boots?') \
         && root.querySelector('#tc-input').value === ''",
    )
    .await;
    let shot = browser.screenshot(None).await;
    let saved = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("webchat-phone.png");
    std::fs::write(&saved, &shot).unwrap();
    eprintln!("screenshot of the web chat on a phone: {}", saved.display());

    // Escape closes it; the focus is back on the launcher
    browser.press(&["\u{E00C}"]).await;
    assert_eq!(browser.script(&on(".launcher")).await, json!(true));
    assert_eq!(
        browser
            .script(&in_chat("return [root.querySelector('.panel').hidden, root.querySelector('.launcher').getAttribute('aria-expanded')]"))
            .await,
        json!([true, "false"])
    );
}

#[tokio::test]
async fn the_web_chat_reconnects_a_dropped_event_stream_from_the_last_message_it_has() {
    let Some(browser) =
        browser_or_skip("the_web_chat_reconnects_a_dropped_event_stream_from_the_last_message_it_has").await
    else {
        return;
    };
    let app = spawn_dev_app().await;
    browser.open(&format!("{}/dev/shop", app.address)).await;
    browser
        .wait_until(
            "the widget's script",
            "return Boolean(window.threadcart)",
            "return document.body.innerHTML",
        )
        .await;
    // The page's fetch notes each stream's Last-Event-ID and breaks the first stream after a second, as
    // a dropped connection would.
    browser
        .script(
            "const real = window.fetch; window.streams = []; \
             window.fetch = (url, init) => real(url, init).then((res) => { \
               if (!String(url).endsWith('/events')) return res; \
               window.streams.push((init.headers || {})['Last-Event-ID'] || null); \
               if (window.streams.length > 1) return res; \
               const reader = res.body.getReader(); \
               const body = new ReadableStream({ \
                 start(c) { setTimeout(() => { reader.cancel(); c.error(new TypeError('dropped')); }, 1000); }, \
                 pull(c) { return reader.read().then(({ value, done }) => { if (!done) c.enqueue(value); }); }, \
               }); \
               return new Response(body, { status: res.status, headers: res.headers }); \
             }); \
             window.threadcart.open();",
        )
        .await;

    // Act: the greeting comes, the stream drops, the widget reconnects by itself
    wait_in_chat(
        &browser,
        "the greeting",
        "return root.querySelector('.log li.out') !== null",
    )
    .await;
    let resumed = browser
        .wait_until(
            "a second stream",
            "return window.streams.length > 1 ? window.streams : null",
            "return window.streams",
        )
        .await;

    // Assert: it asked for what followed the last message shown, and what is said next comes through
    let last = browser
        .script(&in_chat(
            "return Array.from(root.querySelectorAll('.log li')).pop().dataset.id",
        ))
        .await;
    assert_eq!(resumed[1], last, "{resumed}");
    browser.press_text("Still there?").await;
    browser.press(&[ENTER]).await;
    wait_in_chat(
        &browser,
        "the message, through the new stream",
        "return Array.from(root.querySelectorAll('.log li.in .bubble')).some((b) => b.textContent === 'Still there?')",
    )
    .await;
}
