//! Jobs: follow one, list them, cancel one, run an ended one again, and the dead-letter
//! queue.

use super::{Library, LibraryError, LibraryResult};
use crate::db::entities::{job, job_attempt};
use crate::domain::{JobId, JobState};
use crate::jobs::relay;
use crate::jobs::store::Requeue;

/// A job with its attempts, oldest first.
#[derive(Debug, Clone)]
pub struct JobReport {
    pub job: job::Model,
    pub history: Vec<job_attempt::Model>,
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
    pub async fn job(&self, id: &JobId) -> LibraryResult<JobReport> {
        let job = self
            .stores
            .jobs
            .get(id.as_str())
            .await?
            .ok_or(LibraryError::JobNotFound)?;
        let history = self.stores.jobs.attempts(id.as_str()).await?;
        Ok(JobReport { job, history })
    }

    /// The newest jobs first, in `state` if given (without their histories).
    pub async fn jobs(&self, state: Option<JobState>, limit: u64) -> LibraryResult<Vec<job::Model>> {
        Ok(self.stores.jobs.list(state, limit).await?)
    }

    /// The dead-letter queue, each job with its attempts.
    pub async fn dead_letters(&self, limit: u64) -> LibraryResult<Vec<JobReport>> {
        let mut reports = Vec::new();
        for job in self.stores.jobs.list(Some(JobState::Dead), limit).await? {
            let history = self.stores.jobs.attempts(&job.id).await?;
            reports.push(JobReport { job, history });
        }
        Ok(reports)
    }

    /// Asks a job to stop: a queued or retrying one ends at once, a running one when its
    /// worker next looks (or, if that worker died, when the stranded sweep finds it).
    pub async fn cancel_job(&self, id: &JobId) -> LibraryResult<JobReport> {
        let before = self
            .stores
            .jobs
            .get(id.as_str())
            .await?
            .ok_or(LibraryError::JobNotFound)?;
        if before.state.is_final() {
            return Err(LibraryError::Conflict(format!(
                "the job has already ended: {}",
                before.state
            )));
        }
        self.stores.jobs.request_cancel(id.as_str()).await?;
        self.job(id).await
    }

    /// Runs a dead or cancelled job again with a fresh set of attempts.
    pub async fn retry_job(&self, id: &JobId) -> LibraryResult<JobReport> {
        self.run_again(id, RunAgain::Retry).await
    }

    /// Takes a job out of the dead-letter queue and runs it again.
    pub async fn requeue_dead_letter(&self, id: &JobId) -> LibraryResult<JobReport> {
        self.run_again(id, RunAgain::FromDeadLetters).await
    }

    /// Drops a job from the dead-letter queue without running it: it ends `cancelled`.
    pub async fn discard_dead_letter(&self, id: &JobId) -> LibraryResult<()> {
        if self.stores.jobs.discard_dead(id.as_str()).await? {
            Ok(())
        } else {
            Err(LibraryError::NotInDeadLetterQueue)
        }
    }

    /// Puts an ended job back through the outbox; only the book's latest job may run again.
    async fn run_again(&self, id: &JobId, how: RunAgain) -> LibraryResult<JobReport> {
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
        self.job(id).await
    }
}
