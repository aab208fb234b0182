//! Black-box test harness: starts the real `sluice` binary on free loopback ports with a
//! temporary data directory, and drives it with real clients (HTTP, the ffmpeg CLI, ffprobe).

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;
use sluice_storage::test_support::TestDatabase;

pub mod cluster;
pub mod live;
pub mod participants;
pub mod restream;
pub mod speech;
pub mod vod;
pub mod whip;

pub const API_KEY: &str = "test-key";
pub const API_SECRET: &str = "test-secret-0123456789";

/// A running `sluice serve` process, killed on drop.
pub struct Server {
    child: Child,
    pub http_port: u16,
    pub rtmp_port: u16,
    pub data_dir: tempfile::TempDir,
    log_path: PathBuf,
    launch: Launch,
}

/// How a test server is started.
#[derive(Clone)]
pub struct Launch {
    /// Pass [`API_KEY`]/[`API_SECRET`] through SLUICE_API_KEY/SLUICE_API_SECRET (otherwise the
    /// server creates and prints its first key).
    pub api_key_from_env: bool,
    /// Contents of a TOML configuration file given with SLUICE_CONFIG.
    pub config: Option<String>,
    /// Metadata database given with DATABASE_URL; `None` leaves the server its SQLite file in
    /// the data directory. Default: a fresh Postgres database of its own when
    /// SLUICE_TEST_POSTGRES_URL names a server (`make test` runs the API suites so), else
    /// `None`. Shared by clones, so a restarted server finds its data again; dropped with the
    /// last of them.
    pub database: Option<Arc<TestDatabase>>,
    /// Object storage given with SLUICE_STORAGE; `None` leaves the server its local objects
    /// directory. Default: a prefix of its own in the bucket SLUICE_TEST_STORAGE names
    /// (`make test-scale` runs the media suites so), else `None`. Shared by clones, like
    /// `database`.
    pub storage: Option<Arc<TestStorage>>,
}

impl Default for Launch {
    fn default() -> Self {
        Launch {
            api_key_from_env: true,
            config: None,
            database: TestDatabase::postgres_from_env().map(Arc::new),
            storage: TestStorage::from_env().map(Arc::new),
        }
    }
}

impl Launch {
    /// Points a `sluice` command at this launch's object storage (the AWS variables naming the
    /// S3 server are inherited from the test's environment).
    pub fn storage_env(&self, command: &mut Command) {
        command.env_remove("SLUICE_STORAGE");
        if let Some(storage) = &self.storage {
            command.env("SLUICE_STORAGE", &storage.url);
        }
    }
}

/// A key prefix of its own in the test S3 bucket, for one test server; its objects are
/// removed when it is dropped.
pub struct TestStorage {
    /// `s3://BUCKET/PREFIX`, as given to `--storage`.
    pub url: String,
    /// Where the S3 server (s3s-fs, which keeps objects as plain files) stores the prefix.
    pub objects_dir: PathBuf,
}

impl TestStorage {
    /// A fresh prefix under SLUICE_TEST_STORAGE (`s3://BUCKET/PREFIX`) when it is set.
    pub fn from_env() -> Option<TestStorage> {
        std::env::var("SLUICE_TEST_STORAGE")
            .ok()
            .filter(|url| !url.is_empty())
            .map(|base| TestStorage::under(&base))
    }

    /// A fresh prefix under `base` (`s3://BUCKET/PREFIX`) on the S3 server of
    /// scripts/test-s3.sh, whose objects are files under SLUICE_TEST_S3_ROOT.
    pub fn under(base: &str) -> TestStorage {
        let root = std::env::var("SLUICE_TEST_S3_ROOT")
            .expect("S3 test storage needs SLUICE_TEST_S3_ROOT (see scripts/test-s3.sh)");
        let base = base.trim_end_matches('/');
        let path = base
            .strip_prefix("s3://")
            .expect("S3 test storage is an s3:// URL");
        let unique = format!("t{:016x}", rand::random::<u64>());
        TestStorage {
            url: format!("{base}/{unique}"),
            objects_dir: Path::new(&root).join(path).join(unique),
        }
    }
}

