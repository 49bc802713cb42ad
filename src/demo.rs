//! The demo merchants of `fixtures/demo.json` (a shoe shop and a hotel), loaded idempotently: running it
//! again finds them by slug, keeps their stock, and leaves one copy of everything.
//!
//! Their API keys are public (they are in the repository): demo merchants are for trying threadcart out.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::{Role, keys};
use crate::bookings;
use crate::catalog::import::{ImportProduct, ImportVariant};
use crate::catalog::wire::ProductCreate;
use crate::catalog::{self, CatalogError};
use crate::db::{Db, DbConnection, write_transaction};
use crate::kernel::{MerchantId, PageId, RetailerId};
use crate::merchants::pages::{self, NewPage};
use crate::merchants::{self, Merchant, NewMerchant};
use crate::money::MoneyDto;
use crate::secrets::Secrets;

/// The fixture, embedded so the binary carries it wherever it runs.
const DEMO_JSON: &str = include_str!("../fixtures/demo.json");

#[derive(Deserialize)]
struct Fixture {
    merchants: Vec<DemoMerchant>,
}

#[derive(Deserialize)]
struct DemoMerchant {
    slug: String,
    name: String,
    currency: String,
    timezone: String,
    api_key: String,
    page: DemoPage,
    #[serde(default)]
    whatsapp: Option<DemoWhatsapp>,
    webchat: DemoWebchat,
    products: Vec<ProductCreate>,
    #[serde(default)]
    offers: Vec<DemoOffer>,
    #[serde(default)]
    discounts: Vec<DemoDiscount>,
    #[serde(default)]
    bookables: Vec<DemoBookable>,
    #[serde(default)]
    agents: Vec<DemoAgent>,
}

/// An agent of the demo merchant, with their fixed (public) key.
#[derive(Deserialize)]
struct DemoAgent {
    name: String,
    email: String,
    languages: Vec<String>,
    skills: Vec<String>,
    max_threads: i64,
    api_key: String,
}

/// A demo agent as `threadcart demo` prints them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadedAgent {
    /// Name.
    pub name: String,
    /// Email.
    pub email: String,
    /// Their own public API key (role `agent`).
    pub api_key: String,
}

/// A room type; Friday and Saturday nights cost `weekend_price` for the next [`WEEKEND_RATE_DAYS`].
#[derive(Deserialize)]
struct DemoBookable {
    name: String,
    description: Option<String>,
    image_url: Option<String>,
    units: u32,
    max_guests: u32,
    nightly_price: MoneyDto,
    weekend_price: MoneyDto,
    min_nights: u32,
    max_nights: u32,
    #[serde(default)]
    labels: Vec<String>,
}

/// How far ahead a demo room's weekend prices are set when it is created.
const WEEKEND_RATE_DAYS: u64 = 366;

#[derive(Deserialize)]
struct DemoOffer {
    kind: String,
    /// The trigger product, or `trigger_bookable` (a room's name) for upgrades and add-ons.
    trigger_retailer_id: Option<String>,
    trigger_bookable: Option<String>,
    /// The offered SKU, or `offer_bookable` (a room's name) for upgrades.
    offer_sku: Option<String>,
    offer_bookable: Option<String>,
    /// `night` for an add-on once per night.
    per: Option<String>,
    /// An upgrade's price difference per night.
    night_delta: Option<MoneyDto>,
    discount_percent: Option<String>,
    text: String,
}

#[derive(Deserialize)]
struct DemoDiscount {
    code: String,
    percent_off: Option<String>,
}

/// The web chat's fixed public key and the origins it allows (besides the server's own pages).
#[derive(Deserialize)]
struct DemoWebchat {
    public_key: String,
    allowed_origins: Vec<String>,
}

/// The demo merchant's WhatsApp number (made up: dev mode's Graph API stands in for the Cloud API).
#[derive(Deserialize)]
struct DemoWhatsapp {
    phone_number_id: String,
    waba_id: String,
    display_phone_number: String,
    access_token: String,
    catalog_id: Option<String>,
}

#[derive(Deserialize)]
struct DemoPage {
    page_id: PageId,
    name: Option<String>,
    access_token: String,
    instagram_account_id: Option<String>,
}

