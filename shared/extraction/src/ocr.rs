//! OCR for pages without a text layer: each page rendered to a grey image (poppler's
//! `pdftoppm` for a PDF, djvulibre's `ddjvu` for a DjVu document) and recognised by Tesseract 5
//! (its command line, `hocr` output: lines with their baselines, words with their boxes and
//! confidences). The words become
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
use crate::leaders::{self, LeaderRun};
use crate::text::WordRun;
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
const MAX_HOCR_BYTES: u64 = 64 * 1024 * 1024;
/// Largest page image searched for leaders (an A2 page at 300 dpi): the search holds the
/// image and a mark per pixel, beside the extractor's other work.
const MAX_LEADER_SEARCH_BYTES: u64 = 64 * 1024 * 1024;
/// Words Tesseract is less sure of than this (out of 100) are dropped.
const MIN_WORD_CONFIDENCE: f32 = 25.0;
/// A "word" on the baseline less tall than this share of its row is leader dots, whatever
/// Tesseract read them as ("eee", "BEEN", "24")...
const LEADER_HEIGHT: f32 = 0.25;
/// ...written back as one dot per this share of a row height.
const LEADER_PITCH: f32 = 0.3;

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
    /// How long rendering and recognising the page took.
    pub(crate) seconds: f64,
    /// Mean word confidence, 0 to 1; `None` without a word.
    pub(crate) confidence: Option<f64>,
    pub(crate) words: usize,
}

