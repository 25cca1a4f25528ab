//! sqlite-vec: a `vec0` virtual table does exact (brute-force) KNN by cosine. Its partition keys
//! are the book and the model, so a search within one book reads that book's vectors only, and a
//! book deleted or replaced frees its chunks of storage (vec0 drops a chunk once it is empty).
//! A plain table beside it holds each vector's key (chunk id, content hash), indexed for the
//! content-hash cache; its `id` is the vector's rowid in `vec0`.
//!
//! Searches do not scan `vec0` (about 1.1 µs a vector through the virtual table): each process
//! keeps an in-memory copy of the vectors of the models it searched (f32 and int8, 1.9 KB a
//! vector of 384; `flat` scans the int8 codes and re-scores in f32), exact like vec0's scan.
//! vec0 stays the durable store. A generations table keeps the copies right across processes
//! (`hbi api` searches while `hbi worker` writes): every replace or delete of a book gives the
//! book a new generation in the same transaction, from an AUTOINCREMENT key that never
//! repeats; each search reads the generations (one small table) and reloads only the books
//! whose generation changed.
//!
//! Past `approximate_from` vectors of a model (default 200,000, about 100 books) the copy of the
//! whole library would cost gigabytes and a scan tens of milliseconds: library-wide searches of
//! that model then go through an HNSW graph (`hnsw`, similarities within 1e-3 of f32's) built
//! in the background from vec0, and it follows the generations like the copies do.
//! Until it is built they run on vec0's own exact scan. A search within one book stays exact:
//! vec0's scan of that book's partition. A graph is saved under the data directory
//! (`with_graph_dir`) once built and again after a tenth of it changed, with the generation of
//! each book in it, so a restart loads it and the first sync catches up on what changed since.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, SqliteTransactionMode, Statement, TransactionOptions,
    TransactionTrait, Value,
};
use sha2::Digest as _;

use super::flat::{self, BookVectors};
use super::hnsw::HnswCopy;
use super::{
    ChunkVector, DEFAULT_EF_SEARCH, VectorHit, VectorIndex, check_book_vectors, check_dimensions, check_vector,
    clamp_k, from_blob, hits_from_rows, sort_hits, to_blob,
};
use crate::domain::BookFilter;

/// Vectors per vec0 chunk (vec0's default is 1024): a book's last chunk is partly empty, and a
/// smaller chunk wastes less of it while costing a KNN scan next to nothing.
const CHUNK_SIZE: usize = 256;

/// Up to this many books are reloaded by their keys, more by one scan of vec0.
const KEYED_LOAD_BOOKS: usize = 8;

/// Content hashes per lookup, far under SQLite's 32,766 parameters.
const HASH_BATCH: usize = 500;

/// Vectors of one model from which library-wide searches go through the HNSW graph.
pub const DEFAULT_APPROXIMATE_FROM: usize = 200_000;

/// Changes (vectors added or removed) after which a graph is saved again, at the least.
const SAVE_AFTER_CHANGES: usize = 10_000;

/// Rows read from vec0 per step while a graph is built: memory stays flat at a million.
const BUILD_PAGE: i64 = 20_000;

/// Where a model's library-wide searches run.
enum Route {
    /// The in-memory copies, exact.
    Exact,
    /// The HNSW graph (vec0's exact scan until it is built).
    Graph(Arc<Graph>),
}

/// A model's HNSW graph, built in the background, then kept up to date by the searches.
struct Graph {
    /// `None` while it is built.
    copy: RwLock<Option<HnswCopy>>,
    /// Becomes `Some` when the build ended: `Ok` once the graph serves, or why it failed.
    built: tokio::sync::watch::Sender<Option<Result<(), String>>>,
    /// One search at a time brings the graph up to date; the others wait for it.
    syncing: tokio::sync::Mutex<()>,
    /// Vectors added or removed since the graph was last saved.
    unsaved: std::sync::atomic::AtomicUsize,
}

pub struct SqliteVecIndex {
    tables: Tables,
    /// Model -> book -> its vectors in memory, filled by searches.
    copies: tokio::sync::Mutex<HashMap<String, HashMap<String, Arc<BookVectors>>>>,
    /// Model -> its HNSW graph, for the models past `approximate_from`.
    graphs: Arc<std::sync::Mutex<HashMap<String, Arc<Graph>>>>,
    approximate_from: usize,
    /// Candidates a graph search keeps (its `ef`).
    breadth: usize,
    /// Where graphs are saved, so that a restart loads one instead of building it.
    graph_dir: Option<PathBuf>,
}

/// The store's database and table names (what a background graph build needs of it).
#[derive(Clone)]
struct Tables {
    db: DatabaseConnection,
    dimensions: usize,
    /// The vec0 table, `chunk_vectors_<dimensions>`.
    vectors: String,
    /// Its keys, `chunk_vector_keys_<dimensions>`.
    keys: String,
    /// Each book's latest generation, `chunk_vector_generations_<dimensions>`.
    generations: String,
}

