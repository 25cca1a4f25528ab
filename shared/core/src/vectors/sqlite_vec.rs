//! sqlite-vec: a `vec0` virtual table does exact (brute-force) KNN by cosine. Its partition keys
//! are the book and the model, so a search within one book reads that book's vectors only, and a
//! book deleted or replaced frees its chunks of storage (vec0 drops a chunk once it is empty).
//! A plain table beside it holds each vector's key (chunk id, content hash), indexed for the
//! content-hash cache; its `id` is the vector's rowid in `vec0`.

use std::collections::HashMap;

use async_trait::async_trait;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, SqliteTransactionMode, Statement, TransactionOptions,
    TransactionTrait, Value,
};

use super::{ChunkVector, VectorHit, VectorIndex, check_book_vectors, check_dimensions, check_vector, clamp_k};

/// Vectors per vec0 chunk (vec0's default is 1024): a book's last chunk is partly empty, and a
/// smaller chunk wastes less of it while costing a KNN scan next to nothing.
const CHUNK_SIZE: usize = 256;

/// Content hashes per lookup, far under SQLite's 32,766 parameters.
const HASH_BATCH: usize = 500;

pub struct SqliteVecIndex {
    db: DatabaseConnection,
    dimensions: usize,
    /// The vec0 table, `chunk_vectors_<dimensions>`.
    vectors: String,
    /// Its keys, `chunk_vector_keys_<dimensions>`.
    keys: String,
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
        let (vectors, keys, dimensions) = (&self.vectors, &self.keys, self.dimensions);
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
        let k = i64::try_from(clamp_k(k))?;
        let mut values: Vec<Value> = vec![to_blob(query).into(), k.into(), model.into()];
        let book_filter = match book_id {
            Some(book_id) => {
                values.push(book_id.into());
                "AND book_id = ?"
            }
            None => "",
        };
        // KNN first (vec0 sees its MATCH, k and partition constraints), then the keys by rowid.
        let rows = self
            .db
            .query_all_raw(statement(
                &format!(
                    "WITH knn AS MATERIALIZED (\
                       SELECT rowid AS id, distance FROM {vectors} \
                       WHERE embedding MATCH ? AND k = ? AND model = ? {book_filter}) \
                     SELECT k.chunk_id, k.book_id, knn.distance \
                     FROM knn JOIN {keys} k ON k.id = knn.id \
                     ORDER BY knn.distance, k.chunk_id",
                    vectors = self.vectors,
                    keys = self.keys,
                ),
                values,
            ))
            .await?;
        super::hits_from_rows(&rows)
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
