//! Logs and traces leave HBI in the real wire formats. No Loki or OpenTelemetry collector can
//! be installed on HBI's machines, so the test starts its own receivers on 127.0.0.1 and
//! decodes what arrives as those servers would:
//!
//! - `POST /v1/traces`: OTLP/HTTP, `application/x-protobuf`, an `ExportTraceServiceRequest`
//!   (decoded with the `opentelemetry-proto` messages);
//! - `POST /loki/api/v1/push`: Loki's push API, a snappy-compressed (block format) protobuf
//!   `PushRequest` (the messages of Loki's `push.proto`, written out below);
//! - `POST /v1/chat/completions`: a stand-in language model, so `POST /query` makes an LLM
//!   span.
//!
//! The processes are stopped with SIGTERM before anything is checked: whatever was still
//! buffered must have been flushed on the way out.

use crate::common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Role, TestServer, corpus_pdf};
use hbi_shared::domain::Stage;
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use poem::web::{Data, Json};
use poem::{EndpointExt, IntoResponse, Response, Route, handler};
use prost::Message;
use serde_json::{Value, json};

/// Loki's push messages (`pkg/push/push.proto`), as its distributor decodes them.
mod logproto {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PushRequest {
        #[prost(message, repeated, tag = "1")]
        pub streams: Vec<Stream>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Stream {
        /// The label set in Prometheus' notation: `{level="info", service="hbi"}`.
        #[prost(string, tag = "1")]
        pub labels: String,
        #[prost(message, repeated, tag = "2")]
        pub entries: Vec<Entry>,
        #[prost(uint64, tag = "3")]
        pub hash: u64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Entry {
        #[prost(message, optional, tag = "1")]
        pub timestamp: Option<Timestamp>,
        #[prost(string, tag = "2")]
        pub line: String,
    }

    /// `google.protobuf.Timestamp`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Timestamp {
        #[prost(int64, tag = "1")]
        pub seconds: i64,
        #[prost(int32, tag = "2")]
        pub nanos: i32,
    }
}

/// One span as the collector received it.
#[derive(Clone, Debug)]
struct ReceivedSpan {
    service: String,
    name: String,
    kind: i32,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    attributes: HashMap<String, Value>,
}

impl ReceivedSpan {
    fn attribute(&self, key: &str) -> &Value {
        self.attributes.get(key).unwrap_or(&Value::Null)
    }
}

/// One log line as Loki received it, with the labels of its stream.
#[derive(Clone, Debug)]
struct ReceivedLine {
    labels: HashMap<String, String>,
    line: Value,
    timestamp_seconds: i64,
}

#[derive(Clone, Default)]
struct Sink {
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    lines: Arc<Mutex<Vec<ReceivedLine>>>,
    /// Requests that did not follow the wire format, with what was wrong.
    problems: Arc<Mutex<Vec<String>>>,
    llm_calls: Arc<Mutex<u32>>,
}

const STAND_IN_MODEL: &str = "stand-in-model-2025";
const PROMPT_TOKENS: i64 = 123;
const COMPLETION_TOKENS: i64 = 45;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn json_of(value: Option<&any_value::Value>) -> Value {
    match value {
        Some(any_value::Value::StringValue(text)) => json!(text),
        Some(any_value::Value::BoolValue(flag)) => json!(flag),
        Some(any_value::Value::IntValue(number)) => json!(number),
        Some(any_value::Value::DoubleValue(number)) => json!(number),
        Some(other) => json!(format!("{other:?}")),
        None => Value::Null,
    }
}

fn attributes(list: &[KeyValue]) -> HashMap<String, Value> {
    list.iter()
        .map(|kv| {
            let value = kv.value.as_ref().and_then(|v| v.value.as_ref());
            (kv.key.clone(), json_of(value))
        })
        .collect()
}

/// Parses `{level="info", service="hbi"}`.
fn parse_labels(labels: &str) -> HashMap<String, String> {
    labels
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .split(',')
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            Some((key.trim().to_owned(), value.trim().trim_matches('"').to_owned()))
        })
        .collect()
}

