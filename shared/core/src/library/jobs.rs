//! Jobs: follow one, list them, cancel one, run an ended one again, and the dead-letter
//! queue.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::Stream;
use sha2::{Digest, Sha256};

use super::{Library, LibraryError, LibraryResult};
use crate::access::{Principal, Scope};
use crate::audit::AuditEvent;
use crate::db::entities::{job, job_attempt};
use crate::domain::{JobId, JobState, Stage};
use crate::jobs::relay;
use crate::jobs::store::{JobStore, Requeue};

/// A job with its attempts, oldest first.
#[derive(Debug, Clone)]
pub struct JobReport {
    pub job: job::Model,
    pub history: Vec<job_attempt::Model>,
}

/// What someone following a job sees change: its state, stage, progress and last error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobUpdate {
    /// Names this update by what it says: the same state of the job has the same id on
    /// every replica, so a follower that reconnects hands it back (SSE's Last-Event-ID)
    /// and is sent only what changed since.
    pub id: String,
    pub state: JobState,
    pub stage: Option<Stage>,
    pub progress_done: i32,
    pub progress_total: i32,
    pub attempts: i32,
    pub max_attempts: i32,
    pub error: Option<String>,
    pub error_stage: Option<Stage>,
    pub retryable: bool,
    pub run_after: Option<DateTime<Utc>>,
    pub cancel_requested: bool,
    pub finished_at: Option<DateTime<Utc>>,
}

impl JobUpdate {
    fn of(job: &job::Model) -> Self {
        let mut update = Self {
            id: String::new(),
            state: job.state,
            stage: job.stage,
            progress_done: job.progress_done,
            progress_total: job.progress_total,
            attempts: job.attempts,
            max_attempts: job.max_attempts,
            error: job.error.clone(),
            error_stage: job.error_stage,
            retryable: job.retryable,
            run_after: job.run_after,
            cancel_requested: job.cancel_requested,
            finished_at: job.finished_at,
        };
        update.id = update.fingerprint();
        update
    }

    /// Whether the job has ended for good: nothing follows this update.
    pub fn is_end(&self) -> bool {
        self.state.is_final()
    }

    fn fingerprint(&self) -> String {
        let said = format!(
            "{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}",
            self.state,
            self.stage.map(Stage::as_str).unwrap_or_default(),
            self.progress_done,
            self.progress_total,
            self.attempts,
            self.max_attempts,
            self.error.as_deref().unwrap_or_default(),
            self.error_stage.map(Stage::as_str).unwrap_or_default(),
            self.retryable,
            self.run_after.map(|at| at.timestamp_micros()).unwrap_or_default(),
            self.cancel_requested,
            self.finished_at.map(|at| at.timestamp_micros()).unwrap_or_default(),
        );
        let digest = Sha256::digest(said.as_bytes());
        digest[..8].iter().map(|byte| format!("{byte:02x}")).collect()
    }
}

/// Where a follower of one job stands between two looks at it.
struct Following {
    jobs: JobStore,
    job_id: String,
    /// The update the follower has, if any.
    seen: Option<String>,
    /// The row read when the follow began, sent before the first pause.
    first: Option<job::Model>,
    every: Duration,
    ended: bool,
    failing: bool,
}

impl Following {
    /// The next update the follower does not have yet; `None` once the job has ended (or
    /// is gone with its book).
    async fn next_update(&mut self) -> Option<JobUpdate> {
        loop {
            if self.ended {
                return None;
            }
            let job = match self.first.take() {
                Some(job) => job,
                None => {
                    tokio::time::sleep(self.every).await;
                    match self.jobs.get(&self.job_id).await {
                        Ok(Some(job)) => {
                            self.failing = false;
                            job
                        }
                        Ok(None) => return None,
                        // A database blip is not the end of the job: look again, and say
                        // so once rather than on every look.
                        Err(err) => {
                            if !self.failing {
                                tracing::warn!(job_id = %self.job_id, error = %format!("{err:#}"), "following a job: its row could not be read; trying again");
                            }
                            self.failing = true;
                            continue;
                        }
                    }
                }
            };
            let update = JobUpdate::of(&job);
            if self.seen.as_deref() == Some(update.id.as_str()) {
                if update.is_end() {
                    return None;
                }
                continue;
            }
            self.seen = Some(update.id.clone());
            self.ended = update.is_end();
            return Some(update);
        }
    }
}

/// Which ended jobs may run again, and how a missing one is named.
#[derive(Debug, Clone, Copy)]
enum RunAgain {
    /// `POST /jobs/{id}/retry`: a dead or cancelled job.
    Retry,
    /// `POST /dlq/{id}/requeue`: a job of the dead-letter queue.
    FromDeadLetters,
}

impl RunAgain {
    fn allowed_states(self) -> &'static [JobState] {
        match self {
            Self::Retry => &[JobState::Dead, JobState::Cancelled],
            Self::FromDeadLetters => &[JobState::Dead],
        }
    }

    fn not_found(self) -> LibraryError {
        match self {
            Self::Retry => LibraryError::JobNotFound,
            Self::FromDeadLetters => LibraryError::NotInDeadLetterQueue,
        }
    }
}

impl Library {
    pub async fn job(&self, who: &Principal, id: &JobId) -> LibraryResult<JobReport> {
        let job = self.job_for(who, id, Scope::Read).await?;
        let history = self.stores.jobs.attempts(id.as_str()).await?;
        Ok(JobReport { job, history })
    }

