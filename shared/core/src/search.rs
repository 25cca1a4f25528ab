//! Search over pages: keyword (the full-text index), semantic (nearest chunk vectors, each
//! chunk standing for its first page) and hybrid (reciprocal rank fusion of both), plus an
//! index-term boost: when words of the query name an entry of a book's printed index, the
//! pages its author listed for that entry form a third ranked list.
//!
//! Fusion is by rank, not by score (BM25 and cosine are not on one scale): a page's score is
//! `Σ weight / (rrf_k + rank)` over the lists it appears in.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::domain::{BookFilter, BookStatus};
use crate::graph::term_key;
use crate::outline::{self, TocEntry};
use crate::rerank::Reranker;
use crate::text_index::TextIndex;

/// How many candidates each list contributes before fusion.
const CANDIDATES: usize = 100;
/// How long a book's index terms and ToC stay cached.
const FACTS_TTL: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchMode {
    Keyword,
    Semantic,
    Hybrid,
}

impl SearchMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SearchMode::Keyword => "keyword",
            SearchMode::Semantic => "semantic",
            SearchMode::Hybrid => "hybrid",
        }
    }
}

/// Weights of the ranked lists in the fusion (live knobs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FusionWeights {
    pub keyword: f64,
    pub semantic: f64,
    pub index_boost: f64,
    pub rrf_k: f64,
}

impl Default for FusionWeights {
    fn default() -> Self {
        Self {
            keyword: 1.0,
            semantic: 0.5,
            index_boost: 0.25,
            rrf_k: 60.0,
        }
    }
}

/// One list's vote for an item at 0-based `rank`: reciprocal rank fusion,
/// `weight / (rrf_k + rank + 1)`. Every fused ranking (GET /search, the hybrid retriever
/// of POST /query) sums these.
pub fn reciprocal_rank(weight: f64, rrf_k: f64, rank: usize) -> f64 {
    weight / (rrf_k + rank as f64 + 1.0)
}

impl FusionWeights {
    /// The weights in force: the live knobs, shared by every replica.
    pub fn from_knobs(knobs: &crate::knobs::Knobs) -> Self {
        Self {
            keyword: knobs.keyword_weight,
            semantic: knobs.semantic_weight,
            index_boost: knobs.index_boost_weight,
            rrf_k: f64::from(knobs.rrf_k),
        }
    }

    /// The weights a search in `mode` fuses with. `keyword` and `semantic` are the two
    /// lists' shares in hybrid; a single mode's own list weighs 1, so the boost weighs the
    /// same beside either list (at 0.5 beside the semantic list's 0.5 it outvoted it).
    pub fn for_mode(self, mode: SearchMode) -> Self {
        match mode {
            SearchMode::Hybrid => self,
            SearchMode::Keyword => Self {
                keyword: 1.0,
                semantic: 0.0,
                ..self
            },
            SearchMode::Semantic => Self {
                keyword: 0.0,
                semantic: 1.0,
                ..self
            },
        }
    }
}

#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub query: String,
    pub mode: SearchMode,
    /// The books hits may come from (one book, the books a key may read, or all).
    pub books: BookFilter,
    /// Only pages whose section path has a title containing this text (case-insensitive).
    pub section: Option<String>,
    pub k: usize,
    /// Whether the index-term boost takes part.
    pub index_boost: bool,
    pub weights: FusionWeights,
    /// How many of the best fused candidates the reranker scores again (when there is one).
    pub rerank_candidates: usize,
}

/// Each list's own score for a hit, when the hit is in that list.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HitScores {
    /// BM25 (SQLite) or ts_rank (PostgreSQL): higher is better.
    pub keyword: Option<f64>,
    /// Cosine similarity of the best chunk on the page.
    pub semantic: Option<f64>,
    /// Sum of the specificity of the index entries that list the page.
    pub boost: Option<f64>,
    /// The reranker's relevance score, for the candidates it scored.
    pub rerank: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchHit {
    pub book_id: String,
    /// 1-based physical page.
    pub page: u32,
    pub page_label: String,
    pub section_path: Vec<String>,
    /// HTML-escaped text around the match, matches in `<b>..</b>`.
    pub snippet: String,
    /// The fused score (reciprocal rank fusion).
    pub score: f64,
    pub scores: HitScores,
    /// The chunk the semantic list found on this page, if any.
    pub chunk_id: Option<String>,
}