impl Sink {
    fn problem(&self, problem: String) -> Response {
        self.problems.lock().expect("lock").push(problem.clone());
        (poem::http::StatusCode::BAD_REQUEST, problem).into_response()
    }

    fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().expect("lock").clone()
    }

    fn lines(&self) -> Vec<ReceivedLine> {
        self.lines.lock().expect("lock").clone()
    }

    fn problems(&self) -> Vec<String> {
        self.problems.lock().expect("lock").clone()
    }
}

#[handler]
async fn receive_traces(request: &poem::Request, body: Vec<u8>, Data(sink): Data<&Sink>) -> Response {
    if request.content_type() != Some("application/x-protobuf") {
        return sink.problem(format!("traces sent as {:?}", request.content_type()));
    }
    let export = match ExportTraceServiceRequest::decode(body.as_slice()) {
        Ok(export) => export,
        Err(err) => return sink.problem(format!("undecodable ExportTraceServiceRequest: {err}")),
    };
    let mut received = Vec::new();
    for resource_spans in export.resource_spans {
        let resource = resource_spans
            .resource
            .map(|resource| attributes(&resource.attributes))
            .unwrap_or_default();
        let service = resource
            .get("service.name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        for scope_spans in resource_spans.scope_spans {
            for span in scope_spans.spans {
                received.push(ReceivedSpan {
                    service: service.clone(),
                    name: span.name,
                    kind: span.kind,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    attributes: attributes(&span.attributes),
                });
            }
        }
    }
    sink.spans.lock().expect("lock").extend(received);
    ExportTraceServiceResponse::default()
        .encode_to_vec()
        .with_content_type("application/x-protobuf")
        .into_response()
}

#[handler]
async fn receive_logs(request: &poem::Request, body: Vec<u8>, Data(sink): Data<&Sink>) -> Response {
    if request.content_type() != Some("application/x-protobuf") {
        return sink.problem(format!("logs sent as {:?}", request.content_type()));
    }
    if request.header("content-encoding") != Some("snappy") {
        return sink.problem(format!("logs encoded as {:?}", request.header("content-encoding")));
    }
    let decompressed = match snap::raw::Decoder::new().decompress_vec(&body) {
        Ok(bytes) => bytes,
        Err(err) => return sink.problem(format!("not snappy (block format): {err}")),
    };
    let push = match logproto::PushRequest::decode(decompressed.as_slice()) {
        Ok(push) => push,
        Err(err) => return sink.problem(format!("undecodable PushRequest: {err}")),
    };
    let mut received = Vec::new();
    for stream in push.streams {
        let labels = parse_labels(&stream.labels);
        for entry in stream.entries {
            let line = match serde_json::from_str(&entry.line) {
                Ok(line) => line,
                Err(err) => return sink.problem(format!("a line that is not JSON ({err}): {}", entry.line)),
            };
            received.push(ReceivedLine {
                labels: labels.clone(),
                line,
                timestamp_seconds: entry.timestamp.map(|t| t.seconds).unwrap_or_default(),
            });
        }
    }
    sink.lines.lock().expect("lock").extend(received);
    poem::http::StatusCode::NO_CONTENT.into_response()
}

/// Answers like an OpenAI-compatible server, citing the first excerpt of the prompt.
#[handler]
async fn chat_completions(Json(body): Json<Value>, Data(sink): Data<&Sink>) -> Response {
    *sink.llm_calls.lock().expect("lock") += 1;
    let prompt: String = body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|message| message["content"].as_str())
        .collect();
    let first_excerpt = prompt
        .split("<excerpt id=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default();
    let content = json!({
        "answer_summary": "Number equations with the align environment.",
        "claims": [{"text": "align numbers each line.", "source_chunk_id": first_excerpt}],
        "confidence_score": 0.9,
    });
    Json(json!({
        "id": "chatcmpl-telemetry",
        "object": "chat.completion",
        "created": 0,
        "model": STAND_IN_MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content.to_string()}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS,
                  "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS},
    }))
    .into_response()
}

