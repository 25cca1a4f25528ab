//! Page layout: text fragments grouped into lines, lines put into reading order, with two
//! column pages read column by column.

use serde::{Deserialize, Serialize};

use crate::text::Frag;

/// One printed line (or, on a two-column page, one line of one column) with its position.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TextLine {
    /// Left edge, in PDF points from the page origin.
    pub x0: f32,
    /// Right edge.
    pub x1: f32,
    /// Baseline, in PDF points (up is positive).
    pub y: f32,
    /// Font size of the line's first text, in points.
    pub size: f32,
    /// The line starts in a bold face.
    pub bold: bool,
    /// 0: the full width (or a single-column page), else the column, 1 the leftmost.
    pub column: u8,
    pub text: String,
}

/// The lines of one page in reading order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct PageLayout {
    /// 1-based physical page number.
    pub number: u32,
    pub lines: Vec<TextLine>,
}

impl PageLayout {
    /// The page's text, one line per printed line.
    pub fn text(&self) -> String {
        lines_text(&self.lines)
    }
}

pub(crate) fn lines_text(lines: &[TextLine]) -> String {
    let mut out = String::new();
    for line in lines {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&line.text);
    }
    out
}

/// Most rows and fragments of a page searched for a column gutter.
const MAX_ROWS: usize = 2_000;
const MAX_GUTTER_FRAGS: usize = 20_000;

/// Group fragments into rows (same baseline), top to bottom; each row sorted left to right.
fn rows(frags: &[Frag]) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..frags.len()).collect();
    order.sort_by(|&a, &b| {
        frags[b]
            .y
            .total_cmp(&frags[a].y)
            .then(frags[a].x0.total_cmp(&frags[b].x0))
    });
    let mut rows: Vec<Vec<usize>> = Vec::new();
    let mut ref_y = f32::NAN;
    let mut ref_size = 0.0f32;
    for i in order {
        let f = &frags[i];
        let tol = 0.4 * f.size.max(ref_size).max(1.0);
        match rows.last_mut() {
            Some(row) if (ref_y - f.y).abs() <= tol => row.push(i),
            _ => {
                rows.push(vec![i]);
                ref_y = f.y;
                ref_size = f.size;
            }
        }
    }
    for row in &mut rows {
        row.sort_by(|&a, &b| frags[a].x0.total_cmp(&frags[b].x0));
    }
    rows
}

