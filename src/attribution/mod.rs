//! Attribution: funnel events recorded as they happen, each attributed to the thread's latest touch (the
//! ad or link that brought the shopper) when that touch lies within the merchant's attribution window,
//! and organic otherwise; a daily rollup kept with each event, so reports read days, not events.
//!
//! The rule: a step at `at` belongs to the thread's latest touch if `at - touch.occurred_at` is at most
//! the merchant's `attribution_window_days` (7 by default); the thread's first touch is kept beside it.
//! A refund belongs where its order's purchase went, so revenue nets out in the same row.

pub mod conversions;
pub mod report;
pub mod touches;

use chrono::{NaiveDate, NaiveDateTime, TimeZone};
use diesel::prelude::*;
use diesel::upsert::excluded;
use uuid::Uuid;

use crate::db::schema::{funnel_daily, funnel_events, merchants};
use crate::db::{DbConnection, DbUuid, now};
use crate::kernel::{MerchantId, OrderId, ThreadId};
use crate::money::Money;
pub use touches::Touch;

/// What the funnel needs of a conversation's thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadView {
    /// The thread.
    pub id: crate::kernel::ThreadId,
    /// Its merchant.
    pub merchant_id: MerchantId,
    /// Its channel.
    pub channel: crate::kernel::Channel,
    /// Its first touch.
    pub first_touch_id: Option<DbUuid>,
    /// Its latest touch.
    pub latest_touch_id: Option<DbUuid>,
}

/// The attribution window when the merchant has not set one.
pub const DEFAULT_WINDOW_DAYS: i32 = 7;

/// A step of the funnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FunnelStep {
    /// The shopper acted in the thread for the first time (recorded once per thread).
    Engaged,
    /// The shopper saw a product's card.
    ProductView,
    /// The shopper put something in the cart.
    AddToCart,
    /// The shopper started a checkout.
    Checkout,
    /// Stripe confirmed the payment.
    Purchase,
    /// Money went back on a purchase (the value is the change of the order's refunded amount).
    Refund,
    /// The shopper was reminded of the cart they left (the value is the cart's total).
    CartReminder,
    /// An order paid from a cart its shopper had been reminded of (recorded beside its purchase).
    RecoveredPurchase,
}

impl FunnelStep {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            FunnelStep::Engaged => "engaged",
            FunnelStep::ProductView => "product_view",
            FunnelStep::AddToCart => "add_to_cart",
            FunnelStep::Checkout => "checkout",
            FunnelStep::Purchase => "purchase",
            FunnelStep::Refund => "refund",
            FunnelStep::CartReminder => "cart_reminder",
            FunnelStep::RecoveredPurchase => "recovered_purchase",
        }
    }
}

/// The campaign a `ref` names under our convention: `key=value` segments joined by `_`, the campaign in
/// `c=` (`c=xmas24_p=SLIP-01` is campaign `xmas24`). A `ref` with characters other than letters, digits,
/// `-`, `_` and `=` names no campaign (it is still stored and reported as given).
pub fn campaign_of(ref_: &str) -> Option<String> {
    if ref_.is_empty()
        || !ref_
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '='))
    {
        return None;
    }
    // A piece without `=` belongs to the value before it: `c=xmas_24_p=1` is campaign `xmas_24`.
    let mut segments: Vec<String> = Vec::new();
    for piece in ref_.split('_') {
        match segments.last_mut() {
            Some(last) if !piece.contains('=') => {
                last.push('_');
                last.push_str(piece);
            }
            _ => segments.push(piece.to_owned()),
        }
    }
    segments
        .into_iter()
        .find_map(|s| s.strip_prefix("c=").map(str::to_owned))
        .filter(|c| !c.is_empty())
}

/// The touch a step at `at` is attributed to: `latest` when it happened at most `window_days` before.
pub fn within_window(latest: Option<Touch>, at: NaiveDateTime, window_days: i32) -> Option<Touch> {
    latest.filter(|t| {
        t.occurred_at <= at && at - t.occurred_at <= chrono::Duration::days(i64::from(window_days))
    })
}

