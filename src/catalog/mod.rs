//! The merchant's catalog: products (matching the ids of the merchant's Meta catalog) and their
//! variants, with stock that can never go below zero, and the import of Meta catalog feeds.

pub mod domain;
pub mod import;
pub mod search;
pub mod wire;

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use uuid::Uuid;

use crate::db::is_unique_violation_on;
use crate::db::schema::{products, variants};
use crate::db::{DbConnection, DbUuid, now, write_transaction};
use crate::kernel::{FieldError, Labels, MerchantId, RetailerId};
use crate::money::{Currency, Money};
use domain::{NewProduct, ProductFields, VariantFields};

/// A product with its variants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    /// Id.
    pub id: Uuid,
    /// Descriptive fields.
    pub fields: ProductFields,
    /// Variants in display order.
    pub variants: Vec<Variant>,
    /// Created (UTC).
    pub created_at: NaiveDateTime,
    /// Last changed (UTC).
    pub updated_at: NaiveDateTime,
}

/// A sellable variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    /// Id.
    pub id: Uuid,
    /// The product it belongs to.
    pub product_id: Uuid,
    /// SKU.
    pub sku: String,
    /// Name.
    pub name: String,
    /// Options (size, color ...).
    pub options: BTreeMap<String, String>,
    /// Unit price.
    pub price: Money,
    /// Units on hand.
    pub stock: i64,
    /// Created (UTC).
    pub created_at: NaiveDateTime,
    /// Last changed (UTC).
    pub updated_at: NaiveDateTime,
}

/// What a catalog change can run into.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// No such product or variant for this merchant.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Another product of the merchant has this retailer id.
    #[error("another product already has retailer id `{0}`")]
    RetailerIdTaken(RetailerId),
    /// Another variant of the merchant has this SKU.
    #[error("another variant already has SKU `{0}`")]
    SkuTaken(String),
    /// A product keeps at least one variant.
    #[error("a product keeps at least one variant: delete the product instead")]
    LastVariant,
    /// The stock change would go below zero.
    #[error("only {available} in stock")]
    InsufficientStock {
        /// Units on hand now.
        available: i64,
    },
    /// Input broke field rules.
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
    /// The database could not be reached.
    #[error(transparent)]
    Unavailable(#[from] crate::db::DbError),
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = products)]
struct ProductRow {
    id: DbUuid,
    retailer_id: RetailerId,
    title: String,
    description: Option<String>,
    image_url: Option<String>,
    url: Option<String>,
    brand: Option<String>,
    featured: bool,
    labels: String,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = variants)]
struct VariantRow {
    id: DbUuid,
    product_id: DbUuid,
    sku: String,
    name: String,
    options: String,
    price_minor: i64,
    currency: String,
    stock: i64,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

fn corrupt(what: String) -> diesel::result::Error {
    diesel::result::Error::DeserializationError(what.into())
}

impl TryFrom<VariantRow> for Variant {
    type Error = diesel::result::Error;

