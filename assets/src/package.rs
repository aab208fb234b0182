//! Packaging a file transcode ([`FileTranscode`]'s [`VodEvent`]s) into an HLS tree, written
//! through a [`PackageOutput`]: a local directory for `sluice transcode`
//! ([`DirectoryOutput`]), the object store under `assets/{id}/hls/` for the worker
//! ([`StoreOutput`]).
//!
//! ```text
//! master.m3u8            multivariant playlist: BANDWIDTH/AVERAGE-BANDWIDTH, CODECS,
//!                        RESOLUTION, FRAME-RATE; EXT-X-I-FRAME-STREAM-INF per video rung
//! v{N}/index.m3u8        one media playlist per video rung
//! v{N}/iframes.m3u8      its I-frame playlist: each segment's moof and first keyframe, as an
//!                        EXT-X-BYTERANGE of the segment file (sharing init.mp4 via EXT-X-MAP)
//! v{N}/init.mp4          its CMAF header (EXT-X-MAP)
//! v{N}/segment-{S}.m4s   its CMAF segments
//! a0/…                   the AAC-LC audio rendition (`.m4a` segments), when there is audio
//! ```
//!
//! Every video rung is cut at the same instants (the ladder forces IDRs on the same source
//! pictures and each rung's segmenter cuts at the first keyframe past its target); audio
//! segments are cut where the first video rung was cut. An audio-only file gets an audio
//! rendition listed as the only variant; a video-only file gets no audio rendition.
//!
//! **Playable early.** Each segment is written before the playlist that lists it, and media
//! playlists are rewritten as `EXT-X-PLAYLIST-TYPE:EVENT` as segments appear. The master
//! playlist is written as soon as every video rung (and the audio) has its first segment,
//! with BANDWIDTH estimated from each encoded rung's target bitrate (measured for a `source`
//! rung), and [`PackageObserver::playable`] is told once. The first segments are short
//! ([`SHORT_SEGMENT`], with IDRs that often: [`SegmentPlan::keyframe_interval`]) until the
//! normal target is reached, so the first segment appears fast. At the end every playlist is
//! rewritten as `PLAYLIST-TYPE:VOD` with `EXT-X-ENDLIST`, and the master with measured
//! BANDWIDTH and AVERAGE-BANDWIDTH.

use std::collections::VecDeque;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use sluice_media::{AudioSpecificConfig, MediaTime, Packet, Timebase, TrackInfo, VideoConfig};
use sluice_packager::{
    audio_rendition, fmp4, segment_end, segments_of, video_variant, AudioRendition, BitrateMeter,
    Bitrates, BoundaryPolicy, CompletedSegment, IFrameVariant, MasterPlaylist, PackagedRendition,
    TrackSegmenter, VideoVariant, VodPlaylist, MASTER_PLAYLIST, MEDIA_PLAYLIST, TRACK_ID,
};
use sluice_storage::{ObjectKey, ObjectStore};
use sluice_transcoder::{
    storyboard, thumbnail, FileTranscode, PlannedRung, ProbeLimits, StoryboardLayout,
    ThumbnailRequest, TranscoderOutput, VodEvent,
};
use tokio::runtime::Handle;

/// Duration of the first segments, and the IDR interval that allows them.
pub const SHORT_SEGMENT: Duration = Duration::from_secs(2);
/// The poster is scaled down to this width when the source's coded width is larger (an
/// anamorphic source's display width may still exceed it).
const POSTER_MAX_WIDTH: u32 = 1920;
/// The poster's name.
pub const POSTER: &str = "poster.jpg";
/// The storyboard sprite's name, as the WebVTT cues refer to it.
pub const STORYBOARD_SPRITE: &str = "storyboard.jpg";
/// The storyboard's WebVTT cues.
pub const STORYBOARD_VTT: &str = "storyboard.vtt";

/// Where a packaged tree goes: objects named by `/`-separated paths relative to its root.
pub trait PackageOutput {
    /// Stores `bytes` at `path` (`master.m3u8`, `v0/segment-3.m4s`), replacing any previous
    /// object; readers see the old object or the new one, never part of one.
    fn write(&mut self, path: &str, bytes: Bytes) -> anyhow::Result<()>;
}

/// A tree of files under a local directory.
pub struct DirectoryOutput {
    root: PathBuf,
}

impl DirectoryOutput {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirectoryOutput { root: root.into() }
    }
}

