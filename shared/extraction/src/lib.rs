//! Book structure extraction from PDF and EPUB files (told apart by their bytes,
//! [`detect_format`]): page labels, the table of contents, the back-of-book indexes and the
//! text of each page. EPUBs are read by `epub.rs`; everything else here is the PDF reader.
//!
//! Everything here treats the PDF as untrusted input: malformed structures become
//! [`ExtractError`]s (when the file as a whole is unusable) or entries in
//! [`Extraction::warnings`] (when only a part of it is broken). Recursion is capped and
//! reference cycles are tracked with visited sets, so a hostile file can neither panic nor hang
//! the extractor.

mod book;
mod djvu;
mod epub;
mod index;
mod labels;
mod layout;
mod leaders;
mod ocr;
mod outline;
mod render;
mod signals;
mod tables;
mod text;
mod textstring;
mod toc;
mod tools;
mod verify;

use std::panic::{AssertUnwindSafe, catch_unwind};

use lopdf::{Document, LoadOptions, ObjectId};
use serde::{Deserialize, Serialize};

pub use epub::PAGE_CHARS as EPUB_PAGE_CHARS;
pub use index::{IndexInfo, MAX_INDEX_DEPTH};
pub use layout::{PageLayout, TextLine};
pub use render::{PageWords, WIDTHS as PAGE_IMAGE_WIDTHS, WordBox, page_words, render_page};
pub use signals::{StructureSignals, sibling_order};
pub use textstring::decode_text_string;

/// Limits applied before and during extraction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractOptions {
    /// Refuse books with more pages than this.
    pub max_pages: usize,
    /// Refuse files larger than this many bytes.
    pub max_file_bytes: u64,
    /// Tesseract's languages for pages without a text layer (`eng`, `eng+deu`); `None`: no
    /// OCR.
    pub ocr_languages: Option<String>,
}

impl Default for ExtractOptions {
    fn default() -> Self {
        Self {
            max_pages: 20_000,
            max_file_bytes: 512 * 1024 * 1024,
            ocr_languages: Some("eng".to_owned()),
        }
    }
}

/// What OCR did for a book: how many pages it read and how sure it was.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OcrSummary {
    /// Pages recognised.
    pub pages: u32,
    /// Pages whose recognition failed (each is a warning).
    pub failed: u32,
    /// Mean word confidence over the recognised pages, 0 to 1.
    pub mean_confidence: Option<f64>,
    /// Tesseract's languages used.
    pub languages: String,
    /// Seconds the recognised pages took to render and recognise, summed over the pages
    /// (which run side by side, so this exceeds the wall time on several cores).
    #[serde(default)]
    pub page_seconds: f64,
}

/// Why a file could not be extracted at all.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// Not a PDF (a `%PDF-` marker in the first 1024 bytes), an EPUB (a zip whose first
    /// entry says `application/epub+zip`) or a DjVu document (`AT&TFORM`).
    #[error("the file is not a PDF, an EPUB or a DjVu document (the accepted types)")]
    UnsupportedFormat,
    /// The EPUB's zip, package document or spine cannot be read.
    #[error("the EPUB is damaged: {0}")]
    BadEpub(String),
    /// djvulibre cannot read the DjVu document (or is not installed).
    #[error("the DjVu document cannot be read: {0}")]
    BadDjvu(String),
    /// The file has no content.
    #[error("the file is empty")]
    Empty,
    /// The trailer has an `/Encrypt` entry.
    #[error("the PDF is encrypted; upload an unencrypted copy")]
    Encrypted,
    /// The file is larger than [`ExtractOptions::max_file_bytes`].
    #[error("the file is too large ({bytes} bytes, the limit is {limit} bytes)")]
    TooLarge { bytes: u64, limit: u64 },
    /// The document has more pages than [`ExtractOptions::max_pages`].
    #[error("the PDF has too many pages ({pages}, the limit is {limit})")]
    TooManyPages { pages: usize, limit: usize },
    /// lopdf could not parse the file.
    #[error("the PDF is damaged: {0}")]
    Corrupt(String),
    /// The document parsed but has no pages.
    #[error("the PDF has no pages")]
    NoPages,
}

