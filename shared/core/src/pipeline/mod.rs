//! The book pipeline, run by a worker for each delivered job:
//! validate -> store -> extract_text (child process) -> toc -> index -> chunk -> index_text ->
//! graph -> quality.
//!
//! Every stage writes idempotently (replace-by-book), so a job delivered twice leaves one
//! copy of everything. Failures are classified: a refused input goes straight to the
//! dead-letter state, anything else is retried with exponential backoff until
//! `max_attempts`, then dead.

mod embed;
pub mod extractor;

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use self::extractor::{ExtractorConfig, ExtractorFailure, extract_in_child};
use crate::backends::Backends;
use crate::db::entities::job;
use crate::domain::{BookStatus, ContentHash, JobMessage, JobState, Stage};
use crate::graph::{BookGraph, chapters_from_flat_toc, index_terms_from_entries};
use crate::jobs::JobHandler;
use crate::jobs::relay;
use crate::jobs::store::{Claim, Outcome};
use crate::text_index::IndexedPage;
use hbi_extraction::{Extraction, PageText};

/// How often a running job looks for a cancel request and writes its progress.
const WATCH_INTERVAL: Duration = Duration::from_millis(500);

/// Added to a lease before looking at a held job again, so the lease has surely run out.
const LEASE_SLACK: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
pub struct PipelineSettings {
    pub worker_id: String,
    /// How long a claimed job stays ours without a heartbeat.
    pub lease: Duration,
    pub retry_base_delay: Duration,
    pub max_file_bytes: u64,
    pub extractor: ExtractorConfig,
    pub scratch_dir: std::path::PathBuf,
    pub chunk_sizes: crate::chunking::ChunkSizes,
}

pub struct Pipeline {
    backends: Backends,
    settings: PipelineSettings,
    /// Claims that failed in a row because the database could not be reached: the worker
    /// waits longer after each before handling the next message.
    unreachable_claims: AtomicU32,
}

/// Longest pause between claims while the database is unreachable.
const MAX_CLAIM_BACKOFF: Duration = Duration::from_secs(30);

/// Why a stage failed, and whether trying again could help.
#[derive(Debug)]
struct StageError {
    stage: Stage,
    message: String,
    retryable: bool,
}

impl StageError {
    fn retryable(stage: Stage, err: impl std::fmt::Display) -> Self {
        Self {
            stage,
            message: err.to_string(),
            retryable: true,
        }
    }

    fn refused(stage: Stage, message: impl Into<String>) -> Self {
        Self {
            stage,
            message: message.into(),
            retryable: false,
        }
    }
}

fn anyhow_at(stage: Stage) -> impl Fn(anyhow::Error) -> StageError {
    move |err| StageError::retryable(stage, format!("{err:#}"))
}

enum RunEnd {
    Done(BookStatus),
    Cancelled,
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

    async fn stage(&self, job: &job::Model, stage: Stage) -> Result<(), StageError> {
        stage_clock::start(stage);
        tracing::info!(job_id = %job.id, book_id = %job.book_id, stage = %stage, "stage started");
        self.backends
            .jobs
            .set_stage(&job.id, stage)
            .await
            .map_err(anyhow_at(stage))
    }

