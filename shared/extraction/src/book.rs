//! The laid-out pages of a whole book, with running heads and feet marked, and helpers shared
//! by the contents, index and page-label code.

use std::collections::HashMap;

use crate::layout::PageLayout;

pub(crate) struct Book {
    pub(crate) pages: Vec<PageLayout>,
    pub(crate) labels: Vec<String>,
    /// Per page, per line: a running head or foot (page number, repeated title).
    pub(crate) furniture: Vec<Vec<bool>>,
    /// Median font size of the lines.
    pub(crate) body_size: f32,
}

/// Lower-case, trimmed label for lookups.
pub(crate) fn normalize_label(label: &str) -> String {
    label.trim().to_lowercase()
}

/// Strip digits and case for recognising repeated running heads.
pub(crate) fn furniture_key(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_ascii_digit() && !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

fn is_roman_lower(s: &str) -> bool {
    !s.is_empty() && s.len() <= 8 && s.chars().all(|c| "ivxlcdm".contains(c))
}

impl Book {
    pub(crate) fn new(pages: Vec<PageLayout>, labels: Vec<String>) -> Self {
        let mut sizes: Vec<f32> = pages.iter().flat_map(|p| p.lines.iter().map(|l| l.size)).collect();
        sizes.sort_by(f32::total_cmp);
        let body_size = sizes.get(sizes.len() / 2).copied().unwrap_or(10.0);
        let mut book = Self {
            furniture: pages.iter().map(|p| vec![false; p.lines.len()]).collect(),
            pages,
            labels,
            body_size,
        };
        book.mark_furniture();
        book
    }

    /// Indexes of the lines in the top-most and bottom-most rows of a page, when they stand
    /// apart from the rest of the text.
    fn edge_lines(&self, p: usize) -> Vec<usize> {
        self.edge_rows(p).concat()
    }

    fn edge_rows(&self, p: usize) -> Vec<Vec<usize>> {
        let lines = &self.pages[p].lines;
        if lines.len() < 2 {
            return Vec::new();
        }
        let top = lines.iter().map(|l| l.y).fold(f32::NEG_INFINITY, f32::max);
        let bottom = lines.iter().map(|l| l.y).fold(f32::INFINITY, f32::min);
        let mut out = Vec::new();
        for edge in [top, bottom] {
            let row: Vec<usize> = (0..lines.len()).filter(|&k| (lines[k].y - edge).abs() <= 2.0).collect();
            let size = row.iter().map(|&k| lines[k].size).fold(1.0f32, f32::max);
            // The nearest other line must be well apart.
            let gap = lines
                .iter()
                .filter(|l| (l.y - edge).abs() > 2.0)
                .map(|l| (l.y - edge).abs())
                .fold(f32::INFINITY, f32::min);
            if gap >= 1.4 * size && !out.contains(&row) {
                out.push(row);
            }
        }
        out
    }

    fn mark_furniture(&mut self) {
        // Rows of the top and bottom edges; running heads without numbers repeat word for
        // word on many pages.
        let mut counts: HashMap<String, usize> = HashMap::new();
        let rows: Vec<Vec<Vec<usize>>> = (0..self.pages.len()).map(|p| self.edge_rows(p)).collect();
        let row_text = |p: usize, row: &[usize]| -> String {
            row.iter()
                .map(|&k| self.pages[p].lines[k].text.trim())
                .collect::<Vec<_>>()
                .join(" ")
        };
        for (p, page_rows) in rows.iter().enumerate() {
            for row in page_rows {
                *counts.entry(row_text(p, row)).or_insert(0) += 1;
            }
        }
        for (p, page_rows) in rows.iter().enumerate() {
            let label = self.labels.get(p).map(|l| normalize_label(l));
            let physical = (p + 1).to_string();
            for row in page_rows {
                let text = row_text(p, row);
                let has_number = text.split_whitespace().any(|w| {
                    let w = w.to_lowercase();
                    Some(&w) == label.as_ref()
                        || w == physical
                        || w.chars().all(|c| c.is_ascii_digit())
                        || is_roman_lower(&w)
                });
                let repeated = furniture_key(&text).is_empty() || counts.get(&text).copied().unwrap_or(0) >= 3;
                // A numbered heading at the top of a page ("4 Index") is set larger than the
                // text; running heads and folios are not.
                let heading = row.iter().any(|&k| self.pages[p].lines[k].size >= 1.2 * self.body_size);
                if (has_number && !heading && text.split_whitespace().count() <= 12) || repeated {
                    for &k in row {
                        if let Some(flag) = self.furniture.get_mut(p).and_then(|f| f.get_mut(k)) {
                            *flag = true;
                        }
                    }
                }
            }
        }
    }

    /// Whether line `k` of page `p` is the top-most or bottom-most on its page.
    pub(crate) fn is_page_edge(&self, p: usize, k: usize) -> bool {
        let Some(lines) = self.pages.get(p).map(|page| &page.lines) else {
            return false;
        };
        let Some(line) = lines.get(k) else {
            return false;
        };
        let top = lines.iter().map(|l| l.y).fold(f32::NEG_INFINITY, f32::max);
        let bottom = lines.iter().map(|l| l.y).fold(f32::INFINITY, f32::min);
        (line.y - top).abs() <= 2.0 || (line.y - bottom).abs() <= 2.0
    }

    pub(crate) fn is_furniture(&self, p: usize, k: usize) -> bool {
        self.furniture.get(p).and_then(|f| f.get(k)).copied().unwrap_or(false)
    }

    /// The non-furniture lines after line `k` of page `p`, on through the following pages.
    pub(crate) fn lines_after(
        &self,
        p: usize,
        k: usize,
    ) -> impl Iterator<Item = (usize, usize, &crate::layout::TextLine)> {
        (p..self.pages.len()).flat_map(move |q| {
            let start = if q == p { k + 1 } else { 0 };
            self.pages[q]
                .lines
                .iter()
                .enumerate()
                .skip(start)
                .filter(move |(j, _)| !self.is_furniture(q, *j))
                .map(move |(j, l)| (q, j, l))
        })
    }

    /// Printed page numbers from running heads and feet, for books without `/PageLabels`:
    /// the most common offset between physical and printed numbers, when it is well supported.
    pub(crate) fn inferred_labels(&self) -> Option<Vec<String>> {
        let mut votes: HashMap<i64, usize> = HashMap::new();
        for p in 0..self.pages.len() {
            for k in self.edge_lines(p) {
                for w in self.pages[p].lines[k].text.split_whitespace() {
                    if let Ok(n) = w.parse::<i64>()
                        && n > 0
                        && n <= self.pages.len() as i64
                    {
                        *votes.entry(p as i64 + 1 - n).or_insert(0) += 1;
                    }
                }
            }
        }
        let (&offset, &count) = votes.iter().max_by_key(|(o, c)| (**c, -o.abs()))?;
        if offset <= 0 || count * 3 < self.pages.len() {
            return None;
        }
        Some(
            (0..self.pages.len() as i64)
                .map(|i| {
                    let printed = i + 1 - offset;
                    if printed >= 1 {
                        printed.to_string()
                    } else {
                        crate::labels::roman(i + 1).to_lowercase()
                    }
                })
                .collect(),
        )
    }
}

/// Whether a heading names an index: "Index", "Concept Index", "Appendix D Function and
/// variable index", "Anhang C LilyPond-Index", "Stichwortverzeichnis", "Register".
pub(crate) fn is_index_title(text: &str) -> bool {
    let t = text.trim().to_lowercase();
    let words: Vec<&str> = t.split_whitespace().collect();
    if words.is_empty() || words.len() > 8 || t.len() > 80 {
        return false;
    }
    // Not a contents line (no trailing page number).
    if words.last().is_some_and(|w| w.chars().all(|c| c.is_ascii_digit())) {
        return false;
    }
    let last = words.last().copied().unwrap_or("");
    let first = words.first().copied().unwrap_or("");
    let index_word = |w: &str| {
        let w = w.trim_matches(|c: char| !c.is_alphanumeric());
        w == "index"
            || w.ends_with("-index")
            || w == "indices"
            || w == "indexes"
            || w == "register"
            || w.ends_with("register")
            || w == "stichwortverzeichnis"
            || w == "índice"
            || w == "indice"
    };
    index_word(last) || (index_word(first) && words.len() <= 4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::TextLine;

    fn line(y: f32, size: f32, text: &str) -> TextLine {
        TextLine {
            x0: 72.0,
            x1: 400.0,
            y,
            size,
            bold: false,
            column: 0,
            text: text.into(),
        }
    }

    #[test]
    fn a_numbered_heading_at_a_page_top_is_no_running_head() {
        let page = |number: u32, top: TextLine| PageLayout {
            number,
            lines: std::iter::once(top)
                .chain((0..20).map(|k| line(700.0 - 12.0 * k as f32, 10.0, "Words of the body text.")))
                .chain(std::iter::once(line(60.0, 10.0, &number.to_string())))
                .collect(),
        };
        let pages = vec![
            page(1, line(750.0, 10.0, "A Manual 1")),
            page(2, line(750.0, 14.3, "4 Index")),
        ];
        let book = Book::new(pages, vec!["1".into(), "2".into()]);
        assert!(book.is_furniture(0, 0), "a running head with the page number");
        assert!(!book.is_furniture(1, 0), "a numbered heading");
        assert!(book.is_furniture(1, 21), "the folio");
    }
}
