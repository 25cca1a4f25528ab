//! The programs the extractor runs (djvulibre's djvused and ddjvu, poppler's pdftoppm,
//! Tesseract): each in a process of its own, under this process's address-space limit, with
//! a deadline and a cap on what it may print, its output read as it comes (a full pipe
//! would block it).

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `command` to its end within `deadline`, printing at most `max_output` bytes; its
/// standard output, or why not (`what` names the program, and where it comes from).
pub(crate) fn run(mut command: Command, what: &str, deadline: Duration, max_output: u64) -> Result<Vec<u8>, String> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| format!("cannot run {what}: {err}"))?;
    let (Some(stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
        let _ = child.kill();
        return Err(format!("{what} has no output pipes"));
    };
    let reader = std::thread::spawn(move || {
        let mut output = Vec::new();
        stdout.take(max_output + 1).read_to_end(&mut output).map(|_| output)
    });
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = (&mut stderr).take(64 * 1024).read_to_string(&mut text);
        text
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{what} took longer than {deadline:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(err) => return Err(format!("waiting for {what}: {err}")),
        }
    };
    let output = reader
        .join()
        .map_err(|_| format!("reading the output of {what} failed"))?
        .map_err(|err| format!("reading the output of {what}: {err}"))?;
    let errors = errors.join().unwrap_or_default();
    if output.len() as u64 > max_output {
        return Err(format!("{what} printed more than {max_output} bytes"));
    }
    if !status.success() {
        let detail = errors
            .lines()
            .find(|line| !line.trim().is_empty())
            .unwrap_or("no message");
        return Err(format!("{what} cannot read the file: {}", detail.trim()));
    }
    Ok(output)
}

/// Draws page `page` of the PDF at `pdf` with poppler's `pdftoppm` (`options` say how: a
/// resolution, a scale, a colour mode) into exactly `prefix` plus the format's extension.
pub(crate) fn pdftoppm_page(
    pdf: &std::path::Path,
    page: u32,
    options: &[&str],
    prefix: &std::path::Path,
    deadline: Duration,
) -> Result<(), String> {
    let mut command = Command::new("pdftoppm");
    command
        .arg("-singlefile")
        .args(options)
        .args(["-f", &page.to_string(), "-l", &page.to_string()])
        .arg(pdf)
        .arg(prefix);
    run(command, "pdftoppm (Debian package poppler-utils)", deadline, 1024).map(|_| ())
}

/// A file of this process's own in the temporary directory, removed when dropped: the tools
/// read files, the extractor holds bytes.
pub(crate) struct TempFile(pub(crate) PathBuf);

impl TempFile {
    pub(crate) fn write(bytes: &[u8], extension: &str) -> Result<Self, String> {
        let file = Self::named(extension);
        std::fs::write(&file.0, bytes).map_err(|err| format!("cannot write a temporary copy: {err}"))?;
        Ok(file)
    }

    /// A name no other file of this process has; nothing is written yet.
    pub(crate) fn named(extension: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let unique = format!(
            "hbi-extract-{}-{}.{extension}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        Self(std::env::temp_dir().join(unique))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
