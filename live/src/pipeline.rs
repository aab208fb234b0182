//! One live session's media pipeline: ladder planning, the transcoder, and the packaging thread.
//!
//! ```text
//! RTMP task ──video──> LiveTranscoder ──(config, packets per rung)──> forwarder thread ─┐
//!           ──audio────────────────────────────────────────────────────────────────────┴─> packaging thread ─┐
//!                                                           ┌───────────────────────────────────────────────────────────┘
//!                                                           └─> UploadQueue (spool files) ──> uploader task ──> ObjectStore
//! ```
//!
//! AAC audio is passed through; MP3 and Opus audio are transcoded to AAC-LC on the packaging
//! thread (see [`AudioInput`]). Video is H.264 (RTMP, WebRTC), VP8 (WebRTC) or uncompressed
//! pictures (a room's composite). Only H.264 can be repackaged into fMP4 as it came: a VP8 or
//! raw source has no `source` rung (its ladder's `source` entry is left out), so its ladder is
//! encoded rungs only. A raw picture is large (3 MB at 1080p), so the transcoder holds only
//! [`RAW_PICTURE_QUEUE`] of them waiting for the decoder.
//!
//! Restreaming taps the publisher's packets in [`SessionPipeline::push`] and the rungs' in the
//! forwarder (see `restream::Tap`, which never blocks).
//!
//! Every queue is bounded (the upload queue by the spool quota: playlists replace their waiting
//! versions, and segments that do not fit are refused). The transcoder drops (and counts) when
//! it falls behind real time;
//! audio and the packaging channel apply backpressure to the publisher's TCP connection.
//!
//! The packaging thread ([`Packaging`]) lives as long as the session, which may outlast one
//! publisher: when the publisher drops inside the reconnect window, [`SessionPipeline::stop`]
//! ends the transcoder and hands the packaging back, and the next publisher's pipeline feeds it
//! again ([`PackagingPlan::Resume`]) with its timestamps moved to go on after the last ones.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use serde_json::json;
use sluice_media::{
    AudioCodec, AudioSpecificConfig, AvcConfig, MediaTime, Mp3FrameHeader, Packet, Timebase,
    TrackKind, VideoCodec,
};
use sluice_storage::{LatencyMode, LiveStreamId, ObjectStore, SessionId};
use sluice_transcoder::{
    plan, AacTranscoder, EncoderSettings, Ladder, LiveTranscoder, PlannedRung, TranscodeError,
    Tune, VideoSource,
};
use sluice_transcribe::Line;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::renditions::{
    AudioInput, PackagingInput, PlaylistWindow, SessionPackager, SessionRecording, TreeSettings,
    UploadTree, VideoRenditionPlan,
};
use super::restream::Tap;
use super::uploader::{SessionUploader, Spool};
use super::SHUTDOWN_GRACE;
use crate::captions::CaptionSettings;
use crate::config::LiveConfig;
use crate::low_latency::{LowLatencyRegistration, LowLatencyStreams};

/// Inputs waiting for the packaging thread.
const PACKAGING_QUEUE: usize = 512;
/// How long a finished session waits for the store to take its last objects. Shorter than the
/// shutdown grace, so on shutdown what could not be stored is logged before the RTMP
/// connections are dropped.
const UPLOAD_DRAIN: Duration = SHUTDOWN_GRACE.saturating_sub(Duration::from_secs(2));
/// Frame rate assumed for a source that declares none, until its timestamps say otherwise.
const FALLBACK_FRAME_RATE: f64 = 30.0;
/// Raw pictures waiting for the decoder (each is `width`×`height`×1.5 bytes); more are dropped
/// and counted, as any packet the decoder falls behind on.
const RAW_PICTURE_QUEUE: usize = 8;

/// What is known about a publisher's tracks when its pipeline starts.
#[derive(Debug)]
pub struct SourceDescription {
    pub video: SourceVideo,
    pub frame_rate: Option<f64>,
    pub audio: Option<SourceAudio>,
}

