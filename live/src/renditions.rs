//! The packaging side of a live session: one segmenter and media playlist per rendition, the
//! multivariant playlist, and the uploads that publish them.
//!
//! The packager does no I/O and reads no clock: objects go, in order, to a [`TreeOutput`] (a
//! playlist always after the segments it lists, an evicted segment's delete after its upload),
//! and the wall-clock time of each input is passed in with it. In a session the output is the
//! session's upload queue ([`UploadTree`]: spool files, stored in order without blocking this
//! thread) and the packager runs on its own thread (segmenting is CPU work); tests and the
//! benchmark give it outputs of their own. Every rendition's segments are cut on the same
//! instants: encoded rungs carry IDRs forced on the source timeline, and the audio rendition
//! is cut wherever the first video rendition was cut.
//!
//! MP3 audio is transcoded to AAC-LC here, synchronously, as it arrives: it costs about a
//! percent of a core, needs no queue or thread of its own, and its output reaches the audio
//! segmenter in order with the cuts the video renditions ask for.
//!
//! The packager outlives a publisher that drops inside the stream's reconnect window: the
//! source's end flushes every segmenter ([`PackagingInput::SourceEnded`]) and a returning
//! publisher resumes the same playlists after an EXT-X-DISCONTINUITY
//! ([`PackagingInput::SourceResumed`]), with a new init segment name and EXT-X-MAP when its
//! encoders' headers differ. Media sequence numbers simply go on. A recorded session keeps
//! every segment in the store and a log of them, which [`SessionPackager::finish`] hands over
//! for sealing into an asset.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use sluice_media::{
    AudioSpecificConfig, MediaTime, Packet, Timebase, TrackInfo, TrackKind, VideoConfig,
};
use sluice_packager::subtitles::{add_subtitle_rendition, SubtitleRendition};
use sluice_packager::{
    audio_rendition, fmp4, segment_end, video_variant, BitrateMeter, BoundaryPolicy, CompletedPart,
    CompletedSegment, LivePlaylist, MasterPlaylist, PackagedRendition, PartEntry, SegmentEvent,
    TrackSegmenter, MASTER_PLAYLIST, MEDIA_PLAYLIST, TRACK_ID,
};
use sluice_storage::layout;
use sluice_storage::{LiveStreamId, ObjectKey, SessionId};
use sluice_transcoder::{AacTranscoder, TranscoderOutput};
use sluice_transcribe::Line;
use tracing::{debug, warn};

use super::captions::{CaptionSettings, LiveCaptions};
use super::low_latency::{LowLatencyTree, MediaObject};
pub use super::uploader::SpoolKind;
use super::uploader::UploadQueue;

/// Segments kept in storage after they leave the playlist window, for players still on them.
const EVICTION_GRACE_SEGMENTS: usize = 4;
/// Segments a rendition may get ahead before the multivariant playlist is written without the
/// renditions that have none yet (a failed or stalled rung must not keep the stream unplayable).
const MASTER_WAIT_SEGMENTS: u64 = 2;

/// What the packaging thread is fed.
pub enum PackagingInput {
    /// The decoder configuration of video rendition `index` (from the source or an encoder).
    VideoConfig { index: usize, config: VideoConfig },
    /// A compressed video access unit of rendition `index`.
    Video { index: usize, packet: Packet },
    /// A frame of the publisher's audio track (AAC, or MP3 to transcode).
    Audio(Packet),
    /// Lines of speech the publisher recognised itself, on the session's media timeline, for
    /// the live captions (ignored without them).
    Captions(Vec<Line>),
    /// The publisher went away: every segmenter is flushed, the playlists stay open.
    SourceEnded,
    /// A publisher came back inside the reconnect window: the next segment of every rendition
    /// follows a discontinuity. Carries the MP3 transcoder of its audio, when it sends MP3.
    SourceResumed(Option<AacTranscoder>),
}

impl PackagingInput {
    /// What an encoded rung's output gives the packager (a rung's end gives nothing: the
    /// source's end flushes every rendition).
    pub fn from_rung(output: TranscoderOutput) -> Option<Self> {
        match output {
            TranscoderOutput::Config { rung, config } => Some(PackagingInput::VideoConfig {
                index: rung,
                config,
            }),
            TranscoderOutput::Packet { rung, packet } => Some(PackagingInput::Video {
                index: rung,
                packet,
            }),
            TranscoderOutput::Finished { .. } => None,
        }
    }
}

/// What a live media playlist keeps (the live stream's DVR setting, in segments).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlaylistWindow {
    /// A sliding window of this many segments.
    Segments(usize),
    /// Every segment of the session (an EVENT playlist).
    Event,
}

/// One segment of a recorded rendition, as stored under the live stream.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedSegment {
    /// Object name inside the rendition's directory.
    pub name: String,
    /// The init segment it needs (object name in the same directory).
    pub init: String,
    pub duration_secs: f64,
    /// It follows a reconnection.
    pub discontinuity: bool,
}

/// One rendition of a recorded session.
#[derive(Clone, Debug)]
pub struct RecordedRendition {
    /// Directory under the live stream: `v0`, … or `a0`.
    pub dir: String,
    pub kind: TrackKind,
    pub segments: Vec<RecordedSegment>,
    /// Its API description (name, codec, size, measured bandwidth, `{dir}/index.m3u8`).
    pub summary: PackagedRendition,
}

/// What a recorded session left in the store, for sealing into an asset.
#[derive(Clone, Debug)]
pub struct SessionRecording {
    /// Video renditions in ladder order, then audio.
    pub renditions: Vec<RecordedRendition>,
    /// The last multivariant playlist written (relative URIs, valid for the asset's tree too).
    pub master: Option<Vec<u8>>,
}

/// Where the audio rendition's AAC frames come from.
pub enum AudioInput {
    /// The publisher's AAC frames, as they are.
    PassThrough(AudioSpecificConfig),
    /// The publisher's MP3 frames, transcoded to AAC-LC on the packaging thread.
    Transcode(AacTranscoder),
}

