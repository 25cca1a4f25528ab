use std::collections::BTreeMap;
use std::time::Instant;

use hbi_shared::Backends;
use hbi_shared::backends::DependencyCheck;
use hbi_shared::domain::{BookStatus, JobState};
use poem::web::Data;
use poem_openapi::payload::{Json, PlainText};
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::ApiTags;
use crate::AppState;
use crate::error::ApiError;

pub struct SystemApi;

#[derive(Debug, Object)]
pub struct Health {
    /// `ok` while the process serves requests.
    pub status: String,
    pub version: String,
    pub uptime_seconds: f64,
}

#[derive(Debug, Object)]
pub struct DependencyStatus {
    /// `ok` or `error`.
    pub status: String,
    /// Which implementation serves it (`sql`, `sqlite`, `local`...).
    pub kind: String,
    /// `unavailable` when the check failed; the reason is in the process's log only.
    #[oai(skip_serializing_if_is_none)]
    pub error: Option<String>,
}

#[derive(Debug, Object)]
pub struct Readiness {
    /// `ok` when every dependency answers, `error` otherwise.
    pub status: String,
    pub checks: BTreeMap<String, DependencyStatus>,
    pub version: String,
    pub uptime_seconds: f64,
}

#[derive(ApiResponse)]
pub enum ReadinessResponse {
    /// Every dependency answers.
    #[oai(status = 200)]
    Ready(Json<Readiness>),
    /// At least one dependency is down; `checks` names it.
    #[oai(status = 503)]
    NotReady(Json<Readiness>),
}

#[derive(Debug, Object)]
pub struct Stats {
    /// Books whose processing succeeded.
    pub total_books_indexed: u64,
    pub total_books: u64,
    /// Messages waiting on the queue, read from the queue.
    pub jobs_in_queue: u64,
    pub jobs_running: u64,
    /// Jobs in the dead-letter queue.
    pub dlq_size: u64,
    pub jobs_succeeded: u64,
    /// Jobs waiting for a scheduled retry.
    pub jobs_retrying: u64,
}

#[derive(ApiResponse)]
pub enum MetricsResponse {
    /// Every metric in the Prometheus text exposition format (version 0.0.4).
    #[oai(status = 200, content_type = "text/plain; version=0.0.4")]
    Ok(PlainText<String>),
}

#[OpenApi]
impl SystemApi {
    /// Liveness (same as /health/live)
    #[oai(path = "/health", method = "get", tag = "ApiTags::System", operation_id = "health")]
    async fn health(&self, state: Data<&AppState>) -> Json<Health> {
        Json(state.health())
    }

    /// Liveness: the process is up
    #[oai(
        path = "/health/live",
        method = "get",
        tag = "ApiTags::System",
        operation_id = "health_live"
    )]
    async fn live(&self, state: Data<&AppState>) -> Json<Health> {
        Json(state.health())
    }

    /// Readiness: one check per dependency, 503 when one fails
    #[oai(
        path = "/health/ready",
        method = "get",
        tag = "ApiTags::System",
        operation_id = "health_ready"
    )]
    async fn ready(&self, state: Data<&AppState>) -> ReadinessResponse {
        let readiness = state.readiness().await;
        if readiness.status == "ok" {
            ReadinessResponse::Ready(Json(readiness))
        } else {
            ReadinessResponse::NotReady(Json(readiness))
        }
    }

    /// Counts of books and jobs
    #[oai(path = "/stats", method = "get", tag = "ApiTags::System", operation_id = "stats")]
    async fn stats(&self, state: Data<&AppState>) -> Result<Json<Stats>, ApiError<0>> {
        Ok(Json(collect_stats(&state).await?))
    }

    /// Prometheus metrics
    ///
    /// HTTP, job, pipeline, queue and dead-letter metrics of this process (names in the
    /// README, section Metrics). Queue depth and dead-letter size are read from the queue
    /// and the database at each scrape.
    #[oai(path = "/metrics", method = "get", tag = "ApiTags::System", operation_id = "metrics")]
    async fn metrics(&self, state: Data<&AppState>) -> Result<MetricsResponse, ApiError<0>> {
        let text = state.backends.render_metrics().await?;
        Ok(MetricsResponse::Ok(PlainText(text)))
    }
}

async fn collect_stats(state: &AppState) -> anyhow::Result<Stats> {
    let jobs = &state.backends.jobs;
    let catalog = &state.backends.catalog;
    let mut total_books = 0;
    for status in BookStatus::ALL {
        total_books += catalog.count_books_with_status(*status).await?;
    }
    Ok(Stats {
        total_books_indexed: catalog.count_books_with_status(BookStatus::Ready).await?
            + catalog.count_books_with_status(BookStatus::NeedsReview).await?,
        total_books,
        jobs_in_queue: state.backends.queue.depth().await?,
        jobs_running: jobs.count_in_state(JobState::Running).await?,
        dlq_size: jobs.count_in_state(JobState::Dead).await?,
        jobs_succeeded: jobs.count_in_state(JobState::Succeeded).await?,
        jobs_retrying: jobs.count_in_state(JobState::Failed).await?,
    })
}

impl AppState {
    fn health(&self) -> Health {
        Health {
            status: "ok".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            uptime_seconds: self.started.elapsed().as_secs_f64(),
        }
    }

    pub async fn readiness(&self) -> Readiness {
        readiness(&self.backends, self.started).await
    }
}

/// Every dependency checked: what `GET /health/ready` answers, on the API and on a worker.
pub async fn readiness(backends: &Backends, started: Instant) -> Readiness {
    let checks = backends.check_all().await;
    let all_ok = checks.iter().all(|check| check.error.is_none());
    Readiness {
        status: if all_ok { "ok" } else { "error" }.to_owned(),
        checks: checks.into_iter().map(dependency_status).collect(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        uptime_seconds: started.elapsed().as_secs_f64(),
    }
}

/// One dependency's entry in the readiness answer. Anyone may ask (probes come without a
/// key), so a failure is named, not described: its error chain, which names hosts, paths and
/// users, goes to the log.
fn dependency_status(check: DependencyCheck) -> (String, DependencyStatus) {
    let error = check.error.map(|detail| {
        tracing::warn!(dependency = check.name, kind = check.kind, error = %detail, "readiness check failed");
        "unavailable".to_owned()
    });
    let status = if error.is_none() { "ok" } else { "error" };
    (
        check.name.to_owned(),
        DependencyStatus {
            status: status.to_owned(),
            kind: check.kind.to_owned(),
            error,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Readiness is open to anyone: it names the dependency that is down, never how it failed
    /// (an error chain names hosts, paths and users).
    #[test]
    fn readiness_tells_which_dependency_is_down_not_why() {
        let (name, status) = dependency_status(DependencyCheck {
            name: "database",
            kind: "sql",
            error: Some("connecting to postgres://hbi@db-primary.internal:5432/hbi: connection refused".to_owned()),
        });
        assert_eq!(
            (name.as_str(), status.status.as_str(), status.kind.as_str()),
            ("database", "error", "sql")
        );
        let error = status.error.unwrap_or_default();
        assert!(!error.is_empty());
        assert!(!error.contains("internal") && !error.contains("hbi@"), "{error}");
        let (_, up) = dependency_status(DependencyCheck {
            name: "queue",
            kind: "redis",
            error: None,
        });
        assert_eq!((up.status.as_str(), up.error), ("ok", None));
    }
}
