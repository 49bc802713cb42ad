//! The conversation engine on one core: a representative mix of shopper events (Get Started, an ad for
//! a product, choosing a size, adding to the cart, viewing the cart, typed searches and keywords, a stale
//! button) against a 50-product catalog in memory. Run with `cargo bench --bench engine`; criterion
//! prints the time per mix and the throughput in events per second.

use std::collections::BTreeMap;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use threadcart::carts::{Cart, CartLine};
use threadcart::catalog::domain::ProductFields;
use threadcart::catalog::{Product, Variant};
use threadcart::engine::Referral;
use threadcart::engine::payload::{self, Payload};
use threadcart::engine::{GET_STARTED, Input, MemoryShop, Turn, respond};
use threadcart::money::{Currency, Money};
use uuid::Uuid;

fn catalog(eur: Currency) -> Vec<Product> {
    let at = threadcart::db::now();
    (0..50)
        .map(|i| {
            let id = Uuid::now_v7();
            Product {
                id,
                fields: ProductFields {
                    retailer_id: format!("SLIP-{i:02}").into(),
                    title: format!("Comfy slippers model {i}"),
                    description: Some("Warm felt slippers.".into()),
                    image_url: Some(format!("https://example.com/slip-{i}.jpg")),
                    url: None,
                    brand: Some("Comfy".into()),
                    featured: i % 5 == 0,
                    labels: threadcart::kernel::Labels::default(),
                },
                variants: (38..46)
                    .map(|size| Variant {
                        id: Uuid::now_v7(),
                        product_id: id,
                        sku: format!("SLIP-{i:02}-{size}"),
                        name: size.to_string(),
                        options: BTreeMap::from([("size".to_owned(), size.to_string())]),
                        price: Money::from_minor(4990, eur),
                        stock: i64::from(size % 3),
                        created_at: at,
                        updated_at: at,
                    })
                    .collect(),
                created_at: at,
                updated_at: at,
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let eur = Currency::parse("EUR").unwrap_or_else(|e| panic!("{e}"));
    let mut shop = MemoryShop::new(catalog(eur));
    let product = shop.products[7].clone();
    let variant = product.variants.iter().find(|v| v.stock > 0).cloned();
    let Some(variant) = variant else { return };
    let cart = Cart {
        id: Uuid::now_v7(),
        thread_id: threadcart::kernel::ThreadId::new(),
        currency: eur,
        lines: vec![CartLine {
            id: Uuid::now_v7(),
            variant_id: Some(variant.id),
            product_id: Some(product.id),
            title: product.fields.title.clone(),
            variant_name: variant.name.clone(),
            sku: variant.sku.clone(),
            image_url: None,
            unit_price: variant.price,
            quantity: 1,
            offer_id: None,
            booking_id: None,
        }],
        offers_seen: Vec::new(),
        discount: None,
    };
    let referral = Referral {
        source: "ADS".into(),
        kind: "OPEN_THREAD".into(),
        ref_: Some("c=xmas24".into()),
        ad_id: Some("AD-1".into()),
        ad_title: Some("Slippers".into()),
        post_id: None,
        product_id: Some(product.fields.retailer_id.0.clone()),
        ads_context_data: None,
        ..Referral::default()
    };
    let choose = payload::encode(&Payload::ChooseOption {
        product: product.id,
        page: 0,
    });
    let add = payload::encode(&Payload::Add { variant: variant.id });
    let view_cart = payload::encode(&Payload::Cart);
    let stale = payload::encode(&Payload::Product {
        product: Uuid::now_v7(),
    });
    let inputs: Vec<(Input<'_>, Option<&Cart>)> = vec![
        (
            Input::Tap {
                payload: GET_STARTED,
                referral: None,
            },
            None,
        ),
        (
            Input::Tap {
                payload: GET_STARTED,
                referral: Some(&referral),
            },
            None,
        ),
        (
            Input::Tap {
                payload: &choose,
                referral: None,
            },
            None,
        ),
        (
            Input::Tap {
                payload: &add,
                referral: None,
            },
            Some(&cart),
        ),
        (
            Input::Tap {
                payload: &view_cart,
                referral: None,
            },
            Some(&cart),
        ),
        (Input::Text("model 12 slippers"), None),
        (Input::Text("mon panier"), Some(&cart)),
        (
            Input::Tap {
                payload: &stale,
                referral: None,
            },
            None,
        ),
    ];
    let at = threadcart::db::now();
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(inputs.len() as u64));
    group.bench_function("mixed shopper events", |b| {
        b.iter(|| {
            for (input, cart) in &inputs {
                let turn = Turn {
                    at,
                    merchant_name: "Comfy Shoes",
                    first_name: Some("Anna"),
                    cart: *cart,
                    stays: &[],
                    stay_room: None,
                    has_rooms: false,
                    missed_before: false,
                    input: *input,
                };
                let outcome = respond(&turn, &mut shop);
                std::hint::black_box(outcome.is_ok());
            }
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
