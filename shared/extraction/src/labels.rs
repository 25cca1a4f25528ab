//! Page labels from the catalog's `/PageLabels` number tree (ISO 32000-1, 12.4.2).

use std::collections::HashSet;

use lopdf::{Dictionary, Document, Object, ObjectId};

use crate::Warnings;
use crate::textstring::decode_text_string;

/// Deepest number tree walked.
const MAX_TREE_DEPTH: usize = 32;
/// Most number-tree nodes visited.
const MAX_TREE_NODES: usize = 100_000;

/// One label range: from a 0-based page index on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Range {
    start: usize,
    style: Option<u8>,
    prefix: String,
    first: i64,
}

/// Follow references (with a cap) to the object they name.
pub(crate) fn resolve<'a>(doc: &'a Document, mut object: &'a Object) -> Option<&'a Object> {
    for _ in 0..32 {
        match object {
            Object::Reference(id) => object = doc.get_object(*id).ok()?,
            other => return Some(other),
        }
    }
    None
}

pub(crate) fn resolve_dict<'a>(doc: &'a Document, object: &'a Object) -> Option<&'a Dictionary> {
    match resolve(doc, object)? {
        Object::Dictionary(d) => Some(d),
        Object::Stream(s) => Some(&s.dict),
        _ => None,
    }
}

pub(crate) fn dict_get<'a>(doc: &'a Document, dict: &'a Dictionary, key: &[u8]) -> Option<&'a Object> {
    resolve(doc, dict.get(key).ok()?)
}

/// One printed label per physical page; `None` when the document has no `/PageLabels`.
pub(crate) fn page_labels(doc: &Document, page_count: usize, warnings: &mut Warnings) -> Option<Vec<String>> {
    let physical = || Some((1..=page_count).map(|n| n.to_string()).collect::<Vec<_>>());
    let root = doc.catalog().ok().and_then(|catalog| catalog.get(b"PageLabels").ok())?;
    let mut ranges = Vec::new();
    let mut visited = HashSet::new();
    collect(doc, root, 0, &mut visited, &mut ranges, warnings);
    if ranges.is_empty() {
        warnings.push("the page labels are empty or unreadable; using physical page numbers");
        return physical();
    }
    ranges.sort_by_key(|r| r.start);
    let labels = (0..page_count)
        .map(|i| {
            let pos = ranges.partition_point(|r| r.start <= i);
            match pos.checked_sub(1).and_then(|p| ranges.get(p)) {
                Some(range) => label(range, i),
                None => (i + 1).to_string(),
            }
        })
        .collect();
    Some(labels)
}

fn collect(
    doc: &Document,
    node: &Object,
    depth: usize,
    visited: &mut HashSet<ObjectId>,
    ranges: &mut Vec<Range>,
    warnings: &mut Warnings,
) {
    if depth > MAX_TREE_DEPTH || visited.len() > MAX_TREE_NODES {
        warnings.push("the page label tree is too deep; part of it was ignored");
        return;
    }
    if let Object::Reference(id) = node
        && !visited.insert(*id)
    {
        warnings.push("the page label tree refers to itself; part of it was ignored");
        return;
    }
    let Some(dict) = resolve_dict(doc, node) else {
        return;
    };
    if let Some(Object::Array(nums)) = dict_get(doc, dict, b"Nums") {
        for pair in nums.chunks(2) {
            let [key, value] = pair else { break };
            let start = match resolve(doc, key) {
                Some(Object::Integer(n)) if *n >= 0 => usize::try_from(*n).unwrap_or(usize::MAX),
                _ => {
                    warnings.push("a page label range has no valid start page");
                    continue;
                }
            };
            let Some(spec) = resolve_dict(doc, value) else {
                warnings.push("a page label range is not a dictionary");
                continue;
            };
            let style = match dict_get(doc, spec, b"S") {
                Some(Object::Name(n)) => n.first().copied(),
                _ => None,
            };
            let prefix = match dict_get(doc, spec, b"P") {
                Some(Object::String(s, _)) => decode_text_string(s),
                _ => String::new(),
            };
            let first = match dict_get(doc, spec, b"St") {
                Some(Object::Integer(n)) if *n >= 1 => *n,
                _ => 1,
            };
            ranges.push(Range {
                start,
                style,
                prefix,
                first,
            });
        }
    }
    if let Some(Object::Array(kids)) = dict_get(doc, dict, b"Kids") {
        for kid in kids {
            collect(doc, kid, depth + 1, visited, ranges, warnings);
        }
    }
}

fn label(range: &Range, index: usize) -> String {
    let offset = i64::try_from(index - range.start).unwrap_or(0);
    let n = range.first.saturating_add(offset);
    let number = match range.style {
        Some(b'D') => n.to_string(),
        Some(b'R') => roman(n),
        Some(b'r') => roman(n).to_lowercase(),
        Some(b'A') => letters(n),
        Some(b'a') => letters(n).to_lowercase(),
        _ => String::new(),
    };
    format!("{}{}", range.prefix, number)
}

pub(crate) fn roman(mut n: i64) -> String {
    const TABLE: [(i64, &str); 13] = [
        (1000, "M"),
        (900, "CM"),
        (500, "D"),
        (400, "CD"),
        (100, "C"),
        (90, "XC"),
        (50, "L"),
        (40, "XL"),
        (10, "X"),
        (9, "IX"),
        (5, "V"),
        (4, "IV"),
        (1, "I"),
    ];
    if !(1..=100_000).contains(&n) {
        return n.to_string();
    }
    let mut out = String::new();
    for (value, digits) in TABLE {
        while n >= value {
            out.push_str(digits);
            n -= value;
        }
    }
    out
}

/// A..Z, then AA..ZZ, AAA..: the letter repeated.
fn letters(n: i64) -> String {
    if !(1..=10_000).contains(&n) {
        return n.to_string();
    }
    let letter = char::from(b'A' + ((n - 1) % 26) as u8);
    let count = ((n - 1) / 26 + 1) as usize;
    std::iter::repeat_n(letter, count).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn styles() {
        assert_eq!(roman(1994), "MCMXCIV");
        assert_eq!(letters(1), "A");
        assert_eq!(letters(27), "AA");
        let r = Range {
            start: 3,
            style: Some(b'r'),
            prefix: "A-".into(),
            first: 2,
        };
        assert_eq!(label(&r, 5), "A-iv");
    }
}
