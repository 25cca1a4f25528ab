//! Every Cypher statement HBI sends, shared by the Neo4j and FalkorDB adapters, and the
//! store built on them. An adapter only runs statements ([`CypherSession`]); so the tests
//! against FalkorDB exercise exactly what is sent to Neo4j.
//!
//! Statement text is made of constants and of [`Label`] / [`Rel`] names only: every value
//! goes in a parameter.
//!
//! A write MERGEs every node and edge of the book on its stable id, stamping each with a
//! fresh write stamp, then deletes the book's nodes and edges that carry an older stamp,
//! then the shared `(:Term)` nodes no index term points to any more. A re-run therefore
//! leaves exactly one copy, and readers never see the book missing.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::{Map, Value, json};

use super::plan::{self, Label, Rel};
use super::{BookGraph, ChapterNode, GraphStore, IndexTermNode, MAX_TERM_HITS, TermHit, term_key};

/// Rows per `UNWIND`: large enough to amortise a round trip, small enough for one request.
pub(crate) const BATCH: usize = 500;

/// One statement and its parameters.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Statement {
    pub text: String,
    pub params: Vec<(&'static str, Value)>,
}

impl Statement {
    fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            params: Vec::new(),
        }
    }

    fn param(mut self, name: &'static str, value: impl Into<Value>) -> Self {
        self.params.push((name, value.into()));
        self
    }
}

/// What an adapter does: run statements. Rows come back as column name -> JSON value.
#[async_trait]
pub(crate) trait CypherSession: Send + Sync {
    fn kind(&self) -> &'static str;

    /// Runs write statements in order; Neo4j in one transaction, FalkorDB one by one (each
    /// statement is atomic there).
    async fn write(&self, statements: Vec<Statement>) -> anyhow::Result<()>;

    async fn read(&self, statement: Statement) -> anyhow::Result<Vec<Map<String, Value>>>;
}

// ---- schema ---------------------------------------------------------------------------------

/// Properties looked up by value, besides each label's unique `id`.
pub(crate) const INDEXED: [(Label, &str); 5] = [
    (Label::Book, "book_id"),
    (Label::Page, "book_id"),
    (Label::Chapter, "book_id"),
    (Label::IndexTerm, "book_id"),
    (Label::Term, "key"),
];

/// Neo4j 5 schema statements; `IF NOT EXISTS` makes them safe to run at every start.
pub(crate) fn neo4j_schema() -> Vec<String> {
    let mut statements: Vec<String> = Label::ALL
        .iter()
        .map(|label| {
            let name = label.as_str();
            format!(
                "CREATE CONSTRAINT hbi_{}_id IF NOT EXISTS FOR (n:{name}) REQUIRE n.id IS UNIQUE",
                name.to_ascii_lowercase()
            )
        })
        .collect();
    statements.extend(INDEXED.iter().map(|(label, property)| {
        let name = label.as_str();
        format!(
            "CREATE INDEX hbi_{}_{property} IF NOT EXISTS FOR (n:{name}) ON (n.{property})",
            name.to_ascii_lowercase()
        )
    }));
    statements
}

// ---- writes ---------------------------------------------------------------------------------

pub(crate) fn merge_nodes(label: Label) -> String {
    format!(
        "UNWIND $rows AS row MERGE (n:{} {{id: row.id}}) SET n += row.props, n.write = $stamp",
        label.as_str()
    )
}

pub(crate) fn merge_edges(src: Label, rel: Rel, dst: Label) -> String {
    format!(
        "UNWIND $rows AS row MATCH (a:{} {{id: row.src}}) MATCH (b:{} {{id: row.dst}}) \
         MERGE (a)-[r:{}]->(b) SET r.write = $stamp",
        src.as_str(),
        dst.as_str(),
        rel.as_str()
    )
}

/// `OF_TERM` edges MERGE their shared term too: another book's write may have deleted it as
/// an orphan between this write's node and edge statements (FalkorDB has no transaction
/// spanning both).
pub(crate) const MERGE_TERM_EDGES: &str = "UNWIND $rows AS row MATCH (a:IndexTerm {id: row.src}) \
     MERGE (b:Term {id: row.dst}) ON CREATE SET b.key = row.key, b.write = $stamp \
     MERGE (a)-[r:OF_TERM]->(b) SET r.write = $stamp";

