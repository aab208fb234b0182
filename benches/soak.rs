//! `make soak`: an hour of steady load on the release server, with its resources sampled, to
//! show nothing grows, fails or goes missing over time. Outside CI; results in
//! docs/RELIABILITY.md.
//!
//! The load, all on loopback:
//! - 8 live streams published by `ffmpeg -re -stream_loop -1` (stream copy of a 480p30 H.264 +
//!   AAC loop): 2 with the default ladder (480p and 360p encoded), 6 passthrough (`source`);
//! - 300 HLS viewers, each with its own HTTP client, reloading a media playlist and the audio
//!   playlist every target duration and fetching every new segment, as a player does;
//! - an upload (`PUT`) of a short clip every minute, each expected to become a ready asset;
//! - a webhook receiver for every event, down (its port closed) for the second sixth of the
//!   run (minutes 10 to 20 of an hour);
//! - a simulcast target on one passthrough stream, an nginx-rtmp server that is stopped for 1
//!   minute every 4.
//!
//! Every 10 s it samples the server's RSS, open files, threads, database size and spool bytes
//! into `target/soak/samples.csv` and plots them with gnuplot (`target/soak/soak.png`). Pass:
//! after warm-up (the first quarter of the run, 5 minutes at least: the allocator's arenas
//! take about 15 minutes of this load to reach their level) no series grows more than 5 % (the
//! mean of the last 5 minutes against the mean of the 5 minutes after warm-up), the database
//! only by the history it keeps (at most [`DATABASE_BYTES_PER_EVENT`] per event delivered
//! meanwhile), the spools by what is in flight ([`SPOOL_BYTES_IN_FLIGHT`]) and the threads by
//! what tokio's blocking pool may add under this load ([`BLOCKING_POOL_BOUND`]); no viewer
//! request fails; no segment is missing from any playlist a viewer read; every event is
//! delivered to the webhook once the receiver is back; every upload becomes a ready asset; the
//! simulcast target is live again after each outage.
//!
//! Usage: `cargo bench --bench soak [-- MINUTES]` (default 60; at least 15, so the windows
//! compared do not overlap).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::{
    free_port, looping_publisher, process_cpu_seconds, process_status_field, run, BenchServer,
    API_KEY, API_SECRET,
};
use serde_json::{json, Value};

const STREAMS: usize = 8;
const LADDER_STREAMS: usize = 2;
const VIEWERS: usize = 300;
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
const UPLOAD_EVERY: Duration = Duration::from_secs(60);
const TARGET_UP: Duration = Duration::from_secs(180);
const TARGET_DOWN: Duration = Duration::from_secs(60);
/// Growth allowed after warm-up, as a fraction.
const GROWTH_LIMIT: f64 = 0.05;
/// The shortest warm-up, and the length of the windows compared.
const WINDOW: Duration = Duration::from_secs(300);

/// When things happen in a run of `duration`.
struct Plan {
    duration: Duration,
    warm_up: Duration,
    webhook_down_at: Duration,
    webhook_up_at: Duration,
}

impl Plan {
    fn new(minutes: u64) -> Plan {
        let duration = Duration::from_secs(minutes * 60);
        // A 60 minute run: the receiver is down from minute 10 to minute 20.
        Plan {
            duration,
            warm_up: (duration / 4).max(WINDOW),
            webhook_down_at: duration / 6,
            webhook_up_at: duration / 3,
        }
    }
}

fn main() {
    let minutes: u64 = std::env::args()
        .skip(1)
        .find(|arg| !arg.starts_with('-'))
        .map(|arg| arg.parse().expect("MINUTES is a whole number"))
        .unwrap_or(60);
    assert!(minutes >= 15, "a soak needs at least 15 minutes");
    let plan = Plan::new(minutes);
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/soak");
    std::fs::create_dir_all(&out).expect("target/soak");
    let work = tempfile::tempdir().expect("temporary directory");
    let sources = Sources::make(work.path());

    let mut target = Nginx::start(&work.path().join("nginx"));
    let data = work.path().join("data");
    let server = BenchServer::start_configured(
        &data,
        Some(
            "[http_server]\nmax_connections_per_ip = 2048\n\
             [restream]\nallow_hosts = [\"127.0.0.1\"]\n\
             [webhooks]\nretry_max_interval_seconds = 30\n",
        ),
    );
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let report = runtime.block_on(soak(&plan, &server, &data, &sources, &mut target));
    drop(server);

    std::fs::write(out.join("samples.csv"), report.samples_csv()).expect("samples.csv");
    plot(&out);
    let verdicts = report.verdicts(&plan);
    println!("{}", report.markdown(&plan, &verdicts));
    if verdicts.iter().any(|verdict| !verdict.passed) {
        std::process::exit(1);
    }
}

