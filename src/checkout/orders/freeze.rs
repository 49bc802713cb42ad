//! Checkout: a thread's cart frozen into an order (lines, unit prices and totals copied, numbered per
//! merchant), its stock reserved and its stays tied to it, in one short write transaction.

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::moves::expire;
use super::rows::{OrderRow, load};
use super::stock::{reserve, stock_left, take_stock};
use super::{Order, OrderStatus, lock_open_cart, one_transaction};
use crate::carts::{Cart, CartLine, Totals};
use crate::db::is_unique_violation_on;
use crate::db::schema::{order_counters, order_lines, orders};
use crate::db::{DbConnection, DbUuid};
use crate::kernel::{MerchantId, OrderId, ThreadId};
use crate::money::{Money, MoneyError};

/// How long a new order holds its stock before a Checkout Session is recorded for it: the session's own
/// expiry replaces it ([`super::record_session`]); an order whose session was never made is swept after it.
pub const HOLD_BEFORE_SESSION: Duration = Duration::minutes(30);

/// The prefix of order numbers when the merchant's name gives no two ASCII letters or digits.
pub const FALLBACK_PREFIX: &str = "TC";

/// What [`checkout`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedOut {
    /// The order to pay.
    pub order: Order,
    /// A new order (false: the cart is unchanged and the order awaiting payment is reused, with its
    /// Checkout Session if it has one).
    pub created: bool,
    /// Orders of the thread that were awaiting payment for an older cart content: now expired and their
    /// stock given back. The caller expires their Checkout Sessions.
    pub superseded: Vec<Order>,
}

