//! Bookings: room types and similar inventory sold by the night (bookables), their nightly prices,
//! nightly availability, and the holds and bookings that take nights.
//!
//! Capacity lives in `bookable_nights`, one row per bookable and night with the units `held` by unpaid
//! holds and `booked` by confirmed stays. A hold takes every night of its stay in one write transaction
//! with one conditional `UPDATE ... WHERE held + booked < units`, or none of them; confirming moves the
//! nights from held to booked; expiring, releasing and cancelling give them back, once, because each
//! status move is itself a conditional update. So `held + booked` never exceeds the units, on either
//! backend, under any concurrency. No HTTP call happens here.
//!
//! The conversation and checkout call [`hold`], [`quote`], [`nearest_available`], [`attach_to_order`],
//! [`confirm`], [`release`] and [`expire_holds`]; the merchant API manages bookables and reads bookings.

mod bookables;
pub mod dates;
mod holds;
mod inventory;
pub mod stay;

pub use bookables::{
    Bookable, BookableError, BookablePatch, BookableQuery, BookableSpec, MAX_GUESTS, MAX_UNITS, RateRange,
    any_active, create, delete, format_time, get, list, parse_time, set_rates, update,
};
pub use holds::{
    Booking, BookingError, BookingQuery, BookingStatus, HoldError, HoldRequest, attach_to_order, cancel,
    confirm, confirm_order, detach, expire_holds, follow_order, get_booking, hold, list_bookings, of_order,
    release, release_order, reprice,
};
pub use inventory::{
    Alternatives, NightAvailability, NightPrice, Quote, SEARCH_DAYS, availability, nearest_arrival,
    nearest_available, quote, units_free as inventory_units_free,
};
pub use stay::{StayDates, StayError};
