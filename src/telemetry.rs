//! Logging: `RUST_LOG` filters, `THREADCART_LOG_FORMAT` picks pretty or JSON lines, always on stderr
//! (so the CLI's JSON on stdout stays clean).
//!
//! Each request's log lines carry its path and route pattern, never its query string: tokens travel
//! there (the webhook handshake's `hub.verify_token`, a Graph call's `access_token` and `appsecret_proof`
//! when dev mode answers Meta's API itself, whatever a client puts in a URL).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::{HttpMessage, web};
use tracing::Span;
use tracing_actix_web::{DefaultRootSpanBuilder, RequestId, RootSpanBuilder};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogFormat;

/// Installs the global subscriber once; later calls are ignored (tests call it many times).
pub fn init(format: LogFormat, default_filter: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Pretty => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    // A subscriber already set (by a test harness) is fine.
    let _ = result;
}

/// The span every request's log lines belong to: request id, method (from a fixed list, as in the
/// metrics), route pattern, path without the query string, the client's address (see
/// [`crate::http::client_ip`]) and, once answered, the status.
pub struct RequestSpan;

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let route = request.match_pattern().unwrap_or_else(|| "unmatched".to_owned());
        let trusted = request
            .app_data::<web::Data<crate::config::Config>>()
            .and_then(|config| config.trusted_proxy_header.clone());
        let client = crate::http::client_ip(request.headers(), request.peer_addr(), trusted.as_ref());
        let request_id = request
            .extensions()
            .get::<RequestId>()
            .map(ToString::to_string)
            .unwrap_or_default();
        tracing::info_span!(
            "HTTP request",
            request_id = %request_id,
            http.method = crate::metrics::method_label(request.method()),
            http.route = %route,
            http.path = %request.path(),
            client.ip = %client,
            http.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
            exception.message = tracing::field::Empty,
            exception.details = tracing::field::Empty,
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, actix_web::Error>) {
        DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}
