//! Scans: corpus pages rendered to 300 dpi grey images and bound into an image-only PDF (as a
//! scanner would, with poppler's pdftoppm and img2pdf), then read by OCR (Tesseract): the
//! text comes back as the born-digital page's, page by page, with its confidence. Needs
//! Debian's tesseract-ocr, poppler-utils and img2pdf (scripts/test installs them).

#![allow(clippy::unwrap_used)] // tests may unwrap: a failure is a test failure

use std::path::{Path, PathBuf};
use std::process::Command;

use hbi_extraction::{ExtractOptions, Progress, extract};

fn corpus_pdf(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpus")
        .join(name)
        .join("book.pdf")
}

/// Pages of a corpus book as an image-only PDF.
fn scan_of(book: &str, pages: &[u32]) -> Vec<u8> {
    let dir = std::env::temp_dir().join(format!("hbi-scan-test-{}-{book}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut images = Vec::new();
    for page in pages {
        let prefix = dir.join(format!("p{page:04}"));
        let status = Command::new("pdftoppm")
            .args([
                "-r",
                "300",
                "-gray",
                "-jpeg",
                "-singlefile",
                "-f",
                &page.to_string(),
                "-l",
                &page.to_string(),
            ])
            .arg(corpus_pdf(book))
            .arg(&prefix)
            .status()
            .expect("pdftoppm (poppler-utils) runs");
        assert!(status.success());
        images.push(prefix.with_extension("jpg"));
    }
    let out = dir.join("scan.pdf");
    let status = Command::new("img2pdf")
        .args(&images)
        .arg("-o")
        .arg(&out)
        .status()
        .expect("img2pdf runs");
    assert!(status.success());
    let bytes = std::fs::read(&out).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    bytes
}

/// Share of the reference's characters (letters and digits) that the other text has in the
/// same order: 1 - edit distance / length.
fn character_accuracy(ours: &str, reference: &str) -> f64 {
    let a: Vec<char> = ours.chars().filter(|c| c.is_alphanumeric()).collect();
    let b: Vec<char> = reference.chars().filter(|c| c.is_alphanumeric()).collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            current[j + 1] = (previous[j] + usize::from(ca != cb))
                .min(previous[j + 1] + 1)
                .min(current[j] + 1);
        }
        previous = current;
    }
    1.0 - previous[b.len()] as f64 / b.len().max(1) as f64
}

#[test]
fn a_scanned_book_is_read_by_ocr_page_by_page() {
    // Two pages of running text and the first page of r-intro's index.
    let pages = [8, 9, 108];
    let scan = scan_of("r-intro", &pages);
    let mut recognised = Vec::new();
    let book = extract(&scan, &ExtractOptions::default(), true, &mut |progress| {
        if let Progress::Recognised { done, total } = progress {
            recognised.push((done, total));
        }
    })
    .unwrap();
    assert_eq!(recognised, [(1, 3), (2, 3), (3, 3)], "progress page by page");
    let ocr = book.ocr.clone().expect("the pages were recognised");
    assert_eq!((ocr.pages, ocr.failed, ocr.languages.as_str()), (3, 0, "eng"));
    assert!(ocr.mean_confidence.is_some_and(|c| c > 0.7), "{ocr:?}");

    let born_digital = extract(
        &std::fs::read(corpus_pdf("r-intro")).unwrap(),
        &ExtractOptions::default(),
        true,
        &mut |_| {},
    )
    .unwrap();
    // The running text; an index page's leaders are no text to compare.
    for (position, page) in pages.iter().enumerate().take(2) {
        let accuracy = character_accuracy(&book.pages[position].text, &born_digital.pages[*page as usize - 1].text);
        assert!(
            accuracy >= 0.97,
            "page {page}: character accuracy {accuracy:.3}\n{}",
            book.pages[position].text
        );
    }
    // The index page's heading and its page numbers are read. Its terms, in a small
    // typewriter face between dot leaders, come out poorly from a JPEG scan: parsing indexes
    // from scans is the benchmark's matter (BENCHMARKS.md), not this test's.
    let index_page = &book.pages[2].text;
    assert!(index_page.contains("Function and variable index"), "{index_page}");
    let numbers = index_page
        .split(|c: char| !c.is_ascii_digit())
        .filter(|word| !word.is_empty())
        .count();
    assert!(numbers >= 30, "{numbers} page numbers in {index_page}");

    // Without OCR the scan has no text at all.
    let off = ExtractOptions {
        ocr_languages: None,
        ..ExtractOptions::default()
    };
    let blind = extract(&scan, &off, true, &mut |_| {}).unwrap();
    assert!(blind.ocr.is_none() && blind.pages.iter().all(|page| page.text.trim().is_empty()));
}
