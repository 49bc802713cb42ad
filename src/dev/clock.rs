//! The simulator's clock: "time passes" for one thread, by moving its recorded past back (the shopper's
//! last action, the window's end, a person's reply, its time in the queue and with its agent, the
//! cart's last change, the due times of its scheduled work). Everything that reads the thread then sees the same as after the wait: a cart
//! reminder falls due, the window closes. Dev mode and tests only; nothing else moves.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use crate::db::schema::{carts, scheduled_jobs, threads};
use crate::db::{DbConnection, DbUuid, write_transaction};
use crate::kernel::ThreadId;

/// The longest step the clock takes at once.
pub const MAX_STEP: Duration = Duration::days(30);

/// Moves `thread`'s past back by `by`, as if `by` had passed.
pub fn advance(conn: &mut DbConnection, thread: ThreadId, by: Duration) -> QueryResult<()> {
    let back = |t: Option<NaiveDateTime>| t.map(|t| t - by);
    write_transaction(conn, |conn| {
        type Times = (
            Option<NaiveDateTime>,
            Option<NaiveDateTime>,
            Option<NaiveDateTime>,
            Option<NaiveDateTime>,
            Option<NaiveDateTime>,
            Option<NaiveDateTime>,
        );
        let (last_inbound, window_ends, human_until, disclosed, queued, assigned): Times = threads::table
            .find(thread)
            .select((
                threads::last_inbound_at,
                threads::window_ends_at,
                threads::human_active_until,
                threads::disclosed_at,
                threads::queued_at,
                threads::assigned_at,
            ))
            .first(conn)?;
        diesel::update(threads::table.find(thread))
            .set((
                threads::last_inbound_at.eq(back(last_inbound)),
                threads::window_ends_at.eq(back(window_ends)),
                threads::human_active_until.eq(back(human_until)),
                threads::disclosed_at.eq(back(disclosed)),
                threads::queued_at.eq(back(queued)),
                threads::assigned_at.eq(back(assigned)),
            ))
            .execute(conn)?;
        let carts: Vec<(DbUuid, NaiveDateTime)> = carts::table
            .filter(carts::thread_id.eq(thread))
            .select((carts::id, carts::updated_at))
            .load(conn)?;
        for (id, updated) in carts {
            diesel::update(carts::table.find(id))
                .set(carts::updated_at.eq(updated - by))
                .execute(conn)?;
        }
        let jobs: Vec<(DbUuid, Option<NaiveDateTime>)> = scheduled_jobs::table
            .filter(scheduled_jobs::thread_id.eq(thread))
            .filter(scheduled_jobs::done_at.is_null())
            .select((scheduled_jobs::id, scheduled_jobs::due_at))
            .load(conn)?;
        for (id, due) in jobs {
            diesel::update(scheduled_jobs::table.find(id))
                .set(scheduled_jobs::due_at.eq(back(due)))
                .execute(conn)?;
        }
        Ok(())
    })
}

/// The thread of `psid` on the channel account `page_id`.
pub fn thread_of(conn: &mut DbConnection, page_id: &str, psid: &str) -> QueryResult<Option<ThreadId>> {
    use crate::db::schema::customers;
    threads::table
        .inner_join(customers::table.on(customers::id.eq(threads::customer_id)))
        .filter(threads::page_id.eq(page_id))
        .filter(customers::psid.eq(psid))
        .select(threads::id)
        .first(conn)
        .optional()
}

/// Moves the agent's last presence back by `by`, and their live connection's last word too when
/// `and_connection`, as if they had been silent that long (tests of `crate::agents::expire_presence`).
pub fn agent_silent_for(
    conn: &mut DbConnection,
    agent: uuid::Uuid,
    by: Duration,
    and_connection: bool,
) -> QueryResult<()> {
    use crate::db::schema::agents;
    let (presence_at, seen_at): (Option<NaiveDateTime>, Option<NaiveDateTime>) = agents::table
        .find(DbUuid(agent))
        .select((agents::presence_at, agents::seen_at))
        .first(conn)?;
    diesel::update(agents::table.find(DbUuid(agent)))
        .set((
            agents::presence_at.eq(presence_at.map(|t| t - by)),
            agents::seen_at.eq(if and_connection {
                seen_at.map(|t| t - by)
            } else {
                seen_at
            }),
        ))
        .execute(conn)?;
    Ok(())
}
