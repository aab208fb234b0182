//! Compressed access units and the tracks they belong to.

use bytes::Bytes;

use crate::av1::Av1Config;
use crate::codec::{AudioCodec, AudioSpecificConfig, AvcConfig, VideoCodec};
use crate::time::{MediaTime, Timebase};

/// Which kind of elementary stream a packet or track is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TrackKind {
    Video,
    Audio,
}

/// One access unit: a compressed frame, or one uncompressed picture of a raw video track.
///
/// Payload conventions: H.264 is AVCC (NAL units each prefixed by a 4-byte big-endian length,
/// as in MP4 and FLV), AV1 is one temporal unit of OBUs with size fields and without temporal
/// delimiters (as in MP4), AAC is one raw frame without ADTS header, raw video is one yuv420p
/// picture ([`crate::raw_video`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// Video or audio.
    pub kind: TrackKind,
    /// Clock in which `dts` and `pts` count.
    pub timebase: Timebase,
    /// Decode timestamp.
    pub dts: i64,
    /// Presentation timestamp (equals `dts` for audio and for streams without B-frames).
    pub pts: i64,
    /// Whether a decoder can start here (an IDR for H.264; every audio frame).
    pub keyframe: bool,
    /// The frame's bytes (compressed, or a raw video picture).
    pub data: Bytes,
}

impl Packet {
    /// Decode time with its timebase.
    pub fn dts_time(&self) -> MediaTime {
        MediaTime::new(self.dts, self.timebase)
    }

    /// Presentation time with its timebase.
    pub fn pts_time(&self) -> MediaTime {
        MediaTime::new(self.pts, self.timebase)
    }
}

/// What a player or encoder needs to know about one elementary stream.
#[derive(Clone, Debug, PartialEq)]
pub enum TrackInfo {
    /// An H.264 video track with its decoder configuration.
    Avc {
        config: AvcConfig,
        /// Frames per second when known (from metadata or the SPS timing info).
        frame_rate: Option<f64>,
    },
    /// An AV1 video track with its decoder configuration.
    Av1 {
        config: Av1Config,
        /// Frames per second when known.
        frame_rate: Option<f64>,
    },
    /// Uncompressed video: every packet is one whole picture, yuv420p with 8 bits per sample,
    /// its planes packed as [`crate::raw_video`] describes
    /// ([`raw_picture_bytes`](crate::raw_video::raw_picture_bytes) in all), and a key frame; its
    /// timestamps may count in any timebase. A publisher that makes its own pictures (a room's
    /// composite) sends them this way rather than encoding them only for the ladder to decode
    /// them again.
    ///
    /// `width` and `height` are even and no larger than the transcoder takes as a source
    /// (`sluice_transcoder::ladder::MAX_SOURCE_PIXELS`); the live core refuses other sizes.
    RawVideo {
        width: u32,
        height: u32,
        /// Pictures per second the publisher makes.
        frame_rate: f64,
    },
    /// An AAC audio track with its AudioSpecificConfig.
    Aac { config: AudioSpecificConfig },
    /// A video codec Sluice recognises but does not carry in this track form.
    OtherVideo { codec: VideoCodec },
    /// An audio codec Sluice recognises but has no decoder configuration for.
    ///
    /// MP3 is the one such codec whose frames still flow as [`Packet`]s (each frame starts with
    /// its own header, see [`crate::Mp3FrameHeader`]): it has no HLS sample entry here and is
    /// transcoded to AAC before it reaches a playlist, so it has no codec string.
    OtherAudio { codec: AudioCodec },
}

impl TrackInfo {
    /// Video or audio.
    pub fn kind(&self) -> TrackKind {
        match self {
            TrackInfo::Avc { .. }
            | TrackInfo::Av1 { .. }
            | TrackInfo::RawVideo { .. }
            | TrackInfo::OtherVideo { .. } => TrackKind::Video,
            TrackInfo::Aac { .. } | TrackInfo::OtherAudio { .. } => TrackKind::Audio,
        }
    }

    /// The RFC 6381 codec string (`avc1.64001f`, `av01.0.04M.08`, `mp4a.40.2`), when the track
    /// has one (raw video has none: it is encoded before it reaches a playlist).
    pub fn codec_string(&self) -> Option<String> {
        match self {
            TrackInfo::Avc { config, .. } => Some(config.codec_string()),
            TrackInfo::Av1 { config, .. } => Some(config.codec_string()),
            TrackInfo::Aac { config } => Some(config.codec_string()),
            TrackInfo::RawVideo { .. }
            | TrackInfo::OtherVideo { .. }
            | TrackInfo::OtherAudio { .. } => None,
        }
    }
}

/// The decoder configuration of an encoded video rendition, whichever its codec.
#[derive(Clone, Debug, PartialEq)]
pub enum VideoConfig {
    Avc(AvcConfig),
    Av1(Av1Config),
}

impl VideoConfig {
    /// Which codec this configures.
    pub fn codec(&self) -> VideoCodec {
        match self {
            VideoConfig::Avc(_) => VideoCodec::H264,
            VideoConfig::Av1(_) => VideoCodec::Av1,
        }
    }

    /// Picture width in pixels.
    pub fn width(&self) -> u32 {
        match self {
            VideoConfig::Avc(config) => config.width,
            VideoConfig::Av1(config) => config.width,
        }
    }

    /// Picture height in pixels.
    pub fn height(&self) -> u32 {
        match self {
            VideoConfig::Avc(config) => config.height,
            VideoConfig::Av1(config) => config.height,
        }
    }

    /// The RFC 6381 codec string (`avc1.64001f`, `av01.0.04M.08`).
    pub fn codec_string(&self) -> String {
        match self {
            VideoConfig::Avc(config) => config.codec_string(),
            VideoConfig::Av1(config) => config.codec_string(),
        }
    }

    /// The track this configuration describes, at `frame_rate` when known.
    pub fn track_info(&self, frame_rate: Option<f64>) -> TrackInfo {
        match self {
            VideoConfig::Avc(config) => TrackInfo::Avc {
                config: config.clone(),
                frame_rate,
            },
            VideoConfig::Av1(config) => TrackInfo::Av1 {
                config: config.clone(),
                frame_rate,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn video_config_describes_its_track() {
        let avc = VideoConfig::Avc(crate::fixtures::avc_320x240());
        assert_eq!(avc.codec(), VideoCodec::H264);
        assert_eq!((avc.width(), avc.height()), (320, 240));
        let track = avc.track_info(Some(25.0));
        assert_eq!(track.kind(), TrackKind::Video);
        assert_eq!(track.codec_string(), Some(avc.codec_string()));

        let av1 = VideoConfig::Av1(crate::fixtures::av1_320x180());
        assert_eq!(av1.codec(), VideoCodec::Av1);
        assert_eq!((av1.width(), av1.height()), (320, 180));
        assert!(matches!(
            av1.track_info(None),
            TrackInfo::Av1 {
                frame_rate: None,
                ..
            }
        ));
        assert_eq!(
            av1.track_info(None).codec_string().as_deref(),
            Some("av01.0.00M.08")
        );
    }

    #[test]
    fn raw_video_is_a_video_track_without_a_codec_string() {
        let raw = TrackInfo::RawVideo {
            width: 320,
            height: 180,
            frame_rate: 30.0,
        };
        assert_eq!(raw.kind(), TrackKind::Video);
        assert_eq!(raw.codec_string(), None);
    }
}
