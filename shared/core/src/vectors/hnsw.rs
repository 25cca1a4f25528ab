//! An approximate nearest-neighbour graph (HNSW, usearch) over the vectors of one model, for
//! library-wide searches once a flat scan gets slow. Its keys are the store's own vector ids
//! (the rowid a vector has in `vec0`), so a hit is turned back into a chunk by reading those
//! few keys; the graph itself keeps no strings.
//!
//! Vectors are held in half precision (768 bytes a vector of 384 instead of 1,536): int8 codes
//! would halve that again, but their recall stops near 0.94 on text embeddings.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

/// Links a node keeps per layer (usearch's default is 16): more costs memory and build time.
const CONNECTIVITY: usize = 16;

/// Candidates kept while a vector is inserted: build time against graph quality.
const EXPANSION_ADD: usize = 64;

/// How far a similarity of two half-precision unit vectors can be from theirs in f32: each
/// is rounded by at most 2^-11 of its length, so the dot product moves by at most about twice
/// that (4.9e-4 each), plus the f32 sums.
pub const SIMILARITY_ERROR: f32 = 1.0e-3;

/// Threads inserting at once while the graph is built.
fn build_threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// What is saved beside a graph's file: the file's name, and which book each key came from
/// at which generation (what the first sync after a load compares with the database).
#[derive(Serialize, Deserialize)]
struct SavedBooks {
    graph_file: String,
    dimensions: usize,
    vectors: usize,
    books: HashMap<String, (i64, Vec<u64>)>,
}

/// The graph of one model's vectors and which book each key came from.
pub(super) struct HnswCopy {
    index: Index,
    /// Book -> the generation its vectors in the graph belong to, and their keys.
    books: HashMap<String, (i64, Vec<u64>)>,
    /// Read from a saved file rather than built.
    loaded: bool,
}

impl HnswCopy {
    /// An empty graph for unit vectors of `dimensions`, searching `breadth` candidates.
    pub fn new(dimensions: usize, breadth: usize) -> anyhow::Result<Self> {
        let index = Index::new(&IndexOptions {
            dimensions,
            // Unit vectors: inner product is the cosine and skips two norms per comparison.
            metric: MetricKind::IP,
            quantization: ScalarKind::F16,
            connectivity: CONNECTIVITY,
            expansion_add: EXPANSION_ADD,
            expansion_search: breadth,
            multi: false,
        })
        .map_err(|err| anyhow::anyhow!("cannot create the HNSW graph: {err}"))?;
        Ok(Self {
            index,
            books: HashMap::new(),
            loaded: false,
        })
    }

