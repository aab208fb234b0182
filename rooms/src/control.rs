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

/// How a room's composite places its participants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompositeLayout {
    /// Equal tiles that re-flow as people join and leave; a screen share takes the big tile.
    #[default]
    Grid,
    /// The active speaker (or a screen share) large, the others in a strip.
    Speaker,
    /// The active speaker (or a screen share) alone.
    Single,
}

/// The size of a room's composite canvas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
pub enum CompositeResolution {
    #[default]
    #[serde(rename = "1080p")]
    P1080,
    #[serde(rename = "720p")]
    P720,
}

impl CompositeResolution {
    /// Width and height of the canvas.
    pub fn size(self) -> (u32, u32) {
        match self {
            CompositeResolution::P1080 => (1920, 1080),
            CompositeResolution::P720 => (1280, 720),
        }
    }
}

/// A composite to run: the room it composes and the live stream it publishes to (whose
/// ladder, latency mode, recording and simulcast targets apply as to any publisher).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompositeSpec {
    /// The `room_composites` row.
    pub composite_id: String,
    pub room_id: String,
    pub room_name: String,
    pub live_stream_id: String,
    pub stream_key: String,
    pub layout: CompositeLayout,
    pub resolution: CompositeResolution,
    /// Its live stream has live captions: the composite sends the lines its room's
    /// transcription recognises (each led by the speaker's name) rather than having its mix
    /// recognised again.
    pub captions: bool,
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
    #[error("the room already has a composite running")]
    CompositeRunning,
    #[error("the room has no composite running")]
    NoComposite,
    #[error("room composites are not available on this server: {0}")]
    CompositeUnavailable(String),
    #[error("this server cannot transcribe rooms: {0}")]
    TranscriptionUnavailable(String),
    #[error("the room is not being transcribed")]
    NoTranscription,
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
    /// Starts a room's composite: it waits for the first participant, then publishes to its
    /// live stream until stopped or until the room ends. It marks its `room_composites` row
    /// active and, when it stops for any reason, stopped (publishing `room.composite.stopped`).
    async fn start_composite(&self, spec: CompositeSpec) -> Result<(), ControlError>;
    /// Changes the layout of a running composite (by room name).
    async fn set_composite_layout(
        &self,
        room: &str,
        layout: CompositeLayout,
    ) -> Result<(), ControlError>;
    /// Stops a running composite (by room name); its session ends and its recording is sealed.
    async fn stop_composite(&self, room: &str) -> Result<(), ControlError>;
    /// Starts transcribing the microphones of a room (its id and name) in `language`, when
    /// its session runs on this node (then `true`); a room not running here is left alone
    /// (`false`), and its next session is transcribed if the room's setting says so. Already
    /// transcribed: left as it is.
    async fn start_transcription(
        &self,
        room_id: &str,
        room_name: &str,
        language: &str,
    ) -> Result<bool, ControlError>;
    /// Stops transcribing a room (by name); its last lines are still sent and stored.
    async fn stop_transcription(&self, room: &str) -> Result<(), ControlError>;
}
