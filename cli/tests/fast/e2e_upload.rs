//! The walking skeleton end to end: a real server, a real book uploaded as multipart over
//! HTTP, the job followed to `succeeded`, and the ToC checked entry by entry.

use crate::common;

use std::time::Duration;

use common::formats::{djvu_of, scan_of, small_epub};
use common::{TestServer, corpus_dir, corpus_pdf, normalise_title};
use serde_json::Value;

fn flatten(nodes: &[Value], out: &mut Vec<(u64, String, Option<u64>, Option<String>)>) {
    for node in nodes {
        out.push((
            node["level"].as_u64().expect("level"),
            node["title"].as_str().expect("title").to_owned(),
            node["page_number"].as_u64(),
            node["page_label"].as_str().map(str::to_owned),
        ));
        flatten(node["children"].as_array().expect("children"), out);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn uploaded_book_gets_its_full_toc_with_exact_pages() {
    let server = TestServer::start(&[]);
    let book_id = server.create_book("An Introduction to R").await;

    let pdf = std::fs::read(corpus_pdf("r-intro")).expect("r-intro pdf");
    let (status, accepted) = server.upload(&book_id, pdf.clone(), "R-intro.pdf").await;
    assert_eq!(status, 202, "upload: {accepted}");
    assert_eq!(
        accepted["status_url"],
        format!("/jobs/{}", accepted["job_id"].as_str().expect("job id"))
    );
    let job_id = accepted["job_id"].as_str().expect("job id").to_owned();

    let job = server.wait_for_job(&job_id, Duration::from_secs(180)).await;
    assert_eq!(job["state"], "succeeded", "job: {job}");
    assert_eq!(job["progress"]["done"], 113, "progress counts pages: {job}");
    assert_eq!(job["progress"]["total"], 113);
    assert_eq!(job["attempts"], 1);
    assert!(job["finished_at"].is_string());

    let (status, toc) = server.get_json(&format!("/books/{book_id}/toc")).await;
    assert_eq!(status, 200);
    let mut got = Vec::new();
    flatten(toc.as_array().expect("toc array"), &mut got);

    let truth: Value =
        serde_json::from_str(&std::fs::read_to_string(corpus_dir().join("r-intro/toc.json")).expect("toc.json"))
            .expect("json");
    let expected: Vec<(u64, String, u64)> = truth["outline_flat"]
        .as_array()
        .expect("outline_flat")
        .iter()
        .map(|e| {
            (
                e["level"].as_u64().expect("level"),
                normalise_title(e["title"].as_str().expect("title")),
                e["page"].as_u64().expect("page"),
            )
        })
        .collect();
    assert_eq!(got.len(), expected.len(), "every outline entry, no more, no less");
    for ((level, title, page, _), (want_level, want_title, want_page)) in got.iter().zip(&expected) {
        assert_eq!(&normalise_title(title), want_title);
        assert_eq!(page, &Some(*want_page), "physical page of {title:?}");
        assert_eq!(level, want_level, "level of {title:?}");
    }
    // r-intro has /PageLabels: the preface starts on physical page 7, printed "1"... and
    // front matter is roman. Labels must come from the document, not from the page index.
    let first = &got[0];
    assert_ne!(
        first.3.as_deref(),
        first.2.map(|p| p.to_string()).as_deref(),
        "page labels differ from physical numbers in r-intro"
    );

    // The page endpoint: label, text and the section the page belongs to.
    let (status, page) = server
        .get_json(&format!("/books/{book_id}/pages/{}", expected[1].2))
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page["text"].as_str().is_some_and(|t| t.len() > 200),
        "page text: {page}"
    );
    assert!(
        page["section_path"].as_array().is_some_and(|p| !p.is_empty()),
        "section path: {page}"
    );
    let (status, missing) = server.get_json(&format!("/books/{book_id}/pages/9999")).await;
    assert_eq!(status, 404);
    assert!(
        missing["detail"].as_str().is_some_and(|d| d.contains("113")),
        "{missing}"
    );

    // The back-of-book indexes: both of r-intro's, every printed entry, physical pages.
    let (status, index) = server.get_json(&format!("/books/{book_id}/index")).await;
    assert_eq!(status, 200);
    let entries = index.as_array().expect("index array");
    let names: std::collections::BTreeSet<&str> = entries.iter().filter_map(|e| e["index_name"].as_str()).collect();
    assert_eq!(names.len(), 2, "two indexes: {names:?}");
    let index_truth: Value =
        serde_json::from_str(&std::fs::read_to_string(corpus_dir().join("r-intro/index.json")).expect("index.json"))
            .expect("json");
    let truth_rows = count_truth_rows(index_truth["indices"].as_array().expect("indices"));
    let got_rows = count_entries(entries);
    assert!(
        got_rows.abs_diff(truth_rows) <= truth_rows / 50,
        "{got_rows} entries against {truth_rows} printed"
    );
    let (status, found) = server.get_json(&format!("/books/{book_id}/index?q=assignment")).await;
    assert_eq!(status, 200);
    let assignment = found
        .as_array()
        .expect("filtered")
        .iter()
        .find(|e| e["term"] == "Assignment")
        .unwrap_or_else(|| panic!("Assignment is indexed: {found}"));
    assert_eq!(
        assignment["pages"][0]["first_page"], 14,
        "printed page 8 is physical page 14: {assignment}"
    );
    assert_eq!(assignment["pages"][0]["first_label"], "8");
    let (_, page14) = server.get_json(&format!("/books/{book_id}/pages/14")).await;
    assert!(
        page14["index_terms"]
            .as_array()
            .is_some_and(|terms| terms.iter().any(|t| t == "Assignment")),
        "the page lists the index terms that point at it: {}",
        page14["index_terms"]
    );

    // The same content again: the existing result, no new job.
    let (status, again) = server.upload(&book_id, pdf.clone(), "R-intro.pdf").await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["job_id"], job_id.as_str());
    assert_eq!(again["status"], "succeeded");
    // ...unless asked to reprocess.
    let (status, reprocessed) = server
        .upload_to(&format!("/books/{book_id}/upload?reprocess=true"), pdf, "R-intro.pdf")
        .await;
    assert_eq!(status, 202, "{reprocessed}");
    let second = server
        .wait_for_job(
            reprocessed["job_id"].as_str().expect("job id"),
            Duration::from_secs(180),
        )
        .await;
    assert_eq!(second["state"], "succeeded");
    let (_, toc_again) = server.get_json(&format!("/books/{book_id}/toc")).await;
    let mut again_flat = Vec::new();
    flatten(toc_again.as_array().expect("toc"), &mut again_flat);
    assert_eq!(again_flat, got, "a re-run leaves one copy of the ToC");

    let (status, book) = server.get_json(&format!("/books/{book_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(book["status"], "ready");
    assert_eq!(book["page_count"], 113);
    assert_eq!(book["toc_source"], "outline");
    assert_eq!(book["source_path"], "R-intro.pdf");

    let (status, stats) = server.get_json("/stats").await;
    assert_eq!(status, 200);
    assert_eq!(stats["total_books_indexed"], 1, "{stats}");
    assert_eq!(stats["jobs_succeeded"], 2, "{stats}");
    assert_eq!(stats["dlq_size"], 0);

    // Another file for the book: the file no book uses any more leaves the blob store.
    let replaced_blobs = walk_files(&server.data_dir.join("blobs"));
    assert_eq!(replaced_blobs.len(), 1, "{replaced_blobs:?}");
    let other = std::fs::read(corpus_pdf("amsldoc")).expect("amsldoc pdf");
    let (status, replaced) = server.upload(&book_id, other, "amsldoc.pdf").await;
    assert_eq!(status, 202, "{replaced}");
    let third = server
        .wait_for_job(replaced["job_id"].as_str().expect("job id"), Duration::from_secs(180))
        .await;
    assert_eq!(third["state"], "succeeded", "{third}");
    let blobs_now = walk_files(&server.data_dir.join("blobs"));
    assert_eq!(blobs_now.len(), 1, "only the new file stays: {blobs_now:?}");
    assert_ne!(blobs_now, replaced_blobs, "{blobs_now:?}");

    // Delete removes the book, its rows and its blob.
    let response = server
        .client
        .delete(server.url(&format!("/books/{book_id}")))
        .send()
        .await
        .expect("delete");
    assert_eq!(response.status().as_u16(), 204);
    let (status, gone) = server.get_json(&format!("/books/{book_id}")).await;
    assert_eq!(status, 404);
    assert_eq!(gone["detail"], "Book not found");
    let (status, _) = server.get_json(&format!("/books/{book_id}/toc")).await;
    assert_eq!(status, 404);
    let blobs = walk_files(&server.data_dir.join("blobs"));
    assert!(blobs.is_empty(), "blob removed with its last book: {blobs:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_have_fastapi_shape() {
    let server = TestServer::start(&[]);
    let (status, body) = server.get_json("/books/not-a-uuid").await;
    assert_eq!(status, 404);
    assert_eq!(body, serde_json::json!({"detail": "Book not found"}));

    let (status, body) = server.get_json("/no/such/route").await;
    assert_eq!(status, 404);
    assert_eq!(body, serde_json::json!({"detail": "Not Found"}));

    let response = server
        .client
        .post(server.url("/books/"))
        .json(&serde_json::json!({"author": "x"}))
        .send()
        .await
        .expect("post");
    assert_eq!(response.status().as_u16(), 422);
    let body: Value = response.json().await.expect("json");
    let issue = &body["detail"][0];
    assert!(
        issue["loc"].is_array() && issue["msg"].is_string() && issue["type"].is_string(),
        "{body}"
    );

    let response = server
        .client
        .post(server.url("/books/"))
        .json(&serde_json::json!({"title": "   "}))
        .send()
        .await
        .expect("post");
    assert_eq!(response.status().as_u16(), 422);

    let (status, body) = server.get_json("/books/?limit=5000").await;
    assert_eq!(status, 422, "limit is bounded: {body}");
    assert_eq!(body["detail"][0]["loc"], serde_json::json!(["query", "limit"]));

    let (status, _) = server.get_json("/books").await;
    assert_eq!(status, 200, "both /books and /books/ list books");
    let (status, body) = server.get_json("/jobs/01a209e6-b20c-750f-8361-cf3af0f21a6c").await;
    assert_eq!((status, body), (404, serde_json::json!({"detail": "Job not found"})));
}

fn count_truth_rows(entries: &[Value]) -> usize {
    entries
        .iter()
        .map(|block| {
            let list = block["entries"].as_array().or(block["subterms"].as_array());
            match list {
                Some(children) if block.get("term").is_none() => count_truth_rows(children),
                _ => 1 + block["subterms"].as_array().map_or(0, |subs| count_truth_rows(subs)),
            }
        })
        .sum()
}

fn count_entries(entries: &[Value]) -> usize {
    entries
        .iter()
        .map(|e| 1 + count_entries(e["subentries"].as_array().map_or(&[], |v| v.as_slice())))
        .sum()
}

fn walk_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                files.extend(walk_files(&path));
            } else {
                files.push(path);
            }
        }
    }
    files
}

