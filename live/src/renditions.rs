//! The packaging side of a live session: one segmenter and media playlist per rendition, the
//! multivariant playlist, and the uploads that publish them.
//!
//! Runs on its own thread (segmenting is CPU work). Objects are handed to the session's
//! [`UploadQueue`], which spools segments and stores everything in order without blocking this
//! thread, so a playlist is never stored before the segments it lists. Every rendition's segments are cut
//! on the same instants: encoded rungs carry IDRs forced on the source timeline, and the audio
//! rendition is cut wherever the first video rendition was cut.
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
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use sluice_media::{
    AudioSpecificConfig, MediaTime, Packet, Timebase, TrackInfo, TrackKind, VideoConfig,
};
use sluice_packager::{
    audio_rendition, fmp4, segment_end, video_variant, BitrateMeter, BoundaryPolicy,
    CompletedSegment, LivePlaylist, MasterPlaylist, PackagedRendition, SegmentEvent,
    TrackSegmenter, MASTER_PLAYLIST, MEDIA_PLAYLIST, TRACK_ID,
};
use sluice_storage::layout;
use sluice_storage::ObjectKey;
use sluice_transcoder::AacTranscoder;
use tracing::{debug, warn};

use super::uploader::{SpoolKind, UploadQueue};

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
    /// The publisher went away: every segmenter is flushed, the playlists stay open.
    SourceEnded,
    /// A publisher came back inside the reconnect window: the next segment of every rendition
    /// follows a discontinuity. Carries the MP3 transcoder of its audio, when it sends MP3.
    SourceResumed(Option<AacTranscoder>),
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

/// Where and how a session's objects are written.
pub struct Destination {
    pub uploads: UploadQueue,
    pub live_stream_id: String,
    pub session_id: String,
}

impl Destination {
    fn key(&self, parts: &[&str]) -> Option<ObjectKey> {
        match layout::live_object(&self.live_stream_id, parts) {
            Ok(key) => Some(key),
            Err(e) => {
                warn!(error = %e, "Refused to build an object key.");
                None
            }
        }
    }

    /// Spools a segment (or an init segment) for upload; returns whether it was accepted (a
    /// refused one must not be listed).
    fn put(&self, parts: &[&str], body: &[u8], kind: SpoolKind) -> bool {
        self.key(parts)
            .is_some_and(|key| self.uploads.spool(key, body, kind))
    }

    /// Queues a playlist; it is stored after every segment spooled before it.
    fn put_playlist(&self, parts: &[&str], body: Vec<u8>) {
        if let Some(key) = self.key(parts) {
            self.uploads.playlist(key, Bytes::from(body));
        }
    }

    /// Queues the delete of an evicted segment, behind its upload.
    fn delete(&self, parts: &[&str]) {
        if let Some(key) = self.key(parts) {
            self.uploads.delete(key);
        }
    }
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
}

impl Rendition {
    /// A rendition of `kind`: video segments are cut at keyframes once `target` is reached,
    /// audio segments only where the first video rendition was cut.
    fn new(
        dir: String,
        kind: TrackKind,
        session_id: &str,
        timescale: Timebase,
        target: Duration,
        window: PlaylistWindow,
        record: bool,
    ) -> Self {
        let policy = match kind {
            TrackKind::Video => BoundaryPolicy::TargetDuration,
            TrackKind::Audio => BoundaryPolicy::Explicit,
        };
        let init_name = format!("{session_id}-init.mp4");
        let target_secs = target.as_secs().max(1);
        let playlist = match window {
            PlaylistWindow::Segments(segments) => {
                LivePlaylist::new(target_secs, segments, init_name.clone())
            }
            PlaylistWindow::Event => LivePlaylist::event(target_secs, init_name.clone()),
        };
        Rendition {
            dir,
            kind,
            segmenter: TrackSegmenter::new(TRACK_ID, timescale, target).with_policy(policy),
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
        }
    }

    /// Stores the init segment for `track`. After a reconnection, a header that differs from
    /// the one the published segments use gets a new name, announced by EXT-X-MAP.
    fn write_init(&mut self, destination: &Destination, track: &TrackInfo, timescale: u32) {
        match fmp4::init_segment(track, TRACK_ID, timescale) {
            Ok(init) => {
                if self.init.as_ref() == Some(&init) && self.init_written {
                    return;
                }
                if self.init.is_some() && self.segments_written > 0 {
                    self.init_changes += 1;
                    self.init_name =
                        format!("{}-init-{}.mp4", destination.session_id, self.init_changes);
                    self.playlist.set_init(self.init_name.clone());
                }
                self.init = Some(init);
                self.upload_init(destination);
            }
            Err(e) => warn!(rendition = %self.dir, error = %e, "Cannot write the init segment."),
        }
    }

