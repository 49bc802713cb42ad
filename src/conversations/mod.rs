//! The conversation core, shared by every channel: customers (one per channel account and shopper),
//! their thread, the touches that brought them (ad clicks, links, web chat visits), the messages both
//! ways, each channel's messaging window ([`window`]), the durable inbox of events ([`inbox`]), the turn
//! that answers them ([`turn`]), and the queue of replies ([`outbox`]).
//!
//! A turn: a channel parses what the shopper did into a neutral [`event::Inbound`]; the inbox stores it
//! and applies each shopper's events in order; the turn asks the engine, applies its commands (carts,
//! offers, codes, holds, funnel) and queues its neutral replies. Channels only parse, verify, render and
//! send: Meta's channels render the queued replies when the sender sends them, the web chat serves them
//! as they are.

pub mod agent;
pub mod disclosure;
pub mod event;
pub mod inbox;
pub mod ingest;
pub mod native_cart;
pub mod notices;
pub mod outbox;
mod shop;
pub mod status;
pub mod turn;
pub mod window;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use uuid::Uuid;

use crate::db::schema::{customers, messages, threads};
use crate::db::{DbConnection, DbUuid, now, prepared};
use crate::engine::Referral;
use crate::kernel::{Channel, CustomerId, MerchantId, PageId, Psid, ThreadId};
pub use status::{DeliveryStatus, EventStatus, OutboxStatus, ProfileStatus};
pub use window::{HUMAN_AGENT_WINDOW, MessagingType, Window, Writer};

/// Who answers in a thread.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, diesel::expression::AsExpression, diesel::deserialize::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum Mode {
    /// The bot answers.
    Bot,
    /// Agents answer; the bot stays quiet.
    Agent,
}

impl Mode {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Bot => "bot",
            Mode::Agent => "agent",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "bot" => Some(Mode::Bot),
            "agent" => Some(Mode::Agent),
            _ => None,
        }
    }
}

crate::text_enum_sql!(Mode);

/// A conversation thread with one shopper on one Page.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = threads)]
pub struct Thread {
    /// Id.
    pub id: ThreadId,
    /// Merchant.
    pub merchant_id: MerchantId,
    /// Customer.
    pub customer_id: CustomerId,
    /// The channel account: a Page's id, an Instagram account's id, the web chat's id.
    pub page_id: PageId,
    /// Who answers.
    pub mode: Mode,
    /// A human replied from the Page Inbox: the bot stays quiet until then.
    pub human_active_until: Option<NaiveDateTime>,
    /// The shopper's last action.
    pub last_inbound_at: Option<NaiveDateTime>,
    /// When the messaging window closes.
    pub window_ends_at: Option<NaiveDateTime>,
    /// An ad referral is waiting for the shopper's first message (which opens the 7-day window).
    pub ctm_pending: bool,
    /// The first touch.
    pub first_touch_id: Option<DbUuid>,
    /// The latest touch.
    pub latest_touch_id: Option<DbUuid>,
    /// The latest touch's ad.
    pub latest_ad_id: Option<String>,
    /// The merchant-local day the away text was last sent (`2026-11-25`).
    pub away_sent_on: Option<String>,
    /// The room whose arrival date the thread was last asked, while that question is open.
    pub stay_bookable_id: Option<DbUuid>,
    /// Created.
    pub created_at: NaiveDateTime,
    /// Changed.
    pub updated_at: NaiveDateTime,
    /// The channel.
    pub channel: Channel,
    /// When the assistant last said it is automated (see [`disclosure`]); none since a person handed
    /// the thread back.
    pub disclosed_at: Option<NaiveDateTime>,
    /// Updates are held until the shopper writes again (see `crate::followups::schedule`).
    pub has_held: bool,
    /// Since when the thread waits for a person (see `crate::routing`); none with the bot.
    pub queued_at: Option<NaiveDateTime>,
    /// The agent answering it.
    pub assigned_agent_id: Option<DbUuid>,
    /// Why that agent (`crate::routing::Reason`).
    pub routing_reason: Option<String>,
    /// The bot's last answer could not help (a second in a row hands the thread to a person).
    pub bot_missed: bool,
}

impl Thread {
    /// The thread's channel's messaging policy.
    pub fn window(&self) -> Window {
        Window::of(self.channel)
    }

    /// What attribution needs of the thread.
    pub fn funnel_view(&self) -> crate::attribution::ThreadView {
        crate::attribution::ThreadView {
            id: self.id,
            merchant_id: self.merchant_id,
            channel: self.channel,
            first_touch_id: self.first_touch_id,
            latest_touch_id: self.latest_touch_id,
        }
    }

