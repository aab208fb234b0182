//! Arbitrary bytes as a depacketized WebRTC H.264 access unit (Annex B) into the AVCC
//! conversion, and the parameter sets it finds into an avcC: no panic; every NAL unit behind a
//! start code comes out behind its length, and an avcC that builds gives a codec string.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_media::annex_b::{annex_b_to_avcc, nal_units};
use sluice_media::AvcConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(unit) = annex_b_to_avcc(data) else {
        return;
    };
    let mut rest = &unit.data[..];
    while !rest.is_empty() {
        let length = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        assert!(length > 0 && 4 + length <= rest.len());
        rest = &rest[4 + length..];
    }
    assert!(nal_units(data).count() > 0);
    if let (Some(sps), Some(pps)) = (&unit.sps, &unit.pps) {
        if let Ok(config) = AvcConfig::from_parameter_sets(sps, pps) {
            assert!(config.codec_string().starts_with("avc1."));
        }
    }
});
