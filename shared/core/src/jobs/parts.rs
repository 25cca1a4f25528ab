//! The parts of one large book's job, so that every worker embeds a share of it.
//!
//! A book whose chunks to embed fill more than one part (`worker.part_chunks`) has its
//! chunks cut into ranges of positions, one `job_parts` row each, and one queue message per
//! part (`JobMessage::part`). Any worker takes a part as it takes a job: one conditional
//! UPDATE claims it (queued, or running under a lease that ran out), its worker's heartbeat
//! keeps the lease, and a part whose worker dies is taken again, by the book's own job at
//! the latest: it claims parts too while it waits. A finished part commits its vectors and
//! its `done` in one transaction, keyed by the embedded text's hash, so a part run twice
//! leaves one copy and a killed worker loses only the part it was running. The book's job
//! then gathers the vectors and runs the stages that need the whole book.
//!
//! Parts outlive a failed attempt of the job (the next attempt keeps the finished ones) and
//! go when the job ends.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set};

use super::store::{JobStore, chrono_delay};
use crate::db::entities::{job, job_part, job_part_vector};
use crate::db::to_i32;
use crate::domain::JobState;
use crate::vectors::{from_blob, to_blob};

const QUEUED: &str = "queued";
const RUNNING: &str = "running";
const DONE: &str = "done";

/// Part rows written in one statement (SQLite binds at most 32,766 values).
const INSERT_BATCH: usize = 500;

/// The chunk positions `first_chunk..end_chunk` of a job's book, part `part` of its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartRange {
    pub part: u32,
    pub first_chunk: u32,
    pub end_chunk: u32,
}

impl PartRange {
    pub fn len(&self) -> u32 {
        self.end_chunk.saturating_sub(self.first_chunk)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where a job's parts stand.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PartsProgress {
    pub parts: u32,
    pub done: u32,
    /// Chunks of the finished parts, and of all parts.
    pub chunks_done: u32,
    pub chunks: u32,
    /// A part not done that has used up its attempts, with its last error.
    pub given_up: Option<(u32, String)>,
}

impl PartsProgress {
    pub fn finished(&self) -> bool {
        self.done == self.parts
    }
}

fn to_u32(value: i32) -> u32 {
    u32::try_from(value).unwrap_or(0)
}

/// Parts a claim may take: queued, or running under a lease that ran out (its worker died).
fn claimable(now: chrono::DateTime<Utc>) -> Condition {
    Condition::any().add(job_part::Column::State.eq(QUEUED)).add(
        Condition::all()
            .add(job_part::Column::State.eq(RUNNING))
            .add(job_part::Column::LeaseUntil.lt(now)),
    )
}

/// The update that puts running parts back in the queue, held by nobody; the caller says which.
fn back_to_queue(now: chrono::DateTime<Utc>) -> sea_orm::UpdateMany<job_part::Entity> {
    job_part::Entity::update_many()
        .col_expr(job_part::Column::State, Expr::value(QUEUED))
        .col_expr(job_part::Column::WorkerId, Expr::value(Option::<String>::None))
        .col_expr(
            job_part::Column::LeaseUntil,
            Expr::value(Option::<chrono::DateTime<Utc>>::None),
        )
        .col_expr(job_part::Column::UpdatedAt, Expr::value(now))
        .filter(job_part::Column::State.eq(RUNNING))
}

fn range_of(row: &job_part::Model) -> PartRange {
    PartRange {
        part: to_u32(row.part),
        first_chunk: to_u32(row.first_chunk),
        end_chunk: to_u32(row.end_chunk),
    }
}

impl JobStore {
    /// Cuts the job's `chunk_count` chunks into parts of `part_chunks`, unless they are cut so
    /// already for that many chunks (an earlier attempt): then the finished parts stay, so do
    /// those a live worker is running, and every other part starts again with no attempts.
    /// Answers the parts still to do.
    pub async fn lay_out_parts(
        &self,
        job_id: &str,
        chunk_count: u32,
        part_chunks: u32,
    ) -> anyhow::Result<Vec<PartRange>> {
        anyhow::ensure!(part_chunks > 0, "a part holds at least one chunk");
        let now = Utc::now();
        let txn = crate::db::begin_write(&self.db).await?;
        let existing = job_part::Entity::find()
            .filter(job_part::Column::JobId.eq(job_id))
            .order_by_asc(job_part::Column::Part)
            .all(&txn)
            .await?;
        let wanted = chunk_count.div_ceil(part_chunks);
        let same_cut = !existing.is_empty()
            && existing.len() == wanted as usize
            && existing.iter().all(|row| to_u32(row.chunk_count) == chunk_count);
        if same_cut {
            job_part::Entity::update_many()
                .col_expr(job_part::Column::State, Expr::value(QUEUED))
                .col_expr(job_part::Column::Attempts, Expr::value(0))
                .col_expr(job_part::Column::Error, Expr::value(Option::<String>::None))
                .col_expr(job_part::Column::WorkerId, Expr::value(Option::<String>::None))
                .col_expr(
                    job_part::Column::LeaseUntil,
                    Expr::value(Option::<chrono::DateTime<Utc>>::None),
                )
                .col_expr(job_part::Column::UpdatedAt, Expr::value(now))
                .filter(job_part::Column::JobId.eq(job_id))
                .filter(job_part::Column::State.ne(DONE))
                // A part another worker is running under a live lease stays its own.
                .filter(
                    Condition::any()
                        .add(job_part::Column::State.ne(RUNNING))
                        .add(job_part::Column::LeaseUntil.is_null())
                        .add(job_part::Column::LeaseUntil.lt(now)),
                )
                .exec(&txn)
                .await?;
        } else {
            delete_parts(&txn, job_id).await?;
            let rows: Vec<job_part::ActiveModel> = (0..wanted)
                .map(|part| job_part::ActiveModel {
                    job_id: Set(job_id.to_owned()),
                    part: Set(to_i32(part)),
                    first_chunk: Set(to_i32(part * part_chunks)),
                    end_chunk: Set(to_i32(std::cmp::min((part + 1) * part_chunks, chunk_count))),
                    chunk_count: Set(to_i32(chunk_count)),
                    state: Set(QUEUED.to_owned()),
                    worker_id: Set(None),
                    lease_until: Set(None),
                    attempts: Set(0),
                    error: Set(None),
                    updated_at: Set(now),
                })
                .collect();
            for batch in rows.chunks(INSERT_BATCH) {
                job_part::Entity::insert_many(batch.to_vec()).exec(&txn).await?;
            }
        }
        let open = job_part::Entity::find()
            .filter(job_part::Column::JobId.eq(job_id))
            .filter(job_part::Column::State.ne(DONE))
            .order_by_asc(job_part::Column::Part)
            .all(&txn)
            .await?;
        txn.commit().await?;
        Ok(open.iter().map(range_of).collect())
    }

