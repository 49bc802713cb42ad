//! A rerunnable load generator for a running threadcart server (127.0.0.1 only).
//!
//! It starts its own Graph API on `127.0.0.1:--graph-port` (point the server's `GRAPH_API_BASE` at it),
//! waits for `/healthz`, then runs four phases against the server:
//!
//! 1. `ceiling`: `GET /healthz` at `--concurrency` for `--seconds` (what this machine serves at best);
//! 2. `ack`: `--events` Get Started postbacks with an ad referral, each from a new shopper, `--batch` per
//!    signed delivery, at `--concurrency`: acknowledged events/s and the latency of each POST; then it
//!    waits for every greeting to reach the Graph API (the background processing rate);
//! 3. `rate`: one event per delivery at `--rate` events/s for `--seconds`, paced: acknowledgement latency;
//! 4. `e2e`: the same at `--e2e-rate`, timing each delivery until its greeting reaches the Graph API;
//! 5. `shop`: shoppers who each click the ad, tap "Choose size", pick 42, decline the socks offer and
//!    type "cart", taking the payloads from the replies as a person would, started so that their actions
//!    come at `--shop-rate` actions/s: each action is timed from its delivery to its first reply;
//! 6. `ingest` (needs `--database-url` and `pgbench`): first pgbench's one-row insert at 8 clients for
//!    `--seconds` against the server's database (the commit rate the database can give), then
//!    single-event deliveries from `--ingest-connections` connections, as fast as they are answered,
//!    for the same time while the workers process them: the acknowledgement rate as a ratio of
//!    pgbench's.
//!
//! With `--database-url` (the server's PostgreSQL, read with `psql`) every phase but `ceiling` also
//! prints what the database did per action or event: statements (from `pg_stat_statements`, reset at
//! the phase's start, when the server's PostgreSQL loads it), commits (`pg_stat_database`), and the CPU
//! time of the PostgreSQL processes of this machine.
//!
//! With `--api-key` (an owner key of the merchant, the demo shop's by default) every `--page-id` is first
//! connected to that merchant through `POST /v1/pages`, so the load can be spread over several Pages
//! (Meta allows 300 Send API calls/s per Page, and each shopper action takes two or three).
//!
//! With `--server-pid` it samples the server's VmRSS every 200 ms throughout.
//!
//! ```text
//! cargo run --release --example loadgen -- --server-pid "$(pgrep -n threadcart)"
//! ```
//!
//! Every shopper id is new (`load-<run>-<phase><n>`), so runs can be repeated on the same database.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use actix_web::http::Method;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::Semaphore;

/// Each HTTP request gives up after this long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A reply that has not reached the Graph API this long after its delivery counts as missing.
const E2E_LIMIT: Duration = Duration::from_secs(10);
/// The most requests a paced phase keeps in flight before the scheduler waits (and falls behind).
const MAX_IN_FLIGHT: usize = 4096;
/// A paced event dispatched later than this after its slot counts as late.
const LATE: Duration = Duration::from_millis(5);
/// Hard limit on the acknowledgement phase, whatever `--events`.
const ACK_PHASE_LIMIT: Duration = Duration::from_secs(600);
/// How often the server's memory is sampled.
const RSS_EVERY: Duration = Duration::from_millis(200);
/// The sampler stops by itself after this long.
const RSS_LIMIT: Duration = Duration::from_secs(6 * 3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Phase {
    Ceiling,
    Ack,
    Rate,
    E2e,
    Shop,
    Ingest,
}

/// Load generator for threadcart's Messenger webhook (see the module documentation).
#[derive(Debug, Parser)]
#[command(name = "loadgen")]
struct Args {
    /// The threadcart server (http://127.0.0.1:PORT only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    target: String,
    /// Port of the local Graph API this generator serves (the server's GRAPH_API_BASE).
    #[arg(long, default_value_t = 9099)]
    graph_port: u16,
    /// Length of the ceiling, rate and e2e phases.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Requests in flight in the ceiling and ack phases.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Events sent in the ack phase.
    #[arg(long, default_value_t = 20000)]
    events: usize,
    /// Events per delivery in the ack phase.
    #[arg(long, default_value_t = 10)]
    batch: usize,
    /// Events per second in the rate phase (one per delivery).
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Events per second in the e2e phase (one per delivery).
    #[arg(long, default_value_t = 500)]
    e2e_rate: u64,
    /// Shopper actions per second in the shop phase (five per shopper).
    #[arg(long, default_value_t = 500)]
    shop_rate: u64,
    /// An owner API key: connect every --page-id to its merchant first.
    #[arg(long)]
    api_key: Option<String>,
    /// The Page the events are for (the demo shop's by default); several, comma-separated, take turns
    /// (the server sends at most 300 calls/s per Page).
    #[arg(long, value_delimiter = ',', default_value = "100000000000001")]
    page_id: Vec<String>,
    /// MESSENGER_APP_SECRET of the server (signs deliveries).
    #[arg(long, default_value = "bench-app-secret")]
    app_secret: String,
    /// The server's process id, to sample its resident memory.
    #[arg(long)]
    server_pid: Option<u32>,
    /// How long to wait for the server's /healthz at start.
    #[arg(long, default_value_t = 30)]
    wait_secs: u64,
    /// How long to wait for the replies of a phase before starting the next one.
    #[arg(long, default_value_t = 180)]
    drain_secs: u64,
    /// The server's PostgreSQL database (postgres://...): statements, commits and PostgreSQL CPU per
    /// action, and the ingest phase's pgbench run.
    #[arg(long)]
    database_url: Option<String>,
    /// Connections sending single-event deliveries in the ingest phase.
    #[arg(long, default_value_t = 64)]
    ingest_connections: usize,
    /// pgbench clients in the ingest phase.
    #[arg(long, default_value_t = 8)]
    pgbench_clients: usize,
    /// The phases to run, in this order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "ceiling,ack,rate,e2e"
    )]
    phases: Vec<Phase>,
}

