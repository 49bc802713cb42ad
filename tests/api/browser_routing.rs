//! The dashboard's routing tools in headless Chromium: labels on products and room types, rules, and
//! the threads list filtered by agent.

use serde_json::{Value, json};

use crate::browser::{
    Browser, ENTER, accept_dialog, browser_or_skip, check_screenshot, demo_key_with_role, sign_in,
};
use crate::helpers::{TestApp, eventually};
use crate::simulator::{DEMO_KEY, DEMO_PAGE, spawn_dev_app};

/// The demo shoe shop's agent Léa's public key (fixtures/demo.json).
const LEA_KEY: &str = "tc_demo_comfy_shoes_agent_lea_00000000000000000000000000000000000";
/// The demo hotel's owner key: its room types have labels.
const HOTEL_KEY: &str = "tc_demo_dream_hotels_owner_key_000000000000000000000000000000000";

/// The merchant's rules, as the API lists them.
async fn rules(app: &TestApp, token: &str) -> Vec<Value> {
    let res = app.get("/v1/rules", token).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    body["data"].as_array().unwrap().clone()
}

/// The labels the API has for the item of `list` (`/v1/products`, `/v1/bookables`) whose `key` is `name`.
async fn labels_of(app: &TestApp, token: &str, list: &str, key: &str, name: &str) -> Value {
    let body: Value = app
        .get(&format!("{list}?limit=200"), token)
        .await
        .json()
        .await
        .unwrap();
    let item = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i[key] == name)
        .unwrap_or_else(|| panic!("no {name} in {body}"));
    item["labels"].clone()
}

/// A shopper of the demo shoe shop writes `text` in the simulator.
async fn shopper_writes(app: &TestApp, psid: &str, name: &str, text: &str) {
    let said = app
        .client
        .post(format!("{}/dev/simulator/send", app.address))
        .json(&json!({"page_id": DEMO_PAGE, "psid": psid, "name": name,
                      "action": {"kind": "text", "text": text}}))
        .send()
        .await
        .unwrap();
    assert_eq!(said.status(), 202);
}

/// The id of the thread of the shopper `psid`, once it exists.
async fn thread_of(app: &TestApp, token: &str, psid: &str) -> String {
    let found = std::cell::RefCell::new(None);
    eventually(&format!("the thread of {psid}"), || async {
        let list = crate::helpers::threads(app, token).await;
        let id = list
            .iter()
            .find(|t| t["customer"]["psid"] == psid)
            .map(|t| t["id"].as_str().unwrap().to_owned());
        let there = id.is_some();
        *found.borrow_mut() = id;
        there
    })
    .await;
    found.into_inner().unwrap()
}

/// Whether no control of the sections lies beyond the window's width and the page does not scroll
/// sideways; answers what the page measured.
async fn fits_the_width(browser: &Browser, sections: &[&str]) -> Value {
    let selector = sections
        .iter()
        .map(|s| format!("#{s} :is(button, a, input, select, textarea)"))
        .collect::<Vec<_>>()
        .join(", ");
    browser
        .script(&format!(
            "const width = window.innerWidth; \
             const controls = Array.from(document.querySelectorAll('{selector}')) \
               .filter((c) => c.getClientRects().length > 0); \
             const outside = controls.filter((c) => {{ const r = c.getBoundingClientRect(); \
               return r.left < 0 || r.right > width + 0.5; }}) \
               .map((c) => (c.id || c.textContent.trim() || c.getAttribute('aria-label')) + ' ' + \
                 Math.round(c.getBoundingClientRect().right)); \
             return {{width, page: document.documentElement.scrollWidth, count: controls.length, outside}};"
        ))
        .await
}

