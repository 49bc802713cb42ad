//! Agents are people: the merchant's team members who answer threads handed to a person. Each has a
//! name, an email, the languages they answer in, skills (labels of what they know), how many threads
//! they take at once, and a presence (online, away, offline). Each has their own API key, role `agent`,
//! bound to them. Which agent answers which thread: `crate::routing`.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use uuid::Uuid;

use crate::auth::Role;
use crate::auth::keys::{self, NewKey};
use crate::db::schema::{agents, api_keys, threads};
use crate::db::{DbConnection, DbUuid, now, write_or_nested_transaction};
use crate::kernel::{FieldError, MAX_LABELS, MerchantId, is_label};
pub use crate::routing::Presence;

/// The most threads an agent may take at once.
pub const MAX_THREADS: u32 = 100;

/// An agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    /// Id.
    pub id: Uuid,
    /// The merchant.
    pub merchant_id: MerchantId,
    /// How the team and the shopper know them.
    pub name: String,
    /// Their email (one agent per email and merchant).
    pub email: String,
    /// Two-letter language codes they answer in.
    pub languages: Vec<String>,
    /// Labels of what they know (the same labels the merchant puts on products and room types).
    pub skills: Vec<String>,
    /// The most threads they take at once.
    pub max_threads: u32,
    /// Online, away or offline.
    pub presence: Presence,
    /// When the presence was last set.
    pub presence_at: Option<NaiveDateTime>,
    /// When their live connection last said they are there.
    pub seen_at: Option<NaiveDateTime>,
    /// Threads assigned to them now.
    pub open_threads: u32,
    /// Created (UTC).
    pub created_at: NaiveDateTime,
    /// Changed (UTC).
    pub updated_at: NaiveDateTime,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = agents)]
struct AgentRow {
    id: DbUuid,
    merchant_id: MerchantId,
    name: String,
    email: String,
    languages: String,
    skills: String,
    max_threads: i32,
    presence: Presence,
    presence_at: Option<NaiveDateTime>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    seen_at: Option<NaiveDateTime>,
}

