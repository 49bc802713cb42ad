//! Merchants: the tenants. Every other table hangs off a merchant, and every query is scoped to one.

pub mod hours;
pub mod pages;
pub mod whatsapp;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::merchants;
use crate::db::{DbConnection, now};
use crate::kernel::{FieldError, MerchantId};
use crate::money::Currency;

/// A merchant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merchant {
    /// Id.
    pub id: MerchantId,
    /// Display name.
    pub name: String,
    /// The currency its prices are in.
    pub currency: Currency,
    /// IANA timezone (reports, business hours).
    pub timezone: chrono_tz::Tz,
    /// Created (UTC).
    pub created_at: NaiveDateTime,
    /// When people answer; none means always.
    pub business_hours: Option<hours::BusinessHours>,
    /// Sent outside business hours, once a day per thread.
    pub away_text: Option<String>,
    /// Days a touch keeps its steps attributed to it (see `attribution`).
    pub attribution_window_days: i32,
    /// How the assistant says it is automated.
    pub bot_disclosure: BotDisclosure,
    /// When the business writes first.
    pub follow_ups: FollowUps,
    /// Minutes an agent given a thread has to answer before it goes to the next.
    pub agent_answer_minutes: i32,
    /// Paid orders from which a customer is served first in the agents' queue; 0: nobody is.
    pub vip_paid_orders: i32,
}

/// Hours of silence after which the assistant says again that it is automated, unless the merchant
/// chose otherwise (the column's default).
pub const DEFAULT_DISCLOSURE_HOURS: i32 = 24;

/// How the assistant says it is automated (see `crate::conversations::disclosure`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BotDisclosure {
    /// The merchant's sentence per language (`en`, `fr`, ...; `{shop}` stands for its name); a language
    /// without one gets the built-in sentence.
    pub wording: std::collections::BTreeMap<String, String>,
    /// Hours of silence after which the next automated message says it again.
    pub after_hours: i32,
}

/// When the business writes first (see `crate::followups`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowUps {
    /// Minutes a cart with items waits before its one reminder; 0: no reminders.
    pub cart_reminder_minutes: i32,
    /// The local hour (the room type's timezone) of a stay's reminder, the day before arrival.
    pub booking_reminder_hour: i32,
}

impl Default for FollowUps {
    fn default() -> Self {
        FollowUps {
            cart_reminder_minutes: 60,
            booking_reminder_hour: 18,
        }
    }
}

/// The away text when the merchant set hours but no text.
pub const DEFAULT_AWAY_TEXT: &str =
    "We're away right now and will answer as soon as we're back. You can keep shopping here meanwhile.";

impl Merchant {
    /// The away text to send at `at`, when the merchant is closed then.
    pub fn away_text_at(&self, at: NaiveDateTime) -> Option<&str> {
        let hours = self.business_hours.as_ref()?;
        if hours.is_open(self.timezone, at) {
            return None;
        }
        Some(self.away_text.as_deref().unwrap_or(DEFAULT_AWAY_TEXT))
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = merchants)]
struct MerchantRow {
    id: MerchantId,
    name: String,
    currency: String,
    timezone: String,
    created_at: NaiveDateTime,
    business_hours: Option<String>,
    away_text: Option<String>,
    attribution_window_days: i32,
    bot_disclosure: Option<String>,
    bot_disclosure_after_hours: i32,
    cart_reminder_minutes: i32,
    booking_reminder_hour: i32,
    agent_answer_minutes: i32,
    vip_paid_orders: i32,
}

impl TryFrom<MerchantRow> for Merchant {
    type Error = diesel::result::Error;

