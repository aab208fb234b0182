//! AV1 rungs, encoded with rav1e.
//!
//! An [`Av1Encoder`] takes the same scaled yuv420p pictures an x264 rung gets and, through an
//! [`Av1Session`] (rav1e, in the `sluice-av1enc` crate so that it is built optimised), turns
//! them into temporal units ready for an MP4 sample (AV1 Codec ISO Media File Format Binding
//! §2.4): OBUs with size fields, temporal delimiters and padding left out, one shown frame per
//! unit.
//!
//! What the encoder is set to:
//! - Key frames only where the caller forces them (`FrameTypeOverride::Key`): the maximum
//!   key-frame interval is infinite and scene detection is off, so the AV1 rungs cut on the
//!   very source pictures the H.264 rungs get their IDRs on.
//! - Single-pass bitrate mode at the rung's bitrate, with no quantizer ceiling and a rate
//!   buffer as long as the rung's VBV buffer; rav1e cannot cap peaks, so the VBV maximum
//!   otherwise only chooses the level.
//! - The level is the lowest whose picture size, display rate and Main-tier bitrate (AV1 spec
//!   Annex A.3) the rung fits, so the `av01` codec string says what a player needs; rav1e's own
//!   default is level 31, "no limits". (rav1e keeps these limits privately, and its own check
//!   of the display rate divides by the frame rate instead of multiplying, so they are here.)
//! - Speed preset 0–10 (10 is the fastest), 8-bit 4:2:0.
//!
//! The decoder configuration comes from the sequence header OBU rav1e writes at the start of
//! every key frame, so [`Av1Encoder::config`] is known once the first unit is out. It is read
//! from there rather than from `Context::container_sequence_header`, whose `av1C` always
//! declares level 31 and carries no `configOBUs`.

use bytes::{BufMut, Bytes, BytesMut};
use ffmpeg_next::frame;
use sluice_av1enc::{Av1Session, EncodedUnit, SessionParams};
use sluice_media::av1::{Obus, OBU_PADDING, OBU_SEQUENCE_HEADER, OBU_TEMPORAL_DELIMITER};
use sluice_media::Av1Config;

use crate::ladder::EncodeTarget;
use crate::x264::{ensure_yuv420p, EncodedFrame};
use crate::TranscodeError;

/// rav1e's fastest speed preset, the default for files.
pub const DEFAULT_SPEED: u8 = 10;

/// The limits of one AV1 level that a rung's settings decide (AV1 spec Annex A.3).
struct LevelLimits {
    seq_level_idx: u8,
    max_picture_size: u64,
    max_width: u32,
    max_height: u32,
    /// Luma samples per second.
    max_display_rate: u64,
    /// Main tier, profile 0, in kb/s.
    max_bitrate_kbps: u32,
}

const fn level(
    seq_level_idx: u8,
    max_picture_size: u64,
    max_width: u32,
    max_height: u32,
    max_display_rate: u64,
    max_bitrate_kbps: u32,
) -> LevelLimits {
    LevelLimits {
        seq_level_idx,
        max_picture_size,
        max_width,
        max_height,
        max_display_rate,
        max_bitrate_kbps,
    }
}

/// The defined levels from 2.0 to 6.2, lowest first.
const LEVELS: [LevelLimits; 13] = [
    level(0, 147_456, 2048, 1152, 4_423_680, 1_500),
    level(1, 278_784, 2816, 1584, 8_363_520, 3_000),
    level(4, 665_856, 4352, 2448, 19_975_680, 6_000),
    level(5, 1_065_024, 5504, 3096, 31_950_720, 10_000),
    level(8, 2_359_296, 6144, 3456, 70_778_880, 12_000),
    level(9, 2_359_296, 6144, 3456, 141_557_760, 20_000),
    level(12, 8_912_896, 8192, 4352, 267_386_880, 30_000),
    level(13, 8_912_896, 8192, 4352, 534_773_760, 40_000),
    level(14, 8_912_896, 8192, 4352, 1_069_547_520, 60_000),
    level(15, 8_912_896, 8192, 4352, 1_069_547_520, 60_000),
    level(16, 35_651_584, 16384, 8704, 1_069_547_520, 60_000),
    level(17, 35_651_584, 16384, 8704, 2_139_095_040, 100_000),
    level(18, 35_651_584, 16384, 8704, 4_278_190_080, 160_000),
];
/// `seq_level_idx` 31: the sequence declares no level limits.
const LEVEL_UNCONSTRAINED: u8 = 31;

/// An open rav1e encoder for one rung.
pub struct Av1Encoder {
    session: Av1Session,
    width: u32,
    height: u32,
    config: Option<Av1Config>,
}

