//! A real Prometheus (Debian package `prometheus`) scrapes a live HBI through a small
//! workload: `hbi serve` (API and worker in one process, scraped as both `hbi-api` and
//! `hbi-worker`) and a separate `hbi worker` (its own health port, as `hbi-worker`). Then
//! every PromQL expression of the Grafana dashboards and the alert rules
//! (`ops::all_promql`) is evaluated through Prometheus' query API: each must be valid, and
//! each must return a finite value unless [`WITHOUT_DATA`] lists it with its reason. The
//! alert rules of config/alerts.yml load and evaluate with health ok, and none fires on the
//! healthy system. `promtool check rules` and the rule unit tests run in ops_config.rs.

use crate::common;
use crate::ops;

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Role, TestServer, corpus_pdf, free_port};
use serde_json::Value;

const JOB_TIMEOUT: Duration = Duration::from_secs(300);

/// A dashboard panel (by title) or an alert rule (by name) of `ops::all_promql`.
#[derive(Debug)]
enum Source {
    Panel(&'static str),
    Rule(&'static str),
}

impl Source {
    fn matches(&self, source: &str) -> bool {
        match self {
            Source::Panel(title) => source.contains(&format!("panel String({title:?})")),
            Source::Rule(name) => source.ends_with(&format!(": rule {name}")),
        }
    }
}

/// The queries that return no finite value after this workload, and why. Every other query
/// must return one. The list is kept true both ways: a query listed here that starts to
/// return data fails the test until it is taken off (e.g. once search or the LLM lands).
/// For an alert rule the condition is false on a healthy system, so its expression is empty;
/// the part left of the threshold is evaluated too and must return data (except where the
/// rule has no such part, noted).
const WITHOUT_DATA: &[(Source, &str)] = &[
    (
        Source::Rule("HighErrorRate"),
        "no request was answered with a 5xx, so the 5xx share has no series (and the rule has no single threshold)",
    ),
    (Source::Rule("ApiDown"), "up == 0: the API target answers"),
    (Source::Rule("WorkerDown"), "up == 0: both worker targets answer"),
    (
        Source::Rule("NoWorkerUp"),
        "absent(up == 1): workers are up (absent() has no threshold part)",
    ),
    (
        Source::Rule("QueueBacklog"),
        "over 50 jobs waiting: the queue is empty after the workload",
    ),
    (
        Source::Rule("DLQSizeHigh"),
        "over 10 dead jobs: the workload leaves one",
    ),
    (
        Source::Rule("SlowJobs"),
        "a stage p95 over 600 s: r-intro takes seconds",
    ),
    (
        Source::Panel("Error rate by route (5xx)"),
        "no request was answered with a 5xx: the numerator has no series per route",
    ),
    (
        Source::Panel("LLM requests by outcome"),
        "no LLM caller yet; provider and model are open label values, so no series exists before a request",
    ),
    (
        Source::Panel("LLM latency"),
        "no LLM caller yet: the quantile of an empty histogram is NaN",
    ),
    (
        Source::Panel("Reranker latency"),
        "no reranker in this workload (it is optional): the quantile of an empty histogram is NaN",
    ),
];

/// SPEC metrics with no series in Prometheus after this workload (their `# HELP` and
/// `# TYPE` lines are exported all the same), and why. Every other one must have a series.
const NOT_SCRAPED: &[(&str, &str)] = &[(
    "hbi_llm_requests_total",
    "no LLM caller yet; provider and model are open label values",
)];

struct Prometheus {
    child: Child,
    base: String,
    client: reqwest::Client,
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus on a port of its own, scraping every second (`hbi-api` and
    /// `hbi-worker` targets given as host:port) and evaluating config/alerts.yml every second.
    async fn start(api: &[&str], workers: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let rules = ops::repo_root().join("config/alerts.yml");
        let targets = |hosts: &[&str]| serde_json::to_string(hosts).expect("targets as JSON");
        // YAML is a superset of JSON: quoted strings and flow lists are written as JSON.
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {rules}\n\
             scrape_configs:\n\
             \x20 - job_name: hbi-api\n    metrics_path: /metrics\n    static_configs:\n      - targets: {api}\n\
             \x20 - job_name: hbi-worker\n    metrics_path: /metrics\n    static_configs:\n      - targets: {workers}\n",
            rules = serde_json::to_string(&rules.to_string_lossy()).expect("path as JSON"),
            api = targets(api),
            workers = targets(workers),
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write prometheus.yml");
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
        let child = Command::new(ops::prometheus_server())
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {} ({e}): install the Debian package `prometheus` (scripts/lib/install-tools.sh)",
                    ops::prometheus_server().display()
                )
            });
        let prometheus = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            dir,
        };
        prometheus
            .wait_until("Prometheus is ready", || async {
                let ready = prometheus
                    .client
                    .get(format!("{}/-/ready", prometheus.base))
                    .send()
                    .await;
                ready.is_ok_and(|response| response.status().is_success())
            })
            .await;
        prometheus
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// Polls `check` every 250 ms for up to a minute; panics with Prometheus' log if it never holds.
    async fn wait_until<F, Fut>(&self, what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !check().await {
            assert!(
                Instant::now() < deadline,
                "{what}: timed out; Prometheus log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .query(query)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        response.json().await.unwrap_or(Value::Null)
    }

    /// An instant query: Prometheus' whole answer (`status`, `data` or `error`).
    async fn query(&self, expr: &str) -> Value {
        self.get("/api/v1/query", &[("query", expr)]).await
    }

    /// The value of a query that must return exactly one sample.
    async fn value(&self, expr: &str) -> f64 {
        let answer = self.query(expr).await;
        let result = answer["data"]["result"].as_array().cloned().unwrap_or_default();
        assert_eq!(result.len(), 1, "{expr}: one sample expected: {answer}");
        sample_value(&result[0]["value"]).unwrap_or_else(|| panic!("{expr}: {answer}"))
    }

    /// Scrapes of the `hbi-api` target so far.
    async fn scrapes(&self) -> f64 {
        let answer = self.query("sum(count_over_time(up{job=\"hbi-api\"}[1h]))").await;
        answer["data"]["result"]
            .as_array()
            .and_then(|result| result.first())
            .and_then(|sample| sample_value(&sample["value"]))
            .unwrap_or(0.0)
    }

    async fn wait_for_scrapes(&self, more: f64) {
        let target = self.scrapes().await + more;
        self.wait_until(&format!("{more} more scrapes"), || async {
            self.scrapes().await >= target
        })
        .await;
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `[timestamp, "value"]` as a number (NaN and ±Inf included).
fn sample_value(pair: &Value) -> Option<f64> {
    pair.get(1)?.as_str()?.parse().ok()
}

/// Whether a query's `data` holds at least one finite value.
fn has_data(data: &Value) -> bool {
    let finite = |pair: &Value| sample_value(pair).is_some_and(f64::is_finite);
    match data["resultType"].as_str() {
        Some("vector") => data["result"]
            .as_array()
            .is_some_and(|samples| samples.iter().any(|sample| finite(&sample["value"]))),
        Some("matrix") => data["result"].as_array().is_some_and(|series| {
            series
                .iter()
                .any(|one| one["values"].as_array().is_some_and(|values| values.iter().any(finite)))
        }),
        Some("scalar") => finite(&data["result"]),
        _ => false,
    }
}

/// The part of an alert expression left of a final comparison with a number
/// (`max(hbi_dlq_size) > 10` → `max(hbi_dlq_size)`), when it is a single condition.
fn left_of_threshold(expr: &str) -> Option<String> {
    if expr
        .split_whitespace()
        .any(|word| matches!(word, "and" | "or" | "unless"))
    {
        return None;
    }
    let (rest, number) = expr.trim_end().rsplit_once(char::is_whitespace)?;
    number.parse::<f64>().ok()?;
    let rest = rest.trim_end();
    [">=", "<=", "==", "!=", ">", "<"]
        .iter()
        .find_map(|op| rest.strip_suffix(op))
        .map(|left| left.trim().to_owned())
}

fn host_port(server: &TestServer) -> String {
    server.base.trim_start_matches("http://").to_owned()
}

/// What the workload did, for the checks.
struct Workload {
    book_id: String,
    job_id: String,
    pages: f64,
    bad_attempts: f64,
}

/// r-intro processed to `succeeded`, a damaged PDF to the dead-letter queue, a request to
/// an unknown path, and the reads a client makes.
async fn run_workload(server: &TestServer) -> Workload {
    let book_id = server.create_book("An Introduction to R").await;
    let pdf = std::fs::read(corpus_pdf("r-intro")).expect("r-intro pdf");
    let (status, accepted) = server.upload(&book_id, pdf, "R-intro.pdf").await;
    assert_eq!(status, 202, "upload: {accepted}");
    let job_id = accepted["job_id"].as_str().expect("job id").to_owned();

    // A PDF signature and nothing else: accepted, then refused by the extractor.
    let bad_book = server.create_book("damaged").await;
    let mut damaged = b"%PDF-1.7\n".to_vec();
    damaged.extend(std::iter::repeat_n(b'\xff', 4096));
    let (status, bad) = server.upload(&bad_book, damaged, "damaged.pdf").await;
    assert_eq!(status, 202, "upload: {bad}");
    let bad_job_id = bad["job_id"].as_str().expect("job id").to_owned();

    let job = server.wait_for_job(&job_id, JOB_TIMEOUT).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let bad_job = server.wait_for_job(&bad_job_id, JOB_TIMEOUT).await;
    assert_eq!(bad_job["state"], "dead", "{bad_job}");

    let (status, _) = server.get_json(&format!("/books/{book_id}/toc")).await;
    assert_eq!(status, 200);
    let (status, found) = server.get_json("/search?q=data%20frames&mode=keyword").await;
    assert_eq!(status, 200, "search: {found}");
    let (status, _) = server.get_json("/no/such/path").await;
    assert_eq!(status, 404);
    let (status, _) = server.get_json("/dlq").await;
    assert_eq!(status, 200);

    Workload {
        book_id,
        job_id,
        pages: job["progress"]["total"].as_f64().expect("page count"),
        bad_attempts: bad_job["attempts"].as_f64().expect("attempts"),
    }
}

/// GET /metrics of a process: 200 in the text format.
async fn exposition(server: &TestServer) -> String {
    let response = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(response.status().as_u16(), 200, "{}", server.base);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    assert_eq!(content_type.as_deref(), Some("text/plain; version=0.0.4"));
    response.text().await.expect("metrics text")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_live_prometheus_evaluates_every_dashboard_and_alert_query_against_a_working_hbi() {
    let server = TestServer::start(&[("HBI__WORKER__RETRY_BASE_DELAY_MS", "200")]);
    let worker_dir = tempfile::tempdir().expect("temp dir");
    let worker = TestServer::spawn(Role::Worker, worker_dir.path(), &[]);
    let (status, _) = worker.get_json("/health").await;
    assert_eq!(status, 200, "the worker serves /health on its own port");

    let (api, serve, lone_worker) = (host_port(&server), host_port(&server), host_port(&worker));
    let prometheus = Prometheus::start(&[&api], &[&serve, &lone_worker]).await;
    // Prometheus sees every counter at zero before the work, so `increase()` counts it all.
    prometheus.wait_for_scrapes(2.0).await;
    let workload = run_workload(&server).await;

    // Every metric of SPEC section 4 is exported by both processes, with no id in a label.
    let text = exposition(&server).await;
    let worker_text = exposition(&worker).await;
    for (name, kind) in ops::SPEC_METRICS.iter().filter(|(name, _)| *name != "up") {
        let kind = format!("{kind:?}").to_lowercase();
        let declared = format!("# TYPE {name} {kind}\n");
        assert!(text.contains(&declared), "hbi serve exports {name}:\n{text}");
        assert!(worker_text.contains(&declared), "hbi worker exports {name}");
    }
    for id in [&workload.book_id, &workload.job_id] {
        assert!(!text.contains(id.as_str()), "an id in a label:\n{text}");
    }

    prometheus.wait_for_scrapes(3.0).await;

    // Every target answers.
    let targets = prometheus.get("/api/v1/targets", &[]).await;
    let active = targets["data"]["activeTargets"].as_array().cloned().unwrap_or_default();
    assert_eq!(active.len(), 3, "{targets}");
    for target in &active {
        assert_eq!(target["health"], "up", "{target}");
    }

    // What the workload did, as Prometheus holds it (the `hbi serve` process as `hbi-api`).
    let serve_value = |expr: &str| {
        let expr = expr.replace("{}", "{job=\"hbi-api\"}");
        let prometheus = &prometheus;
        async move { prometheus.value(&expr).await }
    };
    let bad_failures = workload.bad_attempts - 1.0;
    for (expr, expected) in [
        ("hbi_jobs_total{outcome=\"succeeded\",job=\"hbi-api\"}", 1.0),
        ("hbi_jobs_total{outcome=\"dead\",job=\"hbi-api\"}", 1.0),
        ("hbi_jobs_total{outcome=\"failed\",job=\"hbi-api\"}", bad_failures),
        ("hbi_jobs_total{outcome=\"cancelled\",job=\"hbi-api\"}", 0.0),
        ("hbi_worker_tasks_processed_total{}", 2.0 + bad_failures),
        ("hbi_worker_tasks_failed_total{}", 1.0 + bad_failures),
        ("hbi_books_ingested_total{}", 1.0),
        ("hbi_pages_processed_total{}", workload.pages),
        ("hbi_index_locator_support_ratio_count{}", 1.0),
        ("hbi_dlq_size{}", 1.0),
        ("hbi_worker_dlq_size{}", 1.0),
        ("hbi_queue_depth{}", 0.0),
        ("hbi_worker_queue_depth{}", 0.0),
        ("hbi_books_needing_review{}", 0.0),
        ("count(up{job=\"hbi-worker\"} == 1)", 2.0),
    ] {
        let value = serve_value(expr).await;
        assert!((value - expected).abs() < 0.01, "{expr}: {value}, expected {expected}");
    }
    // Prometheus saw the counter at 0 before the work: `increase()` counts the book (with
    // its extrapolation to the window's edges).
    let ingested = serve_value("sum(increase(hbi_books_ingested_total{}[1h]))").await;
    assert!((0.9..1.5).contains(&ingested), "increase of books ingested: {ingested}");
    let ratio = serve_value("hbi_index_locator_support_ratio_sum{}").await;
    assert!(ratio > 0.5 && ratio <= 1.0, "r-intro's locator support: {ratio}");
    for stage in [
        "validate",
        "store",
        "extract_text",
        "toc",
        "index",
        "chunk",
        "index_text",
        "graph",
    ] {
        let count = serve_value(&format!(
            "hbi_job_stage_duration_seconds_count{{stage=\"{stage}\",job=\"hbi-api\"}}"
        ))
        .await;
        assert!(count >= 1.0, "stage {stage} timed: {count}");
    }

    // Route labels are templates: bounded, never a raw path.
    let routes = prometheus
        .query("group by (route) (http_requests_total{job=\"hbi-api\"})")
        .await;
    let routes: BTreeSet<String> = routes["data"]["result"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|sample| sample["metric"]["route"].as_str().map(str::to_owned))
        .collect();
    for expected in [
        "/books",
        "/books/{book_id}/upload",
        "/books/{book_id}/toc",
        "/jobs/{job_id}",
        "/dlq",
        "/metrics",
        "unmatched",
    ] {
        assert!(routes.contains(expected), "route {expected} in {routes:?}");
    }
    for route in &routes {
        let raw = route
            .split('/')
            .any(|segment| segment.parse::<u64>().is_ok() || uuid::Uuid::parse_str(segment).is_ok());
        assert!(!raw, "route label {route:?} is a raw path");
    }

    // Every series name of SPEC section 4 is in Prometheus, but those listed.
    let mut problems = Vec::new();
    for (name, kind) in ops::SPEC_METRICS {
        let series = match kind {
            ops::MetricKind::Histogram => format!("{name}_count"),
            ops::MetricKind::Counter | ops::MetricKind::Gauge => (*name).to_owned(),
        };
        let answer = prometheus.query(&format!("count({{__name__=\"{series}\"}})")).await;
        let scraped = has_data(&answer["data"]);
        match NOT_SCRAPED.iter().find(|(listed, _)| listed == name) {
            Some((_, reason)) if scraped => {
                problems.push(format!("{name} now has series: take it off NOT_SCRAPED ({reason})"))
            }
            Some(_) => {}
            None if !scraped => problems.push(format!("{name}: no series in Prometheus")),
            None => {}
        }
    }

    // Every dashboard and alert expression: valid, and with data unless listed.
    let queries = ops::all_promql();
    assert!(
        queries.len() > 40,
        "the dashboards and rules hold the queries: {}",
        queries.len()
    );
    let mut listed_used = BTreeSet::new();
    for query in &queries {
        let expr = ops::evaluable(&query.expr);
        let answer = prometheus.query(&expr).await;
        if answer["status"] != "success" {
            problems.push(format!("{}: invalid: {}\n  {expr}", query.source, answer["error"]));
            continue;
        }
        let data = has_data(&answer["data"]);
        let listed = WITHOUT_DATA
            .iter()
            .enumerate()
            .find(|(_, (source, _))| source.matches(&query.source));
        match listed {
            None if !data => problems.push(format!("{}: no data: {}\n  {expr}", query.source, answer["data"])),
            None => {}
            Some((index, (_, reason))) => {
                listed_used.insert(index);
                if data {
                    problems.push(format!(
                        "{}: listed in WITHOUT_DATA ({reason}) but returns data: take it off\n  {expr}",
                        query.source
                    ));
                }
                if let Some(left) = left_of_threshold(&expr) {
                    let answer = prometheus.query(&left).await;
                    if !has_data(&answer["data"]) {
                        problems.push(format!(
                            "{}: its expression left of the threshold has no data: {answer}\n  {left}",
                            query.source
                        ));
                    }
                }
            }
        }
    }
    for (index, (source, _)) in WITHOUT_DATA.iter().enumerate() {
        if !listed_used.contains(&index) {
            problems.push(format!("WITHOUT_DATA names {source:?}, which no dashboard or rule has"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));

    // Every alert rule is loaded and evaluates cleanly, and none fires on a healthy system.
    let expected_rules: BTreeSet<String> = ops::rule_queries()
        .iter()
        .filter_map(|query| query.source.rsplit_once(": rule ").map(|(_, name)| name.to_owned()))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer = prometheus.get("/api/v1/rules", &[("type", "alert")]).await;
        let rules: Vec<&Value> = answer["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|group| group["rules"].as_array().into_iter().flatten())
            .collect();
        let names: BTreeSet<String> = rules
            .iter()
            .filter_map(|rule| rule["name"].as_str().map(str::to_owned))
            .collect();
        let healthy = rules
            .iter()
            .all(|rule| rule["health"] == "ok" && rule["lastError"].as_str().is_none_or(str::is_empty));
        if names == expected_rules && healthy {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "every alert rule of config/alerts.yml ({expected_rules:?}) loaded and evaluated with health ok: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let alerts = prometheus.get("/api/v1/alerts", &[]).await;
    assert_eq!(
        alerts["data"]["alerts"].as_array().map(Vec::len),
        Some(0),
        "no alert fires or is pending: {alerts}"
    );
}

#[test]
fn the_threshold_part_of_an_alert_expression() {
    assert_eq!(
        left_of_threshold("max(hbi_dlq_size) > 10").as_deref(),
        Some("max(hbi_dlq_size)")
    );
    assert_eq!(
        left_of_threshold("up{job=\"x\"} == 0").as_deref(),
        Some("up{job=\"x\"}")
    );
    assert_eq!(
        left_of_threshold("histogram_quantile(0.95,\n  sum by (le) (rate(x_bucket[30m]))\n) > 600\n").as_deref(),
        Some("histogram_quantile(0.95,\n  sum by (le) (rate(x_bucket[30m]))\n)")
    );
    assert_eq!(left_of_threshold("a > 0.05\nand\nb > 0.05"), None);
    assert_eq!(left_of_threshold("absent(up == 1)"), None);
}
