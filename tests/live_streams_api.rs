//! Black-box: the live-stream lifecycle over real HTTP with real RTMP publishers: settings and
//! `PATCH`, status filters, disable/enable, stream key reset, complete and delete, each
//! reaching a running publisher through the event bus; and the sessions API.

mod common;

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::live::{event_types, wait_idle};
use common::{wait_for, Publisher, Server};
use serde_json::{json, Value};

/// Starts a publisher on `stream` and waits until the stream is active with media flowing.
fn go_live(server: &Server, stream: &Value) -> Publisher {
    let publisher = Publisher::start(
        &server.rtmp_url(stream["stream_key"].as_str().unwrap()),
        "320x240",
        15,
        120,
    );
    let id = stream["id"].as_str().unwrap();
    wait_for("the stream to go active", Duration::from_secs(30), || {
        let (_, body) = server.api("GET", &format!("/v1/live-streams/{id}"), None);
        let session = &body["data"]["current_session"];
        (body["data"]["status"] == "active"
            && session["ended_at"].is_null()
            && session["input"].is_object())
        .then_some(())
    });
    publisher
}

/// Publishes to `stream` with its stream key as it was and checks that ffmpeg is refused.
fn assert_publish_refused(server: &Server, stream: &Value) {
    let url = server.rtmp_url(stream["stream_key"].as_str().unwrap());
    let mut refused = Publisher::start(&url, "320x240", 15, 30);
    let succeeded = wait_for(
        "the refused publisher to exit",
        Duration::from_secs(15),
        || refused.exited(),
    );
    assert!(!succeeded, "ffmpeg reports the refusal");
}

/// Waits until the master playlist of `playback_id` is served.
fn wait_for_master(server: &Server, playback_id: &str) {
    wait_for("the master playlist", Duration::from_secs(30), || {
        (server
            .get(&format!("/hls/{playback_id}/master.m3u8"))
            .status
            == 200)
            .then_some(())
    });
}

fn get_stream(server: &Server, id: &str) -> Value {
    let (status, body) = server.api("GET", &format!("/v1/live-streams/{id}"), None);
    assert_eq!(status, 200, "{body}");
    body["data"].clone()
}

fn post(server: &Server, path: &str) -> (u16, Value) {
    server.api("POST", path, None)
}

/// The session the stream's `current_session` names (the last one once it ended).
fn last_session(server: &Server, id: &str) -> Value {
    let (status, body) = server.api("GET", &format!("/v1/live-streams/{id}/sessions"), None);
    assert_eq!(status, 200, "{body}");
    body["data"][0].clone()
}

fn time(value: &Value) -> DateTime<Utc> {
    value.as_str().unwrap().parse().unwrap()
}

/// How soon after the API call a kicked publisher must have been let go: far above the
/// usual fraction of a second, far below the two minutes [`go_live`]'s publisher would
/// otherwise stream.
const KICKED_WITHIN: chrono::TimeDelta = chrono::TimeDelta::seconds(5);

/// When the server let the publisher go: the time of its log line saying why it stopped the
/// session (the connection is dropped right then, before the last segments are flushed).
fn stopped_at(server: &Server, reason: &str) -> DateTime<Utc> {
    let log = server.log();
    let line = log
        .lines()
        .find(|line| line.contains("Stopping the session.") && line.contains(reason))
        .unwrap_or_else(|| panic!("no stop for {reason:?} in the log:\n{log}"));
    time(&Value::from(line.split_whitespace().next().unwrap()))
}

/// Waits for `publisher` to be disconnected and the session to end; returns the session.
fn wait_kicked(server: &Server, id: &str, publisher: &mut Publisher) -> Value {
    wait_for("ffmpeg to be disconnected", Duration::from_secs(30), || {
        publisher.exited()
    });
    wait_for("the session to end", Duration::from_secs(30), || {
        let session = last_session(server, id);
        session["ended_at"].is_string().then_some(session)
    })
}