/// Edges of the book, all of which start at one of its nodes, written before `$stamp`.
pub(crate) fn delete_stale_edges(src: Label) -> String {
    format!(
        "MATCH (n:{} {{book_id: $book_id}})-[r]->() WHERE r.write <> $stamp DELETE r",
        src.as_str()
    )
}

pub(crate) fn delete_stale_nodes(label: Label) -> String {
    format!(
        "MATCH (n:{} {{book_id: $book_id}}) WHERE n.write <> $stamp DETACH DELETE n",
        label.as_str()
    )
}

pub(crate) fn delete_book_nodes(label: Label) -> String {
    format!("MATCH (n:{} {{book_id: $book_id}}) DETACH DELETE n", label.as_str())
}

/// The shared terms a book points to (read before a write or delete: these may be orphaned).
pub(crate) const BOOK_TERM_IDS: &str =
    "MATCH (:IndexTerm {book_id: $book_id})-[:OF_TERM]->(t:Term) RETURN DISTINCT t.id AS id";

/// Deletes those of `$ids` no index term points to any more.
pub(crate) const DELETE_ORPHAN_TERMS: &str = "UNWIND $ids AS id MATCH (t:Term {id: id}) \
     OPTIONAL MATCH (t)<-[r:OF_TERM]-() WITH t, count(r) AS uses WHERE uses = 0 DELETE t";

// ---- reads ----------------------------------------------------------------------------------

pub(crate) const READ_CHAPTERS: &str =
    "MATCH (n:Chapter {book_id: $book_id}) RETURN properties(n) AS props ORDER BY n.position";

pub(crate) const READ_INDEX_TERMS: &str =
    "MATCH (n:IndexTerm {book_id: $book_id}) RETURN properties(n) AS props ORDER BY n.position";

pub(crate) const TERM_EXACT: &str = "MATCH (t:Term {key: $key})<-[:OF_TERM]-(i:IndexTerm) \
     RETURN properties(i) AS props ORDER BY i.book_id, i.position LIMIT 100";

pub(crate) const TERM_PREFIX: &str = "MATCH (t:Term) WHERE t.key STARTS WITH $key AND t.key <> $key \
     MATCH (t)<-[:OF_TERM]-(i:IndexTerm) \
     RETURN properties(i) AS props ORDER BY t.key, i.book_id, i.position LIMIT 100";

pub(crate) const PING: &str = "RETURN 1 AS ok";

fn batched(text: &str, rows: Vec<Value>, stamp: &str) -> Vec<Statement> {
    rows.chunks(BATCH)
        .map(|chunk| {
            Statement::new(text)
                .param("rows", Value::Array(chunk.to_vec()))
                .param("stamp", stamp)
        })
        .collect()
}

fn orphan_cleanup(ids: &[Value]) -> Vec<Statement> {
    ids.chunks(BATCH)
        .map(|chunk| Statement::new(DELETE_ORPHAN_TERMS).param("ids", Value::Array(chunk.to_vec())))
        .collect()
}

/// The statements that write `graph` under `stamp`, stale parts of an earlier write and the
/// shared terms in `old_terms` left unused removed.
pub(crate) fn write_statements(graph: &BookGraph, stamp: &str, old_terms: &[Value]) -> anyhow::Result<Vec<Statement>> {
    let plan = plan::plan(graph)?;
    let mut nodes: BTreeMap<Label, Vec<Value>> = BTreeMap::new();
    for node in plan.nodes {
        nodes
            .entry(node.label)
            .or_default()
            .push(json!({"id": node.id, "props": node.props}));
    }
    let mut edges: BTreeMap<(Label, Rel, Label), Vec<Value>> = BTreeMap::new();
    for edge in plan.edges {
        let mut row = json!({"src": edge.src, "dst": edge.dst});
        if edge.rel == Rel::OfTerm {
            row["key"] = BookGraph::term_key_of_node_id(&edge.dst).into();
        }
        edges
            .entry((edge.src_label, edge.rel, edge.dst_label))
            .or_default()
            .push(row);
    }
    let mut statements = Vec::new();
    for (label, rows) in nodes {
        statements.extend(batched(&merge_nodes(label), rows, stamp));
    }
    for ((src, rel, dst), rows) in edges {
        let text = match (src, rel, dst) {
            (Label::IndexTerm, Rel::OfTerm, Label::Term) => MERGE_TERM_EDGES.to_owned(),
            _ => merge_edges(src, rel, dst),
        };
        statements.extend(batched(&text, rows, stamp));
    }
    let book_id = graph.book_id.as_str();
    for label in [Label::Book, Label::Chapter, Label::IndexTerm] {
        statements.push(
            Statement::new(delete_stale_edges(label))
                .param("book_id", book_id)
                .param("stamp", stamp),
        );
    }
    for label in [Label::Page, Label::Chapter, Label::IndexTerm] {
        statements.push(
            Statement::new(delete_stale_nodes(label))
                .param("book_id", book_id)
                .param("stamp", stamp),
        );
    }
    statements.extend(orphan_cleanup(old_terms));
    Ok(statements)
}

