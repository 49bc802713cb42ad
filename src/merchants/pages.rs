//! Messenger Pages connected to a merchant, each with the Instagram professional account Meta links to it,
//! when the merchant connects that too. A Page id (and an Instagram account id) is unique across all
//! merchants: inbound webhooks are routed by it. The Page access token is stored encrypted (see `crate::secrets`) for the Send API and
//! never returned (only its last four characters, kept beside it).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use secrecy::SecretString;
use uuid::Uuid;

use crate::db::schema::pages;
use crate::db::{DbConnection, DbUuid, now};
use crate::kernel::{FieldError, MerchantId, PageId};
use crate::secrets::{Sealed, Secrets, SecretsError};

crate::text_state! {
    /// Whether Meta still takes a Page's token.
    TokenStatus {
        /// Taken.
        Ok = "ok",
        /// Refused (error 190): nothing is sent with it until the merchant reconnects with a new token.
        Broken = "broken",
    }
}

/// A connected Page, without its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Our id for the connection (UUIDv7: later connections are greater).
    pub id: uuid::Uuid,
    /// Meta's Page id.
    pub page_id: PageId,
    /// Owning merchant.
    pub merchant_id: MerchantId,
    /// Display name.
    pub name: Option<String>,
    /// The token's last four characters, to recognise it.
    pub token_last4: String,
    /// Connected (UTC).
    pub connected_at: NaiveDateTime,
    /// Whether Meta still takes its token.
    pub token_status: TokenStatus,
    /// The Page may send `HUMAN_AGENT` tagged messages (an App Review permission).
    pub human_agent_enabled: bool,
    /// How setting its Messenger profile went: `pending`, `ok` or `failed: <reason>`.
    pub profile_status: String,
    /// The Instagram professional account whose Direct messages go through this Page.
    pub instagram_account_id: Option<String>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = pages)]
struct PageRow {
    id: DbUuid,
    page_id: PageId,
    merchant_id: MerchantId,
    name: Option<String>,
    token_last4: String,
    connected_at: NaiveDateTime,
    token_status: TokenStatus,
    human_agent_enabled: bool,
    profile_status: String,
    instagram_account_id: Option<String>,
}

impl From<PageRow> for Page {
    fn from(row: PageRow) -> Self {
        Page {
            id: row.id.0,
            page_id: row.page_id,
            merchant_id: row.merchant_id,
            name: row.name,
            token_last4: row.token_last4,
            connected_at: row.connected_at,
            token_status: row.token_status,
            human_agent_enabled: row.human_agent_enabled,
            profile_status: row.profile_status,
            instagram_account_id: row.instagram_account_id,
        }
    }
}

/// A validated Page connection request.
#[derive(Debug, Clone)]
pub struct NewPage {
    /// Meta's Page id: digits.
    pub page_id: PageId,
    /// Display name.
    pub name: Option<String>,
    /// Page access token.
    pub access_token: SecretString,
    /// The Instagram professional account linked to the Page, to connect too.
    pub instagram_account_id: Option<String>,
}

impl NewPage {
    /// Validates raw input.
    pub fn parse(page_id: &str, name: Option<&str>, access_token: &str) -> Result<NewPage, Vec<FieldError>> {
        let mut errors = Vec::new();
        if page_id.is_empty() || page_id.len() > 32 || !page_id.bytes().all(|b| b.is_ascii_digit()) {
            errors.push(FieldError::new(
                "page_id",
                "invalid_page_id",
                "a Page id is 1 to 32 digits",
            ));
        }
        let name = name.map(str::trim).filter(|n| !n.is_empty());
        if name.is_some_and(|n| n.chars().count() > 200) {
            errors.push(FieldError::new(
                "name",
                "too_long",
                "must be at most 200 characters",
            ));
        }
        if let Err(e) = Self::parse_token(access_token) {
            errors.push(e);
        }
        if errors.is_empty() {
            Ok(NewPage {
                page_id: page_id.into(),
                name: name.map(str::to_owned),
                access_token: SecretString::from(access_token.to_owned()),
                instagram_account_id: None,
            })
        } else {
            Err(errors)
        }
    }
}

/// Validates an Instagram professional account id: digits, as Meta gives them.
pub fn parse_instagram_account_id(id: &str) -> Result<String, FieldError> {
    if id.is_empty() || id.len() > 32 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FieldError::new(
            "instagram_account_id",
            "invalid_instagram_account_id",
            "an Instagram account id is 1 to 32 digits",
        ));
    }
    Ok(id.to_owned())
}

