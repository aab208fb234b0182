//! The `assets` table.

use sea_orm::entity::prelude::*;

use crate::model::AssetStatus;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "assets")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub status: AssetStatus,
    pub error: Option<String>,
    /// Percent done, 0..=100.
    pub progress: i32,
    /// JSON text: where the file came from.
    pub input: String,
    /// JSON text: the settings it was created with.
    pub settings: String,
    pub duration_ms: Option<i64>,
    /// JSON text (array).
    pub tracks: String,
    /// JSON text (object).
    pub source_metadata: String,
    /// JSON text (array).
    pub renditions: String,
    pub playable: bool,
    /// The live stream a recorded asset came from.
    pub live_stream_id: Option<String>,
    /// The session a recorded asset came from.
    pub session_id: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
