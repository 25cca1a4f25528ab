//! The embedded graph: nodes and edges as rows of `graph_nodes` and `graph_edges`. Book
//! nodes and every edge carry the book's id; the shared `(:Term)` nodes carry none and are
//! deleted when the last edge to them goes.

use std::collections::HashSet;

use async_trait::async_trait;
use sea_orm::sea_query::LikeExpr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde_json::Value;

use super::plan::{self, Label, Rel};
use super::{BookGraph, ChapterNode, GraphStore, IndexTermNode, MAX_TERM_HITS, TermHit, term_key};
use crate::db::entities::{graph_edge, graph_node};

/// Rows per INSERT and ids per IN list, well under SQLite's and PostgreSQL's bind-parameter limits.
const BATCH: usize = 500;

pub struct SqlGraphStore {
    db: DatabaseConnection,
}

impl SqlGraphStore {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

async fn delete_rows<C: ConnectionTrait>(db: &C, book_id: &str) -> anyhow::Result<()> {
    graph_edge::Entity::delete_many()
        .filter(graph_edge::Column::BookId.eq(book_id))
        .exec(db)
        .await?;
    graph_node::Entity::delete_many()
        .filter(graph_node::Column::BookId.eq(book_id))
        .exec(db)
        .await?;
    Ok(())
}

/// The shared terms the book's index terms point to.
async fn book_term_ids<C: ConnectionTrait>(db: &C, book_id: &str) -> anyhow::Result<Vec<String>> {
    Ok(graph_edge::Entity::find()
        .select_only()
        .column(graph_edge::Column::Dst)
        .filter(graph_edge::Column::BookId.eq(book_id))
        .filter(graph_edge::Column::Rel.eq(Rel::OfTerm.as_str()))
        .into_tuple::<String>()
        .all(db)
        .await?)
}

/// Deletes those of `ids` that no `OF_TERM` edge points to any more.
async fn delete_orphan_terms<C: ConnectionTrait>(db: &C, ids: Vec<String>) -> anyhow::Result<()> {
    for chunk in ids.chunks(BATCH) {
        let used: HashSet<String> = graph_edge::Entity::find()
            .select_only()
            .column(graph_edge::Column::Dst)
            .filter(graph_edge::Column::Rel.eq(Rel::OfTerm.as_str()))
            .filter(graph_edge::Column::Dst.is_in(chunk.iter().cloned()))
            .into_tuple::<String>()
            .all(db)
            .await?
            .into_iter()
            .collect();
        let orphans: Vec<&String> = chunk.iter().filter(|id| !used.contains(*id)).collect();
        if !orphans.is_empty() {
            graph_node::Entity::delete_many()
                .filter(graph_node::Column::Label.eq(Label::Term.as_str()))
                .filter(graph_node::Column::Id.is_in(orphans.into_iter().cloned()))
                .exec(db)
                .await?;
        }
    }
    Ok(())
}

impl SqlGraphStore {
    /// Properties of the book's nodes with `label`, in document order.
    async fn book_nodes(&self, book_id: &str, label: Label) -> anyhow::Result<Vec<Value>> {
        let rows = graph_node::Entity::find()
            .filter(graph_node::Column::BookId.eq(book_id))
            .filter(graph_node::Column::Label.eq(label.as_str()))
            .all(&self.db)
            .await?;
        let mut props = rows
            .iter()
            .map(|row| serde_json::from_str::<Value>(&row.props))
            .collect::<Result<Vec<_>, _>>()?;
        props.sort_by_key(|props| props["position"].as_u64());
        Ok(props)
    }

    /// Index terms pointing to the shared terms `term_ids`, by term (in the given order),
    /// then book and position.
    async fn hits_for_terms(&self, term_ids: &[String], limit: usize) -> anyhow::Result<Vec<TermHit>> {
        let mut hits = Vec::new();
        for chunk in term_ids.chunks(BATCH) {
            let edges: Vec<(String, String)> = graph_edge::Entity::find()
                .select_only()
                .column(graph_edge::Column::Src)
                .column(graph_edge::Column::Dst)
                .filter(graph_edge::Column::Rel.eq(Rel::OfTerm.as_str()))
                .filter(graph_edge::Column::Dst.is_in(chunk.iter().cloned()))
                .into_tuple()
                .all(&self.db)
                .await?;
            let mut found: Vec<(usize, Value)> = Vec::with_capacity(edges.len());
            for sources in edges.chunks(BATCH) {
                let nodes = graph_node::Entity::find()
                    .filter(graph_node::Column::Id.is_in(sources.iter().map(|(src, _)| src.clone())))
                    .all(&self.db)
                    .await?;
                for node in nodes {
                    let term = sources
                        .iter()
                        .find(|(src, _)| *src == node.id)
                        .and_then(|(_, dst)| chunk.iter().position(|id| id == dst))
                        .unwrap_or(usize::MAX);
                    found.push((term, serde_json::from_str(&node.props)?));
                }
            }
            found.sort_by(|(term_a, a), (term_b, b)| {
                (term_a, a["book_id"].as_str(), a["position"].as_u64()).cmp(&(
                    term_b,
                    b["book_id"].as_str(),
                    b["position"].as_u64(),
                ))
            });
            for (_, props) in found {
                if hits.len() >= limit {
                    return Ok(hits);
                }
                hits.push(plan::term_hit_from_props(props)?);
            }
        }
        Ok(hits)
    }
}

/// `text` as a LIKE pattern matching itself literally, with `\` as the escape character.
pub(crate) fn like_literal(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len());
    for ch in text.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(ch);
    }
    pattern
}

