//! Any OpenAI-compatible embeddings endpoint (OpenAI, Ollama, TEI, vLLM): `POST
//! {base_url}/embeddings` with `{"model", "input": [...]}`, answered by `{"data": [{"embedding",
//! "index"}], "model", "usage"}`. Texts go in batches of `batch_size`, one request at a time;
//! each answer is checked (one vector per text, every index once, the configured length) and its
//! vectors are put back in input order and L2-normalised (not every server normalises).

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::{Embedder, EmbeddingSettings, distinct, l2_normalize};
use crate::http_client::{body_excerpt, client_with_deadline};

pub struct OpenAiEmbedder {
    client: reqwest::Client,
    url: String,
    api_key: Option<SecretString>,
    model: String,
    dimensions: usize,
    batch_size: usize,
}

#[derive(Serialize)]
struct EmbeddingRequest<'a> {
    model: &'a str,
    input: &'a [&'a str],
}

#[derive(Deserialize)]
struct EmbeddingResponse {
    data: Vec<EmbeddingData>,
}

#[derive(Deserialize)]
struct EmbeddingData {
    embedding: Vec<f32>,
    index: usize,
}

impl OpenAiEmbedder {
    pub fn new(settings: &EmbeddingSettings) -> anyhow::Result<Self> {
        let timeout = Duration::from_secs(settings.openai_timeout_secs.max(1));
        let client = client_with_deadline(timeout)?;
        Ok(Self {
            client,
            url: format!("{}/embeddings", settings.openai_base_url.trim_end_matches('/')),
            api_key: settings.openai_api_key.clone(),
            model: settings.openai_model.clone(),
            dimensions: settings.openai_dimensions,
            batch_size: settings.batch_size.max(1),
        })
    }

    /// One request for `texts`; the vectors come back in the order of `texts`.
    async fn request(&self, texts: &[&str]) -> anyhow::Result<Vec<Vec<f32>>> {
        let mut request = self.client.post(&self.url).json(&EmbeddingRequest {
            model: &self.model,
            input: texts,
        });
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key.expose_secret());
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("embedding endpoint {}", self.url))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .with_context(|| format!("embedding endpoint {}: reading the answer", self.url))?;
        if !status.is_success() {
            bail!(
                "embedding endpoint {} answered {status}: {}",
                self.url,
                body_excerpt(&body)
            );
        }
        let answer: EmbeddingResponse = serde_json::from_slice(&body).map_err(|err| {
            anyhow!(
                "embedding endpoint {} answered no embeddings ({err}): {}",
                self.url,
                body_excerpt(&body)
            )
        })?;
        self.in_input_order(answer.data, texts.len())
    }

    fn in_input_order(&self, data: Vec<EmbeddingData>, expected: usize) -> anyhow::Result<Vec<Vec<f32>>> {
        if data.len() != expected {
            bail!(
                "embedding endpoint {} answered {} vectors for {expected} texts",
                self.url,
                data.len()
            );
        }
        let mut vectors: Vec<Option<Vec<f32>>> = vec![None; expected];
        for item in data {
            if item.embedding.len() != self.dimensions {
                bail!(
                    "embedding endpoint {} answered vectors of {} dimensions for model `{}`; \
                     embeddings.openai_dimensions is {}",
                    self.url,
                    item.embedding.len(),
                    self.model,
                    self.dimensions
                );
            }
            match vectors.get_mut(item.index) {
                Some(slot @ None) => *slot = Some(item.embedding),
                Some(Some(_)) => bail!("embedding endpoint {} answered index {} twice", self.url, item.index),
                None => bail!(
                    "embedding endpoint {} answered index {} for {expected} texts",
                    self.url,
                    item.index
                ),
            }
        }
        // Every index was filled: there are as many items as slots and none repeated.
        Ok(vectors.into_iter().flatten().collect())
    }
}

#[async_trait]
impl Embedder for OpenAiEmbedder {
    fn kind(&self) -> &'static str {
        "openai"
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn dimensions(&self) -> usize {
        self.dimensions
    }

    async fn embed(&self, texts: &[String]) -> anyhow::Result<Vec<Vec<f32>>> {
        let (unique, slots) = distinct(texts);
        let mut vectors = Vec::with_capacity(unique.len());
        for batch in unique.chunks(self.batch_size) {
            vectors.extend(self.request(batch).await?);
        }
        for vector in &mut vectors {
            l2_normalize(vector);
        }
        Ok(slots.into_iter().map(|slot| vectors[slot].clone()).collect())
    }
}