impl Drop for TestStorage {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.objects_dir);
    }
}

/// Times a server is started on fresh ports when its ports were taken meanwhile.
const LAUNCH_ATTEMPTS: u32 = 3;

/// Starts `sluice serve` on `data_dir` and the given ports, logging to `log_path`.
fn spawn_server(
    launch: &Launch,
    data_dir: &Path,
    log_path: &Path,
    http_port: u16,
    rtmp_port: u16,
) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .expect("log file");
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command
        .arg("serve")
        .env("SLUICE_HTTP", format!("127.0.0.1:{http_port}"))
        .env("SLUICE_RTMP", format!("127.0.0.1:{rtmp_port}"))
        .env("SLUICE_DATA_DIR", data_dir)
        .env("SLUICE_PUBLIC_URL", format!("http://127.0.0.1:{http_port}"))
        .env("SLUICE_LOG", "info,sluice=debug")
        .env_remove("SLUICE_API_KEY")
        .env_remove("SLUICE_API_SECRET")
        .env_remove("SLUICE_CONFIG")
        .env_remove("DATABASE_URL");
    launch.storage_env(&mut command);
    if let Some(database) = &launch.database {
        command.env("DATABASE_URL", database.url());
    }
    if launch.api_key_from_env {
        command
            .env("SLUICE_API_KEY", API_KEY)
            .env("SLUICE_API_SECRET", API_SECRET);
    }
    if let Some(config) = &launch.config {
        let path = data_dir.join("sluice.toml");
        std::fs::write(&path, config).expect("config file");
        command.env("SLUICE_CONFIG", path);
    }
    command
        .stdout(log.try_clone().expect("log handle"))
        .stderr(log)
        .spawn()
        .expect("start sluice")
}

/// The text `log_path` gained from byte `log_start` on.
fn log_since(log_path: &Path, log_start: u64) -> String {
    let log = std::fs::read_to_string(log_path).unwrap_or_default();
    log.get(usize::try_from(log_start).unwrap_or(0)..)
        .unwrap_or("")
        .to_owned()
}

