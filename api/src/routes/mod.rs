//! The HTTP operations, one module per tag. A handler parses its input, calls one use case
//! of `hbi_shared::Library` (or, for administration, one store), and maps the answer into
//! its wire type; errors are `ApiError`s.

pub mod books;
pub mod config;
pub mod jobs;
pub mod keys;
pub mod libraries;
pub mod query;
pub mod search;
pub mod system;
pub mod webhooks;

use poem_openapi::Tags;

#[derive(Tags)]
pub enum ApiTags {
    /// Books: create, upload, read their structure
    Books,
    /// Search: pages by keyword, meaning or both; index terms across books
    Search,
    /// Processing jobs: state, progress, cancellation
    Jobs,
    /// Questions answered from the books, with cited pages
    Query,
    /// Live tuning knobs, shared by every replica
    Config,
    /// Health, readiness, counts and metrics
    System,
    /// API keys: make, list and revoke them (operators)
    Keys,
    /// Libraries: the collections books belong to and keys are given access to; the audit log
    Libraries,
    /// Webhooks: signed job and book events POSTed to your URLs (admin scope)
    Webhooks,
}
