//! Funnel reports: per ad, ref, campaign, source or advertised product, from the daily rollup when the
//! report is asked in the merchant's timezone (a few rows per ad and day), from the events otherwise.
//! Referrals and new threads come from touches and threads, median times from the purchases.

use std::collections::{BTreeMap, HashMap};

use chrono::{NaiveDate, NaiveDateTime, TimeZone};
use diesel::prelude::*;
use rust_decimal::Decimal;

use super::Touch;
use super::{Dims, FunnelStep, local_day};
use crate::db::schema::{funnel_daily, funnel_events, merchants, threads, touches};
use crate::db::{DbConnection, DbUuid};
use crate::kernel::MerchantId;
use crate::money::{Currency, Money};

/// The longest period one report covers.
pub const MAX_DAYS: i64 = 366;

/// What rows a funnel report has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    /// The touch's ad.
    Ad,
    /// The touch's `ref`, as given.
    Ref,
    /// The campaign the `ref` names (see [`super::campaign_of`]).
    Campaign,
    /// The touch's source (`ADS`, `SHORTLINK` ...).
    Source,
    /// The product the ad advertised (its retailer id).
    Product,
    /// The conversation's channel (`messenger`, `instagram`, `webchat`); organic steps count on their
    /// channel too.
    Channel,
}

impl GroupBy {
    /// Parses the `group_by` parameter.
    pub fn parse(s: &str) -> Option<GroupBy> {
        match s {
            "ad" => Some(GroupBy::Ad),
            "ref" => Some(GroupBy::Ref),
            "campaign" => Some(GroupBy::Campaign),
            "source" => Some(GroupBy::Source),
            "product" => Some(GroupBy::Product),
            "channel" => Some(GroupBy::Channel),
            _ => None,
        }
    }

    fn key(self, d: &Dims) -> Option<String> {
        match self {
            GroupBy::Ad => d.ad_id.clone(),
            GroupBy::Ref => d.ref_.clone(),
            GroupBy::Campaign => d.campaign.clone(),
            GroupBy::Source => d.source.clone(),
            GroupBy::Product => d.product.clone(),
            GroupBy::Channel => d.channel.clone(),
        }
    }

    /// The row a step goes to: its group, or the organic row (except by channel, where every step
    /// has its channel).
    fn row_of(self, d: &Dims) -> (bool, Option<String>) {
        if d.organic && self != GroupBy::Channel {
            (true, None)
        } else {
            (false, self.key(d))
        }
    }
}

/// A report's period: local dates `from` to `to`, both included, in `tz`.
#[derive(Debug, Clone, Copy)]
pub struct Period {
    /// First day.
    pub from: NaiveDate,
    /// Last day.
    pub to: NaiveDate,
    /// The timezone the days are in.
    pub tz: chrono_tz::Tz,
}

impl Period {
    fn start(&self) -> NaiveDateTime {
        midnight(self.tz, self.from)
    }

    fn end(&self) -> NaiveDateTime {
        midnight(self.tz, self.to.succ_opt().unwrap_or(self.to))
    }
}

/// The UTC instant a local day starts (the first valid local time when midnight is skipped).
fn midnight(tz: chrono_tz::Tz, day: NaiveDate) -> NaiveDateTime {
    let mut local = day.and_time(chrono::NaiveTime::MIN);
    for _ in 0..4 {
        if let Some(t) = tz.from_local_datetime(&local).earliest() {
            return t.naive_utc();
        }
        local += chrono::Duration::minutes(30);
    }
    local
}

/// Events of one kind, day and group, with their value in one currency.
#[derive(Debug, Clone)]
pub(crate) struct Cell {
    pub day: NaiveDate,
    pub kind: String,
    pub dims: Dims,
    pub currency: String,
    pub events: i64,
    pub value_minor: i64,
}

impl Cell {
    pub(crate) fn value(&self) -> QueryResult<Option<Money>> {
        if self.currency.is_empty() {
            return Ok(None);
        }
        let currency = Currency::parse(&self.currency)
            .map_err(|e| diesel::result::Error::DeserializationError(e.to_string().into()))?;
        Ok(Some(Money::from_minor(self.value_minor, currency)))
    }
}

