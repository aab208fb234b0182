//! `cargo bench --bench rooms [-- RUN…]`: what forwarding real-time room media costs the
//! server, what subscribers receive, and how long a join takes to the first remote frame.
//! Results in docs/BENCHMARKS.md ("Rooms").
//!
//! The release server (`sluice serve`, rooms announcing 127.0.0.1 on a free UDP port) and one
//! headless Chromium (`benches/node/rooms.mjs`, one browser context per participant, joining
//! through the server's join page with LiveKit's client SDK and Chromium's fake camera and
//! microphone) share this machine. Runs, given as arguments (default:
//! `0 1 5 10 large:1 large:5 mesh:6 mesh:6@360 join:10`):
//!
//! - `N`: one publisher (camera at the SDK's default 1280x720 with its default simulcast, and
//!   microphone) and N subscribe-only participants, whose join page shows the publisher in a
//!   small grid tile (adaptive stream asks for the layer that tile needs). `0` is the publisher
//!   alone: what receiving its layers costs, without forwarding.
//! - `large:N`: the same with the publisher's tile 1280 px wide in every subscriber's page.
//! - `mesh:N[@HEIGHT]`: N participants that all publish and subscribe; `@360` asks the fake
//!   camera for 640x360 instead of 1280x720.
//! - `join:K`: one publisher; K subscribe-only joins one after the other, each in a fresh
//!   context, from opening the join URL (t0) to its signal connection, room connection, the
//!   publisher's video subscribed, and the first decoded frame of it (polled every 20 ms).
//!
//! Forwarding runs wait until every participant decodes every other publisher's video and
//! receives its audio, let it settle (`--settle S`, default 8 s), then measure a window
//! (`--seconds S`, default 30): the server process's user + system CPU (`/proc/PID/stat`),
//! the browser's (every process below the node driver) and the machine's busy time
//! (`/proc/stat`), and from each receiver's `getStats()` at both ends of the window, per remote
//! track, packets received and lost, frames decoded, the size received, jitter buffer delay,
//! and the selected candidate pair's round-trip time; and what each publisher sends (its
//! outbound-rtp per simulcast layer, with the encoder's quality limitation, and its bandwidth
//! estimate). A forwarded stream-second is one remote track received by one participant for
//! one second; CPU per stream-second is the server's CPU over the window divided by (tracks
//! received × window). `--nice-browser N` runs node and Chromium at niceness N, so that the
//! server is served first when the machine is saturated.
//!
//! Usage: `cargo bench --bench rooms [-- 1 5 10 25 mesh:6@360 join:10 --seconds 30]` (needs
//! Node.js with tests/node's playwright-core, and Chromium: `scripts/install-deps.sh test`).

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use common::{num_cores, process_cpu_seconds, BenchServer};
use serde_json::{json, Value};

const ROOMS_CONFIG: &str = "[rooms]\npublic_ip = \"127.0.0.1\"\nudp_port = 0\n";
const DEFAULT_RUNS: &str = "0 1 5 10 large:1 large:5 mesh:6 mesh:6@360 join:10";
/// Longest wait for the next line of the browser script (joins of many pages included).
const LINE_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, Clone)]
enum Run {
    Forward {
        subscribers: usize,
        large: bool,
    },
    Mesh {
        participants: usize,
        height: Option<u32>,
    },
    Join {
        joins: usize,
    },
}

impl Run {
    fn parse(arg: &str) -> Run {
        let number = |s: &str| -> usize {
            s.parse()
                .unwrap_or_else(|_| panic!("{arg}: expected N, large:N, mesh:N[@HEIGHT] or join:K"))
        };
        if let Some(rest) = arg.strip_prefix("large:") {
            Run::Forward {
                subscribers: number(rest),
                large: true,
            }
        } else if let Some(rest) = arg.strip_prefix("mesh:") {
            let (count, height) = match rest.split_once('@') {
                Some((count, height)) => (count, Some(number(height) as u32)),
                None => (rest, None),
            };
            Run::Mesh {
                participants: number(count),
                height,
            }
        } else if let Some(rest) = arg.strip_prefix("join:") {
            Run::Join {
                joins: number(rest),
            }
        } else {
            Run::Forward {
                subscribers: number(arg),
                large: false,
            }
        }
    }

