//! Helpers the benches share: making sources with the ffmpeg CLI, measuring processes (CPU
//! from getrusage or /proc, peak memory), and driving the real server over HTTP with curl.

#![allow(dead_code)] // Each bench is its own crate and uses only some of these.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use sluice_live::renditions::{
    AudioInput, PlaylistWindow, SessionPackager, SpoolKind, TreeOutput, TreeSettings,
    VideoRenditionPlan,
};
use sluice_transcoder::{EncodeTarget, PlannedRung, Preset};

#[path = "../../tests/common/speech.rs"]
pub mod speech;

/// User + system CPU seconds of this process (`RUSAGE_SELF`) or its waited-for children.
pub fn cpu_seconds(who: libc::c_int) -> f64 {
    let usage = rusage(who);
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// Largest resident set (MiB) of this process or of the largest waited-for child.
pub fn peak_rss_mib(who: libc::c_int) -> f64 {
    // ru_maxrss is in KiB on Linux.
    rusage(who).ru_maxrss as f64 / 1024.0
}

fn rusage(who: libc::c_int) -> libc::rusage {
    // SAFETY: getrusage fills the struct it is given.
    unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(who, &mut usage);
        usage
    }
}

pub fn run(command: &mut Command) {
    let status = command.status().expect("command runs");
    assert!(status.success(), "{command:?} failed");
}

/// `seconds` of 30 fps testsrc2 at `size` with a sine tone, encoded once with high quality
/// (H.264 veryfast 8 Mb/s, 2 s GOPs, AAC) so decoding it is the only source cost either side
/// pays.
pub fn make_source(dir: &Path, size: &str, seconds: u32) -> PathBuf {
    let path = dir.join(format!("source-{size}-{seconds}s.mp4"));
    run(Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={size}:rate=30:duration={seconds}"))
        .args(["-f", "lavfi", "-i"])
        .arg(format!(
            "sine=frequency=440:sample_rate=48000:duration={seconds}"
        ))
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-b:v", "8000k", "-g", "60",
        ])
        .args(["-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k"])
        .arg(&path));
    path
}

/// The encoded rungs of a plan (a repackaged `source` rung costs the CLI nothing to match).
pub fn targets(rungs: &[PlannedRung]) -> Vec<&EncodeTarget> {
    rungs
        .iter()
        .filter_map(|rung| match rung {
            PlannedRung::Encode(target) => Some(target),
            PlannedRung::Source => None,
        })
        .collect()
}

/// The ffmpeg CLI doing the ladder's video work the way Sluice does: one decode, a split, a
/// scale and an x264 encode per rung with the rung's bitrate and VBV, `preset`, 2 s closed
/// GOPs without scene cuts. Outputs `[v{N}]` are mapped in rung order; the caller adds the
/// audio and the muxer.
pub fn ffmpeg_ladder_command(source: &Path, targets: &[&EncodeTarget], preset: &str) -> Command {
    ladder_command(&[source], "[0:v]", targets, preset)
}

/// As [`ffmpeg_ladder_command`], the ladder fed by a composition of several `inputs`: `canvas`
/// is a filtergraph over them that labels the picture the ladder splits `[canvas]` (and may
/// label more outputs, an audio mix, for the caller to map).
pub fn ffmpeg_composed_ladder_command(
    inputs: &[&Path],
    canvas: &str,
    targets: &[&EncodeTarget],
    preset: &str,
) -> Command {
    ladder_command(inputs, &format!("{canvas};[canvas]"), targets, preset)
}

/// The ladder's command: `pictures` is the filtergraph up to the label of the pictures split
/// into the rungs.
fn ladder_command(
    inputs: &[&Path],
    pictures: &str,
    targets: &[&EncodeTarget],
    preset: &str,
) -> Command {
    let mut filter = format!("{pictures}split={}", targets.len());
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
    command.args(["-hide_banner", "-v", "error", "-y"]);
    for input in inputs {
        command.arg("-i").arg(input);
    }
    command.args(["-filter_complex", &filter]);
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
    command.args([
        "-preset",
        preset,
        "-g",
        "60",
        "-keyint_min",
        "60",
        "-sc_threshold",
        "0",
    ]);
    command
}

/// The x264 preset named after `--preset` on the bench's command line, else `default`; with
/// its name, as the ffmpeg CLI takes it.
pub fn preset_argument(default: Preset) -> (String, Preset) {
    let name = std::env::args()
        .skip_while(|arg| arg != "--preset")
        .nth(1)
        .unwrap_or_else(|| {
            let default = serde_json::to_value(default).expect("preset name");
            default.as_str().expect("preset name").to_owned()
        });
    let preset = serde_json::from_value(serde_json::json!(name)).expect("known preset");
    (name, preset)
}

