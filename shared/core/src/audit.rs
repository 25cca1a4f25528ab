//! The audit log: who changed what (a key's id, the action, the book or library, when, the
//! request's id), for writes, deletes, key and access changes. Readable by operators
//! (`GET /audit`); entries older than `audit.retention_days` are removed as new ones come.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};

use crate::db::entities::audit_entry;

tokio::task_local! {
    /// The id of the request being served (`X-Request-Id`), set by the door around a call,
    /// so that what the call changes is logged with it.
    pub static REQUEST_ID: String;
}

/// How often old entries are removed, at most.
const PRUNE_EVERY_SECS: i64 = 3600;

/// One change, as a use case reports it.
#[derive(Debug, Clone, Default)]
pub struct AuditEvent<'a> {
    /// `noun.verb`: `book.create`, `book.upload`, `book.delete`, `job.cancel`, `job.retry`,
    /// `dlq.requeue`, `dlq.discard`, `library.create`, `library.delete`, `key.create`,
    /// `key.revoke`, `config.update`, `webhook.create`, `webhook.delete`.
    pub action: &'a str,
    pub library_id: Option<&'a str>,
    pub book_id: Option<&'a str>,
    /// What else it was done to (a job, a key, a webhook), by id.
    pub target: Option<&'a str>,
}

#[derive(Clone)]
pub struct AuditLog {
    db: DatabaseConnection,
    retention: Duration,
    /// Unix seconds of the last removal of old entries.
    last_pruned: Arc<AtomicI64>,
}

impl AuditLog {
    pub fn new(db: DatabaseConnection, retention_days: u32) -> Self {
        Self {
            db,
            retention: Duration::days(i64::from(retention_days.max(1))),
            last_pruned: Arc::new(AtomicI64::new(0)),
        }
    }

    /// Writes the entry, with the current request's id when there is one. A failure is
    /// returned: a change that cannot be logged is reported, not hidden.
    pub async fn record(&self, key_id: &str, event: AuditEvent<'_>) -> anyhow::Result<()> {
        let now = Utc::now();
        let request_id = REQUEST_ID.try_with(Clone::clone).ok();
        audit_entry::ActiveModel {
            at: Set(now),
            key_id: Set(key_id.to_owned()),
            action: Set(event.action.to_owned()),
            library_id: Set(event.library_id.map(str::to_owned)),
            book_id: Set(event.book_id.map(str::to_owned)),
            target: Set(event.target.map(str::to_owned)),
            request_id: Set(request_id),
            ..Default::default()
        }
        .insert(&self.db)
        .await?;
        let last = self.last_pruned.load(Ordering::Relaxed);
        if now.timestamp() - last >= PRUNE_EVERY_SECS
            && self
                .last_pruned
                .compare_exchange(last, now.timestamp(), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.prune(now).await?;
        }
        Ok(())
    }

    /// Removes the entries older than the retention period before `now`.
    pub async fn prune(&self, now: DateTime<Utc>) -> anyhow::Result<u64> {
        let removed = audit_entry::Entity::delete_many()
            .filter(audit_entry::Column::At.lt(now - self.retention))
            .exec(&self.db)
            .await?;
        Ok(removed.rows_affected)
    }

    /// The newest entries first, those before `before` (an entry id, for paging) if given.
    pub async fn list(&self, before: Option<i64>, limit: u64) -> anyhow::Result<Vec<audit_entry::Model>> {
        let mut query = audit_entry::Entity::find();
        if let Some(before) = before {
            query = query.filter(audit_entry::Column::Id.lt(before));
        }
        Ok(query
            .order_by_desc(audit_entry::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn entries_carry_the_request_id_and_go_after_the_retention_period() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("audit.db").display());
        let db = crate::db::connect(&url, 2, true).await?;
        let log = AuditLog::new(db.clone(), 30);
        let event = |action| AuditEvent {
            action,
            book_id: Some("book"),
            ..AuditEvent::default()
        };
        REQUEST_ID
            .scope("req-1".to_owned(), log.record("key-a", event("book.create")))
            .await?;
        log.record("key-b", event("book.delete")).await?;
        let entries = log.list(None, 10).await?;
        let seen: Vec<(&str, &str, Option<&str>)> = entries
            .iter()
            .map(|entry| {
                (
                    entry.action.as_str(),
                    entry.key_id.as_str(),
                    entry.request_id.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [("book.delete", "key-b", None), ("book.create", "key-a", Some("req-1"))]
        );
        assert_eq!(log.list(Some(entries[0].id), 10).await?.len(), 1, "paged by id");

        // 31 days on, the older entry is gone and nothing newer.
        audit_entry::Entity::update_many()
            .col_expr(
                audit_entry::Column::At,
                sea_orm::sea_query::Expr::value(Utc::now() - Duration::days(31)),
            )
            .filter(audit_entry::Column::Action.eq("book.create"))
            .exec(&db)
            .await?;
        assert_eq!(log.prune(Utc::now()).await?, 1);
        let left: Vec<String> = log
            .list(None, 10)
            .await?
            .into_iter()
            .map(|entry| entry.action)
            .collect();
        assert_eq!(left, ["book.delete"]);
        Ok(())
    }
}
