//! `GET /jobs/{id}/events`: a job followed live over Server-Sent Events, from its first
//! state to its end, and resumed with `Last-Event-ID`.

use crate::common;

use std::time::Duration;

use common::TestServer;
use common::formats::scan_of;

#[tokio::test(flavor = "multi_thread")]
async fn a_job_is_followed_live_to_its_end_and_resumed_where_the_client_left() {
    // A scan: OCR takes a second or more a page, so its progress moves visibly (a
    // born-digital book of this size is read before the first look at it).
    let scan = scan_of("r-intro", &[10, 11, 12, 13]);
    let server = TestServer::start(&[]);
    let book_id = server.create_book("An Introduction to R, scanned").await;
    let (status, accepted) = server.upload(&book_id, scan, "scan.pdf").await;
    assert_eq!(status, 202, "upload: {accepted}");
    let job_id = accepted["job_id"].as_str().expect("job id").to_owned();

    // A first follower leaves after two events; the second comes back with the last id it
    // had and must not be sent that state again.
    let early = server
        .job_events(&job_id, None, Some(2), Duration::from_secs(120))
        .await;
    assert_eq!(early.events.len(), 2, "two events before the job ends: {early:?}");
    assert!(!early.closed);
    let left_at = early.events[1].id.clone();

    let followed = server
        .job_events(&job_id, Some(&left_at), None, Duration::from_secs(180))
        .await;
    assert!(followed.closed, "the stream closes after the end: {followed:?}");
    let events = &followed.events;
    assert!(
        events.iter().all(|event| event.id != left_at),
        "the state the client had was sent again: {events:?}"
    );
    let (last, live) = events.split_last().expect("events after the resume");
    assert_eq!(last.event, "end", "{last:?}");
    assert_eq!(last.data["state"], "succeeded", "{last:?}");
    assert_eq!(last.data["progress"]["done"], 4, "{last:?}");
    assert!(last.data["finished_at"].is_string(), "{last:?}");
    assert!(live.iter().all(|event| event.event == "progress"), "{events:?}");

    // Progress moves page by page while the text is extracted: events of that stage, their
    // counts rising.
    let extracting: Vec<i64> = live
        .iter()
        .filter(|event| event.data["stage"] == "extract_text")
        .map(|event| event.data["progress"]["done"].as_i64().expect("done"))
        .collect();
    assert!(
        extracting.windows(2).all(|pair| pair[0] <= pair[1]),
        "progress went back: {extracting:?}"
    );
    let mut counts = extracting.clone();
    counts.dedup();
    assert!(counts.len() >= 2, "progress moved while OCR ran: {extracting:?}");
    let mut stages: Vec<&str> = events.iter().filter_map(|event| event.data["stage"].as_str()).collect();
    stages.dedup();
    assert!(
        stages.len() >= 2 && stages.contains(&"extract_text"),
        "the stages passed are seen: {stages:?}"
    );

    // Ids name states: every event of a stream differs from the one before.
    for pair in events.windows(2) {
        assert_ne!(pair[0].id, pair[1].id, "{pair:?}");
    }

    // A client that already has the end is told nothing more; one with none gets the end at once.
    let after_end = server
        .job_events(&job_id, Some(&last.id), None, Duration::from_secs(10))
        .await;
    assert!(after_end.closed && after_end.events.is_empty(), "{after_end:?}");
    let late = server.job_events(&job_id, None, None, Duration::from_secs(10)).await;
    assert!(late.closed, "{late:?}");
    assert_eq!(late.events.len(), 1, "{late:?}");
    assert_eq!(late.events[0].id, last.id, "the same state has the same id: {late:?}");

    // A job that does not exist is a 404 like GET /jobs/{id}.
    for missing in ["0193e1a2-0000-7000-8000-000000000000", "not-a-uuid"] {
        let response = server
            .client
            .get(server.url(&format!("/jobs/{missing}/events")))
            .send()
            .await
            .expect("GET");
        assert_eq!(response.status().as_u16(), 404, "{missing}");
    }
}
