//! The book graph of SPEC section 3:
//! `(:Book)-[:HAS_TOC]->(:Chapter)-[:HAS_CHILD]->(:Chapter)`, `(:Chapter)-[:STARTS_ON_PAGE]->(:Page)`,
//! `(:Book)-[:HAS_PAGE]->(:Page)`, `(:Book)-[:HAS_INDEX_TERM]->(:IndexTerm)-[:APPEARS_ON_PAGE]->(:Page)`,
//! `(:IndexTerm)-[:SUBTERM_OF]->(:IndexTerm)`, `(:IndexTerm)-[:SEE|SEE_ALSO]->(:IndexTerm)` and
//! `(:IndexTerm)-[:OF_TERM]->(:Term {key})`, the Term being shared by all books.
//!
//! The embedded shape keeps it in two SQL tables; production in Neo4j or FalkorDB, through the
//! same Cypher statements. Node ids are stable (book, content hash, position), so writing a
//! book twice leaves one copy. What nodes and edges a book makes is decided once, in
//! [`plan`], for every store.

mod cypher;
mod falkordb;
mod neo4j;
mod plan;
mod sql;
mod terms;

use async_trait::async_trait;
use hbi_extraction::TocEntry;
use serde::{Deserialize, Serialize};

pub use self::falkordb::FalkorGraphStore;
pub use self::neo4j::Neo4jGraphStore;
pub use sql::SqlGraphStore;
pub(crate) use sql::like_literal;
pub use terms::{TermMatch, index_terms_from_entries, match_term, term_key, term_words};

/// At most this many pages of one locator range get an `APPEARS_ON_PAGE` edge, so that a
/// misread range ("1–999") cannot fan out over the whole book.
pub const MAX_PAGES_PER_RANGE: u32 = 50;

/// At most this many hits from [`GraphStore::books_for_term`].
pub const MAX_TERM_HITS: usize = 100;

/// One ToC entry as a graph node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChapterNode {
    pub position: u32,
    pub level: u32,
    pub title: String,
    /// 1-based physical page, when the extractor resolved it.
    pub page: Option<u32>,
    /// Position of the enclosing chapter, `None` for a top-level one.
    pub parent: Option<u32>,
}

/// One back-of-book index entry or sub-entry as a graph node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexTermNode {
    /// Place in the book's index, in document order.
    pub position: u32,
    /// Heading of the index the entry belongs to, when the book has several.
    pub index_name: Option<String>,
    /// The entry's own text (the last element of `path`).
    pub term: String,
    /// The entry with its parents, top-level first.
    pub path: Vec<String>,
    /// Position of the parent entry, `None` for a top-level one.
    pub parent: Option<u32>,
    /// Physical pages (1-based) as `[first, last]`.
    pub pages: Vec<[u32; 2]>,
    pub see: Vec<String>,
    pub see_also: Vec<String>,
}

impl IndexTermNode {
    /// The key of the shared `(:Term)`: the normalised path, so that a sub-entry ("ownership,
    /// borrowing") does not merge with every other book's bare "borrowing".
    pub fn key(&self) -> String {
        if self.path.is_empty() {
            term_key(&self.term)
        } else {
            term_key(&self.path.join(", "))
        }
    }
}

/// One book indexing a term, for GET /terms?q=.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TermHit {
    pub book_id: String,
    pub term: String,
    pub path: Vec<String>,
    /// Physical pages (1-based) as `[first, last]`.
    pub pages: Vec<[u32; 2]>,
}

/// Everything the graph holds for one book.
#[derive(Debug, Clone, Default)]
pub struct BookGraph {
    pub book_id: String,
    pub content_hash: String,
    pub title: String,
    /// Printed label of each physical page, page 1 first.
    pub page_labels: Vec<String>,
    pub chapters: Vec<ChapterNode>,
    pub index_terms: Vec<IndexTermNode>,
}

impl BookGraph {
    pub fn book_node_id(book_id: &str) -> String {
        format!("book:{book_id}")
    }

    pub fn page_node_id(&self, page: u32) -> String {
        format!("page:{}:{page}", self.book_id)
    }

    pub fn chapter_node_id(&self, position: u32) -> String {
        // The content hash prefix keeps a chapter's id tied to the text it was read from.
        format!("chapter:{}:{}:{position}", self.book_id, self.hash_prefix())
    }