/// The x of the gutter between two columns, when the page has two. `within_column`: the
/// fragments are one column of a page already split, whose terms and page numbers must not be
/// read as two more columns.
fn find_gutter(frags: &[Frag], rows: &[Vec<usize>], within_column: bool) -> Option<f32> {
    // Tiny pages have no columns; huge ones are not worth the quadratic scan.
    if rows.len() < 6 || rows.len() > MAX_ROWS || frags.len() > MAX_GUTTER_FRAGS {
        return None;
    }
    let x0 = frags.iter().map(|f| f.x0).fold(f32::INFINITY, f32::min);
    let x1 = frags.iter().map(|f| f.x1).fold(f32::NEG_INFINITY, f32::max);
    let width = x1 - x0;
    if !(150.0..=20_000.0).contains(&width) {
        return None;
    }
    let lo = x0 + 0.25 * width;
    let bins = (0.5 * width) as usize;
    // Per bin: rows with text left of it (and nothing across it), and rows with text right.
    let mut left = vec![0u32; bins + 1];
    let mut right = vec![0u32; bins + 1];
    let mut covered = vec![false; bins + 1];
    let mut crossed = vec![0u32; bins + 1];
    for row in rows {
        covered.iter_mut().for_each(|c| *c = false);
        let (mut rmin, mut rmax) = (f32::INFINITY, f32::NEG_INFINITY);
        for &i in row {
            let f = &frags[i];
            rmin = rmin.min(f.x0);
            rmax = rmax.max(f.x1);
            let a = (f.x0 - lo).floor().max(0.0) as usize;
            let b = ((f.x1 - lo).ceil().max(0.0) as usize).min(bins);
            for c in covered.iter_mut().take(b + 1).skip(a) {
                *c = true;
            }
        }
        for k in 0..=bins {
            if covered[k] {
                crossed[k] += 1;
                continue;
            }
            let x = lo + k as f32;
            if rmin < x {
                left[k] += 1;
            }
            if rmax > x {
                right[k] += 1;
            }
        }
    }
    let mut score: Vec<u32> = left.iter().zip(&right).map(|(l, r)| *l.min(r)).collect();
    let mut best = score.iter().copied().max().unwrap_or(0);
    // Few rows with text on both sides make columns only where no row crosses between them:
    // the last page of an index whose second column holds a line or two.
    let few = best < 4 || (best as f32) < 0.15 * rows.len() as f32;
    if few {
        for (v, &n) in score.iter_mut().zip(&crossed) {
            if n > 0 {
                *v = 0;
            }
        }
        best = score.iter().copied().max().unwrap_or(0);
    }
    if best < 2 {
        return None;
    }
    // The middle of the widest run of bins with the best count.
    let (mut run_start, mut best_run) = (None, (0usize, 0usize));
    for (k, &v) in score.iter().enumerate() {
        if v == best {
            let s = *run_start.get_or_insert(k);
            if k - s >= best_run.1 - best_run.0 {
                best_run = (s, k);
            }
        } else {
            run_start = None;
        }
    }
    let gutter = lo + (best_run.0 + best_run.1) as f32 / 2.0;
    // Both sides must hold real text, not just page numbers or labels.
    let (mut left_end, mut right_start, mut right_end) = (f32::NEG_INFINITY, f32::INFINITY, f32::NEG_INFINITY);
    // The same, over the rows with text on both sides only: a running head or folio out on
    // one side stretches the extents above but is no part of a column.
    let mut paired = [f32::INFINITY, f32::NEG_INFINITY, f32::INFINITY, f32::NEG_INFINITY];
    for row in rows {
        let crosses = row.iter().any(|&i| frags[i].x0 < gutter && frags[i].x1 > gutter);
        if crosses {
            if few {
                return None;
            }
            continue;
        }
        let two_sided = row.iter().any(|&i| frags[i].x1 <= gutter) && row.iter().any(|&i| frags[i].x1 > gutter);
        for &i in row {
            let f = &frags[i];
            let side = if f.x1 <= gutter {
                left_end = left_end.max(f.x1);
                0
            } else {
                right_start = right_start.min(f.x0);
                right_end = right_end.max(f.x1);
                2
            };
            if two_sided {
                paired[side] = paired[side].min(f.x0);
                paired[side + 1] = paired[side + 1].max(f.x1);
            }
        }
    }
    // Columns stand an em or more apart, the longest line of one clear of the other; index
    // terms and their page numbers set a space or two apart are one column, even where the
    // terms end in line.
    let mut sizes: Vec<f32> = frags.iter().map(|f| f.size).collect();
    sizes.sort_by(f32::total_cmp);
    let em = sizes.get(sizes.len() / 2).copied().unwrap_or(10.0);
    let apart = paired[2] - paired[1] >= em;
    let wide = 0.25 * width;
    if left_end - x0 >= wide && right_end - right_start >= wide && (apart || !within_column) {
        return Some(gutter);
    }
    // Two columns of short lines (an index of single words and page numbers) each fill less
    // than a quarter of the page, but they are alike: text beside text. A side a fraction of
    // the other's width is page numbers or margin labels beside the text, not a column.
    let (left, right) = (paired[1] - paired[0], paired[3] - paired[2]);
    let (narrow, broad) = (left.min(right), left.max(right));
    (narrow.is_finite() && narrow >= 0.15 * width && narrow >= 0.5 * broad && apart).then_some(gutter)
}

fn make_line(frags: &[Frag], idx: &[usize], column: u8) -> Option<TextLine> {
    let first = frags.get(*idx.first()?)?;
    let mut text = String::new();
    let mut end = f32::NEG_INFINITY;
    let mut x1 = first.x1;
    for &i in idx {
        let f = &frags[i];
        if !text.is_empty() && f.x0 - end > 0.1 * f.size && !text.ends_with(' ') {
            text.push(' ');
        }
        text.push_str(&f.text);
        end = end.max(f.x1);
        x1 = x1.max(f.x1);
    }
    Some(TextLine {
        x0: first.x0,
        x1,
        y: first.y,
        size: first.size,
        bold: first.bold,
        column,
        text,
    })
}

/// A row of a two-column block: its fragments, and the x where it splits into the columns.
type BlockRow<'a> = (&'a Vec<usize>, f32);

