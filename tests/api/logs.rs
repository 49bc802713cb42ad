//! What the server writes to its log, read from the real binary's stderr at the most verbose level:
//! paths and route patterns, never a query string, a token or an `appsecret_proof`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{TestDatabase, eventually};

/// `threadcart` running as a server, its stderr collected line by line.
pub struct ServerProcess {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
    pub address: String,
    _database: TestDatabase,
}

impl ServerProcess {
    /// Starts `threadcart ARGS` on `database`, on a random loopback port with JSON logs at `trace`, and
    /// waits until it listens.
    pub async fn start(database: TestDatabase, args: &[&str], env: &[(&str, &str)]) -> ServerProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_threadcart"));
        command
            .args(args)
            .env("DATABASE_URL", &database.url)
            .env("THREADCART_ADDR", "127.0.0.1:0")
            .env("THREADCART_LOG_FORMAT", "json")
            .env("RUST_LOG", "trace")
            .env("THREADCART_SECRETS_KEY", crate::helpers::SECRETS_KEY)
            .env_remove("THREADCART_DEMO")
            .env_remove("THREADCART_DEV")
            .env_remove("GRAPH_API_BASE")
            .env_remove("STRIPE_SECRET_KEY")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let reader = std::thread::spawn({
            let lines = lines.clone();
            move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            }
        });
        let mut server = ServerProcess {
            child,
            lines,
            reader: Some(reader),
            address: String::new(),
            _database: database,
        };
        let port = {
            let lines = server.lines.clone();
            let listening = move || {
                lines.lock().unwrap().iter().find_map(|l| {
                    let v: Value = serde_json::from_str(l).ok()?;
                    (v["message"] == "threadcart listening").then(|| v["port"].as_u64())?
                })
            };
            eventually("the server listens", || {
                let found = listening();
                async move { found.is_some() }
            })
            .await;
            listening().unwrap()
        };
        server.address = format!("http://127.0.0.1:{port}");
        server
    }

    /// Stops the server and answers everything it logged.
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        self.lines.lock().unwrap().join("\n")
    }
}

#[tokio::test]
async fn request_logs_carry_the_path_and_route_pattern_but_never_the_query_string() {
    // Arrange
    let server = ServerProcess::start(
        TestDatabase::new(),
        &["serve"],
        &[("MESSENGER_VERIFY_TOKEN", "verify-qx7Kp1")],
    )
    .await;
    let client = reqwest::Client::new();
    let product = uuid::Uuid::now_v7();

    // Act
    let handshake = client
        .get(format!(
            "{}/webhooks/messenger?hub.mode=subscribe&hub.verify_token=verify-qx7Kp1&hub.challenge=42",
            server.address
        ))
        .send()
        .await
        .unwrap();
    let product_read = client
        .get(format!(
            "{}/v1/products/{product}?access_token=token-qx7Kp2",
            server.address
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(handshake.status(), 200);
    assert_eq!(product_read.status(), 401);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = server.stop();

    // Assert
    assert!(!log.contains("qx7Kp"), "a query string was logged:\n{log}");
    assert!(
        log.contains(&format!(r#""http.path":"/v1/products/{product}""#)),
        "{log}"
    );
    assert!(
        log.contains(r#""http.route":"/v1/products/{product_id}""#),
        "{log}"
    );
    assert!(log.contains(r#""http.path":"/webhooks/messenger""#), "{log}");
}

#[tokio::test]
async fn dev_mode_logs_never_show_a_page_token_or_an_appsecret_proof() {
    // Arrange: a bare `threadcart` on loopback and SQLite (whatever backend the suite runs on) is dev
    // mode, with the demo merchants; the outbox's Send API calls reach the server's own stand-in for
    // Meta, token and proof in their URL.
    let server =
        ServerProcess::start(TestDatabase::sqlite(), &[], &[("THREADCART_RETRY_BASE_MS", "10")]).await;
    let client = reqwest::Client::new();

    // Act: a shopper arrives from an ad; the Page answers through the Send API.
    let sent = client
        .post(format!("{}/dev/simulator/send", server.address))
        .json(&json!({"page_id": "100000000000001", "psid": "LOG-1", "name": "Anna",
                      "action": {"kind": "ad", "ad_id": "AD-LOG", "ad_title": "Comfy slippers", "product_id": "SLIP-01"}}))
        .send()
        .await
        .unwrap();
    assert!(sent.status().is_success(), "{}", sent.status());
    let (client, address) = (&client, &server.address);
    eventually("the Page answers", || async move {
        let body: Value = client
            .get(format!(
                "{address}/dev/simulator/messages?page_id=100000000000001&psid=LOG-1&after=0"
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["messages"]
            .as_array()
            .is_some_and(|m| m.iter().any(|e| e["from"] == "page"))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = server.stop();

    // Assert
    assert!(
        log.contains(r#""http.route":"/dev/graph/{version}/{page_id}/messages""#),
        "{log}"
    );
    assert!(
        !log.contains("demo-page-token"),
        "a Page token was logged:\n{log}"
    );
    assert!(
        !log.contains("appsecret_proof"),
        "an appsecret_proof was logged:\n{log}"
    );
    assert!(!log.contains("access_token="), "a token was logged:\n{log}");
}

#[tokio::test]
async fn payments_disabled_is_logged_once_at_warn_never_as_an_error() {
    // Arrange: the demo shop served without Stripe keys; a shopper writes, which opens a thread.
    let server = ServerProcess::start(
        TestDatabase::new(),
        &["serve", "--demo", "true"],
        &[
            ("MESSENGER_APP_SECRET", crate::helpers::APP_SECRET),
            ("GRAPH_API_BASE", "http://127.0.0.1:9"),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let page = "100000000000001";
    let body = crate::helpers::delivery(
        page,
        vec![
            json!({"sender": {"id": "LOG-2"}, "recipient": {"id": page}, "timestamp": crate::helpers::now_ms(),
                    "message": {"mid": "m-log-2", "text": "hi"}}),
        ],
    );
    let delivered = client
        .post(format!("{}/webhooks/messenger", server.address))
        .header("x-hub-signature-256", crate::helpers::sign(body.as_bytes()))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(delivered.status(), 200);
    let token: Value = client
        .post(format!("{}/v1/auth/token", server.address))
        .json(&json!({"api_key": crate::simulator::DEMO_KEY}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap().to_owned();
    let threads = || async {
        let body: Value = client
            .get(format!("{}/v1/threads", server.address))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["data"].as_array().cloned().unwrap_or_default()
    };
    eventually("the shopper's thread opens", || async {
        !threads().await.is_empty()
    })
    .await;
    let thread = threads().await[0]["id"].as_str().unwrap().to_owned();

    // Act
    let res = client
        .post(format!("{}/v1/threads/{thread}/checkout", server.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = server.stop();

    // Assert
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| l.contains("payments_disabled"))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["level"], "WARN", "{lines:?}");
}
