//! Back-of-book indexes: finding them (one or several, also starting mid-page), parsing their
//! entries (sub-entries by indentation, wrapped lines, letter-group headings, locators, see and
//! see also) and mapping locators to physical pages through the page labels.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::IndexEntry;
use crate::book::{Book, is_index_title, normalize_label};

/// One printed index of a book.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IndexInfo {
    /// The heading as printed ("Concept Index").
    pub name: String,
    /// First and last physical page (1-based).
    pub physical_pages: [u32; 2],
    /// Entries and sub-entries parsed.
    pub entries: usize,
    /// The deepest nesting the layout asked for (1: entries only). Entries are never nested
    /// deeper than [`MAX_INDEX_DEPTH`]; a layout asking for more was misread.
    #[serde(default)]
    pub nesting_depth: u32,
    /// Share of neighbouring sibling entries in alphabetical order
    /// ([`crate::signals::sibling_order`]); `None` with no two siblings.
    #[serde(default)]
    pub sibling_order: Option<f64>,
}

/// One locator as printed, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Locator {
    pub(crate) printed: String,
    pub(crate) first: String,
    pub(crate) last: String,
    /// Extra pages after `last` ("f." = one more page).
    pub(crate) extra: u32,
}

/// A parsed index line.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct ParsedLine {
    pub(crate) term: String,
    pub(crate) locators: Vec<Locator>,
    pub(crate) see: Vec<String>,
    pub(crate) see_also: Vec<String>,
    /// The line ends with a comma: more locators follow on the next line.
    pub(crate) trailing_comma: bool,
}

impl ParsedLine {
    fn closed(&self) -> bool {
        !self.locators.is_empty() && !self.trailing_comma && self.see.is_empty() && self.see_also.is_empty()
    }
}

fn is_dash(c: char) -> bool {
    matches!(c, '-' | '\u{2013}' | '\u{2014}' | '\u{2212}')
}

/// A well-formed roman numeral up to 100 (front matter is never longer).
fn is_roman(s: &str) -> bool {
    if s.is_empty()
        || s.len() > 8
        || !(s.chars().all(|c| "ivxlc".contains(c)) || s.chars().all(|c| "IVXLC".contains(c)))
    {
        return false;
    }
    let value = |c: char| match c.to_ascii_lowercase() {
        'i' => 1,
        'v' => 5,
        'x' => 10,
        'l' => 50,
        _ => 100,
    };
    let digits: Vec<i64> = s.chars().map(value).collect();
    let mut n = 0;
    for (i, &d) in digits.iter().enumerate() {
        if digits.get(i + 1).is_some_and(|&next| next > d) {
            n -= d;
        } else {
            n += d;
        }
    }
    (1..=100).contains(&n) && crate::labels::roman(n).eq_ignore_ascii_case(s)
}

fn is_page(s: &str) -> bool {
    (!s.is_empty() && s.len() <= 6 && s.chars().all(|c| c.is_ascii_digit())) || is_roman(s)
}

/// Parse one locator token: `12`, `12–15`, `xii`, `12f.`, `12ff.`, `12n`, `12n3`.
pub(crate) fn parse_locator(token: &str) -> Option<Locator> {
    let mut t = token.trim();
    if t.is_empty() {
        return None;
    }
    let mut extra = 0;
    if let Some(rest) = t.strip_suffix("ff.").or_else(|| t.strip_suffix("ff")) {
        t = rest.trim_end();
    } else if let Some(rest) = t.strip_suffix("f.") {
        t = rest.trim_end();
        extra = 1;
    } else if let Some(pos) = t.rfind('n')
        && pos > 0
        && t[..pos].chars().all(|c| c.is_ascii_digit())
        && t[pos + 1..].chars().all(|c| c.is_ascii_digit())
    {
        t = &t[..pos];
    } else if t.len() > 1
        && let Some(rest) = t.strip_suffix('f')
        && rest.chars().all(|c| c.is_ascii_digit())
    {
        t = rest;
        extra = 1;
    }
    let (first, last) = match t.find(is_dash) {
        Some(pos) => {
            let a = &t[..pos];
            let b = t[pos..].trim_start_matches(is_dash);
            (a.trim(), b.trim())
        }
        None => (t, t),
    };
    if !is_page(first) || !is_page(last) {
        return None;
    }
    // Roman numerals must be of one case, and both ends of one kind.
    if first.chars().all(|c| c.is_ascii_digit()) != last.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some(Locator {
        printed: token.trim().to_string(),
        first: first.to_string(),
        last: last.to_string(),
        extra,
    })
}

/// Remove a run of dot leaders ("term . . . . 12") and return (before, after, found).
fn split_leaders(text: &str) -> Option<(String, String)> {
    let chars: Vec<char> = text.chars().collect();
    // Find the last run of at least three dots separated by optional spaces.
    let mut i = chars.len();
    while i > 0 {
        i -= 1;
        if chars[i] != '.' {
            continue;
        }
        // Walk back over the run.
        let end = i + 1;
        let mut j = i;
        let mut dots = 1;
        while j > 0 && (chars[j - 1] == '.' || chars[j - 1] == ' ') {
            j -= 1;
            if chars[j] == '.' {
                dots += 1;
            }
        }
        // A lone dot between spaces is what is left of the leaders beside a long term
        // ("babel . 21, 22"); the caller keeps it only when page numbers follow.
        let lone_leader = dots == 1 && j < i && j > 0 && chars.get(end) == Some(&' ');
        if dots >= 2 || lone_leader {
            let before: String = chars[..j].iter().collect();
            let after: String = chars[end..].iter().collect();
            return Some((before, after));
        }
        i = j;
    }
    None
}

/// A cross-reference split off an index line: the term before it, its targets, and the
/// locators printed after the last target ("see also subhead, 79": the 79 is the entry's).
#[derive(Debug, Default)]
struct CrossReference {
    term: String,
    see: Vec<String>,
    see_also: Vec<String>,
    locators: Vec<Locator>,
    trailing_comma: bool,
}

