//! The durable inbox, shared by every channel: deliveries stored before they are acknowledged, split
//! into events (deduplicated on the channel account and the event's key), and each shopper's events
//! applied in timestamp order, one shopper at a time across every server process (the customer's row is
//! held while they are applied).
//!
//! Each event keeps its raw form as delivered (`payload`, for the dead-letter list) and its neutral
//! form (`event`, an [`Inbound`] as JSON), which is what the turn reads: the inbox never needs a
//! channel's parser again once an event is stored.

use chrono::{DateTime, Duration, NaiveDateTime};
use diesel::prelude::*;
use uuid::Uuid;

use super::event::Inbound;
use super::{Customer, DeliveryStatus, EventStatus, ProfileStatus, turn};
use crate::db::schema::{customers, inbound_events, pages, webchats, webhook_inbox};
use crate::db::{DbConnection, DbUuid, now, prepared, write_or_nested_transaction, write_transaction};
use crate::kernel::{Channel, CustomerId, MerchantId, PageId, Psid, ThreadId};

/// Retries of an event before it is dead-lettered.
pub const MAX_ATTEMPTS: i32 = 8;

/// Stores a verified delivery whole, for the split worker; the 200 goes out only after this commits.
pub fn store_delivery(conn: &mut DbConnection, source: &str, body: &str) -> QueryResult<Uuid> {
    let id = Uuid::now_v7();
    diesel::insert_into(webhook_inbox::table)
        .values((
            webhook_inbox::id.eq(DbUuid(id)),
            webhook_inbox::source.eq(source),
            webhook_inbox::body.eq(body),
            webhook_inbox::status.eq(DeliveryStatus::Pending),
            webhook_inbox::attempts.eq(0),
            webhook_inbox::received_at.eq(now()),
        ))
        .execute(conn)?;
    Ok(id)
}

/// Deliveries of `source` waiting to be split, oldest first.
pub fn pending_deliveries(
    conn: &mut DbConnection,
    source: &str,
    limit: i64,
) -> QueryResult<Vec<(DbUuid, String)>> {
    webhook_inbox::table
        .filter(webhook_inbox::source.eq(source))
        .filter(webhook_inbox::status.eq(DeliveryStatus::Pending))
        .order(webhook_inbox::id.asc())
        .select((webhook_inbox::id, webhook_inbox::body))
        .limit(limit)
        .load(conn)
}

fn millis_to_utc(ms: i64) -> NaiveDateTime {
    DateTime::from_timestamp_millis(ms)
        .map(|d| d.naive_utc())
        .unwrap_or_else(now)
}

/// Stores a verified delivery already split into its events (`parsed`: the events, or why the body
/// could not be read), in one transaction (the 200 goes out only after it commits): the common path,
/// one commit and no worker in between. When that transaction fails (two deliveries racing to create
/// the same customer, say), the delivery is stored whole instead and the split worker takes it later.
/// Returns the delivery's id and the shoppers it brought events for, or `None` when it still waits to
/// be split.
pub fn receive_delivery(
    conn: &mut DbConnection,
    source: &str,
    body: &str,
    parsed: &Result<Vec<Inbound>, String>,
) -> QueryResult<(Uuid, Option<Vec<CustomerId>>)> {
    let split = write_transaction(conn, |conn| record_delivery(conn, source, body, parsed));
    match split {
        Ok((id, customers)) => Ok((id, Some(customers))),
        Err(e) => {
            tracing::debug!(error = %e, "delivery not split on arrival; stored for the split worker");
            Ok((store_delivery(conn, source, body)?, None))
        }
    }
}