/// Why a cart could not be checked out. Nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum CheckoutRefusal {
    /// The thread has no open cart, or it has no lines.
    #[error("the cart is empty")]
    EmptyCart,
    /// A line asks for more than the stock left.
    #[error("only {available} left of {title} ({variant_name})")]
    SoldOut {
        /// Product title of the line.
        title: String,
        /// Variant name of the line.
        variant_name: String,
        /// Units that can still be ordered (0 when the variant left the catalog).
        available: i64,
    },
    /// The total is below the smallest amount Stripe charges in this currency.
    #[error("the total is below the minimum of {minimum}")]
    BelowMinimum {
        /// That minimum.
        minimum: Money,
    },
    /// An order of this cart is paid with a delayed method and not confirmed yet: checking out again
    /// could make the shopper pay twice.
    #[error("the payment of order {number} is being processed")]
    PaymentInProgress {
        /// That order's number.
        number: String,
    },
    /// A stay in the cart is no longer held (its hold ran out): the shopper books it again.
    #[error("the hold on {title} ({dates}) has ended")]
    StayEnded {
        /// The room.
        title: String,
        /// The dates.
        dates: String,
    },
    /// The cart's money does not add up (mixed currencies, overflow).
    #[error(transparent)]
    Money(#[from] MoneyError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

/// Identifies a cart's content for "the same cart again": lines (variant, offer, unit price, quantity, in
/// any order), the currency, and the discount that applies now with what it takes off. A hex SHA-256.
pub fn fingerprint(cart: &Cart, totals: &Totals) -> String {
    let mut lines: Vec<String> = cart
        .lines
        .iter()
        .map(|l| {
            format!(
                "{}/{}/{}/{}/{}",
                l.variant_id.map_or_else(|| "-".to_owned(), |v| v.to_string()),
                l.booking_id.map_or_else(|| "-".to_owned(), |b| b.to_string()),
                l.offer_id.map_or_else(|| "-".to_owned(), |o| o.to_string()),
                l.unit_price.minor(),
                l.quantity
            )
        })
        .collect();
    lines.sort();
    let discount = totals
        .discount
        .as_ref()
        .map_or_else(|| "-".to_owned(), |(code, off)| format!("{code}/{}", off.minor()));
    let text = format!("v1|{}|{}|{discount}", cart.currency.code(), lines.join("|"));
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The two-character prefix of a merchant's order numbers: the initials of the first two words of its
/// name ("Comfy Shoes" -> `CS`), else its first two ASCII letters or digits ("Stocked" -> `ST`), else
/// [`FALLBACK_PREFIX`]; upper case.
pub fn number_prefix(merchant_name: &str) -> String {
    let initials: String = merchant_name
        .split(|c: char| !c.is_alphanumeric())
        .filter_map(|word| word.chars().next())
        .filter(char::is_ascii_alphanumeric)
        .take(2)
        .collect();
    let prefix = if initials.len() == 2 {
        initials
    } else {
        let firsts: String = merchant_name
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(2)
            .collect();
        if firsts.len() == 2 {
            firsts
        } else {
            FALLBACK_PREFIX.to_owned()
        }
    };
    prefix.to_ascii_uppercase()
}

/// `CS-00042`: the prefix and the merchant's counter, at least five digits.
pub fn format_number(prefix: &str, n: i64) -> String {
    format!("{prefix}-{n:05}")
}

/// The merchant's next order number, from its counter row (made on its first order). Portable: no
/// upsert, and the increment is one statement, so concurrent checkouts never share a number.
fn next_number(conn: &mut DbConnection, merchant_id: MerchantId) -> QueryResult<i64> {
    let counter = order_counters::table.filter(order_counters::merchant_id.eq(merchant_id));
    let bump = |conn: &mut DbConnection| {
        diesel::update(counter)
            .set(order_counters::last_number.eq(order_counters::last_number + 1))
            .execute(conn)
    };
    if bump(conn)? == 0 {
        // Two first orders at once on PostgreSQL: the second insert waits for the first and fails on the
        // key; the savepoint keeps its transaction usable, and the row is there to bump.
        let inserted = conn.transaction(|conn| {
            diesel::insert_into(order_counters::table)
                .values((
                    order_counters::merchant_id.eq(merchant_id),
                    order_counters::last_number.eq(0_i64),
                ))
                .execute(conn)
        });
        match inserted {
            Ok(_) => {}
            Err(e) if is_unique_violation_on(&e, "order_counters") => {}
            Err(e) => return Err(e),
        }
        bump(conn)?;
    }
    counter.select(order_counters::last_number).first(conn)
}

/// The cart's lines grouped by variant (in variant id order, the lock order), with the first line of
/// each to name it; `Err` names a line whose variant left the catalog. Stays have nights, not stock.
fn units_by_variant(cart: &Cart) -> Result<BTreeMap<Uuid, (i64, &CartLine)>, &CartLine> {
    let mut wanted: BTreeMap<Uuid, (i64, &CartLine)> = BTreeMap::new();
    for line in cart.lines.iter().filter(|l| l.booking_id.is_none()) {
        let variant_id = line.variant_id.ok_or(line)?;
        wanted.entry(variant_id).or_insert((0, line)).0 += i64::from(line.quantity);
    }
    Ok(wanted)
}

fn awaiting_of_thread(conn: &mut DbConnection, thread_id: ThreadId) -> QueryResult<Vec<OrderRow>> {
    orders::table
        .filter(orders::thread_id.eq(thread_id))
        .filter(orders::status.eq(OrderStatus::AwaitingPayment.as_str()))
        .order(orders::id.asc())
        .select(OrderRow::as_select())
        .load(conn)
}

/// Freezes the thread's open cart into an order with its stock reserved, in one write transaction (a
/// savepoint of the caller's when one is open, see `one_transaction`).
///
/// The same cart content again (see [`fingerprint`]) while its order awaits payment and its hold runs
/// returns that order unchanged (`created: false`): a second tap on Checkout reuses its session. Any other
/// content makes a new order, numbered from the merchant's counter, with the cart's lines and unit prices
/// copied, the totals of [`Cart::totals`] at `at` (the discount only when it applies then), one `held`
/// reservation per variant, and `expires_at` = `at` + [`HOLD_BEFORE_SESSION`]; the thread's orders still
/// awaiting payment are expired and their stock given back first (`superseded`). `minimum` is Stripe's
/// smallest charge in the cart's currency (one in another currency is ignored); `touch` is the attributed
/// touch and its ad. A refusal changes nothing: no order, no reservation, the cart as it was.
#[tracing::instrument(skip_all, fields(merchant.id = %merchant_id, thread.id = %thread_id))]
pub fn checkout(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    thread_id: ThreadId,
    at: NaiveDateTime,
    minimum: Option<Money>,
    touch: Option<(Uuid, Option<String>)>,
) -> Result<CheckedOut, CheckoutRefusal> {
    one_transaction(conn, |conn| {
        let cart = lock_cart_to_freeze(conn, merchant_id, thread_id)?;
        refuse_while_processing(conn, &cart)?;
        let totals = cart.totals(at)?;
        let print = fingerprint(&cart, &totals);
        let awaiting = awaiting_of_thread(conn, thread_id)?;
        if let Some(same) = still_payable(&awaiting, &cart, &print, at) {
            return Ok(CheckedOut {
                order: load(conn, same.id)?,
                created: false,
                superseded: Vec::new(),
            });
        }
        refuse_below_minimum(minimum, &totals)?;
        // The older orders give their stock back before this one takes it: a cart grown from 2 to 3 of a
        // variant with 3 left must fit.
        let superseded = supersede(conn, &cart, awaiting, at)?;
        let wanted = take_units(conn, merchant_id, &cart, at)?;
        let (order_id, number) = insert_order(conn, merchant_id, &cart, &totals, &print, touch, at)?;
        insert_lines(conn, order_id, &cart, at)?;
        reserve(conn, order_id, wanted.iter().map(|(v, (q, _))| (*v, *q)), at)?;
        tracing::info!(
            order.id = %order_id,
            order.number = %number,
            order.total_minor = totals.total.minor(),
            order.superseded = superseded.len(),
            "cart checked out"
        );
        Ok(CheckedOut {
            order: load(conn, order_id)?,
            created: true,
            superseded,
        })
    })
}

/// Locks the thread's open cart and reads it; `EmptyCart` when there is none or it has no lines.
fn lock_cart_to_freeze(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    thread_id: ThreadId,
) -> Result<Cart, CheckoutRefusal> {
    if !lock_open_cart(conn, merchant_id, thread_id)? {
        return Err(CheckoutRefusal::EmptyCart);
    }
    let cart = crate::carts::open_cart(conn, thread_id)?.ok_or(CheckoutRefusal::EmptyCart)?;
    if cart.lines.is_empty() {
        return Err(CheckoutRefusal::EmptyCart);
    }
    Ok(cart)
}

/// `PaymentInProgress` while an order of this cart waits for a delayed payment to be confirmed.
fn refuse_while_processing(conn: &mut DbConnection, cart: &Cart) -> Result<(), CheckoutRefusal> {
    let processing: Option<String> = orders::table
        .filter(orders::cart_id.eq(DbUuid(cart.id)))
        .filter(orders::status.eq(OrderStatus::Processing.as_str()))
        .select(orders::number)
        .first(conn)
        .optional()?;
    match processing {
        Some(number) => Err(CheckoutRefusal::PaymentInProgress { number }),
        None => Ok(()),
    }
}

/// The order of the thread awaiting payment for this very cart content, whose hold still runs.
fn still_payable<'a>(
    awaiting: &'a [OrderRow],
    cart: &Cart,
    print: &str,
    at: NaiveDateTime,
) -> Option<&'a OrderRow> {
    awaiting.iter().find(|o| {
        o.cart_id == Some(DbUuid(cart.id))
            && o.cart_fingerprint == print
            && o.expires_at.is_some_and(|end| end > at)
    })
}