fn strip_see(text: &str) -> Option<CrossReference> {
    let lower = text.to_lowercase();
    for (marker, also) in [
        (", see also ", true),
        (" see also ", true),
        (", see ", false),
        (" see ", false),
        ("; see also ", true),
        ("; see ", false),
        (", siehe auch ", true),
        (", siehe ", false),
        (", voir aussi ", true),
        (", voir ", false),
    ] {
        if let Some(pos) = lower.find(marker)
            && text.is_char_boundary(pos)
            && text.is_char_boundary(pos + marker.len())
        {
            // "Antislash . . . . see Contre-oblique": the leaders run up to the reference.
            let term = text[..pos].trim().trim_end_matches(['.', ' ', '\u{2026}']).to_string();
            let term = if term.is_empty() {
                text[..pos].trim().to_string()
            } else {
                term
            };
            let mut targets: Vec<String> = text[pos + marker.len()..]
                .split(';')
                .map(|s| s.trim().trim_end_matches('.').trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            // Locators after the last target belong to the entry, not to the target.
            let (mut locators, mut trailing_comma) = (Vec::new(), false);
            if let Some(last) = targets.last_mut() {
                let (target, locs, comma) = split_comma_locators(last);
                if !locs.is_empty() && !target.is_empty() {
                    *last = target;
                    locators = locs;
                    trailing_comma = comma;
                }
            }
            let (see, see_also) = if also {
                (Vec::new(), targets)
            } else {
                (targets, Vec::new())
            };
            return Some(CrossReference {
                term,
                see,
                see_also,
                locators,
                trailing_comma,
            });
        }
    }
    None
}

/// What stands between an entry's term and its first locator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum LocatorSeparator {
    /// Leaders or a comma ("fonts, 12", "fonts . . . 12"): makeindex, Texinfo, Sphinx, xindy.
    #[default]
    Punctuation,
    /// A space alone ("fonts 12, 15"): ConTeXt registers and makeindex styles with an empty
    /// delimiter. A term ending in a number cannot be told from its first locator here, so
    /// this reading is only taken for an index whose lines ask for it
    /// ([`locator_separator`]).
    Space,
}

/// A page number set after the term with a space: arabic only, as a term may well end in a
/// word that reads as a roman numeral ("vi", "xi").
fn spaced_locator(token: &str) -> Option<Locator> {
    let starts_with_digit = token.chars().next().is_some_and(|c| c.is_ascii_digit());
    parse_locator(token).filter(|_| starts_with_digit)
}

/// A line parsed as [`parse_line`] does, then, with [`LocatorSeparator::Space`], the last
/// word of the term taken as the first locator when it is one ("functions 7, 29": the comma
/// reading leaves "functions 7" as the term).
pub(crate) fn parse_line_as(text: &str, separator: LocatorSeparator) -> ParsedLine {
    let mut p = parse_line(text);
    if separator == LocatorSeparator::Space {
        split_spaced_locator(&mut p);
    }
    p
}

fn split_spaced_locator(p: &mut ParsedLine) {
    let term = p.term.trim_end();
    // "functions 7," wrapping its list: the comma reading kept the comma in the term.
    let (body, comma) = match term.strip_suffix(',') {
        Some(rest) => (rest.trim_end(), true),
        None => (term, false),
    };
    let Some((head, last)) = body.rsplit_once(char::is_whitespace) else {
        return;
    };
    let head = head.trim_end();
    let Some(locator) = spaced_locator(last) else {
        return;
    };
    if head.is_empty() {
        return;
    }
    if comma {
        // Only a term with no locators yet keeps its comma: the list goes on below.
        if !p.locators.is_empty() {
            return;
        }
        p.trailing_comma = true;
    }
    p.term = head.to_string();
    p.locators.insert(0, locator);
}

/// How the index in `lines` separates terms from locators: a space alone when more lines read
/// as entries that way only (a line the comma reading finds no locators in, or leaves a
/// number at the end of the term) than read as entries with punctuation (a comma or leaders
/// before the first locator and no number ending the term).
pub(crate) fn locator_separator(lines: &[&str]) -> LocatorSeparator {
    let (mut spaced, mut punctuated) = (0usize, 0usize);
    for text in lines {
        let comma = parse_line(text);
        let space = parse_line_as(text, LocatorSeparator::Space);
        if space.locators.len() > comma.locators.len() {
            spaced += 1;
        } else if !comma.locators.is_empty() && !comma.term.is_empty() {
            punctuated += 1;
        }
    }
    if spaced > punctuated {
        LocatorSeparator::Space
    } else {
        LocatorSeparator::Punctuation
    }
}

/// A line ending in a cross-reference whose target wrapped onto the next line
/// ("Barre oblique inverse . . . . see" over "Contre-oblique", "fonts, see also"): the term
/// and whether it is a see also. The marker must follow a comma or leaders, as a term may end
/// in the word itself ("Holy See").
fn dangling_reference(text: &str) -> Option<(String, bool)> {
    for (marker, also) in [
        ("see also", true),
        ("see", false),
        ("voir aussi", true),
        ("voir", false),
        ("siehe auch", true),
        ("siehe", false),
    ] {
        let Some(start) = text.len().checked_sub(marker.len()) else {
            continue;
        };
        if !text.is_char_boundary(start) || !text[start..].eq_ignore_ascii_case(marker) {
            continue;
        }
        let raw = &text[..start];
        if !raw.ends_with(|c: char| c.is_whitespace() || c == ',') {
            // "oversee": the marker is the end of a word.
            continue;
        }
        let before = raw.trim_end();
        let after_punctuation = before.ends_with(',')
            || before.ends_with('\u{2026}')
            || split_leaders(before).is_some_and(|(_, after)| after.trim().is_empty());
        if !after_punctuation {
            continue;
        }
        let term = before.trim_end_matches([',', '.', ' ', '\u{2026}']).trim();
        if !term.is_empty() {
            return Some((term.to_string(), also));
        }
    }
    None
}

/// Split the trailing locator list off an index line.
pub(crate) fn parse_line(text: &str) -> ParsedLine {
    let text = text.trim();
    if let Some((term, also)) = dangling_reference(text) {
        // The target follows on the next line: an empty one, filled in there.
        let pending = vec![String::new()];
        let (see, see_also) = if also {
            (Vec::new(), pending)
        } else {
            (pending, Vec::new())
        };
        return ParsedLine {
            term,
            see,
            see_also,
            ..ParsedLine::default()
        };
    }
    let (term_part, tail, leaders) = match split_leaders(text) {
        Some((before, after)) if parse_locator_list(after.trim()).is_some() => {
            let before = before.trim().to_string();
            // A lone "." entry is swallowed by its own leaders.
            let before = if before.is_empty() && text.starts_with('.') {
                ".".to_string()
            } else {
                before
            };
            (before, after.trim().to_string(), true)
        }
        // Leaders with nothing after them: the locators wrapped onto the next line.
        Some((before, after)) if after.trim().is_empty() && !before.trim().is_empty() => {
            let xref = strip_see(before.trim());
            return match xref {
                Some(xref) => ParsedLine {
                    term: xref.term,
                    locators: xref.locators,
                    see: xref.see,
                    see_also: xref.see_also,
                    trailing_comma: true,
                },
                None => ParsedLine {
                    term: before.trim().to_string(),
                    trailing_comma: true,
                    ..ParsedLine::default()
                },
            };
        }
        _ => (text.to_string(), String::new(), false),
    };
    if leaders {
        let xref = strip_see(&term_part).unwrap_or_else(|| CrossReference {
            term: term_part.clone(),
            ..CrossReference::default()
        });
        let mut locators = xref.locators;
        locators.extend(parse_locator_list(&tail).unwrap_or_default());
        return ParsedLine {
            term: xref.term,
            locators,
            see: xref.see,
            see_also: xref.see_also,
            trailing_comma: tail.ends_with(','),
        };
    }
    // Comma style: "term, 12, 15–17" (or only locators: a wrapped list).
    if let Some(xref) = strip_see(text) {
        let (term, mut locators, comma) = split_comma_locators(&xref.term);
        let trailing_comma = if xref.locators.is_empty() {
            comma
        } else {
            xref.trailing_comma
        };
        locators.extend(xref.locators);
        return ParsedLine {
            term,
            locators,
            see: xref.see,
            see_also: xref.see_also,
            trailing_comma,
        };
    }
    let (term, locators, trailing_comma) = split_comma_locators(text);
    ParsedLine {
        term,
        locators,
        see: Vec::new(),
        see_also: Vec::new(),
        trailing_comma,
    }
}

