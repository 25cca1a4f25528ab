//! The book pipeline, run by a worker for each delivered job:
//! validate -> store -> extract_text (child process) -> toc -> index -> chunk -> embed ->
//! index_vectors -> index_text -> graph -> quality.
//!
//! This module is the job handling around the stages: the claim (and what to do with a
//! message whose job is held elsewhere or whose database is down), the job's span, the cancel
//! watch, the end of an attempt (succeeded, retried with exponential backoff until
//! `max_attempts`, dead, cancelled) and the stage wrapper every stage runs in. The stages
//! themselves are one function each in `stages.rs` and `embed.rs`.
//!
//! Every stage writes idempotently (replace-by-book), so a job delivered twice leaves one
//! copy of everything. Failures are classified: a refused input goes straight to the
//! dead-letter state, anything else is retried.

mod embed;
mod stages;

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use hbi_shared::backends::Backends;
use hbi_shared::db::entities::job;
use hbi_shared::domain::{BookStatus, JobMessage, JobState, Stage};
use hbi_shared::jobs::JobHandler;
use hbi_shared::jobs::relay;
use hbi_shared::jobs::store::{Claim, JobStore, Outcome};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::extractor::ExtractorConfig;

/// How often a running job looks for a cancel request and writes its progress.
const WATCH_INTERVAL: Duration = Duration::from_millis(500);

/// Added to a lease before looking at a held job again, so the lease has surely run out.
const LEASE_SLACK: Duration = Duration::from_millis(500);

/// Longest pause between claims while the database is unreachable.
const MAX_CLAIM_BACKOFF: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct PipelineSettings {
    pub worker_id: String,
    /// How long a claimed job stays ours without a heartbeat.
    pub lease: Duration,
    pub retry_base_delay: Duration,
    pub max_file_bytes: u64,
    pub extractor: ExtractorConfig,
    pub scratch_dir: std::path::PathBuf,
    pub chunk_sizes: hbi_shared::chunking::ChunkSizes,
    /// Chunks to embed in one part of a large book's job; 0: a book is never cut.
    pub part_chunks: u32,
}

pub struct Pipeline {
    backends: Backends,
    settings: PipelineSettings,
    /// Claims that failed in a row because the database could not be reached: the worker
    /// waits longer after each before handling the next message.
    unreachable_claims: AtomicU32,
}

/// Why a stage failed, as the stage itself says it: whether trying again could help. The
/// stage wrapper adds which stage it was.
#[derive(Debug)]
enum Failure {
    Retryable(String),
    /// The input is unusable: no retry can help.
    Refused(String),
}

impl From<anyhow::Error> for Failure {
    fn from(err: anyhow::Error) -> Self {
        Self::Retryable(format!("{err:#}"))
    }
}

impl From<std::io::Error> for Failure {
    fn from(err: std::io::Error) -> Self {
        Self::Retryable(err.to_string())
    }
}

type StageResult<T> = Result<T, Failure>;

/// Why an attempt failed: at which stage, and whether trying again could help.
#[derive(Debug)]
struct StageError {
    stage: Stage,
    message: String,
    retryable: bool,
}

impl StageError {
    fn at(stage: Stage, failure: Failure) -> Self {
        let (message, retryable) = match failure {
            Failure::Retryable(message) => (message, true),
            Failure::Refused(message) => (message, false),
        };
        Self {
            stage,
            message,
            retryable,
        }
    }
}

/// How a run that did not fail ended.
enum RunEnd {
    Done(BookStatus),
    Cancelled,
}

/// What a stage gives back: its output, or word that the job was cancelled meanwhile.
enum Step<T> {
    Next(T),
    Cancelled,
}

impl<T> Step<T> {
    fn map<U>(self, f: impl FnOnce(T) -> U) -> Step<U> {
        match self {
            Self::Next(value) => Step::Next(f(value)),
            Self::Cancelled => Step::Cancelled,
        }
    }
}

impl Pipeline {
    pub fn new(backends: Backends, settings: PipelineSettings) -> Self {
        Self {
            backends,
            settings,
            unreachable_claims: AtomicU32::new(0),
        }
    }

