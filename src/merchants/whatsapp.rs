//! A merchant's WhatsApp Cloud API numbers. Each is stored as a row of `pages` of kind `whatsapp`
//! (`page_id` is the phone number's id, the account webhooks name), so its token is sealed, sent with,
//! marked broken and resealed as a Page's is, and the outbox sends through it unchanged.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use secrecy::SecretString;
use uuid::Uuid;

use super::pages::{NewPage, TokenStatus, WHATSAPP};
use crate::db::schema::pages;
use crate::db::{DbConnection, DbUuid, Keyset, now};
use crate::kernel::{FieldError, MerchantId, PageId};
use crate::secrets::Secrets;

/// A connected WhatsApp number, without its token.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = pages)]
pub struct Number {
    /// Our id.
    #[diesel(column_name = id)]
    pub id: DbUuid,
    /// The phone number's id at Meta (webhooks' `metadata.phone_number_id`).
    #[diesel(column_name = page_id)]
    pub phone_number_id: PageId,
    /// The WhatsApp Business Account it belongs to.
    pub waba_id: Option<String>,
    /// The number as WhatsApp shows it.
    pub display_phone_number: Option<String>,
    /// The business name WhatsApp shows.
    #[diesel(column_name = name)]
    pub verified_name: Option<String>,
    /// The Meta catalog linked to the number, for product messages and shoppers' carts.
    pub catalog_id: Option<String>,
    /// The token's last four characters.
    pub token_last4: String,
    /// Whether Meta still takes its token.
    pub token_status: TokenStatus,
    /// Connected (UTC).
    pub connected_at: NaiveDateTime,
}

/// A number to connect, checked.
#[derive(Debug, Clone)]
pub struct NewNumber {
    /// The phone number's id.
    pub phone_number_id: PageId,
    /// Its WhatsApp Business Account.
    pub waba_id: String,
    /// The token (a system user's, with `whatsapp_business_messaging`).
    pub access_token: SecretString,
    /// The linked catalog.
    pub catalog_id: Option<String>,
}

fn digits(field: &str, what: &str, value: &str, errors: &mut Vec<FieldError>) -> String {
    let value = value.trim();
    if value.is_empty() || value.len() > 32 || !value.bytes().all(|b| b.is_ascii_digit()) {
        errors.push(FieldError::new(
            field,
            "invalid_id",
            format!("{what} is 1 to 32 digits, as Meta gives it"),
        ));
    }
    value.to_owned()
}

impl NewNumber {
    /// Checks the ids (digits, as Meta gives them) and the token.
    pub fn parse(
        phone_number_id: &str,
        waba_id: &str,
        access_token: &str,
        catalog_id: Option<&str>,
    ) -> Result<NewNumber, Vec<FieldError>> {
        let mut errors = Vec::new();
        let phone_number_id = digits(
            "phone_number_id",
            "a phone number id",
            phone_number_id,
            &mut errors,
        );
        let waba_id = digits("waba_id", "a WhatsApp Business Account id", waba_id, &mut errors);
        let catalog_id = catalog_id.map(|c| digits("catalog_id", "a catalog id", c, &mut errors));
        if let Err(mut e) = NewPage::parse_token(access_token) {
            e.detail = "an access token is 8 to 1000 characters without blanks".into();
            errors.push(e);
        }
        if errors.is_empty() {
            Ok(NewNumber {
                phone_number_id: phone_number_id.into(),
                waba_id,
                access_token: SecretString::from(access_token.to_owned()),
                catalog_id,
            })
        } else {
            Err(errors)
        }
    }
}

/// Connects a number Meta confirmed (`crate::channels::meta::ownership::confirm_whatsapp`), its token
/// sealed, with what Meta said of it; a unique violation means it (or a Page with its id) is connected
/// already.
pub fn connect(
    conn: &mut DbConnection,
    secrets: &Secrets,
    merchant_id: MerchantId,
    new: &NewNumber,
    described: &crate::channels::meta::graph::WhatsappNumber,
) -> QueryResult<Number> {
    use secrecy::ExposeSecret;
    let id = Uuid::now_v7();
    let token = new.access_token.expose_secret();
    diesel::insert_into(pages::table)
        .values((
            pages::id.eq(DbUuid(id)),
            pages::merchant_id.eq(merchant_id),
            pages::page_id.eq(&new.phone_number_id),
            pages::kind.eq(WHATSAPP),
            pages::name.eq(&described.verified_name),
            pages::display_phone_number.eq(&described.display_phone_number),
            pages::waba_id.eq(&new.waba_id),
            pages::catalog_id.eq(&new.catalog_id),
            pages::access_token.eq(secrets.seal(token).as_str()),
            pages::token_last4.eq(super::pages::last4(&new.access_token)),
            pages::connected_at.eq(now()),
            // WhatsApp has no Messenger profile to set.
            pages::profile_status.eq("none"),
        ))
        .execute(conn)?;
    get(conn, merchant_id, id)?.ok_or(diesel::result::Error::NotFound)
}

