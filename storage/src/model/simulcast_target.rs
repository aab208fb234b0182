//! Simulcast targets: other RTMP(S) servers (YouTube, Twitch, Facebook, …) a live stream is
//! restreamed to while it is live.

use chrono::{DateTime, Utc};
use sea_orm::entity::prelude::*;
use serde::Serialize;

use crate::ids::{LiveStreamId, SimulcastTargetId};

/// Where the connection to a target stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum SimulcastTargetStatus {
    /// The stream is not live, so nothing is sent.
    #[sea_orm(string_value = "idle")]
    Idle,
    /// Connecting, or waiting to retry after an error.
    #[sea_orm(string_value = "connecting")]
    Connecting,
    /// The target accepted the publish and media flows to it.
    #[sea_orm(string_value = "live")]
    Live,
    /// The last attempt failed (see `last_error`); it is retried with backoff while live.
    #[sea_orm(string_value = "errored")]
    Errored,
}

/// A target as stored, its stream key opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulcastTarget {
    /// `st_…`.
    pub id: SimulcastTargetId,
    pub live_stream_id: LiveStreamId,
    /// `rtmp://host[:port]/app` or `rtmps://…`.
    pub url: String,
    /// The stream key the target expects; kept sealed at rest, never shown back in full.
    pub stream_key: String,
    /// `source` (the publisher's own media) or the name of a rung of the stream's ladder.
    pub rendition: String,
    /// Whether the media is forwarded as it is, without re-encoding.
    pub passthrough: bool,
    pub status: SimulcastTargetStatus,
    pub last_error: Option<String>,
    /// Bytes written to the target over every connection so far.
    pub bytes_sent: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A target to add to a live stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSimulcastTarget {
    pub url: String,
    pub stream_key: String,
    pub rendition: String,
    pub passthrough: bool,
}

/// The rendition name of the publisher's own media.
pub const SOURCE_RENDITION: &str = "source";