/// Waits until `child`, logging to `log_path` from byte `log_start` on, is running on
/// `http_port`: its log says so and its health check answers, while it is still alive (so a
/// port that another process answers on does not pass). `false` if it exits or takes over
/// 60 s.
fn wait_healthy(child: &mut Child, http_port: u16, log_path: &Path, log_start: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    let running = format!("http=127.0.0.1:{http_port} ");
    loop {
        if child.try_wait().expect("sluice status").is_some() || Instant::now() > deadline {
            return false;
        }
        let log = log_since(log_path, log_start);
        let said_running = log
            .lines()
            .any(|line| line.contains("Sluice is running.") && line.contains(&running));
        if said_running
            && http_get(&format!("http://127.0.0.1:{http_port}/healthz")).status == 200
            && child.try_wait().expect("sluice status").is_none()
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts a `sluice serve` process with `spawn(http_port, rtmp_port)` on fresh ports, logging
/// to `log_path`, and waits until it is healthy; returns it with its ports. A port found free
/// can be taken by another process before the server binds it: the server then exits saying
/// so, and is started again on other ports. Panics with the log when `what` does not become
/// healthy.
pub fn start_healthy(
    what: &str,
    log_path: &Path,
    mut spawn: impl FnMut(u16, u16) -> Child,
) -> (Child, u16, u16) {
    for attempt in 1..=LAUNCH_ATTEMPTS {
        let (http_port, rtmp_port) = (free_port(), free_port());
        let log_start = std::fs::metadata(log_path).map_or(0, |m| m.len());
        let mut child = spawn(http_port, rtmp_port);
        if wait_healthy(&mut child, http_port, log_path, log_start) {
            return (child, http_port, rtmp_port);
        }
        let _ = child.kill();
        let _ = child.wait();
        if attempt < LAUNCH_ATTEMPTS && log_since(log_path, log_start).contains("binding") {
            continue;
        }
        let log = std::fs::read_to_string(log_path).unwrap_or_default();
        panic!("{what} did not become healthy:\n{log}");
    }
    unreachable!("the last attempt returns or panics")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

impl Server {
    /// Starts the server with the test API key and waits until its health check answers.
    pub fn start() -> Server {
        Self::launch(Launch::default())
    }

    /// Starts the server as `launch` says, on a new data directory.
    pub fn launch(launch: Launch) -> Server {
        Self::launch_in(launch, tempfile::tempdir().expect("temp dir"))
    }

    /// Stops the server with SIGTERM and starts it again on the same data directory.
    pub fn restart(mut self) -> Server {
        assert!(self.terminate(), "sluice exits 0 on SIGTERM");
        self.relaunch()
    }

    /// Kills the server with SIGKILL, as a crash would, and starts it again on the same data
    /// directory.
    pub fn crash_and_restart(mut self) -> Server {
        self.child.kill().expect("SIGKILL sent");
        self.child.wait().expect("wait for sluice");
        self.relaunch()
    }

    fn relaunch(mut self) -> Server {
        let data_dir =
            std::mem::replace(&mut self.data_dir, tempfile::tempdir().expect("temp dir"));
        Self::launch_in(self.launch.clone(), data_dir)
    }

    fn launch_in(launch: Launch, data_dir: tempfile::TempDir) -> Server {
        // Appended to, so a restarted server's log follows the first one's.
        let log_path = data_dir.path().join("server.log");
        let (child, http_port, rtmp_port) = start_healthy("the server", &log_path, |http, rtmp| {
            spawn_server(&launch, data_dir.path(), &log_path, http, rtmp)
        });
        Server {
            child,
            http_port,
            rtmp_port,
            data_dir,
            log_path,
            launch,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http_port)
    }

    pub fn rtmp_url(&self, stream_key: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{stream_key}", self.rtmp_port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The server process's peak resident set so far, in KiB (`VmHWM`).
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the server's /proc status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc status")
    }

    /// The directory holding the server's objects as files, one per key: `objects` in the
    /// data directory, or the S3 server's directory of the server's prefix.
    pub fn objects_dir(&self) -> PathBuf {
        match &self.launch.storage {
            Some(storage) => storage.objects_dir.clone(),
            None => self.data_dir.path().join("objects"),
        }
    }

    /// Sends SIGTERM and waits for the process to exit; returns whether it exited cleanly.
    pub fn terminate(&mut self) -> bool {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .map(|status| status.success())
            .unwrap_or(false);
        assert!(sent, "SIGTERM sent");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for sluice") {
                return status.success();
            }
            assert!(
                Instant::now() < deadline,
                "sluice did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Connects to the RTMP port and performs the plain handshake as a client.
    pub fn rtmp_handshaken(&self) -> std::net::TcpStream {
        use std::io::{Read, Write};
        let mut socket = std::net::TcpStream::connect(("127.0.0.1", self.rtmp_port)).unwrap();
        let mut c0c1 = vec![3u8];
        c0c1.extend(std::iter::repeat_n(0u8, 1536));
        socket.write_all(&c0c1).unwrap();
        let mut s0s1s2 = vec![0u8; 1 + 1536 * 2];
        socket.read_exact(&mut s0s1s2).unwrap();
        socket.write_all(&s0s1s2[1..1537]).unwrap();
        socket
    }

    /// Whether the server process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// `POST /v1/live-streams` with Basic auth; returns the `data` object.
    pub fn create_live_stream(&self, body: Value) -> Value {
        let (status, json) = self.api("POST", "/v1/live-streams", Some(body));
        assert_eq!(status, 201, "create live stream: {json}");
        json["data"].clone()
    }

    /// Calls the API with Basic auth and returns the status and JSON body.
    pub fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.api_as(API_KEY, API_SECRET, method, path, body)
    }

    /// Calls the API with Basic auth as `key`:`secret`; returns the status and JSON body.
    pub fn api_as(
        &self,
        key: &str,
        secret: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.api_with_authorization(&basic_auth(key, secret), method, path, body)
    }

    /// Waits until the media playlist `uri` of `playback_id` carries `#EXT-X-ENDLIST`, and
    /// returns its text.
    pub fn ended_playlist(&self, playback_id: &str, uri: &str) -> String {
        wait_for(&format!("{uri} to end"), Duration::from_secs(30), || {
            let text = self.get(&format!("/hls/{playback_id}/{uri}")).text();
            text.contains("#EXT-X-ENDLIST").then_some(text)
        })
    }

    /// Fetches and parses the media playlist `uri` of `playback_id`.
    pub fn media_playlist(&self, playback_id: &str, uri: &str) -> m3u8_rs::MediaPlaylist {
        let response = self.get(&format!("/hls/{playback_id}/{uri}"));
        assert_eq!(response.status, 200, "GET {uri}");
        match m3u8_rs::parse_playlist_res(&response.body) {
            Ok(m3u8_rs::Playlist::MediaPlaylist(playlist)) => playlist,
            other => panic!("{uri} is not a media playlist: {other:?}"),
        }
    }

    /// Fetches a URL path with the test key's Basic auth (what the API serves as text).
    pub fn get_authorized(&self, path: &str) -> HttpResponse {
        let authorization = format!("Authorization: {}", basic_auth(API_KEY, API_SECRET));
        http_request("GET", &self.url(path), &[&authorization], None)
    }

    /// Fetches a URL path (no auth) and returns status, headers and body bytes.
    pub fn get(&self, path: &str) -> HttpResponse {
        http_get(&self.url(path))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- sluice server log ----\n{}", self.log());
        }
    }
}

/// Names of the files under `dir`, recursively, relative to it; none when `dir` is missing.
/// Directories alone do not count: an S3 server keeping objects as files may leave empty ones
/// behind when objects are deleted.
pub fn files_under(dir: &Path) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(current) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let relative = path.strip_prefix(dir).unwrap();
                names.insert(relative.to_string_lossy().into_owned());
            }
        }
    }
    names
}