/// A change to a connected number, checked: a new token, a new catalog (or none).
#[derive(Debug, Clone, Default)]
pub struct NumberChange {
    /// The new token (to be confirmed with Meta before it is stored).
    pub access_token: Option<SecretString>,
    /// The new catalog; `Some(None)` unlinks it.
    pub catalog_id: Option<Option<String>>,
}

impl NumberChange {
    /// Checks the fields given; at least one is.
    pub fn parse(
        access_token: Option<&str>,
        catalog_id: Option<Option<&str>>,
    ) -> Result<NumberChange, Vec<FieldError>> {
        let mut errors = Vec::new();
        if access_token.is_none() && catalog_id.is_none() {
            errors.push(FieldError::new(
                "body",
                "nothing_to_change",
                "give access_token, catalog_id or both",
            ));
        }
        if let Some(token) = access_token
            && let Err(mut e) = NewPage::parse_token(token)
        {
            e.detail = "an access token is 8 to 1000 characters without blanks".into();
            errors.push(e);
        }
        let catalog_id = catalog_id.map(|c| c.map(|c| digits("catalog_id", "a catalog id", c, &mut errors)));
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(NumberChange {
            access_token: access_token.map(|t| SecretString::from(t.to_owned())),
            catalog_id,
        })
    }
}

/// Applies `change` to the merchant's number `id` (a new token only once Meta confirmed it sees the
/// number, with what Meta said of it: `described`); its token is sealed again and marked working.
/// `None` when the merchant has no such number.
pub fn update(
    conn: &mut DbConnection,
    secrets: &Secrets,
    merchant_id: MerchantId,
    id: Uuid,
    change: &NumberChange,
    described: Option<&crate::channels::meta::graph::WhatsappNumber>,
) -> QueryResult<Option<Number>> {
    use secrecy::ExposeSecret;
    let token = change.access_token.as_ref().map(|t| {
        (
            pages::access_token.eq(secrets.seal(t.expose_secret()).as_str().to_owned()),
            pages::token_last4.eq(super::pages::last4(t)),
            pages::token_status.eq(TokenStatus::Ok),
        )
    });
    let described = described.map(|d| {
        (
            pages::name.eq(d.verified_name.clone()),
            pages::display_phone_number.eq(d.display_phone_number.clone()),
        )
    });
    let catalog = change.catalog_id.clone().map(|c| pages::catalog_id.eq(c));
    let n = diesel::update(
        pages::table
            .filter(pages::merchant_id.eq(merchant_id))
            .filter(pages::kind.eq(WHATSAPP))
            .filter(pages::id.eq(DbUuid(id))),
    )
    .set((token, described, catalog))
    .execute(conn)?;
    if n == 0 {
        return Ok(None);
    }
    get(conn, merchant_id, id)
}

fn mine(merchant_id: MerchantId) -> pages::BoxedQuery<'static, crate::db::MultiBackend> {
    pages::table
        .filter(pages::merchant_id.eq(merchant_id))
        .filter(pages::kind.eq(WHATSAPP))
        .into_boxed()
}

/// The merchant's number `id`.
pub fn get(conn: &mut DbConnection, merchant_id: MerchantId, id: Uuid) -> QueryResult<Option<Number>> {
    mine(merchant_id)
        .filter(pages::id.eq(DbUuid(id)))
        .select(Number::as_select())
        .first(conn)
        .optional()
}

/// The merchant's number whose Meta id is `phone_number_id`.
pub fn find(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    phone_number_id: &str,
) -> QueryResult<Option<Number>> {
    mine(merchant_id)
        .filter(pages::page_id.eq(phone_number_id))
        .select(Number::as_select())
        .first(conn)
        .optional()
}

/// The merchant's numbers, newest connected first (see [`Keyset`]).
pub fn list(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    page: Keyset,
    limit: i64,
) -> QueryResult<Vec<Number>> {
    crate::keyset!(mine(merchant_id), pages::id, page)
        .limit(limit)
        .select(Number::as_select())
        .load(conn)
}

/// Disconnects the merchant's number `id`; false when it has none.
pub fn delete(conn: &mut DbConnection, merchant_id: MerchantId, id: Uuid) -> QueryResult<bool> {
    let n = diesel::delete(
        pages::table
            .filter(pages::merchant_id.eq(merchant_id))
            .filter(pages::kind.eq(WHATSAPP))
            .filter(pages::id.eq(DbUuid(id))),
    )
    .execute(conn)?;
    Ok(n == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_digits_and_the_token_has_no_blanks() {
        let errors = NewNumber::parse("12ab", "", "short", Some("x"))
            .err()
            .unwrap_or_default();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["phone_number_id", "waba_id", "catalog_id", "access_token"]
        );
        assert!(NewNumber::parse("106540352242922", "102290129340398", "EAAG-whatsapp-1234", None).is_ok());
    }
}
