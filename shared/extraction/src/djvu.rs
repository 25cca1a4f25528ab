//! DjVu (single or multi-page, bundled; an indirect document is many files and comes as
//! one of them) read with djvulibre's `djvused`, the reference implementation: its outline
//! becomes the ToC, its hidden text layer, words with their boxes, becomes positioned text
//! for the same layout code as a PDF's (lines, columns, printed contents, the index), and its
//! page titles (which `pdf2djvu` and most scanning tools set to the printed page numbers)
//! the page labels. A page without a text layer is a warning: it needs OCR.
//!
//! djvulibre parses the untrusted file in processes of its own, under this process's
//! address-space limit, each with a deadline and a cap on what it may print, so a hostile
//! file (a chunk loop, a BZZ bomb) ends in an error. The one thing read here is djvused's
//! own output, S-expressions, by [`parse_sexpr`] (a few lines with an explicit stack: no crate
//! reads this dialect, with its octal escapes, and nesting is bounded by the loop, not the
//! call stack).

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::layout::{self, PageLayout};
use crate::text::{Frag, WordRun};
use crate::{ExtractError, ExtractOptions, MAX_TITLE_BYTES, Progress, TocEntry, Warnings};

/// The longest one djvused run may take.
const TOOL_DEADLINE: Duration = Duration::from_secs(300);
/// The most a djvused run may print.
const MAX_TOOL_OUTPUT: u64 = 512 * 1024 * 1024;

/// Whether the first bytes of a file are a DjVu document's: `AT&TFORM`, then a `DJVU`
/// (one page) or `DJVM` (several) form.
pub fn is_djvu(bytes: &[u8]) -> bool {
    bytes.len() >= 16 && bytes.starts_with(b"AT&TFORM") && matches!(&bytes[12..16], b"DJVU" | b"DJVM")
}

/// What djvulibre gives of a document.
pub(crate) struct DjvuBook {
    pub(crate) layouts: Vec<PageLayout>,
    /// Page titles, when every page has one.
    pub(crate) labels: Option<Vec<String>>,
    pub(crate) outline: Vec<TocEntry>,
    pub(crate) ocr: Option<crate::OcrSummary>,
}

fn tool_error(message: String) -> ExtractError {
    ExtractError::BadDjvu(message)
}

/// Runs `djvused -e SCRIPT FILE` within [`TOOL_DEADLINE`] and [`MAX_TOOL_OUTPUT`].
fn djvused(file: &Path, script: &str) -> Result<String, ExtractError> {
    let mut command = Command::new("djvused");
    command.arg("-e").arg(script).arg(file);
    crate::tools::run(
        command,
        "djvused (Debian package djvulibre-bin)",
        TOOL_DEADLINE,
        MAX_TOOL_OUTPUT,
    )
    .map(|output| String::from_utf8_lossy(&output).into_owned())
    .map_err(|message| {
        // The temporary copy's path is nobody's business.
        tool_error(message.replace(&file.display().to_string(), "the document"))
    })
}

/// One S-expression of djvused's output.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Sexpr {
    List(Vec<Sexpr>),
    Atom(String),
    Text(String),
}

impl Sexpr {
    fn number(&self) -> Option<f32> {
        match self {
            Sexpr::Atom(atom) => atom.parse().ok(),
            _ => None,
        }
    }
}

/// Deepest list kept by [`parse_sexpr`]; deeper lists are read into the one above. djvused's
/// text nests seven deep (page, column, region, paragraph, line, word, character), and a
/// tree as deep as a hostile outline could make it would overflow the stack when dropped.
const MAX_SEXPR_DEPTH: usize = 64;

