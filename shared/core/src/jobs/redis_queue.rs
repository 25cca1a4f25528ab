//! The server shape's queue: apalis-redis on a Redis server shared by every replica.
//!
//! How apalis-redis 1.0 keeps a message (read from its Lua scripts), and what this module
//! does about it:
//! - Every push lands in `<queue>:scheduled` (a sorted set scored by Unix *seconds*), even
//!   without a delay; a worker moves due entries to `<queue>:active` when it fetches. So a
//!   delay is rounded up to a whole second here, or a message could run up to 1 s early.
//! - A fetched message sits in `<queue>:inflight:<worker>` until it is acknowledged. A worker
//!   is alive while its score in `<queue>:workers` is recent; each heartbeat of *another*
//!   worker moves the in-flight messages of workers silent for `heartbeat × missed_heartbeats`
//!   back to the active list. That is how a killed worker's message is delivered again, so
//!   `missed_heartbeats` is set explicitly (the crate's default is 10, not the documented 2).
//! - Any Redis error in a heartbeat, fetch or acknowledgement ends the apalis worker, and its
//!   `run` future drops the handlers it was polling. Handlers therefore run on tasks of their
//!   own, and [`RedisJobQueue::consume`] starts a new worker (under a new name: the old one is
//!   still "alive" in Redis for a while) with backoff until shutdown.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use apalis::prelude::*;
use apalis_redis::{ConnectionManager, RedisStorage};
use async_trait::async_trait;
use redis::aio::ConnectionManagerConfig;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::{JobHandler, JobQueue};
use crate::domain::JobMessage;

/// First pause before a failed worker is started again; it doubles up to [`MAX_RESTART_DELAY`].
const MIN_RESTART_DELAY: Duration = Duration::from_millis(250);
const MAX_RESTART_DELAY: Duration = Duration::from_secs(5);
/// A worker that ran this long without failing resets the backoff.
const HEALTHY_RUN: Duration = Duration::from_secs(30);
/// apalis-redis' Lua script ignores a task's max_attempts and retries a failed delivery 25
/// times; HBI's retries and dead-letter queue are decided in the database instead.
const DELIVERY_ATTEMPTS: usize = 25;
/// Ids looked at per script call when pruning finished messages.
const PRUNE_BATCH: usize = 500;
/// Pause before the one retry of a failed request.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

pub struct RedisJobQueue {
    conn: ConnectionManager,
    config: apalis_redis::Config,
    poll_interval: Duration,
}

