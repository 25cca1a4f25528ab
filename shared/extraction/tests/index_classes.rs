//! Index layouts that once defeated the parser, each built in a PDF of its own: package
//! prefixes hung into the margin in another font (the entries came out as chains of
//! sub-entries eight deep), a see-also whose target is followed by the entry's page numbers
//! (the pages were swallowed into the target), and makeindex's symbol groups and wrapped
//! entries, and ConTeXt registers, whose page numbers follow the term after a space alone, in
//! two columns of short lines; a heading set above two columns within the right one's width;
//! two columns that nearly touch with a centred folio below; and a makeindex index with
//! leaders, some squeezed out by long terms, a rare third level, a see whose target wraps and
//! an entry named like a letter group.

#![allow(clippy::unwrap_used)] // tests may unwrap: a failure is a test failure

use hbi_extraction::{ExtractOptions, Extraction, IndexEntry, MAX_INDEX_DEPTH, extract};
use lopdf::{Document, Object, Stream, dictionary};

/// Helvetica's advance widths (per 1000 em) of the characters the prefixes use.
fn helvetica_width(c: char) -> f32 {
    let w = match c {
        'f' | 't' | ':' => 278,
        'i' | 'j' | 'l' => 222,
        'm' => 833,
        'r' | '-' => 333,
        'w' => 722,
        'c' | 'k' | 's' | 'v' | 'x' | 'y' | 'z' => 500,
        _ => 556,
    };
    w as f32 / 1000.0
}

/// One positioned run of text: font resource, size, x, baseline, text.
struct Run {
    font: &'static str,
    size: f32,
    x: f32,
    y: f32,
    text: String,
}

fn run(font: &'static str, size: f32, x: f32, y: f32, text: &str) -> Run {
    Run {
        font,
        size,
        x,
        y,
        text: text.to_string(),
    }
}

fn content(runs: &[Run]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in runs {
        let escaped = r.text.replace('\\', "\\\\").replace('(', "\\(").replace(')', "\\)");
        out.extend_from_slice(
            format!(
                "BT /{} {} Tf 1 0 0 1 {:.2} {:.2} Tm ({escaped}) Tj ET\n",
                r.font, r.size, r.x, r.y
            )
            .as_bytes(),
        );
    }
    out
}

/// A book of `pages`, each a list of runs, with Helvetica as `/F1` and Courier as `/F2`.
fn build(pages: &[Vec<Run>]) -> Vec<u8> {
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let helvetica = doc.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica", "Encoding" => "WinAnsiEncoding",
    });
    let courier = doc.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Courier", "Encoding" => "WinAnsiEncoding",
    });
    let resources = doc.add_object(dictionary! {
        "Font" => dictionary! { "F1" => helvetica, "F2" => courier },
    });
    let mut kids = Vec::new();
    for runs in pages {
        let content_id = doc.add_object(Stream::new(lopdf::Dictionary::new(), content(runs)));
        kids.push(Object::Reference(doc.add_object(dictionary! {
            "Type" => "Page", "Parent" => pages_id, "Contents" => content_id, "Resources" => resources,
            "MediaBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
        })));
    }
    let count = kids.len() as i64;
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! { "Type" => "Pages", "Count" => count, "Kids" => kids }),
    );
    let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog);
    let mut out = Vec::new();
    doc.save_to(&mut out).unwrap();
    out
}

/// A body page of ordinary 10 pt text that mentions `terms`.
fn body_page(number: usize, terms: &[&str]) -> Vec<Run> {
    let mut runs = vec![run("F1", 16.0, 72.0, 740.0, &format!("Chapter {number}"))];
    let mut y = 710.0;
    for k in 0..30 {
        let mention = terms.get(k % terms.len().max(1)).copied().unwrap_or("the reader");
        let line = format!("Line {k} of page {number} explains how {mention} is used in practice.");
        runs.push(run("F1", 10.0, 72.0, y, &line));
        y -= 12.0;
    }
    runs
}

