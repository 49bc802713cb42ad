//! Catalog domain types: parsed once at the edge, trusted everywhere after.

use std::collections::BTreeMap;

use crate::money::{Currency, Money};

/// A rule a field broke, reported to the caller with the field's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field, as the caller named it (`variants[2].price`).
    pub field: String,
    /// Stable snake_case code.
    pub code: &'static str,
    /// A sentence for humans.
    pub detail: String,
}

impl FieldError {
    /// A field error.
    pub fn new(field: impl Into<String>, code: &'static str, detail: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            code,
            detail: detail.into(),
        }
    }
}

/// Checks a free-text identifier (retailer id, SKU): 1 to 100 characters, no control characters, no
/// surrounding blanks. Meta catalog ids are free strings, so nothing stricter is asked.
fn identifier(field: &str, value: &str, errors: &mut Vec<FieldError>) -> String {
    if value.is_empty() {
        errors.push(FieldError::new(field, "required", "must not be empty"));
    } else if value.chars().count() > 100 {
        errors.push(FieldError::new(
            field,
            "too_long",
            "must be at most 100 characters",
        ));
    } else if value.trim() != value || value.chars().any(char::is_control) {
        errors.push(FieldError::new(
            field,
            "invalid_characters",
            "must not contain control characters or surrounding blanks",
        ));
    }
    value.to_owned()
}

/// Checks a required text of at most `max` characters, trimmed.
fn text(field: &str, value: &str, max: usize, errors: &mut Vec<FieldError>) -> String {
    let value = value.trim();
    if value.is_empty() {
        errors.push(FieldError::new(field, "required", "must not be empty"));
    } else if value.chars().count() > max {
        errors.push(FieldError::new(
            field,
            "too_long",
            format!("must be at most {max} characters"),
        ));
    }
    value.to_owned()
}

/// Checks an optional text: blank becomes absent.
fn optional_text(
    field: &str,
    value: Option<&str>,
    max: usize,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    let value = value.map(str::trim).filter(|v| !v.is_empty())?;
    if value.chars().count() > max {
        errors.push(FieldError::new(
            field,
            "too_long",
            format!("must be at most {max} characters"),
        ));
    }
    Some(value.to_owned())
}

/// Checks an optional absolute http(s) URL.
fn optional_url(field: &str, value: Option<&str>, errors: &mut Vec<FieldError>) -> Option<String> {
    let value = value.map(str::trim).filter(|v| !v.is_empty())?;
    let has_host = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"))
        .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'));
    if !has_host || value.chars().any(char::is_whitespace) {
        errors.push(FieldError::new(
            field,
            "invalid_url",
            "must be an absolute http or https URL",
        ));
    } else if value.len() > 2000 {
        errors.push(FieldError::new(
            field,
            "too_long",
            "must be at most 2000 characters",
        ));
    }
    Some(value.to_owned())
}

/// The most variants one product may have.
pub const MAX_VARIANTS: usize = 100;
/// The highest stock a variant may hold.
pub const MAX_STOCK: i64 = 1_000_000_000;

/// The descriptive fields of a product, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductFields {
    /// The retailer id, matching the merchant's Meta catalog (`ads_context_data.product_id`).
    pub retailer_id: String,
    /// Title shown on cards.
    pub title: String,
    /// Longer description.
    pub description: Option<String>,
    /// Absolute image URL.
    pub image_url: Option<String>,
    /// The product's page on the merchant's site.
    pub url: Option<String>,
    /// Brand, searched with the title.
    pub brand: Option<String>,
    /// Shown first when the shopper browses.
    pub featured: bool,
}

/// Raw product input from any edge (JSON body, CSV row group), before validation.
#[derive(Debug, Clone, Default)]
pub struct ProductInput<'a> {
    /// Retailer id.
    pub retailer_id: &'a str,
    /// Title.
    pub title: &'a str,
    /// Description.
    pub description: Option<&'a str>,
    /// Image URL.
    pub image_url: Option<&'a str>,
    /// Product page URL.
    pub url: Option<&'a str>,
    /// Brand.
    pub brand: Option<&'a str>,
    /// Featured flag.
    pub featured: bool,
}

impl ProductFields {
    /// Validates product fields; errors name fields under `prefix` (empty for the top level).
    pub fn parse(input: &ProductInput<'_>, errors: &mut Vec<FieldError>) -> ProductFields {
        ProductFields {
            retailer_id: identifier("retailer_id", input.retailer_id, errors),
            title: text("title", input.title, 200, errors),
            description: optional_text("description", input.description, 5000, errors),
            image_url: optional_url("image_url", input.image_url, errors),
            url: optional_url("url", input.url, errors),
            brand: optional_text("brand", input.brand, 100, errors),
            featured: input.featured,
        }
    }

    /// Validates a title on its own (for partial updates).
    pub fn parse_title(value: &str, errors: &mut Vec<FieldError>) -> String {
        text("title", value, 200, errors)
    }

    /// Validates a description on its own.
    pub fn parse_description(value: Option<&str>, errors: &mut Vec<FieldError>) -> Option<String> {
        optional_text("description", value, 5000, errors)
    }

    /// Validates a URL field on its own.
    pub fn parse_url(field: &str, value: Option<&str>, errors: &mut Vec<FieldError>) -> Option<String> {
        optional_url(field, value, errors)
    }

    /// Validates a brand on its own.
    pub fn parse_brand(value: Option<&str>, errors: &mut Vec<FieldError>) -> Option<String> {
        optional_text("brand", value, 100, errors)
    }
}

