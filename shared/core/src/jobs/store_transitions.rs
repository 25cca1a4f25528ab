//! The job store's state after each step of each scenario (claim, takeover, cancel,
//! hand-back, requeue, dead), written out whole, as Meilisearch's index-scheduler tests do:
//! a step that changes anything it should not changes the picture, and the test says which
//! line.

use std::fmt::Write as _;
use std::time::Duration;

use super::store::{Claim, JobStore, Outcome, Requeue, StoredFile};
use crate::catalog::Catalog;
use crate::db::entities::job;
use crate::domain::{BookStatus, ContentHash, JobState, Stage};

struct Fixture {
    _dir: tempfile::TempDir,
    jobs: JobStore,
    catalog: Catalog,
    book_id: String,
    file: StoredFile,
}

async fn fixture() -> anyhow::Result<Fixture> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("jobs.db").display());
    let db = crate::db::connect(&url, 2, true).await?;
    let catalog = Catalog::new(db.clone());
    let book = catalog.create_book("A Book", None).await?;
    let file = StoredFile {
        sha256: ContentHash::from_digest(&[7; 32]),
        size_bytes: 10,
        content_type: "application/pdf".into(),
        original_name: None,
    };
    Ok(Fixture {
        _dir: dir,
        jobs: JobStore::new(db),
        catalog,
        book_id: book.id,
        file,
    })
}

impl Fixture {
    /// Every job of the book (oldest first, named by position) with what the store decides
    /// on, its attempts, and the book's status; times are left out, only whether a lease or a
    /// retry is pending.
    async fn snapshot(&self, jobs: &[&job::Model]) -> anyhow::Result<String> {
        let mut out = String::new();
        let book = self
            .catalog
            .book(&self.book_id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("book"))?;
        writeln!(out, "book {}", book.status)?;
        for (position, known) in jobs.iter().enumerate() {
            let job = self.jobs.get(&known.id).await?.ok_or_else(|| anyhow::anyhow!("job"))?;
            writeln!(
                out,
                "job{position} {} attempts={}/{} worker={} lease={} enqueued={} retry_at={} cancel={} stage={} retryable={}",
                job.state,
                job.attempts,
                job.max_attempts,
                job.worker_id.as_deref().unwrap_or("-"),
                if job.lease_until.is_some() { "yes" } else { "no" },
                if job.enqueued_at.is_some() { "yes" } else { "no" },
                if job.run_after.is_some() { "yes" } else { "no" },
                job.cancel_requested,
                job.stage.map_or("-".to_owned(), |stage| stage.to_string()),
                job.retryable,
            )?;
            for attempt in self.jobs.attempts(&job.id).await? {
                writeln!(
                    out,
                    "  #{} {} {} stage={}",
                    attempt.attempt,
                    attempt.worker_id,
                    attempt.outcome,
                    attempt.stage.map_or("-".to_owned(), |stage| stage.to_string()),
                )?;
            }
        }
        Ok(out)
    }
}

fn claimed(claim: Claim) -> job::Model {
    match claim {
        Claim::Claimed(job) => *job,
        other => panic!("expected a claim, got {other:?}"),
    }
}

#[tokio::test]
async fn claim_then_success() -> anyhow::Result<()> {
    let f = fixture().await?;
    let job = f.jobs.create_ingest_job(&f.book_id, &f.file, 3, None).await?;
    assert_eq!(
        f.snapshot(&[&job]).await?,
        "book queued\n\
         job0 queued attempts=0/3 worker=- lease=no enqueued=no retry_at=no cancel=false stage=- retryable=true\n"
    );
    f.jobs.mark_enqueued(&job.id).await?;
    let held = claimed(f.jobs.claim(&job.id, "w1", Duration::from_secs(60)).await?);
    f.jobs.set_stage(&job.id, Stage::Toc).await?;
    assert_eq!(
        f.snapshot(&[&job]).await?,
        "book processing\n\
         job0 running attempts=1/3 worker=w1 lease=yes enqueued=yes retry_at=no cancel=false stage=toc retryable=true\n\
         \x20 #1 w1 running stage=-\n"
    );
    let end = f
        .jobs
        .finish(
            &held,
            "w1",
            Outcome::Succeeded {
                book_status: BookStatus::Ready,
            },
        )
        .await?;
    assert_eq!(end, JobState::Succeeded);
    assert_eq!(
        f.snapshot(&[&job]).await?,
        "book ready\n\
         job0 succeeded attempts=1/3 worker=w1 lease=no enqueued=no retry_at=no cancel=false stage=toc retryable=true\n\
         \x20 #1 w1 succeeded stage=-\n"
    );
    // A late duplicate message finds nothing to do.
    assert!(matches!(
        f.jobs.claim(&job.id, "w2", Duration::from_secs(60)).await?,
        Claim::Gone
    ));
    Ok(())
}

