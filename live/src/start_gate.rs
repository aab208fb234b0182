//! The start of a live session: holds the publisher's first packets until the video (and
//! audio, if any) decoder configurations are known, then describes the source for the
//! pipeline. The gate owns every verdict on a publisher's tracks and first packets
//! ([`Verdict`]): wait, start, or refuse a source that can never start (audio only, a codec
//! that cannot be ingested, no usable video) or whose tracks change once started. It does no
//! I/O and reads no clock: the time since the session began is passed in.
//!
//! Codecs without a decoder configuration are known from their held frames: MP3 from its first
//! frame header, VP8 from its first key frame's header. Opus (WebRTC) is always 48 kHz and is
//! decoded as stereo, which covers mono senders too. Uncompressed pictures (a room's
//! composite) are known from their track alone, which gives their size and frame rate; a size
//! the transcoder cannot take is refused at once.
//!
//! What is held is bounded in packets and in bytes (a raw 1080p picture alone is 3 MB): once
//! the held bytes reach [`MAX_PENDING_BYTES`] the gate stops waiting for audio and starts with
//! the video it has, or refuses a source whose video is still unusable.

use std::time::Duration;

use sluice_media::{
    AudioCodec, Mp3FrameHeader, Packet, TrackInfo, TrackKind, VideoCodec, Vp8FrameHeader,
};
use sluice_transcoder::decode::check_raw_size;
use tracing::warn;

use super::pipeline::{SourceAudio, SourceDescription, SourceVideo};

/// Highest source frame rate believed from metadata or the SPS.
const MAX_FRAME_RATE: f64 = 240.0;
/// How much video is buffered while waiting for an audio sequence header before the pipeline
/// starts without audio.
const AUDIO_WAIT: Duration = Duration::from_secs(1);
/// How long a publisher may send audio with no video before it is refused.
const VIDEO_WAIT: Duration = Duration::from_secs(5);
/// Packets held while the pipeline waits for its track configurations.
const MAX_PENDING_PACKETS: usize = 1024;
/// Bytes held while the pipeline waits for its track configurations: about 20 raw 1080p
/// pictures, far more than a second of any compressed video the ladder takes.
const MAX_PENDING_BYTES: usize = 64 << 20;

/// What the gate makes of the publisher's media so far.
#[derive(Debug)]
pub enum Verdict {
    /// Keep reading: the pipeline cannot start yet.
    Wait,
    /// The pipeline can start with this source; [`StartGate::open`] hands over the held
    /// packets.
    Start(SourceDescription),
    /// The session cannot go on with this publisher.
    Refuse(Refusal),
}

/// Why the gate ends a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The video codec cannot be ingested (only H.264, and VP8 over WebRTC, can).
    VideoCodec(VideoCodec),
    /// Uncompressed video of a size the transcoder cannot take, and why.
    RawVideoSize(String),
    /// A track's configuration changed after the pipeline started.
    TrackChanged(TrackKind),
    /// Too many packets arrived before a usable video configuration.
    NoUsableVideo,
    /// Audio arrived with no video configuration for too long.
    AudioOnly,
}

impl Refusal {
    /// Says why in the log.
    pub fn log(self) {
        match self {
            Refusal::VideoCodec(codec) => {
                warn!(codec = %codec.name(), "Refused publish: only H.264 video can be ingested (VP8 too, over WebRTC).")
            }
            Refusal::RawVideoSize(reason) => {
                warn!(reason = %reason, "Refused publish: uncompressed video of a size that cannot be transcoded.")
            }
            Refusal::TrackChanged(kind) => {
                warn!(kind = ?kind, "Track configuration changed mid-stream; ending the session.")
            }
            Refusal::NoUsableVideo => {
                warn!("Refused publish: no usable video configuration arrived.")
            }
            Refusal::AudioOnly => {
                warn!("Refused publish: audio-only streams are not supported; send H.264 video.")
            }
        }
    }
}

/// Whether a frame rate a publisher declared (metadata or SPS) can be believed.
fn plausible_frame_rate(rate: f64) -> bool {
    rate.is_finite() && rate > 0.0 && rate <= MAX_FRAME_RATE
}

