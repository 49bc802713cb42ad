//! Acknowledging Meta's deliveries at the database's commit rate. The webhook hands each verified
//! delivery to the group writers ([`crate::db::groups`]) and answers Meta only once the delivery's
//! transaction has committed, so nothing is acknowledged before it is durable. A writer takes every
//! delivery waiting at that moment (at most [`MAX_GROUP`]) and stores them in one transaction: one commit
//! for all of them. A group whose transaction fails is written again one delivery at a time
//! ([`inbox::receive_delivery`], which falls back to storing the body whole for the split worker), so one
//! bad delivery never holds the others back.
//!
//! On PostgreSQL a group is usually one statement: after reading whose each event is (a statement per
//! event), the deliveries, the new shoppers and the events are inserted by one statement of fixed text
//! with each column as an array, which commits by itself (no `BEGIN`, no `COMMIT`). A group carrying
//! a template review or a new WhatsApp shopper, or whose statement fails (two deliveries racing to
//! create one shopper, say), takes the transaction above.

use uuid::Uuid;

use super::event::Inbound;
use super::inbox;
use crate::db::groups::{GroupError, Groups};
use crate::db::{Db, DbConnection, write_transaction};
use crate::followups::templates::{self, StatusChange};
use crate::kernel::CustomerId;

/// The most deliveries one transaction stores.
pub const MAX_GROUP: usize = 64;

/// A verified delivery, read.
#[derive(Debug)]
pub struct Delivery {
    /// Where it came from (`messenger` for every Meta product).
    pub source: &'static str,
    /// The body as received.
    pub body: String,
    /// Its events, or why it could not be read.
    pub parsed: Result<Vec<Inbound>, String>,
    /// Template reviews it carries, applied with it.
    pub reviews: Vec<StatusChange>,
}

/// A stored delivery: its id, and the shoppers it brought events for (`None`: stored whole, for the
/// split worker).
pub type Stored = (Uuid, Option<Vec<CustomerId>>);

/// Why a delivery was not stored (the webhook answers an error, and Meta delivers it again).
pub type IngestError = GroupError;

/// The handle the webhook stores deliveries through.
#[derive(Clone)]
pub struct Ingest(Groups<Delivery, Stored>);

impl Ingest {
    /// Starts `writers` group writers on the current Tokio runtime.
    pub fn start(db: Db, writers: usize) -> Ingest {
        Ingest(Groups::start(db, writers, MAX_GROUP, "deliveries", write_group))
    }

    /// Stores `delivery` durably: answers once its transaction has committed.
    pub async fn store(&self, delivery: Delivery) -> Result<Stored, IngestError> {
        self.0.submit(delivery).await
    }
}

/// Writes a group in one transaction, or, when that fails, each delivery alone; a result per delivery,
/// in order.
fn write_group(conn: &mut DbConnection, deliveries: &[Delivery]) -> Vec<diesel::QueryResult<Stored>> {
    #[cfg(feature = "postgres")]
    match in_one_statement(conn, deliveries) {
        Ok(Some(stored)) => return stored.into_iter().map(Ok).collect(),
        Ok(None) => {}
        Err(e) => {
            tracing::debug!(error = %e, deliveries = deliveries.len(), "a group of deliveries failed in one statement: written in a transaction");
        }
    }
    if deliveries.len() > 1 {
        let together = write_transaction(conn, |conn| {
            deliveries
                .iter()
                .map(|d| {
                    apply_reviews(conn, &d.reviews)?;
                    inbox::record_delivery(conn, d.source, &d.body, &d.parsed).map(|(id, c)| (id, Some(c)))
                })
                .collect::<diesel::QueryResult<Vec<Stored>>>()
        });
        match together {
            Ok(stored) => return stored.into_iter().map(Ok).collect(),
            Err(e) => {
                tracing::debug!(error = %e, deliveries = deliveries.len(), "a group of deliveries failed together: each is written alone");
            }
        }
    }
    deliveries
        .iter()
        .map(|d| {
            apply_reviews(conn, &d.reviews)?;
            inbox::receive_delivery(conn, d.source, &d.body, &d.parsed)
        })
        .collect()
}

/// Meta's reviews of utility templates, which come on the same webhook (applying one again changes
/// nothing).
fn apply_reviews(conn: &mut DbConnection, reviews: &[StatusChange]) -> diesel::QueryResult<()> {
    if !reviews.is_empty() {
        let changed = templates::apply_status_changes(conn, reviews)?;
        tracing::info!(reviews = reviews.len(), changed, "template reviews applied");
    }
    Ok(())
}

