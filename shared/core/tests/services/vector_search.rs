//! Chunk vectors on both backends: sqlite-vec in a temporary SQLite file and pgvector (HNSW)
//! on a real PostgreSQL, held to the same contract; and the store `Backends` opens for each.

use crate::services;
use crate::vector_checks;
use crate::vector_data;
use hbi_shared::domain::BookFilter;

use std::path::Path;

use hbi_shared::Backends;
use hbi_shared::config::{Overrides, Settings};
use hbi_shared::embeddings::EmbeddingProvider;
use hbi_shared::vectors::{
    DEFAULT_EMBEDDING_DIMENSIONS, GRAPH_SIMILARITY_ERROR, PgVectorIndex, SqliteVecIndex, VectorIndex,
};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use vector_checks::Ranking;

/// HNSW is approximate; on these small sets it must still find nearly every true neighbour.
const HNSW: Ranking = Ranking::Approximate {
    min_recall: 0.95,
    similarity_error: 1e-4,
};
/// sqlite-vec's graph compares half-precision copies: its similarities carry their error.
const HNSW_F16: Ranking = Ranking::Approximate {
    min_recall: 0.95,
    similarity_error: GRAPH_SIMILARITY_ERROR as f64,
};

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
        let hits = reader.search("m", query, 20, &BookFilter::All).await?;
        same_as_vec0(&format!("query {n}"), &hits, &vec0_knn(&reader_db, query, 20).await?);
    }

    // The writer replaces A: the reader's copy follows at its next search.
    let second_a = source.book(a, 250);
    writer.replace_book(a, "m", &second_a).await?;
    let moved = &second_a[17];
    let hits = reader.search("m", &moved.embedding, 3, &BookFilter::All).await?;
    assert_eq!(hits[0].chunk_id, moved.chunk_id);
    assert!(hits[0].similarity > 0.999, "{hits:?}");
    let old = &first_a[17];
    let hits = reader.search("m", &old.embedding, 1, &BookFilter::one(a)).await?;
    assert!(hits[0].similarity < 0.9, "the old vector of A is gone: {hits:?}");
    assert_eq!(
        reader.search("m", &queries[0], 1000, &BookFilter::one(a)).await?.len(),
        250
    );
    for (n, query) in queries.iter().enumerate() {
        let hits = reader.search("m", query, 20, &BookFilter::All).await?;
        same_as_vec0(
            &format!("after replace, query {n}"),
            &hits,
            &vec0_knn(&reader_db, query, 20).await?,
        );
    }

    // The writer deletes B: never found again, with or without the book filter.
    writer.delete_book(b).await?;
    let everything = reader.search("m", &queries[1], 1000, &BookFilter::All).await?;
    assert_eq!(everything.len(), 250);
    assert!(everything.iter().all(|hit| hit.book_id == a), "B was deleted");
    assert!(
        reader
            .search("m", &queries[1], 10, &BookFilter::one(b))
            .await?
            .is_empty()
    );

    // Deleted and stored again between two searches: a new generation, never the old one.
    writer.delete_book(a).await?;
    let third_a = source.book(a, 40);
    writer.replace_book(a, "m", &third_a).await?;
    let hits = reader
        .search("m", &third_a[3].embedding, 1000, &BookFilter::All)
        .await?;
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

/// Waits until the library-wide searches of `model` run on the HNSW graph (built in the
/// background after the first such search).
async fn wait_for_graph(index: &SqliteVecIndex, model: &str) -> anyhow::Result<()> {
    tokio::time::timeout(std::time::Duration::from_secs(120), index.prepare(model)).await??;
    anyhow::ensure!(index.searches_graph(model).await, "prepared, yet not on the graph");
    Ok(())
}

/// Past `approximate_from` vectors a library-wide search goes through the HNSW graph: the
/// same contract as any store with a recall floor, on embedding-like vectors.
#[tokio::test]
async fn sqlite_vec_graph_keeps_the_contract() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = sqlite(dir.path()).await?;
    let index = SqliteVecIndex::open(db, DEFAULT_EMBEDDING_DIMENSIONS)
        .await?
        .with_approximate_from(0, 100);
    let source = vector_data::Generator::low_rank(3, DEFAULT_EMBEDDING_DIMENSIONS, 16);
    // Built on the empty store; every write after it reaches the graph through its sync.
    for model in [vector_checks::MODEL, vector_checks::OTHER_MODEL] {
        wait_for_graph(&index, model).await?;
    }
    vector_checks::exercise(&index, HNSW_F16, 600, source).await?;
    Ok(())
}

