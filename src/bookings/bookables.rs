//! Bookables: a merchant's room types (or anything sold by the night) and their nightly price overrides.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use diesel::prelude::*;
use uuid::Uuid;

use super::stay::local_today;
use crate::db::schema::{bookable_nights, bookable_rates, bookables, bookings};
use crate::db::{DbConnection, DbUuid, now, write_transaction};
use crate::kernel::{FieldError, Labels, MerchantId};
use crate::money::{Currency, Money};

/// The most units of one bookable.
pub const MAX_UNITS: u32 = 10_000;
/// The most guests in one unit.
pub const MAX_GUESTS: u32 = 100;

/// A room type: units sold by the night at a base price, with per-night overrides.
#[derive(Debug, Clone, PartialEq)]
pub struct Bookable {
    /// Id.
    pub id: Uuid,
    /// The merchant selling it.
    pub merchant_id: MerchantId,
    /// Its name, its description, its picture, its capacity, prices and rules.
    pub spec: BookableSpec,
    /// Created (UTC).
    pub created_at: NaiveDateTime,
    /// Last changed (UTC).
    pub updated_at: NaiveDateTime,
}

/// Everything a merchant sets on a bookable, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct BookableSpec {
    /// Name shown to shoppers ("Honeymoon Suite").
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Picture.
    pub image_url: Option<String>,
    /// How many identical units (rooms) there are.
    pub units: u32,
    /// The most guests in one unit.
    pub max_guests: u32,
    /// The price of a night without an override.
    pub base_price: Money,
    /// The shortest stay.
    pub min_nights: u32,
    /// The longest stay.
    pub max_nights: u32,
    /// From when guests may arrive, local time.
    pub check_in: NaiveTime,
    /// Until when guests may stay on their departure day, local time.
    pub check_out: NaiveTime,
    /// The property's timezone: nights are its calendar dates.
    pub timezone: chrono_tz::Tz,
    /// Whether it is offered to shoppers.
    pub active: bool,
    /// Labels (`stays`): agents with these skills answer shoppers looking at it.
    pub labels: Labels,
}

impl BookableSpec {
    /// The rules between fields: the shortest stay is not longer than the longest.
    pub fn check(&self) -> Result<(), Vec<FieldError>> {
        if self.min_nights > self.max_nights {
            return Err(vec![FieldError::new(
                "min_nights",
                "out_of_range",
                "min_nights must not be more than max_nights",
            )]);
        }
        Ok(())
    }
}

/// A partial change to a bookable; `None` leaves a field alone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BookablePatch {
    /// New name.
    pub name: Option<String>,
    /// New description, or none.
    pub description: Option<Option<String>>,
    /// New picture, or none.
    pub image_url: Option<Option<String>>,
    /// New number of units (not below the units taken on any night from today).
    pub units: Option<u32>,
    /// New guest limit.
    pub max_guests: Option<u32>,
    /// New base price.
    pub base_price: Option<Money>,
    /// New shortest stay.
    pub min_nights: Option<u32>,
    /// New longest stay.
    pub max_nights: Option<u32>,
    /// New check-in time.
    pub check_in: Option<NaiveTime>,
    /// New check-out time.
    pub check_out: Option<NaiveTime>,
    /// New timezone.
    pub timezone: Option<chrono_tz::Tz>,
    /// New active flag.
    pub active: Option<bool>,
    /// New labels.
    pub labels: Option<Labels>,
}

impl BookablePatch {
    fn apply(self, spec: &mut BookableSpec) {
        let BookablePatch {
            name,
            description,
            image_url,
            units,
            max_guests,
            base_price,
            min_nights,
            max_nights,
            check_in,
            check_out,
            timezone,
            active,
            labels,
        } = self;
        fn set<T>(field: &mut T, value: Option<T>) {
            if let Some(v) = value {
                *field = v;
            }
        }
        set(&mut spec.name, name);
        set(&mut spec.description, description);
        set(&mut spec.image_url, image_url);
        set(&mut spec.units, units);
        set(&mut spec.max_guests, max_guests);
        set(&mut spec.base_price, base_price);
        set(&mut spec.min_nights, min_nights);
        set(&mut spec.max_nights, max_nights);
        set(&mut spec.check_in, check_in);
        set(&mut spec.check_out, check_out);
        set(&mut spec.timezone, timezone);
        set(&mut spec.active, active);
        set(&mut spec.labels, labels);
    }
}

