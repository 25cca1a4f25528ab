//! The one place that names concrete backends: it reads the settings and opens the
//! database, blob store, queue, graph, text index and vector store they call for.
//! Everything else holds these as traits.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::{DatabaseConnection, DbBackend};
use secrecy::ExposeSecret;

use crate::access::ApiKeyStore;
use crate::answer::{HybridChunkRetriever, KeywordChunkRetriever, RerankedRetriever, Retriever};
use crate::blobs::{BlobStore, LocalBlobStore, S3BlobStore};
use crate::catalog::Catalog;
use crate::config::Settings;
use crate::domain::{BookStatus, JobState};
use crate::embeddings::{Embedder, EmbeddingProvider, open_embedder};
use crate::graph::{FalkorGraphStore, GraphStore, Neo4jGraphStore, SqlGraphStore};
use crate::jobs::store::JobStore;
use crate::jobs::{JobQueue, RedisJobQueue, SqliteJobQueue};
use crate::knobs::KnobStore;
use crate::library::{Library, LibraryLimits, LibraryStores};
use crate::llm::{ChatModel, OpenAiChat};
use crate::page_images::PageRenderer;
use crate::rerank::{Reranker, TeiReranker};
use crate::scratch::ScratchDir;
use crate::search::{Searcher, SemanticSearch, VectorSemantic};
use crate::text_index::{PostgresFtsIndex, SqliteFtsIndex, TextIndex};
use crate::vectors::{PgVectorIndex, SqliteVecIndex, VectorIndex};
use crate::webhooks::{KeyRing, WebhookStore};

#[derive(Clone)]
pub struct Backends {
    pub db: DatabaseConnection,
    pub catalog: Catalog,
    pub jobs: JobStore,
    pub blobs: Arc<dyn BlobStore>,
    pub queue: Arc<dyn JobQueue>,
    pub graph: Arc<dyn GraphStore>,
    pub text: Arc<dyn TextIndex>,
    /// The live knobs, shared by every replica through the database.
    pub knobs: KnobStore,
    /// API keys (hashed), shared by every replica through the database.
    pub api_keys: ApiKeyStore,
    /// Webhook endpoints and their deliveries.
    pub webhooks: WebhookStore,
    /// What POST /query retrieves its passages with.
    pub retriever: Arc<dyn Retriever>,
    /// The language model of POST /query; `None` when `llm.base_url` is empty.
    pub llm: Option<Arc<dyn ChatModel>>,
    /// The embedding model; `None` when none is configured or it could not be loaded
    /// (then there are no vectors and search is keyword only).
    pub embedder: Option<Arc<dyn Embedder>>,
    /// Chunk embeddings, in the metadata database; `vectors.dimensions` numbers each.
    pub vectors: Arc<dyn VectorIndex>,
    /// Nearest chunks to a text, through the embedder and the vectors; `None` without an
    /// embedder. Built once, shared by search and the retriever.
    pub semantic: Option<Arc<dyn SemanticSearch>>,
    /// GET /search's ranking: full text, vectors and the index-term boost, fused.
    pub searcher: Arc<Searcher>,
    /// This process's scratch directory (uploads being received, jobs' files); what stopped
    /// processes left there is removed when it is opened.
    pub scratch: Arc<ScratchDir>,
}

/// One readiness check result.
#[derive(Debug, Clone)]
pub struct DependencyCheck {
    pub name: &'static str,
    pub kind: &'static str,
    pub error: Option<String>,
}

/// The graph store the settings call for: Neo4j, FalkorDB, or the SQL tables when neither
/// is set (validation refuses both at once). The graph servers are contacted on first use.
/// The reranker of search and questions, if `reranker.url` names one.
fn open_reranker(settings: &Settings) -> anyhow::Result<Option<Arc<dyn Reranker>>> {
    let Some(url) = &settings.reranker.url else {
        return Ok(None);
    };
    tracing::info!(url = %url, model = %settings.reranker.model, "search and questions are reranked");
    Ok(Some(Arc::new(TeiReranker::new(&settings.reranker, url)?)))
}

fn open_graph(settings: &Settings, db: &DatabaseConnection) -> anyhow::Result<Arc<dyn GraphStore>> {
    let graph = &settings.graph;
    Ok(if let Some(uri) = &graph.neo4j_uri {
        let password = graph
            .neo4j_password
            .as_ref()
            .map_or("", |password| password.expose_secret());
        Arc::new(Neo4jGraphStore::new(uri, &graph.neo4j_user, password)?)
    } else if let Some(url) = &graph.falkordb_url {
        Arc::new(FalkorGraphStore::new(url.expose_secret(), &graph.falkordb_graph)?)
    } else {
        Arc::new(SqlGraphStore::new(db.clone()))
    })
}

