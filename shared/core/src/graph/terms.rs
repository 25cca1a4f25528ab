//! Index terms: the shared key normaliser, building [`IndexTermNode`]s from the extractor's
//! entries, and resolving see / see-also references within a book.

use std::collections::HashMap;

use hbi_extraction::IndexEntry;

use super::IndexTermNode;

/// The key of a shared `(:Term)`: compatibility forms folded (ligatures, full-width letters,
/// typographic dashes, quotes and spaces), lower-cased, whitespace collapsed. A small stand-in
/// for NFKC + case folding that needs no Unicode tables; composed and decomposed accents
/// still differ.
pub fn term_key(text: &str) -> String {
    let mut folded = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            // Full-width ASCII (U+FF01..U+FF5E) is ASCII shifted by 0xFEE0.
            '\u{FF01}'..='\u{FF5E}' => {
                folded.extend(char::from_u32(u32::from(ch) - 0xFEE0).map(|c| c.to_ascii_lowercase()));
            }
            '\u{FB00}' => folded.push_str("ff"),
            '\u{FB01}' => folded.push_str("fi"),
            '\u{FB02}' => folded.push_str("fl"),
            '\u{FB03}' => folded.push_str("ffi"),
            '\u{FB04}' => folded.push_str("ffl"),
            '\u{FB05}' | '\u{FB06}' => folded.push_str("st"),
            '\u{017F}' => folded.push('s'),
            '\u{2026}' => folded.push_str("..."),
            '\u{2010}'..='\u{2015}' | '\u{2212}' => folded.push('-'),
            '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}' | '\u{2032}' => folded.push('\''),
            '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{201F}' | '\u{2033}' => folded.push('"'),
            // Soft hyphen and zero-width characters carry no letters.
            '\u{00AD}' | '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}' => {}
            c if c.is_whitespace() || c.is_control() => folded.push(' '),
            c => folded.extend(c.to_lowercase()),
        }
    }
    collapse_whitespace(&folded)
}

/// How an index term matched a term search, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TermMatch {
    /// The whole term (or its path, joined) is the query.
    Exact,
    /// The name after a package or module qualifier is the query (`gc` for `sb-ext:gc`,
    /// `read` for `std::fs::read`).
    Qualified,
    /// Every word of the query is a word of the term.
    Words,
    /// The term starts with the query, or every word of the query starts a word of it.
    Prefix,
    /// The query is the term's initials (`gc` for "garbage collection").
    Initials,
    /// Every word of the query is a word of the term but for a letter or two.
    Fuzzy,
}

impl TermMatch {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exact => "exact",
            Self::Qualified => "qualified",
            Self::Words => "words",
            Self::Prefix => "prefix",
            Self::Initials => "initials",
            Self::Fuzzy => "fuzzy",
        }
    }
}

/// The letters-and-digits words of a text, lower-cased.
pub fn term_words(text: &str) -> Vec<String> {
    term_key(text)
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_owned)
        .collect()
}

/// How the index entry `term` (with its `path`, outermost first) matches a search for
/// `query`; `None` when it does not.
pub fn match_term(query: &str, term: &str, path: &[String]) -> Option<TermMatch> {
    let key = term_key(query);
    if key.is_empty() {
        return None;
    }
    let term_key_ = term_key(term);
    if term_key_ == key || term_key(&path.join(" ")) == key {
        return Some(TermMatch::Exact);
    }
    let words = term_words(query);
    if words.is_empty() {
        return None;
    }
    let qualified_name = term_key_.rsplit([':', '.', '/', '\\']).next().unwrap_or_default();
    if qualified_name != term_key_ && qualified_name == key {
        return Some(TermMatch::Qualified);
    }
    let term_words_ = term_words(term);
    let has = |word: &String| term_words_.iter().any(|candidate| candidate == word);
    if words.iter().all(has) {
        return Some(TermMatch::Words);
    }
    let starts = |word: &String| term_words_.iter().any(|candidate| candidate.starts_with(word.as_str()));
    if term_key_.starts_with(&key) || words.iter().all(starts) {
        return Some(TermMatch::Prefix);
    }
    if words.len() == 1 && words[0].len() >= 2 && term_words_.len() == words[0].chars().count() {
        let initials: String = term_words_.iter().filter_map(|word| word.chars().next()).collect();
        if initials == words[0] {
            return Some(TermMatch::Initials);
        }
    }
    let near = |word: &String| {
        let allowed = match word.chars().count() {
            0..=3 => 0,
            4..=7 => 1,
            _ => 2,
        };
        allowed > 0
            && term_words_
                .iter()
                .any(|candidate| edit_distance(word, candidate) <= allowed)
    };
    words.iter().all(near).then_some(TermMatch::Fuzzy)
}

/// Levenshtein distance in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

