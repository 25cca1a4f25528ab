//! Job state in the database: the single source of truth for every replica.
//!
//! Each transition is one conditional UPDATE, so two workers that receive the same message
//! cannot both run it, and a message for a finished job is dropped.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Set, SqlErr,
};

use crate::db::entities::{book, file, job, job_attempt};
use crate::domain::{BookStatus, ContentHash, JobState, Stage, new_id};

/// The file half of an upload, already in the blob store.
#[derive(Debug, Clone)]
pub struct StoredFile {
    pub sha256: ContentHash,
    pub size_bytes: u64,
    pub content_type: String,
    pub original_name: Option<String>,
}

/// Outcome of an attempt whose worker died mid-run.
pub const ABANDONED: &str = "abandoned";

/// A live job (queued, running or awaiting its retry) already holds the book: the database
/// keeps one per book (`idx_jobs_one_live_per_book`).
#[derive(Debug, thiserror::Error)]
#[error("another job of this book is still queued, running or awaiting its retry")]
pub struct BookBusy;

/// The book is gone (deleted meanwhile).
#[derive(Debug, thiserror::Error)]
#[error("the book no longer exists")]
pub struct BookGone;

/// Whether a write failed on a unique index: for a job row, the one live job of its book.
fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

#[derive(Clone)]
pub struct JobStore {
    pub(super) db: DatabaseConnection,
}

pub(super) fn chrono_delay(delay: Duration) -> chrono::Duration {
    chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX)
}

impl JobStore {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// Commits the file, the book's new content and a queued job in one transaction (the
    /// outbox half of the upload); the relay puts the job on the queue afterwards.
    /// `trace_context` (from [`crate::trace_context::capture`]) stays with the job, so every
    /// attempt's spans continue the uploading request's trace. Fails with [`BookBusy`] when
    /// the book already has a live job, [`BookGone`] when it was deleted; nothing is written
    /// then.
    pub async fn create_ingest_job(
        &self,
        book_id: &str,
        file: &StoredFile,
        max_attempts: u32,
        trace_context: Option<String>,
    ) -> anyhow::Result<job::Model> {
        let now = Utc::now();
        let txn = crate::db::begin_write(&self.db).await?;
        if file::Entity::find_by_id(file.sha256.to_string())
            .one(&txn)
            .await?
            .is_none()
        {
            file::ActiveModel {
                sha256: Set(file.sha256.to_string()),
                size_bytes: Set(i64::try_from(file.size_bytes).unwrap_or(i64::MAX)),
                content_type: Set(file.content_type.clone()),
                original_name: Set(file.original_name.clone()),
                created_at: Set(now),
            }
            .insert(&txn)
            .await?;
        }
        let updated = book::Entity::update_many()
            .col_expr(book::Column::ContentHash, Expr::value(file.sha256.to_string()))
            .col_expr(book::Column::SourcePath, Expr::value(file.original_name.clone()))
            .col_expr(book::Column::Status, Expr::value(BookStatus::Queued.as_str()))
            .col_expr(book::Column::UpdatedAt, Expr::value(now))
            .filter(book::Column::Id.eq(book_id))
            .exec(&txn)
            .await?;
        if updated.rows_affected != 1 {
            txn.rollback().await?;
            return Err(BookGone.into());
        }
        let inserted = job::ActiveModel {
            id: Set(new_id()),
            book_id: Set(book_id.to_owned()),
            file_sha256: Set(file.sha256.to_string()),
            state: Set(JobState::Queued),
            stage: Set(None),
            progress_done: Set(0),
            progress_total: Set(0),
            attempts: Set(0),
            max_attempts: Set(i32::try_from(max_attempts).unwrap_or(3)),
            error: Set(None),
            error_stage: Set(None),
            retryable: Set(true),
            worker_id: Set(None),
            lease_until: Set(None),
            enqueued_at: Set(None),
            run_after: Set(None),
            cancel_requested: Set(false),
            created_at: Set(now),
            started_at: Set(None),
            finished_at: Set(None),
            updated_at: Set(now),
            trace_context: Set(trace_context),
        }
        .insert(&txn)
        .await;
        let job = match inserted {
            Ok(job) => job,
            Err(err) if is_unique_violation(&err) => {
                txn.rollback().await?;
                return Err(BookBusy.into());
            }
            Err(err) => return Err(err.into()),
        };
        txn.commit().await?;
        Ok(job)
    }

    /// Stops the book's jobs before it is deleted: queued and retrying ones end `cancelled`
    /// in the same statement a claim would race with, so no worker starts on a book being
    /// deleted. Returns false, changing nothing, while a job of the book runs.
    pub async fn stop_for_delete(&self, book_id: &str) -> anyhow::Result<bool> {
        let now = Utc::now();
        let txn = crate::db::begin_write(&self.db).await?;
        job::Entity::update_many()
            .col_expr(job::Column::State, Expr::value(JobState::Cancelled.as_str()))
            .col_expr(job::Column::CancelRequested, Expr::value(true))
            .col_expr(job::Column::Error, Expr::value("the book was deleted"))
            .col_expr(job::Column::EnqueuedAt, Expr::value(Option::<DateTime<Utc>>::None))
            .col_expr(job::Column::FinishedAt, Expr::value(now))
            .col_expr(job::Column::UpdatedAt, Expr::value(now))
            .filter(job::Column::BookId.eq(book_id))
            .filter(job::Column::State.is_in([JobState::Queued.as_str(), JobState::Failed.as_str()]))
            .exec(&txn)
            .await?;
        let running = job::Entity::find()
            .filter(job::Column::BookId.eq(book_id))
            .filter(job::Column::State.eq(JobState::Running.as_str()))
            .count(&txn)
            .await?;
        if running > 0 {
            txn.rollback().await?;
            return Ok(false);
        }
        txn.commit().await?;
        Ok(true)
    }

