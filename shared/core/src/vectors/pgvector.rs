//! pgvector: one table per dimension with an HNSW index by cosine (`vector_cosine_ops`).
//!
//! HNSW is approximate and filters after the graph walk: a search within one book, or among
//! one model's vectors, would find fewer than `k` rows when the first candidates belong to
//! others. Each search therefore runs in a transaction with `hnsw.ef_search` at least `k` and,
//! on pgvector 0.8 and later, `hnsw.iterative_scan = strict_order`, which walks on until `k`
//! rows pass the filter (up to `hnsw.max_scan_tuples`). PostgreSQL may also answer a selective
//! book filter exactly, from the `(book_id, model)` index and a sort.

use std::collections::HashMap;

use anyhow::Context;
use async_trait::async_trait;
use sea_orm::prelude::PgVector;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement, TransactionTrait, Value};

use super::{ChunkVector, VectorHit, VectorIndex, check_book_vectors, check_dimensions, check_vector, clamp_k};
use crate::domain::BookFilter;

/// Searches within books holding at most this many vectors of the model scan them exactly
/// (a book, or a key's libraries): exact results, and faster than an HNSW walk that most
/// rows fail.
const EXACT_SCAN_BELOW: u64 = 20_000;

/// Rows per INSERT: five parameters a row, far under PostgreSQL's 65,535.
const INSERT_BATCH: usize = 500;

/// Content hashes per lookup.
const HASH_BATCH: usize = 1000;

/// `hnsw.ef_search` unless set otherwise (pgvector's own default is 40).
pub const DEFAULT_EF_SEARCH: usize = 100;

/// pgvector indexes `vector` up to 2,000 dimensions and `halfvec` up to 4,000.
const MAX_VECTOR_INDEX_DIMENSIONS: usize = 2000;
const MAX_HALFVEC_INDEX_DIMENSIONS: usize = 4000;

/// How searches reach the nearest rows, by dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AnnIndex {
    /// HNSW over the `vector` column.
    Vector,
    /// HNSW over the column cast to `halfvec` (half precision), beyond `vector`'s limit.
    HalfVec,
    /// No index can hold this many dimensions: every search is exact.
    None,
}

impl AnnIndex {
    fn for_dimensions(dimensions: usize) -> Self {
        if dimensions <= MAX_VECTOR_INDEX_DIMENSIONS {
            Self::Vector
        } else if dimensions <= MAX_HALFVEC_INDEX_DIMENSIONS {
            Self::HalfVec
        } else {
            Self::None
        }
    }
}

pub struct PgVectorIndex {
    db: DatabaseConnection,
    dimensions: usize,
    /// `chunk_vectors_<dimensions>`.
    table: String,
    ann: AnnIndex,
    /// pgvector 0.8+: `hnsw.iterative_scan` exists.
    iterative_scan: bool,
    /// Candidates the HNSW walk keeps (at least `k` in each search).
    ef_search: usize,
}

fn statement(sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(sea_orm::DbBackend::Postgres, sql, values)
}

/// `0.8.1` → `(0, 8)`.
fn major_minor(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts
        .next()?
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()?;
    Some((major, minor))
}

/// `INSERT ... VALUES ($1, $2, $3, $4, $5), ...` for `rows` rows.
fn insert_sql(table: &str, rows: usize) -> String {
    let mut sql = format!("INSERT INTO {table} (model, chunk_id, book_id, content_hash, embedding) VALUES ");
    for row in 0..rows {
        let first = row * 5 + 1;
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!(
            "(${first}, ${}, ${}, ${}, ${})",
            first + 1,
            first + 2,
            first + 3,
            first + 4
        ));
    }
    // Two workers replacing the same book at once (delivery is at least once) still leave one
    // row per chunk: the later one updates what the earlier inserted.
    sql.push_str(
        " ON CONFLICT (model, chunk_id) DO UPDATE SET book_id = EXCLUDED.book_id, \
         content_hash = EXCLUDED.content_hash, embedding = EXCLUDED.embedding",
    );
    sql
}

