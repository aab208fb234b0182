//! Video on demand: assets (a video uploaded or imported, and what processing made of it) and
//! direct uploads (resumable transfers that become assets).

use chrono::{DateTime, Utc};
use sea_orm::entity::prelude::*;
use serde::Serialize;
use serde_json::Value;

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
    /// Where the file came from: `{"type":"upload","upload_id":…}`,
    /// `{"type":"url","url":…}` or, for a recorded session,
    /// `{"type":"live_stream","live_stream_id":…,"session_id":…}`.
    pub input: Value,
    /// The validated settings it was created with (API form).
    pub settings: Value,
    pub duration_ms: Option<i64>,
    /// The source's tracks (API form), once probed.
    pub tracks: Value,
    /// The source's container and tags (API form), once probed.
    pub source_metadata: Value,
    /// What was made (API form), once ready.
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
    pub fn upload_id(&self) -> Option<&str> {
        (self.input.get("type").and_then(Value::as_str) == Some("upload"))
            .then(|| self.input.get("upload_id").and_then(Value::as_str))
            .flatten()
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
    pub input: Value,
    pub settings: Value,
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
    /// The settings of the asset it will become (validated API form).
    pub settings: Value,
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
    pub settings: Value,
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