/// The merchant's settings the rule needs: timezone and window.
fn settings(conn: &mut DbConnection, merchant_id: MerchantId) -> QueryResult<(chrono_tz::Tz, i32)> {
    let (tz, window): (String, i32) = merchants::table
        .find(merchant_id)
        .select((merchants::timezone, merchants::attribution_window_days))
        .first(conn)?;
    let tz = tz
        .parse()
        .map_err(|_| diesel::result::Error::DeserializationError(format!("unknown timezone {tz}").into()))?;
    Ok((tz, window))
}

/// The funnel of one thread through the steps of one shopper action: the merchant's settings, the
/// thread's latest touch and whether the shopper acted before are each read once, however many steps
/// are recorded.
pub struct ThreadFunnel {
    thread: ThreadView,
    settings: Option<(chrono_tz::Tz, i32)>,
    latest: Option<Option<Touch>>,
    acted: bool,
}

impl ThreadFunnel {
    /// The thread's funnel; the merchant's settings are read when first needed.
    pub fn new(thread: ThreadView) -> ThreadFunnel {
        ThreadFunnel {
            thread,
            settings: None,
            latest: None,
            acted: false,
        }
    }

    /// The thread's funnel under settings the caller has read already (the merchant's timezone and
    /// attribution window).
    pub fn with_settings(thread: ThreadView, tz: chrono_tz::Tz, window_days: i32) -> ThreadFunnel {
        ThreadFunnel {
            settings: Some((tz, window_days)),
            ..ThreadFunnel::new(thread)
        }
    }

    /// The thread.
    pub fn thread(&self) -> &ThreadView {
        &self.thread
    }

    fn settings(&mut self, conn: &mut DbConnection) -> QueryResult<(chrono_tz::Tz, i32)> {
        match self.settings {
            Some(s) => Ok(s),
            None => {
                let s = settings(conn, self.thread.merchant_id)?;
                self.settings = Some(s);
                Ok(s)
            }
        }
    }

    /// The touch a step at `at` is attributed to, under the merchant's window.
    pub fn attributed_touch(
        &mut self,
        conn: &mut DbConnection,
        at: NaiveDateTime,
    ) -> QueryResult<Option<Touch>> {
        let (_, window) = self.settings(conn)?;
        let latest = match &self.latest {
            Some(latest) => latest.clone(),
            None => {
                let latest = match self.thread.latest_touch_id {
                    Some(id) => Some(touches::touch(conn, id)?),
                    None => None,
                };
                self.latest = Some(latest.clone());
                latest
            }
        };
        Ok(within_window(latest, at, window))
    }

    /// Records a funnel step about a product (viewed, added), with its attributed touch.
    pub fn record(
        &mut self,
        conn: &mut DbConnection,
        step: FunnelStep,
        product_id: Option<Uuid>,
        value: Option<Money>,
    ) -> QueryResult<()> {
        let what = Step {
            product_id,
            ..Step::new(step, value, now())
        };
        self.insert(conn, what)
    }

    /// Records a funnel step about a room type (viewed, held), with its attributed touch.
    pub fn record_stay(
        &mut self,
        conn: &mut DbConnection,
        step: FunnelStep,
        bookable_id: Uuid,
        value: Option<Money>,
    ) -> QueryResult<()> {
        let what = Step {
            bookable_id: Some(bookable_id),
            ..Step::new(step, value, now())
        };
        self.insert(conn, what)
    }

    /// Records a checkout or purchase of an order at `at`, with its attributed touch.
    pub fn record_order(
        &mut self,
        conn: &mut DbConnection,
        step: FunnelStep,
        order_id: OrderId,
        value: Money,
        at: NaiveDateTime,
    ) -> QueryResult<()> {
        let what = Step {
            order_id: Some(order_id),
            ..Step::new(step, Some(value), at)
        };
        self.insert(conn, what)
    }

