//! Orders: a thread's cart frozen at checkout (lines, unit prices and totals copied), its stock reserved
//! until Stripe says the payment succeeded (the reservation is committed) or did not (the stock is given
//! back), numbered per merchant (`CS-00042`), and moved only forward through a small state machine, so
//! that a Stripe event delivered twice or out of order has exactly one effect.
//!
//! Stock lives in `variants.stock` (units still sellable): reserving takes units away with one
//! conditional `UPDATE ... WHERE stock >= quantity`, which can never take it below zero on either backend,
//! and records a `reservations` row. No HTTP call happens here: the caller talks to Stripe before or after
//! these short transactions, never inside them.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::carts::{Cart, CartLine, Totals};
use crate::db::is_unique_violation_on;
use crate::db::schema::{self, order_counters, order_lines, orders, refunds, reservations, variants};
use crate::db::{DbConnection, DbUuid, now};
use crate::money::{Currency, Money, MoneyError};

/// How long a new order holds its stock before a Checkout Session is recorded for it: the session's own
/// expiry replaces it ([`record_session`]); an order whose session was never made is swept after it.
pub const HOLD_BEFORE_SESSION: Duration = Duration::minutes(30);

/// The prefix of order numbers when the merchant's name gives no two ASCII letters or digits.
pub const FALLBACK_PREFIX: &str = "TC";

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    /// Frozen, stock held, waiting for the shopper to pay on Stripe's page.
    AwaitingPayment,
    /// Paid with a delayed method (bank debit ...): Stripe has not confirmed the money yet.
    Processing,
    /// Paid: stock committed, cart closed.
    Paid,
    /// The delayed payment failed: stock given back.
    PaymentFailed,
    /// Never paid (session expired or cart changed): stock given back.
    Expired,
    /// Part of the total refunded.
    PartiallyRefunded,
    /// The whole total refunded.
    Refunded,
}

impl OrderStatus {
    /// Every status, in the order an order can pass through them.
    pub const ALL: [OrderStatus; 7] = [
        OrderStatus::AwaitingPayment,
        OrderStatus::Processing,
        OrderStatus::Paid,
        OrderStatus::PaymentFailed,
        OrderStatus::Expired,
        OrderStatus::PartiallyRefunded,
        OrderStatus::Refunded,
    ];

    /// The stored (and wire) name.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::AwaitingPayment => "awaiting_payment",
            OrderStatus::Processing => "processing",
            OrderStatus::Paid => "paid",
            OrderStatus::PaymentFailed => "payment_failed",
            OrderStatus::Expired => "expired",
            OrderStatus::PartiallyRefunded => "partially_refunded",
            OrderStatus::Refunded => "refunded",
        }
    }

    /// The status named `s`.
    pub fn parse(s: &str) -> Option<OrderStatus> {
        OrderStatus::ALL.into_iter().find(|status| status.as_str() == s)
    }

    /// Whether moving to `next` is allowed. Only forward, never to the same status, never out of
    /// `expired`, `payment_failed` or `refunded`:
    /// awaiting_payment -> processing | paid | payment_failed | expired; processing -> paid |
    /// payment_failed; paid -> partially_refunded | refunded; partially_refunded -> refunded.
    /// (A second partial refund changes the refunded amount, not the status: see [`record_refund`].)
    pub fn can_become(self, next: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!(
            (self, next),
            (AwaitingPayment, Processing | Paid | PaymentFailed | Expired)
                | (Processing, Paid | PaymentFailed)
                | (Paid, PartiallyRefunded | Refunded)
                | (PartiallyRefunded, Refunded)
        )
    }

    /// No move leaves this status.
    pub fn is_final(self) -> bool {
        OrderStatus::ALL.into_iter().all(|next| !self.can_become(next))
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A line of an order: what the cart line said when the order was frozen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLine {
    /// Id.
    pub id: Uuid,
    /// The variant (none once deleted from the catalog).
    pub variant_id: Option<Uuid>,
    /// The product.
    pub product_id: Option<Uuid>,
    /// Product title.
    pub title: String,
    /// Variant name.
    pub variant_name: String,
    /// SKU.
    pub sku: String,
    /// Picture.
    pub image_url: Option<String>,
    /// Unit price.
    pub unit_price: Money,
    /// Units.
    pub quantity: u32,
    /// Unit price times quantity.
    pub total: Money,
    /// The offer the line was added through.
    pub offer_id: Option<Uuid>,
    /// The stay the line pays for (its title is the room, its variant name the dates).
    pub booking_id: Option<Uuid>,
}

/// An order with its lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// Id (also the Stripe idempotency key's base and `client_reference_id`).
    pub id: Uuid,
    /// Its merchant.
    pub merchant_id: Uuid,
    /// The thread it was checked out in (none once the thread is deleted).
    pub thread_id: Option<Uuid>,
    /// The cart it froze (none once the cart is deleted).
    pub cart_id: Option<Uuid>,
    /// Number shown to the shopper and the merchant, unique per merchant: `CS-00042`.
    pub number: String,
    /// Where it stands.
    pub status: OrderStatus,
    /// A dispute is open on its payment.
    pub disputed: bool,
    /// Its currency.
    pub currency: Currency,
    /// Sum of the lines.
    pub subtotal: Money,
    /// What the discount code took off.
    pub discount: Money,
    /// What the shopper pays.
    pub total: Money,
    /// What was refunded (refunds pending or succeeded).
    pub refunded: Money,
    /// The discount code applied, when it applied at checkout.
    pub discount_id: Option<Uuid>,
    /// That code as the shopper saw it.
    pub discount_code: Option<String>,
    /// Hash of the cart's content when frozen (see [`fingerprint`]).
    pub cart_fingerprint: String,
    /// The number of the last Checkout Session key minted (see [`claim_session_try`]).
    pub attempt: i32,
    /// The Checkout Session (`cs_...`).
    pub stripe_session_id: Option<String>,
    /// The hosted payment page.
    pub stripe_session_url: Option<String>,
    /// The PaymentIntent (`pi_...`), known once the shopper paid.
    pub stripe_payment_intent_id: Option<String>,
    /// When the stock hold ends if unpaid: the session's expiry once recorded.
    pub expires_at: Option<NaiveDateTime>,
    /// The touch (ad click, link) the purchase is attributed to.
    pub touch_id: Option<Uuid>,
    /// The ad of that touch.
    pub ad_id: Option<String>,
    /// When Stripe confirmed the payment.
    pub paid_at: Option<NaiveDateTime>,
    /// Created (UTC).
    pub created_at: NaiveDateTime,
    /// Last changed (UTC).
    pub updated_at: NaiveDateTime,
    /// The `Idempotency-Key` of the Checkout Session request in flight, stored before Stripe is called:
    /// a retry after a crash or a lost answer sends it again and gets the same session.
    pub session_key: Option<String>,
    /// Calls made to create the Checkout Session.
    pub session_tries: i32,
    /// Whether the receipt reached the thread: `sent`, or why not (`window_closed`, `no_thread`).
    pub receipt: Option<String>,
    /// A payment that arrived after the order had ended here: `honoured` (the stock was still there,
    /// the order is paid) or `refunded` (it was not: the payment went back in full).
    pub late_payment: Option<String>,
    /// The channel of the conversation it was made in (`messenger`, `instagram`, `webchat`).
    pub channel: String,
    /// Lines in the cart's order.
    pub lines: Vec<OrderLine>,
}

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

