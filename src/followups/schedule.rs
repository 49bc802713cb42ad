//! Work due at a time, kept in the database so that it survives restarts and is done once across every
//! server process: a cart's reminder, a stay's reminder, an update held until the shopper writes.
//!
//! A job is one row of `scheduled_jobs`, unique per kind, subject and purpose (a cart is reminded once).
//! [`run_next_due`] takes the next due row with `FOR NO KEY UPDATE SKIP LOCKED` on PostgreSQL (on SQLite
//! its `BEGIN IMMEDIATE` transaction is the only writer), does the work and marks the row done in that
//! same transaction: a crash before the commit leaves the job due, and no two processes do it.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use uuid::Uuid;

use crate::db::schema::{scheduled_jobs, threads};
use crate::db::{DbConnection, DbUuid, write_transaction};
use crate::kernel::{MerchantId, ThreadId};

crate::text_state! {
    /// What a job does.
    JobKind {
        /// Remind a shopper of the cart they left (subject: the cart).
        CartReminder = "cart_reminder",
        /// Remind a guest of their stay the day before arrival (subject: the booking).
        BookingReminder = "booking_reminder",
        /// Send an update that could not go out when it was due (subject: the order or booking; the
        /// purpose says which update); due when the shopper writes again.
        HeldUpdate = "held_update",
    }
}

/// A job as the worker reads it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = scheduled_jobs)]
pub struct Job {
    /// Id.
    pub id: DbUuid,
    /// The merchant.
    pub merchant_id: MerchantId,
    /// What to do.
    pub kind: JobKind,
    /// What it is about: a cart, a booking, an order.
    pub subject_id: DbUuid,
    /// For held updates, which update (a `crate::followups::templates::Purpose`); empty otherwise.
    pub purpose: String,
    /// The shopper's thread, when known.
    pub thread_id: Option<ThreadId>,
    /// When it is due; none while it waits for the shopper.
    pub due_at: Option<NaiveDateTime>,
    /// Failed attempts so far.
    pub attempts: i32,
}

/// A job to plan.
#[derive(Debug, Clone, Copy)]
pub struct Plan<'a> {
    /// The merchant.
    pub merchant_id: MerchantId,
    /// What to do.
    pub kind: JobKind,
    /// What it is about.
    pub subject_id: Uuid,
    /// Which update, for held ones.
    pub purpose: &'a str,
    /// The thread.
    pub thread_id: Option<ThreadId>,
    /// When; none: when the shopper writes again.
    pub due_at: Option<NaiveDateTime>,
}

impl JobKind {
    /// Whether a job of this kind, once done, is never planned again: a cart is reminded once, a stay
    /// once; an update held a second time (another refund of the same order) is held again.
    fn once(self) -> bool {
        self != JobKind::HeldUpdate
    }
}

/// Plans a job, or moves the due time of the same job while it is not done yet. A job done stays done
/// when its kind is done [once](JobKind::once) (a cart is reminded once, whatever the shopper does
/// next); otherwise it is planned again.
pub fn plan(conn: &mut DbConnection, job: Plan<'_>) -> QueryResult<()> {
    let at = crate::db::now();
    let same = scheduled_jobs::table
        .filter(scheduled_jobs::kind.eq(job.kind))
        .filter(scheduled_jobs::subject_id.eq(DbUuid(job.subject_id)))
        .filter(scheduled_jobs::purpose.eq(job.purpose));
    let moved = if job.kind.once() {
        diesel::update(same.filter(scheduled_jobs::done_at.is_null()))
            .set((
                scheduled_jobs::due_at.eq(job.due_at),
                scheduled_jobs::updated_at.eq(at),
            ))
            .execute(conn)?
    } else {
        diesel::update(same)
            .set((
                scheduled_jobs::due_at.eq(job.due_at),
                scheduled_jobs::done_at.eq(None::<chrono::NaiveDateTime>),
                scheduled_jobs::outcome.eq(None::<String>),
                scheduled_jobs::attempts.eq(0),
                scheduled_jobs::thread_id.eq(job.thread_id),
                scheduled_jobs::updated_at.eq(at),
            ))
            .execute(conn)?
    };
    if moved > 0 {
        return Ok(());
    }
    // New, or done already (the insert then changes nothing).
    let insert = diesel::insert_into(scheduled_jobs::table)
        .values((
            scheduled_jobs::id.eq(DbUuid(Uuid::new_v4())),
            scheduled_jobs::merchant_id.eq(job.merchant_id),
            scheduled_jobs::kind.eq(job.kind),
            scheduled_jobs::subject_id.eq(DbUuid(job.subject_id)),
            scheduled_jobs::purpose.eq(job.purpose),
            scheduled_jobs::thread_id.eq(job.thread_id),
            scheduled_jobs::due_at.eq(job.due_at),
            scheduled_jobs::created_at.eq(at),
            scheduled_jobs::updated_at.eq(at),
        ))
        .on_conflict((
            scheduled_jobs::kind,
            scheduled_jobs::subject_id,
            scheduled_jobs::purpose,
        ))
        .do_nothing();
    crate::per_backend!(conn, |c| insert.execute(c))?;
    Ok(())
}

