//! Arbitrary server bytes, split at arbitrary points, into a `ClientSession` (what Sluice's RTMP
//! client parses when it restreams): it must never panic, and every way of splitting the same
//! bytes must end the same way (failed or not, publishing or not).
//!
//! Input layout: the first byte picks up to 8 split points from the next 8 bytes and, with its
//! top bit, whether a well-formed S0+S1+S2 comes first (so the chunk and command layers are
//! reached without the fuzzer having to find 3073 bytes); the rest is the server's byte stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_fuzz::split_at_cuts;
use sluice_ingest::{ClientConfig, ClientSession, RtmpUrl};

/// Whether the session failed, and whether it was publishing.
fn run<'a>(pieces: impl IntoIterator<Item = &'a [u8]>) -> (bool, bool) {
    let url = RtmpUrl::parse("rtmp://127.0.0.1/live").expect("a valid URL");
    let mut session = ClientSession::new(ClientConfig::new(&url, "key"));
    session.start();
    for piece in pieces {
        if session.handle_input(piece).is_err() {
            return (true, session.is_publishing());
        }
    }
    (false, session.is_publishing())
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (cuts, input) = rest.split_at(rest.len().min(8));
    let mut stream = Vec::with_capacity(3073 + input.len());
    if flags & 0x80 != 0 {
        stream.push(3);
        stream.resize(3073, 0);
    }
    stream.extend_from_slice(input);
    let pieces = split_at_cuts(&stream, cuts, flags & 0x7F);
    // The replies themselves may differ: acknowledgements fall where the pieces end.
    assert_eq!(run([&stream[..]]), run(pieces));
});
