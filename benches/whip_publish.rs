//! `make bench`: a 720p30 WebRTC (WHIP) publish against the same content published over RTMP,
//! through the real server and the default ladder, in one run.
//!
//! The content is made here once with the ffmpeg CLI: 5 s of `testsrc2` at 1280x720, 30 fps,
//! as raw Y4M, and a 440 Hz tone as WAV. Headless Chromium publishes it over WHIP through the
//! server's own publish page (`tests/node/publish.mjs`; the files replace its fake camera and
//! microphone, looped), encoding it with its WebRTC encoder (VP8 by the browser's preference,
//! or H.264 with `?codec=h264`) and Opus. ffmpeg publishes the same files over RTMP, looped in
//! real time, encoded with libx264 (veryfast, zerolatency, 2.5 Mb/s, 2 s GOP) and AAC.
//!
//! For each it reports the time from the publisher starting (the publish page's "Go live" click
//! for WHIP: capture, offer, ICE gathering, POST, ICE, DTLS; the ffmpeg start for RTMP: process
//! start, handshake, publish) to the first segment listed in the master playlist, and the
//! server's CPU-seconds per wall second over a 10 s window of steady state (from 2 s after
//! that first segment), with the input bitrate the session measured and the frames it dropped.
//! The encoders (Chromium's, ffmpeg's) run outside the server and are not counted.
//!
//! Usage: `cargo bench --bench whip_publish` (needs Chromium, Node.js with playwright-core, the
//! ffmpeg CLI: `scripts/install-deps.sh bench`).

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{curl, num_cores, process_cpu_seconds, run, BenchServer};

/// Seconds of content made (and looped by both publishers).
const LOOP_SECONDS: u32 = 5;
/// How long each publisher stays live.
const LIVE_SECONDS: u32 = 24;
/// Steady state measured, starting this long after the first segment.
const WARM_UP: Duration = Duration::from_secs(2);
const WINDOW: Duration = Duration::from_secs(10);

/// What one publish measured.
struct Outcome {
    first_segment_seconds: f64,
    server_cpu_per_second: f64,
    input: serde_json::Value,
}

