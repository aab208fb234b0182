//! Arbitrary bytes as a depacketized WebRTC VP8 frame into its header parser: no panic; a key
//! frame always has a non-zero size and an inter frame none.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_media::Vp8FrameHeader;

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = Vp8FrameHeader::parse(data) {
        match header.dimensions {
            Some((width, height)) => assert!(header.keyframe && width > 0 && height > 0),
            None => assert!(!header.keyframe),
        }
    }
});
