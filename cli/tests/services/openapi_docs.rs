//! The API documents itself: a valid OpenAPI 3 document covering every route, and Swagger
//! UI and ReDoc that render every operation in a real browser with no network beyond HBI.

use crate::common;

use std::process::Command;

use common::{TestServer, python_tools_path};
use serde_json::Value;

/// (method, path) of every operation the API must document.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/health"),
    ("get", "/health/live"),
    ("get", "/health/ready"),
    ("get", "/stats"),
    ("get", "/metrics"),
    ("post", "/books"),
    ("get", "/books"),
    ("get", "/books/{book_id}"),
    ("delete", "/books/{book_id}"),
    ("post", "/books/{book_id}/upload"),
    ("get", "/books/{book_id}/toc"),
    ("get", "/books/{book_id}/index"),
    ("get", "/books/{book_id}/pages/{number}"),
    ("get", "/books/{book_id}/pages/{number}/image"),
    ("get", "/books/{book_id}/pages/{number}/words"),
    ("get", "/books/{book_id}/labels/{label}"),
    ("get", "/books/{book_id}/quality"),
    ("get", "/search"),
    ("get", "/terms"),
    ("get", "/jobs"),
    ("get", "/jobs/{job_id}"),
    ("get", "/jobs/{job_id}/events"),
    ("post", "/jobs/{job_id}/cancel"),
    ("post", "/jobs/{job_id}/retry"),
    ("get", "/dlq"),
    ("post", "/dlq/{job_id}/requeue"),
    ("delete", "/dlq/{job_id}"),
    ("post", "/query"),
    ("get", "/config"),
    ("put", "/config"),
    ("post", "/keys"),
    ("get", "/keys"),
    ("delete", "/keys/{key_id}"),
    ("get", "/whoami"),
    ("get", "/libraries"),
    ("post", "/libraries"),
    ("get", "/libraries/{library_id}"),
    ("delete", "/libraries/{library_id}"),
    ("get", "/audit"),
    ("post", "/webhooks"),
    ("get", "/webhooks"),
    ("get", "/webhooks/{webhook_id}"),
    ("delete", "/webhooks/{webhook_id}"),
    ("get", "/webhooks/{webhook_id}/deliveries"),
];

/// Operations anyone may call, without an API key.
fn is_open(path: &str) -> bool {
    path.starts_with("/health") || path == "/metrics"
}

