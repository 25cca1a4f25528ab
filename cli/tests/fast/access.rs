//! Who may call the API, against the real `hbi serve`: API keys and their scopes, key
//! management, the bootstrap and first-start admin keys, rate limits, CORS, authentication
//! off for local use, and no key or secret in the JSON logs.

use crate::common;

use std::process::Command;

use common::{TEST_ADMIN_KEY, TestServer, client_with_key, client_without_key, hbi_binary};
use serde_json::{Value, json};

/// Status, `WWW-Authenticate` and JSON body of a request.
async fn send(request: reqwest::RequestBuilder) -> (u16, Option<String>, Value) {
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    (status, challenge, response.json().await.unwrap_or(Value::Null))
}

/// Makes a key through POST /keys with the admin client; returns (id, key).
async fn make_key(server: &TestServer, name: &str, scope: &str) -> (String, String) {
    let (status, _, key) = send(
        server
            .client
            .post(server.url("/keys"))
            .json(&json!({"name": name, "scope": scope})),
    )
    .await;
    assert_eq!(status, 201, "POST /keys: {key}");
    assert_eq!(key["scope"], scope);
    let secret = key["key"].as_str().expect("the key, once").to_owned();
    assert!(secret.starts_with("hbi_") && secret.len() > 60, "{secret}");
    let prefix = key["prefix"].as_str().expect("prefix");
    assert!(secret.starts_with(prefix) && prefix.len() < 20, "{prefix}");
    (key["id"].as_str().expect("id").to_owned(), secret)
}

