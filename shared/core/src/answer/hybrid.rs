//! The retriever of POST /query when an embedding model is configured: the keyword
//! retriever's ranking and the nearest chunk vectors, fused by reciprocal rank with the
//! `keyword_weight`, `semantic_weight` and `rrf_k` knobs (the same fusion as GET /search).
//!
//! Fusion orders the chunks; it says nothing about whether any of them is relevant (the best
//! of two bad lists still ranks first). So each chunk's `score`, which the
//! `relevance_threshold` gate reads, is its strongest absolute evidence instead: the share of
//! the question's content words it holds, or its cosine similarity to the question.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;

use super::keyword::retrieved_chunk;
use super::{KeywordChunkRetriever, RetrievedChunk, Retriever};
use crate::catalog::Catalog;
use crate::domain::BookFilter;
use crate::knobs::KnobStore;
use crate::search::{FusionWeights, SemanticSearch, reciprocal_rank};

/// Candidates asked of each list, relative to `top_k`, within bounds.
const POOL_FACTOR: usize = 3;
const MIN_POOL: usize = 20;
const MAX_POOL: usize = 100;

pub struct HybridChunkRetriever {
    keyword: KeywordChunkRetriever,
    semantic: Arc<dyn SemanticSearch>,
    catalog: Catalog,
    knobs: KnobStore,
}

impl HybridChunkRetriever {
    pub fn new(
        keyword: KeywordChunkRetriever,
        semantic: Arc<dyn SemanticSearch>,
        catalog: Catalog,
        knobs: KnobStore,
    ) -> Self {
        Self {
            keyword,
            semantic,
            catalog,
            knobs,
        }
    }
}

struct Fused {
    chunk: RetrievedChunk,
    fused: f64,
    evidence: f64,
}

#[async_trait]
impl Retriever for HybridChunkRetriever {
    async fn retrieve(&self, query: &str, books: &BookFilter, top_k: usize) -> anyhow::Result<Vec<RetrievedChunk>> {
        if top_k == 0 || query.trim().is_empty() {
            return Ok(Vec::new());
        }
        let knobs = self.knobs.get().await?;
        let weights = FusionWeights::from_knobs(&knobs);
        let pool = (top_k * POOL_FACTOR).clamp(MIN_POOL, MAX_POOL);
        let (by_keyword, nearest) = tokio::try_join!(
            self.keyword.retrieve(query, books, pool),
            self.semantic.nearest_chunks(query, pool, books),
        )?;

        let mut fused: HashMap<String, Fused> = HashMap::new();
        for (rank, chunk) in by_keyword.into_iter().enumerate() {
            fused.insert(
                chunk.chunk_id.clone(),
                Fused {
                    fused: reciprocal_rank(weights.keyword, weights.rrf_k, rank),
                    evidence: chunk.score,
                    chunk,
                },
            );
        }
        let missing: Vec<String> = nearest
            .iter()
            .filter(|(id, _)| !fused.contains_key(id))
            .map(|(id, _)| id.clone())
            .collect();
        let mut stored: HashMap<String, _> = self
            .catalog
            .chunks_by_id(&missing)
            .await?
            .into_iter()
            .map(|chunk| (chunk.id.clone(), chunk))
            .collect();
        for (rank, (id, similarity)) in nearest.into_iter().enumerate() {
            let contribution = reciprocal_rank(weights.semantic, weights.rrf_k, rank);
            let similarity = similarity.clamp(0.0, 1.0);
            if let Some(entry) = fused.get_mut(&id) {
                entry.fused += contribution;
                entry.evidence = entry.evidence.max(similarity);
            } else if let Some(chunk) = stored.remove(&id) {
                // A vector whose chunk was replaced since (a re-ingest in flight) is skipped.
                fused.insert(
                    id,
                    Fused {
                        chunk: retrieved_chunk(chunk, similarity),
                        fused: contribution,
                        evidence: similarity,
                    },
                );
            }
        }

        let mut ranked: Vec<Fused> = fused.into_values().collect();
        ranked.sort_by(|a, b| {
            b.fused
                .total_cmp(&a.fused)
                .then(b.evidence.total_cmp(&a.evidence))
                .then_with(|| a.chunk.chunk_id.cmp(&b.chunk.chunk_id))
        });
        Ok(ranked
            .into_iter()
            .take(top_k)
            .map(|entry| RetrievedChunk {
                score: entry.evidence,
                ..entry.chunk
            })
            .collect())
    }
}
