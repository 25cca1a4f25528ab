//! `hbi`: one binary for every shape of HBI.
//!
//! - `hbi serve`: API and worker in one process (the embedded default)
//! - `hbi api` / `hbi worker`: the production shape, scaled separately
//! - `hbi migrate`: apply database migrations
//! - `hbi extract FILE --json`: offline extraction, no server, no database

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use hbi_api::{AppState, Application};
use hbi_shared::config::{ExposeSecret, Overrides};
use hbi_shared::domain::BookLanguages;
use hbi_shared::{Backends, Settings};
use hbi_worker::extractor::{self, ChildRequest};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "hbi", version, about = "HBI: Hybrid Book Index")]
struct Cli {
    /// Directory holding default.toml and local.toml.
    #[arg(long, global = true, env = "HBI_CONFIG_DIR")]
    config_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct ServeArgs {
    /// Listen address, e.g. 127.0.0.1:8000 (a worker serves /health there).
    #[arg(long)]
    bind: Option<SocketAddr>,
    /// Where the embedded database, queue and blobs live.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API and a worker in one process (embedded default).
    Serve(ServeArgs),
    /// Run the API only.
    Api(ServeArgs),
    /// Run a worker only.
    Worker(ServeArgs),
    /// Apply database migrations and exit.
    Migrate {
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Extract page labels, ToC and index from a PDF, offline.
    Extract(ExtractArgs),
    /// Draw one page of a PDF or DjVu as a PNG on stdout, or with `--words` print its words
    /// and their boxes as JSON (the API runs this as a child process for page images and for
    /// marking search hits on them).
    RenderPage {
        file: PathBuf,
        /// 1-based physical page.
        #[arg(long)]
        page: u32,
        /// Width in pixels.
        #[arg(long, default_value_t = 1000)]
        width: u32,
        /// The page's words with their boxes (fractions of the page) as JSON, instead of an image.
        #[arg(long)]
        words: bool,
        /// With `--words`: the book's languages for reading a page without a text layer (as
        /// `hbi extract --ocr-languages`); `none`: such a page has no words.
        #[arg(long, default_value = "none", value_parser = ocr_languages)]
        ocr_languages: OcrLanguages,
        /// Limit this process's address space (MB).
        #[arg(long)]
        memory_limit_mb: Option<u64>,
    },
    /// Seal every webhook signing secret again under the first of webhooks.master_keys (after
    /// a key rotation; then the old key can be dropped).
    RekeyWebhooks {
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Serve the library over MCP on stdin and stdout (for desktop clients), as the API key
    /// in HBI_API_KEY (its scope decides what the tools may do).
    Mcp {
        /// Where the embedded database, queue and blobs live.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
struct ExtractArgs {
    /// The book: a PDF, an EPUB or a DjVu document.
    file: PathBuf,
    /// Print the extraction as JSON (the scorer's format) instead of a summary.
    #[arg(long)]
    json: bool,
    /// Include each page's text in the JSON.
    #[arg(long)]
    pages: bool,
    /// Progress on stderr: `human` (default), `jsonl` (one object per page, for the worker) or `none`.
    #[arg(long, value_enum, default_value_t = ProgressMode::Human)]
    progress: ProgressMode,
    /// Limit this process's address space (MB), so a hostile file cannot exhaust the machine.
    #[arg(long)]
    memory_limit_mb: Option<u64>,
    /// Refuse books with more pages than this.
    #[arg(long, default_value_t = 20_000)]
    max_pages: usize,
    /// Refuse files larger than this (MB).
    #[arg(long, default_value_t = 1024)]
    max_file_mb: u64,
    /// The book's languages, for OCR of pages without a text layer: ISO 639 codes joined by
    /// `+` (`eng`, `de`, `eng+deu`); `none`: no OCR.
    #[arg(long, default_value = "eng", value_parser = ocr_languages)]
    ocr_languages: OcrLanguages,
}

/// `--ocr-languages`: Tesseract's names, or `None` for no OCR.
#[derive(Clone)]
struct OcrLanguages(Option<String>);

fn ocr_languages(raw: &str) -> Result<OcrLanguages, String> {
    if raw == "none" {
        return Ok(OcrLanguages(None));
    }
    raw.parse::<BookLanguages>()
        .map(|languages| OcrLanguages(Some(languages.to_string())))
}

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
enum ProgressMode {
    Human,
    Jsonl,
    None,
}

impl ExtractArgs {
    fn request(&self) -> ChildRequest {
        ChildRequest {
            file: self.file.clone(),
            json: self.json,
            pages: self.pages,
            progress: match self.progress {
                ProgressMode::Human => extractor::ProgressMode::Human,
                ProgressMode::Jsonl => extractor::ProgressMode::Jsonl,
                ProgressMode::None => extractor::ProgressMode::None,
            },
            memory_limit_mb: self.memory_limit_mb,
            max_pages: self.max_pages,
            max_file_mb: self.max_file_mb,
            ocr_languages: self.ocr_languages.0.clone(),
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Command::Extract(args) = &cli.command {
        // Offline and synchronous: no runtime, no configuration, no database.
        return hbi_worker::extractor::run_child(&args.request());
    }
    if let Command::RenderPage {
        file,
        page,
        width,
        words,
        ocr_languages,
        memory_limit_mb,
    } = &cli.command
    {
        let drawing = if *words {
            hbi_worker::extractor::Drawing::Words {
                ocr_languages: ocr_languages.0.clone(),
            }
        } else {
            hbi_worker::extractor::Drawing::Image { width: *width }
        };
        return hbi_worker::extractor::run_render_child(file, *page, drawing, *memory_limit_mb);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let overrides = match &cli.command {
        Command::Serve(args) | Command::Api(args) | Command::Worker(args) => Overrides {
            bind: args.bind,
            data_dir: args.data_dir.clone(),
        },
        Command::Migrate { data_dir } | Command::Mcp { data_dir } | Command::RekeyWebhooks { data_dir } => Overrides {
            bind: None,
            data_dir: data_dir.clone(),
        },
        Command::Extract(_) | Command::RenderPage { .. } => Overrides::default(),
    };
    let settings = Arc::new(Settings::load(cli.config_dir.as_deref(), &overrides)?);
    let default_service = match &cli.command {
        Command::Api(_) => "hbi-api",
        Command::Worker(_) => "hbi-worker",
        Command::Serve(_)
        | Command::Migrate { .. }
        | Command::Extract(_)
        | Command::RenderPage { .. }
        | Command::RekeyWebhooks { .. } => "hbi",
        Command::Mcp { .. } => "hbi-mcp",
    };
    // MCP's stdio transport owns stdout.
    let stream = match &cli.command {
        Command::Mcp { .. } => hbi_api::telemetry::LogStream::Stderr,
        _ => hbi_api::telemetry::LogStream::Stdout,
    };
    let telemetry = hbi_api::telemetry::init_writing_to(&settings.log, &settings.telemetry, default_service, stream)?;
    let result = run_command(cli.command, settings).await;
    if let Err(err) = &result {
        // On stdout and in Loki too, not only on stderr.
        tracing::error!(error = %format!("{err:#}"), "hbi stopped with an error");
    }
    // After SIGTERM as after an error: the last spans and log lines leave before the exit.
    telemetry.shutdown().await;
    result
}

async fn run_command(command: Command, settings: Arc<Settings>) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));

    match command {
        Command::Migrate { .. } => {
            Backends::open(&settings, true).await?;
            tracing::info!(database = %redact(settings.database_url().expose_secret()), "migrations applied");
            Ok(())
        }
        Command::Serve(_) => {
            let backends = open_backends(&settings, &shutdown).await?;
            hbi_shared::access::prepare(&settings, &backends.api_keys).await?;
            prepare_vector_search(&backends);
            let state = AppState::new(backends.clone(), settings.clone());
            let app = Application::bind(settings.server.bind, state).await?;
            announce(&app, "serve");
            let worker = tokio::spawn({
                let settings = settings.clone();
                let shutdown = shutdown.clone();
                async move { hbi_worker::run(&settings, backends, shutdown).await }
            });
            let api_result = app.run(shutdown.clone()).await;
            shutdown.cancel();
            let worker_result = worker.await.context("worker task")?;
            api_result.and(worker_result)
        }
        Command::Api(_) => {
            let backends = open_backends(&settings, &shutdown).await?;
            hbi_shared::access::prepare(&settings, &backends.api_keys).await?;
            prepare_vector_search(&backends);
            let state = AppState::new(backends, settings.clone());
            let app = Application::bind(settings.server.bind, state).await?;
            announce(&app, "api");
            app.run(shutdown).await
        }
        Command::Worker(_) => {
            let backends = open_backends(&settings, &shutdown).await?;
            let health = tokio::spawn(hbi_api::worker_probes::serve(
                settings.server.worker_bind,
                backends.clone(),
                shutdown.clone(),
            ));
            tracing::info!(health = %settings.server.worker_bind, "worker health endpoint listening");
            let result = hbi_worker::run(&settings, backends, shutdown.clone()).await;
            shutdown.cancel();
            health.abort();
            result
        }
        Command::RekeyWebhooks { .. } => {
            let backends = Backends::open(&settings, true).await?;
            let resealed = backends
                .webhooks
                .reseal_secrets()
                .await
                .map_err(|err| anyhow::anyhow!("{err}"))?;
            tracing::info!(resealed, "webhook signing secrets sealed under the current master key");
            Ok(())
        }
        Command::Mcp { .. } => {
            let backends = Backends::open(&settings, true).await?;
            let caller = mcp_caller(&settings, &backends).await?;
            tracing::info!(key_id = %caller.key_id, scope = %caller.scope, "serving MCP on stdin and stdout");
            let library = backends.library(&settings);
            tokio::select! {
                result = hbi_api::mcp::serve_stdio(library, caller) => result,
                () = shutdown.cancelled() => Ok(()),
            }
        }
        Command::Extract(_) | Command::RenderPage { .. } => Ok(()),
    }
}

/// Who `hbi mcp` acts as: the API key in `HBI_API_KEY`, checked as the API checks it
/// (everyone, when authentication is off).
async fn mcp_caller(settings: &Settings, backends: &Backends) -> anyhow::Result<hbi_shared::access::Principal> {
    if !settings.auth.enabled {
        return Ok(hbi_shared::access::Principal::local());
    }
    let key = std::env::var("HBI_API_KEY").map_err(|_| {
        anyhow::anyhow!(
            "HBI_API_KEY is not set: `hbi mcp` acts as an API key of the library (make one with POST /keys)"
        )
    })?;
    let authenticator =
        hbi_shared::access::Authenticator::new(backends.api_keys.clone(), settings.auth.bootstrap_api_key.as_ref());
    authenticator
        .authenticate(key.trim())
        .await?
        .ok_or_else(|| anyhow::anyhow!("HBI_API_KEY is not a valid API key of this library"))
}

/// Builds what library-wide vector searches need in memory (a big library's HNSW graph) in the
/// background, so the first search after a start does not wait for it; searches answer
/// meanwhile.
fn prepare_vector_search(backends: &Backends) {
    let Some(embedder) = backends.embedder.clone() else {
        return;
    };
    let vectors = backends.vectors.clone();
    tokio::spawn(async move {
        if let Err(err) = vectors.prepare(embedder.model()).await {
            tracing::warn!(error = %format!("{err:#}"), "vector search not prepared; the first searches prepare it");
        }
    });
}

/// Opens the backends for a long-running process, waiting out a database that is not up
/// yet (services start in any order); `hbi migrate` fails at once instead.
async fn open_backends(settings: &hbi_shared::Settings, shutdown: &CancellationToken) -> anyhow::Result<Backends> {
    let mut pause = Duration::from_millis(500);
    loop {
        match Backends::open(settings, true).await {
            Ok(backends) => return Ok(backends),
            Err(err) => {
                tracing::warn!(error = %format!("{err:#}"), ?pause, "cannot open the backends yet; trying again");
                tokio::select! {
                    () = shutdown.cancelled() => return Err(err),
                    () = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(Duration::from_secs(30));
            }
        }
    }
}

fn announce(app: &Application, mode: &str) {
    if let Some(addr) = app.local_addr() {
        tracing::info!(mode, address = %addr, docs = %format!("http://{addr}/docs"), "listening");
    }
}

/// Hides the password of a database URL in logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://***@{}", &url[..scheme], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

async fn cancel_on_signal(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutdown signal received");
    token.cancel();
}
