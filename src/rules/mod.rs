//! Rules: what the merchant wants done with a conversation, decided on every message the shopper
//! sends. A rule says *when* (the channel, an ad id, a link's `ref`, the cart's value, a VIP customer,
//! words in the message) and *then* (a priority in the agents' queue, a label on the thread, hand the
//! thread to a person, the skill its agent needs).
//!
//! [`evaluate`] is a pure function of the rules and the facts of one message, tested like the engine;
//! `store` keeps rules and applies a verdict to a thread.
//!
//! Every enabled rule whose conditions all hold applies, in position order: the thread takes the highest
//! priority among them, every label, the first skill, and is handed over when any says so. The first
//! matching rule that hands over (else the first that matched) is the one that routed the thread.

mod store;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::catalog::search::fold;
use crate::kernel::{Channel, FieldError, is_label};
use crate::money::Money;

pub use store::{
    Routed, RuleError, StoredRule, apply, create, delete, get, list, routed, update, verdict_for,
};

/// The most rules a merchant has.
pub const MAX_RULES: usize = 100;
/// The most values in one condition's list (ad ids, refs, words).
pub const MAX_VALUES: usize = 50;
/// The highest priority a rule may give (0 is every thread's).
pub const MAX_PRIORITY: i32 = 100;

/// When a rule applies: every condition given must hold (an absent one does not constrain).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct When {
    /// The thread's channel is one of these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<Channel>,
    /// One of the shopper's ads (touches) has one of these ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ad_ids: Vec<String>,
    /// One of the shopper's links (touches) has one of these `ref`s.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refs: Vec<String>,
    /// The open cart is worth at least this (in its currency).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cart_value_at_least: Option<StoredMoney>,
    /// The customer is (or, with `false`, is not) a VIP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vip: Option<bool>,
    /// The message contains one of these words or phrases (case and accents ignored, whole words).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub words: Vec<String>,
}

/// An amount as a rule stores it: integer minor units and an ISO 4217 code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMoney {
    /// Minor units.
    pub minor: i64,
    /// The currency.
    pub currency: crate::money::Currency,
}

impl From<Money> for StoredMoney {
    fn from(m: Money) -> Self {
        StoredMoney {
            minor: m.minor(),
            currency: m.currency(),
        }
    }
}

impl From<StoredMoney> for Money {
    fn from(m: StoredMoney) -> Self {
        Money::from_minor(m.minor, m.currency)
    }
}

/// What a rule does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Then {
    /// The thread's priority in the agents' queue (higher is served first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// A label put on the thread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Hand the thread to a person.
    #[serde(default)]
    pub hand_over: bool,
    /// The skill the thread's agent needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skill: Option<String>,
}

/// A merchant's rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Id.
    pub id: Uuid,
    /// What the merchant calls it.
    pub name: String,
    /// Rules are evaluated from the lowest position.
    pub position: i32,
    /// A disabled rule is kept, never applied.
    pub enabled: bool,
    /// Its conditions.
    pub when: When,
    /// Its actions.
    pub then: Then,
}

/// What is known about one message when rules are evaluated. Facts no rule asks for may be left empty
/// (see [`Needs`]).
#[derive(Debug, Clone, Default)]
pub struct Facts<'a> {
    /// The thread's channel.
    pub channel: Option<Channel>,
    /// The ad ids of the shopper's touches.
    pub ad_ids: &'a [String],
    /// The `ref`s of the shopper's touches.
    pub refs: &'a [String],
    /// The open cart's value, if there is a cart.
    pub cart_value: Option<Money>,
    /// Whether the customer is a VIP.
    pub vip: bool,
    /// The message's text.
    pub text: Option<&'a str>,
}

/// Which facts the rules ask for, so that nothing else is read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// Ad ids or refs.
    pub touches: bool,
    /// The cart's value.
    pub cart: bool,
    /// VIP.
    pub vip: bool,
}

