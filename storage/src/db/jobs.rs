//! The durable job queue: enqueueing (one active job per kind and subject), claiming due jobs
//! under a lease, heartbeats, and settling a job, every change after the claim conditional on
//! the worker still holding the job.
//!
//! There is no separate sweep for dead workers: a running job whose lease has passed is as
//! claimable as a due queued one, so the next claim takes it over (counting a new attempt).
//! A worker whose lease was taken over finds every later call answering `false` and changing
//! nothing, so only the current holder's outcome is ever recorded.
//!
//! Worker ids must be unique per job holder — each task that claims jobs, not just each
//! process (for example host, pid, task number and a random suffix): the lease is matched on
//! them, so two tasks sharing an id could both believe they hold a job taken over between
//! them.

use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::sea_query::{Expr, LockBehavior, LockType};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Select, SqlErr, TransactionTrait,
};
use serde_json::Value;
use tracing::info;

use super::{json_column, now, Db, DbEngine, Record, Result};
use crate::entities::job;
use crate::ids;
use crate::model::{Job, JobStatus, NewJob};

/// Due jobs a SQLite claim tries in turn before looking again (each may be lost to another
/// claimer between reading and updating it).
const SQLITE_CLAIM_CANDIDATES: u64 = 8;

fn job_from_row(row: job::Model) -> Result<Job> {
    let payload = json_column(Record::Job, &row.id, "payload", &row.payload)?;
    let result = row
        .result
        .as_deref()
        .map(|text| json_column(Record::Job, &row.id, "result", text))
        .transpose()?;
    Ok(Job {
        payload,
        result,
        status: row.status,
        attempts: u32::try_from(row.attempts).unwrap_or(0),
        max_attempts: u32::try_from(row.max_attempts).unwrap_or(0),
        run_after: row.run_after,
        lease_until: row.lease_until,
        heartbeat_at: row.heartbeat_at,
        progress: u8::try_from(row.progress.clamp(0, 100)).unwrap_or(0),
        last_error: row.last_error,
        created_at: row.created_at,
        updated_at: row.updated_at,
        finished_at: row.finished_at,
        id: row.id,
        kind: row.kind,
        subject_id: row.subject_id,
        lease_owner: row.lease_owner,
    })
}

/// The row of a job queued now, due at once.
pub(super) fn new_job_row(new: &NewJob) -> job::ActiveModel {
    let at = now();
    job::ActiveModel {
        id: Set(ids::new_id(ids::JOB_PREFIX)),
        kind: Set(new.kind.clone()),
        subject_id: Set(new.subject_id.clone()),
        payload: Set(new.payload.to_string()),
        status: Set(JobStatus::Queued),
        attempts: Set(0),
        max_attempts: Set(i32::try_from(new.max_attempts.max(1)).unwrap_or(i32::MAX)),
        run_after: Set(at),
        lease_owner: Set(None),
        lease_until: Set(None),
        heartbeat_at: Set(None),
        progress: Set(0),
        last_error: Set(None),
        result: Set(None),
        created_at: Set(at),
        updated_at: Set(at),
        finished_at: Set(None),
    }
}

/// The queued or running job of `kind` on `subject_id`, if any; `conn` may be a transaction.
async fn active_job(
    conn: &impl ConnectionTrait,
    kind: &str,
    subject_id: &str,
) -> Result<Option<Job>> {
    job::Entity::find()
        .filter(job::Column::Kind.eq(kind))
        .filter(job::Column::SubjectId.eq(subject_id))
        .filter(job::Column::Status.is_in([JobStatus::Queued, JobStatus::Running]))
        .one(conn)
        .await?
        .map(job_from_row)
        .transpose()
}

/// [`Db::enqueue_job`] within `conn`, a transaction: the active job of the same kind and
/// subject if there is one, else a new one, due now. Unlike `enqueue_job` it does not retry
/// when a concurrent caller queues the same job first (the unique index on active jobs fails
/// the transaction), so callers serialise on a row they update first.
pub(super) async fn enqueue_job_in(conn: &impl ConnectionTrait, new: &NewJob) -> Result<Job> {
    if let Some(active) = active_job(conn, &new.kind, &new.subject_id).await? {
        return Ok(active);
    }
    let row = job::Entity::insert(new_job_row(new))
        .exec_with_returning(conn)
        .await?;
    info!(job_id = %row.id, kind = %row.kind, subject_id = %row.subject_id, "Job queued.");
    job_from_row(row)
}

