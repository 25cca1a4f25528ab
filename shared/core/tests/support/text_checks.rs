//! The behaviour every `TextIndex` must show, run against each backend.

#![allow(dead_code)] // each test binary uses some of these

use hbi_shared::domain::BookFilter;
use hbi_shared::text_index::{IndexedPage, PageHit, TextIndex};

/// User input that must never reach the database as syntax: quotes, placeholders, FTS5 and
/// tsquery operators, SQL fragments, NUL, the snippet marks, and oversized text.
pub fn hostile_queries() -> Vec<String> {
    let mut queries: Vec<String> = [
        "\"",
        "\"\"",
        "\"\"\"",
        "'",
        "''",
        "?",
        "??",
        "?1",
        "$1",
        ":name",
        "@p",
        "'; DROP TABLE books; --",
        "\"; DROP TABLE books; --",
        "graph'; DELETE FROM pages_fts; --",
        "Robert'); DROP TABLE page_search;--",
        "AND",
        "OR",
        "NOT",
        "NEAR",
        "graph AND",
        "OR graph",
        "graph NOT",
        "a AND OR NOT b",
        "NEAR(graph tree)",
        "NEAR(graph tree, 2)",
        "graph NEAR/3 tree",
        "*",
        "graph*",
        "*graph",
        "^graph",
        "^",
        "text:graph",
        "book_id:x",
        ":",
        "(",
        ")",
        "(graph",
        "graph)",
        "((graph OR tree) AND NOT (x))",
        "\"unbalanced phrase",
        "phrase\" end",
        "\"graph\" \"",
        "-",
        "--",
        "-graph",
        "!",
        "!graph",
        "&",
        "|",
        "<->",
        "graph <-> tree",
        "graph & tree | !x",
        ":*",
        "graph:*",
        "graph:A",
        "%",
        "_",
        "\\",
        "\\\"",
        "{}",
        "[]",
        "graph\0tree",
        "\0",
        "\u{2}graph\u{3}",
        "café",
        "图论",
        "🙂 graph",
        "",
        "   ",
        "\t\n",
        "SELECT * FROM books",
        "1=1",
        "' OR '1'='1",
    ]
    .iter()
    .map(|query| (*query).to_owned())
    .collect();
    queries.push("graph ".repeat(2_000));
    queries.push("\"".repeat(5_000));
    queries.push("(".repeat(5_000));
    queries
}

fn page(number: u32, text: &str) -> IndexedPage {
    IndexedPage {
        number,
        text: text.to_owned(),
    }
}

fn pages_of(hits: &[PageHit]) -> Vec<(String, u32)> {
    hits.iter().map(|hit| (hit.book_id.clone(), hit.page)).collect()
}

