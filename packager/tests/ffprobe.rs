//! Black-box check of the fMP4 writer: ffprobe (ffmpeg's demuxer, an independent reader) must
//! read init segment + segments as one file with the codec, picture size, packet count and
//! timestamps Sluice wrote.

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use sluice_media::{AudioSpecificConfig, AvcConfig, Packet, Timebase, TrackInfo, TrackKind};
use sluice_packager::{init_segment, segments_of, SegmentEvent, TrackSegmenter};

/// A 320x240 H.264 stream: its decoder configuration and its access units (AVCC, decode order,
/// whether each is an IDR), encoded by ffmpeg's libx264 with B-frames and a 30-frame GOP.
/// Panics when ffmpeg is not installed: the test fails rather than skipping.
fn encode_h264(frames: usize) -> (AvcConfig, Vec<(Bytes, bool)>) {
    let output = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=30",
        ])
        .args([
            "-frames:v",
            &frames.to_string(),
            "-pix_fmt",
            "yuv420p",
            "-c:v",
            "libx264",
        ])
        .args(["-preset", "veryfast", "-bf", "2"])
        .args([
            "-x264-params",
            "keyint=30:scenecut=0:aud=1",
            "-f",
            "h264",
            "-",
        ])
        .output()
        .expect("ffmpeg must be installed (`make test` installs it)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let (mut sps, mut pps) = (None, None);
    let mut units: Vec<(Vec<u8>, bool)> = Vec::new();
    for nal in annex_b_nal_units(&output.stdout) {
        match nal[0] & 0x1f {
            9 => units.push((Vec::new(), false)), // access unit delimiter
            7 => sps = Some(nal.to_vec()),
            8 => pps = Some(nal.to_vec()),
            kind => {
                let (unit, idr) = units
                    .last_mut()
                    .expect("x264 starts access units with an AUD");
                *idr |= kind == 5;
                unit.extend_from_slice(&(nal.len() as u32).to_be_bytes());
                unit.extend_from_slice(nal);
            }
        }
    }
    let config = AvcConfig::from_parameter_sets(&sps.unwrap(), &pps.unwrap()).unwrap();
    let units = units
        .into_iter()
        .map(|(unit, idr)| (Bytes::from(unit), idr));
    (config, units.collect())
}

/// Splits an Annex B byte stream at its start codes.
fn annex_b_nal_units(stream: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= stream.len() {
        if stream[i..i + 3] == [0, 0, 1] {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let ends = starts
        .iter()
        .skip(1)
        .map(|next| next - 3)
        .chain([stream.len()]);
    starts
        .iter()
        .zip(ends)
        .map(|(start, end)| {
            // A four-byte start code leaves one zero byte before the next three-byte one.
            let nal = &stream[*start..end];
            nal.strip_suffix(&[0]).unwrap_or(nal)
        })
        .collect()
}

/// Writes `init` and every segment the packets produce into one file and runs ffprobe on it.
/// Returns `None` when ffprobe is not installed.
fn probe(init: Bytes, mut segmenter: TrackSegmenter, packets: Vec<Packet>) -> String {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(&init).unwrap();
    for packet in packets {
        for event in segmenter.push(packet).unwrap() {
            if let SegmentEvent::Segment(segment) = event {
                file.write_all(&segment.data).unwrap();
            }
        }
    }
    for segment in segments_of(segmenter.finish().unwrap()) {
        file.write_all(&segment.data).unwrap();
    }
    file.flush().unwrap();

    let output = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_streams",
            "-show_packets",
            "-of",
            "compact",
        ])
        .arg(file.path())
        .output()
        .expect("ffprobe must be installed (`make test` installs it)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.is_empty(),
        "ffprobe: {stderr}"
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The value of `key` in a line of ffprobe's compact output (`section|key=value|...`).
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split('|')
        .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key} in {line}"))
}