#[tokio::test]
async fn the_owner_adds_a_rule_sees_it_listed_in_words_disables_it_and_deletes_it() {
    let Some(browser) =
        browser_or_skip("the_owner_adds_a_rule_sees_it_listed_in_words_disables_it_and_deletes_it").await
    else {
        return;
    };
    // Arrange
    let app = spawn_dev_app().await;
    let token = app.token(DEMO_KEY).await;
    sign_in(&browser, &app, DEMO_KEY).await;
    browser
        .wait_for("//table[@id='rules-table']/tbody/tr/td[.='No rules yet: add one below.']")
        .await;

    // Act: refunds to a specialist, ahead of the others
    browser
        .type_into("//input[@id='rule-name']", "Refunds to a specialist")
        .await;
    browser
        .type_into("//input[@id='rule-words']", "refund, rembourser")
        .await;
    browser.type_into("//input[@id='rule-priority']", "10").await;
    browser.type_into("//input[@id='rule-skill']", "refunds").await;
    browser.click("//input[@id='rule-hand-over']").await;
    browser.click("//button[@id='rule-save']").await;

    // Assert: listed in words, said where the merchant looks, and stored as typed
    let row = "//table[@id='rules-table']/tbody/tr[th[.='Refunds to a specialist']]";
    browser
        .wait_for(&format!(
            "{row}/td[@data-col='when' and .='Words: refund, rembourser']"
        ))
        .await;
    browser
        .wait_for(&format!(
            "{row}/td[@data-col='then' and .='Hand over, skill refunds, priority 10']"
        ))
        .await;
    browser
        .wait_for(&format!("{row}/td[@data-col='enabled' and .='Yes']"))
        .await;
    browser
        .wait_for("//p[@id='rules-status' and .='Rule “Refunds to a specialist” added.']")
        .await;
    browser
        .wait_for("//p[@id='rule-status' and contains(@class, 'done') and .='Rule “Refunds to a specialist” added.']")
        .await;
    assert_eq!(
        browser.script("return document.activeElement.textContent").await,
        "Disable",
        "focus goes to the new rule's toggle"
    );
    let stored = rules(&app, &token).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    let rule = &stored[0];
    assert_eq!(rule["name"], "Refunds to a specialist");
    assert_eq!(rule["enabled"], true);
    assert_eq!(rule["when"]["words"], json!(["refund", "rembourser"]));
    assert_eq!(rule["when"]["channels"], json!([]));
    assert_eq!(rule["when"]["vip"], Value::Null);
    assert_eq!(rule["when"]["cart_value_at_least"], Value::Null);
    assert_eq!(
        rule["then"],
        json!({"priority": 10, "label": null, "hand_over": true, "skill": "refunds"})
    );
    let form = browser.wait_for("//input[@id='rule-name']").await;
    assert_eq!(
        browser.get(&format!("/element/{form}/property/value")).await,
        "",
        "the form is empty again"
    );

    // Act: disable it
    browser
        .click(&format!(
            "{row}//button[contains(@class, 'toggle') and .='Disable']"
        ))
        .await;

    // Assert: the page and the API say disabled
    browser
        .wait_for(&format!("{row}/td[@data-col='enabled' and .='No']"))
        .await;
    browser
        .wait_for(&format!(
            "{row}//button[contains(@class, 'toggle') and .='Enable']"
        ))
        .await;
    browser
        .wait_for("//p[@id='rules-status' and .='Rule “Refunds to a specialist” disabled.']")
        .await;
    assert_eq!(rules(&app, &token).await[0]["enabled"], false);
    let section = browser.wait_for("//section[@id='rules-section']").await;
    check_screenshot(&browser.screenshot(Some(&section)).await, "dashboard-rules.png");

    // Act: delete it, confirming
    browser
        .click(&format!("{row}//button[contains(@class, 'delete')]"))
        .await;
    let asked = accept_dialog(&browser).await;

    // Assert: gone from the page and from the API
    assert!(
        asked.contains("Delete the rule “Refunds to a specialist”"),
        "{asked}"
    );
    browser
        .wait_for("//p[@id='rules-status' and .='Rule “Refunds to a specialist” deleted.']")
        .await;
    browser
        .wait_for("//table[@id='rules-table']/tbody/tr/td[.='No rules yet: add one below.']")
        .await;
    assert_eq!(rules(&app, &token).await, Vec::<Value>::new());
}

