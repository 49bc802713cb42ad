//! Nightly inventory and prices: what is free, what a stay costs, and the conditional updates that take
//! and give back nights.

use std::collections::BTreeMap;

use chrono::{Days, NaiveDate};
use diesel::prelude::*;
use uuid::Uuid;

use super::bookables::{self, Bookable, BookableError, int};
use super::stay::StayDates;
use crate::db::schema::{bookable_nights, bookable_rates};
use crate::db::{DbConnection, DbUuid};
use crate::kernel::MerchantId;
use crate::money::{Money, MoneyError};

/// How many days before and after the asked arrival [`nearest_available`] looks.
pub const SEARCH_DAYS: u32 = 14;

/// One night of a bookable: units still free and its price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NightAvailability {
    /// The night, by the date of its evening.
    pub night: NaiveDate,
    /// Units neither held nor booked.
    pub available: u32,
    /// The night's price.
    pub price: Money,
}

/// One night's price in a quote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NightPrice {
    /// The night.
    pub night: NaiveDate,
    /// Its price.
    pub price: Money,
}

/// The price of a stay, night by night.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    /// Every night with its price, in date order.
    pub nights: Vec<NightPrice>,
    /// Their sum.
    pub total: Money,
}

impl Quote {
    /// Whether some nights cost more than others (then the conversation shows them one by one).
    pub fn varies(&self) -> bool {
        self.nights.windows(2).any(|w| w[0].price != w[1].price)
    }
}

/// What else would do when a stay cannot be held.
#[derive(Debug, Clone, PartialEq)]
pub struct Alternatives {
    /// The same bookable and number of nights on the nearest arrival date that is free, if any within
    /// [`SEARCH_DAYS`].
    pub dates: Option<StayDates>,
    /// The merchant's other active bookables free for the asked dates and guests.
    pub rooms: Vec<Bookable>,
}

/// Units free out of `units` when `held` and `booked` are taken (never negative).
pub fn units_free(units: u32, held: i32, booked: i32) -> u32 {
    let taken = i64::from(held.max(0)) + i64::from(booked.max(0));
    u32::try_from((i64::from(units) - taken).max(0)).unwrap_or(0)
}

/// Nights with a row between `from` (included) and `to` (excluded): (held, booked).
fn taken_between(
    conn: &mut DbConnection,
    id: Uuid,
    from: NaiveDate,
    to: NaiveDate,
) -> QueryResult<BTreeMap<NaiveDate, (i32, i32)>> {
    let rows: Vec<(NaiveDate, i32, i32)> = bookable_nights::table
        .filter(bookable_nights::bookable_id.eq(DbUuid(id)))
        .filter(bookable_nights::night.ge(from))
        .filter(bookable_nights::night.lt(to))
        .select((
            bookable_nights::night,
            bookable_nights::held,
            bookable_nights::booked,
        ))
        .load(conn)?;
    Ok(rows.into_iter().map(|(n, h, b)| (n, (h, b))).collect())
}

/// Price overrides between `from` (included) and `to` (excluded).
fn rates_between(
    conn: &mut DbConnection,
    id: Uuid,
    from: NaiveDate,
    to: NaiveDate,
) -> QueryResult<BTreeMap<NaiveDate, i64>> {
    let rows: Vec<(NaiveDate, i64)> = bookable_rates::table
        .filter(bookable_rates::bookable_id.eq(DbUuid(id)))
        .filter(bookable_rates::night.ge(from))
        .filter(bookable_rates::night.lt(to))
        .select((bookable_rates::night, bookable_rates::price_minor))
        .load(conn)?;
    Ok(rows.into_iter().collect())
}

fn nights_between(from: NaiveDate, to: NaiveDate) -> impl Iterator<Item = NaiveDate> {
    from.iter_days().take_while(move |n| *n < to)
}

