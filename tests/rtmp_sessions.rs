//! Black-box: publishers that carry only one kind of track, or that vanish mid-stream.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::live::wait_idle;
use common::{wait_for, Publisher, Server};
use serde_json::json;

/// ffmpeg publishing `seconds` of lavfi input with the given codec arguments.
fn publish(url: &str, inputs: &[&str], codecs: &[&str]) -> Child {
    Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(inputs)
        .args(codecs)
        .args(["-f", "flv", url])
        .stdin(Stdio::null())
        .spawn()
        .expect("start ffmpeg")
}

#[test]
fn a_video_only_stream_plays_without_an_audio_rendition() {
    let server = Server::start();
    let stream = server.create_live_stream(json!({"name": "video only", "ladder": ["source"]}));
    let playback_id = stream["playback_ids"][0]["id"].as_str().unwrap();
    let mut publisher = publish(
        &server.rtmp_url(stream["stream_key"].as_str().unwrap()),
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=30:duration=7",
        ],
        &[
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "60",
            "-pix_fmt",
            "yuv420p",
            "-an",
        ],
    );
    assert!(publisher.wait().unwrap().success());
    let playlist = server.ended_playlist(playback_id, "v0/index.m3u8");
    assert!(playlist.matches("#EXTINF").count() >= 3, "{playlist}");
    let master = server
        .get(&format!("/hls/{playback_id}/master.m3u8"))
        .text();
    assert!(
        !master.contains("#EXT-X-MEDIA"),
        "no audio rendition: {master}"
    );
    assert!(
        !master.contains("mp4a"),
        "no audio codec declared: {master}"
    );
}

#[test]
fn an_audio_only_stream_is_refused_with_a_clear_log_line() {
    let server = Server::start();
    let stream = server.create_live_stream(json!({"name": "audio only", "ladder": ["source"]}));
    let mut publisher = publish(
        &server.rtmp_url(stream["stream_key"].as_str().unwrap()),
        &[
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000:duration=15",
        ],
        &["-c:a", "aac", "-vn"],
    );
    let refused = wait_for(
        "the audio-only publisher to be cut off",
        Duration::from_secs(20),
        || publisher.try_wait().unwrap(),
    );
    assert!(
        !refused.success(),
        "ffmpeg should see its connection closed"
    );
    wait_for("the refusal in the log", Duration::from_secs(5), || {
        server
            .log()
            .contains("audio-only streams are not supported")
            .then_some(())
    });
    // The session ends just after the refusal is logged.
    wait_idle(
        &server,
        stream["id"].as_str().unwrap(),
        Duration::from_secs(30),
    );
}

/// A `["source"]` stream fed a minute of real-time video, once its first two segments are
/// listed: returns its id, playback id and publisher.
fn streaming_a_minute(server: &Server) -> (String, String, Publisher) {
    // No reconnect window: a vanished publisher ends its session at once.
    let stream = server.create_live_stream(
        json!({"name": "a minute", "ladder": ["source"], "reconnect_window_s": 0}),
    );
    let id = stream["id"].as_str().unwrap().to_owned();
    let playback_id = stream["playback_ids"][0]["id"].as_str().unwrap().to_owned();
    let publisher = Publisher::start(
        &server.rtmp_url(stream["stream_key"].as_str().unwrap()),
        "640x360",
        30,
        60,
    );
    wait_for("two segments", Duration::from_secs(30), || {
        let text = server
            .get(&format!("/hls/{playback_id}/v0/index.m3u8"))
            .text();
        (text.matches("#EXTINF").count() >= 2).then_some(())
    });
    (id, playback_id, publisher)
}

#[test]
fn a_publisher_that_vanishes_ends_its_session_and_playlists() {
    let server = Server::start();
    let (id, playback_id, mut publisher) = streaming_a_minute(&server);
    let id = id.as_str();
    let playback_id = playback_id.as_str();
    // SIGKILL: no FCUnpublish, no deleteStream, the socket just closes.
    publisher.kill();
    wait_idle(&server, id, Duration::from_secs(30));
    let (_, body) = server.api("GET", &format!("/v1/live-streams/{id}"), None);
    assert!(
        !body["data"]["current_session"]["ended_at"].is_null(),
        "session ended: {body}"
    );
    let playlist = server
        .get(&format!("/hls/{playback_id}/v0/index.m3u8"))
        .text();
    assert!(playlist.contains("#EXT-X-ENDLIST"), "{playlist}");
}

#[test]
fn sigterm_ends_live_sessions_cleanly_before_the_server_stops() {
    let mut server = Server::start();
    let (id, _, _publisher) = streaming_a_minute(&server);

    assert!(server.terminate(), "sluice exits 0 on SIGTERM");

    let objects = server.objects_dir().join("live").join(&id);
    let playlist = std::fs::read_to_string(objects.join("v0/index.m3u8")).unwrap();
    assert!(playlist.contains("#EXT-X-ENDLIST"), "{playlist}");
    let log = server.log();
    assert!(
        log.contains("Server shutting down: ending the session."),
        "{log}"
    );
    assert!(log.contains("Publisher disconnected."), "{log}");
    assert!(log.contains("Sluice stopped."), "{log}");
}
