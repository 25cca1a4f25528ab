//! GET/PUT /config: the live knobs of SPEC section 5, stored in the database and shared by
//! every replica (`hbi_shared::knobs`).

use std::borrow::Cow;

use hbi_shared::knobs::{KnobIssue, Knobs, KnobsUpdateError};
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, Type};
use poem_openapi::{Object, OpenApi};

use super::ApiTags;
use crate::AppState;
use crate::error::{ApiError, ValidationError, ValidationIssue, status};

pub struct ConfigApi;

/// Every live knob. Retrieval and answers: `retrieval_top_k`, `min_chunks`,
/// `confidence_threshold`, `relevance_threshold`, `max_context_length`, `temperature`,
/// `enable_fallback`; hybrid search: `keyword_weight`, `semantic_weight`,
/// `index_boost_weight`, `rrf_k`; quality gates: `min_text_coverage`, `max_garbage_ratio`,
/// `min_index_support_rate`.
#[derive(Debug, Object)]
#[oai(rename = "Config")]
pub struct ConfigView {
    /// Chunks retrieved for a question (1..100, default 10).
    pub retrieval_top_k: u32,
    /// Fewest relevant chunks before the language model is asked (1..retrieval_top_k, default 2).
    pub min_chunks: u32,
    /// Answers less confident than this give the fallback message (0..1, default 0.7).
    pub confidence_threshold: f64,
    /// Normalised score (0..1) from which a retrieved chunk counts as relevant (default 0.5).
    pub relevance_threshold: f64,
    /// Characters of retrieved book text put in the prompt (100..32000, default 4000).
    pub max_context_length: u32,
    /// Sampling temperature of the language model (0..2, default 0.1).
    pub temperature: f64,
    /// When false, the gates no longer withhold answers (default true).
    pub enable_fallback: bool,
    /// Share of the keyword ranking in hybrid search (0..10, default 1); keyword mode weighs it 1.
    pub keyword_weight: f64,
    /// Share of the semantic ranking in hybrid search (0..10, default 0.5); semantic mode weighs it 1.
    pub semantic_weight: f64,
    /// Weight of the back-of-book index-term boost, in every mode (0..10, default 0.25).
    pub index_boost_weight: f64,
    /// The k of reciprocal rank fusion (1..1000, default 60).
    pub rrf_k: u32,
    /// Quality gate: least share of pages with text (0..1, default 0.9).
    pub min_text_coverage: f64,
    /// Quality gate: highest share of garbage characters (0..1, default 0.02).
    pub max_garbage_ratio: f64,
    /// Quality gate: least share of index locators whose page shows the entry (0..1, default 0.8).
    pub min_index_support_rate: f64,
}

impl From<Knobs> for ConfigView {
    fn from(k: Knobs) -> Self {
        Self {
            retrieval_top_k: k.retrieval_top_k,
            min_chunks: k.min_chunks,
            confidence_threshold: k.confidence_threshold,
            relevance_threshold: k.relevance_threshold,
            max_context_length: k.max_context_length,
            temperature: k.temperature,
            enable_fallback: k.enable_fallback,
            keyword_weight: k.keyword_weight,
            semantic_weight: k.semantic_weight,
            index_boost_weight: k.index_boost_weight,
            rrf_k: k.rrf_k,
            min_text_coverage: k.min_text_coverage,
            max_garbage_ratio: k.max_garbage_ratio,
            min_index_support_rate: k.min_index_support_rate,
        }
    }
}

