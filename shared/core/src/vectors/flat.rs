//! Exact nearest-neighbour search over vectors held in memory as unit-length f32 rows, in two
//! passes. The first reads an int8 copy of every row (384 bytes a vector instead of 1,536: the
//! scan is bound by memory and by SIMD lanes, and i16 products of i8 codes fill twice as many
//! lanes as f32) and gives each row a similarity with a proven error bound. The second re-scores in f32
//! every row whose upper bound reaches the k-th best lower bound, so the answer is the exact
//! top k of the f32 rows, never an approximation (see `margin`).

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::VectorHit;

/// One book's vectors of one model, in memory.
pub(super) struct BookVectors {
    /// The store's generation of the book when these rows were read.
    pub generation: i64,
    chunk_ids: Vec<String>,
    /// `chunk_ids.len()` rows of the store's dimension, each scaled to length 1.
    rows: Vec<f32>,
    /// The same rows as int8 codes: a row is `scale * codes` plus an error of known length.
    codes: Vec<i8>,
    scales: Vec<f32>,
    /// Per row, the length of `row - scale * codes`.
    errors: Vec<f32>,
}

impl BookVectors {
    pub fn new(generation: i64) -> Self {
        Self {
            generation,
            chunk_ids: Vec::new(),
            rows: Vec::new(),
            codes: Vec::new(),
            scales: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// Adds a row of length 1 (from `unit`).
    pub fn push(&mut self, chunk_id: String, row: &[f32]) {
        let quantized = Quantized::of(row);
        self.chunk_ids.push(chunk_id);
        self.rows.extend_from_slice(row);
        self.codes.extend(quantized.codes);
        self.scales.push(quantized.scale);
        self.errors.push(quantized.error);
    }
}

/// `vector` scaled to length 1 (the norm taken in f64); `None` for a zero vector.
pub(super) fn unit(vector: &[f32]) -> Option<Vec<f32>> {
    let norm = vector.iter().map(|x| f64::from(*x) * f64::from(*x)).sum::<f64>().sqrt();
    (norm > 0.0 && norm.is_finite()).then(|| vector.iter().map(|x| (f64::from(*x) / norm) as f32).collect())
}

/// Codes span -127..=127 (never -128), so two products sum within an i16.
const CODE_MAX: f32 = 127.0;

/// A vector as `scale * codes` and the length of what that leaves out.
struct Quantized {
    codes: Vec<i8>,
    scale: f32,
    error: f32,
}

impl Quantized {
    fn of(vector: &[f32]) -> Self {
        let largest = vector.iter().fold(0.0_f32, |largest, x| largest.max(x.abs()));
        let scale = if largest > 0.0 && largest.is_finite() {
            largest / CODE_MAX
        } else {
            0.0
        };
        let codes: Vec<i8> = vector
            .iter()
            .map(|x| {
                if scale > 0.0 {
                    (x / scale).round().clamp(-CODE_MAX, CODE_MAX) as i8
                } else {
                    0
                }
            })
            .collect();
        let error = vector
            .iter()
            .zip(&codes)
            .map(|(x, code)| {
                let left = f64::from(*x) - f64::from(scale) * f64::from(*code);
                left * left
            })
            .sum::<f64>()
            .sqrt();
        Self {
            codes,
            scale,
            // Rounded up, so the bound built on it stays a bound.
            error: (error as f32).next_up(),
        }
    }
}

/// Allowance for f32 rounding: the exact f32 dot of 384 products whose magnitudes sum to at
/// most 1 is within 384 x 2^-24 (2.3e-5) of the real dot, the int8 estimate (its i32 sum is
/// exact below 2^24) within a few 1e-7; four times their sum.
const ROUNDING: f32 = 1e-4;

/// How far the int8 estimate `s_r s_q (c_r . c_q)` of the similarity of unit rows `r` and `q`
/// can be from `r . q`. With `r = s_r c_r + e_r` and `q = s_q c_q + e_q`,
/// `r . q - (r - e_r) . (q - e_q) = r . e_q + e_r . q - e_r . e_q`, and by Cauchy-Schwarz
/// (|r| = |q| = 1) that is at most `|e_q| + |e_r| + |e_r| |e_q|`.
fn margin(row_error: f32, query_error: f32) -> f32 {
    row_error + query_error + row_error * query_error + ROUNDING
}

/// Lanes summed independently, so the compiler can keep them in SIMD registers (it may not
/// reorder one running f32 sum).
const LANES: usize = 16;

fn dot(a: &[f32], b: &[f32]) -> f32 {
    let (a_chunks, a_rest) = a.as_chunks::<LANES>();
    let (b_chunks, b_rest) = b.as_chunks::<LANES>();
    let mut sums = [0.0_f32; LANES];
    for (x, y) in a_chunks.iter().zip(b_chunks) {
        for lane in 0..LANES {
            sums[lane] += x[lane] * y[lane];
        }
    }
    let rest: f32 = a_rest.iter().zip(b_rest).map(|(x, y)| x * y).sum();
    sums.iter().sum::<f32>() + rest
}

/// i8 lanes per step of `code_dot`: 32 products (i16, at most 127^2) added into 32 i32 sums,
/// which the compiler turns into packed multiplies and adds (twice as fast as `dot` measured
/// on this machine's SSE2 baseline, on a quarter of the bytes).
const CODE_LANES: usize = 32;

fn code_dot(a: &[i8], b: &[i8]) -> i32 {
    let (a_chunks, a_rest) = a.as_chunks::<CODE_LANES>();
    let (b_chunks, b_rest) = b.as_chunks::<CODE_LANES>();
    let mut sums = [0_i32; CODE_LANES];
    for (x, y) in a_chunks.iter().zip(b_chunks) {
        for lane in 0..CODE_LANES {
            sums[lane] += i32::from(i16::from(x[lane]) * i16::from(y[lane]));
        }
    }
    let rest: i32 = a_rest
        .iter()
        .zip(b_rest)
        .map(|(x, y)| i32::from(*x) * i32::from(*y))
        .sum();
    sums.iter().sum::<i32>() + rest
}

/// A candidate in the top-k heap; the heap's top is the worst kept.
struct Candidate {
    similarity: f32,
    book: usize,
    row: usize,
}

impl Ord for Candidate {
    /// Greater is weaker: less similar, or as similar and later in the scan. Ties are broken
    /// so that the top k is one set whatever else was scanned (the int8 pass skips rows the
    /// one-pass scan offered and then dropped).
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed similarity: BinaryHeap is a max-heap, and the weakest must be on top.
        other
            .similarity
            .total_cmp(&self.similarity)
            .then_with(|| (self.book, self.row).cmp(&(other.book, other.row)))
    }
}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Candidate {}

/// Keeps the `k` most similar of what it is offered; the weakest kept is on top.
struct TopK {
    k: usize,
    heap: BinaryHeap<Candidate>,
}

impl TopK {
    fn new(k: usize) -> Self {
        Self {
            k,
            heap: BinaryHeap::with_capacity(k + 1),
        }
    }

