//! The OpenAI chat-completions wire protocol: `POST {base_url}/chat/completions`, where
//! `base_url` ends in `/v1` as with the OpenAI SDKs (`https://api.openai.com/v1`,
//! `http://localhost:11434/v1` for Ollama, `http://host:8000/v1` for vLLM).

use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::{ChatCompletion, ChatMessage, ChatModel, LlmError};
use crate::config::{LlmSettings, OPENAI_BASE_URL};
use crate::http_client::{body_excerpt, client_with_deadline};

/// Largest response body read from the server.
const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

pub struct OpenAiChat {
    client: reqwest::Client,
    url: String,
    api_key: Option<SecretString>,
    model: String,
    timeout: Duration,
}

impl OpenAiChat {
    pub fn new(settings: &LlmSettings) -> anyhow::Result<Self> {
        let timeout = Duration::from_secs_f64(settings.timeout_secs);
        let client = client_with_deadline(timeout)?;
        Ok(Self {
            client,
            url: chat_completions_url(settings.base_url.as_deref().unwrap_or(OPENAI_BASE_URL)),
            api_key: settings.api_key.clone(),
            model: settings.model.clone(),
            timeout,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn transport_error(&self, err: &reqwest::Error) -> LlmError {
        if err.is_timeout() {
            LlmError::Timeout(self.timeout)
        } else {
            // The chain names the cause (connection refused, DNS, TLS) without the API key.
            let mut message = err.to_string();
            let mut source = std::error::Error::source(err);
            while let Some(cause) = source {
                message.push_str(": ");
                message.push_str(&cause.to_string());
                source = cause.source();
            }
            LlmError::Transport(message)
        }
    }
}

/// `{base_url}/chat/completions`, with or without a trailing slash on the base.
pub fn chat_completions_url(base_url: &str) -> String {
    format!("{}/chat/completions", base_url.trim().trim_end_matches('/'))
}

/// The request body of one call.
fn request_body(model: &str, messages: &[ChatMessage], temperature: f64, json: bool) -> Value {
    let messages: Vec<Value> = messages
        .iter()
        .map(|message| json!({"role": message.role.as_str(), "content": message.content}))
        .collect();
    let mut body = json!({
        "model": model,
        "messages": messages,
        "temperature": temperature,
        "stream": false,
    });
    if json {
        body["response_format"] = json!({"type": "json_object"});
    }
    body
}

/// The text, usage and model of a chat-completions response.
fn parse_response(body: &Value, asked_model: &str) -> Result<ChatCompletion, LlmError> {
    let choice = body["choices"]
        .get(0)
        .ok_or_else(|| LlmError::InvalidResponse("no `choices[0]` in the response".to_owned()))?;
    let text = match &choice["message"]["content"] {
        Value::String(text) => text.clone(),
        // Some servers send content as a list of parts.
        Value::Array(parts) => parts
            .iter()
            .filter_map(|part| part["text"].as_str())
            .collect::<Vec<_>>()
            .join(""),
        Value::Null => String::new(),
        other => {
            return Err(LlmError::InvalidResponse(format!(
                "`choices[0].message.content` is {other}"
            )));
        }
    };
    Ok(ChatCompletion {
        text,
        input_tokens: body["usage"]["prompt_tokens"].as_u64(),
        output_tokens: body["usage"]["completion_tokens"].as_u64(),
        model: body["model"].as_str().unwrap_or(asked_model).to_owned(),
    })
}

#[async_trait]
impl ChatModel for OpenAiChat {
    fn system(&self) -> &'static str {
        "openai"
    }

    fn model(&self) -> &str {
        &self.model
    }

    async fn complete(
        &self,
        messages: &[ChatMessage],
        temperature: f64,
        json: bool,
    ) -> Result<ChatCompletion, LlmError> {
        let mut request = self
            .client
            .post(&self.url)
            .json(&request_body(&self.model, messages, temperature, json));
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key.expose_secret());
        }
        let mut response = request.send().await.map_err(|err| self.transport_error(&err))?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|err| self.transport_error(&err))? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(LlmError::InvalidResponse(format!(
                    "the response is larger than {MAX_RESPONSE_BYTES} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            return Err(LlmError::Status {
                status: status.as_u16(),
                body: body_excerpt(&body),
            });
        }
        let value: Value = serde_json::from_slice(&body)
            .map_err(|err| LlmError::InvalidResponse(format!("{err}; body: {}", body_excerpt(&body))))?;
        parse_response(&value, &self.model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_follows_the_sdk_convention() {
        assert_eq!(
            chat_completions_url("https://api.openai.com/v1"),
            "https://api.openai.com/v1/chat/completions"
        );
        assert_eq!(
            chat_completions_url("http://localhost:11434/v1/"),
            "http://localhost:11434/v1/chat/completions"
        );
    }

    #[test]
    fn the_body_asks_for_json_only_when_told() {
        let messages = [ChatMessage::system("s"), ChatMessage::user("u")];
        let body = request_body("m", &messages, 0.1, true);
        assert_eq!(body["response_format"]["type"], "json_object");
        assert_eq!(body["messages"][1]["role"], "user");
        assert_eq!(body["temperature"], 0.1);
        assert!(
            request_body("m", &messages, 0.1, false)
                .get("response_format")
                .is_none()
        );
    }

    #[test]
    fn responses_are_read_leniently() -> Result<(), LlmError> {
        let body = json!({
            "model": "llama3.1:8b",
            "choices": [{"message": {"role": "assistant", "content": "{\"a\": 1}"}}],
            "usage": {"prompt_tokens": 120, "completion_tokens": 30}
        });
        let completion = parse_response(&body, "asked")?;
        assert_eq!(completion.text, "{\"a\": 1}");
        assert_eq!(completion.model, "llama3.1:8b");
        assert_eq!(
            (completion.input_tokens, completion.output_tokens),
            (Some(120), Some(30))
        );
        let bare = json!({"choices": [{"message": {"content": [{"type": "text", "text": "hi"}]}}]});
        let completion = parse_response(&bare, "asked")?;
        assert_eq!((completion.text.as_str(), completion.model.as_str()), ("hi", "asked"));
        assert_eq!(completion.input_tokens, None);
        assert!(parse_response(&json!({"error": "x"}), "m").is_err());
        Ok(())
    }
}
