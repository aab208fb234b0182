//! One live session's media pipeline: ladder planning, the transcoder, and the packaging thread.
//!
//! ```text
//! RTMP task ──video──> LiveTranscoder ──(config, packets per rung)──> forwarder thread ─┐
//!           ──audio────────────────────────────────────────────────────────────────────┴─> packaging thread ──> ObjectStore
//! ```
//!
//! AAC audio is passed through; MP3 and Opus audio are transcoded to AAC-LC on the packaging
//! thread (see [`AudioInput`]). Video is H.264 (RTMP, WebRTC) or VP8 (WebRTC); VP8 has no
//! `source` rung (there is nothing to repackage into fMP4), so its ladder is encoded rungs only.
//!
//! Every queue is bounded. The transcoder drops (and counts) when it falls behind real time;
//! audio and the packaging channel apply backpressure to the publisher's TCP connection.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use sluice_media::{
    AudioCodec, AudioSpecificConfig, AvcConfig, Mp3FrameHeader, Packet, TrackKind, VideoCodec,
};
use sluice_storage::ObjectStore;
use sluice_transcoder::{
    plan, AacTranscoder, EncoderSettings, Ladder, LiveTranscoder, PlannedRung, TranscodeError,
    TranscoderOutput, VideoSource,
};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::renditions::{
    AudioInput, Destination, PackagingInput, SessionPackager, VideoRenditionPlan,
};
use crate::config::LiveConfig;

/// Inputs waiting for the packaging thread.
const PACKAGING_QUEUE: usize = 512;
/// Frame rate assumed for a source that declares none, until its timestamps say otherwise.
const FALLBACK_FRAME_RATE: f64 = 30.0;

/// What is known about a publisher's tracks when its pipeline starts.
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
}

impl SourceVideo {
    fn codec(&self) -> VideoCodec {
        match self {
            SourceVideo::Avc(_) => VideoCodec::H264,
            SourceVideo::Vp8 { .. } => VideoCodec::Vp8,
        }
    }

    pub fn width(&self) -> u32 {
        match self {
            SourceVideo::Avc(config) => config.width,
            SourceVideo::Vp8 { width, .. } => *width,
        }
    }

    pub fn height(&self) -> u32 {
        match self {
            SourceVideo::Avc(config) => config.height,
            SourceVideo::Vp8 { height, .. } => *height,
        }
    }

    /// The RFC 6381 codec string; VP8 has none here (it never reaches a playlist).
    fn codec_string(&self) -> Option<String> {
        match self {
            SourceVideo::Avc(config) => Some(config.codec_string()),
            SourceVideo::Vp8 { .. } => None,
        }
    }

