//! Black-box: hls.js in headless Chromium plays a live ladder published with ffmpeg.

mod common;

use std::time::Duration;

use common::{play_with_hlsjs, wait_for, Publisher, Server};
use serde_json::json;

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

    let report = play_with_hlsjs(&server.url(&format!("/hls/{playback_id}/master.m3u8")), 4.0);
    assert!(
        report["levels"].as_u64().unwrap_or(0) > 1,
        "more than one level: {report}"
    );
}
