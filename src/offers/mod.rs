//! Merchant-defined offers: when a shopper adds product X to the cart, the conversation proposes
//! variant Y in the merchant's own words, optionally at a discount on Y's unit price.
//!
//! Only catalog items are offered for now: a better or bigger version of X (`upsell`) or a companion
//! item (`cross_sell`). Room upgrades (a bookable offered for a bookable) will come with a migration
//! of their own, as another [`OfferKind`] with its own trigger and target columns; the wire shape
//! already nests `trigger` and `offer` in objects so that they can name a bookable then.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use uuid::Uuid;

use crate::catalog::domain::FieldError;
use crate::db::schema::{offers, products, variants};
use crate::db::{DbConnection, DbUuid, now, write_transaction};
use crate::money::{Currency, Money, MoneyError};

/// The longest merchant sentence, in characters.
pub const MAX_TEXT_CHARS: usize = 500;
/// 100 % in basis points, the largest percent discount.
const MAX_BASIS_POINTS: i64 = 10_000;

/// What an offer proposes, relative to the product that triggers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OfferKind {
    /// A better or bigger version of the trigger product.
    Upsell,
    /// A companion item.
    CrossSell,
}

impl OfferKind {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            OfferKind::Upsell => "upsell",
            OfferKind::CrossSell => "cross_sell",
        }
    }

    /// The kind named `name`, if it is one we build.
    pub fn from_name(name: &str) -> Option<OfferKind> {
        match name {
            "upsell" => Some(OfferKind::Upsell),
            "cross_sell" => Some(OfferKind::CrossSell),
            _ => None,
        }
    }

    /// Parses the `kind` field, reporting an unknown one in `errors`.
    pub fn parse(field: &str, name: &str, errors: &mut Vec<FieldError>) -> Option<OfferKind> {
        let kind = OfferKind::from_name(name);
        if kind.is_none() {
            let detail = if name == "upgrade" {
                "room upgrades are not available yet: use `upsell` or `cross_sell`"
            } else {
                "must be `upsell` or `cross_sell`"
            };
            errors.push(FieldError::new(field, "invalid_kind", detail));
        }
        kind
    }
}

/// How much cheaper the offered variant is than its catalog price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferDiscount {
    /// A percent of the unit price (20 means 20 %), above 0 and at most 100, in steps of 0.01.
    Percent(Decimal),
    /// A fixed amount off the unit price, in the merchant's currency.
    Fixed(Money),
}

/// `percent` in basis points, when it is a whole number of them between 1 and 10 000.
fn basis_points(percent: Decimal) -> Option<i32> {
    let bp = percent.checked_mul(Decimal::ONE_HUNDRED)?;
    if !bp.fract().is_zero() {
        return None;
    }
    let bp = bp.to_i64().filter(|bp| (1..=MAX_BASIS_POINTS).contains(bp))?;
    i32::try_from(bp).ok()
}

/// The percent `bp` basis points stand for, without trailing zeros ("20", "12.5").
fn percent_from_basis_points(bp: i32) -> Decimal {
    Decimal::new(i64::from(bp), 2).normalize()
}

impl OfferDiscount {
    /// A percent discount from its API text ("20", "12.5"): plain digits with an optional decimal
    /// part, above 0, at most 100, at most two meaningful decimals.
    pub fn parse_percent(field: &str, text: &str, errors: &mut Vec<FieldError>) -> Option<OfferDiscount> {
        let plain = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        let well_formed = match text.split_once('.') {
            Some((integer, fraction)) => plain(integer) && plain(fraction),
            None => plain(text),
        };
        let bp = well_formed
            .then(|| Decimal::from_str_exact(text).ok())
            .flatten()
            .and_then(basis_points);
        match bp {
            Some(bp) => Some(OfferDiscount::Percent(percent_from_basis_points(bp))),
            None => {
                errors.push(FieldError::new(
                    field,
                    "invalid_percent",
                    "must be a decimal string above 0 and at most 100, with at most 2 decimals, such as \"12.5\"",
                ));
                None
            }
        }
    }

