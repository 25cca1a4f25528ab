//! Quality gates: checks on what the pipeline extracted, run as its last stage. A failed
//! gate does not fail the job (the DLQ is for processing errors); it marks the book
//! `needs_review` and says why, e.g. a scanned book without a text layer needs OCR rather
//! than being indexed silently empty.

use serde::{Deserialize, Serialize};

use hbi_extraction::Extraction;

/// Thresholds of the gates (live knobs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct QualityThresholds {
    /// Least share of pages that must carry text.
    pub min_text_coverage: f64,
    /// Largest share of replacement, control and private-use characters.
    pub max_garbage_ratio: f64,
    /// Least share of index locators whose page mentions the term.
    pub min_index_support_rate: f64,
    /// Least mean word confidence of the pages OCR read.
    pub min_ocr_confidence: f64,
}

impl Default for QualityThresholds {
    fn default() -> Self {
        Self {
            min_text_coverage: 0.9,
            max_garbage_ratio: 0.02,
            min_index_support_rate: 0.8,
            min_ocr_confidence: 0.7,
        }
    }
}

/// One gate's verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateResult {
    pub gate: &'static str,
    pub metric: f64,
    pub threshold: f64,
    pub passed: bool,
    /// For a person: what was measured and, on failure, what to do.
    pub detail: String,
}

/// Every gate's name, as results and metrics carry it.
pub const GATES: &[&str] = &[
    "text_coverage",
    "garbage_ratio",
    "toc_sanity",
    "index_locator_support",
    "index_structure",
    "ocr_confidence",
    "chunk_vector_consistency",
];

/// Least share of neighbouring index entries in alphabetical order before an index counts
/// as misread: real indexes stay above 0.95 under the extractor's loose collation (ties for
/// a shared first word), a misnested or misordered one falls well below.
pub const MIN_INDEX_SIBLING_ORDER: f64 = 0.9;

/// A page with fewer letters and digits than this has no usable text.
const MIN_PAGE_CHARS: usize = 10;

/// What the quality stage knows besides the extraction.
#[derive(Debug, Clone, Copy)]
pub struct StoredCounts {
    pub chunks: u64,
    /// Vectors stored for the book, when an embedding model is configured.
    pub vectors: Option<u64>,
}

/// Runs every gate that applies to the book.
pub fn assess(extraction: &Extraction, stored: StoredCounts, thresholds: &QualityThresholds) -> Vec<GateResult> {
    let mut gates = vec![
        text_coverage(extraction, thresholds.min_text_coverage),
        garbage_ratio(extraction, thresholds.max_garbage_ratio),
        toc_sanity(extraction),
    ];
    if let Some(rate) = extraction.index_support_rate {
        let passed = rate >= thresholds.min_index_support_rate;
        gates.push(GateResult {
            gate: "index_locator_support",
            metric: rate,
            threshold: thresholds.min_index_support_rate,
            passed,
            detail: if passed {
                format!("{:.0}% of index locators point at a page that mentions the term", rate * 100.0)
            } else {
                format!(
                    "only {:.0}% of index locators point at a page that mentions the term: the page labels or the index may be misread",
                    rate * 100.0
                )
            },
        });
    }
    if !extraction.index.is_empty() {
        gates.push(index_structure(extraction));
    }
    if let Some(ocr) = &extraction.ocr {
        let confidence = ocr.mean_confidence.unwrap_or(0.0);
        let passed = confidence >= thresholds.min_ocr_confidence;
        let share = f64::from(ocr.pages) / f64::from(extraction.page_count.max(1));
        gates.push(GateResult {
            gate: "ocr_confidence",
            metric: confidence,
            threshold: thresholds.min_ocr_confidence,
            passed,
            detail: format!(
                "{} of {} pages ({:.0}%) read by OCR ({}), mean word confidence {:.0}%{}",
                ocr.pages,
                extraction.page_count,
                share * 100.0,
                ocr.languages,
                confidence * 100.0,
                if passed {
                    ""
                } else {
                    ": the text may be misread (a poor scan, or another language)"
                }
            ),
        });
    }
    gates.push(chunk_consistency(stored));
    gates
}

