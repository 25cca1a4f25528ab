//! GET /books/{id}/pages/{n}/image: a page drawn for reading from the book's original (a PDF
//! or a DjVu), kept in the blob store after its first request and revalidated by its ETag.

use crate::common;

use std::time::Duration;

use common::TestServer;
use common::formats::{djvu_of, small_epub};

/// Width and height of a PNG, from its IHDR chunk; `None` when it is no PNG.
fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.len() < 24 || &bytes[..8] != b"\x89PNG\r\n\x1a\n" || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let number = |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    Some((number(16), number(20)))
}

async fn get(server: &TestServer, path: &str, etag: Option<&str>) -> reqwest::Response {
    let mut request = server.client.get(server.url(path));
    if let Some(etag) = etag {
        request = request.header("If-None-Match", etag);
    }
    request.send().await.expect("GET")
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_are_drawn_once_kept_and_revalidated() {
    let server = TestServer::start(&[]);
    let book_id = server.ingest_corpus_book("r-intro", "An Introduction to R").await;
    let path = format!("/books/{book_id}/pages/14/image");

    let first = get(&server, &path, None).await;
    assert_eq!(first.status().as_u16(), 200);
    let header = common::header_of;
    assert_eq!(header(&first, "content-type"), "image/png");
    let etag = header(&first, "etag");
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    assert!(header(&first, "cache-control").contains("max-age"));
    let drawn = first.bytes().await.expect("png");
    let (width, height) = png_size(&drawn).expect("a PNG");
    // r-intro's pages are US letter: 8.5 by 11 inches.
    assert_eq!(width, 1200);
    assert!((1500..1600).contains(&height), "{height}");

    // Kept beside the original, served from there, and revalidated by its ETag.
    let (_, book) = server.get_json(&format!("/books/{book_id}")).await;
    let hash = book["content_hash"].as_str().expect("hash");
    let kept = server
        .data_dir
        .join("blobs/derived")
        .join(hash)
        .join("page-00014-w1200.png");
    assert_eq!(std::fs::read(&kept).expect("the kept image"), drawn.to_vec());
    let again = get(&server, &path, None).await;
    assert_eq!(again.bytes().await.expect("png"), drawn);
    let revalidated = get(&server, &path, Some(&etag)).await;
    assert_eq!(revalidated.status().as_u16(), 304);
    assert!(revalidated.bytes().await.expect("body").is_empty());
    let other = get(&server, &format!("/books/{book_id}/pages/15/image"), Some(&etag)).await;
    assert_eq!(other.status().as_u16(), 200, "another page is another drawing");

    // The page's words, located on that drawing, for marking a hit; kept beside it.
    let (status, located) = server.get_json(&format!("/books/{book_id}/pages/14/words")).await;
    assert_eq!(status, 200, "{located}");
    assert_eq!(located["number"], 14);
    let words = located["words"].as_array().expect("words");
    assert!(words.iter().any(|word| word["text"] == "assignment"), "{located}");
    let aspect = located["aspect"].as_f64().expect("aspect");
    assert!((aspect - f64::from(width) / f64::from(height)).abs() < 0.01, "{aspect}");
    assert!(kept.with_file_name("page-00014-words.json").exists());
    let (status, _) = server.get_json(&format!("/books/{book_id}/pages/114/words")).await;
    assert_eq!(status, 404);

    // A page found by its printed label: r-intro's page 14 is printed "8"; its preface "1".
    let (status, by_label) = server.get_json(&format!("/books/{book_id}/labels/8")).await;
    assert_eq!(status, 200, "{by_label}");
    assert_eq!(
        (by_label["number"].as_u64(), by_label["label"].as_str()),
        (Some(14), Some("8"))
    );
    let (status, _) = server.get_json(&format!("/books/{book_id}/labels/no-such-label")).await;
    assert_eq!(status, 404);

    // Pages that are not there, books without pages to draw.
    assert_eq!(
        get(&server, &format!("/books/{book_id}/pages/114/image"), None)
            .await
            .status()
            .as_u16(),
        404
    );
    let unprocessed = server.create_book("not uploaded").await;
    assert_eq!(
        get(&server, &format!("/books/{unprocessed}/pages/1/image"), None)
            .await
            .status()
            .as_u16(),
        404
    );
    let epub = server.create_book("an EPUB").await;
    let (status, accepted) = server.upload(&epub, small_epub(), "book.epub").await;
    assert_eq!(status, 202, "{accepted}");
    server
        .wait_for_job(accepted["job_id"].as_str().expect("job"), Duration::from_secs(60))
        .await;
    let refused = get(&server, &format!("/books/{epub}/pages/1/image"), None).await;
    assert_eq!(refused.status().as_u16(), 404);
    let said: serde_json::Value = refused.json().await.expect("detail");
    assert!(said["detail"].as_str().is_some_and(|d| d.contains("EPUB")), "{said}");
    let (status, _) = server.get_json(&format!("/books/{epub}/pages/1/words")).await;
    assert_eq!(status, 404, "an EPUB has no page image to mark");

    // A DjVu page is drawn by djvulibre.
    let djvu = server.create_book("a DjVu").await;
    let (status, accepted) = server.upload(&djvu, djvu_of("r-intro", 1, 14), "book.djvu").await;
    assert_eq!(status, 202, "{accepted}");
    server
        .wait_for_job(accepted["job_id"].as_str().expect("job"), Duration::from_secs(120))
        .await;
    let page = get(&server, &format!("/books/{djvu}/pages/14/image"), None).await;
    assert_eq!(page.status().as_u16(), 200);
    let (width, _) = png_size(&page.bytes().await.expect("png")).expect("a PNG");
    assert_eq!(width, 1200);
}