impl PackageOutput for DirectoryOutput {
    fn write(&mut self, path: &str, bytes: Bytes) -> anyhow::Result<()> {
        let file = self.root.join(path);
        if let Some(parent) = file.parent() {
            fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        fs::write(&file, &bytes).with_context(|| format!("cannot write {}", file.display()))
    }
}

/// Objects under a prefix of an [`ObjectStore`], written from a blocking thread through the
/// runtime `handle` (each put is awaited before the next, so a playlist never lands before
/// the segment it lists).
pub struct StoreOutput {
    store: Arc<dyn ObjectStore>,
    runtime: Handle,
    prefix: ObjectKey,
}

impl StoreOutput {
    pub fn new(store: Arc<dyn ObjectStore>, runtime: Handle, prefix: ObjectKey) -> Self {
        StoreOutput {
            store,
            runtime,
            prefix,
        }
    }
}

impl PackageOutput for StoreOutput {
    fn write(&mut self, path: &str, bytes: Bytes) -> anyhow::Result<()> {
        let key = ObjectKey::new(self.prefix.segments().chain(path.split('/')))
            .with_context(|| format!("cannot name the object {path}"))?;
        self.runtime
            .block_on(self.store.put(&key, bytes))
            .with_context(|| format!("cannot store {key}"))
    }
}

/// Segment durations: short ones first, then the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentPlan {
    target: Duration,
}

impl SegmentPlan {
    /// Segments aiming at `target`, after a short start when `target` is a multiple of
    /// [`SHORT_SEGMENT`] (IDRs every [`SHORT_SEGMENT`] then fall on every target boundary).
    pub fn new(target: Duration) -> Self {
        SegmentPlan { target }
    }

    /// EXT-X-TARGETDURATION of the playlists: the target, rounded (RFC 8216bis §4.4.3.1).
    fn target_secs(&self) -> u64 {
        self.target.as_secs_f64().round() as u64
    }

    /// The distance between IDRs the encoded rungs must force.
    pub fn keyframe_interval(&self) -> Duration {
        if self.short_segments() > 0 {
            SHORT_SEGMENT
        } else {
            self.target
        }
    }

    /// How many short segments come first: as many as make up one target duration.
    fn short_segments(&self) -> u64 {
        let short = SHORT_SEGMENT.as_millis();
        let target = self.target.as_millis();
        if target > short && target % short == 0 {
            u64::try_from(target / short).unwrap_or(0)
        } else {
            0
        }
    }

    /// A segmenter for one track following the plan.
    fn segmenter(&self, timescale: Timebase, policy: BoundaryPolicy) -> TrackSegmenter {
        let segmenter = TrackSegmenter::new(TRACK_ID, timescale, self.target).with_policy(policy);
        match self.short_segments() {
            0 => segmenter,
            count => segmenter.with_short_start(SHORT_SEGMENT, count),
        }
    }
}

/// What the packager reports while it works.
pub trait PackageObserver {
    /// `done` of media has been packaged. Returning false stops packaging (the caller gave
    /// up): [`package`] then ends with an error.
    fn progress(&mut self, done: Duration) -> bool;
    /// The master playlist has been written: playback can begin. Called once.
    fn playable(&mut self);
}

/// What [`package`] made.
#[derive(Clone, Debug, PartialEq)]
pub struct Packaged {
    /// Video rungs in ladder order, then the audio rendition if any.
    pub renditions: Vec<PackagedRendition>,
}

impl Packaged {
    /// "2 video renditions (640x360, 426x240) and audio", "audio only", …
    pub fn summary(&self) -> String {
        let sizes: Vec<String> = self
            .renditions
            .iter()
            .filter_map(|r| Some(format!("{}x{}", r.width?, r.height?)))
            .collect();
        let has_audio = self.renditions.iter().any(|r| r.codec == "aac");
        let mut summary = match sizes.len() {
            0 => "audio only".to_owned(),
            1 => format!("1 video rendition ({})", sizes[0]),
            n => format!("{n} video renditions ({})", sizes.join(", ")),
        };
        if has_audio && !sizes.is_empty() {
            summary.push_str(" and audio");
        }
        summary
    }
}

