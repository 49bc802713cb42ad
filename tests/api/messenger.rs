//! The Messenger channel end to end: signed deliveries in, threads and touches, replies out through the
//! outbox to a local Graph API server.

use serde_json::{Value, json};

use crate::graph::graph_error;
use crate::helpers::{
    MessengerApp, PAGE_ID, VERIFY_TOKEN, ad_postback, assert_problem, delivery, eventually, now_ms,
    outgoing_messages, sign, spawn_messenger_app, text_message, threads,
};

async fn inbox_count(m: &MessengerApp) -> i64 {
    use diesel::{QueryDsl, RunQueryDsl};
    use threadcart::db::schema::webhook_inbox;
    m.app
        .db
        .query_blocking(|conn| webhook_inbox::table.count().get_result::<i64>(conn))
        .unwrap()
}

#[tokio::test]
async fn the_handshake_echoes_the_challenge_for_the_right_token_only() {
    let m = spawn_messenger_app().await;
    let url = |token: &str| {
        format!(
            "{}/webhooks/messenger?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=1158201444",
            m.app.address
        )
    };

    let ok = reqwest::get(url(VERIFY_TOKEN)).await.unwrap();
    let wrong = reqwest::get(url("nope")).await.unwrap();

    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["content-type"], "text/plain");
    assert_eq!(ok.text().await.unwrap(), "1158201444");
    assert_eq!(wrong.status(), 403);
}

#[tokio::test]
async fn a_delivery_with_a_wrong_or_missing_signature_is_refused_and_not_stored() {
    let m = spawn_messenger_app().await;
    let body = delivery(PAGE_ID, vec![text_message("U1", now_ms(), "m-1", "hi")]);
    let post = |signature: Option<String>| {
        let mut req = m
            .app
            .client
            .post(format!("{}/webhooks/messenger", m.app.address))
            .body(body.clone());
        if let Some(s) = signature {
            req = req.header("x-hub-signature-256", s);
        }
        req.send()
    };

    let missing = post(None).await.unwrap();
    let wrong = post(Some(format!("sha256={}", "0".repeat(64)))).await.unwrap();

    assert_eq!(missing.status(), 401);
    assert_eq!(wrong.status(), 401);
    let problem: Value = wrong.json().await.unwrap();
    assert_eq!(problem["code"], "invalid_signature");
    assert_eq!(inbox_count(&m).await, 0);
}

#[tokio::test]
async fn a_signature_is_checked_over_the_raw_bytes_with_unicode_escapes() {
    let m = spawn_messenger_app().await;
    let body = format!(
        r#"{{"object":"page","entry":[{{"id":"{PAGE_ID}","time":1,"messaging":[{{"sender":{{"id":"U1"}},"recipient":{{"id":"{PAGE_ID}"}},"timestamp":{},"message":{{"mid":"m-u","text":"\u00e4\u00f6\u00e5"}}}}]}}]}}"#,
        now_ms()
    );

    let res = m.app.post_webhook(&body).await;

    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "EVENT_RECEIVED");
}

#[tokio::test]
async fn a_delivery_over_one_mebibyte_answers_413() {
    let m = spawn_messenger_app().await;
    let body = format!(
        r#"{{"object":"page","entry":[],"pad":"{}"}}"#,
        "x".repeat(1024 * 1024)
    );

    let res = m.app.post_webhook(&body).await;

    assert_eq!(res.status(), 413);
    assert_eq!(inbox_count(&m).await, 0);
}

#[tokio::test]
async fn webhooks_are_refused_until_the_app_secret_is_set() {
    let app = crate::helpers::spawn_app().await;

    let res = app.post_webhook(&delivery(PAGE_ID, vec![])).await;

    assert_eq!(res.status(), 503);
    let problem: Value = res.json().await.unwrap();
    assert_eq!(problem["code"], "webhooks_disabled");
}

