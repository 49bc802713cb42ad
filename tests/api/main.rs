//! The API suite: one binary, each test against its own server on a random port and its own fresh
//! database (SQLite file by default; a new PostgreSQL database when `TEST_DATABASE_URL` is postgres://).

// A failed unwrap is a failed test here: that is what tests are for.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod agents;
mod amounts;
mod auth;
mod bookings;
mod browser;
mod browser_routing;
mod catalog;
mod checkout;
mod cli;
mod dashboard;
mod disclosure;
mod discounts;
mod followups;
mod graph;
mod health;
mod helpers;
mod import;
mod instagram;
mod logs;
mod messenger;
mod offers;
mod openapi;
mod orders;
mod pages;
mod payments;
mod rate_limits;
mod reports;
mod rules;
mod secrets;
mod shopping;
mod simulator;
mod stays;
mod stock;
mod stripe;
mod stripe_fake;
mod templates;
mod tenancy;
mod webchat;
mod whatsapp;
