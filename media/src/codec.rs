//! Codec identities and decoder configurations.
//!
//! * [`AvcConfig`]: the AVCDecoderConfigurationRecord (`avcC`, ISO/IEC 14496-15 §5.3.3.1),
//!   parsed from FLV sequence headers or built from an encoder's SPS/PPS. Picture size and frame
//!   rate come from the SPS itself (parsed with `h264-reader`), never from what a peer claims.
//! * [`AudioSpecificConfig`]: the AAC decoder configuration (ISO/IEC 14496-3 §1.6.2.1).
//! * [`Mp3FrameHeader`]: the 4-byte header every MPEG audio Layer III frame starts with
//!   (ISO/IEC 11172-3 §2.4.1.3, ISO/IEC 13818-3 §2.4.1.3 for the half rates, and the common
//!   "MPEG 2.5" extension for the quarter rates). MP3 has no decoder configuration: each frame
//!   carries its own sample rate and channel mode, so this is where the true ones are read.
//!
//! The first two render the RFC 6381 codec strings HLS needs in `CODECS` (`avc1.PPCCLL`, `mp4a.40.N`).
//! Parsers here see untrusted bytes: they are bounds-checked and return [`CodecError`].

use bytes::{BufMut, Bytes, BytesMut};
use h264_reader::nal::sps::SeqParameterSet;
use h264_reader::rbsp::{decode_nal, BitReader};

/// Errors raised while reading codec configuration bytes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("{what} is truncated: need {needed} bytes at offset {offset}, have {available}")]
    Truncated {
        what: &'static str,
        offset: usize,
        needed: usize,
        available: usize,
    },
    #[error("{what} is invalid: {reason}")]
    Invalid { what: &'static str, reason: String },
}

/// Video codecs Sluice can recognise on ingest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    H264,
    Hevc,
    Av1,
    Vp9,
    /// VP8 (WebRTC ingest): no decoder configuration, the key frame header gives the size.
    Vp8,
    /// Uncompressed yuv420p pictures ([`crate::TrackInfo::RawVideo`]: a room's composite).
    Raw,
    /// A legacy FLV codec id (Sorenson H.263, VP6, screen video …), kept for the error message.
    LegacyFlv(u8),
}

impl VideoCodec {
    /// A short human name for logs and API responses.
    pub fn name(&self) -> String {
        match self {
            VideoCodec::H264 => "h264".into(),
            VideoCodec::Hevc => "hevc".into(),
            VideoCodec::Av1 => "av1".into(),
            VideoCodec::Vp9 => "vp9".into(),
            VideoCodec::Vp8 => "vp8".into(),
            VideoCodec::Raw => "rawvideo".into(),
            VideoCodec::LegacyFlv(id) => format!("flv-codec-{id}"),
        }
    }
}

/// Audio codecs Sluice can recognise on ingest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AudioCodec {
    Aac,
    Mp3,
    Opus,
    /// Another FLV SoundFormat id (PCM, Nellymoser, Speex, G.711 …).
    OtherFlv(u8),
}

impl AudioCodec {
    /// A short human name for logs and API responses.
    pub fn name(&self) -> String {
        match self {
            AudioCodec::Aac => "aac".into(),
            AudioCodec::Mp3 => "mp3".into(),
            AudioCodec::Opus => "opus".into(),
            AudioCodec::OtherFlv(id) => format!("flv-sound-format-{id}"),
        }
    }
}

fn take<'a>(
    what: &'static str,
    data: &'a [u8],
    offset: usize,
    len: usize,
) -> Result<&'a [u8], CodecError> {
    data.get(offset..offset.saturating_add(len))
        .ok_or(CodecError::Truncated {
            what,
            offset,
            needed: len,
            available: data.len().saturating_sub(offset),
        })
}