/// Why a refund was not recorded. Nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum RefundError {
    /// No such order.
    #[error("order not found")]
    NotFound,
    /// The amount is not positive or not in the order's currency.
    #[error("a refund must be a positive amount in the order's currency")]
    InvalidAmount,
    /// Refunds would add up to more than the order's total.
    #[error("refunds would reach {refunded}, above the total of {total}")]
    AboveTotal {
        /// What the refunds would add up to.
        refunded: Money,
        /// The order's total.
        total: Money,
    },
    /// The database failed.
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct OrderQuery {
    /// Only orders after this id (the cursor).
    pub after: Option<Uuid>,
    /// Page size.
    pub limit: i64,
    /// Only orders in this status.
    pub status: Option<OrderStatus>,
    /// Only orders checked out in this thread.
    pub thread_id: Option<Uuid>,
    /// Only orders attributed to this ad.
    pub ad_id: Option<String>,
    /// Only orders made at or after this instant (UTC).
    pub from: Option<NaiveDateTime>,
    /// Only orders made before this instant (UTC).
    pub to: Option<NaiveDateTime>,
}

// ---- pure parts ---------------------------------------------------------------------------------

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

// ---- rows ---------------------------------------------------------------------------------------

#[derive(Queryable, Selectable)]
#[diesel(table_name = orders)]
struct OrderRow {
    id: DbUuid,
    merchant_id: DbUuid,
    thread_id: Option<DbUuid>,
    cart_id: Option<DbUuid>,
    number: String,
    status: String,
    disputed: bool,
    currency: String,
    subtotal_minor: i64,
    discount_minor: i64,
    total_minor: i64,
    refunded_minor: i64,
    discount_id: Option<DbUuid>,
    discount_code: Option<String>,
    cart_fingerprint: String,
    attempt: i32,
    stripe_session_id: Option<String>,
    stripe_session_url: Option<String>,
    stripe_payment_intent_id: Option<String>,
    expires_at: Option<NaiveDateTime>,
    touch_id: Option<DbUuid>,
    ad_id: Option<String>,
    paid_at: Option<NaiveDateTime>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    session_key: Option<String>,
    session_tries: i32,
    receipt: Option<String>,
    late_payment: Option<String>,
    channel: String,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = order_lines)]
struct LineRow {
    id: DbUuid,
    order_id: DbUuid,
    variant_id: Option<DbUuid>,
    product_id: Option<DbUuid>,
    title: String,
    variant_name: String,
    sku: String,
    image_url: Option<String>,
    unit_price_minor: i64,
    quantity: i32,
    total_minor: i64,
    offer_id: Option<DbUuid>,
    booking_id: Option<DbUuid>,
}

/// The columns a status move sets; `None` leaves a column alone.
#[derive(AsChangeset)]
#[diesel(table_name = orders)]
struct StatusMove<'a> {
    status: &'a str,
    updated_at: NaiveDateTime,
    paid_at: Option<NaiveDateTime>,
    stripe_payment_intent_id: Option<&'a str>,
}

fn corrupt(what: String) -> diesel::result::Error {
    diesel::result::Error::DeserializationError(what.into())
}

impl OrderRow {
    fn status(&self) -> QueryResult<OrderStatus> {
        OrderStatus::parse(&self.status)
            .ok_or_else(|| corrupt(format!("unknown order status `{}`", self.status)))
    }

    fn currency(&self) -> QueryResult<Currency> {
        Currency::parse(&self.currency).map_err(|e| corrupt(e.to_string()))
    }

    fn into_order(self, lines: Vec<OrderLine>) -> QueryResult<Order> {
        let status = self.status()?;
        let currency = self.currency()?;
        let money = |minor| Money::from_minor(minor, currency);
        Ok(Order {
            id: self.id.0,
            merchant_id: self.merchant_id.0,
            thread_id: self.thread_id.map(|t| t.0),
            cart_id: self.cart_id.map(|c| c.0),
            number: self.number,
            status,
            disputed: self.disputed,
            currency,
            subtotal: money(self.subtotal_minor),
            discount: money(self.discount_minor),
            total: money(self.total_minor),
            refunded: money(self.refunded_minor),
            discount_id: self.discount_id.map(|d| d.0),
            discount_code: self.discount_code,
            cart_fingerprint: self.cart_fingerprint,
            attempt: self.attempt,
            stripe_session_id: self.stripe_session_id,
            stripe_session_url: self.stripe_session_url,
            stripe_payment_intent_id: self.stripe_payment_intent_id,
            expires_at: self.expires_at,
            touch_id: self.touch_id.map(|t| t.0),
            ad_id: self.ad_id,
            paid_at: self.paid_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
            session_key: self.session_key,
            session_tries: self.session_tries,
            receipt: self.receipt,
            late_payment: self.late_payment,
            channel: self.channel,
            lines,
        })
    }
}

/// Attaches their lines to order rows, keeping the rows' order.
fn with_lines(conn: &mut DbConnection, rows: Vec<OrderRow>) -> QueryResult<Vec<Order>> {
    let mut currencies = BTreeMap::new();
    for row in &rows {
        currencies.insert(row.id, row.currency()?);
    }
    let ids: Vec<DbUuid> = rows.iter().map(|r| r.id).collect();
    let mut by_order: BTreeMap<DbUuid, Vec<OrderLine>> = BTreeMap::new();
    for l in order_lines::table
        .filter(order_lines::order_id.eq_any(ids))
        .order(order_lines::id.asc())
        .select(LineRow::as_select())
        .load(conn)?
    {
        let currency = currencies
            .get(&l.order_id)
            .copied()
            .ok_or_else(|| corrupt("order line of another order".into()))?;
        let quantity = u32::try_from(l.quantity).map_err(|e| corrupt(e.to_string()))?;
        by_order.entry(l.order_id).or_default().push(OrderLine {
            id: l.id.0,
            variant_id: l.variant_id.map(|v| v.0),
            product_id: l.product_id.map(|p| p.0),
            title: l.title,
            variant_name: l.variant_name,
            sku: l.sku,
            image_url: l.image_url,
            unit_price: Money::from_minor(l.unit_price_minor, currency),
            quantity,
            total: Money::from_minor(l.total_minor, currency),
            offer_id: l.offer_id.map(|o| o.0),
            booking_id: l.booking_id.map(|b| b.0),
        });
    }
    rows.into_iter()
        .map(|r| {
            let lines = by_order.remove(&r.id).unwrap_or_default();
            r.into_order(lines)
        })
        .collect()
}

