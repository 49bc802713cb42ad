//! The merchant's own web chat: a chat the business controls, on its own site, with no messaging window.
//!
//! A merchant has one web chat: a public key (it is in the page, it proves nothing) and the origins
//! (sites) allowed to use it. A visitor opens a conversation with the key and gets a visitor token, kept
//! by the widget in the browser and sent back in the `Authorization` header (never in a URL); the token
//! opens that visitor's conversation only. What the visitor says becomes neutral events in the same
//! durable inbox as Meta's channels, so the same turn answers them in order, exactly once; the
//! conversation's messages, in the neutral reply model, are what the visitor reads (a list and an event
//! stream), so nothing is rendered and nothing is sent.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::conversations::event::{EventKind, Inbound};
use crate::conversations::{self, inbox};
use crate::db::schema::{customers, messages, threads, webchat_visitors, webchats};
use crate::db::{DbConnection, DbUuid, now, write_transaction};
use crate::engine::reply::Reply;
use crate::engine::{GET_STARTED, Referral, Utm};
use crate::kernel::{Channel, CustomerId, FieldError, MerchantId, PageId, Psid, ThreadId};
use crate::secrets::{hex, random_bytes};

/// Most origins a web chat allows.
pub const MAX_ORIGINS: usize = 20;
/// Longest text a visitor sends.
pub const MAX_TEXT_CHARS: usize = 2000;
/// Longest payload a visitor taps back (ours are far shorter).
pub const MAX_PAYLOAD_CHARS: usize = 1000;
/// Longest page URL kept with a touch.
pub const MAX_URL_CHARS: usize = 2048;
/// Longest `ref`, name, locale or UTM value.
pub const MAX_FIELD_CHARS: usize = 200;

/// A merchant's web chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webchat {
    /// Id (the account of its conversations).
    pub id: Uuid,
    /// The merchant.
    pub merchant_id: MerchantId,
    /// The key the widget carries (`wc_` and 32 hex digits); public.
    pub public_key: String,
    /// The sites allowed to use it (`https://shop.example`).
    pub allowed_origins: Vec<String>,
    /// Last changed.
    pub updated_at: NaiveDateTime,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = webchats)]
struct Row {
    id: DbUuid,
    merchant_id: MerchantId,
    public_key: String,
    allowed_origins: String,
    updated_at: NaiveDateTime,
}

impl From<Row> for Webchat {
    fn from(r: Row) -> Webchat {
        Webchat {
            id: r.id.0,
            merchant_id: r.merchant_id,
            public_key: r.public_key,
            // Written by this module only, always a JSON list of strings.
            allowed_origins: serde_json::from_str(&r.allowed_origins).unwrap_or_default(),
            updated_at: r.updated_at,
        }
    }
}

impl Webchat {
    /// Whether a browser at `origin` may use this web chat.
    pub fn allows(&self, origin: &str) -> bool {
        Origin::parse(origin).is_ok_and(|o| self.allowed_origins.contains(&o.0))
    }
}

/// A site allowed to use a web chat: `scheme://host[:port]`, nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin(String);

impl Origin {
    /// Reads an origin as browsers send it (`https://shop.example`, `http://127.0.0.1:8080`); a path, a
    /// query, credentials or another scheme are refused. Lower-cased, without a trailing slash.
    pub fn parse(s: &str) -> Result<Origin, String> {
        let s = s.trim().trim_end_matches('/').to_ascii_lowercase();
        let rest = s
            .strip_prefix("https://")
            .or_else(|| s.strip_prefix("http://"))
            .ok_or("an origin starts with https:// or http://")?;
        // `[::1]:8080` keeps its brackets; otherwise the port is after the colon.
        let (host, port) = match rest.strip_prefix('[').and_then(|r| r.split_once(']')) {
            Some((v6, after)) => (v6, after.strip_prefix(':').or((!after.is_empty()).then_some("x"))),
            None => match rest.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            },
        };
        let host_ok = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
        let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
        if !host_ok || !port_ok {
            return Err(
                "an origin is a scheme and a host, with a port at most: no path, query or user".into(),
            );
        }
        Ok(Origin(s))
    }

    /// The origin as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Parses a list of origins, naming the bad ones.
