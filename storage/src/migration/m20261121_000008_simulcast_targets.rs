//! Simulcast targets: `simulcast_targets`, the RTMP(S) servers a live stream is restreamed to
//! while it is live, each with its stream key sealed under the master key, the rendition it
//! carries and its last known connection state.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, boolean, string, string_len, text, text_null, timestamp_with_time_zone,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SimulcastTargets {
    Table,
    Id,
    LiveStreamId,
    Url,
    StreamKeySealed,
    Rendition,
    Passthrough,
    Status,
    LastError,
    BytesSent,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum LiveStreams {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SimulcastTargets::Table)
                    .col(string(SimulcastTargets::Id).primary_key())
                    .col(string(SimulcastTargets::LiveStreamId))
                    .col(text(SimulcastTargets::Url))
                    .col(text(SimulcastTargets::StreamKeySealed))
                    .col(string_len(SimulcastTargets::Rendition, 64))
                    .col(boolean(SimulcastTargets::Passthrough))
                    .col(string_len(SimulcastTargets::Status, 16))
                    .col(text_null(SimulcastTargets::LastError))
                    .col(big_integer(SimulcastTargets::BytesSent))
                    .col(timestamp_with_time_zone(SimulcastTargets::CreatedAt))
                    .col(timestamp_with_time_zone(SimulcastTargets::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_simulcast_target_live_stream")
                            .from(SimulcastTargets::Table, SimulcastTargets::LiveStreamId)
                            .to(LiveStreams::Table, LiveStreams::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_simulcast_targets_live_stream_id")
                    .table(SimulcastTargets::Table)
                    .col(SimulcastTargets::LiveStreamId)
                    .col(SimulcastTargets::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(SimulcastTargets::Table).to_owned())
            .await
    }
}
