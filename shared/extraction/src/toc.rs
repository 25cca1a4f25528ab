//! Tables of contents for books without an outline: from the printed contents pages, or from
//! headings found by their size, weight and numbering.

use crate::book::Book;
use crate::index::LabelMap;
use crate::{MAX_TITLE_BYTES, TocEntry};

/// One parsed contents line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TocLine {
    /// Section number as printed ("2.1.3", "A", "IV"), if any.
    pub(crate) number: Option<String>,
    pub(crate) title: String,
    /// Printed page ("12", "xiv"), when the line ends with one.
    pub(crate) page: Option<String>,
}

fn is_roman(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 8
        && (s.chars().all(|c| "ivxlcdm".contains(c)) || s.chars().all(|c| "IVXLCDM".contains(c)))
}

pub(crate) fn is_page_token(s: &str) -> bool {
    (!s.is_empty() && s.len() <= 5 && s.chars().all(|c| c.is_ascii_digit()))
        || (is_roman(s) && s.chars().all(|c| c.is_ascii_lowercase()))
}

/// What OCR leaves of leader dots beside a word: under three letters (`00000`, `ee`), or one
/// letter repeated (`eee`).
pub(crate) fn is_leader_speck(word: &str) -> bool {
    let letters: Vec<char> = word.chars().filter(|c| c.is_alphabetic()).collect();
    letters.len() < 3 || letters.iter().all(|&c| c == letters[0])
}

/// A section number: "1", "2.1", "2.1.3", "A", "A.1", "IV" (roman only with a following
/// title).
fn section_number(token: &str) -> Option<usize> {
    let t = token.trim_end_matches('.');
    if t.is_empty() || t.len() > 16 {
        return None;
    }
    let parts: Vec<&str> = t.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let ok = (!part.is_empty() && part.len() <= 3 && part.chars().all(|c| c.is_ascii_digit()))
            || (i == 0 && part.len() == 1 && part.chars().all(|c| c.is_ascii_uppercase()))
            || (i == 0 && parts.len() == 1 && is_roman(part) && part.chars().all(|c| c.is_ascii_uppercase()));
        if !ok {
            return None;
        }
    }
    Some(parts.len())
}

/// Parse a printed contents line: "2.1 Basic types . . . . . . 3", "Preface xi",
/// "1 Introduction 1".
pub(crate) fn parse_toc_line(text: &str) -> TocLine {
    let mut t = text.trim().to_string();
    let mut page = None;
    if let Some(last) = t.split_whitespace().last()
        && is_page_token(last.trim_start_matches('.'))
    {
        let tok = last.trim_start_matches('.').to_string();
        let cut = t.len() - last.len();
        // Not a title that is only a number.
        if t[..cut].trim().chars().any(char::is_alphabetic) {
            page = Some(tok);
            t.truncate(cut);
        }
    }
    // Leaders that OCR broke into specks ("remarks ....... 00000 eee"): the title ends where
    // they begin, when nothing after them is a word.
    let leaders = [t.find("..."), t.find(". . .")].into_iter().flatten().min();
    if let Some(start) = leaders
        && t[start..].split_whitespace().all(is_leader_speck)
    {
        t.truncate(start);
        t.push_str(" ...");
    }
    // Remove the dot leaders.
    let trimmed = t.trim_end().trim_end_matches(['.', ' ', '\u{2026}', '·']).to_string();
    // Keep a trailing period that belongs to the title ("etc.") only when there were no
    // leaders at all.
    let t = if t.trim_end().ends_with(". .") || t.trim_end().ends_with("..") || page.is_none() {
        trimmed
    } else {
        let s = t.trim_end();
        s.strip_suffix('.').map_or(s, |x| x.trim_end()).to_string()
    };
    // "Appendix A References": the word before an appendix letter is not part of the number.
    let t = {
        let mut w = t.trim().splitn(3, char::is_whitespace);
        match (w.next(), w.next(), w.next()) {
            (Some(word), Some(letter), Some(rest))
                if matches!(
                    word.to_lowercase().as_str(),
                    "appendix" | "anhang" | "annexe" | "apéndice"
                ) && section_number(letter).is_some() =>
            {
                format!("{letter} {rest}")
            }
            _ => t,
        }
    };
    let mut words = t.splitn(2, char::is_whitespace);
    let first = words.next().unwrap_or("");
    let rest = words.next().unwrap_or("").trim();
    let (number, title) = match section_number(first) {
        Some(_) if !rest.is_empty() => (Some(first.trim_end_matches('.').to_string()), rest.to_string()),
        _ => (None, t.trim().to_string()),
    };
    TocLine { number, title, page }
}

