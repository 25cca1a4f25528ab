//! `RedisJobQueue` against a real redis-server (AOF on), one per test.

use crate::services;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hbi_shared::domain::JobMessage;
use hbi_shared::jobs::{JobHandler, JobQueue, RedisJobQueue};
use services::Service;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Short enough that an orphaned message comes back within a few seconds.
const HEARTBEAT: Duration = Duration::from_secs(1);
const POLL: Duration = Duration::from_millis(50);

fn open(url: &str, queue: &str) -> Arc<RedisJobQueue> {
    Arc::new(RedisJobQueue::open(url, queue, HEARTBEAT, POLL).expect("open redis queue"))
}

fn message(id: impl std::fmt::Display) -> JobMessage {
    JobMessage::job(id.to_string())
}

/// Counts deliveries per job id and records when each first arrived; optionally holds every
/// message for `hold` before returning.
#[derive(Default)]
struct Counting {
    seen: Mutex<HashMap<String, (usize, Instant)>>,
    hold: Duration,
    finished: Mutex<Vec<String>>,
}

impl Counting {
    fn holding(hold: Duration) -> Arc<Self> {
        Arc::new(Self {
            hold,
            ..Self::default()
        })
    }

    fn distinct(&self) -> usize {
        self.seen.lock().expect("lock").len()
    }

    fn counts(&self) -> HashMap<String, usize> {
        self.seen
            .lock()
            .expect("lock")
            .iter()
            .map(|(id, (count, _))| (id.clone(), *count))
            .collect()
    }

    fn first_seen(&self, id: &str) -> Option<Instant> {
        self.seen.lock().expect("lock").get(id).map(|(_, at)| *at)
    }

