//! The inbox workers: deliveries into events, then each shopper's events into effects.

use std::sync::Arc;

use futures_util::StreamExt;
use tokio::sync::watch;

use super::{WorkerContext, backoff, idle};
use crate::channels::meta::webhook;
use crate::conversations;
use crate::conversations::inbox::{self as inbound, Applied, Policy};
use crate::db::groups::{Groups, together_or_each_alone};
use crate::db::{DbConnection, DbError, DbUuid, now, write_transaction};
use crate::kernel::{CustomerId, PageId, Psid};

/// Splits stored deliveries into events.
pub(super) async fn split_loop(ctx: Arc<WorkerContext>, mut stopped: watch::Receiver<bool>) {
    loop {
        match split_some(&ctx).await {
            Ok(0) => {
                if !idle(&ctx.wakers.inbox, &mut stopped).await {
                    return;
                }
            }
            Ok(_) => ctx.wakers.events.wake(),
            Err(e) => {
                tracing::error!(error = %e, "inbox split failed");
                if !idle(&ctx.wakers.inbox, &mut stopped).await {
                    return;
                }
            }
        }
        if *stopped.borrow() {
            return;
        }
    }
}

async fn split_some(ctx: &WorkerContext) -> Result<usize, DbError> {
    let batch = i64::try_from(ctx.config.worker_concurrency * 16).unwrap_or(64);
    let deliveries = ctx
        .db
        .query(move |conn| inbound::pending_deliveries(conn, "messenger", batch))
        .await?;
    if deliveries.is_empty() {
        return Ok(0);
    }
    let handled = deliveries.len();
    // Deliveries that share no shopper are split side by side; those that do stay in arrival order, so a
    // shopper's events are stored in the order Meta sent them.
    let chains = by_shopper(deliveries);
    let results: Vec<Result<(), DbError>> = futures_util::stream::iter(chains)
        .map(|chain| split_chain(ctx, chain))
        .buffer_unordered(ctx.config.worker_concurrency)
        .collect()
        .await;
    results.into_iter().collect::<Result<(), DbError>>()?;
    Ok(handled)
}

/// Groups deliveries (kept in arrival order) into chains such that two deliveries naming the same shopper
/// are in the same chain; a delivery that cannot be read is a chain of its own.
fn by_shopper(deliveries: Vec<(DbUuid, String)>) -> Vec<Vec<(DbUuid, String)>> {
    use std::collections::HashMap;
    let mut chains: Vec<Vec<(DbUuid, String)>> = Vec::new();
    let mut chain_of: HashMap<(PageId, Psid), usize> = HashMap::new();
    for (id, body) in deliveries {
        let shoppers: Vec<(PageId, Psid)> = webhook::parse(body.as_bytes())
            .map(|events| events.into_iter().map(|e| (e.account, e.user)).collect())
            .unwrap_or_default();
        let mut joined: Vec<usize> = shoppers.iter().filter_map(|s| chain_of.get(s).copied()).collect();
        joined.sort_unstable();
        joined.dedup();
        let target = match joined.split_first() {
            None => {
                chains.push(Vec::new());
                chains.len() - 1
            }
            Some((&first, rest)) => {
                // The delivery links several chains: they become one, in arrival order.
                for &other in rest.iter().rev() {
                    let moved = std::mem::take(&mut chains[other]);
                    chains[first].extend(moved);
                    for index in chain_of.values_mut() {
                        if *index == other {
                            *index = first;
                        }
                    }
                }
                chains[first].sort_by_key(|(id, _)| *id);
                first
            }
        };
        chains[target].push((id, body));
        for shopper in shoppers {
            chain_of.insert(shopper, target);
        }
    }
    chains.retain(|c| !c.is_empty());
    chains
}

/// Splits a chain's deliveries one after the other.
async fn split_chain(ctx: &WorkerContext, chain: Vec<(DbUuid, String)>) -> Result<(), DbError> {
    for (id, body) in chain {
        let result = ctx
            .db
            .query(move |conn| {
                let parsed = webhook::parse(body.as_bytes()).map_err(|e| e.to_string());
                match inbound::split_delivery(conn, id, &parsed) {
                    Ok(n) => Ok(Ok(n)),
                    Err(e) => inbound::delivery_failed(conn, id, &e.to_string()).map(|()| Err(e)),
                }
            })
            .await?;
        match result {
            Ok(n) => tracing::debug!(inbox.id = %id.0, events.stored = n, "delivery split"),
            Err(e) => tracing::warn!(inbox.id = %id.0, error = %e, "delivery split failed; will retry"),
        }
    }
    ctx.wakers.events.wake();
    Ok(())
}

