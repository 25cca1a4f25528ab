//! Books in every format the API takes: a scan (pdftoppm and img2pdf, as a scanner binds
//! one) and a DjVu document (pdf2djvu) made from the corpus with real tools, as the
//! extractor's tests make them; and a small EPUB 3 (written with the zip crate).

pub use crate::corpus::{djvu_of, scan_of};
use crate::hostile::{EPUB_CONTAINER, epub_zip, xhtml};

/// An EPUB 3 of two chapters (the first a section deeper) and an index linking into them: the
/// ToC is `1 Vertices`, `1.1 Degree`, `2 Quaternions`, `Index`; the first chapter's filler
/// fills a page, so `1.1 Degree` starts on the second.
pub fn small_epub() -> Vec<u8> {
    let opf = br#"<?xml version="1.0"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0">
  <manifest>
    <item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>
    <item id="c1" href="c1.xhtml" media-type="application/xhtml+xml"/>
    <item id="c2" href="c2.xhtml" media-type="application/xhtml+xml"/>
    <item id="ix" href="ix.xhtml" media-type="application/xhtml+xml"/>
  </manifest>
  <spine><itemref idref="c1"/><itemref idref="c2"/><itemref idref="ix"/></spine>
</package>"#;
    let nav = xhtml(
        r##"<nav epub:type="toc"><ol>
  <li><a href="c1.xhtml">1 Vertices</a><ol><li><a href="c1.xhtml#degree">1.1 Degree</a></li></ol></li>
  <li><a href="c2.xhtml">2 Quaternions</a></li><li><a href="ix.xhtml">Index</a></li></ol></nav>"##,
    );
    let filler: String = (0..400).map(|n| format!("filler{n} ")).collect();
    let c1 = xhtml(&format!(
        "<h1>1 Vertices</h1><p>{filler}</p><h2 id=\"degree\">1.1 Degree</h2><p>The degree of a vertex counts its edges.</p>"
    ));
    let c2 =
        xhtml("<h1>2 Quaternions</h1><p id=\"hamilton\">Hamilton carved the quaternion formula into a bridge.</p>");
    let ix = xhtml(
        r##"<section epub:type="index"><h1>Index</h1><ul>
  <li>degree, <a href="c1.xhtml#degree">2</a></li><li>quaternion, <a href="c2.xhtml#hamilton">3</a></li></ul></section>"##,
    );
    epub_zip(&[
        ("META-INF/container.xml", EPUB_CONTAINER),
        ("OEBPS/content.opf", opf),
        ("OEBPS/nav.xhtml", &nav),
        ("OEBPS/c1.xhtml", &c1),
        ("OEBPS/c2.xhtml", &c2),
        ("OEBPS/ix.xhtml", &ix),
    ])
}