/// What `threadcart demo` prints for each merchant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Loaded {
    /// Stable slug.
    pub slug: String,
    /// Name.
    pub name: String,
    /// Id in this database.
    pub merchant_id: MerchantId,
    /// Its Messenger Page id.
    pub page_id: PageId,
    /// The Instagram professional account connected with the Page.
    pub instagram_account_id: Option<String>,
    /// Its WhatsApp number's id (`phone_number_id`), when it has one.
    #[serde(default)]
    pub whatsapp_number_id: Option<String>,
    /// Its public owner API key.
    pub api_key: String,
    /// Its web chat's public key (the widget's `data-key`).
    pub webchat_key: String,
    /// Products in the fixture.
    pub products: usize,
    /// Its agents, with their keys.
    #[serde(default)]
    pub agents: Vec<LoadedAgent>,
}

/// Why the demo could not load.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The embedded fixture is broken (a build problem).
    #[error("fixtures/demo.json is invalid: {0}")]
    Fixture(String),
    /// The demo Page id is connected to a merchant that is not the demo one.
    #[error("Page {0} is already connected to another merchant")]
    PageTaken(PageId),
    /// A catalog write failed.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
}

impl From<diesel::result::Error> for DemoError {
    fn from(e: diesel::result::Error) -> Self {
        DemoError::Db(e.into())
    }
}

impl From<crate::agents::AgentError> for DemoError {
    fn from(e: crate::agents::AgentError) -> Self {
        match e {
            crate::agents::AgentError::EmailTaken => {
                DemoError::Fixture("two demo agents of one merchant share an email".into())
            }
            crate::agents::AgentError::Db(e) => e.into(),
        }
    }
}

/// The Instagram account a demo Page is linked to (what dev mode's Graph API answers for it).
pub fn instagram_of_page(page_id: &str) -> Option<String> {
    let fixture: Fixture = serde_json::from_str(DEMO_JSON).ok()?;
    fixture
        .merchants
        .into_iter()
        .find(|m| m.page.page_id.as_str() == page_id)
        .and_then(|m| m.page.instagram_account_id)
}

/// The demo Page whose made-up token `token` is, with its name (dev mode's stand-in for Meta answers
/// `GET /me` with it).
pub fn page_of_token(token: &str) -> Option<(String, Option<String>)> {
    let fixture: Fixture = serde_json::from_str(DEMO_JSON).ok()?;
    fixture
        .merchants
        .into_iter()
        .find(|m| m.page.access_token == token)
        .map(|m| (m.page.page_id.0, m.page.name))
}

/// Loads (or refreshes) every demo merchant. The demo Pages are inserted directly (their tokens are no
/// real ones, Meta is not asked), sealed with `secrets` as every token.
pub fn load(db: &Db, secrets: &Secrets) -> Result<Vec<Loaded>, DemoError> {
    let fixture: Fixture = serde_json::from_str(DEMO_JSON).map_err(|e| DemoError::Fixture(e.to_string()))?;
    fixture
        .merchants
        .iter()
        .map(|m| db.run_blocking(|conn| load_one(conn, secrets, m)))
        .collect()
}

