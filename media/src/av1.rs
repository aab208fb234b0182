//! AV1 bitstream pieces Sluice needs to carry AV1 in CMAF.
//!
//! * [`Obus`]: the Open Bitstream Units of a low-overhead AV1 bitstream (AV1 spec §5.3), each
//!   with its `obu_size`: how an encoder's temporal units are split, so temporal delimiters can
//!   be left out of MP4 samples and the sequence header found.
//! * [`SequenceHeader`]: the fields of a sequence header OBU (AV1 spec §5.5) that the codec
//!   configuration and the codec string need: profile, level and tier of operating point 0,
//!   maximum picture size, and the colour configuration (bit depth, monochrome, chroma
//!   subsampling and sample position).
//! * [`Av1Config`]: the AV1CodecConfigurationRecord (`av1C`, AV1 Codec ISO Media File Format
//!   Binding §2.3), built from a sequence header OBU or parsed from an `av1C` payload, and the
//!   RFC 6381 codec string `av01.P.LLT.DD` of the binding's Annex A.
//!
//! The bytes read here may come from anywhere: every reader is bounds-checked and returns
//! [`CodecError`] rather than panicking.

use bitstream_io::{BigEndian, BitRead, BitReader};
use bytes::{BufMut, Bytes, BytesMut};

use crate::codec::CodecError;

/// `obu_type` of a sequence header OBU (AV1 spec §6.2.2).
pub const OBU_SEQUENCE_HEADER: u8 = 1;
/// `obu_type` of a temporal delimiter OBU.
pub const OBU_TEMPORAL_DELIMITER: u8 = 2;
/// `obu_type` of a padding OBU.
pub const OBU_PADDING: u8 = 15;

const OBU: &str = "AV1 OBU";
const SEQUENCE_HEADER: &str = "AV1 sequence header";
const AV1C: &str = "AV1CodecConfigurationRecord";

/// One OBU of a low-overhead bitstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Obu<'a> {
    /// `obu_type` (1 sequence header, 2 temporal delimiter, 6 frame, …).
    pub obu_type: u8,
    /// The whole OBU: header, `obu_size` and payload.
    pub bytes: &'a [u8],
    /// The payload alone.
    pub payload: &'a [u8],
}

/// Iterates the OBUs of a temporal unit or of `configOBUs`. Every OBU must carry its size
/// (`obu_has_size_field` 1), as the ISOBMFF binding requires of samples and `configOBUs`.
/// After the first error the iterator ends.
pub struct Obus<'a> {
    rest: &'a [u8],
    offset: usize,
}

impl<'a> Obus<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Obus {
            rest: data,
            offset: 0,
        }
    }

    fn next_obu(&mut self) -> Result<Obu<'a>, CodecError> {
        let invalid = |reason: String| CodecError::Invalid { what: OBU, reason };
        let header = self.rest[0];
        if header & 0x80 != 0 {
            return Err(invalid(format!(
                "forbidden bit set at offset {}",
                self.offset
            )));
        }
        let obu_type = (header >> 3) & 0x0f;
        let has_extension = header & 0x04 != 0;
        if header & 0x02 == 0 {
            return Err(invalid(format!(
                "the OBU at offset {} has no obu_size field",
                self.offset
            )));
        }
        let header_len = 1 + usize::from(has_extension);
        let (payload_len, size_len) = leb128(self.rest.get(header_len..).unwrap_or_default())
            .ok_or_else(|| invalid(format!("bad obu_size at offset {}", self.offset)))?;
        let start = header_len + size_len;
        let total = usize::try_from(payload_len)
            .ok()
            .and_then(|len| start.checked_add(len))
            .filter(|&end| end <= self.rest.len())
            .ok_or(CodecError::Truncated {
                what: OBU,
                offset: self.offset,
                needed: start.saturating_add(payload_len as usize),
                available: self.rest.len(),
            })?;
        let (bytes, rest) = self.rest.split_at(total);
        self.rest = rest;
        self.offset += total;
        Ok(Obu {
            obu_type,
            bytes,
            payload: &bytes[start..],
        })
    }
}

