//! The optional reranker stage of search and questions: the best candidates of the fused
//! lists are scored again, query and text together, by a cross-encoder served behind
//! text-embeddings-inference's `POST /rerank` (the wire format of Hugging Face TEI, which the
//! seed deployment runs; Infinity and others speak it too):
//! `{"query", "texts": [...], "truncate": true}` answered by `[{"index", "score"}, ...]`.
//! Texts go in batches of `reranker.max_batch` (TEI refuses more than its
//! `--max-client-batch-size`, 32 by default); each answer is checked (every index once).

use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::config::RerankerSettings;
use crate::http_client::{body_excerpt, client_with_deadline};

/// Characters of one candidate sent: a cross-encoder reads a few hundred tokens at most
/// (TEI truncates to the model's length), so the rest of a long page is only traffic.
pub const MAX_TEXT_CHARS: usize = 2000;

#[async_trait]
pub trait Reranker: Send + Sync {
    /// The model's name, as configured (for logs and metrics).
    fn model(&self) -> &str;

    /// A relevance score for each of `texts` against `query`, in the order of `texts`;
    /// higher is more relevant.
    async fn scores(&self, query: &str, texts: &[String]) -> anyhow::Result<Vec<f64>>;
}

/// Orders `items` by the reranker's scores, best first (ties keep their order), each with its
/// score; `text` gives what is sent for an item. On a reranker failure the items come back
/// in their own order without scores, and the failure is logged and counted: an optional
/// stage does not take search down with it.
pub async fn rerank<T>(
    reranker: &dyn Reranker,
    query: &str,
    items: Vec<T>,
    text: impl Fn(&T) -> String,
) -> Vec<(T, Option<f64>)> {
    if items.is_empty() {
        return Vec::new();
    }
    let texts: Vec<String> = items.iter().map(|item| clip(&text(item))).collect();
    let started = Instant::now();
    let outcome = reranker.scores(query, &texts).await;
    let seconds = started.elapsed().as_secs_f64();
    match outcome {
        Ok(scores) if scores.len() == items.len() => {
            crate::metrics::rerank_request("success", seconds);
            tracing::debug!(model = reranker.model(), candidates = items.len(), seconds, "reranked");
            let mut scored: Vec<(T, Option<f64>)> = items
                .into_iter()
                .zip(scores)
                .map(|(item, score)| (item, Some(score)))
                .collect();
            scored.sort_by(|(_, a), (_, b)| b.unwrap_or(f64::MIN).total_cmp(&a.unwrap_or(f64::MIN)));
            scored
        }
        outcome => {
            crate::metrics::rerank_request("error", seconds);
            let error = match outcome {
                Err(err) => format!("{err:#}"),
                Ok(scores) => format!("{} scores for {} texts", scores.len(), items.len()),
            };
            tracing::warn!(model = reranker.model(), error = %error, "the reranker failed; results keep their fused order");
            items.into_iter().map(|item| (item, None)).collect()
        }
    }
}

fn clip(text: &str) -> String {
    match text.char_indices().nth(MAX_TEXT_CHARS) {
        Some((cut, _)) => text[..cut].to_owned(),
        None => text.to_owned(),
    }
}

/// A reranker behind TEI's `/rerank`.
pub struct TeiReranker {
    client: reqwest::Client,
    url: String,
    api_key: Option<SecretString>,
    model: String,
    max_batch: usize,
}

#[derive(Serialize)]
struct RerankRequest<'a> {
    query: &'a str,
    texts: &'a [String],
    /// Long texts are cut to the model's length rather than refused.
    truncate: bool,
    raw_scores: bool,
    return_text: bool,
}

#[derive(Deserialize)]
struct Ranked {
    index: usize,
    score: f64,
}

impl TeiReranker {
    pub fn new(settings: &RerankerSettings, base_url: &str) -> anyhow::Result<Self> {
        let client = client_with_deadline(Duration::from_secs_f64(settings.timeout_secs.max(0.1)))?;
        Ok(Self {
            client,
            url: format!("{}/rerank", base_url.trim_end_matches('/')),
            api_key: settings.api_key.clone(),
            model: settings.model.clone(),
            max_batch: settings.max_batch.max(1),
        })
    }

