//! The HTTP operations, one module per tag. Handlers are thin: they parse, call the
//! catalog, job store or backends of `hbi_shared`, and shape the answer.

pub mod books;
pub mod config;
pub mod jobs;
pub mod keys;
pub mod query;
pub mod search;
pub mod system;

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
    /// API keys: make, list and revoke them (admin scope)
    Keys,
}
