//! Catalog import: Meta's CSV feed and JSON lists, row errors by number, upserts, limits.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, product_body, spawn_app};

/// Meta's catalog feed columns.
const HEADER: &str =
    "id,title,description,availability,condition,price,link,image_link,brand,item_group_id,size,color";

/// A feed: two sizes of one slipper, four bad rows, then a single-variant product with a quoted title.
fn mixed_feed() -> String {
    [
        HEADER,
        "SLIP-42,Comfy slippers,Warm felt.,in stock,new,49.90 EUR,https://example.com/slip,https://example.com/slip.jpg,Comfy,SLIP,42,Grey",
        "SLIP-43,Comfy slippers,Warm felt.,in stock,new,49.90 EUR,https://example.com/slip,https://example.com/slip.jpg,Comfy,SLIP,43,Grey",
        "BAD-1,Broken price,,in stock,new,abc,,,,,,",
        "BAD-2,,,in stock,new,10.00 EUR,,,,,41,Red",
        "BAD-3,Strange money,,in stock,new,10.00 XYZ,,,,,,",
        "BAD-4,Fine money,,in stock,new,10.999 EUR,,,,,,",
        "SOCK-1,\"Wool socks, warm\",,in stock,new,9.90 EUR,,,Woolly,,,",
    ]
    .join("\n")
        + "\n"
}

async fn import_csv(app: &TestApp, token: &str, csv: &str) -> reqwest::Response {
    app.post_raw("/v1/catalog/import", token, "text/csv", csv.as_bytes().to_vec())
        .await
}

/// Imports a CSV, asserting 200, and returns the report.
async fn import_ok(app: &TestApp, token: &str, csv: &str) -> Value {
    let res = import_csv(app, token, csv).await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// The products a search finds.
async fn search(app: &TestApp, token: &str, q: &str) -> Vec<Value> {
    let res = app.get(&format!("/v1/products?q={q}"), token).await;
    assert_eq!(res.status(), 200);
    let page: Value = res.json().await.unwrap();
    page["data"].as_array().unwrap().clone()
}

/// `(row, code)` of each error in a report.
fn row_codes(report: &Value) -> Vec<(u64, String)> {
    report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert!(e["detail"].as_str().is_some_and(|d| !d.is_empty()), "{e}");
            (e["row"].as_u64().unwrap(), e["code"].as_str().unwrap().to_owned())
        })
        .collect()
}

fn stocks(product: &Value) -> Vec<i64> {
    product["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["stock"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn a_csv_feed_imports_the_good_rows_and_reports_the_bad_ones_by_number() {
    let app = spawn_app().await;
    let m = app.merchant("Comfy").await;

    let report = import_ok(&app, &m.token, &mixed_feed()).await;

    assert_eq!(report["created"], 2, "{report}");
    assert_eq!(report["updated"], 0);
    assert_eq!(
        row_codes(&report),
        [
            (3, "invalid_feed_price".to_owned()),
            (4, "required".to_owned()),
            (5, "unknown_currency".to_owned()),
            (6, "too_many_decimals".to_owned()),
        ]
    );
    assert!(report["errors"][1]["detail"].as_str().unwrap().contains("title"));
}

#[tokio::test]
async fn csv_rows_sharing_an_item_group_id_become_variants_of_one_product() {
    let app = spawn_app().await;
    let m = app.merchant("Comfy").await;

    import_ok(&app, &m.token, &mixed_feed()).await;

    let found = search(&app, &m.token, "comfy%20slippers").await;
    assert_eq!(found.len(), 1, "{found:?}");
    let slippers = &found[0];
    assert_eq!(slippers["retailer_id"], "SLIP");
    assert_eq!(slippers["title"], "Comfy slippers");
    assert_eq!(slippers["description"], "Warm felt.");
    assert_eq!(slippers["url"], "https://example.com/slip");
    assert_eq!(slippers["image_url"], "https://example.com/slip.jpg");
    assert_eq!(slippers["brand"], "Comfy");
    let variants = slippers["variants"].as_array().unwrap();
    assert_eq!(variants.len(), 2);
    assert_eq!(variants[0]["sku"], "SLIP-42");
    assert_eq!(variants[0]["name"], "42 / Grey");
    assert_eq!(variants[0]["options"], json!({"size": "42", "color": "Grey"}));
    assert_eq!(
        variants[0]["price"],
        json!({"amount": "49.90", "currency": "EUR"})
    );
    assert_eq!(
        variants[0]["stock"], 0,
        "a new variant without a quantity starts at 0"
    );
    assert_eq!(variants[1]["sku"], "SLIP-43");
    assert_eq!(variants[1]["name"], "43 / Grey");
}

#[tokio::test]
async fn a_csv_row_without_item_group_id_is_a_product_of_its_own_named_after_its_title() {
    let app = spawn_app().await;
    let m = app.merchant("Comfy").await;

    import_ok(&app, &m.token, &mixed_feed()).await;

    let found = search(&app, &m.token, "socks").await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["retailer_id"], "SOCK-1");
    assert_eq!(found[0]["title"], "Wool socks, warm");
    assert_eq!(found[0]["brand"], "Woolly");
    assert_eq!(found[0]["variants"][0]["sku"], "SOCK-1");
    assert_eq!(found[0]["variants"][0]["name"], "Wool socks, warm");
    assert_eq!(found[0]["variants"][0]["options"], json!({}));
    let all = search(&app, &m.token, "").await;
    assert_eq!(all.len(), 2, "bad rows created nothing");
}

