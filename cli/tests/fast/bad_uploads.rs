//! Untrusted uploads: every bad file gets a clear 4xx or a job that ends with a readable
//! error, and the server keeps serving good books afterwards.

use crate::common;

use std::process::Command;
use std::time::Duration;

use common::{TEST_ADMIN_KEY, TestServer, corpus_pdf};

const JOB_TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread")]
async fn bad_files_are_refused_clearly_and_the_server_goes_on() {
    // A 1 MB limit keeps the oversized case small; retries are fast so nothing lingers.
    let server = TestServer::start(&[
        ("HBI__LIMITS__MAX_UPLOAD_MB", "1"),
        ("HBI__WORKER__RETRY_BASE_DELAY_MS", "200"),
    ]);
    let book = server.create_book("bad uploads").await;

    // Refused at the door.
    let (status, body) = server
        .upload(&book, b"hello, this is a text file".to_vec(), "notes.pdf")
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["detail"].as_str().is_some_and(|d| d.contains("not a PDF")),
        "{body}"
    );

    let (status, body) = server.upload(&book, Vec::new(), "empty.pdf").await;
    assert_eq!(status, 400, "{body}");
    assert!(body["detail"].as_str().is_some_and(|d| d.contains("empty")), "{body}");

    // Just over the limit: read while streaming, then refused with a detail.
    let mut oversized = b"%PDF-1.4\n".to_vec();
    oversized.resize(1024 * 1024 + 10 * 1024, b'0');
    let (status, body) = server.upload(&book, oversized, "huge.pdf").await;
    assert_eq!(status, 413, "{body}");
    assert!(body["detail"].as_str().is_some_and(|d| d.contains("limit")), "{body}");

    // Far over the limit by its declared length: refused before a byte of it is read.
    let answer = raw_request(
        &server,
        &format!(
            "POST /books/{book}/upload HTTP/1.1\r\nHost: x\r\nX-API-Key: {TEST_ADMIN_KEY}\r\n\
             Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 10000000000\r\n\r\n--b\r\n"
        ),
    );
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("detail"), "{answer}");

    let response = server
        .client
        .post(server.url(&format!("/books/{book}/upload")))
        .header("content-type", "multipart/form-data; boundary=x")
        .body("garbage")
        .send()
        .await
        .expect("post");
    // FastAPI answers a body it cannot parse as multipart with 400 and a message.
    assert_eq!(response.status().as_u16(), 400, "a broken multipart body");
    let body: serde_json::Value = response.json().await.expect("json");
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()), "{body}");

    // Accepted (it looks like a PDF) but refused by the worker with a readable error.
    let small = std::fs::read(corpus_pdf("amsldoc")).expect("amsldoc");
    let truncated = small[..small.len() / 3].to_vec();
    let job = upload_and_wait(&server, "truncated", truncated).await;
    assert_eq!(job["state"], "dead", "{job}");
    assert_eq!(job["retryable"], false, "a damaged file is not retried: {job}");
    assert!(
        job["error"]
            .as_str()
            .is_some_and(|e| e.contains("damaged") || e.contains("PDF")),
        "{job}"
    );
    assert!(job["error_stage"].is_string(), "{job}");

    let encrypted_path = tempfile::NamedTempFile::new().expect("temp");
    let status = Command::new("qpdf")
        .args(["--encrypt", "user", "owner", "256", "--"])
        .arg(corpus_pdf("amsldoc"))
        .arg(encrypted_path.path())
        .status()
        .expect("qpdf is installed (scripts/test installs it)");
    assert!(status.success());
    let job = upload_and_wait(
        &server,
        "encrypted",
        std::fs::read(encrypted_path.path()).expect("encrypted"),
    )
    .await;
    assert_eq!(job["state"], "dead", "{job}");
    assert!(job["error"].as_str().is_some_and(|e| e.contains("encrypted")), "{job}");

    let mut header_only = b"%PDF-1.7\n".to_vec();
    header_only.extend(std::iter::repeat_n(b'\xff', 4096));
    let job = upload_and_wait(&server, "header only", header_only).await;
    assert_eq!(job["state"], "dead", "{job}");
    assert!(job["error"].as_str().is_some_and(|e| !e.is_empty()), "{job}");

    // The server is still healthy and still processes a good book.
    let (status, _) = server.get_json("/health/ready").await;
    assert_eq!(status, 200);
    let job = upload_and_wait(&server, "good", small).await;
    assert_eq!(job["state"], "succeeded", "{job}");

    let (_, stats) = server.get_json("/stats").await;
    assert_eq!(stats["dlq_size"], 3, "{stats}");

    // The dead-letter queue shows each with its error, stage and history; an operator can
    // requeue one (it fails again: the file is still encrypted) or discard it.
    let (status, dlq) = server.get_json("/dlq").await;
    assert_eq!(status, 200);
    let dead = dlq.as_array().expect("dlq list");
    assert_eq!(dead.len(), 3);
    assert!(
        dead.iter()
            .all(|job| job["error"].is_string() && job["error_stage"].is_string()),
        "{dlq}"
    );
    assert!(
        dead.iter()
            .all(|job| !job["history"].as_array().expect("history").is_empty()),
        "{dlq}"
    );
    let encrypted = dead
        .iter()
        .find(|job| job["error"].as_str().is_some_and(|e| e.contains("encrypted")))
        .expect("the encrypted book is in the DLQ");
    let id = encrypted["id"].as_str().expect("id");
    let response = server
        .client
        .post(server.url(&format!("/dlq/{id}/requeue")))
        .send()
        .await
        .expect("requeue");
    assert_eq!(response.status().as_u16(), 202);
    let again = server.wait_for_job(id, JOB_TIMEOUT).await;
    assert_eq!(again["state"], "dead", "{again}");
    assert_eq!(
        again["history"].as_array().map(Vec::len),
        Some(2),
        "history keeps both attempts: {again}"
    );
    let response = server
        .client
        .delete(server.url(&format!("/dlq/{id}")))
        .send()
        .await
        .expect("discard");
    assert_eq!(response.status().as_u16(), 204);
    let (_, stats) = server.get_json("/stats").await;
    assert_eq!(stats["dlq_size"], 2, "{stats}");
    let response = server
        .client
        .post(server.url(&format!("/dlq/{id}/requeue")))
        .send()
        .await
        .expect("requeue");
    assert_eq!(
        response.status().as_u16(),
        409,
        "a discarded job is no longer in the DLQ"
    );
    let response = server
        .client
        .post(server.url(&format!("/jobs/{id}/retry")))
        .send()
        .await
        .expect("retry");
    assert_eq!(
        response.status().as_u16(),
        202,
        "but it can still be retried as a cancelled job"
    );
    let retried = server.wait_for_job(id, JOB_TIMEOUT).await;
    assert_eq!(retried["history"].as_array().map(Vec::len), Some(3), "{retried}");
}

