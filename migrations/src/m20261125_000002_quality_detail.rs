//! A quality gate's verdict in words (what was measured, what to do), for GET /books/{id}/quality.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum QualityResults {
    Table,
    Detail,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(QualityResults::Table)
                    .add_column(ColumnDef::new(QualityResults::Detail).text().not_null().default(""))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(QualityResults::Table)
                    .drop_column(QualityResults::Detail)
                    .to_owned(),
            )
            .await
    }
}
