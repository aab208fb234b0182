//! Speech audio (16 kHz mono `f32`) from files and from live AAC packets, checked against what
//! the ffmpeg CLI makes of the same input (`ffmpeg -i in -ar 16000 -ac 1 -f f32le -`): sample
//! counts, content (best-aligned correlation and RMS error), a sine's frequency by its zero
//! crossings, the timeline rule (late audio, gaps), chunk bounds and typed errors.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;
use sluice_media::fixtures::ffmpeg_clip;
use sluice_media::{AudioSpecificConfig, Packet, Timebase, TrackKind};
use sluice_transcoder::{
    decode_speech_audio, decode_speech_audio_with, LiveSpeechAudio, SpeechAudio, SpeechAudioError,
    SpeechAudioOptions, MAX_CHUNK_SAMPLES, SPEECH_SAMPLE_RATE,
};

const RATE: f64 = SPEECH_SAMPLE_RATE as f64;

/// Everything a file gave, with the chunks checked on the way: none over the bound, each
/// starting where the last ended, progress never going back.
fn decode_all(path: &Path) -> (SpeechAudio, Vec<f32>) {
    let mut samples = Vec::new();
    let mut last_progress = 0.0;
    let audio = decode_speech_audio(path, |chunk| {
        assert!(!chunk.samples.is_empty());
        assert!(
            chunk.samples.len() <= MAX_CHUNK_SAMPLES,
            "a chunk of {} samples",
            chunk.samples.len()
        );
        assert_eq!(chunk.start_sample, samples.len() as u64);
        if let Some(progress) = chunk.progress() {
            assert!(progress >= last_progress && progress <= 1.0);
            last_progress = progress;
        }
        samples.extend_from_slice(chunk.samples);
        ControlFlow::Continue(())
    })
    .unwrap_or_else(|e| panic!("{} decodes: {e}", path.display()));
    assert_eq!(audio.samples, samples.len() as u64);
    assert!(audio.complete);
    (audio, samples)
}