#[tokio::test]
async fn a_rule_with_every_condition_is_listed_with_each_of_them() {
    let Some(browser) = browser_or_skip("a_rule_with_every_condition_is_listed_with_each_of_them").await
    else {
        return;
    };
    // Arrange
    let app = spawn_dev_app().await;
    let token = app.token(DEMO_KEY).await;
    sign_in(&browser, &app, DEMO_KEY).await;
    browser
        .wait_for("//table[@id='rules-table']/tbody/tr/td[.='No rules yet: add one below.']")
        .await;

    // Act: big carts of VIPs from the winter ad, on Instagram or the web chat, labelled; saved disabled
    browser
        .type_into("//input[@id='rule-name']", "Big VIP carts")
        .await;
    browser.click("//input[@id='rule-channel-instagram']").await;
    browser.click("//input[@id='rule-channel-webchat']").await;
    browser
        .type_into("//input[@id='rule-ads']", "AD-WINTER, AD-XMAS")
        .await;
    browser.type_into("//input[@id='rule-refs']", "c=xmas24").await;
    browser.type_into("//input[@id='rule-cart']", "150.00").await;
    browser
        .click("//select[@id='rule-vip']/option[.='VIP only']")
        .await;
    browser.type_into("//input[@id='rule-label']", "Big-Cart").await;
    browser.click("//input[@id='rule-enabled']").await;
    browser.click("//button[@id='rule-save']").await;

    // Assert: each condition in words; the label as the server keeps it
    let row = "//table[@id='rules-table']/tbody/tr[th[.='Big VIP carts']]";
    let when = browser.wait_for(&format!("{row}/td[@data-col='when']")).await;
    assert_eq!(
        browser.text(&when).await,
        "Channels: Instagram, Web chat; Ads: AD-WINTER, AD-XMAS; Refs: c=xmas24; \
         Cart value at least 150.00 EUR; VIP only"
    );
    browser
        .wait_for(&format!("{row}/td[@data-col='then' and .='Label big-cart']"))
        .await;
    browser
        .wait_for(&format!("{row}/td[@data-col='enabled' and .='No']"))
        .await;
    browser
        .wait_for("//p[@id='rules-status' and .='Rule “Big VIP carts” added, disabled.']")
        .await;
    let stored = rules(&app, &token).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0]["enabled"], false);
    assert_eq!(
        stored[0]["when"],
        json!({"channels": ["instagram", "webchat"], "ad_ids": ["AD-WINTER", "AD-XMAS"],
               "refs": ["c=xmas24"], "cart_value_at_least": {"amount": "150.00", "currency": "EUR"},
               "vip": true, "words": []})
    );
    assert_eq!(
        stored[0]["then"],
        json!({"priority": null, "label": "big-cart", "hand_over": false, "skill": null})
    );
}

