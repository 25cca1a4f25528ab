//! Lookups the graph's index terms need: edges by target (which index terms point to a
//! shared term) and nodes by label (shared terms by key prefix).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum GraphNodes {
    Table,
    Label,
    Id,
}

#[derive(DeriveIden, Clone, Copy)]
enum GraphEdges {
    Table,
    Dst,
    Rel,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("idx_graph_edges_dst")
                    .table(GraphEdges::Table)
                    .col(GraphEdges::Dst)
                    .col(GraphEdges::Rel)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_graph_nodes_label")
                    .table(GraphNodes::Table)
                    .col(GraphNodes::Label)
                    .col(GraphNodes::Id)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_graph_nodes_label")
                    .table(GraphNodes::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("idx_graph_edges_dst")
                    .table(GraphEdges::Table)
                    .to_owned(),
            )
            .await
    }
}
