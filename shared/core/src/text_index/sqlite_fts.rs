use async_trait::async_trait;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement, TransactionTrait, Value};

use super::{IndexedPage, TextIndex};

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

#[async_trait]
impl TextIndex for SqliteFtsIndex {
    fn kind(&self) -> &'static str {
        "sqlite_fts5"
    }

    async fn index_pages(&self, book_id: &str, pages: &[IndexedPage]) -> anyhow::Result<()> {
        let txn = self.db.begin().await?;
        txn.execute_raw(statement(
            "DELETE FROM pages_fts WHERE book_id = ?",
            vec![book_id.into()],
        ))
        .await?;
        for page in pages.iter().filter(|page| !page.text.trim().is_empty()) {
            txn.execute_raw(statement(
                "INSERT INTO pages_fts (text, book_id, page) VALUES (?, ?, ?)",
                vec![page.text.clone().into(), book_id.into(), i64::from(page.number).into()],
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
        let row = self
            .db
            .query_one_raw(statement(
                "SELECT COUNT(*) AS n FROM pages_fts WHERE book_id = ?",
                vec![book_id.into()],
            ))
            .await?;
        let count: i64 = match row {
            Some(row) => row.try_get("", "n")?,
            None => 0,
        };
        Ok(u64::try_from(count).unwrap_or(0))
    }
}