/// The semantic half: the chunks nearest to a query, by cosine similarity.
#[async_trait]
pub trait SemanticSearch: Send + Sync {
    /// The embedding model's name (for logs and metrics).
    fn model(&self) -> &str;

    async fn nearest_chunks(&self, query: &str, k: usize, books: &BookFilter) -> anyhow::Result<Vec<(String, f64)>>;
}

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("semantic search is not available: no embedding model is configured")]
    SemanticUnavailable,
    #[error(transparent)]
    Backend(#[from] anyhow::Error),
}

/// An index entry reduced to what the boost needs.
struct BoostTerm {
    pages: Vec<[u32; 2]>,
    /// Fewer pages listed: a more specific entry, a stronger signal.
    specificity: f64,
}

/// What a search reads of a book besides its pages, cached per book and content hash: the
/// ToC alone is hundreds of rows, read for every book among the hits otherwise.
struct BookFacts {
    content_hash: Option<String>,
    loaded: Instant,
    /// Index terms by normalised phrase.
    by_key: HashMap<String, Vec<BoostTerm>>,
    /// The outline, for the section path of each hit.
    toc: Vec<TocEntry>,
}

pub struct Searcher {
    text: Arc<dyn TextIndex>,
    catalog: Catalog,
    semantic: Option<Arc<dyn SemanticSearch>>,
    reranker: Option<Arc<dyn Reranker>>,
    facts: Mutex<HashMap<String, Arc<BookFacts>>>,
}

impl Searcher {
    pub fn new(
        text: Arc<dyn TextIndex>,
        catalog: Catalog,
        semantic: Option<Arc<dyn SemanticSearch>>,
        reranker: Option<Arc<dyn Reranker>>,
    ) -> Self {
        Self {
            text,
            catalog,
            semantic,
            reranker,
            facts: Mutex::new(HashMap::new()),
        }
    }

    pub fn semantic_available(&self) -> bool {
        self.semantic.is_some()
    }

    pub async fn search(&self, request: &SearchRequest) -> Result<Vec<SearchHit>, SearchError> {
        let book = &request.books;
        let want_keyword = matches!(request.mode, SearchMode::Keyword | SearchMode::Hybrid);
        let want_semantic = matches!(request.mode, SearchMode::Semantic | SearchMode::Hybrid);
        let semantic = match (want_semantic, &self.semantic) {
            (true, None) => return Err(SearchError::SemanticUnavailable),
            (true, Some(semantic)) => Some(semantic.clone()),
            (false, _) => None,
        };

        // The lists do not depend on each other: they run at once (the query's embedding and
        // KNN beside the full-text search), then are fused in a fixed order.
        let keyword_list = async {
            if !want_keyword {
                return Ok(Vec::new());
            }
            self.text.search_pages(book, &request.query, CANDIDATES as u64).await
        };
        let semantic_list = async {
            let Some(semantic) = semantic else {
                return Ok((Vec::new(), HashMap::new()));
            };
            let nearest = semantic.nearest_chunks(&request.query, CANDIDATES, book).await?;
            let ids: Vec<String> = nearest.iter().map(|(id, _)| id.clone()).collect();
            let chunks: HashMap<String, crate::db::entities::chunk::Model> = self
                .catalog
                .chunks_by_id(&ids)
                .await?
                .into_iter()
                .map(|chunk| (chunk.id.clone(), chunk))
                .collect();
            anyhow::Ok((nearest, chunks))
        };
        let boost_list = async {
            let books = self.searchable_books(book).await?;
            let boosted = if request.index_boost && request.weights.index_boost > 0.0 {
                self.index_boost(&request.query, &books).await?
            } else {
                Vec::new()
            };
            anyhow::Ok((books, boosted))
        };
        let (keyword_hits, (nearest, chunks), (books, boosted)) =
            tokio::try_join!(keyword_list, semantic_list, boost_list)?;

        // Page key -> what each list says about it.
        let mut pages: HashMap<(String, u32), Candidate> = HashMap::new();
        let weights = request.weights.for_mode(request.mode);
        for (rank, hit) in keyword_hits.into_iter().enumerate() {
            let candidate = pages.entry((hit.book_id.clone(), hit.page)).or_default();
            candidate.fused += reciprocal_rank(weights.keyword, weights.rrf_k, rank);
            candidate.scores.keyword = Some(hit.score);
            candidate.keyword_hit = Some(hit);
        }
        let mut rank = 0usize;
        for (id, similarity) in nearest {
            let Some(chunk) = chunks.get(&id) else { continue };
            let page = u32::try_from(chunk.first_page).unwrap_or(0);
            let candidate = pages.entry((chunk.book_id.clone(), page)).or_default();
            if candidate.scores.semantic.is_some() {
                // A page counts once, at the rank of its best chunk.
                continue;
            }
            candidate.fused += reciprocal_rank(weights.semantic, weights.rrf_k, rank);
            candidate.scores.semantic = Some(similarity);
            candidate.chunk_id = Some(id);
            candidate.chunk_text = Some(chunk.text.clone());
            rank += 1;
        }
        for (rank, ((book_id, page), boost)) in boosted.into_iter().enumerate() {
            // The boost lifts pages the other lists found; alone it adds pages only in
            // the modes that have no list of their own to miss them.
            let candidate = pages.entry((book_id, page)).or_default();
            candidate.fused += reciprocal_rank(weights.index_boost, weights.rrf_k, rank);
            candidate.scores.boost = Some(boost);
        }

        let mut ranked: Vec<((String, u32), Candidate)> = pages.into_iter().collect();
        ranked.sort_by(|(a_key, a), (b_key, b)| b.fused.total_cmp(&a.fused).then_with(|| a_key.cmp(b_key)));
        if let Some(reranker) = &self.reranker
            && request.rerank_candidates > 0
        {
            ranked = self
                .reranked(reranker.as_ref(), &request.query, ranked, request.rerank_candidates)
                .await?;
        }
        let books: HashMap<String, Option<String>> = books.into_iter().collect();
        self.finish_hits(ranked, request, &books).await
    }

