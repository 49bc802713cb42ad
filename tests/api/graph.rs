//! A local HTTP server that answers as Meta's Graph API does (messenger.md §4-§6): the Send API and the
//! User Profile API, the Conversions API's `/{dataset_id}/events`, and `GET /me` (a Page access token it
//! was told about answers its Page; any other token gets Meta's OAuthException, code 190), and
//! WhatsApp's Cloud API (`POST /{phone-number-id}/messages` answering `wamid.` ids, `GET
//! /{waba-id}/phone_numbers`, whatsapp.md §2 and §5), with scripted errors, recording every request it
//! gets.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

/// The most numbers one page of `GET /{waba-id}/phone_numbers` holds here.
const NUMBERS_PER_PAGE: usize = 2;

/// One request the fake Graph API received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: Value,
    /// The body as sent.
    pub raw: String,
}

impl Received {
    /// A query parameter.
    pub fn param(&self, name: &str) -> Option<String> {
        self.query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k == name).then(|| v.to_owned())
        })
    }
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    send_replies: VecDeque<(u16, Value)>,
    events_replies: VecDeque<(u16, Value)>,
    /// The next template submissions answer these (status, body), in order; then `APPROVED`.
    template_replies: VecDeque<(u16, Value)>,
    profile_fails: bool,
    sent: u64,
    /// Page access tokens and the Page each is for.
    page_tokens: HashMap<String, String>,
    /// The Instagram account Meta links to a Page.
    instagram_of: HashMap<String, String>,
    /// Shoppers' profile locales other than `fr_FR`.
    locale_of: HashMap<String, String>,
    /// The next `GET /me` answers this status with Meta's error body.
    me_fails: Option<u16>,
    /// WhatsApp numbers by (WABA id, token): their ids and display numbers.
    waba_numbers: HashMap<(String, String), Vec<(String, String)>>,
}

/// The fake Graph API.
#[derive(Clone)]
pub struct FakeGraph {
    pub base: String,
    state: Arc<Mutex<State>>,
}

/// Meta's error envelope.
pub fn graph_error(code: i64, subcode: i64, message: &str) -> Value {
    json!({"error": {"message": message, "type": "OAuthException", "code": code,
                     "error_subcode": subcode, "fbtrace_id": "AxIIVeNpuf3y2jeXdufRcEX"}})
}

