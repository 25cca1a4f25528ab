//! Answers to questions about the books (POST /query), independent of HTTP. The flow keeps the
//! original HBI's contract:
//!
//! 1. the question passes the prompt-injection sanitiser ([`crate::sanitize`]);
//! 2. `top_k` chunks are retrieved ([`Retriever`]); those scoring at least
//!    `relevance_threshold` count as relevant;
//! 3. retrieval gate: fewer than `min_chunks` relevant chunks give the fallback message and
//!    the language model is not asked;
//! 4. the prompt holds the question and the relevant chunks, each sanitised and labelled with
//!    its chunk id and pages, at most `max_context_length` characters of book text in all;
//! 5. the model answers JSON `{answer_summary, claims: [{text, source_chunk_id}],
//!    confidence_score}`; a reply that is not such JSON gives the fallback message (never an
//!    error);
//! 6. claims citing a chunk that was not in the prompt are dropped (and logged); each kept
//!    claim gets the page of its chunk;
//! 7. confidence gate: below `confidence_threshold`, or with no claim left, the answer is
//!    withheld and the fallback message given (with the reason and the confidence).
//!
//! With `enable_fallback` off, the gates of steps 3 and 7 no longer withhold anything: the
//! model is asked whenever one relevant chunk was found, and its answer returned whatever its
//! confidence. A question no chunk matches, and a reply that cannot be read, still give the
//! fallback message: there is no answer to return.

mod hybrid;
mod keyword;
mod prompt;
mod reranked;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;

pub use hybrid::HybridChunkRetriever;
pub use keyword::KeywordChunkRetriever;
pub use reranked::RerankedRetriever;

use crate::domain::BookFilter;
use crate::knobs::Knobs;
use crate::llm::{ChatModel, LlmError, complete_traced};
use crate::sanitize::{self, MARKER};

/// One retrieved passage of a book.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrievedChunk {
    /// `<book_id>:<position>`, as stored in the `chunks` table.
    pub chunk_id: String,
    pub book_id: String,
    pub text: String,
    /// Physical pages, 1-based, inclusive.
    pub first_page: u32,
    pub last_page: u32,
    /// The printed page label(s): `12` or `12–13`.
    pub page_label: String,
    pub section_path: Vec<String>,
    /// Relevance, normalised to 0..=1 (1 is best): compared with the `relevance_threshold` knob.
    pub score: f64,
}

#[async_trait]
pub trait Retriever: Send + Sync {
    /// At most `top_k` chunks for `query`, best first, each once, from the books `books` allows.
    async fn retrieve(&self, query: &str, books: &BookFilter, top_k: usize) -> anyhow::Result<Vec<RetrievedChunk>>;
}

/// A question.
#[derive(Debug, Clone, PartialEq)]
pub struct Question {
    pub query: String,
    /// The books passages may come from.
    pub books: BookFilter,
    /// Overrides the `retrieval_top_k` knob.
    pub top_k: Option<usize>,
}

/// One statement of the answer and the chunk that supports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    pub text: String,
    pub source_chunk_id: String,
    /// The physical page of the chunk (its first page).
    pub page_number: u32,
    /// The printed label(s) of the chunk's pages.
    pub page_label: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub answer_summary: String,
    pub claims: Vec<Claim>,
    /// The model's own confidence, 0..=1.
    pub confidence_score: f64,
}

/// Why the fallback message was given instead of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FallbackReason {
    /// Fewer relevant chunks than `min_chunks` (or none at all).
    TooFewChunks,
    /// The model's confidence is below `confidence_threshold`.
    LowConfidence,
    /// None of the model's claims cites a chunk it was given.
    UnsupportedAnswer,
    /// The model's reply is not the JSON asked for.
    UnreadableAnswer,
}

impl FallbackReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TooFewChunks => "too_few_chunks",
            Self::LowConfidence => "low_confidence",
            Self::UnsupportedAnswer => "unsupported_answer",
            Self::UnreadableAnswer => "unreadable_answer",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Self::TooFewChunks => {
                "I could not find enough relevant passages in the indexed books to answer this question. \
                 Try rephrasing it, naming the topic as the book does, or searching with /search."
            }
            Self::LowConfidence => {
                "I am not confident enough to answer this question from the indexed books. \
                 The passages found are listed in `retrieved`; try a more specific question."
            }
            Self::UnsupportedAnswer => {
                "The answer could not be traced back to the passages found, so it was withheld. \
                 The passages are listed in `retrieved`."
            }
            Self::UnreadableAnswer => "The language model's reply could not be read as an answer. Please try again.",
        }
    }
}

/// What POST /query returns.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub answer: Option<Answer>,
    pub fallback_message: Option<String>,
    pub fallback_reason: Option<FallbackReason>,
    /// The model's confidence when an answer was withheld for it.
    pub withheld_confidence: Option<f64>,
    /// The chunks retrieved, best first; `in_prompt` marks those the model saw.
    pub retrieved: Vec<(RetrievedChunk, bool)>,
    /// The model that answered, when one was asked.
    pub model: Option<String>,
    /// Claims dropped because they cited a chunk the model was not given.
    pub dropped_claims: usize,
    /// Whether the sanitiser neutralised something in the question.
    pub question_sanitised: bool,
}