impl<'a> Iterator for Obus<'a> {
    type Item = Result<Obu<'a>, CodecError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let obu = self.next_obu();
        if obu.is_err() {
            self.rest = &[];
        }
        Some(obu)
    }
}

/// Reads an unsigned LEB128 value (AV1 spec §4.10.5): at most 8 bytes, at most 2³² − 1.
/// Returns the value and the bytes it took.
fn leb128(data: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (index, byte) in data.iter().take(8).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            return (value <= u64::from(u32::MAX)).then_some((value, index + 1));
        }
    }
    None
}

/// What Sluice reads from a sequence header OBU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SequenceHeader {
    pub seq_profile: u8,
    /// `seq_level_idx[0]`: level of operating point 0 (0 is level 2.0, 31 means no limits).
    pub seq_level_idx_0: u8,
    /// `seq_tier[0]`: 0 Main, 1 High.
    pub seq_tier_0: u8,
    pub high_bitdepth: bool,
    pub twelve_bit: bool,
    pub monochrome: bool,
    pub chroma_subsampling_x: bool,
    pub chroma_subsampling_y: bool,
    /// 0 unknown, 1 vertical (co-located with luma column), 2 co-located.
    pub chroma_sample_position: u8,
    /// `max_frame_width_minus_1 + 1`.
    pub max_frame_width: u32,
    /// `max_frame_height_minus_1 + 1`.
    pub max_frame_height: u32,
}

/// `color_primaries` BT.709, `transfer_characteristics` sRGB and `matrix_coefficients`
/// identity: the combination that implies 4:4:4 full range (AV1 spec §5.5.2).
const CP_BT_709: u8 = 1;
const TC_SRGB: u8 = 13;
const MC_IDENTITY: u8 = 0;

impl SequenceHeader {
    /// Parses a sequence header OBU's payload (AV1 spec §5.5.1 up to `color_config`).
    pub fn parse(payload: &[u8]) -> Result<Self, CodecError> {
        Self::read(&mut BitReader::endian(payload, BigEndian)).map_err(|err| CodecError::Invalid {
            what: SEQUENCE_HEADER,
            reason: match err.kind() {
                std::io::ErrorKind::UnexpectedEof => "truncated".to_owned(),
                _ => err.to_string(),
            },
        })
    }

