//! One live job per book, enforced by the database: a partial unique index on
//! `jobs(book_id)` over the live states (queued, running, failed awaiting its retry). Two
//! uploads of one book that both passed the API's check, or a requeue beside a newer job,
//! cannot both commit a live job. Duplicates left by earlier versions are settled first: every
//! live job of a book but its newest ends `cancelled`.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Jobs {
    Table,
    BookId,
    State,
}

/// The states of a job that may still run; the same list as `JobState::LIVE`.
const LIVE: [&str; 3] = ["queued", "running", "failed"];

const INDEX: &str = "idx_jobs_one_live_per_book";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let live = LIVE.map(|state| format!("'{state}'")).join(", ");
        // Plain SQL both backends read alike; no timestamp is written (SQLite keeps sea-orm's
        // text form), the finish time is the job's last update.
        manager
            .get_connection()
            .execute_unprepared(&format!(
                "UPDATE jobs SET state = 'cancelled', finished_at = updated_at, \
                 error = 'superseded by a newer job of the book' \
                 WHERE state IN ({live}) AND EXISTS (\
                   SELECT 1 FROM jobs AS newer WHERE newer.book_id = jobs.book_id \
                   AND newer.state IN ({live}) \
                   AND (newer.created_at > jobs.created_at \
                        OR (newer.created_at = jobs.created_at AND newer.id > jobs.id)))"
            ))
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(INDEX)
                    .table(Jobs::Table)
                    .col(Jobs::BookId)
                    .unique()
                    .if_not_exists()
                    .and_where(Expr::col(Jobs::State).is_in(LIVE))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name(INDEX).table(Jobs::Table).if_exists().to_owned())
            .await
    }
}