/// `at + duration`, stored to the microsecond like every timestamp.
fn after(at: DateTime<Utc>, duration: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(duration)
        .ok()
        .and_then(|duration| at.checked_add_signed(duration))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
        .trunc_subsecs(6)
}

/// Jobs a claim at `at` may take: queued and due, or running under a lease that has passed
/// (their worker died or stalled).
fn claimable(at: DateTime<Utc>) -> Condition {
    Condition::any()
        .add(
            Condition::all()
                .add(job::Column::Status.eq(JobStatus::Queued))
                .add(job::Column::RunAfter.lte(at)),
        )
        .add(
            Condition::all()
                .add(job::Column::Status.eq(JobStatus::Running))
                .add(job::Column::LeaseUntil.lt(at)),
        )
}

/// Jobs of `kinds` claimable at `at`, the one due longest first.
fn due_jobs(kinds: &[&str], at: DateTime<Utc>) -> Select<job::Entity> {
    job::Entity::find()
        .filter(job::Column::Kind.is_in(kinds.iter().copied()))
        .filter(claimable(at))
        .order_by_asc(job::Column::RunAfter)
        .order_by_asc(job::Column::CreatedAt)
        .order_by_asc(job::Column::Id)
}

/// The running job `job_id` while `worker_id` holds it.
fn held_by(job_id: &str, worker_id: &str) -> Condition {
    Condition::all()
        .add(job::Column::Id.eq(job_id))
        .add(job::Column::Status.eq(JobStatus::Running))
        .add(job::Column::LeaseOwner.eq(worker_id))
}

