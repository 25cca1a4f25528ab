use hbi_shared::db::entities::{job, job_attempt};
use hbi_shared::domain::{JobState, parse_id};
use hbi_shared::jobs::relay;
use hbi_shared::jobs::store::Requeue;
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::ApiTags;
use crate::AppState;
use crate::error::{ErrorDetail, internal};

pub struct JobsApi;

#[derive(Debug, Clone, Object)]
pub struct Progress {
    /// Units done in the current stage (pages while extracting).
    pub done: i32,
    pub total: i32,
}

#[derive(Debug, Clone, Object)]
pub struct AttemptView {
    pub attempt: i32,
    pub worker_id: String,
    /// How the attempt ended (`running` while it runs).
    pub outcome: String,
    #[oai(nullable)]
    pub stage: Option<String>,
    #[oai(nullable)]
    pub error: Option<String>,
    pub started_at: chrono::DateTime<chrono::Utc>,
    #[oai(nullable)]
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<job_attempt::Model> for AttemptView {
    fn from(m: job_attempt::Model) -> Self {
        Self {
            attempt: m.attempt,
            worker_id: m.worker_id,
            outcome: m.outcome,
            stage: m.stage,
            error: m.error,
            started_at: m.started_at,
            finished_at: m.finished_at,
        }
    }
}

/// A processing job.
#[derive(Debug, Clone, Object)]
pub struct JobView {
    pub id: String,
    pub book_id: String,
    /// `queued`, `running`, `succeeded`, `failed` (retry scheduled), `dead` (in the DLQ) or `cancelled`.
    pub state: String,
    /// The stage running now, or the last one reached.
    #[oai(nullable)]
    pub stage: Option<String>,
    pub progress: Progress,
    pub attempts: i32,
    pub max_attempts: i32,
    /// The last error, readable by a person.
    #[oai(nullable)]
    pub error: Option<String>,
    /// The stage the last error came from.
    #[oai(nullable)]
    pub error_stage: Option<String>,
    /// Whether trying again could help (false for a refused file).
    pub retryable: bool,
    /// When a scheduled retry is due.
    #[oai(nullable)]
    pub run_after: Option<chrono::DateTime<chrono::Utc>>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    #[oai(nullable)]
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
    #[oai(nullable)]
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Each attempt with its worker, outcome and error.
    pub history: Vec<AttemptView>,
}

impl JobView {
    pub fn new(m: job::Model, history: Vec<job_attempt::Model>) -> Self {
        Self {
            id: m.id,
            book_id: m.book_id,
            state: m.state,
            stage: m.stage,
            progress: Progress {
                done: m.progress_done,
                total: m.progress_total,
            },
            attempts: m.attempts,
            max_attempts: m.max_attempts,
            error: m.error,
            error_stage: m.error_stage,
            retryable: m.retryable,
            run_after: m.run_after,
            created_at: m.created_at,
            started_at: m.started_at,
            finished_at: m.finished_at,
            history: history.into_iter().map(AttemptView::from).collect(),
        }
    }
}

// A response is built once per request and moved straight into the body: boxing buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(ApiResponse)]
pub enum JobResponse {
    #[oai(status = 200)]
    Ok(Json<JobView>),
    #[oai(status = 404)]
    NotFound(Json<ErrorDetail>),
    #[oai(status = 500)]
    Internal(Json<ErrorDetail>),
}

#[derive(ApiResponse)]
pub enum JobListResponse {
    #[oai(status = 200)]
    Ok(Json<Vec<JobView>>),
    #[oai(status = 500)]
    Internal(Json<ErrorDetail>),
}

#[allow(clippy::large_enum_variant)]
#[derive(ApiResponse)]
pub enum CancelResponse {
    /// The job is cancelled, or its worker has been told to stop it.
    #[oai(status = 202)]
    Accepted(Json<JobView>),
    #[oai(status = 404)]
    NotFound(Json<ErrorDetail>),
    /// The job has already ended.
    #[oai(status = 409)]
    Conflict(Json<ErrorDetail>),
    #[oai(status = 500)]
    Internal(Json<ErrorDetail>),
}

#[allow(clippy::large_enum_variant)]
#[derive(ApiResponse)]
pub enum RequeueResponse {
    /// Back on the queue with a fresh attempt budget; poll it at /jobs/{job_id}.
    #[oai(status = 202)]
    Accepted(Json<JobView>),
    #[oai(status = 404)]
    NotFound(Json<ErrorDetail>),
    /// The job is not in a state this operation applies to.
    #[oai(status = 409)]
    Conflict(Json<ErrorDetail>),
    #[oai(status = 500)]
    Internal(Json<ErrorDetail>),
}

#[derive(ApiResponse)]
pub enum DiscardResponse {
    /// Removed from the dead-letter queue; the job stays on record as cancelled.
    #[oai(status = 204)]
    Discarded,
    #[oai(status = 404)]
    NotFound(Json<ErrorDetail>),
    #[oai(status = 500)]
    Internal(Json<ErrorDetail>),
}

const JOB_NOT_FOUND: &str = "Job not found";
const NOT_IN_DLQ: &str = "Job not found in the dead-letter queue";

#[OpenApi]
impl JobsApi {
    /// A job's state, stage, progress, attempts and errors
    #[oai(
        path = "/jobs/:job_id",
        method = "get",
        tag = "ApiTags::Jobs",
        operation_id = "get_job"
    )]
    async fn get(&self, state: Data<&AppState>, job_id: Path<String>) -> JobResponse {
        match job_view(&state, &job_id).await {
            Ok(Some(view)) => JobResponse::Ok(Json(view)),
            Ok(None) => JobResponse::NotFound(ErrorDetail::json(JOB_NOT_FOUND)),
            Err(err) => JobResponse::Internal(ErrorDetail::json(internal(&err))),
        }
    }

    /// Recent jobs, newest first, optionally in one state
    #[oai(path = "/jobs", method = "get", tag = "ApiTags::Jobs", operation_id = "list_jobs")]
    async fn list(
        &self,
        state: Data<&AppState>,
        /// Only jobs in this state.
        #[oai(name = "state")]
        job_state: Query<Option<JobStateParam>>,
        /// How many jobs to return (at most 1000).
        #[oai(default = "default_limit", validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<u64>,
    ) -> JobListResponse {
        let filter = job_state.0.map(JobStateParam::into_state);
        match state.backends.jobs.list(filter, limit.0).await {
            Ok(jobs) => JobListResponse::Ok(Json(
                jobs.into_iter().map(|job| JobView::new(job, Vec::new())).collect(),
            )),
            Err(err) => JobListResponse::Internal(ErrorDetail::json(internal(&err))),
        }
    }

    /// Run a dead or cancelled job again, with a fresh attempt budget
    #[oai(
        path = "/jobs/:job_id/retry",
        method = "post",
        tag = "ApiTags::Jobs",
        operation_id = "retry_job"
    )]
    async fn retry(&self, state: Data<&AppState>, job_id: Path<String>) -> RequeueResponse {
        requeue(&state, &job_id, &[JobState::Dead, JobState::Cancelled], JOB_NOT_FOUND).await
    }

    /// Cancel a job: a queued one at once, a running one by stopping its worker's work
    #[oai(
        path = "/jobs/:job_id/cancel",
        method = "post",
        tag = "ApiTags::Jobs",
        operation_id = "cancel_job"
    )]
    async fn cancel(&self, state: Data<&AppState>, job_id: Path<String>) -> CancelResponse {
        let Some(id) = parse_id(&job_id) else {
            return CancelResponse::NotFound(ErrorDetail::json(JOB_NOT_FOUND));
        };
        let jobs = &state.backends.jobs;
        let result = async {
            let Some(before) = jobs.get(&id).await? else {
                return Ok(None);
            };
            if before.state.parse::<JobState>().is_ok_and(JobState::is_final) {
                return Ok(Some(Err(before.state)));
            }
            jobs.request_cancel(&id).await?;
            Ok::<_, anyhow::Error>(job_view(&state, &id).await?.map(Ok))
        }
        .await;
        match result {
            Ok(Some(Ok(view))) => CancelResponse::Accepted(Json(view)),
            Ok(Some(Err(final_state))) => {
                CancelResponse::Conflict(ErrorDetail::json(format!("the job has already ended: {final_state}")))
            }
            Ok(None) => CancelResponse::NotFound(ErrorDetail::json(JOB_NOT_FOUND)),
            Err(err) => CancelResponse::Internal(ErrorDetail::json(internal(&err))),
        }
    }
}