impl Args {
    fn check(&self) -> Result<String> {
        let url = reqwest::Url::parse(&self.target).context("--target is not a URL")?;
        if url.scheme() != "http" || url.host_str() != Some("127.0.0.1") {
            bail!(
                "--target must be http://127.0.0.1[:PORT]; refusing {}",
                self.target
            );
        }
        if !matches!(url.path(), "" | "/") || url.query().is_some() {
            bail!("--target must have no path or query: {}", self.target);
        }
        let port = url.port_or_known_default().unwrap_or(80);
        let bounded = |name: &str, value: u64, max: u64| -> Result<()> {
            if value == 0 || value > max {
                bail!("--{name} must be between 1 and {max}");
            }
            Ok(())
        };
        bounded("seconds", self.seconds, 600)?;
        bounded("concurrency", self.concurrency as u64, 1024)?;
        bounded("events", self.events as u64, 1_000_000)?;
        bounded("batch", self.batch as u64, 1000)?;
        bounded("rate", self.rate, 50_000)?;
        bounded("e2e-rate", self.e2e_rate, 50_000)?;
        bounded("shop-rate", self.shop_rate, 50_000)?;
        bounded("wait-secs", self.wait_secs, 3600)?;
        bounded("drain-secs", self.drain_secs, 3600)?;
        bounded("ingest-connections", self.ingest_connections as u64, 1024)?;
        bounded("pgbench-clients", self.pgbench_clients as u64, 256)?;
        if let Some(url) = &self.database_url
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            bail!("--database-url must be a postgres:// URL");
        }
        if self.phases.contains(&Phase::Ingest) && self.database_url.is_none() {
            bail!("the ingest phase needs --database-url (it runs pgbench against the server's database)");
        }
        if self.rate * self.seconds > 1_000_000 || self.e2e_rate * self.seconds > 1_000_000 {
            bail!("a paced phase may send at most 1000000 events (rate x seconds)");
        }
        if self.page_id.is_empty() || self.page_id.iter().any(String::is_empty) || self.app_secret.is_empty()
        {
            bail!("--page-id and --app-secret must not be empty");
        }
        Ok(format!("http://127.0.0.1:{port}"))
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------------------------------
// The local Graph API.

/// What the local Graph API has received.
#[derive(Default)]
struct GraphLog {
    /// Every message (not sender action) per PSID, with when it arrived.
    inbox: HashMap<String, Vec<(Instant, Value)>>,
    /// Shoppers waiting for their next message.
    waiters: HashMap<String, Arc<tokio::sync::Notify>>,
    /// When the first message (not sender action) for each PSID arrived.
    first_reply: HashMap<String, Instant>,
    /// Send API messages.
    messages: u64,
    /// Messages for a PSID that already had one.
    duplicates: u64,
    /// Send API sender actions.
    actions: u64,
    /// User Profile API calls.
    profiles: u64,
    /// Anything else (answered 404).
    other: u64,
}

type SharedLog = Arc<Mutex<GraphLog>>;

/// The Page access tokens the generator gives (`<prefix><Page id>`), which its Graph API answers as that
/// Page's.
const LOADGEN_TOKEN_PREFIX: &str = "EAAG-loadgen-token-";

async fn graph_answer(req: HttpRequest, body: web::Bytes, log: web::Data<SharedLog>) -> HttpResponse {
    let arrived = Instant::now();
    if req.method() == Method::POST && req.path().ends_with("/messages") {
        let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let psid = parsed["recipient"]["id"].as_str().unwrap_or_default().to_owned();
        let mut log = lock(&log);
        if parsed.get("message").is_none() {
            log.actions += 1;
            return HttpResponse::Ok().json(json!({"recipient_id": psid}));
        }
        log.messages += 1;
        let message_id = format!("m_loadgen_{}", log.messages);
        log.inbox
            .entry(psid.clone())
            .or_default()
            .push((arrived, parsed["message"].clone()));
        if let Some(waiter) = log.waiters.get(&psid) {
            waiter.notify_one();
        }
        if log.first_reply.contains_key(&psid) {
            log.duplicates += 1;
        } else {
            log.first_reply.insert(psid.clone(), arrived);
        }
        return HttpResponse::Ok().json(json!({"recipient_id": psid, "message_id": message_id}));
    }
    if req.method() == Method::GET && req.path().ends_with("/me") {
        // Whose token this is: threadcart connects a Page only when Meta says the token is the Page's.
        let page = req.query_string().split('&').find_map(|pair| {
            pair.strip_prefix("access_token=")?
                .strip_prefix(LOADGEN_TOKEN_PREFIX)
        });
        return match page {
            Some(page) => HttpResponse::Ok().json(json!({"id": page, "name": format!("Loadgen {page}")})),
            None => HttpResponse::BadRequest()
                .json(json!({"error": {"message": "Invalid OAuth access token",
                "type": "OAuthException", "code": 190, "fbtrace_id": "loadgen"}})),
        };
    }
    if req.method() == Method::GET {
        lock(&log).profiles += 1;
        return HttpResponse::Ok().json(json!({"first_name": "Anna", "locale": "fr_FR", "timezone": 1}));
    }
    lock(&log).other += 1;
    HttpResponse::NotFound().json(json!({"error": {"message": "Unknown path components", "type": "OAuthException",
                                                    "code": 100, "error_subcode": 0, "fbtrace_id": "loadgen"}}))
}

fn start_graph(port: u16, log: SharedLog) -> Result<actix_web::dev::ServerHandle> {
    let data = web::Data::new(log);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(4 * 1024 * 1024))
            .default_service(web::to(graph_answer))
    })
    .workers(1)
    .disable_signals()
    .bind(("127.0.0.1", port))
    .with_context(|| format!("cannot listen on 127.0.0.1:{port} for the Graph API (--graph-port)"))?
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    Ok(handle)
}

/// How many of `psids` have had a reply.
fn replied(log: &SharedLog, psids: &[String]) -> usize {
    let log = lock(log);
    psids.iter().filter(|p| log.first_reply.contains_key(*p)).count()
}

/// Waits (at most `limit`) for every PSID to have a reply; the count and when the last one arrived.
async fn drain(log: &SharedLog, psids: &[String], limit: Duration) -> (usize, Option<Instant>) {
    let until = Instant::now() + limit;
    loop {
        let n = replied(log, psids);
        if n == psids.len() || Instant::now() >= until {
            let log = lock(log);
            let last = psids.iter().filter_map(|p| log.first_reply.get(p)).max().copied();
            return (n, last);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------------------
// Talking to the server.

struct Target {
    base: String,
    client: reqwest::Client,
    secret: Vec<u8>,
    page_ids: Vec<String>,
    run: String,
}

/// Why a request did not count.
type ErrorKey = String;

impl Target {
    fn psid(&self, tag: &str, n: usize) -> String {
        format!("load-{}-{tag}{n}", self.run)
    }

    /// The Page of the `n`th delivery (the Pages take turns).
    fn page(&self, n: usize) -> &str {
        self.page_ids
            .get(n % self.page_ids.len().max(1))
            .map_or("", String::as_str)
    }

    /// A Get Started tap from a Click-to-Messenger ad, as Meta sends it.
    fn ad_postback(&self, page: &str, psid: &str) -> Value {
        let ts = chrono::Utc::now().timestamp_millis();
        json!({
            "sender": {"id": psid}, "recipient": {"id": page}, "timestamp": ts,
            "postback": {"title": "Get Started", "payload": "GET_STARTED", "mid": format!("pb-{psid}"),
                "referral": {"ref": "c=loadgen", "ad_id": "AD-LOADGEN", "source": "ADS", "type": "OPEN_THREAD",
                    "ads_context_data": {"ad_title": "Comfy slippers", "photo_url": "https://example.com/ad.jpg",
                                          "post_id": "POST-LOADGEN", "product_id": "SLIP-01"}}}
        })
    }

    fn delivery(&self, page: &str, messaging: Vec<Value>) -> String {
        let time = chrono::Utc::now().timestamp_millis();
        json!({"object": "page", "entry": [{"id": page, "time": time, "messaging": messaging}]}).to_string()
    }

    fn sign(&self, body: &[u8]) -> Result<String> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).context("HMAC key")?;
        mac.update(body);
        let mut out = String::with_capacity(71);
        out.push_str("sha256=");
        for b in mac.finalize().into_bytes() {
            let _ = write!(out, "{b:02x}");
        }
        Ok(out)
    }

    /// Posts a signed delivery; Ok when the server acknowledged it (200 `EVENT_RECEIVED`).
    async fn post_delivery(&self, body: String) -> std::result::Result<(), ErrorKey> {
        let signature = self.sign(body.as_bytes()).map_err(|e| e.to_string())?;
        let res = self
            .client
            .post(format!("{}/webhooks/messenger", self.base))
            .header("content-type", "application/json")
            .header("x-hub-signature-256", signature)
            .body(body)
            .send()
            .await
            .map_err(transport)?;
        let status = res.status().as_u16();
        let text = res.text().await.map_err(transport)?;
        match (status, text.as_str()) {
            (200, "EVENT_RECEIVED") => Ok(()),
            (200, _) => Err("200 with another body".into()),
            _ => Err(format!("HTTP {status}")),
        }
    }

    async fn healthz(&self) -> std::result::Result<(), ErrorKey> {
        let res = self
            .client
            .get(format!("{}/healthz", self.base))
            .send()
            .await
            .map_err(transport)?;
        let status = res.status();
        res.bytes().await.map_err(transport)?;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {}", status.as_u16()))
        }
    }
}

