//! `make bench` (VOD part): an uploaded 60 s 1080p30 file through the real server, against the
//! ffmpeg CLI producing the same H.264 ladder as HLS, in one run.
//!
//! - **ffmpeg CLI**: one decode, split, a scale and an x264 encode (veryfast, the rung's
//!   bitrate and VBV, 2 s closed GOPs) per rung of `Ladder::DEFAULT`, audio copied, HLS fMP4
//!   with 6 s segments written to disk. Measured: wall time and peak memory.
//! - **Sluice**: the release server with its in-process worker. The file is sent with one
//!   `PUT` to a direct upload's URL; from the moment the PUT returns the bench measures the time
//!   until the master playlist and the first segment of every variant it lists can be fetched
//!   ("first playable"), and until the asset is `ready` (every rendition, playlist, poster and
//!   storyboard written). Peak memory is the server process's `VmHWM`.
//!
//! Usage: `cargo bench --bench vod_upload [-- --seconds 60]`.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{
    cpu_seconds, curl, ffmpeg_ladder_command, make_source, num_cores, peak_rss_mib, targets,
    BenchServer,
};
use sluice_transcoder::{plan, Ladder, PlannedRung};

/// Segment duration of both sides (Sluice's VOD default, Apple's recommendation).
const SEGMENT_SECONDS: u32 = 6;

struct Outcome {
    wall_seconds: f64,
    cpu_seconds: f64,
    peak_mib: f64,
}

/// The ffmpeg CLI doing the ladder as VOD HLS.
fn ffmpeg_vod(source: &Path, rungs: &[PlannedRung], out: &Path) -> Outcome {
    let targets = targets(rungs);
    let mut command = ffmpeg_ladder_command(source, &targets, "veryfast");
    let mut stream_map: Vec<String> = (0..targets.len())
        .map(|index| format!("v:{index},agroup:audio"))
        .collect();
    stream_map.push("a:0,agroup:audio".to_owned());
    command
        .args(["-map", "0:a", "-c:a", "copy"])
        .args(["-f", "hls", "-hls_time", &SEGMENT_SECONDS.to_string()])
        .args(["-hls_playlist_type", "vod", "-hls_segment_type", "fmp4"])
        .args(["-var_stream_map", &stream_map.join(" ")])
        .args(["-master_pl_name", "master.m3u8", "-hls_segment_filename"])
        .arg(out.join("v%v-%d.m4s"))
        .arg(out.join("v%v.m3u8"));
    let cpu_before = cpu_seconds(libc::RUSAGE_CHILDREN);
    let started = Instant::now();
    common::run(&mut command);
    Outcome {
        wall_seconds: started.elapsed().as_secs_f64(),
        cpu_seconds: cpu_seconds(libc::RUSAGE_CHILDREN) - cpu_before,
        peak_mib: peak_rss_mib(libc::RUSAGE_CHILDREN),
    }
}

/// Whether the master playlist at `base/hls/{playback_id}/master.m3u8` and a first segment of
/// every variant it lists can be fetched.
fn playable(base: &str, playback_id: &str) -> bool {
    let root = format!("{base}/hls/{playback_id}");
    let master = curl(&["-f", &format!("{root}/master.m3u8")]);
    let variants: Vec<&str> = master
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect();
    !variants.is_empty()
        && variants.iter().all(|variant| {
            let playlist = curl(&["-f", &format!("{root}/{variant}")]);
            let dir = variant.rsplit_once('/').map_or("", |(dir, _)| dir);
            playlist
                .lines()
                .find(|line| !line.is_empty() && !line.starts_with('#'))
                .is_some_and(|segment| {
                    let url = format!("{root}/{dir}/{segment}");
                    curl(&["-f", "-o", "/dev/null", "-w", "%{http_code}", &url]) == "200"
                })
        })
}

struct SluiceOutcome {
    first_playable: f64,
    ready: f64,
    cpu_seconds: f64,
    peak_mib: f64,
    renditions: usize,
}

