//! What the business owes the shopper after the conversation moved on: utility message templates for
//! updates sent after a Meta channel's messaging window closed.

pub mod templates;
