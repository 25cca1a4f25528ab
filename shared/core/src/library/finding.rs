//! Finding things across books: pages by keyword, meaning or both, an index term in every
//! book, and questions answered from the books with cited pages.

use std::collections::HashMap;
use std::time::Instant;

use super::{Library, LibraryError, LibraryResult};
use crate::answer::{AnswerError, Answerer, Outcome, Question};
use crate::domain::BookId;
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
    pub async fn search(&self, query: PageQuery) -> LibraryResult<Vec<SearchHit>> {
        let knobs = self.stores.knobs.get().await?;
        let request = SearchRequest {
            query: query.text,
            mode: query.mode,
            book_id: query.book_id.map(|id| id.as_str().to_owned()),
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

    /// The index entries of every book matching `term` by their normalised text: exact
    /// matches first, then entries that start with it.
    pub async fn find_term(&self, term: &str) -> LibraryResult<Vec<TermFound>> {
        let hits = self.stores.graph.books_for_term(term).await?;
        let mut titles: HashMap<String, Option<String>> = HashMap::new();
        let mut found = Vec::with_capacity(hits.len());
        for hit in hits {
            if !titles.contains_key(&hit.book_id) {
                let title = self.stores.catalog.book(&hit.book_id).await?.map(|b| b.title);
                titles.insert(hit.book_id.clone(), title);
            }
            let ends: Vec<u32> = hit.pages.iter().flatten().copied().collect();
            let labels = self.stores.catalog.page_labels_of(&hit.book_id, &ends).await?;
            let label = |page: u32| labels.get(&page).cloned().unwrap_or_else(|| page.to_string());
            found.push(TermFound {
                book_title: titles.get(&hit.book_id).cloned().flatten(),
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

    /// Answers a question from the retrieved chunks, each claim with its page.
    pub async fn ask(&self, ask: Ask) -> LibraryResult<Outcome> {
        if ask.question.trim().is_empty() {
            return Err(LibraryError::Invalid {
                field: "query",
                reason: "must not be blank".to_owned(),
            });
        }
        let Some(model) = self.stores.llm.clone() else {
            return Err(LibraryError::Unavailable(NO_LLM.to_owned()));
        };
        if let Some(id) = &ask.book_id {
            self.book(id).await?;
        }
        let knobs = self.stores.knobs.get().await?;
        let question = Question {
            query: ask.question,
            book_id: ask.book_id.map(|id| id.as_str().to_owned()),
            top_k: ask.top_k,
        };
        let answerer = Answerer::new(self.stores.retriever.clone(), model);
        answerer.answer(&knobs, &question).await.map_err(|err| match err {
            AnswerError::Retrieval(err) => LibraryError::Internal(err),
            AnswerError::Llm(err @ LlmError::Timeout(_)) => LibraryError::ModelTimedOut(err.to_string()),
            AnswerError::Llm(err) => LibraryError::ModelFailed(err.to_string()),
        })
    }
}