    fn try_from(row: MerchantRow) -> Result<Self, Self::Error> {
        let corrupt = |what: String| diesel::result::Error::DeserializationError(what.into());
        Ok(Merchant {
            id: row.id,
            name: row.name,
            currency: Currency::parse(&row.currency).map_err(|e| corrupt(e.to_string()))?,
            timezone: row
                .timezone
                .parse()
                .map_err(|_| corrupt(format!("unknown timezone {}", row.timezone)))?,
            created_at: row.created_at,
            business_hours: row
                .business_hours
                .map(|h| serde_json::from_str(&h))
                .transpose()
                .map_err(|e| corrupt(e.to_string()))?,
            away_text: row.away_text,
            attribution_window_days: row.attribution_window_days,
            bot_disclosure: BotDisclosure {
                wording: row
                    .bot_disclosure
                    .map(|w| serde_json::from_str(&w))
                    .transpose()
                    .map_err(|e| corrupt(e.to_string()))?
                    .unwrap_or_default(),
                after_hours: row.bot_disclosure_after_hours,
            },
            follow_ups: FollowUps {
                cart_reminder_minutes: row.cart_reminder_minutes,
                booking_reminder_hour: row.booking_reminder_hour,
            },
            agent_answer_minutes: row.agent_answer_minutes,
            vip_paid_orders: row.vip_paid_orders,
        })
    }
}

/// A validated new merchant.
#[derive(Debug, Clone)]
pub struct NewMerchant {
    /// Display name.
    pub name: String,
    /// Currency.
    pub currency: Currency,
    /// Timezone.
    pub timezone: chrono_tz::Tz,
}

impl NewMerchant {
    /// Validates raw input, naming each bad field.
    pub fn parse(name: &str, currency: &str, timezone: &str) -> Result<NewMerchant, Vec<FieldError>> {
        let mut errors = Vec::new();
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            errors.push(FieldError::new(
                "name",
                "invalid_name",
                "a name takes 1 to 200 characters",
            ));
        }
        let currency = Currency::parse(currency)
            .map_err(|e| errors.push(FieldError::new("currency", e.code(), e.to_string())))
            .ok();
        let timezone = timezone
            .parse::<chrono_tz::Tz>()
            .map_err(|_| {
                errors.push(FieldError::new(
                    "timezone",
                    "unknown_timezone",
                    format!("`{timezone}` is not an IANA timezone such as Europe/Paris"),
                ))
            })
            .ok();
        match (currency, timezone) {
            (Some(currency), Some(timezone)) if errors.is_empty() => Ok(NewMerchant {
                name: name.to_owned(),
                currency,
                timezone,
            }),
            _ => Err(errors),
        }
    }
}

/// Stores a merchant; `demo_slug` marks the demo ones so loading them again finds them.
pub fn create(conn: &mut DbConnection, new: &NewMerchant, demo_slug: Option<&str>) -> QueryResult<Merchant> {
    let id = MerchantId::new();
    let created_at = now();
    diesel::insert_into(merchants::table)
        .values((
            merchants::id.eq(id),
            merchants::name.eq(&new.name),
            merchants::currency.eq(new.currency.code()),
            merchants::timezone.eq(new.timezone.name()),
            merchants::demo_slug.eq(demo_slug),
            merchants::created_at.eq(created_at),
            merchants::updated_at.eq(created_at),
        ))
        .execute(conn)?;
    Ok(Merchant {
        id,
        name: new.name.clone(),
        currency: new.currency,
        timezone: new.timezone,
        created_at,
        business_hours: None,
        away_text: None,
        attribution_window_days: crate::attribution::DEFAULT_WINDOW_DAYS,
        bot_disclosure: BotDisclosure {
            wording: Default::default(),
            after_hours: DEFAULT_DISCLOSURE_HOURS,
        },
        follow_ups: FollowUps::default(),
        agent_answer_minutes: 5,
        vip_paid_orders: 0,
    })
}

/// A change to the merchant's settings (`Some(None)` clears).
#[derive(Debug, Clone, Default)]
pub struct MerchantChange {
    /// New name.
    pub name: Option<String>,
    /// New timezone.
    pub timezone: Option<chrono_tz::Tz>,
    /// New hours, or none for always open.
    pub business_hours: Option<Option<hours::BusinessHours>>,
    /// New away text, or none for the default.
    pub away_text: Option<Option<String>>,
    /// New attribution window, in days.
    pub attribution_window_days: Option<i32>,
    /// New disclosure sentences (empty: the built-in ones).
    pub bot_disclosure: Option<std::collections::BTreeMap<String, String>>,
    /// New silence, in hours, after which the disclosure is said again.
    pub bot_disclosure_after_hours: Option<i32>,
    /// New cart reminder delay, in minutes (0: off).
    pub cart_reminder_minutes: Option<i32>,
    /// New local hour of booking reminders.
    pub booking_reminder_hour: Option<i32>,
    /// New minutes an agent has to answer.
    pub agent_answer_minutes: Option<i32>,
    /// New VIP threshold, in paid orders (0: off).
    pub vip_paid_orders: Option<i32>,
}

