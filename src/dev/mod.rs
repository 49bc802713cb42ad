//! Dev mode (`threadcart serve --dev`, and a bare `threadcart` on a loopback address): the thread
//! simulator in the browser, and stand-ins for Meta's Graph API and Stripe's API served by the server
//! itself, so a newcomer sees the whole journey without a Meta app or a Stripe account.
//!
//! Only Meta and Stripe are stood in for: the simulator posts signed deliveries to the real
//! `/webhooks/messenger`, the inbox, engine and outbox run as in production, and the outbox's Send API
//! calls reach `/dev/graph` over HTTP because `GRAPH_API_BASE` points there. The dev routes accept
//! unsigned calls, so they are installed only in dev mode, which refuses to start on an address other
//! than loopback; they are not part of the public API, so they are registered here rather than through
//! `http::Api` and are absent from `openapi.yaml`.

pub mod clock;
mod graph;
mod pay;
mod shop;
mod simulator;
pub mod stripe;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use actix_web::web;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::Value;
use sha2::Sha256;

use crate::config::Config;
use stripe::StripeBook;

/// The Stripe secret key dev mode hands its own Stripe (it only has to look like a test key).
pub const DEV_STRIPE_KEY: &str = "sk_test_dev";

/// At most this many messages are kept per thread.
const KEEP_PER_THREAD: usize = 500;

/// One message of a simulated thread, in either direction.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// Increases with every entry of the process: the `after` of the next poll.
    pub seq: u64,
    /// `page` (sent through the Send API) or `shopper` (what the simulator posted).
    pub from: &'static str,
    /// The Send API's `message` object, or the shopper's `{"text": ...}`.
    pub message: Value,
}

#[derive(Default)]
struct Threads {
    last: u64,
    by_thread: HashMap<(String, String), Vec<Entry>>,
    names: HashMap<String, String>,
}

/// What dev mode keeps in memory: the simulated threads and, without real Stripe keys, Stripe's ledger.
pub struct DevState {
    /// `http://<loopback addr>:<port>`: where the server reaches itself.
    base: String,
    http: reqwest::Client,
    threads: Mutex<Threads>,
    changed: tokio::sync::watch::Sender<u64>,
    /// `None` when real Stripe keys are configured.
    stripe: Option<Mutex<StripeBook>>,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data is plain maps that a panic cannot leave half-written in a way that matters to a simulator.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl DevState {
    /// Records a message of the thread between `page_id` and `psid`, and wakes the pollers.
    pub fn record(&self, page_id: &str, psid: &str, from: &'static str, message: Value) -> u64 {
        let seq = {
            let mut t = locked(&self.threads);
            t.last += 1;
            let seq = t.last;
            let thread = t
                .by_thread
                .entry((page_id.to_owned(), psid.to_owned()))
                .or_default();
            thread.push(Entry { seq, from, message });
            if thread.len() > KEEP_PER_THREAD {
                thread.remove(0);
            }
            seq
        };
        self.changed.send_replace(seq);
        seq
    }

    /// The thread's messages after `after`.
    pub fn messages(&self, page_id: &str, psid: &str, after: u64) -> Vec<Entry> {
        locked(&self.threads)
            .by_thread
            .get(&(page_id.to_owned(), psid.to_owned()))
            .map(|v| v.iter().filter(|e| e.seq > after).cloned().collect())
            .unwrap_or_default()
    }

    /// Like [`DevState::messages`], waiting up to `wait` for one to arrive.
    pub async fn wait_for_messages(
        &self,
        page_id: &str,
        psid: &str,
        after: u64,
        wait: Duration,
    ) -> Vec<Entry> {
        let mut changes = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let found = self.messages(page_id, psid, after);
            if !found.is_empty() {
                return found;
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => continue,
                _ => return Vec::new(),
            }
        }
    }

    /// Remembers the shopper's first name, which the dev Graph API's profile answers.
    fn set_name(&self, psid: &str, name: &str) {
        locked(&self.threads)
            .names
            .insert(psid.to_owned(), name.to_owned());
    }

    fn name(&self, psid: &str) -> Option<String> {
        locked(&self.threads).names.get(psid).cloned()
    }

    /// Posts `body` to one of the server's own routes, as the outside world would.
    async fn post_to_self(
        &self,
        path: &str,
        headers: &[(&str, String)],
        body: String,
    ) -> Result<u16, reqwest::Error> {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        Ok(req.body(body).send().await?.status().as_u16())
    }
}

/// HMAC-SHA256 of `message` under `secret`, lower-case hex.
fn hmac_hex(secret: &SecretString, message: &[u8]) -> Option<String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()).ok()?;
    mac.update(message);
    Some(crate::secrets::hex(&mac.finalize().into_bytes()))
}

