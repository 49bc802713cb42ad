//! A ledger that answers as Stripe's API does for the calls threadcart makes: Checkout Sessions (create,
//! retrieve, expire) and refunds (create, list), form-encoded in, JSON out, objects shaped like Stripe's
//! published fixtures (`fixtures/stripe/`), with Stripe's idempotency (a repeated `Idempotency-Key`
//! replays the first answer; the same key with other parameters is an `idempotency_error`).
//!
//! Pure and in memory: dev mode serves it under `/dev/stripe`, and the test suite's local Stripe wraps
//! it with what only tests need (recorded requests, scripted failures, late answers).

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

const SESSION: &str = include_str!("../../fixtures/stripe/checkout_session.json");
const REFUND: &str = include_str!("../../fixtures/stripe/refund.json");

/// Stripe's answer to one call.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: Value,
    /// True when an earlier answer was replayed for the same `Idempotency-Key`.
    pub replayed: bool,
}

/// The first answer to an idempotent request, and what it was an answer to.
struct Replay {
    request: (String, String, Vec<(String, String)>),
    status: u16,
    body: Value,
}

/// Stripe's sessions and refunds, in memory.
pub struct StripeBook {
    /// The `{tag}` of ids such as `cs_test_{tag}000001`.
    tag: String,
    /// Where a session's `url` points: `{pay_base}/{session id}`.
    pay_base: String,
    objects: u64,
    sessions: HashMap<String, Value>,
    refunds: Vec<Value>,
    replays: HashMap<String, Replay>,
}

/// Stripe's error body.
pub fn stripe_error(kind: &str, code: Option<&str>, message: &str, param: Option<&str>) -> Value {
    json!({"error": {"type": kind, "code": code, "message": message, "param": param}})
}

/// The parameters of a Stripe call, decoded: from the query of a GET, from the form body otherwise (in
/// order, brackets kept: `line_items[0][quantity]`).
pub fn request_form(method: &str, query: &str, body: &[u8]) -> Vec<(String, String)> {
    let encoded = if method == "GET" { query.as_bytes() } else { body };
    std::str::from_utf8(encoded)
        .ok()
        .and_then(|b| actix_web::web::Query::<Vec<(String, String)>>::from_query(b).ok())
        .map(actix_web::web::Query::into_inner)
        .unwrap_or_default()
}

fn fixture(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| json!({}))
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn invalid(message: &str, param: &str) -> (u16, Value) {
    (
        400,
        stripe_error(
            "invalid_request_error",
            Some("parameter_invalid"),
            message,
            Some(param),
        ),
    )
}

fn missing(object: &str, id: &str) -> (u16, Value) {
    let message = format!("No such {object}: '{id}'");
    (
        404,
        stripe_error(
            "invalid_request_error",
            Some("resource_missing"),
            &message,
            Some("id"),
        ),
    )
}

impl StripeBook {
    /// An empty ledger whose ids carry `tag` and whose sessions are paid at `{pay_base}/{id}`.
    pub fn new(tag: &str, pay_base: &str) -> StripeBook {
        StripeBook {
            tag: tag.to_owned(),
            pay_base: pay_base.trim_end_matches('/').to_owned(),
            objects: 0,
            sessions: HashMap::new(),
            refunds: Vec::new(),
            replays: HashMap::new(),
        }
    }

    fn next_id(&mut self, prefix: &str) -> String {
        self.objects += 1;
        format!("{prefix}_test_{}{:06}", self.tag, self.objects)
    }

    /// Answers one API call (`path` such as `/v1/checkout/sessions`, `form` decoded from the body or,
    /// for a GET, the query), applying Stripe's idempotency to POSTs with a key.
    pub fn call(
        &mut self,
        method: &str,
        path: &str,
        form: &[(String, String)],
        idempotency_key: Option<&str>,
    ) -> Answer {
        let key = idempotency_key.filter(|_| method == "POST").map(str::to_owned);
        let mut sorted = form.to_vec();
        sorted.sort();
        let request = (method.to_owned(), path.to_owned(), sorted);
        if let Some(key) = &key
            && let Some(replay) = self.replays.get(key)
        {
            if replay.request == request {
                return Answer {
                    status: replay.status,
                    body: replay.body.clone(),
                    replayed: true,
                };
            }
            let message = format!(
                "Keys for idempotent requests can only be used with the same parameters they were first used \
                 with. Try using a key other than '{key}' if you meant to execute a different request."
            );
            return Answer {
                status: 400,
                body: stripe_error("idempotency_error", None, &message, None),
                replayed: false,
            };
        }
        let (status, body) = self.route(method, path, form);
        // Stripe keeps the answer once the endpoint ran (success or 5xx), not a refused request.
        if let Some(key) = key
            && !(400..500).contains(&status)
        {
            self.replays.insert(
                key,
                Replay {
                    request,
                    status,
                    body: body.clone(),
                },
            );
        }
        Answer {
            status,
            body,
            replayed: false,
        }
    }