/// The statements that delete a book, then the shared terms in `old_terms` left unused.
pub(crate) fn delete_statements(book_id: &str, old_terms: &[Value]) -> Vec<Statement> {
    let mut statements: Vec<Statement> = Label::OF_BOOK
        .iter()
        .map(|&label| Statement::new(delete_book_nodes(label)).param("book_id", book_id))
        .collect();
    statements.extend(orphan_cleanup(old_terms));
    statements
}

// ---- the store ------------------------------------------------------------------------------

/// Implements [`GraphStore`] for an adapter's public type by handing every call to its
/// `inner` [`CypherGraphStore`] (which stays private with its session).
macro_rules! delegate_graph_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::graph::GraphStore for $store {
            fn kind(&self) -> &'static str {
                $crate::graph::GraphStore::kind(&self.inner)
            }

            async fn write_book(&self, graph: &$crate::graph::BookGraph) -> anyhow::Result<()> {
                $crate::graph::GraphStore::write_book(&self.inner, graph).await
            }

            async fn chapters(&self, book_id: &str) -> anyhow::Result<Vec<$crate::graph::ChapterNode>> {
                $crate::graph::GraphStore::chapters(&self.inner, book_id).await
            }

            async fn index_terms(&self, book_id: &str) -> anyhow::Result<Vec<$crate::graph::IndexTermNode>> {
                $crate::graph::GraphStore::index_terms(&self.inner, book_id).await
            }

            async fn books_for_term(&self, key_or_text: &str) -> anyhow::Result<Vec<$crate::graph::TermHit>> {
                $crate::graph::GraphStore::books_for_term(&self.inner, key_or_text).await
            }

            async fn delete_book(&self, book_id: &str) -> anyhow::Result<()> {
                $crate::graph::GraphStore::delete_book(&self.inner, book_id).await
            }

            async fn check(&self) -> anyhow::Result<()> {
                $crate::graph::GraphStore::check(&self.inner).await
            }
        }
    };
}
pub(crate) use delegate_graph_store;

/// A [`GraphStore`] over any Cypher database.
pub(crate) struct CypherGraphStore<S> {
    session: S,
}

impl<S: CypherSession> CypherGraphStore<S> {
    pub fn new(session: S) -> Self {
        Self { session }
    }

    async fn book_terms(&self, book_id: &str) -> anyhow::Result<Vec<Value>> {
        let rows = self
            .session
            .read(Statement::new(BOOK_TERM_IDS).param("book_id", book_id))
            .await?;
        Ok(rows.into_iter().filter_map(|mut row| row.remove("id")).collect())
    }

    async fn props(&self, statement: Statement) -> anyhow::Result<Vec<Value>> {
        let rows = self.session.read(statement).await?;
        rows.into_iter()
            .map(|mut row| {
                row.remove("props")
                    .ok_or_else(|| anyhow::anyhow!("a {} row without `props`", self.session.kind()))
            })
            .collect()
    }
}

