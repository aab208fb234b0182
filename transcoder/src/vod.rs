//! Transcoding a local file: probe it, demux it, decode its video once into the same ladder
//! the live path uses, and turn its audio into AAC-LC.
//!
//! ```text
//! file ──probe──> demux thread ──video──> LiveTranscoder (WhenBehind::Wait) ──┐
//!                      │                                                       ├──> events (bounded)
//!                      └──audio──> AAC as is, or AacTranscoder ───────────────┘
//! ```
//!
//! Nothing is dropped: the ladder runs with [`WhenBehind::Wait`], so a slow rung slows the
//! demuxer instead. The caller drains the [`VodEvent`] receiver (on its own thread) until it
//! ends, then calls [`FileTranscode::wait`] for the outcome. Video events keep the source's
//! timestamps on the 90 kHz clock; audio events are AAC frames on their own clock. Progress is
//! the media time of what comes out against [`ProbeReport::duration`].
//!
//! Video must be H.264 with its decoder configuration in the container (MP4, Matroska, FLV):
//! that is what the ladder's decoder and its `source` rung take. [`FileDemuxer`] is the
//! reading half on its own: the file's packets as [`Packet`]s. Audio is passed through when
//! it is AAC with an AudioSpecificConfig, and transcoded to AAC-LC otherwise.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::{self, JoinHandle};

use bytes::Bytes;
use ffmpeg_next::codec;
use ffmpeg_next::format::context::Input;
use sluice_media::{AudioSpecificConfig, AvcConfig, Packet, Timebase, TrackKind};

use crate::ladder::{plan_with_codecs, Ladder, PlannedRung};
use crate::live::{EncoderSettings, LiveTranscoder, TranscodeStats, TranscoderOutput, WhenBehind};
use crate::probe::{self, ProbeError, ProbeLimits, ProbeReport};
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

/// A local file opened for reading: checked by the probe, with its main video (H.264 with
/// its decoder configuration) and main audio stream picked.
pub struct FileDemuxer {
    input: Input,
    report: ProbeReport,
    video: Option<(usize, AvcConfig)>,
}

impl FileDemuxer {
    /// Probes `path` against `limits` and opens it. Video other than H.264 with an avcC is
    /// refused ([`VodError::UnsupportedVideo`]).
    pub fn open(path: &Path, limits: &ProbeLimits) -> Result<Self, VodError> {
        let (input, report) = probe::open(path, limits)?;
        let video = match &report.video {
            Some(info) => {
                if info.codec != "h264" {
                    return Err(VodError::UnsupportedVideo(format!(
                        "video codec {} cannot be transcoded yet: only H.264 sources can",
                        info.codec
                    )));
                }
                let parameters = stream_parameters(&input, info.index)?;
                let config = AvcConfig::parse(&extradata(&parameters)).map_err(|e| {
                    VodError::UnsupportedVideo(format!(
                        "the H.264 stream has no usable decoder configuration (Annex B \
                         streams such as MPEG-TS are not supported yet): {e}"
                    ))
                })?;
                Some((info.index, config))
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

    /// The video's decoder configuration, when the file has video.
    pub fn video_config(&self) -> Option<&AvcConfig> {
        self.video.as_ref().map(|(_, config)| config)
    }

    /// The main video and audio streams' packets, in file order (other streams are skipped),
    /// on their streams' clocks (`1/N` timebases kept, others moved to 90 kHz).
    pub fn packets(&mut self) -> impl Iterator<Item = Packet> + '_ {
        let video_index = self.video.as_ref().map(|(index, _)| *index);
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
        let (rungs, ladder) = match demuxer.video_config() {
            Some(config) => {
                let frame_rate = report.video.as_ref().and_then(|video| video.frame_rate);
                let rungs = plan_with_codecs(
                    ladder,
                    config.width,
                    config.height,
                    frame_rate,
                    &settings.codecs,
                )?;
                let settings = EncoderSettings {
                    when_behind: WhenBehind::Wait,
                    ..settings
                };
                let (transcoder, output) = LiveTranscoder::start(config, rungs.clone(), settings)?;
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
