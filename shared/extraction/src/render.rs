//! A page as an image for reading (the portal's page view): poppler's `pdftoppm` for a PDF,
//! djvulibre's `ddjvu` for a DjVu document, each a process of its own with a deadline; PNG
//! out, `width` pixels wide, the height as the page's proportions give. An EPUB has no pages
//! to draw.

use std::process::Command;
use std::time::Duration;

use crate::Format;
use crate::tools::{self, TempFile};

/// Longest a page may take to draw.
const RENDER_DEADLINE: Duration = Duration::from_secs(30);
/// Largest image a page may give (a reading size is a few hundred KiB).
const MAX_IMAGE_BYTES: u64 = 32 * 1024 * 1024;
/// Widths a caller may ask for.
pub const WIDTHS: std::ops::RangeInclusive<u32> = 200..=3000;

/// Page `page` (1-based) of the book at `path` as a PNG `width` pixels wide.
pub fn render_page(path: &std::path::Path, page: u32, width: u32) -> Result<Vec<u8>, String> {
    if !WIDTHS.contains(&width) {
        return Err(format!(
            "a page is drawn {} to {} pixels wide",
            WIDTHS.start(),
            WIDTHS.end()
        ));
    }
    let head = read_head(path)?;
    match crate::detect_format(&head).map_err(|err| err.to_string())? {
        Format::Pdf => {
            // A raw pixmap, encoded here: pdftoppm's own PNG compression takes five times
            // as long as the drawing.
            let image = TempFile::named("ppm");
            let scale = ["-scale-to-x", &width.to_string(), "-scale-to-y", "-1"];
            tools::pdftoppm_page(path, page, &scale, &image.0.with_extension(""), RENDER_DEADLINE)?;
            png_of_pnm(&read_image(&image)?)
        }
        Format::Djvu => {
            let image = TempFile::named("pnm");
            let mut command = Command::new("ddjvu");
            command
                .args([
                    "-format=pnm",
                    &format!("-page={page}"),
                    &format!("-size={width}x100000"),
                ])
                .arg(path)
                .arg(&image.0);
            tools::run(command, "ddjvu (Debian package djvulibre-bin)", RENDER_DEADLINE, 1024)?;
            png_of_pnm(&read_image(&image)?)
        }
        Format::Epub => Err("an EPUB has no page images: its pages are text".to_owned()),
    }
}

/// A PNM pixmap as a PNG (fast compression), grey when every pixel is: a page of text is a
/// third the size then.
fn png_of_pnm(pnm: &[u8]) -> Result<Vec<u8>, String> {
    let decoded = image::load_from_memory_with_format(pnm, image::ImageFormat::Pnm)
        .map_err(|err| format!("cannot read the page image: {err}"))?;
    let rgb = decoded.to_rgb8();
    let grey = rgb.pixels().all(|pixel| pixel[0] == pixel[1] && pixel[1] == pixel[2]);
    let image = if grey {
        image::DynamicImage::ImageLuma8(decoded.to_luma8())
    } else {
        image::DynamicImage::ImageRgb8(rgb)
    };
    let mut png = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut png, image::ImageFormat::Png)
        .map_err(|err| format!("cannot write the page image: {err}"))?;
    Ok(png.into_inner())
}

fn read_head(path: &std::path::Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut head = Vec::with_capacity(1024);
    std::fs::File::open(path)
        .and_then(|file| file.take(1024).read_to_end(&mut head))
        .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    Ok(head)
}

fn read_image(image: &TempFile) -> Result<Vec<u8>, String> {
    let size = std::fs::metadata(&image.0)
        .map_err(|_| "the page was not drawn: is the page number within the book?".to_owned())?
        .len();
    if size > MAX_IMAGE_BYTES {
        return Err(format!("the page image is {size} bytes"));
    }
    std::fs::read(&image.0).map_err(|err| format!("cannot read the page image: {err}"))
}

/// The words printed on a page with their boxes, for marking a search hit on the page's
/// image: every box in fractions of the page (0 to 1 from the top left), so it fits the
/// image at any width.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PageWords {
    /// The page's width over its height.
    pub aspect: f32,
    pub words: Vec<WordBox>,
}

/// One word and where it stands.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WordBox {
    pub text: String,
    pub x0: f32,
    pub y0: f32,
    pub x1: f32,
    pub y1: f32,
}

/// Most words a page may give (a dense page of an index has a few thousand).
const MAX_WORDS: usize = 50_000;
/// Most bytes the word listing of one page may take.
const MAX_WORD_LISTING: u64 = 16 * 1024 * 1024;

/// The words of page `page` (1-based) of the book at `path`: located by the library that
/// draws the page (poppler's `pdftotext -bbox` for a PDF, djvulibre's text layer for a DjVu
/// document), so that a box falls on its word in [`render_page`]'s image. A page without a
/// text layer (a scan) is read by Tesseract in `ocr_languages` (its names, `eng+deu`) when
/// they are given, from an image drawn at the resolution OCR reads at; without them it has
/// no words.
pub fn page_words(path: &std::path::Path, page: u32, ocr_languages: Option<&str>) -> Result<PageWords, String> {
    let head = read_head(path)?;
    let format = crate::detect_format(&head).map_err(|err| err.to_string())?;
    let located = text_layer_words(path, page, format)?;
    match ocr_languages {
        Some(languages) if located.words.is_empty() => {
            let source = match format {
                Format::Djvu => crate::ocr::PageImages::Djvu(path, &[]),
                _ => crate::ocr::PageImages::Pdf(path),
            };
            crate::ocr::page_word_boxes(source, page, languages)
        }
        _ => Ok(located),
    }
}

