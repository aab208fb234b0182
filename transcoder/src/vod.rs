//! Transcoding a local file: probe it, demux it, decode its video once (any codec libavcodec
//! decodes), normalise the pictures, run them through the same ladder the live path uses, and
//! turn its audio into AAC-LC.
//!
//! ```text
//! file ──probe──> demux thread ──video──> LiveTranscoder (WhenBehind::Wait) ──┐
//!                      │                  decode → normalise → rungs           ├──> events (bounded)
//!                      └──audio──> AAC as is, or AacTranscoder ───────────────┘
//! ```
//!
//! Nothing is dropped: the ladder runs with [`WhenBehind::Wait`], so a slow rung slows the
//! demuxer instead. The caller drains the [`VodEvent`] receiver (on its own thread) until it
//! ends, then calls [`FileTranscode::wait`] for the outcome. Video events are on the 90 kHz
//! clock and keep the source's start time; audio events are AAC frames on their own clock.
//! Progress is the media time of what comes out against [`ProbeReport::duration`].
//!
//! Video ([`FileDemuxer::plan_video`]):
//! - is decoded from its stream's codec parameters, so HEVC, VP9, AV1, MPEG-4 part 2, ProRes,
//!   MJPEG, … and any bit depth or chroma subsampling are taken;
//! - is normalised ([`crate::normalize`]) into progressive (interlaced pictures deinterlaced),
//!   upright (display matrix or `rotate` tag honoured), square-pixel (anamorphic sources
//!   stretched), 8-bit 4:2:0 pictures at a constant frame rate (the source's, capped at the
//!   ladder's highest), and the ladder is planned on that upright, square-pixel size, so every
//!   rung is 8-bit 4:2:0 H.264 of even size;
//! - keeps a repackaged `source` rung only when it is progressive H.264 8-bit 4:2:0 with an
//!   avcC, upright, in square pixels and at a regular frame rate. Those pictures are then used as decoded
//!   (the rungs keep the source's own timestamps and cut on its keyframes); any other source's
//!   `source` rung is encoded at the source's upright, square-pixel size instead.
//!
//! [`FileDemuxer`] is the reading half on its own: the file's packets as [`Packet`]s. Audio is
//! passed through when it is AAC with an AudioSpecificConfig, and transcoded to AAC-LC
//! otherwise. Audio-only and video-only files are both taken.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::{self, JoinHandle};

use bytes::Bytes;
use ffmpeg_next::codec;
use ffmpeg_next::format::context::Input;
use ffmpeg_next::Rational;
use sluice_media::{AudioSpecificConfig, AvcConfig, Packet, Timebase, TrackKind, VideoCodec};

use crate::decode::VideoSource;
use crate::ladder::{plan_with_codecs, Ladder, PlannedRung, Rung, RungSpec};
use crate::live::{EncoderSettings, LiveTranscoder, TranscodeStats, TranscoderOutput, WhenBehind};
use crate::probe::{self, ProbeError, ProbeLimits, ProbeReport, VideoLayout};
use crate::{AacTranscoder, TranscodeError};

/// Events waiting for the caller, besides the ladder's own output queue.
const EVENT_QUEUE: usize = 256;

/// What a file transcode produces, in order per rendition.
#[derive(Clone, Debug, PartialEq)]
pub enum VodEvent {
    /// The video ladder's output (configs, packets, and each rung's end).
    Video(TranscoderOutput),
    /// The audio rendition's configuration; sent once, before any audio packet.
    AudioConfig(AudioSpecificConfig),
    /// One AAC-LC frame of the audio rendition.
    Audio(Packet),
}

