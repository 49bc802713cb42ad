//! Meta's webhook deliveries for Messenger (`"object": "page"`) and Instagram Direct (`"object":
//! "instagram"`): signature check over the raw bytes, and parsing of the envelope into neutral
//! [`Inbound`] events, each with the key that makes a redelivery recognisable.
//!
//! Both channels share the Messenger Platform's shapes: `entry[].id` is the Page's id, or the Instagram
//! professional account's; `messaging[]` objects carry `message`, `postback`, `referral`, `read`,
//! `reaction` ... An Instagram Click-to-Direct ad's referral rides on the shopper's first message
//! (`message.referral`). Meta batches at two levels (`entry[]`, then `messaging[]`/`standby[]`) and
//! documents timestamps both as numbers of milliseconds and as strings of seconds, so both are accepted.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::METADATA_PREFIX;
use crate::conversations::event::{EventKind, Inbound};
use crate::engine::Referral;
use crate::kernel::Channel;

/// True when `header` (`sha256=<hex>`) is the HMAC-SHA256 of `body` under `secret`, compared in constant time.
pub fn signature_is_valid(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(hex) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Some(expected) = decode_hex(hex) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| hex.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}

/// Why a delivery could not be read at all.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    /// Not JSON.
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    /// JSON, but not a Messenger or Instagram envelope.
    #[error("not a Messenger or Instagram delivery: {0}")]
    NotMessenger(String),
}

fn text(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Reads a timestamp given as a number or a string, in seconds or milliseconds, as milliseconds.
pub fn lenient_millis(v: Option<&Value>) -> Option<i64> {
    let n = match v? {
        Value::Number(n) => n.as_i64()?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    // Anything before 1973 in milliseconds is a time in seconds.
    Some(if n < 100_000_000_000 {
        n.saturating_mul(1000)
    } else {
        n
    })
}

fn short_hash(v: &str) -> String {
    crate::secrets::hex(&Sha256::digest(v.as_bytes()))
        .chars()
        .take(16)
        .collect()
}

/// Reads a referral object.
pub fn referral(v: &Value) -> Referral {
    let ads = v.get("ads_context_data").filter(|a| a.is_object());
    Referral {
        source: text(v, "source").unwrap_or_else(|| "UNKNOWN".into()),
        kind: text(v, "type").unwrap_or_else(|| "OPEN_THREAD".into()),
        ref_: text(v, "ref").filter(|r| !r.is_empty()),
        ad_id: text(v, "ad_id"),
        ad_title: ads.and_then(|a| text(a, "ad_title")),
        post_id: ads.and_then(|a| text(a, "post_id")),
        product_id: ads.and_then(|a| text(a, "product_id")),
        ads_context_data: ads.map(Value::to_string),
        ..Referral::default()
    }
}

fn event_kind(m: &Value) -> EventKind {
    if let Some(msg) = m.get("message") {
        let mid = text(msg, "mid").unwrap_or_default();
        let flag = |key: &str| msg.get(key).and_then(Value::as_bool).unwrap_or(false);
        if flag("is_echo") {
            return EventKind::Echo {
                mid,
                ours: text(msg, "metadata").is_some_and(|m| m.starts_with(METADATA_PREFIX)),
                text: text(msg, "text"),
            };
        }
        // Instagram tells of a message the shopper deleted, or one it cannot show us.
        if flag("is_deleted") {
            return EventKind::Other("message_deleted".into());
        }
        if flag("is_unsupported") {
            return EventKind::Other("message_unsupported".into());
        }
        return EventKind::Message {
            mid,
            text: text(msg, "text"),
            quick_reply: msg.get("quick_reply").and_then(|q| text(q, "payload")),
            attachments: msg
                .get("attachments")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|x| text(x, "type")).collect())
                .unwrap_or_default(),
            referral: msg.get("referral").filter(|r| r.is_object()).map(referral),
        };
    }
    if let Some(p) = m.get("postback") {
        return EventKind::Postback {
            title: text(p, "title"),
            payload: text(p, "payload"),
            referral: p.get("referral").filter(|r| r.is_object()).map(referral),
        };
    }
    if let Some(r) = m.get("referral").filter(|r| r.is_object()) {
        return EventKind::Referral(referral(r));
    }
    if let Some(d) = m.get("delivery") {
        return EventKind::Delivery {
            watermark: lenient_millis(d.get("watermark")).unwrap_or_default(),
        };
    }
    if let Some(r) = m.get("read") {
        return EventKind::Read {
            watermark: lenient_millis(r.get("watermark")).unwrap_or_default(),
        };
    }
    if let Some(r) = m.get("reaction") {
        return EventKind::Reaction {
            action: text(r, "action").unwrap_or_else(|| "react".into()),
            reaction: text(r, "emoji").or_else(|| text(r, "reaction")),
            mid: text(r, "mid"),
        };
    }
    if let Some(o) = m.get("optin") {
        return EventKind::Optin {
            kind: text(o, "type"),
        };
    }
    let key = m
        .as_object()
        .and_then(|o| {
            o.keys()
                .find(|k| !["sender", "recipient", "timestamp"].contains(&k.as_str()))
                .cloned()
        })
        .unwrap_or_else(|| "unknown".into());
    EventKind::Other(key)
}

