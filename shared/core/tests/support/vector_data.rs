//! Random unit vectors and the brute-force truth to compare vector stores with (shared by the
//! vector tests and `examples/vector_bench.rs`).

#![allow(dead_code)] // each user takes some of these

use hbi_shared::vectors::ChunkVector;

/// splitmix64: a seeded, reproducible source of numbers, enough for test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A random direction (normal coordinates, Box-Muller), scaled to length 1.
    pub fn unit_vector(&mut self, dimensions: usize) -> Vec<f32> {
        let mut vector: Vec<f64> = (0..dimensions)
            .map(|_| {
                let u = self.next_f64().max(f64::MIN_POSITIVE);
                let v = self.next_f64();
                (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
            })
            .collect();
        let norm = vector.iter().map(|x| x * x).sum::<f64>().sqrt();
        vector.iter_mut().for_each(|x| *x /= norm);
        vector.into_iter().map(|x| x as f32).collect()
    }
}

/// Where test vectors come from.
pub enum Shape {
    /// Uniform directions in every dimension: no neighbourhood structure at all, the hardest
    /// case for a graph index (the nearest are hardly nearer than the rest).
    Uniform,
    /// Near a subspace of a few directions, as text embeddings are (their intrinsic dimension
    /// is far below 384): random mixes of `basis` plus a little noise in every dimension.
    LowRank { basis: Vec<Vec<f32>> },
}

/// A reproducible stream of unit vectors of one shape.
pub struct Generator {
    pub rng: Rng,
    pub dimensions: usize,
    shape: Shape,
}

impl Generator {
    pub fn uniform(seed: u64, dimensions: usize) -> Self {
        Self {
            rng: Rng::new(seed),
            dimensions,
            shape: Shape::Uniform,
        }
    }

    pub fn low_rank(seed: u64, dimensions: usize, rank: usize) -> Self {
        let mut rng = Rng::new(seed);
        let basis = (0..rank).map(|_| rng.unit_vector(dimensions)).collect();
        Self {
            rng,
            dimensions,
            shape: Shape::LowRank { basis },
        }
    }

    pub fn vector(&mut self) -> Vec<f32> {
        let dimensions = self.dimensions;
        let Shape::LowRank { basis } = &self.shape else {
            return self.rng.unit_vector(dimensions);
        };
        let mut mixed = vec![0.0_f64; dimensions];
        for direction in basis {
            let weight = self.rng.next_f64() * 2.0 - 1.0;
            for (value, d) in mixed.iter_mut().zip(direction) {
                *value += weight * f64::from(*d);
            }
        }
        let norm = mixed.iter().map(|x| x * x).sum::<f64>().sqrt();
        let noise = self.rng.unit_vector(dimensions);
        let vector: Vec<f64> = mixed
            .iter()
            .zip(&noise)
            .map(|(x, n)| x / norm + 0.1 * f64::from(*n))
            .collect();
        let norm = vector.iter().map(|x| x * x).sum::<f64>().sqrt();
        vector.iter().map(|x| (x / norm) as f32).collect()
    }

    /// `count` chunks of one book; hashes and ids unique to the book.
    pub fn book(&mut self, book_id: &str, count: usize) -> Vec<ChunkVector> {
        (0..count)
            .map(|position| ChunkVector {
                chunk_id: format!("{book_id}:{position:06}"),
                book_id: book_id.to_owned(),
                content_hash: format!("hash-{book_id}-{position}"),
                embedding: self.vector(),
            })
            .collect()
    }
}

pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut dot, mut norm_a, mut norm_b) = (0.0_f64, 0.0_f64, 0.0_f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        norm_a += x * x;
        norm_b += y * y;
    }
    dot / (norm_a.sqrt() * norm_b.sqrt())
}

/// The `k` most similar vectors by exact cosine, nearest first, as (chunk id, similarity).
pub fn brute_force<'a>(
    data: impl IntoIterator<Item = &'a ChunkVector>,
    query: &[f32],
    k: usize,
    book_id: Option<&str>,
) -> Vec<(String, f64)> {
    let mut scored: Vec<(String, f64)> = data
        .into_iter()
        .filter(|vector| book_id.is_none_or(|book| vector.book_id == book))
        .map(|vector| (vector.chunk_id.clone(), cosine(&vector.embedding, query)))
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    scored.truncate(k);
    scored
}

/// The share of `truth` that `found` contains.
pub fn recall(found: &[String], truth: &[(String, f64)]) -> f64 {
    if truth.is_empty() {
        return 1.0;
    }
    let hits = truth.iter().filter(|(id, _)| found.contains(id)).count();
    hits as f64 / truth.len() as f64
}
