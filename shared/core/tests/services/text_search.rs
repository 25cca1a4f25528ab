//! Full-text search on both backends: SQLite FTS5 in a temporary file and PostgreSQL tsvector
//! on a real server.

use crate::services;
use crate::text_checks;

use hbi_shared::text_index::{PostgresFtsIndex, SqliteFtsIndex, TextIndex};

#[tokio::test]
async fn sqlite_fts5_search() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("hbi.db").display());
    let db = hbi_shared::db::connect(&url, 2, true).await?;
    let index = SqliteFtsIndex::new(db.clone());
    assert_eq!(index.kind(), "sqlite_fts5");
    text_checks::exercise(&index).await?;
    // The hostile queries left every table in place.
    hbi_shared::catalog::Catalog::new(db).books(0, 1).await?;
    Ok(())
}

#[tokio::test]
async fn postgres_tsvector_search() -> anyhow::Result<()> {
    let service = services::Service::start("postgres");
    let db = hbi_shared::db::connect(&service.url, 2, true).await?;
    let index = PostgresFtsIndex::new(db.clone());
    assert_eq!(index.kind(), "postgres_tsvector");
    text_checks::exercise(&index).await?;
    hbi_shared::catalog::Catalog::new(db).books(0, 1).await?;
    Ok(())
}