/// Where a session's HLS tree goes, in the order the packager hands it over. Paths are
/// relative to the tree's root (`master.m3u8`, `v0/index.m3u8`, `v0/{session}-3.m4s`).
pub trait TreeOutput: Send {
    /// Takes a segment or an init segment; false when it was refused (a refused segment is
    /// never listed).
    fn put_media(&self, path: &[&str], body: &[u8], kind: SpoolKind) -> bool;

    /// Takes a playlist, to be stored after every object taken before it.
    fn put_playlist(&self, path: &[&str], body: Vec<u8>);

    /// Takes the delete of an evicted segment, to be done after its upload.
    fn delete(&self, path: &[&str]);

    /// Takes rendition `dir`'s playlist after a change, with the LL-HLS parts (object name and
    /// bytes) it lists since the last call: low-latency sessions serve these from memory.
    fn low_latency(&self, dir: &str, playlist: &LivePlaylist, parts: Vec<(String, Bytes)>) {
        let _ = (dir, playlist, parts);
    }
}

/// A live session's output: its upload queue, the tree under `live/{live_stream_id}/`, and
/// for a low-latency session its tree in memory.
pub struct UploadTree {
    pub uploads: UploadQueue,
    pub live_stream_id: LiveStreamId,
    pub low_latency: Option<Arc<LowLatencyTree>>,
}

impl UploadTree {
    fn key(&self, parts: &[&str]) -> Option<ObjectKey> {
        match layout::live_object(&self.live_stream_id, parts) {
            Ok(key) => Some(key),
            Err(e) => {
                warn!(error = %e, "Refused to build an object key.");
                None
            }
        }
    }
}

impl TreeOutput for UploadTree {
    /// Spools the object for upload; a low-latency session also keeps it in memory, so
    /// players reach it before the store has it.
    fn put_media(&self, path: &[&str], body: &[u8], kind: SpoolKind) -> bool {
        let spooled = self
            .key(path)
            .is_some_and(|key| self.uploads.spool(key, body, kind));
        if let (true, Some(tree), [dir, name]) = (spooled, &self.low_latency, path) {
            let object = match kind {
                SpoolKind::Init => MediaObject::Init,
                SpoolKind::Segment => MediaObject::Segment,
            };
            tree.keep(dir, name, object, Bytes::copy_from_slice(body));
        }
        spooled
    }

    /// Queues the playlist; it is stored after every object spooled before it.
    fn put_playlist(&self, path: &[&str], body: Vec<u8>) {
        if let Some(key) = self.key(path) {
            self.uploads.playlist(key, Bytes::from(body));
        }
    }

    /// Queues the delete, behind the object's upload.
    fn delete(&self, path: &[&str]) {
        if let Some(key) = self.key(path) {
            self.uploads.delete(key);
        }
    }

    fn low_latency(&self, dir: &str, playlist: &LivePlaylist, parts: Vec<(String, Bytes)>) {
        if let Some(tree) = &self.low_latency {
            tree.update(dir, playlist, parts);
        }
    }
}

/// Where a rendition's segmenter closed something, in order: the audio rendition closes its
/// own parts and segments at the first video rendition's.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Boundary {
    PartEnd(MediaTime),
    SegmentEnd { start: MediaTime, end: MediaTime },
}

/// Static facts about one video rendition, known when the session starts.
pub struct VideoRenditionPlan {
    /// The ladder rung's name (`source`, `720p`, …).
    pub name: String,
    pub frame_rate: f64,
}

/// One rendition being segmented and published.
struct Rendition {
    /// Directory name under the live stream: `v0`, `v1`, … or `a0`.
    dir: String,
    kind: TrackKind,
    segmenter: TrackSegmenter,
    playlist: LivePlaylist,
    meter: BitrateMeter,
    /// Segment URIs evicted from the playlist but still stored.
    evicted: VecDeque<String>,
    /// The init segment, kept until it has been spooled (one the spool refused is tried again
    /// before the next segment rather than losing the rendition).
    init: Option<Bytes>,
    init_written: bool,
    /// Object name of the current init segment: `{session}-init.mp4`, then
    /// `{session}-init-{n}.mp4` for each different header after a reconnection.
    init_name: String,
    init_changes: u32,
    segments_written: u64,
    /// Every segment published, when the session is recorded (none is deleted then).
    recorded: Option<Vec<RecordedSegment>>,
    /// The next segment published follows a reconnection.
    discontinuity_pending: bool,
    /// Parts listed since the playlist was last handed to the low-latency tree.
    unsent_parts: Vec<(String, Bytes)>,
}

/// The LL-HLS part target of a rendition of `kind`: audio parts end at the first frame at or
/// after each video part's end, so they may last one AAC frame (1024 samples) longer.
fn part_target_secs(kind: TrackKind, target: Duration, timescale: Timebase) -> f64 {
    let secs = target.as_secs_f64();
    match kind {
        TrackKind::Video => secs,
        TrackKind::Audio => {
            let frame = 1_024.0 / f64::from(timescale.0.max(1));
            ((secs + frame) * 1_000.0).ceil() / 1_000.0
        }
    }
}

impl Rendition {
    /// A rendition of `kind`: video segments are cut at keyframes once `target` is reached,
    /// audio segments only where the first video rendition was cut.
    fn new(
        dir: String,
        kind: TrackKind,
        session_id: &str,
        timescale: Timebase,
        settings: &TreeSettings,
    ) -> Self {
        let TreeSettings {
            segment: target,
            window,
            record,
            part_target,
            ..
        } = *settings;
        let policy = match kind {
            TrackKind::Video => BoundaryPolicy::TargetDuration,
            TrackKind::Audio => BoundaryPolicy::Explicit,
        };
        let init_name = format!("{session_id}-init.mp4");
        let target_secs = target.as_secs().max(1);
        let mut playlist = match window {
            PlaylistWindow::Segments(segments) => {
                LivePlaylist::new(target_secs, segments, init_name.clone())
            }
            PlaylistWindow::Event => LivePlaylist::event(target_secs, init_name.clone()),
        };
        let mut segmenter = TrackSegmenter::new(TRACK_ID, timescale, target).with_policy(policy);
        if let Some(part_target) = part_target {
            segmenter = segmenter.with_parts(part_target);
            playlist = playlist.with_parts(part_target_secs(kind, part_target, timescale));
            playlist.set_preload_hint(part_name(session_id, 0, 0, kind));
        }
        Rendition {
            dir,
            kind,
            segmenter,
            playlist,
            meter: BitrateMeter::new(),
            evicted: VecDeque::new(),
            init: None,
            init_written: false,
            init_name,
            init_changes: 0,
            segments_written: 0,
            recorded: record.then(Vec::new),
            discontinuity_pending: false,
            unsent_parts: Vec::new(),
        }
    }

