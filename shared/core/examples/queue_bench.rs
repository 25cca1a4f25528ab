//! Queue benchmark: enqueue-to-start latency and jobs per second of no-op jobs through Redis,
//! HBI's `RedisJobQueue` (apalis-redis) beside arq (the original Python HBI's queue), with 1
//! and 2 worker processes, against the same Redis server in the same run.
//!
//! `scripts/bench-queue` starts a Redis and installs arq, then runs this. By hand:
//!
//! ```text
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --release -p hbi-shared --example queue_bench -- \
//!     [--jobs 2000] [--latency-jobs 300] [--pace-ms 20] [--concurrency 1,10] [--poll-ms 500] \
//!     [--workers 1,2] [--arq-script scripts/queue_bench_arq.py] [--timeout-secs 120]
//! ```
//!
//! Two phases per row: *latency* enqueues `--latency-jobs` one every `--pace-ms` into an idle
//! queue and reports p50/p95 of enqueue-to-start; *burst* enqueues `--jobs` all due at the same
//! whole second a few seconds ahead and reports jobs started per second from the first start
//! to the last (the drain rate of a full backlog, not bounded by the enqueue rate). Worker processes
//! print one line per started job; the clock is the machine's, shared by all processes.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use async_trait::async_trait;
use hbi_shared::domain::JobMessage;
use hbi_shared::jobs::{JobHandler, JobQueue, RedisJobQueue};
use tokio_util::sync::CancellationToken;

/// Time for worker processes to start and register before the first job.
const WARM_UP: Duration = Duration::from_millis(1500);
const HEARTBEAT: Duration = Duration::from_secs(30);

fn unix_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

#[derive(Debug, Clone)]
struct Options {
    url: String,
    jobs: usize,
    latency_jobs: usize,
    pace: Duration,
    concurrency: Vec<usize>,
    workers: Vec<usize>,
    poll_ms: u64,
    arq_script: Option<String>,
    timeout: Duration,
}

fn list(value: &str) -> anyhow::Result<Vec<usize>> {
    value
        .split(',')
        .map(|part| part.trim().parse().with_context(|| format!("not a number: {part}")))
        .collect()
}

fn parse_options(args: &[String]) -> anyhow::Result<Options> {
    let mut options = Options {
        url: std::env::var("REDIS_URL").unwrap_or_default(),
        jobs: 2000,
        latency_jobs: 300,
        pace: Duration::from_millis(20),
        concurrency: vec![1, 10],
        workers: vec![1, 2],
        poll_ms: 500,
        arq_script: None,
        timeout: Duration::from_secs(120),
    };
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let value = args.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--url" => options.url = value.clone(),
            "--jobs" => options.jobs = value.parse()?,
            "--latency-jobs" => options.latency_jobs = value.parse()?,
            "--pace-ms" => options.pace = Duration::from_millis(value.parse()?),
            "--concurrency" => options.concurrency = list(value)?,
            "--workers" => options.workers = list(value)?,
            "--poll-ms" => options.poll_ms = value.parse()?,
            "--arq-script" => options.arq_script = Some(value.clone()),
            "--timeout-secs" => options.timeout = Duration::from_secs(value.parse()?),
            other => bail!("unknown option {other}"),
        }
    }
    if options.url.is_empty() {
        bail!("set REDIS_URL or --url");
    }
    Ok(options)
}

/// The no-op job: reports when it started and how long after its enqueue.
struct Report;

#[async_trait]
impl JobHandler for Report {
    async fn handle(&self, message: JobMessage) -> anyhow::Result<()> {
        let started = unix_ns();
        let enqueued: u128 = message
            .job_id
            .rsplit('-')
            .next()
            .and_then(|ns| ns.parse().ok())
            .context("job id without an enqueue time")?;
        let phase = message.job_id.split('-').next().unwrap_or_default();
        let mut out = std::io::stdout().lock();
        writeln!(out, "S {phase} {} {started}", started.saturating_sub(enqueued))?;
        Ok(())
    }
}

