//! Generated subtitles: the worker's `asset.transcribe` jobs.
//!
//! An asset created with `generated_subtitles` has one `preparing` text track per entry; when
//! the asset becomes ready, the database queues one job for it (subject: the asset id). For that
//! job, in a working directory of its own per claim:
//!
//! 1. **The audio the player hears**: the asset's master playlist names its audio rendition
//!    (the `EXT-X-MEDIA:TYPE=AUDIO` one, else the first variant, which then carries the audio).
//!    Its init segment and media segments are copied out of the store into one local file per
//!    init segment (a recording whose publisher reconnected with other settings has several),
//!    so uploads, imports and recorded sessions take the same path, and the recognised times
//!    are on the playlist's own timeline: a span's time 0 is where its first segment starts
//!    (the sum of the EXTINF before it).
//! 2. **Speech**: each file's audio is decoded to 16 kHz mono ([`decode_speech_audio_with`],
//!    the asset's probe limits) and fed to one stream of the speech engine as fast as it
//!    decodes; completed lines are collected every [`COLLECT_EVERY`] of audio, so memory stays
//!    bounded however long the asset is. Progress (the share of the playlist's duration
//!    recognised) goes to the job with each heartbeat.
//! 3. **The rendition**: the lines become cues, cut into one WebVTT segment per segment of the
//!    first video variant (the audio's when there is no video), written to
//!    `hls/subs/{language}/` with their media playlist; then the master playlist is rewritten
//!    with the `EXT-X-MEDIA:TYPE=SUBTITLES` rendition on every variant.
//! 4. **Ready**: the lines are stored with the track (`ready`, `asset.track.ready`); the
//!    transcript endpoints and search read them from there.
//!
//! The engine recognises English only and the API takes only `en`, so the lines recognised once
//! serve every track the job finds preparing.
//!
//! A worker without a speech engine ([`sluice_transcribe::Speech::unavailable`], or one that
//! fails to load) errors
//! the tracks with the reason
//! (`asset.track.errored`); so does an asset whose audio cannot be recognised (no audio, a
//! playlist that cannot be read). Store and engine failures that may pass are retried as the
//! asset jobs are; the last attempt errors the tracks. The asset itself stays ready and
//! playable whatever happens here.

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use m3u8_rs::{AlternativeMediaType, MediaPlaylist};
use serde_json::json;
use sluice_packager::subtitles::{
    add_subtitle_rendition, subtitle_playlist, subtitle_segment_name, subtitles_playlist_uri,
    webvtt_segments, Cue, SubtitleRendition,
};
use sluice_packager::MASTER_PLAYLIST;
use sluice_storage::layout;
use sluice_storage::{
    Asset, AssetId, AssetStatus, EventType, Job, ObjectKey, Transcript, TranscriptLine,
    TranscriptStatus,
};
use sluice_transcoder::speech::{decode_speech_audio_with, SpeechAudioError, SpeechAudioOptions};
use sluice_transcribe::{Line, SpeechEngine, SpeechStream, TranscribeError, SAMPLE_RATE};
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use tracing::{info, warn};

use super::{blocking, remove_directory, Failure, Progress, Worker};

/// How much audio goes into the engine between two collections of its completed lines. The
/// engine recognises what it holds every few seconds of audio anyway; collecting seldom costs
/// nothing and keeps its partial line from being recognised again and again.
const COLLECT_EVERY: Duration = Duration::from_secs(30);

/// One init segment of the audio rendition and the media segments that use it, in order.
#[derive(Debug, Clone, PartialEq)]
struct AudioSpan {
    /// Object paths under the asset's `hls/`, the init segment first.
    paths: Vec<String>,
    /// Playlist time of the span's first segment, in seconds.
    offset_s: f64,
    /// The span's length by its EXTINF, in seconds.
    duration_s: f64,
}

/// Which playlists of an asset hold its audio and the segment boundaries its subtitles follow.
#[derive(Debug, Clone, PartialEq)]
struct SpeechPlaylists {
    /// The media playlist of the audio the player hears.
    audio: String,
    /// The media playlist whose segments the WebVTT segments follow: the first video variant.
    timing: String,
}

