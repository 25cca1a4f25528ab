//! Typed configuration, read once at start: `config/default.toml` (or the built-in copy of it),
//! an optional `config/local.toml`, then `HBI__SECTION__KEY` environment variables and the
//! conventional `DATABASE_URL` / `REDIS_URL`. Validation names the offending key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The secret type of the settings, for the crates that read them.
pub use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::blank::blank_is_none;

/// The built-in defaults; `config/default.toml` in the repository is the same file.
const DEFAULT_TOML: &str = include_str!("../../../config/default.toml");

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub server: ServerSettings,
    pub storage: StorageSettings,
    pub database: DatabaseSettings,
    pub queue: QueueSettings,
    pub blobs: BlobSettings,
    pub graph: GraphSettings,
    pub worker: WorkerSettings,
    pub limits: LimitSettings,
    pub chunking: crate::chunking::ChunkSizes,
    pub llm: LlmSettings,
    pub vectors: VectorSettings,
    pub log: LogSettings,
    pub telemetry: TelemetrySettings,
    #[serde(default)]
    pub embeddings: crate::embeddings::EmbeddingSettings,
    pub auth: AuthSettings,
    pub rate_limit: RateLimitSettings,
    pub reranker: RerankerSettings,
    pub webhooks: WebhookSettings,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServerSettings {
    /// Where `hbi serve` / `hbi api` listen.
    pub bind: SocketAddr,
    /// Where `hbi worker` serves /health and /metrics.
    pub worker_bind: SocketAddr,
    /// Web origins (`https://app.example.com`) whose pages may call the API from a browser;
    /// `*` for any. Empty: none but the API's own (Swagger UI, ReDoc).
    #[serde(default)]
    pub cors_origins: Vec<String>,
    /// How often a job's event stream (`GET /jobs/{id}/events`) looks at the job's row.
    pub events_poll_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StorageSettings {
    /// Root of everything the embedded shape keeps on disk.
    pub data_dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    /// Absent (or blank): a SQLite file `hbi.db` under `storage.data_dir`. A secret: a
    /// PostgreSQL URL carries its password.
    #[serde(default, deserialize_with = "blank_is_none")]
    pub url: Option<SecretString>,
    pub max_connections: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct QueueSettings {
    /// Absent (or blank): the durable SQLite queue `queue.db` under `storage.data_dir`. A
    /// secret: a Redis URL may carry a password.
    #[serde(default, deserialize_with = "blank_is_none")]
    pub redis_url: Option<SecretString>,
    pub name: String,
    pub poll_interval_ms: u64,
    /// How often a worker proves it is alive; a job whose worker missed two beats is re-delivered.
    pub heartbeat_secs: u64,
    /// How often the outbox relay looks for committed jobs not yet on the queue.
    pub relay_interval_ms: u64,
}

/// Where original files go. Without `s3_endpoint` they stay under `<data_dir>/blobs`.
#[derive(Debug, Clone, Deserialize)]
pub struct BlobSettings {
    /// `host:port` of an S3-compatible server (MinIO, AWS, s3s-fs); `MINIO_ENDPOINT`.
    #[serde(default, deserialize_with = "blank_is_none")]
    pub s3_endpoint: Option<String>,
    /// `MINIO_ACCESS_KEY`.
    #[serde(default)]
    pub s3_access_key: String,
    /// `MINIO_SECRET_KEY`.
    #[serde(default, deserialize_with = "blank_is_none")]
    pub s3_secret_key: Option<SecretString>,
    /// https when true; `MINIO_SECURE`.
    #[serde(default)]
    pub s3_secure: bool,
    /// Created when missing; `MINIO_BUCKET_NAME`.
    pub s3_bucket: String,
    pub s3_region: String,
}

/// Where the book graph goes. Neither URL set: SQL tables in the metadata database.
#[derive(Debug, Clone, Deserialize)]
pub struct GraphSettings {
    /// `bolt://host:7687`; `NEO4J_URI`.
    #[serde(default, deserialize_with = "blank_is_none")]
    pub neo4j_uri: Option<String>,
    /// `NEO4J_USER`.
    #[serde(default)]
    pub neo4j_user: String,
    /// `NEO4J_PASSWORD`.
    #[serde(default, deserialize_with = "blank_is_none")]
    pub neo4j_password: Option<SecretString>,
    /// `falkor://host:6379` or `redis://host:6379`; `FALKORDB_URL`. A secret, as a Redis URL.
    #[serde(default, deserialize_with = "blank_is_none")]
    pub falkordb_url: Option<SecretString>,
    /// The FalkorDB graph (key) name.
    pub falkordb_graph: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WorkerSettings {
    pub concurrency: usize,
    pub max_attempts: u32,
    /// First retry delay; each further attempt doubles it.
    pub retry_base_delay_ms: u64,
    /// Upper bound for one extraction run; the extractor child is killed past it...
    pub stage_timeout_secs: f64,
    /// ...raised by this much for each page OCR recognises (a scan takes seconds a page).
    pub ocr_page_timeout_secs: f64,
    /// Address-space limit of the extractor child process.
    pub extractor_memory_mb: u64,
    /// The `hbi` executable that runs `hbi extract`; absent: this very executable.
    #[serde(default, deserialize_with = "blank_is_none")]
    pub extractor_path: Option<PathBuf>,
    /// After SIGTERM, how long in-flight jobs may run on before they are handed back (their
    /// lease then runs out and another worker takes them over).
    pub shutdown_grace_secs: f64,
    /// Chunks to embed in one part of a large book's job: a book with more than this many
    /// to embed is cut into parts that every worker takes a share of. 0: never cut.
    pub part_chunks: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LimitSettings {
    pub max_upload_mb: u64,
    pub max_pages: usize,
}

/// The language model POST /query asks: any server of the OpenAI chat-completions API.
#[derive(Debug, Clone, Deserialize)]
pub struct LlmSettings {
    /// Absent: no language model, POST /query answers 503. Ends in `/v1`, as with the OpenAI
    /// SDKs: `https://api.openai.com/v1`, `http://localhost:11434/v1` (Ollama); `OPENAI_BASE_URL`.
    /// An API key without a base URL means `https://api.openai.com/v1`.
    #[serde(default, deserialize_with = "blank_is_none")]
    pub base_url: Option<String>,
    /// Sent as a bearer token when set; `OPENAI_API_KEY`.
    #[serde(default, deserialize_with = "blank_is_none")]
    pub api_key: Option<SecretString>,
    /// `LLM_MODEL`.
    pub model: String,
    /// Deadline of one call, response included.
    pub timeout_secs: f64,
}

impl LlmSettings {
    pub fn is_configured(&self) -> bool {
        self.base_url.is_some()
    }
}

/// The optional reranker of search and questions (`crate::rerank`): a cross-encoder behind
/// text-embeddings-inference's `POST /rerank`.
#[derive(Debug, Clone, Deserialize)]
pub struct RerankerSettings {
    /// Absent: no reranking. The server's base URL (`http://localhost:8080`); `/rerank` is
    /// appended.
    #[serde(default, deserialize_with = "blank_is_none")]
    pub url: Option<String>,
    /// Sent as a bearer token when set.
    #[serde(default, deserialize_with = "blank_is_none")]
    pub api_key: Option<SecretString>,
    /// The model's name, for logs (the server serves one model).
    pub model: String,
    /// Deadline of one request, response included.
    pub timeout_secs: f64,
    /// Texts in one request (TEI's `--max-client-batch-size`).
    pub max_batch: usize,
}

/// Webhooks (`crate::webhooks`): signed deliveries of job and book events to registered URLs.
#[derive(Debug, Clone, Deserialize)]
pub struct WebhookSettings {
    /// The master keys that seal the endpoints' signing secrets (AES-256-GCM): `id:base64`
    /// of 32 random bytes, comma-separated, the first sealing new secrets and every one
    /// opening what it sealed (rotation: put the new key first, run `hbi rekey-webhooks`,
    /// then drop the old). Absent: webhooks cannot be registered.
    #[serde(default, deserialize_with = "blank_is_none")]
    pub master_keys: Option<SecretString>,
    /// Deliveries to private, loopback and link-local addresses (off: an endpoint is a
    /// public server; tests and a private network turn it on).
    pub allow_private_targets: bool,
    /// How often the sender looks for events and due deliveries.
    pub poll_ms: u64,
    /// The first retry's delay; later ones follow Standard Webhooks' schedule scaled to it
    /// (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h at the default), then the delivery fails.
    pub first_retry_ms: u64,
    /// Deadline of one delivery attempt.
    pub timeout_secs: f64,
}

/// The OpenAI API, for an API key given without a base URL.
pub const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";

/// Chunk embeddings, stored in the metadata database (sqlite-vec or pgvector).
#[derive(Debug, Clone, Deserialize)]
pub struct VectorSettings {
    /// Numbers per embedding, the embedding model's: 384 for all-MiniLM-L6-v2. Each dimension
    /// has a table of its own (`chunk_vectors_384`).
    pub dimensions: usize,
    /// Candidates an HNSW search keeps (pgvector's `hnsw.ef_search`, and the `ef` of
    /// sqlite-vec's graph; 1 to 1000; at least k). Higher finds more of the true nearest
    /// neighbours, slower.
    pub hnsw_ef_search: usize,
    /// sqlite-vec only: from this many vectors of a model, library-wide searches go through an
    /// HNSW graph kept in memory (built in the background, about 0.9 KB a vector of 384)
    /// instead of an exact scan. Searches within one book stay exact.
    pub approximate_from: usize,
}

/// Who may call the API (`crate::access`).
#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    /// When false, every endpoint is open: for local use only, so it is refused unless
    /// `server.bind` is a loopback address.
    pub enabled: bool,
    /// An admin key accepted by every replica without being stored; `HBI_BOOTSTRAP_API_KEY`.
    #[serde(default, deserialize_with = "blank_is_none")]
    pub bootstrap_api_key: Option<SecretString>,
    /// Days an audit log entry is kept (at least 1).
    pub audit_retention_days: u32,
}

/// The least length of `HBI_BOOTSTRAP_API_KEY`: anything shorter is guessable.
pub const MIN_BOOTSTRAP_KEY_CHARS: usize = 16;

/// Requests allowed per client (an API key, or an IP address without one) and minute.
#[derive(Debug, Clone, Deserialize)]
pub struct RateLimitSettings {
    /// Every request but health, metrics and the API documents; 0: no limit.
    pub requests_per_minute: u32,
    /// Uploads (`POST /books/{id}/upload`), counted besides `requests_per_minute`; 0: no
    /// separate limit.
    pub uploads_per_minute: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    /// `json` (default, for machines) or `pretty` (for people at a terminal).
    pub format: LogFormat,
    /// A tracing filter such as `info` or `hbi_worker=debug,info`.
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

/// Where logs and traces go besides stdout. Every target is off while its address is absent,
/// and then costs nothing.
#[derive(Debug, Clone, Deserialize)]
pub struct TelemetrySettings {
    /// An OTLP/HTTP collector (`OTEL_EXPORTER_OTLP_ENDPOINT`, e.g. `http://collector:4318`);
    /// spans go to `<endpoint>/v1/traces`.
    #[serde(default, deserialize_with = "blank_is_none")]
    pub otlp_endpoint: Option<String>,
    /// The full traces URL (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), used as given; wins over
    /// `otlp_endpoint`.
    #[serde(default, deserialize_with = "blank_is_none")]
    pub otlp_traces_endpoint: Option<String>,
    /// `service.name` of the spans and the `service` label of the logs (`OTEL_SERVICE_NAME`).
    /// Absent: `hbi-api`, `hbi-worker` or `hbi` by command.
    #[serde(default, deserialize_with = "blank_is_none")]
    pub service_name: Option<String>,
    /// A Loki server (`LOKI_URL`, e.g. `http://loki:3100`) to push the log lines to.
    #[serde(default, deserialize_with = "blank_is_none")]
    pub loki_url: Option<String>,
}

impl TelemetrySettings {
    /// Where spans are sent, or `None` when trace export is off.
    pub fn traces_url(&self) -> Option<String> {
        if let Some(exact) = &self.otlp_traces_endpoint {
            return Some(exact.clone());
        }
        let base = self.otlp_endpoint.as_deref()?.trim_end_matches('/');
        Some(format!("{base}/v1/traces"))
    }

    /// The Loki server, or `None` when log shipping is off.
    pub fn loki(&self) -> Option<&str> {
        self.loki_url.as_deref()
    }

    /// The configured service name, else `default`.
    pub fn service_or<'a>(&'a self, default: &'a str) -> &'a str {
        self.service_name.as_deref().unwrap_or(default)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration key `{key}`: {problem}")]
    Invalid { key: &'static str, problem: String },
}

/// Command-line overrides that win over every other layer.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub bind: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
}

impl Settings {
    /// Loads the layers from `config_dir` (default `./config`) and the environment.
    pub fn load(config_dir: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        let dir = config_dir
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("config"));
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(DEFAULT_TOML, config::FileFormat::Toml))
            .add_source(config::File::from(dir.join("default.toml")).required(false))
            .add_source(config::File::from(dir.join("local.toml")).required(false))
            .add_source(
                config::Environment::with_prefix("HBI")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true)
                    // HBI__SERVER__CORS_ORIGINS=https://a.example,https://b.example
                    .list_separator(",")
                    .with_list_parse_key("server.cors_origins"),
            );
        // The conventional variables of the original HBI and of most hosting platforms.
        if let Some(url) = non_empty_env("DATABASE_URL") {
            builder = builder.set_override("database.url", url)?;
        }
        if let Some(url) = non_empty_env("REDIS_URL") {
            builder = builder.set_override("queue.redis_url", url)?;
        }
        // The original HBI's names for S3 (MinIO) and the graph.
        for (variable, key) in [
            ("MINIO_ENDPOINT", "blobs.s3_endpoint"),
            ("MINIO_ACCESS_KEY", "blobs.s3_access_key"),
            ("MINIO_SECRET_KEY", "blobs.s3_secret_key"),
            ("MINIO_SECURE", "blobs.s3_secure"),
            ("MINIO_BUCKET_NAME", "blobs.s3_bucket"),
            ("NEO4J_URI", "graph.neo4j_uri"),
            ("NEO4J_USER", "graph.neo4j_user"),
            ("NEO4J_PASSWORD", "graph.neo4j_password"),
            ("FALKORDB_URL", "graph.falkordb_url"),
            ("MAX_CONCURRENT_JOBS", "worker.concurrency"),
            ("OPENAI_API_KEY", "embeddings.openai_api_key"),
            // The OpenAI SDKs' names, which Ollama and vLLM clients use as well.
            ("OPENAI_BASE_URL", "llm.base_url"),
            ("OPENAI_API_KEY", "llm.api_key"),
            ("LLM_MODEL", "llm.model"),
            // OpenTelemetry's own names, which every collector's documentation uses.
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "telemetry.otlp_endpoint"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "telemetry.otlp_traces_endpoint"),
            ("OTEL_SERVICE_NAME", "telemetry.service_name"),
            ("LOKI_URL", "telemetry.loki_url"),
            ("HBI_BOOTSTRAP_API_KEY", "auth.bootstrap_api_key"),
        ] {
            if let Some(value) = non_empty_env(variable) {
                builder = builder.set_override(key, value)?;
            }
        }
        if let Some(bind) = overrides.bind {
            builder = builder.set_override("server.bind", bind.to_string())?;
            builder = builder.set_override("server.worker_bind", bind.to_string())?;
        }
        if let Some(dir) = &overrides.data_dir {
            builder = builder.set_override("storage.data_dir", dir.to_string_lossy().into_owned())?;
        }
        let mut settings: Settings = builder.build()?.try_deserialize()?;
        settings.server.cors_origins = settings
            .server
            .cors_origins
            .iter()
            .map(|origin| origin.trim().trim_end_matches('/').to_owned())
            .filter(|origin| !origin.is_empty())
            .collect();
        if settings.llm.base_url.is_none() && settings.llm.api_key.is_some() {
            settings.llm.base_url = Some(OPENAI_BASE_URL.to_owned());
        }
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, problem: &str| {
            Err(ConfigError::Invalid {
                key,
                problem: problem.to_owned(),
            })
        };
        if self.storage.data_dir.as_os_str().is_empty() {
            return invalid("storage.data_dir", "must not be empty");
        }
        if let Some(url) = &self.database.url
            && !(url.expose_secret().starts_with("sqlite:") || url.expose_secret().starts_with("postgres"))
        {
            return invalid("database.url", "must start with sqlite: or postgres://");
        }
        if self.database.max_connections == 0 {
            return invalid("database.max_connections", "must be at least 1");
        }
        if self.queue.name.trim().is_empty() {
            return invalid("queue.name", "must not be empty");
        }
        if self.webhooks.poll_ms == 0 || self.webhooks.first_retry_ms == 0 {
            return invalid("webhooks.poll_ms", "and webhooks.first_retry_ms must be at least 1");
        }
        if !(self.webhooks.timeout_secs > 0.0 && self.webhooks.timeout_secs <= 300.0) {
            return invalid("webhooks.timeout_secs", "must be above 0 and at most 300");
        }
        if let Some(keys) = &self.webhooks.master_keys
            && let Err(err) = crate::webhooks::KeyRing::parse(keys.expose_secret())
        {
            return invalid("webhooks.master_keys", &err.to_string());
        }
        if self.reranker.max_batch == 0 {
            return invalid("reranker.max_batch", "must be at least 1");
        }
        if !(self.reranker.timeout_secs > 0.0 && self.reranker.timeout_secs <= 600.0) {
            return invalid("reranker.timeout_secs", "must be above 0 and at most 600");
        }
        if self.server.events_poll_ms == 0 {
            return invalid("server.events_poll_ms", "must be at least 1");
        }
        if self.queue.poll_interval_ms == 0 {
            return invalid("queue.poll_interval_ms", "must be at least 1");
        }
        if self.queue.heartbeat_secs == 0 {
            return invalid("queue.heartbeat_secs", "must be at least 1");
        }
        if let Some(endpoint) = &self.blobs.s3_endpoint {
            if endpoint.contains("://") {
                return invalid(
                    "blobs.s3_endpoint",
                    "is host:port, without a scheme (blobs.s3_secure picks https)",
                );
            }
            if self.blobs.s3_access_key.trim().is_empty() || self.blobs.s3_secret_key.is_none() {
                return invalid("blobs.s3_access_key", "S3 needs an access key and a secret key");
            }
            if self.blobs.s3_bucket.trim().is_empty() {
                return invalid("blobs.s3_bucket", "must not be empty");
            }
        }
        if self.graph.neo4j_uri.is_some() && self.graph.falkordb_url.is_some() {
            return invalid("graph.neo4j_uri", "set either NEO4J_URI or FALKORDB_URL, not both");
        }
        if self.worker.concurrency == 0 || self.worker.concurrency > 256 {
            return invalid("worker.concurrency", "must be between 1 and 256");
        }
        if self.worker.max_attempts == 0 || self.worker.max_attempts > 100 {
            return invalid("worker.max_attempts", "must be between 1 and 100");
        }
        if !(self.worker.stage_timeout_secs > 0.0 && self.worker.stage_timeout_secs <= 86_400.0) {
            return invalid("worker.stage_timeout_secs", "must be above 0 and at most 86400");
        }
        if !(self.worker.ocr_page_timeout_secs >= 0.0 && self.worker.ocr_page_timeout_secs <= 3_600.0) {
            return invalid("worker.ocr_page_timeout_secs", "must be between 0 and 3600");
        }
        if !(self.worker.shutdown_grace_secs >= 0.0 && self.worker.shutdown_grace_secs <= 3_600.0) {
            return invalid("worker.shutdown_grace_secs", "must be between 0 and 3600");
        }
        if self.worker.part_chunks > 1_000_000 {
            return invalid(
                "worker.part_chunks",
                "must be at most 1000000 (0: never cut a book into parts)",
            );
        }
        if self.worker.extractor_memory_mb < 64 {
            return invalid("worker.extractor_memory_mb", "must be at least 64");
        }
        if self.limits.max_upload_mb == 0 {
            return invalid("limits.max_upload_mb", "must be at least 1");
        }
        if self.chunking.words < 16 || self.chunking.words > 2_000 {
            return invalid("chunking.words", "must be between 16 and 2000");
        }
        if self.chunking.overlap * 2 > self.chunking.words {
            return invalid("chunking.overlap", "must be at most half of chunking.words");
        }
        if self.vectors.dimensions == 0 || self.vectors.dimensions > crate::vectors::MAX_DIMENSIONS {
            return invalid("vectors.dimensions", "must be between 1 and 8192");
        }
        if self.vectors.hnsw_ef_search == 0 || self.vectors.hnsw_ef_search > crate::vectors::MAX_K {
            return invalid("vectors.hnsw_ef_search", "must be between 1 and 1000");
        }
        if self.limits.max_pages == 0 {
            return invalid("limits.max_pages", "must be at least 1");
        }
        if let Some(llm_url) = &self.llm.base_url
            && !(llm_url.starts_with("http://") || llm_url.starts_with("https://"))
        {
            return invalid(
                "llm.base_url",
                "must start with http:// or https:// (or be absent: no LLM)",
            );
        }
        if self.llm.is_configured() && self.llm.model.trim().is_empty() {
            return invalid("llm.model", "must name a model when llm.base_url is set");
        }
        if !(self.llm.timeout_secs > 0.0 && self.llm.timeout_secs <= 3_600.0) {
            return invalid("llm.timeout_secs", "must be above 0 and at most 3600");
        }
        for (key, url) in [
            ("telemetry.otlp_endpoint", &self.telemetry.otlp_endpoint),
            ("telemetry.otlp_traces_endpoint", &self.telemetry.otlp_traces_endpoint),
            ("telemetry.loki_url", &self.telemetry.loki_url),
        ] {
            if let Some(url) = url
                && !(url.starts_with("http://") || url.starts_with("https://"))
            {
                return invalid(key, "must be an http:// or https:// URL");
            }
        }
        if let Some((key, problem)) = self.embeddings.problem() {
            return invalid(key, problem);
        }
        self.validate_access()
    }

    fn validate_access(&self) -> Result<(), ConfigError> {
        let invalid = |key, problem: String| Err(ConfigError::Invalid { key, problem });
        if !self.auth.enabled && !self.server.bind.ip().is_loopback() {
            return invalid(
                "auth.enabled",
                format!(
                    "may be false only for local use, with server.bind on a loopback address (not {})",
                    self.server.bind
                ),
            );
        }
        let bootstrap = self
            .auth
            .bootstrap_api_key
            .as_ref()
            .map_or("", |key| key.expose_secret());
        if !bootstrap.is_empty()
            && (bootstrap.chars().count() < MIN_BOOTSTRAP_KEY_CHARS || !bootstrap.chars().all(|c| c.is_ascii_graphic()))
        {
            return invalid(
                "auth.bootstrap_api_key",
                format!(
                    "HBI_BOOTSTRAP_API_KEY must be at least {MIN_BOOTSTRAP_KEY_CHARS} printable ASCII characters without spaces"
                ),
            );
        }
        // config/prod.env.example's placeholder: a copied but unedited file must not start a
        // server whose admin key everybody knows.
        if bootstrap.starts_with("change-me") {
            return invalid(
                "auth.bootstrap_api_key",
                "HBI_BOOTSTRAP_API_KEY still holds the example's placeholder: set a random one (`openssl rand -hex 32`)"
                    .to_owned(),
            );
        }
        for origin in &self.server.cors_origins {
            if !is_web_origin(origin) {
                return invalid(
                    "server.cors_origins",
                    format!("`{origin}` is not an origin like https://app.example.com (scheme and host, no path) or *"),
                );
            }
        }
        Ok(())
    }

    /// The database URL in force: the configured one, or the embedded SQLite file.
    pub fn database_url(&self) -> SecretString {
        match &self.database.url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}?mode=rwc", self.storage.data_dir.join("hbi.db").display()).into(),
        }
    }

    pub fn blob_dir(&self) -> PathBuf {
        self.storage.data_dir.join("blobs")
    }

    pub fn queue_db_path(&self) -> PathBuf {
        self.storage.data_dir.join("queue.db")
    }

    pub fn max_upload_bytes(&self) -> u64 {
        self.limits.max_upload_mb.saturating_mul(1024 * 1024)
    }

    pub fn stage_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.worker.stage_timeout_secs)
    }

    /// When a published job nobody took is presumed to have lost its message: well past the
    /// queue's own recovery of a dead worker's messages (two missed heartbeats).
    pub fn stranded_after(&self) -> Duration {
        Duration::from_secs(self.queue.heartbeat_secs.saturating_mul(4).max(60))
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs_f64(self.worker.shutdown_grace_secs)
    }
}

