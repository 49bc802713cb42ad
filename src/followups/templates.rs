//! Utility message templates: the messages a business may send a shopper on Messenger or WhatsApp
//! after the messaging window closed (order and booking updates, reminders; never promotion). Meta
//! approves each template per Page (on Messenger) or per WhatsApp Business Account (on WhatsApp, where
//! one account's templates serve each of its numbers), purpose and language; its status follows Meta's
//! answer and then Meta's template status webhook. The merchant writes the body with named placeholders
//! (`{first_name}`); Meta gets them as `{{1}}`, `{{2}}` ... with example values.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::{Value, json};

use crate::db::schema::{message_templates, pages};
use crate::db::{DbConnection, DbUuid, now};
use crate::kernel::{FieldError, MerchantId, PageId};

crate::text_state! {
    /// What a template is for: one update the business owes the shopper.
    Purpose {
        /// A payment completed (the receipt).
        OrderPaid = "order_paid",
        /// Money went back.
        OrderRefunded = "order_refunded",
        /// A stay is booked.
        BookingConfirmed = "booking_confirmed",
        /// The day before arrival.
        BookingReminder = "booking_reminder",
        /// A stay was cancelled.
        BookingCancelled = "booking_cancelled",
    }
}

crate::text_state! {
    /// Where Meta's review of a template stands.
    TemplateStatus {
        /// Submitted, not decided yet.
        Pending = "pending",
        /// May be sent.
        Approved = "approved",
        /// Refused; `reason` says why.
        Rejected = "rejected",
        /// Paused, disabled or otherwise not to be sent now (`reason` holds Meta's event).
        Unavailable = "unavailable",
    }
}

/// A placeholder a template body may hold, and the example Meta reviews it with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    /// The shopper's first name (or "there" when unknown).
    FirstName,
    /// The order's number.
    OrderNumber,
    /// An amount with its currency (the order's total, or the refunded amount).
    Amount,
    /// The room type's name.
    Room,
    /// The arrival date.
    Arrival,
    /// The departure date.
    Departure,
}

impl Placeholder {
    /// Its name between braces in a body.
    pub fn name(self) -> &'static str {
        match self {
            Placeholder::FirstName => "first_name",
            Placeholder::OrderNumber => "order_number",
            Placeholder::Amount => "amount",
            Placeholder::Room => "room",
            Placeholder::Arrival => "arrival",
            Placeholder::Departure => "departure",
        }
    }

    fn example(self) -> &'static str {
        match self {
            Placeholder::FirstName => "Anna",
            Placeholder::OrderNumber => "CS-1042",
            Placeholder::Amount => "€49.00",
            Placeholder::Room => "Sea view room",
            Placeholder::Arrival => "12 March 2027",
            Placeholder::Departure => "15 March 2027",
        }
    }
}

impl Purpose {
    /// Every purpose.
    pub const ALL: [Purpose; 5] = [
        Purpose::OrderPaid,
        Purpose::OrderRefunded,
        Purpose::BookingConfirmed,
        Purpose::BookingReminder,
        Purpose::BookingCancelled,
    ];

    /// The placeholders a body for this purpose may use.
    pub fn placeholders(self) -> &'static [Placeholder] {
        use Placeholder::*;
        match self {
            Purpose::OrderPaid | Purpose::OrderRefunded => &[FirstName, OrderNumber, Amount],
            Purpose::BookingConfirmed => &[FirstName, Room, Arrival, Departure],
            Purpose::BookingReminder | Purpose::BookingCancelled => &[FirstName, Room, Arrival],
        }
    }
}

/// The most characters of a body (Meta's limit for a template's body).
pub const MAX_BODY: usize = 1024;

/// Words that make a message promotional, which utility templates must never be (Meta re-categorises
/// or rejects them), in English and French; matched as whole words.
const PROMOTIONAL_WORDS: [&str; 13] = [
    "sale",
    "sales",
    "discount",
    "discounts",
    "promo",
    "promotion",
    "deal",
    "deals",
    "coupon",
    "soldes",
    "remise",
    "réduction",
    "promos",
];

/// Phrases that make a message promotional.
const PROMOTIONAL_PHRASES: [&str; 4] = ["% off", "buy now", "code promo", "bon plan"];