fn statement(sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(sea_orm::DbBackend::Sqlite, sql, values)
}

impl SqliteVecIndex {
    /// Opens the store for `dimensions`, creating its tables when missing. The sqlite-vec
    /// extension must be in the connection: `db::connect` registers it for every SQLite database.
    pub async fn open(db: DatabaseConnection, dimensions: usize) -> anyhow::Result<Self> {
        check_dimensions(dimensions)?;
        let index = Self {
            tables: Tables {
                db,
                dimensions,
                vectors: format!("chunk_vectors_{dimensions}"),
                keys: format!("chunk_vector_keys_{dimensions}"),
                generations: format!("chunk_vector_generations_{dimensions}"),
            },
            copies: tokio::sync::Mutex::new(HashMap::new()),
            graphs: Arc::new(std::sync::Mutex::new(HashMap::new())),
            approximate_from: DEFAULT_APPROXIMATE_FROM,
            breadth: DEFAULT_EF_SEARCH,
            graph_dir: None,
        };
        index.create_tables().await?;
        Ok(index)
    }

    /// Library-wide searches of a model with at least `vectors` vectors go through an HNSW
    /// graph that keeps `breadth` candidates (1 to 1000); `0` puts every model on a graph.
    #[must_use]
    pub fn with_approximate_from(mut self, vectors: usize, breadth: usize) -> Self {
        self.approximate_from = vectors;
        self.breadth = breadth.clamp(1, super::MAX_K);
        self
    }

    /// Saves each model's HNSW graph under `dir` once it is built (and again after every
    /// tenth of it has changed), and loads it from there instead of building it; the first
    /// search after a load brings it up to the books' generations like any other.
    #[must_use]
    pub fn with_graph_dir(mut self, dir: PathBuf) -> Self {
        self.graph_dir = Some(dir);
        self
    }

    /// Where the graph of `model` is saved: its vector table and a digest of its name (a
    /// model name may hold any character).
    fn graph_base(&self, model: &str) -> Option<PathBuf> {
        let digest = hex::encode(sha2::Sha256::digest(model.as_bytes()));
        let dir = self.graph_dir.as_ref()?;
        Some(dir.join(format!("{}-{}", self.tables.vectors, &digest[..16])))
    }

    /// Whether library-wide searches of `model` run on a built HNSW graph now.
    pub async fn searches_graph(&self, model: &str) -> bool {
        self.graph_of(model)
            .is_some_and(|graph| graph.copy.read().map(|copy| copy.is_some()).unwrap_or(false))
    }

    /// Whether the HNSW graph of `model` was loaded from its saved file (`Some(false)`: built
    /// here; `None`: not ready).
    pub fn graph_was_loaded(&self, model: &str) -> Option<bool> {
        let graph = self.graph_of(model)?;
        let copy = graph.copy.read().ok()?;
        copy.as_ref().map(HnswCopy::was_loaded)
    }

    /// Bytes the HNSW graph of `model` holds (vectors and links), once built.
    pub fn graph_memory(&self, model: &str) -> Option<usize> {
        let graph = self.graph_of(model)?;
        let copy = graph.copy.read().ok()?;
        copy.as_ref().map(HnswCopy::memory)
    }

    fn tables(&self) -> Tables {
        self.tables.clone()
    }

    fn graph_of(&self, model: &str) -> Option<Arc<Graph>> {
        self.graphs.lock().ok().and_then(|graphs| graphs.get(model).cloned())
    }

