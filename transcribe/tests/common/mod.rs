//! Speech made at test time with espeak-ng, and the installed engine.
#![allow(dead_code)]

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

use sluice_transcribe::{Line, Moonshine, DEFAULT_LIBRARY_DIR, SAMPLE_RATE};

/// The engine as `scripts/install-deps.sh` installs it; fails (never skips) without it.
pub fn engine() -> Moonshine {
    Moonshine::load(Path::new(DEFAULT_LIBRARY_DIR)).unwrap_or_else(|error| {
        panic!(
            "{error}\nThe transcription tests need it: run `scripts/install-deps.sh test` \
             (`make test` does)."
        )
    })
}

/// `text` spoken by espeak-ng (`-v en-us -s 130`), as 16 kHz mono samples (ffmpeg resamples).
pub fn speak(text: &str) -> Vec<f32> {
    let missing = |tool: &str, error: std::io::Error| -> ! {
        panic!("cannot run {tool} ({error}): run `scripts/install-deps.sh test`")
    };
    let mut espeak = Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "130", "--stdout", text])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| missing("espeak-ng", e));
    let wav = espeak.stdout.take().expect("espeak-ng's output");
    let mut ffmpeg = Command::new("ffmpeg")
        .args(["-v", "error", "-f", "wav", "-i", "pipe:0"])
        .args([
            "-ar",
            &SAMPLE_RATE.to_string(),
            "-ac",
            "1",
            "-f",
            "f32le",
            "pipe:1",
        ])
        .stdin(wav)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| missing("ffmpeg", e));
    let mut bytes = Vec::new();
    ffmpeg
        .stdout
        .take()
        .expect("ffmpeg's output")
        .read_to_end(&mut bytes)
        .expect("reading ffmpeg's output");
    assert!(
        espeak.wait().expect("espeak-ng").success(),
        "espeak-ng failed"
    );
    assert!(ffmpeg.wait().expect("ffmpeg").success(), "ffmpeg failed");
    let samples: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert!(
        samples.len() > SAMPLE_RATE as usize / 4,
        "espeak-ng made no audio for {text:?}"
    );
    trim_silence(samples)
}

/// Drops espeak-ng's leading and trailing silence, so a phrase's samples are its speech.
fn trim_silence(samples: Vec<f32>) -> Vec<f32> {
    let loud = |s: &f32| s.abs() > 0.01;
    let start = samples.iter().position(loud).unwrap_or(0);
    let end = samples
        .iter()
        .rposition(loud)
        .map_or(samples.len(), |i| i + 1);
    samples[start..end].to_vec()
}

/// `seconds` of digital silence.
pub fn silence(seconds: f64) -> Vec<f32> {
    vec![0.0; (seconds * f64::from(SAMPLE_RATE)) as usize]
}

/// Phrases spoken one after another with `gap_s` of silence before each and after the last,
/// and the time each phrase's speech starts and ends.
pub fn phrases(texts: &[&str], gap_s: f64) -> (Vec<f32>, Vec<(f64, f64)>) {
    let mut audio = Vec::new();
    let mut times = Vec::new();
    for text in texts {
        audio.extend(silence(gap_s));
        let start = seconds(audio.len());
        audio.extend(speak(text));
        times.push((start, seconds(audio.len())));
    }
    audio.extend(silence(gap_s));
    (audio, times)
}

pub fn seconds(samples: usize) -> f64 {
    samples as f64 / f64::from(SAMPLE_RATE)
}

/// The lowercase words of `text`, without punctuation.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The share of the words of `expected` found in `lines`' text.
pub fn recall(expected: &str, lines: &[Line]) -> f64 {
    let heard: std::collections::HashSet<String> =
        lines.iter().flat_map(|l| words(&l.text)).collect();
    let expected = words(expected);
    let found = expected.iter().filter(|w| heard.contains(*w)).count();
    found as f64 / expected.len() as f64
}

/// Every line's text, for messages.
pub fn text_of(lines: &[Line]) -> String {
    lines
        .iter()
        .map(|l| {
            format!(
                "[{:.2}–{:.2}{}] {}",
                l.start_s,
                l.end_s,
                if l.complete { "" } else { " …" },
                l.text
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
