//! Every Prometheus metric HBI exports, defined once (name, help, labels, buckets), with
//! typed helpers to record them and [`render`] for `GET /metrics`.
//!
//! Names are those of ../shared/SPEC.md section 4, plus `hbi_books_needing_review` and
//! `hbi_index_locator_support_ratio` for the Quality dashboard and `hbi_http_rejected_total`
//! (requests refused by authentication, rate limits, size or CORS). One registry per process:
//! `hbi serve` exports API and worker metrics together, `hbi api` and `hbi worker` each
//! their own (a worker on `server.worker_bind`).
//!
//! Labels are bounded: a route is its template (`/books/{book_id}/toc`), never a raw path;
//! no id, title or query is ever a label value. Label sets that form a closed list (job
//! outcomes, pipeline stages, search modes, token kinds, refusal reasons) are created at start with zero
//! values, so their first increment is seen by `rate()` and `increase()` like any other.
//! Families whose label values are open (HTTP routes, LLM providers, quality gates) have no
//! series until the first event; their `# HELP` and `# TYPE` lines are written anyway.
//!
//! The gauges are not counted by hand: [`render`] reads the queue depth from the queue, the
//! dead-letter size and the books needing review from the database, at every scrape.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use prometheus::core::Collector;
use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

use crate::domain::{JobState, Stage};

/// The content type of [`render`]'s output: the Prometheus text exposition format.
pub const CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

/// HTTP request latency: from 5 ms to a minute (large uploads).
const HTTP_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Pipeline stage duration: from 50 ms to an hour. The SlowJobs alert fires on a p95 over
/// 600 s and the extraction deadline defaults to 900 s, so the buckets go well past both.
const STAGE_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1200.0, 1800.0, 3600.0,
];

/// Search latency: from 5 ms to 10 s.
const SEARCH_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// LLM request latency: from 100 ms to two minutes.
const LLM_BUCKETS: &[f64] = &[0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0];
/// OCR of one page: a second or two at 300 dpi on one core, much more for a dense page.
const OCR_PAGE_BUCKETS: &[f64] = &[0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0];

/// Share of index locators the page text supports, 0 to 1.
const RATIO_BUCKETS: &[f64] = &[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0];

/// Search modes of `GET /search` (SPEC section 1).
pub const SEARCH_MODES: &[&str] = &["keyword", "semantic", "hybrid"];

/// The `route` label of a request that matched no route.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Why the API refused a request before (or instead of) its handler: the closed label set
/// of `hbi_http_rejected_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// No API key on an endpoint that needs one (401).
    MissingKey,
    /// A key no live key matches (401).
    InvalidKey,
    /// A valid key without the scope the endpoint needs (403).
    InsufficientScope,
    /// Over the client's requests or uploads per minute (429).
    RateLimited,
    /// A body over the upload limit (413).
    BodyTooLarge,
    /// A browser request from an origin not in `server.cors_origins` (403).
    OriginNotAllowed,
}

impl Rejection {
    pub const ALL: [Rejection; 6] = [
        Rejection::MissingKey,
        Rejection::InvalidKey,
        Rejection::InsufficientScope,
        Rejection::RateLimited,
        Rejection::BodyTooLarge,
        Rejection::OriginNotAllowed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::MissingKey => "missing_key",
            Rejection::InvalidKey => "invalid_key",
            Rejection::InsufficientScope => "insufficient_scope",
            Rejection::RateLimited => "rate_limited",
            Rejection::BodyTooLarge => "body_too_large",
            Rejection::OriginNotAllowed => "origin_not_allowed",
        }
    }
}

/// A metric family as written in `# HELP` and `# TYPE`.
struct Family {
    name: String,
    help: String,
    kind: &'static str,
}