/// The real server: create a direct upload, PUT the file, wait for playable and ready.
fn sluice_vod(source: &Path, data: &Path) -> SluiceOutcome {
    let server = BenchServer::start(data);
    let upload = server.api(
        "/v1/uploads",
        Some(r#"{"new_asset_settings": {"playback_policy": ["public"]}}"#),
    );
    let upload_id = upload["data"]["id"].as_str().expect("upload id").to_owned();
    let url = upload["data"]["url"]
        .as_str()
        .expect("upload url")
        .to_owned();
    let cpu_before = common::process_cpu_seconds(server.pid());
    let sent = curl(&[
        "-f",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-T",
        &source.to_string_lossy(),
        &url,
    ]);
    let uploaded = Instant::now();
    assert!(sent.starts_with('2'), "PUT answered {sent}");
    let asset_id = loop {
        let upload = server.api(&format!("/v1/uploads/{upload_id}"), None);
        if let Some(id) = upload["data"]["asset_id"].as_str() {
            break id.to_owned();
        }
        assert!(uploaded.elapsed() < Duration::from_secs(30), "no asset");
        std::thread::sleep(Duration::from_millis(20));
    };
    let asset = server.api(&format!("/v1/assets/{asset_id}"), None);
    let playback_id = asset["data"]["playback_ids"][0]["id"]
        .as_str()
        .expect("playback id")
        .to_owned();
    let mut first_playable = None;
    let (ready, renditions) = loop {
        if first_playable.is_none() && playable(&server.base, &playback_id) {
            first_playable = Some(uploaded.elapsed().as_secs_f64());
        }
        let asset = server.api(&format!("/v1/assets/{asset_id}"), None);
        match asset["data"]["status"].as_str() {
            Some("ready") => {
                let renditions = asset["data"]["renditions"].as_array().map_or(0, Vec::len);
                break (uploaded.elapsed().as_secs_f64(), renditions);
            }
            Some("errored") => panic!("the asset errored: {}", asset["data"]["error"]),
            _ => {}
        }
        assert!(
            uploaded.elapsed() < Duration::from_secs(1200),
            "asset never ready"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    SluiceOutcome {
        first_playable: first_playable.unwrap_or(ready),
        ready,
        cpu_seconds: common::process_cpu_seconds(server.pid()) - cpu_before,
        peak_mib: common::process_peak_rss_mib(server.pid()),
        renditions,
    }
}

fn main() {
    let seconds: u32 = std::env::args()
        .skip_while(|arg| arg != "--seconds")
        .nth(1)
        .map_or(60, |text| text.parse().expect("--seconds N"));
    let work = tempfile::tempdir().expect("temp dir");
    let source = make_source(work.path(), "1920x1080", seconds);
    let rungs = plan(&Ladder::DEFAULT, 1920, 1080, Some(30.0)).expect("plan");
    let names: Vec<&str> = rungs.iter().map(PlannedRung::name).collect();
    let ffmpeg_out = work.path().join("ffmpeg");
    std::fs::create_dir_all(&ffmpeg_out).unwrap();

    let ffmpeg = ffmpeg_vod(&source, &rungs, &ffmpeg_out);
    let sluice = sluice_vod(&source, &work.path().join("server"));

    println!(
        "VOD: {seconds} s 1080p30 source, rungs {}, x264 veryfast, {} cores",
        names.join(" "),
        num_cores()
    );
    println!();
    println!("| | ffmpeg CLI | Sluice (upload → …) | Sluice / ffmpeg |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| ready (all renditions; for Sluice also poster and storyboard) | {:.1} s | {:.1} s | {:.2} |",
        ffmpeg.wall_seconds,
        sluice.ready,
        sluice.ready / ffmpeg.wall_seconds
    );
    println!(
        "| first playable (master + a segment of every variant) | — | {:.1} s | |",
        sluice.first_playable
    );
    println!(
        "| CPU-seconds | {:.1} | {:.1} | {:.2} |",
        ffmpeg.cpu_seconds,
        sluice.cpu_seconds,
        sluice.cpu_seconds / ffmpeg.cpu_seconds
    );
    println!(
        "| peak memory | {:.0} MiB | {:.0} MiB (whole server) | {:.2} |",
        ffmpeg.peak_mib,
        sluice.peak_mib,
        sluice.peak_mib / ffmpeg.peak_mib
    );
    println!();
    println!("Sluice made {} renditions.", sluice.renditions);
}