/// Stores the group in one statement on PostgreSQL (see the module's documentation); `None` when the
/// group is not for it (SQLite, a template review, a new WhatsApp shopper), having written nothing.
#[cfg(feature = "postgres")]
fn in_one_statement(
    conn: &mut DbConnection,
    deliveries: &[Delivery],
) -> diesel::QueryResult<Option<Vec<Stored>>> {
    use std::collections::HashMap;

    use diesel::RunQueryDsl;

    use super::inbox::{EventRow, Resolved};
    use crate::db::{DbUuid, now};
    use crate::kernel::Channel;

    if !matches!(conn, DbConnection::Postgres(_)) || deliveries.iter().any(|d| !d.reviews.is_empty()) {
        return Ok(None);
    }
    let at = now();
    let mut rows = Rows::default();
    // Where each event is (its delivery's index, its own in the delivery) and what it names.
    type Place<'d> = ((usize, usize), &'d Inbound, Option<CustomerId>);
    let mut events: HashMap<DbUuid, Place<'_>> = HashMap::new();
    let mut new_customers: HashMap<(&str, &str), CustomerId> = HashMap::new();
    let mut ids = Vec::with_capacity(deliveries.len());
    let mut resolved = resolve_all(conn, deliveries)?.into_iter();
    for (index, d) in deliveries.iter().enumerate() {
        let id = Uuid::now_v7();
        rows.delivery(id, d);
        for (place, e) in d.parsed.as_deref().unwrap_or_default().iter().enumerate() {
            let Some(whose) = resolved.next() else {
                return Err(diesel::result::Error::NotFound);
            };
            let (merchant, customer) = match whose {
                Resolved::Skip => continue,
                Resolved::Known(merchant, customer) => (merchant, customer),
                // Its profile comes with the delivery: stored by the transaction's path.
                Resolved::NewCustomer(_) if e.channel == Channel::Whatsapp => return Ok(None),
                Resolved::NewCustomer(merchant) => {
                    let customer = *new_customers
                        .entry((e.account.as_str(), e.user.as_str()))
                        .or_insert_with(|| {
                            let customer = CustomerId::new();
                            rows.customer(customer, merchant, e);
                            customer
                        });
                    (Some(merchant), Some(customer))
                }
            };
            let row = EventRow::of(DbUuid(id), e, merchant, customer, at)?;
            events.insert(row.id, ((index, place), e, customer));
            rows.event(row, e);
        }
        ids.push(id);
    }
    let DbConnection::Postgres(pg) = conn else {
        return Ok(None);
    };
    let stored: Vec<DbUuid> = StoreOnPostgres { rows: &rows, at }.load(pg)?;
    let mut customers: Vec<Vec<CustomerId>> = vec![Vec::new(); deliveries.len()];
    let mut stored: Vec<Place<'_>> = stored.iter().filter_map(|id| events.get(id).copied()).collect();
    // In the order of the deliveries' events, as the transaction's path answers.
    stored.sort_by_key(|(place, ..)| *place);
    for ((index, _), e, customer) in stored {
        match customer {
            Some(customer) if !customers[index].contains(&customer) => customers[index].push(customer),
            Some(_) => {}
            None => inbox::unknown_account(e),
        }
    }
    Ok(Some(
        ids.into_iter()
            .zip(customers)
            .map(|(id, c)| (id, Some(c)))
            .collect(),
    ))
}

/// Whose each event of `deliveries` is, in order: one statement on PostgreSQL for the events of Meta's
/// channels (a web chat's event, which never comes in a webhook's delivery, is read alone).
#[cfg(feature = "postgres")]
fn resolve_all(
    conn: &mut DbConnection,
    deliveries: &[Delivery],
) -> diesel::QueryResult<Vec<inbox::Resolved>> {
    use diesel::RunQueryDsl;

    use crate::kernel::{Channel, MerchantId};

    let events: Vec<&Inbound> = deliveries
        .iter()
        .flat_map(|d| d.parsed.as_deref().unwrap_or_default())
        .collect();
    let pg = match conn {
        DbConnection::Postgres(pg) if events.iter().all(|e| e.channel != Channel::Webchat) => pg,
        _ => return events.iter().map(|e| inbox::resolve(conn, e)).collect(),
    };
    let accounts = AccountsOnPostgres {
        channels: events.iter().map(|e| e.channel.as_str()).collect(),
        accounts: events.iter().map(|e| e.account.as_str()).collect(),
        shoppers: events.iter().map(|e| e.user.as_str()).collect(),
    };
    let found: Vec<(Option<MerchantId>, Option<CustomerId>)> = accounts.load(pg)?;
    if found.len() != events.len() {
        return Err(diesel::result::Error::NotFound);
    }
    Ok(events
        .iter()
        .zip(found)
        .map(|(e, (merchant, customer))| inbox::Resolved::of(e, merchant.map(|m| (m, customer))))
        .collect())
}

