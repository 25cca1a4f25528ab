//! The `embed` and `index_vectors` stages: a vector per chunk, computed only for text no
//! earlier run embedded with the same model (vectors are looked up by the chunk text's
//! hash first), then stored for the book in one replace.
//!
//! A book with more chunks to embed than one part holds (`worker.part_chunks`) is embedded
//! in parts that any worker takes (`hbi_shared::jobs::parts`): the book's job puts a message
//! per part on the queue, runs parts itself while other workers run the rest, and gathers
//! their vectors when every part is done.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use hbi_shared::chunking::Chunk;
use hbi_shared::db::entities::job;
use hbi_shared::domain::{JobMessage, JobState, Stage};
use hbi_shared::embeddings::Embedder;
use hbi_shared::jobs::parts::PartRange;
use hbi_shared::jobs::store::JobStore;
use hbi_shared::vectors::ChunkVector;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{Failure, Pipeline, StageResult, Step, WATCH_INTERVAL, spawn_cancel_watch};

/// Chunks per call to the model: large enough to batch well, small enough to report
/// progress and notice a cancel request often.
const EMBED_BATCH: usize = 64;

/// A vector for each distinct chunk text, by the text's hash.
pub(super) type VectorsByHash = HashMap<String, Vec<f32>>;

/// Chunks whose hash has no vector in `known`, each distinct text once.
fn missing<'a>(chunks: &'a [Chunk], known: &VectorsByHash) -> Vec<(String, &'a Chunk)> {
    let mut seen = HashSet::new();
    chunks
        .iter()
        .map(|chunk| (chunk.content_hash(), chunk))
        .filter(|(hash, _)| !known.contains_key(hash) && seen.insert(hash.clone()))
        .collect()
}

impl Pipeline {
    /// `embed`: a vector for every chunk, those of earlier runs with the same model reused.
    pub(super) async fn embed(
        &self,
        job: &job::Model,
        embedder: &dyn Embedder,
        chunks: &[Chunk],
        cancel: &CancellationToken,
    ) -> StageResult<Step<VectorsByHash>> {
        let model = embedder.model().to_owned();
        let hashes: Vec<String> = chunks.iter().map(Chunk::content_hash).collect();
        let mut known = self.backends.vectors.cached(&model, &hashes).await?;
        let missing = missing(chunks, &known);
        let embedded = missing.len();
        let part_chunks = self.settings.part_chunks as usize;
        let fresh = if part_chunks > 0 && missing.len() > part_chunks {
            self.embed_in_parts(job, embedder, chunks, &known, cancel).await?
        } else {
            let progress = Progress {
                jobs: &self.backends.jobs,
                job_id: &job.id,
                total: u32::try_from(missing.len()).unwrap_or(u32::MAX),
            };
            embed_batches(embedder, &missing, cancel, Some(progress))
                .await?
                .map(|vectors| vectors.into_iter().collect())
        };
        let Step::Next(fresh) = fresh else {
            return Ok(Step::Cancelled);
        };
        known.extend(fresh);
        tracing::info!(
            chunks = chunks.len(),
            embedded,
            reused = chunks.len() - embedded,
            model = %model,
            "chunks embedded"
        );
        Ok(Step::Next(known))
    }