fn opt(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// Cells from the daily rollup.
fn rollup_cells(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    from: NaiveDate,
    to: NaiveDate,
    ad_id: Option<&str>,
) -> QueryResult<Vec<Cell>> {
    type Row = (
        NaiveDate,
        String,
        bool,
        String,
        String,
        String,
        String,
        String,
        String,
        String,
        i64,
        i64,
    );
    let mut q = funnel_daily::table
        .filter(funnel_daily::merchant_id.eq(merchant_id))
        .filter(funnel_daily::day.between(from, to))
        .into_boxed();
    if let Some(ad) = ad_id {
        q = q.filter(funnel_daily::ad_id.eq(ad.to_owned()));
    }
    let rows: Vec<Row> = q
        .select((
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
            funnel_daily::events,
            funnel_daily::value_minor,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(
            |(
                day,
                kind,
                organic,
                channel,
                ad_id,
                ref_,
                source,
                campaign,
                product,
                currency,
                events,
                value_minor,
            )| {
                Cell {
                    day,
                    kind,
                    dims: Dims {
                        organic,
                        channel: opt(channel),
                        ad_id: opt(ad_id),
                        ref_: opt(ref_),
                        source: opt(source),
                        campaign: opt(campaign),
                        product: opt(product),
                    },
                    currency,
                    events,
                    value_minor,
                }
            },
        )
        .collect())
}

/// Day, step, touch dimensions, organic, currency.
type CellKey = (NaiveDate, String, Vec<Option<String>>, bool, String);

/// Which of a merchant's events to count.
#[derive(Clone, Copy)]
enum Counted<'a> {
    /// Every event.
    All,
    /// Those the daily rollup counts.
    Rolled,
    /// Those it does not count yet (see [`super::fold_pending`]).
    Pending,
    /// These.
    Ids(&'a [DbUuid]),
}

/// Cells computed from the events themselves, days in `tz` (optionally between two instants).
pub(crate) fn raw_cells(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    tz: chrono_tz::Tz,
    range: Option<(NaiveDateTime, NaiveDateTime)>,
    ad_id: Option<&str>,
) -> QueryResult<Vec<Cell>> {
    events_cells(conn, merchant_id, tz, range, ad_id, Counted::All)
}

/// Cells of the events the daily rollup counts, days in `tz` (to rebuild it).
pub(crate) fn rolled_cells(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    tz: chrono_tz::Tz,
) -> QueryResult<Vec<Cell>> {
    events_cells(conn, merchant_id, tz, None, None, Counted::Rolled)
}

/// Cells of the merchant's events among `ids`, days in `tz` (to add them to the rollup).
pub(crate) fn cells_of_events(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    tz: chrono_tz::Tz,
    ids: &[DbUuid],
) -> QueryResult<Vec<Cell>> {
    events_cells(conn, merchant_id, tz, None, None, Counted::Ids(ids))
}

/// Cells of the events the rollup does not count yet, between two instants, days in the merchant's
/// timezone `tz`: what a report adds to the rollup's.
fn pending_cells(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    tz: chrono_tz::Tz,
    p: &Period,
    ad_id: Option<&str>,
) -> QueryResult<Vec<Cell>> {
    events_cells(
        conn,
        merchant_id,
        tz,
        Some((p.start(), p.end())),
        ad_id,
        Counted::Pending,
    )
}

fn events_cells(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    tz: chrono_tz::Tz,
    range: Option<(NaiveDateTime, NaiveDateTime)>,
    ad_id: Option<&str>,
    counted: Counted<'_>,
) -> QueryResult<Vec<Cell>> {
    type Row = (
        NaiveDateTime,
        String,
        bool,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<i64>,
    );
    let mut q = funnel_events::table
        .filter(funnel_events::merchant_id.eq(merchant_id))
        .into_boxed();
    if let Some((start, end)) = range {
        q = q
            .filter(funnel_events::occurred_at.ge(start))
            .filter(funnel_events::occurred_at.lt(end));
    }
    if let Some(ad) = ad_id {
        q = q.filter(funnel_events::ad_id.eq(ad.to_owned()));
    }
    q = match counted {
        Counted::All => q,
        Counted::Rolled => q.filter(funnel_events::rolled_up.eq(true)),
        Counted::Pending => q.filter(funnel_events::rolled_up.eq(false)),
        Counted::Ids(ids) => q.filter(funnel_events::id.eq_any(ids.to_vec())),
    };
    let rows: Vec<Row> = q
        .select((
            funnel_events::occurred_at,
            funnel_events::kind,
            funnel_events::organic,
            funnel_events::channel,
            funnel_events::ad_id,
            funnel_events::ref_,
            funnel_events::source,
            funnel_events::campaign,
            funnel_events::touch_product,
            funnel_events::currency,
            funnel_events::value_minor,
        ))
        .load(conn)?;
    let mut cells: BTreeMap<CellKey, i64> = BTreeMap::new();
    let mut values: HashMap<CellKey, i64> = HashMap::new();
    for (at, kind, organic, channel, ad_id, ref_, source, campaign, product, currency, value) in rows {
        let key = (
            local_day(tz, at),
            kind,
            vec![Some(channel), ad_id, ref_, source, campaign, product],
            organic,
            currency.unwrap_or_default(),
        );
        *values.entry(key.clone()).or_default() += value.unwrap_or(0);
        *cells.entry(key).or_default() += 1;
    }
    Ok(cells
        .into_iter()
        .map(|(key, events)| {
            let value_minor = values.get(&key).copied().unwrap_or(0);
            let (day, kind, dims, organic, currency) = key;
            let mut d = dims.into_iter();
            Cell {
                day,
                kind,
                dims: Dims {
                    organic,
                    channel: d.next().flatten(),
                    ad_id: d.next().flatten(),
                    ref_: d.next().flatten(),
                    source: d.next().flatten(),
                    campaign: d.next().flatten(),
                    product: d.next().flatten(),
                },
                currency,
                events,
                value_minor,
            }
        })
        .collect())
}

fn merchant_tz(conn: &mut DbConnection, merchant_id: MerchantId) -> QueryResult<chrono_tz::Tz> {
    let tz: String = merchants::table
        .find(merchant_id)
        .select(merchants::timezone)
        .first(conn)?;
    tz.parse()
        .map_err(|_| diesel::result::Error::DeserializationError(format!("unknown timezone {tz}").into()))
}

/// The rollup summed over the period per step, group and currency (a few rows per group, summed by
/// the database).
fn rollup_groups(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    p: &Period,
    group_by: GroupBy,
) -> QueryResult<Vec<Cell>> {
    use diesel::dsl::sql;
    use diesel::sql_types::{BigInt, Bool, Text};
    // A fixed column name per grouping: nothing from the caller reaches the SQL text.
    let column = match group_by {
        GroupBy::Ad => "ad_id",
        GroupBy::Ref => "ref",
        GroupBy::Campaign => "campaign",
        GroupBy::Source => "source",
        GroupBy::Product => "product",
        GroupBy::Channel => "channel",
    };
    let rows: Vec<(String, bool, String, String, i64, i64)> = funnel_daily::table
        .filter(funnel_daily::merchant_id.eq(merchant_id))
        .filter(funnel_daily::day.between(p.from, p.to))
        .select(sql::<(Text, Bool, Text, Text, BigInt, BigInt)>(&format!(
            "kind, organic, {column}, currency, CAST(SUM(events) AS BIGINT), CAST(SUM(value_minor) AS BIGINT)"
        )))
        .group_by(sql::<Text>(&format!("kind, organic, {column}, currency")))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(kind, organic, value, currency, events, value_minor)| {
            let value = opt(value);
            let mut dims = Dims {
                organic,
                ..Dims::default()
            };
            match group_by {
                GroupBy::Ad => dims.ad_id = value,
                GroupBy::Ref => dims.ref_ = value,
                GroupBy::Campaign => dims.campaign = value,
                GroupBy::Source => dims.source = value,
                GroupBy::Product => dims.product = value,
                GroupBy::Channel => dims.channel = value,
            }
            Cell {
                day: p.from,
                kind,
                dims,
                currency,
                events,
                value_minor,
            }
        })
        .collect())
}

