//! A retriever on the full-text index alone: the question's content words find pages, the
//! pages name the chunks that cover them, and each chunk is scored by the share of the
//! question's content words it contains. With an embedding model, the hybrid retriever
//! ([`super::HybridChunkRetriever`]) fuses this ranking with the nearest chunk vectors.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;

use super::{RetrievedChunk, Retriever};
use crate::catalog::Catalog;
use crate::db::entities::chunk;
use crate::domain::BookFilter;
use crate::text_index::TextIndex;

/// Most content words of a question that are searched.
const MAX_TERMS: usize = 8;
/// Pages asked of the index per search.
const MIN_PAGES: usize = 20;
const MAX_PAGES: usize = 100;

/// Words that carry no topic in a question (English, plus the commonest German ones for the
/// German books of the corpus).
const STOP_WORDS: &[&str] = &[
    "a", "about", "above", "after", "again", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be",
    "because", "been", "before", "being", "between", "both", "but", "by", "can", "could", "describe", "did", "do",
    "does", "doing", "done", "each", "explain", "few", "for", "from", "further", "get", "give", "had", "has", "have",
    "having", "he", "her", "here", "him", "his", "how", "i", "if", "in", "into", "is", "it", "its", "just", "me",
    "mean", "means", "more", "most", "much", "my", "no", "nor", "not", "of", "off", "on", "once", "one", "only", "or",
    "other", "our", "out", "over", "own", "please", "same", "she", "should", "show", "so", "some", "such", "tell",
    "than", "that", "the", "their", "them", "then", "there", "these", "they", "this", "those", "through", "to", "too",
    "under", "until", "up", "us", "use", "used", "using", "very", "want", "was", "way", "we", "were", "what", "when",
    "where", "which", "while", "who", "whom", "why", "will", "with", "would", "you", "your", // German
    "der", "die", "das", "den", "dem", "des", "ein", "eine", "einen", "einem", "einer", "und", "oder", "ist", "sind",
    "wie", "was", "wo", "wann", "warum", "ich", "man", "mit", "von", "zu", "im", "auf", "für", "nicht", "kann",
    "werden", "wird",
];

/// Lower-case words, split where the full-text tokenisers split (at anything not a letter or
/// digit).
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
}

/// A content word of the question and its simple plural or singular form: either one counts.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Term {
    forms: Vec<String>,
}

impl Term {
    fn new(word: String) -> Self {
        let mut forms = vec![word.clone()];
        let alphabetic = word.chars().all(char::is_alphabetic);
        if alphabetic && word.chars().count() >= 3 {
            if let Some(singular) = word.strip_suffix("ies") {
                forms.push(format!("{singular}y"));
            } else if let Some(singular) = word.strip_suffix('s').filter(|s| !s.ends_with('s')) {
                forms.push(singular.to_owned());
            } else if let Some(stem) = word.strip_suffix('y') {
                forms.push(format!("{stem}ies"));
            } else if !word.ends_with('s') {
                forms.push(format!("{word}s"));
            }
        }
        Self { forms }
    }

    fn found_in(&self, words: &HashSet<String>) -> bool {
        self.forms.iter().any(|form| words.contains(form))
    }
}

/// The question's content words, in order, without repeats or stop words (a question of stop
/// words only keeps them: "what is R" still searches for something).
fn query_terms(query: &str) -> Vec<Term> {
    let all: Vec<String> = words(query).collect();
    let mut seen = HashSet::new();
    let content: Vec<String> = all
        .iter()
        .filter(|word| !STOP_WORDS.contains(&word.as_str()))
        .filter(|word| seen.insert((*word).clone()))
        .cloned()
        .collect();
    let chosen = if content.is_empty() {
        let mut seen = HashSet::new();
        all.into_iter().filter(|word| seen.insert(word.clone())).collect()
    } else {
        content
    };
    // "vectors" after "vector" is the same term.
    let mut forms = HashSet::new();
    chosen
        .into_iter()
        .map(Term::new)
        .filter(|term| !forms.contains(&term.forms[0]) && term.forms.iter().all(|form| forms.insert(form.clone())))
        .take(MAX_TERMS)
        .collect()
}

/// The full-text index and the catalog's chunks as a [`Retriever`].
pub struct KeywordChunkRetriever {
    text: Arc<dyn TextIndex>,
    catalog: Catalog,
}

impl KeywordChunkRetriever {
    pub fn new(text: Arc<dyn TextIndex>, catalog: Catalog) -> Self {
        Self { text, catalog }
    }

