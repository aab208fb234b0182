//! Room composites: a room's participants composed onto one canvas with their audio mixed, run
//! as the publisher of a live stream made for it (so its HLS, recording and simulcast targets
//! are the live stream's). A room has at most one running composite (`waiting` or `active`)
//! at a time; stopped ones are kept as its history.

use chrono::{DateTime, Utc};
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::ids::{LiveStreamId, RoomCompositeId, RoomId, SimulcastTargetId};
use crate::model::LatencyMode;

/// How a composite places the room's participants on its canvas.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum RoomCompositeLayout {
    /// Equal tiles; a screen share takes the big tile.
    #[sea_orm(string_value = "grid")]
    Grid,
    /// The active speaker (or a screen share) large, the others in a strip.
    #[sea_orm(string_value = "speaker")]
    Speaker,
    /// The active speaker (or a screen share) alone.
    #[sea_orm(string_value = "single")]
    Single,
}

/// The size of a composite's canvas.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum RoomCompositeResolution {
    /// 1920×1080.
    #[sea_orm(string_value = "1080p")]
    #[serde(rename = "1080p")]
    P1080,
    /// 1280×720.
    #[sea_orm(string_value = "720p")]
    #[serde(rename = "720p")]
    P720,
}

/// Where a composite stands.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum RoomCompositeStatus {
    /// Started, waiting for the room's first participant before it publishes.
    #[sea_orm(string_value = "waiting")]
    Waiting,
    /// Publishing to its live stream.
    #[sea_orm(string_value = "active")]
    Active,
    /// Over for good.
    #[sea_orm(string_value = "stopped")]
    Stopped,
}

impl RoomCompositeStatus {
    /// Whether a composite in this status is the room's running one (`waiting` or `active`).
    pub fn is_running(self) -> bool {
        self != Self::Stopped
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Active => "active",
            Self::Stopped => "stopped",
        }
    }
}

/// What a composite's live stream was asked to produce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomCompositeOutputs {
    /// The live stream has a public playback id (HLS for viewers).
    pub hls: bool,
    /// The live stream records its sessions.
    pub record: bool,
    /// The live stream's simulcast targets, oldest first.
    pub simulcast_targets: Vec<RoomCompositeTarget>,
}

/// A simulcast target of a composite's live stream. Its stream key stays sealed with the
/// target (`simulcast_targets`); only the id and URL are kept here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomCompositeTarget {
    /// `st_…`.
    pub id: SimulcastTargetId,
    /// `rtmp://host[:port]/app` or `rtmps://…`.
    pub url: String,
}

/// A composite to record, `waiting` until the room side marks it active.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRoomComposite {
    pub room_id: RoomId,
    /// The live stream made for it, which it publishes to.
    pub live_stream_id: LiveStreamId,
    pub layout: RoomCompositeLayout,
    pub resolution: RoomCompositeResolution,
    pub latency_mode: LatencyMode,
    pub outputs: RoomCompositeOutputs,
}

/// A composite as stored. It serializes as the `data` of `room.composite.*` events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoomComposite {
    /// `rcmp_…`.
    pub id: RoomCompositeId,
    pub room_id: RoomId,
    pub live_stream_id: LiveStreamId,
    pub layout: RoomCompositeLayout,
    pub resolution: RoomCompositeResolution,
    pub latency_mode: LatencyMode,
    pub outputs: RoomCompositeOutputs,
    pub status: RoomCompositeStatus,
    pub created_at: DateTime<Utc>,
    /// When it first published (turned `active`).
    pub started_at: Option<DateTime<Utc>>,
    /// When it stopped.
    pub stopped_at: Option<DateTime<Utc>>,
}

/// One page of a room's [`RoomComposite`]s, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomCompositePage {
    pub items: Vec<RoomComposite>,
    /// Pass back as `after` to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}