#[tokio::test]
async fn takeover_after_a_lost_lease_then_hand_back() -> anyhow::Result<()> {
    let f = fixture().await?;
    let job = f.jobs.create_ingest_job(&f.book_id, &f.file, 3, None).await?;
    f.jobs.mark_enqueued(&job.id).await?;
    claimed(f.jobs.claim(&job.id, "w1", Duration::ZERO).await?);
    tokio::time::sleep(Duration::from_millis(5)).await;
    // w1's lease ran out: w2 takes the job over, w1's attempt is closed as abandoned.
    claimed(f.jobs.claim(&job.id, "w2", Duration::from_secs(60)).await?);
    assert_eq!(
        f.snapshot(&[&job]).await?,
        "book processing\n\
         job0 running attempts=2/3 worker=w2 lease=yes enqueued=yes retry_at=no cancel=false stage=- retryable=true\n\
         \x20 #1 w1 abandoned stage=-\n\
         \x20 #2 w2 running stage=-\n"
    );
    // w2 stops: the job goes back to the outbox at once, still running under w2's name
    // until the next claim takes it over.
    assert_eq!(f.jobs.hand_back("w2").await?, 1);
    assert_eq!(
        f.snapshot(&[&job]).await?,
        "book processing\n\
         job0 running attempts=2/3 worker=w2 lease=yes enqueued=no retry_at=no cancel=false stage=- retryable=true\n\
         \x20 #1 w1 abandoned stage=-\n\
         \x20 #2 w2 running stage=-\n"
    );
    assert!(f.jobs.outbox(10).await?.iter().any(|queued| queued.id == job.id));
    Ok(())
}

#[tokio::test]
async fn failures_retry_then_die_and_only_the_latest_job_runs_again() -> anyhow::Result<()> {
    let f = fixture().await?;
    let job = f.jobs.create_ingest_job(&f.book_id, &f.file, 2, None).await?;
    f.jobs.mark_enqueued(&job.id).await?;
    let fail = || Outcome::Failed {
        stage: Stage::ExtractText,
        error: "boom".to_owned(),
        retryable: true,
        retry_delay: Duration::ZERO,
    };
    let held = claimed(f.jobs.claim(&job.id, "w1", Duration::from_secs(60)).await?);
    assert_eq!(f.jobs.finish(&held, "w1", fail()).await?, JobState::Failed);
    assert_eq!(
        f.snapshot(&[&job]).await?,
        "book queued\n\
         job0 failed attempts=1/2 worker=w1 lease=no enqueued=no retry_at=yes cancel=false stage=- retryable=true\n\
         \x20 #1 w1 failed stage=extract_text\n"
    );
    let held = claimed(f.jobs.claim(&job.id, "w1", Duration::from_secs(60)).await?);
    assert_eq!(f.jobs.finish(&held, "w1", fail()).await?, JobState::Dead);
    assert_eq!(
        f.snapshot(&[&job]).await?,
        "book failed\n\
         job0 dead attempts=2/2 worker=w1 lease=no enqueued=no retry_at=no cancel=false stage=- retryable=true\n\
         \x20 #1 w1 failed stage=extract_text\n\
         \x20 #2 w1 dead stage=extract_text\n"
    );
    // A newer upload: the dead job may not run again, the new one is untouched.
    let newer = f.jobs.create_ingest_job(&f.book_id, &f.file, 2, None).await?;
    let requeue = f.jobs.requeue(&job.id, &[JobState::Dead], 2).await?;
    assert!(matches!(requeue, Requeue::Superseded), "{requeue:?}");
    assert_eq!(
        f.snapshot(&[&job, &newer]).await?,
        "book queued\n\
         job0 dead attempts=2/2 worker=w1 lease=no enqueued=no retry_at=no cancel=false stage=- retryable=true\n\
         \x20 #1 w1 failed stage=extract_text\n\
         \x20 #2 w1 dead stage=extract_text\n\
         job1 queued attempts=0/2 worker=- lease=no enqueued=no retry_at=no cancel=false stage=- retryable=true\n"
    );
    Ok(())
}

