//! Conversions API for Business Messaging: purchases told to Meta so ads can optimise for them. Events are
//! queued with the order's paid move (one row per `event_id`: Meta does not deduplicate these), posted by
//! a worker, retried with backoff, and skipped once older than Meta accepts (7 days).
//!
//! Only Meta's channels report: a Messenger purchase names the Page and the shopper's page-scoped id, an
//! Instagram one the Instagram account and the shopper's Instagram-scoped id (`messaging_channel:
//! instagram`), through the dataset of the Page the account is connected to; a WhatsApp one the
//! WhatsApp Business Account and the Click-to-WhatsApp ad's click id (`ctwa_clid`, `messaging_channel:
//! whatsapp`; a purchase no ad click led to has nothing to attribute and is not sent), through the
//! number's dataset. A web chat purchase is in our own funnel only.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use uuid::Uuid;

use crate::db::schema::{conversion_events, customers, pages, threads};
use crate::db::{DbConnection, DbUuid, now};
use crate::kernel::{Channel, MerchantId, OrderId, PageId, Psid, ThreadId};
use crate::money::Money;
use crate::secrets::{Secrets, open_stored};

crate::text_state! {
    /// Where a purchase told to Meta's Conversions API stands.
    ConversionStatus {
        /// Waiting to be posted (or retried).
        Pending = "pending",
        /// Meta took it.
        Sent = "sent",
        /// Meta refused it for good, or it cannot be posted.
        Failed = "failed",
        /// Too old to post (Meta takes events up to 7 days old).
        Skipped = "skipped",
    }
}

/// Meta refuses a request holding an event older than this.
pub const MAX_AGE: chrono::Duration = chrono::Duration::days(7);

/// An event as queued.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = conversion_events)]
pub struct ConversionEvent {
    /// Id (UUIDv7, the list's order).
    pub id: DbUuid,
    /// The merchant.
    pub merchant_id: MerchantId,
    /// The Page the thread is on.
    pub page_id: PageId,
    /// The shopper's page-scoped id.
    pub psid: Psid,
    /// The order.
    pub order_id: Option<OrderId>,
    /// Stable id: `{event_name}-{order_id}`.
    pub event_id: String,
    /// `Purchase`, `InitiateCheckout` ...
    pub event_name: String,
    /// When it happened.
    pub event_time: NaiveDateTime,
    /// Value in minor units.
    pub value_minor: i64,
    /// ISO 4217.
    pub currency: String,
    /// Where it stands.
    pub status: ConversionStatus,
    /// Posts tried.
    pub attempts: i32,
    /// Next try (or the end of the current one's lease).
    pub next_attempt_at: NaiveDateTime,
    /// The last failure.
    pub last_error: Option<String>,
    /// When queued.
    pub created_at: NaiveDateTime,
    /// When Meta took it.
    pub sent_at: Option<NaiveDateTime>,
    /// `messenger`, `instagram` or `whatsapp`.
    pub channel: Channel,
    /// WhatsApp: the WhatsApp Business Account.
    pub account_id: Option<String>,
    /// WhatsApp: the ad click's id (`ctwa_clid`).
    pub click_id: Option<String>,
}

impl ConversionEvent {
    /// The value.
    pub fn value(&self) -> QueryResult<Money> {
        let currency = crate::money::Currency::parse(&self.currency)
            .map_err(|e| diesel::result::Error::DeserializationError(e.to_string().into()))?;
        Ok(Money::from_minor(self.value_minor, currency))
    }
}

/// A Page's Conversions API settings, given by the merchant (the token sealed).
pub fn configure(
    conn: &mut DbConnection,
    secrets: &Secrets,
    merchant_id: MerchantId,
    (page_id, kind): (&PageId, &str),
    dataset_id: &str,
    access_token: &str,
) -> QueryResult<bool> {
    let n = diesel::update(
        pages::table
            .filter(pages::merchant_id.eq(merchant_id))
            .filter(pages::page_id.eq(page_id))
            .filter(pages::kind.eq(kind)),
    )
    .set((
        pages::capi_dataset_id.eq(dataset_id),
        pages::capi_access_token.eq(secrets.seal(access_token).as_str()),
    ))
    .execute(conn)?;
    Ok(n > 0)
}

/// The dataset and its token as stored, if set, of the Page `account_id` is (or of the Page its
/// Instagram account is).
fn stored_dataset(conn: &mut DbConnection, account_id: &str) -> QueryResult<Option<(String, String)>> {
    let row: Option<(Option<String>, Option<String>)> = pages::table
        .filter(
            pages::page_id
                .eq(account_id)
                .or(pages::instagram_account_id.eq(account_id)),
        )
        .select((pages::capi_dataset_id, pages::capi_access_token))
        .first(conn)
        .optional()?;
    Ok(row.and_then(|(d, t)| d.zip(t)))
}