    fn insert(&mut self, conn: &mut DbConnection, what: Step) -> QueryResult<()> {
        let touch = self.attributed_touch(conn, what.at)?;
        let dims = touch
            .as_ref()
            .map_or_else(|| Dims::organic_on(self.thread.channel.as_str()), Dims::of);
        let thread = self.thread.clone();
        let event = |kind: FunnelStep, value: Option<Money>| Event {
            merchant_id: thread.merchant_id,
            thread_id: thread.id,
            kind: kind.as_str(),
            touch_id: touch.as_ref().map(|t| t.id),
            first_touch_id: thread.first_touch_id,
            dims: dims.clone(),
            product_id: what.product_id.map(DbUuid),
            bookable_id: what.bookable_id.map(DbUuid),
            order_id: what.order_id,
            value,
            at: what.at,
        };
        if matches!(
            what.step,
            FunnelStep::ProductView | FunnelStep::AddToCart | FunnelStep::Checkout
        ) && !self.acted
        {
            let acted_before = funnel_events::table
                .filter(funnel_events::thread_id.eq(thread.id))
                .select(funnel_events::id)
                .first::<DbUuid>(conn)
                .optional()?
                .is_some();
            if !acted_before {
                insert_event(conn, &event(FunnelStep::Engaged, None))?;
            }
        }
        insert_event(conn, &event(what.step, what.value))?;
        // The thread has an event now: the next step needs no look.
        self.acted = true;
        Ok(())
    }
}

/// Records a checkout or purchase of an order at `at`, with its attributed touch.
pub fn record_order(
    conn: &mut DbConnection,
    thread: ThreadView,
    step: FunnelStep,
    order_id: OrderId,
    value: Money,
    at: NaiveDateTime,
) -> QueryResult<()> {
    ThreadFunnel::new(thread).record_order(conn, step, order_id, value, at)
}

/// Records a change of an order's refunded amount (`delta`, negative when a refund failed after being
/// counted), where the order's purchase was attributed. An order never recorded as a purchase has no
/// revenue to reduce: nothing is recorded.
pub fn record_refund(
    conn: &mut DbConnection,
    order_id: OrderId,
    delta: Money,
    at: NaiveDateTime,
) -> QueryResult<()> {
    if delta.minor() == 0 {
        return Ok(());
    }
    let purchase: Option<PurchaseRow> = funnel_events::table
        .filter(funnel_events::order_id.eq(order_id))
        .filter(funnel_events::kind.eq(FunnelStep::Purchase.as_str()))
        .select(PurchaseRow::as_select())
        .first(conn)
        .optional()?;
    let Some(p) = purchase else {
        return Ok(());
    };
    let event = Event {
        merchant_id: p.merchant_id,
        thread_id: p.thread_id,
        kind: FunnelStep::Refund.as_str(),
        touch_id: p.touch_id,
        first_touch_id: p.first_touch_id,
        dims: Dims {
            organic: p.organic,
            channel: Some(p.channel),
            ad_id: p.ad_id,
            ref_: p.ref_,
            source: p.source,
            campaign: p.campaign,
            product: p.touch_product,
        },
        product_id: None,
        bookable_id: None,
        order_id: Some(order_id),
        value: Some(delta),
        at,
    };
    insert_event(conn, &event)
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = funnel_events)]
struct PurchaseRow {
    merchant_id: MerchantId,
    thread_id: ThreadId,
    touch_id: Option<DbUuid>,
    first_touch_id: Option<DbUuid>,
    organic: bool,
    ad_id: Option<String>,
    ref_: Option<String>,
    source: Option<String>,
    campaign: Option<String>,
    touch_product: Option<String>,
    channel: String,
}

struct Step {
    step: FunnelStep,
    product_id: Option<Uuid>,
    bookable_id: Option<Uuid>,
    order_id: Option<OrderId>,
    value: Option<Money>,
    at: NaiveDateTime,
}

