//! Finding things across books: pages by keyword, meaning or both, an index term in every
//! book, and questions answered from the books with cited pages.

use std::collections::HashMap;
use std::time::Instant;

use super::{Library, LibraryError, LibraryResult};
use crate::access::Principal;
use crate::answer::{AnswerError, Answerer, Outcome, Question};
use crate::db::entities::index_entry;
use crate::domain::{BookFilter, BookId};
use crate::graph::{TermHit, TermMatch, match_term, term_key, term_words};
use crate::llm::LlmError;
use crate::search::{FusionWeights, SearchError, SearchHit, SearchMode, SearchRequest};

/// Said when a question comes and no language model is configured.
pub const NO_LLM: &str = "no language model is configured: set llm.base_url (HBI__LLM__BASE_URL or \
OPENAI_BASE_URL, e.g. http://localhost:11434/v1 for Ollama) and llm.model (LLM_MODEL), or \
OPENAI_API_KEY for OpenAI; /search and the book endpoints work without one";

/// Said when semantic or hybrid search is asked for and there is no embedding model.
pub const NO_EMBEDDER: &str = "semantic and hybrid search need an embedding model; none is configured (see the [embeddings] settings). Keyword search works: mode=keyword";

/// A page search as a reader asks it; the fusion weights are the live knobs.
#[derive(Debug, Clone)]
pub struct PageQuery {
    pub text: String,
    pub mode: SearchMode,
    pub book_id: Option<BookId>,
    /// Only pages in a section whose title contains this text.
    pub section: Option<String>,
    pub k: usize,
    /// Let pages listed by a matching printed-index entry rank higher.
    pub index_boost: bool,
}

/// How many index entries a term search reads before it ranks them.
const TERM_CANDIDATES: u64 = 5000;

/// The most results a term search gives.
pub const MAX_TERM_RESULTS: usize = 100;

/// A search for an index term, as a reader asks it.
#[derive(Debug, Clone)]
pub struct TermQuery {
    pub text: String,
    /// Only this book (one the caller may not read gives nothing).
    pub book_id: Option<BookId>,
    pub limit: usize,
}

/// An index term found in a book.
#[derive(Debug, Clone)]
pub struct TermFound {
    pub hit: TermHit,
    /// How it matched the query.
    pub matched: TermMatch,
    pub book_title: Option<String>,
    /// The printed labels of each of `hit.pages`' ends, `[first, last]`.
    pub page_labels: Vec<[String; 2]>,
}

/// A question as a reader asks it.
#[derive(Debug, Clone)]
pub struct Ask {
    pub question: String,
    pub book_id: Option<BookId>,
    /// Overrides the `retrieval_top_k` knob.
    pub top_k: Option<usize>,
}

impl Library {
    /// Pages of the books `who` may read (of one book if asked: a book it may not read
    /// gives no hits, as a book that does not exist).
    pub async fn search(&self, who: &Principal, query: PageQuery) -> LibraryResult<Vec<SearchHit>> {
        let books = self.searchable_by(who, query.book_id.as_ref()).await?;
        let knobs = self.stores.knobs.get().await?;
        let request = SearchRequest {
            query: query.text,
            mode: query.mode,
            books,
            section: query.section.filter(|s| !s.trim().is_empty()),
            k: query.k,
            index_boost: query.index_boost,
            weights: FusionWeights::from_knobs(&knobs),
            rerank_candidates: knobs.rerank_candidates as usize,
        };
        let started = Instant::now();
        let outcome = self.stores.searcher.search(&request).await;
        let seconds = started.elapsed().as_secs_f64();
        crate::metrics::search_duration(request.mode.as_str(), seconds);
        tracing::info!(mode = request.mode.as_str(), seconds, "search");
        outcome.map_err(|err| match err {
            SearchError::SemanticUnavailable => LibraryError::Unavailable(NO_EMBEDDER.to_owned()),
            SearchError::Backend(err) => LibraryError::Internal(err),
        })
    }

