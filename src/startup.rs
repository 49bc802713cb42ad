//! Builds the actix application from a [`Config`] and runs it until SIGTERM or Ctrl-C.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{App, HttpMessage, HttpServer, middleware, web};
use tracing_actix_web::{RequestId, TracingLogger};

use crate::auth::TokenIssuer;
use crate::channels::meta::graph::GraphClient;
use crate::config::Config;
use crate::db::Db;
use crate::http::AppState;
use crate::jobs::{Wakers, WorkerContext, Workers};
use crate::metrics::Metrics;
use crate::telemetry::RequestSpan;

/// A bound, ready-to-run server.
pub struct Application {
    port: u16,
    server: Server,
    workers: Workers,
}

impl Application {
    /// Connects the database (migrating it), binds the listener, and builds the server.
    pub fn build(config: Config, db: Db) -> anyhow::Result<Application> {
        if config.jwt_secret_is_ephemeral {
            tracing::warn!(
                "THREADCART_JWT_SECRET is not set: using a random key, so access tokens end with this process \
                 and are not shared with other instances"
            );
        }
        let secrets = config.secrets()?;
        // Tokens stored in plaintext before encryption, or sealed with the key being rotated away from,
        // are sealed with the current key; a token neither key opens stops the start here.
        let resealed = db
            .run_blocking(|conn| {
                crate::merchants::pages::reseal_tokens(conn, &secrets).map_err(anyhow::Error::from)
            })
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        if resealed > 0 {
            tracing::info!(
                tokens = resealed,
                "stored tokens encrypted with THREADCART_SECRETS_KEY"
            );
        }
        let listener = TcpListener::bind(config.addr)
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.addr))?;
        let port = listener.local_addr()?.port();
        // Dev mode points Graph (and, without keys, Stripe) at the server itself: it needs the bound port.
        let (config, dev) = if config.dev {
            let (config, dev) = crate::dev::wire(config, port)?;
            (config, Some(web::Data::new(dev)))
        } else {
            (config, None)
        };
        // Events stored by a version before the neutral inbox get their neutral form before any worker
        // reads them.
        let filled = db.query_blocking(|conn| {
            crate::conversations::inbox::fill_neutral_forms(
                conn,
                crate::channels::meta::webhook::decode_stored,
            )
        })?;
        if filled > 0 {
            tracing::info!(events = filled, "pending events given their neutral form");
        }
        let graph = GraphClient::new(
            &config.graph_api_base,
            &config.graph_api_version,
            config.messenger_app_secret.clone(),
        )?;
        let wakers = Arc::new(Wakers::default());
        let stripe = match &config.stripe_secret_key {
            Some(key) => Some(
                crate::checkout::stripe::StripeClient::with_timeout(
                    key,
                    &config.stripe_api_base,
                    config.stripe_timeout,
                )
                .map_err(|e| anyhow::anyhow!("STRIPE_SECRET_KEY / STRIPE_API_BASE: {e}"))?,
            ),
            None => None,
        };
        // Delivery writers: each holds a pooled connection only while it writes a group.
        let writers = (config.db_max_connections as usize / 4).clamp(2, 8);
        let ingest = crate::conversations::ingest::Ingest::start(db.clone(), writers);
        let state = web::Data::new(AppState {
            ingest,
            stripe: stripe.clone(),
            graph: graph.clone(),
            secrets: secrets.clone(),
            wakers: wakers.clone(),
            tokens: TokenIssuer::new(&config.jwt_secret, config.token_ttl),
            metrics: Metrics::default(),
            db,
            config: Arc::new(config),
        });
        let shutdown = state.config.shutdown_timeout.as_secs();
        // What the access-token extractor and the request span read, apart from the handlers' state.
        let verifier = web::Data::new(crate::auth::Verifier {
            tokens: state.tokens.clone(),
            db: state.db.clone(),
        });
        let config = web::Data::from(state.config.clone());
        let server = HttpServer::new({
            let state = state.clone();
            move || {
                let dev = dev.clone();
                App::new()
                    .app_data(state.clone())
                    .app_data(verifier.clone())
                    .app_data(config.clone())
                    .configure(crate::http::configure)
                    .configure(move |cfg| {
                        if let Some(dev) = dev {
                            cfg.app_data(dev);
                            crate::dev::configure(cfg);
                        }
                    })
                    .default_service(web::to(crate::http::not_found))
                    .wrap(middleware::from_fn(observe))
                    .wrap(TracingLogger::<RequestSpan>::new())
            }
        })
        .shutdown_timeout(shutdown)
        .listen(listener)?
        .run();
        let workers = Workers::spawn(Arc::new(WorkerContext {
            db: state.db.clone(),
            graph,
            config: state.config.clone(),
            wakers,
            owner: format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()),
            stripe,
            secrets,
        }));
        tracing::info!(
            port,
            db.backend = state.db.backend().name(),
            "threadcart listening"
        );
        Ok(Application {
            port,
            server,
            workers,
        })
    }

    /// The port actually bound (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGTERM or Ctrl-C, lets in-flight requests finish, then stops the workers after
    /// their current item (what they had not started stays queued in the database).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        self.workers.shutdown().await;
        served
    }
}

/// Adds the request id to every response and records the request in the metrics.
async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody + 'static>, actix_web::Error> {
    let started = Instant::now();
    let request_id = req.extensions().get::<RequestId>().map(|id| id.to_string());
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let method = req.method().clone();
    let mut res = next.call(req).await?;
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let elapsed = started.elapsed();
    let status = res.status().as_u16();
    if let Some(state) = state {
        state.metrics.observe(&method, &route, status, elapsed);
    }
    tracing::info!(
        http.status = status,
        duration_ms = elapsed.as_millis() as u64,
        "request finished"
    );
    if let Some(id) = request_id.and_then(|id| HeaderValue::from_str(&id).ok()) {
        res.headers_mut()
            .insert(HeaderName::from_static("x-request-id"), id);
    }
    Ok(res)
}
