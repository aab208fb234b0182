//! The domain types the rest of Sluice sees: plain structs converted from the database rows,
//! so callers never depend on sea-orm models.

use chrono::{DateTime, Utc};
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};
use sluice_media::Ladder;

use crate::ids::{AssetId, LiveStreamId, SessionId};

mod asset;
mod event;
mod health;
mod job;
mod room;
mod room_composite;
mod room_transcript;
mod simulcast_target;
mod transcript;
mod webhook;
pub use asset::{
    Asset, AssetInput, AssetPage, AssetSettings, AssetStatus, GeneratedSubtitles, LadderCodec,
    NewAsset, NewUpload, Upload, UploadPage, UploadStatus, ASSET_JOB_KIND,
};
pub use event::{Event, EventFilter, EventObject, EventPage, EventType, NewEvent};
pub use health::{HealthSample, HealthWarning, HealthWarningCode, StreamHealth};
pub use job::{Job, JobStatus, NewJob, DEFAULT_JOB_MAX_ATTEMPTS};
pub use room::{
    NewRoom, Room, RoomPage, RoomSession, RoomSessionPage, RoomSessionParticipant,
    RoomTranscription, DEFAULT_ROOM_EMPTY_TIMEOUT_S, DEFAULT_ROOM_MAX_PARTICIPANTS,
};
pub use room_composite::{
    NewRoomComposite, RoomComposite, RoomCompositeLayout, RoomCompositeOutputs, RoomCompositePage,
    RoomCompositeResolution, RoomCompositeStatus, RoomCompositeTarget,
};
pub use room_transcript::{NewRoomTranscriptLine, RoomSearchHit, RoomTranscriptLine};
pub use simulcast_target::{
    NewSimulcastTarget, SimulcastTarget, SimulcastTargetStatus, SOURCE_RENDITION,
};
pub use transcript::{
    SearchHit, Transcript, TranscriptLine, TranscriptStatus, MAX_TRANSCRIPT_LINES,
    TRANSCRIBE_JOB_KIND,
};
pub use webhook::{
    AttemptOutcome, ClaimedDelivery, DeliveryStatus, NewWebhookEndpoint, WebhookAttempt,
    WebhookDelivery, WebhookDeliveryPage, WebhookEndpoint, WebhookEndpointPage,
    WebhookEndpointUpdate,
};

/// An API key as shown to its owner; the secret is returned only once, at creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    /// What requests made with this key may do.
    pub permissions: Vec<Permission>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// One page of [`ApiKey`]s in creation order.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKeyPage {
    pub items: Vec<ApiKey>,
    /// Pass back as `after` to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Something an API key may be allowed to do. `admin` grants every other permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Permission {
    #[serde(rename = "admin")]
    Admin,
    #[serde(rename = "live:read")]
    LiveRead,
    #[serde(rename = "live:write")]
    LiveWrite,
    #[serde(rename = "assets:read")]
    AssetsRead,
    #[serde(rename = "assets:write")]
    AssetsWrite,
    #[serde(rename = "events:read")]
    EventsRead,
    #[serde(rename = "rooms:read")]
    RoomsRead,
    #[serde(rename = "rooms:write")]
    RoomsWrite,
}

impl Permission {
    /// Every permission, in the order documentation lists them.
    pub const ALL: [Permission; 8] = [
        Self::Admin,
        Self::LiveRead,
        Self::LiveWrite,
        Self::AssetsRead,
        Self::AssetsWrite,
        Self::EventsRead,
        Self::RoomsRead,
        Self::RoomsWrite,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::LiveRead => "live:read",
            Self::LiveWrite => "live:write",
            Self::AssetsRead => "assets:read",
            Self::AssetsWrite => "assets:write",
            Self::EventsRead => "events:read",
            Self::RoomsRead => "rooms:read",
            Self::RoomsWrite => "rooms:write",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }

    /// Parses a non-empty list of names, or says what is wrong with it.
    pub fn parse_list<S: AsRef<str>>(names: &[S]) -> Result<Vec<Self>, String> {
        if names.is_empty() {
            return Err("must name at least one permission".to_owned());
        }
        let mut permissions = names
            .iter()
            .map(|name| {
                let name = name.as_ref();
                Self::parse(name).ok_or_else(|| {
                    format!(
                        "unknown permission {name:?}; known: {}",
                        Self::ALL.map(Self::as_str).join(", ")
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        permissions.sort();
        permissions.dedup();
        Ok(permissions)
    }

    /// Whether holding `held` allows what `self` names (`admin` allows everything).
    pub fn is_granted_by(self, held: &[Permission]) -> bool {
        held.contains(&Self::Admin) || held.contains(&self)
    }
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The algorithm of a playback signing key.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum SigningAlgorithm {
    /// ECDSA on P-256 with SHA-256.
    #[sea_orm(string_value = "ES256")]
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    #[sea_orm(string_value = "RS256")]
    RS256,
}

/// A key that signs playback tokens. The server keeps only its public half.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKey {
    /// `sk_` followed by random characters; the `kid` of the tokens it signs.
    pub id: String,
    pub algorithm: SigningAlgorithm,
    /// SubjectPublicKeyInfo, PEM-encoded.
    pub public_key_pem: String,
    pub created_at: DateTime<Utc>,
}

/// One page of [`SigningKey`]s in creation order.
#[derive(Debug, Clone, PartialEq)]
pub struct SigningKeyPage {
    pub items: Vec<SigningKey>,
    /// Pass back as `after` to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Who may play a playback id: anyone, or holders of a token signed by a signing key.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum PlaybackPolicy {
    #[sea_orm(string_value = "public")]
    Public,
    #[sea_orm(string_value = "signed")]
    Signed,
}

/// A public id under which viewers play a live stream or an asset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaybackId {
    /// The id in playback URLs (`/hls/{id}/…`).
    pub id: String,
    /// The owner: exactly one of `live_stream_id` and `asset_id` is set.
    pub live_stream_id: Option<LiveStreamId>,
    pub asset_id: Option<AssetId>,
    pub policy: PlaybackPolicy,
    pub created_at: DateTime<Utc>,
}

/// Whether a publisher is currently sending to a live stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum LiveStreamStatus {
    #[sea_orm(string_value = "idle")]
    Idle,
    #[sea_orm(string_value = "active")]
    Active,
}

/// How far behind real time players are kept, from a session's start to its end.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum LatencyMode {
    /// Regular HLS with segments of `[live] segment_seconds` (2 s by default).
    #[sea_orm(string_value = "standard")]
    Standard,
    /// Regular HLS with 1 s segments: a player starts about three seconds from the live edge.
    #[sea_orm(string_value = "reduced")]
    Reduced,
    /// Low-latency HLS; until its partial segments are served, packaged as [`Self::Reduced`].
    #[sea_orm(string_value = "low")]
    Low,
}

impl LatencyMode {
    /// The reconnect window of a stream created in this mode without one: a standard stream
    /// keeps a dropped encoder's session for [`DEFAULT_RECONNECT_WINDOW_S`]; a reduced or low
    /// latency one ends it at once, since its viewers would otherwise sit on a stalled live
    /// edge (Mux's defaults too).
    pub fn default_reconnect_window_s(self) -> u32 {
        match self {
            LatencyMode::Standard => DEFAULT_RECONNECT_WINDOW_S,
            LatencyMode::Reduced | LatencyMode::Low => 0,
        }
    }
}

/// Longest reconnect window a live stream may ask for, in seconds.
pub const MAX_RECONNECT_WINDOW_S: u32 = 1800;
/// Reconnect window of a standard-latency stream created without one, in seconds.
pub const DEFAULT_RECONNECT_WINDOW_S: u32 = 60;

/// Shortest DVR window a live stream may ask for, in seconds.
pub const MIN_DVR_WINDOW_S: u32 = 10;
/// Longest DVR window a live stream may ask for, in seconds (12 hours).
pub const MAX_DVR_WINDOW_S: u32 = 43_200;

/// What the live media playlists keep.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum DvrMode {
    /// A sliding window of recent segments.
    #[sea_orm(string_value = "window")]
    Window,
    /// The whole session (an EXT-X-PLAYLIST-TYPE:EVENT playlist that never drops a segment).
    #[sea_orm(string_value = "event")]
    Event,
}

/// A live stream's DVR setting: how much of the session players can seek back into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Dvr {
    pub mode: DvrMode,
    /// Length of the sliding window in seconds (`window` mode); `None` keeps the server's
    /// default window (`[live] playlist_window` segments).
    pub window_s: Option<u32>,
}

impl Default for Dvr {
    fn default() -> Self {
        Dvr {
            mode: DvrMode::Window,
            window_s: None,
        }
    }
}