/// A minimal HTTP response as seen by curl.
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }
}

/// GET with curl, capturing headers separately from the body.
pub fn http_get(url: &str) -> HttpResponse {
    http_request("GET", url, &[], None)
}

/// How long one request of [`http_request`] may take before the test fails.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(120);

/// Any request with curl: `headers` as `Name: value`, an optional body sent as is; a request
/// with no complete response within [`HTTP_TIMEOUT`] fails the test.
pub fn http_request(
    method: &str,
    url: &str,
    headers: &[&str],
    body: Option<&[u8]>,
) -> HttpResponse {
    let dir = tempfile::tempdir().expect("temp dir");
    let headers_path = dir.path().join("headers");
    let body_path = dir.path().join("body");
    let mut command = Command::new("curl");
    command
        .args(["-s", "-X", method, "-D"])
        .arg(&headers_path)
        .arg("-o")
        .arg(&body_path);
    for header in headers {
        command.args(["-H", header]);
    }
    if let Some(body) = body {
        let request_body = dir.path().join("request");
        std::fs::write(&request_body, body).expect("request body");
        command
            .arg("--data-binary")
            .arg(format!("@{}", request_body.display()));
    }
    let output = command
        .args(["--max-time", &HTTP_TIMEOUT.as_secs().to_string()])
        .args(["-w", "%{http_code}", url])
        .output()
        .expect("curl");
    // curl's exit status 28: the operation timed out.
    assert_ne!(
        output.status.code(),
        Some(28),
        "{method} {url}: no complete response within {HTTP_TIMEOUT:?}"
    );
    let status = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    let headers = std::fs::read_to_string(&headers_path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
        .collect();
    let body = std::fs::read(&body_path).unwrap_or_default();
    HttpResponse {
        status,
        headers,
        body,
    }
}

/// Whether the server closes `socket` (end of stream or reset) with no read waiting longer than
/// `within`; what it sends before is skipped.
pub fn closed_by_server(mut socket: std::net::TcpStream, within: Duration) -> bool {
    use std::io::{ErrorKind, Read};
    socket.set_read_timeout(Some(within)).unwrap();
    let mut buffer = [0u8; 8192];
    loop {
        match socket.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(error) => {
                return matches!(
                    error.kind(),
                    ErrorKind::ConnectionReset
                        | ErrorKind::ConnectionAborted
                        | ErrorKind::BrokenPipe
                )
            }
        }
    }
}