impl FakeGraph {
    /// Starts the server on a random port.
    pub async fn start() -> FakeGraph {
        let state = Arc::new(Mutex::new(State::default()));
        let data = web::Data::new(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(4 * 1024 * 1024))
                .default_service(web::to(answer))
        })
        .workers(1)
        .bind("127.0.0.1:0")
        .unwrap();
        let port = server.addrs()[0].port();
        tokio::spawn(server.run());
        FakeGraph {
            base: format!("http://127.0.0.1:{port}"),
            state,
        }
    }

    /// The next Send API calls answer these, in order, before answering success again.
    pub fn fail_next_sends(&self, replies: Vec<(u16, Value)>) {
        self.state.lock().unwrap().send_replies.extend(replies);
    }

    /// The next template submissions answer these, in order, before approving again.
    pub fn answer_next_templates(&self, replies: Vec<(u16, Value)>) {
        self.state.lock().unwrap().template_replies.extend(replies);
    }

    /// The template submissions received (`POST /{version}/{page_id}/message_templates`), in order.
    pub fn templates(&self) -> Vec<Received> {
        self.state
            .lock()
            .unwrap()
            .received
            .iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/message_templates"))
            .cloned()
            .collect()
    }

    /// The next Conversions API posts answer these, in order, before answering success again.
    pub fn fail_next_events(&self, replies: Vec<(u16, Value)>) {
        self.state.lock().unwrap().events_replies.extend(replies);
    }

    /// The Conversions API requests received (`POST /{version}/{dataset_id}/events`), in order.
    pub fn events(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/events"))
            .collect()
    }

    /// `token` is Page `page_id`'s access token: `GET /me` with it answers that Page.
    pub fn knows_page(&self, page_id: &str, token: &str) {
        self.state
            .lock()
            .unwrap()
            .page_tokens
            .insert(token.to_owned(), page_id.to_owned());
    }

    /// `token` sees WhatsApp number `phone_number_id` (shown as `display`) on WhatsApp Business Account
    /// `waba_id`: `GET /{waba_id}/phone_numbers` with it lists the number.
    pub fn knows_whatsapp_number(&self, waba_id: &str, phone_number_id: &str, display: &str, token: &str) {
        self.state
            .lock()
            .unwrap()
            .waba_numbers
            .entry((waba_id.to_owned(), token.to_owned()))
            .or_default()
            .push((phone_number_id.to_owned(), display.to_owned()));
    }

    /// The Cloud API message bodies received (`messaging_product: whatsapp`), in order.
    pub fn whatsapp_messages(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.path.ends_with("/messages") && r.body["messaging_product"] == "whatsapp")
            .collect()
    }

    /// The Cloud API message bodies received for the WhatsApp user `wa_id`, in order.
    pub fn whatsapp_to(&self, wa_id: &str) -> Vec<Value> {
        self.whatsapp_messages()
            .into_iter()
            .map(|r| r.body)
            .filter(|b| b["to"] == wa_id)
            .collect()
    }

    /// The profile of `psid` says `locale` (`en_GB`) rather than `fr_FR`.
    pub fn speaks(&self, psid: &str, locale: &str) {
        self.state
            .lock()
            .unwrap()
            .locale_of
            .insert(psid.to_owned(), locale.to_owned());
    }

    /// Meta links Instagram account `instagram_account_id` to Page `page_id`
    /// (`GET /{page_id}?fields=instagram_business_account` answers it).
    pub fn links_instagram(&self, page_id: &str, instagram_account_id: &str) {
        self.state
            .lock()
            .unwrap()
            .instagram_of
            .insert(page_id.to_owned(), instagram_account_id.to_owned());
    }

    /// The next `GET /me` fails with `status` (a 5xx: Meta's own trouble).
    pub fn fail_next_token_check(&self, status: u16) {
        self.state.lock().unwrap().me_fails = Some(status);
    }

    /// The `GET /me` requests received, in order.
    pub fn token_checks(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.method == "GET" && r.path.ends_with("/me"))
            .collect()
    }

    /// The User Profile API refuses (as for a phone-number account).
    pub fn refuse_profiles(&self) {
        self.state.lock().unwrap().profile_fails = true;
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// The Send API message bodies received (not sender actions), in order.
    pub fn messages(&self) -> Vec<Value> {
        self.received()
            .into_iter()
            .filter(|r| r.path.ends_with("/messages") && r.body.get("message").is_some())
            .map(|r| r.body)
            .collect()
    }

    /// The texts of the messages received for `psid`.
    pub fn texts_to(&self, psid: &str) -> Vec<String> {
        self.messages()
            .into_iter()
            .filter(|b| b["recipient"]["id"] == psid)
            .filter_map(|b| b["message"]["text"].as_str().map(str::to_owned))
            .collect()
    }

    /// The texts sent to `psid` other than the assistant's saying that it is automated (the first
    /// automated message of a thread does: `conversations/disclosure.rs`); the tests of that sentence
    /// read [`FakeGraph::texts_to`].
    pub fn answers_to(&self, psid: &str) -> Vec<String> {
        self.texts_to(psid)
            .into_iter()
            .filter(|t| !is_disclosure(t))
            .collect()
    }
}

/// The message tags Meta retired on 2026-04-27: requests carrying one fail with error 100.
pub const RETIRED_TAGS: [&str; 3] = ["ACCOUNT_UPDATE", "POST_PURCHASE_UPDATE", "CONFIRMED_EVENT_UPDATE"];

