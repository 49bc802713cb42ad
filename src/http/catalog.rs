//! Catalog routes: products, variants, stock, feed import.

use actix_web::http::{Method, StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Api, ListBody, PageParams, created};
use crate::auth::{Caller, Permission};
use crate::catalog::domain::{ProductFields, VariantFields};
use crate::catalog::import::{self, MAX_IMPORT_BYTES, RowError};
use crate::catalog::wire::{
    ProductBody, ProductCreate, ProductUpdate, StockAdjustment, VariantBody, VariantCreate, VariantUpdate,
};
use crate::catalog::{self, CatalogError, ProductPatch, ProductQuery, Upserted, VariantPatch};
use crate::error::{ApiError, ErrorCode};
use crate::http::AppState;
use crate::kernel::FieldError;

pub(super) fn routes(api: &mut Api<'_>) {
    api.route(Method::GET, "/v1/products", list_products)
        .route(Method::POST, "/v1/products", create_product)
        .route(Method::GET, "/v1/products/{product_id}", get_product)
        .route(Method::PATCH, "/v1/products/{product_id}", update_product)
        .route(Method::DELETE, "/v1/products/{product_id}", delete_product)
        .route(Method::POST, "/v1/products/{product_id}/variants", create_variant)
        .route(
            Method::PATCH,
            "/v1/products/{product_id}/variants/{variant_id}",
            update_variant,
        )
        .route(
            Method::DELETE,
            "/v1/products/{product_id}/variants/{variant_id}",
            delete_variant,
        )
        .route(
            Method::POST,
            "/v1/products/{product_id}/variants/{variant_id}/stock-adjustments",
            adjust_stock,
        )
        .route(Method::POST, "/v1/catalog/import", import_catalog);
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::NotFound(what) => ApiError::not_found(what),
            CatalogError::RetailerIdTaken(_) => ApiError::conflict(ErrorCode::RetailerIdTaken, e.to_string()),
            CatalogError::SkuTaken(_) => ApiError::conflict(ErrorCode::SkuTaken, e.to_string()),
            CatalogError::LastVariant => ApiError::conflict(ErrorCode::LastVariant, e.to_string()),
            CatalogError::InsufficientStock { .. } => {
                ApiError::conflict(ErrorCode::InsufficientStock, e.to_string())
            }
            CatalogError::Invalid(errors) => ApiError::validation(errors),
            CatalogError::Db(db) => db.into(),
            CatalogError::Unavailable(db) => db.into(),
        }
    }
}

#[derive(Deserialize)]
struct ListParams {
    limit: Option<i64>,
    cursor: Option<String>,
    order: Option<String>,
    q: Option<String>,
}

async fn list_products(
    caller: Caller,
    state: web::Data<AppState>,
    params: web::Query<ListParams>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ReadCatalog)?;
    let params = params.into_inner();
    let page = PageParams {
        limit: params.limit,
        cursor: params.cursor,
        order: params.order.clone(),
    };
    let limit = page.limit()?;
    let q = params.q.unwrap_or_default();
    if q.chars().count() > 200 {
        return Err(ApiError::validation(vec![FieldError::new(
            "q",
            "too_long",
            "must be at most 200 characters",
        )]));
    }
    let query = ProductQuery {
        page: page.keyset()?,
        limit: limit + 1,
        words: catalog::search::query_words(&q),
    };
    let items = state
        .db
        .query(move |conn| catalog::list_products(conn, caller.merchant_id, &query))
        .await?;
    Ok(HttpResponse::Ok().json(ListBody::from_items(
        items,
        limit,
        |p| p.id.to_string(),
        ProductBody::from,
    )))
}

async fn create_product(
    caller: Caller,
    state: web::Data<AppState>,
    body: web::Json<ProductCreate>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::WriteCatalog)?;
    let currency = super::merchant_currency(&state, caller.merchant_id).await?;
    let new = body.parse(currency).map_err(ApiError::validation)?;
    let product = super::run(&state, move |conn| {
        catalog::create_product(conn, caller.merchant_id, &new)
    })
    .await?;
    tracing::info!(merchant.id = %caller.merchant_id, product.id = %product.id, "product created");
    Ok(created(ProductBody::from(product)))
}

async fn get_product(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ReadCatalog)?;
    let id = path.into_inner();
    let product = super::run(&state, move |conn| {
        catalog::get_product(conn, caller.merchant_id, id)
    })
    .await?;
    Ok(HttpResponse::Ok().json(ProductBody::from(product)))
}

async fn update_product(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    body: web::Json<ProductUpdate>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::WriteCatalog)?;
    let body = body.into_inner();
    let mut errors = Vec::new();
    let patch = ProductPatch {
        title: body.title.map(|t| ProductFields::parse_title(&t, &mut errors)),
        description: body
            .description
            .map(|d| ProductFields::parse_description(d.as_deref(), &mut errors)),
        image_url: body
            .image_url
            .map(|u| ProductFields::parse_url("image_url", u.as_deref(), &mut errors)),
        url: body
            .url
            .map(|u| ProductFields::parse_url("url", u.as_deref(), &mut errors)),
        brand: body
            .brand
            .map(|b| ProductFields::parse_brand(b.as_deref(), &mut errors)),
        featured: body.featured,
        labels: body
            .labels
            .map(|l| crate::kernel::Labels::parse("labels", &l, &mut errors)),
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let id = path.into_inner();
    let product = super::run(&state, move |conn| {
        catalog::update_product(conn, caller.merchant_id, id, patch)
    })
    .await?;
    Ok(HttpResponse::Ok().json(ProductBody::from(product)))
}