/// Nights `from` (included) to `to` (excluded) priced at `price`, or back at the base price (`None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateRange {
    /// First night.
    pub from: NaiveDate,
    /// The night after the last one.
    pub to: NaiveDate,
    /// The override, or none.
    pub price: Option<Money>,
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct BookableQuery {
    /// Where the page starts and which way it reads.
    pub page: crate::db::Keyset,
    /// Page size.
    pub limit: i64,
    /// Only the ones offered to shoppers.
    pub active_only: bool,
}

/// What a bookable change can run into.
#[derive(Debug, thiserror::Error)]
pub enum BookableError {
    /// No such bookable for this merchant.
    #[error("bookable not found")]
    NotFound,
    /// Input broke field rules.
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    /// Fewer units than are already held or booked on some night.
    #[error("{taken} units are held or booked on {night}")]
    UnitsTaken {
        /// The night with the most units taken.
        night: NaiveDate,
        /// How many.
        taken: u32,
    },
    /// Stays still held or booked from today on.
    #[error("the bookable has stays to come")]
    HasStays,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
    /// The database could not be reached.
    #[error(transparent)]
    Unavailable(#[from] crate::db::DbError),
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = bookables)]
pub(super) struct BookableRow {
    pub(super) id: DbUuid,
    merchant_id: MerchantId,
    name: String,
    description: Option<String>,
    image_url: Option<String>,
    pub(super) units: i32,
    max_guests: i32,
    base_price_minor: i64,
    currency: String,
    min_nights: i32,
    max_nights: i32,
    check_in_time: String,
    check_out_time: String,
    timezone: String,
    active: bool,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    labels: String,
}

pub(super) fn corrupt(what: String) -> diesel::result::Error {
    diesel::result::Error::DeserializationError(what.into())
}

fn count(value: i32, what: &str) -> QueryResult<u32> {
    u32::try_from(value).map_err(|_| corrupt(format!("negative {what}")))
}

/// `HH:MM`, as times are stored and sent.
pub fn parse_time(text: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(text, "%H:%M").ok()
}

/// A time as stored and sent.
pub fn format_time(time: NaiveTime) -> String {
    time.format("%H:%M").to_string()
}

impl TryFrom<BookableRow> for Bookable {
    type Error = diesel::result::Error;