/// The dataset and its token (opened), if set, of the Page `page_id` is (or of the Page its Instagram
/// account is).
pub fn dataset_of(
    conn: &mut DbConnection,
    secrets: &Secrets,
    page_id: &PageId,
) -> QueryResult<Option<(String, String)>> {
    match stored_dataset(conn, page_id)? {
        Some((dataset, sealed)) => Ok(Some((dataset, open_stored(secrets, sealed)?))),
        None => Ok(None),
    }
}

/// The Page's dataset id (not its token), if set.
pub fn dataset_id(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    page_id: &PageId,
) -> QueryResult<Option<String>> {
    let d: Option<Option<String>> = pages::table
        .filter(pages::merchant_id.eq(merchant_id))
        .filter(pages::page_id.eq(page_id))
        .select(pages::capi_dataset_id)
        .first(conn)
        .optional()?;
    Ok(d.flatten())
}

/// Queues `event_name` for the order on `thread_id` at `at`, when its Page has a dataset; a second
/// call for the same event changes nothing. True when queued now.
pub fn queue(
    conn: &mut DbConnection,
    thread_id: ThreadId,
    event_name: &str,
    order_id: OrderId,
    value: Money,
    at: NaiveDateTime,
) -> QueryResult<bool> {
    let (merchant_id, page_id, psid, channel): (DbUuid, String, String, String) = threads::table
        .inner_join(customers::table)
        .filter(threads::id.eq(thread_id))
        .select((
            threads::merchant_id,
            threads::page_id,
            customers::psid,
            threads::channel,
        ))
        .first(conn)?;
    let channel_of = Channel::parse(&channel);
    if !channel_of.is_some_and(Channel::via_graph) || stored_dataset(conn, &page_id)?.is_none() {
        return Ok(false);
    }
    let (account_id, click_id) = if channel_of == Some(Channel::Whatsapp) {
        let Some(click) = whatsapp_click(conn, thread_id)? else {
            return Ok(false);
        };
        let waba: Option<Option<String>> = pages::table
            .filter(pages::page_id.eq(&page_id))
            .select(pages::waba_id)
            .first(conn)
            .optional()?;
        (waba.flatten(), Some(click))
    } else {
        (None, None)
    };
    let insert = diesel::insert_into(conversion_events::table)
        .values((
            conversion_events::id.eq(DbUuid(Uuid::now_v7())),
            conversion_events::merchant_id.eq(merchant_id),
            conversion_events::page_id.eq(&page_id),
            conversion_events::psid.eq(&psid),
            conversion_events::order_id.eq(order_id),
            conversion_events::event_id.eq(format!("{event_name}-{order_id}")),
            conversion_events::event_name.eq(event_name),
            conversion_events::event_time.eq(at),
            conversion_events::value_minor.eq(value.minor()),
            conversion_events::currency.eq(value.currency().code()),
            conversion_events::status.eq(ConversionStatus::Pending),
            conversion_events::attempts.eq(0),
            conversion_events::next_attempt_at.eq(now()),
            conversion_events::created_at.eq(now()),
            conversion_events::channel.eq(&channel),
            conversion_events::account_id.eq(&account_id),
            conversion_events::click_id.eq(&click_id),
        ))
        .on_conflict(conversion_events::event_id)
        .do_nothing();
    let n = crate::per_backend!(conn, |c| insert.execute(c))?;
    Ok(n > 0)
}

/// The click id (`ctwa_clid`) of the thread's latest Click-to-WhatsApp ad, kept whole in its touch's
/// referral.
fn whatsapp_click(conn: &mut DbConnection, thread_id: ThreadId) -> QueryResult<Option<String>> {
    use crate::db::schema::touches;
    let referrals: Vec<Option<String>> = touches::table
        .filter(touches::thread_id.eq(thread_id))
        .filter(touches::source.eq("ADS"))
        .order(touches::id.desc())
        .limit(20)
        .select(touches::ads_context_data)
        .load(conn)?;
    Ok(referrals.into_iter().flatten().find_map(|r| {
        serde_json::from_str::<serde_json::Value>(&r)
            .ok()?
            .get("ctwa_clid")?
            .as_str()
            .map(str::to_owned)
    }))
}

/// Takes up to `limit` due events for `lease` (their next try moves to its end, so no other worker
/// takes them meanwhile).
pub fn claim(
    conn: &mut DbConnection,
    at: NaiveDateTime,
    lease: chrono::Duration,
    limit: i64,
) -> QueryResult<Vec<ConversionEvent>> {
    let due: Vec<ConversionEvent> = conversion_events::table
        .filter(conversion_events::status.eq(ConversionStatus::Pending))
        .filter(conversion_events::next_attempt_at.le(at))
        .order(conversion_events::next_attempt_at.asc())
        .limit(limit)
        .select(ConversionEvent::as_select())
        .load(conn)?;
    let mut claimed = Vec::with_capacity(due.len());
    for e in due {
        let taken = diesel::update(
            conversion_events::table
                .filter(conversion_events::id.eq(e.id))
                .filter(conversion_events::status.eq(ConversionStatus::Pending))
                .filter(conversion_events::next_attempt_at.eq(e.next_attempt_at)),
        )
        .set(conversion_events::next_attempt_at.eq(at + lease))
        .execute(conn)?;
        if taken == 1 {
            claimed.push(e);
        }
    }
    Ok(claimed)
}