/// The most shoppers whose turns one transaction takes.
const TURNS_PER_GROUP: usize = 16;

/// Shoppers in work per `THREADCART_WORKER_CONCURRENCY`: their turns wait together for a group writer, so
/// more in hand make bigger groups (fewer commits) without more connections.
const TURNS_IN_HAND_PER_WORKER: usize = 4;

/// Applies each shopper's events: the shoppers due are handed to `worker_concurrency` group writers,
/// which take the turns of every shopper waiting (up to [`TURNS_PER_GROUP`]) in one transaction, each
/// turn holding the shopper's row (so one shopper's events stay in order across every process). When
/// one shopper's event fails or the database refuses the group, the group is undone and each shopper's
/// turn is taken again alone (so a failed event undoes only that shopper's turn).
pub(super) async fn event_loop(ctx: Arc<WorkerContext>, mut stopped: watch::Receiver<bool>) {
    let due = |limit: usize| {
        let ctx = ctx.clone();
        async move {
            let limit = i64::try_from(limit).unwrap_or(64);
            ctx.db
                .query(move |conn| inbound::customers_due(conn, now(), limit))
                .await
        }
    };
    let (policy, retry_base) = (policy(&ctx), ctx.config.retry_base);
    let turns: Groups<Turn, Applied> = Groups::start(
        ctx.db.clone(),
        ctx.config.worker_concurrency,
        TURNS_PER_GROUP,
        "turns",
        move |conn, turns| {
            together_or_each_alone(conn, turns, "turns", |conn, turns| {
                settle_all(conn, turns, policy, retry_base)
            })
        },
    );
    let work = |customer_id: CustomerId| apply_customer(ctx.clone(), turns.clone(), customer_id);
    let concurrency = ctx.config.worker_concurrency * TURNS_IN_HAND_PER_WORKER;
    super::pipeline(
        &ctx.wakers.events,
        super::POLL,
        &mut stopped,
        concurrency,
        "events",
        due,
        work,
    )
    .await;
}

/// What the User Profile API said of a shopper (name, locale, UTC offset), or `None` when it said nothing.
type Profile = Option<(Option<String>, Option<String>, Option<i32>)>;

/// A shopper's turn to take: their due events, after storing their profile when it was just asked for.
type Turn = (CustomerId, Option<Profile>);

/// Takes `turns` in one transaction (the shoppers' rows held by one statement and their events read by
/// another, see [`inbound::apply_due_together`]); one turn alone in a transaction of its own, where a
/// failing event is that shopper's answer (scheduled for a retry). A failing event in a group, or a
/// refusal of the database (which on PostgreSQL may leave the transaction unusable: a deadlock, say),
/// undoes the whole group, whose turns the caller then takes one by one: the shoppers' turns need no
/// savepoint each.
fn settle_all(
    conn: &mut DbConnection,
    turns: &[Turn],
    policy: Policy,
    retry_base: std::time::Duration,
) -> diesel::QueryResult<Vec<Applied>> {
    match turns {
        [(customer_id, profile)] => Ok(vec![settle(
            conn,
            *customer_id,
            profile.clone(),
            policy,
            retry_base,
        )?]),
        _ => write_transaction(conn, |conn| {
            for (customer_id, profile) in turns {
                if let Some(profile) = profile {
                    conversations::set_profile(conn, *customer_id, profile.clone())?;
                }
            }
            let customers: Vec<CustomerId> = turns.iter().map(|(customer_id, _)| *customer_id).collect();
            inbound::apply_due_together(conn, &customers, policy)?
                .ok_or(diesel::result::Error::RollbackTransaction)
        }),
    }
}

/// Applies the customer's due events with the other shoppers' waiting (one group writer, one
/// transaction), after asking for their profile when it is not known yet.
async fn apply_customer(
    ctx: Arc<WorkerContext>,
    turns: Groups<Turn, Applied>,
    customer_id: CustomerId,
) -> Result<usize, DbError> {
    let mut applied = turns.submit((customer_id, None)).await?;
    if let Applied::NeedsProfile(customer, token) = applied {
        let profile = fetch_profile(&ctx, &customer, token).await;
        applied = turns.submit((customer_id, Some(profile))).await?;
    }
    match applied {
        Applied::Done { applied, sends } => {
            if let Some(thread) = sends {
                ctx.wakers.replies_queued(thread);
            }
            Ok(applied)
        }
        _ => Ok(0),
    }
}

