//! Room composites: `room_composites`, one row per composite of a room (its participants
//! composed onto one canvas and published to a live stream made for it), with the live stream,
//! layout, canvas size, latency mode, the outputs asked for (`outputs`, JSON: HLS, recording,
//! the simulcast targets' ids and URLs) and where it stands (`status`: `waiting`, `active`,
//! `stopped`, with when it started publishing and when it stopped).
//!
//! Rows go with their room (a cascading foreign key) and are listed per room newest first (an
//! index on `(room_id, created_at)`). A partial unique index on `room_id` over the rows not
//! `stopped` lets a room have one running composite at a time, whichever node starts it.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    string, string_len, text, timestamp_with_time_zone, timestamp_with_time_zone_null,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RoomComposites {
    Table,
    Id,
    RoomId,
    LiveStreamId,
    Layout,
    Resolution,
    LatencyMode,
    Outputs,
    Status,
    CreatedAt,
    StartedAt,
    StoppedAt,
}

#[derive(DeriveIden)]
enum Rooms {
    Table,
    Id,
}

const ROOM_INDEX: &str = "idx_room_composites_room_id_created_at";
const RUNNING_INDEX: &str = "idx_room_composites_running_room_id";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RoomComposites::Table)
                    .col(string(RoomComposites::Id).primary_key())
                    .col(string(RoomComposites::RoomId))
                    .col(string(RoomComposites::LiveStreamId))
                    .col(string_len(RoomComposites::Layout, 16))
                    .col(string_len(RoomComposites::Resolution, 16))
                    .col(string_len(RoomComposites::LatencyMode, 16))
                    .col(text(RoomComposites::Outputs))
                    .col(string_len(RoomComposites::Status, 16))
                    .col(timestamp_with_time_zone(RoomComposites::CreatedAt))
                    .col(timestamp_with_time_zone_null(RoomComposites::StartedAt))
                    .col(timestamp_with_time_zone_null(RoomComposites::StoppedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_room_composite_room")
                            .from(RoomComposites::Table, RoomComposites::RoomId)
                            .to(Rooms::Table, Rooms::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(ROOM_INDEX)
                    .table(RoomComposites::Table)
                    .col(RoomComposites::RoomId)
                    .col(RoomComposites::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(RUNNING_INDEX)
                    .table(RoomComposites::Table)
                    .col(RoomComposites::RoomId)
                    .unique()
                    .and_where(Expr::col(RoomComposites::Status).ne("stopped"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Indexes go with the table.
        manager
            .drop_table(Table::drop().table(RoomComposites::Table).to_owned())
            .await
    }
}
