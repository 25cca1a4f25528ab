//! Tests against the real book corpus in `/work/shared/corpus` (see its README.md).

#![allow(clippy::unwrap_used)] // tests may unwrap: a failure is a test failure

use std::path::{Path, PathBuf};
use std::process::Command;

use hbi_extraction::{ExtractError, ExtractOptions, Extraction, Progress, TocSource, extract};
use serde_json::Value;

fn corpus_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus");
    assert!(
        dir.join("README.md").is_file(),
        "the book corpus is missing: expected it at {} (the repository at /work/main, the corpus at /work/shared/corpus)",
        dir.display()
    );
    dir
}

fn scorer() -> PathBuf {
    let path = corpus_dir().join("../tools/score_extraction.py");
    assert!(path.is_file(), "the scorer is missing at {}", path.display());
    path
}

fn book_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("book.pdf").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn book_bytes(name: &str) -> Vec<u8> {
    std::fs::read(corpus_dir().join(name).join("book.pdf")).unwrap()
}

fn run(name: &str, with_text: bool) -> Extraction {
    let mut last = None;
    let x = extract(&book_bytes(name), &ExtractOptions::default(), with_text, &mut |p| {
        last = Some(p)
    })
    .unwrap();
    let n = x.page_count;
    assert_eq!(
        last,
        Some(Progress::Pages { done: n, total: n }),
        "{name}: final progress report"
    );
    x
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hbi-extraction-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn toc_matches_ground_truth() {
    let corpus = corpus_dir();
    let out = temp_dir("toc");
    let mut outlined = Vec::new();
    for name in book_names() {
        let meta = read_json(&corpus.join(&name).join("meta.json"));
        let x = run(&name, false);
        assert_eq!(
            x.page_count as u64,
            meta["page_count"].as_u64().unwrap(),
            "{name}: page count"
        );
        assert_eq!(x.page_labels.len(), x.page_count as usize, "{name}: one label per page");
        if meta["has_outline"].as_bool() == Some(true) {
            assert_eq!(x.toc_source, TocSource::Outline, "{name}");
            outlined.push(name.clone());
        }
        std::fs::write(out.join(format!("{name}.json")), serde_json::to_string(&x).unwrap()).unwrap();
    }
    assert!(
        outlined.len() >= 8,
        "expected the eight outlined books, found {outlined:?}"
    );

    let output = Command::new("python3")
        .arg(scorer())
        .arg("--corpus")
        .arg(&corpus)
        .arg(&out)
        .arg("--json")
        .output()
        .expect("python3 must be installed to run the scorer");
    assert!(
        output.status.success(),
        "scorer failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let scores: Value = serde_json::from_slice(&output.stdout).unwrap();
    for name in &outlined {
        let book = &scores["books"][name.as_str()];
        assert_eq!(
            book["toc_entry"]["f1"].as_f64(),
            Some(1.0),
            "{name}: toc.entry_f1 {book}"
        );
    }
    assert!(
        scores["summary"]["toc.level_acc"].as_f64().unwrap() >= 0.98,
        "level accuracy {}",
        scores["summary"]
    );
    // Floors of the "Book structure extraction" issue.
    let summary = &scores["summary"];
    let metric = |k: &str| summary[k].as_f64().unwrap();
    assert!(metric("toc.entry_f1") >= 0.98, "{summary}");
    assert!(metric("index.entry_f1") >= 0.95, "{summary}");
    assert!(metric("index.locator_f1") >= 0.93, "{summary}");
    assert!(metric("index.xref_f1") >= 0.90, "{summary}");
    assert_eq!(
        summary["index.false_entries_on_books_without_index"].as_u64(),
        Some(0),
        "{summary}"
    );
    let nooutline = &scores["books"]["r-lang-nooutline"];
    assert!(
        nooutline["toc_entry"]["f1"].as_f64().unwrap() >= 0.90,
        "r-lang-nooutline: {nooutline}"
    );
    assert_eq!(
        scores["books"]["maximabook"]["false_entries_on_books_without_index"].as_u64(),
        Some(0)
    );
    let _ = std::fs::remove_dir_all(&out);
}

/// The printed contents pages give the table of contents of the book without an outline, and
/// every index is found with its name and a high locator support rate.
#[test]
fn printed_contents_and_indexes() {
    let x = run("r-lang-nooutline", false);
    assert_eq!(x.toc_source, TocSource::PrintedContents);
    assert!(x.toc.len() > 100, "{} entries", x.toc.len());
    assert_eq!(x.indices.len(), 2, "{:?}", x.indices);
    assert!(x.indices[0].name.contains("Function and Variable Index"));
    assert!(x.indices[1].name.contains("Concept Index"));
    let rate = x.index_support_rate.unwrap();
    assert!(rate > 0.6, "support rate {rate}");

    let x = run("octave", false);
    assert_eq!(x.indices.len(), 4, "{:?}", x.indices);
    assert!(x.index.iter().all(|e| e.index_name.is_some()));

    let x = run("maximabook", false);
    assert!(x.index.is_empty() && x.indices.is_empty());
    assert_eq!(x.index_support_rate, None);
}

#[test]
fn page_labels_follow_page_label_tree() {
    let x = run("r-intro", false);
    let labels = &x.page_labels;
    // Front matter: the title pages, then lower-case roman numerals for the contents.
    assert_eq!(labels[2], "i");
    assert_eq!(labels[3], "ii");
    // The Preface (outline: physical page 7) is printed page 1.
    let toc = read_json(&corpus_dir().join("r-intro/toc.json"));
    let preface = &toc["outline_flat"][0];
    assert_eq!(preface["title"], "Preface");
    let preface_page = preface["page"].as_u64().unwrap() as usize;
    assert_eq!(labels[preface_page - 1], "1");
    // Every single-page locator of the index maps back to its printed page number.
    let index = read_json(&corpus_dir().join("r-intro/index.json"));
    let mut checked = 0;
    for entry in index["indices"][0]["entries"].as_array().unwrap() {
        for (printed, physical) in entry["pages"]
            .as_array()
            .unwrap()
            .iter()
            .zip(entry["pages_physical"].as_array().unwrap())
        {
            let printed = printed.as_str().unwrap();
            if printed.contains('–') || printed.contains('-') {
                continue;
            }
            let physical = physical[0].as_u64().unwrap() as usize;
            assert_eq!(labels[physical - 1], printed, "index locator {printed}");
            checked += 1;
        }
    }
    assert!(checked > 100, "only {checked} locators checked");
}

#[test]
fn books_without_page_labels_use_physical_numbers() {
    for name in ["beamer-userguide", "gnuplot"] {
        let x = run(name, false);
        for (i, label) in x.page_labels.iter().enumerate() {
            assert_eq!(label, &(i + 1).to_string(), "{name}: page {}", i + 1);
        }
    }
}

/// Index terms of r-intro that appear literally in the text are found on the page the
/// ground truth gives.
#[test]
fn index_terms_found_on_their_pages() {
    let x = run("r-intro", true);
    assert_eq!(x.pages.len(), x.page_count as usize);
    assert!(x.pages.iter().all(|p| p.label == x.page_labels[p.number as usize - 1]));
    let index = read_json(&corpus_dir().join("r-intro/index.json"));
    let (mut total, mut found, mut missed) = (0, 0, Vec::new());
    for block in index["indices"].as_array().unwrap() {
        for entry in block["entries"].as_array().unwrap() {
            let term = entry["term"].as_str().unwrap();
            if term.chars().count() < 3 || !term.chars().all(|c| c.is_alphanumeric() || c == '.' || c == '_') {
                continue;
            }
            for range in entry["pages_physical"].as_array().unwrap() {
                let (a, b) = (range[0].as_u64().unwrap() as usize, range[1].as_u64().unwrap() as usize);
                total += 1;
                if (a..=b).any(|p| x.pages.get(p - 1).is_some_and(|page| page.text.contains(term))) {
                    found += 1;
                } else {
                    missed.push(format!("{term}@{a}"));
                }
            }
        }
    }
    assert!(total > 100, "only {total} locators usable");
    assert!(
        found * 100 >= total * 80,
        "found {found} of {total} index terms on their pages; missed {missed:?}"
    );
    // Ligatures are expanded and words are separated.
    let all: String = x.pages.iter().map(|p| p.text.as_str()).collect::<Vec<_>>().join("\n");
    assert!(!all.contains('\u{FB01}') && !all.contains('\u{AD}'));
    assert!(all.contains("An Introduction to R"));
}

#[test]
fn german_umlauts_are_composed() {
    let x = run("lilypond-learning-de", true);
    let all: String = x.pages.iter().map(|p| p.text.as_str()).collect::<Vec<_>>().join("\n");
    for word in ["können", "Tonhöhen", "für"] {
        assert!(all.contains(word), "{word} not found");
    }
}

fn expect_err(bytes: &[u8]) -> ExtractError {
    match extract(bytes, &ExtractOptions::default(), true, &mut |_| {}) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

#[test]
fn damaged_files_never_panic() {
    let original = book_bytes("r-intro");
    for percent in [10, 50, 90] {
        let cut = &original[..original.len() * percent / 100];
        let result = extract(cut, &ExtractOptions::default(), true, &mut |_| {});
        if let Err(e) = &result {
            assert!(
                matches!(e, ExtractError::Corrupt(_) | ExtractError::NoPages),
                "{percent}%: {e:?}"
            );
            assert!(e.to_string().starts_with("the PDF"), "{e}");
        }
    }
    // Flip bytes at pseudo-random places (fixed seed), several times over.
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    for round in 0..6 {
        let mut copy = original.clone();
        for _ in 0..(50 * (round + 1)) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let at = 1024 + (seed as usize) % (copy.len() - 1024);
            copy[at] ^= (seed >> 32) as u8 | 1;
        }
        let _ = extract(&copy, &ExtractOptions::default(), true, &mut |_| {});
    }
}

#[test]
fn specific_errors() {
    assert!(matches!(expect_err(b""), ExtractError::Empty));
    assert!(matches!(expect_err(b"   \n"), ExtractError::Empty));
    assert!(matches!(
        expect_err(b"PK\x03\x04 this is a zip file"),
        ExtractError::UnsupportedFormat
    ));
    assert!(matches!(
        hbi_extraction::validate_header(b"hello"),
        Err(ExtractError::UnsupportedFormat)
    ));
    assert!(hbi_extraction::validate_header(b"%PDF-1.7\n").is_ok());
    assert_eq!(
        ExtractError::Encrypted.to_string(),
        "the PDF is encrypted; upload an unencrypted copy"
    );

    let small = ExtractOptions {
        max_file_bytes: 1000,
        ..ExtractOptions::default()
    };
    let bytes = book_bytes("amsldoc");
    assert!(matches!(
        extract(&bytes, &small, false, &mut |_| {}),
        Err(ExtractError::TooLarge { limit: 1000, .. })
    ));
    let few = ExtractOptions {
        max_pages: 10,
        ..ExtractOptions::default()
    };
    assert!(matches!(
        extract(&bytes, &few, false, &mut |_| {}),
        Err(ExtractError::TooManyPages { pages: 44, limit: 10 })
    ));
    // A header and nothing else.
    assert!(matches!(
        expect_err(b"%PDF-1.4\n%%EOF\n"),
        ExtractError::Corrupt(_) | ExtractError::NoPages
    ));
}

/// A minimal one-page PDF whose trailer names an `/Encrypt` dictionary.
fn hand_made_encrypted_pdf() -> Vec<u8> {
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
        "<< /Filter /Standard /V 1 /R 2 /O <00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff> \
         /U <00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff> /P -4 >>",
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for off in offsets {
        out.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R /Encrypt 4 0 R /ID [<0123456789abcdef0123456789abcdef> <0123456789abcdef0123456789abcdef>] >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

#[test]
fn encrypted_files_are_refused() {
    assert!(matches!(
        expect_err(&hand_made_encrypted_pdf()),
        ExtractError::Encrypted
    ));

    let qpdf = Path::new("/usr/bin/qpdf");
    if qpdf.exists() {
        let dir = temp_dir("encrypt");
        let out = dir.join("encrypted.pdf");
        let status = Command::new(qpdf)
            .args(["--encrypt", "u", "o", "256", "--"])
            .arg(corpus_dir().join("amsldoc/book.pdf"))
            .arg(&out)
            .status()
            .unwrap();
        assert!(status.success());
        let bytes = std::fs::read(&out).unwrap();
        assert!(matches!(expect_err(&bytes), ExtractError::Encrypted));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