/// The period's cells: from the rollup (and the events it does not count yet) in the merchant's
/// timezone, from the events in another.
fn cells(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    p: &Period,
    ad_id: Option<&str>,
) -> QueryResult<Vec<Cell>> {
    if merchant_tz(conn, merchant_id)? == p.tz {
        let mut cells = rollup_cells(conn, merchant_id, p.from, p.to, ad_id)?;
        cells.extend(pending_cells(conn, merchant_id, p.tz, p, ad_id)?);
        Ok(cells)
    } else {
        raw_cells(conn, merchant_id, p.tz, Some((p.start(), p.end())), ad_id)
    }
}

/// The touches that happened in the period.
fn touches_in(conn: &mut DbConnection, merchant_id: MerchantId, p: &Period) -> QueryResult<Vec<Touch>> {
    touches::table
        .filter(touches::merchant_id.eq(merchant_id))
        .filter(touches::occurred_at.ge(p.start()))
        .filter(touches::occurred_at.lt(p.end()))
        .select(Touch::as_select())
        .load(conn)
}

fn touches_by_id(conn: &mut DbConnection, mut ids: Vec<DbUuid>) -> QueryResult<HashMap<DbUuid, Touch>> {
    ids.sort_unstable_by_key(|id| id.0);
    ids.dedup();
    let mut found = HashMap::new();
    for chunk in ids.chunks(500) {
        let rows: Vec<Touch> = touches::table
            .filter(touches::id.eq_any(chunk.to_vec()))
            .select(Touch::as_select())
            .load(conn)?;
        found.extend(rows.into_iter().map(|t| (t.id, t)));
    }
    Ok(found)
}