/// The value of one `hbi_http_rejected_total` series.
async fn rejected(server: &TestServer, reason: &str) -> f64 {
    let text = server.metrics_text().await;
    let series = format!("hbi_http_rejected_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&series))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("{series} in /metrics"))
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_need_a_key_and_each_operation_its_scope() {
    let server = TestServer::start(&[]);
    let anonymous = client_without_key();

    // Open: probes, scrapers and the API documents.
    for path in [
        "/health",
        "/health/ready",
        "/metrics",
        "/openapi.json",
        "/docs",
        "/redoc",
    ] {
        let status = anonymous.get(server.url(path)).send().await.expect("GET").status();
        assert_eq!(status.as_u16(), 200, "{path} needs no key");
    }

    // No key: 401 in FastAPI's shape, with a challenge.
    let (status, challenge, body) = send(anonymous.post(server.url("/books/")).json(&json!({"title": "t"}))).await;
    assert_eq!((status, body), (401, json!({"detail": "Not authenticated"})));
    assert_eq!(challenge.as_deref(), Some("Bearer"));
    assert_eq!(send(anonymous.get(server.url("/books"))).await.0, 401, "reads too");

    // A key nobody made, by either header.
    let forged = format!("hbi_{}", "0".repeat(64));
    let (status, challenge, body) = send(client_with_key(&forged).get(server.url("/books"))).await;
    assert_eq!((status, body), (401, json!({"detail": "Invalid API key"})));
    assert!(challenge.is_some_and(|c| c.contains("invalid_token")));
    let (status, _, _) = send(anonymous.get(server.url("/books")).bearer_auth(&forged)).await;
    assert_eq!(status, 401);

    // Keys of each scope, made by the bootstrap admin.
    let (reader_id, reader_key) = make_key(&server, "dashboard", "read").await;
    let (_, writer_key) = make_key(&server, "ingest bot", "write").await;
    let reader = client_with_key(&reader_key);
    let book_id = server.create_book("Scoped").await;

    assert_eq!(send(reader.get(server.url("/books"))).await.0, 200);
    assert_eq!(send(reader.get(server.url(&format!("/books/{book_id}")))).await.0, 200);
    let (status, _, body) = send(reader.post(server.url("/books/")).json(&json!({"title": "t"}))).await;
    assert_eq!(status, 403, "read key cannot write: {body}");
    let detail = body["detail"].as_str().expect("detail");
    assert!(detail.contains("read") && detail.contains("write"), "{detail}");
    assert_eq!(
        send(reader.post(server.url("/query")).json(&json!({"query": "q"})))
            .await
            .0,
        403
    );

    // The writer, as a bearer token: writes, but no admin operation.
    let bearer = |request: reqwest::RequestBuilder| request.bearer_auth(&writer_key);
    let (status, _, book) = send(bearer(anonymous.post(server.url("/books/"))).json(&json!({"title": "w"}))).await;
    assert_eq!(status, 201, "{book}");
    for (method, path) in [
        ("DELETE", format!("/books/{book_id}")),
        ("GET", "/config".to_owned()),
        ("PUT", "/config".to_owned()),
        ("GET", "/dlq".to_owned()),
        ("GET", "/keys".to_owned()),
        ("POST", "/keys".to_owned()),
    ] {
        let request = anonymous.request(method.parse().expect("method"), server.url(&path));
        let (status, _, body) = send(bearer(request).json(&json!({}))).await;
        assert_eq!(status, 403, "{method} {path} needs admin: {body}");
    }
    // The admin may.
    assert_eq!(send(server.client.get(server.url("/config"))).await.0, 200);
    assert_eq!(send(server.client.get(server.url("/dlq"))).await.0, 200);

    // Lists never show a key; revoking one refuses it at once.
    let response = server.client.get(server.url("/keys")).send().await.expect("GET /keys");
    assert_eq!(response.status().as_u16(), 200);
    let listing = response.text().await.expect("body");
    assert!(
        !listing.contains(&reader_key) && !listing.contains(&writer_key),
        "{listing}"
    );
    let keys: Value = serde_json::from_str(&listing).expect("json");
    let names: Vec<&str> = keys
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|k| k["name"].as_str())
        .collect();
    assert_eq!(names, ["dashboard", "ingest bot"]);
    assert!(keys[0]["last_used_at"].is_string(), "use is recorded: {keys}");
    assert!(keys[0].get("key").is_none());

    let revoke = |id: &str| server.client.delete(server.url(&format!("/keys/{id}")));
    assert_eq!(send(revoke(&reader_id)).await.0, 204);
    assert_eq!(send(revoke(&reader_id)).await.0, 204, "revoking twice changes nothing");
    assert_eq!(send(reader.get(server.url("/books"))).await.0, 401);
    assert_eq!(send(revoke("0193c0de-0000-7000-8000-000000000000")).await.0, 404);
    assert_eq!(send(revoke("not-a-uuid")).await.0, 404);
    let (_, _, live) = send(server.client.get(server.url("/keys"))).await;
    assert_eq!(
        live.as_array().map(Vec::len),
        Some(1),
        "revoked keys are left out: {live}"
    );
    let (_, _, all) = send(server.client.get(server.url("/keys?include_revoked=true"))).await;
    assert!(all[0]["revoked_at"].is_string(), "{all}");

    // Bad requests to make a key: 422 in FastAPI's shape.
    for bad in [
        json!({"name": "x", "scope": "root"}),
        json!({"name": "", "scope": "read"}),
        json!({"name": "x", "scope": "read", "expires": "never"}),
    ] {
        let (status, _, body) = send(server.client.post(server.url("/keys")).json(&bad)).await;
        assert_eq!(status, 422, "{bad}: {body}");
        assert!(body["detail"][0]["loc"].is_array(), "{body}");
    }

    // Every refusal is counted by reason.
    for reason in ["missing_key", "invalid_key", "insufficient_scope"] {
        assert!(rejected(&server, reason).await >= 1.0, "{reason} counted");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_101st_request_in_a_minute_from_one_key_gets_429() {
    let server = TestServer::start(&[
        ("HBI__RATE_LIMIT__REQUESTS_PER_MINUTE", "100"),
        ("HBI__RATE_LIMIT__UPLOADS_PER_MINUTE", "2"),
    ]);
    let (_, key) = make_key(&server, "busy", "write").await;
    let busy = client_with_key(&key);
    for n in 1..=100 {
        let status = busy.get(server.url("/books")).send().await.expect("GET").status();
        assert_eq!(status.as_u16(), 200, "request {n} of 100");
    }
    let response = busy.get(server.url("/books")).send().await.expect("GET");
    assert_eq!(response.status().as_u16(), 429);
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=61).contains(&retry_after), "{retry_after}");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"], "RATE_LIMITED");
    assert_eq!(body["retry_after"], retry_after);
    assert!(body["detail"].as_str().is_some_and(|d| d.contains("100")), "{body}");

    // Per key: another key is not held back; open endpoints are not counted.
    assert_eq!(send(server.client.get(server.url("/books"))).await.0, 200);
    assert_eq!(send(busy.get(server.url("/health"))).await.0, 200);

    // Without a key, per address: guessing keys is limited too.
    let anonymous = client_without_key();
    for _ in 0..100 {
        assert_eq!(send(anonymous.get(server.url("/books"))).await.0, 401);
    }
    assert_eq!(send(anonymous.get(server.url("/books"))).await.0, 429);

    // Uploads have a limit of their own (the admin has used 2 requests of 100 so far).
    let book_id = server.create_book("Limited").await;
    for _ in 0..2 {
        let (status, _) = server.upload(&book_id, b"not a pdf".to_vec(), "x.pdf").await;
        assert!((400..500).contains(&status) && status != 429, "{status}");
    }
    let (status, body) = server.upload(&book_id, b"not a pdf".to_vec(), "x.pdf").await;
    assert_eq!(status, 429, "{body}");
    assert!(body["detail"].as_str().is_some_and(|d| d.contains("uploads")), "{body}");
    assert!(rejected(&server, "rate_limited").await >= 3.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_and_secrets_never_appear_in_the_logs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = TestServer::start_in(dir.path(), &[("HBI__LOG__LEVEL", "debug")]);
    let (key_id, key) = make_key(&server, "logged?", "write").await;
    let forged = format!("hbi_{}", "f".repeat(64));
    let anonymous = client_without_key();
    let book_id = server.create_book("Logs").await;
    for secret in [TEST_ADMIN_KEY, key.as_str(), forged.as_str()] {
        let _ = send(client_with_key(secret).get(server.url(&format!("/books/{book_id}")))).await;
        let _ = send(anonymous.get(server.url("/books")).bearer_auth(secret)).await;
        let _ = send(
            anonymous
                .post(server.url("/books/"))
                .bearer_auth(secret)
                .json(&json!({"title": "l"})),
        )
        .await;
    }
    assert_eq!(
        send(server.client.delete(server.url(&format!("/keys/{key_id}"))))
            .await
            .0,
        204
    );
    let _ = send(client_with_key(&key).get(server.url("/books"))).await;
    server.terminate();

    let logs = server.log_lines();
    assert!(
        logs.iter()
            .any(|line| line.contains("API key created") && line.contains(&key_id)),
        "the key's making is logged, by id"
    );
    assert!(
        logs.iter()
            .filter(|line| line.contains("request finished") && line.contains("\"status\":401"))
            .count()
            >= 3,
        "refused requests are logged"
    );
    for line in &logs {
        let event: Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("a JSON log line: {line}"));
        assert!(event.is_object());
        for secret in [TEST_ADMIN_KEY, key.as_str(), forged.as_str()] {
            assert!(!line.contains(secret), "a key reached the logs: {line}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_first_start_without_a_key_writes_one_admin_key_to_a_private_file() {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().expect("temp dir");
    let no_bootstrap = [("HBI_BOOTSTRAP_API_KEY", "")];
    let mut server = TestServer::start_in(dir.path(), &no_bootstrap);
    let path = dir.path().join("admin-api-key");
    let key = std::fs::read_to_string(&path)
        .expect("admin-api-key written")
        .trim()
        .to_owned();
    let mode = std::fs::metadata(&path).expect("metadata").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "readable by its owner only");
    assert!(key.starts_with("hbi_"));

    let admin = client_with_key(&key);
    assert_eq!(send(admin.get(server.url("/config"))).await.0, 200, "an admin key");
    assert_eq!(send(client_without_key().get(server.url("/books"))).await.0, 401);
    let logs = server.log_lines().join("\n");
    assert!(logs.contains(&path.display().to_string()), "the path is logged");
    assert!(!logs.contains(&key), "the key is not");
    server.terminate();

    // A restart keeps it and makes no other.
    let server = TestServer::start_in(dir.path(), &no_bootstrap);
    let again = std::fs::read_to_string(&path).expect("still there");
    assert_eq!(again.trim(), key);
    let (status, _, keys) = send(client_with_key(&key).get(server.url("/keys"))).await;
    assert_eq!(status, 200);
    assert_eq!(keys.as_array().map(Vec::len), Some(1), "{keys}");
}

#[tokio::test(flavor = "multi_thread")]
async fn authentication_is_off_only_when_configured_and_only_on_loopback() {
    let server = TestServer::start(&[("HBI__AUTH__ENABLED", "false"), ("HBI_BOOTSTRAP_API_KEY", "")]);
    let anonymous = client_without_key();
    let (status, _, book) = send(anonymous.post(server.url("/books/")).json(&json!({"title": "open"}))).await;
    assert_eq!(status, 201, "{book}");
    assert_eq!(send(anonymous.get(server.url("/config"))).await.0, 200);
    let warned = server
        .log_lines()
        .iter()
        .any(|line| line.contains("\"level\":\"WARN\"") && line.contains("authentication is OFF"));
    assert!(warned, "a clear warning at start");
    assert!(!server.data_dir.join("admin-api-key").exists(), "no key to make");

    // Not on an address others can reach.
    let dir = tempfile::tempdir().expect("temp dir");
    let output = Command::new(hbi_binary())
        .args(["serve", "--bind", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path())
        .env("HBI__AUTH__ENABLED", "false")
        .env("HBI__EMBEDDINGS__PROVIDER", "none")
        .output()
        .expect("run hbi");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("auth.enabled") && stderr.contains("loopback"),
        "{stderr}"
    );

    // A bootstrap key too short to be safe is refused as well.
    let output = Command::new(hbi_binary())
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("HBI_BOOTSTRAP_API_KEY", "weak-key-42")
        .output()
        .expect("run hbi");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("HBI_BOOTSTRAP_API_KEY"), "{stderr}");
    assert!(!stderr.contains("weak-key-42"), "the key is not echoed: {stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn cors_answers_preflights_from_configured_origins_only() {
    let server = TestServer::start(&[(
        "HBI__SERVER__CORS_ORIGINS",
        "https://app.example.com,https://admin.example.com",
    )]);
    let anonymous = client_without_key();
    let preflight = |origin: &str| {
        anonymous
            .request(reqwest::Method::OPTIONS, server.url("/books"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type, x-api-key")
    };
    let allowed = preflight("https://app.example.com").send().await.expect("preflight");
    assert_eq!(allowed.status().as_u16(), 200);
    let header = |response: &reqwest::Response, name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase()
    };
    assert_eq!(
        header(&allowed, "access-control-allow-origin"),
        "https://app.example.com"
    );
    assert!(header(&allowed, "access-control-allow-headers").contains("x-api-key"));
    assert!(header(&allowed, "access-control-allow-methods").contains("post"));

    let refused = preflight("https://evil.example").send().await.expect("preflight");
    assert_eq!(refused.status().as_u16(), 403);
    assert!(refused.headers().get("access-control-allow-origin").is_none());

    // A real cross-origin call still needs its key, and may read Retry-After.
    let response = server
        .client
        .get(server.url("/books"))
        .header("origin", "https://admin.example.com")
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        header(&response, "access-control-allow-origin"),
        "https://admin.example.com"
    );
    assert!(header(&response, "access-control-expose-headers").contains("retry-after"));
    let response = anonymous
        .get(server.url("/books"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status().as_u16(), 401);

    // Swagger UI on the API's own origin: its POSTs carry Origin, and are no CORS requests.
    let own_origin = server.base.clone();
    let (status, _, body) = send(
        server
            .client
            .post(server.url("/books/"))
            .header("origin", own_origin)
            .json(&json!({"title": "same origin"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert!(rejected(&server, "origin_not_allowed").await >= 1.0);
}
