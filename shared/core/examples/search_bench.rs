//! Search latency at 100k chunks: p50 / p95 of `Searcher::search` per mode, on the
//! embedded store (SQLite FTS5 + sqlite-vec) or on PostgreSQL (tsvector + pgvector).
//!
//! The corpus books are extracted once and loaded again and again under new book ids
//! until the chunk count is reached (pages, ToC, index, chunks, full text). Stored chunk
//! vectors are random unit vectors (embedding 100k chunks on 2 cores would take an hour and
//! does not change how fast a nearest-neighbour lookup is); every query is embedded by the
//! real model, so semantic and hybrid latencies include the query's embedding. The books
//! are spread over `HBI_BENCH_LIBRARIES` libraries (20), and the last table times searches
//! restricted to the books of one library and of a quarter of them, as a key reaching only
//! those gets.
//!
//!     cargo run --release -p hbi-shared --example search_bench -- [CHUNKS] [DATABASE_URL]
//!
//! `scripts/bench-search` runs it on both stores.

#[path = "support/process_memory.rs"]
mod process_memory;

use hbi_shared::domain::BookFilter;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hbi_shared::Backends;
use hbi_shared::chunking::{ChunkSizes, chunk_book};
use hbi_shared::config::{Overrides, SecretString, Settings};
use hbi_shared::search::{FusionWeights, SearchMode, SearchRequest, Searcher, VectorSemantic};
use hbi_shared::text_index::IndexedPage;
use hbi_shared::vectors::ChunkVector;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus")
}

/// This process's resident set (`VmRSS`), in MB.
fn resident_megabytes() -> anyhow::Result<f64> {
    Ok(process_memory::status_bytes("VmRSS")? as f64 / 1e6)
}

/// A deterministic pseudo-random unit vector (xorshift), different per seed.
fn random_unit(seed: u64, dims: usize) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut vector: Vec<f32> = (0..dims)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect();
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt().max(f32::EPSILON);
    vector.iter_mut().for_each(|x| *x /= norm);
    vector
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

