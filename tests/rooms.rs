//! Black-box: real-time rooms joined with LiveKit's own client SDK (`livekit-client`, the
//! version vendored in the join page) from headless Chromium with fake cameras and microphones.
//! Three participants see and hear each other, are told who speaks, exchange data, see mutes,
//! simulcast layers follow what a subscriber shows, a participant whose signal connection drops
//! comes back, and a leave is seen; the room's session and events are recorded. Permissions: a subscribe-only
//! token cannot publish, a removed participant is disconnected. Tokens and connect URLs that
//! are wrong are refused before the WebSocket opens, with the reason the SDK shows.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use common::{hs256_jwt, http_get, wait_for, Launch, Server, API_KEY, API_SECRET};
use serde_json::{json, Value};

/// Rooms announce loopback, as WHIP's tests do.
const ROOMS_CONFIG: &str = "[rooms]\npublic_ip = \"127.0.0.1\"\nudp_port = 0\n";

/// How long a scenario step may take: joins, ICE, a full rejoin, on a loaded machine.
const STEP_TIMEOUT: Duration = Duration::from_secs(180);

fn rooms_server(extra: &str) -> Server {
    Server::launch(Launch {
        config: Some(format!("{ROOMS_CONFIG}{extra}")),
        ..Launch::default()
    })
}

fn create_room(server: &Server, name: &str) -> String {
    let (status, room) = server.api(
        "POST",
        "/v1/rooms",
        Some(json!({"name": name, "empty_timeout_s": 2})),
    );
    assert_eq!(status, 201, "{room}");
    room["data"]["id"].as_str().unwrap().to_owned()
}

fn token(server: &Server, room_id: &str, grant: Value) -> String {
    let (status, minted) = server.api("POST", &format!("/v1/rooms/{room_id}/tokens"), Some(grant));
    assert_eq!(status, 201, "{minted}");
    minted["data"]["token"].as_str().unwrap().to_owned()
}

/// The scenario script (`tests/node/room.mjs`) running, its report lines read as they come.
struct Scenario {
    child: Child,
    reports: Receiver<String>,
    _file: tempfile::NamedTempFile,
}

impl Scenario {
    fn start(
        server: &Server,
        room_id: &str,
        tokens: &[(String, bool)],
        steps: &[&str],
        sdk_defaults_token: Option<String>,
    ) -> Scenario {
        let file = tempfile::NamedTempFile::new().unwrap();
        let scenario = json!({
            "joinUrl": server.url(&format!("/rooms/{room_id}/join")),
            "participants": tokens.iter().map(|(token, publishes)| json!({"token": token, "publishes": publishes})).collect::<Vec<_>>(),
            "steps": steps,
            "sdkDefaultsToken": sdk_defaults_token,
        });
        std::fs::write(file.path(), scenario.to_string()).unwrap();
        let mut child = Command::new("node")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/node/room.mjs"))
            .arg(file.path())
            .stdout(Stdio::piped())
            .spawn()
            .expect("node tests/node/room.mjs (make test installs Node.js and Chromium)");
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (sender, reports) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Scenario {
            child,
            reports,
            _file: file,
        }
    }

    /// The next report, failing the test on a failed step (with the server's log).
    fn next(&mut self, server: &Server) -> Value {
        let line = self
            .reports
            .recv_timeout(STEP_TIMEOUT)
            .unwrap_or_else(|e| panic!("no report from the room scenario ({e})\n{}", server.log()));
        let report: Value = serde_json::from_str(line.trim())
            .unwrap_or_else(|e| panic!("report is not JSON ({e}): {line}"));
        assert_ne!(report["step"], "failed", "{report:#}\n{}", server.log());
        report
    }

    /// Reads reports up to the one of `step`.
    fn until(&mut self, server: &Server, step: &str) -> Value {
        loop {
            let report = self.next(server);
            if report["step"] == step {
                return report;
            }
        }
    }

