//! The graph contract against a real FalkorDB, through the Cypher statements the Neo4j
//! adapter sends too.

use crate::contract;
use crate::services;

use std::collections::BTreeMap;

use falkordb::{FalkorClientBuilder, FalkorConnectionInfo};
use futures::TryStreamExt;
use hbi_shared::graph::{FalkorGraphStore, GraphStore};

/// Counts by the first label / relationship type, read with Cypher.
async fn cypher_counts(url: &str, graph: &str) -> anyhow::Result<contract::Counts> {
    let info: FalkorConnectionInfo = url.try_into()?;
    let client = FalkorClientBuilder::new_async()
        .with_connection_info(info)
        .build()
        .await?;
    let mut graph = client.select_graph(graph);
    let mut by = async |query: &str| -> anyhow::Result<BTreeMap<String, u64>> {
        let rows: Vec<falkordb::Row> = graph.query(query).execute().await?.data.try_collect().await?;
        rows.into_iter()
            .map(|row| Ok((row.try_get::<String>("name")?, u64::try_from(row.try_get::<i64>("n")?)?)))
            .collect()
    };
    let nodes = by("MATCH (n) RETURN labels(n)[0] AS name, count(n) AS n").await?;
    let rels = by("MATCH ()-[r]->() RETURN type(r) AS name, count(r) AS n").await?;
    Ok((nodes, rels))
}

#[tokio::test]
async fn falkordb_keeps_the_graph_contract() -> anyhow::Result<()> {
    let falkordb = services::Service::start("falkordb");
    let store = FalkorGraphStore::new(&falkordb.url, "hbi_contract")?;
    assert_eq!(store.kind(), "falkordb");
    contract::scenario(&store, async || cypher_counts(&falkordb.url, "hbi_contract").await).await?;

    // A second store on the same graph finds the schema in place (no "already indexed").
    let again = FalkorGraphStore::new(&falkordb.url, "hbi_contract")?;
    again.check().await?;
    Ok(())
}

#[tokio::test]
async fn falkordb_down_is_an_error_not_a_hang() -> anyhow::Result<()> {
    let port = services::free_port();
    let store = FalkorGraphStore::new(&format!("falkor://127.0.0.1:{port}"), "hbi")?;
    assert!(store.check().await.is_err());
    assert!(store.index_terms("b").await.is_err());
    Ok(())
}