    pub async fn get(&self, job_id: &str) -> anyhow::Result<Option<job::Model>> {
        Ok(job::Entity::find_by_id(job_id).one(&self.db).await?)
    }

    pub async fn list(&self, state: Option<JobState>, limit: u64) -> anyhow::Result<Vec<job::Model>> {
        self.list_in(None, state, limit).await
    }

    /// The newest jobs of the books in these libraries (`None`: every library) first.
    pub async fn list_in(
        &self,
        libraries: Option<&[String]>,
        state: Option<JobState>,
        limit: u64,
    ) -> anyhow::Result<Vec<job::Model>> {
        let mut query = job::Entity::find().order_by_desc(job::Column::CreatedAt).limit(limit);
        if let Some(state) = state {
            query = query.filter(job::Column::State.eq(state.as_str()));
        }
        if let Some(libraries) = libraries {
            query = query.filter(job::Column::BookId.in_subquery(crate::catalog::books_of_libraries(libraries)));
        }
        Ok(query.all(&self.db).await?)
    }

    pub async fn attempts(&self, job_id: &str) -> anyhow::Result<Vec<job_attempt::Model>> {
        Ok(job_attempt::Entity::find()
            .filter(job_attempt::Column::JobId.eq(job_id))
            .order_by_asc(job_attempt::Column::Attempt)
            .all(&self.db)
            .await?)
    }

    pub async fn latest_for_book(&self, book_id: &str) -> anyhow::Result<Option<job::Model>> {
        Ok(job::Entity::find()
            .filter(job::Column::BookId.eq(book_id))
            .order_by_desc(job::Column::CreatedAt)
            .one(&self.db)
            .await?)
    }

    pub async fn count_in_state(&self, state: JobState) -> anyhow::Result<u64> {
        Ok(job::Entity::find()
            .filter(job::Column::State.eq(state.as_str()))
            .count(&self.db)
            .await?)
    }

    /// Jobs committed but not yet on the queue: new uploads, scheduled retries, and running
    /// jobs a stopping worker handed back.
    pub async fn outbox(&self, limit: u64) -> anyhow::Result<Vec<job::Model>> {
        let handed_back = Condition::all()
            .add(job::Column::State.eq(JobState::Running.as_str()))
            .add(job::Column::LeaseUntil.lt(Utc::now()));
        Ok(job::Entity::find()
            .filter(job::Column::EnqueuedAt.is_null())
            .filter(
                Condition::any()
                    .add(job::Column::State.is_in([JobState::Queued.as_str(), JobState::Failed.as_str()]))
                    .add(handed_back),
            )
            .order_by_asc(job::Column::CreatedAt)
            .limit(limit)
            .all(&self.db)
            .await?)
    }

    /// Jobs that should have been taken long ago: published more than `stale_after` ago and
    /// still queued, due for their retry, or held under a lease that ran out. Their message
    /// was lost (a queue that dropped its data, a delivery given up after repeated errors).
    pub async fn stranded(&self, stale_after: Duration, limit: u64) -> anyhow::Result<Vec<job::Model>> {
        let before = Utc::now() - chrono_delay(stale_after);
        Ok(job::Entity::find()
            .filter(job::Column::EnqueuedAt.lt(before))
            .filter(
                Condition::any()
                    .add(
                        Condition::all()
                            .add(job::Column::State.eq(JobState::Queued.as_str()))
                            .add(job::Column::CancelRequested.eq(false)),
                    )
                    .add(
                        Condition::all()
                            .add(job::Column::State.eq(JobState::Failed.as_str()))
                            .add(job::Column::CancelRequested.eq(false))
                            .add(job::Column::RunAfter.lt(before)),
                    )
                    .add(
                        // Cancelled or not: a claim of a lost job whose cancel was asked for
                        // ends it cancelled, so it must come back to a worker too.
                        Condition::all()
                            .add(job::Column::State.eq(JobState::Running.as_str()))
                            .add(job::Column::LeaseUntil.lt(before)),
                    ),
            )
            .order_by_asc(job::Column::CreatedAt)
            .limit(limit)
            .all(&self.db)
            .await?)
    }