/// Looser than [`term_key`]: punctuation counts as space too. Only for matching a see
/// reference to its target, where "Ownership." and "ownership" are the same entry.
fn loose_key(text: &str) -> String {
    let key: String = term_key(text)
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    collapse_whitespace(&key)
}

fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Text as stored in the graph: NUL bytes dropped (FalkorDB cannot carry them), nothing else.
pub(crate) fn clean_text(text: &str) -> String {
    text.replace('\0', "")
}

/// Builds the index term nodes of a book from its extracted entries, in document order. A
/// sub-entry's parent is the nearest earlier entry whose path is its own path less the last
/// element; when the paths disagree, the nearest earlier entry one level up (by depth).
pub fn index_terms_from_entries(entries: &[IndexEntry]) -> Vec<IndexTermNode> {
    let mut terms: Vec<IndexTermNode> = Vec::with_capacity(entries.len());
    // Open ancestors: (depth, position); the position's path is in `terms`.
    let mut stack: Vec<(usize, u32)> = Vec::new();
    for entry in entries {
        let path: Vec<String> = entry
            .path
            .iter()
            .map(|part| clean_text(part.trim()))
            .filter(|part| !part.is_empty())
            .collect();
        let Some(term) = path.last().cloned() else {
            continue; // nothing to name the entry by
        };
        let depth = match usize::try_from(entry.depth) {
            Ok(depth) if depth > 0 => depth,
            _ => path.len(),
        };
        while stack.last().is_some_and(|&(open, _)| open >= depth) {
            stack.pop();
        }
        let parent_path = &path[..path.len() - 1];
        let by_path = stack
            .iter()
            .rev()
            .find(|&&(_, position)| {
                !parent_path.is_empty()
                    && terms
                        .get(position as usize)
                        .is_some_and(|parent| parent.path == parent_path)
            })
            .map(|&(_, position)| position);
        let by_depth = stack
            .last()
            .filter(|&&(open, _)| depth > 1 && open + 1 == depth)
            .map(|&(_, position)| position);
        let position = u32::try_from(terms.len()).unwrap_or(u32::MAX);
        terms.push(IndexTermNode {
            position,
            index_name: entry.index_name.as_deref().map(clean_text),
            term,
            path,
            parent: by_path.or(by_depth),
            pages: entry.pages.iter().filter(|[first, _]| *first >= 1).copied().collect(),
            see: entry.see.iter().map(|s| clean_text(s)).collect(),
            see_also: entry.see_also.iter().map(|s| clean_text(s)).collect(),
        });
        stack.push((depth, position));
    }
    terms
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ReferenceKind {
    See,
    SeeAlso,
}

/// The see and see-also references of a book's index: each resolved to a target position,
/// or left as text.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct References {
    /// (from, kind, to), without duplicates or self-references.
    pub edges: Vec<(u32, ReferenceKind, u32)>,
    /// Unresolved texts per position: (see, see also).
    pub unresolved: HashMap<u32, (Vec<String>, Vec<String>)>,
}

