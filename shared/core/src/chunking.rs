//! Chunking by structure: the book's text cut into overlapping windows of words that never
//! cross a chapter boundary, each carrying its section path and its first and last page
//! (physical number and printed label), so a search hit or an answer can cite a page.
//!
//! Chapters are the top level of the ToC (its smallest level). Boundaries are per page: a
//! chapter starts with the page its ToC entry points at. A book without a ToC is one run.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use hbi_extraction::{PageText, TocEntry};

/// Sizes in words (whitespace-separated). all-MiniLM-L6-v2 reads 256 word pieces, about
/// 180 to 200 English words: a larger chunk would be embedded only in part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkSizes {
    pub words: usize,
    pub overlap: usize,
}

impl Default for ChunkSizes {
    fn default() -> Self {
        Self {
            words: 180,
            overlap: 30,
        }
    }
}

impl ChunkSizes {
    /// Fixes what cannot work: no empty chunks, and an overlap smaller than a chunk.
    pub fn sanitised(self) -> Self {
        let words = self.words.max(8);
        Self {
            words,
            overlap: self.overlap.min(words / 2),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    /// Position of the chunk in the book, from 0.
    pub position: u32,
    pub text: String,
    /// ToC titles from the chapter down to the deepest section the chunk starts in.
    pub section_path: Vec<String>,
    /// Physical pages, 1-based, inclusive.
    pub first_page: u32,
    pub last_page: u32,
    pub first_label: String,
    pub last_label: String,
}

impl Chunk {
    /// What the embedding model reads: the section path as a heading line, then the text.
    /// A passage rarely names the section it belongs to; with the heading, its vector says
    /// what the passage is about in the book's own words (the full-text index has the
    /// heading on the section's first page only).
    pub fn embedding_text(&self) -> String {
        if self.section_path.is_empty() {
            return self.text.clone();
        }
        format!("{}\n{}", self.section_path.join(" > "), self.text)
    }

    /// SHA-256 of the embedded text: equal text under the same heading is embedded once.
    pub fn content_hash(&self) -> String {
        hex::encode(Sha256::digest(self.embedding_text().as_bytes()))
    }

    /// A stable id: the book and the position (a re-run writes the same ids).
    pub fn id(&self, book_id: &str) -> String {
        format!("{book_id}:{:06}", self.position)
    }
}

/// A word and the page it is on.
struct Word<'a> {
    text: &'a str,
    page: u32,
}

/// Cuts `pages` into chunks of `sizes.words` words overlapping by `sizes.overlap`, never
/// across a chapter, preferring to end a chunk after a sentence.
pub fn chunk_book(pages: &[PageText], toc: &[TocEntry], sizes: ChunkSizes) -> Vec<Chunk> {
    let sizes = sizes.sanitised();
    let sections = Sections::new(toc);
    let label_of = |page: u32| {
        pages
            .iter()
            .find(|p| p.number == page)
            .map(|p| p.label.clone())
            .unwrap_or_else(|| page.to_string())
    };
    let mut chunks = Vec::new();
    let mut run: Vec<Word<'_>> = Vec::new();
    let mut run_chapter = None;
    for page in pages {
        let chapter = sections.chapter_at(page.number);
        if chapter != run_chapter && !run.is_empty() {
            cut_run(&run, sizes, &sections, &label_of, &mut chunks);
            run.clear();
        }
        run_chapter = chapter;
        run.extend(page.text.split_whitespace().map(|text| Word {
            text,
            page: page.number,
        }));
    }
    cut_run(&run, sizes, &sections, &label_of, &mut chunks);
    chunks
}

fn cut_run(
    words: &[Word<'_>],
    sizes: ChunkSizes,
    sections: &Sections<'_>,
    label_of: &impl Fn(u32) -> String,
    out: &mut Vec<Chunk>,
) {
    let mut start = 0;
    while start < words.len() {
        let mut end = (start + sizes.words).min(words.len());
        if end < words.len() {
            // Within the last quarter of the window, end after the last full sentence.
            let earliest = start + sizes.words * 3 / 4;
            if let Some(sentence_end) = (earliest..end).rev().find(|&i| ends_sentence(words[i].text)) {
                end = sentence_end + 1;
            }
        }
        let window = &words[start..end];
        let (first_page, last_page) = match (window.first(), window.last()) {
            (Some(first), Some(last)) => (first.page, last.page),
            _ => break,
        };
        out.push(Chunk {
            position: u32::try_from(out.len()).unwrap_or(u32::MAX),
            text: window.iter().map(|w| w.text).collect::<Vec<_>>().join(" "),
            section_path: sections.path_at(first_page),
            first_page,
            last_page,
            first_label: label_of(first_page),
            last_label: label_of(last_page),
        });
        if end == words.len() {
            break;
        }
        // Step back by the overlap, but always forward by at least one word.
        start = end.saturating_sub(sizes.overlap).max(start + 1);
    }
}

fn ends_sentence(word: &str) -> bool {
    let word = word.trim_end_matches(['"', '\'', ')', '\u{201d}', '\u{2019}']);
    word.len() > 1 && word.ends_with(['.', '?', '!'])
}

/// The ToC entries that have a page, in order, with the chapter (top) level.
struct Sections<'a> {
    entries: Vec<&'a TocEntry>,
    top_level: u32,
}

impl<'a> Sections<'a> {
    fn new(toc: &'a [TocEntry]) -> Self {
        let entries: Vec<&TocEntry> = toc.iter().filter(|entry| entry.page.is_some()).collect();
        let top_level = entries.iter().map(|entry| entry.level).min().unwrap_or(1);
        Self { entries, top_level }
    }

