//! Touches: how a shopper arrived (an ad click, a link with a `ref`, the web chat opened on a page),
//! stored as they come. The funnel attributes each step to a thread's latest touch.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use uuid::Uuid;

use super::ThreadView;
use crate::db::schema::touches;
use crate::db::{DbConnection, DbUuid, now};
use crate::engine::Referral;
use crate::kernel::ThreadId;

/// Stores a referral as a touch of the thread at `at`; returns its id.
pub fn record(
    conn: &mut DbConnection,
    thread: &ThreadView,
    referral: &Referral,
    at: NaiveDateTime,
) -> QueryResult<DbUuid> {
    let id = DbUuid(Uuid::now_v7());
    diesel::insert_into(touches::table)
        .values((
            touches::id.eq(id),
            touches::merchant_id.eq(thread.merchant_id),
            touches::thread_id.eq(thread.id),
            touches::source.eq(&referral.source),
            touches::kind.eq(&referral.kind),
            touches::ref_.eq(&referral.ref_),
            touches::ad_id.eq(&referral.ad_id),
            touches::ad_title.eq(&referral.ad_title),
            touches::post_id.eq(&referral.post_id),
            touches::product_id.eq(&referral.product_id),
            touches::ads_context_data.eq(&referral.ads_context_data),
            touches::occurred_at.eq(at),
            touches::created_at.eq(now()),
            touches::channel.eq(thread.channel),
            touches::page_url.eq(&referral.page_url),
            touches::utm_source.eq(&referral.utm.utm_source),
            touches::utm_medium.eq(&referral.utm.utm_medium),
            touches::utm_campaign.eq(&referral.utm.utm_campaign),
            touches::utm_content.eq(&referral.utm.utm_content),
            touches::utm_term.eq(&referral.utm.utm_term),
        ))
        .execute(conn)?;
    Ok(id)
}

/// A touch as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = touches)]
pub struct Touch {
    /// Id.
    pub id: DbUuid,
    /// `ADS`, `SHORTLINK` ...
    pub source: String,
    /// `OPEN_THREAD` ...
    pub kind: String,
    /// The `ref` parameter.
    pub ref_: Option<String>,
    /// The ad.
    pub ad_id: Option<String>,
    /// The ad's title.
    pub ad_title: Option<String>,
    /// The ad's post.
    pub post_id: Option<String>,
    /// The advertised product's retailer id.
    pub product_id: Option<String>,
    /// All of `ads_context_data`, as JSON text.
    pub ads_context_data: Option<String>,
    /// When the shopper arrived.
    pub occurred_at: NaiveDateTime,
    /// The channel.
    pub channel: crate::kernel::Channel,
    /// The page a web chat was opened on.
    pub page_url: Option<String>,
    /// `utm_source` of that page.
    pub utm_source: Option<String>,
    /// `utm_medium`.
    pub utm_medium: Option<String>,
    /// `utm_campaign`.
    pub utm_campaign: Option<String>,
    /// `utm_content`.
    pub utm_content: Option<String>,
    /// `utm_term`.
    pub utm_term: Option<String>,
}

/// The thread's touches, oldest first.
pub fn touches_of(conn: &mut DbConnection, thread_id: ThreadId) -> QueryResult<Vec<Touch>> {
    touches::table
        .filter(touches::thread_id.eq(thread_id))
        .order((touches::occurred_at.asc(), touches::id.asc()))
        .select(Touch::as_select())
        .load(conn)
}

/// The touch with `id`.
pub fn touch(conn: &mut DbConnection, id: DbUuid) -> QueryResult<Touch> {
    touches::table.find(id).select(Touch::as_select()).first(conn)
}
