//! `make bench`: Sluice's live ladder against the ffmpeg CLI doing the same ladder, in one run.
//!
//! For a 720p30 and a 1080p30 source (10 s of `testsrc2`, made here with the ffmpeg CLI), both
//! sides do the same work: one decode, a split, a scale per rung, x264 with the same preset,
//! bitrates and VBV for every rung of `Ladder::DEFAULT` that fits the source, 2 s IDRs, and
//! HLS fMP4 output on disk. Each side is measured in CPU-seconds per second of media (user +
//! system, all threads) and wall speed (media seconds per wall second). Sluice runs
//! in-process with `WhenBehind::Wait`, so it drops nothing and its throughput is measured.
//!
//! Then the real server is started, a 1080p30 source is published over RTMP in real time to a
//! default-ladder stream, and the bench reports the time from the publisher's first byte to the
//! first playable segment listed in the master playlist, the server's CPU-seconds per media
//! second, and the frames it dropped (0 means it kept real time).
//!
//! Usage: `cargo bench --bench live_ladder [-- --preset superfast]`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sluice_media::{AvcConfig, Packet, Timebase, TrackKind};
use sluice_packager::{LivePlaylist, TrackSegmenter};
use sluice_transcoder::{
    plan, EncoderSettings, FileDemuxer, Ladder, LiveTranscoder, PlannedRung, Preset, ProbeLimits,
    TranscoderOutput, WhenBehind,
};

const MEDIA_SECONDS: u32 = 10;
const SEGMENT: Duration = Duration::from_secs(2);

struct Measurement {
    cpu_seconds: f64,
    wall_seconds: f64,
}

impl Measurement {
    fn cpu_per_media_second(&self, media: f64) -> f64 {
        self.cpu_seconds / media
    }
    fn speed(&self, media: f64) -> f64 {
        media / self.wall_seconds
    }
}

/// User + system CPU seconds of this process (`RUSAGE_SELF`) or its waited-for children.
fn cpu_seconds(who: libc::c_int) -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(who, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

fn run(command: &mut Command) {
    let status = command.status().expect("command runs");
    assert!(status.success(), "{command:?} failed");
}

/// 10 s of 30 fps testsrc2 at `size`, encoded once with high quality so decoding it is the
/// only source cost either side pays.
fn make_source(dir: &Path, size: &str) -> PathBuf {
    let path = dir.join(format!("source-{size}.mp4"));
    run(Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!(
            "testsrc2=size={size}:rate=30:duration={MEDIA_SECONDS}"
        ))
        .args(["-f", "lavfi", "-i"])
        .arg(format!(
            "sine=frequency=440:sample_rate=48000:duration={MEDIA_SECONDS}"
        ))
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-b:v", "8000k", "-g", "60",
        ])
        .args(["-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k"])
        .arg(&path));
    path
}

fn targets(rungs: &[PlannedRung]) -> Vec<&sluice_transcoder::EncodeTarget> {
    rungs
        .iter()
        .filter_map(|rung| match rung {
            PlannedRung::Encode(target) => Some(target),
            PlannedRung::Source => None,
        })
        .collect()
}

/// The ffmpeg CLI: one decode, split, scale, x264 per rung, HLS fMP4.
fn ffmpeg_ladder(source: &Path, rungs: &[PlannedRung], preset: &str, out: &Path) -> Measurement {
    let targets = targets(rungs);
    let mut filter = format!("[0:v]split={}", targets.len());
    for index in 0..targets.len() {
        filter.push_str(&format!("[s{index}]"));
    }
    for (index, target) in targets.iter().enumerate() {
        filter.push_str(&format!(
            ";[s{index}]scale={}:{}[v{index}]",
            target.width, target.height
        ));
    }
    let mut command = Command::new("ffmpeg");
    command
        .args(["-hide_banner", "-v", "error", "-y", "-i"])
        .arg(source)
        .args(["-filter_complex", &filter]);
    for (index, target) in targets.iter().enumerate() {
        command
            .args(["-map", &format!("[v{index}]")])
            .arg(format!("-c:v:{index}"))
            .arg("libx264")
            .arg(format!("-b:v:{index}"))
            .arg(format!("{}k", target.bitrate_kbps))
            .arg(format!("-maxrate:v:{index}"))
            .arg(format!("{}k", target.vbv_maxrate_kbps))
            .arg(format!("-bufsize:v:{index}"))
            .arg(format!("{}k", target.vbv_bufsize_kbit));
    }
    let stream_map: Vec<String> = (0..targets.len())
        .map(|index| format!("v:{index}"))
        .collect();
    command
        .args([
            "-preset",
            preset,
            "-g",
            "60",
            "-keyint_min",
            "60",
            "-sc_threshold",
            "0",
        ])
        .args(["-f", "hls", "-hls_time", "2", "-hls_playlist_type", "vod"])
        .args([
            "-hls_segment_type",
            "fmp4",
            "-var_stream_map",
            &stream_map.join(" "),
        ])
        .args(["-master_pl_name", "master.m3u8", "-hls_segment_filename"])
        .arg(out.join("v%v-%d.m4s"))
        .arg(out.join("v%v.m3u8"));
    let cpu_before = cpu_seconds(libc::RUSAGE_CHILDREN);
    let started = Instant::now();
    run(&mut command);
    Measurement {
        wall_seconds: started.elapsed().as_secs_f64(),
        cpu_seconds: cpu_seconds(libc::RUSAGE_CHILDREN) - cpu_before,
    }
}

