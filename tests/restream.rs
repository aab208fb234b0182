//! Black-box restreaming: ffmpeg publishes to Sluice, which pushes the stream to real
//! nginx-rtmp servers (started by `scripts/test-nginx-rtmp.sh` on loopback) while packaging
//! HLS; what nginx recorded is checked with ffprobe. Targets are added and removed while live,
//! one points at a port nothing listens on until its server comes up, every target ends its
//! publish cleanly (what was queued is sent, then deleteStream), and bad targets are refused by
//! the API.

mod common;

use std::time::Duration;

use common::restream::{
    add_target, target, unused_port, wait_for_status, Nginx, LOOPBACK_TARGETS_CONFIG,
};
use common::{ffprobe, wait_for, Launch, Publisher, Server};
use serde_json::{json, Value};

/// Long enough for everything the test does while live (two targets settling, HLS starting, a
/// target added and deleted, a second nginx starting and the retry reaching it) on a slow
/// machine: the session must outlast it.
const PUBLISH_SECONDS: u32 = 30;

fn server() -> Server {
    Server::launch(Launch {
        config: Some(LOOPBACK_TARGETS_CONFIG.to_owned()),
        ..Launch::default()
    })
}

fn event_types_about(server: &Server, object_id: &str) -> Vec<String> {
    let (status, body) = server.api(
        "GET",
        &format!("/v1/events?object_id={object_id}&limit=100"),
        None,
    );
    assert_eq!(status, 200, "{body}");
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["type"].as_str().unwrap().to_owned())
        .collect()
}

