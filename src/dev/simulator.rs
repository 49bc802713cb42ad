//! The thread simulator: one page (`/dev/simulator`, HTML, CSS and JS embedded in the binary) and the
//! three calls it makes: the Pages to choose from, a shopper's action (built into the delivery Meta
//! would send, on Messenger, Instagram Direct or WhatsApp, signed with the app secret and posted to the
//! server's own `/webhooks/messenger`), and the thread's messages as the dev Graph API received them
//! (long-polled; an Instagram shopper's replies go through the Page too, a WhatsApp shopper's through
//! the merchant's number, which the page polls by its id).

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{DevState, hmac_hex};
use crate::error::{ApiError, ErrorCode};
use crate::http::AppState;
use crate::kernel::FieldError;

const PAGE: &str = include_str!("simulator.html");

/// The longest a poll for messages waits.
const MAX_WAIT: Duration = Duration::from_secs(25);

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/dev/simulator", web::get().to(page))
        .route("/dev/simulator/pages", web::get().to(pages))
        .route("/dev/simulator/send", web::post().to(send))
        .route("/dev/simulator/messages", web::get().to(messages))
        .route("/dev/simulator/advance", web::post().to(advance));
}

async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("cache-control", "no-store"))
        .body(PAGE)
}

/// Something a shopper can arrive from an ad for.
#[derive(Serialize)]
struct Advertised {
    /// `ads_context_data.product_id`: a retailer id, or a room's id.
    product_id: String,
    /// The `ref` naming it (`p=` a product, `b=` a room), as an Instagram ad carries it.
    #[serde(rename = "ref")]
    reference: String,
    title: String,
    /// A SKU in stock, for a WhatsApp cart.
    #[serde(skip_serializing_if = "Option::is_none")]
    sku: Option<String>,
}

#[derive(Serialize)]
struct PageChoice {
    page_id: String,
    name: String,
    /// The Instagram account connected with the Page, whose shoppers can be played too.
    instagram_account_id: Option<String>,
    /// The merchant's WhatsApp number (its `phone_number_id`), whose shoppers can be played too.
    whatsapp_number_id: Option<String>,
    advertised: Vec<Advertised>,
}

/// The connected Pages with what their merchant sells.
async fn pages(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let choices = state
        .db
        .query(|conn| {
            let mut out = Vec::new();
            for page in crate::merchants::pages::list_all(conn, 50)? {
                let merchant = crate::merchants::get(conn, page.merchant_id)?;
                let mut advertised: Vec<Advertised> = crate::catalog::browse(conn, merchant.id, 50)?
                    .into_iter()
                    .map(|p| Advertised {
                        reference: format!("p={}", p.fields.retailer_id),
                        sku: p.variants.iter().find(|v| v.stock > 0).map(|v| v.sku.clone()),
                        product_id: p.fields.retailer_id.0,
                        title: p.fields.title,
                    })
                    .collect();
                let rooms = crate::bookings::list(
                    conn,
                    merchant.id,
                    &crate::bookings::BookableQuery {
                        page: crate::db::Keyset::OLDEST_FIRST,
                        limit: 50,
                        active_only: true,
                    },
                )?;
                advertised.extend(rooms.into_iter().map(|b| Advertised {
                    reference: format!("b={}", b.id.simple()),
                    product_id: b.id.to_string(),
                    title: b.spec.name,
                    sku: None,
                }));
                let whatsapp =
                    crate::merchants::whatsapp::list(conn, merchant.id, crate::db::Keyset::OLDEST_FIRST, 1)?
                        .into_iter()
                        .next()
                        .map(|n| n.phone_number_id.0);
                out.push(PageChoice {
                    whatsapp_number_id: whatsapp,
                    name: page.name.unwrap_or_else(|| merchant.name.clone()),
                    page_id: page.page_id.0,
                    instagram_account_id: page.instagram_account_id,
                    advertised,
                });
            }
            Ok(out)
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({"pages": choices})))
}

