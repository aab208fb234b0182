//! The `uploads` table.

use sea_orm::entity::prelude::*;

use crate::model::UploadStatus;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "uploads")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub status: UploadStatus,
    /// JSON text: the settings of the asset it will become.
    pub settings: String,
    pub max_size: i64,
    pub length: Option<i64>,
    pub offset: i64,
    pub metadata: Option<String>,
    pub asset_id: Option<String>,
    pub error: Option<String>,
    pub token: String,
    pub expires_at: DateTimeUtc,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
