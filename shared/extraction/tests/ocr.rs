//! Scans: corpus pages rendered to 300 dpi grey images and bound into an image-only PDF (as a
//! scanner would, with poppler's pdftoppm and img2pdf), then read by OCR (Tesseract): the
//! text comes back as the born-digital page's, page by page, with its confidence. Needs
//! Debian's tesseract-ocr, poppler-utils and img2pdf (scripts/test installs them).

#![allow(clippy::unwrap_used)] // tests may unwrap: a failure is a test failure

#[path = "support/corpus.rs"]
mod corpus;

use corpus::{born_digital, joined, pages_of, scan_of};
use hbi_extraction::{ExtractOptions, Progress, extract};

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
    let mut read = Vec::new();
    let book = extract(
        &scan,
        &ExtractOptions::default(),
        true,
        &mut |progress| match progress {
            Progress::Recognised { done, total } => recognised.push((done, total)),
            Progress::Pages { done, total } => read.push((done, total)),
        },
    )
    .unwrap();
    assert_eq!(recognised, [(1, 3), (2, 3), (3, 3)], "progress page by page");
    // The scanned pages are not counted as read when they are laid out (they have no text
    // yet), only after OCR: the count of pages read never goes back.
    assert_eq!(read, [(3, 3)], "pages read");
    let ocr = book.ocr.clone().expect("the pages were recognised");
    assert_eq!((ocr.pages, ocr.failed, ocr.languages.as_str()), (3, 0, "eng"));
    assert!(ocr.mean_confidence.is_some_and(|c| c > 0.7), "{ocr:?}");

    let born_digital = born_digital("r-intro");
    // The running text; an index page's leaders are no text to compare.
    for (position, page) in pages.iter().enumerate().take(2) {
        let accuracy = character_accuracy(&book.pages[position].text, &born_digital.pages[*page as usize - 1].text);
        assert!(
            accuracy >= 0.97,
            "page {page}: character accuracy {accuracy:.3}\n{}",
            book.pages[position].text
        );
    }
    // The index page's heading, its entries (term, leaders, page) and its page numbers are
    // read. Its terms are R's operators and functions in a small typewriter face; the
    // operators (`%o%`, `::`) come out poorly from a JPEG scan, the names well.
    let index_page = &book.pages[2].text;
    assert!(index_page.contains("Function and variable index"), "{index_page}");
    // (term, page numbers) of each line with leaders.
    let entries = |text: &str| -> Vec<(String, String)> {
        text.lines()
            .filter_map(|line| {
                let (term, rest) = line.split_once(" .")?;
                let pages: String = rest
                    .rsplit('.')
                    .next()?
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .collect();
                let numeric = !pages.is_empty() && pages.chars().all(|c| c.is_ascii_digit() || c == ',');
                // The text layer glues the first leader dot to the term ("abline. . .").
                let term = term.trim().trim_end_matches('.');
                (numeric && !term.is_empty()).then(|| (term.to_owned(), pages))
            })
            .collect()
    };
    let (read_entries, printed_entries) = (entries(index_page), entries(&born_digital.pages[107].text));
    let exact = printed_entries.iter().filter(|e| read_entries.contains(e)).count();
    assert!(
        printed_entries.len() >= 40 && exact * 2 >= printed_entries.len(),
        "{exact} of the page's {} entries read exactly: {index_page}",
        printed_entries.len()
    );
    let numbers = |text: &str| -> Vec<String> {
        let mut found: Vec<String> = text
            .split(|c: char| !c.is_ascii_digit())
            .filter(|word| !word.is_empty())
            .map(str::to_owned)
            .collect();
        found.sort();
        found
    };
    let (read, printed) = (numbers(index_page), numbers(&born_digital.pages[107].text));
    let mut unmatched = printed.clone();
    let matched = read
        .iter()
        .filter(|n| {
            unmatched
                .iter()
                .position(|p| p == *n)
                .map(|i| unmatched.remove(i))
                .is_some()
        })
        .count();
    // Most numbers read are the page's own (leader dots misread as digits are no numbers),
    // and at least half of the page's are read.
    assert!(
        matched * 10 >= read.len() * 9 && matched * 2 >= printed.len(),
        "{matched} of {} numbers read are among the page's {}: {index_page}",
        read.len(),
        printed.len()
    );

    // Without OCR the scan has no text at all.
    let off = ExtractOptions {
        ocr_languages: None,
        ..ExtractOptions::default()
    };
    let blind = extract(&scan, &off, true, &mut |_| {}).unwrap();
    assert!(blind.ocr.is_none() && blind.pages.iter().all(|page| page.text.trim().is_empty()));
}