/// Drains `events` of `transcode` into an HLS tree written to `output`, following `segments`
/// (the transcode's encoder settings must force IDRs every
/// [`SegmentPlan::keyframe_interval`]). Ends once the transcode has ended and every playlist
/// is final; a transcode failure, a write failure or an observer asking to stop is an error,
/// after which the caller removes what was written.
pub fn package(
    transcode: FileTranscode,
    events: Receiver<VodEvent>,
    segments: SegmentPlan,
    output: &mut dyn PackageOutput,
    observer: &mut dyn PackageObserver,
) -> anyhow::Result<Packaged> {
    let report = transcode.report();
    let source_fps = report.video.as_ref().and_then(|video| video.frame_rate);
    let mut tree = HlsTree::new(
        output,
        transcode.rungs(),
        source_fps,
        segments,
        report.video.is_some(),
        report.audio.is_some(),
    );
    let drained = (|| {
        for event in &events {
            if let Some(at) = tree.handle(event, observer)? {
                if !observer.progress(at) {
                    bail!("packaging was stopped");
                }
            }
        }
        Ok(())
    })();
    // The demux thread stops once nobody listens, so waiting for it cannot hang.
    drop(events);
    let outcome = transcode.wait();
    drained?;
    outcome?;
    tree.finish(observer)
}

/// Writes the poster frame of the video in `input` to [`POSTER`] in `output`, and its
/// storyboard ([`STORYBOARD_SPRITE`], [`STORYBOARD_VTT`]) when `with_storyboard` (its tiles
/// are spread over the duration, which a few containers do not give).
pub fn write_pictures(
    input: &Path,
    limits: &ProbeLimits,
    source_width: u32,
    with_storyboard: bool,
    output: &mut dyn PackageOutput,
) -> anyhow::Result<()> {
    let poster = ThumbnailRequest {
        width: (source_width > POSTER_MAX_WIDTH).then_some(POSTER_MAX_WIDTH),
        ..ThumbnailRequest::default()
    };
    let poster = thumbnail(input, limits, &poster).context("cannot make the poster frame")?;
    output.write(POSTER, Bytes::from(poster.data))?;
    if !with_storyboard {
        return Ok(());
    }
    let board = storyboard(
        input,
        limits,
        &StoryboardLayout::default(),
        STORYBOARD_SPRITE,
    )
    .context("cannot make the storyboard")?;
    output.write(STORYBOARD_SPRITE, Bytes::from(board.sprite.data))?;
    output.write(STORYBOARD_VTT, Bytes::from(board.vtt))
}

/// One rendition: its segmenter, playlist and measured bitrate.
struct Track {
    /// Directory name: `v0`, `v1`, … or `a0`.
    dir: String,
    extension: &'static str,
    segmenter: TrackSegmenter,
    playlist: VodPlaylist,
    meter: BitrateMeter,
}

impl Track {
    /// The rendition in directory `dir`, its segments named `*.{extension}`, on `timescale`.
    fn new(
        dir: String,
        extension: &'static str,
        segments: SegmentPlan,
        timescale: Timebase,
        policy: BoundaryPolicy,
    ) -> Self {
        Track {
            dir,
            extension,
            segmenter: segments.segmenter(timescale, policy),
            playlist: VodPlaylist::new("init.mp4".to_owned())
                .with_target_duration(segments.target_secs()),
            meter: BitrateMeter::new(),
        }
    }

    fn path(&self, name: &str) -> String {
        format!("{}/{name}", self.dir)
    }

    fn write_init(
        &self,
        output: &mut dyn PackageOutput,
        track: &TrackInfo,
        timescale: u32,
    ) -> anyhow::Result<()> {
        let init = fmp4::init_segment(track, TRACK_ID, timescale)
            .with_context(|| format!("cannot write the init segment of {}", self.dir))?;
        output.write(&self.path("init.mp4"), init)
    }

    /// Writes a segment, then lists it; returns its name and end time.
    fn write_segment(
        &mut self,
        output: &mut dyn PackageOutput,
        segment: &CompletedSegment,
    ) -> anyhow::Result<(String, MediaTime)> {
        let name = format!("segment-{}.{}", segment.sequence, self.extension);
        output.write(&self.path(&name), segment.data.clone())?;
        self.meter
            .add_segment(segment.data.len() as u64, segment.duration);
        self.playlist
            .push_segment(name.clone(), segment.duration.as_secs_f64());
        output.write(
            &self.path(MEDIA_PLAYLIST),
            Bytes::from(self.playlist.render_growing()),
        )?;
        Ok((name, segment_end(segment)))
    }
}

