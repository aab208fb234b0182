//! `make bench`: the live upload stage, measured on the real server.
//!
//! A 720p30 source (8 Mb/s H.264 + AAC, made once with the ffmpeg CLI) is published in real
//! time with `ffmpeg -re -stream_loop -1 -c copy -f flv` (publishers spend no encoding CPU) to
//! streams with the passthrough ladder `["source"]`, so the server's work is ingest, packaging
//! and uploading.
//!
//! 1. Segment upload latency: one stream for `--seconds`; the server's
//!    `sluice_live_segment_upload_seconds` histogram (segment complete → stored and listed in a
//!    stored playlist) gives the mean and the bucket holding the 99th percentile.
//! 2. Concurrent streams: 1, 2, 4, … streams at once (up to `--max-streams`), each round for
//!    `--seconds`. A round keeps up when no segment was refused, the 99th percentile of the
//!    round's upload latency is within one segment duration, and every stream listed a
//!    segment for each segment duration published (less the first and the last). The bench
//!    reports the largest round that kept up.
//!
//! Both run on the local filesystem store, then, when SLUICE_TEST_S3_SERVER names the s3s-fs
//! binary (`eval "$(scripts/test-s3.sh start)"`, as `make bench` does), again on S3: an s3s-fs
//! server of the bench's own on loopback.
//!
//! Usage: `cargo bench --bench segment_upload [-- --seconds 20 --max-streams 64]`.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{curl, looping_publisher, make_source, process_cpu_seconds, BenchServer};

/// The server's default segment duration.
const SEGMENT_SECONDS: f64 = 2.0;

fn argument(name: &str, default: u32) -> u32 {
    std::env::args()
        .skip_while(|arg| arg != name)
        .nth(1)
        .map_or(default, |text| {
            text.parse()
                .unwrap_or_else(|_| panic!("{name} takes a number"))
        })
}

/// The upload-latency histogram as scraped: sum, count and cumulative buckets.
#[derive(Clone, Default)]
struct Histogram {
    sum: f64,
    count: f64,
    /// (upper bound, cumulative count), in the order served (ascending bounds).
    buckets: Vec<(f64, f64)>,
}

impl Histogram {
    fn scrape(server: &BenchServer) -> (Histogram, f64) {
        let text = curl(&[&format!("{}/metrics", server.base)]);
        let mut histogram = Histogram::default();
        let mut refused = 0.0;
        for line in text.lines() {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let value: f64 = value.parse().unwrap_or(0.0);
            if series == "sluice_live_segment_upload_seconds_sum" {
                histogram.sum = value;
            } else if series == "sluice_live_segment_upload_seconds_count" {
                histogram.count = value;
            } else if series == "sluice_live_segments_refused_total" {
                refused = value;
            } else if let Some(bound) = series
                .strip_prefix("sluice_live_segment_upload_seconds_bucket{le=\"")
                .and_then(|rest| rest.strip_suffix("\"}"))
            {
                let bound = if bound == "+Inf" {
                    f64::INFINITY
                } else {
                    bound.parse().unwrap_or(f64::INFINITY)
                };
                histogram.buckets.push((bound, value));
            }
        }
        (histogram, refused)
    }

    /// What was observed since `earlier`.
    fn since(&self, earlier: &Histogram) -> Histogram {
        Histogram {
            sum: self.sum - earlier.sum,
            count: self.count - earlier.count,
            buckets: self
                .buckets
                .iter()
                .map(|(bound, count)| {
                    let before = earlier
                        .buckets
                        .iter()
                        .find(|(b, _)| b == bound)
                        .map_or(0.0, |(_, c)| *c);
                    (*bound, count - before)
                })
                .collect(),
        }
    }

    fn mean(&self) -> f64 {
        self.sum / self.count.max(1.0)
    }

    /// Upper bound of the bucket holding quantile `q`.
    fn quantile_bound(&self, q: f64) -> f64 {
        let rank = q * self.count;
        self.buckets
            .iter()
            .find(|(_, count)| *count >= rank)
            .map_or(f64::INFINITY, |(bound, _)| *bound)
    }
}

