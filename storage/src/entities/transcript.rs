//! The `transcripts` table: an asset's generated subtitles tracks.

use sea_orm::entity::prelude::*;

use crate::model::TranscriptStatus;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "transcripts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// The asset transcribed; its deletion takes the transcript along.
    pub asset_id: String,
    /// Unique per asset.
    pub language_code: String,
    pub name: String,
    pub status: TranscriptStatus,
    pub error: Option<String>,
    /// Percent of the speech recognised while preparing.
    pub progress: i16,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