impl AgentRow {
    fn into_agent(self, open_threads: u32) -> QueryResult<Agent> {
        let corrupt = |e: serde_json::Error| diesel::result::Error::DeserializationError(e.into());
        Ok(Agent {
            id: self.id.0,
            merchant_id: self.merchant_id,
            name: self.name,
            email: self.email,
            languages: serde_json::from_str(&self.languages).map_err(corrupt)?,
            skills: serde_json::from_str(&self.skills).map_err(corrupt)?,
            max_threads: u32::try_from(self.max_threads).unwrap_or_default(),
            presence: self.presence,
            presence_at: self.presence_at,
            seen_at: self.seen_at,
            open_threads,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// What the merchant sets on an agent, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSpec {
    /// Name.
    pub name: String,
    /// Email.
    pub email: String,
    /// Languages.
    pub languages: Vec<String>,
    /// Skills.
    pub skills: Vec<String>,
    /// Capacity.
    pub max_threads: u32,
}

/// An agent's fields as given, before checking (a change gives only some).
#[derive(Debug, Clone, Default)]
pub struct RawAgent {
    /// Name.
    pub name: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// Languages.
    pub languages: Option<Vec<String>>,
    /// Skills.
    pub skills: Option<Vec<String>>,
    /// Capacity.
    pub max_threads: Option<i64>,
}

impl AgentSpec {
    /// Checks `raw` over `base` (the agent as it stands, for a change; none for a new one, where name
    /// and email are required), naming each bad field.
    pub fn check(raw: RawAgent, base: Option<&AgentSpec>) -> Result<AgentSpec, Vec<FieldError>> {
        let mut errors = Vec::new();
        let name = match (raw.name, base) {
            (Some(n), _) => n.trim().to_owned(),
            (None, Some(b)) => b.name.clone(),
            (None, None) => String::new(),
        };
        if name.is_empty() || name.chars().count() > 100 {
            errors.push(FieldError::new(
                "name",
                "invalid_name",
                "a name takes 1 to 100 characters",
            ));
        }
        let email = match (raw.email, base) {
            (Some(e), _) => e.trim().to_lowercase(),
            (None, Some(b)) => b.email.clone(),
            (None, None) => String::new(),
        };
        if !is_email(&email) {
            errors.push(FieldError::new(
                "email",
                "invalid_email",
                "an email address such as lea@example.com",
            ));
        }
        let languages = match (raw.languages, base) {
            (Some(l), _) => l.into_iter().map(|l| l.trim().to_lowercase()).collect(),
            (None, Some(b)) => b.languages.clone(),
            (None, None) => vec!["en".to_owned()],
        };
        if languages.is_empty()
            || languages.len() > MAX_LABELS
            || !languages
                .iter()
                .all(|l| crate::conversations::disclosure::is_language(l))
        {
            errors.push(FieldError::new(
                "languages",
                "invalid_languages",
                format!("1 to {MAX_LABELS} two-letter language codes such as [\"fr\", \"en\"]"),
            ));
        }
        let skills: Vec<String> = match (raw.skills, base) {
            (Some(s), _) => s.into_iter().map(|s| s.trim().to_lowercase()).collect(),
            (None, Some(b)) => b.skills.clone(),
            (None, None) => Vec::new(),
        };
        if skills.len() > MAX_LABELS || !skills.iter().all(|s| is_label(s)) {
            errors.push(FieldError::new(
                "skills",
                "invalid_skills",
                format!(
                    "at most {MAX_LABELS} labels of 1 to 40 letters, digits, `-` or `_`, such as \"slippers\""
                ),
            ));
        }
        let max_threads = match (raw.max_threads, base) {
            (Some(n), _) => u32::try_from(n).ok().filter(|n| (1..=MAX_THREADS).contains(n)),
            (None, Some(b)) => Some(b.max_threads),
            (None, None) => Some(5),
        };
        if max_threads.is_none() {
            errors.push(FieldError::new(
                "max_threads",
                "out_of_range",
                format!("an agent takes 1 to {MAX_THREADS} threads at once"),
            ));
        }
        match max_threads {
            Some(max_threads) if errors.is_empty() => Ok(AgentSpec {
                name,
                email,
                languages: dedup(languages),
                skills: dedup(skills),
                max_threads,
            }),
            _ => Err(errors),
        }
    }
}

fn dedup(mut v: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    v.retain(|x| seen.insert(x.clone()));
    v
}

/// A plausible email address: something, `@`, a domain with a dot, no spaces, at most 254 characters.
fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    s.len() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        && !domain.contains('@')
}

/// Why an agent could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// Another agent of the merchant has this email.
    #[error("another agent has this email")]
    EmailTaken,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

fn taken(e: diesel::result::Error) -> AgentError {
    if crate::db::is_unique_violation_on(&e, "agents") {
        AgentError::EmailTaken
    } else {
        AgentError::Db(e)
    }
}

/// Stores a new agent with their own API key (role `agent`, bound to them), in one transaction.
pub fn create(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    spec: &AgentSpec,
) -> Result<(Agent, NewKey), AgentError> {
    write_or_nested_transaction(conn, |conn| {
        let id = insert(conn, merchant_id, spec)?;
        let key = keys::create_for_agent(conn, merchant_id, id, Some(format!("Agent {}", spec.name)), None)?;
        let agent = get(conn, merchant_id, id)?.ok_or(diesel::result::Error::NotFound)?;
        Ok((agent, key))
    })
}

/// The demo merchant's agent with `spec.email`, made with the fixed key `plaintext` unless there (the
/// demo is loaded at every start).
pub fn ensure_demo(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    spec: &AgentSpec,
    plaintext: &str,
) -> Result<(), AgentError> {
    let key_exists: bool = diesel::select(diesel::dsl::exists(
        api_keys::table.filter(api_keys::key_hash.eq(keys::hash_key(plaintext))),
    ))
    .get_result(conn)?;
    if key_exists {
        return Ok(());
    }
    let existing: Option<DbUuid> = agents::table
        .filter(agents::merchant_id.eq(merchant_id))
        .filter(agents::email.eq(&spec.email))
        .filter(agents::deleted_at.is_null())
        .select(agents::id)
        .first(conn)
        .optional()?;
    let id = match existing {
        Some(id) => id.0,
        None => insert(conn, merchant_id, spec)?,
    };
    keys::create_for_agent(
        conn,
        merchant_id,
        id,
        Some("demo".into()),
        Some(plaintext.to_owned()),
    )?;
    Ok(())
}

fn insert(conn: &mut DbConnection, merchant_id: MerchantId, spec: &AgentSpec) -> Result<Uuid, AgentError> {
    let id = Uuid::now_v7();
    let at = now();
    diesel::insert_into(agents::table)
        .values((
            agents::id.eq(DbUuid(id)),
            agents::merchant_id.eq(merchant_id),
            agents::name.eq(&spec.name),
            agents::email.eq(&spec.email),
            agents::languages.eq(json(&spec.languages)),
            agents::skills.eq(json(&spec.skills)),
            agents::max_threads.eq(i32::try_from(spec.max_threads).unwrap_or(i32::MAX)),
            agents::presence.eq(Presence::Offline),
            agents::created_at.eq(at),
            agents::updated_at.eq(at),
        ))
        .execute(conn)
        .map_err(taken)?;
    Ok(id)
}

fn json(labels: &[String]) -> String {
    serde_json::to_string(labels).unwrap_or_else(|_| "[]".into())
}

/// The threads assigned to each of these agents now.
fn open_threads(conn: &mut DbConnection, ids: &[Uuid]) -> QueryResult<Vec<(Uuid, u32)>> {
    use diesel::dsl::count_star;
    let counts: Vec<(Option<DbUuid>, i64)> = threads::table
        .filter(threads::assigned_agent_id.eq_any(ids.iter().copied().map(DbUuid)))
        .group_by(threads::assigned_agent_id)
        .select((threads::assigned_agent_id, count_star()))
        .load(conn)?;
    Ok(counts
        .into_iter()
        .filter_map(|(id, n)| Some((id?.0, u32::try_from(n).unwrap_or(u32::MAX))))
        .collect())
}

fn with_counts(conn: &mut DbConnection, rows: Vec<AgentRow>) -> QueryResult<Vec<Agent>> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id.0).collect();
    let counts = open_threads(conn, &ids)?;
    rows.into_iter()
        .map(|r| {
            let open = counts.iter().find(|(id, _)| *id == r.id.0).map_or(0, |(_, n)| *n);
            r.into_agent(open)
        })
        .collect()
}