/// Applies the customer's due events, after storing their `profile` when one was asked for; a failed
/// event is scheduled for a retry with backoff (and dead-lettered after too many).
fn settle(
    conn: &mut DbConnection,
    customer_id: CustomerId,
    profile: Option<Profile>,
    policy: Policy,
    retry_base: std::time::Duration,
) -> diesel::QueryResult<Applied> {
    if let Some(profile) = profile {
        conversations::set_profile(conn, customer_id, profile)?;
    }
    let applied = inbound::apply_due(conn, customer_id, policy)?;
    if let Applied::Failed { event, error } = &applied {
        let next = now() + backoff(retry_base, event.attempts);
        let message = error.to_string();
        tracing::warn!(
            event.id = %event.id.0, attempt = event.attempts + 1, error = %message,
            "event failed; will retry"
        );
        inbound::event_failed(conn, event, &message, next)?;
    }
    Ok(applied)
}

fn policy(ctx: &WorkerContext) -> Policy {
    Policy {
        human_idle: chrono::Duration::from_std(ctx.config.human_idle)
            .unwrap_or(chrono::Duration::minutes(30)),
        payments: ctx.stripe.is_some(),
    }
}

/// Asks the User Profile API (Messenger's or Instagram's) for the shopper's name, locale and timezone; a
/// refusal (or no token) is remembered as no profile and never blocks the conversation.
async fn fetch_profile(
    ctx: &WorkerContext,
    customer: &conversations::Customer,
    token: Option<crate::secrets::Sealed>,
) -> Profile {
    let token = match ctx.secrets.open(&token?) {
        Ok(token) => token,
        Err(e) => {
            tracing::error!(customer.id = %customer.id.0, error = %e, "the Page's token cannot be opened");
            return None;
        }
    };
    let token = secrecy::ExposeSecret::expose_secret(&token);
    let asked = match customer.channel {
        crate::kernel::Channel::Instagram => ctx.graph.instagram_profile(&customer.psid, token).await,
        _ => ctx.graph.profile(&customer.psid, token).await,
    };
    match asked {
        Ok(p) => Some((p.first_name, p.locale, p.timezone)),
        Err(e) => {
            tracing::info!(customer.id = %customer.id.0, error = %e, "profile unavailable");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(n: u128, shoppers: &[&str]) -> (DbUuid, String) {
        let messaging: Vec<serde_json::Value> = shoppers
            .iter()
            .map(|psid| {
                serde_json::json!({"sender": {"id": psid}, "recipient": {"id": "P1"}, "timestamp": 1,
                                   "message": {"mid": format!("m-{n}-{psid}"), "text": "hi"}})
            })
            .collect();
        let body =
            serde_json::json!({"object": "page", "entry": [{"id": "P1", "time": 1, "messaging": messaging}]});
        (DbUuid(uuid::Uuid::from_u128(n)), body.to_string())
    }

    fn ids(chains: &[Vec<(DbUuid, String)>]) -> Vec<Vec<u128>> {
        chains
            .iter()
            .map(|c| c.iter().map(|(id, _)| id.0.as_u128()).collect())
            .collect()
    }

    #[test]
    fn deliveries_of_different_shoppers_are_split_side_by_side() {
        let chains = by_shopper(vec![
            delivery(1, &["a"]),
            delivery(2, &["b"]),
            delivery(3, &["c"]),
        ]);
        assert_eq!(ids(&chains), [vec![1], vec![2], vec![3]]);
    }

    #[test]
    fn one_shoppers_deliveries_stay_in_one_chain_in_arrival_order() {
        let chains = by_shopper(vec![
            delivery(1, &["a"]),
            delivery(2, &["b"]),
            delivery(3, &["a"]),
        ]);
        assert_eq!(ids(&chains), [vec![1, 3], vec![2]]);
    }

    #[test]
    fn a_delivery_naming_two_shoppers_joins_their_chains_in_order() {
        let chains = by_shopper(vec![
            delivery(1, &["a"]),
            delivery(2, &["b"]),
            delivery(3, &["a", "b"]),
            delivery(4, &["b"]),
            delivery(5, &["c"]),
        ]);
        assert_eq!(ids(&chains), [vec![1, 2, 3, 4], vec![5]]);
    }

    #[test]
    fn an_unreadable_delivery_is_a_chain_of_its_own() {
        let chains = by_shopper(vec![
            delivery(1, &["a"]),
            (DbUuid(uuid::Uuid::from_u128(2)), "{".into()),
        ]);
        assert_eq!(ids(&chains), [vec![1], vec![2]]);
    }
}