impl PgVectorIndex {
    /// Opens the store for `dimensions`, creating its table and indexes when missing. The
    /// `vector` extension must exist (the migrations create it).
    pub async fn open(db: DatabaseConnection, dimensions: usize) -> anyhow::Result<Self> {
        check_dimensions(dimensions)?;
        let version: String = db
            .query_one_raw(statement(
                "SELECT extversion FROM pg_extension WHERE extname = 'vector'",
                vec![],
            ))
            .await?
            .context("the pgvector extension is not installed in this database (the migrations create it)")?
            .try_get("", "extversion")?;
        let version_number = major_minor(&version).unwrap_or((0, 0));
        let mut ann = AnnIndex::for_dimensions(dimensions);
        if ann == AnnIndex::HalfVec && version_number < (0, 7) {
            ann = AnnIndex::None;
        }
        if ann == AnnIndex::None {
            tracing::warn!(
                dimensions,
                pgvector = %version,
                "no HNSW index for this many dimensions: vector searches are exact scans"
            );
        }
        let index = Self {
            db,
            dimensions,
            table: format!("chunk_vectors_{dimensions}"),
            ann,
            iterative_scan: version_number >= (0, 8),
            ef_search: DEFAULT_EF_SEARCH,
        };
        index.create_table().await?;
        Ok(index)
    }

    /// Sets `hnsw.ef_search`, the candidates an HNSW search keeps (1 to 1000): more find more of
    /// the true nearest neighbours and take longer. A search for `k` keeps at least `k`.
    pub fn with_ef_search(mut self, ef_search: usize) -> Self {
        self.ef_search = ef_search.clamp(1, super::MAX_K);
        self
    }