/// Reads the video packets and avcC of an MP4 file.
fn demux(path: &Path) -> (AvcConfig, Vec<Packet>) {
    let mut demuxer = FileDemuxer::open(path, &ProbeLimits::default()).expect("open source");
    let config = demuxer.video_config().expect("H.264 video").clone();
    let packets = demuxer
        .packets()
        .filter(|packet| packet.kind == TrackKind::Video)
        .collect();
    (config, packets)
}

/// Sluice: the live transcoder and packager, writing segments and playlists to `out`.
fn sluice_ladder(
    source: &Path,
    rungs: Vec<PlannedRung>,
    preset: Preset,
    out: &Path,
) -> Measurement {
    let cpu_before = cpu_seconds(libc::RUSAGE_SELF);
    let started = Instant::now();
    let (config, packets) = demux(source);
    let settings = EncoderSettings {
        preset,
        keyframe_interval: SEGMENT,
        when_behind: WhenBehind::Wait,
        ..EncoderSettings::default()
    };
    let rung_count = rungs.len();
    let (transcoder, outputs) = LiveTranscoder::start(&config, rungs, settings).expect("start");
    let out = out.to_owned();
    let packager = std::thread::spawn(move || {
        let mut renditions: Vec<(TrackSegmenter, LivePlaylist)> = (0..rung_count)
            .map(|_| {
                (
                    TrackSegmenter::new(1, Timebase::MPEG, SEGMENT),
                    LivePlaylist::new(2, 6, "init.mp4".into()),
                )
            })
            .collect();
        for output in outputs {
            match output {
                TranscoderOutput::Config { rung, config } => {
                    let track = config.track_info(None);
                    let init =
                        sluice_packager::init_segment(&track, 1, Timebase::MPEG.0).expect("init");
                    std::fs::write(out.join(format!("v{rung}-init.mp4")), init)
                        .expect("write init");
                }
                TranscoderOutput::Packet { rung, packet } => {
                    let events = renditions[rung].0.push(packet).expect("segmenter");
                    for event in events {
                        if let sluice_packager::SegmentEvent::Segment(segment) = event {
                            write_segment(&out, rung, &mut renditions[rung].1, segment);
                        }
                    }
                }
                TranscoderOutput::Finished { rung } => {
                    let (segmenter, playlist) = &mut renditions[rung];
                    for segment in segmenter.finish().expect("finish") {
                        write_segment(&out, rung, playlist, segment);
                    }
                }
            }
        }
    });
    for packet in packets {
        transcoder.push(packet).expect("push");
    }
    let stats = transcoder.finish();
    packager.join().expect("packager thread");
    assert_eq!(
        stats.packets_dropped, 0,
        "nothing is dropped with WhenBehind::Wait"
    );
    Measurement {
        wall_seconds: started.elapsed().as_secs_f64(),
        cpu_seconds: cpu_seconds(libc::RUSAGE_SELF) - cpu_before,
    }
}

/// Writes a segment file and rewrites its rendition's playlist, as a live packager does.
fn write_segment(
    out: &Path,
    rung: usize,
    playlist: &mut LivePlaylist,
    segment: sluice_packager::CompletedSegment,
) {
    let name = format!("v{rung}-{}.m4s", segment.sequence);
    std::fs::write(out.join(&name), &segment.data).expect("write segment");
    playlist.push_segment(name, segment.duration.as_secs_f64(), chrono::Utc::now());
    std::fs::write(out.join(format!("v{rung}.m3u8")), playlist.render()).expect("write playlist");
}

/// CPU seconds (user + system) a process has used so far, from /proc.
fn process_cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields 14 and 15 of stat (utime, stime), counted after the ")" as 11 and 12 (0-based).
    let clock = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / clock
}

fn curl(args: &[&str]) -> String {
    let output = Command::new("curl")
        .args(["-s"])
        .args(args)
        .output()
        .expect("curl");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("free port")
}