    fn upload_init(&mut self, destination: &Destination) {
        if let Some(init) = &self.init {
            self.init_written =
                destination.put(&[&self.dir, &self.init_name], init, SpoolKind::Init);
        }
    }

    /// The next segment follows a reconnection.
    fn mark_discontinuity(&mut self) {
        self.playlist.mark_discontinuity();
        self.discontinuity_pending = true;
    }

    /// Spools a finished segment, then queues the playlist that lists it.
    fn publish(&mut self, destination: &Destination, segment: CompletedSegment, origin: &Origin) {
        if !self.init_written {
            self.upload_init(destination);
        }
        if !self.init_written {
            warn!(rendition = %self.dir, "Segment dropped: no init segment could be written.");
            return;
        }
        // Audio segments get `.m4a`, which the API serves as `audio/mp4`.
        let extension = match self.kind {
            TrackKind::Video => "m4s",
            TrackKind::Audio => "m4a",
        };
        let name = format!(
            "{}-{}.{extension}",
            destination.session_id, segment.sequence
        );
        let bytes = segment.data.len() as u64;
        if !destination.put(&[&self.dir, &name], &segment.data, SpoolKind::Segment) {
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
        self.write_playlist(destination);
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
                destination.delete(&[&self.dir, &old]);
            }
        }
    }

    fn write_playlist(&self, destination: &Destination) {
        destination.put_playlist(&[&self.dir, MEDIA_PLAYLIST], self.playlist.render());
    }

    /// Handles what a segmenter returned; returns the end times of the segments it closed.
    fn absorb(
        &mut self,
        destination: &Destination,
        events: Vec<SegmentEvent>,
        origin: &Origin,
    ) -> Vec<MediaTime> {
        let mut ends = Vec::new();
        for event in events {
            match event {
                SegmentEvent::Segment(segment) => {
                    ends.push(segment_end(&segment));
                    self.publish(destination, segment, origin);
                }
                SegmentEvent::TimestampRepaired { received, repaired } => {
                    debug!(rendition = %self.dir, %received, %repaired, "Repaired a decode timestamp.");
                }
                SegmentEvent::DroppedBeforeKeyframe { dts } => {
                    debug!(rendition = %self.dir, %dts, "Dropped a packet before the first keyframe.");
                }
            }
        }
        ends
    }
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

/// Segments and publishes every rendition of one live session.
pub struct SessionPackager {
    destination: Destination,
    video: Vec<(Rendition, VideoRenditionPlan, Option<VideoConfig>)>,
    audio: Option<(Rendition, AudioSpecificConfig)>,
    transcoder: Option<AacTranscoder>,
    origin: Origin,
    master_written: Option<Vec<u8>>,
}

impl SessionPackager {
    /// A packager for these renditions; `record` keeps every segment for the session's asset.
    pub fn new(
        destination: Destination,
        video: Vec<VideoRenditionPlan>,
        audio: Option<AudioInput>,
        segment: Duration,
        window: PlaylistWindow,
        record: bool,
    ) -> Self {
        let video = video
            .into_iter()
            .enumerate()
            .map(|(index, plan)| {
                let rendition = Rendition::new(
                    format!("v{index}"),
                    TrackKind::Video,
                    &destination.session_id,
                    Timebase::MPEG,
                    segment,
                    window,
                    record,
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
                &destination.session_id,
                Timebase(config.sample_rate),
                segment,
                window,
                record,
            );
            rendition.write_init(
                &destination,
                &TrackInfo::Aac {
                    config: config.clone(),
                },
                config.sample_rate,
            );
            (rendition, config)
        });
        SessionPackager {
            destination,
            video,
            audio,
            transcoder,
            origin: Origin {
                media: None,
                wall: Utc::now(),
            },
            master_written: None,
        }
    }

