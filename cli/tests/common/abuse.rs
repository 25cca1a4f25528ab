//! The injection and abuse sweep of issue #7, part 5, shared by `injection.rs` (the embedded
//! shape: SQLite, the SQL graph) and `production_abuse.rs` (PostgreSQL, Redis, S3,
//! FalkorDB): hostile strings through every string parameter, huge and malformed numbers.
//! Each caller then reads its own stores back to show the strings went in as data.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::TestServer;
use crate::hostile;

/// Strings aimed at SQL, Cypher, FTS5 and path handling.
pub const HOSTILE: &[&str] = &[
    "' OR '1'='1",
    "'; DROP TABLE books; --",
    "\"; DELETE FROM jobs; --",
    "1 UNION SELECT sha256, original_name FROM files --",
    "') RETURN 1 //",
    "MATCH (n) DETACH DELETE n",
    "x'}) DETACH DELETE n WITH 1 AS x MATCH (m {id: '",
    "` DETACH DELETE n //",
    "$book_id",
    "\"unbalanced",
    "NEAR(a b, 2)",
    "a OR b AND NOT c*",
    "title:value",
    "^start",
    "*",
    "%_%",
    "\\",
    "../../etc/passwd",
    "..%2F..%2Fetc%2Fpasswd",
    "nul\u{0}byte",
    "\u{202e}bidi\u{200b}",
    "😀 ünïcödé",
];

/// One request's outcome, kept to list every failure at once.
struct Probe {
    what: String,
    status: u16,
}

/// The status and JSON body of a request; status 0 when the server dropped the connection
/// without an answer (as when a handler panics).
pub async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let Ok(response) = request.send().await else {
        return (0, Value::Null);
    };
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The URL of `segments` under the server, each escaped as one path segment.
fn url_of(server: &TestServer, segments: &[&str]) -> reqwest::Url {
    let mut url = reqwest::Url::parse(&server.base).expect("base url");
    url.path_segments_mut().expect("a base with a path").extend(segments);
    url
}