/// Starts the receivers on one ephemeral port; returns them and their base URL.
async fn start_receivers() -> (Sink, String) {
    let sink = Sink::default();
    let app = Route::new()
        .at("/v1/traces", poem::post(receive_traces))
        .at("/loki/api/v1/push", poem::post(receive_logs))
        .at("/v1/chat/completions", poem::post(chat_completions))
        .data(sink.clone());
    let address = common::serve_in_test(app).await;
    (sink, format!("http://{address}"))
}

/// Spans and JSON log lines: every parent named by a span, walking up from `span`.
fn ancestors<'a>(span: &'a ReceivedSpan, spans: &'a [ReceivedSpan]) -> Vec<&'a ReceivedSpan> {
    let mut chain = Vec::new();
    let mut current = span;
    while let Some(parent) = spans
        .iter()
        .find(|candidate| !current.parent_span_id.is_empty() && candidate.span_id == current.parent_span_id)
    {
        chain.push(parent);
        current = parent;
    }
    chain
}

fn find_span<'a>(spans: &'a [ReceivedSpan], what: &str, test: impl Fn(&ReceivedSpan) -> bool) -> &'a ReceivedSpan {
    spans.iter().find(|span| test(span)).unwrap_or_else(|| {
        let names: Vec<String> = spans
            .iter()
            .map(|span| format!("{} ({})", span.name, span.service))
            .collect();
        panic!("no {what} among the {} spans received: {names:?}", spans.len())
    })
}

/// The pipeline stages a book goes through without an embedding model (the tests run without).
fn stages() -> Vec<&'static str> {
    Stage::ALL
        .iter()
        .filter(|stage| !matches!(stage, Stage::Embed | Stage::IndexVectors))
        .map(|stage| stage.as_str())
        .collect()
}

/// Checks that the job of `job_id` ran in spans of the upload's trace: the job span is the
/// upload request span's child and every stage span the job span's. Returns the job span.
fn assert_job_continues_upload<'a>(
    spans: &'a [ReceivedSpan],
    upload: &ReceivedSpan,
    job_id: &str,
    book_id: &str,
    worker_service: &str,
) -> &'a ReceivedSpan {
    let job = find_span(spans, "job span", |span| {
        span.name == "job ingest" && span.attribute("job_id") == job_id
    });
    assert_eq!(job.service, worker_service, "{job:?}");
    assert_eq!(job.kind, SpanKind::Consumer as i32, "{job:?}");
    assert_eq!(job.attribute("book_id"), book_id, "{job:?}");
    assert_eq!(job.attribute("outcome"), "succeeded", "{job:?}");
    assert_eq!(
        job.trace_id, upload.trace_id,
        "the job span belongs to the upload's trace"
    );
    assert_eq!(
        job.parent_span_id, upload.span_id,
        "the upload request span is the job span's parent"
    );
    for stage in stages() {
        let span = find_span(spans, &format!("stage span {stage}"), |span| {
            span.name == format!("stage {stage}") && span.parent_span_id == job.span_id
        });
        assert_eq!(span.trace_id, upload.trace_id, "{span:?}");
        assert_eq!(span.attribute("stage"), stage, "{span:?}");
    }
    job
}

