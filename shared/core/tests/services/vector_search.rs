//! Chunk vectors on both backends: sqlite-vec in a temporary SQLite file and pgvector (HNSW)
//! on a real PostgreSQL, held to the same contract; and the store `Backends` opens for each.

use crate::services;
use crate::vector_checks;
use crate::vector_data;

use std::path::Path;

use hbi_shared::Backends;
use hbi_shared::config::{Overrides, Settings};
use hbi_shared::embeddings::EmbeddingProvider;
use hbi_shared::vectors::{DEFAULT_EMBEDDING_DIMENSIONS, PgVectorIndex, SqliteVecIndex, VectorIndex};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use vector_checks::Ranking;

/// HNSW is approximate; on these small sets it must still find nearly every true neighbour.
const HNSW: Ranking = Ranking::Approximate { min_recall: 0.95 };

/// How often PostgreSQL used an index, once the statistics show any use (they reach the
/// statistics views within about ten seconds of the query).
async fn hnsw_scans(db: &DatabaseConnection, index: &str) -> anyhow::Result<i64> {
    let sql = format!("SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = '{index}'");
    for _ in 0..30 {
        let row = db
            .query_one_raw(Statement::from_string(DbBackend::Postgres, sql.clone()))
            .await?;
        let scans: i64 = match row {
            Some(row) => row.try_get("", "idx_scan")?,
            None => 0,
        };
        if scans > 0 {
            return Ok(scans);
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    Ok(0)
}

fn settings(database_url: &str, data_dir: &Path, dimensions: usize) -> anyhow::Result<Settings> {
    let overrides = Overrides {
        data_dir: Some(data_dir.to_path_buf()),
        ..Overrides::default()
    };
    let mut settings = Settings::load(Some(Path::new("/nonexistent")), &overrides)?;
    settings.database.url = Some(database_url.into());
    settings.queue.redis_url = None;
    settings.blobs.s3_endpoint = None;
    settings.graph.neo4j_uri = None;
    settings.graph.falkordb_url = None;
    settings.vectors.dimensions = dimensions;
    settings.embeddings.provider = EmbeddingProvider::None;
    Ok(settings)
}

async fn sqlite(dir: &Path) -> anyhow::Result<DatabaseConnection> {
    let url = format!("sqlite://{}?mode=rwc", dir.join("hbi.db").display());
    hbi_shared::db::connect(&url, 2, true).await
}

#[tokio::test]
async fn sqlite_vec_is_exact() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = sqlite(dir.path()).await?;
    let index = SqliteVecIndex::open(db.clone(), DEFAULT_EMBEDDING_DIMENSIONS).await?;
    assert_eq!(index.kind(), "sqlite_vec");
    assert_eq!(index.dimensions(), 384);
    // Uniform random directions: the nearest are hardly nearer than the rest, a hard test of
    // exactness.
    let source = vector_data::Generator::uniform(1, DEFAULT_EMBEDDING_DIMENSIONS);
    vector_checks::exercise(&index, Ranking::Exact, 150, source).await?;
    Ok(())
}

/// vec0's own exact KNN (what searches ran before the in-memory copy), as (chunk id, similarity).
async fn vec0_knn(db: &DatabaseConnection, query: &[f32], k: usize) -> anyhow::Result<Vec<(String, f32)>> {
    let blob: Vec<u8> = query.iter().flat_map(|x| x.to_le_bytes()).collect();
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            "WITH knn AS MATERIALIZED (SELECT rowid AS id, distance FROM chunk_vectors_384 \
               WHERE embedding MATCH ? AND k = ? AND model = ?) \
             SELECT k.chunk_id, knn.distance FROM knn JOIN chunk_vector_keys_384 k ON k.id = knn.id \
             ORDER BY knn.distance, k.chunk_id",
            vec![blob.into(), i64::try_from(k)?.into(), "m".into()],
        ))
        .await?;
    rows.iter()
        .map(|row| {
            let distance: f64 = row.try_get("", "distance")?;
            Ok((row.try_get("", "chunk_id")?, (1.0 - distance) as f32))
        })
        .collect()
}