/// What the shopper does.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Action {
    /// Taps Get Started under a Click-to-Messenger ad (on Instagram: sends the ad's first message, the
    /// ad's `ref` naming what it advertises).
    Ad {
        ad_id: String,
        ad_title: String,
        product_id: String,
        #[serde(rename = "ref", default)]
        reference: Option<String>,
    },
    /// Opens the thread from an m.me link with a `ref`.
    Link {
        #[serde(rename = "ref")]
        reference: String,
    },
    /// Types text.
    Text { text: String },
    /// Taps a quick reply.
    QuickReply { title: String, payload: String },
    /// Taps a postback button.
    Postback { title: String, payload: String },
    /// Sends their WhatsApp cart (an `order` message) of catalog items.
    Order { items: Vec<OrderLine> },
}

/// One item of a simulated WhatsApp cart.
#[derive(Debug, Deserialize)]
struct OrderLine {
    /// The catalog item's retailer id (a SKU).
    retailer_id: String,
    quantity: u32,
}

/// The channel a simulated shopper is on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Channel {
    /// The Page's Messenger.
    #[default]
    Messenger,
    /// The Instagram account connected with the Page.
    Instagram,
    /// The merchant's WhatsApp number.
    Whatsapp,
}

#[derive(Debug, Deserialize)]
struct SendBody {
    page_id: String,
    #[serde(default)]
    channel: Channel,
    psid: String,
    /// The first name the dev Graph API answers for the shopper.
    name: Option<String>,
    action: Action,
}

fn invalid(field: &str, detail: &str) -> ApiError {
    ApiError::validation(vec![FieldError::new(field, "invalid", detail)])
}

fn check(body: &SendBody) -> Result<(), ApiError> {
    if body.page_id.is_empty() || !body.page_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("page_id", "a Page id is digits"));
    }
    let psid_ok = (1..=64).contains(&body.psid.len())
        && body
            .psid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !psid_ok {
        return Err(invalid("psid", "1 to 64 letters, digits, `-` or `_`"));
    }
    let text_ok = |t: &str| !t.trim().is_empty() && t.len() <= 2000;
    match &body.action {
        Action::Text { text } if !text_ok(text) => Err(invalid("action.text", "1 to 2000 characters")),
        Action::Order { items }
            if items.is_empty()
                || items.len() > 30
                || items
                    .iter()
                    .any(|i| i.retailer_id.is_empty() || !(1..=99).contains(&i.quantity)) =>
        {
            Err(invalid(
                "action.items",
                "1 to 30 items, each a retailer id and 1 to 99 units",
            ))
        }
        Action::Link { reference }
            if reference.is_empty()
                || !reference
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_=".contains(&b)) =>
        {
            Err(invalid(
                "action.ref",
                "letters, digits, `-`, `_` and `=` (what Meta allows in a ref)",
            ))
        }
        _ => Ok(()),
    }
}

/// The messaging event Meta would deliver, and what the shopper sees of their own action.
fn event(body: &SendBody, account_id: &str, now_ms: i64) -> (Value, Value) {
    let mid = format!("sim-{}", uuid::Uuid::new_v4().simple());
    let (event, shown) = match &body.action {
        // A Click-to-Direct ad opens the conversation with a message that carries the ad.
        Action::Ad {
            ad_id,
            ad_title,
            reference,
            ..
        } if body.channel == Channel::Instagram => (
            json!({"message": {"mid": mid, "text": "Hi! Is this available?",
                "referral": {"ref": reference, "ad_id": ad_id, "source": "ADS", "type": "OPEN_THREAD",
                    "ads_context_data": {"ad_title": ad_title}}}}),
            json!({"text": "Hi! Is this available?", "note": format!("from the Instagram ad “{ad_title}” ({ad_id})")}),
        ),
        Action::Ad {
            ad_id,
            ad_title,
            product_id,
            ..
        } => (
            json!({"postback": {"title": "Get Started", "payload": "GET_STARTED", "mid": mid,
                "referral": {"ad_id": ad_id, "source": "ADS", "type": "OPEN_THREAD",
                    "ads_context_data": {"ad_title": ad_title, "product_id": product_id,
                                         "post_id": format!("POST-{ad_id}")}}}}),
            json!({"text": "Get Started", "note": format!("from the ad “{ad_title}” ({ad_id})")}),
        ),
        Action::Link { reference } => (
            json!({"postback": {"title": "Get Started", "payload": "GET_STARTED", "mid": mid,
                "referral": {"ref": reference, "source": "SHORTLINK", "type": "OPEN_THREAD"}}}),
            json!({"text": "Get Started", "note": format!("from an m.me link, ref {reference}")}),
        ),
        Action::Text { text } => (
            json!({"message": {"mid": mid, "text": text}}),
            json!({"text": text}),
        ),
        Action::QuickReply { title, payload } => (
            json!({"message": {"mid": mid, "text": title, "quick_reply": {"payload": payload}}}),
            json!({"text": title}),
        ),
        Action::Postback { title, payload } => (
            json!({"postback": {"title": title, "payload": payload, "mid": mid}}),
            json!({"text": title}),
        ),
        Action::Order { .. } => (
            json!({"message": {"mid": mid, "text": "(a WhatsApp cart)"}}),
            json!({"text": "(a WhatsApp cart)"}),
        ),
    };
    let mut event = event;
    event["sender"] = json!({"id": body.psid});
    event["recipient"] = json!({"id": account_id});
    event["timestamp"] = json!(now_ms);
    (event, shown)
}

