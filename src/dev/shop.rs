//! A demo shop page (`/dev/shop`) with the web chat widget on it, as a merchant puts it on their own site:
//! one `<script>` tag. Its product buttons open the chat on the product (`data-threadcart-ref`), as a
//! link with a `ref` would.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::escape;
use crate::error::ApiError;
use crate::http::AppState;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/dev/shop", web::get().to(page));
}

#[derive(Deserialize)]
struct Params {
    /// A demo merchant's slug (`comfy-shoes`, `dream-hotels`).
    merchant: Option<String>,
}

async fn page(state: web::Data<AppState>, params: web::Query<Params>) -> Result<HttpResponse, ApiError> {
    let slug = params
        .into_inner()
        .merchant
        .unwrap_or_else(|| "comfy-shoes".to_owned());
    let found = state
        .db
        .query(move |conn| {
            let Some(merchant) = crate::merchants::find_demo(conn, &slug)? else {
                return Ok(None);
            };
            let webchat = crate::channels::webchat::settings(conn, merchant.id)?;
            let products = crate::catalog::browse(conn, merchant.id, 24)?;
            let rooms = crate::bookings::list(
                conn,
                merchant.id,
                &crate::bookings::BookableQuery {
                    page: crate::db::Keyset::OLDEST_FIRST,
                    limit: 12,
                    active_only: true,
                },
            )?;
            Ok(Some((merchant, webchat, products, rooms)))
        })
        .await?;
    let Some((merchant, webchat, products, rooms)) = found else {
        return Err(ApiError::not_found("demo merchant"));
    };
    let mut items = String::new();
    for p in &products {
        let price = p
            .variants
            .iter()
            .map(|v| v.price)
            .min_by_key(|m| m.minor())
            .map(|m| m.to_string())
            .unwrap_or_default();
        let image = p
            .fields
            .image_url
            .as_deref()
            .map(|u| format!("<img src=\"{}\" alt=\"\" loading=\"lazy\">", escape(u)))
            .unwrap_or_default();
        items.push_str(&format!(
            "<li>{image}<h2>{}</h2><p>{}</p><button type=\"button\" data-threadcart-ref=\"p={}\">Ask about it in the chat</button></li>\n",
            escape(&p.fields.title),
            escape(&price),
            escape(&p.fields.retailer_id),
        ));
    }
    for r in &rooms {
        items.push_str(&format!(
            "<li><h2>{}</h2><p>from {} / night</p><button type=\"button\" data-threadcart-ref=\"b={}\">Book it in the chat</button></li>\n",
            escape(&r.spec.name),
            escape(&r.spec.base_price.to_string()),
            r.id.simple(),
        ));
    }
    let html = PAGE
        .replace("{{NAME}}", &escape(&merchant.name))
        .replace("{{ITEMS}}", &items)
        .replace("{{KEY}}", &escape(&webchat.public_key));
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("cache-control", "no-store"))
        .body(html))
}

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{NAME}} (demo shop)</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 0; color: #1d1d1f; background: #fafafa; }
  header { padding: 1rem 1.25rem; background: #fff; border-bottom: 1px solid #ddd; }
  header p { margin: .25rem 0 0; color: #555; font-size: .9rem; }
  main { padding: 1rem; max-width: 60rem; margin: 0 auto; }
  ul { list-style: none; padding: 0; display: grid; grid-template-columns: repeat(auto-fill, minmax(13rem, 1fr)); gap: 1rem; }
  li { background: #fff; border: 1px solid #ddd; border-radius: .5rem; padding: .75rem; }
  li img { width: 100%; aspect-ratio: 4 / 3; object-fit: cover; border-radius: .25rem; background: #eee; }
  h1 { margin: 0; font-size: 1.4rem; }
  h2 { font-size: 1rem; margin: .5rem 0 .25rem; }
  button { font: inherit; padding: .4rem .7rem; border-radius: .3rem; border: 1px solid #0a58ca; background: #0d6efd; color: #fff; cursor: pointer; }
  button:focus-visible { outline: 3px solid #ffbf00; outline-offset: 2px; }
</style>
</head>
<body>
<header>
  <h1>{{NAME}}</h1>
  <p>A demo shop page served by threadcart's dev mode. The chat in the corner is the web chat widget,
  put on this page with one script tag, as on any site.</p>
</header>
<main>
  <ul>
{{ITEMS}}  </ul>
</main>
<script src="/webchat/widget.js" data-key="{{KEY}}" async></script>
</body>
</html>
"#;