#[async_trait]
impl GraphStore for SqlGraphStore {
    fn kind(&self) -> &'static str {
        "sql"
    }

    async fn write_book(&self, graph: &BookGraph) -> anyhow::Result<()> {
        let book_id = graph.book_id.as_str();
        let plan = plan::plan(graph)?;
        let (terms, mut nodes): (Vec<_>, Vec<_>) = plan
            .nodes
            .into_iter()
            .map(|node| {
                let shared = node.label == Label::Term;
                let row = graph_node::ActiveModel {
                    id: Set(node.id),
                    label: Set(node.label.as_str().to_owned()),
                    book_id: Set((!shared).then(|| book_id.to_owned())),
                    props: Set(Value::Object(node.props).to_string()),
                };
                (shared, row)
            })
            .partition(|(shared, _)| *shared);
        let mut terms: Vec<_> = terms.into_iter().map(|(_, row)| row).collect();
        let mut nodes: Vec<_> = nodes.drain(..).map(|(_, row)| row).collect();
        let mut edges: Vec<_> = plan
            .edges
            .into_iter()
            .map(|edge| graph_edge::ActiveModel {
                src: Set(edge.src),
                rel: Set(edge.rel.as_str().to_owned()),
                dst: Set(edge.dst),
                book_id: Set(Some(book_id.to_owned())),
                ..Default::default()
            })
            .collect();

        let txn = crate::db::begin_write(&self.db).await?;
        let old_terms = book_term_ids(&txn, book_id).await?;
        delete_rows(&txn, book_id).await?;
        while !nodes.is_empty() {
            let batch: Vec<_> = nodes.drain(..nodes.len().min(BATCH)).collect();
            graph_node::Entity::insert_many(batch).exec(&txn).await?;
        }
        while !terms.is_empty() {
            // Another book may have made the term already.
            let batch: Vec<_> = terms.drain(..terms.len().min(BATCH)).collect();
            graph_node::Entity::insert_many(batch)
                .on_conflict_do_nothing()
                .exec(&txn)
                .await?;
        }
        while !edges.is_empty() {
            let batch: Vec<_> = edges.drain(..edges.len().min(BATCH)).collect();
            graph_edge::Entity::insert_many(batch).exec(&txn).await?;
        }
        delete_orphan_terms(&txn, old_terms).await?;
        txn.commit().await?;
        Ok(())
    }

    async fn chapters(&self, book_id: &str) -> anyhow::Result<Vec<ChapterNode>> {
        let props = self.book_nodes(book_id, Label::Chapter).await?;
        props.into_iter().map(plan::chapter_from_props).collect()
    }

    async fn index_terms(&self, book_id: &str) -> anyhow::Result<Vec<IndexTermNode>> {
        let props = self.book_nodes(book_id, Label::IndexTerm).await?;
        props.into_iter().map(plan::index_term_from_props).collect()
    }

    async fn books_for_term(&self, key_or_text: &str) -> anyhow::Result<Vec<TermHit>> {
        let key = term_key(key_or_text);
        if key.is_empty() {
            return Ok(Vec::new());
        }
        let exact = BookGraph::term_node_id(&key);
        let mut hits = self.hits_for_terms(std::slice::from_ref(&exact), MAX_TERM_HITS).await?;
        if hits.len() < MAX_TERM_HITS {
            let limit = u64::try_from(MAX_TERM_HITS).unwrap_or(u64::MAX);
            let prefixed: Vec<String> = graph_node::Entity::find()
                .select_only()
                .column(graph_node::Column::Id)
                .filter(graph_node::Column::Label.eq(Label::Term.as_str()))
                .filter(graph_node::Column::Id.like(LikeExpr::new(format!("{}%", like_literal(&exact))).escape('\\')))
                .filter(graph_node::Column::Id.ne(exact.as_str()))
                .order_by_asc(graph_node::Column::Id)
                .limit(limit)
                .into_tuple()
                .all(&self.db)
                .await?;
            let more = self.hits_for_terms(&prefixed, MAX_TERM_HITS - hits.len()).await?;
            hits.extend(more);
        }
        Ok(hits)
    }

    async fn delete_book(&self, book_id: &str) -> anyhow::Result<()> {
        let txn = crate::db::begin_write(&self.db).await?;
        let old_terms = book_term_ids(&txn, book_id).await?;
        delete_rows(&txn, book_id).await?;
        delete_orphan_terms(&txn, old_terms).await?;
        txn.commit().await?;
        Ok(())
    }

    async fn check(&self) -> anyhow::Result<()> {
        self.db.execute_unprepared("SELECT 1 FROM graph_nodes LIMIT 1").await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_match_literally() {
        assert_eq!(like_literal("term:100%_a\\b"), "term:100\\%\\_a\\\\b");
    }
}