/// Uploads arriving together while the worker writes another book: every one is accepted
/// (SQLite writers wait their turn instead of failing with "database is locked").
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_uploads_are_all_accepted_while_the_worker_writes() {
    let server = TestServer::start(&[("HBI__WORKER__CONCURRENCY", "2")]);
    let pdf = std::fs::read(corpus_pdf("amsldoc")).expect("pdf");
    let mut books = Vec::new();
    for n in 0..24 {
        books.push(server.create_book(&format!("copy {n}")).await);
    }
    let uploads = books.iter().enumerate().map(|(n, book)| {
        let mut copy = pdf.clone();
        copy.extend_from_slice(format!("\n% copy {n}\n").as_bytes());
        let server = &server;
        async move { server.upload(book, copy, "amsldoc.pdf").await }
    });
    let answers = futures::future::join_all(uploads).await;
    let mut jobs = Vec::new();
    for (status, accepted) in answers {
        assert_eq!(status, 202, "{accepted}");
        jobs.push(accepted["job_id"].as_str().expect("job id").to_owned());
    }
    for job_id in &jobs {
        let job = server.wait_for_job(job_id, Duration::from_secs(300)).await;
        assert_eq!(job["state"], "succeeded", "{job}");
    }
}

/// A PDF of `pages` pages that draw lines but carry no text, like a scan without OCR.
fn textless_pdf(pages: usize) -> Vec<u8> {
    let mut objects: Vec<String> = Vec::new();
    let kids: Vec<String> = (0..pages).map(|n| format!("{} 0 R", 3 + 2 * n)).collect();
    objects.push("<< /Type /Catalog /Pages 2 0 R >>".to_owned());
    objects.push(format!("<< /Type /Pages /Kids [{}] /Count {pages} >>", kids.join(" ")));
    for n in 0..pages {
        let content = format!("{} {} m 500 700 l S", 10 + n, 10 + n);
        objects.push(format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {} 0 R >>",
            4 + 2 * n
        ));
        objects.push(format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len()));
    }
    let mut pdf = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (n, object) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n{object}\nendobj\n", n + 1).as_bytes());
    }
    let xref = pdf.len();
    pdf.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for offset in offsets {
        pdf.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    pdf.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    pdf
}

