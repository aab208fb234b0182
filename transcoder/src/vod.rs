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
//! that is what the ladder's decoder and its `source` rung take. Audio is passed through when
//! it is AAC with an AudioSpecificConfig, and transcoded to AAC-LC otherwise.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::{self, JoinHandle};

use bytes::Bytes;
use ffmpeg_next::codec;
use ffmpeg_next::format::context::Input;
use sluice_media::{AudioSpecificConfig, AvcConfig, Packet, Timebase, TrackKind};

use crate::ladder::{plan, Ladder, PlannedRung};
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
        let (input, report) = probe::open(path, limits)?;
        let (events, receiver) = mpsc::sync_channel(EVENT_QUEUE);
        let video = match &report.video {
            Some(info) => {
                if info.codec != "h264" {
                    return Err(VodError::UnsupportedVideo(format!(
                        "video codec {} cannot be transcoded yet: only H.264 sources can",
                        info.codec
                    )));
                }
                let stream = input
                    .stream(info.index)
                    .ok_or(VodError::Thread("lost the video stream"))?;
                let config = AvcConfig::parse(&extradata(&stream.parameters())).map_err(|e| {
                    VodError::UnsupportedVideo(format!(
                        "the H.264 stream has no usable decoder configuration (Annex B \
                         streams such as MPEG-TS are not supported yet): {e}"
                    ))
                })?;
                let rungs = plan(ladder, config.width, config.height, info.frame_rate)?;
                Some((info.index, config, rungs))
            }
            None => None,
        };
        let audio = match &report.audio {
            Some(info) => {
                let stream = input
                    .stream(info.index)
                    .ok_or(VodError::Thread("lost the audio stream"))?;
                let parameters = stream.parameters();
                let passthrough = (parameters.id() == codec::Id::AAC)
                    .then(|| AudioSpecificConfig::parse(&extradata(&parameters)).ok())
                    .flatten()
                    .filter(|config| config.object_type == 2);
                let audio = match passthrough {
                    Some(config) => AudioPath::PassThrough(config),
                    None => {
                        AudioPath::Transcode(Box::new(AacTranscoder::from_parameters(parameters)?))
                    }
                };
                Some((info.index, audio))
            }
            None => None,
        };

        let rungs = video
            .as_ref()
            .map(|(_, _, rungs)| rungs.clone())
            .unwrap_or_default();
        let ladder = match video {
            Some((index, config, rungs)) => {
                let settings = EncoderSettings {
                    when_behind: WhenBehind::Wait,
                    ..settings
                };
                let (transcoder, output) = LiveTranscoder::start(&config, rungs, settings)?;
                Some((index, transcoder, output))
            }
            None => None,
        };
        let demux = Demux {
            path: path.to_owned(),
            input,
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
    input: Input,
    events: SyncSender<VodEvent>,
}

type Ladderside = (usize, LiveTranscoder, Receiver<TranscoderOutput>);

impl Demux {
    fn run(
        mut self,
        ladder: Option<Ladderside>,
        audio: Option<(usize, AudioPath)>,
    ) -> Result<Option<TranscodeStats>, VodError> {
        let (video_index, transcoder, forwarder) = match ladder {
            Some((index, transcoder, output)) => {
                let events = self.events.clone();
                let forwarder = thread::Builder::new()
                    .name("sluice-vod-ladder".to_owned())
                    .spawn(move || {
                        for message in output {
                            if events.send(VodEvent::Video(message)).is_err() {
                                break;
                            }
                        }
                    })
                    .map_err(|_| VodError::Thread("could not be started"))?;
                (Some(index), Some(transcoder), Some(forwarder))
            }
            None => (None, None, None),
        };
        let (audio_index, mut audio) = match audio {
            Some((index, path)) => (Some(index), Some(path)),
            None => (None, None),
        };
        if let Some(path) = &audio {
            let config = match path {
                AudioPath::PassThrough(config) => config.clone(),
                AudioPath::Transcode(transcoder) => transcoder.config().clone(),
            };
            // A closed receiver means the caller gave up; the loop below ends on it too.
            let _ = self.events.send(VodEvent::AudioConfig(config));
        }

        let result = self.pump(
            video_index,
            transcoder.as_ref(),
            audio_index,
            audio.as_mut(),
        );
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
            if self.events.send(VodEvent::Audio(packet)).is_err() {
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
        video_index: Option<usize>,
        transcoder: Option<&LiveTranscoder>,
        audio_index: Option<usize>,
        mut audio: Option<&mut AudioPath>,
    ) -> Result<(), VodError> {
        for (stream, packet) in self.input.packets() {
            let index = stream.index();
            let kind = if Some(index) == video_index {
                TrackKind::Video
            } else if Some(index) == audio_index {
                TrackKind::Audio
            } else {
                continue;
            };
            let Some(packet) = to_packet(kind, stream.time_base(), &packet) else {
                continue;
            };
            let delivered = match (kind, transcoder, audio.as_deref_mut()) {
                (TrackKind::Video, Some(transcoder), _) => {
                    transcoder.push(packet)?;
                    true
                }
                (TrackKind::Audio, _, Some(AudioPath::PassThrough(_))) => {
                    emit(&self.events, VodEvent::Audio(packet))
                }
                (TrackKind::Audio, _, Some(AudioPath::Transcode(transcoder))) => transcoder
                    .push(&packet)?
                    .into_iter()
                    .all(|packet| emit(&self.events, VodEvent::Audio(packet))),
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
