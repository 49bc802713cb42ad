//! A channel's own cart (WhatsApp's `order` message: items the shopper picked from the merchant's Meta
//! catalog) becomes the thread's cart at our prices and stock. It replaces the products in the open cart
//! (stays held in it are kept); what differs from what the shopper's app showed is told: an item we do
//! not sell, fewer units in stock, another price. Then the cart with its Checkout, as after any change.

use chrono::NaiveDateTime;

use super::event::OrderItem;
use super::turn::TurnResult;
use super::{Customer, Thread};
use crate::attribution::{FunnelStep, ThreadFunnel};
use crate::carts::{self, CartError};
use crate::catalog::{self, Product, Variant};
use crate::db::DbConnection;
use crate::engine::{self, reply::Reply};
use crate::kernel::{MerchantId, RetailerId};
use crate::money::{Currency, Money};

/// The catalog item a retailer id names: a variant by its SKU (a feed's `id`), else a product with a
/// single variant by its retailer id (a feed's `item_group_id`).
fn item(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    retailer_id: &str,
) -> TurnResult<Option<(Product, Variant)>> {
    if let Some(variant) = catalog::variant_id_by_sku(conn, merchant_id, retailer_id)? {
        return Ok(catalog::variant_with_product(conn, merchant_id, variant)?);
    }
    let Some(product) = catalog::find_by_retailer_id(conn, merchant_id, &RetailerId::from(retailer_id))?
    else {
        return Ok(None);
    };
    Ok(match product.variants.as_slice() {
        [only] => {
            let only = only.clone();
            Some((product, only))
        }
        _ => None,
    })
}

/// The price the shopper's app showed, when it reads as an amount.
fn shown_price(item: &OrderItem) -> Option<Money> {
    let currency = Currency::parse(item.currency.as_deref()?).ok()?;
    Money::parse_amount(item.price.as_deref()?, currency).ok()
}

/// Makes the thread's cart the shopper's order; answers what to tell them.
pub fn apply(
    conn: &mut DbConnection,
    customer: &Customer,
    thread: &Thread,
    items: &[OrderItem],
    at: NaiveDateTime,
) -> TurnResult<Vec<Reply>> {
    let merchant = crate::merchants::get(conn, customer.merchant_id)?;
    let before = carts::open_cart(conn, thread.id)?;
    // The order is the shopper's whole selection: it replaces the products (held stays stay).
    for line in before
        .iter()
        .flat_map(|c| &c.lines)
        .filter(|l| l.booking_id.is_none())
    {
        match carts::set_quantity(conn, thread.id, line.id, 0, None) {
            Ok(_) | Err(CartError::StaleLine) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mut funnel = ThreadFunnel::with_settings(
        thread.funnel_view(),
        merchant.timezone,
        merchant.attribution_window_days,
    );
    let mut notes: Vec<String> = Vec::new();
    for wanted in items.iter().take(carts::MAX_LINES) {
        let Some((product, variant)) = item(conn, merchant.id, &wanted.retailer_id)? else {
            notes.push(format!("We do not sell “{}” any more.", wanted.retailer_id));
            continue;
        };
        let title = if variant.name.is_empty() {
            product.fields.title.clone()
        } else {
            format!("{} ({})", product.fields.title, variant.name)
        };
        let mut quantity = wanted.quantity.clamp(1, carts::MAX_QUANTITY);
        if wanted.quantity > carts::MAX_QUANTITY {
            notes.push(format!("At most {} of {title} per order.", carts::MAX_QUANTITY));
        }
        let added = match carts::add(conn, merchant.id, thread.id, &product, &variant, quantity) {
            Err(CartError::OutOfStock { available }) if available > 0 => {
                quantity = available;
                notes.push(format!(
                    "Only {available} left of {title}: your cart has {available}."
                ));
                carts::add(conn, merchant.id, thread.id, &product, &variant, quantity)
            }
            other => other,
        };
        match added {
            Ok(_) => {
                let value = variant.price.checked_mul(i64::from(quantity)).ok();
                funnel.record(conn, FunnelStep::AddToCart, Some(product.id), value)?;
                if shown_price(wanted).is_some_and(|shown| shown != variant.price) {
                    notes.push(format!("{title} is {} now.", variant.price));
                }
            }
            Err(CartError::OutOfStock { .. }) => notes.push(format!("{title} is sold out.")),
            Err(CartError::Full) => {
                notes.push("Your cart is full: the rest of your order was not added.".into());
                break;
            }
            Err(CartError::StaleLine) => {}
            Err(e @ CartError::TooLarge { .. }) => notes.push(format!("{title}: {e}.")),
            Err(CartError::Db(e)) => return Err(e.into()),
        }
    }
    let after = carts::open_cart(conn, thread.id)?;
    super::turn::cart_changed(conn, thread, before.as_ref(), after.as_ref())?;
    if let Some(cart) = &after {
        crate::followups::recovery::plan(conn, &merchant, thread, cart, at)?;
    }
    let mut replies = Reply::text(&notes.join("\n"));
    replies.extend(engine::cart_replies(after.as_ref(), at)?);
    Ok(replies)
}
