//! The `room_composites` table.

use sea_orm::entity::prelude::*;

use crate::model::{
    LatencyMode, RoomCompositeLayout, RoomCompositeResolution, RoomCompositeStatus,
};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "room_composites")]
pub struct Model {
    /// `rcmp_…`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub room_id: String,
    /// The live stream it publishes to (not a foreign key: the history outlives the stream).
    pub live_stream_id: String,
    pub layout: RoomCompositeLayout,
    pub resolution: RoomCompositeResolution,
    pub latency_mode: LatencyMode,
    /// `RoomCompositeOutputs` as JSON.
    pub outputs: String,
    pub status: RoomCompositeStatus,
    pub created_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub stopped_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
