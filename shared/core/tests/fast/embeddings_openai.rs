//! The OpenAI-compatible embedder against a real HTTP server started here (poem on 127.0.0.1,
//! an ephemeral port) that speaks the `/v1/embeddings` JSON of OpenAI, Ollama, TEI and vLLM.
//! The first path segment picks how the server behaves.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hbi_shared::embeddings::{Embedder, EmbeddingProvider, EmbeddingSettings, open_embedder};
use poem::http::StatusCode;
use poem::listener::TcpAcceptor;
use poem::web::{Data, Json, Path};
use poem::{EndpointExt, IntoResponse, Request, Response, Route, Server, handler, post};
use serde_json::{Value, json};

const DIMENSIONS: usize = 8;
const API_KEY: &str = "sk-test-key";

#[derive(Default)]
struct Seen {
    /// Texts per request, in the order the requests came.
    batches: Vec<Vec<String>>,
    models: Vec<String>,
}

/// A vector that depends on the text only, not normalised (as some servers answer).
fn vector_of(text: &str, dimensions: usize) -> Vec<f32> {
    let mut state: u64 = 1469598103934665603;
    (0..dimensions)
        .map(|_| {
            for byte in text.bytes() {
                state = (state ^ u64::from(byte)).wrapping_mul(1099511628211);
            }
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
        })
        .collect()
}