/// `BelowMinimum` when the total is below Stripe's smallest charge in its currency (a minimum in another
/// currency is ignored).
fn refuse_below_minimum(minimum: Option<Money>, totals: &Totals) -> Result<(), CheckoutRefusal> {
    match minimum {
        Some(minimum)
            if minimum.currency() == totals.total.currency() && totals.total.minor() < minimum.minor() =>
        {
            Err(CheckoutRefusal::BelowMinimum { minimum })
        }
        _ => Ok(()),
    }
}

/// Expires the thread's orders awaiting payment for an older cart content, giving their stock back;
/// answers those it expired. The cart's stays are untied from them first: the new order takes them
/// over, still held.
fn supersede(
    conn: &mut DbConnection,
    cart: &Cart,
    awaiting: Vec<OrderRow>,
    at: NaiveDateTime,
) -> QueryResult<Vec<Order>> {
    let stays: Vec<Uuid> = cart.lines.iter().filter_map(|l| l.booking_id).collect();
    crate::bookings::detach(conn, &stays)?;
    let mut superseded = Vec::new();
    for old in awaiting {
        let id = old.id;
        if expire(conn, &old, at)? {
            superseded.push(load(conn, id)?);
        }
    }
    Ok(superseded)
}

/// Takes the cart's units from the stock, variant by variant in the lock order; `SoldOut` names the
/// first line that does not fit (the caller's transaction gives back what was taken).
fn take_units<'c>(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    cart: &'c Cart,
    at: NaiveDateTime,
) -> Result<BTreeMap<Uuid, (i64, &'c CartLine)>, CheckoutRefusal> {
    let wanted = units_by_variant(cart).map_err(|line| CheckoutRefusal::SoldOut {
        title: line.title.clone(),
        variant_name: line.variant_name.clone(),
        available: 0,
    })?;
    for (&variant_id, &(quantity, line)) in &wanted {
        if !take_stock(conn, merchant_id, variant_id, quantity, at)? {
            return Err(CheckoutRefusal::SoldOut {
                title: line.title.clone(),
                variant_name: line.variant_name.clone(),
                available: stock_left(conn, merchant_id, variant_id)?,
            });
        }
    }
    Ok(wanted)
}