    fn try_from(row: VariantRow) -> Result<Self, Self::Error> {
        let currency = Currency::parse(&row.currency).map_err(|e| corrupt(e.to_string()))?;
        Ok(Variant {
            id: row.id.0,
            product_id: row.product_id.0,
            sku: row.sku,
            name: row.name,
            options: serde_json::from_str(&row.options).map_err(|e| corrupt(e.to_string()))?,
            price: Money::from_minor(row.price_minor, currency),
            stock: row.stock,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

impl ProductRow {
    fn into_product(self, variants: Vec<Variant>) -> Product {
        Product {
            id: self.id.0,
            fields: ProductFields {
                retailer_id: self.retailer_id,
                title: self.title,
                description: self.description,
                image_url: self.image_url,
                url: self.url,
                brand: self.brand,
                featured: self.featured,
                labels: Labels::from_stored(&self.labels).unwrap_or_default(),
            },
            variants,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// The folded text `q` is matched against.
fn search_text(fields: &ProductFields) -> String {
    search::fold(&format!(
        "{} {} {}",
        fields.title,
        fields.brand.as_deref().unwrap_or_default(),
        fields.retailer_id
    ))
}

fn options_json(options: &BTreeMap<String, String>) -> String {
    serde_json::to_string(options).unwrap_or_else(|_| "{}".into())
}

fn load_variants(conn: &mut DbConnection, product_ids: &[Uuid]) -> QueryResult<Vec<Variant>> {
    let ordered = variants::table
        .order((variants::product_id.asc(), variants::position.asc()))
        .select(VariantRow::as_select());
    // One product (a card, a cart line) is the common case: `= $1` keeps one plan for every call, where
    // PostgreSQL plans `= ANY($1)` anew each time.
    let rows: Vec<VariantRow> = match product_ids {
        [id] => ordered.filter(variants::product_id.eq(DbUuid(*id))).load(conn)?,
        _ => {
            let ids: Vec<DbUuid> = product_ids.iter().copied().map(DbUuid).collect();
            ordered.filter(variants::product_id.eq_any(ids)).load(conn)?
        }
    };
    rows.into_iter().map(Variant::try_from).collect()
}

fn attach_variants(conn: &mut DbConnection, rows: Vec<ProductRow>) -> QueryResult<Vec<Product>> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id.0).collect();
    let mut by_product: BTreeMap<Uuid, Vec<Variant>> = BTreeMap::new();
    for v in load_variants(conn, &ids)? {
        by_product.entry(v.product_id).or_default().push(v);
    }
    Ok(rows
        .into_iter()
        .map(|r| {
            let vs = by_product.remove(&r.id.0).unwrap_or_default();
            r.into_product(vs)
        })
        .collect())
}

/// The merchant's product `id` with its variants.
pub fn get_product(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    id: Uuid,
) -> Result<Product, CatalogError> {
    let row = products::table
        .filter(products::id.eq(DbUuid(id)))
        .filter(products::merchant_id.eq(merchant_id))
        .select(ProductRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(CatalogError::NotFound("product"))?;
    attach_variants(conn, vec![row])?
        .into_iter()
        .next()
        .ok_or(CatalogError::NotFound("product"))
}

/// The product a catalog item id names: a product's retailer id (a feed's `item_group_id`), else the
/// product of the variant with that SKU (a feed's `id`: Meta's catalog items are variants, so a
/// product message or a shopper's question names one).
pub fn find_by_item_id(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    item_id: &str,
) -> Result<Option<Product>, CatalogError> {
    if let Some(product) = find_by_retailer_id(conn, merchant_id, &RetailerId::from(item_id))? {
        return Ok(Some(product));
    }
    match variant_id_by_sku(conn, merchant_id, item_id)? {
        Some(variant) => Ok(variant_with_product(conn, merchant_id, variant)?.map(|(product, _)| product)),
        None => Ok(None),
    }
}

/// The merchant's product with `retailer_id`, if any.
pub fn find_by_retailer_id(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    retailer_id: &RetailerId,
) -> Result<Option<Product>, CatalogError> {
    let id: Option<DbUuid> = products::table
        .filter(products::merchant_id.eq(merchant_id))
        .filter(products::retailer_id.eq(retailer_id))
        .select(products::id)
        .first(conn)
        .optional()?;
    id.map(|id| get_product(conn, merchant_id, id.0)).transpose()
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct ProductQuery {
    /// Where the page starts and which way it reads.
    pub page: crate::db::Keyset,
    /// Page size.
    pub limit: i64,
    /// Folded words that must all appear in title, brand or retailer id.
    pub words: Vec<String>,
}

/// A page of the merchant's products, newest created first unless the query asks oldest first.
pub fn list_products(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    q: &ProductQuery,
) -> QueryResult<Vec<Product>> {
    let mut query = products::table
        .filter(products::merchant_id.eq(merchant_id))
        .limit(q.limit)
        .select(ProductRow::as_select())
        .into_boxed();
    query = crate::keyset!(query, products::id, q.page);
    for word in &q.words {
        query = query.filter(products::search_text.like(format!("%{word}%")));
    }
    let rows = query.load(conn)?;
    attach_variants(conn, rows)
}

fn insert_variant(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    product_id: Uuid,
    position: i32,
    v: &VariantFields,
) -> Result<Uuid, CatalogError> {
    let id = Uuid::now_v7();
    let at = now();
    diesel::insert_into(variants::table)
        .values((
            variants::id.eq(DbUuid(id)),
            variants::product_id.eq(DbUuid(product_id)),
            variants::merchant_id.eq(merchant_id),
            variants::sku.eq(&v.sku),
            variants::name.eq(&v.name),
            variants::options.eq(options_json(&v.options)),
            variants::price_minor.eq(v.price.minor()),
            variants::currency.eq(v.price.currency().code()),
            variants::stock.eq(v.stock),
            variants::position.eq(position),
            variants::created_at.eq(at),
            variants::updated_at.eq(at),
        ))
        .execute(conn)
        .map_err(|e| {
            if is_unique_violation_on(&e, "variants") {
                CatalogError::SkuTaken(v.sku.clone())
            } else {
                e.into()
            }
        })?;
    Ok(id)
}

fn insert_product_row(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    fields: &ProductFields,
) -> Result<Uuid, CatalogError> {
    let id = Uuid::now_v7();
    let at = now();
    diesel::insert_into(products::table)
        .values((
            products::id.eq(DbUuid(id)),
            products::merchant_id.eq(merchant_id),
            products::retailer_id.eq(&fields.retailer_id),
            products::title.eq(&fields.title),
            products::description.eq(&fields.description),
            products::image_url.eq(&fields.image_url),
            products::url.eq(&fields.url),
            products::brand.eq(&fields.brand),
            products::featured.eq(fields.featured),
            products::labels.eq(fields.labels.stored()),
            products::search_text.eq(search_text(fields)),
            products::created_at.eq(at),
            products::updated_at.eq(at),
        ))
        .execute(conn)
        .map_err(|e| {
            if is_unique_violation_on(&e, "products") {
                CatalogError::RetailerIdTaken(fields.retailer_id.clone())
            } else {
                e.into()
            }
        })?;
    Ok(id)
}

fn update_product_row(conn: &mut DbConnection, id: Uuid, fields: &ProductFields) -> Result<(), CatalogError> {
    diesel::update(products::table.filter(products::id.eq(DbUuid(id))))
        .set((
            products::title.eq(&fields.title),
            products::description.eq(&fields.description),
            products::image_url.eq(&fields.image_url),
            products::url.eq(&fields.url),
            products::brand.eq(&fields.brand),
            products::featured.eq(fields.featured),
            products::labels.eq(fields.labels.stored()),
            products::search_text.eq(search_text(fields)),
            products::updated_at.eq(now()),
        ))
        .execute(conn)?;
    Ok(())
}

/// Creates a product and its variants in one transaction.
pub fn create_product(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    new: &NewProduct,
) -> Result<Product, CatalogError> {
    write_transaction(conn, |conn| {
        let id = insert_product_row(conn, merchant_id, &new.fields)?;
        for (position, v) in (0i32..).zip(&new.variants) {
            insert_variant(conn, merchant_id, id, position, v)?;
        }
        get_product(conn, merchant_id, id)
    })
}

/// A partial change to a product's descriptive fields (`Some(None)` clears an optional field).
#[derive(Debug, Clone, Default)]
pub struct ProductPatch {
    /// New title.
    pub title: Option<String>,
    /// New description or none.
    pub description: Option<Option<String>>,
    /// New image URL or none.
    pub image_url: Option<Option<String>>,
    /// New page URL or none.
    pub url: Option<Option<String>>,
    /// New brand or none.
    pub brand: Option<Option<String>>,
    /// New featured flag.
    pub featured: Option<bool>,
    /// New labels.
    pub labels: Option<Labels>,
}

/// Applies a patch to the merchant's product.
pub fn update_product(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    id: Uuid,
    patch: ProductPatch,
) -> Result<Product, CatalogError> {
    write_transaction(conn, |conn| {
        let mut fields = get_product(conn, merchant_id, id)?.fields;
        if let Some(title) = patch.title {
            fields.title = title;
        }
        if let Some(description) = patch.description {
            fields.description = description;
        }
        if let Some(image_url) = patch.image_url {
            fields.image_url = image_url;
        }
        if let Some(url) = patch.url {
            fields.url = url;
        }
        if let Some(brand) = patch.brand {
            fields.brand = brand;
        }
        if let Some(featured) = patch.featured {
            fields.featured = featured;
        }
        if let Some(labels) = patch.labels {
            fields.labels = labels;
        }
        update_product_row(conn, id, &fields)?;
        get_product(conn, merchant_id, id)
    })
}

/// Deletes the merchant's product and its variants.
pub fn delete_product(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    id: Uuid,
) -> Result<(), CatalogError> {
    let n = diesel::delete(
        products::table
            .filter(products::id.eq(DbUuid(id)))
            .filter(products::merchant_id.eq(merchant_id)),
    )
    .execute(conn)?;
    if n == 0 {
        return Err(CatalogError::NotFound("product"));
    }
    Ok(())
}

fn get_variant(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    product_id: Uuid,
    id: Uuid,
) -> Result<Variant, CatalogError> {
    variants::table
        .filter(variants::id.eq(DbUuid(id)))
        .filter(variants::product_id.eq(DbUuid(product_id)))
        .filter(variants::merchant_id.eq(merchant_id))
        .select(VariantRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(CatalogError::NotFound("variant"))?
        .try_into()
        .map_err(CatalogError::Db)
}

fn next_position(conn: &mut DbConnection, product_id: Uuid) -> QueryResult<i32> {
    let max: Option<i32> = variants::table
        .filter(variants::product_id.eq(DbUuid(product_id)))
        .select(diesel::dsl::max(variants::position))
        .first(conn)?;
    Ok(max.map_or(0, |m| m + 1))
}

/// Adds a variant to the merchant's product.
pub fn add_variant(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    product_id: Uuid,
    v: &VariantFields,
) -> Result<Variant, CatalogError> {
    write_transaction(conn, |conn| {
        let count: i64 = products::table
            .filter(products::id.eq(DbUuid(product_id)))
            .filter(products::merchant_id.eq(merchant_id))
            .count()
            .get_result(conn)?;
        if count == 0 {
            return Err(CatalogError::NotFound("product"));
        }
        let existing: i64 = variants::table
            .filter(variants::product_id.eq(DbUuid(product_id)))
            .count()
            .get_result(conn)?;
        if existing >= domain::MAX_VARIANTS as i64 {
            return Err(CatalogError::Invalid(vec![FieldError::new(
                "variants",
                "too_many",
                format!("a product has at most {} variants", domain::MAX_VARIANTS),
            )]));
        }
        let position = next_position(conn, product_id)?;
        let id = insert_variant(conn, merchant_id, product_id, position, v)?;
        get_variant(conn, merchant_id, product_id, id)
    })
}

/// A partial change to a variant.
#[derive(Debug, Clone, Default)]
pub struct VariantPatch {
    /// New SKU.
    pub sku: Option<String>,
    /// New name.
    pub name: Option<String>,
    /// Replaces all options.
    pub options: Option<BTreeMap<String, String>>,
    /// New price.
    pub price: Option<Money>,
    /// New absolute stock.
    pub stock: Option<i64>,
}

#[derive(AsChangeset)]
#[diesel(table_name = variants)]
struct VariantChanges {
    sku: Option<String>,
    name: Option<String>,
    options: Option<String>,
    price_minor: Option<i64>,
    currency: Option<String>,
    stock: Option<i64>,
    updated_at: NaiveDateTime,
}

/// Applies a patch to the merchant's variant.
pub fn update_variant(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    product_id: Uuid,
    id: Uuid,
    patch: VariantPatch,
) -> Result<Variant, CatalogError> {
    write_transaction(conn, |conn| {
        get_variant(conn, merchant_id, product_id, id)?;
        let sku = patch.sku.clone();
        let changes = VariantChanges {
            sku: patch.sku,
            name: patch.name,
            options: patch.options.as_ref().map(options_json),
            price_minor: patch.price.map(|p| p.minor()),
            currency: patch.price.map(|p| p.currency().code().to_owned()),
            stock: patch.stock,
            updated_at: now(),
        };
        diesel::update(variants::table.filter(variants::id.eq(DbUuid(id))))
            .set(changes)
            .execute(conn)
            .map_err(|e| match sku {
                Some(sku) if is_unique_violation_on(&e, "variants") => CatalogError::SkuTaken(sku),
                _ => e.into(),
            })?;
        get_variant(conn, merchant_id, product_id, id)
    })
}

/// Deletes a variant; the product's last one stays.
pub fn delete_variant(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    product_id: Uuid,
    id: Uuid,
) -> Result<(), CatalogError> {
    write_transaction(conn, |conn| {
        get_variant(conn, merchant_id, product_id, id)?;
        let count: i64 = variants::table
            .filter(variants::product_id.eq(DbUuid(product_id)))
            .count()
            .get_result(conn)?;
        if count <= 1 {
            return Err(CatalogError::LastVariant);
        }
        diesel::delete(variants::table.filter(variants::id.eq(DbUuid(id)))).execute(conn)?;
        Ok(())
    })
}

/// Adds `delta` (negative to take away) to a variant's stock in one conditional statement, so
/// concurrent decrements can never take it below zero on either backend.
pub fn adjust_stock(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    product_id: Uuid,
    id: Uuid,
    delta: i64,
) -> Result<Variant, CatalogError> {
    let target = variants::table
        .filter(variants::id.eq(DbUuid(id)))
        .filter(variants::product_id.eq(DbUuid(product_id)))
        .filter(variants::merchant_id.eq(merchant_id));
    let changed = diesel::update(
        target
            .filter(variants::stock.ge(delta.saturating_neg()))
            .filter(variants::stock.le(domain::MAX_STOCK.saturating_sub(delta))),
    )
    .set((
        variants::stock.eq(variants::stock + delta),
        variants::updated_at.eq(now()),
    ))
    .execute(conn)?;
    let variant = get_variant(conn, merchant_id, product_id, id)?;
    if changed == 0 {
        if delta < 0 {
            return Err(CatalogError::InsufficientStock {
                available: variant.stock,
            });
        }
        return Err(CatalogError::Invalid(vec![FieldError::new(
            "delta",
            "out_of_range",
            format!("stock would exceed {}", domain::MAX_STOCK),
        )]));
    }
    Ok(variant)
}

/// How one imported product fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    /// A new product.
    Created,
    /// An existing product, matched by retailer id.
    Updated,
}

/// Creates or updates a product by retailer id and its variants by SKU, in one transaction. Variants
/// whose SKU belongs to another product are reported in `rejected` (with their row) and skipped;
/// variants missing from the import are left alone.
pub fn upsert_product(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    item: &import::ImportProduct,
    rejected: &mut Vec<import::RowError>,
) -> Result<Upserted, CatalogError> {
    write_transaction(conn, |conn| {
        let existing: Option<DbUuid> = products::table
            .filter(products::merchant_id.eq(merchant_id))
            .filter(products::retailer_id.eq(&item.fields.retailer_id))
            .select(products::id)
            .first(conn)
            .optional()?;
        let (product_id, outcome) = match existing {
            Some(id) => {
                // Unchanged rows are left alone, so `updated_at` means a real change (the demo data is
                // loaded at every start).
                // A feed without labels leaves the product's own (set through the API) alone.
                let before = get_product(conn, merchant_id, id.0)?.fields;
                let mut fields = item.fields.clone();
                if fields.labels.as_slice().is_empty() {
                    fields.labels = before.labels.clone();
                }
                if before != fields {
                    update_product_row(conn, id.0, &fields)?;
                }
                (id.0, Upserted::Updated)
            }
            None => (
                insert_product_row(conn, merchant_id, &item.fields)?,
                Upserted::Created,
            ),
        };
        let mut position = next_position(conn, product_id)?;
        let mut kept = 0usize;
        for v in &item.variants {
            let found: Option<VariantRow> = variants::table
                .filter(variants::merchant_id.eq(merchant_id))
                .filter(variants::sku.eq(&v.fields.sku))
                .select(VariantRow::as_select())
                .first(conn)
                .optional()?;
            let found = found.map(Variant::try_from).transpose()?;
            match found {
                Some(other) if other.product_id != product_id => rejected.push(import::RowError {
                    row: v.row,
                    code: "sku_taken",
                    detail: format!("SKU `{}` belongs to another product", v.fields.sku),
                }),
                Some(same)
                    if same.name == v.fields.name
                        && same.options == v.fields.options
                        && same.price == v.fields.price
                        && (!v.stock_given || same.stock == v.fields.stock) =>
                {
                    kept += 1;
                }
                Some(changed) => {
                    diesel::update(variants::table.filter(variants::id.eq(DbUuid(changed.id))))
                        .set(VariantChanges {
                            sku: None,
                            name: Some(v.fields.name.clone()),
                            options: Some(options_json(&v.fields.options)),
                            price_minor: Some(v.fields.price.minor()),
                            currency: Some(v.fields.price.currency().code().to_owned()),
                            stock: v.stock_given.then_some(v.fields.stock),
                            updated_at: now(),
                        })
                        .execute(conn)?;
                    kept += 1;
                }
                None => {
                    insert_variant(conn, merchant_id, product_id, position, &v.fields)?;
                    position += 1;
                    kept += 1;
                }
            }
        }
        if kept == 0 && outcome == Upserted::Created {
            // A new product without any variant would be unsellable: undo it.
            return Err(CatalogError::Invalid(Vec::new()));
        }
        Ok(outcome)
    })
}

/// Products to browse in the thread: featured first, then in creation order.
pub fn browse(conn: &mut DbConnection, merchant_id: MerchantId, limit: i64) -> QueryResult<Vec<Product>> {
    let rows = products::table
        .filter(products::merchant_id.eq(merchant_id))
        .order((products::featured.desc(), products::id.asc()))
        .limit(limit)
        .select(ProductRow::as_select())
        .load(conn)?;
    attach_variants(conn, rows)
}

/// The merchant's variant `id` with its product (another merchant's answers `None`).
pub fn variant_with_product(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    id: Uuid,
) -> Result<Option<(Product, Variant)>, CatalogError> {
    let product_id: Option<DbUuid> = variants::table
        .filter(variants::id.eq(DbUuid(id)))
        .filter(variants::merchant_id.eq(merchant_id))
        .select(variants::product_id)
        .first(conn)
        .optional()?;
    let Some(product_id) = product_id else {
        return Ok(None);
    };
    let product = get_product(conn, merchant_id, product_id.0)?;
    let variant = product.variants.iter().find(|v| v.id == id).cloned();
    Ok(variant.map(|v| (product, v)))
}

/// The id of the merchant's variant with `sku`.
pub fn variant_id_by_sku(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    sku: &str,
) -> QueryResult<Option<Uuid>> {
    let id: Option<DbUuid> = variants::table
        .filter(variants::merchant_id.eq(merchant_id))
        .filter(variants::sku.eq(sku))
        .select(variants::id)
        .first(conn)
        .optional()?;
    Ok(id.map(|i| i.0))
}
