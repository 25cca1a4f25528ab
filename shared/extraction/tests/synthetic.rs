//! Hand-built PDFs exercising every destination form, cycles, page label styles and fonts.

#![allow(clippy::unwrap_used)] // tests may unwrap: a failure is a test failure

use hbi_extraction::{ExtractOptions, Progress, TocEntry, extract};
use lopdf::{Dictionary, Document, Object, Stream, StringFormat, dictionary};

fn string(s: &str) -> Object {
    Object::String(s.as_bytes().to_vec(), StringFormat::Literal)
}

fn build() -> Vec<u8> {
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let helvetica = doc.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica", "Encoding" => "WinAnsiEncoding",
    });
    let cmap = b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap\n\
        1 begincodespacerange <0000> <FFFF> endcodespacerange\n\
        2 beginbfchar <0001> <0048> <0002> <FB01> endbfchar\n\
        1 beginbfrange <0010> <0012> [<0061> <0062> <00E9>] endbfrange\n\
        endcmap CMapName currentdict /CMap defineresource pop end end";
    let to_unicode = doc.add_object(Stream::new(Dictionary::new(), cmap.to_vec()));
    let cid_font = doc.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "CIDFontType2", "BaseFont" => "Test",
        "CIDSystemInfo" => dictionary! { "Registry" => string("Adobe"), "Ordering" => string("Identity"), "Supplement" => 0 },
        "DW" => 600,
    });
    let type0 = doc.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "Type0", "BaseFont" => "Test", "Encoding" => "Identity-H",
        "DescendantFonts" => vec![cid_font.into()], "ToUnicode" => to_unicode,
    });
    let tex_font = doc.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "CMR10", "FirstChar" => 0,
        "Widths" => (0..128).map(|_| Object::Integer(500)).collect::<Vec<_>>(),
        "Encoding" => dictionary! { "Type" => "Encoding", "Differences" => vec![12.into(), Object::Name(b"fi".to_vec()), 39.into(), Object::Name(b"quoteright".to_vec())] },
    });
    let form = doc.add_object(Stream::new(
        dictionary! { "Type" => "XObject", "Subtype" => "Form", "BBox" => vec![0.into(), 0.into(), 100.into(), 100.into()] },
        b"BT /F1 10 Tf 72 100 Td (In a form) Tj ET".to_vec(),
    ));
    let resources = doc.add_object(dictionary! {
        "Font" => dictionary! { "F1" => helvetica, "F2" => type0, "F3" => tex_font },
        "XObject" => dictionary! { "X1" => form },
    });
    let contents = [
        b"BT /F1 12 Tf 72 700 Td (Hello) Tj ( World) Tj 0 -14 Td [(Next)-300(line)] TJ ET /X1 Do".to_vec(),
        b"BT /F2 12 Tf 72 700 Td <00010002001000110012> Tj /F3 10 Tf 0 -20 Td (\\014nd it\\047s) Tj ET".to_vec(),
        b"BT /F1 12 Tf 72 700 Td (Third \\(page\\)) Tj ET".to_vec(),
    ];
    let mut page_ids = Vec::new();
    for content in contents {
        let content_id = doc.add_object(Stream::new(Dictionary::new(), content));
        page_ids.push(doc.add_object(dictionary! {
            "Type" => "Page", "Parent" => pages_id, "Contents" => content_id, "Resources" => resources,
            "MediaBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
        }));
    }
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages", "Count" => 3, "Kids" => page_ids.iter().map(|id| Object::Reference(*id)).collect::<Vec<_>>(),
        }),
    );
    let dest = |page: usize| -> Object {
        vec![
            Object::Reference(page_ids[page]),
            Object::Name(b"XYZ".to_vec()),
            Object::Null,
            Object::Null,
            Object::Null,
        ]
        .into()
    };

    // Outline items, filled in below.
    let outlines = doc.new_object_id();
    let ids: Vec<_> = (0..7).map(|_| doc.new_object_id()).collect();
    let utf16_title: Vec<u8> = [0xFE, 0xFF]
        .into_iter()
        .chain("  Ünïcode ✓ ".encode_utf16().flat_map(u16::to_be_bytes))
        .collect();
    let items: Vec<Dictionary> = vec![
        dictionary! { "Title" => string("Explicit"), "Parent" => outlines, "Next" => ids[1], "Dest" => dest(1) },
        dictionary! { "Title" => string("Old style"), "Parent" => outlines, "Prev" => ids[0], "Next" => ids[2], "Dest" => Object::Name(b"chap".to_vec()) },
        dictionary! { "Title" => string("Name tree"), "Parent" => outlines, "Prev" => ids[1], "Next" => ids[5],
        "First" => ids[3], "Last" => ids[4], "Dest" => string("sec") },
        dictionary! { "Title" => string("Action"), "Parent" => ids[2], "Next" => ids[4],
        "A" => dictionary! { "S" => "GoTo", "D" => string("aaa") } },
        dictionary! { "Title" => Object::String(utf16_title, StringFormat::Hexadecimal), "Parent" => ids[2], "Prev" => ids[3],
        "Dest" => vec![Object::Integer(2), Object::Name(b"Fit".to_vec())] },
        dictionary! { "Title" => Object::String(b"Broken \x84 dash".to_vec(), StringFormat::Literal), "Parent" => outlines, "Prev" => ids[2], "Next" => ids[6], "Dest" => Object::Name(b"missing".to_vec()) },
        // Its /Next points back to the first item: a cycle.
        dictionary! { "Title" => string("Loop"), "Parent" => outlines, "Prev" => ids[5], "Next" => ids[0], "First" => ids[6],
        "A" => dictionary! { "S" => "URI", "URI" => string("http://example.org") } },
    ];
    for (id, item) in ids.iter().zip(items) {
        doc.objects.insert(*id, Object::Dictionary(item));
    }
    doc.objects.insert(
        outlines,
        Object::Dictionary(dictionary! { "Type" => "Outlines", "First" => ids[0], "Last" => ids[6], "Count" => 7 }),
    );
    let kid_a = doc.add_object(dictionary! {
        "Limits" => vec![string("aaa"), string("aaa")], "Names" => vec![string("aaa"), dest(0)],
    });
    let kid_b = doc.add_object(dictionary! {
        "Limits" => vec![string("sec"), string("sec")], "Names" => vec![string("sec"), dictionary! { "D" => dest(1) }.into()],
    });
    let name_tree = doc.add_object(dictionary! { "Kids" => vec![kid_a.into(), kid_b.into(), kid_a.into()] });
    let catalog = doc.add_object(dictionary! {
        "Type" => "Catalog", "Pages" => pages_id, "Outlines" => outlines,
        "Dests" => dictionary! { "chap" => dest(2) },
        "Names" => dictionary! { "Dests" => name_tree },
        "PageLabels" => dictionary! { "Nums" => vec![
            0.into(), dictionary! { "S" => "r" }.into(),
            2.into(), dictionary! { "S" => "D", "P" => string("A-"), "St" => 5 }.into(),
        ] },
    });
    doc.trailer.set("Root", catalog);
    let mut out = Vec::new();
    doc.save_to(&mut out).unwrap();
    out
}