pub fn parse_origins(origins: &[String]) -> Result<Vec<Origin>, Vec<FieldError>> {
    if origins.len() > MAX_ORIGINS {
        return Err(vec![FieldError::new(
            "allowed_origins",
            "too_many",
            format!("at most {MAX_ORIGINS} origins"),
        )]);
    }
    let mut parsed = Vec::with_capacity(origins.len());
    let mut errors = Vec::new();
    for (i, o) in origins.iter().enumerate() {
        match Origin::parse(o) {
            Ok(o) if !parsed.contains(&o) => parsed.push(o),
            Ok(_) => {}
            Err(detail) => errors.push(FieldError::new(
                format!("allowed_origins[{i}]"),
                "invalid_origin",
                detail,
            )),
        }
    }
    if errors.is_empty() {
        Ok(parsed)
    } else {
        Err(errors)
    }
}

/// The merchant's web chat, made (with no origin allowed yet) the first time it is asked for.
pub fn settings(conn: &mut DbConnection, merchant_id: MerchantId) -> QueryResult<Webchat> {
    let found: Option<Row> = webchats::table
        .filter(webchats::merchant_id.eq(merchant_id))
        .select(Row::as_select())
        .first(conn)
        .optional()?;
    if let Some(row) = found {
        return Ok(row.into());
    }
    let at = now();
    let insert = diesel::insert_into(webchats::table)
        .values((
            webchats::id.eq(DbUuid(Uuid::now_v7())),
            webchats::merchant_id.eq(merchant_id),
            webchats::public_key.eq(format!("wc_{}", hex(&random_bytes::<16>()))),
            webchats::allowed_origins.eq("[]"),
            webchats::created_at.eq(at),
            webchats::updated_at.eq(at),
        ))
        // Two first calls at once: the second keeps the first's.
        .on_conflict(webchats::merchant_id)
        .do_nothing();
    crate::per_backend!(conn, |c| insert.execute(c))?;
    webchats::table
        .filter(webchats::merchant_id.eq(merchant_id))
        .select(Row::as_select())
        .first(conn)
        .map(Webchat::from)
}

/// Replaces the origins allowed to use the merchant's web chat.
pub fn set_origins(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    origins: &[Origin],
) -> QueryResult<Webchat> {
    settings(conn, merchant_id)?;
    let list: Vec<&str> = origins.iter().map(Origin::as_str).collect();
    diesel::update(webchats::table.filter(webchats::merchant_id.eq(merchant_id)))
        .set((
            webchats::allowed_origins.eq(serde_json::json!(list).to_string()),
            webchats::updated_at.eq(now()),
        ))
        .execute(conn)?;
    settings(conn, merchant_id)
}

/// Gives the demo merchant's web chat a fixed key (the demo's keys are public) and `origins`.
pub fn ensure_fixed(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    public_key: &str,
    origins: &[Origin],
) -> QueryResult<Webchat> {
    settings(conn, merchant_id)?;
    diesel::update(webchats::table.filter(webchats::merchant_id.eq(merchant_id)))
        .set(webchats::public_key.eq(public_key))
        .execute(conn)?;
    set_origins(conn, merchant_id, origins)
}

/// The web chat whose public key is `key`.
pub fn by_key(conn: &mut DbConnection, key: &str) -> QueryResult<Option<Webchat>> {
    webchats::table
        .filter(webchats::public_key.eq(key))
        .select(Row::as_select())
        .first(conn)
        .optional()
        .map(|r| r.map(Webchat::from))
}

