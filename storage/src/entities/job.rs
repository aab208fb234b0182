//! The `jobs` table: the durable job queue.

use sea_orm::entity::prelude::*;

use crate::model::JobStatus;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "jobs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// What the job does, such as `asset.transcode`.
    pub kind: String,
    /// The record the job works on (an asset id).
    pub subject_id: String,
    /// JSON text: the job's parameters.
    pub payload: String,
    pub status: JobStatus,
    /// How many times the job was claimed.
    pub attempts: i32,
    pub max_attempts: i32,
    /// A queued job is not claimed before this (retry backoff).
    pub run_after: DateTimeUtc,
    /// The worker holding (or, once finished, last holding) the job.
    pub lease_owner: Option<String>,
    /// A running job whose lease has passed is taken over by the next claim.
    pub lease_until: Option<DateTimeUtc>,
    pub heartbeat_at: Option<DateTimeUtc>,
    /// Percent done, 0..=100.
    pub progress: i32,
    pub last_error: Option<String>,
    /// JSON text: what a succeeded job produced.
    pub result: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