/// (qualifier, name, page): sorted by name, as Texinfo sorts them.
const QUALIFIED: &[(&str, &str, u32)] = &[
    ("cl:", "find", 2),
    ("sb-ext:", "finalize", 2),
    ("sb-concurrency:", "frlock-name", 3),
    ("sb-ext:", "gc", 3),
    ("sb-unicode:", "general-category", 4),
    ("sb-posix:", "getcwd", 4),
    ("sb-thread:", "grab-mutex", 5),
    ("cl:", "list", 5),
    ("sb-alien:", "make-alien", 6),
    ("sb-mop:", "make-method-lambda", 6),
    ("sb-concurrency:", "make-queue", 7),
    ("sb-thread:", "make-thread", 7),
    ("cl:", "print", 8),
    ("sb-ext:", "quit", 8),
];

/// Page of the function index: each qualifier in Helvetica 8, set to end where every name
/// starts (x = 140), a third of a point above the name's baseline; the name in Courier 9.
fn hanging_index_page() -> Vec<Run> {
    let mut runs = vec![run("F1", 14.0, 72.0, 740.0, "Function Index")];
    let mut y = 715.0;
    for &(qualifier, name, page) in QUALIFIED {
        let width: f32 = qualifier.chars().map(helvetica_width).sum::<f32>() * 8.0;
        runs.push(run("F1", 8.0, 140.0 - width, y + 0.3, qualifier));
        runs.push(run("F2", 9.0, 140.0, y, &format!("{name}, {page}")));
        y -= 11.0;
    }
    runs
}

/// Page of a makeindex concept index: a symbol group, sub-entries indented 20 pt, an entry
/// wrapped onto a line indented 40 pt, see and see-also
/// with pages.
fn concept_index_page() -> Vec<Run> {
    let lines: &[(f32, &str)] = &[
        (0.0, "Analphabetics"),
        (0.0, "@-commands, 2"),
        (0.0, "F"),
        (0.0, "fonts, 3"),
        (20.0, "sizes, 4"),
        (20.0, "typewriter, 5"),
        (0.0, "H"),
        (0.0, "headings, see also subhead, 6, 7"),
        (0.0, "hyphenation of words that are very long and need more than one"),
        (40.0, "line of the index, 8"),
        (0.0, "S"),
        (0.0, "subhead, 6"),
        (0.0, "T"),
        (0.0, "typefaces, see fonts"),
    ];
    let mut runs = vec![run("F1", 14.0, 72.0, 740.0, "Concept Index")];
    let mut y = 715.0;
    for &(indent, text) in lines {
        runs.push(run("F1", 10.0, 72.0 + indent, y, text));
        y -= 12.0;
    }
    runs
}

fn extract_book() -> Extraction {
    let mut pages: Vec<Vec<Run>> = Vec::new();
    for number in 1..=8u32 {
        let mut terms: Vec<&str> = QUALIFIED.iter().filter(|e| e.2 == number).map(|e| e.1).collect();
        terms.extend(["fonts", "sizes", "typewriter", "headings", "subhead", "hyphenation"]);
        pages.push(body_page(number as usize, &terms));
    }
    pages.push(hanging_index_page());
    pages.push(concept_index_page());
    let bytes = build(&pages);
    extract(&bytes, &ExtractOptions::default(), false, &mut |_| {}).unwrap()
}

fn entries_of<'a>(x: &'a Extraction, index: &str) -> Vec<&'a IndexEntry> {
    x.index
        .iter()
        .filter(|e| e.index_name.as_deref() == Some(index))
        .collect()
}