    /// The book's chunks embedded in parts (see the module's note), `known` the vectors
    /// stored already: answers the parts' vectors once every part is done.
    async fn embed_in_parts(
        &self,
        job: &job::Model,
        embedder: &dyn Embedder,
        chunks: &[Chunk],
        known: &VectorsByHash,
        cancel: &CancellationToken,
    ) -> StageResult<Step<VectorsByHash>> {
        let jobs = &self.backends.jobs;
        let count = u32::try_from(chunks.len()).unwrap_or(u32::MAX);
        let open = jobs.lay_out_parts(&job.id, count, self.settings.part_chunks).await?;
        tracing::info!(
            parts = open.len(),
            chunks = count,
            "the book's chunks are embedded in parts"
        );
        for range in &open {
            // An unreachable queue only means this worker runs more of the parts itself.
            if let Err(err) = self
                .backends
                .queue
                .enqueue(&JobMessage::part(&job.id, range.part), Duration::ZERO)
                .await
            {
                tracing::warn!(part = range.part, error = %format!("{err:#}"), "part left to this worker");
            }
        }
        let mut reported = None;
        loop {
            if cancel.is_cancelled() {
                return Ok(Step::Cancelled);
            }
            let claimed = jobs
                .claim_next_part(&job.id, &self.settings.worker_id, self.settings.lease, job.max_attempts)
                .await?;
            if let Some(range) = claimed {
                let first = range.first_chunk as usize;
                let end = (range.end_chunk as usize).min(chunks.len());
                let part = chunks.get(first..end).unwrap_or_default();
                if let Step::Cancelled = self.run_part(job, embedder, range, part, known, cancel).await? {
                    return Ok(Step::Cancelled);
                }
            }
            let progress = jobs.parts_progress(&job.id, job.max_attempts).await?;
            if reported != Some(progress.chunks_done) {
                jobs.report_progress(&job.id, Stage::Embed, progress.chunks_done, progress.chunks)
                    .await?;
                reported = Some(progress.chunks_done);
            }
            if progress.finished() {
                break;
            }
            if let Some((part, error)) = progress.given_up {
                return Err(Failure::Retryable(format!(
                    "part {part} of the book's chunks failed on every attempt: {error}"
                )));
            }
            if claimed.is_none() {
                // Every part left is another worker's: wait for them (or for a lease to run out).
                tokio::select! {
                    () = tokio::time::sleep(WATCH_INTERVAL) => {}
                    () = cancel.cancelled() => return Ok(Step::Cancelled),
                }
            }
        }
        Ok(Step::Next(jobs.part_vectors(&job.id).await?))
    }

    /// Embeds one claimed part (`chunks` are its chunks, `known` vectors stored already) and
    /// commits its vectors; a part that fails or is cancelled goes back to the queue.
    async fn run_part(
        &self,
        job: &job::Model,
        embedder: &dyn Embedder,
        range: PartRange,
        chunks: &[Chunk],
        known: &VectorsByHash,
        cancel: &CancellationToken,
    ) -> StageResult<Step<()>> {
        let jobs = &self.backends.jobs;
        let worker_id = &self.settings.worker_id;
        let started = std::time::Instant::now();
        let missing = missing(chunks, known);
        match embed_batches(embedder, &missing, cancel, None).await {
            Ok(Step::Next(vectors)) => {
                if jobs.finish_part(&job.id, range.part, worker_id, &vectors).await? {
                    hbi_shared::metrics::job_part_finished("done");
                    tracing::info!(
                        part = range.part,
                        chunks = range.len(),
                        embedded = vectors.len(),
                        seconds = started.elapsed().as_secs_f64(),
                        "part embedded"
                    );
                } else {
                    hbi_shared::metrics::job_part_finished("taken_over");
                    tracing::warn!(
                        part = range.part,
                        "part taken over by another worker meanwhile; its result stands"
                    );
                }
                Ok(Step::Next(()))
            }
            Ok(Step::Cancelled) => {
                jobs.release_part(&job.id, range.part, worker_id, None).await?;
                hbi_shared::metrics::job_part_finished("cancelled");
                Ok(Step::Cancelled)
            }
            Err(failure) => {
                let message = match &failure {
                    Failure::Retryable(message) | Failure::Refused(message) => message.clone(),
                };
                tracing::warn!(part = range.part, error = %message, "part failed; back to the queue");
                hbi_shared::metrics::job_part_finished("failed");
                jobs.release_part(&job.id, range.part, worker_id, Some(&message))
                    .await?;
                Ok(Step::Next(()))
            }
        }
    }

