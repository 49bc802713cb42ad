//! Catalog domain types: parsed once at the edge, trusted everywhere after.

use std::collections::BTreeMap;

use crate::kernel::{FieldError, Labels, RetailerId};
use crate::money::{Currency, Money};

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
pub(crate) fn text(field: &str, value: &str, max: usize, errors: &mut Vec<FieldError>) -> String {
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
pub(crate) fn optional_text(
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

/// Whether `url` is `http://` or `https://` followed by a non-empty host (optionally with user info and
/// port): "https://?q" and "https://user@:443/" have none.
fn has_host(url: &str) -> bool {
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    match host_port.strip_prefix('[') {
        Some(ipv6) => ipv6.split_once(']').is_some_and(|(host, _)| !host.is_empty()),
        None => host_port.split(':').next().is_some_and(|host| !host.is_empty()),
    }
}

/// Checks an optional absolute http(s) URL.
pub(crate) fn optional_url(field: &str, value: Option<&str>, errors: &mut Vec<FieldError>) -> Option<String> {
    let value = value.map(str::trim).filter(|v| !v.is_empty())?;
    if !has_host(value) || value.chars().any(char::is_whitespace) {
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
    pub retailer_id: RetailerId,
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
    /// Labels (`slippers`): agents with these skills answer shoppers looking at it.
    pub labels: Labels,
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
    /// Labels.
    pub labels: &'a [String],
}

impl ProductFields {
    /// Validates product fields; errors name fields under `prefix` (empty for the top level).
    pub fn parse(input: &ProductInput<'_>, errors: &mut Vec<FieldError>) -> ProductFields {
        ProductFields {
            retailer_id: identifier("retailer_id", input.retailer_id, errors).into(),
            title: text("title", input.title, 200, errors),
            description: optional_text("description", input.description, 5000, errors),
            image_url: optional_url("image_url", input.image_url, errors),
            url: optional_url("url", input.url, errors),
            brand: optional_text("brand", input.brand, 100, errors),
            featured: input.featured,
            labels: Labels::parse("labels", input.labels, errors),
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn eur() -> Currency {
        Currency::parse("EUR").unwrap()
    }

    /// The `(field, code)` pairs of `errors`.
    fn codes(errors: &[FieldError]) -> Vec<(&str, &'static str)> {
        errors.iter().map(|e| (e.field.as_str(), e.code)).collect()
    }

    fn check_identifier(value: &str) -> Vec<FieldError> {
        let mut errors = Vec::new();
        identifier("sku", value, &mut errors);
        errors
    }

    fn check_url(value: &str) -> Vec<FieldError> {
        let mut errors = Vec::new();
        optional_url("url", Some(value), &mut errors);
        errors
    }

    fn check_options(pairs: &[(&str, &str)]) -> (BTreeMap<String, String>, Vec<FieldError>) {
        let options: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let mut errors = Vec::new();
        let clean = VariantFields::parse_options("options", &options, &mut errors);
        (clean, errors)
    }

    fn product(retailer_id: &str) -> ProductInput<'_> {
        ProductInput {
            retailer_id,
            title: "Comfy slippers",
            ..ProductInput::default()
        }
    }

    fn variant<'a>(sku: &'a str, options: &'a BTreeMap<String, String>, amount: &str) -> VariantInput<'a> {
        VariantInput {
            sku,
            name: "42",
            options,
            price: Money::parse_price(amount, eur()),
            stock: 1,
        }
    }

    #[test]
    fn an_ordinary_identifier_is_accepted_as_given() {
        let mut errors = Vec::new();

        let value = identifier("sku", "SLIP-01/42 grey", &mut errors);

        assert!(errors.is_empty());
        assert_eq!(value, "SLIP-01/42 grey");
    }

    #[test]
    fn an_identifier_with_a_control_character_is_refused() {
        for value in ["SLIP\n01", "SLIP\t01", "SLIP\u{0}01", "SLIP\u{7f}"] {
            assert_eq!(
                codes(&check_identifier(value)),
                [("sku", "invalid_characters")],
                "{value:?}"
            );
        }
    }

    #[test]
    fn an_identifier_with_surrounding_blanks_is_refused() {
        assert_eq!(codes(&check_identifier(" SLIP")), [("sku", "invalid_characters")]);
        assert_eq!(codes(&check_identifier("SLIP ")), [("sku", "invalid_characters")]);
    }

    #[test]
    fn an_empty_identifier_is_required() {
        assert_eq!(codes(&check_identifier("")), [("sku", "required")]);
    }

    #[test]
    fn an_identifier_counts_characters_not_bytes() {
        assert!(check_identifier(&"é".repeat(100)).is_empty());
        assert_eq!(codes(&check_identifier(&"a".repeat(101))), [("sku", "too_long")]);
    }

    #[test]
    fn an_absolute_http_or_https_url_with_a_host_is_accepted() {
        for url in [
            "https://example.com",
            "http://example.com/a/b?c=d#e",
            "https://user@example.com:8443/x",
            "https://[::1]:8080/x",
            "https://example.com?q=1",
        ] {
            assert!(check_url(url).is_empty(), "{url}");
        }
    }

    #[test]
    fn a_url_without_a_host_is_refused() {
        for url in [
            "https://",
            "http://",
            "https:///path",
            "https://?q=1",
            "https://#top",
            "https://:443/x",
            "https://user@/x",
            "https://[]/x",
        ] {
            assert_eq!(codes(&check_url(url)), [("url", "invalid_url")], "{url}");
        }
    }

    #[test]
    fn a_url_of_another_scheme_or_relative_or_with_blanks_is_refused() {
        for url in [
            "ftp://example.com",
            "example.com",
            "/slip.jpg",
            "https://exa mple.com",
        ] {
            assert_eq!(codes(&check_url(url)), [("url", "invalid_url")], "{url}");
        }
    }

    #[test]
    fn a_blank_optional_url_or_text_becomes_absent() {
        let mut errors = Vec::new();

        let url = optional_url("url", Some("   "), &mut errors);
        let text = optional_text("brand", Some(" "), 100, &mut errors);

        assert_eq!((url, text), (None, None));
        assert!(errors.is_empty());
    }

    #[test]
    fn a_url_over_2000_characters_is_too_long() {
        let url = format!("https://example.com/{}", "a".repeat(2000));

        assert_eq!(codes(&check_url(&url)), [("url", "too_long")]);
    }

    #[test]
    fn ten_options_are_accepted_and_eleven_refused() {
        let ten: Vec<(String, String)> = (0..10).map(|i| (format!("o{i}"), "v".to_owned())).collect();
        let ten: Vec<(&str, &str)> = ten.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut eleven = ten.clone();
        eleven.push(("o10", "v"));

        assert!(check_options(&ten).1.is_empty());
        assert_eq!(codes(&check_options(&eleven).1), [("options", "too_many")]);
    }

    #[test]
    fn an_option_name_over_40_or_a_value_over_80_characters_is_refused() {
        let long_name = "n".repeat(41);
        let long_value = "v".repeat(81);

        let (_, name_errors) = check_options(&[(long_name.as_str(), "42")]);
        let (_, value_errors) = check_options(&[("size", long_value.as_str())]);
        let (_, fitting) = check_options(&[(&"n".repeat(40), &"v".repeat(80))]);

        assert_eq!(name_errors.len(), 1);
        assert_eq!(name_errors[0].code, "invalid_option");
        assert_eq!(codes(&value_errors), [("options.size", "invalid_option")]);
        assert!(fitting.is_empty());
    }

    #[test]
    fn an_empty_option_name_or_value_is_refused() {
        assert_eq!(
            codes(&check_options(&[("size", "  ")]).1),
            [("options.size", "invalid_option")]
        );
        assert_eq!(
            codes(&check_options(&[(" ", "42")]).1),
            [("options.", "invalid_option")]
        );
    }

    #[test]
    fn option_names_are_trimmed_and_lower_cased_and_values_trimmed() {
        let (clean, errors) = check_options(&[(" Size ", " 42 ")]);

        assert!(errors.is_empty());
        assert_eq!(clean, BTreeMap::from([("size".to_owned(), "42".to_owned())]));
    }

    #[test]
    fn a_price_in_another_currency_is_a_currency_mismatch() {
        let mut errors = Vec::new();
        let usd = Money::parse_price("49.90", Currency::parse("USD").unwrap());

        let price = VariantFields::parse_price("price", usd, eur(), &mut errors);

        assert_eq!(price, None);
        assert_eq!(codes(&errors), [("price", "currency_mismatch")]);
    }

    #[test]
    fn a_stock_outside_zero_to_a_billion_is_out_of_range() {
        for (stock, ok) in [(-1, false), (0, true), (MAX_STOCK, true), (MAX_STOCK + 1, false)] {
            let mut errors = Vec::new();
            VariantFields::parse_stock("stock", stock, &mut errors);
            assert_eq!(errors.is_empty(), ok, "{stock}");
        }
    }

    #[test]
    fn a_new_product_names_each_broken_variant_field_by_index() {
        let none = BTreeMap::new();
        let variants = [
            variant("A", &none, "1.00"),
            variant("A", &none, "1.001"),
            variant("B\u{1}", &none, "-1.00"),
        ];

        let errors = NewProduct::parse(&product("P"), &variants, eur()).unwrap_err();

        assert_eq!(
            codes(&errors),
            [
                ("variants[1].sku", "duplicate"),
                ("variants[1].price", "too_many_decimals"),
                ("variants[2].sku", "invalid_characters"),
                ("variants[2].price", "negative_amount"),
            ]
        );
    }

    #[test]
    fn a_new_product_needs_between_one_and_a_hundred_variants() {
        let none = BTreeMap::new();
        let skus: Vec<String> = (0..=MAX_VARIANTS).map(|i| format!("S{i}")).collect();
        let many: Vec<VariantInput<'_>> = skus.iter().map(|s| variant(s, &none, "1.00")).collect();

        let empty = NewProduct::parse(&product("P"), &[], eur()).unwrap_err();
        let too_many = NewProduct::parse(&product("P"), &many, eur()).unwrap_err();
        let fitting = NewProduct::parse(&product("P"), &many[..MAX_VARIANTS], eur()).unwrap();

        assert_eq!(codes(&empty), [("variants", "required")]);
        assert_eq!(codes(&too_many), [("variants", "too_many")]);
        assert_eq!(fitting.variants.len(), MAX_VARIANTS);
    }

    #[test]
    fn a_valid_product_keeps_its_fields_trimmed() {
        let none = BTreeMap::new();
        let input = ProductInput {
            retailer_id: "SLIP-01",
            title: "  Comfy slippers ",
            brand: Some(" Comfy "),
            description: Some(""),
            ..ProductInput::default()
        };

        let parsed = NewProduct::parse(&input, &[variant("SLIP-01-42", &none, "49.90")], eur()).unwrap();

        assert_eq!(parsed.fields.title, "Comfy slippers");
        assert_eq!(parsed.fields.brand.as_deref(), Some("Comfy"));
        assert_eq!(parsed.fields.description, None);
        assert_eq!(parsed.variants[0].price, Money::from_minor(4990, eur()));
    }
}