/// A video rung being packaged.
struct VideoTrack {
    name: String,
    track: Track,
    /// The I-frame playlist and the bitrate of its byte ranges.
    iframes: VodPlaylist,
    iframe_meter: BitrateMeter,
    frame_rate: Option<f64>,
    /// Peak and average bitrate announced before any is measured: the encoder's targets.
    estimate: Option<Bitrates>,
    config: Option<VideoConfig>,
    /// First and last presentation time seen, and the frame count, to measure the frame
    /// rate when the container does not say it.
    first_pts: Option<i64>,
    last_pts: i64,
    frames: u64,
}

impl VideoTrack {
    fn frame_rate(&self) -> f64 {
        self.frame_rate.unwrap_or_else(|| {
            let span = self.last_pts - self.first_pts.unwrap_or(self.last_pts);
            if span > 0 && self.frames > 1 {
                (self.frames - 1) as f64 * f64::from(Timebase::MPEG.0) / span as f64
            } else {
                0.0
            }
        })
    }

    /// Writes segments a segmenter returned, each with its I-frame entry; returns their end
    /// times.
    fn absorb(
        &mut self,
        output: &mut dyn PackageOutput,
        segments: Vec<CompletedSegment>,
    ) -> anyhow::Result<Vec<MediaTime>> {
        let mut ends = Vec::with_capacity(segments.len());
        for segment in segments {
            let (name, end) = self.track.write_segment(output, &segment)?;
            self.iframe_meter
                .add_segment(segment.first_sample_end, segment.duration);
            self.iframes.push_byte_range(
                name,
                segment.duration.as_secs_f64(),
                segment.first_sample_end,
            );
            output.write(
                &self.track.path("iframes.m3u8"),
                Bytes::from(self.iframes.render_growing()),
            )?;
            ends.push(end);
        }
        Ok(ends)
    }

    /// The rung's entries in the master playlist, with measured bitrates when `measured`,
    /// else the encoder's targets where known.
    fn variants(&self, measured: bool) -> Option<(VideoVariant, IFrameVariant)> {
        let config = self.config.as_ref()?;
        if self.track.playlist.is_empty() {
            return None;
        }
        let bitrates = match self.estimate.filter(|_| !measured) {
            Some(estimate) => estimate,
            None => self.track.meter.bitrates(),
        };
        let video = video_variant(&self.track.dir, config, self.frame_rate(), bitrates);
        let iframes = IFrameVariant {
            uri: self.track.path("iframes.m3u8"),
            codec: config.codec_string(),
            width: config.width(),
            height: config.height(),
            peak_bps: self.iframe_meter.peak_bps(),
            average_bps: self.iframe_meter.average_bps(),
        };
        Some((video, iframes))
    }
}

/// The audio rendition being packaged.
struct AudioTrack {
    track: Track,
    config: AudioSpecificConfig,
    /// With video: frames waiting for the first video rung to be cut past them, so audio
    /// segments end where video segments end however far ahead the audio was demuxed.
    held: VecDeque<Packet>,
}

impl AudioTrack {
    fn absorb(
        &mut self,
        output: &mut dyn PackageOutput,
        segments: Vec<CompletedSegment>,
    ) -> anyhow::Result<()> {
        for segment in segments {
            self.track.write_segment(output, &segment)?;
        }
        Ok(())
    }

    fn push(&mut self, output: &mut dyn PackageOutput, packet: Packet) -> anyhow::Result<()> {
        let events = self
            .track
            .segmenter
            .push(packet)
            .context("an audio packet was refused by the segmenter")?;
        self.absorb(output, segments_of(events))
    }

    /// The audio rendition's entry in the master playlist.
    fn rendition(&self) -> Option<AudioRendition> {
        (!self.track.playlist.is_empty())
            .then(|| audio_rendition(&self.track.dir, &self.config, self.track.meter.bitrates()))
    }
}

/// Audio frames pushed past the last video cut, so the audio segment before the cut closes
/// now rather than at the next cut (a sample's duration is known once the next one arrives).
const AUDIO_FRAMES_PAST_CUT: usize = 2;

/// Everything written through the output.
struct HlsTree<'a> {
    output: &'a mut dyn PackageOutput,
    segments: SegmentPlan,
    video: Vec<VideoTrack>,
    audio: Option<AudioTrack>,
    has_video: bool,
    expects_audio: bool,
    playable: bool,
    /// Media time of the first packet, and the furthest reached from it, for progress.
    origin: Option<MediaTime>,
    furthest: Duration,
}

