//! Arbitrary bytes into the AV1 parsers (an av1C record, a sequence header OBU, OBU splitting):
//! no panic, and an av1C that parses gives a codec string.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_media::av1::{Obus, SequenceHeader};
use sluice_media::Av1Config;

fuzz_target!(|data: &[u8]| {
    if let Ok(config) = Av1Config::parse(data) {
        assert!(config.codec_string().starts_with("av01."));
    }
    let _ = Av1Config::from_sequence_header_obu(data);
    let _ = SequenceHeader::parse(data);
    for obu in Obus::new(data) {
        if obu.is_err() {
            break;
        }
    }
});
