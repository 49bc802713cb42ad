//! The neutral replies rendered as WhatsApp Cloud API messages, each limit enforced where the message is
//! built (`fixtures/reference/whatsapp.md` §2): text of at most 4,096 characters (longer text goes in
//! several), reply buttons (at most 3, titles of 20 characters, unique, a body of 1,024), a list (one
//! button of 20 characters, at most 10 rows with titles of 24 and descriptions of 72), a call-to-action
//! URL button (its label 20 characters) for links and the payment page. WhatsApp has no carousel: with
//! the number's catalog linked, products are shown from it (one as a single-product message, several
//! as a multi-product message of at most 30 items in at most 10 sections), so the shopper can put them
//! in WhatsApp's own cart; without it each card is a message with its picture as the header. A receipt
//! goes as text. An update after the 24 hours goes as the approved utility template.

use serde_json::{Value, json};

use crate::channels::meta::render::cut;
use crate::engine::reply::{Action, Card, Choice, Reply, Utility};

/// The longest text message.
pub const MAX_TEXT: usize = 4096;
/// The longest body of a message with reply buttons.
pub const MAX_BUTTONS_BODY: usize = 1024;
/// The longest body of a list.
pub const MAX_LIST_BODY: usize = 4096;
/// The longest body of a call-to-action URL message, of a product message, and of an image's caption.
pub const MAX_CTA_BODY: usize = 1024;
/// Most reply buttons on one message.
pub const MAX_REPLY_BUTTONS: usize = 3;
/// The longest reply button title (and list button label, and call-to-action label).
pub const MAX_BUTTON_TITLE: usize = 20;
/// The longest reply button id.
pub const MAX_BUTTON_ID: usize = 256;
/// Most rows in one list.
pub const MAX_LIST_ROWS: usize = 10;
/// The longest row title.
pub const MAX_ROW_TITLE: usize = 24;
/// The longest row description.
pub const MAX_ROW_DESCRIPTION: usize = 72;
/// The longest row id.
pub const MAX_ROW_ID: usize = 200;
/// Most items in one multi-product message.
pub const MAX_PRODUCT_ITEMS: usize = 30;
/// Most sections in one multi-product message.
pub const MAX_PRODUCT_SECTIONS: usize = 10;
/// The longest section title (lists and multi-product messages).
pub const MAX_SECTION_TITLE: usize = 24;
/// The longest text header.
pub const MAX_HEADER: usize = 60;

/// Why a reply cannot be rendered for WhatsApp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// A payload longer than WhatsApp carries back.
    #[error("a payload of {len} characters is longer than WhatsApp's {max}")]
    PayloadTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Nothing to send.
    #[error("the reply is empty")]
    Empty,
}

/// One Cloud API message's type and content, before it is addressed (`to`).
#[derive(Debug, Clone, PartialEq)]
pub struct Message(Value);

impl Message {
    /// The message addressed to `to`: the whole `POST /{phone-number-id}/messages` body.
    pub fn to(&self, to: &str) -> Value {
        let mut body = json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": to});
        if let (Some(body), Some(content)) = (body.as_object_mut(), self.0.as_object()) {
            body.extend(content.clone());
        }
        body
    }

    /// The content (`type` and its object), as rendered.
    pub fn content(&self) -> &Value {
        &self.0
    }
}

/// `text`, cut into messages of at most [`MAX_TEXT`] characters.
fn texts(text: &str) -> Vec<Message> {
    let chars: Vec<char> = text.chars().collect();
    chars
        .chunks(MAX_TEXT)
        .map(|part| {
            let body: String = part.iter().collect();
            Message(json!({"type": "text", "text": {"preview_url": false, "body": body}}))
        })
        .collect()
}

fn checked_id(id: &str, max: usize) -> Result<String, RenderError> {
    let len = id.chars().count();
    if len > max {
        return Err(RenderError::PayloadTooLong { len, max });
    }
    Ok(id.to_owned())
}

/// Button titles cut to [`MAX_BUTTON_TITLE`], made unique (WhatsApp refuses two alike) by a number.
fn unique_titles(titles: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(titles.len());
    for title in titles {
        let mut candidate = cut(title, MAX_BUTTON_TITLE);
        let mut n = 2;
        while out.contains(&candidate) {
            let suffix = format!(" {n}");
            candidate = format!(
                "{}{suffix}",
                cut(title, MAX_BUTTON_TITLE - suffix.chars().count())
            );
            n += 1;
        }
        out.push(candidate);
    }
    out
}