    /// Follows a job: its state now (unless `seen` names it: the follower has it), then
    /// each change, looking at the job's row every `every`, so that any API replica can
    /// follow any job. Changes between two looks arrive as one update. The stream ends
    /// after the job's end state (at once if the follower has seen it).
    pub async fn follow_job(
        &self,
        who: &Principal,
        id: &JobId,
        seen: Option<String>,
        every: Duration,
    ) -> LibraryResult<impl Stream<Item = JobUpdate> + Send + 'static> {
        let first = self.job_for(who, id, Scope::Read).await?;
        let following = Following {
            jobs: self.stores.jobs.clone(),
            job_id: id.as_str().to_owned(),
            seen,
            first: Some(first),
            every,
            ended: false,
            failing: false,
        };
        Ok(futures::stream::unfold(following, |mut following| async move {
            let update = following.next_update().await?;
            Some((update, following))
        }))
    }

    /// The newest jobs of the books `who` may read first, in `state` if given (without
    /// their histories).
    pub async fn jobs(&self, who: &Principal, state: Option<JobState>, limit: u64) -> LibraryResult<Vec<job::Model>> {
        let libraries = who.readable_libraries();
        Ok(self.stores.jobs.list_in(libraries.as_deref(), state, limit).await?)
    }

    /// The dead-letter queue, each job with its attempts (operators only).
    pub async fn dead_letters(&self, who: &Principal, limit: u64) -> LibraryResult<Vec<JobReport>> {
        Self::operators_only(who, "the dead-letter queue")?;
        let mut reports = Vec::new();
        for job in self.stores.jobs.list(Some(JobState::Dead), limit).await? {
            let history = self.stores.jobs.attempts(&job.id).await?;
            reports.push(JobReport { job, history });
        }
        Ok(reports)
    }

    /// Asks a job to stop: a queued or retrying one ends at once, a running one when its
    /// worker next looks (or, if that worker died, when the stranded sweep finds it).
    pub async fn cancel_job(&self, who: &Principal, id: &JobId) -> LibraryResult<JobReport> {
        let before = self.job_for(who, id, Scope::Write).await?;
        if before.state.is_final() {
            return Err(LibraryError::Conflict(format!(
                "the job has already ended: {}",
                before.state
            )));
        }
        self.stores.jobs.request_cancel(id.as_str()).await?;
        self.audit_job(who, "job.cancel", &before).await?;
        self.job(who, id).await
    }

    /// Runs a dead or cancelled job again with a fresh set of attempts.
    pub async fn retry_job(&self, who: &Principal, id: &JobId) -> LibraryResult<JobReport> {
        let job = self.job_for(who, id, Scope::Write).await?;
        let report = self.run_again(who, id, RunAgain::Retry).await?;
        self.audit_job(who, "job.retry", &job).await?;
        Ok(report)
    }

    /// Takes a job out of the dead-letter queue and runs it again (operators only).
    pub async fn requeue_dead_letter(&self, who: &Principal, id: &JobId) -> LibraryResult<JobReport> {
        Self::operators_only(who, "the dead-letter queue")?;
        let report = self.run_again(who, id, RunAgain::FromDeadLetters).await?;
        self.audit_job(who, "dlq.requeue", &report.job).await?;
        Ok(report)
    }

    /// Drops a job from the dead-letter queue without running it: it ends `cancelled`
    /// (operators only).
    pub async fn discard_dead_letter(&self, who: &Principal, id: &JobId) -> LibraryResult<()> {
        Self::operators_only(who, "the dead-letter queue")?;
        let job = self.stores.jobs.get(id.as_str()).await?;
        if !self.stores.jobs.discard_dead(id.as_str()).await? {
            return Err(LibraryError::NotInDeadLetterQueue);
        }
        if let Some(job) = job {
            self.audit_job(who, "dlq.discard", &job).await?;
        }
        Ok(())
    }

    async fn audit_job(&self, who: &Principal, action: &str, job: &job::Model) -> LibraryResult<()> {
        let library = self
            .stores
            .catalog
            .book(&job.book_id)
            .await?
            .map(|book| book.library_id);
        self.audit(
            who,
            AuditEvent {
                action,
                library_id: library.as_deref(),
                book_id: Some(&job.book_id),
                target: Some(&job.id),
            },
        )
        .await
    }

    /// Puts an ended job back through the outbox; only the book's latest job may run again.
    async fn run_again(&self, who: &Principal, id: &JobId, how: RunAgain) -> LibraryResult<JobReport> {
        let from = how.allowed_states();
        let job = match self
            .stores
            .jobs
            .requeue(id.as_str(), from, self.limits.max_attempts)
            .await?
        {
            Requeue::Queued(job) => job,
            Requeue::NotFound => return Err(how.not_found()),
            Requeue::NotInState(current) => {
                return Err(LibraryError::Conflict(format!(
                    "the job is {current}; only a job that is {} can be run again",
                    from.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" or ")
                )));
            }
            Requeue::Superseded => {
                return Err(LibraryError::Conflict(
                    "a newer job of this book exists; only the book's latest job can be run again".to_owned(),
                ));
            }
            Requeue::BookBusy => {
                return Err(LibraryError::Conflict(
                    "another job for this book is still queued or running; wait for it or cancel it".to_owned(),
                ));
            }
        };
        if let Err(err) = relay::publish(&self.stores.jobs, self.stores.queue.as_ref(), &job).await {
            tracing::warn!(job_id = %job.id, error = %format!("{err:#}"), "requeued job left to the outbox relay");
        }
        self.job(who, id).await
    }
}