/// The JSON lines an `hbi` process printed on stdout.
fn stdout_lines(server: &TestServer) -> Vec<Value> {
    server
        .log_lines()
        .iter()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_trace_continues_into_its_job_and_logs_reach_loki() {
    let (sink, receivers) = start_receivers().await;
    let llm_base = format!("{receivers}/v1");
    let mut server = TestServer::start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receivers.as_str()),
        ("LOKI_URL", receivers.as_str()),
        ("HBI__LLM__BASE_URL", llm_base.as_str()),
        ("LLM_MODEL", "hbi-test-model"),
    ]);

    // The caller's own trace: the upload request continues it.
    let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let upload_request_id = format!("upload-{}", uuid::Uuid::new_v4().simple());
    let book_id = server.create_book("amsldoc").await;
    let pdf = std::fs::read(corpus_pdf("amsldoc")).expect("amsldoc");
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(pdf)
            .file_name("book.pdf")
            .mime_str("application/pdf")
            .expect("mime"),
    );
    let response = server
        .client
        .post(server.url(&format!("/books/{book_id}/upload")))
        .header("x-request-id", &upload_request_id)
        .header("traceparent", format!("00-{caller_trace}-{caller_span}-01"))
        .multipart(form)
        .send()
        .await
        .expect("upload");
    assert_eq!(response.status().as_u16(), 202);
    assert_eq!(
        response.headers().get("x-request-id").and_then(|v| v.to_str().ok()),
        Some(upload_request_id.as_str()),
        "the caller's request id is echoed"
    );
    let upload: Value = response.json().await.expect("upload json");
    let job_id = upload["job_id"].as_str().expect("job id").to_owned();
    let job = server.wait_for_job(&job_id, Duration::from_secs(300)).await;
    assert_eq!(job["state"], "succeeded", "{job}");

    // A request without an id gets one of its own.
    let response = server.client.get(server.url("/jobs")).send().await.expect("GET /jobs");
    let generated = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("a generated request id");
    assert!(uuid::Uuid::parse_str(generated).is_ok(), "{generated}");
    // Probes and scrapes are answered but not traced.
    for probe in ["/health/ready", "/metrics"] {
        let response = server.client.get(server.url(probe)).send().await.expect("probe");
        assert_eq!(response.status().as_u16(), 200, "{probe}");
    }

    // A question answered through the stand-in model: an LLM span. The gates are opened so
    // that the model is asked whatever the retrieval scores.
    let knobs = server
        .client
        .put(server.url("/config"))
        .json(&json!({"min_chunks": 1, "relevance_threshold": 0.0, "confidence_threshold": 0.1}))
        .send()
        .await
        .expect("PUT /config");
    assert_eq!(knobs.status().as_u16(), 200);
    let query_request_id = format!("query-{}", uuid::Uuid::new_v4().simple());
    let answer = server
        .client
        .post(server.url("/query"))
        .header("x-request-id", &query_request_id)
        .json(&json!({"query": "How are equations numbered in the align environment?", "book_id": book_id}))
        .send()
        .await
        .expect("POST /query");
    assert_eq!(answer.status().as_u16(), 200);
    let answer: Value = answer.json().await.expect("answer json");
    assert_eq!(answer["model"], STAND_IN_MODEL, "{answer}");
    assert_eq!(*sink.llm_calls.lock().expect("lock"), 1, "the model was asked once");

    // SIGTERM: what is still buffered must leave before the process exits.
    let status = server.terminate();
    assert!(status.success(), "hbi serve exits cleanly after SIGTERM: {status}");
    assert_eq!(
        sink.problems(),
        Vec::<String>::new(),
        "every export followed the wire format"
    );

    // Traces.
    let spans = sink.spans();
    assert!(
        spans.iter().all(|span| span.service == "hbi"),
        "hbi serve names itself `hbi`"
    );
    let upload_span = find_span(&spans, "upload request span", |span| {
        span.name == "POST /books/{book_id}/upload" && span.attribute("request_id") == upload_request_id.as_str()
    });
    assert_eq!(upload_span.kind, SpanKind::Server as i32);
    assert_eq!(
        upload_span.trace_id, caller_trace,
        "the upload continues the caller's trace"
    );
    assert_eq!(upload_span.parent_span_id, caller_span);
    assert_eq!(upload_span.attribute("http.route"), "/books/{book_id}/upload");
    assert_eq!(upload_span.attribute("http.response.status_code"), &json!(202));
    assert_job_continues_upload(&spans, upload_span, &job_id, &book_id, "hbi");

    let query_span = find_span(&spans, "query request span", |span| {
        span.name == "POST /query" && span.attribute("request_id") == query_request_id.as_str()
    });
    assert_ne!(
        query_span.trace_id, caller_trace,
        "a request without traceparent starts a trace"
    );
    assert!(
        spans.iter().any(|span| span.name == "GET /jobs"),
        "other requests are traced too"
    );
    assert!(
        !spans
            .iter()
            .any(|span| span.name.contains("/health") || span.name.contains("/metrics")),
        "probes and scrapes are not traced"
    );
    let llm = find_span(&spans, "LLM span", |span| span.name == "chat hbi-test-model");
    assert_eq!(llm.kind, SpanKind::Client as i32, "{llm:?}");
    assert_eq!(llm.trace_id, query_span.trace_id, "{llm:?}");
    assert!(
        ancestors(llm, &spans)
            .iter()
            .any(|span| span.span_id == query_span.span_id),
        "the LLM span sits under the query request span"
    );
    for (key, expected) in [
        ("gen_ai.operation.name", json!("chat")),
        ("gen_ai.provider.name", json!("openai")),
        ("gen_ai.system", json!("openai")),
        ("gen_ai.request.model", json!("hbi-test-model")),
        ("gen_ai.response.model", json!(STAND_IN_MODEL)),
        ("gen_ai.usage.input_tokens", json!(PROMPT_TOKENS)),
        ("gen_ai.usage.output_tokens", json!(COMPLETION_TOKENS)),
    ] {
        assert_eq!(llm.attribute(key), &expected, "{key} of {llm:?}");
    }
    assert!(llm.attribute("gen_ai.request.temperature").is_f64(), "{llm:?}");

    // Logs in Loki: streams labelled service and level, lines carrying the ids of their spans.
    let lines = sink.lines();
    assert!(!lines.is_empty(), "log lines reached Loki");
    for line in &lines {
        assert_eq!(line.labels.get("service").map(String::as_str), Some("hbi"), "{line:?}");
        assert!(
            matches!(
                line.labels.get("level").map(String::as_str),
                Some("trace" | "debug" | "info" | "warn" | "error")
            ),
            "{line:?}"
        );
        assert!(line.timestamp_seconds > 1_700_000_000, "{line:?}");
    }
    let stage_lines: Vec<&ReceivedLine> = lines
        .iter()
        .filter(|line| line.line["message"] == "stage started" && line.line["job_id"] == job_id.as_str())
        .collect();
    assert_eq!(
        stage_lines.len(),
        stages().len(),
        "one `stage started` line per stage in Loki"
    );
    assert!(stage_lines.iter().all(|line| line.labels["level"] == "info"));
    let finished = lines
        .iter()
        .find(|line| line.line["message"] == "job finished")
        .expect("the `job finished` line in Loki");
    // Its job_id comes from the job span, not from the event.
    assert_eq!(finished.line["job_id"], job_id.as_str(), "{:?}", finished.line);
    assert_eq!(finished.line["book_id"], book_id.as_str(), "{:?}", finished.line);
    assert!(
        lines
            .iter()
            .any(|line| line.line["message"] == "upload accepted"
                && line.line["request_id"] == upload_request_id.as_str()),
        "the upload's lines carry its request id in Loki"
    );

    // The same lines on stdout, the ids at the top level.
    let stdout = stdout_lines(&server);
    let stage_started: Vec<&Value> = stdout
        .iter()
        .filter(|line| line["message"] == "stage started" && line["job_id"] == job_id.as_str())
        .collect();
    assert_eq!(stage_started.len(), stages().len());
    for line in &stage_started {
        assert_eq!(line["book_id"], book_id.as_str(), "{line}");
        assert_eq!(line["trace_id"], caller_trace, "{line}");
    }
    let job_finished = stdout
        .iter()
        .find(|line| line["message"] == "job finished")
        .expect("`job finished` on stdout");
    assert_eq!(job_finished["job_id"], job_id.as_str(), "{job_finished}");
    assert_eq!(job_finished["book_id"], book_id.as_str(), "{job_finished}");
    assert_eq!(job_finished["span"]["name"], "job", "{job_finished}");
    for message in ["upload accepted", "request finished"] {
        let line = stdout
            .iter()
            .find(|line| line["message"] == message && line["request_id"] == upload_request_id.as_str())
            .unwrap_or_else(|| panic!("`{message}` with the upload's request id on stdout"));
        assert_eq!(line["trace_id"], caller_trace, "{line}");
    }
    let llm_line = stdout
        .iter()
        .find(|line| line["message"] == "llm call finished")
        .expect("`llm call finished` on stdout");
    assert_eq!(llm_line["request_id"], query_request_id.as_str(), "{llm_line}");
    assert_eq!(llm_line["span"]["name"], "gen_ai.chat", "{llm_line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_trace_travels_with_the_job_from_hbi_api_to_a_separate_hbi_worker() {
    let (sink, receivers) = start_receivers().await;
    let telemetry = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receivers.as_str()),
        ("LOKI_URL", receivers.as_str()),
    ];
    // The production shape on the embedded backends: both processes share one data directory
    // (SQLite database, SQLite queue, blobs), the worker starting once the API has migrated it.
    let data = tempfile::tempdir().expect("data dir");
    let mut api = TestServer::spawn(Role::Api, data.path(), &telemetry);
    let mut worker = TestServer::spawn(Role::Worker, data.path(), &telemetry);

    let book_id = api.create_book("amsldoc").await;
    let pdf = std::fs::read(corpus_pdf("amsldoc")).expect("amsldoc");
    let (status, upload) = api.upload(&book_id, pdf, "book.pdf").await;
    assert_eq!(status, 202, "{upload}");
    let job_id = upload["job_id"].as_str().expect("job id").to_owned();
    let job = api.wait_for_job(&job_id, Duration::from_secs(300)).await;
    assert_eq!(job["state"], "succeeded", "{job}");

    assert!(worker.terminate().success(), "the worker exits cleanly after SIGTERM");
    assert!(api.terminate().success(), "the API exits cleanly after SIGTERM");
    assert_eq!(
        sink.problems(),
        Vec::<String>::new(),
        "every export followed the wire format"
    );

    let spans = sink.spans();
    let upload_span = find_span(&spans, "upload request span", |span| {
        span.name == "POST /books/{book_id}/upload" && span.service == "hbi-api"
    });
    // No traceparent from the caller: the API started the trace.
    assert!(upload_span.parent_span_id.is_empty(), "{upload_span:?}");
    let job = assert_job_continues_upload(&spans, upload_span, &job_id, &book_id, "hbi-worker");
    assert_eq!(job.attribute("attempt"), &json!(1), "{job:?}");

    let lines = sink.lines();
    let services: std::collections::BTreeSet<&str> = lines
        .iter()
        .filter_map(|line| line.labels.get("service").map(String::as_str))
        .collect();
    assert_eq!(services, ["hbi-api", "hbi-worker"].into_iter().collect());
    let worker_job_line = lines
        .iter()
        .find(|line| line.labels["service"] == "hbi-worker" && line.line["message"] == "job finished")
        .expect("the worker's `job finished` line in Loki");
    assert_eq!(worker_job_line.line["job_id"], job_id.as_str());
    assert_eq!(worker_job_line.line["trace_id"], upload_span.trace_id.as_str());
}
