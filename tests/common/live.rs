//! Live helpers for black-box tests: a live stream's sessions and recordings through the API,
//! and its media playlists as m3u8-rs values.

use std::path::Path;
use std::time::Duration;

use m3u8_rs::{MediaPlaylist, Playlist};
use serde_json::Value;

use super::{ffprobe, wait_for, Server};

/// The sessions of live stream `id`, newest first.
pub fn sessions(server: &Server, id: &str) -> Vec<Value> {
    let (status, page) = server.api(
        "GET",
        &format!("/v1/live-streams/{id}/sessions?limit=100"),
        None,
    );
    assert_eq!(status, 200, "{page}");
    page["data"].as_array().unwrap().clone()
}

/// The assets recorded from live stream `id`, newest first.
pub fn recorded_assets(server: &Server, id: &str) -> Vec<Value> {
    let (status, page) = server.api("GET", &format!("/v1/assets?live_stream_id={id}"), None);
    assert_eq!(status, 200, "{page}");
    page["data"].as_array().unwrap().clone()
}

/// Types of the events recorded about `object_id` (among the last hundred), oldest first.
pub fn event_types(server: &Server, object_id: &str) -> Vec<String> {
    let (status, page) = server.api("GET", "/v1/events?limit=100", None);
    assert_eq!(status, 200, "{page}");
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["object"]["id"] == object_id)
        .map(|event| event["type"].as_str().unwrap().to_owned())
        .collect()
}

/// Live stream `id` as the API shows it.
pub fn live_stream(server: &Server, id: &str) -> Value {
    let (status, body) = server.api("GET", &format!("/v1/live-streams/{id}"), None);
    assert_eq!(status, 200, "{body}");
    body["data"].clone()
}

/// Waits until live stream `id` is `idle`.
pub fn wait_idle(server: &Server, id: &str, timeout: Duration) {
    wait_for("the live stream to go idle", timeout, || {
        (live_stream(server, id)["status"] == "idle").then_some(())
    });
}

/// Parses a media playlist.
pub fn media_playlist(text: &str) -> MediaPlaylist {
    match m3u8_rs::parse_playlist_res(text.as_bytes()) {
        Ok(Playlist::MediaPlaylist(playlist)) => playlist,
        other => panic!("not a media playlist ({other:?}): {text}"),
    }
}

/// The sequence number a segment's name carries (`{session}-{n}.m4s`).
pub fn segment_number(uri: &str) -> u64 {
    uri.rsplit_once('-')
        .and_then(|(_, rest)| rest.split('.').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no sequence number in {uri}"))
}

/// The duration ffprobe reads from the HLS presentation at `url`, in seconds.
pub fn probed_duration(url: &str) -> f64 {
    let probed = ffprobe(Path::new(url), &["-show_entries", "format=duration"]);
    probed["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("no duration for {url}: {probed}"))
}

/// Decodes every frame of the HLS presentation at `url` with ffmpeg; panics on any error.
pub fn decode_all(url: &str) {
    let output = std::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-v",
            "error",
            "-xerror",
            "-i",
            url,
            "-f",
            "null",
            "-",
        ])
        .output()
        .expect("ffmpeg");
    assert!(
        output.status.success(),
        "ffmpeg decodes {url}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
