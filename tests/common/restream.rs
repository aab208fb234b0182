//! Helpers of the restreaming tests and benchmark: a private nginx-rtmp server started and
//! stopped with `scripts/test-nginx-rtmp.sh`, and the simulcast target API.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use super::{wait_for, Server};

/// An nginx-rtmp server on a loopback port, recording what it receives; stopped on drop.
pub struct Nginx {
    pub port: u16,
    dir: tempfile::TempDir,
    running: bool,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/test-nginx-rtmp.sh")
}

/// A loopback port nothing listens on now: the address of a target that is down.
pub fn unused_port() -> u16 {
    super::free_port()
}

impl Nginx {
    /// Starts nginx on `port`, pushing what it receives to each of `pushes`.
    pub fn start_on(port: u16, pushes: &[String], record: bool) -> Nginx {
        let dir = tempfile::tempdir().expect("temporary directory");
        let status = Command::new(script())
            .arg("start")
            .arg(dir.path())
            .arg(port.to_string())
            .args(pushes)
            .env("RECORD", if record { "on" } else { "off" })
            .status()
            .expect("run scripts/test-nginx-rtmp.sh");
        assert!(status.success(), "nginx did not start on port {port}");
        Nginx {
            port,
            dir,
            running: true,
        }
    }

    /// Starts a recording nginx on a free port.
    pub fn start() -> Nginx {
        Self::start_on(unused_port(), &[], true)
    }

    /// The URL of its `live` application.
    pub fn url(&self) -> String {
        format!("rtmp://127.0.0.1:{}/live", self.port)
    }

    /// The pid of its master process.
    pub fn pid(&self) -> u32 {
        std::fs::read_to_string(self.dir.path().join("nginx.pid"))
            .expect("nginx.pid")
            .trim()
            .parse()
            .expect("a pid")
    }

    /// Where the stream published with `stream_key` is recorded.
    pub fn recording(&self, stream_key: &str) -> PathBuf {
        self.dir
            .path()
            .join("record")
            .join(format!("{stream_key}.flv"))
    }

    /// nginx's log: connections, publishes and how they ended.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    /// Whether the last connection that published `stream_key` ended its publish itself
    /// (`deleteStream` logged before its `disconnect`), rather than being dropped (nginx then
    /// logs `disconnect` first, and deletes the stream itself).
    pub fn unpublished_cleanly(&self, stream_key: &str) -> bool {
        let log = self.log();
        let connection_of = |line: &str| {
            line.split_whitespace()
                .find(|word| word.starts_with('*'))
                .map(str::to_owned)
        };
        let publish = format!("publish: name='{stream_key}'");
        let Some(connection) = log
            .lines()
            .rev()
            .filter(|line| line.contains(&publish))
            .find_map(connection_of)
        else {
            return false;
        };
        log.lines()
            .filter(|line| connection_of(line).as_ref() == Some(&connection))
            .find_map(|line| {
                if line.contains(" deleteStream,") {
                    Some(true)
                } else if line.contains(" disconnect,") {
                    Some(false)
                } else {
                    None
                }
            })
            .unwrap_or(false)
    }

    /// Stops nginx; its recordings are complete afterwards.
    pub fn stop(&mut self) {
        if std::mem::take(&mut self.running) {
            let _ = Command::new(script())
                .arg("stop")
                .arg(self.dir.path())
                .status();
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A server configuration letting targets be on loopback, retrying quickly.
pub const LOOPBACK_TARGETS_CONFIG: &str = "[restream]\nallow_hosts = [\"127.0.0.1\"]\n\
     retry_min_seconds = 0.2\nretry_max_seconds = 1.0\nconnect_timeout_seconds = 3\n";

/// Adds a target to `stream_id`; returns it.
pub fn add_target(server: &Server, stream_id: &str, url: &str, stream_key: &str) -> Value {
    let (status, body) = server.api(
        "POST",
        &format!("/v1/live-streams/{stream_id}/simulcast-targets"),
        Some(json!({"url": url, "stream_key": stream_key})),
    );
    assert_eq!(status, 201, "{body}");
    body["data"].clone()
}

/// The target as the API shows it now.
pub fn target(server: &Server, stream_id: &str, target_id: &str) -> Value {
    let (status, body) = server.api(
        "GET",
        &format!("/v1/live-streams/{stream_id}/simulcast-targets/{target_id}"),
        None,
    );
    assert_eq!(status, 200, "{body}");
    body["data"].clone()
}

/// Waits until the target's status is `status`; returns the target.
pub fn wait_for_status(server: &Server, stream_id: &str, target_id: &str, status: &str) -> Value {
    wait_for(
        &format!("simulcast target {target_id} to be {status}"),
        Duration::from_secs(30),
        || Some(target(server, stream_id, target_id)).filter(|t| t["status"] == status),
    )
}
