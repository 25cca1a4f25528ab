//! Neo4j over Bolt (crate `neo4rs` 0.8, Bolt 4.4, which Neo4j 5 and 2025 accept). Connects on
//! first use; a write runs in one transaction, so readers see the old book or the new one.
//!
//! No Neo4j server can run on HBI's development machines: this adapter is verified by the
//! unit tests below plus the shared statements of [`super::cypher`], exercised on FalkorDB.

use anyhow::Context;
use async_trait::async_trait;
use neo4rs::{BoltType, ConfigBuilder, Graph, Query};
use serde_json::{Map, Value};
use tokio::sync::OnceCell;

use super::cypher::{CypherGraphStore, CypherSession, Statement, neo4j_schema};

/// Bolt connections per process; the pipeline writes one book at a time per worker slot.
const MAX_CONNECTIONS: usize = 8;

/// The book graph in Neo4j.
pub struct Neo4jGraphStore {
    inner: CypherGraphStore<Neo4jSession>,
}

impl Neo4jGraphStore {
    /// `uri` is `bolt://host:7687` (or `neo4j://`, `host:port`). Nothing is contacted until
    /// the first use.
    pub fn new(uri: &str, user: &str, password: &str) -> anyhow::Result<Self> {
        anyhow::ensure!(!uri.trim().is_empty(), "graph.neo4j_uri must not be empty");
        Ok(Self {
            inner: CypherGraphStore::new(Neo4jSession {
                uri: uri.to_owned(),
                user: user.to_owned(),
                password: password.to_owned(),
                graph: OnceCell::new(),
            }),
        })
    }
}

super::cypher::delegate_graph_store!(Neo4jGraphStore);

pub(crate) struct Neo4jSession {
    uri: String,
    user: String,
    password: String,
    graph: OnceCell<Graph>,
}

impl Neo4jSession {
    /// The connection pool, made and the schema created the first time (again after a
    /// failed attempt).
    async fn graph(&self) -> anyhow::Result<&Graph> {
        self.graph
            .get_or_try_init(|| async {
                let config = ConfigBuilder::default()
                    .uri(self.uri.as_str())
                    .user(self.user.as_str())
                    .password(self.password.as_str())
                    .max_connections(MAX_CONNECTIONS)
                    .build()
                    .context("Neo4j configuration")?;
                let graph = Graph::connect(config).await.context("connecting to Neo4j")?;
                for statement in neo4j_schema() {
                    graph
                        .run(neo4rs::query(&statement))
                        .await
                        .with_context(|| format!("Neo4j schema statement `{statement}`"))?;
                }
                anyhow::Ok(graph)
            })
            .await
    }
}

/// The Bolt query of a statement: text as is, every value a Bolt parameter.
fn to_query(statement: &Statement) -> anyhow::Result<Query> {
    let mut query = neo4rs::query(&statement.text);
    for (name, value) in &statement.params {
        let value =
            BoltType::try_from(value.clone()).with_context(|| format!("parameter `{name}` of `{}`", statement.text))?;
        query = query.param(name, value);
    }
    Ok(query)
}

#[async_trait]
impl CypherSession for Neo4jSession {
    fn kind(&self) -> &'static str {
        "neo4j"
    }

    async fn write(&self, statements: Vec<Statement>) -> anyhow::Result<()> {
        let graph = self.graph().await?;
        let queries = statements.iter().map(to_query).collect::<anyhow::Result<Vec<_>>>()?;
        let mut txn = graph.start_txn().await.context("starting a Neo4j transaction")?;
        for (query, statement) in queries.into_iter().zip(&statements) {
            if let Err(err) = txn.run(query).await {
                // Roll back now rather than leave the server holding the transaction open.
                if let Err(rollback) = txn.rollback().await {
                    tracing::warn!(error = %rollback, "Neo4j rollback failed");
                }
                return Err(err).with_context(|| format!("Neo4j statement `{}`", statement.text));
            }
        }
        txn.commit().await.context("committing a Neo4j transaction")
    }

    async fn read(&self, statement: Statement) -> anyhow::Result<Vec<Map<String, Value>>> {
        let graph = self.graph().await?;
        let context = || format!("Neo4j statement `{}`", statement.text);
        let mut stream = graph.execute(to_query(&statement)?).await.with_context(context)?;
        let mut rows = Vec::new();
        while let Some(row) = stream.next().await.with_context(context)? {
            rows.push(row.to::<Map<String, Value>>().with_context(context)?);
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use neo4rs::{BoltList, BoltMap, BoltString};

    use super::*;

    #[test]
    fn parameters_are_bolt_values_not_text() -> anyhow::Result<()> {
        let hostile = "it's \\ \"})-[:X]->(n) DETACH DELETE n //";
        let statement = super::super::cypher::Statement {
            text: "UNWIND $rows AS row RETURN row".to_owned(),
            params: vec![
                (
                    "rows",
                    serde_json::json!([{"id": hostile, "pages": [1, 2], "parent": null}]),
                ),
                ("stamp", serde_json::json!("s")),
            ],
        };
        let query = to_query(&statement)?;
        assert!(query.has_param_key("rows") && query.has_param_key("stamp"));

        let converted = BoltType::try_from(statement.params[0].1.clone())?;
        let mut row = BoltMap::new();
        row.put(BoltString::new("id"), BoltType::String(BoltString::new(hostile)));
        row.put(BoltString::new("pages"), BoltType::from(vec![1i64, 2]));
        row.put(BoltString::new("parent"), BoltType::Null(neo4rs::BoltNull));
        let mut expected = BoltList::new();
        expected.push(BoltType::Map(row));
        assert_eq!(converted, BoltType::List(expected));
        Ok(())
    }

    #[test]
    fn integers_beyond_bolt_are_refused() {
        let statement = super::super::cypher::Statement {
            text: "RETURN $n".to_owned(),
            params: vec![("n", serde_json::json!(u64::MAX))],
        };
        assert!(to_query(&statement).is_err());
    }

    #[test]
    fn an_empty_uri_is_refused() {
        assert!(Neo4jGraphStore::new("", "neo4j", "secret").is_err());
        assert!(Neo4jGraphStore::new("bolt://127.0.0.1:7687", "neo4j", "secret").is_ok());
    }
}