/// What the ffmpeg CLI makes of the file's audio at 16 kHz mono.
fn reference(path: &Path) -> Vec<f32> {
    let output = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(path)
        .args(["-vn", "-ar", "16000", "-ac", "1", "-f", "f32le", "-"])
        .output()
        .expect("the ffmpeg CLI runs");
    assert!(output.status.success(), "ffmpeg decodes {}", path.display());
    output
        .stdout
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// The lag (samples of `b` ahead of `a`) within ±`max_lag` at which the two correlate best,
/// with that correlation and the RMS of their difference there.
fn align(a: &[f32], b: &[f32], max_lag: i64) -> (i64, f64, f64) {
    let mut best = (0, f64::MIN, f64::MAX);
    for lag in -max_lag..=max_lag {
        let (a, b) = if lag >= 0 {
            (a, b.get(lag as usize..).unwrap_or(&[]))
        } else {
            (a.get((-lag) as usize..).unwrap_or(&[]), b)
        };
        let n = a.len().min(b.len());
        if n == 0 {
            continue;
        }
        let (mut ab, mut aa, mut bb, mut diff) = (0f64, 0f64, 0f64, 0f64);
        for (x, y) in a[..n].iter().zip(&b[..n]) {
            let (x, y) = (f64::from(*x), f64::from(*y));
            ab += x * y;
            aa += x * x;
            bb += y * y;
            diff += (x - y).powi(2);
        }
        let correlation = ab / (aa.sqrt() * bb.sqrt()).max(f64::MIN_POSITIVE);
        if correlation > best.1 {
            best = (lag, correlation, (diff / n as f64).sqrt());
        }
    }
    best
}

fn rms(samples: &[f32]) -> f64 {
    let energy: f64 = samples.iter().map(|s| f64::from(*s).powi(2)).sum();
    (energy / samples.len().max(1) as f64).sqrt()
}

/// A sine's frequency from its zero crossings (two per period) over `samples`.
fn frequency(samples: &[f32]) -> f64 {
    let crossings = samples
        .windows(2)
        .filter(|pair| (pair[0] < 0.0) != (pair[1] < 0.0))
        .count();
    crossings as f64 / 2.0 / (samples.len() as f64 / RATE)
}

/// Checks a sine file of `seconds` at `hz`: its length, its frequency and its match with the
/// ffmpeg CLI's own 16 kHz mono rendering.
fn check_sine_file(path: &Path, seconds: f64, hz: f64, codec: &str) {
    let (audio, samples) = decode_all(path);
    assert_eq!(audio.codec, codec);
    let expected = seconds * RATE;
    let count = samples.len() as f64;
    assert!(
        (count - expected).abs() <= expected * 0.01,
        "{codec}: {count} samples for {seconds} s"
    );
    assert_eq!(audio.clock_jumps, 0);
    assert_eq!(audio.decode_errors, 0);
    let expected_samples = audio
        .expected_samples
        .expect("the file declares its duration") as f64;
    assert!((expected_samples - expected).abs() <= expected * 0.01);
    // Leave the edges (encoder priming, the fade of the last frame) out of the frequency.
    let middle = &samples[samples.len() / 10..samples.len() * 9 / 10];
    let measured = frequency(middle);
    assert!(
        (measured - hz).abs() <= hz * 0.005,
        "{codec}: {measured} Hz, not {hz} Hz"
    );
    // The sine at −18 dBFS (ffmpeg's `sine` amplitude 1/8), downmixed at equal weights.
    let level = rms(middle);
    assert!((0.07..0.11).contains(&level), "{codec}: rms {level}");

    let reference = reference(path);
    assert!(
        (reference.len() as f64 - count).abs() <= expected * 0.01,
        "{codec}: {count} samples, the CLI gives {}",
        reference.len()
    );
    let (lag, correlation, error) = align(&samples, &reference, 160);
    println!(
        "{codec}: {count} samples ({} expected), lag {lag}, correlation {correlation:.6}, \
         rms error {error:.6}",
        expected
    );
    assert!(lag.abs() <= 16, "{codec}: {lag} samples off the CLI");
    assert!(correlation > 0.999, "{codec}: correlation {correlation}");
    assert!(error < 0.005, "{codec}: rms error {error}");
}

#[test]
fn stereo_48_khz_aac_in_mp4_becomes_16_khz_mono() {
    let dir = tempfile::tempdir().unwrap();
    let path = ffmpeg_clip(
        dir.path(),
        "sine.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000:duration=6",
            "-ac",
            "2",
            "-c:a",
            "aac",
        ],
    );
    check_sine_file(&path, 6.0, 440.0, "aac");
}

#[test]
fn mp3_becomes_16_khz_mono() {
    let dir = tempfile::tempdir().unwrap();
    let path = ffmpeg_clip(
        dir.path(),
        "sine.mp3",
        &[
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=1000:sample_rate=44100:duration=5",
            "-ac",
            "2",
            "-c:a",
            "libmp3lame",
            "-b:a",
            "128k",
        ],
    );
    check_sine_file(&path, 5.0, 1000.0, "mp3");
}

#[test]
fn opus_in_webm_becomes_16_khz_mono() {
    let dir = tempfile::tempdir().unwrap();
    let path = ffmpeg_clip(
        dir.path(),
        "sine.webm",
        &[
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=300:sample_rate=48000:duration=5",
            "-ac",
            "2",
            "-c:a",
            "libopus",
            "-b:a",
            "96k",
        ],
    );
    check_sine_file(&path, 5.0, 300.0, "opus");
}

fn video_args() -> Vec<&'static str> {
    vec![
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25:duration=4",
    ]
}

fn x264_args() -> Vec<&'static str> {
    vec![
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
    ]
}