#[test]
fn hung_package_prefixes_are_entries_not_chains() {
    let x = extract_book();
    let entries = entries_of(&x, "Function Index");
    let paths: Vec<Vec<String>> = entries.iter().map(|e| e.path.clone()).collect();
    let expected: Vec<Vec<String>> = QUALIFIED
        .iter()
        .map(|(qualifier, name, _)| vec![format!("{qualifier}{name}")])
        .collect();
    assert_eq!(paths, expected, "{:?}", x.indices);
    for (entry, &(_, _, page)) in entries.iter().zip(QUALIFIED) {
        assert_eq!(entry.pages, vec![[page, page]], "{:?}", entry.path);
    }
    let info = x.indices.iter().find(|i| i.name == "Function Index").unwrap();
    assert_eq!(info.nesting_depth, 1);
    assert_eq!(info.sibling_order, Some(1.0), "sorted by the names, not the prefixes");
}

#[test]
fn see_also_targets_keep_the_entry_pages_and_groups_are_no_entries() {
    let x = extract_book();
    let entries = entries_of(&x, "Concept Index");
    let paths: Vec<String> = entries.iter().map(|e| e.path.join(" / ")).collect();
    assert_eq!(
        paths,
        vec![
            "@-commands",
            "fonts",
            "fonts / sizes",
            "fonts / typewriter",
            "headings",
            "hyphenation of words that are very long and need more than one line of the index",
            "subhead",
            "typefaces",
        ]
    );
    let headings = entries[4];
    assert_eq!(headings.see_also, vec!["subhead".to_string()]);
    assert_eq!(headings.pages, vec![[6, 6], [7, 7]]);
    assert_eq!(entries[5].pages, vec![[8, 8]]);
    assert_eq!(entries[7].see, vec!["fonts".to_string()]);
    assert!(entries[7].pages.is_empty());
    assert!(x.index.iter().all(|e| e.path.len() <= MAX_INDEX_DEPTH));
    assert_eq!(x.signals.index_nesting_depth, Some(2));
    assert_eq!(x.signals.index_sibling_order, Some(1.0));
}

/// (indent, printed line) of a ConTeXt register: lower-case letter groups, locators after a
/// space with no comma or leaders, sub-entries indented by 10 pt; the left column, then the
/// right.
const REGISTER_LEFT: &[(f32, &str)] = &[
    (0.0, "a"),
    (0.0, "alignment 2, 5"),
    (0.0, "arrows 3"),
    (10.0, "heads 3"),
    (10.0, "tips 4, 6"),
    (0.0, "b"),
    (0.0, "boxes 2-4"),
    (10.0, "nested 7"),
    (0.0, "c"),
    (0.0, "colors 1, 8"),
    (0.0, "\\maxdimen 5"),
    (0.0, "d"),
    (0.0, "direct output 6"),
];
const REGISTER_RIGHT: &[(f32, &str)] = &[
    (0.0, "m"),
    (0.0, "macros 4, 7"),
    (10.0, "expansion 5"),
    (0.0, "n"),
    (0.0, "namespaces 8"),
    (0.0, "nodes 2, 3, 6"),
    (0.0, "t"),
    (0.0, "tables 1"),
    (0.0, "token lists 7, 8"),
    (0.0, "v"),
    (0.0, "variables 3, 5"),
    (10.0, "cardinals 6"),
];

/// The register page: heading, a note under it, a running foot repeating the heading, the two
/// columns 250 pt apart.
fn register_page() -> Vec<Run> {
    let mut runs = vec![
        run("F1", 18.0, 57.0, 740.0, "Index"),
        run("F1", 10.0, 57.0, 718.0, "needs checking, incomplete"),
    ];
    for (column, lines) in [(57.0, REGISTER_LEFT), (306.0, REGISTER_RIGHT)] {
        let mut y = 700.0;
        for &(indent, text) in lines {
            runs.push(run("F1", 10.0, column + indent, y, text));
            y -= 14.0;
        }
    }
    runs.push(run("F1", 10.0, 57.0, 40.0, "Index"));
    runs
}

