//! Arbitrary Opus packets at arbitrary times, as a room participant's microphone reaches its
//! transcription: each record is a four-byte RTP time, a length byte and that many payload
//! bytes. The speech decoder (libavcodec's Opus decoder, libswresample to 16 kHz mono, and the
//! time anchors that place its output) takes whatever comes; it never panics, and what it gives
//! back is bounded and timed with a finite time.
#![no_main]

use std::cell::RefCell;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice_media::{Packet, Timebase, TrackKind};
use sluice_transcoder::speech::LiveSpeechAudio;

/// More 16 kHz samples than one Opus packet (at most 120 ms) and the resampler's delay give.
const MAX_SAMPLES_PER_PACKET: usize = 16_000;

thread_local! {
    // The decoder holds libav contexts, which stay on the thread that made them.
    static DECODER: RefCell<LiveSpeechAudio> =
        RefCell::new(LiveSpeechAudio::opus().expect("an Opus decoder"));
}

fuzz_target!(|data: &[u8]| {
    DECODER.with_borrow_mut(|decoder| {
        let mut rest = data;
        while let Some((time, after)) = rest.split_first_chunk::<4>() {
            let Some((&length, after)) = after.split_first() else {
                break;
            };
            let length = usize::from(length).min(after.len());
            let (payload, after) = after.split_at(length);
            rest = after;
            let pts = i64::from(u32::from_be_bytes(*time));
            let packet = Packet {
                kind: TrackKind::Audio,
                timebase: Timebase(48_000),
                dts: pts,
                pts,
                keyframe: true,
                data: Bytes::copy_from_slice(payload),
            };
            if let Ok(samples) = decoder.push_opus(&packet) {
                assert!(samples.samples.len() <= MAX_SAMPLES_PER_PACKET);
                assert!(samples.start_s.is_finite());
            }
        }
        if let Ok(samples) = decoder.flush() {
            assert!(samples.samples.len() <= MAX_SAMPLES_PER_PACKET);
        }
    });
});