    /// Saves the graph as `{base}.json` (which books, at which generations) and the graph
    /// file it names beside it. The graph file is new each time and the JSON is renamed into
    /// place last, so a reader sees the old pair or the new one, never half of each.
    pub fn save(&self, base: &Path) -> anyhow::Result<()> {
        let dir = base
            .parent()
            .ok_or_else(|| anyhow::anyhow!("{} has no folder", base.display()))?;
        std::fs::create_dir_all(dir)?;
        let stem = base
            .file_name()
            .and_then(|name| name.to_str())
            .ok_or_else(|| anyhow::anyhow!("{} is not a file name", base.display()))?;
        let graph_file = format!("{stem}-{}.usearch", uuid::Uuid::new_v4().simple());
        let graph_path = dir.join(&graph_file);
        let graph_name = graph_path
            .to_str()
            .ok_or_else(|| anyhow::anyhow!("{} is not UTF-8", graph_path.display()))?;
        self.index
            .save(graph_name)
            .map_err(|err| anyhow::anyhow!("cannot save the HNSW graph to {graph_name}: {err}"))?;
        let saved = SavedBooks {
            graph_file: graph_file.clone(),
            dimensions: self.index.dimensions(),
            vectors: self.index.size(),
            books: self.books.clone(),
        };
        let books_path = books_file(base);
        let partial = books_path.with_extension("json.partial");
        std::fs::write(&partial, serde_json::to_vec(&saved)?)?;
        std::fs::rename(&partial, &books_path)?;
        // Older graph files of this base are no longer named by anything.
        let prefix = format!("{stem}-");
        for entry in std::fs::read_dir(dir)?.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(&prefix) && name.ends_with(".usearch") && name != graph_file {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(())
    }

    /// The graph saved at `base` by [`save`](Self::save), searching `breadth` candidates;
    /// `None` when none was saved, an error when what is there does not hold together.
    pub fn load(base: &Path, dimensions: usize, breadth: usize) -> anyhow::Result<Option<Self>> {
        let books_path = books_file(base);
        let bytes = match std::fs::read(&books_path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err.into()),
        };
        let saved: SavedBooks = serde_json::from_slice(&bytes)?;
        anyhow::ensure!(
            saved.dimensions == dimensions,
            "the saved graph has {} dimensions, the store {dimensions}",
            saved.dimensions
        );
        let graph_path = books_path.with_file_name(&saved.graph_file);
        let graph_name = graph_path
            .to_str()
            .ok_or_else(|| anyhow::anyhow!("{} is not UTF-8", graph_path.display()))?;
        let mut copy = Self::new(dimensions, breadth)?;
        copy.index
            .load(graph_name)
            .map_err(|err| anyhow::anyhow!("cannot load the HNSW graph {graph_name}: {err}"))?;
        anyhow::ensure!(
            copy.index.dimensions() == dimensions && copy.index.size() == saved.vectors,
            "the saved graph holds {} vectors of {} dimensions, its books file says {} of {dimensions}",
            copy.index.size(),
            copy.index.dimensions(),
            saved.vectors
        );
        copy.index.change_expansion_search(breadth);
        copy.books = saved.books;
        copy.loaded = true;
        Ok(Some(copy))
    }

    /// Whether the graph was read from a saved file rather than built.
    pub fn was_loaded(&self) -> bool {
        self.loaded
    }

    /// Vectors in the graph.
    pub fn len(&self) -> usize {
        self.index.size()
    }

    /// Bytes the graph holds (vectors and links).
    pub fn memory(&self) -> usize {
        self.index.memory_usage()
    }

    /// Book -> generation of every book in the graph.
    pub fn generations(&self) -> impl Iterator<Item = (&str, i64)> {
        self.books
            .iter()
            .map(|(book, (generation, _))| (book.as_str(), *generation))
    }

    /// Records the generation the book's vectors in the graph belong to.
    pub fn mark(&mut self, book_id: &str, generation: i64) {
        self.books.entry(book_id.to_owned()).or_default().0 = generation;
    }

    /// Takes the book's vectors out of the graph.
    pub fn remove_book(&mut self, book_id: &str) -> anyhow::Result<()> {
        if let Some((_, keys)) = self.books.remove(book_id) {
            for key in keys {
                self.index
                    .remove(key)
                    .map_err(|err| anyhow::anyhow!("cannot remove vector {key} from the HNSW graph: {err}"))?;
            }
        }
        Ok(())
    }

