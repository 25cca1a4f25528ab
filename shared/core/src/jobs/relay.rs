//! The outbox relay: puts committed jobs on the queue. An upload's job is enqueued right
//! after its transaction commits; whatever that misses (queue down, process killed) is
//! picked up here on the next sweep. Delivery is therefore at least once, and the job
//! store's conditional claim makes a duplicate delivery harmless.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::JobQueue;
use super::store::JobStore;
use crate::db::entities::job;
use crate::domain::JobMessage;

/// Enqueues one committed job and records that it is on the queue.
pub async fn publish(store: &JobStore, queue: &dyn JobQueue, job: &job::Model) -> anyhow::Result<()> {
    let delay = job
        .run_after
        .map(|at| (at - Utc::now()).to_std().unwrap_or(Duration::ZERO))
        .unwrap_or(Duration::ZERO);
    queue.enqueue(&JobMessage { job_id: job.id.clone() }, delay).await?;
    store.mark_enqueued(&job.id).await
}

/// Sweeps the outbox every `interval` until `shutdown`.
pub async fn run(store: JobStore, queue: Arc<dyn JobQueue>, interval: Duration, shutdown: CancellationToken) {
    loop {
        match store.outbox(100).await {
            Ok(jobs) => {
                for job in jobs {
                    if let Err(err) = publish(&store, queue.as_ref(), &job).await {
                        tracing::warn!(job_id = %job.id, error = %format!("{err:#}"), "outbox relay could not enqueue job");
                        break;
                    }
                }
            }
            Err(err) => tracing::warn!(error = %format!("{err:#}"), "outbox relay could not read the outbox"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}
