//! What one book becomes in any graph store: its nodes (label, stable id, properties) and
//! edges. Stores differ only in how they keep these, so the model is decided here once.

use std::collections::HashSet;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::terms::{ReferenceKind, resolve_references};
use super::{BookGraph, ChapterNode, IndexTermNode, MAX_PAGES_PER_RANGE, TermHit};

/// Node labels. Only these ever reach Cypher text; data goes in parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Label {
    Book,
    Page,
    Chapter,
    IndexTerm,
    Term,
}

impl Label {
    pub const ALL: [Label; 5] = [Label::Book, Label::Page, Label::Chapter, Label::IndexTerm, Label::Term];
    /// Labels whose nodes belong to one book (they carry `book_id`).
    pub const OF_BOOK: [Label; 4] = [Label::Book, Label::Page, Label::Chapter, Label::IndexTerm];

    pub fn as_str(self) -> &'static str {
        match self {
            Label::Book => "Book",
            Label::Page => "Page",
            Label::Chapter => "Chapter",
            Label::IndexTerm => "IndexTerm",
            Label::Term => "Term",
        }
    }
}

/// Relationship types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Rel {
    HasPage,
    HasToc,
    HasChild,
    StartsOnPage,
    HasIndexTerm,
    SubtermOf,
    AppearsOnPage,
    See,
    SeeAlso,
    OfTerm,
}

