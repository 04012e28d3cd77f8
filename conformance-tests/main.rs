//! xlrs conformance tests: black-box HTTP tests written from the xAPI spec,
//! each run against a real server on a random port, once on SQLite and once
//! on PostgreSQL (skipped when PostgreSQL is unreachable, unless
//! `XLRS_TEST_REQUIRE_POSTGRES=1`). One test binary, so one link.

mod helpers;
mod simulators;
// First: its `forwarding_test!` is used by the modules below.
#[macro_use]
mod forwarding;

mod about;
mod admin;
mod attachments;
mod auth;
mod cli;
mod definitions;
mod deployment;
mod documents;
mod export;
mod headers;
mod metrics;
mod openapi;
mod process_memory;
mod progress;
mod statement_formats;
mod statement_queries;
mod statement_validation;
mod statement_writes;
mod stream;
mod versions;
mod voiding;