/// Reads the S-expressions of `input`, in order: lists, bare atoms, and strings with C
/// escapes (octal bytes, `\n`, `\"`...), the bytes read as UTF-8. Unbalanced input ends what
/// is open; lists nest at most [`MAX_SEXPR_DEPTH`] deep.
pub(crate) fn parse_sexpr(input: &str) -> Vec<Sexpr> {
    let bytes = input.as_bytes();
    let mut stack: Vec<Vec<Sexpr>> = vec![Vec::new()];
    // Lists opened below the depth limit, not kept apart.
    let mut flattened = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'(' => {
                if stack.len() > MAX_SEXPR_DEPTH {
                    flattened += 1;
                } else {
                    stack.push(Vec::new());
                }
                i += 1;
            }
            b')' if flattened > 0 => {
                flattened -= 1;
                i += 1;
            }
            b')' => {
                if stack.len() > 1
                    && let Some(done) = stack.pop()
                    && let Some(parent) = stack.last_mut()
                {
                    parent.push(Sexpr::List(done));
                }
                i += 1;
            }
            b'"' => {
                let mut text = Vec::new();
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' && i + 1 < bytes.len() {
                        i += 1;
                        let escaped = match bytes[i] {
                            b'n' => b'\n',
                            b't' => b'\t',
                            b'r' => b'\r',
                            b'0'..=b'7' => {
                                let digits = bytes[i..]
                                    .iter()
                                    .take(3)
                                    .take_while(|b| (b'0'..=b'7').contains(b))
                                    .count();
                                let value = bytes[i..i + digits]
                                    .iter()
                                    .fold(0u32, |value, digit| value * 8 + u32::from(digit - b'0'));
                                i += digits - 1;
                                u8::try_from(value).unwrap_or(b'?')
                            }
                            other => other,
                        };
                        text.push(escaped);
                    } else {
                        text.push(bytes[i]);
                    }
                    i += 1;
                }
                i += 1;
                if let Some(open) = stack.last_mut() {
                    open.push(Sexpr::Text(String::from_utf8_lossy(&text).into_owned()));
                }
            }
            b if b.is_ascii_whitespace() => i += 1,
            b';' => {
                // A comment, to the end of the line.
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            _ => {
                let start = i;
                while i < bytes.len() && !bytes[i].is_ascii_whitespace() && !matches!(bytes[i], b'(' | b')' | b'"') {
                    i += 1;
                }
                if let Some(open) = stack.last_mut() {
                    open.push(Sexpr::Atom(input[start..i].to_owned()));
                }
            }
        }
    }
    while stack.len() > 1 {
        if let Some(done) = stack.pop()
            && let Some(parent) = stack.last_mut()
        {
            parent.push(Sexpr::List(done));
        }
    }
    stack.pop().unwrap_or_default()
}

/// The pages as `djvused -e ls` lists them: each page's file id and title, in order.
fn pages(listing: &str) -> Vec<(String, Option<String>)> {
    listing
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let _number: u32 = fields.next()?.parse().ok()?;
            if fields.next()? != "P" {
                return None;
            }
            let _size = fields.next()?;
            let id = fields.next()?.to_owned();
            let title = fields.find_map(|field| field.strip_prefix("T=")).map(str::to_owned);
            Some((id, title))
        })
        .collect()
}

/// The ToC from `print-outline`: `(bookmarks ("title" "#target" children...) ...)`, the
/// target a page's file id or its number.
fn outline(sexprs: &[Sexpr], page_of_id: &HashMap<String, u32>, page_count: u32) -> Vec<TocEntry> {
    let Some(Sexpr::List(bookmarks)) = sexprs.first() else {
        return Vec::new();
    };
    let mut entries = Vec::new();
    // (items to visit, level), depth-first with an explicit stack, in reading order.
    let mut pending: Vec<(&[Sexpr], u32)> = vec![(bookmarks.get(1..).unwrap_or_default(), 1)];
    while let Some((items, level)) = pending.pop() {
        let Some((first, rest)) = items.split_first() else {
            continue;
        };
        pending.push((rest, level));
        let Sexpr::List(item) = first else {
            continue;
        };
        let title = match item.first() {
            Some(Sexpr::Text(title)) => title.split_whitespace().collect::<Vec<_>>().join(" "),
            _ => continue,
        };
        let page = match item.get(1) {
            Some(Sexpr::Text(target)) => {
                let target = target.trim_start_matches('#');
                page_of_id.get(target).copied().or_else(|| {
                    target
                        .parse::<u32>()
                        .ok()
                        .filter(|&page| (1..=page_count).contains(&page))
                })
            }
            _ => None,
        };
        if !title.is_empty() {
            entries.push(TocEntry {
                level,
                title: crate::index::cut(&title, MAX_TITLE_BYTES),
                page,
            });
        }
        pending.push((item.get(2..).unwrap_or_default(), level + 1));
    }
    entries
}

