//! The `simulcast_targets` table.

use sea_orm::entity::prelude::*;

use crate::model::SimulcastTargetStatus;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "simulcast_targets")]
pub struct Model {
    /// `st_…`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub live_stream_id: String,
    /// `rtmp://host[:port]/app` or `rtmps://…`, without the stream key.
    pub url: String,
    /// The target's stream key sealed under the master key (`SecretBox`).
    pub stream_key_sealed: String,
    /// `source` or the name of a rung of the stream's ladder.
    pub rendition: String,
    pub passthrough: bool,
    pub status: SimulcastTargetStatus,
    pub last_error: Option<String>,
    pub bytes_sent: i64,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
