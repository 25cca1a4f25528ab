//! GET /search (keyword, semantic, hybrid, with the index-term boost) and GET /terms (an
//! index term across every book, through the graph).

use hbi_shared::access::Principal;
use hbi_shared::domain::BookId;
use hbi_shared::library::{MAX_TERM_RESULTS, PageQuery, TermQuery};
use hbi_shared::search::SearchMode;
use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{Enum, Object, OpenApi};

use super::ApiTags;
use crate::AppState;
use crate::error::{ApiError, status};

pub struct SearchApi;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum Mode {
    /// Full-text: BM25 (SQLite FTS5) or ts_rank (PostgreSQL)
    Keyword,
    /// Nearest chunks by cosine similarity of their embeddings
    Semantic,
    /// Reciprocal rank fusion of keyword and semantic
    Hybrid,
}

impl From<Mode> for SearchMode {
    fn from(mode: Mode) -> Self {
        match mode {
            Mode::Keyword => SearchMode::Keyword,
            Mode::Semantic => SearchMode::Semantic,
            Mode::Hybrid => SearchMode::Hybrid,
        }
    }
}

/// Each ranked list's own score for the hit (absent when the hit is not in that list).
#[derive(Debug, Clone, Object)]
pub struct Scores {
    #[oai(nullable)]
    pub keyword: Option<f64>,
    #[oai(nullable)]
    pub semantic: Option<f64>,
    /// Index-term boost: the page is listed by a printed index entry the query names.
    #[oai(nullable)]
    pub boost: Option<f64>,
    /// The reranker's relevance score (when `reranker.url` is set and the page was among the
    /// `rerank_candidates` best): the reranked pages come first, in its order.
    #[oai(nullable)]
    pub rerank: Option<f64>,
}

#[derive(Debug, Clone, Object)]
pub struct SearchResult {
    pub book_id: String,
    /// 1-based physical page.
    pub page: u32,
    /// The page number printed on the page.
    pub page_label: String,
    /// ToC titles from the chapter down to the section.
    pub section_path: Vec<String>,
    /// HTML-escaped text around the match, matches in `<b>..</b>`.
    pub snippet: String,
    /// The fused score (reciprocal rank fusion of the lists): higher is better, comparable
    /// within one search; a reranked search orders by `scores.rerank` first.
    pub score: f64,
    pub scores: Scores,
    /// The chunk the semantic list found on the page.
    #[oai(nullable)]
    pub chunk_id: Option<String>,
}

#[derive(Debug, Clone, Object)]
pub struct SearchResults {
    pub query: String,
    pub mode: Mode,
    pub results: Vec<SearchResult>,
}

#[derive(Debug, Clone, Object)]
pub struct TermOccurrence {
    pub book_id: String,
    #[oai(nullable)]
    pub book_title: Option<String>,
    /// The entry as printed, e.g. `vectors`.
    pub term: String,
    /// The entry's path, top-level term first (a sub-entry has two or more).
    pub path: Vec<String>,
    /// Physical page ranges the index lists, 1-based and inclusive.
    pub pages: Vec<Vec<u32>>,
    /// The printed labels of each range's first and last page (`["xii", "xiv"]`).
    pub page_labels: Vec<Vec<String>>,
    /// How it matched: `exact`, `qualified`, `words`, `prefix`, `initials` or `fuzzy`.
    pub matched: String,
}

#[derive(Debug, Clone, Object)]
pub struct TermResults {
    pub query: String,
    pub results: Vec<TermOccurrence>,
}

/// The optional `book_id` query parameter: a malformed one is a 400, unlike a well-formed id
/// of a book the key may not read (no results).
fn book_id_param(raw: Option<&str>) -> Result<Option<BookId>, &'static str> {
    raw.map(|raw| raw.parse::<BookId>().map_err(|_| "book_id is not a valid id"))
        .transpose()
}

fn default_term_limit() -> u32 {
    20
}

fn default_k() -> u32 {
    10
}

fn default_mode() -> Mode {
    Mode::Hybrid
}

fn default_boost() -> bool {
    true
}