impl Step {
    fn new(step: FunnelStep, value: Option<Money>, at: NaiveDateTime) -> Step {
        Step {
            step,
            product_id: None,
            bookable_id: None,
            order_id: None,
            value,
            at,
        }
    }
}

/// What a report groups by, taken from the attributed touch.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Dims {
    pub organic: bool,
    /// The channel of the thread (`messenger`, `instagram`, `webchat`).
    pub channel: Option<String>,
    pub ad_id: Option<String>,
    pub ref_: Option<String>,
    pub source: Option<String>,
    pub campaign: Option<String>,
    /// The advertised product's retailer id (`ads_context_data.product_id`).
    pub product: Option<String>,
}

impl Dims {
    /// The dimensions of a touch.
    /// The campaign is the `ref`'s `c=`, else (a web chat opened on a tagged page) `utm_campaign`.
    pub(crate) fn of(touch: &Touch) -> Dims {
        Dims {
            organic: false,
            channel: Some(touch.channel.to_string()),
            ad_id: touch.ad_id.clone(),
            ref_: touch.ref_.clone(),
            source: Some(touch.source.clone()),
            campaign: touch
                .ref_
                .as_deref()
                .and_then(campaign_of)
                .or_else(|| touch.utm_campaign.clone().filter(|c| !c.is_empty())),
            product: touch.product_id.clone(),
        }
    }

    /// A step with no touch in the window, on `channel`.
    pub(crate) fn organic_on(channel: &str) -> Dims {
        Dims {
            organic: true,
            channel: Some(channel.to_owned()),
            ..Dims::default()
        }
    }
}

struct Event {
    merchant_id: MerchantId,
    thread_id: ThreadId,
    kind: &'static str,
    touch_id: Option<DbUuid>,
    first_touch_id: Option<DbUuid>,
    dims: Dims,
    product_id: Option<DbUuid>,
    bookable_id: Option<DbUuid>,
    order_id: Option<OrderId>,
    value: Option<Money>,
    at: NaiveDateTime,
}

/// The merchant-local day of an instant.
pub fn local_day(tz: chrono_tz::Tz, at: NaiveDateTime) -> NaiveDate {
    tz.from_utc_datetime(&at).date_naive()
}

/// Records a funnel event, not yet counted in the daily rollup: [`fold_pending`] adds it there, in a
/// batch (a rollup row is shared by every shopper of an ad on a day, and adding to it here would keep
/// it locked until the shopper's commit, making each shopper of the ad wait for the previous one's).
fn insert_event(conn: &mut DbConnection, e: &Event) -> QueryResult<()> {
    diesel::insert_into(funnel_events::table)
        .values((
            funnel_events::id.eq(DbUuid(Uuid::now_v7())),
            funnel_events::merchant_id.eq(e.merchant_id),
            funnel_events::thread_id.eq(e.thread_id),
            funnel_events::kind.eq(e.kind),
            funnel_events::touch_id.eq(e.touch_id),
            funnel_events::first_touch_id.eq(e.first_touch_id),
            funnel_events::organic.eq(e.dims.organic),
            funnel_events::channel.eq(e.dims.channel.as_deref().unwrap_or("messenger")),
            funnel_events::ad_id.eq(&e.dims.ad_id),
            funnel_events::ref_.eq(&e.dims.ref_),
            funnel_events::source.eq(&e.dims.source),
            funnel_events::campaign.eq(&e.dims.campaign),
            funnel_events::touch_product.eq(&e.dims.product),
            funnel_events::product_id.eq(e.product_id),
            funnel_events::bookable_id.eq(e.bookable_id),
            funnel_events::order_id.eq(e.order_id),
            funnel_events::value_minor.eq(e.value.map(|v| v.minor())),
            funnel_events::currency.eq(e.value.map(|v| v.currency().code())),
            funnel_events::occurred_at.eq(e.at),
            funnel_events::rolled_up.eq(false),
        ))
        .execute(conn)?;
    Ok(())
}