/// One US-letter page with nothing drawn on it, written by lopdf.
fn blank_page_pdf() -> Vec<u8> {
    use lopdf::{Document, Object, Stream, dictionary};
    let mut doc = Document::with_version("1.7");
    let pages_id = doc.new_object_id();
    let content = doc.add_object(Stream::new(dictionary! {}, Vec::new()));
    let page = doc.add_object(dictionary! {
        "Type" => "Page",
        "Parent" => pages_id,
        "Contents" => content,
        "MediaBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
    });
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! { "Type" => "Pages", "Kids" => vec![page.into()], "Count" => 1 }),
    );
    let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog);
    let mut bytes = Vec::new();
    doc.save_to(&mut bytes).unwrap();
    bytes
}

#[test]
fn a_book_scanned_in_part_has_only_its_scanned_pages_read() {
    // A born-digital page, a scanned one, and a blank one: only the scan is an image without
    // text, so only it is recognised; the blank page costs no render.
    let book = joined(&[pages_of("r-intro", 8, 8), scan_of("r-intro", &[9]), blank_page_pdf()]);
    let mut recognised = Vec::new();
    let extraction = extract(&book, &ExtractOptions::default(), true, &mut |progress| {
        if let Progress::Recognised { done, total } = progress {
            recognised.push((done, total));
        }
    })
    .unwrap();
    assert_eq!(recognised, [(1, 1)], "one page recognised");
    assert_eq!(extraction.ocr.as_ref().map(|ocr| (ocr.pages, ocr.failed)), Some((1, 0)));

    let born_digital = born_digital("r-intro");
    assert_eq!(
        extraction.pages[0].text, born_digital.pages[7].text,
        "the born-digital page as it was"
    );
    let accuracy = character_accuracy(&extraction.pages[1].text, &born_digital.pages[8].text);
    assert!(accuracy >= 0.97, "the scanned page: character accuracy {accuracy:.3}");
    assert!(extraction.pages[2].text.trim().is_empty(), "the blank page stays blank");
}

#[test]
fn a_book_in_german_is_read_with_the_german_model() {
    // A page of running German text with umlauts and ß.
    let scan = scan_of("lilypond-learning-de", &[26]);
    let born_digital = born_digital("lilypond-learning-de");
    let reference = &born_digital.pages[25].text;
    let umlauts = |text: &str| text.chars().filter(|c| "äöüßÄÖÜ".contains(*c)).count();
    let read_in = |languages: &str| {
        let options = ExtractOptions {
            ocr_languages: Some(languages.to_owned()),
            ..ExtractOptions::default()
        };
        extract(&scan, &options, true, &mut |_| {}).unwrap()
    };
    let german = read_in("deu");
    let english = read_in("eng");
    assert_eq!(german.ocr.as_ref().map(|ocr| ocr.languages.as_str()), Some("deu"));
    let (german_accuracy, english_accuracy) = (
        character_accuracy(&german.pages[0].text, reference),
        character_accuracy(&english.pages[0].text, reference),
    );
    assert!(
        german_accuracy >= 0.97,
        "German model: character accuracy {german_accuracy:.3}"
    );
    assert!(
        umlauts(&german.pages[0].text) * 10 >= umlauts(reference) * 9 && umlauts(reference) >= 10,
        "German model: {} of {} umlauts",
        umlauts(&german.pages[0].text),
        umlauts(reference)
    );
    assert!(
        umlauts(&english.pages[0].text) < umlauts(&german.pages[0].text) && english_accuracy < german_accuracy,
        "the English model reads German worse: {english_accuracy:.3} against {german_accuracy:.3}"
    );

    // A language without a model here is a warning; the installed ones still read the page.
    let with_missing = read_in("deu+zzz");
    assert_eq!(with_missing.ocr.as_ref().map(|ocr| ocr.languages.as_str()), Some("deu"));
    assert!(
        with_missing
            .warnings
            .iter()
            .any(|warning| warning.contains("no model for zzz")),
        "{:?}",
        with_missing.warnings
    );
    assert_eq!(with_missing.pages[0].text, german.pages[0].text);
}
