//! Rate limits shared by every instance: events (a failed token exchange, a refused webhook ...) are
//! counted per bucket and key in the `rate_limits` table, in a fixed window that starts with the first
//! event and restarts once it has ended. One statement counts and answers, so concurrent events, in
//! one process or many, can never all slip under the limit.
//!
//! ```ignore
//! match rate_limit::hit(conn, "webchat_message", &visitor, 30, Duration::from_secs(60))? {
//!     Verdict::Allowed => { /* go on */ }
//!     Verdict::RetryAfter(secs) => return Err(ApiError::too_many_requests(secs)),
//! }
//! ```

use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::dsl::case_when;
use diesel::prelude::*;
use diesel::sql_types::{Integer, Timestamp};

use crate::db::schema::rate_limits;
use crate::db::{DbConnection, now};

/// The longest key stored (longer ones are cut: a key is a client address, a prefix, an id).
const MAX_KEY_CHARS: usize = 100;

/// One in this many hits also sweeps the windows that have ended.
const SWEEP_ONE_IN: u8 = 64;

/// What a counted event may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the limit.
    Allowed,
    /// Over the limit: the seconds until the window ends (at least 1).
    RetryAfter(u64),
}

/// Counts one event for `key` in `bucket` and says whether it is within `limit` events per `window`.
/// Events over the limit are counted too (they do not lengthen the window).
pub fn hit(
    conn: &mut DbConnection,
    bucket: &str,
    key: &str,
    limit: u32,
    window: Duration,
) -> QueryResult<Verdict> {
    let at = now();
    let window = chrono::Duration::from_std(window).unwrap_or(chrono::Duration::days(1));
    let key: String = key.chars().take(MAX_KEY_CHARS).collect();
    let ended = rate_limits::resets_at.le(at);
    let upsert = diesel::insert_into(rate_limits::table)
        .values((
            rate_limits::bucket.eq(bucket),
            rate_limits::key.eq(&key),
            rate_limits::hits.eq(1),
            rate_limits::resets_at.eq(at + window),
        ))
        .on_conflict((rate_limits::bucket, rate_limits::key))
        .do_update()
        .set((
            rate_limits::hits.eq(case_when::<_, _, Integer>(ended, 1)
                .when(rate_limits::hits.ge(i32::MAX), rate_limits::hits)
                .otherwise(rate_limits::hits + 1)),
            rate_limits::resets_at
                .eq(case_when::<_, _, Timestamp>(ended, at + window).otherwise(rate_limits::resets_at)),
        ))
        .returning((rate_limits::hits, rate_limits::resets_at));
    let (hits, resets_at): (i32, NaiveDateTime) = crate::per_backend!(conn, |c| upsert.get_result(c))?;
    if crate::secrets::random_bytes::<1>()[0].is_multiple_of(SWEEP_ONE_IN) {
        sweep(conn, at)?;
    }
    Ok(verdict(hits, limit, resets_at - at))
}

/// Within the limit, or the seconds left in the window.
fn verdict(hits: i32, limit: u32, left: chrono::Duration) -> Verdict {
    if u32::try_from(hits).is_ok_and(|h| h <= limit) {
        Verdict::Allowed
    } else {
        // Whole seconds, rounded up: retrying after them finds the window ended.
        let millis = u64::try_from(left.num_milliseconds()).unwrap_or(0);
        Verdict::RetryAfter(millis.div_ceil(1000).max(1))
    }
}

/// Forgets the windows that ended before `at`.
pub fn sweep(conn: &mut DbConnection, at: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(rate_limits::table.filter(rate_limits::resets_at.lt(at))).execute(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_up_to_the_limit_are_allowed_and_the_next_wait_for_the_window() {
        let left = chrono::Duration::milliseconds(41_200);
        assert_eq!(verdict(1, 3, left), Verdict::Allowed);
        assert_eq!(verdict(3, 3, left), Verdict::Allowed);
        assert_eq!(verdict(4, 3, left), Verdict::RetryAfter(42));
        assert_eq!(verdict(4, 3, chrono::Duration::zero()), Verdict::RetryAfter(1));
    }
}
