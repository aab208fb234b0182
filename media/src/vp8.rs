//! The VP8 frame header (RFC 6386 §9.1): the 3-byte frame tag every frame starts with and, on
//! key frames, the start code and picture size after it. WebRTC ingest reads it to know where
//! a decoder can start and how large the pictures are before the pipeline opens. The bytes come
//! from a remote peer: the parser is bounds-checked and returns [`CodecError`].

use crate::codec::CodecError;

/// The start code after a key frame's frame tag.
const KEY_FRAME_START_CODE: [u8; 3] = [0x9d, 0x01, 0x2a];

const WHAT: &str = "VP8 frame header";

/// What a VP8 frame's header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vp8FrameHeader {
    /// A key frame: decodable on its own.
    pub keyframe: bool,
    /// Picture width and height in pixels; read from key frames only.
    pub dimensions: Option<(u32, u32)>,
}

impl Vp8FrameHeader {
    /// Parses the header at the start of `frame`.
    pub fn parse(frame: &[u8]) -> Result<Self, CodecError> {
        let truncated = |needed: usize| CodecError::Truncated {
            what: WHAT,
            offset: 0,
            needed,
            available: frame.len(),
        };
        let tag = frame.get(..3).ok_or_else(|| truncated(3))?;
        let keyframe = tag[0] & 0x01 == 0;
        let version = (tag[0] >> 1) & 0x07;
        if version > 3 {
            return Err(CodecError::Invalid {
                what: WHAT,
                reason: format!("version {version} (0 to 3 exist)"),
            });
        }
        if !keyframe {
            return Ok(Vp8FrameHeader {
                keyframe,
                dimensions: None,
            });
        }
        let header = frame.get(..10).ok_or_else(|| truncated(10))?;
        if header[3..6] != KEY_FRAME_START_CODE {
            return Err(CodecError::Invalid {
                what: WHAT,
                reason: "key frame without the 9d 01 2a start code".into(),
            });
        }
        // 14 bits of size, 2 bits of upscaling hint (ignored: decoders output the coded size).
        let width = u32::from(u16::from_le_bytes([header[6], header[7]]) & 0x3fff);
        let height = u32::from(u16::from_le_bytes([header[8], header[9]]) & 0x3fff);
        if width == 0 || height == 0 {
            return Err(CodecError::Invalid {
                what: WHAT,
                reason: format!("picture size {width}x{height}"),
            });
        }
        Ok(Vp8FrameHeader {
            keyframe,
            dimensions: Some((width, height)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first bytes of a 640x480 key frame as libvpx writes it.
    const KEY_FRAME: &[u8] = &[
        0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01, 0x00, 0x47,
    ];

    #[test]
    fn a_key_frame_gives_its_size() {
        assert_eq!(
            Vp8FrameHeader::parse(KEY_FRAME),
            Ok(Vp8FrameHeader {
                keyframe: true,
                dimensions: Some((640, 480)),
            })
        );
    }

    #[test]
    fn an_inter_frame_is_not_a_key_frame() {
        assert_eq!(
            Vp8FrameHeader::parse(&[0x31, 0x05, 0x00, 0x11]),
            Ok(Vp8FrameHeader {
                keyframe: false,
                dimensions: None,
            })
        );
    }

    #[test]
    fn a_scaling_hint_does_not_change_the_size() {
        let mut frame = KEY_FRAME.to_vec();
        frame[7] |= 0xc0;
        frame[9] |= 0x40;
        assert_eq!(
            Vp8FrameHeader::parse(&frame).unwrap().dimensions,
            Some((640, 480))
        );
    }

    #[test]
    fn bad_headers_are_refused() {
        let mut no_start_code = KEY_FRAME.to_vec();
        no_start_code[4] = 0;
        let mut bad_version = KEY_FRAME.to_vec();
        bad_version[0] |= 0x0e;
        let mut zero_size = KEY_FRAME.to_vec();
        zero_size[6..8].copy_from_slice(&[0, 0]);
        for frame in [no_start_code, bad_version, zero_size] {
            assert!(matches!(
                Vp8FrameHeader::parse(&frame),
                Err(CodecError::Invalid { .. })
            ));
        }
    }

    #[test]
    fn every_truncation_is_refused_or_read_without_panicking() {
        for end in 0..10 {
            assert!(matches!(
                Vp8FrameHeader::parse(&KEY_FRAME[..end]),
                Err(CodecError::Truncated { .. })
            ));
        }
        assert!(Vp8FrameHeader::parse(&KEY_FRAME[..10]).is_ok());
    }
}