/// The positioned text of one page from its `(page x0 y0 x1 y1 (line ... (word x0 y0 x1 y1
/// "text") ...) ...)`, in points at `dpi`: the words of a line joined into fragments up to a
/// wide gap, each on the line's bottom edge, its size from the line's height.
fn page_frags(page: &Sexpr, dpi: f32) -> Vec<Frag> {
    let scale = 72.0 / dpi.max(1.0);
    let mut frags = Vec::new();
    // Lines can sit at any depth (page > column > region > para > line): walk with a stack.
    let mut pending: Vec<&Sexpr> = vec![page];
    while let Some(node) = pending.pop() {
        let Sexpr::List(items) = node else {
            continue;
        };
        match items.first() {
            Some(Sexpr::Atom(kind)) if kind == "line" => {
                let Some(bottom) = items.get(2).and_then(Sexpr::number) else {
                    continue;
                };
                let top = items.get(4).and_then(Sexpr::number).unwrap_or(bottom);
                let size = ((top - bottom).abs() * scale * 0.75).max(1.0);
                let mut run = WordRun::new(&mut frags, bottom * scale, size);
                for (x0, x1, text) in words_of(items) {
                    run.push(x0 * scale, x1 * scale, &text);
                }
            }
            _ => pending.extend(items.iter().rev()),
        }
    }
    frags
}

/// The words of a line element, in order, as `(x0, x1, text)`, wherever they nest under it.
fn words_of(line: &[Sexpr]) -> Vec<(f32, f32, String)> {
    let mut words = Vec::new();
    let mut pending: Vec<&Sexpr> = line.iter().rev().collect();
    while let Some(node) = pending.pop() {
        let Sexpr::List(items) = node else {
            continue;
        };
        match (items.first(), items.last()) {
            (Some(Sexpr::Atom(kind)), Some(Sexpr::Text(text))) if kind == "word" || kind == "char" => {
                if let (Some(x0), Some(x1)) = (
                    items.get(1).and_then(Sexpr::number),
                    items.get(3).and_then(Sexpr::number),
                ) && !text.trim().is_empty()
                {
                    words.push((x0, x1, text.trim().to_owned()));
                }
            }
            _ => pending.extend(items.iter().rev()),
        }
    }
    words
}

/// Each page's resolution, from djvudump-like `INFO` lines of `djvused -e dump`.
fn resolutions(dump: &str) -> Vec<f32> {
    dump.lines()
        .filter(|line| line.trim_start().starts_with("INFO"))
        .map(|line| {
            line.split(',')
                .find_map(|part| part.trim().strip_suffix(" dpi")?.trim().parse::<f32>().ok())
                .filter(|dpi| (25.0..=6000.0).contains(dpi))
                .unwrap_or(300.0)
        })
        .collect()
}

