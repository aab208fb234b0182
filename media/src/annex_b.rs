//! H.264 access units in Annex B form (ITU-T H.264 Annex B: NAL units behind `00 00 01` or
//! `00 00 00 01` start codes), as WebRTC depacketizers deliver them, converted to the AVCC form
//! [`crate::Packet`] carries (each NAL unit behind a 4-byte big-endian length), with the
//! parameter sets and the IDR flag picked out on the way.
//!
//! Access unit delimiters (type 9) are dropped: AVCC samples do not need them. Sequence and
//! picture parameter sets stay in the sample as well as being returned, so a decoder that
//! meets a new pair in-band follows it. The bytes come from a remote peer: every NAL unit is
//! checked for the forbidden zero bit, and empty input or input with no NAL unit is refused.

use bytes::{BufMut, Bytes, BytesMut};

use crate::codec::CodecError;

/// NAL unit type of an IDR slice.
const NAL_IDR: u8 = 5;
/// NAL unit type of a sequence parameter set.
const NAL_SPS: u8 = 7;
/// NAL unit type of a picture parameter set.
const NAL_PPS: u8 = 8;
/// NAL unit type of an access unit delimiter.
const NAL_AUD: u8 = 9;

const WHAT: &str = "H.264 Annex B access unit";

/// One access unit converted to AVCC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AvccAccessUnit {
    /// The NAL units, each behind a 4-byte length (access unit delimiters removed).
    pub data: Bytes,
    /// The last sequence parameter set in the unit, without start code.
    pub sps: Option<Bytes>,
    /// The last picture parameter set in the unit, without start code.
    pub pps: Option<Bytes>,
    /// Whether the unit holds an IDR slice (a decoder can start here).
    pub idr: bool,
}

/// The NAL units of an Annex B byte stream, without their start codes. Zero bytes trailing a
/// NAL unit (`trailing_zero_8bits`) belong to the next start code and are not returned.
pub fn nal_units(stream: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = match find_start_code(stream) {
        Some((_, after)) => &stream[after..],
        None => &stream[stream.len()..],
    };
    std::iter::from_fn(move || loop {
        if rest.is_empty() {
            return None;
        }
        let (unit, next) = match find_start_code(rest) {
            Some((at, after)) => (&rest[..at], &rest[after..]),
            None => (rest, &rest[rest.len()..]),
        };
        rest = next;
        let end = unit
            .iter()
            .rposition(|&b| b != 0)
            .map_or(0, |last| last + 1);
        if end > 0 {
            return Some(&unit[..end]);
        }
    })
}

/// The position of the first `00 00 01` in `data` and the index just after it.
fn find_start_code(data: &[u8]) -> Option<(usize, usize)> {
    data.windows(3)
        .position(|w| w == [0, 0, 1])
        .map(|at| (at, at + 3))
}

/// Converts one Annex B access unit to AVCC; see the module documentation.
pub fn annex_b_to_avcc(stream: &[u8]) -> Result<AvccAccessUnit, CodecError> {
    let mut data = BytesMut::with_capacity(stream.len() + 16);
    let mut unit = AvccAccessUnit {
        data: Bytes::new(),
        sps: None,
        pps: None,
        idr: false,
    };
    for nal in nal_units(stream) {
        if nal[0] & 0x80 != 0 {
            return Err(CodecError::Invalid {
                what: WHAT,
                reason: "a NAL unit has its forbidden zero bit set".into(),
            });
        }
        let length = u32::try_from(nal.len()).map_err(|_| CodecError::Invalid {
            what: WHAT,
            reason: "a NAL unit is longer than 4 GiB".into(),
        })?;
        match nal[0] & 0x1f {
            NAL_AUD => continue,
            NAL_IDR => unit.idr = true,
            NAL_SPS => unit.sps = Some(Bytes::copy_from_slice(nal)),
            NAL_PPS => unit.pps = Some(Bytes::copy_from_slice(nal)),
            _ => {}
        }
        data.put_u32(length);
        data.put_slice(nal);
    }
    if data.is_empty() {
        return Err(CodecError::Invalid {
            what: WHAT,
            reason: "no NAL unit behind a start code".into(),
        });
    }
    unit.data = data.freeze();
    Ok(unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SPS, PPS and IDR slice as a browser sends a keyframe (Baseline 3.1, 4-byte start codes,
    /// an access unit delimiter first).
    const KEYFRAME: &[u8] = &[
        0, 0, 0, 1, 0x09, 0xf0, // AUD
        0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1f, 0xda, // SPS (truncated payload is fine here)
        0, 0, 1, 0x68, 0xce, 0x3c, 0x80, // PPS, 3-byte start code
        0, 0, 0, 1, 0x65, 0x88, 0x84, 0x00, 0x00, // IDR with trailing zero bytes
    ];

    #[test]
    fn a_keyframe_becomes_avcc_with_its_parameter_sets() {
        let unit = annex_b_to_avcc(KEYFRAME).unwrap();
        assert!(unit.idr);
        assert_eq!(
            unit.sps.as_deref(),
            Some(&[0x67, 0x42, 0xc0, 0x1f, 0xda][..])
        );
        assert_eq!(unit.pps.as_deref(), Some(&[0x68, 0xce, 0x3c, 0x80][..]));
        assert_eq!(
            &unit.data[..],
            &[
                0, 0, 0, 5, 0x67, 0x42, 0xc0, 0x1f, 0xda, //
                0, 0, 0, 4, 0x68, 0xce, 0x3c, 0x80, //
                0, 0, 0, 3, 0x65, 0x88, 0x84,
            ][..]
        );
    }

    #[test]
    fn a_delta_frame_is_not_idr() {
        let unit = annex_b_to_avcc(&[0, 0, 1, 0x41, 0x9a, 0x02]).unwrap();
        assert!(!unit.idr);
        assert_eq!(unit.sps, None);
        assert_eq!(&unit.data[..], &[0, 0, 0, 3, 0x41, 0x9a, 0x02][..]);
    }

    #[test]
    fn input_without_nal_units_is_refused() {
        for input in [
            &[][..],
            &[0, 0, 0, 1],
            &[0x65, 0x88],
            &[0, 0, 1, 0, 0, 1, 0x09, 0xf0],
        ] {
            assert!(annex_b_to_avcc(input).is_err(), "{input:?}");
        }
    }

    #[test]
    fn a_forbidden_zero_bit_is_refused() {
        assert!(annex_b_to_avcc(&[0, 0, 1, 0xe5, 0x01]).is_err());
    }

    #[test]
    fn every_truncation_and_split_point_is_handled_without_panicking() {
        for end in 0..=KEYFRAME.len() {
            let _ = annex_b_to_avcc(&KEYFRAME[..end]);
            let _ = annex_b_to_avcc(&KEYFRAME[end..]);
        }
        // Cut right after the PPS's start code, the IDR slice is gone but the rest stays.
        let cut = KEYFRAME.len() - 9;
        let head = annex_b_to_avcc(&KEYFRAME[..cut]).unwrap();
        assert!(!head.idr);
        assert!(head.sps.is_some() && head.pps.is_some());
    }
}
