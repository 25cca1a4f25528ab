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

/// The word boxes a search hit is marked with fall where the drawn page shows the word: a
/// PDF's located by poppler (which draws it), a DjVu's from its text layer, the same word of
/// the same page within a hair of each other.
#[test]
fn words_are_located_on_the_page_as_drawn() {
    let pdf = corpus::corpus_pdf("r-intro");
    let page = hbi_extraction::page_words(&pdf, 14, None).unwrap();
    // US letter.
    assert!((page.aspect - 8.5 / 11.0).abs() < 0.01, "{}", page.aspect);
    assert!(page.words.len() > 200, "{}", page.words.len());
    for word in &page.words {
        assert!(
            (0.0..=1.0).contains(&word.x0) && word.x0 < word.x1 && word.x1 <= 1.0,
            "{word:?}"
        );
        assert!(
            (0.0..=1.0).contains(&word.y0) && word.y0 < word.y1 && word.y1 <= 1.0,
            "{word:?}"
        );
    }
    let texts: Vec<&str> = page.words.iter().map(|word| word.text.as_str()).collect();
    assert!(
        texts.windows(2).any(|pair| pair == ["Vectors", "and"]),
        "the section heading's words in order: {texts:?}"
    );

    let djvu = corpus::scratch_dir("render-words").join("book.djvu");
    std::fs::write(&djvu, corpus::djvu_of("r-intro", 1, 3)).unwrap();
    let (from_pdf, from_djvu) = (
        hbi_extraction::page_words(&pdf, 2, None).unwrap(),
        hbi_extraction::page_words(&djvu, 2, None).unwrap(),
    );
    assert!(!from_djvu.words.is_empty());
    let mut compared = 0;
    for word in from_pdf.words.iter().filter(|word| word.text.len() > 6).take(20) {
        // A word may be printed twice on the page: its nearest namesake is its twin.
        let distance = |other: &hbi_extraction::WordBox| (other.x0 - word.x0).abs() + (other.y1 - word.y1).abs();
        let Some(twin) = from_djvu
            .words
            .iter()
            .filter(|other| other.text == word.text)
            .min_by(|a, b| distance(a).total_cmp(&distance(b)))
        else {
            continue;
        };
        compared += 1;
        assert!(
            (twin.x0 - word.x0).abs() < 0.02 && (twin.y1 - word.y1).abs() < 0.02,
            "{word:?} vs {twin:?}"
        );
    }
    assert!(compared >= 5, "{compared} words found in both");

    assert!(hbi_extraction::page_words(&pdf, 500, None).is_err());
}

/// A scanned page has no text layer: its words come from Tesseract, located on the image as
/// the born-digital page's words are on theirs.
#[test]
fn a_scanned_pages_words_are_read_by_ocr_where_the_text_layer_has_none() {
    let scan = corpus::scratch_dir("render-scan-words").join("scan.pdf");
    std::fs::write(&scan, corpus::scan_of("r-intro", &[14])).unwrap();
    assert!(
        hbi_extraction::page_words(&scan, 1, None).unwrap().words.is_empty(),
        "no text layer"
    );
    let read = hbi_extraction::page_words(&scan, 1, Some("eng")).unwrap();
    let born = hbi_extraction::page_words(&corpus::corpus_pdf("r-intro"), 14, None).unwrap();
    assert!(
        (read.aspect - born.aspect).abs() < 0.01,
        "{} {}",
        read.aspect,
        born.aspect
    );
    assert!(
        read.words.len() > born.words.len() / 2,
        "{} of {}",
        read.words.len(),
        born.words.len()
    );
    let heading = |words: &[hbi_extraction::WordBox]| {
        words
            .windows(2)
            .find(|pair| pair[0].text == "Vectors" && pair[1].text == "and")
            .map(|pair| pair[0].clone())
            .expect("the section heading")
    };
    let (scanned, printed) = (heading(&read.words), heading(&born.words));
    assert!(
        (scanned.x0 - printed.x0).abs() < 0.01 && (scanned.y0 - printed.y0).abs() < 0.01,
        "{scanned:?} vs {printed:?}"
    );
}
