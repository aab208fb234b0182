//! The `rooms` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "rooms")]
pub struct Model {
    /// `room_…`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// What clients join by; unique.
    pub name: String,
    /// Most participants at once; 0 for no cap.
    pub max_participants: i32,
    /// Seconds the room stays open once its last participant left.
    pub empty_timeout_s: i32,
    pub metadata: String,
    /// JSON text of the transcription setting; `NULL` for off.
    pub transcription: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
