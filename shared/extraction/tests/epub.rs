//! EPUB books, each built here as a zip of its own: an EPUB 3 with a navigation document, print
//! page markers and an index of links; an EPUB 2 with only a `toc.ncx` and no page markers
//! (pages of a fixed size); a package under a folder of its own; and hostile ones (a zip
//! bomb, entity expansion, nesting deeper than any stack, names that climb out of the zip, a
//! zip that is no EPUB), which must end in a clear error or a bounded result, never a crash.

#![allow(clippy::unwrap_used)] // tests may unwrap: a failure is a test failure

use std::io::{Cursor, Write};

#[path = "support/hostile.rs"]
mod hostile;

use hbi_extraction::{ExtractError, ExtractOptions, Extraction, Format, TocSource, detect_format, extract};
use hostile::{
    EPUB_CONTAINER as CONTAINER, epub_entity_expansion, epub_zip as epub, epub_zip_bomb, opf_with_one, xhtml,
};
use zip::write::SimpleFileOptions;

fn run(bytes: &[u8]) -> Result<Extraction, ExtractError> {
    let mut last = None;
    let result = extract(bytes, &ExtractOptions::default(), true, &mut |progress| {
        last = Some(progress)
    });
    if result.is_ok() {
        assert!(last.is_some(), "progress is reported");
    }
    result
}

/// An EPUB 3 book: front matter, two chapters with print page markers (roman, then arabic),
/// a navigation document with three levels and a page list, and an index of links.
fn epub3() -> Vec<u8> {
    let opf = br#"<?xml version="1.0"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="id">
  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>Graphs</dc:title><dc:language>en</dc:language></metadata>
  <manifest>
    <item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>
    <item id="front" href="text/front.xhtml" media-type="application/xhtml+xml"/>
    <item id="c1" href="text/ch%201.xhtml" media-type="application/xhtml+xml"/>
    <item id="c2" href="text/ch2.xhtml" media-type="application/xhtml+xml"/>
    <item id="ix" href="text/index.xhtml" media-type="application/xhtml+xml"/>
    <item id="css" href="style.css" media-type="text/css"/>
  </manifest>
  <spine><itemref idref="front"/><itemref idref="c1"/><itemref idref="c2"/><itemref idref="ix"/><itemref idref="css"/></spine>
</package>"#;
    let nav = xhtml(
        r##"<nav epub:type="toc"><h1>Contents</h1><ol>
  <li><a href="text/front.xhtml">Preface</a></li>
  <li><a href="text/ch%201.xhtml">1 Graphs &amp; trees</a><ol>
    <li><a href="text/ch%201.xhtml#vertices">1.1 Vertices</a><ol>
      <li><a href="text/ch%201.xhtml#degree">1.1.1 Degree</a></li></ol></li>
    <li><span>1.2 Unlinked heading</span></li></ol></li>
  <li><a href="text/ch2.xhtml">2 Paths</a></li>
  <li><a href="text/index.xhtml">Index</a></li>
</ol></nav>
<nav epub:type="page-list"><ol><li><a href="text/front.xhtml#pi">i</a></li></ol></nav>"##,
    );
    let front = xhtml(
        r#"<span epub:type="pagebreak" id="pi" title="i"/><h1>Preface</h1><p>This book is about graphs.</p>
<span epub:type="pagebreak" id="pii" title="ii"/><p>Thanks to everybody.</p>"#,
    );
    let ch1 = xhtml(
        r#"<span epub:type="pagebreak" id="p1" title="1"/><h1>1 Graphs &amp; trees</h1>
<p>A graph has vertices and edges.</p>
<span epub:type="pagebreak" id="p2" title="2"/><h2 id="vertices">1.1 Vertices</h2><p>A vertex is a point.</p>
<span epub:type="pagebreak" id="p3" title="3"/><h3 id="degree">1.1.1 Degree</h3><p>The degree of a vertex counts its edges.</p>"#,
    );
    let ch2 = xhtml(
        r#"<span role="doc-pagebreak" id="p4" aria-label="4"></span><h1>2 Paths</h1><p id="walks">A path is a walk without repeated vertices.</p>"#,
    );
    let index = xhtml(
        r#"<section epub:type="index"><h1>Index</h1><ul>
  <li>degree, <a href="ch%201.xhtml#degree">3</a></li>
  <li>edge, <a href="ch%201.xhtml#p1">1</a>, <a href="ch2.xhtml#walks">4</a><ul>
     <li>multiple, <a href="ch%201.xhtml#p1">1</a></li></ul></li>
  <li>node, see vertex</li>
  <li>path, <a href="ch2.xhtml">4</a> (see also walk)</li>
  <li><a href="ch%201.xhtml#vertices">vertex</a></li>
</ul></section>"#,
    );
    epub(&[
        ("META-INF/container.xml", CONTAINER),
        ("OEBPS/content.opf", opf),
        ("OEBPS/nav.xhtml", &nav),
        ("OEBPS/text/front.xhtml", &front),
        ("OEBPS/text/ch 1.xhtml", &ch1),
        ("OEBPS/text/ch2.xhtml", &ch2),
        ("OEBPS/text/index.xhtml", &index),
        ("OEBPS/style.css", b"p { margin: 0 }"),
    ])
}

