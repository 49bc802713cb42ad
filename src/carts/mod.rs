//! Carts: one open cart per thread, lines with a price snapshot taken when added, stock checked when
//! adding (and again at checkout), totals in integer minor units, never more than Stripe charges in one
//! payment (a change that would take the lines past it is refused with [`CartError::TooLarge`]).

use diesel::prelude::*;
use uuid::Uuid;

use crate::catalog::{Product, Variant};
use crate::db::schema::{cart_lines, cart_offers, carts};
use crate::db::{DbConnection, DbUuid, now, prepared};
use crate::discounts::Discount;
use crate::kernel::{MerchantId, ThreadId};
use crate::money::{Currency, Money, MoneyError};

crate::text_state! {
    /// Where a cart stands: one open cart per thread, closed for good by a paid order.
    CartStatus {
        /// The shopper is filling it.
        Open = "open",
        /// Its order was paid.
        CheckedOut = "checked_out",
    }
}

crate::text_state! {
    /// What became of an upsell offer for a cart.
    OfferStatus {
        /// The shopper was shown it.
        Shown = "shown",
        /// The shopper took it.
        Accepted = "accepted",
        /// The shopper said no.
        Declined = "declined",
    }
}

/// An offer the thread's shopper was shown, and what they did with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferSeen {
    /// The offer.
    pub offer_id: Uuid,
    /// Its words.
    pub text: String,
    /// Shown, taken or declined.
    pub status: OfferStatus,
    /// When.
    pub at: chrono::NaiveDateTime,
}

/// The offers shown in the thread's carts, newest first (at most 50).
pub fn offers_seen(conn: &mut DbConnection, thread_id: ThreadId) -> QueryResult<Vec<OfferSeen>> {
    use crate::db::schema::offers;
    let rows: Vec<(DbUuid, String, OfferStatus, chrono::NaiveDateTime)> = cart_offers::table
        .inner_join(carts::table.on(carts::id.eq(cart_offers::cart_id)))
        .inner_join(offers::table.on(offers::id.eq(cart_offers::offer_id)))
        .filter(carts::thread_id.eq(thread_id))
        .order((cart_offers::created_at.desc(), cart_offers::id.desc()))
        .limit(50)
        .select((
            cart_offers::offer_id,
            offers::text,
            cart_offers::status,
            cart_offers::created_at,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(offer_id, text, status, at)| OfferSeen {
            offer_id: offer_id.0,
            text,
            status,
            at,
        })
        .collect())
}

/// The most lines a cart holds.
pub const MAX_LINES: usize = 50;
/// The most units of one line.
pub const MAX_QUANTITY: u32 = 99;

/// A line of a cart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CartLine {
    /// Id.
    pub id: Uuid,
    /// The variant (none once deleted from the catalog).
    pub variant_id: Option<Uuid>,
    /// The product.
    pub product_id: Option<Uuid>,
    /// Product title when added.
    pub title: String,
    /// Variant name when added.
    pub variant_name: String,
    /// SKU.
    pub sku: String,
    /// Picture.
    pub image_url: Option<String>,
    /// Unit price when added.
    pub unit_price: Money,
    /// Units.
    pub quantity: u32,
    /// The offer it was added through (at the offer's price).
    pub offer_id: Option<Uuid>,
    /// The held stay it stands for (no variant then: one unit at the stay's price).
    pub booking_id: Option<Uuid>,
}

impl CartLine {
    /// Unit price times quantity.
    pub fn total(&self) -> Result<Money, MoneyError> {
        self.unit_price.checked_mul(i64::from(self.quantity))
    }
}

/// An open cart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cart {
    /// Id.
    pub id: Uuid,
    /// Its thread.
    pub thread_id: ThreadId,
    /// Its currency (the merchant's).
    pub currency: Currency,
    /// Lines in the order added.
    pub lines: Vec<CartLine>,
    /// Offers already shown, taken or declined for this cart (each is shown once).
    pub offers_seen: Vec<Uuid>,
    /// The discount code applied, if any.
    pub discount: Option<Discount>,
}

/// A cart's money: lines, discount, what is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Totals {
    /// Sum of the lines.
    pub subtotal: Money,
    /// The code and what it takes off, when it applies now.
    pub discount: Option<(String, Money)>,
    /// Subtotal minus discount, never negative.
    pub total: Money,
}