/// Reads a DjVu document with djvulibre.
pub(crate) fn read(
    bytes: &[u8],
    opts: &ExtractOptions,
    warnings: &mut Warnings,
    progress: &mut dyn FnMut(Progress),
) -> Result<DjvuBook, ExtractError> {
    let file = crate::tools::TempFile::write(bytes, "djvu").map_err(tool_error)?;
    let listing = pages(&djvused(&file.0, "ls")?);
    let page_count = if listing.is_empty() {
        // A single-page document lists no component pages.
        djvused(&file.0, "n")?.trim().parse::<usize>().unwrap_or(0)
    } else {
        listing.len()
    };
    if page_count == 0 {
        return Err(ExtractError::NoPages);
    }
    if page_count > opts.max_pages {
        return Err(ExtractError::TooManyPages {
            pages: page_count,
            limit: opts.max_pages,
        });
    }
    let total = u32::try_from(page_count).unwrap_or(u32::MAX);
    let page_of_id: HashMap<String, u32> = listing
        .iter()
        .enumerate()
        .map(|(position, (id, _))| (id.clone(), u32::try_from(position + 1).unwrap_or(u32::MAX)))
        .collect();
    let titles: Vec<Option<String>> = listing.iter().map(|(_, title)| title.clone()).collect();
    let labels = (titles.len() == page_count && titles.iter().all(Option::is_some))
        .then(|| titles.into_iter().flatten().collect::<Vec<_>>());

    let outline = match djvused(&file.0, "print-outline") {
        Ok(text) => outline(&parse_sexpr(&text), &page_of_id, total),
        Err(err) => {
            warnings.push(format!("the outline could not be read: {err}"));
            Vec::new()
        }
    };
    let dpi = resolutions(&djvused(&file.0, "dump").unwrap_or_default());

    // `output-txt` prints, for each page with text, `select "ID" # page N`, `set-txt`, the
    // page's S-expression and a line with a dot.
    let text = djvused(&file.0, "output-txt")?;
    let mut text_of_page: HashMap<u32, String> = HashMap::new();
    let mut current: Option<(u32, String)> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("select ") {
            let number = rest
                .rsplit_once("# page ")
                .and_then(|(_, number)| number.trim().parse::<u32>().ok());
            current = number.map(|number| (number, String::new()));
        } else if line == "." {
            if let Some((number, page)) = current.take() {
                text_of_page.insert(number, page);
            }
        } else if line != "set-txt"
            && let Some((_, page)) = &mut current
        {
            page.push_str(line);
            page.push('\n');
        }
    }
    let mut layouts = Vec::with_capacity(page_count);
    let mut without_text = Vec::new();
    let mut done = 0;
    for number in 1..=total {
        let lines = match text_of_page.get(&number) {
            Some(page) => {
                let frags: Vec<Frag> = parse_sexpr(page)
                    .iter()
                    .flat_map(|sexpr| page_frags(sexpr, dpi.get(number as usize - 1).copied().unwrap_or(300.0)))
                    .collect();
                layout::layout(&frags)
            }
            None => Vec::new(),
        };
        if lines.is_empty() {
            without_text.push(number);
        }
        let page = PageLayout { number, lines };
        // Every DjVu page is an image: the ones OCR reads are counted when it has.
        if !crate::ocr::needs_ocr(&page, true) || opts.ocr_languages.is_none() {
            done += 1;
            progress(Progress::Pages { done, total });
        }
        layouts.push(page);
    }
    let ocr = match &opts.ocr_languages {
        Some(languages) => crate::ocr::fill_empty_pages(
            crate::ocr::PageImages::Djvu(&file.0, &dpi),
            &mut layouts,
            // Every DjVu page is an image.
            &vec![true; page_count],
            languages,
            warnings,
            progress,
        ),
        None => {
            if !without_text.is_empty() {
                warnings.push(format!(
                    "{} of {total} pages have no text layer (first: page {}) and OCR is off",
                    without_text.len(),
                    without_text[0]
                ));
            }
            None
        }
    };
    progress(Progress::Pages { done: total, total });
    Ok(DjvuBook {
        layouts,
        labels,
        outline,
        ocr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sexprs_with_escapes_and_any_nesting() {
        let parsed = parse_sexpr(r##"(bookmarks ("Pr\303\251face \"1\"" "#p0007.djvu" ("Sub" "#3")))"##);
        let Sexpr::List(items) = &parsed[0] else {
            panic!("{parsed:?}")
        };
        let Sexpr::List(first) = &items[1] else {
            panic!("{items:?}")
        };
        assert_eq!(first[0], Sexpr::Text("Préface \"1\"".to_owned()));
        let deep = format!("{}x{}", "(".repeat(100_000), ")".repeat(100_000));
        let parsed = parse_sexpr(&deep);
        assert_eq!(parsed.len(), 1);
        let mut depth = 0;
        let mut node = &parsed[0];
        while let Sexpr::List(items) = node {
            depth += 1;
            node = &items[0];
        }
        assert_eq!((depth, node), (MAX_SEXPR_DEPTH, &Sexpr::Atom("x".to_owned())));
        // Unbalanced input ends what is open.
        assert_eq!(parse_sexpr("(a (b").len(), 1);
    }

    #[test]
    fn outline_entries_find_their_pages_by_id_or_number() {
        let ids: HashMap<String, u32> = [("p0007.djvu".to_owned(), 7)].into_iter().collect();
        let toc = outline(
            &parse_sexpr(r##"(bookmarks ("Preface" "#p0007.djvu" ("Sub one" "#8") ("Sub two" "#99")) ("Two" "#9"))"##),
            &ids,
            20,
        );
        let got: Vec<(u32, &str, Option<u32>)> = toc.iter().map(|e| (e.level, e.title.as_str(), e.page)).collect();
        assert_eq!(
            got,
            [
                (1, "Preface", Some(7)),
                (2, "Sub one", Some(8)),
                (2, "Sub two", None),
                (1, "Two", Some(9))
            ]
        );
    }

    #[test]
    fn words_of_a_line_join_until_a_wide_gap() {
        let page = &parse_sexpr(
            r#"(page 0 0 2550 3300 (column 0 0 1 1 (line 300 1000 2000 1050 (word 300 1000 400 1050 "index") (word 420 1000 500 1050 "term,") (word 520 1000 560 1050 "12") (word 1800 1000 2000 1050 "far"))))"#,
        )[0];
        let frags = page_frags(page, 300.0);
        let texts: Vec<&str> = frags.iter().map(|frag| frag.text.as_str()).collect();
        assert_eq!(texts, ["index term, 12", "far"]);
        assert!((frags[0].y - 240.0).abs() < 0.01, "{}", frags[0].y);
    }
}

/// The words of one page's `djvused print-txt` (`(page x0 y0 x1 y1 ... (word x0 y0 x1 y1
/// "text"))`, pixels from the bottom left) in fractions of the page from the top left. A page
/// without a text layer has no words.
pub(crate) fn page_words(listing: &str) -> crate::PageWords {
    let mut words = Vec::new();
    let mut aspect = 1.0;
    for root in parse_sexpr(listing) {
        let Sexpr::List(items) = &root else { continue };
        if !matches!(items.first(), Some(Sexpr::Atom(kind)) if kind == "page") {
            continue;
        }
        let corner = |index: usize| items.get(index).and_then(Sexpr::number).unwrap_or(0.0);
        let (width, height) = (corner(3) - corner(1), corner(4) - corner(2));
        if width <= 0.0 || height <= 0.0 {
            continue;
        }
        aspect = width / height;
        let mut pending: Vec<&Sexpr> = items.iter().rev().collect();
        while let Some(node) = pending.pop() {
            let Sexpr::List(parts) = node else { continue };
            match (parts.first(), parts.last()) {
                (Some(Sexpr::Atom(kind)), Some(Sexpr::Text(text))) if kind == "word" || kind == "char" => {
                    let numbers: Vec<f32> = parts[1..parts.len() - 1].iter().filter_map(Sexpr::number).collect();
                    if let [x0, y0, x1, y1] = numbers[..]
                        && !text.trim().is_empty()
                        && words.len() < 50_000
                    {
                        words.push(crate::WordBox {
                            text: text.trim().to_owned(),
                            x0: (x0 / width).clamp(0.0, 1.0),
                            y0: ((height - y1) / height).clamp(0.0, 1.0),
                            x1: (x1 / width).clamp(0.0, 1.0),
                            y1: ((height - y0) / height).clamp(0.0, 1.0),
                        });
                    }
                }
                _ => pending.extend(parts.iter().rev()),
            }
        }
    }
    crate::PageWords { aspect, words }
}

#[cfg(test)]
mod word_box_tests {
    #[test]
    fn text_layer_words_are_measured_from_the_top_left() {
        let listing = r#"(page 0 0 1000 2000
 (line 100 1800 400 1900 (word 100 1800 200 1900 "Hello") (word 250 1800 400 1900 "world"))
 (line 100 100 200 150 (word 100 100 200 150 " ")))"#;
        let words = super::page_words(listing);
        assert!((words.aspect - 0.5).abs() < 1e-6);
        assert_eq!(words.words.len(), 2);
        let hello = &words.words[0];
        assert_eq!(hello.text, "Hello");
        assert!((hello.y0 - 0.05).abs() < 1e-6 && (hello.y1 - 0.1).abs() < 1e-6);
        assert!((hello.x0 - 0.1).abs() < 1e-6 && (hello.x1 - 0.2).abs() < 1e-6);
    }

    #[test]
    fn a_page_without_text_has_no_words() {
        assert!(super::page_words("").words.is_empty());
    }
}
