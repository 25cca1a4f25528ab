//! The endpoints, the outbox's fan-out and the deliveries, in the metadata database.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    TransactionTrait,
};
use serde_json::json;

use super::secrets::{KeyRing, Sealed, new_secret, secret_problem};
use super::target::{self, TargetRefused};
use super::{EventType, new_event_id, payload};
use crate::db::entities::{webhook_delivery, webhook_endpoint, webhook_event};

/// Why an endpoint was not registered.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// A field is refused: the field and why.
    #[error("{field} {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error(
        "webhooks need a master key to seal their signing secrets: set webhooks.master_keys (HBI__WEBHOOKS__MASTER_KEYS)"
    )]
    NoMasterKey,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sea_orm::DbErr> for WebhookError {
    fn from(err: sea_orm::DbErr) -> Self {
        Self::Internal(err.into())
    }
}

/// A delivery's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    Pending,
    Delivered,
    /// Every attempt of the schedule failed.
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }
}

/// What an admin registers.
#[derive(Debug, Clone)]
pub struct NewEndpoint {
    pub url: String,
    pub events: Vec<EventType>,
    /// Chosen by the admin (`whsec_…`), or made here.
    pub secret: Option<String>,
    pub dlq_threshold: Option<i64>,
    pub description: Option<String>,
}

/// A registered endpoint, without its secret.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: String,
    pub url: String,
    pub events: Vec<EventType>,
    pub description: Option<String>,
    pub dlq_threshold: Option<i64>,
    pub created_at: DateTime<Utc>,
}

impl From<webhook_endpoint::Model> for Endpoint {
    fn from(row: webhook_endpoint::Model) -> Self {
        Self {
            events: parse_events(&row.events),
            id: row.id,
            url: row.url,
            description: row.description,
            dlq_threshold: row.dlq_threshold,
            created_at: row.created_at,
        }
    }
}

fn parse_events(text: &str) -> Vec<EventType> {
    text.split(',').filter_map(EventType::parse).collect()
}

/// A delivery a sender holds, with where and how to sign it.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub delivery: webhook_delivery::Model,
    pub url: String,
    pub secret: Sealed,
}

/// How long a sender holds a delivery it took; another takes it over after that.
pub const DELIVERY_LEASE: Duration = Duration::from_secs(120);

/// Standard Webhooks' retry schedule, as multiples of the first delay: 5 s, 5 min, 30 min,
/// 2 h, 5 h, 10 h, 10 h after the attempts before (about 28 hours in all); then it fails.
pub const RETRY_SCHEDULE: [u32; 7] = [1, 60, 360, 1440, 3600, 7200, 7200];

#[derive(Clone)]
pub struct WebhookStore {
    db: DatabaseConnection,
    keys: Option<KeyRing>,
    allow_private_targets: bool,
}

impl WebhookStore {
    pub fn new(db: DatabaseConnection, keys: Option<KeyRing>, allow_private_targets: bool) -> Self {
        Self {
            db,
            keys,
            allow_private_targets,
        }
    }

    pub fn allow_private_targets(&self) -> bool {
        self.allow_private_targets
    }

    fn keys(&self) -> Result<&KeyRing, WebhookError> {
        self.keys.as_ref().ok_or(WebhookError::NoMasterKey)
    }

