//! Both sides of the extractor child protocol. The worker runs `hbi extract` in a child process
//! with an address-space limit and a deadline ([`extract_in_child`]), so a hostile or gigantic
//! PDF can crash, hang or bloat only that child: its job fails with a clear error and the
//! worker goes on (the design Apache Tika uses). The child is [`run_child`], which `hbi
//! extract` also is for people at a terminal.
//!
//! Protocol: the child prints the extraction JSON on stdout and, with `--progress jsonl`,
//! one `{"done":N,"total":M}` line per page read on stderr (with `"stage":"ocr"` for the pages
//! OCR recognises after the layout of all: each adds to the deadline, and is counted among
//! the book's pages as it is recognised); a refused input exits with code 2
//! and a `{"error":"..."}` line; any other failure exits 1 (the worker retries).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use hbi_extraction::Extraction;
use hbi_shared::domain::BookLanguages;
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

/// Exit code of `hbi extract` for an input it refuses (not a PDF, encrypted, damaged...).
pub const EXIT_INPUT_REFUSED: i32 = 2;

/// The only variables of the worker's environment the child gets: it needs no
/// configuration, and the worker's holds secrets (database and S3 credentials, API keys) a
/// process parsing untrusted files must not have.
const PASSED_ENVIRONMENT: [&str; 7] = ["PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "RUST_LOG", "RUST_BACKTRACE"];

/// Largest extraction output accepted from the child.
const MAX_OUTPUT_BYTES: u64 = 1 << 30;

#[derive(Debug, Clone)]
pub struct ExtractorConfig {
    pub program: PathBuf,
    pub memory_limit_mb: u64,
    pub max_pages: usize,
    /// Deadline of reading the file...
    pub timeout: Duration,
    /// ...and how much longer it runs for each page that OCR recognises.
    pub ocr_page_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ExtractorFailure {
    /// The file itself is unusable; running it again cannot help.
    #[error("{0}")]
    InputRefused(String),
    #[error("extraction took longer than {0:?} and was stopped")]
    TimedOut(Duration),
    #[error("extraction was cancelled")]
    Cancelled,
    /// A crash, an out-of-memory kill or unreadable output.
    #[error("{0}")]
    Crashed(String),
}

#[derive(Deserialize)]
struct ChildMessage {
    done: Option<u32>,
    total: Option<u32>,
    /// `"ocr"` for pages being recognised.
    stage: Option<String>,
    error: Option<String>,
}

/// Extracts `pdf` with page text, its scanned pages read by OCR in `languages`, reporting
/// `(done, total)` pages through `progress`.
pub async fn extract_in_child(
    config: &ExtractorConfig,
    pdf: &Path,
    languages: &BookLanguages,
    cancel: &CancellationToken,
    progress: &(dyn Fn(u32, u32) + Send + Sync),
) -> Result<Extraction, ExtractorFailure> {
    let mut child = Command::new(&config.program)
        .arg("extract")
        .arg(pdf)
        .args(["--json", "--pages", "--progress", "jsonl"])
        .arg("--memory-limit-mb")
        .arg(config.memory_limit_mb.to_string())
        .arg("--max-pages")
        .arg(config.max_pages.to_string())
        .arg("--ocr-languages")
        .arg(languages.as_str())
        .env_clear()
        .envs(
            PASSED_ENVIRONMENT
                .iter()
                .filter_map(|name| Some((name, std::env::var_os(name)?))),
        )
        .env("HBI__LOG__LEVEL", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|err| {
            ExtractorFailure::Crashed(format!(
                "could not start the extractor {}: {err}",
                config.program.display()
            ))
        })?;

    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(ExtractorFailure::Crashed("extractor pipes are missing".to_owned()));
    };
    let read_stdout = async move {
        let mut output = Vec::new();
        stdout
            .take(MAX_OUTPUT_BYTES)
            .read_to_end(&mut output)
            .await
            .map(|_| output)
    };
    // Pages the child said it recognises with OCR; the deadline grows with them.
    let ocr_pages = AtomicU32::new(0);
    let ocr_pages = &ocr_pages;
    // The book's pages, from the child's page lines: OCR's count is reported on that scale.
    let book_pages = AtomicU32::new(0);
    let book_pages = &book_pages;
    let read_stderr = async move {
        let mut lines = BufReader::new(stderr).lines();
        let mut last_error = None;
        let mut other = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            match serde_json::from_str::<ChildMessage>(&line) {
                Ok(ChildMessage { error: Some(error), .. }) => last_error = Some(error),
                Ok(ChildMessage {
                    done: Some(done),
                    total: Some(total),
                    stage,
                    ..
                }) => {
                    if stage.as_deref() == Some("ocr") {
                        ocr_pages.fetch_max(total, Ordering::Relaxed);
                        // The pages OCR does not read were counted as they were laid out.
                        let pages = book_pages.load(Ordering::Relaxed).max(total);
                        progress(pages - total + done.min(total), pages);
                    } else {
                        book_pages.fetch_max(total, Ordering::Relaxed);
                        progress(done, total);
                    }
                }
                _ => {
                    if other.len() < 20 {
                        other.push(line);
                    }
                }
            }
        }
        (last_error, other)
    };
    let run = async { tokio::join!(read_stdout, read_stderr, child.wait()) };
    let started = tokio::time::Instant::now();
    let deadline = async {
        loop {
            let allowed = config.timeout.saturating_add(
                config
                    .ocr_page_timeout
                    .saturating_mul(ocr_pages.load(Ordering::Relaxed)),
            );
            if started.elapsed() >= allowed {
                return allowed;
            }
            // The allowance only grows: wake at the deadline known now and look again.
            tokio::time::sleep_until(started + allowed).await;
        }
    };

    let (output, (child_error, stray_lines), status) = tokio::select! {
        joined = run => joined,
        allowed = deadline => return Err(ExtractorFailure::TimedOut(allowed)),
        () = cancel.cancelled() => return Err(ExtractorFailure::Cancelled),
    };
    // Leaving the select drops the child on the early returns above; kill_on_drop ends it.
    let status = status.map_err(|err| ExtractorFailure::Crashed(format!("waiting for the extractor: {err}")))?;
    if status.code() == Some(EXIT_INPUT_REFUSED) {
        return Err(ExtractorFailure::InputRefused(
            child_error.unwrap_or_else(|| "the file was refused".to_owned()),
        ));
    }
    if !status.success() {
        let detail = child_error.or_else(|| stray_lines.last().cloned()).unwrap_or_default();
        return Err(ExtractorFailure::Crashed(describe_crash(status, &detail)));
    }
    let output = output.map_err(|err| ExtractorFailure::Crashed(format!("reading extractor output: {err}")))?;
    serde_json::from_slice(&output)
        .map_err(|err| ExtractorFailure::Crashed(format!("unreadable extractor output: {err}")))
}