/// The real server, a real-time RTMP publish of `source`, the default ladder.
fn live_server_run(source: &Path, work: &Path) -> (f64, f64, u64) {
    let (http, rtmp) = (free_port(), free_port());
    let mut server = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("serve")
        .env("SLUICE_HTTP", format!("127.0.0.1:{http}"))
        .env("SLUICE_RTMP", format!("127.0.0.1:{rtmp}"))
        .env("SLUICE_DATA_DIR", work.join("server"))
        .env("SLUICE_API_KEY", "bench")
        .env("SLUICE_API_SECRET", "bench-secret")
        .env("SLUICE_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start sluice");
    let base = format!("http://127.0.0.1:{http}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("{base}/healthz"),
    ]) != "200"
    {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let created = curl(&[
        "-u",
        "bench:bench-secret",
        "-H",
        "content-type: application/json",
        "-d",
        r#"{"name": "bench"}"#,
        &format!("{base}/v1/live-streams"),
    ]);
    let created: serde_json::Value = serde_json::from_str(&created).expect("created JSON");
    let data = &created["data"];
    let (id, key, playback) = (
        data["id"].as_str().unwrap().to_owned(),
        data["stream_key"].as_str().unwrap().to_owned(),
        data["playback_ids"][0]["id"].as_str().unwrap().to_owned(),
    );
    let cpu_before = process_cpu_seconds(server.id());
    let started = Instant::now();
    let mut publisher = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-re", "-i"])
        .arg(source)
        .args([
            "-c",
            "copy",
            "-f",
            "flv",
            &format!("rtmp://127.0.0.1:{rtmp}/live/{key}"),
        ])
        .spawn()
        .expect("ffmpeg publishes");
    let master = format!("{base}/hls/{playback}/master.m3u8");
    let first_segment = loop {
        if curl(&[&master]).contains("#EXT-X-STREAM-INF") {
            break started.elapsed().as_secs_f64();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no master playlist"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(publisher.wait().expect("publisher").success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let dropped = loop {
        let body = curl(&[
            "-u",
            "bench:bench-secret",
            &format!("{base}/v1/live-streams/{id}"),
        ]);
        let body: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        // An idle stream still shows its last session, with the final counters.
        if body["data"]["status"] == "idle" {
            break body["data"]["current_session"]["frames_dropped"]
                .as_u64()
                .expect("the last session's frames_dropped");
        }
        assert!(Instant::now() < deadline, "stream never went idle");
        std::thread::sleep(Duration::from_millis(200));
    };
    let cpu = process_cpu_seconds(server.id()) - cpu_before;
    let _ = server.kill();
    let _ = server.wait();
    (first_segment, cpu / f64::from(MEDIA_SECONDS), dropped)
}

fn main() {
    let preset_name = std::env::args()
        .skip_while(|arg| arg != "--preset")
        .nth(1)
        .unwrap_or_else(|| "superfast".to_owned());
    let preset: Preset =
        serde_json::from_value(serde_json::json!(preset_name)).expect("known preset");
    let work = tempfile::tempdir().expect("temp dir");
    let media = f64::from(MEDIA_SECONDS);

    println!(
        "Live ladder, x264 preset {preset_name}, {MEDIA_SECONDS} s sources, {} cores",
        num_cores()
    );
    println!();
    println!("| source | rungs | ffmpeg CLI CPU-s/s | Sluice CPU-s/s | Sluice / ffmpeg CPU | ffmpeg speed | Sluice speed |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    let mut sources = Vec::new();
    for (label, size, width, height) in [
        ("720p30", "1280x720", 1280, 720),
        ("1080p30", "1920x1080", 1920, 1080),
    ] {
        let source = make_source(work.path(), size);
        let rungs = plan(&Ladder::DEFAULT, width, height, Some(30.0)).expect("plan");
        let names: Vec<&str> = rungs.iter().map(PlannedRung::name).collect();
        let ffmpeg_out = work.path().join(format!("ffmpeg-{label}"));
        let sluice_out = work.path().join(format!("sluice-{label}"));
        std::fs::create_dir_all(&ffmpeg_out).unwrap();
        std::fs::create_dir_all(&sluice_out).unwrap();
        let ffmpeg = ffmpeg_ladder(&source, &rungs, &preset_name, &ffmpeg_out);
        let sluice = sluice_ladder(&source, rungs.clone(), preset, &sluice_out);
        println!(
            "| {label} | {} | {:.2} | {:.2} | {:.2} | {:.2}x | {:.2}x |",
            names.join(" "),
            ffmpeg.cpu_per_media_second(media),
            sluice.cpu_per_media_second(media),
            sluice.cpu_seconds / ffmpeg.cpu_seconds,
            ffmpeg.speed(media),
            sluice.speed(media),
        );
        sources.push(source);
    }
    let (first_segment, server_cpu, dropped) = live_server_run(&sources[1], work.path());
    println!();
    println!("Real-time RTMP publish of the 1080p30 source to a default-ladder stream (the server binary):");
    println!();
    println!("| first RTMP byte → first segment in master | server CPU-s per media second | frames dropped |");
    println!("| --- | --- | --- |");
    println!("| {first_segment:.2} s | {server_cpu:.2} | {dropped} |");
}

fn num_cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}
