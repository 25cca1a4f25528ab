use async_trait::async_trait;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement, Value};

use crate::domain::BookFilter;

use super::{IndexedPage, MATCH_END, MATCH_START, PageHit, TextIndex, clean_text, count_rows, snippet_html};

/// Rows per INSERT: three parameters a row, far under PostgreSQL's 65,535.
const BATCH: usize = 500;

/// Most text indexed for one page. PostgreSQL refuses a tsvector over 1 MiB ("string is too
/// long for tsvector"), which failed the whole book's indexing stage, attempt after attempt,
/// for a page of 400 000 short lines (`text_flood_on_one_page`). A lexeme with its entry
/// and position takes at most about 3.4 times the text it came from (two letters and a space:
/// 2 + 4 + 2 + 2 bytes), so 256 KiB of text stays under the limit; a printed page holds a
/// few KiB.
const MAX_INDEXED_PAGE_BYTES: usize = 256 * 1024;

/// `text` cut to [`MAX_INDEXED_PAGE_BYTES`] at the last whitespace before the limit, so
/// that no word is cut in two.
fn indexable(text: &str) -> &str {
    if text.len() <= MAX_INDEXED_PAGE_BYTES {
        return text;
    }
    let mut end = MAX_INDEXED_PAGE_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let head = &text[..end];
    head.rfind(char::is_whitespace).map_or(head, |space| &head[..space])
}

/// Page text in `page_search`, whose `tsv` column PostgreSQL derives from the text itself
/// (`to_tsvector('simple', text)`, GIN-indexed; migration m20261123_000002).
pub struct PostgresFtsIndex {
    db: DatabaseConnection,
}

impl PostgresFtsIndex {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

fn statement(sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(sea_orm::DbBackend::Postgres, sql, values)
}

/// `INSERT ... VALUES ($1, $2, $3), ($4, $5, $6), ...` for `rows` rows.
fn insert_sql(rows: usize) -> String {
    let mut sql = String::from("INSERT INTO page_search (book_id, page, text) VALUES ");
    for row in 0..rows {
        let first = row * 3 + 1;
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("(${first}, ${}, ${})", first + 1, first + 2));
    }
    sql
}