    /// Registers an endpoint; its signing secret is returned here and never again.
    pub async fn create(&self, new: NewEndpoint) -> Result<(Endpoint, String), WebhookError> {
        let keys = self.keys()?;
        let invalid = |field, reason: String| WebhookError::Invalid { field, reason };
        target::check(&new.url, self.allow_private_targets)
            .await
            .map_err(|refused: TargetRefused| invalid("url", refused.to_string()))?;
        let mut events = new.events.clone();
        events.dedup();
        if events.is_empty() {
            return Err(invalid("events", "must name at least one event".to_owned()));
        }
        let alerts = events.contains(&EventType::DlqSizeAbove);
        match new.dlq_threshold {
            None if alerts => {
                return Err(invalid(
                    "dlq_threshold",
                    "is needed with dlq.size_above: the size past which it fires".to_owned(),
                ));
            }
            Some(_) if !alerts => {
                return Err(invalid(
                    "dlq_threshold",
                    "is only for the dlq.size_above event".to_owned(),
                ));
            }
            Some(threshold) if threshold < 0 => {
                return Err(invalid("dlq_threshold", "must be 0 or more".to_owned()));
            }
            _ => {}
        }
        let secret = match new.secret {
            Some(secret) => {
                if let Some(problem) = secret_problem(&secret) {
                    return Err(invalid("secret", problem));
                }
                secret
            }
            None => new_secret()?,
        };
        let sealed = keys.seal(&secret)?;
        let row = webhook_endpoint::ActiveModel {
            id: Set(uuid::Uuid::now_v7().to_string()),
            url: Set(new.url.trim().to_owned()),
            events: Set(events.iter().map(|kind| kind.as_str()).collect::<Vec<_>>().join(",")),
            description: Set(new.description.filter(|d| !d.trim().is_empty())),
            secret_ciphertext: Set(sealed.ciphertext),
            secret_key_id: Set(sealed.key_id),
            dlq_threshold: Set(new.dlq_threshold),
            dlq_alerted: Set(false),
            created_at: Set(Utc::now()),
        };
        let row = webhook_endpoint::Entity::insert(row)
            .exec_with_returning(&self.db)
            .await?;
        Ok((row.into(), secret))
    }

    pub async fn list(&self) -> anyhow::Result<Vec<Endpoint>> {
        Ok(webhook_endpoint::Entity::find()
            .order_by_asc(webhook_endpoint::Column::CreatedAt)
            .all(&self.db)
            .await?
            .into_iter()
            .map(Endpoint::from)
            .collect())
    }

    pub async fn get(&self, id: &str) -> anyhow::Result<Option<Endpoint>> {
        Ok(webhook_endpoint::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .map(Endpoint::from))
    }

    /// Removes an endpoint and its deliveries (pending ones are not sent); false if unknown.
    pub async fn delete(&self, id: &str) -> anyhow::Result<bool> {
        let txn = crate::db::begin_write(&self.db).await?;
        webhook_delivery::Entity::delete_many()
            .filter(webhook_delivery::Column::EndpointId.eq(id))
            .exec(&txn)
            .await?;
        let removed = webhook_endpoint::Entity::delete_by_id(id).exec(&txn).await?;
        txn.commit().await?;
        Ok(removed.rows_affected == 1)
    }

