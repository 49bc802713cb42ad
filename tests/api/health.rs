//! Operations routes: liveness, readiness, metrics, request ids, errors for unknown routes.

use crate::helpers::{assert_problem, spawn_app};

#[tokio::test]
async fn healthz_answers_ok_without_a_token() {
    let app = spawn_app().await;
    let res = reqwest::get(format!("{}/healthz", app.address)).await.unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn readyz_reports_the_database_reachable_and_migrated() {
    let app = spawn_app().await;
    let res = reqwest::get(format!("{}/readyz", app.address)).await.unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["database"], "ok");
    assert_eq!(body["migrations"], "applied");
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app().await;
    let ok = reqwest::get(format!("{}/healthz", app.address)).await.unwrap();
    let missing = reqwest::get(format!("{}/nowhere", app.address)).await.unwrap();
    for res in [ok, missing] {
        let id = res.headers().get("x-request-id").expect("x-request-id header");
        assert!(uuid::Uuid::parse_str(id.to_str().unwrap()).is_ok());
    }
}

#[tokio::test]
async fn metrics_count_requests_by_route_pattern_and_status() {
    let app = spawn_app().await;
    let m = app.merchant("Metrics").await;
    app.get(&format!("/v1/products/{}", uuid::Uuid::now_v7()), &m.token)
        .await;
    reqwest::get(format!("{}/healthz", app.address)).await.unwrap();
    let text = reqwest::get(format!("{}/metrics", app.address))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains(r#"threadcart_http_requests_total{method="GET",route="/healthz",status="200"} 1"#));
    assert!(
        text.contains(r#"route="/v1/products/{product_id}",status="404""#),
        "{text}"
    );
    assert!(text.contains("threadcart_http_request_duration_seconds_bucket"));
    assert!(text.contains("threadcart_db_pool_connections"));
}

#[tokio::test]
async fn an_unknown_route_answers_404_as_problem_json() {
    let app = spawn_app().await;
    let res = reqwest::get(format!("{}/v1/nothing-here", app.address))
        .await
        .unwrap();
    assert_problem(res, 404, "not_found").await;
}

#[tokio::test]
async fn a_known_route_with_another_method_answers_405() {
    let app = spawn_app().await;
    let res = app
        .client
        .put(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_problem(res, 405, "method_not_allowed").await;
}

#[tokio::test]
async fn the_openapi_description_is_served() {
    let app = spawn_app().await;
    let res = reqwest::get(format!("{}/openapi.yaml", app.address))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().starts_with("openapi: 3.1"));
}

#[tokio::test]
async fn the_database_enforces_foreign_keys_on_every_backend() {
    use diesel::{ExpressionMethods, RunQueryDsl};
    use threadcart::db::{DbUuid, schema::variants};
    let app = spawn_app().await;
    let m = app.merchant("FK").await;

    let orphan = app.db.run_blocking(move |conn| {
        diesel::insert_into(variants::table)
            .values((
                variants::id.eq(DbUuid(uuid::Uuid::now_v7())),
                variants::product_id.eq(DbUuid(uuid::Uuid::now_v7())),
                variants::merchant_id.eq(m.id),
                variants::sku.eq("ORPHAN"),
                variants::name.eq("orphan"),
                variants::options.eq("{}"),
                variants::price_minor.eq(100_i64),
                variants::currency.eq("EUR"),
                variants::stock.eq(1_i64),
                variants::position.eq(0),
                variants::created_at.eq(threadcart::db::now()),
                variants::updated_at.eq(threadcart::db::now()),
            ))
            .execute(conn)
            .map_err(threadcart::db::DbError::from)
    });

    assert!(orphan.is_err(), "a variant of a missing product must be refused");
}

#[tokio::test]
async fn a_connection_the_database_server_dropped_is_replaced_by_the_pool() {
    use diesel::RunQueryDsl;
    use diesel::dsl::sql;
    use diesel::sql_types::Integer;
    let database = crate::helpers::TestDatabase::new();
    if database.backend() != threadcart::db::Backend::Postgres {
        return; // an embedded SQLite connection has no server to drop it
    }
    let db = threadcart::db::Db::connect(&database.url, 1).unwrap();
    let backend_pid = |c: &mut threadcart::db::DbConnection| {
        diesel::select(sql::<Integer>("pg_backend_pid()")).get_result::<i32>(c)
    };
    let pid = db.query_blocking(backend_pid).unwrap();
    let admin = threadcart::db::Db::connect(&database.url, 1).unwrap();
    admin
        .query_blocking(move |c| diesel::sql_query(format!("SELECT pg_terminate_backend({pid})")).execute(c))
        .unwrap();

    let failed = db.query_blocking(backend_pid);
    let replaced = db.query_blocking(backend_pid).unwrap();

    assert!(failed.is_err(), "the dead connection's query fails");
    assert_ne!(replaced, pid, "the next query runs on a new connection");
}

#[test]
fn a_hot_update_is_prepared_once_per_connection_and_reused() {
    use diesel::connection::{Connection, InstrumentationEvent};
    use diesel::prelude::*;
    use std::sync::{Arc, Mutex};
    use threadcart::db::schema::webhook_inbox;
    let database = crate::helpers::TestDatabase::new();
    let mut conn = threadcart::db::establish(&database.url).unwrap();
    threadcart::db::run_migrations(&mut conn).unwrap();
    let id = threadcart::conversations::inbox::store_delivery(&mut conn, "messenger", "{}").unwrap();
    let id = threadcart::db::DbUuid(id);
    let cached: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = cached.clone();
    conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
        if let InstrumentationEvent::CacheQuery { sql, .. } = event {
            seen.lock().unwrap().push(sql.to_owned());
        }
    });
    let mark = |conn: &mut threadcart::db::DbConnection, from: &str, to: &str| {
        threadcart::db::prepared::update(
            webhook_inbox::table,
            (webhook_inbox::status.eq(to), webhook_inbox::attempts.eq(1)),
            webhook_inbox::id.eq(id).and(webhook_inbox::status.eq(from)),
        )
        .execute(conn)
        .unwrap()
    };

    let changed = [
        mark(&mut conn, "pending", "done"),
        mark(&mut conn, "pending", "dead"),
        mark(&mut conn, "done", "dead"),
    ];
    diesel::update(webhook_inbox::table.find(id))
        .set(webhook_inbox::attempts.eq(2))
        .execute(&mut conn)
        .unwrap();

    assert_eq!(changed, [1, 0, 1], "each update changes what its filter names");
    let status: String = webhook_inbox::table
        .find(id)
        .select(webhook_inbox::status)
        .first(&mut conn)
        .unwrap();
    assert_eq!(status, "dead");
    let updates: Vec<String> = cached
        .lock()
        .unwrap()
        .iter()
        .filter(|sql| sql.starts_with("UPDATE"))
        .cloned()
        .collect();
    assert_eq!(
        updates.len(),
        1,
        "prepared once, reused twice; diesel's own update is not cached: {updates:?}"
    );
    let sql = updates[0].replace('`', "\"");
    assert!(
        sql.starts_with(r#"UPDATE "webhook_inbox" SET "status" = "#),
        "{sql}"
    );
}

/// The `/metrics` page as text.
async fn metrics_page(app: &crate::helpers::TestApp) -> String {
    reqwest::get(format!("{}/metrics", app.address))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// A request with a made-up HTTP method to a made-up path.
async fn made_up_request(app: &crate::helpers::TestApp, n: usize) {
    let method = reqwest::Method::from_bytes(format!("MADEUP{n}").as_bytes()).unwrap();
    app.client
        .request(
            method,
            format!("{}/probe-{n}-{}", app.address, uuid::Uuid::new_v4()),
        )
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn many_made_up_methods_and_paths_do_not_grow_the_metrics_page() {
    // Arrange: one request of each kind is counted already (reading the page is one of them).
    let app = spawn_app().await;
    made_up_request(&app, 0).await;
    metrics_page(&app).await;
    let before = metrics_page(&app).await;

    // Act
    for n in 1..=200 {
        made_up_request(&app, n).await;
    }

    // Assert: the same series, only their counts moved.
    let after = metrics_page(&app).await;
    assert_eq!(after.lines().count(), before.lines().count(), "{after}");
    assert!(!after.contains("MADEUP") && !after.contains("probe-"), "{after}");
    assert!(
        after
            .contains(r#"threadcart_http_requests_total{method="OTHER",route="unmatched",status="404"} 201"#),
        "{after}"
    );
}
