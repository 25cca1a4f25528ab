//! Full-text search over page text: SQLite FTS5 in the embedded shape, PostgreSQL tsvector
//! in production.

mod sqlite_fts;

use async_trait::async_trait;

pub use sqlite_fts::SqliteFtsIndex;

/// One page as the text index stores it.
#[derive(Debug, Clone)]
pub struct IndexedPage {
    pub number: u32,
    pub text: String,
}

#[async_trait]
pub trait TextIndex: Send + Sync {
    fn kind(&self) -> &'static str;

    /// Replaces the book's pages in the index (idempotent).
    async fn index_pages(&self, book_id: &str, pages: &[IndexedPage]) -> anyhow::Result<()>;

    async fn delete_book(&self, book_id: &str) -> anyhow::Result<()>;

    /// Pages of the book in the index (a consistency check for the quality gates and tests).
    async fn page_count(&self, book_id: &str) -> anyhow::Result<u64>;
}
