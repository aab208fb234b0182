//! The `transcript_lines` table: the timed lines of ready transcripts.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "transcript_lines")]
pub struct Model {
    /// The transcript; its deletion takes its lines along.
    #[sea_orm(primary_key, auto_increment = false)]
    pub track_id: String,
    /// The line's place in its transcript, from 0, in time order.
    #[sea_orm(primary_key, auto_increment = false)]
    pub line_no: i32,
    /// The transcript's asset, kept with each line for search hits.
    pub asset_id: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub text: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
