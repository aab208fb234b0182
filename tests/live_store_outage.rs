//! The object store goes away for 30 s in the middle of a live stream: the stream goes on, and
//! once the store is back every segment the packager produced is stored and listed, with
//! contiguous media sequence numbers.
//!
//! Two stores: the local one (its root directory moved away and a regular file put in its
//! place, so every write fails with ENOTDIR until the directory is moved back), and S3: an
//! s3s-fs server of the test's own (the binary scripts/test-s3.sh installs, named by
//! SLUICE_TEST_S3_SERVER) stopped and started again on the same port and root. The S3 variant
//! runs under `make test-s3`, which fails it when that variable is missing; elsewhere it is
//! skipped.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::live::{segment_number, wait_idle};
use common::{wait_for, Launch, Publisher, Server};
use serde_json::json;

/// How long the store stays away.
const OUTAGE: Duration = Duration::from_secs(30);
/// Length of the publish: the outage sits in its middle, with a margin for a slow start.
const PUBLISH_SECONDS: u32 = 90;
/// A window longer than the stream: every segment stays listed, none is evicted.
const LIVE_CONFIG: &str = "[live]\nplaylist_window = 200\n";

/// Keys of the segments the packager spooled, from the server's log (in spooling order).
fn spooled_segments(log: &str) -> Vec<String> {
    log.lines()
        .filter(|line| line.contains("Live segment spooled."))
        .filter_map(|line| {
            line.split_whitespace()
                .find_map(|field| field.strip_prefix("key="))
                .map(str::to_owned)
        })
        .collect()
}

/// Publishes a minute and a half to a passthrough stream of `server`, calls `take_down` once three
/// segments are listed and `bring_back` 30 s later, then checks that nothing was lost: every
/// segment the packager spooled is listed in the ended playlists, in order and numbered from 0
/// without a gap, stored under `objects` and served.
fn publish_through_an_outage(
    server: &Server,
    objects: &Path,
    take_down: impl FnOnce(),
    bring_back: impl FnOnce(),
) {
    // No reconnect window: the end of the publish ends the session at once, and a publisher
    // cut off mid-stream would show as a second session.
    let stream = server.create_live_stream(
        json!({"name": "outage", "ladder": ["source"], "reconnect_window_s": 0}),
    );
    let id = stream["id"].as_str().unwrap().to_owned();
    let playback_id = stream["playback_ids"][0]["id"].as_str().unwrap().to_owned();
    let mut publisher = Publisher::start(
        &server.rtmp_url(stream["stream_key"].as_str().unwrap()),
        "640x360",
        30,
        PUBLISH_SECONDS,
    );
    wait_for("three listed segments", Duration::from_secs(30), || {
        let text = server
            .get(&format!("/hls/{playback_id}/v0/index.m3u8"))
            .text();
        (text.matches("#EXTINF").count() >= 3).then_some(())
    });

    take_down();
    let spooled_before = spooled_segments(&server.log()).len();
    std::thread::sleep(OUTAGE);
    let spooled_during = spooled_segments(&server.log()).len() - spooled_before;
    assert_eq!(
        publisher.exited(),
        None,
        "the publisher still streams when the store comes back"
    );
    bring_back();
    // The stream went on: segments were cut and spooled all through the outage.
    assert!(
        spooled_during >= 10,
        "{spooled_during} segments spooled in 30 s of outage"
    );

    assert!(publisher.wait(), "the publisher streamed to the end");
    wait_idle(server, &id, Duration::from_secs(120));
    let log = server.log();
    assert!(
        log.contains("Live upload failed; retrying."),
        "the outage was seen by the uploader"
    );
    assert!(!log.contains("not stored"), "nothing was given up");
    assert!(!log.contains("segment refused"), "nothing was refused");
    assert_eq!(
        log.matches("Publisher connected.").count(),
        1,
        "one session from start to end"
    );

    let spooled = spooled_segments(&log);
    let mut listed_total = 0;
    for rendition in ["v0", "a0"] {
        let playlist = server.media_playlist(&playback_id, &format!("{rendition}/index.m3u8"));
        assert!(playlist.end_list, "{rendition} ended");
        assert_eq!(playlist.media_sequence, 0, "{rendition} starts at 0");
        let prefix = format!("live/{id}/{rendition}/");
        let produced: Vec<&str> = spooled
            .iter()
            .filter_map(|key| key.strip_prefix(&prefix))
            .collect();
        let listed: Vec<&str> = playlist
            .segments
            .iter()
            .map(|segment| segment.uri.as_str())
            .collect();
        assert_eq!(
            listed, produced,
            "{rendition}: every produced segment listed, in order"
        );
        // Segment names carry the segmenter's sequence number: contiguous from 0.
        for (expected, uri) in listed.iter().enumerate() {
            assert_eq!(
                segment_number(uri),
                expected as u64,
                "{rendition}: contiguous sequence"
            );
            assert!(
                objects.join(&prefix).join(uri).is_file(),
                "{prefix}{uri} is stored"
            );
            let response = server.get(&format!("/hls/{playback_id}/{rendition}/{uri}"));
            assert_eq!(response.status, 200, "{uri} plays");
        }
        listed_total += listed.len();
    }
    assert_eq!(listed_total, spooled.len());
    // About one video and one audio segment every 2 s of the publish.
    assert!(
        listed_total >= PUBLISH_SECONDS as usize * 8 / 10,
        "{listed_total} segments"
    );
    let spool = server.data_dir.path().join("spool").join("live");
    assert_eq!(
        std::fs::read_dir(&spool)
            .map(|dir| dir.count())
            .unwrap_or(0),
        0,
        "the spool is empty"
    );
    let metrics = server.get("/metrics").text();
    assert!(
        metrics.lines().any(
            |line| line.starts_with("sluice_live_upload_failures_total ") && !line.ends_with(" 0")
        ),
        "failures counted:\n{metrics}"
    );
}

