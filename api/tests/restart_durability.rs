//! The embedded queue is durable: a process killed with SIGKILL while uploads wait loses
//! none of them, and a job cut off mid-run is taken over after its lease.

mod common;

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