/// Inserts the order row, awaiting payment with its hold of [`HOLD_BEFORE_SESSION`], numbered from the
/// merchant's counter, on the thread's channel; answers its id and number.
fn insert_order(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    cart: &Cart,
    totals: &Totals,
    print: &str,
    touch: Option<(Uuid, Option<String>)>,
    at: NaiveDateTime,
) -> QueryResult<(OrderId, String)> {
    let name = crate::merchants::get(conn, merchant_id)?.name;
    let number = format_number(&number_prefix(&name), next_number(conn, merchant_id)?);
    let order_id = OrderId::new();
    let (discount_code, discount_off) = match &totals.discount {
        Some((code, off)) => (Some(code.clone()), off.minor()),
        None => (None, 0),
    };
    let discount_id = cart
        .discount
        .as_ref()
        .filter(|_| totals.discount.is_some())
        .map(|d| DbUuid(d.id));
    let (touch_id, ad_id) = touch.map_or((None, None), |(t, ad)| (Some(DbUuid(t)), ad));
    // The order is made on the thread's channel (for reports and the Conversions API).
    let channel: crate::kernel::Channel = crate::db::schema::threads::table
        .find(cart.thread_id)
        .select(crate::db::schema::threads::channel)
        .first(conn)?;
    diesel::insert_into(orders::table)
        .values((
            orders::id.eq(order_id),
            orders::merchant_id.eq(merchant_id),
            orders::thread_id.eq(cart.thread_id),
            orders::channel.eq(channel),
            orders::cart_id.eq(DbUuid(cart.id)),
            orders::number.eq(&number),
            orders::status.eq(OrderStatus::AwaitingPayment.as_str()),
            orders::disputed.eq(false),
            orders::currency.eq(cart.currency.code()),
            orders::subtotal_minor.eq(totals.subtotal.minor()),
            orders::discount_minor.eq(discount_off),
            orders::total_minor.eq(totals.total.minor()),
            orders::refunded_minor.eq(0_i64),
            orders::discount_id.eq(discount_id),
            orders::discount_code.eq(discount_code),
            orders::cart_fingerprint.eq(print),
            orders::attempt.eq(0),
            orders::expires_at.eq(at + HOLD_BEFORE_SESSION),
            orders::touch_id.eq(touch_id),
            orders::ad_id.eq(ad_id),
            orders::created_at.eq(at),
            orders::updated_at.eq(at),
        ))
        .execute(conn)?;
    Ok((order_id, number))
}

