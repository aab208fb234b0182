//! Video on demand: assets (a video uploaded or imported, and what processing made of it) and
//! direct uploads (resumable transfers that become assets).

use chrono::{DateTime, Utc};
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_media::{Ladder, VideoCodec};

use super::PlaybackPolicy;
use crate::ids::{AssetId, LiveStreamId, SessionId, UploadId};
use crate::object_store::{InvalidKey, ObjectKey};

/// The kind of job that processes an asset (its subject is the asset id).
pub const ASSET_JOB_KIND: &str = "asset.transcode";

/// Where an asset stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum AssetStatus {
    /// Waiting for or being processed; may already be playable.
    #[sea_orm(string_value = "preparing")]
    Preparing,
    #[sea_orm(string_value = "ready")]
    Ready,
    /// Processing failed for good; `error` says why.
    #[sea_orm(string_value = "errored")]
    Errored,
}

/// Where an asset's file came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AssetInput {
    /// A direct upload; its file stays where the upload put it.
    Upload { upload_id: UploadId },
    /// A file imported from a URL.
    Url { url: String },
    /// A recorded live session.
    LiveStream {
        live_stream_id: LiveStreamId,
        session_id: SessionId,
    },
}

/// A video codec an asset's ladder is encoded in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LadderCodec {
    H264,
    Av1,
}

impl From<LadderCodec> for VideoCodec {
    fn from(codec: LadderCodec) -> Self {
        match codec {
            LadderCodec::H264 => VideoCodec::H264,
            LadderCodec::Av1 => VideoCodec::Av1,
        }
    }
}

/// The checked settings an asset is made with: the API's `new_asset_settings`. A recorded
/// session has none (its renditions come from the live stream's ladder).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetSettings {
    /// The playback ids made for the asset, one per entry.
    pub playback_policy: Vec<PlaybackPolicy>,
    /// Renditions to make, normalised.
    pub ladder: Ladder,
    /// H.264 first, then AV1 when asked for.
    pub codecs: Vec<LadderCodec>,
    /// Any text of the caller's, kept with the asset.
    pub passthrough: Option<String>,
    /// Subtitles tracks to generate from the audio once the asset is ready, one per language;
    /// absent from settings stored before transcripts existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub generated_subtitles: Vec<GeneratedSubtitles>,
}

/// One generated subtitles track asked for (Mux's `generated_subtitles` entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeneratedSubtitles {
    /// The spoken language to transcribe, such as `en`.
    pub language_code: String,
    /// The track's name, shown to viewers (such as `English (generated)`).
    pub name: String,
}

/// An asset: a video (or audio) file and the renditions, images and metadata made from it.
#[derive(Debug, Clone, PartialEq)]
pub struct Asset {
    /// `asset_` followed by random characters.
    pub id: AssetId,
    pub status: AssetStatus,
    /// Why processing failed, for a person.
    pub error: Option<String>,
    /// Percent done while preparing, 0..=100.
    pub progress: u8,
    /// Where the file came from.
    pub input: AssetInput,
    /// The settings it was created with; `None` for a recorded session.
    pub settings: Option<AssetSettings>,
    pub duration_ms: Option<i64>,
    /// The source's tracks, once probed: a document the worker writes from the probe report
    /// and the API shows as it is (nothing reads it back).
    pub tracks: Value,
    /// The source's container and tags, once probed (a document shown as it is).
    pub source_metadata: Value,
    /// What was made, once ready: the packager's renditions, shown as they are.
    pub renditions: Value,
    /// Whether the master playlist exists (it may still be growing while preparing).
    pub playable: bool,
    /// The live stream a recorded asset came from.
    pub live_stream_id: Option<LiveStreamId>,
    /// The session a recorded asset came from.
    pub session_id: Option<SessionId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Asset {
    /// The upload this asset came from, if it came from one.
    pub fn upload_id(&self) -> Option<&UploadId> {
        match &self.input {
            AssetInput::Upload { upload_id } => Some(upload_id),
            AssetInput::Url { .. } | AssetInput::LiveStream { .. } => None,
        }
    }

    /// Where the input file is kept: a completed upload stays at `uploads/{upload_id}/source`
    /// (put there before the asset exists); an imported file at `assets/{id}/source`.
    pub fn source_key(&self) -> Result<ObjectKey, InvalidKey> {
        match self.upload_id() {
            Some(upload_id) => crate::layout::upload_source(upload_id),
            None => crate::layout::asset_source(&self.id),
        }
    }

    /// Where everything made from the asset is kept: `assets/{id}`.
    pub fn objects_prefix(&self) -> Result<ObjectKey, InvalidKey> {
        crate::layout::asset(&self.id)
    }
}

/// An asset to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAsset {
    pub input: AssetInput,
    pub settings: Option<AssetSettings>,
    /// One playback id is made per entry.
    pub playback_policies: Vec<PlaybackPolicy>,
}

/// One page of [`Asset`]s, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct AssetPage {
    pub items: Vec<Asset>,
    /// Pass back as `after` to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Where a direct upload stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum UploadStatus {
    /// Accepting bytes.
    #[sea_orm(string_value = "waiting")]
    Waiting,
    /// Complete: `asset_id` names the asset it became.
    #[sea_orm(string_value = "asset_created")]
    AssetCreated,
    #[sea_orm(string_value = "errored")]
    Errored,
    #[sea_orm(string_value = "cancelled")]
    Cancelled,
    /// Not completed before `expires_at`.
    #[sea_orm(string_value = "timed_out")]
    TimedOut,
}

/// A direct upload: a URL that takes one file, whole or in resumable parts.
#[derive(Debug, Clone, PartialEq)]
pub struct Upload {
    /// `upload_` followed by random characters.
    pub id: UploadId,
    pub status: UploadStatus,
    /// The settings of the asset it will become.
    pub settings: AssetSettings,
    /// Most bytes accepted.
    pub max_size: i64,
    /// Total length, once declared.
    pub length: Option<i64>,
    /// Bytes received and kept so far.
    pub offset: i64,
    /// The client's `Upload-Metadata`, as sent.
    pub metadata: Option<String>,
    pub asset_id: Option<AssetId>,
    pub error: Option<String>,
    pub expires_at: DateTime<Utc>,
    /// The secret part of the upload URL; never shown in lists or events.
    pub token: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A direct upload to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewUpload {
    pub settings: AssetSettings,
    pub max_size: i64,
    pub expires_at: DateTime<Utc>,
}

/// One page of [`Upload`]s, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadPage {
    pub items: Vec<Upload>,
    /// Pass back as `after` to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}
