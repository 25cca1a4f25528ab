//! Libraries and who may read them, as a client sees it, on either shape: two libraries
//! holding the same book, a reader of one and an admin of the other, and every operation of
//! the OpenAPI document tried with the key that does not reach the first library (the list
//! comes from `/openapi.json`, so a new route cannot be forgotten here).

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use super::{TestServer, client_with_key, corpus_pdf};

/// Status and body (JSON when it is JSON, else null) and the body's text.
async fn send(request: reqwest::RequestBuilder) -> (u16, Value, String) {
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null), text)
}

/// A library made by the operator (the server's admin client).
async fn make_library(server: &TestServer, id: &str) {
    let (status, body, _) = send(
        server
            .client
            .post(server.url("/libraries"))
            .json(&json!({"id": id, "name": format!("Library {id}")})),
    )
    .await;
    assert_eq!(status, 201, "POST /libraries: {body}");
    assert_eq!(body["id"], id);
    assert_eq!(body["books"], 0);
}

/// A key over some libraries: (its id, the key).
async fn make_key(server: &TestServer, name: &str, scope: &str, libraries: Value) -> (String, String) {
    let (status, body, _) = send(
        server
            .client
            .post(server.url("/keys"))
            .json(&json!({"name": name, "scope": scope, "libraries": libraries})),
    )
    .await;
    assert_eq!(status, 201, "POST /keys: {body}");
    assert_eq!(body["libraries"], libraries, "{body}");
    (
        body["id"].as_str().expect("key id").to_owned(),
        body["key"].as_str().expect("key").to_owned(),
    )
}

/// amsldoc made in `library`, uploaded and processed: (book id, job id).
async fn ingest_into(server: &TestServer, library: &str, title: &str) -> (String, String) {
    let (status, book, _) = send(
        server
            .client
            .post(server.url("/books/"))
            .json(&json!({"title": title, "library_id": library})),
    )
    .await;
    assert_eq!(status, 201, "{book}");
    assert_eq!(book["library_id"], library);
    let book_id = book["id"].as_str().expect("book id").to_owned();
    let pdf = std::fs::read(corpus_pdf("amsldoc")).expect("corpus pdf");
    let (status, accepted) = server.upload(&book_id, pdf, "amsldoc.pdf").await;
    assert_eq!(status, 202, "{accepted}");
    let job_id = accepted["job_id"].as_str().expect("job id").to_owned();
    let job = server.wait_for_job(&job_id, Duration::from_secs(300)).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    (book_id, job_id)
}