fn dedup_key(kind: &EventKind, m: &Value, psid: &str, ts: i64) -> String {
    match kind {
        EventKind::Message { mid, .. } if !mid.is_empty() => format!("m:{mid}"),
        EventKind::Echo { mid, .. } if !mid.is_empty() => format!("e:{mid}"),
        EventKind::Postback { .. } => match m.get("postback").and_then(|p| text(p, "mid")) {
            Some(mid) => format!("p:{mid}"),
            None => format!("p:{psid}:{ts}:{}", short_hash(&m["postback"].to_string())),
        },
        EventKind::Referral(r) => format!(
            "r:{psid}:{ts}:{}",
            short_hash(&format!("{:?}|{:?}", r.ref_, r.ad_id))
        ),
        EventKind::Delivery { watermark } => format!("d:{psid}:{watermark}"),
        EventKind::Read { watermark } => format!("rd:{psid}:{watermark}"),
        EventKind::Reaction { action, mid, .. } => {
            format!("x:{}:{action}:{ts}", mid.as_deref().unwrap_or(psid))
        }
        _ => format!("u:{psid}:{ts}:{}", short_hash(&m.to_string())),
    }
}

/// Reads one messaging object of the account `account_id` (a Page, or an Instagram account); `None` when
/// it names no shopper.
pub fn event(
    channel: Channel,
    account_id: &str,
    m: &Value,
    standby: bool,
    fallback_ms: Option<i64>,
) -> Option<Inbound> {
    let kind = event_kind(m);
    let (from, to) = (
        m.get("sender").and_then(|s| text(s, "id")),
        m.get("recipient").and_then(|s| text(s, "id")),
    );
    // Echoes come from the business: the shopper is the recipient.
    let psid = match kind {
        EventKind::Echo { .. } => to,
        _ => from,
    };
    let psid = psid.filter(|p| p != account_id)?;
    let timestamp_ms = lenient_millis(m.get("timestamp"))
        .or(fallback_ms)
        .unwrap_or_default();
    Some(Inbound {
        channel,
        dedup_key: dedup_key(&kind, m, &psid, timestamp_ms),
        account: account_id.into(),
        user: psid.into(),
        timestamp_ms,
        passive: standby,
        kind,
        profile_name: None,
        raw: m.clone(),
    })
}

/// Reads a messaging object stored by a version that kept only the raw form (see
/// [`crate::conversations::inbox::fill_neutral_forms`]).
pub fn decode_stored(channel: Channel, account_id: &str, raw: &Value) -> Option<Inbound> {
    event(channel, account_id, raw, false, None)
}

