//! Books and what the pipeline extracted from them: the read side for the API and the
//! idempotent write side for the pipeline.

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, TransactionTrait,
};

use crate::db::entities::{book, job, job_attempt, page, toc_entry};
use crate::domain::{BookStatus, new_id};

/// Rows per INSERT, well under SQLite's and PostgreSQL's bind-parameter limits.
const BATCH: usize = 500;

#[derive(Clone)]
pub struct Catalog {
    db: DatabaseConnection,
}

/// One extracted page, as stored.
#[derive(Debug, Clone)]
pub struct PageRecord {
    pub number: u32,
    pub label: String,
    pub text: String,
}

/// One ToC line, as stored (flat, document order).
#[derive(Debug, Clone)]
pub struct TocRecord {
    pub level: u32,
    pub title: String,
    pub page: Option<u32>,
}

fn to_i32(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

impl Catalog {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    pub async fn create_book(&self, title: &str, author: Option<&str>) -> anyhow::Result<book::Model> {
        let now = Utc::now();
        Ok(book::ActiveModel {
            id: Set(new_id()),
            title: Set(title.to_owned()),
            author: Set(author.map(str::to_owned)),
            status: Set(BookStatus::Created.as_str().to_owned()),
            source_path: Set(None),
            content_hash: Set(None),
            page_count: Set(None),
            toc_source: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&self.db)
        .await?)
    }

    pub async fn book(&self, id: &str) -> anyhow::Result<Option<book::Model>> {
        Ok(book::Entity::find_by_id(id).one(&self.db).await?)
    }

    pub async fn books(&self, skip: u64, limit: u64) -> anyhow::Result<Vec<book::Model>> {
        Ok(book::Entity::find()
            .order_by_asc(book::Column::CreatedAt)
            .offset(skip)
            .limit(limit)
            .all(&self.db)
            .await?)
    }

    pub async fn count_books_with_status(&self, status: BookStatus) -> anyhow::Result<u64> {
        Ok(book::Entity::find()
            .filter(book::Column::Status.eq(status.as_str()))
            .count(&self.db)
            .await?)
    }

    /// Another book's already-processed copy of the same content, if any.
    pub async fn books_with_content(&self, sha256: &str) -> anyhow::Result<Vec<book::Model>> {
        Ok(book::Entity::find()
            .filter(book::Column::ContentHash.eq(sha256))
            .all(&self.db)
            .await?)
    }

    /// Stores the extraction of a book, replacing any earlier one (a re-run leaves one copy).
    pub async fn save_extraction(
        &self,
        book_id: &str,
        pages: &[PageRecord],
        toc: &[TocRecord],
        toc_source: &str,
    ) -> anyhow::Result<()> {
        let txn = self.db.begin().await?;
        page::Entity::delete_many()
            .filter(page::Column::BookId.eq(book_id))
            .exec(&txn)
            .await?;
        toc_entry::Entity::delete_many()
            .filter(toc_entry::Column::BookId.eq(book_id))
            .exec(&txn)
            .await?;
        for batch in pages.chunks(BATCH) {
            let rows = batch.iter().map(|p| page::ActiveModel {
                book_id: Set(book_id.to_owned()),
                number: Set(to_i32(p.number)),
                label: Set(p.label.clone()),
                text: Set(p.text.clone()),
                ..Default::default()
            });
            page::Entity::insert_many(rows).exec(&txn).await?;
        }
        for (start, batch) in toc.chunks(BATCH).enumerate().map(|(i, b)| (i * BATCH, b)) {
            let rows = batch.iter().enumerate().map(|(offset, entry)| toc_entry::ActiveModel {
                book_id: Set(book_id.to_owned()),
                position: Set(i32::try_from(start + offset).unwrap_or(i32::MAX)),
                level: Set(to_i32(entry.level)),
                title: Set(entry.title.clone()),
                page: Set(entry.page.map(to_i32)),
                ..Default::default()
            });
            toc_entry::Entity::insert_many(rows).exec(&txn).await?;
        }
        book::Entity::update_many()
            .col_expr(
                book::Column::PageCount,
                Expr::value(i32::try_from(pages.len()).unwrap_or(i32::MAX)),
            )
            .col_expr(book::Column::TocSource, Expr::value(toc_source))
            .col_expr(book::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(book::Column::Id.eq(book_id))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(())
    }

    pub async fn page(&self, book_id: &str, number: u32) -> anyhow::Result<Option<page::Model>> {
        Ok(page::Entity::find()
            .filter(page::Column::BookId.eq(book_id))
            .filter(page::Column::Number.eq(to_i32(number)))
            .one(&self.db)
            .await?)
    }

    /// Printed labels of the book's pages, physical page 1 first.
    pub async fn page_labels(&self, book_id: &str) -> anyhow::Result<Vec<String>> {
        let rows: Vec<(i32, String)> = page::Entity::find()
            .select_only()
            .column(page::Column::Number)
            .column(page::Column::Label)
            .filter(page::Column::BookId.eq(book_id))
            .order_by_asc(page::Column::Number)
            .into_tuple()
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(|(_, label)| label).collect())
    }

    pub async fn toc(&self, book_id: &str) -> anyhow::Result<Vec<toc_entry::Model>> {
        Ok(toc_entry::Entity::find()
            .filter(toc_entry::Column::BookId.eq(book_id))
            .order_by_asc(toc_entry::Column::Position)
            .all(&self.db)
            .await?)
    }

    /// Removes the book's rows (pages, ToC, jobs, attempts, the book). Blobs, the graph and
    /// the text index are removed by their own stores.
    pub async fn delete_book(&self, book_id: &str) -> anyhow::Result<bool> {
        let txn = self.db.begin().await?;
        page::Entity::delete_many()
            .filter(page::Column::BookId.eq(book_id))
            .exec(&txn)
            .await?;
        toc_entry::Entity::delete_many()
            .filter(toc_entry::Column::BookId.eq(book_id))
            .exec(&txn)
            .await?;
        let job_ids: Vec<String> = job::Entity::find()
            .select_only()
            .column(job::Column::Id)
            .filter(job::Column::BookId.eq(book_id))
            .into_tuple()
            .all(&txn)
            .await?;
        if !job_ids.is_empty() {
            job_attempt::Entity::delete_many()
                .filter(job_attempt::Column::JobId.is_in(job_ids))
                .exec(&txn)
                .await?;
        }
        job::Entity::delete_many()
            .filter(job::Column::BookId.eq(book_id))
            .exec(&txn)
            .await?;
        let deleted = book::Entity::delete_by_id(book_id).exec(&txn).await?;
        txn.commit().await?;
        Ok(deleted.rows_affected == 1)
    }

    pub async fn ping(&self) -> anyhow::Result<()> {
        self.db.execute_unprepared("SELECT 1").await?;
        Ok(())
    }
}
