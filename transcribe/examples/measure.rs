//! Measures the installed Moonshine engine on espeak-ng speech:
//!
//! ```sh
//! cargo run --release -p sluice-transcribe --example measure            # load, RTF, RSS, delay
//! cargo run --release -p sluice-transcribe --example measure -- long 10 # + a 10-minute stream
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::time::Instant;

use sluice_transcribe::{SpeechEngine, SAMPLE_RATE};

const SENTENCES: [&str; 7] = [
    "The river runs past the old mill every morning.",
    "Children walk to school along the stone bridge.",
    "A small boat carries apples and bread to the village.",
    "In winter the water turns cold and very quiet.",
    "The baker opens his shop before the sun comes up.",
    "People stop to talk about the weather and the news.",
    "At night the lamps along the road are bright and warm.",
];

fn status(field: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .map(|l| l[field.len()..].trim().to_owned())
        .unwrap_or_default()
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    println!(
        "before load: threads {}, VmHWM {}",
        threads(),
        status("VmHWM:")
    );
    let started = Instant::now();
    let engine = common::engine();
    println!(
        "load: {:.3} s; threads {}, VmRSS {}, VmHWM {}",
        started.elapsed().as_secs_f64(),
        threads(),
        status("VmRSS:"),
        status("VmHWM:")
    );

    // Whole clip, ~30 s.
    let (clip, _) = common::phrases(&SENTENCES, 0.6);
    let clip = &clip[..clip.len().min(30 * SAMPLE_RATE as usize)];
    let duration = common::seconds(clip.len());
    let expected = SENTENCES.join(" ");
    let mut best = f64::MAX;
    let mut lines = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        lines = engine.transcribe(clip).expect("transcribe");
        best = best.min(started.elapsed().as_secs_f64());
    }
    println!(
        "transcribe {duration:.1} s clip: best of 3 {best:.3} s, real-time factor {:.3}; {} lines, \
         word recall {:.0} %; threads {}, VmHWM {}",
        best / duration,
        lines.len(),
        100.0 * common::recall(&expected, &lines),
        threads(),
        status("VmHWM:")
    );
    println!("{}", common::text_of(&lines));

    // Streaming: audio added in chunks as fast as possible, `lines()` after each chunk.
    let (audio, phrase_times) = common::phrases(&SENTENCES, 1.0);
    for chunk_ms in [100, 500, 1000] {
        measure_stream(&engine, &audio, &phrase_times, &expected, chunk_ms);
    }
    println!(
        "after streams: threads {}, VmRSS {}, VmHWM {}",
        threads(),
        status("VmRSS:"),
        status("VmHWM:")
    );

    if args.first().map(String::as_str) == Some("long") {
        let minutes: usize = args.get(1).and_then(|m| m.parse().ok()).unwrap_or(10);
        let mut stream = engine.stream().expect("stream");
        let started = Instant::now();
        let mut count = 0;
        let per_minute = 60 * SAMPLE_RATE as usize;
        let mut fed = 0;
        let mut last_end = 0.0;
        while fed < minutes * per_minute {
            for piece in audio.chunks(SAMPLE_RATE as usize / 2) {
                stream.add_audio(piece).expect("add_audio");
                fed += piece.len();
                for line in stream
                    .lines()
                    .expect("lines")
                    .into_iter()
                    .filter(|l| l.complete)
                {
                    assert!(line.start_s >= last_end - 0.5, "times go back: {line:?}");
                    last_end = line.end_s;
                    count += 1;
                }
                if fed % per_minute < piece.len() {
                    println!(
                        "{:>3} min of audio after {:.1} s: {count} lines, last ends {last_end:.1} s, VmRSS {}, VmHWM {}",
                        fed / per_minute,
                        started.elapsed().as_secs_f64(),
                        status("VmRSS:"),
                        status("VmHWM:")
                    );
                }
            }
        }
        count += stream.finish().expect("finish").len();
        println!(
            "long stream: {minutes} min in {:.1} s (real-time factor {:.3}), {count} lines",
            started.elapsed().as_secs_f64(),
            started.elapsed().as_secs_f64() / (60.0 * minutes as f64)
        );
    }
}

/// Feeds `audio` in `chunk_ms` pieces, calling `lines()` after each, and reports the cost and
/// the delay from each phrase's end (in audio time) to its line being marked complete.
fn measure_stream(
    engine: &dyn SpeechEngine,
    audio: &[f32],
    phrase_times: &[(f64, f64)],
    expected: &str,
    chunk_ms: usize,
) {
    let mut stream = engine.stream().expect("stream");
    let chunk = SAMPLE_RATE as usize * chunk_ms / 1000;
    let mut completed_at: HashMap<u64, f64> = HashMap::new();
    let mut complete_lines = Vec::new();
    let mut call_times = Vec::new();
    let started = Instant::now();
    for (i, piece) in audio.chunks(chunk).enumerate() {
        stream.add_audio(piece).expect("add_audio");
        let t = Instant::now();
        let got = stream.lines().expect("lines");
        call_times.push(t.elapsed().as_secs_f64());
        let now_s = common::seconds(i * chunk + piece.len());
        for line in got.into_iter().filter(|l| l.complete) {
            completed_at.insert(line.id, now_s);
            complete_lines.push(line);
        }
    }
    let streamed = started.elapsed().as_secs_f64();
    complete_lines.extend(stream.finish().expect("finish"));
    let mut delays = Vec::new();
    for line in &complete_lines {
        let Some(at) = completed_at.get(&line.id) else {
            continue;
        };
        // The phrase this line ends: the one whose end is nearest the line's end.
        let end = phrase_times
            .iter()
            .map(|(_, e)| *e)
            .min_by(|a, b| (a - line.end_s).abs().total_cmp(&(b - line.end_s).abs()))
            .unwrap_or(line.end_s);
        delays.push(at - end);
    }
    call_times.sort_by(f64::total_cmp);
    println!(
        "stream, lines() every {chunk_ms} ms of audio: {:.1} s of audio in {streamed:.2} s \
         (real-time factor {:.3}); {} complete lines, recall {:.0} %; lines() wall time median \
         {:.1} ms, max {:.1} ms",
        common::seconds(audio.len()),
        streamed / common::seconds(audio.len()),
        complete_lines.len(),
        100.0 * common::recall(expected, &complete_lines),
        1000.0 * call_times[call_times.len() / 2],
        1000.0 * call_times[call_times.len() - 1],
    );
    println!(
        "  delay from end of phrase to line complete (audio time): {}",
        delays
            .iter()
            .map(|d| format!("{d:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if chunk_ms == 100 {
        println!("{}", common::text_of(&complete_lines));
    }
}
