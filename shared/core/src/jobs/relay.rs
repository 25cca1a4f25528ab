//! The outbox relay: puts committed jobs on the queue. An upload's job is enqueued right
//! after its transaction commits; whatever that misses (queue down, process killed) is
//! picked up here on the next sweep. Delivery is therefore at least once, and the job
//! store's conditional claim makes a duplicate delivery harmless.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::JobQueue;
use super::store::JobStore;
use crate::db::entities::job;
use crate::domain::JobMessage;

/// How long the queue keeps a finished message (payload and result; the job's history is in
/// the database) before the relay removes it.
pub const FINISHED_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// How often the relay removes finished messages past [`FINISHED_RETENTION`].
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Enqueues one committed job and records that it is on the queue.
pub async fn publish(store: &JobStore, queue: &dyn JobQueue, job: &job::Model) -> anyhow::Result<()> {
    let delay = job
        .run_after
        .map(|at| (at - Utc::now()).to_std().unwrap_or(Duration::ZERO))
        .unwrap_or(Duration::ZERO);
    queue.enqueue(&JobMessage::job(job.id.clone()), delay).await?;
    store.mark_enqueued(&job.id).await
}

/// Sweeps the outbox every `interval` until `shutdown`. When the queue is empty it also
/// re-publishes jobs stranded for longer than `stale_after` (see [`JobStore::stranded`]):
/// a queue that lost its data loses no job, and a duplicate message is harmless. Once an
/// hour it removes the queue's finished messages older than [`FINISHED_RETENTION`].
pub async fn run(
    store: JobStore,
    queue: Arc<dyn JobQueue>,
    interval: Duration,
    stale_after: Duration,
    shutdown: CancellationToken,
) {
    let mut last_prune: Option<Instant> = None;
    loop {
        match store.outbox(100).await {
            Ok(jobs) => publish_all(&store, queue.as_ref(), &jobs, "outbox").await,
            Err(err) => tracing::warn!(error = %format!("{err:#}"), "outbox relay could not read the outbox"),
        }
        // Only an empty queue can have lost a message that is not merely waiting its turn.
        if matches!(queue.depth().await, Ok(0)) {
            match store.stranded(stale_after, 100).await {
                Ok(jobs) => publish_all(&store, queue.as_ref(), &jobs, "stranded").await,
                Err(err) => {
                    tracing::warn!(error = %format!("{err:#}"), "outbox relay could not look for stranded jobs")
                }
            }
        }
        if last_prune.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            match queue.prune_finished(FINISHED_RETENTION).await {
                Ok(0) => {}
                Ok(removed) => tracing::info!(removed, "removed finished messages from the queue"),
                Err(err) => {
                    tracing::warn!(error = %format!("{err:#}"), "could not remove finished messages from the queue")
                }
            }
            last_prune = Some(Instant::now());
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

async fn publish_all(store: &JobStore, queue: &dyn JobQueue, jobs: &[job::Model], why: &'static str) {
    for job in jobs {
        if why == "stranded" {
            tracing::warn!(job_id = %job.id, state = %job.state, "job stranded without a queue message; publishing it again");
        }
        if let Err(err) = publish(store, queue, job).await {
            tracing::warn!(job_id = %job.id, error = %format!("{err:#}"), why, "outbox relay could not enqueue job");
            break;
        }
    }
}
