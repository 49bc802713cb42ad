//! WhatsApp Cloud API deliveries (`"object": "whatsapp_business_account"`, on the same signed endpoint
//! as Messenger's) read into neutral events: each `entry[].changes[].value` names the business number
//! (`metadata.phone_number_id`, the account), the shoppers' messages (`messages[]`, from their WhatsApp
//! id) and what became of ours (`statuses[]`). Shapes: `fixtures/reference/whatsapp.md` §1.

use serde_json::Value;

use crate::conversations::event::{EventKind, Inbound, OrderItem};
use crate::engine::Referral;
use crate::kernel::Channel;

fn text(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The events of a delivery, in the order delivered (messages before statuses within a change).
pub fn parse(envelope: &Value) -> Vec<Inbound> {
    let mut events = Vec::new();
    let entries = envelope.get("entry").and_then(Value::as_array);
    for entry in entries.into_iter().flatten() {
        let changes = entry.get("changes").and_then(Value::as_array);
        for change in changes.into_iter().flatten() {
            let Some(value) = change.get("value") else {
                continue;
            };
            let Some(number) = value.get("metadata").and_then(|m| text(m, "phone_number_id")) else {
                continue;
            };
            let names = contact_names(value);
            for m in value
                .get("messages")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                events.extend(message(&number, m, &names));
            }
            for s in value
                .get("statuses")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                events.extend(status(&number, s));
            }
        }
    }
    events
}

/// The profile names of the change's contacts, by WhatsApp id.
fn contact_names(value: &Value) -> Vec<(String, String)> {
    value
        .get("contacts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let name = c.get("profile").and_then(|p| text(p, "name"))?;
            Some((text(c, "wa_id")?, name))
        })
        .collect()
}

/// Unix seconds as a string (or a number), as milliseconds.
fn millis(v: &Value) -> i64 {
    text(v, "timestamp")
        .and_then(|t| t.parse::<i64>().ok())
        .map_or(0, |secs| secs.saturating_mul(1000))
}

/// A Click-to-WhatsApp ad's referral, or the catalog item a shopper asked about (`context.
/// referred_product`, the "Message business" button of a product), as a touch.
fn referral(m: &Value) -> Option<Referral> {
    let product = m
        .get("context")
        .and_then(|c| c.get("referred_product"))
        .and_then(|p| text(p, "product_retailer_id"));
    let Some(r) = m.get("referral").filter(|r| r.is_object()) else {
        return product.map(|product_id| Referral {
            source: "CATALOG".into(),
            kind: "OPEN_THREAD".into(),
            product_id: Some(product_id),
            ..Referral::default()
        });
    };
    let is_ad = text(r, "source_type").is_none_or(|t| t.eq_ignore_ascii_case("ad"));
    Some(Referral {
        source: if is_ad { "ADS".into() } else { "POST".into() },
        kind: "OPEN_THREAD".into(),
        ad_id: text(r, "source_id"),
        ad_title: text(r, "headline").or_else(|| text(r, "body")),
        product_id: product,
        // Kept whole: `ctwa_clid` (sent back with the purchase), `source_url`, the ad's body.
        ads_context_data: Some(r.to_string()),
        ..Referral::default()
    })
}

