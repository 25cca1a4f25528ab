//! The MCP door against the official MCP Python SDK as the client
//! (cli/tests/contract/mcp_client.py): over streamable HTTP at /mcp on `hbi serve` and over
//! stdio through `hbi mcp`, with the API's keys and scopes. What each tool answers is checked
//! against the HTTP API's own answers for the same book.

use crate::common;

use common::mcp::{Asked, check_against_http, mcp_client_run};
use common::{TEST_ADMIN_KEY, TestServer, hbi_binary};
use serde_json::json;

use crate::common::llm::StandIn;

const READ_KEY_MAY_NOT_ASK: &str = "this API key has the read scope, ask needs write";

#[tokio::test(flavor = "multi_thread")]
async fn mcp_clients_read_search_and_ask_over_http_and_stdio_with_the_keys_scopes() {
    let (_model, model_url) = StandIn::start().await;
    let server = TestServer::start(&[("HBI__LLM__BASE_URL", model_url.as_str())]);
    let book_id = server.ingest_corpus_book("r-intro", "An Introduction to R").await;
    let read_key = server.make_key("mcp reader", "read").await;
    let url = server.url("/mcp");

    let admin = mcp_client_run("http", &url, TEST_ADMIN_KEY, &book_id, &[]).await;
    check_against_http(&server, &book_id, &admin, Asked::Answered).await;
    let reader = mcp_client_run("http", &url, &read_key, &book_id, &[]).await;
    // A read key may not ask, as it may not POST /query.
    check_against_http(&server, &book_id, &reader, Asked::RefusedWith(READ_KEY_MAY_NOT_ASK)).await;

    // Without a key the door is shut, as every route but the probes is.
    let response = reqwest::Client::new()
        .post(&url)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .expect("POST /mcp");
    assert_eq!(response.status().as_u16(), 401);

    // `hbi mcp` on the same library, as the read key (for the question: a model).
    let env = [
        ("HBI__STORAGE__DATA_DIR", server.data_dir.display().to_string()),
        ("HBI__EMBEDDINGS__PROVIDER", "none".to_owned()),
        ("HBI_BOOTSTRAP_API_KEY", TEST_ADMIN_KEY.to_owned()),
        ("HBI__LLM__BASE_URL", model_url.clone()),
    ]
    .map(|(key, value)| (key.to_owned(), value));
    let over_stdio = mcp_client_run("stdio", hbi_binary(), &read_key, &book_id, &env).await;
    check_against_http(&server, &book_id, &over_stdio, Asked::RefusedWith(READ_KEY_MAY_NOT_ASK)).await;
    let admin_over_stdio = mcp_client_run("stdio", hbi_binary(), TEST_ADMIN_KEY, &book_id, &env).await;
    check_against_http(&server, &book_id, &admin_over_stdio, Asked::Answered).await;
}
