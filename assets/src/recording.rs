//! Recording live sessions as assets, with no second transcode: the asset side of
//! [`sluice_live::Recordings`].
//!
//! A session of a stream with `record: true` gets a preparing asset when it starts
//! ([`Recorder::start`]: its playback ids follow the live stream's policies, its input names the
//! stream and session). While the session runs, its packager keeps every segment in the store
//! under `live/{stream}/…`. When the session ends (after the reconnect window),
//! [`Recorder::seal`] makes the asset from them:
//!
//! 1. every rendition's init and media segments are copied to `assets/{id}/hls/{dir}/…`
//!    ([`ObjectStore::copy`]: a hard link locally, a server-side copy on S3), a bounded number
//!    at a time;
//! 2. each rendition gets a VOD playlist (the reconnections' discontinuities and init changes
//!    kept) and the last multivariant playlist of the session becomes the asset's (same
//!    relative layout, measured bandwidths): the asset plays from here on;
//! 3. on a task of its own (in place during a shutdown), the poster and storyboard are made
//!    from the recorded top rung (its init and segments concatenated into a local file), and
//!    the asset is marked ready with its renditions, duration and tracks (`asset.ready`).
//!
//! Steps 1 and 2 run before the stream is released, so the next session (which clears the
//! stream's live objects) never races them. A session that recorded no segment errors its
//! asset with a reason.

use std::path::Path;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

use anyhow::Context;
use bytes::Bytes;
use serde_json::{json, Value};
use sluice_media::TrackKind;
use sluice_packager::{VodPlaylist, MASTER_PLAYLIST, MEDIA_PLAYLIST};
use sluice_storage::layout;
use sluice_storage::{Asset, AssetId, Db, EventType, LiveStreamId, ObjectStore, SessionId};
use sluice_transcoder::{probe, ProbeLimits};
use tokio::runtime::Handle;
use tokio::task::JoinSet;
use tracing::{info, warn};

use async_trait::async_trait;
use sluice_live::{RecordedRendition, Recordings, SessionRecording};

use crate::events::AssetEvents;
use crate::package::{write_pictures, StoreOutput};

/// Copies in flight at once while sealing.
const COPY_CONCURRENCY: usize = 16;

/// Makes assets of recorded sessions.
#[derive(Clone)]
pub struct Recorder {
    pub db: Db,
    pub store: Arc<dyn ObjectStore>,
    pub events: AssetEvents,
}

#[async_trait]
impl Recordings for Recorder {
    /// Creates the asset session `session_id` of `live_stream_id` is recorded into, and
    /// announces it (`asset.created`). `None` (logged) when it cannot be recorded.
    async fn start(
        &self,
        live_stream_id: &LiveStreamId,
        session_id: &SessionId,
    ) -> Option<AssetId> {
        match self
            .db
            .create_recording_asset(live_stream_id, session_id)
            .await
        {
            Ok(asset) => {
                self.publish(EventType::AssetCreated, &asset).await;
                Some(asset.id)
            }
            Err(e) => {
                warn!(error = %e, "Could not create the recording's asset; the session is not recorded.");
                None
            }
        }
    }

    /// Seals `recording` into asset `asset_id`: copies and playlists now, pictures and the
    /// ready status on a task of its own, or before returning when `wait` (the server is
    /// shutting down and would drop the task). `recording` is `None` when the session never
    /// packaged anything.
    async fn seal(
        &self,
        asset_id: &AssetId,
        live_stream_id: &LiveStreamId,
        recording: Option<SessionRecording>,
        wait: bool,
    ) {
        let Some(recording) = recording.filter(|r| has_video(r) && r.master.is_some()) else {
            self.fail(
                asset_id,
                "the session recorded no media: the publisher sent no video that could be packaged",
            )
            .await;
            return;
        };
        if let Err(e) = self.keep(asset_id, live_stream_id, &recording).await {
            warn!(
                asset_id = %asset_id,
                error = format!("{e:#}"),
                "Could not keep the recording."
            );
            self.fail(asset_id, &format!("the recording could not be kept: {e:#}"))
                .await;
            return;
        }
        if let Err(e) = self.db.set_asset_playable(asset_id).await {
            warn!(asset_id = %asset_id, error = %e, "Could not mark the recording playable.");
        }
        if wait {
            self.finish(asset_id, recording).await;
            return;
        }
        let recorder = self.clone();
        let asset_id = asset_id.to_owned();
        tokio::spawn(async move { recorder.finish(&asset_id, recording).await });
    }