#[tokio::test]
async fn cancel_queued_running_and_requeue() -> anyhow::Result<()> {
    let f = fixture().await?;
    let job = f.jobs.create_ingest_job(&f.book_id, &f.file, 3, None).await?;
    f.jobs.request_cancel(&job.id).await?;
    assert_eq!(
        f.snapshot(&[&job]).await?,
        "book queued\n\
         job0 cancelled attempts=0/3 worker=- lease=no enqueued=no retry_at=no cancel=true stage=- retryable=true\n"
    );
    let requeue = f
        .jobs
        .requeue(&job.id, &[JobState::Dead, JobState::Cancelled], 3)
        .await?;
    assert!(matches!(requeue, Requeue::Queued(_)), "{requeue:?}");
    let held = claimed(f.jobs.claim(&job.id, "w1", Duration::from_secs(60)).await?);
    f.jobs.request_cancel(&job.id).await?;
    assert_eq!(
        f.snapshot(&[&job]).await?,
        "book processing\n\
         job0 running attempts=1/3 worker=w1 lease=yes enqueued=no retry_at=no cancel=true stage=- retryable=true\n\
         \x20 #1 w1 running stage=-\n"
    );
    assert!(f.jobs.cancel_requested(&job.id).await?);
    assert_eq!(
        f.jobs.finish(&held, "w1", Outcome::Cancelled).await?,
        JobState::Cancelled
    );
    assert_eq!(
        f.snapshot(&[&job]).await?,
        "book failed\n\
         job0 cancelled attempts=1/3 worker=w1 lease=no enqueued=no retry_at=no cancel=true stage=- retryable=false\n\
         \x20 #1 w1 cancelled stage=-\n"
    );
    Ok(())
}

/// Every part of the job, with its state, holder and attempts.
async fn parts_snapshot(jobs: &JobStore, job_id: &str) -> anyhow::Result<String> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

    use crate::db::entities::job_part;
    let mut out = String::new();
    let rows = job_part::Entity::find()
        .filter(job_part::Column::JobId.eq(job_id))
        .order_by_asc(job_part::Column::Part)
        .all(&jobs.db)
        .await?;
    for row in rows {
        writeln!(
            out,
            "part{} {}..{} {} worker={} attempts={} error={}",
            row.part,
            row.first_chunk,
            row.end_chunk,
            row.state,
            row.worker_id.as_deref().unwrap_or("-"),
            row.attempts,
            row.error.as_deref().unwrap_or("-"),
        )?;
    }
    Ok(out)
}