/// Settings a live stream is created with, besides its name and ladder.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveStreamSettings {
    pub latency_mode: LatencyMode,
    pub reconnect_window_s: u32,
    pub record: bool,
    pub dvr: Dvr,
    /// The generated subtitles each recording gets, already validated.
    pub generated_subtitles: Vec<GeneratedSubtitles>,
    /// Live captions, already validated.
    pub captions: Option<Captions>,
}

/// Live captions of a live stream: a subtitles rendition recognised from its speech as it is
/// published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Captions {
    /// The language spoken (a language tag).
    pub language: String,
    /// The rendition's name in players' menus.
    pub name: String,
}

impl Default for LiveStreamSettings {
    fn default() -> Self {
        Self {
            latency_mode: LatencyMode::Standard,
            reconnect_window_s: LatencyMode::Standard.default_reconnect_window_s(),
            record: false,
            dvr: Dvr::default(),
            generated_subtitles: Vec::new(),
            captions: None,
        }
    }
}

/// A live stream: where a publisher sends (stream key). Viewers watch it through its
/// [`PlaybackId`]s.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveStream {
    /// `ls_` followed by random characters; the id used in object keys and URLs of the API.
    pub id: LiveStreamId,
    pub name: String,
    /// Secret the encoder presents to publish; never used in a path or object key.
    pub stream_key: String,
    /// The validated rendition ladder.
    pub ladder: Ladder,
    pub status: LiveStreamStatus,
    /// The session being received while the stream is active.
    pub active_session_id: Option<SessionId>,
    /// A disabled stream refuses publishes; disabling kicks the current publisher.
    pub disabled: bool,
    pub latency_mode: LatencyMode,
    /// Seconds an encoder may be gone and come back within the same session.
    pub reconnect_window_s: u32,
    /// Whether sessions are kept as recordings.
    pub record: bool,
    /// What the live playlists keep.
    pub dvr: Dvr,
    /// The generated subtitles each recording gets.
    pub generated_subtitles: Vec<GeneratedSubtitles>,
    /// Live captions of its sessions.
    pub captions: Option<Captions>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The changes of a live stream `PATCH`; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveStreamChanges {
    pub name: Option<String>,
    /// Already validated.
    pub ladder: Option<Ladder>,
    pub latency_mode: Option<LatencyMode>,
    pub reconnect_window_s: Option<u32>,
    pub record: Option<bool>,
    /// Already validated.
    pub dvr: Option<Dvr>,
    /// Already validated.
    pub generated_subtitles: Option<Vec<GeneratedSubtitles>>,
    /// `Some(None)` turns live captions off.
    pub captions: Option<Option<Captions>>,
}

/// Which live streams a list returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveStreamFilter {
    /// Not disabled and without a publisher.
    Idle,
    /// Not disabled and receiving a publisher.
    Active,
    Disabled,
}

/// One page of [`LiveStream`]s in creation order.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveStreamPage {
    pub items: Vec<LiveStream>,
    /// Pass back as `after` to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// One connection of a publisher to a live stream, from publish to disconnect.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// `ses_` followed by random characters.
    pub id: SessionId,
    pub live_stream_id: LiveStreamId,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub client_addr: String,
    /// What the encoder said about itself (RTMP flashVer / app).
    pub encoder: Option<String>,
    /// Description of the incoming media (codecs, width, height, fps, bitrate) once known.
    pub input: Option<serde_json::Value>,
    pub bytes_received: u64,
    pub frames_dropped: u64,
    /// How the publisher connected: `rtmp`.
    pub protocol: String,
    /// The RTMP application it named.
    pub app: Option<String>,
    /// The asset a recorded session becomes.
    pub asset_id: Option<AssetId>,
}

/// Where a session comes from: what the publisher told about itself on connecting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionOrigin {
    /// `ip:port` of the publisher.
    pub client_addr: String,
    /// `rtmp` or `webrtc` (WHIP).
    pub protocol: &'static str,
    /// The encoder's identity (RTMP `flashVer`, e.g. `FMLE/3.0 (compatible; FMSc/1.0)`).
    pub encoder: Option<String>,
    /// The RTMP application it connected to.
    pub app: Option<String>,
}

/// One page of [`Session`]s, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionPage {
    pub items: Vec<Session>,
    /// Pass back as `after` to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}