impl NewPage {
    /// Validates a Page access token on its own.
    pub fn parse_token(access_token: &str) -> Result<SecretString, FieldError> {
        if access_token.trim().len() < 8
            || access_token.len() > 1000
            || access_token.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(FieldError::new(
                "access_token",
                "invalid_access_token",
                "a Page access token is 8 to 1000 characters without blanks",
            ));
        }
        Ok(SecretString::from(access_token.to_owned()))
    }
}

/// The last four characters of a token, to recognise it.
pub(crate) fn last4(token: &SecretString) -> String {
    use secrecy::ExposeSecret;
    let chars: Vec<char> = token.expose_secret().chars().collect();
    chars.iter().skip(chars.len().saturating_sub(4)).collect()
}

/// The `kind` of a Messenger Page's row (an Instagram account rides on its Page's).
pub const MESSENGER: &str = "messenger";
/// The `kind` of a WhatsApp number's row (see `crate::merchants::whatsapp`).
pub const WHATSAPP: &str = "whatsapp";

/// Connects a Page, its token sealed; a unique violation means it is connected already (to this or
/// another merchant). Only for a Page whose token Meta confirmed (or the demo's, which is no real one).
pub fn connect(
    conn: &mut DbConnection,
    secrets: &Secrets,
    merchant_id: MerchantId,
    new: &NewPage,
) -> QueryResult<Page> {
    use secrecy::ExposeSecret;
    let connected_at = now();
    diesel::insert_into(pages::table)
        .values((
            pages::id.eq(DbUuid(Uuid::now_v7())),
            pages::merchant_id.eq(merchant_id),
            pages::page_id.eq(&new.page_id),
            pages::name.eq(&new.name),
            pages::access_token.eq(secrets.seal(new.access_token.expose_secret()).as_str()),
            pages::token_last4.eq(last4(&new.access_token)),
            pages::connected_at.eq(connected_at),
            pages::instagram_account_id.eq(&new.instagram_account_id),
        ))
        .execute(conn)?;
    get(conn, merchant_id, &new.page_id)
}

/// The merchant's Page with Meta id `page_id` (another merchant's answers `NotFound`).
pub fn get(conn: &mut DbConnection, merchant_id: MerchantId, page_id: &PageId) -> QueryResult<Page> {
    pages::table
        .filter(pages::merchant_id.eq(merchant_id))
        .filter(pages::page_id.eq(page_id))
        .filter(pages::kind.eq(MESSENGER))
        .select(PageRow::as_select())
        .first(conn)
        .map(Page::from)
}

/// A page of the merchant's Pages, ordered by Page id, after `after`.
pub fn list(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    page: crate::db::Keyset,
    limit: i64,
) -> QueryResult<Vec<Page>> {
    let query = pages::table
        .filter(pages::merchant_id.eq(merchant_id))
        .filter(pages::kind.eq(MESSENGER))
        .into_boxed();
    Ok(crate::keyset!(query, pages::id, page)
        .limit(limit)
        .select(PageRow::as_select())
        .load(conn)?
        .into_iter()
        .map(Page::from)
        .collect())
}

/// Every connected Page of every merchant, ordered by Page id (dev mode's simulator offers them).
pub fn list_all(conn: &mut DbConnection, limit: i64) -> QueryResult<Vec<Page>> {
    Ok(pages::table
        .filter(pages::kind.eq(MESSENGER))
        .order(pages::page_id.asc())
        .limit(limit)
        .select(PageRow::as_select())
        .load(conn)?
        .into_iter()
        .map(Page::from)
        .collect())
}

/// Disconnects the merchant's Page; false when it has none with that id.
pub fn disconnect(conn: &mut DbConnection, merchant_id: MerchantId, page_id: &PageId) -> QueryResult<bool> {
    let n = diesel::delete(
        pages::table
            .filter(pages::merchant_id.eq(merchant_id))
            .filter(pages::page_id.eq(page_id))
            .filter(pages::kind.eq(MESSENGER)),
    )
    .execute(conn)?;
    Ok(n == 1)
}

/// The access token as stored (sealed: open it where it is sent) of the Page `page_id` is (or of the
/// Page an Instagram account `page_id` is connected to), unless its token is broken or the Page is not
/// connected.
pub fn access_token(conn: &mut DbConnection, page_id: &PageId) -> QueryResult<Option<Sealed>> {
    let stored: Option<String> = pages::table
        .filter(
            pages::page_id
                .eq(page_id)
                .or(pages::instagram_account_id.eq(page_id)),
        )
        .filter(pages::token_status.eq(TokenStatus::Ok))
        .select(pages::access_token)
        .first(conn)
        .optional()?;
    Ok(stored.map(Sealed::from_stored))
}