    fn offer(&mut self, similarity: f32, book: usize, row: usize) {
        let candidate = Candidate { similarity, book, row };
        if self.heap.len() < self.k {
            self.heap.push(candidate);
        } else if self.heap.peek().is_some_and(|worst| candidate < *worst) {
            self.heap.pop();
            self.heap.push(candidate);
        }
    }

    /// The k-th best similarity once k were offered, before that minus infinity.
    fn floor(&self) -> f32 {
        match self.heap.peek() {
            Some(worst) if self.heap.len() == self.k => worst.similarity,
            _ => f32::NEG_INFINITY,
        }
    }
}

/// The `k` rows most similar to `query` (unit length) over `books`, nearest first: the exact
/// top k of the f32 rows, found through the int8 pass (`candidates`).
pub(super) fn nearest(books: &[(&str, &BookVectors)], query: &[f32], k: usize) -> Vec<VectorHit> {
    if k == 0 || query.is_empty() {
        return Vec::new();
    }
    let dimensions = query.len();
    let mut best = TopK::new(k);
    for (book, row) in candidates(books, query, k) {
        let Some((_, vectors)) = books.get(book) else {
            continue;
        };
        if let Some(values) = vectors.rows.get(row * dimensions..(row + 1) * dimensions) {
            best.offer(dot(values, query), book, row);
        }
    }
    let mut hits: Vec<VectorHit> = best
        .heap
        .into_iter()
        .filter_map(|candidate| {
            let (book_id, vectors) = books.get(candidate.book)?;
            Some(VectorHit {
                chunk_id: vectors.chunk_ids.get(candidate.row)?.clone(),
                book_id: (*book_id).to_owned(),
                similarity: candidate.similarity,
            })
        })
        .collect();
    super::sort_hits(&mut hits);
    hits
}

/// The int8 pass: (book, row) of every row that may be among the `k` most similar, in scan
/// order. A row is left out only when its upper bound is below the k-th best lower bound, so
/// at least k rows are surely more similar: every row of the exact top k is kept.
fn candidates(books: &[(&str, &BookVectors)], query: &[f32], k: usize) -> Vec<(usize, usize)> {
    let dimensions = query.len();
    let query = Quantized::of(query);
    let mut lower_bounds = TopK::new(k);
    let mut floor = f32::NEG_INFINITY;
    // (upper bound, book, row) of the rows that reached the floor of their moment; the floor
    // only rises, so the final one filters them at the end.
    let mut kept: Vec<(f32, usize, usize)> = Vec::new();
    for (book, (_, vectors)) in books.iter().enumerate() {
        let rows = vectors
            .codes
            .chunks_exact(dimensions)
            .zip(&vectors.scales)
            .zip(&vectors.errors);
        for (row, ((codes, scale), error)) in rows.enumerate() {
            let estimate = scale * query.scale * code_dot(codes, &query.codes) as f32;
            let margin = margin(*error, query.error);
            if estimate + margin >= floor {
                kept.push((estimate + margin, book, row));
            }
            if estimate - margin > floor {
                lower_bounds.offer(estimate - margin, book, row);
                floor = lower_bounds.floor();
            }
        }
    }
    kept.into_iter()
        .filter(|(upper, _, _)| *upper >= floor)
        .map(|(_, book, row)| (book, row))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book(rows: &[Vec<f32>]) -> BookVectors {
        let mut book = BookVectors::new(1);
        for (n, row) in rows.iter().enumerate() {
            book.push(format!("c{n}"), &unit(row).unwrap_or_default());
        }
        book
    }

    /// Deterministic pseudo-random values in -0.5..0.5 (xorshift).
    struct Noise(u64);

    impl Noise {
        fn next(&mut self) -> f32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        }

        fn vector(&mut self, dimensions: usize) -> Vec<f32> {
            (0..dimensions).map(|_| self.next()).collect()
        }
    }