    fn route(&mut self, method: &str, path: &str, form: &[(String, String)]) -> (u16, Value) {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (method, parts.as_slice()) {
            ("POST", ["v1", "checkout", "sessions"]) => self.create_session(form),
            ("GET", ["v1", "checkout", "sessions", id]) => match self.sessions.get(*id) {
                Some(session) => (200, session.clone()),
                None => missing("checkout.session", id),
            },
            ("POST", ["v1", "checkout", "sessions", id, "expire"]) => match self.sessions.get_mut(*id) {
                Some(session) if session["status"] == "open" => {
                    session["status"] = json!("expired");
                    session["url"] = Value::Null;
                    (200, session.clone())
                }
                Some(_) => invalid(
                    "Only Checkout Sessions with a status of `open` can be expired.",
                    "session",
                ),
                None => missing("checkout.session", id),
            },
            ("POST", ["v1", "refunds"]) => self.create_refund(form),
            ("GET", ["v1", "refunds"]) => {
                let data: Vec<Value> = self
                    .refunds
                    .iter()
                    .filter(|r| field(form, "payment_intent").is_none_or(|pi| r["payment_intent"] == pi))
                    .rev()
                    .cloned()
                    .collect();
                (
                    200,
                    json!({"object": "list", "data": data, "has_more": false, "url": "/v1/refunds"}),
                )
            }
            _ => (
                404,
                stripe_error(
                    "invalid_request_error",
                    None,
                    &format!("Unrecognized request URL ({method}: {path})."),
                    None,
                ),
            ),
        }
    }