fn transport(e: reqwest::Error) -> ErrorKey {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connection refused/failed".into()
    } else {
        format!("transport: {e}")
    }
}

// ---------------------------------------------------------------------------------------------------
// Statistics.

/// Latencies in microseconds; `None` is "never" (sorted last).
struct Latencies(Vec<Option<u64>>);

impl Latencies {
    fn new(mut v: Vec<Option<u64>>) -> Latencies {
        v.sort_by_key(|x| x.unwrap_or(u64::MAX));
        Latencies(v)
    }

    fn of(durations: impl IntoIterator<Item = Duration>) -> Latencies {
        Latencies::new(durations.into_iter().map(|d| Some(micros(d))).collect())
    }

    /// Nearest-rank percentile in ms (None: empty or beyond the measured ones).
    fn pct(&self, p: f64) -> Option<Option<f64>> {
        if self.0.is_empty() {
            return None;
        }
        let rank = ((p / 100.0) * self.0.len() as f64).ceil().max(1.0) as usize;
        let v = self.0[rank.min(self.0.len()) - 1];
        Some(v.map(|us| us as f64 / 1000.0))
    }

    fn show(&self, p: f64) -> String {
        match self.pct(p) {
            None => "-".into(),
            Some(None) => format!(">{} ms", E2E_LIMIT.as_millis()),
            Some(Some(ms)) => format!("{ms:.2} ms"),
        }
    }

    fn line(&self, ps: &[(&str, f64)]) -> String {
        ps.iter()
            .map(|(name, p)| format!("{name} {:>10}", self.show(*p)))
            .collect::<Vec<_>>()
            .join("  ")
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn errors_text(errors: &BTreeMap<ErrorKey, u64>) -> String {
    if errors.is_empty() {
        return "none".into();
    }
    errors
        .iter()
        .map(|(k, n)| format!("{k}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn merge(into: &mut BTreeMap<ErrorKey, u64>, from: BTreeMap<ErrorKey, u64>) {
    for (k, n) in from {
        *into.entry(k).or_default() += n;
    }
}

fn row(phase: &str, what: &str, value: impl std::fmt::Display) {
    println!("{phase:<10} {what:<32} {value}");
}

// ---------------------------------------------------------------------------------------------------
// Memory sampling.

struct RssSampler {
    stop: Arc<AtomicBool>,
    label: Arc<Mutex<&'static str>>,
    max_kb: Arc<Mutex<BTreeMap<&'static str, u64>>>,
    thread: Option<std::thread::JoinHandle<()>>,
    enabled: bool,
}

fn read_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time used so far, in clock ticks: the process's own (user + system) when `pid` is given, else the
/// whole machine's busy time (every core, everything but idle and I/O wait), from `/proc`.
fn cpu_ticks(pid: Option<u32>) -> Option<u64> {
    let fields: Vec<u64> = match pid {
        Some(pid) => {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // Fields after the command name (which may hold spaces): utime and stime are 14th and 15th.
            let rest = stat.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            return Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?);
        }
        None => {
            let stat = std::fs::read_to_string("/proc/stat").ok()?;
            let line = stat.lines().next()?.strip_prefix("cpu ")?.to_owned();
            line.split_whitespace().filter_map(|v| v.parse().ok()).collect()
        }
    };
    // user nice system idle iowait irq softirq steal
    let busy = fields
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| v)
        .sum();
    Some(busy)
}

/// Milliseconds of CPU per action between two readings of [`cpu_ticks`] (100 ticks per second on Linux).
fn cpu_ms_per(before: Option<u64>, after: Option<u64>, actions: usize) -> String {
    match (before, after) {
        (Some(b), Some(a)) if actions > 0 => format!("{:.2} ms", (a - b) as f64 * 10.0 / actions as f64),
        _ => "-".into(),
    }
}

impl RssSampler {
    fn start(pid: Option<u32>) -> Result<RssSampler> {
        let stop = Arc::new(AtomicBool::new(false));
        let label = Arc::new(Mutex::new("start"));
        let max_kb = Arc::new(Mutex::new(BTreeMap::new()));
        let mut sampler = RssSampler {
            stop: stop.clone(),
            label: label.clone(),
            max_kb: max_kb.clone(),
            thread: None,
            enabled: false,
        };
        let Some(pid) = pid else { return Ok(sampler) };
        if read_rss_kb(pid).is_none() {
            bail!("--server-pid {pid}: cannot read VmRSS from /proc/{pid}/status");
        }
        let started = Instant::now();
        sampler.enabled = true;
        sampler.thread = Some(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) && started.elapsed() < RSS_LIMIT {
                if let Some(kb) = read_rss_kb(pid) {
                    let phase = *lock(&label);
                    let mut maxes = lock(&max_kb);
                    let m = maxes.entry(phase).or_default();
                    *m = (*m).max(kb);
                }
                std::thread::sleep(RSS_EVERY);
            }
        }));
        Ok(sampler)
    }

    fn enabled(&self) -> bool {
        self.enabled
    }

    fn phase(&self, name: &'static str) {
        *lock(&self.label) = name;
    }

    /// The largest sample during `phase`, or overall.
    fn max_mb(&self, phase: Option<&str>) -> Option<f64> {
        let maxes = lock(&self.max_kb);
        let kb = match phase {
            Some(p) => maxes.get(p).copied(),
            None => maxes.values().max().copied(),
        }?;
        Some(kb as f64 / 1024.0)
    }

    fn show(&self, phase: &str) -> String {
        match self.max_mb(Some(phase)) {
            Some(mb) if self.enabled() => format!("{mb:.1} MB"),
            _ => "-".into(),
        }
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Phases.

struct Ctx {
    args: Args,
    target: Arc<Target>,
    log: SharedLog,
    rss: RssSampler,
    db: Option<DbMeter>,
    summary: Vec<String>,
    checks: Vec<(String, String, bool)>,
}

impl Ctx {
    /// Starts the database's counters for a phase (none without `--database-url`).
    fn db_start(&self) -> Result<Option<DbReading>> {
        self.db.as_ref().map(DbMeter::start).transpose()
    }

    /// Prints and records what the database did per action during the phase; answers statements and
    /// PostgreSQL CPU (ms) per action when measured.
    fn db_report(
        &mut self,
        phase: &str,
        reading: Option<DbReading>,
        actions: usize,
        what: &str,
    ) -> Result<(Option<f64>, Option<f64>)> {
        let (Some(db), Some(reading)) = (&self.db, reading) else {
            return Ok((None, None));
        };
        let cost = db.finish(reading, actions)?;
        row(phase, &format!("database per {what}"), cost.line());
        self.summary.push(format!(
            "{phase}_statements={} {phase}_commits={:.2} {phase}_pg_cpu_ms={:.2}",
            cost.statements.map_or("-".into(), |v| format!("{v:.1}")),
            cost.commits,
            cost.pg_cpu_ms
        ));
        Ok((cost.statements, Some(cost.pg_cpu_ms)))
    }
}

// ---------------------------------------------------------------------------------------------------
// The database's side, read with `psql` (no client library: the generator builds without PostgreSQL).

/// The server's PostgreSQL, as the generator reads it.
struct DbMeter {
    url: String,
    /// `pg_stat_statements` is loaded and readable.
    statements: bool,
}

/// Counters at a phase's start.
struct DbReading {
    commits: u64,
    pg_cpu_ticks: u64,
}

/// What the database did per action during a phase.
struct DbCost {
    /// Statements per action (`None` without `pg_stat_statements`).
    statements: Option<f64>,
    commits: f64,
    pg_cpu_ms: f64,
}

impl DbCost {
    fn line(&self) -> String {
        format!(
            "{} statements, {:.2} commits, PostgreSQL CPU {:.2} ms",
            self.statements
                .map_or("? (pg_stat_statements is not loaded)".into(), |v| format!(
                    "{v:.1}"
                )),
            self.commits,
            self.pg_cpu_ms
        )
    }
}

/// How long PostgreSQL may take to publish a backend's counters (`pg_stat_database` is flushed by
/// each backend at most once a second when busy).
const STATS_FLUSH: Duration = Duration::from_millis(1500);

impl DbMeter {
    fn open(url: &str) -> Result<DbMeter> {
        let meter = DbMeter {
            url: url.to_owned(),
            statements: false,
        };
        meter
            .psql("SELECT 1")
            .context("--database-url: psql could not connect")?;
        let statements = meter
            .psql("SELECT count(*) FROM pg_stat_statements LIMIT 1")
            .is_ok();
        if !statements {
            row(
                "database",
                "NOTE",
                "pg_stat_statements is not loaded (shared_preload_libraries, then CREATE EXTENSION \
                 pg_stat_statements): statements per action are not counted",
            );
        }
        Ok(DbMeter { statements, ..meter })
    }

    /// One value `sql` answers, through psql.
    fn psql(&self, sql: &str) -> Result<String> {
        let out = std::process::Command::new("psql")
            .args([
                self.url.as_str(),
                "-X",
                "-A",
                "-t",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
            .output()
            .context("running psql")?;
        if !out.status.success() {
            bail!("psql: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    fn commits(&self) -> Result<u64> {
        self.psql("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")?
            .parse()
            .context("xact_commit")
    }

    fn start(&self) -> Result<DbReading> {
        if self.statements {
            self.psql("SELECT pg_stat_statements_reset()")?;
        }
        std::thread::sleep(STATS_FLUSH);
        Ok(DbReading {
            commits: self.commits()?,
            pg_cpu_ticks: postgres_cpu_ticks(),
        })
    }

    fn finish(&self, start: DbReading, actions: usize) -> Result<DbCost> {
        let pg_cpu_ticks = postgres_cpu_ticks();
        std::thread::sleep(STATS_FLUSH);
        let per = |v: f64| v / actions.max(1) as f64;
        let statements = if self.statements {
            // The generator's own readings are left out.
            let n: f64 = self
                .psql(
                    "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements \
                     WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                     AND query NOT LIKE '%pg_stat_%'",
                )?
                .parse()
                .context("pg_stat_statements calls")?;
            Some(per(n))
        } else {
            None
        };
        // Each psql reading is a commit of its own: two at the start, none counted after.
        let commits = self.commits()?.saturating_sub(start.commits) as f64;
        Ok(DbCost {
            statements,
            commits: per(commits),
            pg_cpu_ms: per(pg_cpu_ticks.saturating_sub(start.pg_cpu_ticks) as f64 * 10.0),
        })
    }
}

/// A database URL as printed: without its query and with any password masked.
fn shown_url(url: &str) -> String {
    let url = url.split('?').next().unwrap_or(url);
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, rest)), Some(_)) => {
            let (user_info, host) = rest.rsplit_once('@').unwrap_or(("", rest));
            let user = user_info.split(':').next().unwrap_or_default();
            let masked = if user_info.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{masked}@{host}")
        }
        _ => url.to_owned(),
    }
}

/// CPU time (user + system, clock ticks) of every `postgres` process of this machine so far.
fn postgres_cpu_ticks() -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == "postgres"))
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_string_lossy().parse().ok()?;
            cpu_ticks(Some(pid))
        })
        .sum()
}

