//! Catalog import: Meta's catalog feed as CSV, or a JSON list of products. Good rows are kept, bad rows
//! are reported by number and reason; parsing is pure, storage happens in [`super::upsert_product`].
//!
//! Rows are numbered from 1: the first record after the CSV header, or the first element of the JSON list.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::domain::{FieldError, ProductFields, ProductInput, VariantFields, VariantInput};
use super::wire::ProductCreate;
use crate::money::{Currency, Money};

/// The largest feed accepted, in bytes.
pub const MAX_IMPORT_BYTES: usize = 5 * 1024 * 1024;

/// The CSV columns a feed must have.
const REQUIRED_COLUMNS: [&str; 3] = ["id", "title", "price"];

/// A bad row and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// Row number (1 = first record).
    pub row: usize,
    /// Stable snake_case code.
    pub code: &'static str,
    /// A sentence for humans.
    pub detail: String,
}

/// A product to create or update, from one or more rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportProduct {
    /// Descriptive fields (from the group's first good row).
    pub fields: ProductFields,
    /// Its variants.
    pub variants: Vec<ImportVariant>,
}

/// A variant to create or update by SKU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportVariant {
    /// The row it came from.
    pub row: usize,
    /// Validated fields (stock is 0 when not given).
    pub fields: VariantFields,
    /// Whether the feed said how many are in stock; when not, an existing variant keeps its stock.
    pub stock_given: bool,
}

/// A parsed feed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// Good products.
    pub products: Vec<ImportProduct>,
    /// Bad rows.
    pub errors: Vec<RowError>,
}

/// The whole file is unusable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImportError {
    /// A CSV without the required columns.
    #[error(
        "the CSV header lacks the column(s) {0}; Meta's feed columns are id,title,description,availability,condition,price,link,image_link,brand,item_group_id,size,color"
    )]
    MissingColumns(String),
    /// Not UTF-8, not CSV, not a JSON list.
    #[error("{0}")]
    Malformed(String),
}

fn row_error(row: usize, errors: &[FieldError]) -> RowError {
    let detail = errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.detail))
        .collect::<Vec<_>>()
        .join("; ");
    let code = match errors {
        [one] => one.code,
        _ => "validation_failed",
    };
    RowError { row, code, detail }
}

/// Parses a JSON list of products (each in the `POST /v1/products` shape).
pub fn parse_json(body: &[u8], currency: Currency) -> Result<Parsed, ImportError> {
    let items: Vec<serde_json::Value> = serde_json::from_slice(body)
        .map_err(|e| ImportError::Malformed(format!("the body is not a JSON list of products: {e}")))?;
    let mut parsed = Parsed::default();
    let mut seen = HashSet::new();
    for (i, item) in items.into_iter().enumerate() {
        let row = i + 1;
        let create: ProductCreate = match serde_json::from_value(item) {
            Ok(c) => c,
            Err(e) => {
                parsed.errors.push(RowError {
                    row,
                    code: "invalid_json",
                    detail: e.to_string(),
                });
                continue;
            }
        };
        match create.parse(currency) {
            Err(errors) => parsed.errors.push(row_error(row, &errors)),
            Ok(_) if !seen.insert(create.retailer_id.clone()) => parsed.errors.push(RowError {
                row,
                code: "duplicate",
                detail: format!(
                    "retailer id `{}` appears earlier in this import",
                    create.retailer_id
                ),
            }),
            Ok(product) => parsed.products.push(ImportProduct {
                fields: product.fields,
                variants: product
                    .variants
                    .into_iter()
                    .map(|fields| ImportVariant {
                        row,
                        fields,
                        stock_given: true,
                    })
                    .collect(),
            }),
        }
    }
    Ok(parsed)
}

/// One CSV record, by column name.
struct Record<'a> {
    columns: &'a HashMap<String, usize>,
    record: &'a csv::StringRecord,
}

impl Record<'_> {
    fn get(&self, column: &str) -> Option<&str> {
        self.columns
            .get(column)
            .and_then(|&i| self.record.get(i))
            .map(str::trim)
            .filter(|v| !v.is_empty())
    }
}