/// The wording the demo merchants' approved templates use, and a starting point for a merchant's own.
pub fn example_body(purpose: Purpose, language: &str) -> Option<&'static str> {
    Some(match (purpose, language) {
        (Purpose::OrderPaid, "en") => {
            "Hi {first_name}, your order {order_number} of {amount} is paid. Thank you!"
        }
        (Purpose::OrderPaid, "fr") => {
            "Bonjour {first_name}, votre commande {order_number} de {amount} est payée. Merci !"
        }
        (Purpose::OrderRefunded, "en") => {
            "Hi {first_name}, {amount} of your order {order_number} is refunded."
        }
        (Purpose::OrderRefunded, "fr") => {
            "Bonjour {first_name}, {amount} de votre commande {order_number} vous sont remboursés."
        }
        (Purpose::BookingConfirmed, "en") => {
            "Hi {first_name}, your stay in the {room} from {arrival} to {departure} is confirmed."
        }
        (Purpose::BookingConfirmed, "fr") => {
            "Bonjour {first_name}, votre séjour en {room} du {arrival} au {departure} est confirmé."
        }
        (Purpose::BookingReminder, "en") => {
            "Hi {first_name}, see you tomorrow: your {room} is ready for {arrival}."
        }
        (Purpose::BookingReminder, "fr") => {
            "Bonjour {first_name}, à demain : votre {room} vous attend le {arrival}."
        }
        (Purpose::BookingCancelled, "en") => {
            "Hi {first_name}, your stay in the {room} from {arrival} is cancelled."
        }
        (Purpose::BookingCancelled, "fr") => {
            "Bonjour {first_name}, votre séjour en {room} à partir du {arrival} est annulé."
        }
        _ => return None,
    })
}

/// A body split into text and placeholders, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    Slot(Placeholder),
}

/// Reads a body's pieces; `Err` names the first `{...}` that is no placeholder of `allowed`.
fn pieces<'a>(body: &'a str, allowed: &[Placeholder]) -> Result<Vec<Piece<'a>>, String> {
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            out.push(Piece::Text(&rest[..open]));
        }
        let Some(close) = rest[open..].find('}') else {
            return Err(rest[open..].chars().take(20).collect());
        };
        let name = &rest[open + 1..open + close];
        match allowed.iter().find(|p| p.name() == name) {
            Some(p) => out.push(Piece::Slot(*p)),
            None => return Err(format!("{{{name}}}")),
        }
        rest = &rest[open + close + 1..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    Ok(out)
}

/// A validated new template.
#[derive(Debug, Clone)]
pub struct NewTemplate {
    /// The Page it is submitted for.
    pub page_id: PageId,
    /// What it is for.
    pub purpose: Purpose,
    /// Its language (`en`, `fr`, `en_US`).
    pub language: String,
    /// Its body, with named placeholders.
    pub body: String,
}

impl NewTemplate {
    /// Validates a template; errors name the fields.
    pub fn parse(
        page_id: PageId,
        purpose: &str,
        language: &str,
        body: &str,
    ) -> Result<NewTemplate, Vec<FieldError>> {
        let mut errors = Vec::new();
        let purpose = Purpose::parse(purpose);
        if purpose.is_none() {
            errors.push(FieldError::new(
                "purpose",
                "invalid_purpose",
                "the purpose is one of order_paid, order_refunded, booking_confirmed, booking_reminder, \
                 booking_cancelled",
            ));
        }
        if !is_language(language) {
            errors.push(FieldError::new(
                "language",
                "invalid_language",
                format!("`{language}` is not a language such as en, fr or en_US"),
            ));
        }
        let body = body.trim();
        if body.is_empty() || body.chars().count() > MAX_BODY {
            errors.push(FieldError::new(
                "body",
                "invalid_body",
                format!("the body takes 1 to {MAX_BODY} characters"),
            ));
        } else if let Some(purpose) = purpose {
            errors.extend(body_errors(body, purpose));
        }
        match purpose {
            Some(purpose) if errors.is_empty() => Ok(NewTemplate {
                page_id,
                purpose,
                language: language.to_owned(),
                body: body.to_owned(),
            }),
            _ => Err(errors),
        }
    }