fn is_contents_title(text: &str) -> bool {
    let t = text.trim().to_lowercase();
    matches!(
        t.as_str(),
        "contents"
            | "table of contents"
            | "inhaltsverzeichnis"
            | "inhalt"
            | "sommaire"
            | "table des matières"
            | "índice"
            | "indice"
            | "indice generale"
            | "contenido"
            | "contenu"
            | "short contents"
    )
}

/// A printed contents found in the book: its entries and the pages it is printed on.
pub(crate) struct PrintedContents {
    pub(crate) entries: Vec<TocEntry>,
    /// 1-based physical pages, first and last.
    pub(crate) pages: [u32; 2],
}

/// Fewer parsed lines than this under a "Contents" heading are not a contents listing.
const MIN_CONTENTS_ENTRIES: usize = 3;

/// Where printed contents are looked for: the first quarter of the book, at least 30 pages.
fn front_matter_end(book: &Book) -> usize {
    let n = book.pages.len();
    (n / 4).max(30).min(n)
}

/// Every printed contents listing in the front of the book ("Short contents" and the full
/// contents are two), in page order.
pub(crate) fn printed_contents(book: &Book) -> Vec<PrintedContents> {
    let mut found: Vec<PrintedContents> = Vec::new();
    let mut p = 0;
    while p < front_matter_end(book) {
        let Some(k) = book.pages[p].lines.iter().position(|l| is_contents_title(&l.text)) else {
            p += 1;
            continue;
        };
        let contents = parse_contents(book, p, k);
        if contents.entries.len() >= MIN_CONTENTS_ENTRIES {
            found.push(contents);
        }
        p += 1;
    }
    found
}

/// The table of contents from the printed contents pages: the longest listing ("Short
/// contents" pages come before the full contents).
pub(crate) fn longest_listing(found: Vec<PrintedContents>) -> Vec<TocEntry> {
    found
        .into_iter()
        .max_by_key(|contents| contents.entries.len())
        .map(|contents| contents.entries)
        .unwrap_or_default()
}

fn parse_contents(book: &Book, p: usize, k: usize) -> PrintedContents {
    let map = LabelMap::new(&book.labels);
    let mut raw: Vec<(f32, TocLine)> = Vec::new();
    let mut pending: Option<(f32, String)> = None;
    let mut cur_page = p;
    let mut page_hits = 0usize;
    let mut page_lines = 0usize;
    for (q, _, line) in book.lines_after(p, k) {
        if q != cur_page {
            if page_lines > 0 && page_hits * 10 < page_lines * 3 {
                break;
            }
            cur_page = q;
            page_hits = 0;
            page_lines = 0;
        }
        page_lines += 1;
        let parsed = parse_toc_line(&line.text);
        if parsed.page.is_some() {
            page_hits += 1;
            let mut parsed = parsed;
            let mut x0 = line.x0;
            if let Some((px, text)) = pending.take() {
                let joined = parse_toc_line(&format!("{text} {}", line.text));
                parsed = joined;
                x0 = px;
            }
            raw.push((x0, parsed));
        } else if let Some((px, text)) = pending.as_mut() {
            let _ = px;
            text.push(' ');
            text.push_str(line.text.trim());
            if text.len() > 400 {
                pending = None;
            }
        } else {
            pending = Some((line.x0, line.text.trim().to_string()));
        }
    }
    // Levels: from the numbering depth, else from the indentation of numbered lines.
    let mut indent_levels: Vec<(f32, usize)> = Vec::new();
    for (x0, l) in &raw {
        if let Some(depth) = l.number.as_deref().and_then(section_number) {
            indent_levels.push((*x0, depth));
        }
    }
    let min_x = raw.iter().map(|(x, _)| *x).fold(f32::INFINITY, f32::min);
    let level_by_indent = |x0: f32| -> u32 {
        let mut best = (f32::INFINITY, 1usize);
        for &(x, d) in &indent_levels {
            let dist = (x - x0).abs();
            if dist < best.0 {
                best = (dist, d);
            }
        }
        if best.0.is_finite() {
            best.1 as u32
        } else {
            1 + ((x0 - min_x) / 12.0).round().max(0.0) as u32
        }
    };
    let entries = raw
        .into_iter()
        .map(|(x0, l)| {
            let level = match l.number.as_deref().and_then(section_number) {
                Some(d) => d as u32,
                None => level_by_indent(x0),
            };
            // Chapter numbers stay part of the title ("1 Introduction"); section numbers
            // ("2.1") are dropped, as PDF outlines made by Texinfo do.
            let title = match (&l.number, level) {
                (Some(num), 1) => format!("{num} {}", l.title),
                _ => l.title.clone(),
            };
            TocEntry {
                level,
                title,
                page: l.page.as_deref().and_then(|pg| map.physical(pg)),
            }
        })
        .collect();
    let physical = |page: usize| u32::try_from(page + 1).unwrap_or(u32::MAX);
    PrintedContents {
        entries,
        pages: [physical(p), physical(listing_end(book, p))],
    }
}

