//! The operator files (docker-compose.prod.yml, config/, grafana/) as data for tests: the
//! repository root, promtool, YAML read through Python, the metric names of SPEC section 4,
//! and every query of the Grafana dashboards and the alert rules.
//!
//! `ops_config.rs` checks these files without a running Prometheus; a test that evaluates
//! every expression against a live Prometheus takes the same list from [`all_promql`]
//! (after [`evaluable`]). A test crate that uses this module declares `mod common;` too.

#![allow(dead_code)] // each test binary uses a different part of it

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::common::python_tools_path;

/// What kind of series a metric name stands for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MetricKind {
    Counter,
    Gauge,
    /// Queried through its `_bucket`, `_sum` and `_count` series, never by the bare name.
    Histogram,
}

/// Every metric a dashboard or an alert rule may use: ../shared/SPEC.md section 4, the two
/// gauges of the Quality dashboard, the refusals, the reranker's two, the webhook attempts, and Prometheus' own `up`.
pub const SPEC_METRICS: &[(&str, MetricKind)] = &[
    ("http_requests_total", MetricKind::Counter),
    ("http_request_duration_seconds", MetricKind::Histogram),
    ("hbi_jobs_total", MetricKind::Counter),
    ("hbi_job_stage_duration_seconds", MetricKind::Histogram),
    ("hbi_queue_depth", MetricKind::Gauge),
    ("hbi_dlq_size", MetricKind::Gauge),
    ("hbi_pages_processed_total", MetricKind::Counter),
    ("hbi_books_ingested_total", MetricKind::Counter),
    ("hbi_quality_gate_total", MetricKind::Counter),
    ("hbi_search_duration_seconds", MetricKind::Histogram),
    ("hbi_embeddings_generated_total", MetricKind::Counter),
    ("hbi_llm_requests_total", MetricKind::Counter),
    ("hbi_llm_request_duration_seconds", MetricKind::Histogram),
    ("hbi_llm_tokens_total", MetricKind::Counter),
    ("hbi_worker_tasks_processed_total", MetricKind::Counter),
    ("hbi_worker_tasks_failed_total", MetricKind::Counter),
    ("hbi_worker_dlq_size", MetricKind::Gauge),
    ("hbi_worker_queue_depth", MetricKind::Gauge),
    ("hbi_books_needing_review", MetricKind::Gauge),
    ("hbi_index_locator_support_ratio", MetricKind::Histogram),
    ("hbi_http_rejected_total", MetricKind::Counter),
    ("hbi_rerank_requests_total", MetricKind::Counter),
    ("hbi_rerank_duration_seconds", MetricKind::Histogram),
    ("hbi_webhook_deliveries_total", MetricKind::Counter),
    ("up", MetricKind::Gauge),
];

/// Label names a query may use: those of SPEC section 4, `le` of the histograms, and the
/// `job` and `instance` that Prometheus adds.
pub const SPEC_LABELS: &[&str] = &[
    "method", "route", "status", "outcome", "stage", "gate", "result", "mode", "provider", "model", "kind", "reason",
    "le", "job", "instance",
];

/// Is `series` a name Prometheus will hold for one of [`SPEC_METRICS`]?
pub fn is_spec_series(series: &str) -> bool {
    SPEC_METRICS.iter().any(|&(name, kind)| match kind {
        MetricKind::Histogram => ["_bucket", "_sum", "_count"]
            .iter()
            .any(|suffix| series.strip_suffix(suffix) == Some(name)),
        MetricKind::Counter | MetricKind::Gauge => series == name,
    })
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the repository holds api/")
        .to_path_buf()
}

/// promtool from the Debian `prometheus` package (scripts/lib/install-tools.sh installs it);
/// `HBI_PROMTOOL` overrides the path.
pub fn promtool() -> PathBuf {
    if let Some(path) = std::env::var_os("HBI_PROMTOOL") {
        return PathBuf::from(path);
    }
    let debian = PathBuf::from("/usr/bin/promtool");
    if debian.exists() {
        debian
    } else {
        PathBuf::from("promtool")
    }
}