/// True when `url` is an http(s) URL whose host is a loopback address (`127.0.0.0/8`, `::1`,
/// `localhost`). The URL is parsed as a browser would: in `http://localhost:1@evil.example` the host is
/// `evil.example` (what comes before `@` is a user name and password).
pub fn url_is_loopback(url: &str) -> bool {
    use url::{Host, Url};
    let Ok(parsed) = Url::parse(url) else {
        return false;
    };
    if !matches!(parsed.scheme(), "http" | "https") {
        return false;
    }
    match parsed.host() {
        Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// True when the server would listen and be reached only on loopback: where dev mode may run.
pub fn is_local(config: &Config) -> bool {
    config.addr.ip().is_loopback() && url_is_loopback(&config.public_url)
}

/// Turns dev mode's configuration on for a server bound to `port`: Graph API at `/dev/graph` (unless
/// `GRAPH_API_BASE` was given), a Messenger app secret made for this process when none is set, and,
/// without `STRIPE_SECRET_KEY`, Stripe at `/dev/stripe` with a webhook secret made for this process.
/// Refuses a non-loopback address: dev routes take unsigned calls and must never be exposed.
pub fn wire(mut config: Config, port: u16) -> anyhow::Result<(Config, DevState)> {
    if !is_local(&config) {
        anyhow::bail!(
            "dev mode serves unsigned simulator routes and only runs on loopback: THREADCART_ADDR ({}) and \
             THREADCART_PUBLIC_URL ({}) must be 127.0.0.1, ::1 or localhost",
            config.addr,
            config.public_url
        );
    }
    let base = format!("http://{}", SocketAddr::new(config.addr.ip(), port));
    // A public URL left to its default names the address as configured: on port 0 (tests), the port
    // actually bound is where pages such as the dev shop are served, and where the web chat knows its own.
    if config.public_url == format!("http://{}", config.addr) {
        config.public_url.clone_from(&base);
    }
    if !config.graph_api_base_given {
        config.graph_api_base = format!("{base}/dev/graph");
    }
    if config.messenger_app_secret.is_none() {
        config.messenger_app_secret = Some(SecretString::from(crate::secrets::random_secret()));
    }
    let stripe = if config.stripe_secret_key.is_none() {
        config.stripe_secret_key = Some(SecretString::from(DEV_STRIPE_KEY));
        config.stripe_api_base = format!("{base}/dev/stripe");
        config.stripe_webhook_secret = Some(SecretString::from(format!(
            "whsec_dev_{}",
            crate::secrets::random_secret()
        )));
        Some(Mutex::new(StripeBook::new("dev", &format!("{base}/dev/pay"))))
    } else {
        None
    };
    tracing::warn!(
        simulator = %format!("{base}/dev/simulator"),
        graph_api = %config.graph_api_base,
        stripe = if stripe.is_some() { "simulated (/dev/stripe, /dev/pay)" } else { "real (STRIPE_SECRET_KEY)" },
        "DEV MODE: unsigned /dev routes are served; never expose this process"
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    Ok((
        config,
        DevState {
            base,
            http,
            threads: Mutex::new(Threads::default()),
            changed: tokio::sync::watch::Sender::new(0),
            stripe,
        },
    ))
}

/// Installs the dev routes (only called in dev mode).
pub fn configure(cfg: &mut web::ServiceConfig) {
    simulator::routes(cfg);
    shop::routes(cfg);
    graph::routes(cfg);
    pay::routes(cfg);
}

/// Escapes text for HTML.
fn escape(text: &str) -> String {
    text.chars().fold(String::with_capacity(text.len()), |mut s, c| {
        match c {
            '&' => s.push_str("&amp;"),
            '<' => s.push_str("&lt;"),
            '>' => s.push_str("&gt;"),
            '"' => s.push_str("&quot;"),
            '\'' => s.push_str("&#39;"),
            c => s.push(c),
        }
        s
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn loopback_urls_are_recognised_and_others_are_not() {
        for url in [
            "http://127.0.0.1:8080",
            "http://localhost",
            "http://[::1]:9000/x",
            "http://127.1.2.3",
        ] {
            assert!(url_is_loopback(url), "{url}");
        }
        for url in [
            "https://shop.example.com",
            "http://0.0.0.0:8080",
            "http://10.0.0.1",
            "http://localhost.evil.com",
            "http://localhost:1@evil.example",
            "http://127.0.0.1:8080@evil.example/",
            "http://[::1]@evil.example",
            "ftp://127.0.0.1",
            "127.0.0.1:8080",
        ] {
            assert!(!url_is_loopback(url), "{url}");
        }
    }

    #[test]
    fn a_default_public_url_names_the_port_bound_and_a_given_one_is_kept() {
        let config = |vars: &'static [(&'static str, &'static str)]| {
            Config::from_lookup(|name| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            })
            .unwrap()
        };

        let (on_port_0, _) = wire(config(&[("THREADCART_ADDR", "127.0.0.1:0")]), 40123).unwrap();
        let (given, _) = wire(
            config(&[
                ("THREADCART_ADDR", "127.0.0.1:0"),
                ("THREADCART_PUBLIC_URL", "http://localhost:8000"),
            ]),
            40123,
        )
        .unwrap();

        assert_eq!(on_port_0.public_url, "http://127.0.0.1:40123");
        assert_eq!(given.public_url, "http://localhost:8000");
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
