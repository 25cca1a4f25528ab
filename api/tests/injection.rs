//! Injection and abuse through the API (issue #7, part 5): path traversal in file names,
//! oversized and malformed multipart bodies, SQL, Cypher and full-text syntax through every
//! string parameter, huge `limit`/`k` values. Nothing answers 500, and what is stored is read
//! back with SQLite's own client to show it went in as data, never as code or a path.

mod common;
#[path = "../../shared/extraction/tests/support/hostile.rs"]
mod hostile;

use std::path::Path;
use std::time::Duration;

use common::TestServer;
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use serde_json::{Value, json};

const JOB_TIMEOUT: Duration = Duration::from_secs(180);

/// Strings aimed at SQL, Cypher, FTS5 and path handling.
const HOSTILE: &[&str] = &[
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
async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
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

async fn sqlite_strings(data_dir: &Path, sql: &str) -> Vec<Option<String>> {
    let db = Database::connect(format!("sqlite://{}?mode=ro", data_dir.join("hbi.db").display()))
        .await
        .expect("open hbi.db read-only");
    db.query_all_raw(Statement::from_string(DbBackend::Sqlite, sql))
        .await
        .expect("query hbi.db")
        .iter()
        .map(|row| row.try_get_by_index::<Option<String>>(0).expect("a text column"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_strings_in_every_parameter_are_data() {
    let server = TestServer::start(&[("HBI__LIMITS__MAX_UPLOAD_MB", "2")]);
    // A processed book, so searches, the index, the graph and pages have something to hit.
    let book = server.create_book("a real book").await;
    let (status, body) = server.upload(&book, hostile::good_book(), "good.pdf").await;
    assert_eq!(status, 202, "{body}");
    let job = server
        .wait_for_job(body["job_id"].as_str().expect("job id"), JOB_TIMEOUT)
        .await;
    assert_eq!(job["state"], "succeeded", "{job}");

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
        if status == 201 {
            let id = created["id"].as_str().expect("id");
            let (_, read) = server.get_json(&format!("/books/{id}")).await;
            assert_eq!(read["title"], text.trim(), "{read}");
            assert_eq!(read["author"], text.trim(), "{read}");
            created_titles.push(text.trim().to_owned());
        }

        // Path parameters.
        for (method, segments) in [
            ("GET", vec!["books", text]),
            ("DELETE", vec!["books", text]),
            ("GET", vec!["books", text, "toc"]),
            ("GET", vec!["books", text, "quality"]),
            ("GET", vec!["books", text, "index"]),
            ("GET", vec!["books", text, "pages", "1"]),
            ("GET", vec!["books", book.as_str(), "pages", text]),
            ("GET", vec!["jobs", text]),
            ("POST", vec!["jobs", text, "cancel"]),
            ("POST", vec!["jobs", text, "retry"]),
            ("POST", vec!["dlq", text, "requeue"]),
            ("DELETE", vec!["dlq", text]),
        ] {
            let url = url_of(&server, &segments);
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
        let upload_path = url_of(&server, &["books", text, "upload"]);
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
                vec![
                    ("q", text),
                    ("mode", "keyword"),
                    ("boost", "true"),
                    ("book_id", book.as_str()),
                ],
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
        &server,
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

    // The stores hold the strings as data: every table is there, the real book is intact,
    // each hostile title was stored exactly once.
    let titles: Vec<String> = sqlite_strings(&server.data_dir, "SELECT title FROM books")
        .await
        .into_iter()
        .flatten()
        .collect();
    for title in &created_titles {
        assert_eq!(
            titles.iter().filter(|stored| *stored == title).count(),
            1,
            "{title:?} stored exactly once: {titles:?}"
        );
    }
    assert!(titles.iter().any(|t| t == "a real book"), "{titles:?}");
    let (status, toc) = server.get_json(&format!("/books/{book}/toc")).await;
    assert_eq!(status, 200, "{toc}");
    assert!(
        toc.as_array().is_some_and(|toc| !toc.is_empty()),
        "the graph is intact: {toc}"
    );
    let (_, found) = server.get_json("/search?q=vectors&mode=keyword").await;
    assert!(
        found["results"].as_array().is_some_and(|r| !r.is_empty()),
        "the full-text index is intact: {found}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn file_names_never_become_paths_and_bodies_stay_bounded() {
    let server = TestServer::start(&[("HBI__LIMITS__MAX_UPLOAD_MB", "1")]);
    let marker = format!("hbi-traversal-{}", std::process::id());
    let names = [
        format!("../../../../../../tmp/{marker}-a.pdf"),
        format!("..\\..\\..\\{marker}-b.pdf"),
        format!("/tmp/{marker}-c.pdf"),
        format!("scratch/../../{marker}-d.pdf"),
        format!("%2e%2e%2f%2e%2e%2f{marker}-e.pdf"),
        format!("{marker}-f\u{0}.pdf/../../x"),
        format!("..{}", "/..".repeat(2_000)),
        "x".repeat(10_000),
    ];
    let mut accepted = 0;
    for (i, name) in names.iter().enumerate() {
        // A distinct file each time (bytes after %%EOF), so each is stored with its name.
        let mut pdf = hostile::good_book();
        pdf.extend_from_slice(format!("% copy {i}\n").as_bytes());
        let book = server.create_book(&format!("traversal {i}")).await;
        let (status, body) = server.upload(&book, pdf, name).await;
        // A NUL byte cannot travel in a part header: the multipart parser refuses it (400).
        if name.contains('\u{0}') {
            assert_eq!(status, 400, "{name:?}: {body}");
            assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()), "{body}");
        } else {
            assert_eq!(status, 202, "{name:?}: {body}");
            accepted += 1;
        }
    }

    // Stored names are labels: one path component, no separators or control characters.
    let stored = sqlite_strings(&server.data_dir, "SELECT original_name FROM files").await;
    assert_eq!(stored.len(), accepted, "{stored:?}");
    for name in stored.iter().flatten() {
        assert!(
            !name.contains('/') && !name.contains('\\') && !name.chars().any(char::is_control),
            "{name:?}"
        );
        assert!(name != ".." && name.chars().count() <= 255, "{name:?}");
    }
    // Nothing was written outside the blob store's own layout.
    for candidate in ["a", "b", "c", "d", "e", "f"] {
        assert!(!Path::new(&format!("/tmp/{marker}-{candidate}.pdf")).exists());
    }
    let mut blob_files = Vec::new();
    let mut stack = vec![server.data_dir.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read data dir").flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            assert!(
                !name.contains(&marker),
                "a file named after the upload: {}",
                path.display()
            );
            if path.is_dir() {
                stack.push(path);
            } else if path.starts_with(server.data_dir.join("blobs")) {
                blob_files.push(path);
            }
        }
    }
    assert_eq!(blob_files.len(), accepted, "{blob_files:?}");
    for path in &blob_files {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let hash = name.strip_suffix(".pdf").unwrap_or_default();
        assert!(
            hash.len() == 64 && hash.chars().all(|c| c.is_ascii_hexdigit()),
            "content-addressed blob names only: {}",
            path.display()
        );
        let shard = path.parent().and_then(|p| p.file_name()).and_then(|n| n.to_str());
        assert_eq!(shard, Some(&hash[..2]), "{}", path.display());
    }

    // Abusive multipart bodies: refused with a 4xx, never a 5xx, the server unharmed.
    let book = server.create_book("multipart abuse").await;
    let upload_url = server.url(&format!("/books/{book}/upload"));
    let boundary = "hbi-boundary";
    // A fresh connection per request: the server may answer a refused body before reading
    // all of it and then close the connection, which a pooled one would trip over next time.
    let unpooled = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client");
    let multipart = |body: Vec<u8>| {
        unpooled
            .post(&upload_url)
            .header("content-type", format!("multipart/form-data; boundary={boundary}"))
            .body(body)
    };
    let part = |headers: &str, content: &[u8]| {
        let mut out = format!("--{boundary}\r\n{headers}\r\n\r\n").into_bytes();
        out.extend_from_slice(content);
        out.extend_from_slice(b"\r\n");
        out
    };
    let close = format!("--{boundary}--\r\n").into_bytes();
    let pdf_part = part(
        "Content-Disposition: form-data; name=\"file\"; filename=\"a.pdf\"\r\nContent-Type: application/pdf",
        b"%PDF-1.4\n",
    );
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        (
            "20 000 small fields before the file",
            [
                (0..20_000)
                    .flat_map(|i| part(&format!("Content-Disposition: form-data; name=\"f{i}\""), b"x"))
                    .collect::<Vec<u8>>(),
                pdf_part.clone(),
                close.clone(),
            ]
            .concat(),
        ),
        (
            "a part header of a megabyte",
            [
                part(
                    &format!(
                        "Content-Disposition: form-data; name=\"file\"; filename=\"{}.pdf\"",
                        "a".repeat(1 << 20)
                    ),
                    b"%PDF-1.4\n",
                ),
                close.clone(),
            ]
            .concat(),
        ),
        (
            "a file part over the limit without a declared length",
            [
                part(
                    "Content-Disposition: form-data; name=\"file\"; filename=\"big.pdf\"",
                    &[b"%PDF-1.4\n".as_slice(), &vec![b'0'; 3 << 20]].concat(),
                ),
                close.clone(),
            ]
            .concat(),
        ),
        (
            "no file part",
            [
                part("Content-Disposition: form-data; name=\"other\"", b"x"),
                close.clone(),
            ]
            .concat(),
        ),
        (
            "two file parts",
            [pdf_part.clone(), pdf_part.clone(), close.clone()].concat(),
        ),
        ("no closing boundary", pdf_part.clone()),
        ("an empty body", Vec::new()),
    ];
    for (what, body) in bodies {
        let (status, answer) = send(multipart(body)).await;
        assert_ne!(status, 0, "{what}: the connection was dropped");
        assert!(
            (400..500).contains(&status) || status == 202,
            "{what}: {status} {answer}"
        );
        println!("multipart abuse: {what} -> {status}");
    }
    let (status, _) = server.get_json("/health/ready").await;
    assert_eq!(status, 200);
}