/// Resolves references by loose text: "X" targets the top-level entry X, "X, Y" the
/// sub-entry Y of X. The same index (by name) is preferred, then any index of the book.
pub(crate) fn resolve_references(terms: &[IndexTermNode]) -> References {
    let mut same_index: HashMap<(Option<&str>, Vec<String>), u32> = HashMap::new();
    let mut any_index: HashMap<Vec<String>, u32> = HashMap::new();
    for term in terms {
        let path: Vec<String> = term.path.iter().map(|part| loose_key(part)).collect();
        // The first entry of a path wins: that is where a reader's eye lands.
        same_index
            .entry((term.index_name.as_deref(), path.clone()))
            .or_insert(term.position);
        any_index.entry(path).or_insert(term.position);
    }
    let lookup = |index_name: Option<&str>, text: &str| -> Option<u32> {
        let whole = vec![loose_key(text)];
        let parts: Vec<String> = text.split(',').map(loose_key).filter(|p| !p.is_empty()).collect();
        let mut candidates = vec![whole];
        if parts.len() > 1 {
            candidates.push(parts);
        }
        candidates.into_iter().find_map(|path| {
            same_index
                .get(&(index_name, path.clone()))
                .or_else(|| any_index.get(&path))
                .copied()
        })
    };
    let mut references = References::default();
    let mut seen = std::collections::HashSet::new();
    for term in terms {
        for (kind, texts) in [
            (ReferenceKind::See, &term.see),
            (ReferenceKind::SeeAlso, &term.see_also),
        ] {
            for text in texts {
                match lookup(term.index_name.as_deref(), text).filter(|&to| to != term.position) {
                    Some(to) => {
                        if seen.insert((term.position, kind, to)) {
                            references.edges.push((term.position, kind, to));
                        }
                    }
                    None => {
                        let slot = references.unresolved.entry(term.position).or_default();
                        match kind {
                            ReferenceKind::See => slot.0.push(text.clone()),
                            ReferenceKind::SeeAlso => slot.1.push(text.clone()),
                        }
                    }
                }
            }
        }
    }
    references
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_term_search_matches_by_name_words_prefix_initials_and_near_misses() {
        let path = |parts: &[&str]| parts.iter().map(|part| (*part).to_owned()).collect::<Vec<_>>();
        let matched = |query: &str, term: &str| match_term(query, term, &path(&[term]));
        assert_eq!(
            matched("Garbage  Collection", "garbage collection"),
            Some(TermMatch::Exact)
        );
        assert_eq!(
            match_term("vectors indexing", "indexing", &path(&["vectors", "indexing"])),
            Some(TermMatch::Exact),
            "a sub-entry by its whole path"
        );
        assert_eq!(matched("gc", "sb-ext:gc"), Some(TermMatch::Qualified));
        assert_eq!(matched("read", "std::fs::read"), Some(TermMatch::Qualified));
        assert_eq!(matched("collection", "garbage collection"), Some(TermMatch::Words));
        assert_eq!(
            matched("environment align", "align environment"),
            Some(TermMatch::Words)
        );
        assert_eq!(matched("garb", "garbage collection"), Some(TermMatch::Prefix));
        assert_eq!(matched("gc", "garbage collection"), Some(TermMatch::Initials));
        assert_eq!(matched("enviroment", "align environment"), Some(TermMatch::Fuzzy));
        assert_eq!(matched("gc", "magic"), None, "letters inside a word are no match");
        assert_eq!(matched("cat", "cut"), None, "short words must be exact");
        assert_eq!(matched("   ", "anything"), None);
        assert_eq!(
            matched("&", "&"),
            Some(TermMatch::Exact),
            "a term without letters, as written"
        );
        assert_eq!(matched("&", "& operator"), None);
        assert!(TermMatch::Exact < TermMatch::Qualified && TermMatch::Initials < TermMatch::Fuzzy);
    }

    fn entry(path: &[&str], depth: u32) -> IndexEntry {
        IndexEntry {
            path: path.iter().map(|p| (*p).to_owned()).collect(),
            pages: vec![[3, 4]],
            depth,
            ..Default::default()
        }
    }

    #[test]
    fn keys_fold_case_space_and_compatibility_forms() {
        assert_eq!(term_key("  Rust\u{00A0}\tOwnership "), "rust ownership");
        assert_eq!(term_key("\u{FB01}le \u{2014} Ｓystem"), "file - system");
        assert_eq!(term_key("O\u{2019}Reilly\u{00AD}"), "o'reilly");
        assert_eq!(term_key("ÉCOLE"), "école");
        assert_eq!(term_key(" \n "), "");
        assert_eq!(loose_key("Ownership."), "ownership");
    }

    #[test]
    fn parents_come_from_paths_then_depth() {
        let entries = vec![
            entry(&["Rust"], 1),
            entry(&["Rust", "ownership"], 2),
            entry(&["Rust", "ownership", "moves"], 3),
            entry(&["Rust", "traits"], 2),
            entry(&["Python"], 1),
            entry(&["", "  "], 1),           // no text: skipped
            entry(&["Python", "GIL"], 0),    // depth missing: from the path
            entry(&["orphan sub-entry"], 2), // path disagrees: by depth
        ];
        let terms = index_terms_from_entries(&entries);
        let parents: Vec<Option<u32>> = terms.iter().map(|t| t.parent).collect();
        assert_eq!(parents, vec![None, Some(0), Some(1), Some(0), None, Some(4), Some(4)]);
        assert_eq!(terms[2].term, "moves");
        assert_eq!(terms[6].position, 6);
    }

    #[test]
    fn references_resolve_by_loose_text_and_path() {
        let mut terms = index_terms_from_entries(&[
            entry(&["Ownership"], 1),
            entry(&["Ownership", "borrowing"], 2),
            entry(&["borrow checker"], 1),
            entry(&["moves"], 1),
        ]);
        terms[2].see = vec!["ownership.".to_owned(), "Ownership, Borrowing".to_owned()];
        terms[3].see_also = vec!["Nowhere".to_owned(), "moves".to_owned(), "OWNERSHIP".to_owned()];
        let references = resolve_references(&terms);
        assert_eq!(
            references.edges,
            vec![
                (2, ReferenceKind::See, 0),
                (2, ReferenceKind::See, 1),
                (3, ReferenceKind::SeeAlso, 0)
            ]
        );
        assert_eq!(
            references.unresolved.get(&3),
            Some(&(vec![], vec!["Nowhere".to_owned(), "moves".to_owned()]))
        );
    }
}