    /// The name Meta knows it by: unique per Page, purpose and language.
    pub fn meta_name(&self) -> String {
        format!(
            "threadcart_{}_{}",
            self.purpose.as_str(),
            self.language.to_ascii_lowercase()
        )
    }

    /// The body of `POST /{page-id}/message_templates` (Messenger) and of `POST /{waba-id}/
    /// message_templates` (WhatsApp, the same shape): a UTILITY template whose body has Meta's
    /// positional placeholders and one example value for each.
    pub fn meta_request(&self) -> Value {
        let (text, slots) = positional(&self.body, self.purpose);
        let examples: Vec<&str> = slots.iter().map(|p| p.example()).collect();
        let mut body = json!({"type": "BODY", "text": text});
        if !examples.is_empty() {
            body["example"] = json!({"body_text": [examples]});
        }
        json!({
            "name": self.meta_name(),
            "language": self.language,
            "category": "UTILITY",
            "components": [body],
        })
    }
}

/// What is wrong with a body of `purpose`: an unknown placeholder, one at either end or two side by
/// side (Meta rejects those), or promotional wording.
fn body_errors(body: &str, purpose: Purpose) -> Vec<FieldError> {
    let mut errors = Vec::new();
    match pieces(body, purpose.placeholders()) {
        Err(bad) => {
            let allowed: Vec<String> = purpose
                .placeholders()
                .iter()
                .map(|p| format!("{{{}}}", p.name()))
                .collect();
            errors.push(FieldError::new(
                "body",
                "unknown_placeholder",
                format!(
                    "`{bad}` is not a placeholder of {}: use {}",
                    purpose.as_str(),
                    allowed.join(", ")
                ),
            ));
        }
        Ok(pieces) => {
            let slot = |p: Option<&Piece<'_>>| matches!(p, Some(Piece::Slot(_)));
            if slot(pieces.first()) || slot(pieces.last()) {
                errors.push(FieldError::new(
                    "body",
                    "placeholder_at_edge",
                    "the body may not start or end with a placeholder (Meta rejects it)",
                ));
            }
            if pieces
                .windows(2)
                .any(|w| matches!(w, [Piece::Slot(_), Piece::Slot(_)]))
            {
                errors.push(FieldError::new(
                    "body",
                    "adjacent_placeholders",
                    "two placeholders need text between them (Meta rejects them side by side)",
                ));
            }
        }
    }
    let lower = body.to_lowercase();
    let words: Vec<&str> = lower.split(|c: char| !c.is_alphanumeric()).collect();
    let promotional = PROMOTIONAL_WORDS
        .iter()
        .find(|w| words.contains(w))
        .or_else(|| PROMOTIONAL_PHRASES.iter().find(|p| lower.contains(*p)));
    if let Some(word) = promotional {
        errors.push(FieldError::new(
            "body",
            "promotional",
            format!("a utility message may not promote (it says `{word}`): only the update itself"),
        ));
    }
    errors
}

/// The body with Meta's `{{1}}`, `{{2}}` ... and the placeholder each stands for.
fn positional(body: &str, purpose: Purpose) -> (String, Vec<Placeholder>) {
    let mut text = String::new();
    let mut slots = Vec::new();
    for piece in pieces(body, purpose.placeholders()).unwrap_or_default() {
        match piece {
            Piece::Text(t) => text.push_str(t),
            Piece::Slot(p) => {
                slots.push(p);
                text.push_str(&format!("{{{{{}}}}}", slots.len()));
            }
        }
    }
    (text, slots)
}

/// The values of a template's placeholders, in the order Meta numbered them, for a send.
pub fn parameters(body: &str, purpose: Purpose, value: impl Fn(Placeholder) -> String) -> Vec<String> {
    positional(body, purpose).1.into_iter().map(value).collect()
}

/// The body with each placeholder replaced by its value: what the shopper reads.
pub fn fill(body: &str, purpose: Purpose, value: impl Fn(Placeholder) -> String) -> String {
    pieces(body, purpose.placeholders())
        .unwrap_or_default()
        .into_iter()
        .map(|piece| match piece {
            Piece::Text(t) => t.to_owned(),
            Piece::Slot(p) => value(p),
        })
        .collect()
}

