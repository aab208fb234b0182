//! Black-box: live sessions recorded as assets, and the DVR setting of live playlists.

mod common;

use std::time::Duration;

use common::live::{
    decode_all, event_types, live_stream, media_playlist, probed_duration, recorded_assets,
    sessions,
};
use common::vod::get_asset;
use common::{http_get, play_with_hlsjs, wait_for, Publisher, Server};
use serde_json::json;

/// Seconds the recorded publisher sends: about 2 MB, short of the 2.5 MB after which the
/// server acknowledges. ffmpeg closes without reading what is waiting in its socket, so an
/// acknowledgement that arrives in its last milliseconds turns its close into a reset that
/// drops its unpublish, and the session waits out its reconnect window instead of ending.
const SENT_SECONDS: u32 = 10;
/// Live segment duration (`[live] segment_seconds` default).
const SEGMENT_SECONDS: f64 = 2.0;

#[test]
fn a_recorded_session_becomes_a_playable_asset_with_thumbnails() {
    let server = Server::start();
    let stream = server.create_live_stream(json!({
        "name": "recorded",
        "ladder": ["source", {"name": "180p", "height": 180, "bitrate_kbps": 300}],
        "record": true,
    }));
    let id = stream["id"].as_str().unwrap();
    let publisher = Publisher::start(
        &server.rtmp_url(stream["stream_key"].as_str().unwrap()),
        "640x360",
        30,
        SENT_SECONDS,
    );
    // While live, the session already names its asset, which is preparing.
    let asset_id = wait_for("the session's asset", Duration::from_secs(30), || {
        let session = &live_stream(&server, id)["current_session"];
        session["asset_id"].as_str().map(str::to_owned)
    });
    let asset = get_asset(&server, &asset_id);
    assert_eq!(asset["status"], "preparing", "{asset}");
    assert_eq!(asset["live_stream_id"], id, "{asset}");
    assert_eq!(asset["input"]["type"], "live_stream", "{asset}");
    assert!(publisher.wait(), "ffmpeg published");

    let asset = wait_for("the recording to be ready", Duration::from_secs(30), || {
        let asset = get_asset(&server, &asset_id);
        (asset["status"] == "ready").then_some(asset)
    });
    let session = &sessions(&server, id)[0];
    assert!(session["ended_at"].is_string(), "{session}");
    assert_eq!(session["asset_id"], asset_id.as_str(), "{session}");
    assert_eq!(asset["session_id"], session["id"], "{asset}");
    let listed = recorded_assets(&server, id);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], asset_id.as_str());
    let (_, others) = server.api("GET", "/v1/assets?live_stream_id=ls_none", None);
    assert_eq!(others["data"], json!([]));

    let duration = asset["duration"].as_f64().unwrap();
    assert!(
        (duration - f64::from(SENT_SECONDS)).abs() <= SEGMENT_SECONDS,
        "recorded {duration} s of {SENT_SECONDS} s: {asset}"
    );
    let renditions = asset["renditions"].as_array().unwrap();
    assert_eq!(renditions.len(), 3, "two video rungs and audio: {asset}");
    assert_eq!(asset["tracks"][0]["width"], 640, "{asset}");

    let url = asset["playback_url"].as_str().unwrap().to_owned();
    let probed = probed_duration(&url);
    assert!(
        (probed - f64::from(SENT_SECONDS)).abs() <= SEGMENT_SECONDS,
        "ffprobe reads {probed} s of {SENT_SECONDS} s"
    );
    decode_all(&url);
    let playlist = media_playlist(&http_get(&url.replace("master.m3u8", "v0/index.m3u8")).text());
    assert_eq!(
        playlist.playlist_type,
        Some(m3u8_rs::MediaPlaylistType::Vod)
    );
    assert!(playlist.end_list);

    let images = server
        .data_dir
        .path()
        .join("objects/assets")
        .join(&asset_id)
        .join("images");
    for picture in ["poster.jpg", "storyboard.jpg", "storyboard.vtt"] {
        let bytes = std::fs::read(images.join(picture))
            .unwrap_or_else(|e| panic!("{picture} of the recording: {e}"));
        assert!(!bytes.is_empty(), "{picture}");
    }

    let playback_id = asset["playback_ids"][0]["id"].as_str().unwrap();
    let thumbnail = server.get(&format!("/thumbnails/{playback_id}.jpg"));
    assert_eq!(
        thumbnail.status,
        200,
        "the poster is served: {}",
        thumbnail.text()
    );
    assert!(thumbnail.body.starts_with(&[0xFF, 0xD8]), "a JPEG");

    // hls.js plays the recording.
    play_with_hlsjs(&url, 3.0);
}

