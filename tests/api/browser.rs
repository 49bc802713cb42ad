//! The simulator in headless Chromium, through chromedriver's W3C WebDriver HTTP API spoken with the
//! `reqwest` the suite already has (a few calls: no WebDriver crate needed). Skipped, with a message,
//! when chromedriver is not installed (`apt-get install chromium chromium-driver`), unless
//! `THREADCART_BROWSER_TESTS=required` (what `.ci/run` sets after installing them).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{TestApp, eventually};
use crate::simulator::{DEMO_KEY, buy_slippers_from_ad, cart_slippers_with_code, spawn_dev_app};

/// The key W3C WebDriver names elements by.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// WebDriver's codes for the Tab and Enter keys.
pub(crate) const TAB: &str = "\u{E004}";
pub(crate) const ENTER: &str = "\u{E007}";

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// A chromedriver process and one headless Chromium session.
pub(crate) struct Browser {
    http: reqwest::Client,
    /// Where Chromium saves downloads, one folder per browser.
    downloads: PathBuf,
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
    pub(crate) async fn start() -> Option<Browser> {
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
        let downloads = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("downloads-{port}"));
        std::fs::create_dir_all(&downloads).unwrap();
        let mut options = json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu",
            "--disable-dev-shm-usage", "--window-size=1100,900"],
            "prefs": {"download.default_directory": downloads, "download.prompt_for_download": false}});
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
            downloads,
            http,
            port,
            driver,
        })
    }

    pub(crate) async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res: Value = req.send().await.unwrap().json().await.unwrap();
        res["value"].clone()
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    pub(crate) async fn get(&self, path: &str) -> Value {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub(crate) async fn open(&self, url: &str) {
        self.post("/url", json!({"url": url})).await;
    }

    /// Waits up to 15 seconds for an element matching the XPath; answers its id.
    pub(crate) async fn wait_for(&self, xpath: &str) -> String {
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

    pub(crate) async fn click(&self, xpath: &str) {
        let id = self.wait_for(xpath).await;
        let done = self.post(&format!("/element/{id}/click"), json!({})).await;
        assert!(done.is_null(), "clicking {xpath}: {done}");
    }

    /// Types `text` into the element matching the XPath.
    pub(crate) async fn type_into(&self, xpath: &str, text: &str) {
        let id = self.wait_for(xpath).await;
        let done = self
            .post(&format!("/element/{id}/value"), json!({"text": text}))
            .await;
        assert!(done.is_null(), "typing into {xpath}: {done}");
    }

    /// Empties the input matching the XPath.
    pub(crate) async fn clear(&self, xpath: &str) {
        let id = self.wait_for(xpath).await;
        let done = self.post(&format!("/element/{id}/clear"), json!({})).await;
        assert!(done.is_null(), "clearing {xpath}: {done}");
    }

    /// Presses keys one after the other, as a keyboard would (to whatever has the focus).
    pub(crate) async fn press(&self, keys: &[&str]) {
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
    pub(crate) async fn press_text(&self, text: &str) {
        let keys: Vec<String> = text.chars().map(String::from).collect();
        self.press(&keys.iter().map(String::as_str).collect::<Vec<_>>())
            .await;
    }

    /// Runs `script` (a function body) in the page and answers what it returns.
    pub(crate) async fn script(&self, script: &str) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": []}))
            .await
    }

    /// Waits up to 15 seconds for `script` (a function body) to answer something other than null or
    /// false; answers it. On a timeout, `diagnose` (another body) says what the page showed.
    pub(crate) async fn wait_until(&self, what: &str, script: &str, diagnose: &str) -> Value {
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
    pub(crate) async fn click_element(&self, id: &str) {
        let done = self.post(&format!("/element/{id}/click"), json!({})).await;
        assert!(done.is_null(), "clicking {id}: {done}");
    }

    pub(crate) async fn text(&self, id: &str) -> String {
        self.get(&format!("/element/{id}/text"))
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub(crate) async fn frame(&self, id: Option<&str>) {
        match id {
            Some(id) => self.post("/frame", json!({"id": {ELEMENT: id}})).await,
            None => self.post("/frame/parent", json!({})).await,
        };
    }

    /// A PNG screenshot of the element, or of the page.
    pub(crate) async fn screenshot(&self, id: Option<&str>) -> Vec<u8> {
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
pub(crate) fn png_size(png: &[u8]) -> (u32, u32) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    assert_eq!(&png[12..16], b"IHDR");
    let word = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    (word(16), word(20))
}

/// A browser, or `None` (the test is skipped, saying so) when chromedriver is not installed, unless
/// `THREADCART_BROWSER_TESTS=required`.
pub(crate) async fn browser_or_skip(test: &str) -> Option<Browser> {
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
pub(crate) async fn sign_in(browser: &Browser, app: &TestApp, api_key: &str) {
    browser.open(&format!("{}/dashboard", app.address)).await;
    browser.type_into("//input[@id='api-key']", api_key).await;
    browser.click("//button[@id='sign-in-button']").await;
    browser
        .wait_for("//div[@id='who' and not(@hidden)]/span[starts-with(., 'Signed in')]")
        .await;
}

/// Creates an API key of `role` for the demo shoe shop; answers the key.
pub(crate) async fn demo_key_with_role(app: &TestApp, role: &str) -> String {
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
        .wait_for(&format!("{row}/td[@data-step='purchases' and text()='1']"))
        .await;
    let revenue = browser.wait_for(&format!("{row}/td[@data-step='revenue']")).await;
    assert_eq!(browser.text(&revenue).await, "49.90 EUR");
    for step in ["referrals", "product_views", "add_to_carts", "checkouts"] {
        browser
            .wait_for(&format!("{row}/td[@data-step='{step}' and text()='1']"))
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
        order_text.contains("Paid") && order_text.contains("49.90 EUR"),
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

/// Pays `count` orders of the demo shoe shop, each a new shopper's pair of "Console clogs" (a product
/// made for the test), oldest first, as the checkout and Stripe's confirmation would; answers their
/// numbers in the order they were made.
async fn paid_orders(app: &TestApp, count: usize) -> Vec<String> {
    use threadcart::checkout::orders::{self, OrderStatus};
    let owner = app.token(DEMO_KEY).await;
    let product = app
        .create_product(
            &owner,
            crate::helpers::product_body(
                "CLOG-CONSOLE",
                "Console clogs",
                &[("CLOG-C-40", "40", "30.00", 1000)],
            ),
        )
        .await;
    let variant: uuid::Uuid = product["variants"][0]["id"].as_str().unwrap().parse().unwrap();
    let merchant: Value = app.get("/v1/merchant", &owner).await.json().await.unwrap();
    let merchant_id: threadcart::kernel::MerchantId = merchant["id"].as_str().unwrap().parse().unwrap();
    let mut numbers = Vec::new();
    for i in 0..count {
        let number = app
            .db
            .query_blocking(move |conn| {
                let customer = threadcart::conversations::ensure_customer(
                    conn,
                    merchant_id,
                    threadcart::kernel::Channel::Messenger,
                    &"1000000099".into(),
                    &format!("CONSOLE-{i}").into(),
                )?;
                let customer = threadcart::conversations::customer(conn, customer)?;
                let thread = threadcart::conversations::ensure_thread(conn, &customer)?;
                let (product, variant) =
                    threadcart::catalog::variant_with_product(conn, merchant_id, variant)
                        .unwrap()
                        .unwrap();
                threadcart::carts::add(conn, merchant_id, thread.id, &product, &variant, 1).unwrap();
                let order = orders::checkout(conn, merchant_id, thread.id, threadcart::db::now(), None, None)
                    .unwrap()
                    .order;
                orders::transition(
                    conn,
                    order.id,
                    OrderStatus::Paid,
                    Some("pi_console"),
                    threadcart::db::now(),
                )
                .unwrap();
                Ok(order.number)
            })
            .unwrap();
        numbers.push(number);
    }
    numbers
}

/// The order numbers in the dashboard's orders table, top to bottom.
async fn listed_orders(browser: &Browser) -> Vec<String> {
    let numbers = browser
        .script("return Array.from(document.querySelectorAll('#orders-table tbody tr[data-number]')).map((r) => r.dataset.number)")
        .await;
    numbers
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_owned())
        .collect()
}

/// Accepts the confirmation the page asked, once it is open; answers its text.
pub(crate) async fn accept_dialog(browser: &Browser) -> String {
    let started = Instant::now();
    loop {
        let text = browser.get("/alert/text").await;
        if let Some(text) = text.as_str() {
            let text = text.to_owned();
            let done = browser.post("/alert/accept", json!({})).await;
            assert!(done.is_null(), "accepting the confirmation: {done}");
            return text;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no confirmation was asked: {text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits up to 15 seconds for Chromium to finish a download; answers the file's name and text.
async fn downloaded(browser: &Browser) -> (String, String) {
    let started = Instant::now();
    loop {
        let done = std::fs::read_dir(&browser.downloads)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .find(|name| !name.ends_with(".crdownload") && !name.starts_with('.'));
        if let Some(name) = done {
            let text = std::fs::read_to_string(browser.downloads.join(&name)).unwrap();
            return (name, text);
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "nothing was downloaded"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Checks a screenshot is a real picture of the page at the window's width, not a blank one, and saves it.
pub(crate) fn check_screenshot(shot: &[u8], name: &str) {
    let (width, height) = png_size(shot);
    assert!(width > 300 && height > 300, "the screenshot is {width}×{height}");
    assert!(
        shot.len() > 10_000,
        "a nearly blank screenshot: {} bytes",
        shot.len()
    );
    let saved = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&saved, shot).unwrap();
    eprintln!("screenshot: {}", saved.display());
}

#[tokio::test]
async fn twenty_five_paid_orders_show_the_newest_first_and_the_oldest_after_more() {
    let Some(browser) =
        browser_or_skip("twenty_five_paid_orders_show_the_newest_first_and_the_oldest_after_more").await
    else {
        return;
    };
    // Arrange: 24 paid orders, then a purchase through the simulator, the 25th and newest
    let app = spawn_dev_app().await;
    let older = paid_orders(&app, 24).await;
    buy_slippers_from_ad(&app, "NEWEST-SHOPPER", "AD-NEWEST").await;

    // Act: sign in
    sign_in(&browser, &app, DEMO_KEY).await;
    let top = browser
        .wait_for("//table[@id='orders-table']/tbody/tr[1][td[@data-col='ad' and .='AD-NEWEST']]")
        .await;

    // Assert: the purchase just made is at the top, paid, then the others newest first, 20 at a time
    let top_text = browser.text(&top).await;
    assert!(top_text.contains("Paid"), "{top_text}");
    let first_page = listed_orders(&browser).await;
    assert_eq!(first_page.len(), 20);
    let newest_older: Vec<String> = older.iter().rev().take(19).cloned().collect();
    assert_eq!(first_page[1..], newest_older[..]);
    browser
        .click("//button[@id='orders-more' and not(@hidden)]")
        .await;
    browser
        .wait_for(&format!(
            "//table[@id='orders-table']/tbody/tr[@data-number='{}']",
            older[0]
        ))
        .await;
    let every = listed_orders(&browser).await;
    assert_eq!(every.len(), 25);
    assert_eq!(every.last(), older.first(), "the oldest comes last");
    browser.wait_for("//button[@id='orders-more' and @hidden]").await;
}

#[tokio::test]
async fn an_owner_refunds_part_of_an_order_from_its_detail_and_sees_the_refund() {
    let Some(browser) =
        browser_or_skip("an_owner_refunds_part_of_an_order_from_its_detail_and_sees_the_refund").await
    else {
        return;
    };
    // Arrange: a paid order of 49.90 EUR
    let app = spawn_dev_app().await;
    buy_slippers_from_ad(&app, "REFUND-SHOPPER", "AD-REFUND").await;
    sign_in(&browser, &app, DEMO_KEY).await;

    // Act: open the order, ask too much, then refund 10.00
    browser
        .click("//table[@id='orders-table']/tbody/tr[td[@data-col='ad' and .='AD-REFUND']]/th/button")
        .await;
    browser
        .wait_for("//dl[@id='order-facts']/dd[@data-fact='receipt' and .='Sent in the thread']")
        .await;
    browser
        .wait_for("//table[@id='order-lines']/tbody/tr/th[contains(., 'Comfy slippers')]")
        .await;
    browser.type_into("//input[@id='refund-amount']", "80.00").await;
    browser.click("//button[@id='refund-submit']").await;
    browser
        .wait_for("//div[@id='refund-error']/p[contains(., 'Amount is at most 49.90 EUR')]")
        .await;
    browser.clear("//input[@id='refund-amount']").await;
    browser.type_into("//input[@id='refund-amount']", "10.00").await;
    browser.click("//button[@id='refund-submit']").await;
    let asked = accept_dialog(&browser).await;

    // Assert: the refund is listed, the order partly refunded, and the API agrees
    assert!(asked.contains("Refund 10.00 EUR"), "{asked}");
    browser
        .wait_for("//table[@id='order-refunds']/tbody/tr/td[@data-col='amount' and .='10.00 EUR']")
        .await;
    browser
        .wait_for("//dl[@id='order-facts']/dd[@data-fact='status' and .='Partly refunded']")
        .await;
    browser
        .wait_for("//p[@id='refund-status' and starts-with(., 'Refunded 10.00 EUR')]")
        .await;
    browser
        .wait_for("//table[@id='orders-table']/tbody/tr[td[@data-col='ad' and .='AD-REFUND']]/td[@data-col='status' and .='Partly refunded']")
        .await;
    let token = app.token(DEMO_KEY).await;
    let paid: Value = app
        .get("/v1/orders?status=partially_refunded", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(paid["data"][0]["refunded"]["amount"], "10.00");
    // The shopper was told, in the thread: the detail says so once it is opened again.
    browser
        .click("//table[@id='orders-table']/tbody/tr[td[@data-col='ad' and .='AD-REFUND']]/th/button")
        .await;
    browser
        .wait_for("//dl[@id='order-facts']/dd[@data-fact='notices']/ul/li[starts-with(., 'Refund: sent in the thread')]")
        .await;
    let detail = browser.wait_for("//div[@id='order-detail']").await;
    check_screenshot(&browser.screenshot(Some(&detail)).await, "dashboard-refund.png");
}

#[tokio::test]
async fn the_funnel_downloads_as_csv_with_the_ads_title_and_its_rates() {
    let Some(browser) = browser_or_skip("the_funnel_downloads_as_csv_with_the_ads_title_and_its_rates").await
    else {
        return;
    };
    // Arrange: a purchase from the ad "Comfy slippers"
    let app = spawn_dev_app().await;
    buy_slippers_from_ad(&app, "CSV-SHOPPER", "AD-CSV-1").await;
    sign_in(&browser, &app, DEMO_KEY).await;
    let row = "//table[@id='funnel-table']/tbody/tr[th/button[@data-ad='AD-CSV-1']]";
    browser
        .wait_for(&format!(
            "{row}/th/button/span[@class='ad-title' and .='Comfy slippers']"
        ))
        .await;
    browser
        .wait_for(&format!(
            "{row}/td[@data-step='purchases']/span[@data-rate='purchases' and .='100 %']"
        ))
        .await;

    // Act: download the CSV
    browser.click("//a[@id='funnel-csv' and not(@hidden)]").await;

    // Assert: the file has what the table shows, in the merchant's timezone's name
    let (name, csv) = downloaded(&browser).await;
    assert!(
        name.starts_with("funnel-by-ad-") && name.ends_with("-Europe_Paris.csv"),
        "{name}"
    );
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "Ad,Ad id,Referrals,Threads,Referrals to threads (%),Views,Threads to views (%),Add to carts,\
         Views to add to carts (%),Checkouts,Add to carts to checkouts (%),Purchases,\
         Checkouts to purchases (%),Revenue"
    );
    let row = lines
        .find(|l| l.contains("AD-CSV-1"))
        .unwrap_or_else(|| panic!("no row of the ad in:\n{csv}"));
    assert_eq!(
        row,
        "Comfy slippers,AD-CSV-1,1,1,100,1,100,1,100,1,100,1,100,49.90 EUR"
    );
    assert!(
        !csv.contains("Organic (no touch),0,0"),
        "no all-zero organic row: {csv}"
    );
    let section = browser.wait_for("//section[@id='funnel-section']").await;
    check_screenshot(&browser.screenshot(Some(&section)).await, "dashboard-funnel.png");
}

#[tokio::test]
async fn at_phone_size_every_action_on_orders_offers_and_codes_is_reachable_without_scrolling_sideways() {
    let Some(browser) = browser_or_skip(
        "at_phone_size_every_action_on_orders_offers_and_codes_is_reachable_without_scrolling_sideways",
    )
    .await
    else {
        return;
    };
    // Arrange: a purchase, so orders have a row with a detail; a phone-sized window
    let app = spawn_dev_app().await;
    buy_slippers_from_ad(&app, "PHONE-SHOPPER", "AD-PHONE-1").await;
    browser
        .post("/window/rect", json!({"width": 390, "height": 844}))
        .await;

    // Act: sign in, open the order's detail, wait for offers and codes
    sign_in(&browser, &app, DEMO_KEY).await;
    browser
        .click("//table[@id='orders-table']/tbody/tr[td[@data-col='ad' and .='AD-PHONE-1']]/th/button")
        .await;
    browser
        .wait_for("//form[@id='refund-form' and not(@hidden)]")
        .await;
    browser
        .wait_for("//table[@id='offers-table']/tbody/tr/td//button")
        .await;
    browser
        .wait_for("//table[@id='discounts-table']/tbody/tr/td//button")
        .await;

    // Assert: the page never scrolls sideways, and every control of the three sections lies within the width
    let found = browser
        .script(
            "const width = window.innerWidth; \
             const controls = Array.from(document.querySelectorAll( \
               '#orders-section :is(button, a, input, select, textarea), #offers-section :is(button, a, input, select, textarea), \
                #discounts-section :is(button, a, input, select, textarea)')) \
               .filter((c) => c.getClientRects().length > 0); \
             const outside = controls.filter((c) => { const r = c.getBoundingClientRect(); \
               return r.left < 0 || r.right > width + 0.5; }) \
               .map((c) => (c.id || c.textContent.trim() || c.getAttribute('aria-label')) + ' ' + Math.round(c.getBoundingClientRect().right)); \
             return {width, page: document.documentElement.scrollWidth, count: controls.length, outside};",
        )
        .await;
    let width = found["width"].as_u64().unwrap();
    assert!(width <= 400, "not a phone-sized window: {found}");
    assert!(
        found["page"].as_u64().unwrap() <= width,
        "the page scrolls sideways: {found}"
    );
    assert!(
        found["count"].as_u64().unwrap() > 20,
        "the sections' controls were found: {found}"
    );
    assert_eq!(
        found["outside"],
        json!([]),
        "controls beyond the screen's width: {found}"
    );
    for section in ["orders-section", "offers-section", "discounts-section"] {
        let id = browser.wait_for(&format!("//section[@id='{section}']")).await;
        check_screenshot(
            &browser.screenshot(Some(&id)).await,
            &format!("dashboard-phone-{section}.png"),
        );
    }
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
/// Where the simulator's conversation stands in the window: whether its quick replies, message box
/// and last message are all on the screen, and whether the page scrolls sideways.
async fn simulator_on_screen(browser: &Browser) -> Value {
    browser
        .script(
            "const vh = window.innerHeight; \
             const box = (id) => document.getElementById(id).getBoundingClientRect(); \
             const inView = (r) => r.top >= 0 && r.bottom <= vh + 1; \
             const list = box('thread'); \
             const last = document.getElementById('thread').lastElementChild.getBoundingClientRect(); \
             return { quick_replies: inView(box('quick-replies')), message_box: inView(box('composer')), \
                      last_message: last.bottom <= list.bottom + 1 && last.bottom > list.top && inView(list), \
                      sideways: document.documentElement.scrollWidth > document.documentElement.clientWidth };",
        )
        .await
}

#[tokio::test]
async fn at_phone_size_the_simulators_thread_its_quick_replies_and_message_box_stay_on_one_screen() {
    let Some(browser) = browser_or_skip(
        "at_phone_size_the_simulators_thread_its_quick_replies_and_message_box_stay_on_one_screen",
    )
    .await
    else {
        return;
    };
    let app = spawn_dev_app().await;
    browser
        .post("/window/rect", json!({"width": 390, "height": 844}))
        .await;
    browser.open(&format!("{}/dev/simulator", app.address)).await;
    browser
        .click("//select[@id='product']/option[@value='SLIP-01']")
        .await;
    let all_in_view =
        json!({"quick_replies": true, "message_box": true, "last_message": true, "sideways": false});

    browser.click("//button[@id='start']").await;
    browser
        .wait_for("//article[contains(@class,'card')][.//p[@class='card-title' and .='Comfy slippers']]")
        .await;
    let after_the_card = simulator_on_screen(&browser).await;
    browser.click("(//button[.='Choose size'])[last()]").await;
    browser
        .wait_for("//div[@id='quick-replies']/button[.='42']")
        .await;
    let after_the_sizes = simulator_on_screen(&browser).await;
    browser.click("//div[@id='quick-replies']/button[.='42']").await;
    browser.wait_for("(//button[.='Checkout'])[last()]").await;
    // The cart's picture may still be arriving: its end is kept in view when it does.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after_the_cart = simulator_on_screen(&browser).await;

    assert_eq!(after_the_card, all_in_view, "after the product card");
    assert_eq!(after_the_sizes, all_in_view, "after the sizes");
    assert_eq!(after_the_cart, all_in_view, "after the cart");
    let shot = browser.screenshot(None).await;
    check_screenshot(&shot, "simulator-phone.png");
}

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

#[tokio::test]
async fn an_owner_creates_a_key_sees_it_once_with_a_copy_button_and_revokes_it() {
    let Some(browser) =
        browser_or_skip("an_owner_creates_a_key_sees_it_once_with_a_copy_button_and_revokes_it").await
    else {
        return;
    };
    // Arrange
    let app = spawn_dev_app().await;
    sign_in(&browser, &app, DEMO_KEY).await;
    browser
        .wait_for("//table[@id='keys-table']/tbody/tr[@data-id]")
        .await;

    // Act: a marketing key for the agency
    let role = browser.wait_for("//select[@id='key-role']").await;
    browser
        .post(&format!("/element/{role}/value"), json!({"text": "Marketing"}))
        .await;
    browser.type_into("//input[@id='key-label']", "Ads agency").await;
    browser.click("//button[@id='key-save']").await;

    // Assert: shown once, with a copy button, listed with its role, and it works
    let shown = browser
        .wait_for("//div[@id='key-shown' and not(@hidden)]/code")
        .await;
    let key = browser.text(&shown).await;
    assert!(key.starts_with("tc_"), "{key}");
    browser
        .wait_for(
            "//table[@id='keys-table']/tbody/tr[th[.='Ads agency']]/td[@data-col='role' and .='Marketing']",
        )
        .await;
    let exchanged = app.post_token(&key).await;
    assert_eq!(exchanged.status(), 200);
    let granted: Value = exchanged.json().await.unwrap();
    assert_eq!(granted["role"], "marketing");
    browser.click("//button[@id='key-copy']").await;
    browser
        .wait_for("//p[@id='key-status' and (.='Key copied.' or starts-with(., 'The key is selected'))]")
        .await;
    let stored = browser
        .script("return localStorage.length + sessionStorage.length + document.cookie.length")
        .await;
    assert_eq!(stored, json!(0), "nothing in web storage");

    // revoking it: the row goes, the key no longer opens a session
    browser
        .click("//table[@id='keys-table']/tbody/tr[th[.='Ads agency']]//button[contains(@class, 'revoke')]")
        .await;
    let asked = accept_dialog(&browser).await;
    assert!(asked.contains("Revoke the key “Ads agency”"), "{asked}");
    browser
        .wait_for("//p[@id='keys-status' and .='The key “Ads agency” is revoked.']")
        .await;
    let rows = browser
        .script(
            "return Array.from(document.querySelectorAll('#keys-table tbody th')).map((t) => t.textContent)",
        )
        .await;
    assert!(!rows.to_string().contains("Ads agency"), "{rows}");
    assert_eq!(app.post_token(&key).await.status(), 401);
}

#[tokio::test]
async fn a_refused_code_says_in_sentences_which_fields_to_correct() {
    let Some(browser) = browser_or_skip("a_refused_code_says_in_sentences_which_fields_to_correct").await
    else {
        return;
    };
    // Arrange
    let app = spawn_dev_app().await;
    sign_in(&browser, &app, DEMO_KEY).await;
    browser
        .wait_for("//table[@id='discounts-table']/tbody/tr[@data-code='WELCOME10']")
        .await;

    // Act: a code too short with a percent that is not a number
    browser.type_into("//input[@id='discount-code']", "AB").await;
    browser.type_into("//input[@id='discount-value']", "lots").await;
    browser.click("//button[@id='discount-save']").await;

    // Assert: each refused field named as the form names it, in a sentence, and marked
    let box_id = browser.wait_for("//div[@id='discount-error']/ul").await;
    let said = browser.text(&box_id).await;
    assert!(said.contains("Code: "), "{said}");
    assert!(said.contains("Percent off: "), "{said}");
    assert!(!said.contains("percent_off"), "no API field names: {said}");
    browser
        .wait_for("//input[@id='discount-value' and @aria-invalid='true']")
        .await;
    browser
        .wait_for("//p[@id='discount-status' and starts-with(., 'Not saved: ')]")
        .await;
}

#[tokio::test]
async fn the_simulators_clock_shows_a_cart_reminder_and_a_receipt_through_its_template() {
    let Some(browser) =
        browser_or_skip("the_simulators_clock_shows_a_cart_reminder_and_a_receipt_through_its_template")
            .await
    else {
        return;
    };
    let app = spawn_dev_app().await;

    // From an m.me link (a 24-hour window), slippers in 42 in the cart
    browser.open(&format!("{}/dev/simulator", app.address)).await;
    browser.click("//input[@id='arrive-link']").await;
    browser.click("//button[@id='start']").await;
    browser.click("//button[.='Choose size']").await;
    browser.click("//div[@id='quick-replies']/button[.='42']").await;
    browser.wait_for("(//button[.='Checkout'])[last()]").await;

    // An hour and five minutes later: the reminder, then Checkout from it
    browser.click("//button[.='+65 min']").await;
    browser
        .wait_for("//li[@class='clock-note'][.//div[.='65 min later']]")
        .await;
    let reminder = browser
        .wait_for("//li[@class='page']/div[@class='bubble'][starts-with(., 'You left 1 item')]")
        .await;
    assert!(
        browser
            .text(&reminder)
            .await
            .contains("check out whenever you are ready")
    );
    browser.click("(//button[.='Checkout'])[last()]").await;
    browser.wait_for("//button[starts-with(., 'Pay ')]").await;

    // A day and an hour later the shopper pays: the receipt comes through the approved template
    browser.click("//button[.='+25 h']").await;
    browser
        .wait_for("//li[@class='clock-note'][.//div[.='25 h later']]")
        .await;
    browser.click("(//button[starts-with(., 'Pay ')])[last()]").await;
    let frame = browser.wait_for("//iframe[@id='webview-frame']").await;
    browser.frame(Some(&frame)).await;
    browser.click("//button[@id='pay']").await;
    browser.wait_for("//h1[@id='paid']").await;
    browser.frame(None).await;
    browser.click("//button[@id='close-webview']").await;
    let utility = browser.wait_for("//div[contains(@class,'utility')]").await;
    let text = browser.text(&utility).await;

    assert!(
        text.contains("Utility template threadcart_order_paid_en"),
        "{text}"
    );
    assert!(text.contains("49.90 EUR"), "{text}");
}

#[tokio::test]
async fn an_agent_sees_a_shopper_arrive_live_in_the_inbox_answers_and_the_answer_reaches_meta() {
    let Some(browser) = browser_or_skip(
        "an_agent_sees_a_shopper_arrive_live_in_the_inbox_answers_and_the_answer_reaches_meta",
    )
    .await
    else {
        return;
    };
    let app = spawn_dev_app().await;
    sign_in(
        &browser,
        &app,
        "tc_demo_comfy_shoes_agent_lea_00000000000000000000000000000000000",
    )
    .await;
    browser.click("//button[@id='presence-set']").await;
    browser
        .wait_for("//p[@id='status' and .='You are online.']")
        .await;

    // A shopper in the simulator asks for a person: the thread appears in Léa's inbox by itself.
    let said = app
        .client
        .post(format!("{}/dev/simulator/send", app.address))
        .json(
            &json!({"page_id": crate::simulator::DEMO_PAGE, "psid": "INBOX-1", "name": "Anna",
                      "action": {"kind": "text", "text": "human"}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(said.status(), 202);
    browser
        .click("//ul[@id='mine-list']/li/button[starts-with(., 'Anna')]")
        .await;
    let name = browser
        .wait_for("//dl[@id='context']/dd[@data-fact='name' and .='Anna']")
        .await;
    assert_eq!(browser.text(&name).await, "Anna");
    browser
        .wait_for("//ol[@id='conversation-messages']/li[@data-author='shopper']/span[.='human']")
        .await;

    browser
        .type_into("//textarea[@id='answer']", "Bonjour Anna, je suis Léa.")
        .await;
    browser.click("//button[@id='answer-send']").await;
    browser
        .wait_for(
            "//ol[@id='conversation-messages']/li[@data-author='agent']/span[.='Bonjour Anna, je suis Léa.']",
        )
        .await;

    // The answer went to the (local) Send API: the simulator shows it to the shopper.
    eventually("the answer reaches the shopper", || async {
        let body: Value = app
            .client
            .get(format!("{}/dev/simulator/messages", app.address))
            .query(&[("page_id", crate::simulator::DEMO_PAGE), ("psid", "INBOX-1")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["from"] == "page" && e["message"]["text"] == "Bonjour Anna, je suis Léa.")
    })
    .await;
}

#[tokio::test]
async fn a_shopper_buys_the_demo_slippers_over_whatsapp_from_a_click_to_whatsapp_ad_in_the_simulator() {
    let Some(browser) = browser_or_skip(
        "a_shopper_buys_the_demo_slippers_over_whatsapp_from_a_click_to_whatsapp_ad_in_the_simulator",
    )
    .await
    else {
        return;
    };
    let app = spawn_dev_app().await;

    browser.open(&format!("{}/dev/simulator", app.address)).await;
    browser
        .click("//select[@id='channel']/option[@value='whatsapp']")
        .await;
    browser
        .click("//select[@id='product']/option[@value='SLIP-01']")
        .await;
    browser.clear("//input[@id='ad-id']").await;
    browser.type_into("//input[@id='ad-id']", "AD-WA-SIM").await;
    browser.click("//button[@id='start']").await;
    // The product from the number's catalog (it could go into WhatsApp's own cart), then its buttons.
    let item = browser
        .wait_for("//ul[@class='catalog']/li[starts-with(@data-item, 'SLIP-01-')]")
        .await;
    assert!(browser.text(&item).await.contains("Comfy slippers"));
    browser
        .wait_for("//li[@class='page']/div[@class='template'][.//div[@class='bubble' and contains(., 'Comfy slippers')]]//button[.='Choose size']")
        .await;
    browser.click("(//button[.='Choose size'])[last()]").await;
    browser.click("(//button[.='42'])[last()]").await;
    browser.click("(//button[.='Checkout'])[last()]").await;
    browser.click("(//button[starts-with(., 'Pay ')])[last()]").await;
    let frame = browser.wait_for("//iframe[@id='webview-frame']").await;
    browser.frame(Some(&frame)).await;
    browser.click("//button[@id='pay']").await;
    browser.wait_for("//h1[@id='paid']").await;
    browser.frame(None).await;
    browser.click("//button[@id='close-webview']").await;
    let receipt = browser
        .wait_for("//li[@class='page']/div[@class='bubble' and contains(., 'Comfy slippers') and contains(., 'Total')]")
        .await;
    let receipt_text = browser.text(&receipt).await;

    assert!(receipt_text.contains("49.90"), "{receipt_text}");
    let token = app.token(DEMO_KEY).await;
    let orders: Value = app
        .get("/v1/orders?channel=whatsapp", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(orders["data"][0]["status"], "paid");
    assert_eq!(orders["data"][0]["ad_id"], "AD-WA-SIM");
    let row = app.funnel_row_of_ad(&token, "AD-WA-SIM").await;
    assert_eq!(row["purchases"], 1);
    let shot = browser.screenshot(None).await;
    check_screenshot(&shot, "simulator-whatsapp.png");
}
