//! FLV audio and video tag bodies as RTMP carries them, turned into `sluice_media` types
//! (FLV specification v10.1, annex E.4.2 "Audio Tags" and E.4.3 "Video Tags"; Enhanced RTMP v1
//! §"Enhanced Video" and v2 §"Enhanced Audio").
//!
//! * Legacy AVC (CodecID 7): sequence header → [`TrackInfo::Avc`] via [`AvcConfig::parse`];
//!   NALU → [`Packet`] with `pts = dts + CompositionTime` (signed 24-bit) and the keyframe flag
//!   from FrameType; end of sequence → [`FlvTag::SequenceEnd`].
//! * Legacy AAC (SoundFormat 10): sequence header → [`TrackInfo::Aac`]; raw → [`Packet`].
//! * Legacy MP3 (SoundFormat 2): no sequence header exists, so every tag is a
//!   [`FlvTag::Frame`] naming the track ([`TrackInfo::OtherAudio`] with [`AudioCodec::Mp3`])
//!   and carrying the MP3 bytes after the one-byte audio tag header. The tag header's rate and
//!   type bits are ignored: each MP3 frame header states the true ones.
//! * Enhanced RTMP video (IsExHeader bit): FourCC `avc1` is carried like legacy AVC; `hvc1`,
//!   `av01`, `vp09` are recognised and reported as [`TrackInfo::OtherVideo`]. PacketTypes
//!   SequenceStart, CodedFrames, CodedFramesX, SequenceEnd and Metadata are understood.
//! * Enhanced RTMP audio (SoundFormat 9): FourCC `mp4a` is carried like AAC and `.mp3` like
//!   legacy MP3; `Opus` and others are reported as [`TrackInfo::OtherAudio`].
//! * Every other legacy codec is reported as `OtherVideo`/`OtherAudio` with its FLV id.
//!
//! Packets count in [`Timebase::MILLIS`], the RTMP clock.
//!
//! The writers at the end ([`avc_sequence_header`], [`avc_frame`], [`aac_sequence_header`],
//! [`aac_frame`]) build the legacy AVC and AAC tag bodies that the RTMP client sends; what they
//! write reads back through [`read_video`] and [`read_audio`] unchanged.

use bytes::Bytes;
use sluice_media::{
    AudioCodec, AudioSpecificConfig, AvcConfig, CodecError, Packet, Timebase, TrackInfo, TrackKind,
    VideoCodec,
};

/// Errors raised while reading a tag body; offsets are within the body.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FlvError {
    #[error("{kind:?} tag truncated: {what} needs {needed} bytes at offset {offset}")]
    Truncated {
        kind: TrackKind,
        what: &'static str,
        offset: usize,
        needed: usize,
    },
    #[error("{kind:?} tag: unknown Enhanced RTMP FourCC {fourcc:?}")]
    UnknownFourCc { kind: TrackKind, fourcc: [u8; 4] },
    #[error("{kind:?} tag: Enhanced RTMP packet type {packet_type} is not supported")]
    UnsupportedPacketType { kind: TrackKind, packet_type: u8 },
    #[error("bad {kind:?} decoder configuration: {source}")]
    Config {
        kind: TrackKind,
        #[source]
        source: CodecError,
    },
}

/// What one audio or video tag carried.
#[derive(Clone, Debug, PartialEq)]
pub enum FlvTag {
    /// A decoder configuration (AVC, AAC), or the identity of a codec Sluice does not carry,
    /// which every frame of that codec reports.
    Track(TrackInfo),
    /// A frame of a carried codec.
    Packet(Packet),
    /// A frame of a codec without a decoder configuration (MP3), with the track it belongs to.
    Frame { track: TrackInfo, packet: Packet },
    /// The encoder ended the sequence (AVC end of sequence, E-RTMP SequenceEnd).
    SequenceEnd,
    /// Nothing for the media plane: an empty tag, a video info/command frame or E-RTMP metadata.
    Nothing,
}

const AVC_CODEC_ID: u8 = 7;
const AAC_SOUND_FORMAT: u8 = 10;
const MP3_SOUND_FORMAT: u8 = 2;
const EX_HEADER_SOUND_FORMAT: u8 = 9;
const VIDEO_INFO_FRAME: u8 = 5;

struct Body<'a> {
    kind: TrackKind,
    bytes: &'a Bytes,
}