/// Parses Meta's catalog feed CSV; rows sharing `item_group_id` become variants of one product.
pub fn parse_csv(body: &[u8], currency: Currency) -> Result<Parsed, ImportError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(body);
    let headers = reader
        .headers()
        .map_err(|e| ImportError::Malformed(format!("the CSV header cannot be read: {e}")))?;
    let columns: HashMap<String, usize> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| (h.trim().to_lowercase(), i))
        .collect();
    let missing: Vec<&str> = REQUIRED_COLUMNS
        .into_iter()
        .filter(|c| !columns.contains_key(*c))
        .collect();
    if !missing.is_empty() {
        return Err(ImportError::MissingColumns(missing.join(", ")));
    }

    let mut parsed = Parsed::default();
    let mut groups: Vec<ImportProduct> = Vec::new();
    let mut group_index: HashMap<String, usize> = HashMap::new();
    let mut skus = HashSet::new();
    for (i, result) in reader.records().enumerate() {
        let row = i + 1;
        let record = match result {
            Ok(r) => r,
            Err(e) => {
                parsed.errors.push(RowError {
                    row,
                    code: "malformed_row",
                    detail: e.to_string(),
                });
                continue;
            }
        };
        let rec = Record {
            columns: &columns,
            record: &record,
        };
        match csv_row(&rec, row, currency) {
            Err(e) => parsed.errors.push(e),
            Ok((fields, variant)) => {
                if !skus.insert(variant.fields.sku.clone()) {
                    parsed.errors.push(RowError {
                        row,
                        code: "duplicate",
                        detail: format!("id `{}` appears earlier in this feed", variant.fields.sku),
                    });
                    continue;
                }
                match group_index.get(&fields.retailer_id) {
                    Some(&g) => {
                        if let Some(group) = groups.get_mut(g) {
                            group.variants.push(variant);
                        }
                    }
                    None => {
                        group_index.insert(fields.retailer_id.clone(), groups.len());
                        groups.push(ImportProduct {
                            fields,
                            variants: vec![variant],
                        });
                    }
                }
            }
        }
    }
    for group in &groups {
        if group.variants.len() > super::domain::MAX_VARIANTS {
            parsed.errors.extend(
                group
                    .variants
                    .iter()
                    .skip(super::domain::MAX_VARIANTS)
                    .map(|v| RowError {
                        row: v.row,
                        code: "too_many",
                        detail: format!("a product has at most {} variants", super::domain::MAX_VARIANTS),
                    }),
            );
        }
    }
    for mut group in groups {
        group.variants.truncate(super::domain::MAX_VARIANTS);
        parsed.products.push(group);
    }
    parsed.errors.sort_by_key(|e| e.row);
    Ok(parsed)
}

/// One feed row: the product it belongs to and the variant it describes.
fn csv_row(
    rec: &Record<'_>,
    row: usize,
    currency: Currency,
) -> Result<(ProductFields, ImportVariant), RowError> {
    let mut errors = Vec::new();
    let sku = rec.get("id").unwrap_or_default();
    let title = rec.get("title").unwrap_or_default();
    let retailer_id = rec.get("item_group_id").unwrap_or(sku);
    let fields = ProductFields::parse(
        &ProductInput {
            retailer_id,
            title,
            description: rec.get("description"),
            image_url: rec.get("image_link"),
            url: rec.get("link"),
            brand: rec.get("brand"),
            featured: false,
        },
        &mut errors,
    );
    let mut options = BTreeMap::new();
    for (column, option) in [("size", "size"), ("color", "color")] {
        if let Some(value) = rec.get(column) {
            options.insert(option.to_owned(), value.to_owned());
        }
    }
    let name = if options.is_empty() {
        title.chars().take(80).collect()
    } else {
        options.values().rev().cloned().collect::<Vec<_>>().join(" / ")
    };
    let price = match rec.get("price") {
        None => Err(crate::money::MoneyError::InvalidFeedPrice(String::new())),
        Some(p) => Money::parse_feed_price(p),
    };
    let availability = rec.get("availability").map(str::to_lowercase);
    let quantity = rec
        .get("quantity_to_sell_on_facebook")
        .or_else(|| rec.get("inventory"));
    let stock = match (quantity, availability.as_deref()) {
        (Some(q), _) => match q.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => {
                errors.push(FieldError::new(
                    "quantity_to_sell_on_facebook",
                    "invalid_quantity",
                    format!("`{q}` is not a whole number"),
                ));
                None
            }
        },
        (None, Some("out of stock" | "discontinued")) => Some(0),
        (None, _) => None,
    };
    let variant = VariantFields::parse(
        "",
        &VariantInput {
            sku,
            name: &name,
            options: &options,
            price,
            stock: stock.unwrap_or(0),
        },
        currency,
        &mut errors,
    );
    match variant {
        Some(variant) if errors.is_empty() => Ok((
            fields,
            ImportVariant {
                row,
                fields: variant,
                stock_given: stock.is_some(),
            },
        )),
        _ => Err(row_error(row, &errors)),
    }
}
