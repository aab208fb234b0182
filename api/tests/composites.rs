//! `/v1/rooms/{id}/composite…` through the router on a real database (SQLite, or Postgres when
//! SLUICE_TEST_POSTGRES_URL is set) with a fake room engine: composites started with their own
//! live stream, read back, changed, stopped, refused starts undone, the shortcuts, permissions,
//! events, and a deleted room's composite stopped.

mod common;

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::{json, Value};
use sluice_rooms::{CompositeLayout, ControlError};
use sluice_storage::{LiveStreamId, Permission, RoomCompositeId, RoomCompositeStatus};

use common::rooms::{alice, assert_error, FakeRooms};
use common::{basic, harness, harness_with_rooms, Harness};

/// A harness whose room engine is `rooms`, recording composites into its database, with a
/// room named `standup`; the room's id.
async fn with_room(rooms: &Arc<FakeRooms>) -> (Harness, String) {
    let h = harness_with_rooms(Some(rooms.clone())).await;
    rooms.record_into(h.db.clone(), h.events.clone());
    let room = h.create_room(json!({"name": "standup"})).await;
    (h, room["id"].as_str().unwrap().to_owned())
}

fn youtube() -> Value {
    json!({"url": "rtmp://a.rtmp.youtube.com/live2", "stream_key": "yt-key-0001"})
}

fn twitch() -> Value {
    json!({"url": "rtmps://live.twitch.tv/app", "stream_key": "tw-key-0002"})
}

fn live_stream_id(composite: &Value) -> LiveStreamId {
    LiveStreamId::parse(composite["live_stream_id"].as_str().unwrap()).unwrap()
}

fn composite_id(composite: &Value) -> RoomCompositeId {
    RoomCompositeId::parse(composite["id"].as_str().unwrap()).unwrap()
}

impl Harness {
    async fn start_composite(&self, room: &str, body: Value) -> Value {
        let (status, body) = self
            .call("POST", &format!("/v1/rooms/{room}/composite"), Some(body))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["data"].clone()
    }

    /// The types of the events recorded so far, in order.
    async fn event_types(&self) -> Vec<String> {
        let events = self.db.list_events(100, None).await.unwrap().items;
        events.into_iter().map(|event| event.event_type).collect()
    }

    /// `(url, stream_key, rendition)` of a live stream's simulcast targets.
    async fn targets_of(&self, stream: &LiveStreamId) -> Vec<(String, String, String)> {
        self.db
            .list_simulcast_targets(stream)
            .await
            .unwrap()
            .into_iter()
            .map(|target| (target.url, target.stream_key, target.rendition))
            .collect()
    }
}