/// An index entry as the test compares it: path, pages, see, see also.
type IndexRow<'a> = (Vec<&'a str>, Vec<[u32; 2]>, &'a [String], &'a [String]);

#[test]
fn an_epub3_gives_its_navigation_print_pages_and_index() {
    let bytes = epub3();
    assert_eq!(detect_format(&bytes).unwrap(), Format::Epub);
    let book = run(&bytes).unwrap();
    assert_eq!(book.page_labels, ["i", "ii", "1", "2", "3", "4"], "{:#?}", book.pages);
    assert_eq!(book.page_count, 6);
    assert_eq!(book.toc_source, TocSource::Outline);
    let toc: Vec<(u32, &str, Option<u32>)> = book
        .toc
        .iter()
        .map(|entry| (entry.level, entry.title.as_str(), entry.page))
        .collect();
    assert_eq!(
        toc,
        [
            (1, "Preface", Some(1)),
            (1, "1 Graphs & trees", Some(3)),
            (2, "1.1 Vertices", Some(4)),
            (3, "1.1.1 Degree", Some(5)),
            (2, "1.2 Unlinked heading", None),
            (1, "2 Paths", Some(6)),
            (1, "Index", Some(6)),
        ]
    );
    // The index has no marker of its own: it is on the page of the last one, "4".
    let text = |label: &str| {
        let position = book.page_labels.iter().position(|l| l == label).unwrap();
        book.pages[position].text.clone()
    };
    assert!(text("3").contains("The degree of a vertex counts its edges."));
    assert!(!text("3").contains("color"), "no style sheet in the text");
    assert!(
        text("i").starts_with("Preface\nThis book is about graphs."),
        "{}",
        text("i")
    );

    let entries: Vec<IndexRow> = book
        .index
        .iter()
        .map(|entry| {
            (
                entry.path.iter().map(String::as_str).collect(),
                entry.pages.clone(),
                entry.see.as_slice(),
                entry.see_also.as_slice(),
            )
        })
        .collect();
    let page = |label: &str| book.page_labels.iter().position(|l| l == label).unwrap() as u32 + 1;
    assert_eq!(
        entries,
        [
            (vec!["degree"], vec![[page("3"), page("3")]], &[][..], &[][..]),
            (
                vec!["edge"],
                vec![[page("1"), page("1")], [page("4"), page("4")]],
                &[],
                &[]
            ),
            (vec!["edge", "multiple"], vec![[page("1"), page("1")]], &[], &[]),
            (vec!["node"], vec![], &["vertex".to_owned()][..], &[]),
            (
                vec!["path"],
                vec![[page("4"), page("4")]],
                &[],
                &["walk".to_owned()][..]
            ),
            (vec!["vertex"], vec![[page("2"), page("2")]], &[], &[]),
        ]
    );
    assert_eq!(book.index[1].printed, ["1", "4"]);
    assert_eq!(book.indices.len(), 1);
    assert_eq!(book.indices[0].name, "Index");
    assert_eq!(book.indices[0].entries, 6);
    assert!(
        book.index_support_rate.is_some_and(|rate| rate > 0.8),
        "{:?}",
        book.index_support_rate
    );
}

