use async_trait::async_trait;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement, Value};

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

    async fn search_pages(&self, book_id: Option<&str>, query: &str, limit: u64) -> anyhow::Result<Vec<PageHit>> {
        let Some(fts_query) = fts5_query(query) else {
            return Ok(Vec::new());
        };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .db
            .query_all_raw(statement(
                // bm25() is lower for better matches.
                "SELECT book_id, page, -bm25(pages_fts) AS score, \
                        snippet(pages_fts, 0, ?, ?, '…', 24) AS snippet \
                 FROM pages_fts \
                 WHERE pages_fts MATCH ? AND (? IS NULL OR book_id = ?) \
                 ORDER BY bm25(pages_fts), book_id, page \
                 LIMIT ?",
                vec![
                    MATCH_START.to_string().into(),
                    MATCH_END.to_string().into(),
                    fts_query.into(),
                    book_id.map(str::to_owned).into(),
                    book_id.map(str::to_owned).into(),
                    limit.into(),
                ],
            ))
            .await?;
        rows.iter()
            .map(|row| {
                let page: i64 = row.try_get("", "page")?;
                let snippet: String = row.try_get("", "snippet")?;
                Ok(PageHit {
                    book_id: row.try_get("", "book_id")?,
                    page: u32::try_from(page)?,
                    score: row.try_get("", "score")?,
                    snippet: snippet_html(&snippet),
                })
            })
            .collect()
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
