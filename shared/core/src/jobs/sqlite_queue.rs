//! The embedded shape's durable queue: apalis on a SQLite file of its own (`queue.db`), so
//! queued jobs survive a restart and queue polling never contends with the metadata database.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use apalis::prelude::*;
use apalis_sqlite::SqliteStorage;
use async_trait::async_trait;
use sea_orm::sqlx::{self, SqlitePool};
use tokio_util::sync::CancellationToken;

use super::{JobHandler, JobQueue};
use crate::domain::JobMessage;

/// apalis' own redelivery budget, spent only when a worker dies holding a message; HBI's
/// retries with backoff and its dead-letter queue are decided in the database.
const DELIVERY_ATTEMPTS: usize = 20;

/// Longest an idle worker waits for a job pushed by another process.
const CROSS_PROCESS_POLL: Duration = Duration::from_secs(5);

pub struct SqliteJobQueue {
    pool: SqlitePool,
    config: apalis_sqlite::Config,
    poll_interval: Duration,
    /// Wakes this process's consumers when this process enqueues, so an idle worker starts a
    /// new job at once instead of at its next poll.
    pushed: std::sync::Mutex<Vec<futures::channel::mpsc::UnboundedSender<()>>>,
}

impl SqliteJobQueue {
    pub async fn open(path: &Path, queue: &str, heartbeat: Duration, poll_interval: Duration) -> anyhow::Result<Self> {
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let pool = crate::db::sqlite_pool(&url, 4).await?;
        SqliteStorage::setup(&pool)
            .await
            .context("preparing the sqlite queue")?;
        let config = apalis_sqlite::Config::default()
            .queue(queue)
            // apalis-core 1.0.0's interval poll does not re-arm after its first tick, so a
            // worker idles until its next heartbeat unless woken by a push in this process
            // (below); a short heartbeat bounds the wait when another process enqueues.
            .heartbeat_interval(heartbeat.min(CROSS_PROCESS_POLL))
            .missed_heartbeats(2)
            .batch_size(1);
        Ok(Self {
            pool,
            config,
            poll_interval,
            pushed: std::sync::Mutex::default(),
        })
    }

    fn storage(&self) -> SqliteStorage<JobMessage> {
        SqliteStorage::new(&self.pool).with_config(self.config.clone())
    }
}

#[async_trait]
impl JobQueue for SqliteJobQueue {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    async fn enqueue(&self, message: &JobMessage, delay: Duration) -> anyhow::Result<()> {
        let task = TaskBuilder::new(message.clone())
            .max_attempts(DELIVERY_ATTEMPTS)
            .run_after(delay)
            .build();
        self.storage()
            .push_task(task)
            .await
            .map_err(|err| anyhow::anyhow!("pushing job {} to the sqlite queue: {err}", message.job_id))?;
        if let Ok(mut consumers) = self.pushed.lock() {
            consumers.retain(|wake| wake.unbounded_send(()).is_ok());
        }
        Ok(())
    }

    async fn depth(&self) -> anyhow::Result<u64> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM Jobs WHERE job_type = ?1 \
             AND (status = 'Pending' OR (status = 'Failed' AND attempts < max_attempts))",
        )
        .bind(self.config.queue.to_string())
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn check(&self) -> anyhow::Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn prune_finished(&self, older_than: Duration) -> anyhow::Result<u64> {
        let cutoff = unix_seconds_before(older_than);
        // Done, killed, or failed with no delivery left: apalis will not touch them again.
        let result = sqlx::query(
            "DELETE FROM Jobs WHERE job_type = ?1 AND done_at IS NOT NULL AND done_at < ?2 \
             AND (status IN ('Done', 'Killed') OR (status = 'Failed' AND attempts >= max_attempts))",
        )
        .bind(self.config.queue.to_string())
        .bind(cutoff)
        .execute(&self.pool)
        .await
        .context("pruning finished messages of the sqlite queue")?;
        Ok(result.rows_affected())
    }

    async fn consume(
        &self,
        worker_name: String,
        concurrency: usize,
        handler: Arc<dyn JobHandler>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let (wake, woken) = futures::channel::mpsc::unbounded();
        if let Ok(mut consumers) = self.pushed.lock() {
            consumers.push(wake);
        }
        let strategy = Strategy::new().stream(woken).interval(self.poll_interval);
        let backend = self.storage().poll_with_strategy(strategy);
        let worker = WorkerBuilder::new(worker_name)
            .backend(backend)
            .concurrency(concurrency)
            .data(SharedHandler(handler))
            .build(deliver);
        // Run on a task of its own: the worker's future is 'static, which keeps the
        // higher-ranked lifetimes of the async trait out of apalis' service bounds.
        let run = tokio::spawn(worker.run_until(async move {
            shutdown.cancelled().await;
            Ok::<(), std::io::Error>(())
        }));
        run.await?
            .map_err(|err| anyhow::anyhow!("sqlite queue worker stopped: {err}"))
    }
}

/// Unix seconds `before` now (apalis keeps times in whole seconds).
fn unix_seconds_before(before: Duration) -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.saturating_sub(before).as_secs()).unwrap_or(i64::MAX)
}

#[derive(Clone)]
pub(super) struct SharedHandler(pub(super) Arc<dyn JobHandler>);

pub(super) async fn deliver(message: JobMessage, handler: Data<SharedHandler>) -> Result<(), BoxDynError> {
    let SharedHandler(inner) = &*handler;
    inner.handle(message).await.map_err(|err| -> BoxDynError { err.into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn finished_messages_go_after_their_retention() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let queue = SqliteJobQueue::open(
            &dir.path().join("queue.db"),
            "hbi.test",
            Duration::from_secs(1),
            Duration::from_millis(50),
        )
        .await?;
        for id in ["done-long-ago", "done-just-now", "waiting"] {
            queue.enqueue(&JobMessage::job(id), Duration::ZERO).await?;
        }
        // What a worker's acknowledgement leaves: status Done and the time it finished.
        let finish = |id: &'static str, at: i64| {
            sqlx::query("UPDATE Jobs SET status = 'Done', done_at = ?1 WHERE job LIKE ?2")
                .bind(at)
                .bind(format!("%{id}%"))
                .execute(&queue.pool)
        };
        finish("done-long-ago", unix_seconds_before(Duration::from_secs(2 * 86_400))).await?;
        finish("done-just-now", unix_seconds_before(Duration::ZERO)).await?;
        assert_eq!(queue.prune_finished(Duration::from_secs(86_400)).await?, 1);
        let left: Vec<Vec<u8>> = sqlx::query_scalar("SELECT job FROM Jobs ORDER BY rowid")
            .fetch_all(&queue.pool)
            .await?;
        let left: Vec<String> = left
            .iter()
            .map(|job| String::from_utf8_lossy(job).into_owned())
            .collect();
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(left.iter().all(|job| !job.contains("done-long-ago")), "{left:?}");
        assert_eq!(queue.depth().await?, 1, "the waiting message stays");
        Ok(())
    }
}