/// Quality gates: a real book passes them all and is `ready`; a book without a text layer
/// is processed but flagged `needs_review`, with the reason, instead of indexed silently empty.
#[tokio::test(flavor = "multi_thread")]
async fn quality_gates_pass_a_real_book_and_flag_a_scan() {
    let server = TestServer::start(&[]);
    let good = server.create_book("An Introduction to R").await;
    let (status, accepted) = server
        .upload(&good, std::fs::read(corpus_pdf("r-intro")).expect("pdf"), "r.pdf")
        .await;
    assert_eq!(status, 202, "{accepted}");
    let scan = server.create_book("A scanned book").await;
    let (status, scanned) = server.upload(&scan, textless_pdf(6), "scan.pdf").await;
    assert_eq!(status, 202, "{scanned}");
    for job in [&accepted, &scanned] {
        let job = server
            .wait_for_job(job["job_id"].as_str().expect("job id"), Duration::from_secs(240))
            .await;
        assert_eq!(job["state"], "succeeded", "a failed gate is not a failed job: {job}");
    }

    let (status, quality) = server.get_json(&format!("/books/{good}/quality")).await;
    assert_eq!(status, 200, "{quality}");
    assert_eq!(quality["passed"], true, "{quality}");
    assert_eq!(quality["status"], "ready", "{quality}");
    let gates: Vec<&str> = quality["gates"]
        .as_array()
        .expect("gates")
        .iter()
        .map(|g| g["gate"].as_str().expect("gate"))
        .collect();
    for expected in [
        "text_coverage",
        "garbage_ratio",
        "toc_sanity",
        "index_locator_support",
        "chunk_vector_consistency",
    ] {
        assert!(gates.contains(&expected), "{expected} in {gates:?}");
    }

    let (_, quality) = server.get_json(&format!("/books/{scan}/quality")).await;
    assert_eq!(quality["passed"], false, "{quality}");
    assert_eq!(quality["status"], "needs_review", "{quality}");
    let coverage = quality["gates"]
        .as_array()
        .and_then(|gates| gates.iter().find(|g| g["gate"] == "text_coverage"))
        .expect("text coverage gate")
        .clone();
    assert_eq!(coverage["passed"], false, "{coverage}");
    assert_eq!(coverage["metric"], 0.0, "{coverage}");
    assert!(
        coverage["detail"].as_str().is_some_and(|d| d.contains("OCR")),
        "{coverage}"
    );
    let (_, book) = server.get_json(&format!("/books/{scan}")).await;
    assert_eq!(book["status"], "needs_review", "{book}");
    let (status, _) = server
        .get_json("/books/00000000-0000-0000-0000-000000000000/quality")
        .await;
    assert_eq!(status, 404);
}