impl Body<'_> {
    fn byte(&self, what: &'static str, offset: usize) -> Result<u8, FlvError> {
        self.bytes.get(offset).copied().ok_or(FlvError::Truncated {
            kind: self.kind,
            what,
            offset,
            needed: 1,
        })
    }

    fn array<const N: usize>(
        &self,
        what: &'static str,
        offset: usize,
    ) -> Result<[u8; N], FlvError> {
        let mut out = [0u8; N];
        let src = self
            .bytes
            .get(offset..offset + N)
            .ok_or(FlvError::Truncated {
                kind: self.kind,
                what,
                offset,
                needed: N,
            })?;
        out.copy_from_slice(src);
        Ok(out)
    }

    /// A signed 24-bit big-endian composition time.
    fn composition_time(&self, offset: usize) -> Result<i64, FlvError> {
        let [a, b, c] = self.array("composition time", offset)?;
        let unsigned = i32::from_be_bytes([0, a, b, c]);
        Ok(i64::from((unsigned << 8) >> 8))
    }

    fn rest(&self, offset: usize) -> Bytes {
        self.bytes.slice(offset.min(self.bytes.len())..)
    }
}

/// Reads a video tag body received at `dts` milliseconds.
pub fn read_video(body: &Bytes, dts: i64) -> Result<FlvTag, FlvError> {
    let body = Body {
        kind: TrackKind::Video,
        bytes: body,
    };
    let Some(&first) = body.bytes.first() else {
        return Ok(FlvTag::Nothing);
    };
    if first & 0x80 != 0 {
        return read_enhanced_video(&body, first, dts);
    }
    let frame_type = first >> 4;
    let codec_id = first & 0x0F;
    if frame_type == VIDEO_INFO_FRAME {
        return Ok(FlvTag::Nothing);
    }
    if codec_id != AVC_CODEC_ID {
        return Ok(FlvTag::Track(TrackInfo::OtherVideo {
            codec: VideoCodec::LegacyFlv(codec_id),
        }));
    }
    let keyframe = frame_type == 1 || frame_type == 4;
    match body.byte("AVCPacketType", 1)? {
        0 => avc_track(&body.rest(5)),
        1 => {
            let cts = body.composition_time(2)?;
            Ok(video_packet(dts, cts, keyframe, body.rest(5)))
        }
        2 => Ok(FlvTag::SequenceEnd),
        other => Err(FlvError::UnsupportedPacketType {
            kind: TrackKind::Video,
            packet_type: other,
        }),
    }
}

fn read_enhanced_video(body: &Body<'_>, first: u8, dts: i64) -> Result<FlvTag, FlvError> {
    const SEQUENCE_START: u8 = 0;
    const CODED_FRAMES: u8 = 1;
    const SEQUENCE_END: u8 = 2;
    const CODED_FRAMES_X: u8 = 3;
    const METADATA: u8 = 4;
    let frame_type = (first >> 4) & 0x07;
    let packet_type = first & 0x0F;
    let fourcc: [u8; 4] = body.array("FourCC", 1)?;
    if frame_type == VIDEO_INFO_FRAME && packet_type != METADATA {
        return Ok(FlvTag::Nothing);
    }
    let codec = match &fourcc {
        b"avc1" => VideoCodec::H264,
        b"hvc1" => VideoCodec::Hevc,
        b"av01" => VideoCodec::Av1,
        b"vp09" => VideoCodec::Vp9,
        _ => {
            return Err(FlvError::UnknownFourCc {
                kind: TrackKind::Video,
                fourcc,
            })
        }
    };
    let keyframe = frame_type == 1 || frame_type == 4;
    match (codec, packet_type) {
        (_, METADATA) => Ok(FlvTag::Nothing),
        (_, SEQUENCE_END) => Ok(FlvTag::SequenceEnd),
        (VideoCodec::H264, SEQUENCE_START) => avc_track(&body.rest(5)),
        (VideoCodec::H264, CODED_FRAMES) => {
            let cts = body.composition_time(5)?;
            Ok(video_packet(dts, cts, keyframe, body.rest(8)))
        }
        (VideoCodec::H264, CODED_FRAMES_X) => Ok(video_packet(dts, 0, keyframe, body.rest(5))),
        (_, SEQUENCE_START | CODED_FRAMES | CODED_FRAMES_X) => {
            Ok(FlvTag::Track(TrackInfo::OtherVideo { codec }))
        }
        (_, packet_type) => Err(FlvError::UnsupportedPacketType {
            kind: TrackKind::Video,
            packet_type,
        }),
    }
}

