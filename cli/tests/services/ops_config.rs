//! The operator files, checked without Docker, Grafana or a running Prometheus (none of them
//! runs on HBI's machines): promtool checks config/prometheus.yml and config/alerts.yml and
//! runs the alert unit tests; docker-compose.prod.yml is read as YAML for its services, health
//! checks, env file and mounted files; every Grafana dashboard is read as JSON, and every
//! PromQL expression of the dashboards and alert rules is parsed by promtool and may use only
//! the metric names of SPEC section 4 (`ops::SPEC_METRICS`).

use crate::ops;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use ops::{Language, MetricKind, SPEC_LABELS, SPEC_METRICS, is_spec_series, promql_names, repo_root, yaml};
use serde_json::{Value, json};

fn assert_promtool(args: &[&str]) -> String {
    let output = ops::run_promtool(args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool {}:\n{text}", args.join(" "));
    text
}

#[test]
fn promtool_accepts_the_prometheus_config_and_alert_rules_and_their_unit_tests_pass() {
    let checked = assert_promtool(&["check", "config", "config/prometheus.yml"]);
    assert!(
        checked.contains("1 rule files found"),
        "prometheus.yml loads alerts.yml: {checked}"
    );
    assert_promtool(&["check", "rules", "config/alerts.yml"]);
    let tested = assert_promtool(&["test", "rules", "config/alerts_test.yml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
}

const REQUIRED_ALERTS: &[&str] = &["HighErrorRate", "QueueBacklog", "DLQSizeHigh", "WorkerDown", "SlowJobs"];

#[test]
fn every_alert_rule_is_complete_and_unit_tested_both_firing_and_not() {
    let rules = yaml(&repo_root().join("config/alerts.yml"));
    let mut alerts = BTreeSet::new();
    for group in rules["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            let name = rule["alert"].as_str().expect("alerting rules only").to_owned();
            assert!(rule["for"].is_string(), "{name}: a `for` duration");
            let severity = rule["labels"]["severity"].as_str();
            assert!(
                matches!(severity, Some("critical" | "warning")),
                "{name}: severity critical or warning, got {severity:?}"
            );
            for annotation in ["summary", "description"] {
                assert!(
                    rule["annotations"][annotation]
                        .as_str()
                        .is_some_and(|text| !text.is_empty()),
                    "{name}: annotation {annotation}"
                );
            }
            assert!(alerts.insert(name.clone()), "{name} defined twice");
        }
    }
    for name in REQUIRED_ALERTS {
        assert!(alerts.contains(*name), "alert {name} (issue 6)");
    }

    // alertname -> (a test group where it fires, a test group where it never does: a check
    // that it is still pending does not count as "does not fire")
    let tests = yaml(&repo_root().join("config/alerts_test.yml"));
    assert_eq!(tests["rule_files"], json!(["alerts.yml"]));
    let mut covered: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    for case in tests["tests"].as_array().expect("tests") {
        let mut fires_in_case: BTreeMap<String, bool> = BTreeMap::new();
        for check in case["alert_rule_test"].as_array().into_iter().flatten() {
            let name = check["alertname"].as_str().expect("alertname").to_owned();
            assert!(alerts.contains(&name), "alerts_test.yml tests an unknown alert {name}");
            let fires = check["exp_alerts"].as_array().is_some_and(|alerts| !alerts.is_empty());
            *fires_in_case.entry(name).or_default() |= fires;
        }
        for (name, fires) in fires_in_case {
            let entry = covered.entry(name).or_default();
            if fires {
                entry.0 = true;
            } else {
                entry.1 = true;
            }
        }
    }
    for name in &alerts {
        let (fires, quiet) = covered.get(name).copied().unwrap_or_default();
        assert!(fires, "alerts_test.yml: no case where {name} fires");
        assert!(quiet, "alerts_test.yml: no case where {name} does not fire");
    }
}

fn compose() -> Value {
    yaml(&repo_root().join("docker-compose.prod.yml"))
}

/// `KEY=value` lines of config/prod.env.example.
fn env_example() -> BTreeMap<String, String> {
    let path = repo_root().join("config/prod.env.example");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (key, value) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("not KEY=value: {line:?}"));
            (key.to_owned(), value.to_owned())
        })
        .collect()
}