    pub fn index_term_node_id(&self, position: u32) -> String {
        format!("index_term:{}:{}:{position}", self.book_id, self.hash_prefix())
    }

    /// The shared `(:Term)` of a key.
    pub fn term_node_id(key: &str) -> String {
        format!("term:{key}")
    }

    /// The key of a shared `(:Term)` from its id.
    pub fn term_key_of_node_id(id: &str) -> &str {
        id.strip_prefix("term:").unwrap_or(id)
    }

    fn hash_prefix(&self) -> &str {
        // `get` rather than slicing: a hash is ASCII hex, but this must not panic on anything else.
        self.content_hash
            .get(..self.content_hash.len().min(12))
            .unwrap_or(&self.content_hash)
    }
}

/// The chapters of an outline, each with its enclosing chapter ([`crate::outline::enclosing`]).
pub fn chapters_from_flat_toc(entries: &[TocEntry]) -> Vec<ChapterNode> {
    let parents = crate::outline::enclosing(entries.iter().map(|entry| entry.level));
    entries
        .iter()
        .zip(parents)
        .enumerate()
        .map(|(index, (entry, parent))| ChapterNode {
            position: u32::try_from(index).unwrap_or(u32::MAX),
            level: entry.level,
            title: terms::clean_text(&entry.title),
            page: entry.page,
            parent: parent.map(|parent| u32::try_from(parent).unwrap_or(u32::MAX)),
        })
        .collect()
}

/// The outline the chapters were made from, in position order.
pub fn outline_of(chapters: Vec<ChapterNode>) -> Vec<TocEntry> {
    chapters
        .into_iter()
        .map(|chapter| TocEntry {
            level: chapter.level,
            title: chapter.title,
            page: chapter.page,
        })
        .collect()
}

#[async_trait]
pub trait GraphStore: Send + Sync {
    /// A short name for logs and health checks (`sql`, `neo4j`, `falkordb`).
    fn kind(&self) -> &'static str;

    /// Replaces the book's graph with `graph` (idempotent).
    async fn write_book(&self, graph: &BookGraph) -> anyhow::Result<()>;

    /// The book's chapters in document order, read back from the graph.
    async fn chapters(&self, book_id: &str) -> anyhow::Result<Vec<ChapterNode>>;

    /// The book's index entries in document order, read back from the graph.
    async fn index_terms(&self, book_id: &str) -> anyhow::Result<Vec<IndexTermNode>>;

    /// Which books index a term and on which pages: the entries whose [`IndexTermNode::key`]
    /// equals the normalised `key_or_text` first, then those it is a prefix of; at most
    /// [`MAX_TERM_HITS`].
    async fn books_for_term(&self, key_or_text: &str) -> anyhow::Result<Vec<TermHit>>;

    /// Removes the book's nodes and edges, and the shared terms no other book uses.
    async fn delete_book(&self, book_id: &str) -> anyhow::Result<()>;

    async fn check(&self) -> anyhow::Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_follow_levels() {
        let flat = [
            (1, "Preface", Some(3)),
            (1, "1 Intro", Some(5)),
            (2, "1.1 A", Some(5)),
            (3, "1.1.1 deep", Some(6)),
            (2, "1.2 B", Some(7)),
            (1, "2 Next", None),
        ]
        .map(|(level, title, page)| TocEntry {
            level,
            title: title.to_owned(),
            page,
        });
        let parents: Vec<Option<u32>> = chapters_from_flat_toc(&flat).iter().map(|c| c.parent).collect();
        assert_eq!(parents, vec![None, None, Some(1), Some(2), Some(1), None]);
    }

    #[test]
    fn ids_survive_an_odd_content_hash() {
        let graph = BookGraph {
            book_id: "b".to_owned(),
            content_hash: format!("a{}", "é".repeat(10)), // byte 12 falls inside a character
            ..Default::default()
        };
        assert!(graph.chapter_node_id(1).starts_with("chapter:b:"));
        assert_eq!(BookGraph::term_node_id("rust"), "term:rust");
        assert_eq!(BookGraph::term_key_of_node_id("term:term:x"), "term:x");
    }
}
