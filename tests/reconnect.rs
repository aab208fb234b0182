//! Black-box: the reconnect window. A publisher killed and restarted inside the window
//! continues the same session and recording, after a discontinuity; one restarted after the
//! window starts a new session and a new recording.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::live::{
    decode_all, event_types, media_playlist, recorded_assets, segment_number, sessions, wait_idle,
};
use common::vod::get_asset;
use common::{http_get, play_with_hlsjs, wait_for, Publisher, Server};
use serde_json::{json, Value};

/// A recorded `["source"]` stream with this reconnect window.
fn recorded_stream(server: &Server, window_s: u32) -> Value {
    server.create_live_stream(json!({
        "name": "reconnecting",
        "ladder": ["source"],
        "record": true,
        "reconnect_window_s": window_s,
    }))
}

/// Starts publishing to `stream` and waits until its source playlist, still live, lists
/// `segments` segments in all; returns the publisher.
fn publish_until(server: &Server, stream: &Value, seconds: u32, segments: usize) -> Publisher {
    let playback_id = stream["playback_ids"][0]["id"].as_str().unwrap();
    let publisher = Publisher::start(
        &server.rtmp_url(stream["stream_key"].as_str().unwrap()),
        "640x360",
        30,
        seconds,
    );
    wait_for(
        &format!("{segments} segments"),
        Duration::from_secs(40),
        || {
            let text = server
                .get(&format!("/hls/{playback_id}/v0/index.m3u8"))
                .text();
            let live = !text.contains("#EXT-X-ENDLIST");
            (live && text.matches("#EXTINF").count() >= segments).then_some(())
        },
    );
    publisher
}

#[test]
fn a_publisher_back_inside_the_window_continues_the_session_and_recording() {
    let server = Server::start();
    let stream = recorded_stream(&server, 30);
    let id = stream["id"].as_str().unwrap();
    let playback_id = stream["playback_ids"][0]["id"].as_str().unwrap();
    let playlist_url = format!("/hls/{playback_id}/v0/index.m3u8");

    let mut first = publish_until(&server, &stream, 60, 3);
    // SIGKILL: the connection just drops, as on a network failure.
    first.kill();
    wait_for("live_stream.disconnected", Duration::from_secs(20), || {
        event_types(&server, id)
            .contains(&"live_stream.disconnected".to_owned())
            .then_some(())
    });
    let (_, body) = server.api("GET", &format!("/v1/live-streams/{id}"), None);
    assert_eq!(
        body["data"]["status"], "active",
        "the stream stays active while reconnecting: {body}"
    );
    assert!(
        body["data"]["current_session"]["ended_at"].is_null(),
        "{body}"
    );

    // The media sequence seen by a player polling the live playlist never goes back.
    let mut sequences = vec![media_playlist(&server.get(&playlist_url).text()).media_sequence];
    let second = Publisher::start(
        &server.rtmp_url(stream["stream_key"].as_str().unwrap()),
        "640x360",
        30,
        10,
    );
    let resumed = wait_for(
        "a discontinuity in the live playlist",
        Duration::from_secs(40),
        || {
            let playlist = media_playlist(&server.get(&playlist_url).text());
            sequences.push(playlist.media_sequence);
            let after = playlist
                .segments
                .iter()
                .skip_while(|segment| !segment.discontinuity)
                .count();
            (after >= 2).then_some(playlist)
        },
    );
    assert!(
        sequences.windows(2).all(|pair| pair[0] <= pair[1]),
        "media sequence never decreases: {sequences:?}"
    );
    let numbers: Vec<u64> = resumed
        .segments
        .iter()
        .map(|segment| segment_number(&segment.uri))
        .collect();
    assert!(
        numbers
            .iter()
            .enumerate()
            .all(|(index, n)| *n == resumed.media_sequence + index as u64),
        "segment numbers continue the media sequence across the reconnection: {numbers:?}"
    );
    assert!(second.wait(), "the second ffmpeg published");
    wait_idle(&server, id, Duration::from_secs(30));

    let all = sessions(&server, id);
    assert_eq!(all.len(), 1, "one session: {all:?}");
    let recorded = recorded_assets(&server, id);
    assert_eq!(recorded.len(), 1, "one recording: {recorded:?}");
    let asset_id = recorded[0]["id"].as_str().unwrap();
    assert_eq!(all[0]["asset_id"], asset_id);
    let asset = wait_for("the recording to be ready", Duration::from_secs(30), || {
        let asset = get_asset(&server, asset_id);
        (asset["status"] == "ready").then_some(asset)
    });
    let url = asset["playback_url"].as_str().unwrap().to_owned();
    let recording = media_playlist(&http_get(&url.replace("master.m3u8", "v0/index.m3u8")).text());
    assert_eq!(
        recording
            .segments
            .iter()
            .filter(|segment| segment.discontinuity)
            .count(),
        1,
        "the recording keeps the discontinuity: {recording:?}"
    );
    let numbers: BTreeSet<u64> = recording
        .segments
        .iter()
        .map(|segment| segment_number(&segment.uri))
        .collect();
    assert_eq!(
        numbers,
        (0..recording.segments.len() as u64).collect(),
        "every segment of both publishers, numbered on"
    );
    decode_all(&url);
    // hls.js plays on past the reconnection (about six seconds in), across the discontinuity.
    play_with_hlsjs(&url, 8.0);

    let types = event_types(&server, id);
    let count = |wanted: &str| types.iter().filter(|t| *t == wanted).count();
    assert_eq!(count("live_stream.connected"), 2, "{types:?}");
    assert_eq!(count("live_stream.idle"), 1, "{types:?}");
    let session_id = all[0]["id"].as_str().unwrap();
    assert_eq!(
        event_types(&server, session_id),
        ["session.started", "session.ended"]
    );
}