/// Whether `language` names a language as Meta's templates do: `en`, `fr`, `en_US`.
fn is_language(language: &str) -> bool {
    let (lang, region) = language.split_once('_').unwrap_or((language, ""));
    lang.len() == 2
        && lang.bytes().all(|b| b.is_ascii_lowercase())
        && (region.is_empty() || (region.len() == 2 && region.bytes().all(|b| b.is_ascii_uppercase())))
}

/// Meta's answer to a submission, or its review on the webhook, as a status and a reason.
pub fn status_of(meta_status: &str, reason: Option<&str>) -> (TemplateStatus, Option<String>) {
    let reason = reason
        .filter(|r| !r.is_empty() && *r != "NONE")
        .map(str::to_owned);
    match meta_status.to_ascii_uppercase().as_str() {
        "APPROVED" | "REINSTATED" | "UNARCHIVED" => (TemplateStatus::Approved, None),
        "PENDING" | "IN_APPEAL" => (TemplateStatus::Pending, reason),
        "REJECTED" => (TemplateStatus::Rejected, reason),
        other => (
            TemplateStatus::Unavailable,
            Some(reason.unwrap_or_else(|| other.to_owned())),
        ),
    }
}

/// A stored template.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = message_templates)]
pub struct Template {
    /// Id.
    pub id: DbUuid,
    /// Merchant.
    pub merchant_id: MerchantId,
    /// The Page it was submitted for.
    pub page_id: PageId,
    /// What it is for.
    pub purpose: Purpose,
    /// Its language.
    pub language: String,
    /// The name Meta knows it by.
    pub name: String,
    /// The body, with named placeholders.
    pub body: String,
    /// Meta's id.
    pub meta_template_id: Option<String>,
    /// Where Meta's review stands.
    pub status: TemplateStatus,
    /// Why rejected or unavailable.
    pub reason: Option<String>,
    /// Created.
    pub created_at: NaiveDateTime,
    /// Changed.
    pub updated_at: NaiveDateTime,
}

/// Stores a template Meta answered for (`meta_id`, `status`, `reason`).
pub fn insert(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    new: &NewTemplate,
    meta_id: &str,
    (status, reason): (TemplateStatus, Option<String>),
) -> QueryResult<Template> {
    let at = now();
    let id = DbUuid(uuid::Uuid::now_v7());
    diesel::insert_into(message_templates::table)
        .values((
            message_templates::id.eq(id),
            message_templates::merchant_id.eq(merchant_id),
            message_templates::page_id.eq(&new.page_id),
            message_templates::purpose.eq(new.purpose),
            message_templates::language.eq(&new.language),
            message_templates::name.eq(new.meta_name()),
            message_templates::body.eq(&new.body),
            message_templates::meta_template_id.eq(meta_id),
            message_templates::status.eq(status),
            message_templates::reason.eq(reason),
            message_templates::created_at.eq(at),
            message_templates::updated_at.eq(at),
        ))
        .execute(conn)?;
    message_templates::table
        .find(id)
        .select(Template::as_select())
        .first(conn)
}

/// The Pages whose templates `page_id` may send: itself, and for a WhatsApp number every number of the
/// same merchant on its WhatsApp Business Account (Meta keeps WhatsApp templates per account).
pub fn sharing(conn: &mut DbConnection, page_id: &PageId) -> QueryResult<Vec<PageId>> {
    let row: Option<(MerchantId, String, Option<String>)> = pages::table
        .filter(pages::page_id.eq(page_id))
        .select((pages::merchant_id, pages::kind, pages::waba_id))
        .first(conn)
        .optional()?;
    match row {
        Some((merchant_id, kind, Some(waba))) if kind == crate::merchants::pages::WHATSAPP => pages::table
            .filter(pages::merchant_id.eq(merchant_id))
            .filter(pages::kind.eq(kind))
            .filter(pages::waba_id.eq(waba))
            .select(pages::page_id)
            .load(conn),
        _ => Ok(vec![page_id.clone()]),
    }
}

/// The template for `purpose` in `language` that `page_id` already has (its own, or for a WhatsApp
/// number, one of its account's): the Page it was submitted for.
pub fn existing(
    conn: &mut DbConnection,
    page_id: &PageId,
    purpose: Purpose,
    language: &str,
) -> QueryResult<Option<PageId>> {
    let holders = sharing(conn, page_id)?;
    message_templates::table
        .filter(message_templates::page_id.eq_any(holders))
        .filter(message_templates::purpose.eq(purpose))
        .filter(message_templates::language.eq(language))
        .select(message_templates::page_id)
        .first(conn)
        .optional()
}