impl Rel {
    pub fn as_str(self) -> &'static str {
        match self {
            Rel::HasPage => "HAS_PAGE",
            Rel::HasToc => "HAS_TOC",
            Rel::HasChild => "HAS_CHILD",
            Rel::StartsOnPage => "STARTS_ON_PAGE",
            Rel::HasIndexTerm => "HAS_INDEX_TERM",
            Rel::SubtermOf => "SUBTERM_OF",
            Rel::AppearsOnPage => "APPEARS_ON_PAGE",
            Rel::See => "SEE",
            Rel::SeeAlso => "SEE_ALSO",
            Rel::OfTerm => "OF_TERM",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PlannedNode {
    pub label: Label,
    pub id: String,
    /// Flat properties (graph databases take no nested lists), `book_id` included where the
    /// node belongs to a book.
    pub props: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct PlannedEdge {
    pub src_label: Label,
    pub src: String,
    pub rel: Rel,
    pub dst_label: Label,
    pub dst: String,
}

#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub nodes: Vec<PlannedNode>,
    /// Without duplicates.
    pub edges: Vec<PlannedEdge>,
}

/// How an index term is stored: `pages` flattened to `[first, last, first, last, ...]`
/// because Neo4j properties cannot be lists of lists.
#[derive(Debug, Serialize, Deserialize)]
struct IndexTermProps {
    book_id: String,
    position: u32,
    #[serde(default)]
    index_name: Option<String>,
    term: String,
    #[serde(default)]
    path: Vec<String>,
    #[serde(default)]
    parent: Option<u32>,
    #[serde(default)]
    pages: Vec<u32>,
    #[serde(default)]
    see: Vec<String>,
    #[serde(default)]
    see_also: Vec<String>,
    /// References that name no entry of this book, kept as written.
    #[serde(default)]
    see_unresolved: Vec<String>,
    #[serde(default)]
    see_also_unresolved: Vec<String>,
    #[serde(default)]
    key: String,
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn flat_pages(pages: &[[u32; 2]]) -> Vec<u32> {
    pages.iter().flat_map(|&[first, last]| [first, last]).collect()
}

fn paired_pages(flat: &[u32]) -> Vec<[u32; 2]> {
    flat.chunks_exact(2).map(|pair| [pair[0], pair[1]]).collect()
}

/// The nodes and edges of `graph`.
pub(crate) fn plan(graph: &BookGraph) -> anyhow::Result<Plan> {
    let book_id = graph.book_id.as_str();
    let book = BookGraph::book_node_id(book_id);
    let page_count = u32::try_from(graph.page_labels.len()).unwrap_or(u32::MAX);
    let page_exists = |page: u32| page >= 1 && page <= page_count;
    let mut plan = Plan::default();
    let mut seen_edges = HashSet::new();
    let mut edge = |plan: &mut Plan, src_label, src: &str, rel, dst_label, dst: String| {
        let edge = PlannedEdge {
            src_label,
            src: src.to_owned(),
            rel,
            dst_label,
            dst,
        };
        if seen_edges.insert(edge.clone()) {
            plan.edges.push(edge);
        }
    };

    plan.nodes.push(PlannedNode {
        label: Label::Book,
        id: book.clone(),
        props: object(serde_json::json!({
            "book_id": book_id, "title": graph.title, "content_hash": graph.content_hash,
        })),
    });
    for (number, label) in (1..=page_count).zip(&graph.page_labels) {
        let page = graph.page_node_id(number);
        plan.nodes.push(PlannedNode {
            label: Label::Page,
            id: page.clone(),
            props: object(serde_json::json!({
                "book_id": book_id, "number": number, "label": crate::domain::clean_label(label),
            })),
        });
        edge(&mut plan, Label::Book, &book, Rel::HasPage, Label::Page, page);
    }

    for chapter in &graph.chapters {
        let id = graph.chapter_node_id(chapter.position);
        let mut props = object(serde_json::to_value(chapter)?);
        props.insert("book_id".to_owned(), book_id.into());
        plan.nodes.push(PlannedNode {
            label: Label::Chapter,
            id: id.clone(),
            props,
        });
        match chapter.parent {
            Some(parent) => {
                let parent = graph.chapter_node_id(parent);
                edge(
                    &mut plan,
                    Label::Chapter,
                    &parent,
                    Rel::HasChild,
                    Label::Chapter,
                    id.clone(),
                );
            }
            None => edge(&mut plan, Label::Book, &book, Rel::HasToc, Label::Chapter, id.clone()),
        }
        if let Some(page) = chapter.page.filter(|&page| page_exists(page)) {
            let page = graph.page_node_id(page);
            edge(&mut plan, Label::Chapter, &id, Rel::StartsOnPage, Label::Page, page);
        }
    }

    let positions: HashSet<u32> = graph.index_terms.iter().map(|term| term.position).collect();
    let mut references = resolve_references(&graph.index_terms);
    let mut terms_seen = HashSet::new();
    for term in &graph.index_terms {
        let id = graph.index_term_node_id(term.position);
        let key = term.key();
        let (see_unresolved, see_also_unresolved) = references.unresolved.remove(&term.position).unwrap_or_default();
        let props = IndexTermProps {
            book_id: book_id.to_owned(),
            position: term.position,
            index_name: term.index_name.clone(),
            term: term.term.clone(),
            path: term.path.clone(),
            parent: term.parent,
            pages: flat_pages(&term.pages),
            see: term.see.clone(),
            see_also: term.see_also.clone(),
            see_unresolved,
            see_also_unresolved,
            key: key.clone(),
        };
        plan.nodes.push(PlannedNode {
            label: Label::IndexTerm,
            id: id.clone(),
            props: object(serde_json::to_value(&props)?),
        });
        edge(
            &mut plan,
            Label::Book,
            &book,
            Rel::HasIndexTerm,
            Label::IndexTerm,
            id.clone(),
        );
        if let Some(parent) = term.parent.filter(|parent| positions.contains(parent)) {
            let parent = graph.index_term_node_id(parent);
            edge(
                &mut plan,
                Label::IndexTerm,
                &id,
                Rel::SubtermOf,
                Label::IndexTerm,
                parent,
            );
        }
        for &[first, last] in &term.pages {
            let last = last.max(first).min(first.saturating_add(MAX_PAGES_PER_RANGE - 1));
            for page in (first..=last).filter(|&page| page_exists(page)) {
                let page = graph.page_node_id(page);
                edge(&mut plan, Label::IndexTerm, &id, Rel::AppearsOnPage, Label::Page, page);
            }
        }
        if !key.is_empty() {
            let term_id = BookGraph::term_node_id(&key);
            if terms_seen.insert(term_id.clone()) {
                plan.nodes.push(PlannedNode {
                    label: Label::Term,
                    id: term_id.clone(),
                    props: object(serde_json::json!({ "key": key })),
                });
            }
            edge(&mut plan, Label::IndexTerm, &id, Rel::OfTerm, Label::Term, term_id);
        }
    }
    for (from, kind, to) in references.edges {
        let rel = match kind {
            ReferenceKind::See => Rel::See,
            ReferenceKind::SeeAlso => Rel::SeeAlso,
        };
        let (from, to) = (graph.index_term_node_id(from), graph.index_term_node_id(to));
        edge(&mut plan, Label::IndexTerm, &from, rel, Label::IndexTerm, to);
    }
    Ok(plan)
}

/// A chapter from its stored properties.
pub(crate) fn chapter_from_props(props: Value) -> anyhow::Result<ChapterNode> {
    serde_json::from_value(props).context("a Chapter node's properties")
}

/// An index term from its stored properties.
pub(crate) fn index_term_from_props(props: Value) -> anyhow::Result<IndexTermNode> {
    let props: IndexTermProps = serde_json::from_value(props).context("an IndexTerm node's properties")?;
    Ok(IndexTermNode {
        position: props.position,
        index_name: props.index_name,
        term: props.term,
        path: props.path,
        parent: props.parent,
        pages: paired_pages(&props.pages),
        see: props.see,
        see_also: props.see_also,
    })
}

/// A hit for GET /terms from an index term's stored properties.
pub(crate) fn term_hit_from_props(props: Value) -> anyhow::Result<TermHit> {
    let props: IndexTermProps = serde_json::from_value(props).context("an IndexTerm node's properties")?;
    Ok(TermHit {
        book_id: props.book_id,
        term: props.term,
        path: props.path,
        pages: paired_pages(&props.pages),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BookGraph {
        BookGraph {
            book_id: "b1".to_owned(),
            content_hash: "abcdef0123456789".to_owned(),
            title: "T".to_owned(),
            page_labels: (1..=120).map(|n| n.to_string()).collect(),
            chapters: vec![],
            index_terms: vec![
                IndexTermNode {
                    position: 0,
                    index_name: None,
                    term: "Rust".to_owned(),
                    path: vec!["Rust".to_owned()],
                    parent: None,
                    // Overlapping ranges, a reversed one, one past the end, one too long.
                    pages: vec![[3, 5], [4, 6], [9, 8], [119, 130], [1, 1000]],
                    see: vec![],
                    see_also: vec!["Nowhere".to_owned()],
                },
                IndexTermNode {
                    position: 1,
                    index_name: None,
                    term: "ownership".to_owned(),
                    path: vec!["Rust".to_owned(), "ownership".to_owned()],
                    parent: Some(0),
                    pages: vec![],
                    see: vec!["rust".to_owned()],
                    see_also: vec![],
                },
            ],
        }
    }

    #[test]
    fn page_edges_are_bounded_and_unique() -> anyhow::Result<()> {
        let plan = plan(&sample())?;
        let pages: Vec<&str> = plan
            .edges
            .iter()
            .filter(|e| e.rel == Rel::AppearsOnPage)
            .map(|e| e.dst.as_str())
            .collect();
        // 1..=50 (capped) covers 3..=6 and 9 (a reversed range reads as one page); 119, 120.
        assert_eq!(pages.len(), 52, "{pages:?}");
        let unique: HashSet<_> = plan.edges.iter().collect();
        assert_eq!(unique.len(), plan.edges.len());
        Ok(())
    }

    #[test]
    fn terms_subterms_and_references() -> anyhow::Result<()> {
        let graph = sample();
        let plan = plan(&graph)?;
        let has = |rel: Rel, src: String, dst: String| {
            plan.edges.iter().any(|e| e.rel == rel && e.src == src && e.dst == dst)
        };
        assert!(has(
            Rel::SubtermOf,
            graph.index_term_node_id(1),
            graph.index_term_node_id(0)
        ));
        assert!(has(Rel::See, graph.index_term_node_id(1), graph.index_term_node_id(0)));
        assert!(has(
            Rel::OfTerm,
            graph.index_term_node_id(1),
            BookGraph::term_node_id("rust, ownership")
        ));
        let rust = plan
            .nodes
            .iter()
            .find(|n| n.id == graph.index_term_node_id(0))
            .ok_or_else(|| anyhow::anyhow!("no node"))?;
        assert_eq!(rust.props["see_also_unresolved"], serde_json::json!(["Nowhere"]));
        assert_eq!(
            index_term_from_props(Value::Object(rust.props.clone()))?,
            graph.index_terms[0]
        );
        Ok(())
    }
}
