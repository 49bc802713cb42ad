//! The assistant says it is automated: in the first automated message of a thread, the first after a
//! silence longer than the merchant's setting, and the first after a person hands the thread back.

use serde_json::{Value, json};

use crate::graph::is_disclosure;
use crate::helpers::{MessengerApp, PAGE_ID, delivery, eventually, now_ms, spawn_messenger_app, threads};

const FRENCH: &str = "Vous échangez avec l'assistant automatique de Comfy Shoes. Écrivez « humain » à tout \
                      moment pour parler à une personne.";

/// The shopper U1 (locale fr_FR at the local Graph server) writes `text` at `at_ms`.
async fn say(m: &MessengerApp, text: &str, mid: &str, at_ms: i64) {
    let event = json!({"sender": {"id": "U1"}, "recipient": {"id": PAGE_ID}, "timestamp": at_ms,
                       "message": {"mid": mid, "text": text}});
    assert_eq!(
        m.app.post_webhook(&delivery(PAGE_ID, vec![event])).await.status(),
        200
    );
}

/// Waits until `n` texts reached U1, then gives them.
async fn texts(m: &MessengerApp, n: usize) -> Vec<String> {
    eventually(&format!("{n} texts reach the shopper"), || async {
        m.graph.texts_to("U1").len() >= n
    })
    .await;
    m.graph.texts_to("U1")
}

fn disclosures(texts: &[String]) -> usize {
    texts.iter().filter(|t| is_disclosure(t)).count()
}

#[tokio::test]
async fn the_first_answer_of_a_thread_says_in_the_shoppers_language_that_an_assistant_answers_and_the_next_does_not()
 {
    let m = spawn_messenger_app().await;

    say(&m, "hello", "m-1", now_ms()).await;
    let first = texts(&m, 2).await;
    assert_eq!(
        first[0], FRENCH,
        "the very first message says it, before anything else"
    );

    say(&m, "hello again", "m-2", now_ms()).await;
    let after = texts(&m, first.len() + 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(disclosures(&m.graph.texts_to("U1")), 1, "{after:?}");
}

#[tokio::test]
async fn after_a_longer_silence_than_the_merchant_set_the_next_answer_says_it_again() {
    let m = spawn_messenger_app().await;
    let res = m
        .app
        .patch(
            "/v1/merchant",
            &m.merchant.token,
            json!({"bot_disclosure_after_hours": 1}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let hour_ms = 3_600_000;

    say(&m, "hello", "m-1", now_ms() - 2 * hour_ms).await;
    let before = texts(&m, 2).await;
    assert_eq!(disclosures(&before), 1);

    say(&m, "still there?", "m-2", now_ms()).await;
    eventually(
        "the assistant says it again after two hours of silence",
        || async { disclosures(&m.graph.texts_to("U1")) == 2 },
    )
    .await;
}

#[tokio::test]
async fn a_person_handing_the_thread_back_makes_the_next_answer_say_it_again() {
    let m = spawn_messenger_app().await;
    say(&m, "hello", "m-1", now_ms()).await;
    let first = texts(&m, 2).await;
    let thread = threads(&m.app, &m.merchant.token).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for to in ["agent", "bot"] {
        let res = m
            .app
            .post(
                &format!("/v1/threads/{thread}/handover"),
                &m.merchant.token,
                json!({"to": to}),
            )
            .await;
        assert_eq!(res.status(), 200, "handover to {to}");
    }

    say(&m, "hello again", "m-2", now_ms()).await;
    let after = texts(&m, first.len() + 2).await;
    assert_eq!(disclosures(&after), 2, "{after:?}");
    assert_eq!(
        after[first.len()],
        FRENCH,
        "the first answer after the handback says it first"
    );
}

#[tokio::test]
async fn the_merchants_own_sentence_is_used_and_bad_ones_are_refused_naming_the_field() {
    let m = spawn_messenger_app().await;
    let res = m
        .app
        .patch(
            "/v1/merchant",
            &m.merchant.token,
            json!({"bot_disclosure": {"fr": "Ici le robot de {shop}, un humain répond sur demande."}}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["bot_disclosure"]["fr"],
        "Ici le robot de {shop}, un humain répond sur demande."
    );
    assert_eq!(body["bot_disclosure_after_hours"], 24);

    say(&m, "hello", "m-1", now_ms()).await;
    let said = texts(&m, 2).await;
    assert_eq!(
        said[0],
        "Ici le robot de Comfy Shoes, un humain répond sur demande."
    );

    let res = m
        .app
        .patch(
            "/v1/merchant",
            &m.merchant.token,
            json!({"bot_disclosure": {"French": "Bonjour", "en": " ", "de": "x".repeat(301)},
                   "bot_disclosure_after_hours": 0}),
        )
        .await;
    assert_eq!(res.status(), 422);
    let problem: Value = res.json().await.unwrap();
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "bot_disclosure.French",
            "bot_disclosure.de",
            "bot_disclosure.en",
            "bot_disclosure_after_hours"
        ]
    );

    // Null puts the built-in sentences back.
    let res = m
        .app
        .patch("/v1/merchant", &m.merchant.token, json!({"bot_disclosure": null}))
        .await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["bot_disclosure"], json!({}));
}
