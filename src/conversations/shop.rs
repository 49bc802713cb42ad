//! The engine's view of the merchant's shop ([`Shop`]), read through the connection of the event's
//! transaction.

use uuid::Uuid;

use crate::bookings::{self, Bookable, NightAvailability};
use crate::catalog::{self, CatalogError, Product, ProductQuery, Variant};
use crate::db::DbConnection;
use crate::engine::{self, OfferView, Shop, StayOfferKind, StayOfferView};
use crate::kernel::{MerchantId, RetailerId};

/// The merchant's catalog, read through the connection of the event's transaction.
pub(super) struct DbShop<'c> {
    pub(super) conn: &'c mut DbConnection,
    pub(super) merchant_id: MerchantId,
}

/// A catalog read as the engine sees it: a failure of the shop.
fn read<T>(r: Result<T, CatalogError>) -> engine::Result<T> {
    r.map_err(engine::Error::shop)
}

/// A catalog read of one row; a missing row is `None`.
fn found<T>(r: Result<T, CatalogError>) -> engine::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(CatalogError::NotFound(_)) => Ok(None),
        Err(e) => Err(engine::Error::shop(e)),
    }
}

impl Shop for DbShop<'_> {
    fn product(&mut self, id: Uuid) -> engine::Result<Option<Product>> {
        found(catalog::get_product(self.conn, self.merchant_id, id))
    }

    fn product_by_retailer_id(&mut self, retailer_id: &RetailerId) -> engine::Result<Option<Product>> {
        // An ad's or a shopper's item may name a variant by its SKU (Meta's catalog items are variants).
        read(catalog::find_by_item_id(
            self.conn,
            self.merchant_id,
            retailer_id.as_str(),
        ))
    }

    fn variant(&mut self, id: Uuid) -> engine::Result<Option<(Product, Variant)>> {
        read(catalog::variant_with_product(self.conn, self.merchant_id, id))
    }

    fn browse(&mut self, limit: usize) -> engine::Result<Vec<Product>> {
        Ok(catalog::browse(
            self.conn,
            self.merchant_id,
            i64::try_from(limit).unwrap_or(100),
        )?)
    }

    fn search(&mut self, words: &[String], limit: usize) -> engine::Result<Vec<Product>> {
        let q = ProductQuery {
            page: crate::db::Keyset::OLDEST_FIRST,
            limit: i64::try_from(limit).unwrap_or(100),
            words: words.to_vec(),
        };
        Ok(catalog::list_products(self.conn, self.merchant_id, &q)?)
    }

    fn offers_for(&mut self, product: Uuid) -> engine::Result<Vec<OfferView>> {
        let offers = crate::offers::triggered_by(self.conn, self.merchant_id, product)?;
        let mut views = Vec::with_capacity(offers.len());
        for offer in offers {
            if let Some(view) = self.view(offer)? {
                views.push(view);
            }
        }
        Ok(views)
    }

    fn offer(&mut self, id: Uuid) -> engine::Result<Option<OfferView>> {
        match crate::offers::get(self.conn, self.merchant_id, id)? {
            Some(offer) if offer.active => self.view(offer),
            _ => Ok(None),
        }
    }

    fn discount(&mut self, code: &str) -> engine::Result<Option<crate::discounts::Discount>> {
        Ok(crate::discounts::find_by_code(self.conn, self.merchant_id, code)?)
    }

    fn rooms(&mut self) -> engine::Result<Vec<Bookable>> {
        let q = bookings::BookableQuery {
            page: crate::db::Keyset::OLDEST_FIRST,
            limit: 100,
            active_only: true,
        };
        Ok(bookings::list(self.conn, self.merchant_id, &q)?)
    }

    fn room(&mut self, id: Uuid) -> engine::Result<Option<Bookable>> {
        Ok(bookings::get(self.conn, self.merchant_id, id)?.filter(|b| b.spec.active))
    }

    fn nights(
        &mut self,
        room: &Bookable,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> engine::Result<Vec<NightAvailability>> {
        match bookings::availability(self.conn, self.merchant_id, room.id, from, to) {
            Ok(nights) => Ok(nights),
            Err(e) => Err(engine::Error::shop(e)),
        }
    }

    fn stay_offers(&mut self, room: Uuid) -> engine::Result<Vec<StayOfferView>> {
        let offers = crate::offers::triggered_by_bookable(self.conn, self.merchant_id, room)?;
        let mut views = Vec::with_capacity(offers.len());
        for offer in offers {
            if let Some(view) = self.stay_view(offer)? {
                views.push(view);
            }
        }
        Ok(views)
    }

    fn stay_offer(&mut self, id: Uuid) -> engine::Result<Option<StayOfferView>> {
        match crate::offers::get(self.conn, self.merchant_id, id)? {
            Some(offer) if offer.active => self.stay_view(offer),
            _ => Ok(None),
        }
    }
}

impl DbShop<'_> {
    /// An upgrade or add-on with its room or item, when they are still offered.
    fn stay_view(&mut self, offer: crate::offers::Offer) -> engine::Result<Option<StayOfferView>> {
        use crate::offers::{OfferTarget, OfferTrigger};
        if !matches!(offer.trigger, OfferTrigger::Bookable(_)) {
            return Ok(None);
        }
        let kind = match offer.target {
            OfferTarget::Bookable { id, night_delta } => match self.room(id)? {
                Some(room) => StayOfferKind::Upgrade { room, night_delta },
                None => return Ok(None),
            },
            OfferTarget::Variant { id, per_night } => {
                let Some((product, variant)) =
                    read(catalog::variant_with_product(self.conn, self.merchant_id, id))?
                else {
                    return Ok(None);
                };
                let price = offer.price(variant.price)?;
                StayOfferKind::AddOn {
                    product,
                    variant,
                    price,
                    per_night,
                }
            }
        };
        Ok(Some(StayOfferView {
            id: offer.id,
            text: offer.text,
            kind,
        }))
    }

    /// An offer with its variant and price, when the variant is still sold.
    fn view(&mut self, offer: crate::offers::Offer) -> engine::Result<Option<OfferView>> {
        let Some(variant_id) = offer.target.variant() else {
            return Ok(None);
        };
        let Some((product, variant)) = read(catalog::variant_with_product(
            self.conn,
            self.merchant_id,
            variant_id,
        ))?
        else {
            return Ok(None);
        };
        let price = offer.price(variant.price)?;
        Ok(Some(OfferView {
            id: offer.id,
            text: offer.text,
            product,
            variant,
            price,
        }))
    }
}
