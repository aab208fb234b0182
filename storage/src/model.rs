//! The domain types the rest of Sluice sees: plain structs converted from the database rows,
//! so callers never depend on sea-orm models.

use chrono::{DateTime, Utc};
use sea_orm::entity::prelude::*;
use serde::Serialize;

mod event;
mod webhook;
pub use event::{Event, EventFilter, EventObject, EventPage, EventType, NewEvent};
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
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
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

/// A live stream: where a publisher sends (stream key) and where viewers watch (playback id).
#[derive(Debug, Clone, PartialEq)]
pub struct LiveStream {
    /// `ls_` followed by random characters; the id used in object keys and URLs of the API.
    pub id: String,
    pub name: String,
    /// Secret the encoder presents to publish; never used in a path or object key.
    pub stream_key: String,
    /// Public id in playback URLs.
    pub playback_id: String,
    /// The validated rendition ladder, as the transcoder's ladder parser normalised it.
    pub ladder: serde_json::Value,
    pub status: LiveStreamStatus,
    /// The session being received while the stream is active.
    pub active_session_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One page of [`LiveStream`]s in creation order.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveStreamPage {
    pub items: Vec<LiveStream>,
    /// Pass back as `after` to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// One connection of a publisher to a live stream, from publish to disconnect.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Session {
    /// `ses_` followed by random characters.
    pub id: String,
    pub live_stream_id: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub client_addr: String,
    /// What the encoder said about itself (RTMP flashVer / app).
    pub encoder: Option<String>,
    /// Description of the incoming media (codecs, width, height, fps, bitrate) once known.
    pub input: Option<serde_json::Value>,
    pub bytes_received: u64,
    pub frames_dropped: u64,
}
