//! Books and what the pipeline extracted from them: the read side for the API and the
//! idempotent write side for the pipeline.

use std::collections::HashMap;

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Set,
};

use crate::chunking::Chunk;
use crate::db::entities::{
    api_key_library, book, chunk, index_entry, index_locator, job, job_attempt, job_part, job_part_vector, library,
    page, quality_result, toc_entry,
};
use crate::db::to_i32;
use crate::domain::{BookLanguages, BookStatus, clean_label, new_id};
use crate::quality::GateResult;

/// `SELECT id FROM books WHERE library_id IN (…)`: for `book_id IN (…)` filters of other
/// tables by library.
pub(crate) fn books_of_libraries(libraries: &[String]) -> sea_orm::sea_query::SelectStatement {
    sea_orm::sea_query::Query::select()
        .column(book::Column::Id)
        .from(book::Entity)
        .and_where(book::Column::LibraryId.is_in(libraries.iter().cloned()))
        .to_owned()
}

/// The library every book made before libraries moved to, and where a book goes when none
/// is named (made by the migration, never removed).
pub const DEFAULT_LIBRARY: &str = "default";

/// Rows per INSERT, well under SQLite's and PostgreSQL's bind-parameter limits.
const BATCH: usize = 500;

#[derive(Clone)]
pub struct Catalog {
    db: DatabaseConnection,
}

impl Catalog {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// A book in English, the default language.
    pub async fn create_book(&self, title: &str, author: Option<&str>) -> anyhow::Result<book::Model> {
        self.create_book_written_in(title, author, &BookLanguages::default())
            .await
    }

    /// A book in the default library.
    pub async fn create_book_written_in(
        &self,
        title: &str,
        author: Option<&str>,
        languages: &BookLanguages,
    ) -> anyhow::Result<book::Model> {
        self.create_book_in(DEFAULT_LIBRARY, title, author, languages).await
    }