    async fn run(&self, job: &job::Model, cancel: &CancellationToken) -> Result<RunEnd, StageError> {
        let jobs = &self.backends.jobs;
        let hash: ContentHash = job
            .file_sha256
            .parse()
            .map_err(|err: String| StageError::refused(Stage::Validate, err))?;
        tokio::fs::create_dir_all(&self.settings.scratch_dir)
            .await
            .map_err(|err| StageError::retryable(Stage::Validate, err))?;
        let scratch = tempfile::Builder::new()
            .prefix("hbi-job-")
            .tempdir_in(&self.settings.scratch_dir)
            .map_err(|err| StageError::retryable(Stage::Validate, err))?;
        let local_pdf = scratch.path().join("book.pdf");

        self.stage(job, Stage::Validate).await?;
        self.backends
            .blobs
            .fetch_to_file(&hash, &local_pdf)
            .await
            .map_err(anyhow_at(Stage::Validate))?;
        validate_file(&local_pdf, &hash, self.settings.max_file_bytes).await?;

        self.stage(job, Stage::Store).await?;
        if !self
            .backends
            .blobs
            .exists(&hash)
            .await
            .map_err(anyhow_at(Stage::Store))?
        {
            return Err(StageError::retryable(
                Stage::Store,
                "the original file is missing from the blob store",
            ));
        }

        self.stage(job, Stage::ExtractText).await?;
        let (progress_tx, progress_rx) = tokio::sync::watch::channel((0u32, 0u32));
        let progress_writer = spawn_progress_writer(jobs.clone(), job.id.clone(), progress_rx);
        let extracted = extract_in_child(&self.settings.extractor, &local_pdf, cancel, &move |done, total| {
            progress_tx.send_replace((done, total));
        })
        .await;
        progress_writer.abort();
        let extraction = match extracted {
            Ok(extraction) => extraction,
            Err(ExtractorFailure::Cancelled) => return Ok(RunEnd::Cancelled),
            Err(ExtractorFailure::InputRefused(message)) => {
                return Err(StageError::refused(Stage::ExtractText, message));
            }
            Err(err) => return Err(StageError::retryable(Stage::ExtractText, err)),
        };
        let total = extraction.page_count;
        crate::metrics::pages_processed(u64::from(total));
        if let Some(ratio) = extraction.index_support_rate {
            crate::metrics::index_locator_support(ratio);
        }
        jobs.report_progress(&job.id, Stage::ExtractText, total, total)
            .await
            .map_err(anyhow_at(Stage::ExtractText))?;
        if cancel.is_cancelled() {
            return Ok(RunEnd::Cancelled);
        }

        self.stage(job, Stage::Toc).await?;
        if extraction.toc.is_empty() {
            tracing::warn!(
                toc_source = extraction.toc_source.as_str(),
                "no table of contents found"
            );
        }

        // Pages, ToC and index are stored together: one transaction, one copy per book.
        self.stage(job, Stage::Index).await?;
        self.backends
            .catalog
            .save_extraction(&job.book_id, &extraction)
            .await
            .map_err(anyhow_at(Stage::Index))?;

        self.stage(job, Stage::Chunk).await?;
        // Contents and index pages repeat every title and term: chunks (and so vectors and
        // the answers' sources) come from the text that discusses something.
        let discussion_pages: Vec<PageText> = extraction
            .pages
            .iter()
            .filter_map(|page| {
                extraction.discussion_text(page).map(|text| PageText {
                    text: text.to_owned(),
                    ..page.clone()
                })
            })
            .collect();
        let chunks = crate::chunking::chunk_book(&discussion_pages, &extraction.toc, self.settings.chunk_sizes);
        self.backends
            .catalog
            .replace_chunks(&job.book_id, &chunks)
            .await
            .map_err(anyhow_at(Stage::Chunk))?;

        let vectors_stored = match self.backends.embedder.clone() {
            Some(embedder) => match self.embed_chunks(job, embedder.as_ref(), &chunks, cancel).await? {
                embed::Embedded::Stored(count) => Some(count),
                embed::Embedded::Cancelled => return Ok(RunEnd::Cancelled),
            },
            None => None,
        };

        self.stage(job, Stage::IndexText).await?;
        let indexed = text_index_pages(&extraction);
        self.backends
            .text
            .index_pages(&job.book_id, &indexed)
            .await
            .map_err(anyhow_at(Stage::IndexText))?;

        self.stage(job, Stage::Graph).await?;
        let title = self
            .backends
            .catalog
            .book(&job.book_id)
            .await
            .map_err(anyhow_at(Stage::Graph))?
            .map(|book| book.title)
            .unwrap_or_default();
        let flat: Vec<(u32, String, Option<u32>)> = extraction
            .toc
            .iter()
            .map(|e| (e.level, e.title.clone(), e.page))
            .collect();
        let graph = BookGraph {
            book_id: job.book_id.clone(),
            content_hash: hash.to_string(),
            title,
            page_labels: extraction.page_labels.clone(),
            chapters: chapters_from_flat_toc(&flat),
            index_terms: index_terms_from_entries(&extraction.index),
        };
        self.backends
            .graph
            .write_book(&graph)
            .await
            .map_err(anyhow_at(Stage::Graph))?;

        self.stage(job, Stage::Quality).await?;
        let stored = crate::quality::StoredCounts {
            chunks: chunks.len() as u64,
            vectors: vectors_stored,
        };
        // Thresholds are live knobs: read for each run, so a change applies to the next book.
        let knobs = self.backends.knobs.get().await.map_err(anyhow_at(Stage::Quality))?;
        let thresholds = crate::quality::QualityThresholds {
            min_text_coverage: knobs.min_text_coverage,
            max_garbage_ratio: knobs.max_garbage_ratio,
            min_index_support_rate: knobs.min_index_support_rate,
        };
        let gates = crate::quality::assess(&extraction, stored, &thresholds);
        self.backends
            .catalog
            .replace_quality(&job.book_id, &job.id, &gates)
            .await
            .map_err(anyhow_at(Stage::Quality))?;
        for gate in &gates {
            crate::metrics::quality_gate(gate.gate, gate.passed);
        }
        let failed: Vec<&str> = gates.iter().filter(|g| !g.passed).map(|g| g.gate).collect();
        if failed.is_empty() {
            Ok(RunEnd::Done(BookStatus::Ready))
        } else {
            tracing::warn!(gates = ?failed, "quality gates failed; the book needs review");
            Ok(RunEnd::Done(BookStatus::NeedsReview))
        }
    }
}