    /// True while a standard message may be sent.
    pub fn window_open(&self, at: NaiveDateTime) -> bool {
        self.window().is_open(self, at)
    }

    /// True while the bot may answer: bot mode, and no human active.
    pub fn bot_may_answer(&self, at: NaiveDateTime) -> bool {
        self.mode == Mode::Bot && self.human_active_until.is_none_or(|until| at >= until)
    }
}

/// The customer row behind a thread.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = customers)]
pub struct Customer {
    /// Id.
    pub id: CustomerId,
    /// Merchant.
    pub merchant_id: MerchantId,
    /// The channel account (see [`Thread::page_id`]).
    pub page_id: PageId,
    /// The shopper's id on the account: Page-scoped (PSID), Instagram-scoped (IGSID), web chat visitor.
    pub psid: Psid,
    /// From the User Profile API, when allowed.
    pub first_name: Option<String>,
    /// From the User Profile API (`fr_FR`).
    pub locale: Option<String>,
    /// Hours from UTC.
    pub timezone_offset: Option<i32>,
    /// Whether the channel's profile was asked.
    pub profile_status: ProfileStatus,
    /// Created.
    pub created_at: NaiveDateTime,
    /// The channel.
    pub channel: Channel,
}

/// Finds or creates the customer for (channel account, shopper id).
pub fn ensure_customer(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    channel: Channel,
    page_id: &PageId,
    psid: &Psid,
) -> QueryResult<CustomerId> {
    let existing: Option<CustomerId> = customers::table
        .filter(customers::page_id.eq(page_id))
        .filter(customers::psid.eq(psid))
        .select(customers::id)
        .first(conn)
        .optional()?;
    if let Some(id) = existing {
        return Ok(id);
    }
    let id = CustomerId::new();
    diesel::insert_into(customers::table)
        .values((
            customers::id.eq(id),
            customers::merchant_id.eq(merchant_id),
            customers::page_id.eq(page_id),
            customers::psid.eq(psid),
            customers::created_at.eq(now()),
            customers::channel.eq(channel),
        ))
        .execute(conn)?;
    Ok(id)
}

/// The customer with `id`.
pub fn customer(conn: &mut DbConnection, id: CustomerId) -> QueryResult<Customer> {
    customers::table
        .find(id)
        .select(Customer::as_select())
        .first(conn)
}

/// Stores what the User Profile API said (or that it said nothing).
pub fn set_profile(
    conn: &mut DbConnection,
    customer_id: CustomerId,
    profile: Option<(Option<String>, Option<String>, Option<i32>)>,
) -> QueryResult<()> {
    let target = customers::id.eq(customer_id);
    match profile {
        Some((first_name, locale, tz)) => prepared::update(
            customers::table,
            (
                customers::first_name.eq(first_name),
                customers::locale.eq(locale),
                customers::timezone_offset.eq(tz),
                customers::profile_status.eq(ProfileStatus::Ok),
            ),
            target,
        )
        .execute(conn)?,
        None => prepared::update(
            customers::table,
            customers::profile_status.eq(ProfileStatus::Unavailable),
            target,
        )
        .execute(conn)?,
    };
    Ok(())
}

/// The customer's thread, created on first contact.
pub fn ensure_thread(conn: &mut DbConnection, customer: &Customer) -> QueryResult<Thread> {
    if let Some(t) = threads::table
        .filter(threads::customer_id.eq(customer.id))
        .select(Thread::as_select())
        .first(conn)
        .optional()?
    {
        return Ok(t);
    }
    let at = now();
    diesel::insert_into(threads::table)
        .values((
            threads::id.eq(DbUuid(Uuid::now_v7())),
            threads::merchant_id.eq(customer.merchant_id),
            threads::customer_id.eq(customer.id),
            threads::page_id.eq(&customer.page_id),
            threads::mode.eq(Mode::Bot),
            threads::ctm_pending.eq(false),
            threads::created_at.eq(at),
            threads::updated_at.eq(at),
            threads::channel.eq(customer.channel),
        ))
        .execute(conn)?;
    threads::table
        .filter(threads::customer_id.eq(customer.id))
        .select(Thread::as_select())
        .first(conn)
}

/// The thread `id`, whoever's it is (for workers).
pub fn get_thread(conn: &mut DbConnection, id: ThreadId) -> QueryResult<Thread> {
    threads::table.find(id).select(Thread::as_select()).first(conn)
}

