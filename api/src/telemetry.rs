//! Logs and traces, set up once per process (zero2prod's `telemetry` module):
//!
//! - log lines on stdout: JSON objects (or a readable format for people at a terminal),
//!   filtered by `log.level` or `RUST_LOG`. Each JSON line names the request, job and book it
//!   belongs to (`request_id`, `job_id`, `book_id`, `trace_id`, taken from the spans it is
//!   in) at its top level, beside its current span;
//! - with `telemetry.loki_url` (`LOKI_URL`): the same events pushed to Loki by tracing-loki,
//!   labelled `service` and `level`;
//! - with an OTLP endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT`): every span exported over
//!   OTLP/HTTP (protobuf) in batches, under `service.name`.
//!
//! Without those settings nothing is exported and no background work runs. [`Telemetry::shutdown`]
//! flushes what is still buffered; call it before the process exits.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use anyhow::Context as _;
use hbi_shared::config::{LogSettings, TelemetrySettings};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// Span fields copied to the top level of every JSON log line inside the span, so a line can
/// be found by the request, job or book it served, and joined with its trace.
pub const CORRELATION_FIELDS: [&str; 4] = ["request_id", "job_id", "book_id", "trace_id"];

/// How long shutdown waits for buffered spans and log lines to leave.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// What must be flushed before the process exits.
pub struct Telemetry {
    tracer_provider: Option<SdkTracerProvider>,
    loki: Option<LokiShipper>,
}

struct LokiShipper {
    controller: tracing_loki::BackgroundTaskController,
    task: tokio::task::JoinHandle<()>,
}

/// Installs the global subscriber. `default_service` names this process in traces and Loki
/// unless `telemetry.service_name` (`OTEL_SERVICE_NAME`) does. Must run inside the Tokio
/// runtime (the Loki shipper is a task on it).
///
/// A second call in one process keeps the first subscriber and exports nothing more.
pub fn init(log: &LogSettings, telemetry: &TelemetrySettings, default_service: &str) -> anyhow::Result<Telemetry> {
    init_writing_to(log, telemetry, default_service, LogStream::Stdout)
}

/// Where the log lines of this process go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    /// For a process whose stdout is a protocol (`hbi mcp`).
    Stderr,
}

/// [`init`], the log lines written to `stream`.
pub fn init_writing_to(
    log: &LogSettings,
    telemetry: &TelemetrySettings,
    default_service: &str,
    stream: LogStream,
) -> anyhow::Result<Telemetry> {
    let service = telemetry.service_or(default_service).to_owned();
    let writer = move || -> Box<dyn std::io::Write> {
        match stream {
            LogStream::Stdout => Box::new(std::io::stdout()),
            LogStream::Stderr => Box::new(std::io::stderr()),
        }
    };
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let stdout: Box<dyn Layer<Registry> + Send + Sync> = if log.format == hbi_shared::config::LogFormat::Pretty {
        tracing_subscriber::fmt::layer()
            .with_target(false)
            .with_writer(writer)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .fmt_fields(JsonFields::new())
            .event_format(JsonLines)
            .with_writer(writer)
            .boxed()
    };

    let tracer_provider = match telemetry.traces_url() {
        Some(url) => Some(tracer_provider(&url, &service)?),
        None => None,
    };
    let traces = tracer_provider
        .as_ref()
        .map(|provider| tracing_opentelemetry::layer().with_tracer(provider.tracer("hbi")));

    let (loki_layer, loki) = match telemetry.loki() {
        Some(url) => {
            let (layer, shipper) = loki_layer(url, &service)?;
            (Some(layer), Some(shipper))
        }
        None => (None, None),
    };

    let installed = tracing_subscriber::registry()
        .with(stdout)
        .with(traces)
        .with(loki_layer)
        .with(filter)
        .try_init();
    if installed.is_err() {
        // Someone installed a subscriber first (a test calling twice): keep it, export nothing.
        return Ok(Telemetry {
            tracer_provider: None,
            loki: None,
        });
    }
    if let Some(url) = telemetry.traces_url() {
        tracing::info!(traces = %url, service = %service, "exporting traces over OTLP/HTTP");
    }
    if let Some(url) = telemetry.loki() {
        tracing::info!(loki = %url, service = %service, "pushing log lines to Loki");
    }
    Ok(Telemetry { tracer_provider, loki })
}

fn tracer_provider(url: &str, service: &str) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(url)
        .build()
        .with_context(|| format!("cannot set up the OTLP trace exporter for {url}"))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service.to_owned())
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    // The batch processor exports from a thread of its own, every few seconds and at shutdown,
    // so request handlers never wait for the collector.
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

fn loki_layer(url: &str, service: &str) -> anyhow::Result<(tracing_loki::Layer, LokiShipper)> {
    // tracing-loki appends `loki/api/v1/push` to the URL as a relative path: keep any path
    // prefix of LOKI_URL by ending it with a slash.
    let base = if url.ends_with('/') {
        url.to_owned()
    } else {
        format!("{url}/")
    };
    let base = tracing_loki::url::Url::parse(&base).with_context(|| format!("LOKI_URL {url} is not a URL"))?;
    // `level` is tracing-loki's own label: one stream per level, set from each event.
    let (layer, controller, task) = tracing_loki::builder()
        .label("service", service)
        .context("the Loki service label")?
        .build_controller_url(base)
        .context("cannot set up log shipping to Loki")?;
    let task = tokio::spawn(task);
    Ok((layer, LokiShipper { controller, task }))
}