/// What the rules decided for one message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// The rule that routed the thread: the first matching one that hands over, else the first match.
    pub rule: Option<Uuid>,
    /// The highest priority of the matching rules that give one.
    pub priority: Option<i32>,
    /// Labels to put on the thread.
    pub labels: Vec<String>,
    /// Whether to hand the thread to a person.
    pub hand_over: bool,
    /// The skill the thread's agent needs (the first matching rule's).
    pub skill: Option<String>,
}

impl Verdict {
    /// True when no rule matched.
    pub fn is_empty(&self) -> bool {
        self.rule.is_none()
    }
}

/// The facts the enabled `rules` need.
pub fn needs(rules: &[Rule]) -> Needs {
    rules
        .iter()
        .filter(|r| r.enabled)
        .fold(Needs::default(), |n, r| Needs {
            touches: n.touches || !r.when.ad_ids.is_empty() || !r.when.refs.is_empty(),
            cart: n.cart || r.when.cart_value_at_least.is_some(),
            vip: n.vip || r.when.vip.is_some(),
        })
}

/// Whether every condition of `when` holds for `facts`.
pub fn holds(when: &When, facts: &Facts<'_>) -> bool {
    let any_of =
        |wanted: &[String], have: &[String]| wanted.is_empty() || have.iter().any(|h| wanted.contains(h));
    (when.channels.is_empty() || facts.channel.is_some_and(|c| when.channels.contains(&c)))
        && any_of(&when.ad_ids, facts.ad_ids)
        && any_of(&when.refs, facts.refs)
        && when.cart_value_at_least.is_none_or(|least| {
            facts
                .cart_value
                .is_some_and(|v| v.currency() == least.currency && v.minor() >= least.minor)
        })
        && when.vip.is_none_or(|vip| vip == facts.vip)
        && (when.words.is_empty() || facts.text.is_some_and(|t| contains_any(t, &when.words)))
}

