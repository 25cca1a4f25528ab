//! GET/PUT /config: the live knobs are validated (422 in FastAPI's shape, naming the knob),
//! changed partially, persisted across restarts, and shared by API replicas on one database.

use crate::common;
use crate::services;

use std::time::{Duration, Instant};

use common::{Role, TestServer};
use serde_json::{Value, json};
use services::Service;

async fn put(server: &TestServer, body: &str) -> (u16, Value) {
    let response = server
        .client
        .put(server.url("/config"))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("PUT /config");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn defaults() -> Value {
    json!({
        "retrieval_top_k": 10,
        "min_chunks": 2,
        "confidence_threshold": 0.7,
        "relevance_threshold": 0.5,
        "max_context_length": 4000,
        "temperature": 0.1,
        "enable_fallback": true,
        "keyword_weight": 1.0,
        "semantic_weight": 0.5,
        "index_boost_weight": 0.25,
        "rrf_k": 60,
        "rerank_candidates": 20,
        "min_text_coverage": 0.9,
        "max_garbage_ratio": 0.02,
        "min_index_support_rate": 0.8,
        "min_ocr_confidence": 0.7,
    })
}

/// The (loc, type) pairs of a 422 body.
fn problems(body: &Value) -> Vec<(Vec<String>, String)> {
    body["detail"]
        .as_array()
        .unwrap_or_else(|| panic!("a list of problems: {body}"))
        .iter()
        .map(|issue| {
            assert!(issue["msg"].as_str().is_some_and(|m| !m.is_empty()), "{issue}");
            let loc = issue["loc"]
                .as_array()
                .expect("loc")
                .iter()
                .filter_map(|part| part.as_str().map(str::to_owned))
                .collect();
            (loc, issue["type"].as_str().expect("type").to_owned())
        })
        .collect()
}

fn loc(field: &str) -> Vec<String> {
    vec!["body".to_owned(), field.to_owned()]
}

#[tokio::test(flavor = "multi_thread")]
async fn knobs_are_validated_changed_in_part_and_kept_across_restarts() {
    let data = tempfile::tempdir().expect("data dir");
    let mut server = TestServer::start_in(data.path(), &[]);
    let (status, config) = server.get_json("/config").await;
    assert_eq!((status, &config), (200, &defaults()));

    // Only the knobs given change; the answer is the full set.
    let (status, config) = put(
        &server,
        r#"{"retrieval_top_k": 20, "temperature": 0.3, "enable_fallback": false}"#,
    )
    .await;
    assert_eq!(status, 200, "{config}");
    let mut expected = defaults();
    expected["retrieval_top_k"] = json!(20);
    expected["temperature"] = json!(0.3);
    expected["enable_fallback"] = json!(false);
    assert_eq!(config, expected);

    // Each invalid input is a 422 naming the knob, and changes nothing.
    for (body, expected) in [
        (r#"{"temperature": "hot"}"#, vec![(loc("temperature"), "float_type")]),
        (
            r#"{"retrieval_top_k": 2.5}"#,
            vec![(loc("retrieval_top_k"), "int_type")],
        ),
        (
            r#"{"enable_fallback": "yes"}"#,
            vec![(loc("enable_fallback"), "bool_type")],
        ),
        (r#"{"colour": "blue"}"#, vec![(loc("colour"), "extra_forbidden")]),
        (
            r#"{"retrieval_top_k": 0}"#,
            vec![(loc("retrieval_top_k"), "greater_than_equal")],
        ),
        (
            r#"{"max_context_length": 50000}"#,
            vec![(loc("max_context_length"), "less_than_equal")],
        ),
        (
            r#"{"confidence_threshold": 1.5}"#,
            vec![(loc("confidence_threshold"), "less_than_equal")],
        ),
        (r#"{"rrf_k": -1}"#, vec![(loc("rrf_k"), "greater_than_equal")]),
        (r#"{"min_chunks": 101}"#, vec![(loc("min_chunks"), "less_than_equal")]),
        (r#"{"min_chunks": 21}"#, vec![(loc("min_chunks"), "value_error")]),
        (
            r#"{"min_chunks": 15, "retrieval_top_k": 12}"#,
            vec![(loc("min_chunks"), "value_error")],
        ),
        (
            r#"{"temperature": 9, "semantic_weight": null}"#,
            vec![
                (loc("temperature"), "less_than_equal"),
                (loc("semantic_weight"), "float_type"),
            ],
        ),
        ("[1, 2]", vec![(vec!["body".to_owned()], "model_attributes_type")]),
    ] {
        let (status, reply) = put(&server, body).await;
        assert_eq!(status, 422, "{body}: {reply}");
        let found = problems(&reply);
        let expected: Vec<(Vec<String>, String)> =
            expected.into_iter().map(|(loc, kind)| (loc, kind.to_owned())).collect();
        assert_eq!(found, expected, "{body}: {reply}");
    }
    // Not JSON at all: 422 on the body, as for every other operation.
    let (status, reply) = put(&server, "{not json").await;
    assert_eq!(status, 422, "{reply}");
    assert_eq!(reply["detail"][0]["loc"][0], "body");
    let (_, config) = server.get_json("/config").await;
    assert_eq!(config, expected, "refused changes left the knobs alone");

    // min_chunks may go up to the new retrieval_top_k in the same request.
    let (status, config) = put(&server, r#"{"retrieval_top_k": 30, "min_chunks": 30}"#).await;
    assert_eq!(status, 200, "{config}");
    expected["retrieval_top_k"] = json!(30);
    expected["min_chunks"] = json!(30);

    // Persisted: a restarted process on the same database reads them back.
    server.terminate();
    let server = TestServer::start_in(data.path(), &[]);
    let (_, config) = server.get_json("/config").await;
    assert_eq!(config, expected);
}

/// Polls `server` until `/config` shows `field` = `value`; returns how long that took.
async fn wait_for(server: &TestServer, field: &str, value: &Value) -> Duration {
    let started = Instant::now();
    loop {
        let (status, config) = server.get_json("/config").await;
        assert_eq!(status, 200, "{config}");
        if &config[field] == value {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{field} never became {value}: {config}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn api_replicas_on_one_postgres_share_the_knobs() {
    let postgres = Service::start("postgres");
    let scratch = tempfile::tempdir().expect("scratch");
    let spawn = |name: &str| {
        let dir = scratch.path().join(name);
        std::fs::create_dir_all(&dir).expect("process dir");
        TestServer::spawn(Role::Api, &dir, &[("DATABASE_URL", postgres.url.as_str())])
    };
    let first = spawn("api-1");
    let second = spawn("api-2");
    // Both read (and cache) the defaults.
    for server in [&first, &second] {
        let (_, config) = server.get_json("/config").await;
        assert_eq!(config, defaults());
    }

    let (status, config) = put(&first, r#"{"retrieval_top_k": 42}"#).await;
    assert_eq!((status, &config["retrieval_top_k"]), (200, &json!(42)));
    let seen_after = wait_for(&second, "retrieval_top_k", &json!(42)).await;
    assert!(
        seen_after <= Duration::from_secs(2),
        "the other replica saw it after {seen_after:?}"
    );

    // A partial change through the second keeps the first one's change.
    let (status, config) = put(&second, r#"{"keyword_weight": 2.5}"#).await;
    assert_eq!(status, 200, "{config}");
    assert_eq!(
        (&config["retrieval_top_k"], &config["keyword_weight"]),
        (&json!(42), &json!(2.5))
    );
    let seen_after = wait_for(&first, "keyword_weight", &json!(2.5)).await;
    assert!(
        seen_after <= Duration::from_secs(2),
        "the other replica saw it after {seen_after:?}"
    );

    // Both replicas gone; a new one reads the same set from the database.
    drop(first);
    drop(second);
    let third = spawn("api-3");
    let (_, config) = third.get_json("/config").await;
    let mut expected = defaults();
    expected["retrieval_top_k"] = json!(42);
    expected["keyword_weight"] = json!(2.5);
    assert_eq!(config, expected);
}
