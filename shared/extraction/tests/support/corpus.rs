//! The corpus books, and documents made from them with real tools (poppler, img2pdf,
//! pdf2djvu), for the test binaries that read them: the extractor's and the product's.

// Each test binary uses the part it needs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// A corpus book's PDF. The corpus (`shared/`) sits beside the repository, whose root is
/// the first folder above the test's crate that holds `Cargo.lock`.
pub fn corpus_pdf(name: &str) -> PathBuf {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = crate_dir
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").exists())
        .unwrap_or(crate_dir);
    root.join("../shared/corpus").join(name).join("book.pdf")
}

/// A corpus book read from its PDF, with page text: what a scan or a DjVu made of it is held to.
pub fn born_digital(name: &str) -> hbi_extraction::Extraction {
    let bytes = std::fs::read(corpus_pdf(name)).expect("a corpus PDF");
    hbi_extraction::extract(&bytes, &hbi_extraction::ExtractOptions::default(), true, &mut |_| {})
        .expect("a corpus book extracts")
}

/// A folder of its own for one test's files, removed by the caller.
pub fn scratch_dir(purpose: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "hbi-{purpose}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).expect("a scratch folder");
    dir
}

/// Pages of a corpus book as an image-only PDF, as a scanner makes one: each page rendered
/// to a 300 dpi grey JPEG by pdftoppm, bound by img2pdf.
pub fn scan_of(book: &str, pages: &[u32]) -> Vec<u8> {
    let dir = scratch_dir(&format!("scan-{book}"));
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
        assert!(status.success(), "pdftoppm failed");
        images.push(prefix.with_extension("jpg"));
    }
    let out = dir.join("scan.pdf");
    let status = Command::new("img2pdf")
        .args(&images)
        .arg("-o")
        .arg(&out)
        .status()
        .expect("img2pdf runs");
    assert!(status.success(), "img2pdf failed");
    let bytes = std::fs::read(&out).expect("img2pdf's PDF");
    let _ = std::fs::remove_dir_all(&dir);
    bytes
}

/// PDFs joined page after page by poppler's pdfunite.
pub fn joined(parts: &[Vec<u8>]) -> Vec<u8> {
    let dir = scratch_dir("joined");
    let mut paths = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let path = dir.join(format!("part{i}.pdf"));
        std::fs::write(&path, part).expect("a part written");
        paths.push(path);
    }
    let out = dir.join("joined.pdf");
    let status = Command::new("pdfunite")
        .args(&paths)
        .arg(&out)
        .status()
        .expect("pdfunite (poppler-utils) runs");
    assert!(status.success(), "pdfunite failed");
    let bytes = std::fs::read(&out).expect("pdfunite's PDF");
    let _ = std::fs::remove_dir_all(&dir);
    bytes
}

/// Pages `first..=last` of a corpus book, born-digital, cut out by poppler's pdfseparate and
/// joined again.
pub fn pages_of(book: &str, first: u32, last: u32) -> Vec<u8> {
    let dir = scratch_dir(&format!("pages-{book}"));
    let status = Command::new("pdfseparate")
        .args(["-f", &first.to_string(), "-l", &last.to_string()])
        .arg(corpus_pdf(book))
        .arg(dir.join("p%d.pdf"))
        .status()
        .expect("pdfseparate (poppler-utils) runs");
    assert!(status.success(), "pdfseparate failed");
    let parts: Vec<Vec<u8>> = (first..=last)
        .map(|page| std::fs::read(dir.join(format!("p{page}.pdf"))).expect("a separated page"))
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    joined(&parts)
}

/// Pages `first..=last` of a corpus book as a bundled DjVu document, made by pdf2djvu with the
/// PDF's text layer, outline and page titles.
pub fn djvu_of(book: &str, first: u32, last: u32) -> Vec<u8> {
    let dir = scratch_dir(&format!("djvu-{book}"));
    let out = dir.join(format!("{book}-{first}-{last}.djvu"));
    let status = Command::new("pdf2djvu")
        .args(["-q", "-p", &format!("{first}-{last}"), "-o"])
        .arg(&out)
        .arg(corpus_pdf(book))
        .status()
        .expect("pdf2djvu (Debian package pdf2djvu) runs");
    assert!(status.success(), "pdf2djvu failed");
    let bytes = std::fs::read(&out).expect("pdf2djvu's document");
    let _ = std::fs::remove_dir_all(&dir);
    bytes
}