    async fn wait_for(&self, distinct: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.distinct() < distinct {
            assert!(
                Instant::now() < deadline,
                "only {} of {distinct} messages delivered within {timeout:?}",
                self.distinct()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[async_trait]
impl JobHandler for Counting {
    async fn handle(&self, message: JobMessage) -> anyhow::Result<()> {
        self.seen
            .lock()
            .expect("lock")
            .entry(message.job_id.clone())
            .and_modify(|(count, _)| *count += 1)
            .or_insert((1, Instant::now()));
        if !self.hold.is_zero() {
            tokio::time::sleep(self.hold).await;
        }
        self.finished.lock().expect("lock").push(message.job_id);
        Ok(())
    }
}

fn spawn_consumer(
    queue: &Arc<RedisJobQueue>,
    name: &str,
    concurrency: usize,
    handler: Arc<Counting>,
) -> (CancellationToken, JoinHandle<anyhow::Result<()>>) {
    let shutdown = CancellationToken::new();
    let queue = queue.clone();
    let name = format!("{name}-{}", std::process::id());
    let stop = shutdown.clone();
    let task = tokio::spawn(async move { queue.consume(name, concurrency, handler, stop).await });
    (shutdown, task)
}

async fn stop_consumer(shutdown: CancellationToken, task: JoinHandle<anyhow::Result<()>>) {
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("consume returns after shutdown")
        .expect("consume task")
        .expect("consume ends cleanly");
}

/// Every message is delivered exactly once, also after the orphan timeout has passed (an
/// unacknowledged message would come back then).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_each_message_exactly_once() {
    let redis = Service::start("redis");
    let queue = open(&redis.url, "t.once");
    const N: usize = 200;
    for i in 0..N {
        queue.enqueue(&message(i), Duration::ZERO).await.expect("enqueue");
    }
    let handler = Arc::new(Counting::default());
    let (shutdown, task) = spawn_consumer(&queue, "once", 2, handler.clone());
    handler.wait_for(N, Duration::from_secs(60)).await;
    // Past two missed heartbeats plus one beat: any message left in flight would be back.
    tokio::time::sleep(HEARTBEAT * 4).await;
    let counts = handler.counts();
    assert_eq!(counts.len(), N);
    let repeated: Vec<_> = counts.iter().filter(|(_, count)| **count != 1).collect();
    assert!(repeated.is_empty(), "delivered more than once: {repeated:?}");
    assert_eq!(queue.depth().await.expect("depth"), 0);
    stop_consumer(shutdown, task).await;
}

/// A delayed message waits at least its delay, and not much longer; an undelayed one
/// enqueued after it overtakes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_message_waits_for_its_delay() {
    let redis = Service::start("redis");
    let queue = open(&redis.url, "t.delay");
    let handler = Arc::new(Counting::default());
    let (shutdown, task) = spawn_consumer(&queue, "delay", 1, handler.clone());
    let delay = Duration::from_millis(2500);
    let enqueued = Instant::now();
    queue.enqueue(&message("later"), delay).await.expect("enqueue delayed");
    queue.enqueue(&message("now"), Duration::ZERO).await.expect("enqueue");
    handler.wait_for(2, Duration::from_secs(15)).await;
    let now_at = handler.first_seen("now").expect("now delivered");
    let later_at = handler.first_seen("later").expect("later delivered");
    assert!(now_at < later_at, "the undelayed message runs first");
    let waited = later_at - enqueued;
    assert!(
        waited >= delay,
        "delivered after {waited:?}, before its {delay:?} delay"
    );
    assert!(
        waited < delay + Duration::from_millis(1500),
        "delivered only after {waited:?}"
    );
    stop_consumer(shutdown, task).await;
}

/// Depth counts waiting and scheduled messages, and drops as they are consumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn depth_counts_waiting_messages() {
    let redis = Service::start("redis");
    let queue = open(&redis.url, "t.depth");
    // Another queue on the same server is not counted.
    let other = open(&redis.url, "t.depth.other");
    other
        .enqueue(&message("other"), Duration::ZERO)
        .await
        .expect("enqueue other");
    assert_eq!(queue.depth().await.expect("depth"), 0);
    for i in 0..5 {
        queue.enqueue(&message(i), Duration::ZERO).await.expect("enqueue");
    }
    for i in 5..7 {
        queue
            .enqueue(&message(i), Duration::from_secs(600))
            .await
            .expect("enqueue");
    }
    assert_eq!(queue.depth().await.expect("depth"), 7);
    queue.check().await.expect("check");

    let handler = Arc::new(Counting::default());
    let (shutdown, task) = spawn_consumer(&queue, "depth", 2, handler.clone());
    handler.wait_for(5, Duration::from_secs(15)).await;
    assert_eq!(
        queue.depth().await.expect("depth"),
        2,
        "the two scheduled ones still wait"
    );
    stop_consumer(shutdown, task).await;
    assert_eq!(other.depth().await.expect("depth"), 1);
}

/// Redis goes away and comes back on the same data: waiting messages survive, the running
/// consumer rides out the outage and consumes them, and new messages flow again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_survives_a_redis_restart() {
    let redis = Service::start("redis");
    let queue = open(&redis.url, "t.restart");
    let handler = Arc::new(Counting::default());
    let (shutdown, task) = spawn_consumer(&queue, "restart", 2, handler.clone());
    for i in 0..5 {
        queue
            .enqueue(&message(format!("before-{i}")), Duration::ZERO)
            .await
            .expect("enqueue");
    }
    handler.wait_for(5, Duration::from_secs(15)).await;
    // These wait in Redis across the outage.
    for i in 0..10 {
        queue
            .enqueue(&message(format!("waiting-{i}")), Duration::from_secs(2))
            .await
            .expect("enqueue");
    }
    redis.stop();
    assert!(queue.check().await.is_err(), "check reports the outage");
    assert!(
        queue.enqueue(&message("lost"), Duration::ZERO).await.is_err(),
        "enqueue fails while Redis is down (the outbox relay retries it)"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!task.is_finished(), "consume must keep running while Redis is down");
    redis.restart();
    queue.check().await.expect("check after restart");
    for i in 0..5 {
        queue
            .enqueue(&message(format!("after-{i}")), Duration::ZERO)
            .await
            .expect("enqueue");
    }
    handler.wait_for(20, Duration::from_secs(30)).await;
    let counts = handler.counts();
    for i in 0..10 {
        assert!(counts.contains_key(&format!("waiting-{i}")), "waiting-{i} lost");
    }
    assert!(!counts.contains_key("lost"));
    assert!(!task.is_finished(), "consume is still running");
    // The outage ended the first apalis worker; consume started another under a new name.
    let client = redis::Client::open(redis.url.as_str()).expect("redis client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection");
    let workers: Vec<String> = redis::cmd("ZRANGE")
        .arg("t.restart:workers")
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .expect("ZRANGE");
    let first = format!("restart-{}", std::process::id());
    assert!(
        workers.iter().any(|name| name.starts_with(&format!("{first}."))),
        "no restarted worker registered: {workers:?}"
    );
    stop_consumer(shutdown, task).await;
}