#[tokio::test]
async fn parts_are_shared_taken_over_and_kept_across_attempts() -> anyhow::Result<()> {
    let f = fixture().await?;
    let lease = Duration::from_secs(60);
    let job = f.jobs.create_ingest_job(&f.book_id, &f.file, 3, None).await?;
    // No part is claimed while the job itself is not running.
    let open = f.jobs.lay_out_parts(&job.id, 10, 4).await?;
    assert_eq!(
        open.iter()
            .map(|range| (range.first_chunk, range.end_chunk))
            .collect::<Vec<_>>(),
        [(0, 4), (4, 8), (8, 10)]
    );
    assert_eq!(f.jobs.claim_part(&job.id, 0, "w2", lease, 3).await?, None);
    let held = claimed(f.jobs.claim(&job.id, "w1", lease).await?);

    // Two workers take a part each; a part is held by one worker only.
    let first = f.jobs.claim_next_part(&job.id, "w1", lease, 3).await?;
    assert_eq!(first.map(|range| range.part), Some(0));
    assert_eq!(f.jobs.claim_part(&job.id, 0, "w2", lease, 3).await?, None);
    assert_eq!(
        f.jobs
            .claim_part(&job.id, 1, "w2", Duration::ZERO, 3)
            .await?
            .map(|r| r.part),
        Some(1)
    );
    let vectors = vec![("h0".to_owned(), vec![0.5_f32, 1.0]), ("h1".to_owned(), vec![1.0, 0.0])];
    assert!(f.jobs.finish_part(&job.id, 0, "w1", &vectors).await?);
    // w2's lease ran out: w1 takes part 1 over, and w2's late result is refused.
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(
        f.jobs.claim_next_part(&job.id, "w1", lease, 3).await?.map(|r| r.part),
        Some(1)
    );
    assert!(
        !f.jobs
            .finish_part(&job.id, 1, "w2", &[("h9".to_owned(), vec![9.0, 9.0])])
            .await?
    );
    f.jobs.release_part(&job.id, 1, "w1", Some("model timed out")).await?;
    assert_eq!(
        parts_snapshot(&f.jobs, &job.id).await?,
        "part0 0..4 done worker=w1 attempts=1 error=-\n\
         part1 4..8 queued worker=- attempts=2 error=model timed out\n\
         part2 8..10 queued worker=- attempts=0 error=-\n"
    );
    let progress = f.jobs.parts_progress(&job.id, 3).await?;
    assert_eq!(
        (progress.done, progress.parts, progress.chunks_done, progress.chunks),
        (1, 3, 4, 10)
    );
    assert_eq!(progress.given_up, None);
    // Out of attempts: no claim takes it, and the progress names it.
    assert_eq!(
        f.jobs.claim_next_part(&job.id, "w1", lease, 2).await?.map(|r| r.part),
        Some(2)
    );
    assert_eq!(f.jobs.claim_part(&job.id, 1, "w1", lease, 2).await?, None);
    assert_eq!(
        f.jobs.parts_progress(&job.id, 2).await?.given_up,
        Some((1, "model timed out".to_owned()))
    );

    // The next attempt lays the same parts out again: the finished one and its vectors stay,
    // the others start over; a different cut starts afresh.
    let open = f.jobs.lay_out_parts(&job.id, 10, 4).await?;
    assert_eq!(open.iter().map(|range| range.part).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(
        parts_snapshot(&f.jobs, &job.id).await?,
        "part0 0..4 done worker=w1 attempts=1 error=-\n\
         part1 4..8 queued worker=- attempts=0 error=-\n\
         part2 8..10 running worker=w1 attempts=1 error=-\n"
    );
    let gathered = f.jobs.part_vectors(&job.id).await?;
    assert_eq!(gathered.len(), 2);
    assert_eq!(gathered.get("h0"), Some(&vec![0.5_f32, 1.0]));
    // A worker that stops hands its parts back with its jobs.
    f.jobs.hand_back("w1").await?;
    assert!(
        parts_snapshot(&f.jobs, &job.id)
            .await?
            .contains("part2 8..10 queued worker=- attempts=1")
    );
    assert_eq!(f.jobs.lay_out_parts(&job.id, 12, 4).await?.len(), 3);
    assert!(f.jobs.part_vectors(&job.id).await?.is_empty());

    // A cancel stops every claim; the ended job's parts go.
    f.jobs.request_cancel(&job.id).await?;
    assert_eq!(f.jobs.claim_next_part(&job.id, "w2", lease, 3).await?, None);
    f.jobs.finish(&held, "w1", Outcome::Cancelled).await?;
    f.jobs.drop_parts(&job.id).await?;
    assert_eq!(parts_snapshot(&f.jobs, &job.id).await?, "");
    Ok(())
}
