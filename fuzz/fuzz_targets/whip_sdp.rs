//! Arbitrary text as a WHIP offer into the first look the HTTP side takes at it: no panic, and
//! an offer that is taken names at least one accepted video codec.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(offered) = sluice_ingest::whip::sdp::check_offer(&text) {
        assert!(!offered.video_codecs.is_empty());
    }
});