#[test]
fn a_publisher_back_after_the_window_starts_a_new_session_and_recording() {
    let server = Server::start();
    let stream = recorded_stream(&server, 2);
    let id = stream["id"].as_str().unwrap();

    let mut first = publish_until(&server, &stream, 60, 2);
    first.kill();
    wait_idle(&server, id, Duration::from_secs(30));
    let mut second = publish_until(&server, &stream, 60, 2);
    second.kill();
    wait_idle(&server, id, Duration::from_secs(30));

    let all = sessions(&server, id);
    assert_eq!(all.len(), 2, "two sessions: {all:?}");
    let recorded = recorded_assets(&server, id);
    assert_eq!(recorded.len(), 2, "two recordings: {recorded:?}");
    for session in &all {
        let asset_id = session["asset_id"]
            .as_str()
            .expect("each session is recorded");
        let asset = wait_for("the recording to be ready", Duration::from_secs(30), || {
            let asset = get_asset(&server, asset_id);
            (asset["status"] == "ready").then_some(asset)
        });
        assert_eq!(asset["session_id"], session["id"], "{asset}");
    }
    let types = event_types(&server, id);
    assert_eq!(
        types.iter().filter(|t| *t == "live_stream.idle").count(),
        2,
        "{types:?}"
    );
}

#[test]
fn a_publisher_back_with_a_source_that_changes_the_ladder_starts_a_new_session() {
    let server = Server::start();
    let stream = server.create_live_stream(json!({
        "name": "reshaped",
        "ladder": ["source", "360p"],
        "record": true,
        "reconnect_window_s": 30,
    }));
    let id = stream["id"].as_str().unwrap();
    let url = server.rtmp_url(stream["stream_key"].as_str().unwrap());
    // 854x480 gets a 360p rung besides the source; 320x180 is below 360p and gets none.
    let mut first = Publisher::start(&url, "854x480", 30, 60);
    wait_for("the first session's media", Duration::from_secs(40), || {
        sessions(&server, id)
            .first()
            .and_then(|session| session["input"]["width"].as_u64())
            .filter(|width| *width == 854)
    });
    first.kill();
    wait_for("live_stream.disconnected", Duration::from_secs(20), || {
        event_types(&server, id)
            .contains(&"live_stream.disconnected".to_owned())
            .then_some(())
    });
    let second = Publisher::start(&url, "320x180", 30, 6);
    assert!(second.wait(), "the second ffmpeg published");
    wait_idle(&server, id, Duration::from_secs(30));

    let all = sessions(&server, id);
    assert_eq!(all.len(), 2, "a new session for the new shape: {all:?}");
    assert!(
        all.iter().all(|session| session["ended_at"].is_string()),
        "{all:?}"
    );
    assert_eq!(all[0]["input"]["width"], 320, "{all:?}");
    let recorded = recorded_assets(&server, id);
    assert_eq!(recorded.len(), 2, "one recording per session: {recorded:?}");
    let session_events: Vec<Vec<String>> = all
        .iter()
        .map(|session| event_types(&server, session["id"].as_str().unwrap()))
        .collect();
    for types in &session_events {
        assert_eq!(
            types,
            &["session.started", "session.ended"],
            "{session_events:?}"
        );
    }
}