impl<'a> HlsTree<'a> {
    fn new(
        output: &'a mut dyn PackageOutput,
        rungs: &[PlannedRung],
        source_fps: Option<f64>,
        segments: SegmentPlan,
        has_video: bool,
        expects_audio: bool,
    ) -> Self {
        let video = rungs
            .iter()
            .enumerate()
            .map(|(index, rung)| {
                let (frame_rate, estimate) = match rung {
                    PlannedRung::Source => (source_fps, None),
                    PlannedRung::Encode(target) => (
                        Some(target.frame_rate),
                        Some(Bitrates {
                            peak_bps: u64::from(target.vbv_maxrate_kbps) * 1_000,
                            average_bps: u64::from(target.bitrate_kbps) * 1_000,
                        }),
                    ),
                };
                VideoTrack {
                    name: rung.name().to_owned(),
                    track: Track::new(
                        format!("v{index}"),
                        "m4s",
                        segments,
                        Timebase::MPEG,
                        BoundaryPolicy::TargetDuration,
                    ),
                    iframes: VodPlaylist::i_frames("init.mp4".to_owned())
                        .with_target_duration(segments.target_secs()),
                    iframe_meter: BitrateMeter::new(),
                    frame_rate,
                    estimate,
                    config: None,
                    first_pts: None,
                    last_pts: 0,
                    frames: 0,
                }
            })
            .collect();
        HlsTree {
            output,
            segments,
            video,
            audio: None,
            has_video,
            expects_audio,
            playable: false,
            origin: None,
            furthest: Duration::ZERO,
        }
    }

    /// Packages one event; returns the media time reached when it tells progress.
    fn handle(
        &mut self,
        event: VodEvent,
        observer: &mut dyn PackageObserver,
    ) -> anyhow::Result<Option<Duration>> {
        let at = match event {
            VodEvent::Video(TranscoderOutput::Config { rung, config }) => {
                if let Some(video) = self.video.get_mut(rung) {
                    let info = config.track_info(video.frame_rate);
                    video
                        .track
                        .write_init(self.output, &info, Timebase::MPEG.0)?;
                    video.config = Some(config);
                }
                None
            }
            VodEvent::Video(TranscoderOutput::Packet { rung, packet }) => {
                let at = self.reached(&packet);
                let Some(video) = self.video.get_mut(rung) else {
                    return Ok(None);
                };
                video.first_pts.get_or_insert(packet.pts);
                video.last_pts = video.last_pts.max(packet.pts);
                video.frames += 1;
                let events = video
                    .track
                    .segmenter
                    .push(packet)
                    .context("a video packet was refused by the segmenter")?;
                let ends = video.absorb(self.output, segments_of(events))?;
                if rung == 0 {
                    self.cut_audio(&ends, true)?;
                }
                (rung == 0).then_some(at)
            }
            VodEvent::Video(TranscoderOutput::Finished { .. }) => None,
            VodEvent::AudioConfig(config) => {
                let policy = if self.has_video {
                    BoundaryPolicy::Explicit
                } else {
                    BoundaryPolicy::TargetDuration
                };
                let track = Track::new(
                    "a0".to_owned(),
                    "m4a",
                    self.segments,
                    Timebase(config.sample_rate),
                    policy,
                );
                track.write_init(
                    self.output,
                    &TrackInfo::Aac {
                        config: config.clone(),
                    },
                    config.sample_rate,
                )?;
                self.audio = Some(AudioTrack {
                    track,
                    config,
                    held: VecDeque::new(),
                });
                None
            }
            VodEvent::Audio(packet) => {
                let at = (!self.has_video).then(|| self.reached(&packet));
                let Some(audio) = &mut self.audio else {
                    return Ok(None);
                };
                if self.has_video {
                    audio.held.push_back(packet);
                } else {
                    audio.push(self.output, packet)?;
                }
                at
            }
        };
        self.announce_if_playable(observer)?;
        Ok(at)
    }

    /// How far into the file packaging is, from the first packet seen, once `packet` is in
    /// (never less than before: presentation times go back and forth with B-frames).
    fn reached(&mut self, packet: &Packet) -> Duration {
        let time = packet.pts_time();
        let origin = *self.origin.get_or_insert(time);
        let secs = time.as_secs_f64() - origin.as_secs_f64();
        if secs.is_finite() && secs >= 0.0 {
            self.furthest = self.furthest.max(Duration::from_secs_f64(secs));
        }
        self.furthest
    }