fn avc_track(record: &[u8]) -> Result<FlvTag, FlvError> {
    let config = AvcConfig::parse(record).map_err(|source| FlvError::Config {
        kind: TrackKind::Video,
        source,
    })?;
    let frame_rate = config.sps_frame_rate;
    Ok(FlvTag::Track(TrackInfo::Avc { config, frame_rate }))
}

fn video_packet(dts: i64, cts: i64, keyframe: bool, data: Bytes) -> FlvTag {
    FlvTag::Packet(Packet {
        kind: TrackKind::Video,
        timebase: Timebase::MILLIS,
        dts,
        pts: dts.saturating_add(cts),
        keyframe,
        data,
    })
}

/// Reads an audio tag body received at `dts` milliseconds.
pub fn read_audio(body: &Bytes, dts: i64) -> Result<FlvTag, FlvError> {
    let body = Body {
        kind: TrackKind::Audio,
        bytes: body,
    };
    let Some(&first) = body.bytes.first() else {
        return Ok(FlvTag::Nothing);
    };
    let sound_format = first >> 4;
    match sound_format {
        AAC_SOUND_FORMAT => match body.byte("AACPacketType", 1)? {
            0 => aac_track(&body.rest(2)),
            _ => Ok(audio_packet(dts, body.rest(2))),
        },
        EX_HEADER_SOUND_FORMAT => read_enhanced_audio(&body, first, dts),
        MP3_SOUND_FORMAT => Ok(mp3_frame(dts, body.rest(1))),
        other => Ok(FlvTag::Track(TrackInfo::OtherAudio {
            codec: AudioCodec::OtherFlv(other),
        })),
    }
}

fn read_enhanced_audio(body: &Body<'_>, first: u8, dts: i64) -> Result<FlvTag, FlvError> {
    const SEQUENCE_START: u8 = 0;
    const CODED_FRAMES: u8 = 1;
    const SEQUENCE_END: u8 = 2;
    let packet_type = first & 0x0F;
    let fourcc: [u8; 4] = body.array("FourCC", 1)?;
    let codec = match &fourcc {
        b"mp4a" => AudioCodec::Aac,
        b"Opus" => AudioCodec::Opus,
        b".mp3" => AudioCodec::Mp3,
        b"fLaC" | b"ac-3" | b"ec-3" => AudioCodec::OtherFlv(EX_HEADER_SOUND_FORMAT),
        _ => {
            return Err(FlvError::UnknownFourCc {
                kind: TrackKind::Audio,
                fourcc,
            })
        }
    };
    match (codec, packet_type) {
        (_, SEQUENCE_END) => Ok(FlvTag::SequenceEnd),
        (AudioCodec::Aac, SEQUENCE_START) => aac_track(&body.rest(5)),
        (AudioCodec::Aac, CODED_FRAMES) => Ok(audio_packet(dts, body.rest(5))),
        (AudioCodec::Mp3, CODED_FRAMES) => Ok(mp3_frame(dts, body.rest(5))),
        (_, SEQUENCE_START | CODED_FRAMES) => Ok(FlvTag::Track(TrackInfo::OtherAudio { codec })),
        (_, packet_type) => Err(FlvError::UnsupportedPacketType {
            kind: TrackKind::Audio,
            packet_type,
        }),
    }
}

fn aac_track(raw: &[u8]) -> Result<FlvTag, FlvError> {
    let config = AudioSpecificConfig::parse(raw).map_err(|source| FlvError::Config {
        kind: TrackKind::Audio,
        source,
    })?;
    Ok(FlvTag::Track(TrackInfo::Aac { config }))
}

fn audio_packet(dts: i64, data: Bytes) -> FlvTag {
    FlvTag::Packet(audio_frame(dts, data))
}

/// MP3 bytes with their track; an empty tag carries nothing.
fn mp3_frame(dts: i64, data: Bytes) -> FlvTag {
    if data.is_empty() {
        return FlvTag::Nothing;
    }
    FlvTag::Frame {
        track: TrackInfo::OtherAudio {
            codec: AudioCodec::Mp3,
        },
        packet: audio_frame(dts, data),
    }
}

