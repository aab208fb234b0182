//! `cargo bench --bench room_composite_latency [-- SECONDS [MODES]]`: glass-to-glass latency from a
//! room participant's camera to the room's composite played with hls.js, for each latency mode of
//! the composite (`low` and `standard`; MODES, comma-separated, picks some), each watched for
//! SECONDS (default 60) of playback. Results in docs/BENCHMARKS.md.
//!
//! The release server runs with rooms on (loopback, as the room tests run it). One room, one
//! participant: headless Chromium (`benches/node/composite_latency.mjs`) joins with LiveKit's
//! client SDK from the server's join page and publishes a 1280x720 canvas as its camera, repainted
//! 30 times a second with a time code (the wall clock in ms, modulo 2^20, as a row of black and
//! white cells with markers and a parity bit). For each mode a composite of the room starts (`grid`
//! layout, `720p`, HLS only): its single member's tile is the whole canvas less the layout's
//! margin. Ten seconds after its first playlist, a second page of the same Chromium plays the
//! composite's `master.m3u8` with the vendored hls.js (`lowLatencyMode: true`, defaults otherwise)
//! and every 250 ms reads the time code off the picture on screen, where the compositor's layout
//! puts it: the wall clock minus the code is the latency from the participant's canvas to the
//! viewer's screen. Samples whose markers, cells or parity do not check out are dropped and
//! counted.
//!
//! Each sample also splits the latency at the program date time hls.js gives the frame on screen
//! (the live packager dates media by the wall clock at which the session's first media reached it,
//! carried forward by media time: about when the compositor made the picture): camera to composite
//! (WebRTC, the compositor's playout delay, frame timing) and composite to screen (the ladder's
//! encode, packaging, the player's distance to the live edge). The table lists, per mode, p50 (and
//! the medians of the watch's first and last quarter, a drift), p90, min and max of the latency,
//! the split's medians, hls.js's own distance to the live edge, the stalls (`waiting` events after
//! playback started, hls.js buffer-stall errors), the LL-HLS parts loaded and the machine's load
//! average around the watch.
//!
//! Needs Node.js with tests/node's playwright-core, and Chromium (`scripts/install-deps.sh test`).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use common::{curl, BenchServer, API_USER};
use serde_json::{json, Value};
use sluice_compositor::layout::{place, Rect};
use sluice_compositor::{Layout, Member};

/// Rooms announce loopback, as the room tests do.
const ROOMS_CONFIG: &str = "[rooms]\npublic_ip = \"127.0.0.1\"\nudp_port = 0\n";
/// The canvas of a `720p` composite.
const CANVAS: (u32, u32) = (1280, 720);
const IDENTITY: &str = "camera";
/// How long the participant's join (page, SDK, ICE, publication) may take on a loaded machine.
const JOIN_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a composite runs before its viewer starts, so that the watch sees a running
/// composite rather than its start.
const SETTLE: Duration = Duration::from_secs(10);
/// How long a watch may take beyond its playback: the player's start, the report.
const WATCH_OVERHEAD: Duration = Duration::from_secs(120);

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with('-'))
        .collect();
    let seconds: u64 = args
        .first()
        .map(|arg| arg.parse().expect("SECONDS is a whole number"))
        .unwrap_or(60);
    let modes: Vec<&str> = args
        .get(1)
        .map_or(vec!["low", "standard"], |modes| modes.split(',').collect());
    let work = tempfile::tempdir().expect("temporary directory");
    let server = BenchServer::start_configured(&work.path().join("data"), Some(ROOMS_CONFIG));
    let room_id = create_room(&server);
    let mut browser = Browser::start(&format!("{}/rooms/{room_id}/join", server.base));
    browser.send(
        json!({"cmd": "join", "token": token(&server, &room_id)}),
        JOIN_TIMEOUT,
    );
    let tile = camera_tile();

    let mut rows = Vec::new();
    for mode in modes {
        let playback_id = start_composite(&server, &room_id, mode);
        let master = format!("{}/hls/{playback_id}/master.m3u8", server.base);
        wait_until_ok(&master);
        std::thread::sleep(SETTLE);
        let load_before = load_average();
        let report = browser.send(
            json!({
                "cmd": "watch",
                "url": master,
                "seconds": seconds,
                "canvas": {"width": CANVAS.0, "height": CANVAS.1},
                "tile": {"x": tile.x, "y": tile.y, "width": tile.width, "height": tile.height},
            }),
            Duration::from_secs(seconds) + WATCH_OVERHEAD,
        );
        let load = format!("{load_before} → {}", load_average());
        stop_composite(&server, &room_id);
        let summary = Summary::of(&report);
        println!("{mode}: {} (load {load})", summary.line());
        rows.push((mode, summary, load));
    }

    println!(
        "\n| composite `latency_mode` | p50 (s) | p50 first → last quarter (s) | p90 (s) | min (s) \
         | max (s) | camera → composite p50 (s) \
         | composite → screen p50 (s) | hls.js edge p50 (s) | samples (unreadable) \
         | stalls (waiting / buffer) | LL-HLS parts | load average (1 min) |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
    for (mode, summary, load) in rows {
        println!(
            "| `{mode}` | {:.2} | {:.2} → {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} ({}) | {} / {} | {} | {load} |",
            summary.p50,
            summary.first_quarter_p50,
            summary.last_quarter_p50,
            summary.p90,
            summary.min,
            summary.max,
            summary.camera_to_composite,
            summary.composite_to_screen,
            summary.hlsjs_edge,
            summary.samples,
            summary.unreadable,
            summary.waiting,
            summary.buffer_stalls,
            summary.parts,
        );
    }
}