/// The publisher's video track.
#[derive(Clone, Debug)]
pub enum SourceVideo {
    /// H.264 with its decoder configuration.
    Avc(AvcConfig),
    /// VP8, sized by its first key frame.
    Vp8 { width: u32, height: u32 },
    /// Uncompressed yuv420p pictures, sized by their track.
    Raw { width: u32, height: u32 },
}

impl SourceVideo {
    fn codec(&self) -> VideoCodec {
        match self {
            SourceVideo::Avc(_) => VideoCodec::H264,
            SourceVideo::Vp8 { .. } => VideoCodec::Vp8,
            SourceVideo::Raw { .. } => VideoCodec::Raw,
        }
    }

    pub fn width(&self) -> u32 {
        match self {
            SourceVideo::Avc(config) => config.width,
            SourceVideo::Vp8 { width, .. } | SourceVideo::Raw { width, .. } => *width,
        }
    }

    pub fn height(&self) -> u32 {
        match self {
            SourceVideo::Avc(config) => config.height,
            SourceVideo::Vp8 { height, .. } | SourceVideo::Raw { height, .. } => *height,
        }
    }

    /// The H.264 configuration the source is repackaged (and restreamed) with as it came;
    /// `None` for a source that must be encoded first (VP8, raw pictures).
    fn passthrough(&self) -> Option<&AvcConfig> {
        match self {
            SourceVideo::Avc(config) => Some(config),
            SourceVideo::Vp8 { .. } | SourceVideo::Raw { .. } => None,
        }
    }

    /// The RFC 6381 codec string; only a passthrough source has one here (the others never
    /// reach a playlist).
    fn codec_string(&self) -> Option<String> {
        self.passthrough().map(AvcConfig::codec_string)
    }

    /// What the transcoder decodes.
    fn decoder_source(&self) -> VideoSource {
        match self {
            SourceVideo::Avc(config) => VideoSource::Avc(config.clone()),
            SourceVideo::Vp8 { .. } => VideoSource::Vp8,
            SourceVideo::Raw { width, height } => VideoSource::Raw {
                width: *width,
                height: *height,
            },
        }
    }

    /// Packets that may wait for the decoder: a few pictures for raw video, else the
    /// transcoder's default.
    fn packet_queue(&self) -> usize {
        match self {
            SourceVideo::Raw { .. } => RAW_PICTURE_QUEUE,
            SourceVideo::Avc(_) | SourceVideo::Vp8 { .. } => EncoderSettings::DEFAULT_PACKET_QUEUE,
        }
    }
}

/// The publisher's audio track, in a form the pipeline carries.
#[derive(Clone, Debug)]
pub enum SourceAudio {
    /// AAC, passed through as the audio rendition.
    Aac(AudioSpecificConfig),
    /// MP3 (described by its first frame's header), transcoded to AAC-LC.
    Mp3(Mp3FrameHeader),
    /// Opus (WebRTC, 48 kHz) of this many channels, transcoded to AAC-LC.
    Opus { channels: u8 },
}

impl SourceAudio {
    fn codec(&self) -> AudioCodec {
        match self {
            SourceAudio::Aac(_) => AudioCodec::Aac,
            SourceAudio::Mp3(_) => AudioCodec::Mp3,
            SourceAudio::Opus { .. } => AudioCodec::Opus,
        }
    }

    /// The RFC 6381 codec string; MP3 has none here (it never reaches a playlist).
    fn codec_string(&self) -> Option<String> {
        match self {
            SourceAudio::Aac(config) => Some(config.codec_string()),
            SourceAudio::Mp3(_) | SourceAudio::Opus { .. } => None,
        }
    }

    fn sample_rate(&self) -> u32 {
        match self {
            SourceAudio::Aac(config) => config.sample_rate,
            SourceAudio::Mp3(header) => header.sample_rate,
            SourceAudio::Opus { .. } => 48_000,
        }
    }

