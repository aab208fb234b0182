//! `cargo bench --bench latency [-- SECONDS [MODES]]`: ingest-to-display latency in hls.js, for
//! each latency mode (`standard`, `reduced`, `low`; MODES, comma-separated, picks some) with
//! the default transcoded ladder and with a passthrough (`source`) ladder, and for nginx-rtmp's
//! HLS fed the same stream in the same run. Results in docs/BENCHMARKS.md.
//!
//! The publisher is ffmpeg (`-re`, 854x480 at 30 fps, x264 with a key frame every second and
//! no B-frames, AAC) drawing its media time into a strip along the top of each frame (20 black
//! or white blocks: the time in hundredths of a second). Each configuration is published for
//! SECONDS (default 120) plus a start, and watched meanwhile by hls.js in headless Chromium
//! (`tests/node/live_latency.mjs`) with its default settings (low-latency mode on, no catch-up
//! playback rate); a `low` stream is then watched SECONDS more with catch-up on (hls.js may
//! play up to 1.5 times as fast to reach its target latency, as low-latency pages set it).
//!
//! Latency is sampled every 500 ms: for Sluice, the wall clock minus the program date time of
//! the frame on screen (Sluice stamps EXT-X-PROGRAM-DATE-TIME with the arrival time of the
//! media); for nginx-rtmp, whose playlists have no program date time, the wall clock minus
//! the arrival time of the frame on screen, read from its time strip and placed on the wall
//! clock by Sluice's stamps of the same frames (one ffmpeg feeds both servers, through its
//! `tee` muxer). The first 20 s of each watch (start-up) are left out; p50 and p90 of the rest
//! are reported with the stalls counted.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{free_port, BenchServer};
use serde_json::{json, Value};

/// Seconds of each watch left out as start-up.
const START_UP_S: f64 = 20.0;
const SIZE: &str = "854x480";

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with('-'))
        .collect();
    let seconds: u64 = args
        .first()
        .map(|arg| arg.parse().expect("SECONDS is a whole number"))
        .unwrap_or(120);
    let modes: Vec<&str> = args
        .get(1)
        .map_or(vec!["standard", "reduced", "low"], |modes| {
            modes.split(',').collect()
        });
    assert!(seconds > 30, "watch for more than 30 s");
    let work = tempfile::tempdir().expect("temporary directory");
    let server = BenchServer::start(&work.path().join("data"));
    let nginx_dir = work.path().join("nginx");
    let (nginx_rtmp, nginx_http) = (free_port(), free_port());
    common::run(
        Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/test-nginx-rtmp.sh"))
            .arg("start")
            .arg(&nginx_dir)
            .arg(nginx_rtmp.to_string())
            .env("RECORD", "off")
            .env("HLS_HTTP_PORT", nginx_http.to_string()),
    );

    let mut rows = Vec::new();
    for ladder in ["default", "source"] {
        for &mode in &modes {
            // nginx-rtmp watches the same stream as the passthrough standard run.
            let with_nginx = ladder == "source" && mode == "standard";
            let mut body = json!({"name": format!("{mode} {ladder}"), "latency_mode": mode});
            if ladder == "source" {
                body["ladder"] = json!(["source"]);
            }
            let stream = server.api("/v1/live-streams", Some(&body.to_string()));
            let key = stream["data"]["stream_key"].as_str().expect("stream key");
            let playback_id = stream["data"]["playback_ids"][0]["id"]
                .as_str()
                .expect("playback id");
            let mut outputs = vec![format!("rtmp://127.0.0.1:{}/live/{key}", server.rtmp_port)];
            if with_nginx {
                outputs.push(format!("rtmp://127.0.0.1:{nginx_rtmp}/live/{key}"));
            }
            let catch_up = mode == "low";
            let watches = if catch_up { 2 } else { 1 };
            let mut publisher = publish(&outputs, watches * seconds + 40);
            let master = format!("{}/hls/{playback_id}/master.m3u8", server.base);
            wait_until_ok(&master);
            let nginx = with_nginx.then(|| {
                let url = format!("http://127.0.0.1:{nginx_http}/hls/{key}.m3u8");
                wait_until_ok(&url);
                spawn_watch(&url, seconds, true, false)
            });
            let sluice = watch(spawn_watch(&master, seconds, with_nginx, false));
            let sluice_summary = summarise(&sluice, None);
            println!("{mode} / {ladder}: {}", sluice_summary.line());
            rows.push((format!("Sluice `{mode}`, {ladder} ladder"), sluice_summary));
            if catch_up {
                let report = watch(spawn_watch(&master, seconds, false, true));
                let summary = summarise(&report, None);
                println!("{mode} / {ladder}, catch-up: {}", summary.line());
                rows.push((
                    format!("Sluice `{mode}`, {ladder} ladder, hls.js catch-up on"),
                    summary,
                ));
            }
            let _ = publisher.kill();
            let _ = publisher.wait();
            if let Some(nginx) = nginx {
                let nginx = watch(nginx);
                let origin = media_origin(&sluice);
                let nginx_summary = summarise(&nginx, Some(origin));
                println!("nginx-rtmp HLS: {}", nginx_summary.line());
                rows.push(("nginx-rtmp HLS (1 s fragments)".to_owned(), nginx_summary));
            }
        }
    }
    common::run(
        Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/test-nginx-rtmp.sh"))
            .arg("stop")
            .arg(&nginx_dir),
    );
    println!("\n| stream | p50 (s) | p90 (s) | samples | stalls | LL-HLS parts loaded |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (name, summary) in rows {
        println!(
            "| {name} | {:.2} | {:.2} | {} | {} | {} |",
            summary.p50, summary.p90, summary.samples, summary.stalls, summary.parts
        );
    }
}

