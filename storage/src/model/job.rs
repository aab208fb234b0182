//! Jobs of the durable queue: background work (such as transcoding an asset) that survives
//! restarts, taken by workers under a lease they keep alive with heartbeats.

use chrono::{DateTime, Utc};
use sea_orm::entity::prelude::*;
use serde::Serialize;
use serde_json::Value;

/// How many times a job is claimed before a failure is final, unless its [`NewJob`] says.
pub const DEFAULT_JOB_MAX_ATTEMPTS: u32 = 3;

/// Where a job stands. `queued` and `running` jobs are active: at most one per
/// `(kind, subject_id)` exists at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting for a worker; claimable once `run_after` has passed.
    #[sea_orm(string_value = "queued")]
    Queued,
    /// Held by the worker named in `lease_owner` until `lease_until`.
    #[sea_orm(string_value = "running")]
    Running,
    #[sea_orm(string_value = "succeeded")]
    Succeeded,
    /// Failed for good: the last attempt failed and no retry was asked or allowed.
    #[sea_orm(string_value = "failed")]
    Failed,
    #[sea_orm(string_value = "cancelled")]
    Cancelled,
}

impl JobStatus {
    /// Queued or running: the job may still do work.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Queued | Self::Running)
    }
}

/// A job to put on the queue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// What the job does, such as `asset.transcode`.
    pub kind: String,
    /// The record it works on (an asset id).
    pub subject_id: String,
    pub payload: Value,
    /// Claims allowed before a failure is final; at least 1.
    pub max_attempts: u32,
}

impl NewJob {
    /// A job allowed [`DEFAULT_JOB_MAX_ATTEMPTS`] attempts.
    pub fn new(kind: impl Into<String>, subject_id: impl Into<String>, payload: Value) -> Self {
        Self {
            kind: kind.into(),
            subject_id: subject_id.into(),
            payload,
            max_attempts: DEFAULT_JOB_MAX_ATTEMPTS,
        }
    }
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// `job_` followed by random characters.
    pub id: String,
    pub kind: String,
    pub subject_id: String,
    pub payload: Value,
    pub status: JobStatus,
    /// How many times the job was claimed (the current attempt's number while running).
    pub attempts: u32,
    pub max_attempts: u32,
    /// A queued job is not claimed before this.
    pub run_after: DateTime<Utc>,
    /// The worker holding the job while it runs; once it is finished, the last one that held
    /// it; `None` while queued.
    pub lease_owner: Option<String>,
    /// When the current lease runs out; another worker may then take the job over.
    pub lease_until: Option<DateTime<Utc>>,
    pub heartbeat_at: Option<DateTime<Utc>>,
    /// Percent done, 0..=100 (100 once succeeded).
    pub progress: u8,
    /// Why the last attempt failed or was taken over.
    pub last_error: Option<String>,
    /// What a succeeded job produced.
    pub result: Option<Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When the job succeeded, failed for good or was cancelled.
    pub finished_at: Option<DateTime<Utc>>,
}