/// The pages as the full-text index gets them. A contents or index page is indexed by what
/// it discusses (the end of a chapter above an index heading) and the titles of the ToC
/// entries that start on it ("Concept Index"), or not at all: its listing names every section
/// and term of the book and would match every query about them.
fn text_index_pages(extraction: &Extraction) -> Vec<IndexedPage> {
    extraction
        .pages
        .iter()
        .filter_map(|page| {
            if !extraction.is_navigation_page(page.number) {
                return Some(IndexedPage {
                    number: page.number,
                    text: page.text.clone(),
                });
            }
            let text: Vec<&str> = extraction
                .discussion_text(page)
                .into_iter()
                .chain(
                    extraction
                        .toc
                        .iter()
                        .filter(|entry| entry.page == Some(page.number))
                        .map(|entry| entry.title.as_str()),
                )
                .collect();
            (!text.is_empty()).then(|| IndexedPage {
                number: page.number,
                text: text.join("\n"),
            })
        })
        .collect()
}

/// Checks the local copy against what the upload promised: the hash, the size limit and
/// the PDF signature. Deeper checks (encryption, damage) belong to the extractor.
async fn validate_file(path: &Path, expected: &ContentHash, max_bytes: u64) -> Result<(), StageError> {
    let io = |err: std::io::Error| StageError::retryable(Stage::Validate, err);
    let size = tokio::fs::metadata(path).await.map_err(io)?.len();
    if size > max_bytes {
        return Err(StageError::refused(
            Stage::Validate,
            format!("the file is {size} bytes, over the limit of {max_bytes}"),
        ));
    }
    let mut file = tokio::fs::File::open(path).await.map_err(io)?;
    let mut hasher = Sha256::new();
    let mut head = Vec::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let read = file.read(&mut buffer).await.map_err(io)?;
        if read == 0 {
            break;
        }
        if head.len() < 1024 {
            head.extend_from_slice(&buffer[..read.min(1024 - head.len())]);
        }
        hasher.update(&buffer[..read]);
    }
    let actual = ContentHash::from_digest(&hasher.finalize());
    if &actual != expected {
        return Err(StageError::retryable(
            Stage::Validate,
            format!("stored blob hash {actual} does not match {expected}"),
        ));
    }
    hbi_extraction::validate_header(&head).map_err(|err| StageError::refused(Stage::Validate, err.to_string()))
}

/// Writes the latest `(done, total)` to the job row, at most every [`WATCH_INTERVAL`].
fn spawn_progress_writer(
    jobs: crate::jobs::store::JobStore,
    job_id: String,
    mut updates: tokio::sync::watch::Receiver<(u32, u32)>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while updates.changed().await.is_ok() {
            let (done, total) = *updates.borrow_and_update();
            if let Err(err) = jobs.report_progress(&job_id, Stage::ExtractText, done, total).await {
                tracing::warn!(job_id = %job_id, error = %format!("{err:#}"), "could not record progress");
            }
            tokio::time::sleep(WATCH_INTERVAL).await;
        }
    })
}

