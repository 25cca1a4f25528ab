//! FalkorDB (Redis protocol, crate `falkordb`, async client). Connects on first use, so a
//! graph that is down at start shows in readiness instead of stopping the process.
//!
//! FalkorDB has no server-side parameters: the client writes them as Cypher literals in a
//! `CYPHER name=value` preamble, escaping every string itself (a NUL byte cannot be sent;
//! the graph model drops those). Each statement is atomic on its own; there are no
//! multi-statement transactions.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use falkordb::{
    AsyncGraph, ConstraintType, EntityType, FalkorClientBuilder, FalkorConnectionInfo, FalkorValue, IndexType,
};
use futures::TryStreamExt;
use serde_json::{Map, Value};
use tokio::sync::OnceCell;

use super::cypher::{CypherGraphStore, CypherSession, INDEXED, Statement};
use super::plan::Label;

/// A reply slower than this counts as a failure (the pipeline retries the stage).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(300);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The book graph in FalkorDB.
pub struct FalkorGraphStore {
    inner: CypherGraphStore<FalkorSession>,
}

impl FalkorGraphStore {
    /// `url` is `falkor://host:port` or `redis://host:port`; `graph` the graph (key) name.
    /// Nothing is contacted until the first use.
    pub fn new(url: &str, graph: &str) -> anyhow::Result<Self> {
        let info: FalkorConnectionInfo = url
            .try_into()
            // Not the URL itself: it may carry a password.
            .context("graph.falkordb_url is not a FalkorDB address (falkor://host:port or redis://host:port)")?;
        anyhow::ensure!(!graph.trim().is_empty(), "graph.falkordb_graph must not be empty");
        Ok(Self {
            inner: CypherGraphStore::new(FalkorSession {
                info,
                name: graph.to_owned(),
                graph: OnceCell::new(),
            }),
        })
    }
}

super::cypher::delegate_graph_store!(FalkorGraphStore);

pub(crate) struct FalkorSession {
    info: FalkorConnectionInfo,
    name: String,
    graph: OnceCell<AsyncGraph>,
}

impl FalkorSession {
    /// The graph handle, connecting and creating the schema the first time (again after a
    /// failed attempt). Clones are cheap and share one connection pool.
    async fn graph(&self) -> anyhow::Result<AsyncGraph> {
        let graph = self
            .graph
            .get_or_try_init(|| async {
                let client = FalkorClientBuilder::new_async()
                    .with_connection_info(self.info.clone())
                    .with_connect_timeout(Some(CONNECT_TIMEOUT))
                    .with_response_timeout(Some(RESPONSE_TIMEOUT))
                    .build()
                    .await
                    .context("connecting to FalkorDB")?;
                let mut graph = client.select_graph(&self.name);
                ensure_schema(&mut graph)
                    .await
                    .context("creating the FalkorDB schema")?;
                anyhow::Ok(graph)
            })
            .await?;
        Ok(graph.clone())
    }
}

/// A unique constraint on each label's `id` and a range index on each looked-up property.
/// FalkorDB refuses to create either twice, so existing ones are listed first; its unique
/// constraint needs (and the client creates) an index on the same property.
async fn ensure_schema(graph: &mut AsyncGraph) -> anyhow::Result<()> {
    let indices = graph.list_indices().await?.data;
    let has_index = |label: Label, property: &str| {
        indices.iter().any(|index| {
            index.entity_type == EntityType::Node
                && index.index_label == label.as_str()
                && index.fields.iter().any(|field| field == property)
        })
    };
    let constraints = graph.list_constraints().await?.data;
    for label in Label::ALL {
        let unique = constraints.iter().any(|constraint| {
            constraint.constraint_type == ConstraintType::Unique
                && constraint.entity_type == EntityType::Node
                && constraint.label == label.as_str()
                && constraint.properties == ["id"]
        });
        if unique {
            continue;
        }
        if has_index(label, "id") {
            // Left by an interrupted start: the constraint call below creates it again.
            graph
                .drop_index(IndexType::Range, EntityType::Node, label.as_str(), &["id"])
                .await?;
        }
        graph
            .create_unique_constraint_op(EntityType::Node, label.as_str(), &["id"])
            .wait()
            .await?;
    }
    for (label, property) in INDEXED {
        if !has_index(label, property) {
            graph
                .create_index_op(IndexType::Range, EntityType::Node, label.as_str(), &[property], None)
                .wait()
                .await?;
        }
    }
    Ok(())
}

