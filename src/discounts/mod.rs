//! Discount codes a merchant hands out (in ads, posts, the thread itself): a percentage or a fixed amount
//! off the cart, within an optional validity window, above an optional minimum subtotal, for an optional
//! number of redemptions. The conversation engine asks [`find_by_code`] and [`Discount::check`] when a
//! shopper types a code, and [`redeem`] counts the use once the order is paid.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};
use diesel::prelude::*;
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::db::is_unique_violation_on;
use crate::db::schema::discounts;
use crate::db::{DbConnection, DbUuid, now, write_transaction};
use crate::kernel::{FieldError, MerchantId};
use crate::money::{Currency, Money, MoneyError};

/// The shortest code.
pub const MIN_CODE_CHARS: usize = 3;
/// The longest code.
pub const MAX_CODE_CHARS: usize = 32;
/// The highest `max_redemptions` (the column is a 32-bit integer).
pub const MAX_REDEMPTIONS: u32 = i32::MAX as u32;

/// A merchant's discount code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discount {
    /// Id.
    pub id: Uuid,
    /// The code, upper-case, unique per merchant.
    pub code: String,
    /// What it takes off.
    pub kind: DiscountKind,
    /// Valid from (UTC, inclusive).
    pub starts_at: Option<NaiveDateTime>,
    /// Valid until (UTC, exclusive).
    pub ends_at: Option<NaiveDateTime>,
    /// The smallest cart subtotal it applies to.
    pub min_subtotal: Option<Money>,
    /// How many paid orders may use it.
    pub max_redemptions: Option<u32>,
    /// How many paid orders used it.
    pub redemptions: u32,
    /// Switched on by the merchant.
    pub active: bool,
    /// Created (UTC).
    pub created_at: NaiveDateTime,
    /// Last changed (UTC).
    pub updated_at: NaiveDateTime,
}

/// What a discount takes off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscountKind {
    /// A percentage of the subtotal (12.5 means 12.5 %), at most two decimals, in (0, 100].
    Percent(Decimal),
    /// A fixed amount in the merchant's currency.
    Fixed(Money),
}

/// Why a code cannot apply to a cart right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The merchant switched it off.
    Inactive,
    /// Its window has not opened yet.
    NotStarted,
    /// Its window has closed.
    Expired,
    /// Every allowed redemption is used.
    Exhausted,
    /// The cart is below the minimum subtotal (given).
    BelowMinimum(Money),
}

impl Refusal {
    /// Stable snake_case identifier, for logs and events.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Inactive => "inactive",
            Refusal::NotStarted => "not_started",
            Refusal::Expired => "expired",
            Refusal::Exhausted => "exhausted",
            Refusal::BelowMinimum(_) => "below_minimum",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Inactive => f.write_str("Sorry, this code is not active."),
            Refusal::NotStarted => f.write_str("Sorry, this code is not valid yet."),
            Refusal::Expired => f.write_str("Sorry, this code has expired."),
            Refusal::Exhausted => f.write_str("Sorry, this code has been used up."),
            Refusal::BelowMinimum(min) => write!(f, "This code needs a cart of at least {min}."),
        }
    }
}

impl std::error::Error for Refusal {}

impl Discount {
    /// Whether the code can apply now to a cart of `subtotal`.
    ///
    /// The window includes `starts_at` and excludes `ends_at`; a subtotal in another currency than the
    /// minimum never reaches it.
    pub fn check(&self, at: NaiveDateTime, subtotal: Money) -> Result<(), Refusal> {
        if !self.active {
            return Err(Refusal::Inactive);
        }
        if self.starts_at.is_some_and(|start| at < start) {
            return Err(Refusal::NotStarted);
        }
        if self.ends_at.is_some_and(|end| at >= end) {
            return Err(Refusal::Expired);
        }
        if self.max_redemptions.is_some_and(|max| self.redemptions >= max) {
            return Err(Refusal::Exhausted);
        }
        if let Some(min) = self.min_subtotal
            && (subtotal.currency() != min.currency() || subtotal.minor() < min.minor())
        {
            return Err(Refusal::BelowMinimum(min));
        }
        Ok(())
    }

    /// What it takes off `subtotal`: never more than the subtotal, never negative; percent rounded half
    /// away from zero (Money::percent_of).
    ///
    /// A fixed amount in another currency than the subtotal is `CurrencyMismatch`.
    pub fn amount_off(&self, subtotal: Money) -> Result<Money, MoneyError> {
        let raw = match self.kind {
            DiscountKind::Percent(percent) => subtotal.percent_of(percent)?,
            DiscountKind::Fixed(amount) => {
                if amount.currency() != subtotal.currency() {
                    return Err(MoneyError::CurrencyMismatch(
                        amount.currency().code(),
                        subtotal.currency().code(),
                    ));
                }
                amount
            }
        };
        let ceiling = subtotal.minor().max(0);
        Ok(Money::from_minor(
            raw.minor().clamp(0, ceiling),
            subtotal.currency(),
        ))
    }
}