struct Metrics {
    registry: Registry,
    families: Vec<Family>,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    http_rejected: IntCounterVec,
    jobs: IntCounterVec,
    stage_duration: HistogramVec,
    queue_depth: IntGauge,
    dlq_size: IntGauge,
    pages_processed: IntCounter,
    pages_ocr: IntCounter,
    ocr_page_seconds: Histogram,
    books_ingested: IntCounter,
    quality_gates: IntCounterVec,
    search_duration: HistogramVec,
    embeddings: IntCounter,
    job_parts: IntCounterVec,
    llm_requests: IntCounterVec,
    llm_duration: Histogram,
    llm_tokens: IntCounterVec,
    rerank_requests: IntCounterVec,
    webhook_attempts: IntCounterVec,
    rerank_duration: Histogram,
    worker_processed: IntCounter,
    worker_failed: IntCounter,
    worker_dlq_size: IntGauge,
    worker_queue_depth: IntGauge,
    books_needing_review: IntGauge,
    index_locator_support: Histogram,
}

/// Registers collectors and remembers their families for [`render`].
struct Builder {
    registry: Registry,
    families: Vec<Family>,
}

impl Builder {
    fn add<C: Collector + Clone + 'static>(&mut self, kind: &'static str, collector: C) -> prometheus::Result<C> {
        for desc in collector.desc() {
            self.families.push(Family {
                name: desc.fq_name.clone(),
                help: desc.help.clone(),
                kind,
            });
        }
        self.registry.register(Box::new(collector.clone()))?;
        Ok(collector)
    }

    fn counter(&mut self, name: &str, help: &str) -> prometheus::Result<IntCounter> {
        self.add("counter", IntCounter::new(name, help)?)
    }

    fn counter_vec(&mut self, name: &str, help: &str, labels: &[&str]) -> prometheus::Result<IntCounterVec> {
        self.add("counter", IntCounterVec::new(Opts::new(name, help), labels)?)
    }

    fn gauge(&mut self, name: &str, help: &str) -> prometheus::Result<IntGauge> {
        self.add("gauge", IntGauge::new(name, help)?)
    }

    fn histogram(&mut self, name: &str, help: &str, buckets: &[f64]) -> prometheus::Result<Histogram> {
        self.add(
            "histogram",
            Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))?,
        )
    }

    fn histogram_vec(
        &mut self,
        name: &str,
        help: &str,
        labels: &[&str],
        buckets: &[f64],
    ) -> prometheus::Result<HistogramVec> {
        self.add(
            "histogram",
            HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets.to_vec()), labels)?,
        )
    }
}