/// Longest table-of-contents title kept, in bytes: titles travel into every chunk's section
/// path, and no real heading is longer than a few lines.
pub const MAX_TITLE_BYTES: usize = 400;
/// How far into the file the `%PDF-` marker may appear.
const MAGIC_WINDOW: usize = 1024;
/// Most warnings kept; further ones are only counted.
const MAX_WARNINGS: usize = 200;
/// Largest decompressed size of one page's content (or one font stream), in bytes.
pub(crate) const MAX_STREAM_BYTES: usize = 64 * 1024 * 1024;
/// Largest decompressed size of all page contents, forms and font streams of one document
/// together, counted each time one is read: bounds the time a small file can cost (a text
/// book of 20 000 pages needs well under half of it).
pub(crate) const MAX_DOCUMENT_STREAM_BYTES: usize = 1024 * 1024 * 1024;

/// The kinds of book file read, told apart by their first bytes, never by a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Pdf,
    Epub,
    Djvu,
}

/// Cheap check of a file's first bytes (the first 1024 are enough): not empty, and a PDF or
/// an EPUB by its signature.
pub fn detect_format(bytes: &[u8]) -> Result<Format, ExtractError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ExtractError::Empty);
    }
    let window = &bytes[..bytes.len().min(MAGIC_WINDOW)];
    if window.windows(5).any(|w| w == b"%PDF-") {
        Ok(Format::Pdf)
    } else if epub::is_epub(window) {
        Ok(Format::Epub)
    } else if djvu::is_djvu(window) {
        Ok(Format::Djvu)
    } else {
        Err(ExtractError::UnsupportedFormat)
    }
}

/// [`detect_format`] without the format: whether the file can be read at all.
pub fn validate_header(bytes: &[u8]) -> Result<(), ExtractError> {
    detect_format(bytes).map(|_| ())
}

/// The text of one page.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PageText {
    /// 1-based physical page number.
    pub number: u32,
    /// Printed page label.
    pub label: String,
    /// Text, one line per printed line, in content-stream order.
    pub text: String,
}

/// Where the table of contents came from.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TocSource {
    Outline,
    PrintedContents,
    Headings,
    None,
}

impl TocSource {
    /// The name used in JSON and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            TocSource::Outline => "outline",
            TocSource::PrintedContents => "printed_contents",
            TocSource::Headings => "headings",
            TocSource::None => "none",
        }
    }
}

/// One table-of-contents entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TocEntry {
    /// Nesting level, 1 = top.
    pub level: u32,
    pub title: String,
    /// 1-based physical page, `None` when the destination could not be resolved.
    pub page: Option<u32>,
}

/// One back-of-book index entry or sub-entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct IndexEntry {
    /// The entry with its parents (a top-level entry has one element).
    pub path: Vec<String>,
    /// Physical pages (1-based) as `[first, last]` pairs.
    pub pages: Vec<[u32; 2]>,
    pub see: Vec<String>,
    pub see_also: Vec<String>,
    /// Heading of the index the entry belongs to ("Concept Index").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_name: Option<String>,
    /// The locators as printed ("12", "31–33", "xiv", "20ff.").
    #[serde(default)]
    pub printed: Vec<String>,
    /// Nesting depth: 1 for entries, 2 for sub-entries, ...
    #[serde(default)]
    pub depth: u32,
}

/// Everything extracted from one book.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Extraction {
    pub page_count: u32,
    /// One printed label per physical page.
    pub page_labels: Vec<String>,
    pub toc_source: TocSource,
    /// Flat, in document order.
    pub toc: Vec<TocEntry>,
    pub index: Vec<IndexEntry>,
    /// The printed indexes found (name and physical pages).
    #[serde(default)]
    pub indices: Vec<IndexInfo>,
    /// Physical pages (`[first, last]`) of each printed contents listing, whether or not the
    /// ToC was taken from it: with the index pages, the book's navigation pages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contents_pages: Vec<[u32; 2]>,
    /// Share of index locators whose page shows the entry (or its head word); `None` when
    /// the book has no index.
    #[serde(default)]
    pub index_support_rate: Option<f64>,
    /// Signals of how far the structure can be trusted (nesting depth, alphabetical order,
    /// locator support, ToC order): a parse never fails as a whole, it says what it doubts.
    #[serde(default)]
    pub signals: StructureSignals,
    /// Filled only when page text was requested.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub pages: Vec<PageText>,
    /// Present when pages without a text layer were recognised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ocr: Option<OcrSummary>,
    /// Problems met but survived.
    pub warnings: Vec<String>,
}

