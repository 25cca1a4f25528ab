//! Books, files, jobs and their attempts, page text, ToC, index entries, chunks,
//! quality results, live settings and the embedded graph.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Books {
    Table,
    Id,
    Title,
    Author,
    Status,
    SourcePath,
    ContentHash,
    PageCount,
    TocSource,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Files {
    Table,
    Sha256,
    SizeBytes,
    ContentType,
    OriginalName,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Jobs {
    Table,
    Id,
    BookId,
    FileSha256,
    State,
    Stage,
    ProgressDone,
    ProgressTotal,
    Attempts,
    MaxAttempts,
    Error,
    ErrorStage,
    Retryable,
    WorkerId,
    LeaseUntil,
    EnqueuedAt,
    RunAfter,
    CancelRequested,
    CreatedAt,
    StartedAt,
    FinishedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum JobAttempts {
    Table,
    Id,
    JobId,
    Attempt,
    WorkerId,
    Stage,
    Outcome,
    Error,
    StartedAt,
    FinishedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Pages {
    Table,
    Id,
    BookId,
    Number,
    Label,
    Text,
}

#[derive(DeriveIden, Clone, Copy)]
enum TocEntries {
    Table,
    Id,
    BookId,
    Position,
    Level,
    Title,
    Page,
}

#[derive(DeriveIden, Clone, Copy)]
enum IndexEntries {
    Table,
    Id,
    BookId,
    Position,
    IndexName,
    Path,
    Term,
    Depth,
    Printed,
    See,
    SeeAlso,
}

#[derive(DeriveIden, Clone, Copy)]
enum IndexLocators {
    Table,
    Id,
    EntryId,
    BookId,
    FirstPage,
    LastPage,
}

#[derive(DeriveIden, Clone, Copy)]
enum Chunks {
    Table,
    Id,
    BookId,
    Position,
    SectionPath,
    FirstPage,
    LastPage,
    Text,
    ContentHash,
}

#[derive(DeriveIden, Clone, Copy)]
enum QualityResults {
    Table,
    Id,
    BookId,
    JobId,
    Gate,
    Metric,
    Threshold,
    Passed,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Settings {
    Table,
    Key,
    Value,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum GraphNodes {
    Table,
    Id,
    Label,
    BookId,
    Props,
}

#[derive(DeriveIden, Clone, Copy)]
enum GraphEdges {
    Table,
    Id,
    Src,
    Rel,
    Dst,
    BookId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Books::Table)
                    .if_not_exists()
                    .col(string(Books::Id).primary_key())
                    .col(text(Books::Title))
                    .col(text_null(Books::Author))
                    .col(string(Books::Status))
                    .col(text_null(Books::SourcePath))
                    .col(string_null(Books::ContentHash))
                    .col(integer_null(Books::PageCount))
                    .col(string_null(Books::TocSource))
                    .col(timestamp_with_time_zone(Books::CreatedAt))
                    .col(timestamp_with_time_zone(Books::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Files::Table)
                    .if_not_exists()
                    .col(string(Files::Sha256).primary_key())
                    .col(big_integer(Files::SizeBytes))
                    .col(string(Files::ContentType))
                    .col(text_null(Files::OriginalName))
                    .col(timestamp_with_time_zone(Files::CreatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Jobs::Table)
                    .if_not_exists()
                    .col(string(Jobs::Id).primary_key())
                    .col(string(Jobs::BookId))
                    .col(string(Jobs::FileSha256))
                    .col(string(Jobs::State))
                    .col(string_null(Jobs::Stage))
                    .col(integer(Jobs::ProgressDone).default(0))
                    .col(integer(Jobs::ProgressTotal).default(0))
                    .col(integer(Jobs::Attempts).default(0))
                    .col(integer(Jobs::MaxAttempts))
                    .col(text_null(Jobs::Error))
                    .col(string_null(Jobs::ErrorStage))
                    .col(boolean(Jobs::Retryable).default(true))
                    .col(string_null(Jobs::WorkerId))
                    .col(timestamp_with_time_zone_null(Jobs::LeaseUntil))
                    .col(timestamp_with_time_zone_null(Jobs::EnqueuedAt))
                    .col(timestamp_with_time_zone_null(Jobs::RunAfter))
                    .col(boolean(Jobs::CancelRequested).default(false))
                    .col(timestamp_with_time_zone(Jobs::CreatedAt))
                    .col(timestamp_with_time_zone_null(Jobs::StartedAt))
                    .col(timestamp_with_time_zone_null(Jobs::FinishedAt))
                    .col(timestamp_with_time_zone(Jobs::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        index(manager, "idx_jobs_state", Jobs::Table, &[Jobs::State]).await?;
        index(manager, "idx_jobs_book", Jobs::Table, &[Jobs::BookId]).await?;

        manager
            .create_table(
                Table::create()
                    .table(JobAttempts::Table)
                    .if_not_exists()
                    .col(big_pk_auto(JobAttempts::Id))
                    .col(string(JobAttempts::JobId))
                    .col(integer(JobAttempts::Attempt))
                    .col(string(JobAttempts::WorkerId))
                    .col(string_null(JobAttempts::Stage))
                    .col(string(JobAttempts::Outcome))
                    .col(text_null(JobAttempts::Error))
                    .col(timestamp_with_time_zone(JobAttempts::StartedAt))
                    .col(timestamp_with_time_zone_null(JobAttempts::FinishedAt))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "idx_job_attempts_job",
            JobAttempts::Table,
            &[JobAttempts::JobId],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(Pages::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Pages::Id))
                    .col(string(Pages::BookId))
                    .col(integer(Pages::Number))
                    .col(string(Pages::Label))
                    .col(text(Pages::Text))
                    .to_owned(),
            )
            .await?;
        unique_index(
            manager,
            "uq_pages_book_number",
            Pages::Table,
            &[Pages::BookId, Pages::Number],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(TocEntries::Table)
                    .if_not_exists()
                    .col(big_pk_auto(TocEntries::Id))
                    .col(string(TocEntries::BookId))
                    .col(integer(TocEntries::Position))
                    .col(integer(TocEntries::Level))
                    .col(text(TocEntries::Title))
                    .col(integer_null(TocEntries::Page))
                    .to_owned(),
            )
            .await?;
        unique_index(
            manager,
            "uq_toc_book_position",
            TocEntries::Table,
            &[TocEntries::BookId, TocEntries::Position],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(IndexEntries::Table)
                    .if_not_exists()
                    .col(big_pk_auto(IndexEntries::Id))
                    .col(string(IndexEntries::BookId))
                    .col(integer(IndexEntries::Position))
                    .col(text(IndexEntries::IndexName))
                    .col(text(IndexEntries::Path))
                    .col(text(IndexEntries::Term))
                    .col(integer(IndexEntries::Depth))
                    .col(text(IndexEntries::Printed))
                    .col(text(IndexEntries::See))
                    .col(text(IndexEntries::SeeAlso))
                    .to_owned(),
            )
            .await?;
        unique_index(
            manager,
            "uq_index_book_position",
            IndexEntries::Table,
            &[IndexEntries::BookId, IndexEntries::Position],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(IndexLocators::Table)
                    .if_not_exists()
                    .col(big_pk_auto(IndexLocators::Id))
                    .col(big_integer(IndexLocators::EntryId))
                    .col(string(IndexLocators::BookId))
                    .col(integer(IndexLocators::FirstPage))
                    .col(integer(IndexLocators::LastPage))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "idx_locators_entry",
            IndexLocators::Table,
            &[IndexLocators::EntryId],
        )
        .await?;
        index(
            manager,
            "idx_locators_book_page",
            IndexLocators::Table,
            &[IndexLocators::BookId, IndexLocators::FirstPage],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(Chunks::Table)
                    .if_not_exists()
                    .col(string(Chunks::Id).primary_key())
                    .col(string(Chunks::BookId))
                    .col(integer(Chunks::Position))
                    .col(text(Chunks::SectionPath))
                    .col(integer(Chunks::FirstPage))
                    .col(integer(Chunks::LastPage))
                    .col(text(Chunks::Text))
                    .col(string(Chunks::ContentHash))
                    .to_owned(),
            )
            .await?;
        index(manager, "idx_chunks_book", Chunks::Table, &[Chunks::BookId]).await?;

        manager
            .create_table(
                Table::create()
                    .table(QualityResults::Table)
                    .if_not_exists()
                    .col(big_pk_auto(QualityResults::Id))
                    .col(string(QualityResults::BookId))
                    .col(string(QualityResults::JobId))
                    .col(string(QualityResults::Gate))
                    .col(double(QualityResults::Metric))
                    .col(double(QualityResults::Threshold))
                    .col(boolean(QualityResults::Passed))
                    .col(timestamp_with_time_zone(QualityResults::CreatedAt))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "idx_quality_book",
            QualityResults::Table,
            &[QualityResults::BookId],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(Settings::Table)
                    .if_not_exists()
                    .col(string(Settings::Key).primary_key())
                    .col(text(Settings::Value))
                    .col(timestamp_with_time_zone(Settings::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(GraphNodes::Table)
                    .if_not_exists()
                    .col(string(GraphNodes::Id).primary_key())
                    .col(string(GraphNodes::Label))
                    .col(string_null(GraphNodes::BookId))
                    .col(text(GraphNodes::Props))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "idx_graph_nodes_book",
            GraphNodes::Table,
            &[GraphNodes::BookId],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(GraphEdges::Table)
                    .if_not_exists()
                    .col(big_pk_auto(GraphEdges::Id))
                    .col(string(GraphEdges::Src))
                    .col(string(GraphEdges::Rel))
                    .col(string(GraphEdges::Dst))
                    .col(string_null(GraphEdges::BookId))
                    .to_owned(),
            )
            .await?;
        unique_index(
            manager,
            "uq_graph_edges",
            GraphEdges::Table,
            &[GraphEdges::Src, GraphEdges::Rel, GraphEdges::Dst],
        )
        .await?;
        index(
            manager,
            "idx_graph_edges_book",
            GraphEdges::Table,
            &[GraphEdges::BookId],
        )
        .await?;

        if manager.get_database_backend() == DbBackend::Sqlite {
            // Full-text search over page text; bm25(), snippet() and highlight() come with FTS5.
            manager
                .get_connection()
                .execute_unprepared(
                    "CREATE VIRTUAL TABLE IF NOT EXISTS pages_fts USING fts5(\
                     text, book_id UNINDEXED, page UNINDEXED, tokenize = 'unicode61 remove_diacritics 2')",
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Sqlite {
            manager
                .get_connection()
                .execute_unprepared("DROP TABLE IF EXISTS pages_fts")
                .await?;
        }
        for table in [
            GraphEdges::Table.into_iden(),
            GraphNodes::Table.into_iden(),
            Settings::Table.into_iden(),
            QualityResults::Table.into_iden(),
            Chunks::Table.into_iden(),
            IndexLocators::Table.into_iden(),
            IndexEntries::Table.into_iden(),
            TocEntries::Table.into_iden(),
            Pages::Table.into_iden(),
            JobAttempts::Table.into_iden(),
            Jobs::Table.into_iden(),
            Files::Table.into_iden(),
            Books::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}

async fn index<T: IntoIden + Copy + 'static, C: IntoIden + Copy + 'static>(
    manager: &SchemaManager<'_>,
    name: &str,
    table: T,
    columns: &[C],
) -> Result<(), DbErr> {
    let mut stmt = Index::create();
    stmt.name(name).table(table).if_not_exists();
    for column in columns {
        stmt.col(*column);
    }
    manager.create_index(stmt.to_owned()).await
}

async fn unique_index<T: IntoIden + Copy + 'static, C: IntoIden + Copy + 'static>(
    manager: &SchemaManager<'_>,
    name: &str,
    table: T,
    columns: &[C],
) -> Result<(), DbErr> {
    let mut stmt = Index::create();
    stmt.name(name).table(table).unique().if_not_exists();
    for column in columns {
        stmt.col(*column);
    }
    manager.create_index(stmt.to_owned()).await
}
