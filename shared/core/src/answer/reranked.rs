//! The reranker stage of questions: a retriever that asks another for more candidates
//! (`rerank_candidates`, at least `top_k`) and keeps the `top_k` the reranker scores best.

use std::sync::Arc;

use async_trait::async_trait;

use super::{RetrievedChunk, Retriever};
use crate::domain::BookFilter;
use crate::knobs::KnobStore;
use crate::rerank::{Reranker, rerank};

pub struct RerankedRetriever {
    inner: Arc<dyn Retriever>,
    reranker: Arc<dyn Reranker>,
    knobs: KnobStore,
}

impl RerankedRetriever {
    pub fn new(inner: Arc<dyn Retriever>, reranker: Arc<dyn Reranker>, knobs: KnobStore) -> Self {
        Self { inner, reranker, knobs }
    }
}

#[async_trait]
impl Retriever for RerankedRetriever {
    /// The chunks keep the inner retriever's scores: the relevance gate's threshold is on
    /// that scale, the reranker only decides which `top_k` come and in what order.
    async fn retrieve(&self, query: &str, books: &BookFilter, top_k: usize) -> anyhow::Result<Vec<RetrievedChunk>> {
        let knobs = self.knobs.get().await?;
        let pool = top_k.max(knobs.rerank_candidates as usize);
        let candidates = self.inner.retrieve(query, books, pool).await?;
        Ok(
            rerank(self.reranker.as_ref(), query, candidates, |chunk| chunk.text.clone())
                .await
                .into_iter()
                .take(top_k)
                .map(|(chunk, _)| chunk)
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Chunks `c0`, `c1`, ... best first, as many as asked for; remembers how many that was.
    struct Numbered {
        asked: Mutex<Vec<usize>>,
    }

    #[async_trait]
    impl Retriever for Numbered {
        async fn retrieve(
            &self,
            _query: &str,
            _books: &BookFilter,
            top_k: usize,
        ) -> anyhow::Result<Vec<RetrievedChunk>> {
            self.asked.lock().expect("lock").push(top_k);
            Ok((0..top_k)
                .map(|n| RetrievedChunk {
                    chunk_id: format!("c{n}"),
                    book_id: "b".to_owned(),
                    text: format!("chunk {n}"),
                    first_page: 1,
                    last_page: 1,
                    page_label: "1".to_owned(),
                    section_path: Vec::new(),
                    score: 0.9,
                })
                .collect())
        }
    }

    /// Scores the later texts higher: the reverse of the order given.
    struct Reversing;

    #[async_trait]
    impl Reranker for Reversing {
        fn model(&self) -> &str {
            "reversing"
        }
        async fn scores(&self, _query: &str, texts: &[String]) -> anyhow::Result<Vec<f64>> {
            Ok((0..texts.len()).map(|n| n as f64).collect())
        }
    }

    #[tokio::test]
    async fn questions_get_the_top_k_of_the_reranked_candidates_with_their_own_scores() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("k.db").display());
        let knobs = KnobStore::new(crate::db::connect(&url, 2, true).await?);
        knobs.patch(&serde_json::json!({"rerank_candidates": 8})).await?;
        let inner = Arc::new(Numbered {
            asked: Mutex::new(Vec::new()),
        });
        let retriever = RerankedRetriever::new(inner.clone(), Arc::new(Reversing), knobs);

        let chunks = retriever.retrieve("q", &BookFilter::All, 3).await?;
        let ids: Vec<&str> = chunks.iter().map(|chunk| chunk.chunk_id.as_str()).collect();
        assert_eq!(ids, ["c7", "c6", "c5"]);
        assert!(
            chunks.iter().all(|chunk| chunk.score == 0.9),
            "the retriever's scores stay"
        );
        // More asked than candidates: the candidates are the top_k.
        let chunks = retriever.retrieve("q", &BookFilter::All, 12).await?;
        assert_eq!(chunks.len(), 12);
        assert_eq!(chunks[0].chunk_id, "c11");
        assert_eq!(*inner.asked.lock().expect("lock"), [8, 12]);
        Ok(())
    }
}
