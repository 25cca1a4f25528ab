//! Typed configuration, read once at start: `config/default.toml` (or the built-in copy of it),
//! an optional `config/local.toml`, then `HBI__SECTION__KEY` environment variables and the
//! conventional `DATABASE_URL` / `REDIS_URL`. Validation names the offending key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

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
}

#[derive(Debug, Clone, Deserialize)]
pub struct StorageSettings {
    /// Root of everything the embedded shape keeps on disk.
    pub data_dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    /// Empty: a SQLite file `hbi.db` under `storage.data_dir`.
    #[serde(default)]
    pub url: String,
    pub max_connections: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct QueueSettings {
    /// Empty: the durable SQLite queue `queue.db` under `storage.data_dir`.
    #[serde(default)]
    pub redis_url: String,
    pub name: String,
    pub poll_interval_ms: u64,
    /// How often a worker proves it is alive; a job whose worker missed two beats is re-delivered.
    pub heartbeat_secs: u64,
    /// How often the outbox relay looks for committed jobs not yet on the queue.
    pub relay_interval_ms: u64,
}

/// Where original files go. An empty `s3_endpoint` keeps them under `<data_dir>/blobs`.
#[derive(Debug, Clone, Deserialize)]
pub struct BlobSettings {
    /// `host:port` of an S3-compatible server (MinIO, AWS, s3s-fs); `MINIO_ENDPOINT`.
    #[serde(default)]
    pub s3_endpoint: String,
    /// `MINIO_ACCESS_KEY`.
    #[serde(default)]
    pub s3_access_key: String,
    /// `MINIO_SECRET_KEY`.
    #[serde(default)]
    pub s3_secret_key: String,
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
    #[serde(default)]
    pub neo4j_uri: String,
    /// `NEO4J_USER`.
    #[serde(default)]
    pub neo4j_user: String,
    /// `NEO4J_PASSWORD`.
    #[serde(default)]
    pub neo4j_password: String,
    /// `falkor://host:6379` or `redis://host:6379`; `FALKORDB_URL`.
    #[serde(default)]
    pub falkordb_url: String,
    /// The FalkorDB graph (key) name.
    pub falkordb_graph: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WorkerSettings {
    pub concurrency: usize,
    pub max_attempts: u32,
    /// First retry delay; each further attempt doubles it.
    pub retry_base_delay_ms: u64,
    /// Upper bound for one extraction run; the extractor child is killed past it.
    pub stage_timeout_secs: f64,
    /// Address-space limit of the extractor child process.
    pub extractor_memory_mb: u64,
    /// The `hbi` executable that runs `hbi extract`; empty means this very executable.
    #[serde(default)]
    pub extractor_path: String,
    /// After SIGTERM, how long in-flight jobs may run on before they are handed back (their
    /// lease then runs out and another worker takes them over).
    pub shutdown_grace_secs: f64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LimitSettings {
    pub max_upload_mb: u64,
    pub max_pages: usize,
}

/// The language model POST /query asks: any server of the OpenAI chat-completions API.
#[derive(Clone, Deserialize)]
pub struct LlmSettings {
    /// Empty: no language model, POST /query answers 503. Ends in `/v1`, as with the OpenAI
    /// SDKs: `https://api.openai.com/v1`, `http://localhost:11434/v1` (Ollama); `OPENAI_BASE_URL`.
    /// An API key without a base URL means `https://api.openai.com/v1`.
    #[serde(default)]
    pub base_url: String,
    /// Sent as a bearer token when set; `OPENAI_API_KEY`.
    #[serde(default)]
    pub api_key: String,
    /// `LLM_MODEL`.
    pub model: String,
    /// Deadline of one call, response included.
    pub timeout_secs: f64,
}

impl LlmSettings {
    pub fn is_configured(&self) -> bool {
        !self.base_url.trim().is_empty()
    }
}

/// The API key never reaches a log.
impl std::fmt::Debug for LlmSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmSettings")
            .field("base_url", &self.base_url)
            .field("api_key", &if self.api_key.is_empty() { "" } else { "***" })
            .field("model", &self.model)
            .field("timeout_secs", &self.timeout_secs)
            .finish()
    }
}

/// The OpenAI API, for an API key given without a base URL.
pub const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";

/// Chunk embeddings, stored in the metadata database (sqlite-vec or pgvector).
#[derive(Debug, Clone, Deserialize)]
pub struct VectorSettings {
    /// Numbers per embedding, the embedding model's: 384 for all-MiniLM-L6-v2. Each dimension
    /// has a table of its own (`chunk_vectors_384`).
    pub dimensions: usize,
    /// pgvector only: candidates an HNSW search keeps (`hnsw.ef_search`, 1 to 1000; at least k).
    /// Higher finds more of the true nearest neighbours, slower.
    pub hnsw_ef_search: usize,
}

/// Who may call the API (`crate::access`).
#[derive(Clone, Deserialize)]
pub struct AuthSettings {
    /// When false, every endpoint is open: for local use only, so it is refused unless
    /// `server.bind` is a loopback address.
    pub enabled: bool,
    /// An admin key accepted by every replica without being stored; `HBI_BOOTSTRAP_API_KEY`.
    #[serde(default)]
    pub bootstrap_api_key: String,
}

/// The bootstrap key never reaches a log.
impl std::fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSettings")
            .field("enabled", &self.enabled)
            .field(
                "bootstrap_api_key",
                &if self.bootstrap_api_key.is_empty() { "" } else { "***" },
            )
            .finish()
    }
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
    pub format: String,
    /// A tracing filter such as `info` or `hbi_worker=debug,info`.
    pub level: String,
}

