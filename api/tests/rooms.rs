//! `/v1/rooms` through the router on a real database (SQLite, or Postgres when
//! SLUICE_TEST_POSTGRES_URL is set): rooms created, listed, read and deleted; their sessions;
//! access tokens that verify with the calling key's secret; the live operations driven through
//! a fake room engine, and answered 503 without one; permissions.

mod common;

use std::sync::Arc;

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sluice_rooms::DataMessage;
use sluice_storage::{Permission, RoomId};

use common::rooms::{alice, assert_error, FakeRooms};
use common::{basic, harness, harness_with_rooms};

fn room_id(room: &Value) -> RoomId {
    RoomId::parse(room["id"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn rooms_are_created_listed_got_and_deleted() {
    let h = harness().await;
    let standup = h.create_room(json!({"name": "standup"})).await;
    let id = standup["id"].as_str().unwrap();
    assert!(id.starts_with("room_"), "{standup}");
    assert_eq!(
        standup,
        json!({
            "id": id,
            "name": "standup",
            "max_participants": 100,
            "empty_timeout_s": 300,
            "metadata": "",
            "created_at": standup["created_at"],
            "ws_url": "ws://localhost:8080",
            "join_url": format!("http://localhost:8080/rooms/{id}/join"),
            "active_session": null,
            "transcription": null,
        })
    );
    let town_hall = h
        .create_room(json!({
            "name": "Town hall", "max_participants": 0, "empty_timeout_s": 86400,
            "metadata": "{\"topic\":\"all\"}"
        }))
        .await;
    assert_eq!(town_hall["max_participants"], 0);
    assert_eq!(town_hall["empty_timeout_s"], 86400);
    assert_eq!(town_hall["metadata"], "{\"topic\":\"all\"}");

    let (status, got) = h.call("GET", &format!("/v1/rooms/{id}"), None).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["data"], standup);

    let (status, page) = h.call("GET", "/v1/rooms?limit=1", None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["data"], json!([standup]));
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, rest) = h
        .call("GET", &format!("/v1/rooms?limit=1&cursor={cursor}"), None)
        .await;
    assert_eq!(rest["data"][0]["id"], town_hall["id"]);
    assert_eq!(rest["next_cursor"], Value::Null);

    // A running session shows with how many are in the room, in the room and in lists.
    let session =
        h.db.start_room_session(&room_id(&standup), "http://10.0.0.5:8080")
            .await
            .unwrap();
    for (sid, identity) in [("PA_a", "alice"), ("PA_b", "bob")] {
        h.db.record_participant_joined(&session.id, &room_id(&standup), sid, identity, "")
            .await
            .unwrap();
    }
    h.db.record_participant_left("PA_b").await.unwrap();
    let (_, got) = h.call("GET", &format!("/v1/rooms/{id}"), None).await;
    let active = &got["data"]["active_session"];
    assert_eq!(active["id"], session.id.as_str(), "{got}");
    assert_eq!(active["num_participants"], 1, "{got}");
    let (_, page) = h.call("GET", "/v1/rooms", None).await;
    assert_eq!(page["data"][0]["active_session"], *active);
    assert_eq!(page["data"][1]["active_session"], Value::Null);

    let (status, body) = h.call("DELETE", &format!("/v1/rooms/{id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = h.call("GET", &format!("/v1/rooms/{id}"), None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(body["error"]["message"], "room not found");
    let (status, body) = h.call("DELETE", &format!("/v1/rooms/{id}"), None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    for bad in ["room_missing", "ls_abc", "..", "room_a%2Fb"] {
        let (status, body) = h.call("GET", &format!("/v1/rooms/{bad}"), None).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    }

    // Created and deleted are events about the room.
    let events = h.db.list_events(100, None).await.unwrap().items;
    let about_room: Vec<_> = events
        .iter()
        .filter(|event| event.object.id == id)
        .map(|event| (event.event_type.as_str(), event.object.object_type.as_str()))
        .collect();
    assert_eq!(
        about_room,
        [("room.created", "room"), ("room.deleted", "room")]
    );
    let created = events.iter().find(|event| event.object.id == id).unwrap();
    assert_eq!(created.data["name"], "standup");
    assert_eq!(created.data["id"], id);
}

#[tokio::test]
async fn a_second_room_of_a_name_is_a_conflict_and_bad_settings_are_refused() {
    let h = harness().await;
    h.create_room(json!({"name": "standup"})).await;
    let (status, body) = h
        .call("POST", "/v1/rooms", Some(json!({"name": "standup"})))
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    assert_eq!(
        body["error"]["message"],
        "a room named \"standup\" already exists"
    );

    for bad in [
        json!({}),
        json!({"name": ""}),
        json!({"name": "   "}),
        json!({"name": "a\u{7}b"}),
        json!({"name": "x".repeat(129)}),
        json!({"name": "é".repeat(129)}),
        json!({"name": "ok", "max_participants": 1001}),
        json!({"name": "ok", "max_participants": -1}),
        json!({"name": "ok", "empty_timeout_s": 86401}),
        json!({"name": "ok", "metadata": "x".repeat(16 * 1024 + 1)}),
        json!({"name": "ok", "colour": "blue"}),
    ] {
        let (status, body) = h.call("POST", "/v1/rooms", Some(bad.clone())).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_request");
    }
    h.create_room(json!({
        "name": "x".repeat(128), "max_participants": 1000, "empty_timeout_s": 0,
        "metadata": "x".repeat(16 * 1024)
    }))
    .await;
    let (status, body) = h.call("GET", "/v1/rooms?limit=0", None).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_request");
    let (status, body) = h.call("GET", "/v1/rooms?cursor=room_nope", None).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_request");
}

#[tokio::test]
async fn tokens_verify_with_the_calling_keys_secret_and_carry_the_grant() {
    let h = harness().await;
    let room = h.create_room(json!({"name": "standup"})).await;
    let id = room["id"].as_str().unwrap();
    let before = Utc::now().timestamp();
    let (status, body) = h
        .call(
            "POST",
            &format!("/v1/rooms/{id}/tokens"),
            Some(json!({"identity": "alice", "name": "Alice", "metadata": "{\"seat\":3}"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let data = &body["data"];
    let token = data["token"].as_str().unwrap();
    assert_eq!(data["ws_url"], "ws://localhost:8080");
    assert_eq!(
        data["join_url"],
        format!("http://localhost:8080/rooms/{id}/join?token={token}")
    );
    assert_eq!(
        sluice_rooms::token::claimed_api_key(token).unwrap(),
        h.key_id
    );
    let grant = sluice_rooms::token::verify(token, h.secret.as_bytes()).unwrap();
    assert_eq!(grant.api_key_id, h.key_id);
    assert_eq!(grant.room, "standup", "the grant names the room by name");
    assert_eq!(
        (
            grant.identity.as_str(),
            grant.name.as_str(),
            grant.metadata.as_str()
        ),
        ("alice", "Alice", "{\"seat\":3}")
    );
    assert!(grant.can_publish && grant.can_subscribe && grant.can_publish_data);
    assert!(grant.can_publish_sources.is_empty() && !grant.hidden);
    // Six hours by default; expires_at says the same.
    let exp = i64::try_from(grant.expires_at).unwrap();
    assert!((before + 21_600..=Utc::now().timestamp() + 21_600).contains(&exp));
    let expires_at: DateTime<Utc> = data["expires_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(expires_at.timestamp(), exp);
    assert!(sluice_rooms::token::verify(token, b"another secret").is_err());

    let (status, body) = h
        .call(
            "POST",
            &format!("/v1/rooms/{id}/tokens"),
            Some(json!({
                "identity": "viewer-1", "ttl_s": 60, "can_publish": false,
                "can_publish_data": false, "can_publish_sources": ["screen_share", "microphone"],
                "hidden": true
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let token = body["data"]["token"].as_str().unwrap();
    let grant = sluice_rooms::token::verify(token, h.secret.as_bytes()).unwrap();
    assert!(!grant.can_publish && grant.can_subscribe && !grant.can_publish_data);
    assert_eq!(grant.can_publish_sources, ["screen_share", "microphone"]);
    assert!(grant.hidden);
    assert!(grant.expires_at <= u64::try_from(Utc::now().timestamp()).unwrap() + 60);

    // A key that may write rooms signs with its own secret.
    let (key, secret) =
        h.db.create_api_key("rooms", &[Permission::RoomsWrite])
            .await
            .unwrap();
    let (status, body) = h
        .call_as(
            &basic(&key.id, &secret),
            "POST",
            &format!("/v1/rooms/{id}/tokens"),
            Some(json!({"identity": "bob"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let grant =
        sluice_rooms::token::verify(body["data"]["token"].as_str().unwrap(), secret.as_bytes())
            .unwrap();
    assert_eq!(grant.api_key_id, key.id);

    for bad in [
        json!({}),
        json!({"identity": ""}),
        json!({"identity": "x".repeat(257)}),
        json!({"identity": "a\nb"}),
        json!({"identity": "a", "name": "x".repeat(257)}),
        json!({"identity": "a", "metadata": "x".repeat(16 * 1024 + 1)}),
        json!({"identity": "a", "ttl_s": 0}),
        json!({"identity": "a", "ttl_s": 86401}),
        json!({"identity": "a", "can_publish_sources": ["webcam"]}),
        json!({"identity": "a", "room": "other"}),
    ] {
        let (status, body) = h
            .call("POST", &format!("/v1/rooms/{id}/tokens"), Some(bad.clone()))
            .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_request");
    }
    let (status, body) = h
        .call(
            "POST",
            "/v1/rooms/room_missing/tokens",
            Some(json!({"identity": "a"})),
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn sessions_are_listed_newest_first_with_their_participants() {
    let h = harness().await;
    let room = h.create_room(json!({"name": "standup"})).await;
    let id = room["id"].as_str().unwrap();
    let (status, body) = h
        .call("GET", &format!("/v1/rooms/{id}/sessions"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"data": [], "next_cursor": null}));

    let room_id = room_id(&room);
    let first =
        h.db.start_room_session(&room_id, "http://10.0.0.5:8080")
            .await
            .unwrap();
    h.db.record_participant_joined(&first.id, &room_id, "PA_a", "alice", "Alice")
        .await
        .unwrap();
    h.db.end_room_session(&first.id).await.unwrap();
    let second =
        h.db.start_room_session(&room_id, "http://10.0.0.5:8080")
            .await
            .unwrap();
    let (_, body) = h
        .call("GET", &format!("/v1/rooms/{id}/sessions?limit=1"), None)
        .await;
    assert_eq!(body["data"][0]["id"], second.id.as_str());
    assert_eq!(body["data"][0]["ended_at"], Value::Null);
    assert_eq!(body["data"][0]["participants"], json!([]));
    assert!(body["data"][0].get("node_url").is_none(), "{body}");
    let cursor = body["next_cursor"].as_str().unwrap();
    let (_, body) = h
        .call(
            "GET",
            &format!("/v1/rooms/{id}/sessions?cursor={cursor}"),
            None,
        )
        .await;
    let ended = &body["data"][0];
    assert_eq!(ended["id"], first.id.as_str());
    assert!(ended["ended_at"].is_string());
    let participant = &ended["participants"][0];
    assert_eq!(
        (
            &participant["sid"],
            &participant["identity"],
            &participant["name"]
        ),
        (&json!("PA_a"), &json!("alice"), &json!("Alice"))
    );
    assert_eq!(participant["left_at"], ended["ended_at"]);
    assert!(participant["joined_at"].is_string());

    let (status, body) = h.call("GET", "/v1/rooms/room_missing/sessions", None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn live_operations_answer_503_without_a_room_engine() {
    let h = harness().await;
    let room = h.create_room(json!({"name": "standup"})).await;
    let id = room["id"].as_str().unwrap();
    for (method, path, body) in [
        ("GET", format!("/v1/rooms/{id}/participants"), None),
        ("DELETE", format!("/v1/rooms/{id}/participants/alice"), None),
        (
            "POST",
            format!("/v1/rooms/{id}/participants/alice/mute"),
            Some(json!({"track_sid": "TR_1", "muted": true})),
        ),
        (
            "POST",
            format!("/v1/rooms/{id}/data"),
            Some(json!({"payload": "hi"})),
        ),
    ] {
        let (status, body) = h.call(method, &path, body).await;
        assert_error(
            status,
            &body,
            StatusCode::SERVICE_UNAVAILABLE,
            "rooms_unavailable",
        );
    }
    // Deleting needs no engine.
    let (status, _) = h.call("DELETE", &format!("/v1/rooms/{id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn live_operations_drive_the_room_engine() {
    let rooms = Arc::new(FakeRooms::default());
    let h = harness_with_rooms(Some(rooms.clone())).await;
    let room = h.create_room(json!({"name": "standup"})).await;
    let id = room["id"].as_str().unwrap();

    // Not running: no participants, and the other operations are 409.
    let (status, body) = h
        .call("GET", &format!("/v1/rooms/{id}/participants"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"data": []}));
    let (status, body) = h
        .call(
            "DELETE",
            &format!("/v1/rooms/{id}/participants/alice"),
            None,
        )
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "room_not_running");
    let (status, body) = h
        .call(
            "POST",
            &format!("/v1/rooms/{id}/data"),
            Some(json!({"payload": "hi"})),
        )
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "room_not_running");

    rooms.run("standup", vec![alice()]);
    let (status, body) = h
        .call("GET", &format!("/v1/rooms/{id}/participants"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let participant = &body["data"][0];
    assert_eq!(participant["sid"], "PA_alice0000000");
    assert_eq!(participant["identity"], "alice");
    assert_eq!(participant["state"], "active");
    assert_eq!(
        participant["tracks"][0],
        json!({
            "sid": "TR_cam000000000", "kind": "video", "source": "camera", "name": "",
            "muted": false, "mime_type": "video/VP8", "width": 1280, "height": 720,
            "simulcast": true
        })
    );

    let (status, body) = h
        .call(
            "POST",
            &format!("/v1/rooms/{id}/participants/alice/mute"),
            Some(json!({"track_sid": "TR_cam000000000", "muted": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"data": {"track_sid": "TR_cam000000000", "muted": true}})
    );
    let (_, body) = h
        .call("GET", &format!("/v1/rooms/{id}/participants"), None)
        .await;
    assert_eq!(body["data"][0]["tracks"][0]["muted"], true);
    for (path, track) in [
        ("participants/alice/mute", "TR_nope"),
        ("participants/nobody/mute", "TR_cam000000000"),
    ] {
        let (status, body) = h
            .call(
                "POST",
                &format!("/v1/rooms/{id}/{path}"),
                Some(json!({"track_sid": track, "muted": false})),
            )
            .await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    }
    let (status, body) = h
        .call(
            "POST",
            &format!("/v1/rooms/{id}/participants/alice/mute"),
            Some(json!({"track_sid": "", "muted": false})),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_request");

    let (status, body) = h
        .call(
            "POST",
            &format!("/v1/rooms/{id}/data"),
            Some(json!({
                "payload": "hello", "topic": "chat", "destination_identities": ["alice"]
            })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, _) = h
        .call(
            "POST",
            &format!("/v1/rooms/{id}/data"),
            Some(json!({"payload_base64": "AAEC", "reliable": false})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    {
        let sent = rooms.data.lock().unwrap();
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0].0, "standup");
        assert_eq!(
            sent[0].1,
            DataMessage {
                payload: b"hello".to_vec(),
                topic: Some("chat".to_owned()),
                destination_identities: vec!["alice".to_owned()],
                reliable: true,
            }
        );
        assert_eq!(sent[1].1.payload, [0, 1, 2]);
        assert!(!sent[1].1.reliable);
    }
    for bad in [
        json!({}),
        json!({"payload": "a", "payload_base64": "YQ=="}),
        json!({"payload": "x".repeat(15 * 1024 + 1)}),
    ] {
        let (status, body) = h
            .call("POST", &format!("/v1/rooms/{id}/data"), Some(bad))
            .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_request");
    }

    // Identities are taken from the path as they are, percent-decoded.
    rooms.run("standup", {
        let mut bob = alice();
        bob.identity = "bob smith".to_owned();
        vec![alice(), bob]
    });
    let (status, body) = h
        .call(
            "DELETE",
            &format!("/v1/rooms/{id}/participants/bob%20smith"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = h
        .call(
            "DELETE",
            &format!("/v1/rooms/{id}/participants/bob%20smith"),
            None,
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = h
        .call("GET", "/v1/rooms/room_missing/participants", None)
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");

    // Deleting a running room closes it first; a room that is not running is just deleted.
    let (status, _) = h.call("DELETE", &format!("/v1/rooms/{id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(rooms.calls().contains(&"close standup".to_owned()));
    assert!(rooms.running.lock().unwrap().is_empty());
    let idle = h.create_room(json!({"name": "idle"})).await;
    let (status, _) = h
        .call(
            "DELETE",
            &format!("/v1/rooms/{}", idle["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(rooms.calls().contains(&"close idle".to_owned()));
}

#[tokio::test]
async fn rooms_need_the_rooms_permissions() {
    let h = harness().await;
    let room = h.create_room(json!({"name": "standup"})).await;
    let id = room["id"].as_str().unwrap();
    let (reader, reader_secret) =
        h.db.create_api_key("reader", &[Permission::RoomsRead])
            .await
            .unwrap();
    let reader = basic(&reader.id, &reader_secret);
    let (live, live_secret) =
        h.db.create_api_key("live", &[Permission::LiveWrite, Permission::LiveRead])
            .await
            .unwrap();
    let live = basic(&live.id, &live_secret);

    for path in [
        "/v1/rooms".to_owned(),
        format!("/v1/rooms/{id}"),
        format!("/v1/rooms/{id}/sessions"),
    ] {
        let (status, body) = h.call_as(&reader, "GET", &path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        let (status, body) = h.call_as(&live, "GET", &path, None).await;
        assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    }
    for (method, path, body) in [
        (
            "POST",
            "/v1/rooms".to_owned(),
            Some(json!({"name": "mine"})),
        ),
        (
            "POST",
            format!("/v1/rooms/{id}/tokens"),
            Some(json!({"identity": "eve"})),
        ),
        ("DELETE", format!("/v1/rooms/{id}"), None),
    ] {
        let (status, body) = h.call_as(&reader, method, &path, body).await;
        assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("rooms:write"),
            "{body}"
        );
    }
    assert_eq!(h.db.list_rooms(10, None).await.unwrap().items.len(), 1);
}