/// Parses a verified delivery into its events, in the order delivered.
pub fn parse(body: &[u8]) -> Result<Vec<Inbound>, ParseError> {
    let envelope: Value = serde_json::from_slice(body).map_err(|e| ParseError::NotJson(e.to_string()))?;
    let channel = match envelope.get("object").and_then(Value::as_str) {
        Some("page") => Channel::Messenger,
        Some("instagram") => Channel::Instagram,
        // WhatsApp's Cloud API comes on the same endpoint, signed with the same app secret.
        Some("whatsapp_business_account") => return Ok(crate::channels::whatsapp::webhook::parse(&envelope)),
        other => {
            return Err(ParseError::NotMessenger(format!(
                "object is {other:?}, expected \"page\", \"instagram\" or \"whatsapp_business_account\""
            )));
        }
    };
    let entries = envelope
        .get("entry")
        .and_then(Value::as_array)
        .ok_or_else(|| ParseError::NotMessenger("no entry array".into()))?;
    let mut events = Vec::new();
    for entry in entries {
        let Some(page_id) = text(entry, "id") else {
            continue;
        };
        let entry_time = lenient_millis(entry.get("time"));
        for (list, standby) in [("messaging", false), ("standby", true)] {
            for m in entry.get(list).and_then(Value::as_array).into_iter().flatten() {
                events.extend(event(channel, &page_id, m, standby, entry_time));
            }
        }
    }
    Ok(events)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sign(secret: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        format!("sha256={}", crate::secrets::hex(&mac.finalize().into_bytes()))
    }

    #[test]
    fn a_signature_over_the_raw_escaped_bytes_verifies() {
        let body = br#"{"object":"page","entry":[{"id":"1","messaging":[{"message":{"text":"\u00e4\u00f6\u00e5"}}]}]}"#;
        assert!(signature_is_valid(b"s3cret", body, Some(&sign("s3cret", body))));
    }

    #[test]
    fn a_wrong_or_missing_signature_fails() {
        let body = b"{}";
        assert!(!signature_is_valid(b"s3cret", body, Some(&sign("other", body))));
        assert!(!signature_is_valid(b"s3cret", body, None));
        assert!(!signature_is_valid(b"s3cret", body, Some("sha256=zz")));
        assert!(!signature_is_valid(b"s3cret", body, Some("sha1=abcd")));
    }

    #[test]
    fn a_referral_postback_carries_the_ad_and_its_context() {
        let body = br#"{"object":"page","entry":[{"id":"PAGE","time":1458692752478,"messaging":[
          {"sender":{"id":"USER"},"recipient":{"id":"PAGE"},"timestamp":1458692752478,
           "postback":{"title":"Get Started","payload":"GET_STARTED","mid":"m-1",
             "referral":{"ref":"c=xmas","ad_id":"AD1","source":"ADS","type":"OPEN_THREAD",
               "ads_context_data":{"ad_title":"Comfy slippers","product_id":"SLIP-01","post_id":"P1"}}}}]}]}"#;
        let events = parse(body).unwrap();
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!((e.account.as_str(), e.user.as_str()), ("PAGE", "USER"));
        assert_eq!(e.channel, Channel::Messenger);
        assert_eq!(e.dedup_key, "p:m-1");
        let EventKind::Postback {
            referral: Some(r), ..
        } = &e.kind
        else {
            panic!("expected a postback with a referral, got {:?}", e.kind)
        };
        assert_eq!(r.source, "ADS");
        assert_eq!(r.ad_id.as_deref(), Some("AD1"));
        assert_eq!(r.product_id.as_deref(), Some("SLIP-01"));
        assert_eq!(r.ad_title.as_deref(), Some("Comfy slippers"));
        assert!(r.ads_context_data.as_deref().unwrap().contains("post_id"));
    }

    #[test]
    fn echoes_belong_to_the_recipient_shopper() {
        let body = br#"{"object":"page","entry":[{"id":"PAGE","messaging":[
          {"sender":{"id":"PAGE"},"recipient":{"id":"USER"},"timestamp":1,
           "message":{"is_echo":true,"app_id":263902037430900,"mid":"m-9","text":"hi"}}]}]}"#;
        let e = &parse(body).unwrap()[0];
        assert_eq!(e.user, "USER");
        assert_eq!(e.dedup_key, "e:m-9");
        assert!(matches!(&e.kind, EventKind::Echo { ours: false, .. }));
    }

    #[test]
    fn an_echo_carrying_our_metadata_is_ours() {
        let body = br#"{"object":"page","entry":[{"id":"PAGE","messaging":[
          {"sender":{"id":"PAGE"},"recipient":{"id":"USER"},"timestamp":1,
           "message":{"is_echo":true,"mid":"m-10","text":"hi","metadata":"threadcart:0190"}}]}]}"#;
        assert!(matches!(
            &parse(body).unwrap()[0].kind,
            EventKind::Echo { ours: true, .. }
        ));
    }

    #[test]
    fn an_instagram_click_to_direct_message_carries_its_ad_on_the_message() {
        let body = br#"{"object":"instagram","entry":[{"id":"IG-1","time":1569262486134,"messaging":[
          {"sender":{"id":"IGSID-7"},"recipient":{"id":"IG-1"},"timestamp":1569262485349,
           "message":{"mid":"ig-m-1","text":"Is this available?",
             "referral":{"ref":"p=SLIP-01","ad_id":"AD-IG","source":"ADS","type":"OPEN_THREAD",
               "ads_context_data":{"ad_title":"Slippers","photo_url":"https://x.example/p.jpg"}}}}]}]}"#;
        let e = &parse(body).unwrap()[0];
        assert_eq!(e.channel, Channel::Instagram);
        assert_eq!((e.account.as_str(), e.user.as_str()), ("IG-1", "IGSID-7"));
        let EventKind::Message {
            referral: Some(r),
            text,
            ..
        } = &e.kind
        else {
            panic!("expected a message with a referral, got {:?}", e.kind)
        };
        assert_eq!(text.as_deref(), Some("Is this available?"));
        assert_eq!(
            (r.ad_id.as_deref(), r.ref_.as_deref()),
            (Some("AD-IG"), Some("p=SLIP-01"))
        );
        assert_eq!(r.ad_title.as_deref(), Some("Slippers"));
    }

    #[test]
    fn an_instagram_message_the_shopper_deleted_asks_for_no_answer() {
        let body = br#"{"object":"instagram","entry":[{"id":"IG-1","messaging":[
          {"sender":{"id":"IGSID-7"},"recipient":{"id":"IG-1"},"timestamp":1,
           "message":{"mid":"ig-m-2","is_deleted":true}}]}]}"#;
        assert!(matches!(&parse(body).unwrap()[0].kind, EventKind::Other(k) if k == "message_deleted"));
    }

    #[test]
    fn every_entry_and_every_messaging_item_is_read_including_standby() {
        let body = br#"{"object":"page","entry":[
          {"id":"P1","messaging":[{"sender":{"id":"U1"},"recipient":{"id":"P1"},"timestamp":1,"message":{"mid":"a","text":"x"}},
                                  {"sender":{"id":"U2"},"recipient":{"id":"P1"},"timestamp":2,"read":{"watermark":1458668856253}}]},
          {"id":"P2","standby":[{"sender":{"id":"U3"},"recipient":{"id":"P2"},"timestamp":"1458692752","delivery":{"watermark":1458668856254}}]}]}"#;
        let events = parse(body).unwrap();
        let keys: Vec<&str> = events.iter().map(|e| e.dedup_key.as_str()).collect();
        assert_eq!(keys, ["m:a", "rd:U2:1458668856253", "d:U3:1458668856254"]);
        assert!(events[2].passive);
        assert_eq!(events[2].timestamp_ms, 1_458_692_752_000);
    }

    #[test]
    fn a_delivery_that_is_neither_a_page_an_instagram_nor_a_whatsapp_object_is_refused() {
        assert!(matches!(
            parse(br#"{"object":"user","entry":[]}"#),
            Err(ParseError::NotMessenger(_))
        ));
        assert!(
            parse(br#"{"object":"whatsapp_business_account","entry":[]}"#)
                .unwrap()
                .is_empty()
        );
        assert!(parse(br#"{"object":"instagram","entry":[]}"#).unwrap().is_empty());
        assert!(matches!(parse(b"not json"), Err(ParseError::NotJson(_))));
    }
}