    /// 0.5 s, 1 s, 2 s ... up to [`MAX_CLAIM_BACKOFF`], by consecutive failed claims.
    fn claim_backoff(&self) -> Duration {
        let failures = self.unreachable_claims.fetch_add(1, Ordering::Relaxed).min(16);
        Duration::from_millis(500)
            .saturating_mul(2u32.saturating_pow(failures))
            .min(MAX_CLAIM_BACKOFF)
    }

    fn retry_delay(&self, attempt: i32) -> Duration {
        let exponent = u32::try_from(attempt.saturating_sub(1)).unwrap_or(0).min(16);
        self.settings
            .retry_base_delay
            .saturating_mul(2u32.saturating_pow(exponent))
    }

    /// The stage wrapper: records that `job` is at `stage` (its row, its span, its clock),
    /// then runs `work`, whose failure is then this stage's.
    async fn stage<T>(
        &self,
        job: &job::Model,
        stage: Stage,
        work: impl Future<Output = StageResult<T>>,
    ) -> Result<T, StageError> {
        stage_clock::start(stage);
        tracing::info!(job_id = %job.id, book_id = %job.book_id, stage = %stage, "stage started");
        self.backends
            .jobs
            .set_stage(&job.id, stage)
            .await
            .map_err(|err| StageError::at(stage, err.into()))?;
        work.await.map_err(|failure| StageError::at(stage, failure))
    }
}

#[async_trait]
impl JobHandler for Pipeline {
    async fn handle(&self, message: JobMessage) -> anyhow::Result<()> {
        if let Some(part) = message.part {
            return self.handle_part(&message.job_id, part).await;
        }
        let jobs = &self.backends.jobs;
        let worker_id = &self.settings.worker_id;
        let claim = match jobs.claim(&message.job_id, worker_id, self.settings.lease).await {
            Ok(claim) => {
                self.unreachable_claims.store(0, Ordering::Relaxed);
                claim
            }
            Err(err) => {
                // The database is down or unreachable: hold this slot for a growing pause so the
                // worker does not spin through the queue, then put the message back.
                let pause = self.claim_backoff();
                tracing::warn!(job_id = %message.job_id, error = %format!("{err:#}"), ?pause, "cannot claim the job; the database is unreachable");
                tokio::time::sleep(pause).await;
                self.backends.queue.enqueue(&message, Duration::ZERO).await?;
                return Ok(());
            }
        };
        let job = match claim {
            Claim::Claimed(job) => *job,
            Claim::Gone => {
                tracing::debug!(job_id = %message.job_id, "message dropped: the job is finished, cancelled or deleted");
                return Ok(());
            }
            Claim::Busy { retry_at } => {
                // Never drop a message for a job someone else holds: if that worker dies, this
                // message is what brings the job back once the lease runs out.
                let delay = (retry_at - chrono::Utc::now()).to_std().unwrap_or_default() + LEASE_SLACK;
                tracing::debug!(job_id = %message.job_id, ?delay, "job held elsewhere; looking again after its lease");
                self.backends.queue.enqueue(&message, delay).await?;
                return Ok(());
            }
        };
        let span = job_span(&job);
        self.handle_claimed(job).instrument(span).await
    }
}

/// The span of one attempt at a job: a child of the uploading request's span when the job
/// carries its trace context, so the request's trace shows the work it caused, retries and
/// requeues included. Its fields (`job_id`, `book_id`, `trace_id`) reach every log line of the
/// attempt.
fn job_span(job: &job::Model) -> tracing::Span {
    let span = tracing::info_span!(
        "job",
        otel.name = "job ingest",
        otel.kind = "consumer",
        otel.status_code = tracing::field::Empty,
        job_id = %job.id,
        book_id = %job.book_id,
        attempt = job.attempts,
        outcome = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    );
    if let Some(stored) = job.trace_context.as_deref() {
        hbi_shared::trace_context::continue_stored(&span, stored);
    }
    if let Some(trace_id) = hbi_shared::trace_context::trace_id(&span) {
        span.record("trace_id", trace_id);
    }
    span
}