/// What `hbi render-page` prints of a page.
#[derive(Debug, Clone)]
pub enum Drawing {
    /// A PNG this many pixels wide.
    Image { width: u32 },
    /// Its words and their boxes, as JSON; a page without a text layer read by Tesseract in
    /// these languages (its names), if any.
    Words { ocr_languages: Option<String> },
}

/// `hbi render-page`: one page of `file` drawn as a PNG, or its words located, on stdout,
/// under an address-space limit (the page's file is as untrusted as any upload); exit 2 when
/// the page cannot be drawn, 1 for a fault of the machine.
pub fn run_render_child(file: &Path, page: u32, drawing: Drawing, memory_limit_mb: Option<u64>) -> ExitCode {
    if let Some(limit_mb) = memory_limit_mb {
        let bytes = limit_mb.saturating_mul(1024 * 1024);
        if let Err(err) = rlimit::setrlimit(rlimit::Resource::AS, bytes, bytes) {
            eprintln!("error: cannot set the memory limit: {err}");
            return ExitCode::from(1);
        }
    }
    let drawn = match drawing {
        Drawing::Image { width } => hbi_extraction::render_page(file, page, width),
        Drawing::Words { ocr_languages } => hbi_extraction::page_words(file, page, ocr_languages.as_deref())
            .and_then(|words| serde_json::to_vec(&words).map_err(|err| format!("cannot write the words: {err}"))),
    };
    match drawn {
        Ok(bytes) => {
            let mut stdout = std::io::stdout().lock();
            match stdout.write_all(&bytes).and_then(|()| stdout.flush()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("error: cannot write the image: {err}");
                    ExitCode::from(1)
                }
            }
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(u8::try_from(EXIT_INPUT_REFUSED).unwrap_or(2))
        }
    }
}

/// How the child reports its progress on stderr.
#[derive(Debug, Copy, Clone, PartialEq, Eq)]
pub enum ProgressMode {
    /// A line every half second, for people.
    Human,
    /// One JSON object per page, for the worker.
    Jsonl,
    None,
}

/// What `hbi extract` is asked: the child side's arguments.
#[derive(Debug, Clone)]
pub struct ChildRequest {
    pub file: PathBuf,
    /// The extraction as JSON (the scorer's format) instead of a summary.
    pub json: bool,
    /// Each page's text in the JSON.
    pub pages: bool,
    pub progress: ProgressMode,
    /// This process's address-space limit, so a hostile file cannot exhaust the machine.
    pub memory_limit_mb: Option<u64>,
    pub max_pages: usize,
    pub max_file_mb: u64,
    /// Tesseract's languages for pages without a text layer; `None`: no OCR.
    pub ocr_languages: Option<String>,
}