/// One row of a funnel report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FunnelRow {
    /// The group's value (an ad id, a ref ...); none for attributed steps whose touch has none.
    pub key: Option<String>,
    /// The row of steps no touch within the window brought.
    pub organic: bool,
    /// Touches (ad clicks, m.me links) in the period.
    pub referrals: i64,
    /// Threads started in the period, by the touch that opened them.
    pub threads: i64,
    /// Threads whose shopper first acted (viewed, added, checked out) in the period.
    pub engaged: i64,
    /// Product cards shown.
    pub product_views: i64,
    /// Additions to the cart.
    pub add_to_carts: i64,
    /// Orders made.
    pub checkouts: i64,
    /// Orders paid.
    pub purchases: i64,
    /// Reminders of left carts sent.
    pub cart_reminders: i64,
    /// Orders paid from carts whose shopper had been reminded.
    pub recovered_purchases: i64,
    /// Paid orders' totals less refunds, per currency.
    pub revenue: Vec<Money>,
    /// Refunded amounts, per currency.
    pub refunds: Vec<Money>,
    /// Median seconds from the thread's first touch to the purchase.
    pub median_seconds_to_purchase: Option<i64>,
}

/// A conversion rate in percent, two decimals; none when nothing was there to convert.
pub fn rate(converted: i64, from: i64) -> Option<Decimal> {
    if from <= 0 {
        return None;
    }
    let r = Decimal::from(converted) * Decimal::from(100) / Decimal::from(from);
    Some(r.round_dp(2))
}

impl FunnelRow {
    /// The rates between steps: view → cart, cart → checkout, checkout → purchase, thread → purchase.
    pub fn rates(&self) -> [(&'static str, Option<Decimal>); 4] {
        [
            ("view_to_cart", rate(self.add_to_carts, self.product_views)),
            ("cart_to_checkout", rate(self.checkouts, self.add_to_carts)),
            ("checkout_to_purchase", rate(self.purchases, self.checkouts)),
            ("thread_to_purchase", rate(self.purchases, self.threads)),
        ]
    }
}

#[derive(Default)]
struct Acc {
    row: FunnelRow,
    revenue: BTreeMap<&'static str, (Currency, i64)>,
    refunds: BTreeMap<&'static str, (Currency, i64)>,
    to_purchase: Vec<i64>,
}

fn add_money(map: &mut BTreeMap<&'static str, (Currency, i64)>, m: Money) {
    let e = map.entry(m.currency().code()).or_insert((m.currency(), 0));
    e.1 += m.minor();
}

fn moneys(map: BTreeMap<&'static str, (Currency, i64)>) -> Vec<Money> {
    map.into_values()
        .map(|(c, minor)| Money::from_minor(minor, c))
        .collect()
}

fn add_cell(acc: &mut Acc, c: &Cell) -> QueryResult<()> {
    let r = &mut acc.row;
    let value = c.value()?;
    match c.kind.as_str() {
        k if k == FunnelStep::Engaged.as_str() => r.engaged += c.events,
        k if k == FunnelStep::ProductView.as_str() => r.product_views += c.events,
        k if k == FunnelStep::AddToCart.as_str() => r.add_to_carts += c.events,
        k if k == FunnelStep::Checkout.as_str() => r.checkouts += c.events,
        k if k == FunnelStep::Purchase.as_str() => {
            r.purchases += c.events;
            if let Some(v) = value {
                add_money(&mut acc.revenue, v);
            }
        }
        k if k == FunnelStep::CartReminder.as_str() => r.cart_reminders += c.events,
        k if k == FunnelStep::RecoveredPurchase.as_str() => r.recovered_purchases += c.events,
        k if k == FunnelStep::Refund.as_str() => {
            if let Some(v) = value {
                add_money(&mut acc.refunds, v);
                add_money(&mut acc.revenue, Money::from_minor(-v.minor(), v.currency()));
            }
        }
        _ => {}
    }
    Ok(())
}

fn median(mut xs: Vec<i64>) -> Option<i64> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_unstable();
    let mid = xs.len() / 2;
    Some(if xs.len() % 2 == 1 {
        xs[mid]
    } else {
        (xs[mid - 1] + xs[mid]) / 2
    })
}