/// Upper-cases a code as typed (by a merchant or a shopper), ASCII only so nothing changes length.
pub fn normalize_code(input: &str) -> String {
    input.trim().to_ascii_uppercase()
}

/// Checks a code: 3 to 32 characters of A-Z, 0-9, `-` and `_` (lower case is upper-cased).
fn parse_code(value: &str, errors: &mut Vec<FieldError>) -> String {
    let code = value.to_ascii_uppercase();
    let allowed = |c: char| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-' || c == '_';
    let len = code.chars().count();
    if !(MIN_CODE_CHARS..=MAX_CODE_CHARS).contains(&len) || !code.chars().all(allowed) {
        errors.push(FieldError::new(
            "code",
            "invalid_code",
            format!("must be {MIN_CODE_CHARS} to {MAX_CODE_CHARS} characters of A-Z, 0-9, `-` and `_`"),
        ));
    }
    code
}

/// Parses a percent such as "10" or "12.5" into basis points, 1 to 10000 (0.01 % to 100 %).
fn percent_basis_points(value: &str) -> Option<i32> {
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    let shaped = match value.split_once('.') {
        Some((integer, fraction)) => digits(integer) && digits(fraction),
        None => digits(value),
    };
    if !shaped || value.len() > 20 {
        return None;
    }
    let percent = Decimal::from_str(value).ok()?.normalize();
    if percent.scale() > 2 {
        return None;
    }
    let bp = percent.mantissa() * 10_i128.pow(2 - percent.scale());
    i32::try_from(bp).ok().filter(|bp| (1..=10_000).contains(bp))
}

/// The `Decimal` percent of basis points: 1250 is 12.5.
fn percent_of_basis_points(bp: i32) -> Decimal {
    Decimal::new(i64::from(bp), 2).normalize()
}

/// The basis points of a percent of at most two decimals in 0.01..=100.
fn basis_points_of(percent: Decimal) -> Option<i32> {
    let scaled = percent.checked_mul(Decimal::ONE_HUNDRED)?.normalize();
    let bp = i32::try_from(scaled.mantissa()).ok()?;
    (scaled.scale() == 0 && (1..=10_000).contains(&bp)).then_some(bp)
}

/// Checks an amount in the merchant's currency; `positive` also refuses zero.
fn parse_money(
    field: &str,
    money: Result<Money, MoneyError>,
    currency: Currency,
    positive: bool,
    errors: &mut Vec<FieldError>,
) -> Option<Money> {
    match money {
        Err(e) => errors.push(FieldError::new(field, e.code(), e.to_string())),
        Ok(m) if m.currency() != currency => errors.push(FieldError::new(
            field,
            "currency_mismatch",
            format!("must be in the merchant's currency {currency}"),
        )),
        Ok(m) if positive && m.minor() == 0 => {
            errors.push(FieldError::new(field, "zero_amount", "must be more than zero"))
        }
        Ok(m) => return Some(m),
    }
    None
}

/// Parses an RFC 3339 timestamp (any offset) into UTC at microsecond precision, as stored.
fn parse_timestamp(field: &str, value: &str, errors: &mut Vec<FieldError>) -> Option<NaiveDateTime> {
    match DateTime::parse_from_rfc3339(value) {
        Ok(t) => Some(t.with_timezone(&Utc).naive_utc().trunc_subsecs(6)),
        Err(_) => {
            errors.push(FieldError::new(
                field,
                "invalid_timestamp",
                "must be an RFC 3339 timestamp such as 2026-12-01T00:00:00Z",
            ));
            None
        }
    }
}

/// Checks a maximum number of redemptions: 1 or more.
fn parse_max_redemptions(value: i64, errors: &mut Vec<FieldError>) -> Option<u32> {
    match u32::try_from(value) {
        Ok(n) if (1..=MAX_REDEMPTIONS).contains(&n) => Some(n),
        _ => {
            errors.push(FieldError::new(
                "max_redemptions",
                "out_of_range",
                format!("must be between 1 and {MAX_REDEMPTIONS}"),
            ));
            None
        }
    }
}

fn window_error() -> FieldError {
    FieldError::new("ends_at", "invalid_window", "must be after starts_at")
}

/// Raw discount input from any edge, before validation.
#[derive(Debug, Clone)]
pub struct DiscountInput<'a> {
    /// The code, any case.
    pub code: &'a str,
    /// A percent such as "12.5", or none.
    pub percent_off: Option<&'a str>,
    /// A fixed amount, already parsed from its wire form, or none.
    pub amount_off: Option<Result<Money, MoneyError>>,
    /// RFC 3339 start.
    pub starts_at: Option<&'a str>,
    /// RFC 3339 end.
    pub ends_at: Option<&'a str>,
    /// Minimum subtotal, already parsed from its wire form.
    pub min_subtotal: Option<Result<Money, MoneyError>>,
    /// Maximum redemptions.
    pub max_redemptions: Option<i64>,
    /// Active flag.
    pub active: bool,
}

