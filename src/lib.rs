//! threadcart: the service behind a conversation between a shopper and a business, on Messenger,
//! Instagram Direct or the merchant's own web chat.
//!
//! See `README.md` for the journey and the layout; each module says why it exists.

pub mod agents;
pub mod attribution;
pub mod auth;
pub mod bookings;
pub mod carts;
pub mod catalog;
pub mod channels;
pub mod checkout;
pub mod cli;
pub mod config;
pub mod conversations;
pub mod db;
pub mod demo;
pub mod dev;
pub mod discounts;
pub mod engine;
pub mod error;
pub mod events;
pub mod followups;
pub mod http;
pub mod jobs;
pub mod kernel;
pub mod merchants;
pub mod metrics;
pub mod money;
pub mod offers;
pub mod rate_limit;
pub mod routing;
pub mod rules;
pub mod secrets;
pub mod startup;
pub mod telemetry;
