use hbi_shared::LibraryError;
use hbi_shared::access::Principal;
use hbi_shared::db::entities::{job, job_attempt};
use hbi_shared::domain::{JobId, JobState};
use hbi_shared::library::{JobReport, JobUpdate};
use poem::web::Data;
use poem::web::sse::Event;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::{EventStream, Json};
use poem_openapi::types::ToJSON;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::ApiTags;
use crate::AppState;
use crate::error::{ApiError, status};

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
            stage: m.stage.map(|stage| stage.to_string()),
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
            state: m.state.to_string(),
            stage: m.stage.map(|stage| stage.to_string()),
            progress: Progress {
                done: m.progress_done,
                total: m.progress_total,
            },
            attempts: m.attempts,
            max_attempts: m.max_attempts,
            error: m.error,
            error_stage: m.error_stage.map(|stage| stage.to_string()),
            retryable: m.retryable,
            run_after: m.run_after,
            created_at: m.created_at,
            started_at: m.started_at,
            finished_at: m.finished_at,
            history: history.into_iter().map(AttemptView::from).collect(),
        }
    }
}

impl From<JobReport> for JobView {
    fn from(report: JobReport) -> Self {
        Self::new(report.job, report.history)
    }
}

/// One event of a job's event stream: what changed, as the job now stands.
#[derive(Debug, Clone, Object)]
pub struct JobEventView {
    /// `queued`, `running`, `succeeded`, `failed` (retry scheduled), `dead` or `cancelled`.
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
    #[oai(nullable)]
    pub error_stage: Option<String>,
    pub retryable: bool,
    #[oai(nullable)]
    pub run_after: Option<chrono::DateTime<chrono::Utc>>,
    /// A cancel was asked for and the worker has not stopped yet.
    pub cancel_requested: bool,
    #[oai(nullable)]
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The SSE `id` of this event (not in its data).
    #[oai(skip)]
    event_id: String,
    /// Whether this is the end state (the SSE `event` name, not in its data).
    #[oai(skip)]
    end: bool,
}

impl From<JobUpdate> for JobEventView {
    fn from(update: JobUpdate) -> Self {
        Self {
            end: update.is_end(),
            state: update.state.to_string(),
            stage: update.stage.map(|stage| stage.to_string()),
            progress: Progress {
                done: update.progress_done,
                total: update.progress_total,
            },
            attempts: update.attempts,
            max_attempts: update.max_attempts,
            error: update.error,
            error_stage: update.error_stage.map(|stage| stage.to_string()),
            retryable: update.retryable,
            run_after: update.run_after,
            cancel_requested: update.cancel_requested,
            finished_at: update.finished_at,
            event_id: update.id,
        }
    }
}

/// An SSE event named by its update: `progress` while the job lives, `end` for its end state.
fn job_event(view: JobEventView) -> Event {
    let kind = if view.end { "end" } else { "progress" };
    Event::message(view.to_json_string()).id(view.event_id).event_type(kind)
}

type JobEventStream = futures::stream::BoxStream<'static, JobEventView>;

#[derive(ApiResponse)]
pub enum JobEvents {
    /// A Server-Sent Events stream (`text/event-stream`): first the job as it stands, then
    /// an event each time its state, stage, progress or error changes (`event: progress`,
    /// each `data` a JobEventView), and last its end state (`event: end`), after which the
    /// stream closes. Each event's `id` names that state of the job: a client that
    /// reconnects with `Last-Event-ID` is sent only what changed since (changes it missed
    /// arrive as one event). A comment line every 15 s keeps idle proxies from closing it.
    #[oai(status = 200)]
    Stream(EventStream<JobEventStream>),
}

// A response is built once per request and moved straight into the body: boxing buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(ApiResponse)]
pub enum Cancelling {
    /// The job is cancelled, or its worker has been told to stop it.
    #[oai(status = 202)]
    Accepted(Json<JobView>),
}

#[allow(clippy::large_enum_variant)]
#[derive(ApiResponse)]
pub enum Requeued {
    /// Back on the queue with a fresh attempt budget; poll it at /jobs/{job_id}.
    #[oai(status = 202)]
    Accepted(Json<JobView>),
}

#[derive(ApiResponse)]
pub enum Discarded {
    /// Removed from the dead-letter queue; the job stays on record as cancelled.
    #[oai(status = 204)]
    Discarded,
}

/// What a request that changes a job's state can answer besides its result: 409 when the
/// job is not in a state the operation applies to.
type TransitionError = ApiError<{ status::NOT_FOUND | status::CONFLICT }>;

