//! The metadata database: connection, migrations and entities (sea-orm). SQLite in the
//! embedded shape, PostgreSQL in production; the URL alone decides.

pub mod entities;

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use hbi_migrations::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, Database, DatabaseConnection, DatabaseTransaction, DbErr, SqliteTransactionMode,
    SqlxSqliteConnector, TransactionOptions, TransactionTrait,
};

/// Opens the database named by `url` and applies pending migrations when `migrate` is set.
pub async fn connect(url: &str, max_connections: u32, migrate: bool) -> anyhow::Result<DatabaseConnection> {
    let db = if url.starts_with("sqlite:") {
        let pool = sqlite_pool(url, max_connections).await?;
        SqlxSqliteConnector::from_sqlx_sqlite_pool(pool)
    } else {
        let mut options = ConnectOptions::new(url.to_owned());
        options
            .max_connections(max_connections)
            .connect_timeout(Duration::from_secs(10))
            .sqlx_logging(false);
        Database::connect(options).await.context("connecting to the database")?
    };
    if migrate {
        Migrator::up(&db, None).await.context("applying database migrations")?;
    }
    Ok(db)
}

/// A SQLite pool tuned for one writer and many readers across two processes at most:
/// WAL, a generous busy timeout, foreign keys on; sqlite-vec is loaded in every connection.
pub async fn sqlite_pool(url: &str, max_connections: u32) -> anyhow::Result<sea_orm::sqlx::SqlitePool> {
    crate::vectors::sqlite_vec_ext::register()?;
    let options = SqliteConnectOptions::from_str(url)
        .with_context(|| format!("parsing sqlite url {url}"))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(30))
        .foreign_keys(true);
    SqlitePoolOptions::new()
        .max_connections(max_connections)
        .connect_with(options)
        .await
        .with_context(|| format!("opening sqlite database {url}"))
}

/// Begins a transaction that will write. On SQLite it takes the write lock at BEGIN
/// (`BEGIN IMMEDIATE`): a deferred transaction that reads first and writes later fails at
/// once with "database is locked" when another connection wrote in between, where an
/// immediate one waits its turn under the busy timeout. Other databases ignore the mode.
/// A count or position as the database's 32-bit integer columns hold it (saturating).
pub(crate) fn to_i32(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..Default::default()
    })
    .await
}
