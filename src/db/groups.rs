//! Many callers' small pieces of database work done together: each caller hands its piece (a job) to
//! the group writers and waits for its own answer; a writer takes every job waiting at that moment (at
//! most `max`) and does them in one database call, usually one transaction, so one commit serves them
//! all. While a group is written the next one forms, so groups grow with the load and a lone job is
//! written at once (no wait is added).
//!
//! What a group's call does, and what it does when doing the jobs together fails (typically each job
//! alone, so one bad job never holds the others back), is the `write` function's: it answers one result
//! per job, in order.

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};

use super::{Db, DbConnection, DbError};

/// Jobs waiting for a writer before a caller waits for room.
const QUEUE: usize = 4096;

/// Why a job was not done.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    /// The database refused the job, or could not be reached.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The group's database call failed before any job was done.
    #[error("the group could not be written: {0}")]
    Group(String),
    /// The writers are gone (the server is stopping).
    #[error("the group writers stopped")]
    Stopped,
}

impl From<GroupError> for DbError {
    fn from(e: GroupError) -> DbError {
        match e {
            GroupError::Db(e) => e,
            other => DbError::Group(other.to_string()),
        }
    }
}

struct Job<J, R> {
    job: J,
    done: oneshot::Sender<Result<R, GroupError>>,
}

/// The handle callers hand their jobs through.
pub struct Groups<J, R> {
    queue: mpsc::Sender<Job<J, R>>,
}

impl<J, R> Clone for Groups<J, R> {
    fn clone(&self) -> Self {
        Groups {
            queue: self.queue.clone(),
        }
    }
}

impl<J: Send + 'static, R: Send + 'static> Groups<J, R> {
    /// Starts `writers` group writers on the current Tokio runtime, each writing up to `max` jobs at a
    /// time with `write` (named `what` in logs).
    pub fn start<F>(db: Db, writers: usize, max: usize, what: &'static str, write: F) -> Groups<J, R>
    where
        F: Fn(&mut DbConnection, &[J]) -> Vec<diesel::QueryResult<R>> + Send + Sync + 'static,
    {
        let (queue, waiting) = mpsc::channel(QUEUE);
        let waiting = Arc::new(Mutex::new(waiting));
        let write = Arc::new(write);
        for _ in 0..writers.max(1) {
            tokio::spawn(write_groups(
                db.clone(),
                waiting.clone(),
                max.max(1),
                what,
                write.clone(),
            ));
        }
        Groups { queue }
    }

    /// Does `job` with the others waiting: answers once its group's call has returned (committed).
    pub async fn submit(&self, job: J) -> Result<R, GroupError> {
        let (done, answer) = oneshot::channel();
        self.queue
            .send(Job { job, done })
            .await
            .map_err(|_| GroupError::Stopped)?;
        answer.await.map_err(|_| GroupError::Stopped)?
    }
}

/// Does a group's jobs with `write` all together, or, when that fails, each alone (so one bad job
/// never holds the others back): a result per job, in order. `write` answers one value per job given.
pub fn together_or_each_alone<J, R>(
    conn: &mut DbConnection,
    jobs: &[J],
    what: &'static str,
    write: impl Fn(&mut DbConnection, &[J]) -> diesel::QueryResult<Vec<R>>,
) -> Vec<diesel::QueryResult<R>> {
    match write(conn, jobs) {
        Ok(each) => each.into_iter().map(Ok).collect(),
        Err(e) if jobs.len() > 1 => {
            tracing::debug!(error = %e, jobs = jobs.len(), group = what, "a group failed together: each job is done alone");
            jobs.iter()
                .map(|job| {
                    write(conn, std::slice::from_ref(job))?
                        .pop()
                        .ok_or(diesel::result::Error::NotFound)
                })
                .collect()
        }
        Err(e) => vec![Err(e)],
    }
}

/// One writer: takes the jobs waiting (one writer at a time takes), writes them, answers each.
async fn write_groups<J, R, F>(
    db: Db,
    waiting: Arc<Mutex<mpsc::Receiver<Job<J, R>>>>,
    max: usize,
    what: &'static str,
    write: Arc<F>,
) where
    J: Send + 'static,
    R: Send + 'static,
    F: Fn(&mut DbConnection, &[J]) -> Vec<diesel::QueryResult<R>> + Send + Sync + 'static,
{
    loop {
        let group = {
            let mut waiting = waiting.lock().await;
            let Some(first) = waiting.recv().await else {
                return;
            };
            let mut group = vec![first];
            while group.len() < max {
                match waiting.try_recv() {
                    Ok(job) => group.push(job),
                    Err(_) => break,
                }
            }
            group
        };
        let (jobs, dones): (Vec<J>, Vec<_>) = group.into_iter().map(|j| (j.job, j.done)).unzip();
        let size = jobs.len();
        let write = write.clone();
        match db.query(move |conn| Ok(write(conn, &jobs))).await {
            Ok(results) => {
                for (done, result) in dones.into_iter().zip(results) {
                    // The caller may have gone (a request Meta gave up waiting for): nothing to answer.
                    let _ = done.send(result.map_err(|e| GroupError::Db(e.into())));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, jobs = size, group = what, "a group could not be written");
                let why = e.to_string();
                for done in dones {
                    let _ = done.send(Err(GroupError::Group(why.clone())));
                }
            }
        }
    }
}
