//! Black-box tests of the live ladder: a real H.264 source made by the ffmpeg CLI, demuxed by
//! `FileDemuxer` into AVCC packets, pushed through `LiveTranscoder`, and its output decoded again.

use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use sluice_media::{AvcConfig, Packet, Timebase, TrackKind, VideoConfig};
use sluice_transcoder::{
    plan, EncoderSettings, FileDemuxer, Ladder, LiveTranscoder, PlannedRung, Preset, ProbeLimits,
    Rung, RungSpec, TranscodeStats, TranscoderOutput, VideoDecoder,
};

struct Source {
    config: AvcConfig,
    packets: Vec<Packet>,
}

impl Source {
    /// Presentation times (90 kHz) of the source's keyframes, in order.
    fn keyframe_pts(&self) -> Vec<i64> {
        let mut pts: Vec<_> = self
            .packets
            .iter()
            .filter(|p| p.keyframe)
            .map(|p| p.timebase.rescale(p.pts, Timebase::MPEG))
            .collect();
        pts.sort_unstable();
        pts
    }

    /// The ladder `rungs` fitted to this 30 fps source.
    fn plan(&self, rungs: Vec<RungSpec>) -> Vec<PlannedRung> {
        let ladder = Ladder {
            rungs: rungs.into(),
        };
        plan(&ladder, self.config.width, self.config.height, Some(30.0)).unwrap()
    }

    fn first_pts(&self) -> i64 {
        self.packets
            .iter()
            .map(|p| p.timebase.rescale(p.pts, Timebase::MPEG))
            .min()
            .unwrap()
    }
}

/// 3 s of 640×360 30 fps testsrc2 with B-frames, a keyframe every `gop` frames, demuxed.
fn make_source(dir: &Path, gop: u32) -> Source {
    let path = dir.join("source.mp4");
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"])
        .args(["-i", "testsrc2=size=640x360:rate=30", "-t", "3"])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-bf",
            "2",
            "-sc_threshold",
            "0",
        ])
        .args(["-g", &gop.to_string(), "-pix_fmt", "yuv420p"])
        .arg(&path)
        .status()
        .expect("the ffmpeg CLI runs");
    assert!(status.success(), "ffmpeg made the source");

    let mut demuxer = FileDemuxer::open(&path, &ProbeLimits::default()).unwrap();
    let config = demuxer.video_config().expect("H.264 video").clone();
    let packets = demuxer.packets().collect();
    Source { config, packets }
}

fn rung(name: &'static str, height: u32, bitrate_kbps: u32) -> RungSpec {
    RungSpec::Encode(Rung {
        name: name.into(),
        height,
        bitrate_kbps,
        max_fps: 30,
    })
}

fn roomy_settings() -> EncoderSettings {
    EncoderSettings {
        preset: Preset::Veryfast,
        threads_per_rung: 1,
        packet_queue: 256,
        frame_queue: 256,
        output_queue: 1024,
        ..EncoderSettings::default()
    }
}

/// How fast packets go in and come out.
struct Pace {
    /// Pause before each `push`.
    producer: Duration,
    /// Pause before taking each output message.
    consumer: Duration,
}

const FLAT_OUT: Pace = Pace {
    producer: Duration::ZERO,
    consumer: Duration::ZERO,
};

/// Pushes every source packet, drains the output on another thread, finishes, and returns
/// everything that came out. Panics if the whole run takes more than a minute (a deadlock).
fn run(
    source: &Source,
    rungs: Vec<PlannedRung>,
    settings: EncoderSettings,
    pace: Pace,
) -> (Vec<TranscoderOutput>, TranscodeStats) {
    let (transcoder, output) = LiveTranscoder::start(&source.config, rungs, settings).unwrap();
    let consumer = thread::spawn(move || {
        let mut messages = Vec::new();
        for message in output {
            thread::sleep(pace.consumer);
            messages.push(message);
        }
        messages
    });
    let packets = source.packets.clone();
    let (done, finished) = mpsc::channel();
    thread::spawn(move || {
        for packet in packets {
            thread::sleep(pace.producer);
            transcoder.push(packet).unwrap();
        }
        done.send(transcoder.finish()).unwrap();
    });
    let stats = finished
        .recv_timeout(Duration::from_secs(60))
        .expect("the transcoder finishes without deadlock");
    (consumer.join().unwrap(), stats)
}