    /// A book in `library_id` (which must exist: the caller checks).
    pub async fn create_book_in(
        &self,
        library_id: &str,
        title: &str,
        author: Option<&str>,
        languages: &BookLanguages,
    ) -> anyhow::Result<book::Model> {
        let now = Utc::now();
        Ok(book::ActiveModel {
            id: Set(new_id()),
            title: Set(title.to_owned()),
            author: Set(author.map(str::to_owned)),
            status: Set(BookStatus::Created),
            source_path: Set(None),
            content_hash: Set(None),
            page_count: Set(None),
            toc_source: Set(None),
            language: Set(languages.to_string()),
            library_id: Set(library_id.to_owned()),
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
        self.books_in(None, skip, limit).await
    }

    /// Books of these libraries (`None`: of every library), oldest first.
    pub async fn books_in(
        &self,
        libraries: Option<&[String]>,
        skip: u64,
        limit: u64,
    ) -> anyhow::Result<Vec<book::Model>> {
        // SQL takes signed 64-bit numbers, and sea-query's SQLite binding panics on a larger
        // u64: an offset past i64::MAX skips every row all the same.
        let as_sql = |n: u64| n.min(i64::MAX as u64);
        let mut query = book::Entity::find();
        if let Some(libraries) = libraries {
            query = query.filter(book::Column::LibraryId.is_in(libraries.iter().cloned()));
        }
        Ok(query
            .order_by_asc(book::Column::CreatedAt)
            .order_by_asc(book::Column::Id)
            .offset(as_sql(skip))
            .limit(as_sql(limit))
            .all(&self.db)
            .await?)
    }

    /// Ids of every book in these libraries.
    pub async fn book_ids_in(&self, libraries: &[String]) -> anyhow::Result<Vec<String>> {
        Ok(book::Entity::find()
            .select_only()
            .column(book::Column::Id)
            .filter(book::Column::LibraryId.is_in(libraries.iter().cloned()))
            .into_tuple()
            .all(&self.db)
            .await?)
    }

    /// Libraries by id, these only (`None`: all).
    pub async fn libraries(&self, only: Option<&[String]>) -> anyhow::Result<Vec<library::Model>> {
        let mut query = library::Entity::find();
        if let Some(only) = only {
            query = query.filter(library::Column::Id.is_in(only.iter().cloned()));
        }
        Ok(query.order_by_asc(library::Column::Id).all(&self.db).await?)
    }

    pub async fn library(&self, id: &str) -> anyhow::Result<Option<library::Model>> {
        Ok(library::Entity::find_by_id(id).one(&self.db).await?)
    }

    /// A new library; `None` when one of that id exists.
    pub async fn create_library(
        &self,
        id: &str,
        name: &str,
        description: Option<&str>,
    ) -> anyhow::Result<Option<library::Model>> {
        let txn = crate::db::begin_write(&self.db).await?;
        if library::Entity::find_by_id(id).one(&txn).await?.is_some() {
            return Ok(None);
        }
        let made = library::ActiveModel {
            id: Set(id.to_owned()),
            name: Set(name.to_owned()),
            description: Set(description.map(str::to_owned)),
            created_at: Set(Utc::now()),
        }
        .insert(&txn)
        .await?;
        txn.commit().await?;
        Ok(Some(made))
    }

    /// Removes an empty library and every key's access to it; `false` when it still holds
    /// a book (checked in the same transaction, so no book is left without its library).
    pub async fn delete_empty_library(&self, id: &str) -> anyhow::Result<bool> {
        let txn = crate::db::begin_write(&self.db).await?;
        let holds_books = book::Entity::find()
            .filter(book::Column::LibraryId.eq(id))
            .count(&txn)
            .await?
            > 0;
        if holds_books {
            return Ok(false);
        }
        api_key_library::Entity::delete_many()
            .filter(api_key_library::Column::LibraryId.eq(id))
            .exec(&txn)
            .await?;
        library::Entity::delete_by_id(id).exec(&txn).await?;
        txn.commit().await?;
        Ok(true)
    }

    /// Books in each library (of these only; `None`: every library), by library id.
    pub async fn book_counts_by_library(&self, only: Option<&[String]>) -> anyhow::Result<HashMap<String, u64>> {
        let mut query = book::Entity::find();
        if let Some(only) = only {
            query = query.filter(book::Column::LibraryId.is_in(only.iter().cloned()));
        }
        let rows: Vec<(String, i64)> = query
            .select_only()
            .column(book::Column::LibraryId)
            .column_as(book::Column::Id.count(), "books")
            .group_by(book::Column::LibraryId)
            .into_tuple()
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(library, books)| (library, u64::try_from(books).unwrap_or(0)))
            .collect())
    }

    pub async fn count_books_with_status(&self, status: BookStatus) -> anyhow::Result<u64> {
        Ok(book::Entity::find()
            .filter(book::Column::Status.eq(status.as_str()))
            .count(&self.db)
            .await?)
    }

