//! The queue in the database: a thread handed to a person waits (`queued_at`) until routing gives it to
//! an agent (`assigned_agent_id`, `assigned_at`, `routing_reason`); it goes back to the queue when its
//! agent goes offline, is removed, or does not answer in time, and leaves it when handed back to the bot.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use uuid::Uuid;

use serde_json::json;

use super::{Agent, Assignment, Waiting, assign};
use std::collections::HashMap;

use crate::carts::CartStatus;
use crate::db::schema::{
    bookables, bookings, cart_lines, carts, customers, merchants, messages, orders, products, threads,
    touches, variants,
};
use crate::db::{DbConnection, DbUuid};
use crate::events::{self, Audience, EventKind};
use crate::kernel::{Labels, MerchantId, ThreadId};

/// The most waiting threads one routing pass reads per merchant.
const MAX_WAITING: i64 = 500;

/// The thread waits for a person from `at` (unless it already does).
pub fn enqueue(conn: &mut DbConnection, thread: ThreadId, at: NaiveDateTime) -> QueryResult<()> {
    let queued = diesel::update(threads::table.find(thread).filter(threads::queued_at.is_null()))
        .set(threads::queued_at.eq(at))
        .execute(conn)?;
    if queued > 0 {
        let t = crate::conversations::get_thread(conn, thread)?;
        events::of_thread(conn, &t, EventKind::ThreadQueued, &json!({"thread_id": thread}))?;
    }
    Ok(())
}

/// The thread went back to the bot: out of the queue, no agent.
pub fn dequeue(conn: &mut DbConnection, thread: ThreadId) -> QueryResult<()> {
    let before = crate::conversations::get_thread(conn, thread)?;
    if before.queued_at.is_none() {
        return Ok(());
    }
    let none: Option<NaiveDateTime> = None;
    let nobody: Option<DbUuid> = None;
    diesel::update(threads::table.find(thread))
        .set((
            threads::queued_at.eq(none),
            threads::assigned_agent_id.eq(nobody),
            threads::assigned_at.eq(none),
            threads::routing_reason.eq(None::<String>),
            threads::passed_over_agent_id.eq(nobody),
            threads::place_told_at.eq(none),
            // What rules decided was for this wait; the thread's labels stay.
            threads::priority.eq(0),
            threads::skill.eq(None::<String>),
            threads::rule_id.eq(nobody),
        ))
        .execute(conn)?;
    released(conn, &before, "back_to_bot")
}

/// Tells the feed that `thread` left its agent or the queue, and why.
fn released(conn: &mut DbConnection, thread: &crate::conversations::Thread, why: &str) -> QueryResult<()> {
    events::record(
        conn,
        thread.merchant_id,
        EventKind::ThreadReleased,
        Some(thread.id),
        Audience::Agents,
        &json!({"thread_id": thread.id, "agent_id": thread.assigned_agent_id.map(|a| a.0), "reason": why}),
    )
}

/// The agent's threads go back to the queue, where they keep their place.
pub fn release_agent(conn: &mut DbConnection, agent: Uuid, _at: NaiveDateTime) -> QueryResult<usize> {
    let theirs: Vec<ThreadId> = threads::table
        .filter(threads::assigned_agent_id.eq(DbUuid(agent)))
        .select(threads::id)
        .load(conn)?;
    let none: Option<NaiveDateTime> = None;
    let nobody: Option<DbUuid> = None;
    for thread in &theirs {
        let before = crate::conversations::get_thread(conn, *thread)?;
        diesel::update(threads::table.find(*thread))
            .set((
                threads::assigned_agent_id.eq(nobody),
                threads::assigned_at.eq(none),
                threads::routing_reason.eq(None::<String>),
            ))
            .execute(conn)?;
        released(conn, &before, "agent_left")?;
    }
    Ok(theirs.len())
}