    /// Stores the init segment for `track`. After a reconnection, a header that differs from
    /// the one the published segments use gets a new name, announced by EXT-X-MAP.
    fn write_init(
        &mut self,
        output: &dyn TreeOutput,
        session_id: &str,
        track: &TrackInfo,
        timescale: u32,
    ) {
        match fmp4::init_segment(track, TRACK_ID, timescale) {
            Ok(init) => {
                if self.init.as_ref() == Some(&init) && self.init_written {
                    return;
                }
                if self.init.is_some() && self.segments_written > 0 {
                    self.init_changes += 1;
                    self.init_name = format!("{session_id}-init-{}.mp4", self.init_changes);
                    self.playlist.set_init(self.init_name.clone());
                }
                self.init = Some(init);
                self.upload_init(output);
            }
            Err(e) => warn!(rendition = %self.dir, error = %e, "Cannot write the init segment."),
        }
    }

    /// Whether the init segment is stored, trying again first when the spool refused it.
    fn ensure_init(&mut self, output: &dyn TreeOutput) -> bool {
        if !self.init_written {
            self.upload_init(output);
        }
        self.init_written
    }

    fn upload_init(&mut self, output: &dyn TreeOutput) {
        if let Some(init) = &self.init {
            self.init_written =
                output.put_media(&[&self.dir, &self.init_name], init, SpoolKind::Init);
        }
    }

    /// The next segment follows a reconnection.
    fn mark_discontinuity(&mut self) {
        self.playlist.mark_discontinuity();
        self.discontinuity_pending = true;
    }

    /// Spools a finished segment, then queues the playlist that lists it.
    fn publish(
        &mut self,
        output: &dyn TreeOutput,
        session_id: &str,
        segment: CompletedSegment,
        origin: &Origin,
    ) {
        if !self.ensure_init(output) {
            warn!(rendition = %self.dir, "Segment dropped: no init segment could be written.");
            self.drop_segment(session_id, segment.sequence);
            return;
        }
        let name = format!("{session_id}-{}.{}", segment.sequence, extension(self.kind));
        let bytes = segment.data.len() as u64;
        if !output.put_media(&[&self.dir, &name], &segment.data, SpoolKind::Segment) {
            self.drop_segment(session_id, segment.sequence);
            return;
        }
        self.meter.add_segment(bytes, segment.duration);
        let duration_secs = segment.duration.as_secs_f64();
        let evicted = self.playlist.push_segment(
            name.clone(),
            duration_secs,
            origin.wall_clock(segment.start),
        );
        self.segments_written += 1;
        self.playlist
            .set_preload_hint(part_name(session_id, segment.sequence + 1, 0, self.kind));
        self.write_playlist(output);
        let discontinuity = std::mem::take(&mut self.discontinuity_pending);
        if let Some(recorded) = &mut self.recorded {
            // A recorded segment stays in the store until the recording is sealed.
            recorded.push(RecordedSegment {
                name,
                init: self.init_name.clone(),
                duration_secs,
                discontinuity,
            });
            return;
        }
        self.evicted.extend(evicted);
        while self.evicted.len() > EVICTION_GRACE_SEGMENTS {
            if let Some(old) = self.evicted.pop_front() {
                output.delete(&[&self.dir, &old]);
            }
        }
    }

    /// Leaves segment `sequence` unlisted, and its parts with it: a segment is listed whole
    /// or not at all.
    fn drop_segment(&mut self, session_id: &str, sequence: u64) {
        self.playlist.discard_open_parts();
        self.unsent_parts.clear();
        self.playlist
            .set_preload_hint(part_name(session_id, sequence + 1, 0, self.kind));
    }

    /// Queues the playlist for the store.
    fn write_playlist(&self, output: &dyn TreeOutput) {
        output.put_playlist(&[&self.dir, MEDIA_PLAYLIST], self.playlist.render());
    }

    /// Hands the playlist as it is now, with the parts listed since the last time, to the
    /// low-latency tree: once per batch of segmenter events, so a reader never sees a part
    /// listed without the segment that closed with it.
    fn hand_over(&mut self, output: &dyn TreeOutput) {
        output.low_latency(
            &self.dir,
            &self.playlist,
            std::mem::take(&mut self.unsent_parts),
        );
    }

    /// Lists a part (once the init segment it needs is stored).
    fn publish_part(
        &mut self,
        output: &dyn TreeOutput,
        session_id: &str,
        part: CompletedPart,
        origin: &Origin,
    ) {
        if !self.ensure_init(output) {
            return;
        }
        let name = part_name(session_id, part.segment, part.index, self.kind);
        let next = part_name(session_id, part.segment, part.index + 1, self.kind);
        self.playlist.push_part(
            PartEntry {
                uri: name.clone(),
                duration_secs: part.duration.as_secs_f64(),
                independent: part.independent,
            },
            origin.wall_clock(part.start),
            next,
        );
        self.unsent_parts.push((name, part.data));
    }

