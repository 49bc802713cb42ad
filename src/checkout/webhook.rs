//! Stripe's webhooks: the `Stripe-Signature` check over the raw body, and the typed [`StripeEvent`].
//!
//! An event is parsed once, when it arrives: `POST /webhooks/stripe` verifies it, parses it and stores its
//! raw body; the payments worker reads the stored body back into the same [`StripeEvent`] with the same
//! parser. Only the fields threadcart acts on are read, so an event is never refused for the rest of its
//! object; one of a type threadcart does not act on is kept as [`EventKind::Other`].
//!
//! Signatures are verified here without async-stripe (its check is not required to accept every `v1`
//! during a secret roll).

use hmac::{Hmac, Mac};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq};

use super::stripe::StripeError;

/// Why a webhook delivery's `Stripe-Signature` is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No header.
    #[error("no Stripe-Signature header")]
    Missing,
    /// Not `t=<unix>,v1=<hex>[,v1=<hex>...]`.
    #[error("the Stripe-Signature header is not t=<unix>,v1=<hex>")]
    Malformed,
    /// No `v1` is the body's signature under the secret.
    #[error("no v1 signature matches the body")]
    Mismatch,
    /// Signed too long ago, or too far in the future.
    #[error("the signature's timestamp is outside the tolerance")]
    Stale,
    /// The endpoint secret is empty.
    #[error("no webhook secret configured")]
    NoSecret,
}

/// `t` as written and as a number, and every decodable `v1`; `None` without both.
fn parse_signature_header(header: &str) -> Option<(&str, i64, Vec<Vec<u8>>)> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for item in header.split(',') {
        let Some((key, value)) = item.split_once('=') else {
            continue;
        };
        match key.trim() {
            "t" if timestamp.is_some() => return None,
            "t" => {
                let written = value.trim();
                timestamp = Some((written, written.parse::<i64>().ok()?));
            }
            "v1" => signatures.extend(decode_hex(value.trim())),
            _ => {}
        }
    }
    let (written, t) = timestamp?;
    (!signatures.is_empty()).then_some((written, t, signatures))
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.is_empty() || !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| hex.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}

/// Verifies a `Stripe-Signature` header over the raw body: HMAC-SHA256 of `"{t}.{body}"` under the endpoint
/// secret must equal one of the `v1` values (several during a secret roll; other schemes are ignored),
/// compared in constant time, and `t` must be within `tolerance_secs` of `now_unix` either way.
pub fn verify_webhook(
    secret: &[u8],
    body: &[u8],
    header: Option<&str>,
    now_unix: i64,
    tolerance_secs: i64,
) -> Result<(), SignatureError> {
    if secret.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    let header = header.ok_or(SignatureError::Missing)?;
    let (written, timestamp, signatures) = parse_signature_header(header).ok_or(SignatureError::Malformed)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| SignatureError::NoSecret)?;
    mac.update(written.as_bytes());
    mac.update(b".");
    mac.update(body);
    let expected = mac.finalize().into_bytes();
    let expected: &[u8] = &expected;
    let matched = signatures.iter().fold(Choice::from(0), |found, given| {
        found | expected.ct_eq(given.as_slice())
    });
    if !bool::from(matched) {
        return Err(SignatureError::Mismatch);
    }
    let tolerance = u64::try_from(tolerance_secs).unwrap_or(0);
    if now_unix.abs_diff(timestamp) > tolerance {
        return Err(SignatureError::Stale);
    }
    Ok(())
}

/// A Stripe event, as threadcart acts on it; the rest stays in the stored raw body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeEvent {
    /// `evt_...`: the deduplication key.
    pub id: String,
    /// Unix seconds.
    pub created: i64,
    /// Live or test mode.
    pub livemode: bool,
    /// What happened, with what threadcart needs of the event's object.
    pub kind: EventKind,
}