/// A new discount, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDiscount {
    /// Upper-case code.
    pub code: String,
    /// What it takes off.
    pub kind: DiscountKind,
    /// Valid from.
    pub starts_at: Option<NaiveDateTime>,
    /// Valid until, after `starts_at`.
    pub ends_at: Option<NaiveDateTime>,
    /// Minimum subtotal in the merchant's currency.
    pub min_subtotal: Option<Money>,
    /// Maximum redemptions, at least 1.
    pub max_redemptions: Option<u32>,
    /// Active flag.
    pub active: bool,
}

impl NewDiscount {
    /// Validates a new discount for a merchant in `currency`, collecting every error.
    pub fn parse(input: &DiscountInput<'_>, currency: Currency) -> Result<NewDiscount, Vec<FieldError>> {
        let mut errors = Vec::new();
        let code = parse_code(input.code, &mut errors);
        let kind = match (input.percent_off, &input.amount_off) {
            (Some(percent), None) => match percent_basis_points(percent) {
                Some(bp) => Some(DiscountKind::Percent(percent_of_basis_points(bp))),
                None => {
                    errors.push(FieldError::new(
                        "percent_off",
                        "invalid_percent",
                        "must be a decimal string between 0.01 and 100 with at most 2 decimals, such as \"12.5\"",
                    ));
                    None
                }
            },
            (None, Some(amount)) => parse_money("amount_off", amount.clone(), currency, true, &mut errors)
                .map(DiscountKind::Fixed),
            _ => {
                errors.push(FieldError::new(
                    "percent_off",
                    "both_or_neither",
                    "give exactly one of percent_off and amount_off",
                ));
                None
            }
        };
        let starts_at = input
            .starts_at
            .and_then(|s| parse_timestamp("starts_at", s, &mut errors));
        let ends_at = input
            .ends_at
            .and_then(|s| parse_timestamp("ends_at", s, &mut errors));
        if let (Some(start), Some(end)) = (starts_at, ends_at)
            && end <= start
        {
            errors.push(window_error());
        }
        let min_subtotal = input
            .min_subtotal
            .clone()
            .and_then(|m| parse_money("min_subtotal", m, currency, false, &mut errors));
        let max_redemptions = input
            .max_redemptions
            .and_then(|n| parse_max_redemptions(n, &mut errors));
        match kind {
            Some(kind) if errors.is_empty() => Ok(NewDiscount {
                code,
                kind,
                starts_at,
                ends_at,
                min_subtotal,
                max_redemptions,
                active: input.active,
            }),
            _ => Err(errors),
        }
    }
}

/// Raw partial change from any edge: absent fields stay, `Some(None)` clears.
#[derive(Debug, Clone, Default)]
pub struct PatchInput<'a> {
    /// Active flag.
    pub active: Option<bool>,
    /// New end, or none.
    pub ends_at: Option<Option<&'a str>>,
    /// New maximum, or none.
    pub max_redemptions: Option<Option<i64>>,
    /// New minimum subtotal (parsed from its wire form), or none.
    pub min_subtotal: Option<Option<Result<Money, MoneyError>>>,
}

/// A partial change to a discount, validated; the code and the kind never change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiscountPatch {
    /// New active flag.
    pub active: Option<bool>,
    /// New end or none.
    pub ends_at: Option<Option<NaiveDateTime>>,
    /// New maximum or none; at or below the redemptions so far, the code is used up.
    pub max_redemptions: Option<Option<u32>>,
    /// New minimum subtotal or none.
    pub min_subtotal: Option<Option<Money>>,
}

impl DiscountPatch {
    /// Validates a patch for a merchant in `currency`, collecting every error.
    pub fn parse(input: &PatchInput<'_>, currency: Currency) -> Result<DiscountPatch, Vec<FieldError>> {
        let mut errors = Vec::new();
        let patch = DiscountPatch {
            active: input.active,
            ends_at: input
                .ends_at
                .map(|e| e.and_then(|s| parse_timestamp("ends_at", s, &mut errors))),
            max_redemptions: input
                .max_redemptions
                .map(|n| n.and_then(|n| parse_max_redemptions(n, &mut errors))),
            min_subtotal: input
                .min_subtotal
                .clone()
                .map(|m| m.and_then(|m| parse_money("min_subtotal", m, currency, false, &mut errors))),
        };
        if errors.is_empty() { Ok(patch) } else { Err(errors) }
    }
}

/// What a discount change can run into.
#[derive(Debug, thiserror::Error)]
pub enum DiscountError {
    /// No such discount for this merchant.
    #[error("discount not found")]
    NotFound,
    /// Another discount of the merchant has this code.
    #[error("another discount already has the code `{0}`")]
    CodeTaken(String),
    /// Input broke field rules.
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
    /// The database could not be reached.
    #[error(transparent)]
    Unavailable(#[from] crate::db::DbError),
}

const KIND_PERCENT: &str = "percent";
const KIND_FIXED: &str = "fixed";

#[derive(Queryable, Selectable)]
#[diesel(table_name = discounts)]
struct DiscountRow {
    id: DbUuid,
    code: String,
    kind: String,
    percent_bp: Option<i32>,
    amount_minor: Option<i64>,
    currency: Option<String>,
    starts_at: Option<NaiveDateTime>,
    ends_at: Option<NaiveDateTime>,
    min_subtotal_minor: Option<i64>,
    max_redemptions: Option<i32>,
    redemptions: i32,
    active: bool,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

fn corrupt(what: String) -> diesel::result::Error {
    diesel::result::Error::DeserializationError(what.into())
}

impl TryFrom<DiscountRow> for Discount {
    type Error = diesel::result::Error;