/// A page of the merchant's templates (newest first unless the keyset says otherwise).
pub fn list(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    page: crate::db::Keyset,
    limit: i64,
) -> QueryResult<Vec<Template>> {
    let query = message_templates::table
        .filter(message_templates::merchant_id.eq(merchant_id))
        .into_boxed();
    crate::keyset!(query, message_templates::id, page)
        .limit(limit)
        .select(Template::as_select())
        .load(conn)
}

/// The merchant's template `id`.
pub fn get(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    id: uuid::Uuid,
) -> QueryResult<Option<Template>> {
    message_templates::table
        .filter(message_templates::id.eq(DbUuid(id)))
        .filter(message_templates::merchant_id.eq(merchant_id))
        .select(Template::as_select())
        .first(conn)
        .optional()
}

/// Forgets the merchant's template `id`; false when there was none.
pub fn delete(conn: &mut DbConnection, merchant_id: MerchantId, id: uuid::Uuid) -> QueryResult<bool> {
    let gone = diesel::delete(
        message_templates::table
            .filter(message_templates::id.eq(DbUuid(id)))
            .filter(message_templates::merchant_id.eq(merchant_id)),
    )
    .execute(conn)?;
    Ok(gone > 0)
}

/// The approved template `page_id` may send for `purpose` (see [`sharing`]), in the shopper's language
/// when there is one, else in English, else in any language.
pub fn approved_for(
    conn: &mut DbConnection,
    page_id: &PageId,
    purpose: Purpose,
    locale: Option<&str>,
) -> QueryResult<Option<Template>> {
    let holders = sharing(conn, page_id)?;
    let all: Vec<Template> = message_templates::table
        .filter(message_templates::page_id.eq_any(holders))
        .filter(message_templates::purpose.eq(purpose))
        .filter(message_templates::status.eq(TemplateStatus::Approved))
        .order(message_templates::id.asc())
        .select(Template::as_select())
        .load(conn)?;
    let language = locale.and_then(|l| l.split(['_', '-']).next()).unwrap_or("en");
    let base = |t: &Template| t.language.split('_').next().map(str::to_owned);
    let pick = all
        .iter()
        .find(|t| locale.is_some_and(|l| l.replace('-', "_") == t.language))
        .or_else(|| all.iter().find(|t| base(t).as_deref() == Some(language)))
        .or_else(|| all.iter().find(|t| base(t).as_deref() == Some("en")))
        .or_else(|| all.first());
    Ok(pick.cloned())
}

/// Whose templates a review is about: the entry's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reviewed {
    /// A Page's (`"object": "page"`).
    Page(PageId),
    /// A WhatsApp Business Account's (`"object": "whatsapp_business_account"`): its numbers'.
    WhatsappAccount(String),
}

/// A review Meta sent on the webhook (`message_template_status_update`, also spelled
/// `messenger_template_status_update` on Messenger).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    /// The Page or WhatsApp Business Account (the entry's id).
    pub owner: Reviewed,
    /// Meta's template id.
    pub meta_template_id: Option<String>,
    /// The template's name and language, when the id is missing.
    pub name: Option<String>,
    /// Meta's event (`APPROVED`, `REJECTED`, `PAUSED` ...).
    pub event: String,
    /// Meta's reason.
    pub reason: Option<String>,
}