#[test]
fn locators_after_a_space_in_two_short_columns() {
    let mut pages: Vec<Vec<Run>> = (1..=8).map(|n| body_page(n, &["boxes", "macros", "tables"])).collect();
    pages.push(register_page());
    let bytes = build(&pages);
    let x = extract(&bytes, &ExtractOptions::default(), false, &mut |_| {}).unwrap();
    let entries = entries_of(&x, "Index");
    let got: Vec<(String, Vec<[u32; 2]>)> = entries.iter().map(|e| (e.path.join(" / "), e.pages.clone())).collect();
    let expected: Vec<(String, Vec<[u32; 2]>)> = [
        ("alignment", vec![[2, 2], [5, 5]]),
        ("arrows", vec![[3, 3]]),
        ("arrows / heads", vec![[3, 3]]),
        ("arrows / tips", vec![[4, 4], [6, 6]]),
        ("boxes", vec![[2, 4]]),
        ("boxes / nested", vec![[7, 7]]),
        ("colors", vec![[1, 1], [8, 8]]),
        ("\\maxdimen", vec![[5, 5]]),
        ("direct output", vec![[6, 6]]),
        ("macros", vec![[4, 4], [7, 7]]),
        ("macros / expansion", vec![[5, 5]]),
        ("namespaces", vec![[8, 8]]),
        ("nodes", vec![[2, 2], [3, 3], [6, 6]]),
        ("tables", vec![[1, 1]]),
        ("token lists", vec![[7, 7], [8, 8]]),
        ("variables", vec![[3, 3], [5, 5]]),
        ("variables / cardinals", vec![[6, 6]]),
    ]
    .into_iter()
    .map(|(path, pages)| (path.to_string(), pages))
    .collect();
    assert_eq!(got, expected, "{:?}", x.indices);
    assert_eq!(
        x.indices.len(),
        1,
        "the running foot is no second index: {:?}",
        x.indices
    );
}

/// Entries of a page: (x, baseline, text) in Helvetica 10.
fn placed(lines: &[(f32, f32, &str)]) -> Vec<Run> {
    lines.iter().map(|&(x, y, text)| run("F1", 10.0, x, y, text)).collect()
}

#[test]
fn a_heading_above_two_columns_starts_the_index_before_both() {
    // Sphinx: the chapter title "INDEX" flush right, over the right column only.
    let left = [
        "alpha particles, 2",
        "beta decay and its uses, 3",
        "gamma rays, 4",
        "delta detectors, 4",
        "epsilon series, 5",
        "zeta function values, 6",
    ];
    let right = [
        "kappa statistics, 2",
        "lambda calculus in brief, 3",
        "mu and its meson, 4",
        "nu in the neutrino, 5",
        "xi baryon families, 6",
        "omicron variant notes, 7",
    ];
    let mut lines = vec![(496.0, 660.0, "INDEX")];
    for (k, text) in left.iter().enumerate() {
        lines.push((72.0, 570.0 - 12.0 * k as f32, *text));
    }
    for (k, text) in right.iter().enumerate() {
        lines.push((311.0, 570.0 - 12.0 * k as f32, *text));
    }
    let mut page = placed(&lines);
    page[0] = run("F1", 14.0, 496.0, 660.0, "INDEX");
    let mut pages: Vec<Vec<Run>> = (1..=8).map(|n| body_page(n, &["alpha", "kappa"])).collect();
    pages.push(page);
    let x = extract(&build(&pages), &ExtractOptions::default(), false, &mut |_| {}).unwrap();
    let paths: Vec<String> = entries_of(&x, "INDEX").iter().map(|e| e.path.join(" / ")).collect();
    assert_eq!(
        paths,
        vec![
            "alpha particles",
            "beta decay and its uses",
            "gamma rays",
            "delta detectors",
            "epsilon series",
            "zeta function values",
            "kappa statistics",
            "lambda calculus in brief",
            "mu and its meson",
            "nu in the neutrino",
            "xi baryon families",
            "omicron variant notes",
        ],
        "{:?}",
        x.indices
    );
}

