//! Acknowledging Meta's deliveries at the database's commit rate. The webhook hands each verified
//! delivery to the group writers ([`crate::db::groups`]) and answers Meta only once the delivery's
//! transaction has committed, so nothing is acknowledged before it is durable. A writer takes every
//! delivery waiting at that moment (at most [`MAX_GROUP`]) and stores them in one transaction: one commit
//! for all of them. A group whose transaction fails is written again one delivery at a time
//! ([`inbox::receive_delivery`], which falls back to storing the body whole for the split worker), so one
//! bad delivery never holds the others back.

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
