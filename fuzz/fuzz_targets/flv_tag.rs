//! Arbitrary bytes as FLV audio and video tag bodies: never a panic.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice_ingest::flv;

fuzz_target!(|data: &[u8]| {
    let body = Bytes::copy_from_slice(data);
    let _ = flv::read_video(&body, 0);
    let _ = flv::read_audio(&body, i64::MAX);
});
