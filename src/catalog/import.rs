//! Catalog import: Meta's catalog feed as CSV, or a JSON list of products. Good rows are kept, bad rows
//! are reported by number and reason; parsing is pure, storage happens in [`super::upsert_product`].
//!
//! Rows are numbered from 1: the first record after the CSV header, or the first element of the JSON list.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::domain::{ProductFields, ProductInput, VariantFields, VariantInput};
use super::wire::ProductCreate;
use crate::kernel::{FieldError, RetailerId};
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
    let mut group_index: HashMap<RetailerId, usize> = HashMap::new();
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

/// A label from a feed's free text: folded (case, accents), anything but letters, digits, `-` and `_`
/// a dash, at most 40 characters (`Été -50% Kids'` becomes `ete-50-kids`); `None` when nothing is
/// left.
fn feed_label(value: &str) -> Option<String> {
    let mut label = String::new();
    for c in crate::catalog::search::fold(value).chars() {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
            c
        } else {
            '-'
        };
        if !(c == '-' && (label.is_empty() || label.ends_with('-'))) {
            label.push(c);
        }
    }
    let label: String = label.trim_end_matches('-').chars().take(40).collect();
    let label = label.trim_end_matches('-').to_owned();
    crate::kernel::is_label(&label).then_some(label)
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
    // Meta's feed carries up to five free labels per item: made labels, never a reason to refuse a row.
    let labels: Vec<String> = (0..5)
        .filter_map(|i| rec.get(&format!("custom_label_{i}")))
        .filter_map(feed_label)
        .collect();
    let fields = ProductFields::parse(
        &ProductInput {
            retailer_id,
            title,
            description: rec.get("description"),
            image_url: rec.get("image_link"),
            url: rec.get("link"),
            brand: rec.get("brand"),
            featured: false,
            labels: &labels,
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
    if title.is_empty() {
        // Without options the variant's name is the title: its error would only repeat the title's.
        errors.retain(|e| e.field != "name");
    }
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const HEADER: &str =
        "id,title,description,availability,condition,price,link,image_link,brand,item_group_id,size,color";

    fn eur() -> Currency {
        Currency::parse("EUR").unwrap()
    }

    fn csv(rows: &[&str]) -> Vec<u8> {
        let mut text = HEADER.to_owned();
        for row in rows {
            text.push('\n');
            text.push_str(row);
        }
        text.push('\n');
        text.into_bytes()
    }

    /// `(row, code)` of each error.
    fn row_codes(parsed: &Parsed) -> Vec<(usize, &'static str)> {
        parsed.errors.iter().map(|e| (e.row, e.code)).collect()
    }

    fn skus(product: &ImportProduct) -> Vec<&str> {
        product.variants.iter().map(|v| v.fields.sku.as_str()).collect()
    }

    #[test]
    fn a_feeds_free_labels_become_labels_and_never_refuse_the_row() {
        assert_eq!(
            feed_label(" Winter  Slippers ").as_deref(),
            Some("winter-slippers")
        );
        assert_eq!(feed_label("Été -50% Kids'").as_deref(), Some("ete-50-kids"));
        assert_eq!(feed_label("%%%"), None);
        assert_eq!(feed_label(&"x".repeat(60)).map(|l| l.len()), Some(40));
    }

    #[test]
    fn a_bom_prefixed_csv_reads_its_first_column() {
        let mut body = b"\xEF\xBB\xBF".to_vec();
        body.extend(csv(&["SLIP-42,Comfy slippers,,in stock,new,49.90 EUR,,,,,,"]));

        let parsed = parse_csv(&body, eur()).unwrap();

        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert_eq!(parsed.products.len(), 1);
        assert_eq!(parsed.products[0].fields.retailer_id, "SLIP-42");
    }

    #[test]
    fn crlf_line_endings_are_read_like_lf() {
        let body = b"id,title,price\r\nA,Thing,1.00 EUR\r\nB,Other,2.00 EUR\r\n";

        let parsed = parse_csv(body, eur()).unwrap();

        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        let prices: Vec<i64> = parsed
            .products
            .iter()
            .map(|p| p.variants[0].fields.price.minor())
            .collect();
        assert_eq!(prices, [100, 200]);
    }

    #[test]
    fn quoted_fields_keep_their_commas_and_quotes() {
        let body =
            csv(&[r#"MUG-1,"Mug, big","Holds ""a lot"", really",in stock,new,12.00 EUR,,,"Pots, Inc.",,,"#]);

        let parsed = parse_csv(&body, eur()).unwrap();

        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        let fields = &parsed.products[0].fields;
        assert_eq!(fields.title, "Mug, big");
        assert_eq!(fields.description.as_deref(), Some(r#"Holds "a lot", really"#));
        assert_eq!(fields.brand.as_deref(), Some("Pots, Inc."));
        assert_eq!(parsed.products[0].variants[0].fields.name, "Mug, big");
    }

    #[test]
    fn rows_sharing_an_item_group_id_become_variants_of_one_product() {
        let body = csv(&[
            "SLIP-42,Comfy slippers,Warm.,in stock,new,49.90 EUR,https://example.com/s,,Comfy,SLIP,42,Grey",
            "SOCK-1,Socks,,in stock,new,9.90 EUR,,,,,,",
            "SLIP-43,Other title,Other.,in stock,new,52.00 EUR,,,Other,SLIP,43,Grey",
        ]);

        let parsed = parse_csv(&body, eur()).unwrap();

        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert_eq!(parsed.products.len(), 2);
        let slippers = &parsed.products[0];
        assert_eq!(slippers.fields.retailer_id, "SLIP");
        assert_eq!(
            slippers.fields.title, "Comfy slippers",
            "the group's first row gives the fields"
        );
        assert_eq!(slippers.fields.url.as_deref(), Some("https://example.com/s"));
        assert_eq!(skus(slippers), ["SLIP-42", "SLIP-43"]);
        let v = &slippers.variants[1];
        assert_eq!(v.row, 3);
        assert_eq!(v.fields.name, "43 / Grey");
        assert_eq!(
            v.fields.options,
            BTreeMap::from([
                ("color".to_owned(), "Grey".to_owned()),
                ("size".to_owned(), "43".to_owned())
            ])
        );
        assert_eq!(v.fields.price, Money::from_minor(5200, eur()));
        assert_eq!(parsed.products[1].fields.retailer_id, "SOCK-1");
    }

    #[test]
    fn a_variant_with_only_a_color_is_named_after_it() {
        let body = csv(&["CAP-1,Cap,,in stock,new,15.00 EUR,,,,CAP,,Red"]);

        let parsed = parse_csv(&body, eur()).unwrap();

        assert_eq!(parsed.products[0].variants[0].fields.name, "Red");
    }

    #[test]
    fn a_repeated_id_is_reported_as_duplicate_and_the_first_row_kept() {
        let body = csv(&[
            "A,Thing,,in stock,new,1.00 EUR,,,,,,",
            "A,Thing again,,in stock,new,2.00 EUR,,,,,,",
        ]);

        let parsed = parse_csv(&body, eur()).unwrap();

        assert_eq!(row_codes(&parsed), [(2, "duplicate")]);
        assert_eq!(parsed.products.len(), 1);
        assert_eq!(
            parsed.products[0].variants[0].fields.price,
            Money::from_minor(100, eur())
        );
    }

    #[test]
    fn a_header_without_the_required_columns_is_refused() {
        let missing_price = parse_csv(b"id,title,brand\nA,Thing,Comfy\n", eur());
        let missing_two = parse_csv(b"title\nThing\n", eur());

        assert_eq!(
            missing_price,
            Err(ImportError::MissingColumns("price".to_owned()))
        );
        assert_eq!(
            missing_two,
            Err(ImportError::MissingColumns("id, price".to_owned()))
        );
    }

    #[test]
    fn header_names_ignore_case_and_blanks_and_unknown_columns_are_ignored() {
        let body = b"ID , Title,PRICE,gtin\nA,Thing,1.00 EUR,123\n";

        let parsed = parse_csv(body, eur()).unwrap();

        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert_eq!(parsed.products[0].fields.title, "Thing");
    }

    #[test]
    fn rows_are_numbered_from_the_first_record_after_the_header() {
        let body = csv(&[
            "A,Good,,in stock,new,1.00 EUR,,,,,,",
            "B,Bad price,,in stock,new,abc,,,,,,",
            "C,Good,,in stock,new,1.00 EUR,,,,,,",
            "D,No currency,,in stock,new,1.00,,,,,,",
            "E,Strange money,,in stock,new,1.00 XYZ,,,,,,",
            "F,Fine money,,in stock,new,1.001 EUR,,,,,,",
            "G,Dollars,,in stock,new,1.00 USD,,,,,,",
            "H,Negative,,in stock,new,-1.00 EUR,,,,,,",
        ]);

        let parsed = parse_csv(&body, eur()).unwrap();

        assert_eq!(
            row_codes(&parsed),
            [
                (2, "invalid_feed_price"),
                (4, "invalid_feed_price"),
                (5, "unknown_currency"),
                (6, "too_many_decimals"),
                (7, "currency_mismatch"),
                (8, "negative_amount"),
            ]
        );
        let good: Vec<usize> = parsed.products.iter().map(|p| p.variants[0].row).collect();
        assert_eq!(good, [1, 3]);
    }

    #[test]
    fn a_missing_title_is_reported_once_even_without_options() {
        let body = csv(&["A,,,in stock,new,1.00 EUR,,,,,,"]);

        let parsed = parse_csv(&body, eur()).unwrap();

        assert_eq!(row_codes(&parsed), [(1, "required")]);
        assert_eq!(parsed.errors[0].detail, "title: must not be empty");
    }

    #[test]
    fn a_row_breaking_several_rules_lists_them_all() {
        let body = csv(&["A,,,in stock,new,abc,not-a-url,,,,,"]);

        let parsed = parse_csv(&body, eur()).unwrap();

        assert_eq!(row_codes(&parsed), [(1, "validation_failed")]);
        let detail = &parsed.errors[0].detail;
        assert!(
            detail.contains("title") && detail.contains("url") && detail.contains("price"),
            "{detail}"
        );
    }

    #[test]
    fn a_short_row_is_read_with_its_missing_cells_empty() {
        let body = csv(&["A,Thing,,in stock,new,1.00 EUR"]);

        let parsed = parse_csv(&body, eur()).unwrap();

        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert_eq!(parsed.products[0].fields.retailer_id, "A");
    }

    #[test]
    fn the_stock_comes_from_the_quantity_or_is_zero_when_out_of_stock() {
        let body = b"id,title,price,availability,quantity_to_sell_on_facebook\n\
            A,Thing,1.00 EUR,in stock,7\n\
            B,Thing,1.00 EUR,out of stock,\n\
            C,Thing,1.00 EUR,Out Of Stock,3\n\
            D,Thing,1.00 EUR,in stock,\n\
            E,Thing,1.00 EUR,in stock,lots\n";

        let parsed = parse_csv(body, eur()).unwrap();

        let stocks: Vec<(&str, i64, bool)> = parsed
            .products
            .iter()
            .map(|p| {
                let v = &p.variants[0];
                (v.fields.sku.as_str(), v.fields.stock, v.stock_given)
            })
            .collect();
        assert_eq!(
            stocks,
            [("A", 7, true), ("B", 0, true), ("C", 3, true), ("D", 0, false)]
        );
        assert_eq!(row_codes(&parsed), [(5, "invalid_quantity")]);
    }

    #[test]
    fn a_group_over_a_hundred_variants_keeps_the_first_hundred() {
        let rows: Vec<String> = (0..=domain_max())
            .map(|i| format!("S{i},Thing,,in stock,new,1.00 EUR,,,,G,{i},"))
            .collect();
        let rows: Vec<&str> = rows.iter().map(String::as_str).collect();

        let parsed = parse_csv(&csv(&rows), eur()).unwrap();

        assert_eq!(parsed.products[0].variants.len(), domain_max());
        assert_eq!(row_codes(&parsed), [(domain_max() + 1, "too_many")]);
    }

    fn domain_max() -> usize {
        super::super::domain::MAX_VARIANTS
    }

    #[test]
    fn an_empty_feed_has_nothing_to_import() {
        let parsed = parse_csv(format!("{HEADER}\n").as_bytes(), eur()).unwrap();

        assert_eq!(parsed, Parsed::default());
    }

    #[test]
    fn a_json_list_with_a_bad_element_reports_its_1_based_index() {
        let body = serde_json::json!([
            {"retailer_id": "P-1", "title": "First",
             "variants": [{"sku": "P-1-A", "name": "A", "price": {"amount": "1.00", "currency": "EUR"}, "stock": 2}]},
            {"retailer_id": "P-2", "title": "Second",
             "variants": [{"sku": "P-2-A", "name": "A", "price": {"amount": "1.001", "currency": "EUR"}, "stock": 2}]},
            {"retailer_id": "P-3", "title": "Third", "variants": "none"},
            {"retailer_id": "P-1", "title": "First again",
             "variants": [{"sku": "P-1-B", "name": "B", "price": {"amount": "1.00", "currency": "EUR"}, "stock": 2}]},
            {"retailer_id": "P-5", "title": "Fifth",
             "variants": [{"sku": "P-5-A", "name": "A", "price": {"amount": "5.00", "currency": "EUR"}, "stock": 5}]},
        ]);

        let parsed = parse_json(body.to_string().as_bytes(), eur()).unwrap();

        assert_eq!(
            row_codes(&parsed),
            [(2, "too_many_decimals"), (3, "invalid_json"), (4, "duplicate")]
        );
        assert!(
            parsed.errors[0].detail.contains("variants[0].price"),
            "{:?}",
            parsed.errors[0]
        );
        let good: Vec<(&str, usize, bool)> = parsed
            .products
            .iter()
            .map(|p| {
                (
                    p.fields.retailer_id.as_str(),
                    p.variants[0].row,
                    p.variants[0].stock_given,
                )
            })
            .collect();
        assert_eq!(good, [("P-1", 1, true), ("P-5", 5, true)]);
    }

    #[test]
    fn a_json_body_that_is_not_a_list_is_malformed() {
        for body in [&b"{}"[..], b"not json", b""] {
            assert!(
                matches!(parse_json(body, eur()), Err(ImportError::Malformed(_))),
                "{body:?}"
            );
        }
    }

    #[test]
    fn an_empty_json_list_has_nothing_to_import() {
        assert_eq!(parse_json(b"[]", eur()).unwrap(), Parsed::default());
    }
}
