//! Arbitrary bytes as the value of each tus request header the upload URL reads: no panic,
//! only a value or a clear error.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use sluice_api::tus;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    for name in [
        tus::TUS_RESUMABLE,
        tus::UPLOAD_OFFSET,
        tus::UPLOAD_LENGTH,
        tus::UPLOAD_METADATA,
        tus::UPLOAD_CHECKSUM,
    ] {
        let mut headers = HeaderMap::new();
        headers.insert(HeaderName::from_static(name), value.clone());
        let _ = tus::require_resumable(&headers);
        let _ = tus::byte_count(&headers, name);
        let _ = tus::metadata(&headers);
        let _ = tus::checksum(&headers);
    }
});