/// Why a file cannot be transcoded.
#[derive(Debug, thiserror::Error)]
pub enum VodError {
    /// The file was refused by the probe.
    #[error(transparent)]
    Probe(#[from] ProbeError),
    /// The video is in a codec or form the ladder does not take.
    #[error("{0}")]
    UnsupportedVideo(String),
    /// The ladder or an encoder failed.
    #[error(transparent)]
    Transcode(#[from] TranscodeError),
    /// The file's video did not decode into a single picture.
    #[error("no picture of the video could be decoded")]
    NothingDecoded,
    /// The demux thread could not be started or ended abnormally.
    #[error("the transcode thread {0}")]
    Thread(&'static str),
}

/// A local file opened for reading: checked by the probe, with its main video and main audio
/// stream picked.
pub struct FileDemuxer {
    input: Input,
    report: ProbeReport,
    video: Option<DemuxedVideo>,
}

/// The main video stream and what the ladder needs to know of it.
struct DemuxedVideo {
    index: usize,
    /// The H.264 decoder configuration, when the stream is H.264 with an avcC.
    avc: Option<AvcConfig>,
    layout: VideoLayout,
}

impl FileDemuxer {
    /// Probes `path` against `limits` and opens it. Video in a codec libavcodec cannot decode
    /// is refused ([`VodError::UnsupportedVideo`]).
    pub fn open(path: &Path, limits: &ProbeLimits) -> Result<Self, VodError> {
        let (input, report) = probe::open(path, limits)?;
        let video = match &report.video {
            Some(info) => {
                let stream = input
                    .stream(info.index)
                    .ok_or(VodError::Thread("lost a stream of the file"))?;
                let parameters = stream.parameters();
                if ffmpeg_next::decoder::find(parameters.id()).is_none() {
                    return Err(VodError::UnsupportedVideo(format!(
                        "video codec {} cannot be decoded",
                        info.codec
                    )));
                }
                // Annex B H.264 (MPEG-TS) has no avcC: it is decoded, never repackaged.
                let avc = (parameters.id() == codec::Id::H264)
                    .then(|| AvcConfig::parse(&extradata(&parameters)).ok())
                    .flatten();
                Some(DemuxedVideo {
                    index: info.index,
                    avc,
                    layout: probe::video_layout(&input, &stream),
                })
            }
            None => None,
        };
        Ok(FileDemuxer {
            input,
            report,
            video,
        })
    }

    /// What the probe found.
    pub fn report(&self) -> &ProbeReport {
        &self.report
    }

    /// The video's H.264 decoder configuration, when the file's video is H.264 with an avcC.
    pub fn video_config(&self) -> Option<&AvcConfig> {
        self.video.as_ref().and_then(|video| video.avc.as_ref())
    }

    /// Fits `ladder` to the file's video: what the ladder decodes and the rungs it makes, or
    /// `None` without video.
    ///
    /// With `codecs` naming AV1 too, AV1 twins of the encoded rungs follow the H.264 ones.
    /// The `source` rung is repackaged only when the video is progressive H.264 8-bit 4:2:0 with
    /// an avcC, upright, in square pixels and at a regular frame rate; otherwise it becomes a rung
    /// encoded at the source's upright, square-pixel size (named `source`, at most 60 fps,
    /// bitrate in proportion to its pixels against 6000 kb/s at 1080p). Every other
    /// source is decoded from its stream's parameters and normalised, and the rungs are
    /// planned on its upright, square-pixel size at its constant output rate.
    pub fn plan_video(
        &self,
        ladder: &Ladder,
        codecs: &[VideoCodec],
    ) -> Result<Option<(VideoSource, Vec<PlannedRung>)>, VodError> {
        let (Some(video), Some(info)) = (&self.video, &self.report.video) else {
            return Ok(None);
        };
        let wants_source = ladder.rungs.contains(&RungSpec::Source);
        let repackaged = video.avc.as_ref().filter(|_| {
            wants_source
                && info.pixel_format.as_deref() == Some(REPACKAGED_PIXEL_FORMAT)
                && video.layout.is_regular()
        });
        if let Some(avc) = repackaged {
            let rungs = plan_with_codecs(ladder, avc.width, avc.height, info.frame_rate, codecs)?;
            return Ok(Some((VideoSource::Avc(avc.clone()), rungs)));
        }

        let (display_width, display_height) = (info.display_width, info.display_height);
        let rungs: Vec<RungSpec> = ladder
            .rungs
            .iter()
            .map(|spec| match spec {
                RungSpec::Source => {
                    RungSpec::Encode(source_size_rung(display_width, display_height))
                }
                RungSpec::Encode(rung) => RungSpec::Encode(rung.clone()),
            })
            .collect();
        let max_rate = rungs
            .iter()
            .filter_map(|spec| match spec {
                RungSpec::Encode(rung) => Some(rung.max_fps.max(1)),
                RungSpec::Source => None,
            })
            .max()
            .map(|fps| Rational::new(fps as i32, 1));
        let normalization = video.layout.normalization(max_rate);
        let rungs = plan_with_codecs(
            &Ladder {
                rungs: rungs.into(),
            },
            display_width,
            display_height,
            Some(f64::from(normalization.frame_rate)),
            codecs,
        )?;
        let parameters = stream_parameters(&self.input, video.index)?.clone();
        Ok(Some((
            VideoSource::Stream {
                parameters,
                normalization,
            },
            rungs,
        )))
    }

    /// The main video and audio streams' packets, in file order (other streams are skipped),
    /// on their streams' clocks (`1/N` timebases kept, others moved to 90 kHz).
    pub fn packets(&mut self) -> impl Iterator<Item = Packet> + '_ {
        let video_index = self.video.as_ref().map(|video| video.index);
        let audio_index = self.report.audio.as_ref().map(|audio| audio.index);
        self.input.packets().filter_map(move |(stream, packet)| {
            let index = Some(stream.index());
            let kind = if index == video_index {
                TrackKind::Video
            } else if index == audio_index {
                TrackKind::Audio
            } else {
                return None;
            };
            to_packet(kind, stream.time_base(), &packet)
        })
    }

    /// How the main audio stream becomes AAC-LC: as it is, or through a transcoder.
    fn audio_path(&self) -> Result<Option<AudioPath>, VodError> {
        let Some(info) = &self.report.audio else {
            return Ok(None);
        };
        let parameters = stream_parameters(&self.input, info.index)?;
        let passthrough = (parameters.id() == codec::Id::AAC)
            .then(|| AudioSpecificConfig::parse(&extradata(&parameters)).ok())
            .flatten()
            .filter(|config| config.object_type == AAC_LC);
        Ok(Some(match passthrough {
            Some(config) => AudioPath::PassThrough(config),
            None => AudioPath::Transcode(Box::new(AacTranscoder::from_parameters(parameters)?)),
        }))
    }
}

/// AAC-LC in the AudioSpecificConfig's audio object type numbering.
const AAC_LC: u8 = 2;

/// The only pixel format a repackaged `source` rung may have: 8-bit 4:2:0, what every H.264
/// player decodes (High 10 and 4:2:2/4:4:4 profiles are not widely supported).
const REPACKAGED_PIXEL_FORMAT: &str = "yuv420p";

/// Bitrate of a 1920×1080 rung encoded in place of the `source` rung: the reference ladder's
/// top step ([`Ladder::DEFAULT`], HLS Authoring Spec §2.1). Other sizes get it in proportion
/// to their pixels.
const SOURCE_SIZE_KBPS_AT_1080P: f64 = 6000.0;
/// The least bitrate of a rung encoded in place of the `source` rung, so small sources still
/// look right.
const SOURCE_SIZE_MIN_KBPS: u32 = 300;

/// The rung encoded in place of a `source` rung that cannot be repackaged: named `source`, at
/// the source's upright, square-pixel height (so its full size), frame rate capped at
/// [`Rung::DEFAULT_MAX_FPS`], bitrate in proportion to its pixels.
fn source_size_rung(display_width: u32, display_height: u32) -> Rung {
    let pixels = f64::from(display_width) * f64::from(display_height);
    let kbps = (SOURCE_SIZE_KBPS_AT_1080P * pixels / (1920.0 * 1080.0)).round() as u32;
    Rung {
        name: "source".into(),
        height: display_height,
        bitrate_kbps: kbps.max(SOURCE_SIZE_MIN_KBPS),
        max_fps: Rung::DEFAULT_MAX_FPS,
    }
}

fn stream_parameters(input: &Input, index: usize) -> Result<codec::Parameters, VodError> {
    input
        .stream(index)
        .map(|stream| stream.parameters())
        .ok_or(VodError::Thread("lost a stream of the file"))
}

/// A file being transcoded.
pub struct FileTranscode {
    report: ProbeReport,
    rungs: Vec<PlannedRung>,
    worker: JoinHandle<Result<Option<TranscodeStats>, VodError>>,
}

impl FileTranscode {
    /// Probes `path` against `limits`, fits `ladder` to its video, opens every encoder and
    /// starts reading. `settings.when_behind` is forced to [`WhenBehind::Wait`]. Returns the
    /// running transcode and the events the caller must drain.
    pub fn start(
        path: &Path,
        ladder: &Ladder,
        settings: EncoderSettings,
        limits: &ProbeLimits,
    ) -> Result<(FileTranscode, Receiver<VodEvent>), VodError> {
        let demuxer = FileDemuxer::open(path, limits)?;
        let report = demuxer.report().clone();
        let audio = demuxer.audio_path()?;
        let (rungs, ladder) = match demuxer.plan_video(ladder, &settings.codecs)? {
            Some((source, rungs)) => {
                let settings = EncoderSettings {
                    when_behind: WhenBehind::Wait,
                    ..settings
                };
                let (transcoder, output) = LiveTranscoder::start(source, rungs.clone(), settings)?;
                (rungs, Some((transcoder, output)))
            }
            None => (Vec::new(), None),
        };
        let (events, receiver) = mpsc::sync_channel(EVENT_QUEUE);
        let demux = Demux {
            path: path.to_owned(),
            demuxer,
            events,
        };
        let worker = thread::Builder::new()
            .name("sluice-vod-demux".to_owned())
            .spawn(move || demux.run(ladder, audio))
            .map_err(|_| VodError::Thread("could not be started"))?;
        Ok((
            FileTranscode {
                report,
                rungs,
                worker,
            },
            receiver,
        ))
    }

    /// What the probe found.
    pub fn report(&self) -> &ProbeReport {
        &self.report
    }

    /// The video renditions, in the order of [`TranscoderOutput`]'s rung indexes (empty
    /// without video).
    pub fn rungs(&self) -> &[PlannedRung] {
        &self.rungs
    }

    /// Waits for the end once the events are drained; returns the ladder's counters (`None`
    /// without video).
    pub fn wait(self) -> Result<Option<TranscodeStats>, VodError> {
        self.worker
            .join()
            .map_err(|_| VodError::Thread("panicked"))?
    }
}

/// Where the audio goes.
enum AudioPath {
    PassThrough(AudioSpecificConfig),
    Transcode(Box<AacTranscoder>),
}

struct Demux {
    path: PathBuf,
    demuxer: FileDemuxer,
    events: SyncSender<VodEvent>,
}

impl Demux {
    fn run(
        mut self,
        ladder: Option<(LiveTranscoder, Receiver<TranscoderOutput>)>,
        mut audio: Option<AudioPath>,
    ) -> Result<Option<TranscodeStats>, VodError> {
        let (transcoder, forwarder) = match ladder {
            Some((transcoder, output)) => {
                let events = self.events.clone();
                let forwarder = thread::Builder::new()
                    .name("sluice-vod-ladder".to_owned())
                    .spawn(move || {
                        for message in output {
                            if !emit(&events, VodEvent::Video(message)) {
                                break;
                            }
                        }
                    })
                    .map_err(|_| VodError::Thread("could not be started"))?;
                (Some(transcoder), Some(forwarder))
            }
            None => (None, None),
        };
        if let Some(path) = &audio {
            let config = match path {
                AudioPath::PassThrough(config) => config.clone(),
                AudioPath::Transcode(transcoder) => transcoder.config().clone(),
            };
            // A closed receiver means the caller gave up; the loop below ends on it too.
            emit(&self.events, VodEvent::AudioConfig(config));
        }

        let result = self.pump(transcoder.as_ref(), audio.as_mut());
        let audio_tail = match audio {
            Some(AudioPath::Transcode(transcoder)) if result.is_ok() => transcoder.finish(),
            _ => Ok(Vec::new()),
        };
        let stats = transcoder.map(LiveTranscoder::finish);
        if let Some(forwarder) = forwarder {
            forwarder.join().map_err(|_| VodError::Thread("panicked"))?;
        }
        result?;
        for packet in audio_tail? {
            if !emit(&self.events, VodEvent::Audio(packet)) {
                break;
            }
        }
        if let Some(stats) = &stats {
            let encodes = stats.frames_emitted_per_rung.len();
            if encodes > 0 && stats.frames_emitted_per_rung.iter().all(|&n| n == 0) {
                return Err(VodError::NothingDecoded);
            }
        }
        tracing::debug!(path = %self.path.display(), ?stats, "File transcoded.");
        Ok(stats)
    }

    /// Reads every packet and hands it on.
    fn pump(
        &mut self,
        transcoder: Option<&LiveTranscoder>,
        mut audio: Option<&mut AudioPath>,
    ) -> Result<(), VodError> {
        let events = &self.events;
        for packet in self.demuxer.packets() {
            let delivered = match (packet.kind, transcoder, audio.as_deref_mut()) {
                (TrackKind::Video, Some(transcoder), _) => {
                    transcoder.push(packet)?;
                    true
                }
                (TrackKind::Audio, _, Some(AudioPath::PassThrough(_))) => {
                    emit(events, VodEvent::Audio(packet))
                }
                (TrackKind::Audio, _, Some(AudioPath::Transcode(transcoder))) => transcoder
                    .push(&packet)?
                    .into_iter()
                    .all(|packet| emit(events, VodEvent::Audio(packet))),
                _ => true,
            };
            if !delivered {
                // The caller stopped listening: nothing more to do.
                return Ok(());
            }
        }
        Ok(())
    }
}

/// Sends an event; false once the caller has stopped listening.
fn emit(events: &SyncSender<VodEvent>, event: VodEvent) -> bool {
    events.send(event).is_ok()
}

/// A demuxed packet as a [`Packet`]; `None` when it has no data or no time.
fn to_packet(
    kind: TrackKind,
    time_base: ffmpeg_next::Rational,
    packet: &ffmpeg_next::Packet,
) -> Option<Packet> {
    let data = packet.data().filter(|data| !data.is_empty())?;
    let dts = packet.dts().or(packet.pts())?;
    let pts = packet.pts().unwrap_or(dts);
    let (num, den) = (
        i64::from(time_base.numerator()),
        i64::from(time_base.denominator()),
    );
    if num <= 0 || den <= 0 {
        return None;
    }
    // Timebases of the form 1/N are kept; others (1001/30000, …) go to the 90 kHz clock.
    let (timebase, dts, pts) = match (num, u32::try_from(den)) {
        (1, Ok(den)) => (Timebase(den), dts, pts),
        _ => {
            let to_mpeg = |t: i64| {
                let ticks = i128::from(t) * i128::from(num) * i128::from(Timebase::MPEG.0)
                    / i128::from(den);
                i64::try_from(ticks).ok()
            };
            (Timebase::MPEG, to_mpeg(dts)?, to_mpeg(pts)?)
        }
    };
    Some(Packet {
        kind,
        timebase,
        dts,
        pts,
        keyframe: packet.is_key(),
        data: Bytes::copy_from_slice(data),
    })
}

/// A stream's codec extradata (avcC, AudioSpecificConfig, …), empty when it has none.
fn extradata(parameters: &codec::Parameters) -> Vec<u8> {
    // SAFETY: the parameters own `extradata_size` bytes at `extradata` (or null).
    unsafe {
        let raw = parameters.as_ptr();
        let size = usize::try_from((*raw).extradata_size).unwrap_or(0);
        if (*raw).extradata.is_null() || size == 0 {
            Vec::new()
        } else {
            std::slice::from_raw_parts((*raw).extradata, size).to_vec()
        }
    }
}
