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

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::Utc;
use common::{
    cpu_seconds, curl, ffmpeg_ladder_command, make_source, num_cores, process_cpu_seconds, targets,
    BenchServer,
};
use sluice_live::renditions::{
    PackagingInput, PlaylistWindow, SessionPackager, SpoolKind, TreeOutput, TreeSettings,
    VideoRenditionPlan,
};
use sluice_media::{AvcConfig, Packet, TrackKind};
use sluice_transcoder::{
    plan, EncoderSettings, FileDemuxer, Ladder, LiveTranscoder, PlannedRung, Preset, ProbeLimits,
    WhenBehind,
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

/// The ffmpeg CLI: one decode, split, scale, x264 per rung, HLS fMP4.
fn ffmpeg_ladder(source: &Path, rungs: &[PlannedRung], preset: &str, out: &Path) -> Measurement {
    let targets = targets(rungs);
    let mut command = ffmpeg_ladder_command(source, &targets, preset);
    let stream_map: Vec<String> = (0..targets.len())
        .map(|index| format!("v:{index}"))
        .collect();
    command
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
    common::run(&mut command);
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
    let plans = rungs
        .iter()
        .map(|rung| VideoRenditionPlan {
            name: rung.name().to_owned(),
            // The bench's sources are 30 fps and no rung caps below that.
            frame_rate: 30.0,
        })
        .collect();
    let (transcoder, outputs) = LiveTranscoder::start(&config, rungs, settings).expect("start");
    let tree = TreeSettings {
        session_id: sluice_storage::SessionId::parse("ses_bench").unwrap(),
        segment: SEGMENT,
        // Every segment kept, as the ffmpeg CLI's VOD playlists keep them.
        window: PlaylistWindow::Event,
        record: false,
        part_target: None,
        captions: None,
    };
    let output = Box::new(DirectoryTree(out.to_owned()));
    // The live packager itself, on a thread of its own as in a session.
    let packager = std::thread::spawn(move || {
        let mut packager = SessionPackager::new(output, tree, plans, None, Utc::now());
        for input in outputs.into_iter().filter_map(PackagingInput::from_rung) {
            packager.handle(input, Utc::now());
        }
        packager.finish();
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

/// The live packager's tree written to a directory, as a local store would hold it.
struct DirectoryTree(PathBuf);

impl DirectoryTree {
    fn path(&self, path: &[&str]) -> PathBuf {
        let file = path.iter().fold(self.0.clone(), |dir, part| dir.join(part));
        std::fs::create_dir_all(file.parent().expect("a file in the tree")).expect("mkdir");
        file
    }
}

impl TreeOutput for DirectoryTree {
    fn put_media(&self, path: &[&str], body: &[u8], _kind: SpoolKind) -> bool {
        std::fs::write(self.path(path), body).expect("write segment");
        true
    }

    fn put_playlist(&self, path: &[&str], body: Vec<u8>) {
        std::fs::write(self.path(path), body).expect("write playlist");
    }

    fn delete(&self, path: &[&str]) {
        std::fs::remove_file(self.path(path)).expect("delete segment");
    }
}

/// The real server, a real-time RTMP publish of `source`, the default ladder.
fn live_server_run(source: &Path, work: &Path) -> (f64, f64, u64) {
    let server = BenchServer::start(&work.join("server"));
    let (base, rtmp) = (server.base.clone(), server.rtmp_port);
    let created = server.api("/v1/live-streams", Some(r#"{"name": "bench"}"#));
    let data = &created["data"];
    let (id, key, playback) = (
        data["id"].as_str().unwrap().to_owned(),
        data["stream_key"].as_str().unwrap().to_owned(),
        data["playback_ids"][0]["id"].as_str().unwrap().to_owned(),
    );
    let cpu_before = process_cpu_seconds(server.pid());
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
        let body = server.api(&format!("/v1/live-streams/{id}"), None);
        // An idle stream still shows its last session, with the final counters.
        if body["data"]["status"] == "idle" {
            break body["data"]["current_session"]["frames_dropped"]
                .as_u64()
                .expect("the last session's frames_dropped");
        }
        assert!(Instant::now() < deadline, "stream never went idle");
        std::thread::sleep(Duration::from_millis(200));
    };
    let cpu = process_cpu_seconds(server.pid()) - cpu_before;
    drop(server);
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
        let source = make_source(work.path(), size, MEDIA_SECONDS);
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
