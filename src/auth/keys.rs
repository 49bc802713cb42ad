//! API keys: 256 random bits shown once, stored only as a SHA-256 hash, revocable.
//!
//! A slow password hash buys nothing for a 256-bit random secret; SHA-256 lets the token endpoint find the
//! key by an indexed lookup.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::Role;
use crate::db::schema::api_keys;
use crate::db::{DbConnection, DbUuid, now};
use crate::kernel::MerchantId;
use crate::secrets::{hex, random_bytes};

/// The plaintext key, in the only moment it exists.
pub struct NewKey {
    /// The stored record.
    pub record: ApiKey,
    /// `tc_` and 64 hex digits, shown once.
    pub plaintext: String,
}

/// A stored API key (never the secret).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = api_keys)]
pub struct ApiKeyRow {
    id: DbUuid,
    merchant_id: MerchantId,
    role: String,
    label: Option<String>,
    prefix: String,
    created_at: NaiveDateTime,
    revoked_at: Option<NaiveDateTime>,
}

/// An API key as the domain sees it.
#[derive(Debug, Clone)]
pub struct ApiKey {
    /// Id.
    pub id: Uuid,
    /// Owning merchant.
    pub merchant_id: MerchantId,
    /// Role.
    pub role: Role,
    /// Free label.
    pub label: Option<String>,
    /// The first characters of the key, to recognise it.
    pub prefix: String,
    /// Created (UTC).
    pub created_at: NaiveDateTime,
    /// Revoked (UTC).
    pub revoked_at: Option<NaiveDateTime>,
}

impl From<ApiKeyRow> for ApiKey {
    fn from(row: ApiKeyRow) -> Self {
        ApiKey {
            id: row.id.0,
            merchant_id: row.merchant_id,
            // The CHECK constraint keeps roles valid; an unknown one gets the least power.
            role: Role::parse(&row.role).unwrap_or(Role::Agent),
            label: row.label,
            prefix: row.prefix,
            created_at: row.created_at,
            revoked_at: row.revoked_at,
        }
    }
}

/// The first characters of a key (`tc_` and 8 hex digits), kept to recognise it.
pub fn prefix_of(plaintext: &str) -> String {
    plaintext.chars().take(11).collect()
}

/// The stored hash of a key.
pub fn hash_key(plaintext: &str) -> String {
    hex(&Sha256::digest(plaintext.as_bytes()))
}

/// Stores a key for `merchant_id`; `plaintext` is generated unless given (demo keys are fixed).
pub fn create(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    role: Role,
    label: Option<String>,
    plaintext: Option<String>,
) -> QueryResult<NewKey> {
    insert(conn, merchant_id, role, None, label, plaintext)
}

/// Stores the key of the merchant's agent `agent_id`: role `agent`, bound to them.
pub fn create_for_agent(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    agent_id: Uuid,
    label: Option<String>,
    plaintext: Option<String>,
) -> QueryResult<NewKey> {
    insert(conn, merchant_id, Role::Agent, Some(agent_id), label, plaintext)
}

fn insert(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    role: Role,
    agent_id: Option<Uuid>,
    label: Option<String>,
    plaintext: Option<String>,
) -> QueryResult<NewKey> {
    let plaintext = plaintext.unwrap_or_else(|| format!("tc_{}", hex(&random_bytes::<32>())));
    let prefix = prefix_of(&plaintext);
    let id = Uuid::now_v7();
    let created_at = now();
    diesel::insert_into(api_keys::table)
        .values((
            api_keys::id.eq(DbUuid(id)),
            api_keys::merchant_id.eq(merchant_id),
            api_keys::role.eq(role.as_str()),
            api_keys::label.eq(&label),
            api_keys::prefix.eq(&prefix),
            api_keys::key_hash.eq(hash_key(&plaintext)),
            api_keys::created_at.eq(created_at),
            api_keys::agent_id.eq(agent_id.map(DbUuid)),
        ))
        .execute(conn)?;
    Ok(NewKey {
        record: ApiKey {
            id,
            merchant_id,
            role,
            label,
            prefix,
            created_at,
            revoked_at: None,
        },
        plaintext,
    })
}

/// The live (not revoked) key whose hash matches `plaintext`.
pub fn find_live_by_plaintext(conn: &mut DbConnection, plaintext: &str) -> QueryResult<Option<ApiKey>> {
    api_keys::table
        .filter(api_keys::key_hash.eq(hash_key(plaintext)))
        .filter(api_keys::revoked_at.is_null())
        .select(ApiKeyRow::as_select())
        .first(conn)
        .optional()
        .map(|row| row.map(ApiKey::from))
}

/// The key's role and the agent it is bound to, when it exists for the merchant and is not revoked
/// (one indexed read per call).
pub fn live_role(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    key_id: Uuid,
) -> QueryResult<Option<(Role, Option<Uuid>)>> {
    let row: Option<(String, Option<DbUuid>)> = api_keys::table
        .filter(api_keys::id.eq(DbUuid(key_id)))
        .filter(api_keys::merchant_id.eq(merchant_id))
        .filter(api_keys::revoked_at.is_null())
        .select((api_keys::role, api_keys::agent_id))
        .first(conn)
        .optional()?;
    // The CHECK constraint keeps roles valid; an unknown one gets the least power, as in `ApiKey`.
    Ok(row.map(|(r, agent)| (Role::parse(&r).unwrap_or(Role::Agent), agent.map(|a| a.0))))
}

/// A page of the merchant's live keys, newest created first unless `page` asks oldest first.
pub fn list(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    page: crate::db::Keyset,
    limit: i64,
) -> QueryResult<Vec<ApiKey>> {
    let mut query = api_keys::table
        .filter(api_keys::merchant_id.eq(merchant_id))
        .filter(api_keys::revoked_at.is_null())
        .limit(limit)
        .select(ApiKeyRow::as_select())
        .into_boxed();
    query = crate::keyset!(query, api_keys::id, page);
    Ok(query.load(conn)?.into_iter().map(ApiKey::from).collect())
}

/// Revokes a live key of the merchant; false when there is none.
pub fn revoke(conn: &mut DbConnection, merchant_id: MerchantId, key_id: Uuid) -> QueryResult<bool> {
    let changed = diesel::update(
        api_keys::table
            .filter(api_keys::id.eq(DbUuid(key_id)))
            .filter(api_keys::merchant_id.eq(merchant_id))
            .filter(api_keys::revoked_at.is_null()),
    )
    .set(api_keys::revoked_at.eq(now()))
    .execute(conn)?;
    Ok(changed == 1)
}

/// Ensures a fixed demo key exists for the merchant (idempotent).
pub fn ensure_fixed(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    role: Role,
    plaintext: &str,
) -> QueryResult<()> {
    let exists: bool = diesel::select(diesel::dsl::exists(
        api_keys::table.filter(api_keys::key_hash.eq(hash_key(plaintext))),
    ))
    .get_result(conn)?;
    if !exists {
        create(
            conn,
            merchant_id,
            role,
            Some("demo".into()),
            Some(plaintext.to_owned()),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_hex_sha256_and_never_the_key() {
        let h = hash_key("tc_abc");
        assert_eq!(h.len(), 64);
        assert!(!h.contains("abc"));
    }
}