    /// A fixed amount off from its parsed wire form: more than zero (the currency is checked against
    /// the offered variant when the offer is stored).
    pub fn parse_fixed(
        field: &str,
        amount: Result<Money, MoneyError>,
        errors: &mut Vec<FieldError>,
    ) -> Option<OfferDiscount> {
        match amount {
            Err(e) => {
                errors.push(FieldError::new(field, e.code(), e.to_string()));
                None
            }
            Ok(m) if m.is_negative() => {
                errors.push(FieldError::new(
                    field,
                    "negative_amount",
                    "a discount must not be negative",
                ));
                None
            }
            Ok(m) if m.minor() == 0 => {
                errors.push(FieldError::new(
                    field,
                    "out_of_range",
                    "a discount must be more than zero: leave it out for none",
                ));
                None
            }
            Ok(m) => Some(OfferDiscount::Fixed(m)),
        }
    }

    /// At most one of a percent (its text) and a fixed amount: both is an error on `fixed_field`.
    pub fn parse_either(
        (percent_field, percent): (&str, Option<&str>),
        (fixed_field, fixed): (&str, Option<Result<Money, MoneyError>>),
        errors: &mut Vec<FieldError>,
    ) -> Option<OfferDiscount> {
        match (percent, fixed) {
            (Some(_), Some(_)) => {
                errors.push(FieldError::new(
                    fixed_field,
                    "mutually_exclusive",
                    format!("give `{percent_field}` or `{fixed_field}`, not both"),
                ));
                None
            }
            (Some(text), None) => OfferDiscount::parse_percent(percent_field, text, errors),
            (None, Some(amount)) => OfferDiscount::parse_fixed(fixed_field, amount, errors),
            (None, None) => None,
        }
    }
}

/// Checks the merchant's sentence: trimmed, 1 to [`MAX_TEXT_CHARS`] characters.
pub fn parse_text(field: &str, value: &str, errors: &mut Vec<FieldError>) -> String {
    let value = value.trim();
    if value.is_empty() {
        errors.push(FieldError::new(field, "required", "must not be empty"));
    } else if value.chars().count() > MAX_TEXT_CHARS {
        errors.push(FieldError::new(
            field,
            "too_long",
            format!("must be at most {MAX_TEXT_CHARS} characters"),
        ));
    }
    value.to_owned()
}

/// A merchant's offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// Id.
    pub id: Uuid,
    /// Upsell or cross-sell.
    pub kind: OfferKind,
    /// The merchant's product whose addition to the cart triggers the offer.
    pub trigger_product_id: Uuid,
    /// The merchant's variant offered (of another product than the trigger).
    pub offer_variant_id: Uuid,
    /// The discount on the offered variant's unit price, if any.
    pub discount: Option<OfferDiscount>,
    /// The merchant's sentence, e.g. "Add wool socks?".
    pub text: String,
    /// Whether the conversation proposes it.
    pub active: bool,
    /// Created (UTC).
    pub created_at: NaiveDateTime,
    /// Last changed (UTC).
    pub updated_at: NaiveDateTime,
}

impl Offer {
    /// The offered unit price: `base` minus the discount, never below zero.
    ///
    /// A percent discount is rounded half away from zero to the minor unit before it is taken off;
    /// a negative `base` is refused (`Negative`), a fixed discount in another currency too
    /// (`CurrencyMismatch`).
    pub fn price(&self, base: Money) -> Result<Money, MoneyError> {
        if base.is_negative() {
            return Err(MoneyError::Negative);
        }
        let off = match self.discount {
            None => return Ok(base),
            Some(OfferDiscount::Percent(percent)) => base.percent_of(percent)?,
            Some(OfferDiscount::Fixed(amount)) => amount,
        };
        let price = base.checked_sub(off)?;
        Ok(if price.is_negative() {
            Money::zero(base.currency())
        } else {
            price
        })
    }
}

/// A new offer, validated at the edge (the catalog checks happen in [`create`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOffer {
    /// Upsell or cross-sell.
    pub kind: OfferKind,
    /// The trigger product.
    pub trigger_product_id: Uuid,
    /// The offered variant.
    pub offer_variant_id: Uuid,
    /// The discount, if any.
    pub discount: Option<OfferDiscount>,
    /// The merchant's sentence.
    pub text: String,
    /// Whether the conversation proposes it.
    pub active: bool,
}

