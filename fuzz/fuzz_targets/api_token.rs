//! Arbitrary text as an API JWT and as a playback token, into the checks a stranger reaches
//! before any signature is verified: no panic, only a claimed key or a clear refusal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_api::front_ends::{claimed_api_key, claimed_signing_key};

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let _ = claimed_api_key(token);
    let _ = claimed_signing_key(token);
});
