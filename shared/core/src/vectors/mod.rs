//! Embeddings of text chunks and nearest-neighbour search by cosine: sqlite-vec (`vec0`) in
//! the embedded shape, pgvector (HNSW) in production. Both live in the metadata database.
//!
//! A store is opened for one dimension, the embedding model's; its tables carry the dimension
//! in their names (`chunk_vectors_384`), so a switch to a model of another size starts a new
//! table beside the old one. Vectors are keyed by model and chunk id: several models of one
//! size may share a table, and every read names the model it wants.
//!
//! Searches within one book are always exact. Library-wide searches are exact on sqlite-vec up
//! to `approximate_from` vectors of a model, then approximate through an HNSW graph (usearch,
//! `hnsw`); pgvector's are approximate through its own HNSW index.

mod flat;
mod hnsw;
mod pgvector;
mod sqlite_vec;
pub(crate) mod sqlite_vec_ext;

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;

use crate::domain::BookFilter;

pub use hnsw::SIMILARITY_ERROR as GRAPH_SIMILARITY_ERROR;
pub use pgvector::{DEFAULT_EF_SEARCH, PgVectorIndex};
pub use sqlite_vec::{DEFAULT_APPROXIMATE_FROM, SqliteVecIndex};

/// all-MiniLM-L6-v2, the default embedding model, gives 384 numbers.
pub const DEFAULT_EMBEDDING_DIMENSIONS: usize = 384;

/// The largest dimension a store accepts (sqlite-vec's own limit).
pub const MAX_DIMENSIONS: usize = 8192;

/// The most neighbours one search returns.
pub const MAX_K: usize = 1000;

/// A vector as a BLOB of little-endian f32: how sqlite-vec reads one, and how a job's parts
/// keep theirs.
pub(crate) fn to_blob(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|value| value.to_le_bytes()).collect()
}

/// The vector of `dimensions` numbers in a BLOB of little-endian f32.
pub(crate) fn from_blob(blob: &[u8], dimensions: usize) -> anyhow::Result<Vec<f32>> {
    if blob.len() != dimensions * 4 {
        anyhow::bail!(
            "stored vector has {} bytes, expected {} ({dimensions} f32)",
            blob.len(),
            dimensions * 4
        );
    }
    Ok(blob
        .chunks_exact(4)
        .map(|bytes| f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
        .collect())
}

/// One chunk's embedding as it is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkVector {
    pub chunk_id: String,
    pub book_id: String,
    /// SHA-256 of the chunk text: the key that lets unchanged text reuse its vector.
    pub content_hash: String,
    pub embedding: Vec<f32>,
}

/// One neighbour found by a search.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorHit {
    pub chunk_id: String,
    pub book_id: String,
    /// Cosine similarity: 1 is the same direction, 0 orthogonal, -1 opposite.
    pub similarity: f32,
}

#[async_trait]
pub trait VectorIndex: Send + Sync {
    /// `sqlite_vec` or `pgvector`.
    fn kind(&self) -> &'static str;

    /// The length every stored and query vector must have.
    fn dimensions(&self) -> usize;

    /// Replaces all vectors of `book_id` for `model` (idempotent: a re-run leaves one copy).
    /// Every vector must belong to `book_id`, have [`dimensions`](Self::dimensions) finite
    /// numbers and a length above zero; otherwise nothing is written.
    async fn replace_book(&self, book_id: &str, model: &str, vectors: &[ChunkVector]) -> anyhow::Result<()>;

    /// Vectors already computed by `model` for these chunk content hashes (any book), so
    /// unchanged text is never embedded twice. Hashes without a vector are left out.
    async fn cached(&self, model: &str, content_hashes: &[String]) -> anyhow::Result<HashMap<String, Vec<f32>>>;

    /// The `k` nearest chunks by cosine, nearest first, among the books `books` allows
    /// (filtered before ranking: `k` hits come back when the allowed books hold that many)
    /// and the vectors of `model` only. Results for one book are exact. `k` is clamped to
    /// `1..=1000`.
    async fn search(&self, model: &str, query: &[f32], k: usize, books: &BookFilter) -> anyhow::Result<Vec<VectorHit>>;

    /// Vectors stored for the book, of every model.
    async fn count(&self, book_id: &str) -> anyhow::Result<u64>;

    /// Removes the book's vectors of every model.
    async fn delete_book(&self, book_id: &str) -> anyhow::Result<()>;

    /// Gets library-wide searches of `model` ready ahead of the first one: where the store
    /// builds an index in memory (sqlite-vec's HNSW graph), builds it and waits for it.
    async fn prepare(&self, _model: &str) -> anyhow::Result<()> {
        Ok(())
    }

    /// Reaches the store and its table (for tests and tools; readiness checks the database).
    async fn check(&self) -> anyhow::Result<()>;
}

/// Refuses a dimension no store can hold.
fn check_dimensions(dimensions: usize) -> anyhow::Result<()> {
    if dimensions == 0 || dimensions > MAX_DIMENSIONS {
        anyhow::bail!("vector dimensions must be between 1 and {MAX_DIMENSIONS}, not {dimensions}");
    }
    Ok(())
}

/// The number of neighbours a search asks for.
fn clamp_k(k: usize) -> usize {
    k.clamp(1, MAX_K)
}

