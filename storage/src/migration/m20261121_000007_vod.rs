//! Video on demand: `assets` (an uploaded or imported video and what processing made of it),
//! `uploads` (direct uploads, resumable, that become assets), and `playback_ids` rebuilt so a
//! playback id belongs to either a live stream or an asset.
//!
//! - `assets`: status (`preparing`, `ready`, `errored`), progress, the input (JSON: an upload
//!   or a URL), the settings it was created with (JSON), and what processing found and made
//!   (duration, tracks, source metadata, renditions; JSON kept as text).
//! - `uploads`: the declared length and the offset received so far, the upload URL's token,
//!   the settings its asset will get, expiry, and the asset it became.
//! - `playback_ids`: `live_stream_id` becomes nullable and `asset_id` is added; each row names
//!   exactly one owner (a CHECK constraint), and goes with it (cascading foreign keys). SQLite
//!   cannot relax a NOT NULL column in place, so the table is rebuilt and its rows copied.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, big_integer_null, boolean, integer, string, string_len, string_null, text,
    text_null, timestamp_with_time_zone,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Assets {
    Table,
    Id,
    Status,
    Error,
    Progress,
    Input,
    Settings,
    DurationMs,
    Tracks,
    SourceMetadata,
    Renditions,
    Playable,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Uploads {
    Table,
    Id,
    Status,
    Settings,
    MaxSize,
    Length,
    Offset,
    Metadata,
    AssetId,
    Error,
    Token,
    ExpiresAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum PlaybackIds {
    Table,
    Id,
    LiveStreamId,
    AssetId,
    Policy,
    CreatedAt,
}

#[derive(DeriveIden)]
enum PlaybackIdsNew {
    Table,
}

#[derive(DeriveIden)]
enum LiveStreams {
    Table,
    Id,
}

// No `down`: an asset's playback ids have no place in the old `playback_ids`.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Assets::Table)
                    .col(string(Assets::Id).primary_key())
                    .col(string_len(Assets::Status, 16))
                    .col(text_null(Assets::Error))
                    .col(integer(Assets::Progress))
                    .col(text(Assets::Input))
                    .col(text(Assets::Settings))
                    .col(big_integer_null(Assets::DurationMs))
                    .col(text(Assets::Tracks))
                    .col(text(Assets::SourceMetadata))
                    .col(text(Assets::Renditions))
                    .col(boolean(Assets::Playable))
                    .col(timestamp_with_time_zone(Assets::CreatedAt))
                    .col(timestamp_with_time_zone(Assets::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_assets_created_at_id")
                    .table(Assets::Table)
                    .col(Assets::CreatedAt)
                    .col(Assets::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Uploads::Table)
                    .col(string(Uploads::Id).primary_key())
                    .col(string_len(Uploads::Status, 16))
                    .col(text(Uploads::Settings))
                    .col(big_integer(Uploads::MaxSize))
                    .col(big_integer_null(Uploads::Length))
                    .col(big_integer(Uploads::Offset))
                    .col(text_null(Uploads::Metadata))
                    .col(string_null(Uploads::AssetId))
                    .col(text_null(Uploads::Error))
                    .col(string(Uploads::Token))
                    .col(timestamp_with_time_zone(Uploads::ExpiresAt))
                    .col(timestamp_with_time_zone(Uploads::CreatedAt))
                    .col(timestamp_with_time_zone(Uploads::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_uploads_created_at_id")
                    .table(Uploads::Table)
                    .col(Uploads::CreatedAt)
                    .col(Uploads::Id)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(PlaybackIdsNew::Table)
                    .col(string(PlaybackIds::Id).primary_key())
                    .col(string_null(PlaybackIds::LiveStreamId))
                    .col(string_null(PlaybackIds::AssetId))
                    .col(string_len(PlaybackIds::Policy, 16))
                    .col(timestamp_with_time_zone(PlaybackIds::CreatedAt))
                    .check(Expr::cust("(live_stream_id IS NULL) <> (asset_id IS NULL)"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_playback_id_owner_live_stream")
                            .from(PlaybackIdsNew::Table, PlaybackIds::LiveStreamId)
                            .to(LiveStreams::Table, LiveStreams::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_playback_id_owner_asset")
                            .from(PlaybackIdsNew::Table, PlaybackIds::AssetId)
                            .to(Assets::Table, Assets::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        db.execute_unprepared(
            "INSERT INTO playback_ids_new (id, live_stream_id, asset_id, policy, created_at) \
             SELECT id, live_stream_id, NULL, policy, created_at FROM playback_ids",
        )
        .await?;
        manager
            .drop_table(Table::drop().table(PlaybackIds::Table).to_owned())
            .await?;
        manager
            .rename_table(
                Table::rename()
                    .table(PlaybackIdsNew::Table, PlaybackIds::Table)
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
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_playback_ids_asset_id")
                    .table(PlaybackIds::Table)
                    .col(PlaybackIds::AssetId)
                    .col(PlaybackIds::CreatedAt)
                    .to_owned(),
            )
            .await
    }
}