/// An ffmpeg process publishing a synthetic test pattern and tone over RTMP.
pub struct Publisher {
    child: Child,
}

impl Publisher {
    /// Publishes `seconds` of `testsrc2` at `size` and `fps` with a sine tone, in real time,
    /// as H.264 (2 s GOP, B-frames) + AAC, the way OBS is usually configured.
    pub fn start(url: &str, size: &str, fps: u32, seconds: u32) -> Publisher {
        let gop = (fps * 2).to_string();
        let encoding = ["-g", &gop, "-bf", "2", "-b:v", "1500k"];
        Publisher::start_encoded(url, size, fps, seconds, &encoding)
    }

    /// Like [`Publisher::start`], with `encoding` (ffmpeg output options: GOP, B-frames, rate
    /// control, a `-vf` filter) instead of the usual settings.
    pub fn start_encoded(
        url: &str,
        size: &str,
        fps: u32,
        seconds: u32,
        encoding: &[&str],
    ) -> Publisher {
        let child = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-re"])
            .args(["-f", "lavfi", "-i"])
            .arg(format!(
                "testsrc2=size={size}:rate={fps}:duration={seconds}"
            ))
            .args(["-f", "lavfi", "-i"])
            .arg(format!(
                "sine=frequency=440:sample_rate=48000:duration={seconds}"
            ))
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv420p",
            ])
            .args(encoding)
            .args(["-c:a", "aac", "-b:a", "128k", "-f", "flv", url])
            .stdin(Stdio::null())
            .spawn()
            .expect("start ffmpeg");
        Publisher { child }
    }

    /// Waits for ffmpeg to finish and returns whether it exited successfully.
    pub fn wait(mut self) -> bool {
        self.child
            .wait()
            .map(|status| status.success())
            .unwrap_or(false)
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `Some(success)` once ffmpeg has exited, `None` while it runs.
    pub fn exited(&mut self) -> Option<bool> {
        self.child
            .try_wait()
            .expect("ffmpeg status")
            .map(|status| status.success())
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.kill();
    }
}

impl participants::RoomServer for Server {
    fn url(&self, path: &str) -> String {
        Server::url(self, path)
    }

    fn log(&self) -> String {
        Server::log(self)
    }
}

/// An access token for `identity` (named in capitals) to join the room `room_id`.
pub fn room_token(server: &Server, room_id: &str, identity: &str) -> String {
    let (status, minted) = server.api(
        "POST",
        &format!("/v1/rooms/{room_id}/tokens"),
        Some(serde_json::json!({"identity": identity, "name": identity.to_uppercase()})),
    );
    assert_eq!(status, 201, "{minted}");
    minted["data"]["token"].as_str().unwrap().to_owned()
}

