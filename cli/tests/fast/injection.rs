//! Injection and abuse through the API (issue #7, part 5): path traversal in file names,
//! oversized and malformed multipart bodies, SQL, Cypher and full-text syntax through every
//! string parameter (`common/abuse.rs`, shared with the production shape's
//! `production_abuse.rs`), huge `limit`/`k` values. Nothing answers 500, and what is stored
//! is read back with SQLite's own client to show it went in as data, never as code or a path.

use crate::abuse;
use crate::common;
use crate::hostile;

use std::path::Path;
use std::time::Duration;

use abuse::send;
use common::TestServer;
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};

const JOB_TIMEOUT: Duration = Duration::from_secs(180);

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

    let created_titles = abuse::sweep_every_parameter(&server, &book).await;

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
    let key = server.admin_key.clone().expect("the test server's admin key");
    let multipart = |body: Vec<u8>| {
        unpooled
            .post(&upload_url)
            .header("x-api-key", key.as_str())
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
    // In the order above: over the limit (413), the name cut to 255 characters (202), over
    // the limit (413), no single file part or no end (422), nothing (400).
    let expected = [413, 202, 413, 422, 422, 422, 400];
    assert_eq!(bodies.len(), expected.len());
    for ((what, body), expected) in bodies.into_iter().zip(expected) {
        let (status, answer) = send(multipart(body)).await;
        // A body over the limit is answered 413 before it is read, and the server may then
        // close the connection while the client still writes (RFC 9112, 9.6): the client can
        // see the reset instead of the answer. The server's health is checked below.
        if status == 0 && expected == 413 {
            println!("multipart abuse: {what} -> refused, connection closed before the answer was read");
            continue;
        }
        assert_ne!(status, 0, "{what}: the connection was dropped");
        assert_eq!(status, expected, "{what}: {answer}");
        println!("multipart abuse: {what} -> {status}");
    }
    let (status, _) = server.get_json("/health/ready").await;
    assert_eq!(status, 200);
}