    fn try_from(row: BookableRow) -> QueryResult<Bookable> {
        let currency = Currency::parse(&row.currency).map_err(|e| corrupt(e.to_string()))?;
        let time = |t: &str| parse_time(t).ok_or_else(|| corrupt(format!("bad time `{t}`")));
        let spec = BookableSpec {
            name: row.name,
            description: row.description,
            image_url: row.image_url,
            units: count(row.units, "units")?,
            max_guests: count(row.max_guests, "max_guests")?,
            base_price: Money::from_minor(row.base_price_minor, currency),
            min_nights: count(row.min_nights, "min_nights")?,
            max_nights: count(row.max_nights, "max_nights")?,
            check_in: time(&row.check_in_time)?,
            check_out: time(&row.check_out_time)?,
            timezone: row
                .timezone
                .parse()
                .map_err(|_| corrupt(format!("bad timezone `{}`", row.timezone)))?,
            active: row.active,
            labels: Labels::from_stored(&row.labels).map_err(|e| corrupt(e.to_string()))?,
        };
        Ok(Bookable {
            id: row.id.0,
            merchant_id: row.merchant_id,
            spec,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// A count as an `INTEGER` column (every count is checked against a small maximum first).
pub(super) fn int(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

#[derive(AsChangeset, Insertable)]
#[diesel(table_name = bookables, treat_none_as_null = true)]
struct SpecColumns<'a> {
    name: &'a str,
    description: Option<&'a str>,
    image_url: Option<&'a str>,
    units: i32,
    max_guests: i32,
    base_price_minor: i64,
    currency: &'a str,
    min_nights: i32,
    max_nights: i32,
    check_in_time: String,
    check_out_time: String,
    timezone: &'a str,
    active: bool,
    labels: String,
    updated_at: NaiveDateTime,
}

fn columns(spec: &BookableSpec, at: NaiveDateTime) -> SpecColumns<'_> {
    SpecColumns {
        name: &spec.name,
        description: spec.description.as_deref(),
        image_url: spec.image_url.as_deref(),
        units: int(spec.units),
        max_guests: int(spec.max_guests),
        base_price_minor: spec.base_price.minor(),
        currency: spec.base_price.currency().code(),
        min_nights: int(spec.min_nights),
        max_nights: int(spec.max_nights),
        check_in_time: format_time(spec.check_in),
        check_out_time: format_time(spec.check_out),
        timezone: spec.timezone.name(),
        active: spec.active,
        labels: spec.labels.stored(),
        updated_at: at,
    }
}

/// The merchant's bookables that are not deleted.
pub(super) fn live(merchant_id: MerchantId) -> bookables::BoxedQuery<'static, crate::db::MultiBackend> {
    bookables::table
        .filter(bookables::merchant_id.eq(merchant_id))
        .filter(bookables::deleted_at.is_null())
        .into_boxed()
}

/// Creates a bookable.
pub fn create(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    spec: &BookableSpec,
) -> Result<Bookable, BookableError> {
    spec.check().map_err(BookableError::Invalid)?;
    let at = now();
    let id = Uuid::now_v7();
    diesel::insert_into(bookables::table)
        .values((
            bookables::id.eq(DbUuid(id)),
            bookables::merchant_id.eq(merchant_id),
            bookables::created_at.eq(at),
            columns(spec, at),
        ))
        .execute(conn)?;
    get(conn, merchant_id, id)?.ok_or(BookableError::NotFound)
}

/// The merchant's bookable, unless deleted.
pub fn get(conn: &mut DbConnection, merchant_id: MerchantId, id: Uuid) -> QueryResult<Option<Bookable>> {
    live(merchant_id)
        .filter(bookables::id.eq(DbUuid(id)))
        .select(BookableRow::as_select())
        .first(conn)
        .optional()?
        .map(Bookable::try_from)
        .transpose()
}

/// A page of the merchant's bookables, newest created first unless the query asks oldest first.
pub fn list(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    q: &BookableQuery,
) -> QueryResult<Vec<Bookable>> {
    let mut query = live(merchant_id).limit(q.limit);
    query = crate::keyset!(query, bookables::id, q.page);
    if q.active_only {
        query = query.filter(bookables::active.eq(true));
    }
    query
        .select(BookableRow::as_select())
        .load(conn)?
        .into_iter()
        .map(Bookable::try_from)
        .collect()
}

/// Whether the merchant has a room type open for booking, as an expression to select (with the
/// merchant, say: one round trip, no rows loaded).
pub fn any_active(merchant_id: MerchantId) -> diesel::dsl::exists<ActiveOf> {
    diesel::dsl::exists(
        bookables::table
            .filter(bookables::merchant_id.eq(merchant_id))
            .filter(bookables::deleted_at.is_null())
            .filter(bookables::active.eq(true)),
    )
}

/// The merchant's room types on sale.
pub type ActiveOf = diesel::dsl::Filter<
    diesel::dsl::Filter<
        diesel::dsl::Filter<bookables::table, diesel::dsl::Eq<bookables::merchant_id, MerchantId>>,
        diesel::dsl::IsNull<bookables::deleted_at>,
    >,
    diesel::dsl::Eq<bookables::active, bool>,
>;

/// Locks the merchant's live bookable for the rest of the transaction (on PostgreSQL; SQLite's
/// `BEGIN IMMEDIATE` already admits one writer): holds and unit changes of one bookable queue up, so a
/// lowered unit count can never slip under a hold being taken. False when there is no such bookable.
pub(super) fn lock(conn: &mut DbConnection, merchant_id: MerchantId, id: Uuid) -> QueryResult<bool> {
    let locked = diesel::update(
        bookables::table
            .filter(bookables::id.eq(DbUuid(id)))
            .filter(bookables::merchant_id.eq(merchant_id))
            .filter(bookables::deleted_at.is_null()),
    )
    .set(bookables::units.eq(bookables::units))
    .execute(conn)?;
    Ok(locked == 1)
}

/// The most units held or booked on one night from `from` on, and that night.
fn most_taken(conn: &mut DbConnection, id: Uuid, from: NaiveDate) -> QueryResult<Option<(NaiveDate, u32)>> {
    let row: Option<(NaiveDate, i32, i32)> = bookable_nights::table
        .filter(bookable_nights::bookable_id.eq(DbUuid(id)))
        .filter(bookable_nights::night.ge(from))
        .order((
            (bookable_nights::held + bookable_nights::booked).desc(),
            bookable_nights::night.asc(),
        ))
        .select((
            bookable_nights::night,
            bookable_nights::held,
            bookable_nights::booked,
        ))
        .first(conn)
        .optional()?;
    row.map(|(night, held, booked)| Ok((night, count(held + booked, "units taken")?)))
        .transpose()
}

/// Changes a bookable. Units cannot go below what holds and bookings take on a night from today on.
pub fn update(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    id: Uuid,
    patch: BookablePatch,
) -> Result<Bookable, BookableError> {
    write_transaction(conn, |conn| {
        if !lock(conn, merchant_id, id)? {
            return Err(BookableError::NotFound);
        }
        let mut bookable = get(conn, merchant_id, id)?.ok_or(BookableError::NotFound)?;
        patch.apply(&mut bookable.spec);
        bookable.spec.check().map_err(BookableError::Invalid)?;
        let at = now();
        let today = local_today(bookable.spec.timezone, at);
        if let Some((night, taken)) = most_taken(conn, id, today)?
            && taken > bookable.spec.units
        {
            return Err(BookableError::UnitsTaken { night, taken });
        }
        diesel::update(bookables::table.filter(bookables::id.eq(DbUuid(id))))
            .set(columns(&bookable.spec, at))
            .execute(conn)?;
        get(conn, merchant_id, id)?.ok_or(BookableError::NotFound)
    })
}

/// Deletes a bookable (it stays behind its past bookings); refused while stays are held or booked
/// from today on.
pub fn delete(conn: &mut DbConnection, merchant_id: MerchantId, id: Uuid) -> Result<(), BookableError> {
    write_transaction(conn, |conn| {
        if !lock(conn, merchant_id, id)? {
            return Err(BookableError::NotFound);
        }
        let bookable = get(conn, merchant_id, id)?.ok_or(BookableError::NotFound)?;
        let at = now();
        let today = local_today(bookable.spec.timezone, at);
        let to_come: i64 = bookings::table
            .filter(bookings::bookable_id.eq(DbUuid(id)))
            .filter(bookings::status.eq_any(["held", "confirmed"]))
            .filter(bookings::departure.gt(today))
            .count()
            .get_result(conn)?;
        if to_come > 0 {
            return Err(BookableError::HasStays);
        }
        diesel::update(bookables::table.filter(bookables::id.eq(DbUuid(id))))
            .set((
                bookables::deleted_at.eq(Some(at)),
                bookables::active.eq(false),
                bookables::updated_at.eq(at),
            ))
            .execute(conn)?;
        Ok(())
    })
}

/// Sets or clears the price of every night of each range (later ranges win where they overlap); returns
/// how many nights were written. Prices must be in the bookable's currency (`rates[i].price`).
pub fn set_rates(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    id: Uuid,
    ranges: &[RateRange],
) -> Result<usize, BookableError> {
    write_transaction(conn, |conn| {
        let bookable = get(conn, merchant_id, id)?.ok_or(BookableError::NotFound)?;
        let currency = bookable.spec.base_price.currency();
        let errors: Vec<FieldError> = ranges
            .iter()
            .enumerate()
            .filter(|(_, r)| r.price.is_some_and(|p| p.currency() != currency))
            .map(|(i, _)| {
                FieldError::new(
                    format!("rates[{i}].price"),
                    "currency_mismatch",
                    format!("prices of this bookable are in {currency}"),
                )
            })
            .collect();
        if !errors.is_empty() {
            return Err(BookableError::Invalid(errors));
        }
        let mut written = 0;
        for range in ranges {
            diesel::delete(
                bookable_rates::table
                    .filter(bookable_rates::bookable_id.eq(DbUuid(id)))
                    .filter(bookable_rates::night.ge(range.from))
                    .filter(bookable_rates::night.lt(range.to)),
            )
            .execute(conn)?;
            for night in range.from.iter_days().take_while(|n| *n < range.to) {
                if let Some(price) = range.price {
                    diesel::insert_into(bookable_rates::table)
                        .values((
                            bookable_rates::bookable_id.eq(DbUuid(id)),
                            bookable_rates::night.eq(night),
                            bookable_rates::price_minor.eq(price.minor()),
                        ))
                        .execute(conn)?;
                }
                written += 1;
            }
        }
        Ok(written)
    })
}
