//! The order as read: its domain type with its lines, the database rows it is read from, and the queries
//! that read orders.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use uuid::Uuid;

use super::{LateSettlement, OrderStatus};
use crate::db::schema::{order_lines, orders};
use crate::db::{DbConnection, DbUuid};
use crate::kernel::{MerchantId, OrderId, ThreadId};
use crate::money::{Currency, Money};

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
    pub id: OrderId,
    /// Its merchant.
    pub merchant_id: MerchantId,
    /// The thread it was checked out in (none once the thread is deleted).
    pub thread_id: Option<ThreadId>,
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
    /// Hash of the cart's content when frozen (see [`super::fingerprint`]).
    pub cart_fingerprint: String,
    /// The number of the last Checkout Session key minted (see [`super::claim_session_try`]).
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
    /// How the receipt reached the thread (`conversations::notices::Told`): `sent`, `template`, `held`
    /// (until the shopper writes again), `no_thread`.
    pub receipt: Option<String>,
    /// A payment that arrived after the order had ended here: `honoured` (the stock was still there,
    /// the order is paid) or `refunded` (it was not: the payment went back in full).
    pub late_payment: Option<LateSettlement>,
    /// The channel of the conversation it was made in (`messenger`, `instagram`, `webchat`).
    pub channel: crate::kernel::Channel,
    /// Lines in the cart's order.
    pub lines: Vec<OrderLine>,
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct OrderQuery {
    /// Where the page starts and which way it reads.
    pub page: crate::db::Keyset,
    /// Page size.
    pub limit: i64,
    /// Only orders in this status.
    pub status: Option<OrderStatus>,
    /// Only orders checked out in this thread.
    pub thread_id: Option<ThreadId>,
    /// Only orders attributed to this ad.
    pub ad_id: Option<String>,
    /// Only orders made at or after this instant (UTC).
    pub from: Option<NaiveDateTime>,
    /// Only orders made before this instant (UTC).
    pub to: Option<NaiveDateTime>,
    /// Only orders made in conversations on this channel.
    pub channel: Option<crate::kernel::Channel>,
    /// Only orders whose number or customer's name contains this text (case aside).
    pub text: Option<String>,
}

/// An `orders` row as stored; [`OrderRow::status`] and [`OrderRow::currency`] read its typed values.
#[derive(Queryable, Selectable)]
#[diesel(table_name = orders)]
pub(super) struct OrderRow {
    pub(super) id: OrderId,
    pub(super) merchant_id: MerchantId,
    pub(super) thread_id: Option<ThreadId>,
    pub(super) cart_id: Option<DbUuid>,
    pub(super) number: String,
    pub(super) status: String,
    pub(super) disputed: bool,
    pub(super) currency: String,
    pub(super) subtotal_minor: i64,
    pub(super) discount_minor: i64,
    pub(super) total_minor: i64,
    pub(super) refunded_minor: i64,
    pub(super) discount_id: Option<DbUuid>,
    pub(super) discount_code: Option<String>,
    pub(super) cart_fingerprint: String,
    pub(super) attempt: i32,
    pub(super) stripe_session_id: Option<String>,
    pub(super) stripe_session_url: Option<String>,
    pub(super) stripe_payment_intent_id: Option<String>,
    pub(super) expires_at: Option<NaiveDateTime>,
    pub(super) touch_id: Option<DbUuid>,
    pub(super) ad_id: Option<String>,
    pub(super) paid_at: Option<NaiveDateTime>,
    pub(super) created_at: NaiveDateTime,
    pub(super) updated_at: NaiveDateTime,
    pub(super) session_key: Option<String>,
    pub(super) session_tries: i32,
    pub(super) receipt: Option<String>,
    pub(super) late_payment: Option<LateSettlement>,
    pub(super) channel: crate::kernel::Channel,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = order_lines)]
struct LineRow {
    id: DbUuid,
    order_id: OrderId,
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

pub(super) fn corrupt(what: String) -> diesel::result::Error {
    diesel::result::Error::DeserializationError(what.into())
}

impl OrderRow {
    pub(super) fn status(&self) -> QueryResult<OrderStatus> {
        OrderStatus::parse(&self.status)
            .ok_or_else(|| corrupt(format!("unknown order status `{}`", self.status)))
    }

    pub(super) fn currency(&self) -> QueryResult<Currency> {
        Currency::parse(&self.currency).map_err(|e| corrupt(e.to_string()))
    }

