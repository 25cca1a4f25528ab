//! The HBI worker: takes jobs from the queue and runs the book pipeline on them.
//!
//! - [`run`]: the worker process's loop: the queue consumer, the lease heartbeat and the
//!   shutdown grace period;
//! - [`pipeline`]: the handling of one job (claim, stages, finish, retry or dead letter);
//! - [`extractor`]: both sides of the extractor child protocol.
//!
//! Jobs are stored by `hbi_shared::jobs` (the job store and the queues); this crate decides
//! what happens to them.

pub mod extractor;
pub mod pipeline;

use std::sync::Arc;
use std::time::Duration;

use hbi_shared::{Backends, Settings};
use tokio_util::sync::CancellationToken;

use crate::extractor::ExtractorConfig;
use crate::pipeline::{Pipeline, PipelineSettings};

/// A name no other process uses, now or recently: the queue refuses to reuse one for a while.
pub fn unique_worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = host.trim();
    let host = if host.is_empty() { "hbi" } else { host };
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &suffix[..8])
}

/// Runs the worker until `shutdown` is cancelled, then lets in-flight jobs finish within
/// `worker.shutdown_grace_secs`.
pub async fn run(settings: &Settings, backends: Backends, shutdown: CancellationToken) -> anyhow::Result<()> {
    let worker_id = unique_worker_id();
    let heartbeat = Duration::from_secs(settings.queue.heartbeat_secs);
    // Two missed heartbeats and the job is up for grabs, matching the queue's own orphan rule.
    let lease = heartbeat * 3;
    let extractor_program = match &settings.worker.extractor_path {
        Some(path) => path.clone(),
        None => std::env::current_exe()?,
    };
    let pipeline = Pipeline::new(
        backends.clone(),
        PipelineSettings {
            worker_id: worker_id.clone(),
            lease,
            retry_base_delay: Duration::from_millis(settings.worker.retry_base_delay_ms),
            max_file_bytes: settings.max_upload_bytes(),
            extractor: ExtractorConfig {
                program: extractor_program,
                memory_limit_mb: settings.worker.extractor_memory_mb,
                max_pages: settings.limits.max_pages,
                timeout: settings.stage_timeout(),
                ocr_page_timeout: Duration::from_secs_f64(settings.worker.ocr_page_timeout_secs),
            },
            scratch_dir: backends.scratch.path().to_path_buf(),
            chunk_sizes: settings.chunking,
            part_chunks: settings.worker.part_chunks,
        },
    );
    tracing::info!(worker_id = %worker_id, concurrency = settings.worker.concurrency, queue = backends.queue.kind(), "worker started");

    // Runs until aborted below, through the shutdown grace period: jobs still finishing
    // keep their leases.
    let heartbeat_task = tokio::spawn({
        let jobs = backends.jobs.clone();
        let worker_id = worker_id.clone();
        async move {
            loop {
                if let Err(err) = jobs.extend_leases(&worker_id, lease).await {
                    tracing::warn!(error = %format!("{err:#}"), "heartbeat could not extend job leases");
                }
                tokio::time::sleep(heartbeat).await;
            }
        }
    });

    // The queue consumer gets its own token, cancelled only when ours is, so the grace
    // period below bounds how long in-flight jobs may run on.
    let consumer_stop = CancellationToken::new();
    let consumer = tokio::spawn({
        let queue = backends.queue.clone();
        let stop = consumer_stop.clone();
        let concurrency = settings.worker.concurrency;
        let worker_id = worker_id.clone();
        async move { queue.consume(worker_id, concurrency, Arc::new(pipeline), stop).await }
    });

    let mut consumer = consumer;
    let outcome = tokio::select! {
        result = &mut consumer => {
            // The consumer ended on its own: that is an error unless we are shutting down.
            match result {
                Ok(Ok(())) if shutdown.is_cancelled() => Ok(()),
                Ok(Ok(())) => Err(anyhow::anyhow!("the queue consumer stopped unexpectedly")),
                Ok(Err(err)) => Err(err),
                Err(err) => Err(err.into()),
            }
        }
        () = shutdown.cancelled() => {
            tracing::info!("worker stopping: no new jobs, waiting for in-flight ones");
            consumer_stop.cancel();
            match tokio::time::timeout(settings.shutdown_grace(), &mut consumer).await {
                Ok(_) => tracing::info!("worker stopped"),
                Err(_) => {
                    consumer.abort();
                    // No lease may be renewed after this: the jobs belong to the next worker.
                    heartbeat_task.abort();
                    match backends.jobs.hand_back(&worker_id).await {
                        Ok(jobs) => tracing::warn!(jobs, "in-flight jobs did not finish within the grace period; handed back to the queue"),
                        Err(err) => tracing::warn!(error = %format!("{err:#}"), "in-flight jobs did not finish within the grace period; their leases will expire"),
                    }
                }
            }
            Ok(())
        }
    };
    heartbeat_task.abort();
    outcome
}
