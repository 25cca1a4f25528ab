//! The webhook sender, run by every process that serves the API: it fans the outbox's events
//! out to deliveries, raises the dead-letter alert, and sends the due deliveries, signed,
//! each to the address its URL was checked to resolve to.

use std::time::{Duration, Instant};

use futures::StreamExt;
use standardwebhooks::{HEADER_WEBHOOK_ID, HEADER_WEBHOOK_SIGNATURE, HEADER_WEBHOOK_TIMESTAMP, Webhook};
use tokio_util::sync::CancellationToken;

use super::store::{DeliveryState, DueDelivery, WebhookStore};
use super::target;
use crate::config::WebhookSettings;
use crate::domain::JobState;
use crate::jobs::store::JobStore;

/// Deliveries taken per round, and sent at once.
const BATCH: u64 = 32;
const IN_FLIGHT: usize = 8;
/// How much of a receiver's error answer is kept in the delivery log.
const ANSWER_EXCERPT: usize = 200;

/// Sends until `shutdown`.
pub async fn run(store: WebhookStore, jobs: JobStore, settings: WebhookSettings, shutdown: CancellationToken) {
    let every = Duration::from_millis(settings.poll_ms);
    let first_retry = Duration::from_millis(settings.first_retry_ms);
    let timeout = Duration::from_secs_f64(settings.timeout_secs);
    let mut failing = false;
    loop {
        match round(&store, &jobs, first_retry, timeout).await {
            Ok(()) => failing = false,
            // Said once per outage, not on every round.
            Err(err) if !failing => {
                failing = true;
                tracing::warn!(error = %format!("{err:#}"), "webhook sender: a round failed; trying again");
            }
            Err(_) => {}
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

async fn round(store: &WebhookStore, jobs: &JobStore, first_retry: Duration, timeout: Duration) -> anyhow::Result<()> {
    while store.fan_out(BATCH).await? > 0 {}
    if store.watches_dlq().await? {
        store.alert_dlq_size(jobs.count_in_state(JobState::Dead).await?).await?;
    }
    loop {
        let due = store.claim_due(BATCH).await?;
        if due.is_empty() {
            return Ok(());
        }
        futures::stream::iter(due)
            .for_each_concurrent(IN_FLIGHT, |due| async move {
                let outcome = send(store, &due, timeout).await;
                let delivery = &due.delivery;
                let recorded = store.record_attempt(delivery, outcome.clone(), first_retry).await;
                if let Ok(state) = &recorded {
                    crate::metrics::webhook_attempt(match state {
                        DeliveryState::Delivered => "delivered",
                        DeliveryState::Pending => "retry",
                        DeliveryState::Failed => "failed",
                    });
                }
                match recorded {
                    Ok(DeliveryState::Failed) => tracing::warn!(
                        delivery = delivery.id, event_id = %delivery.event_id, event = %delivery.event_type,
                        "webhook delivery failed for good after its last retry"
                    ),
                    Ok(_) => {
                        if let Err((status, error)) = &outcome {
                            tracing::info!(delivery = delivery.id, event_id = %delivery.event_id, ?status, error = %error, "webhook attempt failed; retry scheduled");
                        }
                    }
                    // The lease runs out and the delivery is taken again: at least once.
                    Err(err) => tracing::warn!(delivery = delivery.id, error = %format!("{err:#}"), "webhook attempt not recorded"),
                }
            })
            .await;
    }
}

/// One attempt: the receiver's 2xx status, or why it failed.
async fn send(store: &WebhookStore, due: &DueDelivery, timeout: Duration) -> Result<u16, (Option<u16>, String)> {
    let checked = target::check(&due.url, store.allow_private_targets())
        .await
        .map_err(|refused| (None, refused.to_string()))?;
    let secret = store
        .open_secret(&due.secret)
        .map_err(|err| (None, format!("{err:#}")))?;
    let signer = Webhook::new(&secret).map_err(|err| (None, format!("the signing secret is unusable: {err}")))?;
    let timestamp = chrono::Utc::now().timestamp();
    let body = due.delivery.payload.as_bytes();
    let signature = signer
        .sign(&due.delivery.event_id, timestamp, body)
        .map_err(|err| (None, format!("signing failed: {err}")))?;
    // Connect to the address that was checked, never to a second lookup's answer; follow no
    // redirect (it could point inward).
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .redirect(reqwest::redirect::Policy::none())
        .resolve(&checked.host, checked.address)
        .user_agent(concat!("hbi-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|err| (None, format!("building the HTTP client: {err}")))?;
    let started = Instant::now();
    let answer = client
        .post(checked.url)
        .header("content-type", "application/json")
        .header(HEADER_WEBHOOK_ID, &due.delivery.event_id)
        .header(HEADER_WEBHOOK_TIMESTAMP, timestamp.to_string())
        .header(HEADER_WEBHOOK_SIGNATURE, signature)
        .body(due.delivery.payload.clone())
        .send()
        .await
        .map_err(|err| (None, format!("{err}")))?;
    let status = answer.status();
    tracing::debug!(
        delivery = due.delivery.id,
        status = status.as_u16(),
        seconds = started.elapsed().as_secs_f64(),
        "webhook attempt"
    );
    if status.is_success() {
        return Ok(status.as_u16());
    }
    let text = answer.text().await.unwrap_or_default();
    let excerpt: String = text.chars().take(ANSWER_EXCERPT).collect();
    Err((Some(status.as_u16()), format!("answered {status}: {}", excerpt.trim())))
}
