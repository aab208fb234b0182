//! Authentication and signed playback:
//!
//! - `api_keys` gets `secret_hash` (SHA-256), `secret_sealed` (the secret under the master key)
//!   and `permissions` instead of its plaintext `secret`. SQL cannot hash or seal, so the old
//!   table is renamed `api_keys_legacy` here and `Db::migrate` converts its rows and drops it.
//! - `signing_keys`: public halves of the keys that sign playback tokens.
//! - `playback_ids`: a live stream's playback ids, each `public` or `signed`; each stream's
//!   former `live_streams.playback_id` becomes a `public` one and the column goes. SQLite
//!   cannot drop a UNIQUE column, so `live_streams` is rebuilt; `sessions` (which references it
//!   with ON DELETE CASCADE) is rebuilt first against the new table, so dropping the old
//!   `live_streams` cascades to no row. The same steps run on Postgres.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, string, string_len, string_null, string_uniq, text, text_null,
    timestamp_with_time_zone, timestamp_with_time_zone_null,
};
use sea_orm_migration::sea_orm::TransactionTrait;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The table `Db::migrate` reads the pre-upgrade keys from, then drops.
pub const LEGACY_API_KEYS_TABLE: &str = "api_keys_legacy";

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    Name,
    SecretHash,
    SecretSealed,
    Permissions,
    CreatedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum SigningKeys {
    Table,
    Id,
    Algorithm,
    PublicKey,
    CreatedAt,
}

#[derive(DeriveIden)]
enum LiveStreams {
    Table,
    Id,
    Name,
    StreamKey,
    Ladder,
    Status,
    ActiveSessionId,
    CreatedAt,
    UpdatedAt,
}

/// Where `live_streams` is rebuilt before taking its name.
#[derive(DeriveIden)]
enum LiveStreamsNew {
    Table,
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

#[derive(DeriveIden)]
enum SessionsNew {
    Table,
}

#[derive(DeriveIden)]
enum PlaybackIds {
    Table,
    Id,
    LiveStreamId,
    Policy,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// One transaction, so an interrupted upgrade leaves the old schema whole (SQLite has
    /// transactional DDL; on Postgres the migrator's transaction holds this one as a savepoint).
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let txn = manager.get_connection().begin().await?;
        upgrade(&SchemaManager::new(&txn)).await?;
        txn.commit().await
    }

    // No `down`: plaintext secrets cannot be recovered from their hash, by design.
}

async fn upgrade(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let db = manager.get_connection();
    manager
        .rename_table(
            Table::rename()
                .table(ApiKeys::Table, Alias::new(LEGACY_API_KEYS_TABLE))
                .to_owned(),
        )
        .await?;
    manager
        .create_table(
            Table::create()
                .table(ApiKeys::Table)
                .col(string(ApiKeys::Id).primary_key())
                .col(string(ApiKeys::Name))
                .col(string(ApiKeys::SecretHash))
                .col(text(ApiKeys::SecretSealed))
                .col(text(ApiKeys::Permissions))
                .col(timestamp_with_time_zone(ApiKeys::CreatedAt))
                .col(timestamp_with_time_zone_null(ApiKeys::RevokedAt))
                .to_owned(),
        )
        .await?;
    manager
        .create_index(
            Index::create()
                .name("idx_api_keys_created_at_id")
                .table(ApiKeys::Table)
                .col(ApiKeys::CreatedAt)
                .col(ApiKeys::Id)
                .to_owned(),
        )
        .await?;

    manager
        .create_table(
            Table::create()
                .table(SigningKeys::Table)
                .col(string(SigningKeys::Id).primary_key())
                .col(string_len(SigningKeys::Algorithm, 16))
                .col(text(SigningKeys::PublicKey))
                .col(timestamp_with_time_zone(SigningKeys::CreatedAt))
                .to_owned(),
        )
        .await?;
    manager
        .create_index(
            Index::create()
                .name("idx_signing_keys_created_at_id")
                .table(SigningKeys::Table)
                .col(SigningKeys::CreatedAt)
                .col(SigningKeys::Id)
                .to_owned(),
        )
        .await?;

    // The new live_streams, and sessions and playback_ids referring to it.
    manager
        .create_table(
            Table::create()
                .table(LiveStreamsNew::Table)
                .col(string(LiveStreams::Id).primary_key())
                .col(string(LiveStreams::Name))
                .col(string_uniq(LiveStreams::StreamKey))
                .col(text(LiveStreams::Ladder))
                .col(string_len(LiveStreams::Status, 16))
                .col(string_null(LiveStreams::ActiveSessionId))
                .col(timestamp_with_time_zone(LiveStreams::CreatedAt))
                .col(timestamp_with_time_zone(LiveStreams::UpdatedAt))
                .to_owned(),
        )
        .await?;
    db.execute_unprepared(
            "INSERT INTO live_streams_new \
               (id, name, stream_key, ladder, status, active_session_id, created_at, updated_at) \
             SELECT id, name, stream_key, ladder, status, active_session_id, created_at, updated_at \
             FROM live_streams",
        )
        .await?;
    manager
        .create_table(
            Table::create()
                .table(SessionsNew::Table)
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
                        .from(SessionsNew::Table, Sessions::LiveStreamId)
                        .to(LiveStreamsNew::Table, LiveStreams::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
    db.execute_unprepared(
        "INSERT INTO sessions_new \
               (id, live_stream_id, started_at, ended_at, client_addr, encoder, input, \
                bytes_received, frames_dropped) \
             SELECT id, live_stream_id, started_at, ended_at, client_addr, encoder, input, \
                bytes_received, frames_dropped \
             FROM sessions",
    )
    .await?;
    manager
        .create_table(
            Table::create()
                .table(PlaybackIds::Table)
                .col(string(PlaybackIds::Id).primary_key())
                .col(string(PlaybackIds::LiveStreamId))
                .col(string_len(PlaybackIds::Policy, 16))
                .col(timestamp_with_time_zone(PlaybackIds::CreatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_playback_ids_live_stream")
                        .from(PlaybackIds::Table, PlaybackIds::LiveStreamId)
                        .to(LiveStreamsNew::Table, LiveStreams::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
    db.execute_unprepared(
        "INSERT INTO playback_ids (id, live_stream_id, policy, created_at) \
             SELECT playback_id, id, 'public', created_at FROM live_streams",
    )
    .await?;

    // Nothing refers to the old tables any more: dropping them cascades to no row.
    manager
        .drop_table(Table::drop().table(Sessions::Table).to_owned())
        .await?;
    manager
        .drop_table(Table::drop().table(LiveStreams::Table).to_owned())
        .await?;
    manager
        .rename_table(
            Table::rename()
                .table(LiveStreamsNew::Table, LiveStreams::Table)
                .to_owned(),
        )
        .await?;
    manager
        .rename_table(
            Table::rename()
                .table(SessionsNew::Table, Sessions::Table)
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
        .create_index(
            Index::create()
                .name("idx_sessions_live_stream_id")
                .table(Sessions::Table)
                .col(Sessions::LiveStreamId)
                .to_owned(),
        )
        .await?;
    manager
        .create_index(
            Index::create()
                .name("idx_playback_ids_live_stream_id")
                .table(PlaybackIds::Table)
                .col(PlaybackIds::LiveStreamId)
                .col(PlaybackIds::CreatedAt)
                .to_owned(),
        )
        .await
}