#[async_trait]
impl TextIndex for PostgresFtsIndex {
    fn kind(&self) -> &'static str {
        "postgres_tsvector"
    }

    async fn index_pages(&self, book_id: &str, pages: &[IndexedPage]) -> anyhow::Result<()> {
        let pages: Vec<&IndexedPage> = pages.iter().filter(|page| !page.text.trim().is_empty()).collect();
        let txn = crate::db::begin_write(&self.db).await?;
        txn.execute_raw(statement(
            "DELETE FROM page_search WHERE book_id = $1",
            vec![book_id.into()],
        ))
        .await?;
        for batch in pages.chunks(BATCH) {
            let values = batch
                .iter()
                .flat_map(|page| {
                    [
                        Value::from(book_id),
                        Value::from(i32::try_from(page.number).unwrap_or(i32::MAX)),
                        Value::from(clean_text(indexable(&page.text))),
                    ]
                })
                .collect();
            txn.execute_raw(statement(&insert_sql(batch.len()), values)).await?;
        }
        txn.commit().await?;
        Ok(())
    }

    async fn delete_book(&self, book_id: &str) -> anyhow::Result<()> {
        self.db
            .execute_raw(statement(
                "DELETE FROM page_search WHERE book_id = $1",
                vec![book_id.into()],
            ))
            .await?;
        Ok(())
    }

    async fn page_count(&self, book_id: &str) -> anyhow::Result<u64> {
        count_rows(
            &self.db,
            statement(
                "SELECT COUNT(*) AS n FROM page_search WHERE book_id = $1",
                vec![book_id.into()],
            ),
        )
        .await
    }

    async fn search_pages(&self, books: &BookFilter, query: &str, limit: u64) -> anyhow::Result<Vec<PageHit>> {
        let query = clean_text(query);
        if limit == 0 || !query.chars().any(char::is_alphanumeric) || books.admits_none() {
            return Ok(Vec::new());
        }
        let rows = self
            .db
            .query_all_raw(statement(
                // websearch_to_tsquery reads any text without a syntax error.
                "SELECT s.book_id, s.page, ts_rank(s.tsv, q.query)::float8 AS score \
                 FROM page_search s, websearch_to_tsquery('simple', $1) AS q(query) \
                 WHERE s.tsv @@ q.query AND ($2::text IS NULL OR s.book_id = ANY(string_to_array($2, ','))) \
                 ORDER BY score DESC, s.book_id, s.page \
                 LIMIT $3",
                vec![
                    query.into(),
                    books.comma_separated().into(),
                    i64::try_from(limit).unwrap_or(i64::MAX).into(),
                ],
            ))
            .await?;
        rows.iter()
            .map(|row| {
                let page: i32 = row.try_get("", "page")?;
                Ok(PageHit {
                    book_id: row.try_get("", "book_id")?,
                    page: u32::try_from(page)?,
                    score: row.try_get("", "score")?,
                    row: None,
                })
            })
            .collect()
    }

    async fn snippets(&self, query: &str, hits: &[PageHit]) -> anyhow::Result<Vec<String>> {
        let query = clean_text(query);
        if hits.is_empty() || !query.chars().any(char::is_alphanumeric) {
            return Ok(vec![String::new(); hits.len()]);
        }
        let headline_options = format!(
            "StartSel={MATCH_START}, StopSel={MATCH_END}, MaxWords=35, MinWords=15, MaxFragments=2, FragmentDelimiter=\" … \""
        );
        // ts_headline re-parses the whole page text: only for the pages asked for.
        let mut values: Vec<Value> = vec![query.into(), headline_options.into()];
        let mut wanted = Vec::with_capacity(hits.len());
        for hit in hits {
            let first = values.len() + 1;
            wanted.push(format!("(${first}::text, ${}::int)", first + 1));
            values.push(hit.book_id.as_str().into());
            values.push(i32::try_from(hit.page).unwrap_or(i32::MAX).into());
        }
        let rows = self
            .db
            .query_all_raw(statement(
                &format!(
                    "SELECT s.book_id, s.page, ts_headline('simple', s.text, q.query, $2) AS snippet \
                     FROM page_search s, websearch_to_tsquery('simple', $1) AS q(query) \
                     WHERE (s.book_id, s.page) IN ({}) AND s.tsv @@ q.query",
                    wanted.join(", ")
                ),
                values,
            ))
            .await?;
        let mut found = std::collections::HashMap::new();
        for row in rows {
            let book_id: String = row.try_get("", "book_id")?;
            let page: i32 = row.try_get("", "page")?;
            let snippet: String = row.try_get("", "snippet")?;
            found.insert((book_id, page), snippet_html(&snippet));
        }
        Ok(hits
            .iter()
            .map(|hit| {
                found
                    .remove(&(hit.book_id.clone(), i32::try_from(hit.page).unwrap_or(i32::MAX)))
                    .unwrap_or_default()
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_numbers_every_parameter() {
        assert_eq!(
            insert_sql(2),
            "INSERT INTO page_search (book_id, page, text) VALUES ($1, $2, $3), ($4, $5, $6)"
        );
    }

    #[test]
    fn a_huge_page_is_indexed_up_to_the_limit_at_a_word_boundary() {
        let short = "a page of ordinary length";
        assert_eq!(indexable(short), short);
        // Two-byte letters, so the limit falls inside a character and inside a word.
        let huge = "éé ab ".repeat(MAX_INDEXED_PAGE_BYTES / 4);
        let kept = indexable(&huge);
        assert!(kept.len() <= MAX_INDEXED_PAGE_BYTES && kept.len() > MAX_INDEXED_PAGE_BYTES - 8);
        assert!(huge.starts_with(kept));
        assert!(
            huge[kept.len()..].starts_with(char::is_whitespace),
            "cut before a space"
        );
    }
}
