//! The merchant's own web chat.
