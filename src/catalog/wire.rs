//! The catalog's JSON shapes on the wire (CONTRACT.md "Core shapes"), converted to and from the domain at
//! the edge.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use super::domain::{NewProduct, ProductInput, VariantInput};
use super::{Product, Variant};
use crate::kernel::{FieldError, RetailerId, timestamp};
use crate::money::{Currency, MoneyDto};

/// `POST /v1/products` and each element of a JSON import.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductCreate {
    /// Retailer id.
    pub retailer_id: RetailerId,
    /// Title.
    pub title: String,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Image URL.
    #[serde(default)]
    pub image_url: Option<String>,
    /// Product page URL.
    #[serde(default)]
    pub url: Option<String>,
    /// Brand.
    #[serde(default)]
    pub brand: Option<String>,
    /// Featured.
    #[serde(default)]
    pub featured: bool,
    /// Labels (`slippers`), matched against agents' skills.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Variants.
    pub variants: Vec<VariantCreate>,
}

/// `POST /v1/products/{id}/variants` and the variants of a product.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantCreate {
    /// SKU.
    pub sku: String,
    /// Name.
    pub name: String,
    /// Options.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Price.
    pub price: MoneyDto,
    /// Stock.
    pub stock: i64,
}

impl VariantCreate {
    /// The raw domain input.
    pub fn input(&self) -> VariantInput<'_> {
        VariantInput {
            sku: &self.sku,
            name: &self.name,
            options: &self.options,
            price: self.price.parse_price(),
            stock: self.stock,
        }
    }
}

impl ProductCreate {
    /// Validates into a new product in `currency`.
    pub fn parse(&self, currency: Currency) -> Result<NewProduct, Vec<FieldError>> {
        let product = ProductInput {
            retailer_id: &self.retailer_id,
            title: &self.title,
            description: self.description.as_deref(),
            image_url: self.image_url.as_deref(),
            url: self.url.as_deref(),
            brand: self.brand.as_deref(),
            featured: self.featured,
            labels: &self.labels,
        };
        let variants: Vec<VariantInput<'_>> = self.variants.iter().map(VariantCreate::input).collect();
        NewProduct::parse(&product, &variants, currency)
    }
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
pub fn double_option<'de, T, D>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}

/// `PATCH /v1/products/{id}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductUpdate {
    /// Title.
    #[serde(default)]
    pub title: Option<String>,
    /// Description (`null` clears).
    #[serde(default, deserialize_with = "double_option")]
    pub description: Option<Option<String>>,
    /// Image URL (`null` clears).
    #[serde(default, deserialize_with = "double_option")]
    pub image_url: Option<Option<String>>,
    /// Page URL (`null` clears).
    #[serde(default, deserialize_with = "double_option")]
    pub url: Option<Option<String>>,
    /// Brand (`null` clears).
    #[serde(default, deserialize_with = "double_option")]
    pub brand: Option<Option<String>>,
    /// Featured.
    #[serde(default)]
    pub featured: Option<bool>,
    /// Labels (replaces all).
    #[serde(default)]
    pub labels: Option<Vec<String>>,
}

/// `PATCH /v1/products/{id}/variants/{variant_id}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantUpdate {
    /// SKU.
    #[serde(default)]
    pub sku: Option<String>,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Options (replaces all).
    #[serde(default)]
    pub options: Option<BTreeMap<String, String>>,
    /// Price.
    #[serde(default)]
    pub price: Option<MoneyDto>,
    /// Absolute stock.
    #[serde(default)]
    pub stock: Option<i64>,
}

/// `POST .../stock-adjustments`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StockAdjustment {
    /// Units to add (negative to take away).
    pub delta: i64,
}

/// A product as answered.
#[derive(Debug, Clone, Serialize)]
pub struct ProductBody {
    id: Uuid,
    retailer_id: RetailerId,
    title: String,
    description: Option<String>,
    image_url: Option<String>,
    url: Option<String>,
    brand: Option<String>,
    featured: bool,
    labels: crate::kernel::Labels,
    variants: Vec<VariantBody>,
    created_at: String,
    updated_at: String,
}

/// A variant as answered.
#[derive(Debug, Clone, Serialize)]
pub struct VariantBody {
    id: Uuid,
    sku: String,
    name: String,
    options: BTreeMap<String, String>,
    price: MoneyDto,
    stock: i64,
    created_at: String,
    updated_at: String,
}

impl From<Variant> for VariantBody {
    fn from(v: Variant) -> Self {
        VariantBody {
            id: v.id,
            sku: v.sku,
            name: v.name,
            options: v.options,
            price: v.price.into(),
            stock: v.stock,
            created_at: timestamp(v.created_at),
            updated_at: timestamp(v.updated_at),
        }
    }
}

impl From<Product> for ProductBody {
    fn from(p: Product) -> Self {
        ProductBody {
            id: p.id,
            retailer_id: p.fields.retailer_id,
            title: p.fields.title,
            description: p.fields.description,
            image_url: p.fields.image_url,
            url: p.fields.url,
            brand: p.fields.brand,
            featured: p.fields.featured,
            labels: p.fields.labels,
            variants: p.variants.into_iter().map(VariantBody::from).collect(),
            created_at: timestamp(p.created_at),
            updated_at: timestamp(p.updated_at),
        }
    }
}