    fn read<R: BitRead>(bits: &mut R) -> std::io::Result<Self> {
        let seq_profile = bits.read::<3, u8>()?;
        if seq_profile > 2 {
            return Err(invalid_data("seq_profile above 2 is reserved"));
        }
        let _still_picture = bits.read_bit()?;
        let reduced_still_picture_header = bits.read_bit()?;
        let (seq_level_idx_0, seq_tier_0) = if reduced_still_picture_header {
            (bits.read::<5, u8>()?, 0)
        } else {
            read_operating_points(bits)?
        };
        let frame_width_bits = bits.read::<4, u32>()? + 1;
        let frame_height_bits = bits.read::<4, u32>()? + 1;
        let max_frame_width = bits.read_var::<u32>(frame_width_bits)?.saturating_add(1);
        let max_frame_height = bits.read_var::<u32>(frame_height_bits)?.saturating_add(1);
        let frame_id_numbers_present = !reduced_still_picture_header && bits.read_bit()?;
        if frame_id_numbers_present {
            // delta_frame_id_length_minus_2, additional_frame_id_length_minus_1
            bits.skip(4 + 3)?;
        }
        // use_128x128_superblock, enable_filter_intra, enable_intra_edge_filter
        bits.skip(3)?;
        if !reduced_still_picture_header {
            // enable_interintra_compound, enable_masked_compound, enable_warped_motion,
            // enable_dual_filter
            bits.skip(4)?;
            let enable_order_hint = bits.read_bit()?;
            if enable_order_hint {
                // enable_jnt_comp, enable_ref_frame_mvs
                bits.skip(2)?;
            }
            let seq_choose_screen_content_tools = bits.read_bit()?;
            let seq_force_screen_content_tools =
                seq_choose_screen_content_tools || bits.read_bit()?;
            if seq_force_screen_content_tools {
                let seq_choose_integer_mv = bits.read_bit()?;
                if !seq_choose_integer_mv {
                    bits.skip(1)?; // seq_force_integer_mv
                }
            }
            if enable_order_hint {
                bits.skip(3)?; // order_hint_bits_minus_1
            }
        }
        // enable_superres, enable_cdef, enable_restoration
        bits.skip(3)?;

        // color_config (§5.5.2)
        let high_bitdepth = bits.read_bit()?;
        let twelve_bit = seq_profile == 2 && high_bitdepth && bits.read_bit()?;
        let monochrome = seq_profile != 1 && bits.read_bit()?;
        let (primaries, transfer, matrix) = if bits.read_bit()? {
            (
                bits.read::<8, u8>()?,
                bits.read::<8, u8>()?,
                bits.read::<8, u8>()?,
            )
        } else {
            (2, 2, 2) // unspecified
        };
        let (subsampling_x, subsampling_y, chroma_sample_position) = if monochrome {
            (true, true, 0)
        } else if (primaries, transfer, matrix) == (CP_BT_709, TC_SRGB, MC_IDENTITY) {
            (false, false, 0)
        } else {
            bits.skip(1)?; // color_range
            let (x, y) = match seq_profile {
                0 => (true, true),
                1 => (false, false),
                _ if twelve_bit => {
                    let x = bits.read_bit()?;
                    (x, x && bits.read_bit()?)
                }
                _ => (true, false),
            };
            let position = if x && y { bits.read::<2, u8>()? } else { 0 };
            (x, y, position)
        };
        Ok(SequenceHeader {
            seq_profile,
            seq_level_idx_0,
            seq_tier_0,
            high_bitdepth,
            twelve_bit,
            monochrome,
            chroma_subsampling_x: subsampling_x,
            chroma_subsampling_y: subsampling_y,
            chroma_sample_position,
            max_frame_width,
            max_frame_height,
        })
    }

    /// Bits per sample: 8, 10 or 12.
    pub fn bit_depth(&self) -> u8 {
        bit_depth(self.high_bitdepth, self.twelve_bit)
    }
}

/// `BitDepth` from `high_bitdepth` and `twelve_bit` (AV1 spec §5.5.2).
fn bit_depth(high_bitdepth: bool, twelve_bit: bool) -> u8 {
    match (high_bitdepth, twelve_bit) {
        (false, _) => 8,
        (true, false) => 10,
        (true, true) => 12,
    }
}

fn invalid_data(reason: &'static str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, reason)
}

/// Reads timing, decoder model and operating point information; returns the level and tier
/// of operating point 0.
fn read_operating_points<R: BitRead>(bits: &mut R) -> std::io::Result<(u8, u8)> {
    let timing_info_present = bits.read_bit()?;
    let mut buffer_delay_length = None;
    if timing_info_present {
        // num_units_in_display_tick, time_scale
        bits.skip(64)?;
        if bits.read_bit()? {
            skip_uvlc(bits)?; // num_ticks_per_picture_minus_1
        }
        if bits.read_bit()? {
            // decoder_model_info: buffer_delay_length_minus_1, then num_units_in_decoding_tick,
            // buffer_removal_time_length_minus_1, frame_presentation_time_length_minus_1
            buffer_delay_length = Some(bits.read::<5, u32>()? + 1);
            bits.skip(32 + 5 + 5)?;
        }
    }
    let initial_display_delay_present = bits.read_bit()?;
    let operating_points = bits.read::<5, u8>()? + 1;
    let mut first = None;
    for _ in 0..operating_points {
        bits.skip(12)?; // operating_point_idc
        let level = bits.read::<5, u8>()?;
        let tier = if level > 7 { bits.read::<1, u8>()? } else { 0 };
        if let Some(delay_bits) = buffer_delay_length {
            if bits.read_bit()? {
                // decoder_buffer_delay, encoder_buffer_delay, low_delay_mode_flag
                bits.skip(2 * delay_bits + 1)?;
            }
        }
        if initial_display_delay_present && bits.read_bit()? {
            bits.skip(4)?; // initial_display_delay_minus_1
        }
        first.get_or_insert((level, tier));
    }
    first.ok_or_else(|| invalid_data("no operating point"))
}