fn load_one(conn: &mut DbConnection, secrets: &Secrets, m: &DemoMerchant) -> Result<Loaded, DemoError> {
    let bad = |e: Vec<crate::kernel::FieldError>| DemoError::Fixture(format!("{}: {e:?}", m.slug));
    let new = NewMerchant::parse(&m.name, &m.currency, &m.timezone).map_err(bad)?;
    let merchant = write_transaction(conn, |conn| -> Result<_, DemoError> {
        let merchant = match merchants::find_demo(conn, &m.slug)? {
            Some(existing) => existing,
            None => merchants::create(conn, &new, Some(&m.slug))?,
        };
        keys::ensure_fixed(conn, merchant.id, Role::Owner, &m.api_key)?;
        let mut page =
            NewPage::parse(&m.page.page_id, m.page.name.as_deref(), &m.page.access_token).map_err(bad)?;
        page.instagram_account_id = m.page.instagram_account_id.clone();
        match pages::get(conn, merchant.id, &page.page_id) {
            // Loaded before its Instagram account was in the fixture: connect it now.
            Ok(existing) if existing.instagram_account_id != page.instagram_account_id => {
                let change = pages::PageChange {
                    instagram_account_id: Some(page.instagram_account_id.clone()),
                    ..pages::PageChange::default()
                };
                pages::update(conn, secrets, merchant.id, &page.page_id, &change)?;
            }
            Ok(_) => {}
            Err(diesel::result::Error::NotFound) => {
                pages::connect(conn, secrets, merchant.id, &page).map_err(|e| match e {
                    diesel::result::Error::DatabaseError(
                        diesel::result::DatabaseErrorKind::UniqueViolation,
                        _,
                    ) => DemoError::PageTaken(page.page_id.clone()),
                    other => other.into(),
                })?;
            }
            Err(e) => return Err(e.into()),
        }
        ensure_templates(conn, merchant.id, &page.page_id)?;
        Ok(merchant)
    })?;
    for product in &m.products {
        let parsed = product.parse(merchant.currency).map_err(bad)?;
        let item = ImportProduct {
            fields: parsed.fields,
            variants: parsed
                .variants
                .into_iter()
                .map(|fields| ImportVariant {
                    row: 0,
                    fields,
                    // New variants get the fixture's stock; existing ones keep what sales left them.
                    stock_given: false,
                })
                .collect(),
        };
        let mut rejected = Vec::new();
        catalog::upsert_product(conn, merchant.id, &item, &mut rejected)?;
        if let Some(r) = rejected.first() {
            return Err(DemoError::Fixture(format!("{}: {}", m.slug, r.detail)));
        }
    }
    for discount in &m.discounts {
        if crate::discounts::find_by_code(conn, merchant.id, &discount.code)?.is_none() {
            let input = crate::discounts::DiscountInput {
                code: &discount.code,
                percent_off: discount.percent_off.as_deref(),
                amount_off: None,
                starts_at: None,
                ends_at: None,
                min_subtotal: None,
                max_redemptions: None,
                active: true,
            };
            let new = crate::discounts::NewDiscount::parse(&input, merchant.currency).map_err(bad)?;
            crate::discounts::create(conn, merchant.id, merchant.currency, &new)
                .map_err(|e| DemoError::Fixture(format!("{}: {e}", m.slug)))?;
        }
    }
    let origins = crate::channels::webchat::parse_origins(&m.webchat.allowed_origins)
        .map_err(|e| DemoError::Fixture(format!("{}: webchat origins: {e:?}", m.slug)))?;
    crate::channels::webchat::ensure_fixed(conn, merchant.id, &m.webchat.public_key, &origins)?;
    for bookable in &m.bookables {
        load_bookable(conn, &merchant, &m.slug, bookable)?;
    }
    // After the rooms, which upgrades and add-ons name.
    for offer in &m.offers {
        load_offer(conn, merchant.id, &m.slug, offer)?;
    }
    if let Some(w) = &m.whatsapp {
        load_whatsapp(conn, secrets, merchant.id, w).map_err(|e| match e {
            DemoError::Fixture(detail) => DemoError::Fixture(format!("{}: {detail}", m.slug)),
            other => other,
        })?;
    }
    for agent in &m.agents {
        let raw = crate::agents::RawAgent {
            name: Some(agent.name.clone()),
            email: Some(agent.email.clone()),
            languages: Some(agent.languages.clone()),
            skills: Some(agent.skills.clone()),
            max_threads: Some(agent.max_threads),
        };
        let spec = crate::agents::AgentSpec::check(raw, None).map_err(bad)?;
        crate::agents::ensure_demo(conn, merchant.id, &spec, &agent.api_key)?;
    }
    Ok(Loaded {
        slug: m.slug.clone(),
        name: merchant.name,
        merchant_id: merchant.id,
        page_id: m.page.page_id.clone(),
        instagram_account_id: m.page.instagram_account_id.clone(),
        whatsapp_number_id: m.whatsapp.as_ref().map(|w| w.phone_number_id.clone()),
        webchat_key: m.webchat.public_key.clone(),
        api_key: m.api_key.clone(),
        products: m.products.len(),
        agents: m
            .agents
            .iter()
            .map(|a| LoadedAgent {
                name: a.name.clone(),
                email: a.email.clone(),
                api_key: a.api_key.clone(),
            })
            .collect(),
    })
}

