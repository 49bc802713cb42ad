//! Times the funnel report on seeded data and prints the figures.
//!
//! It seeds a merchant "Reports bench" (replacing the one a previous run left, so it is rerunnable)
//! with `EVENTS` funnel events (default 100,000; 1,000,000 is the PostgreSQL target) over the last 30
//! days, across 500 ads and 5,000 threads, with multi-row INSERTs, then builds the daily rollup and
//! times a 30-day funnel grouped by ad: from the rollup (the merchant's timezone, what the API does)
//! and from the events (another timezone). `REUSE=1` times the data a previous run seeded.
//!
//! ```text
//! DATABASE_URL=sqlite:///tmp/bench.db cargo run --release --example reports_bench
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench EVENTS=1000000 \
//!   cargo run --release --features postgres --example reports_bench
//! ```

use std::time::Instant;

use chrono::{Duration, TimeZone};
use diesel::prelude::*;
use threadcart::attribution::{self, report};
use threadcart::conversations;
use threadcart::db::schema::{funnel_events, merchants};
use threadcart::db::{self, Db, DbUuid, now};
use threadcart::engine::Referral;
use threadcart::money::Currency;
use uuid::Uuid;

const ADS: usize = 500;
const THREADS: usize = 5_000;
const NAME: &str = "Reports bench";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url =
        std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite:///tmp/threadcart-reports-bench.db".into());
    let events: usize = std::env::var("EVENTS")
        .ok()
        .and_then(|e| e.parse().ok())
        .unwrap_or(100_000);
    let database = Db::connect(&url, 2)?;
    let backend = database.backend().name();
    database.run_blocking(|conn| db::run_migrations(conn).map(|_| ()))?;

    let reuse: Option<threadcart::kernel::MerchantId> = if std::env::var("REUSE").is_ok() {
        database.query_blocking(|conn| {
            merchants::table
                .filter(merchants::name.eq(NAME))
                .select(merchants::id)
                .first(conn)
                .optional()
        })?
    } else {
        None
    };
    let merchant_id = match reuse {
        Some(id) => id,
        None => {
            let started = Instant::now();
            let merchant_id = database.query_blocking(|conn| seed(conn, events))?;
            println!(
                "{backend}: seeded {events} events, {THREADS} threads, {ADS} ads in {:.1?}",
                started.elapsed()
            );
            let started = Instant::now();
            database.query_blocking(|conn| attribution::rebuild_rollup(conn, merchant_id))?;
            println!("{backend}: rollup built in {:.1?}", started.elapsed());
            // Fresh statistics, as autovacuum (PostgreSQL) or a periodic ANALYZE (SQLite) would keep.
            database.query_blocking(|conn| diesel::sql_query("ANALYZE").execute(conn).map(|_| ()))?;
            merchant_id
        }
    };

    let today = chrono_tz::Europe::Paris.from_utc_datetime(&now()).date_naive();
    for (label, tz) in [
        ("rollup (merchant timezone)", chrono_tz::Europe::Paris),
        ("events (UTC)", chrono_tz::UTC),
    ] {
        let period = report::Period {
            from: today - Duration::days(29),
            to: today,
            tz,
        };
        let mut times = Vec::new();
        let mut rows = 0;
        for _ in 0..7 {
            let t = Instant::now();
            rows = database
                .query_blocking(|conn| report::funnel(conn, merchant_id, &period, report::GroupBy::Ad))?
                .len();
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "{backend}: 30-day funnel by ad from the {label}: {rows} rows, median {:.1?}, min {:.1?}, max {:.1?} (7 runs)",
            times[3], times[0], times[6]
        );
    }
    Ok(())
}

/// Replaces the bench merchant and seeds it; its id.
fn seed(
    conn: &mut db::DbConnection,
    events: usize,
) -> Result<threadcart::kernel::MerchantId, diesel::result::Error> {
    diesel::delete(merchants::table.filter(merchants::name.eq(NAME))).execute(conn)?;
    let new = threadcart::merchants::NewMerchant::parse(NAME, "EUR", "Europe/Paris")
        .map_err(|_| diesel::result::Error::RollbackTransaction)?;
    let merchant = threadcart::merchants::create(conn, &new, None)?;
    let eur = Currency::parse("EUR").map_err(|_| diesel::result::Error::RollbackTransaction)?;
    let start = now() - Duration::days(29);
    let mut threads = Vec::with_capacity(THREADS);
    db::write_transaction(conn, |conn| {
        for i in 0..THREADS {
            let customer = conversations::ensure_customer(
                conn,
                merchant.id,
                threadcart::kernel::Channel::Messenger,
                &"bench-page".into(),
                &format!("bench-{i}").into(),
            )?;
            let customer = conversations::customer(conn, customer)?;
            let thread = conversations::ensure_thread(conn, &customer)?;
            let ad = format!("ad-{}", i % ADS);
            let referral = Referral {
                source: "ADS".into(),
                kind: "OPEN_THREAD".into(),
                ref_: Some(format!("c=bench{}_p=P-{}", i % 20, i % ADS)),
                ad_id: Some(ad),
                product_id: Some(format!("P-{}", i % ADS)),
                ..Referral::default()
            };
            let thread = conversations::record_touch(conn, &thread, &referral, start)?;
            threads.push((thread.id, thread.latest_touch_id, referral));
        }
        Ok::<_, diesel::result::Error>(())
    })?;
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let span = 29 * 24 * 3600;
    db::write_transaction(conn, |conn| {
        for chunk_start in (0..events).step_by(1000) {
            let rows: Vec<_> = (chunk_start..events.min(chunk_start + 1000))
                .map(|i| {
                    let (thread_id, touch_id, r) = &threads[i % THREADS];
                    let roll = next() % 100;
                    let (kind, value) = match roll {
                        0..=59 => ("product_view", None),
                        60..=84 => ("add_to_cart", Some(2000)),
                        85..=96 => ("checkout", Some(4990)),
                        _ => ("purchase", Some(4990)),
                    };
                    let at = start + Duration::seconds(i64::try_from(next() % span).unwrap_or(0));
                    (
                        funnel_events::id.eq(DbUuid(Uuid::now_v7())),
                        funnel_events::merchant_id.eq(merchant.id),
                        funnel_events::thread_id.eq(*thread_id),
                        funnel_events::kind.eq(kind),
                        funnel_events::touch_id.eq(*touch_id),
                        funnel_events::first_touch_id.eq(*touch_id),
                        funnel_events::organic.eq(false),
                        funnel_events::ad_id.eq(r.ad_id.clone()),
                        funnel_events::ref_.eq(r.ref_.clone()),
                        funnel_events::source.eq(Some("ADS")),
                        funnel_events::campaign.eq(r.ref_.as_deref().and_then(attribution::campaign_of)),
                        funnel_events::touch_product.eq(r.product_id.clone()),
                        funnel_events::value_minor.eq(value),
                        funnel_events::currency.eq(value.map(|_| eur.code())),
                        funnel_events::occurred_at.eq(at),
                    )
                })
                .collect();
            let insert = diesel::insert_into(funnel_events::table).values(rows);
            threadcart::per_backend!(conn, |c| insert.execute(c))?;
        }
        Ok::<_, diesel::result::Error>(())
    })?;
    Ok(merchant.id)
}
