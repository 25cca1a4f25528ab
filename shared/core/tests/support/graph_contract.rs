//! One scenario every graph store must pass: the SQL tables and FalkorDB run it as it is, so
//! both implementations are held to the same contract (and the Cypher statements Neo4j
//! receives are exercised on FalkorDB).

#![allow(dead_code)] // each test binary uses some of these

use std::collections::BTreeMap;

use hbi_extraction::{IndexEntry, TocEntry};
use hbi_shared::graph::{BookGraph, ChapterNode, GraphStore, chapters_from_flat_toc, index_terms_from_entries};

/// Node counts by label and relationship counts by type.
pub type Counts = (BTreeMap<String, u64>, BTreeMap<String, u64>);

/// Quotes, backslashes, a Cypher fragment and a newline: must round-trip unchanged.
pub const HOSTILE: &str = "it's \"quoted\" \\ back\\\\slash })-[:X]->(n) DETACH DELETE n // \n`tick`";

fn entry(path: &[&str], pages: &[[u32; 2]], see: &[&str], see_also: &[&str]) -> IndexEntry {
    IndexEntry {
        path: path.iter().map(|p| (*p).to_owned()).collect(),
        pages: pages.to_vec(),
        see: see.iter().map(|p| (*p).to_owned()).collect(),
        see_also: see_also.iter().map(|p| (*p).to_owned()).collect(),
        depth: u32::try_from(path.len()).unwrap_or(1),
        ..Default::default()
    }
}

pub fn book_a(hash: &str) -> BookGraph {
    let toc: Vec<TocEntry> = [
        (1, "1 Basics".to_owned(), Some(2)),
        (2, "1.1 Ownership".to_owned(), Some(3)),
        (1, format!("2 {HOSTILE}"), Some(8)),
        (1, "Appendix".to_owned(), None),
    ]
    .into_iter()
    .map(|(level, title, page)| TocEntry { level, title, page })
    .collect();
    let mut index = vec![
        entry(&["Ownership"], &[[3, 4]], &[], &["Borrowing"]),
        entry(&["Ownership", "moves"], &[[5, 5]], &[], &[]),
        entry(&["Borrowing"], &[[6, 7], [1, 400]], &[], &["ownership,  Moves"]),
        entry(&["borrow checker"], &[], &["Borrowing.", "Nowhere"], &[]),
        entry(&[HOSTILE], &[[8, 8]], &[], &[HOSTILE]),
        entry(&[HOSTILE, HOSTILE], &[[9, 10]], &[HOSTILE], &[]),
    ];
    index[4].index_name = Some(HOSTILE.to_owned());
    index[5].index_name = Some(HOSTILE.to_owned());
    BookGraph {
        book_id: "book-a".to_owned(),
        content_hash: hash.to_owned(),
        title: HOSTILE.to_owned(),
        page_labels: (1..=12)
            .map(|n| if n < 3 { format!("{n}'") } else { n.to_string() })
            .collect(),
        chapters: chapters_from_flat_toc(&toc),
        index_terms: index_terms_from_entries(&index),
    }
}

pub fn book_b() -> BookGraph {
    BookGraph {
        book_id: "book-b".to_owned(),
        content_hash: "bbbbbbbbbbbbbbbbbbbb".to_owned(),
        title: "Another book".to_owned(),
        // A label from /PageLabels may hold a NUL, which FalkorDB and PostgreSQL cannot carry.
        page_labels: (1..=5)
            .map(|n| if n == 5 { "\u{0}5".to_owned() } else { n.to_string() })
            .collect(),
        chapters: vec![ChapterNode {
            position: 0,
            level: 1,
            title: "Only chapter".to_owned(),
            page: Some(1),
            parent: None,
        }],
        index_terms: index_terms_from_entries(&[
            entry(&["OWNERSHIP "], &[[2, 2]], &[], &[]),
            entry(&["Traits"], &[[3, 5]], &[], &[]),
        ]),
    }
}

fn count(map: &BTreeMap<String, u64>, name: &str) -> u64 {
    map.get(name).copied().unwrap_or(0)
}