#[test]
fn columns_less_than_a_space_apart_are_still_two() {
    // xindy: the right column's baselines 2 pt above the left's (after a letter-group
    // heading), a sub-entry in Courier ending 1.8 pt before the right column, a centred folio
    // left of the right column's edge.
    let mut page = vec![run("F1", 18.0, 134.0, 740.0, "Index")];
    let left: &[(f32, &str)] = &[
        (134.0, "alpha particles, 2"),
        (134.0, "beta decay and its uses, 3"),
        (134.0, "books"),
        (154.0, "Compact Oxford Dictionary,"),
        (174.0, "7"),
        (154.0, "Ulysses, 2"),
        (134.0, "bound"),
        (154.0, "by duty, 6"),
        (154.0, "by honour, 6"),
        (134.0, "brave new worlds, 6"),
        (134.0, "cameo appearances, 6"),
        (134.0, "chalk and cheese, 7"),
    ];
    let right = [
        "delta functions, 4",
        "dice and games, 5",
        "dingo fences, 3",
        "dodo extinction, 8",
        "drake equation, 2",
        "duck typing, 6",
        "dune formation, 4",
        "dusk and dawn, 5",
        "dwarf planets, 3",
        "dye chemistry, 2",
        "dynamo theory, 7",
        "dyslexia studies, 8",
    ];
    for (k, &(x, text)) in left.iter().enumerate() {
        let y = 700.0 - 12.0 * k as f32;
        // The long sub-entry in Courier, 6 pt a character: 26 characters end at 310.
        let font = if text.starts_with("Compact") { "F2" } else { "F1" };
        page.push(run(font, 10.0, x, y, text));
    }
    for (k, text) in right.iter().enumerate() {
        page.push(run("F1", 10.0, 311.8, 702.0 - 12.0 * k as f32, text));
    }
    page.push(run("F1", 10.0, 303.0, 50.0, "9"));
    let mut pages: Vec<Vec<Run>> = (1..=8).map(|n| body_page(n, &["alpha", "delta"])).collect();
    pages.push(page);
    let x = extract(&build(&pages), &ExtractOptions::default(), false, &mut |_| {}).unwrap();
    let got: Vec<(String, Vec<[u32; 2]>)> = entries_of(&x, "Index")
        .iter()
        .map(|e| (e.path.join(" / "), e.pages.clone()))
        .collect();
    assert!(
        got.contains(&("books / Compact Oxford Dictionary".to_string(), vec![[7, 7]])),
        "{got:?}"
    );
    assert!(got.contains(&("dice and games".to_string(), vec![[5, 5]])), "{got:?}");
    assert!(got.contains(&("bound / by duty".to_string(), vec![[6, 6]])), "{got:?}");
    assert_eq!(got.len(), 23, "{got:?}");
}

/// A makeindex index with leaders in one column, three pages long: (indent, line). Sub-entries
/// are indented 20 pt, sub-sub-entries 30 pt, wrapped lines 40 pt.
fn leader_index_lines() -> Vec<(f32, String)> {
    let leaders = |term: &str, pages: &str| format!("{term} . . . . . . . . . . . . {pages}");
    let mut lines: Vec<(f32, String)> = vec![(0.0, "Symbols".into()), (0.0, leaders("\\!", "2"))];
    // Plain entries, a few with sub-entries: enough lines that a level of eight is rare.
    for k in 0..260 {
        lines.push((0.0, leaders(&format!("entry{k:03}"), &format!("{}", k % 8 + 1))));
        if k % 20 == 0 {
            lines.push((20.0, leaders("first use", "3")));
            lines.push((20.0, leaders("second use", "4")));
        }
        if k == 100 {
            // Long terms leave no room for leaders.
            lines.push((0.0, "babel . 2, 3, 4,".into()));
            lines.push((40.0, "6, 8".into()));
            lines.push((0.0, "\\includegraphics 2, 5, 7".into()));
            lines.push((0.0, "\\AddThinSpaceBeforeFootnotes 4".into()));
            // The target of a see wraps.
            lines.push((0.0, "Barre oblique inverse . . . . . . . . see".into()));
            lines.push((40.0, "Contre-oblique".into()));
            // A third level under a sub-entry without pages, once in the index.
            lines.push((0.0, "encodings".into()));
            lines.push((20.0, "font".into()));
            for (name, page) in [("LGR", "3"), ("OT1", "4"), ("T1", "5"), ("T2A", "6"), ("X2", "7")] {
                lines.push((30.0, leaders(name, page)));
            }
            // A word that names a letter group, as an entry with sub-entries.
            lines.push((0.0, "symboles".into()));
            lines.push((20.0, leaders("gras", "7")));
            lines.push((20.0, leaders("maths", "8")));
        }
    }
    lines
}