/// Skips a `uvlc()` value (AV1 spec §4.10.3).
fn skip_uvlc<R: BitRead>(bits: &mut R) -> std::io::Result<()> {
    let mut leading_zeros = 0;
    while !bits.read_bit()? {
        leading_zeros += 1;
        if leading_zeros >= 32 {
            return Ok(());
        }
    }
    bits.skip(leading_zeros)
}

/// An AV1 decoder configuration (`av1C`) with what Sluice needs from its sequence header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Av1Config {
    /// The whole AV1CodecConfigurationRecord, ready for an `av1C` box.
    pub record: Bytes,
    pub seq_profile: u8,
    pub seq_level_idx_0: u8,
    pub seq_tier_0: u8,
    pub high_bitdepth: bool,
    pub twelve_bit: bool,
    pub monochrome: bool,
    pub chroma_subsampling_x: bool,
    pub chroma_subsampling_y: bool,
    pub chroma_sample_position: u8,
    /// `configOBUs`: the sequence header OBU (with its size field).
    pub config_obus: Bytes,
    /// Picture width in pixels (the sequence's maximum frame width).
    pub width: u32,
    /// Picture height in pixels (the sequence's maximum frame height).
    pub height: u32,
}

impl Av1Config {
    /// Builds the configuration around one sequence header OBU (header, size and payload, as
    /// an encoder writes it at the start of every key frame's temporal unit).
    pub fn from_sequence_header_obu(obu: &[u8]) -> Result<Self, CodecError> {
        let mut obus = Obus::new(obu);
        let sequence_obu = obus.next().ok_or(CodecError::Truncated {
            what: OBU,
            offset: 0,
            needed: 2,
            available: 0,
        })??;
        if sequence_obu.obu_type != OBU_SEQUENCE_HEADER || obus.next().is_some() {
            return Err(CodecError::Invalid {
                what: OBU,
                reason: "expected exactly one sequence header OBU".into(),
            });
        }
        let header = SequenceHeader::parse(sequence_obu.payload)?;
        let mut record = BytesMut::with_capacity(4 + obu.len());
        record.put_u8(0x81); // marker 1, version 1
        record.put_u8((header.seq_profile << 5) | header.seq_level_idx_0);
        record.put_u8(
            (header.seq_tier_0 << 7)
                | (u8::from(header.high_bitdepth) << 6)
                | (u8::from(header.twelve_bit) << 5)
                | (u8::from(header.monochrome) << 4)
                | (u8::from(header.chroma_subsampling_x) << 3)
                | (u8::from(header.chroma_subsampling_y) << 2)
                | header.chroma_sample_position,
        );
        // reserved 3 bits, initial_presentation_delay_present 0, reserved 4 bits
        record.put_u8(0);
        record.put_slice(obu);
        Ok(Self::with_header(record.freeze(), &header, 4))
    }