/// An EPUB goes the way of a PDF: told apart by its bytes (the name says `.pdf`), its
/// navigation becomes the ToC, its text pages that search finds, its index links entries.
#[tokio::test(flavor = "multi_thread")]
async fn an_epub_is_read_like_a_pdf() {
    let book = small_epub();

    let server = TestServer::start(&[]);
    let book_id = server.create_book("Graphs and quaternions").await;
    let (status, accepted) = server.upload(&book_id, book, "named-like-a.pdf").await;
    assert_eq!(status, 202, "upload: {accepted}");
    let job_id = accepted["job_id"].as_str().expect("job id").to_owned();
    let job = server.wait_for_job(&job_id, Duration::from_secs(120)).await;
    assert_eq!(job["state"], "succeeded", "job: {job}");

    let (status, toc) = server.get_json(&format!("/books/{book_id}/toc")).await;
    assert_eq!(status, 200);
    let mut got = Vec::new();
    flatten(toc.as_array().expect("toc array"), &mut got);
    let entries: Vec<(u64, &str)> = got
        .iter()
        .map(|(level, title, _, _)| (*level, title.as_str()))
        .collect();
    assert_eq!(
        entries,
        [(1, "1 Vertices"), (2, "1.1 Degree"), (1, "2 Quaternions"), (1, "Index")]
    );
    let degree_page = got[1].2.expect("1.1 Degree has a page");
    assert!(degree_page >= 2, "the filler fills the first page: {got:?}");

    let (status, page) = server.get_json(&format!("/books/{book_id}/pages/{degree_page}")).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page["text"]
            .as_str()
            .is_some_and(|t| t.contains("The degree of a vertex counts its edges.")),
        "{page}"
    );

    let (status, index) = server.get_json(&format!("/books/{book_id}/index")).await;
    assert_eq!(status, 200);
    let terms: Vec<(&str, u64)> = index
        .as_array()
        .expect("index")
        .iter()
        .map(|entry| {
            (
                entry["term"].as_str().expect("term"),
                entry["pages"][0]["first_page"].as_u64().expect("page"),
            )
        })
        .collect();
    assert_eq!(terms[0], ("degree", degree_page));
    assert_eq!(terms[1].0, "quaternion");

    let response = server
        .client
        .get(server.url("/search"))
        .query(&[("q", "quaternion bridge"), ("mode", "keyword")])
        .send()
        .await
        .expect("GET /search");
    assert_eq!(response.status(), 200);
    let found: Value = response.json().await.expect("json");
    let hit = &found["results"][0];
    assert_eq!(hit["book_id"], book_id.as_str(), "{found}");
    assert_eq!(hit["page"].as_u64(), Some(terms[1].1), "{found}");
}