/// Threads whose agent has not written to the shopper within the merchant's `agent_answer_minutes`
/// of being given them go back to the queue, not to be given to that agent again; answers how many.
pub fn release_silent(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    minutes: i32,
    at: NaiveDateTime,
) -> QueryResult<usize> {
    let before = at - chrono::Duration::minutes(i64::from(minutes.max(1)));
    let assigned: Vec<(ThreadId, Option<DbUuid>, Option<NaiveDateTime>)> = threads::table
        .filter(threads::merchant_id.eq(merchant_id))
        .filter(threads::assigned_agent_id.is_not_null())
        .filter(threads::assigned_at.le(before))
        .select((threads::id, threads::assigned_agent_id, threads::assigned_at))
        .limit(MAX_WAITING)
        .load(conn)?;
    let mut released = 0;
    for (thread, agent, since) in assigned {
        let (Some(agent), Some(since)) = (agent, since) else {
            continue;
        };
        let answered = diesel::select(diesel::dsl::exists(
            messages::table
                .filter(messages::thread_id.eq(thread))
                .filter(messages::author.eq("agent"))
                .filter(messages::occurred_at.ge(since)),
        ))
        .get_result::<bool>(conn)?;
        if answered {
            continue;
        }
        let none: Option<NaiveDateTime> = None;
        released += diesel::update(
            threads::table
                .find(thread)
                .filter(threads::assigned_agent_id.eq(agent)),
        )
        .set((
            threads::assigned_agent_id.eq(None::<DbUuid>),
            threads::assigned_at.eq(none),
            threads::routing_reason.eq(None::<String>),
            threads::passed_over_agent_id.eq(Some(agent)),
        ))
        .execute(conn)?;
        events::record(
            conn,
            merchant_id,
            EventKind::ThreadReleased,
            Some(thread),
            Audience::Agents,
            &json!({"thread_id": thread, "agent_id": agent.0, "reason": "no_answer"}),
        )?;
        tracing::info!(thread.id = %thread, agent.id = %agent.0, "the agent did not answer in time: the thread goes to the next");
    }
    Ok(released)
}

/// A waiting thread as read: its id, since when, the agent passed over, the shopper's locale, the
/// rules' priority, skill and labels.
type WaitingRow = (
    ThreadId,
    Option<NaiveDateTime>,
    Option<DbUuid>,
    Option<String>,
    i32,
    Option<String>,
    String,
);

/// The merchant's threads waiting for a person, as routing sees them.
fn waiting(conn: &mut DbConnection, merchant_id: MerchantId) -> QueryResult<Vec<Waiting>> {
    let rows: Vec<WaitingRow> = threads::table
        .inner_join(customers::table.on(customers::id.eq(threads::customer_id)))
        .filter(threads::merchant_id.eq(merchant_id))
        .filter(threads::queued_at.is_not_null())
        .filter(threads::assigned_agent_id.is_null())
        .order(threads::queued_at.asc())
        .limit(MAX_WAITING)
        .select((
            threads::id,
            threads::queued_at,
            threads::passed_over_agent_id,
            customers::locale,
            threads::priority,
            threads::skill,
            threads::labels,
        ))
        .load(conn)?;
    let vip_from: i32 = merchants::table
        .find(merchant_id)
        .select(merchants::vip_paid_orders)
        .first(conn)?;
    let vips = if vip_from > 0 && !rows.is_empty() {
        paid_orders(conn, rows.iter().map(|r| r.0).collect())?
            .into_iter()
            .filter(|(_, n)| *n >= i64::from(vip_from))
            .map(|(t, _)| t)
            .collect()
    } else {
        Vec::new()
    };
    let mut about = if rows.is_empty() {
        HashMap::new()
    } else {
        about(conn, merchant_id, &rows.iter().map(|r| r.0).collect::<Vec<_>>())?
    };
    Ok(rows
        .into_iter()
        .filter_map(
            |(thread, queued_at, passed_over, locale, priority, skill, tagged)| {
                // What the thread is about, and the labels rules put on it.
                let labels = Labels::from_stored(&tagged)
                    .unwrap_or_default()
                    .union(&about.remove(&thread).unwrap_or_default())
                    .into_vec();
                Some(Waiting {
                    thread,
                    language: locale.as_deref().and_then(language_of),
                    labels,
                    skill,
                    priority,
                    vip: vips.contains(&thread),
                    queued_at: queued_at?,
                    passed_over: passed_over.map(|a| a.0),
                })
            },
        )
        .collect())
}