    /// Inserts unit vectors `(key, book, vector)`, on every core. A key must not be in the
    /// graph already (`remove_book` first).
    pub fn add(&mut self, rows: &[(u64, String, Vec<f32>)]) -> anyhow::Result<()> {
        let needed = self.index.size() + rows.len();
        if needed > self.index.capacity() {
            // Doubling keeps the number of reallocations small while a graph is built.
            let capacity = needed.max(self.index.capacity() * 2);
            self.index
                .reserve_capacity_and_threads(capacity, build_threads())
                .map_err(|err| anyhow::anyhow!("cannot reserve room for {capacity} vectors: {err}"))?;
        }
        let threads = build_threads().min(rows.len().max(1));
        let share = rows.len().div_ceil(threads).max(1);
        let index = &self.index;
        std::thread::scope(|scope| {
            let workers: Vec<_> = rows
                .chunks(share)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter().try_for_each(|(key, _, vector)| {
                            index
                                .add(*key, vector)
                                .map_err(|err| anyhow::anyhow!("cannot add vector {key} to the HNSW graph: {err}"))
                        })
                    })
                })
                .collect();
            workers.into_iter().try_for_each(|worker| {
                worker
                    .join()
                    .map_err(|_| anyhow::anyhow!("a thread building the HNSW graph panicked"))?
            })
        })?;
        for (key, book, _) in rows {
            self.books.entry(book.clone()).or_default().1.push(*key);
        }
        Ok(())
    }

    /// About the `count` nearest vectors to the unit `query`, nearest first, as (key, cosine
    /// similarity). The similarity is of the half-precision copies: within `SIMILARITY_ERROR`
    /// of the f32 vectors' (re-reading those from vec0 costs more than the whole search:
    /// vec0 reads a vector out of a chunk blob of 256).
    pub fn search(&self, query: &[f32], count: usize) -> anyhow::Result<Vec<(u64, f32)>> {
        if self.index.size() == 0 {
            return Ok(Vec::new());
        }
        let found = self
            .index
            .search(query, count)
            .map_err(|err| anyhow::anyhow!("HNSW search failed: {err}"))?;
        Ok(similarities(found))
    }

    /// As [`search`](Self::search), among the vectors of `books` only: the graph's walk
    /// skips the others as it goes (usearch's filtered search), so it can come back with
    /// fewer than `count` when few vectors pass.
    pub fn search_among(
        &self,
        query: &[f32],
        count: usize,
        books: &std::collections::BTreeSet<String>,
    ) -> anyhow::Result<Vec<(u64, f32)>> {
        let allowed_vectors: usize = books
            .iter()
            .filter_map(|book| self.books.get(book))
            .map(|(_, keys)| keys.len())
            .sum();
        if allowed_vectors == 0 {
            return Ok(Vec::new());
        }
        // The smaller of the two sets is built for each search: the allowed keys, or, when
        // most of the graph is allowed, the keys of the other books.
        let keys_of = |allow: bool| -> std::collections::HashSet<u64> {
            self.books
                .iter()
                .filter(|(book, _)| books.contains(*book) == allow)
                .flat_map(|(_, (_, keys))| keys.iter().copied())
                .collect()
        };
        let found = if allowed_vectors * 2 <= self.index.size() {
            let allowed = keys_of(true);
            self.index.filtered_search(query, count, |key| allowed.contains(&key))
        } else {
            let excluded = keys_of(false);
            self.index.filtered_search(query, count, |key| !excluded.contains(&key))
        }
        .map_err(|err| anyhow::anyhow!("HNSW search failed: {err}"))?;
        Ok(similarities(found))
    }
}

/// usearch's matches as (key, cosine similarity).
fn similarities(found: usearch::ffi::Matches) -> Vec<(u64, f32)> {
    // Inner-product distance is 1 - the dot product, the cosine of unit vectors.
    found
        .keys
        .into_iter()
        .zip(found.distances)
        .map(|(key, distance)| (key, 1.0 - distance))
        .collect()
}