/// A vector a store can compare by cosine: the right length, finite, not all zeros.
/// `what` names it in the error.
fn check_vector(what: &str, vector: &[f32], dimensions: usize) -> anyhow::Result<()> {
    if vector.len() != dimensions {
        anyhow::bail!(
            "{what} has {} dimensions, the vector store holds {dimensions}",
            vector.len()
        );
    }
    if let Some(position) = vector.iter().position(|value| !value.is_finite()) {
        anyhow::bail!("{what} holds a value that is not a finite number at position {position}");
    }
    if vector.iter().all(|value| *value == 0.0) {
        anyhow::bail!("{what} is all zeros: it has no direction to compare by cosine");
    }
    Ok(())
}

/// Checks a whole `replace_book` call before anything is written.
fn check_book_vectors(book_id: &str, model: &str, vectors: &[ChunkVector], dimensions: usize) -> anyhow::Result<()> {
    if book_id.is_empty() {
        anyhow::bail!("book id must not be empty");
    }
    if model.is_empty() {
        anyhow::bail!("model name must not be empty");
    }
    let mut seen = HashSet::with_capacity(vectors.len());
    for vector in vectors {
        if vector.book_id != book_id {
            anyhow::bail!(
                "chunk {} belongs to book {}, not to {book_id}",
                vector.chunk_id,
                vector.book_id
            );
        }
        if !seen.insert(vector.chunk_id.as_str()) {
            anyhow::bail!("chunk {} appears twice", vector.chunk_id);
        }
        check_vector(
            &format!("the vector of chunk {}", vector.chunk_id),
            &vector.embedding,
            dimensions,
        )?;
    }
    Ok(())
}

/// Similarity from a cosine distance (`1 - cos`), as both stores return it.
fn similarity(distance: f64) -> f32 {
    (1.0 - distance) as f32
}

/// Nearest first; equal similarities by chunk id, so results are stable.
/// Search result rows (`chunk_id`, `book_id`, cosine `distance`) as hits, nearest first.
fn hits_from_rows(rows: &[sea_orm::QueryResult]) -> anyhow::Result<Vec<VectorHit>> {
    let mut hits = rows
        .iter()
        .map(|row| {
            Ok(VectorHit {
                chunk_id: row.try_get("", "chunk_id")?,
                book_id: row.try_get("", "book_id")?,
                similarity: similarity(row.try_get("", "distance")?),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    sort_hits(&mut hits);
    Ok(hits)
}

fn sort_hits(hits: &mut [VectorHit]) {
    hits.sort_by(|a, b| {
        b.similarity
            .total_cmp(&a.similarity)
            .then_with(|| a.chunk_id.cmp(&b.chunk_id))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector(chunk_id: &str, book_id: &str, embedding: Vec<f32>) -> ChunkVector {
        ChunkVector {
            chunk_id: chunk_id.to_owned(),
            book_id: book_id.to_owned(),
            content_hash: "h".to_owned(),
            embedding,
        }
    }

    #[test]
    fn k_is_clamped() {
        assert_eq!(clamp_k(0), 1);
        assert_eq!(clamp_k(10), 10);
        assert_eq!(clamp_k(usize::MAX), MAX_K);
    }

    #[test]
    fn dimensions_are_bounded() {
        assert!(check_dimensions(0).is_err());
        assert!(check_dimensions(1).is_ok());
        assert!(check_dimensions(MAX_DIMENSIONS).is_ok());
        assert!(check_dimensions(MAX_DIMENSIONS + 1).is_err());
    }

    #[test]
    fn bad_vectors_are_named() {
        let error = |vectors: &[ChunkVector]| match check_book_vectors("b", "m", vectors, 3) {
            Ok(()) => String::new(),
            Err(err) => err.to_string(),
        };
        assert_eq!(error(&[vector("b:1", "b", vec![1.0, 0.0, 0.0])]), "");
        assert!(error(&[vector("b:1", "b", vec![1.0, 0.0])]).contains("has 2 dimensions"));
        assert!(error(&[vector("b:1", "b", vec![1.0, f32::NAN, 0.0])]).contains("position 1"));
        assert!(error(&[vector("b:1", "b", vec![0.0; 3])]).contains("all zeros"));
        assert!(error(&[vector("c:1", "c", vec![1.0; 3])]).contains("belongs to book c"));
        assert!(error(&[vector("b:1", "b", vec![1.0; 3]), vector("b:1", "b", vec![1.0; 3])]).contains("twice"));
        assert!(check_book_vectors("b", "", &[], 3).is_err());
    }

    #[test]
    fn hits_sort_nearest_first() {
        let hit = |chunk_id: &str, similarity| VectorHit {
            chunk_id: chunk_id.to_owned(),
            book_id: "b".to_owned(),
            similarity,
        };
        let mut hits = vec![hit("c", 0.5), hit("b", 0.9), hit("a", 0.5)];
        sort_hits(&mut hits);
        let order: Vec<&str> = hits.iter().map(|hit| hit.chunk_id.as_str()).collect();
        assert_eq!(order, ["b", "a", "c"]);
        assert!((similarity(0.25) - 0.75).abs() < f32::EPSILON);
    }
}
