//! Database schema for HBI. Every migration runs unchanged on SQLite and PostgreSQL;
//! backend-specific objects (FTS5 tables, tsvector columns) are created behind a
//! `get_database_backend()` check inside the migration that owns them.

pub use sea_orm_migration::prelude::*;

mod m20261123_000001_core;
mod m20261123_000002_postgres_text;
mod m20261124_000001_graph_lookups;
mod m20261125_000001_chunk_labels;
mod m20261125_000002_quality_detail;
mod m20261126_000001_job_trace_context;
mod m20261126_000002_api_keys;
mod m20261127_000001_one_live_job_per_book;
mod m20261203_000001_book_language;
mod m20261204_000001_webhooks;
mod m20261207_000001_job_parts;
mod m20261208_000001_libraries;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_core::Migration),
            Box::new(m20261123_000002_postgres_text::Migration),
            Box::new(m20261124_000001_graph_lookups::Migration),
            Box::new(m20261125_000001_chunk_labels::Migration),
            Box::new(m20261125_000002_quality_detail::Migration),
            Box::new(m20261126_000001_job_trace_context::Migration),
            Box::new(m20261126_000002_api_keys::Migration),
            Box::new(m20261127_000001_one_live_job_per_book::Migration),
            Box::new(m20261203_000001_book_language::Migration),
            Box::new(m20261204_000001_webhooks::Migration),
            Box::new(m20261207_000001_job_parts::Migration),
            Box::new(m20261208_000001_libraries::Migration),
        ]
    }
}
