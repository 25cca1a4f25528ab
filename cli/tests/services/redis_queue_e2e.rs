//! The server queue shape end to end: the real `hbi serve` with REDIS_URL pointing at a real
//! redis-server, a real book uploaded over HTTP, and the job followed to `succeeded`.

use crate::common;
use crate::services;

use std::time::Duration;

use common::{TestServer, corpus_pdf};
use serde_json::Value;
use services::Service;

#[tokio::test(flavor = "multi_thread")]
async fn upload_runs_through_the_redis_queue() {
    let redis = Service::start("redis");
    let server = TestServer::start(&[("REDIS_URL", redis.url.as_str()), ("HBI__QUEUE__NAME", "hbi.e2e")]);

    let (status, ready) = server.get_json("/health/ready").await;
    assert_eq!(status, 200, "ready: {ready}");
    assert_eq!(ready["checks"]["queue"]["kind"], "redis", "ready: {ready}");

    let book_id = server.create_book("An Introduction to R").await;
    let pdf = std::fs::read(corpus_pdf("r-intro")).expect("r-intro pdf");
    let (status, accepted) = server.upload(&book_id, pdf, "R-intro.pdf").await;
    assert_eq!(status, 202, "upload: {accepted}");
    let job_id = accepted["job_id"].as_str().expect("job id").to_owned();

    let job = server.wait_for_job(&job_id, Duration::from_secs(180)).await;
    assert_eq!(job["state"], "succeeded", "job: {job}");
    assert_eq!(job["attempts"], 1, "job: {job}");
    let (status, book) = server.get_json(&format!("/books/{book_id}")).await;
    assert_eq!(status, 200);
    assert!(
        matches!(book["status"].as_str(), Some("ready" | "needs_review")),
        "book: {book}"
    );

    // The message went through Redis: acknowledged in our queue's done set, nothing left.
    let client = redis::Client::open(redis.url.as_str()).expect("redis client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection");
    let done: u64 = redis::cmd("SCARD")
        .arg("hbi.e2e:done")
        .query_async(&mut conn)
        .await
        .expect("SCARD");
    assert!(done >= 1, "no acknowledged message in Redis");
    let (status, stats) = server.get_json("/stats").await;
    assert_eq!(status, 200);
    assert_eq!(stats["jobs_in_queue"], 0, "stats: {stats}");

    let worker_started = server.log_lines().iter().any(|line| {
        serde_json::from_str::<Value>(line)
            .is_ok_and(|event| event["message"] == "worker started" && event["queue"] == "redis")
    });
    assert!(worker_started, "the worker says it consumes from redis");
}