/// Stores a delivery as split already, with its events, in the caller's transaction; returns its id
/// and the shoppers it brought events for.
pub fn record_delivery(
    conn: &mut DbConnection,
    source: &str,
    body: &str,
    parsed: &Result<Vec<Inbound>, String>,
) -> QueryResult<(Uuid, Vec<CustomerId>)> {
    let id = Uuid::now_v7();
    diesel::insert_into(webhook_inbox::table)
        .values((
            webhook_inbox::id.eq(DbUuid(id)),
            webhook_inbox::source.eq(source),
            webhook_inbox::body.eq(body),
            webhook_inbox::status.eq(if parsed.is_ok() {
                DeliveryStatus::Done
            } else {
                DeliveryStatus::Dead
            }),
            webhook_inbox::attempts.eq(0),
            webhook_inbox::last_error.eq(parsed.as_ref().err()),
            webhook_inbox::received_at.eq(now()),
            webhook_inbox::processed_at.eq(now()),
        ))
        .execute(conn)?;
    let customers = store_events(conn, DbUuid(id), parsed.as_deref().unwrap_or_default())?;
    Ok((id, customers))
}

/// Splits one stored delivery into its events (`parsed`, read from its body by its channel), in one
/// transaction with marking it done, so a crash or a second process can never split it twice. Returns
/// how many new events were stored.
pub fn split_delivery(
    conn: &mut DbConnection,
    id: DbUuid,
    parsed: &Result<Vec<Inbound>, String>,
) -> QueryResult<usize> {
    write_transaction(conn, |conn| {
        let claimed = diesel::update(
            webhook_inbox::table
                .find(id)
                .filter(webhook_inbox::status.eq(DeliveryStatus::Pending)),
        )
        .set((
            webhook_inbox::status.eq(if parsed.is_ok() {
                DeliveryStatus::Done
            } else {
                DeliveryStatus::Dead
            }),
            webhook_inbox::processed_at.eq(now()),
            webhook_inbox::last_error.eq(parsed.as_ref().err()),
        ))
        .execute(conn)?;
        match (claimed, parsed) {
            (1, Ok(events)) => Ok(store_events(conn, id, events)?.len()),
            _ => Ok(0),
        }
    })
}

/// Records a failed split so it is retried later (and given up after a while).
pub fn delivery_failed(conn: &mut DbConnection, id: DbUuid, error: &str) -> QueryResult<()> {
    diesel::update(webhook_inbox::table.find(id))
        .set((
            webhook_inbox::attempts.eq(webhook_inbox::attempts + 1),
            webhook_inbox::last_error.eq(error),
        ))
        .execute(conn)?;
    diesel::update(
        webhook_inbox::table
            .find(id)
            .filter(webhook_inbox::attempts.ge(MAX_ATTEMPTS)),
    )
    .set(webhook_inbox::status.eq(DeliveryStatus::Dead))
    .execute(conn)?;
    Ok(())
}

/// Stores the events (a redelivered one is skipped); returns the shoppers with a new event to apply,
/// each once.
pub fn store_events(
    conn: &mut DbConnection,
    inbox_id: DbUuid,
    events: &[Inbound],
) -> QueryResult<Vec<CustomerId>> {
    let mut customers = Vec::new();
    for event in events {
        if let Some(customer) = store_event(conn, inbox_id, event)?
            && !customers.contains(&customer)
        {
            customers.push(customer);
        }
    }
    Ok(customers)
}

/// The merchant of a channel account and the shopper's customer row, when the account is connected,
/// in one round trip.
fn account_of(conn: &mut DbConnection, e: &Inbound) -> QueryResult<Option<(MerchantId, Option<CustomerId>)>> {
    let customer = customers::table
        .filter(customers::page_id.eq(&e.account))
        .filter(customers::psid.eq(&e.user))
        .select(customers::id)
        .single_value();
    match e.channel {
        Channel::Messenger => pages::table
            .filter(pages::page_id.eq(&e.account))
            .filter(pages::kind.eq(crate::merchants::pages::MESSENGER))
            .select((pages::merchant_id, customer))
            .first(conn)
            .optional(),
        Channel::Instagram => pages::table
            .filter(pages::instagram_account_id.eq(&e.account))
            .select((pages::merchant_id, customer))
            .first(conn)
            .optional(),
        Channel::Whatsapp => pages::table
            .filter(pages::page_id.eq(&e.account))
            .filter(pages::kind.eq(crate::merchants::pages::WHATSAPP))
            .select((pages::merchant_id, customer))
            .first(conn)
            .optional(),
        Channel::Webchat => {
            let Ok(id) = Uuid::parse_str(&e.account) else {
                return Ok(None);
            };
            webchats::table
                .find(DbUuid(id))
                .select((webchats::merchant_id, customer))
                .first(conn)
                .optional()
        }
    }
}

