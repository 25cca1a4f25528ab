//! POST /webhooks, GET /webhooks, GET /webhooks/{id}, DELETE /webhooks/{id},
//! GET /webhooks/{id}/deliveries: webhook endpoints, for admins
//! (`hbi_shared::webhooks::WebhookStore`). The signing secret is shown once, when the
//! endpoint is registered.

use hbi_shared::LibraryError;
use hbi_shared::access::Principal;
use hbi_shared::db::entities::webhook_delivery;
use hbi_shared::domain::parse_id;
use hbi_shared::webhooks::{Endpoint, EventType, NewEndpoint, WebhookError};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

use super::ApiTags;
use crate::AppState;
use crate::error::{ApiError, status};

pub struct WebhooksApi;

/// What a webhook endpoint can receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "WebhookEvent")]
pub enum EventView {
    /// A job ended well.
    #[oai(rename = "job.succeeded")]
    JobSucceeded,
    /// An attempt failed; a retry is scheduled.
    #[oai(rename = "job.failed")]
    JobFailed,
    /// The job failed for good and is in the dead-letter queue.
    #[oai(rename = "job.dead")]
    JobDead,
    /// The book was processed but a quality gate failed.
    #[oai(rename = "book.needs_review")]
    BookNeedsReview,
    /// The dead-letter queue grew past the endpoint's `dlq_threshold` (once, until it is
    /// back under it).
    #[oai(rename = "dlq.size_above")]
    DlqSizeAbove,
}

impl From<EventView> for EventType {
    fn from(view: EventView) -> Self {
        match view {
            EventView::JobSucceeded => Self::JobSucceeded,
            EventView::JobFailed => Self::JobFailed,
            EventView::JobDead => Self::JobDead,
            EventView::BookNeedsReview => Self::BookNeedsReview,
            EventView::DlqSizeAbove => Self::DlqSizeAbove,
        }
    }
}

impl From<EventType> for EventView {
    fn from(kind: EventType) -> Self {
        match kind {
            EventType::JobSucceeded => Self::JobSucceeded,
            EventType::JobFailed => Self::JobFailed,
            EventType::JobDead => Self::JobDead,
            EventType::BookNeedsReview => Self::BookNeedsReview,
            EventType::DlqSizeAbove => Self::DlqSizeAbove,
        }
    }
}

/// An endpoint to register.
#[derive(Debug, Object)]
#[oai(rename = "WebhookCreate", deny_unknown_fields)]
pub struct WebhookCreate {
    /// Where events are POSTed: an http(s) URL of a public host (private, loopback and
    /// link-local addresses only where `webhooks.allow_private_targets` allows them).
    #[oai(validator(min_length = 1, max_length = 2000))]
    pub url: String,
    /// The events it receives.
    #[oai(validator(min_items = 1, max_items = 5))]
    pub events: Vec<EventView>,
    /// The signing secret (`whsec_` and base64 of 24 to 64 bytes); made for you when absent.
    #[oai(validator(max_length = 200))]
    pub secret: Option<String>,
    /// With `dlq.size_above`: the dead-letter queue size past which it fires.
    pub dlq_threshold: Option<i64>,
    #[oai(validator(max_length = 500))]
    pub description: Option<String>,
}

/// A registered endpoint, without its secret.
#[derive(Debug, Object)]
#[oai(rename = "Webhook")]
pub struct WebhookView {
    pub id: String,
    pub url: String,
    pub events: Vec<EventView>,
    #[oai(nullable)]
    pub description: Option<String>,
    #[oai(nullable)]
    pub dlq_threshold: Option<i64>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<Endpoint> for WebhookView {
    fn from(endpoint: Endpoint) -> Self {
        Self {
            id: endpoint.id,
            url: endpoint.url,
            events: endpoint.events.into_iter().map(EventView::from).collect(),
            description: endpoint.description,
            dlq_threshold: endpoint.dlq_threshold,
            created_at: endpoint.created_at,
        }
    }
}

/// An endpoint just registered, with its signing secret: shown this once.
#[derive(Debug, Object)]
#[oai(rename = "NewWebhook")]
pub struct NewWebhookView {
    /// Verify each delivery's `webhook-signature` with it (any Standard Webhooks library).
    /// It is stored sealed and never shown again.
    pub secret: String,
    #[oai(flatten)]
    pub details: WebhookView,
}

/// One delivery of an event to an endpoint.
#[derive(Debug, Object)]
#[oai(rename = "WebhookDelivery")]
pub struct DeliveryView {
    /// The event's id: the `webhook-id` of every attempt.
    pub event_id: String,
    pub event: String,
    /// `pending` (retries to come), `delivered` or `failed` (the retry schedule ran out).
    pub state: String,
    pub attempts: i32,
    /// The receiver's last HTTP status.
    #[oai(nullable)]
    pub last_status: Option<i32>,
    #[oai(nullable)]
    pub last_error: Option<String>,
    /// When the next attempt is due (while pending).
    pub next_attempt_at: chrono::DateTime<chrono::Utc>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    #[oai(nullable)]
    pub delivered_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<webhook_delivery::Model> for DeliveryView {
    fn from(row: webhook_delivery::Model) -> Self {
        Self {
            event_id: row.event_id,
            event: row.event_type,
            state: row.state,
            attempts: row.attempts,
            last_status: row.last_status,
            last_error: row.last_error,
            next_attempt_at: row.next_attempt_at,
            created_at: row.created_at,
            delivered_at: row.delivered_at,
        }
    }
}

#[derive(ApiResponse)]
pub enum CreatedWebhook {
    #[oai(status = 201)]
    Created(Json<NewWebhookView>),
}

#[derive(ApiResponse)]
pub enum DeletedWebhook {
    /// Removed with its deliveries; pending ones are not sent.
    #[oai(status = 204)]
    Deleted,
}

const WEBHOOK_NOT_FOUND: &str = "Webhook not found";

/// A registration's refusal in the library's words, which the HTTP errors know.
fn refusal(err: WebhookError) -> LibraryError {
    match err {
        WebhookError::Invalid { field, reason } => LibraryError::Invalid { field, reason },
        err @ WebhookError::NoMasterKey => LibraryError::Unavailable(err.to_string()),
        WebhookError::Internal(err) => LibraryError::Internal(err),
    }
}

#[OpenApi]
impl WebhooksApi {
    /// Register a webhook endpoint
    ///
    /// Deliveries are POSTs of `{type, timestamp, data}` signed the Standard Webhooks way
    /// (`webhook-id`, `webhook-timestamp`, `webhook-signature`: HMAC-SHA256 over id,
    /// timestamp and body), retried with backoff for about a day (5 s, 5 min, 30 min, 2 h,
    /// 5 h, 10 h, 10 h) until the receiver answers 2xx; a retry carries the same
    /// `webhook-id`. Answers the signing secret once. 503 without `webhooks.master_keys`.
    #[oai(
        path = "/webhooks",
        method = "post",
        tag = "ApiTags::Webhooks",
        operation_id = "create_webhook"
    )]
    async fn create(
        &self,
        state: Data<&AppState>,
        caller: Data<&Principal>,
        body: Json<WebhookCreate>,
    ) -> Result<CreatedWebhook, ApiError<{ status::INVALID | status::UNAVAILABLE }>> {
        let body = body.0;
        let (endpoint, secret) = state
            .backends
            .webhooks
            .create(NewEndpoint {
                url: body.url,
                events: body.events.into_iter().map(EventType::from).collect(),
                secret: body.secret,
                dlq_threshold: body.dlq_threshold,
                description: body.description,
            })
            .await
            .map_err(refusal)?;
        tracing::info!(webhook_id = %endpoint.id, url = %endpoint.url, by = %caller.key_id, "webhook registered");
        state
            .library
            .audit_change(&caller, "webhook.create", Some(&endpoint.id))
            .await?;
        Ok(CreatedWebhook::Created(Json(NewWebhookView {
            secret,
            details: endpoint.into(),
        })))
    }

