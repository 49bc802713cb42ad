//! Saying that an automated assistant is answering. Where the law asks it (the EU AI Act's transparency
//! duty, from 2026-08-02), a shopper must know they are talking to a machine: the assistant says so in
//! the first automated message of a thread, in the first after a silence of more than the merchant's
//! number of hours, and in the first after a person hands the thread back, in the shopper's language.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;

use super::Thread;

/// The built-in sentences, by language; `{shop}` is the merchant's name.
const BUILT_IN: [(&str, &str); 2] = [
    (
        "en",
        "You're chatting with {shop}'s automated assistant. Write \"human\" at any time to reach a person.",
    ),
    (
        "fr",
        "Vous échangez avec l'assistant automatique de {shop}. Écrivez « humain » à tout moment pour parler à une personne.",
    ),
];

/// The most characters of a merchant's sentence.
pub const MAX_SENTENCE: usize = 300;

/// Whether the next automated message on the thread, answering an event of `at`, must say that it is
/// automated. `before` is the thread as it stood before the event.
pub fn due(before: &Thread, at: NaiveDateTime, after_hours: i32) -> bool {
    let Some(told) = before.disclosed_at else {
        // Never told, or a person handed the thread back since.
        return true;
    };
    // A person answered from the Page's own inbox after the assistant last said it: the assistant is
    // back.
    if before.human_active_until.is_some_and(|until| until > told) {
        return true;
    }
    let silence = chrono::Duration::hours(i64::from(after_hours.max(1)));
    before.last_inbound_at.is_none_or(|last| at - last > silence)
}

/// The sentence for a shopper whose locale is `locale` (`fr_FR`): the merchant's for that language,
/// else the built-in one, else the merchant's English one, else the built-in English one.
pub fn sentence(shop: &str, wording: &BTreeMap<String, String>, locale: Option<&str>) -> String {
    let language = locale
        .and_then(|l| l.split(['_', '-']).next())
        .map(str::to_ascii_lowercase)
        .unwrap_or_else(|| "en".to_owned());
    let built_in = |lang: &str| BUILT_IN.iter().find(|(l, _)| *l == lang).map(|(_, s)| *s);
    let chosen = wording
        .get(&language)
        .map(String::as_str)
        .or_else(|| built_in(&language))
        .or_else(|| wording.get("en").map(String::as_str))
        .unwrap_or(BUILT_IN[0].1);
    chosen.replace("{shop}", shop)
}

/// Whether `language` names a language as the wording's keys do: two lowercase letters (ISO 639-1).
pub fn is_language(language: &str) -> bool {
    language.len() == 2 && language.bytes().all(|b| b.is_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, NaiveDate};

    use super::*;
    use crate::conversations::Mode;
    use crate::kernel::{Channel, CustomerId, MerchantId, PageId, ThreadId};

    fn t(hour: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 12, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .unwrap_or_default()
            + Duration::hours(i64::from(hour))
    }

    fn thread(disclosed_at: Option<NaiveDateTime>, last_inbound_at: Option<NaiveDateTime>) -> Thread {
        Thread {
            id: ThreadId::new(),
            merchant_id: MerchantId::new(),
            customer_id: CustomerId::new(),
            page_id: PageId::from("1"),
            mode: Mode::Bot,
            human_active_until: None,
            last_inbound_at,
            window_ends_at: None,
            ctm_pending: false,
            first_touch_id: None,
            latest_touch_id: None,
            latest_ad_id: None,
            away_sent_on: None,
            stay_bookable_id: None,
            created_at: t(0),
            updated_at: t(0),
            channel: Channel::Messenger,
            disclosed_at,
            has_held: false,
            queued_at: None,
            assigned_agent_id: None,
            routing_reason: None,
            bot_missed: false,
        }
    }

    #[test]
    fn the_first_automated_message_of_a_thread_says_it_is_automated() {
        assert!(due(&thread(None, None), t(1), 24));
        assert!(due(&thread(None, Some(t(0))), t(1), 24));
    }

    #[test]
    fn a_conversation_going_on_is_not_told_again() {
        assert!(!due(&thread(Some(t(1)), Some(t(1))), t(2), 24));
        assert!(!due(&thread(Some(t(1)), Some(t(2))), t(26), 24));
    }

    #[test]
    fn the_first_message_after_a_longer_silence_than_the_merchant_set_says_it_again() {
        assert!(due(&thread(Some(t(1)), Some(t(1))), t(26), 24));
        assert!(due(&thread(Some(t(1)), Some(t(1))), t(4), 2));
    }

    #[test]
    fn a_person_answering_from_the_page_inbox_makes_the_assistant_say_it_again_when_back() {
        let mut before = thread(Some(t(1)), Some(t(2)));
        before.human_active_until = Some(t(3));
        assert!(due(&before, t(4), 24));
        // Told again after the person: not once more.
        let mut after = thread(Some(t(4)), Some(t(4)));
        after.human_active_until = Some(t(3));
        assert!(!due(&after, t(5), 24));
    }

    #[test]
    fn the_sentence_is_in_the_shoppers_language_with_the_shops_name() {
        let none = BTreeMap::new();
        assert_eq!(
            sentence("Comfy", &none, Some("fr_FR")),
            "Vous échangez avec l'assistant automatique de Comfy. Écrivez « humain » à tout moment pour parler à une personne."
        );
        assert!(
            sentence("Comfy", &none, Some("en_GB"))
                .starts_with("You're chatting with Comfy's automated assistant.")
        );
        assert!(sentence("Comfy", &none, None).starts_with("You're chatting with Comfy's"));
        // A language without a sentence gets English.
        assert!(sentence("Comfy", &none, Some("de_DE")).starts_with("You're chatting"));
    }

    #[test]
    fn the_merchants_wording_comes_first_and_english_stands_in_for_a_language_it_lacks() {
        let wording = BTreeMap::from([
            ("en".to_owned(), "A bot of {shop} here.".to_owned()),
            ("de".to_owned(), "Hier antwortet ein Bot.".to_owned()),
        ]);
        assert_eq!(
            sentence("Comfy", &wording, Some("de_DE")),
            "Hier antwortet ein Bot."
        );
        assert_eq!(sentence("Comfy", &wording, Some("en_US")), "A bot of Comfy here.");
        assert!(sentence("Comfy", &wording, Some("fr_FR")).starts_with("Vous échangez"));
        assert_eq!(sentence("Comfy", &wording, Some("es_ES")), "A bot of Comfy here.");
    }

    #[test]
    fn languages_are_two_lowercase_letters() {
        assert!(is_language("fr"));
        assert!(!is_language("FR"));
        assert!(!is_language("fra"));
        assert!(!is_language("f1"));
    }
}