/// Per night from `from` (included) to `to` (excluded): units free and price.
pub fn availability(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    id: Uuid,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<NightAvailability>, BookableError> {
    let bookable = bookables::get(conn, merchant_id, id)?.ok_or(BookableError::NotFound)?;
    let taken = taken_between(conn, id, from, to)?;
    let rates = rates_between(conn, id, from, to)?;
    let base = bookable.spec.base_price;
    Ok(nights_between(from, to)
        .map(|night| {
            let (held, booked) = taken.get(&night).copied().unwrap_or((0, 0));
            NightAvailability {
                night,
                available: units_free(bookable.spec.units, held, booked),
                price: rates
                    .get(&night)
                    .map_or(base, |minor| Money::from_minor(*minor, base.currency())),
            }
        })
        .collect())
}

/// The price of `stay` in `bookable`, night by night.
pub(super) fn price_of(conn: &mut DbConnection, bookable: &Bookable, stay: StayDates) -> QueryResult<Quote> {
    let rates = rates_between(conn, bookable.id, stay.arrival(), stay.departure())?;
    let base = bookable.spec.base_price;
    let nights: Vec<NightPrice> = stay
        .each_night()
        .map(|night| NightPrice {
            night,
            price: rates
                .get(&night)
                .map_or(base, |minor| Money::from_minor(*minor, base.currency())),
        })
        .collect();
    let total = nights
        .iter()
        .try_fold(Money::zero(base.currency()), |sum, n| sum.checked_add(n.price))
        .map_err(|e: MoneyError| bookables::corrupt(e.to_string()))?;
    Ok(Quote { nights, total })
}

/// The price of `stay` in the merchant's bookable, night by night.
pub fn quote(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    bookable_id: Uuid,
    stay: StayDates,
) -> Result<Quote, BookableError> {
    let bookable = bookables::get(conn, merchant_id, bookable_id)?.ok_or(BookableError::NotFound)?;
    Ok(price_of(conn, &bookable, stay)?)
}

/// The arrival nearest to `wanted` (within `window` days either side, never before `earliest`) whose
/// `nights` nights are all free by `is_free`; on a tie the later date wins, since the earlier one is the
/// likelier to be too soon for the shopper.
pub fn nearest_arrival(
    wanted: NaiveDate,
    nights: u32,
    window: u32,
    earliest: NaiveDate,
    is_free: impl Fn(NaiveDate) -> bool,
) -> Option<NaiveDate> {
    let fits =
        |arrival: NaiveDate| arrival >= earliest && arrival.iter_days().take(nights as usize).all(&is_free);
    (0..=u64::from(window)).find_map(|d| {
        let later = wanted.checked_add_days(Days::new(d));
        let earlier = wanted.checked_sub_days(Days::new(d));
        later.filter(|a| fits(*a)).or(earlier.filter(|a| fits(*a)))
    })
}

/// Whether every night of `stay` has a unit free in `bookable`.
fn stay_is_free(conn: &mut DbConnection, bookable: &Bookable, stay: StayDates) -> QueryResult<bool> {
    let taken = taken_between(conn, bookable.id, stay.arrival(), stay.departure())?;
    Ok(stay.each_night().all(|night| {
        let (held, booked) = taken.get(&night).copied().unwrap_or((0, 0));
        units_free(bookable.spec.units, held, booked) > 0
    }))
}

/// When `stay` cannot be held in the merchant's bookable: the nearest dates that work for it (arrival
/// not before `today`), and the other room types free for the asked dates and `guests`.
pub fn nearest_available(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    bookable_id: Uuid,
    stay: StayDates,
    guests: u32,
    today: NaiveDate,
) -> Result<Alternatives, BookableError> {
    let bookable = bookables::get(conn, merchant_id, bookable_id)?.ok_or(BookableError::NotFound)?;
    let window = Days::new(u64::from(SEARCH_DAYS));
    let from = stay.arrival().checked_sub_days(window).unwrap_or(stay.arrival());
    let to = stay
        .departure()
        .checked_add_days(window)
        .unwrap_or(stay.departure());
    let taken = taken_between(conn, bookable_id, from, to)?;
    let units = bookable.spec.units;
    let arrival = nearest_arrival(stay.arrival(), stay.nights(), SEARCH_DAYS, today, |night| {
        let (held, booked) = taken.get(&night).copied().unwrap_or((0, 0));
        units_free(units, held, booked) > 0
    });
    let dates = arrival
        .filter(|a| *a != stay.arrival())
        .and_then(|a| StayDates::new(a, stay.nights()).ok());
    let mut rooms = Vec::new();
    let others = bookables::list(
        conn,
        merchant_id,
        &bookables::BookableQuery {
            page: crate::db::Keyset::OLDEST_FIRST,
            limit: 100,
            active_only: true,
        },
    )?;
    for other in others {
        let fits = other.id != bookable_id
            && other.spec.max_guests >= guests
            && (other.spec.min_nights..=other.spec.max_nights).contains(&stay.nights());
        if fits && stay_is_free(conn, &other, stay)? {
            rooms.push(other);
        }
    }
    Ok(Alternatives { dates, rooms })
}

// ---- taking and giving back nights --------------------------------------------------------------

/// Makes the inventory rows of `stay` that do not exist yet. Safe without an upsert because the caller
/// holds the bookable's lock (see `bookables::lock`), so no one else makes them meanwhile.
fn ensure_rows(conn: &mut DbConnection, id: Uuid, stay: StayDates) -> QueryResult<()> {
    let existing = taken_between(conn, id, stay.arrival(), stay.departure())?;
    for night in stay.each_night().filter(|n| !existing.contains_key(n)) {
        diesel::insert_into(bookable_nights::table)
            .values((
                bookable_nights::bookable_id.eq(DbUuid(id)),
                bookable_nights::night.eq(night),
                bookable_nights::held.eq(0),
                bookable_nights::booked.eq(0),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Which count a stay takes: `held` for a hold, `booked` for a confirmed stay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Taken {
    Held,
    Booked,
}

/// Takes one unit of every night of `stay` as `what`, in one conditional statement that touches only
/// nights with a unit free; false (and the caller rolls back) when some night had none. The caller holds
/// the bookable's lock.
pub(super) fn take(
    conn: &mut DbConnection,
    id: Uuid,
    units: u32,
    stay: StayDates,
    what: Taken,
) -> QueryResult<bool> {
    ensure_rows(conn, id, stay)?;
    let nights = bookable_nights::table
        .filter(bookable_nights::bookable_id.eq(DbUuid(id)))
        .filter(bookable_nights::night.ge(stay.arrival()))
        .filter(bookable_nights::night.lt(stay.departure()))
        .filter((bookable_nights::held + bookable_nights::booked).lt(int(units)));
    let taken = match what {
        Taken::Held => diesel::update(nights)
            .set(bookable_nights::held.eq(bookable_nights::held + 1))
            .execute(conn)?,
        Taken::Booked => diesel::update(nights)
            .set(bookable_nights::booked.eq(bookable_nights::booked + 1))
            .execute(conn)?,
    };
    Ok(taken == stay.nights() as usize)
}

/// Gives back one unit of every night of `stay` from `what` (the `CHECK (held >= 0 AND booked >= 0)`
/// turns a double give-back, which the status moves rule out, into an error rather than free rooms).
pub(super) fn give_back(conn: &mut DbConnection, id: Uuid, stay: StayDates, what: Taken) -> QueryResult<()> {
    let nights = bookable_nights::table
        .filter(bookable_nights::bookable_id.eq(DbUuid(id)))
        .filter(bookable_nights::night.ge(stay.arrival()))
        .filter(bookable_nights::night.lt(stay.departure()));
    match what {
        Taken::Held => diesel::update(nights)
            .set(bookable_nights::held.eq(bookable_nights::held - 1))
            .execute(conn)?,
        Taken::Booked => diesel::update(nights)
            .set(bookable_nights::booked.eq(bookable_nights::booked - 1))
            .execute(conn)?,
    };
    Ok(())
}

/// Moves one unit of every night of `stay` from held to booked.
pub(super) fn book_held(conn: &mut DbConnection, id: Uuid, stay: StayDates) -> QueryResult<()> {
    diesel::update(
        bookable_nights::table
            .filter(bookable_nights::bookable_id.eq(DbUuid(id)))
            .filter(bookable_nights::night.ge(stay.arrival()))
            .filter(bookable_nights::night.lt(stay.departure())),
    )
    .set((
        bookable_nights::held.eq(bookable_nights::held - 1),
        bookable_nights::booked.eq(bookable_nights::booked + 1),
    ))
    .execute(conn)?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn free_units_are_the_units_less_those_held_and_booked_and_never_negative() {
        assert_eq!(units_free(3, 1, 1), 1);
        assert_eq!(units_free(3, 0, 0), 3);
        assert_eq!(units_free(2, 2, 1), 0, "after units were lowered");
    }

    #[test]
    fn the_nearest_free_arrival_prefers_the_later_date_on_a_tie() {
        let full = [date("2026-12-24")];
        let free = |n: NaiveDate| !full.contains(&n);

        let arrival = nearest_arrival(date("2026-12-24"), 1, 14, date("2026-12-01"), free);

        assert_eq!(arrival, Some(date("2026-12-25")));
    }

    #[test]
    fn the_nearest_free_arrival_never_lies_before_the_earliest_date() {
        let free = |n: NaiveDate| n < date("2026-12-20") || n > date("2026-12-27");

        let arrival = nearest_arrival(date("2026-12-24"), 2, 14, date("2026-12-19"), free);

        assert_eq!(arrival, Some(date("2026-12-28")));
    }

    #[test]
    fn no_arrival_is_found_when_every_night_of_the_window_is_full() {
        assert_eq!(
            nearest_arrival(date("2026-12-24"), 1, 3, date("2026-12-01"), |_| false),
            None
        );
    }

    proptest! {
        /// Whatever nights are full, the arrival found has every night of the stay free, lies within
        /// the window and not before the earliest date, and no nearer arrival would have done.
        #[test]
        fn the_nearest_arrival_is_free_and_nothing_nearer_is(
            full in proptest::collection::btree_set(0u64..40, 0..30),
            nights in 1u32..5,
            earliest_offset in 0u64..20,
        ) {
            let origin = date("2026-12-01");
            let wanted = origin + Days::new(20);
            let earliest = origin + Days::new(earliest_offset);
            let full: Vec<NaiveDate> = full.into_iter().map(|d| origin + Days::new(d)).collect();
            let is_free = |n: NaiveDate| !full.contains(&n);
            let fits = |a: NaiveDate| a >= earliest && a.iter_days().take(nights as usize).all(is_free);

            let found = nearest_arrival(wanted, nights, 10, earliest, is_free);

            let distance = |a: NaiveDate| (a - wanted).num_days().abs();
            let candidates = (0..=20).map(|d| wanted - Days::new(10) + Days::new(d));
            let best = candidates.filter(|a| fits(*a)).map(distance).min();
            prop_assert_eq!(found.map(distance), best);
            if let Some(a) = found {
                prop_assert!(fits(a));
            }
        }
    }
}
