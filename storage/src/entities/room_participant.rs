//! The `room_participants` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "room_participants")]
pub struct Model {
    /// The sid the room engine gave the participant (`PA_…`).
    #[sea_orm(primary_key, auto_increment = false)]
    pub sid: String,
    pub session_id: String,
    pub room_id: String,
    pub identity: String,
    pub name: String,
    pub joined_at: DateTimeUtc,
    /// `None` while the participant is in the room.
    pub left_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
