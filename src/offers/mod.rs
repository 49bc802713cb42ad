//! Merchant-defined offers: when a shopper adds product X to the cart, the conversation proposes
//! variant Y in the merchant's own words, optionally at a discount on Y's unit price.
//!
//! For a product X the offer is a better or bigger version of X (`upsell`) or a companion item
//! (`cross_sell`). For a room type (a bookable) held in the thread, it is a better room type for a
//! price difference per night, fixed or the difference of the two rooms' rates (`upgrade`), or a
//! catalog item for the stay, once or once per night (`add_on`, e.g. breakfast).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use uuid::Uuid;

use crate::db::schema::{bookables, offers, products, variants};
use crate::db::{DbConnection, DbUuid, now, write_transaction};
use crate::kernel::{FieldError, MerchantId};
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
    /// A better room type for a held stay.
    Upgrade,
    /// A catalog item for a held stay, per stay or per night.
    AddOn,
}

impl OfferKind {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            OfferKind::Upsell => "upsell",
            OfferKind::CrossSell => "cross_sell",
            OfferKind::Upgrade => "upgrade",
            OfferKind::AddOn => "add_on",
        }
    }

    /// The kind named `name`, if it is one we build.
    pub fn from_name(name: &str) -> Option<OfferKind> {
        match name {
            "upsell" => Some(OfferKind::Upsell),
            "cross_sell" => Some(OfferKind::CrossSell),
            "upgrade" => Some(OfferKind::Upgrade),
            "add_on" => Some(OfferKind::AddOn),
            _ => None,
        }
    }

    /// Parses the `kind` field, reporting an unknown one in `errors`.
    pub fn parse(field: &str, name: &str, errors: &mut Vec<FieldError>) -> Option<OfferKind> {
        let kind = OfferKind::from_name(name);
        if kind.is_none() {
            errors.push(FieldError::new(
                field,
                "invalid_kind",
                "must be `upsell`, `cross_sell`, `upgrade` or `add_on`",
            ));
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

/// What makes the conversation propose an offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferTrigger {
    /// The shopper adds this product to the cart (upsell, cross-sell).
    Product(Uuid),
    /// The shopper holds a stay in this room type (upgrade, add-on).
    Bookable(Uuid),
}

/// What an offer proposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferTarget {
    /// A catalog variant (of another product than the trigger); for an add-on, `per_night` adds one
    /// per night of the stay instead of one per stay.
    Variant {
        /// The variant.
        id: Uuid,
        /// One per night (add-ons only).
        per_night: bool,
    },
    /// Another room type for the same stay (upgrade).
    Bookable {
        /// The better room type.
        id: Uuid,
        /// What it costs more per night; `None`: the difference of the two rooms' rates, night by night.
        night_delta: Option<Money>,
    },
}

impl OfferTarget {
    /// The offered variant, for the kinds that offer one.
    pub fn variant(&self) -> Option<Uuid> {
        match self {
            OfferTarget::Variant { id, .. } => Some(*id),
            OfferTarget::Bookable { .. } => None,
        }
    }
}

/// A merchant's offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// Id.
    pub id: Uuid,
    /// Upsell or cross-sell.
    pub kind: OfferKind,
    /// What triggers it.
    pub trigger: OfferTrigger,
    /// What it offers.
    pub target: OfferTarget,
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
    /// Upsell, cross-sell, upgrade or add-on.
    pub kind: OfferKind,
    /// The trigger: a product for upsells and cross-sells, a bookable for upgrades and add-ons.
    pub trigger: OfferTrigger,
    /// What is offered: a variant, or a bookable for upgrades.
    pub target: OfferTarget,
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
    /// Where the page starts and which way it reads.
    pub page: crate::db::Keyset,
    /// Page size.
    pub limit: i64,
    /// Only offers triggered by this product.
    pub product_id: Option<Uuid>,
    /// Only offers triggered by this bookable.
    pub bookable_id: Option<Uuid>,
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
    trigger_product_id: Option<DbUuid>,
    offer_variant_id: Option<DbUuid>,
    discount_percent_bp: Option<i32>,
    discount_minor: Option<i64>,
    currency: Option<String>,
    text: String,
    active: bool,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    trigger_bookable_id: Option<DbUuid>,
    offer_bookable_id: Option<DbUuid>,
    per_night: bool,
    night_delta_minor: Option<i64>,
}

fn corrupt(what: String) -> diesel::result::Error {
    diesel::result::Error::DeserializationError(what.into())
}