    /// What the transcoder decodes.
    fn decoder_source(&self) -> VideoSource {
        match self {
            SourceVideo::Avc(config) => VideoSource::Avc(config.clone()),
            SourceVideo::Vp8 { .. } => VideoSource::Vp8,
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

    /// The RFC 6381 codec string; MP3 and Opus have none here (they never reach a playlist).
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

/// A running session pipeline.
pub struct SessionPipeline {
    transcoder: LiveTranscoder,
    packaging: mpsc::Sender<PackagingInput>,
    forwarder: JoinHandle<()>,
    packager: JoinHandle<()>,
    source: SourceDescription,
    meter: InputMeter,
}

impl SessionPipeline {
    /// Plans the ladder for this source and starts the transcoder and packaging threads.
    /// Blocking (it opens every codec): call it off the reactor, inside the runtime.
    pub fn start(
        mut source: SourceDescription,
        ladder: &serde_json::Value,
        config: &LiveConfig,
        store: Arc<dyn ObjectStore>,
        live_stream_id: &str,
        session_id: &str,
    ) -> anyhow::Result<SessionPipeline> {
        let ladder: Ladder = if ladder.is_null() {
            Ladder::DEFAULT
        } else {
            serde_json::from_value(ladder.clone()).context("stored ladder is invalid")?
        };
        let mut rungs = plan(
            &ladder,
            source.video.width(),
            source.video.height(),
            source.frame_rate,
        )?;
        if source.video.codec_string().is_none() {
            rungs.retain(|rung| matches!(rung, PlannedRung::Encode(_)));
            anyhow::ensure!(
                !rungs.is_empty(),
                "a {} source cannot be repackaged: its ladder needs an encoded rung",
                source.video.codec().name()
            );
        }
        let source_rate = source.frame_rate.unwrap_or(FALLBACK_FRAME_RATE);
        let plans = rungs
            .iter()
            .map(|rung| VideoRenditionPlan {
                frame_rate: match rung {
                    PlannedRung::Source => source_rate,
                    PlannedRung::Encode(target) => target.frame_rate,
                },
            })
            .collect();
        info!(
            live_stream_id,
            session_id,
            source = %format!("{}x{}", source.video.width(), source.video.height()),
            rungs = %rungs.iter().map(PlannedRung::name).collect::<Vec<_>>().join(","),
            "Starting the live ladder."
        );
        let segment = Duration::from_secs(u64::from(config.segment_seconds));
        let settings = EncoderSettings {
            preset: config.preset,
            keyframe_interval: segment,
            ..EncoderSettings::default()
        };
        let (transcoder, outputs) =
            LiveTranscoder::start(source.video.decoder_source(), rungs, settings)?;

        let (packaging, mut inbox) = mpsc::channel(PACKAGING_QUEUE);
        let destination = Destination {
            store,
            runtime: tokio::runtime::Handle::current(),
            live_stream_id: live_stream_id.to_owned(),
            session_id: session_id.to_owned(),
        };
        let opened = match &source.audio {
            Some(SourceAudio::Aac(config)) => Some(Ok(AudioInput::PassThrough(config.clone()))),
            Some(SourceAudio::Mp3(header)) => {
                Some(AacTranscoder::from_mp3(*header).map(AudioInput::Transcode))
            }
            Some(SourceAudio::Opus { channels }) => {
                Some(AacTranscoder::from_opus(*channels).map(AudioInput::Transcode))
            }
            None => None,
        };
        let audio = match opened {
            Some(Err(e)) => {
                let codec = source.audio.take().map(|audio| audio.codec().name());
                warn!(codec = ?codec, error = %e, "Audio cannot be transcoded; the stream goes on without audio.");
                None
            }
            Some(Ok(input)) => Some(input),
            None => None,
        };
        let window = config.playlist_window;
        let packager = std::thread::Builder::new()
            .name("sluice-packager".into())
            .spawn(move || {
                // Built here: it uploads (blocking on the runtime) from its first step.
                let mut packager = SessionPackager::new(destination, plans, audio, segment, window);
                while let Some(input) = inbox.blocking_recv() {
                    packager.handle(input);
                }
                packager.finish();
            })
            .context("spawning the packaging thread")?;
        let to_packager = packaging.clone();
        let forwarder = std::thread::Builder::new()
            .name("sluice-forwarder".into())
            .spawn(move || {
                for output in outputs {
                    let input = match output {
                        TranscoderOutput::Config { rung, config } => PackagingInput::VideoConfig {
                            index: rung,
                            config,
                        },
                        TranscoderOutput::Packet { rung, packet } => PackagingInput::Video {
                            index: rung,
                            packet,
                        },
                        TranscoderOutput::Finished { .. } => continue,
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
            packager,
            source,
            meter: InputMeter::default(),
        })
    }

    /// Feeds one packet from the publisher.
    /// Fails once the pipeline has stopped (every rung failed, or the packaging thread ended):
    /// the session should end then.
    pub async fn push(&mut self, packet: Packet) -> Result<(), TranscodeError> {
        self.meter.add(&packet);
        match packet.kind {
            TrackKind::Video => self.transcoder.push(packet),
            TrackKind::Audio if self.source.audio.is_some() => self
                .packaging
                .send(PackagingInput::Audio(packet))
                .await
                .map_err(|_| TranscodeError::Stopped),
            TrackKind::Audio => Ok(()),
        }
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

    /// Flushes the encoders, ends every playlist and returns the frames dropped in total.
    pub async fn finish(self) -> u64 {
        let SessionPipeline {
            transcoder,
            packaging,
            forwarder,
            packager,
            ..
        } = self;
        drop(packaging);
        let joined = tokio::task::spawn_blocking(move || {
            let stats = transcoder.finish();
            let _ = forwarder.join();
            let _ = packager.join();
            stats
        })
        .await;
        match joined {
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
        }
    }
}