impl Pipeline {
    async fn handle_claimed(&self, job: job::Model) -> anyhow::Result<()> {
        let jobs = &self.backends.jobs;
        let worker_id = &self.settings.worker_id;
        tracing::info!("job started");
        let started = std::time::Instant::now();

        let cancel = CancellationToken::new();
        let watcher = spawn_cancel_watch(jobs.clone(), job.id.clone(), cancel.clone());
        let result = stage_clock::timed(self.run(&job, &cancel)).await;
        watcher.abort();

        let outcome = match result {
            Ok(RunEnd::Done(book_status)) => Outcome::Succeeded { book_status },
            Ok(RunEnd::Cancelled) => Outcome::Cancelled,
            Err(err) => Outcome::Failed {
                stage: err.stage,
                error: err.message,
                retryable: err.retryable,
                retry_delay: self.retry_delay(job.attempts),
            },
        };
        let state = jobs.finish(&job, worker_id, outcome.clone()).await?;
        // A failed attempt keeps its finished parts for the next; an ended job needs none.
        if state != JobState::Failed
            && let Err(err) = jobs.drop_parts(&job.id).await
        {
            tracing::warn!(error = %format!("{err:#}"), "the job's parts could not be removed");
        }
        let span = tracing::Span::current();
        span.record("outcome", state.as_str());
        if matches!(state, JobState::Failed | JobState::Dead) {
            span.record("otel.status_code", "ERROR");
        }
        hbi_shared::metrics::job_finished(state);
        if state == JobState::Succeeded {
            hbi_shared::metrics::book_ingested();
        }
        match (&outcome, state) {
            (Outcome::Failed { error, stage, .. }, JobState::Failed) => {
                tracing::warn!(stage = %stage, error = %error, "job failed; retry scheduled");
                if let Some(current) = jobs.get(&job.id).await? {
                    // The relay would pick it up too; publishing now saves a sweep.
                    if let Err(err) = relay::publish(jobs, self.backends.queue.as_ref(), &current).await {
                        tracing::warn!(error = %format!("{err:#}"), "retry left to the outbox relay");
                    }
                }
            }
            (Outcome::Failed { error, stage, .. }, _) => {
                tracing::error!(stage = %stage, error = %error, "job moved to the dead-letter queue")
            }
            _ => tracing::info!(state = %state, seconds = started.elapsed().as_secs_f64(), "job finished"),
        }
        Ok(())
    }
}

/// Cancels `token` when the job's cancel flag is set in the database.
fn spawn_cancel_watch(jobs: JobStore, job_id: String, token: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(WATCH_INTERVAL).await;
            if jobs.cancel_requested(&job_id).await.unwrap_or(false) {
                token.cancel();
                return;
            }
        }
    })
}

/// Times the stages of one job attempt for `hbi_job_stage_duration_seconds`, and gives each a
/// `stage` span (a child of the job's span) over the same time: a stage lasts from its
/// [`start`] to the next stage's, or to the end of the attempt (a failed or cancelled stage
/// included). The clock is local to the attempt's task, so the stages need no bookkeeping of
/// their own.
mod stage_clock {
    use std::cell::RefCell;
    use std::future::Future;
    use std::time::Instant;

    use hbi_shared::domain::Stage;

    /// A running stage; dropping its span ends the span.
    type Running = (Stage, Instant, tracing::Span);

    tokio::task_local! {
        static CURRENT: RefCell<Option<Running>>;
    }

    /// Ends the running stage, if any, and starts `stage`.
    pub(super) fn start(stage: Stage) {
        // Outside `timed` (no attempt being timed) there is nothing to record.
        let _ = CURRENT.try_with(|current| {
            // The previous stage ends before the next one's span opens.
            stop(current.take());
            let span = tracing::info_span!("stage", otel.name = %format!("stage {stage}"), stage = %stage);
            *current.borrow_mut() = Some((stage, Instant::now(), span));
        });
    }

    /// Runs one attempt with a fresh clock and records its last stage when it ends.
    pub(super) async fn timed<T>(attempt: impl Future<Output = T>) -> T {
        CURRENT
            .scope(RefCell::new(None), async {
                let output = attempt.await;
                let _ = CURRENT.try_with(|current| stop(current.take()));
                output
            })
            .await
    }

    fn stop(running: Option<Running>) {
        if let Some((stage, started, _span)) = running {
            hbi_shared::metrics::stage_duration(stage, started.elapsed().as_secs_f64());
        }
    }
}