async fn delete_product(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::WriteCatalog)?;
    let id = path.into_inner();
    super::run(&state, move |conn| {
        catalog::delete_product(conn, caller.merchant_id, id)
    })
    .await?;
    tracing::info!(merchant.id = %caller.merchant_id, product.id = %id, "product deleted");
    Ok(HttpResponse::NoContent().finish())
}

async fn create_variant(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    body: web::Json<VariantCreate>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::WriteCatalog)?;
    let currency = super::merchant_currency(&state, caller.merchant_id).await?;
    let mut errors = Vec::new();
    let fields = VariantFields::parse("", &body.input(), currency, &mut errors)
        .ok_or_else(|| ApiError::validation(errors))?;
    let product_id = path.into_inner();
    let variant = super::run(&state, move |conn| {
        catalog::add_variant(conn, caller.merchant_id, product_id, &fields)
    })
    .await?;
    Ok(created(VariantBody::from(variant)))
}

async fn update_variant(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, Uuid)>,
    body: web::Json<VariantUpdate>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::WriteCatalog)?;
    let currency = super::merchant_currency(&state, caller.merchant_id).await?;
    let body = body.into_inner();
    let mut errors = Vec::new();
    let patch = VariantPatch {
        sku: body.sku.map(|s| VariantFields::parse_sku("sku", &s, &mut errors)),
        name: body
            .name
            .map(|n| VariantFields::parse_name("name", &n, &mut errors)),
        options: body
            .options
            .map(|o| VariantFields::parse_options("options", &o, &mut errors)),
        price: body
            .price
            .and_then(|p| VariantFields::parse_price("price", p.parse_price(), currency, &mut errors)),
        stock: body
            .stock
            .map(|s| VariantFields::parse_stock("stock", s, &mut errors)),
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let (product_id, id) = path.into_inner();
    let variant = super::run(&state, move |conn| {
        catalog::update_variant(conn, caller.merchant_id, product_id, id, patch)
    })
    .await?;
    Ok(HttpResponse::Ok().json(VariantBody::from(variant)))
}

async fn delete_variant(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::WriteCatalog)?;
    let (product_id, id) = path.into_inner();
    super::run(&state, move |conn| {
        catalog::delete_variant(conn, caller.merchant_id, product_id, id)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn adjust_stock(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, Uuid)>,
    body: web::Json<StockAdjustment>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::WriteCatalog)?;
    let (product_id, id) = path.into_inner();
    let delta = body.delta;
    let variant = super::run(&state, move |conn| {
        catalog::adjust_stock(conn, caller.merchant_id, product_id, id, delta)
    })
    .await?;
    Ok(HttpResponse::Ok().json(VariantBody::from(variant)))
}

#[derive(Serialize)]
struct ImportRowError {
    row: usize,
    code: &'static str,
    detail: String,
}

#[derive(Serialize)]
struct ImportBody {
    created: usize,
    updated: usize,
    errors: Vec<ImportRowError>,
}

async fn import_catalog(
    caller: Caller,
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::WriteCatalog)?;
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let is_csv = match content_type.as_str() {
        "text/csv" => true,
        "application/json" => false,
        _ => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
                "send the feed as text/csv (Meta catalog columns) or application/json (a list of products)",
            ));
        }
    };
    let body = super::read_limited(&req, payload, MAX_IMPORT_BYTES).await?;
    let currency = super::merchant_currency(&state, caller.merchant_id).await?;
    let merchant_id = caller.merchant_id;
    let parsed = web::block(move || {
        if is_csv {
            import::parse_csv(&body, currency)
        } else {
            import::parse_json(&body, currency)
        }
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e| ApiError::bad_request(ErrorCode::InvalidFeed, e.to_string()))?;
    let (created_count, updated_count, errors) = super::run(&state, move |conn| {
        let mut errors: Vec<RowError> = parsed.errors;
        let (mut created_count, mut updated_count) = (0, 0);
        for item in &parsed.products {
            let mut rejected = Vec::new();
            match catalog::upsert_product(conn, merchant_id, item, &mut rejected) {
                Ok(Upserted::Created) => created_count += 1,
                Ok(Upserted::Updated) => updated_count += 1,
                // Every variant was rejected (listed in `rejected`), so the new product was undone.
                Err(CatalogError::Invalid(_)) => {}
                Err(CatalogError::RetailerIdTaken(id)) => {
                    errors.extend(item.variants.iter().map(|v| RowError {
                        row: v.row,
                        code: "retailer_id_taken",
                        detail: format!("retailer id `{id}` was taken by a concurrent change"),
                    }))
                }
                Err(CatalogError::SkuTaken(sku)) => errors.extend(item.variants.iter().map(|v| RowError {
                    row: v.row,
                    code: "sku_taken",
                    detail: format!("SKU `{sku}` was taken by a concurrent change"),
                })),
                Err(other) => return Err(other),
            }
            errors.extend(rejected);
        }
        errors.sort_by_key(|e| e.row);
        Ok((created_count, updated_count, errors))
    })
    .await?;
    tracing::info!(
        merchant.id = %merchant_id,
        import.created = created_count,
        import.updated = updated_count,
        import.errors = errors.len(),
        "catalog imported"
    );
    Ok(HttpResponse::Ok().json(ImportBody {
        created: created_count,
        updated: updated_count,
        errors: errors
            .into_iter()
            .map(|e| ImportRowError {
                row: e.row,
                code: e.code,
                detail: e.detail,
            })
            .collect(),
    }))
}
