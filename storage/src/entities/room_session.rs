//! The `room_sessions` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "room_sessions")]
pub struct Model {
    /// `rsess_…`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub room_id: String,
    /// Base URL of the node hosting the session.
    pub node_url: String,
    pub started_at: DateTimeUtc,
    /// `None` while the session runs.
    pub ended_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