    fn succeeded(mut self) -> bool {
        self.child.wait().map(|s| s.success()).unwrap_or(false)
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn events_of(server: &Server, room_id: &str) -> Vec<Value> {
    let (status, events) = server.api(
        "GET",
        &format!("/v1/events?object_id={room_id}&limit=100"),
        None,
    );
    assert_eq!(status, 200, "{events}");
    events["data"].as_array().unwrap().clone()
}

fn event_types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn three_livekit_participants_see_hear_and_message_each_other_and_the_session_is_recorded() {
    let server = rooms_server("");
    let room_id = create_room(&server, "standup");
    let tokens: Vec<(String, bool)> = ["ana", "ben", "cho"]
        .iter()
        .map(|identity| {
            (
                token(
                    &server,
                    &room_id,
                    json!({"identity": identity, "name": identity.to_uppercase()}),
                ),
                true,
            )
        })
        .collect();
    let mut scenario = Scenario::start(
        &server,
        &room_id,
        &tokens,
        &["media", "data", "mute", "quality", "reconnect", "leave"],
        None,
    );
    for _ in 0..3 {
        let join = scenario.next(&server);
        assert_eq!(join["step"], "join");
        assert_eq!(join["state"], "publishing", "{join}");
    }

    // While everyone is in: the API lists them with their camera and microphone.
    let (status, participants) =
        server.api("GET", &format!("/v1/rooms/{room_id}/participants"), None);
    assert_eq!(status, 200, "{participants}");
    let listed = participants["data"].as_array().unwrap();
    assert_eq!(listed.len(), 3, "{participants}");

    for _ in 0..3 {
        let media = scenario.next(&server);
        assert_eq!(media["step"], "media");
        assert_eq!(media["advancing"], true, "{media}");
        assert_eq!(media["remote"].as_array().unwrap().len(), 2, "{media}");
        // The fake microphones beep: their levels make speakers.
        assert!(
            !media["speakersSeen"].as_array().unwrap().is_empty(),
            "{media}"
        );
    }
    let data = scenario.next(&server);
    assert_eq!(data["step"], "data");
    for message in data["received"].as_array().unwrap() {
        assert_eq!(message["text"], "hello room", "{data}");
        assert_eq!(message["from"], "ana", "{data}");
        assert_eq!(message["topic"], "chat", "{data}");
    }
    let mute = scenario.next(&server);
    assert_eq!(mute["step"], "mute");
    let quality = scenario.next(&server);
    assert_eq!(quality["step"], "quality");
    assert!(
        quality["low"].as_u64().unwrap() < quality["high"].as_u64().unwrap(),
        "{quality}"
    );
    let reconnect = scenario.next(&server);
    assert_eq!(reconnect["step"], "reconnect", "{reconnect}");
    let leave = scenario.next(&server);
    assert_eq!(leave["identity"], "cho");
    scenario.until(&server, "done");
    assert!(scenario.succeeded());

    // The browser closed: the room empties, and its session ends after its 2 s empty timeout.
    let sessions = wait_for("the room session to end", Duration::from_secs(60), || {
        let (_, sessions) = server.api("GET", &format!("/v1/rooms/{room_id}/sessions"), None);
        let first = sessions["data"].get(0)?.clone();
        (!first["ended_at"].is_null()).then_some(sessions)
    });
    let session = &sessions["data"][0];
    let participants = session["participants"].as_array().unwrap();
    // ana joined twice (her rejoin is a new participant), ben and cho once.
    assert_eq!(participants.len(), 4, "{session}");
    assert!(
        participants.iter().all(|p| !p["left_at"].is_null()),
        "{session}"
    );

    let types = event_types(&events_of(&server, &room_id));
    for expected in [
        "room.started",
        "room.session.started",
        "participant.joined",
        "track.published",
        "track.muted",
        "track.unmuted",
        "track.unpublished",
        "participant.left",
        "room.session.ended",
        "room.finished",
    ] {
        assert!(
            types.iter().any(|t| t == expected),
            "{expected} missing from {types:?}"
        );
    }
    assert_eq!(
        types.iter().filter(|t| *t == "participant.joined").count(),
        4,
        "{types:?}"
    );
}

#[test]
fn a_subscribe_only_token_cannot_publish_and_the_api_removes_a_participant_and_sends_data() {
    let server = rooms_server("");
    let room_id = create_room(&server, "webinar");
    let host = token(&server, &room_id, json!({"identity": "host"}));
    let viewer = token(
        &server,
        &room_id,
        json!({"identity": "viewer", "can_publish": false}),
    );
    let app = token(&server, &room_id, json!({"identity": "app"}));
    let mut scenario = Scenario::start(
        &server,
        &room_id,
        &[(host, true), (viewer, false)],
        &[
            "media",
            "try-publish",
            "sdk-defaults",
            "server-data",
            "wait-removed",
        ],
        Some(app),
    );
    assert_eq!(scenario.next(&server)["state"], "publishing");
    let viewer_join = scenario.next(&server);
    assert_eq!(viewer_join["state"], "connected", "{viewer_join}");
    scenario.until(&server, "media");
    scenario.until(&server, "media");
    let tried = scenario.next(&server);
    assert_eq!(tried["step"], "try-publish");
    assert_eq!(tried["published"], false, "{tried}");

    // An app's page with the SDK's defaults joins (falling back from the single-connection
    // path) and publishes H.264.
    let defaults = scenario.next(&server);
    assert_eq!(defaults["step"], "sdk-defaults", "{defaults}");
    let (_, participants) = server.api("GET", &format!("/v1/rooms/{room_id}/participants"), None);
    let app = participants["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["identity"] == "app")
        .unwrap()
        .clone();
    let video = app["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["kind"] == "video")
        .unwrap()
        .clone();
    assert_eq!(video["mime_type"], "video/H264", "{app}");
    assert_eq!(video["source"], "camera", "{app}");
    let viewer = participants["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["identity"] == "viewer")
        .unwrap()
        .clone();
    assert!(
        viewer["tracks"].as_array().unwrap().is_empty(),
        "{participants}"
    );

    // Data from the server reaches everyone.
    scenario.until(&server, "server-data");
    let (status, sent) = server.api(
        "POST",
        &format!("/v1/rooms/{room_id}/data"),
        Some(json!({"payload": "from the server", "topic": "notice"})),
    );
    assert_eq!(status, 202, "{sent}");
    let received = scenario.until(&server, "server-data-received");
    for message in received["received"].as_array().unwrap() {
        assert_eq!(message["text"], "from the server", "{received}");
        assert_eq!(message["topic"], "notice", "{received}");
    }

    scenario.until(&server, "wait-removed");
    let (status, body) = server.api(
        "DELETE",
        &format!("/v1/rooms/{room_id}/participants/viewer"),
        None,
    );
    assert_eq!(status, 204, "{body}");
    scenario.until(&server, "removed");
    let (status, _) = server.api(
        "DELETE",
        &format!("/v1/rooms/{room_id}/participants/viewer"),
        None,
    );
    assert_eq!(status, 404, "removed already");
    scenario.until(&server, "done");
}

#[test]
fn bad_tokens_are_refused_before_the_websocket_with_the_reason_the_sdk_shows() {
    let server = rooms_server("auto_create = false\n");
    let room_id = create_room(&server, "exists");
    let good = token(&server, &room_id, json!({"identity": "x"}));
    let validate =
        |token: &str| http_get(&server.url(&format!("/rtc/validate?access_token={token}")));

    let ok = validate(&good);
    assert_eq!((ok.status, ok.text()), (200, "success".to_owned()));
    assert_eq!(ok.header("access-control-allow-origin"), Some("*"));

    assert_eq!(validate("").status, 401);
    assert_eq!(validate("not.a.jwt").status, 401);

    let now = chrono::Utc::now().timestamp();
    let claims = |room: &str, exp: i64| json!({"iss": API_KEY, "sub": "y", "exp": exp, "video": {"room": room, "roomJoin": true}});
    let wrong_secret = hs256_jwt(claims("exists", now + 600), "not-the-secret");
    let refused = validate(&wrong_secret);
    assert_eq!(refused.status, 401);
    assert!(refused.text().contains("signature"), "{}", refused.text());

    let expired = hs256_jwt(claims("exists", now - 3600), API_SECRET);
    assert!(validate(&expired).text().contains("expired"));

    let unknown_room = hs256_jwt(claims("nowhere", now + 600), API_SECRET);
    let refused = validate(&unknown_room);
    assert_eq!(refused.status, 404);
    assert_eq!(refused.text(), "requested room does not exist");

    let unknown_key = hs256_jwt(
        json!({"iss": "ak_nobody", "sub": "y", "exp": now + 600, "video": {"room": "exists", "roomJoin": true}}),
        API_SECRET,
    );
    assert_eq!(validate(&unknown_key).status, 401);

    // A key that may not manage rooms cannot let anyone in with the tokens it signs.
    let (status, created) = server.api(
        "POST",
        "/v1/api-keys",
        Some(json!({"name": "reader", "permissions": ["live:read"]})),
    );
    assert_eq!(status, 201, "{created}");
    let reader_token = hs256_jwt(
        json!({"iss": created["data"]["id"], "sub": "y", "exp": now + 600, "video": {"room": "exists", "roomJoin": true}}),
        created["data"]["secret"].as_str().unwrap(),
    );
    let refused = validate(&reader_token);
    assert_eq!(refused.status, 403);
    assert!(refused.text().contains("rooms:write"), "{}", refused.text());

    // The single-connection path is not served: its 404 sends the SDKs to /rtc.
    let v1 = http_get(&server.url(&format!("/rtc/v1/validate?access_token={good}")));
    assert_eq!(v1.status, 404);
    assert!(!v1.text().contains("requested room does not exist"));
}