    fn channels(&self) -> u8 {
        match self {
            SourceAudio::Aac(config) => config.channels,
            SourceAudio::Mp3(header) => header.channels,
            SourceAudio::Opus { channels } => *channels,
        }
    }
}

/// Input bitrate measured over what the publisher sent.
#[derive(Default)]
struct InputMeter {
    bytes: u64,
    first_dts_secs: Option<f64>,
    last_dts_secs: f64,
}

impl InputMeter {
    fn add(&mut self, packet: &Packet) {
        self.bytes += packet.data.len() as u64;
        let at = packet.dts_time().as_secs_f64();
        self.first_dts_secs.get_or_insert(at);
        self.last_dts_secs = self.last_dts_secs.max(at);
    }

    fn kbps(&self) -> Option<u64> {
        let span = self.last_dts_secs - self.first_dts_secs?;
        (span >= 1.0).then(|| (self.bytes as f64 * 8.0 / span / 1_000.0).round() as u64)
    }
}

/// The shape a session's renditions were planned with: a publisher that comes back inside the
/// reconnect window continues the session only if its source plans to the same shape.
#[derive(Clone, Debug, PartialEq)]
pub struct LadderShape {
    rungs: Vec<PlannedRung>,
    /// Codec, sample rate and channels of the audio rendition's source.
    audio: Option<(AudioCodec, u32, u8)>,
}

/// Where a session's objects go and how its playlists are kept, for a new packaging thread.
pub struct PackagingTarget {
    pub store: Arc<dyn ObjectStore>,
    /// Where segments wait until the store holds them.
    pub spool: Arc<Spool>,
    pub live_stream_id: LiveStreamId,
    pub session_id: SessionId,
    pub window: PlaylistWindow,
    /// The stream's latency mode when the session started: its segment duration, IDR
    /// interval and encoder tune.
    pub latency_mode: LatencyMode,
    /// Keep every segment for the session's asset.
    pub record: bool,
    /// A `low` latency session's LL-HLS: where its tree in memory goes, and its part target.
    pub low_latency: Option<LowLatencyTarget>,
    /// Live captions of the session's speech.
    pub captions: Option<CaptionSettings>,
}

/// Where a low-latency session's parts and playlists are served from.
pub struct LowLatencyTarget {
    pub streams: Arc<LowLatencyStreams>,
    pub part_target: Duration,
}

/// The packaging side a pipeline feeds.
pub enum PackagingPlan {
    /// A new session: start a packaging thread.
    New(PackagingTarget),
    /// A publisher came back inside the reconnect window: feed the session's packaging thread
    /// again, its timestamps moved to start at `resume_at`.
    Resume {
        packaging: Packaging,
        resume_at: MediaTime,
    },
}

/// Why a pipeline did not start, with the packaging plan when it was not used.
pub struct PipelineStartError {
    pub error: anyhow::Error,
    /// The plan given back untouched (the codecs could not be opened); `None` once the
    /// pipeline had taken it over.
    pub plan: Option<Box<PackagingPlan>>,
}

impl From<anyhow::Error> for PipelineStartError {
    fn from(error: anyhow::Error) -> Self {
        PipelineStartError { error, plan: None }
    }
}

/// A session's packaging thread, which may outlive the publisher that started it.
pub struct Packaging {
    sender: mpsc::Sender<PackagingInput>,
    thread: JoinHandle<Option<SessionRecording>>,
    /// Stores what the packaging thread queues, in order.
    uploader: SessionUploader,
    shape: LadderShape,
    /// The session's latency mode, kept by a publisher that comes back.
    latency_mode: LatencyMode,
    /// The session's LL-HLS tree while it is registered: closed when packaging ends (or this
    /// is dropped unfinished).
    low_latency: Option<LowLatencyRegistration>,
}