    /// The best `candidates` of `ranked` in the reranker's order, each with its score, then
    /// the rest as they were. A page is judged by the chunk the semantic list found on it,
    /// else by its text.
    async fn reranked(
        &self,
        reranker: &dyn Reranker,
        query: &str,
        mut ranked: Vec<((String, u32), Candidate)>,
        candidates: usize,
    ) -> anyhow::Result<Vec<((String, u32), Candidate)>> {
        let rest = ranked.split_off(candidates.min(ranked.len()));
        // The pages without a chunk of their own, read one query a book.
        let mut wanted: HashMap<&str, Vec<u32>> = HashMap::new();
        for ((book_id, page), candidate) in &ranked {
            if candidate.chunk_text.is_none() {
                wanted.entry(book_id.as_str()).or_default().push(*page);
            }
        }
        let mut texts: HashMap<(String, u32), String> = HashMap::new();
        for (book_id, pages) in wanted {
            let found = self.catalog.page_texts(book_id, &pages).await?;
            texts.extend(found.into_iter().map(|(page, text)| ((book_id.to_owned(), page), text)));
        }
        let mut reranked: Vec<((String, u32), Candidate)> =
            crate::rerank::rerank(reranker, query, ranked, |(key, candidate)| {
                candidate
                    .chunk_text
                    .clone()
                    .or_else(|| texts.get(key).cloned())
                    .unwrap_or_default()
            })
            .await
            .into_iter()
            .map(|((key, mut candidate), score)| {
                candidate.scores.rerank = score;
                (key, candidate)
            })
            .collect();
        reranked.extend(rest);
        Ok(reranked)
    }

