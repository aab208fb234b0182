//! `cargo bench --bench ll_viewers [-- MAX_VIEWERS]`: LL-HLS blocking playlist reload under
//! load. Results in docs/BENCHMARKS.md.
//!
//! One `low` latency stream (a passthrough ladder, so the server's CPU goes to serving) is
//! watched by a load client on loopback whose viewers each follow the LL-HLS protocol for two
//! renditions (video `v0` and audio `a0`) as a player does: a blocking playlist request for the
//! part the last response's preload hint named (`_HLS_msn`/`_HLS_part`), then a fetch of the
//! newest listed part, and again. Viewers are added in steps (250, 500, 1000, … up to
//! MAX_VIEWERS, default 2000), each step measured for 30 s after 10 s of settling.
//!
//! Delay: for every part, each viewer whose request was waiting when the part was first
//! delivered, its response time minus that first response (any viewer's). The first waiting
//! viewer is answered the moment the part is listed (its request is already held), so this is
//! the delay from a part's completion to its delivery, less the first delivery's own few
//! hundred microseconds. The
//! server's CPU over each step is read from /proc. The run stops at the first step whose p99
//! passes one part target (334 ms).

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{looping_publisher, make_source, part_of, process_cpu_seconds, BenchServer};

const STEP: Duration = Duration::from_secs(30);
const SETTLE: Duration = Duration::from_secs(10);
const PART_TARGET_MS: f64 = 334.0;

/// A part of a rendition: (`v0`, msn, part).
type PartKey = (&'static str, u64, u64);
/// Each part's playlist requests, (sent, answered).
type Requests = HashMap<PartKey, Vec<(Instant, Instant)>>;
type Deliveries = Arc<Mutex<Requests>>;

fn main() {
    let max_viewers: usize = std::env::args()
        .skip(1)
        .find(|arg| !arg.starts_with('-'))
        .map(|arg| arg.parse().expect("MAX_VIEWERS is a whole number"))
        .unwrap_or(2000);
    let work = tempfile::tempdir().expect("temporary directory");
    let source = make_source(work.path(), "854x480", 30);
    let server = BenchServer::start_configured(
        &work.path().join("data"),
        Some("[http_server]\nmax_connections = 16384\nmax_connections_per_ip = 16384\n"),
    );
    let created = server.api(
        "/v1/live-streams",
        Some(r#"{"name": "load", "ladder": ["source"], "latency_mode": "low"}"#),
    );
    let key = created["data"]["stream_key"].as_str().expect("stream key");
    let playback_id = created["data"]["playback_ids"][0]["id"]
        .as_str()
        .expect("playback id")
        .to_owned();
    let url = format!("rtmp://127.0.0.1:{}/live/{key}", server.rtmp_port);
    let mut publisher = looping_publisher(&source, &url, None);
    let base = format!("{}/hls/{playback_id}", server.base);

    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(async {
        let deliveries: Deliveries = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let mut viewers = 0;
        let mut steps = Vec::new();
        let mut count = 250;
        while count <= max_viewers {
            for _ in viewers..count {
                let client = reqwest::Client::new();
                for rendition in ["v0", "a0"] {
                    tokio::spawn(follow(
                        client.clone(),
                        format!("{base}/{rendition}"),
                        rendition,
                        deliveries.clone(),
                        stop.clone(),
                    ));
                }
            }
            viewers = count;
            tokio::time::sleep(SETTLE).await;
            deliveries.lock().unwrap().clear();
            let cpu_before = process_cpu_seconds(server.pid());
            tokio::time::sleep(STEP).await;
            let cpu = 100.0 * (process_cpu_seconds(server.pid()) - cpu_before) / STEP.as_secs_f64();
            let mut delays = delays(&deliveries.lock().unwrap());
            let (p50, p99) = (percentile(&mut delays, 0.5), percentile(&mut delays, 0.99));
            println!(
                "{viewers} viewers: p50 {p50:.1} ms, p99 {p99:.1} ms over {} deliveries, server CPU {cpu:.0} %",
                delays.len()
            );
            steps.push((viewers, p50, p99, delays.len(), cpu));
            if p99 > PART_TARGET_MS {
                break;
            }
            count *= 2;
        }
        stop.store(true, Ordering::Relaxed);
        println!("\n| viewers | p50 (ms) | p99 (ms) | deliveries | server CPU (% of a core) |");
        println!("| --- | --- | --- | --- | --- |");
        for (viewers, p50, p99, count, cpu) in steps {
            println!("| {viewers} | {p50:.1} | {p99:.1} | {count} | {cpu:.0} |");
        }
    });
    let _ = publisher.kill();
    let _ = publisher.wait();
}

/// One viewer's rendition: blocking reloads for the hinted part, each followed by a fetch of
/// the newest part, until `stop`.
async fn follow(
    client: reqwest::Client,
    base: String,
    rendition: &'static str,
    deliveries: Deliveries,
    stop: Arc<AtomicBool>,
) {
    let mut next: Option<(u64, u64)> = None;
    while !stop.load(Ordering::Relaxed) {
        let query = next.map_or(String::new(), |(msn, part)| {
            format!("?_HLS_msn={msn}&_HLS_part={part}")
        });
        let sent = Instant::now();
        let Ok(response) = client.get(format!("{base}/index.m3u8{query}")).send().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let ok = response.status().is_success();
        let Ok(body) = response.text().await else {
            continue;
        };
        let arrived = Instant::now();
        if !ok {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        if let Some((msn, part)) = next {
            deliveries
                .lock()
                .unwrap()
                .entry((rendition, msn, part))
                .or_default()
                .push((sent, arrived));
        }
        if let Some(newest) = last_attribute(&body, "#EXT-X-PART:", "URI=\"") {
            let _ = client.get(format!("{base}/{newest}")).send().await;
        }
        next =
            last_attribute(&body, "#EXT-X-PRELOAD-HINT:", "URI=\"").and_then(|hint| part_of(&hint));
    }
}

/// The quoted attribute after `attribute` on the last line starting with `tag`.
fn last_attribute(playlist: &str, tag: &str, attribute: &str) -> Option<String> {
    let line = playlist.lines().rev().find(|line| line.starts_with(tag))?;
    let rest = &line[line.find(attribute)? + attribute.len()..];
    Some(rest[..rest.find('"')?].to_owned())
}

/// The delay of every request that was waiting when its part was first delivered, after that
/// first delivery, in ms (a viewer that asked late was not waiting: its answer is not counted).
fn delays(deliveries: &Requests) -> Vec<f64> {
    deliveries
        .values()
        .flat_map(|requests| {
            let first = requests.iter().map(|(_, answered)| *answered).min();
            requests.iter().filter_map(move |(sent, answered)| {
                let first = first?;
                (*sent < first).then(|| answered.duration_since(first).as_secs_f64() * 1000.0)
            })
        })
        .collect()
}

fn percentile(values: &mut [f64], at: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[((values.len() as f64 - 1.0) * at).round() as usize]
}
