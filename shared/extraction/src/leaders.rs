//! Leader dots taken out of a page image before OCR. Rows of evenly spaced dots between a title
//! or an index term and its page number are what Tesseract reads worst: it takes them for
//! words (`cence eee tenn`), and a column of them for a picture, whose text it then skips. Out
//! of the image, the page reads as words and numbers; the dots come back afterwards as
//! fragments of their own, so that the layout and the contents and index parsers see leaders
//! where the page has them, as they do in a text layer.

use image::GrayImage;

/// Darker than this is ink.
const INK: u8 = 128;
/// The fewest dots in a row that make leaders (an ellipsis has three).
const MIN_DOTS: usize = 5;

/// One row of leader dots, in the image's pixels (y down).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LeaderRun {
    pub(crate) x0: f32,
    pub(crate) x1: f32,
    /// The dots' bottom edge: the baseline of the text they lead to.
    pub(crate) bottom: f32,
    /// Distance from one dot to the next.
    pub(crate) pitch: f32,
}

/// A blob small enough to be a dot: its box, inclusive.
struct Dot {
    x0: u32,
    x1: u32,
    y0: u32,
    y1: u32,
}

impl Dot {
    fn centre(&self) -> f32 {
        (self.x0 + self.x1) as f32 / 2.0
    }
}

/// Finds the leader dots of a page image scanned at `dpi`, paints them white and returns
/// where they were.
pub(crate) fn take_out_leaders(image: &mut GrayImage, dpi: f32) -> Vec<LeaderRun> {
    let dots = small_blobs(image, dpi);
    let runs = leader_runs(dots, dpi);
    let (width, height) = image.dimensions();
    // The grey rim that smoothing leaves around each dot goes too: Tesseract still sees it.
    let rim = (dpi / 150.0).ceil() as u32;
    let mut out = Vec::with_capacity(runs.len());
    for run in runs {
        for dot in &run {
            for y in dot.y0.saturating_sub(rim)..=(dot.y1 + rim).min(height - 1) {
                for x in dot.x0.saturating_sub(rim)..=(dot.x1 + rim).min(width - 1) {
                    image.put_pixel(x, y, image::Luma([255]));
                }
            }
        }
        let (Some(first), Some(last)) = (run.first(), run.last()) else {
            continue;
        };
        let mut bottoms: Vec<u32> = run.iter().map(|d| d.y1).collect();
        bottoms.sort_unstable();
        out.push(LeaderRun {
            x0: first.x0 as f32,
            x1: last.x1 as f32 + 1.0,
            bottom: bottoms[bottoms.len() / 2] as f32 + 1.0,
            pitch: (last.centre() - first.centre()) / (run.len() - 1) as f32,
        });
    }
    out
}

/// Every connected blob of ink (8-neighbours) no larger than a dot at this resolution, roughly
/// round and solid.
fn small_blobs(image: &GrayImage, dpi: f32) -> Vec<Dot> {
    let (width, height) = image.dimensions();
    // A full stop of 8 to 14 pt type: about 1 to 2.4 pt across.
    let largest = (dpi / 30.0).ceil().max(2.0) as u32;
    let smallest = (dpi / 150.0).floor().max(1.0) as u32;
    let mut seen = vec![false; width as usize * height as usize];
    let index = |x: u32, y: u32| y as usize * width as usize + x as usize;
    let mut dots = Vec::new();
    let mut stack: Vec<(u32, u32)> = Vec::new();
    for y in 0..height {
        for x in 0..width {
            if seen[index(x, y)] || image.get_pixel(x, y).0[0] >= INK {
                continue;
            }
            seen[index(x, y)] = true;
            stack.push((x, y));
            let (mut x0, mut x1, mut y0, mut y1) = (x, x, y, y);
            let mut pixels = 0usize;
            let mut small = true;
            while let Some((px, py)) = stack.pop() {
                x0 = x0.min(px);
                x1 = x1.max(px);
                y0 = y0.min(py);
                y1 = y1.max(py);
                small = small && x1 - x0 < largest && y1 - y0 < largest;
                pixels += 1;
                for ny in py.saturating_sub(1)..=(py + 1).min(height - 1) {
                    for nx in px.saturating_sub(1)..=(px + 1).min(width - 1) {
                        if !seen[index(nx, ny)] && image.get_pixel(nx, ny).0[0] < INK {
                            seen[index(nx, ny)] = true;
                            stack.push((nx, ny));
                        }
                    }
                }
            }
            let (w, h) = (x1 - x0 + 1, y1 - y0 + 1);
            let round = 2 * w >= h && 2 * h >= w;
            let solid = pixels * 2 >= (w * h) as usize;
            if small && w >= smallest && h >= smallest && round && solid {
                dots.push(Dot { x0, x1, y0, y1 });
            }
        }
    }
    dots
}