/// The Prometheus server from the same Debian package; `HBI_PROMETHEUS` overrides the path.
pub fn prometheus_server() -> PathBuf {
    if let Some(path) = std::env::var_os("HBI_PROMETHEUS") {
        return PathBuf::from(path);
    }
    let debian = PathBuf::from("/usr/bin/prometheus");
    if debian.exists() {
        debian
    } else {
        PathBuf::from("prometheus")
    }
}

/// Runs promtool in the repository root; panics when it cannot be started.
pub fn run_promtool(args: &[&str]) -> Output {
    Command::new(promtool())
        .args(args)
        .current_dir(repo_root())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}): install the Debian package `prometheus` (scripts/lib/install-tools.sh)",
                promtool().display()
            )
        })
}

/// A YAML file as JSON, read by Python's PyYAML (anchors and merge keys resolved).
pub fn yaml(path: &Path) -> Value {
    let script = "import json, sys, yaml\nprint(json.dumps(yaml.safe_load(open(sys.argv[1])), default=str))";
    let output = Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .env("PYTHONPATH", python_tools_path())
        .output()
        .expect("python3 with PyYAML");
    assert!(
        output.status.success(),
        "{}: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("YAML as JSON")
}

pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Which query language an expression is in.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Language {
    PromQl,
    LogQl,
}

/// One query of a dashboard panel or an alert rule.
#[derive(Clone, Debug)]
pub struct Query {
    /// Where it comes from, for messages: file, panel or rule.
    pub source: String,
    pub language: Language,
    /// As written, Grafana variables included.
    pub expr: String,
}

/// Every `grafana/dashboards/*.json`, sorted by file name.
pub fn dashboards() -> Vec<(PathBuf, Value)> {
    let dir = repo_root().join("grafana/dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files.into_iter().map(|path| (path.clone(), read_json(&path))).collect()
}

/// Every panel of a dashboard, the panels of rows included.
pub fn panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(panels: &'a Value, out: &mut Vec<&'a Value>) {
        for panel in panels.as_array().into_iter().flatten() {
            out.push(panel);
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// The data source uid of a panel's target (its own, else the panel's).
pub fn target_datasource<'a>(panel: &'a Value, target: &'a Value) -> &'a Value {
    if target["datasource"].is_object() {
        &target["datasource"]
    } else {
        &panel["datasource"]
    }
}

/// Every query of every dashboard panel, PromQL and LogQL.
pub fn dashboard_queries() -> Vec<Query> {
    let mut out = Vec::new();
    for (path, dashboard) in dashboards() {
        let file = path.file_name().expect("file name").to_string_lossy().into_owned();
        for panel in panels(&dashboard) {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let Some(expr) = target["expr"].as_str() else { continue };
                let language = match target_datasource(panel, target)["type"].as_str() {
                    Some("loki") => Language::LogQl,
                    _ => Language::PromQl,
                };
                out.push(Query {
                    source: format!("{file}: panel {:?} query {}", panel["title"], target["refId"]),
                    language,
                    expr: expr.to_owned(),
                });
            }
        }
    }
    out
}

/// Every alerting and recording rule's expression in config/alerts.yml.
pub fn rule_queries() -> Vec<Query> {
    let rules = yaml(&repo_root().join("config/alerts.yml"));
    let mut out = Vec::new();
    for group in rules["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            let name = rule["alert"].as_str().or(rule["record"].as_str()).expect("rule name");
            out.push(Query {
                source: format!("config/alerts.yml: rule {name}"),
                language: Language::PromQl,
                expr: rule["expr"].as_str().expect("expr").to_owned(),
            });
        }
    }
    out
}

/// Every PromQL expression of the dashboards and the alert rules, as written.
pub fn all_promql() -> Vec<Query> {
    dashboard_queries()
        .into_iter()
        .filter(|query| query.language == Language::PromQl)
        .chain(rule_queries())
        .collect()
}

/// Grafana's built-in interval variables, with the values Grafana would give them over a few
/// hours with the 15 s scrape interval of config/prometheus.yml.
pub const GRAFANA_INTERVALS: &[(&str, &str)] =
    &[("$__rate_interval", "1m"), ("$__interval", "30s"), ("$__range", "6h")];

/// A dashboard expression as Prometheus can evaluate it: Grafana's interval variables replaced.
pub fn evaluable(expr: &str) -> String {
    GRAFANA_INTERVALS
        .iter()
        .fold(expr.to_owned(), |expr, (variable, value)| expr.replace(variable, value))
}

/// The metric and label names a PromQL expression refers to.
#[derive(Default, Debug, PartialEq, Eq)]
pub struct PromqlNames {
    pub metrics: BTreeSet<String>,
    pub labels: BTreeSet<String>,
}

const AGGREGATIONS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];
const KEYWORDS: &[&str] = &["and", "or", "unless", "bool", "offset", "inf", "nan", "atan2"];
const LABEL_LISTS: &[&str] = &["by", "without", "on", "ignoring", "group_left", "group_right"];

/// A small PromQL scanner: names of series selected (an identifier that is not a keyword, an
/// aggregation or a function call) and label names (in `{...}` matchers and in `by`,
/// `without`, `on`, `ignoring`, `group_left`, `group_right` lists). Strings, durations in
/// `[...]`, numbers and Grafana `$variables` are skipped. It does not validate syntax:
/// promtool does.
pub fn promql_names(expr: &str) -> PromqlNames {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = PromqlNames::default();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if matches!(c, '"' | '\'' | '`') {
            i = skip_string(&chars, i);
        } else if c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '{' {
            let end = closing(&chars, i, '}');
            collect_identifiers(&chars[i + 1..end], &mut names.labels);
            i = end + 1;
        } else if c == '[' {
            i = closing(&chars, i, ']') + 1;
        } else if c == '$' || c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '_' | '.')) {
                i += 1;
            }
        } else if is_identifier_start(c) {
            let start = i;
            while i < chars.len() && is_identifier_char(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut next = i;
            while next < chars.len() && chars[next].is_whitespace() {
                next += 1;
            }
            let call = chars.get(next) == Some(&'(');
            if LABEL_LISTS.contains(&word.as_str()) {
                if call {
                    let end = closing(&chars, next, ')');
                    collect_identifiers(&chars[next + 1..end], &mut names.labels);
                    i = end + 1;
                }
            } else if !(call || KEYWORDS.contains(&word.as_str()) || AGGREGATIONS.contains(&word.as_str())) {
                names.metrics.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

fn is_identifier_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_identifier_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// The index just past the string literal opening at `start`.
fn skip_string(chars: &[char], start: usize) -> usize {
    let quote = chars[start];
    let mut i = start + 1;
    while i < chars.len() && chars[i] != quote {
        if chars[i] == '\\' && quote != '`' {
            i += 1;
        }
        i += 1;
    }
    i + 1
}

/// The index of the bracket closing the one at `open` (strings inside skipped).
fn closing(chars: &[char], open: usize, close: char) -> usize {
    let opening = chars[open];
    let mut depth = 0;
    let mut i = open;
    while i < chars.len() {
        match chars[i] {
            '"' | '\'' | '`' => {
                i = skip_string(chars, i);
                continue;
            }
            c if c == opening => depth += 1,
            c if c == close => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
        i += 1;
    }
    panic!("unbalanced {opening:?} in {:?}", chars.iter().collect::<String>())
}

/// Identifiers outside strings: the label names of a matcher list or a label list.
fn collect_identifiers(chars: &[char], out: &mut BTreeSet<String>) {
    let mut i = 0;
    while i < chars.len() {
        if matches!(chars[i], '"' | '\'' | '`') {
            i = skip_string(chars, i);
        } else if is_identifier_start(chars[i]) {
            let start = i;
            while i < chars.len() && is_identifier_char(chars[i]) {
                i += 1;
            }
            out.insert(chars[start..i].iter().collect());
        } else {
            i += 1;
        }
    }
}