impl Cart {
    /// The sum of the lines.
    pub fn subtotal(&self) -> Result<Money, MoneyError> {
        self.lines
            .iter()
            .try_fold(Money::zero(self.currency), |sum, line| {
                sum.checked_add(line.total()?)
            })
    }

    /// Subtotal, the discount when it applies at `at`, and the total.
    pub fn totals(&self, at: chrono::NaiveDateTime) -> Result<Totals, MoneyError> {
        let subtotal = self.subtotal()?;
        let discount = match &self.discount {
            Some(d) if d.check(at, subtotal).is_ok() => Some((d.code.clone(), d.amount_off(subtotal)?)),
            _ => None,
        };
        let off = discount.as_ref().map_or(Money::zero(self.currency), |(_, m)| *m);
        let total = subtotal.checked_sub(off)?;
        let total = if total.is_negative() {
            Money::zero(self.currency)
        } else {
            total
        };
        Ok(Totals {
            subtotal,
            discount,
            total,
        })
    }

    /// Units in the cart.
    pub fn units(&self) -> u32 {
        self.lines.iter().map(|l| l.quantity).sum()
    }

    /// The line holding `variant_id`.
    pub fn line_of(&self, variant_id: Uuid) -> Option<&CartLine> {
        self.lines.iter().find(|l| l.variant_id == Some(variant_id))
    }
}

/// Why a cart change was refused.
#[derive(Debug, thiserror::Error)]
pub enum CartError {
    /// Not enough stock for the quantity asked.
    #[error("only {available} left")]
    OutOfStock {
        /// Units that can still be added.
        available: u32,
    },
    /// The line is not in the thread's open cart (an old button).
    #[error("that line is no longer in the cart")]
    StaleLine,
    /// The cart is full.
    #[error("the cart is full")]
    Full,
    /// The lines would add up to more than Stripe charges in one payment.
    #[error("a cart holds at most {max}")]
    TooLarge {
        /// The most a cart's lines may add up to, in its currency.
        max: Money,
    },
    /// The database failed.
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

/// Refuses lines adding up to more than `extra` plus `lines` can: Stripe's maximum for the currency.
fn within_max<'a>(
    currency: Currency,
    lines: impl IntoIterator<Item = &'a CartLine>,
    extra: Money,
) -> Result<(), CartError> {
    let max = currency.max_amount();
    let subtotal = lines
        .into_iter()
        .try_fold(extra, |sum, line| sum.checked_add(line.total()?));
    match subtotal {
        Ok(subtotal) if subtotal.minor() <= max.minor() => Ok(()),
        _ => Err(CartError::TooLarge { max }),
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = cart_lines)]
struct LineRow {
    id: DbUuid,
    variant_id: Option<DbUuid>,
    product_id: Option<DbUuid>,
    title: String,
    variant_name: String,
    sku: String,
    image_url: Option<String>,
    unit_price_minor: i64,
    currency: String,
    quantity: i32,
    offer_id: Option<DbUuid>,
    booking_id: Option<DbUuid>,
}

fn corrupt(what: String) -> diesel::result::Error {
    diesel::result::Error::DeserializationError(what.into())
}

