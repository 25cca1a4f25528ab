use async_trait::async_trait;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement, Value};

use crate::domain::BookFilter;

use super::{IndexedPage, MATCH_END, MATCH_START, PageHit, TextIndex, clean_text, count_rows, snippet_html};

pub struct SqliteFtsIndex {
    db: DatabaseConnection,
}

impl SqliteFtsIndex {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

fn statement(sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(sea_orm::DbBackend::Sqlite, sql, values)
}

/// The user's text as an FTS5 query that FTS5 cannot misread: every word and every
/// `"quoted phrase"` becomes a double-quoted string, so AND, NEAR, `*`, `^`, `:` and
/// parentheses are plain text. All of them must match, as with websearch_to_tsquery.
/// `None` when the text holds no word at all.
fn fts5_query(user: &str) -> Option<String> {
    let mut terms = Vec::new();
    let mut push = |text: &str| {
        if text.chars().any(char::is_alphanumeric) {
            terms.push(format!("\"{}\"", text.replace('"', "\"\"")));
        }
    };
    // Odd segments were inside double quotes; an unclosed quote runs to the end.
    for (index, segment) in clean_text(user).split('"').enumerate() {
        if index % 2 == 1 {
            push(segment);
        } else {
            segment.split_whitespace().for_each(&mut push);
        }
    }
    (!terms.is_empty()).then(|| terms.join(" "))
}

#[async_trait]
impl TextIndex for SqliteFtsIndex {
    fn kind(&self) -> &'static str {
        "sqlite_fts5"
    }

    async fn index_pages(&self, book_id: &str, pages: &[IndexedPage]) -> anyhow::Result<()> {
        let txn = crate::db::begin_write(&self.db).await?;
        txn.execute_raw(statement(
            "DELETE FROM pages_fts WHERE book_id = ?",
            vec![book_id.into()],
        ))
        .await?;
        for page in pages.iter().filter(|page| !page.text.trim().is_empty()) {
            txn.execute_raw(statement(
                "INSERT INTO pages_fts (text, book_id, page) VALUES (?, ?, ?)",
                vec![
                    clean_text(&page.text).into(),
                    book_id.into(),
                    i64::from(page.number).into(),
                ],
            ))
            .await?;
        }
        txn.commit().await?;
        Ok(())
    }

    async fn delete_book(&self, book_id: &str) -> anyhow::Result<()> {
        self.db
            .execute_raw(statement(
                "DELETE FROM pages_fts WHERE book_id = ?",
                vec![book_id.into()],
            ))
            .await?;
        Ok(())
    }

    async fn page_count(&self, book_id: &str) -> anyhow::Result<u64> {
        count_rows(
            &self.db,
            statement(
                "SELECT COUNT(*) AS n FROM pages_fts WHERE book_id = ?",
                vec![book_id.into()],
            ),
        )
        .await
    }

    async fn search_pages(&self, books: &BookFilter, query: &str, limit: u64) -> anyhow::Result<Vec<PageHit>> {
        let Some(fts_query) = fts5_query(query) else {
            return Ok(Vec::new());
        };
        if books.admits_none() {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // Ranked by rowid among equals (pages are indexed in page order): the book and page
        // columns live in the page's stored row with its text, and reading them for every
        // matching page cost most of a search. They are read for the `limit` best only.
        let (book_filter, mut values): (&str, Vec<Value>) = match (books.single(), books.json_array()) {
            (Some(book_id), _) => ("AND book_id = ?", vec![fts_query.into(), book_id.into()]),
            (None, Some(book_ids)) => (
                "AND book_id IN (SELECT value FROM json_each(?))",
                vec![fts_query.into(), book_ids.into()],
            ),
            (None, None) => ("", vec![fts_query.into()]),
        };
        values.push(limit.into());
        let rows = self
            .db
            .query_all_raw(statement(
                &format!(
                    // bm25() is lower for better matches.
                    "WITH best AS MATERIALIZED (\
                       SELECT rowid AS fts_row, bm25(pages_fts) AS bm25_score FROM pages_fts \
                       WHERE pages_fts MATCH ? {book_filter} \
                       ORDER BY bm25_score, fts_row LIMIT ?) \
                     SELECT best.fts_row, -best.bm25_score AS score, f.book_id, f.page \
                     FROM best JOIN pages_fts f ON f.rowid = best.fts_row \
                     ORDER BY best.bm25_score, best.fts_row"
                ),
                values,
            ))
            .await?;
        rows.iter()
            .map(|row| {
                let page: i64 = row.try_get("", "page")?;
                Ok(PageHit {
                    book_id: row.try_get("", "book_id")?,
                    page: u32::try_from(page)?,
                    score: row.try_get("", "score")?,
                    row: Some(row.try_get("", "fts_row")?),
                })
            })
            .collect()
    }

    async fn snippets(&self, query: &str, hits: &[PageHit]) -> anyhow::Result<Vec<String>> {
        let mut snippets = vec![String::new(); hits.len()];
        let Some(fts_query) = fts5_query(query) else {
            return Ok(snippets);
        };
        for (hit, snippet) in hits.iter().zip(&mut snippets) {
            let Some(row) = hit.row else { continue };
            let found = self
                .db
                .query_one_raw(statement(
                    "SELECT book_id, page, snippet(pages_fts, 0, ?, ?, '…', 24) AS snippet \
                     FROM pages_fts WHERE pages_fts MATCH ? AND rowid = ?",
                    vec![
                        MATCH_START.to_string().into(),
                        MATCH_END.to_string().into(),
                        fts_query.as_str().into(),
                        row.into(),
                    ],
                ))
                .await?;
            let Some(found) = found else { continue };
            // A rowid may be reused once its book is indexed again.
            let (book_id, page): (String, i64) = (found.try_get("", "book_id")?, found.try_get("", "page")?);
            if book_id == hit.book_id && page == i64::from(hit.page) {
                *snippet = snippet_html(&found.try_get::<String>("", "snippet")?);
            }
        }
        Ok(snippets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_text_becomes_quoted_terms() {
        assert_eq!(fts5_query("graph theory").as_deref(), Some("\"graph\" \"theory\""));
        assert_eq!(
            fts5_query("say \"hello world\" NEAR(x*)").as_deref(),
            Some("\"say\" \"hello world\" \"NEAR(x*)\"")
        );
        assert_eq!(
            fts5_query("unclosed \"quote here").as_deref(),
            Some("\"unclosed\" \"quote here\"")
        );
        assert_eq!(fts5_query("* ^ : ( ) \" \"\" ''"), None);
        assert_eq!(fts5_query("   "), None);
    }
}