impl Worker {
    /// Processes one claimed `asset.transcribe` job to its end, recording the outcome.
    pub(super) async fn transcribe(
        &self,
        worker_id: &str,
        job: Job,
        stopping: &mut watch::Receiver<bool>,
    ) {
        let skipped = Ok(json!({"skipped": true}));
        let Ok(asset_id) = AssetId::parse(&job.subject_id) else {
            self.settle(&job, worker_id, skipped).await;
            return;
        };
        let asset = match self.db.get_asset(&asset_id).await {
            Ok(Some(asset)) if asset.status == AssetStatus::Ready => asset,
            // Deleted (or errored) since: nothing to transcribe.
            Ok(_) => {
                self.settle(&job, worker_id, skipped).await;
                return;
            }
            Err(e) => {
                self.settle(&job, worker_id, Err(Failure::Transient(e.to_string())))
                    .await;
                return;
            }
        };
        let tracks: Vec<Transcript> = match self.db.transcripts_of(&asset.id).await {
            Ok(tracks) => tracks
                .into_iter()
                .filter(|track| track.status == TranscriptStatus::Preparing)
                .collect(),
            Err(e) => {
                self.settle(&job, worker_id, Err(Failure::Transient(e.to_string())))
                    .await;
                return;
            }
        };
        if tracks.is_empty() {
            self.settle(&job, worker_id, skipped).await;
            return;
        }
        let speech = self.speech.clone();
        let loaded = tokio::task::spawn_blocking(move || speech.engine())
            .await
            .unwrap_or_else(|e| Err(format!("loading the speech engine failed: {e}")));
        let engine = match loaded {
            Ok(engine) => engine,
            Err(reason) => {
                if self
                    .settle(&job, worker_id, Err(Failure::Input(reason.clone())))
                    .await
                {
                    self.error_tracks(&tracks, &reason).await;
                }
                return;
            }
        };
        info!(asset_id = %asset.id, job_id = %job.id, attempt = job.attempts, "Transcribing an asset.");
        let work = self.claim_directory(&asset.id, &job).await;
        let progress = AtomicU8::new(0);
        let stop = Arc::new(AtomicBool::new(false));
        let outcome = {
            let recognise = self.make_subtitles(&asset, &tracks, &work, engine, &progress, &stop);
            let heartbeat = self.heartbeat(
                &job,
                &asset.id,
                worker_id,
                Progress::OfTranscripts(&progress),
                &stop,
                stopping,
            );
            tokio::pin!(recognise);
            tokio::select! {
                outcome = &mut recognise => outcome,
                () = heartbeat => {
                    let _ = tokio::time::timeout(super::STOP_GRACE, &mut recognise).await;
                    Err(Failure::Stopped)
                }
            }
        };
        remove_directory(&work).await;
        match outcome {
            Ok(lines) => {
                if self
                    .settle(&job, worker_id, Ok(json!({"lines": lines.len()})))
                    .await
                {
                    self.ready_tracks(&tracks, &lines).await;
                }
            }
            // Shutting down: back to the queue at once. Otherwise the job is another
            // worker's now (or the asset is gone).
            Err(Failure::Stopped) if *stopping.borrow() => {
                self.settle(&job, worker_id, Err(Failure::Interrupted))
                    .await;
            }
            Err(Failure::Stopped) => {}
            Err(failure) => {
                let reason = failure.final_reason(&job, "the subtitles could not be generated");
                if self.settle(&job, worker_id, Err(failure)).await {
                    if let Some(reason) = reason {
                        self.error_tracks(&tracks, &reason).await;
                    }
                }
            }
        }
    }