impl Telemetry {
    /// Sends what is still buffered: the last log lines to Loki, the last spans to the
    /// collector. Each waits at most a few seconds, so an unreachable sink cannot hold up
    /// the exit.
    pub async fn shutdown(self) {
        if let Some(loki) = self.loki {
            loki.controller.shutdown().await;
            if tokio::time::timeout(FLUSH_TIMEOUT, loki.task).await.is_err() {
                eprintln!("warning: the last log lines could not be pushed to Loki in time");
            }
        }
        if let Some(provider) = self.tracer_provider {
            // Blocks until the exporter thread has sent the last batch.
            let flushed = tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(FLUSH_TIMEOUT)).await;
            match flushed {
                Ok(Ok(())) => {}
                Ok(Err(err)) => eprintln!("warning: the last spans could not be exported: {err}"),
                Err(err) => eprintln!("warning: the span exporter did not shut down: {err}"),
            }
        }
    }
}

/// The JSON log line: the event's fields at the top level with `timestamp`, `level`, `target`
/// and `message`; the current span as `span` (its fields and `name`); and the
/// [`CORRELATION_FIELDS`] of the enclosing spans, the innermost winning, unless the event
/// names them itself.
struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        // Records bridged from the `log` crate carry their real target in their fields.
        let normalized = event.normalized_metadata();
        let metadata = normalized.as_ref().unwrap_or_else(|| event.metadata());
        let mut line = serde_json::Map::new();
        line.insert(
            "timestamp".to_owned(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .into(),
        );
        line.insert("level".to_owned(), metadata.level().as_str().into());
        event.record(&mut JsonFieldVisitor(&mut line));
        line.insert("target".to_owned(), metadata.target().into());

        let mut correlation = serde_json::Map::new();
        if let Some(scope) = ctx.event_scope() {
            let mut current = None;
            for span in scope.from_root() {
                let extensions = span.extensions();
                let fields: serde_json::Map<String, serde_json::Value> = extensions
                    .get::<FormattedFields<N>>()
                    .and_then(|formatted| serde_json::from_str(formatted.as_str()).ok())
                    .unwrap_or_default();
                for key in CORRELATION_FIELDS {
                    if let Some(value) = fields.get(key) {
                        correlation.insert(key.to_owned(), value.clone());
                    }
                }
                current = Some((span.name(), fields));
            }
            if let Some((name, mut fields)) = current {
                fields.insert("name".to_owned(), name.into());
                line.insert("span".to_owned(), fields.into());
            }
        }
        for (key, value) in correlation {
            line.entry(key).or_insert(value);
        }
        writeln!(writer, "{}", serde_json::Value::Object(line))
    }
}

/// Event fields as JSON values: numbers and booleans stay typed, the rest become strings.
struct JsonFieldVisitor<'a>(&'a mut serde_json::Map<String, serde_json::Value>);

impl JsonFieldVisitor<'_> {
    fn insert(&mut self, field: &Field, value: serde_json::Value) {
        // `log` records carry their metadata as fields; it is in the line already.
        if !field.name().starts_with("log.") {
            self.0.insert(field.name().to_owned(), value);
        }
    }
}

impl Visit for JsonFieldVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.insert(field, value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.insert(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.insert(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.insert(field, value.into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.insert(field, value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.insert(field, value.to_string().into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.insert(field, format!("{value:?}").into());
    }
}

/// The request id of an HTTP request: the caller's `X-Request-Id` when it is a sensible
/// token (at most 128 letters, digits and `-_.:`), else a new UUID.
pub fn request_id(request: &poem::Request) -> String {
    request
        .header(REQUEST_ID_HEADER)
        .filter(|id| {
            !id.is_empty()
                && id.len() <= 128
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The server span of one HTTP request, named `{method} {route}` after its route template
/// (never the raw path: a book id in a name would make a name per book), continuing the
/// caller's trace when the request carries a W3C `traceparent`. The status is recorded by
/// [`finish_request_span`].
pub fn request_span(request: &poem::Request, route: Option<&str>, request_id: &str) -> tracing::Span {
    let method = request.method().as_str();
    // The name is fixed when the span starts, before routing is done: hence the route is
    // looked up beforehand.
    let name = match route {
        Some(route) => format!("{method} {route}"),
        None => method.to_owned(),
    };
    let span = tracing::info_span!(
        "http.request",
        otel.name = %name,
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        request_id = %request_id,
        http.request.method = %method,
        http.route = route,
        url.path = %request.uri().path(),
        http.response.status_code = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    );
    let headers: HashMap<String, String> = ["traceparent", "tracestate"]
        .into_iter()
        .filter_map(|name| Some((name.to_owned(), request.header(name)?.to_owned())))
        .collect();
    hbi_shared::trace_context::set_remote_parent(&span, &headers);
    if let Some(trace_id) = hbi_shared::trace_context::trace_id(&span) {
        span.record("trace_id", trace_id);
    }
    span
}

/// Records the answer's status on the request span; a 5xx marks the span as an error.
pub fn finish_request_span(span: &tracing::Span, status: u16) {
    // As i64: tracing-opentelemetry exports unsigned fields as strings.
    span.record("http.response.status_code", i64::from(status));
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
    }
}
