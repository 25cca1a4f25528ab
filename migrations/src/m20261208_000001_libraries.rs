//! Libraries: every book belongs to exactly one, and an API key either reaches every library
//! (with its own scope: operators, and every key made before libraries) or only the libraries
//! it was given, each with a scope of its own. The `default` library is made here and holds
//! every book that existed before; an audit log of who changed what.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The library every earlier book moves to, and where a book goes when none is named.
const DEFAULT_LIBRARY: &str = "default";

#[derive(DeriveIden, Clone, Copy)]
enum Libraries {
    Table,
    Id,
    Name,
    Description,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Books {
    Table,
    LibraryId,
}

#[derive(DeriveIden, Clone, Copy)]
enum ApiKeys {
    Table,
    AllLibraries,
}

#[derive(DeriveIden, Clone, Copy)]
enum ApiKeyLibraries {
    Table,
    KeyId,
    LibraryId,
    Scope,
}

#[derive(DeriveIden, Clone, Copy)]
enum AuditLog {
    Table,
    Id,
    At,
    KeyId,
    Action,
    LibraryId,
    BookId,
    Target,
    RequestId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Libraries::Table)
                    .if_not_exists()
                    .col(string(Libraries::Id).primary_key())
                    .col(string(Libraries::Name))
                    .col(text_null(Libraries::Description))
                    .col(timestamp_with_time_zone(Libraries::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::insert()
                    .into_table(Libraries::Table)
                    .columns([Libraries::Id, Libraries::Name, Libraries::CreatedAt])
                    .values_panic([
                        DEFAULT_LIBRARY.into(),
                        "Default library".into(),
                        Expr::current_timestamp(),
                    ])
                    .to_owned(),
            )
            .await?;
        // Every existing book lands in `default` through the column's default.
        manager
            .alter_table(
                Table::alter()
                    .table(Books::Table)
                    .add_column(
                        ColumnDef::new(Books::LibraryId)
                            .string()
                            .not_null()
                            .default(DEFAULT_LIBRARY),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_books_library")
                    .table(Books::Table)
                    .col(Books::LibraryId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        // Keys made before libraries keep reaching everything they reached.
        manager
            .alter_table(
                Table::alter()
                    .table(ApiKeys::Table)
                    .add_column(ColumnDef::new(ApiKeys::AllLibraries).boolean().not_null().default(true))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ApiKeyLibraries::Table)
                    .if_not_exists()
                    .col(string(ApiKeyLibraries::KeyId))
                    .col(string(ApiKeyLibraries::LibraryId))
                    .col(string(ApiKeyLibraries::Scope))
                    .primary_key(
                        Index::create()
                            .col(ApiKeyLibraries::KeyId)
                            .col(ApiKeyLibraries::LibraryId),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AuditLog::Table)
                    .if_not_exists()
                    .col(big_pk_auto(AuditLog::Id))
                    .col(timestamp_with_time_zone(AuditLog::At))
                    .col(string(AuditLog::KeyId))
                    .col(string(AuditLog::Action))
                    .col(string_null(AuditLog::LibraryId))
                    .col(string_null(AuditLog::BookId))
                    .col(string_null(AuditLog::Target))
                    .col(string_null(AuditLog::RequestId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_audit_log_at")
                    .table(AuditLog::Table)
                    .col(AuditLog::At)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            AuditLog::Table.into_iden(),
            ApiKeyLibraries::Table.into_iden(),
            Libraries::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        manager
            .drop_index(Index::drop().name("idx_books_library").table(Books::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Books::Table)
                    .drop_column(Books::LibraryId)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(ApiKeys::Table)
                    .drop_column(ApiKeys::AllLibraries)
                    .to_owned(),
            )
            .await
    }
}
