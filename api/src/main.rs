//! `hbi`: one binary for every shape of HBI.
//!
//! - `hbi serve`: API and worker in one process (the embedded default)
//! - `hbi api` / `hbi worker`: the production shape, scaled separately
//! - `hbi migrate`: apply database migrations
//! - `hbi extract FILE --json`: offline extraction, no server, no database

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use hbi_api::{AppState, Application};
use hbi_shared::config::{ExposeSecret, Overrides};
use hbi_shared::pipeline::extractor::EXIT_INPUT_REFUSED;
use hbi_shared::{Backends, Settings};
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
}

#[derive(clap::Args)]
struct ExtractArgs {
    /// The PDF file.
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
}

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
enum ProgressMode {
    Human,
    Jsonl,
    None,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Command::Extract(args) = &cli.command {
        // Offline and synchronous: no runtime, no configuration, no database.
        return extract(args);
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
        Command::Migrate { data_dir } => Overrides {
            bind: None,
            data_dir: data_dir.clone(),
        },
        Command::Extract(_) => Overrides::default(),
    };
    let settings = Arc::new(Settings::load(cli.config_dir.as_deref(), &overrides)?);
    let default_service = match &cli.command {
        Command::Api(_) => "hbi-api",
        Command::Worker(_) => "hbi-worker",
        Command::Serve(_) | Command::Migrate { .. } | Command::Extract(_) => "hbi",
    };
    let telemetry = hbi_api::telemetry::init(&settings.log, &settings.telemetry, default_service)?;
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
            let state = AppState::new(backends, settings.clone());
            let app = Application::bind(settings.server.bind, state).await?;
            announce(&app, "api");
            app.run(shutdown).await
        }
        Command::Worker(_) => {
            let backends = open_backends(&settings, &shutdown).await?;
            let state = AppState::new(backends.clone(), settings.clone());
            let health = tokio::spawn(hbi_api::serve_worker_health(
                settings.server.worker_bind,
                state,
                shutdown.clone(),
            ));
            tracing::info!(health = %settings.server.worker_bind, "worker health endpoint listening");
            let result = hbi_worker::run(&settings, backends, shutdown.clone()).await;
            shutdown.cancel();
            health.abort();
            result
        }
        Command::Extract(_) => Ok(()),
    }
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

/// `hbi extract`: exit 0 with the result, 2 when the file is refused, 1 on other errors.
fn extract(args: &ExtractArgs) -> std::process::ExitCode {
    let fail = |code: u8, message: String| {
        if args.progress == ProgressMode::Jsonl {
            eprintln!("{}", serde_json::json!({ "error": message }));
        } else {
            eprintln!("error: {message}");
        }
        std::process::ExitCode::from(code)
    };
    if let Some(limit_mb) = args.memory_limit_mb {
        let bytes = limit_mb.saturating_mul(1024 * 1024);
        if let Err(err) = rlimit::setrlimit(rlimit::Resource::AS, bytes, bytes) {
            return fail(1, format!("cannot set the memory limit: {err}"));
        }
    }
    let refused = u8::try_from(EXIT_INPUT_REFUSED).unwrap_or(2);
    let bytes = match std::fs::read(&args.file) {
        Ok(bytes) => bytes,
        // Out of memory or an I/O fault is the machine's trouble, not the file's: exit 1 so
        // the worker retries; a missing or unreadable path is refused for good.
        Err(err) if err.kind() == std::io::ErrorKind::OutOfMemory => {
            return fail(1, format!("cannot read {}: {err}", args.file.display()));
        }
        Err(err) => return fail(refused, format!("cannot read {}: {err}", args.file.display())),
    };
    let options = hbi_extraction::ExtractOptions {
        max_pages: args.max_pages,
        max_file_bytes: args.max_file_mb.saturating_mul(1024 * 1024),
    };
    let mut last_report = Instant::now();
    let mut report = |progress: hbi_extraction::Progress| {
        let hbi_extraction::Progress::Pages { done, total } = progress;
        match args.progress {
            ProgressMode::Jsonl => eprintln!("{}", serde_json::json!({ "done": done, "total": total })),
            ProgressMode::Human if done == total || last_report.elapsed() >= Duration::from_millis(500) => {
                last_report = Instant::now();
                eprintln!("extract: {done}/{total} pages");
            }
            _ => {}
        }
    };
    let extraction = match hbi_extraction::extract(&bytes, &options, args.pages, &mut report) {
        Ok(extraction) => extraction,
        Err(err) => return fail(refused, err.to_string()),
    };
    let mut stdout = std::io::stdout().lock();
    let written = if args.json {
        serde_json::to_writer(&mut stdout, &extraction)
            .map_err(std::io::Error::other)
            .and_then(|()| writeln!(stdout))
    } else {
        print_summary(&mut stdout, &extraction)
    };
    match written.and_then(|()| stdout.flush()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => fail(1, format!("cannot write the result: {err}")),
    }
}

fn print_summary(out: &mut impl Write, extraction: &hbi_extraction::Extraction) -> std::io::Result<()> {
    writeln!(out, "pages: {}", extraction.page_count)?;
    writeln!(
        out,
        "toc ({:?}): {} entries",
        extraction.toc_source,
        extraction.toc.len()
    )?;
    for entry in &extraction.toc {
        let indent = "  ".repeat(entry.level.saturating_sub(1) as usize);
        let page = entry.page.map(|p| p.to_string()).unwrap_or_else(|| "?".to_owned());
        writeln!(out, "{indent}{} .... {page}", entry.title)?;
    }
    writeln!(out, "index: {} entries", extraction.index.len())?;
    for warning in &extraction.warnings {
        writeln!(out, "warning: {warning}")?;
    }
    Ok(())
}
