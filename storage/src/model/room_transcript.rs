//! Room transcripts: the lines transcribed from each participant's microphone while a room
//! session runs (when the room has [`super::RoomTranscription`] on), appended to the session's
//! transcript as they come, and the hits of a full-text search over every session's lines.
//! A session keeps at most [`super::MAX_TRANSCRIPT_LINES`] lines.

use serde::Serialize;

use crate::ids::{RoomId, RoomSessionId};

/// A complete line heard on a participant's microphone, to append to its session's
/// transcript.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewRoomTranscriptLine {
    /// The sid the room engine gave the speaker (`PA_…`).
    pub participant_sid: String,
    pub participant_identity: String,
    pub participant_name: String,
    /// The sid of the microphone track the line was heard on (`TR_…`).
    pub track_sid: String,
    /// When the line starts, in milliseconds from the room session's start.
    pub start_ms: i64,
    /// When the line ends, in milliseconds from the room session's start.
    pub end_ms: i64,
    /// What is said.
    pub text: String,
}

/// A stored line of a room session's transcript.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoomTranscriptLine {
    /// The line's place in its session, from 0, in the order lines were appended.
    pub line_no: u32,
    /// The sid the room engine gave the speaker (`PA_…`).
    pub participant_sid: String,
    pub participant_identity: String,
    pub participant_name: String,
    /// The sid of the microphone track the line was heard on (`TR_…`).
    pub track_sid: String,
    /// When the line starts, in milliseconds from the room session's start.
    pub start_ms: i64,
    /// When the line ends, in milliseconds from the room session's start.
    pub end_ms: i64,
    /// What is said.
    pub text: String,
}

/// A line of a room session's transcript that a full-text search found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoomSearchHit {
    pub room_id: RoomId,
    pub session_id: RoomSessionId,
    /// Who said it.
    pub participant_identity: String,
    pub participant_name: String,
    /// When the line starts, in milliseconds from the room session's start.
    pub start_ms: i64,
    /// When the line ends, in milliseconds from the room session's start.
    pub end_ms: i64,
    /// The whole line the words were found in.
    pub text: String,
}