    /// Parses an AV1CodecConfigurationRecord. Its `configOBUs` must hold the sequence header
    /// (that is where the picture size is read).
    pub fn parse(record: &[u8]) -> Result<Self, CodecError> {
        let invalid = |reason: String| CodecError::Invalid { what: AV1C, reason };
        let fixed = record.get(..4).ok_or(CodecError::Truncated {
            what: AV1C,
            offset: 0,
            needed: 4,
            available: record.len(),
        })?;
        if fixed[0] != 0x81 {
            return Err(invalid(format!(
                "marker and version byte {:#04x} is not 0x81",
                fixed[0]
            )));
        }
        let declared = SequenceHeader {
            seq_profile: fixed[1] >> 5,
            seq_level_idx_0: fixed[1] & 0x1f,
            seq_tier_0: fixed[2] >> 7,
            high_bitdepth: fixed[2] & 0x40 != 0,
            twelve_bit: fixed[2] & 0x20 != 0,
            monochrome: fixed[2] & 0x10 != 0,
            chroma_subsampling_x: fixed[2] & 0x08 != 0,
            chroma_subsampling_y: fixed[2] & 0x04 != 0,
            chroma_sample_position: fixed[2] & 0x03,
            max_frame_width: 0,
            max_frame_height: 0,
        };
        let mut sequence = None;
        for obu in Obus::new(&record[4..]) {
            let obu = obu?;
            if obu.obu_type == OBU_SEQUENCE_HEADER && sequence.is_none() {
                sequence = Some(SequenceHeader::parse(obu.payload)?);
            }
        }
        let sequence =
            sequence.ok_or_else(|| invalid("configOBUs hold no sequence header".into()))?;
        let header = SequenceHeader {
            max_frame_width: sequence.max_frame_width,
            max_frame_height: sequence.max_frame_height,
            ..declared
        };
        Ok(Self::with_header(
            Bytes::copy_from_slice(record),
            &header,
            4,
        ))
    }

    fn with_header(record: Bytes, header: &SequenceHeader, obus_at: usize) -> Self {
        Av1Config {
            config_obus: record.slice(obus_at..),
            record,
            seq_profile: header.seq_profile,
            seq_level_idx_0: header.seq_level_idx_0,
            seq_tier_0: header.seq_tier_0,
            high_bitdepth: header.high_bitdepth,
            twelve_bit: header.twelve_bit,
            monochrome: header.monochrome,
            chroma_subsampling_x: header.chroma_subsampling_x,
            chroma_subsampling_y: header.chroma_subsampling_y,
            chroma_sample_position: header.chroma_sample_position,
            width: header.max_frame_width,
            height: header.max_frame_height,
        }
    }

    /// Bits per sample: 8, 10 or 12.
    pub fn bit_depth(&self) -> u8 {
        bit_depth(self.high_bitdepth, self.twelve_bit)
    }