/// What each of these threads is about, as labels: those of the product its latest ad or link named,
/// of the products and rooms in its open cart, and of the room it was asked dates for.
pub fn about(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    threads: &[ThreadId],
) -> QueryResult<HashMap<ThreadId, Vec<String>>> {
    let heads: Vec<(ThreadId, Option<String>, Option<DbUuid>)> = threads::table
        .left_join(touches::table.on(threads::latest_touch_id.eq(touches::id.nullable())))
        .filter(threads::id.eq_any(threads))
        .select((
            threads::id,
            touches::product_id.nullable(),
            threads::stay_bookable_id,
        ))
        .load(conn)?;
    let lines: Vec<(ThreadId, Option<DbUuid>, Option<DbUuid>)> = carts::table
        .inner_join(cart_lines::table)
        .filter(carts::thread_id.eq_any(threads))
        .filter(carts::status.eq(CartStatus::Open))
        .select((carts::thread_id, cart_lines::product_id, cart_lines::booking_id))
        .load(conn)?;
    let retailer_ids: Vec<&String> = heads.iter().filter_map(|h| h.1.as_ref()).collect();
    // An ad's item may be a variant's SKU: its product is meant.
    let by_sku: Vec<(String, DbUuid)> = if retailer_ids.is_empty() {
        Vec::new()
    } else {
        variants::table
            .filter(variants::merchant_id.eq(merchant_id))
            .filter(variants::sku.eq_any(&retailer_ids))
            .select((variants::sku, variants::product_id))
            .load(conn)?
    };
    let mut product_ids: Vec<DbUuid> = lines.iter().filter_map(|l| l.1).collect();
    product_ids.extend(by_sku.iter().map(|(_, p)| *p));
    let products: Vec<(DbUuid, String, String)> = if retailer_ids.is_empty() && product_ids.is_empty() {
        Vec::new()
    } else {
        products::table
            .filter(products::merchant_id.eq(merchant_id))
            .filter(
                products::retailer_id
                    .eq_any(retailer_ids)
                    .or(products::id.eq_any(&product_ids)),
            )
            .select((products::id, products::retailer_id, products::labels))
            .load(conn)?
    };
    let booking_ids: Vec<DbUuid> = lines.iter().filter_map(|l| l.2).collect();
    let booked: Vec<(DbUuid, DbUuid)> = if booking_ids.is_empty() {
        Vec::new()
    } else {
        bookings::table
            .filter(bookings::id.eq_any(&booking_ids))
            .select((bookings::id, bookings::bookable_id))
            .load(conn)?
    };
    let room_ids: Vec<DbUuid> = heads
        .iter()
        .filter_map(|h| h.2)
        .chain(booked.iter().map(|b| b.1))
        .collect();
    let rooms: Vec<(DbUuid, String)> = if room_ids.is_empty() {
        Vec::new()
    } else {
        bookables::table
            .filter(bookables::merchant_id.eq(merchant_id))
            .filter(bookables::id.eq_any(&room_ids))
            .select((bookables::id, bookables::labels))
            .load(conn)?
    };
    let labels_of = |stored: &str| Labels::from_stored(stored).unwrap_or_default().into_vec();
    let room_labels = |room: DbUuid| {
        rooms
            .iter()
            .find(|r| r.0 == room)
            .map(|r| labels_of(&r.1))
            .unwrap_or_default()
    };
    let mut about: HashMap<ThreadId, Labels> = HashMap::new();
    let mut add = |thread: ThreadId, more: Vec<String>| {
        let entry = about.entry(thread).or_default();
        *entry = entry.union(&more);
    };
    for (thread, retailer_id, room) in &heads {
        let via_sku = by_sku
            .iter()
            .find(|(sku, _)| Some(sku) == retailer_id.as_ref())
            .map(|(_, p)| *p);
        if let Some(p) = products
            .iter()
            .find(|p| Some(&p.1) == retailer_id.as_ref() || Some(p.0) == via_sku)
        {
            add(*thread, labels_of(&p.2));
        }
        if let Some(room) = room {
            add(*thread, room_labels(*room));
        }
    }
    for (thread, product, booking) in &lines {
        if let Some(p) = products.iter().find(|p| Some(p.0) == *product) {
            add(*thread, labels_of(&p.2));
        }
        if let Some(b) = booked.iter().find(|b| Some(b.0) == *booking) {
            add(*thread, room_labels(b.1));
        }
    }
    Ok(about.into_iter().map(|(t, l)| (t, l.into_vec())).collect())
}