async fn wait_for_health(target: &Target, wait: Duration) -> Result<()> {
    let until = Instant::now() + wait;
    let mut last = String::new();
    while Instant::now() < until {
        match target.healthz().await {
            Ok(()) => return Ok(()),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!(
        "{}/healthz did not answer within {} s ({last})",
        target.base,
        wait.as_secs()
    )
}

/// One signed event per Page, to check the secret and the wiring before measuring anything.
async fn preflight(ctx: &Ctx) -> Result<()> {
    for (n, page) in ctx.target.page_ids.iter().enumerate() {
        let psid = ctx.target.psid("p", n);
        let body = ctx
            .target
            .delivery(page, vec![ctx.target.ad_postback(page, &psid)]);
        let sent = Instant::now();
        match ctx.target.post_delivery(body).await {
            Ok(()) => {}
            Err(e) if e == "HTTP 401" => {
                bail!("the server refused the signature: is MESSENGER_APP_SECRET --app-secret?")
            }
            Err(e) if e == "HTTP 503" => {
                bail!("the server refuses webhooks: MESSENGER_APP_SECRET is not set")
            }
            Err(e) => bail!("the first delivery failed: {e}"),
        }
        let (got, at) = drain(&ctx.log, std::slice::from_ref(&psid), E2E_LIMIT).await;
        match at {
            Some(at) if got == 1 => row(
                "preflight",
                &format!("first greeting, Page {page}"),
                format!("{:.1} ms", ms(at - sent)),
            ),
            _ => row(
                "preflight",
                "WARNING",
                format!(
                    "no greeting within {} s: is GRAPH_API_BASE http://127.0.0.1:{} and Page {page} \
                     connected (demo data)? Replies will be missing.",
                    E2E_LIMIT.as_secs(),
                    ctx.args.graph_port,
                ),
            ),
        }
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn phase_ceiling(ctx: &mut Ctx) -> Result<()> {
    ctx.rss.phase("ceiling");
    let seconds = Duration::from_secs(ctx.args.seconds);
    let start = Instant::now();
    let until = start + seconds;
    let mut tasks = Vec::with_capacity(ctx.args.concurrency);
    for _ in 0..ctx.args.concurrency {
        let target = ctx.target.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut errors) = (0_u64, BTreeMap::<ErrorKey, u64>::new());
            // Bounded by time, and by count in case the clock misbehaves.
            for _ in 0..100_000_000_u64 {
                if Instant::now() >= until {
                    break;
                }
                match target.healthz().await {
                    Ok(()) => ok += 1,
                    Err(e) => *errors.entry(e).or_default() += 1,
                }
            }
            (ok, errors)
        }));
    }
    let (mut ok, mut errors) = (0, BTreeMap::new());
    for t in tasks {
        let (o, e) = t.await.context("a ceiling task failed")?;
        ok += o;
        merge(&mut errors, e);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let rps = ok as f64 / elapsed;
    row(
        "ceiling",
        "GET /healthz",
        format!("{rps:>9.0} req/s  ({ok} in {elapsed:.2} s)"),
    );
    row("ceiling", "errors", errors_text(&errors));
    row("ceiling", "max server RSS", ctx.rss.show("ceiling"));
    ctx.summary.push(format!("ceiling={rps:.0}req/s"));
    Ok(())
}

async fn phase_ack(ctx: &mut Ctx) -> Result<()> {
    ctx.rss.phase("ack");
    let db = ctx.db_start()?;
    let (events, batch) = (ctx.args.events, ctx.args.batch);
    let start = Instant::now();
    let sent = closed_loop(
        &ctx.target,
        ctx.args.concurrency,
        events.div_ceil(batch),
        start + ACK_PHASE_LIMIT,
        Arc::new(move |target: &Target, b: usize| {
            (b * batch..((b + 1) * batch).min(events))
                .map(|n| target.psid("a", n))
                .collect()
        }),
    )
    .await?;
    let (latencies, acked, errors) = (sent.latencies, sent.acked, sent.errors);
    let elapsed = start.elapsed();
    let eps = acked.len() as f64 / elapsed.as_secs_f64();
    let lat = Latencies::of(latencies);
    row(
        "ack",
        "events acknowledged",
        format!(
            "{eps:>9.0} events/s  ({} events in {} POSTs of {batch}, {:.2} s)",
            acked.len(),
            lat.0.len(),
            elapsed.as_secs_f64()
        ),
    );
    row(
        "ack",
        "latency per POST",
        lat.line(&[("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("max", 100.0)]),
    );
    row("ack", "errors", errors_text(&errors));
    row("ack", "max server RSS", ctx.rss.show("ack"));
    ctx.summary.push(format!(
        "ack={eps:.0}ev/s ack_p99={}",
        lat.show(99.0).replace(' ', "")
    ));
    ctx.checks.push((
        format!("ack >= 5000 events/s (batch {batch})"),
        format!("{eps:.0} events/s"),
        eps >= 5000.0 && errors.is_empty(),
    ));

    ctx.rss.phase("ack drain");
    let limit = Duration::from_secs(ctx.args.drain_secs);
    let (n, last) = drain(&ctx.log, &acked, limit).await;
    row(
        "ack",
        "greetings received",
        format!("{n}/{}{}", acked.len(), processing(start, n, last)),
    );
    if n < acked.len() {
        row(
            "ack",
            "WARNING",
            format!(
                "backlog not drained after {} s: later phases share the server",
                limit.as_secs()
            ),
        );
    }
    row("ack", "max server RSS draining", ctx.rss.show("ack drain"));
    ctx.db_report("ack", db, acked.len(), "event, stored and greeted")?;
    Ok(())
}

/// What closed-loop senders measured.
#[derive(Default)]
struct ClosedLoop {
    /// Each POST's latency.
    latencies: Vec<Duration>,
    /// The shoppers of the acknowledged deliveries.
    acked: Vec<String>,
    errors: BTreeMap<ErrorKey, u64>,
}

/// The shoppers whose Get Started ad postbacks delivery `n` carries.
type Shoppers = Arc<dyn Fn(&Target, usize) -> Vec<String> + Send + Sync>;

/// `connections` senders, each posting the next signed delivery as soon as its last one is answered,
/// until `deliveries` were sent or `until`: delivery `n` carries `shoppers(n)`' postbacks to Page
/// `target.page(n)`.
async fn closed_loop(
    target: &Arc<Target>,
    connections: usize,
    deliveries: usize,
    until: Instant,
    shoppers: Shoppers,
) -> Result<ClosedLoop> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(connections);
    for _ in 0..connections {
        let (target, next, shoppers) = (target.clone(), next.clone(), shoppers.clone());
        tasks.push(tokio::spawn(async move {
            let mut sent = ClosedLoop::default();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= deliveries || Instant::now() >= until {
                    break;
                }
                let psids = shoppers(&target, n);
                let page = target.page(n);
                let body = target.delivery(page, psids.iter().map(|p| target.ad_postback(page, p)).collect());
                let at = Instant::now();
                let outcome = target.post_delivery(body).await;
                sent.latencies.push(at.elapsed());
                match outcome {
                    Ok(()) => sent.acked.extend(psids),
                    Err(e) => *sent.errors.entry(e).or_default() += 1,
                }
            }
            sent
        }));
    }
    let mut all = ClosedLoop::default();
    for t in tasks {
        let sent = t.await.context("a sender task failed")?;
        all.latencies.extend(sent.latencies);
        all.acked.extend(sent.acked);
        merge(&mut all.errors, sent.errors);
    }
    Ok(all)
}

/// How fast the server turned the phase's events into greetings.
fn processing(start: Instant, n: usize, last: Option<Instant>) -> String {
    match last {
        Some(last) if n > 0 => {
            let secs = (last - start).as_secs_f64();
            format!(
                "  (last {secs:.2} s after the first POST: {:.0} greetings/s)",
                n as f64 / secs
            )
        }
        _ => String::new(),
    }
}

/// What a paced phase measured.
struct Paced {
    /// (psid, when its POST started, ack latency) of acknowledged events.
    acked: Vec<(String, Instant, Duration)>,
    errors: BTreeMap<ErrorKey, u64>,
    /// How late each dispatch was after its slot.
    lags: Vec<Duration>,
    /// Events per second actually dispatched.
    achieved: f64,
    start: Instant,
    last_sent: Instant,
}

/// Sends `rate` events/s (one per delivery) for `seconds`, each at its slot, whatever the answers.
async fn paced(ctx: &Ctx, tag: &'static str, rate: u64) -> Result<Paced> {
    let total = rate * ctx.args.seconds;
    let interval_ns = 1_000_000_000 / rate;
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let start = Instant::now() + Duration::from_millis(20);
    let mut lags = Vec::with_capacity(total as usize);
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let slot = start + Duration::from_nanos(i * interval_ns);
        if slot > Instant::now() {
            tokio::time::sleep_until(slot.into()).await;
        }
        let permit = in_flight
            .clone()
            .acquire_owned()
            .await
            .context("semaphore closed")?;
        lags.push(Instant::now().saturating_duration_since(slot));
        let target = ctx.target.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let psid = target.psid(tag, i as usize);
            let page = target.page(i as usize);
            let body = target.delivery(page, vec![target.ad_postback(page, &psid)]);
            let sent = Instant::now();
            let outcome = target.post_delivery(body).await;
            (psid, sent, sent.elapsed(), outcome)
        }));
    }
    let dispatched = start.elapsed().as_secs_f64();
    let mut last_sent = start;
    let (mut acked, mut errors) = (Vec::with_capacity(tasks.len()), BTreeMap::new());
    for t in tasks {
        let (psid, sent, latency, outcome) = t.await.context("a paced task failed")?;
        last_sent = last_sent.max(sent);
        match outcome {
            Ok(()) => acked.push((psid, sent, latency)),
            Err(e) => *errors.entry(e).or_default() += 1,
        }
    }
    let achieved = if total > 1 {
        (total - 1) as f64 / dispatched.max(1e-9)
    } else {
        rate as f64
    };
    Ok(Paced {
        acked,
        errors,
        lags,
        achieved,
        start,
        last_sent,
    })
}