/// The child: extracts `request.file` and prints the result. Exit 0 with the result,
/// [`EXIT_INPUT_REFUSED`] when the file is refused, 1 on other errors. Synchronous: no
/// runtime, no configuration, no database.
pub fn run_child(request: &ChildRequest) -> ExitCode {
    let fail = |code: u8, message: String| {
        if request.progress == ProgressMode::Jsonl {
            eprintln!("{}", serde_json::json!({ "error": message }));
        } else {
            eprintln!("error: {message}");
        }
        ExitCode::from(code)
    };
    if let Some(limit_mb) = request.memory_limit_mb {
        let bytes = limit_mb.saturating_mul(1024 * 1024);
        if let Err(err) = rlimit::setrlimit(rlimit::Resource::AS, bytes, bytes) {
            return fail(1, format!("cannot set the memory limit: {err}"));
        }
    }
    let refused = u8::try_from(EXIT_INPUT_REFUSED).unwrap_or(2);
    let bytes = match std::fs::read(&request.file) {
        Ok(bytes) => bytes,
        // Out of memory or an I/O fault is the machine's trouble, not the file's: exit 1 so
        // the worker retries; a missing or unreadable path is refused for good.
        Err(err) if err.kind() == std::io::ErrorKind::OutOfMemory => {
            return fail(1, format!("cannot read {}: {err}", request.file.display()));
        }
        Err(err) => return fail(refused, format!("cannot read {}: {err}", request.file.display())),
    };
    let options = hbi_extraction::ExtractOptions {
        max_pages: request.max_pages,
        max_file_bytes: request.max_file_mb.saturating_mul(1024 * 1024),
        ocr_languages: request.ocr_languages.clone(),
    };
    let mut last_report = Instant::now();
    let mut report = |progress: hbi_extraction::Progress| {
        // OCR's pages are counted again, as they are recognised, after the layout of all.
        let (done, total, what) = match progress {
            hbi_extraction::Progress::Pages { done, total } => (done, total, "pages"),
            hbi_extraction::Progress::Recognised { done, total } => (done, total, "pages recognised (OCR)"),
        };
        match request.progress {
            ProgressMode::Jsonl => {
                let line = match progress {
                    hbi_extraction::Progress::Pages { .. } => serde_json::json!({ "done": done, "total": total }),
                    hbi_extraction::Progress::Recognised { .. } => {
                        serde_json::json!({ "done": done, "total": total, "stage": "ocr" })
                    }
                };
                eprintln!("{line}");
            }
            ProgressMode::Human if done == total || last_report.elapsed() >= Duration::from_millis(500) => {
                last_report = Instant::now();
                eprintln!("extract: {done}/{total} {what}");
            }
            _ => {}
        }
    };
    let extraction = match hbi_extraction::extract(&bytes, &options, request.pages, &mut report) {
        Ok(extraction) => extraction,
        Err(err) => return fail(refused, err.to_string()),
    };
    let mut stdout = std::io::stdout().lock();
    let written = if request.json {
        serde_json::to_writer(&mut stdout, &extraction)
            .map_err(std::io::Error::other)
            .and_then(|()| writeln!(stdout))
    } else {
        print_summary(&mut stdout, &extraction)
    };
    match written.and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(1, format!("cannot write the result: {err}")),
    }
}

