//! Brute-force protection for `/v1/auth/token`: failed attempts are counted per client address in a
//! fixed window; past the limit, the address is refused with 429 until the window ends.
//!
//! The counts live in this process: with several instances each enforces its own limit, which still
//! bounds guessing to a few attempts per window per instance against a 256-bit key space.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Addresses kept before expired windows are swept.
const SWEEP_AT: usize = 10_000;

/// Counts failures per address.
#[derive(Debug)]
pub struct FailureLimiter {
    max_failures: u32,
    window: Duration,
    seen: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl FailureLimiter {
    /// Allows `max_failures` per `window` per address.
    pub fn new(max_failures: u32, window: Duration) -> Self {
        FailureLimiter {
            max_failures,
            window,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Starts an attempt from `ip`: `Err(seconds to wait)` when the address used up its failures in the
    /// current window. Otherwise the attempt counts as a failure from now on, until [`Self::forgive`]
    /// gives it back: checking and counting in one step, so a burst of concurrent attempts cannot all
    /// pass the check before the first of them is counted.
    pub fn begin(&self, ip: IpAddr) -> Result<(), u64> {
        let now = Instant::now();
        let Ok(mut seen) = self.seen.lock() else {
            return Ok(());
        };
        if seen.len() >= SWEEP_AT {
            let window = self.window;
            seen.retain(|_, (start, _)| now < *start + window);
        }
        let entry = seen.entry(ip).or_insert((now, 0));
        if now >= entry.0 + self.window {
            *entry = (now, 0);
        }
        if entry.1 >= self.max_failures {
            let wait = (entry.0 + self.window).saturating_duration_since(now);
            return Err(wait.as_secs().max(1));
        }
        entry.1 += 1;
        Ok(())
    }

    /// Gives back an attempt [`Self::begin`] counted, when it did not fail (a valid key).
    pub fn forgive(&self, ip: IpAddr) {
        let Ok(mut seen) = self.seen.lock() else {
            return;
        };
        if let Some(entry) = seen.get_mut(&ip) {
            entry.1 = entry.1.saturating_sub(1);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_refused_after_its_failures_and_others_are_not() {
        let limiter = FailureLimiter::new(3, Duration::from_secs(60));
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for _ in 0..3 {
            assert!(limiter.begin(a).is_ok());
        }
        assert!(limiter.begin(a).is_err());
        assert!(limiter.begin(b).is_ok());
    }

    #[test]
    fn forgiven_attempts_do_not_count() {
        let limiter = FailureLimiter::new(2, Duration::from_secs(60));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..5 {
            assert!(limiter.begin(a).is_ok());
            limiter.forgive(a);
        }
        assert!(limiter.begin(a).is_ok());
        assert!(limiter.begin(a).is_ok());
        assert!(limiter.begin(a).is_err());
    }

    #[test]
    fn attempts_in_flight_count_before_they_end() {
        let limiter = FailureLimiter::new(2, Duration::from_secs(60));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let started = (0..10).filter(|_| limiter.begin(a).is_ok()).count();
        assert_eq!(started, 2);
    }

    #[test]
    fn the_window_resets_the_count() {
        let limiter = FailureLimiter::new(1, Duration::from_millis(1));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(limiter.begin(a).is_ok());
        std::thread::sleep(Duration::from_millis(5));
        assert!(limiter.begin(a).is_ok());
    }
}