/// The WhatsApp message the Cloud API would deliver for the shopper's action (the ad arrival a
/// Click-to-WhatsApp message asking about the advertised item), and what the shopper sees of it.
fn whatsapp_message(body: &SendBody, now_ms: i64) -> (Value, Value) {
    let id = format!("wamid.sim{}", uuid::Uuid::new_v4().simple());
    let tap = |title: &str, payload: &str| {
        json!({"type": "interactive", "interactive": {"type": "button_reply",
            "button_reply": {"id": payload, "title": title}}})
    };
    let (message, shown) = match &body.action {
        Action::Ad {
            ad_id,
            ad_title,
            product_id,
            ..
        } => (
            json!({"type": "text", "text": {"body": "Hi! Can I get more info about this?"},
                "referral": {"source_url": format!("https://fb.me/{ad_id}"), "source_id": ad_id,
                    "source_type": "ad", "headline": ad_title, "media_type": "image",
                    "ctwa_clid": format!("sim-clid-{}", uuid::Uuid::new_v4().simple())},
                "context": {"referred_product": {"catalog_id": "0", "product_retailer_id": product_id}}}),
            json!({"text": "Hi! Can I get more info about this?",
                   "note": format!("from the Click-to-WhatsApp ad “{ad_title}” ({ad_id})")}),
        ),
        Action::Link { reference } => (
            json!({"type": "text", "text": {"body": format!("Hi! ({reference})")}}),
            json!({"text": format!("Hi! ({reference})"), "note": "from a wa.me link"}),
        ),
        Action::Text { text } => (
            json!({"type": "text", "text": {"body": text}}),
            json!({"text": text}),
        ),
        Action::QuickReply { title, payload } | Action::Postback { title, payload } => {
            (tap(title, payload), json!({"text": title}))
        }
        Action::Order { items } => {
            let lines: Vec<Value> = items
                .iter()
                .map(|i| json!({"product_retailer_id": i.retailer_id, "quantity": i.quantity}))
                .collect();
            let said = items
                .iter()
                .map(|i| format!("{} × {}", i.quantity, i.retailer_id))
                .collect::<Vec<_>>()
                .join(", ");
            (
                json!({"type": "order", "order": {"catalog_id": "0", "product_items": lines}}),
                json!({"text": format!("🛒 {said}"), "note": "a WhatsApp cart"}),
            )
        }
    };
    let mut message = message;
    message["from"] = json!(body.psid);
    message["id"] = json!(id);
    message["timestamp"] = json!((now_ms / 1000).to_string());
    (message, shown)
}