/// An H.264 decoder configuration (`avcC`) with what Sluice needs from its first SPS.
#[derive(Clone, Debug, PartialEq)]
pub struct AvcConfig {
    /// The whole AVCDecoderConfigurationRecord, ready for an `avcC` box.
    pub record: Bytes,
    /// `profile_idc` (66 baseline, 77 main, 100 high …).
    pub profile_idc: u8,
    /// The constraint-flag byte (`profile_compatibility`).
    pub constraint_flags: u8,
    /// `level_idc` (31 for level 3.1 …).
    pub level_idc: u8,
    /// Bytes in each NAL unit length prefix of the samples (1, 2 or 4).
    pub nal_length_size: u8,
    /// Sequence parameter sets (NAL units without length prefix).
    pub sps: Vec<Bytes>,
    /// Picture parameter sets (NAL units without length prefix).
    pub pps: Vec<Bytes>,
    /// Displayed width in pixels, from the SPS (cropping applied).
    pub width: u32,
    /// Displayed height in pixels, from the SPS (cropping applied).
    pub height: u32,
    /// Frame rate declared in the SPS VUI timing info, when present.
    pub sps_frame_rate: Option<f64>,
}

const AVCC: &str = "AVCDecoderConfigurationRecord";

impl AvcConfig {
    /// Parses an AVCDecoderConfigurationRecord.
    pub fn parse(record: &[u8]) -> Result<Self, CodecError> {
        let header = take(AVCC, record, 0, 6)?;
        if header[0] != 1 {
            return Err(CodecError::Invalid {
                what: AVCC,
                reason: format!("configurationVersion {} is not 1", header[0]),
            });
        }
        let nal_length_size = (header[4] & 0x03) + 1;
        if nal_length_size == 3 {
            return Err(CodecError::Invalid {
                what: AVCC,
                reason: "lengthSizeMinusOne of 2 is not allowed".into(),
            });
        }
        let sps_count = usize::from(header[5] & 0x1f);
        let mut offset = 6;
        let mut sps = Vec::with_capacity(sps_count);
        for _ in 0..sps_count {
            let nal = read_parameter_set(record, &mut offset)?;
            sps.push(nal);
        }
        let pps_count = usize::from(take(AVCC, record, offset, 1)?[0]);
        offset += 1;
        let mut pps = Vec::with_capacity(pps_count);
        for _ in 0..pps_count {
            pps.push(read_parameter_set(record, &mut offset)?);
        }
        let first_sps = sps.first().ok_or(CodecError::Invalid {
            what: AVCC,
            reason: "no sequence parameter set".into(),
        })?;
        let facts = SpsFacts::parse(first_sps)?;
        Ok(AvcConfig {
            record: Bytes::copy_from_slice(record),
            profile_idc: header[1],
            constraint_flags: header[2],
            level_idc: header[3],
            nal_length_size,
            sps,
            pps,
            width: facts.width,
            height: facts.height,
            sps_frame_rate: facts.frame_rate,
        })
    }

    /// Builds the configuration from parameter sets (as an encoder emits them), with 4-byte
    /// NAL length prefixes.
    pub fn from_parameter_sets(sps: &[u8], pps: &[u8]) -> Result<Self, CodecError> {
        if sps.len() < 4 {
            return Err(CodecError::Truncated {
                what: "sequence parameter set",
                offset: 0,
                needed: 4,
                available: sps.len(),
            });
        }
        let sps_len = u16::try_from(sps.len()).map_err(|_| CodecError::Invalid {
            what: "sequence parameter set",
            reason: "longer than 65535 bytes".into(),
        })?;
        let pps_len = u16::try_from(pps.len()).map_err(|_| CodecError::Invalid {
            what: "picture parameter set",
            reason: "longer than 65535 bytes".into(),
        })?;
        let mut record = BytesMut::with_capacity(11 + sps.len() + pps.len());
        record.put_u8(1);
        record.put_slice(&sps[1..4]);
        record.put_u8(0xfc | 3);
        record.put_u8(0xe0 | 1);
        record.put_u16(sps_len);
        record.put_slice(sps);
        record.put_u8(1);
        record.put_u16(pps_len);
        record.put_slice(pps);
        // High profiles carry chroma format and bit depth after the parameter sets
        // (ISO/IEC 14496-15 §5.3.3.1.2); 4:2:0 8-bit is what Sluice encodes.
        if !matches!(sps[1], 66 | 77 | 88) {
            record.put_slice(&[0xfc | 1, 0xf8, 0xf8, 0]);
        }
        Self::parse(&record)
    }

