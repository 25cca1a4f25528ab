//! Webhooks: job and book events delivered to the URLs admins register, signed the Standard
//! Webhooks way (HMAC-SHA256 over id, timestamp and body in `webhook-id`,
//! `webhook-timestamp`, `webhook-signature`).
//!
//! Nothing is lost on a restart: an event is written to the `webhook_events` outbox in the
//! transaction that ends the job ([`record_job_end`]); a sender in every API process
//! ([`sender::run`]) fans each event out to one `webhook_deliveries` row per subscribed
//! endpoint (a unique index keeps it to one however many replicas do it), then claims due
//! deliveries under a lease and sends them, retrying on Standard Webhooks' schedule for a
//! day before marking them failed. Every attempt of a delivery carries the event's id, so a
//! receiver dedupes retries by `webhook-id`.

mod secrets;
pub mod sender;
mod store;
pub mod target;

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ConnectionTrait, Set};
use serde_json::json;

pub use secrets::{KeyRing, SECRET_PREFIX, Sealed, new_secret, secret_problem};
pub use store::{DeliveryState, Endpoint, NewEndpoint, WebhookError, WebhookStore};

use crate::db::entities::webhook_event;
use crate::domain::{BookStatus, JobState, Stage};

/// The events an endpoint can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    JobSucceeded,
    /// An attempt failed and a retry is scheduled.
    JobFailed,
    /// The job failed for good: it is in the dead-letter queue.
    JobDead,
    /// The job succeeded but a quality gate failed.
    BookNeedsReview,
    /// The dead-letter queue grew past the endpoint's threshold.
    DlqSizeAbove,
}

impl EventType {
    pub const ALL: [EventType; 5] = [
        Self::JobSucceeded,
        Self::JobFailed,
        Self::JobDead,
        Self::BookNeedsReview,
        Self::DlqSizeAbove,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::JobSucceeded => "job.succeeded",
            Self::JobFailed => "job.failed",
            Self::JobDead => "job.dead",
            Self::BookNeedsReview => "book.needs_review",
            Self::DlqSizeAbove => "dlq.size_above",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A new event id: `msg_` and a time-ordered UUID, the `webhook-id` of its deliveries.
pub fn new_event_id() -> String {
    format!("msg_{}", uuid::Uuid::now_v7().simple())
}

/// The body of an event: `{type, timestamp, data}`, as Standard Webhooks recommends.
pub fn payload(kind: EventType, at: DateTime<Utc>, data: serde_json::Value) -> String {
    json!({"type": kind.as_str(), "timestamp": at.to_rfc3339(), "data": data}).to_string()
}

/// How a job ended, for its events.
#[derive(Debug, Clone)]
pub struct JobEnded<'a> {
    pub job_id: &'a str,
    pub book_id: &'a str,
    pub state: JobState,
    pub book_status: BookStatus,
    pub attempts: i32,
    pub max_attempts: i32,
    pub error: Option<&'a str>,
    pub error_stage: Option<Stage>,
}

/// Writes the events of a job's end to the outbox, inside `txn`, the transaction that ends
/// the job: `job.succeeded` (and `book.needs_review` when a gate failed), `job.failed` or
/// `job.dead`. A cancelled job has none.
pub async fn record_job_end(
    txn: &impl ConnectionTrait,
    ended: &JobEnded<'_>,
    now: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    let mut kinds = Vec::new();
    match ended.state {
        JobState::Succeeded => {
            kinds.push(EventType::JobSucceeded);
            if ended.book_status == BookStatus::NeedsReview {
                kinds.push(EventType::BookNeedsReview);
            }
        }
        JobState::Failed => kinds.push(EventType::JobFailed),
        JobState::Dead => kinds.push(EventType::JobDead),
        _ => {}
    }
    for kind in kinds {
        let data = json!({
            "job_id": ended.job_id,
            "book_id": ended.book_id,
            "state": ended.state.as_str(),
            "book_status": ended.book_status.as_str(),
            "attempts": ended.attempts,
            "max_attempts": ended.max_attempts,
            "error": ended.error,
            "error_stage": ended.error_stage.map(Stage::as_str),
        });
        webhook_event::ActiveModel {
            id: Set(new_event_id()),
            event_type: Set(kind.as_str().to_owned()),
            payload: Set(payload(kind, now, data)),
            created_at: Set(now),
        }
        .insert(txn)
        .await?;
    }
    Ok(())
}