    /// Steps 1 to 3 of the module documentation; returns the lines recognised.
    async fn make_subtitles(
        &self,
        asset: &Asset,
        tracks: &[Transcript],
        work: &Path,
        engine: Arc<dyn SpeechEngine>,
        progress: &AtomicU8,
        stop: &Arc<AtomicBool>,
    ) -> Result<Vec<TranscriptLine>, Failure> {
        tokio::fs::create_dir_all(work)
            .await
            .map_err(|e| Failure::Transient(format!("cannot create {}: {e}", work.display())))?;
        let master_key = layout::asset_hls(&asset.id, &[MASTER_PLAYLIST])?;
        let master = self.store.get(&master_key).await?;
        let playlists = speech_playlists(&master).map_err(Failure::Input)?;
        let audio = self.media_playlist(&asset.id, &playlists.audio).await?;
        let spans = audio_spans(&audio, &playlists.audio).map_err(Failure::Input)?;
        let timing = match playlists.timing == playlists.audio {
            true => audio,
            false => self.media_playlist(&asset.id, &playlists.timing).await?,
        };
        let durations: Vec<f64> = timing
            .segments
            .iter()
            .map(|segment| f64::from(segment.duration))
            .collect();
        let total_s: f64 = spans.iter().map(|span| span.duration_s).sum();

        let mut lines = Vec::new();
        for (index, span) in spans.into_iter().enumerate() {
            let file = work.join(format!("audio-{index}.mp4"));
            self.copy_span(&asset.id, &span, &file).await?;
            let engine = engine.clone();
            let limits = self.settings.probe_limits();
            let stopped = stop.clone();
            let (sender, mut receiver) = tokio::sync::watch::channel(0.0_f64);
            let recognising = blocking(move || {
                recognise(&*engine, &file, &limits, &stopped, |done_s| {
                    let _ = sender.send(done_s);
                })
            });
            tokio::pin!(recognising);
            let recognised = loop {
                tokio::select! {
                    recognised = &mut recognising => break recognised,
                    Ok(()) = receiver.changed() => {
                        let done_s = span.offset_s + *receiver.borrow();
                        progress.store(percent(done_s, total_s), Ordering::Relaxed);
                    }
                }
            };
            lines.extend(recognised?.into_iter().map(|line| TranscriptLine {
                start_ms: millis(span.offset_s + line.start_s),
                end_ms: millis(span.offset_s + line.end_s),
                text: line.text,
            }));
            if stop.load(Ordering::Relaxed) {
                return Err(Failure::Stopped);
            }
        }
        progress.store(100, Ordering::Relaxed);

        let cues: Vec<Cue> = lines
            .iter()
            .map(|line| Cue::from_millis(line.start_ms, line.end_ms, line.text.clone()))
            .collect();
        let segments = webvtt_segments(&cues, &durations);
        let mut master = master.to_vec();
        for track in tracks {
            let playlist_uri = subtitles_playlist_uri(&track.language_code);
            let key = |name: &str| {
                let path = relative(&playlist_uri, name);
                hls_key(&asset.id, &path)
            };
            for (index, segment) in segments.iter().enumerate() {
                self.store
                    .put(&key(&subtitle_segment_name(index))?, segment.clone().into())
                    .await?;
            }
            self.store
                .put(
                    &hls_key(&asset.id, &playlist_uri)?,
                    subtitle_playlist(&durations).into(),
                )
                .await?;
            master = add_subtitle_rendition(
                &master,
                &SubtitleRendition::new(&track.language_code, &track.name),
            )
            .map_err(|e| Failure::Input(format!("the subtitles cannot be listed: {e}")))?;
        }
        self.store.put(&master_key, master.into()).await?;
        Ok(lines)
    }

    /// The media playlist at `path` under the asset's `hls/`.
    async fn media_playlist(
        &self,
        asset_id: &AssetId,
        path: &str,
    ) -> Result<MediaPlaylist, Failure> {
        let bytes = self.store.get(&hls_key(asset_id, path)?).await?;
        m3u8_rs::parse_media_playlist_res(&bytes)
            .map_err(|_| Failure::Input(format!("the asset's playlist {path} cannot be read")))
    }

