//! Compressed access units and the tracks they belong to.

use bytes::Bytes;

use crate::codec::{AudioCodec, AudioSpecificConfig, AvcConfig, VideoCodec};
use crate::time::{MediaTime, Timebase};

/// Which kind of elementary stream a packet or track is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TrackKind {
    Video,
    Audio,
}

/// One compressed access unit.
///
/// Payload conventions: H.264 is AVCC (NAL units each prefixed by a 4-byte big-endian length,
/// as in MP4 and FLV), AAC is one raw frame without ADTS header.
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
    /// The compressed bytes.
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
            TrackInfo::Avc { .. } | TrackInfo::OtherVideo { .. } => TrackKind::Video,
            TrackInfo::Aac { .. } | TrackInfo::OtherAudio { .. } => TrackKind::Audio,
        }
    }

    /// The RFC 6381 codec string (`avc1.64001f`, `mp4a.40.2`), when the track has one.
    pub fn codec_string(&self) -> Option<String> {
        match self {
            TrackInfo::Avc { config, .. } => Some(config.codec_string()),
            TrackInfo::Aac { config } => Some(config.codec_string()),
            TrackInfo::OtherVideo { .. } | TrackInfo::OtherAudio { .. } => None,
        }
    }
}