/// The merchant's thread `id` (another merchant's answers `NotFound`).
pub fn thread(conn: &mut DbConnection, merchant_id: MerchantId, id: ThreadId) -> QueryResult<Thread> {
    threads::table
        .filter(threads::id.eq(id))
        .filter(threads::merchant_id.eq(merchant_id))
        .select(Thread::as_select())
        .first(conn)
}

/// The merchant's thread `id` as `agent` may see it: an agent's own key sees the threads given to them
/// and the ones waiting in the queue, nothing else (not found); other keys (`agent` none) see every
/// thread of the merchant.
pub fn thread_for(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    agent: Option<uuid::Uuid>,
    id: ThreadId,
) -> QueryResult<Thread> {
    let thread = thread(conn, merchant_id, id)?;
    match agent {
        Some(agent) if !visible_to(&thread, agent) => Err(diesel::result::Error::NotFound),
        _ => Ok(thread),
    }
}

/// Whether an agent's own key sees the thread: given to them, or waiting for an agent.
fn visible_to(thread: &Thread, agent: uuid::Uuid) -> bool {
    match thread.assigned_agent_id {
        Some(assigned) => assigned.0 == agent,
        None => thread.queued_at.is_some(),
    }
}

/// A shopper acted at `at`: the thread's channel's window moves (see [`Window::after_shopper_action`]).
/// Computed only: [`save_progress`] stores it.
pub fn note_shopper_action(thread: &Thread, at: NaiveDateTime, is_message: bool) -> Thread {
    thread.window().after_shopper_action(thread, at, is_message)
}

/// Stores what an event moved on the thread (its window, its first and latest touch) when anything
/// did, in one statement. The event worker writes it last, just before committing, so the thread's row
/// is locked only briefly (the sender takes and gives back its send lease on that row).
pub fn save_progress(conn: &mut DbConnection, before: &Thread, after: &Thread) -> QueryResult<()> {
    let moved = |t: &Thread| {
        (
            t.window_ends_at,
            t.last_inbound_at,
            t.ctm_pending,
            t.first_touch_id,
            t.latest_touch_id,
            t.latest_ad_id.clone(),
            t.disclosed_at,
        )
    };
    if moved(before) == moved(after) {
        return Ok(());
    }
    prepared::update(
        threads::table,
        (
            threads::window_ends_at.eq(after.window_ends_at),
            threads::last_inbound_at.eq(after.last_inbound_at),
            threads::ctm_pending.eq(after.ctm_pending),
            threads::first_touch_id.eq(after.first_touch_id),
            threads::latest_touch_id.eq(after.latest_touch_id),
            threads::latest_ad_id.eq(&after.latest_ad_id),
            threads::disclosed_at.eq(after.disclosed_at),
            threads::updated_at.eq(now()),
        ),
        threads::id.eq(after.id),
    )
    .execute(conn)?;
    Ok(())
}

/// Stores a referral as a touch on the thread and keeps the first and latest touch at hand.
pub fn record_touch(
    conn: &mut DbConnection,
    thread: &Thread,
    referral: &Referral,
    at: NaiveDateTime,
) -> QueryResult<Thread> {
    let touched = add_touch(conn, thread, referral, at)?;
    save_progress(conn, thread, &touched)?;
    Ok(touched)
}

/// Stores a referral as a touch (see [`crate::attribution::touches`]); the thread it answers names it as
/// its latest touch (and first, when it is), for [`save_progress`] to store.
pub fn add_touch(
    conn: &mut DbConnection,
    thread: &Thread,
    referral: &Referral,
    at: NaiveDateTime,
) -> QueryResult<Thread> {
    let id = crate::attribution::touches::record(conn, &thread.funnel_view(), referral, at)?;
    Ok(Thread {
        first_touch_id: Some(thread.first_touch_id.unwrap_or(id)),
        latest_touch_id: Some(id),
        latest_ad_id: referral.ad_id.clone(),
        ctm_pending: thread.ctm_pending || (thread.channel.is_meta() && referral.source == "ADS"),
        ..thread.clone()
    })
}

/// A human answered from another app (the Page Inbox): the bot stays quiet until `until`.
pub fn human_replied(conn: &mut DbConnection, thread: &Thread, until: NaiveDateTime) -> QueryResult<()> {
    diesel::update(threads::table.find(thread.id))
        .set((
            threads::human_active_until.eq(until),
            threads::updated_at.eq(now()),
        ))
        .execute(conn)?;
    Ok(())
}

/// Remembers the away text went out on the merchant-local day `day`.
pub fn set_away_sent_on(conn: &mut DbConnection, thread_id: ThreadId, day: &str) -> QueryResult<()> {
    diesel::update(threads::table.find(thread_id))
        .set(threads::away_sent_on.eq(day))
        .execute(conn)?;
    Ok(())
}