    /// Takes part `part` of a running job for `worker_id`, if it is queued or its lease ran
    /// out, and it has attempts left (`max_attempts`). `None`: done, held by a live worker,
    /// out of attempts, or its job is no longer running (finished, cancelled, deleted).
    pub async fn claim_part(
        &self,
        job_id: &str,
        part: u32,
        worker_id: &str,
        lease: Duration,
        max_attempts: i32,
    ) -> anyhow::Result<Option<PartRange>> {
        let now = Utc::now();
        let job_running = Query::select()
            .column(job::Column::Id)
            .from(job::Entity)
            .and_where(job::Column::Id.eq(job_id))
            .and_where(job::Column::State.eq(JobState::Running.as_str()))
            .and_where(job::Column::CancelRequested.eq(false))
            .to_owned();
        let result = job_part::Entity::update_many()
            .col_expr(job_part::Column::State, Expr::value(RUNNING))
            .col_expr(job_part::Column::WorkerId, Expr::value(worker_id))
            .col_expr(job_part::Column::LeaseUntil, Expr::value(now + chrono_delay(lease)))
            .col_expr(job_part::Column::Attempts, Expr::col(job_part::Column::Attempts).add(1))
            .col_expr(job_part::Column::UpdatedAt, Expr::value(now))
            .filter(job_part::Column::JobId.eq(job_id))
            .filter(job_part::Column::Part.eq(to_i32(part)))
            .filter(job_part::Column::Attempts.lt(max_attempts))
            .filter(claimable(now))
            .filter(job_part::Column::JobId.in_subquery(job_running))
            .exec(&self.db)
            .await?;
        if result.rows_affected != 1 {
            return Ok(None);
        }
        Ok(job_part::Entity::find_by_id((job_id.to_owned(), to_i32(part)))
            .one(&self.db)
            .await?
            .map(|row| range_of(&row)))
    }

    /// Takes the first part of the job that [`claim_part`](Self::claim_part) would give.
    pub async fn claim_next_part(
        &self,
        job_id: &str,
        worker_id: &str,
        lease: Duration,
        max_attempts: i32,
    ) -> anyhow::Result<Option<PartRange>> {
        let candidates = job_part::Entity::find()
            .filter(job_part::Column::JobId.eq(job_id))
            .filter(job_part::Column::Attempts.lt(max_attempts))
            .filter(claimable(Utc::now()))
            .order_by_asc(job_part::Column::Part)
            .all(&self.db)
            .await?;
        for candidate in candidates {
            if let Some(range) = self
                .claim_part(job_id, to_u32(candidate.part), worker_id, lease, max_attempts)
                .await?
            {
                return Ok(Some(range));
            }
        }
        Ok(None)
    }

