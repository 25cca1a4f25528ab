//! The embedded queue is durable: a process killed with SIGKILL while uploads wait loses
//! none of them, and a job cut off mid-run is taken over after its lease.

use crate::common;

use std::time::Duration;

use common::{TestServer, corpus_pdf};

#[tokio::test(flavor = "multi_thread")]
async fn killed_process_loses_no_queued_upload() {
    let data = tempfile::tempdir().expect("data dir");
    // A short heartbeat so the job that was running when the process died is re-delivered
    // within seconds rather than a minute.
    let env = [("HBI__QUEUE__HEARTBEAT_SECS", "1"), ("HBI__WORKER__CONCURRENCY", "1")];
    let mut server = TestServer::start_in(data.path(), &env);
    let pdf = std::fs::read(corpus_pdf("octave")).expect("pdf");
    let mut jobs = Vec::new();
    for n in 0..5 {
        let book = server.create_book(&format!("book {n}")).await;
        let (status, accepted) = server.upload(&book, pdf.clone(), "octave.pdf").await;
        assert_eq!(status, 202, "{accepted}");
        jobs.push(accepted["job_id"].as_str().expect("job id").to_owned());
    }
    // Kill while the first job is mid-run and the others wait on the queue.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (_, first) = server.get_json(&format!("/jobs/{}", jobs[0])).await;
        if first["state"] == "running" {
            break;
        }
        assert!(
            first["state"] == "queued" && std::time::Instant::now() < deadline,
            "first job: {first}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, stats) = server.get_json("/stats").await;
    server.kill();
    assert_eq!(
        stats["jobs_succeeded"], 0,
        "the kill must land while work is still queued: {stats}"
    );

    let server = TestServer::start_in(data.path(), &env);
    for job_id in &jobs {
        let job = server.wait_for_job(job_id, Duration::from_secs(180)).await;
        assert_eq!(job["state"], "succeeded", "{job}");
    }
    // The job cut off mid-run was taken over once its lease ran out: two attempts, the first
    // one by the dead process.
    let (_, first) = server.get_json(&format!("/jobs/{}", jobs[0])).await;
    assert_eq!(first["attempts"], 2, "{first}");
    let history = first["history"].as_array().expect("history");
    assert_ne!(history[0]["worker_id"], history[1]["worker_id"], "{first}");
    assert_eq!(history[0]["outcome"], "abandoned", "{first}");
    assert_eq!(history[1]["outcome"], "succeeded", "{first}");

    let (_, stats) = server.get_json("/stats").await;
    assert_eq!(stats["jobs_succeeded"], 5, "{stats}");
    assert_eq!(stats["jobs_running"], 0, "{stats}");
    assert_eq!(stats["jobs_in_queue"], 0, "{stats}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_cleanly() {
    let mut server = TestServer::start(&[]);
    let (status, _) = server.get_json("/health/live").await;
    assert_eq!(status, 200);
    let exit = server.terminate();
    assert!(exit.success(), "graceful shutdown exits 0: {exit:?}");
}

/// Cancelling a running job kills its extraction and frees the worker for the next job.
#[tokio::test(flavor = "multi_thread")]
async fn cancel_stops_a_running_job_and_frees_the_worker() {
    let server = TestServer::start(&[("HBI__WORKER__CONCURRENCY", "1")]);
    let octave = std::fs::read(corpus_pdf("octave")).expect("octave");
    let book = server.create_book("to be cancelled").await;
    let (status, accepted) = server.upload(&book, octave, "octave.pdf").await;
    assert_eq!(status, 202);
    let job_id = accepted["job_id"].as_str().expect("job id").to_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (_, job) = server.get_json(&format!("/jobs/{job_id}")).await;
        if job["state"] == "running" && job["stage"] == "extract_text" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the job never ran: {job}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = std::time::Instant::now();
    let response = server
        .client
        .post(server.url(&format!("/jobs/{job_id}/cancel")))
        .send()
        .await
        .expect("cancel");
    assert_eq!(response.status().as_u16(), 202);
    let job = server.wait_for_job(&job_id, Duration::from_secs(30)).await;
    assert_eq!(job["state"], "cancelled", "{job}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "cancel took {:?}",
        started.elapsed()
    );
    let response = server
        .client
        .post(server.url(&format!("/jobs/{job_id}/cancel")))
        .send()
        .await
        .expect("cancel");
    assert_eq!(response.status().as_u16(), 409, "an ended job cannot be cancelled");

    // The single worker slot is free again.
    let small = std::fs::read(corpus_pdf("gnu-standards")).expect("pdf");
    let book = server.create_book("next").await;
    let (_, accepted) = server.upload(&book, small, "standards.pdf").await;
    let next = server
        .wait_for_job(accepted["job_id"].as_str().expect("job id"), Duration::from_secs(60))
        .await;
    assert_eq!(next["state"], "succeeded", "{next}");
}

/// Readiness names the dependency that is down and answers 503, and recovers by itself.
#[tokio::test(flavor = "multi_thread")]
async fn readiness_names_a_failed_dependency() {
    let server = TestServer::start(&[]);
    let (status, ready) = server.get_json("/health/ready").await;
    assert_eq!(status, 200, "{ready}");
    for name in ["database", "queue", "blob_store", "graph"] {
        assert_eq!(ready["checks"][name]["status"], "ok", "{ready}");
    }
    assert!(ready["version"].is_string() && ready["uptime_seconds"].is_number());

    // Replace the blob directory by a file: the store can no longer write.
    let blobs = server.data_dir.join("blobs");
    std::fs::remove_dir_all(&blobs).expect("remove blobs");
    std::fs::write(&blobs, b"not a directory").expect("block blobs");
    let (status, ready) = server.get_json("/health/ready").await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["status"], "error");
    assert_eq!(ready["checks"]["blob_store"]["status"], "error", "{ready}");
    assert!(ready["checks"]["blob_store"]["error"].is_string());
    assert_eq!(ready["checks"]["database"]["status"], "ok");
    let (status, _) = server.get_json("/health/live").await;
    assert_eq!(status, 200, "liveness does not depend on dependencies");

    std::fs::remove_file(&blobs).expect("unblock");
    std::fs::create_dir(&blobs).expect("recreate");
    let (status, ready) = server.get_json("/health/ready").await;
    assert_eq!(status, 200, "{ready}");
}