/// The thread's open cart, if any.
pub fn open_cart(conn: &mut DbConnection, thread_id: ThreadId) -> QueryResult<Option<Cart>> {
    let row: Option<(DbUuid, String, Option<DbUuid>, MerchantId)> = carts::table
        .filter(carts::thread_id.eq(thread_id))
        .filter(carts::status.eq(CartStatus::Open))
        .select((carts::id, carts::currency, carts::discount_id, carts::merchant_id))
        .first(conn)
        .optional()?;
    let Some((id, currency, discount_id, merchant_id)) = row else {
        return Ok(None);
    };
    let offers_seen: Vec<DbUuid> = cart_offers::table
        .filter(cart_offers::cart_id.eq(id))
        .select(cart_offers::offer_id)
        .load(conn)?;
    let discount = match discount_id {
        Some(d) => crate::discounts::get(conn, merchant_id, d.0)?,
        None => None,
    };
    let currency = Currency::parse(&currency).map_err(|e| corrupt(e.to_string()))?;
    let lines = cart_lines::table
        .filter(cart_lines::cart_id.eq(id))
        .order(cart_lines::id.asc())
        .select(LineRow::as_select())
        .load(conn)?
        .into_iter()
        .map(|r| {
            let line_currency = Currency::parse(&r.currency).map_err(|e| corrupt(e.to_string()))?;
            Ok(CartLine {
                id: r.id.0,
                variant_id: r.variant_id.map(|v| v.0),
                product_id: r.product_id.map(|p| p.0),
                title: r.title,
                variant_name: r.variant_name,
                sku: r.sku,
                image_url: r.image_url,
                unit_price: Money::from_minor(r.unit_price_minor, line_currency),
                quantity: u32::try_from(r.quantity).unwrap_or(0),
                offer_id: r.offer_id.map(|o| o.0),
                booking_id: r.booking_id.map(|b| b.0),
            })
        })
        .collect::<QueryResult<Vec<_>>>()?;
    Ok(Some(Cart {
        id: id.0,
        thread_id,
        currency,
        lines,
        offers_seen: offers_seen.into_iter().map(|o| o.0).collect(),
        discount,
    }))
}

fn ensure_open(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    thread_id: ThreadId,
    currency: Currency,
) -> QueryResult<Uuid> {
    let open: Option<DbUuid> = carts::table
        .filter(carts::thread_id.eq(thread_id))
        .filter(carts::status.eq(CartStatus::Open))
        .select(carts::id)
        .first(conn)
        .optional()?;
    match open {
        Some(id) => Ok(id.0),
        None => create(conn, merchant_id, thread_id, currency),
    }
}

/// Opens a new cart for the thread (the caller saw none open).
fn create(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    thread_id: ThreadId,
    currency: Currency,
) -> QueryResult<Uuid> {
    let id = Uuid::now_v7();
    let at = now();
    diesel::insert_into(carts::table)
        .values((
            carts::id.eq(DbUuid(id)),
            carts::merchant_id.eq(merchant_id),
            carts::thread_id.eq(thread_id),
            carts::status.eq(CartStatus::Open),
            carts::currency.eq(currency.code()),
            carts::created_at.eq(at),
            carts::updated_at.eq(at),
        ))
        .execute(conn)?;
    Ok(id)
}

fn touch(conn: &mut DbConnection, cart_id: Uuid) -> QueryResult<()> {
    prepared::update(
        carts::table,
        carts::updated_at.eq(now()),
        carts::id.eq(DbUuid(cart_id)),
    )
    .execute(conn)?;
    Ok(())
}

/// Adds `quantity` of a variant to the thread's open cart (made on first use), merging with a line of the
/// same variant; refused beyond the stock on hand. Call inside a transaction.
pub fn add(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    thread_id: ThreadId,
    product: &Product,
    variant: &Variant,
    quantity: u32,
) -> Result<Cart, CartError> {
    add_priced(conn, merchant_id, thread_id, product, variant, quantity, None)
}

