//! The production shape end to end: `hbi api` and separate `hbi worker` processes, each with
//! a scratch directory of its own, against real Redis (AOF on), PostgreSQL with pgvector, an
//! S3 server and FalkorDB, all on 127.0.0.1 and ports of their own. What the processes stored
//! is read back with each service's own client, not through HBI.

use crate::common;
use crate::production;
use crate::services;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::mcp::{Asked, check_against_http, mcp_client_run};
use common::{Role, TEST_ADMIN_KEY, TestServer, corpus_pdf};
use production::{Stack, sql_strings};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use serde_json::Value;
use sha2::{Digest, Sha256};

async fn sql_i64(db: &DatabaseConnection, sql: &str, values: Vec<sea_orm::Value>) -> i64 {
    let row = db
        .query_one_raw(Statement::from_sql_and_values(DbBackend::Postgres, sql, values))
        .await
        .expect("sql query")
        .expect("one row");
    row.try_get_by_index::<i64>(0).expect("an integer")
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex_lower(&Sha256::digest(bytes))
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A distinct, still valid PDF: a comment after the end marker changes the hash only.
fn variant(pdf: &[u8], n: usize) -> Vec<u8> {
    let mut bytes = pdf.to_vec();
    bytes.extend_from_slice(format!("\n% copy {n}\n").as_bytes());
    bytes
}

async fn upload(api: &TestServer, title: &str, pdf: Vec<u8>) -> (String, String) {
    let book_id = api.create_book(title).await;
    let (status, accepted) = api.upload(&book_id, pdf, "book.pdf").await;
    assert_eq!(status, 202, "upload: {accepted}");
    let job_id = accepted["job_id"].as_str().expect("job id").to_owned();
    (book_id, job_id)
}

/// Polls `path` until `accept` likes the answer, or panics with the last one.
async fn wait_until(server: &TestServer, path: &str, timeout: Duration, accept: impl Fn(u16, &Value) -> bool) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let (status, body) = match server.client.get(server.url(path)).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                (status, response.json().await.unwrap_or(Value::Null))
            }
            Err(err) => (0, Value::String(err.to_string())),
        };
        if accept(status, &body) {
            return body;
        }
        assert!(Instant::now() < deadline, "{path} after {timeout:?}: {status} {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn toc_titles(nodes: &Value, out: &mut Vec<String>) {
    for node in nodes.as_array().into_iter().flatten() {
        out.push(node["title"].as_str().unwrap_or_default().to_owned());
        toc_titles(&node["children"], out);
    }
}

/// Nodes whose id occurs more than once, over the whole graph.
async fn duplicate_graph_nodes(stack: &Stack) -> i64 {
    stack
        .cypher_count("MATCH (x) WITH x.id AS id, count(*) AS c WHERE c > 1 RETURN count(id) AS n")
        .await
}

