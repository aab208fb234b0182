//! Transcripts: the subtitles tracks generated from an asset's speech (one per language asked
//! for in [`super::AssetSettings::generated_subtitles`]), their timed lines, and the hits of a
//! full-text search over the lines of every ready transcript.

use chrono::{DateTime, Utc};
use sea_orm::entity::prelude::*;
use serde::Serialize;

use crate::ids::{AssetId, TrackId};

/// The kind of job that transcribes an asset's generated subtitles tracks (its subject is the
/// asset id). Queued when an asset with a preparing transcript becomes ready.
pub const TRANSCRIBE_JOB_KIND: &str = "asset.transcribe";

/// Most lines one transcript keeps, an asset's or a room session's; the lines past it are
/// dropped (with a warning).
pub const MAX_TRANSCRIPT_LINES: usize = 100_000;

/// Where a transcript stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum TranscriptStatus {
    /// Asked for; waiting for its asset to be ready and for the transcription job.
    #[sea_orm(string_value = "preparing")]
    Preparing,
    /// Its lines are stored and searchable.
    #[sea_orm(string_value = "ready")]
    Ready,
    /// Transcription failed for good; `error` says why.
    #[sea_orm(string_value = "errored")]
    Errored,
}

/// A generated subtitles track of an asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transcript {
    /// `track_` followed by random characters.
    pub id: TrackId,
    pub asset_id: AssetId,
    /// The spoken language transcribed, such as `en`; one transcript per language and asset.
    pub language_code: String,
    /// The track's name, shown to viewers.
    pub name: String,
    pub status: TranscriptStatus,
    /// Why transcription failed, for a person.
    pub error: Option<String>,
    /// Percent of the speech recognised, 0 to 100 (100 once ready).
    pub progress: u8,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One timed line (a cue) of a transcript.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TranscriptLine {
    /// When the line starts, in milliseconds from the asset's start.
    pub start_ms: i64,
    /// When the line ends, in milliseconds from the asset's start.
    pub end_ms: i64,
    /// What is said.
    pub text: String,
}

/// A line of a ready transcript that a full-text search found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SearchHit {
    pub asset_id: AssetId,
    pub track_id: TrackId,
    /// The language of the transcript the line is in.
    pub language_code: String,
    /// When the line starts, in milliseconds from the asset's start.
    pub start_ms: i64,
    /// When the line ends, in milliseconds from the asset's start.
    pub end_ms: i64,
    /// The whole line the words were found in.
    pub text: String,
}