/// One rung's messages: its configuration, its packets and whether it finished.
struct RungOutput {
    config: AvcConfig,
    packets: Vec<Packet>,
}

fn split_by_rung(messages: &[TranscoderOutput], rungs: usize) -> Vec<RungOutput> {
    (0..rungs)
        .map(|index| {
            let mine: Vec<_> = messages
                .iter()
                .filter(|m| match m {
                    TranscoderOutput::Config { rung, .. }
                    | TranscoderOutput::Packet { rung, .. }
                    | TranscoderOutput::Finished { rung } => *rung == index,
                })
                .collect();
            let Some(TranscoderOutput::Config { config, .. }) = mine.first() else {
                panic!("rung {index} starts with its configuration");
            };
            assert!(
                matches!(mine.last(), Some(TranscoderOutput::Finished { .. })),
                "rung {index} ends with Finished"
            );
            let packets: Vec<_> = mine[1..mine.len() - 1]
                .iter()
                .map(|m| match m {
                    TranscoderOutput::Packet { packet, .. } => packet.clone(),
                    other => panic!("rung {index}: unexpected {other:?} between config and finish"),
                })
                .collect();
            assert!(!packets.is_empty(), "rung {index} emits packets");
            assert!(packets[0].keyframe, "rung {index} starts on a keyframe");
            assert!(packets.iter().all(|p| p.timebase == Timebase::MPEG));
            let VideoConfig::Avc(config) = config else {
                panic!("rung {index} is H.264");
            };
            RungOutput {
                config: config.clone(),
                packets,
            }
        })
        .collect()
}

fn keyframe_pts(packets: &[Packet]) -> Vec<i64> {
    packets
        .iter()
        .filter(|p| p.keyframe)
        .map(|p| p.pts)
        .collect()
}

/// Decodes a rung's output with libavcodec; returns the number of pictures and their size.
fn decode_all(output: &RungOutput) -> (usize, u32, u32) {
    let mut decoder = VideoDecoder::open_h264(&output.config).unwrap();
    let mut pictures = Vec::new();
    for packet in &output.packets {
        pictures.extend(decoder.decode(packet).expect("the rung's packets decode"));
    }
    pictures.extend(decoder.flush());
    let first = &pictures[0].picture;
    (pictures.len(), first.width(), first.height())
}

#[test]
fn every_rung_cuts_at_the_same_two_second_boundaries_and_decodes() {
    let dir = tempfile::tempdir().unwrap();
    let source = make_source(dir.path(), 250);
    let rungs = source.plan(vec![rung("360p", 360, 800), rung("180p", 180, 200)]);

    let (messages, stats) = run(&source, rungs, roomy_settings(), FLAT_OUT);
    let outputs = split_by_rung(&messages, 2);

    let origin = source.first_pts();
    let expected = vec![origin, origin + 2 * 90_000];
    for output in &outputs {
        assert_eq!(
            keyframe_pts(&output.packets),
            expected,
            "IDRs on the 2 s grid"
        );
        assert_eq!(output.packets.len(), 90, "no picture lost");
        assert!(
            output.packets.iter().any(|p| p.dts < p.pts),
            "B-frames in use"
        );
        let mut dts: Vec<_> = output.packets.iter().map(|p| p.dts).collect();
        dts.dedup();
        assert_eq!(dts.len(), 90, "decode timestamps strictly increase");
    }
    assert_eq!(decode_all(&outputs[0]), (90, 640, 360));
    assert_eq!(decode_all(&outputs[1]), (90, 320, 180));
    assert_eq!(
        (outputs[1].config.width, outputs[1].config.height),
        (320, 180)
    );
    assert_eq!(outputs[1].config.profile_idc, 100);

    assert_eq!(stats.packets_received, 90);
    assert_eq!(stats.frames_decoded, 90);
    assert_eq!(stats.frames_emitted_per_rung, [90, 90]);
    assert_eq!(stats.frames_dropped_per_rung, [0, 0]);
    assert_eq!(stats.packets_dropped, 0);
}