fn packet_lines(output: &str) -> Vec<&str> {
    output
        .lines()
        .filter(|l| l.starts_with("packet|"))
        .collect()
}

#[test]
fn ffprobe_reads_h264_init_and_segments_with_b_frame_timestamps() {
    let (config, units) = encode_h264(90);
    let track = TrackInfo::Avc {
        config,
        frame_rate: Some(30.0),
    };
    let segmenter = TrackSegmenter::new(1, Timebase::MPEG, Duration::from_secs(1));
    // Milliseconds in, 90 kHz out, presentation order I B P for decode order I P B.
    let packets = units
        .into_iter()
        .zip(0i64..)
        .map(|((data, keyframe), i)| {
            let pts_frame = match i % 3 {
                0 => i,
                1 => i + 1,
                _ => i - 1,
            };
            Packet {
                kind: TrackKind::Video,
                timebase: Timebase::MILLIS,
                dts: i * 100 / 3,
                pts: pts_frame * 100 / 3 + 67,
                keyframe,
                data,
            }
        })
        .collect();
    let output = probe(init_segment(&track, 1, 90_000).unwrap(), segmenter, packets);

    let stream = output.lines().find(|l| l.starts_with("stream|")).unwrap();
    assert_eq!(field(stream, "codec_name"), "h264");
    assert_eq!(field(stream, "width"), "320");
    assert_eq!(field(stream, "height"), "240");
    assert_eq!(field(stream, "time_base"), "1/90000");

    let packets = packet_lines(&output);
    assert_eq!(packets.len(), 90);
    let keyframes = packets
        .iter()
        .filter(|p| field(p, "flags").starts_with('K'));
    assert_eq!(keyframes.count(), 3);
    // Frame 1 (dts 33 ms) is shown after frame 2: pts = 66 ms + 67 ms, at 90 kHz. The
    // segmenter moves decode times 67 ms (the first frame's reorder delay) later and writes
    // negative composition offsets; ffmpeg reads those back by moving presentation times later
    // by the largest of them (one frame, 2970 ticks) rather than decode times earlier.
    let ticks = |line: &str, key: &str| field(line, key).parse::<i64>().unwrap();
    assert_eq!(ticks(packets[0], "dts"), 6030);
    assert_eq!(ticks(packets[1], "dts"), 9000);
    assert_eq!(ticks(packets[30], "dts"), 96_030);
    let shift = ticks(packets[0], "pts") - 6030;
    assert_eq!(shift, 2970);
    assert_eq!(ticks(packets[1], "pts") - shift, 11_970);
    assert_eq!(ticks(packets[2], "pts") - shift, 9_000);
}

#[test]
fn ffprobe_reads_aac_init_and_segments() {
    let track = TrackInfo::Aac {
        config: AudioSpecificConfig::new(2, 48_000, 2).unwrap(),
    };
    let segmenter = TrackSegmenter::new(2, Timebase(48_000), Duration::from_secs(2));
    let packets = (0..200)
        .map(|i: i64| Packet {
            kind: TrackKind::Audio,
            timebase: Timebase(48_000),
            dts: i * 1_024,
            pts: i * 1_024,
            keyframe: true,
            // An AAC-LC raw frame of stereo silence (from libfdk/ffmpeg's aac encoder).
            data: Bytes::from_static(&[0x21, 0x10, 0x04, 0x60, 0x8c, 0x1c]),
        })
        .collect();
    let output = probe(init_segment(&track, 2, 48_000).unwrap(), segmenter, packets);

    let stream = output.lines().find(|l| l.starts_with("stream|")).unwrap();
    assert_eq!(field(stream, "codec_name"), "aac");
    assert_eq!(field(stream, "sample_rate"), "48000");
    assert_eq!(field(stream, "channels"), "2");
    let packets = packet_lines(&output);
    assert_eq!(packets.len(), 200);
    assert_eq!(field(packets[199], "pts"), (199 * 1_024).to_string());
}
