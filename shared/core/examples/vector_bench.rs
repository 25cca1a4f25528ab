//! Vector store benchmark (not a test): 100,000 random unit vectors of 384 dimensions in 100
//! books, into sqlite-vec (a temporary SQLite file) and, when `HBI_BENCH_PG_URL` is set, into
//! pgvector (`scripts/bench-vectors` starts a PostgreSQL and sets it). Prints a markdown table:
//! insert rate, KNN k = 10 latency p50/p95 over 200 queries without and with a book filter, and
//! recall@10 against brute force. sqlite-vec runs twice on the same file: on its exact
//! in-memory copy, and on its HNSW graph (the route past `vectors.approximate_from`), with the
//! graph's build time (with its save), its load time after a restart, and the memory each
//! holds (the exact copy: the resident set's growth; the graph: usearch's own count).
//!
//! `cargo run --release -p hbi-shared --example vector_bench`
//! Knobs: `HBI_BENCH_VECTORS` (100000), `HBI_BENCH_BOOKS` (100), `HBI_BENCH_QUERIES` (200),
//! `HBI_BENCH_SHAPE` (`uniform`, or `low-rank:N` for vectors near N directions, as text
//! embeddings are), `HBI_BENCH_EF_SEARCH` (pgvector `hnsw.ef_search` values, `40,100,200,400`).

#[path = "../tests/support/vector_data.rs"]
mod vector_data;

#[path = "support/process_memory.rs"]
mod process_memory;

use hbi_shared::domain::BookFilter;
use std::time::{Duration, Instant};

use anyhow::Context;
use hbi_shared::vectors::{ChunkVector, DEFAULT_EF_SEARCH, PgVectorIndex, SqliteVecIndex, VectorIndex};
use sea_orm::ConnectionTrait;
use vector_data::{Generator, brute_force, recall};

const DIMENSIONS: usize = 384;
const K: usize = 10;
const MODEL: &str = "bench-random-384";

fn env_usize(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(value) => value.parse().with_context(|| format!("{name}={value}")),
        Err(_) => Ok(default),
    }
}

struct Data {
    books: Vec<String>,
    vectors: Vec<Vec<ChunkVector>>,
    queries: Vec<Vec<f32>>,
    /// Brute-force top-k per query: over everything, and within the query's book.
    truth: Vec<Vec<(String, f64)>>,
    truth_in_book: Vec<Vec<(String, f64)>>,
}

impl Data {
    fn make(mut source: Generator, total: usize, book_count: usize, query_count: usize) -> Self {
        let books: Vec<String> = (0..book_count).map(|b| format!("bench-book-{b:03}")).collect();
        let per_book = total / book_count;
        let vectors: Vec<Vec<ChunkVector>> = books.iter().map(|book| source.book(book, per_book)).collect();
        let queries: Vec<Vec<f32>> = (0..query_count).map(|_| source.vector()).collect();
        let truth = queries
            .iter()
            .map(|query| brute_force(vectors.iter().flatten(), query, K, None))
            .collect();
        let truth_in_book = queries
            .iter()
            .enumerate()
            .map(|(n, query)| brute_force(&vectors[n % book_count], query, K, None))
            .collect();
        Self {
            books,
            vectors,
            queries,
            truth,
            truth_in_book,
        }
    }

    fn total(&self) -> usize {
        self.vectors.iter().map(Vec::len).sum()
    }
}

struct Latencies {
    p50: Duration,
    p95: Duration,
    recall: f64,
}