#[test]
fn a_video_only_file_has_no_audio() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = video_args();
    args.extend(x264_args());
    let path = ffmpeg_clip(dir.path(), "silent-film.mp4", &args);
    let error = decode_speech_audio(&path, |_| panic!("no chunk")).unwrap_err();
    assert!(
        matches!(&error, SpeechAudioError::NoAudio { path: p } if p == &path),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains(&*path.to_string_lossy()), "{message}");
    assert!(message.contains("no audio stream"), "{message}");

    // Asking for the video stream by index is refused the same way.
    let options = SpeechAudioOptions {
        stream: Some(0),
        ..SpeechAudioOptions::default()
    };
    let error = decode_speech_audio_with(&path, &options, |_| panic!("no chunk")).unwrap_err();
    assert!(
        matches!(error, SpeechAudioError::NotAudio { index: 0, .. }),
        "{error:?}"
    );
}

#[test]
fn missing_and_non_media_files_fail_with_their_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("gone.mp4");
    let error = decode_speech_audio(&missing, |_| panic!("no chunk")).unwrap_err();
    assert!(matches!(error, SpeechAudioError::Io { .. }), "{error:?}");
    assert!(error.to_string().contains("gone.mp4"), "{error}");

    let text = dir.path().join("notes.mp3");
    std::fs::write(
        &text,
        "these are not the samples you are looking for\n".repeat(50),
    )
    .unwrap();
    let error = decode_speech_audio(&text, |_| panic!("no chunk")).unwrap_err();
    assert!(matches!(error, SpeechAudioError::Open { .. }), "{error:?}");
    assert!(error.to_string().contains("notes.mp3"), "{error}");
}

/// A 4 s clip whose 3 s of 440 Hz audio starts 1 s after its video, in `name`'s container.
fn late_audio_clip(dir: &Path, name: &str) -> PathBuf {
    let mut args = video_args();
    args.extend([
        "-itsoffset",
        "1",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000:duration=3",
    ]);
    args.extend(x264_args());
    args.extend(["-c:a", "aac"]);
    ffmpeg_clip(dir, name, &args)
}

#[test]
fn audio_that_starts_late_begins_with_that_much_silence() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["late.mp4", "late.mkv", "late.ts"] {
        let path = late_audio_clip(dir.path(), name);
        let (audio, samples) = decode_all(&path);
        // The first sample with sound: the sine starts at 1 s (AAC's first frame ramps up).
        let onset = samples
            .iter()
            .position(|s| s.abs() > 1e-3)
            .expect("there is sound");
        let onset_s = onset as f64 / RATE;
        println!(
            "{name}: sound from {onset_s:.4} s, {} samples, {} silence, origin {:.3} s",
            samples.len(),
            audio.silence_samples,
            audio.origin_s
        );
        // The encoder's priming frame, delayed with the rest, sits just before 1 s (0.978 s
        // in MP4, as ffprobe shows): it decodes to near silence.
        assert!(
            (0.975..1.01).contains(&onset_s),
            "{name}: sound starts at {onset_s} s"
        );
        assert!(rms(&samples[..(0.975 * RATE) as usize]) < 1e-6, "{name}");
        assert!(audio.silence_samples >= 15_600, "{name}: {audio:?}");
        let total = samples.len() as f64 / RATE;
        assert!((3.97..4.06).contains(&total), "{name}: {total} s");
        let tone = &samples[(1.2 * RATE) as usize..(3.8 * RATE) as usize];
        assert!((frequency(tone) - 440.0).abs() < 3.0, "{name}");
    }
}