/// Sends raw bytes and reads the answer's head (for requests a well-behaved client cannot make).
fn raw_request(server: &TestServer, request: &str) -> String {
    use std::io::{Read, Write};
    let address = server.base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    // The server may answer and close before the whole request is written.
    let _ = stream.write_all(request.as_bytes());
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    while let Ok(read) = stream.read(&mut buffer) {
        if read == 0 || answer.len() > 4096 {
            break;
        }
        answer.extend_from_slice(&buffer[..read]);
        if answer.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// Sends every [`HOSTILE`] string through every string parameter (bodies, paths, queries),
/// then huge, negative and malformed numbers, against a server where `book` is a processed
/// book. Fails on any 5xx (but 503 from `/query` without a language model) or dropped
/// connection; returns the titles of the books it created, as they must be stored.
pub async fn sweep_every_parameter(server: &TestServer, book: &str) -> Vec<String> {
    let client = &server.client;
    let mut probes: Vec<Probe> = Vec::new();
    let mut created_titles = Vec::new();
    for &text in HOSTILE {
        // Body strings: stored exactly and read back exactly.
        let (status, created) = send(
            client
                .post(server.url("/books/"))
                .json(&json!({"title": text, "author": text})),
        )
        .await;
        probes.push(Probe {
            what: format!("POST /books/ title {text:?}"),
            status,
        });
        // PostgreSQL cannot store a NUL: both shapes refuse it alike.
        if text.contains('\u{0}') {
            assert_eq!(status, 422, "a title with a NUL: {created}");
        }
        if status == 201 {
            let id = created["id"].as_str().expect("id");
            let (_, read) = server.get_json(&format!("/books/{id}")).await;
            assert_eq!(read["title"], text.trim(), "{read}");
            assert_eq!(read["author"], text.trim(), "{read}");
            created_titles.push(text.trim().to_owned());
        }
        let (status, key) = send(
            client
                .post(server.url("/keys"))
                .json(&json!({"name": text, "scope": "read"})),
        )
        .await;
        probes.push(Probe {
            what: format!("POST /keys name {text:?}"),
            status,
        });
        if status == 201 {
            let (_, keys) = server.get_json("/keys").await;
            let listed = keys
                .as_array()
                .into_iter()
                .flatten()
                .any(|listed| listed["id"] == key["id"] && listed["name"] == text);
            assert!(listed, "key {text:?} listed with its name verbatim: {keys}");
        }
        // The key header is looked up in the key store: refused, never a 5xx.
        if let Ok(value) = reqwest::header::HeaderValue::from_str(text) {
            let (status, _) = send(
                reqwest::Client::new()
                    .get(server.url("/books/"))
                    .header("x-api-key", value),
            )
            .await;
            probes.push(Probe {
                what: format!("GET /books/ X-API-Key {text:?}"),
                status,
            });
            assert_eq!(status, 401, "an unknown key {text:?}");
        }

        // Path parameters.
        for (method, segments) in [
            ("GET", vec!["books", text]),
            ("DELETE", vec!["books", text]),
            ("GET", vec!["books", text, "toc"]),
            ("GET", vec!["books", text, "quality"]),
            ("GET", vec!["books", text, "index"]),
            ("GET", vec!["books", text, "pages", "1"]),
            ("GET", vec!["books", book, "pages", text]),
            ("GET", vec!["jobs", text]),
            ("POST", vec!["jobs", text, "cancel"]),
            ("POST", vec!["jobs", text, "retry"]),
            ("POST", vec!["dlq", text, "requeue"]),
            ("DELETE", vec!["dlq", text]),
            ("DELETE", vec!["keys", text]),
        ] {
            let url = url_of(server, &segments);
            let request = match method {
                "GET" => client.get(url),
                "POST" => client.post(url),
                _ => client.delete(url),
            };
            let (status, _) = send(request).await;
            probes.push(Probe {
                what: format!("{method} /{}", segments.join("/")),
                status,
            });
        }
        let upload_path = url_of(server, &["books", text, "upload"]);
        let (status, _) = server
            .upload_to(upload_path.path(), hostile::good_book(), "x.pdf")
            .await;
        probes.push(Probe {
            what: format!("POST {upload_path} (upload)"),
            status,
        });

        // Query parameters.
        let queries: Vec<(&str, Vec<(&str, &str)>)> = vec![
            ("/books/", vec![("skip", text), ("limit", text)]),
            ("/jobs", vec![("state", text), ("limit", text)]),
            ("/search", vec![("q", text), ("mode", "keyword")]),
            ("/search", vec![("q", text), ("mode", text)]),
            (
                "/search",
                vec![("q", "vectors"), ("mode", "keyword"), ("book_id", text)],
            ),
            (
                "/search",
                vec![("q", "vectors"), ("mode", "keyword"), ("section", text)],
            ),
            (
                "/search",
                vec![("q", text), ("mode", "keyword"), ("boost", "true"), ("book_id", book)],
            ),
            ("/terms", vec![("q", text)]),
        ];
        for (path, query) in queries {
            let (status, _) = send(client.get(server.url(path)).query(&query)).await;
            probes.push(Probe {
                what: format!("GET {path} {query:?}"),
                status,
            });
        }
        let (status, _) = send(
            client
                .get(server.url(&format!("/books/{book}/index")))
                .query(&[("q", text)]),
        )
        .await;
        probes.push(Probe {
            what: format!("GET /books/{{id}}/index q={text:?}"),
            status,
        });

        // JSON bodies elsewhere: a question (no language model here: 503) and the knobs.
        let (status, _) = send(
            client
                .post(server.url("/query"))
                .json(&json!({"query": text, "book_id": text})),
        )
        .await;
        probes.push(Probe {
            what: format!("POST /query {text:?}"),
            status,
        });
        let (status, _) = send(
            client
                .put(server.url("/config"))
                .json(&json!({"temperature": text, text: 1})),
        )
        .await;
        probes.push(Probe {
            what: format!("PUT /config {text:?}"),
            status,
        });
    }

    // Huge, negative and malformed numbers where a count or a page is expected.
    for (path, query) in [
        ("/books/", vec![("limit", "1000000000000")]),
        ("/books/", vec![("limit", "18446744073709551616")]),
        ("/books/", vec![("skip", "18446744073709551615")]),
        ("/books/", vec![("limit", "-1")]),
        ("/books/", vec![("limit", "1e3")]),
        ("/jobs", vec![("limit", "18446744073709551615")]),
        ("/search", vec![("q", "vectors"), ("k", "4294967296")]),
        ("/search", vec![("q", "vectors"), ("k", "1000000000")]),
        ("/search", vec![("q", "vectors"), ("k", "0")]),
        ("/search", vec![("q", "vectors"), ("k", "-1")]),
        ("/search", vec![("q", "vectors"), ("k", "NaN")]),
        ("/search", vec![("q", &*"x".repeat(60_000))]),
    ] {
        let (status, body) = send(client.get(server.url(path)).query(&query)).await;
        if status == 200 {
            let listed = body
                .as_array()
                .or_else(|| body["results"].as_array())
                .map_or(0, Vec::len);
            assert!(listed <= 1000, "{path} {query:?} answered {listed} items");
        }
        probes.push(Probe {
            what: format!(
                "GET {path} {:?}",
                query
                    .iter()
                    .map(|(k, v)| (k, &v[..v.len().min(40)]))
                    .collect::<Vec<_>>()
            ),
            status,
        });
    }
    // Past 64 KiB the request line itself is refused by the HTTP layer (414), before any
    // handler; sent raw, since a client may see the connection close while still writing.
    let answer = raw_request(
        server,
        &format!("GET /search?q={} HTTP/1.1\r\nHost: x\r\n\r\n", "x".repeat(100_000)),
    );
    assert!(
        answer.starts_with("HTTP/1.1 414"),
        "{}",
        &answer[..answer.len().min(200)]
    );
    for page in ["0", "-1", "4294967296", "99999999999999999999999"] {
        let (status, _) = send(client.get(server.url(&format!("/books/{book}/pages/{page}")))).await;
        probes.push(Probe {
            what: format!("GET /books/{{id}}/pages/{page}"),
            status,
        });
    }
    for top_k in [json!(0), json!(1_000_000_000), json!(-1), json!(1e300), json!("10")] {
        let (status, _) = send(
            client
                .post(server.url("/query"))
                .json(&json!({"query": "vectors", "top_k": top_k})),
        )
        .await;
        probes.push(Probe {
            what: format!("POST /query top_k {top_k}"),
            status,
        });
    }

    let server_errors: Vec<String> = probes
        .iter()
        .filter(|probe| {
            let no_llm = probe.status == 503 && probe.what.starts_with("POST /query");
            (probe.status >= 500 && !no_llm) || probe.status == 0
        })
        .map(|probe| format!("{} -> {}", probe.what, probe.status))
        .collect();
    assert!(
        server_errors.is_empty(),
        "{} of {} requests answered a server error:\n{}",
        server_errors.len(),
        probes.len(),
        server_errors.join("\n")
    );
    println!("{} hostile requests, none answered 5xx", probes.len());

    created_titles
}