    /// Asks the audio rendition for boundaries at `ends`, then segments the held audio that
    /// comes before the last of them, and (`run_past`) a few frames more so the segment
    /// before the cut closes at once.
    fn cut_audio(&mut self, ends: &[MediaTime], run_past: bool) -> anyhow::Result<()> {
        let (Some(audio), Some(last)) = (&mut self.audio, ends.last()) else {
            return Ok(());
        };
        for end in ends {
            let events = audio
                .track
                .segmenter
                .cut_at(*end)
                .context("the audio segmenter refused a cut")?;
            audio.absorb(self.output, segments_of(events))?;
        }
        let mut past = 0;
        while let Some(packet) = audio.held.front() {
            if packet.timebase.rescale(packet.dts, last.timebase) >= last.ticks {
                if !run_past || past == AUDIO_FRAMES_PAST_CUT {
                    break;
                }
                past += 1;
            }
            if let Some(packet) = audio.held.pop_front() {
                audio.push(self.output, packet)?;
            }
        }
        Ok(())
    }

    /// Writes the master playlist (with estimated bitrates) once every video rung, and the
    /// audio when the file has some, has a segment; tells the observer once.
    fn announce_if_playable(&mut self, observer: &mut dyn PackageObserver) -> anyhow::Result<()> {
        if self.playable {
            return Ok(());
        }
        let video_ready = self
            .video
            .iter()
            .all(|video| !video.track.playlist.is_empty());
        let audio_ready = !self.expects_audio
            || self
                .audio
                .as_ref()
                .is_some_and(|audio| !audio.track.playlist.is_empty());
        if !(video_ready && audio_ready) || (self.video.is_empty() && self.audio.is_none()) {
            return Ok(());
        }
        if self.write_master(false)? {
            self.playable = true;
            observer.playable();
        }
        Ok(())
    }

    /// Writes the master playlist of what has segments; false when nothing has any.
    fn write_master(&mut self, measured: bool) -> anyhow::Result<bool> {
        let mut master = MasterPlaylist::new();
        let mut variants = 0;
        for video in &self.video {
            if let Some((variant, iframes)) = video.variants(measured) {
                master.add_variant(variant);
                master.add_i_frame_variant(iframes);
                variants += 1;
            }
        }
        let audio = self.audio.as_ref().and_then(AudioTrack::rendition);
        if variants == 0 && audio.is_none() {
            return Ok(false);
        }
        if let Some(audio) = audio {
            master.set_audio(audio);
        }
        self.output
            .write(MASTER_PLAYLIST, Bytes::from(master.render()))?;
        Ok(true)
    }

    /// Flushes every rendition, writes every playlist as VOD and the measured master.
    fn finish(mut self, observer: &mut dyn PackageObserver) -> anyhow::Result<Packaged> {
        let mut last_video_ends = Vec::new();
        for (index, video) in self.video.iter_mut().enumerate() {
            let segments = video
                .track
                .segmenter
                .finish()
                .map(segments_of)
                .with_context(|| format!("cannot finish {}", video.track.dir))?;
            let ends = video.absorb(self.output, segments)?;
            if index == 0 {
                last_video_ends = ends;
            }
        }
        // The last video end is the end of the file: audio past it (the AAC encoder's last,
        // padded frame) stays in the last audio segment rather than making a sliver of its own.
        last_video_ends.pop();
        self.cut_audio(&last_video_ends, false)?;
        if let Some(audio) = &mut self.audio {
            while let Some(packet) = audio.held.pop_front() {
                audio.push(self.output, packet)?;
            }
            let segments = audio
                .track
                .segmenter
                .finish()
                .map(segments_of)
                .context("cannot finish the audio rendition")?;
            audio.absorb(self.output, segments)?;
        }

        let mut renditions = Vec::new();
        for video in &self.video {
            let (Some((variant, _)), Some(config)) = (video.variants(true), &video.config) else {
                continue;
            };
            self.output.write(
                &video.track.path(MEDIA_PLAYLIST),
                Bytes::from(video.track.playlist.render()),
            )?;
            self.output.write(
                &video.track.path("iframes.m3u8"),
                Bytes::from(video.iframes.render()),
            )?;
            renditions.push(PackagedRendition::video(
                &video.name,
                &video.track.dir,
                Some(config),
                (variant.frame_rate * 1_000.0).round() / 1_000.0,
                Bitrates {
                    peak_bps: variant.peak_bps,
                    average_bps: variant.average_bps,
                },
            ));
        }
        if self.has_video && renditions.is_empty() {
            bail!("no video segment was produced");
        }
        if let Some(audio) = self.audio.as_ref().filter(|a| !a.track.playlist.is_empty()) {
            self.output.write(
                &audio.track.path(MEDIA_PLAYLIST),
                Bytes::from(audio.track.playlist.render()),
            )?;
            renditions.push(PackagedRendition::audio(
                &audio.track.dir,
                audio.track.meter.bitrates(),
            ));
        } else if renditions.is_empty() {
            bail!("no audio segment was produced");
        }
        self.write_master(true)?;
        if !self.playable {
            self.playable = true;
            observer.playable();
        }
        Ok(Packaged { renditions })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use m3u8_rs::{MediaPlaylistType, Playlist};
    use sluice_media::fixtures::ffmpeg_clip;
    use sluice_transcoder::{EncoderSettings, Ladder};

    /// Every write, in order.
    #[derive(Default)]
    struct Recorder {
        writes: Vec<(String, Bytes)>,
    }

    impl PackageOutput for Recorder {
        fn write(&mut self, path: &str, bytes: Bytes) -> anyhow::Result<()> {
            self.writes.push((path.to_owned(), bytes));
            Ok(())
        }
    }

    /// Progress seen, and how many writes had happened when playback became possible.
    struct Watcher<'a> {
        writes: &'a dyn Fn() -> usize,
        progress: Vec<Duration>,
        playable_at: Vec<usize>,
        stop_after: Option<Duration>,
    }