    /// Handles what a segmenter returned; returns where it closed parts and segments.
    fn absorb(
        &mut self,
        output: &dyn TreeOutput,
        session_id: &str,
        events: Vec<SegmentEvent>,
        origin: &Origin,
    ) -> Vec<Boundary> {
        let mut ends = Vec::new();
        for event in events {
            match event {
                SegmentEvent::Part(part) => {
                    ends.push(Boundary::PartEnd(MediaTime::new(
                        part.start.ticks + part.duration.ticks,
                        part.start.timebase,
                    )));
                    self.publish_part(output, session_id, part, origin);
                }
                SegmentEvent::Segment(segment) => {
                    ends.push(Boundary::SegmentEnd {
                        start: segment.start,
                        end: segment_end(&segment),
                    });
                    self.publish(output, session_id, segment, origin);
                }
                SegmentEvent::TimestampRepaired { received, repaired } => {
                    debug!(rendition = %self.dir, %received, %repaired, "Repaired a decode timestamp.");
                }
                SegmentEvent::DroppedBeforeKeyframe { dts } => {
                    debug!(rendition = %self.dir, %dts, "Dropped a packet before the first keyframe.");
                }
            }
        }
        if !ends.is_empty() {
            self.hand_over(output);
        }
        ends
    }
}

/// Audio segments and parts get `.m4a`, which the API serves as `audio/mp4`.
fn extension(kind: TrackKind) -> &'static str {
    match kind {
        TrackKind::Video => "m4s",
        TrackKind::Audio => "m4a",
    }
}

/// Object name of part `index` of segment `sequence`: `{session}-{sequence}.{index}.m4s`.
fn part_name(session_id: &str, sequence: u64, index: u32, kind: TrackKind) -> String {
    format!("{session_id}-{sequence}.{index}.{}", extension(kind))
}

/// Maps media time to wall-clock time for EXT-X-PROGRAM-DATE-TIME.
struct Origin {
    media: Option<MediaTime>,
    wall: DateTime<Utc>,
}

impl Origin {
    fn wall_clock(&self, at: MediaTime) -> DateTime<Utc> {
        let Some(origin) = self.media else {
            return self.wall;
        };
        let offset = at.as_secs_f64() - origin.as_secs_f64();
        self.wall + chrono::Duration::milliseconds((offset * 1_000.0).round() as i64)
    }
}

/// How a session's tree is cut and kept.
#[derive(Clone, Debug)]
pub struct TreeSettings {
    /// Names the session's objects (`{session_id}-{n}.m4s`), so a new session never reuses a
    /// name a player or cache may hold.
    pub session_id: SessionId,
    /// Target segment duration.
    pub segment: Duration,
    pub window: PlaylistWindow,
    /// Keep every segment (none is deleted) for the session's asset.
    pub record: bool,
    /// The LL-HLS part target of a low-latency session: segments are also made as parts.
    pub part_target: Option<Duration>,
    /// Live captions, recognised from the audio rendition.
    pub captions: Option<CaptionSettings>,
}

/// Segments and publishes every rendition of one live session.
pub struct SessionPackager {
    output: Box<dyn TreeOutput>,
    session_id: SessionId,
    video: Vec<(Rendition, VideoRenditionPlan, Option<VideoConfig>)>,
    audio: Option<(Rendition, AudioSpecificConfig)>,
    transcoder: Option<AacTranscoder>,
    origin: Origin,
    /// The multivariant playlist last written.
    master_written: Option<Vec<u8>>,
    /// The same without the live captions, which a recording does not keep.
    recording_master: Option<Vec<u8>>,
    captions: Option<LiveCaptions>,
}

impl SessionPackager {
    /// A packager for these renditions writing to `output`, started at wall-clock time `now`.
    pub fn new(
        output: Box<dyn TreeOutput>,
        settings: TreeSettings,
        video: Vec<VideoRenditionPlan>,
        audio: Option<AudioInput>,
        now: DateTime<Utc>,
    ) -> Self {
        let session_id = settings.session_id.clone();
        let video = video
            .into_iter()
            .enumerate()
            .map(|(index, plan)| {
                let rendition = Rendition::new(
                    format!("v{index}"),
                    TrackKind::Video,
                    &session_id,
                    Timebase::MPEG,
                    &settings,
                );
                (rendition, plan, None)
            })
            .collect();
        let (config, transcoder) = match audio {
            Some(AudioInput::PassThrough(config)) => (Some(config), None),
            Some(AudioInput::Transcode(transcoder)) => {
                (Some(transcoder.config().clone()), Some(transcoder))
            }
            None => (None, None),
        };
        let audio = config.map(|config| {
            let mut rendition = Rendition::new(
                "a0".to_owned(),
                TrackKind::Audio,
                &session_id,
                Timebase(config.sample_rate),
                &settings,
            );
            rendition.write_init(
                &*output,
                &session_id,
                &TrackInfo::Aac {
                    config: config.clone(),
                },
                config.sample_rate,
            );
            (rendition, config)
        });
        // Captions are recognised from the audio rendition: a session without one has none.
        let captions = settings
            .captions
            .filter(|_| audio.is_some())
            .and_then(|captions| {
                LiveCaptions::start(captions, &session_id, settings.segment, settings.window)
                    .map_err(|e| warn!(error = %e, "Live captions cannot start."))
                    .ok()
            });
        SessionPackager {
            output,
            session_id,
            video,
            audio,
            transcoder,
            origin: Origin {
                media: None,
                wall: now,
            },
            master_written: None,
            recording_master: None,
            captions,
        }
    }

    /// Handles one input, which arrived at wall-clock time `now`, then publishes the captions
    /// due by then.
    pub fn handle(&mut self, input: PackagingInput, now: DateTime<Utc>) {
        self.handle_input(input, now);
        let published = match &mut self.captions {
            Some(captions) => captions.poll(&*self.output, now),
            None => false,
        };
        if published {
            self.write_master_if_changed();
        }
    }