/// `source` mounted at `target` in the container.
struct Mount {
    source: String,
    target: String,
}

/// A service's mounts: named volumes, and host paths (bind mounts).
#[derive(Default)]
struct Mounts {
    named: Vec<Mount>,
    binds: Vec<Mount>,
}

fn mounts(service: &Value) -> Mounts {
    let mut mounts = Mounts::default();
    for volume in service["volumes"].as_array().into_iter().flatten() {
        let (kind, source, target) = match volume {
            Value::String(short) => {
                let mut parts = short.split(':');
                let source = parts.next().expect("source").to_owned();
                let target = parts
                    .next()
                    .unwrap_or_else(|| panic!("volume without a target: {short}"));
                let kind = if source.starts_with('.') || source.starts_with('/') {
                    "bind"
                } else {
                    "volume"
                };
                (kind.to_owned(), source, target.to_owned())
            }
            long => (
                long["type"].as_str().expect("type").to_owned(),
                long["source"].as_str().expect("source").to_owned(),
                long["target"].as_str().expect("target").to_owned(),
            ),
        };
        let mount = Mount { source, target };
        match kind.as_str() {
            "bind" => mounts.binds.push(mount),
            "volume" => mounts.named.push(mount),
            other => panic!("unexpected mount type {other}"),
        }
    }
    mounts
}

const COMPOSE_SERVICES: &[&str] = &[
    "api",
    "worker",
    "redis",
    "postgres",
    "minio",
    "neo4j",
    "prometheus",
    "loki",
    "grafana",
    "otel-collector",
];