/// One shopper message.
fn message(number: &str, m: &Value, names: &[(String, String)]) -> Option<Inbound> {
    let from = text(m, "from")?;
    let mid = text(m, "id")?;
    let kind = text(m, "type").unwrap_or_default();
    let reply = |key: &str| {
        let r = m.get("interactive").and_then(|i| i.get(key))?;
        Some((text(r, "id"), text(r, "title")))
    };
    let (body, tap, attachments): (Option<String>, Option<String>, Vec<String>) = match kind.as_str() {
        "text" => (m.get("text").and_then(|t| text(t, "body")), None, Vec::new()),
        "interactive" => match reply("button_reply").or_else(|| reply("list_reply")) {
            Some((id, title)) => (title, id, Vec::new()),
            None => (None, None, vec!["interactive".into()]),
        },
        // A template's quick reply button.
        "button" => {
            let b = m.get("button");
            (
                b.and_then(|b| text(b, "text")),
                b.and_then(|b| text(b, "payload")),
                Vec::new(),
            )
        }
        other => (
            m.get(other).and_then(|a| text(a, "caption")),
            None,
            vec![other.to_owned()],
        ),
    };
    // `from` is the shopper's phone number and may differ from their WhatsApp id (whatsapp.md §1.1),
    // which statuses name and sends go to: the change's one contact's id when there is one.
    let (from, profile_name) = match names {
        [(wa_id, name)] => (wa_id.clone(), Some(name.clone())),
        _ => {
            let name = names.iter().find(|(id, _)| *id == from).map(|(_, n)| n.clone());
            (from, name)
        }
    };
    if kind == "order" {
        let order = m.get("order");
        let items = order
            .and_then(|o| o.get("product_items"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|i| {
                Some(OrderItem {
                    retailer_id: text(i, "product_retailer_id")?,
                    quantity: i
                        .get("quantity")
                        .and_then(|q| q.as_u64().or_else(|| q.as_str()?.parse().ok()))
                        .map_or(1, |q| u32::try_from(q).unwrap_or(u32::MAX)),
                    price: text(i, "item_price"),
                    currency: text(i, "currency"),
                })
            })
            .collect();
        return Some(Inbound {
            channel: Channel::Whatsapp,
            account: number.into(),
            user: from.into(),
            timestamp_ms: millis(m),
            dedup_key: format!("m:{mid}"),
            passive: false,
            kind: EventKind::Order {
                mid,
                text: order.and_then(|o| text(o, "text")).filter(|t| !t.is_empty()),
                items,
            },
            profile_name,
            raw: m.clone(),
        });
    }
    Some(Inbound {
        channel: Channel::Whatsapp,
        account: number.into(),
        user: from.into(),
        timestamp_ms: millis(m),
        dedup_key: format!("m:{mid}"),
        passive: false,
        kind: EventKind::Message {
            mid,
            text: body.filter(|t| !t.is_empty()),
            quick_reply: tap,
            attachments,
            referral: referral(m),
        },
        profile_name,
        raw: m.clone(),
    })
}

/// What became of one of our messages: delivered, read, or failed with WhatsApp's error.
fn status(number: &str, s: &Value) -> Option<Inbound> {
    let recipient = text(s, "recipient_id")?;
    let mid = text(s, "id")?;
    let state = text(s, "status").unwrap_or_default();
    let at = millis(s);
    let kind = match state.as_str() {
        "delivered" => EventKind::Delivery { watermark: at },
        "read" => EventKind::Read { watermark: at },
        "failed" => {
            let error = s
                .get("errors")
                .and_then(Value::as_array)
                .and_then(|e| e.first())
                .map(|e| {
                    let code = text(e, "code").unwrap_or_default();
                    let title = text(e, "title")
                        .or_else(|| text(e, "message"))
                        .unwrap_or_default();
                    let details = e.get("error_data").and_then(|d| text(d, "details"));
                    match details {
                        Some(d) if d != title => format!("WhatsApp error {code}: {title} ({d})"),
                        _ => format!("WhatsApp error {code}: {title}"),
                    }
                })
                .unwrap_or_else(|| "WhatsApp says the message failed".into());
            EventKind::SendFailed {
                mid: mid.clone(),
                error,
            }
        }
        other => EventKind::Other(format!("status_{other}")),
    };
    Some(Inbound {
        channel: Channel::Whatsapp,
        account: number.into(),
        user: recipient.into(),
        timestamp_ms: at,
        dedup_key: format!("s:{mid}:{state}"),
        passive: false,
        kind,
        profile_name: None,
        raw: s.clone(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn delivery(value: Value) -> Value {
        serde_json::json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA-1",
            "changes": [{"field": "messages", "value": value}]}]})
    }

    #[test]
    fn a_click_to_whatsapp_message_carries_its_ad_and_the_shoppers_name() {
        // Meta's example (fixtures/reference/whatsapp.md §1.3).
        let body = delivery(serde_json::json!({
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
            "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"}],
            "messages": [{
                "referral": {"source_url": "https://fb.me/3cr4Wqqkv", "source_id": "120226305854810726",
                    "source_type": "ad", "body": "Summer Succulents are here!", "headline": "Chat with us",
                    "media_type": "image", "ctwa_clid": "Aff-n8ZTOD"},
                "from": "16505551234", "id": "wamid.HBgL1", "timestamp": "1750275992",
                "text": {"body": "Can I get more info about this?"}, "type": "text"}]}));

        let events = parse(&body);

        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(
            (e.account.as_str(), e.user.as_str()),
            ("106540352242922", "16505551234")
        );
        assert_eq!(e.channel, Channel::Whatsapp);
        assert_eq!(e.dedup_key, "m:wamid.HBgL1");
        assert_eq!(e.timestamp_ms, 1_750_275_992_000);
        assert_eq!(e.profile_name.as_deref(), Some("Sheena Nelson"));
        let EventKind::Message {
            text,
            referral: Some(r),
            ..
        } = &e.kind
        else {
            panic!("{:?}", e.kind)
        };
        assert_eq!(text.as_deref(), Some("Can I get more info about this?"));
        assert_eq!(r.source, "ADS");
        assert_eq!(r.ad_id.as_deref(), Some("120226305854810726"));
        assert_eq!(r.ad_title.as_deref(), Some("Chat with us"));
        assert!(r.ads_context_data.as_deref().unwrap().contains("Aff-n8ZTOD"));
    }

    #[test]
    fn the_shopper_is_their_whatsapp_id_when_it_differs_from_the_number_they_write_from() {
        let body = delivery(serde_json::json!({
            "metadata": {"phone_number_id": "PN"},
            "contacts": [{"profile": {"name": "Ana"}, "wa_id": "5511987654321"}],
            "messages": [{"from": "551187654321", "id": "wamid.x", "timestamp": "1", "type": "text",
                          "text": {"body": "oi"}}]}));
        let e = &parse(&body)[0];
        assert_eq!(e.user, "5511987654321");
        assert_eq!(e.profile_name.as_deref(), Some("Ana"));
    }

    #[test]
    fn a_button_or_list_reply_is_a_tap_with_our_payload() {
        let body = delivery(serde_json::json!({
            "metadata": {"phone_number_id": "PN"},
            "messages": [
                {"from": "W1", "id": "wamid.b", "timestamp": "1", "type": "interactive",
                 "interactive": {"type": "button_reply", "button_reply": {"id": "PAYLOAD-1", "title": "Choose size"}}},
                {"from": "W1", "id": "wamid.l", "timestamp": "2", "type": "interactive",
                 "interactive": {"type": "list_reply", "list_reply": {"id": "PAYLOAD-2", "title": "42"}}}]}));

        let taps: Vec<(Option<String>, Option<String>)> = parse(&body)
            .into_iter()
            .map(|e| match e.kind {
                EventKind::Message {
                    text, quick_reply, ..
                } => (text, quick_reply),
                other => panic!("{other:?}"),
            })
            .collect();

        assert_eq!(
            taps,
            [
                (Some("Choose size".into()), Some("PAYLOAD-1".into())),
                (Some("42".into()), Some("PAYLOAD-2".into()))
            ]
        );
    }

    #[test]
    fn a_question_about_a_catalog_item_names_the_product() {
        let body = delivery(serde_json::json!({
            "metadata": {"phone_number_id": "PN"},
            "messages": [{"from": "W1", "id": "wamid.q", "timestamp": "1", "type": "text",
                "text": {"body": "Is it warm?"},
                "context": {"from": "1555", "id": "wamid.ctx",
                    "referred_product": {"catalog_id": "194836987003835", "product_retailer_id": "SLIP-01"}}}]}));

        let e = &parse(&body)[0];

        let EventKind::Message {
            referral: Some(r), ..
        } = &e.kind
        else {
            panic!("{:?}", e.kind)
        };
        assert_eq!(r.product_id.as_deref(), Some("SLIP-01"));
        assert_eq!(r.ad_id, None);
    }

    #[test]
    fn an_order_message_carries_the_shoppers_cart_as_their_app_priced_it() {
        // Meta's example (fixtures/reference/whatsapp.md §1.5), `item_price` a decimal.
        let body = delivery(serde_json::json!({
            "metadata": {"phone_number_id": "PN"},
            "messages": [{"from": "W1", "id": "wamid.o", "timestamp": "1750096325", "type": "order",
                "order": {"catalog_id": "194836987003835", "text": "Love these!",
                    "product_items": [
                        {"product_retailer_id": "di9ozbzfi4", "quantity": 2, "item_price": 7.99, "currency": "USD"},
                        {"product_retailer_id": "nqryix03ez", "quantity": 1, "item_price": 25, "currency": "USD"}]}}]}));

        let e = &parse(&body)[0];

        let EventKind::Order { text, items, .. } = &e.kind else {
            panic!("{:?}", e.kind)
        };
        assert_eq!(text.as_deref(), Some("Love these!"));
        assert_eq!(
            items[0],
            OrderItem {
                retailer_id: "di9ozbzfi4".into(),
                quantity: 2,
                price: Some("7.99".into()),
                currency: Some("USD".into())
            }
        );
        assert_eq!(items[1].price.as_deref(), Some("25"));
    }

    #[test]
    fn statuses_say_delivered_read_or_failed_with_whatsapps_error() {
        let body = delivery(serde_json::json!({
            "metadata": {"phone_number_id": "PN"},
            "statuses": [
                {"id": "wamid.1", "status": "delivered", "timestamp": "10", "recipient_id": "W1"},
                {"id": "wamid.1", "status": "read", "timestamp": "11", "recipient_id": "W1"},
                {"id": "wamid.2", "status": "failed", "timestamp": "12", "recipient_id": "W1",
                 "errors": [{"code": 131026, "title": "Message Undeliverable", "message": "Message Undeliverable",
                             "error_data": {"details": "Message Undeliverable."}}]}]}));

        let events = parse(&body);

        let keys: Vec<&str> = events.iter().map(|e| e.dedup_key.as_str()).collect();
        assert_eq!(
            keys,
            ["s:wamid.1:delivered", "s:wamid.1:read", "s:wamid.2:failed"]
        );
        assert_eq!(events[1].kind, EventKind::Read { watermark: 11_000 });
        assert_eq!(
            events[2].kind,
            EventKind::SendFailed {
                mid: "wamid.2".into(),
                error: "WhatsApp error 131026: Message Undeliverable (Message Undeliverable.)".into()
            }
        );
    }

    #[test]
    fn a_change_without_a_number_or_a_message_without_a_sender_is_skipped() {
        let body = delivery(serde_json::json!({"messages": [{"from": "W1", "id": "x", "type": "text"}]}));
        assert!(parse(&body).is_empty());
        let body = delivery(serde_json::json!({"metadata": {"phone_number_id": "PN"},
            "messages": [{"id": "x", "type": "text"}]}));
        assert!(parse(&body).is_empty());
    }
}
