//! Real-time rooms: the rooms LiveKit clients join, each run of a room, and who took part.
//!
//! - `rooms`: one row per room, its `name` unique (clients join by name), with its participant
//!   cap (`max_participants`, 0: no cap), how long it stays open once empty
//!   (`empty_timeout_s`) and free-form `metadata`.
//! - `room_sessions`: one row per run of a room, from its start on a node to its close, with
//!   the base URL of the node hosting it (`node_url`, so a node restarting after a crash ends
//!   the sessions it left open); `ended_at` is `NULL` while it runs. They go with their room (a
//!   cascading foreign key) and are listed per room newest first (an index on
//!   `(room_id, started_at)`).
//! - `room_participants`: one row per participant of a session, keyed by the sid the room
//!   engine made (`PA_…`), with the room's id, the participant's identity and name and when
//!   they joined and left (`NULL` while in the room). They go with their session (a cascading
//!   foreign key) and are read per session (an index on `session_id`).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    integer, string, text, timestamp_with_time_zone, timestamp_with_time_zone_null,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Rooms {
    Table,
    Id,
    Name,
    MaxParticipants,
    EmptyTimeoutS,
    Metadata,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum RoomSessions {
    Table,
    Id,
    RoomId,
    NodeUrl,
    StartedAt,
    EndedAt,
}

#[derive(DeriveIden)]
enum RoomParticipants {
    Table,
    Sid,
    SessionId,
    RoomId,
    Identity,
    Name,
    JoinedAt,
    LeftAt,
}

const ROOMS_NAME_INDEX: &str = "idx_rooms_name";
const SESSIONS_ROOM_INDEX: &str = "idx_room_sessions_room_id_started_at";
const SESSIONS_NODE_INDEX: &str = "idx_room_sessions_node_url";
const PARTICIPANTS_SESSION_INDEX: &str = "idx_room_participants_session_id";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Rooms::Table)
                    .col(string(Rooms::Id).primary_key())
                    .col(text(Rooms::Name))
                    .col(integer(Rooms::MaxParticipants).default(100))
                    .col(integer(Rooms::EmptyTimeoutS).default(300))
                    .col(text(Rooms::Metadata).default(""))
                    .col(timestamp_with_time_zone(Rooms::CreatedAt))
                    .col(timestamp_with_time_zone(Rooms::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(ROOMS_NAME_INDEX)
                    .table(Rooms::Table)
                    .col(Rooms::Name)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RoomSessions::Table)
                    .col(string(RoomSessions::Id).primary_key())
                    .col(string(RoomSessions::RoomId))
                    .col(text(RoomSessions::NodeUrl))
                    .col(timestamp_with_time_zone(RoomSessions::StartedAt))
                    .col(timestamp_with_time_zone_null(RoomSessions::EndedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_room_session_room")
                            .from(RoomSessions::Table, RoomSessions::RoomId)
                            .to(Rooms::Table, Rooms::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(SESSIONS_ROOM_INDEX)
                    .table(RoomSessions::Table)
                    .col(RoomSessions::RoomId)
                    .col(RoomSessions::StartedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(SESSIONS_NODE_INDEX)
                    .table(RoomSessions::Table)
                    .col(RoomSessions::NodeUrl)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RoomParticipants::Table)
                    .col(string(RoomParticipants::Sid).primary_key())
                    .col(string(RoomParticipants::SessionId))
                    .col(string(RoomParticipants::RoomId))
                    .col(text(RoomParticipants::Identity))
                    .col(text(RoomParticipants::Name))
                    .col(timestamp_with_time_zone(RoomParticipants::JoinedAt))
                    .col(timestamp_with_time_zone_null(RoomParticipants::LeftAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_room_participant_session")
                            .from(RoomParticipants::Table, RoomParticipants::SessionId)
                            .to(RoomSessions::Table, RoomSessions::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(PARTICIPANTS_SESSION_INDEX)
                    .table(RoomParticipants::Table)
                    .col(RoomParticipants::SessionId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Indexes go with their tables.
        manager
            .drop_table(Table::drop().table(RoomParticipants::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(RoomSessions::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Rooms::Table).to_owned())
            .await
    }
}
