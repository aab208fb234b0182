//! What the REST API asks of the rooms running in this process: who is in a room, removing a
//! participant, muting a track, sending data, closing a room. [`RoomControl`] is the seam
//! between `sluice-api` and the room engine, so the API knows nothing of WebRTC.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::service::{Admission, JoinOptions, Refusal};

/// A participant as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParticipantView {
    /// LiveKit's participant sid, `PA_…`.
    pub sid: String,
    pub identity: String,
    pub name: String,
    pub metadata: String,
    pub joined_at: DateTime<Utc>,
    /// `joining` (signalled, media not yet connected) or `active`.
    pub state: &'static str,
    pub hidden: bool,
    pub tracks: Vec<TrackView>,
}

/// A published track as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrackView {
    /// LiveKit's track sid, `TR_…`.
    pub sid: String,
    /// `audio` or `video`.
    pub kind: &'static str,
    /// `camera`, `microphone`, `screen_share`, `screen_share_audio` or `unknown`.
    pub source: &'static str,
    pub name: String,
    pub muted: bool,
    /// The codec's MIME type once media flows (`video/VP8`, `audio/opus`…).
    pub mime_type: String,
    pub width: u32,
    pub height: u32,
    /// Whether the publisher sends simulcast layers.
    pub simulcast: bool,
}

/// A data message sent by the server to a room's participants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataMessage {
    pub payload: Vec<u8>,
    pub topic: Option<String>,
    /// Identities to send to; empty sends to everyone.
    pub destination_identities: Vec<String>,
    /// Reliable (ordered, retransmitted) or lossy delivery.
    pub reliable: bool,
}

/// Why a control request failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ControlError {
    #[error("the room is not running")]
    RoomNotRunning,
    #[error("no participant {0} in the room")]
    NoParticipant(String),
    #[error("participant has no track {0}")]
    NoTrack(String),
    #[error("the room engine stopped")]
    Stopped,
}

/// The rooms running in this process, by room name.
#[async_trait]
pub trait RoomControl: Send + Sync {
    /// Checks a connecting client's access token and finds (or creates) its room; the refusal
    /// carries the HTTP status and message the SDK shows.
    async fn admit(&self, access_token: &str, options: JoinOptions) -> Result<Admission, Refusal>;
    /// Runs an admitted client's signal connection: binary WebSocket messages in and out,
    /// until it leaves or is removed.
    async fn attach(
        &self,
        admission: Admission,
        incoming: mpsc::Receiver<Vec<u8>>,
        outgoing: mpsc::Sender<Vec<u8>>,
    );
    /// The participants of a running room (hidden ones included); empty when it is not running.
    async fn participants(&self, room: &str) -> Result<Vec<ParticipantView>, ControlError>;
    /// Disconnects a participant (told with a leave message first).
    async fn remove_participant(&self, room: &str, identity: &str) -> Result<(), ControlError>;
    /// Mutes or unmutes a participant's published track; the participant's SDK is told.
    async fn mute_track(
        &self,
        room: &str,
        identity: &str,
        track_sid: &str,
        muted: bool,
    ) -> Result<(), ControlError>;
    /// Sends a data message to some or all of a room's participants.
    async fn send_data(&self, room: &str, message: DataMessage) -> Result<(), ControlError>;
    /// Ends a running room: everyone is told and disconnected, its session ends. A room that
    /// is not running is left alone.
    async fn close_room(&self, room: &str) -> Result<(), ControlError>;
}
