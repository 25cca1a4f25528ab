//! The behaviour every `VectorIndex` must show, run against each backend.

#![allow(dead_code)] // each test binary uses some of these

use hbi_shared::domain::BookFilter;
use std::collections::HashMap;

use hbi_shared::vectors::{ChunkVector, MAX_K, VectorHit, VectorIndex};

use super::vector_data::{Generator, brute_force, recall};

pub const MODEL: &str = "test-minilm";
pub const OTHER_MODEL: &str = "test-other";
const BOOKS: usize = 8;
/// Books the other model embedded too: half of them, so that a search among one model's
/// vectors must skip many of the other's on its way.
const OTHER_BOOKS: usize = 4;
const QUERIES: usize = 25;

/// How a store must rank: exactly as brute force, or with a recall floor.
#[derive(Debug, Clone, Copy)]
pub enum Ranking {
    Exact,
    /// `similarity_error`: how far a hit's similarity may be from the f32 cosine (a store
    /// that compares lower-precision copies).
    Approximate {
        min_recall: f64,
        similarity_error: f64,
    },
}

fn ids(hits: &[VectorHit]) -> Vec<String> {
    hits.iter().map(|hit| hit.chunk_id.clone()).collect()
}

/// Compares a search with brute force; returns the recall (1 for an exact store, or it fails).
fn compare(what: &str, hits: &[VectorHit], truth: &[(String, f64)], ranking: Ranking) -> f64 {
    assert!(
        hits.windows(2).all(|pair| pair[0].similarity >= pair[1].similarity),
        "{what}: nearest first: {hits:?}"
    );
    let found = ids(hits);
    match ranking {
        Ranking::Exact => {
            let expected: Vec<String> = truth.iter().map(|(id, _)| id.clone()).collect();
            assert_eq!(found, expected, "{what}: the exact top-k");
            for (hit, (_, similarity)) in hits.iter().zip(truth) {
                assert!(
                    (f64::from(hit.similarity) - similarity).abs() < 1e-4,
                    "{what}: similarity {} against {similarity}",
                    hit.similarity
                );
            }
            1.0
        }
        Ranking::Approximate { similarity_error, .. } => {
            assert_eq!(hits.len(), truth.len(), "{what}: k results");
            // Whatever was found carries its true similarity.
            let truth_of: HashMap<&str, f64> = truth.iter().map(|(id, s)| (id.as_str(), *s)).collect();
            for hit in hits {
                if let Some(similarity) = truth_of.get(hit.chunk_id.as_str()) {
                    assert!(
                        (f64::from(hit.similarity) - similarity).abs() < similarity_error,
                        "{what}: similarity of {}: {} against {similarity}",
                        hit.chunk_id,
                        hit.similarity
                    );
                }
            }
            recall(&found, truth)
        }
    }
}

/// Compares a search for many neighbours with brute force; returns the recall. Among hundreds,
/// two may be closer than f32 tells apart, so an exact store is compared rank by rank.
fn compare_many(what: &str, hits: &[VectorHit], truth: &[(String, f64)], ranking: Ranking) -> f64 {
    assert_eq!(hits.len(), truth.len(), "{what}: k results");
    assert!(
        hits.windows(2).all(|pair| pair[0].similarity >= pair[1].similarity),
        "{what}: nearest first"
    );
    let share = recall(&ids(hits), truth);
    match ranking {
        Ranking::Exact => {
            for (hit, (_, similarity)) in hits.iter().zip(truth) {
                assert!((f64::from(hit.similarity) - similarity).abs() < 1e-5, "{what}: {hit:?}");
            }
            assert!(share >= 0.99, "{what}: recall {share:.3}");
        }
        Ranking::Approximate { min_recall, .. } => assert!(share >= min_recall, "{what}: recall {share:.3}"),
    }
    share
}

fn check_recall(what: &str, recalls: &[f64], ranking: Ranking) {
    let mean = recalls.iter().sum::<f64>() / recalls.len() as f64;
    if let Ranking::Approximate { min_recall, .. } = ranking {
        assert!(mean >= min_recall, "{what}: recall@10 {mean:.3} is below {min_recall}");
    }
    eprintln!("{what}: mean recall@10 {mean:.3} over {} queries", recalls.len());
}