    /// Marks a book ready outside the pipeline (benchmarks and tools that load books directly).
    pub async fn mark_ready(&self, id: &str) -> anyhow::Result<()> {
        book::Entity::update_many()
            .col_expr(book::Column::Status, Expr::value(BookStatus::Ready.as_str()))
            .col_expr(book::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(book::Column::Id.eq(id))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Another book's already-processed copy of the same content, if any.
    pub async fn books_with_content(&self, sha256: &str) -> anyhow::Result<Vec<book::Model>> {
        Ok(book::Entity::find()
            .filter(book::Column::ContentHash.eq(sha256))
            .all(&self.db)
            .await?)
    }

    /// Stores the extraction of a book, replacing any earlier one (a re-run leaves one copy).
    pub async fn save_extraction(&self, book_id: &str, extraction: &hbi_extraction::Extraction) -> anyhow::Result<()> {
        let (pages, toc) = (&extraction.pages, &extraction.toc);
        let txn = crate::db::begin_write(&self.db).await?;
        delete_extraction(&txn, book_id).await?;
        for batch in pages.chunks(BATCH) {
            let rows = batch.iter().map(|p| page::ActiveModel {
                book_id: Set(book_id.to_owned()),
                number: Set(to_i32(p.number)),
                label: Set(clean_label(&p.label)),
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
        save_index(&txn, book_id, &extraction.index).await?;
        book::Entity::update_many()
            .col_expr(
                book::Column::PageCount,
                Expr::value(i32::try_from(pages.len()).unwrap_or(i32::MAX)),
            )
            .col_expr(book::Column::TocSource, Expr::value(extraction.toc_source.as_str()))
            .col_expr(book::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(book::Column::Id.eq(book_id))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(())
    }

    /// Replaces the book's chunks (one copy per book, whatever ran before).
    pub async fn replace_chunks(&self, book_id: &str, chunks: &[Chunk]) -> anyhow::Result<()> {
        let txn = crate::db::begin_write(&self.db).await?;
        chunk::Entity::delete_many()
            .filter(chunk::Column::BookId.eq(book_id))
            .exec(&txn)
            .await?;
        for batch in chunks.chunks(BATCH / 5) {
            let rows = batch.iter().map(|c| chunk::ActiveModel {
                id: Set(c.id(book_id)),
                book_id: Set(book_id.to_owned()),
                position: Set(to_i32(c.position)),
                section_path: Set(json_list(&c.section_path)),
                first_page: Set(to_i32(c.first_page)),
                last_page: Set(to_i32(c.last_page)),
                first_label: Set(clean_label(&c.first_label)),
                last_label: Set(clean_label(&c.last_label)),
                text: Set(c.text.clone()),
                content_hash: Set(c.content_hash()),
            });
            chunk::Entity::insert_many(rows).exec(&txn).await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// Replaces the book's quality results with those of `job_id`'s run.
    pub async fn replace_quality(&self, book_id: &str, job_id: &str, gates: &[GateResult]) -> anyhow::Result<()> {
        let now = Utc::now();
        let txn = crate::db::begin_write(&self.db).await?;
        quality_result::Entity::delete_many()
            .filter(quality_result::Column::BookId.eq(book_id))
            .exec(&txn)
            .await?;
        if !gates.is_empty() {
            let rows = gates.iter().map(|gate| quality_result::ActiveModel {
                book_id: Set(book_id.to_owned()),
                job_id: Set(job_id.to_owned()),
                gate: Set(gate.gate.to_owned()),
                metric: Set(gate.metric),
                threshold: Set(gate.threshold),
                passed: Set(gate.passed),
                detail: Set(gate.detail.clone()),
                created_at: Set(now),
                ..Default::default()
            });
            quality_result::Entity::insert_many(rows).exec(&txn).await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// The gates of the book's last run, in the order they ran.
    pub async fn quality(&self, book_id: &str) -> anyhow::Result<Vec<quality_result::Model>> {
        Ok(quality_result::Entity::find()
            .filter(quality_result::Column::BookId.eq(book_id))
            .order_by_asc(quality_result::Column::Id)
            .all(&self.db)
            .await?)
    }

    /// Chunks by id, in no particular order (unknown ids are skipped).
    pub async fn chunks_by_id(&self, ids: &[String]) -> anyhow::Result<Vec<chunk::Model>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(chunk::Entity::find()
            .filter(chunk::Column::Id.is_in(ids.iter().cloned()))
            .all(&self.db)
            .await?)
    }

    /// The book's chunks in reading order.
    pub async fn chunks(&self, book_id: &str) -> anyhow::Result<Vec<chunk::Model>> {
        Ok(chunk::Entity::find()
            .filter(chunk::Column::BookId.eq(book_id))
            .order_by_asc(chunk::Column::Position)
            .all(&self.db)
            .await?)
    }

    /// The book's chunks at positions `first..end`, in reading order, as the chunk stage
    /// made them (what a part of the book's job embeds).
    pub async fn chunks_between(&self, book_id: &str, first: u32, end: u32) -> anyhow::Result<Vec<Chunk>> {
        let rows = chunk::Entity::find()
            .filter(chunk::Column::BookId.eq(book_id))
            .filter(chunk::Column::Position.gte(to_i32(first)))
            .filter(chunk::Column::Position.lt(to_i32(end)))
            .order_by_asc(chunk::Column::Position)
            .all(&self.db)
            .await?;
        rows.into_iter()
            .map(|row| {
                Ok(Chunk {
                    position: u32::try_from(row.position)?,
                    section_path: serde_json::from_str(&row.section_path)
                        .map_err(|err| anyhow::anyhow!("chunk {} has an unreadable section path: {err}", row.id))?,
                    text: row.text,
                    first_page: u32::try_from(row.first_page)?,
                    last_page: u32::try_from(row.last_page)?,
                    first_label: row.first_label,
                    last_label: row.last_label,
                })
            })
            .collect()
    }

    /// The book's chunks that cover any of `pages` (physical, 1-based), in reading order.
    pub async fn chunks_covering(&self, book_id: &str, pages: &[u32]) -> anyhow::Result<Vec<chunk::Model>> {
        if pages.is_empty() {
            return Ok(Vec::new());
        }
        let mut covering = Condition::any();
        for &page in pages {
            covering = covering.add(
                Condition::all()
                    .add(chunk::Column::FirstPage.lte(to_i32(page)))
                    .add(chunk::Column::LastPage.gte(to_i32(page))),
            );
        }
        Ok(chunk::Entity::find()
            .filter(chunk::Column::BookId.eq(book_id))
            .filter(covering)
            .order_by_asc(chunk::Column::Position)
            .all(&self.db)
            .await?)
    }

    pub async fn page(&self, book_id: &str, number: u32) -> anyhow::Result<Option<page::Model>> {
        Ok(page::Entity::find()
            .filter(page::Column::BookId.eq(book_id))
            .filter(page::Column::Number.eq(to_i32(number)))
            .one(&self.db)
            .await?)
    }

    /// The text of some of the book's pages, by physical number, in one query.
    pub async fn page_texts(&self, book_id: &str, numbers: &[u32]) -> anyhow::Result<HashMap<u32, String>> {
        self.pages_column(book_id, numbers, page::Column::Text).await
    }

    /// The printed labels of some of the book's pages, by physical number, without reading
    /// their text.
    pub async fn page_labels_of(&self, book_id: &str, numbers: &[u32]) -> anyhow::Result<HashMap<u32, String>> {
        self.pages_column(book_id, numbers, page::Column::Label).await
    }

    /// One text column of some of the book's pages, by physical number, in one query.
    async fn pages_column(
        &self,
        book_id: &str,
        numbers: &[u32],
        column: page::Column,
    ) -> anyhow::Result<HashMap<u32, String>> {
        let rows: Vec<(i32, String)> = page::Entity::find()
            .select_only()
            .column(page::Column::Number)
            .column(column)
            .filter(page::Column::BookId.eq(book_id))
            .filter(page::Column::Number.is_in(numbers.iter().map(|&number| to_i32(number))))
            .into_tuple()
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(number, value)| Some((u32::try_from(number).ok()?, value)))
            .collect())
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
        let txn = crate::db::begin_write(&self.db).await?;
        delete_extraction(&txn, book_id).await?;
        let job_ids: Vec<String> = job::Entity::find()
            .select_only()
            .column(job::Column::Id)
            .filter(job::Column::BookId.eq(book_id))
            .into_tuple()
            .all(&txn)
            .await?;
        if !job_ids.is_empty() {
            job_attempt::Entity::delete_many()
                .filter(job_attempt::Column::JobId.is_in(job_ids.clone()))
                .exec(&txn)
                .await?;
            job_part_vector::Entity::delete_many()
                .filter(job_part_vector::Column::JobId.is_in(job_ids.clone()))
                .exec(&txn)
                .await?;
            job_part::Entity::delete_many()
                .filter(job_part::Column::JobId.is_in(job_ids))
                .exec(&txn)
                .await?;
        }
        job::Entity::delete_many()
            .filter(job::Column::BookId.eq(book_id))
            .exec(&txn)
            .await?;
        quality_result::Entity::delete_many()
            .filter(quality_result::Column::BookId.eq(book_id))
            .exec(&txn)
            .await?;
        let deleted = book::Entity::delete_by_id(book_id).exec(&txn).await?;
        txn.commit().await?;
        Ok(deleted.rows_affected == 1)
    }

    /// The book's index entries in document order, each with its physical page ranges.
    pub async fn index_entries(
        &self,
        book_id: &str,
    ) -> anyhow::Result<Vec<(index_entry::Model, Vec<index_locator::Model>)>> {
        let entries = index_entry::Entity::find()
            .filter(index_entry::Column::BookId.eq(book_id))
            .order_by_asc(index_entry::Column::Position)
            .all(&self.db)
            .await?;
        let locators = index_locator::Entity::find()
            .filter(index_locator::Column::BookId.eq(book_id))
            .order_by_asc(index_locator::Column::Id)
            .all(&self.db)
            .await?;
        let mut by_entry: std::collections::HashMap<i64, Vec<index_locator::Model>> = std::collections::HashMap::new();
        for locator in locators {
            by_entry.entry(locator.entry_id).or_default().push(locator);
        }
        Ok(entries
            .into_iter()
            .map(|entry| {
                let pages = by_entry.remove(&entry.id).unwrap_or_default();
                (entry, pages)
            })
            .collect())
    }

    /// Index entries that may match a term search: their term (lower-cased) contains one of
    /// `contains` (as written: `%`, `_` and `\` are no wildcards), or matches one of the LIKE
    /// `patterns`, in `book` or the books of `libraries` (`None`: every book); shortest
    /// terms first, at most `limit`. The caller ranks them.
    pub async fn index_entries_like(
        &self,
        book: Option<&str>,
        libraries: Option<&[String]>,
        contains: &[String],
        patterns: &[String],
        limit: u64,
    ) -> anyhow::Result<Vec<index_entry::Model>> {
        use sea_orm::sea_query::{ExprTrait, Func, LikeExpr};
        // SQLite's LIKE ignores ASCII case already (and its lower() knows no other letters):
        // lower() there would run once per row and pattern for nothing.
        let sqlite = self.db.get_database_backend() == sea_orm::DbBackend::Sqlite;
        let lowered = || {
            if sqlite {
                Expr::col(index_entry::Column::Term)
            } else {
                Expr::expr(Func::lower(Expr::col(index_entry::Column::Term)))
            }
        };
        let mut any = Condition::any();
        for text in contains {
            let literal = crate::graph::like_literal(text);
            any = any.add(lowered().like(LikeExpr::new(format!("%{literal}%")).escape('\\')));
        }
        for pattern in patterns {
            any = any.add(lowered().like(LikeExpr::new(pattern.clone()).escape('\\')));
        }
        let mut query = index_entry::Entity::find().filter(any);
        if let Some(book) = book {
            query = query.filter(index_entry::Column::BookId.eq(book));
        }
        if let Some(libraries) = libraries {
            query = query.filter(index_entry::Column::BookId.in_subquery(books_of_libraries(libraries)));
        }
        Ok(query
            .order_by_asc(Expr::expr(Func::char_length(Expr::col(index_entry::Column::Term))))
            .order_by_asc(index_entry::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?)
    }

    /// The page ranges of these index entries, by entry id.
    pub async fn locators_of(&self, entry_ids: &[i64]) -> anyhow::Result<HashMap<i64, Vec<[u32; 2]>>> {
        let mut ranges: HashMap<i64, Vec<[u32; 2]>> = HashMap::new();
        for batch in entry_ids.chunks(BATCH) {
            let rows = index_locator::Entity::find()
                .filter(index_locator::Column::EntryId.is_in(batch.iter().copied()))
                .order_by_asc(index_locator::Column::Id)
                .all(&self.db)
                .await?;
            for row in rows {
                let (Ok(first), Ok(last)) = (u32::try_from(row.first_page), u32::try_from(row.last_page)) else {
                    continue;
                };
                ranges.entry(row.entry_id).or_default().push([first, last]);
            }
        }
        Ok(ranges)
    }

    /// Index entries whose locators include `page`, in document order.
    pub async fn index_entries_on_page(&self, book_id: &str, page: u32) -> anyhow::Result<Vec<index_entry::Model>> {
        let page = to_i32(page);
        let entry_ids: Vec<i64> = index_locator::Entity::find()
            .select_only()
            .column(index_locator::Column::EntryId)
            .filter(index_locator::Column::BookId.eq(book_id))
            .filter(index_locator::Column::FirstPage.lte(page))
            .filter(index_locator::Column::LastPage.gte(page))
            .into_tuple()
            .all(&self.db)
            .await?;
        if entry_ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(index_entry::Entity::find()
            .filter(index_entry::Column::Id.is_in(entry_ids))
            .order_by_asc(index_entry::Column::Position)
            .all(&self.db)
            .await?)
    }

    pub async fn ping(&self) -> anyhow::Result<()> {
        self.db.execute_unprepared("SELECT 1").await?;
        Ok(())
    }
}

/// Removes what an extraction stored for a book (pages, ToC, index), inside `db`'s transaction.
async fn delete_extraction<C: ConnectionTrait>(db: &C, book_id: &str) -> anyhow::Result<()> {
    chunk::Entity::delete_many()
        .filter(chunk::Column::BookId.eq(book_id))
        .exec(db)
        .await?;
    page::Entity::delete_many()
        .filter(page::Column::BookId.eq(book_id))
        .exec(db)
        .await?;
    toc_entry::Entity::delete_many()
        .filter(toc_entry::Column::BookId.eq(book_id))
        .exec(db)
        .await?;
    index_locator::Entity::delete_many()
        .filter(index_locator::Column::BookId.eq(book_id))
        .exec(db)
        .await?;
    index_entry::Entity::delete_many()
        .filter(index_entry::Column::BookId.eq(book_id))
        .exec(db)
        .await?;
    Ok(())
}

fn json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_owned())
}

async fn save_index<C: ConnectionTrait>(
    db: &C,
    book_id: &str,
    index: &[hbi_extraction::IndexEntry],
) -> anyhow::Result<()> {
    for (start, batch) in index.chunks(BATCH).enumerate().map(|(i, b)| (i * BATCH, b)) {
        let rows = batch
            .iter()
            .enumerate()
            .map(|(offset, entry)| index_entry::ActiveModel {
                book_id: Set(book_id.to_owned()),
                position: Set(i32::try_from(start + offset).unwrap_or(i32::MAX)),
                index_name: Set(entry.index_name.clone().unwrap_or_default()),
                path: Set(json_list(&entry.path)),
                term: Set(entry.path.last().cloned().unwrap_or_default()),
                depth: Set(i32::try_from(entry.path.len()).unwrap_or(1)),
                printed: Set(json_list(&entry.printed)),
                see: Set(json_list(&entry.see)),
                see_also: Set(json_list(&entry.see_also)),
                ..Default::default()
            });
        index_entry::Entity::insert_many(rows).exec(db).await?;
    }
    // Locators need the entries' ids: read them back in document order.
    let ids: Vec<i64> = index_entry::Entity::find()
        .select_only()
        .column(index_entry::Column::Id)
        .filter(index_entry::Column::BookId.eq(book_id))
        .order_by_asc(index_entry::Column::Position)
        .into_tuple()
        .all(db)
        .await?;
    let locators: Vec<index_locator::ActiveModel> = ids
        .iter()
        .zip(index)
        .flat_map(|(id, entry)| {
            entry.pages.iter().map(move |[first, last]| index_locator::ActiveModel {
                entry_id: Set(*id),
                book_id: Set(book_id.to_owned()),
                first_page: Set(to_i32(*first)),
                last_page: Set(to_i32((*last).max(*first))),
                ..Default::default()
            })
        })
        .collect();
    for batch in locators.chunks(BATCH) {
        index_locator::Entity::insert_many(batch.to_vec()).exec(db).await?;
    }
    Ok(())
}
