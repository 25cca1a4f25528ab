//! Moving work from the API to the workers.
//!
//! The queue carries only a [`JobMessage`] (ids); the job's state lives in the database
//! ([`store`]), so any replica answers for any job and a message delivered twice is harmless.
//! Uploads commit book, file and job first; the [`relay`] then puts committed jobs on the
//! queue (a transactional outbox), so a queue outage never loses an upload.

pub mod parts;
mod redis_queue;
pub mod relay;
mod sqlite_queue;
pub mod store;
#[cfg(test)]
mod store_transitions;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

pub use redis_queue::RedisJobQueue;
pub use sqlite_queue::SqliteJobQueue;

use crate::domain::JobMessage;

/// What a worker does with one delivered message. It records the outcome in the database
/// itself; an `Err` means the outcome could not even be recorded, and the queue should
/// deliver the message again.
#[async_trait]
pub trait JobHandler: Send + Sync + 'static {
    async fn handle(&self, message: JobMessage) -> anyhow::Result<()>;
}

#[async_trait]
pub trait JobQueue: Send + Sync {
    /// A short name for logs and health checks (`sqlite`, `redis`).
    fn kind(&self) -> &'static str;

    /// Puts a message on the queue, to be delivered no earlier than `delay` from now.
    async fn enqueue(&self, message: &JobMessage, delay: Duration) -> anyhow::Result<()>;

    /// Messages waiting for a worker, read from the queue itself.
    async fn depth(&self) -> anyhow::Result<u64>;

    /// Readiness: can the queue be reached?
    async fn check(&self) -> anyhow::Result<()>;

    /// Removes what the queue keeps of messages that finished more than `older_than` ago
    /// (payload, result, bookkeeping), so it does not grow with every job ever run: the job's
    /// history is in the database. Returns how many messages went.
    async fn prune_finished(&self, older_than: Duration) -> anyhow::Result<u64>;

    /// Delivers messages to `handler`, at most `concurrency` at once, until `shutdown` is
    /// cancelled; then stops taking messages and returns once the in-flight ones are done.
    /// `worker_name` must be unique per process.
    async fn consume(
        &self,
        worker_name: String,
        concurrency: usize,
        handler: Arc<dyn JobHandler>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()>;
}