#[tokio::test]
async fn a_refused_rule_says_in_sentences_which_fields_to_correct_and_is_added_once_corrected() {
    let Some(browser) = browser_or_skip(
        "a_refused_rule_says_in_sentences_which_fields_to_correct_and_is_added_once_corrected",
    )
    .await
    else {
        return;
    };
    // Arrange
    let app = spawn_dev_app().await;
    let token = app.token(DEMO_KEY).await;
    sign_in(&browser, &app, DEMO_KEY).await;
    browser
        .wait_for("//table[@id='rules-table']/tbody/tr/td[.='No rules yet: add one below.']")
        .await;

    // Act: no condition, and a label with a space
    browser
        .type_into("//input[@id='rule-name']", "Broken items")
        .await;
    browser.type_into("//input[@id='rule-label']", "two words").await;
    browser.click("//button[@id='rule-save']").await;

    // Assert: each field named as the form names it, in a sentence, marked; nothing stored
    let errors = browser.wait_for("//div[@id='rule-error']/ul").await;
    let said = browser.text(&errors).await;
    assert!(
        said.contains("When the shopper writes: fill in at least one condition: words, a channel"),
        "{said}"
    );
    assert!(
        said.contains("Label put on the thread: 1 to 40 lowercase letters, digits, “-” or “_”"),
        "{said}"
    );
    for api_word in [
        "then.label",
        "when.",
        "no_condition",
        "ad_ids",
        "cart_value_at_least",
        "`",
    ] {
        assert!(!said.contains(api_word), "no API words ({api_word}): {said}");
    }
    browser
        .wait_for("//input[@id='rule-label' and @aria-invalid='true']")
        .await;
    browser
        .wait_for("//fieldset[@id='rule-when' and @aria-invalid='true']")
        .await;
    browser
        .wait_for("//p[@id='rule-status' and contains(@class, 'error') and starts-with(., 'Not saved: ')]")
        .await;
    assert_eq!(
        browser.script("return document.activeElement.id").await,
        "rule-words",
        "focus goes to the first condition"
    );
    assert_eq!(rules(&app, &token).await, Vec::<Value>::new());

    // Act: a word, and a label without the space
    browser.type_into("//input[@id='rule-words']", "broken").await;
    browser.clear("//input[@id='rule-label']").await;
    browser.type_into("//input[@id='rule-label']", "broken").await;
    browser.click("//button[@id='rule-save']").await;

    // Assert: added, the errors gone, and the form's line no longer red
    browser
        .wait_for("//table[@id='rules-table']/tbody/tr[th[.='Broken items']]/td[@data-col='then' and .='Label broken']")
        .await;
    browser
        .wait_for("//p[@id='rule-status' and contains(@class, 'done') and not(contains(@class, 'error'))]")
        .await;
    assert_eq!(
        browser
            .script("return [document.getElementById('rule-error').textContent, document.querySelectorAll('#rule-form [aria-invalid]').length]")
            .await,
        json!(["", 0])
    );
    let stored = rules(&app, &token).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0]["when"]["words"], json!(["broken"]));
    assert_eq!(stored[0]["then"]["label"], "broken");
}

