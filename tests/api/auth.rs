//! Merchant auth: API keys exchanged for access tokens, every way a token or key is refused, roles,
//! brute-force limiting, and the API key routes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use uuid::Uuid;

use crate::helpers::{
    JWT_SECRET, TestApp, TestMerchant, assert_problem, product_body, spawn_app, spawn_app_with,
};

// ---------------------------------------------------------------------------------------------
// Forging tokens by hand (independently of the `jsonwebtoken` crate the server uses).
// ---------------------------------------------------------------------------------------------

/// Unpadded base64url (RFC 4648 §5), as JWTs use.
fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b1 = chunk.get(1).copied().unwrap_or(0);
        let b2 = chunk.get(2).copied().unwrap_or(0);
        let n = (u32::from(chunk[0]) << 16) | (u32::from(b1) << 8) | u32::from(b2);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// The header the server signs with.
fn hs256_header() -> Value {
    json!({"alg": "HS256", "typ": "JWT"})
}

/// Claims exactly like the server's, for `m`'s key with the owner role, valid for 900 seconds.
fn claims_for(m: &TestMerchant) -> Value {
    let iat = now_secs();
    json!({
        "iss": "threadcart",
        "aud": "threadcart-api",
        "sub": m.id,
        "kid": m.key_id,
        "role": "owner",
        "iat": iat,
        "exp": iat + 900,
    })
}

/// `base64url(header).base64url(claims)`, the signing input.
fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    )
}

/// A compact JWT signed with HMAC-SHA256 under `secret`.
fn forge(header: &Value, claims: &Value, secret: &str) -> String {
    let input = signing_input(header, claims);
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(input.as_bytes());
    format!("{input}.{}", b64url(&mac.finalize().into_bytes()))
}

/// GET /v1/merchant with a raw `Authorization` header value (or none).
async fn get_merchant_with_header(app: &TestApp, authorization: Option<&str>) -> reqwest::Response {
    let mut req = app.client.get(format!("{}/v1/merchant", app.address));
    if let Some(value) = authorization {
        req = req.header("authorization", value);
    }
    req.send().await.unwrap()
}

