//! Finding things across books: pages by keyword, meaning or both, an index term in every
//! book, and questions answered from the books with cited pages.

use std::collections::HashMap;
use std::time::Instant;

use super::{Library, LibraryError, LibraryResult};
use crate::access::Principal;
use crate::answer::{AnswerError, Answerer, Outcome, Question};
use crate::domain::{BookFilter, BookId};
use crate::graph::TermHit;
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

/// An index term found in a book.
#[derive(Debug, Clone)]
pub struct TermFound {
    pub hit: TermHit,
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

    /// The index entries matching `term` by their normalised text in every book `who` may
    /// read (the graph's Term nodes are shared by all books): exact matches first, then
    /// entries that start with it.
    pub async fn find_term(&self, who: &Principal, term: &str) -> LibraryResult<Vec<TermFound>> {
        let hits = self.stores.graph.books_for_term(term).await?;
        // Book -> its title, when `who` may read it.
        let mut readable: HashMap<String, Option<String>> = HashMap::new();
        let mut found = Vec::with_capacity(hits.len());
        for hit in hits {
            if !readable.contains_key(&hit.book_id) {
                let title = self
                    .stores
                    .catalog
                    .book(&hit.book_id)
                    .await?
                    .filter(|book| who.scope_in(&book.library_id).is_some())
                    .map(|book| book.title);
                readable.insert(hit.book_id.clone(), title);
            }
            let Some(title) = readable.get(&hit.book_id).cloned().flatten() else {
                continue;
            };
            let ends: Vec<u32> = hit.pages.iter().flatten().copied().collect();
            let labels = self.stores.catalog.page_labels_of(&hit.book_id, &ends).await?;
            let label = |page: u32| labels.get(&page).cloned().unwrap_or_else(|| page.to_string());
            found.push(TermFound {
                book_title: Some(title),
                page_labels: hit
                    .pages
                    .iter()
                    .map(|&[first, last]| [label(first), label(last)])
                    .collect(),
                hit,
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
