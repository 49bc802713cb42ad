//! A catalog held in memory, for running the engine without a database: simulations, the engine's own
//! tests and its benchmark. It answers as the database-backed shop does (featured first, every search
//! word must match the folded title, brand or retailer id).

use super::Result;
use uuid::Uuid;

use chrono::NaiveDate;

use super::{OfferView, Shop, StayOfferView};
use crate::bookings::{Bookable, NightAvailability, inventory_units_free};
use crate::catalog::search::fold;
use crate::catalog::{Product, Variant};
use crate::discounts::Discount;
use crate::kernel::RetailerId;

/// A snapshot of a merchant's catalog, offers and discount codes.
#[derive(Debug, Clone, Default)]
pub struct MemoryShop {
    /// Products, in creation order.
    pub products: Vec<Product>,
    /// Offers with their variant and price.
    pub offers: Vec<(Uuid, OfferView)>,
    /// Discount codes.
    pub discounts: Vec<Discount>,
    /// Room types.
    pub rooms: Vec<Bookable>,
    /// Nightly price overrides: room, night, price.
    pub rates: Vec<(Uuid, NaiveDate, crate::money::Money)>,
    /// Units taken (held or booked): room, night, units.
    pub taken: Vec<(Uuid, NaiveDate, u32)>,
    /// Upgrade and add-on offers with the room that triggers them.
    pub stay_offers: Vec<(Uuid, StayOfferView)>,
}

impl MemoryShop {
    /// A shop of these products, without offers or codes.
    pub fn new(products: Vec<Product>) -> MemoryShop {
        MemoryShop {
            products,
            ..MemoryShop::default()
        }
    }

    fn haystack(p: &Product) -> String {
        fold(&format!(
            "{} {} {}",
            p.fields.title,
            p.fields.brand.as_deref().unwrap_or_default(),
            p.fields.retailer_id
        ))
    }
}

impl Shop for MemoryShop {
    fn product(&mut self, id: Uuid) -> Result<Option<Product>> {
        Ok(self.products.iter().find(|p| p.id == id).cloned())
    }

    fn product_by_retailer_id(&mut self, retailer_id: &RetailerId) -> Result<Option<Product>> {
        Ok(self
            .products
            .iter()
            .find(|p| &p.fields.retailer_id == retailer_id)
            .cloned())
    }

    fn variant(&mut self, id: Uuid) -> Result<Option<(Product, Variant)>> {
        Ok(self.products.iter().find_map(|p| {
            p.variants
                .iter()
                .find(|v| v.id == id)
                .map(|v| (p.clone(), v.clone()))
        }))
    }

    fn browse(&mut self, limit: usize) -> Result<Vec<Product>> {
        let featured = self.products.iter().filter(|p| p.fields.featured);
        let others = self.products.iter().filter(|p| !p.fields.featured);
        Ok(featured.chain(others).take(limit).cloned().collect())
    }

    fn search(&mut self, words: &[String], limit: usize) -> Result<Vec<Product>> {
        Ok(self
            .products
            .iter()
            .filter(|p| {
                let hay = Self::haystack(p);
                words.iter().all(|w| hay.contains(w.as_str()))
            })
            .take(limit)
            .cloned()
            .collect())
    }

    fn offers_for(&mut self, product: Uuid) -> Result<Vec<OfferView>> {
        Ok(self
            .offers
            .iter()
            .filter(|(trigger, _)| *trigger == product)
            .map(|(_, o)| o.clone())
            .collect())
    }

    fn offer(&mut self, id: Uuid) -> Result<Option<OfferView>> {
        Ok(self
            .offers
            .iter()
            .find(|(_, o)| o.id == id)
            .map(|(_, o)| o.clone()))
    }

    fn discount(&mut self, code: &str) -> Result<Option<Discount>> {
        let code = code.trim().to_uppercase();
        Ok(self.discounts.iter().find(|d| d.code == code).cloned())
    }

    fn rooms(&mut self) -> Result<Vec<Bookable>> {
        Ok(self.rooms.iter().filter(|r| r.spec.active).cloned().collect())
    }

    fn nights(&mut self, room: &Bookable, from: NaiveDate, to: NaiveDate) -> Result<Vec<NightAvailability>> {
        Ok(from
            .iter_days()
            .take_while(|n| *n < to)
            .map(|night| {
                let taken: u32 = self
                    .taken
                    .iter()
                    .filter(|(r, n, _)| *r == room.id && *n == night)
                    .map(|(_, _, units)| units)
                    .sum();
                let price = self
                    .rates
                    .iter()
                    .find(|(r, n, _)| *r == room.id && *n == night)
                    .map_or(room.spec.base_price, |(_, _, p)| *p);
                NightAvailability {
                    night,
                    available: inventory_units_free(
                        room.spec.units,
                        i32::try_from(taken).unwrap_or(i32::MAX),
                        0,
                    ),
                    price,
                }
            })
            .collect())
    }

    fn stay_offers(&mut self, room: Uuid) -> Result<Vec<StayOfferView>> {
        Ok(self
            .stay_offers
            .iter()
            .filter(|(trigger, _)| *trigger == room)
            .map(|(_, o)| o.clone())
            .collect())
    }

    fn stay_offer(&mut self, id: Uuid) -> Result<Option<StayOfferView>> {
        Ok(self
            .stay_offers
            .iter()
            .find(|(_, o)| o.id == id)
            .map(|(_, o)| o.clone()))
    }
}
