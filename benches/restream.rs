//! `make bench`: the CPU cost of passthrough restreaming, Sluice against nginx-rtmp's `push`
//! doing the same, in one run on this machine.
//!
//! One 6 Mb/s 720p30 H.264 + AAC source (made here with the ffmpeg CLI) is published in real
//! time, stream-copied by `ffmpeg -re`, to a relay that forwards it to 0, 1, 4 and 16 targets,
//! all on one local nginx-rtmp sink that only receives (no recording). The relay is either
//! Sluice (a `source`-only ladder, so it packages HLS but encodes nothing, plus N simulcast
//! targets with `rendition: "source"`) or a second nginx-rtmp with N `push` directives. Each
//! side is measured in CPU seconds (user + system, from /proc, the nginx master and its
//! workers together) over the publish; the cost of restreaming is what N targets add over 0,
//! reported per target and per second of media, and as the ratio Sluice / nginx.
//!
//! Usage: `cargo bench --bench restream [-- SECONDS]` (default 20 s of media per run).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{free_port, process_cpu_seconds, run, BenchServer};

const TARGET_COUNTS: [usize; 4] = [0, 1, 4, 16];

/// The 6 Mb/s source: `seconds` of 720p30 testsrc2 with a sine tone, 2 s GOPs, CBR-like.
fn make_source(dir: &Path, seconds: u32) -> PathBuf {
    let path = dir.join("source-6mbps.flv");
    run(Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size=1280x720:rate=30:duration={seconds}"))
        .args(["-f", "lavfi", "-i"])
        .arg(format!(
            "sine=frequency=440:sample_rate=48000:duration={seconds}"
        ))
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-g", "60", "-bf", "0",
        ])
        .args([
            "-b:v", "6000k", "-minrate", "6000k", "-maxrate", "6000k", "-bufsize", "6000k",
        ])
        .args(["-x264-params", "nal-hrd=cbr", "-pix_fmt", "yuv420p"])
        .args(["-c:a", "aac", "-b:a", "128k"])
        .arg(&path));
    path
}

/// An nginx-rtmp server started with `scripts/test-nginx-rtmp.sh`, stopped on drop.
struct Nginx {
    dir: tempfile::TempDir,
    port: u16,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/test-nginx-rtmp.sh")
}

impl Nginx {
    fn start(pushes: &[String]) -> Nginx {
        let dir = tempfile::tempdir().expect("temporary directory");
        let port = free_port();
        run(Command::new(script())
            .arg("start")
            .arg(dir.path())
            .arg(port.to_string())
            .args(pushes)
            .env("RECORD", "off"));
        Nginx { dir, port }
    }