fn default_limit() -> u64 {
    100
}

pub struct DlqApi;

#[OpenApi]
impl DlqApi {
    /// Jobs that failed for good: error, stage, attempt history and input, newest first
    #[oai(path = "/dlq", method = "get", tag = "ApiTags::Jobs", operation_id = "list_dlq")]
    async fn list(
        &self,
        state: Data<&AppState>,
        /// How many jobs to return (at most 1000).
        #[oai(default = "default_limit", validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<u64>,
    ) -> JobListResponse {
        let jobs = &state.backends.jobs;
        let result = async {
            let mut views = Vec::new();
            for job in jobs.list(Some(JobState::Dead), limit.0).await? {
                let history = jobs.attempts(&job.id).await?;
                views.push(JobView::new(job, history));
            }
            Ok::<_, anyhow::Error>(views)
        }
        .await;
        match result {
            Ok(views) => JobListResponse::Ok(Json(views)),
            Err(err) => JobListResponse::Internal(ErrorDetail::json(internal(&err))),
        }
    }

    /// Run a dead job again, unchanged, with a fresh attempt budget
    #[oai(
        path = "/dlq/:job_id/requeue",
        method = "post",
        tag = "ApiTags::Jobs",
        operation_id = "requeue_dlq_job"
    )]
    async fn requeue(&self, state: Data<&AppState>, job_id: Path<String>) -> RequeueResponse {
        requeue(&state, &job_id, &[JobState::Dead], NOT_IN_DLQ).await
    }

    /// Drop a dead job from the dead-letter queue without running it
    #[oai(
        path = "/dlq/:job_id",
        method = "delete",
        tag = "ApiTags::Jobs",
        operation_id = "delete_dlq_job"
    )]
    async fn discard(&self, state: Data<&AppState>, job_id: Path<String>) -> DiscardResponse {
        let Some(id) = parse_id(&job_id) else {
            return DiscardResponse::NotFound(ErrorDetail::json(NOT_IN_DLQ));
        };
        match state.backends.jobs.discard_dead(&id).await {
            Ok(true) => DiscardResponse::Discarded,
            Ok(false) => DiscardResponse::NotFound(ErrorDetail::json(NOT_IN_DLQ)),
            Err(err) => DiscardResponse::Internal(ErrorDetail::json(internal(&err))),
        }
    }
}