impl Packaging {
    fn start(
        target: PackagingTarget,
        plans: Vec<VideoRenditionPlan>,
        audio: Option<AudioInput>,
        segment: Duration,
        shape: LadderShape,
    ) -> anyhow::Result<Packaging> {
        let latency_mode = target.latency_mode;
        let (sender, mut inbox) = mpsc::channel(PACKAGING_QUEUE);
        let (uploads, uploader) = target
            .spool
            .start_session(target.store, &target.session_id)
            .context("creating the session's spool directory")?;
        let part_target = target.low_latency.as_ref().map(|low| low.part_target);
        let low_latency = target
            .low_latency
            .map(|low| low.streams.open(&target.live_stream_id));
        let output = UploadTree {
            uploads,
            live_stream_id: target.live_stream_id,
            low_latency: low_latency.as_ref().map(LowLatencyRegistration::tree),
        };
        let settings = TreeSettings {
            session_id: target.session_id,
            segment,
            window: target.window,
            record: target.record,
            part_target,
            captions: target.captions,
        };
        let thread = std::thread::Builder::new()
            .name("sluice-packager".into())
            .spawn(move || {
                let mut packager =
                    SessionPackager::new(Box::new(output), settings, plans, audio, Utc::now());
                while let Some(input) = inbox.blocking_recv() {
                    packager.handle(input, Utc::now());
                }
                packager.finish()
            })
            .context("spawning the packaging thread")?;
        Ok(Packaging {
            sender,
            thread,
            uploader,
            shape,
            latency_mode,
            low_latency,
        })
    }

    /// The shape of the renditions it packages.
    pub fn shape(&self) -> &LadderShape {
        &self.shape
    }

    /// Ends every playlist, waits (up to [`UPLOAD_DRAIN`]) until the store holds every object
    /// of the session, and returns what a recorded session left for its asset.
    pub async fn finish(self) -> Option<SessionRecording> {
        let Packaging {
            sender,
            thread,
            uploader,
            low_latency,
            ..
        } = self;
        drop(sender);
        let recording = match tokio::task::spawn_blocking(move || thread.join()).await {
            Ok(Ok(recording)) => recording,
            _ => {
                warn!("The packaging thread ended abnormally.");
                None
            }
        };
        uploader.finish(UPLOAD_DRAIN).await;
        // The store has the ended playlists now: later players get them from there, and
        // players still waiting get the ended playlist from memory.
        drop(low_latency);
        recording
    }
}

/// Fits the stream's stored ladder to the source: the renditions a pipeline would make.
pub fn plan_ladder(source: &SourceDescription, ladder: &Ladder) -> anyhow::Result<LadderShape> {
    let mut rungs = plan(
        ladder,
        source.video.width(),
        source.video.height(),
        source.frame_rate,
    )?;
    if source.video.passthrough().is_none() {
        rungs.retain(|rung| matches!(rung, PlannedRung::Encode(_)));
        anyhow::ensure!(
            !rungs.is_empty(),
            "a {} source cannot be repackaged: its ladder needs an encoded rung",
            source.video.codec().name()
        );
    }
    let audio = source
        .audio
        .as_ref()
        .map(|audio| (audio.codec(), audio.sample_rate(), audio.channels()));
    Ok(LadderShape { rungs, audio })
}

/// Moves a returning publisher's timestamps so they go on after the session's last ones.
#[derive(Clone, Copy, Debug, Default)]
struct Timeline {
    /// Where the first packet of the source should land, when the session is resumed.
    resume_at: Option<MediaTime>,
    /// Added to every timestamp, once known; a time, since tracks differ in timebase (WebRTC
    /// video counts 90 kHz, its audio 48 kHz).
    offset: Option<MediaTime>,
    /// The latest decode time passed on.
    last: Option<MediaTime>,
}

/// Room left after the last packet before a returning publisher's first one.
const RESUME_GAP: Duration = Duration::from_millis(100);