    /// The one-pass f32 scan the two passes must equal.
    fn exact_scan(books: &[(&str, &BookVectors)], query: &[f32], k: usize) -> Vec<(String, String, f32)> {
        let mut best = TopK::new(k);
        for (book, (_, vectors)) in books.iter().enumerate() {
            for (row, values) in vectors.rows.chunks_exact(query.len()).enumerate() {
                best.offer(dot(values, query), book, row);
            }
        }
        let mut found: Vec<(String, String, f32)> = best
            .heap
            .into_iter()
            .map(|c| {
                (
                    books[c.book].0.to_owned(),
                    books[c.book].1.chunk_ids[c.row].clone(),
                    c.similarity,
                )
            })
            .collect();
        found.sort_by(|a, b| b.2.total_cmp(&a.2).then_with(|| a.1.cmp(&b.1)));
        found
    }

    #[test]
    fn the_nearest_come_first_across_books() {
        let first = book(&[vec![1.0, 0.0, 0.0], vec![0.0, 1.0, 0.0]]);
        let second = book(&[vec![1.0, 1.0, 0.0], vec![0.0, 0.0, -1.0]]);
        let query = unit(&[2.0, 0.1, 0.0]).unwrap_or_default();
        let hits = nearest(&[("a", &first), ("b", &second)], &query, 3);
        let found: Vec<(&str, &str)> = hits.iter().map(|h| (h.book_id.as_str(), h.chunk_id.as_str())).collect();
        assert_eq!(found, [("a", "c0"), ("b", "c0"), ("a", "c1")]);
        assert!((hits[0].similarity - 0.99875).abs() < 1e-4, "{hits:?}");
        assert!(nearest(&[("a", &first)], &query, 0).is_empty());
        assert_eq!(nearest(&[("a", &first)], &query, 10).len(), 2);
    }