/// Text above reply buttons (1 to 3): the text goes first on its own when it is longer than a body may
/// be.
fn reply_buttons(
    text: &str,
    header_image: Option<&str>,
    choices: &[(&str, &str)],
) -> Result<Vec<Message>, RenderError> {
    let mut messages = Vec::new();
    let body = if text.chars().count() > MAX_BUTTONS_BODY {
        messages.extend(texts(text));
        "Choose:".to_owned()
    } else {
        text.to_owned()
    };
    let titles = unique_titles(&choices.iter().map(|(t, _)| *t).collect::<Vec<_>>());
    let buttons = choices
        .iter()
        .zip(titles)
        .map(|((_, payload), title)| {
            Ok(json!({"type": "reply", "reply": {"id": checked_id(payload, MAX_BUTTON_ID)?, "title": title}}))
        })
        .collect::<Result<Vec<_>, RenderError>>()?;
    let mut interactive = json!({"type": "button", "body": {"text": body}, "action": {"buttons": buttons}});
    if let (Some(url), Some(i)) = (header_image, interactive.as_object_mut()) {
        i.insert("header".into(), json!({"type": "image", "image": {"link": url}}));
    }
    messages.push(Message(
        json!({"type": "interactive", "interactive": interactive}),
    ));
    Ok(messages)
}

/// Text with more choices than buttons hold: lists of at most [`MAX_LIST_ROWS`] rows (a second list
/// for the rest). A title longer than a row's goes whole in its description.
fn list(text: &str, choices: &[Choice]) -> Result<Vec<Message>, RenderError> {
    let mut messages = Vec::new();
    for (i, page) in choices.chunks(MAX_LIST_ROWS).enumerate() {
        let rows = page
            .iter()
            .map(|c| {
                let title = cut(&c.title, MAX_ROW_TITLE);
                let mut row = json!({"id": checked_id(&c.payload, MAX_ROW_ID)?, "title": title});
                if title != c.title
                    && let Some(r) = row.as_object_mut()
                {
                    r.insert("description".into(), cut(&c.title, MAX_ROW_DESCRIPTION).into());
                }
                Ok(row)
            })
            .collect::<Result<Vec<_>, RenderError>>()?;
        let body = if i == 0 {
            cut(text, MAX_LIST_BODY)
        } else {
            "More choices:".to_owned()
        };
        messages.push(Message(json!({"type": "interactive", "interactive": {
            "type": "list",
            "body": {"text": body},
            "action": {"button": "Choose", "sections": [{"title": "Choices", "rows": rows}]}
        }})));
    }
    Ok(messages)
}

/// A link or the payment page: a call-to-action URL button under `text`.
fn cta_url(text: &str, title: &str, url: &str) -> Message {
    Message(json!({"type": "interactive", "interactive": {
        "type": "cta_url",
        "body": {"text": cut(text, MAX_CTA_BODY)},
        "action": {"name": "cta_url", "parameters": {"display_text": cut(title, MAX_BUTTON_TITLE), "url": url}}
    }}))
}

/// Text above buttons: the postbacks as reply buttons, each link as its own call-to-action message.
fn text_and_actions(
    text: &str,
    header_image: Option<&str>,
    actions: &[Action],
) -> Result<Vec<Message>, RenderError> {
    let postbacks: Vec<(&str, &str)> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Postback { title, payload } => Some((title.as_str(), payload.as_str())),
            _ => None,
        })
        .take(MAX_REPLY_BUTTONS)
        .collect();
    let links: Vec<(&str, &str)> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Pay { title, url, .. } | Action::Link { title, url } => {
                Some((title.as_str(), url.as_str()))
            }
            Action::Postback { .. } => None,
        })
        .collect();
    let mut messages = Vec::new();
    if !postbacks.is_empty() {
        messages.extend(reply_buttons(text, header_image, &postbacks)?);
    }
    for (i, (title, url)) in links.iter().enumerate() {
        // The first link carries the text when no button did.
        let body = if postbacks.is_empty() && i == 0 {
            text
        } else {
            title
        };
        messages.push(cta_url(body, title, url));
    }
    if messages.is_empty() {
        messages.extend(match header_image {
            Some(url) => vec![Message(
                json!({"type": "image", "image": {"link": url, "caption": cut(text, MAX_CTA_BODY)}}),
            )],
            None => texts(text),
        });
    }
    Ok(messages)
}

/// A card: its picture as the header, its title and subtitle as the body, its buttons.
fn card(c: &Card) -> Result<Vec<Message>, RenderError> {
    let body = match &c.subtitle {
        Some(sub) if !sub.is_empty() => format!("*{}*\n{sub}", c.title),
        _ => format!("*{}*", c.title),
    };
    let mut actions = c.buttons.clone();
    if let Some(url) = &c.default_url
        && !actions
            .iter()
            .any(|a| matches!(a, Action::Link { .. } | Action::Pay { .. }))
    {
        actions.push(Action::Link {
            title: "View".into(),
            url: url.clone(),
        });
    }
    text_and_actions(&body, c.image_url.as_deref(), &actions)
}