/// Ends an event: sent, failed or skipped.
pub fn finish(
    conn: &mut DbConnection,
    id: DbUuid,
    status: ConversionStatus,
    error: Option<&str>,
) -> QueryResult<()> {
    let at = now();
    diesel::update(conversion_events::table.find(id))
        .set((
            conversion_events::status.eq(status),
            conversion_events::attempts
                .eq(conversion_events::attempts + i32::from(status != ConversionStatus::Skipped)),
            conversion_events::last_error.eq(error),
            conversion_events::sent_at.eq((status == ConversionStatus::Sent).then_some(at)),
        ))
        .execute(conn)?;
    Ok(())
}

/// Schedules another try of an event.
pub fn retry(conn: &mut DbConnection, id: DbUuid, error: &str, next: NaiveDateTime) -> QueryResult<()> {
    diesel::update(conversion_events::table.find(id))
        .set((
            conversion_events::attempts.eq(conversion_events::attempts + 1),
            conversion_events::last_error.eq(error),
            conversion_events::next_attempt_at.eq(next),
        ))
        .execute(conn)?;
    Ok(())
}

/// Filters of the list.
#[derive(Debug, Clone, Default)]
pub struct ConversionQuery {
    /// Only this status.
    pub status: Option<ConversionStatus>,
    /// Only this order's.
    pub order_id: Option<OrderId>,
    /// Where the page starts and which way it reads.
    pub page: crate::db::Keyset,
    /// Page size (plus one to see if more follow).
    pub limit: i64,
}

/// The merchant's events, newest first unless the query asks oldest first.
pub fn list(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    q: &ConversionQuery,
) -> QueryResult<Vec<ConversionEvent>> {
    let mut query = conversion_events::table
        .filter(conversion_events::merchant_id.eq(merchant_id))
        .into_boxed();
    if let Some(s) = &q.status {
        query = query.filter(conversion_events::status.eq(*s));
    }
    if let Some(o) = q.order_id {
        query = query.filter(conversion_events::order_id.eq(o));
    }
    query = crate::keyset!(query, conversion_events::id, q.page);
    query
        .limit(q.limit)
        .select(ConversionEvent::as_select())
        .load(conn)
}

/// The request body Meta's `/{dataset_id}/events` takes for one event (the token goes beside it). The
/// value is written as a JSON number straight from its decimal, never through a float.
pub fn payload(e: &ConversionEvent) -> QueryResult<String> {
    #[derive(serde::Serialize)]
    struct Body<'a> {
        data: [Data<'a>; 1],
        partner_agent: &'static str,
    }
    #[derive(serde::Serialize)]
    struct Data<'a> {
        event_name: &'a str,
        event_time: i64,
        action_source: &'static str,
        messaging_channel: &'static str,
        event_id: &'a str,
        user_data: UserData<'a>,
        custom_data: CustomData<'a>,
    }
    #[derive(serde::Serialize)]
    #[serde(untagged)]
    enum UserData<'a> {
        Messenger {
            page_id: &'a str,
            page_scoped_user_id: &'a str,
        },
        Instagram {
            instagram_business_account_id: &'a str,
            ig_sid: &'a str,
        },
        Whatsapp {
            whatsapp_business_account_id: &'a str,
            ctwa_clid: &'a str,
        },
    }
    #[derive(serde::Serialize)]
    struct CustomData<'a> {
        value: Box<serde_json::value::RawValue>,
        currency: &'a str,
    }
    let corrupt = |e: serde_json::Error| diesel::result::Error::SerializationError(Box::new(e));
    let value = serde_json::value::RawValue::from_string(e.value()?.amount_string()).map_err(corrupt)?;
    let (messaging_channel, user_data) = match e.channel {
        Channel::Whatsapp => (
            "whatsapp",
            UserData::Whatsapp {
                whatsapp_business_account_id: e.account_id.as_deref().unwrap_or_default(),
                ctwa_clid: e.click_id.as_deref().unwrap_or_default(),
            },
        ),
        Channel::Instagram => (
            "instagram",
            UserData::Instagram {
                instagram_business_account_id: &e.page_id,
                ig_sid: &e.psid,
            },
        ),
        _ => (
            "messenger",
            UserData::Messenger {
                page_id: &e.page_id,
                page_scoped_user_id: &e.psid,
            },
        ),
    };
    serde_json::to_string(&Body {
        data: [Data {
            event_name: &e.event_name,
            event_time: e.event_time.and_utc().timestamp(),
            action_source: "business_messaging",
            messaging_channel,
            event_id: &e.event_id,
            user_data,
            custom_data: CustomData {
                value,
                currency: &e.currency,
            },
        }],
        partner_agent: "threadcart",
    })
    .map_err(corrupt)
}