    /// Where library-wide searches of `model` run: a model past `approximate_from` moves to a
    /// graph (for good: its flat copies are dropped) and the graph's build starts.
    /// `generations`: every book's current generation, as the caller just read them.
    async fn route(&self, model: &str, generations: &HashMap<String, i64>) -> anyhow::Result<Route> {
        if let Some(graph) = self.graph_of(model) {
            return Ok(Route::Graph(graph));
        }
        // Counting walks an index of the keys: only when the copies would have to grow.
        if self.approximate_from > 0 && !self.copies_are_stale(model, generations).await {
            return Ok(Route::Exact);
        }
        let count = self.tables().model_count(model).await?;
        if count < self.approximate_from {
            return Ok(Route::Exact);
        }
        let graph = {
            let mut graphs = self
                .graphs
                .lock()
                .map_err(|_| anyhow::anyhow!("the vector graphs' lock is poisoned"))?;
            if let Some(graph) = graphs.get(model) {
                return Ok(Route::Graph(graph.clone()));
            }
            let graph = Arc::new(Graph {
                copy: RwLock::new(None),
                built: tokio::sync::watch::channel(None).0,
                syncing: tokio::sync::Mutex::new(()),
                unsaved: std::sync::atomic::AtomicUsize::new(0),
            });
            graphs.insert(model.to_owned(), graph.clone());
            graph
        };
        self.copies.lock().await.remove(model);
        tracing::info!(
            model,
            vectors = count,
            "building the HNSW graph for library-wide searches"
        );
        let (tables, model, breadth, building) = (self.tables(), model.to_owned(), self.breadth, graph.clone());
        let graphs = self.graphs.clone();
        let base = self.graph_base(&model);
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let outcome = match tables.load_or_build_graph(&model, breadth, base).await {
                Ok(copy) => {
                    tracing::info!(
                        model,
                        vectors = copy.len(),
                        bytes = copy.memory(),
                        seconds = started.elapsed().as_secs_f64(),
                        "HNSW graph ready"
                    );
                    match building.copy.write() {
                        Ok(mut slot) => {
                            *slot = Some(copy);
                            Ok(())
                        }
                        Err(_) => Err("the graph's lock is poisoned".to_owned()),
                    }
                }
                Err(err) => Err(format!("{err:#}")),
            };
            if let Err(err) = &outcome {
                tracing::warn!(model, error = %err, "the HNSW graph could not be built; the next search tries again");
                if let Ok(mut graphs) = graphs.lock() {
                    graphs.remove(&model);
                }
            }
            building.built.send_replace(Some(outcome));
        });
        Ok(Route::Graph(graph))
    }

    /// Whether any book of `model` changed since the copies were read (or was never read).
    async fn copies_are_stale(&self, model: &str, generations: &HashMap<String, i64>) -> bool {
        let copies = self.copies.lock().await;
        let Some(copy) = copies.get(model) else {
            return true;
        };
        copy.len() != generations.len()
            || generations
                .iter()
                .any(|(book, generation)| copy.get(book).is_none_or(|vectors| vectors.generation != *generation))
    }

    /// A library-wide search on the graph, brought up to date first.
    async fn graph_search(
        &self,
        graph: &Arc<Graph>,
        model: &str,
        query: Vec<f32>,
        k: usize,
        generations: &HashMap<String, i64>,
        among: Option<Arc<BTreeSet<String>>>,
    ) -> anyhow::Result<Vec<VectorHit>> {
        self.sync_graph(graph, model, generations).await?;
        // A graph finds fewer of the true neighbours the closer k is to its breadth: twice k.
        let count = (2 * k).max(self.breadth);
        let searched = graph.clone();
        let candidates = tokio::task::spawn_blocking(move || {
            let copy = searched
                .copy
                .read()
                .map_err(|_| anyhow::anyhow!("the graph's lock is poisoned"))?;
            let copy = copy.as_ref().ok_or_else(|| anyhow::anyhow!("the graph is not built"))?;
            match among {
                Some(books) => copy.search_among(&query, count, &books),
                None => copy.search(&query, count),
            }
        })
        .await??;
        self.tables.hits_for_matches(model, &candidates, k).await
    }

    /// Brings the graph to the books' current generations: removed and changed books out,
    /// changed and new books in, each read in one snapshot with its generation.
    async fn sync_graph(&self, graph: &Arc<Graph>, model: &str, current: &HashMap<String, i64>) -> anyhow::Result<()> {
        let stale = |current: &HashMap<String, i64>| -> anyhow::Result<(Vec<String>, Vec<String>)> {
            let copy = graph
                .copy
                .read()
                .map_err(|_| anyhow::anyhow!("the graph's lock is poisoned"))?;
            let copy = copy.as_ref().ok_or_else(|| anyhow::anyhow!("the graph is not built"))?;
            let held: HashMap<&str, i64> = copy.generations().collect();
            let gone = held
                .keys()
                .filter(|book| !current.contains_key(**book))
                .map(|book| (*book).to_owned())
                .collect();
            let changed = current
                .iter()
                .filter(|(book, generation)| held.get(book.as_str()) != Some(*generation))
                .map(|(book, _)| book.clone())
                .collect();
            Ok((gone, changed))
        };
        let tables = self.tables();
        let (gone, changed) = stale(current)?;
        if gone.is_empty() && changed.is_empty() {
            return Ok(());
        }
        let _syncing = graph.syncing.lock().await;
        // Another search may have synced while this one waited.
        let current = tables.current_generations(&self.tables.db, None).await?;
        let (gone, changed) = stale(&current)?;
        let mut loaded = Vec::with_capacity(changed.len());
        for book in &changed {
            loaded.push(tables.book_rows(model, book).await?);
        }
        let updated = graph.clone();
        let (moved, size) = tokio::task::spawn_blocking(move || {
            let mut copy = updated
                .copy
                .write()
                .map_err(|_| anyhow::anyhow!("the graph's lock is poisoned"))?;
            let copy = copy.as_mut().ok_or_else(|| anyhow::anyhow!("the graph is not built"))?;
            let before = copy.len();
            // Every removal before any insertion: SQLite hands a freed rowid to the next row.
            for book in gone.iter().chain(&changed) {
                copy.remove_book(book)?;
            }
            let kept = copy.len();
            for (book, generation, rows) in loaded {
                copy.add(&rows)?;
                copy.mark(&book, generation);
            }
            // Vectors removed and added.
            Ok::<_, anyhow::Error>(((before - kept) + (copy.len() - kept), copy.len()))
        })
        .await??;
        let unsaved = graph.unsaved.fetch_add(moved, std::sync::atomic::Ordering::Relaxed) + moved;
        if let Some(base) = self.graph_base(model)
            && unsaved >= (size / 10).max(SAVE_AFTER_CHANGES)
        {
            graph.unsaved.store(0, std::sync::atomic::Ordering::Relaxed);
            let saving = graph.clone();
            tokio::task::spawn_blocking(move || match saving.copy.read() {
                Ok(copy) => copy.iter().for_each(|copy| save_graph(copy, &base)),
                Err(_) => tracing::warn!("the graph's lock is poisoned; it is not saved"),
            });
        }
        Ok(())
    }

    /// A write transaction from its start: two processes wait for each other (busy timeout)
    /// instead of failing when a read turns into a write.
    async fn write_transaction(&self) -> anyhow::Result<DatabaseTransaction> {
        Ok(self
            .tables
            .db
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..TransactionOptions::default()
            })
            .await?)
    }

    async fn create_tables(&self) -> anyhow::Result<()> {
        let version = self
            .tables
            .db
            .query_one_raw(statement("SELECT vec_version() AS version", vec![]))
            .await
            .map_err(|err| anyhow::anyhow!("sqlite-vec is not loaded in this SQLite connection: {err}"))?;
        tracing::debug!(version = ?version.map(|row| row.try_get::<String>("", "version")), "sqlite-vec");
        let (vectors, keys, generations, dimensions) = (
            &self.tables.vectors,
            &self.tables.keys,
            &self.tables.generations,
            self.tables.dimensions,
        );
        let txn = self.write_transaction().await?;
        for sql in [
            format!(
                "CREATE TABLE IF NOT EXISTS {keys} (\
                 id INTEGER PRIMARY KEY, \
                 model TEXT NOT NULL, \
                 chunk_id TEXT NOT NULL, \
                 book_id TEXT NOT NULL, \
                 content_hash TEXT NOT NULL, \
                 UNIQUE (model, chunk_id))"
            ),
            format!("CREATE INDEX IF NOT EXISTS {keys}_hash ON {keys} (model, content_hash)"),
            format!("CREATE INDEX IF NOT EXISTS {keys}_book ON {keys} (book_id, model)"),
            format!(
                "CREATE VIRTUAL TABLE IF NOT EXISTS {vectors} USING vec0(\
                 book_id text partition key, \
                 model text partition key, \
                 embedding float[{dimensions}] distance_metric=cosine, \
                 chunk_size={CHUNK_SIZE})"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {generations} (\
                 generation INTEGER PRIMARY KEY AUTOINCREMENT, \
                 book_id TEXT NOT NULL UNIQUE)"
            ),
            // Books stored before the generations existed get one.
            format!(
                "INSERT OR IGNORE INTO {generations} (book_id) \
                 SELECT DISTINCT book_id FROM {keys} \
                 WHERE book_id NOT IN (SELECT book_id FROM {generations})"
            ),
        ] {
            txn.execute_unprepared(&sql).await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// Removes the vectors of the keys `condition` selects, then the keys.
    async fn delete_where(&self, txn: &DatabaseTransaction, condition: &str, values: Vec<Value>) -> anyhow::Result<()> {
        let (vectors, keys) = (&self.tables.vectors, &self.tables.keys);
        let rows = txn
            .query_all_raw(statement(
                &format!("SELECT id FROM {keys} WHERE {condition}"),
                values.clone(),
            ))
            .await?;
        // One point delete per vector: vec0 finds a rowid directly, anything else is a full scan.
        let delete = format!("DELETE FROM {vectors} WHERE rowid = ?");
        for row in rows {
            let id: i64 = row.try_get("", "id")?;
            txn.execute_raw(statement(&delete, vec![id.into()])).await?;
        }
        txn.execute_raw(statement(&format!("DELETE FROM {keys} WHERE {condition}"), values))
            .await?;
        Ok(())
    }

    /// Gives the book a new generation (never one used before), inside the writing transaction.
    async fn bump_generation(&self, txn: &DatabaseTransaction, book_id: &str) -> anyhow::Result<()> {
        txn.execute_raw(statement(
            &format!(
                "INSERT OR REPLACE INTO {} (book_id) VALUES (?)",
                self.tables.generations
            ),
            vec![book_id.into()],
        ))
        .await?;
        Ok(())
    }

    /// Reads the vectors of `model` of these books, each with the generation it belongs to,
    /// in one snapshot. A book without vectors of the model comes back empty.
    async fn load_books(&self, model: &str, books: &[String]) -> anyhow::Result<HashMap<String, BookVectors>> {
        let txn = self.tables.db.begin().await?;
        let generations = self.tables.current_generations(&txn, None).await?;
        let mut loaded: HashMap<String, BookVectors> = books
            .iter()
            .map(|book| {
                let vectors = BookVectors::new(generations.get(book).copied().unwrap_or(0));
                (book.clone(), vectors)
            })
            .collect();
        // A vec0 read by rowid costs microseconds (it opens the rowid's storage chunk), a
        // scan of vec0 about the same per row: a few books are read by their keys, many by
        // one scan of the whole table.
        let rows = if books.len() <= KEYED_LOAD_BOOKS {
            let mut rows = Vec::new();
            for book in books {
                rows.extend(
                    txn.query_all_raw(statement(
                        &format!(
                            "SELECT k.book_id, k.chunk_id, v.embedding \
                             FROM {keys} k CROSS JOIN {vectors} v ON v.rowid = k.id \
                             WHERE k.book_id = ? AND k.model = ?",
                            keys = self.tables.keys,
                            vectors = self.tables.vectors,
                        ),
                        vec![book.as_str().into(), model.into()],
                    ))
                    .await?,
                );
            }
            rows
        } else {
            txn.query_all_raw(statement(
                &format!(
                    "SELECT k.book_id, k.chunk_id, v.embedding \
                     FROM {vectors} v CROSS JOIN {keys} k ON k.id = v.rowid WHERE k.model = ?",
                    keys = self.tables.keys,
                    vectors = self.tables.vectors,
                ),
                vec![model.into()],
            ))
            .await?
        };
        txn.commit().await?;
        // Decoding and quantizing 100k rows takes seconds of CPU: off the async workers.
        let dimensions = self.tables.dimensions;
        tokio::task::spawn_blocking(move || {
            for row in rows {
                let book_id: String = row.try_get("", "book_id")?;
                let Some(book) = loaded.get_mut(&book_id) else {
                    continue;
                };
                let blob: Vec<u8> = row.try_get("", "embedding")?;
                // Stored vectors were checked non-zero on the way in.
                let Some(unit) = flat::unit(&from_blob(&blob, dimensions)?) else {
                    continue;
                };
                book.push(row.try_get("", "chunk_id")?, &unit);
            }
            Ok(loaded)
        })
        .await?
    }

    /// The in-memory vectors of `model` for one book or all, brought up to date first to
    /// `generations` (of that book, or of all books), as the caller just read them.
    async fn fresh_copy(
        &self,
        model: &str,
        book_id: Option<&str>,
        generations: HashMap<String, i64>,
    ) -> anyhow::Result<Vec<(String, Arc<BookVectors>)>> {
        let mut copies = self.copies.lock().await;
        let copy = copies.entry(model.to_owned()).or_default();
        match book_id {
            Some(book_id) if !generations.contains_key(book_id) => {
                copy.remove(book_id);
            }
            Some(_) => {}
            None => copy.retain(|book, _| generations.contains_key(book)),
        }
        let stale: Vec<String> = generations
            .iter()
            .filter(|(book, generation)| copy.get(*book).is_none_or(|vectors| vectors.generation != **generation))
            .map(|(book, _)| book.clone())
            .collect();
        if !stale.is_empty() {
            let loaded = self.load_books(model, &stale).await?;
            copy.extend(loaded.into_iter().map(|(book, vectors)| (book, Arc::new(vectors))));
        }
        Ok(generations
            .keys()
            .filter_map(|book| Some((book.clone(), copy.get(book)?.clone())))
            .collect())
    }
}

impl Tables {
    /// Book -> generation, of one book or of all, read through `db` (the pool or a snapshot).
    async fn current_generations(
        &self,
        db: &impl ConnectionTrait,
        book_id: Option<&str>,
    ) -> anyhow::Result<HashMap<String, i64>> {
        let (filter, values): (&str, Vec<Value>) = match book_id {
            Some(book_id) => ("WHERE book_id = ?", vec![book_id.into()]),
            None => ("", vec![]),
        };
        let rows = db
            .query_all_raw(statement(
                &format!("SELECT book_id, generation FROM {} {filter}", self.generations),
                values,
            ))
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("", "book_id")?, row.try_get("", "generation")?)))
            .collect()
    }

    /// Vectors stored for `model`.
    async fn model_count(&self, model: &str) -> anyhow::Result<usize> {
        let row = self
            .db
            .query_one_raw(statement(
                &format!("SELECT COUNT(*) AS n FROM {} WHERE model = ?", self.keys),
                vec![model.into()],
            ))
            .await?;
        let count: i64 = match row {
            Some(row) => row.try_get("", "n")?,
            None => 0,
        };
        Ok(usize::try_from(count)?)
    }

    /// The graph of `model` saved at `base` if there is one that loads, otherwise one built
    /// from vec0 (and saved there). A saved graph is as old as its save: the first sync
    /// brings it to the books' current generations.
    async fn load_or_build_graph(
        &self,
        model: &str,
        breadth: usize,
        base: Option<PathBuf>,
    ) -> anyhow::Result<HnswCopy> {
        let Some(base) = base else {
            return self.build_graph(model, breadth).await;
        };
        let (from, dimensions) = (base.clone(), self.dimensions);
        match tokio::task::spawn_blocking(move || HnswCopy::load(&from, dimensions, breadth)).await? {
            Ok(Some(copy)) => {
                tracing::info!(model, vectors = copy.len(), file = %base.display(), "HNSW graph loaded");
                return Ok(copy);
            }
            Ok(None) => {}
            Err(err) => {
                tracing::warn!(model, error = %format!("{err:#}"), "the saved HNSW graph is unusable; building it again")
            }
        }
        let copy = self.build_graph(model, breadth).await?;
        tokio::task::spawn_blocking(move || {
            save_graph(&copy, &base);
            copy
        })
        .await
        .map_err(Into::into)
    }

    /// A graph of every vector of `model`, read page by page in key order (memory stays one
    /// page). Books that change meanwhile are caught by the first sync: each book is marked
    /// with its generation from before the first page, a book first seen in a later page
    /// with none.
    async fn build_graph(&self, model: &str, breadth: usize) -> anyhow::Result<HnswCopy> {
        let generations = self.current_generations(&self.db, None).await?;
        let mut copy = HnswCopy::new(self.dimensions, breadth)?;
        let mut after = 0_i64;
        // `+k.model` keeps SQLite walking the keys by rowid from `after`: on the model's
        // index it would read and sort every vector of the model for each page.
        loop {
            let rows = self
                .db
                .query_all_raw(statement(
                    &format!(
                        "SELECT k.id, k.book_id, v.embedding \
                         FROM {keys} k CROSS JOIN {vectors} v ON v.rowid = k.id \
                         WHERE +k.model = ? AND k.id > ? ORDER BY k.id LIMIT ?",
                        keys = self.keys,
                        vectors = self.vectors,
                    ),
                    vec![model.into(), after.into(), BUILD_PAGE.into()],
                ))
                .await?;
            let Some(last) = rows.last() else {
                break;
            };
            after = last.try_get("", "id")?;
            let dimensions = self.dimensions;
            copy = tokio::task::spawn_blocking(move || {
                let rows = decode_rows(&rows, dimensions)?;
                copy.add(&rows)?;
                Ok::<_, anyhow::Error>(copy)
            })
            .await??;
        }
        for (book, generation) in generations {
            copy.mark(&book, generation);
        }
        Ok(copy)
    }

    /// The book's vectors of `model` as graph rows, with the generation they belong to, read
    /// in one snapshot.
    async fn book_rows(
        &self,
        model: &str,
        book_id: &str,
    ) -> anyhow::Result<(String, i64, Vec<(u64, String, Vec<f32>)>)> {
        let txn = self.db.begin().await?;
        let generation = self
            .current_generations(&txn, Some(book_id))
            .await?
            .get(book_id)
            .copied()
            .unwrap_or(0);
        let rows = txn
            .query_all_raw(statement(
                &format!(
                    "SELECT k.id, k.book_id, v.embedding \
                     FROM {keys} k CROSS JOIN {vectors} v ON v.rowid = k.id \
                     WHERE k.book_id = ? AND k.model = ?",
                    keys = self.keys,
                    vectors = self.vectors,
                ),
                vec![book_id.into(), model.into()],
            ))
            .await?;
        txn.commit().await?;
        let dimensions = self.dimensions;
        let rows = tokio::task::spawn_blocking(move || decode_rows(&rows, dimensions)).await??;
        Ok((book_id.to_owned(), generation, rows))
    }

    /// The `k` nearest of the graph's candidates (key, similarity) as hits, through the keys
    /// table (not vec0); a key whose row is gone since (a concurrent write) drops out.
    async fn hits_for_matches(&self, model: &str, matches: &[(u64, f32)], k: usize) -> anyhow::Result<Vec<VectorHit>> {
        if matches.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders = vec!["?"; matches.len()].join(", ");
        let mut values: Vec<Value> = Vec::with_capacity(matches.len() + 1);
        for (key, _) in matches {
            values.push(i64::try_from(*key)?.into());
        }
        values.push(model.into());
        // `+model`: without statistics SQLite would rather walk the model's whole index
        // (every vector of it) than look the keys up by rowid; the plus keeps it off that.
        let rows = self
            .db
            .query_all_raw(statement(
                &format!(
                    "SELECT id, chunk_id, book_id FROM {} WHERE id IN ({placeholders}) AND +model = ?",
                    self.keys
                ),
                values,
            ))
            .await?;
        let similarity_of: HashMap<u64, f32> = matches.iter().copied().collect();
        let mut hits = Vec::with_capacity(rows.len());
        for row in rows {
            let id: i64 = row.try_get("", "id")?;
            let Some(similarity) = similarity_of.get(&u64::try_from(id)?) else {
                continue;
            };
            hits.push(VectorHit {
                chunk_id: row.try_get("", "chunk_id")?,
                book_id: row.try_get("", "book_id")?,
                similarity: *similarity,
            });
        }
        sort_hits(&mut hits);
        hits.truncate(k);
        Ok(hits)
    }

    /// vec0's exact KNN over each allowed book's partition (those with vectors), merged.
    async fn store_search_among(
        &self,
        model: &str,
        query: &[f32],
        k: usize,
        allowed: &BTreeSet<String>,
        generations: &HashMap<String, i64>,
    ) -> anyhow::Result<Vec<VectorHit>> {
        let mut hits = Vec::new();
        for book_id in allowed.iter().filter(|book| generations.contains_key(*book)) {
            hits.extend(self.store_search(model, query, k, Some(book_id)).await?);
        }
        super::sort_hits(&mut hits);
        hits.truncate(k);
        Ok(hits)
    }

    /// vec0's own exact KNN, of the whole library or one book.
    async fn store_search(
        &self,
        model: &str,
        query: &[f32],
        k: usize,
        book_id: Option<&str>,
    ) -> anyhow::Result<Vec<VectorHit>> {
        let mut values: Vec<Value> = vec![to_blob(query).into(), i64::try_from(k)?.into(), model.into()];
        let book_filter = match book_id {
            Some(book_id) => {
                values.push(book_id.into());
                " AND book_id = ?"
            }
            None => "",
        };
        let rows = self
            .db
            .query_all_raw(statement(
                &format!(
                    "WITH knn AS MATERIALIZED (\
                       SELECT rowid AS id, distance FROM {vectors} \
                       WHERE embedding MATCH ? AND k = ? AND model = ?{book_filter}) \
                     SELECT k.chunk_id, k.book_id, knn.distance FROM knn JOIN {keys} k ON k.id = knn.id",
                    keys = self.keys,
                    vectors = self.vectors,
                ),
                values,
            ))
            .await?;
        hits_from_rows(&rows)
    }
}