/// A sellable variant, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariantFields {
    /// Stock keeping unit, unique per merchant.
    pub sku: String,
    /// Short name shown on quick replies ("42", "42 / Grey").
    pub name: String,
    /// Options such as size and colour.
    pub options: BTreeMap<String, String>,
    /// Unit price, never negative, in the merchant's currency.
    pub price: Money,
    /// Units on hand.
    pub stock: i64,
}

/// Raw variant input, before validation.
#[derive(Debug, Clone)]
pub struct VariantInput<'a> {
    /// SKU.
    pub sku: &'a str,
    /// Name.
    pub name: &'a str,
    /// Options.
    pub options: &'a BTreeMap<String, String>,
    /// Price, already parsed from its wire form.
    pub price: Result<Money, crate::money::MoneyError>,
    /// Stock.
    pub stock: i64,
}

impl VariantFields {
    /// Validates a variant; `prefix` names it in errors (`variants[0]`).
    pub fn parse(
        prefix: &str,
        input: &VariantInput<'_>,
        currency: Currency,
        errors: &mut Vec<FieldError>,
    ) -> Option<VariantFields> {
        let before = errors.len();
        let sku = identifier(&format!("{prefix}sku"), input.sku, errors);
        let name = text(&format!("{prefix}name"), input.name, 80, errors);
        let options = Self::parse_options(&format!("{prefix}options"), input.options, errors);
        let price = Self::parse_price(&format!("{prefix}price"), input.price.clone(), currency, errors);
        let stock = Self::parse_stock(&format!("{prefix}stock"), input.stock, errors);
        (errors.len() == before).then_some(())?;
        Some(VariantFields {
            sku,
            name,
            options,
            price: price?,
            stock,
        })
    }

    /// Validates a SKU on its own.
    pub fn parse_sku(field: &str, value: &str, errors: &mut Vec<FieldError>) -> String {
        identifier(field, value, errors)
    }

    /// Validates a variant name on its own.
    pub fn parse_name(field: &str, value: &str, errors: &mut Vec<FieldError>) -> String {
        text(field, value, 80, errors)
    }

    /// Validates options: at most 10, names 1-40 characters, values 1-80.
    pub fn parse_options(
        field: &str,
        options: &BTreeMap<String, String>,
        errors: &mut Vec<FieldError>,
    ) -> BTreeMap<String, String> {
        if options.len() > 10 {
            errors.push(FieldError::new(field, "too_many", "at most 10 options"));
        }
        let mut clean = BTreeMap::new();
        for (key, value) in options {
            let (key, value) = (key.trim(), value.trim());
            if key.is_empty() || key.chars().count() > 40 || value.is_empty() || value.chars().count() > 80 {
                errors.push(FieldError::new(
                    format!("{field}.{key}"),
                    "invalid_option",
                    "option names take 1 to 40 characters and values 1 to 80",
                ));
            }
            clean.insert(key.to_lowercase(), value.to_owned());
        }
        clean
    }

    /// Validates a price: parsed, not negative, in the merchant's currency.
    pub fn parse_price(
        field: &str,
        price: Result<Money, crate::money::MoneyError>,
        currency: Currency,
        errors: &mut Vec<FieldError>,
    ) -> Option<Money> {
        match price {
            Err(e) => {
                errors.push(FieldError::new(field, e.code(), e.to_string()));
                None
            }
            Ok(p) if p.is_negative() => {
                errors.push(FieldError::new(
                    field,
                    "negative_amount",
                    "a price must not be negative",
                ));
                None
            }
            Ok(p) if p.currency() != currency => {
                errors.push(FieldError::new(
                    field,
                    "currency_mismatch",
                    format!("prices must be in the merchant's currency {currency}"),
                ));
                None
            }
            Ok(p) => Some(p),
        }
    }

    /// Validates a stock level.
    pub fn parse_stock(field: &str, stock: i64, errors: &mut Vec<FieldError>) -> i64 {
        if !(0..=MAX_STOCK).contains(&stock) {
            errors.push(FieldError::new(
                field,
                "out_of_range",
                format!("stock must be between 0 and {MAX_STOCK}"),
            ));
        }
        stock
    }
}

/// A new product with its variants, validated as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProduct {
    /// Descriptive fields.
    pub fields: ProductFields,
    /// At least one variant, SKUs distinct.
    pub variants: Vec<VariantFields>,
}

impl NewProduct {
    /// Validates a product and its variants together, collecting every error.
    pub fn parse(
        product: &ProductInput<'_>,
        variants: &[VariantInput<'_>],
        currency: Currency,
    ) -> Result<NewProduct, Vec<FieldError>> {
        let mut errors = Vec::new();
        let fields = ProductFields::parse(product, &mut errors);
        if variants.is_empty() {
            errors.push(FieldError::new(
                "variants",
                "required",
                "a product needs at least one variant",
            ));
        } else if variants.len() > MAX_VARIANTS {
            errors.push(FieldError::new(
                "variants",
                "too_many",
                format!("a product has at most {MAX_VARIANTS} variants"),
            ));
        }
        let mut parsed = Vec::with_capacity(variants.len());
        let mut skus = std::collections::HashSet::new();
        for (i, input) in variants.iter().enumerate() {
            let prefix = format!("variants[{i}].");
            if !skus.insert(input.sku) {
                errors.push(FieldError::new(
                    format!("{prefix}sku"),
                    "duplicate",
                    "each variant needs its own SKU",
                ));
            }
            if let Some(v) = VariantFields::parse(&prefix, input, currency, &mut errors) {
                parsed.push(v);
            }
        }
        if errors.is_empty() {
            Ok(NewProduct {
                fields,
                variants: parsed,
            })
        } else {
            Err(errors)
        }
    }
}