fn order_row(conn: &mut DbConnection, id: Uuid) -> QueryResult<Option<OrderRow>> {
    orders::table
        .filter(orders::id.eq(DbUuid(id)))
        .select(OrderRow::as_select())
        .first(conn)
        .optional()
}

/// The order `id`, of whichever merchant (for the workers).
pub fn load_order(conn: &mut DbConnection, id: Uuid) -> QueryResult<Order> {
    load(conn, id)
}

fn load(conn: &mut DbConnection, id: Uuid) -> QueryResult<Order> {
    let row = order_row(conn, id)?.ok_or(diesel::result::Error::NotFound)?;
    with_lines(conn, vec![row])?
        .pop()
        .ok_or(diesel::result::Error::NotFound)
}

// ---- transactions -------------------------------------------------------------------------------

/// The orders' write transactions: their own, or a savepoint of the caller's (a shopper's tap on Checkout
/// is applied inside the conversation's transaction).
fn one_transaction<T, E>(
    conn: &mut DbConnection,
    f: impl FnOnce(&mut DbConnection) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<diesel::result::Error>,
{
    crate::db::write_or_nested_transaction(conn, f)
}

// ---- locks --------------------------------------------------------------------------------------
//
// On PostgreSQL these no-op updates take the row's lock, so concurrent writers of one cart or one order
// queue up instead of both acting on what they read (SQLite's BEGIN IMMEDIATE already admits one writer).
// Every transaction here locks in the same order (cart, then orders, then variants by id), so two of
// them never wait on each other in a circle.

/// Locks the thread's open cart of the merchant; false when there is none.
fn lock_open_cart(conn: &mut DbConnection, merchant_id: Uuid, thread_id: Uuid) -> QueryResult<bool> {
    let locked = diesel::update(
        schema::carts::table
            .filter(schema::carts::thread_id.eq(DbUuid(thread_id)))
            .filter(schema::carts::merchant_id.eq(DbUuid(merchant_id)))
            .filter(schema::carts::status.eq("open")),
    )
    .set(schema::carts::status.eq(schema::carts::status))
    .execute(conn)?;
    Ok(locked > 0)
}

fn lock_cart(conn: &mut DbConnection, cart_id: Uuid) -> QueryResult<()> {
    diesel::update(schema::carts::table.filter(schema::carts::id.eq(DbUuid(cart_id))))
        .set(schema::carts::status.eq(schema::carts::status))
        .execute(conn)?;
    Ok(())
}

fn lock_order(conn: &mut DbConnection, order_id: Uuid) -> QueryResult<()> {
    diesel::update(orders::table.filter(orders::id.eq(DbUuid(order_id))))
        .set(orders::status.eq(orders::status))
        .execute(conn)?;
    Ok(())
}

// ---- stock --------------------------------------------------------------------------------------

/// Takes `quantity` units of the merchant's variant in one conditional statement; false when fewer are
/// left (nothing taken).
fn take_stock(
    conn: &mut DbConnection,
    merchant_id: Uuid,
    variant_id: Uuid,
    quantity: i64,
    at: NaiveDateTime,
) -> QueryResult<bool> {
    let taken = diesel::update(
        variants::table
            .filter(variants::id.eq(DbUuid(variant_id)))
            .filter(variants::merchant_id.eq(DbUuid(merchant_id)))
            .filter(variants::stock.ge(quantity)),
    )
    .set((
        variants::stock.eq(variants::stock - quantity),
        variants::updated_at.eq(at),
    ))
    .execute(conn)?;
    Ok(taken == 1)
}

/// Units left of the merchant's variant (0 when it left the catalog).
fn stock_left(conn: &mut DbConnection, merchant_id: Uuid, variant_id: Uuid) -> QueryResult<i64> {
    let stock: Option<i64> = variants::table
        .filter(variants::id.eq(DbUuid(variant_id)))
        .filter(variants::merchant_id.eq(DbUuid(merchant_id)))
        .select(variants::stock)
        .first(conn)
        .optional()?;
    Ok(stock.unwrap_or(0).max(0))
}

/// Gives back the stock of the order's held reservations. Each reservation is marked released with a
/// conditional update first, so its units come back once, whoever else releases it.
fn release(conn: &mut DbConnection, order_id: Uuid, at: NaiveDateTime) -> QueryResult<()> {
    let held: Vec<(DbUuid, DbUuid, i32)> = reservations::table
        .filter(reservations::order_id.eq(DbUuid(order_id)))
        .filter(reservations::status.eq("held"))
        .order(reservations::variant_id.asc())
        .select((reservations::id, reservations::variant_id, reservations::quantity))
        .load(conn)?;
    for (id, variant_id, quantity) in held {
        let released = diesel::update(
            reservations::table
                .filter(reservations::id.eq(id))
                .filter(reservations::status.eq("held")),
        )
        .set((
            reservations::status.eq("released"),
            reservations::updated_at.eq(at),
        ))
        .execute(conn)?;
        if released == 1 {
            diesel::update(variants::table.filter(variants::id.eq(variant_id)))
                .set((
                    variants::stock.eq(variants::stock + i64::from(quantity)),
                    variants::updated_at.eq(at),
                ))
                .execute(conn)?;
        }
    }
    Ok(())
}

/// Keeps the order's held stock for good: it was sold.
fn commit(conn: &mut DbConnection, order_id: Uuid, at: NaiveDateTime) -> QueryResult<()> {
    diesel::update(
        reservations::table
            .filter(reservations::order_id.eq(DbUuid(order_id)))
            .filter(reservations::status.eq("held")),
    )
    .set((
        reservations::status.eq("committed"),
        reservations::updated_at.eq(at),
    ))
    .execute(conn)?;
    Ok(())
}

// ---- checkout -----------------------------------------------------------------------------------

/// The merchant's next order number, from its counter row (made on its first order). Portable: no
/// upsert, and the increment is one statement, so concurrent checkouts never share a number.
fn next_number(conn: &mut DbConnection, merchant_id: Uuid) -> QueryResult<i64> {
    let counter = order_counters::table.filter(order_counters::merchant_id.eq(DbUuid(merchant_id)));
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
                    order_counters::merchant_id.eq(DbUuid(merchant_id)),
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

fn awaiting_of_thread(conn: &mut DbConnection, thread_id: Uuid) -> QueryResult<Vec<OrderRow>> {
    orders::table
        .filter(orders::thread_id.eq(DbUuid(thread_id)))
        .filter(orders::status.eq(OrderStatus::AwaitingPayment.as_str()))
        .order(orders::id.asc())
        .select(OrderRow::as_select())
        .load(conn)
}

/// Freezes the thread's open cart into an order with its stock reserved, in one write transaction (a
/// savepoint of the caller's when one is open, see [`one_transaction`]).
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
    merchant_id: Uuid,
    thread_id: Uuid,
    at: NaiveDateTime,
    minimum: Option<Money>,
    touch: Option<(Uuid, Option<String>)>,
) -> Result<CheckedOut, CheckoutRefusal> {
    one_transaction(conn, |conn| {
        if !lock_open_cart(conn, merchant_id, thread_id)? {
            return Err(CheckoutRefusal::EmptyCart);
        }
        let cart = crate::carts::open_cart(conn, thread_id)?.ok_or(CheckoutRefusal::EmptyCart)?;
        if cart.lines.is_empty() {
            return Err(CheckoutRefusal::EmptyCart);
        }
        let processing: Option<String> = orders::table
            .filter(orders::cart_id.eq(DbUuid(cart.id)))
            .filter(orders::status.eq(OrderStatus::Processing.as_str()))
            .select(orders::number)
            .first(conn)
            .optional()?;
        if let Some(number) = processing {
            return Err(CheckoutRefusal::PaymentInProgress { number });
        }
        let totals = cart.totals(at)?;
        let print = fingerprint(&cart, &totals);
        let awaiting = awaiting_of_thread(conn, thread_id)?;
        if let Some(same) = awaiting.iter().find(|o| {
            o.cart_id == Some(DbUuid(cart.id))
                && o.cart_fingerprint == print
                && o.expires_at.is_some_and(|end| end > at)
        }) {
            return Ok(CheckedOut {
                order: load(conn, same.id.0)?,
                created: false,
                superseded: Vec::new(),
            });
        }
        if let Some(minimum) = minimum
            && minimum.currency() == totals.total.currency()
            && totals.total.minor() < minimum.minor()
        {
            return Err(CheckoutRefusal::BelowMinimum { minimum });
        }

        // The older orders give their stock back before this one takes it: a cart grown from 2 to 3 of a
        // variant with 3 left must fit. The cart's stays are untied from them first: this order takes
        // them over, still held.
        let stays: Vec<Uuid> = cart.lines.iter().filter_map(|l| l.booking_id).collect();
        crate::bookings::detach(conn, &stays)?;
        let mut superseded = Vec::new();
        for old in awaiting {
            let id = old.id.0;
            if apply(conn, &old, OrderStatus::Expired, None, at)? {
                superseded.push(load(conn, id)?);
            }
        }

        let wanted = units_by_variant(&cart).map_err(|line| CheckoutRefusal::SoldOut {
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

        let name = crate::merchants::get(conn, merchant_id)?.name;
        let number = format_number(&number_prefix(&name), next_number(conn, merchant_id)?);
        let order_id = Uuid::now_v7();
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
        let channel: String = crate::db::schema::threads::table
            .find(DbUuid(thread_id))
            .select(crate::db::schema::threads::channel)
            .first(conn)?;
        diesel::insert_into(orders::table)
            .values((
                orders::id.eq(DbUuid(order_id)),
                orders::merchant_id.eq(DbUuid(merchant_id)),
                orders::thread_id.eq(DbUuid(thread_id)),
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
                orders::cart_fingerprint.eq(&print),
                orders::attempt.eq(0),
                orders::expires_at.eq(at + HOLD_BEFORE_SESSION),
                orders::touch_id.eq(touch_id),
                orders::ad_id.eq(ad_id),
                orders::created_at.eq(at),
                orders::updated_at.eq(at),
            ))
            .execute(conn)?;
        for line in &cart.lines {
            diesel::insert_into(order_lines::table)
                .values((
                    order_lines::id.eq(DbUuid(Uuid::now_v7())),
                    order_lines::order_id.eq(DbUuid(order_id)),
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
        for (&variant_id, &(quantity, _)) in &wanted {
            diesel::insert_into(reservations::table)
                .values((
                    reservations::id.eq(DbUuid(Uuid::now_v7())),
                    reservations::order_id.eq(DbUuid(order_id)),
                    reservations::variant_id.eq(DbUuid(variant_id)),
                    reservations::quantity.eq(i32::try_from(quantity).unwrap_or(i32::MAX)),
                    reservations::status.eq("held"),
                    reservations::created_at.eq(at),
                    reservations::updated_at.eq(at),
                ))
                .execute(conn)?;
        }
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

// ---- moves --------------------------------------------------------------------------------------

/// Moves `row` to `next` if the state machine allows it and nobody moved it first, with what the move
/// means for stock, cart and discount. Call inside a write transaction.
fn apply(
    conn: &mut DbConnection,
    row: &OrderRow,
    next: OrderStatus,
    payment_intent: Option<&str>,
    at: NaiveDateTime,
) -> QueryResult<bool> {
    let current = row.status()?;
    if !current.can_become(next) {
        return Ok(false);
    }
    let moved = diesel::update(
        orders::table
            .filter(orders::id.eq(row.id))
            .filter(orders::status.eq(current.as_str())),
    )
    .set(StatusMove {
        status: next.as_str(),
        updated_at: at,
        paid_at: (next == OrderStatus::Paid).then_some(at),
        stripe_payment_intent_id: payment_intent,
    })
    .execute(conn)?;
    if moved == 0 {
        return Ok(false);
    }
    match next {
        OrderStatus::Paid => {
            commit(conn, row.id.0, at)?;
            confirm_stays(conn, row.id.0)?;
            close_cart_and_redeem(conn, row, at)?;
        }
        OrderStatus::Expired | OrderStatus::PaymentFailed => {
            release(conn, row.id.0, at)?;
            crate::bookings::release_order(conn, row.id.0)?;
        }
        OrderStatus::AwaitingPayment
        | OrderStatus::Processing
        | OrderStatus::PartiallyRefunded
        | OrderStatus::Refunded => {}
    }
    tracing::info!(order.id = %row.id.0, from = %current, to = %next, "order moved");
    Ok(true)
}

/// Books the stays the order pays for. A stay whose nights went meanwhile (its hold ended before the
/// order's, and another shopper took the last room) fails the move with `RollbackTransaction`: nothing
/// is booked, and the payment is settled as a late one once the order expires.
fn confirm_stays(conn: &mut DbConnection, order_id: Uuid) -> QueryResult<()> {
    match crate::bookings::confirm_order(conn, order_id) {
        Ok(()) => Ok(()),
        Err(crate::bookings::BookingError::Db(e)) => Err(e),
        Err(e) => {
            tracing::warn!(order.id = %order_id, error = %e, "a paid stay could not be booked");
            Err(diesel::result::Error::RollbackTransaction)
        }
    }
}

/// What payment means for the order's cart and code: the cart is done, the code redeemed.
fn close_cart_and_redeem(conn: &mut DbConnection, row: &OrderRow, at: NaiveDateTime) -> QueryResult<()> {
    if let Some(cart_id) = row.cart_id {
        // The order's lines are what was bought; lines the shopper added afterwards go with the cart,
        // which is done either way.
        diesel::update(
            schema::carts::table
                .filter(schema::carts::id.eq(cart_id))
                .filter(schema::carts::status.eq("open")),
        )
        .set((
            schema::carts::status.eq("checked_out"),
            schema::carts::updated_at.eq(at),
        ))
        .execute(conn)?;
    }
    if let Some(discount_id) = row.discount_id
        && !crate::discounts::redeem(conn, row.merchant_id.0, discount_id.0)?
    {
        tracing::warn!(
            order.id = %row.id.0,
            discount.id = %discount_id.0,
            "discount code used up before this order was paid; the order keeps its discount"
        );
    }
    Ok(())
}

/// What [`settle_late_payment`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatePayment {
    /// The order had not ended here (it awaits payment, or is paid or refunded already): nothing to settle.
    NotLate,
    /// Its stock could be taken again: the order is paid after all.
    Honoured,
    /// Some of its stock is gone: the payment goes back in full (then [`record_late_refund`]).
    RefundDue,
}

/// Settles a payment Stripe took for an order that had already ended here (expired, superseded, failed):
/// its payment page outlived our hold, or the shopper paid while the sweeper was expiring it. The
/// shopper's money is never kept without the goods, and goods are never sold twice: if every unit the
/// order held can be taken from the stock again, the order is paid after all, as if on time (stock
/// committed, cart closed, code redeemed, `late_payment = honoured`); if not, it is marked for a full
/// refund (`refund_due`), which is then final, so a refund sent to Stripe is never followed by a change
/// of mind. One write transaction; repeating it changes nothing more.
#[tracing::instrument(skip_all, fields(order.id = %order_id))]
pub fn settle_late_payment(
    conn: &mut DbConnection,
    order_id: Uuid,
    payment_intent: Option<&str>,
    at: NaiveDateTime,
) -> QueryResult<LatePayment> {
    one_transaction(conn, |conn| {
        let cart_id: Option<DbUuid> = orders::table
            .filter(orders::id.eq(DbUuid(order_id)))
            .select(orders::cart_id)
            .first(conn)?;
        if let Some(cart_id) = cart_id {
            lock_cart(conn, cart_id.0)?;
        }
        lock_order(conn, order_id)?;
        let row = order_row(conn, order_id)?.ok_or(diesel::result::Error::NotFound)?;
        if !matches!(row.status()?, OrderStatus::Expired | OrderStatus::PaymentFailed) {
            return Ok(LatePayment::NotLate);
        }
        if row.late_payment.as_deref() == Some("refund_due") {
            return Ok(LatePayment::RefundDue);
        }
        let intent = payment_intent.or(row.stripe_payment_intent_id.as_deref());
        let retaken = conn.transaction(|conn| retake_stock(conn, &row, at));
        let outcome = match retaken {
            Ok(()) => LatePayment::Honoured,
            Err(diesel::result::Error::RollbackTransaction) => LatePayment::RefundDue,
            Err(e) => return Err(e),
        };
        let status = match outcome {
            LatePayment::Honoured => OrderStatus::Paid,
            _ => row.status()?,
        };
        diesel::update(orders::table.filter(orders::id.eq(row.id)))
            .set((
                orders::status.eq(status.as_str()),
                orders::late_payment.eq(if outcome == LatePayment::Honoured {
                    "honoured"
                } else {
                    "refund_due"
                }),
                orders::stripe_payment_intent_id.eq(intent),
                orders::paid_at.eq((outcome == LatePayment::Honoured).then_some(at)),
                orders::updated_at.eq(at),
            ))
            .execute(conn)?;
        if outcome == LatePayment::Honoured {
            close_cart_and_redeem(conn, &row, at)?;
        }
        tracing::warn!(order.id = %order_id, outcome = ?outcome, "payment arrived after the order had ended");
        Ok(outcome)
    })
}

/// Takes the units of the order's released reservations from the stock again and commits them; a line
/// whose variant left the catalog, or a variant without the units, fails with `RollbackTransaction` (the
/// caller's savepoint undoes what was taken).
fn retake_stock(conn: &mut DbConnection, row: &OrderRow, at: NaiveDateTime) -> QueryResult<()> {
    let orphan_lines: i64 = order_lines::table
        .filter(order_lines::order_id.eq(row.id))
        .filter(order_lines::variant_id.is_null())
        .filter(order_lines::booking_id.is_null())
        .count()
        .get_result(conn)?;
    if orphan_lines > 0 {
        return Err(diesel::result::Error::RollbackTransaction);
    }
    let released: Vec<(DbUuid, DbUuid, i32)> = reservations::table
        .filter(reservations::order_id.eq(row.id))
        .filter(reservations::status.eq("released"))
        .order(reservations::variant_id.asc())
        .select((reservations::id, reservations::variant_id, reservations::quantity))
        .load(conn)?;
    confirm_stays(conn, row.id.0)?;
    for (id, variant_id, quantity) in released {
        if !take_stock(conn, row.merchant_id.0, variant_id.0, i64::from(quantity), at)? {
            return Err(diesel::result::Error::RollbackTransaction);
        }
        diesel::update(reservations::table.filter(reservations::id.eq(id)))
            .set((
                reservations::status.eq("committed"),
                reservations::updated_at.eq(at),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Records the full refund of a late payment that could not be honoured: the refund (as
/// [`record_refund`] does), then the order `refunded` with `late_payment = refunded`.
pub fn record_late_refund(
    conn: &mut DbConnection,
    order_id: Uuid,
    stripe_refund_id: &str,
    amount: Money,
    status: &str,
) -> Result<Order, RefundError> {
    one_transaction(conn, |conn| {
        record_refund(conn, order_id, stripe_refund_id, amount, status)?;
        diesel::update(
            orders::table
                .filter(orders::id.eq(DbUuid(order_id)))
                .filter(orders::late_payment.eq("refund_due")),
        )
        .set((
            orders::status.eq(OrderStatus::Refunded.as_str()),
            orders::late_payment.eq("refunded"),
            orders::updated_at.eq(now()),
        ))
        .execute(conn)?;
        Ok(load(conn, order_id)?)
    })
}

/// Moves an order forward, in one write transaction; returns whether it moved. A move the state machine
/// forbids, or a repeat of the current status, changes nothing (`Ok(false)`), so Stripe events delivered
/// twice or out of order have one effect. `paid`: reservations committed (the stock stays taken), the
/// cart closed (`checked_out`), the discount code redeemed (an exhausted code is logged, the order stays
/// paid), `paid_at` set. `expired` and `payment_failed`: stock given back, the cart left open.
/// `payment_intent`, when given, is stored. An unknown order is `NotFound`.
#[tracing::instrument(skip_all, fields(order.id = %order_id, order.next = %next))]
pub fn transition(
    conn: &mut DbConnection,
    order_id: Uuid,
    next: OrderStatus,
    payment_intent: Option<&str>,
    at: NaiveDateTime,
) -> QueryResult<bool> {
    one_transaction(conn, |conn| {
        if next == OrderStatus::Paid {
            // The cart before the order, as in `checkout`.
            let cart_id: Option<DbUuid> = orders::table
                .filter(orders::id.eq(DbUuid(order_id)))
                .select(orders::cart_id)
                .first(conn)?;
            if let Some(cart_id) = cart_id {
                lock_cart(conn, cart_id.0)?;
            }
        }
        lock_order(conn, order_id)?;
        let row = order_row(conn, order_id)?.ok_or(diesel::result::Error::NotFound)?;
        apply(conn, &row, next, payment_intent, at)
    })
}

/// Stores the Checkout Session made for an order awaiting payment: its id, URL, expiry (which becomes
/// the end of the stock hold) and the attempt it was made with. False when the order no longer awaits
/// payment (superseded or expired meanwhile): the caller expires the session it just made.
pub fn record_session(
    conn: &mut DbConnection,
    order_id: Uuid,
    session_id: &str,
    url: &str,
    expires_at: NaiveDateTime,
    attempt: i32,
) -> QueryResult<bool> {
    let recorded = diesel::update(
        orders::table
            .filter(orders::id.eq(DbUuid(order_id)))
            .filter(orders::status.eq(OrderStatus::AwaitingPayment.as_str())),
    )
    .set((
        orders::stripe_session_id.eq(session_id),
        orders::stripe_session_url.eq(url),
        orders::expires_at.eq(expires_at),
        orders::attempt.eq(attempt),
        orders::checked_at.eq(now()),
        orders::updated_at.eq(now()),
    ))
    .execute(conn)?;
    if recorded == 1 {
        crate::bookings::follow_order(conn, order_id, expires_at)?;
    }
    Ok(recorded == 1)
}

/// Orders of every merchant whose payment is not settled (awaiting payment with a session, or
/// processing) and that should be checked at Stripe now: those a shopper came back from Stripe's page
/// for (or never checked), and, with `stale_before`, those last checked before it. A webhook lost for
/// good still ends in the right state this way.
pub fn to_reconcile(
    conn: &mut DbConnection,
    stale_before: Option<NaiveDateTime>,
    limit: i64,
) -> QueryResult<Vec<Order>> {
    let unsettled = [
        OrderStatus::AwaitingPayment.as_str(),
        OrderStatus::Processing.as_str(),
    ];
    let mut query = orders::table
        .filter(orders::status.eq_any(unsettled))
        .filter(orders::stripe_session_id.is_not_null())
        .order(orders::id.asc())
        .limit(limit)
        .select(OrderRow::as_select())
        .into_boxed();
    query = match stale_before {
        Some(before) => query.filter(orders::checked_at.is_null().or(orders::checked_at.lt(before))),
        None => query.filter(orders::checked_at.is_null()),
    };
    let rows = query.load(conn)?;
    with_lines(conn, rows)
}

/// Stripe was asked about the order at `at`; `None` asks for a check as soon as possible (the shopper
/// came back from the payment page).
pub fn mark_checked(conn: &mut DbConnection, order_id: Uuid, at: Option<NaiveDateTime>) -> QueryResult<()> {
    diesel::update(orders::table.filter(orders::id.eq(DbUuid(order_id))))
        .set(orders::checked_at.eq(at))
        .execute(conn)?;
    Ok(())
}

/// Records whether the receipt reached the thread: `sent`, or why not.
pub fn set_receipt(conn: &mut DbConnection, order_id: Uuid, receipt: &str) -> QueryResult<()> {
    diesel::update(orders::table.filter(orders::id.eq(DbUuid(order_id))))
        .set(orders::receipt.eq(receipt))
        .execute(conn)?;
    Ok(())
}

/// Orders awaiting payment that have no Checkout Session yet, oldest first: the payments worker makes
/// theirs.
pub fn needing_session(conn: &mut DbConnection, limit: i64) -> QueryResult<Vec<Order>> {
    let rows = orders::table
        .filter(orders::status.eq(OrderStatus::AwaitingPayment.as_str()))
        .filter(orders::stripe_session_id.is_null())
        .order(orders::id.asc())
        .limit(limit)
        .select(OrderRow::as_select())
        .load(conn)?;
    with_lines(conn, rows)
}

/// A claimed call to Stripe to make an order's Checkout Session: the `Idempotency-Key` and session expiry
/// to send, and how many calls this one makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionTry {
    /// `order-<uuid>-checkout-<n>`.
    pub key: String,
    /// That `n`.
    pub attempt: i32,
    /// The session's `expires_at`.
    pub expires_at: NaiveDateTime,
    /// Calls made so far, this one included.
    pub tries: i32,
}

/// Claims the next call to Stripe for an order awaiting payment without a session: `session_tries` goes
/// from `seen` to `seen + 1` (and `updated_at` to now) in one conditional statement, so two workers never
/// make the same call at once. The request is repeated as it was while its key is in flight (the same
/// key and expiry: after a crash or a lost answer Stripe replays the session it made, so none is made
/// twice); a new key `order-<uuid>-checkout-<n+1>` with the expiry `new_expiry` is minted, and stored
/// before Stripe is called, when none is in flight. `None` when someone else claimed it, a session was
/// recorded, or the order no longer awaits payment.
pub fn claim_session_try(
    conn: &mut DbConnection,
    order_id: Uuid,
    seen: i32,
    new_expiry: NaiveDateTime,
) -> QueryResult<Option<SessionTry>> {
    one_transaction(conn, |conn| {
        let claimed = diesel::update(
            orders::table
                .filter(orders::id.eq(DbUuid(order_id)))
                .filter(orders::status.eq(OrderStatus::AwaitingPayment.as_str()))
                .filter(orders::stripe_session_id.is_null())
                .filter(orders::session_tries.eq(seen)),
        )
        .set((
            orders::session_tries.eq(seen.saturating_add(1)),
            orders::updated_at.eq(now()),
        ))
        .execute(conn)?;
        if claimed == 0 {
            return Ok(None);
        }
        let (key, attempt, expires_at): (Option<String>, i32, Option<NaiveDateTime>) = orders::table
            .filter(orders::id.eq(DbUuid(order_id)))
            .select((orders::session_key, orders::attempt, orders::expires_at))
            .first(conn)?;
        let tries = seen.saturating_add(1);
        if let (Some(key), Some(expires_at)) = (key, expires_at) {
            return Ok(Some(SessionTry {
                key,
                attempt,
                expires_at,
                tries,
            }));
        }
        let attempt = attempt.saturating_add(1);
        let key = format!("order-{order_id}-checkout-{attempt}");
        diesel::update(orders::table.filter(orders::id.eq(DbUuid(order_id))))
            .set((
                orders::session_key.eq(&key),
                orders::attempt.eq(attempt),
                orders::expires_at.eq(new_expiry),
            ))
            .execute(conn)?;
        Ok(Some(SessionTry {
            key,
            attempt,
            expires_at: new_expiry,
            tries,
        }))
    })
}

/// Gives up the key in flight: Stripe refused its request for good (its expiry, fixed when the key was
/// minted, is now too close), so the next call mints a new key with a new expiry. Safe because a
/// refused request made no session.
pub fn drop_session_key(conn: &mut DbConnection, order_id: Uuid) -> QueryResult<()> {
    diesel::update(orders::table.filter(orders::id.eq(DbUuid(order_id))))
        .set(orders::session_key.eq(None::<String>))
        .execute(conn)?;
    Ok(())
}

/// The order a Checkout Session was made for.
pub fn find_by_session(conn: &mut DbConnection, session_id: &str) -> QueryResult<Option<Order>> {
    let row = orders::table
        .filter(orders::stripe_session_id.eq(session_id))
        .select(OrderRow::as_select())
        .first(conn)
        .optional()?;
    Ok(with_lines(conn, row.into_iter().collect())?.pop())
}

/// The merchant's order `id` (another merchant's answers `None`).
pub fn get(conn: &mut DbConnection, merchant_id: Uuid, id: Uuid) -> QueryResult<Option<Order>> {
    let row = orders::table
        .filter(orders::id.eq(DbUuid(id)))
        .filter(orders::merchant_id.eq(DbUuid(merchant_id)))
        .select(OrderRow::as_select())
        .first(conn)
        .optional()?;
    Ok(with_lines(conn, row.into_iter().collect())?.pop())
}

/// A page of the merchant's orders in id (creation) order, newest last.
pub fn list(conn: &mut DbConnection, merchant_id: Uuid, q: &OrderQuery) -> QueryResult<Vec<Order>> {
    let mut query = orders::table
        .filter(orders::merchant_id.eq(DbUuid(merchant_id)))
        .order(orders::id.asc())
        .limit(q.limit)
        .select(OrderRow::as_select())
        .into_boxed();
    if let Some(after) = q.after {
        query = query.filter(orders::id.gt(DbUuid(after)));
    }
    if let Some(status) = q.status {
        query = query.filter(orders::status.eq(status.as_str()));
    }
    if let Some(thread_id) = q.thread_id {
        query = query.filter(orders::thread_id.eq(DbUuid(thread_id)));
    }
    if let Some(ad_id) = &q.ad_id {
        query = query.filter(orders::ad_id.eq(ad_id.clone()));
    }
    if let Some(from) = q.from {
        query = query.filter(orders::created_at.ge(from));
    }
    if let Some(to) = q.to {
        query = query.filter(orders::created_at.lt(to));
    }
    let rows = query.load(conn)?;
    with_lines(conn, rows)
}

/// Orders of every merchant still awaiting payment whose hold ended at or before `at`, oldest first: the
/// sweeper asks Stripe about each session (it may have been paid at the last moment) before expiring it.
pub fn overdue(conn: &mut DbConnection, at: NaiveDateTime, limit: i64) -> QueryResult<Vec<Order>> {
    let rows = orders::table
        .filter(orders::status.eq(OrderStatus::AwaitingPayment.as_str()))
        .filter(orders::expires_at.le(at))
        .order((orders::expires_at.asc(), orders::id.asc()))
        .limit(limit)
        .select(OrderRow::as_select())
        .load(conn)?;
    with_lines(conn, rows)
}

/// Marks or clears an open dispute on the order's payment. An unknown order is `NotFound`.
pub fn set_disputed(conn: &mut DbConnection, order_id: Uuid, disputed: bool) -> QueryResult<()> {
    let changed = diesel::update(orders::table.filter(orders::id.eq(DbUuid(order_id))))
        .set((orders::disputed.eq(disputed), orders::updated_at.eq(now())))
        .execute(conn)?;
    if changed == 0 {
        return Err(diesel::result::Error::NotFound);
    }
    Ok(())
}

/// Refund statuses (Stripe's) whose amount does not count as refunded.
const REFUND_NOT_COUNTED: [&str; 2] = ["failed", "canceled"];

/// Records a Stripe refund of the order, or a new status of one already recorded (by its Stripe id: a
/// repeated event changes nothing more), in one write transaction. The order's `refunded` becomes the sum
/// of its refunds that are not failed or canceled, never above the total (`AboveTotal`, nothing
/// recorded); its status moves to `partially_refunded` or, at the total, `refunded`, where the state
/// machine allows (an order never paid keeps its status but still records the money).
#[tracing::instrument(skip_all, fields(order.id = %order_id, refund.status = %status))]
pub fn record_refund(
    conn: &mut DbConnection,
    order_id: Uuid,
    stripe_refund_id: &str,
    amount: Money,
    status: &str,
) -> Result<Order, RefundError> {
    one_transaction(conn, |conn| {
        lock_order(conn, order_id)?;
        let row = order_row(conn, order_id)?.ok_or(RefundError::NotFound)?;
        let currency = row.currency()?;
        if amount.currency() != currency || amount.minor() <= 0 {
            return Err(RefundError::InvalidAmount);
        }
        let at = now();
        let known = diesel::update(
            refunds::table
                .filter(refunds::stripe_refund_id.eq(stripe_refund_id))
                .filter(refunds::order_id.eq(DbUuid(order_id))),
        )
        .set((refunds::status.eq(status), refunds::updated_at.eq(at)))
        .execute(conn)?;
        if known == 0 {
            diesel::insert_into(refunds::table)
                .values((
                    refunds::id.eq(DbUuid(Uuid::now_v7())),
                    refunds::merchant_id.eq(row.merchant_id),
                    refunds::order_id.eq(DbUuid(order_id)),
                    refunds::stripe_refund_id.eq(stripe_refund_id),
                    refunds::amount_minor.eq(amount.minor()),
                    refunds::currency.eq(currency.code()),
                    refunds::status.eq(status),
                    refunds::created_at.eq(at),
                    refunds::updated_at.eq(at),
                ))
                .execute(conn)?;
        }
        let amounts: Vec<i64> = refunds::table
            .filter(refunds::order_id.eq(DbUuid(order_id)))
            .filter(refunds::status.ne_all(REFUND_NOT_COUNTED))
            .select(refunds::amount_minor)
            .load(conn)?;
        let refunded = amounts.iter().try_fold(0_i64, |sum, a| sum.checked_add(*a));
        let total = Money::from_minor(row.total_minor, currency);
        let refunded = match refunded {
            Some(sum) if sum <= row.total_minor => sum,
            sum => {
                return Err(RefundError::AboveTotal {
                    refunded: Money::from_minor(sum.unwrap_or(i64::MAX), currency),
                    total,
                });
            }
        };
        diesel::update(orders::table.filter(orders::id.eq(DbUuid(order_id))))
            .set((orders::refunded_minor.eq(refunded), orders::updated_at.eq(at)))
            .execute(conn)?;
        // Reports net refunds out of revenue where the purchase was attributed.
        let delta = Money::from_minor(refunded - row.refunded_minor, currency);
        crate::attribution::record_refund(conn, order_id, delta, at)?;
        let next = if refunded == row.total_minor {
            OrderStatus::Refunded
        } else {
            OrderStatus::PartiallyRefunded
        };
        let current = row.status()?;
        if refunded > 0 && current != next && !apply(conn, &row, next, None, at)? {
            tracing::warn!(
                order.id = %order_id,
                order.status = %current,
                order.refunded_minor = refunded,
                "refund recorded on an order whose status does not move to {next}"
            );
        }
        Ok(load(conn, order_id)?)
    })
}

/// A refund asked through the API under an `Idempotency-Key`, as recorded: Stripe's id, status and amount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedRefund {
    /// `re_...`.
    pub stripe_refund_id: String,
    /// Stripe's status when last heard of.
    pub status: String,
    /// The amount.
    pub amount: Money,
}

/// The refund of the order asked under the merchant's `request_key`, if one was made.
pub fn refund_by_request_key(
    conn: &mut DbConnection,
    order_id: Uuid,
    request_key: &str,
) -> QueryResult<Option<KeyedRefund>> {
    let row: Option<(Option<String>, String, i64, String)> = refunds::table
        .filter(refunds::order_id.eq(DbUuid(order_id)))
        .filter(refunds::request_key.eq(request_key))
        .select((
            refunds::stripe_refund_id,
            refunds::status,
            refunds::amount_minor,
            refunds::currency,
        ))
        .first(conn)
        .optional()?;
    row.map(|(id, status, minor, currency)| {
        let currency = Currency::parse(&currency).map_err(|e| corrupt(e.to_string()))?;
        Ok(KeyedRefund {
            stripe_refund_id: id.unwrap_or_default(),
            status,
            amount: Money::from_minor(minor, currency),
        })
    })
    .transpose()
}

/// Remembers the merchant's `request_key` on the recorded refund `stripe_refund_id`.
pub fn set_refund_request_key(
    conn: &mut DbConnection,
    stripe_refund_id: &str,
    request_key: &str,
) -> QueryResult<()> {
    diesel::update(refunds::table.filter(refunds::stripe_refund_id.eq(stripe_refund_id)))
        .set(refunds::request_key.eq(request_key))
        .execute(conn)?;
    Ok(())
}

/// Orders that ended (expired, payment failed) while their Checkout Session may still be open at
/// Stripe: the payments worker expires those sessions, so an old order can never be paid.
pub fn sessions_to_close(conn: &mut DbConnection, limit: i64) -> QueryResult<Vec<(Uuid, String)>> {
    let rows: Vec<(DbUuid, Option<String>)> = orders::table
        .filter(orders::status.eq_any([OrderStatus::Expired.as_str(), OrderStatus::PaymentFailed.as_str()]))
        .filter(orders::stripe_session_id.is_not_null())
        .filter(orders::session_closed.eq(false))
        .order(orders::id.asc())
        .limit(limit)
        .select((orders::id, orders::stripe_session_id))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, s)| s.map(|s| (id.0, s)))
        .collect())
}

/// Remembers that the order's Checkout Session is closed at Stripe.
pub fn mark_session_closed(conn: &mut DbConnection, order_id: Uuid) -> QueryResult<()> {
    diesel::update(orders::table.filter(orders::id.eq(DbUuid(order_id))))
        .set(orders::session_closed.eq(true))
        .execute(conn)?;
    Ok(())
}

/// The order paid with the PaymentIntent `payment_intent` (refund and dispute events name it).
pub fn find_by_payment_intent(conn: &mut DbConnection, payment_intent: &str) -> QueryResult<Option<Order>> {
    let row = orders::table
        .filter(orders::stripe_payment_intent_id.eq(payment_intent))
        .select(OrderRow::as_select())
        .first(conn)
        .optional()?;
    Ok(with_lines(conn, row.into_iter().collect())?.pop())
}

/// The Messenger Page the order was checked out on (the return pages link back to it).
pub fn page_of(conn: &mut DbConnection, order_id: Uuid) -> QueryResult<Option<String>> {
    use crate::db::schema::threads;
    orders::table
        .inner_join(threads::table.on(orders::thread_id.eq(threads::id.nullable())))
        .filter(orders::id.eq(DbUuid(order_id)))
        .select(threads::page_id)
        .first(conn)
        .optional()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::discounts::{Discount, DiscountKind};
    use OrderStatus::*;

    fn eur() -> Currency {
        Currency::parse("EUR").unwrap()
    }

    fn euros(minor: i64) -> Money {
        Money::from_minor(minor, eur())
    }

    // ---- state machine ----------------------------------------------------------------------------

    /// Every allowed move; every other pair is forbidden.
    const ALLOWED: [(OrderStatus, OrderStatus); 9] = [
        (AwaitingPayment, Processing),
        (AwaitingPayment, Paid),
        (AwaitingPayment, PaymentFailed),
        (AwaitingPayment, Expired),
        (Processing, Paid),
        (Processing, PaymentFailed),
        (Paid, PartiallyRefunded),
        (Paid, Refunded),
        (PartiallyRefunded, Refunded),
    ];

    #[test]
    fn exactly_the_forward_moves_are_allowed() {
        for from in OrderStatus::ALL {
            for to in OrderStatus::ALL {
                assert_eq!(
                    from.can_become(to),
                    ALLOWED.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn no_status_can_become_itself() {
        for s in OrderStatus::ALL {
            assert!(!s.can_become(s), "{s}");
        }
    }

    #[test]
    fn expired_payment_failed_and_refunded_are_final_and_nothing_else_is() {
        let finals: Vec<OrderStatus> = OrderStatus::ALL.into_iter().filter(|s| s.is_final()).collect();
        assert_eq!(finals, [PaymentFailed, Expired, Refunded]);
    }

    #[test]
    fn a_paid_order_can_never_go_back_to_awaiting_payment_expired_or_failed() {
        for later in [Paid, PartiallyRefunded, Refunded] {
            for earlier in [AwaitingPayment, Processing, Expired, PaymentFailed] {
                assert!(!later.can_become(earlier), "{later} -> {earlier}");
            }
        }
    }

    #[test]
    fn expired_can_never_become_paid() {
        assert!(!Expired.can_become(Paid));
        assert!(!PaymentFailed.can_become(Paid));
    }

    #[test]
    fn every_status_reads_back_from_its_name() {
        let names: Vec<&str> = OrderStatus::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            names,
            [
                "awaiting_payment",
                "processing",
                "paid",
                "payment_failed",
                "expired",
                "partially_refunded",
                "refunded"
            ]
        );
        for s in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(s.as_str()), Some(s));
            assert_eq!(s.to_string(), s.as_str());
        }
        assert_eq!(OrderStatus::parse("Paid"), None);
        assert_eq!(OrderStatus::parse(""), None);
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
            thread_id: Uuid::from_u128(8),
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