/// Connects the demo's WhatsApp number unless it is (without asking Meta: its token is no real one).
fn load_whatsapp(
    conn: &mut DbConnection,
    secrets: &Secrets,
    merchant_id: MerchantId,
    w: &DemoWhatsapp,
) -> Result<(), DemoError> {
    use crate::merchants::whatsapp::{self, NewNumber};
    if whatsapp::find(conn, merchant_id, &w.phone_number_id)?.is_some() {
        return ensure_templates(conn, merchant_id, &PageId::from(w.phone_number_id.as_str()));
    }
    let new = NewNumber::parse(
        &w.phone_number_id,
        &w.waba_id,
        &w.access_token,
        w.catalog_id.as_deref(),
    )
    .map_err(|e| DemoError::Fixture(format!("whatsapp: {e:?}")))?;
    let described = crate::channels::meta::graph::WhatsappNumber {
        id: w.phone_number_id.clone(),
        display_phone_number: Some(w.display_phone_number.clone()),
        verified_name: merchants::get(conn, merchant_id).ok().map(|m| m.name),
    };
    whatsapp::connect(conn, secrets, merchant_id, &new, &described).map_err(|e| match e {
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _) => {
            DemoError::PageTaken(w.phone_number_id.as_str().into())
        }
        other => other.into(),
    })?;
    ensure_templates(conn, merchant_id, &PageId::from(w.phone_number_id.as_str()))?;
    Ok(())
}

/// The demo merchant whose WhatsApp number is `phone_number_id`'s token `token`, for dev mode's Graph
/// API (`GET /{waba-id}/phone_numbers`): the number with its display number.
pub fn whatsapp_of_token(token: &str) -> Option<(String, String, String)> {
    let fixture: Fixture = serde_json::from_str(DEMO_JSON).ok()?;
    fixture.merchants.into_iter().find_map(|m| {
        let w = m.whatsapp?;
        (w.access_token == token).then_some((w.waba_id, w.phone_number_id, w.display_phone_number))
    })
}

/// The merchant's bookable named `name`.
fn bookable_named(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    name: &str,
) -> Result<Option<Uuid>, DemoError> {
    let query = bookings::BookableQuery {
        page: crate::db::Keyset::OLDEST_FIRST,
        limit: 200,
        active_only: false,
    };
    Ok(bookings::list(conn, merchant_id, &query)?
        .into_iter()
        .find(|b| b.spec.name == name)
        .map(|b| b.id))
}

/// Creates the demo offer unless one with the same trigger and target exists.
fn load_offer(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    slug: &str,
    o: &DemoOffer,
) -> Result<(), DemoError> {
    use crate::offers::{OfferTarget, OfferTrigger};
    let missing = |what: &str| DemoError::Fixture(format!("{slug}: the offer names an unknown {what}"));
    let trigger = match (&o.trigger_retailer_id, &o.trigger_bookable) {
        (Some(retailer_id), None) => OfferTrigger::Product(
            catalog::find_by_retailer_id(conn, merchant_id, &RetailerId::from(retailer_id.as_str()))?
                .ok_or_else(|| missing("trigger product"))?
                .id,
        ),
        (None, Some(name)) => {
            OfferTrigger::Bookable(bookable_named(conn, merchant_id, name)?.ok_or_else(|| missing("room"))?)
        }
        _ => return Err(missing("trigger")),
    };
    let target = match (&o.offer_sku, &o.offer_bookable) {
        (Some(sku), None) => OfferTarget::Variant {
            id: catalog::variant_id_by_sku(conn, merchant_id, sku)?.ok_or_else(|| missing("SKU"))?,
            per_night: o.per.as_deref() == Some("night"),
        },
        (None, Some(name)) => OfferTarget::Bookable {
            id: bookable_named(conn, merchant_id, name)?.ok_or_else(|| missing("room"))?,
            night_delta: o
                .night_delta
                .as_ref()
                .map(MoneyDto::parse_price)
                .transpose()
                .map_err(|e| DemoError::Fixture(format!("{slug}: {e}")))?,
        },
        _ => return Err(missing("target")),
    };
    let (product_id, bookable_id) = match trigger {
        OfferTrigger::Product(id) => (Some(id), None),
        OfferTrigger::Bookable(id) => (None, Some(id)),
    };
    let existing = crate::offers::list(
        conn,
        merchant_id,
        &crate::offers::OfferQuery {
            page: crate::db::Keyset::OLDEST_FIRST,
            limit: 100,
            product_id,
            bookable_id,
        },
    )?;
    if existing.iter().any(|e| e.target == target) {
        return Ok(());
    }
    let mut errors = Vec::new();
    let kind = crate::offers::OfferKind::parse("kind", &o.kind, &mut errors);
    let discount = o
        .discount_percent
        .as_deref()
        .and_then(|p| crate::offers::OfferDiscount::parse_percent("discount_percent", p, &mut errors));
    let (Some(kind), true) = (kind, errors.is_empty()) else {
        return Err(DemoError::Fixture(format!("{slug}: {errors:?}")));
    };
    let new = crate::offers::NewOffer {
        kind,
        trigger,
        target,
        discount,
        text: o.text.clone(),
        active: true,
    };
    crate::offers::create(conn, merchant_id, &new).map_err(|e| DemoError::Fixture(format!("{slug}: {e}")))?;
    Ok(())
}

