//! The `room_transcript_lines` table: the lines transcribed from a room session's microphones.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "room_transcript_lines")]
pub struct Model {
    /// The room session; its deletion takes its lines along.
    #[sea_orm(primary_key, auto_increment = false)]
    pub session_id: String,
    /// The line's place in its session, from 0, in the order lines were stored.
    #[sea_orm(primary_key, auto_increment = false)]
    pub line_no: i32,
    /// The session's room, kept with each line for search hits.
    pub room_id: String,
    pub participant_sid: String,
    pub participant_identity: String,
    pub participant_name: String,
    /// The microphone track the line was heard on.
    pub track_sid: String,
    /// Milliseconds from the session's start.
    pub start_ms: i64,
    pub end_ms: i64,
    pub text: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