impl Extraction {
    /// Whether a page only points elsewhere, in whole or in part: a printed contents or index
    /// page. Such pages repeat every title and term of the book, so search keeps their listings
    /// out of its ranked lists.
    pub fn is_navigation_page(&self, page: u32) -> bool {
        self.contents_pages
            .iter()
            .chain(self.indices.iter().map(|index| &index.physical_pages))
            .any(|[first, last]| (*first..=*last).contains(&page))
    }

    /// The part of a page that discusses something: the whole text of an ordinary page; of a
    /// page where an index starts below the end of a chapter, the lines above the index
    /// heading; of any other navigation page, nothing.
    pub fn discussion_text<'a>(&self, page: &'a PageText) -> Option<&'a str> {
        if !self.is_navigation_page(page.number) {
            return Some(&page.text);
        }
        let index = self
            .indices
            .iter()
            .find(|index| index.physical_pages[0] == page.number)?;
        let mut offset = 0;
        for line in page.text.split('\n') {
            if line.trim() == index.name {
                let above = page.text[..offset].trim_end();
                return above.chars().any(char::is_alphanumeric).then_some(above);
            }
            offset += line.len() + 1;
        }
        None
    }
}

/// Progress reports from [`extract`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Pages read. A page that OCR will read is not counted while the pages are laid out, so
    /// that `done` never goes back: `total - ` the `Recognised` total pages are done when OCR
    /// begins, and a last report says `done == total`.
    Pages { done: u32, total: u32 },
    /// Pages without a text layer recognised by OCR, after the layout of all.
    Recognised { done: u32, total: u32 },
}

/// Collects warnings, keeping at most [`MAX_WARNINGS`].
#[derive(Debug, Default)]
pub(crate) struct Warnings {
    list: Vec<String>,
    dropped: usize,
}

impl Warnings {
    pub(crate) fn push(&mut self, message: impl Into<String>) {
        if self.list.len() < MAX_WARNINGS {
            self.list.push(message.into());
        } else {
            self.dropped += 1;
        }
    }

    fn finish(mut self) -> Vec<String> {
        if self.dropped > 0 {
            self.list
                .push(format!("{} more warnings were not listed", self.dropped));
        }
        self.list
    }
}

/// A file over [`ExtractOptions::max_file_bytes`] is refused, whatever its format.
fn check_size(bytes: &[u8], opts: &ExtractOptions) -> Result<(), ExtractError> {
    let size = bytes.len() as u64;
    if size > opts.max_file_bytes {
        return Err(ExtractError::TooLarge {
            bytes: size,
            limit: opts.max_file_bytes,
        });
    }
    Ok(())
}

/// Open and check a document: its page ids.
fn open(bytes: &[u8], opts: &ExtractOptions) -> Result<(Document, Vec<ObjectId>, u32), ExtractError> {
    if detect_format(bytes)? != Format::Pdf {
        return Err(ExtractError::UnsupportedFormat);
    }
    check_size(bytes, opts)?;
    let doc = load(bytes)?;
    if doc.trailer.has(b"Encrypt") {
        return Err(ExtractError::Encrypted);
    }

    let pages: Vec<ObjectId> = guarded(|| doc.page_iter().collect()).unwrap_or_default();
    if pages.is_empty() {
        return Err(ExtractError::NoPages);
    }
    if pages.len() > opts.max_pages {
        return Err(ExtractError::TooManyPages {
            pages: pages.len(),
            limit: opts.max_pages,
        });
    }
    let total = u32::try_from(pages.len()).map_err(|_| ExtractError::TooManyPages {
        pages: pages.len(),
        limit: opts.max_pages,
    })?;
    Ok((doc, pages, total))
}

