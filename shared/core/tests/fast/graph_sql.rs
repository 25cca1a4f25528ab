//! The graph contract against the embedded SQL tables (SQLite).

use crate::contract;

use std::collections::BTreeMap;

use hbi_shared::graph::{GraphStore, SqlGraphStore};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

async fn sql_counts(db: &DatabaseConnection) -> anyhow::Result<contract::Counts> {
    let by = async |sql: &str| -> anyhow::Result<BTreeMap<String, u64>> {
        let rows = db
            .query_all_raw(Statement::from_string(db.get_database_backend(), sql))
            .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get::<String>("", "name")?,
                    u64::try_from(row.try_get::<i64>("", "n")?)?,
                ))
            })
            .collect()
    };
    let nodes = by("SELECT label AS name, COUNT(*) AS n FROM graph_nodes GROUP BY label").await?;
    let rels = by("SELECT rel AS name, COUNT(*) AS n FROM graph_edges GROUP BY rel").await?;
    Ok((nodes, rels))
}

#[tokio::test]
async fn sql_keeps_the_graph_contract() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("hbi.db").display());
    let db = hbi_shared::db::connect(&url, 4, true).await?;
    let store = SqlGraphStore::new(db.clone());
    assert_eq!(store.kind(), "sql");
    contract::scenario(&store, async || sql_counts(&db).await).await
}