/// The last page of a contents listing that starts on page `p`: the pages after it continue
/// the listing while at least 30 % of their lines end in a page number. Lines count even where
/// the entries themselves could not be read (a page whose numbers come apart from their titles
/// in the content stream is still part of the listing). A listing stays within the front
/// quarter of the book (or its first 30 pages), where contents are looked for.
fn listing_end(book: &Book, p: usize) -> usize {
    let mut last = p;
    for q in p + 1..front_matter_end(book) {
        let lines: Vec<&str> = (0..book.pages[q].lines.len())
            .filter(|&k| !book.is_furniture(q, k))
            .map(|k| book.pages[q].lines[k].text.as_str())
            .collect();
        let ending_in_page = lines
            .iter()
            .filter(|text| text.split_whitespace().last().is_some_and(is_page_token))
            .count();
        if lines.is_empty() || ending_in_page * 10 < lines.len() * 3 {
            break;
        }
        last = q;
    }
    last
}

/// The depth a heading's numbering gives: "3" or "Chapter 3" 1, "3.2" 2, "A.1.4" 3; `None`
/// for an unnumbered heading.
fn numbering_depth(title: &str) -> Option<usize> {
    let mut words = title.split_whitespace();
    let first = words.next()?;
    let lower = first.to_lowercase();
    if ["chapter", "appendix", "part", "kapitel", "anhang", "chapitre", "annexe"].contains(&lower.as_str()) {
        return words.next().map(|_| 1);
    }
    let number = first.trim_end_matches('.');
    let parts: Vec<&str> = number.split('.').collect();
    let numeric = |p: &str| !p.is_empty() && p.len() <= 3 && p.chars().all(|c| c.is_ascii_digit());
    let letter = |p: &str| p.len() == 1 && p.chars().all(|c| c.is_ascii_uppercase());
    let well_formed = !parts.is_empty()
        && parts.len() <= 4
        && (numeric(parts[0]) || (letter(parts[0]) && parts.len() > 1))
        && parts[1..].iter().all(|p| numeric(p));
    // A bare number needs words after it ("3 Vectors"), or it is a page number.
    (well_formed && words.next().is_some_and(|w| w.chars().any(char::is_alphabetic))).then_some(parts.len())
}

