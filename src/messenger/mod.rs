//! The Messenger channel: webhook deliveries in (verified, stored, deduplicated), threads updated, replies
//! rendered within Meta's limits and sent through a durable outbox.

pub mod agent;
pub mod conversation;
pub mod graph;
pub mod inbound;
pub mod outbox;
pub mod payments;
pub mod profile;
pub mod render;
pub mod webhook;