    /// Labels, section paths and snippets for the best pages, after the section filter.
    async fn finish_hits(
        &self,
        ranked: Vec<((String, u32), Candidate)>,
        request: &SearchRequest,
        books: &HashMap<String, Option<String>>,
    ) -> Result<Vec<SearchHit>, SearchError> {
        let mut tocs: HashMap<String, Arc<BookFacts>> = HashMap::new();
        let section = request.section.as_deref().map(str::to_lowercase);
        let mut hits = Vec::with_capacity(request.k);
        let mut sources = Vec::with_capacity(request.k);
        for ((book_id, page), candidate) in ranked {
            if hits.len() >= request.k {
                break;
            }
            if !tocs.contains_key(&book_id) {
                // A book not listed as searchable (still processing) is read, not cached.
                let content_hash = books.get(&book_id).cloned().flatten();
                let facts = self
                    .book_facts(&book_id, content_hash, books.contains_key(&book_id))
                    .await?;
                tocs.insert(book_id.clone(), facts);
            }
            let Some(toc) = tocs.get(&book_id).map(|facts| &facts.toc) else {
                continue;
            };
            let section_path = outline::section_path(toc, page);
            if let Some(wanted) = &section
                && !section_path.iter().any(|title| title.to_lowercase().contains(wanted))
            {
                continue;
            }
            hits.push(SearchHit {
                book_id,
                page,
                page_label: String::new(),
                section_path,
                snippet: String::new(),
                score: candidate.fused,
                scores: candidate.scores,
                chunk_id: candidate.chunk_id,
            });
            sources.push((candidate.keyword_hit, candidate.chunk_text));
        }

        // Labels of the returned pages only, one read a book (the book's whole list of them
        // read every page row).
        let mut wanted: HashMap<&str, Vec<u32>> = HashMap::new();
        for hit in &hits {
            wanted.entry(hit.book_id.as_str()).or_default().push(hit.page);
        }
        let mut labels: HashMap<(String, u32), String> = HashMap::new();
        for (book_id, pages) in wanted {
            let found = self.catalog.page_labels_of(book_id, &pages).await?;
            labels.extend(
                found
                    .into_iter()
                    .map(|(page, label)| ((book_id.to_owned(), page), label)),
            );
        }
        for hit in &mut hits {
            hit.page_label = labels
                .remove(&(hit.book_id.clone(), hit.page))
                .unwrap_or_else(|| hit.page.to_string());
        }

        // Snippets for the returned hits only: the full-text index's own where it found the
        // page, otherwise the query's words highlighted in the chunk or the page.
        let keyword_hits: Vec<crate::text_index::PageHit> = sources.iter().filter_map(|(hit, _)| hit.clone()).collect();
        let mut keyword_snippets = self.text.snippets(&request.query, &keyword_hits).await?.into_iter();
        for (hit, (keyword_hit, chunk_text)) in hits.iter_mut().zip(sources) {
            if keyword_hit.is_some() {
                hit.snippet = keyword_snippets.next().unwrap_or_default();
            }
            if hit.snippet.is_empty() {
                hit.snippet = match chunk_text {
                    Some(text) => highlight_excerpt(&text, &request.query),
                    None => match self.catalog.page(&hit.book_id, hit.page).await? {
                        Some(row) => highlight_excerpt(&row.text, &request.query),
                        None => String::new(),
                    },
                };
            }
        }
        Ok(hits)
    }

    /// The books a search may return (or the one asked for), with the content hash that keys
    /// their cached facts.
    async fn searchable_books(&self, books: &BookFilter) -> anyhow::Result<Vec<(String, Option<String>)>> {
        if books.admits_none() {
            return Ok(Vec::new());
        }
        Ok(match books.single() {
            Some(book) => self
                .catalog
                .book(book)
                .await?
                .into_iter()
                .map(|b| (b.id, b.content_hash))
                .collect(),
            None => self
                .catalog
                .books(0, 100_000)
                .await?
                .into_iter()
                .filter(|b| matches!(b.status, BookStatus::Ready | BookStatus::NeedsReview) && books.admits(&b.id))
                .map(|b| (b.id, b.content_hash))
                .collect(),
        })
    }

    /// Pages the printed indexes of `books` list for entries the query names, best first.
    async fn index_boost(
        &self,
        query: &str,
        books: &[(String, Option<String>)],
    ) -> anyhow::Result<Vec<((String, u32), f64)>> {
        let phrases = query_phrases(query);
        if phrases.is_empty() {
            return Ok(Vec::new());
        }
        let mut boosts: HashMap<(String, u32), f64> = HashMap::new();
        for (book_id, content_hash) in books {
            let terms = self.book_facts(book_id, content_hash.clone(), true).await?;
            for (phrase, words) in &phrases {
                for term in terms.by_key.get(phrase).into_iter().flatten() {
                    let strength = term.specificity * (*words as f64);
                    for [first, last] in &term.pages {
                        // A long range is one discussion: credit its first pages only.
                        for page in *first..=(*last).min(first.saturating_add(2)) {
                            *boosts.entry((book_id.clone(), page)).or_default() += strength;
                        }
                    }
                }
            }
        }
        let mut ranked: Vec<((String, u32), f64)> = boosts.into_iter().collect();
        ranked.sort_by(|(a_key, a), (b_key, b)| b.total_cmp(a).then_with(|| a_key.cmp(b_key)));
        ranked.truncate(CANDIDATES);
        Ok(ranked)
    }

