//! The durable job queue: `jobs`, one row per piece of background work (such as transcoding an
//! asset) with its lease, heartbeat, attempt count, progress and outcome.
//!
//! `idx_jobs_due` serves claiming (due queued jobs by `run_after`); the partial unique index
//! `idx_jobs_one_active` keeps at most one queued or running job per `(kind, subject_id)`.
//! Both SQLite (3.8+) and Postgres accept the same `CREATE UNIQUE INDEX … WHERE` statement.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    integer, string, string_len, string_null, text, text_null, timestamp_with_time_zone,
    timestamp_with_time_zone_null,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Jobs {
    Table,
    Id,
    Kind,
    SubjectId,
    Payload,
    Status,
    Attempts,
    MaxAttempts,
    RunAfter,
    LeaseOwner,
    LeaseUntil,
    HeartbeatAt,
    Progress,
    LastError,
    Result,
    CreatedAt,
    UpdatedAt,
    FinishedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Jobs::Table)
                    .col(string(Jobs::Id).primary_key())
                    .col(string_len(Jobs::Kind, 64))
                    .col(string(Jobs::SubjectId))
                    .col(text(Jobs::Payload))
                    .col(string_len(Jobs::Status, 16))
                    .col(integer(Jobs::Attempts))
                    .col(integer(Jobs::MaxAttempts))
                    .col(timestamp_with_time_zone(Jobs::RunAfter))
                    .col(string_null(Jobs::LeaseOwner))
                    .col(timestamp_with_time_zone_null(Jobs::LeaseUntil))
                    .col(timestamp_with_time_zone_null(Jobs::HeartbeatAt))
                    .col(integer(Jobs::Progress))
                    .col(text_null(Jobs::LastError))
                    .col(text_null(Jobs::Result))
                    .col(timestamp_with_time_zone(Jobs::CreatedAt))
                    .col(timestamp_with_time_zone(Jobs::UpdatedAt))
                    .col(timestamp_with_time_zone_null(Jobs::FinishedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_jobs_due")
                    .table(Jobs::Table)
                    .col(Jobs::Status)
                    .col(Jobs::RunAfter)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_jobs_one_active")
                    .table(Jobs::Table)
                    .col(Jobs::Kind)
                    .col(Jobs::SubjectId)
                    .unique()
                    .and_where(Expr::col(Jobs::Status).is_in(["queued", "running"]))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_jobs_subject")
                    .table(Jobs::Table)
                    .col(Jobs::SubjectId)
                    .col(Jobs::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Jobs::Table).to_owned())
            .await
    }
}