fn leader_index_book() -> Extraction {
    let mut pages: Vec<Vec<Run>> = (1..=8).map(|n| body_page(n, &["babel", "encodings"])).collect();
    let lines = leader_index_lines();
    for (p, chunk) in lines.chunks(50).enumerate() {
        let mut page = if p == 0 {
            vec![run("F1", 18.0, 72.0, 760.0, "Index")]
        } else {
            Vec::new()
        };
        for (k, (indent, text)) in chunk.iter().enumerate() {
            page.push(run("F1", 10.0, 72.0 + indent, 730.0 - 13.0 * k as f32, text));
        }
        pages.push(page);
    }
    extract(&build(&pages), &ExtractOptions::default(), false, &mut |_| {}).unwrap()
}

fn find<'a>(x: &'a Extraction, path: &str) -> Option<&'a IndexEntry> {
    x.index.iter().find(|e| e.path.join(" / ") == path)
}

#[test]
fn leaders_squeezed_out_by_a_long_term_leave_its_pages() {
    let x = leader_index_book();
    let pages = |path: &str| find(&x, path).map(|e| e.pages.clone());
    assert_eq!(pages("babel"), Some(vec![[2, 2], [3, 3], [4, 4], [6, 6], [8, 8]]));
    assert_eq!(pages("\\includegraphics"), Some(vec![[2, 2], [5, 5], [7, 7]]));
    assert_eq!(pages("\\AddThinSpaceBeforeFootnotes"), Some(vec![[4, 4]]));
}

#[test]
fn a_third_level_is_read_however_rare() {
    let x = leader_index_book();
    let paths: Vec<String> = x
        .index
        .iter()
        .map(|e| e.path.join(" / "))
        .filter(|p| p.starts_with("encodings"))
        .collect();
    assert_eq!(
        paths,
        vec![
            "encodings",
            "encodings / font",
            "encodings / font / LGR",
            "encodings / font / OT1",
            "encodings / font / T1",
            "encodings / font / T2A",
            "encodings / font / X2",
        ]
    );
    assert_eq!(
        find(&x, "encodings / font / T1").map(|e| e.pages.clone()),
        Some(vec![[5, 5]])
    );
}

#[test]
fn a_see_whose_target_wraps_keeps_it() {
    let x = leader_index_book();
    let entry = find(&x, "Barre oblique inverse");
    assert_eq!(entry.map(|e| e.see.clone()), Some(vec!["Contre-oblique".to_string()]));
}

#[test]
fn a_letter_group_name_with_sub_entries_is_an_entry() {
    let x = leader_index_book();
    assert!(find(&x, "symboles").is_some());
    assert_eq!(find(&x, "symboles / gras").map(|e| e.pages.clone()), Some(vec![[7, 7]]));
    assert_eq!(
        find(&x, "symboles / maths").map(|e| e.pages.clone()),
        Some(vec![[8, 8]])
    );
    // The real group heading still is none.
    assert!(find(&x, "Symbols").is_none());
    assert!(find(&x, "\\!").is_some());
}