/// The live packager of a bench session writing its HLS tree under `out`: 2 s segments, every
/// segment kept in the playlists (as the ffmpeg CLI's VOD playlists keep them).
pub fn directory_packager(
    out: &Path,
    video: Vec<VideoRenditionPlan>,
    audio: Option<AudioInput>,
) -> SessionPackager {
    let tree = TreeSettings {
        session_id: sluice_storage::SessionId::parse("ses_bench").expect("session id"),
        segment: Duration::from_secs(2),
        window: PlaylistWindow::Event,
        record: false,
        part_target: None,
        captions: None,
    };
    let output = Box::new(DirectoryTree(out.to_owned()));
    SessionPackager::new(output, tree, video, audio, Utc::now())
}

/// The live packager's tree written to a directory, as a local store would hold it.
pub struct DirectoryTree(pub PathBuf);

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

/// CPU seconds (user + system) a process has used so far, from /proc.
pub fn process_cpu_seconds(pid: u32) -> f64 {
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

/// A running process's peak resident set (`VmHWM`) in MiB, from /proc.
pub fn process_peak_rss_mib(pid: u32) -> f64 {
    process_status_field(pid, "VmHWM:") as f64 / 1024.0
}

/// A numeric field of `/proc/PID/status` (`VmRSS:` in KiB, `Threads:`…); 0 when absent.
pub fn process_status_field(pid: u32, name: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// `ffmpeg -re -stream_loop -1` publishing `source` to the RTMP `url` with stream copy, for
/// `seconds` (or until killed).
pub fn looping_publisher(source: &Path, url: &str, seconds: Option<u32>) -> Child {
    let mut command = Command::new("ffmpeg");
    command
        .args([
            "-hide_banner",
            "-v",
            "error",
            "-re",
            "-stream_loop",
            "-1",
            "-i",
        ])
        .arg(source);
    if let Some(seconds) = seconds {
        command.args(["-t", &seconds.to_string()]);
    }
    command
        .args(["-c", "copy", "-f", "flv", url])
        .stdin(Stdio::null())
        .spawn()
        .expect("start ffmpeg")
}

/// curl's stdout for `args` (silent).
pub fn curl(args: &[&str]) -> String {
    let output = Command::new("curl")
        .args(["-s"])
        .args(args)
        .output()
        .expect("curl");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("free port")
}

pub fn num_cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// API key and secret of the bench server.
pub const API_KEY: &str = "bench";
pub const API_SECRET: &str = "bench-secret";
/// The same as curl's `--user`.
pub const API_USER: &str = "bench:bench-secret";

/// The release server binary, serving on free ports with its data under `data`.
pub struct BenchServer {
    pub process: Child,
    pub base: String,
    pub rtmp_port: u16,
}

impl BenchServer {
    pub fn start(data: &Path) -> Self {
        Self::start_configured(data, None)
    }

    /// As [`BenchServer::start`], with `config` (TOML) as its configuration file.
    pub fn start_configured(data: &Path, config: Option<&str>) -> Self {
        Self::start_role(data, config, "all")
    }

    /// As [`BenchServer::start_configured`], running only `role` (`all`, `api`, `ingest`):
    /// processes of several roles share one data directory (database, objects, master key).
    pub fn start_role(data: &Path, config: Option<&str>, role: &str) -> Self {
        let (http, rtmp) = (free_port(), free_port());
        let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
        command.env("SLUICE_ROLE", role);
        if let Some(config) = config {
            std::fs::create_dir_all(data).expect("data directory");
            let path = data.join("sluice.toml");
            std::fs::write(&path, config).expect("configuration file");
            command.env("SLUICE_CONFIG", path);
        }
        let process = command
            .arg("serve")
            .env("SLUICE_HTTP", format!("127.0.0.1:{http}"))
            .env("SLUICE_RTMP", format!("127.0.0.1:{rtmp}"))
            .env("SLUICE_DATA_DIR", data)
            .env("SLUICE_API_KEY", API_KEY)
            .env("SLUICE_API_SECRET", API_SECRET)
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
        BenchServer {
            process,
            base,
            rtmp_port: rtmp,
        }
    }

    /// `GET`/`POST` (with a JSON body) an API path; the response's JSON.
    pub fn api(&self, path: &str, body: Option<&str>) -> serde_json::Value {
        let url = format!("{}{path}", self.base);
        let mut args = vec!["-u", API_USER];
        if let Some(body) = body {
            args.extend(["-H", "content-type: application/json", "-d", body]);
        }
        args.push(&url);
        serde_json::from_str(&curl(&args)).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.process.id()
    }
}

impl Drop for BenchServer {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// (msn, part) of an LL-HLS part named `{session}-{msn}.{part}.m4s`.
pub fn part_of(name: &str) -> Option<(u64, u64)> {
    let (_, numbers) = name.rsplit_once('-')?;
    let mut fields = numbers.split('.');
    Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
}