/// "a, b, 12, 14–16," → ("a, b", [12, 14–16], true). A line of locators alone gives an empty
/// term.
fn split_comma_locators(text: &str) -> (String, Vec<Locator>, bool) {
    let trimmed = text.trim_end();
    let trailing_comma = trimmed.ends_with(',');
    let body = trimmed.trim_end_matches(',').trim_end();
    let parts: Vec<&str> = body.split(',').collect();
    let mut k = parts.len();
    let mut locators = Vec::new();
    while k > 0 {
        match parse_locator(parts[k - 1]) {
            Some(l) => {
                locators.push(l);
                k -= 1;
            }
            None => break,
        }
    }
    locators.reverse();
    if locators.is_empty() {
        return (trimmed.to_string(), Vec::new(), false);
    }
    let term = parts[..k].join(",").trim().to_string();
    // A term-less line of roman numerals alone is most likely text, not locators.
    (term, locators, trailing_comma)
}

fn parse_locator_list(text: &str) -> Option<Vec<Locator>> {
    let text = text.trim().trim_end_matches(',');
    if text.is_empty() {
        return None;
    }
    text.split([',', ';']).map(parse_locator).collect::<Option<Vec<_>>>()
}

fn is_open_bracket(c: char) -> bool {
    matches!(c, '[' | '\u{3010}' | '\u{3014}' | '\u{300c}' | '\u{ff3b}')
}

fn is_close_bracket(c: char) -> bool {
    matches!(c, ']' | '\u{3011}' | '\u{3015}' | '\u{300d}' | '\u{ff3d}')
}

/// Letter-group headings ("A", "Ä", "!", "Symbols") are not entries.
pub(crate) fn is_group_heading(text: &str) -> bool {
    let t = text.trim();
    // A heading set in brackets ("【A】", "[ Symbols ]") is the heading inside them.
    let t = match (t.chars().next(), t.chars().last()) {
        (Some(open), Some(close)) if t.chars().count() > 2 && is_open_bracket(open) && is_close_bracket(close) => {
            t[open.len_utf8()..t.len() - close.len_utf8()].trim()
        }
        _ => t,
    };
    let n = t.chars().filter(|c| !c.is_whitespace()).count();
    if n == 0 {
        return true;
    }
    if n <= 2 && !t.chars().any(|c| c.is_ascii_digit()) {
        return true;
    }
    matches!(
        t.to_lowercase().as_str(),
        "symbols"
            | "numbers"
            | "numerals"
            | "numerics"
            | "digits"
            | "analphabetics"
            | "non-alphabetics"
            | "nonalphabetics"
            | "symbols and numbers"
            | "numbers and symbols"
            | "punctuation"
            | "symbole"
            | "zahlen"
            | "symboles"
            | "chiffres"
            | "símbolos"
            | "simboli"
    )
}

/// One line of an index region with the geometry needed for nesting.
#[derive(Debug, Clone)]
pub(crate) struct RegionLine {
    pub(crate) page: usize,
    pub(crate) column: u8,
    pub(crate) x0: f32,
    pub(crate) size: f32,
    pub(crate) bold: bool,
    pub(crate) text: String,
}

impl RegionLine {
    /// Weight and size (in half points): what sets a heading apart from the entries.
    fn style(&self) -> (bool, i32) {
        (self.bold, (2.0 * self.size).round() as i32)
    }
}

/// An entry under construction.
struct Open {
    level: usize,
    term: String,
    locators: Vec<Locator>,
    see: Vec<String>,
    see_also: Vec<String>,
    trailing_comma: bool,
}

fn join_wrapped(a: &str, b: &str) -> String {
    let a = a.trim_end();
    let b = b.trim_start();
    if a.is_empty() {
        return b.to_string();
    }
    if b.is_empty() {
        return a.to_string();
    }
    if a.ends_with('-') && !a.ends_with(" -") {
        format!("{a}{b}")
    } else {
        format!("{a} {b}")
    }
}

/// Indentation (points) of each line relative to its column's left edge.
fn indents(lines: &[RegionLine]) -> Vec<f32> {
    // Left edge per (page, column), and per (page parity, column) over the whole index.
    let mut page_min: HashMap<(usize, u8), f32> = HashMap::new();
    let mut parity_min: HashMap<(usize, u8), f32> = HashMap::new();
    for l in lines {
        let e = page_min.entry((l.page, l.column)).or_insert(f32::INFINITY);
        *e = e.min(l.x0);
        let e = parity_min.entry((l.page % 2, l.column)).or_insert(f32::INFINITY);
        *e = e.min(l.x0);
    }
    lines
        .iter()
        .map(|l| {
            let own = page_min.get(&(l.page, l.column)).copied().unwrap_or(l.x0);
            let shared = parity_min.get(&(l.page % 2, l.column)).copied().unwrap_or(own);
            // A page whose column holds only sub-entries has its edge further right: use the
            // edge shared by the other pages of the same parity when it is close by.
            let base = if own - shared > 0.5 && own - shared < 4.0 * l.size.max(1.0) {
                shared
            } else {
                own
            };
            (l.x0 - base).max(0.0)
        })
        .collect()
}

/// Cluster indentation values (points) with a tolerance.
fn clusters(mut values: Vec<f32>, tol: f32) -> Vec<(f32, usize)> {
    values.sort_by(f32::total_cmp);
    let mut out: Vec<(f32, usize)> = Vec::new();
    for v in values {
        match out.last_mut() {
            Some((c, n)) if v - *c <= tol => {
                *c = (*c * *n as f32 + v) / (*n as f32 + 1.0);
                *n += 1;
            }
            _ => out.push((v, 1)),
        }
    }
    out
}

/// Deepest nesting a printed index has: entry, sub-entry, sub-sub-entry.
pub const MAX_INDEX_DEPTH: usize = 3;
/// Consecutive lines at one indentation, each after a complete entry, that make a nesting
/// level however rare it is in the whole index.
const MIN_LEVEL_RUN: usize = 4;
/// Longest term kept, in bytes; a term longer than a paragraph is a misread region.
const MAX_TERM_BYTES: usize = 400;

