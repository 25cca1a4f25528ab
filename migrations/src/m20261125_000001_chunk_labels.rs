//! Chunks carry the printed labels of their first and last page (what a citation shows),
//! and a book holds each chunk position once.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Chunks {
    Table,
    BookId,
    Position,
    FirstLabel,
    LastLabel,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        for column in [Chunks::FirstLabel, Chunks::LastLabel] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Chunks::Table)
                        .add_column(ColumnDef::new(column).string().not_null().default(""))
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("idx_chunks_book_position")
                    .table(Chunks::Table)
                    .col(Chunks::BookId)
                    .col(Chunks::Position)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_chunks_book_position")
                    .table(Chunks::Table)
                    .to_owned(),
            )
            .await?;
        for column in [Chunks::LastLabel, Chunks::FirstLabel] {
            manager
                .alter_table(Table::alter().table(Chunks::Table).drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}