// ---------------------------------------------------------------------------------------------
// Token exchange
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_valid_api_key_gets_a_bearer_token_that_opens_the_merchant() {
    // Arrange
    let app = spawn_app().await;
    let m = app.merchant("Comfy Shoes").await;

    // Act
    let res = app.post_token(&m.api_key).await;

    // Assert
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(token.split('.').count(), 3, "a compact JWT: {token}");

    let res = app.get("/v1/merchant", token).await;
    assert_eq!(res.status(), 200);
    let merchant: Value = res.json().await.unwrap();
    assert_eq!(merchant["id"], m.id.to_string());
    assert_eq!(merchant["name"], "Comfy Shoes");
    assert_eq!(merchant["currency"], "EUR");
    assert_eq!(merchant["timezone"], "Europe/Paris");
    assert!(merchant["created_at"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn the_token_answer_names_the_role_of_the_key() {
    // Arrange
    let app = spawn_app().await;
    let owner = app.merchant("Comfy Shoes").await;
    let mut keys = vec![("owner", owner.api_key.clone())];
    for role in ["catalog", "marketing", "agent"] {
        keys.push((role, app.key_with_role(&owner, role).await.api_key));
    }

    for (role, api_key) in keys {
        // Act
        let res = app.post_token(&api_key).await;

        // Assert
        assert_eq!(res.status(), 200, "{role}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["role"], role);
    }
}

#[tokio::test]
async fn an_unknown_api_key_answers_401_invalid_api_key() {
    let app = spawn_app().await;
    let unknown = format!("tc_{}", "0".repeat(64));

    let res = app.post_token(&unknown).await;

    assert_problem(res, 401, "invalid_api_key").await;
}

// ---------------------------------------------------------------------------------------------
// Every way a bearer token is refused
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_request_without_a_token_answers_401_missing_token() {
    let app = spawn_app().await;

    let res = get_merchant_with_header(&app, None).await;

    assert_problem(res, 401, "missing_token").await;
}

#[tokio::test]
async fn a_non_bearer_scheme_answers_401_missing_token() {
    let app = spawn_app().await;
    let m = app.merchant("Comfy Shoes").await;

    for value in [
        "Basic dXNlcjpwYXNzd29yZA==".to_owned(),
        format!("Token {}", m.token),
        "Bearer".to_owned(),
        "Bearer    ".to_owned(),
    ] {
        let res = get_merchant_with_header(&app, Some(&value)).await;

        assert_problem(res, 401, "missing_token").await;
    }
}

#[tokio::test]
async fn a_token_forged_with_the_right_secret_and_claims_is_accepted() {
    // The control for the rejections below: the hand-made JWTs are well formed.
    let app = spawn_app().await;
    let m = app.merchant("Comfy Shoes").await;
    let token = forge(&hs256_header(), &claims_for(&m), JWT_SECRET);

    let res = app.get("/v1/merchant", &token).await;

    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["id"], m.id.to_string());
}

#[tokio::test]
async fn an_expired_token_answers_401_token_expired() {
    let app = spawn_app().await;
    let m = app.merchant("Comfy Shoes").await;
    let mut claims = claims_for(&m);
    let now = now_secs();
    claims["iat"] = json!(now - 1000);
    claims["exp"] = json!(now - 100);
    let token = forge(&hs256_header(), &claims, JWT_SECRET);

    let res = app.get("/v1/merchant", &token).await;

    assert_problem(res, 401, "token_expired").await;
}

#[tokio::test]
async fn a_token_living_longer_than_an_hour_answers_401_invalid_token() {
    // Arrange: rightly signed, but valid for a year (or an hour and a second).
    let app = spawn_app().await;
    let m = app.merchant("Comfy Shoes").await;
    let now = now_secs();
    let with_exp = |exp: u64| {
        let mut claims = claims_for(&m);
        claims["iat"] = json!(now);
        claims["exp"] = json!(exp);
        forge(&hs256_header(), &claims, JWT_SECRET)
    };

    // Act
    let year = app.get("/v1/merchant", &with_exp(now + 365 * 24 * 3600)).await;
    let hour_and_a_second = app.get("/v1/merchant", &with_exp(now + 3601)).await;
    let hour = app.get("/v1/merchant", &with_exp(now + 3600)).await;

    // Assert
    assert_problem(year, 401, "invalid_token").await;
    assert_problem(hour_and_a_second, 401, "invalid_token").await;
    assert_eq!(hour.status(), 200);
}

#[tokio::test]
async fn a_token_claiming_another_role_than_its_keys_gets_only_the_keys_role() {
    // Arrange: a catalog key's token, re-signed claiming the owner role.
    let app = spawn_app().await;
    let owner = app.merchant("Comfy Shoes").await;
    let catalog = app.key_with_role(&owner, "catalog").await;
    let mut claims = claims_for(&catalog);
    claims["role"] = json!("owner");
    let token = forge(&hs256_header(), &claims, JWT_SECRET);

    // Act: an owner-only route.
    let res = app.post("/v1/api-keys", &token, json!({"role": "owner"})).await;

    // Assert
    assert_problem(res, 403, "forbidden").await;
    assert_eq!(
        app.get("/v1/products", &token).await.status(),
        200,
        "the key's own role works"
    );
}

#[tokio::test]
async fn a_token_signed_with_another_secret_answers_401_invalid_token() {
    let app = spawn_app().await;
    let m = app.merchant("Comfy Shoes").await;
    let token = forge(
        &hs256_header(),
        &claims_for(&m),
        "another-secret-another-secret-0123456789",
    );

    let res = app.get("/v1/merchant", &token).await;

    assert_problem(res, 401, "invalid_token").await;
}

#[tokio::test]
async fn a_token_whose_claims_were_changed_after_signing_answers_401_invalid_token() {
    // A catalog token whose payload is swapped for one claiming the owner role, signature kept.
    let app = spawn_app().await;
    let owner = app.merchant("Comfy Shoes").await;
    let catalog = app.key_with_role(&owner, "catalog").await;
    let mut parts = catalog.token.split('.');
    let (header, _, signature) = (parts.next().unwrap(), parts.next(), parts.next().unwrap());
    let owner_claims = b64url(claims_for(&catalog).to_string().as_bytes());
    let tampered = format!("{header}.{owner_claims}.{signature}");

    let res = app
        .post("/v1/api-keys", &tampered, json!({"role": "owner"}))
        .await;

    assert_problem(res, 401, "invalid_token").await;
}

#[tokio::test]
async fn a_token_with_alg_none_and_an_empty_signature_answers_401_invalid_token() {
    let app = spawn_app().await;
    let m = app.merchant("Comfy Shoes").await;
    let input = signing_input(&json!({"alg": "none", "typ": "JWT"}), &claims_for(&m));

    for token in [format!("{input}."), input] {
        let res = app.get("/v1/merchant", &token).await;

        assert_problem(res, 401, "invalid_token").await;
    }
}

#[tokio::test]
async fn a_malformed_token_answers_401_invalid_token() {
    let app = spawn_app().await;

    for token in ["not-a-jwt", "a.b.c", "..."] {
        let res = app.get("/v1/merchant", token).await;

        assert_problem(res, 401, "invalid_token").await;
    }
}

#[tokio::test]
async fn a_token_for_another_audience_answers_401_invalid_token() {
    let app = spawn_app().await;
    let m = app.merchant("Comfy Shoes").await;
    let mut claims = claims_for(&m);
    claims["aud"] = json!("someone-else-api");
    let token = forge(&hs256_header(), &claims, JWT_SECRET);

    let res = app.get("/v1/merchant", &token).await;

    assert_problem(res, 401, "invalid_token").await;
}

#[tokio::test]
async fn a_token_from_another_issuer_answers_401_invalid_token() {
    let app = spawn_app().await;
    let m = app.merchant("Comfy Shoes").await;
    let mut claims = claims_for(&m);
    claims["iss"] = json!("not-threadcart");
    let token = forge(&hs256_header(), &claims, JWT_SECRET);

    let res = app.get("/v1/merchant", &token).await;

    assert_problem(res, 401, "invalid_token").await;
}

#[tokio::test]
async fn a_token_naming_another_merchants_key_answers_401_invalid_token() {
    // Even with the right secret, `kid` must be a live key of the merchant in `sub`.
    let app = spawn_app().await;
    let a = app.merchant("Comfy Shoes").await;
    let b = app.merchant("Other Shop").await;
    let mut claims = claims_for(&a);
    claims["kid"] = json!(b.key_id);
    let token = forge(&hs256_header(), &claims, JWT_SECRET);

    let res = app.get("/v1/merchant", &token).await;

    assert_problem(res, 401, "invalid_token").await;
}

#[tokio::test]
async fn a_token_minted_before_its_key_was_revoked_answers_401_invalid_token() {
    // Arrange: a catalog key with a token that works.
    let app = spawn_app().await;
    let owner = app.merchant("Comfy Shoes").await;
    let catalog = app.key_with_role(&owner, "catalog").await;
    assert_eq!(app.get("/v1/merchant", &catalog.token).await.status(), 200);

    // Act
    let res = app
        .delete(&format!("/v1/api-keys/{}", catalog.key_id), &owner.token)
        .await;

    // Assert
    assert_eq!(res.status(), 204);
    assert_problem(
        app.get("/v1/merchant", &catalog.token).await,
        401,
        "invalid_token",
    )
    .await;
    assert_problem(app.post_token(&catalog.api_key).await, 401, "invalid_api_key").await;
    let again = app
        .delete(&format!("/v1/api-keys/{}", catalog.key_id), &owner.token)
        .await;
    assert_problem(again, 404, "not_found").await;
    assert_eq!(
        app.get("/v1/merchant", &owner.token).await.status(),
        200,
        "other keys live on"
    );
}

// ---------------------------------------------------------------------------------------------
// Roles
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_catalog_key_may_not_manage_pages_or_api_keys() {
    let app = spawn_app().await;
    let owner = app.merchant("Comfy Shoes").await;
    let catalog = app.key_with_role(&owner, "catalog").await;

    let page = app
        .post(
            "/v1/pages",
            &catalog.token,
            json!({"page_id": "100000000000001", "name": "Comfy", "access_token": "EAABsecret-token-1234"}),
        )
        .await;
    let key = app
        .post("/v1/api-keys", &catalog.token, json!({"role": "owner"}))
        .await;
    let list_keys = app.get("/v1/api-keys", &catalog.token).await;
    let list_pages = app.get("/v1/pages", &catalog.token).await;
    let revoke = app
        .delete(&format!("/v1/api-keys/{}", owner.key_id), &catalog.token)
        .await;

    for res in [page, key, list_keys, list_pages, revoke] {
        assert_problem(res, 403, "forbidden").await;
    }
    let pages: Value = app.get("/v1/pages", &owner.token).await.json().await.unwrap();
    assert_eq!(pages["data"], json!([]), "nothing was connected");
    assert_eq!(
        app.get("/v1/merchant", &owner.token).await.status(),
        200,
        "the owner key was not revoked"
    );
}

#[tokio::test]
async fn a_marketing_key_may_not_create_products() {
    let app = spawn_app().await;
    let owner = app.merchant("Comfy Shoes").await;
    let marketing = app.key_with_role(&owner, "marketing").await;

    let res = app
        .post(
            "/v1/products",
            &marketing.token,
            product_body("SLIP-01", "Slipper", &[("SLIP-01-40", "40", "49.90", 3)]),
        )
        .await;

    assert_problem(res, 403, "forbidden").await;
    let list: Value = app.get("/v1/products", &owner.token).await.json().await.unwrap();
    assert_eq!(list["data"], json!([]));
}

#[tokio::test]
async fn an_agent_key_may_not_import_a_catalog() {
    let app = spawn_app().await;
    let owner = app.merchant("Comfy Shoes").await;
    let agent = app.key_with_role(&owner, "agent").await;
    let feed = b"id,title,price\nSLIP-01,Slipper,49.90 EUR\n".to_vec();

    let res = app
        .post_raw("/v1/catalog/import", &agent.token, "text/csv", feed.clone())
        .await;

    assert_problem(res, 403, "forbidden").await;
    let list: Value = app.get("/v1/products", &owner.token).await.json().await.unwrap();
    assert_eq!(list["data"], json!([]), "nothing was imported");
    let control = app
        .post_raw("/v1/catalog/import", &owner.token, "text/csv", feed)
        .await;
    assert_eq!(control.status(), 200, "the same feed imports for the owner");
}

#[tokio::test]
async fn a_catalog_key_may_create_a_product() {
    let app = spawn_app().await;
    let owner = app.merchant("Comfy Shoes").await;
    let catalog = app.key_with_role(&owner, "catalog").await;

    let res = app
        .post(
            "/v1/products",
            &catalog.token,
            product_body("SLIP-01", "Slipper", &[("SLIP-01-40", "40", "49.90", 3)]),
        )
        .await;

    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["retailer_id"], "SLIP-01");
}

#[tokio::test]
async fn every_role_may_read_products_and_the_merchant() {
    let app = spawn_app().await;
    let owner = app.merchant("Comfy Shoes").await;
    app.create_product(
        &owner.token,
        product_body("SLIP-01", "Slipper", &[("SLIP-01-40", "40", "49.90", 3)]),
    )
    .await;
    let mut callers = vec![("owner", owner.clone())];
    for role in ["catalog", "marketing", "agent"] {
        callers.push((role, app.key_with_role(&owner, role).await));
    }

    for (role, caller) in &callers {
        let products = app.get("/v1/products", &caller.token).await;
        let merchant = app.get("/v1/merchant", &caller.token).await;

        assert_eq!(products.status(), 200, "{role} lists products");
        let products: Value = products.json().await.unwrap();
        assert_eq!(products["data"].as_array().unwrap().len(), 1, "{role}");
        assert_eq!(merchant.status(), 200, "{role} reads the merchant");
        let merchant: Value = merchant.json().await.unwrap();
        assert_eq!(merchant["id"], owner.id.to_string(), "{role}");
    }
}

// ---------------------------------------------------------------------------------------------
// Brute force
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn brute_force_on_the_token_endpoint_is_rate_limited() {
    // Arrange
    let app = spawn_app_with(&[("THREADCART_AUTH_MAX_FAILURES", "3")]).await;
    let m = app.merchant("Comfy Shoes").await;
    for _ in 0..3 {
        assert_problem(app.post_token(&guess()).await, 401, "invalid_api_key").await;
    }

    // Act: the fourth guess.
    let res = app.post_token(&guess()).await;

    // Assert
    let retry_after: u64 = res
        .headers()
        .get("retry-after")
        .expect("a Retry-After header")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&retry_after), "Retry-After: {retry_after}");
    assert_problem(res, 429, "rate_limited").await;
    assert_eq!(
        app.get("/v1/merchant", &m.token).await.status(),
        200,
        "issued tokens still work"
    );
}