/// Storing, counting, searching (with and without a book), the content-hash cache, models kept
/// apart, replacing, deleting, and refusing bad input, on a store of any dimension, with eight
/// books of `per_book` chunks (at least 150) drawn from `data`, queries from it too.
pub async fn exercise(
    index: &dyn VectorIndex,
    ranking: Ranking,
    per_book: usize,
    mut source: Generator,
) -> anyhow::Result<()> {
    assert!(per_book >= 150, "the checks below need 150 chunks a book");
    let dimensions = index.dimensions();
    assert_eq!(source.dimensions, dimensions);
    index.check().await?;
    let run = uuid::Uuid::new_v4();
    let books: Vec<String> = (0..BOOKS).map(|b| format!("book-{b}-{run}")).collect();
    let mut data: HashMap<String, Vec<ChunkVector>> = HashMap::new();
    for book in &books {
        let vectors = source.book(book, per_book);
        index.replace_book(book, MODEL, &vectors).await?;
        data.insert(book.clone(), vectors);
    }
    // A is embedded by both models, B and C by one.
    let (book_a, book_b, book_c) = (&books[0], &books[BOOKS - 2], &books[BOOKS - 1]);
    for book in &books {
        assert_eq!(index.count(book).await?, per_book as u64, "{book}");
    }

    // Another model embedded half of the books: same chunk ids and content hashes, vectors
    // unlike this model's.
    let mut other: Vec<ChunkVector> = Vec::new();
    for book in &books[..OTHER_BOOKS] {
        let vectors: Vec<ChunkVector> = data[book]
            .iter()
            .map(|vector| ChunkVector {
                embedding: source.rng.unit_vector(dimensions),
                ..vector.clone()
            })
            .collect();
        index.replace_book(book, OTHER_MODEL, &vectors).await?;
        other.extend(vectors);
    }
    assert_eq!(index.count(book_a).await?, 2 * per_book as u64, "both models");

    // Nearest neighbours of fresh random queries, against brute force over MODEL's vectors.
    let queries: Vec<Vec<f32>> = (0..QUERIES).map(|_| source.vector()).collect();
    let mut recalls = Vec::new();
    for (n, query) in queries.iter().enumerate() {
        let hits = index.search(MODEL, query, 10, &BookFilter::All).await?;
        let truth = brute_force(data.values().flatten(), query, 10, None);
        recalls.push(compare(&format!("query {n}"), &hits, &truth, ranking));
    }
    check_recall("unfiltered", &recalls, ranking);

    // Within one book: only its chunks, still k of them.
    let mut recalls = Vec::new();
    for (n, query) in queries.iter().enumerate() {
        let book = &books[n % BOOKS];
        let hits = index.search(MODEL, query, 10, &BookFilter::one(book)).await?;
        assert_eq!(hits.len(), 10, "a book of {per_book} chunks fills k = 10");
        assert!(hits.iter().all(|hit| &hit.book_id == book), "{hits:?}");
        let truth = brute_force(&data[book], query, 10, Some(book));
        recalls.push(compare(&format!("query {n} in {book}"), &hits, &truth, ranking));
    }
    check_recall("filtered by book", &recalls, ranking);

    // Within some books (a key's libraries): only theirs, still k, ranked among them.
    let allowed = [books[1].clone(), books[3].clone(), books[5].clone()];
    let among = BookFilter::among(allowed.iter().cloned());
    let mut recalls = Vec::new();
    for (n, query) in queries.iter().enumerate() {
        let hits = index.search(MODEL, query, 10, &among).await?;
        assert_eq!(hits.len(), 10, "three books fill k = 10");
        assert!(hits.iter().all(|hit| allowed.contains(&hit.book_id)), "{hits:?}");
        let truth = brute_force(allowed.iter().flat_map(|book| data[book].iter()), query, 10, None);
        recalls.push(compare(&format!("query {n} in three books"), &hits, &truth, ranking));
    }
    check_recall("filtered by books", &recalls, ranking);
    assert!(
        index
            .search(MODEL, &queries[0], 10, &BookFilter::among([]))
            .await?
            .is_empty(),
        "no book allowed: no hit"
    );
    let whole_book = index
        .search(MODEL, &queries[0], per_book + 50, &BookFilter::one(book_c))
        .await?;
    assert_eq!(
        whole_book.len(),
        per_book.min(MAX_K),
        "k above the book's size: all of it"
    );

    // A stored vector finds itself first.
    let itself = &data[book_c][7];
    let hits = index.search(MODEL, &itself.embedding, 3, &BookFilter::All).await?;
    assert_eq!(hits[0].chunk_id, itself.chunk_id, "{hits:?}");
    assert!(hits[0].similarity > 0.999, "{hits:?}");

    // Models are kept apart: another model's vector is found under that model only.
    let foreign = &other[5];
    let hits = index
        .search(OTHER_MODEL, &foreign.embedding, 10, &BookFilter::All)
        .await?;
    assert_eq!(hits[0].chunk_id, foreign.chunk_id);
    assert!(hits[0].similarity > 0.999);
    let hits = index.search(MODEL, &foreign.embedding, 10, &BookFilter::All).await?;
    assert!(hits.iter().all(|hit| hit.similarity < 0.9), "{hits:?}");
    assert!(
        index
            .search("no-such-model", &foreign.embedding, 10, &BookFilter::All)
            .await?
            .is_empty()
    );

    // Many neighbours among one model's vectors, a third of the rows being the other model's:
    // an index that filters after its walk must walk on until it has k.
    for (model, vectors) in [
        (MODEL, data.values().flatten().collect::<Vec<_>>()),
        (OTHER_MODEL, other.iter().collect()),
    ] {
        let hits = index.search(model, &queries[4], 200, &BookFilter::All).await?;
        let truth = brute_force(vectors, &queries[4], 200, None);
        let share = compare_many(&format!("k = 200 among {model}"), &hits, &truth, ranking);
        eprintln!("k = 200 among {model}: recall {share:.3}");
    }

    // The cache: by content hash and model, from any book.
    let mut hashes: Vec<String> = data[book_a]
        .iter()
        .chain(&data[book_b][..10])
        .map(|v| v.content_hash.clone())
        .collect();
    hashes.push("no-such-hash".to_owned());
    let cached = index.cached(MODEL, &hashes).await?;
    assert_eq!(cached.len(), per_book + 10);
    for vector in data[book_a].iter().chain(&data[book_b][..10]) {
        assert_eq!(
            cached.get(&vector.content_hash),
            Some(&vector.embedding),
            "{}",
            vector.chunk_id
        );
    }
    let cached_other = index.cached(OTHER_MODEL, &hashes).await?;
    assert_eq!(cached_other.len(), per_book, "the other model embedded A, not B");
    assert_eq!(cached_other.get(&other[0].content_hash), Some(&other[0].embedding));
    assert!(index.cached("no-such-model", &hashes).await?.is_empty());
    assert!(index.cached(MODEL, &[]).await?.is_empty());
    // Many hashes at once (batched lookups).
    let many: Vec<String> = data.values().flatten().map(|v| v.content_hash.clone()).collect();
    assert_eq!(index.cached(MODEL, &many).await?.len(), BOOKS * per_book);

    // Replacing is idempotent, and a shorter book drops what it no longer has.
    let before = index.search(MODEL, &queries[1], 10, &BookFilter::All).await?;
    index.replace_book(book_a, MODEL, &data[book_a]).await?;
    index.replace_book(book_a, MODEL, &data[book_a]).await?;
    assert_eq!(index.count(book_a).await?, 2 * per_book as u64, "one copy");
    assert_eq!(
        ids(&index.search(MODEL, &queries[1], 10, &BookFilter::All).await?),
        ids(&before)
    );
    let kept = data[book_b][..100].to_vec();
    index.replace_book(book_b, MODEL, &kept).await?;
    assert_eq!(index.count(book_b).await?, 100);
    let rest = index.search(MODEL, &queries[2], 1000, &BookFilter::one(book_b)).await?;
    assert_eq!(rest.len(), 100);
    assert!(rest.iter().all(|hit| kept.iter().any(|v| v.chunk_id == hit.chunk_id)));
    data.insert(book_b.clone(), kept.clone());

    // Bad input is an error and writes nothing.
    let mut wrong_length = kept.to_vec();
    wrong_length.push(ChunkVector {
        embedding: vec![0.5; dimensions + 1],
        ..source.book(book_b, 101)[100].clone()
    });
    let error = index
        .replace_book(book_b, MODEL, &wrong_length)
        .await
        .expect_err("a vector of the wrong length is refused");
    assert!(format!("{error:#}").contains("dimensions"), "{error:#}");
    assert_eq!(index.count(book_b).await?, 100, "nothing written");
    let mut not_finite = kept[0].clone();
    not_finite.embedding[1] = f32::NAN;
    assert!(index.replace_book(book_b, MODEL, &[not_finite]).await.is_err());
    let mut zero = kept[0].clone();
    zero.embedding = vec![0.0; dimensions];
    assert!(index.replace_book(book_b, MODEL, &[zero]).await.is_err());
    assert!(
        index.replace_book(book_c, MODEL, &kept).await.is_err(),
        "chunks of another book"
    );
    assert!(
        index
            .replace_book(book_b, MODEL, &[kept[0].clone(), kept[0].clone()])
            .await
            .is_err(),
        "a chunk twice"
    );
    assert_eq!(index.count(book_b).await?, 100);
    assert_eq!(index.count(book_c).await?, per_book as u64);
    for bad_query in [
        vec![0.5; dimensions - 1],
        vec![0.5; dimensions + 1],
        vec![0.0; dimensions],
        {
            let mut q = vec![0.5; dimensions];
            q[0] = f32::INFINITY;
            q
        },
    ] {
        let error = index
            .search(MODEL, &bad_query, 10, &BookFilter::All)
            .await
            .expect_err("a bad query vector is refused");
        assert!(format!("{error:#}").contains("query vector"), "{error:#}");
    }

    // k is clamped to 1..=1000.
    assert_eq!(index.search(MODEL, &queries[3], 0, &BookFilter::All).await?.len(), 1);
    let total: usize = data.values().map(Vec::len).sum();
    assert!(total > MAX_K);
    let most = index.search(MODEL, &queries[3], usize::MAX, &BookFilter::All).await?;
    let truth = brute_force(data.values().flatten(), &queries[3], MAX_K, None);
    compare_many("k above 1000", &most, &truth, ranking);

    // Deleting a book removes its vectors of every model and nothing else.
    index.delete_book(book_a).await?;
    assert_eq!(index.count(book_a).await?, 0);
    assert!(
        index
            .search(MODEL, &queries[0], 10, &BookFilter::one(book_a))
            .await?
            .is_empty()
    );
    assert!(
        index
            .search(OTHER_MODEL, &queries[0], 10, &BookFilter::one(book_a))
            .await?
            .is_empty()
    );
    let others = index.search(OTHER_MODEL, &queries[0], 10, &BookFilter::All).await?;
    assert!(!others.is_empty() && others.iter().all(|hit| &hit.book_id != book_a));
    assert!(index.cached(MODEL, &hashes[..per_book]).await?.is_empty());
    assert_eq!(index.count(book_c).await?, per_book as u64);
    let hits = index.search(MODEL, &queries[0], 10, &BookFilter::All).await?;
    assert!(hits.iter().all(|hit| &hit.book_id != book_a));
    index.delete_book("no-such-book").await?;
    index.replace_book(book_c, MODEL, &[]).await?;
    assert_eq!(index.count(book_c).await?, 0, "an empty replace empties the book");
    for book in &books {
        index.delete_book(book).await?;
    }
    Ok(())
}

