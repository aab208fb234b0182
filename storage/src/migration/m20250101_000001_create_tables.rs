//! The initial schema: `api_keys`, `live_streams`, `sessions`.
//!
//! Written with sea-query's portable column types (text ids, timestamps with time zone,
//! JSON kept as text) so the same migration runs on SQLite and Postgres.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, string, string_len, string_null, string_uniq, text, text_null,
    timestamp_with_time_zone, timestamp_with_time_zone_null,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    Secret,
    Name,
    CreatedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum LiveStreams {
    Table,
    Id,
    Name,
    StreamKey,
    PlaybackId,
    Ladder,
    Status,
    ActiveSessionId,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    LiveStreamId,
    StartedAt,
    EndedAt,
    ClientAddr,
    Encoder,
    Input,
    BytesReceived,
    FramesDropped,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ApiKeys::Table)
                    .col(string(ApiKeys::Id).primary_key())
                    .col(string(ApiKeys::Secret))
                    .col(string(ApiKeys::Name))
                    .col(timestamp_with_time_zone(ApiKeys::CreatedAt))
                    .col(timestamp_with_time_zone_null(ApiKeys::RevokedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(LiveStreams::Table)
                    .col(string(LiveStreams::Id).primary_key())
                    .col(string(LiveStreams::Name))
                    .col(string_uniq(LiveStreams::StreamKey))
                    .col(string_uniq(LiveStreams::PlaybackId))
                    .col(text(LiveStreams::Ladder))
                    .col(string_len(LiveStreams::Status, 16))
                    .col(string_null(LiveStreams::ActiveSessionId))
                    .col(timestamp_with_time_zone(LiveStreams::CreatedAt))
                    .col(timestamp_with_time_zone(LiveStreams::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_live_streams_created_at_id")
                    .table(LiveStreams::Table)
                    .col(LiveStreams::CreatedAt)
                    .col(LiveStreams::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Sessions::Table)
                    .col(string(Sessions::Id).primary_key())
                    .col(string(Sessions::LiveStreamId))
                    .col(timestamp_with_time_zone(Sessions::StartedAt))
                    .col(timestamp_with_time_zone_null(Sessions::EndedAt))
                    .col(string(Sessions::ClientAddr))
                    .col(string_null(Sessions::Encoder))
                    .col(text_null(Sessions::Input))
                    .col(big_integer(Sessions::BytesReceived))
                    .col(big_integer(Sessions::FramesDropped))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_sessions_live_stream")
                            .from(Sessions::Table, Sessions::LiveStreamId)
                            .to(LiveStreams::Table, LiveStreams::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_sessions_live_stream_id")
                    .table(Sessions::Table)
                    .col(Sessions::LiveStreamId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Sessions::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(LiveStreams::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(ApiKeys::Table).to_owned())
            .await
    }
}