/// The merchant's agent `id` (not deleted).
pub fn get(conn: &mut DbConnection, merchant_id: MerchantId, id: Uuid) -> QueryResult<Option<Agent>> {
    let row = agents::table
        .filter(agents::id.eq(DbUuid(id)))
        .filter(agents::merchant_id.eq(merchant_id))
        .filter(agents::deleted_at.is_null())
        .select(AgentRow::as_select())
        .first(conn)
        .optional()?;
    Ok(with_counts(conn, row.into_iter().collect())?.pop())
}

/// A page of the merchant's agents (not deleted), newest first unless `page` asks oldest first.
pub fn list(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    page: crate::db::Keyset,
    limit: i64,
) -> QueryResult<Vec<Agent>> {
    let query = agents::table
        .filter(agents::merchant_id.eq(merchant_id))
        .filter(agents::deleted_at.is_null())
        .into_boxed();
    let rows = crate::keyset!(query, agents::id, page)
        .limit(limit)
        .select(AgentRow::as_select())
        .load(conn)?;
    with_counts(conn, rows)
}

/// Every agent of the merchant (not deleted), as routing needs them.
pub fn all(conn: &mut DbConnection, merchant_id: MerchantId) -> QueryResult<Vec<Agent>> {
    let rows = agents::table
        .filter(agents::merchant_id.eq(merchant_id))
        .filter(agents::deleted_at.is_null())
        .order(agents::id.asc())
        .limit(1000)
        .select(AgentRow::as_select())
        .load(conn)?;
    with_counts(conn, rows)
}