    /// Ends a part `worker_id` holds: its vectors `(content hash, vector)` and its `done`
    /// in one transaction. `false` (and nothing written) when the part is no longer its own
    /// (its lease ran out and another worker took it).
    pub async fn finish_part(
        &self,
        job_id: &str,
        part: u32,
        worker_id: &str,
        vectors: &[(String, Vec<f32>)],
    ) -> anyhow::Result<bool> {
        let txn = crate::db::begin_write(&self.db).await?;
        let result = job_part::Entity::update_many()
            .col_expr(job_part::Column::State, Expr::value(DONE))
            .col_expr(
                job_part::Column::LeaseUntil,
                Expr::value(Option::<chrono::DateTime<Utc>>::None),
            )
            .col_expr(job_part::Column::Error, Expr::value(Option::<String>::None))
            .col_expr(job_part::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(job_part::Column::JobId.eq(job_id))
            .filter(job_part::Column::Part.eq(to_i32(part)))
            .filter(job_part::Column::WorkerId.eq(worker_id))
            .filter(job_part::Column::State.eq(RUNNING))
            .exec(&txn)
            .await?;
        if result.rows_affected != 1 {
            txn.rollback().await?;
            return Ok(false);
        }
        for batch in vectors.chunks(INSERT_BATCH) {
            let rows = batch.iter().map(|(hash, vector)| job_part_vector::ActiveModel {
                job_id: Set(job_id.to_owned()),
                content_hash: Set(hash.clone()),
                embedding: Set(to_blob(vector)),
            });
            // Equal text in two parts is embedded by both; the first vector stays.
            job_part_vector::Entity::insert_many(rows)
                .on_conflict_do_nothing_on([job_part_vector::Column::JobId, job_part_vector::Column::ContentHash])
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(true)
    }

    /// Gives a part `worker_id` holds back to the queue (its run failed with `error`, or its
    /// worker is stopping): the next claim takes it at once.
    pub async fn release_part(
        &self,
        job_id: &str,
        part: u32,
        worker_id: &str,
        error: Option<&str>,
    ) -> anyhow::Result<()> {
        back_to_queue(Utc::now())
            .col_expr(job_part::Column::Error, Expr::value(error.map(str::to_owned)))
            .filter(job_part::Column::JobId.eq(job_id))
            .filter(job_part::Column::Part.eq(to_i32(part)))
            .filter(job_part::Column::WorkerId.eq(worker_id))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Heartbeat: keeps the leases of the parts `worker_id` runs until `until`.
    pub(super) async fn extend_part_leases(&self, worker_id: &str, until: chrono::DateTime<Utc>) -> anyhow::Result<()> {
        job_part::Entity::update_many()
            .col_expr(job_part::Column::LeaseUntil, Expr::value(until))
            .filter(job_part::Column::WorkerId.eq(worker_id))
            .filter(job_part::Column::State.eq(RUNNING))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// A stopping worker's parts go back to the queue: whoever runs their job takes them at once.
    pub(super) async fn hand_back_parts(&self, worker_id: &str) -> anyhow::Result<()> {
        back_to_queue(Utc::now())
            .filter(job_part::Column::WorkerId.eq(worker_id))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// How far the job's parts are, a part out of `max_attempts` named.
    pub async fn parts_progress(&self, job_id: &str, max_attempts: i32) -> anyhow::Result<PartsProgress> {
        let now = Utc::now();
        let rows = job_part::Entity::find()
            .filter(job_part::Column::JobId.eq(job_id))
            .order_by_asc(job_part::Column::Part)
            .all(&self.db)
            .await?;
        let mut progress = PartsProgress::default();
        for row in &rows {
            let chunks = range_of(row).len();
            progress.parts += 1;
            progress.chunks += chunks;
            if row.state == DONE {
                progress.done += 1;
                progress.chunks_done += chunks;
            } else if row.attempts >= max_attempts
                && (row.state == QUEUED || row.lease_until.is_none_or(|lease| lease < now))
                && progress.given_up.is_none()
            {
                let error = row.error.clone().unwrap_or_else(|| "its worker stopped".to_owned());
                progress.given_up = Some((to_u32(row.part), error));
            }
        }
        Ok(progress)
    }

    /// The vectors the job's finished parts computed, by content hash.
    pub async fn part_vectors(&self, job_id: &str) -> anyhow::Result<HashMap<String, Vec<f32>>> {
        let rows = job_part_vector::Entity::find()
            .filter(job_part_vector::Column::JobId.eq(job_id))
            .all(&self.db)
            .await?;
        rows.into_iter()
            .map(|row| {
                anyhow::ensure!(
                    row.embedding.len() % 4 == 0,
                    "a part's vector has {} bytes",
                    row.embedding.len()
                );
                let dimensions = row.embedding.len() / 4;
                Ok((row.content_hash, from_blob(&row.embedding, dimensions)?))
            })
            .collect()
    }

    /// Removes the job's parts and their vectors.
    pub async fn drop_parts(&self, job_id: &str) -> anyhow::Result<()> {
        let txn = crate::db::begin_write(&self.db).await?;
        delete_parts(&txn, job_id).await?;
        txn.commit().await?;
        Ok(())
    }
}

async fn delete_parts(txn: &impl ConnectionTrait, job_id: &str) -> anyhow::Result<()> {
    job_part_vector::Entity::delete_many()
        .filter(job_part_vector::Column::JobId.eq(job_id))
        .exec(txn)
        .await?;
    job_part::Entity::delete_many()
        .filter(job_part::Column::JobId.eq(job_id))
        .exec(txn)
        .await?;
    Ok(())
}