    /// Index of the chapter `page` belongs to: the last top-level entry starting at or
    /// before it (None before the first chapter).
    fn chapter_at(&self, page: u32) -> Option<usize> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, entry)| entry.level == self.top_level && entry.page.is_some_and(|start| start <= page))
            .map(|(position, _)| position)
            .next_back()
    }

    /// Titles from the chapter down to the deepest entry starting at or before `page`.
    fn path_at(&self, page: u32) -> Vec<String> {
        crate::outline::section_path(self.entries.iter().copied(), page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(number: u32, text: &str) -> PageText {
        PageText {
            number,
            label: format!("p{number}"),
            text: text.to_owned(),
        }
    }

    fn entry(level: u32, title: &str, page: u32) -> TocEntry {
        TocEntry {
            level,
            title: title.to_owned(),
            page: Some(page),
        }
    }

    fn words(n: usize, tag: &str) -> String {
        (0..n).map(|i| format!("{tag}{i}")).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn chunks_stay_inside_their_chapter() {
        let pages = vec![
            page(1, &words(50, "a")),
            page(2, &words(50, "b")),
            page(3, &words(50, "c")),
        ];
        let toc = vec![entry(1, "One", 1), entry(2, "One.1", 2), entry(1, "Two", 3)];
        let chunks = chunk_book(&pages, &toc, ChunkSizes { words: 40, overlap: 10 });
        for chunk in &chunks {
            let in_two = chunk.text.contains('c');
            assert!(
                !in_two || !(chunk.text.contains('a') || chunk.text.contains('b')),
                "{chunk:?}"
            );
        }
        let last = chunks.last().expect("chunks");
        assert_eq!(last.section_path, vec!["Two".to_owned()]);
        assert_eq!((last.first_page, last.last_page), (3, 3));
        assert_eq!(last.first_label, "p3");
        let second_section = chunks.iter().find(|c| c.first_page == 2).expect("a chunk from page 2");
        assert_eq!(second_section.section_path, vec!["One".to_owned(), "One.1".to_owned()]);
        let positions: Vec<u32> = chunks.iter().map(|c| c.position).collect();
        assert_eq!(
            positions,
            (0..u32::try_from(chunks.len()).unwrap_or(0)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn the_model_reads_the_section_path_above_the_text() {
        let pages = vec![page(1, &words(20, "a")), page(2, &words(20, "a"))];
        let toc = vec![entry(1, "Graphics", 1), entry(2, "Plotting curves", 2)];
        let chunks = chunk_book(&pages, &toc, ChunkSizes { words: 20, overlap: 0 });
        assert_eq!(chunks.len(), 2, "{chunks:?}");
        assert_eq!(chunks[0].text, chunks[1].text, "the same words on both pages");
        assert_eq!(chunks[0].embedding_text(), format!("Graphics\n{}", chunks[0].text));
        assert_eq!(
            chunks[1].embedding_text(),
            format!("Graphics > Plotting curves\n{}", chunks[1].text)
        );
        // Equal words under another heading are another vector.
        assert_ne!(chunks[0].content_hash(), chunks[1].content_hash());
        let untitled = chunk_book(&pages[..1], &[], ChunkSizes::default());
        assert_eq!(untitled[0].embedding_text(), untitled[0].text);
    }

    #[test]
    fn windows_overlap_and_cover_every_word() {
        let pages = vec![page(1, &words(100, "w"))];
        let chunks = chunk_book(&pages, &[], ChunkSizes { words: 30, overlap: 10 });
        let mut seen = std::collections::BTreeSet::new();
        for chunk in &chunks {
            assert!(chunk.text.split(' ').count() <= 30);
            seen.extend(chunk.text.split(' ').map(str::to_owned));
        }
        assert_eq!(seen.len(), 100, "every word in some chunk");
        let first: Vec<&str> = chunks[0].text.split(' ').collect();
        let second: Vec<&str> = chunks[1].text.split(' ').collect();
        assert_eq!(&first[first.len() - 10..], &second[..10], "ten words of overlap");
        assert!(chunks.iter().all(|c| c.section_path.is_empty()));
    }

    #[test]
    fn a_chunk_prefers_to_end_after_a_sentence() {
        let text = format!("{} end. {}", words(26, "x"), words(40, "y"));
        let chunks = chunk_book(&[page(1, &text)], &[], ChunkSizes { words: 30, overlap: 0 });
        assert!(chunks[0].text.ends_with("end."), "{:?}", chunks[0].text);
    }

    #[test]
    fn silly_sizes_still_terminate() {
        let pages = vec![page(1, &words(20, "z"))];
        let chunks = chunk_book(
            &pages,
            &[],
            ChunkSizes {
                words: 0,
                overlap: 1000,
            },
        );
        assert!(!chunks.is_empty());
        assert!(chunks.len() <= 20);
        assert!(chunk_book(&[], &[], ChunkSizes::default()).is_empty());
    }
}
