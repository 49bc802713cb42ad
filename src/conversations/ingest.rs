//! Acknowledging Meta's deliveries at the database's commit rate. The webhook hands each verified
//! delivery to the group writers and answers Meta only once the delivery's transaction has committed,
//! so nothing is acknowledged before it is durable. A writer takes every delivery waiting at that moment
//! (at most [`MAX_GROUP`]) and stores them in one transaction: one commit for all of them. While a group
//! commits the next one forms, so groups grow with the load and a lone delivery is written at once (no
//! wait is added). A group whose transaction fails is written again one delivery at a time
//! ([`inbox::receive_delivery`], which falls back to storing the body whole for the split worker), so one
//! bad delivery never holds the others back.

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};
use uuid::Uuid;

use super::event::Inbound;
use super::inbox;
use crate::db::{Db, DbConnection, DbError, write_transaction};
use crate::followups::templates::{self, StatusChange};
use crate::kernel::CustomerId;

/// The most deliveries one transaction stores.
pub const MAX_GROUP: usize = 64;
/// Deliveries waiting for a writer before the webhook waits for room.
const QUEUE: usize = 4096;

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
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The database refused or could not be reached.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The database call of the delivery's group failed before any delivery was written.
    #[error("the group of deliveries could not be written: {0}")]
    Group(String),
    /// The writers are gone (the server is stopping).
    #[error("the delivery writers stopped")]
    Stopped,
}

struct Job {
    delivery: Delivery,
    done: oneshot::Sender<Result<Stored, IngestError>>,
}

/// The handle the webhook stores deliveries through.
#[derive(Clone)]
pub struct Ingest {
    queue: mpsc::Sender<Job>,
}

impl Ingest {
    /// Starts `writers` group writers on the current Tokio runtime.
    pub fn start(db: Db, writers: usize) -> Ingest {
        let (queue, waiting) = mpsc::channel(QUEUE);
        let waiting = Arc::new(Mutex::new(waiting));
        for _ in 0..writers.max(1) {
            tokio::spawn(write_groups(db.clone(), waiting.clone()));
        }
        Ingest { queue }
    }

    /// Stores `delivery` durably: answers once its transaction has committed.
    pub async fn store(&self, delivery: Delivery) -> Result<Stored, IngestError> {
        let (done, answer) = oneshot::channel();
        self.queue
            .send(Job { delivery, done })
            .await
            .map_err(|_| IngestError::Stopped)?;
        answer.await.map_err(|_| IngestError::Stopped)?
    }
}

/// One writer: takes the deliveries waiting (one writer at a time takes), writes them, answers each.
async fn write_groups(db: Db, waiting: Arc<Mutex<mpsc::Receiver<Job>>>) {
    loop {
        let group = {
            let mut waiting = waiting.lock().await;
            let Some(first) = waiting.recv().await else {
                return;
            };
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match waiting.try_recv() {
                    Ok(job) => group.push(job),
                    Err(_) => break,
                }
            }
            group
        };
        let (deliveries, dones): (Vec<Delivery>, Vec<_>) =
            group.into_iter().map(|j| (j.delivery, j.done)).unzip();
        let size = deliveries.len();
        match db.query(move |conn| Ok(write_group(conn, &deliveries))).await {
            Ok(results) => {
                for (done, result) in dones.into_iter().zip(results) {
                    // The request may have gone (Meta gave up waiting): it delivers again, and the
                    // stored copy is recognised then.
                    let _ = done.send(result.map_err(|e| IngestError::Db(e.into())));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, deliveries = size, "a group of deliveries could not be written");
                let why = e.to_string();
                for done in dones {
                    let _ = done.send(Err(IngestError::Group(why.clone())));
                }
            }
        }
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