/// ffmpeg publishing the time-stamped test picture and a tone to every RTMP URL in `outputs`.
fn publish(outputs: &[String], seconds: u64) -> Child {
    let strip = "color=c=black:s=427x40:r=30,format=yuv420p,\
        geq=lum='255*mod(floor(floor(T*100+0.5)/pow(2\\,floor(X*20/W)))\\,2)':cb=128:cr=128[strip];\
        [0:v][strip]overlay=0:0:shortest=1[v]";
    let output = match outputs {
        [one] => vec!["-f".to_owned(), "flv".to_owned(), one.clone()],
        many => vec![
            "-f".to_owned(),
            "tee".to_owned(),
            many.iter()
                .map(|url| format!("[f=flv:onfail=ignore]{url}"))
                .collect::<Vec<_>>()
                .join("|"),
        ],
    };
    Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg(format!("testsrc2=size={SIZE}:rate=30:duration={seconds}"))
        .args(["-re", "-f", "lavfi", "-i"])
        .arg(format!(
            "sine=frequency=440:sample_rate=48000:duration={seconds}"
        ))
        .args(["-filter_complex", strip, "-map", "[v]", "-map", "1:a"])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-tune",
            "zerolatency",
        ])
        .args([
            "-g", "30", "-bf", "0", "-b:v", "2000k", "-pix_fmt", "yuv420p",
        ])
        .args(["-c:a", "aac", "-b:a", "128k", "-flags", "+global_header"])
        .args(output)
        .stdin(Stdio::null())
        .spawn()
        .expect("start ffmpeg")
}

/// Polls `url` until it answers 200 (the stream's first playlist exists).
fn wait_until_ok(url: &str) {
    for _ in 0..600 {
        if common::curl(&["-o", "/dev/null", "-w", "%{http_code}", url]) == "200" {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{url} never answered");
}

fn spawn_watch(url: &str, seconds: u64, timecode: bool, catch_up: bool) -> Child {
    let mut command = Command::new("node");
    command
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/node/live_latency.mjs"
        ))
        .args(["hlsjs", url, &seconds.to_string()]);
    if timecode {
        command.arg("timecode");
    }
    if catch_up {
        command.arg("catchup");
    }
    command
        .stdout(Stdio::piped())
        .spawn()
        .expect("node tests/node/live_latency.mjs (scripts/install-deps.sh test installs it)")
}

/// The watch's report.
fn watch(child: Child) -> Value {
    let output = child.wait_with_output().expect("player");
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("player report is not JSON ({e}): {stdout}"))
}

/// Where media time 0 of the publisher lies on the wall clock (ms), from a Sluice watch's
/// samples that have both a program date time and a time strip reading.
fn media_origin(report: &Value) -> f64 {
    let mut origins: Vec<f64> = samples(report)
        .filter_map(|(_, pdt, code)| Some(pdt? - code? * 1000.0))
        .collect();
    assert!(!origins.is_empty(), "no sample with both stamps: {report}");
    percentile(&mut origins, 0.5)
}

fn samples(report: &Value) -> impl Iterator<Item = (f64, Option<f64>, Option<f64>)> + '_ {
    report["samples"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|sample| {
            (
                sample["at"].as_f64().unwrap_or(0.0),
                sample["pdt"].as_f64(),
                sample["code"].as_f64(),
            )
        })
}

struct Summary {
    p50: f64,
    p90: f64,
    samples: usize,
    stalls: u64,
    parts: u64,
}

impl Summary {
    fn line(&self) -> String {
        format!(
            "p50 {:.2} s, p90 {:.2} s ({} samples, {} stalls, {} parts)",
            self.p50, self.p90, self.samples, self.stalls, self.parts
        )
    }
}

/// Latencies after start-up: from the program date times, or (with `origin`) from the time
/// strip placed on the wall clock.
fn summarise(report: &Value, origin: Option<f64>) -> Summary {
    let mut latencies: Vec<f64> = match origin {
        None => report["latencies"]
            .as_array()
            .expect("latencies")
            .iter()
            .filter_map(Value::as_f64)
            .collect(),
        Some(origin) => samples(report)
            .filter_map(|(at, _, code)| Some((at - origin) / 1000.0 - code?))
            .collect(),
    };
    // Samples every 500 ms: the first START_UP_S seconds of them are start-up.
    let skip = ((START_UP_S * 2.0) as usize).min(latencies.len());
    latencies.drain(..skip);
    assert!(!latencies.is_empty(), "no latency samples: {report}");
    Summary {
        p50: percentile(&mut latencies, 0.5),
        p90: percentile(&mut latencies, 0.9),
        samples: latencies.len(),
        stalls: report["stalls"].as_u64().unwrap_or(0),
        parts: report["parts"].as_u64().unwrap_or(0),
    }
}

fn percentile(values: &mut [f64], at: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let index = ((values.len() as f64 - 1.0) * at).round() as usize;
    values[index]
}