    /// The RFC 6381 codec string, e.g. `avc1.64001f`.
    pub fn codec_string(&self) -> String {
        format!(
            "avc1.{:02x}{:02x}{:02x}",
            self.profile_idc, self.constraint_flags, self.level_idc
        )
    }
}

fn read_parameter_set(record: &[u8], offset: &mut usize) -> Result<Bytes, CodecError> {
    let len_bytes = take(AVCC, record, *offset, 2)?;
    let len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
    let nal = take(AVCC, record, *offset + 2, len)?;
    *offset += 2 + len;
    Ok(Bytes::copy_from_slice(nal))
}

/// What Sluice reads out of a sequence parameter set.
struct SpsFacts {
    width: u32,
    height: u32,
    frame_rate: Option<f64>,
}

impl SpsFacts {
    fn parse(nal: &[u8]) -> Result<Self, CodecError> {
        let invalid = |reason: String| CodecError::Invalid {
            what: "sequence parameter set",
            reason,
        };
        // `decode_nal` assumes at least a header byte and one payload byte.
        if nal.len() < 4 || nal[0] & 0x1f != 7 {
            return Err(invalid("not an SPS NAL unit".into()));
        }
        let rbsp = decode_nal(nal).map_err(|e| invalid(e.to_string()))?;
        let sps = SeqParameterSet::from_bits(BitReader::new(&rbsp[..]))
            .map_err(|e| invalid(format!("{e:?}")))?;
        let (width, height) = sps
            .pixel_dimensions()
            .map_err(|e| invalid(format!("{e:?}")))?;
        let frame_rate = sps.fps().filter(|fps| fps.is_finite() && *fps > 0.0);
        Ok(SpsFacts {
            width,
            height,
            frame_rate,
        })
    }
}

/// An AAC AudioSpecificConfig.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioSpecificConfig {
    /// The raw configuration bytes, ready for an `esds` box.
    pub raw: Bytes,
    /// Audio object type (2 = AAC-LC, 5 = SBR/HE-AAC, 29 = PS).
    pub object_type: u8,
    /// Sampling frequency in Hz.
    pub sample_rate: u32,
    /// Channel count (0 means "defined in the program config element").
    pub channels: u8,
}

const SAMPLE_RATES: [u32; 13] = [
    96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025, 8_000,
    7_350,
];

const ASC: &str = "AudioSpecificConfig";

impl AudioSpecificConfig {
    /// Parses the first fields of an AudioSpecificConfig.
    pub fn parse(raw: &[u8]) -> Result<Self, CodecError> {
        let head = take(ASC, raw, 0, 2)?;
        let bits = u16::from_be_bytes([head[0], head[1]]);
        let mut object_type = (bits >> 11) as u8;
        let frequency_index = ((bits >> 7) & 0x0f) as usize;
        let mut channels = ((bits >> 3) & 0x0f) as u8;
        let sample_rate = if frequency_index == 15 {
            let wide = take(ASC, raw, 0, 5)?;
            let value = u64::from_be_bytes([0, 0, 0, wide[0], wide[1], wide[2], wide[3], wide[4]]);
            // 5 bits object type, 4 bits index, then 24 bits of explicit frequency.
            let freq = ((value >> 7) & 0x00ff_ffff) as u32;
            channels = ((value >> 3) & 0x0f) as u8;
            freq
        } else {
            *SAMPLE_RATES
                .get(frequency_index)
                .ok_or(CodecError::Invalid {
                    what: ASC,
                    reason: format!("reserved sampling frequency index {frequency_index}"),
                })?
        };
        if object_type == 31 {
            return Err(CodecError::Invalid {
                what: ASC,
                reason: "escaped audio object types are not supported".into(),
            });
        }
        if object_type == 0 {
            return Err(CodecError::Invalid {
                what: ASC,
                reason: "audio object type 0 is invalid".into(),
            });
        }
        if sample_rate == 0 {
            return Err(CodecError::Invalid {
                what: ASC,
                reason: "sampling frequency of 0 Hz".into(),
            });
        }
        // Keep the declared object type: HLS CODECS names the base type (mp4a.40.2 for
        // AAC-LC, mp4a.40.5 for HE-AAC signalled explicitly).
        object_type = object_type.min(30);
        Ok(AudioSpecificConfig {
            raw: Bytes::copy_from_slice(raw),
            object_type,
            sample_rate,
            channels,
        })
    }