/// How many rows at the top of a two-column block stand above both columns: rows with text on
/// one side only, set apart from the first row with text on both sides by a gap of well over
/// a line (the block's usual line pitch), so that they head the page rather than start one
/// column of it.
fn heading_rows_above_columns(frags: &[Frag], block: &[BlockRow], two_sided: &dyn Fn(&BlockRow) -> bool) -> usize {
    let Some(first_two) = block.iter().position(two_sided) else {
        return 0;
    };
    if first_two == 0 {
        return 0;
    }
    let row_y = |row: &Vec<usize>| row.first().and_then(|&i| frags.get(i)).map(|f| f.y);
    let ys: Vec<f32> = block[first_two..].iter().filter_map(|(r, _)| row_y(r)).collect();
    let mut pitches: Vec<f32> = ys.windows(2).map(|w| w[0] - w[1]).filter(|d| *d > 0.0).collect();
    if pitches.len() < 2 {
        return 0;
    }
    pitches.sort_by(f32::total_cmp);
    let pitch = pitches[pitches.len() / 2];
    let (Some(last_above), Some(first_below)) = (row_y(block[first_two - 1].0), ys.first().copied()) else {
        return 0;
    };
    if last_above - first_below > 2.5 * pitch {
        first_two
    } else {
        0
    }
}

/// A page number (arabic or roman), perhaps after leader dots and the specks OCR left of them
/// (`"........ ee 17"`).
fn is_page_number_after_leaders(text: &str) -> bool {
    let mut tokens = text.split_whitespace().rev();
    let Some(last) = tokens.next() else { return false };
    crate::toc::is_page_token(last.trim_matches('.')) && tokens.all(crate::toc::is_leader_speck)
}

/// Lines of a page in reading order.
pub(crate) fn layout(frags: &[Frag]) -> Vec<TextLine> {
    layout_columns(frags, true)
}