#[tokio::test]
async fn the_owner_sets_labels_on_a_product_and_a_room_type_and_the_api_keeps_them_lowercased() {
    let Some(browser) = browser_or_skip(
        "the_owner_sets_labels_on_a_product_and_a_room_type_and_the_api_keeps_them_lowercased",
    )
    .await
    else {
        return;
    };
    // Arrange: the demo slippers are labelled "slippers"
    let app = spawn_dev_app().await;
    let token = app.token(DEMO_KEY).await;
    sign_in(&browser, &app, DEMO_KEY).await;
    let row = "//table[@id='product-labels-table']/tbody/tr[th[.='Comfy slippers']]";
    browser
        .wait_for(&format!("{row}/td[@data-col='labels' and .='slippers']"))
        .await;
    browser
        .wait_for("//table[@id='room-labels-table']/tbody/tr/td[.='No room types.']")
        .await;

    // Act: "wool, Winter" instead, saved with the button
    let input = format!("{row}//input[@data-field='labels']");
    browser.clear(&input).await;
    browser.type_into(&input, "wool, Winter").await;
    browser
        .click(&format!(
            "{row}//button[@aria-label='Save the labels of Comfy slippers']"
        ))
        .await;

    // Assert: the page shows what the server kept, and the API has it
    browser
        .wait_for(&format!("{row}/td[@data-col='labels' and .='wool, winter']"))
        .await;
    browser
        .wait_for(&format!(
            "{row}//p[contains(@class, 'local-status') and .='Saved.']"
        ))
        .await;
    browser
        .wait_for("//p[@id='status' and .='Labels of Comfy slippers saved: wool, winter.']")
        .await;
    let id = browser.wait_for(&input).await;
    assert_eq!(
        browser.get(&format!("/element/{id}/property/value")).await,
        "wool, winter"
    );
    assert_eq!(
        labels_of(&app, &token, "/v1/products", "title", "Comfy slippers").await,
        json!(["wool", "winter"])
    );

    // Act: a label with a space, sent with Enter
    browser.clear(&input).await;
    browser
        .type_into(&input, &format!("wool, two words{ENTER}"))
        .await;

    // Assert: a sentence naming the product's labels, in its row; nothing changed
    let error = browser
        .wait_for(&format!("{row}//div[contains(@class, 'form-error')]/p"))
        .await;
    let said = browser.text(&error).await;
    assert!(
        said.starts_with("Labels of Comfy slippers: at most 20 labels of 1 to 40 lowercase letters"),
        "{said}"
    );
    browser
        .wait_for(&format!("{row}//input[@aria-invalid='true']"))
        .await;
    browser
        .wait_for(&format!("{row}/td[@data-col='labels' and .='wool, winter']"))
        .await;
    assert_eq!(
        labels_of(&app, &token, "/v1/products", "title", "Comfy slippers").await,
        json!(["wool", "winter"])
    );

    // Act: the hotel's owner adds "Romance" to a room type
    browser.click("//button[@id='sign-out']").await;
    browser.type_into("//input[@id='api-key']", HOTEL_KEY).await;
    browser.click("//button[@id='sign-in-button']").await;
    let room = "//table[@id='room-labels-table']/tbody/tr[th[.='Honeymoon Suite']]";
    browser
        .wait_for(&format!("{room}/td[@data-col='labels' and .='stays']"))
        .await;
    browser
        .type_into(&format!("{room}//input[@data-field='labels']"), ", Romance ")
        .await;
    browser
        .click(&format!("{room}//button[contains(@class, 'save')]"))
        .await;

    // Assert
    browser
        .wait_for(&format!("{room}/td[@data-col='labels' and .='stays, romance']"))
        .await;
    let hotel = app.token(HOTEL_KEY).await;
    assert_eq!(
        labels_of(&app, &hotel, "/v1/bookables", "name", "Honeymoon Suite").await,
        json!(["stays", "romance"])
    );
    let section = browser.wait_for("//section[@id='labels-section']").await;
    check_screenshot(&browser.screenshot(Some(&section)).await, "dashboard-labels.png");
}

