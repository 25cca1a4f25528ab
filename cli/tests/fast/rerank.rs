//! The reranker stage of GET /search against a stand-in speaking text-embeddings-inference's
//! `POST /rerank` wire format (no reranker model can run here): candidates in batches of at
//! most TEI's client batch size, the answer's order applied, the fused order kept when the
//! reranker fails.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::TestServer;
use poem::web::{Data, Json};
use poem::{EndpointExt, IntoResponse, Response, Route, handler};
use serde_json::{Value, json};

/// TEI's default `--max-client-batch-size`.
const MAX_CLIENT_BATCH: usize = 32;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Ranking {
    /// Scores the texts in the reverse of the order they came in.
    Reverse,
    /// Answers 503 as TEI does while its model loads.
    Unavailable,
}

/// One request the stand-in was sent.
#[derive(Debug, Clone)]
pub struct RerankRequest {
    pub authorization: Option<String>,
    pub query: String,
    pub texts: Vec<String>,
    pub truncate: Option<bool>,
}

#[derive(Clone)]
pub struct TeiStandIn {
    ranking: Arc<Mutex<Ranking>>,
    requests: Arc<Mutex<Vec<RerankRequest>>>,
}

#[handler]
async fn rerank_endpoint(
    request: &poem::Request,
    Data(stand_in): Data<&TeiStandIn>,
    Json(body): Json<Value>,
) -> Response {
    let texts: Vec<String> = body["texts"]
        .as_array()
        .map(|texts| texts.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    stand_in.requests.lock().expect("lock").push(RerankRequest {
        authorization: request.header("authorization").map(str::to_owned),
        query: body["query"].as_str().unwrap_or_default().to_owned(),
        texts: texts.clone(),
        truncate: body["truncate"].as_bool(),
    });
    let error = |status: u16, message: String, kind: &str| {
        (
            poem::http::StatusCode::from_u16(status).expect("status"),
            Json(json!({"error": message, "error_type": kind})),
        )
            .into_response()
    };
    if *stand_in.ranking.lock().expect("lock") == Ranking::Unavailable {
        return error(503, "Model is overloaded".to_owned(), "overloaded");
    }
    if texts.is_empty() {
        return error(422, "`texts` cannot be empty".to_owned(), "empty");
    }
    if texts.len() > MAX_CLIENT_BATCH {
        return error(
            422,
            format!(
                "batch size {} > maximum allowed batch size {MAX_CLIENT_BATCH}",
                texts.len()
            ),
            "validation",
        );
    }
    // TEI answers sorted by score, best first.
    let n = texts.len();
    let ranked: Vec<Value> = (0..n)
        .rev()
        .map(|index| json!({"index": index, "score": (index + 1) as f64 / n as f64}))
        .collect();
    Json(Value::Array(ranked)).into_response()
}

impl TeiStandIn {
    /// Serves `POST /rerank` on 127.0.0.1 and an ephemeral port; returns its base URL.
    pub async fn start() -> (Self, String) {
        let stand_in = Self {
            ranking: Arc::new(Mutex::new(Ranking::Reverse)),
            requests: Arc::new(Mutex::new(Vec::new())),
        };
        let app = Route::new()
            .at("/rerank", poem::post(rerank_endpoint))
            .data(stand_in.clone());
        let address = common::serve_in_test(app).await;
        (stand_in, format!("http://{address}"))
    }

    pub fn set(&self, ranking: Ranking) {
        *self.ranking.lock().expect("lock") = ranking;
    }

    /// The requests since the last call.
    pub fn take_requests(&self) -> Vec<RerankRequest> {
        std::mem::take(&mut *self.requests.lock().expect("lock"))
    }
}

async fn search(server: &TestServer, query: &str, k: u32) -> Value {
    let response = server
        .client
        .get(server.url("/search"))
        .query(&[("q", query), ("mode", "keyword"), ("k", &k.to_string())])
        .send()
        .await
        .expect("GET /search");
    assert_eq!(response.status().as_u16(), 200);
    response.json().await.expect("search json")
}

fn hits(results: &Value) -> Vec<(u64, Option<f64>)> {
    results["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|hit| (hit["page"].as_u64().expect("page"), hit["scores"]["rerank"].as_f64()))
        .collect()
}

async fn metric(server: &TestServer, line_start: &str) -> f64 {
    server
        .metrics_text()
        .await
        .lines()
        .find_map(|line| line.strip_prefix(line_start))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(f64::NAN)
}

#[tokio::test(flavor = "multi_thread")]
async fn search_is_reranked_through_the_tei_rerank_api_and_survives_its_failure() {
    let (stand_in, url) = TeiStandIn::start().await;
    let server = TestServer::start(&[("HBI__RERANKER__URL", &url), ("HBI__RERANKER__API_KEY", "tei-secret")]);
    server.ingest_corpus_book("r-intro", "An Introduction to R").await;

    // The fused order first: with the reranker down, search answers all the same, in the
    // order of its own lists, and the failure is counted.
    stand_in.set(Ranking::Unavailable);
    let all = hits(&search(&server, "vector", 100).await);
    assert!(all.len() >= 36, "{all:?}");
    assert!(all.iter().all(|(_, rerank)| rerank.is_none()), "{all:?}");
    assert_eq!(
        metric(&server, "hbi_rerank_requests_total{outcome=\"error\"}").await,
        1.0
    );
    let fused = &all[..20];
    stand_in.take_requests();

    // With the reranker up, the 20 best candidates (the default of rerank_candidates) come
    // in its order: the stand-in reverses them.
    stand_in.set(Ranking::Reverse);
    let reranked = hits(&search(&server, "vector", 10).await);
    let expected: Vec<u64> = fused.iter().rev().take(10).map(|(page, _)| *page).collect();
    let pages: Vec<u64> = reranked.iter().map(|(page, _)| *page).collect();
    assert_eq!(pages, expected, "the reranker's order");
    let scores: Vec<f64> = reranked
        .iter()
        .map(|(_, score)| score.expect("a rerank score"))
        .collect();
    assert!(scores.windows(2).all(|pair| pair[0] >= pair[1]), "{scores:?}");
    assert_eq!(
        metric(&server, "hbi_rerank_requests_total{outcome=\"success\"}").await,
        1.0
    );

    let requests = stand_in.take_requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let request = &requests[0];
    assert_eq!(request.query, "vector");
    assert_eq!(request.texts.len(), 20);
    assert_eq!(request.authorization.as_deref(), Some("Bearer tei-secret"));
    assert_eq!(request.truncate, Some(true));
    assert!(
        request
            .texts
            .iter()
            .all(|text| !text.is_empty() && text.chars().count() <= 2000),
        "page texts, clipped"
    );
    assert!(
        request.texts.iter().any(|text| text.to_lowercase().contains("vector")),
        "the candidates' own text is sent"
    );

    // More candidates than TEI takes in one request: they go in batches.
    let response = server
        .client
        .put(server.url("/config"))
        .json(&json!({"rerank_candidates": 36}))
        .send()
        .await
        .expect("PUT /config");
    assert_eq!(response.status().as_u16(), 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let reranked = hits(&search(&server, "vector", 5).await);
    assert!(reranked.iter().all(|(_, score)| score.is_some()), "{reranked:?}");
    let sizes: Vec<usize> = stand_in.take_requests().iter().map(|r| r.texts.len()).collect();
    assert_eq!(sizes, [32, 4], "batches of at most {MAX_CLIENT_BATCH}");
}