/// The most events one fold adds to the rollup.
pub const FOLD_BATCH: i64 = 2000;

/// Adds up to `limit` events not yet in the daily rollup to it, oldest first, and marks them counted,
/// in one transaction: one addition per day, step and group rather than one per event. On PostgreSQL
/// the events taken are locked and those another process is folding are skipped, so two processes never
/// count one twice. Answers how many events were folded.
pub fn fold_pending(conn: &mut DbConnection, limit: i64) -> QueryResult<usize> {
    // A look first, outside any transaction: most of the time nothing waits, and no write lock is
    // taken for nothing.
    let waiting = funnel_events::table
        .filter(funnel_events::rolled_up.eq(false))
        .select(funnel_events::id)
        .first::<DbUuid>(conn)
        .optional()?;
    if waiting.is_none() {
        return Ok(0);
    }
    crate::db::write_transaction(conn, |conn| {
        let pending = funnel_events::table
            .filter(funnel_events::rolled_up.eq(false))
            .order(funnel_events::id.asc())
            .limit(limit)
            .select((funnel_events::id, funnel_events::merchant_id));
        let taken: Vec<(DbUuid, MerchantId)> = match conn {
            DbConnection::Sqlite(c) => pending.load(c)?,
            #[cfg(feature = "postgres")]
            DbConnection::Postgres(c) => pending.for_update().skip_locked().load(c)?,
        };
        if taken.is_empty() {
            return Ok(0);
        }
        let mut merchants: Vec<MerchantId> = taken.iter().map(|(_, m)| *m).collect();
        merchants.sort_unstable_by_key(|m| m.0);
        merchants.dedup();
        let ids: Vec<DbUuid> = taken.iter().map(|(id, _)| *id).collect();
        let mut additions = Vec::new();
        for merchant in merchants {
            let (tz, _) = settings(conn, merchant)?;
            for cell in report::cells_of_events(conn, merchant, tz, &ids)? {
                additions.push((merchant, cell));
            }
        }
        // One order for every fold, so two of them never wait for each other's rows crosswise.
        additions.sort_by(|a, b| {
            (a.0.0, a.1.day, &a.1.kind, &a.1.dims, &a.1.currency).cmp(&(
                b.0.0,
                b.1.day,
                &b.1.kind,
                &b.1.dims,
                &b.1.currency,
            ))
        });
        for (merchant, cell) in &additions {
            let value = cell.value()?;
            roll_up(
                conn,
                *merchant,
                cell.day,
                &cell.kind,
                &cell.dims,
                value,
                cell.events,
            )?;
        }
        for chunk in ids.chunks(500) {
            diesel::update(funnel_events::table.filter(funnel_events::id.eq_any(chunk.to_vec())))
                .set(funnel_events::rolled_up.eq(true))
                .execute(conn)?;
        }
        Ok(ids.len())
    })
}

/// Adds `events` events worth `value` to the merchant's day.
fn roll_up(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    day: NaiveDate,
    kind: &str,
    dims: &Dims,
    value: Option<Money>,
    events: i64,
) -> QueryResult<()> {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let upsert = diesel::insert_into(funnel_daily::table)
        .values((
            funnel_daily::merchant_id.eq(merchant_id),
            funnel_daily::day.eq(day),
            funnel_daily::kind.eq(kind),
            funnel_daily::organic.eq(dims.organic),
            funnel_daily::channel.eq(text(&dims.channel)),
            funnel_daily::ad_id.eq(text(&dims.ad_id)),
            funnel_daily::ref_.eq(text(&dims.ref_)),
            funnel_daily::source.eq(text(&dims.source)),
            funnel_daily::campaign.eq(text(&dims.campaign)),
            funnel_daily::product.eq(text(&dims.product)),
            funnel_daily::currency.eq(value.map(|v| v.currency().code()).unwrap_or_default()),
            funnel_daily::events.eq(events),
            funnel_daily::value_minor.eq(value.map_or(0, |v| v.minor())),
        ))
        .on_conflict((
            funnel_daily::merchant_id,
            funnel_daily::day,
            funnel_daily::kind,
            funnel_daily::organic,
            funnel_daily::channel,
            funnel_daily::ad_id,
            funnel_daily::ref_,
            funnel_daily::source,
            funnel_daily::campaign,
            funnel_daily::product,
            funnel_daily::currency,
        ))
        .do_update()
        .set((
            funnel_daily::events.eq(funnel_daily::events + excluded(funnel_daily::events)),
            funnel_daily::value_minor.eq(funnel_daily::value_minor + excluded(funnel_daily::value_minor)),
        ));
    crate::per_backend!(conn, |c| upsert.execute(c))?;
    Ok(())
}

