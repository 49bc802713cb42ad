//! One typed configuration, read from the environment once at start (see CONTRACT.md).
//!
//! Secrets are wrapped in `SecretString`: their `Debug` prints `[REDACTED]`, so logging the config is safe.

use std::net::SocketAddr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::secrets::random_secret;

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines, for a terminal.
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Everything the service reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// `sqlite://PATH` or `postgres://...`.
    pub database_url: SecretString,
    /// Largest number of pooled database connections.
    pub db_max_connections: u32,
    /// Listen address.
    pub addr: SocketAddr,
    /// Base of the links handed out (Stripe success and cancel pages).
    pub public_url: String,
    /// HS256 key for access tokens.
    pub jwt_secret: SecretString,
    /// True when no `THREADCART_JWT_SECRET` was given and a random one was made.
    pub jwt_secret_is_ephemeral: bool,
    /// Lifetime of access tokens.
    pub token_ttl: Duration,
    /// Failed `/v1/auth/token` attempts allowed per client address, and per key prefix, and window.
    pub auth_max_failures: u32,
    /// The window of that limit.
    pub auth_failure_window: Duration,
    /// Refused webhook deliveries (bad or missing signature, wrong verify token) allowed per client
    /// address and window, then 429.
    pub webhook_max_rejects: u32,
    /// The window of that limit.
    pub webhook_reject_window: Duration,
    /// The header a trusted reverse proxy puts the client's address in (`X-Forwarded-For`); none: the
    /// connection's peer address is the client's (see `http::client_ip`).
    pub trusted_proxy_header: Option<actix_web::http::header::HeaderName>,
    /// Encrypts Page and Conversions API tokens at rest (`THREADCART_SECRETS_KEY`); none: SQLite keeps a
    /// key file next to the database, PostgreSQL refuses to start (see [`Config::secrets`]).
    pub secrets_key: Option<crate::secrets::Key>,
    /// The key being rotated away from (`THREADCART_SECRETS_KEY_PREVIOUS`): still opens what it sealed.
    pub secrets_key_previous: Option<crate::secrets::Key>,
    /// Verifies `X-Hub-Signature-256`; webhooks are refused until set.
    pub messenger_app_secret: Option<SecretString>,
    /// The GET handshake's `hub.verify_token`.
    pub messenger_verify_token: Option<SecretString>,
    /// Meta Graph API base URL.
    pub graph_api_base: String,
    /// True when `GRAPH_API_BASE` was given (dev mode then leaves it alone).
    pub graph_api_base_given: bool,
    /// Meta Graph API version.
    pub graph_api_version: String,
    /// Stripe secret key; checkout is refused until set.
    pub stripe_secret_key: Option<SecretString>,
    /// Verifies `Stripe-Signature`; Stripe webhooks are refused until set.
    pub stripe_webhook_secret: Option<SecretString>,
    /// Stripe API base URL.
    pub stripe_api_base: String,
    /// Log format.
    pub log_format: LogFormat,
    /// How long in-flight requests get to finish after SIGTERM.
    pub shutdown_timeout: Duration,
    /// How long the bot stays quiet after a human answered from the Page Inbox.
    pub human_idle: Duration,
    /// The first retry delay of failed events and sends (doubled each attempt).
    pub retry_base: Duration,
    /// How long a Stripe Checkout Session (and the stock it holds) stays open: 30 minutes to 24 hours.
    pub checkout_ttl: Duration,
    /// How often unpaid orders past their expiry are looked for.
    pub sweep_interval: Duration,
    /// How long a Stripe call may take before its answer is treated as lost.
    pub stripe_timeout: Duration,
    /// How many shoppers' events, and how many threads' sends, each process works on at once.
    pub worker_concurrency: usize,
    /// Dev mode (`serve --dev`, or `THREADCART_DEV=true`): the thread simulator and local stand-ins for
    /// Meta and Stripe, see `crate::dev`.
    pub dev: bool,
}

/// A variable that is present but unusable.
#[derive(Debug, thiserror::Error)]
#[error("{name}: {reason}")]
pub struct ConfigError {
    name: &'static str,
    reason: String,
}

impl ConfigError {
    fn new(name: &'static str, reason: impl Into<String>) -> Self {
        ConfigError {
            name,
            reason: reason.into(),
        }
    }
}

/// Reads variables through a lookup function, so tests can pass their own environment.
struct Env<F: Fn(&str) -> Option<String>>(F);