    /// A delivered part message: the part is run here if it is still to do and its job is
    /// running; otherwise the message is dropped (whoever runs the job waits for its parts
    /// and takes any whose worker died).
    pub(super) async fn handle_part(&self, job_id: &str, part: u32) -> anyhow::Result<()> {
        let Some(embedder) = self.backends.embedder.clone() else {
            tracing::debug!(job_id, part, "part message dropped: this worker has no embedding model");
            return Ok(());
        };
        let jobs = &self.backends.jobs;
        let Some(job) = jobs.get(job_id).await? else {
            return Ok(());
        };
        if job.state != JobState::Running || job.cancel_requested {
            return Ok(());
        }
        let Some(range) = jobs
            .claim_part(
                job_id,
                part,
                &self.settings.worker_id,
                self.settings.lease,
                job.max_attempts,
            )
            .await?
        else {
            tracing::debug!(
                job_id,
                part,
                "part message dropped: done, held elsewhere or its job ended"
            );
            return Ok(());
        };
        let span = tracing::info_span!(
            "part",
            otel.name = "job part",
            otel.kind = "consumer",
            job_id = %job.id,
            book_id = %job.book_id,
            part,
        );
        if let Some(stored) = job.trace_context.as_deref() {
            hbi_shared::trace_context::continue_stored(&span, stored);
        }
        async {
            let (chunks, known) = match self.part_input(&job, embedder.model(), range).await {
                Ok(input) => input,
                Err(err) => {
                    jobs.release_part(job_id, part, &self.settings.worker_id, Some(&format!("{err:#}")))
                        .await?;
                    return Err(err);
                }
            };
            let cancel = CancellationToken::new();
            let watcher = spawn_cancel_watch(jobs.clone(), job.id.clone(), cancel.clone());
            let outcome = self
                .run_part(&job, embedder.as_ref(), range, &chunks, &known, &cancel)
                .await;
            watcher.abort();
            if let Err(Failure::Retryable(message) | Failure::Refused(message)) = outcome {
                anyhow::bail!("part {part} of job {job_id}: {message}");
            }
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// What a part delivered to another worker embeds: its chunks, read back from the catalog,
    /// and the vectors of `model` stored for them already.
    async fn part_input(
        &self,
        job: &job::Model,
        model: &str,
        range: PartRange,
    ) -> anyhow::Result<(Vec<Chunk>, VectorsByHash)> {
        let chunks = self
            .backends
            .catalog
            .chunks_between(&job.book_id, range.first_chunk, range.end_chunk)
            .await?;
        anyhow::ensure!(
            chunks.len() == range.len() as usize,
            "part {} should hold {} chunks, the book has {} there",
            range.part,
            range.len(),
            chunks.len()
        );
        let hashes: Vec<String> = chunks.iter().map(Chunk::content_hash).collect();
        let known = self.backends.vectors.cached(model, &hashes).await?;
        Ok((chunks, known))
    }

    /// `index_vectors`: the book's vectors replace those it had; answers how many it has now.
    pub(super) async fn index_vectors(
        &self,
        job: &job::Model,
        model: &str,
        chunks: &[Chunk],
        vectors: &VectorsByHash,
    ) -> StageResult<u64> {
        let rows: Vec<ChunkVector> = chunks
            .iter()
            .filter_map(|chunk| {
                let hash = chunk.content_hash();
                vectors.get(&hash).map(|embedding| ChunkVector {
                    chunk_id: chunk.id(&job.book_id),
                    book_id: job.book_id.clone(),
                    content_hash: hash,
                    embedding: embedding.clone(),
                })
            })
            .collect();
        let store = &self.backends.vectors;
        store.replace_book(&job.book_id, model, &rows).await?;
        Ok(store.count(&job.book_id).await?)
    }
}

/// Where [`embed_batches`] writes its progress: the job's row, out of `total`.
struct Progress<'a> {
    jobs: &'a JobStore,
    job_id: &'a str,
    total: u32,
}

/// Embeds `missing` (hash, chunk) in batches of [`EMBED_BATCH`], writing the count done to
/// `progress` after each; stops between batches when `cancel` fires.
async fn embed_batches(
    embedder: &dyn Embedder,
    missing: &[(String, &Chunk)],
    cancel: &CancellationToken,
    progress: Option<Progress<'_>>,
) -> StageResult<Step<Vec<(String, Vec<f32>)>>> {
    let mut vectors = Vec::with_capacity(missing.len());
    for batch in missing.chunks(EMBED_BATCH) {
        if cancel.is_cancelled() {
            return Ok(Step::Cancelled);
        }
        let texts: Vec<String> = batch.iter().map(|(_, chunk)| chunk.embedding_text()).collect();
        let embedded = embedder.embed(&texts).await?;
        if embedded.len() != batch.len() {
            return Err(Failure::Retryable(format!(
                "the model returned {} vectors for {} texts",
                embedded.len(),
                batch.len()
            )));
        }
        vectors.extend(batch.iter().map(|(hash, _)| hash.clone()).zip(embedded));
        hbi_shared::metrics::embeddings_generated(batch.len() as u64);
        if let Some(progress) = &progress {
            let done = u32::try_from(vectors.len()).unwrap_or(u32::MAX);
            progress
                .jobs
                .report_progress(progress.job_id, Stage::Embed, done, progress.total)
                .await?;
        }
    }
    Ok(Step::Next(vectors))
}
