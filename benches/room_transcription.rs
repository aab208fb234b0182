//! `cargo bench --bench room_transcription [-- SECONDS]`: how soon a room's clients get a
//! spoken line, and what transcribing a microphone costs the server. Results in
//! docs/BENCHMARKS.md.
//!
//! The release server runs with rooms on (loopback, as the room tests run it). Headless
//! Chromium (`tests/node/room_participants.mjs`) joins a room with LiveKit's client SDK as two
//! participants: a speaker whose microphone plays one sentence made by espeak-ng (`-v en-us -s
//! 130`) over and over with 4 s of silence between plays, and a silent listener. Each phase
//! lasts SECONDS (default 60):
//!
//! 1. **untranscribed**: the room runs without transcription; the server's CPU-seconds per
//!    second is the room's own cost (forwarding, the browsers' media).
//! 2. **transcribed**: `POST /v1/rooms/{id}/transcription/start`; the server's CPU-seconds per
//!    second again, and every final segment the listener's SDK receives
//!    (`TranscriptionReceived`): its delay is its arrival (the SDK's `lastReceivedTime`) less
//!    the end of the play it belongs to (the speaker page's wall clock at the start of the
//!    first play, plus whole periods, plus the sentence's length; both pages share one clock).
//!    The table gives p50 and p90 of that delay, how many plays were heard as a line, and the
//!    CPU a transcribed microphone adds.
//!
//! Needs Node.js with tests/node's playwright-core, Chromium and espeak-ng
//! (`scripts/install-deps.sh test`), and the speech library (`scripts/install-deps.sh run`).

mod common;

#[path = "../tests/common/participants.rs"]
mod participants;

use std::time::{Duration, Instant};

use common::speech::spoken;
use common::{process_cpu_seconds, BenchServer};
use participants::{Participants, RoomServer};
use serde_json::{json, Value};

/// Rooms announce loopback, as the room tests do.
const ROOMS_CONFIG: &str = "[rooms]\npublic_ip = \"127.0.0.1\"\nudp_port = 0\n";
/// What the speaker says, once per play: one sentence, so one line per play.
const SENTENCE: &str = "Today we are planting tomatoes and sunflowers near the river.";
/// Silence between two plays.
const PAUSE_S: f64 = 4.0;

impl RoomServer for BenchServer {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn log(&self) -> String {
        "(the bench server logs warnings to standard error)".to_owned()
    }
}

fn main() {
    let seconds: u64 = std::env::args()
        .skip(1)
        .find(|arg| !arg.starts_with('-'))
        .map_or(60, |arg| arg.parse().expect("SECONDS is a whole number"));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let wav = spoken(dir.path(), SENTENCE);

    let server = BenchServer::start_configured(&dir.path().join("data"), Some(ROOMS_CONFIG));
    let room = server.api("/v1/rooms", Some(r#"{"name": "bench"}"#));
    let room_id = room["data"]["id"].as_str().expect("a room").to_owned();
    let token = |identity: &str| {
        let body = json!({"identity": identity, "name": identity}).to_string();
        let minted = server.api(&format!("/v1/rooms/{room_id}/tokens"), Some(&body));
        minted["data"]["token"]
            .as_str()
            .expect("a token")
            .to_owned()
    };
    let mut browser = Participants::start(&server, &room_id);
    let speaker = browser.send(
        &server,
        json!({"cmd": "join", "token": token("speaker"), "color": "#dc2828", "gain": 0.8,
            "speech": wav, "pause": PAUSE_S}),
    );
    browser.send(
        &server,
        json!({"cmd": "join", "token": token("listener"), "color": "#2828dc", "tone": 440,
            "gain": 0.0}),
    );
    let started_at = speaker["speechStartedAt"]
        .as_f64()
        .expect("speechStartedAt");
    let sentence_s = speaker["speechSeconds"].as_f64().expect("speechSeconds");
    let period_ms = (sentence_s + PAUSE_S) * 1000.0;

    let window = Duration::from_secs(seconds);
    let untranscribed = cpu_per_second(&server, window);
    let started = server.api(
        &format!("/v1/rooms/{room_id}/transcription/start"),
        Some("{}"),
    );
    assert_eq!(
        started["data"]["transcription"]["language"], "en",
        "transcription started: {started}"
    );
    let heard_before = finals(&mut browser, &server).len();
    let transcribed = cpu_per_second(&server, window);
    let heard = finals(&mut browser, &server);
    let delays: Vec<f64> = heard[heard_before..]
        .iter()
        .map(|segment| {
            let received = segment["receivedAt"].as_f64().expect("receivedAt");
            // The play whose end came last before the line arrived.
            let since_first_end = received - started_at - sentence_s * 1000.0;
            let plays = (since_first_end / period_ms).floor().max(0.0);
            (since_first_end - plays * period_ms) / 1000.0
        })
        .collect();
    let plays = (window.as_secs_f64() * 1000.0 / period_ms).floor();

    println!("| phase | server CPU-s/s |");
    println!("| --- | --- |");
    println!("| untranscribed | {untranscribed:.3} |");
    println!("| transcribed | {transcribed:.3} |");
    println!(
        "one transcribed microphone adds {:.3} CPU-s/s",
        transcribed - untranscribed
    );
    println!(
        "final lines {} for about {plays} plays of a {sentence_s:.2} s sentence (period {:.2} s)",
        delays.len(),
        period_ms / 1000.0
    );
    if delays.is_empty() {
        println!("no line arrived");
        return;
    }
    let mut sorted = delays.clone();
    sorted.sort_by(f64::total_cmp);
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
    println!(
        "end of a play to its final line at the listener: p50 {:.2} s, p90 {:.2} s, min {:.2} s, max {:.2} s",
        at(0.5),
        at(0.9),
        sorted[0],
        sorted[sorted.len() - 1]
    );
}

/// The server's CPU-seconds per second over `window`.
fn cpu_per_second(server: &BenchServer, window: Duration) -> f64 {
    let (cpu, began) = (process_cpu_seconds(server.pid()), Instant::now());
    std::thread::sleep(window);
    (process_cpu_seconds(server.pid()) - cpu) / began.elapsed().as_secs_f64()
}

/// The final segments the listener (page 1) received so far, in order.
fn finals(browser: &mut Participants, server: &BenchServer) -> Vec<Value> {
    let reply = browser.send(server, json!({"cmd": "segments", "index": 1}));
    reply["segments"]
        .as_array()
        .expect("segments")
        .iter()
        .filter(|segment| segment["final"] == true)
        .cloned()
        .collect()
}