fn normalised(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

#[handler]
async fn embeddings(
    Path(mode): Path<String>,
    request: &Request,
    Json(body): Json<Value>,
    seen: Data<&Arc<Mutex<Seen>>>,
) -> Response {
    let authorised = request.header("authorization") == Some(&format!("Bearer {API_KEY}"));
    if !authorised {
        return Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .body(r#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error"}}"#);
    }
    let inputs: Vec<String> = body["input"]
        .as_array()
        .map(|items| items.iter().filter_map(|i| i.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    {
        let mut seen = seen.lock().expect("seen lock");
        seen.batches.push(inputs.clone());
        seen.models.push(body["model"].as_str().unwrap_or_default().to_owned());
    }
    let dimensions = if mode == "wrong-dimensions" {
        DIMENSIONS + 1
    } else {
        DIMENSIONS
    };
    match mode.as_str() {
        "server-error" => {
            return Response::builder()
                .status(StatusCode::INTERNAL_SERVER_ERROR)
                .body("upstream model crashed: CUDA out of memory");
        }
        "bad-request" => {
            return Response::builder()
                .status(StatusCode::BAD_REQUEST)
                .content_type("application/json")
                .body(r#"{"error":{"message":"This model's maximum context length is 8192 tokens","type":"invalid_request_error"}}"#);
        }
        "slow" => tokio::time::sleep(Duration::from_secs(5)).await,
        _ => {}
    }
    let mut data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, text)| json!({"object": "embedding", "index": index, "embedding": vector_of(text, dimensions)}))
        .collect();
    match mode.as_str() {
        // Real servers may answer in any order; only `index` ties a vector to its text.
        "shuffled" => data.reverse(),
        "missing" => {
            data.pop();
        }
        "duplicate-index" if data.len() > 1 => data[1]["index"] = json!(0),
        _ => {}
    }
    let tokens = inputs.iter().map(|t| t.split_whitespace().count()).sum::<usize>();
    Json(json!({
        "object": "list",
        "data": data,
        "model": body["model"],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))
    .into_response()
}

struct TestServer {
    base: String,
    seen: Arc<Mutex<Seen>>,
}

async fn start_server() -> TestServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("local address");
    let seen = Arc::new(Mutex::new(Seen::default()));
    let app = Route::new()
        .at("/:mode/v1/embeddings", post(embeddings))
        .data(Arc::clone(&seen));
    let acceptor = TcpAcceptor::from_tokio(listener).expect("acceptor");
    tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
    TestServer {
        base: format!("http://{address}"),
        seen,
    }
}

impl TestServer {
    fn embedder(&self, mode: &str, batch_size: usize) -> Arc<dyn Embedder> {
        open_embedder(&self.settings(mode, batch_size)).expect("open the OpenAI embedder")
    }

    fn settings(&self, mode: &str, batch_size: usize) -> EmbeddingSettings {
        EmbeddingSettings {
            provider: EmbeddingProvider::Openai,
            openai_base_url: format!("{}/{mode}/v1/", self.base),
            openai_api_key: Some(API_KEY.into()),
            openai_model: "nomic-embed-text".to_owned(),
            openai_dimensions: DIMENSIONS,
            openai_timeout_secs: 1,
            batch_size,
            ..EmbeddingSettings::default()
        }
    }

    fn batches(&self) -> Vec<Vec<String>> {
        self.seen.lock().expect("seen lock").batches.clone()
    }
}

fn numbered(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("chunk number {i} of the book")).collect()
}

async fn error_of(embedder: &dyn Embedder, texts: &[String]) -> String {
    match embedder.embed(texts).await {
        Ok(vectors) => panic!("expected an error, got {} vectors", vectors.len()),
        Err(err) => format!("{err:#}"),
    }
}

#[tokio::test]
async fn many_texts_go_in_batches_and_come_back_in_order() -> anyhow::Result<()> {
    let server = start_server().await;
    let embedder = server.embedder("ok", 4);
    assert_eq!(embedder.kind(), "openai");
    assert_eq!(embedder.model(), "nomic-embed-text");
    assert_eq!(embedder.dimensions(), DIMENSIONS);
    let texts = numbered(10);
    let vectors = embedder.embed(&texts).await?;
    assert_eq!(vectors.len(), 10);
    for (text, vector) in texts.iter().zip(&vectors) {
        assert_close(vector, &normalised(vector_of(text, DIMENSIONS)), text);
    }
    let sizes: Vec<usize> = server.batches().iter().map(Vec::len).collect();
    assert_eq!(sizes, [4, 4, 2]);
    let sent: Vec<String> = server.batches().concat();
    assert_eq!(sent, texts);
    assert!(
        server
            .seen
            .lock()
            .expect("seen")
            .models
            .iter()
            .all(|m| m == "nomic-embed-text")
    );
    Ok(())
}

#[tokio::test]
async fn repeated_texts_are_sent_once() -> anyhow::Result<()> {
    let server = start_server().await;
    let embedder = server.embedder("ok", 8);
    let texts: Vec<String> = ["a", "b", "a", "c", "b", "a"].iter().map(|s| s.to_string()).collect();
    let vectors = embedder.embed(&texts).await?;
    assert_eq!(server.batches(), [vec!["a", "b", "c"]]);
    assert_eq!(vectors[0], vectors[2]);
    assert_eq!(vectors[1], vectors[4]);
    assert_close(&vectors[3], &normalised(vector_of("c", DIMENSIONS)), "c");
    Ok(())
}

#[tokio::test]
async fn vectors_answered_out_of_order_are_put_back_by_index() -> anyhow::Result<()> {
    let server = start_server().await;
    let texts = numbered(7);
    let vectors = server.embedder("shuffled", 3).embed(&texts).await?;
    for (text, vector) in texts.iter().zip(&vectors) {
        assert_close(vector, &normalised(vector_of(text, DIMENSIONS)), text);
    }
    Ok(())
}

#[tokio::test]
async fn http_errors_carry_status_and_body() {
    let server = start_server().await;
    let texts = numbered(2);
    let error = error_of(server.embedder("server-error", 8).as_ref(), &texts).await;
    assert!(
        error.contains("500") && error.contains("CUDA out of memory") && error.contains("/server-error/v1/embeddings"),
        "{error}"
    );
    let error = error_of(server.embedder("bad-request", 8).as_ref(), &texts).await;
    assert!(
        error.contains("400") && error.contains("maximum context length"),
        "{error}"
    );
    let unauthorised = open_embedder(&EmbeddingSettings {
        openai_api_key: Some("sk-wrong".into()),
        ..server.settings("ok", 8)
    })
    .expect("open");
    let error = error_of(unauthorised.as_ref(), &texts).await;
    assert!(error.contains("401") && error.contains("Incorrect API key"), "{error}");
}

#[tokio::test]
async fn wrong_answers_are_refused() {
    let server = start_server().await;
    let texts = numbered(3);
    let error = error_of(server.embedder("wrong-dimensions", 8).as_ref(), &texts).await;
    assert!(
        error.contains("9 dimensions") && error.contains("openai_dimensions is 8"),
        "{error}"
    );
    let error = error_of(server.embedder("missing", 8).as_ref(), &texts).await;
    assert!(error.contains("2 vectors for 3 texts"), "{error}");
    let error = error_of(server.embedder("duplicate-index", 8).as_ref(), &texts).await;
    assert!(error.contains("index 0 twice"), "{error}");
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let server = start_server().await;
    let started = std::time::Instant::now();
    let error = error_of(server.embedder("slow", 8).as_ref(), &numbered(1)).await;
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
    assert!(
        error.contains("/slow/v1/embeddings") && error.contains("timed out"),
        "{error}"
    );
}

#[tokio::test]
async fn nothing_listening_is_a_clear_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").port()
    };
    let embedder = open_embedder(&EmbeddingSettings {
        provider: EmbeddingProvider::Openai,
        openai_base_url: format!("http://127.0.0.1:{port}/v1"),
        openai_dimensions: DIMENSIONS,
        ..EmbeddingSettings::default()
    })
    .expect("open");
    let error = error_of(embedder.as_ref(), &numbered(1)).await;
    assert!(error.contains(&format!("127.0.0.1:{port}/v1/embeddings")), "{error}");
}

/// Equal up to the last bits a decimal round trip through JSON may change.
fn assert_close(actual: &[f32], expected: &[f32], what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}");
    for (a, e) in actual.iter().zip(expected) {
        assert!((a - e).abs() <= 1e-6, "{what}: {actual:?} vs {expected:?}");
    }
}