/// A table of contents from headings, for books with neither an outline nor printed
/// contents: lines set clearly larger than the body text, or bold and numbered ("2.3
/// Loops"); short, with letters. Numbered headings take their level from the numbering,
/// the others from their size (larger first, at most four levels).
pub(crate) fn headings_toc(book: &Book) -> Vec<TocEntry> {
    let threshold = book.body_size * 1.2;
    // (page, size, numbering depth, title)
    let mut found: Vec<(usize, f32, Option<usize>, String)> = Vec::new();
    for (p, page) in book.pages.iter().enumerate() {
        let mut last_k: Option<usize> = None;
        for (k, line) in page.lines.iter().enumerate() {
            if book.is_furniture(p, k) {
                continue;
            }
            let text = line.text.trim();
            let words = text.split_whitespace().count();
            if words == 0 || words > 14 || !text.chars().any(char::is_alphabetic) {
                continue;
            }
            let numbered = numbering_depth(text);
            let large = line.size >= threshold;
            let bold_numbered = line.bold && numbered.is_some() && line.size >= book.body_size * 0.95;
            if !(large || bold_numbered) {
                continue;
            }
            // A wrapped heading continues on the next line in the same size.
            if let Some(prev) = last_k
                && prev + 1 == k
                && numbered.is_none()
                && let Some(last) = found.last_mut()
                && last.0 == p
                && (last.1 - line.size).abs() < 0.5
                && last.3.len() < MAX_TITLE_BYTES
            {
                last.3.push(' ');
                last.3.push_str(text);
                last_k = Some(k);
                continue;
            }
            found.push((p, line.size, numbered, text.to_string()));
            last_k = Some(k);
        }
        if found.len() > 5000 {
            break;
        }
    }
    // Levels of unnumbered headings: the distinct heading sizes, largest first (at most four).
    let mut sizes: Vec<f32> = found
        .iter()
        .filter(|f| f.2.is_none())
        .map(|f| (f.1 * 2.0).round() / 2.0)
        .collect();
    sizes.sort_by(|a, b| b.total_cmp(a));
    sizes.dedup();
    found
        .into_iter()
        .map(|(p, size, numbered, title)| {
            let s = (size * 2.0).round() / 2.0;
            let level = match numbered {
                Some(depth) => depth.min(4) as u32,
                None => sizes.iter().position(|&x| x == s).unwrap_or(0).min(3) as u32 + 1,
            };
            TocEntry {
                level,
                title,
                page: Some(p as u32 + 1),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{PageLayout, TextLine};

    fn line(x0: f32, y: f32, text: &str) -> TextLine {
        TextLine {
            x0,
            x1: 500.0,
            y,
            size: 10.0,
            bold: false,
            column: 0,
            text: text.into(),
        }
    }

    #[test]
    fn heading_numbering_gives_the_level() {
        assert_eq!(numbering_depth("3 Vectors and matrices"), Some(1));
        assert_eq!(numbering_depth("3.2 Loops"), Some(2));
        assert_eq!(numbering_depth("A.1.4 Details"), Some(3));
        assert_eq!(numbering_depth("Chapter 7"), Some(1));
        assert_eq!(numbering_depth("Appendix B Grammar"), Some(1));
        assert_eq!(numbering_depth("42"), None);
        assert_eq!(numbering_depth("1999 was a year"), None);
        assert_eq!(numbering_depth("Introduction"), None);
        assert_eq!(numbering_depth("A Tour"), None);
    }

    #[test]
    fn headings_become_a_toc_with_levels_from_numbers_and_sizes() {
        let heading = |y: f32, size: f32, bold: bool, text: &str| TextLine {
            size,
            bold,
            ..line(72.0, y, text)
        };
        let body = |y: f32| line(72.0, y, "Ordinary words of the body text run on here.");
        let mut pages = Vec::new();
        for n in 0..4u32 {
            // A running head above, as books have.
            let mut lines = vec![line(72.0, 780.0, &format!("A small book {}", n + 1))];
            match n {
                0 => lines.push(heading(750.0, 18.0, true, "Preface")),
                1 => lines.push(heading(750.0, 18.0, true, "1 Vectors")),
                2 => lines.push(heading(750.0, 10.0, true, "1.1 Adding vectors")),
                _ => lines.push(heading(750.0, 10.0, true, "1.1.1 The zero vector")),
            }
            lines.extend((0..20).map(|k| body(700.0 - 12.0 * k as f32)));
            pages.push(PageLayout { number: n + 1, lines });
        }
        let labels = (1..=4).map(|n| n.to_string()).collect();
        let book = Book::new(pages, labels);
        let toc = headings_toc(&book);
        let got: Vec<(u32, &str, Option<u32>)> = toc.iter().map(|e| (e.level, e.title.as_str(), e.page)).collect();
        assert_eq!(
            got,
            vec![
                (1, "Preface", Some(1)),
                (1, "1 Vectors", Some(2)),
                (2, "1.1 Adding vectors", Some(3)),
                (3, "1.1.1 The zero vector", Some(4)),
            ]
        );
    }

    #[test]
    fn contents_pages() {
        let contents = PageLayout {
            number: 2,
            lines: vec![
                line(72.0, 700.0, "Contents"),
                line(72.0, 680.0, "Preface . . . . . . . . . . . . . . . . . iii"),
                line(72.0, 668.0, "1 Introduction . . . . . . . . . . . . . 1"),
                line(90.0, 656.0, "1.1 A very long section title that is wrapped onto"),
                line(90.0, 644.0, "the next line . . . . . . . . . . . . . 2"),
                line(110.0, 632.0, "1.1.1 Details . . . . . . . . . . . . . 3"),
                line(72.0, 620.0, "Appendix A References . . . . . . . . . 4"),
                line(72.0, 608.0, "Index . . . . . . . . . . . . . . . . . 5"),
            ],
        };
        let mut pages = vec![PageLayout::default(), contents];
        for n in 3..=8 {
            pages.push(PageLayout {
                number: n,
                lines: vec![line(72.0, 700.0, "Body text")],
            });
        }
        let labels: Vec<String> = ["i", "ii", "iii", "1", "2", "3", "4", "5"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let book = Book::new(pages, labels);
        let found = printed_contents(&book);
        assert_eq!(found.iter().map(|c| c.pages).collect::<Vec<_>>(), vec![[2, 2]]);
        let toc = longest_listing(found);
        let got: Vec<(u32, &str, Option<u32>)> = toc.iter().map(|e| (e.level, e.title.as_str(), e.page)).collect();
        assert_eq!(
            got,
            vec![
                (1, "Preface", Some(3)),
                (1, "1 Introduction", Some(4)),
                (
                    2,
                    "A very long section title that is wrapped onto the next line",
                    Some(5)
                ),
                (3, "Details", Some(6)),
                (1, "A References", Some(7)),
                (1, "Index", Some(8)),
            ]
        );
    }

    #[test]
    fn contents_listing_spans_its_pages_and_stops_at_the_body() {
        let page = |number: u32, lines: &[&str]| PageLayout {
            number,
            lines: lines
                .iter()
                .enumerate()
                .map(|(i, text)| line(72.0, 700.0 - 12.0 * i as f32, text))
                .collect(),
        };
        let pages = vec![
            page(1, &["A Manual"]),
            page(2, &["Contents", "1 Start . . . 1", "2 Middle . . . 2"]),
            page(3, &["3 End . . . 3", "Index . . . 4", "with a line that is no entry"]),
            page(4, &["Body text of the first chapter,", "and more of it", "and more"]),
            page(5, &["Body text 5"]),
            page(6, &["Body text 6"]),
            page(7, &["Index", "edge, 1"]),
        ];
        let labels: Vec<String> = ["i", "ii", "iii", "1", "2", "3", "4"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let found = printed_contents(&Book::new(pages, labels));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].pages, [2, 3]);
        assert_eq!(found[0].entries.len(), 4);
    }

    #[test]
    fn contents_lines() {
        let l = parse_toc_line("2.1 Basic types . . . . . . . . . . . . . 3");
        assert_eq!(l.number.as_deref(), Some("2.1"));
        assert_eq!(l.title, "Basic types");
        assert_eq!(l.page.as_deref(), Some("3"));
        let l = parse_toc_line("1 Introduction . . . . . . . . 1");
        assert_eq!(l.number.as_deref(), Some("1"));
        assert_eq!(l.title, "Introduction");
        let l = parse_toc_line("Preface . . . . . . . . . . . . xi");
        assert_eq!(l.number, None);
        assert_eq!(l.title, "Preface");
        assert_eq!(l.page.as_deref(), Some("xi"));
        let l = parse_toc_line("2.1.9 Dot-dot-dot. . . . . . . . . . 6");
        assert_eq!(l.title, "Dot-dot-dot");
        // Leaders OCR read as specks.
        let l = parse_toc_line("10.1 General remarks ............... 00000 ee .... 25");
        assert_eq!((l.title.as_str(), l.page.as_deref()), ("General remarks", Some("25")));
        let l = parse_toc_line("4.5 Accents in math ........... eee 15");
        assert_eq!((l.title.as_str(), l.page.as_deref()), ("Accents in math", Some("15")));
        let l = parse_toc_line("A References 64");
        assert_eq!(l.number.as_deref(), Some("A"));
        assert_eq!(l.title, "References");
        let l = parse_toc_line("Die Standardeinstellungen von");
        assert_eq!(l.page, None);
        assert_eq!(section_number("2.1.3"), Some(3));
        assert_eq!(section_number("IV"), Some(1));
        assert_eq!(section_number("Basic"), None);
    }
}