impl Backends {
    /// Opens every backend the settings call for; migrations run when `migrate` is set.
    pub async fn open(settings: &Settings, migrate: bool) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&settings.storage.data_dir)?;
        let scratch = Arc::new(ScratchDir::open(&settings.storage.data_dir.join("scratch"))?);
        let db = crate::db::connect(
            settings.database_url().expose_secret(),
            settings.database.max_connections,
            migrate,
        )
        .await?;
        let heartbeat = Duration::from_secs(settings.queue.heartbeat_secs);
        let poll_interval = Duration::from_millis(settings.queue.poll_interval_ms);
        let queue: Arc<dyn JobQueue> = if let Some(redis_url) = &settings.queue.redis_url {
            let queue = RedisJobQueue::open(
                redis_url.expose_secret(),
                &settings.queue.name,
                heartbeat,
                poll_interval,
            )?;
            // Not fatal: uploads wait in the outbox until Redis answers.
            if let Err(err) = queue.check().await {
                tracing::warn!(error = %format!("{err:#}"), "redis queue not reachable yet");
            }
            Arc::new(queue)
        } else {
            Arc::new(
                SqliteJobQueue::open(
                    &settings.queue_db_path(),
                    &settings.queue.name,
                    heartbeat,
                    poll_interval,
                )
                .await?,
            )
        };
        let blobs: Arc<dyn BlobStore> = if settings.blobs.s3_endpoint.is_some() {
            Arc::new(S3BlobStore::open(&settings.blobs).await?)
        } else {
            Arc::new(LocalBlobStore::new(settings.blob_dir())?)
        };
        let text: Arc<dyn TextIndex> = match db.get_database_backend() {
            DbBackend::Postgres => Arc::new(PostgresFtsIndex::new(db.clone())),
            DbBackend::Sqlite => Arc::new(SqliteFtsIndex::new(db.clone())),
            other => anyhow::bail!("no full-text index for a {other:?} database"),
        };
        let llm: Option<Arc<dyn ChatModel>> = if settings.llm.is_configured() {
            let chat = OpenAiChat::new(&settings.llm)?;
            tracing::info!(url = %chat.url(), model = %settings.llm.model, "language model configured");
            Some(Arc::new(chat))
        } else {
            None
        };
        let embedder = if settings.embeddings.provider == EmbeddingProvider::None {
            None
        } else {
            match open_embedder(&settings.embeddings) {
                Ok(embedder) => {
                    tracing::info!(
                        provider = embedder.kind(),
                        model = embedder.model(),
                        dimensions = embedder.dimensions(),
                        "embedding model loaded"
                    );
                    Some(embedder)
                }
                Err(err) => {
                    tracing::warn!(error = %format!("{err:#}"), "no embedding model: books get no vectors and search is keyword only (install it with scripts/lib/install-tools.sh install_model, or set embeddings.provider)");
                    None
                }
            }
        };
        let dimensions = settings.vectors.dimensions;
        let vectors: Arc<dyn VectorIndex> = match db.get_database_backend() {
            DbBackend::Postgres => Arc::new(
                PgVectorIndex::open(db.clone(), dimensions)
                    .await?
                    .with_ef_search(settings.vectors.hnsw_ef_search),
            ),
            DbBackend::Sqlite => Arc::new(
                SqliteVecIndex::open(db.clone(), dimensions)
                    .await?
                    .with_approximate_from(settings.vectors.approximate_from, settings.vectors.hnsw_ef_search)
                    .with_graph_dir(settings.storage.data_dir.join("vector-graphs")),
            ),
            other => anyhow::bail!("no vector store for a {other:?} database"),
        };
        if let Some(embedder) = &embedder
            && embedder.dimensions() != dimensions
        {
            anyhow::bail!(
                "configuration: vectors.dimensions is {dimensions} but the embedding model {} gives {} dimensions; set vectors.dimensions (HBI__VECTORS__DIMENSIONS) to {}",
                embedder.model(),
                embedder.dimensions(),
                embedder.dimensions()
            );
        }
        let knobs = KnobStore::new(db.clone());
        let keyword_retriever = KeywordChunkRetriever::new(text.clone(), Catalog::new(db.clone()));
        let semantic = embedder
            .clone()
            .map(|embedder| Arc::new(VectorSemantic::new(embedder, vectors.clone())) as Arc<dyn SemanticSearch>);
        let retriever: Arc<dyn Retriever> = match &semantic {
            Some(semantic) => Arc::new(HybridChunkRetriever::new(
                keyword_retriever,
                semantic.clone(),
                Catalog::new(db.clone()),
                knobs.clone(),
            )),
            None => Arc::new(keyword_retriever),
        };
        let reranker = open_reranker(settings)?;
        let retriever: Arc<dyn Retriever> = match &reranker {
            Some(reranker) => Arc::new(RerankedRetriever::new(retriever, reranker.clone(), knobs.clone())),
            None => retriever,
        };
        let searcher = Arc::new(Searcher::new(
            text.clone(),
            Catalog::new(db.clone()),
            semantic.clone(),
            reranker,
        ));
        Ok(Self {
            embedder,
            graph: open_graph(settings, &db)?,
            knobs,
            api_keys: ApiKeyStore::new(db.clone()),
            webhooks: WebhookStore::new(
                db.clone(),
                settings
                    .webhooks
                    .master_keys
                    .as_ref()
                    .map(|keys| KeyRing::parse(keys.expose_secret()))
                    .transpose()?,
                settings.webhooks.allow_private_targets,
            ),
            retriever,
            llm,
            catalog: Catalog::new(db.clone()),
            jobs: JobStore::new(db.clone()),
            blobs,
            queue,
            text,
            vectors,
            semantic,
            searcher,
            scratch,
            db,
        })
    }

    /// The use cases over these stores, with the settings' limits.
    pub fn library(&self, settings: &Settings) -> Library {
        Library::new(
            LibraryStores {
                catalog: self.catalog.clone(),
                jobs: self.jobs.clone(),
                queue: self.queue.clone(),
                blobs: self.blobs.clone(),
                text: self.text.clone(),
                vectors: self.vectors.clone(),
                graph: self.graph.clone(),
                scratch: self.scratch.clone(),
                searcher: self.searcher.clone(),
                knobs: self.knobs.clone(),
                retriever: self.retriever.clone(),
                llm: self.llm.clone(),
                renderer: PageRenderer::new(
                    settings
                        .worker
                        .extractor_path
                        .clone()
                        .or_else(|| std::env::current_exe().ok())
                        .unwrap_or_else(|| "hbi".into()),
                    settings.worker.extractor_memory_mb,
                ),
                audit: crate::audit::AuditLog::new(self.db.clone(), settings.auth.audit_retention_days),
                api_keys: self.api_keys.clone(),
            },
            LibraryLimits {
                max_upload_bytes: settings.max_upload_bytes(),
                max_upload_mb: settings.limits.max_upload_mb,
                max_attempts: settings.worker.max_attempts,
            },
        )
    }

    /// The metrics' text exposition, the gauges read from these stores.
    pub async fn render_metrics(&self) -> anyhow::Result<String> {
        let (queue_depth, dead_jobs, books_needing_review) = tokio::join!(
            self.queue.depth(),
            self.jobs.count_in_state(JobState::Dead),
            self.catalog.count_books_with_status(BookStatus::NeedsReview),
        );
        crate::metrics::render(crate::metrics::GaugeReadings {
            queue_depth,
            dead_jobs,
            books_needing_review,
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Overrides;

    /// What a process killed mid-upload or mid-job left in the scratch directory goes when
    /// the next one starts.
    #[tokio::test]
    async fn a_start_removes_the_scratch_files_a_crash_left() -> anyhow::Result<()> {
        let data_dir = tempfile::tempdir()?;
        let overrides = Overrides {
            data_dir: Some(data_dir.path().to_path_buf()),
            ..Overrides::default()
        };
        let mut settings = Settings::load(Some(Path::new("/nonexistent")), &overrides)?;
        settings.database.url = None;
        settings.queue.redis_url = None;
        settings.blobs.s3_endpoint = None;
        settings.graph.neo4j_uri = None;
        settings.graph.falkordb_url = None;
        settings.embeddings.provider = EmbeddingProvider::None;
        let scratch = data_dir.path().join("scratch");
        let job = scratch.join("hbi-job-Ab12Cd");
        std::fs::create_dir_all(&job)?;
        std::fs::write(job.join("book.pdf"), "%PDF-")?;
        std::fs::write(scratch.join(".tmpXy34Zw"), "%PDF-")?;
        let backends = Backends::open(&settings, true).await?;
        let left: Vec<std::path::PathBuf> = std::fs::read_dir(&scratch)?
            .map(|entry| entry.map(|entry| entry.path()))
            .collect::<Result<_, _>>()?;
        assert!(!job.exists() && !scratch.join(".tmpXy34Zw").exists(), "{left:?}");
        drop(backends);
        Ok(())
    }

    #[tokio::test]
    async fn the_graph_store_follows_the_settings() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let db = crate::db::connect(
            &format!("sqlite://{}?mode=rwc", dir.path().join("g.db").display()),
            1,
            false,
        )
        .await?;
        let mut settings = Settings::load(Some(Path::new("/nonexistent")), &Overrides::default())?;
        settings.graph.neo4j_uri = None;
        settings.graph.falkordb_url = None;
        assert_eq!(open_graph(&settings, &db)?.kind(), "sql");
        settings.graph.falkordb_url = Some("falkor://127.0.0.1:1".into());
        assert_eq!(open_graph(&settings, &db)?.kind(), "falkordb");
        settings.graph.falkordb_url = None;
        settings.graph.neo4j_uri = Some("bolt://127.0.0.1:1".to_owned());
        assert_eq!(open_graph(&settings, &db)?.kind(), "neo4j");
        Ok(())
    }
}