/// Creates the demo room type unless the merchant has one of that name, with its weekend prices for the
/// next [`WEEKEND_RATE_DAYS`] from today in the merchant's timezone (an existing room keeps its rates).
fn load_bookable(
    conn: &mut DbConnection,
    merchant: &Merchant,
    slug: &str,
    b: &DemoBookable,
) -> Result<(), DemoError> {
    use chrono::{Datelike, Days, Weekday};

    let invalid = |e: &dyn std::fmt::Display| DemoError::Fixture(format!("{slug}: {}: {e}", b.name));
    let query = bookings::BookableQuery {
        page: crate::db::Keyset::OLDEST_FIRST,
        limit: 200,
        active_only: false,
    };
    if bookings::list(conn, merchant.id, &query)?
        .iter()
        .any(|e| e.spec.name == b.name)
    {
        return Ok(());
    }
    let spec = bookings::BookableSpec {
        name: b.name.clone(),
        description: b.description.clone(),
        image_url: b.image_url.clone(),
        units: b.units,
        max_guests: b.max_guests,
        base_price: b.nightly_price.parse_price().map_err(|e| invalid(&e))?,
        min_nights: b.min_nights,
        max_nights: b.max_nights,
        check_in: chrono::NaiveTime::from_hms_opt(15, 0, 0).unwrap_or_default(),
        check_out: chrono::NaiveTime::from_hms_opt(11, 0, 0).unwrap_or_default(),
        timezone: merchant.timezone,
        active: true,
        labels: crate::kernel::Labels::parse("labels", &b.labels, &mut Vec::new()),
    };
    let weekend = b.weekend_price.parse_price().map_err(|e| invalid(&e))?;
    let bookable = bookings::create(conn, merchant.id, &spec).map_err(|e| invalid(&e))?;
    let today = bookings::stay::local_today(merchant.timezone, crate::db::now());
    let weekends: Vec<bookings::RateRange> = today
        .iter_days()
        .take(WEEKEND_RATE_DAYS as usize)
        .filter(|d| matches!(d.weekday(), Weekday::Fri | Weekday::Sat))
        .map(|night| bookings::RateRange {
            from: night,
            to: night + Days::new(1),
            price: Some(weekend),
        })
        .collect();
    bookings::set_rates(conn, merchant.id, bookable.id, &weekends).map_err(|e| invalid(&e))?;
    Ok(())
}

/// The demo Page's (or WhatsApp number's) utility templates, in English and French, approved (as the
/// local Graph server approves them): what is sent after a Meta channel's window closed.
fn ensure_templates(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    page_id: &PageId,
) -> Result<(), DemoError> {
    use crate::followups::templates::{self, NewTemplate, Purpose, TemplateStatus, example_body};
    for purpose in Purpose::ALL {
        for language in ["en", "fr"] {
            if templates::existing(conn, page_id, purpose, language)?.is_some() {
                continue;
            }
            let body = example_body(purpose, language).unwrap_or_default();
            let new = NewTemplate::parse(page_id.clone(), purpose.as_str(), language, body)
                .map_err(|e| DemoError::Fixture(format!("template {purpose} {language}: {e:?}")))?;
            let meta_id = format!("demo-{}", new.meta_name());
            templates::insert(
                conn,
                merchant_id,
                &new,
                &meta_id,
                (TemplateStatus::Approved, None),
            )?;
        }
    }
    Ok(())
}
