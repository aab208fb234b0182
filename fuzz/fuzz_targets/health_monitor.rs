//! A publisher's arbitrary packets, track configurations and arrival times into the stream
//! health check (`sluice_live::health::HealthMonitor`): no panic, and the report stays within
//! its bounds (one warning per kind, 60 samples) whatever the timestamps.
#![no_main]

use std::time::Duration;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice_live::health::HealthMonitor;
use sluice_media::{AudioSpecificConfig, Packet, Timebase, TrackInfo, TrackKind};

/// Bytes per event: kind, flags, timebase (2), dts (8), pts offset (4), size (2), arrival
/// step in ms (2).
const EVENT: usize = 20;

fuzz_target!(|data: &[u8]| {
    let Some((&passthrough, data)) = data.split_first() else {
        return;
    };
    let mut monitor = HealthMonitor::new(passthrough & 1 == 1, chrono::DateTime::UNIX_EPOCH);
    let mut now = Duration::ZERO;
    for event in data.chunks_exact(EVENT) {
        let word = |at: usize, len: usize| {
            event[at..at + len]
                .iter()
                .fold(0u64, |value, &byte| value << 8 | u64::from(byte))
        };
        now += Duration::from_millis(word(18, 2));
        match event[0] % 5 {
            0 | 1 => {
                let dts = word(4, 8) as i64;
                let packet = Packet {
                    kind: if event[0] % 5 == 0 { TrackKind::Video } else { TrackKind::Audio },
                    timebase: Timebase(word(2, 2) as u32),
                    dts,
                    pts: dts.wrapping_add(i64::from(word(12, 4) as u32 as i32)),
                    keyframe: event[1] & 1 == 1,
                    data: Bytes::from(vec![0; word(16, 2) as usize]),
                };
                monitor.packet(&packet, now);
            }
            2 => monitor.frames_dropped(word(4, 8), now),
            3 => monitor.metadata(Some(f64::from_bits(word(4, 8)))),
            _ => monitor.track(
                &TrackInfo::Aac {
                    config: AudioSpecificConfig {
                        raw: Bytes::new(),
                        object_type: 2,
                        sample_rate: word(2, 4) as u32,
                        channels: event[1],
                    },
                },
                now,
            ),
        }
        if event[1] & 2 == 2 {
            monitor.check(now);
        }
    }
    let report = monitor.report();
    assert!(report.warnings.len() <= 11, "one warning per kind");
    assert!(report.samples.len() <= 60, "five minutes of samples");
});
