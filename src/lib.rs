//! xlrs: an xAPI Learning Record Store.
//!
//! `xapi` is the pure domain (validation, keys, formats), `store` the only
//! place that knows SQL, `http` the actix-web layer, `spool` where received
//! attachment content waits until it is stored, `forward` the forwarders,
//! `live_stream` the consumers of the live stream, `metrics` what
//! `/metrics` exposes. `startup` wires them into
//! one app factory shared by `main` and the tests.

pub mod auth;
pub mod cli;
pub mod config;
pub mod error;
pub mod export;
pub mod export_client;
pub mod forward;
pub mod http;
pub mod live_stream;
pub mod metrics;
pub mod spool;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod xapi;