/// The dots that stand in rows of leaders: at least [`MIN_DOTS`] on one bottom line, evenly
/// spaced and well apart (a dotted rule's dots touch, text's full stops are irregular).
fn leader_runs(mut dots: Vec<Dot>, dpi: f32) -> Vec<Vec<Dot>> {
    // Leaders set every 0.3 to 0.8 em: no farther apart than this.
    let widest_pitch = dpi / 9.0;
    let line_tolerance = (dpi / 150.0).max(1.0) as u32;
    dots.sort_by_key(|d| (d.y1, d.x0));
    // Rows: dots whose bottoms lie within a pixel or two.
    let mut rows: Vec<Vec<Dot>> = Vec::new();
    for dot in dots {
        match rows.last_mut() {
            Some(row) if row.last().is_some_and(|d| dot.y1 - d.y1 <= line_tolerance) => row.push(dot),
            _ => rows.push(vec![dot]),
        }
    }
    let mut runs = Vec::new();
    for mut row in rows {
        row.sort_by(|a, b| a.centre().total_cmp(&b.centre()));
        let mut run: Vec<Dot> = Vec::new();
        for dot in row {
            if run.last().is_some_and(|d| dot.centre() - d.centre() > widest_pitch) {
                keep_if_leaders(std::mem::take(&mut run), &mut runs);
            }
            run.push(dot);
        }
        keep_if_leaders(run, &mut runs);
    }
    runs
}

fn keep_if_leaders(run: Vec<Dot>, runs: &mut Vec<Vec<Dot>>) {
    if run.len() < MIN_DOTS {
        return;
    }
    let mut pitches: Vec<f32> = run.windows(2).map(|w| w[1].centre() - w[0].centre()).collect();
    pitches.sort_by(f32::total_cmp);
    let median = pitches[pitches.len() / 2];
    let widest_dot = run.iter().map(|d| d.x1 - d.x0 + 1).max().unwrap_or(1) as f32;
    let (Some(&least), Some(&most)) = (pitches.first(), pitches.last()) else {
        return;
    };
    if median >= 1.8 * widest_dot && least >= 0.6 * median && most <= 1.5 * median {
        runs.push(run);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page_with(dots: &[(u32, u32)], word: Option<(u32, u32, u32, u32)>) -> GrayImage {
        let mut image = GrayImage::from_pixel(600, 200, image::Luma([255]));
        for &(x, y) in dots {
            for dy in 0..5 {
                for dx in 0..5 {
                    image.put_pixel(x + dx, y + dy, image::Luma([0]));
                }
            }
        }
        if let Some((x0, y0, x1, y1)) = word {
            for y in y0..y1 {
                for x in x0..x1 {
                    image.put_pixel(x, y, image::Luma([0]));
                }
            }
        }
        image
    }

    #[test]
    fn evenly_spaced_dots_on_a_line_are_leaders_and_go() {
        let dots: Vec<(u32, u32)> = (0..12).map(|k| (100 + 19 * k, 100)).collect();
        let mut image = page_with(&dots, Some((20, 70, 90, 105)));
        let runs = take_out_leaders(&mut image, 300.0);
        assert_eq!(runs.len(), 1, "{runs:?}");
        assert_eq!(runs[0].x0, 100.0);
        assert_eq!(runs[0].bottom, 105.0);
        assert!((runs[0].pitch - 19.0).abs() < 0.01);
        // The dots are white now, the word is not.
        assert_eq!(image.get_pixel(102, 102).0[0], 255);
        assert_eq!(image.get_pixel(100 + 19 * 11 + 2, 104).0[0], 255);
        assert_eq!(image.get_pixel(50, 90).0[0], 0);
    }

    #[test]
    fn an_ellipsis_touching_dots_and_scattered_specks_stay() {
        // Three dots; a dotted rule whose dots nearly touch; specks at random heights.
        let mut dots: Vec<(u32, u32)> = (0..3).map(|k| (50 + 12 * k, 40)).collect();
        dots.extend((0..10).map(|k| (200 + 7 * k, 80)));
        dots.extend([(100, 150), (130, 158), (170, 143), (190, 150), (230, 165), (260, 150)]);
        let mut image = page_with(&dots, None);
        assert!(take_out_leaders(&mut image, 300.0).is_empty());
    }
}