impl Av1Encoder {
    /// Opens an encoder for a planned rung (size, nominal frame rate, bitrate) at `speed`
    /// (0–10, 10 fastest) with `threads` worker threads (0 shares rayon's global pool).
    pub fn open(target: &EncodeTarget, speed: u8, threads: u32) -> Result<Self, TranscodeError> {
        let refuse = |reason: String| TranscodeError::Av1EncoderOpen {
            width: target.width,
            height: target.height,
            bitrate_kbps: target.bitrate_kbps,
            reason,
        };
        if !(target.frame_rate.is_finite()
            && target.frame_rate > 0.0
            && target.frame_rate <= 1000.0)
        {
            return Err(refuse("frame rate outside (0, 1000]".into()));
        }
        let bitrate_bps = i32::try_from(u64::from(target.bitrate_kbps) * 1000)
            .map_err(|_| refuse("bitrate above 2 Gb/s".into()))?;
        let session = Av1Session::open(&SessionParams {
            width: target.width,
            height: target.height,
            frame_rate: target.frame_rate,
            bitrate_bps,
            reservoir_frames: reservoir_frames(target),
            level_idx: choose_level(target),
            speed: speed.min(DEFAULT_SPEED),
            threads: threads as usize,
        })
        .map_err(|err| refuse(err.to_string()))?;
        Ok(Av1Encoder {
            session,
            width: target.width,
            height: target.height,
            config: None,
        })
    }

    /// The `av1C` of this encoder's output, once the first temporal unit is out.
    pub fn config(&self) -> Option<&Av1Config> {
        self.config.as_ref()
    }

    /// Encodes one yuv420p picture stamped `pts` (90 kHz). `force_keyframe` makes it a key
    /// frame. Returns the temporal units rav1e finished (it holds pictures back for its
    /// lookahead), in presentation order.
    pub fn encode(
        &mut self,
        picture: &frame::Video,
        pts: i64,
        force_keyframe: bool,
    ) -> Result<Vec<EncodedFrame>, TranscodeError> {
        ensure_yuv420p(picture, self.width, self.height)?;
        let plane = |index| (picture.data(index), picture.stride(index));
        let units = self
            .session
            .send([plane(0), plane(1), plane(2)], pts, force_keyframe)
            .map_err(|err| TranscodeError::Av1Encode {
                pts,
                reason: err.to_string(),
            })?;
        self.samples(units)
    }

    /// Ends the stream and returns the temporal units rav1e still holds.
    pub fn flush(&mut self) -> Result<Vec<EncodedFrame>, TranscodeError> {
        let units = self
            .session
            .flush()
            .map_err(|err| TranscodeError::Av1Encode {
                pts: i64::MAX,
                reason: err.to_string(),
            })?;
        self.samples(units)
    }

    fn samples(&mut self, units: Vec<EncodedUnit>) -> Result<Vec<EncodedFrame>, TranscodeError> {
        units
            .into_iter()
            .map(|unit| self.temporal_unit(unit))
            .collect()
    }

    /// Turns rav1e's temporal unit into an MP4 sample, picking up the sequence header on the
    /// way.
    fn temporal_unit(&mut self, unit: EncodedUnit) -> Result<EncodedFrame, TranscodeError> {
        let mut sample = BytesMut::with_capacity(unit.data.len());
        for obu in Obus::new(&unit.data) {
            let obu = obu.map_err(TranscodeError::Av1SequenceHeader)?;
            match obu.obu_type {
                OBU_TEMPORAL_DELIMITER | OBU_PADDING => continue,
                OBU_SEQUENCE_HEADER if self.config.is_none() => {
                    let config = Av1Config::from_sequence_header_obu(obu.bytes)
                        .map_err(TranscodeError::Av1SequenceHeader)?;
                    self.config = Some(config);
                }
                _ => {}
            }
            sample.put_slice(obu.bytes);
        }
        if self.config.is_none() {
            return Err(TranscodeError::Av1Encode {
                pts: unit.pts,
                reason: "the first temporal unit has no sequence header".into(),
            });
        }
        Ok(EncodedFrame {
            pts: unit.pts,
            // AV1 never reorders shown frames: every unit decodes when it is presented.
            dts: unit.pts,
            keyframe: unit.keyframe,
            data: Bytes::from(sample),
        })
    }
}

/// The rung's VBV buffer in frames: rav1e's rate control evens its spending over that many
/// (its default, up to 240 frames, lets a short file overshoot its bitrate several times).
fn reservoir_frames(target: &EncodeTarget) -> i32 {
    let seconds = f64::from(target.vbv_bufsize_kbit) / f64::from(target.bitrate_kbps.max(1));
    (seconds * target.frame_rate)
        .round()
        .clamp(1.0, f64::from(i32::MAX)) as i32
}