impl Metrics {
    fn new() -> prometheus::Result<Self> {
        let mut b = Builder {
            registry: Registry::new(),
            families: Vec::new(),
        };
        let metrics = Self {
            http_requests: b.counter_vec(
                "http_requests_total",
                "HTTP requests answered, by method, route template and status code.",
                &["method", "route", "status"],
            )?,
            http_duration: b.histogram_vec(
                "http_request_duration_seconds",
                "HTTP request duration in seconds, by method and route template.",
                &["method", "route"],
                HTTP_BUCKETS,
            )?,
            http_rejected: b.counter_vec(
                "hbi_http_rejected_total",
                "HTTP requests refused before their handler, by reason: missing_key, invalid_key, insufficient_scope, rate_limited, body_too_large, origin_not_allowed.",
                &["reason"],
            )?,
            jobs: b.counter_vec(
                "hbi_jobs_total",
                "Job attempts ended, by outcome: succeeded, failed (retry scheduled), dead (moved to the dead-letter queue) or cancelled.",
                &["outcome"],
            )?,
            stage_duration: b.histogram_vec(
                "hbi_job_stage_duration_seconds",
                "Duration of one pipeline stage of one job attempt in seconds, by stage (a failed stage included).",
                &["stage"],
                STAGE_BUCKETS,
            )?,
            queue_depth: b.gauge(
                "hbi_queue_depth",
                "Messages waiting on the job queue, read from the queue at scrape time.",
            )?,
            dlq_size: b.gauge(
                "hbi_dlq_size",
                "Jobs in the dead-letter queue (state dead), read from the database at scrape time.",
            )?,
            pages_processed: b.counter(
                "hbi_pages_processed_total",
                "Pages extracted by the pipeline.",
            )?,
            pages_ocr: b.counter(
                "hbi_pages_ocr_total",
                "Pages without a text layer recognised by OCR (Tesseract).",
            )?,
            ocr_page_seconds: b.histogram(
                "hbi_ocr_page_seconds",
                "Mean seconds one page of a book read by OCR took to render and recognise (one observation per book; pages run one per core).",
                OCR_PAGE_BUCKETS,
            )?,
            books_ingested: b.counter(
                "hbi_books_ingested_total",
                "Books whose processing job succeeded.",
            )?,
            quality_gates: b.counter_vec(
                "hbi_quality_gate_total",
                "Quality gate evaluations, by gate and result (pass or fail).",
                &["gate", "result"],
            )?,
            search_duration: b.histogram_vec(
                "hbi_search_duration_seconds",
                "Search duration in seconds, by mode (keyword, semantic, hybrid).",
                &["mode"],
                SEARCH_BUCKETS,
            )?,
            embeddings: b.counter(
                "hbi_embeddings_generated_total",
                "Embedding vectors computed.",
            )?,
            job_parts: b.counter_vec(
                "hbi_job_parts_total",
                "Parts of large books' jobs run by this process, by outcome (done, failed, cancelled, taken_over: its lease ran out and another worker's result stands).",
                &["outcome"],
            )?,
            llm_requests: b.counter_vec(
                "hbi_llm_requests_total",
                "Requests to a language model, by provider, model and outcome.",
                &["provider", "model", "outcome"],
            )?,
            llm_duration: b.histogram(
                "hbi_llm_request_duration_seconds",
                "Language model request duration in seconds.",
                LLM_BUCKETS,
            )?,
            rerank_requests: b.counter_vec(
                "hbi_rerank_requests_total",
                "Candidate lists sent to the reranker, by outcome: success, or error (the results kept their fused order).",
                &["outcome"],
            )?,
            rerank_duration: b.histogram(
                "hbi_rerank_duration_seconds",
                "Duration of reranking one candidate list in seconds (every batch of it).",
                SEARCH_BUCKETS,
            )?,
            webhook_attempts: b.counter_vec(
                "hbi_webhook_deliveries_total",
                "Webhook delivery attempts, by outcome: delivered (a 2xx answer), retry (failed, another attempt scheduled) or failed (the last attempt of the schedule failed).",
                &["outcome"],
            )?,
            llm_tokens: b.counter_vec(
                "hbi_llm_tokens_total",
                "Language model tokens, by kind (input or output).",
                &["kind"],
            )?,
            worker_processed: b.counter(
                "hbi_worker_tasks_processed_total",
                "Job attempts a worker ran to an outcome, whatever the outcome (the original HBI's name).",
            )?,
            worker_failed: b.counter(
                "hbi_worker_tasks_failed_total",
                "Job attempts that failed, retried or dead (the original HBI's name).",
            )?,
            worker_dlq_size: b.gauge(
                "hbi_worker_dlq_size",
                "Same value as hbi_dlq_size (the original HBI's name).",
            )?,
            worker_queue_depth: b.gauge(
                "hbi_worker_queue_depth",
                "Same value as hbi_queue_depth (the original HBI's name).",
            )?,
            books_needing_review: b.gauge(
                "hbi_books_needing_review",
                "Books whose last processing ended in needs_review, read from the database at scrape time.",
            )?,
            index_locator_support: b.histogram(
                "hbi_index_locator_support_ratio",
                "Share of back-of-book index locators that the page text supports, one observation per book extraction with an index.",
                RATIO_BUCKETS,
            )?,
            registry: b.registry,
            families: b.families,
        };
        for outcome in [
            JobState::Succeeded,
            JobState::Failed,
            JobState::Dead,
            JobState::Cancelled,
        ] {
            metrics.jobs.with_label_values(&[outcome.as_str()]);
        }
        for stage in Stage::ALL {
            metrics.stage_duration.with_label_values(&[stage.as_str()]);
        }
        for mode in SEARCH_MODES {
            metrics.search_duration.with_label_values(&[mode]);
        }
        for reason in Rejection::ALL {
            metrics.http_rejected.with_label_values(&[reason.as_str()]);
        }
        for kind in ["input", "output"] {
            metrics.llm_tokens.with_label_values(&[kind]);
        }
        for outcome in ["success", "error"] {
            metrics.rerank_requests.with_label_values(&[outcome]);
        }
        for outcome in WEBHOOK_OUTCOMES {
            metrics.webhook_attempts.with_label_values(&[outcome]);
        }
        for gate in crate::quality::GATES {
            for result in ["pass", "fail"] {
                metrics.quality_gates.with_label_values(&[gate, result]);
            }
        }
        Ok(metrics)
    }
}