/// A DjVu document (made here from the first pages of r-intro with pdf2djvu) goes the way
/// of its PDF: its outline is the ToC, its text layer the pages, its page titles the labels.
#[tokio::test(flavor = "multi_thread")]
async fn a_djvu_is_read_like_its_pdf() {
    let djvu = djvu_of("r-intro", 1, 14);

    let server = TestServer::start(&[]);
    let book_id = server.create_book("An Introduction to R, in DjVu").await;
    let (status, accepted) = server.upload(&book_id, djvu, "r-intro.djvu").await;
    assert_eq!(status, 202, "upload: {accepted}");
    let job_id = accepted["job_id"].as_str().expect("job id").to_owned();
    let job = server.wait_for_job(&job_id, Duration::from_secs(120)).await;
    assert_eq!(job["state"], "succeeded", "job: {job}");
    assert_eq!(job["progress"]["total"], 14, "progress counts pages: {job}");

    let (status, toc) = server.get_json(&format!("/books/{book_id}/toc")).await;
    assert_eq!(status, 200);
    let mut got = Vec::new();
    flatten(toc.as_array().expect("toc array"), &mut got);
    let preface = got
        .iter()
        .find(|entry| entry.1 == "Preface")
        .expect("the Preface entry");
    assert_eq!((preface.2, preface.3.as_deref()), (Some(7), Some("1")), "{got:?}");
    assert!(got.iter().any(|entry| entry.0 == 2), "nested entries: {got:?}");

    let (status, page) = server.get_json(&format!("/books/{book_id}/pages/8")).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page["text"]
            .as_str()
            .is_some_and(|text| text.contains("Introduction and preliminaries")),
        "{page}"
    );
}

