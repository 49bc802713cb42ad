//! Rules in the database (`rules`: conditions and actions as JSON, in position order), and what a
//! verdict does to a thread (`threads.priority`, `labels`, `skill`, `rule_id`).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use uuid::Uuid;

use super::{Facts, MAX_RULES, RawRule, Rule, Then, Verdict, When, evaluate, needs};
use crate::conversations::Thread;
use crate::db::schema::{merchants, rules, threads, touches};
use crate::db::{DbConnection, DbUuid, now, write_or_nested_transaction};
use crate::kernel::{Labels, MerchantId};

/// Why a rule could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// The merchant has [`MAX_RULES`] rules already.
    #[error("a merchant has at most {MAX_RULES} rules")]
    TooMany,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = rules)]
struct RuleRow {
    id: DbUuid,
    name: String,
    position: i32,
    enabled: bool,
    conditions: String,
    actions: String,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

/// A stored rule with its times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRule {
    /// The rule.
    pub rule: Rule,
    /// Created.
    pub created_at: NaiveDateTime,
    /// Changed.
    pub updated_at: NaiveDateTime,
}

fn corrupt(e: serde_json::Error) -> diesel::result::Error {
    diesel::result::Error::DeserializationError(Box::new(e))
}

impl TryFrom<RuleRow> for StoredRule {
    type Error = diesel::result::Error;