/// Copies the cart's lines into the order, and ties each stay to it; `StayEnded` names a stay no longer
/// held.
fn insert_lines(
    conn: &mut DbConnection,
    order_id: OrderId,
    cart: &Cart,
    at: NaiveDateTime,
) -> Result<(), CheckoutRefusal> {
    for line in &cart.lines {
        diesel::insert_into(order_lines::table)
            .values((
                order_lines::id.eq(DbUuid(Uuid::now_v7())),
                order_lines::order_id.eq(order_id),
                order_lines::variant_id.eq(line.variant_id.map(DbUuid)),
                order_lines::product_id.eq(line.product_id.map(DbUuid)),
                order_lines::title.eq(&line.title),
                order_lines::variant_name.eq(&line.variant_name),
                order_lines::sku.eq(&line.sku),
                order_lines::image_url.eq(&line.image_url),
                order_lines::unit_price_minor.eq(line.unit_price.minor()),
                order_lines::quantity.eq(i32::try_from(line.quantity).unwrap_or(i32::MAX)),
                order_lines::total_minor.eq(line.total()?.minor()),
                order_lines::offer_id.eq(line.offer_id.map(DbUuid)),
                order_lines::booking_id.eq(line.booking_id.map(DbUuid)),
            ))
            .execute(conn)?;
        if let Some(booking) = line.booking_id {
            // The stay is held until the order's hold ends, then the Checkout Session's.
            match crate::bookings::attach_to_order(conn, booking, order_id, at + HOLD_BEFORE_SESSION) {
                Ok(_) => {}
                Err(crate::bookings::BookingError::Db(e)) => return Err(e.into()),
                Err(_) => {
                    return Err(CheckoutRefusal::StayEnded {
                        title: line.title.clone(),
                        dates: line.variant_name.clone(),
                    });
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::db::now;
    use crate::discounts::{Discount, DiscountKind};
    use crate::money::Currency;

    fn eur() -> Currency {
        Currency::parse("EUR").unwrap()
    }

    fn euros(minor: i64) -> Money {
        Money::from_minor(minor, eur())
    }

    // ---- numbers ----------------------------------------------------------------------------------

    #[test]
    fn the_prefix_is_the_initials_of_the_first_two_words() {
        assert_eq!(number_prefix("Comfy Shoes"), "CS");
        assert_eq!(number_prefix("comfy shoes and socks"), "CS");
        assert_eq!(number_prefix("Hotel du Lac"), "HD");
        assert_eq!(number_prefix("Tea & Toast"), "TT");
        assert_eq!(number_prefix("  black-forest cakes"), "BF");
        assert_eq!(number_prefix("7 Eleven"), "7E");
    }

    #[test]
    fn a_one_word_name_gives_its_first_two_letters() {
        assert_eq!(number_prefix("Stocked"), "ST");
        assert_eq!(number_prefix("x"), FALLBACK_PREFIX);
    }

    #[test]
    fn non_ascii_initials_are_skipped_and_nothing_usable_gives_the_fallback() {
        assert_eq!(number_prefix("Église Café Bar"), "CB");
        assert_eq!(number_prefix("Ébène"), "BN");
        assert_eq!(number_prefix("東京 Café"), "CA");
        assert_eq!(number_prefix("東京"), FALLBACK_PREFIX);
        assert_eq!(number_prefix(""), FALLBACK_PREFIX);
        assert_eq!(number_prefix("!!!"), FALLBACK_PREFIX);
    }

    #[test]
    fn numbers_have_at_least_five_digits() {
        assert_eq!(format_number("CS", 1), "CS-00001");
        assert_eq!(format_number("CS", 42), "CS-00042");
        assert_eq!(format_number("CS", 99_999), "CS-99999");
        assert_eq!(format_number("CS", 123_456), "CS-123456");
    }

    // ---- fingerprint ------------------------------------------------------------------------------

    fn line(variant: u128, price: i64, quantity: u32) -> CartLine {
        CartLine {
            id: Uuid::now_v7(),
            variant_id: Some(Uuid::from_u128(variant)),
            product_id: Some(Uuid::from_u128(1000 + variant)),
            title: format!("Thing {variant}"),
            variant_name: "M".into(),
            sku: format!("SKU-{variant}"),
            image_url: None,
            unit_price: euros(price),
            quantity,
            offer_id: None,
            booking_id: None,
        }
    }

    fn cart(lines: Vec<CartLine>, discount: Option<Discount>) -> Cart {
        Cart {
            id: Uuid::from_u128(7),
            thread_id: crate::kernel::ThreadId(Uuid::from_u128(8)),
            currency: eur(),
            lines,
            offers_seen: Vec::new(),
            discount,
        }
    }

    fn print(c: &Cart) -> String {
        fingerprint(c, &c.totals(now()).unwrap())
    }

    fn ten_percent() -> Discount {
        Discount {
            id: Uuid::from_u128(99),
            code: "XMAS10".into(),
            kind: DiscountKind::Percent(rust_decimal::Decimal::from(10)),
            starts_at: None,
            ends_at: None,
            min_subtotal: None,
            max_redemptions: None,
            redemptions: 0,
            active: true,
            created_at: now(),
            updated_at: now(),
        }
    }

    #[test]
    fn the_same_content_has_the_same_fingerprint_whatever_the_line_ids_and_order() {
        let a = cart(vec![line(1, 4990, 1), line(2, 900, 2)], None);
        let b = cart(vec![line(2, 900, 2), line(1, 4990, 1)], None);

        assert_eq!(print(&a), print(&b));
        assert_eq!(print(&a).len(), 64);
    }

    #[test]
    fn quantity_price_variant_offer_and_discount_each_change_the_fingerprint() {
        let base = cart(vec![line(1, 4990, 1)], None);
        let mut offered = line(1, 4990, 1);
        offered.offer_id = Some(Uuid::from_u128(5));
        let changed = [
            cart(vec![line(1, 4990, 2)], None),
            cart(vec![line(1, 4890, 1)], None),
            cart(vec![line(3, 4990, 1)], None),
            cart(vec![offered], None),
            cart(vec![line(1, 4990, 1), line(2, 900, 1)], None),
            cart(vec![line(1, 4990, 1)], Some(ten_percent())),
        ];

        for c in &changed {
            assert_ne!(print(&base), print(c), "{c:?}");
        }
    }

    #[test]
    fn a_code_that_no_longer_applies_changes_the_fingerprint() {
        let applies = cart(vec![line(1, 4990, 1)], Some(ten_percent()));
        let inactive = cart(
            vec![line(1, 4990, 1)],
            Some(Discount {
                active: false,
                ..ten_percent()
            }),
        );

        assert_ne!(print(&applies), print(&inactive));
        assert_eq!(print(&inactive), print(&cart(vec![line(1, 4990, 1)], None)));
    }

    #[test]
    fn lines_of_one_variant_are_reserved_together_and_a_deleted_variant_is_named() {
        let mut offered = line(1, 3990, 1);
        offered.offer_id = Some(Uuid::from_u128(5));
        let c = cart(vec![line(2, 900, 1), line(1, 4990, 2), offered], None);
        let mut gone = line(3, 100, 1);
        gone.variant_id = None;
        let broken = cart(vec![line(1, 4990, 1), gone.clone()], None);

        let wanted = units_by_variant(&c).unwrap();

        let units: Vec<(Uuid, i64)> = wanted.iter().map(|(v, (q, _))| (*v, *q)).collect();
        assert_eq!(units, [(Uuid::from_u128(1), 3), (Uuid::from_u128(2), 1)]);
        assert_eq!(units_by_variant(&broken).unwrap_err(), &gone);
    }
}