    fn into_order(self, lines: Vec<OrderLine>) -> QueryResult<Order> {
        let status = self.status()?;
        let currency = self.currency()?;
        let money = |minor| Money::from_minor(minor, currency);
        Ok(Order {
            id: self.id,
            merchant_id: self.merchant_id,
            thread_id: self.thread_id,
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
pub(super) fn with_lines(conn: &mut DbConnection, rows: Vec<OrderRow>) -> QueryResult<Vec<Order>> {
    let mut currencies = BTreeMap::new();
    for row in &rows {
        currencies.insert(row.id, row.currency()?);
    }
    let ids: Vec<OrderId> = rows.iter().map(|r| r.id).collect();
    let mut by_order: BTreeMap<OrderId, Vec<OrderLine>> = BTreeMap::new();
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

pub(super) fn order_row(conn: &mut DbConnection, id: OrderId) -> QueryResult<Option<OrderRow>> {
    orders::table
        .filter(orders::id.eq(id))
        .select(OrderRow::as_select())
        .first(conn)
        .optional()
}

/// The order `id`, of whichever merchant (for the workers).
pub fn load_order(conn: &mut DbConnection, id: OrderId) -> QueryResult<Order> {
    load(conn, id)
}

pub(super) fn load(conn: &mut DbConnection, id: OrderId) -> QueryResult<Order> {
    let row = order_row(conn, id)?.ok_or(diesel::result::Error::NotFound)?;
    with_lines(conn, vec![row])?
        .pop()
        .ok_or(diesel::result::Error::NotFound)
}

/// Records whether the receipt reached the thread: `sent`, or why not.
pub fn set_receipt(conn: &mut DbConnection, order_id: OrderId, receipt: &str) -> QueryResult<()> {
    diesel::update(orders::table.filter(orders::id.eq(order_id)))
        .set(orders::receipt.eq(receipt))
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
pub fn get(conn: &mut DbConnection, merchant_id: MerchantId, id: OrderId) -> QueryResult<Option<Order>> {
    let row = orders::table
        .filter(orders::id.eq(id))
        .filter(orders::merchant_id.eq(merchant_id))
        .select(OrderRow::as_select())
        .first(conn)
        .optional()?;
    Ok(with_lines(conn, row.into_iter().collect())?.pop())
}

/// A page of the merchant's orders, newest created first unless the query asks oldest first.
pub fn list(conn: &mut DbConnection, merchant_id: MerchantId, q: &OrderQuery) -> QueryResult<Vec<Order>> {
    let mut query = orders::table
        .filter(orders::merchant_id.eq(merchant_id))
        .limit(q.limit)
        .select(OrderRow::as_select())
        .into_boxed();
    query = crate::keyset!(query, orders::id, q.page);
    if let Some(status) = q.status {
        query = query.filter(orders::status.eq(status.as_str()));
    }
    if let Some(thread_id) = q.thread_id {
        query = query.filter(orders::thread_id.eq(thread_id));
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
    if let Some(channel) = q.channel {
        query = query.filter(orders::channel.eq(channel));
    }
    if let Some(text) = q.text.as_deref() {
        use crate::db::schema::{customers, threads};
        use crate::db::{contains_pattern, lower};
        let pattern = contains_pattern(text);
        let named = threads::table
            .inner_join(customers::table)
            .filter(threads::merchant_id.eq(merchant_id))
            .filter(lower(customers::first_name).like(pattern.clone()).escape('\\'))
            .select(threads::id.nullable());
        query = query.filter(
            lower(orders::number.nullable())
                .like(pattern)
                .escape('\\')
                .assume_not_null()
                .or(orders::thread_id.eq_any(named)),
        );
    }
    let rows = query.load(conn)?;
    with_lines(conn, rows)
}

/// What the thread's shopper paid over their lifetime, per currency: the totals of paid orders less
/// their refunds.
pub fn paid_in_thread(conn: &mut DbConnection, thread_id: ThreadId) -> QueryResult<Vec<Money>> {
    let rows: Vec<(String, i64, i64)> = orders::table
        .filter(orders::thread_id.eq(thread_id))
        .filter(orders::paid_at.is_not_null())
        .select((orders::currency, orders::total_minor, orders::refunded_minor))
        .load(conn)?;
    let mut sums: Vec<Money> = Vec::new();
    for (currency, total, refunded) in rows {
        let currency = Currency::parse(&currency)
            .map_err(|e| diesel::result::Error::DeserializationError(e.to_string().into()))?;
        let paid = total.saturating_sub(refunded);
        match sums.iter_mut().find(|m| m.currency() == currency) {
            Some(sum) => *sum = Money::from_minor(sum.minor().saturating_add(paid), currency),
            None => sums.push(Money::from_minor(paid, currency)),
        }
    }
    Ok(sums)
}

/// The first names of the customers who made `orders`, by thread (orders without a thread or name have none).
pub fn customer_names(
    conn: &mut DbConnection,
    orders: &[Order],
) -> QueryResult<std::collections::HashMap<ThreadId, String>> {
    use crate::db::schema::{customers, threads};
    let ids: Vec<ThreadId> = orders.iter().filter_map(|o| o.thread_id).collect();
    let names: Vec<(ThreadId, Option<String>)> = threads::table
        .inner_join(customers::table)
        .filter(threads::id.eq_any(ids))
        .select((threads::id, customers::first_name))
        .load(conn)?;
    Ok(names
        .into_iter()
        .filter_map(|(thread, name)| name.map(|n| (thread, n)))
        .collect())
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
pub fn page_of(conn: &mut DbConnection, order_id: OrderId) -> QueryResult<Option<String>> {
    use crate::db::schema::threads;
    orders::table
        .inner_join(threads::table.on(orders::thread_id.eq(threads::id.nullable())))
        .filter(orders::id.eq(order_id))
        .select(threads::page_id)
        .first(conn)
        .optional()
}