fn report_pacing(phase: &str, rate: u64, p: &Paced) {
    let late = p.lags.iter().filter(|l| **l > LATE).count();
    let lags = Latencies::of(p.lags.iter().copied());
    let behind = p.achieved < rate as f64 * 0.98 || late * 100 > p.lags.len();
    row(
        phase,
        "pacing",
        format!(
            "{:>9.0} events/s of {rate}, dispatch lag {}, {late} late > {} ms{}",
            p.achieved,
            lags.line(&[("p99", 99.0), ("max", 100.0)]),
            LATE.as_millis(),
            if behind {
                "  GENERATOR FELL BEHIND"
            } else {
                "  (on schedule)"
            }
        ),
    );
}

async fn phase_rate(ctx: &mut Ctx) -> Result<()> {
    ctx.rss.phase("rate");
    let db = ctx.db_start()?;
    let rate = ctx.args.rate;
    let p = paced(ctx, "r", rate).await?;
    let lat = Latencies::of(p.acked.iter().map(|a| a.2));
    report_pacing("rate", rate, &p);
    row(
        "rate",
        &format!("ack latency at {rate}/s"),
        format!(
            "{}  ({} acknowledged)",
            lat.line(&[("p50", 50.0), ("p99", 99.0), ("max", 100.0)]),
            p.acked.len()
        ),
    );
    row("rate", "errors", errors_text(&p.errors));
    row("rate", "max server RSS", ctx.rss.show("rate"));
    let p99 = lat.pct(99.0).flatten();
    ctx.summary.push(format!(
        "rate{rate}_p50={} rate{rate}_p99={}",
        lat.show(50.0).replace(' ', ""),
        lat.show(99.0).replace(' ', "")
    ));
    ctx.checks.push((
        format!("p99 ack < 10 ms at {rate}/s"),
        lat.show(99.0),
        p99.is_some_and(|v| v < 10.0) && p.errors.is_empty(),
    ));

    ctx.rss.phase("rate drain");
    let psids: Vec<String> = p.acked.into_iter().map(|a| a.0).collect();
    let (n, last) = drain(&ctx.log, &psids, Duration::from_secs(ctx.args.drain_secs)).await;
    let processed = processing(p.start, n, last);
    row(
        "rate",
        "greetings received",
        format!("{n}/{}{processed}", psids.len()),
    );
    ctx.db_report("rate", db, psids.len(), "event, stored and greeted")?;
    Ok(())
}