/// Sends raw bytes and reads the answer (for requests a well-behaved client cannot make).
fn raw_request(server: &TestServer, request: &str) -> String {
    use std::io::{Read, Write};
    let address = server.base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    stream.write_all(request.as_bytes()).expect("write");
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    while let Ok(read) = stream.read(&mut buffer) {
        if read == 0 {
            break;
        }
        answer.extend_from_slice(&buffer[..read]);
        if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}") {
            break;
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

async fn upload_and_wait(server: &TestServer, title: &str, bytes: Vec<u8>) -> serde_json::Value {
    let book = server.create_book(title).await;
    let (status, accepted) = server.upload(&book, bytes, &format!("{title}.pdf")).await;
    assert_eq!(status, 202, "{title}: {accepted}");
    server
        .wait_for_job(accepted["job_id"].as_str().expect("job id"), JOB_TIMEOUT)
        .await
}

/// One live job per book, seen from HTTP: a book's old dead job cannot run again once a
/// newer upload replaced its file (it would read a deleted blob and flip the ready book to
/// failed), neither from the jobs nor from the dead-letter queue.
#[tokio::test(flavor = "multi_thread")]
async fn an_old_dead_job_cannot_run_again_over_a_newer_upload() {
    let server = TestServer::start(&[]);
    let book = server.create_book("replaced").await;
    let mut damaged = b"%PDF-1.7\n".to_vec();
    damaged.extend(std::iter::repeat_n(b'\xff', 4096));
    let (status, accepted) = server.upload(&book, damaged, "damaged.pdf").await;
    assert_eq!(status, 202, "{accepted}");
    let old_job = accepted["job_id"].as_str().expect("job id").to_owned();
    let old = server.wait_for_job(&old_job, JOB_TIMEOUT).await;
    assert_eq!(old["state"], "dead", "{old}");

    let good = std::fs::read(corpus_pdf("amsldoc")).expect("amsldoc");
    let (status, accepted) = server.upload(&book, good, "amsldoc.pdf").await;
    assert_eq!(status, 202, "a dead job does not hold the book: {accepted}");
    let new = server
        .wait_for_job(accepted["job_id"].as_str().expect("job id"), JOB_TIMEOUT)
        .await;
    assert_eq!(new["state"], "succeeded", "{new}");
    let (_, before) = server.get_json(&format!("/books/{book}")).await;

    for path in [format!("/jobs/{old_job}/retry"), format!("/dlq/{old_job}/requeue")] {
        let response = server.client.post(server.url(&path)).send().await.expect("post");
        assert_eq!(response.status().as_u16(), 409, "{path}");
        let body: serde_json::Value = response.json().await.expect("json");
        assert!(
            body["detail"].as_str().is_some_and(|d| d.contains("newer job")),
            "{path}: {body}"
        );
    }
    let (_, after) = server.get_json(&format!("/books/{book}")).await;
    assert_eq!(after["status"], before["status"], "the book is untouched: {after}");
    let (_, old) = server.get_json(&format!("/jobs/{old_job}")).await;
    assert_eq!(old["state"], "dead", "the old job stays where it was: {old}");
}

/// A file that makes the extractor crash or run too long fails that one job only: the
/// extractor runs in a child process with a memory limit and a deadline.
#[tokio::test(flavor = "multi_thread")]
async fn extractor_crash_or_timeout_fails_only_that_job() {
    let octave = std::fs::read(corpus_pdf("octave")).expect("octave");
    let small = std::fs::read(corpus_pdf("gnu-standards")).expect("gnu-standards");

    // 40 MB of address space cannot hold a 1158-page book: the child dies, the job is
    // retried (a crash may be transient), then lands in the dead-letter state.
    let server = TestServer::start(&[
        ("HBI__WORKER__EXTRACTOR_MEMORY_MB", "64"),
        ("HBI__WORKER__MAX_ATTEMPTS", "2"),
        ("HBI__WORKER__RETRY_BASE_DELAY_MS", "100"),
    ]);
    let job = upload_and_wait(&server, "too big for its memory", octave.clone()).await;
    assert_eq!(job["state"], "dead", "{job}");
    assert_eq!(job["attempts"], 2, "a crash is retried: {job}");
    assert_eq!(job["error_stage"], "extract_text", "{job}");
    assert!(job["error"].as_str().is_some_and(|e| e.contains("extractor")), "{job}");
    let history = job["history"].as_array().expect("history");
    assert_eq!(history.len(), 2);
    assert!(history.iter().all(|attempt| attempt["error"].is_string()), "{job}");
    let (status, _) = server.get_json("/health/ready").await;
    assert_eq!(status, 200, "the server survives the child's crash");
    drop(server);

    // A deadline shorter than the extraction: the child is killed, the worker goes on.
    // octave takes well over a second to extract, gnu-standards a tenth of one.
    let server = TestServer::start(&[
        ("HBI__WORKER__STAGE_TIMEOUT_SECS", "0.5"),
        ("HBI__WORKER__MAX_ATTEMPTS", "1"),
    ]);
    let job = upload_and_wait(&server, "too slow", octave).await;
    assert_eq!(job["state"], "dead", "{job}");
    assert!(
        job["error"].as_str().is_some_and(|e| e.contains("longer than")),
        "{job}"
    );
    let job = upload_and_wait(&server, "next one", small).await;
    assert_eq!(job["state"], "succeeded", "the worker goes on with the next job: {job}");
}

/// Sends `head` (request line and headers, `Transfer-Encoding: chunked`, no length), then
/// `prefix` and zeros as 64 KiB chunks until `total` bytes of body were sent (then `suffix`),
/// the server stops taking them, or it answers. Returns the answer and the body bytes the
/// socket took.
fn send_chunked(server: &TestServer, head: &str, prefix: &[u8], suffix: &[u8], total: usize) -> (String, usize) {
    use std::io::{Read, Write};
    let address = server.base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    // A server that stops reading fills the socket buffers: the write then times out.
    stream.set_write_timeout(Some(Duration::from_secs(3))).expect("timeout");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let mut reader = stream.try_clone().expect("clone");
    let answer = std::thread::spawn(move || {
        let mut answer = Vec::new();
        let mut buffer = [0u8; 4096];
        while let Ok(read) = reader.read(&mut buffer) {
            if read == 0 {
                break;
            }
            answer.extend_from_slice(&buffer[..read]);
            if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}") {
                break;
            }
        }
        String::from_utf8_lossy(&answer).into_owned()
    });
    stream.write_all(head.as_bytes()).expect("write the head");
    let zeros = vec![b'0'; 64 * 1024];
    let mut sent = 0;
    let mut first = Some(prefix);
    while sent < total {
        let data = first.take().unwrap_or(&zeros[..]);
        let chunk = [format!("{:x}\r\n", data.len()).as_bytes(), data, b"\r\n"].concat();
        if stream.write_all(&chunk).is_err() {
            break;
        }
        sent += data.len();
    }
    if sent >= total {
        let last = [format!("{:x}\r\n", suffix.len()).as_bytes(), suffix, b"\r\n0\r\n\r\n"].concat();
        let _ = stream.write_all(&last);
    }
    (answer.join().expect("reader"), sent)
}