/// The raw content both publishers send.
fn make_content(dir: &Path) -> (PathBuf, PathBuf) {
    let render = |source: String, args: &[&str], name: &str| {
        let path = dir.join(name);
        run(Command::new("ffmpeg")
            .args(["-hide_banner", "-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg(source)
            .args(args)
            .arg(&path));
        path
    };
    let video = render(
        format!("testsrc2=size=1280x720:rate=30:duration={LOOP_SECONDS}"),
        &["-pix_fmt", "yuv420p"],
        "content-720p30.y4m",
    );
    let audio = render(
        format!("sine=frequency=440:sample_rate=48000:duration={LOOP_SECONDS}"),
        &["-ac", "2"],
        "content.wav",
    );
    (video, audio)
}

/// A live stream with the default ladder: its id, key and playback id.
fn create_stream(server: &BenchServer, name: &str) -> (String, String, String) {
    let created = server.api(
        "/v1/live-streams",
        Some(&format!(r#"{{"name": "{name}"}}"#)),
    );
    let data = &created["data"];
    (
        data["id"].as_str().expect("stream id").to_owned(),
        data["stream_key"].as_str().expect("stream key").to_owned(),
        data["playback_ids"][0]["id"]
            .as_str()
            .expect("playback id")
            .to_owned(),
    )
}

/// Waits for the first segment in the master playlist; returns when it was seen.
fn wait_for_first_segment(server: &BenchServer, playback: &str) -> Instant {
    let master = format!("{}/hls/{playback}/master.m3u8", server.base);
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        if curl(&[&master]).contains("#EXT-X-STREAM-INF") {
            return Instant::now();
        }
        assert!(Instant::now() < deadline, "no master playlist");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Server CPU-seconds per wall second over [`WINDOW`], [`WARM_UP`] after `first_segment`, and
/// the session's input description at its end.
fn measure_steady_state(
    server: &BenchServer,
    id: &str,
    first_segment: Instant,
) -> (f64, serde_json::Value) {
    std::thread::sleep((first_segment + WARM_UP).saturating_duration_since(Instant::now()));
    let (cpu_before, started) = (process_cpu_seconds(server.pid()), Instant::now());
    std::thread::sleep(WINDOW);
    let cpu = process_cpu_seconds(server.pid()) - cpu_before;
    let session =
        server.api(&format!("/v1/live-streams/{id}"), None)["data"]["current_session"].clone();
    (cpu / started.elapsed().as_secs_f64(), session)
}

fn whip_publish(server: &BenchServer, video: &Path, audio: &Path, codec: &str) -> Outcome {
    let (id, key, playback) = create_stream(server, &format!("whip {codec}"));
    let page = format!("{}/live/{id}/publish?codec={codec}", server.base);
    let mut browser: Child = Command::new("node")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/node/publish.mjs"
        ))
        .args([&page, &key, &LIVE_SECONDS.to_string()])
        .env("FAKE_VIDEO", video)
        .env("FAKE_AUDIO", audio)
        .stdout(Stdio::piped())
        .spawn()
        .expect("node tests/node/publish.mjs");
    let mut reports = BufReader::new(browser.stdout.take().expect("piped stdout"));
    let mut line = String::new();
    reports.read_line(&mut line).expect("publisher report");
    let report: serde_json::Value = serde_json::from_str(line.trim()).expect("JSON report");
    assert_eq!(report["state"], "live", "{report}");
    let first_segment = wait_for_first_segment(server, &playback);
    let seen_at_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as f64
        - first_segment.elapsed().as_millis() as f64;
    let clicked_at_ms = report["clickedAt"].as_f64().expect("clickedAt");
    let (server_cpu_per_second, input) = measure_steady_state(server, &id, first_segment);
    let _ = browser.kill();
    let _ = browser.wait();
    Outcome {
        first_segment_seconds: (seen_at_ms - clicked_at_ms) / 1000.0,
        server_cpu_per_second,
        input,
    }
}

fn rtmp_publish(server: &BenchServer, video: &Path, audio: &Path) -> Outcome {
    let (id, key, playback) = create_stream(server, "rtmp");
    let started = Instant::now();
    let mut publisher = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-v",
            "error",
            "-re",
            "-stream_loop",
            "-1",
            "-i",
        ])
        .arg(video)
        .args(["-re", "-stream_loop", "-1", "-i"])
        .arg(audio)
        .args(["-t", &LIVE_SECONDS.to_string()])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-tune",
            "zerolatency",
        ])
        .args(["-b:v", "2500k", "-maxrate", "2500k", "-bufsize", "5000k"])
        .args(["-g", "60", "-keyint_min", "60", "-pix_fmt", "yuv420p"])
        .args(["-c:a", "aac", "-b:a", "128k", "-f", "flv"])
        .arg(format!("rtmp://127.0.0.1:{}/live/{key}", server.rtmp_port))
        .spawn()
        .expect("ffmpeg publishes");
    let first_segment = wait_for_first_segment(server, &playback);
    let first_segment_seconds = first_segment.duration_since(started).as_secs_f64();
    let (server_cpu_per_second, input) = measure_steady_state(server, &id, first_segment);
    let _ = publisher.kill();
    let _ = publisher.wait();
    Outcome {
        first_segment_seconds,
        server_cpu_per_second,
        input,
    }
}

fn row(label: &str, outcome: &Outcome, rtmp_cpu: f64) {
    let input = &outcome.input["input"];
    println!(
        "| {label} | {}x{} {} + {} | {} kb/s | {:.2} s | {:.2} | {:.2} | {} |",
        input["width"],
        input["height"],
        input["video_codec"].as_str().unwrap_or("?"),
        input["audio_codec"].as_str().unwrap_or("none"),
        input["bitrate_kbps"],
        outcome.first_segment_seconds,
        outcome.server_cpu_per_second,
        outcome.server_cpu_per_second / rtmp_cpu,
        outcome.input["frames_dropped"],
    );
}

fn main() {
    let work = tempfile::tempdir().expect("temp dir");
    let (video, audio) = make_content(work.path());
    let server = BenchServer::start(&work.path().join("server"));
    let rtmp = rtmp_publish(&server, &video, &audio);
    let vp8 = whip_publish(&server, &video, &audio, "vp8");
    let h264 = whip_publish(&server, &video, &audio, "h264");
    drop(server);

    println!(
        "WHIP vs RTMP, same 720p30 content, default ladder, {} cores",
        num_cores()
    );
    println!();
    println!("| publish | input as received | input bitrate | publisher start → first segment in master | server CPU-s per second | vs RTMP | frames dropped |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    row(
        "RTMP (ffmpeg, libx264 + AAC)",
        &rtmp,
        rtmp.server_cpu_per_second,
    );
    row(
        "WHIP (Chromium, VP8 + Opus)",
        &vp8,
        rtmp.server_cpu_per_second,
    );
    row(
        "WHIP (Chromium, H.264 + Opus)",
        &h264,
        rtmp.server_cpu_per_second,
    );
}