    /// Webhook endpoints, oldest first, without their secrets
    #[oai(
        path = "/webhooks",
        method = "get",
        tag = "ApiTags::Webhooks",
        operation_id = "list_webhooks"
    )]
    async fn list(&self, state: Data<&AppState>) -> Result<Json<Vec<WebhookView>>, ApiError<0>> {
        let endpoints = state.backends.webhooks.list().await?;
        Ok(Json(endpoints.into_iter().map(WebhookView::from).collect()))
    }

    /// One webhook endpoint, without its secret
    #[oai(
        path = "/webhooks/:webhook_id",
        method = "get",
        tag = "ApiTags::Webhooks",
        operation_id = "get_webhook"
    )]
    async fn get(
        &self,
        state: Data<&AppState>,
        webhook_id: Path<String>,
    ) -> Result<Json<WebhookView>, ApiError<{ status::NOT_FOUND }>> {
        let id = endpoint_id(&webhook_id)?;
        match state.backends.webhooks.get(&id).await? {
            Some(endpoint) => Ok(Json(endpoint.into())),
            None => Err(ApiError::not_found(WEBHOOK_NOT_FOUND)),
        }
    }

    /// Remove a webhook endpoint and its deliveries
    #[oai(
        path = "/webhooks/:webhook_id",
        method = "delete",
        tag = "ApiTags::Webhooks",
        operation_id = "delete_webhook"
    )]
    async fn delete(
        &self,
        state: Data<&AppState>,
        caller: Data<&Principal>,
        webhook_id: Path<String>,
    ) -> Result<DeletedWebhook, ApiError<{ status::NOT_FOUND }>> {
        let id = endpoint_id(&webhook_id)?;
        if state.backends.webhooks.delete(&id).await? {
            tracing::info!(webhook_id = %id, by = %caller.key_id, "webhook removed");
            state.library.audit_change(&caller, "webhook.delete", Some(&id)).await?;
            Ok(DeletedWebhook::Deleted)
        } else {
            Err(ApiError::not_found(WEBHOOK_NOT_FOUND))
        }
    }

    /// An endpoint's delivery log, newest first: each event's state, attempts and last answer
    #[oai(
        path = "/webhooks/:webhook_id/deliveries",
        method = "get",
        tag = "ApiTags::Webhooks",
        operation_id = "list_webhook_deliveries"
    )]
    async fn deliveries(
        &self,
        state: Data<&AppState>,
        webhook_id: Path<String>,
        /// How many deliveries to return (at most 1000).
        #[oai(default = "default_limit", validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<u64>,
    ) -> Result<Json<Vec<DeliveryView>>, ApiError<{ status::NOT_FOUND }>> {
        let id = endpoint_id(&webhook_id)?;
        if state.backends.webhooks.get(&id).await?.is_none() {
            return Err(ApiError::not_found(WEBHOOK_NOT_FOUND));
        }
        let deliveries = state.backends.webhooks.deliveries(&id, limit.0).await?;
        Ok(Json(deliveries.into_iter().map(DeliveryView::from).collect()))
    }
}

fn default_limit() -> u64 {
    100
}

/// An endpoint id from a path: one that is not a UUID names no endpoint.
fn endpoint_id(raw: &str) -> Result<String, ApiError<{ status::NOT_FOUND }>> {
    parse_id(raw).ok_or_else(|| ApiError::not_found(WEBHOOK_NOT_FOUND))
}
