//! The OpenAPI document is the contract: what `hbi serve` answers must match it. A
//! property-based tester (schemathesis, installed by scripts/test) generates requests for
//! every operation from /openapi.json and checks each answer against the document: no 5xx,
//! only documented status codes, content types, headers and bodies. A generated client
//! (openapi-python-client) must take every operation and run README's walk-through.

use crate::common;

use std::process::Command;
use std::time::Instant;

use common::{TestServer, python_tools_path};
use serde_json::{Value, json};

/// A value the schema accepts, from its type, enum and bounds (properties: the required ones;
/// a property named `url`, an http URL).
fn valid_value(schema: &Value, schemas: &Value) -> Value {
    if let Some(name) = schema["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
    {
        return valid_value(&schemas[name], schemas);
    }
    if let Some(first) = schema["allOf"].as_array().and_then(|all| all.first()) {
        return valid_value(first, schemas);
    }
    if let Some(first) = schema["enum"].as_array().and_then(|values| values.first()) {
        return first.clone();
    }
    match schema["type"].as_str() {
        Some("object") => {
            let mut body = serde_json::Map::new();
            for name in schema["required"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                let value = match name {
                    "url" => json!("https://example.com/hook"),
                    _ => valid_value(&schema["properties"][name], schemas),
                };
                body.insert(name.to_owned(), value);
            }
            Value::Object(body)
        }
        Some("integer" | "number") => schema["minimum"].as_f64().map_or(json!(1), |min| json!(min as i64)),
        Some("boolean") => json!(true),
        Some("array") => {
            let items = usize::try_from(schema["minItems"].as_u64().unwrap_or(0)).unwrap_or(0);
            Value::Array(vec![valid_value(&schema["items"], schemas); items])
        }
        _ => json!("a"),
    }
}

/// Every JSON body refuses an unknown property exactly when its schema says
/// `additionalProperties: false` (a generated client or a tester trusts the document).
#[tokio::test(flavor = "multi_thread")]
async fn json_bodies_refuse_unknown_properties_exactly_where_the_document_says() {
    let server = TestServer::start(&[]);
    let (status, spec) = server.get_json("/openapi.json").await;
    assert_eq!(status, 200);
    let schemas = &spec["components"]["schemas"];
    let mut checked = 0;
    for (path, operations) in spec["paths"].as_object().expect("paths") {
        for (method, operation) in operations.as_object().expect("operations") {
            let Some(schema) = operation["requestBody"]["content"]
                .as_object()
                .and_then(|content| content.iter().find(|(kind, _)| kind.starts_with("application/json")))
                .map(|(_, media)| &media["schema"])
            else {
                continue;
            };
            let closed = match schema["$ref"]
                .as_str()
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
            {
                Some(name) => schemas[name]["additionalProperties"] == json!(false),
                None => schema["additionalProperties"] == json!(false),
            };
            let valid = valid_value(schema, schemas);
            let mut extra = valid.clone();
            extra["not_a_documented_property"] = json!(1);
            let send = |body: Value| {
                let request = server
                    .client
                    .request(method.to_uppercase().parse().expect("method"), server.url(path))
                    .json(&body);
                async move { request.send().await.expect("send").status().as_u16() }
            };
            let plain = send(valid.clone()).await;
            assert_ne!(plain, 422, "{method} {path}: {valid} is valid by the document");
            let with_extra = send(extra.clone()).await;
            assert_eq!(
                with_extra == 422,
                closed,
                "{method} {path}: {extra} answered {with_extra}; additionalProperties: false is {closed}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 4, "the JSON bodies were found: {checked}");
}

/// schemathesis against a real `hbi serve` (embedded shape, fresh data directory, the
/// harness's bootstrap admin key, which is never stored and so cannot be revoked by the
/// run): positive and negative data for every operation and the stateful phase, each answer
/// checked against the document, 405s for their `Allow` and requests without the key for
/// their 401. Left out: `positive_data_acceptance` (a schema cannot say "a PDF", "a valid
/// book id" or "min_chunks at most retrieval_top_k", which the server checks with 400 and
/// 422). Bounded: a fixed seed and a few examples per operation (under a minute).
#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_no_answer_that_breaks_the_document() {
    // With a master key, so that webhooks are registered, not refused for the lack of one.
    let server = TestServer::start(&[(
        "HBI__WEBHOOKS__MASTER_KEYS",
        "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    )]);
    let key = server.admin_key.clone().expect("the harness's admin key");
    let work = tempfile::tempdir().expect("work dir");
    let started = Instant::now();
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/contract/schemathesis.toml");
    let output = Command::new("python3")
        .args(["-m", "schemathesis.cli", "--no-color", "--config-file"])
        .arg(&config)
        .arg("run")
        .arg(server.url("/openapi.json"))
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_schema_conformance,response_headers_conformance,unsupported_method,\
             allow_header_conformance,missing_required_header,ignored_auth",
            "--max-examples",
            "12",
            "--seed",
            "20240611",
            "--workers",
            "2",
            "--request-timeout",
            "30",
            "--generation-database",
            "none",
            "--max-failures",
            "20",
        ])
        .arg("--header")
        .arg(format!("X-API-Key: {key}"))
        .current_dir(work.path())
        .env("PYTHONPATH", python_tools_path())
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "schemathesis found answers that break the document (install it with scripts/test) \
         after {:?}:\n{stdout}\n{stderr}",
        started.elapsed()
    );
    assert!(
        stdout.contains("No issues found") || stdout.contains("passed"),
        "schemathesis ran its tests:\n{stdout}"
    );
}

/// Generates the Python client of `server`'s document into a fresh directory with
/// openapi-python-client; the directory and the document it came from.
fn generate_python_client(spec: &Value) -> tempfile::TempDir {
    let work = tempfile::tempdir().expect("work dir");
    let document = work.path().join("openapi.json");
    std::fs::write(&document, serde_json::to_vec(spec).expect("spec bytes")).expect("write spec");
    // No formatting hooks: ruff is beside the point here. A page image is bytes to the client
    // (the generator knows no image/png: the override its documentation gives for it).
    let config = work.path().join("config.yaml");
    std::fs::write(
        &config,
        "post_hooks: []\ncontent_type_overrides:\n  image/png: application/octet-stream\n",
    )
    .expect("write config");
    let output = Command::new("python3")
        .args(["-m", "openapi_python_client", "generate", "--meta", "none", "--path"])
        .arg(&document)
        .arg("--config")
        .arg(&config)
        .current_dir(work.path())
        .env("PYTHONPATH", python_tools_path())
        .output()
        .expect("run python3");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && !said.to_lowercase().contains("warning"),
        "openapi-python-client (install it with scripts/test):\n{said}"
    );
    work
}

/// openapi-python-client generates a client for every operation: no warning (it skips an
/// operation it cannot type, e.g. a parameter whose schema is `allOf` of an enum).
#[tokio::test(flavor = "multi_thread")]
async fn a_generated_python_client_takes_every_operation() {
    let server = TestServer::start(&[]);
    let (status, spec) = server.get_json("/openapi.json").await;
    assert_eq!(status, 200);
    let work = generate_python_client(&spec);
    let api = work.path().join("hbi_hybrid_book_index_client/api");
    let operations = std::fs::read_dir(&api)
        .expect("generated api modules")
        .filter_map(Result::ok)
        .filter_map(|tag| std::fs::read_dir(tag.path()).ok())
        .flatten()
        .filter_map(Result::ok)
        .filter(|module| module.file_name() != "__init__.py")
        .count();
    let documented: usize = spec["paths"]
        .as_object()
        .expect("paths")
        .values()
        .filter_map(Value::as_object)
        .map(|operations| operations.len())
        .sum();
    assert_eq!(operations, documented, "one generated function per operation");
}

/// README's walk-through (create, upload, follow, ToC, index, page, search) run by the
/// generated client (cli/tests/contract/walk_through.py), each answer parsed into its models;
/// what it read is checked against the API's own answers.
#[tokio::test(flavor = "multi_thread")]
async fn the_generated_python_client_runs_the_readme_walk_through() {
    let server = TestServer::start(&[]);
    let (_, spec) = server.get_json("/openapi.json").await;
    let work = generate_python_client(&spec);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/contract/walk_through.py");
    let python_path = format!("{}:{}", work.path().display(), python_tools_path().display());
    let output = tokio::process::Command::new("python3")
        .arg(&script)
        .arg(&server.base)
        .arg(common::TEST_ADMIN_KEY)
        .arg(common::corpus_pdf("r-intro"))
        .env("PYTHONPATH", python_path)
        .output()
        .await
        .expect("run python3");
    assert!(
        output.status.success(),
        "the walk-through failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let read: Value = serde_json::from_slice(&output.stdout).expect("the walk-through prints JSON");
    assert_eq!(read["job_state"], "succeeded", "{read}");
    assert_eq!(read["pages_done"], 113, "{read}");

    let book_id = read["book_id"].as_str().expect("book id");
    let (_, toc) = server.get_json(&format!("/books/{book_id}/toc")).await;
    let titles: Vec<Value> = toc
        .as_array()
        .expect("toc")
        .iter()
        .map(|node| node["title"].clone())
        .collect();
    assert_eq!(read["toc_titles"], Value::Array(titles), "{read}");
    let (_, index) = server.get_json(&format!("/books/{book_id}/index?q=vector")).await;
    let terms: Vec<Value> = index
        .as_array()
        .expect("index")
        .iter()
        .map(|entry| entry["term"].clone())
        .collect();
    assert!(!terms.is_empty(), "{index}");
    assert_eq!(read["index_terms"], Value::Array(terms), "{read}");
    let page = read["first_chapter_page"].as_u64().expect("page");
    let (_, page_view) = server.get_json(&format!("/books/{book_id}/pages/{page}")).await;
    assert_eq!(read["page_label"], page_view["label"], "{read}");
    assert_eq!(read["page_section_path"], page_view["section_path"], "{read}");
    let (_, results) = server
        .get_json(&format!("/search?q=vector&mode=keyword&k=5&book_id={book_id}"))
        .await;
    let pages: Vec<Value> = results["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|hit| hit["page"].clone())
        .collect();
    assert_eq!(pages.len(), 5, "{results}");
    assert_eq!(read["search_pages"], Value::Array(pages), "{read}");
}