/// Shutdown stops taking messages at once and returns when the in-flight one is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_the_in_flight_job_finish() {
    let redis = Service::start("redis");
    let queue = open(&redis.url, "t.shutdown");
    let hold = Duration::from_secs(2);
    let handler = Counting::holding(hold);
    let (shutdown, task) = spawn_consumer(&queue, "shutdown", 1, handler.clone());
    queue.enqueue(&message("first"), Duration::ZERO).await.expect("enqueue");
    handler.wait_for(1, Duration::from_secs(15)).await;
    for i in 0..3 {
        queue
            .enqueue(&message(format!("left-{i}")), Duration::ZERO)
            .await
            .expect("enqueue");
    }
    let cancelled = Instant::now();
    shutdown.cancel();
    let started = handler.first_seen("first").expect("first delivered");
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("consume returns")
        .expect("consume task")
        .expect("consume ends cleanly");
    let returned = Instant::now();
    assert!(
        returned >= started + hold,
        "consume returned before the in-flight job finished"
    );
    assert!(
        returned - cancelled < hold + Duration::from_secs(1),
        "consume took {:?} after shutdown",
        returned - cancelled
    );
    assert_eq!(*handler.finished.lock().expect("lock"), vec!["first".to_owned()]);
    assert_eq!(handler.distinct(), 1, "no message taken after shutdown");
    assert_eq!(queue.depth().await.expect("depth"), 3);

    // An idle consumer stops promptly.
    let (shutdown, task) = spawn_consumer(&open(&redis.url, "t.idle"), "idle", 1, Counting::holding(hold));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cancelled = Instant::now();
    stop_consumer(shutdown, task).await;
    assert!(
        cancelled.elapsed() < Duration::from_secs(1),
        "idle consumer took {:?}",
        cancelled.elapsed()
    );
}

const CHILD_URL: &str = "HBI_TEST_REDIS_CHILD_URL";
const CHILD_QUEUE: &str = "t.killed";

/// The consumer process that the next test starts and kills (the test binary re-run with
/// `CHILD_URL` set). It reports each message it starts and never finishes one.
async fn child_consumer_that_hangs(url: String) {
    struct Hang;
    #[async_trait]
    impl JobHandler for Hang {
        async fn handle(&self, message: JobMessage) -> anyhow::Result<()> {
            println!("STARTED {}", message.job_id);
            std::future::pending::<()>().await;
            Ok(())
        }
    }
    let queue = open(&url, CHILD_QUEUE);
    let _ = queue
        .consume(
            format!("child-{}", std::process::id()),
            1,
            Arc::new(Hang),
            CancellationToken::new(),
        )
        .await;
}

/// The name libtest knows a test of this module by: its module path without the crate
/// (`redis_queue::name`), so that `--exact` finds it wherever the module is mounted.
fn own_test_name(function: &str) -> String {
    let module = module_path!();
    let path = module.split_once("::").map_or("", |(_, rest)| rest);
    if path.is_empty() {
        function.to_owned()
    } else {
        format!("{path}::{function}")
    }
}