    fn handle_input(&mut self, input: PackagingInput, now: DateTime<Utc>) {
        match input {
            PackagingInput::VideoConfig { index, config } => {
                let Some((rendition, plan, slot)) = self.video.get_mut(index) else {
                    return;
                };
                let track = config.track_info(Some(plan.frame_rate));
                rendition.write_init(&*self.output, &self.session_id, &track, Timebase::MPEG.0);
                *slot = Some(config);
            }
            PackagingInput::Video { index, packet } => {
                self.note_origin(&packet, now);
                let Some((rendition, _, _)) = self.video.get_mut(index) else {
                    return;
                };
                let events = match rendition.segmenter.push(packet) {
                    Ok(events) => events,
                    Err(e) => {
                        warn!(rendition = %rendition.dir, error = %e, "Packet refused by the segmenter.");
                        return;
                    }
                };
                let ends = rendition.absorb(&*self.output, &self.session_id, events, &self.origin);
                let closed_a_segment = ends
                    .iter()
                    .any(|end| matches!(end, Boundary::SegmentEnd { .. }));
                if index == 0 {
                    if let Some(captions) = &mut self.captions {
                        for end in &ends {
                            if let Boundary::SegmentEnd { start, end } = end {
                                captions.track.segment_closed(
                                    start.as_secs_f64(),
                                    end.as_secs_f64(),
                                    self.origin.wall_clock(*start),
                                    now,
                                );
                            }
                        }
                    }
                    self.cut_audio(ends);
                }
                if closed_a_segment {
                    self.write_master_if_changed();
                }
            }
            PackagingInput::Audio(packet) => {
                self.note_origin(&packet, now);
                let Some(transcoder) = &mut self.transcoder else {
                    self.push_audio(packet);
                    return;
                };
                match transcoder.push(&packet) {
                    Ok(packets) => packets.into_iter().for_each(|p| self.push_audio(p)),
                    Err(e) => warn!(error = %e, "Audio transcoding failed for a packet."),
                }
            }
            PackagingInput::Captions(lines) => {
                if let Some(captions) = &mut self.captions {
                    captions.take_publisher_lines(lines);
                }
            }
            PackagingInput::SourceEnded => self.flush(),
            PackagingInput::SourceResumed(transcoder) => {
                self.transcoder = transcoder;
                for rendition in self.renditions_mut() {
                    rendition.mark_discontinuity();
                }
                if let Some(captions) = &mut self.captions {
                    captions.track.mark_discontinuity();
                }
                // Wall-clock times start again from the returning publisher's first packet.
                self.origin.media = None;
            }
        }
    }

    fn renditions_mut(&mut self) -> impl Iterator<Item = &mut Rendition> {
        self.video
            .iter_mut()
            .map(|(rendition, _, _)| rendition)
            .chain(self.audio.as_mut().map(|(rendition, _)| rendition))
    }

    /// Segments one AAC frame of the audio rendition (and hands it to the captions).
    fn push_audio(&mut self, packet: Packet) {
        let Some((rendition, config)) = &mut self.audio else {
            return;
        };
        if let Some(captions) = &mut self.captions {
            captions.push_audio(config, &packet);
        }
        match rendition.segmenter.push(packet) {
            Ok(events) => {
                if rendition
                    .absorb(&*self.output, &self.session_id, events, &self.origin)
                    .iter()
                    .any(|end| matches!(end, Boundary::SegmentEnd { .. }))
                {
                    self.write_master_if_changed();
                }
            }
            Err(e) => warn!(error = %e, "Audio packet refused by the segmenter."),
        }
    }

    /// Encodes what the audio transcoder still holds into the audio rendition.
    fn finish_transcoding(&mut self) {
        let Some(transcoder) = self.transcoder.take() else {
            return;
        };
        let skipped = transcoder.decode_errors();
        if skipped > 0 {
            warn!(
                skipped,
                "MP3 audio frames that did not decode were skipped."
            );
        }
        match transcoder.finish() {
            Ok(packets) => packets.into_iter().for_each(|p| self.push_audio(p)),
            Err(e) => warn!(error = %e, "Flushing the audio transcoder failed."),
        }
    }

    fn note_origin(&mut self, packet: &Packet, now: DateTime<Utc>) {
        if self.origin.media.is_none() {
            self.origin.media = Some(packet.dts_time());
            self.origin.wall = now;
        }
    }

    /// Ends the audio rendition's parts and segments where the first video rendition's ended.
    fn cut_audio(&mut self, ends: Vec<Boundary>) {
        let Some((rendition, _)) = &mut self.audio else {
            return;
        };
        let mut events = Vec::new();
        for end in ends {
            let cut = match end {
                Boundary::PartEnd(at) => rendition.segmenter.end_part_at(at),
                Boundary::SegmentEnd { end, .. } => rendition.segmenter.cut_at(end),
            };
            match cut {
                Ok(closed) => events.extend(closed),
                Err(e) => warn!(error = %e, "Audio cut refused by the segmenter."),
            }
        }
        rendition.absorb(&*self.output, &self.session_id, events, &self.origin);
    }

    /// Writes the multivariant playlist once every rendition has a segment (or one rendition is
    /// [`MASTER_WAIT_SEGMENTS`] ahead: then it lists those that have segments), and again
    /// whenever a measured bandwidth or a late rendition changes it.
    fn write_master_if_changed(&mut self) {
        let renditions = || {
            self.video
                .iter()
                .map(|(rendition, _, _)| rendition)
                .chain(self.audio.iter().map(|(rendition, _)| rendition))
        };
        let all_started = renditions().all(|rendition| rendition.segments_written > 0);
        let late = renditions().any(|rendition| rendition.segments_written >= MASTER_WAIT_SEGMENTS);
        if !all_started && !late {
            return;
        }
        let mut master = MasterPlaylist::new();
        let mut variants = 0;
        for (rendition, plan, config) in &self.video {
            let Some(config) = config.as_ref().filter(|_| rendition.segments_written > 0) else {
                continue;
            };
            variants += 1;
            master.add_variant(video_variant(
                &rendition.dir,
                config,
                plan.frame_rate,
                rendition.meter.bitrates(),
            ));
        }
        if variants == 0 {
            return;
        }
        if let Some((rendition, config)) =
            self.audio.as_ref().filter(|(r, _)| r.segments_written > 0)
        {
            master.set_audio(audio_rendition(
                &rendition.dir,
                config,
                rendition.meter.bitrates(),
            ));
        }
        let text = master.render();
        let published = match self.captions.as_ref().filter(|c| c.track.has_segments()) {
            Some(captions) => {
                let settings = captions.settings();
                let rendition = SubtitleRendition::new(&settings.language, &settings.name);
                add_subtitle_rendition(&text, &rendition).unwrap_or_else(|e| {
                    warn!(error = %e, "The live captions cannot be listed.");
                    text.clone()
                })
            }
            None => text.clone(),
        };
        self.recording_master = Some(text);
        if self.master_written.as_ref() != Some(&published) {
            self.output
                .put_playlist(&[MASTER_PLAYLIST], published.clone());
            self.master_written = Some(published);
        }
    }

