//! Live-stream lifecycle settings and richer sessions.
//!
//! - `live_streams`: `disabled` (refuses publishes), `latency_mode`, `reconnect_window_s` and
//!   `record`, which the API manages and later features act on.
//! - `sessions`: `protocol` (how the publisher connected) and `app` (the RTMP application it
//!   named), next to the encoder identity already kept in `encoder`.
//!
//! Only `ADD COLUMN` with defaults, so existing rows stay valid on SQLite and Postgres alike.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{boolean, integer, string_len, string_null};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum LiveStreams {
    Table,
    Disabled,
    LatencyMode,
    ReconnectWindowS,
    Record,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Protocol,
    App,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite takes one column per ALTER TABLE.
        let stream_columns = [
            boolean(LiveStreams::Disabled).default(false).to_owned(),
            string_len(LiveStreams::LatencyMode, 16)
                .default("standard")
                .to_owned(),
            integer(LiveStreams::ReconnectWindowS)
                .default(60)
                .to_owned(),
            boolean(LiveStreams::Record).default(false).to_owned(),
        ];
        for mut column in stream_columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(LiveStreams::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        let session_columns = [
            string_len(Sessions::Protocol, 16)
                .default("rtmp")
                .to_owned(),
            string_null(Sessions::App).to_owned(),
        ];
        for mut column in session_columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(Sessions::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            LiveStreams::Disabled,
            LiveStreams::LatencyMode,
            LiveStreams::ReconnectWindowS,
            LiveStreams::Record,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(LiveStreams::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        for column in [Sessions::Protocol, Sessions::App] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Sessions::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