/// Cancels `token` when the job's cancel flag is set in the database.
fn spawn_cancel_watch(
    jobs: crate::jobs::store::JobStore,
    job_id: String,
    token: CancellationToken,
) -> tokio::task::JoinHandle<()> {
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

#[async_trait]
impl JobHandler for Pipeline {
    async fn handle(&self, message: JobMessage) -> anyhow::Result<()> {
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
        crate::trace_context::continue_stored(&span, stored);
    }
    if let Some(trace_id) = crate::trace_context::trace_id(&span) {
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
        let span = tracing::Span::current();
        span.record("outcome", state.as_str());
        if matches!(state, JobState::Failed | JobState::Dead) {
            span.record("otel.status_code", "ERROR");
        }
        crate::metrics::job_finished(state);
        if state == JobState::Succeeded {
            crate::metrics::book_ingested();
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

/// Times the stages of one job attempt for `hbi_job_stage_duration_seconds`, and gives each a
/// `stage` span (a child of the job's span) over the same time: a stage lasts from its
/// [`start`] to the next stage's, or to the end of the attempt (a failed or cancelled stage
/// included). The clock is local to the attempt's task, so the stages of `run` need no
/// bookkeeping of their own.
mod stage_clock {
    use std::cell::RefCell;
    use std::future::Future;
    use std::time::Instant;

    use crate::domain::Stage;

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
            crate::metrics::stage_duration(stage, started.elapsed().as_secs_f64());
        }
    }
}

#[cfg(test)]
mod tests {
    use hbi_extraction::{IndexInfo, TocEntry, TocSource};

    use super::*;

    fn page(number: u32, text: &str) -> PageText {
        PageText {
            number,
            label: number.to_string(),
            text: text.into(),
        }
    }

    #[test]
    fn navigation_pages_reach_the_text_index_by_their_title_only() {
        let extraction = Extraction {
            page_count: 5,
            page_labels: (1..=5).map(|n| n.to_string()).collect(),
            toc_source: TocSource::Outline,
            toc: vec![
                TocEntry {
                    level: 1,
                    title: "Contents".into(),
                    page: Some(1),
                },
                TocEntry {
                    level: 1,
                    title: "Graphs".into(),
                    page: Some(3),
                },
                TocEntry {
                    level: 1,
                    title: "Concept Index".into(),
                    page: Some(4),
                },
            ],
            index: Vec::new(),
            indices: vec![IndexInfo {
                name: "Concept Index".into(),
                physical_pages: [4, 5],
                entries: 40,
                nesting_depth: 1,
                sibling_order: Some(1.0),
            }],
            contents_pages: vec![[1, 2]],
            index_support_rate: None,
            signals: hbi_extraction::StructureSignals::default(),
            pages: vec![
                page(1, "Contents\nGraphs 3\nConcept Index 4"),
                page(2, "Trees 3"),
                page(3, "Graphs are made of vertices and edges."),
                page(4, "the last words of Graphs.\nConcept Index\nedge, 3\nvertex, 3"),
                page(5, "tree, 3"),
            ],
            warnings: Vec::new(),
        };
        let indexed: Vec<(u32, String)> = text_index_pages(&extraction)
            .into_iter()
            .map(|page| (page.number, page.text))
            .collect();
        assert_eq!(
            indexed,
            vec![
                (1, "Contents".to_string()),
                (3, "Graphs are made of vertices and edges.".to_string()),
                (4, "the last words of Graphs.\nConcept Index".to_string()),
            ]
        );
        assert!(!extraction.is_navigation_page(3));
        let discussed: Vec<Option<&str>> = extraction
            .pages
            .iter()
            .map(|page| extraction.discussion_text(page))
            .collect();
        assert_eq!(
            discussed,
            vec![
                None,
                None,
                Some("Graphs are made of vertices and edges."),
                Some("the last words of Graphs."),
                None
            ]
        );
    }
}