/// The events threadcart acts on, each with the fields of its object it acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// `checkout.session.completed`: the shopper finished Checkout (paid, or a delayed payment started).
    CheckoutSessionCompleted {
        /// `cs_...`.
        session_id: String,
    },
    /// `checkout.session.async_payment_succeeded`: a delayed payment arrived.
    CheckoutSessionAsyncPaymentSucceeded {
        /// `cs_...`.
        session_id: String,
    },
    /// `checkout.session.async_payment_failed`: a delayed payment failed.
    CheckoutSessionAsyncPaymentFailed {
        /// `cs_...`.
        session_id: String,
    },
    /// `checkout.session.expired`: the session can no longer be paid.
    CheckoutSessionExpired {
        /// `cs_...`.
        session_id: String,
    },
    /// `charge.refunded`: some or all of a charge went back (sent for every refund, partial ones too).
    ChargeRefunded {
        /// The charge's `pi_...`.
        payment_intent: String,
    },
    /// `refund.created`.
    RefundCreated(RefundObject),
    /// `refund.updated`.
    RefundUpdated(RefundObject),
    /// `refund.failed`.
    RefundFailed(RefundObject),
    /// `charge.dispute.created`: the shopper disputes the payment.
    DisputeCreated {
        /// The disputed `pi_...`.
        payment_intent: String,
    },
    /// `charge.dispute.closed`.
    DisputeClosed {
        /// The disputed `pi_...`.
        payment_intent: String,
        /// How it ended: `won`, `lost`, `warning_closed` ...
        status: Option<String>,
    },
    /// Any other type, as given; or one of the above whose object lacks what threadcart acts on (no
    /// session id, no PaymentIntent, a refund without its id or amount).
    Other(String),
}

/// A refund as a `refund.*` event carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundObject {
    /// `re_...`.
    pub id: String,
    /// In Stripe's minor units of the charge's currency.
    pub amount: i64,
    /// `pending`, `requires_action`, `succeeded`, `failed` or `canceled` (`pending` when Stripe sent none).
    pub status: String,
    /// The refunded `pi_...`.
    pub payment_intent: String,
}

impl EventKind {
    /// Stripe's `type`, such as `checkout.session.completed`.
    pub fn type_name(&self) -> &str {
        match self {
            EventKind::CheckoutSessionCompleted { .. } => "checkout.session.completed",
            EventKind::CheckoutSessionAsyncPaymentSucceeded { .. } => {
                "checkout.session.async_payment_succeeded"
            }
            EventKind::CheckoutSessionAsyncPaymentFailed { .. } => "checkout.session.async_payment_failed",
            EventKind::CheckoutSessionExpired { .. } => "checkout.session.expired",
            EventKind::ChargeRefunded { .. } => "charge.refunded",
            EventKind::RefundCreated(_) => "refund.created",
            EventKind::RefundUpdated(_) => "refund.updated",
            EventKind::RefundFailed(_) => "refund.failed",
            EventKind::DisputeCreated { .. } => "charge.dispute.created",
            EventKind::DisputeClosed { .. } => "charge.dispute.closed",
            EventKind::Other(kind) => kind,
        }
    }

    /// The kind named `kind`, from its object's fields.
    fn read(kind: String, object: EventObject) -> EventKind {
        let EventObject {
            id,
            amount,
            status,
            payment_intent,
        } = object;
        let refund = || {
            Some(RefundObject {
                id: id.clone()?,
                amount: amount?,
                status: status.clone().unwrap_or_else(|| "pending".to_owned()),
                payment_intent: payment_intent.clone()?,
            })
        };
        let typed = match kind.as_str() {
            "checkout.session.completed" => id
                .clone()
                .map(|session_id| EventKind::CheckoutSessionCompleted { session_id }),
            "checkout.session.async_payment_succeeded" => id
                .clone()
                .map(|session_id| EventKind::CheckoutSessionAsyncPaymentSucceeded { session_id }),
            "checkout.session.async_payment_failed" => id
                .clone()
                .map(|session_id| EventKind::CheckoutSessionAsyncPaymentFailed { session_id }),
            "checkout.session.expired" => id
                .clone()
                .map(|session_id| EventKind::CheckoutSessionExpired { session_id }),
            "charge.refunded" => payment_intent
                .clone()
                .map(|payment_intent| EventKind::ChargeRefunded { payment_intent }),
            "refund.created" => refund().map(EventKind::RefundCreated),
            "refund.updated" => refund().map(EventKind::RefundUpdated),
            "refund.failed" => refund().map(EventKind::RefundFailed),
            "charge.dispute.created" => payment_intent
                .clone()
                .map(|payment_intent| EventKind::DisputeCreated { payment_intent }),
            "charge.dispute.closed" => {
                payment_intent
                    .clone()
                    .map(|payment_intent| EventKind::DisputeClosed {
                        payment_intent,
                        status: status.clone(),
                    })
            }
            _ => None,
        };
        typed.unwrap_or(EventKind::Other(kind))
    }
}