/// Lay out every page: lines with positions, in reading order; and for each page whether it
/// looks scanned (images cover most of it), which is where OCR may find text.
fn layouts(
    doc: &Document,
    pages: &[ObjectId],
    warnings: &mut Warnings,
    progress: &mut dyn FnMut(Progress),
) -> (Vec<PageLayout>, Vec<bool>) {
    let total = pages.len() as u32;
    let mut extractor = text::TextExtractor::new(doc);
    let mut out = Vec::with_capacity(pages.len());
    let mut pictured = Vec::with_capacity(pages.len());
    let mut done = 0;
    for (i, &page_id) in pages.iter().enumerate() {
        let number = (i + 1) as u32;
        let content = match guarded(|| extractor.page_content(page_id, warnings)) {
            Some(Ok(content)) => content,
            Some(Err(message)) => {
                warnings.push(format!("page {number}: {message}"));
                text::PageContent::default()
            }
            None => {
                warnings.push(format!("page {number}: the text could not be read"));
                text::PageContent::default()
            }
        };
        let lines = guarded(|| layout::layout(&content.frags)).unwrap_or_default();
        let page = PageLayout { number, lines };
        let is_pictured = content.image_cover >= ocr::MIN_IMAGE_COVER;
        if !ocr::needs_ocr(&page, is_pictured) {
            done += 1;
            progress(Progress::Pages { done, total });
        }
        out.push(page);
        pictured.push(is_pictured);
    }
    (out, pictured)
}

/// The lines of every page with their positions and font sizes, in reading order (two-column
/// pages column by column).
pub fn extract_layouts(bytes: &[u8], opts: &ExtractOptions) -> Result<Vec<PageLayout>, ExtractError> {
    let (doc, pages, _) = open(bytes, opts)?;
    let mut warnings = Warnings::default();
    Ok(layouts(&doc, &pages, &mut warnings, &mut |_| {}).0)
}

/// Extract page labels, the table of contents (from the outline, else the printed contents
/// pages, else headings), the back-of-book indexes and (when `with_page_text`) the text of
/// every page. `progress` is called after each page, and at least once with `done == total`.
pub fn extract(
    bytes: &[u8],
    opts: &ExtractOptions,
    with_page_text: bool,
    progress: &mut dyn FnMut(Progress),
) -> Result<Extraction, ExtractError> {
    let format = detect_format(bytes)?;
    check_size(bytes, opts)?;
    match format {
        Format::Epub => {
            return guarded(|| epub::extract(bytes, opts, with_page_text, progress))
                .unwrap_or_else(|| Err(ExtractError::BadEpub("the book could not be read".to_owned())));
        }
        Format::Djvu => {
            let mut warnings = Warnings::default();
            let book = guarded(|| djvu::read(bytes, opts, &mut warnings, progress))
                .unwrap_or_else(|| Err(ExtractError::BadDjvu("the document could not be read".to_owned())))?;
            let mut extraction = structure(
                book.layouts,
                book.labels,
                book.outline,
                warnings,
                with_page_text,
                progress,
            );
            extraction.ocr = book.ocr;
            return Ok(extraction);
        }
        Format::Pdf => {}
    }
    let (doc, pages, total) = open(bytes, opts)?;

    let mut warnings = Warnings::default();
    let tree_labels = guarded(|| labels::page_labels(&doc, pages.len(), &mut warnings)).unwrap_or_else(|| {
        warnings.push("page labels could not be read");
        None
    });
    let outline = guarded(|| outline::outline_toc(&doc, &pages, &mut warnings)).unwrap_or_else(|| {
        warnings.push("the outline could not be read");
        Vec::new()
    });

    let (mut layouts, pictured) = layouts(&doc, &pages, &mut warnings, progress);
    drop(doc);
    debug_assert_eq!(layouts.len() as u32, total);
    let ocr = match &opts.ocr_languages {
        Some(languages) => match tools::TempFile::write(bytes, "pdf") {
            Ok(file) => ocr::fill_empty_pages(
                ocr::PageImages::Pdf(&file.0),
                &mut layouts,
                &pictured,
                languages,
                &mut warnings,
                progress,
            ),
            Err(message) => {
                warnings.push(message);
                None
            }
        },
        None => None,
    };
    progress(Progress::Pages { done: total, total });
    let mut extraction = structure(layouts, tree_labels, outline, warnings, with_page_text, progress);
    extraction.ocr = ocr;
    Ok(extraction)
}

