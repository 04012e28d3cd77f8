//! The xAPI domain: no HTTP, no SQL.

pub mod activity;
pub mod agent;
pub mod attachment;
pub mod document;
pub mod flatten;
pub mod formats;
pub mod keys;
pub mod output;
pub mod progress;
pub mod rules;
pub mod same;
pub mod schema;
pub mod signature;
pub mod statement;
pub mod version;

pub use version::XapiVersion;