#[test]
fn a_local_store_outage_mid_stream_loses_no_segment() {
    let server = Server::launch(Launch {
        config: Some(LIVE_CONFIG.to_owned()),
        storage: None,
        ..Launch::default()
    });
    let objects = server.data_dir.path().join("objects");
    let away = server.data_dir.path().join("objects.away");
    publish_through_an_outage(
        &server,
        &objects,
        || {
            std::fs::rename(&objects, &away).unwrap();
            std::fs::write(&objects, b"the store is down").unwrap();
        },
        || {
            std::fs::remove_file(&objects).unwrap();
            std::fs::rename(&away, &objects).unwrap();
        },
    );
}

/// An s3s-fs server of this test's own, killed on drop.
struct S3Server {
    binary: PathBuf,
    root: tempfile::TempDir,
    port: u16,
    process: Option<Child>,
}

const S3_ACCESS_KEY: &str = "outage-access-key";
const S3_SECRET_KEY: &str = "outage-secret-key";
const S3_BUCKET: &str = "outage";

impl S3Server {
    /// The server binary, or `None` (skip) when the environment does not name one.
    fn binary() -> Option<PathBuf> {
        match std::env::var("SLUICE_TEST_S3_SERVER") {
            Ok(path) if !path.is_empty() => Some(PathBuf::from(path)),
            _ if std::env::var_os("SLUICE_TEST_REQUIRE_S3").is_some() => {
                panic!("SLUICE_TEST_REQUIRE_S3 is set but SLUICE_TEST_S3_SERVER is not")
            }
            _ => {
                eprintln!("skipped: no S3 server binary (see scripts/test-s3.sh)");
                None
            }
        }
    }

    fn start(binary: PathBuf) -> S3Server {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join(S3_BUCKET)).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .unwrap()
            .port();
        let mut server = S3Server {
            binary,
            root,
            port,
            process: None,
        };
        server.run();
        server
    }

    /// Starts the process on the server's port and root, and waits until it answers.
    fn run(&mut self) {
        let process = Command::new(&self.binary)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", S3_ACCESS_KEY, "--secret-key", S3_SECRET_KEY])
            .arg(self.root.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start s3s-fs");
        self.process = Some(process);
        wait_for("s3s-fs to listen", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", self.port))
                .ok()
                .map(|_| ())
        });
    }

    fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }

    fn config(&self, prefix: &str) -> String {
        format!(
            "[storage]\nurl = \"s3://{S3_BUCKET}/{prefix}\"\nendpoint = \"http://127.0.0.1:{}\"\n\
             access_key_id = \"{S3_ACCESS_KEY}\"\nsecret_access_key = \"{S3_SECRET_KEY}\"\n",
            self.port
        )
    }

    /// Where s3s-fs keeps the objects under `prefix`.
    fn objects_dir(&self, prefix: &str) -> PathBuf {
        self.root.path().join(S3_BUCKET).join(prefix)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

#[test]
fn an_s3_outage_mid_stream_loses_no_segment() {
    let Some(binary) = S3Server::binary() else {
        return;
    };
    let s3 = std::cell::RefCell::new(S3Server::start(binary));
    let server = Server::launch(Launch {
        config: Some(format!("{}{LIVE_CONFIG}", s3.borrow().config("media"))),
        storage: None,
        ..Launch::default()
    });
    let objects = s3.borrow().objects_dir("media");
    publish_through_an_outage(
        &server,
        &objects,
        || s3.borrow_mut().stop(),
        || s3.borrow_mut().run(),
    );
}