    #[test]
    fn dot_products_cover_every_dimension() {
        let a: Vec<f32> = (0..37).map(|n| n as f32).collect();
        let expected: f32 = a.iter().map(|x| x * x).sum();
        assert!((dot(&a, &a) - expected).abs() < 1e-3);
        let codes: Vec<i8> = (0..37).map(|n| (n * 7 - 127) as i8).collect();
        let expected: i32 = codes.iter().map(|x| i32::from(*x) * i32::from(*x)).sum();
        assert_eq!(code_dot(&codes, &codes), expected);
        assert_eq!(unit(&[0.0, 0.0]), None);
    }

    /// The bound the int8 pass relies on holds, for spread-out rows and for rows with one large
    /// coordinate (a coarse scale, the largest rounding errors).
    #[test]
    fn the_margin_bounds_the_int8_estimate() {
        let mut noise = Noise(11);
        let mut rows: Vec<Vec<f32>> = (0..300).map(|_| noise.vector(384)).collect();
        for (n, row) in rows.iter_mut().enumerate().take(100) {
            row[n] = 40.0;
        }
        let rows: Vec<Vec<f32>> = rows.iter().filter_map(|row| unit(row)).collect();
        let mut widest = 0.0_f32;
        for query in rows.iter().take(30) {
            let quantized_query = Quantized::of(query);
            for row in &rows {
                let quantized_row = Quantized::of(row);
                let estimate = quantized_row.scale
                    * quantized_query.scale
                    * code_dot(&quantized_row.codes, &quantized_query.codes) as f32;
                let margin = margin(quantized_row.error, quantized_query.error);
                let exact: f64 = row.iter().zip(query).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum();
                assert!(
                    (f64::from(estimate) - exact).abs() <= f64::from(margin - ROUNDING),
                    "estimate {estimate}, exact {exact}, margin {margin}"
                );
                assert!((dot(row, query) - exact as f32).abs() < ROUNDING / 4.0);
                widest = widest.max(margin);
            }
        }
        // Not so wide that every row would be a candidate.
        assert!(widest < 0.1, "{widest}");
    }

    /// The two passes give the exact scan's answer, bit for bit, for every k, on uniform random
    /// rows (the nearest hardly nearer than the rest) and on rows crowded around the query
    /// (many rows within the margin of each other); and the int8 pass re-scores a small part.
    #[test]
    fn the_two_passes_give_the_exact_top_k() {
        let dimensions = 384;
        let mut noise = Noise(5);
        let query = unit(&noise.vector(dimensions)).unwrap_or_default();
        let uniform: Vec<BookVectors> = (0..4)
            .map(|_| book(&(0..2_500).map(|_| noise.vector(dimensions)).collect::<Vec<_>>()))
            .collect();
        let crowded = book(
            &(0..500)
                .map(|_| query.iter().map(|x| x + noise.next() * 0.004).collect::<Vec<f32>>())
                .collect::<Vec<_>>(),
        );
        let mut books: Vec<(&str, &BookVectors)> = vec![("a", &uniform[0]), ("b", &uniform[1]), ("c", &uniform[2])];
        books.push(("d", &uniform[3]));
        let with_crowd = [books.clone(), vec![("crowd", &crowded)]].concat();
        for set in [&books, &with_crowd] {
            let rows: usize = set.iter().map(|(_, b)| b.chunk_ids.len()).sum();
            for k in [1, 10, 100, 400, 1_000, rows, rows + 5] {
                let found: Vec<(String, String, f32)> = nearest(set, &query, k)
                    .into_iter()
                    .map(|hit| (hit.book_id, hit.chunk_id, hit.similarity))
                    .collect();
                assert_eq!(found, exact_scan(set, &query, k), "k = {k} of {rows}");
            }
        }
        let rescored = candidates(&books, &query, 100).len();
        assert!(
            (100..1_000).contains(&rescored),
            "{rescored} of 10,000 re-scored for k = 100"
        );
    }
}