    impl PackageObserver for Watcher<'_> {
        fn progress(&mut self, done: Duration) -> bool {
            self.progress.push(done);
            self.stop_after.is_none_or(|limit| done < limit)
        }

        fn playable(&mut self) {
            self.playable_at.push((self.writes)());
        }
    }

    fn clip(dir: &Path) -> PathBuf {
        ffmpeg_clip(
            dir,
            "clip.mp4",
            &[
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=320x240:rate=25",
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:sample_rate=48000",
                "-t",
                "10",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-g",
                "250",
                "-pix_fmt",
                "yuv420p",
                "-c:a",
                "aac",
            ],
        )
    }

    fn start(input: &Path, plan: SegmentPlan) -> (FileTranscode, Receiver<VodEvent>) {
        let ladder = Ladder::from_request(&serde_json::json!([
            {"name": "180p", "height": 180, "bitrate_kbps": 300}
        ]))
        .unwrap();
        let settings = EncoderSettings {
            keyframe_interval: plan.keyframe_interval(),
            threads_per_rung: 1,
            ..EncoderSettings::default()
        };
        FileTranscode::start(input, &ladder, settings, &ProbeLimits::default()).unwrap()
    }

    fn media(bytes: &[u8]) -> m3u8_rs::MediaPlaylist {
        match m3u8_rs::parse_playlist_res(bytes) {
            Ok(Playlist::MediaPlaylist(playlist)) => playlist,
            other => panic!("not a media playlist: {other:?}"),
        }
    }

    fn master(bytes: &[u8]) -> m3u8_rs::MasterPlaylist {
        match m3u8_rs::parse_playlist_res(bytes) {
            Ok(Playlist::MasterPlaylist(playlist)) => playlist,
            other => panic!("not a master playlist: {other:?}"),
        }
    }

    #[test]
    fn playlists_grow_as_event_playlists_and_end_as_vod_with_a_master_written_early() {
        let work = tempfile::tempdir().unwrap();
        let input = clip(work.path());
        let plan = SegmentPlan::new(Duration::from_secs(6));
        assert_eq!(plan.keyframe_interval(), SHORT_SEGMENT);
        let (transcode, events) = start(&input, plan);
        let recorder = std::cell::RefCell::new(Recorder::default());
        let count = || recorder.borrow().writes.len();
        let mut watcher = Watcher {
            writes: &count,
            progress: Vec::new(),
            playable_at: Vec::new(),
            stop_after: None,
        };
        let packaged = {
            let mut output = RecordingHandle(&recorder);
            package(transcode, events, plan, &mut output, &mut watcher).unwrap()
        };
        let playable_at = watcher.playable_at.clone();
        let progress = watcher.progress.clone();
        drop(watcher);
        let writes = recorder.into_inner().writes;

        assert_eq!(packaged.summary(), "1 video rendition (240x180) and audio");
        let names: Vec<_> = packaged
            .renditions
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(names, ["180p", "audio"]);
        assert_eq!(packaged.renditions[0].uri, "v0/index.m3u8");
        assert!(packaged.renditions[0].bandwidth >= packaged.renditions[0].average_bandwidth);

        // Every playlist lists only what was written before it.
        let mut written = std::collections::HashSet::new();
        for (path, bytes) in &writes {
            if path.ends_with(".m3u8") && path != MASTER_PLAYLIST {
                let dir = path.rsplit_once('/').unwrap().0;
                for segment in media(bytes).segments {
                    assert!(
                        written.contains(&format!("{dir}/{}", segment.uri)),
                        "{path}"
                    );
                }
            }
            written.insert(path.clone());
        }
        // Growing playlists are EVENT playlists; the last of each is VOD and ended.
        for name in ["v0/index.m3u8", "v0/iframes.m3u8", "a0/index.m3u8"] {
            let versions: Vec<_> = writes
                .iter()
                .filter(|(path, _)| path == name)
                .map(|(_, bytes)| media(bytes))
                .collect();
            let (last, growing) = versions.split_last().unwrap();
            assert!(!growing.is_empty(), "{name} was written while growing");
            for playlist in growing {
                assert_eq!(playlist.playlist_type, Some(MediaPlaylistType::Event));
                assert!(!playlist.end_list, "{name}");
                assert_eq!(playlist.target_duration, 6, "{name}: one target throughout");
            }
            assert_eq!(last.playlist_type, Some(MediaPlaylistType::Vod));
            assert!(last.end_list, "{name}");
        }
        let v0 = writes
            .iter()
            .rev()
            .find(|(path, _)| path == "v0/index.m3u8")
            .map(|(_, bytes)| media(bytes))
            .unwrap();
        let durations: Vec<f32> = v0.segments.iter().map(|s| s.duration).collect();
        assert_eq!(
            durations,
            [2.0, 2.0, 2.0, 4.0],
            "short segments first, then 6 s"
        );

        // The master comes early, once every rendition has a segment, with the encoder's
        // target as BANDWIDTH; the final one is measured.
        let masters: Vec<(usize, m3u8_rs::MasterPlaylist)> = writes
            .iter()
            .enumerate()
            .filter(|(_, (path, _))| path == MASTER_PLAYLIST)
            .map(|(index, (_, bytes))| (index, master(bytes)))
            .collect();
        assert_eq!(masters.len(), 2);
        let (early_at, early) = &masters[0];
        assert_eq!(playable_at, [early_at + 1], "playable told once, then");
        let last_segment = writes
            .iter()
            .rposition(|(path, _)| path.ends_with(".m4s"))
            .unwrap();
        assert!(
            *early_at < last_segment,
            "the master is written before the end"
        );
        // 300 kb/s with a VBV maximum of 330 kb/s, plus the audio.
        assert!(early.variants[0].bandwidth > 330_000);
        assert!(early.variants[0].average_bandwidth.unwrap() > 300_000);
        let (_, last) = &masters[1];
        assert_ne!(last.variants[0].bandwidth, early.variants[0].bandwidth);
        assert!(last.variants[1].is_i_frame);
        assert_eq!(last.variants[1].uri, "v0/iframes.m3u8");

        // Progress climbs to the end of the clip.
        assert!(progress.windows(2).all(|w| w[0] <= w[1]));
        let end = progress.last().unwrap().as_secs_f64();
        assert!(end > 9.5 && end <= 10.0, "{end}");
    }

    #[test]
    fn an_observer_that_gives_up_stops_packaging_with_an_error() {
        let work = tempfile::tempdir().unwrap();
        let input = clip(work.path());
        let plan = SegmentPlan::new(Duration::from_secs(6));
        let (transcode, events) = start(&input, plan);
        let count = || 0;
        let mut watcher = Watcher {
            writes: &count,
            progress: Vec::new(),
            playable_at: Vec::new(),
            stop_after: Some(Duration::from_secs(3)),
        };
        let mut output = Recorder::default();
        let error = package(transcode, events, plan, &mut output, &mut watcher).unwrap_err();
        assert_eq!(error.to_string(), "packaging was stopped");
        assert!(output
            .writes
            .iter()
            .all(|(path, _)| path != "v0/segment-3.m4s"));
    }

    /// A [`Recorder`] shared with the observer, which counts its writes.
    struct RecordingHandle<'a>(&'a std::cell::RefCell<Recorder>);

    impl PackageOutput for RecordingHandle<'_> {
        fn write(&mut self, path: &str, bytes: Bytes) -> anyhow::Result<()> {
            self.0.borrow_mut().write(path, bytes)
        }
    }
}