#[OpenApi]
impl SearchApi {
    /// Search the books' pages
    ///
    /// Any text is a valid query: quotes, operators and SQL fragments are read as words.
    #[oai(path = "/search", method = "get", tag = "ApiTags::Search", operation_id = "search")]
    #[allow(clippy::too_many_arguments)] // one argument per documented query parameter
    async fn search(
        &self,
        state: Data<&AppState>,
        caller: Data<&Principal>,
        /// What to look for.
        #[oai(validator(min_length = 1, max_length = 1000))]
        q: Query<String>,
        /// keyword, semantic or hybrid (default).
        #[oai(default = "default_mode")]
        mode: Query<Mode>,
        /// Only this book (a book the key may not read gives no results).
        book_id: Query<Option<String>>,
        /// Only pages in a section whose title contains this text.
        #[oai(validator(max_length = 500))]
        section: Query<Option<String>>,
        /// How many pages to return (1 to 100).
        #[oai(default = "default_k", validator(minimum(value = "1"), maximum(value = "100")))]
        k: Query<u32>,
        /// Let pages listed by a matching printed-index entry rank higher (default true).
        #[oai(default = "default_boost")]
        boost: Query<bool>,
    ) -> Result<Json<SearchResults>, ApiError<{ status::BAD_REQUEST | status::UNAVAILABLE }>> {
        let book_id = book_id_param(book_id.0.as_deref()).map_err(ApiError::bad_request)?;
        let query = PageQuery {
            text: q.0.clone(),
            mode: mode.0.into(),
            book_id,
            section: section.0,
            k: usize::try_from(k.0).unwrap_or(10),
            index_boost: boost.0,
        };
        let hits = state.library.search(&caller, query).await?;
        Ok(Json(SearchResults {
            query: q.0,
            mode: mode.0,
            results: hits
                .into_iter()
                .map(|hit| SearchResult {
                    book_id: hit.book_id,
                    page: hit.page,
                    page_label: hit.page_label,
                    section_path: hit.section_path,
                    snippet: hit.snippet,
                    score: hit.score,
                    scores: Scores {
                        keyword: hit.scores.keyword,
                        semantic: hit.scores.semantic,
                        boost: hit.scores.boost,
                        rerank: hit.scores.rerank,
                    },
                    chunk_id: hit.chunk_id,
                })
                .collect(),
        }))
    }

    /// Find an index term across the books this key may read
    ///
    /// By its words, a prefix or a package-qualified name, ranked: the whole term first
    /// (`matched: exact`), then the name after a qualifier (`qualified`: `gc` finds
    /// `sb-ext:gc`), every word of the query (`words`), a prefix (`prefix`), the term's
    /// initials (`initials`: `gc` finds "garbage collection"), then words a letter or two
    /// apart (`fuzzy`); shorter terms first within each. Only books this key may read.
    #[oai(path = "/terms", method = "get", tag = "ApiTags::Search", operation_id = "terms")]
    async fn terms(
        &self,
        state: Data<&AppState>,
        caller: Data<&Principal>,
        /// The term, e.g. `vector`, `garbage coll`, `gc`.
        #[oai(validator(min_length = 1, max_length = 500))]
        q: Query<String>,
        /// Only this book (a book the key may not read gives no results).
        book_id: Query<Option<String>>,
        /// How many entries to return (1 to 100).
        #[oai(
            default = "default_term_limit",
            validator(minimum(value = "1"), maximum(value = "100"))
        )]
        limit: Query<u32>,
    ) -> Result<Json<TermResults>, ApiError<{ status::BAD_REQUEST }>> {
        let book_id = book_id_param(book_id.0.as_deref()).map_err(ApiError::bad_request)?;
        let found = state
            .library
            .find_terms(
                &caller,
                TermQuery {
                    text: q.0.clone(),
                    book_id,
                    limit: usize::try_from(limit.0).unwrap_or(MAX_TERM_RESULTS),
                },
            )
            .await?;
        let results = found
            .into_iter()
            .map(|found| TermOccurrence {
                book_id: found.hit.book_id,
                book_title: found.book_title,
                term: found.hit.term,
                path: found.hit.path,
                pages: found.hit.pages.iter().map(|range| range.to_vec()).collect(),
                page_labels: found.page_labels.iter().map(|ends| ends.to_vec()).collect(),
                matched: found.matched.as_str().to_owned(),
            })
            .collect();
        Ok(Json(TermResults { query: q.0, results }))
    }
}