/// The scenario. `counts` reads the store's node and relationship counts directly.
pub async fn scenario(store: &dyn GraphStore, counts: impl AsyncFn() -> anyhow::Result<Counts>) -> anyhow::Result<()> {
    store.check().await?;
    let a = book_a("aaaaaaaaaaaaaaaaaaaa");
    let b = book_b();
    store.write_book(&a).await?;
    store.write_book(&b).await?;

    // Read back exactly what was written, hostile strings included.
    assert_eq!(store.chapters("book-a").await?, a.chapters);
    assert_eq!(store.index_terms("book-a").await?, a.index_terms);
    assert_eq!(store.chapters("book-b").await?, b.chapters);
    assert_eq!(store.index_terms("book-b").await?, b.index_terms);
    assert_eq!(a.index_terms[1].parent, Some(0));
    assert_eq!(a.index_terms[5].term, HOSTILE);

    let (nodes, rels) = counts().await?;
    assert_eq!(count(&nodes, "Book"), 2);
    assert_eq!(count(&nodes, "Page"), 12 + 5);
    assert_eq!(count(&nodes, "Chapter"), 4 + 1);
    assert_eq!(count(&nodes, "IndexTerm"), 6 + 2);
    // ownership, ownership moves, borrowing, borrow checker, hostile, hostile/hostile; traits.
    assert_eq!(count(&nodes, "Term"), 7, "{nodes:?}");
    assert_eq!(count(&rels, "HAS_INDEX_TERM"), 8);
    assert_eq!(count(&rels, "OF_TERM"), 8);
    assert_eq!(count(&rels, "SUBTERM_OF"), 2);
    // borrow checker -> Borrowing; hostile/hostile -> hostile (same index).
    assert_eq!(count(&rels, "SEE"), 2, "{rels:?}");
    // Ownership -> Borrowing; Borrowing -> Ownership/moves; hostile -> itself is no edge.
    assert_eq!(count(&rels, "SEE_ALSO"), 2, "{rels:?}");
    // a: 3,4 | 5 | 6,7 + 1..=12 capped to the book | 8 | 9,10 -> 2+1+12+1+2; b: 2 | 3,4,5.
    assert_eq!(count(&rels, "APPEARS_ON_PAGE"), 18 + 4);
    assert_eq!(count(&rels, "HAS_TOC"), 3 + 1);
    assert_eq!(count(&rels, "HAS_CHILD"), 1);
    assert_eq!(count(&rels, "STARTS_ON_PAGE"), 3 + 1);
    assert_eq!(count(&rels, "HAS_PAGE"), 17);

    // Writing again changes nothing.
    store.write_book(&a).await?;
    store.write_book(&b).await?;
    assert_eq!(counts().await?, (nodes.clone(), rels.clone()));
    assert_eq!(store.index_terms("book-a").await?, a.index_terms);

    // Exact key first (both books, by book), then the entries it prefixes.
    let hits = store.books_for_term("  ownership\u{00A0}").await?;
    let books: Vec<(&str, &str)> = hits.iter().map(|h| (h.book_id.as_str(), h.term.as_str())).collect();
    assert_eq!(
        books,
        vec![("book-a", "Ownership"), ("book-b", "OWNERSHIP"), ("book-a", "moves")]
    );
    assert_eq!(hits[0].pages, vec![[3, 4]]);
    assert_eq!(hits[2].path, vec!["Ownership".to_owned(), "moves".to_owned()]);
    assert_eq!(store.books_for_term("BORROW").await?.len(), 2); // borrow checker, borrowing
    assert!(store.books_for_term(" \t").await?.is_empty());
    assert!(store.books_for_term("no such term").await?.is_empty());
    let hostile = store.books_for_term(HOSTILE).await?;
    assert_eq!(hostile.len(), 2);
    assert_eq!(hostile[0].term, HOSTILE);
    assert_eq!(hostile[1].path, vec![HOSTILE.to_owned(), HOSTILE.to_owned()]);
    // Pattern characters in the query are literal.
    assert!(store.books_for_term("%").await?.is_empty());
    assert!(store.books_for_term("_wnership").await?.is_empty());

    // A new text of book A: stale chapters and terms go, the shared ones stay.
    let mut a2 = book_a("cccccccccccccccccccc");
    a2.chapters.truncate(1);
    a2.index_terms.truncate(2);
    store.write_book(&a2).await?;
    assert_eq!(store.chapters("book-a").await?, a2.chapters);
    assert_eq!(store.index_terms("book-a").await?, a2.index_terms);
    let (nodes2, rels2) = counts().await?;
    assert_eq!(count(&nodes2, "Chapter"), 1 + 1);
    assert_eq!(count(&nodes2, "IndexTerm"), 2 + 2);
    assert_eq!(count(&nodes2, "Term"), 3, "{nodes2:?}"); // ownership, ownership moves, traits
    assert_eq!(count(&rels2, "SEE") + count(&rels2, "SEE_ALSO"), 0);
    assert_eq!(count(&rels2, "APPEARS_ON_PAGE"), 3 + 4);
    store.write_book(&a).await?;
    assert_eq!(counts().await?, (nodes.clone(), rels.clone()));

    // Deleting A keeps the term B still uses.
    store.delete_book("book-a").await?;
    assert!(store.chapters("book-a").await?.is_empty());
    assert!(store.index_terms("book-a").await?.is_empty());
    let hits = store.books_for_term("Ownership").await?;
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].book_id, "book-b");
    assert!(store.books_for_term("borrowing").await?.is_empty());
    let (nodes3, rels3) = counts().await?;
    assert_eq!(count(&nodes3, "Book"), 1);
    assert_eq!(count(&nodes3, "Page"), 5);
    assert_eq!(count(&nodes3, "Term"), 2, "{nodes3:?}");
    assert_eq!(count(&rels3, "OF_TERM"), 2);
    assert_eq!(store.index_terms("book-b").await?, b.index_terms);

    store.delete_book("book-b").await?;
    let (nodes4, rels4) = counts().await?;
    assert_eq!(nodes4.values().sum::<u64>(), 0, "{nodes4:?}");
    assert_eq!(rels4.values().sum::<u64>(), 0, "{rels4:?}");
    // Deleting what is gone is fine.
    store.delete_book("book-b").await?;
    Ok(())
}