/// The words of the page's text layer.
fn text_layer_words(path: &std::path::Path, page: u32, format: Format) -> Result<PageWords, String> {
    match format {
        Format::Pdf => {
            let mut command = Command::new("pdftotext");
            command
                .args(["-bbox", "-f", &page.to_string(), "-l", &page.to_string()])
                .arg(path)
                .arg("-");
            let listing = tools::run(
                command,
                "pdftotext (Debian package poppler-utils)",
                RENDER_DEADLINE,
                MAX_WORD_LISTING,
            )?;
            pdf_words(&String::from_utf8_lossy(&listing))
        }
        Format::Djvu => {
            let mut command = Command::new("djvused");
            command.arg("-e").arg(format!("select {page}; print-txt")).arg(path);
            let listing = tools::run(
                command,
                "djvused (Debian package djvulibre-bin)",
                RENDER_DEADLINE,
                MAX_WORD_LISTING,
            )?;
            Ok(crate::djvu::page_words(&String::from_utf8_lossy(&listing)))
        }
        Format::Epub => Err("an EPUB has no page images: its pages are text".to_owned()),
    }
}

/// The words of `pdftotext -bbox` XHTML: `<page width height>` with `<word xMin yMin xMax
/// yMax>text</word>` in points from the top left.
fn pdf_words(xhtml: &str) -> Result<PageWords, String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xhtml);
    let (mut width, mut height) = (0f32, 0f32);
    let mut words = Vec::new();
    let mut open: Option<[f32; 4]> = None;
    let mut text = String::new();
    let attribute = |element: &quick_xml::events::BytesStart, name: &str| -> Option<f32> {
        element
            .attributes()
            .flatten()
            .find(|attribute| attribute.key.as_ref() == name)
            .and_then(|attribute| attribute.value.trim().parse::<f32>().ok())
            .filter(|value| value.is_finite())
    };
    loop {
        match reader.read_event() {
            Ok(Event::Start(element)) => match element.name().as_ref() {
                "page" => {
                    width = attribute(&element, "width").unwrap_or(0.0);
                    height = attribute(&element, "height").unwrap_or(0.0);
                }
                "word" => {
                    let corners = ["xMin", "yMin", "xMax", "yMax"].map(|name| attribute(&element, name));
                    open = match corners {
                        [Some(x0), Some(y0), Some(x1), Some(y1)] => Some([x0, y0, x1, y1]),
                        _ => None,
                    };
                    text.clear();
                }
                _ => {}
            },
            Ok(Event::Text(chunk)) if open.is_some() => text.push_str(&chunk),
            Ok(Event::GeneralRef(reference)) if open.is_some() => {
                if let Ok(Some(character)) = reference.resolve_char_ref() {
                    text.push(character);
                } else if let Some(entity) = quick_xml::escape::resolve_predefined_entity(&reference) {
                    text.push_str(entity);
                }
            }
            Ok(Event::End(element)) if element.name().as_ref() == "word" => {
                if let Some([x0, y0, x1, y1]) = open.take()
                    && width > 0.0
                    && height > 0.0
                    && !text.trim().is_empty()
                    && words.len() < MAX_WORDS
                {
                    words.push(WordBox {
                        text: text.trim().to_owned(),
                        x0: (x0 / width).clamp(0.0, 1.0),
                        y0: (y0 / height).clamp(0.0, 1.0),
                        x1: (x1 / width).clamp(0.0, 1.0),
                        y1: (y1 / height).clamp(0.0, 1.0),
                    });
                }
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(err) => return Err(format!("cannot read the words of the page: {err}")),
        }
    }
    if width <= 0.0 || height <= 0.0 {
        return Err("the page was not found: is the page number within the book?".to_owned());
    }
    Ok(PageWords {
        aspect: width / height,
        words,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pdftotext_boxes_become_fractions_of_the_page() {
        let xhtml = r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
<html xmlns="http://www.w3.org/1999/xhtml"><head><title></title></head><body><doc>
  <page width="600.000000" height="800.000000">
    <word xMin="60.000000" yMin="80.000000" xMax="120.000000" yMax="96.000000">R&amp;D</word>
    <word xMin="130" yMin="80" xMax="150" yMax="96">  </word>
    <word xMin="160" yMin="80" xMax="nan" yMax="96">broken</word>
  </page>
</doc></body></html>"#;
        let words = pdf_words(xhtml).expect("well-formed listing");
        assert!((words.aspect - 0.75).abs() < 1e-6);
        assert_eq!(
            words.words,
            vec![WordBox {
                text: "R&D".to_owned(),
                x0: 0.1,
                y0: 0.1,
                x1: 0.2,
                y1: 0.12,
            }]
        );
    }

    #[test]
    fn a_listing_without_a_page_is_an_error() {
        assert!(pdf_words("<html><body><doc></doc></body></html>").is_err());
        assert!(pdf_words("<html><body><doc><page width=").is_err());
    }
}