/// Changes the merchant's agent `id`; `None` when there is none.
pub fn update(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    id: Uuid,
    spec: &AgentSpec,
) -> Result<Option<Agent>, AgentError> {
    let changed = diesel::update(
        agents::table
            .filter(agents::id.eq(DbUuid(id)))
            .filter(agents::merchant_id.eq(merchant_id))
            .filter(agents::deleted_at.is_null()),
    )
    .set((
        agents::name.eq(&spec.name),
        agents::email.eq(&spec.email),
        agents::languages.eq(json(&spec.languages)),
        agents::skills.eq(json(&spec.skills)),
        agents::max_threads.eq(i32::try_from(spec.max_threads).unwrap_or(i32::MAX)),
        agents::updated_at.eq(now()),
    ))
    .execute(conn)
    .map_err(taken)?;
    if changed == 0 {
        return Ok(None);
    }
    Ok(get(conn, merchant_id, id)?)
}

/// Removes the merchant's agent `id`: their keys are revoked and their threads go back to the queue.
/// False when there was none.
pub fn delete(conn: &mut DbConnection, merchant_id: MerchantId, id: Uuid) -> QueryResult<bool> {
    write_or_nested_transaction(conn, |conn| {
        let at = now();
        let gone = diesel::update(
            agents::table
                .filter(agents::id.eq(DbUuid(id)))
                .filter(agents::merchant_id.eq(merchant_id))
                .filter(agents::deleted_at.is_null()),
        )
        .set((
            agents::deleted_at.eq(at),
            agents::presence.eq(Presence::Offline),
            agents::updated_at.eq(at),
        ))
        .execute(conn)?;
        if gone == 0 {
            return Ok(false);
        }
        diesel::update(
            api_keys::table
                .filter(api_keys::agent_id.eq(DbUuid(id)))
                .filter(api_keys::revoked_at.is_null()),
        )
        .set(api_keys::revoked_at.eq(at))
        .execute(conn)?;
        crate::routing::release_agent(conn, id, at)?;
        Ok(true)
    })
}

/// Sets the agent's presence; going offline puts their threads back in the queue. `None` when the
/// agent is gone.
pub fn set_presence(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    id: Uuid,
    presence: Presence,
) -> QueryResult<Option<Agent>> {
    write_or_nested_transaction(conn, |conn| {
        let at = now();
        let changed = diesel::update(
            agents::table
                .filter(agents::id.eq(DbUuid(id)))
                .filter(agents::merchant_id.eq(merchant_id))
                .filter(agents::deleted_at.is_null()),
        )
        .set((
            agents::presence.eq(presence),
            agents::presence_at.eq(at),
            agents::updated_at.eq(at),
        ))
        .execute(conn)?;
        if changed == 0 {
            return Ok(None);
        }
        if presence == Presence::Offline {
            crate::routing::release_agent(conn, id, at)?;
        }
        get(conn, merchant_id, id)
    })
}

/// An agent online or away whose live connection (`GET /v1/events`) and presence have both been
/// silent this long counts as offline.
pub const PRESENCE_TIMEOUT: chrono::Duration = chrono::Duration::minutes(3);