/// A partial change to an offer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OfferPatch {
    /// New sentence.
    pub text: Option<String>,
    /// New active flag.
    pub active: Option<bool>,
    /// New discount, or none (`Some(None)`).
    pub discount: Option<Option<OfferDiscount>>,
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct OfferQuery {
    /// Only offers after this id (the cursor).
    pub after: Option<Uuid>,
    /// Page size.
    pub limit: i64,
    /// Only offers triggered by this product.
    pub product_id: Option<Uuid>,
}

/// What an offer change can run into.
#[derive(Debug, thiserror::Error)]
pub enum OfferError {
    /// No such offer for this merchant.
    #[error("offer not found")]
    NotFound,
    /// Input broke field rules, or named catalog items the merchant does not have.
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
    /// The database could not be reached.
    #[error(transparent)]
    Unavailable(#[from] crate::db::DbError),
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = offers)]
struct OfferRow {
    id: DbUuid,
    kind: String,
    trigger_product_id: DbUuid,
    offer_variant_id: DbUuid,
    discount_percent_bp: Option<i32>,
    discount_minor: Option<i64>,
    currency: Option<String>,
    text: String,
    active: bool,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

fn corrupt(what: String) -> diesel::result::Error {
    diesel::result::Error::DeserializationError(what.into())
}

impl TryFrom<OfferRow> for Offer {
    type Error = diesel::result::Error;

