//! Every generated hostile file (`shared/extraction/tests/support/hostile.rs`) uploaded to one
//! `hbi serve`: each ends with a clear error (or is processed, its broken parts skipped) within
//! bounded time, without a crash or a retry, the server's memory stays bounded, and a good book
//! uploaded afterwards is processed (issue #7, part 2).

use crate::common;
use crate::hostile;
use crate::hostile_uploads;

use std::time::Duration;

use common::TestServer;
use hostile::{good_book, hostile_files};

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

#[tokio::test(flavor = "multi_thread")]
async fn hostile_files_end_cleanly_and_the_worker_goes_on() {
    let server = TestServer::start(&[
        // A stuck extraction would end as a timed-out, retried job: visible, not a hang.
        ("HBI__WORKER__STAGE_TIMEOUT_SECS", "240"),
        ("HBI__WORKER__RETRY_BASE_DELAY_MS", "200"),
    ]);
    let files = hostile_files();
    assert!(files.len() >= 30, "{} hostile files", files.len());

    let queued = hostile_uploads::upload_all(&server, &files).await;
    for file in &queued {
        hostile_uploads::follow(&server, file, JOB_TIMEOUT).await;
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