/// A partial update: only the knobs given change; the result is validated as a whole
/// (`min_chunks` at most `retrieval_top_k`). Unknown knobs are refused.
#[derive(Debug, Object)]
#[oai(rename = "ConfigUpdate", deny_unknown_fields)]
pub struct ConfigUpdate {
    #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
    pub retrieval_top_k: Option<u32>,
    /// At most `retrieval_top_k`.
    #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
    pub min_chunks: Option<u32>,
    #[oai(validator(minimum(value = "0"), maximum(value = "1")))]
    pub confidence_threshold: Option<f64>,
    #[oai(validator(minimum(value = "0"), maximum(value = "1")))]
    pub relevance_threshold: Option<f64>,
    #[oai(validator(minimum(value = "100"), maximum(value = "32000")))]
    pub max_context_length: Option<u32>,
    #[oai(validator(minimum(value = "0"), maximum(value = "2")))]
    pub temperature: Option<f64>,
    pub enable_fallback: Option<bool>,
    #[oai(validator(minimum(value = "0"), maximum(value = "10")))]
    pub keyword_weight: Option<f64>,
    #[oai(validator(minimum(value = "0"), maximum(value = "10")))]
    pub semantic_weight: Option<f64>,
    #[oai(validator(minimum(value = "0"), maximum(value = "10")))]
    pub index_boost_weight: Option<f64>,
    #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
    pub rrf_k: Option<u32>,
    #[oai(validator(minimum(value = "0"), maximum(value = "1")))]
    pub min_text_coverage: Option<f64>,
    #[oai(validator(minimum(value = "0"), maximum(value = "1")))]
    pub max_garbage_ratio: Option<f64>,
    #[oai(validator(minimum(value = "0"), maximum(value = "1")))]
    pub min_index_support_rate: Option<f64>,
}

/// The PUT body as JSON, documented as [`ConfigUpdate`] but checked by `hbi_shared::knobs`, so
/// each problem is reported with the knob it concerns (`loc: ["body", "temperature"]`).
#[derive(Debug)]
pub struct ConfigPatch(serde_json::Value);

impl Type for ConfigPatch {
    const IS_REQUIRED: bool = true;
    type RawValueType = serde_json::Value;
    type RawElementValueType = serde_json::Value;

    fn name() -> Cow<'static, str> {
        ConfigUpdate::name()
    }

    fn schema_ref() -> MetaSchemaRef {
        ConfigUpdate::schema_ref()
    }

    fn register(registry: &mut Registry) {
        ConfigUpdate::register(registry);
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(std::iter::once(&self.0))
    }
}

impl ParseFromJSON for ConfigPatch {
    fn parse_from_json(value: Option<serde_json::Value>) -> ParseResult<Self> {
        match value {
            Some(value) => Ok(Self(value)),
            None => Err(ParseError::expected_input()),
        }
    }
}

fn validation_error(issues: Vec<KnobIssue>) -> ValidationError {
    ValidationError {
        detail: issues
            .into_iter()
            .map(|issue| ValidationIssue {
                loc: std::iter::once("body".to_owned())
                    .chain((!issue.field.is_empty()).then_some(issue.field))
                    .collect(),
                msg: issue.message,
                kind: issue.kind.to_owned(),
            })
            .collect(),
    }
}

#[OpenApi]
impl ConfigApi {
    /// The live tuning knobs
    ///
    /// Shared by every replica: a change made through one is seen by all within a second.
    #[oai(
        path = "/config",
        method = "get",
        tag = "ApiTags::Config",
        operation_id = "get_config"
    )]
    async fn get(&self, state: Data<&AppState>) -> Result<Json<ConfigView>, ApiError<0>> {
        Ok(Json(state.backends.knobs.get().await?.into()))
    }

    /// Change some of the live tuning knobs
    ///
    /// Only the knobs in the body change; the result is validated as a whole and stored in the
    /// database, so it survives restarts and every replica uses it. Any invalid input (an
    /// unknown knob, a wrong type, a value out of range) answers 422 in FastAPI's shape and
    /// changes nothing. Answers the full set.
    #[oai(
        path = "/config",
        method = "put",
        tag = "ApiTags::Config",
        operation_id = "put_config"
    )]
    async fn put(
        &self,
        state: Data<&AppState>,
        body: Json<ConfigPatch>,
    ) -> Result<Json<ConfigView>, ApiError<{ status::INVALID }>> {
        match state.backends.knobs.patch(&body.0.0).await {
            Ok(knobs) => Ok(Json(knobs.into())),
            Err(KnobsUpdateError::Invalid(issues)) => Err(ApiError::invalid(validation_error(issues))),
            Err(KnobsUpdateError::Store(err)) => Err(err.into()),
        }
    }
}