/// A worker process: consumes until its stdin closes.
async fn worker(url: &str, queue: &str, concurrency: usize, poll_ms: u64) -> anyhow::Result<()> {
    let queue = RedisJobQueue::open(url, queue, HEARTBEAT, Duration::from_millis(poll_ms))?;
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    std::thread::spawn(move || {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        stop.cancel();
    });
    let name = format!("bench-{}", std::process::id());
    queue.consume(name, concurrency, Arc::new(Report), shutdown).await
}

/// One started job as a worker process reported it.
struct Start {
    latency_ns: u128,
    started_ns: u128,
}

/// Routes each start line to the channel of its phase (`lat` or `burst`).
fn read_starts(child: &mut Child, latency: Sender<Start>, burst: Sender<Start>) -> anyhow::Result<()> {
    let stdout = child.stdout.take().context("worker stdout")?;
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let mut parts = line.split_whitespace();
            if parts.next() != Some("S") {
                continue;
            }
            let sink = match parts.next() {
                Some("lat") => &latency,
                Some("burst") => &burst,
                _ => continue,
            };
            let numbers: Vec<u128> = parts.filter_map(|part| part.parse().ok()).collect();
            if let [latency_ns, started_ns] = numbers[..] {
                let _ = sink.send(Start { latency_ns, started_ns });
            }
        }
    });
    Ok(())
}

fn collect(starts: &Receiver<Start>, count: usize, timeout: Duration) -> Vec<Start> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::with_capacity(count);
    while got.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        match starts.recv_timeout(left) {
            Ok(start) => got.push(start),
            Err(_) => break,
        }
    }
    got
}

/// A whole second far enough ahead to enqueue `jobs` before it (arq's enqueue is the slower).
fn burst_due_s(jobs: usize) -> u64 {
    let now_s = (unix_ns() / 1_000_000_000) as u64;
    now_s + 2 + (jobs as u64).div_ceil(400)
}

/// Jobs started per second between the first and the last start.
fn drain_rate(starts_ns: &[u128]) -> Option<f64> {
    let (Some(first), Some(last)) = (starts_ns.iter().min(), starts_ns.iter().max()) else {
        return None;
    };
    (starts_ns.len() > 1).then(|| (starts_ns.len() - 1) as f64 / ((last - first) as f64 / 1e9).max(1e-9))
}

fn percentile_ms(latencies: &mut [u128], percentile: f64) -> Option<f64> {
    if latencies.is_empty() {
        return None;
    }
    latencies.sort_unstable();
    let rank = ((latencies.len() as f64 - 1.0) * percentile).round() as usize;
    Some(latencies[rank.min(latencies.len() - 1)] as f64 / 1e6)
}

fn cell(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "n/a".to_owned(), |value| format!("{value:.decimals$}"))
}

#[derive(Debug, serde::Deserialize)]
struct Row {
    system: String,
    workers: usize,
    concurrency: usize,
    p50_ms: Option<f64>,
    p95_ms: Option<f64>,
    jobs_per_s: Option<f64>,
    complete: bool,
}