/// `*`, or `http(s)://host[:port]` without a path: what a browser sends as `Origin`.
fn is_web_origin(origin: &str) -> bool {
    if origin == "*" {
        return true;
    }
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    matches!(scheme, "http" | "https")
        && !authority.is_empty()
        && authority.chars().all(|c| c.is_ascii_graphic())
        && !authority.contains(['/', '?', '#', '@', ' '])
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_embedded_shape() -> Result<(), ConfigError> {
        let settings = Settings::load(Some(Path::new("/nonexistent")), &Overrides::default())?;
        assert_eq!(settings.server.bind.to_string(), "127.0.0.1:8000");
        assert!(settings.database.url.is_none() || std::env::var("DATABASE_URL").is_ok());
        assert!(
            settings.database_url().expose_secret().starts_with("sqlite://") || std::env::var("DATABASE_URL").is_ok()
        );
        assert_eq!(settings.worker.max_attempts, 3);
        assert_eq!(
            settings.vectors.dimensions,
            crate::vectors::DEFAULT_EMBEDDING_DIMENSIONS
        );
        Ok(())
    }

    #[test]
    fn validation_names_the_bad_key() {
        let mut settings =
            Settings::load(Some(Path::new("/nonexistent")), &Overrides::default()).expect("defaults load");
        settings.worker.concurrency = 0;
        let error = settings
            .validate()
            .expect_err("zero concurrency is refused")
            .to_string();
        assert!(error.contains("worker.concurrency"), "{error}");
        settings.worker.concurrency = 1;
        settings.blobs.s3_endpoint = Some("http://minio:9000".to_owned());
        let error = settings.validate().expect_err("a scheme is refused").to_string();
        assert!(error.contains("blobs.s3_endpoint"), "{error}");
        settings.blobs.s3_endpoint = None;
        settings.llm.base_url = Some("localhost:11434/v1".to_owned());
        let error = settings.validate().expect_err("a scheme is needed").to_string();
        assert!(error.contains("llm.base_url"), "{error}");
        settings.llm.base_url = Some("http://localhost:11434/v1".to_owned());
        settings.llm.timeout_secs = 0.0;
        let error = settings.validate().expect_err("zero timeout").to_string();
        assert!(error.contains("llm.timeout_secs"), "{error}");
    }

    #[test]
    fn telemetry_targets_are_off_until_given_and_urls_are_checked() {
        let mut settings =
            Settings::load(Some(Path::new("/nonexistent")), &Overrides::default()).expect("defaults load");
        settings.telemetry = TelemetrySettings {
            otlp_endpoint: None,
            otlp_traces_endpoint: None,
            service_name: None,
            loki_url: None,
        };
        assert_eq!(settings.telemetry.traces_url(), None);
        assert_eq!(settings.telemetry.loki(), None);
        assert_eq!(settings.telemetry.service_or("hbi-worker"), "hbi-worker");
        settings.telemetry.otlp_endpoint = Some("http://collector:4318/".to_owned());
        assert_eq!(
            settings.telemetry.traces_url().as_deref(),
            Some("http://collector:4318/v1/traces")
        );
        // The signal's own URL is used as given.
        settings.telemetry.otlp_traces_endpoint = Some("https://cloud.example/api/public/otel/v1/traces".to_owned());
        assert_eq!(
            settings.telemetry.traces_url().as_deref(),
            Some("https://cloud.example/api/public/otel/v1/traces")
        );
        settings.telemetry.service_name = Some("books".to_owned());
        assert_eq!(settings.telemetry.service_or("hbi-worker"), "books");
        settings.validate().expect("valid telemetry settings");
        settings.telemetry.loki_url = Some("loki:3100".to_owned());
        let error = settings.validate().expect_err("a scheme is needed").to_string();
        assert!(error.contains("telemetry.loki_url"), "{error}");
    }

    #[test]
    fn access_settings_are_checked_and_the_bootstrap_key_hidden() {
        let mut settings =
            Settings::load(Some(Path::new("/nonexistent")), &Overrides::default()).expect("defaults load");
        assert!(settings.auth.enabled, "authentication is on by default");
        assert_eq!(settings.rate_limit.requests_per_minute, 100);
        settings.auth.enabled = false;
        assert!(settings.validate().is_ok(), "off is allowed on 127.0.0.1");
        settings.server.bind = "0.0.0.0:8000".parse().expect("address");
        let error = settings.validate().expect_err("off on every interface").to_string();
        assert!(error.contains("auth.enabled"), "{error}");
        settings.auth.enabled = true;
        assert!(settings.validate().is_ok());

        settings.auth.bootstrap_api_key = Some("short".into());
        let error = settings.validate().expect_err("too short").to_string();
        assert!(
            error.contains("HBI_BOOTSTRAP_API_KEY") && !error.contains("short\""),
            "{error}"
        );
        settings.auth.bootstrap_api_key = Some("change-me-to-a-long-random-key".into());
        let error = settings.validate().expect_err("the example's placeholder").to_string();
        assert!(error.contains("placeholder"), "{error}");
        settings.auth.bootstrap_api_key = Some("a-long-enough-bootstrap-key".into());
        assert!(settings.validate().is_ok());
        assert!(!format!("{settings:?}").contains("a-long-enough-bootstrap-key"));

        for good in ["https://app.example.com", "http://localhost:3000", "*"] {
            settings.server.cors_origins = vec![good.to_owned()];
            assert!(settings.validate().is_ok(), "{good}");
        }
        for bad in ["app.example.com", "https://app.example.com/path", "ftp://x", "https://"] {
            settings.server.cors_origins = vec![bad.to_owned()];
            let error = settings.validate().expect_err(bad).to_string();
            assert!(error.contains("server.cors_origins"), "{error}");
        }
    }

    #[test]
    fn too_many_dimensions_are_refused() {
        let mut settings =
            Settings::load(Some(Path::new("/nonexistent")), &Overrides::default()).expect("defaults load");
        settings.vectors.dimensions = 8193;
        let error = settings.validate().expect_err("too many dimensions").to_string();
        assert!(error.contains("vectors.dimensions"), "{error}");
    }

    /// Every secret the configuration holds, each set to a value of its own: none of them may
    /// appear in what `{:?}` prints of the settings (which a startup log or a panic may show).
    #[test]
    fn no_secret_is_in_debug_output() {
        let mut settings =
            Settings::load(Some(Path::new("/nonexistent")), &Overrides::default()).expect("defaults load");
        let secrets = [
            "postgres://hbi:pg-password-1@db/hbi",
            "redis://:redis-password-2@cache:6379",
            "s3-secret-key-3",
            "neo4j-password-4",
            "redis://:falkor-password-5@graph:6379",
            "sk-llm-key-6",
            "sk-embeddings-key-7",
            "bootstrap-key-8-long-enough",
        ];
        settings.database.url = Some(secrets[0].into());
        settings.queue.redis_url = Some(secrets[1].into());
        settings.blobs.s3_secret_key = Some(secrets[2].into());
        settings.graph.neo4j_password = Some(secrets[3].into());
        settings.graph.falkordb_url = Some(secrets[4].into());
        settings.llm.api_key = Some(secrets[5].into());
        settings.embeddings.openai_api_key = Some(secrets[6].into());
        settings.auth.bootstrap_api_key = Some(secrets[7].into());
        let printed = format!("{settings:?} {settings:#?}");
        for secret in secrets {
            assert!(!printed.contains(secret), "{secret} printed");
        }
        for part in ["pg-password", "redis-password", "falkor-password"] {
            assert!(!printed.contains(part), "{part} printed");
        }
        // What the code reads is still there.
        assert_eq!(settings.database_url().expose_secret(), secrets[0]);
    }

    /// A blank secret or address, from a file or an empty environment variable, is absent,
    /// not an empty value that each reader would have to compare with "".
    #[test]
    fn blank_values_in_a_config_file_are_absent() {
        let dir = tempfile::tempdir().expect("temporary folder");
        std::fs::write(
            dir.path().join("local.toml"),
            "[database]\nurl = \"  \"\n[llm]\nbase_url = \"\"\napi_key = \" \"\n\
             [auth]\nbootstrap_api_key = \"\"\n[graph]\nneo4j_uri = \"\"\nfalkordb_url = \"\"\n\
             [blobs]\ns3_endpoint = \"\"\n[telemetry]\nloki_url = \" \"\nservice_name = \"\"\n\
             [worker]\nextractor_path = \"\"\n",
        )
        .expect("write local.toml");
        let settings = Settings::load(Some(dir.path()), &Overrides::default()).expect("blank values load");
        if std::env::var("DATABASE_URL").is_err() {
            assert!(settings.database.url.is_none());
        }
        assert!(settings.llm.base_url.is_none() && settings.llm.api_key.is_none());
        assert!(!settings.llm.is_configured());
        assert!(settings.auth.bootstrap_api_key.is_none());
        assert!(settings.graph.neo4j_uri.is_none() && settings.graph.falkordb_url.is_none());
        assert!(settings.blobs.s3_endpoint.is_none());
        assert!(settings.telemetry.loki().is_none());
        assert_eq!(settings.telemetry.service_or("hbi"), "hbi");
        assert!(settings.worker.extractor_path.is_none());

        std::fs::write(
            dir.path().join("local.toml"),
            "[llm]\napi_key = \" sk-with-spaces \"\n[log]\nformat = \"pretty\"\n",
        )
        .expect("write local.toml");
        let settings = Settings::load(Some(dir.path()), &Overrides::default()).expect("a key loads");
        let key = settings.llm.api_key.as_ref().expect("the key is present");
        assert_eq!(key.expose_secret(), "sk-with-spaces");
        assert_eq!(settings.llm.base_url.as_deref(), Some(OPENAI_BASE_URL));
        assert_eq!(settings.log.format, LogFormat::Pretty);

        std::fs::write(dir.path().join("local.toml"), "[log]\nformat = \"xml\"\n").expect("write local.toml");
        let error = Settings::load(Some(dir.path()), &Overrides::default())
            .expect_err("an unknown log format")
            .to_string();
        assert!(error.contains("xml") || error.contains("format"), "{error}");
    }
}
