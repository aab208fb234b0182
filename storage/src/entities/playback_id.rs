//! The `playback_ids` table.

use sea_orm::entity::prelude::*;

use crate::model::PlaybackPolicy;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "playback_ids")]
pub struct Model {
    /// The public id in playback URLs.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Exactly one of `live_stream_id` and `asset_id` is set.
    pub live_stream_id: Option<String>,
    pub asset_id: Option<String>,
    pub policy: PlaybackPolicy,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