fn entry(level: u32, title: &str, page: Option<u32>) -> TocEntry {
    TocEntry {
        level,
        title: title.to_string(),
        page,
    }
}

#[test]
fn every_destination_form_resolves() {
    let mut reports = Vec::new();
    let x = extract(&build(), &ExtractOptions::default(), true, &mut |p| reports.push(p)).unwrap();
    assert_eq!(x.page_count, 3);
    // A report per page read, and the last one says all were.
    assert_eq!(reports.len(), 4);
    assert_eq!(reports.last(), Some(&Progress::Pages { done: 3, total: 3 }));
    assert_eq!(
        x.toc,
        vec![
            entry(1, "Explicit", Some(2)),
            entry(1, "Old style", Some(3)),
            entry(1, "Name tree", Some(2)),
            entry(2, "Action", Some(1)),
            entry(2, "Ünïcode ✓", Some(3)),
            entry(1, "Broken \u{2014} dash", None),
            entry(1, "Loop", None),
        ]
    );
    assert!(x.warnings.iter().any(|w| w.contains("Broken")), "{:?}", x.warnings);
    assert!(
        x.warnings.iter().any(|w| w.contains("refers to itself")),
        "{:?}",
        x.warnings
    );
    assert_eq!(x.page_labels, ["i", "ii", "A-5"]);

    assert_eq!(x.pages[0].text, "Hello World\nNext line\nIn a form");
    assert_eq!(x.pages[1].text, "Hfiabé\nfind it’s");
    assert_eq!(x.pages[2].text, "Third (page)");
    assert_eq!(x.pages[2].label, "A-5");

    let json: serde_json::Value = serde_json::to_value(&x).unwrap();
    assert_eq!(json["toc_source"], "outline");
    assert_eq!(
        json["toc"][0],
        serde_json::json!({"level": 1, "title": "Explicit", "page": 2})
    );
    assert!(json["index"].as_array().unwrap().is_empty());
}
