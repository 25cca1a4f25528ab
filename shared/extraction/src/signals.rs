//! Signals every real book shows, measured on what was extracted, so that a misread structure
//! is noticed without ground truth: an index nests at most three deep and lists its entries
//! alphabetically, its locators point at pages that mention the term, a table of contents
//! runs forward through the book.

use serde::{Deserialize, Serialize};

use crate::index::{IndexInfo, MAX_INDEX_DEPTH};
use crate::verify::fold;
use crate::{IndexEntry, TocEntry};

/// How far the extracted structure can be trusted. Each signal is `None` where it cannot be
/// measured (no index, no ToC).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StructureSignals {
    /// The deepest nesting any index's layout asked for (1: entries only).
    pub index_nesting_depth: Option<u32>,
    /// Share of neighbouring sibling entries, over every index, in alphabetical order.
    pub index_sibling_order: Option<f64>,
    /// Share of index locators whose page shows the entry (as `Extraction::index_support_rate`).
    pub index_support_rate: Option<f64>,
    /// Share of ToC entries whose page is not before the page of the entry above.
    pub toc_page_order: Option<f64>,
}

impl StructureSignals {
    pub(crate) fn measure(toc: &[TocEntry], indices: &[IndexInfo], index: &[IndexEntry], support: Option<f64>) -> Self {
        Self {
            index_nesting_depth: indices.iter().map(|i| i.nesting_depth).max(),
            index_sibling_order: sibling_order(index),
            index_support_rate: support,
            toc_page_order: toc_page_order(toc),
        }
    }

    /// Why the index looks misread, if it does: nested deeper than an index nests, or its
    /// entries out of alphabetical order more often than `min_sibling_order` allows.
    pub fn index_doubts(&self, min_sibling_order: f64) -> Vec<String> {
        let mut doubts = Vec::new();
        if let Some(depth) = self.index_nesting_depth
            && depth as usize > MAX_INDEX_DEPTH
        {
            doubts.push(format!(
                "the index layout nests entries {depth} deep (an index nests at most {MAX_INDEX_DEPTH})"
            ));
        }
        if let Some(order) = self.index_sibling_order
            && order < min_sibling_order
        {
            doubts.push(format!(
                "only {:.0}% of neighbouring index entries are in alphabetical order",
                order * 100.0
            ));
        }
        doubts
    }
}

/// Sort keys of a term under a loose collation (case, accents and symbols ignored): letter by
/// letter, word by word, and without a leading package qualifier (`sb-ext:gc` sorts as `gc`
/// where the qualifiers hang in the margin).
fn collation_keys(term: &str) -> [String; 3] {
    let letters = fold(term);
    let words = term
        .split(|c: char| !c.is_alphanumeric())
        .map(fold)
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let unqualified = match crate::index::qualifier_chars(term) {
        Some(n) => fold(&term.chars().skip(n).collect::<String>()),
        None => letters.clone(),
    };
    [letters, words, unqualified]
}

/// Share of neighbouring siblings (entries with the same parent, one after the other, in one
/// index) in order under any of the loose collations; `None` with no such pair.
pub fn sibling_order(entries: &[IndexEntry]) -> Option<f64> {
    let (mut pairs, mut ordered) = (0usize, 0usize);
    // The previous sibling's keys per depth, under the current parents.
    let mut previous: Vec<Option<[String; 3]>> = Vec::new();
    let mut index_name: Option<&str> = None;
    for entry in entries {
        if entry.index_name.as_deref() != index_name {
            previous.clear();
            index_name = entry.index_name.as_deref();
        }
        let Some(term) = entry.path.last() else {
            continue;
        };
        let depth = entry.path.len() - 1;
        previous.truncate(depth + 1);
        previous.resize(depth + 1, None);
        let keys = collation_keys(term);
        if let Some(before) = &previous[depth] {
            pairs += 1;
            // Terms with the same first word ("abstract environment", "abstract begin
            // template"), a term and its extension ("NA", "NaN") and terms of symbols alone
            // are ties: indexes order them by keys that are not printed.
            let tie = keys[1].split(' ').next() == before[1].split(' ').next()
                || keys[0].starts_with(&before[0])
                || before[0].starts_with(&keys[0]);
            if tie || before.iter().zip(&keys).any(|(a, b)| a <= b) {
                ordered += 1;
            }
        }
        previous[depth] = Some(keys);
    }
    (pairs > 0).then(|| ordered as f64 / pairs as f64)
}

fn toc_page_order(toc: &[TocEntry]) -> Option<f64> {
    let pages: Vec<u32> = toc.iter().filter_map(|e| e.page).collect();
    if pages.len() < 2 {
        return None;
    }
    let forward = pages.windows(2).filter(|w| w[1] >= w[0]).count();
    Some(forward as f64 / (pages.len() - 1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &[&str]) -> IndexEntry {
        IndexEntry {
            path: path.iter().map(|s| s.to_string()).collect(),
            index_name: Some("Index".into()),
            depth: path.len() as u32,
            ..IndexEntry::default()
        }
    }

    #[test]
    fn siblings_are_compared_under_their_own_parent() {
        let entries = [
            entry(&["\\alpha"]),
            entry(&["Ärger"]),
            entry(&["arrows"]),
            entry(&["arrows", "zigzag"]),
            entry(&["arrows", "extensible"]),
            entry(&["beta"]),
        ];
        // alpha ≤ Ärger ≤ arrows ≤ beta; zigzag > extensible under arrows.
        assert_eq!(sibling_order(&entries), Some(3.0 / 4.0));
        assert_eq!(sibling_order(&entries[..1]), None);
    }

    #[test]
    fn hanging_qualifiers_sort_by_the_name() {
        let entries = [
            entry(&["sb-posix:filename"]),
            entry(&["sb-ext:finalize"]),
            entry(&["cl:find"]),
        ];
        assert_eq!(sibling_order(&entries), Some(1.0));
    }

    #[test]
    fn word_by_word_order_counts() {
        // "new york" before "newark" word by word, not letter by letter.
        let entries = [entry(&["new york"]), entry(&["newark"])];
        assert_eq!(sibling_order(&entries), Some(1.0));
    }

    #[test]
    fn doubts_name_the_signal() {
        let signals = StructureSignals {
            index_nesting_depth: Some(8),
            index_sibling_order: Some(0.5),
            ..StructureSignals::default()
        };
        let doubts = signals.index_doubts(0.9);
        assert_eq!(doubts.len(), 2);
        assert!(doubts[0].contains("8 deep"), "{doubts:?}");
        assert!(StructureSignals::default().index_doubts(0.9).is_empty());
    }

    #[test]
    fn toc_order() {
        let toc = |pages: &[u32]| -> Vec<TocEntry> {
            pages
                .iter()
                .map(|&p| TocEntry {
                    level: 1,
                    title: "t".into(),
                    page: Some(p),
                })
                .collect()
        };
        assert_eq!(toc_page_order(&toc(&[1, 3, 3, 2, 9])), Some(0.75));
        assert_eq!(toc_page_order(&toc(&[1])), None);
    }
}