/// Polls `check` every 200 ms until it returns `Some`, or panics after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Runs ffprobe with `args` on `input` and parses its JSON output.
pub fn ffprobe(input: &Path, args: &[&str]) -> Value {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-of", "json"])
        .args(args)
        .arg(input)
        .output()
        .expect("ffprobe");
    assert!(
        output.status.success(),
        "ffprobe failed on {}: {}",
        input.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("ffprobe JSON")
}

/// Decodes every stream of `input` (a file or URL) with the ffmpeg CLI and asserts that it
/// reports no error at all.
pub fn decode_cleanly(input: impl AsRef<std::ffi::OsStr>) {
    let input = input.as_ref();
    let output = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-xerror", "-i"])
        .arg(input)
        // Keep each stream's own time base: a live source's frames can sit closer than one
        // frame period (publisher jitter), which the default 1/frame-rate time base of the
        // null muxer would turn into equal timestamps and a spurious error.
        .args(["-map", "0", "-enc_time_base", "-1", "-f", "null", "-"])
        .output()
        .expect("ffmpeg");
    assert!(
        output.status.success() && output.stderr.is_empty(),
        "decoding {} reported: {}",
        input.to_string_lossy(),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl Server {
    /// Calls the API with any `Authorization` header value (e.g. `Bearer …`); returns the
    /// status and JSON body.
    pub fn api_with_authorization(
        &self,
        authorization: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let authorization = format!("authorization: {authorization}");
        let body = body.map(|body| body.to_string());
        let mut headers = vec![authorization.as_str()];
        if body.is_some() {
            headers.push("content-type: application/json");
        }
        let response = http_request(
            method,
            &self.url(path),
            &headers,
            body.as_deref().map(str::as_bytes),
        );
        let json = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        (response.status, json)
    }

    /// Runs `sluice ARGS…` on this server's data directory (`--data-dir` appended) and
    /// database (its `DATABASE_URL`, if any) with the environment a test controls, and returns
    /// its output.
    pub fn sluice_cli(&self, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
        command
            .args(args)
            .arg("--data-dir")
            .arg(self.data_dir.path())
            .env_remove("SLUICE_DATA_DIR")
            .env_remove("SLUICE_CONFIG")
            .env_remove("SLUICE_MASTER_KEY")
            .env_remove("SLUICE_LOG")
            .env_remove("RUST_BACKTRACE")
            .env_remove("DATABASE_URL")
            .stdin(Stdio::null());
        if let Some(database) = &self.launch.database {
            command.env("DATABASE_URL", database.url());
        }
        for (name, value) in env {
            command.env(name, value);
        }
        command.output().expect("run sluice")
    }
}

/// `Authorization` value for HTTP Basic credentials `key`:`secret`: `Basic …`.
pub fn basic_auth(key: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{key}:{secret}"))
    )
}

/// A JWT of `claims` signed HS256 with `secret`, the way API tokens are signed with their API
/// key's secret.
pub fn hs256_jwt(claims: Value, secret: impl AsRef<[u8]>) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_ref()),
    )
    .expect("an HS256 JWT")
}

/// `POST /v1/signing-keys` as the test admin key; returns the `data` object.
pub fn create_signing_key(server: &Server, algorithm: &str) -> Value {
    let (status, body) = server.api(
        "POST",
        "/v1/signing-keys",
        Some(serde_json::json!({"algorithm": algorithm})),
    );
    assert_eq!(status, 201, "{body}");
    body["data"].clone()
}

/// A playback token signed by `key` (a created signing key with its private key).
pub fn playback_token(key: &Value, claims: Value) -> String {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let pem = key["private_key"].as_str().unwrap().as_bytes();
    let (algorithm, encoding_key) = match key["algorithm"].as_str().unwrap() {
        "ES256" => (Algorithm::ES256, EncodingKey::from_ec_pem(pem).unwrap()),
        "RS256" => (Algorithm::RS256, EncodingKey::from_rsa_pem(pem).unwrap()),
        other => panic!("unexpected algorithm {other}"),
    };
    let mut header = Header::new(algorithm);
    header.kid = Some(key["id"].as_str().unwrap().to_owned());
    jsonwebtoken::encode(&header, &claims, &encoding_key).unwrap()
}

/// The ids of every `live_stream.created` event so far, oldest first.
pub fn created_event_ids(server: &Server) -> Vec<String> {
    let (status, page) = server.api("GET", "/v1/events?type=live_stream.created&limit=100", None);
    assert_eq!(status, 200, "{page}");
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["id"].as_str().unwrap().to_owned())
        .collect()
}