/// `text` cut to at most `max` bytes at a character boundary.
pub(crate) fn cut(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// The indentations of the sub-entry levels, shallowest first (at most
/// [`MAX_INDEX_DEPTH`] − 1 of them), from the indentations of lines that follow a complete
/// entry. A real index indents by a step or two; entries starting at many different
/// indentations (a package prefix hung into the margin so that the names line up, as in
/// `sb-ext:gc` beside `cl:find`) follow their words, not a structure: such an index is flat.
///
/// `sub_values` are (line number, indentation). A level used by few lines is still a level
/// when they follow one another: a run of sub-sub-entries under one sub-entry ("encodings /
/// font / LGR, OT1, T1, ...") is a structure, while stray wrapped lines stand alone.
fn sub_levels(sub_values: Vec<(usize, f32)>, term_lines: usize, body_size: f32) -> Vec<f32> {
    let total = sub_values.len();
    let tol = 0.25 * body_size.max(4.0);
    let mut found = clusters(sub_values.iter().map(|&(_, d)| d).collect(), tol);
    found.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.total_cmp(&b.0)));
    found.truncate(MAX_INDEX_DEPTH - 1);
    // The levels explain nearly every indented entry, or the indentation is not a structure.
    let explained: usize = found.iter().map(|&(_, n)| n).sum();
    if (explained as f32) < 0.85 * total as f32 {
        return Vec::new();
    }
    // A level is used by more than a stray line or two.
    let min_support = 2.max(term_lines / 50);
    let in_run = |centre: f32| {
        let mut run = 0usize;
        let mut previous: Option<usize> = None;
        for &(k, d) in &sub_values {
            if (d - centre).abs() > tol {
                continue;
            }
            run = if previous.is_some_and(|p| p + 1 == k) {
                run + 1
            } else {
                1
            };
            previous = Some(k);
            if run >= MIN_LEVEL_RUN {
                return true;
            }
        }
        false
    };
    let mut levels: Vec<f32> = found
        .iter()
        .filter(|&&(c, n)| n >= min_support || in_run(c))
        .map(|&(c, _)| c)
        .collect();
    levels.sort_by(f32::total_cmp);
    levels
}

/// The qualifier a term starts with, in characters: `sb-ext:` of `sb-ext:gc`, `Tcl_` not,
/// `std::` of `std::vector`. None for a term without one.
pub(crate) fn qualifier_chars(term: &str) -> Option<usize> {
    let colon = term.find(':')?;
    let head = &term[..colon];
    if head.is_empty() || head.chars().any(|c| c.is_whitespace()) {
        return None;
    }
    let colons = term[colon..].chars().take_while(|&c| c == ':').count();
    let rest = &term[colon + colons..];
    if colons > 2 || rest.is_empty() || rest.starts_with(char::is_whitespace) {
        return None;
    }
    Some(head.chars().count() + colons)
}

/// Whether the entries hang their qualifiers into the margin so that the names line up: the
/// longer a term's qualifier, the further left it starts (`cl:find` right of `sb-ext:gc`,
/// right of `sb-concurrency:gate`). Such indentation says nothing of nesting.
fn hangs_qualifiers(parsed: &[ParsedLine], ind: &[f32], body_size: f32) -> bool {
    let mut by_len: std::collections::BTreeMap<usize, Vec<f32>> = std::collections::BTreeMap::new();
    let mut terms = 0usize;
    for (p, &d) in parsed.iter().zip(ind) {
        if p.term.is_empty() {
            continue;
        }
        terms += 1;
        if let Some(n) = qualifier_chars(&p.term) {
            by_len.entry(n).or_default().push(d);
        }
    }
    let qualified: usize = by_len.values().map(Vec::len).sum();
    if by_len.len() < 3 || qualified < 5 || (qualified as f32) < 0.3 * terms as f32 {
        return false;
    }
    let medians: Vec<(usize, f32)> = by_len
        .into_iter()
        .map(|(n, mut v)| {
            v.sort_by(f32::total_cmp);
            (n, v[v.len() / 2])
        })
        .collect();
    // Each longer qualifier starts further left, by about a character's width per character.
    let step = 0.2 * body_size.max(4.0);
    let falling = medians
        .windows(2)
        .filter(|w| w[0].1 - w[1].1 >= step * (w[1].0 - w[0].0) as f32)
        .count();
    falling * 5 >= (medians.len() - 1) * 4
}

/// The style (bold, size in half points) the index sets its letter-group headings in, when
/// it is not the entries' own: xindy and glossary styles name some groups with words
/// ("Markers", "Maths") set like the letters, and those words head groups too.
fn group_heading_style(lines: &[RegionLine], parsed: &[ParsedLine]) -> Option<(bool, i32)> {
    let style = RegionLine::style;
    let mut headings: HashMap<(bool, i32), usize> = HashMap::new();
    let mut total = 0usize;
    for (l, p) in lines.iter().zip(parsed) {
        let t = l.text.trim();
        if p.locators.is_empty() && t.chars().count() <= 2 && t.chars().any(char::is_alphabetic) && is_group_heading(t)
        {
            *headings.entry(style(l)).or_default() += 1;
            total += 1;
        }
    }
    let (&shared, &n) = headings.iter().max_by_key(|(_, n)| **n)?;
    if n < 2 || (n as f32) < 0.8 * total as f32 {
        return None;
    }
    // The entries (lines with locators) are set otherwise.
    let with_locators = parsed.iter().filter(|p| !p.locators.is_empty()).count();
    let alike = lines
        .iter()
        .zip(parsed)
        .filter(|(l, p)| !p.locators.is_empty() && style(l) == shared)
        .count();
    (with_locators > 0 && (alike as f32) < 0.05 * with_locators as f32).then_some(shared)
}

/// A parsed entry: path, printed locators, see, see also.
pub(crate) type ParsedEntry = (Vec<String>, Vec<Locator>, Vec<String>, Vec<String>);