fn audio_frame(dts: i64, data: Bytes) -> Packet {
    Packet {
        kind: TrackKind::Audio,
        timebase: Timebase::MILLIS,
        dts,
        pts: dts,
        keyframe: true,
        data,
    }
}

/// The one audio tag header byte of AAC: SoundFormat 10, and the rate (44 kHz), size (16-bit)
/// and type (stereo) bits the FLV specification fixes for AAC whatever the real values are.
const AAC_TAG_HEADER: u8 = AAC_SOUND_FORMAT << 4 | 0x0F;

/// A legacy AVC sequence header tag body: keyframe, AVCPacketType 0, composition time 0, then
/// the AVCDecoderConfigurationRecord.
pub fn avc_sequence_header(config: &AvcConfig) -> Bytes {
    let mut body = Vec::with_capacity(5 + config.record.len());
    body.extend_from_slice(&[1 << 4 | AVC_CODEC_ID, 0, 0, 0, 0]);
    body.extend_from_slice(&config.record);
    Bytes::from(body)
}

/// A legacy AVC NALU tag body for `packet` (length-prefixed NAL units, as the avcC declares):
/// FrameType 1 for keyframes and 2 otherwise, AVCPacketType 1 and the composition time
/// `pts - dts` in milliseconds as a signed 24-bit value (clamped to its range).
pub fn avc_frame(packet: &Packet) -> Bytes {
    let frame_type: u8 = if packet.keyframe { 1 } else { 2 };
    let composition = packet
        .timebase
        .rescale(packet.pts.saturating_sub(packet.dts), Timebase::MILLIS)
        .clamp(-(1 << 23), (1 << 23) - 1) as i32;
    let [_, a, b, c] = composition.to_be_bytes();
    let mut body = Vec::with_capacity(5 + packet.data.len());
    body.extend_from_slice(&[frame_type << 4 | AVC_CODEC_ID, 1, a, b, c]);
    body.extend_from_slice(&packet.data);
    Bytes::from(body)
}

/// A legacy AAC sequence header tag body: the AudioSpecificConfig after AACPacketType 0.
pub fn aac_sequence_header(config: &AudioSpecificConfig) -> Bytes {
    let mut body = Vec::with_capacity(2 + config.raw.len());
    body.extend_from_slice(&[AAC_TAG_HEADER, 0]);
    body.extend_from_slice(&config.raw);
    Bytes::from(body)
}