/// Whether any merchant's web chat allows `origin` (what a browser's preflight before opening a
/// conversation can be told: it carries no key).
pub fn origin_known(conn: &mut DbConnection, origin: &str) -> QueryResult<bool> {
    let Ok(origin) = Origin::parse(origin) else {
        return Ok(false);
    };
    // Stored as a JSON list of strings: the quoted origin is an exact element.
    let needle = format!("%{}%", serde_json::json!(origin.as_str()));
    let n: i64 = webchats::table
        .filter(webchats::allowed_origins.like(needle))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// A visitor, as their token names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visitor {
    /// Their customer row.
    pub customer_id: CustomerId,
    /// Their web chat.
    pub webchat_id: Uuid,
    /// Its merchant.
    pub merchant_id: MerchantId,
    /// Their conversation (its thread).
    pub conversation_id: Option<ThreadId>,
}

fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// The visitor a token belongs to.
pub fn visitor(conn: &mut DbConnection, token: &str) -> QueryResult<Option<Visitor>> {
    let found: Option<(CustomerId, DbUuid, MerchantId, Option<ThreadId>)> = webchat_visitors::table
        .inner_join(customers::table)
        .left_join(threads::table.on(threads::customer_id.eq(webchat_visitors::customer_id)))
        .filter(webchat_visitors::token_hash.eq(token_hash(token)))
        .select((
            webchat_visitors::customer_id,
            webchat_visitors::webchat_id,
            customers::merchant_id,
            threads::id.nullable(),
        ))
        .first(conn)
        .optional()?;
    Ok(found.map(|(customer, webchat, merchant, thread)| Visitor {
        customer_id: customer,
        webchat_id: webchat.0,
        merchant_id: merchant,
        conversation_id: thread,
    }))
}

/// How a visitor arrives: what the page tells the widget.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Arrival {
    /// The `ref` (same convention as m.me links: `p=SLIP-01`, `c=xmas24`).
    pub ref_: Option<String>,
    /// The page the chat was opened on.
    pub page_url: Option<String>,
    /// Its UTM parameters.
    pub utm: Utm,
    /// The visitor's name, when the site knows it.
    pub name: Option<String>,
    /// Their locale (`fr-FR`).
    pub locale: Option<String>,
}

impl Arrival {
    /// Checks the sizes and shapes of what a page sent.
    pub fn check(self) -> Result<Arrival, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut field = |name: &str, value: &Option<String>, max: usize| {
            if value.as_ref().is_some_and(|v| v.chars().count() > max) {
                errors.push(FieldError::new(
                    name,
                    "too_long",
                    format!("at most {max} characters"),
                ));
            }
        };
        field("ref", &self.ref_, MAX_FIELD_CHARS);
        field("page_url", &self.page_url, MAX_URL_CHARS);
        field("name", &self.name, MAX_FIELD_CHARS);
        field("locale", &self.locale, 35);
        field("utm.utm_source", &self.utm.utm_source, MAX_FIELD_CHARS);
        field("utm.utm_medium", &self.utm.utm_medium, MAX_FIELD_CHARS);
        field("utm.utm_campaign", &self.utm.utm_campaign, MAX_FIELD_CHARS);
        field("utm.utm_content", &self.utm.utm_content, MAX_FIELD_CHARS);
        field("utm.utm_term", &self.utm.utm_term, MAX_FIELD_CHARS);
        if let Some(url) = &self.page_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            errors.push(FieldError::new(
                "page_url",
                "invalid_url",
                "page_url is an http(s) URL",
            ));
        }
        if errors.is_empty() {
            Ok(Arrival {
                ref_: self.ref_.filter(|r| !r.trim().is_empty()),
                name: self.name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()),
                ..self
            })
        } else {
            Err(errors)
        }
    }

    fn referral(&self) -> Referral {
        Referral {
            source: "WEBCHAT".into(),
            kind: "OPEN_THREAD".into(),
            ref_: self.ref_.clone(),
            page_url: self.page_url.clone(),
            utm: self.utm.clone(),
            ..Referral::default()
        }
    }
}