impl Outcome {
    fn fallback(reason: FallbackReason, retrieved: Vec<(RetrievedChunk, bool)>) -> Self {
        Self {
            answer: None,
            fallback_message: Some(reason.message().to_owned()),
            fallback_reason: Some(reason),
            withheld_confidence: None,
            retrieved,
            model: None,
            dropped_claims: 0,
            question_sanitised: false,
        }
    }
}

/// Why no outcome could be made at all.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    #[error("retrieval failed: {0:#}")]
    Retrieval(anyhow::Error),
    #[error(transparent)]
    Llm(#[from] LlmError),
}

/// The /query flow over a retriever and a chat model.
pub struct Answerer {
    retriever: Arc<dyn Retriever>,
    model: Arc<dyn ChatModel>,
}

impl Answerer {
    pub fn new(retriever: Arc<dyn Retriever>, model: Arc<dyn ChatModel>) -> Self {
        Self { retriever, model }
    }

    pub async fn answer(&self, knobs: &Knobs, question: &Question) -> Result<Outcome, AnswerError> {
        let sanitised = sanitize::sanitise(&question.query);
        if sanitised.changed() {
            tracing::warn!(
                removed = %sanitised.summary(),
                "the sanitiser changed the question"
            );
        }
        // The marker is not something to search for.
        let search_text = sanitised.text.replace(MARKER, " ");
        let top_k = question.top_k.unwrap_or(knobs.retrieval_top_k as usize).max(1);
        let retrieved = self
            .retriever
            .retrieve(&search_text, &question.books, top_k)
            .await
            .map_err(AnswerError::Retrieval)?;
        let relevant: Vec<RetrievedChunk> = retrieved
            .iter()
            .filter(|chunk| chunk.score >= knobs.relevance_threshold)
            .cloned()
            .collect();
        // A request's smaller top_k lowers the gate with it, or it could never pass.
        let min_chunks = (knobs.min_chunks as usize).min(top_k);
        let gate_closed = relevant.len() < min_chunks && knobs.enable_fallback;
        if relevant.is_empty() || gate_closed {
            tracing::info!(
                retrieved = retrieved.len(),
                relevant = relevant.len(),
                min_chunks,
                "too few relevant chunks; the language model is not asked"
            );
            let listed = retrieved.into_iter().map(|chunk| (chunk, false)).collect();
            let mut outcome = Outcome::fallback(FallbackReason::TooFewChunks, listed);
            outcome.question_sanitised = sanitised.neutralised_instructions();
            return Ok(outcome);
        }

        let built = prompt::build(&sanitised.text, &relevant, knobs.max_context_length as usize);
        let completion = complete_traced(self.model.as_ref(), &built.messages, knobs.temperature, true).await?;
        let in_prompt: HashMap<&str, &RetrievedChunk> = built
            .chunk_ids
            .iter()
            .filter_map(|id| relevant.iter().find(|chunk| &chunk.chunk_id == id))
            .map(|chunk| (chunk.chunk_id.as_str(), chunk))
            .collect();
        let listed: Vec<(RetrievedChunk, bool)> = retrieved
            .iter()
            .map(|chunk| (chunk.clone(), in_prompt.contains_key(chunk.chunk_id.as_str())))
            .collect();

        let Some(reply) = prompt::parse_reply(&completion.text) else {
            tracing::warn!(
                reply_chars = completion.text.chars().count(),
                "the language model's reply is not the JSON asked for"
            );
            let mut outcome = Outcome::fallback(FallbackReason::UnreadableAnswer, listed);
            outcome.model = Some(completion.model);
            outcome.question_sanitised = sanitised.neutralised_instructions();
            return Ok(outcome);
        };

        let cited = reply.claims.len();
        let mut claims = Vec::new();
        for claim in reply.claims {
            match in_prompt.get(claim.source_chunk_id.as_str()) {
                Some(chunk) => claims.push(Claim {
                    text: claim.text,
                    page_number: chunk.first_page,
                    page_label: chunk.page_label.clone(),
                    source_chunk_id: claim.source_chunk_id,
                }),
                None => tracing::warn!(
                    source_chunk_id = %claim.source_chunk_id,
                    "dropped a claim citing a chunk the model was not given"
                ),
            }
        }
        let dropped_claims = cited - claims.len();
        let answer = Answer {
            answer_summary: reply.answer_summary,
            claims,
            confidence_score: reply.confidence_score,
        };
        let reason = if answer.claims.is_empty() {
            Some(FallbackReason::UnsupportedAnswer)
        } else if answer.confidence_score < knobs.confidence_threshold {
            Some(FallbackReason::LowConfidence)
        } else {
            None
        };
        tracing::info!(
            claims = answer.claims.len(),
            dropped_claims,
            confidence = answer.confidence_score,
            withheld = reason.map(FallbackReason::as_str),
            "answer made"
        );
        let mut outcome = match reason.filter(|_| knobs.enable_fallback) {
            Some(reason) => {
                let mut outcome = Outcome::fallback(reason, listed);
                outcome.withheld_confidence = Some(answer.confidence_score);
                outcome
            }
            None => Outcome {
                answer: Some(answer),
                fallback_message: None,
                fallback_reason: None,
                withheld_confidence: None,
                retrieved: listed,
                model: None,
                dropped_claims: 0,
                question_sanitised: false,
            },
        };
        outcome.model = Some(completion.model);
        outcome.dropped_claims = dropped_claims;
        outcome.question_sanitised = sanitised.neutralised_instructions();
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests;