    /// Concatenates a span's init and media segments from the store into `file`.
    async fn copy_span(
        &self,
        asset_id: &AssetId,
        span: &AudioSpan,
        file: &Path,
    ) -> Result<(), Failure> {
        let write_failed =
            |e: std::io::Error| Failure::Transient(format!("cannot write {}: {e}", file.display()));
        let mut out = tokio::fs::File::create(file).await.map_err(write_failed)?;
        for path in &span.paths {
            let bytes = self.store.get(&hls_key(asset_id, path)?).await?;
            out.write_all(&bytes).await.map_err(write_failed)?;
        }
        out.flush().await.map_err(write_failed)
    }

    /// Stores `lines` with every track and announces it ready.
    async fn ready_tracks(&self, tracks: &[Transcript], lines: &[TranscriptLine]) {
        for track in tracks {
            match self.db.set_transcript_ready(&track.id, lines).await {
                Ok(Some(ready)) => {
                    info!(asset_id = %ready.asset_id, track_id = %ready.id, lines = lines.len(), "Subtitles generated.");
                    self.events
                        .publish_track(EventType::AssetTrackReady, &ready)
                        .await;
                }
                Ok(None) => {}
                Err(e) => {
                    warn!(track_id = %track.id, error = %e, "Cannot record the generated subtitles.")
                }
            }
        }
    }

    /// Errors every track with `reason` and announces it.
    async fn error_tracks(&self, tracks: &[Transcript], reason: &str) {
        for track in tracks {
            warn!(asset_id = %track.asset_id, track_id = %track.id, reason = %reason, "Subtitles errored.");
            match self.db.set_transcript_errored(&track.id, reason).await {
                Ok(Some(errored)) => {
                    self.events
                        .publish_track(EventType::AssetTrackErrored, &errored)
                        .await
                }
                Ok(None) => {}
                Err(e) => {
                    warn!(track_id = %track.id, error = %e, "Cannot record the subtitles' error.")
                }
            }
        }
    }
}

/// Recognises the speech of the file at `file`, calling `on_progress` with the seconds of
/// audio decoded so far; returns the complete lines, timed from the file's start.
fn recognise(
    engine: &dyn SpeechEngine,
    file: &Path,
    limits: &sluice_transcoder::ProbeLimits,
    stop: &AtomicBool,
    mut on_progress: impl FnMut(f64),
) -> Result<Vec<Line>, Failure> {
    let mut stream = engine.stream().map_err(engine_failure)?;
    let collect_every = COLLECT_EVERY.as_secs() * u64::from(SAMPLE_RATE);
    let mut lines = Vec::new();
    let mut uncollected: u64 = 0;
    let mut failed = None;
    let options = SpeechAudioOptions {
        stream: None,
        limits: limits.clone(),
    };
    let decoded = decode_speech_audio_with(file, &options, |chunk| {
        if stop.load(Ordering::Relaxed) {
            return ControlFlow::Break(());
        }
        let step = stream.add_audio(chunk.samples).and_then(|()| {
            uncollected += chunk.samples.len() as u64;
            if uncollected >= collect_every {
                uncollected = 0;
                collect(&mut *stream, &mut lines)?;
            }
            Ok(())
        });
        if let Err(e) = step {
            failed = Some(e);
            return ControlFlow::Break(());
        }
        on_progress(chunk.samples_done() as f64 / f64::from(SAMPLE_RATE));
        ControlFlow::Continue(())
    });
    if let Some(e) = failed {
        return Err(engine_failure(e));
    }
    if stop.load(Ordering::Relaxed) {
        return Err(Failure::Stopped);
    }
    decoded.map_err(|e| match e {
        SpeechAudioError::NoAudio { .. } => {
            Failure::Input("the asset has no audio to transcribe".to_owned())
        }
        SpeechAudioError::Io { source, .. } => {
            Failure::Transient(format!("cannot read the asset's audio: {source}"))
        }
        other => Failure::Input(format!("the asset's audio cannot be decoded: {other}")),
    })?;
    lines.extend(stream.finish().map_err(engine_failure)?);
    Ok(lines)
}