#[tokio::test]
async fn the_threads_filtered_by_an_agent_are_only_that_agents_and_show_who_has_each() {
    let Some(browser) =
        browser_or_skip("the_threads_filtered_by_an_agent_are_only_that_agents_and_show_who_has_each").await
    else {
        return;
    };
    // Arrange: Léa is online; Anna asks for a person and goes to her, Bruno stays with the bot
    let app = spawn_dev_app().await;
    let token = app.token(DEMO_KEY).await;
    let lea = app.token(LEA_KEY).await;
    let online = app
        .request(
            reqwest::Method::PUT,
            "/v1/agents/me/presence",
            &lea,
            Some(json!({"status": "online"})),
        )
        .await;
    assert_eq!(online.status(), 200);
    let lea_id = online.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    shopper_writes(&app, "ROUTED-ANNA", "Anna", "human").await;
    shopper_writes(&app, "BOT-BRUNO", "Bruno", "hello").await;
    let anna = thread_of(&app, &token, "ROUTED-ANNA").await;
    let bruno = thread_of(&app, &token, "BOT-BRUNO").await;
    eventually("Anna's thread goes to Léa", || async {
        let thread: Value = app
            .get(&format!("/v1/threads/{anna}"), &token)
            .await
            .json()
            .await
            .unwrap();
        thread["assigned_agent_id"] == lea_id.as_str()
    })
    .await;
    let bruno_now: Value = app
        .get(&format!("/v1/threads/{bruno}"), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(bruno_now["assigned_agent_id"], Value::Null);

    // Act: the owner signs in; both threads are listed, each with who has it
    sign_in(&browser, &app, DEMO_KEY).await;
    let anna_row = format!("//table[@id='threads-table']/tbody/tr[@data-thread='{anna}']");
    let bruno_row = format!("//table[@id='threads-table']/tbody/tr[@data-thread='{bruno}']");
    browser
        .wait_for(&format!("{anna_row}/td[@data-col='agent' and .='Léa']"))
        .await;
    browser
        .wait_for(&format!("{bruno_row}/td[@data-col='agent' and .='—']"))
        .await;

    // Act: only Léa's
    browser
        .click(
            "//label[@id='threads-agent-label' and not(@hidden)]/select[@id='threads-agent']/option[.='Léa']",
        )
        .await;

    // Assert: Anna's thread alone
    let listed = browser
        .wait_until(
            "only Léa's threads",
            "const rows = Array.from(document.querySelectorAll('#threads-table tbody tr[data-thread]')); \
             const ids = rows.map((r) => r.dataset.thread); \
             return ids.length === 1 ? ids : null;",
            "return document.getElementById('threads-table').outerHTML",
        )
        .await;
    assert_eq!(listed, json!([anna]));
    assert_eq!(
        browser
            .script("return document.getElementById('threads-agent').value")
            .await,
        lea_id.as_str()
    );

    // Act: anyone again
    browser
        .click("//select[@id='threads-agent']/option[.='Anyone']")
        .await;

    // Assert: both again
    browser.wait_for(&bruno_row).await;
    browser.wait_for(&anna_row).await;
}

#[tokio::test]
async fn a_marketing_key_reads_the_rules_without_changing_them_and_a_catalog_key_edits_labels_only() {
    let Some(browser) = browser_or_skip(
        "a_marketing_key_reads_the_rules_without_changing_them_and_a_catalog_key_edits_labels_only",
    )
    .await
    else {
        return;
    };
    // Arrange: a rule made through the API
    let app = spawn_dev_app().await;
    let token = app.token(DEMO_KEY).await;
    let made = app
        .post(
            "/v1/rules",
            &token,
            json!({"name": "Refunds", "when": {"words": ["refund"]}, "then": {"hand_over": true}}),
        )
        .await;
    assert_eq!(made.status(), 201);
    let marketing = demo_key_with_role(&app, "marketing").await;
    let catalog = demo_key_with_role(&app, "catalog").await;

    // Act: marketing
    sign_in(&browser, &app, &marketing).await;

    // Assert: the rule in words, no form, no button; no labels
    let row = "//table[@id='rules-table']/tbody/tr[th[.='Refunds']]";
    browser
        .wait_for(&format!("{row}/td[@data-col='then' and .='Hand over']"))
        .await;
    assert_eq!(
        browser
            .script("return document.querySelectorAll('#rules-table button').length")
            .await,
        0
    );
    browser.wait_for("//form[@id='rule-form' and @hidden]").await;
    browser
        .wait_for("//p[@id='rules-read-only' and not(@hidden)]")
        .await;
    browser
        .wait_for("//section[@id='labels-section' and @hidden]")
        .await;
    browser.wait_for("//nav//li[@hidden][a[.='Labels']]").await;
    let note = browser.wait_for("//p[@id='role-note' and not(@hidden)]").await;
    assert!(
        browser
            .text(&note)
            .await
            .contains("labels of products and room types need an owner or catalog key"),
        "{}",
        browser.text(&note).await
    );

    // Act: catalog sets a label
    browser.click("//button[@id='sign-out']").await;
    browser.type_into("//input[@id='api-key']", &catalog).await;
    browser.click("//button[@id='sign-in-button']").await;
    let slippers = "//table[@id='product-labels-table']/tbody/tr[th[.='Comfy slippers']]";
    browser
        .type_into(&format!("{slippers}//input[@data-field='labels']"), ", felt")
        .await;
    browser
        .click(&format!("{slippers}//button[contains(@class, 'save')]"))
        .await;

    // Assert: saved; no rules section; nothing refused
    browser
        .wait_for(&format!(
            "{slippers}/td[@data-col='labels' and .='slippers, felt']"
        ))
        .await;
    assert_eq!(
        labels_of(&app, &token, "/v1/products", "title", "Comfy slippers").await,
        json!(["slippers", "felt"])
    );
    browser
        .wait_for("//section[@id='rules-section' and @hidden]")
        .await;
    assert_eq!(
        browser
            .script("return document.querySelectorAll('.denied:not([hidden])').length")
            .await,
        0,
        "no section was refused"
    );
}

#[tokio::test]
async fn at_phone_size_rules_labels_and_the_threads_filter_are_usable_without_scrolling_sideways() {
    let Some(browser) = browser_or_skip(
        "at_phone_size_rules_labels_and_the_threads_filter_are_usable_without_scrolling_sideways",
    )
    .await
    else {
        return;
    };
    // Arrange: a rule with long words, a phone-sized window
    let app = spawn_dev_app().await;
    let token = app.token(DEMO_KEY).await;
    let made = app
        .post(
            "/v1/rules",
            &token,
            json!({"name": "Refunds, returns and everything about getting money back",
                   "when": {"words": ["refund", "rembourser", "remboursement", "money back", "give back"],
                            "channels": ["messenger", "instagram", "webchat"]},
                   "then": {"hand_over": true, "skill": "refunds-and-returns", "priority": 10, "label": "refund"}}),
        )
        .await;
    assert_eq!(made.status(), 201);
    browser
        .post("/window/rect", json!({"width": 390, "height": 844}))
        .await;

    // Act
    sign_in(&browser, &app, DEMO_KEY).await;
    browser
        .wait_for("//table[@id='rules-table']/tbody/tr//button[contains(@class, 'toggle')]")
        .await;
    browser
        .wait_for("//table[@id='product-labels-table']/tbody/tr//button[contains(@class, 'save')]")
        .await;
    browser
        .wait_for("//label[@id='threads-agent-label' and not(@hidden)]")
        .await;

    // Assert: nothing beyond the screen's width
    let found = fits_the_width(&browser, &["rules-section", "labels-section", "threads-section"]).await;
    let width = found["width"].as_u64().unwrap();
    assert!(width <= 400, "not a phone-sized window: {found}");
    assert!(
        found["page"].as_u64().unwrap() <= width,
        "the page scrolls sideways: {found}"
    );
    assert!(
        found["count"].as_u64().unwrap() > 20,
        "the sections' controls were found: {found}"
    );
    assert_eq!(
        found["outside"],
        json!([]),
        "controls beyond the screen's width: {found}"
    );

    // Act: a refusal at phone size, its sentences next to the form
    browser.type_into("//input[@id='rule-name']", "Nothing").await;
    browser.click("//button[@id='rule-save']").await;
    browser.wait_for("//div[@id='rule-error']/ul").await;

    // Assert: still within the width
    let found = fits_the_width(&browser, &["rules-section"]).await;
    assert!(
        found["page"].as_u64().unwrap() <= found["width"].as_u64().unwrap(),
        "the page scrolls sideways: {found}"
    );
    assert_eq!(found["outside"], json!([]), "{found}");
    for section in ["rules-section", "labels-section"] {
        let id = browser.wait_for(&format!("//section[@id='{section}']")).await;
        check_screenshot(
            &browser.screenshot(Some(&id)).await,
            &format!("dashboard-phone-{section}.png"),
        );
    }
}