/// The template reviews in a webhook body (`entry[].changes[]` of either field name).
pub fn status_changes(body: &Value) -> Vec<StatusChange> {
    let mut out = Vec::new();
    let whatsapp = body["object"] == "whatsapp_business_account";
    for entry in body["entry"].as_array().into_iter().flatten() {
        let Some(page) = entry["id"]
            .as_str()
            .map(str::to_owned)
            .or_else(|| entry["id"].as_i64().map(|i| i.to_string()))
        else {
            continue;
        };
        for change in entry["changes"].as_array().into_iter().flatten() {
            let field = change["field"].as_str().unwrap_or_default();
            if field != "message_template_status_update" && field != "messenger_template_status_update" {
                continue;
            }
            let v = &change["value"];
            let id = v["message_template_id"]
                .as_str()
                .map(str::to_owned)
                .or_else(|| v["message_template_id"].as_i64().map(|i| i.to_string()));
            let Some(event) = v["event"].as_str() else {
                continue;
            };
            let reason = v["rejection_info"]["reason"]
                .as_str()
                .or_else(|| v["reason"].as_str())
                .map(str::to_owned);
            out.push(StatusChange {
                owner: if whatsapp {
                    Reviewed::WhatsappAccount(page.clone())
                } else {
                    Reviewed::Page(PageId::from(page.as_str()))
                },
                meta_template_id: id,
                name: v["message_template_name"].as_str().map(str::to_owned),
                event: event.to_owned(),
                reason,
            });
        }
    }
    out
}

