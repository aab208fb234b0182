#[path = "../tests/common/mod.rs"]
mod common;
use sluice_transcribe::{SpeechEngine, SAMPLE_RATE};
use std::time::Instant;
fn hwm() -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmHWM"))
        .unwrap()
        .to_owned()
}
fn main() {
    let secs: usize = std::env::args().nth(1).unwrap().parse().unwrap();
    let engine = common::engine();
    let (clip, _) = common::phrases(
        &[
            "The river runs past the old mill every morning.",
            "Children walk to school along the stone bridge.",
            "A small boat carries apples and bread to the village.",
        ],
        0.6,
    );
    let mut audio = Vec::new();
    while audio.len() < secs * SAMPLE_RATE as usize {
        audio.extend_from_slice(&clip);
    }
    audio.truncate(secs * SAMPLE_RATE as usize);
    println!("before: {}", hwm());
    let t = Instant::now();
    let lines = engine.transcribe(&audio).unwrap();
    let e = t.elapsed().as_secs_f64();
    println!(
        "{secs} s: {e:.2} s, rtf {:.3}, {} lines, {}",
        e / secs as f64,
        lines.len(),
        hwm()
    );
}