/// Searches run on an in-memory copy of the vectors; another process (here: another pool on the
/// same file, as `hbi worker` beside `hbi api`) replaces and deletes books, and every search
/// still answers as vec0's exact scan of what is stored at that moment.
#[tokio::test]
async fn sqlite_vec_searches_see_other_processes_writes() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let writer_db = sqlite(dir.path()).await?;
    let reader_db = sqlite(dir.path()).await?;
    let writer = SqliteVecIndex::open(writer_db.clone(), DEFAULT_EMBEDDING_DIMENSIONS).await?;
    let reader = SqliteVecIndex::open(reader_db.clone(), DEFAULT_EMBEDDING_DIMENSIONS).await?;
    let mut source = vector_data::Generator::uniform(7, DEFAULT_EMBEDDING_DIMENSIONS);
    let (a, b) = ("book-a", "book-b");
    let first_a = source.book(a, 300);
    writer.replace_book(a, "m", &first_a).await?;
    writer.replace_book(b, "m", &source.book(b, 300)).await?;
    let queries: Vec<Vec<f32>> = (0..5).map(|_| source.vector()).collect();
    let same_as_vec0 = |what: &str, hits: &[hbi_shared::vectors::VectorHit], exact: &[(String, f32)]| {
        let found: Vec<&str> = hits.iter().map(|hit| hit.chunk_id.as_str()).collect();
        let expected: Vec<&str> = exact.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(found, expected, "{what}");
        for (hit, (_, similarity)) in hits.iter().zip(exact) {
            assert!(
                (hit.similarity - similarity).abs() < 1e-5,
                "{what}: {hit:?} against {similarity}"
            );
        }
    };
    for (n, query) in queries.iter().enumerate() {
        let hits = reader.search("m", query, 20, None).await?;
        same_as_vec0(&format!("query {n}"), &hits, &vec0_knn(&reader_db, query, 20).await?);
    }

    // The writer replaces A: the reader's copy follows at its next search.
    let second_a = source.book(a, 250);
    writer.replace_book(a, "m", &second_a).await?;
    let moved = &second_a[17];
    let hits = reader.search("m", &moved.embedding, 3, None).await?;
    assert_eq!(hits[0].chunk_id, moved.chunk_id);
    assert!(hits[0].similarity > 0.999, "{hits:?}");
    let old = &first_a[17];
    let hits = reader.search("m", &old.embedding, 1, Some(a)).await?;
    assert!(hits[0].similarity < 0.9, "the old vector of A is gone: {hits:?}");
    assert_eq!(reader.search("m", &queries[0], 1000, Some(a)).await?.len(), 250);
    for (n, query) in queries.iter().enumerate() {
        let hits = reader.search("m", query, 20, None).await?;
        same_as_vec0(
            &format!("after replace, query {n}"),
            &hits,
            &vec0_knn(&reader_db, query, 20).await?,
        );
    }

    // The writer deletes B: never found again, with or without the book filter.
    writer.delete_book(b).await?;
    let everything = reader.search("m", &queries[1], 1000, None).await?;
    assert_eq!(everything.len(), 250);
    assert!(everything.iter().all(|hit| hit.book_id == a), "B was deleted");
    assert!(reader.search("m", &queries[1], 10, Some(b)).await?.is_empty());

    // Deleted and stored again between two searches: a new generation, never the old one.
    writer.delete_book(a).await?;
    let third_a = source.book(a, 40);
    writer.replace_book(a, "m", &third_a).await?;
    let hits = reader.search("m", &third_a[3].embedding, 1000, None).await?;
    assert_eq!(hits.len(), 40);
    assert_eq!(hits[0].chunk_id, third_a[3].chunk_id);
    assert!(hits[0].similarity > 0.999, "{hits:?}");
    same_as_vec0(
        "after delete and store",
        &hits,
        &vec0_knn(&reader_db, &third_a[3].embedding, 1000).await?,
    );
    Ok(())
}

#[tokio::test]
async fn sqlite_vec_tables_per_dimension() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = sqlite(dir.path()).await?;
    // Two processes (here: two pools) opening the same new store at once.
    let other = sqlite(dir.path()).await?;
    let (first, second) = tokio::try_join!(SqliteVecIndex::open(db.clone(), 24), SqliteVecIndex::open(other, 24))?;
    vector_checks::small_store(&first).await?;
    second.check().await?;
    vector_checks::small_store(&SqliteVecIndex::open(db.clone(), 3000).await?).await?;
    assert!(SqliteVecIndex::open(db.clone(), 0).await.is_err());
    assert!(SqliteVecIndex::open(db, 8193).await.is_err());
    Ok(())
}