/// No Docker engine runs here: the compose file is read as YAML with its anchors resolved.
#[test]
fn production_compose_runs_every_service_with_a_health_check_the_env_file_and_files_of_this_repository() {
    let root = repo_root();
    let compose = compose();
    let services = compose["services"].as_object().expect("services");
    let declared_volumes = compose["volumes"].as_object().expect("top-level volumes");
    for name in COMPOSE_SERVICES {
        assert!(services.contains_key(*name), "service {name} (issue 4 item 7)");
    }

    for (name, service) in services {
        let test = service["healthcheck"]["test"].as_array();
        assert!(
            test.is_some_and(|test| test.len() > 1 && matches!(test[0].as_str(), Some("CMD" | "CMD-SHELL"))),
            "{name}: a health check, got {}",
            service["healthcheck"]
        );
        assert_ne!(
            service["healthcheck"]["disable"],
            json!(true),
            "{name}: health check disabled"
        );

        let Mounts { named, binds } = mounts(service);
        for Mount { source: volume, .. } in &named {
            assert!(
                declared_volumes.contains_key(volume),
                "{name}: volume {volume} is not declared"
            );
        }
        for Mount { source, target } in &binds {
            assert!(
                source.starts_with("./"),
                "{name}: mounts {source}, which is not a file of the repository"
            );
            let path = root.join(source);
            assert!(
                path.exists(),
                "{name}: mounts {source} -> {target}, missing from the repository"
            );
        }
        if let Some(build) = service.get("build") {
            let context = root.join(build["context"].as_str().expect("build context"));
            assert!(context.is_dir(), "{name}: build context {}", context.display());
            let dockerfile = context.join(build["dockerfile"].as_str().unwrap_or("Dockerfile"));
            assert!(dockerfile.is_file(), "{name}: {}", dockerfile.display());
        } else {
            assert!(service["image"].is_string(), "{name}: an image or a build");
        }
    }

    // Every stateful service keeps its data in a named volume.
    for (name, path) in [
        ("redis", "/data"),
        ("postgres", "/var/lib/postgresql/data"),
        ("minio", "/data"),
        ("neo4j", "/data"),
        ("prometheus", "/prometheus"),
        ("loki", "/loki"),
        ("grafana", "/var/lib/grafana"),
    ] {
        assert!(
            mounts(&services[name]).named.iter().any(|mount| mount.target == path),
            "{name}: a named volume at {path}"
        );
    }
    assert!(
        services["redis"]["command"]
            .to_string()
            .contains(r#""--appendonly","yes""#),
        "Redis keeps an AOF"
    );
    assert_eq!(services["postgres"]["image"], "pgvector/pgvector:pg17");
    assert!(
        services["otel-collector"]["build"]["dockerfile"]
            .as_str()
            .is_some_and(|file| std::fs::read_to_string(root.join("config").join(file))
                .expect("collector Dockerfile")
                .contains("FROM otel/opentelemetry-collector-contrib:")),
        "the collector is otel/opentelemetry-collector-contrib"
    );

    // api and worker read the env file that config/prod.env.example documents.
    let example = env_example();
    for name in ["api", "worker"] {
        assert_eq!(services[name]["env_file"], json!([".env"]), "{name}: env_file");
        let env = &services[name]["environment"];
        for variable in ["DATABASE_URL", "REDIS_URL", "MINIO_ENDPOINT", "NEO4J_URI"] {
            assert!(env[variable].is_string(), "{name} gets {variable}: {env}");
        }
    }
    assert_eq!(example.get("LOKI_URL").map(String::as_str), Some("http://loki:3100"));
    assert_eq!(
        example.get("OTEL_EXPORTER_OTLP_ENDPOINT").map(String::as_str),
        Some("http://otel-collector:4318")
    );
    assert!(
        example.get("HBI_BOOTSTRAP_API_KEY").is_some_and(|key| !key.is_empty()),
        "HBI_BOOTSTRAP_API_KEY in config/prod.env.example"
    );
    // Every ${VARIABLE} the compose file reads is listed in the example.
    let text = std::fs::read_to_string(root.join("docker-compose.prod.yml")).expect("compose text");
    for variable in interpolated_variables(&text) {
        assert!(
            example.contains_key(&variable),
            "docker-compose.prod.yml reads ${{{variable}}}: list it in config/prod.env.example"
        );
    }

    assert_eq!(services["worker"]["command"][0], "worker");
    assert!(
        services["worker"].get("ports").is_none(),
        "workers scale with --scale: no fixed host port"
    );
}

/// Names read as `${NAME...}` (not the escaped `$${...}`).
fn interpolated_variables(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        let escaped = rest[..at].ends_with('$');
        rest = &rest[at + 2..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !escaped && !name.is_empty() {
            out.insert(name);
        }
    }
    out
}

/// The container path a service bind-mounts `source` at.
fn mount_target(service: &Value, source: &str) -> String {
    mounts(service)
        .binds
        .into_iter()
        .find(|mount| mount.source == source)
        .unwrap_or_else(|| panic!("{source} is not mounted"))
        .target
}

#[test]
fn prometheus_scrapes_the_api_and_every_worker_replica_on_their_compose_ports() {
    let compose = compose();
    let services = &compose["services"];
    let config = yaml(&repo_root().join("config/prometheus.yml"));
    let jobs: BTreeMap<&str, &Value> = config["scrape_configs"]
        .as_array()
        .expect("scrape_configs")
        .iter()
        .map(|job| (job["job_name"].as_str().expect("job_name"), job))
        .collect();

    let api = jobs["hbi-api"];
    assert_eq!(api["static_configs"][0]["targets"], json!(["api:8000"]));
    assert_eq!(services["api"]["command"], json!(["api", "--bind", "0.0.0.0:8000"]));

    // One target per replica of `docker compose --scale worker=N`, through Docker's DNS.
    let worker = &jobs["hbi-worker"]["dns_sd_configs"][0];
    assert_eq!(worker["names"], json!(["worker"]));
    assert_eq!(worker["type"], "A");
    assert_eq!(worker["port"], 8001);
    assert_eq!(
        services["worker"]["command"],
        json!(["worker", "--bind", "0.0.0.0:8001"])
    );
    for job in [api, jobs["hbi-worker"]] {
        assert!(
            job["metrics_path"].is_null() || job["metrics_path"] == "/metrics",
            "{job}"
        );
    }

    // rule_files are relative to prometheus.yml: both files sit side by side in the container.
    assert_eq!(config["rule_files"], json!(["alerts.yml"]));
    let prometheus = &services["prometheus"];
    let config_at = mount_target(prometheus, "./config/prometheus.yml");
    let rules_at = mount_target(prometheus, "./config/alerts.yml");
    assert_eq!(
        Path::new(&config_at).parent(),
        Path::new(&rules_at).parent(),
        "alerts.yml beside prometheus.yml"
    );
    assert_eq!(Path::new(&rules_at).file_name().expect("name"), "alerts.yml");
    assert!(
        prometheus["command"]
            .to_string()
            .contains(&format!("--config.file={config_at}")),
        "Prometheus reads the mounted config: {}",
        prometheus["command"]
    );
}

/// uid -> type of the provisioned Grafana data sources.
fn provisioned_datasources() -> BTreeMap<String, String> {
    let provisioning = yaml(&repo_root().join("grafana/provisioning/datasources/datasources.yml"));
    provisioning["datasources"]
        .as_array()
        .expect("datasources")
        .iter()
        .map(|source| {
            (
                source["uid"].as_str().expect("uid").to_owned(),
                source["type"].as_str().expect("type").to_owned(),
            )
        })
        .collect()
}

#[test]
fn grafana_provisioning_matches_the_compose_mounts_and_services() {
    let compose = compose();
    let services = &compose["services"];
    let grafana = &services["grafana"];
    assert_eq!(
        mount_target(grafana, "./grafana/provisioning"),
        "/etc/grafana/provisioning"
    );
    let dashboards_at = mount_target(grafana, "./grafana/dashboards");

    let provider = yaml(&repo_root().join("grafana/provisioning/dashboards/provider.yml"));
    let provider = &provider["providers"][0];
    assert_eq!(provider["type"], "file");
    assert_eq!(
        provider["options"]["path"],
        dashboards_at.as_str(),
        "the provider reads the mounted dashboards"
    );
    let home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
        .as_str()
        .expect("home dashboard");
    let home = home
        .strip_prefix(&format!("{dashboards_at}/"))
        .expect("home dashboard among the mounted ones");
    assert!(repo_root().join("grafana/dashboards").join(home).is_file(), "{home}");

    let provisioning = yaml(&repo_root().join("grafana/provisioning/datasources/datasources.yml"));
    let sources = provisioning["datasources"].as_array().expect("datasources");
    let mut types: Vec<&str> = sources
        .iter()
        .map(|source| source["type"].as_str().expect("type"))
        .collect();
    types.sort_unstable();
    assert_eq!(types, ["loki", "prometheus"]);
    for source in sources {
        let url = source["url"].as_str().expect("url");
        let host = url
            .strip_prefix("http://")
            .and_then(|rest| rest.split(':').next())
            .expect("http://host:port");
        assert!(services.get(host).is_some(), "data source {url}: no service {host}");
    }
}

const DASHBOARD_TITLES: &[&str] = &["HBI Overview", "Logs", "Pipeline", "Quality"];

#[test]
fn dashboards_are_grafana_json_on_the_provisioned_data_sources() {
    let sources = provisioned_datasources();
    let mut titles = Vec::new();
    let mut uids = BTreeSet::new();
    for (path, dashboard) in ops::dashboards() {
        let file = path.display();
        let uid = dashboard["uid"].as_str().unwrap_or_default();
        assert!(!uid.is_empty() && uid.len() <= 40, "{file}: uid {uid:?}");
        assert!(uids.insert(uid.to_owned()), "{file}: uid {uid} used twice");
        titles.push(dashboard["title"].as_str().expect("title").to_owned());
        assert!(
            dashboard["schemaVersion"]
                .as_u64()
                .is_some_and(|v| (36..=41).contains(&v)),
            "{file}: schemaVersion"
        );
        assert!(
            dashboard["id"].is_null(),
            "{file}: no database id in a provisioned dashboard"
        );

        let mut ids = BTreeSet::new();
        let panels = ops::panels(&dashboard);
        assert!(!panels.is_empty(), "{file}: panels");
        for panel in panels {
            let title = &panel["title"];
            assert!(
                ids.insert(panel["id"].as_u64().expect("panel id")),
                "{file}: panel id twice"
            );
            let grid = &panel["gridPos"];
            let [h, w, x, _] = ["h", "w", "x", "y"].map(|key| {
                grid[key]
                    .as_u64()
                    .unwrap_or_else(|| panic!("{file}: panel {title}: gridPos.{key}"))
            });
            assert!(h > 0 && w > 0 && x + w <= 24, "{file}: panel {title}: gridPos {grid}");
            if panel["type"] == "row" {
                continue;
            }
            let targets = panel["targets"].as_array().map(Vec::as_slice).unwrap_or_default();
            assert!(!targets.is_empty(), "{file}: panel {title}: no query");
            for target in targets {
                let source = ops::target_datasource(panel, target);
                let uid = source["uid"].as_str().unwrap_or_default();
                assert_eq!(
                    sources.get(uid).map(String::as_str),
                    source["type"].as_str(),
                    "{file}: panel {title}: data source {source} is not provisioned"
                );
                assert!(
                    target["expr"].as_str().is_some_and(|expr| !expr.trim().is_empty()),
                    "{file}: panel {title}: empty query"
                );
            }
        }
    }
    titles.sort();
    assert_eq!(titles, DASHBOARD_TITLES);
}

/// What each dashboard must show (issue 6 item 3), as series it must query.
const DASHBOARD_CONTENT: &[(&str, &[&str])] = &[
    (
        "HBI Overview",
        &[
            "http_requests_total",
            "http_request_duration_seconds_bucket",
            "hbi_queue_depth",
            "hbi_dlq_size",
            "up",
        ],
    ),
    (
        "Pipeline",
        &[
            "hbi_jobs_total",
            "hbi_job_stage_duration_seconds_bucket",
            "hbi_pages_processed_total",
            "hbi_embeddings_generated_total",
        ],
    ),
    (
        "Quality",
        &[
            "hbi_quality_gate_total",
            "hbi_books_needing_review",
            "hbi_index_locator_support_ratio_bucket",
        ],
    ),
];

#[test]
fn every_promql_expression_parses_and_uses_only_spec_metrics_and_labels() {
    let queries = ops::all_promql();
    assert!(
        queries.len() > 20,
        "dashboards and rules hold PromQL: {}",
        queries.len()
    );

    // promtool parses each one, as a recording rule of a scratch rule file (JSON is YAML).
    let rules: Vec<Value> = queries
        .iter()
        .enumerate()
        .map(|(n, query)| json!({"record": format!("hbi_check:expr_{n}"), "expr": ops::evaluable(&query.expr)}))
        .collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("exprs.yml");
    std::fs::write(
        &file,
        json!({"groups": [{"name": "exprs", "rules": rules}]}).to_string(),
    )
    .expect("write");
    let output = ops::run_promtool(&["check", "rules", file.to_str().expect("utf-8 path")]);
    if !output.status.success() {
        let report = String::from_utf8_lossy(&output.stderr);
        let sources: Vec<String> = queries
            .iter()
            .enumerate()
            .map(|(n, query)| format!("expr_{n}: {}: {}", query.source, query.expr))
            .collect();
        panic!("promtool refuses an expression:\n{report}\n{}", sources.join("\n"));
    }

    let mut used = BTreeSet::new();
    for query in &queries {
        assert!(
            !ops::evaluable(&query.expr).contains('$'),
            "{}: a Grafana variable ops::evaluable does not know: {}",
            query.source,
            query.expr
        );
        let names = promql_names(&query.expr);
        assert!(
            !names.metrics.is_empty(),
            "{}: selects no metric: {}",
            query.source,
            query.expr
        );
        for metric in &names.metrics {
            assert!(
                is_spec_series(metric),
                "{}: {metric} is not a metric of SPEC section 4 (ops::SPEC_METRICS): {}",
                query.source,
                query.expr
            );
        }
        for label in &names.labels {
            assert!(
                SPEC_LABELS.contains(&label.as_str()),
                "{}: label {label} is not one of {SPEC_LABELS:?}: {}",
                query.source,
                query.expr
            );
        }
        used.extend(names.metrics);
    }

    for (title, series) in DASHBOARD_CONTENT {
        let prefix = format!("{}.json:", dashboard_file(title));
        let shown: BTreeSet<String> = ops::dashboard_queries()
            .iter()
            .filter(|query| query.source.starts_with(&prefix))
            .flat_map(|query| promql_names(&query.expr).metrics)
            .collect();
        for name in *series {
            assert!(shown.contains(*name), "dashboard {title} shows {name}");
        }
    }
    // Every counter and gauge of the list is on some dashboard or rule (histograms through
    // their series).
    for (name, kind) in SPEC_METRICS {
        let shown = match kind {
            MetricKind::Histogram => used.iter().any(|series| series.starts_with(&format!("{name}_"))),
            MetricKind::Counter | MetricKind::Gauge => used.contains(*name),
        };
        assert!(shown, "{name} is on no dashboard and in no rule");
    }
}

fn dashboard_file(title: &str) -> String {
    ops::dashboards()
        .into_iter()
        .find(|(_, dashboard)| dashboard["title"] == title)
        .map(|(path, _)| path.file_stem().expect("stem").to_string_lossy().into_owned())
        .unwrap_or_else(|| panic!("no dashboard {title}"))
}

#[test]
fn logs_dashboard_reads_the_hbi_services_from_loki_with_a_level_filter() {
    let (_, logs) = ops::dashboards()
        .into_iter()
        .find(|(_, dashboard)| dashboard["title"] == "Logs")
        .expect("Logs dashboard");
    let variables = logs["templating"]["list"].as_array().expect("templating");
    let level = variables
        .iter()
        .find(|variable| variable["name"] == "level")
        .expect("a level variable");
    for value in ["error", "warn", "info", "debug"] {
        assert!(
            level["query"]
                .as_str()
                .is_some_and(|options| options.split(',').any(|o| o == value)),
            "level {value}"
        );
    }
    let log_panels: Vec<&Value> = ops::panels(&logs)
        .into_iter()
        .filter(|panel| panel["type"] == "logs")
        .collect();
    assert!(!log_panels.is_empty(), "a logs panel");
    let queries: Vec<ops::Query> = ops::dashboard_queries()
        .into_iter()
        .filter(|query| query.source.starts_with(&format!("{}.json:", dashboard_file("Logs"))))
        .collect();
    assert!(queries.iter().all(|query| query.language == Language::LogQl));
    for query in &queries {
        assert!(
            query.expr.contains(r#"{service=~"hbi-.*", level=~"#),
            "{}: selects the HBI services by label: {}",
            query.source,
            query.expr
        );
    }
    assert!(
        queries.iter().any(|query| query.expr.contains(r#"level=~"$level""#)),
        "the level variable filters the logs"
    );
}

#[test]
fn the_promql_scanner_finds_metric_and_label_names() {
    let names = promql_names(
        r#"histogram_quantile(0.95, sum by (le, stage) (rate(hbi_job_stage_duration_seconds_bucket{stage=~"a|b", job!="x"}[$__rate_interval] offset 5m)))
           > 600 and on() absent(up{job="hbi-worker"} == 1) or vector(0) * -1.5e3 unless max without (instance) (hbi_queue_depth)"#,
    );
    let expected = |names: &[&str]| {
        names
            .iter()
            .map(|name| (*name).to_owned())
            .collect::<BTreeSet<String>>()
    };
    assert_eq!(
        names.metrics,
        expected(&["hbi_job_stage_duration_seconds_bucket", "hbi_queue_depth", "up"])
    );
    assert_eq!(names.labels, expected(&["instance", "job", "le", "stage"]));
    let names = promql_names(r#"sum(rate(hbi_typo_total{status_code="500"}[5m]))"#);
    assert!(!is_spec_series("hbi_typo_total") && names.metrics.contains("hbi_typo_total"));
    assert!(names.labels.contains("status_code"));
    assert!(is_spec_series("http_request_duration_seconds_count"));
    assert!(
        !is_spec_series("http_request_duration_seconds"),
        "a histogram has no bare series"
    );
    assert!(!is_spec_series("hbi_jobs_total_bucket"));
}