/// The agent's live connection is open at `at`.
pub fn seen(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    id: Uuid,
    at: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(
        agents::table
            .filter(agents::id.eq(DbUuid(id)))
            .filter(agents::merchant_id.eq(merchant_id)),
    )
    .set(agents::seen_at.eq(at))
    .execute(conn)?;
    Ok(())
}

/// Agents online or away whose live connection has been gone (and who have not set a presence) for
/// [`PRESENCE_TIMEOUT`] go offline, their threads back to the queue; answers how many.
pub fn expire_presence(conn: &mut DbConnection, at: NaiveDateTime) -> QueryResult<usize> {
    let cutoff = at - PRESENCE_TIMEOUT;
    let silent = || {
        agents::table
            .filter(agents::presence.ne(Presence::Offline))
            .filter(agents::deleted_at.is_null())
            .filter(agents::presence_at.is_null().or(agents::presence_at.lt(cutoff)))
            .filter(agents::seen_at.is_null().or(agents::seen_at.lt(cutoff)))
    };
    let gone: Vec<DbUuid> = silent().select(agents::id).limit(1000).load(conn)?;
    let mut expired = 0;
    for id in gone {
        // Only if still silent (a heartbeat since the read keeps the agent on), with their threads
        // given back in the same transaction.
        let changed = write_or_nested_transaction(conn, |conn| {
            let changed = diesel::update(silent().filter(agents::id.eq(id)))
                .set((
                    agents::presence.eq(Presence::Offline),
                    agents::presence_at.eq(at),
                    agents::updated_at.eq(at),
                ))
                .execute(conn)?;
            if changed == 1 {
                crate::routing::release_agent(conn, id.0, at)?;
            }
            Ok::<_, diesel::result::Error>(changed)
        })?;
        if changed == 1 {
            tracing::info!(agent.id = %id.0, "the agent's live connection is gone: offline");
            expired += 1;
        }
    }
    Ok(expired)
}

/// The role every agent's key has.
pub const ROLE: Role = Role::Agent;

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(name: &str, email: &str) -> RawAgent {
        RawAgent {
            name: Some(name.into()),
            email: Some(email.into()),
            ..RawAgent::default()
        }
    }

    #[test]
    fn a_new_agent_needs_a_name_and_an_email_and_takes_defaults_for_the_rest() {
        let spec = AgentSpec::check(raw(" Léa ", "Lea@Example.com"), None).unwrap_or_else(|_| unreachable!());
        assert_eq!(spec.name, "Léa");
        assert_eq!(spec.email, "lea@example.com");
        assert_eq!(spec.languages, ["en"]);
        assert!(spec.skills.is_empty());
        assert_eq!(spec.max_threads, 5);
        let fields: Vec<String> = AgentSpec::check(RawAgent::default(), None)
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["name", "email"]);
    }

    #[test]
    fn bad_languages_skills_and_capacity_are_named() {
        let bad = RawAgent {
            languages: Some(vec!["french".into()]),
            skills: Some(vec!["has space".into()]),
            max_threads: Some(0),
            ..raw("Léa", "lea@example.com")
        };
        let fields: Vec<String> = AgentSpec::check(bad, None)
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["languages", "skills", "max_threads"]);
    }

    #[test]
    fn a_change_keeps_what_it_does_not_name() {
        let base = AgentSpec::check(raw("Léa", "lea@example.com"), None).unwrap_or_else(|_| unreachable!());
        let changed = AgentSpec::check(
            RawAgent {
                languages: Some(vec!["FR".into(), "fr".into(), "en".into()]),
                ..RawAgent::default()
            },
            Some(&base),
        )
        .unwrap_or_else(|_| unreachable!());
        assert_eq!(changed.name, "Léa");
        assert_eq!(changed.languages, ["fr", "en"]);
    }

    #[test]
    fn emails_are_checked_for_their_shape_only() {
        assert!(is_email("lea@example.com"));
        assert!(!is_email("lea@example"));
        assert!(!is_email("lea example@x.com"));
        assert!(!is_email("@example.com"));
    }
}