    /// Records that a job's message is on the queue (now).
    pub async fn mark_enqueued(&self, job_id: &str) -> anyhow::Result<()> {
        job::Entity::update_many()
            .col_expr(job::Column::EnqueuedAt, Expr::value(Utc::now()))
            .filter(job::Column::Id.eq(job_id))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// A stopping worker gives its unfinished jobs back: their lease ends now and the relay
    /// publishes them again, so another worker takes them over without waiting for the lease.
    pub async fn hand_back(&self, worker_id: &str) -> anyhow::Result<u64> {
        let now = Utc::now();
        let result = job::Entity::update_many()
            .col_expr(job::Column::LeaseUntil, Expr::value(now - chrono::Duration::seconds(1)))
            .col_expr(job::Column::EnqueuedAt, Expr::value(Option::<DateTime<Utc>>::None))
            .col_expr(job::Column::UpdatedAt, Expr::value(now))
            .filter(job::Column::WorkerId.eq(worker_id))
            .filter(job::Column::State.eq(JobState::Running.as_str()))
            .exec(&self.db)
            .await?;
        self.hand_back_parts(worker_id).await?;
        Ok(result.rows_affected)
    }

    /// Takes a job for `worker_id` if nobody else holds it: a queued job, a job whose retry is
    /// due, or a running job whose lease ran out (its worker died).
    pub async fn claim(&self, job_id: &str, worker_id: &str, lease: Duration) -> anyhow::Result<Claim> {
        let now = Utc::now();
        let claimable = Condition::any()
            .add(job::Column::State.eq(JobState::Queued.as_str()))
            .add(
                // A retry runs once its backoff has passed, not on an early duplicate message.
                Condition::all()
                    .add(job::Column::State.eq(JobState::Failed.as_str()))
                    .add(
                        Condition::any()
                            .add(job::Column::RunAfter.is_null())
                            .add(job::Column::RunAfter.lte(now)),
                    ),
            )
            .add(
                // A takeover is an attempt like any other: a job whose workers keep dying (a
                // book that crashes them, a worker killed again and again) ends in the DLQ.
                Condition::all()
                    .add(job::Column::State.eq(JobState::Running.as_str()))
                    .add(job::Column::LeaseUntil.lt(now))
                    .add(Expr::col(job::Column::Attempts).lt(Expr::col(job::Column::MaxAttempts))),
            );
        let result = job::Entity::update_many()
            .col_expr(job::Column::State, Expr::value(JobState::Running.as_str()))
            .col_expr(job::Column::WorkerId, Expr::value(worker_id))
            .col_expr(job::Column::LeaseUntil, Expr::value(now + chrono_delay(lease)))
            .col_expr(job::Column::Attempts, Expr::col(job::Column::Attempts).add(1))
            .col_expr(job::Column::StartedAt, Expr::value(now))
            .col_expr(job::Column::FinishedAt, Expr::value(Option::<DateTime<Utc>>::None))
            .col_expr(job::Column::UpdatedAt, Expr::value(now))
            .filter(job::Column::Id.eq(job_id))
            .filter(job::Column::CancelRequested.eq(false))
            .filter(claimable)
            .exec(&self.db)
            .await?;
        if result.rows_affected != 1 {
            return self.why_not_claimed(job_id, now).await;
        }
        let Some(job) = self.get(job_id).await? else {
            return Ok(Claim::Gone);
        };
        // An attempt still marked running belonged to a worker that died: close it.
        job_attempt::Entity::update_many()
            .col_expr(job_attempt::Column::Outcome, Expr::value(ABANDONED))
            .col_expr(
                job_attempt::Column::Error,
                Expr::value("the worker stopped responding; the job was taken over"),
            )
            .col_expr(job_attempt::Column::FinishedAt, Expr::value(now))
            .filter(job_attempt::Column::JobId.eq(job_id))
            .filter(job_attempt::Column::Outcome.eq(JobState::Running.as_str()))
            .exec(&self.db)
            .await?;
        job_attempt::ActiveModel {
            job_id: Set(job.id.clone()),
            attempt: Set(job.attempts),
            worker_id: Set(worker_id.to_owned()),
            stage: Set(None),
            outcome: Set(JobState::Running.as_str().to_owned()),
            error: Set(None),
            started_at: Set(now),
            finished_at: Set(None),
            ..Default::default()
        }
        .insert(&self.db)
        .await?;
        book::Entity::update_many()
            .col_expr(book::Column::Status, Expr::value(BookStatus::Processing.as_str()))
            .col_expr(book::Column::UpdatedAt, Expr::value(now))
            .filter(book::Column::Id.eq(&job.book_id))
            .exec(&self.db)
            .await?;
        Ok(Claim::Claimed(Box::new(job)))
    }

    async fn why_not_claimed(&self, job_id: &str, now: DateTime<Utc>) -> anyhow::Result<Claim> {
        let Some(job) = self.get(job_id).await? else {
            return Ok(Claim::Gone);
        };
        let state = Some(job.state);
        let lease_ran_out = job.lease_until.is_some_and(|lease| lease < now);
        if state == Some(JobState::Running) && lease_ran_out && job.cancel_requested {
            self.cancel_lost_job(&job, now).await?;
            return Ok(Claim::Gone);
        }
        if state == Some(JobState::Running) && lease_ran_out && job.attempts >= job.max_attempts {
            self.bury_lost_job(&job, now).await?;
            return Ok(Claim::Gone);
        }
        Ok(match state {
            Some(JobState::Running) if !job.cancel_requested => Claim::Busy {
                retry_at: Ord::max(job.lease_until.unwrap_or(now), now),
            },
            Some(JobState::Failed) if !job.cancel_requested => Claim::Busy {
                retry_at: Ord::max(job.run_after.unwrap_or(now), now),
            },
            _ => Claim::Gone,
        })
    }

    /// Ends a job whose cancel was asked for while it ran and whose worker was lost before it
    /// stopped: nobody else will stop it, so it ends `cancelled` here, its attempt abandoned.
    /// Only one of several claimants does it.
    async fn cancel_lost_job(&self, job: &job::Model, now: DateTime<Utc>) -> anyhow::Result<()> {
        let still_lost = Condition::all()
            .add(job::Column::LeaseUntil.lt(now))
            .add(job::Column::Attempts.eq(job.attempts));
        if self.record_end(job, still_lost, cancelled(ABANDONED), now).await? {
            crate::metrics::job_finished(JobState::Cancelled);
            tracing::info!(job_id = %job.id, "job cancelled: its worker was lost before it stopped");
        }
        Ok(())
    }

    /// Ends a job whose last allowed attempt lost its worker: dead, in the DLQ with the reason,
    /// its running attempt closed as abandoned. Only one of several claimants does it.
    async fn bury_lost_job(&self, job: &job::Model, now: DateTime<Utc>) -> anyhow::Result<()> {
        let error = format!(
            "the worker running it was lost on each of its {} attempts (killed or stopped responding){}",
            job.attempts,
            job.stage
                .map(|stage| format!("; the last at stage {stage}"))
                .unwrap_or_default()
        );
        let still_lost = Condition::all()
            .add(job::Column::LeaseUntil.lt(now))
            .add(job::Column::Attempts.eq(job.attempts));
        let end = JobEnd {
            state: JobState::Dead,
            attempt_outcome: ABANDONED,
            book_status: BookStatus::Failed,
            error: Some(error.clone()),
            error_stage: job.stage,
            retryable: true,
            run_after: None,
        };
        if self.record_end(job, still_lost, end, now).await? {
            crate::metrics::job_finished(JobState::Dead);
            tracing::warn!(job_id = %job.id, attempts = job.attempts, error = %error, "job dead: its workers were lost");
        }
        Ok(())
    }

    /// Writes how `job` ended, in one transaction: the job row (only while it is still
    /// running and matches `held`), its current attempt and its book's status. Returns false,
    /// writing nothing, when the job row no longer matches.
    async fn record_end(
        &self,
        job: &job::Model,
        held: Condition,
        end: JobEnd<'_>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<bool> {
        let txn = crate::db::begin_write(&self.db).await?;
        let updated = job::Entity::update_many()
            .col_expr(job::Column::State, Expr::value(end.state.as_str()))
            .col_expr(job::Column::Error, Expr::value(end.error.clone()))
            .col_expr(job::Column::ErrorStage, Expr::value(end.error_stage))
            .col_expr(job::Column::Retryable, Expr::value(end.retryable))
            .col_expr(job::Column::RunAfter, Expr::value(end.run_after))
            .col_expr(job::Column::EnqueuedAt, Expr::value(Option::<DateTime<Utc>>::None))
            .col_expr(job::Column::LeaseUntil, Expr::value(Option::<DateTime<Utc>>::None))
            .col_expr(
                job::Column::FinishedAt,
                Expr::value(end.state.is_final().then_some(now)),
            )
            .col_expr(job::Column::UpdatedAt, Expr::value(now))
            .filter(job::Column::Id.eq(&job.id))
            .filter(job::Column::State.eq(JobState::Running.as_str()))
            .filter(held)
            .exec(&txn)
            .await?;
        if updated.rows_affected != 1 {
            txn.rollback().await?;
            return Ok(false);
        }
        job_attempt::Entity::update_many()
            .col_expr(job_attempt::Column::Outcome, Expr::value(end.attempt_outcome))
            .col_expr(job_attempt::Column::Error, Expr::value(end.error.clone()))
            .col_expr(job_attempt::Column::Stage, Expr::value(end.error_stage))
            .col_expr(job_attempt::Column::FinishedAt, Expr::value(now))
            .filter(job_attempt::Column::JobId.eq(&job.id))
            .filter(job_attempt::Column::Attempt.eq(job.attempts))
            .exec(&txn)
            .await?;
        book::Entity::update_many()
            .col_expr(book::Column::Status, Expr::value(end.book_status.as_str()))
            .col_expr(book::Column::UpdatedAt, Expr::value(now))
            .filter(book::Column::Id.eq(&job.book_id))
            .exec(&txn)
            .await?;
        // The webhooks' outbox, in the same transaction: an end is never without its events.
        crate::webhooks::record_job_end(
            &txn,
            &crate::webhooks::JobEnded {
                job_id: &job.id,
                book_id: &job.book_id,
                state: end.state,
                book_status: end.book_status,
                attempts: job.attempts,
                max_attempts: job.max_attempts,
                error: end.error.as_deref(),
                error_stage: end.error_stage,
            },
            now,
        )
        .await?;
        txn.commit().await?;
        Ok(true)
    }

    /// Heartbeat: keeps the leases of this worker's running jobs alive.
    pub async fn extend_leases(&self, worker_id: &str, lease: Duration) -> anyhow::Result<()> {
        let until = Utc::now() + chrono_delay(lease);
        job::Entity::update_many()
            .col_expr(job::Column::LeaseUntil, Expr::value(until))
            .filter(job::Column::WorkerId.eq(worker_id))
            .filter(job::Column::State.eq(JobState::Running.as_str()))
            .exec(&self.db)
            .await?;
        self.extend_part_leases(worker_id, until).await
    }

    /// Records the stage a running job has reached; progress counts stay until the stage reports its own.
    pub async fn set_stage(&self, job_id: &str, stage: Stage) -> anyhow::Result<()> {
        job::Entity::update_many()
            .col_expr(job::Column::Stage, Expr::value(stage.as_str()))
            .col_expr(job::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(job::Column::Id.eq(job_id))
            .filter(job::Column::State.eq(JobState::Running.as_str()))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    pub async fn report_progress(&self, job_id: &str, stage: Stage, done: u32, total: u32) -> anyhow::Result<()> {
        job::Entity::update_many()
            .col_expr(job::Column::Stage, Expr::value(stage.as_str()))
            .col_expr(
                job::Column::ProgressDone,
                Expr::value(i32::try_from(done).unwrap_or(i32::MAX)),
            )
            .col_expr(
                job::Column::ProgressTotal,
                Expr::value(i32::try_from(total).unwrap_or(i32::MAX)),
            )
            .col_expr(job::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(job::Column::Id.eq(job_id))
            .filter(job::Column::State.eq(JobState::Running.as_str()))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    pub async fn cancel_requested(&self, job_id: &str) -> anyhow::Result<bool> {
        Ok(self.get(job_id).await?.is_some_and(|job| job.cancel_requested))
    }

    /// Ends the running attempt of `job` with `outcome`. Only the worker holding the job may.
    pub async fn finish(&self, job: &job::Model, worker_id: &str, outcome: Outcome) -> anyhow::Result<JobState> {
        let now = Utc::now();
        let held = || Condition::all().add(job::Column::WorkerId.eq(worker_id));
        let (state, book_status, error, error_stage, retryable, run_after) = match &outcome {
            Outcome::Succeeded { book_status } => (JobState::Succeeded, *book_status, None, None, true, None),
            Outcome::Cancelled => {
                if self
                    .record_end(job, held(), cancelled(JobState::Cancelled.as_str()), now)
                    .await?
                {
                    return Ok(JobState::Cancelled);
                }
                anyhow::bail!("job {} is no longer held by worker {worker_id}", job.id);
            }
            Outcome::Failed {
                stage,
                error,
                retryable,
                retry_delay,
            } => {
                let retry = *retryable && job.attempts < job.max_attempts;
                if retry {
                    let run_after = now + chrono_delay(*retry_delay);
                    (
                        JobState::Failed,
                        BookStatus::Queued,
                        Some(error.clone()),
                        Some(*stage),
                        true,
                        Some(run_after),
                    )
                } else {
                    (
                        JobState::Dead,
                        BookStatus::Failed,
                        Some(error.clone()),
                        Some(*stage),
                        *retryable,
                        None,
                    )
                }
            }
        };
        let end = JobEnd {
            state,
            attempt_outcome: state.as_str(),
            book_status,
            error,
            error_stage,
            retryable,
            run_after,
        };
        // A retry is scheduled only if no cancel was asked for meanwhile: a claim never takes a
        // job whose cancel was asked for, so such a retry would stay `failed` for ever.
        let held_for_end = if state == JobState::Failed {
            held().add(job::Column::CancelRequested.eq(false))
        } else {
            held()
        };
        if self.record_end(job, held_for_end, end, now).await? {
            return Ok(state);
        }
        if state == JobState::Failed
            && self
                .record_end(job, held(), cancelled(JobState::Cancelled.as_str()), now)
                .await?
        {
            return Ok(JobState::Cancelled);
        }
        // Someone else took the job over (our lease ran out); their outcome counts.
        anyhow::bail!("job {} is no longer held by worker {worker_id}", job.id)
    }

    /// Asks a job to stop. A queued or retrying job is cancelled at once; a running one is
    /// stopped by its worker, which polls this flag. Returns the job after the request.
    pub async fn request_cancel(&self, job_id: &str) -> anyhow::Result<Option<job::Model>> {
        let now = Utc::now();
        job::Entity::update_many()
            .col_expr(job::Column::CancelRequested, Expr::value(true))
            .col_expr(job::Column::UpdatedAt, Expr::value(now))
            .filter(job::Column::Id.eq(job_id))
            .filter(job::Column::State.eq(JobState::Running.as_str()))
            .exec(&self.db)
            .await?;
        job::Entity::update_many()
            .col_expr(job::Column::State, Expr::value(JobState::Cancelled.as_str()))
            .col_expr(job::Column::CancelRequested, Expr::value(true))
            .col_expr(job::Column::FinishedAt, Expr::value(now))
            .col_expr(job::Column::UpdatedAt, Expr::value(now))
            .filter(job::Column::Id.eq(job_id))
            .filter(job::Column::State.is_in([JobState::Queued.as_str(), JobState::Failed.as_str()]))
            .exec(&self.db)
            .await?;
        self.get(job_id).await
    }

    /// Puts a job that ended in one of the `from` states back in the queue's outbox with
    /// `extra_attempts` more attempts, keeping its history (attempt numbers keep counting).
    /// Only the book's latest job may run again: an older one names a file the book no
    /// longer has.
    pub async fn requeue(&self, job_id: &str, from: &[JobState], extra_attempts: u32) -> anyhow::Result<Requeue> {
        let now = Utc::now();
        let txn = crate::db::begin_write(&self.db).await?;
        let Some(job) = job::Entity::find_by_id(job_id).one(&txn).await? else {
            return Ok(Requeue::NotFound);
        };
        if !from.contains(&job.state) {
            return Ok(Requeue::NotInState(job.state));
        }
        let latest = job::Entity::find()
            .filter(job::Column::BookId.eq(&job.book_id))
            .order_by_desc(job::Column::CreatedAt)
            .order_by_desc(job::Column::Id)
            .one(&txn)
            .await?;
        if latest.is_some_and(|latest| latest.id != job.id) {
            return Ok(Requeue::Superseded);
        }
        let result = job::Entity::update_many()
            .col_expr(job::Column::State, Expr::value(JobState::Queued.as_str()))
            .col_expr(
                job::Column::MaxAttempts,
                Expr::col(job::Column::Attempts).add(i32::try_from(extra_attempts).unwrap_or(1)),
            )
            .col_expr(job::Column::CancelRequested, Expr::value(false))
            .col_expr(job::Column::Retryable, Expr::value(true))
            .col_expr(job::Column::RunAfter, Expr::value(Option::<DateTime<Utc>>::None))
            .col_expr(job::Column::EnqueuedAt, Expr::value(Option::<DateTime<Utc>>::None))
            .col_expr(job::Column::WorkerId, Expr::value(Option::<String>::None))
            .col_expr(job::Column::FinishedAt, Expr::value(Option::<DateTime<Utc>>::None))
            .col_expr(job::Column::UpdatedAt, Expr::value(now))
            .filter(job::Column::Id.eq(job_id))
            .filter(job::Column::State.is_in(from.iter().copied()))
            .exec(&txn)
            .await;
        match result {
            Ok(result) if result.rows_affected == 1 => {}
            Ok(_) => return Ok(Requeue::NotInState(job.state)),
            Err(err) if is_unique_violation(&err) => return Ok(Requeue::BookBusy),
            Err(err) => return Err(err.into()),
        }
        book::Entity::update_many()
            .col_expr(book::Column::Status, Expr::value(BookStatus::Queued.as_str()))
            .col_expr(book::Column::UpdatedAt, Expr::value(now))
            .filter(book::Column::Id.eq(&job.book_id))
            .exec(&txn)
            .await?;
        let requeued = job::Entity::find_by_id(job_id).one(&txn).await?;
        txn.commit().await?;
        Ok(requeued.map_or(Requeue::NotFound, |job| Requeue::Queued(Box::new(job))))
    }

    /// Removes a job from the dead-letter queue without running it again: it ends
    /// `cancelled`, its error and history kept for the record.
    pub async fn discard_dead(&self, job_id: &str) -> anyhow::Result<bool> {
        let result = job::Entity::update_many()
            .col_expr(job::Column::State, Expr::value(JobState::Cancelled.as_str()))
            .col_expr(job::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(job::Column::Id.eq(job_id))
            .filter(job::Column::State.eq(JobState::Dead.as_str()))
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected == 1)
    }

    pub async fn ping(&self) -> anyhow::Result<()> {
        self.db.execute_unprepared("SELECT 1").await?;
        Ok(())
    }
}

/// The answer to a claim.
#[derive(Debug)]
pub enum Claim {
    /// The job is ours to run.
    Claimed(Box<job::Model>),
    /// Someone holds the job (or its retry is not due yet): look again at `retry_at`, since
    /// the holder may have died.
    Busy { retry_at: DateTime<Utc> },
    /// Finished, cancelled or deleted: nothing to do.
    Gone,
}

/// The answer to a requeue.
#[derive(Debug)]
pub enum Requeue {
    /// Back in the outbox.
    Queued(Box<job::Model>),
    NotFound,
    /// The job is in this state, not one it may run again from.
    NotInState(JobState),
    /// A newer job of the book exists: this one's file may be gone, its result stale.
    Superseded,
    /// Another job of the book is live.
    BookBusy,
}

/// How one attempt ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    Succeeded {
        book_status: BookStatus,
    },
    Cancelled,
    Failed {
        stage: Stage,
        error: String,
        retryable: bool,
        retry_delay: Duration,
    },
}

/// The end of a job stopped by request; `attempt_outcome` says how its attempt ended.
fn cancelled(attempt_outcome: &str) -> JobEnd<'_> {
    JobEnd {
        state: JobState::Cancelled,
        attempt_outcome,
        book_status: BookStatus::Failed,
        error: Some("cancelled by request".to_owned()),
        error_stage: None,
        retryable: false,
        run_after: None,
    }
}

/// How a job ended, as [`JobStore::record_end`] writes it.
struct JobEnd<'a> {
    state: JobState,
    /// What the current attempt's row records: the state, or [`ABANDONED`].
    attempt_outcome: &'a str,
    book_status: BookStatus,
    error: Option<String>,
    error_stage: Option<Stage>,
    retryable: bool,
    run_after: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store_with_book(dir: &tempfile::TempDir) -> anyhow::Result<(JobStore, String, StoredFile)> {
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("jobs.db").display());
        let db = crate::db::connect(&url, 2, true).await?;
        let book = crate::catalog::Catalog::new(db.clone())
            .create_book("A Book", None)
            .await?;
        let file = StoredFile {
            sha256: ContentHash::from_digest(&[7; 32]),
            size_bytes: 10,
            content_type: "application/pdf".into(),
            original_name: None,
        };
        Ok((JobStore::new(db), book.id, file))
    }