/// Cards shown from the merchant's Meta catalog `catalog`: the cards naming a catalog item as one
/// single-product message (with the card's buttons after it) or multi-product messages; the others
/// (a "More" card) as cards.
fn catalog_cards(catalog: &str, cards: &[Card]) -> Result<Vec<Message>, RenderError> {
    let (items, others): (Vec<&Card>, Vec<&Card>) = cards.iter().partition(|c| c.catalog_item.is_some());
    let mut messages = Vec::new();
    match items.as_slice() {
        [] => {}
        [one] => {
            let item = one.catalog_item.as_deref().unwrap_or_default();
            messages.push(Message(json!({"type": "interactive", "interactive": {
                "type": "product",
                "body": {"text": cut(&one.title, MAX_CTA_BODY)},
                "action": {"catalog_id": catalog, "product_retailer_id": item}
            }})));
            let postbacks: Vec<Action> = one
                .buttons
                .iter()
                .filter(|a| matches!(a, Action::Postback { .. }))
                .cloned()
                .collect();
            if !postbacks.is_empty() {
                messages.extend(text_and_actions(&format!("*{}*", one.title), None, &postbacks)?);
            }
        }
        several => {
            for chunk in several.chunks(MAX_PRODUCT_ITEMS) {
                let product_items: Vec<Value> = chunk
                    .iter()
                    .filter_map(|c| c.catalog_item.as_deref())
                    .map(|id| json!({"product_retailer_id": id}))
                    .collect();
                // One section holds a message's (at most 30) items: within the 10 sections allowed.
                let sections =
                    [json!({"title": cut("Products", MAX_SECTION_TITLE), "product_items": product_items})];
                debug_assert!(sections.len() <= MAX_PRODUCT_SECTIONS);
                messages.push(Message(json!({"type": "interactive", "interactive": {
                    "type": "product_list",
                    "header": {"type": "text", "text": cut("Our products", MAX_HEADER)},
                    "body": {"text": "Tap a product to see it and add it to your cart."},
                    "action": {"catalog_id": catalog, "sections": sections}
                }})));
            }
        }
    }
    for other in others {
        messages.extend(card(other)?);
    }
    Ok(messages)
}

/// An approved utility template (whatsapp.md §2.7): its name, language and the body's positional
/// parameters in order. Each parameter is one line: runs of blanks (new lines, tabs) become one space,
/// as WhatsApp wants parameter text on one line.
fn template(u: &Utility) -> Message {
    let parameters: Vec<Value> = u
        .parameters
        .iter()
        .map(|p| json!({"type": "text", "text": p.split_whitespace().collect::<Vec<_>>().join(" ")}))
        .collect();
    let mut template = json!({"name": u.template, "language": {"code": u.language}});
    if !parameters.is_empty() {
        template["components"] = json!([{"type": "body", "parameters": parameters}]);
    }
    Message(json!({"type": "template", "template": template}))
}

