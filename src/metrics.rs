//! Prometheus metrics: requests by route and status, a latency histogram, database pool usage.
//!
//! Every label comes from a fixed set, so the number of series stays bounded whatever callers send:
//! routes are labelled by their pattern (`/v1/products/{product_id}`, or `unmatched`), never by the raw
//! path, and methods by [`method_label`] (a method outside the standard ones is `OTHER`).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use actix_web::http::Method;

use crate::db::PoolUsage;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Debug, Default)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum_micros: u64,
}

#[derive(Debug, Default)]
struct Inner {
    requests: BTreeMap<(&'static str, String, u16), u64>,
    latency: BTreeMap<(&'static str, String), Histogram>,
}

/// The label of an HTTP method: its name for the standard methods, `OTHER` for anything else (a client
/// may send any token as a method).
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

/// The process's request metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    /// Records one finished request; `route` is the matched route's pattern (or `unmatched`), never a
    /// path a client chose.
    pub fn observe(&self, method: &Method, route: &str, status: u16, elapsed: Duration) {
        let method = method_label(method);
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        *inner
            .requests
            .entry((method, route.to_owned(), status))
            .or_default() += 1;
        let h = inner.latency.entry((method, route.to_owned())).or_default();
        let secs = elapsed.as_secs_f64();
        for (count, bound) in h.buckets.iter_mut().zip(BUCKETS) {
            if secs <= bound {
                *count += 1;
            }
        }
        h.count += 1;
        h.sum_micros += u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    }

    /// The Prometheus text exposition of everything recorded, plus the pool gauges.
    pub fn render(&self, pool: PoolUsage) -> String {
        let mut out = String::new();
        out.push_str("# HELP threadcart_http_requests_total HTTP requests by route and status.\n");
        out.push_str("# TYPE threadcart_http_requests_total counter\n");
        if let Ok(inner) = self.inner.lock() {
            for ((method, route, status), n) in &inner.requests {
                let _ = writeln!(
                    out,
                    "threadcart_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}",
                    escape(route)
                );
            }
            out.push_str("# HELP threadcart_http_request_duration_seconds HTTP request latency.\n");
            out.push_str("# TYPE threadcart_http_request_duration_seconds histogram\n");
            for ((method, route), h) in &inner.latency {
                let labels = format!("method=\"{method}\",route=\"{}\"", escape(route));
                for (count, bound) in h.buckets.iter().zip(BUCKETS) {
                    let _ = writeln!(
                        out,
                        "threadcart_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {count}"
                    );
                }
                let _ = writeln!(
                    out,
                    "threadcart_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                    h.count
                );
                let _ = writeln!(
                    out,
                    "threadcart_http_request_duration_seconds_sum{{{labels}}} {}.{:06}",
                    h.sum_micros / 1_000_000,
                    h.sum_micros % 1_000_000
                );
                let _ = writeln!(
                    out,
                    "threadcart_http_request_duration_seconds_count{{{labels}}} {}",
                    h.count
                );
            }
        }
        out.push_str("# HELP threadcart_db_pool_connections Open database connections.\n");
        out.push_str("# TYPE threadcart_db_pool_connections gauge\n");
        let _ = writeln!(out, "threadcart_db_pool_connections {}", pool.connections);
        out.push_str("# HELP threadcart_db_pool_idle_connections Idle database connections.\n");
        out.push_str("# TYPE threadcart_db_pool_idle_connections gauge\n");
        let _ = writeln!(out, "threadcart_db_pool_idle_connections {}", pool.idle);
        out.push_str("# HELP threadcart_db_pool_max_connections The pool's maximum size.\n");
        out.push_str("# TYPE threadcart_db_pool_max_connections gauge\n");
        let _ = writeln!(out, "threadcart_db_pool_max_connections {}", pool.max);
        out
    }
}

fn escape(label: &str) -> String {
    label.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_request_shows_in_the_counter_and_every_bucket_above_its_latency() {
        let m = Metrics::default();
        m.observe(&Method::GET, "/healthz", 200, Duration::from_millis(30));
        let text = m.render(PoolUsage {
            connections: 2,
            idle: 1,
            max: 8,
        });
        assert!(
            text.contains(
                "threadcart_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 1"
            )
        );
        assert!(text.contains("le=\"0.025\"} 0"));
        assert!(text.contains("le=\"0.05\"} 1"));
        assert!(text.contains("le=\"+Inf\"} 1"));
        assert!(text.contains("threadcart_db_pool_max_connections 8"));
    }

    #[test]
    fn methods_outside_the_standard_ones_share_one_label() {
        for made_up in ["FOO", "get", "PROPFIND"] {
            assert_eq!(
                method_label(&Method::from_bytes(made_up.as_bytes()).unwrap()),
                "OTHER"
            );
        }
        assert_eq!(method_label(&Method::PATCH), "PATCH");
    }
}