    /// Errors the recordings a crash cut off before they were sealed
    /// ([`Db::error_interrupted_recordings`]), announcing each (`asset.errored`). Only for a
    /// process that alone ingests, at startup.
    async fn error_interrupted(&self) {
        let reason = "the server stopped before the recording was sealed";
        match self.db.error_interrupted_recordings(reason).await {
            Ok(errored) => {
                for asset in errored {
                    warn!(asset_id = %asset.id, reason, "Recording errored.");
                    self.publish(EventType::AssetErrored, &asset).await;
                }
            }
            Err(e) => warn!(error = %e, "Could not look for interrupted recordings."),
        }
    }
}

impl Recorder {
    /// Steps 1 and 2: the segments under the asset and its playlists.
    async fn keep(
        &self,
        asset_id: &AssetId,
        live_stream_id: &LiveStreamId,
        recording: &SessionRecording,
    ) -> anyhow::Result<()> {
        let mut copies = Vec::new();
        for rendition in &recording.renditions {
            for name in object_names(rendition) {
                let from = layout::live_object(live_stream_id, &[&rendition.dir, &name])?;
                let to = layout::asset_hls(asset_id, &[&rendition.dir, &name])?;
                copies.push((from, to));
            }
        }
        let mut running = JoinSet::new();
        for (from, to) in copies {
            if running.len() >= COPY_CONCURRENCY {
                if let Some(copied) = running.join_next().await {
                    copied??;
                }
            }
            let store = self.store.clone();
            running.spawn(async move {
                store
                    .copy(&from, &to)
                    .await
                    .with_context(|| format!("cannot copy {from} to {to}"))
            });
        }
        while let Some(copied) = running.join_next().await {
            copied??;
        }
        for rendition in &recording.renditions {
            let key = layout::asset_hls(asset_id, &[&rendition.dir, MEDIA_PLAYLIST])?;
            self.store
                .put(&key, Bytes::from(vod_playlist(rendition).render()))
                .await?;
        }
        if let Some(master) = &recording.master {
            let key = layout::asset_hls(asset_id, &[MASTER_PLAYLIST])?;
            self.store.put(&key, Bytes::from(master.clone())).await?;
        }
        Ok(())
    }

    /// Step 3: pictures, duration, tracks, renditions, then `ready`.
    async fn finish(&self, asset_id: &AssetId, recording: SessionRecording) {
        let Some(top) = top_rung(&recording) else {
            return;
        };
        let duration_secs: f64 = top.segments.iter().map(|s| s.duration_secs).sum();
        let duration_ms = (duration_secs * 1_000.0).round() as i64;
        if let Err(e) = self
            .db
            .set_asset_recorded(asset_id, duration_ms, &tracks(&recording))
            .await
        {
            warn!(asset_id = %asset_id, error = %e, "Could not record the recording's duration.");
        }
        if let Err(e) = self.write_pictures(asset_id, top).await {
            warn!(
                asset_id = %asset_id,
                error = format!("{e:#}"),
                "Could not make the recording's poster and storyboard."
            );
        }
        let renditions: Vec<_> = recording.renditions.iter().map(|r| &r.summary).collect();
        let renditions = serde_json::to_value(renditions).unwrap_or(Value::Null);
        match self.db.set_asset_ready(asset_id, &renditions).await {
            Ok(Some(asset)) => {
                info!(asset_id = %asset_id, duration_ms, "Recording ready.");
                self.publish(EventType::AssetReady, &asset).await;
            }
            // Deleted meanwhile.
            Ok(None) => {}
            Err(e) => {
                warn!(asset_id = %asset_id, error = %e, "Could not mark the recording ready.")
            }
        }
    }

