//! Webhooks end to end on `hbi serve`: endpoints registered through the API, job and book
//! events delivered to a real receiver that verifies each signature with the Standard
//! Webhooks library, a receiver outage during a burst of 50 jobs (every event arrives, once
//! by id), HBI itself killed with deliveries pending, and the master key rotated.

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::webhooks::Receiver;
use common::{TestServer, hbi_binary};
use serde_json::{Value, json};

fn master_key(byte: u8) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode([byte; 32])
}

fn settings(keys: &str) -> Vec<(&'static str, String)> {
    vec![
        ("HBI__WEBHOOKS__MASTER_KEYS", keys.to_owned()),
        // The receiver is on 127.0.0.1.
        ("HBI__WEBHOOKS__ALLOW_PRIVATE_TARGETS", "true".to_owned()),
        ("HBI__WEBHOOKS__POLL_MS", "100".to_owned()),
        // Retries after 0.1 s, 6 s, 36 s, …: an outage of a few seconds is bridged by the third.
        ("HBI__WEBHOOKS__FIRST_RETRY_MS", "100".to_owned()),
        ("HBI__WORKER__CONCURRENCY", "4".to_owned()),
    ]
}

fn start(dir: &Path, env: &[(&'static str, String)]) -> TestServer {
    let env: Vec<(&str, &str)> = env.iter().map(|(key, value)| (*key, value.as_str())).collect();
    TestServer::start_in(dir, &env)
}

async fn post(server: &TestServer, path: &str, body: Value) -> (u16, Value) {
    let response = server
        .client
        .post(server.url(path))
        .json(&body)
        .send()
        .await
        .expect("POST");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Uploads `bytes` as a new book; its job id.
async fn upload(server: &TestServer, title: &str, bytes: Vec<u8>) -> String {
    let book_id = server.create_book(title).await;
    let (status, accepted) = server.upload(&book_id, bytes, "book.pdf").await;
    assert_eq!(status, 202, "{accepted}");
    accepted["job_id"].as_str().expect("job id").to_owned()
}

async fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_deliver_every_event_once_by_id_across_outages_restarts_and_key_rotation() {
    let dir = tempfile::tempdir().expect("data dir");
    let mut receiver = Receiver::start().await;
    let old_ring = format!("k1:{}", master_key(1));
    let mut server = start(dir.path(), &settings(&old_ring));

    // Refused registrations, each naming its field.
    for (body, field) in [
        (
            json!({"url": "ftp://example.com/hook", "events": ["job.succeeded"]}),
            "url",
        ),
        (json!({"url": receiver.url(), "events": []}), "events"),
        (
            json!({"url": receiver.url(), "events": ["dlq.size_above"]}),
            "dlq_threshold",
        ),
        (
            json!({"url": receiver.url(), "events": ["job.dead"], "secret": "hunter2"}),
            "secret",
        ),
    ] {
        let (status, refused) = post(&server, "/webhooks", body.clone()).await;
        assert_eq!(status, 422, "{body}: {refused}");
        assert!(refused.to_string().contains(field), "{body}: {refused}");
    }

    let (status, created) = post(
        &server,
        "/webhooks",
        json!({
            "url": receiver.url(),
            "events": ["job.succeeded", "job.failed", "job.dead", "book.needs_review", "dlq.size_above"],
            "dlq_threshold": 0,
            "description": "test receiver",
        }),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let secret = created["secret"].as_str().expect("the secret, once").to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    receiver.expect_secret(&secret);
    let webhook_id = created["id"].as_str().expect("id").to_owned();

    // Never shown again, and not stored in the clear.
    let (_, listed) = server.get_json("/webhooks").await;
    let (_, one) = server.get_json(&format!("/webhooks/{webhook_id}")).await;
    for shown in [&listed, &one] {
        assert!(!shown.to_string().contains("whsec_"), "{shown}");
    }
    assert_eq!(one["events"].as_array().map(Vec::len), Some(5), "{one}");
    let secret_part = secret.trim_start_matches("whsec_");
    for file in ["hbi.db", "hbi.db-wal"] {
        let bytes = std::fs::read(dir.path().join(file)).unwrap_or_default();
        assert!(
            !bytes
                .windows(secret_part.len())
                .any(|window| window == secret_part.as_bytes()),
            "{file} holds the signing secret in the clear"
        );
    }

    // A burst of 50 jobs and one that dies; the receiver goes away for a while during it.
    let book = crate::hostile::good_book();
    let mut jobs = Vec::new();
    for n in 0..50 {
        let mut bytes = book.clone();
        bytes.extend_from_slice(format!("\n% copy {n}\n").as_bytes());
        jobs.push(upload(&server, &format!("book {n}"), bytes).await);
    }
    let dead_job = upload(&server, "not a book", b"%PDF-1.7\nthis is no PDF at all".to_vec()).await;
    wait_for("the first deliveries", Duration::from_secs(120), || {
        receiver.received().len() >= 10
    })
    .await;
    receiver.stop().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    receiver.resume().await;
    for job in jobs.iter().chain([&dead_job]) {
        server.wait_for_job(job, Duration::from_secs(180)).await;
    }
    wait_for("50 job.succeeded events", Duration::from_secs(120), || {
        receiver.ids_of("job.succeeded").len() >= 50 && !receiver.ids_of("dlq.size_above").is_empty()
    })
    .await;

    assert_eq!(receiver.refused_signatures(), 0, "every signature verifies");
    let events = receiver.by_id();
    for job in &jobs {
        let succeeded: Vec<&String> = events
            .iter()
            .filter(|(_, (body, _))| body["type"] == "job.succeeded" && body["data"]["job_id"] == job.as_str())
            .map(|(id, _)| id)
            .collect();
        assert_eq!(succeeded.len(), 1, "one job.succeeded for {job}: {succeeded:?}");
    }
    let dead: Vec<&Value> = events
        .values()
        .filter(|(body, _)| body["type"] == "job.dead")
        .map(|(body, _)| body)
        .collect();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["data"]["job_id"], dead_job.as_str());
    assert!(
        dead[0]["data"]["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{}",
        dead[0]
    );
    assert_eq!(
        receiver.ids_of("dlq.size_above").len(),
        1,
        "the alert fires once while above"
    );

    // The delivery log agrees: every event delivered, some only after the outage.
    let deadline = Instant::now() + Duration::from_secs(60);
    let log = loop {
        let (_, log) = server
            .get_json(&format!("/webhooks/{webhook_id}/deliveries?limit=1000"))
            .await;
        let log = log.as_array().expect("deliveries").clone();
        if log.iter().all(|delivery| delivery["state"] != "pending") || Instant::now() > deadline {
            break log;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let delivered: std::collections::BTreeSet<String> = log
        .iter()
        .filter(|delivery| delivery["state"] == "delivered")
        .map(|delivery| delivery["event_id"].as_str().expect("event id").to_owned())
        .collect();
    let received: std::collections::BTreeSet<String> = events.keys().cloned().collect();
    assert_eq!(delivered, received, "what the log calls delivered is what arrived");
    assert!(
        log.iter().any(|delivery| delivery["attempts"].as_i64() > Some(1)),
        "some deliveries were retried across the outage"
    );
    // And so do the metrics the dashboard plots.
    let metrics = server.metrics_text().await;
    let count = |outcome: &str| -> f64 {
        let series = format!("hbi_webhook_deliveries_total{{outcome=\"{outcome}\"}} ");
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(series.as_str()))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(f64::NAN)
    };
    assert_eq!(count("delivered"), delivered.len() as f64, "{metrics}");
    assert!(count("retry") >= 1.0, "{metrics}");
    assert_eq!(count("failed"), 0.0, "{metrics}");

    // HBI killed with a delivery pending: after the restart it is sent (the outbox is in the
    // database). The restart also rotates the master key: the new one seals, the old opens.
    receiver.stop().await;
    let pending_job = upload(&server, "while the receiver is down", {
        let mut bytes = book.clone();
        bytes.extend_from_slice(b"\n% pending\n");
        bytes
    })
    .await;
    server.wait_for_job(&pending_job, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.kill();
    let new_ring = format!("k2:{}, k1:{}", master_key(2), master_key(1));
    server = start(dir.path(), &settings(&new_ring));
    receiver.resume().await;
    let arrived = |receiver: &Receiver, job: &str| {
        receiver
            .by_id()
            .values()
            .any(|(body, _)| body["type"] == "job.succeeded" && body["data"]["job_id"] == job)
    };
    wait_for("the event of the killed server", Duration::from_secs(60), || {
        arrived(&receiver, &pending_job)
    })
    .await;

    // Re-sealed under the new key, the old key can go.
    let rekey = std::process::Command::new(hbi_binary())
        .args(["rekey-webhooks", "--data-dir"])
        .arg(dir.path())
        .env("HBI__WEBHOOKS__MASTER_KEYS", &new_ring)
        .env("HBI__EMBEDDINGS__PROVIDER", "none")
        .output()
        .expect("hbi rekey-webhooks");
    assert!(rekey.status.success(), "{}", String::from_utf8_lossy(&rekey.stderr));
    assert!(
        String::from_utf8_lossy(&rekey.stdout).contains("\"resealed\":1"),
        "{}",
        String::from_utf8_lossy(&rekey.stdout)
    );
    server.terminate();
    server = start(dir.path(), &settings(&format!("k2:{}", master_key(2))));
    let last_job = upload(&server, "after the rotation", {
        let mut bytes = book.clone();
        bytes.extend_from_slice(b"\n% rotated\n");
        bytes
    })
    .await;
    wait_for("an event signed after the rotation", Duration::from_secs(60), || {
        arrived(&receiver, &last_job)
    })
    .await;
    assert_eq!(
        receiver.refused_signatures(),
        0,
        "the same secret signs after the rotation"
    );

    // Removed: nothing more is sent.
    let response = server
        .client
        .delete(server.url(&format!("/webhooks/{webhook_id}")))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(response.status().as_u16(), 204);
    let (status, _) = server.get_json(&format!("/webhooks/{webhook_id}")).await;
    assert_eq!(status, 404);
}

/// Without the operator's leave, an endpoint on a private or loopback address is refused,
/// and without master keys no endpoint can be registered at all.
#[tokio::test(flavor = "multi_thread")]
async fn inward_targets_and_a_missing_master_key_are_refused() {
    let keys = format!("k1:{}", master_key(7));
    let guarded = TestServer::start(&[("HBI__WEBHOOKS__MASTER_KEYS", keys.as_str())]);
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://169.254.169.254/latest/meta-data",
    ] {
        let (status, refused) = post(&guarded, "/webhooks", json!({"url": url, "events": ["job.succeeded"]})).await;
        assert_eq!(status, 422, "{url}: {refused}");
        assert!(refused.to_string().contains("private"), "{url}: {refused}");
    }
    let keyless = TestServer::start(&[]);
    let (status, refused) = post(
        &keyless,
        "/webhooks",
        json!({"url": "http://example.com/hook", "events": ["job.succeeded"]}),
    )
    .await;
    assert_eq!(status, 503, "{refused}");
    assert!(refused.to_string().contains("master_keys"), "{refused}");
}