static METRICS: LazyLock<Metrics> =
    LazyLock::new(|| Metrics::new().expect("the metric definitions above are valid (unit-tested)"));

/// One HTTP request refused before its handler (it is also counted by [`record_http`]).
pub fn request_rejected(reason: Rejection) {
    METRICS.http_rejected.with_label_values(&[reason.as_str()]).inc();
}

/// One HTTP request answered. `route` must be the route template or [`UNMATCHED_ROUTE`].
pub fn record_http(method: &str, route: &str, status: u16, seconds: f64) {
    let metrics = &*METRICS;
    metrics
        .http_requests
        .with_label_values(&[method, route, &status.to_string()])
        .inc();
    metrics
        .http_duration
        .with_label_values(&[method, route])
        .observe(seconds);
}

/// A job attempt ended in `state`: `succeeded`, `failed` (retry scheduled), `dead` or
/// `cancelled`. Other states are not outcomes and are ignored.
pub fn job_finished(state: JobState) {
    let metrics = &*METRICS;
    match state {
        JobState::Succeeded | JobState::Cancelled => {}
        JobState::Failed | JobState::Dead => metrics.worker_failed.inc(),
        JobState::Queued | JobState::Running => return,
    }
    metrics.jobs.with_label_values(&[state.as_str()]).inc();
    metrics.worker_processed.inc();
}

/// A part of a large book's job ended here with `outcome` (`done`, `failed`, `cancelled`,
/// `taken_over`).
pub fn job_part_finished(outcome: &str) {
    METRICS.job_parts.with_label_values(&[outcome]).inc();
}

/// One pipeline stage of one job attempt took `seconds`.
pub fn stage_duration(stage: Stage, seconds: f64) {
    METRICS
        .stage_duration
        .with_label_values(&[stage.as_str()])
        .observe(seconds);
}

/// A book's pages read by OCR, and the seconds they took, summed over the pages.
pub fn pages_ocr(pages: u64, page_seconds: f64) {
    METRICS.pages_ocr.inc_by(pages);
    if pages > 0 && page_seconds.is_finite() {
        METRICS.ocr_page_seconds.observe(page_seconds / pages as f64);
    }
}

pub fn pages_processed(pages: u64) {
    METRICS.pages_processed.inc_by(pages);
}

/// A book's processing job succeeded.
pub fn book_ingested() {
    METRICS.books_ingested.inc();
}

/// One quality gate evaluated. `gate` is the gate's fixed name, never anything of a book.
pub fn quality_gate(gate: &str, passed: bool) {
    let result = if passed { "pass" } else { "fail" };
    METRICS.quality_gates.with_label_values(&[gate, result]).inc();
}

/// One search answered; `mode` is one of [`SEARCH_MODES`].
pub fn search_duration(mode: &str, seconds: f64) {
    METRICS.search_duration.with_label_values(&[mode]).observe(seconds);
}

pub fn embeddings_generated(count: u64) {
    METRICS.embeddings.inc_by(count);
}

/// One request to a language model. `outcome` is a short fixed word (`success`, `error`,
/// `timeout`...); provider and model come from the configuration, never from a user.
pub fn llm_request(provider: &str, model: &str, outcome: &str, seconds: f64, input_tokens: u64, output_tokens: u64) {
    let metrics = &*METRICS;
    metrics
        .llm_requests
        .with_label_values(&[provider, model, outcome])
        .inc();
    metrics.llm_duration.observe(seconds);
    metrics.llm_tokens.with_label_values(&["input"]).inc_by(input_tokens);
    metrics.llm_tokens.with_label_values(&["output"]).inc_by(output_tokens);
}

/// One candidate list reranked; `outcome` is `success` or `error`.
pub fn rerank_request(outcome: &str, seconds: f64) {
    let metrics = &*METRICS;
    metrics.rerank_requests.with_label_values(&[outcome]).inc();
    metrics.rerank_duration.observe(seconds);
}