/// The funnel of the merchant over the period, one row per group, the organic row last.
#[tracing::instrument(skip_all, fields(merchant.id = %merchant_id))]
pub fn funnel(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    p: &Period,
    group_by: GroupBy,
) -> QueryResult<Vec<FunnelRow>> {
    let mut groups: BTreeMap<(bool, Option<String>), Acc> = BTreeMap::new();
    let key_of = |d: &Dims| group_by.row_of(d);
    if group_by != GroupBy::Channel {
        groups.entry((true, None)).or_default();
    }

    let cells = if merchant_tz(conn, merchant_id)? == p.tz {
        let mut cells = rollup_groups(conn, merchant_id, p, group_by)?;
        cells.extend(pending_cells(conn, merchant_id, p.tz, p, None)?);
        cells
    } else {
        raw_cells(conn, merchant_id, p.tz, Some((p.start(), p.end())), None)?
    };
    for c in cells {
        add_cell(groups.entry(key_of(&c.dims)).or_default(), &c)?;
    }
    for t in touches_in(conn, merchant_id, p)? {
        groups.entry(key_of(&Dims::of(&t))).or_default().row.referrals += 1;
    }
    let started: Vec<(Option<DbUuid>, String)> = threads::table
        .filter(threads::merchant_id.eq(merchant_id))
        .filter(threads::created_at.ge(p.start()))
        .filter(threads::created_at.lt(p.end()))
        .select((threads::first_touch_id, threads::channel))
        .load(conn)?;
    let firsts = touches_by_id(conn, started.iter().filter_map(|(t, _)| *t).collect())?;
    for (first, channel) in started {
        let dims = first
            .and_then(|id| firsts.get(&id))
            .map_or_else(|| Dims::organic_on(&channel), Dims::of);
        groups.entry(key_of(&dims)).or_default().row.threads += 1;
    }

    // Each purchase's group and the time from its thread's first touch, in one query of four columns
    // (the grouping column is a fixed name: nothing from the caller reaches the SQL text).
    let column = match group_by {
        GroupBy::Ad => "funnel_events.ad_id",
        GroupBy::Ref => "funnel_events.ref",
        GroupBy::Campaign => "funnel_events.campaign",
        GroupBy::Source => "funnel_events.source",
        GroupBy::Product => "funnel_events.touch_product",
        GroupBy::Channel => "funnel_events.channel",
    };
    let purchases: Vec<(bool, Option<String>, NaiveDateTime, Option<NaiveDateTime>)> = funnel_events::table
        .left_join(touches::table.on(touches::id.nullable().eq(funnel_events::first_touch_id)))
        .filter(funnel_events::merchant_id.eq(merchant_id))
        .filter(funnel_events::kind.eq(FunnelStep::Purchase.as_str()))
        .filter(funnel_events::occurred_at.ge(p.start()))
        .filter(funnel_events::occurred_at.lt(p.end()))
        .select((
            funnel_events::organic,
            diesel::dsl::sql::<diesel::sql_types::Nullable<diesel::sql_types::Text>>(column),
            funnel_events::occurred_at,
            touches::occurred_at.nullable(),
        ))
        .load(conn)?;
    for (organic, value, at, first_at) in purchases {
        let key = if organic && group_by != GroupBy::Channel {
            (true, None)
        } else {
            (false, value)
        };
        if let Some(first_at) = first_at {
            let secs = (at - first_at).num_seconds();
            groups.entry(key).or_default().to_purchase.push(secs);
        }
    }

    let mut rows: Vec<FunnelRow> = groups
        .into_iter()
        .map(|((organic, key), acc)| FunnelRow {
            key,
            organic,
            revenue: moneys(acc.revenue),
            refunds: moneys(acc.refunds),
            median_seconds_to_purchase: median(acc.to_purchase),
            ..acc.row
        })
        .collect();
    // Attributed rows first (by key), the organic row last.
    rows.sort_by(|a, b| (a.organic, &a.key).cmp(&(b.organic, &b.key)));
    Ok(rows)
}

