//! Black-box: the web console driven in headless Chromium as a person would
//! (`tests/node/console.mjs`): sign in, create a stream, copy its key, publish with ffmpeg and
//! watch it turn live with a playing preview and a health graph, add a simulcast target (a real
//! nginx-rtmp server), upload a file with the progress bar (resumed after a reload) and play
//! the asset, read a webhook delivery, revoke a key. axe-core checks every page for serious or
//! critical accessibility violations, and every control is reached with the keyboard.
//! Screenshots of each page are left in `target/test-artifacts/console/`.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::restream::{Nginx, LOOPBACK_TARGETS_CONFIG};
use common::{output_within, Launch, Server, API_KEY, API_SECRET};
use sluice_media::fixtures::ffmpeg_clip;

/// The whole walk through, on a loaded machine: two minutes of waiting for a stream to go
/// live and three for an asset to be ready at most, plus the pages themselves.
const WALK_TIMEOUT: Duration = Duration::from_secs(600);

#[test]
fn a_person_runs_streams_assets_webhooks_and_keys_from_the_console() {
    let server = Server::launch(Launch {
        config: Some(LOOPBACK_TARGETS_CONFIG.to_owned()),
        ..Launch::default()
    });
    let target = Nginx::start();
    let work = tempfile::tempdir().unwrap();
    let clip = ffmpeg_clip(
        work.path(),
        "upload.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x180:rate=30:duration=4",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=4",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
        ],
    );
    let artifacts = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("..")
        .join("test-artifacts")
        .join("console");
    let mut walk = Command::new("node");
    walk.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/node/console.mjs"
    ))
    .env("SLUICE_URL", server.url(""))
    .env("SLUICE_KEY_ID", API_KEY)
    .env("SLUICE_KEY_SECRET", API_SECRET)
    .env("CLIP", &clip)
    .env("ARTIFACTS", &artifacts)
    .env("SIMULCAST_URL", target.url());
    let output = output_within(
        &mut walk,
        WALK_TIMEOUT,
        "node tests/node/console.mjs (make test installs Node.js, Chromium, Playwright and axe-core)",
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the console walk-through failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or_default())
            .unwrap_or_else(|e| panic!("the walk-through's summary is not JSON ({e}): {stdout}"));
    assert!(
        artifacts.join("live-stream.png").exists(),
        "screenshots written: {summary}"
    );
}

#[test]
fn the_vendored_hls_js_is_the_release_the_tests_pin() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let vendored = std::fs::read(root.join("console/vendor/hls.min.js")).expect("vendored hls.js");
    let pinned = std::fs::read(root.join("tests/node/node_modules/hls.js/dist/hls.min.js"))
        .expect("hls.js from tests/node (make test installs it)");
    assert!(
        vendored == pinned,
        "console/vendor/hls.min.js differs from the hls.js tests/node/package-lock.json pins: \
         copy it again (console/vendor/README.md)"
    );
}