    /// Page scores per book: every search's scores scaled to its best hit, summed; the search
    /// for all the words together counts for as many words as it holds.
    async fn candidate_pages(
        &self,
        terms: &[Term],
        books: &BookFilter,
        limit: usize,
    ) -> anyhow::Result<BTreeMap<String, HashMap<u32, f64>>> {
        let mut searches: Vec<(String, f64)> = Vec::new();
        if terms.len() > 1 {
            let all: Vec<&str> = terms.iter().map(|term| term.forms[0].as_str()).collect();
            searches.push((all.join(" "), terms.len() as f64));
        }
        for term in terms {
            for form in &term.forms {
                searches.push((form.clone(), 1.0));
            }
        }
        let mut pages: BTreeMap<String, HashMap<u32, f64>> = BTreeMap::new();
        for (query, weight) in searches {
            let hits = self.text.search_pages(books, &query, limit as u64).await?;
            let best = hits.iter().map(|hit| hit.score).fold(0.0_f64, f64::max);
            for hit in hits {
                let scaled = if best > 0.0 { hit.score / best } else { 1.0 };
                *pages.entry(hit.book_id).or_default().entry(hit.page).or_default() += weight * scaled;
            }
        }
        // Keep the best `limit` pages over all books.
        let mut ranked: Vec<(String, u32, f64)> = pages
            .iter()
            .flat_map(|(book, pages)| pages.iter().map(move |(page, score)| (book.clone(), *page, *score)))
            .collect();
        ranked.sort_by(|a, b| b.2.total_cmp(&a.2).then_with(|| a.0.cmp(&b.0)).then(a.1.cmp(&b.1)));
        ranked.truncate(limit);
        let mut kept: BTreeMap<String, HashMap<u32, f64>> = BTreeMap::new();
        for (book, page, score) in ranked {
            kept.entry(book).or_default().insert(page, score);
        }
        Ok(kept)
    }
}

/// One candidate chunk and what ranks it.
struct Candidate {
    chunk: chunk::Model,
    coverage: f64,
    page_score: f64,
}

fn to_retrieved(candidate: Candidate) -> RetrievedChunk {
    retrieved_chunk(candidate.chunk, candidate.coverage)
}

/// A stored chunk as a retrieval result with `score`.
pub(super) fn retrieved_chunk(chunk: chunk::Model, score: f64) -> RetrievedChunk {
    let page_label = if chunk.first_label == chunk.last_label {
        chunk.first_label.clone()
    } else {
        format!("{}–{}", chunk.first_label, chunk.last_label)
    };
    RetrievedChunk {
        section_path: serde_json::from_str(&chunk.section_path).unwrap_or_default(),
        chunk_id: chunk.id,
        book_id: chunk.book_id,
        text: chunk.text,
        first_page: u32::try_from(chunk.first_page).unwrap_or(0),
        last_page: u32::try_from(chunk.last_page).unwrap_or(0),
        page_label,
        score,
    }
}

#[async_trait]
impl Retriever for KeywordChunkRetriever {
    /// `score` is the share of the question's content words (or their plural or singular)
    /// that the chunk contains: 1.0 when all are there. Ties go to the chunk on the pages the
    /// index ranks higher.
    async fn retrieve(&self, query: &str, books: &BookFilter, top_k: usize) -> anyhow::Result<Vec<RetrievedChunk>> {
        let terms = query_terms(query);
        if terms.is_empty() || top_k == 0 {
            return Ok(Vec::new());
        }
        let limit = (top_k * 3).clamp(MIN_PAGES, MAX_PAGES);
        let pages = self.candidate_pages(&terms, books, limit).await?;
        let mut candidates = Vec::new();
        for (book, page_scores) in &pages {
            let numbers: Vec<u32> = page_scores.keys().copied().collect();
            for chunk in self.catalog.chunks_covering(book, &numbers).await? {
                let chunk_words: HashSet<String> = words(&chunk.text).collect();
                let found = terms.iter().filter(|term| term.found_in(&chunk_words)).count();
                let page_score = page_scores
                    .iter()
                    .filter(|(page, _)| {
                        (chunk.first_page..=chunk.last_page).contains(&i32::try_from(**page).unwrap_or(-1))
                    })
                    .map(|(_, score)| *score)
                    .fold(0.0, f64::max);
                candidates.push(Candidate {
                    coverage: found as f64 / terms.len() as f64,
                    page_score,
                    chunk,
                });
            }
        }
        candidates.sort_by(|a, b| {
            b.coverage
                .total_cmp(&a.coverage)
                .then(b.page_score.total_cmp(&a.page_score))
                .then_with(|| a.chunk.book_id.cmp(&b.chunk.book_id))
                .then(a.chunk.position.cmp(&b.chunk.position))
        });
        let mut seen = HashSet::new();
        Ok(candidates
            .into_iter()
            .filter(|candidate| candidate.coverage > 0.0 && seen.insert(candidate.chunk.id.clone()))
            .take(top_k)
            .map(to_retrieved)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_become_content_words() {
        let terms = query_terms("How do I create a vector in R? What does c() do with vectors?");
        let firsts: Vec<&str> = terms.iter().map(|term| term.forms[0].as_str()).collect();
        assert_eq!(firsts, ["create", "vector", "r", "c"]);
        assert_eq!(terms[1].forms, ["vector", "vectors"]);
        assert_eq!(query_terms("vectors")[0].forms, ["vectors", "vector"]);
        assert_eq!(Term::new("libraries".to_owned()).forms, ["libraries", "library"]);
        assert_eq!(Term::new("class".to_owned()).forms, ["class"]);
        let only_stop_words = query_terms("what is it?");
        assert_eq!(only_stop_words.len(), 3);
        assert!(query_terms("?? !!").is_empty());
    }
}