impl Timeline {
    fn rebase(&mut self, packet: &mut Packet) {
        let offset = *self.offset.get_or_insert_with(|| match self.resume_at {
            Some(at) => MediaTime::new(
                at.rescale(packet.timebase).ticks - packet.dts,
                packet.timebase,
            ),
            None => MediaTime::new(0, packet.timebase),
        });
        let offset = offset.rescale(packet.timebase).ticks;
        packet.dts += offset;
        packet.pts += offset;
        let at = packet.dts_time();
        if self
            .last
            .is_none_or(|last| at.as_secs_f64() > last.as_secs_f64())
        {
            self.last = Some(at);
        }
    }

    /// What is added to the publisher's times, in seconds (nothing before its first packet).
    fn offset_seconds(&self) -> f64 {
        self.offset.map_or(0.0, |offset| offset.as_secs_f64())
    }

    /// Where a returning publisher's first packet should land.
    fn resume_point(&self) -> MediaTime {
        let gap = MediaTime::new(RESUME_GAP.as_millis() as i64, Timebase(1_000));
        match self.last.or(self.resume_at) {
            Some(last) => {
                let last = last.rescale(Timebase(1_000));
                MediaTime::new(last.ticks + gap.ticks, last.timebase)
            }
            None => gap,
        }
    }
}

/// A running session pipeline.
pub struct SessionPipeline {
    transcoder: LiveTranscoder,
    packaging: Packaging,
    forwarder: JoinHandle<()>,
    source: SourceDescription,
    meter: InputMeter,
    timeline: Timeline,
    restream: Tap,
}

impl SessionPipeline {
    /// Starts the transcoder for this source's planned ladder, feeding the packaging `plan`
    /// names. Blocking (it opens every codec): call it off the reactor, inside the runtime.
    /// When the codecs cannot be opened, the error carries `plan` back: a resumed session's
    /// packaging outlives the publisher that could not start.
    pub fn start(
        mut source: SourceDescription,
        shape: LadderShape,
        config: &LiveConfig,
        plan: PackagingPlan,
        restream: Tap,
    ) -> Result<SessionPipeline, PipelineStartError> {
        let rungs = shape.rungs.clone();
        let source_rate = source.frame_rate.unwrap_or(FALLBACK_FRAME_RATE);
        let plans = rungs
            .iter()
            .map(|rung| VideoRenditionPlan {
                name: rung.name().to_owned(),
                frame_rate: match rung {
                    PlannedRung::Source => source_rate,
                    PlannedRung::Encode(target) => target.frame_rate,
                },
            })
            .collect();
        info!(
            source = %format!("{}x{}", source.video.width(), source.video.height()),
            rungs = %rungs.iter().map(PlannedRung::name).collect::<Vec<_>>().join(","),
            resumed = matches!(plan, PackagingPlan::Resume { .. }),
            "Starting the live ladder."
        );
        let latency_mode = match &plan {
            PackagingPlan::New(target) => target.latency_mode,
            PackagingPlan::Resume { packaging, .. } => packaging.latency_mode,
        };
        let segment = config.segment_duration(latency_mode);
        let settings = EncoderSettings {
            preset: config.preset,
            tune: match latency_mode {
                LatencyMode::Low => Tune::ZeroLatency,
                LatencyMode::Standard | LatencyMode::Reduced => Tune::Quality,
            },
            keyframe_interval: segment,
            packet_queue: source.video.packet_queue(),
            ..EncoderSettings::default()
        };
        restream.set_rungs(&rungs);
        let source_aac = match &source.audio {
            Some(SourceAudio::Aac(config)) => Some(config),
            _ => None,
        };
        restream.set_source(source.video.passthrough(), source_aac);
        let (transcoder, outputs) =
            match LiveTranscoder::start(source.video.decoder_source(), rungs, settings) {
                Ok(started) => started,
                Err(e) => {
                    return Err(PipelineStartError {
                        error: e.into(),
                        plan: Some(Box::new(plan)),
                    })
                }
            };

        let opened = match &source.audio {
            Some(SourceAudio::Mp3(header)) => Some(AacTranscoder::from_mp3(*header)),
            Some(SourceAudio::Opus { channels }) => Some(AacTranscoder::from_opus(*channels)),
            _ => None,
        };
        let audio_transcoder = match opened {
            Some(Ok(transcoder)) => Some(transcoder),
            Some(Err(e)) => {
                let codec = source.audio.take().map(|audio| audio.codec().name());
                warn!(codec = ?codec, error = %e, "Audio cannot be transcoded; the stream goes on without audio.");
                None
            }
            None => None,
        };
        let (packaging, resume_at) = match plan {
            PackagingPlan::New(target) => {
                let audio = match (&source.audio, audio_transcoder) {
                    (Some(SourceAudio::Aac(config)), _) => {
                        Some(AudioInput::PassThrough(config.clone()))
                    }
                    (_, Some(transcoder)) => Some(AudioInput::Transcode(transcoder)),
                    _ => None,
                };
                (
                    Packaging::start(target, plans, audio, segment, shape)?,
                    None,
                )
            }
            PackagingPlan::Resume {
                packaging,
                resume_at,
            } => {
                packaging
                    .sender
                    .blocking_send(PackagingInput::SourceResumed(audio_transcoder))
                    .map_err(|_| anyhow::anyhow!("the session's packaging thread has ended"))?;
                (packaging, Some(resume_at))
            }
        };
        let to_packager = packaging.sender.clone();
        let rung_tap = restream.clone();
        let forwarder = std::thread::Builder::new()
            .name("sluice-forwarder".into())
            .spawn(move || {
                for output in outputs {
                    rung_tap.transcoder_output(&output);
                    let Some(input) = PackagingInput::from_rung(output) else {
                        continue;
                    };
                    if to_packager.blocking_send(input).is_err() {
                        break;
                    }
                }
            })
            .context("spawning the forwarder thread")?;
        Ok(SessionPipeline {
            transcoder,
            packaging,
            forwarder,
            source,
            meter: InputMeter::default(),
            timeline: Timeline {
                resume_at,
                ..Timeline::default()
            },
            restream,
        })
    }