/// Applies a change to the merchant.
pub fn update(conn: &mut DbConnection, id: MerchantId, change: &MerchantChange) -> QueryResult<Merchant> {
    let target = merchants::table.find(id);
    if let Some(name) = &change.name {
        diesel::update(target)
            .set(merchants::name.eq(name))
            .execute(conn)?;
    }
    if let Some(tz) = change.timezone {
        let moved = diesel::update(target.filter(merchants::timezone.ne(tz.name())))
            .set(merchants::timezone.eq(tz.name()))
            .execute(conn)?;
        if moved > 0 {
            crate::attribution::rebuild_rollup(conn, id)?;
        }
    }
    if let Some(days) = change.attribution_window_days {
        diesel::update(target)
            .set(merchants::attribution_window_days.eq(days))
            .execute(conn)?;
    }
    if let Some(hours) = &change.business_hours {
        let json = hours
            .as_ref()
            .map(|h| serde_json::to_string(h).unwrap_or_default());
        diesel::update(target)
            .set(merchants::business_hours.eq(json))
            .execute(conn)?;
    }
    if let Some(text) = &change.away_text {
        diesel::update(target)
            .set(merchants::away_text.eq(text))
            .execute(conn)?;
    }
    if let Some(wording) = &change.bot_disclosure {
        let json = (!wording.is_empty()).then(|| serde_json::to_string(wording).unwrap_or_default());
        diesel::update(target)
            .set(merchants::bot_disclosure.eq(json))
            .execute(conn)?;
    }
    if let Some(hours) = change.bot_disclosure_after_hours {
        diesel::update(target)
            .set(merchants::bot_disclosure_after_hours.eq(hours))
            .execute(conn)?;
    }
    if let Some(minutes) = change.cart_reminder_minutes {
        diesel::update(target)
            .set(merchants::cart_reminder_minutes.eq(minutes))
            .execute(conn)?;
    }
    if let Some(hour) = change.booking_reminder_hour {
        diesel::update(target)
            .set(merchants::booking_reminder_hour.eq(hour))
            .execute(conn)?;
    }
    if let Some(minutes) = change.agent_answer_minutes {
        diesel::update(target)
            .set(merchants::agent_answer_minutes.eq(minutes))
            .execute(conn)?;
    }
    if let Some(orders) = change.vip_paid_orders {
        diesel::update(target)
            .set(merchants::vip_paid_orders.eq(orders))
            .execute(conn)?;
    }
    diesel::update(target)
        .set(merchants::updated_at.eq(now()))
        .execute(conn)?;
    get(conn, id)
}

/// The merchant with `id`.
pub fn get(conn: &mut DbConnection, id: MerchantId) -> QueryResult<Merchant> {
    merchants::table
        .find(id)
        .select(MerchantRow::as_select())
        .first(conn)?
        .try_into()
}

/// The merchant, and whether it has a room type open for booking (the shop then offers stays), in one
/// round trip.
pub fn get_with_rooms(conn: &mut DbConnection, id: MerchantId) -> QueryResult<(Merchant, bool)> {
    let (row, rooms): (MerchantRow, bool) = merchants::table
        .find(id)
        .select((MerchantRow::as_select(), crate::bookings::any_active(id)))
        .first(conn)?;
    Ok((row.try_into()?, rooms))
}

/// The demo merchant loaded under `slug`, if any.
pub fn find_demo(conn: &mut DbConnection, slug: &str) -> QueryResult<Option<Merchant>> {
    merchants::table
        .filter(merchants::demo_slug.eq(slug))
        .select(MerchantRow::as_select())
        .first(conn)
        .optional()?
        .map(Merchant::try_from)
        .transpose()
}
