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

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, SqliteTransactionMode, Statement, TransactionOptions,
    TransactionTrait, Value,
};

use super::flat::{self, BookVectors};
use super::{ChunkVector, VectorHit, VectorIndex, check_book_vectors, check_dimensions, check_vector, clamp_k};

/// Vectors per vec0 chunk (vec0's default is 1024): a book's last chunk is partly empty, and a
/// smaller chunk wastes less of it while costing a KNN scan next to nothing.
const CHUNK_SIZE: usize = 256;

/// Up to this many books are reloaded by their keys, more by one scan of vec0.
const KEYED_LOAD_BOOKS: usize = 8;

/// Content hashes per lookup, far under SQLite's 32,766 parameters.
const HASH_BATCH: usize = 500;

pub struct SqliteVecIndex {
    db: DatabaseConnection,
    dimensions: usize,
    /// The vec0 table, `chunk_vectors_<dimensions>`.
    vectors: String,
    /// Its keys, `chunk_vector_keys_<dimensions>`.
    keys: String,
    /// Each book's latest generation, `chunk_vector_generations_<dimensions>`.
    generations: String,
    /// Model -> book -> its vectors in memory, filled by searches.
    copies: tokio::sync::Mutex<HashMap<String, HashMap<String, Arc<BookVectors>>>>,
}

fn statement(sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(sea_orm::DbBackend::Sqlite, sql, values)
}

/// sqlite-vec reads a vector as a BLOB of little-endian f32.
fn to_blob(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|value| value.to_le_bytes()).collect()
}

fn from_blob(blob: &[u8], dimensions: usize) -> anyhow::Result<Vec<f32>> {
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

impl SqliteVecIndex {
    /// Opens the store for `dimensions`, creating its tables when missing. The sqlite-vec
    /// extension must be in the connection: `db::connect` registers it for every SQLite database.
    pub async fn open(db: DatabaseConnection, dimensions: usize) -> anyhow::Result<Self> {
        check_dimensions(dimensions)?;
        let index = Self {
            db,
            dimensions,
            vectors: format!("chunk_vectors_{dimensions}"),
            keys: format!("chunk_vector_keys_{dimensions}"),
            generations: format!("chunk_vector_generations_{dimensions}"),
            copies: tokio::sync::Mutex::new(HashMap::new()),
        };
        index.create_tables().await?;
        Ok(index)
    }

    /// A write transaction from its start: two processes wait for each other (busy timeout)
    /// instead of failing when a read turns into a write.
    async fn write_transaction(&self) -> anyhow::Result<DatabaseTransaction> {
        Ok(self
            .db
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..TransactionOptions::default()
            })
            .await?)
    }

    async fn create_tables(&self) -> anyhow::Result<()> {
        let version = self
            .db
            .query_one_raw(statement("SELECT vec_version() AS version", vec![]))
            .await
            .map_err(|err| anyhow::anyhow!("sqlite-vec is not loaded in this SQLite connection: {err}"))?;
        tracing::debug!(version = ?version.map(|row| row.try_get::<String>("", "version")), "sqlite-vec");
        let (vectors, keys, generations, dimensions) = (&self.vectors, &self.keys, &self.generations, self.dimensions);
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
        let (vectors, keys) = (&self.vectors, &self.keys);
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
            &format!("INSERT OR REPLACE INTO {} (book_id) VALUES (?)", self.generations),
            vec![book_id.into()],
        ))
        .await?;
        Ok(())
    }

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

    /// Reads the vectors of `model` of these books, each with the generation it belongs to,
    /// in one snapshot. A book without vectors of the model comes back empty.
    async fn load_books(&self, model: &str, books: &[String]) -> anyhow::Result<HashMap<String, BookVectors>> {
        let txn = self.db.begin().await?;
        let generations = self.current_generations(&txn, None).await?;
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
                            keys = self.keys,
                            vectors = self.vectors,
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
                    keys = self.keys,
                    vectors = self.vectors,
                ),
                vec![model.into()],
            ))
            .await?
        };
        txn.commit().await?;
        // Decoding and quantizing 100k rows takes seconds of CPU: off the async workers.
        let dimensions = self.dimensions;
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

    /// The in-memory vectors of `model` for one book or all, brought up to date first.
    async fn fresh_copy(&self, model: &str, book_id: Option<&str>) -> anyhow::Result<Vec<(String, Arc<BookVectors>)>> {
        let generations = self.current_generations(&self.db, book_id).await?;
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

#[async_trait]
impl VectorIndex for SqliteVecIndex {
    fn kind(&self) -> &'static str {
        "sqlite_vec"
    }

    fn dimensions(&self) -> usize {
        self.dimensions
    }

    async fn replace_book(&self, book_id: &str, model: &str, vectors: &[ChunkVector]) -> anyhow::Result<()> {
        check_book_vectors(book_id, model, vectors, self.dimensions)?;
        let txn = self.write_transaction().await?;
        self.delete_where(&txn, "book_id = ? AND model = ?", vec![book_id.into(), model.into()])
            .await?;
        self.bump_generation(&txn, book_id).await?;
        let insert_key = format!(
            "INSERT INTO {} (model, chunk_id, book_id, content_hash) VALUES (?, ?, ?, ?)",
            self.keys
        );
        let insert_vector = format!(
            "INSERT INTO {} (rowid, book_id, model, embedding) VALUES (?, ?, ?, ?)",
            self.vectors
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
                .db
                .query_all_raw(statement(
                    &format!(
                        "SELECT k.content_hash, v.embedding \
                         FROM {keys} k JOIN {vectors} v ON v.rowid = k.id \
                         WHERE k.model = ? AND k.content_hash IN ({placeholders})",
                        keys = self.keys,
                        vectors = self.vectors,
                    ),
                    values,
                ))
                .await?;
            for row in rows {
                let hash: String = row.try_get("", "content_hash")?;
                let blob: Vec<u8> = row.try_get("", "embedding")?;
                found.insert(hash, from_blob(&blob, self.dimensions)?);
            }
        }
        Ok(found)
    }

    async fn search(
        &self,
        model: &str,
        query: &[f32],
        k: usize,
        book_id: Option<&str>,
    ) -> anyhow::Result<Vec<VectorHit>> {
        check_vector("the query vector", query, self.dimensions)?;
        let query = flat::unit(query).ok_or_else(|| anyhow::anyhow!("the query vector has no length"))?;
        let books = self.fresh_copy(model, book_id).await?;
        let k = clamp_k(k);
        // Milliseconds of arithmetic: off the async threads.
        Ok(tokio::task::spawn_blocking(move || {
            let books: Vec<(&str, &BookVectors)> =
                books.iter().map(|(id, vectors)| (id.as_str(), &**vectors)).collect();
            flat::nearest(&books, &query, k)
        })
        .await?)
    }

    async fn count(&self, book_id: &str) -> anyhow::Result<u64> {
        let count: i64 = match self
            .db
            .query_one_raw(statement(
                &format!("SELECT COUNT(*) AS n FROM {} WHERE book_id = ?", self.keys),
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
            &format!("DELETE FROM {} WHERE book_id = ?", self.generations),
            vec![book_id.into()],
        ))
        .await?;
        txn.commit().await?;
        Ok(())
    }

    async fn check(&self) -> anyhow::Result<()> {
        self.db
            .query_all_raw(statement(
                &format!("SELECT rowid FROM {} LIMIT 1", self.vectors),
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