#[test]
fn settings_are_created_patched_validated_and_filtered() {
    let server = Server::start();
    let stream = server.create_live_stream(json!({
        "name": "show",
        "latency_mode": "low",
        "reconnect_window_s": 120,
        "record": true
    }));
    assert_eq!(stream["status"], "idle");
    assert_eq!(stream["latency_mode"], "low");
    assert_eq!(stream["reconnect_window_s"], 120);
    assert_eq!(stream["record"], true);
    let id = stream["id"].as_str().unwrap();
    let defaults = server.create_live_stream(json!({"name": "defaults"}));
    assert_eq!(defaults["latency_mode"], "standard");
    assert_eq!(defaults["reconnect_window_s"], 60);
    assert_eq!(defaults["record"], false);

    let path = format!("/v1/live-streams/{id}");
    let (status, body) = server.api(
        "PATCH",
        &path,
        Some(json!({"name": "renamed", "reconnect_window_s": 0, "ladder": ["source"]})),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["name"], "renamed");
    assert_eq!(body["data"]["reconnect_window_s"], 0);
    assert_eq!(body["data"]["record"], true, "untouched fields stay");
    assert_eq!(get_stream(&server, id)["name"], "renamed");

    for (patch, names) in [
        (json!({"reconnect_window_s": 1801}), "reconnect_window_s"),
        (json!({"name": ""}), "name"),
        (json!({"ladder": "tall"}), "ladder"),
        (json!({"latency_mode": "instant"}), "latency_mode"),
        (json!({"colour": "red"}), "colour"),
    ] {
        let (status, body) = server.api("PATCH", &path, Some(patch.clone()));
        assert_eq!(status, 400, "{patch} → {body}");
        assert_eq!(body["error"]["code"], "invalid_request");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(names), "{patch}: {message}");
    }
    let (status, _) = server.api("PATCH", "/v1/live-streams/ls_nope", Some(json!({})));
    assert_eq!(status, 404);

    let (status, body) = post(&server, &format!("/v1/live-streams/{id}/disable"));
    assert_eq!(status, 200);
    assert_eq!(body["data"]["status"], "disabled");
    let listed = |filter: &str| -> Vec<String> {
        let (status, body) = server.api("GET", &format!("/v1/live-streams?status={filter}"), None);
        assert_eq!(status, 200, "{body}");
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(listed("disabled"), vec![id.to_owned()]);
    assert_eq!(
        listed("idle"),
        vec![defaults["id"].as_str().unwrap().to_owned()]
    );
    assert!(listed("active").is_empty());
    let (status, body) = server.api("GET", "/v1/live-streams?status=sleeping", None);
    assert_eq!(status, 400, "{body}");

    let (status, body) = post(&server, &format!("/v1/live-streams/{id}/enable"));
    assert_eq!(status, 200);
    assert_eq!(body["data"]["status"], "idle");
    let (status, body) = post(&server, &format!("/v1/live-streams/{id}/complete"));
    assert_eq!(status, 409, "nothing to complete: {body}");
    assert_eq!(body["error"]["code"], "conflict");
}

#[test]
fn reduced_and_low_latency_streams_default_to_no_reconnect_window() {
    let server = Server::start();
    for mode in ["reduced", "low"] {
        let stream = server.create_live_stream(json!({"name": mode, "latency_mode": mode}));
        assert_eq!(stream["latency_mode"], mode);
        assert_eq!(stream["reconnect_window_s"], 0, "{mode}");
    }
    let asked = server.create_live_stream(json!({
        "name": "asked", "latency_mode": "reduced", "reconnect_window_s": 30
    }));
    assert_eq!(asked["reconnect_window_s"], 30);
    let standard = server.create_live_stream(json!({"name": "s", "latency_mode": "standard"}));
    assert_eq!(standard["reconnect_window_s"], 60);
}

#[test]
fn disabling_kicks_the_publisher_promptly_and_refuses_it_until_enabled() {
    let server = Server::start();
    let stream = server.create_live_stream(json!({"name": "kick"}));
    let id = stream["id"].as_str().unwrap();
    let mut publisher = go_live(&server, &stream);

    let (status, body) = post(&server, &format!("/v1/live-streams/{id}/disable"));
    assert_eq!(status, 200, "{body}");
    let disabled_at = time(&body["data"]["updated_at"]);
    wait_kicked(&server, id, &mut publisher);
    let kicked_after = stopped_at(&server, "the live stream was disabled") - disabled_at;
    assert!(
        kicked_after < KICKED_WITHIN,
        "publisher let go {kicked_after} after the disable"
    );
    assert_eq!(get_stream(&server, id)["status"], "disabled");

    // A disabled stream refuses a new publish.
    assert_publish_refused(&server, &stream);
    assert!(server.log().contains("is disabled"));

    post(&server, &format!("/v1/live-streams/{id}/enable"));
    let _again = go_live(&server, &stream);
}

