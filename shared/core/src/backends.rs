//! The one place that names concrete backends: it reads the settings and opens the
//! database, blob store, queue, graph and text index they call for. Everything else
//! holds these as traits.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::DatabaseConnection;

use crate::blobs::{BlobStore, LocalBlobStore};
use crate::catalog::Catalog;
use crate::config::Settings;
use crate::graph::{GraphStore, SqlGraphStore};
use crate::jobs::store::JobStore;
use crate::jobs::{JobQueue, RedisJobQueue, SqliteJobQueue};
use crate::text_index::{SqliteFtsIndex, TextIndex};

#[derive(Clone)]
pub struct Backends {
    pub db: DatabaseConnection,
    pub catalog: Catalog,
    pub jobs: JobStore,
    pub blobs: Arc<dyn BlobStore>,
    pub queue: Arc<dyn JobQueue>,
    pub graph: Arc<dyn GraphStore>,
    pub text: Arc<dyn TextIndex>,
}

/// One readiness check result.
#[derive(Debug, Clone)]
pub struct DependencyCheck {
    pub name: &'static str,
    pub kind: &'static str,
    pub error: Option<String>,
}

impl Backends {
    /// Opens every backend the settings call for; migrations run when `migrate` is set.
    pub async fn open(settings: &Settings, migrate: bool) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&settings.storage.data_dir)?;
        let db = crate::db::connect(&settings.database_url(), settings.database.max_connections, migrate).await?;
        let heartbeat = Duration::from_secs(settings.queue.heartbeat_secs);
        let poll_interval = Duration::from_millis(settings.queue.poll_interval_ms);
        let queue: Arc<dyn JobQueue> = if settings.queue.redis_url.is_empty() {
            Arc::new(
                SqliteJobQueue::open(
                    &settings.queue_db_path(),
                    &settings.queue.name,
                    heartbeat,
                    poll_interval,
                )
                .await?,
            )
        } else {
            let queue = RedisJobQueue::open(
                &settings.queue.redis_url,
                &settings.queue.name,
                heartbeat,
                poll_interval,
            )?;
            // Not fatal: uploads wait in the outbox until Redis answers.
            if let Err(err) = queue.check().await {
                tracing::warn!(error = %format!("{err:#}"), "redis queue not reachable yet");
            }
            Arc::new(queue)
        };
        Ok(Self {
            catalog: Catalog::new(db.clone()),
            jobs: JobStore::new(db.clone()),
            blobs: Arc::new(LocalBlobStore::new(settings.blob_dir())?),
            queue,
            graph: Arc::new(SqlGraphStore::new(db.clone())),
            text: Arc::new(SqliteFtsIndex::new(db.clone())),
            db,
        })
    }

    /// Checks each dependency once (for /health/ready).
    pub async fn check_all(&self) -> Vec<DependencyCheck> {
        let outcome = |result: anyhow::Result<()>| result.err().map(|err| format!("{err:#}"));
        vec![
            DependencyCheck {
                name: "database",
                kind: "sql",
                error: outcome(self.catalog.ping().await),
            },
            DependencyCheck {
                name: "queue",
                kind: self.queue.kind(),
                error: outcome(self.queue.check().await),
            },
            DependencyCheck {
                name: "blob_store",
                kind: self.blobs.kind(),
                error: outcome(self.blobs.check().await),
            },
            DependencyCheck {
                name: "graph",
                kind: self.graph.kind(),
                error: outcome(self.graph.check().await),
            },
        ]
    }
}