/// A legacy AAC raw frame tag body (AACPacketType 1).
pub fn aac_frame(packet: &Packet) -> Bytes {
    let mut body = Vec::with_capacity(2 + packet.data.len());
    body.extend_from_slice(&[AAC_TAG_HEADER, 1]);
    body.extend_from_slice(&packet.data);
    Bytes::from(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The avcC of the 320x240 High-profile stream in `testdata/ffmpeg_publish.bin` (x264).
    const AVCC_320X240: &[u8] = &[
        0x01, 0x64, 0x00, 0x0D, 0xFF, 0xE1, 0x00, 0x19, 0x67, 0x64, 0x00, 0x0D, 0xAC, 0xD9, 0x41,
        0x41, 0xFB, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xC0, 0xF1,
        0x42, 0x99, 0x60, 0x01, 0x00, 0x04, 0x68, 0xEF, 0xBC, 0xB0,
    ];

    fn tag(prefix: &[u8], rest: &[u8]) -> Bytes {
        Bytes::from([prefix, rest].concat())
    }

    #[test]
    fn avc_sequence_header_becomes_an_avc_track() {
        let body = tag(&[0x17, 0x00, 0, 0, 0], AVCC_320X240);
        let FlvTag::Track(TrackInfo::Avc { config, .. }) = read_video(&body, 0).unwrap() else {
            panic!("expected an AVC track");
        };
        assert_eq!((config.width, config.height), (320, 240));
    }

    #[test]
    fn avc_nalu_gets_pts_from_signed_composition_time() {
        let body = tag(&[0x27, 0x01, 0xFF, 0xFF, 0xDF], &[0, 0, 0, 1, 0x41]);
        let FlvTag::Packet(packet) = read_video(&body, 1000).unwrap() else {
            panic!("expected a packet");
        };
        assert_eq!(
            (packet.dts, packet.pts, packet.keyframe),
            (1000, 967, false)
        );
        assert_eq!(packet.timebase, Timebase::MILLIS);
        assert_eq!(&packet.data[..], &[0, 0, 0, 1, 0x41]);
        let key = tag(&[0x17, 0x01, 0x00, 0x00, 0x42], &[]);
        let FlvTag::Packet(packet) = read_video(&key, 0).unwrap() else {
            panic!("expected a packet");
        };
        assert_eq!((packet.pts, packet.keyframe), (66, true));
    }

    #[test]
    fn aac_sequence_header_and_raw_frames() {
        let FlvTag::Track(TrackInfo::Aac { config }) =
            read_audio(&tag(&[0xAF, 0x00], &[0x12, 0x10]), 0).unwrap()
        else {
            panic!("expected an AAC track");
        };
        assert_eq!((config.sample_rate, config.channels), (44_100, 2));
        let FlvTag::Packet(packet) = read_audio(&tag(&[0xAF, 0x01], &[0x21, 0x00]), 23).unwrap()
        else {
            panic!("expected a packet");
        };
        assert_eq!((packet.dts, packet.pts, packet.keyframe), (23, 23, true));
        assert_eq!(packet.kind, TrackKind::Audio);
    }

    #[test]
    fn enhanced_rtmp_video_fourccs_are_recognised() {
        for (fourcc, codec) in [
            (b"hvc1", VideoCodec::Hevc),
            (b"av01", VideoCodec::Av1),
            (b"vp09", VideoCodec::Vp9),
        ] {
            for packet_type in [0u8, 1, 3] {
                let body = tag(&[0x90 | packet_type], fourcc);
                assert_eq!(
                    read_video(&body, 0),
                    Ok(FlvTag::Track(TrackInfo::OtherVideo { codec }))
                );
            }
            assert_eq!(
                read_video(&tag(&[0x92], fourcc), 0),
                Ok(FlvTag::SequenceEnd)
            );
            assert_eq!(read_video(&tag(&[0x94], fourcc), 0), Ok(FlvTag::Nothing));
        }
        assert!(matches!(
            read_video(&tag(&[0x90], b"xxxx"), 0),
            Err(FlvError::UnknownFourCc { .. })
        ));
    }

    #[test]
    fn enhanced_rtmp_avc1_is_carried_like_legacy_avc() {
        let header = [&[0x90][..], b"avc1", AVCC_320X240].concat();
        assert!(matches!(
            read_video(&Bytes::from(header), 0),
            Ok(FlvTag::Track(TrackInfo::Avc { .. }))
        ));
        let frame = [&[0x91][..], b"avc1", &[0, 0, 10], &[0, 0, 0, 1, 0x65]].concat();
        let FlvTag::Packet(packet) = read_video(&Bytes::from(frame), 5).unwrap() else {
            panic!("expected a packet");
        };
        assert_eq!(
            (packet.pts, packet.keyframe, packet.data.len()),
            (15, true, 5)
        );
        let frame_x = [&[0xA3][..], b"avc1", &[0, 0, 0, 1, 0x41]].concat();
        let FlvTag::Packet(packet) = read_video(&Bytes::from(frame_x), 5).unwrap() else {
            panic!("expected a packet");
        };
        assert_eq!((packet.pts, packet.keyframe), (5, false));
    }

    #[test]
    fn legacy_codecs_are_reported_as_other() {
        assert_eq!(
            read_video(&tag(&[0x24], &[1, 2]), 0),
            Ok(FlvTag::Track(TrackInfo::OtherVideo {
                codec: VideoCodec::LegacyFlv(4)
            }))
        );
        assert_eq!(
            read_audio(&tag(&[0x6F], &[1]), 0),
            Ok(FlvTag::Track(TrackInfo::OtherAudio {
                codec: AudioCodec::OtherFlv(6)
            }))
        );
        assert_eq!(
            read_audio(&tag(&[0x91], b"Opus"), 0),
            Ok(FlvTag::Track(TrackInfo::OtherAudio {
                codec: AudioCodec::Opus
            }))
        );
    }

    #[test]
    fn mp3_tags_carry_the_frame_after_the_tag_header() {
        let mp3 = TrackInfo::OtherAudio {
            codec: AudioCodec::Mp3,
        };
        let frame_bytes = [0xFF, 0xFB, 0x90, 0x64, 0x00];
        let FlvTag::Frame { track, packet } = read_audio(&tag(&[0x2F], &frame_bytes), 26).unwrap()
        else {
            panic!("expected an MP3 frame");
        };
        assert_eq!(track, mp3);
        assert_eq!(
            (packet.kind, packet.timebase),
            (TrackKind::Audio, Timebase::MILLIS)
        );
        assert_eq!((packet.dts, packet.pts, packet.keyframe), (26, 26, true));
        assert_eq!(&packet.data[..], &frame_bytes);
        let enhanced = [&[0x91][..], b".mp3", &frame_bytes].concat();
        let FlvTag::Frame { track, packet } = read_audio(&Bytes::from(enhanced), 52).unwrap()
        else {
            panic!("expected an MP3 frame");
        };
        assert_eq!((track, packet.dts), (mp3.clone(), 52));
        assert_eq!(&packet.data[..], &frame_bytes);
        assert_eq!(read_audio(&tag(&[0x2F], &[]), 0), Ok(FlvTag::Nothing));
        assert_eq!(
            read_audio(&tag(&[0x90], b".mp3"), 0),
            Ok(FlvTag::Track(mp3))
        );
    }

    #[test]
    fn truncated_tags_are_errors_at_every_length() {
        let full = tag(&[0x17, 0x00, 0, 0, 0], AVCC_320X240);
        for end in 1..full.len() {
            let cut = full.slice(..end);
            assert!(read_video(&cut, 0).is_err(), "cut at {end}");
        }
        assert!(read_video(&tag(&[0x27, 0x01, 0x00], &[]), 0).is_err());
        assert!(read_audio(&tag(&[0xAF], &[]), 0).is_err());
        assert_eq!(read_video(&Bytes::new(), 0), Ok(FlvTag::Nothing));
    }

    #[test]
    fn writers_produce_the_golden_bytes() {
        let config = AvcConfig::parse(AVCC_320X240).unwrap();
        assert_eq!(
            &avc_sequence_header(&config)[..],
            &tag(&[0x17, 0x00, 0, 0, 0], AVCC_320X240)[..]
        );
        let packet = Packet {
            kind: TrackKind::Video,
            timebase: Timebase::MPEG,
            dts: 90_000,
            pts: 87_030,
            keyframe: false,
            data: Bytes::from_static(&[0, 0, 0, 1, 0x41]),
        };
        // -33 ms of composition time: 0xFFFFDF as a signed 24-bit value.
        assert_eq!(
            &avc_frame(&packet)[..],
            &[0x27, 0x01, 0xFF, 0xFF, 0xDF, 0, 0, 0, 1, 0x41]
        );
        let aac = AudioSpecificConfig::parse(&[0x12, 0x10]).unwrap();
        assert_eq!(&aac_sequence_header(&aac)[..], &[0xAF, 0x00, 0x12, 0x10]);
        let frame = Packet {
            kind: TrackKind::Audio,
            timebase: Timebase::MILLIS,
            dts: 23,
            pts: 23,
            keyframe: true,
            data: Bytes::from_static(&[0x21, 0x00]),
        };
        assert_eq!(&aac_frame(&frame)[..], &[0xAF, 0x01, 0x21, 0x00]);
    }

    #[test]
    fn written_tags_read_back_unchanged() {
        let config = AvcConfig::parse(AVCC_320X240).unwrap();
        let FlvTag::Track(TrackInfo::Avc { config: read, .. }) =
            read_video(&avc_sequence_header(&config), 0).unwrap()
        else {
            panic!("expected an AVC track");
        };
        assert_eq!(read, config);
        for (keyframe, composition) in [(true, 0i64), (false, 66), (false, -40)] {
            let packet = Packet {
                kind: TrackKind::Video,
                timebase: Timebase::MILLIS,
                dts: 1_000,
                pts: 1_000 + composition,
                keyframe,
                data: Bytes::from_static(&[0, 0, 0, 2, 0x65, 0x88]),
            };
            assert_eq!(
                read_video(&avc_frame(&packet), 1_000),
                Ok(FlvTag::Packet(packet))
            );
        }
        let aac = AudioSpecificConfig::parse(&[0x11, 0x90]).unwrap();
        assert_eq!(
            read_audio(&aac_sequence_header(&aac), 0),
            Ok(FlvTag::Track(TrackInfo::Aac {
                config: aac.clone()
            }))
        );
        let frame = audio_frame(46, Bytes::from_static(&[0x21, 0x1A, 0x00]));
        assert_eq!(
            read_audio(&aac_frame(&frame), 46),
            Ok(FlvTag::Packet(frame))
        );
    }
}