/// Stores one event unless its account already has one with the same key (a redelivery); returns its
/// shopper when it was stored for a connected account (to be applied).
fn store_event(conn: &mut DbConnection, inbox_id: DbUuid, e: &Inbound) -> QueryResult<Option<CustomerId>> {
    let (merchant, customer) = match resolve(conn, e)? {
        Resolved::Skip => return Ok(None),
        Resolved::Known(merchant, customer) => (merchant, customer),
        Resolved::NewCustomer(merchant) => {
            let customer = super::ensure_customer(conn, merchant, e.channel, &e.account, &e.user)?;
            // WhatsApp has no profile API: the delivery names the shopper.
            if e.channel == Channel::Whatsapp {
                super::set_profile(conn, customer, Some((e.profile_name.clone(), None, None)))?;
            }
            (Some(merchant), Some(customer))
        }
    };
    let row = EventRow::of(inbox_id, e, merchant, customer, now())?;
    let insert = diesel::insert_into(inbound_events::table)
        .values((
            inbound_events::id.eq(row.id),
            inbound_events::inbox_id.eq(row.inbox_id),
            inbound_events::merchant_id.eq(row.merchant_id),
            inbound_events::customer_id.eq(row.customer_id),
            inbound_events::page_id.eq(&e.account),
            inbound_events::psid.eq(&e.user),
            inbound_events::dedup_key.eq(&e.dedup_key),
            inbound_events::kind.eq(e.kind.name()),
            inbound_events::occurred_at.eq(row.occurred_at),
            inbound_events::payload.eq(&row.payload),
            inbound_events::status.eq(row.status),
            inbound_events::attempts.eq(0),
            inbound_events::next_attempt_at.eq(row.at),
            inbound_events::created_at.eq(row.at),
            inbound_events::channel.eq(e.channel.as_str()),
            inbound_events::event.eq(&row.neutral),
        ))
        .on_conflict((inbound_events::page_id, inbound_events::dedup_key))
        .do_nothing();
    let stored = crate::per_backend!(conn, |c| insert.execute(c))? == 1;
    if stored && customer.is_none() {
        unknown_account(e);
    }
    Ok(customer.filter(|_| stored))
}

/// Says that an event came for an account no merchant connected.
pub(super) fn unknown_account(e: &Inbound) {
    tracing::warn!(
        channel = %e.channel,
        account.id = %e.account,
        "event for an account no merchant connected: recorded and skipped"
    );
}

/// Whose an event is, as far as the database knows before it is stored.
pub(super) enum Resolved {
    /// Nothing to store it on (what became of a message sent to someone who is no customer:
    /// WhatsApp's statuses name the recipient).
    Skip,
    /// The merchant and the customer (both `None`: an account no merchant connected).
    Known(Option<MerchantId>, Option<CustomerId>),
    /// The merchant's new shopper: the customer is to be created first.
    NewCustomer(MerchantId),
}

/// Reads whose `e` is (one statement).
pub(super) fn resolve(conn: &mut DbConnection, e: &Inbound) -> QueryResult<Resolved> {
    Ok(Resolved::of(e, account_of(conn, e)?))
}