    fn label(&self) -> String {
        match self {
            Run::Forward { subscribers: 0, .. } => "1 publisher alone".to_owned(),
            Run::Forward { subscribers, large } => format!(
                "1 publisher → {subscribers} subscriber{}, {}",
                if *subscribers == 1 { "" } else { "s" },
                if *large {
                    "1280 px tile"
                } else {
                    "small tiles"
                }
            ),
            Run::Mesh {
                participants,
                height,
            } => format!(
                "{participants}-person room, all publish at {}",
                match height {
                    Some(h) => format!("{}x{h}", h * 16 / 9),
                    None => "1280x720".to_owned(),
                }
            ),
            Run::Join { joins } => format!("{joins} joins"),
        }
    }
}

struct Options {
    runs: Vec<Run>,
    window: Duration,
    settle: Duration,
    /// Niceness of the browser (node and Chromium), so that the server is served first.
    nice_browser: i32,
}

fn options() -> Options {
    let mut runs = Vec::new();
    let (mut window, mut settle) = (Duration::from_secs(30), Duration::from_secs(8));
    let mut nice_browser = 0;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let seconds = |value: Option<String>| {
            Duration::from_secs_f64(value.and_then(|v| v.parse().ok()).expect("seconds"))
        };
        match arg.as_str() {
            "--seconds" => window = seconds(args.next()),
            "--settle" => settle = seconds(args.next()),
            "--nice-browser" => {
                nice_browser = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--nice-browser N (0 to 19)")
            }
            "--bench" => {}
            other if other.starts_with('-') => panic!("unknown option {other}"),
            other => runs.push(Run::parse(other)),
        }
    }
    if runs.is_empty() {
        runs = DEFAULT_RUNS.split_whitespace().map(Run::parse).collect();
    }
    Options {
        runs,
        window,
        settle,
        nice_browser,
    }
}

/// User + system CPU seconds of `root` and every process below it.
fn tree_cpu(root: u32) -> HashMap<u32, f64> {
    let mut parent_of = HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parent_of.insert(pid, ppid);
        }
    }
    let mut tree = HashSet::from([root]);
    loop {
        let before = tree.len();
        for (pid, ppid) in &parent_of {
            if tree.contains(ppid) {
                tree.insert(*pid);
            }
        }
        if tree.len() == before {
            break;
        }
    }
    tree.into_iter()
        .map(|pid| (pid, process_cpu_seconds(pid)))
        .collect()
}

/// (busy, total) jiffies of the whole machine, from /proc/stat.
fn machine_jiffies() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let get = |i: usize| fields.get(i).copied().unwrap_or(0.0);
    // user nice system idle iowait irq softirq steal
    let busy = get(0) + get(1) + get(2) + get(5) + get(6) + get(7);
    (busy, busy + get(3) + get(4))
}

/// Where the window's counters stood.
struct Snapshot {
    at: Instant,
    server: f64,
    browser: HashMap<u32, f64>,
    machine: (f64, f64),
}

impl Snapshot {
    fn take(server: u32, driver: u32) -> Snapshot {
        Snapshot {
            at: Instant::now(),
            server: process_cpu_seconds(server),
            browser: tree_cpu(driver),
            machine: machine_jiffies(),
        }
    }
}

/// The browser script, in its own process group (so Chromium goes with it).
struct Browser {
    child: Child,
    lines: Receiver<String>,
    _scenario: tempfile::NamedTempFile,
}

impl Browser {
    fn start(scenario: &Value, nice: i32) -> Browser {
        let file = tempfile::NamedTempFile::new().expect("scenario file");
        std::fs::write(file.path(), scenario.to_string()).expect("write scenario");
        // `nice` execs node: the child's pid is node's.
        let mut child = Command::new("nice")
            .args(["-n", &nice.to_string(), "node"])
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/benches/node/rooms.mjs"))
            .arg(file.path())
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("node benches/node/rooms.mjs (needs Node.js, tests/node's playwright-core and Chromium: scripts/install-deps.sh test)");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Browser {
            child,
            lines,
            _scenario: file,
        }
    }

