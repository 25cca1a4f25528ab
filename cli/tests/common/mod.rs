//! Black-box test harness: runs the real `hbi` binary on an ephemeral port with a fresh
//! data directory and talks HTTP to it.

#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod formats;
pub mod libraries;
pub mod llm;
pub mod mcp;
pub mod portal;
pub mod webhooks;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn corpus_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus");
    assert!(
        dir.join("README.md").exists(),
        "the corpus is missing at {}: shared/ must sit beside the repository",
        dir.display()
    );
    dir
}

pub fn corpus_pdf(book: &str) -> PathBuf {
    corpus_dir().join(book).join("book.pdf")
}

pub fn score_tool() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/tools/score_extraction.py")
}

/// Where scripts/test installs the Python packages the tests call (PYTHONPATH).
pub fn python_tools_path() -> PathBuf {
    std::env::var_os("HBI_PYLIB")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/hbi-tools/pylib"))
}

pub fn hbi_binary() -> &'static str {
    env!("CARGO_BIN_EXE_hbi")
}

/// Which `hbi` subcommand a test process runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Role {
    Serve,
    Api,
    Worker,
}

impl Role {
    fn command(self) -> &'static str {
        match self {
            Role::Serve => "serve",
            Role::Api => "api",
            Role::Worker => "worker",
        }
    }
}

/// Variables that select a server backend or a telemetry sink: cleared for every test process.
pub const BACKEND_VARIABLES: &[&str] = &[
    "DATABASE_URL",
    "REDIS_URL",
    "MINIO_ENDPOINT",
    "MINIO_ACCESS_KEY",
    "MINIO_SECRET_KEY",
    "MINIO_SECURE",
    "MINIO_BUCKET_NAME",
    "NEO4J_URI",
    "NEO4J_USER",
    "NEO4J_PASSWORD",
    "FALKORDB_URL",
    // The language model of POST /query: tests name their own stand-in.
    "OPENAI_BASE_URL",
    "OPENAI_API_KEY",
    "LLM_MODEL",
    // Log and trace export: tests start their own receivers.
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_SERVICE_NAME",
    "LOKI_URL",
];

/// Serves `app` (a stand-in for a server HBI talks to) on 127.0.0.1 and an ephemeral port,
/// in the background of the test's runtime; returns its address.
pub async fn serve_in_test(app: impl poem::Endpoint + 'static) -> std::net::SocketAddr {
    use poem::listener::{Acceptor, Listener, TcpListener};

    let acceptor = TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .expect("bind a test server");
    let address = acceptor
        .local_addr()
        .into_iter()
        .find_map(|addr| addr.as_socket_addr().copied())
        .expect("test server address");
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app));
    address
}

/// The admin key every test server accepts (`HBI_BOOTSTRAP_API_KEY`) and its client sends,
/// unless the test gives `HBI_BOOTSTRAP_API_KEY` itself (empty: none).
pub const TEST_ADMIN_KEY: &str = "hbi-test-bootstrap-admin-key-5f1c9a";

/// A client that sends no API key, to test what callers without one get.
/// A response header as text ("" when absent or unreadable).
pub fn header_of(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

pub fn client_without_key() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client")
}