#[tokio::test]
async fn a_composite_starts_with_its_own_live_stream_and_is_read_back() {
    let rooms = Arc::new(FakeRooms::default());
    let (h, room) = with_room(&rooms).await;
    rooms.run("standup", vec![alice()]);
    let composite = h.start_composite(&room, json!({})).await;
    let id = composite["id"].as_str().unwrap();
    assert!(id.starts_with("rcmp_"), "{composite}");

    // The live stream made for it: named after the room, no reconnect window, one public id.
    let stream_id = live_stream_id(&composite);
    let stream = h.db.get_live_stream(&stream_id).await.unwrap().unwrap();
    assert_eq!(stream.name, "standup (composite)");
    assert_eq!(stream.reconnect_window_s, 0);
    assert!(!stream.record);
    assert_eq!(stream.ladder, sluice_media::Ladder::DEFAULT);
    let playback_ids = h.db.list_playback_ids(&stream_id).await.unwrap();
    assert_eq!(playback_ids.len(), 1);
    let playback_id = &playback_ids[0].id;
    assert_eq!(
        composite,
        json!({
            "id": id,
            "room_id": room,
            "live_stream_id": stream_id,
            "layout": "grid",
            "resolution": "1080p",
            "outputs": {"hls": true, "record": false, "simulcast_targets": []},
            "latency_mode": "standard",
            // Someone is in the room, so the engine publishes at once.
            "status": "active",
            "playback_ids": [{"id": playback_id, "policy": "public"}],
            "hls_url": format!("http://localhost:8080/hls/{playback_id}/master.m3u8"),
            "created_at": composite["created_at"],
            "started_at": composite["started_at"],
            "stopped_at": null,
        })
    );
    assert!(composite["started_at"].is_string());

    // The engine got what it needs to publish to that stream.
    assert_eq!(rooms.calls(), ["start_composite standup Grid P1080"]);
    let spec = rooms.composites.lock().unwrap()["standup"].clone();
    assert_eq!(
        (
            spec.composite_id.as_str(),
            spec.room_id.as_str(),
            spec.room_name.as_str()
        ),
        (id, room.as_str(), "standup")
    );
    assert_eq!(spec.live_stream_id, stream_id.as_str());
    assert_eq!(spec.stream_key, stream.stream_key);

    let (status, got) = h
        .call("GET", &format!("/v1/rooms/{room}/composite"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["data"], composite);
    let (status, list) = h
        .call("GET", &format!("/v1/rooms/{room}/composites"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list, json!({"data": [composite], "next_cursor": null}));

    // The live stream's creation and the composite's start are events; the latter is about
    // the room and carries the composite as it was recorded.
    let events = h.db.list_events(100, None).await.unwrap().items;
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "room.created",
            "live_stream.created",
            "room.composite.started"
        ]
    );
    let started = &events[2];
    assert_eq!(
        (
            started.object.object_type.as_str(),
            started.object.id.as_str()
        ),
        ("room", room.as_str())
    );
    let mut expected = composite.clone();
    for shown_only in ["playback_ids", "hls_url"] {
        expected.as_object_mut().unwrap().remove(shown_only);
    }
    expected["status"] = json!("waiting");
    expected["started_at"] = Value::Null;
    assert_eq!(started.data, expected);
}

#[tokio::test]
async fn a_composite_without_hls_has_no_playback_id_and_restreams_its_source() {
    let rooms = Arc::new(FakeRooms::default());
    let (h, room) = with_room(&rooms).await;
    let composite = h
        .start_composite(
            &room,
            json!({
                "layout": "speaker", "resolution": "720p", "latency_mode": "low",
                "outputs": {"hls": false, "record": true, "simulcast_targets": [youtube(), twitch()]}
            }),
        )
        .await;
    assert_eq!(
        (
            &composite["layout"],
            &composite["resolution"],
            &composite["latency_mode"]
        ),
        (&json!("speaker"), &json!("720p"), &json!("low"))
    );
    // Nobody is in the room yet.
    assert_eq!(composite["status"], "waiting");
    assert_eq!(composite["started_at"], Value::Null);
    assert_eq!(composite["playback_ids"], json!([]));
    assert_eq!(composite["hls_url"], Value::Null);
    assert_eq!(rooms.calls(), ["start_composite standup Speaker P720"]);

    let stream_id = live_stream_id(&composite);
    let stream = h.db.get_live_stream(&stream_id).await.unwrap().unwrap();
    assert!(stream.record);
    assert_eq!(stream.latency_mode, sluice_storage::LatencyMode::Low);
    assert!(h.db.list_playback_ids(&stream_id).await.unwrap().is_empty());
    assert_eq!(
        h.targets_of(&stream_id).await,
        [
            (
                "rtmp://a.rtmp.youtube.com/live2".to_owned(),
                "yt-key-0001".to_owned(),
                "source".to_owned()
            ),
            (
                "rtmps://live.twitch.tv/app".to_owned(),
                "tw-key-0002".to_owned(),
                "source".to_owned()
            ),
        ]
    );
    let targets = h.db.list_simulcast_targets(&stream_id).await.unwrap();
    assert_eq!(
        composite["outputs"],
        json!({"hls": false, "record": true, "simulcast_targets": [
            {"id": targets[0].id, "url": "rtmp://a.rtmp.youtube.com/live2"},
            {"id": targets[1].id, "url": "rtmps://live.twitch.tv/app"},
        ]})
    );
    // Stream keys are never shown, in the composite or its events.
    assert!(!composite.to_string().contains("yt-key"));
    let events = h.db.list_events(100, None).await.unwrap().items;
    assert!(events
        .iter()
        .all(|e| !e.data.to_string().contains("yt-key")));
    assert_eq!(
        events
            .iter()
            .filter(|e| e.event_type == "simulcast_target.created")
            .count(),
        2
    );
}