/// Where logs and traces go besides stdout. Every target is off while its address is empty, and
/// then costs nothing.
#[derive(Debug, Clone, Deserialize)]
pub struct TelemetrySettings {
    /// An OTLP/HTTP collector (`OTEL_EXPORTER_OTLP_ENDPOINT`, e.g. `http://collector:4318`);
    /// spans go to `<endpoint>/v1/traces`.
    #[serde(default)]
    pub otlp_endpoint: String,
    /// The full traces URL (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), used as given; wins over
    /// `otlp_endpoint`.
    #[serde(default)]
    pub otlp_traces_endpoint: String,
    /// `service.name` of the spans and the `service` label of the logs (`OTEL_SERVICE_NAME`).
    /// Empty: `hbi-api`, `hbi-worker` or `hbi` by command.
    #[serde(default)]
    pub service_name: String,
    /// A Loki server (`LOKI_URL`, e.g. `http://loki:3100`) to push the log lines to.
    #[serde(default)]
    pub loki_url: String,
}

impl TelemetrySettings {
    /// Where spans are sent, or `None` when trace export is off.
    pub fn traces_url(&self) -> Option<String> {
        let exact = self.otlp_traces_endpoint.trim();
        if !exact.is_empty() {
            return Some(exact.to_owned());
        }
        let base = self.otlp_endpoint.trim().trim_end_matches('/');
        (!base.is_empty()).then(|| format!("{base}/v1/traces"))
    }

    /// The Loki server, or `None` when log shipping is off.
    pub fn loki(&self) -> Option<&str> {
        let url = self.loki_url.trim();
        (!url.is_empty()).then_some(url)
    }