/// `{base}.json`.
fn books_file(base: &Path) -> PathBuf {
    let mut name = base.as_os_str().to_owned();
    name.push(".json");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(values: &[f32]) -> Vec<f32> {
        let norm = values.iter().map(|x| x * x).sum::<f32>().sqrt();
        values.iter().map(|x| x / norm).collect()
    }

    #[test]
    fn finds_added_vectors_and_forgets_removed_books() -> anyhow::Result<()> {
        let mut graph = HnswCopy::new(4, 32)?;
        let rows: Vec<(u64, String, Vec<f32>)> = (0..200_u64)
            .map(|key| {
                let angle = key as f32 * 0.03;
                let book = if key < 100 { "a" } else { "b" };
                (
                    key,
                    book.to_owned(),
                    unit(&[angle.cos(), angle.sin(), 0.1, (key % 7) as f32 * 0.01]),
                )
            })
            .collect();
        graph.add(&rows)?;
        graph.mark("a", 1);
        graph.mark("b", 2);
        assert_eq!(graph.len(), 200);
        let query = &rows[150].2;
        let nearest = graph.search(query, 3)?;
        assert_eq!(nearest.first().map(|hit| hit.0), Some(150));
        assert!((nearest[0].1 - 1.0).abs() < SIMILARITY_ERROR, "{nearest:?}");
        assert!(nearest.windows(2).all(|pair| pair[0].1 >= pair[1].1));

        graph.remove_book("b")?;
        let found = graph.search(query, 10)?;
        assert!(!found.is_empty() && found.iter().all(|hit| hit.0 < 100), "{found:?}");
        assert_eq!(graph.generations().collect::<Vec<_>>(), [("a", 1)]);
        // A removed key may come back, as SQLite reuses the highest rowids.
        graph.add(&rows[150..151])?;
        assert_eq!(graph.search(query, 1)?.first().map(|hit| hit.0), Some(150));
        Ok(())
    }

    /// A search among some books returns theirs only, whether few books are allowed (the
    /// allowed keys are looked up) or most (the others' keys are).
    #[test]
    fn a_search_among_books_returns_theirs_only() -> anyhow::Result<()> {
        let mut graph = HnswCopy::new(4, 64)?;
        let rows: Vec<(u64, String, Vec<f32>)> = (0..400_u64)
            .map(|key| {
                let angle = key as f32 * 0.015;
                (
                    key,
                    format!("book-{}", key % 8),
                    unit(&[angle.cos(), angle.sin(), 0.1, (key % 5) as f32 * 0.02]),
                )
            })
            .collect();
        graph.add(&rows)?;
        let query = &rows[200].2;
        for allowed in [
            vec!["book-3"],
            vec!["book-0", "book-1", "book-2", "book-3", "book-4", "book-5", "book-6"],
        ] {
            let books: std::collections::BTreeSet<String> = allowed.iter().map(|book| (*book).to_owned()).collect();
            let found = graph.search_among(query, 10, &books)?;
            assert_eq!(found.len(), 10, "{allowed:?}");
            assert!(
                found
                    .iter()
                    .all(|(key, _)| books.contains(&format!("book-{}", key % 8))),
                "{allowed:?}: {found:?}"
            );
        }
        let nobody = std::collections::BTreeSet::from(["book-9".to_owned()]);
        assert!(graph.search_among(query, 10, &nobody)?.is_empty());
        Ok(())
    }

    #[test]
    fn a_saved_graph_loads_with_its_books_and_generations() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let base = dir.path().join("graphs").join("chunk_vectors_4-model");
        assert!(HnswCopy::load(&base, 4, 32)?.is_none(), "nothing saved yet");
        let rows: Vec<(u64, String, Vec<f32>)> = (0..50_u64)
            .map(|key| {
                let angle = key as f32 * 0.1;
                (
                    key,
                    format!("book-{}", key % 2),
                    unit(&[angle.cos(), angle.sin(), 0.2, 0.1]),
                )
            })
            .collect();
        let mut graph = HnswCopy::new(4, 32)?;
        graph.add(&rows)?;
        graph.mark("book-0", 7);
        graph.mark("book-1", 9);
        graph.save(&base)?;
        graph.remove_book("book-1")?;
        graph.save(&base)?;
        let graph_files = std::fs::read_dir(base.parent().ok_or_else(|| anyhow::anyhow!("parent"))?)?
            .flatten()
            .filter(|entry| entry.file_name().to_string_lossy().ends_with(".usearch"))
            .count();
        assert_eq!(graph_files, 1, "the older graph file went");

        let loaded = HnswCopy::load(&base, 4, 32)?.ok_or_else(|| anyhow::anyhow!("saved"))?;
        assert_eq!(loaded.generations().collect::<Vec<_>>(), [("book-0", 7)]);
        let found = loaded.search(&rows[20].2, 3)?;
        assert_eq!(found.first().map(|hit| hit.0), Some(20));
        assert!(
            found.iter().all(|hit| hit.0 % 2 == 0),
            "book-1 stays removed: {found:?}"
        );
        assert!(HnswCopy::load(&base, 8, 32).is_err(), "another dimension is refused");
        Ok(())
    }
}