    /// The index entries of the books `who` may read (of one book if asked) that match
    /// `query.text`, best first: the whole term, then a package-qualified name, the query's
    /// words, a prefix, the term's initials, then words a letter or two apart (see
    /// [`TermMatch`]); shorter terms first within each. At most `query.limit`.
    pub async fn find_terms(&self, who: &Principal, query: TermQuery) -> LibraryResult<Vec<TermFound>> {
        let key = term_key(&query.text);
        if key.is_empty() {
            return Ok(Vec::new());
        }
        let words = term_words(&query.text);
        let (book, libraries) = match &query.book_id {
            Some(id) => match self.book(who, id).await {
                Ok(book) => (Some(book.id), None),
                Err(LibraryError::BookNotFound) => return Ok(Vec::new()),
                Err(err) => return Err(err),
            },
            None => (None, who.readable_libraries()),
        };
        let mut patterns = Vec::new();
        // Initials: "g% c%" finds "garbage collection" for "gc".
        if let [word] = words.as_slice()
            && (2..=6).contains(&word.chars().count())
        {
            let letters: Vec<String> = word.chars().map(|letter| format!("{letter}%")).collect();
            patterns.push(letters.join(" "));
        }
        // Near misses share a word's first two letters.
        for word in words.iter().filter(|word| word.chars().count() >= 4) {
            let start: String = word.chars().take(2).collect();
            patterns.push(format!("{start}%"));
            patterns.push(format!("% {start}%"));
        }
        let candidates = self
            .stores
            .catalog
            .index_entries_like(
                book.as_deref(),
                libraries.as_deref(),
                // The whole query too: a term without letters (`&`, `%o%`) is found as written.
                &[std::slice::from_ref(&key), words.as_slice()].concat(),
                &patterns,
                TERM_CANDIDATES,
            )
            .await?;
        // Edit distances over thousands of candidates: off the async threads.
        let text = query.text.clone();
        let limit = query.limit.clamp(1, MAX_TERM_RESULTS);
        let ranked = tokio::task::spawn_blocking(move || rank_terms(&text, candidates, limit))
            .await
            .map_err(|err| LibraryError::Internal(err.into()))?;
        let ids: Vec<i64> = ranked.iter().map(|(_, entry, _)| entry.id).collect();
        let mut locators = self.stores.catalog.locators_of(&ids).await?;
        let pages: Vec<Vec<[u32; 2]>> = ranked
            .iter()
            .map(|(_, entry, _)| locators.remove(&entry.id).unwrap_or_default())
            .collect();
        // One title and one set of page labels per book, for all of its entries.
        let mut ends_by_book: HashMap<&str, Vec<u32>> = HashMap::new();
        for ((_, entry, _), ranges) in ranked.iter().zip(&pages) {
            ends_by_book
                .entry(entry.book_id.as_str())
                .or_default()
                .extend(ranges.iter().flatten().copied());
        }
        let mut books: HashMap<String, (Option<String>, HashMap<u32, String>)> = HashMap::new();
        for (book_id, ends) in ends_by_book {
            let title = self.stores.catalog.book(book_id).await?.map(|book| book.title);
            let labels = self.stores.catalog.page_labels_of(book_id, &ends).await?;
            books.insert(book_id.to_owned(), (title, labels));
        }
        let no_labels = HashMap::new();
        let mut found = Vec::with_capacity(ranked.len());
        for ((matched, entry, path), pages) in ranked.into_iter().zip(pages) {
            let (title, labels) = books
                .get(&entry.book_id)
                .map_or((None, &no_labels), |(title, labels)| (title.clone(), labels));
            let label = |page: u32| labels.get(&page).cloned().unwrap_or_else(|| page.to_string());
            found.push(TermFound {
                book_title: title,
                page_labels: pages.iter().map(|&[first, last]| [label(first), label(last)]).collect(),
                matched,
                hit: TermHit {
                    book_id: entry.book_id,
                    term: entry.term,
                    path,
                    pages,
                },
            });
        }
        Ok(found)
    }

    /// Answers a question from the chunks of the books `who` may read, each claim with its
    /// page.
    pub async fn ask(&self, who: &Principal, ask: Ask) -> LibraryResult<Outcome> {
        if ask.question.trim().is_empty() {
            return Err(LibraryError::Invalid {
                field: "query",
                reason: "must not be blank".to_owned(),
            });
        }
        // The book first: one the caller may not read is not found, whatever else is missing.
        let books = match &ask.book_id {
            Some(id) => BookFilter::one(self.book(who, id).await?.id.as_str()),
            None => self.readable_books(who).await?,
        };
        let Some(model) = self.stores.llm.clone() else {
            return Err(LibraryError::Unavailable(NO_LLM.to_owned()));
        };
        let knobs = self.stores.knobs.get().await?;
        let question = Question {
            query: ask.question,
            books,
            top_k: ask.top_k,
        };
        let answerer = Answerer::new(self.stores.retriever.clone(), model);
        answerer.answer(&knobs, &question).await.map_err(|err| match err {
            AnswerError::Retrieval(err) => LibraryError::Internal(err),
            AnswerError::Llm(err @ LlmError::Timeout(_)) => LibraryError::ModelTimedOut(err.to_string()),
            AnswerError::Llm(err) => LibraryError::ModelFailed(err.to_string()),
        })
    }

    /// The books a search by `who` may find hits in: `book` alone when it may read it (no
    /// book at all when not), else every book it may read.
    async fn searchable_by(&self, who: &Principal, book: Option<&BookId>) -> LibraryResult<BookFilter> {
        let Some(book) = book else {
            return self.readable_books(who).await;
        };
        if who.readable_libraries().is_none() {
            return Ok(BookFilter::one(book.as_str()));
        }
        Ok(match self.book(who, book).await {
            Ok(book) => BookFilter::one(&book.id),
            Err(LibraryError::BookNotFound) => BookFilter::among([]),
            Err(err) => return Err(err),
        })
    }
}

/// The `limit` best of `candidates` for a term search for `text`: by how they match
/// ([`match_term`]), shorter terms first, then by book and position; those that do not
/// match are left out. Each with its path.
fn rank_terms(
    text: &str,
    candidates: Vec<index_entry::Model>,
    limit: usize,
) -> Vec<(TermMatch, index_entry::Model, Vec<String>)> {
    let mut ranked: Vec<(TermMatch, usize, index_entry::Model, Vec<String>)> = candidates
        .into_iter()
        .filter_map(|entry| {
            let path: Vec<String> = serde_json::from_str(&entry.path).unwrap_or_else(|_| vec![entry.term.clone()]);
            let matched = match_term(text, &entry.term, &path)?;
            Some((matched, entry.term.chars().count(), entry, path))
        })
        .collect();
    ranked.sort_by(|a, b| (a.0, a.1, &a.2.book_id, a.2.position).cmp(&(b.0, b.1, &b.2.book_id, b.2.position)));
    ranked.truncate(limit);
    ranked
        .into_iter()
        .map(|(matched, _, entry, path)| (matched, entry, path))
        .collect()
}