/// Applies reviews to the stored templates (by Meta's id, else by the name) of the reviewed Page or of
/// the reviewed WhatsApp Business Account's numbers; applying one twice changes nothing more. Answers
/// how many templates changed.
pub fn apply_status_changes(conn: &mut DbConnection, changes: &[StatusChange]) -> QueryResult<usize> {
    let mut changed = 0;
    for c in changes {
        let (status, reason) = status_of(&c.event, c.reason.as_deref());
        let set = (
            message_templates::status.eq(status),
            message_templates::reason.eq(reason),
            message_templates::updated_at.eq(now()),
        );
        let holders: Vec<PageId> = match &c.owner {
            Reviewed::Page(page) => vec![page.clone()],
            Reviewed::WhatsappAccount(waba) => pages::table
                .filter(pages::kind.eq(crate::merchants::pages::WHATSAPP))
                .filter(pages::waba_id.eq(waba))
                .select(pages::page_id)
                .load(conn)?,
        };
        let theirs = message_templates::page_id.eq_any(holders);
        changed += match (&c.meta_template_id, &c.name) {
            (Some(id), _) => diesel::update(
                message_templates::table
                    .filter(theirs)
                    .filter(message_templates::meta_template_id.eq(id)),
            )
            .set(set)
            .execute(conn)?,
            (None, Some(name)) => diesel::update(
                message_templates::table
                    .filter(theirs)
                    .filter(message_templates::name.eq(name)),
            )
            .set(set)
            .execute(conn)?,
            (None, None) => 0,
        };
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(purpose: &str, language: &str, body: &str) -> Result<NewTemplate, Vec<FieldError>> {
        NewTemplate::parse(PageId::from("1000000001"), purpose, language, body)
    }

    fn codes(result: Result<NewTemplate, Vec<FieldError>>) -> Vec<&'static str> {
        result
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.code)
            .collect()
    }

    #[test]
    fn a_receipt_template_becomes_metas_positional_body_with_examples() {
        let t = parse(
            "order_paid",
            "en",
            "Hi {first_name}, your order {order_number} of {amount} is paid. Thank you!",
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(t.meta_name(), "threadcart_order_paid_en");
        assert_eq!(
            t.meta_request(),
            json!({"name": "threadcart_order_paid_en", "language": "en", "category": "UTILITY",
                   "components": [{"type": "BODY",
                       "text": "Hi {{1}}, your order {{2}} of {{3}} is paid. Thank you!",
                       "example": {"body_text": [["Anna", "CS-1042", "€49.00"]]}}]})
        );
        assert_eq!(
            parameters(&t.body, t.purpose, |p| p.name().to_uppercase()),
            ["FIRST_NAME", "ORDER_NUMBER", "AMOUNT"]
        );
    }

    #[test]
    fn a_placeholder_of_another_purpose_is_refused_naming_the_allowed_ones() {
        let e = parse("order_paid", "en", "Your stay in {room} is booked.")
            .err()
            .unwrap_or_default();
        assert_eq!(e[0].code, "unknown_placeholder");
        assert!(
            e[0].detail.contains("{first_name}, {order_number}, {amount}"),
            "{}",
            e[0].detail
        );
    }

    #[test]
    fn meta_s_formatting_rules_are_checked_before_submitting() {
        assert_eq!(
            codes(parse("order_paid", "en", "{first_name}, paid.")),
            ["placeholder_at_edge"]
        );
        assert_eq!(
            codes(parse("order_paid", "en", "Paid: {order_number}")),
            ["placeholder_at_edge"]
        );
        assert_eq!(
            codes(parse("order_paid", "en", "Hi {first_name}{order_number} paid.")),
            ["adjacent_placeholders"]
        );
        assert_eq!(
            codes(parse("order_paid", "en", "Paid! Enjoy 10% off your next order.")),
            ["promotional"]
        );
        assert_eq!(
            codes(parse("order_paid", "fr", "Payé ! Profitez des soldes.")),
            ["promotional"]
        );
    }

    #[test]
    fn every_example_body_is_a_valid_template_of_its_purpose() {
        for purpose in Purpose::ALL {
            for language in ["en", "fr"] {
                let body = example_body(purpose, language).unwrap_or_default();
                assert!(
                    parse(purpose.as_str(), language, body).is_ok(),
                    "{purpose} {language}: {body}"
                );
            }
        }
        // Words that only contain a promotional one are fine.
        assert!(
            parse(
                "booking_confirmed",
                "en",
                "Hi {first_name}, the {room} you were offered is booked for {arrival}."
            )
            .is_ok()
        );
    }

    #[test]
    fn purpose_language_and_body_are_each_named_when_wrong() {
        assert_eq!(
            codes(parse("newsletter", "english", " ")),
            ["invalid_purpose", "invalid_language", "invalid_body"]
        );
        assert!(
            parse(
                "booking_reminder",
                "fr_FR",
                "Bonjour {first_name}, à demain pour {room} !"
            )
            .is_ok()
        );
    }

    #[test]
    fn meta_s_events_map_to_our_statuses() {
        assert_eq!(
            status_of("APPROVED", Some("NONE")),
            (TemplateStatus::Approved, None)
        );
        assert_eq!(
            status_of("REJECTED", Some("TAG_SHOULD_BE_MARKETING")),
            (TemplateStatus::Rejected, Some("TAG_SHOULD_BE_MARKETING".into()))
        );
        assert_eq!(
            status_of("PAUSED", None),
            (TemplateStatus::Unavailable, Some("PAUSED".into()))
        );
        assert_eq!(status_of("PENDING", None), (TemplateStatus::Pending, None));
    }

    #[test]
    fn reviews_are_read_under_either_field_name() {
        let body = json!({"object": "page", "entry": [{"id": "1000000001", "time": 1, "changes": [
            {"field": "message_template_status_update",
             "value": {"event": "APPROVED", "message_template_id": 1689556908129832_i64,
                       "message_template_name": "threadcart_order_paid_en", "reason": "NONE"}},
            {"field": "messenger_template_status_update",
             "value": {"event": "REJECTED", "message_template_id": "77", "reason": "INVALID_FORMAT",
                       "rejection_info": {"reason": "Parameters side by side."}}},
            {"field": "feed", "value": {}}]}]});
        let changes = status_changes(&body);
        assert_eq!(changes.len(), 2);
        assert_eq!(changes[0].meta_template_id.as_deref(), Some("1689556908129832"));
        assert_eq!(changes[1].event, "REJECTED");
        assert_eq!(changes[1].reason.as_deref(), Some("Parameters side by side."));
        assert_eq!(changes[0].owner, Reviewed::Page(PageId::from("1000000001")));
    }

    #[test]
    fn a_whatsapp_review_is_about_the_business_accounts_templates() {
        // whatsapp.md §3.1: the entry is the WhatsApp Business Account.
        let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398",
            "time": 1_765_000_000, "changes": [{"field": "message_template_status_update",
            "value": {"event": "PAUSED", "message_template_id": 806312974732579_i64,
                      "message_template_name": "threadcart_order_paid_en",
                      "message_template_language": "en", "reason": null,
                      "message_template_category": "UTILITY"}}]}]});
        let changes = status_changes(&body);
        assert_eq!(
            changes,
            [StatusChange {
                owner: Reviewed::WhatsappAccount("102290129340398".into()),
                meta_template_id: Some("806312974732579".into()),
                name: Some("threadcart_order_paid_en".into()),
                event: "PAUSED".into(),
                reason: None,
            }]
        );
    }
}