impl Resolved {
    /// What `e` is to store as, given its account's merchant and its shopper's row when they exist.
    pub(super) fn of(e: &Inbound, account: Option<(MerchantId, Option<CustomerId>)>) -> Resolved {
        match account {
            Some((merchant, Some(customer))) => Resolved::Known(Some(merchant), Some(customer)),
            Some((_, None)) if e.channel == Channel::Whatsapp && !e.kind.is_shopper_action() => {
                Resolved::Skip
            }
            Some((merchant, None)) => Resolved::NewCustomer(merchant),
            None => Resolved::Known(None, None),
        }
    }
}

/// The values of an event's row that are not the event's own fields.
pub(super) struct EventRow {
    pub id: DbUuid,
    pub inbox_id: DbUuid,
    pub merchant_id: Option<MerchantId>,
    pub customer_id: Option<CustomerId>,
    pub occurred_at: NaiveDateTime,
    pub payload: String,
    /// Unknown accounts are recorded and skipped, never retried.
    pub status: EventStatus,
    /// The event's neutral form, as JSON.
    pub neutral: String,
    /// Stored at, and due at.
    pub at: NaiveDateTime,
}

impl EventRow {
    pub(super) fn of(
        inbox_id: DbUuid,
        e: &Inbound,
        merchant_id: Option<MerchantId>,
        customer_id: Option<CustomerId>,
        at: NaiveDateTime,
    ) -> QueryResult<EventRow> {
        let neutral = serde_json::to_string(e)
            .map_err(|err| diesel::result::Error::SerializationError(Box::new(err)))?;
        Ok(EventRow {
            id: DbUuid(Uuid::now_v7()),
            inbox_id,
            merchant_id,
            customer_id,
            occurred_at: millis_to_utc(e.timestamp_ms),
            payload: e.raw.to_string(),
            status: if customer_id.is_some() {
                EventStatus::Pending
            } else {
                EventStatus::UnknownPage
            },
            neutral,
            at,
        })
    }
}

/// Gives every pending event stored without its neutral form (by a version before the neutral inbox)
/// that form, read by `decode` from its channel, account and raw payload; returns how many.
pub fn fill_neutral_forms(
    conn: &mut DbConnection,
    decode: impl Fn(Channel, &str, &serde_json::Value) -> Option<Inbound>,
) -> QueryResult<usize> {
    let rows: Vec<(DbUuid, String, String, String)> = inbound_events::table
        .filter(inbound_events::event.is_null())
        .filter(inbound_events::status.eq(EventStatus::Pending))
        .select((
            inbound_events::id,
            inbound_events::channel,
            inbound_events::page_id,
            inbound_events::payload,
        ))
        .load(conn)?;
    let mut filled = 0;
    for (id, channel, account, payload) in rows {
        let raw: serde_json::Value = serde_json::from_str(&payload).unwrap_or_default();
        let event = Channel::parse(&channel)
            .and_then(|c| decode(c, &account, &raw))
            .and_then(|e| serde_json::to_string(&e).ok());
        if let Some(event) = event {
            diesel::update(inbound_events::table.find(id))
                .set(inbound_events::event.eq(event))
                .execute(conn)?;
            filled += 1;
        }
    }
    Ok(filled)
}

/// Customers with an event due now.
pub fn customers_due(conn: &mut DbConnection, at: NaiveDateTime, limit: i64) -> QueryResult<Vec<CustomerId>> {
    let ids: Vec<Option<CustomerId>> = inbound_events::table
        .filter(inbound_events::status.eq(EventStatus::Pending))
        .filter(inbound_events::next_attempt_at.le(at))
        .select(inbound_events::customer_id)
        .distinct()
        .limit(limit)
        .load(conn)?;
    Ok(ids.into_iter().flatten().collect())
}