#[tokio::test]
async fn an_ad_referral_opens_a_thread_with_its_touch_and_a_greeting_naming_the_ad() {
    let m = spawn_messenger_app().await;
    let body = delivery(
        PAGE_ID,
        vec![ad_postback(
            "U1",
            now_ms(),
            "pb-1",
            "AD-42",
            "Comfy slippers",
            "SLIP-01",
        )],
    );

    let res = m.app.post_webhook(&body).await;

    assert_eq!(res.status(), 200);
    eventually("the greeting reaches the Graph API", || async {
        !m.graph.answers_to("U1").is_empty()
    })
    .await;
    let texts = m.graph.answers_to("U1");
    assert_eq!(
        texts,
        ["Hi Anna! Thanks for your interest in “Comfy slippers”. Here it is:"]
    );
    let sent = &m.graph.messages()[0];
    assert_eq!(sent["messaging_type"], "RESPONSE");
    assert!(sent.get("tag").is_none());
    assert!(
        sent["message"]["metadata"]
            .as_str()
            .unwrap()
            .starts_with("threadcart:")
    );
    let call = m
        .graph
        .received()
        .into_iter()
        .find(|r| r.path == format!("/v25.0/{PAGE_ID}/messages") && r.body.get("message").is_some())
        .unwrap();
    assert_eq!(
        call.param("access_token").as_deref(),
        Some("EAAG-page-token-1234")
    );
    assert_eq!(call.param("appsecret_proof").map(|p| p.len()), Some(64));
    let list = threads(&m.app, &m.merchant.token).await;
    assert_eq!(list.len(), 1);
    let thread: Value = m
        .app
        .get(
            &format!("/v1/threads/{}", list[0]["id"].as_str().unwrap()),
            &m.merchant.token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(thread["customer"]["psid"], "U1");
    assert_eq!(thread["customer"]["first_name"], "Anna");
    assert_eq!(thread["latest_ad_id"], "AD-42");
    assert_eq!(thread["window"]["open"], true);
    let touch = &thread["touches"][0];
    assert_eq!(touch["source"], "ADS");
    assert_eq!(touch["ad_id"], "AD-42");
    assert_eq!(touch["ref"], "c=xmas24");
    assert_eq!(touch["product_id"], "SLIP-01");
    assert_eq!(touch["ads_context_data"]["post_id"], "POST-1");
    assert_eq!(
        touch["ads_context_data"]["photo_url"],
        "https://example.com/ad.jpg"
    );
}

#[tokio::test]
async fn the_same_delivery_twice_has_one_effect() {
    let m = spawn_messenger_app().await;
    let body = delivery(
        PAGE_ID,
        vec![ad_postback("U1", now_ms(), "pb-1", "AD-1", "Slippers", "SLIP-01")],
    );

    assert_eq!(m.app.post_webhook(&body).await.status(), 200);
    assert_eq!(m.app.post_webhook(&body).await.status(), 200);

    eventually("the greeting is sent", || async {
        !m.graph.answers_to("U1").is_empty()
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(m.graph.answers_to("U1").len(), 1, "one greeting only");
    let thread = &threads(&m.app, &m.merchant.token).await[0];
    let full: Value = m
        .app
        .get(
            &format!("/v1/threads/{}", thread["id"].as_str().unwrap()),
            &m.merchant.token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(full["touches"].as_array().unwrap().len(), 1, "one touch only");
}

#[tokio::test]
async fn sixty_deliveries_at_once_some_sent_twice_are_each_acknowledged_stored_and_applied_once() {
    let m = spawn_messenger_app().await;
    let ts = now_ms();
    // Thirty shoppers, each delivery sent twice, all at once: the writers store them in groups.
    let bodies: Vec<String> = (0..30)
        .map(|i| {
            delivery(
                PAGE_ID,
                vec![ad_postback(
                    &format!("G{i}"),
                    ts + i,
                    &format!("pb-g{i}"),
                    "AD-G",
                    "Slippers",
                    "SLIP-01",
                )],
            )
        })
        .collect();
    let posts = bodies
        .iter()
        .chain(bodies.iter())
        .map(|body| m.app.post_webhook(body));

    let statuses: Vec<u16> = futures_util::future::join_all(posts)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();

    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(inbox_count(&m).await, 60, "every delivery stored before its 200");
    eventually("every shopper is greeted", || async {
        (0..30).all(|i| !m.graph.answers_to(&format!("G{i}")).is_empty())
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    for i in 0..30 {
        let answers = m.graph.answers_to(&format!("G{i}"));
        assert_eq!(
            answers.iter().filter(|a| a.starts_with("Hi Anna!")).count(),
            1,
            "G{i} is greeted once: {answers:?}"
        );
    }
    assert_eq!(threads(&m.app, &m.merchant.token).await.len(), 30);
}

#[tokio::test]
async fn a_delivery_is_stored_split_into_its_events_before_it_is_acknowledged() {
    let m = spawn_messenger_app().await;
    let ts = now_ms();
    let events: Vec<Value> = (0..3)
        .map(|i| {
            ad_postback(
                &format!("U{i}"),
                ts + i,
                &format!("pb-{i}"),
                "AD-1",
                "Slippers",
                "S",
            )
        })
        .collect();

    assert_eq!(m.app.post_webhook(&delivery(PAGE_ID, events)).await.status(), 200);

    use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
    use threadcart::db::schema::{inbound_events as messenger_events, webhook_inbox};
    // No worker has run in between: the 200 came after the events were stored.
    let (events, unsplit) = m
        .app
        .db
        .query_blocking(|conn| {
            let events = messenger_events::table.count().get_result::<i64>(conn)?;
            let unsplit = webhook_inbox::table
                .filter(webhook_inbox::status.eq("pending"))
                .count()
                .get_result::<i64>(conn)?;
            Ok((events, unsplit))
        })
        .unwrap();
    assert_eq!((events, unsplit), (3, 0));
}

#[tokio::test]
async fn a_delivery_for_a_known_shopper_a_new_one_twice_and_an_unknown_page_stores_each_event_on_its_shopper()
{
    let m = spawn_messenger_app().await;
    thread_with_greeting(&m, "KNOWN").await;
    let ts = now_ms();
    let page = |id: &str, messaging: Vec<Value>| json!({"id": id, "time": 1, "messaging": messaging});
    let body = json!({"object": "page", "entry": [
        page(PAGE_ID, vec![
            text_message("KNOWN", ts, "m-known", "hello again"),
            text_message("NEW", ts + 1, "m-new-1", "hi"),
            text_message("NEW", ts + 2, "m-new-2", "anyone there?"),
        ]),
        page("999", vec![json!({"sender": {"id": "STRANGER"}, "recipient": {"id": "999"}, "timestamp": ts,
                                "message": {"mid": "m-stranger", "text": "hello"}})]),
    ]})
    .to_string();

    assert_eq!(m.app.post_webhook(&body).await.status(), 200);

    use diesel::prelude::*;
    use threadcart::db::schema::{customers, inbound_events};
    // Stored before the 200, each on its shopper (the new one created once), the stranger's on none.
    let mut stored: Vec<(String, String, Option<String>)> = m
        .app
        .db
        .query_blocking(|conn| {
            inbound_events::table
                .left_join(customers::table.on(customers::id.nullable().eq(inbound_events::customer_id)))
                .filter(inbound_events::dedup_key.like("m:m-%"))
                .select((
                    inbound_events::dedup_key,
                    inbound_events::status,
                    customers::psid.nullable(),
                ))
                .load(conn)
        })
        .unwrap();
    stored.sort();
    let on_shoppers: Vec<(&str, Option<&str>)> = stored
        .iter()
        .map(|(key, _, psid)| (key.as_str(), psid.as_deref()))
        .collect();
    assert_eq!(
        on_shoppers,
        [
            ("m:m-known", Some("KNOWN")),
            ("m:m-new-1", Some("NEW")),
            ("m:m-new-2", Some("NEW")),
            ("m:m-stranger", None)
        ]
    );
    let statuses: Vec<&str> = stored.iter().map(|(_, status, _)| status.as_str()).collect();
    assert!(
        statuses[..3].iter().all(|s| ["pending", "done"].contains(s)) && statuses[3] == "unknown_page",
        "{statuses:?}"
    );
    let new_customers = m
        .app
        .db
        .query_blocking(|conn| {
            customers::table
                .filter(customers::psid.eq("NEW"))
                .count()
                .get_result::<i64>(conn)
        })
        .unwrap();
    assert_eq!(new_customers, 1);
    eventually("the new shopper is answered", || async {
        !m.graph.answers_to("NEW").is_empty()
    })
    .await;
}

#[tokio::test]
async fn a_sent_message_shows_metas_message_id_in_the_thread() {
    let m = spawn_messenger_app().await;
    let thread = thread_with_greeting(&m, "U1").await;

    eventually("the sent greeting has Meta's id", || async {
        outgoing_messages(&m.app, &m.merchant.token, &thread)
            .await
            .iter()
            .any(|msg| {
                msg["delivery"] == "sent" && msg["mid"].as_str().is_some_and(|mid| mid.starts_with("m_"))
            })
    })
    .await;
}

#[tokio::test]
async fn a_batch_of_fifty_events_from_fifty_shoppers_is_all_processed() {
    let m = spawn_messenger_app().await;
    let ts = now_ms();
    let events: Vec<Value> = (0..50)
        .map(|i| {
            ad_postback(
                &format!("U{i}"),
                ts + i,
                &format!("pb-{i}"),
                "AD-7",
                "Boots",
                "BOOT-01",
            )
        })
        .collect();

    assert_eq!(m.app.post_webhook(&delivery(PAGE_ID, events)).await.status(), 200);

    // Each: the assistant saying it is automated, a text and a card.
    eventually("fifty greetings are sent", || async {
        m.graph.messages().len() == 150
    })
    .await;
    assert_eq!(threads(&m.app, &m.merchant.token).await.len(), 50);
}

#[tokio::test]
async fn a_shoppers_events_are_applied_in_timestamp_order_whatever_the_delivery_order() {
    let m = spawn_messenger_app().await;
    let ts = now_ms();
    let shuffled = vec![
        text_message("U1", ts + 30, "m-3", "third"),
        text_message("U1", ts + 10, "m-1", "first"),
        text_message("U1", ts + 20, "m-2", "second"),
    ];

    m.app.post_webhook(&delivery(PAGE_ID, shuffled)).await;

    let token = m.merchant.token.clone();
    eventually("three messages are stored", || async {
        let list = threads(&m.app, &token).await;
        if list.is_empty() {
            return false;
        }
        let body: Value = m
            .app
            .get(
                &format!(
                    "/v1/threads/{}/messages?order=oldest",
                    list[0]["id"].as_str().unwrap()
                ),
                &token,
            )
            .await
            .json()
            .await
            .unwrap();
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["direction"] == "in")
            .count()
            == 3
    })
    .await;
    let list = threads(&m.app, &token).await;
    let body: Value = m
        .app
        .get(
            &format!(
                "/v1/threads/{}/messages?order=oldest",
                list[0]["id"].as_str().unwrap()
            ),
            &token,
        )
        .await
        .json()
        .await
        .unwrap();
    let texts: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["direction"] == "in")
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["first", "second", "third"]);
}

#[tokio::test]
async fn events_for_an_unknown_page_are_recorded_and_skipped() {
    let m = spawn_messenger_app().await;
    let body = json!({"object": "page", "entry": [{"id": "999", "time": 1, "messaging": [
        {"sender": {"id": "U1"}, "recipient": {"id": "999"}, "timestamp": now_ms(),
         "message": {"mid": "m-x", "text": "hello"}}]}]})
    .to_string();

    assert_eq!(m.app.post_webhook(&body).await.status(), 200);

    eventually("the delivery is split", || async {
        use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
        use threadcart::db::schema::inbound_events as messenger_events;
        m.app
            .db
            .query_blocking(|conn| {
                messenger_events::table
                    .filter(messenger_events::status.eq("unknown_page"))
                    .count()
                    .get_result::<i64>(conn)
            })
            .unwrap()
            == 1
    })
    .await;
    assert!(
        m.graph.messages().is_empty(),
        "nothing is sent for an unknown Page"
    );
    assert!(threads(&m.app, &m.merchant.token).await.is_empty());
}

async fn thread_with_greeting(m: &MessengerApp, psid: &str) -> String {
    m.app
        .post_webhook(&delivery(
            PAGE_ID,
            vec![ad_postback(
                psid,
                now_ms(),
                &format!("pb-{psid}"),
                "AD-1",
                "Slippers",
                "SLIP-01",
            )],
        ))
        .await;
    eventually("the greeting is sent", || async {
        !m.graph.answers_to(psid).is_empty()
    })
    .await;
    threads(&m.app, &m.merchant.token).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn an_agent_message_inside_the_window_is_sent_as_a_response() {
    let m = spawn_messenger_app().await;
    let thread = thread_with_greeting(&m, "U1").await;

    let res = m
        .app
        .post(
            &format!("/v1/threads/{thread}/messages"),
            &m.merchant.token,
            json!({"text": "Hello, this is Léa from Comfy Shoes."}),
        )
        .await;

    assert_eq!(res.status(), 202);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["messaging_type"], "RESPONSE");
    eventually("the agent's message is sent", || async {
        m.graph.answers_to("U1").len() == 2
    })
    .await;
    let detail: Value = m
        .app
        .get(&format!("/v1/threads/{thread}"), &m.merchant.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(detail["mode"], "agent", "an agent writing takes the thread over");
}

#[tokio::test]
async fn control_characters_are_stripped_from_an_agents_text_but_newlines_and_tabs_kept() {
    // Arrange
    let m = spawn_messenger_app().await;
    let thread = thread_with_greeting(&m, "U1").await;

    // Act: a bell, an escape sequence, a NUL, CR LF, DEL and a C1 control, with a tab and a newline.
    let res = m
        .app
        .post(
            &format!("/v1/threads/{thread}/messages"),
            &m.merchant.token,
            json!({"text": "Hello\u{0007} Léa\u{001b}[31m here\u{0000}\r\nSize:\t42\u{007f}\u{0085}!"}),
        )
        .await;
    let only_controls = m
        .app
        .post(
            &format!("/v1/threads/{thread}/messages"),
            &m.merchant.token,
            json!({"text": "\u{0007}\u{001b}"}),
        )
        .await;

    // Assert
    assert_eq!(res.status(), 202);
    assert_problem(only_controls, 422, "validation_failed").await;
    eventually("the agent's message is sent", || async {
        m.graph.answers_to("U1").len() == 2
    })
    .await;
    assert_eq!(m.graph.answers_to("U1")[1], "Hello Léa[31m here\nSize:\t42!");
}

fn close_window(m: &MessengerApp, thread: &str, hours_ago: i64) {
    use diesel::{QueryDsl, RunQueryDsl};
    use threadcart::db::schema::threads;
    use threadcart::db::{DbUuid, now};
    let id = DbUuid(thread.parse().unwrap());
    let last = now() - chrono::Duration::hours(hours_ago);
    m.app
        .db
        .query_blocking(|conn| {
            diesel::update(threads::table.find(id))
                .set((
                    diesel::ExpressionMethods::eq(threads::last_inbound_at, last),
                    diesel::ExpressionMethods::eq(
                        threads::window_ends_at,
                        last + chrono::Duration::hours(24),
                    ),
                ))
                .execute(conn)
        })
        .unwrap();
}

#[tokio::test]
async fn an_agent_message_outside_the_window_is_refused_with_the_windows_end() {
    let m = spawn_messenger_app().await;
    let thread = thread_with_greeting(&m, "U1").await;
    close_window(&m, &thread, 30);

    let res = m
        .app
        .post(
            &format!("/v1/threads/{thread}/messages"),
            &m.merchant.token,
            json!({"text": "Hello?"}),
        )
        .await;

    let problem = crate::helpers::assert_problem(res, 409, "messaging_window_closed").await;
    assert!(problem["detail"].as_str().unwrap().contains("closed at"));
}

#[tokio::test]
async fn a_page_with_the_human_agent_permission_answers_within_seven_days_with_the_tag() {
    let m = spawn_messenger_app().await;
    let thread = thread_with_greeting(&m, "U1").await;
    close_window(&m, &thread, 48);
    let res = m
        .app
        .patch(
            &format!("/v1/pages/{PAGE_ID}"),
            &m.merchant.token,
            json!({"human_agent_enabled": true}),
        )
        .await;
    assert_eq!(res.status(), 200);

    let res = m
        .app
        .post(
            &format!("/v1/threads/{thread}/messages"),
            &m.merchant.token,
            json!({"text": "Sorry for the wait"}),
        )
        .await;

    assert_eq!(res.status(), 202);
    eventually("the tagged message is sent", || async {
        m.graph.answers_to("U1").len() == 2
    })
    .await;
    let sent = m
        .graph
        .messages()
        .into_iter()
        .find(|b| b["message"]["text"] == "Sorry for the wait")
        .unwrap();
    assert_eq!(sent["messaging_type"], "MESSAGE_TAG");
    assert_eq!(sent["tag"], "HUMAN_AGENT");
}

#[tokio::test]
async fn a_temporary_send_failure_is_retried_until_it_goes_through() {
    let m = spawn_messenger_app().await;
    m.graph.fail_next_sends(vec![
        (
            500,
            graph_error(1200, 0, "Temporary send message failure. Please try again later"),
        ),
        (
            400,
            graph_error(613, 0, "Calls to this API have exceeded the rate limit"),
        ),
    ]);

    m.app
        .post_webhook(&delivery(
            PAGE_ID,
            vec![ad_postback("U1", now_ms(), "pb-1", "AD-1", "Slippers", "S")],
        ))
        .await;

    // The first message (the assistant saying it is automated) is refused twice, then goes through,
    // and the greeting follows it.
    eventually("the first message goes through on the third try", || async {
        m.graph.texts_to("U1").len() == 4
    })
    .await;
    let texts = m.graph.texts_to("U1");
    assert!(
        texts[..3].iter().all(|t| crate::graph::is_disclosure(t)),
        "{texts:?}"
    );
    assert!(!crate::graph::is_disclosure(&texts[3]));
}

#[tokio::test]
async fn a_send_outside_the_window_is_not_retried() {
    let m = spawn_messenger_app().await;
    m.graph.fail_next_sends(vec![(
        400,
        graph_error(
            10,
            2018278,
            "(#10) This message is sent outside of allowed window.",
        ),
    )]);

    m.app
        .post_webhook(&delivery(
            PAGE_ID,
            vec![ad_postback("U1", now_ms(), "pb-1", "AD-1", "Slippers", "S")],
        ))
        .await;

    eventually("the greeting is tried", || async {
        m.graph.answers_to("U1").len() == 1
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(m.graph.answers_to("U1").len(), 1, "never retried");
}

#[tokio::test]
async fn an_invalid_page_token_marks_the_page_broken_until_a_new_token_is_given() {
    let m = spawn_messenger_app().await;
    m.graph.fail_next_sends(vec![(
        400,
        graph_error(190, 460, "Error validating access token"),
    )]);

    m.app
        .post_webhook(&delivery(
            PAGE_ID,
            vec![ad_postback("U1", now_ms(), "pb-1", "AD-1", "Slippers", "S")],
        ))
        .await;

    let token = m.merchant.token.clone();
    eventually("the Page shows a broken token", || async {
        let page: Value = m
            .app
            .get(&format!("/v1/pages/{PAGE_ID}"), &token)
            .await
            .json()
            .await
            .unwrap();
        page["token_status"] == "broken"
    })
    .await;
    m.graph.knows_page(PAGE_ID, "EAAG-new-token-5678");
    let page: Value = m
        .app
        .patch(
            &format!("/v1/pages/{PAGE_ID}"),
            &token,
            json!({"access_token": "EAAG-new-token-5678"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["token_status"], "ok");
    assert_eq!(page["token_last4"], "5678");
}

#[tokio::test]
async fn a_human_answering_from_the_page_inbox_pauses_the_bot() {
    let m = spawn_messenger_app().await;
    thread_with_greeting(&m, "U1").await;
    let echo = json!({"sender": {"id": PAGE_ID}, "recipient": {"id": "U1"}, "timestamp": now_ms(),
        "message": {"is_echo": true, "app_id": 263902037430900_i64, "mid": "m-human", "text": "Hi, I'm Léa"}});
    m.app.post_webhook(&delivery(PAGE_ID, vec![echo])).await;
    let token = m.merchant.token.clone();
    eventually("the bot is paused", || async {
        threads(&m.app, &token).await[0]["bot_paused_until"].is_string()
    })
    .await;

    m.app
        .post_webhook(&delivery(
            PAGE_ID,
            vec![ad_postback(
                "U1",
                now_ms() + 5,
                "pb-again",
                "AD-2",
                "Boots",
                "BOOT-01",
            )],
        ))
        .await;

    eventually("the new touch is recorded", || async {
        threads(&m.app, &token).await[0]["latest_ad_id"] == "AD-2"
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        m.graph.answers_to("U1").len(),
        1,
        "the bot stays quiet while a human is active"
    );
}

#[tokio::test]
async fn the_first_message_after_an_ad_opens_a_seven_day_window() {
    let m = spawn_messenger_app().await;
    let thread = thread_with_greeting(&m, "U1").await;

    m.app
        .post_webhook(&delivery(
            PAGE_ID,
            vec![text_message("U1", now_ms(), "m-1", "Do you have size 42?")],
        ))
        .await;

    let token = m.merchant.token.clone();
    eventually("the window is extended to seven days", || async {
        let t: Value = m
            .app
            .get(&format!("/v1/threads/{thread}"), &token)
            .await
            .json()
            .await
            .unwrap();
        let ends = t["window"]["ends_at"].as_str().unwrap_or_default().to_owned();
        chrono::DateTime::parse_from_rfc3339(&ends)
            .is_ok_and(|e| e.with_timezone(&chrono::Utc) > chrono::Utc::now() + chrono::Duration::days(6))
    })
    .await;
}

#[tokio::test]
async fn a_delivery_stored_before_a_crash_is_processed_exactly_once_after_restart() {
    let database = crate::helpers::TestDatabase::new();
    // The first process stored and acknowledged the delivery, then died before processing it.
    let db = crate::helpers::comfy_shoes_with_page(&database);
    let body = delivery(
        PAGE_ID,
        vec![ad_postback("U1", now_ms(), "pb-1", "AD-1", "Slippers", "S")],
    );
    db.query_blocking(|conn| threadcart::conversations::inbox::store_delivery(conn, "messenger", &body))
        .unwrap();
    drop(db);

    let graph = crate::graph::FakeGraph::start().await;
    let env = crate::helpers::messenger_env(&graph);
    let extra: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let _app = crate::helpers::spawn_app_on(database, &extra).await;

    eventually("the stored delivery is processed", || async {
        graph.answers_to("U1").len() == 2
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        graph.answers_to("U1"),
        [
            "Hi Anna! Welcome to Comfy Shoes. Here is what we have:",
            "Our catalog is empty for now. Would you like to talk to a person?"
        ]
    );
}

/// A second server process on the first one's database; answers its address.
async fn second_process(first: &MessengerApp) -> String {
    let env = crate::helpers::messenger_env(&first.graph);
    let mut extra: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    extra.push(("THREADCART_JWT_SECRET", crate::helpers::JWT_SECRET));
    let config = crate::helpers::test_config(&first.app.database.url, &extra);
    let db = threadcart::db::Db::connect(config.database_url(), 4).unwrap();
    let second = threadcart::startup::Application::build(config, db).unwrap();
    let address = format!("http://127.0.0.1:{}", second.port());
    tokio::spawn(second.run_until_stopped());
    address
}

#[tokio::test]
async fn two_server_processes_on_one_database_do_nothing_twice() {
    let first = spawn_messenger_app().await;
    let second_address = second_process(&first).await;
    let ts = now_ms();

    for i in 0..30 {
        let body = delivery(
            PAGE_ID,
            vec![ad_postback(
                &format!("U{}", i % 10),
                ts + i,
                &format!("pb-{i}"),
                "AD-1",
                "Slippers",
                "S",
            )],
        );
        // Every delivery reaches both processes, as Meta's retries could make happen.
        for address in [&first.app.address, &second_address] {
            let res = first
                .app
                .client
                .post(format!("{address}/webhooks/messenger"))
                .header("x-hub-signature-256", sign(body.as_bytes()))
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
        }
    }

    eventually("thirty greetings are sent", || async {
        first.graph.messages().len() >= 70
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    assert_eq!(
        first.graph.messages().len(),
        70,
        "each event answered exactly once (a text and a card), and each of the ten shoppers told once \
         that an automated assistant answers"
    );
    assert_eq!(threads(&first.app, &first.merchant.token).await.len(), 10);
}

#[tokio::test]
async fn a_refused_profile_is_tolerated_and_the_greeting_goes_without_a_name() {
    let m = spawn_messenger_app().await;
    m.graph.refuse_profiles();

    m.app
        .post_webhook(&delivery(
            PAGE_ID,
            vec![ad_postback("U1", now_ms(), "pb-1", "AD-1", "Slippers", "S")],
        ))
        .await;

    eventually("the greeting is sent", || async {
        !m.graph.answers_to("U1").is_empty()
    })
    .await;
    assert_eq!(
        m.graph.answers_to("U1"),
        ["Hi! Welcome to Comfy Shoes. Here is what we have:"]
    );
    let profile_call = m
        .graph
        .received()
        .into_iter()
        .find(|r| r.method == "GET" && !r.path.ends_with("/me"))
        .unwrap();
    assert_eq!(profile_call.path, "/v25.0/U1");
    assert!(profile_call.param("fields").unwrap().contains("first_name"));
}

#[tokio::test]
async fn a_failing_event_is_dead_lettered_listed_and_replayed() {
    use diesel::RunQueryDsl;
    let m = spawn_messenger_app().await;
    // Break what the event needs, so every attempt fails.
    m.app
        .db
        .query_blocking(|conn| diesel::sql_query("ALTER TABLE touches RENAME TO touches_away").execute(conn))
        .unwrap();
    m.app
        .post_webhook(&delivery(
            PAGE_ID,
            vec![ad_postback("U1", now_ms(), "pb-1", "AD-1", "Slippers", "S")],
        ))
        .await;
    let token = m.merchant.token.clone();
    eventually("the event is dead-lettered", || async {
        let body: Value = m
            .app
            .get("/v1/webhook-events?status=dead", &token)
            .await
            .json()
            .await
            .unwrap();
        body["data"].as_array().is_some_and(|d| d.len() == 1)
    })
    .await;
    let dead: Value = m
        .app
        .get("/v1/webhook-events", &token)
        .await
        .json()
        .await
        .unwrap();
    let event = &dead["data"][0];
    assert_eq!(event["kind"], "postback");
    assert_eq!(event["attempts"], 8);
    assert!(event["last_error"].as_str().unwrap().contains("touches"));
    assert!(m.graph.answers_to("U1").is_empty());
    m.app
        .db
        .query_blocking(|conn| diesel::sql_query("ALTER TABLE touches_away RENAME TO touches").execute(conn))
        .unwrap();

    let res = m
        .app
        .post(
            &format!("/v1/webhook-events/{}/replay", event["id"].as_str().unwrap()),
            &token,
            json!({}),
        )
        .await;

    assert_eq!(res.status(), 202);
    eventually("the replayed event is answered", || async {
        m.graph.answers_to("U1").len() == 1
    })
    .await;
    let dead: Value = m
        .app
        .get("/v1/webhook-events", &token)
        .await
        .json()
        .await
        .unwrap();
    assert!(dead["data"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn a_referral_into_an_existing_thread_adds_a_touch_and_reopens_the_window() {
    let m = spawn_messenger_app().await;
    let thread = thread_with_greeting(&m, "U1").await;
    close_window(&m, &thread, 30);
    let referral = json!({"sender": {"id": "U1"}, "recipient": {"id": PAGE_ID}, "timestamp": now_ms(),
        "referral": {"ref": "spring_sale", "source": "SHORTLINK", "type": "OPEN_THREAD"}});

    m.app.post_webhook(&delivery(PAGE_ID, vec![referral])).await;

    eventually("a second greeting is sent", || async {
        m.graph.answers_to("U1").len() == 2
    })
    .await;
    assert_eq!(
        m.graph.answers_to("U1")[1],
        "Hi Anna! Welcome to Comfy Shoes. Here is what we have:"
    );
    let t: Value = m
        .app
        .get(&format!("/v1/threads/{thread}"), &m.merchant.token)
        .await
        .json()
        .await
        .unwrap();
    let touches = t["touches"].as_array().unwrap();
    assert_eq!(touches.len(), 2);
    assert_eq!(touches[0]["source"], "ADS");
    assert_eq!(touches[1]["source"], "SHORTLINK");
    assert_eq!(touches[1]["ref"], "spring_sale");
    assert_eq!(t["window"]["open"], true);
}

#[tokio::test]
async fn every_event_type_is_applied_once_and_marked_done() {
    use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
    use threadcart::db::schema::inbound_events as messenger_events;
    let m = spawn_messenger_app().await;
    let ts = now_ms();
    let events = vec![
        json!({"sender": {"id": "U1"}, "recipient": {"id": PAGE_ID}, "timestamp": ts,
            "message": {"mid": "m-1", "text": "Blue", "quick_reply": {"payload": "COLOR_BLUE"}}}),
        json!({"sender": {"id": "U1"}, "recipient": {"id": PAGE_ID}, "timestamp": ts + 1,
            "message": {"mid": "m-2", "attachments": [{"type": "image", "payload": {"url": "https://example.com/x.jpg"}}]}}),
        json!({"sender": {"id": "U1"}, "recipient": {"id": PAGE_ID}, "timestamp": ts + 2,
            "postback": {"title": "Shop", "payload": "SHOP", "mid": "pb-2"}}),
        json!({"sender": {"id": "U1"}, "recipient": {"id": PAGE_ID}, "timestamp": ts + 3,
            "delivery": {"mids": ["m_1"], "watermark": ts}}),
        json!({"sender": {"id": "U1"}, "recipient": {"id": PAGE_ID}, "timestamp": ts + 4,
            "read": {"watermark": ts + 3}}),
        json!({"sender": {"id": "U1"}, "recipient": {"id": PAGE_ID}, "timestamp": ts + 5,
            "reaction": {"reaction": "love", "emoji": "\u{2764}", "action": "react", "mid": "m_1"}}),
        json!({"sender": {"id": "U1"}, "recipient": {"id": PAGE_ID}, "timestamp": ts + 6,
            "optin": {"type": "notification_messages", "payload": "", "notification_messages_token": "tok"}}),
        json!({"sender": {"id": PAGE_ID}, "recipient": {"id": "U1"}, "timestamp": ts + 7,
            "message": {"is_echo": true, "app_id": 1517776481860111_i64, "mid": "m-echo",
                        "metadata": "threadcart:00000000-0000-0000-0000-000000000000", "text": "ours"}}),
    ];

    m.app.post_webhook(&delivery(PAGE_ID, events)).await;

    let count = |status: &'static str| {
        let db = m.app.db.clone();
        async move {
            db.query_blocking(move |conn| {
                messenger_events::table
                    .filter(messenger_events::status.eq(status))
                    .count()
                    .get_result::<i64>(conn)
            })
            .unwrap()
        }
    };
    eventually("all eight events are done", || async { count("done").await == 8 }).await;
    assert_eq!(count("pending").await, 0);
    let thread = &threads(&m.app, &m.merchant.token).await[0];
    assert!(
        thread["bot_paused_until"].is_null(),
        "our own echo does not pause the bot"
    );
    let messages: Value = m
        .app
        .get(
            &format!(
                "/v1/threads/{}/messages?order=oldest",
                thread["id"].as_str().unwrap()
            ),
            &m.merchant.token,
        )
        .await
        .json()
        .await
        .unwrap();
    let kinds: Vec<&str> = messages["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["direction"] == "in")
        .map(|m| m["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["quick_reply", "attachment", "postback"]);
    assert_eq!(messages["data"][0]["payload"], "COLOR_BLUE");
}

#[tokio::test]
async fn a_shopper_who_cannot_be_reached_is_not_retried_and_the_message_says_why() {
    let m = spawn_messenger_app().await;
    m.graph.fail_next_sends(vec![(
        400,
        graph_error(551, 1545041, "This person isn't available right now."),
    )]);

    m.app
        .post_webhook(&delivery(
            PAGE_ID,
            vec![ad_postback("U1", now_ms(), "pb-1", "AD-1", "Slippers", "S")],
        ))
        .await;

    let token = m.merchant.token.clone();
    eventually("the greeting is marked failed", || async {
        let list = threads(&m.app, &token).await;
        let Some(t) = list.first() else { return false };
        let body: Value = m
            .app
            .get(
                &format!("/v1/threads/{}/messages", t["id"].as_str().unwrap()),
                &token,
            )
            .await
            .json()
            .await
            .unwrap();
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|msg| msg["delivery"] == "failed" && msg["delivery_error"].as_str().unwrap().contains("551"))
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(m.graph.answers_to("U1").len(), 1, "never retried");
}

#[tokio::test]
async fn two_processes_folding_funnel_events_into_the_daily_rollup_count_each_once() {
    let first = spawn_messenger_app().await;
    first
        .app
        .create_product(
            &first.merchant.token,
            crate::helpers::product_body("S", "Slippers", &[("S-42", "42", "49.90", 5)]),
        )
        .await;
    let second_address = second_process(&first).await;
    let ts = now_ms();
    // Forty shoppers arrive from the ad, through either process: each is shown the slippers.
    for i in 0..40 {
        let body = delivery(
            PAGE_ID,
            vec![ad_postback(
                &format!("F{i}"),
                ts + i,
                &format!("pb-f{i}"),
                "AD-F",
                "Slippers",
                "S",
            )],
        );
        let address = if i % 2 == 0 {
            &first.app.address
        } else {
            &second_address
        };
        let res = first
            .app
            .client
            .post(format!("{address}/webhooks/messenger"))
            .header("x-hub-signature-256", sign(body.as_bytes()))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    let counts = || {
        use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
        use threadcart::db::schema::{funnel_daily, funnel_events};
        first
            .app
            .db
            .query_blocking(|conn| {
                let events: i64 = funnel_events::table.count().get_result(conn)?;
                let pending: i64 = funnel_events::table
                    .filter(funnel_events::rolled_up.eq(false))
                    .count()
                    .get_result(conn)?;
                let rolled: i64 = funnel_daily::table
                    .select(funnel_daily::events)
                    .load::<i64>(conn)?
                    .iter()
                    .sum();
                diesel::QueryResult::Ok((events, pending, rolled))
            })
            .unwrap()
    };

    eventually(
        "the forty shoppers' product views are recorded and folded",
        || async {
            let (events, pending, _) = counts();
            events >= 80 && pending == 0
        },
    )
    .await;

    let (events, _, rolled) = counts();
    assert_eq!(rolled, events, "each funnel event counted once in the rollup");
    let row = first.app.funnel_row_of_ad(&first.merchant.token, "AD-F").await;
    assert_eq!(row["product_views"], 40, "{row}");
}

/// A `threadcart serve` process of its own on `database_url`, talking to `graph` (killed with SIGKILL to
/// crash it); answers once it answers `/healthz`.
async fn serve_process(database_url: &str, graph: &crate::graph::FakeGraph) -> (std::process::Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("http://127.0.0.1:{port}");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_threadcart"));
    command
        .arg("serve")
        .env("DATABASE_URL", database_url)
        .env("THREADCART_ADDR", format!("127.0.0.1:{port}"))
        .env("THREADCART_DEMO", "false")
        .env("THREADCART_SECRETS_KEY", crate::helpers::SECRETS_KEY)
        .env("THREADCART_JWT_SECRET", crate::helpers::JWT_SECRET)
        .env("THREADCART_WORKER_CONCURRENCY", "4")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    for (name, value) in crate::helpers::messenger_env(graph) {
        command.env(name, value);
    }
    let mut child = command.spawn().unwrap();
    for _ in 0..200 {
        if reqwest::get(format!("{address}/healthz"))
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return (child, address);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the server never answered /healthz");
}

#[tokio::test]
async fn a_server_killed_while_acknowledging_and_sending_in_groups_loses_nothing_and_applies_nothing_twice() {
    use std::sync::{Arc, Mutex};

    use diesel::prelude::*;
    use futures_util::StreamExt;
    use threadcart::db::schema::{inbound_events, outbox, threads};

    let database = crate::helpers::TestDatabase::new();
    let db = crate::helpers::comfy_shoes_with_page(&database);
    let graph = crate::graph::FakeGraph::start().await;
    let (mut first, address) = serve_process(&database.url, &graph).await;
    let shoppers: usize = 120;
    let ts = now_ms();
    let bodies: Vec<String> = (0..shoppers)
        .map(|i| {
            delivery(
                PAGE_ID,
                vec![ad_postback(
                    &format!("K{i}"),
                    ts + i64::try_from(i).unwrap(),
                    &format!("pb-k{i}"),
                    "AD-K",
                    "Slippers",
                    "SLIP-01",
                )],
            )
        })
        .collect();
    let client = reqwest::Client::new();
    let post = move |address: String, body: String| {
        let client = client.clone();
        async move {
            client
                .post(format!("{address}/webhooks/messenger"))
                .header("x-hub-signature-256", sign(body.as_bytes()))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        }
    };
    // Sixteen deliveries at a time, as Meta's parallel connections: the writers store them in groups
    // while the workers greet the first shoppers and the sender records its sends in groups.
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let posting = tokio::spawn({
        let (acknowledged, bodies, address, post) = (
            acknowledged.clone(),
            bodies.clone(),
            address.clone(),
            post.clone(),
        );
        futures_util::stream::iter(bodies.into_iter().enumerate()).for_each_concurrent(
            16,
            move |(i, body)| {
                let (acknowledged, done) = (acknowledged.clone(), post(address.clone(), body));
                async move {
                    if done.await {
                        acknowledged.lock().unwrap().push(i);
                    }
                }
            },
        )
    });
    while acknowledged.lock().unwrap().len() < shoppers / 3 {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }

    first.kill().unwrap();
    first.wait().unwrap();
    posting.await.unwrap();
    let before = acknowledged.lock().unwrap().len();
    assert!(
        before < shoppers,
        "the server was killed before every delivery was acknowledged"
    );
    let greeted_before = (0..shoppers)
        .filter(|i| !graph.answers_to(&format!("K{i}")).is_empty())
        .count();

    let (mut second, address) = serve_process(&database.url, &graph).await;
    // Meta delivers again what was not acknowledged; it may deliver again what was, too.
    for body in &bodies {
        assert!(post(address.clone(), body.clone()).await);
    }
    // The dead process's leases on shoppers and threads run out (a minute) before those are taken up:
    // a thread whose last send went out but was not recorded before the kill is sent to again then.
    let unsent = || {
        db.query_blocking(|conn| {
            outbox::table
                .filter(outbox::status.ne("sent"))
                .count()
                .get_result::<i64>(conn)
        })
        .unwrap()
    };
    for _ in 0..2400 {
        if (0..shoppers).all(|i| graph.answers_to(&format!("K{i}")).len() >= 2) && unsent() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    second.kill().unwrap();
    second.wait().unwrap();

    // Every shopper greeted (at least once) and nothing else; a send in flight at the kill, or sent with
    // its outcome not yet recorded, may go again (at most one per thread being sent to: 32 at a time
    // with four workers), as Meta's Send API has no idempotency key.
    let mut repeated = 0;
    for i in 0..shoppers {
        let answers = graph.answers_to(&format!("K{i}"));
        let mut distinct = answers.clone();
        distinct.dedup();
        assert_eq!(distinct.len(), 2, "K{i} is greeted: {answers:?}");
        assert!(distinct[0].starts_with("Hi Anna!"), "{answers:?}");
        repeated += answers.len() - distinct.len();
    }
    assert!(
        repeated <= 32,
        "{repeated} sends repeated ({before} deliveries acknowledged and {greeted_before} shoppers greeted before the kill)"
    );
    type Unsent = Vec<(String, String, i32, Option<String>)>;
    let (threads, events_done, rows_per_thread, unsent): (i64, i64, Vec<i64>, Unsent) = db
        .query_blocking(|conn| {
            let threads = threads::table.count().get_result(conn)?;
            let events_done = inbound_events::table
                .filter(inbound_events::status.eq("done"))
                .count()
                .get_result(conn)?;
            let rows_per_thread = outbox::table
                .filter(outbox::kind.eq("message"))
                .group_by(outbox::thread_id)
                .select(diesel::dsl::count_star())
                .load(conn)?;
            let unsent = outbox::table
                .filter(outbox::status.ne("sent"))
                .select((outbox::kind, outbox::status, outbox::attempts, outbox::last_error))
                .load(conn)?;
            Ok((threads, events_done, rows_per_thread, unsent))
        })
        .unwrap();
    assert_eq!(
        threads,
        i64::try_from(shoppers).unwrap(),
        "one thread per shopper"
    );
    assert_eq!(
        events_done,
        i64::try_from(shoppers).unwrap(),
        "each shopper's event applied once"
    );
    assert_eq!(rows_per_thread.len(), shoppers);
    assert!(
        rows_per_thread.iter().all(|n| *n == rows_per_thread[0]),
        "every thread queued the same replies once: {rows_per_thread:?}"
    );
    assert!(unsent.is_empty(), "every queued send went: {unsent:?}");
}

#[tokio::test]
async fn shoppers_due_at_once_are_greeted_together_and_one_unreadable_event_holds_none_of_them_back() {
    use diesel::prelude::*;
    use threadcart::channels::meta::webhook;
    use threadcart::conversations::inbox;
    use threadcart::db::schema::inbound_events;

    // Twelve shoppers' first messages wait when the server starts (a backlog): their turns are taken
    // in groups, one transaction each. One shopper's event cannot be read.
    let database = crate::helpers::TestDatabase::new();
    let db = crate::helpers::comfy_shoes_with_page(&database);
    let ts = now_ms();
    let shoppers: Vec<String> = (0..12).map(|i| format!("G{i}")).collect();
    for (i, psid) in shoppers.iter().enumerate() {
        let body = delivery(
            PAGE_ID,
            vec![ad_postback(
                psid,
                ts + i64::try_from(i).unwrap(),
                &format!("pb-{psid}"),
                "AD-G",
                "Slippers",
                "SLIP-01",
            )],
        );
        let parsed = webhook::parse(body.as_bytes()).map_err(|e| e.to_string());
        db.query_blocking(move |conn| inbox::receive_delivery(conn, "messenger", &body, &parsed))
            .unwrap();
    }
    db.query_blocking(|conn| {
        diesel::update(inbound_events::table.filter(inbound_events::psid.eq("G5")))
            .set(inbound_events::event.eq("{"))
            .execute(conn)
    })
    .unwrap();
    let graph = crate::graph::FakeGraph::start().await;

    let (mut server, _) = serve_process(&database.url, &graph).await;
    let readable: Vec<&String> = shoppers.iter().filter(|p| *p != "G5").collect();
    eventually("the eleven readable shoppers are greeted", || async {
        readable.iter().all(|p| graph.answers_to(p).len() >= 2)
    })
    .await;
    let failed = || {
        db.query_blocking(|conn| {
            inbound_events::table
                .filter(inbound_events::psid.eq("G5"))
                .select((
                    inbound_events::status,
                    inbound_events::attempts,
                    inbound_events::last_error,
                ))
                .first::<(String, i32, Option<String>)>(conn)
        })
        .unwrap()
    };
    eventually("the unreadable event's failure is recorded", || async {
        failed().1 >= 1
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    server.kill().unwrap();
    server.wait().unwrap();

    for psid in &readable {
        let answers = graph.answers_to(psid);
        let mut distinct = answers.clone();
        distinct.dedup();
        assert_eq!(answers, distinct, "{psid} is greeted once");
        assert!(answers[0].starts_with("Hi Anna!"), "{answers:?}");
    }
    assert!(
        graph.answers_to("G5").is_empty(),
        "nothing is said for an unreadable event"
    );
    let (status, attempts, error) = failed();
    assert_eq!(status, "pending", "the unreadable event waits for its retry");
    assert!(attempts >= 1);
    assert!(error.is_some_and(|e| !e.is_empty()), "with why it failed");
    let applied_once: Vec<i32> = db
        .query_blocking(|conn| {
            inbound_events::table
                .filter(inbound_events::psid.ne("G5"))
                .filter(inbound_events::status.eq("done"))
                .select(inbound_events::attempts)
                .load(conn)
        })
        .unwrap();
    assert_eq!(
        applied_once,
        vec![1; 11],
        "each readable event applied once, at the first try"
    );
}