/// A graph saved under the data directory is loaded by the next process instead of being
/// built, and its first search catches up on what another process changed meanwhile.
#[tokio::test]
async fn sqlite_vec_graph_is_saved_and_loaded_after_a_restart() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let graphs = dir.path().join("vector-graphs");
    let open = |graph_dir: Option<std::path::PathBuf>| {
        let path = dir.path().to_path_buf();
        async move {
            let index = SqliteVecIndex::open(sqlite(&path).await?, DEFAULT_EMBEDDING_DIMENSIONS)
                .await?
                .with_approximate_from(500, 100);
            anyhow::Ok(match graph_dir {
                Some(graph_dir) => index.with_graph_dir(graph_dir),
                None => index,
            })
        }
    };
    let mut source = vector_data::Generator::low_rank(5, DEFAULT_EMBEDDING_DIMENSIONS, 16);
    let first = open(Some(graphs.clone())).await?;
    let mut stored = Vec::new();
    for book in ["book-a", "book-b", "book-c"] {
        let vectors = source.book(book, 300);
        first.replace_book(book, "m", &vectors).await?;
        stored.extend(vectors);
    }
    wait_for_graph(&first, "m").await?;
    assert_eq!(first.graph_was_loaded("m"), Some(false), "built: nothing was saved yet");
    drop(first);

    // While no process holds the graph, another one replaces B and deletes C.
    let writer = open(None).await?;
    let new_b = source.book("book-b", 200);
    writer.replace_book("book-b", "m", &new_b).await?;
    writer.delete_book("book-c").await?;
    stored.retain(|vector| vector.book_id == "book-a");
    stored.extend(new_b.iter().cloned());

    let restarted = open(Some(graphs)).await?;
    wait_for_graph(&restarted, "m").await?;
    assert_eq!(restarted.graph_was_loaded("m"), Some(true), "loaded from its file");
    let moved = &new_b[17];
    let hits = restarted.search("m", &moved.embedding, 5, &BookFilter::All).await?;
    assert_eq!(hits[0].chunk_id, moved.chunk_id, "B's new vectors are in: {hits:?}");
    let queries: Vec<Vec<f32>> = (0..30).map(|_| source.vector()).collect();
    let mut recall = 0.0;
    for query in &queries {
        let hits = restarted.search("m", query, 10, &BookFilter::All).await?;
        assert!(
            hits.iter().all(|hit| hit.book_id != "book-c"),
            "C was deleted: {hits:?}"
        );
        let truth = vector_data::brute_force(&stored, query, 10, None);
        let found: Vec<String> = hits.iter().map(|hit| hit.chunk_id.clone()).collect();
        recall += vector_data::recall(&found, &truth);
    }
    let recall = recall / queries.len() as f64;
    assert!(recall >= 0.95, "recall@10 after the load and the catch-up {recall}");
    Ok(())
}

/// The graph follows another process's writes; until it is built, searches answer from vec0's
/// exact scan; a search within one book stays exact throughout.
#[tokio::test]
async fn sqlite_vec_graph_follows_other_processes_writes() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let writer_db = sqlite(dir.path()).await?;
    let reader_db = sqlite(dir.path()).await?;
    let writer = SqliteVecIndex::open(writer_db, DEFAULT_EMBEDDING_DIMENSIONS).await?;
    let reader = SqliteVecIndex::open(reader_db.clone(), DEFAULT_EMBEDDING_DIMENSIONS)
        .await?
        .with_approximate_from(1000, 100);
    let mut source = vector_data::Generator::low_rank(11, DEFAULT_EMBEDDING_DIMENSIONS, 16);
    let books = ["book-a", "book-b", "book-c"];
    let mut stored = Vec::new();
    for book in books {
        let vectors = source.book(book, 400);
        writer.replace_book(book, "m", &vectors).await?;
        stored.extend(vectors);
    }
    let queries: Vec<Vec<f32>> = (0..40).map(|_| source.vector()).collect();

    // 1,200 vectors, past 1,000: the first search starts the build and answers exactly.
    let first = reader.search("m", &queries[0], 10, &BookFilter::All).await?;
    let exact: Vec<String> = vec0_knn(&reader_db, &queries[0], 10)
        .await?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(first.iter().map(|hit| hit.chunk_id.clone()).collect::<Vec<_>>(), exact);
    wait_for_graph(&reader, "m").await?;

    let recall_of =
        |stored: &[hbi_shared::vectors::ChunkVector], hits: &[hbi_shared::vectors::VectorHit], query: &[f32]| {
            let truth = vector_data::brute_force(stored, query, 10, None);
            let found: Vec<String> = hits.iter().map(|hit| hit.chunk_id.clone()).collect();
            vector_data::recall(&found, &truth)
        };
    let mut recall = 0.0;
    for query in &queries {
        let hits = reader.search("m", query, 10, &BookFilter::All).await?;
        assert_eq!(hits.len(), 10);
        assert!(hits.windows(2).all(|pair| pair[0].similarity >= pair[1].similarity));
        recall += recall_of(&stored, &hits, query);
        // Within one book: the exact top 10, as vec0 ranks them.
        let in_book = reader.search("m", query, 10, &BookFilter::one("book-b")).await?;
        let truth = vector_data::brute_force(&stored, query, 10, Some("book-b"));
        let found: Vec<String> = in_book.iter().map(|hit| hit.chunk_id.clone()).collect();
        assert_eq!(found, truth.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>());
    }
    let recall = recall / queries.len() as f64;
    assert!(recall >= 0.95, "recall@10 {recall}");

    // Another process replaces A and deletes B: the graph follows at the next search.
    let new_a = source.book("book-a", 300);
    writer.replace_book("book-a", "m", &new_a).await?;
    writer.delete_book("book-b").await?;
    stored.retain(|vector| vector.book_id == "book-c");
    stored.extend(new_a.iter().cloned());
    let moved = &new_a[42];
    let hits = reader.search("m", &moved.embedding, 5, &BookFilter::All).await?;
    assert_eq!(hits[0].chunk_id, moved.chunk_id);
    assert!(hits[0].similarity > 0.998, "{hits:?}");
    let mut recall = 0.0;
    for query in &queries {
        let hits = reader.search("m", query, 10, &BookFilter::All).await?;
        assert!(
            hits.iter().all(|hit| hit.book_id != "book-b"),
            "B was deleted: {hits:?}"
        );
        recall += recall_of(&stored, &hits, query);
    }
    let recall = recall / queries.len() as f64;
    assert!(recall >= 0.95, "recall@10 after the writes {recall}");
    assert!(reader.searches_graph("m").await);
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