#[OpenApi]
impl JobsApi {
    /// A job's state, stage, progress, attempts and errors
    #[oai(
        path = "/jobs/:job_id",
        method = "get",
        tag = "ApiTags::Jobs",
        operation_id = "get_job"
    )]
    async fn get(
        &self,
        state: Data<&AppState>,
        caller: Data<&Principal>,
        job_id: Path<String>,
    ) -> Result<Json<JobView>, ApiError<{ status::NOT_FOUND }>> {
        let report = state
            .library
            .job(&caller, &parse_job_id(&job_id, LibraryError::JobNotFound)?)
            .await?;
        Ok(Json(report.into()))
    }

    /// Follow a job live: its stage, progress and end state as Server-Sent Events
    ///
    /// Served by any API replica (the job's state is read from the database); resumes after
    /// the event named by `Last-Event-ID`.
    #[oai(
        path = "/jobs/:job_id/events",
        method = "get",
        tag = "ApiTags::Jobs",
        operation_id = "follow_job_events"
    )]
    async fn events(
        &self,
        state: Data<&AppState>,
        caller: Data<&Principal>,
        job_id: Path<String>,
        /// The id of the last event this client received (browsers send it when they
        /// reconnect).
        #[oai(name = "Last-Event-ID")]
        last_event_id: Header<Option<String>>,
    ) -> Result<JobEvents, ApiError<{ status::NOT_FOUND }>> {
        use futures::StreamExt;
        let id = parse_job_id(&job_id, LibraryError::JobNotFound)?;
        let every = std::time::Duration::from_millis(state.settings.server.events_poll_ms);
        let updates = state.library.follow_job(&caller, &id, last_event_id.0, every).await?;
        // Open streams end with the server, so that a shutdown does not wait on them.
        let updates = updates.take_until(state.streams_end.clone().cancelled_owned());
        Ok(JobEvents::Stream(
            EventStream::new(updates.map(JobEventView::from).boxed())
                .keep_alive(std::time::Duration::from_secs(15))
                .to_event(job_event),
        ))
    }

    /// Recent jobs, newest first, optionally in one state
    #[oai(path = "/jobs", method = "get", tag = "ApiTags::Jobs", operation_id = "list_jobs")]
    async fn list(
        &self,
        state: Data<&AppState>,
        caller: Data<&Principal>,
        /// Only jobs in this state.
        #[oai(name = "state")]
        job_state: Query<Option<JobStateParam>>,
        /// How many jobs to return (at most 1000).
        #[oai(default = "default_limit", validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<u64>,
    ) -> Result<Json<Vec<JobView>>, ApiError<0>> {
        let filter = job_state.0.map(JobStateParam::into_state);
        let jobs = state.library.jobs(&caller, filter, limit.0).await?;
        Ok(Json(
            jobs.into_iter().map(|job| JobView::new(job, Vec::new())).collect(),
        ))
    }

    /// Run a dead or cancelled job again, with a fresh attempt budget
    ///
    /// Only the book's latest job can run again; 409 otherwise, or while another job of the
    /// book is live.
    #[oai(
        path = "/jobs/:job_id/retry",
        method = "post",
        tag = "ApiTags::Jobs",
        operation_id = "retry_job"
    )]
    async fn retry(
        &self,
        state: Data<&AppState>,
        caller: Data<&Principal>,
        job_id: Path<String>,
    ) -> Result<Requeued, TransitionError> {
        let report = state
            .library
            .retry_job(&caller, &parse_job_id(&job_id, LibraryError::JobNotFound)?)
            .await?;
        Ok(Requeued::Accepted(Json(report.into())))
    }

    /// Cancel a job: a queued one at once, a running one by stopping its worker's work
    ///
    /// 409 when the job has already ended.
    #[oai(
        path = "/jobs/:job_id/cancel",
        method = "post",
        tag = "ApiTags::Jobs",
        operation_id = "cancel_job"
    )]
    async fn cancel(
        &self,
        state: Data<&AppState>,
        caller: Data<&Principal>,
        job_id: Path<String>,
    ) -> Result<Cancelling, TransitionError> {
        let report = state
            .library
            .cancel_job(&caller, &parse_job_id(&job_id, LibraryError::JobNotFound)?)
            .await?;
        Ok(Cancelling::Accepted(Json(report.into())))
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
        caller: Data<&Principal>,
        /// How many jobs to return (at most 1000).
        #[oai(default = "default_limit", validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<u64>,
    ) -> Result<Json<Vec<JobView>>, ApiError<0>> {
        let reports = state.library.dead_letters(&caller, limit.0).await?;
        Ok(Json(reports.into_iter().map(JobView::from).collect()))
    }

    /// Run a dead job again, unchanged, with a fresh attempt budget
    #[oai(
        path = "/dlq/:job_id/requeue",
        method = "post",
        tag = "ApiTags::Jobs",
        operation_id = "requeue_dlq_job"
    )]
    async fn requeue(
        &self,
        state: Data<&AppState>,
        caller: Data<&Principal>,
        job_id: Path<String>,
    ) -> Result<Requeued, TransitionError> {
        let id = parse_job_id(&job_id, LibraryError::NotInDeadLetterQueue)?;
        let report = state.library.requeue_dead_letter(&caller, &id).await?;
        Ok(Requeued::Accepted(Json(report.into())))
    }

    /// Drop a dead job from the dead-letter queue without running it
    #[oai(
        path = "/dlq/:job_id",
        method = "delete",
        tag = "ApiTags::Jobs",
        operation_id = "delete_dlq_job"
    )]
    async fn discard(
        &self,
        state: Data<&AppState>,
        caller: Data<&Principal>,
        job_id: Path<String>,
    ) -> Result<Discarded, ApiError<{ status::NOT_FOUND }>> {
        let id = parse_job_id(&job_id, LibraryError::NotInDeadLetterQueue)?;
        state.library.discard_dead_letter(&caller, &id).await?;
        Ok(Discarded::Discarded)
    }
}

/// A job id from a path: one that is not a UUID names no job (`missing` says how).
fn parse_job_id(raw: &str, missing: LibraryError) -> Result<JobId, LibraryError> {
    raw.parse().map_err(|_| missing)
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
