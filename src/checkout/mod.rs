//! Checkout: carts frozen into orders with stock reserved, paid on Stripe Checkout outside the thread,
//! confirmed by Stripe's webhooks.
//!
//! - [`orders`]: the orders themselves, in the database (freezing a cart, stock, status moves, Checkout
//!   Session bookkeeping, refunds and disputes as recorded, the rows);
//! - [`payments`]: the payments service, what Stripe's word means for an order (sessions made, events
//!   applied, late payments settled, refunds synced from Stripe or asked through the API);
//! - [`stripe`]: the calls made to Stripe's API; [`webhook`]: Stripe's signed webhooks and the typed
//!   [`webhook::StripeEvent`]; [`events`]: the events as stored until the worker applies them.

pub mod events;
pub mod orders;
pub mod payments;
pub mod stripe;
pub mod webhook;