/// Why the stored tokens could not all be sealed with the current key.
#[derive(Debug, thiserror::Error)]
pub enum ResealError {
    /// A token opens with neither key.
    #[error("the stored token of Page {page_id}: {error}")]
    Secret {
        /// The Page.
        page_id: PageId,
        /// Why.
        error: SecretsError,
    },
    /// The database failed.
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

/// Seals every stored token (Page and Conversions API) with the current key: the ones stored in plaintext
/// before tokens were encrypted, and the ones only the previous key opens (a rotation). Run at start;
/// idempotent, and a row is rewritten only if it still holds what was read, so instances starting
/// together do no harm. Answers how many tokens were sealed anew; a token neither key opens is an error
/// (the wrong key was given: starting would leave every send failing).
pub fn reseal_tokens(conn: &mut DbConnection, secrets: &Secrets) -> Result<usize, ResealError> {
    let rows: Vec<(DbUuid, PageId, String, Option<String>)> = pages::table
        .select((
            pages::id,
            pages::page_id,
            pages::access_token,
            pages::capi_access_token,
        ))
        .load(conn)?;
    let mut resealed = 0;
    for (id, page_id, token, capi_token) in rows {
        let failed = |error| ResealError::Secret {
            page_id: page_id.clone(),
            error,
        };
        if let Some(sealed) = secrets.reseal(&token).map_err(failed)? {
            resealed += diesel::update(
                pages::table
                    .filter(pages::id.eq(id))
                    .filter(pages::access_token.eq(&token)),
            )
            .set(pages::access_token.eq(sealed.as_str()))
            .execute(conn)?;
        }
        if let Some(capi_token) = capi_token
            && let Some(sealed) = secrets.reseal(&capi_token).map_err(failed)?
        {
            resealed += diesel::update(
                pages::table
                    .filter(pages::id.eq(id))
                    .filter(pages::capi_access_token.eq(&capi_token)),
            )
            .set(pages::capi_access_token.eq(sealed.as_str()))
            .execute(conn)?;
        }
    }
    Ok(resealed)
}

/// Meta refused the Page's token: stop using it until the merchant gives a new one.
pub fn mark_token_broken(conn: &mut DbConnection, page_id: &PageId) -> QueryResult<()> {
    diesel::update(pages::table.filter(pages::page_id.eq(page_id)))
        .set(pages::token_status.eq(TokenStatus::Broken))
        .execute(conn)?;
    tracing::warn!(page.id = %page_id, "Page access token refused by Meta: marked broken");
    Ok(())
}

/// A change to a connected Page.
#[derive(Debug, Clone, Default)]
pub struct PageChange {
    /// A new access token (makes a broken token usable again).
    pub access_token: Option<SecretString>,
    /// Whether the Page has the human-agent permission.
    pub human_agent_enabled: Option<bool>,
    /// Connects (`Some(Some(id))`) or disconnects (`Some(None)`) the Page's Instagram account.
    pub instagram_account_id: Option<Option<String>>,
}

/// Applies a change to the merchant's Page (a new token sealed).
pub fn update(
    conn: &mut DbConnection,
    secrets: &Secrets,
    merchant_id: MerchantId,
    page_id: &PageId,
    change: &PageChange,
) -> QueryResult<Page> {
    use secrecy::ExposeSecret;
    let target = pages::table
        .filter(pages::merchant_id.eq(merchant_id))
        .filter(pages::page_id.eq(page_id))
        .filter(pages::kind.eq(MESSENGER));
    if let Some(token) = &change.access_token {
        diesel::update(target)
            .set((
                pages::access_token.eq(secrets.seal(token.expose_secret()).as_str()),
                pages::token_last4.eq(last4(token)),
                pages::token_status.eq(TokenStatus::Ok),
            ))
            .execute(conn)?;
    }
    if let Some(enabled) = change.human_agent_enabled {
        diesel::update(target)
            .set(pages::human_agent_enabled.eq(enabled))
            .execute(conn)?;
    }
    if let Some(instagram) = &change.instagram_account_id {
        diesel::update(target)
            .set(pages::instagram_account_id.eq(instagram))
            .execute(conn)?;
    }
    get(conn, merchant_id, page_id)
}

/// Records how setting the Page's Messenger profile went (`ok` or `failed: <reason>`).
pub fn set_profile_status(conn: &mut DbConnection, page_id: &PageId, status: &str) -> QueryResult<()> {
    diesel::update(pages::table.filter(pages::page_id.eq(page_id)))
        .set(pages::profile_status.eq(status))
        .execute(conn)?;
    Ok(())
}