fn print_summary(out: &mut impl Write, extraction: &Extraction) -> std::io::Result<()> {
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

fn describe_crash(status: std::process::ExitStatus, detail: &str) -> String {
    use std::os::unix::process::ExitStatusExt;
    let how = match (status.code(), status.signal()) {
        (_, Some(9)) => "the extractor was killed (out of memory or by a signal)".to_owned(),
        (_, Some(signal)) => format!("the extractor died with signal {signal}"),
        (Some(code), _) => format!("the extractor failed with exit code {code}"),
        _ => "the extractor failed".to_owned(),
    };
    if detail.is_empty() {
        how
    } else {
        format!("{how}: {detail}")
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// An extractor that is the shell script `body`, written to `program`, with a 30 s deadline.
    fn fake_extractor(program: PathBuf, body: &str) -> anyhow::Result<ExtractorConfig> {
        std::fs::write(&program, format!("#!/bin/sh\n{body}"))?;
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o700))?;
        Ok(ExtractorConfig {
            program,
            memory_limit_mb: 512,
            max_pages: 10,
            timeout: Duration::from_secs(30),
            ocr_page_timeout: Duration::from_secs(1),
        })
    }

    /// The child gets a clean environment: none of the worker's secrets (database and S3
    /// credentials, API keys) reach the process that parses untrusted files.
    #[tokio::test]
    async fn the_extractor_child_inherits_no_environment() -> anyhow::Result<()> {
        // cargo sets this for every test process; it stands for any variable of the worker.
        assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
        let dir = tempfile::tempdir()?;
        let program = dir.path().join("fake-hbi");
        let seen = dir.path().join("environment");
        let config = fake_extractor(
            program,
            &format!(
                "env > '{}'\necho '{{\"error\":\"refused\"}}' >&2\nexit 2\n",
                seen.display()
            ),
        )?;
        let result = extract_in_child(
            &config,
            &dir.path().join("book.pdf"),
            &BookLanguages::default(),
            &CancellationToken::new(),
            &|_, _| {},
        )
        .await;
        assert!(matches!(result, Err(ExtractorFailure::InputRefused(_))), "{result:?}");
        let environment = std::fs::read_to_string(&seen)?;
        let names: Vec<&str> = environment
            .lines()
            .filter_map(|line| line.split_once('=').map(|(name, _)| name))
            .collect();
        assert!(!names.contains(&"CARGO_MANIFEST_DIR"), "{names:?}");
        assert!(names.contains(&"HBI__LOG__LEVEL"), "{names:?}");
        // What the shell adds itself (PWD, SHLVL, _) aside, only the passed variables are there.
        let allowed = [PASSED_ENVIRONMENT.as_slice(), &["HBI__LOG__LEVEL", "PWD", "SHLVL", "_"]].concat();
        assert!(names.iter().all(|name| allowed.contains(name)), "{names:?}");
        Ok(())
    }

    /// A child that says it recognises pages with OCR gets more time, page by page; one that
    /// does not is stopped at the plain deadline.
    #[tokio::test]
    async fn ocr_pages_lengthen_the_deadline() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let run = |announce: &str| -> anyhow::Result<ExtractorConfig> {
            let program = dir.path().join(format!("fake-hbi-{}", announce.len()));
            std::fs::write(&program, format!("#!/bin/sh\n{announce}\nexec sleep 30\n"))?;
            std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o700))?;
            Ok(ExtractorConfig {
                program,
                memory_limit_mb: 512,
                max_pages: 10,
                timeout: Duration::from_millis(200),
                ocr_page_timeout: Duration::from_millis(300),
            })
        };
        let book = dir.path().join("book.pdf");
        for (announce, allowed) in [
            ("true", Duration::from_millis(200)),
            (
                r#"echo '{"done":3,"total":3}' >&2; echo '{"done":0,"total":3,"stage":"ocr"}' >&2"#,
                Duration::from_millis(1100),
            ),
        ] {
            let config = run(announce)?;
            let started = Instant::now();
            let result = extract_in_child(
                &config,
                &book,
                &BookLanguages::default(),
                &CancellationToken::new(),
                &|_, _| {},
            )
            .await;
            let took = started.elapsed();
            assert!(
                matches!(result, Err(ExtractorFailure::TimedOut(given)) if given == allowed),
                "{announce}: {result:?}"
            );
            assert!(
                took >= allowed && took < allowed + Duration::from_secs(5),
                "{announce}: {took:?}"
            );
        }
        Ok(())
    }

    /// OCR's count is put on the book's scale: the pages laid out with text, then each page
    /// recognised, so a job's progress never goes back.
    #[tokio::test]
    async fn ocr_progress_continues_the_count_of_the_pages_laid_out() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let program = dir.path().join("fake-hbi");
        let lines = [
            r#"{"done":1,"total":4}"#,
            r#"{"done":0,"total":3,"stage":"ocr"}"#,
            r#"{"done":2,"total":3,"stage":"ocr"}"#,
            r#"{"done":3,"total":3,"stage":"ocr"}"#,
            r#"{"done":4,"total":4}"#,
        ];
        let script: String = lines.iter().map(|line| format!("echo '{line}' >&2\n")).collect();
        let config = fake_extractor(program, &format!("{script}exit 1\n"))?;
        let seen = std::sync::Mutex::new(Vec::new());
        // A script just written can be busy for exec (ETXTBSY) while another test's fork
        // still holds it open: start it again then.
        for _ in 0..5 {
            seen.lock().expect("lock").clear();
            let result = extract_in_child(
                &config,
                &dir.path().join("book.pdf"),
                &BookLanguages::default(),
                &CancellationToken::new(),
                &|done, total| seen.lock().expect("lock").push((done, total)),
            )
            .await;
            match result {
                Err(ExtractorFailure::Crashed(message)) if message.contains("could not start") => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                result => {
                    assert!(matches!(result, Err(ExtractorFailure::Crashed(_))), "{result:?}");
                    break;
                }
            }
        }
        assert_eq!(*seen.lock().expect("lock"), [(1, 4), (1, 4), (3, 4), (4, 4), (4, 4)]);
        Ok(())
    }
}