/// Outcomes of a webhook delivery attempt.
pub const WEBHOOK_OUTCOMES: [&str; 3] = ["delivered", "retry", "failed"];

/// One webhook delivery attempt; `outcome` is one of [`WEBHOOK_OUTCOMES`].
pub fn webhook_attempt(outcome: &str) {
    METRICS.webhook_attempts.with_label_values(&[outcome]).inc();
}

/// The share of a book's index locators that its page text supports (0 to 1).
pub fn index_locator_support(ratio: f64) {
    METRICS.index_locator_support.observe(ratio);
}

/// The text exposition of every metric, after setting the gauges to what was read at this
/// scrape. A reading that failed keeps the gauge's last value (and is logged); readiness
/// reports the outage itself.
pub fn render(readings: GaugeReadings) -> anyhow::Result<String> {
    set_gauges(readings);
    encode()
}

/// The gauges' values read at a scrape, each from its source (`Backends::render_metrics`
/// reads them).
pub struct GaugeReadings {
    /// Messages waiting on the queue.
    pub queue_depth: anyhow::Result<u64>,
    /// Jobs in the dead-letter state.
    pub dead_jobs: anyhow::Result<u64>,
    pub books_needing_review: anyhow::Result<u64>,
}

fn set_gauges(readings: GaugeReadings) {
    let metrics = &*METRICS;
    let GaugeReadings {
        queue_depth: depth,
        dead_jobs: dead,
        books_needing_review: review,
    } = readings;
    let set = |gauges: &[&IntGauge], source: &str, value: anyhow::Result<u64>| match value {
        Ok(value) => {
            let value = i64::try_from(value).unwrap_or(i64::MAX);
            for gauge in gauges {
                gauge.set(value);
            }
        }
        Err(err) => tracing::warn!(source, error = %format!("{err:#}"), "metrics: cannot read a gauge"),
    };
    set(
        &[&metrics.queue_depth, &metrics.worker_queue_depth],
        "queue depth",
        depth,
    );
    set(&[&metrics.dlq_size, &metrics.worker_dlq_size], "dead jobs", dead);
    set(&[&metrics.books_needing_review], "books needing review", review);
}