/// The `k` nearest among in-memory copies, off the async threads (milliseconds of arithmetic).
async fn nearest_in_copies(
    copies: Vec<(String, Arc<BookVectors>)>,
    query: Vec<f32>,
    k: usize,
) -> anyhow::Result<Vec<VectorHit>> {
    Ok(tokio::task::spawn_blocking(move || {
        let books: Vec<(&str, &BookVectors)> = copies.iter().map(|(id, vectors)| (id.as_str(), &**vectors)).collect();
        flat::nearest(&books, &query, k)
    })
    .await?)
}

/// Saves the graph at `base`; a failure costs only a rebuild after the next restart.
fn save_graph(copy: &HnswCopy, base: &std::path::Path) {
    if let Err(err) = copy.save(base) {
        tracing::warn!(error = %format!("{err:#}"), "the HNSW graph could not be saved; a restart builds it again");
    }
}

/// vec0 rows (`id`, `book_id`, `embedding`) as unit vectors keyed by their id.
fn decode_rows(rows: &[sea_orm::QueryResult], dimensions: usize) -> anyhow::Result<Vec<(u64, String, Vec<f32>)>> {
    let mut decoded = Vec::with_capacity(rows.len());
    for row in rows {
        let id: i64 = row.try_get("", "id")?;
        let blob: Vec<u8> = row.try_get("", "embedding")?;
        // Stored vectors were checked non-zero on the way in.
        if let Some(unit) = flat::unit(&from_blob(&blob, dimensions)?) {
            decoded.push((u64::try_from(id)?, row.try_get("", "book_id")?, unit));
        }
    }
    Ok(decoded)
}