/// Parse the lines of one index into entries (printed locators, not yet mapped), with the
/// deepest nesting the indentation asked for before it was cut to [`MAX_INDEX_DEPTH`]:
/// deeper than that, the nesting was misread.
pub(crate) fn parse_region(lines: &[RegionLine], separator: LocatorSeparator) -> (Vec<ParsedEntry>, usize) {
    let mut parsed: Vec<ParsedLine> = lines.iter().map(|l| parse_line_as(&l.text, separator)).collect();
    squeezed_leaders(lines, &mut parsed);
    let ind = indents(lines);
    let body_size = {
        let mut s: Vec<f32> = lines.iter().map(|l| l.size).collect();
        s.sort_by(f32::total_cmp);
        s.get(s.len() / 2).copied().unwrap_or(10.0)
    };
    let tol = 0.5 * body_size.max(4.0);
    // Sub-entry indentations: lines (with a term) that follow a complete line.
    let mut sub_values = Vec::new();
    for k in 1..lines.len() {
        if parsed[k - 1].closed()
            && !parsed[k].term.is_empty()
            && ind[k] > 0.9 * body_size
            && !is_group_heading(&lines[k].text)
        {
            sub_values.push((k, ind[k]));
        }
    }
    let term_lines = parsed.iter().filter(|p| !p.term.is_empty()).count();
    let subs = if hangs_qualifiers(&parsed, &ind, body_size) {
        Vec::new()
    } else {
        sub_levels(sub_values, term_lines, body_size)
    };
    let max_sub = subs.iter().copied().fold(0.0f32, f32::max);
    let level_of = |d: f32| -> usize {
        let mut best = (d.abs(), 0);
        for (i, &c) in subs.iter().enumerate() {
            let dist = (c - d).abs();
            if dist < best.0 {
                best = (dist, i + 1);
            }
        }
        best.1
    };

    let mut out = Vec::new();
    let mut deepest = 0usize;
    let mut stack: Vec<String> = Vec::new();
    let mut open: Option<Open> = None;
    let emit = |o: Open, stack: &mut Vec<String>, out: &mut Vec<_>| {
        let term = cut(o.term.trim().trim_end_matches(',').trim(), MAX_TERM_BYTES);
        if term.is_empty() {
            return;
        }
        stack.truncate(o.level);
        let mut path = stack.clone();
        path.push(term.clone());
        stack.push(term);
        // A cross-reference whose target never came (the index ended) has none.
        let targets = |v: Vec<String>| v.into_iter().filter(|t| !t.trim().is_empty()).collect::<Vec<_>>();
        out.push((path, o.locators, targets(o.see), targets(o.see_also)));
    };
    let heading_style = group_heading_style(lines, &parsed);
    // A word or two without locators set in the letter groups' style heads a group.
    let styled_heading = |k: usize| {
        let l = &lines[k];
        let p = &parsed[k];
        let t = l.text.trim();
        heading_style == Some(l.style())
            && p.locators.is_empty()
            && p.see.is_empty()
            && p.see_also.is_empty()
            && t.split_whitespace().count() <= 3
            && t.chars().next().is_some_and(char::is_alphabetic)
    };
    // A word that names a letter group ("Symboles") with sub-entries indented under it is an
    // entry of that name ("symboles / gras"), not the group's heading.
    let heads_sub_entries = |k: usize| {
        let word = lines[k].text.trim();
        word.chars().count() > 1
            && word.chars().all(char::is_alphabetic)
            && ind
                .get(k + 1)
                .is_some_and(|&next| next > ind[k] + tol && level_of(next) > level_of(ind[k]))
    };
    for (k, line) in lines.iter().enumerate() {
        let mut p = parsed[k].clone();
        let d = ind[k];
        let expecting = open.as_ref().is_some_and(|o| o.trailing_comma || o.locators.is_empty());
        // "vi, 45" after a complete entry: the first "locator" is the term. So is a number
        // starting such a line at the entries' edge ("42, 5" in a group of numbers), where a
        // wrapped list of locators would follow a comma or be indented.
        let numeral_term = d <= tol
            && p.locators
                .first()
                .is_some_and(|l| l.first == l.last && l.extra == 0 && l.first.chars().all(|c| c.is_ascii_digit()));
        if p.term.is_empty()
            && p.locators.len() >= 2
            && !expecting
            && (!p.locators[0].first.chars().any(|c| c.is_ascii_digit()) || numeral_term)
        {
            let first = p.locators.remove(0);
            p.term = first.printed;
        }
        let p = &p;
        let locator_only = p.term.is_empty() && !p.locators.is_empty();
        if let Some(o) = open.as_mut() {
            let incomplete = o.locators.is_empty() || o.trailing_comma;
            let xref_open = !o.see.is_empty() || !o.see_also.is_empty();
            let deeper = d > max_sub + tol && d > tol;
            if locator_only && (o.trailing_comma || o.locators.is_empty() || deeper) {
                o.locators.extend(p.locators.iter().cloned());
                o.trailing_comma = p.trailing_comma;
                continue;
            }
            if deeper && (incomplete || xref_open) && !locator_only && !is_group_heading(&line.text) {
                if xref_open && o.locators.is_empty() {
                    // The cross-reference target wraps.
                    let target = if let Some(t) = o.see_also.last_mut() {
                        t
                    } else if let Some(t) = o.see.last_mut() {
                        t
                    } else {
                        continue;
                    };
                    *target = join_wrapped(target, &line.text);
                    continue;
                }
                if o.locators.is_empty() && o.term.len() < MAX_TERM_BYTES {
                    o.term = join_wrapped(&o.term, &p.term);
                    o.locators = p.locators.clone();
                    o.see = p.see.clone();
                    o.see_also = p.see_also.clone();
                    o.trailing_comma = p.trailing_comma;
                    continue;
                }
            }
        }
        if (is_group_heading(&line.text) || styled_heading(k)) && p.locators.is_empty() && !heads_sub_entries(k) {
            if let Some(o) = open.take() {
                // The index's first line, with neither locators nor sub-entries before the
                // first letter group, is a note under the heading ("needs checking").
                let note = out.is_empty() && o.locators.is_empty() && o.see.is_empty() && o.see_also.is_empty();
                if !note {
                    emit(o, &mut stack, &mut out);
                }
            }
            stack.clear();
            continue;
        }
        if p.term.is_empty() {
            continue;
        }
        if let Some(o) = open.take() {
            emit(o, &mut stack, &mut out);
        }
        let wanted = level_of(d).min(stack.len());
        deepest = deepest.max(wanted + 1);
        let level = wanted.min(MAX_INDEX_DEPTH - 1);
        open = Some(Open {
            level,
            term: p.term.clone(),
            locators: p.locators.clone(),
            see: p.see.clone(),
            see_also: p.see_also.clone(),
            trailing_comma: p.trailing_comma,
        });
    }
    if let Some(o) = open.take() {
        emit(o, &mut stack, &mut out);
    }
    take_trailing_page_numbers(&mut out);
    (out, deepest)
}

/// In an index that sets its page numbers after leaders, a line without them and with page
/// numbers lost its leaders to a long term ("\\includegraphics 92, 101, 105"): the number
/// ending the term is its first locator, as a term ending in a number would have its leaders.
fn squeezed_leaders(lines: &[RegionLine], parsed: &mut [ParsedLine]) {
    let has_leaders: Vec<bool> = lines.iter().map(|l| split_leaders(l.text.trim()).is_some()).collect();
    let with_locators = parsed.iter().filter(|p| !p.locators.is_empty()).count();
    let led = parsed
        .iter()
        .zip(&has_leaders)
        .filter(|(p, leaders)| **leaders && !p.locators.is_empty())
        .count();
    if with_locators == 0 || (led as f32) < 0.5 * with_locators as f32 {
        return;
    }
    for (p, leaders) in parsed.iter_mut().zip(has_leaders) {
        if !leaders && !p.locators.is_empty() && !p.term.is_empty() {
            split_spaced_locator(p);
        }
    }
}

