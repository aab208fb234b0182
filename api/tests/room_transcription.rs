//! Live transcription of rooms through the API, against a fake room engine: the setting is
//! given at creation or turned on and off (reaching the engine), checked like any speech
//! request, shown with the room, carried to a composite as live captions; a session's
//! transcript is read back in every form, and only through its own room; and each route needs
//! its rooms permission.

mod common;

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::{json, Value};
use sluice_storage::{LiveStreamId, NewRoomTranscriptLine, Permission, RoomId};

use common::rooms::{alice, assert_error, FakeRooms};
use common::{basic, harness_with_rooms, Harness};

async fn with_rooms() -> (Arc<FakeRooms>, Harness) {
    let rooms = Arc::new(FakeRooms::default());
    let h = harness_with_rooms(Some(rooms.clone())).await;
    rooms.record_into(h.db.clone(), h.events.clone());
    (rooms, h)
}

fn line(identity: &str, start_ms: i64, text: &str) -> NewRoomTranscriptLine {
    NewRoomTranscriptLine {
        participant_sid: format!("PA_{identity}"),
        participant_identity: identity.to_owned(),
        participant_name: identity.to_uppercase(),
        track_sid: format!("TR_{identity}"),
        start_ms,
        end_ms: start_ms + 1500,
        text: text.to_owned(),
    }
}