    async fn state_of(jobs: &JobStore, job_id: &str) -> anyhow::Result<JobState> {
        Ok(jobs.get(job_id).await?.ok_or_else(|| anyhow::anyhow!("job"))?.state)
    }

    #[tokio::test]
    async fn a_cancelled_job_whose_worker_died_ends_cancelled() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let (jobs, book_id, file) = store_with_book(&dir).await?;
        let job = jobs.create_ingest_job(&book_id, &file, 3, None).await?;
        jobs.mark_enqueued(&job.id).await?;
        // The worker takes the job, the cancel is asked for, and the worker dies before it
        // sees the request (its lease has already run out).
        let claim = jobs.claim(&job.id, "worker-1", Duration::ZERO).await?;
        assert!(matches!(claim, Claim::Claimed(_)));
        jobs.request_cancel(&job.id).await?;
        tokio::time::sleep(Duration::from_millis(5)).await;
        let stranded: Vec<String> = jobs
            .stranded(Duration::ZERO, 10)
            .await?
            .into_iter()
            .map(|job| job.id)
            .collect();
        assert_eq!(
            stranded,
            vec![job.id.clone()],
            "the relay brings the job back to a worker"
        );
        let claim = jobs.claim(&job.id, "worker-2", Duration::from_secs(60)).await?;
        assert!(matches!(claim, Claim::Gone), "{claim:?}");
        let cancelled = jobs.get(&job.id).await?.ok_or_else(|| anyhow::anyhow!("job"))?;
        assert_eq!(cancelled.state, JobState::Cancelled);
        assert!(cancelled.finished_at.is_some() && cancelled.lease_until.is_none());
        let outcomes: Vec<String> = jobs.attempts(&job.id).await?.into_iter().map(|a| a.outcome).collect();
        assert_eq!(outcomes, vec![ABANDONED.to_owned()]);
        assert!(jobs.stranded(Duration::ZERO, 10).await?.is_empty());
        Ok(())
    }

    #[tokio::test]
    async fn a_cancelled_job_that_fails_is_not_retried() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let (jobs, book_id, file) = store_with_book(&dir).await?;
        let job = jobs.create_ingest_job(&book_id, &file, 3, None).await?;
        let Claim::Claimed(claimed) = jobs.claim(&job.id, "worker-1", Duration::from_secs(60)).await? else {
            anyhow::bail!("not claimed");
        };
        jobs.request_cancel(&job.id).await?;
        // A stage fails before the worker notices the request: the job ends, no retry.
        let failed = Outcome::Failed {
            stage: Stage::Graph,
            error: "graph store unreachable".into(),
            retryable: true,
            retry_delay: Duration::ZERO,
        };
        assert_eq!(jobs.finish(&claimed, "worker-1", failed).await?, JobState::Cancelled);
        assert_eq!(state_of(&jobs, &job.id).await?, JobState::Cancelled);
        Ok(())
    }

    async fn live_jobs(jobs: &JobStore, book_id: &str) -> anyhow::Result<usize> {
        Ok(job::Entity::find()
            .filter(job::Column::BookId.eq(book_id))
            .filter(job::Column::State.is_in(JobState::LIVE.map(JobState::as_str)))
            .count(&jobs.db)
            .await? as usize)
    }

    #[tokio::test]
    async fn a_book_has_one_live_job_at_most() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let (jobs, book_id, file) = store_with_book(&dir).await?;
        let first = jobs.create_ingest_job(&book_id, &file, 3, None).await?;
        // Two uploads that both passed the API's check: the second is refused by the database.
        let second = jobs.create_ingest_job(&book_id, &file, 3, None).await;
        assert!(second.as_ref().is_err_and(|err| err.is::<BookBusy>()), "{second:?}");
        assert_eq!(live_jobs(&jobs, &book_id).await?, 1);
        // So is a job for a book deleted meanwhile: no job row without its book.
        crate::catalog::Catalog::new(jobs.db.clone())
            .delete_book(&book_id)
            .await?;
        let orphan = jobs.create_ingest_job(&book_id, &file, 3, None).await;
        assert!(orphan.is_err(), "{orphan:?}");
        assert!(jobs.get(&first.id).await?.is_none());
        assert_eq!(job::Entity::find().count(&jobs.db).await?, 0);
        Ok(())
    }

    #[tokio::test]
    async fn only_the_latest_job_of_a_book_runs_again() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let (jobs, book_id, file) = store_with_book(&dir).await?;
        let old = jobs.create_ingest_job(&book_id, &file, 1, None).await?;
        let Claim::Claimed(claimed) = jobs.claim(&old.id, "worker-1", Duration::from_secs(60)).await? else {
            anyhow::bail!("not claimed");
        };
        let refused = Outcome::Failed {
            stage: Stage::ExtractText,
            error: "encrypted".into(),
            retryable: false,
            retry_delay: Duration::ZERO,
        };
        assert_eq!(jobs.finish(&claimed, "worker-1", refused).await?, JobState::Dead);
        // A newer upload of the book succeeds...
        let newer = jobs.create_ingest_job(&book_id, &file, 1, None).await?;
        let Claim::Claimed(claimed) = jobs.claim(&newer.id, "worker-1", Duration::from_secs(60)).await? else {
            anyhow::bail!("not claimed");
        };
        let ready = Outcome::Succeeded {
            book_status: BookStatus::Ready,
        };
        jobs.finish(&claimed, "worker-1", ready).await?;
        // ... and the old dead job, whose file the book no longer has, cannot run again.
        let requeued = jobs.requeue(&old.id, &[JobState::Dead], 3).await?;
        assert!(matches!(requeued, Requeue::Superseded), "{requeued:?}");
        assert_eq!(state_of(&jobs, &old.id).await?, JobState::Dead);
        let book = crate::catalog::Catalog::new(jobs.db.clone())
            .book(&book_id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("book"))?;
        assert_eq!(book.status, BookStatus::Ready);
        // The latest runs again.
        assert!(matches!(
            jobs.requeue(&newer.id, &[JobState::Succeeded], 3).await?,
            Requeue::Queued(_)
        ));
        Ok(())
    }

    #[tokio::test]
    async fn a_book_being_deleted_takes_no_new_claim() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let (jobs, book_id, file) = store_with_book(&dir).await?;
        let job = jobs.create_ingest_job(&book_id, &file, 3, None).await?;
        assert!(
            jobs.stop_for_delete(&book_id).await?,
            "nothing runs: the delete may go on"
        );
        assert_eq!(state_of(&jobs, &job.id).await?, JobState::Cancelled);
        let claim = jobs.claim(&job.id, "worker-1", Duration::from_secs(60)).await?;
        assert!(matches!(claim, Claim::Gone), "{claim:?}");
        // A running job keeps its book: the delete is refused and nothing changes.
        let newer = jobs.create_ingest_job(&book_id, &file, 3, None).await?;
        jobs.claim(&newer.id, "worker-1", Duration::from_secs(60)).await?;
        assert!(!jobs.stop_for_delete(&book_id).await?);
        assert_eq!(state_of(&jobs, &newer.id).await?, JobState::Running);
        Ok(())
    }

    #[tokio::test]
    async fn a_job_whose_workers_keep_dying_ends_in_the_dlq() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("jobs.db").display());
        let db = crate::db::connect(&url, 2, true).await?;
        let book = crate::catalog::Catalog::new(db.clone())
            .create_book("A Book", None)
            .await?;
        let jobs = JobStore::new(db);
        let file = StoredFile {
            sha256: ContentHash::from_digest(&[7; 32]),
            size_bytes: 10,
            content_type: "application/pdf".into(),
            original_name: None,
        };
        let job = jobs.create_ingest_job(&book.id, &file, 2, None).await?;
        // Each worker takes the job with a lease that has already run out, as if killed at once.
        let expired = Duration::ZERO;
        for worker in ["worker-1", "worker-2"] {
            let claim = jobs.claim(&job.id, worker, expired).await?;
            assert!(matches!(claim, Claim::Claimed(_)), "{worker} takes the job over");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let claim = jobs.claim(&job.id, "worker-3", Duration::from_secs(60)).await?;
        assert!(matches!(claim, Claim::Gone), "no third attempt of two");
        let dead = jobs.get(&job.id).await?.ok_or_else(|| anyhow::anyhow!("job"))?;
        assert_eq!(dead.state, JobState::Dead);
        assert_eq!(dead.attempts, 2);
        assert!(
            dead.error.as_deref().is_some_and(|e| e.contains("lost")),
            "{:?}",
            dead.error
        );
        assert!(dead.finished_at.is_some() && dead.lease_until.is_none());
        let outcomes: Vec<String> = jobs.attempts(&job.id).await?.into_iter().map(|a| a.outcome).collect();
        assert_eq!(outcomes, vec![ABANDONED.to_owned(), ABANDONED.to_owned()]);
        let book = crate::catalog::Catalog::new(jobs.db.clone())
            .book(&book.id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("book"))?;
        assert_eq!(book.status, BookStatus::Failed);
        Ok(())
    }
}