#[test]
fn a_recording_cut_off_by_a_crash_is_errored_and_its_spool_cleared_at_the_next_start() {
    let server = Server::start();
    let stream = server.create_live_stream(json!({
        "name": "crashing", "ladder": ["source"], "record": true,
    }));
    let id = stream["id"].as_str().unwrap().to_owned();
    let mut publisher = Publisher::start(
        &server.rtmp_url(stream["stream_key"].as_str().unwrap()),
        "320x180",
        30,
        60,
    );
    let session = wait_for("the session's spool", Duration::from_secs(30), || {
        let session = live_stream(&server, &id)["current_session"].clone();
        let spooling = session["id"].as_str().is_some_and(|session_id| {
            let spool = server.data_dir.path().join("spool/live").join(session_id);
            spool.is_dir()
        });
        (spooling && session["asset_id"].is_string()).then_some(session)
    });
    let asset_id = session["asset_id"].as_str().unwrap().to_owned();
    let spool = server
        .data_dir
        .path()
        .join("spool/live")
        .join(session["id"].as_str().unwrap());

    let server = server.crash_and_restart();
    publisher.kill();
    let asset = get_asset(&server, &asset_id);
    assert_eq!(asset["status"], "errored", "{asset}");
    assert!(
        asset["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("stopped before the recording was sealed"),
        "{asset}"
    );
    assert!(
        event_types(&server, &asset_id).contains(&"asset.errored".to_owned()),
        "{:?}",
        event_types(&server, &asset_id)
    );
    assert!(!spool.exists(), "the crashed session's spool is removed");
    assert_eq!(live_stream(&server, &id)["status"], "idle");
}

#[test]
fn an_event_stream_keeps_every_segment_in_its_live_playlist() {
    let server = Server::start();
    let stream = server
        .create_live_stream(json!({"name": "dvr", "ladder": ["source"], "dvr": {"mode": "event"}}));
    assert_eq!(stream["dvr"], json!({"mode": "event", "window_s": null}));
    let playback_id = stream["playback_ids"][0]["id"].as_str().unwrap();
    let publisher = Publisher::start(
        &server.rtmp_url(stream["stream_key"].as_str().unwrap()),
        "320x180",
        30,
        20,
    );
    let live = wait_for("a live EVENT playlist", Duration::from_secs(30), || {
        let text = server
            .get(&format!("/hls/{playback_id}/v0/index.m3u8"))
            .text();
        (text.matches("#EXTINF").count() >= 2).then_some(text)
    });
    assert!(live.contains("#EXT-X-PLAYLIST-TYPE:EVENT\n"), "{live}");
    assert!(publisher.wait(), "ffmpeg published");
    let ended = media_playlist(&server.ended_playlist(playback_id, "v0/index.m3u8"));
    // Twenty seconds in two-second segments: far more than the default six-segment window.
    assert!(ended.segments.len() >= 9, "{ended:?}");
    assert_eq!(ended.media_sequence, 0);
}

#[test]
fn the_dvr_setting_is_validated_and_changed() {
    let server = Server::start();
    let stream = server.create_live_stream(json!({"name": "dvr settings"}));
    assert_eq!(stream["dvr"], json!({"mode": "window", "window_s": null}));
    let id = stream["id"].as_str().unwrap();
    let (status, body) = server.api(
        "PATCH",
        &format!("/v1/live-streams/{id}"),
        Some(json!({"dvr": {"mode": "window", "window_s": 1800}})),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"]["dvr"],
        json!({"mode": "window", "window_s": 1800})
    );
    for (dvr, field) in [
        (json!({"mode": "window", "window_s": 5}), "dvr.window_s"),
        (json!({"mode": "window", "window_s": 50000}), "dvr.window_s"),
        (json!({"mode": "event", "window_s": 60}), "dvr.window_s"),
        (json!({"mode": "forever"}), "dvr"),
        (json!({"mode": "event", "extra": 1}), "dvr"),
    ] {
        let (status, body) = server.api(
            "POST",
            "/v1/live-streams",
            Some(json!({"name": "bad dvr", "dvr": dvr})),
        );
        assert_eq!(status, 400, "{dvr}: {body}");
        assert_eq!(body["error"]["code"], "invalid_request", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{dvr}: {message}");
    }
}