    /// Flushes every segmenter, ends every playlist and writes the final multivariant playlist.
    /// Returns what a recorded session left for its asset.
    pub fn finish(mut self) -> Option<SessionRecording> {
        self.flush();
        if let Some(captions) = &mut self.captions {
            captions.finish(&*self.output);
            // Its first segment may have come only now.
            self.write_master_if_changed();
        }
        // Video playlists end first and the audio playlist last: once `a0` carries
        // EXT-X-ENDLIST, every rendition of the session has ended.
        let output = &*self.output;
        for rendition in self
            .video
            .iter_mut()
            .map(|(rendition, _, _)| rendition)
            .chain(self.audio.as_mut().map(|(rendition, _)| rendition))
        {
            rendition.playlist.end();
            if rendition.segments_written > 0 {
                rendition.write_playlist(output);
            }
            rendition.hand_over(output);
        }
        self.recording()
    }

    /// The recorded renditions (`None` when the session is not recorded).
    fn recording(self) -> Option<SessionRecording> {
        let mut renditions = Vec::new();
        for (rendition, plan, config) in self.video {
            let summary = PackagedRendition::video(
                &plan.name,
                &rendition.dir,
                config.as_ref(),
                plan.frame_rate,
                rendition.meter.bitrates(),
            );
            renditions.push(RecordedRendition {
                dir: rendition.dir,
                kind: TrackKind::Video,
                segments: rendition.recorded?,
                summary,
            });
        }
        if let Some((rendition, _)) = self.audio {
            let summary = PackagedRendition::audio(&rendition.dir, rendition.meter.bitrates());
            renditions.push(RecordedRendition {
                dir: rendition.dir,
                kind: TrackKind::Audio,
                segments: rendition.recorded?,
                summary,
            });
        }
        Some(SessionRecording {
            renditions,
            master: self.recording_master,
        })
    }

    /// Publishes what every segmenter holds (the source ended, for now or for good) and the
    /// multivariant playlist that goes with it; the playlists stay open.
    fn flush(&mut self) {
        self.finish_transcoding();
        let mut video_ends = Vec::new();
        for (index, (rendition, _, _)) in self.video.iter_mut().enumerate() {
            let events = flush(&mut rendition.segmenter, &rendition.dir);
            let ends = rendition.absorb(&*self.output, &self.session_id, events, &self.origin);
            if index == 0 {
                video_ends = ends;
            }
        }
        self.cut_audio(video_ends);
        if let Some((rendition, _)) = &mut self.audio {
            let events = flush(&mut rendition.segmenter, &rendition.dir);
            rendition.absorb(&*self.output, &self.session_id, events, &self.origin);
        }
        self.write_master_if_changed();
    }
}