/// A publisher looping the source in real time with stream copy.
fn publish(server: &BenchServer, source: &std::path::Path, key: &str, seconds: u32) -> Child {
    looping_publisher(
        source,
        &format!("rtmp://127.0.0.1:{}/live/{key}", server.rtmp_port),
        Some(seconds),
    )
}

/// Creates `count` passthrough live streams: (id, stream key, playback id).
fn create_streams(server: &BenchServer, count: usize) -> Vec<(String, String, String)> {
    (0..count)
        .map(|index| {
            let body = format!(r#"{{"name": "bench {index}", "ladder": ["source"]}}"#);
            let stream = &server.api("/v1/live-streams", Some(&body))["data"];
            (
                stream["id"].as_str().expect("stream id").to_owned(),
                stream["stream_key"]
                    .as_str()
                    .expect("stream key")
                    .to_owned(),
                stream["playback_ids"][0]["id"]
                    .as_str()
                    .expect("playback id")
                    .to_owned(),
            )
        })
        .collect()
}

/// The last media sequence number listed by a stream's video playlist, plus one: how many
/// segments it has listed so far.
fn segments_listed(server: &BenchServer, playback_id: &str) -> u64 {
    let text = curl(&[&format!("{}/hls/{playback_id}/v0/index.m3u8", server.base)]);
    let first: u64 = text
        .lines()
        .find_map(|line| line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    let listed = text.matches("#EXTINF").count() as u64;
    first + listed
}

/// Waits until every stream is `idle` again (its session ended and its queue drained).
fn wait_idle(server: &BenchServer, streams: &[(String, String, String)]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    for (id, _, _) in streams {
        while server.api(&format!("/v1/live-streams/{id}"), None)["data"]["status"] != "idle" {
            assert!(Instant::now() < deadline, "stream {id} did not end");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

struct Round {
    streams: usize,
    /// Publishers that did not stream to the end (refused or cut off).
    failed_publishers: usize,
    latency: Histogram,
    refused: f64,
    fewest_segments: u64,
    expected_segments: u64,
    server_cpu_per_second: f64,
}

impl Round {
    fn kept_up(&self) -> bool {
        self.failed_publishers == 0
            && self.refused == 0.0
            && self.latency.quantile_bound(0.99) <= SEGMENT_SECONDS
            && self.fewest_segments >= self.expected_segments
    }
}

/// Publishes to `count` new streams at once for `seconds` and measures the round.
fn round(server: &BenchServer, source: &std::path::Path, count: usize, seconds: u32) -> Round {
    let streams = create_streams(server, count);
    let (before, refused_before) = Histogram::scrape(server);
    let cpu_before = process_cpu_seconds(server.pid());
    let started = Instant::now();
    let mut publishers: Vec<Child> = streams
        .iter()
        .map(|(_, key, _)| publish(server, source, key, seconds))
        .collect();
    let failed_publishers = publishers
        .iter_mut()
        .map(|publisher| publisher.wait().is_ok_and(|status| status.success()))
        .filter(|succeeded| !succeeded)
        .count();
    let wall = started.elapsed().as_secs_f64();
    let cpu = process_cpu_seconds(server.pid()) - cpu_before;
    wait_idle(server, &streams);
    let (after, refused_after) = Histogram::scrape(server);
    let fewest_segments = streams
        .iter()
        .map(|(_, _, playback_id)| segments_listed(server, playback_id))
        .min()
        .unwrap_or(0);
    Round {
        streams: count,
        failed_publishers,
        latency: after.since(&before),
        refused: refused_after - refused_before,
        fewest_segments,
        expected_segments: (f64::from(seconds) / SEGMENT_SECONDS) as u64 - 2,
        server_cpu_per_second: cpu / wall,
    }
}

/// Both measurements on one backend; returns the largest round that kept up.
fn measure(
    backend: &str,
    server: &BenchServer,
    source: &std::path::Path,
    seconds: u32,
    max_streams: usize,
) -> usize {
    let single = round(server, source, 1, seconds);
    println!("## Segment upload latency, {backend} ({seconds} s, 1 stream)\n");
    println!("| segments | mean | p50 bucket | p99 bucket |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| {} | {:.1} ms | ≤ {:.0} ms | ≤ {:.0} ms |\n",
        single.latency.count,
        single.latency.mean() * 1e3,
        single.latency.quantile_bound(0.5) * 1e3,
        single.latency.quantile_bound(0.99) * 1e3,
    );

    println!("## Concurrent passthrough streams, {backend} ({seconds} s each)\n");
    println!("| streams | segments | mean latency | p99 bucket | fewest listed / expected | refused | failed publishers | server CPU-s/s | kept up |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let mut kept_up = 0;
    let mut count = 1;
    while count <= max_streams {
        let round = round(server, source, count, seconds);
        println!(
            "| {} | {} | {:.1} ms | ≤ {:.0} ms | {} / {} | {} | {} | {:.2} | {} |",
            round.streams,
            round.latency.count,
            round.latency.mean() * 1e3,
            round.latency.quantile_bound(0.99) * 1e3,
            round.fewest_segments,
            round.expected_segments,
            round.refused,
            round.failed_publishers,
            round.server_cpu_per_second,
            if round.kept_up() { "yes" } else { "no" },
        );
        if !round.kept_up() {
            break;
        }
        kept_up = round.streams;
        count *= 2;
    }
    println!("\nLargest round that kept up on {backend}: {kept_up} streams.\n");
    kept_up
}

/// An s3s-fs server (the binary scripts/test-s3.sh installs) on a free loopback port with one
/// bucket under `root`; returns it and the `[storage]` section pointing at it.
fn start_s3(binary: &str, root: &std::path::Path) -> (Child, String) {
    std::fs::create_dir_all(root.join("bench")).expect("bucket directory");
    let port = common::free_port();
    let process = Command::new(binary)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args([
            "--access-key",
            "bench-access",
            "--secret-key",
            "bench-secret",
        ])
        .arg(root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start s3s-fs");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "s3s-fs did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let storage = format!(
        "[storage]\nurl = \"s3://bench/live\"\nendpoint = \"http://127.0.0.1:{port}\"\n\
         access_key_id = \"bench-access\"\nsecret_access_key = \"bench-secret\"\n"
    );
    (process, storage)
}

fn main() {
    let seconds = argument("--seconds", 20);
    let max_streams = argument("--max-streams", 64) as usize;
    let work = tempfile::tempdir().expect("temp dir");
    let source = make_source(work.path(), "1280x720", 10);
    let source_kbps = std::fs::metadata(&source).expect("source").len() as f64 * 8.0 / 10.0 / 1e3;
    println!("Source: 720p30 H.264 + AAC, {source_kbps:.0} kb/s, looped in real time.\n");
    // Every publisher comes from 127.0.0.1.
    let live = "[live]\nrtmp_max_connections_per_ip = 1000\n";

    let local = {
        let server = BenchServer::start_configured(&work.path().join("local"), Some(live));
        measure(
            "local filesystem store",
            &server,
            &source,
            seconds,
            max_streams,
        )
    };
    let Ok(binary) = std::env::var("SLUICE_TEST_S3_SERVER") else {
        println!("S3 skipped: run through `eval \"$(scripts/test-s3.sh start)\"` to include it.");
        return;
    };
    let (mut s3, storage) = start_s3(&binary, &work.path().join("s3"));
    let on_s3 = {
        let config = format!("{storage}{live}");
        let server = BenchServer::start_configured(&work.path().join("s3-data"), Some(&config));
        measure(
            "S3 (s3s-fs on loopback)",
            &server,
            &source,
            seconds,
            max_streams,
        )
    };
    let _ = s3.kill();
    let _ = s3.wait();
    println!("Streams kept up, S3 / local: {on_s3} / {local}.");
}
