//! Black-box: real-time rooms over real HTTP against the real binary: `/v1/rooms` created,
//! listed, read and deleted; names unique; settings checked; access tokens signed with the
//! calling key's secret in LiveKit's format; sessions; the live operations of the room engine
//! on a room nobody joined; and the `rooms:*` permissions.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::{Server, API_KEY, API_SECRET};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn create_room(server: &Server, body: Value) -> Value {
    let (status, json) = server.api("POST", "/v1/rooms", Some(body));
    assert_eq!(status, 201, "create room: {json}");
    json["data"].clone()
}

fn assert_error(status: u16, body: &Value, expected: u16, code: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
}

/// The claims of a room token, checked as a LiveKit server checks them: HS256 with `secret`,
/// `exp` and `iss` required.
fn verified_claims(token: &str, secret: &str) -> Value {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_required_spec_claims(&["exp", "iss"]);
    jsonwebtoken::decode::<Value>(
        token,
        &DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
    .unwrap_or_else(|e| panic!("token {token} does not verify: {e}"))
    .claims
}

#[test]
fn rooms_are_created_listed_got_and_deleted() {
    let server = Server::start();
    let base = format!("http://127.0.0.1:{}", server.http_port);
    let room = create_room(&server, json!({"name": "standup"}));
    let id = room["id"].as_str().unwrap();
    assert!(id.starts_with("room_"), "{room}");
    assert_eq!(room["name"], "standup");
    assert_eq!(room["max_participants"], 100);
    assert_eq!(room["empty_timeout_s"], 300);
    assert_eq!(room["metadata"], "");
    assert_eq!(
        room["ws_url"],
        format!("ws://127.0.0.1:{}", server.http_port)
    );
    assert_eq!(room["join_url"], format!("{base}/rooms/{id}/join"));
    assert_eq!(room["active_session"], Value::Null);
    assert!(room["created_at"].is_string());

    let other = create_room(
        &server,
        json!({"name": "all hands", "max_participants": 0, "empty_timeout_s": 60,
               "metadata": "{\"agenda\":[]}"}),
    );
    assert_eq!(other["max_participants"], 0);
    assert_eq!(other["empty_timeout_s"], 60);
    assert_eq!(other["metadata"], "{\"agenda\":[]}");

    let (status, got) = server.api("GET", &format!("/v1/rooms/{id}"), None);
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["data"], room);
    let (status, page) = server.api("GET", "/v1/rooms?limit=1", None);
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["data"], json!([room]));
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, rest) = server.api("GET", &format!("/v1/rooms?limit=1&cursor={cursor}"), None);
    assert_eq!(rest["data"][0]["id"], other["id"]);
    assert_eq!(rest["next_cursor"], Value::Null);

    let (status, sessions) = server.api("GET", &format!("/v1/rooms/{id}/sessions"), None);
    assert_eq!(status, 200, "{sessions}");
    assert_eq!(sessions, json!({"data": [], "next_cursor": null}));

    let (status, _) = server.api("DELETE", &format!("/v1/rooms/{id}"), None);
    assert_eq!(status, 204);
    let (status, body) = server.api("GET", &format!("/v1/rooms/{id}"), None);
    assert_error(status, &body, 404, "not_found");
    let (status, body) = server.api("DELETE", &format!("/v1/rooms/{id}"), None);
    assert_error(status, &body, 404, "not_found");
    let (status, body) = server.api("GET", &format!("/v1/rooms/{id}/sessions"), None);
    assert_error(status, &body, 404, "not_found");

    // The history has the room's creation and deletion, about the room.
    let (status, events) = server.api("GET", "/v1/events?type=room.created", None);
    assert_eq!(status, 200, "{events}");
    let created = &events["data"][0];
    assert_eq!(created["object"], json!({"type": "room", "id": id}));
    assert_eq!(created["data"]["name"], "standup");
    let (_, events) = server.api("GET", "/v1/events?type=room.deleted", None);
    assert_eq!(events["data"][0]["object"]["id"], id);
}

#[test]
fn names_are_unique_and_settings_checked() {
    let server = Server::start();
    create_room(&server, json!({"name": "standup"}));
    let (status, body) = server.api("POST", "/v1/rooms", Some(json!({"name": "standup"})));
    assert_error(status, &body, 409, "conflict");
    for bad in [
        json!({}),
        json!({"name": ""}),
        json!({"name": "line\nbreak"}),
        json!({"name": "x".repeat(129)}),
        json!({"name": "ok", "max_participants": 1001}),
        json!({"name": "ok", "empty_timeout_s": 86401}),
        json!({"name": "ok", "metadata": "x".repeat(16 * 1024 + 1)}),
        json!({"name": "ok", "unknown": true}),
    ] {
        let (status, body) = server.api("POST", "/v1/rooms", Some(bad.clone()));
        assert_error(status, &body, 400, "invalid_request");
    }
    let (status, page) = server.api("GET", "/v1/rooms", None);
    assert_eq!(status, 200);
    assert_eq!(page["data"].as_array().unwrap().len(), 1, "{page}");
}