/// Whether OCR reads `page`: it is `pictured` (mostly covered by images) and its text layer
/// holds next to nothing ([`MIN_TEXT_CHARS`]).
pub(crate) fn needs_ocr(page: &crate::PageLayout, pictured: bool) -> bool {
    pictured
        && page
            .lines
            .iter()
            .flat_map(|line| line.text.chars())
            .filter(|c| c.is_alphanumeric())
            .count()
            < MIN_TEXT_CHARS
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
        .filter(|page| needs_ocr(page, pictured.get(page.number as usize - 1).copied().unwrap_or(false)))
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
        page_seconds: recognised.values().map(|page| page.seconds).sum(),
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
                    let started = std::time::Instant::now();
                    match recognise_page(source, page, languages) {
                        Ok(mut recognised) => {
                            recognised.seconds = started.elapsed().as_secs_f64();
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

/// Page `page` of `source` as a grey image for Tesseract, and its resolution.
fn render_for_recognition(source: PageImages, page: u32) -> Result<(TempFile, f32), String> {
    let image = TempFile::named("pgm");
    let dpi = match source {
        PageImages::Pdf(pdf) => {
            let resolution = ["-r", &OCR_DPI.to_string(), "-gray"];
            tools::pdftoppm_page(pdf, page, &resolution, &image.0.with_extension(""), RENDER_DEADLINE)?;
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
    Ok((image, dpi))
}

fn recognise_page(source: PageImages, page: u32, languages: &str) -> Result<Recognised, String> {
    let (image, dpi) = render_for_recognition(source, page)?;
    let size = std::fs::metadata(&image.0).map_or(0, |metadata| metadata.len());
    let leaders = if size <= MAX_LEADER_SEARCH_BYTES {
        take_out_leaders(&image.0, dpi)?
    } else {
        Vec::new()
    };
    // A page whose leaders came out is a listing of titles and page numbers: it is read as
    // one block of lines (`--psm 6`), as Tesseract's page analysis takes the column of page
    // numbers, alone now, for specks and drops it. The layout finds the columns itself.
    let listing: &[&str] = if leaders.is_empty() { &[] } else { &["--psm", "6"] };
    let hocr = tesseract(&image.0, languages, dpi, listing, "hocr")?;
    Ok(page_from_hocr(&hocr, dpi, &leaders))
}

/// Tesseract on the image at `image` in `languages`, with `options`, its output in `format`
/// (`hocr`, `tsv`).
fn tesseract(image: &Path, languages: &str, dpi: f32, options: &[&str], format: &str) -> Result<String, String> {
    let mut command = Command::new("tesseract");
    command
        .arg(image)
        .arg("stdout")
        .args(["-l", languages, "--dpi", &format!("{dpi:.0}")])
        .args(options)
        .arg(format)
        // One thread each: the pages run in parallel instead.
        .env("OMP_THREAD_LIMIT", "1");
    let output = tools::run(
        command,
        "tesseract (Debian package tesseract-ocr)",
        RECOGNITION_DEADLINE,
        MAX_HOCR_BYTES,
    )?;
    Ok(String::from_utf8_lossy(&output).into_owned())
}

/// The words Tesseract reads on page `page` of `source` (a page without a text layer), each
/// with its box in fractions of the page, for marking a search hit on the page's image.
pub(crate) fn page_word_boxes(source: PageImages, page: u32, languages: &str) -> Result<crate::PageWords, String> {
    let (image, dpi) = render_for_recognition(source, page)?;
    Ok(words_from_tsv(&tesseract(&image.0, languages, dpi, &[], "tsv")?))
}

/// Tesseract's TSV (`level page_num block_num par_num line_num word_num left top width height
/// conf text`): the page's size from its level-1 row, the words from level 5, those it is
/// unsure of dropped.
fn words_from_tsv(tsv: &str) -> crate::PageWords {
    let (mut width, mut height) = (0f32, 0f32);
    let mut words = Vec::new();
    for row in tsv.lines().skip(1) {
        let fields: Vec<&str> = row.split('\t').collect();
        let [level, _, _, _, _, _, left, top, box_width, box_height, confidence, text] = fields[..] else {
            continue;
        };
        let number = |field: &str| field.trim().parse::<f32>().ok().filter(|value| value.is_finite());
        let (Some(left), Some(top), Some(box_width), Some(box_height)) =
            (number(left), number(top), number(box_width), number(box_height))
        else {
            continue;
        };
        match level.trim() {
            "1" => (width, height) = (box_width, box_height),
            "5" if width > 0.0
                && height > 0.0
                && !text.trim().is_empty()
                && number(confidence).is_some_and(|confidence| confidence >= MIN_WORD_CONFIDENCE)
                && words.len() < 50_000 =>
            {
                words.push(crate::WordBox {
                    text: text.trim().to_owned(),
                    x0: (left / width).clamp(0.0, 1.0),
                    y0: (top / height).clamp(0.0, 1.0),
                    x1: ((left + box_width) / width).clamp(0.0, 1.0),
                    y1: ((top + box_height) / height).clamp(0.0, 1.0),
                });
            }
            _ => {}
        }
    }
    let aspect = if height > 0.0 { width / height } else { 1.0 };
    crate::PageWords { aspect, words }
}

/// Paints the page image's leader dots white (see `leaders.rs`), rewriting the file, and
/// returns where they were.
fn take_out_leaders(path: &Path, dpi: f32) -> Result<Vec<LeaderRun>, String> {
    let decoded = image::ImageReader::open(path)
        .map_err(|err| format!("cannot open the page image: {err}"))?
        .with_guessed_format()
        .map_err(|err| format!("cannot read the page image: {err}"))?
        .decode()
        .map_err(|err| format!("cannot decode the page image: {err}"))?;
    let mut gray = decoded.into_luma8();
    let leaders = leaders::take_out_leaders(&mut gray, dpi);
    if !leaders.is_empty() {
        // A binary graymap (P5), as pdftoppm and ddjvu write: the encoder's default, PAM
        // (P7), is read by Leptonica without its grey levels.
        use image::ImageEncoder;
        use image::codecs::pnm::{PnmEncoder, PnmSubtype, SampleEncoding};
        let file = std::fs::File::create(path).map_err(|err| format!("cannot write the page image: {err}"))?;
        PnmEncoder::new(std::io::BufWriter::new(file))
            .with_subtype(PnmSubtype::Graymap(SampleEncoding::Binary))
            .write_image(gray.as_raw(), gray.width(), gray.height(), image::ExtendedColorType::L8)
            .map_err(|err| format!("cannot write the page image: {err}"))?;
    }
    Ok(leaders)
}

/// A line's font size in pixels, from how far its tallest letters rise above the baseline:
/// capitals, digits and ascenders reach about 0.7 of the size, x-height letters 0.45.
/// Tesseract's own row height (`x_size`) barely follows the type's size (a 12 pt heading and
/// 9 pt entries of one index page come out 40 and 37), so a heading would not stand out.
fn font_size(line: &HocrLine, baseline: f32) -> f32 {
    let letters = || line.words.iter().filter(|w| w.confidence >= MIN_WORD_CONFIDENCE);
    let Some(top) = letters().map(|w| w.top).reduce(f32::min) else {
        return line.x_size;
    };
    let tall = letters().flat_map(|w| w.text.chars()).any(|c| {
        c.is_uppercase()
            || c.is_ascii_digit()
            || "bdfhklt\\/()[]{}|!?'\"".contains(c)
            || (c.is_alphabetic() && !c.is_ascii())
    });
    let ascent = baseline - top;
    if ascent <= 0.0 {
        return line.x_size;
    }
    ascent / if tall { 0.7 } else { 0.45 }
}

/// A word Tesseract doubts right after a word it read, looking like a title's last word
/// before leaders ("session", "objects"), not like leader dots misread (`cence`, `nee`,
/// `eeae`): leaders come out as the round small letters.
fn last_word_of_title(text: &str) -> bool {
    let letters: Vec<char> = text.chars().filter(|c| c.is_alphabetic()).collect();
    let plain = text
        .trim_end_matches(['.', ',', ';', ':'])
        .chars()
        .all(|c| c.is_alphabetic() || c == '-');
    plain && letters.len() >= 3 && (letters.len() >= 6 || letters.iter().any(|c| !"ecnaosuw".contains(*c)))
}

/// The word of a "word" that runs into leader dots (`commands.......0.`): letters, then
/// dots and specks only.
fn glued_leaders(text: &str) -> Option<&str> {
    let (stem, rest) = text.split_at(text.find("..")?);
    let word = stem.chars().count() >= 2 && stem.chars().all(|c| c.is_alphabetic() || c == '-' || c == '\'');
    (word && rest.chars().all(|c| c == '.' || c.is_ascii_digit())).then_some(stem)
}

/// One line of Tesseract's hOCR: its box, baseline and size, and its words.
struct HocrLine {
    x0: f32,
    x1: f32,
    bottom: f32,
    /// Offset of the baseline from the box's bottom (negative: above it), in pixels, at the
    /// box's left edge.
    baseline_offset: f32,
    /// The baseline's slope (pixels down per pixel right): a scan's skew.
    slope: f32,
    /// Tesseract's row height: ascenders to descenders, in pixels.
    x_size: f32,
    words: Vec<HocrWord>,
}

impl HocrLine {
    /// The baseline's height on the image, in pixels from the top.
    fn baseline(&self) -> f32 {
        self.bottom + self.baseline_offset
    }
}

struct HocrWord {
    x0: f32,
    x1: f32,
    top: f32,
    bottom: f32,
    confidence: f32,
    text: String,
}

/// The numbers after `key` in an hOCR `title` (`bbox 1 2 3 4; x_wconf 96`).
fn title_numbers(title: &str, key: &str) -> Vec<f32> {
    title
        .split(';')
        .map(str::trim)
        .find_map(|property| property.strip_prefix(key).filter(|rest| rest.starts_with(' ')))
        .map(|rest| {
            rest.split_whitespace()
                .filter_map(|n| n.parse::<f32>().ok())
                .filter(|n| n.is_finite())
                .collect()
        })
        .unwrap_or_default()
}

/// Tesseract's hOCR (XHTML: pages, areas, paragraphs, lines with their baseline and row
/// height, words with boxes and confidences) read with quick-xml, which expands no entity
/// beyond XML's own.
fn hocr_lines(hocr: &str) -> ((f32, f32), Vec<HocrLine>) {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(hocr);
    let (mut page_width, mut page_height) = (0.0f32, 0.0f32);
    let mut lines: Vec<HocrLine> = Vec::new();
    // Depth of elements open inside the current word, and the word so far.
    let mut word: Option<(usize, HocrWord)> = None;
    loop {
        match reader.read_event() {
            Ok(Event::Start(element)) => {
                if let Some((depth, _)) = &mut word {
                    *depth += 1;
                    continue;
                }
                let attribute = |name: &str| {
                    element
                        .attributes()
                        .flatten()
                        .find(|a| a.key.local_name().as_ref() == name)
                        .map(|a| a.value.into_owned())
                        .unwrap_or_default()
                };
                let (class, title) = (attribute("class"), attribute("title"));
                let bbox = title_numbers(&title, "bbox");
                let [x0, top, x1, bottom] = bbox[..] else { continue };
                match class.as_str() {
                    "ocr_page" => (page_width, page_height) = (x1, bottom),
                    "ocr_line" | "ocr_header" | "ocr_caption" | "ocr_textfloat" => {
                        let baseline = title_numbers(&title, "baseline");
                        lines.push(HocrLine {
                            x0,
                            x1,
                            bottom,
                            baseline_offset: baseline.get(1).copied().unwrap_or(0.0),
                            slope: baseline.first().copied().unwrap_or(0.0),
                            x_size: title_numbers(&title, "x_size").first().copied().unwrap_or(bottom - top),
                            words: Vec::new(),
                        });
                    }
                    "ocrx_word" => {
                        let confidence = title_numbers(&title, "x_wconf").first().copied().unwrap_or(0.0);
                        word = Some((
                            0,
                            HocrWord {
                                x0,
                                x1,
                                top,
                                bottom,
                                confidence,
                                text: String::new(),
                            },
                        ));
                    }
                    _ => {}
                }
            }
            Ok(Event::Text(text)) => {
                if let Some((_, w)) = &mut word {
                    w.text.push_str(&text);
                }
            }
            Ok(Event::GeneralRef(reference)) => {
                if let Some((_, w)) = &mut word {
                    if let Ok(Some(character)) = reference.resolve_char_ref() {
                        w.text.push(character);
                    } else if let Some(text) = quick_xml::escape::resolve_predefined_entity(&reference) {
                        w.text.push_str(text);
                    }
                }
            }
            Ok(Event::End(_)) => match &mut word {
                Some((0, _)) => {
                    if let (Some((_, w)), Some(line)) = (word.take(), lines.last_mut()) {
                        line.words.push(w);
                    }
                }
                Some((depth, _)) => *depth -= 1,
                None => {}
            },
            Ok(Event::Eof) | Err(_) => break,
            Ok(_) => {}
        }
    }
    ((page_width, page_height), lines)
}

/// Least skew worth undoing (radians): below it a page's margins drift by under a point.
const MIN_SKEW: f32 = 0.002;
/// Lines whose slope tells the page's skew: at least this share of the page's width.
const SKEW_LINE_SHARE: f32 = 0.3;

/// A scan turned on the glass (a degree or two, as pages fed by hand are) leaves its lines'
/// ends drifting down the page, which the layout would take for indents, columns and
/// alignments that are not there. The page's skew is the median slope of its wide lines'
/// baselines; every word, line and leader is turned back by it about the page's centre.
fn deskew(lines: &mut [HocrLine], leaders: &mut [LeaderRun], (width, height): (f32, f32)) {
    let mut slopes: Vec<f32> = lines
        .iter()
        .filter(|line| line.x1 - line.x0 >= SKEW_LINE_SHARE * width)
        .map(|line| line.slope)
        .collect();
    if slopes.len() < 3 {
        return;
    }
    slopes.sort_by(f32::total_cmp);
    let angle = slopes[slopes.len() / 2].atan();
    if angle.abs() < MIN_SKEW {
        return;
    }
    let (sin, cos) = angle.sin_cos();
    let (cx, cy) = (width / 2.0, height / 2.0);
    // Where a point of the scan lies on the page turned straight.
    let straight = |x: f32, y: f32| {
        (
            cx + (x - cx) * cos + (y - cy) * sin,
            cy - (x - cx) * sin + (y - cy) * cos,
        )
    };
    for line in lines.iter_mut() {
        let middle = (line.x0 + line.x1) / 2.0;
        let baseline = line.bottom + line.baseline_offset + line.slope * (middle - line.x0);
        let (x, y) = straight(middle, baseline);
        let half = (line.x1 - line.x0) / 2.0;
        (line.x0, line.x1, line.bottom, line.baseline_offset, line.slope) = (x - half, x + half, y, 0.0, 0.0);
        for word in &mut line.words {
            let (mx, my) = ((word.x0 + word.x1) / 2.0, (word.top + word.bottom) / 2.0);
            let (x, y) = straight(mx, my);
            let (dx, dy) = (x - mx, y - my);
            (word.x0, word.x1, word.top, word.bottom) = (word.x0 + dx, word.x1 + dx, word.top + dy, word.bottom + dy);
        }
    }
    for run in leaders.iter_mut() {
        let middle = (run.x0 + run.x1) / 2.0;
        let (x, y) = straight(middle, run.bottom);
        let half = (run.x1 - run.x0) / 2.0;
        (run.x0, run.x1, run.bottom) = (x - half, x + half, y);
    }
}

/// A recognised page from Tesseract's hOCR at `dpi`: words become fragments on their line's
/// baseline, sized by [`font_size`], in PDF user space (points, up is positive), so the layout
/// code reads them as it reads a text layer. Leader dots, which Tesseract reads as specks of
/// nonsense ("«4454s:", "eee"), are told by their height (a dot row is a fraction of the
/// row's) and become dots again: the contents and index parsers look for leaders.
pub(crate) fn page_from_hocr(hocr: &str, dpi: f32, leaders: &[LeaderRun]) -> Recognised {
    let scale = 72.0 / dpi.max(1.0);
    let (page_size, mut lines) = hocr_lines(hocr);
    let page_height = page_size.1;
    let mut leaders = leaders.to_vec();
    deskew(&mut lines, &mut leaders, page_size);
    let leaders = leaders.as_slice();
    let (mut confidence_sum, mut words) = (0.0f64, 0usize);
    let mut frags = Vec::new();
    let line_sizes: Vec<f32> = lines.iter().map(|l| font_size(l, l.baseline())).collect();
    // The leaders taken out of the image come back as dots, at the size of the line whose
    // baseline they sit on, else of the page's usual line.
    if !leaders.is_empty() {
        let mut sorted = line_sizes.clone();
        sorted.sort_by(f32::total_cmp);
        let usual_size = sorted.get(sorted.len() / 2).copied().unwrap_or(3.0);
        for run in leaders {
            let size_px = lines
                .iter()
                .zip(&line_sizes)
                .map(|(l, &size)| ((l.baseline() - run.bottom).abs(), l.x_size, size))
                .filter(|&(distance, x_size, _)| distance <= 0.5 * x_size)
                .min_by(|a, b| a.0.total_cmp(&b.0))
                .map_or(usual_size, |(_, _, size)| size);
            let dots = ((run.x1 - run.x0) / run.pitch.max(1.0)).round().max(3.0) as usize;
            let mut leader_run = WordRun::new(&mut frags, (page_height - run.bottom) * scale, size_px * scale);
            leader_run.push(run.x0 * scale, run.x1 * scale, &".".repeat(dots));
        }
    }
    for (line, &line_size) in lines.iter().zip(&line_sizes) {
        let baseline_px = line.baseline();
        let size = (line_size * scale).max(1.0);
        let baseline = (page_height - baseline_px) * scale;
        let mut run = WordRun::new(&mut frags, baseline, size);
        // Whether the word before was a word (not leaders).
        let mut after_word = false;
        for word in &line.words {
            let text = word.text.trim();
            if text.is_empty() {
                continue;
            }
            let (x0, x1) = (word.x0 * scale, word.x1 * scale);
            // Dots sit on the baseline; a comma or an underscore hangs below it.
            let leader = (word.bottom - word.top) < LEADER_HEIGHT * line.x_size
                && (word.bottom - baseline_px).abs() <= LEADER_HEIGHT * line.x_size;
            let text = if leader {
                ".".repeat(((word.x1 - word.x0) / (LEADER_PITCH * line.x_size)).max(3.0) as usize)
            } else if let Some(stem) = glued_leaders(text) {
                // A title's last word run into its leaders ("arrows......0."): Tesseract
                // doubts the whole, but the letters before the dots are the word.
                format!("{stem} ...")
            } else if word.confidence < MIN_WORD_CONFIDENCE
                && !(after_word && run.joins(x0) && last_word_of_title(text))
            {
                // What Tesseract all but gives up on is not text (rules, specks, a word it
                // cannot read), but something is printed there: the fragment it interrupts
                // reaches over it, so that no gap opens where the layout would see a gutter.
                run.cover(x0, x1);
                after_word = false;
                continue;
            } else {
                confidence_sum += f64::from(word.confidence.clamp(0.0, 100.0)) / 100.0;
                words += 1;
                text.to_owned()
            };
            after_word = !leader && !text.ends_with("...");
            run.push(x0, x1, &text);
        }
    }
    Recognised {
        lines: layout::layout(&frags),
        seconds: 0.0,
        confidence: (words > 0).then(|| confidence_sum / words as f64),
        words,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A page scanned 1.5 degrees askew: three lines that start at one margin on the page
    /// come out of Tesseract with left ends drifting 30 pixels apart; turned back, they start
    /// together again and lie level.
    #[test]
    fn a_skewed_scan_is_turned_straight_before_the_layout() {
        let (width, height) = (2550.0f32, 3300.0f32);
        let angle = 1.5f32.to_radians();
        let (sin, cos) = angle.sin_cos();
        let (cx, cy) = (width / 2.0, height / 2.0);
        // Where a point of the straight page lies on the skewed scan.
        let scanned = |x: f32, y: f32| {
            (
                cx + (x - cx) * cos - (y - cy) * sin,
                cy + (x - cx) * sin + (y - cy) * cos,
            )
        };
        let mut body = String::new();
        for (n, baseline) in [1000.0f32, 1500.0, 2000.0].into_iter().enumerate() {
            let (x0, y0) = scanned(300.0, baseline);
            let (x1, y1) = scanned(1700.0, baseline);
            let top = y0.min(y1) - 40.0;
            let bottom = y0.max(y1);
            let word_end = scanned(600.0, baseline);
            body.push_str(&format!(
                "<span class='ocr_line' title='bbox {x0:.0} {top:.0} {x1:.0} {bottom:.0}; baseline {slope:.4} {offset:.0}; x_size 40'>\
                 <span class='ocrx_word' title='bbox {x0:.0} {wt:.0} {wx:.0} {wb:.0}; x_wconf 95'>Line{n}</span>\
                 <span class='ocrx_word' title='bbox {mx:.0} {mt:.0} {x1:.0} {bottom:.0}; x_wconf 95'>words</span></span>",
                slope = (y1 - y0) / (x1 - x0),
                offset = y0 - bottom,
                wt = y0 - 40.0,
                wx = word_end.0,
                wb = y0,
                mx = scanned(1400.0, baseline).0,
                mt = y1 - 40.0,
            ));
        }
        let hocr =
            format!("<html><body><div class='ocr_page' title='bbox 0 0 {width} {height}'>{body}</div></body></html>");
        let page = page_from_hocr(&hocr, 300.0, &[]);
        assert_eq!(page.lines.len(), 3, "{:?}", page.lines);
        let lefts: Vec<f32> = page.lines.iter().map(|line| line.x0).collect();
        let spread = lefts.iter().copied().fold(f32::MIN, f32::max) - lefts.iter().copied().fold(f32::MAX, f32::min);
        assert!(spread < 1.5, "the lines start together: {lefts:?}");
        let gaps: Vec<f32> = page.lines.windows(2).map(|pair| pair[0].y - pair[1].y).collect();
        assert!(
            gaps.iter().all(|gap| (gap - 120.0).abs() < 2.0),
            "500 px apart at 300 dpi: {gaps:?}"
        );
    }

    #[test]
    fn leaders_taken_out_of_the_image_come_back_between_term_and_page() {
        // Tesseract read the term and the page number of an index line from an image whose
        // leaders were taken out, and read nothing on a row of leaders alone.
        let hocr = r#"<html><body><div class='ocr_page' title='bbox 0 0 2550 3300'>
  <span class='ocr_line' title="bbox 300 600 420 642; baseline 0 -8; x_size 40; x_descenders 8; x_ascenders 9">
   <span class='ocrx_word' title='bbox 300 604 420 634; x_wconf 93'>abline</span>
  </span>
  <span class='ocr_line' title="bbox 1100 600 1150 634; baseline 0 0; x_size 40; x_descenders 8; x_ascenders 9">
   <span class='ocrx_word' title='bbox 1100 604 1150 634; x_wconf 96'>62</span>
  </span>
</div></body></html>"#;
        let leaders = [
            LeaderRun {
                x0: 440.0,
                x1: 1080.0,
                bottom: 634.0,
                pitch: 20.0,
            },
            LeaderRun {
                x0: 440.0,
                x1: 1080.0,
                bottom: 900.0,
                pitch: 20.0,
            },
        ];
        let page = page_from_hocr(hocr, 300.0, &leaders);
        let texts: Vec<&str> = page.lines.iter().map(|line| line.text.as_str()).collect();
        assert_eq!(texts[0], format!("abline {} 62", ".".repeat(32)));
        let parsed = crate::index::parse_line(texts[0]);
        assert_eq!(parsed.term, "abline");
        assert_eq!(parsed.locators.len(), 1);
        // The leaders alone come back at the page's usual size, not as a heading.
        assert!(
            (page.lines[1].size - page.lines[0].size).abs() < 0.01,
            "{:?}",
            page.lines
        );
    }

    #[test]
    fn tesseract_hocr_becomes_lines_from_the_bottom_left() {
        let hocr = r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
<html xmlns="http://www.w3.org/1999/xhtml"><body>
<div class='ocr_page' id='page_1' title='image "p.pgm"; bbox 0 0 2550 3300; ppageno 0'>
 <div class='ocr_carea' title="bbox 300 400 2000 700"><p class='ocr_par' title="bbox 300 400 2000 700">
  <span class='ocr_header' title="bbox 300 400 500 450; baseline 0 -10; x_size 60; x_descenders 10; x_ascenders 12">
   <span class='ocrx_word' title='bbox 300 400 500 440; x_wconf 96'><strong>Index</strong></span>
  </span>
  <span class='ocr_line' title="bbox 300 600 2000 650; baseline 0.001 -8; x_size 40; x_descenders 8; x_ascenders 9">
   <span class='ocrx_word' title='bbox 200 600 290 642; x_wconf 90'>sorted</span>
   <span class='ocrx_word' title='bbox 300 600 450 642; x_wconf 9'>arrays,</span>
   <span class='ocrx_word' title='bbox 470 600 530 642; x_wconf 80'>12&amp;13</span>
   <span class='ocrx_word' title='bbox 540 600 555 642; x_wconf 2'>and....0.</span>
   <span class='ocrx_word' title='bbox 560 636 1900 642; x_wconf 3'>«4454s:</span>
   <span class='ocrx_word' title='bbox 1920 612 1960 642; x_wconf 95'>7</span>
   <span class='ocrx_word' title='bbox 1970 600 2000 642; x_wconf 10'>~</span>
  </span>
 </p></div>
</div></body></html>"#;
        let page = page_from_hocr(hocr, 300.0, &[]);
        let texts: Vec<&str> = page.lines.iter().map(|line| line.text.as_str()).collect();
        let leaders = ".".repeat(111);
        assert_eq!(
            texts,
            ["Index".to_owned(), format!("sorted arrays, 12&13 and ... {leaders} 7")]
        );
        // The baseline lies 10 pixels above the header's box bottom; "Index" rises 40 pixels
        // above it, capital height: a font of 40 / 0.7 pixels.
        assert!(
            (page.lines[0].y - (3300.0 - 440.0) * 0.24).abs() < 0.01,
            "{}",
            page.lines[0].y
        );
        assert!(
            (page.lines[0].size - 40.0 / 0.7 * 0.24).abs() < 0.01,
            "{}",
            page.lines[0].size
        );
        // Leaders and specks are no words; a doubted word after a word is ("arrays,").
        assert_eq!(page.words, 5);
        assert!(
            (page.confidence.unwrap_or_default() - 0.74).abs() < 0.001,
            "{:?}",
            page.confidence
        );
    }
}

#[cfg(test)]
mod word_box_tests {
    #[test]
    fn tesseract_tsv_words_become_fractions_of_the_page_and_unsure_ones_are_dropped() {
        let tsv = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n\
                   1\t1\t0\t0\t0\t0\t0\t0\t2000\t4000\t-1\t\n\
                   4\t1\t1\t1\t1\t0\t200\t400\t600\t80\t-1\t\n\
                   5\t1\t1\t1\t1\t1\t200\t400\t300\t80\t96.5\tVectors\n\
                   5\t1\t1\t1\t1\t2\t520\t400\t100\t80\t12.0\t~~\n\
                   5\t1\t1\t1\t1\t3\t640\t400\t100\t80\t90\t \n\
                   5\tbroken row\n";
        let words = super::words_from_tsv(tsv);
        assert!((words.aspect - 0.5).abs() < 1e-6);
        assert_eq!(words.words.len(), 1, "{:?}", words.words);
        let word = &words.words[0];
        assert_eq!(word.text, "Vectors");
        assert!((word.x0 - 0.1).abs() < 1e-6 && (word.x1 - 0.25).abs() < 1e-6);
        assert!((word.y0 - 0.1).abs() < 1e-6 && (word.y1 - 0.12).abs() < 1e-6);
    }
}
