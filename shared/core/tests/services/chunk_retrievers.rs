//! The retrievers of POST /query over a small book whose chunks span pages: the keyword
//! retriever on both text indexes (SQLite FTS5 and PostgreSQL tsvector, a real server), and
//! the hybrid one with the real all-MiniLM-L6-v2 model and sqlite-vec.

use crate::services;
use hbi_shared::domain::BookFilter;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use hbi_shared::answer::{HybridChunkRetriever, KeywordChunkRetriever, Retriever};
use hbi_shared::catalog::Catalog;
use hbi_shared::chunking::Chunk;
use hbi_shared::embeddings::{EmbeddingSettings, open_embedder};
use hbi_shared::knobs::KnobStore;
use hbi_shared::search::VectorSemantic;
use hbi_shared::text_index::{IndexedPage, PostgresFtsIndex, SqliteFtsIndex, TextIndex};
use hbi_shared::vectors::{ChunkVector, SqliteVecIndex, VectorIndex};
use sea_orm::DatabaseConnection;

const PAGES: &[&str] = &[
    "Preface. This manual describes the language.",
    "Vectors and assignment. To set up a numeric vector use the assignment operator with c().",
    "The assignment continues: vectors may also be assigned with assign().",
    "Lists and data frames. A list is an ordered collection of objects.",
    "Graphics. Plots are drawn with plot().",
];

fn chunk(position: u32, first_page: u32, last_page: u32) -> Chunk {
    let text = PAGES[first_page as usize - 1..last_page as usize].join(" ");
    Chunk {
        position,
        text,
        section_path: vec![format!("Chapter {position}")],
        first_page,
        last_page,
        first_label: format!("{first_page}"),
        last_label: format!("{last_page}"),
    }
}

const CHUNKS: [(u32, u32, u32); 4] = [(0, 1, 1), (1, 2, 3), (2, 4, 4), (3, 5, 5)];

/// Two books with the same pages and chunks, indexed for keyword search.
async fn two_books(catalog: &Catalog, text: &dyn TextIndex) -> anyhow::Result<(String, String)> {
    let book = catalog.create_book("Manual", None).await?;
    let other = catalog.create_book("Other", None).await?;
    for id in [&book.id, &other.id] {
        let pages: Vec<IndexedPage> = PAGES
            .iter()
            .enumerate()
            .map(|(i, text)| IndexedPage {
                number: i as u32 + 1,
                text: (*text).to_owned(),
            })
            .collect();
        text.index_pages(id, &pages).await?;
        let chunks: Vec<Chunk> = CHUNKS.iter().map(|&(p, first, last)| chunk(p, first, last)).collect();
        catalog.replace_chunks(id, &chunks).await?;
    }
    Ok((book.id, other.id))
}

async fn exercise(db: DatabaseConnection, text: Arc<dyn TextIndex>) -> anyhow::Result<()> {
    let catalog = Catalog::new(db);
    let (book_id, other_id) = two_books(&catalog, text.as_ref()).await?;
    let retriever = KeywordChunkRetriever::new(text, catalog);

    let found = retriever
        .retrieve(
            "How does the assignment operator set up numeric vectors?",
            &BookFilter::one(&book_id),
            10,
        )
        .await?;
    assert!(!found.is_empty());
    let best = &found[0];
    assert_eq!(best.chunk_id, format!("{book_id}:000001"));
    assert_eq!(
        (best.first_page, best.last_page, best.page_label.as_str()),
        (2, 3, "2–3")
    );
    assert_eq!(best.score, 1.0, "every content word (vectors as vector) is in it");
    assert_eq!(best.section_path, ["Chapter 1"]);
    assert!(found.iter().all(|chunk| chunk.book_id == book_id));
    assert!(found.iter().all(|chunk| chunk.score > 0.0 && chunk.score <= 1.0));
    let mut ids: Vec<&str> = found.iter().map(|chunk| chunk.chunk_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), found.len(), "each chunk once");

    // Every book, top_k honoured.
    let found = retriever.retrieve("assignment vectors", &BookFilter::All, 10).await?;
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found.iter().any(|chunk| chunk.book_id == other_id));
    assert_eq!(
        retriever
            .retrieve("assignment vectors", &BookFilter::All, 1)
            .await?
            .len(),
        1
    );

    // Half the words: half the score.
    let found = retriever
        .retrieve("plots spaceships", &BookFilter::one(&book_id), 10)
        .await?;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].score, 0.5);

    // Nothing to find, or nothing to search for.
    assert!(
        retriever
            .retrieve("quantum chromodynamics", &BookFilter::All, 10)
            .await?
            .is_empty()
    );
    assert!(retriever.retrieve("?! \" *", &BookFilter::All, 10).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn keyword_retrieval_on_sqlite() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("hbi.db").display());
    let db = hbi_shared::db::connect(&url, 2, true).await?;
    exercise(db.clone(), Arc::new(SqliteFtsIndex::new(db))).await
}

