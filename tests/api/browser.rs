//! The simulator in headless Chromium, through chromedriver's W3C WebDriver HTTP API spoken with the
//! `reqwest` the suite already has (a few calls: no WebDriver crate needed). Skipped, with a message,
//! when chromedriver is not installed (`apt-get install chromium chromium-driver`), unless
//! `THREADCART_BROWSER_TESTS=required` (what `.ci/run` sets after installing them).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::simulator::{DEMO_KEY, buy_slippers_from_ad, spawn_dev_app};

/// The key W3C WebDriver names elements by.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

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