#[tokio::test]
async fn pgvector_hnsw() -> anyhow::Result<()> {
    let service = services::Service::start("postgres");
    let db = hbi_shared::db::connect(&service.url, 4, true).await?;
    let index = PgVectorIndex::open(db.clone(), DEFAULT_EMBEDDING_DIMENSIONS).await?;
    assert_eq!(index.kind(), "pgvector");
    assert_eq!(index.dimensions(), 384);
    // Enough rows that PostgreSQL walks the HNSW graph rather than sorting a scan, shaped like
    // text embeddings (HNSW's recall on uniform random directions is measured by the benchmark).
    let source = vector_data::Generator::low_rank(2, DEFAULT_EMBEDDING_DIMENSIONS, 16);
    vector_checks::exercise(&index, HNSW, 1000, source).await?;
    assert!(
        hnsw_scans(&db, "chunk_vectors_384_hnsw").await? > 0,
        "the searches used the HNSW index"
    );

    // Two replicas opening a new store at once: one creates, the other finds it.
    let (first, second) = tokio::try_join!(PgVectorIndex::open(db.clone(), 24), PgVectorIndex::open(db.clone(), 24))?;
    vector_checks::small_store(&first).await?;
    second.check().await?;
    // Beyond 2,000 dimensions the HNSW index is on half precision; beyond 4,000 there is none.
    vector_checks::small_store(&PgVectorIndex::open(db.clone(), 3000).await?).await?;
    vector_checks::small_store(&PgVectorIndex::open(db.clone(), 4500).await?).await?;
    let indexes: Vec<String> = db
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT indexdef FROM pg_indexes WHERE indexname LIKE 'chunk_vectors_%_hnsw' ORDER BY indexname",
        ))
        .await?
        .iter()
        .map(|row| row.try_get("", "indexdef"))
        .collect::<Result<_, _>>()?;
    assert_eq!(indexes.len(), 3, "{indexes:?}");
    assert!(
        indexes.iter().any(|def| def.contains("halfvec_cosine_ops")),
        "{indexes:?}"
    );
    assert!(
        indexes.iter().any(|def| def.contains("vector_cosine_ops")),
        "{indexes:?}"
    );
    assert!(PgVectorIndex::open(db, 9000).await.is_err());
    Ok(())
}

#[tokio::test]
async fn vectors_of_another_length_than_the_model_are_a_configuration_error() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("hbi.db").display());
    let mut settings = settings(&url, dir.path(), 384)?;
    settings.embeddings.provider = EmbeddingProvider::Openai;
    settings.embeddings.openai_base_url = "http://127.0.0.1:9/v1".to_owned();
    settings.embeddings.openai_model = "nomic-embed-text".to_owned();
    settings.embeddings.openai_dimensions = 768;
    let error = match Backends::open(&settings, true).await {
        Ok(_) => panic!("opened 768-dimension embeddings into a 384-dimension vector store"),
        Err(error) => format!("{error:#}"),
    };
    assert!(
        error.contains("vectors.dimensions is 384") && error.contains("gives 768"),
        "{error}"
    );
    settings.vectors.dimensions = 768;
    let backends = Backends::open(&settings, true).await?;
    assert_eq!(backends.vectors.dimensions(), 768);
    Ok(())
}

#[tokio::test]
async fn backends_open_the_store_of_the_database() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("hbi.db").display());
    let backends = Backends::open(&settings(&url, dir.path(), 384)?, true).await?;
    assert_eq!(backends.vectors.kind(), "sqlite_vec");
    assert_eq!(backends.vectors.dimensions(), 384);
    backends.vectors.check().await?;

    let service = services::Service::start("postgres");
    let pg_dir = tempfile::tempdir()?;
    let backends = Backends::open(&settings(&service.url, pg_dir.path(), 768)?, true).await?;
    assert_eq!(backends.vectors.kind(), "pgvector");
    assert_eq!(backends.vectors.dimensions(), 768);
    backends.vectors.check().await?;
    vector_checks::small_store(backends.vectors.as_ref()).await?;
    Ok(())
}
