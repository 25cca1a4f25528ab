//! OCR for pages without a text layer: each page rendered to a grey image (poppler's
//! `pdftoppm` for a PDF, djvulibre's `ddjvu` for a DjVu document) and recognised by Tesseract 5
//! (its command line, `tsv` output: words with their boxes and confidences). The words become
//! the same positioned fragments as a PDF's text runs, so lines, columns, the printed contents
//! and the index parser read a scan as they read a born-digital page. Pages run in parallel,
//! one Tesseract per core (each told to use one thread), and each is reported as it is done;
//! a page that fails is a warning, not a failed book.
//!
//! The command line rather than a binding of libtesseract: a crash or a runaway page then
//! ends one process, under the extractor's memory limit and a deadline, and the build needs no
//! C headers (ARCHITECTURE.md).

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::layout::{self, TextLine};
use crate::text::Frag;
use crate::tools::{self, TempFile};

/// Resolution pages are rendered at for recognition.
pub(crate) const OCR_DPI: u32 = 300;
/// A page with fewer letters and digits than this in its text layer is recognised...
pub(crate) const MIN_TEXT_CHARS: usize = 20;
/// ...when images cover at least this share of it: a blank page, or one drawn with vector
/// graphics, has nothing to read, and a hostile file of many empty pages costs no renders.
pub(crate) const MIN_IMAGE_COVER: f32 = 0.5;
const RENDER_DEADLINE: Duration = Duration::from_secs(120);
const RECOGNITION_DEADLINE: Duration = Duration::from_secs(300);
const MAX_IMAGE_BYTES: u64 = 512 * 1024 * 1024;
const MAX_TSV_BYTES: u64 = 64 * 1024 * 1024;
/// Words Tesseract is less sure of than this (out of 100) are dropped.
const MIN_WORD_CONFIDENCE: f32 = 25.0;
/// Largest gap between two words of a line kept in one fragment, in line heights.
const WORD_GAP: f32 = 0.8;

/// Where the page images come from.
#[derive(Clone, Copy)]
pub(crate) enum PageImages<'a> {
    Pdf(&'a Path),
    /// With the document's resolution per page.
    Djvu(&'a Path, &'a [f32]),
}

/// One recognised page.
pub(crate) struct Recognised {
    pub(crate) lines: Vec<TextLine>,
    /// Mean word confidence, 0 to 1; `None` without a word.
    pub(crate) confidence: Option<f64>,
    pub(crate) words: usize,
}

/// Recognises the pages of `layouts` that are `pictured` (mostly covered by images) and whose
/// text layer holds next to nothing ([`MIN_TEXT_CHARS`]), replacing their lines; what was
/// done, for the quality gates. A book scanned only in part has just those pages read. Without
/// Tesseract the pages are left as they are, with a warning.
pub(crate) fn fill_empty_pages(
    source: PageImages,
    layouts: &mut [crate::PageLayout],
    pictured: &[bool],
    languages: &str,
    warnings: &mut crate::Warnings,
    progress: &mut dyn FnMut(crate::Progress),
) -> Option<crate::OcrSummary> {
    let empty: Vec<u32> = layouts
        .iter()
        .filter(|page| pictured.get(page.number as usize - 1).copied().unwrap_or(false))
        .filter(|page| {
            page.lines
                .iter()
                .flat_map(|line| line.text.chars())
                .filter(|c| c.is_alphanumeric())
                .count()
                < MIN_TEXT_CHARS
        })
        .map(|page| page.number)
        .collect();
    if empty.is_empty() {
        return None;
    }
    let Some(installed) = installed_languages() else {
        warnings.push(format!(
            "{} pages have no text layer and Tesseract is not installed (Debian package tesseract-ocr): they were not recognised",
            empty.len()
        ));
        return None;
    };
    let (usable, missing): (Vec<&str>, Vec<&str>) = languages
        .split('+')
        .filter(|language| !language.is_empty())
        .partition(|language| installed.iter().any(|name| name == language));
    if !missing.is_empty() {
        warnings.push(format!(
            "Tesseract has no model for {} (Debian packages tesseract-ocr-<language>){}",
            missing.join(", "),
            if usable.is_empty() {
                ""
            } else {
                "; the pages were read without it"
            }
        ));
    }
    if usable.is_empty() {
        warnings.push(format!(
            "{} pages have no text layer and none of the book's languages ({languages}) is installed: they were not recognised",
            empty.len()
        ));
        return None;
    }
    let languages = usable.join("+");
    let languages = languages.as_str();
    let total = u32::try_from(empty.len()).unwrap_or(u32::MAX);
    let mut messages = Vec::new();
    let recognised = recognise(source, &empty, languages, &mut messages, &mut |done| {
        progress(crate::Progress::Recognised {
            done: u32::try_from(done).unwrap_or(u32::MAX),
            total,
        })
    });
    for message in messages {
        warnings.push(message);
    }
    let (mut confidence_sum, mut words) = (0.0, 0usize);
    for (number, page) in &recognised {
        if let Some(layout) = layouts.get_mut(*number as usize - 1) {
            layout.lines = page.lines.clone();
        }
        confidence_sum += page.confidence.unwrap_or(0.0) * page.words as f64;
        words += page.words;
    }
    Some(crate::OcrSummary {
        pages: u32::try_from(recognised.len()).unwrap_or(u32::MAX),
        failed: total.saturating_sub(u32::try_from(recognised.len()).unwrap_or(u32::MAX)),
        mean_confidence: (words > 0).then(|| confidence_sum / words as f64),
        languages: languages.to_owned(),
    })
}