/// A small store of an unusual size: vectors in, nearest out, within a book too.
pub async fn small_store(index: &dyn VectorIndex) -> anyhow::Result<()> {
    let dimensions = index.dimensions();
    let mut source = Generator::uniform(dimensions as u64, dimensions);
    let run = uuid::Uuid::new_v4();
    let (one, two) = (format!("small-1-{run}"), format!("small-2-{run}"));
    let first = source.book(&one, 30);
    let second = source.book(&two, 30);
    index.replace_book(&one, MODEL, &first).await?;
    index.replace_book(&two, MODEL, &second).await?;
    assert_eq!(index.count(&one).await?, 30);
    let hits = index.search(MODEL, &second[4].embedding, 5, &BookFilter::All).await?;
    assert_eq!(hits.len(), 5);
    assert_eq!(hits[0].chunk_id, second[4].chunk_id, "{hits:?}");
    // Half precision (pgvector beyond 2,000 dimensions) still tells a vector from the rest.
    assert!(hits[0].similarity > 0.999, "{hits:?}");
    let hits = index
        .search(MODEL, &second[4].embedding, 5, &BookFilter::one(&one))
        .await?;
    assert_eq!(hits.len(), 5);
    assert!(hits.iter().all(|hit| hit.book_id == one));
    let cached = index.cached(MODEL, &[first[3].content_hash.clone()]).await?;
    assert_eq!(cached.get(&first[3].content_hash), Some(&first[3].embedding));
    index.delete_book(&one).await?;
    index.delete_book(&two).await?;
    assert_eq!(index.count(&two).await?, 0);
    Ok(())
}