/// Posts the shopper's action to `/webhooks/messenger`, signed as Meta signs it.
async fn send(
    body: web::Json<SendBody>,
    state: web::Data<AppState>,
    dev: web::Data<DevState>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    check(&body)?;
    if let Some(name) = body.name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
        dev.set_name(&body.psid, name);
    }
    let now_ms = chrono::Utc::now().timestamp_millis();
    // An Instagram shopper writes to the Instagram account connected with the Page.
    let (object, account_id) = match body.channel {
        Channel::Messenger => ("page", body.page_id.clone()),
        Channel::Whatsapp => {
            let page_id = body.page_id.clone();
            let number = state
                .db
                .query(move |conn| {
                    let page = crate::merchants::pages::list_all(conn, 200)?
                        .into_iter()
                        .find(|p| p.page_id.as_str() == page_id);
                    match page {
                        Some(p) => Ok(crate::merchants::whatsapp::list(
                            conn,
                            p.merchant_id,
                            crate::db::Keyset::OLDEST_FIRST,
                            1,
                        )?
                        .into_iter()
                        .next()),
                        None => Ok(None),
                    }
                })
                .await?
                .ok_or_else(|| invalid("channel", "this Page's merchant has no WhatsApp number connected"))?;
            ("whatsapp_business_account", number.phone_number_id.0)
        }
        Channel::Instagram => {
            let page_id = body.page_id.clone();
            let account = state
                .db
                .query(move |conn| {
                    use diesel::prelude::*;
                    crate::db::schema::pages::table
                        .filter(crate::db::schema::pages::page_id.eq(&page_id))
                        .select(crate::db::schema::pages::instagram_account_id)
                        .first::<Option<String>>(conn)
                        .optional()
                })
                .await?
                .flatten()
                .ok_or_else(|| invalid("channel", "this Page has no Instagram account connected"))?;
            ("instagram", account)
        }
    };
    let (delivery, shown, recorded_under) = if body.channel == Channel::Whatsapp {
        let (message, shown) = whatsapp_message(&body, now_ms);
        let name = dev.name(&body.psid).unwrap_or_else(|| "Shopper".to_owned());
        let value = json!({"messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "0", "phone_number_id": account_id},
            "contacts": [{"profile": {"name": name}, "wa_id": body.psid}],
            "messages": [message]});
        let delivery = json!({"object": object, "entry": [{"id": "0",
            "changes": [{"field": "messages", "value": value}]}]});
        (delivery.to_string(), shown, account_id.clone())
    } else {
        let (event, shown) = event(&body, &account_id, now_ms);
        let delivery =
            json!({"object": object, "entry": [{"id": account_id, "time": now_ms, "messaging": [event]}]});
        (delivery.to_string(), shown, body.page_id.clone())
    };
    let signature = state
        .config
        .messenger_app_secret
        .as_ref()
        .and_then(|secret| hmac_hex(secret, delivery.as_bytes()))
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("dev mode has no Messenger app secret")))?;
    dev.record(&recorded_under, &body.psid, "shopper", shown);
    let status = dev
        .post_to_self(
            "/webhooks/messenger",
            &[("x-hub-signature-256", format!("sha256={signature}"))],
            delivery,
        )
        .await
        .map_err(|e| ApiError::internal(anyhow::anyhow!("posting the delivery: {}", e.without_url())))?;
    if !(200..300).contains(&status) {
        return Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            ErrorCode::WebhookRefused,
            format!("/webhooks/messenger answered {status}"),
        ));
    }
    Ok(HttpResponse::Accepted().json(json!({"delivered": true})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdvanceBody {
    page_id: String,
    psid: String,
    /// How long passes for the thread, in minutes.
    minutes: i64,
}

/// Time passes for one thread (see `crate::dev::clock`): its scheduled work falls due and its window
/// closes as after the wait; the schedule is woken.
async fn advance(body: web::Json<AdvanceBody>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let AdvanceBody {
        page_id,
        psid,
        minutes,
    } = body.into_inner();
    let by = chrono::Duration::minutes(minutes);
    if minutes <= 0 || by > super::clock::MAX_STEP {
        return Err(invalid("minutes", "time moves forward by 1 minute to 30 days"));
    }
    let moved = state
        .db
        .query(move |conn| {
            let Some(thread) = super::clock::thread_of(conn, &page_id, &psid)? else {
                return Ok(false);
            };
            super::clock::advance(conn, thread, by).map(|()| true)
        })
        .await?;
    if !moved {
        return Err(ApiError::not_found("thread"));
    }
    state.wakers.scheduled.notify_one();
    Ok(HttpResponse::Ok().json(json!({"advanced_minutes": minutes})))
}

#[derive(Debug, Deserialize)]
struct MessagesQuery {
    page_id: String,
    psid: String,
    #[serde(default)]
    after: u64,
    /// Seconds to wait for a message when there is none yet (0 to 25).
    #[serde(default)]
    wait: u64,
}

/// The thread's messages after `after`, both ways, waiting up to `wait` seconds for one.
async fn messages(query: web::Query<MessagesQuery>, dev: web::Data<DevState>) -> HttpResponse {
    let q = query.into_inner();
    let wait = Duration::from_secs(q.wait).min(MAX_WAIT);
    let found = dev.wait_for_messages(&q.page_id, &q.psid, q.after, wait).await;
    let last = found.last().map_or(q.after, |e| e.seq);
    HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .json(json!({"messages": found, "last": last}))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn body(action: Action) -> SendBody {
        SendBody {
            page_id: "100000000000001".into(),
            channel: Channel::Messenger,
            psid: "SIM-1".into(),
            name: None,
            action,
        }
    }

    #[test]
    fn an_ad_arrival_is_a_get_started_postback_with_the_ads_context() {
        let (e, shown) = event(
            &body(Action::Ad {
                ad_id: "AD-1".into(),
                ad_title: "Comfy slippers".into(),
                product_id: "SLIP-01".into(),
                reference: None,
            }),
            "100000000000001",
            7,
        );
        assert_eq!(e["postback"]["payload"], "GET_STARTED");
        assert_eq!(e["postback"]["referral"]["source"], "ADS");
        assert_eq!(
            e["postback"]["referral"]["ads_context_data"]["product_id"],
            "SLIP-01"
        );
        assert_eq!(e["sender"]["id"], "SIM-1");
        assert_eq!(e["recipient"]["id"], "100000000000001");
        assert_eq!(e["timestamp"], 7);
        assert_eq!(shown["text"], "Get Started");
    }

    #[test]
    fn a_quick_reply_carries_its_title_as_text_and_its_payload() {
        let (e, _) = event(
            &body(Action::QuickReply {
                title: "42".into(),
                payload: "tc1:x".into(),
            }),
            "100000000000001",
            1,
        );
        assert_eq!(e["message"]["text"], "42");
        assert_eq!(e["message"]["quick_reply"]["payload"], "tc1:x");
    }

    #[test]
    fn an_instagram_ad_arrival_is_a_message_carrying_the_ad_and_its_ref() {
        let mut b = body(Action::Ad {
            ad_id: "AD-IG".into(),
            ad_title: "Comfy slippers".into(),
            product_id: "SLIP-01".into(),
            reference: Some("p=SLIP-01".into()),
        });
        b.channel = Channel::Instagram;
        let (e, _) = event(&b, "17841400000000001", 3);
        assert_eq!(e["message"]["referral"]["ref"], "p=SLIP-01");
        assert_eq!(e["message"]["referral"]["source"], "ADS");
        assert_eq!(e["recipient"]["id"], "17841400000000001");
    }

    #[test]
    fn a_whatsapp_ad_arrival_is_a_message_asking_about_the_product_with_the_ads_click_id() {
        let mut b = body(Action::Ad {
            ad_id: "AD-WA".into(),
            ad_title: "Comfy slippers".into(),
            product_id: "SLIP-01".into(),
            reference: None,
        });
        b.channel = Channel::Whatsapp;
        let (m, shown) = whatsapp_message(&b, 1_750_000_000_123);
        assert_eq!(m["from"], "SIM-1");
        assert_eq!(m["timestamp"], "1750000000");
        assert_eq!(m["referral"]["source_id"], "AD-WA");
        assert!(
            m["referral"]["ctwa_clid"]
                .as_str()
                .unwrap()
                .starts_with("sim-clid-")
        );
        assert_eq!(m["context"]["referred_product"]["product_retailer_id"], "SLIP-01");
        assert!(shown["note"].as_str().unwrap().contains("Click-to-WhatsApp"));
        let mut cart = body(Action::Order {
            items: vec![OrderLine {
                retailer_id: "SLIP-01-42".into(),
                quantity: 2,
            }],
        });
        cart.channel = Channel::Whatsapp;
        let (m, _) = whatsapp_message(&cart, 1);
        assert_eq!(m["order"]["product_items"][0]["quantity"], 2);
        let empty = body(Action::Order { items: Vec::new() });
        assert!(check(&empty).is_err());
    }

    #[test]
    fn a_ref_with_characters_meta_refuses_is_refused() {
        let b = body(Action::Link {
            reference: "p=SLIP 01".into(),
        });
        assert!(check(&b).is_err());
        let mut b = body(Action::Text { text: "hi".into() });
        b.psid = "bad psid".into();
        assert!(check(&b).is_err());
    }
}