/// An opened conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The conversation (its thread).
    pub conversation_id: ThreadId,
    /// The visitor's token: new, or the one they came back with.
    pub visitor_token: String,
    /// True when the visitor came back with their token.
    pub resumed: bool,
    /// The shopper with events to apply.
    pub customer: CustomerId,
}

fn event(webchat: Uuid, visitor: Uuid, dedup: String, kind: EventKind, raw: serde_json::Value) -> Inbound {
    Inbound {
        profile_name: None,
        channel: Channel::Webchat,
        account: webchat.to_string().into(),
        user: visitor.to_string().into(),
        timestamp_ms: now().and_utc().timestamp_millis(),
        dedup_key: dedup,
        passive: false,
        kind,
        raw,
    }
}

/// Opens a conversation on `webchat`: resumes the visitor's when `token` is theirs (the arrival becomes
/// a touch, answered when it names something), else starts one for a new visitor (the arrival becomes
/// its first touch, answered with the greeting, or the card of the product its `ref` names).
pub fn open(
    conn: &mut DbConnection,
    webchat: &Webchat,
    token: Option<&str>,
    arrival: &Arrival,
) -> QueryResult<Opened> {
    write_transaction(conn, |conn| {
        let known = match token {
            Some(t) => visitor(conn, t)?.filter(|v| v.webchat_id == webchat.id),
            None => None,
        };
        let referral = arrival.referral();
        let raw = serde_json::json!({"ref": arrival.ref_, "page_url": arrival.page_url, "utm": arrival.utm});
        let (visitor_token, psid, resumed, events) = match (known, token) {
            (Some(v), Some(t)) => {
                let psid: Psid = customers::table
                    .find(v.customer_id)
                    .select(customers::psid)
                    .first(conn)?;
                let kind = if referral.ref_.is_some() {
                    EventKind::Referral(referral)
                } else {
                    EventKind::Visit(referral)
                };
                let id = Uuid::now_v7();
                let events = vec![event(webchat.id, parse_psid(&psid), format!("w:{id}"), kind, raw)];
                (t.to_owned(), psid, true, events)
            }
            _ => {
                let visitor_id = Uuid::now_v7();
                let token = format!("wv_{}", hex(&random_bytes::<32>()));
                let customer = conversations::ensure_customer(
                    conn,
                    webchat.merchant_id,
                    Channel::Webchat,
                    &PageId::from(webchat.id.to_string()),
                    &Psid::from(visitor_id.to_string()),
                )?;
                conversations::set_profile(
                    conn,
                    customer,
                    Some((arrival.name.clone(), arrival.locale.clone(), None)),
                )?;
                diesel::insert_into(webchat_visitors::table)
                    .values((
                        webchat_visitors::customer_id.eq(customer),
                        webchat_visitors::webchat_id.eq(DbUuid(webchat.id)),
                        webchat_visitors::token_hash.eq(token_hash(&token)),
                        webchat_visitors::created_at.eq(now()),
                    ))
                    .execute(conn)?;
                // A ref opens on what it names; otherwise the touch is kept and the greeting follows.
                let events = if referral.ref_.is_some() {
                    vec![event(
                        webchat.id,
                        visitor_id,
                        format!("w:{visitor_id}:open"),
                        EventKind::Postback {
                            title: None,
                            payload: Some(GET_STARTED.to_owned()),
                            referral: Some(referral),
                        },
                        raw,
                    )]
                } else {
                    vec![
                        event(
                            webchat.id,
                            visitor_id,
                            format!("w:{visitor_id}:visit"),
                            EventKind::Visit(referral),
                            raw.clone(),
                        ),
                        event(
                            webchat.id,
                            visitor_id,
                            format!("w:{visitor_id}:open"),
                            EventKind::Postback {
                                title: None,
                                payload: Some(GET_STARTED.to_owned()),
                                referral: None,
                            },
                            raw,
                        ),
                    ]
                };
                (token, visitor_id.to_string().into(), false, events)
            }
        };
        let body = serde_json::json!({"webchat": webchat.id, "visitor": psid}).to_string();
        inbox::record_delivery(conn, "webchat", &body, &Ok(events))?;
        let customer = customers::table
            .filter(customers::page_id.eq(webchat.id.to_string()))
            .filter(customers::psid.eq(&psid))
            .select(customers::id)
            .first::<CustomerId>(conn)?;
        let customer_row = conversations::customer(conn, customer)?;
        let thread = conversations::ensure_thread(conn, &customer_row)?;
        Ok(Opened {
            conversation_id: thread.id,
            visitor_token,
            resumed,
            customer,
        })
    })
}