/// An EPUB 2 book with only a `toc.ncx` and no page markers, packed under a folder of its own
/// and without `mimetype` first (as some packagers write them).
#[test]
fn an_epub2_without_page_markers_gets_pages_of_a_fixed_size() {
    let opf = br#"<?xml version="1.0"?>
<package xmlns="http://www.idpf.org/2007/opf" version="2.0">
  <manifest>
    <item id="ncx" href="toc.ncx" media-type="application/x-dtbncx+xml"/>
    <item id="a" href="a.html" media-type="application/xhtml+xml"/>
    <item id="b" href="b.html" media-type="application/xhtml+xml"/>
  </manifest>
  <spine toc="ncx"><itemref idref="a"/><itemref idref="b"/></spine>
</package>"#;
    let ncx = br#"<?xml version="1.0"?>
<ncx xmlns="http://www.daisy.org/z3986/2005/ncx/" version="2005-1"><docTitle><text>Book title, not an entry</text></docTitle><navMap>
  <navPoint id="n1"><navLabel><text>Chapter A &amp; more</text></navLabel><content src="a.html"/>
    <navPoint id="n2"><navLabel><text>Section A.1</text></navLabel><content src="a.html#s1"/></navPoint>
  </navPoint>
  <navPoint id="n3"><navLabel><text>Chapter B</text></navLabel><content src="b.html"/></navPoint>
</navMap></ncx>"#;
    let long: String = (0..600).map(|n| format!("word{n} ")).collect();
    let a = xhtml(&format!(
        "<h1>Chapter A</h1><p>{long}</p><h2 id=\"s1\">Section A.1</h2><p>{long}</p>"
    ));
    let b = xhtml("<h1>Chapter B</h1><p>Short.</p>");
    // No `mimetype` first: the package lives under `book/`.
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, content) in [
        ("book/META-INF/container.xml", CONTAINER),
        ("book/OEBPS/content.opf", opf.as_slice()),
        ("book/OEBPS/toc.ncx", ncx.as_slice()),
        ("book/OEBPS/a.html", &a),
        ("book/OEBPS/b.html", &b),
        ("book/mimetype", b"application/epub+zip"),
    ] {
        zip.start_file(name, SimpleFileOptions::default()).unwrap();
        zip.write_all(content).unwrap();
    }
    let bytes = zip.finish().unwrap().into_inner();
    assert_eq!(detect_format(&bytes).unwrap(), Format::Epub);
    let book = run(&bytes).unwrap();

    let toc: Vec<(u32, &str, Option<u32>)> = book
        .toc
        .iter()
        .map(|entry| (entry.level, entry.title.as_str(), entry.page))
        .collect();
    let b_page = book.page_count;
    assert_eq!(toc[0], (1, "Chapter A & more", Some(1)));
    assert_eq!(toc[1].0, 2);
    assert_eq!(toc[1].1, "Section A.1");
    assert_eq!(toc[2], (1, "Chapter B", Some(b_page)), "each document starts a page");
    assert_eq!(toc.len(), 3);
    // Two long passages of about 5,000 characters each: pages of at most 2,000.
    assert!(book.page_count >= 6, "{}", book.page_count);
    for page in &book.pages {
        assert!(
            page.text.chars().count() <= hbi_extraction::EPUB_PAGE_CHARS,
            "{}",
            page.text.len()
        );
    }
    assert_eq!(
        book.page_labels.last().map(String::as_str),
        Some(b_page.to_string().as_str())
    );
    // Every word is on some page, once: no text lost, none doubled.
    let words: Vec<&str> = book
        .pages
        .iter()
        .flat_map(|page| page.text.split_whitespace())
        .collect();
    for n in [0, 299, 599] {
        assert_eq!(words.iter().filter(|w| **w == format!("word{n}")).count(), 2);
    }
    assert!(words.contains(&"Short."));
}

fn error_of(bytes: &[u8]) -> String {
    match run(bytes) {
        Ok(book) => panic!("a hostile EPUB was read: {} pages", book.page_count),
        Err(err) => err.to_string(),
    }
}

#[test]
fn hostile_epubs_end_in_a_clear_error_or_a_bounded_result() {
    // A zip bomb: 100 MB of spaces in a hundred kilobytes.
    let bomb = epub_zip_bomb();
    assert!(bomb.len() < 2 << 20, "{}", bomb.len());
    let error = error_of(&bomb);
    assert!(error.contains("zip bomb") && error.contains("a.xhtml"), "{error}");

    // Entity expansion ("billion laughs"): no DTD is read, so nothing expands.
    match run(&epub_entity_expansion()) {
        Ok(book) => assert!(book.pages.iter().all(|page| page.text.len() < 10_000)),
        Err(err) => assert!(err.to_string().contains("EPUB"), "{err}"),
    }

    // Nesting far deeper than any call stack.
    let deep = format!("{}<p>bottom</p>{}", "<div>".repeat(200_000), "</div>".repeat(200_000));
    let book = run(&epub(&[
        ("META-INF/container.xml", CONTAINER),
        ("OEBPS/content.opf", opf_with_one("a.xhtml").as_bytes()),
        ("OEBPS/a.xhtml", &xhtml(&deep)),
    ]))
    .unwrap();
    assert!(book.pages.iter().any(|page| page.text.contains("bottom")));

    // Names that climb out of the zip are only keys: nothing is written, nothing escapes.
    let climbing = opf_with_one("../../../../../../etc/passwd");
    let error = error_of(&epub(&[
        ("META-INF/container.xml", CONTAINER),
        ("OEBPS/content.opf", climbing.as_bytes()),
        ("../../evil.xhtml", &xhtml("<p>x</p>")),
    ]));
    assert!(error.contains("EPUB"), "{error}");

    // A zip that is no EPUB, and an EPUB cut short.
    assert!(matches!(
        detect_format(b"PK\x03\x04 just a zip"),
        Err(ExtractError::UnsupportedFormat)
    ));
    let mut cut = epub3();
    cut.truncate(cut.len() / 2);
    assert!(error_of(&cut).contains("EPUB is damaged"));
    let error = error_of(&epub(&[("OEBPS/content.opf", opf_with_one("a.xhtml").as_bytes())]));
    assert!(error.contains("container.xml"), "{error}");
}