#[tokio::test]
async fn invalid_composites_are_refused_with_400_and_leave_nothing_behind() {
    let rooms = Arc::new(FakeRooms::default());
    let (h, room) = with_room(&rooms).await;
    for (bad, message) in [
        (json!({"layout": "mosaic"}), "layout"),
        (json!({"resolution": "4k"}), "resolution"),
        (json!({"latency_mode": "instant"}), "latency_mode"),
        (json!({"colour": "blue"}), "colour"),
        (
            json!({"outputs": {"hls": false}}),
            "outputs: ask for at least one of hls, record and simulcast_targets",
        ),
        (json!({"outputs": {"dash": true}}), "dash"),
        (
            json!({"outputs": {"simulcast_targets": [{"url": "http://e.com/live", "stream_key": "k"}]}}),
            "outputs.simulcast_targets[0].url: the scheme must be rtmp or rtmps",
        ),
        (
            json!({"outputs": {"simulcast_targets": [youtube(), {"url": "rtmp://e.com/live", "stream_key": "has space"}]}}),
            "outputs.simulcast_targets[1].stream_key: must be 1 to 512 characters",
        ),
        (
            json!({"outputs": {"simulcast_targets": [youtube(), youtube()]}}),
            "outputs.simulcast_targets[1]: the same url and stream_key as outputs.simulcast_targets[0]",
        ),
        (
            json!({"outputs": {"simulcast_targets": [{"url": "rtmp://e.com/live"}]}}),
            "stream_key",
        ),
    ] {
        let (status, body) = h
            .call(
                "POST",
                &format!("/v1/rooms/{room}/composite"),
                Some(bad.clone()),
            )
            .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_request");
        let said = body["error"]["message"].as_str().unwrap();
        assert!(said.contains(message), "{bad}: {said}");
    }
    let too_many: Vec<Value> = (0..33)
        .map(|i| json!({"url": "rtmp://e.com/live", "stream_key": format!("key{i}")}))
        .collect();
    let (status, body) = h
        .call(
            "POST",
            &format!("/v1/rooms/{room}/composite"),
            Some(json!({"outputs": {"simulcast_targets": too_many}})),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_request");

    let (status, body) = h
        .call("POST", "/v1/rooms/room_missing/composite", Some(json!({})))
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    assert!(rooms.calls().is_empty());
    assert!(h
        .db
        .list_live_streams(10, None, None)
        .await
        .unwrap()
        .items
        .is_empty());
}

#[tokio::test]
async fn a_second_start_is_a_conflict() {
    let rooms = Arc::new(FakeRooms::default());
    let (h, room) = with_room(&rooms).await;
    h.start_composite(&room, json!({})).await;
    let (status, body) = h
        .call(
            "POST",
            &format!("/v1/rooms/{room}/composite"),
            Some(json!({})),
        )
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    assert_eq!(
        body["error"]["message"],
        "the room already has a composite running"
    );
    assert_eq!(
        h.db.list_live_streams(10, None, None)
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    assert_eq!(rooms.calls().len(), 1);
}

#[tokio::test]
async fn a_start_the_engine_refuses_is_undone() {
    let rooms = Arc::new(FakeRooms::default());
    let (h, room) = with_room(&rooms).await;
    for (refusal, status, code) in [
        (
            ControlError::CompositeUnavailable("no H.264 encoder".to_owned()),
            StatusCode::SERVICE_UNAVAILABLE,
            "composite_unavailable",
        ),
        (
            ControlError::Stopped,
            StatusCode::SERVICE_UNAVAILABLE,
            "rooms_unavailable",
        ),
        (
            ControlError::CompositeRunning,
            StatusCode::CONFLICT,
            "conflict",
        ),
    ] {
        rooms.refuse_next_composite_call(refusal);
        let (answered, body) = h
            .call(
                "POST",
                &format!("/v1/rooms/{room}/composite"),
                Some(json!({"outputs": {"record": true, "simulcast_targets": [youtube()]}})),
            )
            .await;
        assert_error(answered, &body, status, code);
    }
    let (_, body) = h
        .call("GET", &format!("/v1/rooms/{room}/composites"), None)
        .await;
    assert_eq!(body["data"][0]["status"], "stopped");
    assert!(body["data"][0]["stopped_at"].is_string());

    // Each refused composite was stopped and its live stream deleted; none runs.
    let history = body["data"].as_array().unwrap();
    assert_eq!(history.len(), 3);
    for composite in history {
        assert_eq!(composite["status"], "stopped", "{composite}");
        assert!(h
            .db
            .get_live_stream(&live_stream_id(composite))
            .await
            .unwrap()
            .is_none());
    }
    let (status, body) = h
        .call("GET", &format!("/v1/rooms/{room}/composite"), None)
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(
        body["error"]["message"],
        "no composite is running in the room"
    );
    let refused_start = [
        "live_stream.created",
        "simulcast_target.created",
        "room.composite.started",
        "room.composite.stopped",
        "live_stream.deleted",
    ];
    let mut expected = vec!["room.created"];
    for _ in 0..3 {
        expected.extend(refused_start);
    }
    assert_eq!(h.event_types().await, expected);

    // The room can have a composite afterwards.
    h.start_composite(&room, json!({})).await;
}

#[tokio::test]
async fn patch_changes_the_layout_and_replaces_the_targets() {
    let rooms = Arc::new(FakeRooms::default());
    let (h, room) = with_room(&rooms).await;
    let (status, body) = h
        .call(
            "PATCH",
            &format!("/v1/rooms/{room}/composite"),
            Some(json!({"layout": "speaker"})),
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");

    let composite = h
        .start_composite(
            &room,
            json!({"outputs": {"simulcast_targets": [youtube(), twitch()]}}),
        )
        .await;
    let stream_id = live_stream_id(&composite);
    let kept_id = h.db.list_simulcast_targets(&stream_id).await.unwrap()[0]
        .id
        .clone();
    let facebook =
        json!({"url": "rtmps://live-api-s.facebook.com:443/rtmp", "stream_key": "fb-key-0003"});
    let (status, body) = h
        .call(
            "PATCH",
            &format!("/v1/rooms/{room}/composite"),
            Some(json!({"layout": "single", "simulcast_targets": [youtube(), facebook]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let changed = &body["data"];
    assert_eq!(changed["layout"], "single");
    assert_eq!(
        rooms.composites.lock().unwrap()["standup"].layout,
        CompositeLayout::Single
    );
    assert!(rooms
        .calls()
        .contains(&"set_composite_layout standup Single".to_owned()));
    let targets = h.db.list_simulcast_targets(&stream_id).await.unwrap();
    assert_eq!(targets.len(), 2);
    assert_eq!(targets[0].id, kept_id, "an unchanged target is kept");
    assert_eq!(targets[1].stream_key, "fb-key-0003");
    assert_eq!(targets[1].rendition, "source");
    assert_eq!(
        changed["outputs"]["simulcast_targets"],
        json!([
            {"id": kept_id, "url": "rtmp://a.rtmp.youtube.com/live2"},
            {"id": targets[1].id, "url": "rtmps://live-api-s.facebook.com:443/rtmp"},
        ])
    );
    let (_, got) = h
        .call("GET", &format!("/v1/rooms/{room}/composite"), None)
        .await;
    assert_eq!(got["data"], *changed);
    let types = h.event_types().await;
    assert_eq!(
        types.iter().rev().take(2).collect::<Vec<_>>(),
        ["simulcast_target.created", "simulcast_target.deleted"]
    );

    for bad in [
        json!({"layout": "mosaic"}),
        json!({"resolution": "720p"}),
        json!({"simulcast_targets": [{"url": "ftp://e.com/x", "stream_key": "k"}]}),
    ] {
        let (status, body) = h
            .call("PATCH", &format!("/v1/rooms/{room}/composite"), Some(bad))
            .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_request");
    }

    // An engine that lost the composite (a crash) has it marked stopped.
    rooms.lose_composite("standup");
    let (status, body) = h
        .call(
            "PATCH",
            &format!("/v1/rooms/{room}/composite"),
            Some(json!({"layout": "grid"})),
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let stored =
        h.db.get_room_composite(&composite_id(&composite))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(stored.status, RoomCompositeStatus::Stopped);
    assert_eq!(
        h.event_types().await.last().unwrap(),
        "room.composite.stopped"
    );
}

#[tokio::test]
async fn delete_stops_the_composite_through_the_engine() {
    let rooms = Arc::new(FakeRooms::default());
    let (h, room) = with_room(&rooms).await;
    let composite = h.start_composite(&room, json!({})).await;
    let (status, body) = h
        .call("DELETE", &format!("/v1/rooms/{room}/composite"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert!(rooms.calls().contains(&"stop_composite standup".to_owned()));
    let (status, body) = h
        .call("GET", &format!("/v1/rooms/{room}/composite"), None)
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (_, list) = h
        .call("GET", &format!("/v1/rooms/{room}/composites"), None)
        .await;
    assert_eq!(list["data"][0]["id"], composite["id"]);
    assert_eq!(list["data"][0]["status"], "stopped");
    // The live stream stays: its recording and sessions are kept.
    assert!(h
        .db
        .get_live_stream(&live_stream_id(&composite))
        .await
        .unwrap()
        .is_some());
    let (status, body) = h
        .call("DELETE", &format!("/v1/rooms/{room}/composite"), None)
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");

    // A composite the engine lost is marked stopped here, its event published once.
    let lost = h.start_composite(&room, json!({})).await;
    rooms.lose_composite("standup");
    let (status, _) = h
        .call("DELETE", &format!("/v1/rooms/{room}/composite"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let stored =
        h.db.get_room_composite(&composite_id(&lost))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(stored.status, RoomCompositeStatus::Stopped);
    let stopped = h
        .event_types()
        .await
        .into_iter()
        .filter(|t| t == "room.composite.stopped")
        .count();
    assert_eq!(stopped, 2);

    // Answers the engine gives pass through.
    h.start_composite(&room, json!({})).await;
    rooms.refuse_next_composite_call(ControlError::Stopped);
    let (status, body) = h
        .call("DELETE", &format!("/v1/rooms/{room}/composite"), None)
        .await;
    assert_error(
        status,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "rooms_unavailable",
    );
}

#[tokio::test]
async fn composite_routes_answer_503_without_a_room_engine() {
    let h = harness().await;
    let room = h.create_room(json!({"name": "standup"})).await;
    let id = room["id"].as_str().unwrap();
    for (method, path, body) in [
        ("POST", "composite", Some(json!({}))),
        ("PATCH", "composite", Some(json!({"layout": "grid"}))),
        ("DELETE", "composite", None),
        ("POST", "hls/start", None),
        ("POST", "hls/stop", None),
        ("POST", "recordings/start", None),
        ("POST", "recordings/stop", None),
        (
            "POST",
            "livestreams/start",
            Some(json!({"outputs": [youtube()]})),
        ),
        ("POST", "livestreams/stop", None),
    ] {
        let (status, body) = h
            .call(method, &format!("/v1/rooms/{id}/{path}"), body)
            .await;
        assert_error(
            status,
            &body,
            StatusCode::SERVICE_UNAVAILABLE,
            "rooms_unavailable",
        );
    }
    // Reading needs no engine.
    let (status, body) = h
        .call("GET", &format!("/v1/rooms/{id}/composites"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = h
        .call("GET", &format!("/v1/rooms/{id}/composite"), None)
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn composites_need_the_rooms_permissions() {
    let rooms = Arc::new(FakeRooms::default());
    let (h, room) = with_room(&rooms).await;
    h.start_composite(&room, json!({})).await;
    let (reader, secret) =
        h.db.create_api_key("reader", &[Permission::RoomsRead])
            .await
            .unwrap();
    let reader = basic(&reader.id, &secret);
    let (live, secret) =
        h.db.create_api_key("live", &[Permission::LiveRead, Permission::LiveWrite])
            .await
            .unwrap();
    let live = basic(&live.id, &secret);
    for path in ["composite", "composites"] {
        let path = format!("/v1/rooms/{room}/{path}");
        let (status, body) = h.call_as(&reader, "GET", &path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        let (status, body) = h.call_as(&live, "GET", &path, None).await;
        assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    }
    for (method, path, body) in [
        ("POST", "composite", Some(json!({}))),
        ("PATCH", "composite", Some(json!({"layout": "grid"}))),
        ("DELETE", "composite", None),
        ("POST", "hls/start", None),
        ("POST", "livestreams/stop", None),
    ] {
        let (status, body) = h
            .call_as(&reader, method, &format!("/v1/rooms/{room}/{path}"), body)
            .await;
        assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("rooms:write"),
            "{body}"
        );
    }
    assert_eq!(rooms.calls(), ["start_composite standup Grid P1080"]);
}

#[tokio::test]
async fn the_hls_and_recording_shortcuts_start_a_composite_and_stop_their_last_output() {
    let rooms = Arc::new(FakeRooms::default());
    let (h, room) = with_room(&rooms).await;
    let post = |path: &'static str| {
        let uri = format!("/v1/rooms/{room}/{path}");
        let h = &h;
        async move { h.call("POST", &uri, None).await }
    };
    let (status, body) = post("hls/stop").await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");

    // Without a body: HLS alone, the defaults.
    let (status, body) = post("hls/start").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        body["data"]["outputs"],
        json!({"hls": true, "record": false, "simulcast_targets": []})
    );
    assert!(body["data"]["hls_url"].is_string());
    for (path, fixed) in [
        ("hls/start", "HLS is fixed for a composite's run"),
        (
            "recordings/start",
            "recording is fixed for a composite's run",
        ),
    ] {
        let (status, body) = post(path).await;
        assert_error(status, &body, StatusCode::CONFLICT, "conflict");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with(fixed),
            "{body}"
        );
    }
    let (status, body) = post("recordings/stop").await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    assert_eq!(
        body["error"]["message"],
        "the room's running composite is not recorded"
    );
    let (status, _) = post("hls/stop").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(rooms.calls().contains(&"stop_composite standup".to_owned()));

    // With settings: recording alone.
    let (status, body) = h
        .call(
            "POST",
            &format!("/v1/rooms/{room}/recordings/start"),
            Some(json!({"layout": "speaker", "resolution": "720p", "latency_mode": "reduced"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let data = &body["data"];
    assert_eq!(
        data["outputs"],
        json!({"hls": false, "record": true, "simulcast_targets": []})
    );
    assert_eq!(
        (&data["layout"], &data["resolution"], &data["latency_mode"]),
        (&json!("speaker"), &json!("720p"), &json!("reduced"))
    );
    let (status, body) = post("hls/stop").await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    let (status, _) = post("recordings/stop").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = h
        .call("GET", &format!("/v1/rooms/{room}/composite"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, body) = h
        .call(
            "POST",
            &format!("/v1/rooms/{room}/hls/start"),
            Some(json!({"outputs": {"hls": true}})),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_request");
}

#[tokio::test]
async fn the_livestreams_shortcuts_add_and_remove_targets_while_the_composite_runs() {
    let rooms = Arc::new(FakeRooms::default());
    let (h, room) = with_room(&rooms).await;
    let livestreams = |action: &'static str, body: Option<Value>| {
        let uri = format!("/v1/rooms/{room}/livestreams/{action}");
        let h = &h;
        async move { h.call("POST", &uri, body).await }
    };
    for bad in [
        json!({"outputs": []}),
        json!({}),
        json!({"outputs": [{"url": "http://e.com/x", "stream_key": "k"}]}),
    ] {
        let (status, body) = livestreams("start", Some(bad)).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_request");
    }

    // None runs: a composite that only restreams.
    let (status, body) = livestreams(
        "start",
        Some(json!({"outputs": [youtube()], "layout": "speaker"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let composite = body["data"].clone();
    assert_eq!(composite["layout"], "speaker");
    assert_eq!(composite["outputs"]["hls"], false);
    assert_eq!(composite["outputs"]["record"], false);
    assert_eq!(composite["playback_ids"], json!([]));
    let stream_id = live_stream_id(&composite);

    // One runs: the targets are added (one it has already is kept), the layout applied.
    let (status, body) = livestreams(
        "start",
        Some(json!({"outputs": [youtube(), twitch()], "layout": "grid"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["id"], composite["id"]);
    assert_eq!(body["data"]["layout"], "grid");
    assert_eq!(
        body["data"]["outputs"]["simulcast_targets"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(h.targets_of(&stream_id).await.len(), 2);

    // Their last output: stopping them stops the composite.
    let (status, _) = livestreams("stop", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(rooms.calls().contains(&"stop_composite standup".to_owned()));
    let (status, _) = livestreams("stop", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Beside HLS: stopping them removes the targets and the composite goes on.
    let composite = h
        .start_composite(
            &room,
            json!({"outputs": {"hls": true, "simulcast_targets": [twitch()]}}),
        )
        .await;
    let (status, _) = livestreams("stop", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(h.targets_of(&live_stream_id(&composite)).await.is_empty());
    let (status, body) = h
        .call("GET", &format!("/v1/rooms/{room}/composite"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["outputs"]["simulcast_targets"], json!([]));
    let (status, body) = livestreams("stop", None).await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    assert_eq!(
        body["error"]["message"],
        "the room's running composite has no simulcast targets"
    );
    // HLS cannot leave a composite that restreams.
    livestreams("start", Some(json!({"outputs": [youtube()]}))).await;
    let (status, body) = h
        .call("POST", &format!("/v1/rooms/{room}/hls/stop"), None)
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("HLS is fixed"));
}

#[tokio::test]
async fn deleting_a_room_stops_its_composite_first() {
    let rooms = Arc::new(FakeRooms::default());
    let (h, room) = with_room(&rooms).await;
    rooms.run("standup", vec![alice()]);
    let composite = h.start_composite(&room, json!({})).await;
    let (status, _) = h.call("DELETE", &format!("/v1/rooms/{room}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        rooms.calls(),
        [
            "start_composite standup Grid P1080",
            "stop_composite standup",
            "close standup"
        ]
    );
    let types = h.event_types().await;
    assert_eq!(
        &types[types.len() - 2..],
        ["room.composite.stopped", "room.deleted"]
    );
    assert!(h
        .db
        .get_room_composite(&composite_id(&composite))
        .await
        .unwrap()
        .is_none());
    // Its live stream, with its recordings, stays.
    assert!(h
        .db
        .get_live_stream(&live_stream_id(&composite))
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn deleting_a_room_on_a_server_without_rooms_marks_its_composite_stopped() {
    let h = harness().await;
    let room = h.create_room(json!({"name": "standup"})).await;
    let room_id = sluice_storage::RoomId::parse(room["id"].as_str().unwrap()).unwrap();
    // Started by the node that runs the room.
    let composite =
        h.db.create_room_composite(&sluice_storage::NewRoomComposite {
            room_id: room_id.clone(),
            live_stream_id: LiveStreamId::parse("ls_elsewhere").unwrap(),
            layout: sluice_storage::RoomCompositeLayout::Grid,
            resolution: sluice_storage::RoomCompositeResolution::P1080,
            latency_mode: sluice_storage::LatencyMode::Standard,
            outputs: sluice_storage::RoomCompositeOutputs {
                hls: true,
                record: false,
                simulcast_targets: Vec::new(),
            },
        })
        .await
        .unwrap();
    let (status, _) = h
        .call("DELETE", &format!("/v1/rooms/{room_id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let events = h.db.list_events(100, None).await.unwrap().items;
    let stopped = events
        .iter()
        .find(|e| e.event_type == "room.composite.stopped")
        .expect("stopped event");
    assert_eq!(stopped.data["id"], composite.id.as_str());
    assert_eq!(stopped.data["status"], "stopped");
}