#[test]
fn tokens_are_livekit_tokens_signed_with_the_calling_keys_secret() {
    let server = Server::start();
    let room = create_room(&server, json!({"name": "standup"}));
    let id = room["id"].as_str().unwrap();
    let before = now();
    let (status, body) = server.api(
        "POST",
        &format!("/v1/rooms/{id}/tokens"),
        Some(
            json!({"identity": "alice", "name": "Alice", "metadata": "{\"seat\":1}",
                    "ttl_s": 600, "can_publish_sources": ["camera", "microphone"]}),
        ),
    );
    assert_eq!(status, 201, "{body}");
    let data = &body["data"];
    let token = data["token"].as_str().unwrap();
    assert_eq!(data["ws_url"], room["ws_url"]);
    assert_eq!(
        data["join_url"],
        format!("{}?token={token}", room["join_url"].as_str().unwrap())
    );
    let claims = verified_claims(token, API_SECRET);
    assert_eq!(claims["iss"], API_KEY);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["name"], "Alice");
    assert_eq!(claims["metadata"], "{\"seat\":1}");
    let exp = claims["exp"].as_u64().unwrap();
    assert!((before + 600..=now() + 600).contains(&exp), "{claims}");
    let expires_at: chrono::DateTime<chrono::Utc> =
        data["expires_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(u64::try_from(expires_at.timestamp()).unwrap(), exp);
    let video = &claims["video"];
    assert_eq!(video["room"], "standup", "the grant names the room by name");
    assert_eq!(video["roomJoin"], true);
    assert_eq!(video["canPublish"], true);
    assert_eq!(video["canSubscribe"], true);
    assert_eq!(video["canPublishData"], true);
    assert_eq!(video["canPublishSources"], json!(["camera", "microphone"]));
    // Signed with the key's secret, nothing else.
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_required_spec_claims(&["exp"]);
    assert!(jsonwebtoken::decode::<Value>(
        token,
        &DecodingKey::from_secret(b"not the secret"),
        &validation
    )
    .is_err());

    let (status, body) = server.api(
        "POST",
        &format!("/v1/rooms/{id}/tokens"),
        Some(
            json!({"identity": "viewer", "can_publish": false, "can_publish_data": false,
                    "hidden": true}),
        ),
    );
    assert_eq!(status, 201, "{body}");
    let claims = verified_claims(body["data"]["token"].as_str().unwrap(), API_SECRET);
    assert_eq!(claims["video"]["canPublish"], false);
    assert_eq!(claims["video"]["canPublishData"], false);
    assert_eq!(claims["video"]["hidden"], true);
    // Six hours unless asked otherwise.
    let exp = claims["exp"].as_u64().unwrap();
    assert!(
        (before + 21_600..=now() + 21_600).contains(&exp),
        "{claims}"
    );

    for bad in [
        json!({}),
        json!({"identity": ""}),
        json!({"identity": "a", "ttl_s": 86401}),
        json!({"identity": "a", "can_publish_sources": ["webcam"]}),
    ] {
        let (status, body) =
            server.api("POST", &format!("/v1/rooms/{id}/tokens"), Some(bad.clone()));
        assert_error(status, &body, 400, "invalid_request");
    }
}

#[test]
fn live_operations_on_a_room_nobody_joined() {
    let server = Server::start();
    let room = create_room(&server, json!({"name": "quiet"}));
    let id = room["id"].as_str().unwrap();
    let (status, body) = server.api("GET", &format!("/v1/rooms/{id}/participants"), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"], json!([]));
    // The engine's contract: a room that is not running has no one to remove or send to.
    let (status, body) = server.api(
        "DELETE",
        &format!("/v1/rooms/{id}/participants/alice"),
        None,
    );
    assert_error(status, &body, 409, "room_not_running");
    let (status, body) = server.api(
        "POST",
        &format!("/v1/rooms/{id}/data"),
        Some(json!({"payload": "hello"})),
    );
    assert_error(status, &body, 409, "room_not_running");
    let (status, body) = server.api("GET", "/v1/rooms/room_missing/participants", None);
    assert_error(status, &body, 404, "not_found");
    // Deleting a room that is not running closes nothing and deletes it.
    let (status, _) = server.api("DELETE", &format!("/v1/rooms/{id}"), None);
    assert_eq!(status, 204);
}

#[test]
fn rooms_need_the_rooms_permissions() {
    let server = Server::start();
    let room = create_room(&server, json!({"name": "standup"}));
    let id = room["id"].as_str().unwrap();
    let mut keys = Vec::new();
    for permissions in [json!(["rooms:read"]), json!(["live:read", "live:write"])] {
        let (status, key) = server.api(
            "POST",
            "/v1/api-keys",
            Some(json!({"name": "limited", "permissions": permissions})),
        );
        assert_eq!(status, 201, "{key}");
        keys.push((
            key["data"]["id"].as_str().unwrap().to_owned(),
            key["data"]["secret"].as_str().unwrap().to_owned(),
        ));
    }
    let (reader, reader_secret) = &keys[0];
    let (live, live_secret) = &keys[1];

    let (status, page) = server.api_as(reader, reader_secret, "GET", "/v1/rooms", None);
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["data"][0]["id"], id);
    for (method, path, body) in [
        (
            "POST",
            "/v1/rooms".to_owned(),
            Some(json!({"name": "mine"})),
        ),
        (
            "POST",
            format!("/v1/rooms/{id}/tokens"),
            Some(json!({"identity": "mallory"})),
        ),
        ("DELETE", format!("/v1/rooms/{id}"), None),
    ] {
        let (status, body) = server.api_as(reader, reader_secret, method, &path, body);
        assert_error(status, &body, 403, "forbidden");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("rooms:write"),
            "{body}"
        );
    }
    let (status, body) = server.api_as(live, live_secret, "GET", "/v1/rooms", None);
    assert_error(status, &body, 403, "forbidden");
    let (_, page) = server.api("GET", "/v1/rooms", None);
    assert_eq!(page["data"].as_array().unwrap().len(), 1, "{page}");
}