/// A wrong key of the right shape, with a prefix of its own.
fn guess() -> String {
    format!("tc_{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())
}

/// `POST /v1/auth/token` with `X-Forwarded-For: forwarded`.
async fn post_token_via(app: &TestApp, api_key: &str, forwarded: &str) -> reqwest::Response {
    app.client
        .post(format!("{}/v1/auth/token", app.address))
        .header("x-forwarded-for", forwarded)
        .json(&json!({"api_key": api_key}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_valid_key_passes_even_after_its_address_used_up_its_failures() {
    // Arrange: behind one NAT, someone else used up the address's failures.
    let app = spawn_app_with(&[("THREADCART_AUTH_MAX_FAILURES", "3")]).await;
    let m = app.merchant("Comfy Shoes").await;
    for _ in 0..4 {
        app.post_token(&guess()).await;
    }
    assert_problem(app.post_token(&guess()).await, 429, "rate_limited").await;

    // Act
    let res = app.post_token(&m.api_key).await;

    // Assert
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn failures_are_counted_per_client_address_taken_from_the_trusted_proxy_header() {
    // Arrange: every request comes from the proxy; it appends the address it saw.
    let app = spawn_app_with(&[
        ("THREADCART_AUTH_MAX_FAILURES", "3"),
        ("THREADCART_TRUSTED_PROXY_HEADER", "X-Forwarded-For"),
    ])
    .await;
    for forged in ["10.9.9.1", "10.9.9.2", "10.9.9.3"] {
        // What the client sent itself is left of the proxy's entry, and ignored.
        let res = post_token_via(&app, &guess(), &format!("{forged}, 203.0.113.7")).await;
        assert_problem(res, 401, "invalid_api_key").await;
    }

    // Act
    let same_client = post_token_via(&app, &guess(), "10.9.9.4, 203.0.113.7").await;
    let other_client = post_token_via(&app, &guess(), "203.0.113.7, 198.51.100.9").await;

    // Assert
    assert_problem(same_client, 429, "rate_limited").await;
    assert_problem(other_client, 401, "invalid_api_key").await;
}

#[tokio::test]
async fn a_forwarded_for_header_is_ignored_without_a_trusted_proxy_header() {
    // Arrange: no proxy is configured, so the header is the client's word.
    let app = spawn_app_with(&[("THREADCART_AUTH_MAX_FAILURES", "3")]).await;
    for n in 1..=3 {
        post_token_via(&app, &guess(), &format!("198.51.100.{n}")).await;
    }

    // Act
    let res = post_token_via(&app, &guess(), "198.51.100.4").await;

    // Assert
    assert_problem(res, 429, "rate_limited").await;
}

#[tokio::test]
async fn failures_are_counted_per_key_prefix_across_client_addresses() {
    // Arrange: guesses at one key's prefix from many addresses.
    let app = spawn_app_with(&[
        ("THREADCART_AUTH_MAX_FAILURES", "3"),
        ("THREADCART_TRUSTED_PROXY_HEADER", "X-Forwarded-For"),
    ])
    .await;
    let m = app.merchant("Comfy Shoes").await;
    let prefix = &m.api_key[..11];
    let near = |n: usize| format!("{prefix}{}", format!("{n}").repeat(56));
    for n in 1..=3 {
        let res = post_token_via(&app, &near(n), &format!("198.51.100.{n}")).await;
        assert_problem(res, 401, "invalid_api_key").await;
    }

    // Act
    let fourth = post_token_via(&app, &near(4), "198.51.100.4").await;
    let other_prefix = post_token_via(&app, &guess(), "198.51.100.5").await;
    let the_key = post_token_via(&app, &m.api_key, "198.51.100.6").await;

    // Assert
    assert_problem(fourth, 429, "rate_limited").await;
    assert_problem(other_prefix, 401, "invalid_api_key").await;
    assert_eq!(the_key.status(), 200, "the key itself always passes");
}

#[tokio::test]
async fn failed_exchanges_are_counted_in_the_database_so_every_instance_shares_them() {
    // Arrange: a second server on the same database.
    let first = spawn_app_with(&[("THREADCART_AUTH_MAX_FAILURES", "3")]).await;
    let config = crate::helpers::test_config(&first.database.url, &[("THREADCART_AUTH_MAX_FAILURES", "3")]);
    let db = threadcart::db::Db::connect(config.database_url(), 2).unwrap();
    let second = threadcart::startup::Application::build(config, db).unwrap();
    let second_address = format!("http://127.0.0.1:{}", second.port());
    tokio::spawn(second.run_until_stopped());
    let post_second = |key: String| {
        first
            .client
            .post(format!("{second_address}/v1/auth/token"))
            .json(&json!({"api_key": key}))
            .send()
    };
    for _ in 0..2 {
        assert_problem(first.post_token(&guess()).await, 401, "invalid_api_key").await;
    }
    assert_problem(post_second(guess()).await.unwrap(), 401, "invalid_api_key").await;

    // Act
    let res = post_second(guess()).await.unwrap();

    // Assert
    assert_problem(res, 429, "rate_limited").await;
}

// ---------------------------------------------------------------------------------------------
// API keys
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_owner_creates_a_key_of_each_role_whose_secret_is_shown_once() {
    // Arrange
    let app = spawn_app().await;
    let owner = app.merchant("Comfy Shoes").await;
    let mut created = Vec::new();

    // Act
    for role in ["owner", "catalog", "marketing", "agent"] {
        let res = app
            .post(
                "/v1/api-keys",
                &owner.token,
                json!({"role": role, "label": format!("{role} key")}),
            )
            .await;

        // Assert: the secret, once.
        assert_eq!(res.status(), 201, "{role}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["role"], role);
        assert_eq!(body["label"], format!("{role} key"));
        let api_key = body["api_key"].as_str().unwrap().to_owned();
        assert!(api_key.starts_with("tc_"), "{api_key}");
        assert_eq!(api_key.len(), 67);
        let prefix = body["prefix"].as_str().unwrap();
        assert!(!prefix.is_empty() && api_key.starts_with(prefix) && prefix.len() < api_key.len());
        assert!(body["id"].as_str().unwrap().parse::<Uuid>().is_ok());
        assert_eq!(
            app.post_token(&api_key).await.status(),
            200,
            "the new {role} key works"
        );
        created.push((
            body["id"].as_str().unwrap().to_owned(),
            prefix.to_owned(),
            api_key,
        ));
    }

    // Assert: listed by prefix, never by secret.
    let res = app.get("/v1/api-keys", &owner.token).await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    let list: Value = serde_json::from_str(&text).unwrap();
    let data = list["data"].as_array().unwrap();
    assert_eq!(data.len(), 5, "the owner's own key and the four new ones");
    for item in data {
        assert!(item.get("api_key").is_none(), "no secret in {item}");
        assert!(item["prefix"].is_string());
    }
    for (id, prefix, api_key) in &created {
        assert!(!text.contains(api_key.as_str()), "the secret is never listed");
        let item = data.iter().find(|k| k["id"] == id.as_str()).unwrap();
        assert_eq!(item["prefix"], prefix.as_str());
    }
}

#[tokio::test]
async fn an_invalid_role_answers_422_naming_the_role_field() {
    let app = spawn_app().await;
    let owner = app.merchant("Comfy Shoes").await;

    let res = app
        .post("/v1/api-keys", &owner.token, json!({"role": "admin"}))
        .await;

    let body = assert_problem(res, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "role");
    assert_eq!(body["errors"].as_array().unwrap().len(), 1);
    let list: Value = app.get("/v1/api-keys", &owner.token).await.json().await.unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "no key was created");
}

#[tokio::test]
async fn the_key_list_pages_through_every_key_with_next_cursor() {
    // Arrange: the owner key and three more.
    let app = spawn_app().await;
    let owner = app.merchant("Comfy Shoes").await;
    let mut expected: HashSet<String> = HashSet::from([owner.key_id.to_string()]);
    for role in ["catalog", "marketing", "agent"] {
        expected.insert(app.key_with_role(&owner, role).await.key_id.to_string());
    }

    // Act
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let path = match &cursor {
            None => "/v1/api-keys?limit=1".to_owned(),
            Some(c) => format!("/v1/api-keys?limit=1&cursor={c}"),
        };
        let res = app.get(&path, &owner.token).await;
        assert_eq!(res.status(), 200);
        let page: Value = res.json().await.unwrap();
        let data = page["data"].as_array().unwrap();
        assert_eq!(data.len(), 1, "{page}");
        seen.push(data[0]["id"].as_str().unwrap().to_owned());
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }

    // Assert
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert_eq!(seen.iter().cloned().collect::<HashSet<_>>(), expected);
}

#[tokio::test]
async fn revoking_an_unknown_key_answers_404_not_found() {
    let app = spawn_app().await;
    let owner = app.merchant("Comfy Shoes").await;

    let res = app
        .delete(&format!("/v1/api-keys/{}", Uuid::now_v7()), &owner.token)
        .await;

    assert_problem(res, 404, "not_found").await;
}

#[tokio::test]
async fn concurrent_guesses_cannot_exceed_the_failure_limit() {
    // Arrange
    let app = spawn_app_with(&[("THREADCART_AUTH_MAX_FAILURES", "3")]).await;
    let guesses: Vec<String> = (0..20).map(|i| format!("tc_{i:064}")).collect();

    // Act: all at once.
    let answers = futures_util::future::join_all(guesses.iter().map(|guess| app.post_token(guess))).await;

    // Assert
    let statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    let refused = statuses.iter().filter(|s| **s == 401).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(refused + limited, 20, "{statuses:?}");
    assert_eq!(refused, 3, "guesses checked against the database: {statuses:?}");
}

#[tokio::test]
async fn successful_exchanges_do_not_count_towards_the_failure_limit() {
    // Arrange
    let app = spawn_app_with(&[("THREADCART_AUTH_MAX_FAILURES", "3")]).await;
    let m = app.merchant("Comfy Shoes").await;

    // Act & Assert: many good exchanges, then the three failures allowed, then none.
    for _ in 0..10 {
        assert_eq!(app.post_token(&m.api_key).await.status(), 200);
    }
    for _ in 0..3 {
        assert_problem(app.post_token(&guess()).await, 401, "invalid_api_key").await;
    }
    assert_problem(app.post_token(&guess()).await, 429, "rate_limited").await;
    assert_eq!(app.post_token(&m.api_key).await.status(), 200);
}

#[tokio::test]
async fn a_token_is_renewed_for_the_same_key_and_role_until_the_key_is_revoked() {
    // Arrange: a marketing key with a token that works.
    let app = spawn_app().await;
    let owner = app.merchant("Comfy Shoes").await;
    let marketing = app.key_with_role(&owner, "marketing").await;

    // Act
    let renewed = app.post("/v1/auth/refresh", &marketing.token, json!({})).await;

    // Assert: a new token of the same role, which works
    assert_eq!(renewed.status(), 200);
    let body: Value = renewed.json().await.unwrap();
    assert_eq!(body["role"], "marketing");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(app.get("/v1/orders", token).await.status(), 200);
    assert_eq!(app.get("/v1/api-keys", token).await.status(), 403);

    // once the key is revoked, neither token renews
    let revoked = app
        .delete(&format!("/v1/api-keys/{}", marketing.key_id), &owner.token)
        .await;
    assert_eq!(revoked.status(), 204);
    assert_problem(
        app.post("/v1/auth/refresh", token, json!({})).await,
        401,
        "invalid_token",
    )
    .await;
    assert_problem(
        app.post("/v1/auth/refresh", &marketing.token, json!({})).await,
        401,
        "invalid_token",
    )
    .await;
}

#[tokio::test]
async fn renewing_without_a_token_is_refused() {
    let app = spawn_app().await;

    let res = app
        .client
        .post(format!("{}/v1/auth/refresh", app.address))
        .send()
        .await
        .unwrap();

    assert_problem(res, 401, "missing_token").await;
}