/// The updates held on `thread` become due at `at` (its shopper wrote): one statement, and the thread
/// no longer says it holds any.
pub fn release_held(conn: &mut DbConnection, thread: ThreadId, at: NaiveDateTime) -> QueryResult<usize> {
    let released = diesel::update(
        scheduled_jobs::table
            .filter(scheduled_jobs::thread_id.eq(thread))
            .filter(scheduled_jobs::kind.eq(JobKind::HeldUpdate))
            .filter(scheduled_jobs::done_at.is_null())
            .filter(scheduled_jobs::due_at.is_null()),
    )
    .set((scheduled_jobs::due_at.eq(at), scheduled_jobs::updated_at.eq(at)))
    .execute(conn)?;
    diesel::update(threads::table.find(thread))
        .set(threads::has_held.eq(false))
        .execute(conn)?;
    Ok(released)
}

/// Marks `thread` as holding updates until its shopper writes.
pub fn mark_holding(conn: &mut DbConnection, thread: ThreadId) -> QueryResult<()> {
    diesel::update(threads::table.find(thread))
        .set(threads::has_held.eq(true))
        .execute(conn)?;
    Ok(())
}

/// What became of a job's work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Done, with what happened (`sent`, `template`, `window_closed` ...).
    Done(&'static str),
    /// Not yet: due again then (none: when the shopper writes).
    Later(Option<NaiveDateTime>),
}

/// A job the worker finished.
#[derive(Debug, Clone)]
pub struct Ran {
    /// The job.
    pub job: Job,
    /// What became of it.
    pub step: Step,
}