/// (searches counted, p50 ms, p95 ms) of `Searcher::search` over `queries` in `mode`, each
/// with the filter `books` makes (timed with the search); the first 5 queries warm caches
/// (term lists, connections) and are not counted.
async fn time_searches<F, Fut>(
    searcher: &Searcher,
    queries: &[String],
    mode: SearchMode,
    books: F,
) -> anyhow::Result<(usize, f64, f64)>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<BookFilter>>,
{
    let mut times = Vec::with_capacity(queries.len());
    for (n, query) in queries.iter().enumerate() {
        let started = Instant::now();
        let request = SearchRequest {
            query: query.clone(),
            mode,
            books: books().await?,
            section: None,
            k: 10,
            index_boost: true,
            weights: FusionWeights::default(),
            rerank_candidates: 0,
        };
        let hits = searcher.search(&request).await?;
        let elapsed = started.elapsed();
        if n >= 5 {
            times.push(elapsed);
        }
        std::hint::black_box(hits);
    }
    times.sort();
    Ok((times.len(), percentile(&times, 0.5), percentile(&times, 0.95)))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let target: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(100_000);
    let database_url = args.next().unwrap_or_default();

    // HBI_BENCH_DATA_DIR keeps the loaded store for inspection (sqlite3 on its hbi.db).
    let temporary = tempfile::tempdir()?;
    let data_dir = std::env::var_os("HBI_BENCH_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| temporary.path().to_path_buf());
    let overrides = Overrides {
        data_dir: Some(data_dir),
        ..Default::default()
    };
    let mut settings = Settings::load(Some(Path::new("/nonexistent")), &overrides)?;
    settings.database.url = Some(database_url).filter(|url| !url.is_empty()).map(SecretString::from);
    settings.queue.redis_url = None;
    let backends = Backends::open(&settings, true).await?;
    let embedder = backends
        .embedder
        .clone()
        .context("the benchmark needs the embedding model: run scripts/lib/install-tools.sh install_model")?;
    let store = if settings.database.url.is_none() {
        "SQLite FTS5 + sqlite-vec"
    } else {
        "PostgreSQL tsvector + pgvector"
    };

    // Extract the corpus once.
    let mut books = Vec::new();
    for entry in std::fs::read_dir(corpus_dir())? {
        let pdf = entry?.path().join("book.pdf");
        if !pdf.exists() {
            continue;
        }
        let bytes = std::fs::read(&pdf)?;
        let options = hbi_extraction::ExtractOptions {
            max_pages: 20_000,
            max_file_bytes: 1 << 30,
            ocr_languages: None,
        };
        let extraction = hbi_extraction::extract(&bytes, &options, true, &mut |_| {})?;
        books.push(extraction);
    }
    anyhow::ensure!(!books.is_empty(), "no corpus books under {}", corpus_dir().display());

    // The books go round-robin into libraries (HBI_BENCH_LIBRARIES, 20), for the searches
    // restricted to a key's libraries below.
    let libraries: usize = std::env::var("HBI_BENCH_LIBRARIES")
        .ok()
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(20)
        .max(1);
    let library_ids: Vec<String> = (0..libraries).map(|n| format!("library-{n:02}")).collect();
    for id in &library_ids {
        backends.catalog.create_library(id, id, None).await?;
    }

    // Load copies until the target chunk count.
    let loading = Instant::now();
    let (mut chunks_loaded, mut copies) = (0usize, 0usize);
    let dims = embedder.dimensions();
    let model = embedder.model().to_owned();
    'load: loop {
        for extraction in &books {
            if chunks_loaded >= target {
                break 'load;
            }
            let book = backends
                .catalog
                .create_book_in(
                    &library_ids[copies % libraries],
                    &format!("copy {copies}"),
                    None,
                    &Default::default(),
                )
                .await?;
            backends.catalog.save_extraction(&book.id, extraction).await?;
            let chunks = chunk_book(&extraction.pages, &extraction.toc, ChunkSizes::default());
            backends.catalog.replace_chunks(&book.id, &chunks).await?;
            let pages: Vec<IndexedPage> = extraction
                .pages
                .iter()
                .map(|p| IndexedPage {
                    number: p.number,
                    text: p.text.clone(),
                })
                .collect();
            backends.text.index_pages(&book.id, &pages).await?;
            let vectors: Vec<ChunkVector> = chunks
                .iter()
                .enumerate()
                .map(|(n, chunk)| ChunkVector {
                    chunk_id: chunk.id(&book.id),
                    book_id: book.id.clone(),
                    content_hash: chunk.content_hash(),
                    embedding: random_unit((chunks_loaded + n) as u64, dims),
                })
                .collect();
            backends.vectors.replace_book(&book.id, &model, &vectors).await?;
            backends.catalog.mark_ready(&book.id).await?;
            chunks_loaded += chunks.len();
            copies += 1;
        }
    }
    eprintln!(
        "loaded {chunks_loaded} chunks in {copies} books in {:.0} s",
        loading.elapsed().as_secs_f64()
    );

    // Queries: ToC titles of the corpus, as users would type them.
    let mut queries: Vec<String> = books
        .iter()
        .flat_map(|b| b.toc.iter().map(|e| e.title.clone()))
        .filter(|t| t.split_whitespace().count() >= 2)
        .collect();
    queries.truncate(200);
    anyhow::ensure!(!queries.is_empty(), "the corpus has no ToC titles to search for");

    let searcher = Searcher::new(
        backends.text.clone(),
        backends.catalog.clone(),
        Some(Arc::new(VectorSemantic::new(
            embedder.clone(),
            backends.vectors.clone(),
        ))),
        // The bench times the lists and their fusion; a reranker is another server's time.
        None,
    );
    // What a store keeps in memory is made before the timed searches, as `hbi serve` does at
    // its start (sqlite-vec past `vectors.approximate_from`: the HNSW graph; below it the
    // first search fills the copy of the vectors).
    let resident_before = resident_megabytes()?;
    let started = Instant::now();
    backends.vectors.prepare(&model).await?;
    eprintln!(
        "vector search prepared in {:.1} s; resident set {resident_before:.0} -> {:.0} MB",
        started.elapsed().as_secs_f64(),
        resident_megabytes()?
    );
    let started = Instant::now();
    let probe = embedder
        .embed(std::slice::from_ref(&queries[0]))
        .await?
        .pop()
        .context("no vector")?;
    backends.vectors.search(&model, &probe, 10, &BookFilter::All).await?;
    eprintln!("first vector search {:.2} s", started.elapsed().as_secs_f64());

    // Each stage alone, to see where a search spends its time.
    let mut stages: Vec<(&str, Vec<Duration>)> = vec![
        ("query embedding", Vec::new()),
        ("keyword list (100 pages)", Vec::new()),
        ("vector KNN (100 chunks)", Vec::new()),
    ];
    for (n, query) in queries.iter().enumerate() {
        let started = Instant::now();
        let vector = embedder
            .embed(std::slice::from_ref(query))
            .await?
            .pop()
            .context("no vector")?;
        let embedded = started.elapsed();
        let started = Instant::now();
        std::hint::black_box(backends.text.search_pages(&BookFilter::All, query, 100).await?);
        let keyword = started.elapsed();
        let started = Instant::now();
        std::hint::black_box(backends.vectors.search(&model, &vector, 100, &BookFilter::All).await?);
        let knn = started.elapsed();
        if n >= 5 {
            for (stage, time) in stages.iter_mut().zip([embedded, keyword, knn]) {
                stage.1.push(time);
            }
        }
    }
    println!("| store | chunks | stage | queries | p50 ms | p95 ms |");
    println!("|---|---:|---|---:|---:|---:|");
    for (stage, mut times) in stages {
        times.sort();
        println!(
            "| {store} | {chunks_loaded} | {stage} | {} | {:.1} | {:.1} |",
            times.len(),
            percentile(&times, 0.5),
            percentile(&times, 0.95)
        );
    }
    println!();
    println!("| store | chunks | mode | queries | p50 ms | p95 ms |");
    println!("|---|---:|---|---:|---:|---:|");
    for mode in [SearchMode::Keyword, SearchMode::Semantic, SearchMode::Hybrid] {
        let (count, p50, p95) = time_searches(&searcher, &queries, mode, || async { Ok(BookFilter::All) }).await?;
        println!(
            "| {store} | {chunks_loaded} | {} | {count} | {p50:.1} | {p95:.1} |",
            mode.as_str()
        );
    }

    // Index terms (`Library::find_terms`, GET /terms): by an operator, and by a key of one
    // library. Queries: words of the corpus's index terms.
    let library = backends.library(&settings);
    let mut term_queries: Vec<String> = books
        .iter()
        .flat_map(|b| b.index.iter().filter_map(|e| e.path.last().cloned()))
        .filter(|term| term.chars().any(char::is_alphanumeric))
        .step_by(7)
        .collect();
    term_queries.truncate(200);
    let one_library = hbi_shared::access::Principal {
        key_id: "bench".to_owned(),
        scope: hbi_shared::access::Scope::Read,
        reach: hbi_shared::access::Reach::Libraries(
            std::iter::once((library_ids[0].clone(), hbi_shared::access::Scope::Read)).collect(),
        ),
    };
    println!();
    println!("| store | chunks | /terms by | queries | p50 ms | p95 ms |");
    println!("|---|---:|---|---:|---:|---:|");
    for (who, principal) in [
        ("an operator", hbi_shared::access::Principal::operator("bench")),
        ("a key of 1 library", one_library),
    ] {
        let mut times = Vec::with_capacity(term_queries.len());
        for (n, text) in term_queries.iter().enumerate() {
            let started = Instant::now();
            let found = library
                .find_terms(
                    &principal,
                    hbi_shared::library::TermQuery {
                        text: text.clone(),
                        book_id: None,
                        limit: 20,
                    },
                )
                .await?;
            if n >= 5 {
                times.push(started.elapsed());
            }
            std::hint::black_box(found);
        }
        times.sort();
        println!(
            "| {store} | {chunks_loaded} | {who} | {} | {:.1} | {:.1} |",
            times.len(),
            percentile(&times, 0.5),
            percentile(&times, 0.95)
        );
    }

    // Restricted to a key's libraries, as `Library::search` runs it for a key that reaches
    // only some: the key's books read from the catalog, then the search filtered by them.
    println!();
    println!("| store | chunks | libraries | the key reaches | its books | mode | queries | p50 ms | p95 ms |");
    println!("|---|---:|---:|---:|---:|---|---:|---:|---:|");
    for reached in [1, (libraries / 4).max(1)] {
        let reachable: Vec<String> = library_ids.iter().take(reached).cloned().collect();
        let books_reached = backends.catalog.book_ids_in(&reachable).await?.len();
        for mode in [SearchMode::Keyword, SearchMode::Semantic, SearchMode::Hybrid] {
            // The key's books are read for every search, as `Library::search` does.
            let (count, p50, p95) = time_searches(&searcher, &queries, mode, || async {
                Ok(BookFilter::among(backends.catalog.book_ids_in(&reachable).await?))
            })
            .await?;
            println!(
                "| {store} | {chunks_loaded} | {libraries} | {reached} | {books_reached} | {} | {count} | {p50:.1} | {p95:.1} |",
                mode.as_str()
            );
        }
    }
    Ok(())
}
