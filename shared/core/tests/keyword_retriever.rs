//! The keyword retriever of POST /query on both text indexes: SQLite FTS5 and PostgreSQL
//! tsvector (a real server), over a small book whose chunks span pages.

#[path = "support/services.rs"]
mod services;

use std::sync::Arc;

use hbi_shared::answer::{KeywordChunkRetriever, Retriever};
use hbi_shared::catalog::Catalog;
use hbi_shared::chunking::Chunk;
use hbi_shared::text_index::{IndexedPage, PostgresFtsIndex, SqliteFtsIndex, TextIndex};
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

async fn exercise(db: DatabaseConnection, text: Arc<dyn TextIndex>) -> anyhow::Result<()> {
    let catalog = Catalog::new(db);
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
        catalog
            .replace_chunks(id, &[chunk(0, 1, 1), chunk(1, 2, 3), chunk(2, 4, 4), chunk(3, 5, 5)])
            .await?;
    }
    let retriever = KeywordChunkRetriever::new(text, catalog);

    let found = retriever
        .retrieve(
            "How does the assignment operator set up numeric vectors?",
            Some(&book.id),
            10,
        )
        .await?;
    assert!(!found.is_empty());
    let best = &found[0];
    assert_eq!(best.chunk_id, format!("{}:000001", book.id));
    assert_eq!(
        (best.first_page, best.last_page, best.page_label.as_str()),
        (2, 3, "2–3")
    );
    assert_eq!(best.score, 1.0, "every content word (vectors as vector) is in it");
    assert_eq!(best.section_path, ["Chapter 1"]);
    assert!(found.iter().all(|chunk| chunk.book_id == book.id));
    assert!(found.iter().all(|chunk| chunk.score > 0.0 && chunk.score <= 1.0));
    let mut ids: Vec<&str> = found.iter().map(|chunk| chunk.chunk_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), found.len(), "each chunk once");

    // Every book, top_k honoured.
    let found = retriever.retrieve("assignment vectors", None, 10).await?;
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found.iter().any(|chunk| chunk.book_id == other.id));
    assert_eq!(retriever.retrieve("assignment vectors", None, 1).await?.len(), 1);

    // Half the words: half the score.
    let found = retriever.retrieve("plots spaceships", Some(&book.id), 10).await?;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].score, 0.5);

    // Nothing to find, or nothing to search for.
    assert!(retriever.retrieve("quantum chromodynamics", None, 10).await?.is_empty());
    assert!(retriever.retrieve("?! \" *", None, 10).await?.is_empty());
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