/// The index's shape: nested no deeper than an index nests, entries in alphabetical order.
/// The metric is the sibling order; a layout asking for deeper nesting fails on its own.
fn index_structure(extraction: &Extraction) -> GateResult {
    let signals = &extraction.signals;
    let doubts = signals.index_doubts(MIN_INDEX_SIBLING_ORDER);
    let order = signals.index_sibling_order.unwrap_or(1.0);
    let depth = signals.index_nesting_depth.unwrap_or(1);
    GateResult {
        gate: "index_structure",
        metric: order,
        threshold: MIN_INDEX_SIBLING_ORDER,
        passed: doubts.is_empty(),
        detail: if doubts.is_empty() {
            format!(
                "{} entries nested at most {depth} deep, {:.0}% of neighbouring entries in alphabetical order",
                extraction.index.len(),
                order * 100.0
            )
        } else {
            format!("{}: the index may be misread", doubts.join("; "))
        },
    }
}

fn text_coverage(extraction: &Extraction, min: f64) -> GateResult {
    let total = extraction.pages.len().max(1);
    let with_text = extraction
        .pages
        .iter()
        .filter(|page| page.text.chars().filter(|c| c.is_alphanumeric()).count() >= MIN_PAGE_CHARS)
        .count();
    let coverage = with_text as f64 / total as f64;
    let passed = coverage >= min && !extraction.pages.is_empty();
    GateResult {
        gate: "text_coverage",
        metric: coverage,
        threshold: min,
        passed,
        detail: match (&extraction.ocr, passed) {
            (_, true) => format!("{with_text} of {total} pages carry text"),
            (Some(ocr), false) => format!(
                "only {with_text} of {total} pages carry text, though OCR read {} pages: blank pages, or a scan too poor to read",
                ocr.pages
            ),
            (None, false) => format!(
                "only {with_text} of {total} pages carry text: a scanned book needs OCR (Tesseract) before it can be searched"
            ),
        },
    }
}

fn is_garbage(c: char) -> bool {
    c == '\u{FFFD}'
        || (c.is_control() && !c.is_whitespace())
        || matches!(u32::from(c), 0xE000..=0xF8FF | 0xF0000..=0xFFFFD | 0x100000..=0x10FFFD)
}

fn garbage_ratio(extraction: &Extraction, max: f64) -> GateResult {
    let (mut total, mut garbage) = (0usize, 0usize);
    for c in extraction.pages.iter().flat_map(|page| page.text.chars()) {
        if c.is_whitespace() {
            continue;
        }
        total += 1;
        garbage += usize::from(is_garbage(c));
    }
    let ratio = if total == 0 { 0.0 } else { garbage as f64 / total as f64 };
    let passed = ratio <= max;
    GateResult {
        gate: "garbage_ratio",
        metric: ratio,
        threshold: max,
        passed,
        detail: if passed {
            format!("{garbage} unreadable characters of {total}")
        } else {
            format!(
                "{garbage} of {total} characters are unreadable (replacement, control or private-use): the fonts lack a usable text mapping"
            )
        },
    }
}

/// Share of ToC entries that point outside the book or before the entry above them; an
/// empty ToC fails too (nothing to navigate by).
fn toc_sanity(extraction: &Extraction) -> GateResult {
    let pages = extraction.page_count;
    let mut bad = 0usize;
    let mut previous = 0u32;
    for entry in &extraction.toc {
        match entry.page {
            Some(page) if page >= 1 && page <= pages && page >= previous => previous = page,
            _ => bad += 1,
        }
    }
    let total = extraction.toc.len();
    let metric = if total == 0 { 1.0 } else { bad as f64 / total as f64 };
    let passed = total > 0 && bad == 0;
    GateResult {
        gate: "toc_sanity",
        metric,
        threshold: 0.0,
        passed,
        detail: if total == 0 {
            "no table of contents was found (no outline, no printed contents, no headings)".to_owned()
        } else if passed {
            format!("{total} entries, all in page order within the book")
        } else {
            format!("{bad} of {total} entries point outside the book, nowhere, or back before the entry above")
        },
    }
}