fn parse_psid(psid: &Psid) -> Uuid {
    Uuid::parse_str(psid).unwrap_or_default()
}

/// What a visitor said: text typed, or a button or quick reply tapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Said {
    /// Typed text.
    Text(String),
    /// A tap: the payload and what the button said.
    Tap {
        /// Our payload.
        payload: String,
        /// The button's title.
        title: Option<String>,
    },
}

impl Said {
    /// Checks sizes: text up to [`MAX_TEXT_CHARS`], payloads up to [`MAX_PAYLOAD_CHARS`].
    pub fn check(self) -> Result<Said, Vec<FieldError>> {
        let too_long = |field: &str, max: usize| {
            vec![FieldError::new(
                field,
                "too_long",
                format!("at most {max} characters"),
            )]
        };
        match self {
            Said::Text(t) if t.trim().is_empty() => {
                Err(vec![FieldError::new("text", "empty", "text must not be empty")])
            }
            Said::Text(t) if t.chars().count() > MAX_TEXT_CHARS => Err(too_long("text", MAX_TEXT_CHARS)),
            Said::Tap { payload, .. } if payload.is_empty() => Err(vec![FieldError::new(
                "payload",
                "empty",
                "payload must not be empty",
            )]),
            Said::Tap { payload, .. } if payload.chars().count() > MAX_PAYLOAD_CHARS => {
                Err(too_long("payload", MAX_PAYLOAD_CHARS))
            }
            Said::Tap {
                title: Some(title), ..
            } if title.chars().count() > MAX_FIELD_CHARS => Err(too_long("title", MAX_FIELD_CHARS)),
            Said::Text(t) => Ok(Said::Text(
                t.chars().filter(|c| !c.is_control() || *c == '\n').collect(),
            )),
            tap => Ok(tap),
        }
    }
}

/// Stores what the visitor said as an event of their conversation; a repeat of the same `client_id`
/// (a retried request) is stored once. Returns the shopper to apply it for, when new.
pub fn say(
    conn: &mut DbConnection,
    visitor: &Visitor,
    said: Said,
    client_id: Option<&str>,
) -> QueryResult<Option<CustomerId>> {
    let psid: Psid = customers::table
        .find(visitor.customer_id)
        .select(customers::psid)
        .first(conn)?;
    let id = Uuid::now_v7();
    let dedup = match client_id {
        Some(c) => format!("w:{psid}:c:{c}"),
        None => format!("w:{id}"),
    };
    let (kind, raw) = match said {
        Said::Text(text) => (
            EventKind::Message {
                mid: format!("wc-{id}"),
                text: Some(text.clone()),
                quick_reply: None,
                attachments: Vec::new(),
                referral: None,
            },
            serde_json::json!({"text": text}),
        ),
        Said::Tap { payload, title } => (
            EventKind::Postback {
                title: title.clone(),
                payload: Some(payload.clone()),
                referral: None,
            },
            serde_json::json!({"payload": payload, "title": title}),
        ),
    };
    let event = event(visitor.webchat_id, parse_psid(&psid), dedup, kind, raw.clone());
    write_transaction(conn, |conn| {
        let (_, customers) = inbox::record_delivery(conn, "webchat", &raw.to_string(), &Ok(vec![event]))?;
        Ok(customers.into_iter().next())
    })
}

