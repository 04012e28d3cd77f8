//! xlrs: an xAPI Learning Record Store.
//!
//! `xapi` is the pure domain (validation, keys, formats), `store` the only
//! place that knows SQL, `http` the actix-web layer. `startup` wires them into
//! one app factory shared by `main` and the tests.

pub mod auth;
pub mod cli;
pub mod config;
pub mod error;
pub mod http;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod xapi;