/// Holds the first packets until the pipeline knows its video (and audio, if any) tracks.
///
/// AAC audio is known from its sequence header; MP3 has none, so it is known from the first
/// held MP3 frame whose header parses (and is then transcoded to AAC).
#[derive(Default)]
pub struct StartGate {
    video: Option<TrackInfo>,
    audio: Option<TrackInfo>,
    /// Frame rate from the publisher's metadata, used when the video track declares none.
    frame_rate: Option<f64>,
    /// The publisher's audio codec cannot be carried: start without waiting for audio.
    audio_unsupported: bool,
    /// Packets held until the pipeline starts.
    pending: Vec<Packet>,
    /// The pipeline started: the tracks it was planned for may no longer change.
    opened: bool,
}

impl StartGate {
    /// The frame rate the publisher declared in its metadata, if any (the latest wins).
    pub fn metadata(&mut self, frame_rate: Option<f64>) {
        self.frame_rate = frame_rate.or(self.frame_rate);
    }

    /// A track configuration from the publisher. A codec that cannot be ingested refuses the
    /// session; audio that cannot be carried is left out; once the pipeline started, any new
    /// configuration ends the session (the decoder, the init segments and the master
    /// playlist all describe the first one, so the encoder must reconnect).
    pub fn track(&mut self, track: TrackInfo) -> Verdict {
        match track {
            TrackInfo::OtherVideo { codec } if codec != VideoCodec::Vp8 => {
                return Verdict::Refuse(Refusal::VideoCodec(codec));
            }
            TrackInfo::RawVideo { width, height, .. } => {
                if let Err(error) = check_raw_size(width, height) {
                    return Verdict::Refuse(Refusal::RawVideoSize(error.to_string()));
                }
            }
            TrackInfo::OtherAudio { codec }
                if !matches!(codec, AudioCodec::Mp3 | AudioCodec::Opus) =>
            {
                warn!(codec = %codec.name(), "Audio codec not supported; the stream goes on without audio.");
                self.audio_unsupported = true;
                return Verdict::Wait;
            }
            _ => {}
        }
        if self.opened {
            return Verdict::Refuse(Refusal::TrackChanged(track.kind()));
        }
        self.set_track(track);
        Verdict::Wait
    }

    /// A packet from the publisher before the pipeline started, `since_start` into the
    /// session: held when its track is known, then the verdict on starting.
    pub fn packet(&mut self, packet: Packet, since_start: Duration) -> Verdict {
        self.hold(packet);
        if self.pending.len() > MAX_PENDING_PACKETS {
            return Verdict::Refuse(Refusal::NoUsableVideo);
        }
        if self.audio_only_for(since_start) {
            return Verdict::Refuse(Refusal::AudioOnly);
        }
        match self.ready() {
            Some(source) => Verdict::Start(source),
            None if self.holds_too_much() => Verdict::Refuse(Refusal::NoUsableVideo),
            None => Verdict::Wait,
        }
    }

    /// The pipeline started: hands over the held packets, in order, for it to take first.
    pub fn open(&mut self) -> Vec<Packet> {
        self.opened = true;
        std::mem::take(&mut self.pending)
    }

    /// Records a track configuration (the latest one of each kind wins).
    fn set_track(&mut self, track: TrackInfo) {
        match track.kind() {
            TrackKind::Video => {
                // Held video was coded against the previous configuration.
                self.pending
                    .retain(|packet| packet.kind != TrackKind::Video);
                self.video = Some(track);
            }
            TrackKind::Audio => self.audio = Some(track),
        }
    }

    /// Holds a packet whose track configuration is known; others cannot be decoded and go.
    fn hold(&mut self, packet: Packet) {
        let usable = match packet.kind {
            TrackKind::Video => self.video.is_some(),
            TrackKind::Audio => self.audio.is_some(),
        };
        if usable {
            self.pending.push(packet);
        }
    }

    /// Whether the held packets reached [`MAX_PENDING_BYTES`]: the gate holds no more.
    fn holds_too_much(&self) -> bool {
        let held: usize = self.pending.iter().map(|packet| packet.data.len()).sum();
        held >= MAX_PENDING_BYTES
    }

    /// Decode-time span of the held video.
    fn video_span(&self) -> Duration {
        let mut video = self.pending.iter().filter(|p| p.kind == TrackKind::Video);
        match (
            video.next(),
            self.pending.iter().rfind(|p| p.kind == TrackKind::Video),
        ) {
            (Some(first), Some(last)) => {
                let span = last.dts_time().as_secs_f64() - first.dts_time().as_secs_f64();
                Duration::from_secs_f64(span.max(0.0))
            }
            _ => Duration::ZERO,
        }
    }

    /// Whether the publisher has sent no video configuration for too long (`since_start`).
    fn audio_only_for(&self, since_start: Duration) -> bool {
        self.video.is_none() && since_start > VIDEO_WAIT
    }