    /// Builds a two-byte AudioSpecificConfig (used by tests and encoders).
    pub fn new(object_type: u8, sample_rate: u32, channels: u8) -> Result<Self, CodecError> {
        let index = SAMPLE_RATES
            .iter()
            .position(|rate| *rate == sample_rate)
            .ok_or(CodecError::Invalid {
                what: ASC,
                reason: format!("{sample_rate} Hz has no frequency index"),
            })? as u16;
        let bits = (u16::from(object_type & 0x1f) << 11)
            | (index << 7)
            | (u16::from(channels & 0x0f) << 3);
        Self::parse(&bits.to_be_bytes())
    }

    /// Samples in one AAC frame (1024 for AAC-LC; HE-AAC's core frame is also 1024).
    pub fn samples_per_frame(&self) -> u32 {
        1024
    }

    /// The RFC 6381 codec string, e.g. `mp4a.40.2`.
    pub fn codec_string(&self) -> String {
        format!("mp4a.40.{}", self.object_type)
    }
}

/// What Sluice reads from an MP3 (MPEG audio Layer III) frame header.
///
/// FLV's audio tag header also declares a rate and a channel count for MP3, but only four rates
/// (5.5/11/22/44 kHz) and it is often wrong (48 kHz streams say 44 kHz); the frame header is the
/// truth, so that is what this reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mp3FrameHeader {
    /// Sampling frequency in Hz (8 000 to 48 000).
    pub sample_rate: u32,
    /// 1 for single-channel mode, 2 for stereo, joint stereo and dual channel.
    pub channels: u8,
}

const MP3: &str = "MP3 frame header";