#[async_trait]
impl VectorIndex for SqliteVecIndex {
    fn kind(&self) -> &'static str {
        "sqlite_vec"
    }

    fn dimensions(&self) -> usize {
        self.tables.dimensions
    }

    async fn replace_book(&self, book_id: &str, model: &str, vectors: &[ChunkVector]) -> anyhow::Result<()> {
        check_book_vectors(book_id, model, vectors, self.tables.dimensions)?;
        let txn = self.write_transaction().await?;
        self.delete_where(&txn, "book_id = ? AND model = ?", vec![book_id.into(), model.into()])
            .await?;
        self.bump_generation(&txn, book_id).await?;
        let insert_key = format!(
            "INSERT INTO {} (model, chunk_id, book_id, content_hash) VALUES (?, ?, ?, ?)",
            self.tables.keys
        );
        let insert_vector = format!(
            "INSERT INTO {} (rowid, book_id, model, embedding) VALUES (?, ?, ?, ?)",
            self.tables.vectors
        );
        for vector in vectors {
            let id = txn
                .execute_raw(statement(
                    &insert_key,
                    vec![
                        model.into(),
                        vector.chunk_id.as_str().into(),
                        book_id.into(),
                        vector.content_hash.as_str().into(),
                    ],
                ))
                .await?
                .last_insert_id();
            txn.execute_raw(statement(
                &insert_vector,
                vec![
                    i64::try_from(id)?.into(),
                    book_id.into(),
                    model.into(),
                    to_blob(&vector.embedding).into(),
                ],
            ))
            .await?;
        }
        txn.commit().await?;
        Ok(())
    }

    async fn cached(&self, model: &str, content_hashes: &[String]) -> anyhow::Result<HashMap<String, Vec<f32>>> {
        let mut found = HashMap::new();
        for batch in content_hashes.chunks(HASH_BATCH) {
            let placeholders = vec!["?"; batch.len()].join(", ");
            let mut values: Vec<Value> = vec![model.into()];
            values.extend(batch.iter().map(|hash| Value::from(hash.as_str())));
            // The keys pick the rows; vec0 then reads each vector by rowid.
            let rows = self
                .tables
                .db
                .query_all_raw(statement(
                    &format!(
                        "SELECT k.content_hash, v.embedding \
                         FROM {keys} k JOIN {vectors} v ON v.rowid = k.id \
                         WHERE k.model = ? AND k.content_hash IN ({placeholders})",
                        keys = self.tables.keys,
                        vectors = self.tables.vectors,
                    ),
                    values,
                ))
                .await?;
            for row in rows {
                let hash: String = row.try_get("", "content_hash")?;
                let blob: Vec<u8> = row.try_get("", "embedding")?;
                found.insert(hash, from_blob(&blob, self.tables.dimensions)?);
            }
        }
        Ok(found)
    }

    async fn search(&self, model: &str, query: &[f32], k: usize, books: &BookFilter) -> anyhow::Result<Vec<VectorHit>> {
        check_vector("the query vector", query, self.tables.dimensions)?;
        let query = flat::unit(query).ok_or_else(|| anyhow::anyhow!("the query vector has no length"))?;
        let k = clamp_k(k);
        if books.admits_none() {
            return Ok(Vec::new());
        }
        if let Some(book_id) = books.single() {
            // A model on a graph keeps no copies: one book is read by vec0's scan of its partition.
            if self.graph_of(model).is_some() {
                return self.tables.store_search(model, &query, k, Some(book_id)).await;
            }
            let generations = self.tables.current_generations(&self.tables.db, Some(book_id)).await?;
            let copies = self.fresh_copy(model, Some(book_id), generations).await?;
            return nearest_in_copies(copies, query, k).await;
        }
        let generations = self.tables.current_generations(&self.tables.db, None).await?;
        if let Route::Graph(graph) = self.route(model, &generations).await? {
            let graph_ready = self.searches_graph(model).await;
            return match books {
                BookFilter::All if graph_ready => self.graph_search(&graph, model, query, k, &generations, None).await,
                BookFilter::All => self.tables.store_search(model, &query, k, None).await,
                BookFilter::Only(allowed) => {
                    if graph_ready {
                        let hits = self
                            .graph_search(&graph, model, query.clone(), k, &generations, Some(allowed.clone()))
                            .await?;
                        if hits.len() >= k {
                            return Ok(hits);
                        }
                    }
                    // Few of the graph's vectors pass (or it is not built): the allowed books'
                    // own partitions, scanned exactly.
                    self.tables
                        .store_search_among(model, &query, k, allowed, &generations)
                        .await
                }
            };
        }
        let copies = self
            .fresh_copy(model, None, generations)
            .await?
            .into_iter()
            .filter(|(book, _)| books.admits(book))
            .collect();
        nearest_in_copies(copies, query, k).await
    }

    async fn count(&self, book_id: &str) -> anyhow::Result<u64> {
        let count: i64 = match self
            .tables
            .db
            .query_one_raw(statement(
                &format!("SELECT COUNT(*) AS n FROM {} WHERE book_id = ?", self.tables.keys),
                vec![book_id.into()],
            ))
            .await?
        {
            Some(row) => row.try_get("", "n")?,
            None => 0,
        };
        Ok(u64::try_from(count)?)
    }

    async fn delete_book(&self, book_id: &str) -> anyhow::Result<()> {
        let txn = self.write_transaction().await?;
        self.delete_where(&txn, "book_id = ?", vec![book_id.into()]).await?;
        txn.execute_raw(statement(
            &format!("DELETE FROM {} WHERE book_id = ?", self.tables.generations),
            vec![book_id.into()],
        ))
        .await?;
        txn.commit().await?;
        Ok(())
    }

    async fn prepare(&self, model: &str) -> anyhow::Result<()> {
        let generations = self.tables.current_generations(&self.tables.db, None).await?;
        let Route::Graph(graph) = self.route(model, &generations).await? else {
            return Ok(());
        };
        let mut built = graph.built.subscribe();
        let outcome = built
            .wait_for(Option::is_some)
            .await
            .map_err(|_| anyhow::anyhow!("the graph's build was dropped"))?
            .clone();
        match outcome {
            Some(Err(err)) => Err(anyhow::anyhow!("the HNSW graph of {model} could not be built: {err}")),
            _ => Ok(()),
        }
    }

    async fn check(&self) -> anyhow::Result<()> {
        self.tables
            .db
            .query_all_raw(statement(
                &format!("SELECT rowid FROM {} LIMIT 1", self.tables.vectors),
                vec![],
            ))
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_round_trip_as_blobs() -> anyhow::Result<()> {
        let vector = [1.5_f32, -0.25, 3.0e-8];
        assert_eq!(from_blob(&to_blob(&vector), 3)?, vector);
        assert!(from_blob(&[0; 8], 3).is_err());
        Ok(())
    }
}
