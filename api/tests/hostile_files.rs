//! Every generated hostile file (`shared/extraction/tests/support/hostile.rs`) uploaded to one
//! `hbi serve`: each ends with a clear error (or is processed, its broken parts skipped) within
//! bounded time, without a crash or a retry, the server's memory stays bounded, and a good book
//! uploaded afterwards is processed (issue #7, part 2).

mod common;
#[path = "../../shared/extraction/tests/support/hostile.rs"]
mod hostile;

use std::time::Duration;

use common::TestServer;
use hostile::{Expect, good_book, hostile_files};
use serde_json::Value;

/// Hang guard for one job once the jobs before it are done; the stage deadline below is
/// shorter, so a hang would show as a timed-out job rather than as this.
const JOB_TIMEOUT: Duration = Duration::from_secs(400);
/// Upper bound for the server's peak resident memory: it never parses a PDF itself.
const SERVER_MEMORY_BOUND_MIB: u64 = 512;

/// Peak resident memory of a process, in MiB (`VmHWM` of /proc/PID/status).
fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the server's /proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib / 1024)
        .expect("VmHWM in /proc/PID/status")
}

fn seconds_between(job: &Value, from: &str, to: &str) -> Option<f64> {
    let parse = |key: &str| chrono::DateTime::parse_from_rfc3339(job[key].as_str()?).ok();
    let (from, to) = (parse(from)?, parse(to)?);
    Some((to - from).num_milliseconds() as f64 / 1000.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_files_end_cleanly_and_the_worker_goes_on() {
    let server = TestServer::start(&[
        // A stuck extraction would end as a timed-out, retried job: visible, not a hang.
        ("HBI__WORKER__STAGE_TIMEOUT_SECS", "240"),
        ("HBI__WORKER__RETRY_BASE_DELAY_MS", "200"),
    ]);
    let files = hostile_files();
    assert!(files.len() >= 30, "{} hostile files", files.len());

    // All uploaded first, so they queue up behind each other as a burst would.
    let mut queued = Vec::new();
    for file in &files {
        let book = server.create_book(file.name).await;
        let (status, body) = server
            .upload(&book, file.bytes.clone(), &format!("{}.pdf", file.name))
            .await;
        match file.expect {
            Expect::RefusedAtUpload(needle) => {
                assert_eq!(status, 400, "{}: {body}", file.name);
                assert!(
                    body["detail"].as_str().is_some_and(|d| d.contains(needle)),
                    "{}: {body}",
                    file.name
                );
                println!("hostile {:<44} refused at upload: {}", file.name, body["detail"]);
            }
            Expect::Refused(_) | Expect::Survives => {
                assert_eq!(status, 202, "{}: {body}", file.name);
                let job_id = body["job_id"].as_str().expect("job id").to_owned();
                queued.push((file, book, job_id));
            }
        }
    }

    for (file, book, job_id) in &queued {
        let job = server.wait_for_job(job_id, JOB_TIMEOUT).await;
        let state = job["state"].as_str().unwrap_or_default();
        // One attempt: a crash, an out-of-memory kill or a deadline would have been retried.
        assert_eq!(job["attempts"], 1, "{}: {job}", file.name);
        match file.expect {
            Expect::Refused(needle) => {
                assert_eq!(state, "dead", "{}: {job}", file.name);
                assert_eq!(job["retryable"], false, "{}: {job}", file.name);
                assert!(
                    job["error"].as_str().is_some_and(|e| e.contains(needle)),
                    "{}: {job}",
                    file.name
                );
            }
            Expect::Survives => {
                assert!(state == "succeeded" || state == "dead", "{}: {job}", file.name);
                if state == "dead" {
                    assert_eq!(job["retryable"], false, "{}: {job}", file.name);
                    assert!(
                        job["error"]
                            .as_str()
                            .is_some_and(|e| e.starts_with("the PDF") || e.starts_with("the file")),
                        "{}: a readable refusal: {job}",
                        file.name
                    );
                } else {
                    let (_, book) = server.get_json(&format!("/books/{book}")).await;
                    assert!(
                        matches!(book["status"].as_str(), Some("ready" | "needs_review")),
                        "{}: {book}",
                        file.name
                    );
                }
            }
            Expect::RefusedAtUpload(_) => unreachable!("refused files have no job"),
        }
        // Figures for RELIABILITY.md (cargo test -- --nocapture).
        println!(
            "hostile {:<44} {:<9} run {:>6.1} s  {}",
            file.name,
            state,
            seconds_between(&job, "started_at", "finished_at").unwrap_or(f64::NAN),
            job["error"].as_str().unwrap_or("")
        );
    }

    let peak = peak_rss_mib(server.pid());
    println!("server peak resident memory (VmHWM): {peak} MiB");
    assert!(peak < SERVER_MEMORY_BOUND_MIB, "server peak memory {peak} MiB");

    // The server is healthy and the worker goes on with a good book.
    let (status, ready) = server.get_json("/health/ready").await;
    assert_eq!(status, 200, "{ready}");
    let book = server.create_book("good after hostile").await;
    let (status, body) = server.upload(&book, good_book(), "good.pdf").await;
    assert_eq!(status, 202, "{body}");
    let job = server
        .wait_for_job(body["job_id"].as_str().expect("job id"), JOB_TIMEOUT)
        .await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let (_, toc) = server.get_json(&format!("/books/{book}/toc")).await;
    assert!(toc.as_array().is_some_and(|toc| !toc.is_empty()), "{toc}");
    let (_, page) = server.get_json(&format!("/books/{book}/pages/4")).await;
    assert!(
        page["text"].as_str().is_some_and(|text| text.contains("vectors")),
        "{page}"
    );
}