impl<F: Fn(&str) -> Option<String>> Env<F> {
    fn get(&self, name: &str) -> Option<String> {
        (self.0)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn or(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or_else(|| default.to_owned())
    }

    fn secret(&self, name: &str) -> Option<SecretString> {
        self.get(name).map(SecretString::from)
    }

    fn number<T: std::str::FromStr>(&self, name: &'static str, default: T) -> Result<T, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| ConfigError::new(name, format!("`{v}` is not a valid number"))),
        }
    }
}

fn base_url(name: &'static str, value: String) -> Result<String, ConfigError> {
    if !(value.starts_with("http://") || value.starts_with("https://")) {
        return Err(ConfigError::new(name, "must be an http:// or https:// URL"));
    }
    Ok(value.trim_end_matches('/').to_owned())
}

impl Config {
    /// The keys that seal the tokens stored in the database (see [`crate::secrets`]).
    pub fn secrets(&self) -> anyhow::Result<crate::secrets::Secrets> {
        crate::secrets::Secrets::for_database(
            self.secrets_key.as_ref(),
            self.secrets_key_previous.as_ref(),
            self.database_url(),
        )
    }

    /// The current secrets key: `THREADCART_SECRETS_KEY`, else SQLite's key file (made on first use).
    pub fn resolved_secrets_key(&self) -> anyhow::Result<crate::secrets::Key> {
        crate::secrets::key_for_database(self.secrets_key.as_ref(), self.database_url())
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let env = Env(lookup);
        let addr_text = env.or("THREADCART_ADDR", "127.0.0.1:8080");
        let addr = addr_text.parse().map_err(|_| {
            ConfigError::new(
                "THREADCART_ADDR",
                format!("`{addr_text}` is not an address such as 127.0.0.1:8080"),
            )
        })?;
        let (jwt_secret, jwt_secret_is_ephemeral) = match env.get("THREADCART_JWT_SECRET") {
            Some(s) if s.len() < 32 => {
                return Err(ConfigError::new(
                    "THREADCART_JWT_SECRET",
                    "must be at least 32 characters (for example: openssl rand -hex 32)",
                ));
            }
            Some(s) => (SecretString::from(s), false),
            None => (SecretString::from(random_secret()), true),
        };
        let log_format = match env.or("THREADCART_LOG_FORMAT", "pretty").as_str() {
            "pretty" => LogFormat::Pretty,
            "json" => LogFormat::Json,
            other => {
                return Err(ConfigError::new(
                    "THREADCART_LOG_FORMAT",
                    format!("`{other}` is not one of pretty, json"),
                ));
            }
        };
        let database_url = env.or("DATABASE_URL", "sqlite://threadcart.db");
        let key = |name: &'static str| {
            env.get(name)
                .map(|text| {
                    crate::secrets::Key::parse(&text).map_err(|e| ConfigError::new(name, e.to_string()))
                })
                .transpose()
        };
        let secrets_key = key("THREADCART_SECRETS_KEY")?;
        let secrets_key_previous = key("THREADCART_SECRETS_KEY_PREVIOUS")?;
        let trusted_proxy_header = match env.get("THREADCART_TRUSTED_PROXY_HEADER") {
            None => None,
            Some(name) => Some(
                actix_web::http::header::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                    ConfigError::new(
                        "THREADCART_TRUSTED_PROXY_HEADER",
                        format!("`{name}` is not a header name such as X-Forwarded-For"),
                    )
                })?,
            ),
        };
        Ok(Config {
            database_url: SecretString::from(database_url),
            db_max_connections: env.number("THREADCART_DB_MAX_CONNECTIONS", 10)?,
            addr,
            public_url: base_url(
                "THREADCART_PUBLIC_URL",
                env.or("THREADCART_PUBLIC_URL", &format!("http://{addr}")),
            )?,
            jwt_secret,
            jwt_secret_is_ephemeral,
            token_ttl: Duration::from_secs(15 * 60),
            auth_max_failures: env.number("THREADCART_AUTH_MAX_FAILURES", 10)?,
            auth_failure_window: Duration::from_secs(env.number("THREADCART_AUTH_FAILURE_WINDOW_SECS", 300)?),
            webhook_max_rejects: env.number("THREADCART_WEBHOOK_MAX_REJECTS", 60)?,
            webhook_reject_window: Duration::from_secs(
                env.number("THREADCART_WEBHOOK_REJECT_WINDOW_SECS", 300)?,
            ),
            trusted_proxy_header,
            secrets_key,
            secrets_key_previous,
            messenger_app_secret: env.secret("MESSENGER_APP_SECRET"),
            messenger_verify_token: env.secret("MESSENGER_VERIFY_TOKEN"),
            graph_api_base: base_url(
                "GRAPH_API_BASE",
                env.or("GRAPH_API_BASE", "https://graph.facebook.com"),
            )?,
            graph_api_base_given: env.get("GRAPH_API_BASE").is_some(),
            graph_api_version: env.or("GRAPH_API_VERSION", "v25.0"),
            stripe_secret_key: env.secret("STRIPE_SECRET_KEY"),
            stripe_webhook_secret: env.secret("STRIPE_WEBHOOK_SECRET"),
            stripe_api_base: base_url(
                "STRIPE_API_BASE",
                env.or("STRIPE_API_BASE", "https://api.stripe.com"),
            )?,
            log_format,
            shutdown_timeout: Duration::from_secs(env.number("THREADCART_SHUTDOWN_TIMEOUT_SECS", 30)?),
            human_idle: Duration::from_secs(60 * env.number("THREADCART_HUMAN_IDLE_MINUTES", 30)?),
            retry_base: Duration::from_millis(env.number("THREADCART_RETRY_BASE_MS", 1000)?),
            checkout_ttl: {
                let minutes: u64 = env.number("THREADCART_CHECKOUT_MINUTES", 30)?;
                if !(30..=1440).contains(&minutes) {
                    return Err(ConfigError::new(
                        "THREADCART_CHECKOUT_MINUTES",
                        "must be between 30 and 1440 (Stripe keeps a Checkout Session open 30 minutes to 24 hours)",
                    ));
                }
                Duration::from_secs(minutes * 60)
            },
            sweep_interval: Duration::from_secs(env.number("THREADCART_SWEEP_SECS", 20)?.max(1)),
            stripe_timeout: Duration::from_secs(env.number("STRIPE_TIMEOUT_SECS", 20)?.clamp(1, 120)),
            worker_concurrency: env.number("THREADCART_WORKER_CONCURRENCY", 4)?.clamp(1, 64),
            dev: match env.or("THREADCART_DEV", "false").as_str() {
                "true" | "1" => true,
                "false" | "0" => false,
                other => {
                    return Err(ConfigError::new(
                        "THREADCART_DEV",
                        format!("`{other}` is not one of true, false"),
                    ));
                }
            },
        })
    }

    /// The database URL (it may hold a password: never log it).
    pub fn database_url(&self) -> &str {
        self.database_url.expose_secret()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn defaults_serve_sqlite_on_localhost() {
        let c = config(&[]).unwrap();
        assert_eq!(c.database_url(), "sqlite://threadcart.db");
        assert_eq!(c.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(c.public_url, "http://127.0.0.1:8080");
        assert!(c.jwt_secret_is_ephemeral);
        assert!(c.messenger_app_secret.is_none());
    }

    #[test]
    fn a_short_jwt_secret_is_refused_with_the_variable_name() {
        let err = config(&[("THREADCART_JWT_SECRET", "short")]).unwrap_err();
        assert!(err.to_string().starts_with("THREADCART_JWT_SECRET"));
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let c = config(&[
            (
                "THREADCART_JWT_SECRET",
                "a-very-long-secret-that-must-not-leak-0123456789",
            ),
            ("STRIPE_SECRET_KEY", "sk_test_leakme"),
            ("DATABASE_URL", "postgres://user:hunter2@db/threadcart"),
        ])
        .unwrap();
        let printed = format!("{c:?}");
        assert!(!printed.contains("must-not-leak"));
        assert!(!printed.contains("sk_test_leakme"));
        assert!(!printed.contains("hunter2"));
    }

    #[test]
    fn a_trusted_proxy_header_is_read_as_a_header_name() {
        let c = config(&[("THREADCART_TRUSTED_PROXY_HEADER", "X-Forwarded-For")]).unwrap();
        assert_eq!(c.trusted_proxy_header.unwrap().as_str(), "x-forwarded-for");
        assert!(config(&[("THREADCART_TRUSTED_PROXY_HEADER", "not a header")]).is_err());
        assert!(config(&[]).unwrap().trusted_proxy_header.is_none());
    }

    #[test]
    fn a_secrets_key_must_be_32_bytes_of_base64_and_is_never_printed() {
        let key = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=";
        let c = config(&[("THREADCART_SECRETS_KEY", key)]).unwrap();
        assert!(c.secrets_key.is_some() && c.secrets_key_previous.is_none());
        assert!(!format!("{c:?}").contains(key));
        let err = config(&[("THREADCART_SECRETS_KEY_PREVIOUS", "c2hvcnQ=")]).unwrap_err();
        assert!(err.to_string().starts_with("THREADCART_SECRETS_KEY_PREVIOUS"));
    }

    #[test]
    fn an_unknown_log_format_is_refused() {
        assert!(config(&[("THREADCART_LOG_FORMAT", "xml")]).is_err());
    }
}
