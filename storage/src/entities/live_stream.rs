//! The `live_streams` table.

use sea_orm::entity::prelude::*;

use crate::model::{DvrMode, LatencyMode, LiveStreamStatus};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "live_streams")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub name: String,
    #[sea_orm(unique)]
    pub stream_key: String,
    /// JSON text, kept as text so SQLite and Postgres store it alike.
    pub ladder: String,
    pub status: LiveStreamStatus,
    pub active_session_id: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub disabled: bool,
    pub latency_mode: LatencyMode,
    pub reconnect_window_s: i32,
    pub record: bool,
    /// `window` or `event`.
    pub dvr_mode: DvrMode,
    /// Length of the sliding window in seconds; `NULL` keeps the server's default.
    pub dvr_window_s: Option<i32>,
    /// JSON text of the generated subtitles each recording gets; `NULL` for none.
    pub generated_subtitles: Option<String>,
    /// JSON text of the live captions setting; `NULL` for none.
    pub captions: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