/// One message of a conversation as the web chat shows it: the neutral reply's JSON with its id, way
/// and time.
#[derive(Debug, Clone, PartialEq)]
pub struct WebMessage {
    /// The message's id (time-ordered: the event stream's ids).
    pub id: Uuid,
    /// The JSON the visitor reads.
    pub json: serde_json::Value,
}

/// The conversation's messages after `after`, oldest first, at most `limit`.
pub fn messages_after(
    conn: &mut DbConnection,
    conversation_id: ThreadId,
    after: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<WebMessage>> {
    type Row = (
        DbUuid,
        String,
        String,
        Option<String>,
        Option<String>,
        NaiveDateTime,
    );
    let mut q = messages::table
        .filter(messages::thread_id.eq(conversation_id))
        .order(messages::id.asc())
        .limit(limit)
        .select((
            messages::id,
            messages::direction,
            messages::author,
            messages::text,
            messages::payload,
            messages::occurred_at,
        ))
        .into_boxed();
    if let Some(after) = after {
        q = q.filter(messages::id.gt(DbUuid(after)));
    }
    let rows: Vec<Row> = q.load(conn)?;
    Ok(rows
        .into_iter()
        // The conversation's opening is an event of the visitor's without words: nothing to show.
        .filter(|(_, direction, _, text, _, _)| direction != "in" || text.is_some())
        .map(|(id, direction, author, text, payload, at)| {
            let mut json = match (direction.as_str(), payload.as_deref().and_then(Reply::from_json)) {
                ("out", Some(reply)) => reply.to_json(),
                _ => serde_json::json!({"text": text}),
            };
            if let Some(o) = json.as_object_mut() {
                o.insert("id".into(), id.0.to_string().into());
                o.insert("direction".into(), direction.into());
                o.insert("author".into(), author.into());
                o.insert(
                    "at".into(),
                    at.and_utc()
                        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                        .into(),
                );
            }
            WebMessage { id: id.0, json }
        })
        .collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_origin_is_a_scheme_a_host_and_a_port_at_most() {
        for good in [
            "https://shop.example",
            "HTTPS://Shop.Example/",
            "http://127.0.0.1:8080",
            "http://[::1]:8080",
            "http://localhost",
        ] {
            assert!(Origin::parse(good).is_ok(), "{good}");
        }
        assert_eq!(
            Origin::parse("HTTPS://Shop.Example/").unwrap().as_str(),
            "https://shop.example"
        );
        for bad in [
            "shop.example",
            "ftp://shop.example",
            "https://shop.example/path",
            "https://user@shop.example",
            "https://shop.example:99999",
            "https://shop.example?x=1",
            "https://",
            "http://[::1]x",
        ] {
            assert!(Origin::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_web_chat_allows_its_origins_only() {
        let webchat = Webchat {
            id: Uuid::nil(),
            merchant_id: MerchantId(Uuid::nil()),
            public_key: "wc_x".into(),
            allowed_origins: vec!["https://shop.example".into()],
            updated_at: now(),
        };
        assert!(webchat.allows("https://shop.example"));
        assert!(webchat.allows("https://SHOP.example/"));
        assert!(!webchat.allows("https://evil.example"));
        assert!(!webchat.allows("http://shop.example"));
    }

    #[test]
    fn what_a_visitor_says_is_bounded_and_text_loses_control_characters() {
        assert_eq!(
            Said::Text("hi\u{7}\nthere".into()).check(),
            Ok(Said::Text("hi\nthere".into()))
        );
        assert!(Said::Text(" ".into()).check().is_err());
        assert!(Said::Text("x".repeat(MAX_TEXT_CHARS + 1)).check().is_err());
        assert!(
            Said::Tap {
                payload: "p".repeat(MAX_PAYLOAD_CHARS + 1),
                title: None
            }
            .check()
            .is_err()
        );
    }
}
