//! Full-text search over page text: SQLite FTS5 in the embedded shape, PostgreSQL tsvector
//! in production.

mod postgres_fts;
mod sqlite_fts;

use async_trait::async_trait;

use crate::domain::BookFilter;

pub use postgres_fts::PostgresFtsIndex;
pub use sqlite_fts::SqliteFtsIndex;

/// One page as the text index stores it.
#[derive(Debug, Clone)]
pub struct IndexedPage {
    pub number: u32,
    pub text: String,
}

/// One page that matched a search.
#[derive(Debug, Clone, PartialEq)]
pub struct PageHit {
    pub book_id: String,
    /// 1-based physical page.
    pub page: u32,
    /// Higher is better; comparable within one search only.
    pub score: f64,
    /// The backend's own key of the indexed page (SQLite: the FTS5 rowid), for
    /// [`TextIndex::snippets`]; `None` where the book and page are the key.
    pub row: Option<i64>,
}

#[async_trait]
pub trait TextIndex: Send + Sync {
    fn kind(&self) -> &'static str;

    /// Replaces the book's pages in the index (idempotent).
    async fn index_pages(&self, book_id: &str, pages: &[IndexedPage]) -> anyhow::Result<()>;

    async fn delete_book(&self, book_id: &str) -> anyhow::Result<()>;

    /// Pages of the book in the index (a consistency check for the quality gates and tests).
    async fn page_count(&self, book_id: &str) -> anyhow::Result<u64>;

    /// The best `limit` pages for the user's `query` (plain words, `"quoted phrases"`), among
    /// the books `books` allows (filtered before ranking). Any text is a valid query: operators and quotes are read as words, never as
    /// syntax, and a query without words finds nothing.
    /// Without snippets: making one re-reads the page's text, worth it only for the few hits
    /// a search returns ([`snippets`](Self::snippets)).
    async fn search_pages(&self, books: &BookFilter, query: &str, limit: u64) -> anyhow::Result<Vec<PageHit>>;

    /// A snippet for each hit of a search for `query`, in order: HTML-escaped page text around
    /// the matches, each match inside `<b>..</b>`; empty when the page no longer matches (its
    /// book was indexed again meanwhile).
    async fn snippets(&self, query: &str, hits: &[PageHit]) -> anyhow::Result<Vec<String>>;
}

/// Marks the backends put around matches; the snippet is escaped before they become tags.
const MATCH_START: char = '\u{2}';
const MATCH_END: char = '\u{3}';

/// Escapes page text for HTML, then turns the backend's match marks into `<b>..</b>`.
fn snippet_html(marked: &str) -> String {
    let mut html = String::with_capacity(marked.len() + 16);
    for c in marked.chars() {
        match c {
            '&' => html.push_str("&amp;"),
            '<' => html.push_str("&lt;"),
            '>' => html.push_str("&gt;"),
            '"' => html.push_str("&quot;"),
            '\'' => html.push_str("&#39;"),
            MATCH_START => html.push_str("<b>"),
            MATCH_END => html.push_str("</b>"),
            c => html.push(c),
        }
    }
    html
}

/// PostgreSQL text cannot hold NUL; the match marks must not come from the text itself.
fn clean_text(text: &str) -> String {
    text.chars()
        .map(|c| {
            if matches!(c, '\0' | MATCH_START | MATCH_END) {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// Runs a `SELECT COUNT(*) AS n ...` statement.
async fn count_rows(db: &impl sea_orm::ConnectionTrait, statement: sea_orm::Statement) -> anyhow::Result<u64> {
    let count: i64 = match db.query_one_raw(statement).await? {
        Some(row) => row.try_get("", "n")?,
        None => 0,
    };
    Ok(u64::try_from(count).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_escape_the_page_text() {
        assert_eq!(
            snippet_html("a <script> & \u{2}word\u{3} \"x\""),
            "a &lt;script&gt; &amp; <b>word</b> &quot;x&quot;"
        );
        assert_eq!(clean_text("a\0b\u{2}c"), "a b c");
    }
}
