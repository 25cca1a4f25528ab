//! Pages drawn for reading (`render_page`): a PDF page by pdftoppm, a DjVu page by ddjvu, both
//! as PNGs of the width asked for; an EPUB, a page past the end and a silly width refused.

#![allow(clippy::unwrap_used)] // tests may unwrap: a failure is a test failure

#[path = "support/corpus.rs"]
mod corpus;

use hbi_extraction::render_page;

fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let number = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    (number(16), number(20))
}

#[test]
fn pdf_and_djvu_pages_are_drawn_at_the_width_asked_for() {
    let pdf = corpus::corpus_pdf("r-intro");
    let (width, height) = png_size(&render_page(&pdf, 14, 800).unwrap());
    assert_eq!(width, 800);
    // US letter: 11 by 8.5 inches.
    assert!((1030..1040).contains(&height), "{height}");

    let djvu = corpus::scratch_dir("render").join("book.djvu");
    std::fs::write(&djvu, corpus::djvu_of("r-intro", 1, 3)).unwrap();
    assert_eq!(png_size(&render_page(&djvu, 2, 600).unwrap()).0, 600);

    assert!(render_page(&pdf, 114, 800).unwrap_err().contains("page"));
    assert!(render_page(&pdf, 1, 20).unwrap_err().contains("wide"));
}