/// How long hls.js may take to reach the position [`play_with_hlsjs`] asks for.
const PLAYBACK_DEADLINE: Duration = Duration::from_secs(60);

/// Plays `url` with hls.js in headless Chromium (`tests/node/play.mjs`) until the playback
/// position reaches `position` seconds, and returns the player's report (`supported`,
/// `levels`, `maxTime`, `switchedTo`, `errors`) after checking that MSE was available, that no
/// fatal error happened and that `position` was reached within [`PLAYBACK_DEADLINE`].
pub fn play_with_hlsjs(url: &str, position: f64) -> Value {
    let mut command = Command::new("node");
    command
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/node/play.mjs"))
        .arg(url)
        .arg(position.to_string())
        .arg(PLAYBACK_DEADLINE.as_secs().to_string());
    // Beyond the player's own deadline, Chromium's start and shutdown.
    let report = player_report(
        &mut command,
        PLAYBACK_DEADLINE * 2,
        "node tests/node/play.mjs (make test installs Node.js, Chromium and hls.js)",
    );
    assert!(
        report["maxTime"].as_f64().unwrap_or(0.0) >= position,
        "hls.js did not play to {position} s within {PLAYBACK_DEADLINE:?}: {report}"
    );
    report
}

/// Watches the live stream at `url` for `seconds` with `player` (`hlsjs` or `shaka`, each in
/// its low-latency mode) in headless Chromium (`tests/node/live_latency.mjs`) and returns its
/// report (`supported`, `latencies` sampled every 500 ms in seconds, `stalls`, `errors`,
/// `parts` loaded, `maxTime`) after checking that MSE was available and no fatal error happened.
pub fn watch_live(player: &str, url: &str, seconds: u64) -> Value {
    let mut command = Command::new("node");
    command
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/node/live_latency.mjs"
        ))
        .args([player, url, &seconds.to_string()]);
    player_report(
        &mut command,
        Duration::from_secs(seconds) + PLAYBACK_DEADLINE,
        "node tests/node/live_latency.mjs (make test installs Node.js, Chromium, hls.js and Shaka)",
    )
}

/// Plays `url` with `players` hls.js players at once in one headless Chromium page for
/// `seconds` (`tests/node/audience.mjs`) and returns its report (`supported`, `maxTimes` per
/// player, fatal `errors`) after checking that MSE was available and no fatal error happened.
pub fn play_with_audience(url: &str, players: usize, seconds: u64) -> Value {
    let mut command = Command::new("node");
    command
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/node/audience.mjs"
        ))
        .args([url, &players.to_string(), &seconds.to_string()]);
    player_report(
        &mut command,
        Duration::from_secs(seconds) + PLAYBACK_DEADLINE,
        "node tests/node/audience.mjs (make test installs Node.js, Chromium and hls.js)",
    )
}

/// Runs a player script (`what` names it) within `timeout` and returns the JSON report of its
/// last output line, after checking that the script succeeded, MSE was available and no fatal
/// player error happened.
fn player_report(command: &mut Command, timeout: Duration, what: &str) -> Value {
    let output = output_within(command, timeout, what);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "player script failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("player report is not JSON ({e}): {stdout}"));
    assert_eq!(report["supported"], true, "MSE available: {report}");
    let fatal = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .any(|error| error["fatal"] == true);
    assert!(!fatal, "fatal player errors: {report}");
    report
}

/// Runs `command` to its end with its output captured, like [`Command::output`], but kills
/// it and fails the test if it runs longer than `timeout`; `what` names it in messages.
pub fn output_within(command: &mut Command, timeout: Duration, what: &str) -> std::process::Output {
    use std::io::Read;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {what}: {e}"));
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(child.stdout.take().map(|pipe| Box::new(pipe) as _));
    let stderr = drain(child.stderr.take().map(|pipe| Box::new(pipe) as _));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("child status") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            // Its output is not awaited: a process it started may still hold the pipes.
            panic!("{what} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    std::process::Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}