/// [`resolve_all`]'s statement: for each event (its channel, account and shopper, as arrays), the
/// merchant of the account (a Messenger or WhatsApp number's Page by its id and kind, an Instagram
/// account by its id) and the shopper's row when the account is connected, in the events' order.
#[cfg(feature = "postgres")]
struct AccountsOnPostgres<'a> {
    channels: Vec<&'static str>,
    accounts: Vec<&'a str>,
    shoppers: Vec<&'a str>,
}

#[cfg(feature = "postgres")]
impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for AccountsOnPostgres<'_> {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> diesel::QueryResult<()> {
        use diesel::sql_types::{Array, Text};
        out.push_sql("SELECT a.merchant_id, c.id FROM unnest(");
        out.push_bind_param::<Array<Text>, _>(&self.channels)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.accounts)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.shoppers)?;
        out.push_sql(
            ") WITH ORDINALITY AS k(channel, account, shopper, n) \
             LEFT JOIN pages p ON k.channel <> 'instagram' AND p.page_id = k.account AND p.kind = k.channel \
             LEFT JOIN pages i ON k.channel = 'instagram' AND i.instagram_account_id = k.account \
             CROSS JOIN LATERAL (SELECT COALESCE(p.merchant_id, i.merchant_id) AS merchant_id) a \
             LEFT JOIN customers c ON a.merchant_id IS NOT NULL AND c.page_id = k.account \
             AND c.psid = k.shopper ORDER BY k.n",
        );
        Ok(())
    }
}

#[cfg(feature = "postgres")]
impl diesel::query_builder::Query for AccountsOnPostgres<'_> {
    type SqlType = (
        diesel::sql_types::Nullable<crate::db::PortableUuid>,
        diesel::sql_types::Nullable<crate::db::PortableUuid>,
    );
}

#[cfg(feature = "postgres")]
crate::fixed_text_statement!(AccountsOnPostgres);

/// The rows [`in_one_statement`] inserts, column by column.
#[cfg(feature = "postgres")]
#[derive(Default)]
struct Rows {
    inbox_ids: Vec<crate::db::DbUuid>,
    inbox_sources: Vec<&'static str>,
    inbox_bodies: Vec<String>,
    inbox_statuses: Vec<&'static str>,
    inbox_errors: Vec<Option<String>>,
    customer_ids: Vec<CustomerId>,
    customer_merchants: Vec<crate::kernel::MerchantId>,
    customer_pages: Vec<String>,
    customer_psids: Vec<String>,
    customer_channels: Vec<&'static str>,
    event_ids: Vec<crate::db::DbUuid>,
    event_inbox_ids: Vec<crate::db::DbUuid>,
    event_merchants: Vec<Option<crate::kernel::MerchantId>>,
    event_customers: Vec<Option<CustomerId>>,
    event_pages: Vec<String>,
    event_psids: Vec<String>,
    event_dedup_keys: Vec<String>,
    event_kinds: Vec<&'static str>,
    event_occurred_at: Vec<chrono::NaiveDateTime>,
    event_payloads: Vec<String>,
    event_statuses: Vec<&'static str>,
    event_channels: Vec<&'static str>,
    event_neutral: Vec<String>,
}

#[cfg(feature = "postgres")]
impl Rows {
    fn delivery(&mut self, id: Uuid, d: &Delivery) {
        use super::DeliveryStatus;
        self.inbox_ids.push(crate::db::DbUuid(id));
        self.inbox_sources.push(d.source);
        self.inbox_bodies.push(d.body.clone());
        let status = if d.parsed.is_ok() {
            DeliveryStatus::Done
        } else {
            DeliveryStatus::Dead
        };
        self.inbox_statuses.push(status.as_str());
        self.inbox_errors.push(d.parsed.as_ref().err().cloned());
    }

    fn customer(&mut self, id: CustomerId, merchant: crate::kernel::MerchantId, e: &Inbound) {
        self.customer_ids.push(id);
        self.customer_merchants.push(merchant);
        self.customer_pages.push(e.account.to_string());
        self.customer_psids.push(e.user.to_string());
        self.customer_channels.push(e.channel.as_str());
    }