/// The paid orders of each of these threads' shoppers (threads without any are left out).
pub fn paid_orders(conn: &mut DbConnection, threads: Vec<ThreadId>) -> QueryResult<Vec<(ThreadId, i64)>> {
    use diesel::dsl::count_star;
    let counts: Vec<(Option<ThreadId>, i64)> = orders::table
        .filter(orders::thread_id.eq_any(threads))
        .filter(orders::paid_at.is_not_null())
        .group_by(orders::thread_id)
        .select((orders::thread_id, count_star()))
        .load(conn)?;
    Ok(counts.into_iter().filter_map(|(t, n)| Some((t?, n))).collect())
}

/// The two-letter language of a Messenger locale (`fr_FR` → `fr`).
fn language_of(locale: &str) -> Option<String> {
    let language = locale.split(['_', '-']).next()?.to_ascii_lowercase();
    crate::conversations::disclosure::is_language(&language).then_some(language)
}

/// From this place in the queue (two shoppers ahead), a waiting shopper is told their place, once.
pub const LONG_WAIT_PLACE: usize = 3;

/// What a routing pass did.
#[derive(Debug, Default)]
pub struct Pass {
    /// Threads given to agents.
    pub given: Vec<Assignment>,
    /// Threads whose shopper was told their place in the queue (replies queued).
    pub told: Vec<ThreadId>,
}

/// Gives the merchant's waiting threads to their agents with room (see [`assign`]), then tells each
/// shopper still waiting at [`LONG_WAIT_PLACE`] or further their place, once per wait (inside the
/// channel's window). Each assignment only takes a thread still waiting.
pub fn route(conn: &mut DbConnection, merchant_id: MerchantId, at: NaiveDateTime) -> QueryResult<Pass> {
    let queue = waiting(conn, merchant_id)?;
    if queue.is_empty() {
        return Ok(Pass::default());
    }
    lock_agents(conn, merchant_id)?;
    let agents: Vec<Agent> = crate::agents::all(conn, merchant_id)?
        .into_iter()
        .map(|a| Agent {
            id: a.id,
            languages: a.languages,
            skills: a.skills,
            presence: a.presence,
            open_threads: a.open_threads,
            max_threads: a.max_threads,
        })
        .collect();
    let mut given = Vec::new();
    for a in assign(&queue, &agents) {
        let taken = diesel::update(
            threads::table
                .find(a.thread)
                .filter(threads::assigned_agent_id.is_null())
                .filter(threads::queued_at.is_not_null()),
        )
        .set((
            threads::assigned_agent_id.eq(Some(DbUuid(a.agent))),
            threads::assigned_at.eq(at),
            threads::routing_reason.eq(a.reason.as_str()),
        ))
        .execute(conn)?;
        if taken == 1 {
            tracing::info!(thread.id = %a.thread, agent.id = %a.agent, reason = a.reason.as_str(), "thread assigned");
            events::record(
                conn,
                merchant_id,
                EventKind::ThreadAssigned,
                Some(a.thread),
                Audience::Agents,
                &json!({"thread_id": a.thread, "agent_id": a.agent, "reason": a.reason.as_str()}),
            )?;
            given.push(a);
        }
    }
    let still: Vec<Waiting> = queue
        .into_iter()
        .filter(|w| !given.iter().any(|g| g.thread == w.thread))
        .collect();
    let far: Vec<(ThreadId, usize)> = super::positions(&still)
        .into_iter()
        .filter(|(_, place)| *place >= LONG_WAIT_PLACE)
        .collect();
    let told = tell_places(conn, &far, at)?;
    Ok(Pass { given, told })
}

