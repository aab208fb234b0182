//! Recordings of live sessions and the DVR setting of live streams.
//!
//! - `live_streams`: `dvr_mode` (`window` or `event`) and `dvr_window_s` (the sliding window's
//!   length in seconds; `NULL` keeps the server's default window).
//! - `sessions`: `asset_id`, the asset a recorded session becomes.
//! - `assets`: `live_stream_id` and `session_id`, where a recorded asset came from (indexed by
//!   live stream for `GET /v1/assets?live_stream_id=`).
//!
//! Only `ADD COLUMN` with defaults or `NULL`, so existing rows stay valid on SQLite and
//! Postgres alike.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{integer_null, string_len, string_null};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum LiveStreams {
    Table,
    DvrMode,
    DvrWindowS,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    AssetId,
}

#[derive(DeriveIden)]
enum Assets {
    Table,
    LiveStreamId,
    SessionId,
}

const ASSETS_LIVE_STREAM_INDEX: &str = "idx_assets_live_stream_id";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite takes one column per ALTER TABLE.
        let columns: [(DynIden, ColumnDef); 5] = [
            (
                LiveStreams::Table.into_iden(),
                string_len(LiveStreams::DvrMode, 16)
                    .default("window")
                    .to_owned(),
            ),
            (
                LiveStreams::Table.into_iden(),
                integer_null(LiveStreams::DvrWindowS).to_owned(),
            ),
            (
                Sessions::Table.into_iden(),
                string_null(Sessions::AssetId).to_owned(),
            ),
            (
                Assets::Table.into_iden(),
                string_null(Assets::LiveStreamId).to_owned(),
            ),
            (
                Assets::Table.into_iden(),
                string_null(Assets::SessionId).to_owned(),
            ),
        ];
        for (table, mut column) in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name(ASSETS_LIVE_STREAM_INDEX)
                    .table(Assets::Table)
                    .col(Assets::LiveStreamId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(ASSETS_LIVE_STREAM_INDEX)
                    .table(Assets::Table)
                    .to_owned(),
            )
            .await?;
        let columns: [(DynIden, DynIden); 5] = [
            (
                LiveStreams::Table.into_iden(),
                LiveStreams::DvrMode.into_iden(),
            ),
            (
                LiveStreams::Table.into_iden(),
                LiveStreams::DvrWindowS.into_iden(),
            ),
            (Sessions::Table.into_iden(), Sessions::AssetId.into_iden()),
            (Assets::Table.into_iden(), Assets::LiveStreamId.into_iden()),
            (Assets::Table.into_iden(), Assets::SessionId.into_iden()),
        ];
        for (table, column) in columns {
            manager
                .alter_table(Table::alter().table(table).drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}