    fn event(&mut self, row: super::inbox::EventRow, e: &Inbound) {
        self.event_ids.push(row.id);
        self.event_inbox_ids.push(row.inbox_id);
        self.event_merchants.push(row.merchant_id);
        self.event_customers.push(row.customer_id);
        self.event_pages.push(e.account.to_string());
        self.event_psids.push(e.user.to_string());
        self.event_dedup_keys.push(e.dedup_key.clone());
        self.event_kinds.push(e.kind.name());
        self.event_occurred_at.push(row.occurred_at);
        self.event_payloads.push(row.payload);
        self.event_statuses.push(row.status.as_str());
        self.event_channels.push(e.channel.as_str());
        self.event_neutral.push(row.neutral);
    }
}

/// [`in_one_statement`]'s statement: `WITH inbox AS (INSERT INTO webhook_inbox ... FROM unnest(...)),
/// shoppers AS (INSERT INTO customers ... FROM unnest(...)) INSERT INTO inbound_events ... FROM
/// unnest(...) ON CONFLICT (page_id, dedup_key) DO NOTHING RETURNING id`: the events stored (a
/// redelivered one is not). Its text never changes, so the connection prepares it once.
#[cfg(feature = "postgres")]
struct StoreOnPostgres<'a> {
    rows: &'a Rows,
    at: chrono::NaiveDateTime,
}

#[cfg(feature = "postgres")]
impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for StoreOnPostgres<'_> {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> diesel::QueryResult<()> {
        use diesel::sql_types::{Array, Nullable, Text, Timestamp};
        type Id = crate::db::PortableUuid;
        let r = self.rows;
        out.push_sql(
            "WITH inbox AS (INSERT INTO webhook_inbox (id, source, body, status, attempts, last_error, \
             received_at, processed_at) SELECT d.id, d.source, d.body, d.status, 0, d.last_error, ",
        );
        out.push_bind_param::<Timestamp, _>(&self.at)?;
        out.push_sql(", ");
        out.push_bind_param::<Timestamp, _>(&self.at)?;
        out.push_sql(" FROM unnest(");
        out.push_bind_param::<Array<Id>, _>(&r.inbox_ids)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&r.inbox_sources)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&r.inbox_bodies)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&r.inbox_statuses)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&r.inbox_errors)?;
        out.push_sql(
            ") AS d(id, source, body, status, last_error)), shoppers AS (INSERT INTO customers (id, \
             merchant_id, page_id, psid, created_at, channel) SELECT c.id, c.merchant_id, c.page_id, \
             c.psid, ",
        );
        out.push_bind_param::<Timestamp, _>(&self.at)?;
        out.push_sql(", c.channel FROM unnest(");
        out.push_bind_param::<Array<Id>, _>(&r.customer_ids)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Id>, _>(&r.customer_merchants)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&r.customer_pages)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&r.customer_psids)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&r.customer_channels)?;
        out.push_sql(
            ") AS c(id, merchant_id, page_id, psid, channel)) INSERT INTO inbound_events (id, inbox_id, \
             merchant_id, customer_id, page_id, psid, dedup_key, kind, occurred_at, payload, status, \
             attempts, next_attempt_at, created_at, channel, event) SELECT e.id, e.inbox_id, \
             e.merchant_id, e.customer_id, e.page_id, e.psid, e.dedup_key, e.kind, e.occurred_at, \
             e.payload, e.status, 0, ",
        );
        out.push_bind_param::<Timestamp, _>(&self.at)?;
        out.push_sql(", ");
        out.push_bind_param::<Timestamp, _>(&self.at)?;
        out.push_sql(", e.channel, e.event FROM unnest(");
        out.push_bind_param::<Array<Id>, _>(&r.event_ids)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Id>, _>(&r.event_inbox_ids)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Id>>, _>(&r.event_merchants)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Id>>, _>(&r.event_customers)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&r.event_pages)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&r.event_psids)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&r.event_dedup_keys)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&r.event_kinds)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Timestamp>, _>(&r.event_occurred_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&r.event_payloads)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&r.event_statuses)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&r.event_channels)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&r.event_neutral)?;
        out.push_sql(
            ") AS e(id, inbox_id, merchant_id, customer_id, page_id, psid, dedup_key, kind, occurred_at, \
             payload, status, channel, event) ON CONFLICT (page_id, dedup_key) DO NOTHING RETURNING id",
        );
        Ok(())
    }
}

#[cfg(feature = "postgres")]
impl diesel::query_builder::Query for StoreOnPostgres<'_> {
    type SqlType = crate::db::PortableUuid;
}

#[cfg(feature = "postgres")]
crate::fixed_text_statement!(StoreOnPostgres);