#[derive(Deserialize)]
struct EventEnvelope {
    id: String,
    object: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    created: i64,
    livemode: bool,
    data: Option<EventData>,
}

#[derive(Deserialize)]
struct EventData {
    object: Option<EventObject>,
}

/// The fields of an event's object that threadcart reads, whatever the object (a session, a refund, a
/// charge, a dispute).
#[derive(Default, Deserialize)]
struct EventObject {
    id: Option<String>,
    #[serde(default, deserialize_with = "if_well_typed")]
    amount: Option<i64>,
    #[serde(default, deserialize_with = "if_well_typed")]
    status: Option<String>,
    #[serde(default, deserialize_with = "if_well_typed")]
    payment_intent: Option<String>,
}

/// The field when it has the expected type, `None` otherwise (null, or a PaymentIntent expanded into an
/// object): an event is never refused for a field it may carry in another shape.
fn if_well_typed<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(T::deserialize(value).ok())
}

impl StripeEvent {
    /// Parses a webhook body (verified when it arrived) into the event threadcart acts on; `Decode` when it
    /// is not a Stripe event.
    pub fn parse(body: &[u8]) -> Result<StripeEvent, StripeError> {
        let envelope: EventEnvelope = serde_json::from_slice(body).map_err(|e| {
            // The error's own text may quote the body; say where it broke, not what it read.
            StripeError::Decode(format!(
                "not a Stripe event ({:?} error at line {}, column {})",
                e.classify(),
                e.line(),
                e.column()
            ))
        })?;
        if envelope.object.as_deref().is_some_and(|o| o != "event") || envelope.id.is_empty() {
            return Err(StripeError::Decode("not a Stripe event".into()));
        }
        let object = envelope.data.and_then(|d| d.object).unwrap_or_default();
        Ok(StripeEvent {
            id: envelope.id,
            created: envelope.created,
            livemode: envelope.livemode,
            kind: EventKind::read(envelope.kind, object),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"whsec_test_secret";
    const NOW: i64 = 1_700_000_000;
    const TOLERANCE: i64 = 300;
    const BODY: &[u8] = br#"{"id":"evt_1","object":"event","type":"checkout.session.completed"}"#;

    fn sign(secret: &[u8], t: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        crate::secrets::hex(&mac.finalize().into_bytes())
    }

    fn header(t: i64, signatures: &[String]) -> String {
        let mut h = format!("t={t}");
        for s in signatures {
            h.push_str(&format!(",v1={s}"));
        }
        h
    }

    fn verify(header: Option<&str>, body: &[u8]) -> Result<(), SignatureError> {
        verify_webhook(SECRET, body, header, NOW, TOLERANCE)
    }

    #[test]
    fn a_valid_signature_passes() {
        let h = header(NOW, &[sign(SECRET, NOW, BODY)]);
        assert_eq!(verify(Some(&h), BODY), Ok(()));
    }

    #[test]
    fn during_a_secret_roll_a_second_matching_v1_passes() {
        let old = sign(b"whsec_old_secret", NOW, BODY);
        let h = header(NOW, &[old, sign(SECRET, NOW, BODY)]);
        assert_eq!(verify(Some(&h), BODY), Ok(()));
    }

    #[test]
    fn the_test_mode_v0_scheme_is_ignored() {
        let good = sign(SECRET, NOW, BODY);
        let h =
            format!("t={NOW},v1={good},v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39");
        assert_eq!(verify(Some(&h), BODY), Ok(()));
        let only_v0 = format!("t={NOW},v0={good}");
        assert_eq!(verify(Some(&only_v0), BODY), Err(SignatureError::Malformed));
    }

    #[test]
    fn a_signature_under_another_secret_is_refused() {
        let h = header(NOW, &[sign(b"whsec_other", NOW, BODY)]);
        assert_eq!(verify(Some(&h), BODY), Err(SignatureError::Mismatch));
    }

    #[test]
    fn a_tampered_body_is_refused() {
        let h = header(NOW, &[sign(SECRET, NOW, BODY)]);
        let tampered = br#"{"id":"evt_2","object":"event","type":"checkout.session.completed"}"#;
        assert_eq!(verify(Some(&h), tampered), Err(SignatureError::Mismatch));
    }

    #[test]
    fn a_timestamp_older_than_the_tolerance_is_refused() {
        let t = NOW - TOLERANCE - 1;
        let h = header(t, &[sign(SECRET, t, BODY)]);
        assert_eq!(verify(Some(&h), BODY), Err(SignatureError::Stale));
        let edge = NOW - TOLERANCE;
        let h = header(edge, &[sign(SECRET, edge, BODY)]);
        assert_eq!(verify(Some(&h), BODY), Ok(()));
    }

    #[test]
    fn a_timestamp_further_ahead_than_the_tolerance_is_refused() {
        let t = NOW + TOLERANCE + 1;
        let h = header(t, &[sign(SECRET, t, BODY)]);
        assert_eq!(verify(Some(&h), BODY), Err(SignatureError::Stale));
    }

    #[test]
    fn the_timestamp_is_part_of_what_is_signed() {
        let h = header(NOW, &[sign(SECRET, NOW - 1, BODY)]);
        assert_eq!(verify(Some(&h), BODY), Err(SignatureError::Mismatch));
    }

    #[test]
    fn a_missing_header_is_refused() {
        assert_eq!(verify(None, BODY), Err(SignatureError::Missing));
    }

    #[test]
    fn garbled_headers_are_refused() {
        let good = sign(SECRET, NOW, BODY);
        for garbled in [
            "",
            "garbage",
            "t=,v1=",
            &format!("v1={good}"),
            &format!("t=yesterday,v1={good}"),
            &format!("t={NOW}"),
            &format!("t={NOW},v1=not-hex"),
            &format!("t={NOW},t={NOW},v1={good}"),
        ] {
            assert_eq!(
                verify(Some(garbled), BODY),
                Err(SignatureError::Malformed),
                "{garbled}"
            );
        }
    }

    #[test]
    fn an_empty_secret_refuses_every_delivery() {
        let h = header(NOW, &[sign(b"", NOW, BODY)]);
        assert_eq!(
            verify_webhook(b"", BODY, Some(&h), NOW, TOLERANCE),
            Err(SignatureError::NoSecret)
        );
    }

    #[test]
    fn a_completed_checkout_event_parses() {
        let body = include_bytes!("../../fixtures/stripe/event_checkout_session_completed.json");
        let event = StripeEvent::parse(body).unwrap();
        assert_eq!(
            event,
            StripeEvent {
                id: "evt_1Pgc7xB7WZ01zgkWcheckout".into(),
                created: 1_234_567_990,
                livemode: false,
                kind: EventKind::CheckoutSessionCompleted {
                    session_id: "cs_test_a1YS1URlnyQCN5fUUduORoQ7Pw41PJqDWkIVQCpJPqkfIhd6tVY8XB1OLY".into()
                },
            }
        );
        assert_eq!(event.kind.type_name(), "checkout.session.completed");
    }

    #[test]
    fn an_event_of_an_unknown_type_parses_with_its_type_kept() {
        let body = include_bytes!("../../fixtures/stripe/event_plan_created.json");
        let event = StripeEvent::parse(body).unwrap();
        assert_eq!(event.kind, EventKind::Other("plan.created".into()));
        assert_eq!(event.kind.type_name(), "plan.created");
    }

    #[test]
    fn a_body_that_is_not_an_event_is_refused_without_quoting_it() {
        let err = StripeEvent::parse(br#"{"id": "evt_1", "type": 4242424242424242}"#).unwrap_err();
        assert!(matches!(err, StripeError::Decode(_)));
        assert!(!err.to_string().contains("4242"), "{err}");
        let session = include_bytes!("../../fixtures/stripe/checkout_session.json");
        assert!(matches!(StripeEvent::parse(session), Err(StripeError::Decode(_))));
    }

    fn event(kind: &str, object: &str) -> Vec<u8> {
        format!(r#"{{"id":"evt_1","object":"event","type":"{kind}","created":1,"livemode":false,"data":{{"object":{object}}}}}"#)
            .into_bytes()
    }

    fn kind_of(kind: &str, object: &str) -> EventKind {
        StripeEvent::parse(&event(kind, object)).unwrap().kind
    }

    #[test]
    fn refund_events_carry_the_refund() {
        let refund = r#"{"id":"re_1","object":"refund","amount":1000,"currency":"eur","payment_intent":"pi_1","status":"succeeded"}"#;
        let expected = RefundObject {
            id: "re_1".into(),
            amount: 1000,
            status: "succeeded".into(),
            payment_intent: "pi_1".into(),
        };

        assert_eq!(
            kind_of("refund.created", refund),
            EventKind::RefundCreated(expected.clone())
        );
        assert_eq!(
            kind_of("refund.updated", refund),
            EventKind::RefundUpdated(expected.clone())
        );
        assert_eq!(
            kind_of("refund.failed", refund),
            EventKind::RefundFailed(expected)
        );
    }

    #[test]
    fn a_refund_without_a_status_is_pending() {
        let refund = r#"{"id":"re_1","amount":1000,"payment_intent":"pi_1","status":null}"#;

        let EventKind::RefundCreated(refund) = kind_of("refund.created", refund) else {
            panic!("not a refund");
        };

        assert_eq!(refund.status, "pending");
    }

    #[test]
    fn charge_and_dispute_events_carry_their_payment_intent() {
        assert_eq!(
            kind_of(
                "charge.refunded",
                r#"{"id":"ch_1","object":"charge","payment_intent":"pi_1"}"#
            ),
            EventKind::ChargeRefunded {
                payment_intent: "pi_1".into()
            }
        );
        assert_eq!(
            kind_of(
                "charge.dispute.created",
                r#"{"id":"dp_1","payment_intent":"pi_1","status":"needs_response"}"#
            ),
            EventKind::DisputeCreated {
                payment_intent: "pi_1".into()
            }
        );
        assert_eq!(
            kind_of(
                "charge.dispute.closed",
                r#"{"id":"dp_1","payment_intent":"pi_1","status":"won"}"#
            ),
            EventKind::DisputeClosed {
                payment_intent: "pi_1".into(),
                status: Some("won".into())
            }
        );
    }

    #[test]
    fn every_session_event_carries_its_session() {
        let session = r#"{"id":"cs_1","object":"checkout.session"}"#;
        let session_id = String::from("cs_1");

        assert_eq!(
            kind_of("checkout.session.async_payment_succeeded", session),
            EventKind::CheckoutSessionAsyncPaymentSucceeded {
                session_id: session_id.clone()
            }
        );
        assert_eq!(
            kind_of("checkout.session.async_payment_failed", session),
            EventKind::CheckoutSessionAsyncPaymentFailed {
                session_id: session_id.clone()
            }
        );
        assert_eq!(
            kind_of("checkout.session.expired", session),
            EventKind::CheckoutSessionExpired { session_id }
        );
    }

    #[test]
    fn an_event_without_what_threadcart_acts_on_is_other_with_its_type_kept() {
        let cases = [
            ("checkout.session.completed", r#"{"object":"checkout.session"}"#),
            ("charge.refunded", r#"{"id":"ch_1","payment_intent":null}"#),
            ("refund.created", r#"{"id":"re_1","payment_intent":"pi_1"}"#),
            (
                "refund.updated",
                r#"{"id":"re_1","amount":"1000","payment_intent":"pi_1"}"#,
            ),
            (
                "charge.dispute.created",
                r#"{"id":"dp_1","payment_intent":{"id":"pi_1"}}"#,
            ),
            (
                "charge.dispute.updated",
                r#"{"id":"dp_1","payment_intent":"pi_1"}"#,
            ),
        ];

        for (kind, object) in cases {
            assert_eq!(kind_of(kind, object), EventKind::Other(kind.into()), "{kind}");
        }
    }

    #[test]
    fn an_event_without_data_is_other() {
        let body = br#"{"id":"evt_1","object":"event","type":"refund.created","created":1,"livemode":true}"#;

        let event = StripeEvent::parse(body).unwrap();

        assert!(event.livemode);
        assert_eq!(event.kind, EventKind::Other("refund.created".into()));
    }
}