/// Indexing, counting, searching, replacing and deleting, with hostile queries in between.
pub async fn exercise(index: &dyn TextIndex) -> anyhow::Result<()> {
    let book_a = format!("book-a-{}", uuid::Uuid::new_v4());
    let book_b = format!("book-b-{}", uuid::Uuid::new_v4());
    index
        .index_pages(
            &book_a,
            &[
                page(1, "A directed graph has edges with a direction. graph graph graph."),
                page(2, "Trees are graphs without cycles; a tree is a connected graph."),
                page(3, "   "),
                page(
                    4,
                    "Sorting algorithms: <script>alert(1)</script> merge sort & quick sort.",
                ),
                page(5, "The graph is directed from the tree to the root."),
            ],
        )
        .await?;
    index
        .index_pages(&book_b, &[page(7, "Graph colouring and a graph homomorphism.")])
        .await?;
    assert_eq!(index.page_count(&book_a).await?, 4, "blank pages are not indexed");
    assert_eq!(index.page_count(&book_b).await?, 1);

    // One book, best page first.
    let hits = index.search_pages(&BookFilter::one(&book_a), "graph", 10).await?;
    let pages: Vec<u32> = hits.iter().map(|hit| hit.page).collect();
    assert_eq!(
        pages.first(),
        Some(&1),
        "the page that says graph four times ranks first: {hits:?}"
    );
    assert!(pages.contains(&2) && pages.contains(&5), "{hits:?}");
    assert!(hits.iter().all(|hit| hit.book_id == book_a));
    assert!(
        hits.windows(2).all(|pair| pair[0].score >= pair[1].score),
        "scores descend: {hits:?}"
    );
    let snippets = index.snippets("graph", &hits).await?;
    assert_eq!(snippets.len(), hits.len());
    assert!(snippets[0].contains("<b>graph</b>"), "{}", snippets[0]);
    assert!(snippets.iter().all(|s| s.contains("<b>graph</b>")), "{snippets:?}");

    // All books.
    let everywhere = pages_of(&index.search_pages(&BookFilter::All, "graph", 100).await?);
    assert!(everywhere.contains(&(book_b.clone(), 7)), "{everywhere:?}");
    assert!(everywhere.contains(&(book_a.clone(), 1)), "{everywhere:?}");

    // Some books (a key's libraries), filtered before the limit: a book left out takes no
    // place in it.
    let only_b = pages_of(
        &index
            .search_pages(
                &BookFilter::among([book_b.clone(), "no-such-book".to_owned()]),
                "graph",
                1,
            )
            .await?,
    );
    assert_eq!(only_b, vec![(book_b.clone(), 7)]);
    let both_books = pages_of(
        &index
            .search_pages(&BookFilter::among([book_a.clone(), book_b.clone()]), "graph", 100)
            .await?,
    );
    let of_a_and_b: Vec<(String, u32)> = everywhere
        .iter()
        .filter(|(book, _)| *book == book_a || *book == book_b)
        .cloned()
        .collect();
    assert_eq!(sorted(both_books), sorted(of_a_and_b));
    assert!(
        index
            .search_pages(&BookFilter::among([]), "graph", 10)
            .await?
            .is_empty()
    );

    // Every word must match; a quoted phrase must match as written.
    let both = pages_of(&index.search_pages(&BookFilter::one(&book_a), "graph tree", 10).await?);
    assert_eq!(sorted(both), vec![(book_a.clone(), 2), (book_a.clone(), 5)]);
    let phrase = pages_of(
        &index
            .search_pages(&BookFilter::one(&book_a), "\"directed graph\"", 10)
            .await?,
    );
    assert_eq!(
        phrase,
        vec![(book_a.clone(), 1)],
        "page 5 has both words, not the phrase"
    );

    // Limits.
    assert_eq!(
        index.search_pages(&BookFilter::one(&book_a), "graph", 1).await?.len(),
        1
    );
    assert!(
        index
            .search_pages(&BookFilter::one(&book_a), "graph", 0)
            .await?
            .is_empty()
    );

    // The page's own markup never comes through as markup; only the match marks are tags.
    let sorting = index.search_pages(&BookFilter::one(&book_a), "merge", 10).await?;
    assert_eq!(sorting.len(), 1, "{sorting:?}");
    let snippet = &index.snippets("merge", &sorting).await?[0];
    // FTS5 keeps `<script>` as escaped text; ts_headline drops HTML tags from the text.
    let without_marks = snippet.replace("<b>", "").replace("</b>", "");
    assert!(!without_marks.contains(['<', '>']), "{snippet}");
    assert!(snippet.contains("<b>merge</b>"), "{snippet}");
    assert!(snippet.contains("&amp;"), "{snippet}");

    // Operators are words here, so a page containing the word matches and nothing else changes.
    for query in hostile_queries() {
        for book in [BookFilter::All, BookFilter::one(&book_a)] {
            if let Err(err) = index.search_pages(&book, &query, 10).await {
                panic!("query {query:?} failed: {err:#}");
            }
        }
    }
    assert!(
        index
            .search_pages(&BookFilter::All, "'; DROP TABLE books; --", 10)
            .await?
            .is_empty()
    );
    assert_eq!(index.page_count(&book_a).await?, 4, "hostile queries changed nothing");
    assert!(
        !index
            .search_pages(&BookFilter::one(&book_a), "graph", 10)
            .await?
            .is_empty()
    );

    // Indexing again replaces the book's pages; a hit from before gets no snippet of
    // whatever page took its place (SQLite hands the last rowid out again).
    let colouring = index.search_pages(&BookFilter::one(&book_b), "graph", 10).await?;
    index
        .index_pages(&book_b, &[page(8, "Another graph on another page.")])
        .await?;
    assert_eq!(
        index.snippets("graph", &colouring).await?,
        vec![String::new()],
        "page 7 is gone; page 8 is not its snippet"
    );
    let before = index.search_pages(&BookFilter::one(&book_a), "graph", 10).await?;
    index.index_pages(&book_a, &[page(9, "Only heaps remain.")]).await?;
    assert!(
        index.snippets("graph", &before).await?.iter().all(String::is_empty),
        "pages gone from the index have no snippet"
    );
    assert_eq!(index.page_count(&book_a).await?, 1);
    assert!(
        index
            .search_pages(&BookFilter::one(&book_a), "graph", 10)
            .await?
            .is_empty()
    );
    assert_eq!(
        pages_of(&index.search_pages(&BookFilter::one(&book_a), "heaps", 10).await?),
        vec![(book_a.clone(), 9)]
    );

    index.delete_book(&book_a).await?;
    assert_eq!(index.page_count(&book_a).await?, 0);
    assert!(
        index
            .search_pages(&BookFilter::one(&book_a), "heaps", 10)
            .await?
            .is_empty()
    );
    // Nor in a search of every book.
    assert!(
        index
            .search_pages(&BookFilter::All, "heaps", 10)
            .await?
            .iter()
            .all(|hit| hit.book_id != book_a)
    );
    assert_eq!(index.page_count(&book_b).await?, 1, "other books stay");
    index.delete_book(&book_b).await?;
    Ok(())
}

fn sorted(mut pages: Vec<(String, u32)>) -> Vec<(String, u32)> {
    pages.sort();
    pages
}