/// Lines in reading order; with `split_again`, each side of a column gutter is searched for
/// a gutter of its own, so that three-column pages (indexes of code) are read column by
/// column too. Columns are numbered from 1, left to right.
fn layout_columns(frags: &[Frag], split_again: bool) -> Vec<TextLine> {
    let rows = rows(frags);
    let gutter = find_gutter(frags, &rows, !split_again);
    let mut out = Vec::with_capacity(rows.len());
    let Some(g) = gutter else {
        out.extend(rows.iter().filter_map(|r| make_line(frags, r, 0)));
        return out;
    };
    let x_min = frags.iter().map(|f| f.x0).fold(f32::INFINITY, f32::min);
    let x_max = frags.iter().map(|f| f.x1).fold(f32::NEG_INFINITY, f32::max);
    let _ = (x_min, x_max);
    // The left edge of the right column: where right parts of uncrossed rows start, the
    // leftmost start that several rows share (a centred folio starts left of the column).
    let mut starts: Vec<f32> = rows
        .iter()
        .filter(|r| !r.iter().any(|&i| frags[i].x0 < g - 0.5 && frags[i].x1 > g + 0.5))
        .filter_map(|r| r.iter().map(|&i| frags[i].x0).find(|&x| x >= g))
        .collect();
    starts.sort_by(f32::total_cmp);
    let shared = starts
        .iter()
        .copied()
        .find(|&s| starts.iter().filter(|&&t| (t - s).abs() <= 1.0).count() >= 3);
    let right_edge = shared.unwrap_or_else(|| starts.first().copied().unwrap_or(f32::INFINITY));
    // Where each row splits into its two columns (None: the row spans the page).
    let split_of = |row: &[usize]| -> Option<f32> {
        let crosses = row.iter().any(|&i| frags[i].x0 < g - 0.5 && frags[i].x1 > g + 0.5);
        if !crosses {
            return Some(g);
        }
        // A left-column line running into the gutter: split where the right column starts.
        let mut end = f32::NEG_INFINITY;
        let mut end_y = f32::NAN;
        for &i in row {
            let f = &frags[i];
            // Less than a space apart, the two columns still differ in their baselines where
            // one has more space around a heading than the other.
            let gap = f.x0 - end;
            let apart = gap >= 0.2 * f.size || (gap > 0.0 && (f.y - end_y).abs() >= 0.1 * f.size);
            if end.is_finite() && apart && (f.x0 - right_edge).abs() <= 1.0 {
                return Some((end + f.x0) / 2.0);
            }
            if f.x1 > end {
                end = f.x1;
                end_y = f.y;
            }
        }
        None
    };
    let mut block: Vec<(&Vec<usize>, f32)> = Vec::new();
    let two_sided =
        |(r, s): &(&Vec<usize>, f32)| r.iter().any(|&i| frags[i].x1 <= *s) && r.iter().any(|&i| frags[i].x0 >= *s);
    // Rows whose two sides are a title and its page number (a contents list whose leaders are
    // missing or broken, as OCR leaves them) or a folio and a running head: no columns.
    let title_and_page = |(r, s): &(&Vec<usize>, f32)| {
        let side = |left: bool| -> String {
            r.iter()
                .filter(|&&i| (frags[i].x1 <= *s) == left)
                .map(|&i| frags[i].text.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        };
        is_page_number_after_leaders(&side(false)) || is_page_number_after_leaders(&side(true))
    };
    let flush = |block: &mut Vec<(&Vec<usize>, f32)>, out: &mut Vec<TextLine>| {
        let two = block.iter().filter(|b| two_sided(b)).count();
        let contents_rows = two > 0 && block.iter().filter(|b| two_sided(b)).all(title_and_page);
        if (two >= 2 || block.len() >= 4) && !contents_rows {
            // A heading set above the columns within the width of one of them (a chapter
            // title flush right over a two-column index) is no line of that column: read in
            // it, the column before it would come after the heading and be lost to what the
            // heading starts.
            let above = heading_rows_above_columns(frags, block, &two_sided);
            for (row, _) in block.drain(..above) {
                if let Some(line) = make_line(frags, row, 0) {
                    out.push(line);
                }
            }
            let mut next_column = 1u8;
            for side in [1u8, 2] {
                let parts: Vec<Vec<usize>> = block
                    .iter()
                    .map(|(row, s)| {
                        row.iter()
                            .copied()
                            .filter(|&i| (frags[i].x1 <= *s) == (side == 1))
                            .collect()
                    })
                    .collect();
                if split_again {
                    let side_frags: Vec<Frag> = parts.iter().flatten().map(|&i| frags[i].clone()).collect();
                    let lines = layout_columns(&side_frags, false);
                    if lines.iter().any(|l| l.column != 0) {
                        let first = next_column;
                        for mut line in lines {
                            line.column = first + line.column.saturating_sub(1);
                            next_column = next_column.max(line.column + 1);
                            out.push(line);
                        }
                        continue;
                    }
                }
                for part in &parts {
                    if let Some(line) = make_line(frags, part, next_column) {
                        out.push(line);
                    }
                }
                next_column += 1;
            }
        } else {
            out.extend(block.iter().filter_map(|(r, _)| make_line(frags, r, 0)));
        }
        block.clear();
    };
    for row in &rows {
        match split_of(row) {
            Some(s) => block.push((row, s)),
            None => {
                flush(&mut block, &mut out);
                if let Some(line) = make_line(frags, row, 0) {
                    out.push(line);
                }
            }
        }
    }
    flush(&mut block, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frag(x0: f32, x1: f32, y: f32, text: &str) -> Frag {
        Frag {
            x0,
            x1,
            y,
            size: 10.0,
            bold: false,
            text: text.into(),
        }
    }

    #[test]
    fn two_columns_are_read_one_after_the_other() {
        let mut frags = vec![frag(50.0, 500.0, 800.0, "A full width line of text above")];
        for k in 0..8 {
            let y = 780.0 - 12.0 * k as f32;
            frags.push(frag(50.0, 200.0, y, &format!("left {k}")));
            frags.push(frag(300.0, 480.0, y, &format!("right {k}")));
        }
        let lines = layout(&frags);
        let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts[0], "A full width line of text above");
        assert_eq!(texts[1], "left 0");
        assert_eq!(texts[8], "left 7");
        assert_eq!(texts[9], "right 0");
        assert_eq!(lines[9].column, 2);
    }

    #[test]
    fn three_columns_are_read_one_after_the_other() {
        let mut frags = Vec::new();
        for k in 0..10 {
            let y = 780.0 - 12.0 * k as f32;
            frags.push(frag(50.0, 200.0, y, &format!("first {k} . . . 1")));
            frags.push(frag(230.0, 380.0, y, &format!("second {k} . . . 2")));
            frags.push(frag(410.0, 560.0, y, &format!("third {k} . . . 3")));
        }
        let lines = layout(&frags);
        let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts.len(), 30, "{texts:?}");
        assert_eq!(texts[0], "first 0 . . . 1");
        assert_eq!(texts[10], "second 0 . . . 2");
        assert_eq!(texts[29], "third 9 . . . 3");
        let columns: Vec<u8> = [0, 10, 20].iter().map(|&k| lines[k].column).collect();
        assert_eq!(columns, vec![1, 2, 3]);
    }

    #[test]
    fn two_columns_of_short_lines_are_columns() {
        // A running head at the far right, short index lines in two columns well apart.
        let mut frags = vec![frag(480.0, 540.0, 800.0, "Index 211")];
        for k in 0..12 {
            let y = 780.0 - 12.0 * k as f32;
            frags.push(frag(
                57.0,
                57.0 + 80.0 + 4.0 * (k % 5) as f32,
                y,
                &format!("left {k} 7"),
            ));
            frags.push(frag(
                306.0,
                306.0 + 75.0 + 5.0 * (k % 4) as f32,
                y,
                &format!("right {k} 9"),
            ));
        }
        let lines = layout(&frags);
        let left: Vec<&str> = lines
            .iter()
            .filter(|l| l.column == 1)
            .map(|l| l.text.as_str())
            .collect();
        assert_eq!(left.len(), 12, "{lines:?}");
        assert_eq!(left[0], "left 0 7");
    }

    #[test]
    fn a_second_column_of_two_lines_is_a_column() {
        // The last page of an index: a long first column, two lines in the second.
        let mut frags = Vec::new();
        for k in 0..30 {
            let y = 780.0 - 12.0 * k as f32;
            frags.push(frag(
                57.0,
                57.0 + 60.0 + 3.0 * (k % 7) as f32,
                y,
                &format!("left {k}, 7"),
            ));
        }
        frags.push(frag(306.0, 390.0, 780.0, "right one, 4"));
        frags.push(frag(306.0, 380.0, 768.0, "right two, 5"));
        let lines = layout(&frags);
        let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts.len(), 32, "{texts:?}");
        assert_eq!(texts[0], "left 0, 7");
        assert_eq!(&texts[30..], ["right one, 4", "right two, 5"]);
    }

    #[test]
    fn a_few_rows_beside_text_that_crosses_the_middle_are_no_columns() {
        // Body text across the page, and two short rows with a gap where the gutter would be.
        let mut frags = Vec::new();
        for k in 0..20 {
            frags.push(frag(
                57.0,
                540.0,
                780.0 - 12.0 * k as f32,
                &format!("a long line of text {k}"),
            ));
        }
        frags.push(frag(57.0, 150.0, 500.0, "Name"));
        frags.push(frag(306.0, 400.0, 500.0, "Value"));
        frags.push(frag(57.0, 150.0, 488.0, "width"));
        frags.push(frag(306.0, 400.0, 488.0, "12pt"));
        let lines = layout(&frags);
        assert!(lines.iter().all(|l| l.column == 0), "{lines:?}");
        assert!(lines.iter().any(|l| l.text == "Name Value"), "{lines:?}");
    }

    #[test]
    fn terms_and_page_numbers_are_one_column() {
        // Terms ending near one x, their page numbers a space after: no gutter between them.
        let mut frags = Vec::new();
        for k in 0..12 {
            let y = 780.0 - 12.0 * k as f32;
            let end = 140.0 + (k % 3) as f32 * 4.0;
            frags.push(frag(85.0, end, y, &format!("\\command{k}")));
            frags.push(frag(end + 4.0, end + 14.0, y, "60"));
            frags.push(frag(310.0, 420.0, y, &format!("other column {k} 12")));
        }
        let lines = layout(&frags);
        assert!(lines.iter().any(|l| l.text == "\\command0 60"), "{lines:?}");
        assert!(lines.iter().all(|l| l.column <= 2));
    }

    #[test]
    fn right_aligned_numbers_are_not_a_column() {
        let mut frags = Vec::new();
        for k in 0..10 {
            let y = 780.0 - 12.0 * k as f32;
            frags.push(frag(50.0, 250.0, y, &format!("Chapter {k}")));
            frags.push(frag(480.0, 490.0, y, &format!("{k}")));
        }
        let lines = layout(&frags);
        assert!(lines.iter().all(|l| l.column == 0));
        assert_eq!(lines[0].text, "Chapter 0 0");
    }
}