/// Like [`add`], at an offer's price: the line keeps the offer and its price, apart from a line of the
/// same variant at the catalog price.
pub fn add_priced(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    thread_id: ThreadId,
    product: &Product,
    variant: &Variant,
    quantity: u32,
    offer: Option<(Uuid, Money)>,
) -> Result<Cart, CartError> {
    // The cart is read once; what it becomes is worked out here rather than read again.
    let mut cart = match open_cart(conn, thread_id)? {
        Some(cart) => cart,
        None => {
            let currency = variant.price.currency();
            Cart {
                id: create(conn, merchant_id, thread_id, currency)?,
                thread_id,
                currency,
                lines: Vec::new(),
                offers_seen: Vec::new(),
                discount: None,
            }
        }
    };
    let already: u32 = cart
        .lines
        .iter()
        .filter(|l| l.variant_id == Some(variant.id))
        .map(|l| l.quantity)
        .sum();
    let wanted = already + quantity;
    let stock = u32::try_from(variant.stock.max(0)).unwrap_or(u32::MAX);
    if wanted > stock.min(MAX_QUANTITY) {
        return Err(CartError::OutOfStock {
            available: stock.min(MAX_QUANTITY).saturating_sub(already),
        });
    }
    let unit_price = offer.map_or(variant.price, |o| o.1);
    let added = unit_price
        .checked_mul(i64::from(quantity))
        .map_err(|_| CartError::TooLarge {
            max: cart.currency.max_amount(),
        })?;
    within_max(cart.currency, &cart.lines, added)?;
    let at = now();
    let same_line = cart
        .lines
        .iter_mut()
        .find(|l| l.variant_id == Some(variant.id) && l.offer_id == offer.map(|o| o.0));
    match same_line {
        Some(line) => {
            line.quantity += quantity;
            diesel::update(cart_lines::table.find(DbUuid(line.id)))
                .set((
                    cart_lines::quantity.eq(i32::try_from(line.quantity).unwrap_or(i32::MAX)),
                    cart_lines::updated_at.eq(at),
                ))
                .execute(conn)?;
        }
        None => {
            if cart.lines.len() >= MAX_LINES {
                return Err(CartError::Full);
            }
            let line = CartLine {
                id: Uuid::now_v7(),
                variant_id: Some(variant.id),
                product_id: Some(product.id),
                title: product.fields.title.clone(),
                variant_name: variant.name.clone(),
                sku: variant.sku.clone(),
                image_url: product.fields.image_url.clone(),
                unit_price,
                quantity,
                offer_id: offer.map(|o| o.0),
                booking_id: None,
            };
            diesel::insert_into(cart_lines::table)
                .values((
                    cart_lines::id.eq(DbUuid(line.id)),
                    cart_lines::cart_id.eq(DbUuid(cart.id)),
                    cart_lines::variant_id.eq(line.variant_id.map(DbUuid)),
                    cart_lines::product_id.eq(line.product_id.map(DbUuid)),
                    cart_lines::title.eq(&line.title),
                    cart_lines::variant_name.eq(&line.variant_name),
                    cart_lines::sku.eq(&line.sku),
                    cart_lines::image_url.eq(&line.image_url),
                    cart_lines::unit_price_minor.eq(line.unit_price.minor()),
                    cart_lines::offer_id.eq(line.offer_id.map(DbUuid)),
                    cart_lines::currency.eq(line.unit_price.currency().code()),
                    cart_lines::quantity.eq(i32::try_from(quantity).unwrap_or(i32::MAX)),
                    cart_lines::created_at.eq(at),
                    cart_lines::updated_at.eq(at),
                ))
                .execute(conn)?;
            cart.lines.push(line);
        }
    }
    touch(conn, cart.id)?;
    Ok(cart)
}

/// Sets a line's quantity (0 removes it); refused beyond the variant's stock. Call inside a transaction.
pub fn set_quantity(
    conn: &mut DbConnection,
    thread_id: ThreadId,
    line_id: Uuid,
    quantity: u32,
    stock: Option<i64>,
) -> Result<Cart, CartError> {
    let mut cart = open_cart(conn, thread_id)?.ok_or(CartError::StaleLine)?;
    let Some(index) = cart.lines.iter().position(|l| l.id == line_id) else {
        return Err(CartError::StaleLine);
    };
    if quantity == 0 {
        diesel::delete(cart_lines::table.find(DbUuid(line_id))).execute(conn)?;
        cart.lines.remove(index);
    } else {
        let limit = stock
            .map_or(0, |s| u32::try_from(s.max(0)).unwrap_or(u32::MAX))
            .min(MAX_QUANTITY);
        if quantity > limit {
            return Err(CartError::OutOfStock { available: limit });
        }
        let changed = CartLine {
            quantity,
            ..cart.lines[index].clone()
        };
        let others = cart.lines.iter().filter(|l| l.id != line_id);
        within_max(
            cart.currency,
            others.chain([&changed]),
            Money::zero(cart.currency),
        )?;
        diesel::update(cart_lines::table.find(DbUuid(line_id)))
            .set((
                cart_lines::quantity.eq(i32::try_from(quantity).unwrap_or(i32::MAX)),
                cart_lines::updated_at.eq(now()),
            ))
            .execute(conn)?;
        cart.lines[index].quantity = quantity;
    }
    touch(conn, cart.id)?;
    Ok(cart)
}

