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
