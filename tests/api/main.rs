//! The API suite: one binary, each test against its own server on a random port and its own fresh
//! database (SQLite file by default; a new PostgreSQL database when `TEST_DATABASE_URL` is postgres://).

mod auth;
mod catalog;
mod cli;
mod health;
mod helpers;
mod import;
mod openapi;
mod pages;
mod stock;
mod tenancy;
