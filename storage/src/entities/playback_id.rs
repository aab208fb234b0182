//! The `playback_ids` table.

use sea_orm::entity::prelude::*;

use crate::model::PlaybackPolicy;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "playback_ids")]
pub struct Model {
    /// The public id in playback URLs.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub live_stream_id: String,
    pub policy: PlaybackPolicy,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