/// Nearest-rank percentile of sorted durations.
fn percentile(sorted: &[Duration], share: f64) -> Duration {
    let rank = ((share * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

async fn searches(index: &dyn VectorIndex, data: &Data, filtered: bool) -> anyhow::Result<Latencies> {
    let mut times = Vec::with_capacity(data.queries.len());
    let mut recalls = Vec::with_capacity(data.queries.len());
    for (n, query) in data.queries.iter().enumerate() {
        let book = if filtered {
            BookFilter::one(&data.books[n % data.books.len()])
        } else {
            BookFilter::All
        };
        let started = Instant::now();
        let hits = index.search(MODEL, query, K, &book).await?;
        times.push(started.elapsed());
        let found: Vec<String> = hits.into_iter().map(|hit| hit.chunk_id).collect();
        let truth = if filtered {
            &data.truth_in_book[n]
        } else {
            &data.truth[n]
        };
        recalls.push(recall(&found, truth));
    }
    times.sort();
    Ok(Latencies {
        p50: percentile(&times, 0.50),
        p95: percentile(&times, 0.95),
        recall: recalls.iter().sum::<f64>() / recalls.len() as f64,
    })
}

fn ms(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1000.0)
}

/// Fills the store; returns the time it took.
async fn fill(name: &str, index: &dyn VectorIndex, data: &Data) -> anyhow::Result<Duration> {
    eprintln!("{name}: inserting {} vectors", data.total());
    let started = Instant::now();
    for (book, vectors) in data.books.iter().zip(&data.vectors) {
        index.replace_book(book, MODEL, vectors).await?;
    }
    let took = started.elapsed();
    eprintln!("{name}: inserted in {:.1} s", took.as_secs_f64());
    Ok(took)
}

/// Searches without and with a book filter; returns one table row.
async fn row(name: &str, insert: Option<Duration>, index: &dyn VectorIndex, data: &Data) -> anyhow::Result<String> {
    eprintln!("{name}: searching");
    // One warm-up pass so every store answers from memory, as a running server would.
    searches(index, data, false).await?;
    let all = searches(index, data, false).await?;
    let book = searches(index, data, true).await?;
    // The embedding cache: 1,000 content hashes spread over the books.
    let step = (data.total() / 1000).max(1);
    let hashes: Vec<String> = data
        .vectors
        .iter()
        .flatten()
        .step_by(step)
        .take(1000)
        .map(|vector| vector.content_hash.clone())
        .collect();
    let started = Instant::now();
    let cached = index.cached(MODEL, &hashes).await?;
    let cache_time = started.elapsed();
    anyhow::ensure!(
        cached.len() == hashes.len(),
        "cached() found {} of {}",
        cached.len(),
        hashes.len()
    );
    let insert = match insert {
        Some(took) => format!(
            "{:.0} /s ({:.1} s)",
            data.total() as f64 / took.as_secs_f64(),
            took.as_secs_f64()
        ),
        None => "(same data)".to_owned(),
    };
    Ok(format!(
        "| {name} | {insert} | {} | {} | {:.3} | {} | {} | {:.3} | {} |",
        ms(all.p50),
        ms(all.p95),
        all.recall,
        ms(book.p50),
        ms(book.p95),
        book.recall,
        ms(cache_time),
    ))
}

fn ef_search_values() -> anyhow::Result<Vec<usize>> {
    let default = format!("40,{DEFAULT_EF_SEARCH},200,400");
    let list = std::env::var("HBI_BENCH_EF_SEARCH").unwrap_or(default);
    list.split(',')
        .map(|value| {
            value
                .trim()
                .parse()
                .with_context(|| format!("HBI_BENCH_EF_SEARCH: {value}"))
        })
        .collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let total = env_usize("HBI_BENCH_VECTORS", 100_000)?;
    let book_count = env_usize("HBI_BENCH_BOOKS", 100)?.max(1);
    let query_count = env_usize("HBI_BENCH_QUERIES", 200)?.max(1);
    eprintln!("making {total} vectors in {book_count} books, {query_count} queries and their brute-force truth");
    // `uniform` (default), or `low-rank:N`: near N directions, as text embeddings are.
    let shape = std::env::var("HBI_BENCH_SHAPE").unwrap_or_else(|_| "uniform".to_owned());
    let (source, described) = match shape.strip_prefix("low-rank:") {
        Some(rank) => {
            let rank: usize = rank.parse().with_context(|| format!("HBI_BENCH_SHAPE={shape}"))?;
            (
                Generator::low_rank(42, DIMENSIONS, rank),
                format!("unit vectors near {rank} random directions (embedding-like)"),
            )
        }
        None if shape == "uniform" => (
            Generator::uniform(42, DIMENSIONS),
            "random unit vectors (uniform directions)".to_owned(),
        ),
        None => anyhow::bail!("HBI_BENCH_SHAPE is `uniform` or `low-rank:N`, not {shape}"),
    };
    let data = Data::make(source, total, book_count, query_count);

    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("bench.db").display());
    let db = hbi_shared::db::connect(&url, 4, true).await?;
    // Exact at any size: the in-memory copy of every vector, scanned.
    let sqlite = SqliteVecIndex::open(db.clone(), DIMENSIONS)
        .await?
        .with_approximate_from(usize::MAX, DEFAULT_EF_SEARCH);
    let insert = fill("sqlite-vec", &sqlite, &data).await?;
    let before = resident_bytes()?;
    let exact = row("sqlite-vec 0.1.9 (exact copy)", Some(insert), &sqlite, &data).await?;
    let copy_bytes = resident_bytes()?.saturating_sub(before);
    rows.push(format!("{exact} {} |", megabytes(copy_bytes)));
    drop(sqlite);
    notes.push(format!(
        "exact copy: {} resident after the searches",
        megabytes(copy_bytes)
    ));

    let graph_dir = dir.path().join("vector-graphs");
    let graph = SqliteVecIndex::open(db.clone(), DIMENSIONS)
        .await?
        .with_approximate_from(0, DEFAULT_EF_SEARCH)
        .with_graph_dir(graph_dir.clone());
    let before = resident_bytes()?;
    let started = Instant::now();
    graph.prepare(MODEL).await?;
    let build = started.elapsed();
    let graph_resident = resident_bytes()?.saturating_sub(before);
    let graph_bytes = graph.graph_memory(MODEL).context("the graph was not built")? as u64;
    eprintln!("sqlite-vec graph: built and saved in {:.1} s", build.as_secs_f64());
    let name = format!("sqlite-vec + usearch HNSW (f16, M=16, ef={DEFAULT_EF_SEARCH}; book: vec0 exact)");
    let searched = row(&name, None, &graph, &data).await?;
    rows.push(format!("{searched} {} |", megabytes(graph_bytes)));
    notes.push(format!(
        "graph: built in {:.1} s ({:.0} vectors/s) on {} threads; {} by usearch's count, the resident set grew {} while it was built (freed memory of the exact copy is reused)",
        build.as_secs_f64(),
        data.total() as f64 / build.as_secs_f64(),
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        megabytes(graph_bytes),
        megabytes(graph_resident),
    ));
    drop(graph);
    // A restart: the next process loads the saved graph instead of building it.
    let restarted = SqliteVecIndex::open(db, DIMENSIONS)
        .await?
        .with_approximate_from(0, DEFAULT_EF_SEARCH)
        .with_graph_dir(graph_dir);
    let started = Instant::now();
    restarted.prepare(MODEL).await?;
    let load = started.elapsed();
    anyhow::ensure!(
        restarted.graph_was_loaded(MODEL) == Some(true),
        "the saved graph was not loaded"
    );
    notes.push(format!(
        "graph after a restart: loaded from its saved file in {:.1} s, instead of the build",
        load.as_secs_f64()
    ));
    drop(restarted);
    drop(dir);

    match std::env::var("HBI_BENCH_PG_URL") {
        Ok(url) if !url.is_empty() => {
            let db = hbi_shared::db::connect(&url, 4, true).await?;
            let version: String = db
                .query_one_raw(sea_orm::Statement::from_string(
                    sea_orm::DbBackend::Postgres,
                    "SELECT extversion FROM pg_extension WHERE extname = 'vector'",
                ))
                .await?
                .context("pgvector is not installed")?
                .try_get("", "extversion")?;
            let pg = PgVectorIndex::open(db.clone(), DIMENSIONS).await?;
            let mut insert = Some(fill("pgvector", &pg, &data).await?);
            for ef_search in ef_search_values()? {
                let pg = PgVectorIndex::open(db.clone(), DIMENSIONS)
                    .await?
                    .with_ef_search(ef_search);
                let name = format!("pgvector {version} (HNSW m=16, ef_search={ef_search})");
                rows.push(format!("{} (server) |", row(&name, insert.take(), &pg, &data).await?));
            }
        }
        _ => eprintln!("HBI_BENCH_PG_URL is not set: pgvector skipped (scripts/bench-vectors sets it)"),
    }

    println!(
        "{} {described} of {DIMENSIONS} dimensions in {book_count} books; \
         k = {K}; {query_count} queries of the same kind (after one warm-up pass); recall@{K} against \
         brute-force cosine. Insert: `replace_book` per book.\n",
        data.total()
    );
    println!(
        "| store | insert rate | KNN p50 | KNN p95 | recall@10 | in one book p50 | in one book p95 | recall@10 in one book | cached(), 1,000 hashes | memory of the search structure |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }
    println!();
    for note in notes {
        println!("- {note}");
    }
    Ok(())
}

/// This process's resident set (`VmRSS`), in bytes.
fn resident_bytes() -> anyhow::Result<u64> {
    process_memory::status_bytes("VmRSS")
}

fn megabytes(bytes: u64) -> String {
    format!("{:.0} MB", bytes as f64 / 1e6)
}
