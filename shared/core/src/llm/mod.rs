//! Language models behind one small trait, [`ChatModel`]; [`OpenAiChat`] speaks the OpenAI
//! chat-completions API, which OpenAI, Ollama, vLLM, llama.cpp and most gateways serve.
//!
//! [`complete_traced`] wraps every call in a `gen_ai.chat` span carrying the OpenTelemetry
//! GenAI attributes (provider, operation, request and response model, temperature, token
//! usage, latency; exported as a client span named `chat {model}`), so an OTLP backend such
//! as Langfuse shows each call, and logs one `llm call finished` event inside it with the
//! same fields.

mod openai;

use std::time::{Duration, Instant};

use async_trait::async_trait;
use tracing::Instrument;

pub use openai::OpenAiChat;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::User => "user",
            Self::Assistant => "assistant",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

impl ChatMessage {
    pub fn system(content: impl Into<String>) -> Self {
        Self {
            role: Role::System,
            content: content.into(),
        }
    }

    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: content.into(),
        }
    }
}

/// The model's reply with its token usage (when the server reports it).
#[derive(Debug, Clone, PartialEq)]
pub struct ChatCompletion {
    pub text: String,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    /// The model that answered, as the server names it.
    pub model: String,
}

/// Why a call failed; the API maps these to 502 and 504.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("the language model did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the language model server answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("cannot reach the language model server: {0}")]
    Transport(String),
    #[error("the language model server sent an unreadable response: {0}")]
    InvalidResponse(String),
}

impl LlmError {
    /// A bounded label for logs and metrics.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Timeout(_) => "timeout",
            Self::Status { .. } => "http_error",
            Self::Transport(_) => "unreachable",
            Self::InvalidResponse(_) => "invalid_response",
        }
    }
}

#[async_trait]
pub trait ChatModel: Send + Sync {
    /// The `gen_ai.system` of OpenTelemetry: `openai` for the OpenAI wire protocol.
    fn system(&self) -> &'static str;

    /// The model asked for.
    fn model(&self) -> &str;

    /// One chat completion. `json` asks the server for a JSON object reply.
    async fn complete(
        &self,
        messages: &[ChatMessage],
        temperature: f64,
        json: bool,
    ) -> Result<ChatCompletion, LlmError>;
}

/// [`ChatModel::complete`] inside a `gen_ai.chat` span whose attributes are recorded after the
/// call, plus an `llm call finished` (or `llm call failed`) event inside it with the same fields.
pub async fn complete_traced(
    model: &dyn ChatModel,
    messages: &[ChatMessage],
    temperature: f64,
    json: bool,
) -> Result<ChatCompletion, LlmError> {
    // OpenTelemetry's GenAI conventions: a client span named "{operation} {model}", the
    // provider under its current key (`gen_ai.provider.name`) and its older one
    // (`gen_ai.system`), which tools such as Langfuse still read.
    let span = tracing::info_span!(
        "gen_ai.chat",
        "otel.name" = %format!("chat {}", model.model()),
        "otel.kind" = "client",
        "otel.status_code" = tracing::field::Empty,
        "gen_ai.provider.name" = model.system(),
        "gen_ai.system" = model.system(),
        "gen_ai.operation.name" = "chat",
        "gen_ai.request.model" = model.model(),
        "gen_ai.request.temperature" = temperature,
        "gen_ai.response.model" = tracing::field::Empty,
        "gen_ai.usage.input_tokens" = tracing::field::Empty,
        "gen_ai.usage.output_tokens" = tracing::field::Empty,
        "latency_ms" = tracing::field::Empty,
        "error.type" = tracing::field::Empty,
    );
    let started = Instant::now();
    let result = model
        .complete(messages, temperature, json)
        .instrument(span.clone())
        .await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let _entered = span.enter();
    span.record("latency_ms", latency_ms);
    match &result {
        Ok(completion) => {
            span.record("gen_ai.response.model", completion.model.as_str());
            // Signed: tracing-opentelemetry exports unsigned fields as strings, and the
            // conventions want integers.
            if let Some(tokens) = completion.input_tokens {
                span.record("gen_ai.usage.input_tokens", i64::try_from(tokens).unwrap_or(i64::MAX));
            }
            if let Some(tokens) = completion.output_tokens {
                span.record("gen_ai.usage.output_tokens", i64::try_from(tokens).unwrap_or(i64::MAX));
            }
            tracing::info!(
                "gen_ai.system" = model.system(),
                "gen_ai.request.model" = model.model(),
                "gen_ai.response.model" = completion.model.as_str(),
                "gen_ai.usage.input_tokens" = completion.input_tokens,
                "gen_ai.usage.output_tokens" = completion.output_tokens,
                "gen_ai.request.temperature" = temperature,
                latency_ms,
                "llm call finished"
            );
        }
        Err(err) => {
            span.record("error.type", err.outcome());
            span.record("otel.status_code", "ERROR");
            tracing::warn!(
                "gen_ai.system" = model.system(),
                "gen_ai.request.model" = model.model(),
                "error.type" = err.outcome(),
                error = %err,
                latency_ms,
                "llm call failed"
            );
        }
    }
    let (outcome, input_tokens, output_tokens) = match &result {
        Ok(completion) => (
            "success",
            completion.input_tokens.unwrap_or(0),
            completion.output_tokens.unwrap_or(0),
        ),
        Err(err) => (err.outcome(), 0, 0),
    };
    crate::metrics::llm_request(
        model.system(),
        model.model(),
        outcome,
        latency_ms / 1000.0,
        input_tokens,
        output_tokens,
    );
    result
}