/// Whether `text` contains one of `words` as whole words (a phrase as consecutive words), with case
/// and accents ignored: "Je veux être REMBOURSÉ" contains "remboursé" and "rembourse", not "rembours".
fn contains_any(text: &str, words: &[String]) -> bool {
    let tokens = |s: &str| -> Vec<String> {
        fold(s)
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let said = tokens(text);
    words.iter().any(|w| {
        let phrase = tokens(w);
        !phrase.is_empty()
            && said
                .windows(phrase.len())
                .any(|window| window == phrase.as_slice())
    })
}

/// Applies the enabled rules, in position order, to one message's facts.
pub fn evaluate(rules: &[Rule], facts: &Facts<'_>) -> Verdict {
    let mut ordered: Vec<&Rule> = rules.iter().filter(|r| r.enabled).collect();
    ordered.sort_by_key(|r| (r.position, r.id));
    let mut verdict = Verdict::default();
    for rule in ordered.into_iter().filter(|r| holds(&r.when, facts)) {
        let then = &rule.then;
        if verdict.rule.is_none() || (then.hand_over && !verdict.hand_over) {
            verdict.rule = Some(rule.id);
        }
        verdict.hand_over |= then.hand_over;
        verdict.priority = match (verdict.priority, then.priority) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        if let Some(label) = &then.label
            && !verdict.labels.contains(label)
        {
            verdict.labels.push(label.clone());
        }
        if verdict.skill.is_none() {
            verdict.skill.clone_from(&then.skill);
        }
    }
    verdict
}

/// A rule as the merchant writes it, before checks.
#[derive(Debug, Clone, Default)]
pub struct RawRule {
    /// Name.
    pub name: String,
    /// Position (none: after the others).
    pub position: Option<i64>,
    /// Enabled (none: yes).
    pub enabled: Option<bool>,
    /// Conditions.
    pub when: When,
    /// Actions.
    pub then: Then,
}

/// Checks a rule: a name, at least one condition and one action, labels and skills that are labels,
/// lists within [`MAX_VALUES`], a priority from 0 to [`MAX_PRIORITY`].
pub fn check(raw: RawRule) -> Result<RawRule, Vec<FieldError>> {
    let mut errors = Vec::new();
    let name = raw.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 100 {
        errors.push(FieldError::new("name", "invalid_name", "1 to 100 characters"));
    }
    if raw.position.is_some_and(|p| !(0..=10_000).contains(&p)) {
        errors.push(FieldError::new("position", "out_of_range", "from 0 to 10000"));
    }
    let mut when = raw.when;
    if when == When::default() {
        errors.push(FieldError::new(
            "when",
            "no_condition",
            "give at least one condition: channels, ad_ids, refs, cart_value_at_least, vip or words",
        ));
    }
    for (field, values) in [
        ("when.ad_ids", &mut when.ad_ids),
        ("when.refs", &mut when.refs),
        ("when.words", &mut when.words),
    ] {
        values.iter_mut().for_each(|v| *v = v.trim().to_owned());
        values.dedup();
        if values.len() > MAX_VALUES || values.iter().any(|v| v.is_empty() || v.chars().count() > 100) {
            errors.push(FieldError::new(
                field,
                "invalid_list",
                format!("at most {MAX_VALUES} values of 1 to 100 characters"),
            ));
        }
    }
    if when.words.iter().any(|w| !w.chars().any(char::is_alphanumeric)) {
        errors.push(FieldError::new(
            "when.words",
            "invalid_list",
            "each word or phrase needs a letter or a digit",
        ));
    }
    if when.cart_value_at_least.is_some_and(|m| m.minor < 0) {
        errors.push(FieldError::new(
            "when.cart_value_at_least",
            "invalid_amount",
            "must not be negative",
        ));
    }
    let mut then = raw.then;
    if then == Then::default() {
        errors.push(FieldError::new(
            "then",
            "no_action",
            "give at least one action: priority, label, hand_over or skill",
        ));
    }
    if then.priority.is_some_and(|p| !(0..=MAX_PRIORITY).contains(&p)) {
        errors.push(FieldError::new(
            "then.priority",
            "out_of_range",
            format!("from 0 to {MAX_PRIORITY}"),
        ));
    }
    for (field, value) in [("then.label", &mut then.label), ("then.skill", &mut then.skill)] {
        if let Some(v) = value {
            *v = v.trim().to_lowercase();
            if !is_label(v) {
                errors.push(FieldError::new(
                    field,
                    "invalid_label",
                    "1 to 40 lowercase letters, digits, `-` or `_`, such as \"refunds\"",
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok(RawRule {
            name,
            position: raw.position,
            enabled: raw.enabled,
            when,
            then,
        })
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::money::Currency;

    fn eur(minor: i64) -> Money {
        Money::from_minor(minor, Currency::parse("EUR").unwrap_or_else(|_| unreachable!()))
    }

    fn rule(n: u128, position: i32, when: When, then: Then) -> Rule {
        Rule {
            id: Uuid::from_u128(n),
            name: format!("rule {n}"),
            position,
            enabled: true,
            when,
            then,
        }
    }

    fn words(list: &[&str]) -> When {
        When {
            words: list.iter().map(|w| (*w).to_owned()).collect(),
            ..When::default()
        }
    }

    fn says(text: &str) -> Facts<'_> {
        Facts {
            channel: Some(Channel::Messenger),
            text: Some(text),
            ..Facts::default()
        }
    }

    #[test]
    fn a_refund_in_french_or_english_goes_to_a_specialist() {
        let rules = [rule(
            1,
            0,
            words(&["refund", "rembourser", "remboursé", "broken"]),
            Then {
                hand_over: true,
                skill: Some("refunds".into()),
                priority: Some(5),
                label: Some("refund".into()),
            },
        )];
        for text in [
            "I want a REFUND please",
            "Je veux être remboursé",
            "pouvez-vous me rembourser ?",
        ] {
            let v = evaluate(&rules, &says(text));
            assert!(v.hand_over, "{text}");
            assert_eq!(v.skill.as_deref(), Some("refunds"));
            assert_eq!(v.priority, Some(5));
            assert_eq!(v.rule, Some(Uuid::from_u128(1)));
        }
        for text in ["refunded", "I love these slippers", ""] {
            assert!(evaluate(&rules, &says(text)).is_empty(), "{text}");
        }
    }

    #[test]
    fn a_phrase_matches_consecutive_words_only() {
        let when = words(&["not working"]);
        assert!(holds(&when, &says("It is NOT working!")));
        assert!(!holds(&when, &says("not sure it is working")));
    }

    #[test]
    fn every_condition_given_must_hold() {
        let when = When {
            channels: vec![Channel::Instagram],
            cart_value_at_least: Some(eur(10_000).into()),
            vip: Some(true),
            ..When::default()
        };
        let facts = Facts {
            channel: Some(Channel::Instagram),
            cart_value: Some(eur(10_000)),
            vip: true,
            ..Facts::default()
        };
        assert!(holds(&when, &facts));
        assert!(!holds(
            &when,
            &Facts {
                channel: Some(Channel::Messenger),
                ..facts.clone()
            }
        ));
        assert!(!holds(
            &when,
            &Facts {
                cart_value: Some(eur(9_999)),
                ..facts.clone()
            }
        ));
        assert!(!holds(
            &when,
            &Facts {
                cart_value: None,
                ..facts.clone()
            }
        ));
        assert!(!holds(
            &when,
            &Facts {
                vip: false,
                ..facts.clone()
            }
        ));
        let usd = Money::from_minor(50_000, Currency::parse("USD").unwrap_or_else(|_| unreachable!()));
        assert!(
            !holds(
                &when,
                &Facts {
                    cart_value: Some(usd),
                    ..facts
                }
            ),
            "another currency never compares"
        );
    }

    #[test]
    fn ads_and_refs_match_any_of_the_shoppers_touches() {
        let when = When {
            ad_ids: vec!["120".into()],
            refs: vec!["summer".into()],
            ..When::default()
        };
        let ads = ["99".to_owned(), "120".to_owned()];
        let refs = ["summer".to_owned()];
        let facts = Facts {
            ad_ids: &ads,
            refs: &refs,
            ..Facts::default()
        };
        assert!(holds(&when, &facts));
        assert!(!holds(&when, &Facts { refs: &[], ..facts }));
    }

    #[test]
    fn rules_apply_in_position_order_and_disabled_ones_never() {
        let vip_first = rule(
            2,
            1,
            When {
                vip: Some(true),
                ..When::default()
            },
            Then {
                priority: Some(3),
                skill: Some("vip".into()),
                ..Then::default()
            },
        );
        let refund = rule(
            1,
            2,
            words(&["refund"]),
            Then {
                hand_over: true,
                priority: Some(1),
                skill: Some("refunds".into()),
                label: Some("refund".into()),
            },
        );
        let off = Rule {
            enabled: false,
            ..rule(
                3,
                0,
                words(&["refund"]),
                Then {
                    priority: Some(50),
                    ..Then::default()
                },
            )
        };
        let facts = Facts {
            vip: true,
            ..says("refund")
        };
        let v = evaluate(&[refund, off, vip_first], &facts);
        assert_eq!(
            v,
            Verdict {
                rule: Some(Uuid::from_u128(1)),
                priority: Some(3),
                labels: vec!["refund".into()],
                hand_over: true,
                skill: Some("vip".into()),
            },
            "the highest priority, the first skill, the rule that handed over"
        );
    }

    #[test]
    fn needs_name_only_what_enabled_rules_read() {
        let cart = rule(
            1,
            0,
            When {
                cart_value_at_least: Some(eur(1).into()),
                ..When::default()
            },
            Then::default(),
        );
        let refs = Rule {
            enabled: false,
            ..rule(
                2,
                0,
                When {
                    refs: vec!["x".into()],
                    ..When::default()
                },
                Then::default(),
            )
        };
        assert_eq!(
            needs(&[cart, refs]),
            Needs {
                cart: true,
                ..Needs::default()
            }
        );
    }

    #[test]
    fn a_rule_without_condition_or_action_or_with_a_bad_label_is_refused_on_its_fields() {
        let errors = check(RawRule {
            name: " ".into(),
            then: Then {
                label: Some("has space".into()),
                priority: Some(1000),
                ..Then::default()
            },
            ..RawRule::default()
        })
        .err()
        .unwrap_or_default();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["name", "when", "then.priority", "then.label"]);
        let ok = check(RawRule {
            name: "Refunds".into(),
            when: words(&[" refund "]),
            then: Then {
                skill: Some("Refunds".into()),
                ..Then::default()
            },
            ..RawRule::default()
        });
        assert_eq!(
            ok.map(|r| (r.when.words, r.then.skill)).ok(),
            Some((vec!["refund".into()], Some("refunds".into())))
        );
    }

    fn any_when() -> impl Strategy<Value = When> {
        (
            prop::sample::subsequence(
                vec![Channel::Messenger, Channel::Instagram, Channel::Webchat],
                0..=2,
            ),
            prop::sample::subsequence(vec!["a1", "a2"], 0..=1),
            prop::option::of(0i64..3),
            prop::option::of(any::<bool>()),
            prop::sample::subsequence(vec!["refund", "broken"], 0..=1),
        )
            .prop_map(|(channels, ads, cart, vip, w)| When {
                channels,
                ad_ids: ads.into_iter().map(str::to_owned).collect(),
                refs: Vec::new(),
                cart_value_at_least: cart.map(|c| eur(c * 100).into()),
                vip,
                words: w.into_iter().map(str::to_owned).collect(),
            })
    }

    fn any_then() -> impl Strategy<Value = Then> {
        (
            prop::option::of(0i32..3),
            prop::option::of(prop::sample::select(vec!["l1", "l2"])),
            any::<bool>(),
            prop::option::of(prop::sample::select(vec!["s1", "s2"])),
        )
            .prop_map(|(priority, label, hand_over, skill)| Then {
                priority,
                label: label.map(str::to_owned),
                hand_over,
                skill: skill.map(str::to_owned),
            })
    }

    fn any_rules() -> impl Strategy<Value = Vec<Rule>> {
        prop::collection::vec((any_when(), any_then(), 0i32..5, any::<bool>()), 0..6).prop_map(|rows| {
            rows.into_iter()
                .enumerate()
                .map(|(i, (when, then, position, enabled))| Rule {
                    enabled,
                    ..rule(i as u128 + 1, position, when, then)
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn the_verdict_is_exactly_the_union_of_the_matching_enabled_rules(
            rules in any_rules(),
            channel in prop::sample::select(vec![Channel::Messenger, Channel::Instagram, Channel::Webchat]),
            ad in prop::sample::select(vec!["a1", "a2", "a3"]),
            cart in prop::option::of(0i64..4),
            vip in any::<bool>(),
            text in prop::sample::select(vec!["it is broken", "Refund!", "hello"]),
        ) {
            let ads = [ad.to_owned()];
            let facts = Facts { channel: Some(channel), ad_ids: &ads, refs: &[], cart_value: cart.map(|c| eur(c * 100)), vip, text: Some(text) };
            let matching: Vec<&Rule> = rules.iter().filter(|r| r.enabled && holds(&r.when, &facts)).collect();
            let v = evaluate(&rules, &facts);
            prop_assert_eq!(v.is_empty(), matching.is_empty());
            prop_assert_eq!(v.hand_over, matching.iter().any(|r| r.then.hand_over));
            prop_assert_eq!(v.priority, matching.iter().filter_map(|r| r.then.priority).max());
            let mut labels: Vec<String> = matching.iter().filter_map(|r| r.then.label.clone()).collect();
            labels.sort();
            labels.dedup();
            let mut got = v.labels.clone();
            got.sort();
            prop_assert_eq!(got, labels);
            if let Some(id) = v.rule {
                let routed = matching.iter().find(|r| r.id == id);
                prop_assert!(routed.is_some());
                prop_assert!(!v.hand_over || routed.is_some_and(|r| r.then.hand_over));
            }
            // A rule that is disabled, or whose conditions do not hold, never changes the verdict.
            let only_matching: Vec<Rule> = matching.iter().map(|r| (*r).clone()).collect();
            prop_assert_eq!(evaluate(&only_matching, &facts), v);
        }
    }
}
