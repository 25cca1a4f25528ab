//! The MCP client of the tests (cli/tests/contract/mcp_client.py, on the official MCP
//! Python SDK) and the check of what it saw against the HTTP API, for the embedded and the
//! production shape alike.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use super::{BACKEND_VARIABLES, TestServer, python_tools_path};

/// Runs cli/tests/contract/mcp_client.py (the official MCP Python SDK as the client) over
/// `transport` (`http`: `target` is the /mcp URL; `stdio`: `target` is the hbi binary, which
/// reads its settings from `env`) as the API key `key`; what it saw.
pub async fn mcp_client_run(
    transport: &str,
    target: &str,
    key: &str,
    book_id: &str,
    env: &[(String, String)],
) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/contract/mcp_client.py");
    let mut command = tokio::process::Command::new("python3");
    command
        .arg(&script)
        .args([transport, target, key, book_id])
        .env("PYTHONPATH", python_tools_path());
    for variable in BACKEND_VARIABLES {
        command.env_remove(variable);
    }
    command.envs(env.iter().map(|(key, value)| (key.as_str(), value.as_str())));
    let output = tokio::time::timeout(Duration::from_secs(180), command.output())
        .await
        .expect("the MCP client finished in time")
        .expect("run python3");
    assert!(
        output.status.success(),
        "the MCP client failed ({transport}):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the MCP client prints JSON")
}

/// Titles, physical pages and printed labels of a nested ToC, depth first; `page_key` names
/// the page field (`page` in MCP, `page_number` over HTTP).
fn toc_rows(nodes: &Value, page_key: &str, out: &mut Vec<(String, Value, Value)>) {
    for node in nodes.as_array().into_iter().flatten() {
        out.push((
            node["title"].as_str().unwrap_or_default().to_owned(),
            node[page_key].clone(),
            node["page_label"].clone(),
        ));
        toc_rows(&node["children"], page_key, out);
    }
}

fn texts(values: &Value, key: &str) -> Vec<Value> {
    values
        .as_array()
        .into_iter()
        .flatten()
        .map(|value| value[key].clone())
        .collect()
}