/// The media the run publishes and uploads, made once with the ffmpeg CLI.
struct Sources {
    live: PathBuf,
    upload: PathBuf,
}

impl Sources {
    fn make(dir: &Path) -> Sources {
        let live = dir.join("live-480p.flv");
        run(Command::new("ffmpeg")
            .args(["-hide_banner", "-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg("testsrc2=size=854x480:rate=30:duration=60")
            .args([
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:sample_rate=48000:duration=60",
            ])
            .args([
                "-c:v", "libx264", "-preset", "veryfast", "-b:v", "1500k", "-g", "60",
            ])
            .args(["-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k"])
            .arg(&live));
        let upload = dir.join("upload-240p.mp4");
        run(Command::new("ffmpeg")
            .args(["-hide_banner", "-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg("testsrc2=size=426x240:rate=30:duration=4")
            .args([
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=660:sample_rate=48000:duration=4",
            ])
            .args(["-c:v", "libx264", "-preset", "veryfast", "-g", "60"])
            .args(["-pix_fmt", "yuv420p", "-c:a", "aac"])
            .arg(&upload));
        Sources { live, upload }
    }
}

/// The simulcast target: nginx-rtmp (`scripts/test-nginx-rtmp.sh`) on a fixed port, stopped
/// and started again by the run.
struct Nginx {
    dir: PathBuf,
    port: u16,
    running: bool,
}

impl Nginx {
    fn start(dir: &Path) -> Nginx {
        let mut nginx = Nginx {
            dir: dir.to_path_buf(),
            port: free_port(),
            running: false,
        };
        nginx.up();
        nginx
    }

    fn script() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/test-nginx-rtmp.sh")
    }

    fn up(&mut self) {
        std::fs::create_dir_all(&self.dir).expect("nginx directory");
        run(Command::new(Self::script())
            .arg("start")
            .arg(&self.dir)
            .arg(self.port.to_string())
            .env("RECORD", "off"));
        self.running = true;
    }

    fn down(&mut self) {
        run(Command::new(Self::script()).arg("stop").arg(&self.dir));
        self.running = false;
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if self.running {
            self.down();
        }
    }
}

/// What the run saw.
#[derive(Default)]
struct Report {
    samples: Vec<Sample>,
    /// The server's threads by name (digits dropped) once warmed up, and at the end.
    threads_after_warm_up: BTreeMap<String, usize>,
    threads_at_end: BTreeMap<String, usize>,
    viewers: ViewerTotals,
    publisher_restarts: Vec<String>,
    uploads: usize,
    uploads_not_ready: Vec<String>,
    events: usize,
    events_not_delivered: Vec<String>,
    events_delivered_twice: usize,
    /// Events recorded while the receiver was down (delivered only once it was back).
    events_while_down: usize,
    deliveries_refused: u64,
    /// One entry per outage of the simulcast target: whether it went live again afterwards.
    target_outages: Vec<bool>,
    target_live_at_end: bool,
}

#[derive(Clone, Copy, Default)]
struct Sample {
    at_s: f64,
    rss_mib: f64,
    open_files: u64,
    threads: u64,
    database_bytes: u64,
    spool_bytes: u64,
    cpu_percent: f64,
    /// Distinct events the webhook receiver has had so far.
    events_delivered: u64,
}

#[derive(Default)]
struct ViewerTotals {
    requests: u64,
    failures: u64,
    segments: u64,
    bytes: u64,
    missing_segments: u64,
    problems: Vec<String>,
    slowest_ms: u64,
}

/// A sampled series that must not grow more than [`GROWTH_LIMIT`], plus its allowances.
struct Series {
    name: &'static str,
    value: fn(&Sample) -> f64,
    /// What it may also grow by for each event delivered meanwhile.
    per_event: f64,
    /// What it may also grow by in any case: work in flight that a sample may catch.
    in_flight: f64,
}

/// What the database may grow by per event: the event, its webhook delivery and attempts, and
/// the share of the asset and upload rows behind it (an upload makes about six events). The
/// database keeps that history on purpose; anything beyond it would be a leak.
const DATABASE_BYTES_PER_EVENT: f64 = 4096.0;

/// Threads tokio's blocking pool may add under this load at its peak file-read concurrency
/// and keep while they are busy (its bound is 512; the hour runs added at most 12).
const BLOCKING_POOL_BOUND: f64 = 64.0;

/// What the spools may hold at a sample beyond their level after warm-up: an upload being
/// received (the clip is about 0.4 MB) or live segments waiting for the store.
const SPOOL_BYTES_IN_FLIGHT: f64 = 1024.0 * 1024.0;

const SERIES: [Series; 5] = [
    Series {
        name: "RSS (MiB)",
        value: |s| s.rss_mib,
        per_event: 0.0,
        in_flight: 0.0,
    },
    Series {
        name: "open files",
        value: |s| s.open_files as f64,
        per_event: 0.0,
        in_flight: 0.0,
    },
    Series {
        name: "threads",
        value: |s| s.threads as f64,
        per_event: 0.0,
        in_flight: BLOCKING_POOL_BOUND,
    },
    Series {
        name: "database bytes",
        value: |s| s.database_bytes as f64,
        per_event: DATABASE_BYTES_PER_EVENT,
        in_flight: 0.0,
    },
    Series {
        name: "spool bytes",
        value: |s| s.spool_bytes as f64,
        per_event: 0.0,
        in_flight: SPOOL_BYTES_IN_FLIGHT,
    },
];

/// One pass/fail line of the report.
struct Verdict {
    what: String,
    passed: bool,
}

async fn soak(
    plan: &Plan,
    server: &BenchServer,
    data: &Path,
    sources: &Sources,
    target: &mut Nginx,
) -> Report {
    let api = Api::new(&server.base);
    let receiver = WebhookReceiver::start().await;
    api.post("/v1/webhooks", json!({"url": receiver.url()}))
        .await;

    let mut streams = Vec::new();
    for index in 0..STREAMS {
        let ladder = if index < LADDER_STREAMS {
            Value::Null
        } else {
            json!(["source"])
        };
        let created = api
            .post(
                "/v1/live-streams",
                json!({"name": format!("soak {index}"), "ladder": ladder}),
            )
            .await;
        streams.push(created["data"].clone());
    }
    let restreamed = &streams[LADDER_STREAMS]["id"];
    let simulcast = api
        .post(
            &format!(
                "/v1/live-streams/{}/simulcast-targets",
                restreamed.as_str().unwrap()
            ),
            json!({"url": format!("rtmp://127.0.0.1:{}/live", target.port), "stream_key": "soak"}),
        )
        .await["data"]["id"]
        .as_str()
        .expect("simulcast target id")
        .to_owned();
    let simulcast_path = format!(
        "/v1/live-streams/{}/simulcast-targets/{simulcast}",
        restreamed.as_str().unwrap()
    );

    let mut publishers: Vec<Publisher> = streams
        .iter()
        .map(|stream| {
            Publisher::start(
                &sources.live,
                &format!(
                    "rtmp://127.0.0.1:{}/live/{}",
                    server.rtmp_port,
                    stream["stream_key"].as_str().expect("stream key")
                ),
            )
        })
        .collect();
    let playback_ids: Vec<String> = streams
        .iter()
        .map(|stream| {
            stream["playback_ids"][0]["id"]
                .as_str()
                .expect("playback id")
                .to_owned()
        })
        .collect();
    for id in &playback_ids {
        api.wait_for_object(&format!("/hls/{id}/master.m3u8")).await;
    }

    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let viewer_stats = Arc::new(Mutex::new(ViewerTotals::default()));
    let mut viewers = Vec::new();
    for index in 0..VIEWERS {
        let base = server.base.clone();
        let playback_id = playback_ids[index % STREAMS].clone();
        let (stop, stats) = (stop.clone(), viewer_stats.clone());
        // Joins spread over the first minute.
        let join_after = Duration::from_millis(200 * index as u64);
        viewers.push(tokio::spawn(async move {
            tokio::time::sleep(join_after).await;
            watch(index, &base, &playback_id, &stop, &stats).await
        }));
    }

    let mut report = Report::default();
    let server_pid = server.pid();
    let mut next_sample = started + SAMPLE_EVERY;
    let mut next_upload = started;
    let mut uploads = Vec::new();
    let mut target_changed = started;
    let mut last_cpu = (Instant::now(), process_cpu_seconds(server_pid));
    while started.elapsed() < plan.duration {
        let now = Instant::now();
        let elapsed = started.elapsed();
        if now >= next_sample {
            let cpu = process_cpu_seconds(server_pid);
            let cpu_percent = 100.0 * (cpu - last_cpu.1) / last_cpu.0.elapsed().as_secs_f64();
            last_cpu = (now, cpu);
            if report.threads_after_warm_up.is_empty() && elapsed >= plan.warm_up {
                report.threads_after_warm_up = thread_names(server_pid);
            }
            report.samples.push(Sample {
                at_s: elapsed.as_secs_f64(),
                cpu_percent,
                events_delivered: receiver.delivered.lock().unwrap().len() as u64,
                ..Sample::of(server_pid, data)
            });
            next_sample += SAMPLE_EVERY;
        }
        if now >= next_upload {
            uploads.push(api.upload(&sources.upload).await);
            next_upload += UPLOAD_EVERY;
        }
        receiver
            .set_down(elapsed >= plan.webhook_down_at && elapsed < plan.webhook_up_at)
            .await;
        let switch_after = if target.running {
            TARGET_UP
        } else {
            TARGET_DOWN
        };
        if target_changed.elapsed() >= switch_after {
            if target.running {
                // The script waits for nginx: off the reactor, so viewers keep being served.
                tokio::task::block_in_place(|| target.down());
                report.target_outages.push(false);
            } else {
                tokio::task::block_in_place(|| target.up());
            }
            target_changed = Instant::now();
        }
        if target.running && api.get(&simulcast_path).await["data"]["status"] == "live" {
            if let Some(recovered) = report.target_outages.last_mut() {
                *recovered = true;
            }
        }
        for (index, publisher) in publishers.iter_mut().enumerate() {
            if let Some(status) = publisher.exited() {
                report.publisher_restarts.push(format!(
                    "stream {index} publisher exited ({status}) at {elapsed:?}"
                ));
                publisher.restart();
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    report.threads_at_end = thread_names(server_pid);
    stop.store(true, Ordering::SeqCst);
    for viewer in viewers {
        viewer.await.expect("viewer task");
    }
    report.viewers = std::mem::take(&mut *viewer_stats.lock().unwrap());

    // The target is left up: it must come back once more.
    if !target.running {
        tokio::task::block_in_place(|| target.up());
    }
    report.target_live_at_end = api
        .wait_until(Duration::from_secs(120), || async {
            api.get(&simulcast_path).await["data"]["status"] == "live"
        })
        .await;
    // An outage that ended with the run is over once the target is live at the end.
    if let Some(recovered) = report.target_outages.last_mut() {
        *recovered |= report.target_live_at_end;
    }

    report.uploads = uploads.len();
    for upload in &uploads {
        let ready = api
            .wait_until(Duration::from_secs(180), || async {
                let upload = api.get(&format!("/v1/uploads/{upload}")).await;
                match upload["data"]["asset_id"].as_str() {
                    Some(asset) => {
                        api.get(&format!("/v1/assets/{asset}")).await["data"]["status"] == "ready"
                    }
                    None => false,
                }
            })
            .await;
        if !ready {
            report.uploads_not_ready.push(upload.clone());
        }
    }

    // Every event recorded so far must reach the receiver (retries are at most 30 s apart).
    let recorded = api.events().await;
    report.events = recorded.len();
    let outage = receiver.outage.lock().unwrap().clone();
    report.events_while_down = recorded
        .iter()
        .filter(|(_, at)| outage.as_ref().is_some_and(|outage| outage.contains(at)))
        .count();
    let events: Vec<String> = recorded.into_iter().map(|(id, _)| id).collect();
    api.wait_until(Duration::from_secs(180), || async {
        let delivered = receiver.delivered.lock().unwrap();
        events.iter().all(|id| delivered.contains_key(id))
    })
    .await;
    let delivered = receiver.delivered.lock().unwrap();
    report.events_not_delivered = events
        .iter()
        .filter(|id| !delivered.contains_key(*id))
        .cloned()
        .collect();
    report.events_delivered_twice = delivered.values().filter(|count| **count > 1).count();
    report.deliveries_refused = receiver.refused.load(Ordering::SeqCst);
    for publisher in &mut publishers {
        publisher.stop();
    }
    report
}

impl Sample {
    /// The process's resources now (`/proc`) and the sizes of its database and spools.
    fn of(pid: u32, data: &Path) -> Sample {
        let field = |name: &str| process_status_field(pid, name);
        let database_bytes = ["sluice.db", "sluice.db-wal", "sluice.db-shm"]
            .iter()
            .map(|name| std::fs::metadata(data.join(name)).map_or(0, |m| m.len()))
            .sum();
        Sample {
            at_s: 0.0,
            rss_mib: field("VmRSS:") as f64 / 1024.0,
            open_files: std::fs::read_dir(format!("/proc/{pid}/fd"))
                .map_or(0, |d| d.count() as u64),
            threads: field("Threads:"),
            database_bytes,
            spool_bytes: bytes_under(&data.join("spool")) + bytes_under(&data.join("uploads")),
            cpu_percent: 0.0,
            events_delivered: 0,
        }
    }
}

/// How many of the process's threads have each name (`/proc/PID/task/*/comm`, trailing
/// digits dropped so numbered pools count together).
fn thread_names(pid: u32) -> BTreeMap<String, usize> {
    let mut names = BTreeMap::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        let name = name.trim().trim_end_matches(|c: char| c.is_ascii_digit());
        *names.entry(name.to_owned()).or_default() += 1;
    }
    names
}

fn bytes_under(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => bytes_under(&entry.path()),
            _ => entry.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

/// One viewer: the master playlist, then one video rendition (by `index`) and the audio
/// rendition reloaded every target duration, every new segment fetched once, from the live
/// edge on. A playlist whose numbering skips, or a reload that starts past the next segment the
/// viewer expected, counts the segments missed.
async fn watch(
    index: usize,
    base: &str,
    playback_id: &str,
    stop: &AtomicBool,
    stats: &Mutex<ViewerTotals>,
) {
    let client = reqwest::Client::new();
    let root = format!("{base}/hls/{playback_id}");
    let mut viewer = Viewer {
        client,
        stats,
        name: format!("viewer {index} ({playback_id})"),
    };
    let Some(master) = viewer.fetch(&format!("{root}/master.m3u8")).await else {
        return;
    };
    let variants: Vec<String> = match m3u8_rs::parse_master_playlist_res(&master) {
        Ok(master) => master.variants.iter().map(|v| v.uri.clone()).collect(),
        Err(_) => {
            viewer.problem("master playlist does not parse".into());
            return;
        }
    };
    let video = &variants[index % variants.len()];
    let mut renditions = [
        Rendition::new(format!("{root}/{video}")),
        Rendition::new(format!("{root}/a0/index.m3u8")),
    ];
    while !stop.load(Ordering::SeqCst) {
        let mut wait = Duration::from_secs(2);
        for rendition in &mut renditions {
            if let Some(target) = viewer.reload(rendition).await {
                wait = target;
            }
        }
        tokio::time::sleep(wait).await;
    }
}

struct Viewer<'a> {
    client: reqwest::Client,
    stats: &'a Mutex<ViewerTotals>,
    name: String,
}

struct Rendition {
    playlist: String,
    next_sequence: Option<u64>,
    init_fetched: bool,
}

impl Rendition {
    fn new(playlist: String) -> Rendition {
        Rendition {
            playlist,
            next_sequence: None,
            init_fetched: false,
        }
    }

    fn url_of(&self, uri: &str) -> String {
        let dir = self.playlist.rsplit_once('/').map_or("", |(dir, _)| dir);
        format!("{dir}/{uri}")
    }
}

impl Viewer<'_> {
    /// Reloads `rendition`'s playlist and fetches its new segments; the target duration.
    async fn reload(&mut self, rendition: &mut Rendition) -> Option<Duration> {
        let text = self.fetch(&rendition.playlist).await?;
        let playlist = match m3u8_rs::parse_media_playlist_res(&text) {
            Ok(playlist) => playlist,
            Err(_) => {
                self.problem(format!("{} does not parse", rendition.playlist));
                return None;
            }
        };
        if playlist.end_list {
            self.problem(format!("{} ended", rendition.playlist));
        }
        let first = playlist.media_sequence;
        for (offset, segment) in playlist.segments.iter().enumerate() {
            let named = segment_number(&segment.uri);
            if named != Some(first + offset as u64) {
                self.missing(
                    1,
                    format!(
                        "{} lists {} at sequence {}",
                        rendition.playlist,
                        segment.uri,
                        first + offset as u64
                    ),
                );
            }
        }
        let last = first + playlist.segments.len() as u64;
        let from = match rendition.next_sequence {
            // Join three segments from the live edge.
            None => last.saturating_sub(3).max(first),
            Some(next) if next < first => {
                self.missing(
                    first - next,
                    format!("{} skipped from {next} to {first}", rendition.playlist),
                );
                first
            }
            Some(next) => next,
        };
        if !rendition.init_fetched {
            if let Some(map) = playlist.segments.first().and_then(|s| s.map.as_ref()) {
                rendition.init_fetched = self.fetch(&rendition.url_of(&map.uri)).await.is_some();
            }
        }
        for segment in playlist.segments.iter().skip((from - first) as usize) {
            if self.fetch(&rendition.url_of(&segment.uri)).await.is_some() {
                self.stats.lock().unwrap().segments += 1;
            }
        }
        rendition.next_sequence = Some(from.max(last));
        Some(Duration::from_secs(playlist.target_duration))
    }

    /// GETs `url`; the body, or `None` (counted as a failure) for an error or another status.
    async fn fetch(&mut self, url: &str) -> Option<Vec<u8>> {
        let started = Instant::now();
        let outcome = match self.client.get(url).send().await {
            Ok(response) if response.status() == 200 => {
                response.bytes().await.map_err(|e| e.to_string())
            }
            Ok(response) => Err(format!("status {}", response.status())),
            Err(error) => Err(error.to_string()),
        };
        let mut stats = self.stats.lock().unwrap();
        stats.requests += 1;
        stats.slowest_ms = stats.slowest_ms.max(started.elapsed().as_millis() as u64);
        match outcome {
            Ok(body) => {
                stats.bytes += body.len() as u64;
                Some(body.to_vec())
            }
            Err(error) => {
                stats.failures += 1;
                drop(stats);
                self.problem(format!("GET {url}: {error}"));
                None
            }
        }
    }

    fn missing(&self, count: u64, what: String) {
        self.stats.lock().unwrap().missing_segments += count;
        self.problem(what);
    }

    fn problem(&self, what: String) {
        let mut stats = self.stats.lock().unwrap();
        if stats.problems.len() < 20 {
            stats.problems.push(format!("{}: {what}", self.name));
        }
    }
}

/// `{session}-{seq}.m4s` / `.m4a` → `seq`.
fn segment_number(uri: &str) -> Option<u64> {
    let stem = uri.rsplit('/').next()?.rsplit_once('.')?.0;
    stem.rsplit_once('-')?.1.parse().ok()
}

/// An `ffmpeg -re -stream_loop -1` publisher, stream-copying the live source for ever.
struct Publisher {
    source: PathBuf,
    url: String,
    child: Child,
}

impl Publisher {
    fn start(source: &Path, url: &str) -> Publisher {
        Publisher {
            source: source.to_path_buf(),
            url: url.to_owned(),
            child: Self::spawn(source, url),
        }
    }

    fn spawn(source: &Path, url: &str) -> Child {
        looping_publisher(source, url, None)
    }

    fn exited(&mut self) -> Option<String> {
        self.child
            .try_wait()
            .expect("publisher status")
            .map(|status| status.to_string())
    }

    fn restart(&mut self) {
        self.child = Self::spawn(&self.source, &self.url);
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Receives webhook deliveries and counts them by event id; while "down" its listener is
/// closed, so deliveries are refused at connect.
struct WebhookReceiver {
    port: u16,
    delivered: Arc<Mutex<HashMap<String, u32>>>,
    refused: Arc<AtomicU64>,
    /// When it was down (the last outage).
    outage: Mutex<Option<std::ops::Range<DateTime<Utc>>>>,
    down: Arc<AtomicBool>,
    serving: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

impl WebhookReceiver {
    async fn start() -> WebhookReceiver {
        let receiver = WebhookReceiver {
            port: free_port(),
            delivered: Arc::default(),
            refused: Arc::default(),
            outage: Mutex::new(None),
            down: Arc::default(),
            serving: Mutex::new(None),
        };
        receiver.listen().await;
        receiver
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    async fn listen(&self) {
        let (delivered, refused, down) = (
            self.delivered.clone(),
            self.refused.clone(),
            self.down.clone(),
        );
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: axum::body::Bytes| async move {
                // A delivery on a connection opened before the outage is refused too.
                if down.load(Ordering::SeqCst) {
                    refused.fetch_add(1, Ordering::SeqCst);
                    return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                }
                let event: Value = serde_json::from_slice(&body).unwrap_or_default();
                if let Some(id) = event["id"].as_str() {
                    *delivered.lock().unwrap().entry(id.to_owned()).or_default() += 1;
                }
                axum::http::StatusCode::NO_CONTENT
            }),
        );
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("webhook receiver port");
        let (closed, on_close) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = on_close.await;
                })
                .await
                .expect("webhook receiver");
        });
        *self.serving.lock().unwrap() = Some(closed);
    }

    /// Takes the receiver down or brings it back.
    async fn set_down(&self, down: bool) {
        if self.down.swap(down, Ordering::SeqCst) == down {
            return;
        }
        let now = Utc::now();
        if down {
            *self.outage.lock().unwrap() = Some(now..now);
            if let Some(closed) = self.serving.lock().unwrap().take() {
                let _ = closed.send(());
            }
        } else {
            if let Some(outage) = self.outage.lock().unwrap().as_mut() {
                outage.end = now;
            }
            self.listen().await;
        }
    }
}

/// The API with the bench server's key.
struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    fn new(base: &str) -> Api {
        Api {
            client: reqwest::Client::new(),
            base: base.to_owned(),
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Value {
        let response = request
            .basic_auth(API_KEY, Some(API_SECRET))
            .send()
            .await
            .expect("API request");
        let body = response.bytes().await.expect("API response");
        serde_json::from_slice(&body).unwrap_or_default()
    }

    async fn get(&self, path: &str) -> Value {
        self.send(self.client.get(format!("{}{path}", self.base)))
            .await
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let created = self
            .send(
                self.client
                    .post(format!("{}{path}", self.base))
                    .header("content-type", "application/json")
                    .body(body.to_string()),
            )
            .await;
        assert!(created["data"].is_object(), "POST {path}: {created}");
        created
    }

    /// Creates an upload and `PUT`s `file` to it; the upload's id.
    async fn upload(&self, file: &Path) -> String {
        let upload = self
            .post(
                "/v1/uploads",
                json!({"new_asset_settings": {"playback_policy": ["public"]}}),
            )
            .await;
        let url = upload["data"]["url"].as_str().expect("upload url");
        let bytes = std::fs::read(file).expect("upload file");
        let response = self.client.put(url).body(bytes).send().await;
        assert!(
            response.as_ref().is_ok_and(|r| r.status() == 200),
            "PUT upload: {response:?}"
        );
        upload["data"]["id"].as_str().expect("upload id").to_owned()
    }

    /// Every event recorded so far, oldest first: its id and when it was recorded.
    async fn events(&self) -> Vec<(String, DateTime<Utc>)> {
        let mut ids = Vec::new();
        let mut cursor = String::new();
        loop {
            let page = self.get(&format!("/v1/events?limit=100{cursor}")).await;
            ids.extend(
                page["data"]
                    .as_array()
                    .expect("events")
                    .iter()
                    .filter_map(|event| {
                        let at =
                            DateTime::parse_from_rfc3339(event["created_at"].as_str()?).ok()?;
                        Some((event["id"].as_str()?.to_owned(), at.to_utc()))
                    }),
            );
            match page["next_cursor"].as_str() {
                Some(next) => cursor = format!("&cursor={next}"),
                None => return ids,
            }
        }
    }

    async fn wait_for_object(&self, path: &str) {
        let url = format!("{}{path}", self.base);
        let found = self
            .wait_until(Duration::from_secs(60), || async {
                self.client
                    .get(&url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200)
            })
            .await;
        assert!(found, "{path} never appeared");
    }

    /// Polls `check` every second until it holds (true) or `timeout` passes (false).
    async fn wait_until<F, Fut>(&self, timeout: Duration, check: F) -> bool
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            if check().await {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

impl Report {
    fn samples_csv(&self) -> String {
        let mut csv = String::from(
            "seconds,rss_mib,open_files,threads,database_bytes,spool_bytes,cpu_percent,events_delivered\n",
        );
        for s in &self.samples {
            csv.push_str(&format!(
                "{:.0},{:.1},{},{},{},{},{:.1},{}\n",
                s.at_s,
                s.rss_mib,
                s.open_files,
                s.threads,
                s.database_bytes,
                s.spool_bytes,
                s.cpu_percent,
                s.events_delivered
            ));
        }
        csv
    }

    /// Each sampled series: the mean of the 5 minutes after warm-up, the mean of the last 5
    /// minutes, and the growth allowed between them.
    fn growth(&self, plan: &Plan) -> Vec<(&'static str, f64, f64, f64)> {
        let end = self.samples.last().map_or(0.0, |s| s.at_s);
        let window = |from: f64, to: f64, value: fn(&Sample) -> f64| -> f64 {
            let values: Vec<f64> = self
                .samples
                .iter()
                .filter(|s| s.at_s >= from && s.at_s < to)
                .map(value)
                .collect();
            values.iter().sum::<f64>() / values.len().max(1) as f64
        };
        let warm = plan.warm_up.as_secs_f64();
        let span = WINDOW.as_secs_f64();
        let events = |s: &Sample| s.events_delivered as f64;
        let new_events = window(end - span, end + 1.0, events) - window(warm, warm + span, events);
        SERIES
            .into_iter()
            .map(|series| {
                let after_warm_up = window(warm, warm + span, series.value);
                let last = window(end - span, end + 1.0, series.value);
                let allowed = after_warm_up * GROWTH_LIMIT
                    + series.per_event * new_events.max(0.0)
                    + series.in_flight;
                (series.name, after_warm_up, last, allowed)
            })
            .collect()
    }

    fn verdicts(&self, plan: &Plan) -> Vec<Verdict> {
        let mut verdicts: Vec<Verdict> = self
            .growth(plan)
            .into_iter()
            .map(|(name, from, to, allowed)| Verdict {
                what: format!(
                    "{name}: {from:.1} after warm-up, {to:.1} at the end ({:+.1} %; {allowed:.1} allowed)",
                    100.0 * (to - from) / from.max(f64::MIN_POSITIVE)
                ),
                passed: to <= from + allowed,
            })
            .collect();
        let viewers = &self.viewers;
        verdicts.extend([
            Verdict {
                what: format!(
                    "viewer requests: {} ({} segments, {:.1} GB), {} failed; slowest {} ms",
                    viewers.requests,
                    viewers.segments,
                    viewers.bytes as f64 / 1e9,
                    viewers.failures,
                    viewers.slowest_ms
                ),
                passed: viewers.failures == 0 && viewers.requests > 0,
            },
            Verdict {
                what: format!("segments missing from playlists: {}", viewers.missing_segments),
                passed: viewers.missing_segments == 0,
            },
            Verdict {
                what: format!(
                    "events: {} recorded ({} while the webhook receiver was down), {} not delivered, {} delivered more than once, {} deliveries refused by the receiver",
                    self.events,
                    self.events_while_down,
                    self.events_not_delivered.len(),
                    self.events_delivered_twice,
                    self.deliveries_refused
                ),
                passed: self.events_not_delivered.is_empty() && self.events_while_down > 0,
            },
            Verdict {
                what: format!(
                    "uploads: {}, {} not a ready asset",
                    self.uploads,
                    self.uploads_not_ready.len()
                ),
                passed: self.uploads_not_ready.is_empty() && self.uploads > 0,
            },
            Verdict {
                what: format!(
                    "simulcast target: {} outages, live again after {}, live at the end: {}",
                    self.target_outages.len(),
                    self.target_outages.iter().filter(|recovered| **recovered).count(),
                    self.target_live_at_end
                ),
                passed: self.target_live_at_end && self.target_outages.iter().all(|r| *r),
            },
            Verdict {
                what: format!("publisher restarts: {}", self.publisher_restarts.len()),
                passed: self.publisher_restarts.is_empty(),
            },
        ]);
        verdicts
    }

    fn markdown(&self, plan: &Plan, verdicts: &[Verdict]) -> String {
        let mut text = format!(
            "Soak of {} minutes ({STREAMS} live streams, {VIEWERS} viewers, webhook receiver down from minute {} to {}):\n\n| check | result |\n| --- | --- |\n",
            plan.duration.as_secs() / 60,
            plan.webhook_down_at.as_secs() / 60,
            plan.webhook_up_at.as_secs() / 60,
        );
        for verdict in verdicts {
            let mark = if verdict.passed { "pass" } else { "FAIL" };
            text.push_str(&format!("| {} | {mark} |\n", verdict.what));
        }
        let cpu: Vec<f64> = self.samples.iter().map(|s| s.cpu_percent).collect();
        text.push_str(&format!(
            "\nServer CPU: mean {:.0} % of one core.\n",
            cpu.iter().sum::<f64>() / cpu.len().max(1) as f64
        ));
        let changed: Vec<String> = self
            .threads_after_warm_up
            .keys()
            .chain(self.threads_at_end.keys())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .filter_map(|name| {
                let before = self.threads_after_warm_up.get(name).copied().unwrap_or(0);
                let after = self.threads_at_end.get(name).copied().unwrap_or(0);
                (before != after).then(|| format!("`{name}` {before} → {after}"))
            })
            .collect();
        text.push_str(&format!(
            "Threads whose count changed after warm-up: {}.\n",
            if changed.is_empty() {
                "none".to_owned()
            } else {
                changed.join(", ")
            }
        ));
        let details: Vec<&String> = self
            .viewers
            .problems
            .iter()
            .chain(&self.publisher_restarts)
            .chain(&self.uploads_not_ready)
            .chain(self.events_not_delivered.iter().take(20))
            .collect();
        if !details.is_empty() {
            text.push_str("\nDetails (first of each):\n");
            for line in details {
                text.push_str(&format!("- {line}\n"));
            }
        }
        text
    }
}

/// `target/soak/soak.png` from `samples.csv`, with gnuplot.
fn plot(out: &Path) {
    let script = r#"
set datafile separator ","
set terminal pngcairo size 1200,900 font "sans,9"
set output "soak.png"
set multiplot layout 3,2 title "Sluice soak: server resources sampled every 10 s"
set xlabel "minutes"
set yrange [0:*]
set key off
set grid
set title "RSS (MiB)"; plot "samples.csv" using ($1/60):2 every ::1 with lines
set title "open files"; plot "samples.csv" using ($1/60):3 every ::1 with lines
set title "threads"; plot "samples.csv" using ($1/60):4 every ::1 with lines
set title "database (KiB)"; plot "samples.csv" using ($1/60):($5/1024) every ::1 with lines
set title "spool (KiB)"; plot "samples.csv" using ($1/60):($6/1024) every ::1 with lines
set title "server CPU (% of one core)"; plot "samples.csv" using ($1/60):7 every ::1 with lines
unset multiplot
"#;
    std::fs::write(out.join("soak.gp"), script).expect("soak.gp");
    run(Command::new("gnuplot").arg("soak.gp").current_dir(out));
}