/// The latest title seen in the merchant's touches for each of `ad_ids` (ads whose touches carried no
/// title are left out): Meta sends the ad's title with each referral, and a renamed ad shows its new name.
pub fn ad_titles(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    ad_ids: Vec<String>,
) -> QueryResult<HashMap<String, String>> {
    let seen: Vec<(Option<String>, Option<String>)> = touches::table
        .filter(touches::merchant_id.eq(merchant_id))
        .filter(touches::ad_id.eq_any(ad_ids))
        .filter(touches::ad_title.is_not_null())
        .order((touches::occurred_at.asc(), touches::id.asc()))
        .select((touches::ad_id, touches::ad_title))
        .load(conn)?;
    // Oldest first, so the latest title of each ad is the one left in the map.
    Ok(seen
        .into_iter()
        .filter_map(|(ad, title)| Some((ad?, title?)))
        .collect())
}

/// One day of an ad.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdDay {
    /// The local day.
    pub day: NaiveDate,
    /// The day's funnel of the ad.
    pub funnel: FunnelRow,
}

/// The ad's funnel day by day over the period (every day listed, empty ones too).
#[tracing::instrument(skip_all, fields(merchant.id = %merchant_id))]
pub fn ad_series(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    ad_id: &str,
    p: &Period,
) -> QueryResult<Vec<AdDay>> {
    let mut days: BTreeMap<NaiveDate, Acc> = BTreeMap::new();
    let mut d = p.from;
    while d <= p.to {
        days.entry(d).or_default();
        match d.succ_opt() {
            Some(next) => d = next,
            None => break,
        }
    }
    for c in cells(conn, merchant_id, p, Some(ad_id))? {
        if !c.dims.organic
            && let Some(acc) = days.get_mut(&c.day)
        {
            add_cell(acc, &c)?;
        }
    }
    let referrals: Vec<NaiveDateTime> = touches::table
        .filter(touches::merchant_id.eq(merchant_id))
        .filter(touches::ad_id.eq(ad_id))
        .filter(touches::occurred_at.ge(p.start()))
        .filter(touches::occurred_at.lt(p.end()))
        .select(touches::occurred_at)
        .load(conn)?;
    for at in referrals {
        if let Some(acc) = days.get_mut(&local_day(p.tz, at)) {
            acc.row.referrals += 1;
        }
    }
    Ok(days
        .into_iter()
        .map(|(day, acc)| AdDay {
            day,
            funnel: FunnelRow {
                key: Some(ad_id.to_owned()),
                revenue: moneys(acc.revenue),
                refunds: moneys(acc.refunds),
                ..acc.row
            },
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_rates_are_exact_percentages_with_two_decimals() {
        assert_eq!(rate(1, 3), Some(Decimal::new(3333, 2)));
        assert_eq!(rate(2, 2), Some(Decimal::from(100)));
        assert_eq!(rate(0, 0), None);
    }

    #[test]
    fn reports_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(vec![30, 10, 20, 40]), Some(25));
        assert_eq!(median(vec![5]), Some(5));
        assert_eq!(median(vec![]), None);
    }

    #[test]
    fn reports_a_paris_day_starts_at_23_utc_in_winter() {
        let tz: chrono_tz::Tz = chrono_tz::Europe::Paris;
        let day = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap_or_default();
        assert_eq!(midnight(tz, day).to_string(), "2026-11-30 23:00:00");
    }
}
