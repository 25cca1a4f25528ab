//! The `embed` and `index_vectors` stages: a vector per chunk, computed only for text no
//! earlier run embedded with the same model (vectors are looked up by the chunk text's
//! hash first), then stored for the book in one replace.

use std::collections::HashSet;

use tokio_util::sync::CancellationToken;

use super::{Pipeline, StageError, anyhow_at};
use crate::chunking::Chunk;
use crate::db::entities::job;
use crate::domain::Stage;
use crate::embeddings::Embedder;
use crate::vectors::ChunkVector;

/// Chunks per call to the model: large enough to batch well, small enough to report
/// progress and notice a cancel request often.
const EMBED_BATCH: usize = 64;

/// What the embed stages did.
pub(super) enum Embedded {
    /// Vectors stored for the book.
    Stored(u64),
    Cancelled,
}

impl Pipeline {
    pub(super) async fn embed_chunks(
        &self,
        job: &job::Model,
        embedder: &dyn Embedder,
        chunks: &[Chunk],
        cancel: &CancellationToken,
    ) -> Result<Embedded, StageError> {
        self.stage(job, Stage::Embed).await?;
        let model = embedder.model().to_owned();
        let hashes: Vec<String> = chunks.iter().map(Chunk::content_hash).collect();
        let vectors = &self.backends.vectors;
        let mut known = vectors.cached(&model, &hashes).await.map_err(anyhow_at(Stage::Embed))?;
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
                return Ok(Embedded::Cancelled);
            }
            let texts: Vec<String> = batch.iter().map(|(_, chunk)| chunk.embedding_text()).collect();
            let embedded = embedder.embed(&texts).await.map_err(anyhow_at(Stage::Embed))?;
            if embedded.len() != batch.len() {
                return Err(StageError::retryable(
                    Stage::Embed,
                    format!(
                        "the model returned {} vectors for {} texts",
                        embedded.len(),
                        batch.len()
                    ),
                ));
            }
            for ((hash, _), vector) in batch.iter().zip(embedded) {
                known.insert((*hash).clone(), vector);
            }
            crate::metrics::embeddings_generated(batch.len() as u64);
            done = done.saturating_add(u32::try_from(batch.len()).unwrap_or(u32::MAX));
            self.backends
                .jobs
                .report_progress(&job.id, Stage::Embed, done, total)
                .await
                .map_err(anyhow_at(Stage::Embed))?;
        }
        tracing::info!(
            chunks = chunks.len(),
            embedded = missing.len(),
            reused = chunks.len() - missing.len(),
            model = %model,
            "chunks embedded"
        );

        self.stage(job, Stage::IndexVectors).await?;
        let rows: Vec<ChunkVector> = chunks
            .iter()
            .zip(&hashes)
            .filter_map(|(chunk, hash)| {
                known.get(hash).map(|embedding| ChunkVector {
                    chunk_id: chunk.id(&job.book_id),
                    book_id: job.book_id.clone(),
                    content_hash: hash.clone(),
                    embedding: embedding.clone(),
                })
            })
            .collect();
        vectors
            .replace_book(&job.book_id, &model, &rows)
            .await
            .map_err(anyhow_at(Stage::IndexVectors))?;
        let stored = vectors
            .count(&job.book_id)
            .await
            .map_err(anyhow_at(Stage::IndexVectors))?;
        Ok(Embedded::Stored(stored))
    }
}