/// The structure of a book from its laid-out pages, whatever they were read from (a PDF's
/// text, a DjVu text layer): page labels (`tree_labels` when the file has them, else
/// inferred from the printed folios), the ToC (`outline` when the file has one, else the
/// printed contents, else headings), the indexes, their support and the signals.
fn structure(
    layouts: Vec<PageLayout>,
    tree_labels: Option<Vec<String>>,
    outline: Vec<TocEntry>,
    mut warnings: Warnings,
    with_page_text: bool,
    progress: &mut dyn FnMut(Progress),
) -> Extraction {
    let total = u32::try_from(layouts.len()).unwrap_or(u32::MAX);
    let has_tree = tree_labels.is_some();
    let page_labels = tree_labels.unwrap_or_else(|| (1..=layouts.len()).map(|n| n.to_string()).collect());
    let mut book = book::Book::new(layouts, page_labels);
    if !has_tree && let Some(inferred) = guarded(|| book.inferred_labels()).flatten() {
        book.labels = inferred;
    }

    let printed_contents = guarded(|| toc::printed_contents(&book)).unwrap_or_default();
    let contents_pages: Vec<[u32; 2]> = printed_contents.iter().map(|contents| contents.pages).collect();
    let (toc_source, toc) = if !outline.is_empty() {
        (TocSource::Outline, outline)
    } else {
        let printed = toc::longest_listing(printed_contents);
        if printed.len() >= 3 {
            (TocSource::PrintedContents, printed)
        } else {
            let headings = guarded(|| toc::headings_toc(&book)).unwrap_or_default();
            if headings.is_empty() {
                (TocSource::None, headings)
            } else {
                (TocSource::Headings, headings)
            }
        }
    };

    let mut toc = toc;
    for entry in &mut toc {
        if entry.title.len() > MAX_TITLE_BYTES {
            warnings.push(format!(
                "a table-of-contents title of {} bytes was cut to {MAX_TITLE_BYTES}",
                entry.title.len()
            ));
            entry.title = index::cut(&entry.title, MAX_TITLE_BYTES);
        }
    }

    let (index, indices) = guarded(|| index::extract_indexes(&book)).unwrap_or_else(|| {
        warnings.push("the index could not be read");
        (Vec::new(), Vec::new())
    });
    let index_support_rate = if index.is_empty() {
        None
    } else {
        guarded(|| verify::support_rate(&book, &index)).flatten()
    };

    let page_texts = if with_page_text {
        book.pages
            .iter()
            .enumerate()
            .map(|(i, p)| PageText {
                number: p.number,
                label: book.labels.get(i).cloned().unwrap_or_else(|| p.number.to_string()),
                text: p.text(),
            })
            .collect()
    } else {
        Vec::new()
    };
    if total == 0 {
        progress(Progress::Pages { done: 0, total });
    }

    let signals = StructureSignals::measure(&toc, &indices, &index, index_support_rate);
    Extraction {
        page_count: total,
        page_labels: book.labels,
        toc_source,
        toc,
        index,
        indices,
        contents_pages,
        index_support_rate,
        signals,
        pages: page_texts,
        ocr: None,
        warnings: warnings.finish(),
    }
}

/// Run `f`, turning a panic inside a dependency into `None`.
fn guarded<T>(f: impl FnOnce() -> T) -> Option<T> {
    catch_unwind(AssertUnwindSafe(f)).ok()
}

fn load(bytes: &[u8]) -> Result<Document, ExtractError> {
    let options = LoadOptions {
        max_decompressed_size: Some(MAX_STREAM_BYTES),
        ..LoadOptions::default()
    };
    match guarded(|| Document::load_mem_with_options(bytes, options)) {
        Some(Ok(doc)) => Ok(doc),
        Some(Err(err)) => {
            if mentions_encrypt(bytes) {
                Err(ExtractError::Encrypted)
            } else {
                Err(ExtractError::Corrupt(err.to_string()))
            }
        }
        None => Err(ExtractError::Corrupt("the file structure could not be read".into())),
    }
}

/// Whether a trailer (or cross-reference stream dictionary) names an `/Encrypt` dictionary.
fn mentions_encrypt(bytes: &[u8]) -> bool {
    bytes.windows(8).any(|w| w == b"/Encrypt")
}