/// The browser holding the participant and the viewer (`benches/node/composite_latency.mjs`),
/// driven one command at a time.
struct Browser {
    child: Child,
    stdin: ChildStdin,
    replies: Receiver<String>,
}

impl Browser {
    fn start(join_url: &str) -> Browser {
        let mut child = Command::new("node")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/benches/node/composite_latency.mjs"
            ))
            .arg(join_url)
            // A group of its own, so that Chromium goes with node.
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("node benches/node/composite_latency.mjs (needs Node.js, tests/node's playwright-core and Chromium: scripts/install-deps.sh test)");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let (sender, replies) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Browser {
            child,
            stdin,
            replies,
        }
    }

    /// Sends `command` and waits up to `timeout` for its reply.
    fn send(&mut self, command: Value, timeout: Duration) -> Value {
        writeln!(self.stdin, "{command}").expect("browser running");
        let line = self
            .replies
            .recv_timeout(timeout)
            .unwrap_or_else(|e| panic!("no reply to {command} ({e})"));
        let reply: Value = serde_json::from_str(line.trim())
            .unwrap_or_else(|e| panic!("reply is not JSON ({e}): {line}"));
        assert_ne!(reply["cmd"], "failed", "{reply:#}");
        reply
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "{}", json!({"cmd": "quit"}));
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // SAFETY: signals the process group this bench started (its leader is our child).
        unsafe {
            libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

fn create_room(server: &BenchServer) -> String {
    let room = server.api(
        "/v1/rooms",
        Some(&json!({"name": "latency", "empty_timeout_s": 600}).to_string()),
    );
    room["data"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("room: {room}"))
        .to_owned()
}

fn token(server: &BenchServer, room_id: &str) -> String {
    let minted = server.api(
        &format!("/v1/rooms/{room_id}/tokens"),
        Some(&json!({"identity": IDENTITY, "name": "Camera"}).to_string()),
    );
    minted["data"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("token: {minted}"))
        .to_owned()
}

/// Starts the room's composite in latency `mode`; its playback id.
fn start_composite(server: &BenchServer, room_id: &str, mode: &str) -> String {
    let body = json!({
        "layout": "grid",
        "resolution": "720p",
        "latency_mode": mode,
        "outputs": {"hls": true},
    });
    let composite = server.api(
        &format!("/v1/rooms/{room_id}/composite"),
        Some(&body.to_string()),
    );
    composite["data"]["playback_ids"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("composite: {composite}"))
        .to_owned()
}

/// Stops the room's composite and waits until the room has none running.
fn stop_composite(server: &BenchServer, room_id: &str) {
    let url = format!("{}/v1/rooms/{room_id}/composite", server.base);
    let status = |method: &str| {
        curl(&[
            "-u",
            API_USER,
            "-X",
            method,
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &url,
        ])
    };
    assert_eq!(status("DELETE"), "204", "stopping the composite");
    let deadline = Instant::now() + Duration::from_secs(60);
    while status("GET") != "404" {
        assert!(Instant::now() < deadline, "the composite did not stop");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The participant's tile: the only member of a grid on the composite's canvas.
fn camera_tile() -> Rect {
    let member = Member {
        id: IDENTITY.to_owned(),
        name: "Camera".to_owned(),
        camera: Some(format!("{IDENTITY}-camera")),
        screen_share: None,
        microphone: None,
    };
    place(Layout::Grid, CANVAS.0, CANVAS.1, &[member], None)[0].rect
}

/// Polls `url` until it answers 200 (the composite's first playlist exists).
fn wait_until_ok(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while curl(&["-o", "/dev/null", "-w", "%{http_code}", url]) != "200" {
        assert!(Instant::now() < deadline, "{url} never answered");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The machine's load average over the last minute.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .unwrap_or("?")
        .to_owned()
}

/// A watch's figures, in seconds.
struct Summary {
    p50: f64,
    /// The medians of the first and the last quarter of the watch: a drift shows the
    /// composite or the player falling behind.
    first_quarter_p50: f64,
    last_quarter_p50: f64,
    p90: f64,
    min: f64,
    max: f64,
    camera_to_composite: f64,
    composite_to_screen: f64,
    hlsjs_edge: f64,
    samples: usize,
    unreadable: u64,
    waiting: u64,
    buffer_stalls: u64,
    parts: u64,
}

impl Summary {
    fn of(report: &Value) -> Summary {
        let samples = report["samples"].as_array().expect("samples");
        assert!(!samples.is_empty(), "no readable sample: {report}");
        let seconds = |sample: &Value, key: &str| sample[key].as_f64().map(|ms| ms / 1000.0);
        let mut latencies: Vec<f64> = samples
            .iter()
            .filter_map(|s| seconds(s, "latencyMs"))
            .collect();
        let quarter = latencies.len().div_ceil(4);
        let first_quarter_p50 = percentile(&mut latencies[..quarter].to_vec(), 0.5);
        let last_quarter_p50 =
            percentile(&mut latencies[latencies.len() - quarter..].to_vec(), 0.5);
        let mut composite_to_screen: Vec<f64> = samples
            .iter()
            .filter_map(|s| seconds(s, "stampedMs"))
            .collect();
        let mut camera_to_composite: Vec<f64> = samples
            .iter()
            .filter_map(|s| Some(seconds(s, "latencyMs")? - seconds(s, "stampedMs")?))
            .collect();
        let mut hlsjs_edge: Vec<f64> = samples.iter().filter_map(|s| s["edgeS"].as_f64()).collect();
        let count = |key: &str| report[key].as_u64().unwrap_or(0);
        let errors = report["errors"].as_array().map_or(0, Vec::len);
        if errors > 0 {
            eprintln!("hls.js errors: {}", report["errors"]);
        }
        eprintln!(
            "rendition heights sampled: {}; camera layers at the end: {}",
            report["heights"], report["camera"]
        );
        Summary {
            p50: percentile(&mut latencies, 0.5),
            first_quarter_p50,
            last_quarter_p50,
            p90: percentile(&mut latencies, 0.9),
            min: latencies[0],
            max: latencies[latencies.len() - 1],
            camera_to_composite: percentile(&mut camera_to_composite, 0.5),
            composite_to_screen: percentile(&mut composite_to_screen, 0.5),
            hlsjs_edge: percentile(&mut hlsjs_edge, 0.5),
            samples: samples.len(),
            unreadable: count("unreadable"),
            waiting: count("waiting"),
            buffer_stalls: count("bufferStalls"),
            parts: count("parts"),
        }
    }

    fn line(&self) -> String {
        format!(
            "p50 {:.2} s (first quarter {:.2} s, last {:.2} s), p90 {:.2} s, min {:.2} s, \
             max {:.2} s; camera → composite {:.2} s, \
             composite → screen {:.2} s, hls.js edge {:.2} s ({} samples, {} unreadable, \
             {} waiting, {} buffer stalls, {} parts)",
            self.p50,
            self.first_quarter_p50,
            self.last_quarter_p50,
            self.p90,
            self.min,
            self.max,
            self.camera_to_composite,
            self.composite_to_screen,
            self.hlsjs_edge,
            self.samples,
            self.unreadable,
            self.waiting,
            self.buffer_stalls,
            self.parts
        )
    }
}

/// The value at `at` (0 to 1) of `values`, sorted in place; NaN when empty.
fn percentile(values: &mut [f64], at: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[((values.len() as f64 - 1.0) * at).round() as usize]
}