    /// The book's index terms and ToC, from the cache while its content hash is unchanged
    /// (and for [`FACTS_TTL`] at most); `keep` false reads them past the cache.
    async fn book_facts(
        &self,
        book_id: &str,
        content_hash: Option<String>,
        keep: bool,
    ) -> anyhow::Result<Arc<BookFacts>> {
        if keep
            && let Ok(cache) = self.facts.lock()
            && let Some(terms) = cache.get(book_id)
            && terms.content_hash == content_hash
            && terms.loaded.elapsed() < FACTS_TTL
        {
            return Ok(terms.clone());
        }
        let mut by_key: HashMap<String, Vec<BoostTerm>> = HashMap::new();
        for (entry, locators) in self.catalog.index_entries(book_id).await? {
            let pages: Vec<[u32; 2]> = locators
                .iter()
                .filter_map(|l| Some([u32::try_from(l.first_page).ok()?, u32::try_from(l.last_page).ok()?]))
                .collect();
            if pages.is_empty() {
                continue;
            }
            let specificity = 1.0 / (1.0 + (pages.len() as f64).ln());
            let key = normalise_phrase(&entry.term);
            if key.is_empty() {
                continue;
            }
            by_key.entry(key).or_default().push(BoostTerm { pages, specificity });
        }
        let toc = outline::from_stored(&self.catalog.toc(book_id).await?);
        let facts = Arc::new(BookFacts {
            content_hash,
            loaded: Instant::now(),
            by_key,
            toc,
        });
        if keep && let Ok(mut cached) = self.facts.lock() {
            cached.insert(book_id.to_owned(), facts.clone());
        }
        Ok(facts)
    }
}

#[derive(Default)]
struct Candidate {
    fused: f64,
    scores: HitScores,
    /// The full-text index's hit, for its snippet.
    keyword_hit: Option<crate::text_index::PageHit>,
    chunk_id: Option<String>,
    chunk_text: Option<String>,
}

/// Words that never name an index entry on their own.
const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from", "how", "i", "if", "in",
    "into", "is", "it", "of", "on", "or", "the", "this", "to", "use", "using", "what", "when", "which", "with", "der",
    "die", "das", "und", "ein", "eine", "mit", "von", "zu", "im", "in",
];

/// Term text folded for matching: `term_key` folding, letters and digits only, a plural
/// `s` dropped from each word (so "vectors" names the entry "vector").
fn normalise_phrase(text: &str) -> String {
    let key = term_key(text);
    key.split(|c: char| !(c.is_alphanumeric() || matches!(c, '+' | '#' | '.' | '_' | '-')))
        .map(|word| word.trim_matches(['.', '-']))
        .filter(|word| !word.is_empty())
        .map(singular)
        .collect::<Vec<_>>()
        .join(" ")
}

fn singular(word: &str) -> &str {
    if word.len() > 3 && word.ends_with('s') && !word.ends_with("ss") {
        &word[..word.len() - 1]
    } else {
        word
    }
}

/// Every run of 1 to 4 consecutive query words, normalised, with its word count; single
/// stop words and one-letter words are left out.
fn query_phrases(query: &str) -> Vec<(String, usize)> {
    let normalised = normalise_phrase(query);
    let words: Vec<&str> = normalised.split(' ').filter(|w| !w.is_empty()).take(32).collect();
    let mut phrases = Vec::new();
    let mut seen = HashSet::new();
    for n in 1..=4.min(words.len()) {
        for window in words.windows(n) {
            if n == 1 && (window[0].chars().count() < 2 || STOP_WORDS.contains(&window[0])) {
                continue;
            }
            let phrase = window.join(" ");
            if seen.insert(phrase.clone()) {
                phrases.push((phrase, n));
            }
        }
    }
    phrases
}