#[tokio::test]
async fn keyword_retrieval_on_postgres() -> anyhow::Result<()> {
    let service = services::Service::start("postgres");
    let db = hbi_shared::db::connect(&service.url, 2, true).await?;
    exercise(db.clone(), Arc::new(PostgresFtsIndex::new(db))).await
}

fn repository_root() -> PathBuf {
    let mut dir = Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf();
    while !dir.join("scripts/lib/install-tools.sh").exists() {
        assert!(dir.pop(), "scripts/lib/install-tools.sh not found");
    }
    dir
}

#[tokio::test]
async fn hybrid_retrieval_finds_what_keywords_miss_and_scores_by_evidence() -> anyhow::Result<()> {
    let installed = Command::new("bash")
        .arg("-c")
        .arg("source scripts/lib/install-tools.sh && install_model")
        .current_dir(repository_root())
        .status()?;
    assert!(installed.success(), "install_model failed");
    let embedder = open_embedder(&EmbeddingSettings::default())?;

    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("hbi.db").display());
    let db = hbi_shared::db::connect(&url, 2, true).await?;
    let text: Arc<dyn TextIndex> = Arc::new(SqliteFtsIndex::new(db.clone()));
    let catalog = Catalog::new(db.clone());
    let (book_id, other_id) = two_books(&catalog, text.as_ref()).await?;
    let vectors: Arc<dyn VectorIndex> = Arc::new(SqliteVecIndex::open(db.clone(), embedder.dimensions()).await?);
    for id in [&book_id, &other_id] {
        let chunks = catalog.chunks(id).await?;
        let texts: Vec<String> = chunks.iter().map(|chunk| chunk.text.clone()).collect();
        let embedded = embedder.embed(&texts).await?;
        let stored: Vec<ChunkVector> = chunks
            .iter()
            .zip(embedded)
            .map(|(chunk, embedding)| ChunkVector {
                chunk_id: chunk.id.clone(),
                book_id: id.clone(),
                content_hash: chunk.content_hash.clone(),
                embedding,
            })
            .collect();
        vectors.replace_book(id, embedder.model(), &stored).await?;
    }
    let retriever = HybridChunkRetriever::new(
        KeywordChunkRetriever::new(text, catalog.clone()),
        Arc::new(VectorSemantic::new(embedder, vectors)),
        catalog,
        KnobStore::new(db),
    );

    // No word of the question is on the graphics page ("drawn", not "draw"): only its meaning.
    let found = retriever
        .retrieve("How can I draw a chart?", &BookFilter::one(&book_id), 2)
        .await?;
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[0].chunk_id, format!("{book_id}:000003"), "{found:?}");
    assert_eq!(found[0].page_label, "5");
    let similarity = found[0].score;
    assert!(
        similarity > 0.2 && similarity < 1.0,
        "a cosine, not a rank: {similarity}"
    );
    assert!(found.iter().all(|chunk| chunk.book_id == book_id));

    // Both lists agree: the chunk holds every content word, so its evidence is complete.
    let found = retriever
        .retrieve(
            "How does the assignment operator set up numeric vectors?",
            &BookFilter::All,
            3,
        )
        .await?;
    assert_eq!(found.len(), 3);
    assert!(
        found[..2].iter().all(|chunk| chunk.chunk_id.ends_with(":000001")),
        "{found:?}"
    );
    assert_eq!(found[0].score, 1.0);
    assert!(found.iter().all(|chunk| (0.0..=1.0).contains(&chunk.score)));

    assert!(retriever.retrieve("   ", &BookFilter::All, 5).await?.is_empty());
    assert!(retriever.retrieve("vectors", &BookFilter::All, 0).await?.is_empty());
    Ok(())
}