/// Tells each of these waiting shoppers not told yet in this wait their place in the queue.
fn tell_places(
    conn: &mut DbConnection,
    far: &[(ThreadId, usize)],
    at: NaiveDateTime,
) -> QueryResult<Vec<ThreadId>> {
    if far.is_empty() {
        return Ok(Vec::new());
    }
    let untold: Vec<ThreadId> = threads::table
        .filter(threads::id.eq_any(far.iter().map(|f| f.0)))
        .filter(threads::place_told_at.is_null())
        .select(threads::id)
        .load(conn)?;
    let mut told = Vec::new();
    for (thread_id, place) in far.iter().filter(|f| untold.contains(&f.0)) {
        let thread = crate::conversations::get_thread(conn, *thread_id)?;
        diesel::update(threads::table.find(*thread_id))
            .set(threads::place_told_at.eq(at))
            .execute(conn)?;
        if !thread.window_open(at) {
            continue;
        }
        let customer = crate::conversations::customer(conn, thread.customer_id)?;
        let text = format!(
            "You are number {place} in line: a person from our team will answer you here as soon as they can."
        );
        crate::conversations::outbox::enqueue_replies(
            conn,
            &thread,
            &customer.psid,
            false,
            &crate::engine::reply::Reply::text(&text),
        )?;
        told.push(*thread_id);
    }
    Ok(told)
}

/// An agent wrote to a thread waiting in the queue: it is theirs now (reason `taken`).
pub fn take(conn: &mut DbConnection, thread: ThreadId, agent: Uuid, at: NaiveDateTime) -> QueryResult<bool> {
    let taken = diesel::update(
        threads::table
            .find(thread)
            .filter(threads::assigned_agent_id.is_null())
            .filter(threads::queued_at.is_not_null()),
    )
    .set((
        threads::assigned_agent_id.eq(Some(DbUuid(agent))),
        threads::assigned_at.eq(at),
        threads::routing_reason.eq("taken"),
    ))
    .execute(conn)?;
    if taken == 1 {
        let t = crate::conversations::get_thread(conn, thread)?;
        events::record(
            conn,
            t.merchant_id,
            EventKind::ThreadAssigned,
            Some(thread),
            Audience::Agents,
            &json!({"thread_id": thread, "agent_id": agent, "reason": "taken"}),
        )?;
    }
    Ok(taken == 1)
}

/// Holds the merchant's agents' rows for the rest of the transaction, so that two processes routing the
/// same merchant take turns and never count an agent's room twice (PostgreSQL; on SQLite the write
/// transaction is the only writer already).
#[cfg_attr(not(feature = "postgres"), allow(unused_variables))]
fn lock_agents(conn: &mut DbConnection, merchant_id: MerchantId) -> QueryResult<()> {
    match conn {
        #[cfg(feature = "postgres")]
        DbConnection::Postgres(c) => {
            crate::db::schema::agents::table
                .filter(crate::db::schema::agents::merchant_id.eq(merchant_id))
                .select(crate::db::schema::agents::id)
                .for_update()
                .load::<DbUuid>(c)?;
        }
        DbConnection::Sqlite(_) => {}
    }
    Ok(())
}

/// Where the thread stands in its merchant's queue (1 is next); none when it does not wait.
pub fn queue_position(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    thread: ThreadId,
) -> QueryResult<Option<usize>> {
    let queue = waiting(conn, merchant_id)?;
    Ok(super::positions(&queue)
        .into_iter()
        .find(|(t, _)| *t == thread)
        .map(|(_, p)| p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_locale_gives_its_language() {
        assert_eq!(language_of("fr_FR").as_deref(), Some("fr"));
        assert_eq!(language_of("en-GB").as_deref(), Some("en"));
        assert_eq!(language_of("zzz"), None);
    }
}
