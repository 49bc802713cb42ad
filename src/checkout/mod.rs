//! Checkout: carts frozen into orders with stock reserved, paid on Stripe Checkout outside the thread,
//! confirmed by Stripe's webhooks.

pub mod events;
pub mod orders;
pub mod payments;
pub mod stripe;
pub mod webhook;
