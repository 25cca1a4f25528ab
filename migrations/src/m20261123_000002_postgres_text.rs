//! PostgreSQL only: full-text search over page text (a generated tsvector with a GIN index)
//! and the pgvector extension the embeddings will use. SQLite has FTS5 from the first migration.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        // Needs a superuser, unless an administrator created the extension beforehand:
        // IF NOT EXISTS then succeeds without any privilege.
        db.execute_unprepared("CREATE EXTENSION IF NOT EXISTS vector").await?;
        // 'simple': no stemming and no stop words, so any language and any term of art is found as written.
        db.execute_unprepared(
            "CREATE TABLE IF NOT EXISTS page_search (\
             book_id text NOT NULL, \
             page integer NOT NULL, \
             text text NOT NULL, \
             tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple', text)) STORED, \
             PRIMARY KEY (book_id, page))",
        )
        .await?;
        db.execute_unprepared("CREATE INDEX IF NOT EXISTS idx_page_search_tsv ON page_search USING GIN (tsv)")
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        // The extension stays: other tables may hold vectors by then.
        manager
            .get_connection()
            .execute_unprepared("DROP TABLE IF EXISTS page_search")
            .await?;
        Ok(())
    }
}
