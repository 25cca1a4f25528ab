//! Redis memory over many jobs: what HBI's Redis queue leaves in Redis as jobs finish, with
//! and without the retention sweep (`JobQueue::prune_finished`, which the outbox relay runs
//! hourly for messages finished more than `FINISHED_RETENTION` ago). apalis-redis on its own
//! keeps every finished message (its id, payload and metadata) for ever.
//!
//! `scripts/bench-queue-memory` starts a Redis of its own and runs this. By hand:
//!
//! ```text
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --release -p hbi-shared --example queue_memory_bench -- \
//!     [--jobs 10000] [--rounds 10] [--concurrency 10]
//! ```
//!
//! Two runs on the same server, one after the other, each on an empty database: *kept* lets
//! apalis keep what it keeps; *swept* runs the sweep after each round with a retention of
//! zero, standing for a deployment whose retention window has passed (the sweep removes
//! what finished before the cutoff; with the default 24 h window, memory is bounded by the
//! jobs of one day). After each round of `jobs / rounds` jobs, all finished, the table gives
//! Redis's `used_memory` and the queue's keys and set sizes. Prints one Markdown table.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use async_trait::async_trait;
use hbi_shared::domain::JobMessage;
use hbi_shared::jobs::{JobHandler, JobQueue, RedisJobQueue};
use tokio_util::sync::CancellationToken;

const HEARTBEAT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);

struct Options {
    url: String,
    jobs: usize,
    rounds: usize,
    concurrency: usize,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options {
        url: std::env::var("REDIS_URL").context("REDIS_URL must name the Redis server")?,
        jobs: 10_000,
        rounds: 10,
        concurrency: 10,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().with_context(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<usize>()
                .with_context(|| format!("{flag}: not a number: {value}"))
        };
        match flag.as_str() {
            "--jobs" => options.jobs = number()?,
            "--rounds" => options.rounds = number()?.max(1),
            "--concurrency" => options.concurrency = number()?.max(1),
            _ => bail!("unknown option {flag}"),
        }
    }
    Ok(options)
}

/// Counts the jobs it was given; does nothing else.
#[derive(Default)]
struct Count(AtomicUsize);

#[async_trait]
impl JobHandler for Count {
    async fn handle(&self, _message: JobMessage) -> anyhow::Result<()> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// What Redis holds after a round.
struct Reading {
    used_memory: u64,
    keys: u64,
    done: u64,
    data: u64,
}

async fn read(conn: &mut redis::aio::MultiplexedConnection, queue: &str) -> anyhow::Result<Reading> {
    let info: String = redis::cmd("INFO").arg("memory").query_async(conn).await?;
    let used_memory = info
        .lines()
        .find_map(|line| line.strip_prefix("used_memory:"))
        .and_then(|value| value.trim().parse().ok())
        .context("INFO memory has no used_memory")?;
    let (keys, done, data): (u64, u64, u64) = redis::pipe()
        .cmd("DBSIZE")
        .scard(format!("{queue}:done"))
        .hlen(format!("{queue}:data"))
        .query_async(conn)
        .await?;
    Ok(Reading {
        used_memory,
        keys,
        done,
        data,
    })
}

/// Runs `options.jobs` no-op jobs in rounds through one consumer, sweeping after each round
/// when `sweep` is set; one reading per round.
async fn run(options: &Options, queue_name: &str, sweep: bool) -> anyhow::Result<Vec<Reading>> {
    let client = redis::Client::open(options.url.as_str())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let _: () = redis::cmd("FLUSHDB").query_async(&mut conn).await?;
    let queue = RedisJobQueue::open(&options.url, queue_name, HEARTBEAT, POLL)?;
    let handler = Arc::new(Count::default());
    let stop = CancellationToken::new();
    let consumer = tokio::spawn({
        let queue = RedisJobQueue::open(&options.url, queue_name, HEARTBEAT, POLL)?;
        let handler = handler.clone();
        let stop = stop.clone();
        let concurrency = options.concurrency;
        async move {
            queue
                .consume("memory-bench".to_owned(), concurrency, handler, stop)
                .await
        }
    });
    let per_round = options.jobs / options.rounds;
    let mut readings = Vec::with_capacity(options.rounds);
    for round in 1..=options.rounds {
        for i in 0..per_round {
            let message = JobMessage::job(format!("{:08x}-{round:04}-{i:06}-0000-000000000000", 0xbe4c_0000u32));
            queue.enqueue(&message, Duration::ZERO).await?;
        }
        let deadline = Instant::now() + Duration::from_secs(600);
        // Handled is not yet acknowledged: wait until apalis has filed every message as done.
        loop {
            let finished: u64 = redis::cmd("SCARD")
                .arg(format!("{queue_name}:done"))
                .query_async(&mut conn)
                .await?;
            let handled = handler.0.load(Ordering::Relaxed);
            let expected_done = if sweep { per_round } else { per_round * round };
            if handled >= per_round * round && finished as usize >= expected_done && queue.depth().await? == 0 {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "round {round}: {handled} of {} jobs handled in 10 minutes",
                    per_round * round
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if sweep {
            // Finish times are whole seconds: past the next one, everything is older than zero.
            tokio::time::sleep(Duration::from_millis(1100)).await;
            queue.prune_finished(Duration::ZERO).await?;
        }
        readings.push(read(&mut conn, queue_name).await?);
    }
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), consumer).await;
    Ok(readings)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = options()?;
    let kept = run(&options, "bench.kept", false).await?;
    let swept = run(&options, "bench.swept", true).await?;
    let client = redis::Client::open(options.url.as_str())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let info: String = redis::cmd("INFO").arg("server").query_async(&mut conn).await?;
    let version = info
        .lines()
        .find_map(|line| line.strip_prefix("redis_version:"))
        .unwrap_or("?")
        .trim()
        .to_owned();
    println!(
        "Redis {version}, {} jobs in {} rounds, {} at a time; after each round:\n",
        options.jobs, options.rounds, options.concurrency
    );
    println!(
        "| jobs finished | kept: used_memory MiB | kept: keys | kept: done / data | swept: used_memory MiB | swept: keys | swept: done / data | swept / kept memory |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let per_round = options.jobs / options.rounds;
    for (round, (kept, swept)) in kept.iter().zip(&swept).enumerate() {
        println!(
            "| {} | {:.2} | {} | {} / {} | {:.2} | {} | {} / {} | {:.2} |",
            per_round * (round + 1),
            mib(kept.used_memory),
            kept.keys,
            kept.done,
            kept.data,
            mib(swept.used_memory),
            swept.keys,
            swept.done,
            swept.data,
            swept.used_memory as f64 / kept.used_memory.max(1) as f64,
        );
    }
    if let (Some(first), Some(last)) = (swept.first(), swept.last()) {
        println!(
            "\nswept: used_memory after the last round is {:.2}x that after the first; kept: {:.2}x",
            last.used_memory as f64 / first.used_memory.max(1) as f64,
            kept.last().map_or(0, |r| r.used_memory) as f64 / kept.first().map_or(1, |r| r.used_memory.max(1)) as f64,
        );
    }
    Ok(())
}