/// A stored event waiting to be applied.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = inbound_events)]
pub struct PendingEvent {
    /// Id.
    pub id: DbUuid,
    /// When it happened.
    pub occurred_at: NaiveDateTime,
    /// The neutral event, as JSON.
    pub event: Option<String>,
    /// Tries so far.
    pub attempts: i32,
    /// Not before.
    pub next_attempt_at: NaiveDateTime,
}

/// The customer's pending events in timestamp order.
pub fn pending_events(conn: &mut DbConnection, customer_id: CustomerId) -> QueryResult<Vec<PendingEvent>> {
    inbound_events::table
        .filter(inbound_events::customer_id.eq(customer_id))
        .filter(inbound_events::status.eq(EventStatus::Pending))
        .order((inbound_events::occurred_at.asc(), inbound_events::id.asc()))
        .select(PendingEvent::as_select())
        .load(conn)
}

/// Settings the event handling needs.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// How long the bot stays quiet after a human answered from the Page Inbox.
    pub human_idle: Duration,
    /// Stripe is configured: checkout opens a payment page (else a person takes over).
    pub payments: bool,
}

/// What became of a customer's due events.
#[derive(Debug)]
pub enum Applied {
    /// Another worker holds the customer: nothing was done.
    Busy,
    /// The shopper's profile must be asked for first (an HTTP call, outside any transaction); the
    /// Page's token, when it has a working one.
    NeedsProfile(Customer, Option<crate::secrets::Sealed>),
    /// This many events were applied; `sends`: the thread they queued replies on, if any.
    Done {
        /// Events applied.
        applied: usize,
        /// The shopper's thread, when replies were queued on it.
        sends: Option<ThreadId>,
    },
    /// An event failed: nothing of this pass was kept, the event is to be retried later (the ones
    /// before it are applied again on the next pass).
    Failed {
        /// The event that failed.
        event: PendingEvent,
        /// Why.
        error: turn::TurnError,
    },
}

/// Why the transaction of [`apply_due`] ended early.
enum Abort {
    Db(diesel::result::Error),
    Event(Box<(PendingEvent, turn::TurnError)>),
}

impl From<diesel::result::Error> for Abort {
    fn from(e: diesel::result::Error) -> Self {
        Abort::Db(e)
    }
}

/// Applies the customer's due events in timestamp order, and marks them done, in one transaction (or a
/// savepoint of the caller's) that holds the customer's row: one worker per shopper across every
/// process (PostgreSQL's `FOR NO KEY UPDATE SKIP LOCKED`; SQLite's `BEGIN IMMEDIATE` admits one
/// writer), each event's effects (messages, touches, window, queued replies) exactly once. A later
/// event waits for an earlier one being retried.
pub fn apply_due(conn: &mut DbConnection, customer_id: CustomerId, policy: Policy) -> QueryResult<Applied> {
    let outcome = write_or_nested_transaction(conn, |conn| take_due(conn, customer_id, policy));
    match outcome {
        Ok(applied) => Ok(applied),
        Err(Abort::Event(failed)) => {
            let (event, error) = *failed;
            Ok(Applied::Failed { event, error })
        }
        Err(Abort::Db(e)) => Err(e),
    }
}

/// The turns of several shoppers in the caller's transaction, without a savepoint each: their rows
/// held by one statement (those another transaction holds are `Busy`), the due events of them all read
/// by another, then each shopper's applied as [`apply_due`] does, one answer per shopper in order.
/// `Ok(None)` when an event failed, after which the caller must undo its whole transaction (what the
/// events before it did is in it) and take the turns again one by one with [`apply_due`].
pub fn apply_due_together(
    conn: &mut DbConnection,
    customer_ids: &[CustomerId],
    policy: Policy,
) -> QueryResult<Option<Vec<Applied>>> {
    let held = lock_customers(conn, customer_ids)?;
    let ready: Vec<CustomerId> = held
        .iter()
        .filter(|c| c.profile_status != ProfileStatus::Pending)
        .map(|c| c.id)
        .collect();
    let mut events = pending_events_of(conn, &ready)?;
    let mut answers = Vec::with_capacity(customer_ids.len());
    for id in customer_ids {
        let answer = match held.iter().find(|c| c.id == *id) {
            None => Ok(Applied::Busy),
            Some(customer) if customer.profile_status == ProfileStatus::Pending => {
                needs_profile(conn, customer.clone())
            }
            Some(customer) => apply_events(conn, customer, events.remove(id).unwrap_or_default(), policy),
        };
        match answer {
            Ok(applied) => answers.push(applied),
            Err(Abort::Event(_)) => return Ok(None),
            Err(Abort::Db(e)) => return Err(e),
        }
    }
    Ok(Some(answers))
}