async fn phase_e2e(ctx: &mut Ctx) -> Result<()> {
    ctx.rss.phase("e2e");
    let db = ctx.db_start()?;
    let rate = ctx.args.e2e_rate;
    let p = paced(ctx, "e", rate).await?;
    let psids: Vec<String> = p.acked.iter().map(|a| a.0.clone()).collect();
    let wait = (p.last_sent + E2E_LIMIT).saturating_duration_since(Instant::now());
    drain(&ctx.log, &psids, wait).await;
    let (e2e, missing) = {
        let log = lock(&ctx.log);
        let e2e: Vec<Option<u64>> = p
            .acked
            .iter()
            .map(|(psid, sent, _)| {
                log.first_reply
                    .get(psid)
                    .map(|at| at.saturating_duration_since(*sent))
                    .filter(|d| *d <= E2E_LIMIT)
                    .map(micros)
            })
            .collect();
        let missing = e2e.iter().filter(|x| x.is_none()).count();
        (Latencies::new(e2e), missing)
    };
    let ack = Latencies::of(p.acked.iter().map(|a| a.2));
    report_pacing("e2e", rate, &p);
    row(
        "e2e",
        &format!("ack latency at {rate}/s"),
        ack.line(&[("p50", 50.0), ("p99", 99.0), ("max", 100.0)]),
    );
    row(
        "e2e",
        "delivery -> greeting",
        format!(
            "{}  ({missing} of {} missing after {} s)",
            e2e.line(&[("p50", 50.0), ("p99", 99.0), ("max", 100.0)]),
            p.acked.len(),
            E2E_LIMIT.as_secs()
        ),
    );
    row("e2e", "errors", errors_text(&p.errors));
    row("e2e", "max server RSS", ctx.rss.show("e2e"));
    ctx.summary.push(format!(
        "e2e{rate}_p50={} e2e{rate}_p99={} e2e_missing={missing}",
        e2e.show(50.0).replace(' ', ""),
        e2e.show(99.0).replace(' ', "")
    ));
    ctx.checks.push((
        format!("e2e p99 < 100 ms at {rate}/s"),
        e2e.show(99.0),
        e2e.pct(99.0).flatten().is_some_and(|v| v < 100.0) && missing == 0 && p.errors.is_empty(),
    ));
    ctx.db_report("e2e", db, p.acked.len(), "new shopper greeted")?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// Shopping.

/// Connects every `--page-id` to the merchant of `api_key` (a Page already connected answers 409).
async fn connect_pages(ctx: &Ctx, api_key: &str) -> Result<()> {
    let t = &ctx.target;
    let res = t
        .client
        .post(format!("{}/v1/auth/token", t.base))
        .json(&json!({"api_key": api_key}))
        .send()
        .await
        .context("POST /v1/auth/token")?;
    if !res.status().is_success() {
        bail!("--api-key was refused: HTTP {}", res.status().as_u16());
    }
    let token: Value = res.json().await.context("token answer")?;
    let token = token["access_token"]
        .as_str()
        .context("no access_token")?
        .to_owned();
    for page in &t.page_ids {
        let res = t
            .client
            .post(format!("{}/v1/pages", t.base))
            .bearer_auth(&token)
            .json(&json!({"page_id": page, "name": format!("Loadgen {page}"),
                          "access_token": format!("{LOADGEN_TOKEN_PREFIX}{page}")}))
            .send()
            .await
            .context("POST /v1/pages")?;
        let status = res.status().as_u16();
        match status {
            201 => row("pages", &format!("Page {page}"), "connected"),
            409 => row("pages", &format!("Page {page}"), "already connected"),
            _ => bail!("connecting Page {page}: HTTP {status}"),
        }
    }
    Ok(())
}

/// One shopper action: what it sends, and the button or quick reply its replies must offer next.
struct Step {
    name: &'static str,
    /// The next step's title to find in the replies (`None`: any reply will do).
    offers: Option<&'static str>,
}

/// The shopping script.
const SCRIPT: [Step; 5] = [
    Step {
        name: "ad click",
        offers: Some("Choose size"),
    },
    Step {
        name: "Choose size",
        offers: Some("42"),
    },
    Step {
        name: "42",
        offers: Some("No thanks"),
    },
    Step {
        name: "No thanks",
        offers: None,
    },
    Step {
        name: "type cart",
        offers: Some("Checkout"),
    },
];

/// The payload of the button or quick reply titled `title` in `messages`, and whether it is a quick reply.
fn offered(messages: &[(Instant, Value)], title: &str) -> Option<(String, bool)> {
    for (_, message) in messages.iter().rev() {
        let payload = &message["attachment"]["payload"];
        let buttons = payload["elements"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|e| e["buttons"].as_array().into_iter().flatten())
            .chain(payload["buttons"].as_array().into_iter().flatten());
        for b in buttons {
            if b["title"] == title {
                return Some((b["payload"].as_str()?.to_owned(), false));
            }
        }
        for q in message["quick_replies"].as_array().into_iter().flatten() {
            if q["title"] == title {
                return Some((q["payload"].as_str()?.to_owned(), true));
            }
        }
    }
    None
}

/// What one action of a shopper measured.
struct Action {
    step: usize,
    /// Delivery POST to the first reply (None: no reply in time).
    latency: Option<Duration>,
    /// Whether the step's replies offered what the next step taps.
    ok: bool,
    error: Option<ErrorKey>,
    sent: Instant,
}

/// Sends `event` for the shopper and waits for its replies: the first one timed, then until `offers`
/// shows up (or any reply, without one).
async fn act(
    target: &Target,
    log: &SharedLog,
    notify: &tokio::sync::Notify,
    page: &str,
    psid: &str,
    event: Value,
    offers: Option<&str>,
) -> (
    Option<Duration>,
    Option<(String, bool)>,
    Option<ErrorKey>,
    Instant,
) {
    let seen = lock(log).inbox.get(psid).map_or(0, Vec::len);
    let body = target.delivery(page, vec![event]);
    let sent = Instant::now();
    if let Err(e) = target.post_delivery(body).await {
        return (None, None, Some(e), sent);
    }
    let until = sent + E2E_LIMIT;
    let mut first = None;
    loop {
        {
            let log = lock(log);
            let new = log
                .inbox
                .get(psid)
                .map_or(&[][..], |m| m.get(seen..).unwrap_or_default());
            if let Some((at, _)) = new.first() {
                first.get_or_insert(at.saturating_duration_since(sent));
                match offers {
                    None => return (first, None, None, sent),
                    Some(title) => {
                        if let Some(found) = offered(new, title) {
                            return (first, Some(found), None, sent);
                        }
                    }
                }
            }
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || tokio::time::timeout(left, notify.notified()).await.is_err() {
            return (first, None, None, sent);
        }
    }
}

fn messaging(psid: &str, page: &str, n: usize, kind: &str, payload: &str, title: &str) -> Value {
    let ts = chrono::Utc::now().timestamp_millis();
    let mid = format!("m-{psid}-{n}");
    match kind {
        "quick" => json!({"sender": {"id": psid}, "recipient": {"id": page}, "timestamp": ts,
                          "message": {"mid": mid, "text": title, "quick_reply": {"payload": payload}}}),
        "text" => json!({"sender": {"id": psid}, "recipient": {"id": page}, "timestamp": ts,
                         "message": {"mid": mid, "text": title}}),
        _ => json!({"sender": {"id": psid}, "recipient": {"id": page}, "timestamp": ts,
                    "postback": {"title": title, "payload": payload, "mid": mid}}),
    }
}

/// One shopper through the script; stops at the first step whose replies lack what comes next.
async fn shopper(target: Arc<Target>, log: SharedLog, n: usize) -> Vec<Action> {
    let psid = target.psid("s", n);
    let page = target.page(n).to_owned();
    let notify = Arc::new(tokio::sync::Notify::new());
    lock(&log).waiters.insert(psid.clone(), notify.clone());
    let mut actions = Vec::with_capacity(SCRIPT.len());
    let mut next: Option<(String, bool)> = None;
    for (i, step) in SCRIPT.iter().enumerate() {
        let event = match (i, &next) {
            (0, _) => target.ad_postback(&page, &psid),
            (4, _) => messaging(&psid, &page, i, "text", "", "cart"),
            (_, Some((payload, quick))) => {
                let kind = if *quick { "quick" } else { "postback" };
                messaging(&psid, &page, i, kind, payload, step.name)
            }
            (_, None) => break,
        };
        let (latency, found, error, sent) =
            act(&target, &log, &notify, &page, &psid, event, step.offers).await;
        let ok = error.is_none() && latency.is_some() && (step.offers.is_none() || found.is_some());
        actions.push(Action {
            step: i,
            latency,
            ok,
            error,
            sent,
        });
        if !ok {
            break;
        }
        next = found;
    }
    lock(&log).waiters.remove(&psid);
    actions
}

async fn phase_shop(ctx: &mut Ctx) -> Result<()> {
    ctx.rss.phase("shop");
    let db = ctx.db_start()?;
    let cpu_before = (cpu_ticks(ctx.args.server_pid), cpu_ticks(None));
    let rate = ctx.args.shop_rate;
    let per_shopper = SCRIPT.len() as u64;
    let shoppers = (rate * ctx.args.seconds).div_ceil(per_shopper);
    let interval_ns = 1_000_000_000 * per_shopper / rate;
    let start = Instant::now() + Duration::from_millis(20);
    let mut tasks = Vec::with_capacity(shoppers as usize);
    for i in 0..shoppers {
        let slot = start + Duration::from_nanos(i * interval_ns);
        if slot > Instant::now() {
            tokio::time::sleep_until(slot.into()).await;
        }
        tasks.push(tokio::spawn(shopper(
            ctx.target.clone(),
            ctx.log.clone(),
            i as usize,
        )));
    }
    let mut actions = Vec::new();
    for t in tasks {
        actions.extend(t.await.context("a shopper task failed")?);
    }
    let cpu_after = (cpu_ticks(ctx.args.server_pid), cpu_ticks(None));
    let first = actions.iter().map(|a| a.sent).min().unwrap_or(start);
    let last = actions.iter().map(|a| a.sent).max().unwrap_or(start);
    let achieved = actions.len().saturating_sub(1) as f64 / (last - first).as_secs_f64().max(1e-9);
    let failed = actions.iter().filter(|a| !a.ok).count();
    let mut errors = BTreeMap::new();
    for a in &actions {
        if let Some(e) = &a.error {
            *errors.entry(e.clone()).or_insert(0) += 1;
        }
    }
    let all = Latencies::new(actions.iter().map(|a| a.latency.map(micros)).collect());
    row(
        "shop",
        "pacing",
        format!(
            "{achieved:>9.0} actions/s of {rate} ({shoppers} shoppers, {} actions)",
            actions.len()
        ),
    );
    for (i, step) in SCRIPT.iter().enumerate() {
        let of_step = Latencies::new(
            actions
                .iter()
                .filter(|a| a.step == i)
                .map(|a| a.latency.map(micros))
                .collect(),
        );
        row(
            "shop",
            &format!("{} -> first reply", step.name),
            of_step.line(&[("p50", 50.0), ("p99", 99.0), ("max", 100.0)]),
        );
    }
    row(
        "shop",
        "any action -> first reply",
        format!(
            "{}  ({failed} of {} without the expected reply)",
            all.line(&[("p50", 50.0), ("p99", 99.0), ("max", 100.0)]),
            actions.len()
        ),
    );
    row("shop", "errors", errors_text(&errors));
    // What an action costs, whatever the machine's speed: the server's CPU, and every core's (server,
    // database, this generator) while the phase ran.
    row(
        "shop",
        "CPU per action",
        format!(
            "server {}  machine {}",
            cpu_ms_per(cpu_before.0, cpu_after.0, actions.len()),
            cpu_ms_per(cpu_before.1, cpu_after.1, actions.len())
        ),
    );
    row("shop", "max server RSS", ctx.rss.show("shop"));
    ctx.summary.push(format!(
        "shop{rate}_actions_per_s={achieved:.0} shop_p50={} shop_p99={} shop_failed={failed}",
        all.show(50.0).replace(' ', ""),
        all.show(99.0).replace(' ', "")
    ));
    ctx.checks.push((
        format!("shop action p99 < 50 ms at {rate}/s"),
        all.show(99.0),
        all.pct(99.0).flatten().is_some_and(|v| v < 50.0) && failed == 0 && errors.is_empty(),
    ));
    let (statements, pg_cpu) = ctx.db_report("shop", db, actions.len(), "action")?;
    if let Some(n) = statements {
        ctx.checks.push((
            "shop statements per action <= 12".into(),
            format!("{n:.1}"),
            n <= 12.0,
        ));
    }
    if let Some(ms) = pg_cpu {
        ctx.checks.push((
            "shop PostgreSQL CPU per action <= 1.5 ms".into(),
            format!("{ms:.2} ms"),
            ms <= 1.5,
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// Ingest: acknowledgements against the database's own commit rate.

/// The one-row insert pgbench repeats, into a table of the generator's own (created and dropped here).
const PGBENCH_TABLE: &str = "loadgen_pgbench_ingest";

/// pgbench's one-row insert at `--pgbench-clients` for `--seconds`: its transactions per second.
fn pgbench_rate(ctx: &Ctx) -> Result<f64> {
    let db = ctx.db.as_ref().context("the ingest phase needs --database-url")?;
    db.psql(&format!(
        "CREATE TABLE IF NOT EXISTS {PGBENCH_TABLE} (id bigserial PRIMARY KEY, body text NOT NULL, \
         received_at timestamptz NOT NULL DEFAULT now())"
    ))?;
    let script = std::env::temp_dir().join(format!("loadgen-{}.sql", ctx.target.run));
    std::fs::write(
        &script,
        format!("INSERT INTO {PGBENCH_TABLE} (body) VALUES ('{{\"object\":\"page\",\"entry\":[]}}');\n"),
    )
    .context("writing the pgbench script")?;
    let clients = ctx.args.pgbench_clients.to_string();
    let seconds = ctx.args.seconds.to_string();
    let out = std::process::Command::new("pgbench")
        .args(["-n", "-c", &clients, "-j", "2", "-T", &seconds, "-f"])
        .arg(&script)
        .arg(&db.url)
        .output()
        .context("running pgbench (is it installed?)");
    let _ = std::fs::remove_file(&script);
    db.psql(&format!("DROP TABLE IF EXISTS {PGBENCH_TABLE}"))?;
    let out = out?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("pgbench failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    text.lines()
        .find_map(|l| {
            let rest = l.trim().strip_prefix("tps = ")?;
            rest.split_whitespace().next()?.parse::<f64>().ok()
        })
        .with_context(|| format!("no tps in pgbench's output: {text}"))
}

async fn phase_ingest(ctx: &mut Ctx) -> Result<()> {
    ctx.rss.phase("ingest");
    let clients = ctx.args.pgbench_clients;
    let tps = pgbench_rate(ctx)?;
    row(
        "ingest",
        &format!("pgbench one-row insert, {clients} clients"),
        format!("{tps:>9.0} commits/s"),
    );
    let db = ctx.db_start()?;
    let seconds = Duration::from_secs(ctx.args.seconds);
    let start = Instant::now();
    // Bounded by time, and by count in case the clock misbehaves.
    let sent = closed_loop(
        &ctx.target,
        ctx.args.ingest_connections,
        10_000_000,
        start + seconds,
        Arc::new(|target: &Target, n: usize| vec![target.psid("i", n)]),
    )
    .await?;
    let (latencies, acked, errors) = (sent.latencies, sent.acked, sent.errors);
    let elapsed = start.elapsed().as_secs_f64();
    let eps = acked.len() as f64 / elapsed;
    let lat = Latencies::of(latencies);
    let ratio = eps / tps.max(1e-9);
    row(
        "ingest",
        &format!("acknowledged, {} connections", ctx.args.ingest_connections),
        format!(
            "{eps:>9.0} events/s, {ratio:.2} of pgbench's  ({} single-event deliveries in {elapsed:.2} s)",
            acked.len()
        ),
    );
    row(
        "ingest",
        "latency per POST",
        lat.line(&[("p50", 50.0), ("p99", 99.0), ("max", 100.0)]),
    );
    row("ingest", "errors", errors_text(&errors));
    ctx.summary.push(format!(
        "pgbench{clients}={tps:.0}tps ingest={eps:.0}ev/s ingest_ratio={ratio:.2} ingest_p99={}",
        lat.show(99.0).replace(' ', "")
    ));
    ctx.checks.push((
        format!("acknowledgements >= 0.8 x pgbench at {clients} clients"),
        format!("{ratio:.2} ({eps:.0} of {tps:.0}/s)"),
        ratio >= 0.8 && errors.is_empty(),
    ));
    ctx.rss.phase("ingest drain");
    let (n, last) = drain(&ctx.log, &acked, Duration::from_secs(ctx.args.drain_secs)).await;
    row(
        "ingest",
        "greetings received",
        format!("{n}/{}{}", acked.len(), processing(start, n, last)),
    );
    ctx.db_report("ingest", db, acked.len(), "event, stored and greeted")?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------------

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<()> {
    let args = Args::parse();
    let base = args.check()?;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let run = run[..12].to_owned();

    println!("threadcart loadgen, run {run}");
    let header: [(&str, String); 16] = [
        ("target", base.clone()),
        ("graph-port", args.graph_port.to_string()),
        ("seconds", args.seconds.to_string()),
        ("concurrency", args.concurrency.to_string()),
        ("events", args.events.to_string()),
        ("batch", args.batch.to_string()),
        ("rate", args.rate.to_string()),
        ("e2e-rate", args.e2e_rate.to_string()),
        ("shop-rate", args.shop_rate.to_string()),
        ("page-id", args.page_id.join(",")),
        (
            "app-secret",
            format!(
                "{} ({} chars)",
                "*".repeat(args.app_secret.len().min(4)),
                args.app_secret.len()
            ),
        ),
        (
            "server-pid",
            args.server_pid.map_or("-".into(), |p| p.to_string()),
        ),
        ("wait-secs", args.wait_secs.to_string()),
        ("drain-secs", args.drain_secs.to_string()),
        (
            "database-url",
            args.database_url.as_deref().map_or("-".into(), shown_url),
        ),
        (
            "phases",
            args.phases
                .iter()
                .map(|p| format!("{p:?}").to_lowercase())
                .collect::<Vec<_>>()
                .join(","),
        ),
    ];
    for (name, value) in &header {
        println!("  {name:<12} {value}");
    }
    println!();

    let log: SharedLog = Arc::default();
    let graph = start_graph(args.graph_port, log.clone())?;
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(2))
        .no_proxy()
        .pool_max_idle_per_host(2048)
        .build()
        .context("HTTP client")?;
    let target = Arc::new(Target {
        base,
        client,
        secret: args.app_secret.as_bytes().to_vec(),
        page_ids: args.page_id.clone(),
        run: run.clone(),
    });
    let rss = RssSampler::start(args.server_pid)?;
    let db = args.database_url.as_deref().map(DbMeter::open).transpose()?;
    let mut ctx = Ctx {
        args,
        target,
        log,
        rss,
        db,
        summary: vec![format!("run={run}")],
        checks: Vec::new(),
    };

    let outcome = phases(&mut ctx).await;
    ctx.rss.stop();
    graph.stop(false).await;
    outcome?;

    let log = lock(&ctx.log);
    row(
        "graph",
        "calls received",
        format!(
            "{} messages ({} duplicate greetings), {} sender actions, {} profile reads, {} other",
            log.messages, log.duplicates, log.actions, log.profiles, log.other
        ),
    );
    if ctx.rss.enabled() {
        let max = ctx.rss.max_mb(None).unwrap_or_default();
        row("memory", "max server RSS", format!("{max:.1} MB"));
        ctx.summary.push(format!("rss_max={max:.1}MB"));
        ctx.checks
            .push(("server RSS < 100 MB".into(), format!("{max:.1} MB"), max < 100.0));
    }
    println!();
    for (what, got, ok) in &ctx.checks {
        row(
            "target",
            what,
            format!("{got:<16} {}", if *ok { "met" } else { "MISSED" }),
        );
    }
    let met = ctx.checks.iter().filter(|c| c.2).count();
    ctx.summary.push(format!("targets={met}/{}", ctx.checks.len()));
    println!();
    println!("SUMMARY {}", ctx.summary.join(" "));
    Ok(())
}

async fn phases(ctx: &mut Ctx) -> Result<()> {
    wait_for_health(&ctx.target, Duration::from_secs(ctx.args.wait_secs)).await?;
    if let Some(key) = ctx.args.api_key.clone() {
        connect_pages(ctx, &key).await?;
    }
    preflight(ctx).await?;
    let phases = ctx.args.phases.clone();
    for phase in phases {
        println!();
        match phase {
            Phase::Ceiling => phase_ceiling(ctx).await?,
            Phase::Ack => phase_ack(ctx).await?,
            Phase::Rate => phase_rate(ctx).await?,
            Phase::E2e => phase_e2e(ctx).await?,
            Phase::Shop => phase_shop(ctx).await?,
            Phase::Ingest => phase_ingest(ctx).await?,
        }
    }
    println!();
    Ok(())
}