/// The registry in the text format, gauges as last read; families without a series yet
/// are declared by their `# HELP` and `# TYPE` lines alone (the encoder leaves them out).
pub fn encode() -> anyhow::Result<String> {
    let metrics = &*METRICS;
    let gathered = metrics.registry.gather();
    let mut text = prometheus::TextEncoder::new().encode_to_string(&gathered)?;
    let present: BTreeSet<&str> = gathered.iter().map(|family| family.name()).collect();
    for family in metrics.families.iter().filter(|f| !present.contains(f.name.as_str())) {
        let help = family.help.replace('\\', "\\\\").replace('\n', "\\n");
        text.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n",
            name = family.name,
            kind = family.kind
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exposition as (series name with labels, value) pairs.
    fn samples(text: &str) -> Vec<(String, f64)> {
        text.lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                Some((series.to_owned(), value.parse().ok()?))
            })
            .collect()
    }

    #[test]
    fn every_metric_is_declared_once_with_help_and_type() -> anyhow::Result<()> {
        let metrics = Metrics::new()?;
        let names: BTreeSet<&str> = metrics.families.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names.len(), metrics.families.len(), "no name twice");
        for name in [
            "http_requests_total",
            "http_request_duration_seconds",
            "hbi_jobs_total",
            "hbi_job_stage_duration_seconds",
            "hbi_queue_depth",
            "hbi_dlq_size",
            "hbi_pages_processed_total",
            "hbi_pages_ocr_total",
            "hbi_ocr_page_seconds",
            "hbi_books_ingested_total",
            "hbi_quality_gate_total",
            "hbi_search_duration_seconds",
            "hbi_embeddings_generated_total",
            "hbi_llm_requests_total",
            "hbi_llm_request_duration_seconds",
            "hbi_llm_tokens_total",
            "hbi_worker_tasks_processed_total",
            "hbi_worker_tasks_failed_total",
            "hbi_worker_dlq_size",
            "hbi_worker_queue_depth",
            "hbi_books_needing_review",
            "hbi_index_locator_support_ratio",
            "hbi_http_rejected_total",
            "hbi_rerank_requests_total",
            "hbi_rerank_duration_seconds",
            "hbi_webhook_deliveries_total",
            "hbi_job_parts_total",
        ] {
            assert!(names.contains(name), "{name} is defined");
        }
        assert_eq!(
            names.len(),
            27,
            "only the names of SPEC section 4, the two quality gauges, the refusals, OCR's pages and seconds, the reranker's requests and seconds, the webhook attempts and the job parts"
        );

        let text = encode()?;
        for family in &METRICS.families {
            assert!(
                text.contains(&format!("# TYPE {} {}\n", family.name, family.kind)),
                "{} is in the exposition:\n{text}",
                family.name
            );
        }
        Ok(())
    }

    #[test]
    fn closed_label_sets_start_at_zero_and_stage_buckets_reach_past_the_slow_job_alert() -> anyhow::Result<()> {
        let text = encode()?;
        let samples = samples(&text);
        let has = |series: &str| samples.iter().any(|(name, _)| name == series);
        for outcome in ["succeeded", "failed", "dead", "cancelled"] {
            assert!(has(&format!("hbi_jobs_total{{outcome=\"{outcome}\"}}")), "{outcome}");
        }
        for stage in Stage::ALL {
            assert!(has(&format!(
                "hbi_job_stage_duration_seconds_bucket{{stage=\"{stage}\",le=\"1800\"}}"
            )));
        }
        assert!(
            STAGE_BUCKETS.iter().any(|&le| le >= 1800.0),
            "SlowJobs fires on a p95 over 600 s"
        );
        for mode in SEARCH_MODES {
            assert!(has(&format!("hbi_search_duration_seconds_count{{mode=\"{mode}\"}}")));
        }
        for reason in Rejection::ALL {
            assert!(has(&format!(
                "hbi_http_rejected_total{{reason=\"{}\"}}",
                reason.as_str()
            )));
        }
        Ok(())
    }

    #[test]
    fn helpers_record_under_bounded_labels() -> anyhow::Result<()> {
        let value = |text: &str, series: &str| {
            samples(text)
                .into_iter()
                .find(|(name, _)| name == series)
                .map_or(0.0, |(_, value)| value)
        };
        let before = encode()?;
        record_http("GET", "/books/{book_id}/toc", 200, 0.02);
        job_finished(JobState::Dead);
        job_finished(JobState::Running);
        stage_duration(Stage::ExtractText, 700.0);
        quality_gate("toc_found", true);
        llm_request("ollama", "llama3", "success", 1.5, 100, 20);
        index_locator_support(0.97);
        let after = encode()?;

        let delta = |series: &str| value(&after, series) - value(&before, series);
        assert_eq!(
            delta("http_requests_total{method=\"GET\",route=\"/books/{book_id}/toc\",status=\"200\"}"),
            1.0
        );
        assert_eq!(delta("hbi_jobs_total{outcome=\"dead\"}"), 1.0);
        assert_eq!(delta("hbi_worker_tasks_failed_total"), 1.0);
        assert_eq!(delta("hbi_worker_tasks_processed_total"), 1.0, "running is no outcome");
        assert_eq!(
            delta("hbi_job_stage_duration_seconds_bucket{stage=\"extract_text\",le=\"600\"}"),
            0.0
        );
        assert_eq!(
            delta("hbi_job_stage_duration_seconds_bucket{stage=\"extract_text\",le=\"900\"}"),
            1.0
        );
        assert_eq!(delta("hbi_quality_gate_total{gate=\"toc_found\",result=\"pass\"}"), 1.0);
        assert_eq!(delta("hbi_llm_tokens_total{kind=\"input\"}"), 100.0);
        assert_eq!(delta("hbi_llm_tokens_total{kind=\"output\"}"), 20.0);
        assert_eq!(delta("hbi_index_locator_support_ratio_bucket{le=\"0.95\"}"), 0.0);
        assert_eq!(delta("hbi_index_locator_support_ratio_bucket{le=\"0.99\"}"), 1.0);
        Ok(())
    }
}