/// The Cloud API messages of one reply, in order; `catalog` is the number's linked Meta catalog.
pub fn render(reply: &Reply, catalog: Option<&str>) -> Result<Vec<Message>, RenderError> {
    let messages = match reply {
        Reply::Text { text, quick_replies } if quick_replies.is_empty() => texts(text),
        Reply::Text { text, quick_replies } if quick_replies.len() <= MAX_REPLY_BUTTONS => {
            let choices: Vec<(&str, &str)> = quick_replies
                .iter()
                .map(|c| (c.title.as_str(), c.payload.as_str()))
                .collect();
            reply_buttons(text, None, &choices)?
        }
        Reply::Text { text, quick_replies } => list(text, quick_replies)?,
        Reply::Cards(cards) => match catalog {
            Some(catalog) if cards.iter().any(|c| c.catalog_item.is_some()) => catalog_cards(catalog, cards)?,
            _ => cards
                .iter()
                .map(card)
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .flatten()
                .collect(),
        },
        Reply::Buttons { text, buttons } => text_and_actions(text, None, buttons)?,
        Reply::Receipt(receipt) => texts(&receipt.to_plain_text()),
        Reply::Utility(u) => vec![template(u)],
    };
    if messages.is_empty() {
        return Err(RenderError::Empty);
    }
    Ok(messages)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn choice(title: &str, payload: &str) -> Choice {
        Choice {
            title: title.into(),
            payload: payload.into(),
        }
    }

    fn interactive(m: &Message) -> &Value {
        &m.content()["interactive"]
    }

    #[test]
    fn an_update_after_the_window_is_the_approved_template_with_its_parameters_in_order() {
        let utility = Reply::Utility(Box::new(Utility {
            template: "threadcart_order_paid_en".into(),
            language: "en".into(),
            parameters: vec!["Sheena".into(), "CS-1042".into(), "Sea\nview\t room".into()],
            text: "Hi Sheena, your order CS-1042 of 49.90 EUR is paid.".into(),
        }));
        let out = render(&utility, None).unwrap();
        assert_eq!(
            out[0].to("16505551234"),
            json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": "16505551234",
                   "type": "template", "template": {"name": "threadcart_order_paid_en",
                   "language": {"code": "en"}, "components": [{"type": "body", "parameters": [
                       {"type": "text", "text": "Sheena"}, {"type": "text", "text": "CS-1042"},
                       {"type": "text", "text": "Sea view room"}]}]}})
        );
        let bare = Reply::Utility(Box::new(Utility {
            template: "threadcart_booking_reminder_fr".into(),
            language: "fr".into(),
            parameters: Vec::new(),
            text: "À demain !".into(),
        }));
        let out = render(&bare, None).unwrap();
        assert!(out[0].content()["template"].get("components").is_none());
    }

    #[test]
    fn a_long_text_goes_in_messages_of_4096_characters() {
        let text = "é".repeat(MAX_TEXT + 10);
        let out = render(&Reply::text(&text)[0], None).unwrap();
        let lengths: Vec<usize> = out
            .iter()
            .map(|m| m.content()["text"]["body"].as_str().unwrap().chars().count())
            .collect();
        assert_eq!(lengths, [MAX_TEXT, 10]);
    }

    #[test]
    fn three_choices_are_reply_buttons_with_unique_titles_of_20_characters() {
        let reply = Reply::Text {
            text: "Which size?".into(),
            quick_replies: vec![
                choice("Extra large size for winter", "A"),
                choice("Extra large size for summer", "B"),
                choice("42", "C"),
            ],
        };
        let out = render(&reply, None).unwrap();
        assert_eq!(out.len(), 1);
        let i = interactive(&out[0]);
        assert_eq!(i["type"], "button");
        let titles: Vec<&str> = i["action"]["buttons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["reply"]["title"].as_str().unwrap())
            .collect();
        assert!(
            titles.iter().all(|t| t.chars().count() <= MAX_BUTTON_TITLE),
            "{titles:?}"
        );
        assert_eq!(titles.len(), 3);
        assert_ne!(titles[0], titles[1], "titles are unique");
        assert_eq!(i["action"]["buttons"][2]["reply"]["id"], "C");
    }

    #[test]
    fn more_choices_than_buttons_are_lists_of_ten_rows_with_long_titles_in_the_description() {
        let choices: Vec<Choice> = (0..13)
            .map(|n| {
                choice(
                    &format!("Size {n} with a very long name indeed"),
                    &format!("P{n}"),
                )
            })
            .collect();
        let reply = Reply::Text {
            text: "Pick one".into(),
            quick_replies: choices,
        };
        let out = render(&reply, None).unwrap();
        let rows: Vec<usize> = out
            .iter()
            .map(|m| {
                interactive(m)["action"]["sections"][0]["rows"]
                    .as_array()
                    .unwrap()
                    .len()
            })
            .collect();
        assert_eq!(rows, [10, 3]);
        let row = &interactive(&out[0])["action"]["sections"][0]["rows"][0];
        assert!(row["title"].as_str().unwrap().chars().count() <= MAX_ROW_TITLE);
        assert!(row["description"].as_str().unwrap().chars().count() <= MAX_ROW_DESCRIPTION);
        assert_eq!(interactive(&out[0])["action"]["button"], "Choose");
    }

    #[test]
    fn a_payload_longer_than_whatsapp_carries_is_refused_not_cut() {
        let long = "x".repeat(MAX_BUTTON_ID + 1);
        let reply = Reply::Text {
            text: "?".into(),
            quick_replies: vec![choice("Yes", &long)],
        };
        assert_eq!(
            render(&reply, None),
            Err(RenderError::PayloadTooLong {
                len: MAX_BUTTON_ID + 1,
                max: MAX_BUTTON_ID
            })
        );
    }

    #[test]
    fn the_pay_button_is_a_call_to_action_url() {
        let reply = Reply::Buttons {
            text: "Order C-1: 49.90 EUR".into(),
            buttons: vec![Action::Pay {
                title: "Pay 49.90 EUR".into(),
                url: "https://checkout.stripe.com/c/pay/cs_test_1".into(),
                pay: true,
            }],
        };
        let out = render(&reply, None).unwrap();
        assert_eq!(out.len(), 1);
        let i = interactive(&out[0]);
        assert_eq!(i["type"], "cta_url");
        assert_eq!(i["body"]["text"], "Order C-1: 49.90 EUR");
        assert_eq!(i["action"]["parameters"]["display_text"], "Pay 49.90 EUR");
        assert_eq!(
            i["action"]["parameters"]["url"],
            "https://checkout.stripe.com/c/pay/cs_test_1"
        );
    }

    #[test]
    fn a_card_is_a_message_with_its_picture_as_header_and_its_buttons() {
        let reply = Reply::Cards(vec![Card {
            title: "Comfy slippers".into(),
            subtitle: Some("49.90 EUR".into()),
            image_url: Some("https://example.com/slip.jpg".into()),
            default_url: None,
            buttons: vec![Action::Postback {
                title: "Choose size".into(),
                payload: "SIZE".into(),
            }],
            catalog_item: None,
        }]);
        let out = render(&reply, None).unwrap();
        assert_eq!(out.len(), 1);
        let i = interactive(&out[0]);
        assert_eq!(i["header"]["image"]["link"], "https://example.com/slip.jpg");
        assert_eq!(i["body"]["text"], "*Comfy slippers*\n49.90 EUR");
        assert_eq!(i["action"]["buttons"][0]["reply"]["id"], "SIZE");
        let body = out[0].to("16505551234");
        assert_eq!(body["messaging_product"], "whatsapp");
        assert_eq!(body["to"], "16505551234");
        assert_eq!(body["type"], "interactive");
    }

    fn product(n: usize) -> Card {
        Card::new(&format!("Slippers {n}"))
            .subtitle("49.90 EUR")
            .catalog_item(&format!("SLIP-{n}-42"))
            .button(Action::Postback {
                title: "Choose size".into(),
                payload: format!("SIZE-{n}"),
            })
    }

    #[test]
    fn with_a_catalog_one_product_is_a_single_product_message_then_its_buttons() {
        let out = render(&Reply::Cards(vec![product(1)]), Some("194836987003835")).unwrap();
        let i = interactive(&out[0]);
        assert_eq!(i["type"], "product");
        assert_eq!(i["action"]["catalog_id"], "194836987003835");
        assert_eq!(i["action"]["product_retailer_id"], "SLIP-1-42");
        assert_eq!(
            interactive(&out[1])["action"]["buttons"][0]["reply"]["id"],
            "SIZE-1"
        );
    }

    #[test]
    fn with_a_catalog_several_products_are_multi_product_messages_of_at_most_30_items() {
        let mut cards: Vec<Card> = (0..35).map(product).collect();
        cards.push(Card::new("More products").button(Action::Postback {
            title: "More".into(),
            payload: "MORE".into(),
        }));
        let out = render(&Reply::Cards(cards), Some("1")).unwrap();
        let counts: Vec<usize> = out
            .iter()
            .filter(|m| interactive(m)["type"] == "product_list")
            .map(|m| {
                let sections = interactive(m)["action"]["sections"].as_array().unwrap();
                assert!(sections.len() <= MAX_PRODUCT_SECTIONS);
                assert!(sections[0]["title"].as_str().unwrap().chars().count() <= MAX_SECTION_TITLE);
                sections
                    .iter()
                    .map(|s| s["product_items"].as_array().unwrap().len())
                    .sum()
            })
            .collect();
        assert_eq!(counts, [30, 5]);
        let more = out.last().unwrap();
        assert_eq!(interactive(more)["action"]["buttons"][0]["reply"]["id"], "MORE");
        let without = render(&Reply::Cards(vec![product(1)]), None).unwrap();
        assert_eq!(
            interactive(&without[0])["type"],
            "button",
            "no catalog: a card message"
        );
    }

    #[test]
    fn a_body_too_long_for_buttons_goes_first_as_text() {
        let text = "a".repeat(MAX_BUTTONS_BODY + 1);
        let reply = Reply::Text {
            text: text.clone(),
            quick_replies: vec![choice("OK", "OK")],
        };
        let out = render(&reply, None).unwrap();
        assert_eq!(out[0].content()["text"]["body"], text.as_str());
        assert!(
            interactive(&out[1])["body"]["text"]
                .as_str()
                .unwrap()
                .chars()
                .count()
                <= MAX_BUTTONS_BODY
        );
    }
}