/// What the `ask` tool should have answered.
#[derive(Debug, Clone, Copy)]
pub enum Asked {
    /// An answer with claims cited to pages.
    Answered,
    /// A tool error saying this.
    RefusedWith(&'static str),
}

/// Checks what the MCP client saw against the HTTP API.
pub async fn check_against_http(server: &TestServer, book_id: &str, seen: &Value, asked: Asked) {
    let tools: Vec<&str> = seen["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        tools,
        ["ask", "get_page", "index_lookup", "list_books", "search", "toc"],
        "{seen}"
    );
    assert_eq!(seen["server"], "hbi");
    assert!(
        seen["input_schemas"]["search"]["required"]
            .as_array()
            .is_some_and(|required| required.contains(&json!("query"))),
        "{}",
        seen["input_schemas"]["search"]
    );

    let books = seen["list_books"]["books"].as_array().expect("books");
    let book = books
        .iter()
        .find(|book| book["book_id"] == book_id)
        .expect("the book is listed");
    assert_eq!(book["pages"], 113, "{book}");
    assert_eq!(book["status"], "ready", "{book}");

    // The ToC, entry by entry, as GET /books/{id}/toc has it.
    let (_, http_toc) = server.get_json(&format!("/books/{book_id}/toc")).await;
    let (mut over_mcp, mut over_http) = (Vec::new(), Vec::new());
    toc_rows(&seen["toc"]["entries"], "page", &mut over_mcp);
    toc_rows(&http_toc, "page_number", &mut over_http);
    assert!(over_http.len() > 20, "{http_toc}");
    assert_eq!(over_mcp, over_http);
    let mut in_resource = Vec::new();
    toc_rows(&seen["book_resource"]["toc"], "page", &mut in_resource);
    assert_eq!(in_resource, over_http, "the book resource holds the ToC");
    if !seen["auto"].is_null() {
        // The SDK's own pick of revision, without the initialize handshake.
        assert_eq!(seen["auto"]["protocol_version"], "2026-07-28", "{}", seen["auto"]);
        let mut modern = Vec::new();
        toc_rows(&seen["auto"]["toc"]["entries"], "page", &mut modern);
        assert_eq!(modern, over_http);
    }

    // Search: the same pages and labels as GET /search.
    let (_, results) = server
        .get_json(&format!("/search?q=vector&mode=keyword&k=5&book_id={book_id}"))
        .await;
    assert_eq!(
        texts(&seen["search"]["results"], "page"),
        texts(&results["results"], "page")
    );
    assert_eq!(
        texts(&seen["search"]["results"], "page_label"),
        texts(&results["results"], "page_label")
    );

    // The index in the book: the entries GET /books/{id}/index lists for the term, with pages
    // and labels; across books, the entry itself with its printed page.
    let (_, index) = server.get_json(&format!("/books/{book_id}/index?q=vector")).await;
    let mcp_terms = texts(&seen["index_lookup"]["entries"], "term");
    for term in texts(&index, "term") {
        assert!(mcp_terms.contains(&term), "{term} in {mcp_terms:?}");
    }
    let everywhere = seen["index_lookup_everywhere"]["entries"].as_array().expect("entries");
    let vector = everywhere
        .iter()
        .find(|entry| entry["term"] == "vector" && entry["book_id"] == book_id)
        .expect("the entry `vector`");
    let first = &vector["pages"][0];
    let (_, page) = server
        .get_json(&format!("/books/{book_id}/pages/{}", first["first_page"]))
        .await;
    assert_eq!(first["first_label"], page["label"], "{vector}");

    // A page, by number and by its printed label, as GET /pages/{n} has it.
    let number = seen["get_page"]["page"].as_u64().expect("page");
    let (_, page) = server.get_json(&format!("/books/{book_id}/pages/{number}")).await;
    for key in ["text", "section_path", "index_terms"] {
        assert_eq!(seen["get_page"][key], page[key], "{key}");
    }
    assert_eq!(seen["get_page"]["page_label"], page["label"]);
    assert_eq!(seen["get_page_by_label"]["page"], number, "by its label");
    assert_eq!(seen["page_resource"]["text"], page["text"], "the page resource");
    let resources: Vec<&str> = seen["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        resources.contains(&format!("hbi://books/{book_id}").as_str()),
        "{resources:?}"
    );
    assert_eq!(
        seen["resource_templates"],
        json!(["hbi://books/{book_id}/pages/{page}"])
    );
    assert!(
        seen["missing_resource"].is_i64(),
        "a missing resource is an error: {}",
        seen["missing_resource"]
    );

    // Asking: the answer's claims cite the book, a page and its printed label.
    match asked {
        Asked::Answered => {
            assert!(seen["ask"]["answer"].is_string(), "{}", seen["ask"]);
            let claims = seen["ask"]["claims"].as_array().expect("claims");
            assert!(!claims.is_empty(), "{}", seen["ask"]);
            for claim in claims {
                assert_eq!(claim["book_id"], book_id, "{claim}");
                let (_, page) = server
                    .get_json(&format!("/books/{book_id}/pages/{}", claim["page"]))
                    .await;
                assert_eq!(claim["page_label"], page["label"], "{claim}");
            }
        }
        Asked::RefusedWith(words) => {
            let refused = seen["ask"]["error"].as_str().unwrap_or_default();
            assert!(refused.contains(words), "{words:?}: {}", seen["ask"]);
        }
    }

    // Bad arguments are errors the caller can read; an unknown tool is a protocol error.
    let failures = &seen["failures"];
    let tool_error = |name: &str| failures[name]["tool_error"].as_str().unwrap_or_default().to_owned();
    assert!(tool_error("search_without_query").contains("query"), "{failures}");
    assert!(
        tool_error("search_with_a_bad_mode").contains("telepathic"),
        "{failures}"
    );
    assert_eq!(tool_error("toc_of_an_unknown_book"), "Book not found", "{failures}");
    assert!(tool_error("get_page_out_of_range").contains("113 pages"), "{failures}");
    assert!(tool_error("get_page_with_neither").contains("label"), "{failures}");
    assert!(failures["unknown_tool"]["protocol_error"].is_i64(), "{failures}");
}