/// Records what became of an offer for a cart (each offer is shown once per cart).
pub fn record_offer(
    conn: &mut DbConnection,
    cart_id: Uuid,
    offer_id: Uuid,
    status: OfferStatus,
) -> QueryResult<()> {
    let updated = prepared::update(
        cart_offers::table,
        cart_offers::status.eq(status),
        cart_offers::cart_id
            .eq(DbUuid(cart_id))
            .and(cart_offers::offer_id.eq(DbUuid(offer_id))),
    )
    .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(cart_offers::table)
            .values((
                cart_offers::id.eq(DbUuid(Uuid::now_v7())),
                cart_offers::cart_id.eq(DbUuid(cart_id)),
                cart_offers::offer_id.eq(DbUuid(offer_id)),
                cart_offers::status.eq(status),
                cart_offers::created_at.eq(now()),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// The status of an offer for a cart, if it was shown.
pub fn offer_status(
    conn: &mut DbConnection,
    cart_id: Uuid,
    offer_id: Uuid,
) -> QueryResult<Option<OfferStatus>> {
    cart_offers::table
        .filter(cart_offers::cart_id.eq(DbUuid(cart_id)))
        .filter(cart_offers::offer_id.eq(DbUuid(offer_id)))
        .select(cart_offers::status)
        .first(conn)
        .optional()
}

/// Applies (or with `None` removes) a discount code on the cart: one code per cart.
pub fn set_discount(conn: &mut DbConnection, cart_id: Uuid, discount_id: Option<Uuid>) -> QueryResult<()> {
    diesel::update(carts::table.find(DbUuid(cart_id)))
        .set((
            carts::discount_id.eq(discount_id.map(DbUuid)),
            carts::updated_at.eq(now()),
        ))
        .execute(conn)?;
    Ok(())
}

/// Puts a held stay in the thread's open cart (made on first use) as one line at `price`, in place of
/// the stays already there, whose bookings are returned for the caller to release. Call inside a
/// transaction.
#[allow(clippy::too_many_arguments)] // One line's worth of fields, all needed.
pub fn put_stay(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    thread_id: ThreadId,
    booking_id: Uuid,
    title: &str,
    details: &str,
    image_url: Option<&str>,
    price: Money,
) -> Result<Vec<Uuid>, CartError> {
    let cart_id = match open_cart(conn, thread_id)? {
        Some(cart) => {
            let kept = cart.lines.iter().filter(|l| l.booking_id.is_none());
            within_max(cart.currency, kept, price)?;
            cart.id
        }
        None => {
            within_max(price.currency(), [], price)?;
            create(conn, merchant_id, thread_id, price.currency())?
        }
    };
    let replaced: Vec<Option<DbUuid>> = cart_lines::table
        .filter(cart_lines::cart_id.eq(DbUuid(cart_id)))
        .filter(cart_lines::booking_id.is_not_null())
        .select(cart_lines::booking_id)
        .load(conn)?;
    diesel::delete(
        cart_lines::table
            .filter(cart_lines::cart_id.eq(DbUuid(cart_id)))
            .filter(cart_lines::booking_id.is_not_null()),
    )
    .execute(conn)?;
    let at = now();
    diesel::insert_into(cart_lines::table)
        .values((
            cart_lines::id.eq(DbUuid(Uuid::now_v7())),
            cart_lines::cart_id.eq(DbUuid(cart_id)),
            cart_lines::booking_id.eq(DbUuid(booking_id)),
            cart_lines::title.eq(title),
            cart_lines::variant_name.eq(details),
            cart_lines::sku.eq(STAY_SKU),
            cart_lines::image_url.eq(image_url),
            cart_lines::unit_price_minor.eq(price.minor()),
            cart_lines::currency.eq(price.currency().code()),
            cart_lines::quantity.eq(1),
            cart_lines::created_at.eq(at),
            cart_lines::updated_at.eq(at),
        ))
        .execute(conn)?;
    touch(conn, cart_id)?;
    Ok(replaced
        .into_iter()
        .flatten()
        .map(|b| b.0)
        .filter(|b| *b != booking_id)
        .collect())
}

/// The SKU of a stay's cart and order line.
pub const STAY_SKU: &str = "STAY";

/// Makes the thread's open cart exist, for a code typed before anything was added.
pub fn ensure_cart(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    thread_id: ThreadId,
    currency: Currency,
) -> QueryResult<Uuid> {
    ensure_open(conn, merchant_id, thread_id, currency)
}