    /// CPU seconds of the master and its workers so far.
    fn cpu_seconds(&self) -> f64 {
        let master: u32 = std::fs::read_to_string(self.dir.path().join("nginx.pid"))
            .expect("nginx.pid")
            .trim()
            .parse()
            .expect("a pid");
        let children = std::fs::read_to_string(format!("/proc/{master}/task/{master}/children"))
            .unwrap_or_default();
        std::iter::once(master)
            .chain(
                children
                    .split_whitespace()
                    .filter_map(|pid| pid.parse().ok()),
            )
            .map(process_cpu_seconds)
            .sum()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

/// Publishes `source` in real time to `url`, stream-copied; returns once ffmpeg is done.
fn publish(source: &Path, url: &str) {
    run(Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-re", "-i"])
        .arg(source)
        .args(["-c", "copy", "-f", "flv", url]));
}

/// CPU seconds Sluice spends receiving the source and restreaming it to `targets` sinks.
fn sluice_run(source: &Path, sink: &Nginx, targets: usize, run_index: usize) -> f64 {
    let data = tempfile::tempdir().expect("temporary directory");
    let server = BenchServer::start_configured(
        data.path(),
        Some("[restream]\nallow_hosts = [\"127.0.0.1\"]\n"),
    );
    let stream = server.api(
        "/v1/live-streams",
        Some(r#"{"name": "bench", "ladder": ["source"]}"#),
    );
    let id = stream["data"]["id"].as_str().expect("a live stream");
    let key = stream["data"]["stream_key"].as_str().expect("a stream key");
    for index in 0..targets {
        let body = format!(
            r#"{{"url": "rtmp://127.0.0.1:{}/live", "stream_key": "sluice-{run_index}-{index}"}}"#,
            sink.port
        );
        let target = server.api(
            &format!("/v1/live-streams/{id}/simulcast-targets"),
            Some(&body),
        );
        assert!(
            target["data"]["id"].is_string(),
            "target not created: {target}"
        );
    }
    let before = process_cpu_seconds(server.pid());
    publish(
        source,
        &format!("rtmp://127.0.0.1:{}/live/{key}", server.rtmp_port),
    );
    // Let the session end and the targets flush.
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let status = server.api(&format!("/v1/live-streams/{id}"), None);
        if status["data"]["status"] == "idle" {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    if targets > 0 {
        let listed = server.api(&format!("/v1/live-streams/{id}/simulcast-targets"), None);
        for target in listed["data"].as_array().into_iter().flatten() {
            assert!(
                target["bytes_sent"].as_u64().unwrap_or(0) > 1_000_000,
                "a target received too little: {target}"
            );
        }
    }
    process_cpu_seconds(server.pid()) - before
}

/// CPU seconds nginx-rtmp spends receiving the source and pushing it to `targets` sinks.
fn nginx_run(source: &Path, sink: &Nginx, targets: usize, run_index: usize) -> f64 {
    let pushes: Vec<String> = (0..targets)
        .map(|index| {
            format!(
                "rtmp://127.0.0.1:{}/live/nginx-{run_index}-{index}",
                sink.port
            )
        })
        .collect();
    let relay = Nginx::start(&pushes);
    let before = relay.cpu_seconds();
    publish(
        source,
        &format!("rtmp://127.0.0.1:{}/live/bench", relay.port),
    );
    std::thread::sleep(Duration::from_secs(1));
    relay.cpu_seconds() - before
}

fn main() {
    let seconds: u32 = std::env::args()
        .skip(1)
        .find_map(|arg| arg.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().expect("temporary directory");
    let source = make_source(dir.path(), seconds);
    let sink = Nginx::start(&[]);
    let media = f64::from(seconds);
    println!("Restreaming one 6 Mb/s 720p30 source, {seconds} s of media per run.\n");
    println!("| targets | Sluice CPU s | nginx-rtmp CPU s | Sluice per target (CPU ms per media s) | nginx per target (CPU ms per media s) | ratio Sluice/nginx per target |");
    println!("|---:|---:|---:|---:|---:|---:|");
    let mut baseline = None;
    for (run_index, &targets) in TARGET_COUNTS.iter().enumerate() {
        let sluice = sluice_run(&source, &sink, targets, run_index);
        let nginx = nginx_run(&source, &sink, targets, run_index);
        let (sluice_zero, nginx_zero) = *baseline.get_or_insert((sluice, nginx));
        if targets == 0 {
            println!("| 0 (baseline) | {sluice:.2} | {nginx:.2} | – | – | – |");
            continue;
        }
        let per_target =
            |cpu: f64, zero: f64| (cpu - zero).max(0.0) / targets as f64 / media * 1000.0;
        let sluice_each = per_target(sluice, sluice_zero);
        let nginx_each = per_target(nginx, nginx_zero);
        let ratio = if nginx_each > 0.0 {
            format!("{:.2}", sluice_each / nginx_each)
        } else {
            "n/a".to_owned()
        };
        println!(
            "| {targets} | {sluice:.2} | {nginx:.2} | {sluice_each:.1} | {nginx_each:.1} | {ratio} |"
        );
    }
}