/// Hole 3: a body without a length is counted while it streams and cut off at the limit (the
/// upload limit plus the multipart envelope for uploads, 1 MiB for JSON), not read whole and
/// refused afterwards. The socket takes a few MB more than the limit before the server's
/// stop shows (kernel buffers); a server reading it whole takes all of it.
#[tokio::test(flavor = "multi_thread")]
async fn bodies_without_a_length_are_cut_off_at_the_limit() {
    let server = TestServer::start(&[("HBI__LIMITS__MAX_UPLOAD_MB", "1")]);
    let book = server.create_book("chunked").await;
    const TOTAL: usize = 200 << 20;
    let head = format!(
        "POST /books/{book}/upload HTTP/1.1\r\nHost: x\r\nX-API-Key: {TEST_ADMIN_KEY}\r\n\
         Content-Type: multipart/form-data; boundary=b\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    let prefix = b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"z.pdf\"\r\n\
                   Content-Type: application/pdf\r\n\r\n%PDF-1.4\n";
    let (answer, sent) = send_chunked(&server, &head, prefix, b"\r\n--b--\r\n", TOTAL);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("limit"), "{answer}");
    assert!(sent < 32 << 20, "the server read {sent} bytes of a 1 MB upload limit");
    println!("chunked upload over the limit: the socket took {sent} bytes");

    // JSON: 1 MiB, declared or not.
    let title = "t".repeat(2 << 20);
    let response = server
        .client
        .post(server.url("/books"))
        .json(&serde_json::json!({"title": title}))
        .send()
        .await
        .expect("post");
    assert_eq!(response.status().as_u16(), 413, "a 2 MiB JSON body with its length");
    let head = format!(
        "POST /books HTTP/1.1\r\nHost: x\r\nX-API-Key: {TEST_ADMIN_KEY}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    let (answer, sent) = send_chunked(&server, &head, b"{\"title\": \"", b"\"}", TOTAL);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(sent < 32 << 20, "the server read {sent} bytes of a JSON body");
    println!("chunked JSON over the limit: the socket took {sent} bytes");

    // Within the limits all is as before.
    let (status, _) = server.get_json(&format!("/books/{book}")).await;
    assert_eq!(status, 200);
    let (status, body) = server.upload(&book, b"%PDF-1.4\nsmall".to_vec(), "small.pdf").await;
    assert_eq!(status, 202, "{body}");
}