async fn bench_hbi(options: &Options, workers: usize, concurrency: usize) -> anyhow::Result<Row> {
    let queue_name = format!("bench.hbi.{workers}.{concurrency}.{}", std::process::id());
    let queue = RedisJobQueue::open(
        &options.url,
        &queue_name,
        HEARTBEAT,
        Duration::from_millis(options.poll_ms),
    )?;
    queue.check().await?;
    let exe = std::env::current_exe()?;
    let (latency_tx, latency_rx) = channel();
    let (burst_tx, burst_rx) = channel();
    let mut children = Vec::new();
    for _ in 0..workers {
        let mut child = Command::new(&exe)
            .args([
                "worker",
                &options.url,
                &queue_name,
                &concurrency.to_string(),
                &options.poll_ms.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting a worker process")?;
        read_starts(&mut child, latency_tx.clone(), burst_tx.clone())?;
        children.push(child);
    }
    tokio::time::sleep(WARM_UP).await;

    let mut complete = true;
    for i in 0..options.latency_jobs {
        let message = JobMessage::job(format!("lat-{i}-{}", unix_ns()));
        queue.enqueue(&message, Duration::ZERO).await?;
        tokio::time::sleep(options.pace).await;
    }
    let latency = collect(&latency_rx, options.latency_jobs, options.timeout);
    complete &= latency.len() == options.latency_jobs;
    let mut latencies: Vec<u128> = latency.iter().map(|start| start.latency_ns).collect();

    // Burst: every job due at the same whole second, so workers drain a full backlog.
    let due_s = burst_due_s(options.jobs);
    for i in 0..options.jobs {
        let message = JobMessage::job(format!("burst-{i}-{}", unix_ns()));
        let delay = Duration::from_secs(due_s).saturating_sub(Duration::from_nanos(unix_ns() as u64));
        queue.enqueue(&message, delay).await?;
    }
    complete &= (unix_ns() / 1_000_000_000) < u128::from(due_s);
    let burst = collect(&burst_rx, options.jobs, options.timeout);
    complete &= burst.len() == options.jobs;
    for mut child in children {
        drop(child.stdin.take());
        let _ = child.wait();
    }
    Ok(Row {
        system: "hbi (apalis-redis)".to_owned(),
        workers,
        concurrency,
        p50_ms: percentile_ms(&mut latencies, 0.50),
        p95_ms: percentile_ms(&mut latencies, 0.95),
        jobs_per_s: drain_rate(&burst.iter().map(|start| start.started_ns).collect::<Vec<_>>()),
        complete,
    })
}

fn bench_arq(options: &Options, script: &str, workers: usize, concurrency: usize) -> anyhow::Result<Row> {
    let output = Command::new("python3")
        .arg(script)
        .args(["bench", "--url", &options.url])
        .args(["--workers", &workers.to_string()])
        .args(["--concurrency", &concurrency.to_string()])
        .args(["--jobs", &options.jobs.to_string()])
        .args(["--latency-jobs", &options.latency_jobs.to_string()])
        .args(["--pace-ms", &options.pace.as_millis().to_string()])
        .args(["--poll-ms", &options.poll_ms.to_string()])
        .args(["--timeout-secs", &options.timeout.as_secs().to_string()])
        .stderr(Stdio::inherit())
        .output()
        .context("running the arq benchmark (python3)")?;
    if !output.status.success() {
        bail!("the arq benchmark failed: {}", output.status);
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().context("no result from the arq benchmark")?;
    serde_json::from_str(line).with_context(|| format!("arq result: {line}"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("worker") {
        let [_, url, queue, concurrency, poll_ms] = &args[..] else {
            bail!("worker URL QUEUE CONCURRENCY POLL_MS");
        };
        return worker(url, queue, concurrency.parse()?, poll_ms.parse()?).await;
    }
    let options = parse_options(&args)?;
    let redis_version = redis_version(&options.url).await.unwrap_or_else(|_| "?".to_owned());
    let mut rows = Vec::new();
    for &concurrency in &options.concurrency {
        for &workers in &options.workers {
            eprintln!("hbi: {workers} worker(s), concurrency {concurrency}...");
            rows.push(bench_hbi(&options, workers, concurrency).await?);
            if let Some(script) = &options.arq_script {
                eprintln!("arq: {workers} worker(s), concurrency {concurrency}...");
                rows.push(bench_arq(&options, script, workers, concurrency)?);
            }
        }
    }
    println!(
        "Redis {redis_version}; {} no-op jobs per burst, {} paced latency jobs (one per {} ms), poll interval {} ms",
        options.jobs,
        options.latency_jobs,
        options.pace.as_millis(),
        options.poll_ms
    );
    println!();
    println!(
        "| system | worker processes | concurrency per worker | latency p50 (ms) | latency p95 (ms) | burst jobs/s |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for row in rows {
        let note = if row.complete { "" } else { " (incomplete: timed out)" };
        println!(
            "| {} | {} | {} | {} | {} | {}{note} |",
            row.system,
            row.workers,
            row.concurrency,
            cell(row.p50_ms, 1),
            cell(row.p95_ms, 1),
            cell(row.jobs_per_s, 0)
        );
    }
    Ok(())
}

async fn redis_version(url: &str) -> anyhow::Result<String> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let info: String = redis::cmd("INFO").arg("server").query_async(&mut conn).await?;
    info.lines()
        .find_map(|line| line.strip_prefix("redis_version:"))
        .map(|version| version.trim().to_owned())
        .context("no redis_version in INFO")
}