    fn try_from(row: RuleRow) -> QueryResult<StoredRule> {
        Ok(StoredRule {
            rule: Rule {
                id: row.id.0,
                name: row.name,
                position: row.position,
                enabled: row.enabled,
                when: serde_json::from_str::<When>(&row.conditions).map_err(corrupt)?,
                then: serde_json::from_str::<Then>(&row.actions).map_err(corrupt)?,
            },
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

fn stored<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "{}".into())
}

/// The merchant's rules in evaluation order (position, then id).
pub fn list(conn: &mut DbConnection, merchant_id: MerchantId) -> QueryResult<Vec<StoredRule>> {
    rules::table
        .filter(rules::merchant_id.eq(merchant_id))
        .order((rules::position.asc(), rules::id.asc()))
        .limit(MAX_RULES as i64)
        .select(RuleRow::as_select())
        .load(conn)?
        .into_iter()
        .map(StoredRule::try_from)
        .collect()
}

/// The merchant's rule `id`.
pub fn get(conn: &mut DbConnection, merchant_id: MerchantId, id: Uuid) -> QueryResult<Option<StoredRule>> {
    rules::table
        .filter(rules::merchant_id.eq(merchant_id))
        .filter(rules::id.eq(DbUuid(id)))
        .select(RuleRow::as_select())
        .first(conn)
        .optional()?
        .map(StoredRule::try_from)
        .transpose()
}

/// Stores a checked rule (see [`super::check`]); without a position it goes after the others.
pub fn create(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    raw: &RawRule,
) -> Result<StoredRule, RuleError> {
    write_or_nested_transaction(conn, |conn| {
        let positions: Vec<i32> = rules::table
            .filter(rules::merchant_id.eq(merchant_id))
            .select(rules::position)
            .load(conn)?;
        if positions.len() >= MAX_RULES {
            return Err(RuleError::TooMany);
        }
        let position = match raw.position {
            Some(p) => i32::try_from(p).unwrap_or(i32::MAX),
            None => positions.iter().max().map_or(0, |p| p.saturating_add(1)),
        };
        let id = Uuid::now_v7();
        let at = now();
        diesel::insert_into(rules::table)
            .values((
                rules::id.eq(DbUuid(id)),
                rules::merchant_id.eq(merchant_id),
                rules::position.eq(position),
                rules::name.eq(&raw.name),
                rules::enabled.eq(raw.enabled.unwrap_or(true)),
                rules::conditions.eq(stored(&raw.when)),
                rules::actions.eq(stored(&raw.then)),
                rules::created_at.eq(at),
                rules::updated_at.eq(at),
            ))
            .execute(conn)?;
        get(conn, merchant_id, id)?.ok_or(RuleError::Db(diesel::result::Error::NotFound))
    })
}

/// Replaces the merchant's rule `id` with `raw` (the caller merged a partial change); `None` when
/// there is no such rule.
pub fn update(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    id: Uuid,
    raw: &RawRule,
) -> QueryResult<Option<StoredRule>> {
    let changed = diesel::update(
        rules::table
            .filter(rules::merchant_id.eq(merchant_id))
            .filter(rules::id.eq(DbUuid(id))),
    )
    .set((
        rules::name.eq(&raw.name),
        rules::position.eq(raw.position.and_then(|p| i32::try_from(p).ok()).unwrap_or(0)),
        rules::enabled.eq(raw.enabled.unwrap_or(true)),
        rules::conditions.eq(stored(&raw.when)),
        rules::actions.eq(stored(&raw.then)),
        rules::updated_at.eq(now()),
    ))
    .execute(conn)?;
    if changed == 0 {
        return Ok(None);
    }
    get(conn, merchant_id, id)
}

/// Deletes the merchant's rule `id`; false when there was none. Threads it routed keep their
/// priority and labels; their `rule_id` names a rule that is gone.
pub fn delete(conn: &mut DbConnection, merchant_id: MerchantId, id: Uuid) -> QueryResult<bool> {
    let n = diesel::delete(
        rules::table
            .filter(rules::merchant_id.eq(merchant_id))
            .filter(rules::id.eq(DbUuid(id))),
    )
    .execute(conn)?;
    Ok(n > 0)
}

/// The most touches of a thread whose ads and refs rules look at.
const MAX_TOUCHES: i64 = 200;

/// Evaluates the merchant's enabled rules on a message of `thread` (its text, when it has one),
/// reading only the facts they ask for. One statement when the merchant has no rule.
pub fn verdict_for(conn: &mut DbConnection, thread: &Thread, text: Option<&str>) -> QueryResult<Verdict> {
    let rules: Vec<Rule> = rules::table
        .filter(rules::merchant_id.eq(thread.merchant_id))
        .filter(rules::enabled)
        .order((rules::position.asc(), rules::id.asc()))
        .limit(MAX_RULES as i64)
        .select(RuleRow::as_select())
        .load(conn)?
        .into_iter()
        .map(|row| StoredRule::try_from(row).map(|s| s.rule))
        .collect::<QueryResult<_>>()?;
    if rules.is_empty() {
        return Ok(Verdict::default());
    }
    let needs = needs(&rules);
    let (ad_ids, refs) = if needs.touches {
        let seen: Vec<(Option<String>, Option<String>)> = touches::table
            .filter(touches::thread_id.eq(thread.id))
            .order(touches::id.desc())
            .limit(MAX_TOUCHES)
            .select((touches::ad_id, touches::ref_))
            .load(conn)?;
        let (ads, refs): (Vec<_>, Vec<_>) = seen.into_iter().unzip();
        (
            ads.into_iter().flatten().collect(),
            refs.into_iter().flatten().collect(),
        )
    } else {
        (Vec::new(), Vec::new())
    };
    let cart_value = if needs.cart {
        crate::carts::open_cart(conn, thread.id)?.and_then(|c| c.subtotal().ok())
    } else {
        None
    };
    let vip = needs.vip && is_vip(conn, thread)?;
    let facts = Facts {
        channel: Some(thread.channel),
        ad_ids: &ad_ids,
        refs: &refs,
        cart_value,
        vip,
        text,
    };
    Ok(evaluate(&rules, &facts))
}

/// Whether the thread's customer has at least the merchant's `vip_paid_orders` paid orders (never
/// when that setting is 0).
fn is_vip(conn: &mut DbConnection, thread: &Thread) -> QueryResult<bool> {
    let from: i32 = merchants::table
        .find(thread.merchant_id)
        .select(merchants::vip_paid_orders)
        .first(conn)?;
    if from <= 0 {
        return Ok(false);
    }
    let paid = crate::routing::paid_orders(conn, vec![thread.id])?;
    Ok(paid.first().is_some_and(|(_, n)| *n >= i64::from(from)))
}

/// Puts a verdict on the thread: the higher of its priority and the verdict's, the verdict's labels
/// added to its own, the skill when it has none, the routing rule when it has none or this one hands
/// over. Handing over is the caller's (it answers the shopper).
pub fn apply(conn: &mut DbConnection, thread: &Thread, verdict: &Verdict) -> QueryResult<()> {
    if verdict.is_empty() {
        return Ok(());
    }
    let (priority, labels, skill, rule): (i32, String, Option<String>, Option<DbUuid>) = threads::table
        .find(thread.id)
        .select((
            threads::priority,
            threads::labels,
            threads::skill,
            threads::rule_id,
        ))
        .first(conn)?;
    let labels = Labels::from_stored(&labels)
        .unwrap_or_default()
        .union(&verdict.labels);
    let rule = match rule {
        Some(r) if !verdict.hand_over => Some(r),
        _ => verdict.rule.map(DbUuid),
    };
    diesel::update(threads::table.find(thread.id))
        .set((
            threads::priority.eq(verdict.priority.map_or(priority, |p| p.max(priority))),
            threads::labels.eq(labels.stored()),
            threads::skill.eq(skill.or_else(|| verdict.skill.clone())),
            threads::rule_id.eq(rule),
        ))
        .execute(conn)?;
    Ok(())
}

/// What rules decided for a thread, as its context shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    /// Its priority in the queue.
    pub priority: i32,
    /// Its labels.
    pub labels: Labels,
    /// The skill its agent needs.
    pub skill: Option<String>,
    /// The rule that routed it, and that rule's name when it still exists.
    pub rule: Option<(Uuid, Option<String>)>,
}

/// What rules decided for the thread `thread_id`.
pub fn routed(conn: &mut DbConnection, thread_id: crate::kernel::ThreadId) -> QueryResult<Routed> {
    type Row = (MerchantId, i32, String, Option<String>, Option<DbUuid>);
    let (merchant_id, priority, labels, skill, rule): Row = threads::table
        .find(thread_id)
        .select((
            threads::merchant_id,
            threads::priority,
            threads::labels,
            threads::skill,
            threads::rule_id,
        ))
        .first(conn)?;
    let rule = match rule {
        Some(id) => {
            let name: Option<String> = rules::table
                .filter(rules::merchant_id.eq(merchant_id))
                .filter(rules::id.eq(id))
                .select(rules::name)
                .first(conn)
                .optional()?;
            Some((id.0, name))
        }
        None => None,
    };
    Ok(Routed {
        priority,
        labels: Labels::from_stored(&labels).unwrap_or_default(),
        skill,
        rule,
    })
}