    async fn create_table(&self) -> anyhow::Result<()> {
        let (table, dimensions) = (&self.table, self.dimensions);
        let ann_index = match self.ann {
            AnnIndex::Vector => Some(format!(
                "CREATE INDEX IF NOT EXISTS {table}_hnsw ON {table} USING hnsw (embedding vector_cosine_ops)"
            )),
            AnnIndex::HalfVec => Some(format!(
                "CREATE INDEX IF NOT EXISTS {table}_hnsw ON {table} \
                 USING hnsw ((embedding::halfvec({dimensions})) halfvec_cosine_ops)"
            )),
            AnnIndex::None => None,
        };
        let txn = self.db.begin().await?;
        // Two replicas starting at once would race in CREATE ... IF NOT EXISTS (a duplicate
        // key in the catalog): the first takes the lock and creates, the second then finds all.
        txn.execute_raw(statement(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            vec![format!("hbi:{table}").into()],
        ))
        .await?;
        let statements = [
            Some(format!(
                "CREATE TABLE IF NOT EXISTS {table} (\
                 model text NOT NULL, \
                 chunk_id text NOT NULL, \
                 book_id text NOT NULL, \
                 content_hash text NOT NULL, \
                 embedding vector({dimensions}) NOT NULL, \
                 PRIMARY KEY (model, chunk_id))"
            )),
            Some(format!(
                "CREATE INDEX IF NOT EXISTS {table}_book ON {table} (book_id, model)"
            )),
            Some(format!(
                "CREATE INDEX IF NOT EXISTS {table}_hash ON {table} (model, content_hash)"
            )),
            ann_index,
        ];
        for sql in statements.into_iter().flatten() {
            txn.execute_unprepared(&sql).await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// Whether the allowed books (`filter` on `$2`) hold at most `limit` vectors of `model`
    /// (counted up to `limit + 1` on the book index, never further).
    async fn allowed_vectors_at_most(
        &self,
        model: &str,
        filter: String,
        books: Value,
        limit: u64,
    ) -> anyhow::Result<bool> {
        let row = self
            .db
            .query_one_raw(statement(
                &format!(
                    "SELECT COUNT(*) AS n FROM (SELECT 1 FROM {table} WHERE model = $1 {filter} LIMIT $3) AS allowed",
                    table = self.table
                ),
                vec![model.into(), books, i64::try_from(limit + 1)?.into()],
            ))
            .await?;
        let count: i64 = match row {
            Some(row) => row.try_get("", "n")?,
            None => 0,
        };
        Ok(u64::try_from(count).unwrap_or(u64::MAX) <= limit)
    }

    /// The exact `k` nearest among the allowed books' vectors (`filter` on `$4`): read
    /// through the book index, never the HNSW graph, which a selective filter makes walk
    /// far for every row that passes.
    async fn exact_search(
        &self,
        model: &str,
        query: &[f32],
        k: usize,
        filter: String,
        books: Value,
    ) -> anyhow::Result<Vec<VectorHit>> {
        let rows = self
            .db
            .query_all_raw(statement(
                &format!(
                    "WITH allowed AS MATERIALIZED (\
                       SELECT chunk_id, book_id, embedding FROM {table} WHERE model = $2 {filter}) \
                     SELECT chunk_id, book_id, (embedding <=> $1) AS distance FROM allowed \
                     ORDER BY distance, chunk_id LIMIT $3",
                    table = self.table
                ),
                vec![
                    PgVector::from(query.to_vec()).into(),
                    model.into(),
                    i64::try_from(k)?.into(),
                    books,
                ],
            ))
            .await?;
        super::hits_from_rows(&rows)
    }

    /// The distance the HNSW index orders by, to the query in `$1`.
    fn order_by(&self) -> String {
        match self.ann {
            AnnIndex::HalfVec => format!("embedding::halfvec({d}) <=> $1::halfvec({d})", d = self.dimensions),
            AnnIndex::Vector | AnnIndex::None => "embedding <=> $1".to_owned(),
        }
    }
}

#[async_trait]
impl VectorIndex for PgVectorIndex {
    fn kind(&self) -> &'static str {
        "pgvector"
    }

    fn dimensions(&self) -> usize {
        self.dimensions
    }

    async fn replace_book(&self, book_id: &str, model: &str, vectors: &[ChunkVector]) -> anyhow::Result<()> {
        check_book_vectors(book_id, model, vectors, self.dimensions)?;
        let txn = self.db.begin().await?;
        txn.execute_raw(statement(
            &format!("DELETE FROM {} WHERE book_id = $1 AND model = $2", self.table),
            vec![book_id.into(), model.into()],
        ))
        .await?;
        for batch in vectors.chunks(INSERT_BATCH) {
            let values = batch
                .iter()
                .flat_map(|vector| {
                    [
                        Value::from(model),
                        Value::from(vector.chunk_id.as_str()),
                        Value::from(book_id),
                        Value::from(vector.content_hash.as_str()),
                        Value::from(PgVector::from(vector.embedding.clone())),
                    ]
                })
                .collect();
            txn.execute_raw(statement(&insert_sql(&self.table, batch.len()), values))
                .await?;
        }
        txn.commit().await?;
        Ok(())
    }

    async fn cached(&self, model: &str, content_hashes: &[String]) -> anyhow::Result<HashMap<String, Vec<f32>>> {
        let mut found = HashMap::new();
        for batch in content_hashes.chunks(HASH_BATCH) {
            let placeholders: Vec<String> = (0..batch.len()).map(|i| format!("${}", i + 2)).collect();
            let mut values: Vec<Value> = vec![model.into()];
            values.extend(batch.iter().map(|hash| Value::from(hash.as_str())));
            let rows = self
                .db
                .query_all_raw(statement(
                    &format!(
                        "SELECT DISTINCT ON (content_hash) content_hash, embedding FROM {} \
                         WHERE model = $1 AND content_hash IN ({})",
                        self.table,
                        placeholders.join(", ")
                    ),
                    values,
                ))
                .await?;
            for row in rows {
                let hash: String = row.try_get("", "content_hash")?;
                let embedding: PgVector = row.try_get("", "embedding")?;
                found.insert(hash, embedding.to_vec());
            }
        }
        Ok(found)
    }

    async fn search(&self, model: &str, query: &[f32], k: usize, books: &BookFilter) -> anyhow::Result<Vec<VectorHit>> {
        check_vector("the query vector", query, self.dimensions)?;
        if books.admits_none() {
            return Ok(Vec::new());
        }
        let k = clamp_k(k);
        // The allowed books: the condition on the `$n`-th parameter, and its value.
        let allowed: Option<(fn(usize) -> String, Value)> = match (books.single(), books.comma_separated()) {
            (Some(book_id), _) => Some((|n| format!("AND book_id = ${n}"), book_id.into())),
            (None, Some(book_ids)) => Some((
                |n| format!("AND book_id = ANY(string_to_array(${n}, ','))"),
                book_ids.into(),
            )),
            (None, None) => None,
        };
        if let Some((filter, value)) = &allowed
            && self
                .allowed_vectors_at_most(model, filter(2), value.clone(), EXACT_SCAN_BELOW)
                .await?
        {
            return self.exact_search(model, query, k, filter(4), value.clone()).await;
        }
        let mut values: Vec<Value> = vec![
            PgVector::from(query.to_vec()).into(),
            model.into(),
            i64::try_from(k)?.into(),
        ];
        // Filtered inside the scan (iterative_scan keeps the HNSW walk going until k rows
        // pass), so k hits come back from the allowed books.
        let book_filter = match allowed {
            Some((filter, value)) => {
                values.push(value);
                filter(4)
            }
            None => String::new(),
        };
        let txn = self.db.begin().await?;
        if self.ann != AnnIndex::None {
            // For this transaction only, in one round trip. Both k and ef_search are at most
            // 1000, pgvector's limit.
            let settings = if self.iterative_scan {
                "SELECT set_config('hnsw.ef_search', $1, true), \
                        set_config('hnsw.iterative_scan', 'strict_order', true)"
            } else {
                "SELECT set_config('hnsw.ef_search', $1, true)"
            };
            let ef_search = k.max(self.ef_search).to_string();
            txn.query_one_raw(statement(settings, vec![ef_search.into()])).await?;
        }
        let rows = txn
            .query_all_raw(statement(
                &format!(
                    "SELECT chunk_id, book_id, (embedding <=> $1) AS distance FROM {table} \
                     WHERE model = $2 {book_filter} \
                     ORDER BY {order_by} LIMIT $3",
                    table = self.table,
                    order_by = self.order_by(),
                ),
                values,
            ))
            .await?;
        txn.commit().await?;
        super::hits_from_rows(&rows)
    }

    async fn count(&self, book_id: &str) -> anyhow::Result<u64> {
        let count: i64 = match self
            .db
            .query_one_raw(statement(
                &format!("SELECT COUNT(*) AS n FROM {} WHERE book_id = $1", self.table),
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
        self.db
            .execute_raw(statement(
                &format!("DELETE FROM {} WHERE book_id = $1", self.table),
                vec![book_id.into()],
            ))
            .await?;
        Ok(())
    }

    async fn check(&self) -> anyhow::Result<()> {
        self.db
            .query_all_raw(statement(&format!("SELECT 1 FROM {} LIMIT 1", self.table), vec![]))
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_index_kinds() {
        assert_eq!(major_minor("0.8.1"), Some((0, 8)));
        assert_eq!(major_minor("0.10.0"), Some((0, 10)));
        assert_eq!(major_minor("1.0"), Some((1, 0)));
        assert_eq!(major_minor("x"), None);
        assert_eq!(AnnIndex::for_dimensions(384), AnnIndex::Vector);
        assert_eq!(AnnIndex::for_dimensions(2000), AnnIndex::Vector);
        assert_eq!(AnnIndex::for_dimensions(3072), AnnIndex::HalfVec);
        assert_eq!(AnnIndex::for_dimensions(8192), AnnIndex::None);
    }

    #[test]
    fn insert_numbers_every_parameter() {
        let sql = insert_sql("t", 2);
        assert!(
            sql.starts_with(
                "INSERT INTO t (model, chunk_id, book_id, content_hash, embedding) \
                 VALUES ($1, $2, $3, $4, $5), ($6, $7, $8, $9, $10) ON CONFLICT"
            ),
            "{sql}"
        );
    }
}