/// A client that sends `key` as `X-API-Key` on every request.
pub fn client_with_key(key: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let mut value = reqwest::header::HeaderValue::from_str(key).expect("an API key is a header value");
    // Keeps it out of reqwest's own debug output.
    value.set_sensitive(true);
    headers.insert("x-api-key", value);
    reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .default_headers(headers)
        .build()
        .expect("client")
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

pub struct TestServer {
    child: Child,
    pub base: String,
    pub data_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    pub logs: Arc<Mutex<Vec<String>>>,
    /// Sends [`TEST_ADMIN_KEY`] (or the test's own bootstrap key) on every request.
    pub client: reqwest::Client,
    /// The admin key `client` sends, if any.
    pub admin_key: Option<String>,
}

impl TestServer {
    /// `hbi serve` on a fresh data directory, with extra environment settings. The embedded
    /// shape is the default; `("REDIS_URL", url)` or `("DATABASE_URL", url)` in `env` select a
    /// server (they are applied after the inherited ones are removed).
    pub fn start(env: &[(&str, &str)]) -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path().to_path_buf();
        let mut server = Self::start_in(&dir, env);
        server._temp = Some(temp);
        server
    }

    /// `hbi serve` on an existing data directory (to restart on the same state).
    pub fn start_in(data_dir: &Path, env: &[(&str, &str)]) -> Self {
        Self::spawn(Role::Serve, data_dir, env)
    }

    /// `hbi serve`, `hbi api` or `hbi worker` on `data_dir` (its scratch space; in the
    /// production shape nothing else lives there). A worker's `base` is its health endpoint.
    pub fn spawn(role: Role, data_dir: &Path, env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(hbi_binary());
        let worker_bind = format!("127.0.0.1:{}", free_port());
        let bind = match role {
            Role::Worker => worker_bind.as_str(),
            Role::Serve | Role::Api => "127.0.0.1:0",
        };
        command
            .args([role.command(), "--bind", bind, "--data-dir"])
            .arg(data_dir)
            .env("HBI__LOG__FORMAT", "json")
            .env("HBI__LOG__LEVEL", "info")
            // Embedding every chunk of every test book would dominate the suite's time: the
            // tests of semantic search turn the model on themselves.
            .env("HBI__EMBEDDINGS__PROVIDER", "none")
            .env("HBI_BOOTSTRAP_API_KEY", TEST_ADMIN_KEY)
            // Tests poll jobs several times a second: only the rate-limit tests set limits.
            .env("HBI__RATE_LIMIT__REQUESTS_PER_MINUTE", "0")
            .env("HBI__RATE_LIMIT__UPLOADS_PER_MINUTE", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // Backend choices come from the test alone, never from the caller's environment.
        for key in BACKEND_VARIABLES {
            command.env_remove(key);
        }
        // Set after the removals above: for one key, the last call wins.
        for (key, value) in env {
            command.env(key, value);
        }
        let admin_key = env
            .iter()
            .rev()
            .find(|(key, _)| *key == "HBI_BOOTSTRAP_API_KEY")
            .map_or(TEST_ADMIN_KEY, |(_, value)| *value);
        let admin_key = (!admin_key.is_empty()).then(|| admin_key.to_owned());
        let mut child = command.spawn().expect("start hbi");
        let stdout = child.stdout.take().expect("stdout");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (address_tx, address_rx) = std::sync::mpsc::channel();
        {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Ok(event) = serde_json::from_str::<Value>(&line) {
                        if event["message"] == "listening"
                            && let Some(address) = event["address"].as_str()
                        {
                            let _ = address_tx.send(address.to_owned());
                        } else if role == Role::Worker && event["message"] == "worker started" {
                            let _ = address_tx.send(String::new());
                        }
                    }
                    logs.lock().expect("log lock").push(line);
                }
            });
        }
        let address = match address_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(_) if role == Role::Worker => {
                // The health server starts beside the worker loop: wait until it listens.
                let deadline = Instant::now() + Duration::from_secs(30);
                while std::net::TcpStream::connect(&worker_bind).is_err() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(50));
                }
                worker_bind
            }
            Ok(address) => address,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "hbi {} did not start; logs:\n{}",
                    role.command(),
                    logs.lock().expect("log lock").join("\n")
                );
            }
        };
        Self {
            child,
            base: format!("http://{address}"),
            data_dir: data_dir.to_path_buf(),
            _temp: None,
            logs,
            client: admin_key.as_deref().map_or_else(client_without_key, client_with_key),
            admin_key,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGKILL: no graceful shutdown, as when a machine dies.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for the process to exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        self.child.wait().expect("wait for hbi")
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let response = self.client.get(self.url(path)).send().await.expect("GET");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A new API key of `scope` (`read`, `write`, `admin`), made with the admin key.
    pub async fn make_key(&self, name: &str, scope: &str) -> String {
        let response = self
            .client
            .post(self.url("/keys"))
            .json(&serde_json::json!({"name": name, "scope": scope}))
            .send()
            .await
            .expect("POST /keys");
        assert_eq!(response.status().as_u16(), 201);
        let key: Value = response.json().await.expect("key");
        key["key"].as_str().expect("the key").to_owned()
    }

    pub async fn create_book(&self, title: &str) -> String {
        let response = self
            .client
            .post(self.url("/books/"))
            .json(&serde_json::json!({"title": title, "author": "test"}))
            .send()
            .await
            .expect("create book");
        assert_eq!(response.status().as_u16(), 201, "create book");
        let book: Value = response.json().await.expect("book json");
        book["id"].as_str().expect("book id").to_owned()
    }

    pub async fn upload(&self, book_id: &str, bytes: Vec<u8>, file_name: &str) -> (u16, Value) {
        self.upload_to(&format!("/books/{book_id}/upload"), bytes, file_name)
            .await
    }

    pub async fn upload_to(&self, path: &str, bytes: Vec<u8>, file_name: &str) -> (u16, Value) {
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name(file_name.to_owned())
            .mime_str("application/pdf")
            .expect("mime");
        let form = reqwest::multipart::Form::new().part("file", part);
        let response = self
            .client
            .post(self.url(path))
            .multipart(form)
            .send()
            .await
            .expect("upload");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// What `GET /metrics` answers, in the Prometheus text format.
    pub async fn metrics_text(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text")
    }

    /// A corpus book created as `title`, uploaded and processed: its id, once its job has
    /// succeeded.
    pub async fn ingest_corpus_book(&self, book: &str, title: &str) -> String {
        let book_id = self.create_book(title).await;
        let pdf = std::fs::read(corpus_pdf(book)).expect("corpus pdf");
        let (status, accepted) = self.upload(&book_id, pdf, "book.pdf").await;
        assert_eq!(status, 202, "upload: {accepted}");
        let job = self
            .wait_for_job(accepted["job_id"].as_str().expect("job id"), Duration::from_secs(300))
            .await;
        assert_eq!(job["state"], "succeeded", "{job}");
        book_id
    }

    /// Polls GET /jobs/{id} until the job reaches a final state or `timeout` passes.
    pub async fn wait_for_job(&self, job_id: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let (status, job) = self.get_json(&format!("/jobs/{job_id}")).await;
            assert_eq!(status, 200, "GET /jobs/{job_id}: {job}");
            if matches!(job["state"].as_str(), Some("succeeded" | "dead" | "cancelled")) {
                return job;
            }
            if Instant::now() > deadline {
                panic!("job {job_id} did not finish within {timeout:?}: {job}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Reads `GET /jobs/{id}/events` (sending `Last-Event-ID` when given) with
    /// eventsource-stream's parser, until the server closes it, `take` events came, or
    /// `timeout` passed.
    pub async fn job_events(
        &self,
        job_id: &str,
        last_event_id: Option<&str>,
        take: Option<usize>,
        timeout: Duration,
    ) -> JobEvents {
        use eventsource_stream::Eventsource;
        use futures::StreamExt;
        let mut request = self.client.get(self.url(&format!("/jobs/{job_id}/events")));
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.expect("GET events");
        assert_eq!(response.status().as_u16(), 200, "GET /jobs/{job_id}/events");
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(
            content_type.starts_with("text/event-stream"),
            "content type {content_type}"
        );
        let bytes = futures::stream::unfold(response, |mut response| async move {
            match response.chunk().await {
                Ok(Some(chunk)) => Some((Ok::<_, reqwest::Error>(chunk), response)),
                Ok(None) => None,
                Err(err) => Some((Err(err), response)),
            }
        });
        let mut stream = Box::pin(bytes.eventsource());
        let mut events = Vec::new();
        let deadline = tokio::time::Instant::now() + timeout;
        let closed = loop {
            if take.is_some_and(|n| events.len() >= n) {
                break false;
            }
            match tokio::time::timeout_at(deadline, stream.next()).await {
                Err(_) => break false,
                Ok(None) => break true,
                Ok(Some(event)) => {
                    let event = event.expect("a well-formed event");
                    events.push(SseEvent {
                        id: event.id,
                        event: event.event,
                        data: serde_json::from_str(&event.data).expect("event data is JSON"),
                    });
                }
            }
        };
        JobEvents { events, closed }
    }

    pub fn log_lines(&self) -> Vec<String> {
        self.logs.lock().expect("log lock").clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The scorer's title normalisation: NFKC aside, whitespace collapsed and trailing
/// punctuation dropped, so titles compare as the ground truth is scored.
/// One Server-Sent Event as a client reads it.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: String,
    pub event: String,
    pub data: Value,
}

/// What a client read from a job's event stream.
#[derive(Debug)]
pub struct JobEvents {
    pub events: Vec<SseEvent>,
    /// Whether the server ended the stream (rather than the reader stopping).
    pub closed: bool,
}

pub fn normalise_title(title: &str) -> String {
    let collapsed = title.split_whitespace().collect::<Vec<_>>().join(" ");
    collapsed.trim_end_matches(['.', ',', ';', ':']).trim().to_owned()
}