    fn create_session(&mut self, form: &[(String, String)]) -> (u16, Value) {
        if field(form, "mode") != Some("payment") {
            return invalid("Only `mode=payment` is answered here.", "mode");
        }
        let (mut total, mut currency) = (0_i64, None::<String>);
        let mut i = 0;
        while let Some(quantity) = field(form, &format!("line_items[{i}][quantity]")) {
            let price = |name: &str| field(form, &format!("line_items[{i}][price_data][{name}]"));
            let param = format!("line_items[{i}][price_data][unit_amount]");
            let Some(unit) = price("unit_amount")
                .and_then(|a| a.parse::<i64>().ok())
                .filter(|a| *a >= 0)
            else {
                return invalid("Invalid non-negative integer", &param);
            };
            let Some(quantity) = quantity.parse::<i64>().ok().filter(|q| *q >= 1) else {
                return invalid("Invalid positive integer", &format!("line_items[{i}][quantity]"));
            };
            let name = format!("line_items[{i}][price_data][product_data][name]");
            if field(form, &name).is_none_or(str::is_empty) {
                return invalid("Missing required param", &name);
            }
            match (&currency, price("currency")) {
                (_, None) => {
                    return invalid(
                        "Missing required param",
                        &format!("line_items[{i}][price_data][currency]"),
                    );
                }
                (Some(c), Some(given)) if c != given => {
                    return invalid("All line items must share one currency.", "line_items");
                }
                (_, Some(given)) => currency = Some(given.to_owned()),
            }
            total += unit * quantity;
            i += 1;
        }
        if i == 0 || i > 100 {
            return invalid("A payment-mode session takes 1 to 100 line items.", "line_items");
        }
        let created = now();
        let expires_at = match field(form, "expires_at").map(str::parse::<i64>) {
            None => created + 86_400,
            Some(Ok(t)) if (created + 1_800..=created + 86_400).contains(&t) => t,
            Some(_) => {
                return invalid(
                    "The `expires_at` timestamp must be between 30 minutes and 24 hours from Checkout Session creation.",
                    "expires_at",
                );
            }
        };
        let Some(success_url) = field(form, "success_url") else {
            return invalid("Missing required param", "success_url");
        };
        let metadata: serde_json::Map<String, Value> = form
            .iter()
            .filter_map(|(k, v)| {
                let key = k.strip_prefix("metadata[")?.strip_suffix(']')?;
                Some((key.to_owned(), json!(v)))
            })
            .collect();
        let id = self.next_id("cs");
        let mut session = fixture(SESSION);
        let fields = json!({
            "id": id,
            "url": format!("{}/{id}", self.pay_base),
            "status": "open",
            "payment_status": "unpaid",
            "payment_intent": null,
            "amount_subtotal": total,
            "amount_total": total,
            "currency": currency,
            "client_reference_id": field(form, "client_reference_id"),
            "metadata": metadata,
            "expires_at": expires_at,
            "created": created,
            "success_url": success_url,
            "cancel_url": field(form, "cancel_url"),
            "locale": field(form, "locale"),
            "customer_details": null,
            "customer_email": null,
            "currency_conversion": null,
            "shipping_cost": null,
            "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        });
        if let Some(fields) = fields.as_object() {
            for (k, v) in fields {
                session[k] = v.clone();
            }
        }
        self.sessions.insert(id, session.clone());
        (200, session)
    }

    /// A refund of `payment_intent` (`amount`, or what is left), as `POST /v1/refunds` makes it.
    pub fn create_refund(&mut self, form: &[(String, String)]) -> (u16, Value) {
        let Some(payment_intent) = field(form, "payment_intent") else {
            return invalid("Missing required param", "payment_intent");
        };
        let Some(session) = self
            .sessions
            .values()
            .find(|x| x["payment_intent"] == payment_intent)
        else {
            return missing("payment_intent", payment_intent);
        };
        let currency = session["currency"].clone();
        let paid = session["amount_total"].as_i64().unwrap_or_default();
        let refunded: i64 = self
            .refunds
            .iter()
            .filter(|r| r["payment_intent"] == payment_intent)
            .filter_map(|r| r["amount"].as_i64())
            .sum();
        let left = paid - refunded;
        let amount = match field(form, "amount").map(str::parse::<i64>) {
            None if left > 0 => left,
            Some(Ok(a)) if (1..=left).contains(&a) => a,
            _ => return invalid("Refund amount is greater than the unrefunded amount.", "amount"),
        };
        let id = self.next_id("re");
        let mut refund = fixture(REFUND);
        let fields = json!({
            "id": id,
            "amount": amount,
            "currency": currency,
            "payment_intent": payment_intent,
            "reason": field(form, "reason"),
            "created": now(),
            "status": "succeeded",
        });
        if let Some(fields) = fields.as_object() {
            for (k, v) in fields {
                refund[k] = v.clone();
            }
        }
        self.refunds.push(refund.clone());
        (200, refund)
    }

    /// The session `id`, as Stripe holds it now.
    pub fn session(&self, id: &str) -> Option<&Value> {
        self.sessions.get(id)
    }

    /// The session `id`, to change what Stripe reports about it.
    pub fn session_mut(&mut self, id: &str) -> Option<&mut Value> {
        self.sessions.get_mut(id)
    }

    /// Every session made so far.
    pub fn sessions(&self) -> Vec<Value> {
        self.sessions.values().cloned().collect()
    }

    /// The shopper pays by card: the session completes, paid; answers its new PaymentIntent id (`None`
    /// when there is no such session).
    pub fn complete_session(&mut self, id: &str, email: &str) -> Option<String> {
        if !self.sessions.contains_key(id) {
            return None;
        }
        let payment_intent = self.next_id("pi");
        let details = fixture(SESSION)["customer_details"].clone();
        let session = self.sessions.get_mut(id)?;
        session["status"] = json!("complete");
        session["payment_status"] = json!("paid");
        session["url"] = Value::Null;
        session["payment_intent"] = json!(payment_intent);
        session["customer_details"] = details;
        session["customer_details"]["email"] = json!(email);
        Some(payment_intent)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn one_line() -> Vec<(String, String)> {
        form(&[
            ("mode", "payment"),
            ("success_url", "http://127.0.0.1/checkout/success"),
            ("line_items[0][quantity]", "2"),
            ("line_items[0][price_data][unit_amount]", "4990"),
            ("line_items[0][price_data][currency]", "eur"),
            ("line_items[0][price_data][product_data][name]", "Comfy slippers"),
        ])
    }

    #[test]
    fn a_session_totals_its_lines_and_is_paid_at_the_pay_base() {
        let mut book = StripeBook::new("dev", "http://127.0.0.1:8080/dev/pay");
        let a = book.call("POST", "/v1/checkout/sessions", &one_line(), None);
        assert_eq!(a.status, 200);
        assert_eq!(a.body["amount_total"], 9980);
        assert_eq!(a.body["id"], "cs_test_dev000001");
        assert_eq!(a.body["url"], "http://127.0.0.1:8080/dev/pay/cs_test_dev000001");
    }

    #[test]
    fn the_same_idempotency_key_replays_and_other_parameters_are_refused() {
        let mut book = StripeBook::new("dev", "http://x/pay");
        let first = book.call("POST", "/v1/checkout/sessions", &one_line(), Some("k1"));
        let again = book.call("POST", "/v1/checkout/sessions", &one_line(), Some("k1"));
        assert!(again.replayed);
        assert_eq!(again.body, first.body);
        let mut other = one_line();
        other[2].1 = "3".into();
        let refused = book.call("POST", "/v1/checkout/sessions", &other, Some("k1"));
        assert_eq!(refused.status, 400);
        assert_eq!(refused.body["error"]["type"], "idempotency_error");
    }

    #[test]
    fn a_completed_session_is_paid_and_refundable_up_to_its_total() {
        let mut book = StripeBook::new("dev", "http://x/pay");
        let id = book.call("POST", "/v1/checkout/sessions", &one_line(), None).body["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let pi = book.complete_session(&id, "shopper@example.com").unwrap();
        assert_eq!(book.session(&id).unwrap()["payment_status"], "paid");
        let refund = book.call("POST", "/v1/refunds", &form(&[("payment_intent", &pi)]), None);
        assert_eq!(refund.body["amount"], 9980);
        let more = book.call(
            "POST",
            "/v1/refunds",
            &form(&[("payment_intent", &pi), ("amount", "1")]),
            None,
        );
        assert_eq!(more.status, 400);
    }
}