/// The lowest level whose limits the rung's size, frame rate and peak bitrate (its VBV
/// maximum) fit on the Main tier; level 31 when none does.
fn choose_level(target: &EncodeTarget) -> u8 {
    let picture_size = u64::from(target.width) * u64::from(target.height);
    let display_rate = (picture_size as f64 * target.frame_rate).ceil();
    let peak_kbps = target.vbv_maxrate_kbps.max(target.bitrate_kbps);
    LEVELS
        .iter()
        .find(|limits| {
            picture_size <= limits.max_picture_size
                && target.width <= limits.max_width
                && target.height <= limits.max_height
                && display_rate <= limits.max_display_rate as f64
                && peak_kbps <= limits.max_bitrate_kbps
        })
        .map_or(LEVEL_UNCONSTRAINED, |limits| limits.seq_level_idx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ffmpeg_next::format::Pixel;

    fn target(width: u32, height: u32, frame_rate: f64, bitrate_kbps: u32) -> EncodeTarget {
        EncodeTarget {
            name: format!("{height}p"),
            codec: sluice_media::VideoCodec::Av1,
            width,
            height,
            frame_rate,
            bitrate_kbps,
            vbv_maxrate_kbps: bitrate_kbps * 11 / 10,
            vbv_bufsize_kbit: bitrate_kbps * 2,
        }
    }

    fn level_of(target: &EncodeTarget) -> u8 {
        choose_level(target)
    }

    #[test]
    fn level_follows_picture_size_rate_and_bitrate() {
        assert_eq!(level_of(&target(320, 180, 30.0, 200)), 0, "2.0");
        assert_eq!(level_of(&target(640, 360, 30.0, 520)), 1, "2.1");
        assert_eq!(level_of(&target(1280, 720, 30.0, 1950)), 5, "3.1");
        assert_eq!(level_of(&target(1280, 720, 60.0, 1950)), 8, "4.0");
        assert_eq!(level_of(&target(1920, 1080, 30.0, 3900)), 8, "4.0");
        assert_eq!(level_of(&target(1920, 1080, 60.0, 3900)), 9, "4.1");
        // A small picture at a bitrate above level 2.0's 1.5 Mb/s needs 2.1.
        assert_eq!(level_of(&target(320, 180, 30.0, 2000)), 1);
        assert_eq!(
            level_of(&target(320, 180, 30.0, 500_000)),
            LEVEL_UNCONSTRAINED
        );
        assert_eq!(level_of(&target(4096, 2304, 30.0, 10_000)), 16, "6.0");
    }

    fn gradient(width: u32, height: u32, shift: usize) -> frame::Video {
        let mut picture = frame::Video::new(Pixel::YUV420P, width, height);
        for plane in 0..3 {
            let stride = picture.stride(plane);
            for (index, byte) in picture.data_mut(plane).iter_mut().enumerate() {
                *byte = ((index % stride + index / stride + shift) % 256) as u8;
            }
        }
        picture
    }

    #[test]
    fn encodes_forced_key_frames_only_with_a_level_in_the_codec_string() {
        crate::init_ffmpeg();
        let rung = target(160, 90, 30.0, 150);
        let mut encoder = Av1Encoder::open(&rung, DEFAULT_SPEED, 1).unwrap();
        assert!(
            encoder.config().is_none(),
            "known once the first unit is out"
        );
        let ticks = i64::from(sluice_media::Timebase::MPEG.0) / 30;
        let forced = [0, 7, 20];
        let mut units = Vec::new();
        for index in 0..30 {
            let picture = gradient(160, 90, index * 3);
            let pts = 9_000 + index as i64 * ticks;
            units.extend(
                encoder
                    .encode(&picture, pts, forced.contains(&index))
                    .unwrap(),
            );
        }
        units.extend(encoder.flush().unwrap());

        assert_eq!(units.len(), 30);
        let times: Vec<i64> = units.iter().map(|unit| unit.pts).collect();
        assert!(times.windows(2).all(|pair| pair[0] < pair[1]), "{times:?}");
        assert!(units.iter().all(|unit| unit.dts == unit.pts));
        let keys: Vec<i64> = units
            .iter()
            .filter(|unit| unit.keyframe)
            .map(|unit| unit.pts)
            .collect();
        let expected: Vec<i64> = forced.iter().map(|&i| 9_000 + i as i64 * ticks).collect();
        assert_eq!(keys, expected);

        for unit in &units {
            let types: Vec<u8> = Obus::new(&unit.data)
                .map(|obu| obu.unwrap().obu_type)
                .collect();
            assert!(!types.contains(&OBU_TEMPORAL_DELIMITER), "{types:?}");
            assert_eq!(types.contains(&OBU_SEQUENCE_HEADER), unit.keyframe);
        }
        let config = encoder.config().expect("the sequence header was seen");
        assert_eq!((config.width, config.height), (160, 90));
        assert_eq!(config.codec_string(), "av01.0.00M.08");
        assert!(units[0].data.starts_with(&config.config_obus));
    }

    #[test]
    fn refuses_pictures_of_another_size_and_bad_rates() {
        crate::init_ffmpeg();
        let mut encoder = Av1Encoder::open(&target(160, 90, 30.0, 150), 10, 1).unwrap();
        let err = encoder.encode(&gradient(64, 36, 0), 0, true).unwrap_err();
        assert!(matches!(err, TranscodeError::PictureMismatch { .. }));
        assert!(matches!(
            Av1Encoder::open(&target(160, 90, 0.0, 150), 10, 1),
            Err(TranscodeError::Av1EncoderOpen { .. })
        ));
    }
}