#[test]
fn with_a_source_rung_encoded_rungs_cut_on_the_source_keyframes() {
    let dir = tempfile::tempdir().unwrap();
    let source = make_source(dir.path(), 30);
    let rungs = source.plan(vec![RungSpec::Source, rung("180p", 180, 200)]);

    let (messages, _) = run(&source, rungs, roomy_settings(), FLAT_OUT);
    let outputs = split_by_rung(&messages, 2);

    let source_keyframes = source.keyframe_pts();
    assert_eq!(source_keyframes.len(), 3);
    assert_eq!(
        outputs[0].config, source.config,
        "the source rung keeps the source's avcC"
    );
    assert_eq!(outputs[0].packets.len(), source.packets.len());
    assert_eq!(keyframe_pts(&outputs[0].packets), source_keyframes);
    assert_eq!(keyframe_pts(&outputs[1].packets), source_keyframes);
}

#[test]
fn a_slow_consumer_makes_the_pipeline_drop_before_the_encoders_without_deadlock() {
    let dir = tempfile::tempdir().unwrap();
    let source = make_source(dir.path(), 10);
    let rungs = source.plan(vec![rung("360p", 360, 800), rung("180p", 180, 200)]);
    let settings = EncoderSettings {
        preset: Preset::Ultrafast,
        threads_per_rung: 1,
        packet_queue: 4,
        frame_queue: 1,
        output_queue: 2,
        ..EncoderSettings::default()
    };

    let (messages, stats) = run(
        &source,
        rungs,
        settings,
        Pace {
            producer: Duration::from_millis(2),
            consumer: Duration::from_millis(5),
        },
    );
    let outputs = split_by_rung(&messages, 2);

    let dropped = stats.packets_dropped + stats.frames_dropped_per_rung.iter().sum::<u64>();
    assert!(
        dropped > 0,
        "a consumer that falls behind causes counted drops: {stats:?}"
    );
    assert_eq!(stats.packets_received, 90);
    for (index, output) in outputs.iter().enumerate() {
        assert_eq!(
            stats.frames_emitted_per_rung[index],
            output.packets.len() as u64
        );
        assert!(
            output.packets.len() < 90,
            "rung {index} lost pictures, not the pipeline's bound"
        );
        // What survived still decodes: drops never break the reference chain.
        assert_eq!(decode_all(output).0, output.packets.len());
    }
}

#[test]
fn audio_packets_are_ignored_and_a_source_only_ladder_needs_no_decoder() {
    let dir = tempfile::tempdir().unwrap();
    let source = make_source(dir.path(), 30);
    let (transcoder, output) =
        LiveTranscoder::start(&source.config, vec![PlannedRung::Source], roomy_settings()).unwrap();
    transcoder
        .push(Packet {
            kind: TrackKind::Audio,
            timebase: Timebase(48_000),
            dts: 0,
            pts: 0,
            keyframe: true,
            data: Bytes::from_static(&[0; 8]),
        })
        .unwrap();
    for packet in &source.packets {
        transcoder.push(packet.clone()).unwrap();
    }
    let stats = transcoder.finish();
    let messages: Vec<_> = output.into_iter().collect();
    let outputs = split_by_rung(&messages, 1);
    assert_eq!(outputs[0].packets.len(), source.packets.len());
    assert_eq!(stats.packets_received, 90);
    assert_eq!(stats.frames_decoded, 0);
}

#[test]
fn once_nobody_reads_the_output_push_reports_that_the_transcoder_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let source = make_source(dir.path(), 30);
    let rungs = source.plan(vec![rung("180p", 180, 200)]);
    let settings = EncoderSettings {
        preset: Preset::Ultrafast,
        threads_per_rung: 1,
        ..EncoderSettings::default()
    };
    let (transcoder, output) = LiveTranscoder::start(&source.config, rungs, settings).unwrap();
    drop(output);
    let span = source.packets.len() as i64 * 3000;
    let stopped = (0..20i64)
        .flat_map(|round| {
            source.packets.iter().map(move |packet| {
                let shift = Timebase::MPEG.rescale(round * span, packet.timebase);
                Packet {
                    dts: packet.dts + shift,
                    pts: packet.pts + shift,
                    ..packet.clone()
                }
            })
        })
        .any(|packet| {
            thread::sleep(Duration::from_millis(2));
            transcoder.push(packet).is_err()
        });
    assert!(
        stopped,
        "push fails once the rung and the decoder have stopped"
    );
    transcoder.finish();
}