fn chunk_consistency(stored: StoredCounts) -> GateResult {
    let (metric, passed, detail) = match stored.vectors {
        Some(vectors) => {
            let ratio = if stored.chunks == 0 {
                0.0
            } else {
                vectors as f64 / stored.chunks as f64
            };
            let passed = stored.chunks > 0 && vectors == stored.chunks;
            (ratio, passed, format!("{vectors} vectors for {} chunks", stored.chunks))
        }
        None => (
            if stored.chunks > 0 { 1.0 } else { 0.0 },
            stored.chunks > 0,
            format!(
                "{} chunks; no embedding model configured, so no vectors expected",
                stored.chunks
            ),
        ),
    };
    GateResult {
        gate: "chunk_vector_consistency",
        metric,
        threshold: 1.0,
        passed,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hbi_extraction::{IndexEntry, PageText, StructureSignals, TocEntry, TocSource};

    fn book(texts: &[&str], toc: &[(u32, Option<u32>)]) -> Extraction {
        Extraction {
            page_count: u32::try_from(texts.len()).unwrap_or(0),
            page_labels: (1..=texts.len()).map(|n| n.to_string()).collect(),
            toc_source: TocSource::Outline,
            toc: toc
                .iter()
                .map(|(level, page)| TocEntry {
                    level: *level,
                    title: "t".to_owned(),
                    page: *page,
                })
                .collect(),
            index: Vec::new(),
            indices: Vec::new(),
            contents_pages: Vec::new(),
            index_support_rate: None,
            signals: StructureSignals::default(),
            pages: texts
                .iter()
                .enumerate()
                .map(|(n, text)| PageText {
                    number: u32::try_from(n + 1).unwrap_or(0),
                    label: (n + 1).to_string(),
                    text: (*text).to_owned(),
                })
                .collect(),
            ocr: None,
            warnings: Vec::new(),
        }
    }

    fn gate<'a>(gates: &'a [GateResult], name: &str) -> &'a GateResult {
        assert!(GATES.contains(&name), "{name} is listed in GATES");
        gates.iter().find(|g| g.gate == name).expect("gate present")
    }

    const TEXT: &str = "Chapter one tells of vectors and matrices.";

    #[test]
    fn a_scanned_book_fails_text_coverage() {
        let scanned = book(&["", " ", "12", TEXT], &[(1, Some(1))]);
        let stored = StoredCounts {
            chunks: 1,
            vectors: None,
        };
        let gates = assess(&scanned, stored, &QualityThresholds::default());
        let coverage = gate(&gates, "text_coverage");
        assert!(!coverage.passed);
        assert!((coverage.metric - 0.25).abs() < 1e-9);
        assert!(coverage.detail.contains("OCR"));
        let fine = book(&[TEXT, TEXT], &[(1, Some(1)), (2, Some(2))]);
        assert!(
            assess(&fine, stored, &QualityThresholds::default())
                .iter()
                .all(|g| g.passed)
        );
    }

    #[test]
    fn a_poorly_recognised_scan_needs_review_with_the_reason() {
        let stored = StoredCounts {
            chunks: 1,
            vectors: None,
        };
        let mut scan = book(&[TEXT, TEXT, TEXT, TEXT], &[(1, Some(1))]);
        assert!(
            !assess(&scan, stored, &QualityThresholds::default())
                .iter()
                .any(|g| g.gate == "ocr_confidence")
        );
        scan.ocr = Some(hbi_extraction::OcrSummary {
            pages: 3,
            failed: 0,
            mean_confidence: Some(0.52),
            languages: "eng".to_owned(),
            page_seconds: 6.0,
        });
        let gates = assess(&scan, stored, &QualityThresholds::default());
        let ocr = gate(&gates, "ocr_confidence");
        assert!(!ocr.passed);
        assert!(
            ocr.detail.contains("3 of 4 pages") && ocr.detail.contains("52%"),
            "{}",
            ocr.detail
        );
        if let Some(summary) = &mut scan.ocr {
            summary.mean_confidence = Some(0.93);
        }
        assert!(gate(&assess(&scan, stored, &QualityThresholds::default()), "ocr_confidence").passed);
    }

    #[test]
    fn garbage_toc_and_vectors_are_checked() {
        let mojibake = book(&["\u{FFFD}\u{E000}\u{E001}\u{1}abc"], &[(1, Some(1))]);
        let stored = StoredCounts {
            chunks: 3,
            vectors: Some(2),
        };
        let gates = assess(&mojibake, stored, &QualityThresholds::default());
        assert!(!gate(&gates, "garbage_ratio").passed);
        assert!((gate(&gates, "garbage_ratio").metric - 4.0 / 7.0).abs() < 1e-9);
        assert!(!gate(&gates, "chunk_vector_consistency").passed);

        let out_of_order = book(
            &[TEXT, TEXT, TEXT],
            &[(1, Some(2)), (1, Some(1)), (2, Some(9)), (1, None)],
        );
        let toc = toc_sanity(&out_of_order);
        assert!(!toc.passed);
        assert!((toc.metric - 0.75).abs() < 1e-9, "{toc:?}");
        assert!(!toc_sanity(&book(&[TEXT], &[])).passed, "no ToC at all");
    }

    #[test]
    fn index_support_is_gated_only_when_there_is_an_index() {
        let mut indexed = book(&[TEXT], &[(1, Some(1))]);
        let stored = StoredCounts {
            chunks: 1,
            vectors: None,
        };
        assert!(
            !assess(&indexed, stored, &QualityThresholds::default())
                .iter()
                .any(|g| g.gate == "index_locator_support")
        );
        indexed.index_support_rate = Some(0.5);
        let gates = assess(&indexed, stored, &QualityThresholds::default());
        assert!(!gate(&gates, "index_locator_support").passed);
    }

    #[test]
    fn a_misnested_or_unsorted_index_needs_review() {
        let stored = StoredCounts {
            chunks: 1,
            vectors: None,
        };
        let mut indexed = book(&[TEXT], &[(1, Some(1))]);
        indexed.index = vec![IndexEntry {
            path: vec!["vectors".to_owned()],
            pages: vec![[1, 1]],
            depth: 1,
            ..IndexEntry::default()
        }];
        indexed.signals = StructureSignals {
            index_nesting_depth: Some(2),
            index_sibling_order: Some(0.99),
            ..StructureSignals::default()
        };
        let gates = assess(&indexed, stored, &QualityThresholds::default());
        assert!(gate(&gates, "index_structure").passed, "{gates:?}");

        // Chains eight deep, as a hung package prefix once gave.
        indexed.signals.index_nesting_depth = Some(8);
        let gates = assess(&indexed, stored, &QualityThresholds::default());
        let structure = gate(&gates, "index_structure");
        assert!(!structure.passed);
        assert!(structure.detail.contains("8 deep"), "{structure:?}");

        indexed.signals.index_nesting_depth = Some(1);
        indexed.signals.index_sibling_order = Some(0.6);
        let gates = assess(&indexed, stored, &QualityThresholds::default());
        let structure = gate(&gates, "index_structure");
        assert!(!structure.passed);
        assert!((structure.metric - 0.6).abs() < 1e-9);
        assert!(structure.detail.contains("alphabetical order"), "{structure:?}");
    }
}