    /// The source description once the pipeline can start.
    fn ready(&self) -> Option<SourceDescription> {
        let (video, frame_rate, sps_frame_rate) = self.source_video()?;
        let audio = self.source_audio();
        let audio_settled = audio.is_some()
            || self.audio_unsupported
            || self.video_span() >= AUDIO_WAIT
            || self.holds_too_much();
        if !audio_settled {
            return None;
        }
        Some(SourceDescription {
            video,
            frame_rate: [frame_rate, self.frame_rate, sps_frame_rate]
                .into_iter()
                .flatten()
                .find(|rate| plausible_frame_rate(*rate)),
            audio,
        })
    }

    /// The video track as the pipeline will decode it, with the frame rates its track and its
    /// SPS declare, once it is known.
    fn source_video(&self) -> Option<(SourceVideo, Option<f64>, Option<f64>)> {
        match &self.video {
            Some(TrackInfo::Avc { config, frame_rate }) => Some((
                SourceVideo::Avc(config.clone()),
                *frame_rate,
                config.sps_frame_rate,
            )),
            Some(TrackInfo::OtherVideo {
                codec: VideoCodec::Vp8,
            }) => self
                .pending
                .iter()
                .filter(|p| p.kind == TrackKind::Video)
                .find_map(|p| Vp8FrameHeader::parse(&p.data).ok()?.dimensions)
                .map(|(width, height)| (SourceVideo::Vp8 { width, height }, None, None)),
            Some(TrackInfo::RawVideo {
                width,
                height,
                frame_rate,
            }) => Some((
                SourceVideo::Raw {
                    width: *width,
                    height: *height,
                },
                Some(*frame_rate),
                None,
            )),
            _ => None,
        }
    }