#[tokio::test]
async fn reimporting_the_same_feed_updates_and_keeps_the_stock() {
    let app = spawn_app().await;
    let m = app.merchant("Comfy").await;
    import_ok(&app, &m.token, &mixed_feed()).await;
    let slippers = search(&app, &m.token, "slippers").await.remove(0);
    let path = format!(
        "/v1/products/{}/variants/{}/stock-adjustments",
        slippers["id"].as_str().unwrap(),
        slippers["variants"][0]["id"].as_str().unwrap()
    );
    assert_eq!(app.post(&path, &m.token, json!({"delta": 5})).await.status(), 200);

    let report = import_ok(&app, &m.token, &mixed_feed()).await;

    assert_eq!(report["created"], 0, "{report}");
    assert_eq!(report["updated"], 2);
    assert_eq!(report["errors"].as_array().unwrap().len(), 4);
    let again = search(&app, &m.token, "slippers").await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0]["id"], slippers["id"]);
    assert_eq!(stocks(&again[0]), [5, 0], "no quantity column: stock kept");
    let variant_ids: Vec<&Value> = again[0]["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| &v["id"])
        .collect();
    let before: Vec<&Value> = slippers["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| &v["id"])
        .collect();
    assert_eq!(variant_ids, before, "variants matched by SKU, not duplicated");
}

#[tokio::test]
async fn a_reimport_replaces_the_product_fields_and_adds_new_variants() {
    let app = spawn_app().await;
    let m = app.merchant("Comfy").await;
    import_ok(&app, &m.token, &mixed_feed()).await;
    let changed = [
        HEADER,
        "SLIP-42,Comfy slippers II,Warmer felt.,in stock,new,44.90 EUR,,,Comfy,SLIP,42,Grey",
        "SLIP-44,Comfy slippers II,Warmer felt.,in stock,new,44.90 EUR,,,Comfy,SLIP,44,Grey",
    ]
    .join("\n");

    let report = import_ok(&app, &m.token, &changed).await;

    assert_eq!(
        (report["created"].as_i64(), report["updated"].as_i64()),
        (Some(0), Some(1))
    );
    let p = search(&app, &m.token, "slippers").await.remove(0);
    assert_eq!(p["title"], "Comfy slippers II");
    assert_eq!(p["description"], "Warmer felt.");
    let variants: Vec<(&str, &str)> = p["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["sku"].as_str().unwrap(), v["price"]["amount"].as_str().unwrap()))
        .collect();
    assert_eq!(
        variants,
        [("SLIP-42", "44.90"), ("SLIP-43", "49.90"), ("SLIP-44", "44.90")],
        "updated, left alone, added"
    );
}

#[tokio::test]
async fn quantity_to_sell_on_facebook_sets_the_stock() {
    let app = spawn_app().await;
    let m = app.merchant("Comfy").await;
    let feed = |qty: &str| {
        format!(
            "id,title,price,item_group_id,size,quantity_to_sell_on_facebook\n\
             SLIP-42,Comfy slippers,49.90 EUR,SLIP,42,{qty}\n\
             SLIP-43,Comfy slippers,49.90 EUR,SLIP,43,2\n"
        )
    };

    let first = import_ok(&app, &m.token, &feed("7")).await;
    let created = search(&app, &m.token, "slippers").await.remove(0);
    let second = import_ok(&app, &m.token, &feed("3")).await;
    let updated = search(&app, &m.token, "slippers").await.remove(0);

    assert_eq!(first["created"], 1, "{first}");
    assert_eq!(stocks(&created), [7, 2]);
    assert_eq!(second["updated"], 1, "{second}");
    assert_eq!(stocks(&updated), [3, 2]);
}

#[tokio::test]
async fn an_invalid_quantity_is_that_rows_error() {
    let app = spawn_app().await;
    let m = app.merchant("Comfy").await;
    let feed = "id,title,price,quantity_to_sell_on_facebook\nA,Thing A,1.00 EUR,many\nB,Thing B,1.00 EUR,-2\nC,Thing C,1.00 EUR,4\n";

    let report = import_ok(&app, &m.token, feed).await;

    assert_eq!(report["created"], 1, "{report}");
    assert_eq!(
        row_codes(&report),
        [(1, "invalid_quantity".to_owned()), (2, "out_of_range".to_owned())]
    );
}

#[tokio::test]
async fn an_out_of_stock_row_sets_the_stock_to_zero() {
    let app = spawn_app().await;
    let m = app.merchant("Comfy").await;
    let feed =
        |availability: &str| format!("id,title,availability,price\nMUG-1,Big mug,{availability},12.00 EUR\n");
    import_ok(&app, &m.token, &feed("in stock")).await;
    let mug = search(&app, &m.token, "mug").await.remove(0);
    let path = format!(
        "/v1/products/{}/variants/{}/stock-adjustments",
        mug["id"].as_str().unwrap(),
        mug["variants"][0]["id"].as_str().unwrap()
    );
    assert_eq!(app.post(&path, &m.token, json!({"delta": 6})).await.status(), 200);

    let report = import_ok(&app, &m.token, &feed("out of stock")).await;

    assert_eq!(report["updated"], 1, "{report}");
    assert_eq!(stocks(&search(&app, &m.token, "mug").await[0]), [0]);
}

#[tokio::test]
async fn a_json_import_reports_an_invalid_element_by_its_1_based_index() {
    let app = spawn_app().await;
    let m = app.merchant("Comfy").await;
    let body = json!([
        product_body("P-1", "First", &[("P-1-A", "A", "10.00", 1)]),
        product_body("P-2", "", &[("P-2-A", "A", "10.00", 1)]),
        product_body("P-3", "Third", &[("P-3-A", "A", "10.00", 1)]),
        {"retailer_id": "P-4", "title": "Fourth", "variants": [], "colour": "red"},
    ]);

    let res = app
        .post_raw(
            "/v1/catalog/import",
            &m.token,
            "application/json",
            serde_json::to_vec(&body).unwrap(),
        )
        .await;

    assert_eq!(res.status(), 200);
    let report: Value = res.json().await.unwrap();
    assert_eq!(report["created"], 2, "{report}");
    assert_eq!(report["updated"], 0);
    assert_eq!(
        row_codes(&report),
        [(2, "required".to_owned()), (4, "invalid_json".to_owned())]
    );
    assert_eq!(search(&app, &m.token, "third").await.len(), 1);
}

#[tokio::test]
async fn a_json_import_updates_products_by_retailer_id() {
    let app = spawn_app().await;
    let m = app.merchant("Comfy").await;
    app.create_product(
        &m.token,
        product_body("P-1", "First", &[("P-1-A", "A", "10.00", 1)]),
    )
    .await;
    let body = json!([product_body(
        "P-1",
        "First, renamed",
        &[("P-1-A", "A", "12.00", 9)]
    )]);

    let res = app
        .post_raw(
            "/v1/catalog/import",
            &m.token,
            "application/json",
            serde_json::to_vec(&body).unwrap(),
        )
        .await;

    let report: Value = res.json().await.unwrap();
    assert_eq!(
        (report["created"].as_i64(), report["updated"].as_i64()),
        (Some(0), Some(1))
    );
    let p = search(&app, &m.token, "renamed").await.remove(0);
    assert_eq!(p["variants"][0]["price"]["amount"], "12.00");
    assert_eq!(
        p["variants"][0]["stock"], 9,
        "a JSON import always gives the stock"
    );
}

#[tokio::test]
async fn a_json_body_that_is_not_a_list_answers_400_invalid_feed() {
    let app = spawn_app().await;
    let m = app.merchant("Comfy").await;
    let body = product_body("P-1", "First", &[("P-1-A", "A", "10.00", 1)]);

    let res = app
        .post_raw(
            "/v1/catalog/import",
            &m.token,
            "application/json",
            serde_json::to_vec(&body).unwrap(),
        )
        .await;

    assert_problem(res, 400, "invalid_feed").await;
}

#[tokio::test]
async fn an_import_over_5_mib_answers_413() {
    let app = spawn_app().await;
    let m = app.merchant("Comfy").await;
    let mut csv = format!("{HEADER}\n");
    while csv.len() <= 5 * 1024 * 1024 {
        csv.push_str("X,Filler row that pads the feed out past the limit,,in stock,new,1.00 EUR,,,,,,\n");
    }

    let res = import_csv(&app, &m.token, &csv).await;

    assert_problem(res, 413, "payload_too_large").await;
    assert!(search(&app, &m.token, "").await.is_empty());
}

#[tokio::test]
async fn an_import_in_another_content_type_answers_415() {
    let app = spawn_app().await;
    let m = app.merchant("Comfy").await;

    let res = app
        .post_raw(
            "/v1/catalog/import",
            &m.token,
            "application/xml",
            b"<feed/>".to_vec(),
        )
        .await;

    assert_problem(res, 415, "unsupported_media_type").await;
}

#[tokio::test]
async fn a_csv_content_type_with_a_charset_is_accepted() {
    let app = spawn_app().await;
    let m = app.merchant("Comfy").await;

    let res = app
        .post_raw(
            "/v1/catalog/import",
            &m.token,
            "text/csv; charset=utf-8",
            b"id,title,price\nA,Thing,1.00 EUR\n".to_vec(),
        )
        .await;

    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["created"], 1);
}

#[tokio::test]
async fn a_csv_without_a_price_column_answers_400_invalid_feed() {
    let app = spawn_app().await;
    let m = app.merchant("Comfy").await;

    let res = import_csv(&app, &m.token, "id,title,brand\nA,Thing,Comfy\n").await;

    let problem = assert_problem(res, 400, "invalid_feed").await;
    assert!(problem["detail"].as_str().unwrap().contains("price"), "{problem}");
}

#[tokio::test]
async fn a_sku_of_another_product_is_that_rows_error_while_the_other_rows_import() {
    let app = spawn_app().await;
    let m = app.merchant("Comfy").await;
    app.create_product(
        &m.token,
        product_body("MANUAL", "Manual thing", &[("TAKEN", "A", "10.00", 4)]),
    )
    .await;
    let feed = [
        HEADER,
        "NEW-1,New thing,,in stock,new,5.00 EUR,,,,GROUP,S,",
        "TAKEN,New thing,,in stock,new,5.00 EUR,,,,GROUP,M,",
        "OTHER-1,Other thing,,in stock,new,5.00 EUR,,,,,,",
    ]
    .join("\n");

    let report = import_ok(&app, &m.token, &feed).await;

    assert_eq!(report["created"], 2, "{report}");
    assert_eq!(row_codes(&report), [(2, "sku_taken".to_owned())]);
    assert!(report["errors"][0]["detail"].as_str().unwrap().contains("TAKEN"));
    let group = search(&app, &m.token, "new%20thing").await;
    assert_eq!(group.len(), 1);
    let skus: Vec<&str> = group[0]["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["sku"].as_str().unwrap())
        .collect();
    assert_eq!(skus, ["NEW-1"]);
    let manual = search(&app, &m.token, "manual").await;
    assert_eq!(
        manual[0]["variants"][0]["stock"], 4,
        "the other product is untouched"
    );
}

#[tokio::test]
async fn a_new_product_whose_every_sku_is_taken_is_not_created() {
    let app = spawn_app().await;
    let m = app.merchant("Comfy").await;
    app.create_product(
        &m.token,
        product_body("MANUAL", "Manual thing", &[("TAKEN", "A", "10.00", 4)]),
    )
    .await;

    let report = import_ok(&app, &m.token, "id,title,price\nTAKEN,Feed thing,5.00 EUR\n").await;

    assert_eq!(report["created"], 0, "{report}");
    assert_eq!(row_codes(&report), [(1, "sku_taken".to_owned())]);
    assert!(search(&app, &m.token, "feed").await.is_empty());
}