#[async_trait]
impl<S: CypherSession> GraphStore for CypherGraphStore<S> {
    fn kind(&self) -> &'static str {
        self.session.kind()
    }

    async fn write_book(&self, graph: &BookGraph) -> anyhow::Result<()> {
        let old_terms = self.book_terms(&graph.book_id).await?;
        let stamp = uuid::Uuid::new_v4().to_string();
        self.session.write(write_statements(graph, &stamp, &old_terms)?).await
    }

    async fn chapters(&self, book_id: &str) -> anyhow::Result<Vec<ChapterNode>> {
        let rows = self
            .props(Statement::new(READ_CHAPTERS).param("book_id", book_id))
            .await?;
        rows.into_iter().map(plan::chapter_from_props).collect()
    }

    async fn index_terms(&self, book_id: &str) -> anyhow::Result<Vec<IndexTermNode>> {
        let rows = self
            .props(Statement::new(READ_INDEX_TERMS).param("book_id", book_id))
            .await?;
        rows.into_iter().map(plan::index_term_from_props).collect()
    }

    async fn books_for_term(&self, key_or_text: &str) -> anyhow::Result<Vec<TermHit>> {
        let key = term_key(key_or_text);
        if key.is_empty() {
            return Ok(Vec::new());
        }
        let mut rows = self
            .props(Statement::new(TERM_EXACT).param("key", key.as_str()))
            .await?;
        if rows.len() < MAX_TERM_HITS {
            rows.extend(
                self.props(Statement::new(TERM_PREFIX).param("key", key.as_str()))
                    .await?,
            );
        }
        rows.truncate(MAX_TERM_HITS);
        rows.into_iter().map(plan::term_hit_from_props).collect()
    }

    async fn delete_book(&self, book_id: &str) -> anyhow::Result<()> {
        let old_terms = self.book_terms(book_id).await?;
        self.session.write(delete_statements(book_id, &old_terms)).await
    }

    async fn check(&self) -> anyhow::Result<()> {
        self.session.read(Statement::new(PING)).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neo4j_schema_has_a_unique_id_per_label_and_lookup_indexes() {
        let schema = neo4j_schema();
        assert!(
            schema.contains(
                &"CREATE CONSTRAINT hbi_book_id IF NOT EXISTS FOR (n:Book) REQUIRE n.id IS UNIQUE".to_owned()
            )
        );
        assert!(schema.contains(
            &"CREATE CONSTRAINT hbi_indexterm_id IF NOT EXISTS FOR (n:IndexTerm) REQUIRE n.id IS UNIQUE".to_owned()
        ));
        assert!(schema.contains(&"CREATE INDEX hbi_term_key IF NOT EXISTS FOR (n:Term) ON (n.key)".to_owned()));
        assert_eq!(schema.len(), Label::ALL.len() + INDEXED.len());
    }

    #[test]
    fn data_never_reaches_statement_text() -> anyhow::Result<()> {
        let hostile = "x'}) DETACH DELETE n //\"\\";
        let graph = BookGraph {
            book_id: hostile.to_owned(),
            content_hash: hostile.to_owned(),
            title: hostile.to_owned(),
            page_labels: vec![hostile.to_owned()],
            chapters: vec![ChapterNode {
                position: 0,
                level: 1,
                title: hostile.to_owned(),
                page: Some(1),
                parent: None,
            }],
            index_terms: super::super::index_terms_from_entries(&[hbi_extraction::IndexEntry {
                path: vec![hostile.to_owned()],
                pages: vec![[1, 1]],
                ..Default::default()
            }]),
        };
        let statements = write_statements(&graph, "stamp", &[json!("term:old")])?;
        for statement in statements.iter().chain(&delete_statements(hostile, &[])) {
            assert!(!statement.text.contains("DETACH DELETE n //"), "{}", statement.text);
            assert!(
                statement.text.chars().all(|c| c.is_ascii() && c != '\''),
                "{}",
                statement.text
            );
        }
        Ok(())
    }

    #[test]
    fn rows_are_batched() -> anyhow::Result<()> {
        let graph = BookGraph {
            book_id: "b".to_owned(),
            content_hash: "h".to_owned(),
            page_labels: (1..=1201).map(|n| n.to_string()).collect(),
            ..Default::default()
        };
        let statements = write_statements(&graph, "s", &[])?;
        let pages: Vec<usize> = statements
            .iter()
            .filter(|s| s.text == merge_nodes(Label::Page))
            .map(|s| match &s.params[0].1 {
                Value::Array(rows) => rows.len(),
                _ => 0,
            })
            .collect();
        assert_eq!(pages, vec![500, 500, 201]);
        Ok(())
    }
}
