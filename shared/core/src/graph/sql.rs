//! The embedded graph: nodes and edges as rows of `graph_nodes` and `graph_edges`.

use async_trait::async_trait;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, TransactionTrait,
};

use super::{BookGraph, ChapterNode, GraphStore};
use crate::db::entities::{graph_edge, graph_node};

/// Rows per INSERT, well under SQLite's and PostgreSQL's bind-parameter limits.
const BATCH: usize = 500;

pub struct SqlGraphStore {
    db: DatabaseConnection,
}

impl SqlGraphStore {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

fn node(id: String, label: &str, book_id: &str, props: serde_json::Value) -> graph_node::ActiveModel {
    graph_node::ActiveModel {
        id: Set(id),
        label: Set(label.to_owned()),
        book_id: Set(Some(book_id.to_owned())),
        props: Set(props.to_string()),
    }
}

fn edge(src: String, rel: &str, dst: String, book_id: &str) -> graph_edge::ActiveModel {
    graph_edge::ActiveModel {
        src: Set(src),
        rel: Set(rel.to_owned()),
        dst: Set(dst),
        book_id: Set(Some(book_id.to_owned())),
        ..Default::default()
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

#[async_trait]
impl GraphStore for SqlGraphStore {
    fn kind(&self) -> &'static str {
        "sql"
    }

    async fn write_book(&self, graph: &BookGraph) -> anyhow::Result<()> {
        let book_id = graph.book_id.as_str();
        let book_node = BookGraph::book_node_id(book_id);
        let mut nodes = vec![node(
            book_node.clone(),
            "Book",
            book_id,
            serde_json::json!({"book_id": book_id, "title": graph.title, "content_hash": graph.content_hash}),
        )];
        let mut edges = Vec::new();
        for (index, label) in graph.page_labels.iter().enumerate() {
            let number = u32::try_from(index + 1).unwrap_or(u32::MAX);
            let page = graph.page_node_id(number);
            nodes.push(node(
                page.clone(),
                "Page",
                book_id,
                serde_json::json!({"number": number, "label": label}),
            ));
            edges.push(edge(book_node.clone(), "HAS_PAGE", page, book_id));
        }
        for chapter in &graph.chapters {
            let id = graph.chapter_node_id(chapter.position);
            nodes.push(node(id.clone(), "Chapter", book_id, serde_json::to_value(chapter)?));
            match chapter.parent {
                Some(parent) => edges.push(edge(graph.chapter_node_id(parent), "HAS_CHILD", id.clone(), book_id)),
                None => edges.push(edge(book_node.clone(), "HAS_TOC", id.clone(), book_id)),
            }
            if let Some(page) = chapter
                .page
                .filter(|&p| p >= 1 && (p as usize) <= graph.page_labels.len())
            {
                edges.push(edge(id, "STARTS_ON_PAGE", graph.page_node_id(page), book_id));
            }
        }
        let txn = self.db.begin().await?;
        delete_rows(&txn, book_id).await?;
        while !nodes.is_empty() {
            let batch: Vec<_> = nodes.drain(..nodes.len().min(BATCH)).collect();
            graph_node::Entity::insert_many(batch).exec(&txn).await?;
        }
        while !edges.is_empty() {
            let batch: Vec<_> = edges.drain(..edges.len().min(BATCH)).collect();
            graph_edge::Entity::insert_many(batch).exec(&txn).await?;
        }
        txn.commit().await?;
        Ok(())
    }

    async fn chapters(&self, book_id: &str) -> anyhow::Result<Vec<ChapterNode>> {
        let rows = graph_node::Entity::find()
            .filter(graph_node::Column::BookId.eq(book_id))
            .filter(graph_node::Column::Label.eq("Chapter"))
            .all(&self.db)
            .await?;
        let mut chapters = rows
            .iter()
            .map(|row| serde_json::from_str::<ChapterNode>(&row.props))
            .collect::<Result<Vec<_>, _>>()?;
        chapters.sort_by_key(|chapter| chapter.position);
        Ok(chapters)
    }

    async fn delete_book(&self, book_id: &str) -> anyhow::Result<()> {
        delete_rows(&self.db, book_id).await
    }

    async fn check(&self) -> anyhow::Result<()> {
        self.db.execute_unprepared("SELECT 1 FROM graph_nodes LIMIT 1").await?;
        Ok(())
    }
}
