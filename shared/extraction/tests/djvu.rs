//! DjVu documents, made here from a corpus PDF with `pdf2djvu` (text layer, outline and page
//! titles carried over) and read with djvulibre: the same ToC, page labels and text as the
//! PDF they came from; and hostile ones (cut short, a form that lies about its size, no pages)
//! that end in a clear error. Needs Debian's djvulibre-bin and pdf2djvu (scripts/test installs
//! them).

#![allow(clippy::unwrap_used)] // tests may unwrap: a failure is a test failure

#[path = "support/corpus.rs"]
mod corpus;

use corpus::{born_digital, djvu_of};
use hbi_extraction::{ExtractOptions, Extraction, Format, Progress, TocSource, detect_format, extract};

fn run(bytes: &[u8]) -> Result<Extraction, hbi_extraction::ExtractError> {
    let mut reported = Vec::new();
    let result = extract(bytes, &ExtractOptions::default(), true, &mut |progress| {
        if let Progress::Pages { done, total } = progress {
            reported.push((done, total));
        }
    });
    if let Ok(book) = &result {
        let n = book.page_count;
        let mut counts: Vec<u32> = reported.iter().map(|&(done, _)| done).collect();
        assert!(
            counts.windows(2).all(|pair| pair[0] <= pair[1]),
            "progress never goes back: {counts:?}"
        );
        counts.dedup();
        assert_eq!(counts, (1..=n).collect::<Vec<_>>(), "progress page by page");
        assert_eq!(reported.last(), Some(&(n, n)));
    }
    result
}

/// Words without the spaces between them: pdf2djvu's text layer joins some words of small
/// type that the PDF sets apart by position alone, so text is compared letter by letter.
fn letters(text: &str) -> String {
    text.chars().filter(|c| c.is_alphanumeric()).collect()
}

#[test]
fn a_djvu_made_from_a_pdf_has_its_toc_labels_and_text() {
    let (first, last) = (1, 14);
    let bytes = djvu_of("r-intro", first, last);
    assert_eq!(detect_format(&bytes).unwrap(), Format::Djvu);
    let djvu = run(&bytes).unwrap();
    let pdf = born_digital("r-intro");

    assert_eq!(djvu.page_count, last - first + 1);
    assert_eq!(
        djvu.page_labels[..],
        pdf.page_labels[..djvu.page_count as usize],
        "labels from the page titles"
    );
    assert_eq!(djvu.toc_source, TocSource::Outline);
    // Every outline entry of the pages kept, with its level, title and page.
    let kept: Vec<(u32, &str, Option<u32>)> = pdf
        .toc
        .iter()
        .filter(|entry| entry.page.is_some_and(|page| page <= last))
        .map(|entry| (entry.level, entry.title.as_str(), entry.page))
        .collect();
    let got: Vec<(u32, &str, Option<u32>)> = djvu
        .toc
        .iter()
        .filter(|entry| entry.page.is_some())
        .map(|entry| (entry.level, entry.title.as_str(), entry.page))
        .collect();
    assert_eq!(got, kept);
    for page in 7..=last as usize {
        let ours = letters(&djvu.pages[page - 1].text);
        let theirs = letters(&pdf.pages[page - 1].text);
        let same = ours.chars().zip(theirs.chars()).take_while(|(a, b)| a == b).count();
        assert!(
            ours.len().abs_diff(theirs.len()) <= theirs.len() / 50 && same >= theirs.len().min(200),
            "page {page}: {} letters against {}, {same} alike at the start\n{}\n---\n{}",
            ours.len(),
            theirs.len(),
            djvu.pages[page - 1].text,
            pdf.pages[page - 1].text
        );
    }
}

#[test]
fn hostile_djvu_documents_end_in_a_clear_error() {
    let good = djvu_of("r-intro", 1, 3);
    // Cut short: the directory names pages that are not there.
    let mut cut = good.clone();
    cut.truncate(good.len() / 3);
    let error = run(&cut).map(|book| book.page_count);
    assert!(
        matches!(&error, Err(err) if err.to_string().contains("DjVu")) || matches!(error, Ok(pages) if pages <= 3),
        "{error:?}"
    );
    // A form that says it is larger than the file, holding nothing.
    let mut liar = b"AT&TFORM\xff\xff\xff\xf0DJVMDIRM\x00\x00\x00\x04\x01\x00\x01\x00".to_vec();
    liar.extend(std::iter::repeat_n(0u8, 64));
    let error = run(&liar).expect_err("no document").to_string();
    assert!(error.contains("DjVu") || error.contains("no pages"), "{error}");
    // Only the signature.
    let error = run(b"AT&TFORM\x00\x00\x00\x04DJVU")
        .expect_err("no document")
        .to_string();
    assert!(error.contains("DjVu") || error.contains("no pages"), "{error}");
}
