//! The generated hostile files (`shared/extraction/tests/support/hostile.rs`) uploaded through
//! the API and each job followed to its end, checked against what the file expects (issue #7,
//! part 2). Shared by `hostile_files.rs` (the embedded shape) and `production_abuse.rs` (the
//! production shape).

use std::time::Duration;

use serde_json::Value;

use crate::common::TestServer;
use crate::hostile::{Expect, HostileFile};

/// A hostile file the upload accepted, with its book and job.
pub struct Queued<'a> {
    pub file: &'a HostileFile,
    pub book: String,
    pub job_id: String,
}

/// Uploads every file to a book of its own, all before any is followed, so they queue up
/// behind each other as a burst would. Files the upload must refuse are checked here;
/// returns the accepted ones.
pub async fn upload_all<'a>(server: &TestServer, files: &'a [HostileFile]) -> Vec<Queued<'a>> {
    let mut queued = Vec::new();
    for file in files {
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
                queued.push(Queued { file, book, job_id });
            }
        }
    }
    queued
}

/// Waits for the job of an accepted file and checks how it ended: in one attempt (a crash,
/// an out-of-memory kill or a deadline would have been retried), dead with the expected
/// error, or processed with the book readable. Prints the figures line; returns the job.
pub async fn follow(server: &TestServer, queued: &Queued<'_>, timeout: Duration) -> Value {
    let Queued { file, book, job_id } = queued;
    let job = server.wait_for_job(job_id, timeout).await;
    let state = job["state"].as_str().unwrap_or_default();
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
    job
}

fn seconds_between(job: &Value, from: &str, to: &str) -> Option<f64> {
    let parse = |key: &str| chrono::DateTime::parse_from_rfc3339(job[key].as_str()?).ok();
    let (from, to) = (parse(from)?, parse(to)?);
    Some((to - from).num_milliseconds() as f64 / 1000.0)
}
