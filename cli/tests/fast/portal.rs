//! The reader's portal on the embedded shape, in headless Chromium: the walk of
//! `common::portal` (sign in, upload, progress, a chapter's page image, a search hit marked
//! on its page, a question and its citation, the admin page, a read key, a phone), and the
//! portal's own files: served by HBI under a Content-Security-Policy.

use crate::common;

use std::time::Duration;

use common::llm::StandIn;
use common::portal::{Walk, walk};
use common::{TestServer, client_without_key, corpus_pdf};

#[tokio::test(flavor = "multi_thread")]
async fn a_reader_signs_in_uploads_reads_searches_and_asks_in_the_browser() {
    let (_model, model_url) = StandIn::start().await;
    let server = TestServer::start(&[("HBI__LLM__BASE_URL", model_url.as_str())]);
    let read_key = server.make_key("portal reader", "read").await;
    let admin_key = server.admin_key.clone().expect("admin key");
    let book = corpus_pdf("r-intro");
    let book_id = walk(
        &Walk {
            base: &server.base,
            admin_key: &admin_key,
            read_key: &read_key,
            book: &book,
            title: "An Introduction to R",
            question: Some("How does the assignment operator set up a numeric vector?"),
            ingest_timeout: Duration::from_secs(300),
        },
        "embedded",
    )
    .await;
    // The portal's requests are the API's: its log names each route the walk took.
    let routes: Vec<String> = server
        .log_lines()
        .iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|event| event["span"]["http.route"].as_str().map(str::to_owned))
        .collect();
    for route in [
        "/whoami",
        "/books/{book_id}/upload",
        "/jobs/{job_id}/events",
        "/books/{book_id}/toc",
        "/books/{book_id}/pages/{number}/image",
        "/books/{book_id}/pages/{number}/words",
        "/search",
        "/query",
        "/config",
    ] {
        assert!(routes.iter().any(|seen| seen == route), "the portal called {route}");
    }
    // Nothing of the key in the server's log.
    assert!(
        !server
            .log_lines()
            .iter()
            .any(|line| line.contains(&read_key) || line.contains(&admin_key))
    );
    let (status, _) = server.get_json(&format!("/books/{book_id}")).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_portal_is_served_by_hbi_under_its_content_security_policy() {
    let server = TestServer::start(&[]);
    let anyone = client_without_key();
    let home = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(server.url("/"))
        .send()
        .await
        .expect("GET /");
    assert_eq!(home.status().as_u16(), 303);
    assert_eq!(home.headers()["location"], "portal/");
    for (path, media_type) in [
        ("/portal/", "text/html"),
        ("/portal/app.js", "text/javascript"),
        ("/portal/style.css", "text/css"),
    ] {
        let response = anyone.get(server.url(path)).send().await.expect("GET");
        assert_eq!(response.status().as_u16(), 200, "{path} needs no key");
        let header = |name: &str| common::header_of(&response, name);
        assert!(header("content-type").starts_with(media_type), "{path}");
        let policy = header("content-security-policy");
        assert!(
            policy.contains("script-src 'self'") && policy.contains("default-src 'none'"),
            "{policy}"
        );
        assert!(
            !policy.contains("unsafe-inline") && !policy.contains("unsafe-eval"),
            "{policy}"
        );
        assert_eq!(header("x-content-type-options"), "nosniff");
        let etag = header("etag");
        let again = anyone
            .get(server.url(path))
            .header("If-None-Match", &etag)
            .send()
            .await
            .expect("GET again");
        assert_eq!(again.status().as_u16(), 304, "{path} revalidates");
    }
    // The portal's files are open; what they show is not.
    let (status, _) = {
        let response = anyone.get(server.url("/whoami")).send().await.expect("whoami");
        (response.status().as_u16(), ())
    };
    assert_eq!(status, 401);
    let (status, caller) = server.get_json("/whoami").await;
    assert_eq!((status, caller["scope"].as_str()), (200, Some("admin")));
}