    /// Feeds one packet from the publisher.
    /// Fails once the pipeline has stopped (every rung failed, or the packaging thread ended):
    /// the session should end then.
    pub async fn push(&mut self, mut packet: Packet) -> Result<(), TranscodeError> {
        self.meter.add(&packet);
        self.timeline.rebase(&mut packet);
        self.restream.source_packet(&packet);
        match packet.kind {
            TrackKind::Video => self.transcoder.push(packet),
            TrackKind::Audio if self.source.audio.is_some() => self
                .packaging
                .sender
                .send(PackagingInput::Audio(packet))
                .await
                .map_err(|_| TranscodeError::Stopped),
            TrackKind::Audio => Ok(()),
        }
    }

    /// Feeds lines of speech the publisher recognised, on its media clock, to the captions
    /// (moved as its packets are). Fails as [`SessionPipeline::push`] does.
    pub async fn push_captions(&mut self, mut lines: Vec<Line>) -> Result<(), TranscodeError> {
        let offset_s = self.timeline.offset_seconds();
        for line in &mut lines {
            line.start_s += offset_s;
            line.end_s += offset_s;
        }
        self.packaging
            .sender
            .send(PackagingInput::Captions(lines))
            .await
            .map_err(|_| TranscodeError::Stopped)
    }

    /// Frames dropped so far: packets not decoded plus pictures a rung could not take.
    pub fn frames_dropped(&self) -> u64 {
        let stats = self.transcoder.stats();
        stats.packets_dropped + stats.frames_dropped_per_rung.iter().sum::<u64>()
    }