/// Per book: pages and chunks stored once each (no page number or chunk position twice).
async fn assert_rows_unique(db: &DatabaseConnection, book_id: &str) {
    let count = async |sql: &str| sql_i64(db, sql, vec![book_id.into()]).await;
    let pages = count("SELECT count(*) FROM pages WHERE book_id = $1").await;
    let distinct_pages = count("SELECT count(DISTINCT number) FROM pages WHERE book_id = $1").await;
    let page_count = count("SELECT coalesce(page_count, -1)::bigint FROM books WHERE id = $1").await;
    assert!(pages > 0, "book {book_id} has no pages in PostgreSQL");
    assert_eq!(pages, distinct_pages, "book {book_id}: a page stored twice");
    assert_eq!(pages, page_count, "book {book_id}: pages vs page_count");
    let chunks = count("SELECT count(*) FROM chunks WHERE book_id = $1").await;
    let distinct_chunks = count("SELECT count(DISTINCT position) FROM chunks WHERE book_id = $1").await;
    assert!(chunks > 0, "book {book_id} has no chunks in PostgreSQL");
    assert_eq!(chunks, distinct_chunks, "book {book_id}: a chunk stored twice");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_book_flows_through_the_production_shape() {
    let stack = Stack::start();
    let api = stack.spawn(Role::Api, &[]);
    let worker = stack.spawn(Role::Worker, &[]);

    let ready = wait_until(&api, "/health/ready", Duration::from_secs(30), |status, _| {
        status == 200
    })
    .await;
    for (check, kind) in [
        ("database", "sql"),
        ("queue", "redis"),
        ("blob_store", "s3"),
        ("graph", "falkordb"),
    ] {
        assert_eq!(ready["checks"][check]["kind"], kind, "ready: {ready}");
    }
    wait_until(&worker, "/health/ready", Duration::from_secs(30), |status, _| {
        status == 200
    })
    .await;

    let pdf = std::fs::read(corpus_pdf("r-intro")).expect("r-intro pdf");
    let hash = sha256_hex(&pdf);
    let (book_id, job_id) = upload(&api, "An Introduction to R", pdf).await;
    let job = api.wait_for_job(&job_id, Duration::from_secs(240)).await;
    assert_eq!(job["state"], "succeeded", "job: {job}");
    assert_eq!(job["attempts"], 1, "job: {job}");
    let history = job["history"].as_array().expect("history");
    assert!(
        history[0]["worker_id"]
            .as_str()
            .is_some_and(|id| worker.log_lines().iter().any(|line| line.contains(id))),
        "the separate worker process ran the job: {job}"
    );

    // The original sits in the bucket HBI created, under its content hash, and nowhere on
    // the API's disk: the worker streamed it back from S3.
    assert_eq!(stack.s3_keys().await, BTreeSet::from([format!("originals/{hash}.pdf")]));
    let api_files: Vec<_> = walk(&api.data_dir)
        .into_iter()
        .filter(|path| path.extension().is_some_and(|ext| ext == "pdf"))
        .collect();
    assert!(api_files.is_empty(), "the API kept a local copy: {api_files:?}");

    // Pages and chunks in PostgreSQL, once each.
    let db = stack.sql().await;
    assert_rows_unique(&db, &book_id).await;
    let toc_rows = sql_i64(
        &db,
        "SELECT count(*) FROM toc_entries WHERE book_id = $1",
        vec![book_id.as_str().into()],
    )
    .await;

    // The ToC and index graph in FalkorDB, read back with Cypher.
    let book_node = format!("book:{book_id}");
    let chapters = stack
        .cypher_count(&format!(
            "MATCH (:Book {{id: '{book_node}'}})-[:HAS_TOC|HAS_CHILD*1..]->(c:Chapter) RETURN count(DISTINCT c) AS n"
        ))
        .await;
    assert_eq!(chapters, toc_rows, "every ToC entry is a Chapter node");
    let terms = stack
        .cypher_count(&format!(
            "MATCH (:Book {{id: '{book_node}'}})-[:HAS_INDEX_TERM]->(t:IndexTerm)-[:APPEARS_ON_PAGE]->(:Page) \
             RETURN count(DISTINCT t) AS n"
        ))
        .await;
    assert!(terms > 100, "index terms with page locators in the graph: {terms}");
    assert_eq!(duplicate_graph_nodes(&stack).await, 0, "a node id occurs twice");

    // GET /toc is served from the graph: a title changed there shows up in the API.
    let (status, toc) = api.get_json(&format!("/books/{book_id}/toc")).await;
    assert_eq!(status, 200, "toc: {toc}");
    let mut titles = Vec::new();
    toc_titles(&toc, &mut titles);
    assert_eq!(i64::try_from(titles.len()).expect("count"), toc_rows);
    let first = stack
        .cypher_strings(
            &format!(
                "MATCH (:Book {{id: '{book_node}'}})-[:HAS_TOC]->(c:Chapter) RETURN c.id AS id ORDER BY c.position LIMIT 1"
            ),
            "id",
        )
        .await;
    let first_id = first.first().expect("a top-level chapter");
    stack
        .cypher_write(&format!(
            "MATCH (c:Chapter {{id: '{first_id}'}}) SET c.title = 'Retitled in the graph'"
        ))
        .await;
    let (_, toc) = api.get_json(&format!("/books/{book_id}/toc")).await;
    assert_eq!(toc[0]["title"], "Retitled in the graph", "toc: {}", toc[0]);

    // MCP over this shape: at /mcp on the API, and `hbi mcp` over stdio on the same
    // services; both read the graph's ToC as GET /toc does. No model: ask says so.
    let no_model = Asked::RefusedWith("no language model is configured");
    let seen = mcp_client_run("http", &api.url("/mcp"), TEST_ADMIN_KEY, &book_id, &[]).await;
    check_against_http(&api, &book_id, &seen, no_model).await;
    let mut env = stack.env();
    env.push(("HBI_BOOTSTRAP_API_KEY".to_owned(), TEST_ADMIN_KEY.to_owned()));
    env.push(("HBI__EMBEDDINGS__PROVIDER".to_owned(), "none".to_owned()));
    let scratch = tempfile::tempdir().expect("scratch dir");
    env.push((
        "HBI__STORAGE__DATA_DIR".to_owned(),
        scratch.path().display().to_string(),
    ));
    let seen = mcp_client_run("stdio", common::hbi_binary(), TEST_ADMIN_KEY, &book_id, &env).await;
    check_against_http(&api, &book_id, &seen, no_model).await;

    // A page image is drawn by the API process from the original in S3, and kept there.
    let image = api
        .client
        .get(api.url(&format!("/books/{book_id}/pages/14/image")))
        .send()
        .await
        .expect("GET image");
    assert_eq!(image.status().as_u16(), 200);
    assert!(image.bytes().await.expect("png").starts_with(b"\x89PNG"));
    assert!(
        stack
            .s3_keys()
            .await
            .contains(&format!("derived/{hash}/page-00014-w1200.png")),
        "the image is kept in the bucket"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn two_workers_drain_twenty_jobs_exactly_once() {
    let stack = Stack::start();
    let api = stack.spawn(Role::Api, &[]);
    let workers = [
        stack.spawn(Role::Worker, &[("MAX_CONCURRENT_JOBS", "2")]),
        stack.spawn(Role::Worker, &[("MAX_CONCURRENT_JOBS", "2")]),
    ];
    wait_until(&api, "/health/ready", Duration::from_secs(30), |status, _| {
        status == 200
    })
    .await;

    let pdf = std::fs::read(corpus_pdf("r-intro")).expect("r-intro pdf");
    let mut uploads = Vec::new();
    for n in 0..20 {
        let copy = variant(&pdf, n);
        let hash = sha256_hex(&copy);
        let (book_id, job_id) = upload(&api, &format!("copy {n}"), copy).await;
        uploads.push((book_id, job_id, hash));
    }
    for (_, job_id, _) in &uploads {
        let job = api.wait_for_job(job_id, Duration::from_secs(600)).await;
        assert_eq!(job["state"], "succeeded", "job: {job}");
        assert_eq!(job["attempts"], 1, "one attempt each: {job}");
    }

    let db = stack.sql().await;
    let succeeded_attempts = sql_i64(
        &db,
        "SELECT count(*) FROM job_attempts WHERE outcome = 'succeeded'",
        vec![],
    )
    .await;
    assert_eq!(succeeded_attempts, 20, "each job succeeded exactly once");
    let workers_used = sql_i64(&db, "SELECT count(DISTINCT worker_id) FROM job_attempts", vec![]).await;
    assert_eq!(workers_used, 2, "both workers took jobs");
    for (book_id, _, _) in &uploads {
        assert_rows_unique(&db, book_id).await;
    }
    let expected_keys: BTreeSet<String> = uploads
        .iter()
        .map(|(_, _, hash)| format!("originals/{hash}.pdf"))
        .collect();
    assert_eq!(stack.s3_keys().await, expected_keys, "one blob per upload");
    assert_eq!(stack.cypher_count("MATCH (b:Book) RETURN count(b) AS n").await, 20);
    assert_eq!(duplicate_graph_nodes(&stack).await, 0, "a node id occurs twice");
    let toc_rows = sql_i64(&db, "SELECT count(*) FROM toc_entries", vec![]).await;
    assert_eq!(
        stack.cypher_count("MATCH (c:Chapter) RETURN count(c) AS n").await,
        toc_rows,
        "one Chapter node per ToC entry"
    );
    // A duplicate wake-up (relay or lease re-enqueue) may still sit in the queue for a moment;
    // the workers consume it as a no-op, so the queue must drain, not be empty at once.
    wait_until(&api, "/stats", Duration::from_secs(30), |_, stats| {
        stats["jobs_in_queue"] == 0
    })
    .await;
    drop(workers);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_worker_job_is_delivered_again_without_duplicates() {
    let stack = Stack::start();
    let api = stack.spawn(Role::Api, &[]);
    let mut doomed = stack.spawn(Role::Worker, &[]);
    let pdf = std::fs::read(corpus_pdf("octave")).expect("octave pdf");
    let hash = sha256_hex(&pdf);
    let (book_id, job_id) = upload(&api, "GNU Octave", pdf).await;
    wait_until(&api, &format!("/jobs/{job_id}"), Duration::from_secs(60), |_, job| {
        job["state"] == "running" && job["stage"] == "extract_text"
    })
    .await;
    doomed.kill();

    let survivor = stack.spawn(Role::Worker, &[]);
    let job = api.wait_for_job(&job_id, Duration::from_secs(300)).await;
    assert_eq!(job["state"], "succeeded", "job: {job}");
    assert_eq!(job["attempts"], 2, "job: {job}");
    let history = job["history"].as_array().expect("history");
    assert_eq!(history[0]["outcome"], "abandoned", "job: {job}");
    assert_eq!(history[1]["outcome"], "succeeded", "job: {job}");
    let survivor_id = history[1]["worker_id"].as_str().expect("worker id");
    assert!(
        survivor.log_lines().iter().any(|line| line.contains(survivor_id)),
        "the second worker finished it: {job}"
    );
    assert_ne!(history[0]["worker_id"], history[1]["worker_id"]);

    let db = stack.sql().await;
    assert_rows_unique(&db, &book_id).await;
    assert_eq!(stack.s3_keys().await, BTreeSet::from([format!("originals/{hash}.pdf")]));
    assert_eq!(duplicate_graph_nodes(&stack).await, 0, "a node id occurs twice");
    assert_eq!(stack.cypher_count("MATCH (b:Book) RETURN count(b) AS n").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_failing_every_attempt_lands_in_the_dlq_and_succeeds_when_requeued() {
    let stack = Stack::start();
    let api = stack.spawn(Role::Api, &[]);
    let worker = stack.spawn(Role::Worker, &[("HBI__WORKER__RETRY_BASE_DELAY_MS", "2000")]);
    wait_until(&api, "/health/ready", Duration::from_secs(30), |status, _| {
        status == 200
    })
    .await;

    // The cause: the graph server is down, so every attempt fails at the graph stage.
    stack.falkordb.stop();
    let ready = wait_until(&api, "/health/ready", Duration::from_secs(30), |status, _| {
        status == 503
    })
    .await;
    assert_eq!(ready["checks"]["graph"]["status"], "error", "ready: {ready}");
    assert_eq!(ready["checks"]["database"]["status"], "ok", "ready: {ready}");

    let pdf = std::fs::read(corpus_pdf("r-intro")).expect("r-intro pdf");
    let (book_id, job_id) = upload(&api, "An Introduction to R", pdf).await;
    let job = api.wait_for_job(&job_id, Duration::from_secs(300)).await;
    assert_eq!(job["state"], "dead", "job: {job}");
    assert_eq!(job["attempts"], 3, "job: {job}");
    assert_eq!(job["error_stage"], "graph", "job: {job}");
    let history = job["history"].as_array().expect("history");
    assert_eq!(history.len(), 3, "job: {job}");
    let time = |value: &Value| {
        chrono::DateTime::parse_from_rfc3339(value.as_str().expect("timestamp")).expect("rfc3339 timestamp")
    };
    let mut pauses = Vec::new();
    for pair in history.windows(2) {
        pauses.push((time(&pair[1]["started_at"]) - time(&pair[0]["finished_at"])).as_seconds_f64());
    }
    assert!(pauses[0] >= 1.9, "first retry after the 2 s backoff: {pauses:?}");
    assert!(pauses[1] >= 3.9, "second retry after 4 s: {pauses:?}");
    assert!(pauses[1] > pauses[0], "delays grow: {pauses:?}");
    for attempt in history {
        assert_eq!(attempt["stage"], "graph", "job: {job}");
        assert!(attempt["error"].as_str().is_some_and(|e| !e.is_empty()), "job: {job}");
    }

    let (status, dlq) = api.get_json("/dlq").await;
    assert_eq!(status, 200);
    let entry = dlq
        .as_array()
        .and_then(|jobs| jobs.iter().find(|entry| entry["id"] == job_id.as_str()))
        .unwrap_or_else(|| panic!("job {job_id} in the DLQ: {dlq}"));
    assert_eq!(entry["error_stage"], "graph", "dlq: {entry}");
    assert!(entry["error"].as_str().is_some_and(|e| !e.is_empty()), "dlq: {entry}");
    let (_, book) = api.get_json(&format!("/books/{book_id}")).await;
    assert_eq!(book["status"], "failed", "book: {book}");

    // The cause goes away; the worker never restarted, and the requeued job succeeds.
    stack.falkordb.restart();
    wait_until(&api, "/health/ready", Duration::from_secs(30), |status, _| {
        status == 200
    })
    .await;
    let response = api
        .client
        .post(api.url(&format!("/dlq/{job_id}/requeue")))
        .send()
        .await
        .expect("requeue");
    assert_eq!(response.status().as_u16(), 202, "requeue");
    let job = api.wait_for_job(&job_id, Duration::from_secs(240)).await;
    assert_eq!(job["state"], "succeeded", "job: {job}");
    assert_eq!(job["attempts"], 4, "history kept, one more attempt: {job}");
    let (_, dlq) = api.get_json("/dlq").await;
    assert_eq!(dlq.as_array().map(Vec::len), Some(0), "dlq: {dlq}");
    let chapters = stack
        .cypher_count(&format!(
            "MATCH (:Book {{id: 'book:{book_id}'}})-[:HAS_TOC]->(c:Chapter) RETURN count(c) AS n"
        ))
        .await;
    assert!(chapters > 0, "the graph was written on the requeued run");
    drop(worker);
}

/// Which readiness check names each service.
fn check_name(service: &services::Service) -> &'static str {
    match service.kind {
        "redis" => "queue",
        "postgres" => "database",
        "s3" => "blob_store",
        "falkordb" => "graph",
        other => panic!("unknown service {other}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_dependency_down_is_named_and_recovered_from() {
    let stack = Stack::start();
    let api = stack.spawn(Role::Api, &[]);
    let mut worker = stack.spawn(Role::Worker, &[]);
    wait_until(&api, "/health/ready", Duration::from_secs(30), |status, _| {
        status == 200
    })
    .await;
    let pdf = std::fs::read(corpus_pdf("r-intro")).expect("r-intro pdf");

    for (round, service) in [&stack.redis, &stack.postgres, &stack.s3, &stack.falkordb]
        .into_iter()
        .enumerate()
    {
        let name = check_name(service);
        service.stop();
        for process in [&api, &worker] {
            let ready = wait_until(process, "/health/ready", Duration::from_secs(60), |status, body| {
                status == 503 && body["checks"][name]["status"] == "error"
            })
            .await;
            assert!(
                ready["checks"][name]["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{name} down: {ready}"
            );
            let others_ok = ready["checks"]
                .as_object()
                .expect("checks")
                .iter()
                .filter(|(other, _)| other.as_str() != name)
                .all(|(_, check)| check["status"] == "ok");
            assert!(others_ok, "only {name} is reported down: {ready}");
        }
        if service.kind == "s3" {
            // An upload while the blob store is down is refused with a reason, not a 500.
            let book = api.create_book("while S3 is down").await;
            let (status, body) = api.upload(&book, pdf.clone(), "book.pdf").await;
            assert_eq!(status, 503, "upload with S3 down: {body}");
            assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()), "{body}");
        }
        service.restart();
        for process in [&api, &worker] {
            wait_until(process, "/health/ready", Duration::from_secs(60), |status, _| {
                status == 200
            })
            .await;
        }
        // The same worker, never restarted, does real work again.
        let (_, job_id) = upload(&api, &format!("after {name} came back"), variant(&pdf, 100 + round)).await;
        let job = api.wait_for_job(&job_id, Duration::from_secs(240)).await;
        assert_eq!(job["state"], "succeeded", "after {name} came back: {job}");
        let response = api
            .client
            .delete(api.url(&format!("/books/{}", job["book_id"].as_str().expect("book id"))))
            .send()
            .await
            .expect("delete");
        assert!(response.status().is_success(), "delete book");
    }

    // Uploads accepted while Redis is down wait in the outbox and run once it is back.
    stack.redis.stop();
    let mut waiting = Vec::new();
    for n in 0..2 {
        let (_, job_id) = upload(&api, &format!("outbox {n}"), variant(&pdf, 200 + n)).await;
        waiting.push(job_id);
    }
    stack.redis.restart();
    for job_id in &waiting {
        let job = api.wait_for_job(job_id, Duration::from_secs(240)).await;
        assert_eq!(job["state"], "succeeded", "outbox job: {job}");
    }

    // Jobs queued in Redis survive a Redis restart (AOF): no worker runs while it restarts.
    worker.terminate();
    let mut queued = Vec::new();
    for n in 0..3 {
        let (_, job_id) = upload(&api, &format!("queued {n}"), variant(&pdf, 300 + n)).await;
        queued.push(job_id);
    }
    wait_until(&api, "/stats", Duration::from_secs(30), |_, stats| {
        stats["jobs_in_queue"] == 3
    })
    .await;
    stack.redis.stop();
    stack.redis.restart();
    let (_, stats) = api.get_json("/stats").await;
    assert_eq!(
        stats["jobs_in_queue"], 3,
        "still queued in Redis after its restart: {stats}"
    );
    let _worker = stack.spawn(Role::Worker, &[]);
    for job_id in &queued {
        let job = api.wait_for_job(job_id, Duration::from_secs(240)).await;
        assert_eq!(job["state"], "succeeded", "queued job: {job}");
        assert_eq!(job["attempts"], 1, "queued job: {job}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_hands_an_unfinished_job_back_after_the_grace_period() {
    let stack = Stack::start();
    // Default heartbeat here: a lease of 90 s, so only the hand-back explains a quick takeover.
    let slow_leases = [("HBI__QUEUE__HEARTBEAT_SECS", "30")];
    let api = stack.spawn(Role::Api, &slow_leases);
    let mut stopping = stack.spawn(
        Role::Worker,
        &[
            ("HBI__QUEUE__HEARTBEAT_SECS", "30"),
            ("HBI__WORKER__SHUTDOWN_GRACE_SECS", "1"),
        ],
    );
    let pdf = std::fs::read(corpus_pdf("octave")).expect("octave pdf");
    let (book_id, job_id) = upload(&api, "GNU Octave", pdf).await;
    wait_until(&api, &format!("/jobs/{job_id}"), Duration::from_secs(60), |_, job| {
        job["state"] == "running" && job["stage"] == "extract_text"
    })
    .await;
    let asked = Instant::now();
    let exit = stopping.terminate();
    assert!(exit.success(), "a worker stopped by SIGTERM exits 0: {exit:?}");
    assert!(
        asked.elapsed() < Duration::from_secs(15),
        "stopped within the grace period and a little: {:?}",
        asked.elapsed()
    );
    assert!(
        stopping
            .log_lines()
            .iter()
            .any(|line| line.contains("handed back to the queue")),
        "the worker says it handed the job back"
    );

    let taken_over = Instant::now();
    let _next = stack.spawn(Role::Worker, &slow_leases);
    wait_until(&api, &format!("/jobs/{job_id}"), Duration::from_secs(60), |_, job| {
        job["attempts"] == 2
    })
    .await;
    assert!(
        taken_over.elapsed() < Duration::from_secs(60),
        "taken over before the 90 s lease could have run out: {:?}",
        taken_over.elapsed()
    );
    let job = api.wait_for_job(&job_id, Duration::from_secs(240)).await;
    assert_eq!(job["state"], "succeeded", "job: {job}");
    assert_eq!(job["attempts"], 2, "job: {job}");
    assert_eq!(job["history"][0]["outcome"], "abandoned", "job: {job}");
    let db = stack.sql().await;
    assert_rows_unique(&db, &book_id).await;
}

/// Every format the API takes, through `hbi api` and a separate `hbi worker` on PostgreSQL,
/// Redis, S3 and FalkorDB, with the embedding model on: an EPUB, a DjVu document and a scan
/// read by OCR in the book's language each end `succeeded` with pages, a ToC, chunks and a
/// vector for every chunk.
#[tokio::test(flavor = "multi_thread")]
async fn every_format_flows_through_the_production_shape() {
    let stack = Stack::start();
    let embeddings = [("HBI__EMBEDDINGS__PROVIDER", "minilm")];
    let api = stack.spawn(Role::Api, &embeddings);
    let _worker = stack.spawn(Role::Worker, &embeddings);
    // A second API replica follows each job live: the job's state is in the database, not
    // in the process that took the upload.
    let replica = stack.spawn(Role::Api, &embeddings);
    wait_until(&replica, "/health/ready", Duration::from_secs(30), |status, _| {
        status == 200
    })
    .await;
    let db = stack.sql().await;

    let books = [
        ("EPUB", "en", common::formats::small_epub(), "Vertices"),
        ("DjVu", "en", common::formats::djvu_of("r-intro", 1, 14), "Preface"),
        (
            "scan",
            "de",
            common::formats::scan_of("lilypond-learning-de", &[5, 26]),
            "Natürlich",
        ),
    ];
    for (format, language, bytes, word) in books {
        let response = api
            .client
            .post(api.url("/books/"))
            .json(&serde_json::json!({"title": format!("a book in {format}"), "language": language}))
            .send()
            .await
            .expect("create book");
        assert_eq!(response.status().as_u16(), 201, "{format}");
        let book: Value = response.json().await.expect("book");
        let book_id = book["id"].as_str().expect("book id").to_owned();
        let (status, accepted) = api.upload(&book_id, bytes, "book.bin").await;
        assert_eq!(status, 202, "{format}: {accepted}");
        let job_id = accepted["job_id"].as_str().expect("job id");
        let followed = replica.job_events(job_id, None, None, Duration::from_secs(300)).await;
        assert!(followed.closed, "{format}: the stream ends with the job: {followed:?}");
        let (end, live) = followed.events.split_last().expect("events");
        assert_eq!(end.event, "end", "{format}: {end:?}");
        assert_eq!(end.data["state"], "succeeded", "{format}: {end:?}");
        if format == "scan" {
            assert!(
                live.iter()
                    .any(|event| event.data["stage"] == "extract_text"
                        && event.data["progress"]["done"].as_i64() < Some(2)),
                "{format}: OCR's progress was seen on the replica: {live:?}"
            );
        }
        let job = api.wait_for_job(job_id, Duration::from_secs(30)).await;
        assert_eq!(job["state"], "succeeded", "{format}: {job}");

        let pages = sql_i64(
            &db,
            "SELECT count(*) FROM pages WHERE book_id = $1 AND text LIKE $2",
            vec![book_id.as_str().into(), format!("%{word}%").into()],
        )
        .await;
        assert!(pages >= 1, "{format}: no stored page holds {word:?}");
        let (status, toc) = api.get_json(&format!("/books/{book_id}/toc")).await;
        assert_eq!(status, 200, "{format}");
        assert!(
            toc.as_array().is_some_and(|toc| !toc.is_empty()),
            "{format}: an empty ToC"
        );
        assert_rows_unique(&db, &book_id).await;
        let (_, quality) = api.get_json(&format!("/books/{book_id}/quality")).await;
        let consistency = quality["gates"]
            .as_array()
            .and_then(|gates| gates.iter().find(|g| g["gate"] == "chunk_vector_consistency"))
            .cloned()
            .unwrap_or(Value::Null);
        assert_eq!(consistency["passed"], true, "{format}: {quality}");
        assert!(
            consistency["detail"]
                .as_str()
                .is_some_and(|d| d.contains("vectors for")),
            "{format}: vectors were made: {consistency}"
        );
    }
}

/// Webhooks across the production shape: registered on one API replica, the job run by a
/// separate worker, the event sent by an API process from the outbox in PostgreSQL, its
/// signature verified by the receiver with the Standard Webhooks library.
#[tokio::test(flavor = "multi_thread")]
async fn webhooks_flow_through_the_production_shape() {
    use base64::Engine;
    let stack = Stack::start();
    let keys = format!("k1:{}", base64::engine::general_purpose::STANDARD.encode([3u8; 32]));
    let settings = [
        ("HBI__WEBHOOKS__MASTER_KEYS", keys.as_str()),
        ("HBI__WEBHOOKS__ALLOW_PRIVATE_TARGETS", "true"),
        ("HBI__WEBHOOKS__POLL_MS", "100"),
    ];
    let api = stack.spawn(Role::Api, &settings);
    let replica = stack.spawn(Role::Api, &settings);
    let _worker = stack.spawn(Role::Worker, &[]);
    let receiver = common::webhooks::Receiver::start().await;
    let response = api
        .client
        .post(api.url("/webhooks"))
        .json(&serde_json::json!({"url": receiver.url(), "events": ["job.succeeded", "job.dead"]}))
        .send()
        .await
        .expect("POST /webhooks");
    assert_eq!(response.status().as_u16(), 201);
    let created: Value = response.json().await.expect("webhook");
    receiver.expect_secret(created["secret"].as_str().expect("secret"));
    let (_, listed) = replica.get_json("/webhooks").await;
    assert_eq!(
        listed[0]["id"], created["id"],
        "every replica sees the endpoint: {listed}"
    );

    let (_, job_id) = upload(&replica, "a book", crate::hostile::good_book()).await;
    let job = replica.wait_for_job(&job_id, Duration::from_secs(120)).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while receiver.ids_of("job.succeeded").is_empty() {
        assert!(Instant::now() < deadline, "no job.succeeded arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let events = receiver.by_id();
    assert_eq!(events.len(), 1, "two API processes, one delivery: {events:?}");
    let (body, times) = events.values().next().expect("the event");
    assert_eq!(*times, 1, "sent once");
    assert_eq!(body["data"]["job_id"], job_id.as_str());
    assert_eq!(receiver.refused_signatures(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_portal_works_on_the_production_shape() {
    let (_model, model_url) = common::llm::StandIn::start().await;
    let stack = Stack::start();
    let api = stack.spawn(Role::Api, &[("HBI__LLM__BASE_URL", model_url.as_str())]);
    let _worker = stack.spawn(Role::Worker, &[]);
    wait_until(&api, "/health/ready", Duration::from_secs(30), |status, _| {
        status == 200
    })
    .await;
    let read_key = api.make_key("portal reader", "read").await;
    let book = corpus_pdf("r-intro");
    let book_id = common::portal::walk(
        &common::portal::Walk {
            base: &api.base,
            admin_key: TEST_ADMIN_KEY,
            read_key: &read_key,
            book: &book,
            title: "An Introduction to R",
            question: Some("How does the assignment operator set up a numeric vector?"),
            ingest_timeout: Duration::from_secs(300),
        },
        "production",
    )
    .await;
    // What the walk drew and located is kept in S3 beside the original, for every replica.
    let (_, stored) = api.get_json(&format!("/books/{book_id}")).await;
    let hash = stored["content_hash"].as_str().expect("hash");
    let keys = stack.s3_keys().await;
    let derived = |suffix: &str| {
        keys.iter()
            .any(|key| key.starts_with(&format!("derived/{hash}/")) && key.ends_with(suffix))
    };
    assert!(derived("-w1200.png") && derived("-words.json"), "{keys:?}");
}

/// Libraries and access on the production shape: `common::libraries`' scenario on `hbi
/// api` and a worker over PostgreSQL, Redis, S3 and FalkorDB.
#[tokio::test(flavor = "multi_thread")]
async fn a_key_reaches_only_its_libraries_on_the_production_shape() {
    let stack = Stack::start();
    let api = stack.spawn(Role::Api, &[]);
    let _worker = stack.spawn(Role::Worker, &[]);
    wait_until(&api, "/health/ready", Duration::from_secs(30), |status, _| {
        status == 200
    })
    .await;
    common::libraries::a_key_reaches_only_its_libraries(&api, "production").await;
}

/// One book over two workers: its chunks cut into parts (`worker.part_chunks`), each worker
/// embeds a share. The worker that does not hold the book's job is killed in the middle of
/// a part; the part is taken over once its lease runs out, and the book succeeds in its
/// first attempt with one vector per chunk, nothing duplicated, no part left behind.
#[tokio::test(flavor = "multi_thread")]
async fn a_book_in_parts_is_shared_by_two_workers_and_survives_one_killed_mid_part() {
    let stack = Stack::start();
    let env = [
        ("HBI__EMBEDDINGS__PROVIDER", "minilm"),
        ("HBI__WORKER__PART_CHUNKS", "16"),
    ];
    let api = stack.spawn(Role::Api, &env);
    let mut workers = [stack.spawn(Role::Worker, &env), stack.spawn(Role::Worker, &env)];
    wait_until(&api, "/health/ready", Duration::from_secs(30), |status, _| {
        status == 200
    })
    .await;
    let db = stack.sql().await;
    let pdf = std::fs::read(corpus_pdf("r-intro")).expect("r-intro pdf");
    let (book_id, job_id) = upload(&api, "An Introduction to R", pdf).await;
    let job = wait_until(&api, &format!("/jobs/{job_id}"), Duration::from_secs(300), |_, job| {
        job["state"] == "running" && job["stage"] == "embed"
    })
    .await;
    let holder = job["history"]
        .as_array()
        .and_then(|history| history.last())
        .and_then(|attempt| attempt["worker_id"].as_str())
        .expect("the job's worker")
        .to_owned();

    // The other worker, once it has finished a part and is running the next.
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    let helper = loop {
        let running = sql_strings(
            &db,
            "SELECT p.worker_id FROM job_parts p WHERE p.job_id = $1 AND p.state = 'running' AND p.worker_id <> $2 \
             AND EXISTS (SELECT 1 FROM job_parts d WHERE d.job_id = $1 AND d.state = 'done' AND d.worker_id = p.worker_id)",
            vec![job_id.as_str().into(), holder.as_str().into()],
        )
        .await;
        if let Some(helper) = running.into_iter().next() {
            break helper;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the second worker never took a second part: {}",
            api.get_json(&format!("/jobs/{job_id}")).await.1
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let doomed = workers
        .iter()
        .position(|worker| worker.log_lines().iter().any(|line| line.contains(&helper)))
        .expect("the helper's process");
    workers[doomed].kill();

    let job = api.wait_for_job(&job_id, Duration::from_secs(600)).await;
    assert_eq!(job["state"], "succeeded", "job: {job}");
    assert_eq!(job["attempts"], 1, "the book's job itself never stopped: {job}");
    let chunks = sql_i64(
        &db,
        "SELECT count(*) FROM chunks WHERE book_id = $1",
        vec![book_id.as_str().into()],
    )
    .await;
    assert!(
        chunks > 3 * 16,
        "r-intro makes enough chunks for several parts: {chunks}"
    );
    for sql in [
        "SELECT count(*) FROM chunk_vectors_384 WHERE book_id = $1",
        "SELECT count(DISTINCT chunk_id) FROM chunk_vectors_384 WHERE book_id = $1",
    ] {
        assert_eq!(sql_i64(&db, sql, vec![book_id.as_str().into()]).await, chunks, "{sql}");
    }
    for sql in [
        "SELECT count(*) FROM job_parts WHERE job_id = $1",
        "SELECT count(*) FROM job_part_vectors WHERE job_id = $1",
    ] {
        assert_eq!(sql_i64(&db, sql, vec![job_id.as_str().into()]).await, 0, "{sql}");
    }
    let survivor = &workers[1 - doomed];
    assert!(
        survivor.log_lines().iter().any(|line| line.contains("part embedded")),
        "the book's own worker embedded parts too"
    );
    assert_rows_unique(&db, &book_id).await;
}