/// Rebuilds the merchant's daily rollup from its events, in its current timezone (after the timezone
/// changed, the days move).
pub fn rebuild_rollup(conn: &mut DbConnection, merchant_id: MerchantId) -> QueryResult<()> {
    let id = merchant_id;
    let (tz, _) = settings(conn, id)?;
    // Every event recorded so far is counted by the rebuild (waiting for a fold that holds some);
    // later ones are left to the fold.
    diesel::update(
        funnel_events::table
            .filter(funnel_events::merchant_id.eq(id))
            .filter(funnel_events::rolled_up.eq(false)),
    )
    .set(funnel_events::rolled_up.eq(true))
    .execute(conn)?;
    diesel::delete(funnel_daily::table.filter(funnel_daily::merchant_id.eq(id))).execute(conn)?;
    let rows = report::rolled_cells(conn, merchant_id, tz)?;
    for c in rows {
        let value = c.value()?;
        roll_up(conn, id, c.day, &c.kind, &c.dims, value, c.events)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch_at(at: NaiveDateTime) -> Touch {
        Touch {
            id: DbUuid(Uuid::nil()),
            source: "ADS".into(),
            kind: "OPEN_THREAD".into(),
            ref_: None,
            ad_id: Some("ad-1".into()),
            ad_title: None,
            post_id: None,
            product_id: None,
            ads_context_data: None,
            occurred_at: at,
            channel: crate::kernel::Channel::Messenger,
            page_url: None,
            utm_source: None,
            utm_medium: None,
            utm_campaign: None,
            utm_content: None,
            utm_term: None,
        }
    }

    #[test]
    fn reports_campaign_is_the_c_segment_of_the_ref() {
        assert_eq!(campaign_of("c=xmas24_p=SLIP-01").as_deref(), Some("xmas24"));
        assert_eq!(campaign_of("p=SLIP-01_c=summer").as_deref(), Some("summer"));
        assert_eq!(campaign_of("c=xmas_24_p=1").as_deref(), Some("xmas_24"));
    }

    #[test]
    fn reports_a_ref_without_c_or_with_other_characters_names_no_campaign() {
        assert_eq!(campaign_of("p=SLIP-01"), None);
        assert_eq!(campaign_of("c=xmas 24"), None);
        assert_eq!(campaign_of("c=noël"), None);
        assert_eq!(campaign_of(""), None);
        assert_eq!(campaign_of("c="), None);
    }

    #[test]
    fn reports_a_touch_exactly_at_the_window_edge_still_counts_and_a_second_later_does_not() {
        let at = chrono::NaiveDate::from_ymd_opt(2026, 12, 8)
            .and_then(|d| d.and_hms_opt(12, 0, 0))
            .unwrap_or_default();
        let edge = at - chrono::Duration::days(7);
        assert!(within_window(Some(touch_at(edge)), at, 7).is_some());
        let outside = edge - chrono::Duration::seconds(1);
        assert!(within_window(Some(touch_at(outside)), at, 7).is_none());
        assert!(within_window(Some(touch_at(outside)), at, 8).is_some());
        assert!(within_window(None, at, 7).is_none());
    }
}
