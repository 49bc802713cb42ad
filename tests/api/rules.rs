//! Labels and rules: the merchant labels products and room types, agents have skills, and rules decide
//! on every message who should answer. Through real HTTP, the webhook, the workers and the local Graph
//! server.

use serde_json::{Value, json};

use crate::agents::{add_skilled_agent, asks_for_a_person, assigned_to, go_online, thread_of};
use crate::helpers::{
    PAGE_ID, assert_problem, delivery, eventually, now_ms, spawn_messenger_app, text_message,
};

async fn add_rule(m: &crate::helpers::MessengerApp, rule: Value) -> Value {
    let res = m.app.post("/v1/rules", &m.merchant.token, rule).await;
    assert_eq!(res.status(), 201, "adding a rule");
    res.json().await.unwrap()
}

fn refunds_rule() -> Value {
    json!({
        "name": "Refunds to a specialist",
        "when": {"words": ["refund", "rembourser", "remboursé", "broken"]},
        "then": {"hand_over": true, "skill": "refunds", "priority": 10, "label": "refund"}
    })
}

#[tokio::test]
async fn a_shopper_who_asks_to_be_refunded_is_handed_to_the_refunds_specialist_and_told_so() {
    let m = spawn_messenger_app().await;
    let rule = add_rule(&m, refunds_rule()).await;
    let lea = add_skilled_agent(&m, "Léa", "lea@example.com", &["fr"], &[], 3).await;
    let sam = add_skilled_agent(&m, "Sam", "sam@example.com", &["en"], &["refunds"], 3).await;
    go_online(&m, &lea).await;
    go_online(&m, &sam).await;

    let res = m
        .app
        .post_webhook(&delivery(
            PAGE_ID,
            vec![text_message(
                "R1",
                now_ms(),
                "m-r1",
                "Bonjour, je veux me faire REMBOURSER",
            )],
        ))
        .await;
    assert_eq!(res.status(), 200);
    eventually("the shopper is told a person will answer", || async {
        m.graph
            .texts_to("R1")
            .iter()
            .any(|t| t == threadcart::engine::HANDED_OVER)
    })
    .await;
    let thread = asks_for_a_person(&m, "R1").await;
    eventually("the thread is assigned", || async {
        assigned_to(&m, &thread).await.is_some()
    })
    .await;

    let t = thread_of(&m, &thread).await;
    assert_eq!(t["mode"], "agent");
    assert_eq!(
        t["assigned_agent_id"],
        sam.id.as_str(),
        "the skill goes before the language"
    );
    assert_eq!(t["routing_reason"], "skills");
    let context: Value = m
        .app
        .get(&format!("/v1/threads/{thread}/context"), &sam.token)
        .await
        .json()
        .await
        .unwrap();
    let routing = &context["routing"];
    assert_eq!(routing["rule"]["id"], rule["id"]);
    assert_eq!(routing["rule"]["name"], "Refunds to a specialist");
    assert_eq!(routing["priority"], 10);
    assert_eq!(routing["labels"], json!(["refund"]));
    assert_eq!(routing["skill"], "refunds");
    let answers = m.graph.texts_to("R1");
    assert_eq!(
        answers
            .iter()
            .filter(|t| *t == threadcart::engine::HANDED_OVER)
            .count(),
        1,
        "told once, and the bot did not answer the message as well: {answers:?}"
    );
    assert!(
        answers.first().is_some_and(|t| crate::graph::is_disclosure(t)),
        "the automated hand-over says first that an assistant answers: {answers:?}"
    );
}

#[tokio::test]
async fn a_message_no_rule_matches_is_answered_by_the_bot_and_a_disabled_rule_never_applies() {
    let m = spawn_messenger_app().await;
    let off = add_rule(
        &m,
        json!({"name": "Off", "enabled": false, "when": {"words": ["slippers"]},
                                   "then": {"hand_over": true}}),
    )
    .await;
    add_rule(&m, refunds_rule()).await;

    let res = m
        .app
        .post_webhook(&delivery(
            PAGE_ID,
            vec![text_message("B1", now_ms(), "m-b1", "slippers")],
        ))
        .await;
    assert_eq!(res.status(), 200);
    eventually("the bot answers", || async {
        !crate::helpers::sent_to(&m, "B1").is_empty()
    })
    .await;

    assert!(
        !m.graph
            .texts_to("B1")
            .iter()
            .any(|t| t == threadcart::engine::HANDED_OVER)
    );
    assert_eq!(off["enabled"], false);
}