/// Remembers whether the bot's last answer in the thread could not help.
pub fn set_bot_missed(conn: &mut DbConnection, thread_id: ThreadId, missed: bool) -> QueryResult<()> {
    diesel::update(threads::table.find(thread_id))
        .set(threads::bot_missed.eq(missed))
        .execute(conn)?;
    Ok(())
}

/// Remembers (or forgets) the room whose arrival date the thread was asked.
pub fn set_stay_room(conn: &mut DbConnection, thread_id: ThreadId, room: Option<Uuid>) -> QueryResult<()> {
    diesel::update(threads::table.find(thread_id))
        .set(threads::stay_bookable_id.eq(room.map(DbUuid)))
        .execute(conn)?;
    Ok(())
}

/// Hands the thread to agents or back to the bot (which also ends a human pause).
pub fn set_mode(conn: &mut DbConnection, thread_id: ThreadId, mode: Mode) -> QueryResult<()> {
    let human_active_until: Option<NaiveDateTime> = None;
    if mode == Mode::Bot {
        // A person hands the thread back: the assistant's next message says again that it is one.
        let never: Option<NaiveDateTime> = None;
        diesel::update(
            threads::table
                .find(thread_id)
                .filter(threads::mode.eq(Mode::Agent)),
        )
        .set(threads::disclosed_at.eq(never))
        .execute(conn)?;
    }
    let at = now();
    diesel::update(threads::table.find(thread_id))
        .set((
            threads::mode.eq(mode),
            threads::human_active_until.eq(human_active_until),
            // A new start: the bot's misses before the handover do not count after it.
            threads::bot_missed.eq(false),
            threads::updated_at.eq(at),
        ))
        .execute(conn)?;
    // With a person: the thread waits for an agent (`crate::routing`); back with the bot: it leaves
    // the queue.
    match mode {
        Mode::Agent => crate::routing::enqueue(conn, thread_id, at),
        Mode::Bot => crate::routing::dequeue(conn, thread_id),
    }
}

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the shopper.
    In,
    /// To the shopper.
    Out,
}

impl Direction {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

/// A message to store.
#[derive(Debug, Clone)]
pub struct NewMessage<'a> {
    /// In or out.
    pub direction: Direction,
    /// `shopper`, `bot`, `agent` (through our API) or `human` (Page Inbox).
    pub author: &'a str,
    /// `text`, `quick_reply`, `postback`, `attachment`, `template` ...
    pub kind: &'a str,
    /// Meta's message id, when known.
    pub mid: Option<&'a str>,
    /// Text, when there is one.
    pub text: Option<&'a str>,
    /// Structured content (quick reply payload, template), as JSON text.
    pub payload: Option<&'a str>,
    /// When it was sent.
    pub occurred_at: NaiveDateTime,
}

/// Stores a message on the thread.
pub fn record_message(conn: &mut DbConnection, thread: &Thread, m: &NewMessage<'_>) -> QueryResult<Uuid> {
    let id = Uuid::now_v7();
    diesel::insert_into(messages::table)
        .values((
            messages::id.eq(DbUuid(id)),
            messages::merchant_id.eq(thread.merchant_id),
            messages::thread_id.eq(thread.id),
            messages::direction.eq(m.direction.as_str()),
            messages::author.eq(m.author),
            messages::kind.eq(m.kind),
            messages::mid.eq(m.mid),
            messages::text.eq(m.text),
            messages::payload.eq(m.payload),
            messages::occurred_at.eq(m.occurred_at),
            messages::created_at.eq(now()),
            messages::channel.eq(thread.channel),
        ))
        .execute(conn)?;
    Ok(id)
}

/// Filters of the thread list.
#[derive(Debug, Clone, Default)]
pub struct ThreadQuery {
    /// Only threads in this mode.
    pub mode: Option<Mode>,
    /// Only threads on this channel.
    pub channel: Option<Channel>,
    /// Only threads whose latest touch came from this ad.
    pub ad_id: Option<String>,
    /// Only threads with (true) or without (false) an open cart holding something.
    pub has_open_cart: Option<bool>,
    /// Where the page starts and which way it reads.
    pub page: crate::db::Keyset,
    /// Page size.
    pub limit: i64,
    /// For an agent's own key: only the threads given to that agent and the ones waiting in the queue.
    pub visible_to: Option<uuid::Uuid>,
    /// Only the threads given to this agent.
    pub assigned_agent_id: Option<uuid::Uuid>,
}

