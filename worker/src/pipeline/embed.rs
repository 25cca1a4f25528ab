//! The `embed` and `index_vectors` stages: a vector per chunk, computed only for text no
//! earlier run embedded with the same model (vectors are looked up by the chunk text's
//! hash first), then stored for the book in one replace.

use std::collections::{HashMap, HashSet};

use hbi_shared::chunking::Chunk;
use hbi_shared::db::entities::job;
use hbi_shared::domain::Stage;
use hbi_shared::embeddings::Embedder;
use hbi_shared::vectors::ChunkVector;
use tokio_util::sync::CancellationToken;

use super::{Failure, Pipeline, StageResult, Step};

/// Chunks per call to the model: large enough to batch well, small enough to report
/// progress and notice a cancel request often.
const EMBED_BATCH: usize = 64;

/// A vector for each distinct chunk text, by the text's hash.
pub(super) type VectorsByHash = HashMap<String, Vec<f32>>;

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
        let mut seen = HashSet::new();
        let missing: Vec<(&String, &Chunk)> = hashes
            .iter()
            .zip(chunks)
            .filter(|(hash, _)| !known.contains_key(*hash) && seen.insert(*hash))
            .collect();
        let total = u32::try_from(missing.len()).unwrap_or(u32::MAX);
        let mut done = 0u32;
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
            for ((hash, _), vector) in batch.iter().zip(embedded) {
                known.insert((*hash).clone(), vector);
            }
            hbi_shared::metrics::embeddings_generated(batch.len() as u64);
            done = done.saturating_add(u32::try_from(batch.len()).unwrap_or(u32::MAX));
            self.backends
                .jobs
                .report_progress(&job.id, Stage::Embed, done, total)
                .await?;
        }
        tracing::info!(
            chunks = chunks.len(),
            embedded = missing.len(),
            reused = chunks.len() - missing.len(),
            model = %model,
            "chunks embedded"
        );
        Ok(Step::Next(known))
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