/// [`apply_due`]'s body, in the caller's transaction.
fn take_due(conn: &mut DbConnection, customer_id: CustomerId, policy: Policy) -> Result<Applied, Abort> {
    let Some(customer) = lock_customer(conn, customer_id)? else {
        return Ok(Applied::Busy);
    };
    if customer.profile_status == ProfileStatus::Pending {
        return needs_profile(conn, customer);
    }
    let events = pending_events(conn, customer_id)?;
    apply_events(conn, &customer, events, policy)
}

/// The shopper's profile is to be asked for first, with the Page's token.
fn needs_profile(conn: &mut DbConnection, customer: Customer) -> Result<Applied, Abort> {
    let token = crate::merchants::pages::access_token(conn, &customer.page_id)?;
    Ok(Applied::NeedsProfile(customer, token))
}

/// Applies the held customer's pending `events` (in timestamp order) up to the first not due yet.
fn apply_events(
    conn: &mut DbConnection,
    customer: &Customer,
    events: Vec<PendingEvent>,
    policy: Policy,
) -> Result<Applied, Abort> {
    let (mut applied, mut sends) = (0, None);
    for event in events {
        if event.next_attempt_at > now() {
            break;
        }
        match apply(conn, customer, &event, policy) {
            Ok(queued) => {
                applied += 1;
                sends = sends.or(queued);
            }
            Err(e) => return Err(Abort::Event(Box::new((event, e)))),
        }
    }
    Ok(Applied::Done { applied, sends })
}

/// The customers of `ids` no other transaction holds, their rows held for the rest of the transaction
/// (see [`lock_customer`]).
fn lock_customers(conn: &mut DbConnection, ids: &[CustomerId]) -> QueryResult<Vec<Customer>> {
    let of_ids = customers::table.filter(customers::id.eq_any(ids));
    match conn {
        #[cfg(feature = "postgres")]
        DbConnection::Postgres(c) => of_ids
            .select(Customer::as_select())
            .for_no_key_update()
            .skip_locked()
            .load(c),
        DbConnection::Sqlite(c) => of_ids.select(Customer::as_select()).load(c),
    }
}

/// The pending events of each of `customers`, each shopper's in timestamp order (one statement).
fn pending_events_of(
    conn: &mut DbConnection,
    customers: &[CustomerId],
) -> QueryResult<std::collections::HashMap<CustomerId, Vec<PendingEvent>>> {
    let mut of = std::collections::HashMap::new();
    if customers.is_empty() {
        return Ok(of);
    }
    let rows: Vec<(Option<CustomerId>, PendingEvent)> = inbound_events::table
        .filter(inbound_events::customer_id.eq_any(customers))
        .filter(inbound_events::status.eq(EventStatus::Pending))
        .order((
            inbound_events::customer_id.asc(),
            inbound_events::occurred_at.asc(),
            inbound_events::id.asc(),
        ))
        .select((inbound_events::customer_id, PendingEvent::as_select()))
        .load(conn)?;
    for (customer, event) in rows {
        if let Some(customer) = customer {
            of.entry(customer).or_insert_with(Vec::new).push(event);
        }
    }
    Ok(of)
}