#[async_trait]
impl CypherSession for FalkorSession {
    fn kind(&self) -> &'static str {
        "falkordb"
    }

    async fn write(&self, statements: Vec<Statement>) -> anyhow::Result<()> {
        let graph = self.graph().await?;
        for statement in statements {
            let mut graph = graph.clone();
            let mut query = graph.query(statement.text.as_str());
            for (name, value) in &statement.params {
                query = query.with_param(name, to_falkor(value)?);
            }
            query
                .execute()
                .await
                .with_context(|| format!("FalkorDB statement `{}`", statement.text))?;
        }
        Ok(())
    }

    async fn read(&self, statement: Statement) -> anyhow::Result<Vec<Map<String, Value>>> {
        let mut graph = self.graph().await?;
        let mut query = graph.ro_query(statement.text.as_str());
        for (name, value) in &statement.params {
            query = query.with_param(name, to_falkor(value)?);
        }
        let context = || format!("FalkorDB statement `{}`", statement.text);
        let rows: Vec<falkordb::Row> = query
            .execute()
            .await
            .with_context(context)?
            .data
            .try_collect()
            .await
            .with_context(context)?;
        rows.into_iter()
            .map(|row| {
                row.into_map()
                    .into_iter()
                    .map(|(column, value)| Ok((column, from_falkor(value)?)))
                    .collect()
            })
            .collect()
    }
}

/// A parameter value for the falkordb client, which encodes it as an escaped literal.
fn to_falkor(value: &Value) -> anyhow::Result<FalkorValue> {
    Ok(match value {
        Value::Null => FalkorValue::None,
        Value::Bool(flag) => FalkorValue::Bool(*flag),
        Value::Number(number) => match (number.as_i64(), number.as_f64()) {
            (Some(integer), _) => FalkorValue::I64(integer),
            (None, Some(float)) if number.is_f64() => FalkorValue::F64(float),
            _ => anyhow::bail!("the number {number} does not fit FalkorDB's 64-bit integers"),
        },
        Value::String(text) => FalkorValue::String(text.clone()),
        Value::Array(items) => FalkorValue::Array(items.iter().map(to_falkor).collect::<anyhow::Result<_>>()?),
        Value::Object(map) => FalkorValue::Map(
            map.iter()
                .map(|(key, value)| Ok((key.clone(), to_falkor(value)?)))
                .collect::<anyhow::Result<HashMap<_, _>>>()?,
        ),
    })
}

/// A result value as JSON; HBI's reads return scalars, lists and maps only.
fn from_falkor(value: FalkorValue) -> anyhow::Result<Value> {
    Ok(match value {
        FalkorValue::None => Value::Null,
        FalkorValue::Bool(flag) => Value::Bool(flag),
        FalkorValue::I64(integer) => Value::from(integer),
        FalkorValue::F64(float) => serde_json::Number::from_f64(float).map_or(Value::Null, Value::Number),
        FalkorValue::String(text) => Value::String(text),
        FalkorValue::Array(items) => Value::Array(items.into_iter().map(from_falkor).collect::<anyhow::Result<_>>()?),
        FalkorValue::Map(map) => Value::Object(
            map.into_iter()
                .map(|(key, value)| Ok((key, from_falkor(value)?)))
                .collect::<anyhow::Result<_>>()?,
        ),
        other => anyhow::bail!("unexpected FalkorDB value {other:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_through_falkor_values() -> anyhow::Result<()> {
        let value = serde_json::json!({
            "s": "it's \\ })-[:X]->(", "n": -3, "f": 1.5, "b": true, "z": null, "l": [[1, 2], []],
        });
        assert_eq!(from_falkor(to_falkor(&value)?)?, value);
        assert!(to_falkor(&serde_json::json!(u64::MAX)).is_err());
        Ok(())
    }

    #[test]
    fn a_bad_url_is_refused_at_construction() {
        assert!(FalkorGraphStore::new("not a url", "hbi").is_err());
        assert!(FalkorGraphStore::new("falkor://127.0.0.1:6379", " ").is_err());
        assert!(FalkorGraphStore::new("falkor://127.0.0.1:6379", "hbi").is_ok());
    }
}