/// Re-enqueues a job that ended in one of `from`, through the outbox.
async fn requeue(state: &AppState, raw_id: &str, from: &[JobState], not_found: &str) -> RequeueResponse {
    let Some(id) = parse_id(raw_id) else {
        return RequeueResponse::NotFound(ErrorDetail::json(not_found));
    };
    let backends = &state.backends;
    let result = async {
        let job = match backends
            .jobs
            .requeue(&id, from, state.settings.worker.max_attempts)
            .await?
        {
            Requeue::Queued(job) => job,
            Requeue::NotFound => return Ok(None),
            Requeue::NotInState(current) => {
                return Ok(Some(Err(format!(
                    "the job is {current}; only a job that is {} can be run again",
                    from.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" or ")
                ))));
            }
            Requeue::Superseded => {
                return Ok(Some(Err(
                    "a newer job of this book exists; only the book's latest job can be run again".to_owned(),
                )));
            }
            Requeue::BookBusy => {
                return Ok(Some(Err(
                    "another job for this book is still queued or running; wait for it or cancel it".to_owned(),
                )));
            }
        };
        if let Err(err) = relay::publish(&backends.jobs, backends.queue.as_ref(), &job).await {
            tracing::warn!(job_id = %job.id, error = %format!("{err:#}"), "requeued job left to the outbox relay");
        }
        Ok::<_, anyhow::Error>(job_view(state, &id).await?.map(Ok))
    }
    .await;
    match result {
        Ok(Some(Ok(view))) => RequeueResponse::Accepted(Json(view)),
        Ok(Some(Err(detail))) => RequeueResponse::Conflict(ErrorDetail::json(detail)),
        Ok(None) => RequeueResponse::NotFound(ErrorDetail::json(not_found)),
        Err(err) => RequeueResponse::Internal(ErrorDetail::json(internal(&err))),
    }
}

/// Job states as a query parameter.
#[derive(Debug, Clone, Copy, poem_openapi::Enum)]
#[oai(rename_all = "snake_case")]
pub enum JobStateParam {
    Queued,
    Running,
    Succeeded,
    Failed,
    Dead,
    Cancelled,
}

impl JobStateParam {
    fn into_state(self) -> JobState {
        match self {
            Self::Queued => JobState::Queued,
            Self::Running => JobState::Running,
            Self::Succeeded => JobState::Succeeded,
            Self::Failed => JobState::Failed,
            Self::Dead => JobState::Dead,
            Self::Cancelled => JobState::Cancelled,
        }
    }
}

async fn job_view(state: &AppState, raw_id: &str) -> anyhow::Result<Option<JobView>> {
    let Some(id) = parse_id(raw_id) else { return Ok(None) };
    let Some(job) = state.backends.jobs.get(&id).await? else {
        return Ok(None);
    };
    let history = state.backends.jobs.attempts(&id).await?;
    Ok(Some(JobView::new(job, history)))
}
