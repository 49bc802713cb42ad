//! The merchant dashboard: one static page, served in every mode, holding no secret.

use crate::helpers::spawn_app;

#[tokio::test]
async fn the_dashboard_is_an_html_page_without_secrets_outside_dev_mode() {
    // Arrange: not dev mode
    let app = spawn_app().await;

    // Act
    let res = app
        .client
        .get(format!("{}/dashboard", app.address))
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(res.status(), 200);
    let headers = res.headers().clone();
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("connect-src 'self'")
    );
    let html = res.text().await.unwrap();
    assert!(html.contains("<script>") && html.contains("/v1/auth/token"));
    assert!(html.contains("<label for=\"api-key\""));
    for secret in ["tc_demo", "sk_test", "sk_live", "whsec_", "Bearer ey"] {
        assert!(!html.contains(secret), "the page holds {secret}");
    }
    for storage in ["localStorage", "sessionStorage", "document.cookie"] {
        assert!(!html.contains(storage), "the page uses {storage}");
    }
}
