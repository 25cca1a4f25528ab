//! Index layouts that once defeated the parser, each built in a PDF of its own: package
//! prefixes hung into the margin in another font (the entries came out as chains of
//! sub-entries eight deep), a see-also whose target is followed by the entry's page numbers
//! (the pages were swallowed into the target), and makeindex's symbol groups and wrapped
//! entries, and ConTeXt registers, whose page numbers follow the term after a space alone, in
//! two columns of short lines.

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
