//! The `sessions` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sessions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub live_stream_id: String,
    pub started_at: DateTimeUtc,
    pub ended_at: Option<DateTimeUtc>,
    pub client_addr: String,
    pub encoder: Option<String>,
    /// JSON text describing the input, once the first media arrived.
    pub input: Option<String>,
    pub bytes_received: i64,
    pub frames_dropped: i64,
    /// `rtmp` today; WHIP publishers will say `whip`.
    pub protocol: String,
    /// The RTMP application the publisher connected to.
    pub app: Option<String>,
    /// The asset a recorded session becomes.
    pub asset_id: Option<String>,
    /// Internal base URL of the node serving this low-latency session's parts.
    pub packager_url: Option<String>,
    /// JSON text of the session's health (`StreamHealth`) as last judged.
    pub health: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