#[tokio::test]
async fn a_room_created_with_transcription_shows_it_and_bad_languages_are_refused() {
    let (rooms, h) = with_rooms().await;
    let room = h
        .create_room(json!({"name": "garden", "transcription": {"language": "en"}}))
        .await;
    assert_eq!(room["transcription"], json!({"language": "en"}));
    let plain = h.create_room(json!({"name": "plain"})).await;
    assert_eq!(plain["transcription"], Value::Null);
    let (status, body) = h
        .call(
            "POST",
            "/v1/rooms",
            Some(json!({"name": "french", "transcription": {"language": "fr"}})),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_request");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("transcription"),
        "{body}"
    );
    let (status, body) = h
        .call(
            "POST",
            "/v1/rooms",
            Some(json!({"name": "typo", "transcription": {"lang": "en"}})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(rooms.calls().is_empty(), "{:?}", rooms.calls());
}

#[tokio::test]
async fn transcription_start_and_stop_reach_the_engine_and_change_the_setting() {
    let (rooms, h) = with_rooms().await;
    let room = h.create_room(json!({"name": "garden"})).await;
    let id = room["id"].as_str().unwrap();
    let (status, body) = h
        .call("POST", &format!("/v1/rooms/{id}/transcription/start"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["transcription"], json!({"language": "en"}));
    let (_, got) = h.call("GET", &format!("/v1/rooms/{id}"), None).await;
    assert_eq!(got["data"]["transcription"], json!({"language": "en"}));

    let (status, body) = h
        .call("POST", &format!("/v1/rooms/{id}/transcription/stop"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["transcription"], Value::Null);
    assert_eq!(
        rooms.calls(),
        [
            format!("start_transcription {id} en"),
            "stop_transcription garden".to_owned()
        ]
    );

    let (status, body) = h
        .call(
            "POST",
            &format!("/v1/rooms/{id}/transcription/start"),
            Some(json!({"language": "de"})),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_request");
    let (status, body) = h
        .call("POST", "/v1/rooms/room_missing/transcription/start", None)
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn a_transcribed_rooms_composite_has_live_captions() {
    let (rooms, h) = with_rooms().await;
    let room = h
        .create_room(json!({"name": "standup", "transcription": {"language": "en"}}))
        .await;
    rooms.run("standup", vec![alice()]);
    let (status, body) = h
        .call(
            "POST",
            &format!("/v1/rooms/{}/composite", room["id"].as_str().unwrap()),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let stream = LiveStreamId::parse(body["data"]["live_stream_id"].as_str().unwrap()).unwrap();
    let stream = h.db.get_live_stream(&stream).await.unwrap().unwrap();
    let captions = stream.captions.expect("captions");
    assert_eq!(
        (captions.language.as_str(), captions.name.as_str()),
        ("en", "English (live)")
    );
}

#[tokio::test]
async fn a_sessions_transcript_is_read_in_every_form_through_its_own_room_only() {
    let (_rooms, h) = with_rooms().await;
    let room = h.create_room(json!({"name": "garden"})).await;
    let other = h.create_room(json!({"name": "other"})).await;
    let room_id = RoomId::parse(room["id"].as_str().unwrap()).unwrap();
    let session =
        h.db.start_room_session(&room_id, "http://node")
            .await
            .unwrap();
    h.db.append_room_transcript_lines(
        &session.id,
        &room_id,
        &[
            line("ana", 1_000, "Let's start with the budget."),
            line("ben", 3_000, "The budget is ready."),
        ],
    )
    .await
    .unwrap();
    let path = |room: &str, file: &str| format!("/v1/rooms/{room}/sessions/{}/{file}", session.id);

    let (status, json) = h
        .call("GET", &path(&room_id, "transcript.json"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["data"]["session_id"], session.id.as_str());
    assert_eq!(json["data"]["ended_at"], Value::Null);
    assert_eq!(
        json["data"]["lines"][0],
        json!({"start": 1.0, "end": 2.5, "text": "Let's start with the budget.",
            "participant": {"sid": "PA_ana", "identity": "ana", "name": "ANA"},
            "track_sid": "TR_ana"})
    );
    assert_eq!(json["data"]["lines"][1]["participant"]["identity"], "ben");

    let text = raw(&h, &path(&room_id, "transcript.vtt")).await;
    assert_eq!(
        text,
        "WEBVTT\n\n00:00:01.000 --> 00:00:02.500\nANA: Let's start with the budget.\n\n\
         00:00:03.000 --> 00:00:04.500\nBEN: The budget is ready.\n\n"
    );
    let text = raw(&h, &path(&room_id, "transcript.txt")).await;
    assert_eq!(
        text,
        "ANA: Let's start with the budget.\nBEN: The budget is ready.\n"
    );
    assert!(raw(&h, &path(&room_id, "transcript.srt"))
        .await
        .starts_with("1\n00:00:01,000 --> 00:00:02,500\nANA: "));

    let other_id = other["id"].as_str().unwrap();
    for uri in [
        path(other_id, "transcript.json"),
        path(&room_id, "transcript.doc"),
        format!("/v1/rooms/{room_id}/sessions/rsess_missing/transcript.json"),
    ] {
        let (status, body) = h.call("GET", &uri, None).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    }
}

/// A text body read with the admin key.
async fn raw(h: &Harness, uri: &str) -> String {
    use axum::body::{to_bytes, Body};
    use axum::http::{header, Request};
    use tower::ServiceExt;
    let request = Request::builder()
        .uri(uri)
        .header(header::AUTHORIZATION, h.auth())
        .body(Body::empty())
        .unwrap();
    let response = h.app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{uri}");
    let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn transcription_routes_need_the_rooms_permissions() {
    let (rooms, h) = with_rooms().await;
    let room = h.create_room(json!({"name": "garden"})).await;
    let id = room["id"].as_str().unwrap();
    let (reader, secret) =
        h.db.create_api_key("reader", &[Permission::RoomsRead])
            .await
            .unwrap();
    let reader = basic(&reader.id, &secret);
    let (assets, secret) =
        h.db.create_api_key("assets", &[Permission::AssetsRead])
            .await
            .unwrap();
    let assets = basic(&assets.id, &secret);
    for action in ["start", "stop"] {
        let uri = format!("/v1/rooms/{id}/transcription/{action}");
        let (status, body) = h.call_as(&reader, "POST", &uri, None).await;
        assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    }
    let uri = format!("/v1/rooms/{id}/sessions/rsess_missing/transcript.json");
    let (status, body) = h.call_as(&assets, "GET", &uri, None).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, body) = h.call_as(&reader, "GET", &uri, None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    assert!(rooms.calls().is_empty());
}

#[tokio::test]
async fn room_search_finds_spoken_words_in_session_transcripts() {
    let (_rooms, h) = with_rooms().await;
    let room = h.create_room(json!({"name": "garden"})).await;
    let room_id = RoomId::parse(room["id"].as_str().unwrap()).unwrap();
    let session =
        h.db.start_room_session(&room_id, "http://node")
            .await
            .unwrap();
    h.db.append_room_transcript_lines(
        &session.id,
        &room_id,
        &[
            line("ana", 1_000, "Let's start with the budget."),
            line("ben", 3_000, "Tomatoes need water."),
        ],
    )
    .await
    .unwrap();
    let (status, body) = h.call("GET", "/v1/rooms/search?q=budgets", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["data"],
        json!([{
            "room_id": room_id.as_str(),
            "session_id": session.id.as_str(),
            "start": 1.0,
            "end": 2.5,
            "text": "Let's start with the budget.",
            "participant": {"identity": "ana", "name": "ANA"},
            "transcript_url": format!(
                "http://localhost:8080/v1/rooms/{room_id}/sessions/{}/transcript.json",
                session.id
            ),
        }])
    );
    let (status, body) = h.call("GET", "/v1/rooms/search?q=%20", None).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_request");
    let (status, body) = h
        .call("GET", "/v1/rooms/search?q=budget&limit=0", None)
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_request");
}