#[tokio::test]
async fn the_owner_lists_changes_and_deletes_rules_and_bad_ones_are_refused_by_field() {
    let m = spawn_messenger_app().await;
    let second = add_rule(
        &m,
        json!({"name": "Big carts first", "position": 5,
        "when": {"cart_value_at_least": {"amount": "150.00", "currency": "EUR"}, "channels": ["messenger"]},
        "then": {"priority": 3}}),
    )
    .await;
    let first = add_rule(
        &m,
        json!({"name": "Summer ad", "position": 1, "when": {"ad_ids": ["AD-7"], "refs": ["summer"]},
        "then": {"label": "summer"}}),
    )
    .await;
    assert_eq!(
        second["when"]["cart_value_at_least"],
        json!({"amount": "150.00", "currency": "EUR"})
    );

    let list: Value = m
        .app
        .get("/v1/rules", &m.merchant.token)
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Summer ad", "Big carts first"], "in evaluation order");

    let id = first["id"].as_str().unwrap();
    let res = m
        .app
        .patch(
            &format!("/v1/rules/{id}"),
            &m.merchant.token,
            json!({"enabled": false, "position": 9}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let changed: Value = res.json().await.unwrap();
    assert_eq!(changed["enabled"], false);
    assert_eq!(
        changed["when"]["ad_ids"],
        json!(["AD-7"]),
        "what is not sent stays"
    );

    let bad = m
        .app
        .post(
            "/v1/rules",
            &m.merchant.token,
            json!({"name": "Nothing", "when": {},
            "then": {"label": "Has Space", "priority": 500}}),
        )
        .await;
    let problem = assert_problem(bad, 422, "validation_failed").await;
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["when", "then.priority", "then.label"]);
    let dollars = m
        .app
        .post(
            "/v1/rules",
            &m.merchant.token,
            json!({"name": "USD", "when": {"cart_value_at_least": {"amount": "1.00", "currency": "USD"}},
            "then": {"priority": 1}}),
        )
        .await;
    assert_problem(dollars, 422, "validation_failed").await;
    let marketing = m.app.key_with_role(&m.merchant, "marketing").await;
    let refused = m.app.post("/v1/rules", &marketing.token, refunds_rule()).await;
    assert_eq!(refused.status(), 403);

    assert_eq!(
        m.app
            .delete(&format!("/v1/rules/{id}"), &m.merchant.token)
            .await
            .status(),
        204
    );
    assert_eq!(
        m.app
            .get(&format!("/v1/rules/{id}"), &m.merchant.token)
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn a_shopper_looking_at_labelled_slippers_goes_to_the_agent_who_knows_slippers() {
    let m = spawn_messenger_app().await;
    let products: Value = m
        .app
        .get("/v1/products", &m.merchant.token)
        .await
        .json()
        .await
        .unwrap();
    let slippers = products["data"][0]["id"].as_str().unwrap().to_owned();
    let res = m
        .app
        .patch(
            &format!("/v1/products/{slippers}"),
            &m.merchant.token,
            json!({"labels": ["Slippers", "wool"]}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let product: Value = res.json().await.unwrap();
    assert_eq!(product["labels"], json!(["slippers", "wool"]));
    let ben = add_skilled_agent(&m, "Ben", "ben@example.com", &["fr"], &["boots"], 3).await;
    let lea = add_skilled_agent(&m, "Léa", "lea@example.com", &["fr"], &["slippers"], 3).await;
    go_online(&m, &ben).await;
    go_online(&m, &lea).await;

    crate::checkout::cart_of_size_42(&m, "S1").await;
    let thread = asks_for_a_person(&m, "S1").await;
    eventually("the thread is assigned", || async {
        assigned_to(&m, &thread).await.is_some()
    })
    .await;

    let t = thread_of(&m, &thread).await;
    assert_eq!(t["assigned_agent_id"], lea.id.as_str());
    assert_eq!(t["routing_reason"], "language_and_skills");
    let context: Value = m
        .app
        .get(&format!("/v1/threads/{thread}/context"), &m.merchant.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(context["routing"]["about"], json!(["slippers", "wool"]));
    let bad = m
        .app
        .patch(
            &format!("/v1/products/{slippers}"),
            &m.merchant.token,
            json!({"labels": ["two words"]}),
        )
        .await;
    assert_problem(bad, 422, "validation_failed").await;
}

#[tokio::test]
async fn labels_come_with_a_feeds_custom_labels_and_on_room_types() {
    let m = spawn_messenger_app().await;
    let csv = "id,title,description,availability,condition,price,link,image_link,brand,custom_label_0,custom_label_1\n\
               BOOT-9,Warm boots,Boots,in stock,new,89.00 EUR,https://example.com/b,https://example.com/b.jpg,Comfy,Winter Boots,boots\n";
    let res = m
        .app
        .post_raw(
            "/v1/catalog/import",
            &m.merchant.token,
            "text/csv",
            csv.as_bytes().to_vec(),
        )
        .await;
    assert_eq!(res.status(), 200);
    let products: Value = m
        .app
        .get("/v1/products?q=boots", &m.merchant.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(products["data"][0]["labels"], json!(["winter-boots", "boots"]));

    let res = m
        .app
        .post(
            "/v1/bookables",
            &m.merchant.token,
            json!({"name": "Suite", "units": 1, "max_guests": 2,
                   "nightly_price": {"amount": "200.00", "currency": "EUR"}, "labels": ["stays"]}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let room: Value = res.json().await.unwrap();
    assert_eq!(room["labels"], json!(["stays"]));
}

#[tokio::test]
async fn a_label_a_rule_puts_on_the_thread_routes_it_to_the_agent_with_that_skill() {
    let m = spawn_messenger_app().await;
    add_rule(
        &m,
        json!({"name": "Slippers talk", "when": {"words": ["pantoufles"]},
               "then": {"label": "slippers", "hand_over": true}}),
    )
    .await;
    let ben = add_skilled_agent(&m, "Ben", "ben@example.com", &["fr"], &["boots"], 3).await;
    let lea = add_skilled_agent(&m, "Léa", "lea@example.com", &["fr"], &["slippers"], 3).await;
    go_online(&m, &ben).await;
    go_online(&m, &lea).await;

    m.app
        .post_webhook(&delivery(
            PAGE_ID,
            vec![text_message("P1", now_ms(), "m-p1", "Vous avez des pantoufles ?")],
        ))
        .await;
    let thread = asks_for_a_person(&m, "P1").await;
    eventually("the thread is assigned", || async {
        assigned_to(&m, &thread).await.is_some()
    })
    .await;

    let t = thread_of(&m, &thread).await;
    assert_eq!(t["assigned_agent_id"], lea.id.as_str());
    assert_eq!(t["routing_reason"], "language_and_skills");
}
