//! The book graph of SPEC section 3: `(:Book)-[:HAS_TOC]->(:Chapter)-[:HAS_CHILD]->(:Chapter)`,
//! `(:Chapter)-[:STARTS_ON_PAGE]->(:Page)`, `(:Book)-[:HAS_PAGE]->(:Page)`. The embedded shape
//! keeps it in two SQL tables; production in Neo4j or FalkorDB. Node ids are stable
//! (book, content hash, position), so writing a book twice leaves one copy.

mod sql;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use sql::SqlGraphStore;

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

/// Everything the graph holds for one book.
#[derive(Debug, Clone, Default)]
pub struct BookGraph {
    pub book_id: String,
    pub content_hash: String,
    pub title: String,
    /// Printed label of each physical page, page 1 first.
    pub page_labels: Vec<String>,
    pub chapters: Vec<ChapterNode>,
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
        format!(
            "chapter:{}:{}:{position}",
            self.book_id,
            &self.content_hash[..self.content_hash.len().min(12)]
        )
    }
}

/// Links each flat ToC entry to its parent by level: the nearest earlier entry one level up.
pub fn chapters_from_flat_toc(entries: &[(u32, String, Option<u32>)]) -> Vec<ChapterNode> {
    let mut stack: Vec<(u32, u32)> = Vec::new(); // (level, position)
    let mut chapters = Vec::with_capacity(entries.len());
    for (index, (level, title, page)) in entries.iter().enumerate() {
        let position = u32::try_from(index).unwrap_or(u32::MAX);
        while stack.last().is_some_and(|&(open_level, _)| open_level >= *level) {
            stack.pop();
        }
        chapters.push(ChapterNode {
            position,
            level: *level,
            title: title.clone(),
            page: *page,
            parent: stack.last().map(|&(_, parent)| parent),
        });
        stack.push((*level, position));
    }
    chapters
}

#[async_trait]
pub trait GraphStore: Send + Sync {
    /// A short name for logs and health checks (`sql`, `neo4j`, `falkordb`).
    fn kind(&self) -> &'static str;

    /// Replaces the book's graph with `graph` (idempotent).
    async fn write_book(&self, graph: &BookGraph) -> anyhow::Result<()>;

    /// The book's chapters in document order, read back from the graph.
    async fn chapters(&self, book_id: &str) -> anyhow::Result<Vec<ChapterNode>>;

    async fn delete_book(&self, book_id: &str) -> anyhow::Result<()>;

    async fn check(&self) -> anyhow::Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_follow_levels() {
        let flat = vec![
            (1, "Preface".to_owned(), Some(3)),
            (1, "1 Intro".to_owned(), Some(5)),
            (2, "1.1 A".to_owned(), Some(5)),
            (3, "1.1.1 deep".to_owned(), Some(6)),
            (2, "1.2 B".to_owned(), Some(7)),
            (1, "2 Next".to_owned(), None),
        ];
        let parents: Vec<Option<u32>> = chapters_from_flat_toc(&flat).iter().map(|c| c.parent).collect();
        assert_eq!(parents, vec![None, None, Some(1), Some(2), Some(1), None]);
    }
}