    /// The RFC 6381 codec string of the binding's Annex A in its short form, e.g.
    /// `av01.0.04M.08` (profile, two-digit level index, tier `M`/`H`, two-digit bit depth);
    /// the optional colour fields are left out, which means 4:2:0, BT.709 limited range.
    pub fn codec_string(&self) -> String {
        format!(
            "av01.{}.{:02}{}.{:02}",
            self.seq_profile,
            self.seq_level_idx_0,
            if self.seq_tier_0 == 1 { 'H' } else { 'M' },
            self.bit_depth()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{av1_320x180, AV1_SEQUENCE_HEADER_320X180};
    use bitstream_io::{BitWrite, BitWriter};

    #[test]
    fn rav1e_sequence_header_gives_the_record_and_codec_string() {
        let config = av1_320x180();
        assert_eq!((config.width, config.height), (320, 180));
        assert_eq!(
            (
                config.seq_profile,
                config.seq_level_idx_0,
                config.seq_tier_0
            ),
            (0, 0, 0)
        );
        assert_eq!(config.bit_depth(), 8);
        assert!(!config.monochrome);
        assert!(config.chroma_subsampling_x && config.chroma_subsampling_y);
        assert_eq!(config.codec_string(), "av01.0.00M.08");
        // marker+version, profile 0 level 0, tier 0 8-bit 4:2:0 position 0, no delay; OBUs.
        assert_eq!(&config.record[..4], &[0x81, 0x00, 0x0c, 0x00]);
        assert_eq!(&config.record[4..], &AV1_SEQUENCE_HEADER_320X180);
        assert_eq!(config.config_obus.as_ref(), &AV1_SEQUENCE_HEADER_320X180);
        assert_eq!(Av1Config::parse(&config.record).unwrap(), config);
    }

    /// Writes a sequence header OBU with the given choices (AV1 spec §5.5.1 order).
    struct Header {
        profile: u8,
        timing_info: bool,
        decoder_model: bool,
        initial_display_delay: bool,
        operating_points: &'static [(u8, u8)],
        width: u32,
        height: u32,
        high_bitdepth: bool,
        twelve_bit: bool,
        monochrome: bool,
        colour: Option<(u8, u8, u8)>,
        chroma_sample_position: u8,
    }

    impl Default for Header {
        fn default() -> Self {
            Header {
                profile: 0,
                timing_info: false,
                decoder_model: false,
                initial_display_delay: false,
                operating_points: &[(8, 0)],
                width: 1280,
                height: 720,
                high_bitdepth: false,
                twelve_bit: false,
                monochrome: false,
                colour: None,
                chroma_sample_position: 1,
            }
        }
    }

    impl Header {
        fn obu(&self) -> Vec<u8> {
            let mut payload = Vec::new();
            let mut bits = BitWriter::endian(&mut payload, BigEndian);
            let w = &mut bits;
            w.write::<3, u8>(self.profile).unwrap();
            w.write_bit(false).unwrap(); // still_picture
            w.write_bit(false).unwrap(); // reduced_still_picture_header
            w.write_bit(self.timing_info).unwrap();
            if self.timing_info {
                w.write::<32, u32>(1001).unwrap();
                w.write::<32, u32>(60_000).unwrap();
                w.write_bit(true).unwrap(); // equal_picture_interval
                w.write::<5, u8>(0b00101).unwrap(); // uvlc 4: two leading zeros, then 1, 01
                w.write_bit(self.decoder_model).unwrap();
                if self.decoder_model {
                    w.write::<5, u8>(9).unwrap(); // buffer_delay_length_minus_1
                    w.write::<32, u32>(1).unwrap();
                    w.write::<5, u8>(4).unwrap();
                    w.write::<5, u8>(4).unwrap();
                }
            }
            w.write_bit(self.initial_display_delay).unwrap();
            w.write::<5, u8>(self.operating_points.len() as u8 - 1)
                .unwrap();
            for &(level, tier) in self.operating_points {
                w.write::<12, u16>(0x101).unwrap();
                w.write::<5, u8>(level).unwrap();
                if level > 7 {
                    w.write::<1, u8>(tier).unwrap();
                }
                if self.timing_info && self.decoder_model {
                    w.write_bit(true).unwrap();
                    w.write::<10, u16>(500).unwrap();
                    w.write::<10, u16>(400).unwrap();
                    w.write_bit(false).unwrap();
                }
                if self.initial_display_delay {
                    w.write_bit(true).unwrap();
                    w.write::<4, u8>(9).unwrap();
                }
            }
            w.write::<4, u8>(15).unwrap();
            w.write::<4, u8>(15).unwrap();
            w.write::<16, u32>(self.width - 1).unwrap();
            w.write::<16, u32>(self.height - 1).unwrap();
            w.write_bit(true).unwrap(); // frame_id_numbers_present_flag
            w.write::<7, u8>(0x55).unwrap();
            w.write::<3, u8>(0b111).unwrap(); // 128x128, filter intra, intra edge
            w.write::<4, u8>(0b1111).unwrap(); // compound tools, warped, dual filter
            w.write_bit(true).unwrap(); // enable_order_hint
            w.write::<2, u8>(0b11).unwrap(); // jnt_comp, ref_frame_mvs
            w.write_bit(false).unwrap(); // seq_choose_screen_content_tools
            w.write_bit(true).unwrap(); // seq_force_screen_content_tools
            w.write_bit(false).unwrap(); // seq_choose_integer_mv
            w.write_bit(true).unwrap(); // seq_force_integer_mv
            w.write::<3, u8>(6).unwrap(); // order_hint_bits_minus_1
            w.write::<3, u8>(0b011).unwrap(); // superres, cdef, restoration
            w.write_bit(self.high_bitdepth).unwrap();
            if self.profile == 2 && self.high_bitdepth {
                w.write_bit(self.twelve_bit).unwrap();
            }
            if self.profile != 1 {
                w.write_bit(self.monochrome).unwrap();
            }
            w.write_bit(self.colour.is_some()).unwrap();
            if let Some((primaries, transfer, matrix)) = self.colour {
                w.write::<8, u8>(primaries).unwrap();
                w.write::<8, u8>(transfer).unwrap();
                w.write::<8, u8>(matrix).unwrap();
            }
            let srgb = self.colour == Some((CP_BT_709, TC_SRGB, MC_IDENTITY));
            if self.monochrome {
                w.write_bit(false).unwrap(); // color_range
            } else if !srgb {
                w.write_bit(false).unwrap(); // color_range
                if self.profile == 2 && self.twelve_bit {
                    w.write_bit(true).unwrap(); // subsampling_x
                    w.write_bit(true).unwrap(); // subsampling_y
                }
                let subsampled = self.profile == 0 || (self.profile == 2 && self.twelve_bit);
                if subsampled {
                    w.write::<2, u8>(self.chroma_sample_position).unwrap();
                }
            }
            w.write_bit(false).unwrap(); // separate_uv_delta_q
            w.write_bit(false).unwrap(); // film_grain_params_present
            w.write_bit(true).unwrap(); // trailing one bit
            w.byte_align().unwrap();
            let mut obu = vec![OBU_SEQUENCE_HEADER << 3 | 0x02, payload.len() as u8];
            obu.extend_from_slice(&payload);
            obu
        }

        fn config(&self) -> Av1Config {
            Av1Config::from_sequence_header_obu(&self.obu()).unwrap()
        }
    }

    #[test]
    fn operating_point_zero_gives_level_and_tier_past_timing_and_decoder_model() {
        let config = Header {
            timing_info: true,
            decoder_model: true,
            initial_display_delay: true,
            operating_points: &[(9, 1), (4, 0)],
            ..Header::default()
        }
        .config();
        assert_eq!((config.seq_level_idx_0, config.seq_tier_0), (9, 1));
        assert_eq!((config.width, config.height), (1280, 720));
        assert_eq!(config.chroma_sample_position, 1);
        assert_eq!(config.codec_string(), "av01.0.09H.08");
        assert_eq!(config.record[1], 9);
        assert_eq!(config.record[2], 0x80 | 0x0c | 1);
    }

    #[test]
    fn colour_config_gives_bit_depth_monochrome_and_subsampling() {
        let ten_bit = Header {
            high_bitdepth: true,
            ..Header::default()
        }
        .config();
        assert_eq!(ten_bit.codec_string(), "av01.0.08M.10");

        let twelve_bit = Header {
            profile: 2,
            high_bitdepth: true,
            twelve_bit: true,
            chroma_sample_position: 2,
            ..Header::default()
        }
        .config();
        assert_eq!(twelve_bit.codec_string(), "av01.2.08M.12");
        assert_eq!(twelve_bit.chroma_sample_position, 2);
        assert_eq!(twelve_bit.record[2], 0x40 | 0x20 | 0x0c | 2);

        let high_profile = Header {
            profile: 1,
            ..Header::default()
        }
        .config();
        assert!(!high_profile.chroma_subsampling_x && !high_profile.chroma_subsampling_y);
        assert_eq!(high_profile.codec_string(), "av01.1.08M.08");

        let monochrome = Header {
            monochrome: true,
            ..Header::default()
        }
        .config();
        assert!(monochrome.monochrome);
        assert_eq!(monochrome.record[2], 0x10 | 0x0c);

        let srgb = Header {
            profile: 1,
            colour: Some((CP_BT_709, TC_SRGB, MC_IDENTITY)),
            ..Header::default()
        }
        .config();
        assert!(!srgb.chroma_subsampling_x);
        let bt709 = Header {
            colour: Some((1, 1, 1)),
            chroma_sample_position: 1,
            ..Header::default()
        }
        .config();
        assert_eq!(bt709.chroma_sample_position, 1);
    }

    #[test]
    fn record_parsing_refuses_bad_markers_and_missing_sequence_headers() {
        let record = av1_320x180().record;
        let mut wrong_version = record.to_vec();
        wrong_version[0] = 0x82;
        assert!(Av1Config::parse(&wrong_version).is_err());
        assert!(Av1Config::parse(&record[..4]).is_err(), "no configOBUs");
        let mut temporal_delimiter_only = record[..4].to_vec();
        temporal_delimiter_only.extend_from_slice(&[0x12, 0x00]);
        assert!(Av1Config::parse(&temporal_delimiter_only).is_err());
    }

    #[test]
    fn truncated_or_corrupt_bytes_give_errors_never_panics() {
        let record = av1_320x180().record;
        for len in 0..record.len() {
            assert!(Av1Config::parse(&record[..len]).is_err(), "len {len}");
        }
        let obu = Header {
            timing_info: true,
            decoder_model: true,
            ..Header::default()
        }
        .obu();
        for len in 0..obu.len() {
            assert!(
                Av1Config::from_sequence_header_obu(&obu[..len]).is_err(),
                "len {len}"
            );
        }
        // Every byte flipped: errors or values, never a panic.
        for index in 0..record.len() {
            let mut corrupt = record.to_vec();
            corrupt[index] ^= 0xff;
            let _ = Av1Config::parse(&corrupt);
        }
        assert!(
            SequenceHeader::parse(&[0xe0]).is_err(),
            "profile 7 is reserved"
        );
    }

    #[test]
    fn obus_split_a_temporal_unit_and_refuse_sizeless_or_overlong_ones() {
        // Temporal delimiter, a padding OBU with an extension byte and a 2-byte LEB128 size,
        // then the sequence header.
        let mut unit = vec![0x12, 0x00];
        unit.extend_from_slice(&[OBU_PADDING << 3 | 0x06, 0x00, 0x80, 0x01]);
        unit.extend_from_slice(&[0xaa; 128]);
        unit.extend_from_slice(&AV1_SEQUENCE_HEADER_320X180);
        let obus: Vec<Obu<'_>> = Obus::new(&unit).map(Result::unwrap).collect();
        let types: Vec<u8> = obus.iter().map(|obu| obu.obu_type).collect();
        assert_eq!(
            types,
            [OBU_TEMPORAL_DELIMITER, OBU_PADDING, OBU_SEQUENCE_HEADER]
        );
        assert_eq!(obus[1].payload.len(), 128);
        assert_eq!(obus[1].bytes.len(), 132);
        assert_eq!(obus[2].bytes, &AV1_SEQUENCE_HEADER_320X180);

        let sizeless = [OBU_TEMPORAL_DELIMITER << 3];
        assert!(Obus::new(&sizeless).next().unwrap().is_err());
        let overlong = [0x12, 0x05, 0x00];
        let mut iter = Obus::new(&overlong);
        assert!(iter.next().unwrap().is_err());
        assert!(iter.next().is_none(), "the iterator ends after an error");
        let forbidden = [0x92, 0x00];
        assert!(Obus::new(&forbidden).next().unwrap().is_err());
        let endless_size = [0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert!(Obus::new(&endless_size).next().unwrap().is_err());
    }

    #[test]
    fn leb128_reads_up_to_eight_bytes_within_32_bits() {
        assert_eq!(leb128(&[0x05]), Some((5, 1)));
        assert_eq!(leb128(&[0x80, 0x01]), Some((128, 2)));
        assert_eq!(
            leb128(&[0xff, 0xff, 0xff, 0xff, 0x0f]),
            Some((u64::from(u32::MAX), 5))
        );
        assert_eq!(
            leb128(&[0x80, 0x80, 0x80, 0x80, 0x10]),
            None,
            "above 2^32 - 1"
        );
        assert_eq!(leb128(&[0x80]), None, "unterminated");
        assert_eq!(leb128(&[]), None);
    }
}
