//! The parts of a large book's job (ranges of its chunks to embed), which any worker may
//! take, and the vectors each finished part left for the book's job to gather.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum JobParts {
    Table,
    JobId,
    Part,
    FirstChunk,
    EndChunk,
    ChunkCount,
    State,
    WorkerId,
    LeaseUntil,
    Attempts,
    Error,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum JobPartVectors {
    Table,
    JobId,
    ContentHash,
    Embedding,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(JobParts::Table)
                    .if_not_exists()
                    .col(string(JobParts::JobId))
                    .col(integer(JobParts::Part))
                    .col(integer(JobParts::FirstChunk))
                    .col(integer(JobParts::EndChunk))
                    .col(integer(JobParts::ChunkCount))
                    .col(string(JobParts::State))
                    .col(string_null(JobParts::WorkerId))
                    .col(timestamp_with_time_zone_null(JobParts::LeaseUntil))
                    .col(integer(JobParts::Attempts).default(0))
                    .col(text_null(JobParts::Error))
                    .col(timestamp_with_time_zone(JobParts::UpdatedAt))
                    .primary_key(Index::create().col(JobParts::JobId).col(JobParts::Part))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(JobPartVectors::Table)
                    .if_not_exists()
                    .col(string(JobPartVectors::JobId))
                    .col(string(JobPartVectors::ContentHash))
                    .col(blob(JobPartVectors::Embedding))
                    .primary_key(
                        Index::create()
                            .col(JobPartVectors::JobId)
                            .col(JobPartVectors::ContentHash),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [JobPartVectors::Table.into_iden(), JobParts::Table.into_iden()] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
