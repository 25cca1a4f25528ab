//! The production metadata store: every SQL store of `Backends` on a real PostgreSQL with pgvector.

use crate::services;
use hbi_shared::domain::BookFilter;

use std::path::Path;
use std::time::Duration;

use hbi_extraction::{Extraction, PageText, TocEntry, TocSource};
use hbi_migrations::{Migrator, MigratorTrait};
use hbi_shared::Backends;
use hbi_shared::access::{Authenticator, RevokeOutcome, Scope, admin_key_path};
use hbi_shared::chunking::ChunkSizes;
use hbi_shared::config::{Overrides, Settings};
use hbi_shared::domain::{BookStatus, ContentHash, JobState};
use hbi_shared::graph::{BookGraph, ChapterNode, chapters_from_flat_toc};
use hbi_shared::jobs::store::{BookBusy, Claim, Outcome, StoredFile};
use hbi_shared::text_index::IndexedPage;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use services::Service;

fn settings(database_url: &str, data_dir: &Path) -> anyhow::Result<Settings> {
    let overrides = Overrides {
        data_dir: Some(data_dir.to_path_buf()),
        ..Overrides::default()
    };
    let mut settings = Settings::load(Some(Path::new("/nonexistent")), &overrides)?;
    settings.database.url = Some(database_url.into());
    // Local blobs: this test is about the database.
    settings.blobs.s3_endpoint = None;
    // The first-start admin key is tested here: not one from the caller's environment.
    settings.auth.bootstrap_api_key = None;
    Ok(settings)
}

async fn scalar_i64(db: &sea_orm::DatabaseConnection, sql: &str) -> anyhow::Result<i64> {
    let row = db
        .query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no row for {sql}"))?;
    Ok(row.try_get_by_index(0)?)
}