/// Why a job's work failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
    /// The messages could not be built (an amount out of range).
    #[error(transparent)]
    Engine(#[from] crate::engine::Error),
    /// No connection could be had.
    #[error(transparent)]
    Store(#[from] crate::db::DbError),
}

/// A job whose work failed: it is tried again later, and set aside after [`MAX_ATTEMPTS`].
#[derive(Debug, thiserror::Error)]
#[error("{kind} job {} failed: {error}", id.0)]
pub struct JobFailed {
    /// The job.
    pub id: DbUuid,
    /// Its kind.
    pub kind: JobKind,
    /// Failed attempts before this one.
    pub attempts: i32,
    /// What failed.
    pub error: JobError,
}

/// Attempts before a failing job is set aside (`outcome` = `failed`).
pub const MAX_ATTEMPTS: i32 = 5;

enum Failure {
    Db(diesel::result::Error),
    Job(Box<JobFailed>),
}

impl From<diesel::result::Error> for Failure {
    fn from(e: diesel::result::Error) -> Self {
        Failure::Db(e)
    }
}

/// Takes the next job due at `at` that no other process is doing, does it with `work` and records what
/// became of it, all in one write transaction. `None` when nothing is due. When `work` fails, its
/// changes are undone and the job is tried again later (`Err(JobFailed)` after that is recorded).
pub fn run_next_due(
    conn: &mut DbConnection,
    at: NaiveDateTime,
    work: impl FnOnce(&mut DbConnection, &Job) -> Result<Step, JobError>,
) -> Result<Option<Ran>, JobError> {
    let outcome = write_transaction(conn, |conn| {
        let due = crate::first_skip_locked!(
            conn,
            scheduled_jobs::table
                .filter(scheduled_jobs::done_at.is_null())
                .filter(scheduled_jobs::due_at.le(at))
                .order(scheduled_jobs::due_at.asc())
                .select(Job::as_select())
        )?;
        let Some(job) = due else {
            return Ok(None);
        };
        let step = work(conn, &job).map_err(|error| {
            Failure::Job(Box::new(JobFailed {
                id: job.id,
                kind: job.kind,
                attempts: job.attempts,
                error,
            }))
        })?;
        finish(conn, &job, &step, at)?;
        Ok(Some(Ran { job, step }))
    });
    match outcome {
        Ok(ran) => Ok(ran),
        Err(Failure::Db(e)) => Err(e.into()),
        Err(Failure::Job(failed)) => {
            postpone_failed(conn, &failed, at)?;
            Err(failed.error)
        }
    }
}

fn finish(conn: &mut DbConnection, job: &Job, step: &Step, at: NaiveDateTime) -> QueryResult<()> {
    let row = scheduled_jobs::table.find(job.id);
    match step {
        Step::Done(outcome) => diesel::update(row)
            .set((
                scheduled_jobs::done_at.eq(at),
                scheduled_jobs::outcome.eq(*outcome),
                scheduled_jobs::updated_at.eq(at),
            ))
            .execute(conn)?,
        Step::Later(due) => diesel::update(row)
            .set((scheduled_jobs::due_at.eq(due), scheduled_jobs::updated_at.eq(at)))
            .execute(conn)?,
    };
    if let (Step::Later(None), Some(thread)) = (step, job.thread_id) {
        mark_holding(conn, thread)?;
    }
    Ok(())
}

/// A failed job is due again after a backoff, or set aside after its last attempt.
fn postpone_failed(conn: &mut DbConnection, failed: &JobFailed, at: NaiveDateTime) -> QueryResult<()> {
    let attempts = failed.attempts + 1;
    let row = scheduled_jobs::table.find(failed.id);
    if attempts >= MAX_ATTEMPTS {
        tracing::error!(job.id = %failed.id.0, kind = %failed.kind, error = %failed.error, "a scheduled job failed for the last time: set aside");
        diesel::update(row)
            .set((
                scheduled_jobs::attempts.eq(attempts),
                scheduled_jobs::done_at.eq(at),
                scheduled_jobs::outcome.eq("failed"),
                scheduled_jobs::updated_at.eq(at),
            ))
            .execute(conn)?;
    } else {
        let due = at + chrono::Duration::seconds(30 * (1 << attempts));
        diesel::update(row)
            .set((
                scheduled_jobs::attempts.eq(attempts),
                scheduled_jobs::due_at.eq(due),
                scheduled_jobs::updated_at.eq(at),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// What became of the job of `kind` about `subject`: its outcome once done, `pending` before, none
/// when there is no such job.
pub fn outcome_of(
    conn: &mut DbConnection,
    kind: JobKind,
    subject: Uuid,
) -> QueryResult<Option<(String, Option<NaiveDateTime>)>> {
    let row: Option<(Option<String>, Option<NaiveDateTime>)> = scheduled_jobs::table
        .filter(scheduled_jobs::kind.eq(kind))
        .filter(scheduled_jobs::subject_id.eq(DbUuid(subject)))
        .select((scheduled_jobs::outcome, scheduled_jobs::done_at))
        .first(conn)
        .optional()?;
    Ok(row.map(|(outcome, done_at)| (outcome.unwrap_or_else(|| "pending".into()), done_at)))
}
