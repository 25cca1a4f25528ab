//! Page images for reading: a page of a book's original drawn once, on its first request, by
//! `hbi render-page` in a child process (an address-space limit and a deadline, as the
//! extractor has: the original is as untrusted as any upload), then kept in the blob store
//! beside the original, so every replica serves it from there.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, anyhow};
use tokio::io::AsyncReadExt;

/// The width pages are drawn at: readable on a laptop, sharp enough to zoom once.
pub const READING_WIDTH: u32 = 1200;
/// Longest the child may take for one page.
const DEADLINE: Duration = Duration::from_secs(40);
/// Largest image accepted from the child.
const MAX_IMAGE_BYTES: u64 = 32 * 1024 * 1024;
/// The child's exit code for a page it cannot draw (the extractor child's convention).
const EXIT_REFUSED: i32 = 2;

/// Why a page was not drawn.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The file cannot be drawn (an EPUB, a damaged page): the child's words.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// Runs `hbi render-page` for the pages asked for.
#[derive(Debug, Clone)]
pub struct PageRenderer {
    program: PathBuf,
    memory_limit_mb: u64,
}

impl PageRenderer {
    pub fn new(program: PathBuf, memory_limit_mb: u64) -> Self {
        Self {
            program,
            memory_limit_mb,
        }
    }

    /// Page `page` of the file at `path` as a PNG `width` pixels wide.
    pub async fn render(&self, path: &Path, page: u32, width: u32) -> Result<Vec<u8>, RenderError> {
        self.run(path, page, &["--width", &width.to_string()]).await
    }

    /// The words of page `page` of the file at `path` with their boxes, as the JSON of
    /// `hbi_extraction::PageWords`; a page without a text layer read by OCR in `languages`
    /// (Tesseract's names).
    pub async fn words(&self, path: &Path, page: u32, languages: &str) -> Result<Vec<u8>, RenderError> {
        self.run(path, page, &["--words", "--ocr-languages", languages]).await
    }

    async fn run(&self, path: &Path, page: u32, what: &[&str]) -> Result<Vec<u8>, RenderError> {
        let mut child = tokio::process::Command::new(&self.program)
            .arg("render-page")
            .arg(path)
            .args(["--page", &page.to_string()])
            .args(what)
            .args(["--memory-limit-mb", &self.memory_limit_mb.to_string()])
            .env_clear()
            .envs(std::env::var_os("PATH").map(|path| ("PATH", path)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} render-page", self.program.display()))?;
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(anyhow!("the page renderer has no output pipes").into());
        };
        let run = async {
            let mut image = Vec::new();
            let mut errors = String::new();
            let mut stdout = stdout.take(MAX_IMAGE_BYTES + 1);
            let mut stderr = stderr.take(64 * 1024);
            let (read, _, status) = tokio::join!(
                stdout.read_to_end(&mut image),
                stderr.read_to_string(&mut errors),
                child.wait(),
            );
            read?;
            anyhow::Ok((image, errors, status?))
        };
        let (image, errors, status) = tokio::time::timeout(DEADLINE, run)
            .await
            .map_err(|_| anyhow!("drawing page {page} took longer than {DEADLINE:?}"))??;
        let said = errors.trim().trim_start_matches("error: ").to_owned();
        match status.code() {
            Some(0) if (image.len() as u64) <= MAX_IMAGE_BYTES => Ok(image),
            Some(0) => Err(anyhow!("page {page}'s image is larger than {MAX_IMAGE_BYTES} bytes").into()),
            Some(EXIT_REFUSED) => Err(RenderError::Refused(said)),
            _ => Err(anyhow!("drawing page {page} failed ({status}): {said}").into()),
        }
    }
}

/// The blob store's name of a page image.
pub fn image_name(page: u32, width: u32) -> String {
    format!("page-{page:05}-w{width}.png")
}

/// The blob store's name of a page's word boxes.
pub fn words_name(page: u32) -> String {
    format!("page-{page:05}-words.json")
}
