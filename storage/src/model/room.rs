//! Real-time rooms (LiveKit-compatible): the rooms clients join by name, each run of a room
//! (a session, hosted by one node), the participants of each run, and whether the room's
//! microphones are transcribed live (the lines themselves are [`super::RoomTranscriptLine`]s).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{RoomId, RoomSessionId};

/// Participant cap of a room created without one.
pub const DEFAULT_ROOM_MAX_PARTICIPANTS: u32 = 100;
/// Seconds a room created without a setting stays open once its last participant left.
pub const DEFAULT_ROOM_EMPTY_TIMEOUT_S: u32 = 300;

/// A room as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    /// `room_…`.
    pub id: RoomId,
    /// What clients join by (a token's `video.room`); unique.
    pub name: String,
    /// Most participants at once; 0 for no cap.
    pub max_participants: u32,
    /// Seconds the room stays open once its last participant left.
    pub empty_timeout_s: u32,
    /// Free-form text the room's participants are given.
    pub metadata: String,
    /// Live transcription of its participants' microphones; `None`: off.
    pub transcription: Option<RoomTranscription>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A room to create; `None` takes the default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewRoom {
    pub name: String,
    /// Default [`DEFAULT_ROOM_MAX_PARTICIPANTS`].
    pub max_participants: Option<u32>,
    /// Default [`DEFAULT_ROOM_EMPTY_TIMEOUT_S`].
    pub empty_timeout_s: Option<u32>,
    /// Default empty.
    pub metadata: Option<String>,
    /// Default off.
    pub transcription: Option<RoomTranscription>,
}

impl NewRoom {
    /// A room of this name with every default.
    pub fn named(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            ..Self::default()
        }
    }
}

/// A room's live transcription setting: each participant's microphone is transcribed while
/// the room runs, and the complete lines are kept with the room session (stored as JSON text on
/// the room).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomTranscription {
    /// The language spoken (a language tag, such as `en`).
    pub language: String,
}

/// One run of a room on a node, from its start to its close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomSession {
    /// `rsess_…`.
    pub id: RoomSessionId,
    pub room_id: RoomId,
    /// Base URL of the node hosting it (`http://10.0.0.5:8080`).
    pub node_url: String,
    pub started_at: DateTime<Utc>,
    /// `None` while it runs.
    pub ended_at: Option<DateTime<Utc>>,
    /// Everyone who joined it, in the order they joined, those who left included.
    pub participants: Vec<RoomSessionParticipant>,
}

impl RoomSession {
    /// How many participants are in the session now (joined and not left).
    pub fn participants_present(&self) -> usize {
        self.participants
            .iter()
            .filter(|participant| participant.left_at.is_none())
            .count()
    }
}

/// A participant of a room session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomSessionParticipant {
    /// The sid the room engine gave it (`PA_…`).
    pub sid: String,
    pub identity: String,
    pub name: String,
    pub joined_at: DateTime<Utc>,
    /// `None` while in the room.
    pub left_at: Option<DateTime<Utc>>,
}

/// One page of [`Room`]s in creation order.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomPage {
    pub items: Vec<Room>,
    /// Pass back as `after` to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// One page of [`RoomSession`]s, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomSessionPage {
    pub items: Vec<RoomSession>,
    /// Pass back as `after` to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}