impl TryFrom<OfferRow> for Offer {
    type Error = diesel::result::Error;

    fn try_from(row: OfferRow) -> Result<Self, Self::Error> {
        let kind = OfferKind::from_name(&row.kind)
            .ok_or_else(|| corrupt(format!("unknown offer kind `{}`", row.kind)))?;
        let currency = row
            .currency
            .as_deref()
            .map(Currency::parse)
            .transpose()
            .map_err(|e| corrupt(e.to_string()))?;
        let trigger = match (row.trigger_product_id, row.trigger_bookable_id) {
            (Some(p), None) => OfferTrigger::Product(p.0),
            (None, Some(b)) => OfferTrigger::Bookable(b.0),
            _ => return Err(corrupt(format!("offer {} has no single trigger", row.id.0))),
        };
        let target = match (row.offer_variant_id, row.offer_bookable_id, currency) {
            (Some(v), None, _) => OfferTarget::Variant {
                id: v.0,
                per_night: row.per_night,
            },
            (None, Some(b), currency) => OfferTarget::Bookable {
                id: b.0,
                night_delta: match (row.night_delta_minor, currency) {
                    (Some(minor), Some(c)) => Some(Money::from_minor(minor, c)),
                    (None, _) => None,
                    (Some(_), None) => return Err(corrupt(format!("offer {} has no currency", row.id.0))),
                },
            },
            _ => return Err(corrupt(format!("offer {} has no single target", row.id.0))),
        };
        let fixed_currency = if row.night_delta_minor.is_some() {
            None
        } else {
            row.currency
        };
        let discount = match (row.discount_percent_bp, row.discount_minor, fixed_currency) {
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
            trigger,
            target,
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

/// Checks that the kind, trigger and target go together, that the trigger and the target are the
/// merchant's (another merchant's ids answer exactly as unknown ones) and differ, and that amounts are
/// in the target's currency.
fn check_catalog(conn: &mut DbConnection, merchant_id: MerchantId, new: &NewOffer) -> Result<(), OfferError> {
    let mut errors = Vec::new();
    let stays = matches!(new.kind, OfferKind::Upgrade | OfferKind::AddOn);
    match (new.trigger, stays) {
        (OfferTrigger::Product(id), false) => {
            let found: i64 = products::table
                .filter(products::id.eq(DbUuid(id)))
                .filter(products::merchant_id.eq(merchant_id))
                .count()
                .get_result(conn)?;
            if found == 0 {
                errors.push(FieldError::new(
                    "trigger.product_id",
                    "not_found",
                    "no such product in the catalog",
                ));
            }
        }
        (OfferTrigger::Bookable(id), true) => {
            if bookable_currency(conn, merchant_id, id)?.is_none() {
                errors.push(FieldError::new(
                    "trigger.bookable_id",
                    "not_found",
                    "no such bookable",
                ));
            }
        }
        (_, true) => errors.push(FieldError::new(
            "trigger.bookable_id",
            "required",
            "upgrades and add-ons are triggered by a bookable",
        )),
        (_, false) => errors.push(FieldError::new(
            "trigger.product_id",
            "required",
            "upsells and cross-sells are triggered by a product",
        )),
    }
    match (new.target, new.kind) {
        (
            OfferTarget::Variant { id, per_night },
            OfferKind::Upsell | OfferKind::CrossSell | OfferKind::AddOn,
        ) => {
            if per_night && new.kind != OfferKind::AddOn {
                errors.push(FieldError::new(
                    "offer.per",
                    "not_allowed",
                    "only add-ons are per night",
                ));
            }
            let variant: Option<(DbUuid, String)> = variants::table
                .filter(variants::id.eq(DbUuid(id)))
                .filter(variants::merchant_id.eq(merchant_id))
                .select((variants::product_id, variants::currency))
                .first(conn)
                .optional()?;
            match variant {
                None => errors.push(FieldError::new(
                    "offer.variant_id",
                    "not_found",
                    "no such variant in the catalog",
                )),
                Some((product_id, _)) if new.trigger == OfferTrigger::Product(product_id.0) => {
                    errors.push(FieldError::new(
                        "offer.variant_id",
                        "same_product",
                        "offer a variant of another product than the trigger",
                    ));
                }
                Some((_, currency)) => check_discount_currency(new.discount, &currency, &mut errors),
            }
        }
        (OfferTarget::Bookable { id, night_delta }, OfferKind::Upgrade) => {
            if new.discount.is_some() {
                errors.push(FieldError::new(
                    "discount_percent",
                    "not_allowed",
                    "an upgrade has a price per night instead of a discount",
                ));
            }
            match bookable_currency(conn, merchant_id, id)? {
                None => errors.push(FieldError::new(
                    "offer.bookable_id",
                    "not_found",
                    "no such bookable",
                )),
                Some(_) if new.trigger == OfferTrigger::Bookable(id) => errors.push(FieldError::new(
                    "offer.bookable_id",
                    "same_bookable",
                    "offer another bookable than the trigger",
                )),
                Some(currency) => {
                    if let Some(delta) = night_delta
                        && delta.currency().code() != currency
                    {
                        errors.push(FieldError::new(
                            "offer.night_delta",
                            "currency_mismatch",
                            format!("must be in the bookable's currency {currency}"),
                        ));
                    }
                }
            }
        }
        (OfferTarget::Bookable { .. }, _) => errors.push(FieldError::new(
            "offer.bookable_id",
            "not_allowed",
            "only upgrades offer a bookable",
        )),
        (OfferTarget::Variant { .. }, _) => errors.push(FieldError::new(
            "offer.bookable_id",
            "required",
            "an upgrade offers a bookable",
        )),
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(OfferError::Invalid(errors))
    }
}

/// The currency of the merchant's bookable, when it has one with this id.
fn bookable_currency(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    id: Uuid,
) -> QueryResult<Option<String>> {
    bookables::table
        .filter(bookables::id.eq(DbUuid(id)))
        .filter(bookables::merchant_id.eq(merchant_id))
        .select(bookables::currency)
        .first(conn)
        .optional()
}

/// The trigger, target and night-delta columns of an offer.
type TargetColumns = (
    Option<DbUuid>,
    Option<DbUuid>,
    Option<DbUuid>,
    Option<DbUuid>,
    bool,
    Option<i64>,
    Option<&'static str>,
);

fn target_columns(trigger: OfferTrigger, target: OfferTarget) -> TargetColumns {
    let (trigger_product, trigger_bookable) = match trigger {
        OfferTrigger::Product(id) => (Some(DbUuid(id)), None),
        OfferTrigger::Bookable(id) => (None, Some(DbUuid(id))),
    };
    match target {
        OfferTarget::Variant { id, per_night } => (
            trigger_product,
            trigger_bookable,
            Some(DbUuid(id)),
            None,
            per_night,
            None,
            None,
        ),
        OfferTarget::Bookable { id, night_delta } => (
            trigger_product,
            trigger_bookable,
            None,
            Some(DbUuid(id)),
            false,
            night_delta.map(|d| d.minor()),
            night_delta.map(|d| d.currency().code()),
        ),
    }
}

/// Creates an offer after checking the catalog items it names.
pub fn create(conn: &mut DbConnection, merchant_id: MerchantId, new: &NewOffer) -> Result<Offer, OfferError> {
    let (bp, minor, currency) = discount_columns(new.discount)?;
    write_transaction(conn, |conn| {
        check_catalog(conn, merchant_id, new)?;
        let id = Uuid::now_v7();
        let at = now();
        let (trigger_product, trigger_bookable, variant, bookable, per_night, delta, delta_currency) =
            target_columns(new.trigger, new.target);
        diesel::insert_into(offers::table)
            .values((
                offers::id.eq(DbUuid(id)),
                offers::merchant_id.eq(merchant_id),
                offers::kind.eq(new.kind.as_str()),
                offers::trigger_product_id.eq(trigger_product),
                offers::offer_variant_id.eq(variant),
                offers::trigger_bookable_id.eq(trigger_bookable),
                offers::offer_bookable_id.eq(bookable),
                offers::per_night.eq(per_night),
                offers::night_delta_minor.eq(delta),
                offers::discount_percent_bp.eq(bp),
                offers::discount_minor.eq(minor),
                offers::currency.eq(currency.or(delta_currency)),
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
pub fn get(conn: &mut DbConnection, merchant_id: MerchantId, id: Uuid) -> QueryResult<Option<Offer>> {
    offers::table
        .filter(offers::id.eq(DbUuid(id)))
        .filter(offers::merchant_id.eq(merchant_id))
        .select(OfferRow::as_select())
        .first(conn)
        .optional()?
        .map(Offer::try_from)
        .transpose()
}

/// A page of the merchant's offers, newest created first unless the query asks oldest first.
pub fn list(conn: &mut DbConnection, merchant_id: MerchantId, q: &OfferQuery) -> QueryResult<Vec<Offer>> {
    let mut query = offers::table
        .filter(offers::merchant_id.eq(merchant_id))
        .limit(q.limit)
        .select(OfferRow::as_select())
        .into_boxed();
    query = crate::keyset!(query, offers::id, q.page);
    if let Some(product_id) = q.product_id {
        query = query.filter(offers::trigger_product_id.eq(DbUuid(product_id)));
    }
    if let Some(bookable_id) = q.bookable_id {
        query = query.filter(offers::trigger_bookable_id.eq(DbUuid(bookable_id)));
    }
    query.load(conn)?.into_iter().map(Offer::try_from).collect()
}

/// The merchant's active offers triggered by adding `product_id`, oldest first.
pub fn triggered_by(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    product_id: Uuid,
) -> QueryResult<Vec<Offer>> {
    offers::table
        .filter(offers::merchant_id.eq(merchant_id))
        .filter(offers::trigger_product_id.eq(DbUuid(product_id)))
        .filter(offers::active.eq(true))
        .order((offers::created_at.asc(), offers::id.asc()))
        .select(OfferRow::as_select())
        .load(conn)?
        .into_iter()
        .map(Offer::try_from)
        .collect()
}

/// The merchant's active offers for a stay held in `bookable_id` (upgrades and add-ons), oldest first.
pub fn triggered_by_bookable(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    bookable_id: Uuid,
) -> QueryResult<Vec<Offer>> {
    offers::table
        .filter(offers::merchant_id.eq(merchant_id))
        .filter(offers::trigger_bookable_id.eq(DbUuid(bookable_id)))
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
    merchant_id: MerchantId,
    id: Uuid,
    patch: OfferPatch,
) -> Result<Offer, OfferError> {
    write_transaction(conn, |conn| {
        let mut offer = get(conn, merchant_id, id)?.ok_or(OfferError::NotFound)?;
        if let Some(discount) = patch.discount {
            let Some(variant_id) = offer.target.variant() else {
                return Err(OfferError::Invalid(vec![FieldError::new(
                    "discount_percent",
                    "not_allowed",
                    "an upgrade has a price per night instead of a discount",
                )]));
            };
            if let Some(OfferDiscount::Fixed(_)) = discount {
                let variant_currency: String = variants::table
                    .filter(variants::id.eq(DbUuid(variant_id)))
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
        let delta_currency = match offer.target {
            OfferTarget::Bookable { night_delta, .. } => night_delta.map(|d| d.currency().code()),
            OfferTarget::Variant { .. } => None,
        };
        diesel::update(offers::table.filter(offers::id.eq(DbUuid(id))))
            .set((
                offers::discount_percent_bp.eq(bp),
                offers::discount_minor.eq(minor),
                offers::currency.eq(currency.or(delta_currency)),
                offers::text.eq(&offer.text),
                offers::active.eq(offer.active),
                offers::updated_at.eq(now()),
            ))
            .execute(conn)?;
        get(conn, merchant_id, id)?.ok_or(OfferError::NotFound)
    })
}

/// Deletes the merchant's offer; `false` when it has none with this id.
pub fn delete(conn: &mut DbConnection, merchant_id: MerchantId, id: Uuid) -> QueryResult<bool> {
    let n = diesel::delete(
        offers::table
            .filter(offers::id.eq(DbUuid(id)))
            .filter(offers::merchant_id.eq(merchant_id)),
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
            trigger: OfferTrigger::Product(Uuid::now_v7()),
            target: OfferTarget::Variant {
                id: Uuid::now_v7(),
                per_night: false,
            },
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
    fn kinds_round_trip_through_their_names_and_others_are_refused() {
        for kind in [
            OfferKind::Upsell,
            OfferKind::CrossSell,
            OfferKind::Upgrade,
            OfferKind::AddOn,
        ] {
            assert_eq!(OfferKind::from_name(kind.as_str()), Some(kind));
        }
        assert_eq!(OfferKind::Upsell.as_str(), "upsell");
        assert_eq!(OfferKind::CrossSell.as_str(), "cross_sell");
        assert_eq!(OfferKind::AddOn.as_str(), "add_on");
        let mut errors = Vec::new();
        assert_eq!(OfferKind::parse("kind", "downgrade", &mut errors), None);
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