    /// Handles one input.
    pub fn handle(&mut self, input: PackagingInput) {
        match input {
            PackagingInput::VideoConfig { index, config } => {
                let Some((rendition, plan, slot)) = self.video.get_mut(index) else {
                    return;
                };
                let track = config.track_info(Some(plan.frame_rate));
                rendition.write_init(&self.destination, &track, Timebase::MPEG.0);
                *slot = Some(config);
            }
            PackagingInput::Video { index, packet } => {
                self.note_origin(&packet);
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
                let ends = rendition.absorb(&self.destination, events, &self.origin);
                let closed_a_segment = !ends.is_empty();
                if index == 0 {
                    self.cut_audio(ends);
                }
                if closed_a_segment {
                    self.write_master_if_changed();
                }
            }
            PackagingInput::Audio(packet) => {
                self.note_origin(&packet);
                let Some(transcoder) = &mut self.transcoder else {
                    self.push_audio(packet);
                    return;
                };
                match transcoder.push(&packet) {
                    Ok(packets) => packets.into_iter().for_each(|p| self.push_audio(p)),
                    Err(e) => warn!(error = %e, "Audio transcoding failed for a packet."),
                }
            }
            PackagingInput::SourceEnded => self.flush(),
            PackagingInput::SourceResumed(transcoder) => {
                self.transcoder = transcoder;
                for rendition in self.renditions_mut() {
                    rendition.mark_discontinuity();
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

    /// Segments one AAC frame of the audio rendition.
    fn push_audio(&mut self, packet: Packet) {
        let Some((rendition, _)) = &mut self.audio else {
            return;
        };
        match rendition.segmenter.push(packet) {
            Ok(events) => {
                if !rendition
                    .absorb(&self.destination, events, &self.origin)
                    .is_empty()
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

    fn note_origin(&mut self, packet: &Packet) {
        if self.origin.media.is_none() {
            self.origin.media = Some(packet.dts_time());
            self.origin.wall = Utc::now();
        }
    }

    /// Cuts the audio rendition where the first video rendition was cut.
    fn cut_audio(&mut self, ends: Vec<MediaTime>) {
        let Some((rendition, _)) = &mut self.audio else {
            return;
        };
        for end in ends {
            match rendition.segmenter.cut_at(end) {
                Ok(events) => {
                    rendition.absorb(&self.destination, events, &self.origin);
                }
                Err(e) => warn!(error = %e, "Audio cut refused by the segmenter."),
            }
        }
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
        if self.master_written.as_ref() != Some(&text) {
            self.destination
                .put_playlist(&[MASTER_PLAYLIST], text.clone());
            self.master_written = Some(text);
        }
    }

    /// Flushes every segmenter, ends every playlist and writes the final multivariant playlist.
    /// Returns what a recorded session left for its asset.
    pub fn finish(mut self) -> Option<SessionRecording> {
        self.flush();
        // Video playlists end first and the audio playlist last: once `a0` carries
        // EXT-X-ENDLIST, every rendition of the session has ended.
        let destination = &self.destination;
        for rendition in self
            .video
            .iter_mut()
            .map(|(rendition, _, _)| rendition)
            .chain(self.audio.as_mut().map(|(rendition, _)| rendition))
        {
            rendition.playlist.end();
            if rendition.segments_written > 0 {
                rendition.write_playlist(destination);
            }
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
            master: self.master_written,
        })
    }

    /// Publishes what every segmenter holds (the source ended, for now or for good) and the
    /// multivariant playlist that goes with it; the playlists stay open.
    fn flush(&mut self) {
        self.finish_transcoding();
        let mut video_ends = Vec::new();
        for (index, (rendition, _, _)) in self.video.iter_mut().enumerate() {
            let events = flush(&mut rendition.segmenter, &rendition.dir);
            let ends = rendition.absorb(&self.destination, events, &self.origin);
            if index == 0 {
                video_ends = ends;
            }
        }
        self.cut_audio(video_ends);
        if let Some((rendition, _)) = &mut self.audio {
            let events = flush(&mut rendition.segmenter, &rendition.dir);
            rendition.absorb(&self.destination, events, &self.origin);
        }
        self.write_master_if_changed();
    }
}

/// Ends a segmenter, as segment events (a failure is logged: the segments before it stand).
fn flush(segmenter: &mut TrackSegmenter, dir: &str) -> Vec<SegmentEvent> {
    match segmenter.finish() {
        Ok(segments) => segments.into_iter().map(SegmentEvent::Segment).collect(),
        Err(e) => {
            warn!(rendition = %dir, error = %e, "Flushing the segmenter failed.");
            Vec::new()
        }
    }
}
