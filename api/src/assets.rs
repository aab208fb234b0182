//! Assets: videos uploaded or imported for on-demand playback, in the one JSON form that API
//! responses, events and webhooks share ([`AssetView`], [`asset_json`]).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sluice_storage::{Asset, AssetStatus, PlaybackId};
use utoipa::ToSchema;

use crate::playback_ids::PlaybackIdView;

/// Why an asset errored.
#[derive(Debug, Serialize, ToSchema)]
pub struct AssetError {
    /// For a person: what was wrong with the input or its processing.
    #[schema(example = "the file is not a video or audio file ffmpeg can read")]
    message: String,
}

/// An asset: its status, what its source holds, and what was made from it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AssetView {
    #[schema(example = "asset_9fK2mP4qR6sT8uV0wX2y")]
    id: String,
    /// `preparing`, `ready` or `errored`.
    #[schema(value_type = String, example = "ready")]
    status: AssetStatus,
    /// Set when `status` is `errored`.
    #[schema(example = json!(null))]
    error: Option<AssetError>,
    /// Percent done while preparing; 100 once ready.
    #[schema(example = 100)]
    progress: u8,
    /// Whether the master playlist plays already (it grows while the asset is preparing).
    #[schema(example = true)]
    playable: bool,
    /// Seconds, once probed.
    #[schema(example = 12.48)]
    duration: Option<f64>,
    /// The source's tracks: `type` (`video`/`audio`), `codec`, and `width`, `height`,
    /// `frame_rate`, `rotation` or `channels`, `sample_rate`.
    #[schema(value_type = Vec<Object>)]
    tracks: Value,
    /// The source's container and tags.
    #[schema(value_type = Object)]
    source_metadata: Value,
    /// What was made: one entry per rendition (`name`, `codec`, `width`, `height`,
    /// `bandwidth`, …), once ready.
    #[schema(value_type = Vec<Object>)]
    renditions: Value,
    /// Play at `/hls/{id}/master.m3u8` (with `?token=` when `signed`).
    playback_ids: Vec<PlaybackIdView>,
    /// Where the file came from: `{"type": "upload", "upload_id"}` or `{"type": "url", "url"}`.
    #[schema(value_type = Object, example = json!({"type": "url", "url": "https://example.com/talk.mp4"}))]
    input: Value,
    /// The settings the asset was created with.
    #[schema(value_type = Object, example = json!({"playback_policy": ["public"], "codecs": ["h264"]}))]
    new_asset_settings: Value,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl AssetView {
    pub fn new(asset: &Asset, playback_ids: &[PlaybackId]) -> Self {
        Self {
            id: asset.id.clone(),
            status: asset.status,
            error: asset.error.clone().map(|message| AssetError { message }),
            progress: asset.progress,
            playable: asset.playable,
            duration: asset.duration_ms.map(|ms| ms as f64 / 1000.0),
            tracks: asset.tracks.clone(),
            source_metadata: asset.source_metadata.clone(),
            renditions: asset.renditions.clone(),
            playback_ids: playback_ids.iter().cloned().map(Into::into).collect(),
            input: asset.input.clone(),
            new_asset_settings: asset.settings.clone(),
            created_at: asset.created_at,
            updated_at: asset.updated_at,
        }
    }
}

/// The asset in its API form, as events and webhooks carry it.
pub fn asset_json(asset: &Asset, playback_ids: &[PlaybackId]) -> Value {
    serde_json::to_value(AssetView::new(asset, playback_ids)).unwrap_or(Value::Null)
}