/// Ends a segmenter, as segment events (a failure is logged: the segments before it stand).
fn flush(segmenter: &mut TrackSegmenter, dir: &str) -> Vec<SegmentEvent> {
    match segmenter.finish() {
        Ok(events) => events,
        Err(e) => {
            warn!(rendition = %dir, error = %e, "Flushing the segmenter failed.");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    use chrono::TimeZone;
    use sluice_media::fixtures::avc_320x240;

    use super::*;

    /// An output that notes, in order, what it took (`media v0/…`, `playlist v0/index.m3u8`,
    /// `delete v0/…`) with the bodies of playlists, and refuses media while `full` is set.
    #[derive(Default)]
    struct NotedTree {
        taken: Mutex<Vec<String>>,
        playlists: Mutex<Vec<(String, String)>>,
        full: AtomicBool,
        /// Each low-latency hand-over: the rendition, its LL-HLS playlist as rendered then,
        /// and the names of the parts handed over.
        low_latency: Mutex<Vec<(String, String, Vec<String>)>>,
    }

    impl NotedTree {
        fn taken(&self) -> Vec<String> {
            self.taken.lock().unwrap().clone()
        }

        /// The last version of the playlist at `path`.
        fn playlist(&self, path: &str) -> String {
            let playlists = self.playlists.lock().unwrap();
            let (_, body) = playlists.iter().rfind(|(p, _)| p == path).unwrap();
            body.clone()
        }
    }

    impl TreeOutput for Arc<NotedTree> {
        fn put_media(&self, path: &[&str], _body: &[u8], _kind: SpoolKind) -> bool {
            if self.full.load(Ordering::Relaxed) {
                return false;
            }
            self.taken
                .lock()
                .unwrap()
                .push(format!("media {}", path.join("/")));
            true
        }

        fn put_playlist(&self, path: &[&str], body: Vec<u8>) {
            let path = path.join("/");
            self.taken.lock().unwrap().push(format!("playlist {path}"));
            let body = String::from_utf8(body).unwrap();
            self.playlists.lock().unwrap().push((path, body));
        }

        fn delete(&self, path: &[&str]) {
            self.taken
                .lock()
                .unwrap()
                .push(format!("delete {}", path.join("/")));
        }

        fn low_latency(&self, dir: &str, playlist: &LivePlaylist, parts: Vec<(String, Bytes)>) {
            let plain = |uri: &str| uri.to_owned();
            let view = sluice_packager::LowLatencyView {
                skip: false,
                reports: &[],
                uri: &plain,
            };
            let rendered = String::from_utf8(playlist.render_low_latency(&view)).unwrap();
            let names = parts.into_iter().map(|(name, _)| name).collect();
            self.low_latency
                .lock()
                .unwrap()
                .push((dir.to_owned(), rendered, names));
        }
    }

    /// Wall-clock time at the first packet.
    fn clock() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 6, 12, 0, 0).unwrap()
    }

    /// A one-rendition (video only) packager on `tree`, 1 s segments.
    fn packager(tree: &Arc<NotedTree>, window: PlaylistWindow) -> SessionPackager {
        packager_with_parts(tree, window, None)
    }

    /// [`packager`] making LL-HLS parts of at most `part_target`.
    fn packager_with_parts(
        tree: &Arc<NotedTree>,
        window: PlaylistWindow,
        part_target: Option<Duration>,
    ) -> SessionPackager {
        let settings = TreeSettings {
            session_id: SessionId::parse("ses_1").unwrap(),
            segment: Duration::from_secs(1),
            window,
            record: false,
            part_target,
            captions: None,
        };
        let plans = vec![VideoRenditionPlan {
            name: "source".to_owned(),
            frame_rate: 30.0,
        }];
        let mut packager =
            SessionPackager::new(Box::new(tree.clone()), settings, plans, None, clock());
        packager.handle(
            PackagingInput::VideoConfig {
                index: 0,
                config: VideoConfig::Avc(avc_320x240()),
            },
            clock(),
        );
        packager
    }

    /// `seconds` of 30 fps video from `start_frame`, a key frame every second.
    fn feed(packager: &mut SessionPackager, start_frame: i64, seconds: i64) {
        for frame in start_frame..start_frame + seconds * 30 {
            let ticks = frame * 3_000;
            let packet = Packet {
                kind: TrackKind::Video,
                timebase: Timebase::MPEG,
                dts: ticks,
                pts: ticks,
                keyframe: frame % 30 == 0,
                data: Bytes::from_static(&[0, 0, 0, 2, 0x65, 0x88]),
            };
            let now = clock() + chrono::Duration::milliseconds(frame * 1_000 / 30);
            packager.handle(PackagingInput::Video { index: 0, packet }, now);
        }
    }

    /// The segment names listed in a media playlist.
    fn listed(playlist: &str) -> Vec<&str> {
        playlist
            .lines()
            .filter(|line| line.ends_with(".m4s"))
            .collect()
    }

    #[test]
    fn a_segment_is_taken_before_the_playlist_that_lists_it_and_the_master_after_the_first() {
        let tree = Arc::new(NotedTree::default());
        let mut packager = packager(&tree, PlaylistWindow::Segments(6));
        feed(&mut packager, 0, 4);
        packager.finish();

        let taken = tree.taken();
        let playlists = tree.playlists.lock().unwrap().clone();
        let mut versions = playlists.iter().filter(|(path, _)| path == "v0/index.m3u8");
        for (at, line) in taken.iter().enumerate() {
            if line != "playlist v0/index.m3u8" {
                continue;
            }
            let (_, body) = versions.next().unwrap();
            for name in listed(body) {
                let media = format!("media v0/{name}");
                assert!(taken[..at].contains(&media), "{name} listed before taken");
            }
        }
        let first_segment = taken.iter().position(|l| l.ends_with(".m4s")).unwrap();
        let master = taken
            .iter()
            .position(|l| *l == "playlist master.m3u8")
            .expect("a master playlist");
        assert!(first_segment < master, "{taken:?}");
        assert_eq!(
            taken[0], "media v0/ses_1-init.mp4",
            "the init segment comes first"
        );
        let last = tree.playlist("v0/index.m3u8");
        assert_eq!(listed(&last).len(), 4, "{last}");
        assert!(last.ends_with("#EXT-X-ENDLIST\n"), "{last}");
    }

    #[test]
    fn program_date_times_follow_the_clock_passed_in() {
        let tree = Arc::new(NotedTree::default());
        let mut packager = packager(&tree, PlaylistWindow::Segments(6));
        feed(&mut packager, 0, 3);
        packager.finish();

        let playlist = tree.playlist("v0/index.m3u8");
        let times: Vec<&str> = playlist
            .lines()
            .filter_map(|line| line.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:"))
            .collect();
        assert_eq!(
            times,
            [
                "2026-12-06T12:00:00.000Z",
                "2026-12-06T12:00:01.000Z",
                "2026-12-06T12:00:02.000Z"
            ]
        );
    }

    #[test]
    fn a_segment_the_output_refuses_is_never_listed() {
        let tree = Arc::new(NotedTree::default());
        let mut packager = packager(&tree, PlaylistWindow::Event);
        feed(&mut packager, 0, 2);
        tree.full.store(true, Ordering::Relaxed);
        feed(&mut packager, 60, 2);
        tree.full.store(false, Ordering::Relaxed);
        feed(&mut packager, 120, 2);
        packager.finish();

        let last = tree.playlist("v0/index.m3u8");
        let names = listed(&last);
        assert_eq!(
            names,
            ["ses_1-0.m4s", "ses_1-3.m4s", "ses_1-4.m4s", "ses_1-5.m4s"],
            "segments closed while the output was full are left out"
        );
        for refused in ["ses_1-1.m4s", "ses_1-2.m4s"] {
            assert!(!tree.taken().contains(&format!("media v0/{refused}")));
        }
    }

    #[test]
    fn the_parts_of_a_segment_the_output_refuses_leave_the_low_latency_playlist_with_it() {
        let tree = Arc::new(NotedTree::default());
        let part_target = Some(Duration::from_millis(334));
        let mut packager = packager_with_parts(&tree, PlaylistWindow::Event, part_target);
        feed(&mut packager, 0, 2);
        tree.full.store(true, Ordering::Relaxed);
        feed(&mut packager, 60, 1);
        tree.full.store(false, Ordering::Relaxed);
        feed(&mut packager, 90, 3);
        let handed = tree.low_latency.lock().unwrap().clone();
        let (_, live, _) = handed.last().unwrap();
        assert!(
            !live.contains("ses_1-1.m4s") && !live.contains("ses_1-1.0.m4s"),
            "{live}"
        );
        sluice_packager::ll_hls_conformance::check(live)
            .unwrap_or_else(|e| panic!("{e:#?}\n{live}"));
    }

    #[test]
    fn segments_leaving_the_window_are_deleted_after_the_grace_and_after_they_were_taken() {
        let tree = Arc::new(NotedTree::default());
        let mut packager = packager(&tree, PlaylistWindow::Segments(2));
        feed(&mut packager, 0, 10);
        packager.finish();

        let taken = tree.taken();
        let deleted: Vec<&String> = taken.iter().filter(|l| l.starts_with("delete ")).collect();
        // 10 segments, 2 in the window, 4 kept for players still on them.
        assert_eq!(deleted.len(), 10 - 2 - EVICTION_GRACE_SEGMENTS, "{taken:?}");
        for delete in deleted {
            let name = delete.trim_start_matches("delete ");
            let put = taken.iter().position(|l| *l == format!("media {name}"));
            let gone = taken.iter().position(|l| l == delete);
            assert!(put < gone, "{name} deleted before it was taken");
        }
        assert_eq!(listed(&tree.playlist("v0/index.m3u8")).len(), 2);
    }

    #[test]
    fn a_resumed_source_goes_on_after_a_discontinuity_in_the_same_playlist() {
        let tree = Arc::new(NotedTree::default());
        let mut packager = packager(&tree, PlaylistWindow::Event);
        feed(&mut packager, 0, 2);
        packager.handle(PackagingInput::SourceEnded, clock());
        packager.handle(PackagingInput::SourceResumed(None), clock());
        feed(&mut packager, 90, 2);
        packager.finish();

        let playlist = tree.playlist("v0/index.m3u8");
        let discontinuity = playlist
            .find("#EXT-X-DISCONTINUITY")
            .expect("a discontinuity");
        assert!(
            playlist[..discontinuity].contains("ses_1-1.m4s"),
            "{playlist}"
        );
        assert!(
            playlist[discontinuity..].contains("ses_1-2.m4s"),
            "{playlist}"
        );
        assert_eq!(listed(&playlist).len(), 4);
    }

    /// The durations of every part of `dir` handed over, in order.
    fn part_durations(tree: &NotedTree, dir: &str) -> Vec<f64> {
        let handed = tree.low_latency.lock().unwrap();
        let (_, last, _) = handed.iter().rfind(|(d, _, _)| d == dir).unwrap();
        last.lines()
            .filter_map(|line| line.strip_prefix("#EXT-X-PART:DURATION="))
            .map(|rest| rest.split(',').next().unwrap().parse().unwrap())
            .collect()
    }

    #[test]
    fn a_low_latency_session_hands_over_parts_with_audio_ending_its_parts_after_the_videos() {
        let tree = Arc::new(NotedTree::default());
        let settings = TreeSettings {
            session_id: SessionId::parse("ses_1").unwrap(),
            segment: Duration::from_secs(1),
            window: PlaylistWindow::Segments(6),
            record: false,
            part_target: Some(Duration::from_millis(334)),
            captions: None,
        };
        let plans = vec![VideoRenditionPlan {
            name: "source".to_owned(),
            frame_rate: 30.0,
        }];
        // AAC-LC, 48 kHz, stereo.
        let audio = AudioSpecificConfig::parse(&[0x11, 0x90]).unwrap();
        let mut packager = SessionPackager::new(
            Box::new(tree.clone()),
            settings,
            plans,
            Some(AudioInput::PassThrough(audio)),
            clock(),
        );
        packager.handle(
            PackagingInput::VideoConfig {
                index: 0,
                config: VideoConfig::Avc(avc_320x240()),
            },
            clock(),
        );
        // Three seconds, the audio a little ahead of the video as encoders deliver it.
        let mut next_audio = 0;
        for frame in 0..90 {
            while next_audio * 1_024 * 1_000 / 48_000 <= (frame + 3) * 1_000 / 30 {
                let ticks = next_audio * 1_024;
                let packet = Packet {
                    kind: TrackKind::Audio,
                    timebase: Timebase(48_000),
                    dts: ticks,
                    pts: ticks,
                    keyframe: true,
                    data: Bytes::from_static(&[0x21, 0x10]),
                };
                packager.handle(PackagingInput::Audio(packet), clock());
                next_audio += 1;
            }
            let ticks = frame * 3_000;
            let packet = Packet {
                kind: TrackKind::Video,
                timebase: Timebase::MPEG,
                dts: ticks,
                pts: ticks,
                keyframe: frame % 30 == 0,
                data: Bytes::from_static(&[0, 0, 0, 2, 0x65, 0x88]),
            };
            packager.handle(PackagingInput::Video { index: 0, packet }, clock());
        }
        let live: Vec<(String, String, Vec<String>)> = tree.low_latency.lock().unwrap().clone();
        let (_, mid_stream, _) = live.iter().rfind(|(dir, _, _)| dir == "v0").unwrap();
        assert!(
            mid_stream.contains("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"ses_1-"),
            "{mid_stream}"
        );
        sluice_packager::ll_hls_conformance::check(mid_stream)
            .unwrap_or_else(|e| panic!("{e:#?}\n{mid_stream}"));
        let names: Vec<&str> = live
            .iter()
            .filter(|(dir, _, _)| dir == "v0")
            .flat_map(|(_, _, names)| names.iter().map(String::as_str))
            .collect();
        assert_eq!(
            names[..4],
            [
                "ses_1-0.0.m4s",
                "ses_1-0.1.m4s",
                "ses_1-0.2.m4s",
                "ses_1-1.0.m4s"
            ]
        );

        packager.finish();
        for dir in ["v0", "a0"] {
            let handed = tree.low_latency.lock().unwrap();
            let (_, ended, _) = handed.iter().rfind(|(d, _, _)| d == dir).unwrap();
            assert!(ended.ends_with("#EXT-X-ENDLIST\n"), "{ended}");
            sluice_packager::ll_hls_conformance::check(ended)
                .unwrap_or_else(|e| panic!("{dir}: {e:#?}\n{ended}"));
        }
        // Each audio part ends at the first AAC frame at or after its video part's end.
        let (video, audio) = (part_durations(&tree, "v0"), part_durations(&tree, "a0"));
        // The audio past the video's end at the finish makes one more, short, last part.
        assert!(
            audio.len() == video.len() || audio.len() == video.len() + 1,
            "{video:?} {audio:?}"
        );
        let (mut video_end, mut audio_end) = (0.0, 0.0);
        for (v, a) in video.iter().zip(&audio) {
            video_end += v;
            audio_end += a;
            assert!(
                (0.0..0.0214).contains(&(audio_end - video_end + 0.0001)),
                "audio parts end {audio_end} against video {video_end}"
            );
        }
    }
}