#[tokio::test(flavor = "multi_thread")]
async fn openapi_document_is_valid_and_complete() {
    let server = TestServer::start(&[]);
    let (status, spec) = server.get_json("/openapi.json").await;
    assert_eq!(status, 200);
    assert!(
        spec["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "OpenAPI 3: {}",
        spec["openapi"]
    );

    for (method, path) in ROUTES {
        let operation = &spec["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} is documented");
        assert!(
            operation["summary"].as_str().is_some_and(|s| !s.is_empty()),
            "{method} {path} has a summary"
        );
        assert!(
            operation["tags"].as_array().is_some_and(|t| !t.is_empty()),
            "{method} {path} has tags"
        );
        assert!(
            operation["operationId"].is_string(),
            "{method} {path} has an operationId"
        );
        let responses = operation["responses"].as_object().expect("responses");
        assert!(
            responses.keys().any(|code| code.starts_with('2')),
            "{method} {path} documents success"
        );
        if path.contains('{') {
            assert!(responses.contains_key("404"), "{method} {path} documents 404");
        }
    }
    // Security: the two ways to send a key, required by every operation but the open ones,
    // each with its refusals documented.
    let schemes = &spec["components"]["securitySchemes"];
    assert_eq!(schemes["ApiKeyHeader"]["type"], "apiKey");
    assert_eq!(schemes["ApiKeyHeader"]["in"], "header");
    assert_eq!(schemes["ApiKeyHeader"]["name"], "X-API-Key");
    assert_eq!(schemes["BearerToken"]["scheme"], "bearer");
    for (method, path) in ROUTES {
        let operation = &spec["paths"][path][method];
        let responses = &operation["responses"];
        if is_open(path) {
            assert!(operation.get("security").is_none(), "{method} {path} is open");
            assert!(responses.get("401").is_none(), "{method} {path} is open");
            continue;
        }
        assert_eq!(
            operation["security"],
            serde_json::json!([{"ApiKeyHeader": []}, {"BearerToken": []}]),
            "{method} {path} needs a key"
        );
        assert!(responses["401"].is_object(), "{method} {path} documents 401");
        assert!(
            responses["429"]["headers"]["Retry-After"].is_object(),
            "{method} {path} documents 429"
        );
        let scope_needed = operation["description"].as_str().unwrap_or_default();
        assert!(
            scope_needed.contains("Needs an API key"),
            "{method} {path}: {scope_needed}"
        );
        assert_eq!(
            responses.get("403").is_some(),
            *method != "get"
                || path.starts_with("/config")
                || path.starts_with("/dlq")
                || path.starts_with("/keys")
                || path.starts_with("/webhooks")
                || path.starts_with("/audit")
                || *path == "/stats",
            "{method} {path} documents 403 exactly when a read key (of one library) is not enough"
        );
    }

    let documented: usize = spec["paths"]
        .as_object()
        .expect("paths")
        .values()
        .map(|ops| ops.as_object().map_or(0, |o| o.len()))
        .sum();
    assert_eq!(documented, ROUTES.len(), "no undocumented or unexpected operations");

    // An independent validator, not our own reading of the spec.
    let file = tempfile::NamedTempFile::new().expect("temp");
    std::fs::write(file.path(), serde_json::to_vec(&spec).expect("spec bytes")).expect("write spec");
    let output = Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(file.path())
        .env("PYTHONPATH", python_tools_path())
        .output()
        .expect("run python3");
    assert!(
        output.status.success(),
        "openapi-spec-validator rejected the document (install it with scripts/test):\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Renders `url` in headless Chromium that can reach only 127.0.0.1 and returns the DOM.
fn render_offline(url: &str) -> String {
    let profile = tempfile::tempdir().expect("profile dir");
    let output = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            // Every host but HBI's fails to resolve: a CDN asset would not load.
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
            "--virtual-time-budget=20000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .output()
        .expect("chromium is installed (Debian package chromium; scripts/test installs it)");
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn external_assets(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    for marker in ["<script", "<link"] {
        for (start, _) in html.match_indices(marker) {
            let tag = &html[start..html[start..].find('>').map_or(html.len(), |end| start + end)];
            if tag.contains("src=\"http")
                || tag.contains("href=\"http")
                || tag.contains("src=\"//")
                || tag.contains("href=\"//")
            {
                found.push(tag.to_owned());
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn swagger_ui_and_redoc_render_every_operation_offline() {
    let server = TestServer::start(&[]);
    let (_, spec) = server.get_json("/openapi.json").await;
    let operations: Vec<(String, String)> = spec["paths"]
        .as_object()
        .expect("paths")
        .values()
        .flat_map(|ops| ops.as_object().expect("ops").values())
        .map(|op: &Value| {
            (
                op["tags"][0].as_str().expect("tag").to_owned(),
                op["operationId"].as_str().expect("operationId").to_owned(),
            )
        })
        .collect();
    assert_eq!(operations.len(), ROUTES.len());

    for page in ["/docs", "/redoc"] {
        let raw = server
            .client
            .get(server.url(page))
            .send()
            .await
            .expect("GET ui")
            .text()
            .await
            .expect("html");
        assert!(
            external_assets(&raw).is_empty(),
            "{page} loads assets from elsewhere: {:?}",
            external_assets(&raw)
        );
    }

    let swagger = render_offline(&server.url("/docs"));
    assert!(
        swagger.contains("btn authorize"),
        "Swagger UI offers its Authorize button"
    );
    for (tag, operation_id) in &operations {
        let id = format!("id=\"operations-{tag}-{operation_id}\"");
        assert!(swagger.contains(&id), "Swagger UI rendered {operation_id} ({id})");
    }

    let redoc = render_offline(&server.url("/redoc"));
    for (_, operation_id) in &operations {
        assert!(
            redoc.contains(&format!("operation/{operation_id}")),
            "ReDoc rendered {operation_id}"
        );
    }
}