impl Mp3FrameHeader {
    /// Parses the header at the start of `frame`.
    pub fn parse(frame: &[u8]) -> Result<Self, CodecError> {
        let head = take(MP3, frame, 0, 4)?;
        let invalid = |reason: String| CodecError::Invalid { what: MP3, reason };
        if head[0] != 0xFF || head[1] & 0xE0 != 0xE0 {
            return Err(invalid("no frame sync".into()));
        }
        // Version: 0 = MPEG 2.5, 1 = reserved, 2 = MPEG-2 (half rates), 3 = MPEG-1.
        let rate_divisor = match (head[1] >> 3) & 0x03 {
            0 => 4,
            2 => 2,
            3 => 1,
            _ => return Err(invalid("reserved MPEG audio version".into())),
        };
        // Layer: 1 = Layer III, 2 = Layer II, 3 = Layer I, 0 = reserved.
        match (head[1] >> 1) & 0x03 {
            1 => {}
            0 => return Err(invalid("reserved layer".into())),
            layer => return Err(invalid(format!("Layer {} is not Layer III", 4 - layer))),
        }
        if head[2] >> 4 == 0x0F {
            return Err(invalid("bitrate index 15 is invalid".into()));
        }
        let base_rate = match (head[2] >> 2) & 0x03 {
            0 => 44_100,
            1 => 48_000,
            2 => 32_000,
            _ => return Err(invalid("reserved sampling frequency index 3".into())),
        };
        Ok(Mp3FrameHeader {
            sample_rate: base_rate / rate_divisor,
            channels: if head[3] >> 6 == 3 { 1 } else { 2 },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::fixtures::{PPS_320X240 as PPS, SPS_320X240};

    #[test]
    fn avc_config_round_trips_through_parameter_sets() {
        let config = AvcConfig::from_parameter_sets(&SPS_320X240, &PPS).unwrap();
        assert_eq!((config.width, config.height), (320, 240));
        assert_eq!(config.codec_string(), "avc1.64000d");
        assert_eq!(config.nal_length_size, 4);
        let reparsed = AvcConfig::parse(&config.record).unwrap();
        assert_eq!(reparsed, config);
    }

    #[test]
    fn avc_config_rejects_truncation_at_every_length() {
        let config = AvcConfig::from_parameter_sets(&SPS_320X240, &PPS).unwrap();
        for len in 0..config.record.len() - 4 {
            assert!(
                AvcConfig::parse(&config.record[..len]).is_err(),
                "len {len}"
            );
        }
    }

    #[test]
    fn avc_config_rejects_garbage_sps() {
        let record = [
            1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 2, 0x67, 0xff, 1, 0, 1, 0x68,
        ];
        assert!(AvcConfig::parse(&record).is_err());
    }

    #[test]
    fn aac_lc_config_parses() {
        let asc = AudioSpecificConfig::parse(&[0x12, 0x10]).unwrap();
        assert_eq!(
            (asc.object_type, asc.sample_rate, asc.channels),
            (2, 44_100, 2)
        );
        assert_eq!(asc.codec_string(), "mp4a.40.2");
        assert_eq!(
            AudioSpecificConfig::new(2, 48_000, 2).unwrap().raw.as_ref(),
            &[0x11, 0x90]
        );
    }

    #[test]
    fn aac_config_rejects_short_and_reserved() {
        assert!(AudioSpecificConfig::parse(&[0x12]).is_err());
        assert!(AudioSpecificConfig::parse(&[0x16, 0x90]).is_err());
        assert!(AudioSpecificConfig::parse(&[0x00, 0x10]).is_err());
    }

    #[test]
    fn mp3_frame_header_gives_rate_and_channels() {
        // MPEG-1 Layer III, 128 kb/s, 44.1 kHz, joint stereo (what libmp3lame writes).
        assert_eq!(
            Mp3FrameHeader::parse(&[0xFF, 0xFB, 0x90, 0x64]),
            Ok(Mp3FrameHeader {
                sample_rate: 44_100,
                channels: 2
            })
        );
        // MPEG-1, 48 kHz, single channel.
        let mono = Mp3FrameHeader::parse(&[0xFF, 0xFB, 0x94, 0xC4]).unwrap();
        assert_eq!((mono.sample_rate, mono.channels), (48_000, 1));
        // MPEG-2 (24 kHz) and MPEG 2.5 (8 kHz).
        assert_eq!(
            Mp3FrameHeader::parse(&[0xFF, 0xF3, 0x84, 0x00])
                .unwrap()
                .sample_rate,
            24_000
        );
        assert_eq!(
            Mp3FrameHeader::parse(&[0xFF, 0xE3, 0x88, 0x00])
                .unwrap()
                .sample_rate,
            8_000
        );
    }

    #[test]
    fn mp3_frame_header_rejects_other_layers_and_garbage() {
        for bad in [
            &[0xFF, 0xFB, 0x90][..],
            &[0x00, 0xFB, 0x90, 0x64],
            &[0xFF, 0xFD, 0x90, 0x64],
            &[0xFF, 0xEB, 0x90, 0x64],
            &[0xFF, 0xFB, 0xF0, 0x64],
            &[0xFF, 0xFB, 0x9C, 0x64],
        ] {
            assert!(Mp3FrameHeader::parse(bad).is_err(), "{bad:02x?}");
        }
    }
}