/// The language models Tesseract has here (`eng`, `deu`, `osd`...); `None` without Tesseract.
fn installed_languages() -> Option<Vec<String>> {
    let mut command = Command::new("tesseract");
    command.arg("--list-langs");
    let listing = tools::run(command, "tesseract --list-langs", Duration::from_secs(30), 1 << 20).ok()?;
    // The first line says where the models are ("List of available languages in ...").
    Some(
        String::from_utf8_lossy(&listing)
            .lines()
            .skip(1)
            .map(|line| line.trim().to_owned())
            .filter(|line| !line.is_empty())
            .collect(),
    )
}

/// Recognises `pages` (1-based) of `source` in `languages` (Tesseract's `eng+deu`), in
/// parallel; `progress(done)` after each page. Pages that fail are listed in the warnings.
pub(crate) fn recognise(
    source: PageImages,
    pages: &[u32],
    languages: &str,
    warnings: &mut Vec<String>,
    progress: &mut dyn FnMut(usize),
) -> HashMap<u32, Recognised> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |cores| cores.get())
        .min(pages.len())
        .max(1);
    let next = AtomicUsize::new(0);
    let results: Mutex<HashMap<u32, Recognised>> = Mutex::new(HashMap::new());
    let failures: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let done_tx = done_tx.clone();
            let (next, results, failures) = (&next, &results, &failures);
            scope.spawn(move || {
                loop {
                    let Some(&page) = pages.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        return;
                    };
                    match recognise_page(source, page, languages) {
                        Ok(recognised) => {
                            if let Ok(mut results) = results.lock() {
                                results.insert(page, recognised);
                            }
                        }
                        Err(message) => {
                            if let Ok(mut failures) = failures.lock() {
                                failures.push(format!("page {page}: OCR failed: {message}"));
                            }
                        }
                    }
                    let _ = done_tx.send(());
                }
            });
        }
        drop(done_tx);
        let mut done = 0;
        while done_rx.recv().is_ok() {
            done += 1;
            progress(done);
        }
    });
    let mut failed = failures.into_inner().unwrap_or_default();
    failed.sort();
    warnings.extend(failed);
    results.into_inner().unwrap_or_default()
}

fn recognise_page(source: PageImages, page: u32, languages: &str) -> Result<Recognised, String> {
    let image = TempFile::named("pgm");
    let dpi = match source {
        PageImages::Pdf(pdf) => {
            // `-singlefile` writes exactly PREFIX.pgm.
            let prefix = image.0.with_extension("");
            let mut command = Command::new("pdftoppm");
            command
                .args(["-r", &OCR_DPI.to_string(), "-gray", "-singlefile"])
                .args(["-f", &page.to_string(), "-l", &page.to_string()])
                .arg(pdf)
                .arg(&prefix);
            tools::run(
                command,
                "pdftoppm (Debian package poppler-utils)",
                RENDER_DEADLINE,
                1024,
            )?;
            OCR_DPI as f32
        }
        PageImages::Djvu(djvu, resolutions) => {
            let mut command = Command::new("ddjvu");
            command
                .args(["-format=pgm", &format!("-page={page}")])
                .arg(djvu)
                .arg(&image.0);
            tools::run(command, "ddjvu (Debian package djvulibre-bin)", RENDER_DEADLINE, 1024)?;
            resolutions.get(page as usize - 1).copied().unwrap_or(OCR_DPI as f32)
        }
    };
    let size = std::fs::metadata(&image.0)
        .map_err(|err| format!("no page image: {err}"))?
        .len();
    if size > MAX_IMAGE_BYTES {
        return Err(format!("the page image is {size} bytes"));
    }
    let mut command = Command::new("tesseract");
    command
        .arg(&image.0)
        .arg("stdout")
        .args(["-l", languages, "--dpi", &format!("{dpi:.0}"), "tsv"])
        // One thread each: the pages run in parallel instead.
        .env("OMP_THREAD_LIMIT", "1");
    let tsv = tools::run(
        command,
        "tesseract (Debian package tesseract-ocr)",
        RECOGNITION_DEADLINE,
        MAX_TSV_BYTES,
    )?;
    Ok(page_from_tsv(&String::from_utf8_lossy(&tsv), dpi))
}