    /// An endpoint's deliveries, newest first.
    pub async fn deliveries(&self, endpoint_id: &str, limit: u64) -> anyhow::Result<Vec<webhook_delivery::Model>> {
        Ok(webhook_delivery::Entity::find()
            .filter(webhook_delivery::Column::EndpointId.eq(endpoint_id))
            .order_by_desc(webhook_delivery::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?)
    }

    /// Turns up to `limit` outbox events into one delivery per endpoint subscribed now, each
    /// event in one transaction that also removes it; the number of events handled.
    pub async fn fan_out(&self, limit: u64) -> anyhow::Result<usize> {
        let events = webhook_event::Entity::find()
            .order_by_asc(webhook_event::Column::CreatedAt)
            .order_by_asc(webhook_event::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?;
        if events.is_empty() {
            return Ok(0);
        }
        let endpoints = webhook_endpoint::Entity::find().all(&self.db).await?;
        for event in &events {
            let txn = crate::db::begin_write(&self.db).await?;
            let deliveries: Vec<webhook_delivery::ActiveModel> = endpoints
                .iter()
                .filter(|endpoint| {
                    parse_events(&endpoint.events)
                        .iter()
                        .any(|kind| kind.as_str() == event.event_type)
                })
                .map(|endpoint| {
                    new_delivery(
                        &endpoint.id,
                        &event.id,
                        &event.event_type,
                        &event.payload,
                        event.created_at,
                    )
                })
                .collect();
            insert_deliveries(&txn, deliveries).await?;
            webhook_event::Entity::delete_by_id(event.id.clone()).exec(&txn).await?;
            txn.commit().await?;
        }
        Ok(events.len())
    }

    /// `dlq.size_above` for each subscribed endpoint whose threshold the dead-letter queue,
    /// now `dlq_size` jobs, has just grown past (once until it goes back under it).
    pub async fn alert_dlq_size(&self, dlq_size: u64) -> anyhow::Result<()> {
        let size = i64::try_from(dlq_size).unwrap_or(i64::MAX);
        let watching = webhook_endpoint::Entity::find()
            .filter(webhook_endpoint::Column::DlqThreshold.is_not_null())
            .all(&self.db)
            .await?;
        for endpoint in watching {
            let Some(threshold) = endpoint.dlq_threshold else {
                continue;
            };
            let above = size > threshold;
            // A conditional flip, so that of several replicas one sends the alert.
            let flipped = webhook_endpoint::Entity::update_many()
                .col_expr(webhook_endpoint::Column::DlqAlerted, Expr::value(above))
                .filter(webhook_endpoint::Column::Id.eq(&endpoint.id))
                .filter(webhook_endpoint::Column::DlqAlerted.eq(!above))
                .exec(&self.db)
                .await?;
            if above && flipped.rows_affected == 1 {
                let now = Utc::now();
                let kind = EventType::DlqSizeAbove;
                let body = payload(kind, now, json!({"dlq_size": size, "threshold": threshold}));
                let delivery = new_delivery(&endpoint.id, &new_event_id(), kind.as_str(), &body, now);
                insert_deliveries(&self.db, vec![delivery]).await?;
            }
        }
        Ok(())
    }

    /// Takes up to `limit` deliveries that are due and that no sender holds, each under a
    /// lease of [`DELIVERY_LEASE`].
    pub async fn claim_due(&self, limit: u64) -> anyhow::Result<Vec<DueDelivery>> {
        let now = Utc::now();
        let free = || {
            Condition::any()
                .add(webhook_delivery::Column::LeaseUntil.is_null())
                .add(webhook_delivery::Column::LeaseUntil.lt(now))
        };
        let due = webhook_delivery::Entity::find()
            .filter(webhook_delivery::Column::State.eq(DeliveryState::Pending.as_str()))
            .filter(webhook_delivery::Column::NextAttemptAt.lte(now))
            .filter(free())
            .order_by_asc(webhook_delivery::Column::NextAttemptAt)
            .order_by_asc(webhook_delivery::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?;
        let endpoint_ids: Vec<String> = due.iter().map(|delivery| delivery.endpoint_id.clone()).collect();
        let endpoints: std::collections::HashMap<String, webhook_endpoint::Model> = webhook_endpoint::Entity::find()
            .filter(webhook_endpoint::Column::Id.is_in(endpoint_ids))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|endpoint| (endpoint.id.clone(), endpoint))
            .collect();
        let mut claimed = Vec::with_capacity(due.len());
        for delivery in due {
            // An endpoint removed meanwhile takes its deliveries with it.
            let Some(endpoint) = endpoints.get(&delivery.endpoint_id) else {
                continue;
            };
            let taken = webhook_delivery::Entity::update_many()
                .col_expr(
                    webhook_delivery::Column::LeaseUntil,
                    Expr::value(now + chrono::Duration::from_std(DELIVERY_LEASE).unwrap_or_default()),
                )
                .filter(webhook_delivery::Column::Id.eq(delivery.id))
                .filter(webhook_delivery::Column::State.eq(DeliveryState::Pending.as_str()))
                .filter(free())
                .exec(&self.db)
                .await?;
            if taken.rows_affected != 1 {
                continue;
            }
            claimed.push(DueDelivery {
                url: endpoint.url.clone(),
                secret: Sealed {
                    key_id: endpoint.secret_key_id.clone(),
                    ciphertext: endpoint.secret_ciphertext.clone(),
                },
                delivery,
            });
        }
        Ok(claimed)
    }

    /// The signing secret of a delivery's endpoint.
    pub fn open_secret(&self, sealed: &Sealed) -> anyhow::Result<String> {
        self.keys
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("{}", WebhookError::NoMasterKey))?
            .open(sealed)
    }

    /// Records an attempt: `Ok(status)` a 2xx answer, `Err` why it failed (and the status
    /// when there was one). A failed attempt is retried on [`RETRY_SCHEDULE`], `first_retry`
    /// its unit, until the schedule ends.
    pub async fn record_attempt(
        &self,
        delivery: &webhook_delivery::Model,
        outcome: Result<u16, (Option<u16>, String)>,
        first_retry: Duration,
    ) -> anyhow::Result<DeliveryState> {
        let now = Utc::now();
        let attempts = delivery.attempts.saturating_add(1);
        let (state, status, error, next) = match outcome {
            Ok(status) => (DeliveryState::Delivered, Some(status), None, delivery.next_attempt_at),
            Err((status, error)) => {
                let step = usize::try_from(attempts - 1).unwrap_or(usize::MAX);
                match RETRY_SCHEDULE.get(step) {
                    Some(&factor) => {
                        let delay = chrono::Duration::from_std(first_retry.saturating_mul(factor)).unwrap_or_default();
                        (DeliveryState::Pending, status, Some(error), now + delay)
                    }
                    None => (DeliveryState::Failed, status, Some(error), delivery.next_attempt_at),
                }
            }
        };
        webhook_delivery::Entity::update_many()
            .col_expr(webhook_delivery::Column::State, Expr::value(state.as_str()))
            .col_expr(webhook_delivery::Column::Attempts, Expr::value(attempts))
            .col_expr(webhook_delivery::Column::NextAttemptAt, Expr::value(next))
            .col_expr(
                webhook_delivery::Column::LeaseUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(webhook_delivery::Column::LastStatus, Expr::value(status.map(i32::from)))
            .col_expr(webhook_delivery::Column::LastError, Expr::value(error))
            .col_expr(
                webhook_delivery::Column::DeliveredAt,
                Expr::value((state == DeliveryState::Delivered).then_some(now)),
            )
            .filter(webhook_delivery::Column::Id.eq(delivery.id))
            .exec(&self.db)
            .await?;
        Ok(state)
    }

    /// Whether any endpoint watches the dead-letter queue's size.
    pub async fn watches_dlq(&self) -> anyhow::Result<bool> {
        Ok(webhook_endpoint::Entity::find()
            .filter(webhook_endpoint::Column::DlqThreshold.is_not_null())
            .one(&self.db)
            .await?
            .is_some())
    }

    /// Seals every secret again under the ring's first key (after a rotation); how many
    /// were sealed under another.
    pub async fn reseal_secrets(&self) -> Result<usize, WebhookError> {
        let keys = self.keys()?;
        let stale = webhook_endpoint::Entity::find()
            .filter(webhook_endpoint::Column::SecretKeyId.ne(keys.current_id()))
            .all(&self.db)
            .await?;
        let txn = self.db.begin().await?;
        for endpoint in &stale {
            let secret = keys.open(&Sealed {
                key_id: endpoint.secret_key_id.clone(),
                ciphertext: endpoint.secret_ciphertext.clone(),
            })?;
            let sealed = keys.seal(&secret)?;
            webhook_endpoint::Entity::update_many()
                .col_expr(
                    webhook_endpoint::Column::SecretCiphertext,
                    Expr::value(sealed.ciphertext),
                )
                .col_expr(webhook_endpoint::Column::SecretKeyId, Expr::value(sealed.key_id))
                .filter(webhook_endpoint::Column::Id.eq(&endpoint.id))
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(stale.len())
    }
}

fn new_delivery(
    endpoint_id: &str,
    event_id: &str,
    event_type: &str,
    body: &str,
    created_at: DateTime<Utc>,
) -> webhook_delivery::ActiveModel {
    webhook_delivery::ActiveModel {
        endpoint_id: Set(endpoint_id.to_owned()),
        event_id: Set(event_id.to_owned()),
        event_type: Set(event_type.to_owned()),
        payload: Set(body.to_owned()),
        state: Set(DeliveryState::Pending.as_str().to_owned()),
        attempts: Set(0),
        next_attempt_at: Set(created_at),
        lease_until: Set(None),
        last_status: Set(None),
        last_error: Set(None),
        created_at: Set(created_at),
        delivered_at: Set(None),
        ..Default::default()
    }
}

/// Inserts deliveries, skipping those another replica inserted already.
async fn insert_deliveries(
    db: &impl sea_orm::ConnectionTrait,
    deliveries: Vec<webhook_delivery::ActiveModel>,
) -> anyhow::Result<()> {
    if deliveries.is_empty() {
        return Ok(());
    }
    webhook_delivery::Entity::insert_many(deliveries)
        .on_conflict(
            OnConflict::columns([webhook_delivery::Column::EndpointId, webhook_delivery::Column::EventId])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use base64::Engine;

    use super::*;

    async fn store(dir: &tempfile::TempDir) -> anyhow::Result<WebhookStore> {
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("w.db").display());
        let db = crate::db::connect(&url, 2, true).await?;
        let key = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
        Ok(WebhookStore::new(db, Some(KeyRing::parse(&format!("k1:{key}"))?), true))
    }

    /// A receiver that never answers 2xx is tried on the whole schedule, each retry later by
    /// its step, and then the delivery is failed; one claimed is held from other senders.
    #[tokio::test]
    async fn a_delivery_follows_the_retry_schedule_then_fails() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let store = store(&dir).await?;
        let (endpoint, _) = store
            .create(NewEndpoint {
                url: "http://127.0.0.1:9/hook".to_owned(),
                events: vec![EventType::JobDead],
                secret: None,
                dlq_threshold: None,
                description: None,
            })
            .await
            .map_err(|err| anyhow::anyhow!("{err}"))?;
        let now = Utc::now();
        webhook_event::Entity::insert(webhook_event::ActiveModel {
            id: Set(new_event_id()),
            event_type: Set(EventType::JobDead.as_str().to_owned()),
            payload: Set("{}".to_owned()),
            created_at: Set(now),
        })
        .exec(&store.db)
        .await?;
        webhook_event::Entity::insert(webhook_event::ActiveModel {
            id: Set(new_event_id()),
            event_type: Set(EventType::JobSucceeded.as_str().to_owned()),
            payload: Set("{}".to_owned()),
            created_at: Set(now),
        })
        .exec(&store.db)
        .await?;
        assert_eq!(store.fan_out(10).await?, 2);
        assert_eq!(store.fan_out(10).await?, 0, "the outbox is empty once fanned out");

        let first = Duration::from_micros(50);
        for (attempt, factor) in RETRY_SCHEDULE.iter().enumerate() {
            let due = store.claim_due(10).await?;
            assert_eq!(due.len(), 1, "attempt {}: only the subscribed event", attempt + 1);
            assert!(store.claim_due(10).await?.is_empty(), "held while it is being sent");
            let state = store
                .record_attempt(&due[0].delivery, Err((Some(500), "answered 500".to_owned())), first)
                .await?;
            assert_eq!(state, DeliveryState::Pending);
            let row = &store.deliveries(&endpoint.id, 10).await?[0];
            let wait = row.next_attempt_at - Utc::now();
            assert!(
                wait <= chrono::Duration::microseconds(50 * i64::from(*factor)),
                "{wait}"
            );
            tokio::time::sleep(first * *factor + Duration::from_millis(1)).await;
        }
        let due = store.claim_due(10).await?;
        let state = store
            .record_attempt(&due[0].delivery, Err((None, "connection refused".to_owned())), first)
            .await?;
        assert_eq!(state, DeliveryState::Failed);
        let row = &store.deliveries(&endpoint.id, 10).await?[0];
        assert_eq!((row.state.as_str(), row.attempts), ("failed", 8));
        assert_eq!(row.last_error.as_deref(), Some("connection refused"));
        assert!(
            store.claim_due(10).await?.is_empty(),
            "a failed delivery is not tried again"
        );
        Ok(())
    }
}