    async fn request(&self, query: &str, texts: &[String]) -> anyhow::Result<Vec<f64>> {
        let mut request = self.client.post(&self.url).json(&RerankRequest {
            query,
            texts,
            truncate: true,
            raw_scores: false,
            return_text: false,
        });
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key.expose_secret());
        }
        let response = request.send().await.with_context(|| format!("reranker {}", self.url))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .with_context(|| format!("reranker {}: reading the answer", self.url))?;
        if !status.is_success() {
            bail!("reranker {} answered {status}: {}", self.url, body_excerpt(&body));
        }
        let ranked: Vec<Ranked> = serde_json::from_slice(&body).map_err(|err| {
            anyhow!(
                "reranker {} answered no ranking ({err}): {}",
                self.url,
                body_excerpt(&body)
            )
        })?;
        in_input_order(&self.url, ranked, texts.len())
    }
}

/// The scores of a `/rerank` answer (sorted by score) in the order of the texts sent.
fn in_input_order(url: &str, ranked: Vec<Ranked>, expected: usize) -> anyhow::Result<Vec<f64>> {
    if ranked.len() != expected {
        bail!("reranker {url} answered {} scores for {expected} texts", ranked.len());
    }
    let mut scores: Vec<Option<f64>> = vec![None; expected];
    for item in ranked {
        if !item.score.is_finite() {
            bail!(
                "reranker {url} answered a score that is not a number for index {}",
                item.index
            );
        }
        match scores.get_mut(item.index) {
            Some(slot @ None) => *slot = Some(item.score),
            Some(Some(_)) => bail!("reranker {url} answered index {} twice", item.index),
            None => bail!("reranker {url} answered index {} for {expected} texts", item.index),
        }
    }
    // As many items as slots and none repeated: every slot is filled.
    Ok(scores.into_iter().flatten().collect())
}

#[async_trait]
impl Reranker for TeiReranker {
    fn model(&self) -> &str {
        &self.model
    }

    async fn scores(&self, query: &str, texts: &[String]) -> anyhow::Result<Vec<f64>> {
        let mut scores = Vec::with_capacity(texts.len());
        for batch in texts.chunks(self.max_batch) {
            scores.extend(self.request(query, batch).await?);
        }
        Ok(scores)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranked(pairs: &[(usize, f64)]) -> Vec<Ranked> {
        pairs.iter().map(|&(index, score)| Ranked { index, score }).collect()
    }

    #[test]
    fn an_answer_sorted_by_score_comes_back_in_input_order() {
        let scores = in_input_order("u", ranked(&[(2, 0.9), (0, 0.5), (1, 0.1)]), 3).expect("valid");
        assert_eq!(scores, vec![0.5, 0.1, 0.9]);
    }

    #[test]
    fn answers_that_do_not_name_every_text_once_are_refused() {
        for (answer, why) in [
            (ranked(&[(0, 0.5), (0, 0.4)]), "twice"),
            (ranked(&[(0, 0.5), (2, 0.4)]), "for 2 texts"),
            (ranked(&[(0, 0.5)]), "1 scores for 2 texts"),
            (ranked(&[(0, f64::NAN), (1, 0.4)]), "not a number"),
        ] {
            let err = in_input_order("u", answer, 2).expect_err(why);
            assert!(err.to_string().contains(why), "{err}");
        }
    }

    struct Fixed(anyhow::Result<Vec<f64>>);

    #[async_trait]
    impl Reranker for Fixed {
        fn model(&self) -> &str {
            "fixed"
        }
        async fn scores(&self, _query: &str, _texts: &[String]) -> anyhow::Result<Vec<f64>> {
            match &self.0 {
                Ok(scores) => Ok(scores.clone()),
                Err(err) => Err(anyhow!("{err}")),
            }
        }
    }

    #[tokio::test]
    async fn items_are_ordered_by_score_and_keep_their_order_when_the_reranker_fails() {
        let items = vec!["a", "b", "c"];
        let reranked = rerank(&Fixed(Ok(vec![0.1, 0.8, 0.3])), "q", items.clone(), |s| s.to_string()).await;
        assert_eq!(reranked, vec![("b", Some(0.8)), ("c", Some(0.3)), ("a", Some(0.1))]);
        let failed = rerank(&Fixed(Err(anyhow!("down"))), "q", items.clone(), |s| s.to_string()).await;
        assert_eq!(failed, vec![("a", None), ("b", None), ("c", None)]);
        let short = rerank(&Fixed(Ok(vec![0.1])), "q", items, |s| s.to_string()).await;
        assert!(short.iter().all(|(_, score)| score.is_none()));
    }

    #[test]
    fn long_texts_are_clipped_on_a_character_boundary() {
        let text = "é".repeat(MAX_TEXT_CHARS + 10);
        assert_eq!(clip(&text).chars().count(), MAX_TEXT_CHARS);
    }
}