impl RedisJobQueue {
    /// Connects lazily: a Redis that is down at start shows in readiness checks and is
    /// retried by the relay and the consumer, instead of keeping the process from starting.
    pub fn open(url: &str, queue: &str, heartbeat: Duration, poll_interval: Duration) -> anyhow::Result<Self> {
        let client = redis::Client::open(url).context("queue.redis_url is not a valid Redis URL")?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            // Lua scripts touch whole sets; leave room beyond the 500 ms default.
            .set_response_timeout(Some(Duration::from_secs(5)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let conn = ConnectionManager::new_lazy_with_config(client, manager_config)
            .context("creating the Redis connection manager")?;
        let config = apalis_redis::Config::default()
            .queue(queue)
            .heartbeat_interval(heartbeat)
            .missed_heartbeats(2)
            // One message at a time: a fetched batch waits behind a long job while another
            // worker may be idle.
            .batch_size(1)
            // Leases only set a status field (renewal needs the task-tracking feature); liveness
            // comes from the worker heartbeat. Without them a lease on a message another worker
            // already took back cannot fail and stop the worker.
            .lock_tasks(false)
            // Results must stay on: the acknowledgement is what takes a message out of the
            // worker's in-flight set; without it every message would come back as an orphan.
            .persist_results(true)
            // Nobody subscribes to the pub/sub events.
            .emit_events(false);
        Ok(Self {
            conn,
            config,
            poll_interval,
        })
    }

    pub fn queue_name(&self) -> &str {
        self.config.queue.as_ref()
    }

    fn storage(&self) -> RedisStorage<JobMessage> {
        RedisStorage::new(self.conn.clone()).with_config(self.config.clone())
    }
}

/// Whole Unix seconds at or after `now + delay`: apalis-redis compares seconds, and
/// rounding down would deliver a message before its delay.
fn run_at_seconds(delay: Duration) -> u64 {
    let due = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_add(delay);
    due.as_secs() + u64::from(due.subsec_nanos() > 0)
}

#[async_trait]
impl JobQueue for RedisJobQueue {
    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn enqueue(&self, message: &JobMessage, delay: Duration) -> anyhow::Result<()> {
        let run_at = (!delay.is_zero()).then(|| run_at_seconds(delay));
        // A retried push that had in fact landed is a duplicate message, which is harmless.
        retry_once(|| async {
            let mut task = TaskBuilder::new(message.clone()).max_attempts(DELIVERY_ATTEMPTS);
            if let Some(at) = run_at {
                task = task.run_at_timestamp(at);
            }
            self.storage()
                .push_task(task.build())
                .await
                .map_err(|err| anyhow::anyhow!("pushing job {} to the redis queue: {err}", message.job_id))
        })
        .await
    }

    async fn depth(&self) -> anyhow::Result<u64> {
        retry_once(|| async {
            let mut conn = self.conn.clone();
            let (active, scheduled): (u64, u64) = redis::pipe()
                .llen(self.config.active_jobs_list())
                .zcard(self.config.scheduled_jobs_set())
                .query_async(&mut conn)
                .await
                .context("reading the redis queue depth")?;
            Ok(active + scheduled)
        })
        .await
    }

    async fn check(&self) -> anyhow::Result<()> {
        retry_once(|| async {
            let mut conn = self.conn.clone();
            let _: String = redis::cmd("PING").query_async(&mut conn).await.context("redis PING")?;
            Ok(())
        })
        .await
    }

    /// apalis-redis keeps every acknowledged message: its id in the done (or dead) set, its
    /// payload in the data hash and a metadata hash with `done_at`. A script removes the three
    /// for each id finished before the cutoff, a scan of the sets at a time.
    async fn prune_finished(&self, older_than: Duration) -> anyhow::Result<u64> {
        let cutoff = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_sub(older_than)
            .as_secs();
        let script = redis::Script::new(include_str!("prune_finished.lua"));
        let mut conn = self.conn.clone();
        let mut removed = 0;
        for set in [self.config.done_jobs_set(), self.config.dead_jobs_set()] {
            let mut cursor = 0u64;
            loop {
                let (next, ids): (u64, Vec<String>) = redis::cmd("SSCAN")
                    .arg(&set)
                    .arg(cursor)
                    .arg("COUNT")
                    .arg(PRUNE_BATCH)
                    .query_async(&mut conn)
                    .await
                    .with_context(|| format!("scanning {set}"))?;
                if !ids.is_empty() {
                    let gone: u64 = script
                        .key(&set)
                        .key(self.config.job_data_hash())
                        .key(self.config.job_meta_hash())
                        .arg(cutoff)
                        .arg(&ids)
                        .invoke_async(&mut conn)
                        .await
                        .with_context(|| format!("pruning finished messages of {set}"))?;
                    removed += gone;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(removed)
    }

    async fn consume(
        &self,
        worker_name: String,
        concurrency: usize,
        handler: Arc<dyn JobHandler>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let concurrency = concurrency.max(1);
        // Shared by every worker generation: a handler left running by a failed worker still
        // counts against the limit.
        let slots = Arc::new(Semaphore::new(concurrency));
        let delivery = Delivery {
            handler,
            slots: slots.clone(),
        };
        let mut restart_delay = MIN_RESTART_DELAY;
        let mut generation = 0u32;
        while !shutdown.is_cancelled() {
            generation += 1;
            let name = if generation == 1 {
                worker_name.clone()
            } else {
                format!("{worker_name}.{generation}")
            };
            let backend = self.storage().poll_with_interval(self.poll_interval);
            let worker = WorkerBuilder::new(name.clone())
                .backend(backend)
                .concurrency(concurrency)
                .data(delivery.clone())
                .build(deliver);
            let stop = shutdown.clone();
            let started = Instant::now();
            // Run on a task of its own: the worker's future is 'static, which keeps the
            // higher-ranked lifetimes of the async trait out of apalis' service bounds.
            let outcome = tokio::spawn(worker.run_until(async move {
                stop.cancelled().await;
                Ok::<(), std::io::Error>(())
            }))
            .await
            .context("the redis queue worker panicked")?;
            match outcome {
                Ok(()) if shutdown.is_cancelled() => break,
                Ok(()) => tracing::warn!(worker = %name, "redis queue worker stopped on its own; starting another"),
                Err(err) => {
                    tracing::warn!(worker = %name, error = %err, ?restart_delay, "redis queue worker failed; starting another")
                }
            }
            if started.elapsed() >= HEALTHY_RUN {
                restart_delay = MIN_RESTART_DELAY;
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(restart_delay) => {}
            }
            restart_delay = (restart_delay * 2).min(MAX_RESTART_DELAY);
        }
        // Handlers of failed workers run detached: wait for every slot to come back.
        let permits = u32::try_from(concurrency).unwrap_or(u32::MAX);
        let _all = slots
            .acquire_many(permits)
            .await
            .context("waiting for in-flight jobs")?;
        Ok(())
    }
}

/// The connection manager answers the first request after an outage with the error it
/// reconnected on, and only then reconnects: one more try hides that from callers.
async fn retry_once<T, F, Fut>(mut attempt: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    match attempt().await {
        Ok(value) => Ok(value),
        Err(first) => {
            tracing::debug!(error = %format!("{first:#}"), "redis request failed; trying once more");
            tokio::time::sleep(RETRY_PAUSE).await;
            attempt().await
        }
    }
}

#[derive(Clone)]
struct Delivery {
    handler: Arc<dyn JobHandler>,
    slots: Arc<Semaphore>,
}

async fn deliver(message: JobMessage, delivery: Data<Delivery>) -> Result<(), BoxDynError> {
    let slot = delivery.slots.clone().acquire_owned().await?;
    let handler = delivery.handler.clone();
    // Detached, so that a worker dropped on a Redis error does not cut a job off mid-way.
    let run = tokio::spawn(async move {
        let _slot = slot;
        handler.handle(message).await
    });
    match run.await {
        Ok(result) => result.map_err(|err| -> BoxDynError { err.into() }),
        Err(err) => Err(err.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_round_up_to_whole_seconds() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs_f64();
        let at = run_at_seconds(Duration::from_millis(1500)) as f64;
        assert!(at >= now + 1.5, "{at} < {now} + 1.5");
        assert!(at < now + 2.6, "{at} too late after {now}");
    }
}