/// Every operation of the document that needs a key: (method, path template).
async fn secured_operations(server: &TestServer) -> Vec<(String, String)> {
    let (status, spec) = server.get_json("/openapi.json").await;
    assert_eq!(status, 200);
    let mut operations = Vec::new();
    for (path, methods) in spec["paths"].as_object().expect("paths") {
        for (method, operation) in methods.as_object().expect("operations") {
            if operation
                .get("security")
                .is_some_and(|security| security.as_array().is_some_and(|s| !s.is_empty()))
            {
                operations.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    assert!(operations.len() > 30, "{operations:?}");
    operations
}

/// The two libraries' scenario; `shape` names the shape in messages.
pub async fn a_key_reaches_only_its_libraries(server: &TestServer, shape: &str) {
    make_library(server, "alpha").await;
    make_library(server, "beta").await;
    let (alpha_book, alpha_job) = ingest_into(server, "alpha", "Alpha's amsldoc").await;
    let (beta_book, _) = ingest_into(server, "beta", "Beta's amsldoc").await;
    let (alpha_reader_id, alpha_reader) = make_key(
        server,
        "alpha reader",
        "read",
        json!([{"library_id": "alpha", "scope": "read"}]),
    )
    .await;
    let (_, beta_admin) = make_key(
        server,
        "beta admin",
        "admin",
        json!([{"library_id": "beta", "scope": "admin"}]),
    )
    .await;
    let alpha = client_with_key(&alpha_reader);
    let beta = client_with_key(&beta_admin);

    // Each key lists its own library and books only; the operator sees both.
    let (_, libraries, _) = send(beta.get(server.url("/libraries"))).await;
    let ids: Vec<&str> = libraries
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|l| l["id"].as_str())
        .collect();
    assert_eq!(ids, ["beta"], "{shape}: {libraries}");
    assert_eq!(libraries[0]["scope"], "admin");
    assert_eq!(libraries[0]["books"], 1);
    let (_, operator_libraries, _) = send(server.client.get(server.url("/libraries"))).await;
    let all: BTreeSet<&str> = operator_libraries
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|l| l["id"].as_str())
        .collect();
    assert!(
        all.is_superset(&BTreeSet::from(["alpha", "beta", "default"])),
        "{operator_libraries}"
    );
    let (_, books, _) = send(alpha.get(server.url("/books/"))).await;
    let book_ids: Vec<&str> = books
        .as_array()
        .expect("books")
        .iter()
        .filter_map(|b| b["id"].as_str())
        .collect();
    assert_eq!(book_ids, [alpha_book.as_str()], "{shape}");
    let (status, _, _) = send(alpha.get(server.url("/books/?library_id=beta"))).await;
    assert_eq!(status, 404, "a library the key does not reach is not found");

    // Search filters before ranking: k hits come back, all from the books the key reads.
    let search = "/search?q=the%20equation&mode=keyword&k=5";
    let (status, hits, _) = send(beta.get(server.url(search))).await;
    assert_eq!(status, 200, "{hits}");
    let results = hits["results"].as_array().expect("results");
    assert_eq!(results.len(), 5, "{shape}: k hits from beta's book: {hits}");
    assert!(results.iter().all(|hit| hit["book_id"] == beta_book.as_str()), "{hits}");
    let (_, everything, _) = send(server.client.get(server.url(&format!("{search}&k=20")))).await;
    assert!(
        everything["results"]
            .as_array()
            .expect("results")
            .iter()
            .any(|hit| hit["book_id"] == alpha_book.as_str()),
        "the operator finds alpha's pages too: {everything}"
    );
    let (_, in_alpha, text) = send(beta.get(server.url(&format!("{search}&book_id={alpha_book}")))).await;
    assert_eq!(
        in_alpha["results"],
        json!([]),
        "another library's book gives nothing: {text}"
    );

    // The shared index terms answer with readable books only.
    let (_, index, _) = send(server.client.get(server.url(&format!("/books/{beta_book}/index")))).await;
    let term = index[0]["term"].as_str().expect("an index term").to_owned();
    let (_, everywhere, _) = send(server.client.get(server.url("/terms")).query(&[("q", term.as_str())])).await;
    let books_with = |found: &Value| -> BTreeSet<String> {
        found["results"]
            .as_array()
            .expect("results")
            .iter()
            .filter_map(|hit| hit["book_id"].as_str().map(str::to_owned))
            .collect()
    };
    assert_eq!(
        books_with(&everywhere),
        BTreeSet::from([alpha_book.clone(), beta_book.clone()]),
        "{term}: {everywhere}"
    );
    let (_, for_beta, _) = send(beta.get(server.url("/terms")).query(&[("q", term.as_str())])).await;
    assert_eq!(books_with(&for_beta), BTreeSet::from([beta_book.clone()]), "{for_beta}");

    // The reader of alpha reads there and may not change anything.
    assert_eq!(
        send(alpha.get(server.url(&format!("/books/{alpha_book}/toc")))).await.0,
        200
    );
    assert_eq!(
        send(alpha.delete(server.url(&format!("/books/{alpha_book}")))).await.0,
        403
    );
    assert_eq!(
        send(
            alpha
                .post(server.url("/books/"))
                .json(&json!({"title": "x", "library_id": "alpha"}))
        )
        .await
        .0,
        403,
        "reading a library is not writing to it"
    );

    // Every operation with the key that does not reach alpha: alpha's book, job and
    // library are not found, operators' operations are refused, and no answer names them.
    let fill = |template: &str| -> String {
        template
            .replace("{book_id}", &alpha_book)
            .replace("{job_id}", &alpha_job)
            .replace("{library_id}", "alpha")
            .replace("{number}", "1")
            .replace("{label}", "1")
            .replace("{key_id}", &alpha_reader_id)
            .replace("{webhook_id}", "0193c0de-0000-7000-8000-000000000000")
    };
    let operators = ["/config", "/dlq", "/keys", "/webhooks", "/audit", "/stats"];
    let mut tried = 0;
    for (method, template) in secured_operations(server).await {
        let path = fill(&template);
        assert!(!path.contains('{'), "{template}: fill in its parameter here");
        let url = server.url(&path);
        let request = beta.request(method.parse().expect("method"), &url);
        let request = match (method.as_str(), template.as_str()) {
            ("POST", "/books/{book_id}/upload") => request.multipart(
                reqwest::multipart::Form::new().part(
                    "file",
                    reqwest::multipart::Part::bytes(std::fs::read(corpus_pdf("amsldoc")).expect("pdf"))
                        .file_name("amsldoc.pdf"),
                ),
            ),
            ("POST", "/books" | "/books/") => request.json(&json!({"title": "intruder", "library_id": "alpha"})),
            ("POST", "/query") => request.json(&json!({"query": "What is align?", "book_id": alpha_book})),
            ("POST", "/libraries") => request.json(&json!({"id": "gamma", "name": "Gamma"})),
            ("POST", "/keys") => request.json(&json!({"name": "escalate", "scope": "admin"})),
            ("POST", "/webhooks") => {
                request.json(&json!({"url": "https://example.com/hook", "events": ["job.succeeded"]}))
            }
            ("PUT", "/config") => request.json(&json!({"rrf_k": 10})),
            ("GET", "/search") => request.query(&[("q", "equation"), ("mode", "keyword")]),
            ("GET", "/terms") => request.query(&[("q", term.as_str())]),
            _ => request,
        };
        let (status, _, text) = send(request).await;
        let operators_only = operators.iter().any(|prefix| template.starts_with(prefix))
            || (method == "POST" && template == "/libraries")
            || (method == "DELETE" && template == "/libraries/{library_id}");
        let names_alpha = template.contains("{book_id}")
            || template.contains("{job_id}")
            || template.contains("{library_id}")
            || matches!(
                (method.as_str(), template.as_str()),
                ("POST", "/books" | "/books/" | "/query")
            );
        let expected = if operators_only {
            403
        } else if names_alpha {
            404
        } else {
            200
        };
        assert_eq!(status, expected, "{shape}: {method} {template} with beta's key: {text}");
        assert!(
            !text.contains(&alpha_book) && !text.contains(&alpha_job) && !text.contains("\"alpha\""),
            "{shape}: {method} {template} names alpha's book, job or library: {text}"
        );
        tried += 1;
    }
    assert!(tried > 30);

    // The MCP door answers through the same use cases: alpha is not found there either.
    let mcp = |method: &'static str, params: Value| {
        let request = beta
            .post(server.url("/mcp"))
            .header("accept", "application/json, text/event-stream")
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}));
        async move {
            let (status, body, text) = send(request).await;
            assert_eq!(status, 200, "{shape}: MCP {method}: {text}");
            (body, text)
        }
    };
    let tool = |name: &'static str, arguments: Value| mcp("tools/call", json!({"name": name, "arguments": arguments}));
    let (listed, text) = tool("list_books", json!({})).await;
    let listed: Vec<&str> = listed["result"]["structuredContent"]["books"]
        .as_array()
        .expect("books")
        .iter()
        .filter_map(|book| book["book_id"].as_str())
        .collect();
    assert_eq!(listed, [beta_book.as_str()], "{shape}: {text}");
    let (found, text) = tool("search", json!({"query": "the equation", "mode": "keyword", "k": 5})).await;
    let hits = found["result"]["structuredContent"]["results"]
        .as_array()
        .expect("hits")
        .clone();
    assert_eq!(hits.len(), 5, "{shape}: {text}");
    assert!(hits.iter().all(|hit| hit["book_id"] == beta_book.as_str()), "{text}");
    for (name, arguments) in [
        ("toc", json!({"book_id": alpha_book})),
        ("get_page", json!({"book_id": alpha_book, "page": 1})),
        ("index_lookup", json!({"book_id": alpha_book, "term": term})),
    ] {
        let (answer, text) = tool(name, arguments).await;
        assert_eq!(
            answer["result"]["isError"], true,
            "{shape}: MCP {name} on alpha's book: {text}"
        );
        assert!(text.contains("not found"), "{shape}: MCP {name}: {text}");
    }
    let (entries, text) = tool("index_lookup", json!({"term": term})).await;
    let books: BTreeSet<&str> = entries["result"]["structuredContent"]["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|entry| entry["book_id"].as_str())
        .collect();
    assert_eq!(books, BTreeSet::from([beta_book.as_str()]), "{shape}: {text}");
    let (read, text) = mcp("resources/read", json!({"uri": format!("hbi://books/{alpha_book}")})).await;
    assert!(
        read.get("error").is_some() && !text.contains("Alpha's amsldoc"),
        "{shape}: {text}"
    );

    // Nothing the refused calls tried happened: alpha's book is still there, whole.
    let (status, book) = server.get_json(&format!("/books/{alpha_book}")).await;
    assert_eq!((status, book["status"].as_str()), (200, Some("ready")), "{book}");
    let (_, jobs, _) = send(server.client.get(server.url("/jobs"))).await;
    assert!(
        jobs.as_array()
            .expect("jobs")
            .iter()
            .all(|job| job["book_id"] != alpha_book.as_str() || job["id"] == alpha_job.as_str()),
        "no job was started on alpha's book: {jobs}"
    );

    // The audit log says who made what; only operators read it.
    assert_eq!(
        send(server.client.put(server.url("/config")).json(&json!({"rrf_k": 60})))
            .await
            .0,
        200
    );
    let (status, audit, _) = send(server.client.get(server.url("/audit?limit=1000"))).await;
    assert_eq!(status, 200, "{audit}");
    let actions: Vec<(&str, &str)> = audit
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|entry| Some((entry["action"].as_str()?, entry["key_id"].as_str()?)))
        .collect();
    for action in [
        "library.create",
        "book.create",
        "book.upload",
        "key.create",
        "config.update",
    ] {
        assert!(
            actions.contains(&(action, "bootstrap")),
            "{action} by the operator: {actions:?}"
        );
    }
    assert!(audit[0]["request_id"].is_string(), "{audit}");
    assert!(
        audit
            .as_array()
            .expect("entries")
            .iter()
            .all(|entry| entry["book_id"] != alpha_book.as_str() || entry["key_id"] == "bootstrap"),
        "nothing was done to alpha's book by another key: {audit}"
    );

    // A library holding books stays; an empty one goes, with every key's access to it.
    assert_eq!(send(server.client.delete(server.url("/libraries/alpha"))).await.0, 409);
    make_library(server, "empty").await;
    assert_eq!(send(server.client.delete(server.url("/libraries/empty"))).await.0, 204);
    assert_eq!(send(server.client.get(server.url("/libraries/empty"))).await.0, 404);
}