    /// The configured service name, else `default`.
    pub fn service_or<'a>(&'a self, default: &'a str) -> &'a str {
        let name = self.service_name.trim();
        if name.is_empty() { default } else { name }
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
        if settings.llm.base_url.trim().is_empty() && !settings.llm.api_key.trim().is_empty() {
            settings.llm.base_url = OPENAI_BASE_URL.to_owned();
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
        let url = &self.database.url;
        if !(url.is_empty() || url.starts_with("sqlite:") || url.starts_with("postgres")) {
            return invalid("database.url", "must start with sqlite: or postgres://");
        }
        if self.database.max_connections == 0 {
            return invalid("database.max_connections", "must be at least 1");
        }
        if self.queue.name.trim().is_empty() {
            return invalid("queue.name", "must not be empty");
        }
        if self.queue.poll_interval_ms == 0 {
            return invalid("queue.poll_interval_ms", "must be at least 1");
        }
        if self.queue.heartbeat_secs == 0 {
            return invalid("queue.heartbeat_secs", "must be at least 1");
        }
        if !self.blobs.s3_endpoint.is_empty() {
            if self.blobs.s3_endpoint.contains("://") {
                return invalid(
                    "blobs.s3_endpoint",
                    "is host:port, without a scheme (blobs.s3_secure picks https)",
                );
            }
            if self.blobs.s3_access_key.is_empty() || self.blobs.s3_secret_key.is_empty() {
                return invalid("blobs.s3_access_key", "S3 needs an access key and a secret key");
            }
            if self.blobs.s3_bucket.trim().is_empty() {
                return invalid("blobs.s3_bucket", "must not be empty");
            }
        }
        if !self.graph.neo4j_uri.is_empty() && !self.graph.falkordb_url.is_empty() {
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
        if !(self.worker.shutdown_grace_secs >= 0.0 && self.worker.shutdown_grace_secs <= 3_600.0) {
            return invalid("worker.shutdown_grace_secs", "must be between 0 and 3600");
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
        let llm_url = self.llm.base_url.trim();
        if !(llm_url.is_empty() || llm_url.starts_with("http://") || llm_url.starts_with("https://")) {
            return invalid(
                "llm.base_url",
                "must start with http:// or https:// (or be empty: no LLM)",
            );
        }
        if self.llm.is_configured() && self.llm.model.trim().is_empty() {
            return invalid("llm.model", "must name a model when llm.base_url is set");
        }
        if !(self.llm.timeout_secs > 0.0 && self.llm.timeout_secs <= 3_600.0) {
            return invalid("llm.timeout_secs", "must be above 0 and at most 3600");
        }
        if !matches!(self.log.format.as_str(), "json" | "pretty") {
            return invalid("log.format", "must be `json` or `pretty`");
        }
        for (key, url) in [
            ("telemetry.otlp_endpoint", &self.telemetry.otlp_endpoint),
            ("telemetry.otlp_traces_endpoint", &self.telemetry.otlp_traces_endpoint),
            ("telemetry.loki_url", &self.telemetry.loki_url),
        ] {
            let url = url.trim();
            if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
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
        let bootstrap = &self.auth.bootstrap_api_key;
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
    pub fn database_url(&self) -> String {
        if self.database.url.is_empty() {
            format!("sqlite://{}?mode=rwc", self.storage.data_dir.join("hbi.db").display())
        } else {
            self.database.url.clone()
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
        assert!(settings.database.url.is_empty() || std::env::var("DATABASE_URL").is_ok());
        assert!(settings.database_url().starts_with("sqlite://") || std::env::var("DATABASE_URL").is_ok());
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
        settings.blobs.s3_endpoint = "http://minio:9000".to_owned();
        let error = settings.validate().expect_err("a scheme is refused").to_string();
        assert!(error.contains("blobs.s3_endpoint"), "{error}");
        settings.blobs.s3_endpoint.clear();
        settings.llm.base_url = "localhost:11434/v1".to_owned();
        let error = settings.validate().expect_err("a scheme is needed").to_string();
        assert!(error.contains("llm.base_url"), "{error}");
        settings.llm.base_url = "http://localhost:11434/v1".to_owned();
        settings.llm.timeout_secs = 0.0;
        let error = settings.validate().expect_err("zero timeout").to_string();
        assert!(error.contains("llm.timeout_secs"), "{error}");
    }

    #[test]
    fn telemetry_targets_are_off_until_given_and_urls_are_checked() {
        let mut settings =
            Settings::load(Some(Path::new("/nonexistent")), &Overrides::default()).expect("defaults load");
        settings.telemetry = TelemetrySettings {
            otlp_endpoint: String::new(),
            otlp_traces_endpoint: String::new(),
            service_name: " ".to_owned(),
            loki_url: String::new(),
        };
        assert_eq!(settings.telemetry.traces_url(), None);
        assert_eq!(settings.telemetry.loki(), None);
        assert_eq!(settings.telemetry.service_or("hbi-worker"), "hbi-worker");
        settings.telemetry.otlp_endpoint = "http://collector:4318/".to_owned();
        assert_eq!(
            settings.telemetry.traces_url().as_deref(),
            Some("http://collector:4318/v1/traces")
        );
        // The signal's own URL is used as given.
        settings.telemetry.otlp_traces_endpoint = "https://cloud.example/api/public/otel/v1/traces".to_owned();
        assert_eq!(
            settings.telemetry.traces_url().as_deref(),
            Some("https://cloud.example/api/public/otel/v1/traces")
        );
        settings.telemetry.service_name = "books".to_owned();
        assert_eq!(settings.telemetry.service_or("hbi-worker"), "books");
        settings.validate().expect("valid telemetry settings");
        settings.telemetry.loki_url = "loki:3100".to_owned();
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

        settings.auth.bootstrap_api_key = "short".to_owned();
        let error = settings.validate().expect_err("too short").to_string();
        assert!(
            error.contains("HBI_BOOTSTRAP_API_KEY") && !error.contains("short\""),
            "{error}"
        );
        settings.auth.bootstrap_api_key = "change-me-to-a-long-random-key".to_owned();
        let error = settings.validate().expect_err("the example's placeholder").to_string();
        assert!(error.contains("placeholder"), "{error}");
        settings.auth.bootstrap_api_key = "a-long-enough-bootstrap-key".to_owned();
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
    fn the_api_key_is_not_in_debug_output() {
        let mut settings =
            Settings::load(Some(Path::new("/nonexistent")), &Overrides::default()).expect("defaults load");
        settings.llm.api_key = "sk-secret".to_owned();
        assert!(!format!("{settings:?}").contains("sk-secret"));
        settings.vectors.dimensions = 8193;
        let error = settings.validate().expect_err("too many dimensions").to_string();
        assert!(error.contains("vectors.dimensions"), "{error}");
    }
}
