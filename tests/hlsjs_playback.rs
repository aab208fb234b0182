//! Black-box: hls.js in headless Chromium plays a live ladder published with ffmpeg.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{wait_for, Publisher, Server};
use serde_json::{json, Value};

#[test]
fn hlsjs_plays_the_live_ladder_in_chromium() {
    let server = Server::start();
    let stream =
        server.create_live_stream(json!({"name": "player test", "ladder": ["source", "360p"]}));
    let playback_id = stream["playback_ids"][0]["id"].as_str().unwrap();
    let _publisher = Publisher::start(
        &server.rtmp_url(stream["stream_key"].as_str().unwrap()),
        "854x480",
        30,
        40,
    );

    // Let a few segments exist so the player has something to buffer.
    wait_for(
        "three segments in the source rendition",
        Duration::from_secs(40),
        || {
            let response = server.get(&format!("/hls/{playback_id}/v0/index.m3u8"));
            (response.status == 200 && response.text().matches("#EXTINF").count() >= 3)
                .then_some(())
        },
    );

    let output = Command::new("node")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/node/play.mjs"))
        .arg(server.url(&format!("/hls/{playback_id}/master.m3u8")))
        .arg("10")
        .output()
        .expect("node tests/node/play.mjs (make test installs Node.js, Chromium and hls.js)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "player script failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("player report is not JSON ({e}): {stdout}"));
    assert_eq!(report["supported"], true, "MSE available: {report}");
    assert!(
        report["levels"].as_u64().unwrap_or(0) > 1,
        "more than one level: {report}"
    );
    let fatal: Vec<&Value> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|error| error["fatal"] == true)
        .collect();
    assert!(fatal.is_empty(), "fatal player errors: {report}");
    assert!(
        report["maxTime"].as_f64().unwrap_or(0.0) > 4.0,
        "playback advanced past 4 s: {report}"
    );
}