    /// The audio track as the pipeline will carry it, once it is known.
    fn source_audio(&self) -> Option<SourceAudio> {
        match &self.audio {
            Some(TrackInfo::Aac { config }) => Some(SourceAudio::Aac(config.clone())),
            Some(TrackInfo::OtherAudio {
                codec: AudioCodec::Mp3,
            }) => self
                .pending
                .iter()
                .filter(|p| p.kind == TrackKind::Audio)
                .find_map(|p| Mp3FrameHeader::parse(&p.data).ok())
                .map(SourceAudio::Mp3),
            Some(TrackInfo::OtherAudio {
                codec: AudioCodec::Opus,
            }) => Some(SourceAudio::Opus { channels: 2 }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use sluice_media::{AudioSpecificConfig, Timebase};

    fn video_track() -> TrackInfo {
        TrackInfo::Avc {
            config: sluice_media::fixtures::avc_320x240(),
            frame_rate: None,
        }
    }

    fn packet(kind: TrackKind, dts: i64) -> Packet {
        Packet {
            kind,
            timebase: Timebase::MILLIS,
            dts,
            pts: dts,
            keyframe: true,
            data: Bytes::from_static(&[0, 0, 0, 1, 0x65]),
        }
    }

    #[test]
    fn video_without_audio_starts_after_a_second_of_video() {
        let mut gate = StartGate::default();
        gate.set_track(video_track());
        gate.hold(packet(TrackKind::Video, 0));
        gate.hold(packet(TrackKind::Video, 500));
        assert!(gate.ready().is_none(), "still waiting for audio");
        gate.hold(packet(TrackKind::Video, 1_000));
        let source = gate.ready().expect("starts without audio");
        assert!(source.audio.is_none());
        assert_eq!((source.video.width(), source.video.height()), (320, 240));
    }

    #[test]
    fn aac_audio_starts_the_pipeline_at_once_ignoring_an_implausible_frame_rate() {
        let mut gate = StartGate {
            frame_rate: Some(f64::INFINITY),
            ..StartGate::default()
        };
        gate.set_track(video_track());
        gate.set_track(TrackInfo::Aac {
            config: AudioSpecificConfig::new(2, 48_000, 2).unwrap(),
        });
        gate.hold(packet(TrackKind::Video, 0));
        let source = gate.ready().expect("both tracks known");
        assert!(matches!(source.audio, Some(SourceAudio::Aac(_))));
        // The infinite metadata rate is passed over for what the SPS says, if anything.
        assert_eq!(
            source.frame_rate,
            sluice_media::fixtures::avc_320x240().sps_frame_rate
        );
        assert!(source.frame_rate.is_none_or(plausible_frame_rate));
    }

    #[test]
    fn a_new_video_configuration_discards_video_held_for_the_old_one() {
        let mut gate = StartGate::default();
        gate.set_track(video_track());
        gate.hold(packet(TrackKind::Video, 0));
        gate.hold(packet(TrackKind::Audio, 0));
        assert_eq!(
            gate.pending.len(),
            1,
            "audio without a configuration is not held"
        );
        gate.set_track(video_track());
        assert!(gate.pending.is_empty());
    }

    #[test]
    fn vp8_with_opus_starts_at_the_first_key_frame_with_its_size() {
        let mut gate = StartGate::default();
        gate.set_track(TrackInfo::OtherVideo {
            codec: VideoCodec::Vp8,
        });
        gate.set_track(TrackInfo::OtherAudio {
            codec: AudioCodec::Opus,
        });
        let mut inter = packet(TrackKind::Video, 0);
        inter.data = Bytes::from_static(&[0x31, 0x05, 0x00, 0x11]);
        gate.hold(inter);
        assert!(gate.ready().is_none(), "no key frame yet");
        let mut key = packet(TrackKind::Video, 33);
        key.data =
            Bytes::from_static(&[0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01]);
        gate.hold(key);
        let source = gate.ready().expect("sized by the key frame");
        assert!(matches!(
            source.video,
            SourceVideo::Vp8 {
                width: 640,
                height: 480
            }
        ));
        assert!(matches!(
            source.audio,
            Some(SourceAudio::Opus { channels: 2 })
        ));
    }

    fn raw_track(width: u32, height: u32) -> TrackInfo {
        TrackInfo::RawVideo {
            width,
            height,
            frame_rate: 30.0,
        }
    }

    fn raw_packet(width: u32, height: u32, index: u32) -> Packet {
        Packet {
            data: sluice_media::fixtures::raw_picture(width, height, index),
            ..packet(TrackKind::Video, i64::from(index) * 33)
        }
    }

    #[test]
    fn raw_video_with_aac_starts_at_its_first_picture_sized_and_timed_by_its_track() {
        let mut gate = StartGate::default();
        assert!(matches!(gate.track(raw_track(320, 180)), Verdict::Wait));
        gate.track(TrackInfo::Aac {
            config: AudioSpecificConfig::new(2, 48_000, 2).unwrap(),
        });
        let Verdict::Start(source) = gate.packet(raw_packet(320, 180, 0), Duration::ZERO) else {
            panic!("both tracks are known from their configurations");
        };
        assert!(matches!(
            source.video,
            SourceVideo::Raw {
                width: 320,
                height: 180
            }
        ));
        assert_eq!(source.frame_rate, Some(30.0));
        assert!(matches!(source.audio, Some(SourceAudio::Aac(_))));
    }

    #[test]
    fn raw_video_of_a_size_the_transcoder_cannot_take_is_refused_at_its_track() {
        for (width, height) in [(321, 180), (320, 0), (8192, 4320)] {
            assert!(
                matches!(
                    StartGate::default().track(raw_track(width, height)),
                    Verdict::Refuse(Refusal::RawVideoSize(_))
                ),
                "{width}x{height}"
            );
        }
    }

    #[test]
    fn raw_video_without_audio_starts_once_the_held_bytes_reach_their_bound() {
        let mut gate = StartGate::default();
        gate.track(raw_track(1920, 1080));
        let picture = raw_packet(1920, 1080, 0);
        let mut held = 0;
        let source = loop {
            // Pictures 33 ms apart: the bound comes long before a second of video.
            let verdict = gate.packet(
                Packet {
                    dts: held * 33,
                    pts: held * 33,
                    ..picture.clone()
                },
                Duration::ZERO,
            );
            held += 1;
            match verdict {
                Verdict::Wait => assert!(gate.video_span() < AUDIO_WAIT, "still waiting"),
                Verdict::Start(source) => break source,
                Verdict::Refuse(refusal) => panic!("refused: {refusal:?}"),
            }
        };
        assert!(source.audio.is_none());
        let bytes = gate.open().iter().map(|p| p.data.len()).sum::<usize>();
        assert!((MAX_PENDING_BYTES..MAX_PENDING_BYTES + picture.data.len()).contains(&bytes));
    }

    #[test]
    fn implausible_frame_rates_are_not_believed() {
        assert!(plausible_frame_rate(29.97));
        for rate in [0.0, -30.0, f64::INFINITY, f64::NAN, 1e300] {
            assert!(!plausible_frame_rate(rate), "{rate}");
        }
    }
}