#[tokio::test]
async fn every_sql_store_works_on_postgres() -> anyhow::Result<()> {
    let service = Service::start("postgres");
    let data_dir = tempfile::tempdir()?;
    let settings = settings(&service.url, data_dir.path())?;

    // Migrations: a second run (a second replica starting) finds nothing to do.
    let first = Backends::open(&settings, true).await?;
    let backends = Backends::open(&settings, true).await?;
    drop(first);
    let db = backends.db.clone();
    assert_eq!(db.get_database_backend(), DbBackend::Postgres);
    Migrator::up(&db, None).await?;
    assert_eq!(Migrator::get_pending_migrations(&db).await?.len(), 0);
    assert_eq!(
        Migrator::get_applied_migrations(&db).await?.len(),
        Migrator::migrations().len()
    );
    assert_eq!(
        scalar_i64(&db, "SELECT COUNT(*) FROM pg_extension WHERE extname = 'vector'").await?,
        1,
        "pgvector is installed"
    );
    assert_eq!(
        scalar_i64(
            &db,
            "SELECT COUNT(*) FROM pg_indexes WHERE indexname = 'idx_page_search_tsv'"
        )
        .await?,
        1
    );
    assert_eq!(backends.text.kind(), "postgres_tsvector");
    for check in backends.check_all().await {
        assert!(
            check.error.is_none(),
            "{} ({}): {:?}",
            check.name,
            check.kind,
            check.error
        );
    }

    // Catalog.
    let book = backends.catalog.create_book("Graph Theory", Some("Ada")).await?;
    assert_eq!(
        backends.catalog.book(&book.id).await?.map(|b| b.title),
        Some("Graph Theory".to_owned())
    );
    let pages: Vec<PageText> = (1..=3)
        .map(|number| PageText {
            number,
            // A /PageLabels prefix can hold any byte: page 3's has a NUL, which PostgreSQL
            // text cannot carry; it is stored without it.
            label: match number {
                1 => "i".to_owned(),
                3 => "\u{0}2".to_owned(),
                _ => (number - 1).to_string(),
            },
            text: format!("Page {number} on directed graphs, ünïcödé and 'quotes'."),
        })
        .collect();
    let toc = vec![
        TocEntry {
            level: 1,
            title: "1 Graphs".to_owned(),
            page: Some(2),
        },
        TocEntry {
            level: 2,
            title: "1.1 Trees".to_owned(),
            page: Some(3),
        },
    ];
    let extraction = Extraction {
        page_count: 3,
        page_labels: pages.iter().map(|p| p.label.clone()).collect(),
        toc_source: TocSource::PrintedContents,
        toc: toc.clone(),
        index: Vec::new(),
        pages: pages.clone(),
        ocr: None,
        warnings: Vec::new(),
        indices: Vec::new(),
        contents_pages: Vec::new(),
        index_support_rate: None,
        signals: Default::default(),
    };
    backends.catalog.save_extraction(&book.id, &extraction).await?;
    // Saving again replaces, it does not duplicate.
    backends.catalog.save_extraction(&book.id, &extraction).await?;
    let page = backends
        .catalog
        .page(&book.id, 3)
        .await?
        .ok_or_else(|| anyhow::anyhow!("page 3"))?;
    assert_eq!(page.text, pages[2].text);
    assert_eq!(page.label, "2");
    assert_eq!(backends.catalog.page_labels(&book.id).await?, vec!["i", "1", "2"]);
    let stored_toc = backends.catalog.toc(&book.id).await?;
    assert_eq!(
        stored_toc
            .iter()
            .map(|e| (e.position, e.level, e.title.as_str(), e.page))
            .collect::<Vec<_>>(),
        vec![(0, 1, "1 Graphs", Some(2)), (1, 2, "1.1 Trees", Some(3))]
    );
    let reloaded = backends
        .catalog
        .book(&book.id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("book"))?;
    assert_eq!(reloaded.page_count, Some(3));
    assert_eq!(reloaded.toc_source.as_deref(), Some("printed_contents"));

    // Chunks: replaced, never duplicated, labels and section path kept.
    let chunks = hbi_shared::chunking::chunk_book(&pages, &toc, ChunkSizes { words: 12, overlap: 4 });
    backends.catalog.replace_chunks(&book.id, &chunks).await?;
    backends.catalog.replace_chunks(&book.id, &chunks).await?;
    let stored_chunks = backends.catalog.chunks(&book.id).await?;
    assert_eq!(stored_chunks.len(), chunks.len());
    let last = stored_chunks.last().ok_or_else(|| anyhow::anyhow!("a chunk"))?;
    assert_eq!(last.first_label, "2");
    assert_eq!(last.section_path, r#"["1 Graphs","1.1 Trees"]"#);

    // Jobs: the outbox, a claim, a rival claim, the finish.
    let hash = ContentHash::of(b"%PDF-1.7 graph theory");
    let file = StoredFile {
        sha256: hash.clone(),
        size_bytes: 21,
        content_type: "application/pdf".to_owned(),
        original_name: Some("graph theory.pdf".to_owned()),
    };
    let job = backends.jobs.create_ingest_job(&book.id, &file, 3, None).await?;
    assert_eq!(job.state, JobState::Queued);
    // One live job per book, enforced by PostgreSQL too.
    let second = backends.jobs.create_ingest_job(&book.id, &file, 3, None).await;
    assert!(second.as_ref().is_err_and(|err| err.is::<BookBusy>()), "{second:?}");
    assert!(backends.jobs.outbox(10).await?.iter().any(|j| j.id == job.id));
    backends.jobs.mark_enqueued(&job.id).await?;
    assert!(!backends.jobs.outbox(10).await?.iter().any(|j| j.id == job.id));
    let lease = Duration::from_secs(60);
    let Claim::Claimed(held) = backends.jobs.claim(&job.id, "worker-1", lease).await? else {
        panic!("the first worker claims a queued job");
    };
    assert_eq!(held.attempts, 1);
    match backends.jobs.claim(&job.id, "worker-2", lease).await? {
        Claim::Busy { retry_at } => assert!(retry_at > chrono::Utc::now(), "retry once the lease ends"),
        other => panic!("a second worker must not claim a held job: {other:?}"),
    }
    assert_eq!(
        backends.catalog.book(&book.id).await?.map(|b| b.status),
        Some(BookStatus::Processing)
    );
    backends
        .jobs
        .report_progress(&job.id, hbi_shared::domain::Stage::ExtractText, 2, 3)
        .await?;
    assert!(
        backends
            .jobs
            .finish(
                &held,
                "worker-2",
                Outcome::Succeeded {
                    book_status: BookStatus::Ready
                }
            )
            .await
            .is_err(),
        "only the holder may finish"
    );
    let state = backends
        .jobs
        .finish(
            &held,
            "worker-1",
            Outcome::Succeeded {
                book_status: BookStatus::Ready,
            },
        )
        .await?;
    assert_eq!(state, JobState::Succeeded);
    let done = backends
        .jobs
        .get(&job.id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("job"))?;
    assert_eq!((done.progress_done, done.progress_total), (2, 3));
    assert!(done.finished_at.is_some());
    let attempts = backends.jobs.attempts(&job.id).await?;
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].outcome, JobState::Succeeded.as_str());
    assert!(matches!(
        backends.jobs.claim(&job.id, "worker-2", lease).await?,
        Claim::Gone
    ));
    assert_eq!(backends.jobs.count_in_state(JobState::Succeeded).await?, 1);
    assert_eq!(backends.catalog.books_with_content(hash.as_str()).await?.len(), 1);

    // A stopping worker hands its job back: the outbox offers it again at once, and the
    // next claim takes it over. A job published long ago and never taken is stranded.
    let second = backends.jobs.create_ingest_job(&book.id, &file, 3, None).await?;
    backends.jobs.mark_enqueued(&second.id).await?;
    assert!(
        backends
            .jobs
            .stranded(Duration::ZERO, 10)
            .await?
            .iter()
            .any(|j| j.id == second.id),
        "published and never taken"
    );
    assert!(
        !backends
            .jobs
            .stranded(Duration::from_secs(600), 10)
            .await?
            .iter()
            .any(|j| j.id == second.id),
        "but only after the stale time"
    );
    let Claim::Claimed(_) = backends.jobs.claim(&second.id, "worker-3", lease).await? else {
        panic!("a queued job is claimed");
    };
    assert!(!backends.jobs.outbox(10).await?.iter().any(|j| j.id == second.id));
    assert_eq!(backends.jobs.hand_back("worker-3").await?, 1);
    assert!(
        backends.jobs.outbox(10).await?.iter().any(|j| j.id == second.id),
        "handed back"
    );
    let Claim::Claimed(taken) = backends.jobs.claim(&second.id, "worker-4", lease).await? else {
        panic!("a handed-back job is claimed at once");
    };
    assert_eq!(taken.attempts, 2);
    let history = backends.jobs.attempts(&second.id).await?;
    assert_eq!(history[0].outcome, hbi_shared::jobs::store::ABANDONED);
    backends.jobs.finish(&taken, "worker-4", Outcome::Cancelled).await?;

    // Graph in SQL tables; writing twice leaves one copy.
    let graph = BookGraph {
        book_id: book.id.clone(),
        content_hash: hash.to_string(),
        title: book.title.clone(),
        page_labels: backends.catalog.page_labels(&book.id).await?,
        chapters: chapters_from_flat_toc(&toc),
        index_terms: Vec::new(),
    };
    backends.graph.write_book(&graph).await?;
    backends.graph.write_book(&graph).await?;
    let chapters: Vec<ChapterNode> = backends.graph.chapters(&book.id).await?;
    assert_eq!(chapters, graph.chapters);
    assert_eq!(chapters[1].parent, Some(0));

    // Text index.
    let indexed: Vec<IndexedPage> = pages
        .iter()
        .map(|p| IndexedPage {
            number: p.number,
            text: p.text.clone(),
        })
        .collect();
    backends.text.index_pages(&book.id, &indexed).await?;
    backends.text.index_pages(&book.id, &indexed).await?;
    assert_eq!(backends.text.page_count(&book.id).await?, 3);
    let hits = backends
        .text
        .search_pages(&BookFilter::one(&book.id), "Page 2 directed", 5)
        .await?;
    assert_eq!(hits.first().map(|hit| hit.page), Some(2), "{hits:?}");

    // API keys: found by hash until revoked; the first start of an instance without an
    // admin key makes one and writes it to a file only its owner can read.
    let keys = &backends.api_keys;
    let (key, secret) = keys.create("ci", Scope::Read).await?;
    let authenticator = Authenticator::new(keys.clone(), None);
    let principal = authenticator.authenticate(secret.expose()).await?;
    assert_eq!(
        principal.map(|p| (p.key_id, p.scope)),
        Some((key.id.clone(), Scope::Read))
    );
    assert!(!keys.has_live_admin().await?);
    let written = hbi_shared::access::prepare(&settings, keys).await?;
    assert_eq!(written.as_deref(), Some(admin_key_path(data_dir.path()).as_path()));
    let admin_key = std::fs::read_to_string(admin_key_path(data_dir.path()))?;
    let admin = authenticator.authenticate(admin_key.trim()).await?;
    assert_eq!(admin.map(|p| p.scope), Some(Scope::Admin));
    assert_eq!(hbi_shared::access::prepare(&settings, keys).await?, None, "made once");
    assert_eq!(keys.revoke(&key.id).await?, RevokeOutcome::Revoked);
    assert!(authenticator.authenticate(secret.expose()).await?.is_none());

    // Deleting the book removes its rows from every store.
    backends.text.delete_book(&book.id).await?;
    backends.graph.delete_book(&book.id).await?;
    assert!(backends.catalog.delete_book(&book.id).await?);
    assert!(backends.catalog.book(&book.id).await?.is_none());
    assert!(backends.graph.chapters(&book.id).await?.is_empty());
    assert_eq!(backends.text.page_count(&book.id).await?, 0);
    assert!(backends.jobs.get(&job.id).await?.is_none());
    Ok(())
}

#[tokio::test]
async fn migrations_go_down_and_up_again_on_postgres() -> anyhow::Result<()> {
    let service = Service::start("postgres");
    let db = hbi_shared::db::connect(&service.url, 2, true).await?;
    Migrator::down(&db, None).await?;
    assert_eq!(
        scalar_i64(
            &db,
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_name IN ('books', 'page_search')"
        )
        .await?,
        0
    );
    Migrator::up(&db, None).await?;
    assert_eq!(
        scalar_i64(
            &db,
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_name IN ('books', 'page_search')"
        )
        .await?,
        2
    );
    Ok(())
}