    /// The poster and storyboard of the top rung, from its first init segment and the
    /// segments that use it, concatenated into a local file.
    async fn write_pictures(
        &self,
        asset_id: &AssetId,
        top: &RecordedRendition,
    ) -> anyhow::Result<()> {
        let Some(init) = top.segments.first().map(|s| s.init.clone()) else {
            return Ok(());
        };
        let dir = tempfile::tempdir().context("cannot create a working directory")?;
        let file = dir.path().join("recording.mp4");
        let mut out = tokio::fs::File::create(&file)
            .await
            .context("cannot create the working file")?;
        let names = std::iter::once(init.clone()).chain(
            top.segments
                .iter()
                .take_while(|segment| segment.init == init)
                .map(|segment| segment.name.clone()),
        );
        for name in names {
            let bytes = self
                .store
                .get(&layout::asset_hls(asset_id, &[&top.dir, &name])?)
                .await?;
            out.write_all(&bytes)
                .await
                .context("cannot write the working file")?;
        }
        out.flush().await.context("cannot write the working file")?;
        drop(out);
        let width = top.summary.width.unwrap_or(0);
        let output = StoreOutput::new(
            self.store.clone(),
            Handle::current(),
            layout::asset_images(asset_id, &[])?,
        );
        tokio::task::spawn_blocking(move || make_pictures(&file, width, output))
            .await
            .context("the pictures thread failed")??;
        drop(dir);
        Ok(())
    }

    async fn fail(&self, asset_id: &AssetId, reason: &str) {
        match self.db.set_asset_errored(asset_id, reason).await {
            Ok(Some(asset)) => self.publish(EventType::AssetErrored, &asset).await,
            Ok(None) => {}
            Err(e) => {
                warn!(asset_id = %asset_id, error = %e, "Could not mark the recording errored.")
            }
        }
    }

    async fn publish(&self, event_type: EventType, asset: &Asset) {
        self.events.publish(event_type, asset).await
    }
}

fn make_pictures(file: &Path, width: u32, mut output: StoreOutput) -> anyhow::Result<()> {
    let limits = ProbeLimits::default();
    let with_storyboard = probe(file, &limits)
        .map(|report| report.duration.is_some())
        .unwrap_or(false);
    write_pictures(file, &limits, width, with_storyboard, &mut output)
}

fn has_video(recording: &SessionRecording) -> bool {
    recording
        .renditions
        .iter()
        .any(|r| r.kind == TrackKind::Video && !r.segments.is_empty())
}

/// The recorded video rendition with the most pixels.
fn top_rung(recording: &SessionRecording) -> Option<&RecordedRendition> {
    recording
        .renditions
        .iter()
        .filter(|r| r.kind == TrackKind::Video && !r.segments.is_empty())
        .max_by_key(|r| {
            u64::from(r.summary.width.unwrap_or(0)) * u64::from(r.summary.height.unwrap_or(0))
        })
}

/// The objects a rendition's recording is made of: its init segments, then its segments.
fn object_names(rendition: &RecordedRendition) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for segment in &rendition.segments {
        if !names.contains(&segment.init) {
            names.push(segment.init.clone());
        }
    }
    names.extend(rendition.segments.iter().map(|s| s.name.clone()));
    names
}

/// The rendition's VOD playlist, its discontinuities and init changes kept.
fn vod_playlist(rendition: &RecordedRendition) -> VodPlaylist {
    let first_init = rendition
        .segments
        .first()
        .map(|s| s.init.clone())
        .unwrap_or_default();
    let mut playlist = VodPlaylist::new(first_init);
    for segment in &rendition.segments {
        if segment.discontinuity {
            playlist.mark_discontinuity();
        }
        playlist.set_init(segment.init.clone());
        playlist.push_segment(segment.name.clone(), segment.duration_secs);
    }
    playlist
}

/// The recording's tracks, in the API form of an asset's tracks.
fn tracks(recording: &SessionRecording) -> Value {
    let mut tracks = Vec::new();
    if let Some(top) = top_rung(recording) {
        tracks.push(json!({
            "type": "video",
            "codec": top.summary.codec,
            "width": top.summary.width,
            "height": top.summary.height,
            "frame_rate": top.summary.frame_rate,
        }));
    }
    if let Some(audio) = recording
        .renditions
        .iter()
        .find(|r| r.kind == TrackKind::Audio && !r.segments.is_empty())
    {
        tracks.push(json!({"type": "audio", "codec": audio.summary.codec}));
    }
    Value::Array(tracks)
}
