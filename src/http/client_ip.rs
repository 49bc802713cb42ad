//! The client's address, for rate limits and logs: the connection's peer, or, behind a reverse proxy
//! named by `THREADCART_TRUSTED_PROXY_HEADER`, the address that proxy saw.
//!
//! Only the configured header is read (never `X-Forwarded-For` or `Forwarded` by default: any client can
//! send them), and only its right-most entry: a proxy appends the address it saw to whatever the client
//! sent, so the entries to its left are the client's own words. Without the header (a request that did
//! not come through the proxy), or when its last entry is no address, the peer address is used.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use actix_web::http::header::{HeaderMap, HeaderName};

/// The client's address: the right-most entry of the last `trusted` header when there is one and it is
/// an address, else the peer's (`0.0.0.0` when the connection has none, as in some tests).
pub fn client_ip(headers: &HeaderMap, peer: Option<SocketAddr>, trusted: Option<&HeaderName>) -> IpAddr {
    trusted
        .and_then(|name| headers.get_all(name).last())
        .and_then(|value| value.to_str().ok())
        .and_then(|list| list.rsplit(',').next())
        .and_then(parse_entry)
        .or_else(|| peer.map(|p| p.ip()))
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// An address as proxies write it: `203.0.113.7`, `203.0.113.7:4711`, `2001:db8::1` or `[2001:db8::1]:4711`.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use actix_web::http::header::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn peer() -> Option<SocketAddr> {
        Some("10.0.0.9:51000".parse().unwrap())
    }

    fn xff() -> HeaderName {
        HeaderName::from_static("x-forwarded-for")
    }

    #[test]
    fn without_a_trusted_header_forwarding_headers_are_ignored() {
        let h = headers(&[
            ("x-forwarded-for", "203.0.113.7"),
            ("forwarded", "for=203.0.113.7"),
        ]);
        assert_eq!(client_ip(&h, peer(), None).to_string(), "10.0.0.9");
    }

    #[test]
    fn the_right_most_entry_of_the_trusted_header_is_the_client() {
        let h = headers(&[("x-forwarded-for", "1.1.1.1, 198.51.100.4,203.0.113.7")]);
        assert_eq!(client_ip(&h, peer(), Some(&xff())).to_string(), "203.0.113.7");
    }

    #[test]
    fn a_header_repeated_counts_its_last_line() {
        let h = headers(&[("x-forwarded-for", "1.1.1.1"), ("x-forwarded-for", "203.0.113.7")]);
        assert_eq!(client_ip(&h, peer(), Some(&xff())).to_string(), "203.0.113.7");
    }

    #[test]
    fn ports_and_brackets_are_taken_off() {
        for (entry, ip) in [
            ("203.0.113.7:4711", "203.0.113.7"),
            ("[2001:db8::1]:443", "2001:db8::1"),
            ("2001:db8::1", "2001:db8::1"),
        ] {
            let h = headers(&[("x-forwarded-for", entry)]);
            assert_eq!(client_ip(&h, peer(), Some(&xff())).to_string(), ip, "{entry}");
        }
    }

    #[test]
    fn a_missing_or_unreadable_trusted_header_falls_back_to_the_peer() {
        assert_eq!(
            client_ip(&headers(&[]), peer(), Some(&xff())).to_string(),
            "10.0.0.9"
        );
        let h = headers(&[("x-forwarded-for", "203.0.113.7, unknown")]);
        assert_eq!(client_ip(&h, peer(), Some(&xff())).to_string(), "10.0.0.9");
    }
}