/// A page of the merchant's threads, newest first unless the query asks oldest first, with their customers.
pub fn list_threads(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    q: &ThreadQuery,
) -> QueryResult<Vec<(Thread, Customer)>> {
    let mut query = threads::table
        .inner_join(customers::table)
        .filter(threads::merchant_id.eq(merchant_id))
        .limit(q.limit)
        .select((Thread::as_select(), Customer::as_select()))
        .into_boxed();
    if let Some(mode) = q.mode {
        query = query.filter(threads::mode.eq(mode));
    }
    if let Some(channel) = q.channel {
        query = query.filter(threads::channel.eq(channel));
    }
    if let Some(ad_id) = &q.ad_id {
        query = query.filter(threads::latest_ad_id.eq(ad_id.clone()));
    }
    if let Some(agent) = q.visible_to {
        query = query.filter(
            threads::assigned_agent_id
                .eq(DbUuid(agent))
                .or(threads::assigned_agent_id
                    .is_null()
                    .and(threads::queued_at.is_not_null())),
        );
    }
    if let Some(agent) = q.assigned_agent_id {
        query = query.filter(threads::assigned_agent_id.eq(DbUuid(agent)));
    }
    query = crate::keyset!(query, threads::id, q.page);
    if let Some(wanted) = q.has_open_cart {
        use crate::db::schema::{cart_lines, carts};
        let open = carts::table
            .inner_join(cart_lines::table)
            .filter(carts::status.eq(crate::carts::CartStatus::Open))
            .select(carts::thread_id);
        query = if wanted {
            query.filter(threads::id.eq_any(open))
        } else {
            query.filter(diesel::dsl::not(threads::id.eq_any(open)))
        };
    }
    query.load(conn)
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = messages)]
pub struct StoredMessage {
    /// Id.
    pub id: DbUuid,
    /// `in` or `out`.
    pub direction: String,
    /// `shopper`, `bot`, `agent`, `human`.
    pub author: String,
    /// `text`, `quick_reply`, `postback`, `attachment`, `template`.
    pub kind: String,
    /// Meta's id.
    pub mid: Option<String>,
    /// Text.
    pub text: Option<String>,
    /// Structured content.
    pub payload: Option<String>,
    /// When.
    pub occurred_at: NaiveDateTime,
}

/// What became of an outgoing message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Where the send stands.
    pub status: OutboxStatus,
    /// Why it was not delivered.
    pub error: Option<String>,
}

/// A page of the thread's messages, newest first unless `keyset` asks oldest first, each outgoing one with its delivery: the outbox
/// status (`queued`, `sent`, `failed`, `expired`, `dead`) and the last error.
pub fn list_messages(
    conn: &mut DbConnection,
    thread_id: ThreadId,
    keyset: crate::db::Keyset,
    limit: i64,
) -> QueryResult<Vec<(StoredMessage, Option<Delivery>)>> {
    let page = message_page(conn, thread_id, keyset, limit)?;
    let ids: Vec<DbUuid> = page.iter().map(|m| m.id).collect();
    type Sent = (Option<DbUuid>, OutboxStatus, Option<String>, Option<String>);
    let deliveries: Vec<Sent> = crate::db::schema::outbox::table
        .filter(crate::db::schema::outbox::message_id.eq_any(ids))
        .select((
            crate::db::schema::outbox::message_id,
            crate::db::schema::outbox::status,
            crate::db::schema::outbox::last_error,
            crate::db::schema::outbox::provider_message_id,
        ))
        .load(conn)?;
    let mut by_message: std::collections::HashMap<DbUuid, (Delivery, Option<String>)> = deliveries
        .into_iter()
        .filter_map(|(id, status, error, mid)| id.map(|id| (id, (Delivery { status, error }, mid))))
        .collect();
    Ok(page
        .into_iter()
        .map(|mut m| match by_message.remove(&m.id) {
            // A message we sent has Meta's id on its outbox row (the sender records it there only).
            Some((delivery, mid)) => {
                m.mid = m.mid.or(mid);
                (m, Some(delivery))
            }
            None => (m, None),
        })
        .collect())
}

fn message_page(
    conn: &mut DbConnection,
    thread_id: ThreadId,
    keyset: crate::db::Keyset,
    limit: i64,
) -> QueryResult<Vec<StoredMessage>> {
    let query = messages::table
        .filter(messages::thread_id.eq(thread_id))
        .limit(limit)
        .select(StoredMessage::as_select())
        .into_boxed();
    crate::keyset!(query, messages::id, keyset).load(conn)
}