/// An entry with neither locators, cross-references nor sub-entries is no entry as printed:
/// a term ending in a page number after a space ("\AddThinSpaceBeforeFootnotes 44", the
/// leaders squeezed out by a long term) has that number as its locator.
fn take_trailing_page_numbers(out: &mut [ParsedEntry]) {
    for i in 0..out.len() {
        let has_children = out
            .get(i + 1)
            .is_some_and(|next| next.0.len() > out[i].0.len() && next.0.starts_with(&out[i].0));
        let entry = &mut out[i];
        if has_children || !entry.1.is_empty() || !entry.2.is_empty() || !entry.3.is_empty() {
            continue;
        }
        let Some(term) = entry.0.last_mut() else {
            continue;
        };
        let Some((head, last)) = term.rsplit_once(char::is_whitespace) else {
            continue;
        };
        let head = head.trim_end();
        if head.is_empty() {
            continue;
        }
        if let Some(locator) = spaced_locator(last) {
            *term = head.to_string();
            entry.1.push(locator);
        }
    }
}

/// Map a printed page label to a physical page (1-based).
pub(crate) struct LabelMap {
    exact: HashMap<String, u32>,
    /// physical - printed for arabic labels, from the last arabic label seen.
    arabic_offset: Option<i64>,
    page_count: u32,
}

impl LabelMap {
    pub(crate) fn new(labels: &[String]) -> Self {
        let mut exact = HashMap::new();
        let mut arabic_offset = None;
        for (i, l) in labels.iter().enumerate() {
            let key = normalize_label(l);
            let phys = (i + 1) as u32;
            exact.entry(key).or_insert(phys);
            if let Ok(n) = l.parse::<i64>() {
                arabic_offset = Some(phys as i64 - n);
            }
        }
        Self {
            exact,
            arabic_offset,
            page_count: labels.len() as u32,
        }
    }

    pub(crate) fn physical(&self, printed: &str) -> Option<u32> {
        if let Some(&p) = self.exact.get(&normalize_label(printed)) {
            return Some(p);
        }
        let n: i64 = printed.parse().ok()?;
        let p = n + self.arabic_offset?;
        (1..=self.page_count as i64).contains(&p).then_some(p as u32)
    }
}

/// Find every index of the book and parse it.
pub(crate) fn extract_indexes(book: &Book) -> (Vec<IndexEntry>, Vec<IndexInfo>) {
    let map = LabelMap::new(&book.labels);
    let mut entries = Vec::new();
    let mut infos = Vec::new();
    for region in find_regions(book) {
        let (parsed, deepest) = parse_region(&region.lines, region.separator);
        let count = parsed.len();
        let first_entry = entries.len();
        // A heading followed by another heading (a part title page) holds no entries.
        if count == 0 {
            continue;
        }
        for (path, locators, see, see_also) in parsed {
            let mut pages = Vec::new();
            let mut printed = Vec::new();
            for l in &locators {
                printed.push(l.printed.clone());
                if let (Some(a), Some(b)) = (map.physical(&l.first), map.physical(&l.last)) {
                    let b = (b + l.extra).min(map.page_count);
                    pages.push([a.min(b), a.max(b)]);
                }
            }
            let depth = path.len() as u32;
            entries.push(IndexEntry {
                path,
                pages,
                see,
                see_also,
                index_name: Some(region.name.clone()),
                printed,
                depth,
            });
        }
        infos.push(IndexInfo {
            name: region.name,
            physical_pages: [region.first_page as u32 + 1, region.last_page as u32 + 1],
            entries: count,
            nesting_depth: deepest as u32,
            sibling_order: crate::signals::sibling_order(&entries[first_entry..]),
        });
    }
    (entries, infos)
}

pub(crate) struct Region {
    pub(crate) name: String,
    pub(crate) separator: LocatorSeparator,
    pub(crate) first_page: usize,
    pub(crate) last_page: usize,
    pub(crate) lines: Vec<RegionLine>,
}

/// Share of lines that carry locators (or a cross-reference).
fn locator_share(lines: &[&str], separator: LocatorSeparator) -> f64 {
    if lines.is_empty() {
        return 0.0;
    }
    let hits = lines
        .iter()
        .filter(|t| {
            let p = parse_line_as(t, separator);
            !p.locators.is_empty() || !p.see.is_empty() || !p.see_also.is_empty()
        })
        .count();
    hits as f64 / lines.len() as f64
}

/// Prose rather than an entry: several words ending in a full stop.
fn is_sentence(text: &str) -> bool {
    let t = text.trim();
    t.split_whitespace().count() >= 3 && t.ends_with('.') && !t.ends_with("..")
}

/// An index's name as a running head repeats it: its letters, whatever the punctuation and
/// numbers around them ("Appendix D: Function and variable index" on the index's later pages,
/// "Index 211"; OCR reads punctuation as it likes).
fn name_key(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_alphabetic())
        .flat_map(char::to_lowercase)
        .collect()
}

/// A heading has words and no page number: leaders whose term OCR lost, or an entry whose
/// size OCR overestimated, are no heading.
fn reads_as_heading(text: &str) -> bool {
    let letters = text.chars().filter(|c| c.is_alphabetic()).count();
    let dots = text.chars().filter(|&c| c == '.').count();
    let ends_in_page = text
        .split_whitespace()
        .last()
        .is_some_and(|t| is_page(t.trim_matches(|c: char| !c.is_alphanumeric())));
    letters >= 2 && dots <= letters && !ends_in_page
}