/// Gives `candidate` to `worker_id` until `lease_until` if it is still claimable at `at`;
/// returns the job as claimed, or `None` when another claim got there first.
async fn take(
    conn: &impl ConnectionTrait,
    candidate: &job::Model,
    worker_id: &str,
    at: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> Result<Option<Job>> {
    // A running candidate is a dead worker's: say so, keeping the job's history readable.
    let last_error = match (&candidate.status, &candidate.lease_owner) {
        (JobStatus::Running, Some(owner)) => Some(format!("the lease of worker {owner} expired")),
        _ => candidate.last_error.clone(),
    };
    // A job whose every attempt ended with its worker gone (one that kills its worker, say)
    // is not tried again: it fails like a job whose last attempt failed.
    if candidate.status == JobStatus::Running && candidate.attempts >= candidate.max_attempts {
        job::Entity::update_many()
            .col_expr(job::Column::Status, JobStatus::Failed.into())
            .col_expr(job::Column::LeaseUntil, None::<DateTime<Utc>>.into())
            .col_expr(job::Column::LastError, last_error.into())
            .col_expr(job::Column::FinishedAt, Some(at).into())
            .col_expr(job::Column::UpdatedAt, at.into())
            .filter(job::Column::Id.eq(candidate.id.as_str()))
            .filter(claimable(at))
            .exec(conn)
            .await?;
        return Ok(None);
    }
    let won = job::Entity::update_many()
        .col_expr(job::Column::Status, JobStatus::Running.into())
        .col_expr(
            job::Column::Attempts,
            Expr::col(job::Column::Attempts).add(1),
        )
        .col_expr(job::Column::LeaseOwner, Some(worker_id.to_owned()).into())
        .col_expr(job::Column::LeaseUntil, Some(lease_until).into())
        .col_expr(job::Column::HeartbeatAt, Some(at).into())
        // A new attempt starts over.
        .col_expr(job::Column::Progress, 0.into())
        .col_expr(job::Column::LastError, last_error.into())
        .col_expr(job::Column::UpdatedAt, at.into())
        .filter(job::Column::Id.eq(candidate.id.as_str()))
        .filter(claimable(at))
        .exec(conn)
        .await?
        .rows_affected
        == 1;
    if !won {
        return Ok(None);
    }
    job::Entity::find_by_id(candidate.id.as_str())
        .one(conn)
        .await?
        .map(job_from_row)
        .transpose()
}

impl Db {
    /// Puts a job on the queue, due now. While a queued or running job of the same kind and
    /// subject exists, that one is returned instead and nothing is added; a unique index on
    /// active jobs makes this hold for concurrent callers too.
    pub async fn enqueue_job(&self, new: &NewJob) -> Result<Job> {
        loop {
            if let Some(active) = self.active_job(&new.kind, &new.subject_id).await? {
                return Ok(active);
            }
            let row = new_job_row(new);
            match job::Entity::insert(row)
                .exec_with_returning(&self.conn)
                .await
            {
                Ok(row) => {
                    info!(job_id = %row.id, kind = %row.kind, subject_id = %row.subject_id, "Job queued.");
                    return job_from_row(row);
                }
                // Another caller queued the same job meanwhile: return theirs.
                Err(err) if matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                    continue
                }
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// The queued or running job of `kind` on `subject_id`, if any.
    async fn active_job(&self, kind: &str, subject_id: &str) -> Result<Option<Job>> {
        active_job(&self.conn, kind, subject_id).await
    }

    /// Takes the job of one of `kinds` that has been due longest (queued with `run_after`
    /// passed, or running under an expired lease: a dead worker's job) and gives it to
    /// `worker_id` for `lease`, counting one more attempt. `None` when nothing is due.
    ///
    /// Of several workers claiming at once each job goes to exactly one. On Postgres the
    /// candidate is read with `FOR UPDATE SKIP LOCKED` inside a transaction, so concurrent
    /// claimers pass over each other's rows instead of waiting; SQLite serialises writers, so
    /// there the claim is an update conditional on the job still being claimable, and a lost
    /// race moves on to the next candidate.
    pub async fn claim_job(
        &self,
        worker_id: &str,
        kinds: &[&str],
        lease: Duration,
    ) -> Result<Option<Job>> {
        if kinds.is_empty() {
            return Ok(None);
        }
        let at = now();
        let lease_until = after(at, lease);
        match self.engine {
            DbEngine::Postgres => {
                let txn = self.conn.begin().await?;
                let candidate = due_jobs(kinds, at)
                    .limit(1)
                    .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
                    .one(&txn)
                    .await?;
                let claimed = match candidate {
                    Some(candidate) => take(&txn, &candidate, worker_id, at, lease_until).await?,
                    None => None,
                };
                txn.commit().await?;
                Ok(claimed)
            }
            DbEngine::Sqlite => loop {
                let candidates = due_jobs(kinds, at)
                    .limit(SQLITE_CLAIM_CANDIDATES)
                    .all(&self.conn)
                    .await?;
                if candidates.is_empty() {
                    return Ok(None);
                }
                // Every candidate lost went to another claimer, so looking again terminates.
                for candidate in &candidates {
                    if let Some(claimed) =
                        take(&self.conn, candidate, worker_id, at, lease_until).await?
                    {
                        return Ok(Some(claimed));
                    }
                }
            },
        }
    }

    /// Extends the lease of `worker_id` on `job_id` to `lease` from now and records
    /// `progress` (capped at 100) when given. `false` when the worker no longer holds the job
    /// (it was taken over, cancelled or settled): the worker must stop working on it.
    pub async fn heartbeat_job(
        &self,
        job_id: &str,
        worker_id: &str,
        lease: Duration,
        progress: Option<u8>,
    ) -> Result<bool> {
        let at = now();
        let mut update = job::Entity::update_many()
            .col_expr(job::Column::LeaseUntil, Some(after(at, lease)).into())
            .col_expr(job::Column::HeartbeatAt, Some(at).into())
            .col_expr(job::Column::UpdatedAt, at.into());
        if let Some(progress) = progress {
            update = update.col_expr(job::Column::Progress, i32::from(progress.min(100)).into());
        }
        Ok(update
            .filter(held_by(job_id, worker_id))
            .exec(&self.conn)
            .await?
            .rows_affected
            == 1)
    }

    /// Marks the job `worker_id` holds as succeeded with `result`. `false` (and nothing
    /// recorded) when the worker no longer holds it.
    pub async fn complete_job(
        &self,
        job_id: &str,
        worker_id: &str,
        result: &Value,
    ) -> Result<bool> {
        let at = now();
        let completed = job::Entity::update_many()
            .col_expr(job::Column::Status, JobStatus::Succeeded.into())
            .col_expr(job::Column::Result, Some(result.to_string()).into())
            .col_expr(job::Column::Progress, 100.into())
            .col_expr(job::Column::LeaseUntil, None::<DateTime<Utc>>.into())
            .col_expr(job::Column::UpdatedAt, at.into())
            .col_expr(job::Column::FinishedAt, Some(at).into())
            .filter(held_by(job_id, worker_id))
            .exec(&self.conn)
            .await?
            .rows_affected
            == 1;
        if completed {
            info!(job_id, worker_id, "Job succeeded.");
        }
        Ok(completed)
    }

    /// Records that the attempt of `worker_id` on `job_id` failed with `error`. With
    /// `retry_after` and attempts left the job is queued again, due that long from now;
    /// otherwise it has failed for good. `false` (and nothing recorded) when the worker no
    /// longer holds the job.
    pub async fn fail_job(
        &self,
        job_id: &str,
        worker_id: &str,
        error: &str,
        retry_after: Option<Duration>,
    ) -> Result<bool> {
        let at = now();
        if let Some(retry_after) = retry_after {
            let requeued = job::Entity::update_many()
                .col_expr(job::Column::Status, JobStatus::Queued.into())
                .col_expr(job::Column::RunAfter, after(at, retry_after).into())
                .col_expr(job::Column::LeaseOwner, None::<String>.into())
                .col_expr(job::Column::LeaseUntil, None::<DateTime<Utc>>.into())
                .col_expr(job::Column::HeartbeatAt, None::<DateTime<Utc>>.into())
                .col_expr(job::Column::Progress, 0.into())
                .col_expr(job::Column::LastError, Some(error.to_owned()).into())
                .col_expr(job::Column::UpdatedAt, at.into())
                .filter(held_by(job_id, worker_id))
                .filter(Expr::col(job::Column::Attempts).lt(Expr::col(job::Column::MaxAttempts)))
                .exec(&self.conn)
                .await?
                .rows_affected
                == 1;
            if requeued {
                info!(
                    job_id,
                    worker_id, error, "Job attempt failed; retry queued."
                );
                return Ok(true);
            }
        }
        let failed = job::Entity::update_many()
            .col_expr(job::Column::Status, JobStatus::Failed.into())
            .col_expr(job::Column::LeaseUntil, None::<DateTime<Utc>>.into())
            .col_expr(job::Column::LastError, Some(error.to_owned()).into())
            .col_expr(job::Column::UpdatedAt, at.into())
            .col_expr(job::Column::FinishedAt, Some(at).into())
            .filter(held_by(job_id, worker_id))
            .exec(&self.conn)
            .await?
            .rows_affected
            == 1;
        if failed {
            info!(job_id, worker_id, error, "Job failed.");
        }
        Ok(failed)
    }

    /// Cancels every queued or running job on `subject_id` (a worker running one finds its
    /// next heartbeat refused). Returns how many were cancelled.
    pub async fn cancel_jobs_for(&self, subject_id: &str) -> Result<u64> {
        let at = now();
        let cancelled = job::Entity::update_many()
            .col_expr(job::Column::Status, JobStatus::Cancelled.into())
            .col_expr(job::Column::LeaseUntil, None::<DateTime<Utc>>.into())
            .col_expr(job::Column::UpdatedAt, at.into())
            .col_expr(job::Column::FinishedAt, Some(at).into())
            .filter(job::Column::SubjectId.eq(subject_id))
            .filter(job::Column::Status.is_in([JobStatus::Queued, JobStatus::Running]))
            .exec(&self.conn)
            .await?
            .rows_affected;
        if cancelled > 0 {
            info!(subject_id, cancelled, "Jobs cancelled.");
        }
        Ok(cancelled)
    }

    pub async fn get_job(&self, job_id: &str) -> Result<Option<Job>> {
        job::Entity::find_by_id(job_id)
            .one(&self.conn)
            .await?
            .map(job_from_row)
            .transpose()
    }

    /// Every job on `subject_id`, oldest first.
    pub async fn jobs_for_subject(&self, subject_id: &str) -> Result<Vec<Job>> {
        job::Entity::find()
            .filter(job::Column::SubjectId.eq(subject_id))
            .order_by_asc(job::Column::CreatedAt)
            .order_by_asc(job::Column::Id)
            .all(&self.conn)
            .await?
            .into_iter()
            .map(job_from_row)
            .collect()
    }
}