/// Moves the stream's completed lines into `lines` (its partial line stays with it).
fn collect(stream: &mut dyn SpeechStream, lines: &mut Vec<Line>) -> Result<(), TranscribeError> {
    lines.extend(stream.lines()?.into_iter().filter(|line| line.complete));
    Ok(())
}

/// An engine that is missing or broken errors the tracks; one that failed while recognising
/// may do better on another attempt.
fn engine_failure(error: TranscribeError) -> Failure {
    match error.is_unavailable() {
        true => Failure::Input(error.to_string()),
        false => Failure::Transient(error.to_string()),
    }
}

/// The playlists of a master playlist's text that speech and subtitle timing come from.
fn speech_playlists(master: &[u8]) -> Result<SpeechPlaylists, String> {
    let unreadable = || "the asset's master playlist cannot be read".to_owned();
    let master = m3u8_rs::parse_master_playlist_res(master).map_err(|_| unreadable())?;
    let first_variant = master
        .variants
        .iter()
        .find(|variant| !variant.is_i_frame)
        .map(|variant| variant.uri.clone())
        .ok_or_else(unreadable)?;
    let audio = master
        .alternatives
        .iter()
        .filter(|media| media.media_type == AlternativeMediaType::Audio)
        .find_map(|media| media.uri.clone())
        .unwrap_or_else(|| first_variant.clone());
    Ok(SpeechPlaylists {
        audio,
        timing: first_variant,
    })
}

/// The spans of an audio media playlist found at `playlist_path` (under the asset's `hls/`):
/// a new span starts wherever the init segment changes.
fn audio_spans(playlist: &MediaPlaylist, playlist_path: &str) -> Result<Vec<AudioSpan>, String> {
    let mut spans: Vec<AudioSpan> = Vec::new();
    let mut init: Option<&str> = None;
    let mut time_s = 0.0;
    for segment in &playlist.segments {
        if segment.byte_range.is_some() {
            return Err(format!(
                "the asset's playlist {playlist_path} uses byte ranges"
            ));
        }
        let changed = segment
            .map
            .as_ref()
            .filter(|map| Some(map.uri.as_str()) != init);
        if let Some(map) = changed {
            init = Some(&map.uri);
            spans.push(AudioSpan {
                paths: vec![relative(playlist_path, &map.uri)],
                offset_s: time_s,
                duration_s: 0.0,
            });
        }
        let Some(span) = spans.last_mut() else {
            return Err(format!(
                "the asset's playlist {playlist_path} names no init segment"
            ));
        };
        span.paths.push(relative(playlist_path, &segment.uri));
        span.duration_s += f64::from(segment.duration);
        time_s += f64::from(segment.duration);
    }
    if spans.is_empty() {
        return Err(format!(
            "the asset's playlist {playlist_path} has no segments"
        ));
    }
    Ok(spans)
}

/// `uri` as a path under the asset's `hls/`, written relative to the playlist at
/// `playlist_path`.
fn relative(playlist_path: &str, uri: &str) -> String {
    match playlist_path.rsplit_once('/') {
        Some((dir, _)) => format!("{dir}/{uri}"),
        None => uri.to_owned(),
    }
}

/// The object of a path under the asset's `hls/`; `..`, empty and unsafe segments are refused.
fn hls_key(asset_id: &AssetId, path: &str) -> Result<ObjectKey, Failure> {
    let segments: Vec<&str> = path.split('/').collect();
    Ok(layout::asset_hls(asset_id, &segments)?)
}

/// Seconds as whole milliseconds.
fn millis(seconds: f64) -> i64 {
    (seconds * 1000.0).round() as i64
}