    /// What the API shows as the session's input.
    pub fn input_description(&self) -> serde_json::Value {
        let video = &self.source.video;
        let audio = self.source.audio.as_ref();
        let codecs: Vec<String> = video
            .codec_string()
            .into_iter()
            .chain(audio.and_then(SourceAudio::codec_string))
            .collect();
        json!({
            "video_codec": video.codec().name(),
            "audio_codec": audio.map(|a| a.codec().name()),
            "codecs": codecs.join(","),
            "width": video.width(),
            "height": video.height(),
            "frame_rate": self.source.frame_rate,
            "audio_sample_rate": audio.map(SourceAudio::sample_rate),
            "audio_channels": audio.map(SourceAudio::channels),
            "bitrate_kbps": self.meter.kbps(),
        })
    }

    /// Flushes the encoders and every segmenter (the playlists stay open) and hands the
    /// packaging back, with where a returning publisher's timestamps should start and the
    /// frames dropped in total.
    pub async fn stop(self) -> StoppedPipeline {
        let SessionPipeline {
            transcoder,
            packaging,
            forwarder,
            timeline,
            ..
        } = self;
        let joined = tokio::task::spawn_blocking(move || {
            let stats = transcoder.finish();
            let _ = forwarder.join();
            stats
        })
        .await;
        // Sent after the forwarder is done, so it follows the encoders' last packets.
        let _ = packaging.sender.send(PackagingInput::SourceEnded).await;
        let frames_dropped = match joined {
            Ok(stats) => {
                info!(
                    frames_decoded = stats.frames_decoded,
                    packets_dropped = stats.packets_dropped,
                    frames_dropped = ?stats.frames_dropped_per_rung,
                    "Live ladder finished."
                );
                stats.packets_dropped + stats.frames_dropped_per_rung.iter().sum::<u64>()
            }
            Err(e) => {
                warn!(error = %e, "The pipeline's threads ended abnormally.");
                0
            }
        };
        StoppedPipeline {
            packaging,
            resume_at: timeline.resume_point(),
            frames_dropped,
        }
    }
}

/// What is left of a pipeline once its publisher is gone.
pub struct StoppedPipeline {
    /// The session's packaging thread, its playlists still open.
    pub packaging: Packaging,
    /// Where a returning publisher's first packet should land.
    pub resume_at: MediaTime,
    pub frames_dropped: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn packet(kind: TrackKind, timebase: u32, dts: i64) -> Packet {
        Packet {
            kind,
            timebase: Timebase(timebase),
            dts,
            pts: dts,
            keyframe: true,
            data: Bytes::new(),
        }
    }

    #[test]
    fn a_resumed_source_moves_every_track_by_the_same_time() {
        // A WebRTC source: video at 90 kHz, audio at 48 kHz, both starting again near 5 s.
        let mut timeline = Timeline {
            resume_at: Some(MediaTime::new(10_000, Timebase(1_000))),
            ..Timeline::default()
        };
        let mut video = packet(TrackKind::Video, 90_000, 450_000);
        timeline.rebase(&mut video);
        assert_eq!(video.dts, 900_000, "the first packet lands at 10 s");
        let mut audio = packet(TrackKind::Audio, 48_000, 240_000);
        timeline.rebase(&mut audio);
        assert_eq!(
            audio.dts, 480_000,
            "audio of the same instant lands at 10 s too"
        );
        let mut later = packet(TrackKind::Video, 90_000, 540_000);
        timeline.rebase(&mut later);
        assert_eq!(later.dts_time().as_secs_f64(), 11.0);
        assert!((timeline.resume_point().as_secs_f64() - 11.1).abs() < 1e-9);
    }

    #[test]
    fn a_new_session_keeps_its_timestamps() {
        let mut timeline = Timeline::default();
        let mut video = packet(TrackKind::Video, 1_000, 1_234);
        timeline.rebase(&mut video);
        assert_eq!((video.dts, video.pts), (1_234, 1_234));
    }
}