    fn try_from(row: OfferRow) -> Result<Self, Self::Error> {
        let kind = OfferKind::from_name(&row.kind)
            .ok_or_else(|| corrupt(format!("unknown offer kind `{}`", row.kind)))?;
        let discount = match (row.discount_percent_bp, row.discount_minor, row.currency) {
            (None, None, None) => None,
            (Some(bp), None, None) if (1..=MAX_BASIS_POINTS).contains(&i64::from(bp)) => {
                Some(OfferDiscount::Percent(percent_from_basis_points(bp)))
            }
            (None, Some(minor), Some(code)) => {
                let currency = Currency::parse(&code).map_err(|e| corrupt(e.to_string()))?;
                Some(OfferDiscount::Fixed(Money::from_minor(minor, currency)))
            }
            _ => {
                return Err(corrupt(format!(
                    "offer {} has an inconsistent discount",
                    row.id.0
                )));
            }
        };
        Ok(Offer {
            id: row.id.0,
            kind,
            trigger_product_id: row.trigger_product_id.0,
            offer_variant_id: row.offer_variant_id.0,
            discount,
            text: row.text,
            active: row.active,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// The discount as its three columns: basis points, minor units, currency.
type DiscountColumns = (Option<i32>, Option<i64>, Option<&'static str>);

fn discount_columns(discount: Option<OfferDiscount>) -> Result<DiscountColumns, OfferError> {
    match discount {
        None => Ok((None, None, None)),
        Some(OfferDiscount::Percent(percent)) => match basis_points(percent) {
            Some(bp) => Ok((Some(bp), None, None)),
            None => Err(OfferError::Invalid(vec![FieldError::new(
                "discount_percent",
                "invalid_percent",
                "must be above 0 and at most 100, with at most 2 decimals",
            )])),
        },
        Some(OfferDiscount::Fixed(amount)) => {
            Ok((None, Some(amount.minor()), Some(amount.currency().code())))
        }
    }
}

/// A fixed discount must be in the currency of the price it comes off.
fn check_discount_currency(
    discount: Option<OfferDiscount>,
    variant_currency: &str,
    errors: &mut Vec<FieldError>,
) {
    if let Some(OfferDiscount::Fixed(amount)) = discount
        && amount.currency().code() != variant_currency
    {
        errors.push(FieldError::new(
            "price_delta",
            "currency_mismatch",
            format!("the discount must be in the merchant's currency {variant_currency}"),
        ));
    }
}

/// Checks that the trigger product and the offered variant are the merchant's, and that the variant
/// is not one of the trigger's own; another merchant's ids answer exactly as unknown ones.
fn check_catalog(conn: &mut DbConnection, merchant_id: Uuid, new: &NewOffer) -> Result<(), OfferError> {
    let mut errors = Vec::new();
    let trigger_found: i64 = products::table
        .filter(products::id.eq(DbUuid(new.trigger_product_id)))
        .filter(products::merchant_id.eq(DbUuid(merchant_id)))
        .count()
        .get_result(conn)?;
    if trigger_found == 0 {
        errors.push(FieldError::new(
            "trigger.product_id",
            "not_found",
            "no such product in the catalog",
        ));
    }
    let variant: Option<(DbUuid, String)> = variants::table
        .filter(variants::id.eq(DbUuid(new.offer_variant_id)))
        .filter(variants::merchant_id.eq(DbUuid(merchant_id)))
        .select((variants::product_id, variants::currency))
        .first(conn)
        .optional()?;
    match variant {
        None => errors.push(FieldError::new(
            "offer.variant_id",
            "not_found",
            "no such variant in the catalog",
        )),
        Some((product_id, _)) if product_id.0 == new.trigger_product_id => errors.push(FieldError::new(
            "offer.variant_id",
            "same_product",
            "offer a variant of another product than the trigger",
        )),
        Some((_, currency)) => check_discount_currency(new.discount, &currency, &mut errors),
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(OfferError::Invalid(errors))
    }
}

/// Creates an offer after checking the catalog items it names.
pub fn create(conn: &mut DbConnection, merchant_id: Uuid, new: &NewOffer) -> Result<Offer, OfferError> {
    let (bp, minor, currency) = discount_columns(new.discount)?;
    write_transaction(conn, |conn| {
        check_catalog(conn, merchant_id, new)?;
        let id = Uuid::now_v7();
        let at = now();
        diesel::insert_into(offers::table)
            .values((
                offers::id.eq(DbUuid(id)),
                offers::merchant_id.eq(DbUuid(merchant_id)),
                offers::kind.eq(new.kind.as_str()),
                offers::trigger_product_id.eq(DbUuid(new.trigger_product_id)),
                offers::offer_variant_id.eq(DbUuid(new.offer_variant_id)),
                offers::discount_percent_bp.eq(bp),
                offers::discount_minor.eq(minor),
                offers::currency.eq(currency),
                offers::text.eq(&new.text),
                offers::active.eq(new.active),
                offers::created_at.eq(at),
                offers::updated_at.eq(at),
            ))
            .execute(conn)?;
        get(conn, merchant_id, id)?.ok_or(OfferError::NotFound)
    })
}

/// The merchant's offer `id` (another merchant's answers `None`).
pub fn get(conn: &mut DbConnection, merchant_id: Uuid, id: Uuid) -> QueryResult<Option<Offer>> {
    offers::table
        .filter(offers::id.eq(DbUuid(id)))
        .filter(offers::merchant_id.eq(DbUuid(merchant_id)))
        .select(OfferRow::as_select())
        .first(conn)
        .optional()?
        .map(Offer::try_from)
        .transpose()
}

/// A page of the merchant's offers in id (creation) order.
pub fn list(conn: &mut DbConnection, merchant_id: Uuid, q: &OfferQuery) -> QueryResult<Vec<Offer>> {
    let mut query = offers::table
        .filter(offers::merchant_id.eq(DbUuid(merchant_id)))
        .order(offers::id.asc())
        .limit(q.limit)
        .select(OfferRow::as_select())
        .into_boxed();
    if let Some(after) = q.after {
        query = query.filter(offers::id.gt(DbUuid(after)));
    }
    if let Some(product_id) = q.product_id {
        query = query.filter(offers::trigger_product_id.eq(DbUuid(product_id)));
    }
    query.load(conn)?.into_iter().map(Offer::try_from).collect()
}

/// The merchant's active offers triggered by adding `product_id`, oldest first.
pub fn triggered_by(conn: &mut DbConnection, merchant_id: Uuid, product_id: Uuid) -> QueryResult<Vec<Offer>> {
    offers::table
        .filter(offers::merchant_id.eq(DbUuid(merchant_id)))
        .filter(offers::trigger_product_id.eq(DbUuid(product_id)))
        .filter(offers::active.eq(true))
        .order((offers::created_at.asc(), offers::id.asc()))
        .select(OfferRow::as_select())
        .load(conn)?
        .into_iter()
        .map(Offer::try_from)
        .collect()
}

/// Applies a patch to the merchant's offer.
pub fn update(
    conn: &mut DbConnection,
    merchant_id: Uuid,
    id: Uuid,
    patch: OfferPatch,
) -> Result<Offer, OfferError> {
    write_transaction(conn, |conn| {
        let mut offer = get(conn, merchant_id, id)?.ok_or(OfferError::NotFound)?;
        if let Some(discount) = patch.discount {
            if let Some(OfferDiscount::Fixed(_)) = discount {
                let variant_currency: String = variants::table
                    .filter(variants::id.eq(DbUuid(offer.offer_variant_id)))
                    .select(variants::currency)
                    .first(conn)?;
                let mut errors = Vec::new();
                check_discount_currency(discount, &variant_currency, &mut errors);
                if !errors.is_empty() {
                    return Err(OfferError::Invalid(errors));
                }
            }
            offer.discount = discount;
        }
        if let Some(text) = patch.text {
            offer.text = text;
        }
        if let Some(active) = patch.active {
            offer.active = active;
        }
        let (bp, minor, currency) = discount_columns(offer.discount)?;
        diesel::update(offers::table.filter(offers::id.eq(DbUuid(id))))
            .set((
                offers::discount_percent_bp.eq(bp),
                offers::discount_minor.eq(minor),
                offers::currency.eq(currency),
                offers::text.eq(&offer.text),
                offers::active.eq(offer.active),
                offers::updated_at.eq(now()),
            ))
            .execute(conn)?;
        get(conn, merchant_id, id)?.ok_or(OfferError::NotFound)
    })
}

/// Deletes the merchant's offer; `false` when it has none with this id.
pub fn delete(conn: &mut DbConnection, merchant_id: Uuid, id: Uuid) -> QueryResult<bool> {
    let n = diesel::delete(
        offers::table
            .filter(offers::id.eq(DbUuid(id)))
            .filter(offers::merchant_id.eq(DbUuid(merchant_id))),
    )
    .execute(conn)?;
    Ok(n > 0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn currency(code: &str) -> Currency {
        Currency::parse(code).unwrap()
    }

    fn eur(minor: i64) -> Money {
        Money::from_minor(minor, currency("EUR"))
    }

    fn offer(discount: Option<OfferDiscount>) -> Offer {
        let at = chrono::DateTime::from_timestamp(1_764_000_000, 0)
            .unwrap()
            .naive_utc();
        Offer {
            id: Uuid::now_v7(),
            kind: OfferKind::CrossSell,
            trigger_product_id: Uuid::now_v7(),
            offer_variant_id: Uuid::now_v7(),
            discount,
            text: "Add wool socks?".to_owned(),
            active: true,
            created_at: at,
            updated_at: at,
        }
    }

    fn percent(text: &str) -> OfferDiscount {
        let mut errors = Vec::new();
        let discount = OfferDiscount::parse_percent("discount_percent", text, &mut errors);
        assert_eq!(errors, Vec::new(), "{text}");
        discount.unwrap()
    }

    /// The codes a percent text is refused with.
    fn percent_errors(text: &str) -> Vec<&'static str> {
        let mut errors = Vec::new();
        OfferDiscount::parse_percent("discount_percent", text, &mut errors);
        errors.iter().map(|e| e.code).collect()
    }

    // ---- price ----------------------------------------------------------------------------

    #[test]
    fn twenty_percent_off_nine_euros_is_seven_twenty() {
        assert_eq!(offer(Some(percent("20"))).price(eur(900)), Ok(eur(720)));
    }

    #[test]
    fn a_fixed_discount_comes_off_the_unit_price() {
        let two_euros = OfferDiscount::Fixed(eur(200));
        assert_eq!(offer(Some(two_euros)).price(eur(900)), Ok(eur(700)));
    }

    #[test]
    fn a_fixed_discount_above_the_price_makes_it_free_never_negative() {
        let twelve_euros = OfferDiscount::Fixed(eur(1200));
        assert_eq!(offer(Some(twelve_euros)).price(eur(900)), Ok(eur(0)));
    }

    #[test]
    fn no_discount_leaves_the_price_alone() {
        assert_eq!(offer(None).price(eur(900)), Ok(eur(900)));
    }

    #[test]
    fn a_percent_of_yen_is_rounded_to_whole_yen_half_away_from_zero() {
        let yen = |minor| Money::from_minor(minor, currency("JPY"));
        // 12.5 % of 999 JPY is 124.875, rounded to 125 off.
        assert_eq!(offer(Some(percent("12.5"))).price(yen(999)), Ok(yen(874)));
        // 10 % of 5 JPY is 0.5, rounded to 1 off.
        assert_eq!(offer(Some(percent("10"))).price(yen(5)), Ok(yen(4)));
        // 10 % of 4 JPY is 0.4, rounded to nothing off.
        assert_eq!(offer(Some(percent("10"))).price(yen(4)), Ok(yen(4)));
    }

    #[test]
    fn a_hundred_percent_makes_it_free() {
        assert_eq!(offer(Some(percent("100"))).price(eur(4990)), Ok(eur(0)));
    }

    #[test]
    fn a_fixed_discount_in_another_currency_is_refused() {
        let dollars = OfferDiscount::Fixed(Money::from_minor(200, currency("USD")));
        assert_eq!(
            offer(Some(dollars)).price(eur(900)),
            Err(MoneyError::CurrencyMismatch("EUR", "USD"))
        );
    }

    #[test]
    fn a_negative_base_price_is_refused() {
        assert_eq!(offer(None).price(eur(-1)), Err(MoneyError::Negative));
    }

    // ---- parsing --------------------------------------------------------------------------

    #[test]
    fn percent_texts_are_read_exactly_without_trailing_zeros() {
        assert_eq!(percent("20"), OfferDiscount::Percent(Decimal::new(20, 0)));
        assert_eq!(percent("12.5"), OfferDiscount::Percent(Decimal::new(125, 1)));
        assert_eq!(percent("20.000"), OfferDiscount::Percent(Decimal::new(20, 0)));
        assert_eq!(percent("0.01"), OfferDiscount::Percent(Decimal::new(1, 2)));
        assert_eq!(percent("100"), OfferDiscount::Percent(Decimal::ONE_HUNDRED));
        let OfferDiscount::Percent(p) = percent("12.50") else {
            panic!("a percent");
        };
        assert_eq!(p.to_string(), "12.5");
    }

    #[test]
    fn percents_outside_the_range_or_finer_than_a_basis_point_are_refused() {
        for text in [
            "0",
            "0.00",
            "100.01",
            "101",
            "-5",
            "+5",
            "12.345",
            "0.001",
            "",
            ".5",
            "5.",
            "1e2",
            "1_0",
            " 5",
            "abc",
            "99999999999999999999999999999999",
        ] {
            assert_eq!(percent_errors(text), vec!["invalid_percent"], "{text:?}");
        }
    }

    #[test]
    fn a_zero_or_negative_fixed_discount_is_refused() {
        let mut errors = Vec::new();
        assert_eq!(
            OfferDiscount::parse_fixed("price_delta", Ok(eur(0)), &mut errors),
            None
        );
        assert_eq!(
            OfferDiscount::parse_fixed("price_delta", Ok(eur(-1)), &mut errors),
            None
        );
        assert_eq!(
            OfferDiscount::parse_fixed("price_delta", Err(MoneyError::Negative), &mut errors),
            None
        );
        let codes: Vec<_> = errors.iter().map(|e| e.code).collect();
        assert_eq!(codes, ["out_of_range", "negative_amount", "negative_amount"]);
    }

    #[test]
    fn a_percent_and_a_fixed_amount_together_are_refused() {
        let mut errors = Vec::new();
        let discount = OfferDiscount::parse_either(
            ("discount_percent", Some("20")),
            ("price_delta", Some(Ok(eur(200)))),
            &mut errors,
        );
        assert_eq!(discount, None);
        assert_eq!(errors.len(), 1);
        assert_eq!(
            (errors[0].field.as_str(), errors[0].code),
            ("price_delta", "mutually_exclusive")
        );
    }

    #[test]
    fn either_discount_alone_is_read() {
        let mut errors = Vec::new();
        let fixed = OfferDiscount::parse_either(
            ("discount_percent", None),
            ("price_delta", Some(Ok(eur(200)))),
            &mut errors,
        );
        let pct = OfferDiscount::parse_either(
            ("discount_percent", Some("20")),
            ("price_delta", None),
            &mut errors,
        );
        let none =
            OfferDiscount::parse_either(("discount_percent", None), ("price_delta", None), &mut errors);
        assert!(errors.is_empty());
        assert_eq!(fixed, Some(OfferDiscount::Fixed(eur(200))));
        assert_eq!(pct, Some(OfferDiscount::Percent(Decimal::new(20, 0))));
        assert_eq!(none, None);
    }

    #[test]
    fn the_text_is_trimmed_and_between_1_and_500_characters() {
        let mut errors = Vec::new();
        assert_eq!(
            parse_text("text", "  Add wool socks? ", &mut errors),
            "Add wool socks?"
        );
        assert_eq!(
            parse_text("text", &"é".repeat(500), &mut errors).chars().count(),
            500
        );
        assert!(errors.is_empty());
        parse_text("text", "   ", &mut errors);
        parse_text("text", &"é".repeat(501), &mut errors);
        let codes: Vec<_> = errors.iter().map(|e| e.code).collect();
        assert_eq!(codes, ["required", "too_long"]);
    }

    #[test]
    fn kinds_round_trip_through_their_names_and_upgrade_is_not_built_yet() {
        for kind in [OfferKind::Upsell, OfferKind::CrossSell] {
            assert_eq!(OfferKind::from_name(kind.as_str()), Some(kind));
        }
        assert_eq!(OfferKind::Upsell.as_str(), "upsell");
        assert_eq!(OfferKind::CrossSell.as_str(), "cross_sell");
        let mut errors = Vec::new();
        assert_eq!(OfferKind::parse("kind", "upgrade", &mut errors), None);
        assert_eq!(OfferKind::parse("kind", "Upsell", &mut errors), None);
        let codes: Vec<_> = errors.iter().map(|e| e.code).collect();
        assert_eq!(codes, ["invalid_kind", "invalid_kind"]);
    }

    #[test]
    fn basis_points_round_trip_through_their_percent() {
        for bp in [1, 5, 10, 1250, 2000, 9999, 10_000] {
            assert_eq!(basis_points(percent_from_basis_points(bp)), Some(bp));
        }
        assert_eq!(percent_from_basis_points(2000).to_string(), "20");
        assert_eq!(percent_from_basis_points(1250).to_string(), "12.5");
        assert_eq!(percent_from_basis_points(1).to_string(), "0.01");
    }

    // ---- properties -----------------------------------------------------------------------

    fn any_currency() -> impl Strategy<Value = Currency> {
        proptest::sample::select(Currency::all())
    }

    /// Any discount valid for prices in `c`.
    fn any_discount(c: Currency) -> impl Strategy<Value = OfferDiscount> {
        prop_oneof![
            (1..=10_000_i32).prop_map(|bp| OfferDiscount::Percent(percent_from_basis_points(bp))),
            (1..=i64::MAX).prop_map(move |minor| OfferDiscount::Fixed(Money::from_minor(minor, c))),
            (1..=100_000_i64).prop_map(move |minor| OfferDiscount::Fixed(Money::from_minor(minor, c))),
        ]
    }

    proptest! {
        #[test]
        fn the_offered_price_is_between_zero_and_the_base(
            (c, discount) in any_currency().prop_flat_map(|c| (Just(c), any_discount(c))),
            minor in prop_oneof![0..=i64::MAX, 0..=1_000_000_i64],
        ) {
            let base = Money::from_minor(minor, c);
            let price = offer(Some(discount)).price(base).unwrap();
            prop_assert_eq!(price.currency(), c);
            prop_assert!(price.minor() >= 0, "{price} below zero");
            prop_assert!(price.minor() <= base.minor(), "{price} above {base}");
        }

        #[test]
        fn a_percent_takes_off_exactly_the_rounded_share(minor in 0..=i64::MAX, bp in 1..=10_000_i32) {
            let base = eur(minor);
            let expected = (i128::from(minor) * i128::from(bp) * 2 + 10_000) / 20_000;
            let price = offer(Some(OfferDiscount::Percent(percent_from_basis_points(bp)))).price(base).unwrap();
            prop_assert_eq!(i128::from(price.minor()), i128::from(minor) - expected);
        }

        #[test]
        fn percent_texts_never_panic(text in "\\PC{0,40}") {
            let _ = OfferDiscount::parse_percent("discount_percent", &text, &mut Vec::new());
        }
    }
}