    /// The next report line, or why there is none.
    fn next(&mut self) -> Result<Value, String> {
        loop {
            let line = match self.lines.recv_timeout(LINE_TIMEOUT) {
                Ok(line) => line,
                Err(RecvTimeoutError::Timeout) => return Err("the browser script timed out".into()),
                Err(RecvTimeoutError::Disconnected) => {
                    return Err("the browser script ended early".into())
                }
            };
            // Lines that are not reports (a library's own output) are passed through.
            match serde_json::from_str::<Value>(line.trim()) {
                Ok(report) if report.get("step").is_some() => {
                    if report["step"] == "failed" {
                        // The error and the last lines the pages logged.
                        let console: Vec<&str> = report["console"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(Value::as_str)
                            .collect();
                        let tail = &console[console.len().saturating_sub(8)..];
                        return Err(format!(
                            "{}\n  pages logged last: {}",
                            report["error"].as_str().unwrap_or_default(),
                            tail.join("\n  ")
                        ));
                    }
                    return Ok(report);
                }
                _ => eprintln!("browser: {line}"),
            }
        }
    }

    fn until(&mut self, step: &str) -> Result<Value, String> {
        loop {
            let report = self.next()?;
            if report["step"] == step {
                return Ok(report);
            }
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let pgid = self.child.id() as libc::pid_t;
        // Let node close Chromium itself, then make sure the whole group is gone.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // SAFETY: signals the process group this bench started (its leader is our child).
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

fn create_room(server: &BenchServer, name: &str) -> String {
    let created = server.api(
        "/v1/rooms",
        Some(&json!({"name": name, "empty_timeout_s": 2}).to_string()),
    );
    created["data"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("room not created: {created}"))
        .to_owned()
}

fn token(server: &BenchServer, room: &str, identity: &str, publishes: bool) -> String {
    let minted = server.api(
        &format!("/v1/rooms/{room}/tokens"),
        Some(&json!({"identity": identity, "can_publish": publishes}).to_string()),
    );
    minted["data"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token: {minted}"))
        .to_owned()
}

fn percentile(values: &[f64], at: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((sorted.len() as f64 - 1.0) * at).round() as usize]
}

/// What one forwarding run measured.
#[derive(Debug, Default, Clone)]
struct Forwarding {
    label: String,
    publishers: usize,
    receivers: usize,
    tracks_received: usize,
    window_s: f64,
    server_cores: f64,
    browser_cores: f64,
    machine_cores: f64,
    cpu_per_stream_second: f64,
    /// Packets and kilobits per second all receivers got, all tracks together.
    packets_per_s: f64,
    received_kbps: f64,
    layers: String,
    decoded_fps: f64,
    video_kbps: f64,
    video_loss: f64,
    audio_loss: f64,
    freezes: f64,
    video_jitter_buffer_ms: f64,
    audio_jitter_buffer_ms: f64,
    rtt_ms: f64,
    publisher_rtt_ms: f64,
    sent: String,
}

fn delta(after: &Value, before: &Value, key: &str) -> f64 {
    after[key].as_f64().unwrap_or(0.0) - before[key].as_f64().unwrap_or(0.0)
}

/// Summarises a forwarding run from the script's result and the two snapshots.
fn summarise(label: String, result: &Value, start: &Snapshot, end: &Snapshot) -> Forwarding {
    let window_s = end.at.duration_since(start.at).as_secs_f64();
    let server_cpu = end.server - start.server;
    let browser_cpu: f64 = end
        .browser
        .iter()
        .map(|(pid, cpu)| cpu - start.browser.get(pid).copied().unwrap_or(0.0))
        .sum();
    let machine = (end.machine.0 - start.machine.0) / (end.machine.1 - start.machine.1).max(1.0)
        * num_cores() as f64;

    let mut out = Forwarding {
        label,
        window_s,
        server_cores: server_cpu / window_s,
        browser_cores: browser_cpu / window_s,
        machine_cores: machine,
        ..Forwarding::default()
    };
    let (mut video, mut audio) = ((0.0, 0.0), (0.0, 0.0));
    let (mut video_jb, mut audio_jb) = ((0.0, 0.0), (0.0, 0.0));
    let (mut fps, mut kbps, mut rtts) = (Vec::new(), Vec::new(), Vec::new());
    let mut sizes: BTreeMap<String, usize> = BTreeMap::new();
    let receivers = result["receivers"].as_array().cloned().unwrap_or_default();
    out.receivers = receivers.len();
    for receiver in &receivers {
        let before = receiver["before"]["tracks"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for after in receiver["after"]["tracks"].as_array().into_iter().flatten() {
            let Some(before) = before
                .iter()
                .find(|b| b["from"] == after["from"] && b["kind"] == after["kind"])
            else {
                continue;
            };
            let received = delta(after, before, "packetsReceived");
            if received <= 0.0 {
                continue;
            }
            out.tracks_received += 1;
            let lost = delta(after, before, "packetsLost").max(0.0);
            let seconds = delta(after, before, "timestamp") / 1000.0;
            out.packets_per_s += (received + lost) / seconds;
            out.received_kbps += delta(after, before, "bytesReceived") * 8.0 / 1000.0 / seconds;
            let jb = (
                delta(after, before, "jitterBufferDelay"),
                delta(after, before, "jitterBufferEmittedCount"),
            );
            if let Some(rtt) = after["rtt"].as_f64() {
                rtts.push(rtt * 1000.0);
            }
            if after["kind"] == "video" {
                video = (video.0 + received, video.1 + lost);
                video_jb = (video_jb.0 + jb.0, video_jb.1 + jb.1);
                fps.push(delta(after, before, "framesDecoded") / seconds);
                kbps.push(delta(after, before, "bytesReceived") * 8.0 / 1000.0 / seconds);
                out.freezes += delta(after, before, "freezeCount");
                *sizes
                    .entry(format!("{}x{}", after["frameWidth"], after["frameHeight"]))
                    .or_default() += 1;
            } else {
                audio = (audio.0 + received, audio.1 + lost);
                audio_jb = (audio_jb.0 + jb.0, audio_jb.1 + jb.1);
            }
        }
    }
    out.cpu_per_stream_second = server_cpu / (out.tracks_received as f64 * window_s);
    out.video_loss = video.1 / (video.0 + video.1).max(1.0);
    out.audio_loss = audio.1 / (audio.0 + audio.1).max(1.0);
    out.video_jitter_buffer_ms = 1000.0 * video_jb.0 / video_jb.1.max(1.0);
    out.audio_jitter_buffer_ms = 1000.0 * audio_jb.0 / audio_jb.1.max(1.0);
    out.decoded_fps = percentile(&fps, 0.5);
    out.video_kbps = percentile(&kbps, 0.5);
    out.rtt_ms = percentile(&rtts, 0.5);
    out.layers = sizes
        .iter()
        .map(|(size, count)| format!("{size} ×{count}"))
        .collect::<Vec<_>>()
        .join(", ");
    let publishers = result["publishers"].as_array().cloned().unwrap_or_default();
    out.publishers = publishers.len();
    let (mut publisher_rtts, mut estimates) = (Vec::new(), Vec::new());
    let mut sent = BTreeMap::<String, usize>::new();
    for publisher in &publishers {
        if let Some(rtt) = publisher["rtt"].as_f64() {
            publisher_rtts.push(rtt * 1000.0);
        }
        if let Some(estimate) = publisher["availableOutgoingBitrate"].as_f64() {
            estimates.push(estimate / 1000.0);
        }
        let mut layers: Vec<&Value> = publisher["layers"]
            .as_array()
            .into_iter()
            .flatten()
            .collect();
        layers.sort_by_key(|l| l["width"].as_u64().unwrap_or(0));
        let described = layers
            .iter()
            .filter(|l| l["width"].as_u64().is_some())
            .map(|l| {
                let limitation = l["limitation"].as_str().unwrap_or("none");
                format!(
                    "{}x{}@{:.0}{}",
                    l["width"],
                    l["height"],
                    l["fps"].as_f64().unwrap_or(0.0),
                    if limitation == "none" {
                        String::new()
                    } else {
                        format!(" ({limitation})")
                    }
                )
            })
            .collect::<Vec<_>>()
            .join(" + ");
        *sent.entry(described).or_default() += 1;
    }
    out.publisher_rtt_ms = percentile(&publisher_rtts, 0.5);
    out.sent = sent
        .iter()
        .map(|(layers, count)| {
            if publishers.len() > 1 {
                format!("{layers} ×{count}")
            } else {
                layers.clone()
            }
        })
        .collect::<Vec<_>>()
        .join("; ");
    if !estimates.is_empty() {
        out.sent = format!(
            "{}; bandwidth estimate {:.0} kb/s{}",
            out.sent,
            percentile(&estimates, 0.5),
            if estimates.len() > 1 { " (median)" } else { "" }
        );
    }
    out
}

fn print_forwarding(f: &Forwarding) {
    println!(
        "{}: {} receivers, {} tracks received, {:.1} s, {:.0} packets/s and {:.0} kb/s forwarded; \
         server {:.3} cores = {:.5} CPU-s per stream-second; Chromium {:.2} cores, machine {:.2} of {} cores busy",
        f.label, f.receivers, f.tracks_received, f.window_s, f.packets_per_s, f.received_kbps,
        f.server_cores, f.cpu_per_stream_second, f.browser_cores, f.machine_cores, num_cores()
    );
    println!(
        "  received video {} at {:.1} fps (median), {:.0} kb/s; loss video {:.3} % audio {:.3} %; freezes {}; \
         jitter buffer video {:.1} ms audio {:.1} ms; RTT subscriber {:.1} ms publisher {:.1} ms",
        f.layers, f.decoded_fps, f.video_kbps, 100.0 * f.video_loss, 100.0 * f.audio_loss, f.freezes,
        f.video_jitter_buffer_ms, f.audio_jitter_buffer_ms, f.rtt_ms, f.publisher_rtt_ms
    );
    println!("  publisher sends {}", f.sent);
}

fn forwarding_run(
    server: &BenchServer,
    options: &Options,
    index: usize,
    run: &Run,
) -> Result<Forwarding, String> {
    let room = create_room(server, &format!("bench-{index}"));
    let (publishers, subscribers, large, height) = match *run {
        Run::Forward { subscribers, large } => (1, subscribers, large, None),
        Run::Mesh {
            participants,
            height,
        } => (participants, 0, false, height),
        Run::Join { .. } => unreachable!(),
    };
    let scenario = json!({
        "mode": "forward",
        "joinUrl": format!("{}/rooms/{room}/join", server.base),
        "publishers": (0..publishers).map(|i| token(server, &room, &format!("pub-{i}"), true)).collect::<Vec<_>>(),
        "subscribers": (0..subscribers).map(|i| token(server, &room, &format!("sub-{i}"), false)).collect::<Vec<_>>(),
        "resolution": height.map(|h| json!({"width": h * 16 / 9, "height": h})),
        "large": large,
        "settleMs": options.settle.as_millis() as u64,
        "windowMs": options.window.as_millis() as u64,
    });
    let mut browser = Browser::start(&scenario, options.nice_browser);
    let joined = browser.until("joined")?;
    let media = browser.until("media")?;
    eprintln!(
        "{}: {} joined in {} ms, media flowing {} ms later",
        run.label(),
        joined["participants"],
        joined["ms"],
        media["ms"]
    );
    browser.until("window-start")?;
    let start = Snapshot::take(server.pid(), browser.child.id());
    browser.until("window-end")?;
    let end = Snapshot::take(server.pid(), browser.child.id());
    let result = browser.until("result")?;
    browser.until("done")?;
    Ok(summarise(run.label(), &result, &start, &end))
}

/// Per join, milliseconds from t0 to: the page's Room made (page and SDK loaded), signal
/// connected, room connected, video subscribed, first frame.
type Joins = Vec<[Option<f64>; 5]>;

fn join_run(
    server: &BenchServer,
    options: &Options,
    index: usize,
    joins: usize,
) -> Result<Joins, String> {
    let room = create_room(server, &format!("bench-{index}"));
    let scenario = json!({
        "mode": "join",
        "joinUrl": format!("{}/rooms/{room}/join", server.base),
        "publishers": [token(server, &room, "pub-0", true)],
        "joins": (0..joins).map(|i| token(server, &room, &format!("join-{i}"), false)).collect::<Vec<_>>(),
        "settleMs": options.settle.as_millis() as u64,
    });
    let mut browser = Browser::start(&scenario, options.nice_browser);
    let mut out = Vec::new();
    for _ in 0..joins {
        let join = browser.until("join")?;
        println!(
            "join {}: page script {} ms, signal connected {} ms, room connected {} ms, video subscribed {} ms, first frame {} ms",
            join["index"], join["pageMs"], join["signalMs"], join["connectedMs"], join["subscribedMs"], join["firstFrameMs"]
        );
        out.push(
            [
                "pageMs",
                "signalMs",
                "connectedMs",
                "subscribedMs",
                "firstFrameMs",
            ]
            .map(|k| join[k].as_f64()),
        );
    }
    browser.until("done")?;
    Ok(out)
}

fn main() {
    let options = options();
    println!(
        "rooms bench: {} cores, window {:.0} s after {:.0} s of settling",
        num_cores(),
        options.window.as_secs_f64(),
        options.settle.as_secs_f64()
    );
    let work = tempfile::tempdir().expect("temporary directory");
    let server = BenchServer::start_configured(&work.path().join("data"), Some(ROOMS_CONFIG));

    let mut forwarding: Vec<Forwarding> = Vec::new();
    let mut failed: Vec<(String, String)> = Vec::new();
    let mut joins: Option<(usize, Joins)> = None;
    for (index, run) in options.runs.iter().enumerate() {
        eprintln!("== {}", run.label());
        match run {
            Run::Join { joins: count } => match join_run(&server, &options, index, *count) {
                Ok(measured) => joins = Some((*count, measured)),
                Err(e) => failed.push((run.label(), e)),
            },
            _ => match forwarding_run(&server, &options, index, run) {
                Ok(measured) => {
                    print_forwarding(&measured);
                    forwarding.push(measured);
                }
                Err(e) => {
                    eprintln!("{}: failed: {e}", run.label());
                    failed.push((run.label(), e));
                }
            },
        }
        // Let the room's participants leave and the machine calm down before the next run.
        std::thread::sleep(Duration::from_secs(3));
    }

    let alone = forwarding
        .iter()
        .find(|f| f.publishers == 1 && f.receivers == 0)
        .map(|f| f.server_cores);
    if !forwarding.is_empty() {
        println!("\n| run | streams forwarded | packets/s out | Mb/s out | server CPU (cores) | server CPU-s per stream-second | above the publisher alone, per stream-second | server CPU per packet out (µs) | Chromium (cores) | other processes (cores) | machine busy (cores of {}) |", num_cores());
        println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        for f in &forwarding {
            let (per, marginal, per_packet) = if f.tracks_received == 0 {
                ("–".to_owned(), "–".to_owned(), "–".to_owned())
            } else {
                (
                    format!("{:.5}", f.cpu_per_stream_second),
                    alone.map_or("–".to_owned(), |a| {
                        format!("{:.5}", (f.server_cores - a) / f.tracks_received as f64)
                    }),
                    format!("{:.1}", 1e6 * f.server_cores / f.packets_per_s),
                )
            };
            println!(
                "| {} | {} | {:.0} | {:.2} | {:.3} | {per} | {marginal} | {per_packet} | {:.2} | {:.2} | {:.2} |",
                f.label, f.tracks_received, f.packets_per_s, f.received_kbps / 1000.0, f.server_cores,
                f.browser_cores, (f.machine_cores - f.server_cores - f.browser_cores).max(0.0), f.machine_cores
            );
        }
        println!("\n| run | video received (tracks) | decoded fps (median) | video kb/s (median) | packet loss video / audio | freezes | jitter buffer video / audio (ms) | RTT subscriber / publisher (ms) | publisher sends |");
        println!("| --- | --- | ---: | ---: | --- | ---: | --- | --- | --- |");
        for f in forwarding.iter().filter(|f| f.tracks_received > 0) {
            println!(
                "| {} | {} | {:.1} | {:.0} | {:.3} % / {:.3} % | {} | {:.1} / {:.1} | {:.1} / {:.1} | {} |",
                f.label, f.layers, f.decoded_fps, f.video_kbps, 100.0 * f.video_loss, 100.0 * f.audio_loss,
                f.freezes, f.video_jitter_buffer_ms, f.audio_jitter_buffer_ms, f.rtt_ms, f.publisher_rtt_ms,
                f.sent
            );
        }
    }
    if let Some((count, measured)) = joins {
        println!("\n| {count} joins, from opening the join URL | p50 (ms) | p90 (ms) | min (ms) | max (ms) |");
        println!("| --- | ---: | ---: | ---: | ---: |");
        for (column, name) in [
            "the page has the SDK's Room (page and SDK loaded)",
            "signal connected (RoomEvent.SignalConnected)",
            "room connected (RoomEvent.Connected)",
            "publisher's video subscribed",
            "**first remote frame decoded**",
        ]
        .iter()
        .enumerate()
        {
            let values: Vec<f64> = measured.iter().filter_map(|j| j[column]).collect();
            println!(
                "| {name} | {:.0} | {:.0} | {:.0} | {:.0} |",
                percentile(&values, 0.5),
                percentile(&values, 0.9),
                percentile(&values, 0.0),
                percentile(&values, 1.0)
            );
        }
    }
    for (label, error) in &failed {
        println!("\n{label}: did not complete: {error}");
    }
}