/// A scanned book goes the way of a born-digital one: its pages are recognised by OCR in the
/// book's language, searched, chunked and embedded, and the quality report says how sure OCR was.
#[tokio::test(flavor = "multi_thread")]
async fn a_scan_is_read_by_ocr_in_the_books_language() {
    let scan = scan_of("lilypond-learning-de", &[26, 27]);
    let server = TestServer::start(&[]);

    let create = |body: Value| {
        let client = server.client.clone();
        let url = server.url("/books/");
        async move {
            let response = client.post(url).json(&body).send().await.expect("create book");
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, refused) = create(serde_json::json!({"title": "Klingon", "language": "tlh-Latn!"})).await;
    assert_eq!(status, 422, "{refused}");
    assert!(refused.to_string().contains("language"), "{refused}");
    let (status, book) = create(serde_json::json!({"title": "Das Handbuch, gescannt", "language": "de"})).await;
    assert_eq!(status, 201, "{book}");
    assert_eq!(
        book["language"], "deu",
        "ISO 639-1 stored as Tesseract names it: {book}"
    );
    let (_, english) = create(serde_json::json!({"title": "No language given"})).await;
    assert_eq!(english["language"], "eng", "{english}");

    let book_id = book["id"].as_str().expect("book id");
    let (status, accepted) = server.upload(book_id, scan, "scan.pdf").await;
    assert_eq!(status, 202, "{accepted}");
    let job = server
        .wait_for_job(accepted["job_id"].as_str().expect("job id"), Duration::from_secs(240))
        .await;
    assert_eq!(job["state"], "succeeded", "{job}");

    let (status, page) = server.get_json(&format!("/books/{book_id}/pages/1")).await;
    assert_eq!(status, 200, "{page}");
    let text = page["text"].as_str().unwrap_or_default();
    for word in ["Natürlich", "Leerzeichen", "nötig", "geschweiften"] {
        assert!(text.contains(word), "{word:?} in {text}");
    }
    let (_, quality) = server.get_json(&format!("/books/{book_id}/quality")).await;
    let gate = |name: &str| {
        quality["gates"]
            .as_array()
            .and_then(|gates| gates.iter().find(|g| g["gate"] == name))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let ocr = gate("ocr_confidence");
    assert_eq!(ocr["passed"], true, "{quality}");
    assert!(
        ocr["detail"]
            .as_str()
            .is_some_and(|d| d.contains("2 of 2 pages") && d.contains("(deu)")),
        "{ocr}"
    );
    assert_eq!(
        gate("chunk_vector_consistency")["passed"],
        true,
        "chunks and vectors: {quality}"
    );
    assert_eq!(gate("text_coverage")["passed"], true, "{quality}");

    let (status, found) = server
        .get_json(&format!("/search?q=Leerzeichen&mode=keyword&book_id={book_id}"))
        .await;
    assert_eq!(status, 200, "{found}");
    assert!(
        found.to_string().contains("Leerzeichen"),
        "search finds the recognised text: {found}"
    );
}