fn duration_of(probe: &Value) -> f64 {
    probe["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .expect("a duration")
}

#[test]
fn restreams_to_live_targets_while_a_dead_one_retries_until_its_server_comes_up() {
    let server = server();
    let stream = server.create_live_stream(json!({"name": "simulcast"}));
    let stream_id = stream["id"].as_str().unwrap();
    let playback_id = stream["playback_ids"][0]["id"].as_str().unwrap();
    let mut nginx = Nginx::start();
    let live = add_target(&server, stream_id, &nginx.url(), "first-key-0001");
    let live_id = live["id"].as_str().unwrap();
    assert_eq!(live["status"], "idle");
    assert_eq!(
        live["stream_key"], "…0001",
        "the key is never shown in full"
    );
    let dead_port = unused_port();
    let dead = add_target(
        &server,
        stream_id,
        &format!("rtmp://127.0.0.1:{dead_port}/live"),
        "late-key-0002",
    );
    let dead_id = dead["id"].as_str().unwrap();

    let mut publisher = Publisher::start(
        &server.rtmp_url(stream["stream_key"].as_str().unwrap()),
        "640x360",
        30,
        PUBLISH_SECONDS,
    );
    wait_for_status(&server, stream_id, live_id, "live");
    let errored = wait_for_status(&server, stream_id, dead_id, "errored");
    assert!(
        errored["last_error"].as_str().unwrap().contains("connect"),
        "{errored}"
    );
    // The dead target does not hold back HLS.
    wait_for("the master playlist", Duration::from_secs(30), || {
        (server
            .get(&format!("/hls/{playback_id}/master.m3u8"))
            .status
            == 200)
            .then_some(())
    });

    // A target added while live connects at once; removed, it is dropped.
    let added = add_target(&server, stream_id, &nginx.url(), "added-key-0003");
    let added_id = added["id"].as_str().unwrap();
    wait_for_status(&server, stream_id, added_id, "live");
    let (status, _) = server.api(
        "DELETE",
        &format!("/v1/live-streams/{stream_id}/simulcast-targets/{added_id}"),
        None,
    );
    assert_eq!(status, 204);

    // The dead target's server comes up: it connects on its next retry.
    let mut late = Nginx::start_on(dead_port, &[], true);
    let connected = wait_for_status(&server, stream_id, dead_id, "live");
    assert!(connected["last_error"].is_null(), "{connected}");
    assert_eq!(
        publisher.exited(),
        None,
        "the publish ended before the test was done with the session: raise PUBLISH_SECONDS"
    );

    assert!(publisher.wait(), "ffmpeg failed to publish");
    let finished = wait_for_status(&server, stream_id, live_id, "idle");
    assert!(
        finished["bytes_sent"].as_u64().unwrap() > 500_000,
        "{finished}"
    );
    wait_for_status(&server, stream_id, dead_id, "idle");
    nginx.stop();
    late.stop();

    // nginx recorded the whole stream: video and audio, as long as what was published.
    let probe = ffprobe(
        &nginx.recording("first-key-0001"),
        &[
            "-show_entries",
            "format=duration:stream=codec_type,codec_name,width,height",
        ],
    );
    let kinds: Vec<&str> = probe["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["codec_type"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"video") && kinds.contains(&"audio"),
        "{probe}"
    );
    let video = probe["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["codec_type"] == "video")
        .unwrap();
    assert_eq!(
        (video["codec_name"].as_str(), video["width"].as_u64()),
        (Some("h264"), Some(640))
    );
    let duration = duration_of(&probe);
    // Everything up to the end, less the first 2 s GOP at most (what was queued when the
    // target connected is dropped, to start it at a keyframe).
    assert!(
        (f64::from(PUBLISH_SECONDS) - 2.5..=f64::from(PUBLISH_SECONDS) + 0.5).contains(&duration),
        "recorded {duration} s of {PUBLISH_SECONDS} s"
    );
    // The late target got what was published after it connected.
    let late_probe = ffprobe(
        &late.recording("late-key-0002"),
        &["-show_entries", "format=duration"],
    );
    assert!(duration_of(&late_probe) > 1.0, "{late_probe}");
    assert!(late.recording("late-key-0002").exists());
    assert!(nginx.recording("added-key-0003").exists());
    // Every target ended its publish itself: at the session's end, and when deleted while live.
    for (receiver, key) in [
        (&nginx, "first-key-0001"),
        (&late, "late-key-0002"),
        (&nginx, "added-key-0003"),
    ] {
        assert!(
            receiver.unpublished_cleanly(key),
            "{key} was dropped, not unpublished:\n{}",
            receiver.log()
        );
    }

    let live_events = event_types_about(&server, live_id);
    for expected in [
        "simulcast_target.created",
        "simulcast_target.connected",
        "simulcast_target.disconnected",
    ] {
        assert!(
            live_events.iter().any(|t| t == expected),
            "{expected} missing: {live_events:?}"
        );
    }
    let dead_events = event_types_about(&server, dead_id);
    assert!(
        dead_events.iter().any(|t| t == "simulcast_target.errored"),
        "{dead_events:?}"
    );
    assert!(
        dead_events
            .iter()
            .any(|t| t == "simulcast_target.connected"),
        "{dead_events:?}"
    );
    let added_events = event_types_about(&server, added_id);
    assert!(
        added_events.iter().any(|t| t == "simulcast_target.deleted"),
        "{added_events:?}"
    );
    // The session itself was unaffected by the dead target.
    let log = server.log();
    assert!(!log.contains("The live pipeline stopped"), "{log}");
    assert_eq!(target(&server, stream_id, live_id)["status"], "idle");
}

#[test]
fn bad_targets_are_refused_and_targets_are_listed_and_deleted() {
    let server = server();
    let stream =
        server.create_live_stream(json!({"name": "targets", "ladder": ["source", "360p"]}));
    let stream_id = stream["id"].as_str().unwrap();
    let path = format!("/v1/live-streams/{stream_id}/simulcast-targets");
    for (body, fragment) in [
        (
            json!({"url": "http://127.0.0.1/live", "stream_key": "k"}),
            "rtmp or rtmps",
        ),
        (
            json!({"url": "rtmp://10.1.2.3/live", "stream_key": "k"}),
            "private address",
        ),
        (
            json!({"url": "rtmp://169.254.169.254/live", "stream_key": "k"}),
            "link-local",
        ),
        (
            json!({"url": "rtmp://127.0.0.1", "stream_key": "k"}),
            "application",
        ),
        (json!({"url": "not a url", "stream_key": "k"}), "url"),
        (
            json!({"url": "rtmp://127.0.0.1/live", "stream_key": ""}),
            "stream_key",
        ),
        (
            json!({"url": "rtmp://127.0.0.1/live", "stream_key": "k", "rendition": "4k"}),
            "rendition",
        ),
        (
            json!({"url": "rtmp://127.0.0.1/live", "stream_key": "k", "passthrough": false}),
            "passthrough",
        ),
        (
            json!({"url": "rtmp://127.0.0.1/live", "stream_key": "k", "extra": 1}),
            "extra",
        ),
    ] {
        let (status, error) = server.api("POST", &path, Some(body.clone()));
        assert_eq!(status, 400, "{body} → {error}");
        assert_eq!(error["error"]["code"], "invalid_request", "{error}");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains(fragment), "{body}: {message}");
    }
    let (status, _) = server.api(
        "POST",
        "/v1/live-streams/ls_missing/simulcast-targets",
        Some(json!({"url": "rtmp://127.0.0.1/live", "stream_key": "k"})),
    );
    assert_eq!(status, 404);

    let first = add_target(
        &server,
        stream_id,
        "rtmp://127.0.0.1:1/live",
        "a-secret-key-1",
    );
    let (status, second) = server.api(
        "POST",
        &path,
        Some(json!({"url": "rtmps://127.0.0.1/app", "stream_key": "a-secret-key-2", "rendition": "360p"})),
    );
    assert_eq!(status, 201, "{second}");
    assert_eq!(second["data"]["rendition"], "360p");
    let (status, listed) = server.api("GET", &path, None);
    assert_eq!(status, 200);
    let ids: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            first["id"].as_str().unwrap(),
            second["data"]["id"].as_str().unwrap()
        ]
    );
    assert!(!listed.to_string().contains("a-secret-key"), "{listed}");

    let first_path = format!("{path}/{}", first["id"].as_str().unwrap());
    assert_eq!(server.api("DELETE", &first_path, None).0, 204);
    assert_eq!(server.api("GET", &first_path, None).0, 404);
    assert_eq!(server.api("DELETE", &first_path, None).0, 404);
    let other = server.create_live_stream(json!({"name": "other"}));
    let cross = format!(
        "/v1/live-streams/{}/simulcast-targets/{}",
        other["id"].as_str().unwrap(),
        second["data"]["id"].as_str().unwrap()
    );
    assert_eq!(
        server.api("GET", &cross, None).0,
        404,
        "a target is reached through its own stream only"
    );
}
