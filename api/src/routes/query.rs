//! POST /query: a question answered from the books, with the original HBI's contract
//! (`hbi_shared::answer` holds the flow).

use hbi_shared::LibraryError;
use hbi_shared::access::Principal;
use hbi_shared::answer::Outcome;
use hbi_shared::domain::BookId;
use hbi_shared::library::Ask;
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use super::ApiTags;
use crate::AppState;
use crate::error::{ApiError, status};

pub struct QueryApi;

#[derive(Debug, Object)]
pub struct QueryRequest {
    /// The question.
    #[oai(validator(min_length = 1, max_length = 4000))]
    pub query: String,
    /// Only this book (default: every book).
    #[oai(nullable)]
    pub book_id: Option<String>,
    /// How many chunks to retrieve (default: the `retrieval_top_k` knob).
    #[oai(nullable, validator(minimum(value = "1"), maximum(value = "100")))]
    pub top_k: Option<u32>,
}

/// One statement of the answer, with the chunk and page that support it.
#[derive(Debug, Object)]
pub struct ClaimView {
    pub text: String,
    /// A chunk of `retrieved` that the model was given (claims citing any other are dropped).
    pub source_chunk_id: String,
    /// 1-based physical page of the chunk (its first page).
    pub page_number: u32,
    /// The printed page label(s) of the chunk: `12` or `12–13`.
    pub page_label: String,
}

#[derive(Debug, Object)]
pub struct AnswerView {
    pub answer_summary: String,
    pub claims: Vec<ClaimView>,
    /// The model's confidence, 0..1; at least the `confidence_threshold` knob.
    pub confidence_score: f64,
}

/// A retrieved chunk.
#[derive(Debug, Object)]
pub struct RetrievedView {
    pub chunk_id: String,
    pub book_id: String,
    /// Physical pages, 1-based.
    pub first_page: u32,
    pub last_page: u32,
    /// Printed page label(s).
    pub page_label: String,
    pub section_path: Vec<String>,
    /// Relevance, 0..1; compared with the `relevance_threshold` knob.
    pub score: f64,
    /// Whether the chunk was in the prompt (and may be cited).
    pub in_prompt: bool,
    pub text: String,
}

#[derive(Debug, Object)]
pub struct QueryAnswer {
    /// The answer; null when the fallback message is given instead.
    #[oai(nullable)]
    pub answer: Option<AnswerView>,
    /// Why there is no answer, for the reader; null with an answer.
    #[oai(nullable)]
    pub fallback_message: Option<String>,
    /// `too_few_chunks`, `low_confidence`, `unsupported_answer` (no claim cites a given chunk)
    /// or `unreadable_answer`.
    #[oai(skip_serializing_if_is_none)]
    pub fallback_reason: Option<String>,
    /// The confidence of an answer withheld by the confidence gate.
    #[oai(skip_serializing_if_is_none)]
    pub withheld_confidence_score: Option<f64>,
    /// The chunks retrieved, best first.
    pub retrieved: Vec<RetrievedView>,
    /// The model that answered, when one was asked.
    #[oai(skip_serializing_if_is_none)]
    pub model: Option<String>,
    /// Claims dropped because they cited a chunk the model was not given.
    pub dropped_claims: u32,
}

impl From<Outcome> for QueryAnswer {
    fn from(outcome: Outcome) -> Self {
        Self {
            answer: outcome.answer.map(|answer| AnswerView {
                answer_summary: answer.answer_summary,
                claims: answer
                    .claims
                    .into_iter()
                    .map(|claim| ClaimView {
                        text: claim.text,
                        source_chunk_id: claim.source_chunk_id,
                        page_number: claim.page_number,
                        page_label: claim.page_label,
                    })
                    .collect(),
                confidence_score: answer.confidence_score,
            }),
            fallback_message: outcome.fallback_message,
            fallback_reason: outcome.fallback_reason.map(|reason| reason.as_str().to_owned()),
            withheld_confidence_score: outcome.withheld_confidence,
            retrieved: outcome
                .retrieved
                .into_iter()
                .map(|(chunk, in_prompt)| RetrievedView {
                    chunk_id: chunk.chunk_id,
                    book_id: chunk.book_id,
                    first_page: chunk.first_page,
                    last_page: chunk.last_page,
                    page_label: chunk.page_label,
                    section_path: chunk.section_path,
                    score: chunk.score,
                    in_prompt,
                    text: chunk.text,
                })
                .collect(),
            model: outcome.model,
            dropped_claims: u32::try_from(outcome.dropped_claims).unwrap_or(u32::MAX),
        }
    }
}

#[OpenApi]
impl QueryApi {
    /// Answer a question from the books
    ///
    /// Retrieves the chunks most relevant to the question, asks the language model for an
    /// answer whose claims cite them, and checks it: claims citing a chunk that was not
    /// retrieved are dropped, each claim gets its chunk's page. Too few relevant chunks (the
    /// `min_chunks` knob), a confidence below `confidence_threshold`, or a reply that cannot
    /// be read give `fallback_message` instead of `answer` (unless `enable_fallback` is off).
    /// The question and the book text pass a prompt-injection sanitiser first.
    #[oai(path = "/query", method = "post", tag = "ApiTags::Query", operation_id = "query")]
    async fn query(
        &self,
        state: Data<&AppState>,
        caller: Data<&Principal>,
        body: Json<QueryRequest>,
    ) -> Result<
        Json<QueryAnswer>,
        ApiError<
            {
                status::NOT_FOUND
                    | status::INVALID
                    | status::BAD_GATEWAY
                    | status::UNAVAILABLE
                    | status::GATEWAY_TIMEOUT
            },
        >,
    > {
        let book_id = match body.book_id.as_deref().map(str::trim).filter(|id| !id.is_empty()) {
            None => None,
            Some(raw) => Some(raw.parse::<BookId>().map_err(|_| LibraryError::BookNotFound)?),
        };
        let ask = Ask {
            question: body.0.query,
            book_id,
            top_k: body.0.top_k.map(|k| k as usize),
        };
        Ok(Json(state.library.ask(&caller, ask).await?.into()))
    }
}
