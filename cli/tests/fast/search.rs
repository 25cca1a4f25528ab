//! GET /search and GET /terms on a real book through the real binary (embedded shape).

use crate::common;

use std::collections::BTreeSet;

use common::TestServer;
use serde_json::Value;

async fn search(server: &TestServer, query: &[(&str, &str)]) -> (u16, Value) {
    let response = server
        .client
        .get(server.url("/search"))
        .query(query)
        .send()
        .await
        .expect("GET /search");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn pages_of(results: &Value) -> Vec<u64> {
    results["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|hit| hit["page"].as_u64().expect("page"))
        .collect()
}

/// The physical pages the book's printed index lists for an entry named exactly `term`.
async fn indexed_pages(server: &TestServer, book_id: &str, term: &str) -> BTreeSet<u64> {
    let response = server
        .client
        .get(server.url(&format!("/books/{book_id}/index")))
        .query(&[("q", term)])
        .send()
        .await
        .expect("GET index");
    let entries: Value = response.json().await.expect("index json");
    let mut pages = BTreeSet::new();
    for entry in entries.as_array().into_iter().flatten() {
        if entry["term"].as_str().is_some_and(|t| t.eq_ignore_ascii_case(term)) {
            for range in entry["pages"].as_array().into_iter().flatten() {
                let first = range["first_page"].as_u64().expect("first");
                let last = range["last_page"].as_u64().expect("last");
                pages.extend(first..=last);
            }
        }
    }
    pages
}

/// The physical pages of the printed contents and indexes, from the corpus' ground truth.
fn navigation_pages(book: &str) -> BTreeSet<u64> {
    let read = |file: &str| -> Value {
        let path = common::corpus_dir().join(book).join(file);
        serde_json::from_slice(&std::fs::read(&path).expect("ground truth")).expect("json")
    };
    let range = |pair: &Value| pair[0].as_u64().expect("first")..=pair[1].as_u64().expect("last");
    let mut pages: BTreeSet<u64> = read("toc.json")["printed_toc_physical_pages"]
        .as_array()
        .map(|_| range(&read("toc.json")["printed_toc_physical_pages"]).collect())
        .unwrap_or_default();
    for index in read("index.json")["indices"].as_array().into_iter().flatten() {
        pages.extend(range(&index["physical_pages"]));
    }
    pages
}

#[tokio::test(flavor = "multi_thread")]
async fn keyword_search_finds_pages_with_labels_sections_and_snippets() {
    let server = TestServer::start(&[]);
    let book_id = server.ingest_corpus_book("r-intro", "An Introduction to R").await;

    let (status, found) = search(
        &server,
        &[("q", "data frames"), ("mode", "keyword"), ("boost", "false")],
    )
    .await;
    assert_eq!(status, 200, "{found}");
    let results = found["results"].as_array().expect("results");
    assert!(results.len() >= 5, "{found}");
    assert!(results.len() <= 10, "k defaults to 10");
    let top = &results[0];
    assert_eq!(top["book_id"], book_id.as_str());
    assert!(top["snippet"].as_str().is_some_and(|s| s.contains("<b>")), "{top}");
    assert!(top["scores"]["keyword"].as_f64().is_some(), "{top}");
    assert!(top["scores"]["boost"].is_null(), "boost off: {top}");
    // The printed label of a page differs from its physical number in this book.
    let (_, page) = server
        .get_json(&format!("/books/{book_id}/pages/{}", top["page"]))
        .await;
    assert_eq!(top["page_label"], page["label"], "{top}");
    assert!(
        results
            .iter()
            .any(|hit| hit["section_path"].as_array().is_some_and(|path| path
                .iter()
                .any(|t| t.as_str().is_some_and(|t| t.contains("Data frames"))))),
        "a hit in the data frames section: {found}"
    );
    let scores: Vec<f64> = results
        .iter()
        .map(|hit| hit["score"].as_f64().expect("score"))
        .collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "best first: {scores:?}");

    // Section filter and k.
    let (status, filtered) = search(
        &server,
        &[
            ("q", "data frames"),
            ("mode", "keyword"),
            ("section", "lists and data frames"),
            ("k", "3"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{filtered}");
    let filtered = filtered["results"].as_array().expect("results");
    assert!(!filtered.is_empty() && filtered.len() <= 3);
    for hit in filtered {
        let path = hit["section_path"].to_string().to_lowercase();
        assert!(path.contains("lists and data frames"), "{hit}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_index_term_boost_lifts_the_pages_the_author_listed() {
    let server = TestServer::start(&[]);
    let book_id = server.ingest_corpus_book("r-intro", "An Introduction to R").await;
    let listed = indexed_pages(&server, &book_id, "tapply").await;
    assert!(!listed.is_empty(), "the index lists tapply");

    let query = [("q", "tapply"), ("mode", "keyword"), ("book_id", book_id.as_str())];
    let (_, plain) = search(&server, &[query[0], query[1], query[2], ("boost", "false")]).await;
    let (_, boosted) = search(&server, &[query[0], query[1], query[2], ("boost", "true")]).await;
    let plain = pages_of(&plain);
    let boosted_pages = pages_of(&boosted);
    let rank = |pages: &[u64]| pages.iter().position(|p| listed.contains(p)).unwrap_or(usize::MAX);
    assert!(
        listed.contains(&boosted_pages[0]),
        "with the boost an indexed page comes first: {boosted_pages:?} vs listed {listed:?}"
    );
    assert!(rank(&boosted_pages) <= rank(&plain), "{boosted_pages:?} vs {plain:?}");
    // The index pages list tapply and the contents pages name its section: neither is a
    // place where the book discusses it (pages from the corpus' own ground truth).
    let navigation = navigation_pages("r-intro");
    assert!(!navigation.is_empty());
    let (_, broad) = search(&server, &[("q", "tapply"), ("mode", "keyword"), ("k", "50")]).await;
    let (_, section) = search(
        &server,
        &[("q", "Grouped expressions"), ("mode", "keyword"), ("k", "50")],
    )
    .await;
    for pages in [pages_of(&broad), pages_of(&section)] {
        assert!(!pages.is_empty());
        assert!(
            pages.iter().all(|page| !navigation.contains(page)),
            "{pages:?} vs {navigation:?}"
        );
    }
    assert!(
        boosted["results"][0]["scores"]["boost"]
            .as_f64()
            .is_some_and(|b| b > 0.0),
        "{boosted}"
    );

    // GET /terms: the same entry across books, through the graph.
    let (status, terms) = server.get_json("/terms?q=tapply").await;
    assert_eq!(status, 200, "{terms}");
    let first = &terms["results"][0];
    assert_eq!(first["book_id"], book_id.as_str(), "{terms}");
    assert_eq!(first["book_title"], "An Introduction to R");
    let pages: BTreeSet<u64> = first["pages"]
        .as_array()
        .expect("pages")
        .iter()
        .flat_map(|range| range[0].as_u64().expect("first")..=range[1].as_u64().expect("last"))
        .collect();
    assert_eq!(pages, listed, "{terms}");
    let (_, none) = server.get_json("/terms?q=zzzz-not-a-term").await;
    assert_eq!(none["results"].as_array().map(Vec::len), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn any_query_text_is_safe() {
    let server = TestServer::start(&[]);
    server.ingest_corpus_book("amsldoc", "amsldoc").await;
    let hostile = [
        "\"",
        "\"unbalanced quote",
        "?",
        "*",
        "NEAR(a b)",
        "a AND OR NOT b",
        "column:value",
        "^start",
        "-minus",
        "' OR 1=1 --",
        "'; DROP TABLE books; --",
        "MATCH (n) DETACH DELETE n",
        "%_%",
        "\\",
        "\u{200b}\u{202e}",
        "((((",
        "x\u{0}y",
    ];
    for query in hostile {
        for mode in ["keyword", "hybrid", "semantic"] {
            let (status, body) = search(&server, &[("q", query), ("mode", mode)]).await;
            assert!(
                status == 200 || (status == 503 && mode != "keyword"),
                "{query:?} {mode}: {status} {body}"
            );
        }
        let response = server
            .client
            .get(server.url("/terms"))
            .query(&[("q", query)])
            .send()
            .await
            .expect("terms");
        assert_eq!(response.status().as_u16(), 200, "terms {query:?}");
    }
    for (k, expected) in [("0", 400u16), ("101", 400), ("100000000000", 400), ("-1", 400)] {
        let (status, body) = search(&server, &[("q", "theorem"), ("k", k)]).await;
        assert!(status == expected || status == 422, "k={k}: {status} {body}");
    }
    let (status, _) = search(&server, &[("q", "theorem"), ("book_id", "../../etc/passwd")]).await;
    assert_eq!(status, 400);
    let (status, _) = search(&server, &[("q", "")]).await;
    assert!(status == 400 || status == 422);
    // The books are still there.
    let (status, books) = server.get_json("/books").await;
    assert_eq!(status, 200);
    assert_eq!(books.as_array().map(Vec::len), Some(1), "{books}");
}

/// With the embedding model on: chunks get vectors (the quality gate counts them), and
/// semantic and hybrid search answer with cosine scores. The book is embedded in parts of
/// 24 chunks, taken by the process's two job slots through the embedded queue.
#[tokio::test(flavor = "multi_thread")]
async fn semantic_and_hybrid_search_use_the_chunk_vectors() {
    let server = TestServer::start(&[
        ("HBI__EMBEDDINGS__PROVIDER", "minilm"),
        ("HBI__WORKER__PART_CHUNKS", "24"),
        ("HBI__WORKER__CONCURRENCY", "2"),
    ]);
    let book_id = server.ingest_corpus_book("amsldoc", "amsldoc").await;
    let parts_done: f64 = server
        .metrics_text()
        .await
        .lines()
        .find(|line| line.starts_with("hbi_job_parts_total{outcome=\"done\"}"))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0.0);
    assert!(parts_done >= 2.0, "the book was embedded in parts: {parts_done}");
    let (_, quality) = server.get_json(&format!("/books/{book_id}/quality")).await;
    let consistency = quality["gates"]
        .as_array()
        .and_then(|gates| gates.iter().find(|g| g["gate"] == "chunk_vector_consistency"))
        .expect("consistency gate")
        .clone();
    assert_eq!(consistency["passed"], true, "{consistency}");
    assert!(
        consistency["detail"]
            .as_str()
            .is_some_and(|d| d.contains("vectors for")),
        "{consistency}"
    );

    // A paraphrase with few of the book's words: meaning, not keywords.
    let question = "how do I put several equations one under another and line them up";
    let (status, semantic) = search(&server, &[("q", question), ("mode", "semantic"), ("boost", "false")]).await;
    assert_eq!(status, 200, "{semantic}");
    let hits = semantic["results"].as_array().expect("results");
    assert_eq!(hits.len(), 10, "{semantic}");
    let top = &hits[0];
    assert!(
        top["scores"]["semantic"].as_f64().is_some_and(|s| s > 0.3 && s <= 1.0),
        "{top}"
    );
    assert!(
        top["chunk_id"].as_str().is_some_and(|id| id.starts_with(&book_id)),
        "{top}"
    );
    assert!(
        hits.iter().any(|hit| {
            let section = hit["section_path"].to_string().to_lowercase();
            section.contains("align") || section.contains("equation")
        }),
        "a hit in a section on aligned or displayed equations: {semantic}"
    );

    let (status, hybrid) = search(&server, &[("q", "aligned equations"), ("mode", "hybrid")]).await;
    assert_eq!(status, 200, "{hybrid}");
    let hybrid_hits = hybrid["results"].as_array().expect("results");
    assert!(
        hybrid_hits
            .iter()
            .any(|hit| hit["scores"]["keyword"].is_number() && hit["scores"]["semantic"].is_number()),
        "some page found by both lists: {hybrid}"
    );
}

/// GET /terms by words, prefix, initials and near misses, ranked, on amsldoc's index.
#[tokio::test(flavor = "multi_thread")]
async fn terms_are_found_by_their_words_a_prefix_initials_or_a_near_miss() {
    let server = TestServer::start(&[]);
    let book_id = server.ingest_corpus_book("amsldoc", "amsldoc").await;
    let terms = |query: &str, extra: &str| {
        let server = &server;
        let path = format!("/terms?q={}{extra}", query.replace(' ', "%20"));
        async move {
            let (status, body) = server.get_json(&path).await;
            assert_eq!(status, 200, "{path}: {body}");
            body["results"]
                .as_array()
                .expect("results")
                .iter()
                .map(|hit| {
                    (
                        hit["term"].as_str().unwrap_or_default().to_owned(),
                        hit["matched"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    let pair = |term: &str, matched: &str| (term.to_owned(), matched.to_owned());

    let exact = terms("Math  Fonts", "").await;
    assert_eq!(exact.first(), Some(&pair("math fonts", "exact")), "{exact:?}");
    let words = terms("environment align", "").await;
    assert_eq!(words.first(), Some(&pair("align environment", "words")), "{words:?}");
    // "cd": the entry with the word first, then the entry it abbreviates.
    let cd = terms("cd", "").await;
    let position = |term: &str| cd.iter().position(|(found, _)| found == term);
    assert_eq!(cd.first(), Some(&pair("CD environment", "words")), "{cd:?}");
    assert!(cd.contains(&pair("commutative diagrams", "initials")), "{cd:?}");
    assert!(position("CD environment") < position("commutative diagrams"));
    let prefix = terms("mathb", "").await;
    assert!(
        prefix.contains(&pair("\\mathbb", "prefix")) && prefix.contains(&pair("\\mathbf", "prefix")),
        "{prefix:?}"
    );
    let typo = terms("enviroment", "&limit=100").await;
    assert!(
        typo.len() > 10
            && typo
                .iter()
                .all(|(term, matched)| matched == "fuzzy" && term.contains("environment")),
        "{typo:?}"
    );
    assert!(typo.contains(&pair("align environment", "fuzzy")));
    // Ranked best first, never more than asked, within one book if asked.
    let ranks = ["exact", "qualified", "words", "prefix", "initials", "fuzzy"];
    let order: Vec<usize> = cd
        .iter()
        .filter_map(|(_, matched)| ranks.iter().position(|rank| rank == matched))
        .collect();
    assert!(order.windows(2).all(|pair| pair[0] <= pair[1]), "{cd:?}");
    assert_eq!(terms("environment", "&limit=3").await.len(), 3);
    assert_eq!(
        terms("environment", &format!("&book_id={book_id}&limit=3")).await.len(),
        3
    );
    assert!(
        terms("environment", "&book_id=0193c0de-0000-7000-8000-000000000000")
            .await
            .is_empty()
    );
    let (status, _) = server.get_json("/terms?q=environment&book_id=not-an-id").await;
    assert_eq!(status, 400);
}