/// Whether `text` is the built-in disclosure, in English or in French.
pub fn is_disclosure(text: &str) -> bool {
    (text.starts_with("You're chatting with ") && text.contains("automated assistant"))
        || text.starts_with("Vous échangez avec l'assistant automatique de ")
}

async fn answer(req: HttpRequest, body: web::Bytes, state: web::Data<Arc<Mutex<State>>>) -> HttpResponse {
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut s = state.lock().unwrap();
    s.received.push(Received {
        method: req.method().to_string(),
        path: req.path().to_owned(),
        query: req.query_string().to_owned(),
        body: parsed.clone(),
        raw: String::from_utf8_lossy(&body).into_owned(),
    });
    if req.path().ends_with("/messages") {
        // Meta refuses the retired tags with error 100 since 2026-04-27 (fixtures/reference/templates.md).
        if let Some(tag) = parsed["tag"].as_str()
            && RETIRED_TAGS.contains(&tag)
        {
            return HttpResponse::BadRequest().json(graph_error(
                100,
                0,
                "(#100) Param tag is not a valid message tag",
            ));
        }
        let whatsapp = parsed["messaging_product"] == "whatsapp";
        // Scripted failures answer messages; sender actions (typing, seen) always succeed.
        if (parsed.get("message").is_some() || whatsapp)
            && let Some((status, body)) = s.send_replies.pop_front()
        {
            return HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).json(body);
        }
        if whatsapp {
            // The Cloud API's answer (whatsapp.md §2.1): the recipient and our message's `wamid.`.
            s.sent += 1;
            return HttpResponse::Ok().json(json!({
                "messaging_product": "whatsapp",
                "contacts": [{"input": parsed["to"], "wa_id": parsed["to"]}],
                "messages": [{"id": format!("wamid.HBgL{:06}", s.sent)}],
            }));
        }
        if parsed.get("sender_action").is_some() {
            return HttpResponse::Ok().json(json!({"recipient_id": parsed["recipient"]["id"]}));
        }
        s.sent += 1;
        return HttpResponse::Ok().json(json!({
            "recipient_id": parsed["recipient"]["id"],
            "message_id": format!("m_{}", s.sent),
        }));
    }
    if req.method() == "POST" && req.path().ends_with("/message_templates") {
        // Meta answers a Page-owned utility template within seconds: approved, as its examples show.
        if let Some((status, body)) = s.template_replies.pop_front() {
            return HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).json(body);
        }
        s.sent += 1;
        // A WhatsApp Business Account's template waits for review (its approval comes on the
        // webhook, `message_template_status_update`).
        let node = req.path().rsplit('/').nth(1).unwrap_or_default();
        let status = if s.waba_numbers.keys().any(|(waba, _)| waba == node) {
            "PENDING"
        } else {
            "APPROVED"
        };
        return HttpResponse::Ok().json(json!({
            "id": format!("10459512934{:04}", s.sent), "status": status, "category": "UTILITY"
        }));
    }
    if req.method() == "POST" && req.path().ends_with("/events") {
        if let Some((status, body)) = s.events_replies.pop_front() {
            return HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).json(body);
        }
        let n = parsed["data"].as_array().map_or(0, Vec::len);
        return HttpResponse::Ok().json(json!({"events_received": n, "fbtrace_id": "AbCdEf"}));
    }
    if req.method() == "GET" && req.path().ends_with("/me") {
        if let Some(status) = s.me_fails.take() {
            return HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).json(
                graph_error(
                    2,
                    0,
                    "An unexpected error has occurred. Please retry your request later.",
                ),
            );
        }
        let token = web::Query::<HashMap<String, String>>::from_query(req.query_string())
            .ok()
            .and_then(|q| q.get("access_token").cloned())
            .unwrap_or_default();
        return match s.page_tokens.get(&token) {
            Some(page_id) => {
                HttpResponse::Ok().json(json!({"id": page_id, "name": format!("Page {page_id}")}))
            }
            None => HttpResponse::BadRequest().json(json!({"error": {
                "message": "Invalid OAuth access token - Cannot parse access token",
                "type": "OAuthException", "code": 190, "fbtrace_id": "AxIIVeNpuf3y2jeXdufRcEX"}})),
        };
    }
    if req.method() == "GET" && req.path().ends_with("/phone_numbers") {
        // A WhatsApp Business Account's numbers, as the token sees them (whatsapp.md §5).
        let waba = req.path().rsplit('/').nth(1).unwrap_or_default().to_owned();
        let query = web::Query::<HashMap<String, String>>::from_query(req.query_string())
            .map(|q| q.into_inner())
            .unwrap_or_default();
        let token = query.get("access_token").cloned().unwrap_or_default();
        // Cursor paging as the Graph API pages: at most `limit` (and never more than
        // NUMBERS_PER_PAGE here, as Meta may answer fewer than asked), `paging.cursors.after` and
        // `paging.next` while more remain.
        let limit = query
            .get("limit")
            .and_then(|l| l.parse::<usize>().ok())
            .unwrap_or(25)
            .min(NUMBERS_PER_PAGE);
        let from = query
            .get("after")
            .and_then(|c| c.strip_prefix("QVFIU")?.parse::<usize>().ok())
            .unwrap_or(0);
        return match s.waba_numbers.get(&(waba, token.clone())) {
            Some(numbers) => {
                let page: Vec<Value> = numbers.iter().skip(from).take(limit).map(|(id, shown)| json!({
                    "id": id, "display_phone_number": shown, "verified_name": "Comfy Shoes", "quality_rating": "GREEN"
                })).collect();
                let mut body = json!({"data": page, "paging": {"cursors": {
                    "before": format!("QVFIU{from}"), "after": format!("QVFIU{}", from + limit)}}});
                if from + limit < numbers.len() {
                    body["paging"]["next"] = json!(format!(
                        "https://graph.facebook.com/v23.0{}?limit={limit}&after=QVFIU{}",
                        req.path(),
                        from + limit
                    ));
                }
                HttpResponse::Ok().json(body)
            }
            None if s.waba_numbers.keys().any(|(_, t)| *t == token) => HttpResponse::BadRequest().json(
                graph_error(100, 33, "Unsupported get request. Object with ID does not exist"),
            ),
            None => HttpResponse::BadRequest().json(json!({"error": {
                "message": "Invalid OAuth access token - Cannot parse access token",
                "type": "OAuthException", "code": 190, "fbtrace_id": "AxIIVeNpuf3y2jeXdufRcEX"}})),
        };
    }
    if req.path().ends_with("/me/messenger_profile") {
        return HttpResponse::Ok().json(json!({"result": "success"}));
    }
    let fields = web::Query::<HashMap<String, String>>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.get("fields").cloned())
        .unwrap_or_default();
    if req.method() == "GET" && fields == "instagram_business_account" {
        // A Page node: the Instagram account linked to it, if any (Meta leaves the field out when none).
        let page_id = req.path().rsplit('/').next().unwrap_or_default().to_owned();
        return HttpResponse::Ok().json(match s.instagram_of.get(&page_id) {
            Some(ig) => json!({"instagram_business_account": {"id": ig}, "id": page_id}),
            None => json!({"id": page_id}),
        });
    }
    if req.method() == "GET" && fields == "name,username" {
        // Instagram's User Profile API.
        return HttpResponse::Ok().json(json!({"name": "Inès Martin", "username": "ines.m",
                                              "id": req.path().rsplit('/').next()}));
    }
    if req.method() == "GET" {
        if s.profile_fails {
            return HttpResponse::BadRequest().json(graph_error(
                100,
                2018218,
                "No profile available for this user",
            ));
        }
        let psid = req.path().rsplit('/').next().unwrap_or_default();
        let locale = s.locale_of.get(psid).map_or("fr_FR", String::as_str);
        return HttpResponse::Ok().json(json!({"first_name": "Anna", "locale": locale, "timezone": 1}));
    }
    HttpResponse::NotFound().json(graph_error(100, 0, "Unknown path components"))
}