/// `done_s` of `total_s` as a percentage below 100 (100 is for the end).
fn percent(done_s: f64, total_s: f64) -> u8 {
    if total_s <= 0.0 {
        return 0;
    }
    ((done_s / total_s).clamp(0.0, 0.99) * 100.0) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASTER: &[u8] = b"#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n\
        #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"Audio\",AUTOSELECT=YES,DEFAULT=YES,CHANNELS=\"2\",URI=\"a0/index.m3u8\"\n\
        #EXT-X-STREAM-INF:BANDWIDTH=900000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=640x360,AUDIO=\"audio\"\n\
        v1/index.m3u8\n\
        #EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=90000,CODECS=\"avc1.64001f\",URI=\"v0/iframes.m3u8\"\n\
        #EXT-X-STREAM-INF:BANDWIDTH=3300000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,AUDIO=\"audio\"\n\
        v0/index.m3u8\n";

    fn media(text: &str) -> MediaPlaylist {
        m3u8_rs::parse_media_playlist_res(text.as_bytes()).unwrap()
    }

    #[test]
    fn the_audio_rendition_is_heard_and_the_first_video_variant_times_the_subtitles() {
        assert_eq!(
            speech_playlists(MASTER).unwrap(),
            SpeechPlaylists {
                audio: "a0/index.m3u8".into(),
                timing: "v1/index.m3u8".into(),
            }
        );
    }

    #[test]
    fn a_master_without_an_audio_rendition_takes_both_from_its_first_variant() {
        let master =
            b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=130000,CODECS=\"mp4a.40.2\"\na0/index.m3u8\n";
        assert_eq!(
            speech_playlists(master).unwrap(),
            SpeechPlaylists {
                audio: "a0/index.m3u8".into(),
                timing: "a0/index.m3u8".into(),
            }
        );
        assert!(speech_playlists(b"not a playlist").is_err());
        assert!(
            speech_playlists(b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\ns.m4s\n").is_err()
        );
    }

    #[test]
    fn an_audio_playlist_is_one_span_per_init_segment_on_the_playlist_timeline() {
        let playlist = media(
            "#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-MAP:URI=\"init.mp4\"\n\
             #EXTINF:2.000,\ns-0.m4a\n#EXTINF:6.000,\ns-1.m4a\n\
             #EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init-1.mp4\"\n#EXTINF:4.500,\ns-2.m4a\n\
             #EXT-X-DISCONTINUITY\n#EXTINF:1.500,\ns-3.m4a\n#EXT-X-ENDLIST\n",
        );
        assert_eq!(
            audio_spans(&playlist, "a0/index.m3u8").unwrap(),
            vec![
                AudioSpan {
                    paths: vec![
                        "a0/init.mp4".into(),
                        "a0/s-0.m4a".into(),
                        "a0/s-1.m4a".into()
                    ],
                    offset_s: 0.0,
                    duration_s: 8.0,
                },
                AudioSpan {
                    paths: vec![
                        "a0/init-1.mp4".into(),
                        "a0/s-2.m4a".into(),
                        "a0/s-3.m4a".into()
                    ],
                    offset_s: 8.0,
                    duration_s: 6.0,
                },
            ]
        );
    }

    #[test]
    fn an_audio_playlist_without_an_init_segment_or_segments_is_refused() {
        let no_init =
            media("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\ns.m4s\n#EXT-X-ENDLIST\n");
        assert!(audio_spans(&no_init, "a0/index.m3u8")
            .unwrap_err()
            .contains("no init segment"));
        let empty = media("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-ENDLIST\n");
        assert!(audio_spans(&empty, "a0/index.m3u8")
            .unwrap_err()
            .contains("no segments"));
    }

    #[test]
    fn paths_outside_the_asset_are_refused() {
        let id = AssetId::parse("asset_9fK2mP4qR6sT8uV0wX2y").unwrap();
        assert!(hls_key(&id, &relative("a0/index.m3u8", "../../other/x.m4s")).is_err());
        assert!(hls_key(&id, &relative("a0/index.m3u8", "s-1.m4s")).is_ok());
    }

    #[test]
    fn progress_stays_below_a_hundred_until_the_end() {
        assert_eq!(percent(0.0, 0.0), 0);
        assert_eq!(percent(5.0, 10.0), 50);
        assert_eq!(percent(12.0, 10.0), 99);
    }
}