/// The customer, its row locked for the rest of the transaction; `None` when another transaction holds
/// it (PostgreSQL). On SQLite the transaction is the only writer already.
fn lock_customer(conn: &mut DbConnection, id: CustomerId) -> QueryResult<Option<Customer>> {
    crate::first_skip_locked!(conn, customers::table.find(id).select(Customer::as_select()))
}

/// Applies one event and marks it done, in the caller's transaction; returns the thread when replies
/// were queued on it.
fn apply(
    conn: &mut DbConnection,
    customer: &Customer,
    row: &PendingEvent,
    policy: Policy,
) -> turn::TurnResult<Option<ThreadId>> {
    let done = prepared::update(
        inbound_events::table,
        (
            inbound_events::status.eq(EventStatus::Done),
            inbound_events::processed_at.eq(now()),
            inbound_events::attempts.eq(row.attempts + 1),
        ),
        inbound_events::id
            .eq(row.id)
            .and(inbound_events::status.eq(EventStatus::Pending)),
    )
    .execute(conn)?;
    if done == 0 {
        return Ok(None);
    }
    let event: Inbound = serde_json::from_str(row.event.as_deref().unwrap_or_default())?;
    turn::take(conn, customer, &event, row.occurred_at, policy)
}

/// Records a failed attempt: retried later with backoff, dead-lettered after [`MAX_ATTEMPTS`].
pub fn event_failed(
    conn: &mut DbConnection,
    row: &PendingEvent,
    error: &str,
    next: NaiveDateTime,
) -> QueryResult<()> {
    let attempts = row.attempts + 1;
    diesel::update(inbound_events::table.find(row.id))
        .set((
            inbound_events::attempts.eq(attempts),
            inbound_events::last_error.eq(error),
            inbound_events::next_attempt_at.eq(next),
            inbound_events::status.eq(if attempts >= MAX_ATTEMPTS {
                EventStatus::Dead
            } else {
                EventStatus::Pending
            }),
        ))
        .execute(conn)?;
    Ok(())
}

/// An event as the dead-letter API shows it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = inbound_events)]
pub struct StoredEvent {
    /// Id.
    pub id: DbUuid,
    /// The channel account.
    pub page_id: PageId,
    /// Shopper.
    pub psid: Psid,
    /// `message`, `postback` ...
    pub kind: String,
    /// `pending`, `done`, `dead`, `unknown_page`.
    pub status: String,
    /// Tries.
    pub attempts: i32,
    /// The last failure.
    pub last_error: Option<String>,
    /// When it happened.
    pub occurred_at: NaiveDateTime,
    /// The event as delivered.
    pub payload: String,
    /// The channel.
    pub channel: crate::kernel::Channel,
}

/// A page of the merchant's events in `status`, newest first unless `page` asks oldest first.
pub fn list_events(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    status: EventStatus,
    page: crate::db::Keyset,
    limit: i64,
) -> QueryResult<Vec<StoredEvent>> {
    let mut query = inbound_events::table
        .filter(inbound_events::merchant_id.eq(merchant_id))
        .filter(inbound_events::status.eq(status))
        .limit(limit)
        .select(StoredEvent::as_select())
        .into_boxed();
    query = crate::keyset!(query, inbound_events::id, page);
    query.load(conn)
}

/// Puts a dead event of the merchant back in the queue; false when there is no such dead event.
pub fn replay(conn: &mut DbConnection, merchant_id: MerchantId, id: Uuid) -> QueryResult<bool> {
    let n = diesel::update(
        inbound_events::table
            .find(DbUuid(id))
            .filter(inbound_events::merchant_id.eq(merchant_id))
            .filter(inbound_events::status.eq(EventStatus::Dead)),
    )
    .set((
        inbound_events::status.eq(EventStatus::Pending),
        inbound_events::attempts.eq(0),
        inbound_events::next_attempt_at.eq(now()),
    ))
    .execute(conn)?;
    Ok(n == 1)
}