#[test]
fn a_gap_in_the_audio_is_filled_with_silence_on_the_timeline() {
    let dir = tempfile::tempdir().unwrap();
    // 6 s of tone with frames between 2 s and 3 s left out, their timestamps kept.
    let path = ffmpeg_clip(
        dir.path(),
        "gap.mkv",
        &[
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000:duration=6",
            "-af",
            "aselect='not(between(t,2,3))'",
            "-c:a",
            "pcm_s16le",
        ],
    );
    let (audio, samples) = decode_all(&path);
    let total = samples.len() as f64 / RATE;
    assert!((5.98..6.02).contains(&total), "{total} s: {audio:?}");
    let at = |s: f64| (s * RATE) as usize;
    // Frames are 1024 samples at 48 kHz: the gap's edges fall within a frame of 2 s and 3 s.
    assert!(
        rms(&samples[at(2.03)..at(2.97)]) < 1e-6,
        "silence in the gap"
    );
    assert!(rms(&samples[at(0.1)..at(1.95)]) > 0.07);
    assert!(rms(&samples[at(3.05)..at(5.9)]) > 0.07);
    assert!(audio.silence_samples >= at(0.95) as u64, "{audio:?}");
    assert_eq!(audio.clock_jumps, 0);
}

#[test]
fn the_callback_can_stop_the_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let path = ffmpeg_clip(
        dir.path(),
        "long.mka",
        &[
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000:duration=10",
            "-c:a",
            "aac",
        ],
    );
    let mut chunks = 0;
    let audio = decode_speech_audio(&path, |chunk| {
        chunks += 1;
        assert!(chunk.progress().is_some_and(|p| p < 0.5));
        if chunks == 3 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .unwrap();
    assert_eq!(chunks, 3);
    assert!(!audio.complete);
    assert_eq!(audio.samples, 3 * MAX_CHUNK_SAMPLES as u64);
}

/// This process's resident memory, in kB.
fn resident_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn an_hour_long_file_is_decoded_in_bounded_memory_with_progress() {
    let dir = tempfile::tempdir().unwrap();
    // An hour of 8 kHz mono PCM: 58 MB of file, 230 MB as 16 kHz samples.
    let path = ffmpeg_clip(
        dir.path(),
        "hour.wav",
        &[
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=8000:duration=3600",
            "-c:a",
            "pcm_s16le",
        ],
    );
    let (mut settled, mut peak, mut chunks) = (0, 0, 0u64);
    let mut last_progress = 0.0;
    let audio = decode_speech_audio(&path, |chunk| {
        chunks += 1;
        assert!(chunk.samples.len() <= MAX_CHUNK_SAMPLES);
        last_progress = chunk.progress().expect("a WAV file knows its duration");
        // Measured from the tenth minute on, when every buffer has reached its size.
        if chunk.start_sample == 600 * u64::from(SPEECH_SAMPLE_RATE) {
            settled = resident_kb();
        }
        if chunk.start_sample % (60 * u64::from(SPEECH_SAMPLE_RATE)) == 0 {
            peak = peak.max(resident_kb());
        }
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(audio.samples, 3600 * u64::from(SPEECH_SAMPLE_RATE));
    assert_eq!(chunks, 3600);
    assert!((last_progress - 1.0).abs() < 1e-9, "{last_progress}");
    // Other tests of this binary run beside this one, so allow them some room; keeping what was
    // read (or decoded) would add at least the file's 58 MB.
    let growth = peak.saturating_sub(settled);
    assert!(growth < 24_000, "resident memory grew by {growth} kB");
}

/// The AAC configuration and raw AAC frames of an FLV file, read from its tags as an RTMP
/// server receives them (FLV audio tag bodies): millisecond timestamps, no ADTS headers.
fn flv_aac(path: &Path) -> (AudioSpecificConfig, Vec<Packet>) {
    let data = std::fs::read(path).unwrap();
    assert_eq!(&data[..3], b"FLV");
    let be24 = |b: &[u8]| u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
    let mut at = u32::from_be_bytes([data[5], data[6], data[7], data[8]]) as usize + 4;
    let (mut config, mut packets) = (None, Vec::new());
    while at + 11 <= data.len() {
        let size = be24(&data[at + 1..]) as usize;
        let ms = i64::from(be24(&data[at + 4..]) | u32::from(data[at + 7]) << 24);
        let body = &data[at + 11..at + 11 + size];
        // Audio tag, SoundFormat 10 (AAC): byte 1 is 0 for the config, 1 for a raw frame.
        if data[at] == 8 && body[0] >> 4 == 10 {
            if body[1] == 0 {
                config = Some(AudioSpecificConfig::parse(&body[2..]).unwrap());
            } else {
                packets.push(Packet {
                    kind: TrackKind::Audio,
                    timebase: Timebase::MILLIS,
                    dts: ms,
                    pts: ms,
                    keyframe: true,
                    data: Bytes::copy_from_slice(&body[2..]),
                });
            }
        }
        at += 11 + size + 4;
    }
    (config.expect("an AAC sequence header"), packets)
}

fn flv_clip(dir: &Path, name: &str, source: &str, channels: &str) -> PathBuf {
    ffmpeg_clip(
        dir,
        name,
        &[
            "-f", "lavfi", "-i", source, "-ac", channels, "-c:a", "aac", "-f", "flv",
        ],
    )
}

/// Feeds `packets` (times moved by `offset_ms`) and checks each call's block: bounded, and
/// starting where the previous one ended.
fn feed(
    live: &mut LiveSpeechAudio,
    config: &AudioSpecificConfig,
    packets: &[Packet],
    offset_ms: i64,
    samples: &mut Vec<f32>,
    next_s: &mut Option<f64>,
) {
    for packet in packets {
        let packet = Packet {
            pts: packet.pts + offset_ms,
            dts: packet.dts + offset_ms,
            ..packet.clone()
        };
        let block = live.push(config, &packet).unwrap();
        // One AAC frame at 48 kHz or 44.1 kHz is at most 372 samples at 16 kHz, plus what the
        // resampler held back.
        assert!(
            block.samples.len() <= 512,
            "{} samples",
            block.samples.len()
        );
        if block.samples.is_empty() {
            continue;
        }
        if let Some(expected) = *next_s {
            assert!(
                (block.start_s - expected).abs() < 0.002,
                "block at {} s, expected {expected} s",
                block.start_s
            );
        }
        *next_s = Some(block.end_s());
        samples.extend_from_slice(block.samples);
    }
}

#[test]
fn live_aac_packets_decode_like_the_file_and_survive_a_config_change() {
    let dir = tempfile::tempdir().unwrap();
    let stereo = flv_clip(
        dir.path(),
        "stereo.flv",
        "aevalsrc=0.3*sin(2*PI*(300+200*t)*t)|0.2*sin(2*PI*440*t):s=48000:d=4",
        "2",
    );
    let (config, packets) = flv_aac(&stereo);
    assert_eq!((config.sample_rate, config.channels), (48_000, 2));

    let mut live = LiveSpeechAudio::new(&config).unwrap();
    let (mut samples, mut next_s) = (Vec::new(), None);
    feed(&mut live, &config, &packets, 0, &mut samples, &mut next_s);
    assert_eq!(live.decode_errors(), 0);

    let (_, file) = decode_all(&stereo);
    let (lag, correlation, error) = align(&samples, &file, 64);
    println!(
        "live {} samples, file {} samples, lag {lag}, correlation {correlation:.6}, rms error \
         {error:.6}",
        samples.len(),
        file.len()
    );
    assert!(lag.abs() <= 2, "{lag} samples off the file path");
    assert!(correlation > 0.9999, "correlation {correlation}");
    assert!(error < 1e-3, "rms error {error}");
    assert!(
        (samples.len() as i64 - file.len() as i64).abs() <= 400,
        "{} live samples, {} from the file",
        samples.len(),
        file.len()
    );

    // The publisher comes back as 44.1 kHz mono: the decoder is reopened and the times go on
    // from the new packets' own.
    let mono = flv_clip(
        dir.path(),
        "mono.flv",
        "sine=frequency=1000:sample_rate=44100:duration=2",
        "1",
    );
    let (mono_config, mono_packets) = flv_aac(&mono);
    assert_eq!((mono_config.sample_rate, mono_config.channels), (44_100, 1));
    // Its packets come 10 s on, on the packets' clock: the times follow them.
    let (mut after, mut mono_next) = (Vec::new(), Some(10.0));
    feed(
        &mut live,
        &mono_config,
        &mono_packets,
        10_000,
        &mut after,
        &mut mono_next,
    );
    assert_eq!(live.config_changes(), 1);
    let end = mono_next.expect("samples after the change");
    assert!((11.9..12.1).contains(&end), "ends at {end} s");
    let seconds = after.len() as f64 / RATE;
    assert!(
        (1.9..2.1).contains(&seconds),
        "{seconds} s after the change"
    );
    let middle = &after[after.len() / 4..after.len() * 3 / 4];
    assert!((frequency(middle) - 1000.0).abs() < 5.0);

    let tail = live.flush().unwrap();
    assert!(tail.samples.len() < 512);
    assert!(tail.samples.is_empty() || (tail.start_s - end).abs() < 0.002);
}

#[test]
fn live_garbage_is_counted_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = flv_clip(
        dir.path(),
        "tone.flv",
        "sine=frequency=440:sample_rate=48000:duration=1",
        "2",
    );
    let (config, packets) = flv_aac(&path);
    let mut live = LiveSpeechAudio::new(&config).unwrap();
    let mut total = 0;
    for (index, packet) in packets.iter().enumerate() {
        if index == 10 {
            let garbage = Packet {
                data: Bytes::from_static(&[0xFF, 0x00, 0x13, 0x37, 0x42]),
                ..packet.clone()
            };
            let _ = live.push(&config, &garbage).unwrap();
        }
        total += live.push(&config, packet).unwrap().samples.len();
    }
    assert!(live.decode_errors() >= 1);
    assert!(total as f64 / RATE > 0.95, "{total} samples");
}

/// CPU cost of decoding and resampling a 10-minute file: `SLUICE_SPEECH_FILE` names one, or a
/// 10-minute 48 kHz stereo AAC MP4 is made. Run with `--ignored --nocapture`.
#[test]
#[ignore]
fn ten_minutes_cost() {
    let dir = tempfile::tempdir().unwrap();
    let path = match std::env::var_os("SLUICE_SPEECH_FILE") {
        Some(path) => PathBuf::from(path),
        None => ffmpeg_clip(
            dir.path(),
            "ten.mp4",
            &[
                "-f",
                "lavfi",
                "-i",
                "aevalsrc=0.3*sin(2*PI*(300+200*sin(t))*t)|0.2*sin(2*PI*440*t):s=48000:d=600",
                "-c:a",
                "aac",
                "-b:a",
                "128k",
            ],
        ),
    };
    let cpu = || {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        // utime and stime, fields 14 and 15 (the 12th and 13th after the command name).
        let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
        ticks / 100.0
    };
    let (cpu_before, wall) = (cpu(), std::time::Instant::now());
    let mut peak_chunk = 0;
    let audio = decode_speech_audio(&path, |chunk| {
        peak_chunk = peak_chunk.max(chunk.samples.len());
        if chunk.start_sample % (60 * u64::from(SPEECH_SAMPLE_RATE)) == 0 {
            println!(
                "at {:>5.0} s: resident {} kB",
                chunk.start_s(),
                resident_kb()
            );
        }
        ControlFlow::Continue(())
    })
    .unwrap();
    let (cpu_s, wall_s) = (cpu() - cpu_before, wall.elapsed().as_secs_f64());
    let media_s = audio.duration.as_secs_f64();
    println!(
        "{}: {media_s:.1} s of {} audio in {cpu_s:.2} s CPU ({wall_s:.2} s wall): {:.4} s CPU \
         per audio second, largest chunk {peak_chunk}",
        path.display(),
        audio.codec,
        cpu_s / media_s
    );
}