fn find_regions(book: &Book) -> Vec<Region> {
    let n = book.pages.len();
    let start_page = if n > 20 { n * 2 / 5 } else { 0 };
    // Candidate headings: (page, line index, how their entries set their locators).
    let mut heads: Vec<(usize, usize, LocatorSeparator)> = Vec::new();
    for p in start_page..n {
        for (k, line) in book.pages[p].lines.iter().enumerate() {
            if book.is_furniture(p, k) || !is_index_title(&line.text) {
                continue;
            }
            let prominent = line.size >= book.body_size * 1.1 || line.bold;
            if !prominent {
                continue;
            }
            // A running head or foot repeating the name of the index before it, in a smaller
            // face than that heading and below some of its entries, is part of that index, not
            // a new one (a part title page "Index" is followed by the index's own heading).
            if let Some(&(hp, hk, separator)) = heads.last() {
                let heading = &book.pages[hp].lines[hk];
                if name_key(&heading.text) == name_key(&line.text)
                    && heading.size > 1.1 * line.size
                    && book
                        .lines_after(hp, hk)
                        .take_while(|&(q, j, _)| (q, j) != (p, k))
                        .any(|(_, _, l)| !parse_line_as(&l.text, separator).locators.is_empty())
                {
                    continue;
                }
            }
            // The following lines must look like an index.
            let next: Vec<&str> = book
                .lines_after(p, k)
                .take(30)
                .map(|(_, _, l)| l.text.as_str())
                .collect();
            let separator = locator_separator(&next);
            if next.len() >= 3 && locator_share(&next, separator) >= 0.4 {
                heads.push((p, k, separator));
            }
        }
    }
    let mut regions = Vec::new();
    for (h, &(p, k, separator)) in heads.iter().enumerate() {
        let stop = heads.get(h + 1).map(|&(q, j, _)| (q, j));
        let name = book.pages[p].lines[k].text.trim().to_string();
        // A line clearly larger than the index's own text ends it: measured on the index, as a
        // book of code listings in a small face has a body size below its index's.
        let entry_size = {
            let mut sizes: Vec<f32> = book.lines_after(p, k).take(30).map(|(_, _, l)| l.size).collect();
            sizes.sort_by(f32::total_cmp);
            sizes.get(sizes.len() / 2).copied().unwrap_or(book.body_size)
        };
        let heading_size = 1.3 * book.body_size.max(entry_size);
        let mut lines = Vec::new();
        let mut last_page = p;
        let mut page_lines: Vec<RegionLine> = Vec::new();
        let mut cur_page = p;
        let mut ended = false;
        let mut before_entries = true;
        for (q, j, line) in book.lines_after(p, k) {
            if Some((q, j)) == stop {
                break;
            }
            // A note under the heading ("Numbers written in italic refer to ... lines where
            // the entry is used.") ends in a full stop, the entries never do.
            if before_entries {
                let parsed = parse_line_as(&line.text, separator);
                if parsed.locators.is_empty() && is_sentence(&line.text) {
                    continue;
                }
                before_entries = parsed.locators.is_empty() && parsed.see.is_empty() && parsed.see_also.is_empty();
            }
            if q != cur_page {
                // A whole page without locators ends the index.
                let texts: Vec<&str> = page_lines.iter().map(|l| l.text.as_str()).collect();
                if cur_page != p && locator_share(&texts, separator) < 0.3 {
                    ended = true;
                    break;
                }
                last_page = cur_page;
                lines.append(&mut page_lines);
                cur_page = q;
            }
            // A large heading that is not a letter group ends the index.
            if line.size >= heading_size
                && reads_as_heading(&line.text)
                && !is_group_heading(&line.text)
                && parse_line_as(&line.text, separator).locators.is_empty()
            {
                ended = true;
                break;
            }
            // A running head or foot repeating the index's name ("Index", "Index 211") that
            // was not told from the text, as it recurs on the index pages only.
            if book.is_page_edge(q, j) && name_key(&line.text) == name_key(&name) {
                continue;
            }
            // A full-width note above two-column entries is not an entry.
            if line.column == 0
                && book.pages[q].lines.iter().any(|l| l.column != 0)
                && parse_line_as(&line.text, separator).locators.is_empty()
            {
                continue;
            }
            page_lines.push(RegionLine {
                page: q,
                column: line.column,
                x0: line.x0,
                size: line.size,
                bold: line.bold,
                text: line.text.clone(),
            });
        }
        let texts: Vec<&str> = page_lines.iter().map(|l| l.text.as_str()).collect();
        if !page_lines.is_empty() && (cur_page == p || locator_share(&texts, separator) >= 0.3 || ended) {
            last_page = cur_page;
            lines.append(&mut page_lines);
        }
        regions.push(Region {
            name,
            separator,
            first_page: p,
            last_page,
            lines,
        });
    }
    regions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn locs(p: &ParsedLine) -> Vec<(String, String, u32)> {
        p.locators
            .iter()
            .map(|l| (l.first.clone(), l.last.clone(), l.extra))
            .collect()
    }

    #[test]
    fn locators() {
        let p = parse_line("align environment, 4, 6, 26, 31–33");
        assert_eq!(p.term, "align environment");
        assert_eq!(p.locators.len(), 4);
        assert_eq!(locs(&p)[3], ("31".into(), "33".into(), 0));
        let p = parse_line("preface, xii, xiv-xvi, 12f., 20ff., 33n, 40n2");
        assert_eq!(p.term, "preface");
        assert_eq!(
            locs(&p),
            vec![
                ("xii".into(), "xii".into(), 0),
                ("xiv".into(), "xvi".into(), 0),
                ("12".into(), "12".into(), 1),
                ("20".into(), "20".into(), 0),
                ("33".into(), "33".into(), 0),
                ("40".into(), "40".into(), 0),
            ]
        );
        let p = parse_line("anova . . . . . . . . . . . . 58, 60");
        assert_eq!(p.term, "anova");
        assert_eq!(p.locators.len(), 2);
        let p = parse_line("abline. . . . . . . . . 71");
        assert_eq!(p.term, "abline");
        let p = parse_line(". . . . . . . . . . . 60");
        assert_eq!(p.term, ".");
        // The locators wrapped below the leaders.
        let p = parse_line("\\@badlinearg . . . . . . . . .");
        assert_eq!(p.term, "\\@badlinearg");
        assert!(p.locators.is_empty() && p.trailing_comma);
        let p = parse_line("aligned environment, 3, 4, 9, 10,");
        assert!(p.trailing_comma);
        let p = parse_line("32, 33");
        assert!(p.term.is_empty());
        assert_eq!(p.locators.len(), 2);
        // Words are not locators.
        assert!(parse_line("Louis, mix").locators.is_empty());
        assert!(parse_line("cmex10").locators.is_empty());
    }

    #[test]
    fn locators_after_a_space() {
        let spaced = |t: &str| parse_line_as(t, LocatorSeparator::Space);
        let p = spaced("functions 7, 29");
        assert_eq!(p.term, "functions");
        assert_eq!(
            locs(&p),
            vec![("7".into(), "7".into(), 0), ("29".into(), "29".into(), 0)]
        );
        let p = spaced("\\maxdimen 325");
        assert_eq!(p.term, "\\maxdimen");
        assert_eq!(p.locators.len(), 1);
        let p = spaced("direct output 24-26");
        assert_eq!(p.term, "direct output");
        assert_eq!(locs(&p), vec![("24".into(), "26".into(), 0)]);
        let p = spaced("swap version 124, 126,");
        assert_eq!(p.term, "swap version");
        assert!(p.trailing_comma && p.locators.len() == 2);
        let p = spaced("tables 7,");
        assert_eq!(p.term, "tables");
        assert!(p.trailing_comma && p.locators.len() == 1);
        let p = spaced("fonts 12, see also typefaces");
        assert_eq!(p.term, "fonts");
        assert_eq!(p.see_also, vec!["typefaces".to_string()]);
        // A word that reads as a roman numeral stays in the term; a term alone stays whole.
        assert!(spaced("editor vi").locators.is_empty());
        assert!(spaced("implementors").locators.is_empty());
        assert!(spaced("1024").term.is_empty());
        // The comma reading leaves the number in the term.
        assert_eq!(parse_line("functions 7, 29").term, "functions 7");
    }

    #[test]
    fn the_separator_is_read_off_the_lines() {
        let context = [
            "a",
            "anchoring 151, 156",
            "angles 22, 297",
            "axis 234",
            "color 37",
            "manipulating 217",
        ];
        assert_eq!(locator_separator(&context), LocatorSeparator::Space);
        // Comma and leader indexes keep their reading, also with a term ending in a number.
        let makeindex = ["fonts, 3", "sizes, 4", "ISO 8859, 12", "typewriter, 5", "TeX 3, 7"];
        assert_eq!(locator_separator(&makeindex), LocatorSeparator::Punctuation);
        let leaders = [
            "anova . . . . . . 58, 60",
            "abline . . . . . 71",
            "Windows 95 . . . . 12",
        ];
        assert_eq!(locator_separator(&leaders), LocatorSeparator::Punctuation);
    }

    #[test]
    fn see_and_see_also() {
        let p = parse_line("equations, see displayed equations");
        assert_eq!(p.term, "equations");
        assert_eq!(p.see, vec!["displayed equations".to_string()]);
        let p = parse_line("Antislash . . . . . . see Contre-oblique");
        assert_eq!(p.term, "Antislash");
        assert_eq!(p.see, vec!["Contre-oblique".to_string()]);
        let p = parse_line("fonts, 12, see also typefaces; glyphs");
        assert_eq!(p.term, "fonts");
        assert_eq!(p.locators.len(), 1);
        assert_eq!(p.see_also, vec!["typefaces".to_string(), "glyphs".to_string()]);
    }

    #[test]
    fn group_headings() {
        assert!(is_group_heading("A"));
        assert!(is_group_heading("Ä"));
        assert!(is_group_heading("%"));
        assert!(is_group_heading("Symbols"));
        assert!(is_group_heading("Analphabetics"));
        assert!(!is_group_heading("arrows"));
        assert!(!is_group_heading("&, 29"));
        assert!(is_group_heading("\u{3010} A \u{3011}"));
        assert!(is_group_heading("\u{3010} Symbols \u{3011}"));
        assert!(is_group_heading("[B]"));
        assert!(!is_group_heading("[options]"));
    }

    fn rl(x0: f32, text: &str) -> RegionLine {
        RegionLine {
            page: 0,
            column: 1,
            x0,
            size: 10.0,
            bold: false,
            text: text.into(),
        }
    }

    fn styled(x0: f32, bold: bool, text: &str) -> RegionLine {
        RegionLine { bold, ..rl(x0, text) }
    }

    #[test]
    fn words_set_like_the_letter_groups_head_groups_and_numbers_are_entries() {
        // xindy: bold group headings, letters and words alike; a group of numbered entries.
        let lines = vec![
            styled(50.0, true, "Markers"),
            styled(55.0, false, "(\\tstidxmarker), 1"),
            styled(50.0, true, "Maths"),
            styled(50.0, false, "α, 5"),
            styled(50.0, true, "Numbers"),
            styled(50.0, false, "2, 5"),
            styled(50.0, false, "42, 5"),
            styled(50.0, true, "A"),
            styled(50.0, false, "aardvark, 4"),
            styled(50.0, false, "applications"),
            styled(70.0, false, "arara, 6"),
            styled(70.0, false, "Emacs, 6"),
            styled(50.0, false, "argument, 1,"),
            styled(50.0, false, "2, 3"),
            styled(50.0, true, "B"),
            styled(50.0, false, "block, 2"),
            styled(50.0, true, "Tools"),
            styled(70.0, false, "hammer, 7"),
            styled(70.0, false, "saw, 8"),
        ];
        let (out, _) = parse_region(&lines, LocatorSeparator::Punctuation);
        let paths: Vec<String> = out.iter().map(|e| e.0.join(" / ")).collect();
        assert_eq!(
            paths,
            vec![
                "(\\tstidxmarker)",
                "α",
                "2",
                "42",
                "aardvark",
                "applications",
                "applications / arara",
                "applications / Emacs",
                "argument",
                "block",
                // A bold word with entries indented under it is an entry, not a group.
                "Tools",
                "Tools / hammer",
                "Tools / saw",
            ]
        );
        assert_eq!(out[3].1.len(), 1);
        // A list of locators wrapped after a comma stays the entry's.
        assert_eq!(out[8].1.len(), 3);
    }

    #[test]
    fn nesting_and_wrapping() {
        // makeindex geometry: sub-entries 20pt, sub-sub-entries 30pt, wrapped lines 40pt.
        let lines = vec![
            rl(50.0, "A"),
            rl(50.0, "arrows"),
            rl(70.0, "extensible, 15"),
            rl(70.0, "in diagrams, 23"),
            rl(80.0, "deep, 24"),
            rl(80.0, "deeper, 25"),
            rl(50.0, "aligned environment, 3, 4,"),
            rl(90.0, "32, 33"),
            rl(50.0, "alignedleftspaceyesifneg"),
            rl(90.0, "option, 3"),
            rl(50.0, "delimiters, 12"),
            rl(70.0, "fixed size, 18"),
            rl(50.0, "dots, see ellipsis"),
            rl(50.0, "Beamer elements, see Beamer templates, colors, and"),
            rl(90.0, "fonts"),
        ];
        let (out, depth) = parse_region(&lines, LocatorSeparator::Punctuation);
        assert_eq!(depth, 3);
        let paths: Vec<String> = out.iter().map(|e| e.0.join(" / ")).collect();
        assert_eq!(
            paths,
            vec![
                "arrows",
                "arrows / extensible",
                "arrows / in diagrams",
                "arrows / in diagrams / deep",
                "arrows / in diagrams / deeper",
                "aligned environment",
                "alignedleftspaceyesifneg option",
                "delimiters",
                "delimiters / fixed size",
                "dots",
                "Beamer elements",
            ]
        );
        assert_eq!(out[5].1.len(), 4);
        assert_eq!(out[10].2, vec!["Beamer templates, colors, and fonts".to_string()]);
    }

    #[test]
    fn label_mapping() {
        let labels: Vec<String> = ["i", "ii", "1", "2", "3"].iter().map(|s| s.to_string()).collect();
        let m = LabelMap::new(&labels);
        assert_eq!(m.physical("ii"), Some(2));
        assert_eq!(m.physical("II"), Some(2));
        assert_eq!(m.physical("3"), Some(5));
        assert_eq!(m.physical("9"), None);
    }
}
