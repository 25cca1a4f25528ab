//! Sizes a hostile file cannot blow up: an outline title of a megabyte would otherwise be
//! copied into the section path of every chunk of its chapter.

#![allow(clippy::unwrap_used)] // tests may unwrap: a failure is a test failure

use hbi_extraction::{ExtractOptions, MAX_TITLE_BYTES, TocSource, extract};
use lopdf::{Document, Object, Stream, StringFormat, dictionary};

#[test]
fn a_megabyte_outline_title_is_cut() {
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font = doc.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica", "Encoding" => "WinAnsiEncoding",
    });
    let content = doc.add_object(Stream::new(
        lopdf::Dictionary::new(),
        b"BT /F1 11 Tf 72 700 Td (A page of text about vectors.) Tj ET".to_vec(),
    ));
    let page = doc.add_object(dictionary! {
        "Type" => "Page", "Parent" => pages_id, "Contents" => content,
        "Resources" => dictionary! { "Font" => dictionary! { "F1" => font } },
        "MediaBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
    });
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! { "Type" => "Pages", "Count" => 1, "Kids" => vec![page.into()] }),
    );
    let outlines = doc.new_object_id();
    let title = "Vectors and matrices ".repeat(50_000);
    let item = doc.add_object(dictionary! {
        "Title" => Object::String(title.into_bytes(), StringFormat::Literal),
        "Parent" => outlines,
        "Dest" => vec![page.into(), Object::Name(b"Fit".to_vec())],
    });
    doc.objects.insert(
        outlines,
        Object::Dictionary(dictionary! { "Type" => "Outlines", "First" => item, "Last" => item, "Count" => 1 }),
    );
    let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id, "Outlines" => outlines });
    doc.trailer.set("Root", catalog);
    let mut bytes = Vec::new();
    doc.save_to(&mut bytes).unwrap();

    let x = extract(&bytes, &ExtractOptions::default(), false, &mut |_| {}).unwrap();
    assert_eq!(x.toc_source, TocSource::Outline);
    assert_eq!(x.toc.len(), 1);
    assert!(
        x.toc[0].title.len() <= MAX_TITLE_BYTES,
        "{} bytes",
        x.toc[0].title.len()
    );
    assert!(x.toc[0].title.starts_with("Vectors and matrices"));
    assert!(x.warnings.iter().any(|w| w.contains("was cut")), "{:?}", x.warnings);
}