/// A recognised word: left and right edge, top and bottom (pixels from the top), text.
type Word = (f32, f32, f32, f32, String);

/// The lines of a page from Tesseract's TSV (`level page block par line word left top width
/// height conf text`, in pixels from the top left), in points from the bottom left at `dpi`.
pub(crate) fn page_from_tsv(tsv: &str, dpi: f32) -> Recognised {
    let scale = 72.0 / dpi.max(1.0);
    let mut page_height = 0.0f32;
    // Words by line (block, paragraph, line), in reading order.
    let mut lines: Vec<((u32, u32, u32), Vec<Word>)> = Vec::new();
    let (mut confidence_sum, mut words) = (0.0f64, 0usize);
    for row in tsv.lines().skip(1) {
        let fields: Vec<&str> = row.split('\t').collect();
        if fields.len() < 12 {
            continue;
        }
        let number = |i: usize| fields[i].trim().parse::<f32>().ok();
        let (Some(level), Some(left), Some(top), Some(width), Some(height)) =
            (number(0), number(6), number(7), number(8), number(9))
        else {
            continue;
        };
        if level == 1.0 {
            page_height = height;
            continue;
        }
        let text = fields[11].trim();
        let confidence = number(10).unwrap_or(-1.0);
        if level != 5.0 || text.is_empty() || confidence < 0.0 {
            continue;
        }
        // What Tesseract all but gives up on is not text: leader dots, rules, specks (it
        // reads a row of leaders as "eee ene e").
        if confidence < MIN_WORD_CONFIDENCE {
            continue;
        }
        confidence_sum += f64::from(confidence.min(100.0)) / 100.0;
        words += 1;
        let key = (
            fields[2].parse().unwrap_or(0),
            fields[3].parse().unwrap_or(0),
            fields[4].parse().unwrap_or(0),
        );
        let word = (left, left + width, top, top + height, text.to_owned());
        match lines.last_mut() {
            Some((last, line)) if *last == key => line.push(word),
            _ => lines.push((key, vec![word])),
        }
    }
    let mut frags = Vec::new();
    for (_, line) in &lines {
        let top = line.iter().map(|w| w.2).fold(f32::INFINITY, f32::min);
        let bottom = line.iter().map(|w| w.3).fold(0.0, f32::max);
        let size = ((bottom - top) * scale * 0.75).max(1.0);
        let baseline = (page_height - bottom) * scale;
        let mut current: Option<Frag> = None;
        for (x0, x1, _, _, text) in line {
            let (x0, x1) = (x0 * scale, x1 * scale);
            match &mut current {
                Some(frag) if x0 - frag.x1 <= WORD_GAP * size => {
                    frag.text.push(' ');
                    frag.text.push_str(text);
                    frag.x1 = x1;
                }
                _ => {
                    frags.extend(current.take());
                    current = Some(Frag {
                        x0,
                        x1,
                        y: baseline,
                        size,
                        bold: false,
                        text: text.clone(),
                    });
                }
            }
        }
        frags.extend(current);
    }
    Recognised {
        lines: layout::layout(&frags),
        confidence: (words > 0).then(|| confidence_sum / words as f64),
        words,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tesseract_tsv_becomes_lines_from_the_bottom_left() {
        let tsv = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n\
                   1\t1\t0\t0\t0\t0\t0\t0\t2550\t3300\t-1\t\n\
                   5\t1\t1\t1\t1\t1\t300\t400\t200\t50\t96.0\tIndex\n\
                   5\t1\t2\t1\t1\t1\t300\t600\t150\t50\t90.0\tarrays,\n\
                   5\t1\t2\t1\t1\t2\t470\t600\t60\t50\t80.0\t12\n";
        let page = page_from_tsv(tsv, 300.0);
        let texts: Vec<&str> = page.lines.iter().map(|line| line.text.as_str()).collect();
        assert_eq!(texts, ["Index", "arrays, 12"]);
        assert!((page.lines[0].y - (3300.0 - 450.0) * 0.24).abs() < 0.01);
        assert_eq!(page.words, 3);
        assert!((page.confidence.unwrap_or_default() - 0.886_666).abs() < 0.001);
    }
}