#[test]
fn resetting_the_key_kicks_the_publisher_and_only_the_new_key_publishes() {
    let server = Server::start();
    let stream = server.create_live_stream(json!({"name": "rekey"}));
    let id = stream["id"].as_str().unwrap();
    let mut publisher = go_live(&server, &stream);

    let (status, body) = post(&server, &format!("/v1/live-streams/{id}/reset-stream-key"));
    assert_eq!(status, 200, "{body}");
    let new_key = body["data"]["stream_key"].as_str().unwrap().to_owned();
    assert_ne!(new_key, stream["stream_key"].as_str().unwrap());
    let reset_at = time(&body["data"]["updated_at"]);
    wait_kicked(&server, id, &mut publisher);
    let kicked_after = stopped_at(&server, "the stream key was reset") - reset_at;
    assert!(
        kicked_after < KICKED_WITHIN,
        "publisher let go {kicked_after} after the reset"
    );

    assert_publish_refused(&server, &stream);
    let _new = go_live(&server, &body["data"]);
}

#[test]
fn completing_ends_the_session_and_its_playlists_but_keeps_the_stream_usable() {
    let server = Server::start();
    let stream = server.create_live_stream(json!({"name": "complete", "ladder": ["source"]}));
    let id = stream["id"].as_str().unwrap();
    let playback_id = stream["playback_ids"][0]["id"].as_str().unwrap();
    let mut publisher = go_live(&server, &stream);
    wait_for_master(&server, playback_id);

    let (status, body) = post(&server, &format!("/v1/live-streams/{id}/complete"));
    assert_eq!(status, 202, "{body}");
    let session = wait_kicked(&server, id, &mut publisher);
    // The stream turns idle as the server finishes ending the session.
    wait_idle(&server, id, Duration::from_secs(30));
    server.ended_playlist(playback_id, "v0/index.m3u8");
    let (status, fetched) = server.api(
        "GET",
        &format!("/v1/sessions/{}", session["id"].as_str().unwrap()),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(fetched["data"], session);

    let _next = go_live(&server, &stream);
}

#[test]
fn deleting_a_live_stream_kicks_its_publisher_and_removes_everything() {
    let server = Server::start();
    let stream = server.create_live_stream(json!({"name": "doomed", "ladder": ["source"]}));
    let id = stream["id"].as_str().unwrap();
    let playback_id = stream["playback_ids"][0]["id"].as_str().unwrap();
    let mut publisher = go_live(&server, &stream);
    wait_for_master(&server, playback_id);
    let session_id = get_stream(&server, id)["current_session"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let (status, _) = server.api("DELETE", &format!("/v1/live-streams/{id}"), None);
    assert_eq!(status, 204);
    wait_for("ffmpeg to be disconnected", Duration::from_secs(10), || {
        publisher.exited()
    });
    for path in [
        format!("/v1/live-streams/{id}"),
        format!("/v1/live-streams/{id}/sessions"),
        format!("/v1/sessions/{session_id}"),
    ] {
        assert_eq!(server.api("GET", &path, None).0, 404, "{path}");
    }
    assert_eq!(
        server
            .api("DELETE", &format!("/v1/live-streams/{id}"), None)
            .0,
        404
    );
    wait_for("the objects to be gone", Duration::from_secs(10), || {
        let objects = server.objects_dir().join("live").join(id);
        (!objects.exists()).then_some(())
    });
    assert_eq!(
        server
            .get(&format!("/hls/{playback_id}/master.m3u8"))
            .status,
        404
    );
}

#[test]
fn sessions_record_who_published_what_and_how_it_went() {
    let server = Server::start();
    // No reconnect window: the killed publisher's session ends at once.
    let stream = server.create_live_stream(
        json!({"name": "sessions", "ladder": ["source"], "reconnect_window_s": 0}),
    );
    let id = stream["id"].as_str().unwrap();
    let mut first = go_live(&server, &stream);
    wait_for("a measured bitrate", Duration::from_secs(30), || {
        let session = &get_stream(&server, id)["current_session"];
        session["input"]["bitrate_kbps"].is_number().then_some(())
    });
    first.kill();
    // A publish is accepted once the first session has fully ended and the stream is idle.
    wait_idle(&server, id, Duration::from_secs(30));
    let _second = go_live(&server, &stream);

    let (status, page) = server.api(
        "GET",
        &format!("/v1/live-streams/{id}/sessions?limit=1"),
        None,
    );
    assert_eq!(status, 200);
    let newest = &page["data"][0];
    assert!(newest["ended_at"].is_null(), "the live session comes first");
    let cursor = page["next_cursor"].as_str().expect("a second page");
    let (_, rest) = server.api(
        "GET",
        &format!("/v1/live-streams/{id}/sessions?limit=1&cursor={cursor}"),
        None,
    );
    let ended = &rest["data"][0];
    assert!(rest["next_cursor"].is_null());
    assert!(ended["ended_at"].is_string());

    assert_eq!(ended["protocol"], "rtmp");
    assert_eq!(ended["app"], "live");
    assert!(
        ended["encoder"].as_str().unwrap().contains("FMLE"),
        "{ended}"
    );
    assert!(ended["client_addr"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    assert_eq!(ended["live_stream_id"], id);
    assert!(ended["bytes_received"].as_u64().unwrap() > 10_000);
    assert_eq!(
        ended["frames_dropped"], 0,
        "frames were dropped: the ladder did not keep up with the publisher in real time: {ended}"
    );
    let input = &ended["input"];
    assert_eq!(input["video_codec"], "h264");
    assert_eq!(input["audio_codec"], "aac");
    assert_eq!(input["width"], 320);
    assert_eq!(input["height"], 240);
    assert_eq!(input["frame_rate"], 15.0);
    assert!(input["bitrate_kbps"].as_f64().unwrap() > 0.0, "{input}");
    assert!(input["codecs"].as_str().unwrap().starts_with("avc1."));

    let (status, body) = server.api("GET", "/v1/sessions/ses_unknown", None);
    assert_eq!(status, 404, "{body}");
}

#[test]
fn lifecycle_events_carry_the_object_without_its_stream_key() {
    let server = Server::start();
    let stream = server.create_live_stream(json!({"name": "events", "ladder": ["source"]}));
    let id = stream["id"].as_str().unwrap();
    let mut publisher = go_live(&server, &stream);
    // `live_stream.active` is recorded just after the stream shows as active.
    wait_for(
        "the live_stream.active event",
        Duration::from_secs(30),
        || {
            event_types(&server, id)
                .iter()
                .any(|t| t == "live_stream.active")
                .then_some(())
        },
    );
    post(&server, &format!("/v1/live-streams/{id}/disable"));
    wait_kicked(&server, id, &mut publisher);
    let events = wait_for("the idle event", Duration::from_secs(10), || {
        let (status, body) = server.api("GET", "/v1/events?limit=100", None);
        assert_eq!(status, 200, "{body}");
        let events = body["data"].as_array().unwrap().clone();
        events
            .iter()
            .any(|e| e["type"] == "live_stream.idle")
            .then_some(events)
    });
    // The lifecycle only: the publisher's B-frames on the source rendition may also raise a
    // health warning.
    let events: Vec<Value> = events
        .into_iter()
        .filter(|e| e["type"] != "live_stream.warning")
        .collect();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "live_stream.created",
            "live_stream.connected",
            "session.started",
            "live_stream.active",
            "live_stream.disabled",
            "session.ended",
            "live_stream.disconnected",
            "live_stream.idle",
        ]
    );
    for event in &events {
        let data = &event["data"];
        assert!(data.get("stream_key").is_none(), "{event}");
        if event["object"]["type"] == "live_stream" {
            assert_eq!(data["id"], id, "{event}");
            assert!(data["playback_ids"].is_array(), "{event}");
        } else {
            assert_eq!(data["live_stream_id"], id, "{event}");
            assert_eq!(data["protocol"], "rtmp", "{event}");
        }
    }
    let active = &events[3]["data"];
    assert_eq!(active["status"], "active");
    assert!(active["current_session"]["input"].is_object(), "{active}");
    assert_eq!(events[7]["data"]["status"], "disabled");
}

#[test]
fn stream_keys_are_shown_only_to_callers_that_may_write() {
    let server = Server::start();
    let stream = server.create_live_stream(json!({"name": "secret key"}));
    assert!(stream["stream_key"].is_string(), "the creator sees the key");
    let id = stream["id"].as_str().unwrap();
    for (permissions, sees_key) in [
        (json!(["live:read"]), false),
        (json!(["live:write", "live:read"]), true),
    ] {
        let (status, key) = server.api(
            "POST",
            "/v1/api-keys",
            Some(json!({"name": "viewer", "permissions": permissions})),
        );
        assert_eq!(status, 201, "{key}");
        let (key_id, secret) = (
            key["data"]["id"].as_str().unwrap(),
            key["data"]["secret"].as_str().unwrap(),
        );
        let (status, one) = server.api_as(
            key_id,
            secret,
            "GET",
            &format!("/v1/live-streams/{id}"),
            None,
        );
        assert_eq!(status, 200, "{one}");
        let (status, page) = server.api_as(key_id, secret, "GET", "/v1/live-streams", None);
        assert_eq!(status, 200, "{page}");
        for shown in [&one["data"], &page["data"][0]] {
            assert_eq!(
                shown["stream_key"].is_string(),
                sees_key,
                "{permissions}: {shown}"
            );
            assert_eq!(shown["id"], id);
        }
    }
}
