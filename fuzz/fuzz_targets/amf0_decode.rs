//! Arbitrary bytes into the AMF0 decoder: no panic, and whatever decodes re-encodes to bytes
//! that decode to the same values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_ingest::amf0;

fuzz_target!(|data: &[u8]| {
    if let Ok(values) = amf0::decode_all(data) {
        let encoded = amf0::encode_all(&values);
        let again = amf0::decode_all(&encoded).expect("re-encoded AMF0 decodes");
        // Compare encodings, not values: NaN numbers are not equal to themselves.
        assert_eq!(amf0::encode_all(&again), encoded);
    }
});