/// A consumer process killed with SIGKILL mid-job: after its heartbeat times out, another
/// consumer's heartbeat puts the message back and that consumer gets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_killed_mid_job_is_redelivered() {
    if let Ok(url) = std::env::var(CHILD_URL) {
        // This process is the child started below.
        child_consumer_that_hangs(url).await;
        return;
    }
    let redis = Service::start("redis");
    let queue = open(&redis.url, CHILD_QUEUE);
    queue
        .enqueue(&message("orphan"), Duration::ZERO)
        .await
        .expect("enqueue");

    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            &own_test_name("consumer_killed_mid_job_is_redelivered"),
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_URL, &redis.url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start child consumer");
    let stdout = child.stdout.take().expect("child stdout");
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // libtest prints "test <name> ... " without a newline before the child's output.
            if let Some((_, id)) = line.split_once("STARTED ") {
                let _ = started_tx.send(id.trim().to_owned());
            }
        }
    });
    let started = started_rx.recv_timeout(Duration::from_secs(60));
    if started.is_err() {
        let _ = child.kill();
    }
    assert_eq!(started.expect("child took the message"), "orphan");
    // SIGKILL: no shutdown, no acknowledgement, no goodbye to Redis.
    child.kill().expect("kill child");
    child.wait().expect("reap child");
    let killed = Instant::now();
    assert_eq!(
        queue.depth().await.expect("depth"),
        0,
        "the message is in the dead worker's hands"
    );

    let handler = Arc::new(Counting::default());
    let (shutdown, task) = spawn_consumer(&queue, "rescuer", 1, handler.clone());
    // Orphaned after 2 missed heartbeats, noticed on the rescuer's next beat; seconds granularity.
    handler
        .wait_for(1, HEARTBEAT * 2 + HEARTBEAT + Duration::from_secs(4))
        .await;
    let waited = killed.elapsed();
    assert!(
        waited >= HEARTBEAT,
        "re-delivered after {waited:?}, before the heartbeat timeout"
    );
    assert_eq!(handler.counts().get("orphan"), Some(&1));
    stop_consumer(shutdown, task).await;
}

/// Redis keeps no trace of a message once it finished longer ago than the retention: no id in
/// the done set, no payload, no metadata. Until then all three stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_messages_go_after_their_retention() {
    let redis = Service::start("redis");
    let queue = open(&redis.url, "t.prune");
    const N: usize = 20;
    for i in 0..N {
        queue.enqueue(&message(i), Duration::ZERO).await.expect("enqueue");
    }
    let handler = Arc::new(Counting::default());
    let (shutdown, task) = spawn_consumer(&queue, "prune", 2, handler.clone());
    handler.wait_for(N, Duration::from_secs(60)).await;
    stop_consumer(shutdown, task).await;
    let client = redis::Client::open(redis.url.as_str()).expect("redis client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection");
    let mut kept = async || -> (u64, u64, usize) {
        let (done, data): (u64, u64) = redis::pipe()
            .scard("t.prune:done")
            .hlen("t.prune:data")
            .query_async(&mut conn)
            .await
            .expect("sizes");
        let meta: Vec<String> = redis::cmd("KEYS")
            .arg("t.prune:meta:*")
            .query_async(&mut conn)
            .await
            .expect("meta keys");
        (done, data, meta.len())
    };
    let n = N as u64;
    assert_eq!(kept().await, (n, n, N), "apalis keeps every finished message");
    assert_eq!(queue.prune_finished(Duration::from_secs(3600)).await.expect("prune"), 0);
    assert_eq!(kept().await, (n, n, N), "within the retention they stay");
    // Finish times are whole seconds: past the next one, every message is older than zero.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(queue.prune_finished(Duration::ZERO).await.expect("prune"), n);
    assert_eq!(kept().await, (0, 0, 0));
}