    fn try_from(row: DiscountRow) -> Result<Self, Self::Error> {
        let id = row.id.0;
        let missing = |column: &str| corrupt(format!("discount {id} has no {column}"));
        // The currency of every amount of the discount (the merchant's), stored whatever the kind.
        let currency = row
            .currency
            .as_deref()
            .map(Currency::parse)
            .transpose()
            .map_err(|e| corrupt(e.to_string()))?;
        let money = |minor: i64| {
            currency
                .map(|c| Money::from_minor(minor, c))
                .ok_or_else(|| missing("currency"))
        };
        let kind = match row.kind.as_str() {
            KIND_PERCENT => DiscountKind::Percent(percent_of_basis_points(
                row.percent_bp.ok_or_else(|| missing("percent_bp"))?,
            )),
            KIND_FIXED => {
                DiscountKind::Fixed(money(row.amount_minor.ok_or_else(|| missing("amount_minor"))?)?)
            }
            other => return Err(corrupt(format!("discount {id} has an unknown kind `{other}`"))),
        };
        let count = |n: i32| u32::try_from(n).map_err(|e| corrupt(e.to_string()));
        Ok(Discount {
            id,
            code: row.code,
            kind,
            starts_at: row.starts_at,
            ends_at: row.ends_at,
            min_subtotal: row.min_subtotal_minor.map(money).transpose()?,
            max_redemptions: row.max_redemptions.map(count).transpose()?,
            redemptions: count(row.redemptions)?,
            active: row.active,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// A redemption count as the 32-bit column holds it (values are checked at the edge).
fn column_count(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The merchant's discount with `code`, in any case.
pub fn find_by_code(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    code: &str,
) -> QueryResult<Option<Discount>> {
    discounts::table
        .filter(discounts::merchant_id.eq(merchant_id))
        .filter(discounts::code.eq(normalize_code(code)))
        .select(DiscountRow::as_select())
        .first(conn)
        .optional()?
        .map(Discount::try_from)
        .transpose()
}

/// The merchant's discount `id` (another merchant's answers `None`).
pub fn get(conn: &mut DbConnection, merchant_id: MerchantId, id: Uuid) -> QueryResult<Option<Discount>> {
    discounts::table
        .filter(discounts::id.eq(DbUuid(id)))
        .filter(discounts::merchant_id.eq(merchant_id))
        .select(DiscountRow::as_select())
        .first(conn)
        .optional()?
        .map(Discount::try_from)
        .transpose()
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct DiscountQuery {
    /// Where the page starts and which way it reads.
    pub page: crate::db::Keyset,
    /// Page size.
    pub limit: i64,
    /// Only active (or only inactive) discounts.
    pub active: Option<bool>,
}

/// A page of the merchant's discounts, newest created first unless the query asks oldest first.
pub fn list(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    q: &DiscountQuery,
) -> QueryResult<Vec<Discount>> {
    let mut query = discounts::table
        .filter(discounts::merchant_id.eq(merchant_id))
        .limit(q.limit)
        .select(DiscountRow::as_select())
        .into_boxed();
    query = crate::keyset!(query, discounts::id, q.page);
    if let Some(active) = q.active {
        query = query.filter(discounts::active.eq(active));
    }
    query.load(conn)?.into_iter().map(Discount::try_from).collect()
}

/// Creates a discount for a merchant in `currency` (the currency of its amounts).
pub fn create(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    currency: Currency,
    new: &NewDiscount,
) -> Result<Discount, DiscountError> {
    let id = Uuid::now_v7();
    let at = now();
    let (kind, percent_bp, amount_minor) = match new.kind {
        DiscountKind::Percent(percent) => (
            KIND_PERCENT,
            Some(basis_points_of(percent).ok_or_else(|| {
                DiscountError::Invalid(vec![FieldError::new(
                    "percent_off",
                    "invalid_percent",
                    "must be between 0.01 and 100 with at most 2 decimals",
                )])
            })?),
            None,
        ),
        DiscountKind::Fixed(amount) => (KIND_FIXED, None, Some(amount.minor())),
    };
    write_transaction(conn, |conn| {
        diesel::insert_into(discounts::table)
            .values((
                discounts::id.eq(DbUuid(id)),
                discounts::merchant_id.eq(merchant_id),
                discounts::code.eq(&new.code),
                discounts::kind.eq(kind),
                discounts::percent_bp.eq(percent_bp),
                discounts::amount_minor.eq(amount_minor),
                discounts::currency.eq(currency.code()),
                discounts::starts_at.eq(new.starts_at),
                discounts::ends_at.eq(new.ends_at),
                discounts::min_subtotal_minor.eq(new.min_subtotal.map(|m| m.minor())),
                discounts::max_redemptions.eq(new.max_redemptions.map(column_count)),
                discounts::redemptions.eq(0),
                discounts::active.eq(new.active),
                discounts::created_at.eq(at),
                discounts::updated_at.eq(at),
            ))
            .execute(conn)
            .map_err(|e| {
                if is_unique_violation_on(&e, "discounts") {
                    DiscountError::CodeTaken(new.code.clone())
                } else {
                    e.into()
                }
            })?;
        get(conn, merchant_id, id)?.ok_or(DiscountError::NotFound)
    })
}

#[derive(AsChangeset)]
#[diesel(table_name = discounts)]
struct DiscountChanges {
    active: Option<bool>,
    ends_at: Option<Option<NaiveDateTime>>,
    max_redemptions: Option<Option<i32>>,
    min_subtotal_minor: Option<Option<i64>>,
    updated_at: NaiveDateTime,
}

/// Applies a patch to the merchant's discount; a new end must stay after its start.
pub fn update(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    id: Uuid,
    patch: &DiscountPatch,
) -> Result<Discount, DiscountError> {
    write_transaction(conn, |conn| {
        let existing = get(conn, merchant_id, id)?.ok_or(DiscountError::NotFound)?;
        if let (Some(start), Some(Some(end))) = (existing.starts_at, patch.ends_at)
            && end <= start
        {
            return Err(DiscountError::Invalid(vec![window_error()]));
        }
        diesel::update(discounts::table.filter(discounts::id.eq(DbUuid(id))))
            .set(DiscountChanges {
                active: patch.active,
                ends_at: patch.ends_at,
                max_redemptions: patch.max_redemptions.map(|m| m.map(column_count)),
                min_subtotal_minor: patch.min_subtotal.map(|m| m.map(|m| m.minor())),
                updated_at: now(),
            })
            .execute(conn)?;
        get(conn, merchant_id, id)?.ok_or(DiscountError::NotFound)
    })
}

/// Deletes the merchant's discount.
pub fn delete(conn: &mut DbConnection, merchant_id: MerchantId, id: Uuid) -> Result<(), DiscountError> {
    let n = diesel::delete(
        discounts::table
            .filter(discounts::id.eq(DbUuid(id)))
            .filter(discounts::merchant_id.eq(merchant_id)),
    )
    .execute(conn)?;
    if n == 0 {
        return Err(DiscountError::NotFound);
    }
    Ok(())
}

/// Counts one redemption (called when an order is paid): a single conditional UPDATE (redemptions <
/// max_redemptions or no max), so it never exceeds the maximum under any concurrency; returns false when
/// exhausted (or when the merchant has no such discount).
///
/// The condition is evaluated by the database on the row it updates: SQLite runs one writer at a time, and
/// PostgreSQL re-checks it on the newest row version after waiting for a concurrent update to commit.
pub fn redeem(conn: &mut DbConnection, merchant_id: MerchantId, id: Uuid) -> QueryResult<bool> {
    let changed = diesel::update(
        discounts::table
            .filter(discounts::id.eq(DbUuid(id)))
            .filter(discounts::merchant_id.eq(merchant_id))
            .filter(
                discounts::max_redemptions
                    .is_null()
                    .or(discounts::redemptions.nullable().lt(discounts::max_redemptions)),
            ),
    )
    .set((
        discounts::redemptions.eq(discounts::redemptions + 1),
        discounts::updated_at.eq(now()),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn eur() -> Currency {
        Currency::parse("EUR").unwrap()
    }

    fn euros(minor: i64) -> Money {
        Money::from_minor(minor, eur())
    }

    fn at(s: &str) -> NaiveDateTime {
        DateTime::parse_from_rfc3339(s).unwrap().naive_utc()
    }

    fn pct(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn discount(kind: DiscountKind) -> Discount {
        Discount {
            id: Uuid::now_v7(),
            code: "XMAS10".to_owned(),
            kind,
            starts_at: None,
            ends_at: None,
            min_subtotal: None,
            max_redemptions: None,
            redemptions: 0,
            active: true,
            created_at: at("2026-11-01T00:00:00Z"),
            updated_at: at("2026-11-01T00:00:00Z"),
        }
    }

    fn ten_percent() -> Discount {
        discount(DiscountKind::Percent(pct("10")))
    }

    fn input(code: &str) -> DiscountInput<'_> {
        DiscountInput {
            code,
            percent_off: Some("10"),
            amount_off: None,
            starts_at: None,
            ends_at: None,
            min_subtotal: None,
            max_redemptions: None,
            active: true,
        }
    }

    /// The `(field, code)` pairs of `errors`.
    fn codes(errors: &[FieldError]) -> Vec<(&str, &'static str)> {
        errors.iter().map(|e| (e.field.as_str(), e.code)).collect()
    }

    // ---- check -----------------------------------------------------------------------------

    #[test]
    fn an_active_code_without_limits_applies() {
        assert_eq!(
            ten_percent().check(at("2026-12-01T10:00:00Z"), euros(100)),
            Ok(())
        );
    }

    #[test]
    fn an_inactive_code_is_refused_as_inactive() {
        let d = Discount {
            active: false,
            ..ten_percent()
        };

        assert_eq!(
            d.check(at("2026-12-01T10:00:00Z"), euros(100)),
            Err(Refusal::Inactive)
        );
    }

    #[test]
    fn a_code_before_its_start_is_refused_as_not_started_and_applies_from_the_start() {
        let d = Discount {
            starts_at: Some(at("2026-12-01T00:00:00Z")),
            ..ten_percent()
        };

        assert_eq!(
            d.check(at("2026-11-30T23:59:59Z"), euros(100)),
            Err(Refusal::NotStarted)
        );
        assert_eq!(d.check(at("2026-12-01T00:00:00Z"), euros(100)), Ok(()));
    }

    #[test]
    fn a_code_at_or_after_its_end_is_refused_as_expired() {
        let d = Discount {
            ends_at: Some(at("2026-12-26T00:00:00Z")),
            ..ten_percent()
        };

        assert_eq!(d.check(at("2026-12-25T23:59:59Z"), euros(100)), Ok(()));
        assert_eq!(
            d.check(at("2026-12-26T00:00:00Z"), euros(100)),
            Err(Refusal::Expired)
        );
    }

    #[test]
    fn a_code_with_every_redemption_used_is_refused_as_exhausted() {
        let d = Discount {
            max_redemptions: Some(5),
            redemptions: 5,
            ..ten_percent()
        };
        let one_left = Discount {
            redemptions: 4,
            ..d.clone()
        };

        assert_eq!(
            d.check(at("2026-12-01T10:00:00Z"), euros(100)),
            Err(Refusal::Exhausted)
        );
        assert_eq!(one_left.check(at("2026-12-01T10:00:00Z"), euros(100)), Ok(()));
    }

    #[test]
    fn a_cart_below_the_minimum_is_refused_naming_the_minimum() {
        let d = Discount {
            min_subtotal: Some(euros(5000)),
            ..ten_percent()
        };

        assert_eq!(
            d.check(at("2026-12-01T10:00:00Z"), euros(4999)),
            Err(Refusal::BelowMinimum(euros(5000)))
        );
        assert_eq!(d.check(at("2026-12-01T10:00:00Z"), euros(5000)), Ok(()));
    }

    #[test]
    fn a_cart_in_another_currency_never_reaches_the_minimum() {
        let d = Discount {
            min_subtotal: Some(euros(5000)),
            ..ten_percent()
        };
        let dollars = Money::from_minor(1_000_000, Currency::parse("USD").unwrap());

        assert_eq!(
            d.check(at("2026-12-01T10:00:00Z"), dollars),
            Err(Refusal::BelowMinimum(euros(5000)))
        );
    }

    #[test]
    fn an_inactive_code_is_refused_as_inactive_before_anything_else() {
        let d = Discount {
            active: false,
            ends_at: Some(at("2026-01-01T00:00:00Z")),
            max_redemptions: Some(1),
            redemptions: 1,
            ..ten_percent()
        };

        assert_eq!(
            d.check(at("2026-12-01T10:00:00Z"), euros(1)),
            Err(Refusal::Inactive)
        );
    }

    #[test]
    fn each_refusal_reads_as_a_sentence_for_the_shopper() {
        assert_eq!(
            Refusal::BelowMinimum(euros(5000)).to_string(),
            "This code needs a cart of at least 50.00 EUR."
        );
        for r in [
            Refusal::Inactive,
            Refusal::NotStarted,
            Refusal::Expired,
            Refusal::Exhausted,
        ] {
            let text = r.to_string();
            assert!(text.ends_with('.') && text.contains("code"), "{text}");
        }
    }

    // ---- amount_off -------------------------------------------------------------------------

    #[test]
    fn percent_off_rounds_half_away_from_zero_to_the_minor_unit() {
        let cases = [
            ("12.5", 999, 125),  // 1.24875 -> 1.25
            ("10", 5, 1),        // 0.005 -> 0.01
            ("15", 10, 2),       // 0.015 -> 0.02
            ("33.33", 100, 33),  // 0.3333 -> 0.33
            ("12.5", 4, 1),      // 0.005 -> 0.01
            ("12.5", 3, 0),      // 0.00375 -> 0.00
            ("100", 4990, 4990), // all of it
            ("0.01", 4990, 0),   // 0.00499 -> 0.00
        ];
        for (percent, subtotal, expected) in cases {
            let d = discount(DiscountKind::Percent(pct(percent)));
            assert_eq!(
                d.amount_off(euros(subtotal)),
                Ok(euros(expected)),
                "{percent}% of {subtotal}"
            );
        }
    }

    #[test]
    fn percent_off_rounds_in_the_currencys_minor_unit() {
        let yen = Currency::parse("JPY").unwrap();
        let d = discount(DiscountKind::Percent(pct("10")));

        assert_eq!(
            d.amount_off(Money::from_minor(155, yen)),
            Ok(Money::from_minor(16, yen))
        );
    }

    #[test]
    fn a_fixed_amount_above_the_subtotal_takes_off_only_the_subtotal() {
        let d = discount(DiscountKind::Fixed(euros(1000)));

        assert_eq!(d.amount_off(euros(4990)), Ok(euros(1000)));
        assert_eq!(d.amount_off(euros(750)), Ok(euros(750)));
        assert_eq!(d.amount_off(euros(0)), Ok(euros(0)));
    }

    #[test]
    fn a_fixed_amount_in_another_currency_is_a_currency_mismatch() {
        let d = discount(DiscountKind::Fixed(euros(1000)));
        let dollars = Money::from_minor(5000, Currency::parse("USD").unwrap());

        assert_eq!(
            d.amount_off(dollars),
            Err(MoneyError::CurrencyMismatch("EUR", "USD"))
        );
    }

    #[test]
    fn a_negative_subtotal_gets_nothing_off() {
        assert_eq!(ten_percent().amount_off(euros(-500)), Ok(euros(0)));
        assert_eq!(
            discount(DiscountKind::Fixed(euros(100))).amount_off(euros(-500)),
            Ok(euros(0))
        );
    }

    fn any_percent() -> impl Strategy<Value = Decimal> {
        (0_i64..=10_000).prop_map(|bp| Decimal::new(bp, 2))
    }

    proptest! {
        #[test]
        fn a_percent_never_takes_off_more_than_the_subtotal_nor_less_than_zero(
            percent in any_percent(),
            subtotal in 0..=i64::MAX,
        ) {
            let off = discount(DiscountKind::Percent(percent)).amount_off(euros(subtotal)).unwrap();
            prop_assert!(0 <= off.minor() && off.minor() <= subtotal, "{off} of {subtotal}");
            prop_assert_eq!(off.currency(), eur());
        }

        #[test]
        fn a_fixed_amount_never_takes_off_more_than_the_subtotal_nor_less_than_zero(
            amount in any::<i64>(),
            subtotal in 0..=i64::MAX,
        ) {
            let off = discount(DiscountKind::Fixed(euros(amount))).amount_off(euros(subtotal)).unwrap();
            prop_assert!(0 <= off.minor() && off.minor() <= subtotal, "{off} of {subtotal}");
            prop_assert_eq!(off.minor(), amount.clamp(0, subtotal));
        }

        #[test]
        fn a_percent_takes_off_the_rounded_share_below_the_subtotal(
            bp in 0_i64..=10_000,
            subtotal in 0_i64..=1_000_000_000_000,
        ) {
            let off = discount(DiscountKind::Percent(Decimal::new(bp, 2))).amount_off(euros(subtotal)).unwrap();
            let exact = i128::from(subtotal) * i128::from(bp);
            let expected = (exact + 5_000) / 10_000;
            prop_assert_eq!(i128::from(off.minor()), expected);
        }

        #[test]
        fn basis_points_survive_the_round_trip_through_the_percent(bp in 1_i32..=10_000) {
            let percent = percent_of_basis_points(bp);
            prop_assert_eq!(basis_points_of(percent), Some(bp));
            prop_assert_eq!(percent_basis_points(&percent.to_string()), Some(bp));
        }
    }

    // ---- parsing ----------------------------------------------------------------------------

    #[test]
    fn percents_parse_to_basis_points() {
        for (text, bp) in [
            ("10", Some(1000)),
            ("12.5", Some(1250)),
            ("12.50", Some(1250)),
            ("12.500", Some(1250)),
            ("0.01", Some(1)),
            ("100", Some(10_000)),
            ("100.00", Some(10_000)),
            ("0", None),
            ("0.00", None),
            ("0.001", None),
            ("12.345", None),
            ("100.01", None),
            ("-5", None),
            ("+5", None),
            ("1e1", None),
            ("1_0", None),
            (" 10", None),
            ("10.", None),
            (".5", None),
            ("", None),
            ("ten", None),
        ] {
            assert_eq!(percent_basis_points(text), bp, "{text:?}");
        }
    }

    #[test]
    fn a_percent_reads_back_without_trailing_zeros() {
        assert_eq!(percent_of_basis_points(1000).to_string(), "10");
        assert_eq!(percent_of_basis_points(1250).to_string(), "12.5");
        assert_eq!(percent_of_basis_points(1).to_string(), "0.01");
    }

    #[test]
    fn a_code_is_upper_cased() {
        let new = NewDiscount::parse(&input("xmas-10_a"), eur()).unwrap();

        assert_eq!(new.code, "XMAS-10_A");
        assert_eq!(new.kind, DiscountKind::Percent(pct("10")));
    }

    #[test]
    fn a_code_of_the_wrong_length_or_characters_is_invalid() {
        for code in [
            "AB",
            &"A".repeat(33),
            "XMAS 10",
            "NOËL10",
            "XMAS.10",
            " XMAS10",
            "",
        ] {
            let errors = NewDiscount::parse(&input(code), eur()).unwrap_err();
            assert_eq!(codes(&errors), [("code", "invalid_code")], "{code:?}");
        }
        assert!(NewDiscount::parse(&input("ABC"), eur()).is_ok());
        assert!(NewDiscount::parse(&input(&"A".repeat(32)), eur()).is_ok());
    }

    #[test]
    fn both_or_neither_of_percent_and_amount_is_refused() {
        let both = DiscountInput {
            amount_off: Some(Ok(euros(1000))),
            ..input("XMAS10")
        };
        let neither = DiscountInput {
            percent_off: None,
            ..input("XMAS10")
        };

        for i in [both, neither] {
            assert_eq!(
                codes(&NewDiscount::parse(&i, eur()).unwrap_err()),
                [("percent_off", "both_or_neither")]
            );
        }
    }

    #[test]
    fn a_fixed_amount_must_be_positive_and_in_the_merchants_currency() {
        let fixed = |amount: Result<Money, MoneyError>| DiscountInput {
            percent_off: None,
            amount_off: Some(amount),
            ..input("TENOFF")
        };
        let usd = Money::from_minor(1000, Currency::parse("USD").unwrap());

        let zero = NewDiscount::parse(&fixed(Ok(euros(0))), eur()).unwrap_err();
        let dollars = NewDiscount::parse(&fixed(Ok(usd)), eur()).unwrap_err();
        let negative = NewDiscount::parse(&fixed(Err(MoneyError::Negative)), eur()).unwrap_err();
        let ten = NewDiscount::parse(&fixed(Ok(euros(1000))), eur()).unwrap();

        assert_eq!(codes(&zero), [("amount_off", "zero_amount")]);
        assert_eq!(codes(&dollars), [("amount_off", "currency_mismatch")]);
        assert_eq!(codes(&negative), [("amount_off", "negative_amount")]);
        assert_eq!(ten.kind, DiscountKind::Fixed(euros(1000)));
    }

    #[test]
    fn the_window_must_end_after_it_starts() {
        let window = |start: &'static str, end: &'static str| DiscountInput {
            starts_at: Some(start),
            ends_at: Some(end),
            ..input("XMAS10")
        };

        let same = NewDiscount::parse(
            &window("2026-12-01T00:00:00Z", "2026-12-01T01:00:00+01:00"),
            eur(),
        );
        let ok = NewDiscount::parse(
            &window("2026-12-01T00:00:00Z", "2026-12-26T00:00:00+01:00"),
            eur(),
        )
        .unwrap();

        assert_eq!(codes(&same.unwrap_err()), [("ends_at", "invalid_window")]);
        assert_eq!(ok.ends_at, Some(at("2026-12-25T23:00:00Z")));
    }

    #[test]
    fn every_broken_field_is_listed_at_once() {
        let broken = DiscountInput {
            code: "X",
            percent_off: Some("120"),
            amount_off: None,
            starts_at: Some("tomorrow"),
            ends_at: Some("2026-13-01T00:00:00Z"),
            min_subtotal: Some(Ok(Money::from_minor(1, Currency::parse("USD").unwrap()))),
            max_redemptions: Some(0),
            active: true,
        };

        let errors = NewDiscount::parse(&broken, eur()).unwrap_err();

        assert_eq!(
            codes(&errors),
            [
                ("code", "invalid_code"),
                ("percent_off", "invalid_percent"),
                ("starts_at", "invalid_timestamp"),
                ("ends_at", "invalid_timestamp"),
                ("min_subtotal", "currency_mismatch"),
                ("max_redemptions", "out_of_range"),
            ]
        );
    }

    #[test]
    fn max_redemptions_must_fit_between_one_and_the_column_maximum() {
        for (n, ok) in [
            (0, false),
            (1, true),
            (i64::from(MAX_REDEMPTIONS), true),
            (i64::from(MAX_REDEMPTIONS) + 1, false),
            (-1, false),
        ] {
            let i = DiscountInput {
                max_redemptions: Some(n),
                ..input("XMAS10")
            };
            assert_eq!(NewDiscount::parse(&i, eur()).is_ok(), ok, "{n}");
        }
    }

    #[test]
    fn a_patch_clears_with_null_and_checks_what_it_sets() {
        let clear = PatchInput {
            ends_at: Some(None),
            max_redemptions: Some(None),
            min_subtotal: Some(None),
            active: Some(false),
        };
        let broken = PatchInput {
            ends_at: Some(Some("soon")),
            max_redemptions: Some(Some(0)),
            min_subtotal: Some(Some(Err(MoneyError::Negative))),
            active: None,
        };

        let cleared = DiscountPatch::parse(&clear, eur()).unwrap();
        let errors = DiscountPatch::parse(&broken, eur()).unwrap_err();

        assert_eq!(
            cleared,
            DiscountPatch {
                active: Some(false),
                ends_at: Some(None),
                max_redemptions: Some(None),
                min_subtotal: Some(None),
            }
        );
        assert_eq!(
            codes(&errors),
            [
                ("ends_at", "invalid_timestamp"),
                ("max_redemptions", "out_of_range"),
                ("min_subtotal", "negative_amount"),
            ]
        );
    }

    #[test]
    fn a_shoppers_code_is_trimmed_and_upper_cased() {
        assert_eq!(normalize_code("  xmas10 "), "XMAS10");
    }
}