/// About 240 characters of `text` around the first query word found, HTML-escaped, query
/// words in `<b>..</b>`.
pub fn highlight_excerpt(text: &str, query: &str) -> String {
    let words: Vec<String> = query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 2)
        .map(str::to_lowercase)
        .collect();
    let tokens: Vec<&str> = text.split_whitespace().collect();
    let is_match = |token: &str| {
        let bare: String = token
            .chars()
            .filter(|c| c.is_alphanumeric())
            .collect::<String>()
            .to_lowercase();
        !bare.is_empty()
            && words
                .iter()
                .any(|w| bare == *w || (bare.len() > 3 && bare.starts_with(w.as_str())))
    };
    let first = tokens.iter().position(|t| is_match(t)).unwrap_or(0);
    let start = first.saturating_sub(12);
    let mut html = String::new();
    let mut length = 0;
    if start > 0 {
        html.push('…');
    }
    for token in &tokens[start..] {
        if length > 240 {
            html.push('…');
            break;
        }
        if !html.is_empty() && !html.ends_with('…') {
            html.push(' ');
        }
        let escaped = escape_html(token);
        if is_match(token) {
            html.push_str("<b>");
            html.push_str(&escaped);
            html.push_str("</b>");
        } else {
            html.push_str(&escaped);
        }
        length += token.len() + 1;
    }
    html
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Semantic search over stored chunk vectors: the query embedded by the same model.
pub struct VectorSemantic {
    embedder: Arc<dyn crate::embeddings::Embedder>,
    vectors: Arc<dyn crate::vectors::VectorIndex>,
}

impl VectorSemantic {
    pub fn new(embedder: Arc<dyn crate::embeddings::Embedder>, vectors: Arc<dyn crate::vectors::VectorIndex>) -> Self {
        Self { embedder, vectors }
    }
}

#[async_trait]
impl SemanticSearch for VectorSemantic {
    fn model(&self) -> &str {
        self.embedder.model()
    }

    async fn nearest_chunks(&self, query: &str, k: usize, books: &BookFilter) -> anyhow::Result<Vec<(String, f64)>> {
        let Some(vector) = self.embedder.embed(&[query.to_owned()]).await?.pop() else {
            anyhow::bail!("the embedding model returned no vector for the query");
        };
        let hits = self.vectors.search(self.embedder.model(), &vector, k, books).await?;
        Ok(hits
            .into_iter()
            .map(|hit| (hit.chunk_id, f64::from(hit.similarity)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_phrases_name_index_entries() {
        let phrases: Vec<String> = query_phrases("How to plot Histograms of data frames?")
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert!(phrases.contains(&"histogram".to_owned()), "{phrases:?}");
        assert!(phrases.contains(&"data frame".to_owned()), "{phrases:?}");
        assert!(!phrases.contains(&"to".to_owned()), "{phrases:?}");
        assert_eq!(normalise_phrase("Data Frames"), "data frame");
        assert_eq!(normalise_phrase("class"), "class");
        assert!(
            query_phrases("\"; DROP TABLE books; --")
                .iter()
                .all(|(p, _)| !p.contains(';'))
        );
        assert!(query_phrases("   ").is_empty());
    }

    #[test]
    fn a_single_mode_weighs_its_own_list_one() {
        let knobs = FusionWeights {
            keyword: 2.0,
            semantic: 0.5,
            index_boost: 0.25,
            rrf_k: 60.0,
        };
        assert_eq!(knobs.for_mode(SearchMode::Hybrid), knobs);
        let keyword = knobs.for_mode(SearchMode::Keyword);
        assert_eq!(
            (keyword.keyword, keyword.semantic, keyword.index_boost),
            (1.0, 0.0, 0.25)
        );
        let semantic = knobs.for_mode(SearchMode::Semantic);
        assert_eq!(
            (semantic.keyword, semantic.semantic, semantic.index_boost),
            (0.0, 1.0, 0.25)
        );
    }

    #[test]
    fn excerpts_escape_and_highlight() {
        let html = highlight_excerpt("a <b>tag</b> and the Vector class & more", "vector");
        assert!(html.contains("<b>Vector</b>"), "{html}");
        assert!(html.contains("&lt;b&gt;tag&lt;/b&gt;"), "{html}");
        assert!(html.contains("&amp;"), "{html}");
    }
}
