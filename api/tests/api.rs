//! Black-box tests of the router: a throwaway database (SQLite, or Postgres when
//! SLUICE_TEST_POSTGRES_URL is set) and a temp LocalStore behind it, requests sent with
//! `tower::ServiceExt::oneshot`.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::{to_bytes, Body};
use axum::http::{header, Request, Response, StatusCode};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use sluice_storage::{LiveStreamId, ObjectKey, ObjectStore, SessionOrigin};
use tower::ServiceExt;

use common::{basic, default_ladder, harness, Harness};

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn jwt(key_id: &str, secret: &str, exp: u64) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"apikey": key_id, "exp": exp}),
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

impl Harness {
    async fn send(&self, request: Request<Body>) -> Response<Body> {
        self.app.clone().oneshot(request).await.unwrap()
    }

    async fn create_stream(&self, body: Value) -> Response<Body> {
        self.send(
            Request::post("/v1/live-streams")
                .header(header::AUTHORIZATION, self.auth())
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
    }

    async fn get_with(&self, uri: &str, authorization: Option<&str>) -> Response<Body> {
        let mut request = Request::get(uri);
        if let Some(value) = authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        self.send(request.body(Body::empty()).unwrap()).await
    }
}

async fn body_bytes(response: Response<Body>) -> Bytes {
    to_bytes(response.into_body(), usize::MAX).await.unwrap()
}

async fn json_body(response: Response<Body>) -> Value {
    serde_json::from_slice(&body_bytes(response).await).unwrap()
}

fn header_str(response: &Response<Body>, name: header::HeaderName) -> &str {
    response.headers().get(name).unwrap().to_str().unwrap()
}

async fn assert_error(response: Response<Body>, status: StatusCode, code: &str) {
    assert_eq!(response.status(), status);
    assert!(header_str(&response, header::CONTENT_TYPE).starts_with("application/json"));
    let body = json_body(response).await;
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].is_string());
}

async fn assert_unauthorized(response: Response<Body>) {
    assert_eq!(
        header_str(&response, header::WWW_AUTHENTICATE),
        "Basic realm=\"sluice\""
    );
    assert_error(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

#[tokio::test]
async fn healthz_answers_ok() {
    let h = harness().await;
    assert_eq!(h.get_with("/healthz", None).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn readyz_is_ready_while_database_and_object_store_work() {
    let h = harness().await;
    let response = h.get_with("/readyz", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(json_body(response).await, json!({"status": "ready"}));
    assert_eq!(
        h.store
            .get(&ObjectKey::parse(".sluice/readiness-probe").unwrap())
            .await
            .unwrap(),
        Bytes::from_static(b"ready")
    );
}

#[tokio::test]
async fn operations_routes_answer_other_methods_with_json_errors() {
    let h = harness().await;
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        let post = h
            .send(Request::post(path).body(Body::from("{}")).unwrap())
            .await;
        assert_error(post, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    }
}

#[tokio::test]
async fn readyz_names_an_object_store_that_cannot_be_written() {
    let h = harness().await;
    // A file where the store's directory should be stops even root from writing objects.
    let objects = h.dir.path().join("objects");
    std::fs::remove_dir_all(&objects).ok();
    std::fs::write(&objects, "not a directory").unwrap();
    let response = h.get_with("/readyz", None).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = json_body(response).await;
    assert_eq!(body["error"]["code"], "not_ready");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("object store"), "{message}");
    assert!(!message.contains("database"), "{message}");
}

#[tokio::test]
async fn metrics_time_requests_by_route_template() {
    let h = harness().await;
    for id in ["ls_one", "ls_two"] {
        let response = h
            .get_with(&format!("/v1/live-streams/{id}"), Some(&h.auth()))
            .await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
    let response = h.get_with("/metrics", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(header_str(&response, header::CONTENT_TYPE).starts_with("application/openmetrics-text"));
    let text = String::from_utf8(body_bytes(response).await.to_vec()).unwrap();
    assert!(
        text.contains(
            r#"sluice_http_request_duration_seconds_count{method="GET",route="/v1/live-streams/{id}",status="4xx"} 2"#
        ),
        "{text}"
    );
    assert!(
        !text.contains("ls_one"),
        "raw paths never become labels:\n{text}"
    );
    for series in [
        "sluice_live_streams_active 0",
        "sluice_sessions_started_total 0",
        "sluice_ingest_bytes_total 0",
        "sluice_frames_dropped_total 0",
        "sluice_webhook_deliveries_total 0",
        "sluice_webhook_delivery_failures_total 0",
        "sluice_live_spool_bytes 0",
        "sluice_live_upload_failures_total 0",
        "sluice_live_segments_refused_total 0",
        "sluice_live_segment_upload_seconds_count 0",
    ] {
        assert!(
            text.lines().any(|line| line == series),
            "{series} in:\n{text}"
        );
    }
    assert!(text.ends_with("# EOF\n"));
}

#[tokio::test]
async fn creating_a_live_stream_returns_its_ingest_and_playback_details() {
    let h = harness().await;
    let response = h.create_stream(json!({"name": "Studio A"})).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let data = json_body(response).await["data"].clone();
    let id = data["id"].as_str().unwrap();
    assert!(id.starts_with("ls_"));
    assert_eq!(data["name"], "Studio A");
    assert_eq!(data["status"], "idle");
    assert_eq!(data["rtmp_url"], "rtmp://localhost:1935/live");
    assert_eq!(
        data["whip_url"],
        format!("http://localhost:8080/whip/{id}"),
        "the public URL's trailing slash is not doubled"
    );
    assert!(data["stream_key"].as_str().unwrap().len() >= 32);
    let playback_ids = data["playback_ids"].as_array().unwrap();
    assert_eq!(playback_ids.len(), 1, "{data}");
    assert_eq!(playback_ids[0]["policy"], "public");
    assert_eq!(playback_ids[0]["id"].as_str().unwrap().len(), 24);
    assert_eq!(data["ladder"], default_ladder());
    assert!(data["created_at"].is_string());
    assert_eq!(data["current_session"], Value::Null);

    let fetched = h
        .get_with(&format!("/v1/live-streams/{id}"), Some(&h.auth()))
        .await;
    assert_eq!(fetched.status(), StatusCode::OK);
    assert_eq!(json_body(fetched).await["data"], data);
}

#[tokio::test]
async fn a_requested_ladder_is_checked_and_stored_normalised() {
    let h = harness().await;
    let response = h
        .create_stream(json!({"name": "s", "ladder": ["source", "720p"]}))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        json_body(response).await["data"]["ladder"],
        json!(["source", {"name": "720p", "height": 720, "bitrate_kbps": 3000, "max_fps": 60}])
    );

    let rejected = h
        .create_stream(json!({"name": "s", "ladder": "tiny"}))
        .await;
    assert_eq!(rejected.status(), StatusCode::BAD_REQUEST);
    let body = json_body(rejected).await;
    assert_eq!(body["error"]["code"], "invalid_request");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("ladder: invalid type"));
    let too_tall = h
        .create_stream(
            json!({"name": "s", "ladder": [{"name": "8k", "height": 4320, "bitrate_kbps": 9000}]}),
        )
        .await;
    assert_eq!(too_tall.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_live_session_shows_up_as_current_session() {
    let h = harness().await;
    let id = json_body(h.create_stream(json!({"name": "s"})).await).await["data"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let id = LiveStreamId::parse(&id).unwrap();
    let session =
        h.db.start_session(
            &id,
            &SessionOrigin {
                client_addr: "192.0.2.1:4000".to_owned(),
                protocol: "rtmp",
                encoder: Some("obs".to_owned()),
                app: Some("live".to_owned()),
            },
        )
        .await
        .unwrap();
    let input = json!({"video": {"codec": "avc1.64001f"}});
    h.db.update_session_input(&session.id, &input, 1000, 2)
        .await
        .unwrap();
    h.db.set_live_stream_status(
        &id,
        sluice_storage::LiveStreamStatus::Active,
        Some(&session.id),
    )
    .await
    .unwrap();
    let data = json_body(
        h.get_with(&format!("/v1/live-streams/{id}"), Some(&h.auth()))
            .await,
    )
    .await["data"]
        .clone();
    assert_eq!(data["status"], "active");
    assert_eq!(data["current_session"]["id"], session.id.as_str());
    assert_eq!(data["current_session"]["input"], input);
    assert_eq!(data["current_session"]["bytes_received"], 1000);
}

#[tokio::test]
async fn listing_pages_with_a_cursor() {
    let h = harness().await;
    for i in 0..3 {
        h.create_stream(json!({"name": format!("s{i}")})).await;
    }
    let first = json_body(
        h.get_with("/v1/live-streams?limit=2", Some(&h.auth()))
            .await,
    )
    .await;
    assert_eq!(first["data"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = json_body(
        h.get_with(
            &format!("/v1/live-streams?limit=2&cursor={cursor}"),
            Some(&h.auth()),
        )
        .await,
    )
    .await;
    assert_eq!(second["data"].as_array().unwrap().len(), 1);
    assert_eq!(second["next_cursor"], Value::Null);

    assert_error(
        h.get_with("/v1/live-streams?limit=0", Some(&h.auth()))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    assert_error(
        h.get_with("/v1/live-streams?limit=abc", Some(&h.auth()))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    assert_error(
        h.get_with("/v1/live-streams?cursor=ls_gone", Some(&h.auth()))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
}

#[tokio::test]
async fn a_valid_jwt_authenticates() {
    let h = harness().await;
    let token = jwt(&h.key_id, &h.secret, unix_now() + 300);
    let response = h
        .get_with("/v1/live-streams", Some(&format!("Bearer {token}")))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(json_body(response).await["data"], json!([]));
}

#[tokio::test]
async fn missing_or_wrong_credentials_are_unauthorized() {
    let h = harness().await;
    assert_unauthorized(h.get_with("/v1/live-streams", None).await).await;
    assert_unauthorized(
        h.get_with("/v1/live-streams", Some(&basic(&h.key_id, "wrong")))
            .await,
    )
    .await;
    assert_unauthorized(
        h.get_with("/v1/live-streams", Some(&basic("ak_unknown", &h.secret)))
            .await,
    )
    .await;
    assert_unauthorized(h.get_with("/v1/live-streams", Some("Basic !!!")).await).await;
    assert_unauthorized(h.get_with("/v1/live-streams", Some("Digest abc")).await).await;

    h.db.revoke_api_key(&h.key_id).await.unwrap();
    assert_unauthorized(h.get_with("/v1/live-streams", Some(&h.auth())).await).await;
}

#[tokio::test]
async fn bad_jwts_are_unauthorized() {
    let h = harness().await;
    let bearer = |token: String| format!("Bearer {token}");

    let expired = jwt(&h.key_id, &h.secret, unix_now() - 3600);
    let wrong_secret = jwt(&h.key_id, "not-the-secret", unix_now() + 300);
    let unknown_key = jwt("ak_unknown", &h.secret, unix_now() + 300);
    let no_exp = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"apikey": h.key_id}),
        &EncodingKey::from_secret(h.secret.as_bytes()),
    )
    .unwrap();
    let alg_none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(json!({"apikey": h.key_id, "exp": unix_now() + 300}).to_string())
    );
    // An HS384 token signed with the right secret: still refused, the algorithm is pinned.
    let hs384 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS384),
        &json!({"apikey": h.key_id, "exp": unix_now() + 300}),
        &EncodingKey::from_secret(h.secret.as_bytes()),
    )
    .unwrap();
    let rs256_header = format!(
        "{}.{}.c2ln",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(json!({"apikey": h.key_id, "exp": unix_now() + 300}).to_string())
    );

    for token in [
        expired,
        wrong_secret,
        unknown_key,
        no_exp,
        alg_none,
        hs384,
        rs256_header,
        "garbage".to_owned(),
    ] {
        assert_unauthorized(h.get_with("/v1/live-streams", Some(&bearer(token))).await).await;
    }
}

#[tokio::test]
async fn malformed_or_invalid_bodies_are_bad_requests() {
    let h = harness().await;
    let malformed = h
        .send(
            Request::post("/v1/live-streams")
                .header(header::AUTHORIZATION, h.auth())
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{\"name\": "))
                .unwrap(),
        )
        .await;
    assert_error(malformed, StatusCode::BAD_REQUEST, "invalid_request").await;

    for body in [
        json!({}),
        json!({"name": 5}),
        json!({"name": ""}),
        json!({"name": "x".repeat(201)}),
        json!({"name": "ok", "surprise": true}),
    ] {
        assert_error(
            h.create_stream(body).await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        )
        .await;
    }
    let unknown_field = json_body(
        h.create_stream(json!({"name": "ok", "surprise": true}))
            .await,
    )
    .await;
    let message = unknown_field["error"]["message"].as_str().unwrap();
    assert!(message.contains("surprise"), "{message}");
    let ok = h.create_stream(json!({"name": "é".repeat(200)})).await;
    assert_eq!(ok.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn a_body_without_json_content_type_is_unsupported() {
    let h = harness().await;
    let response = h
        .send(
            Request::post("/v1/live-streams")
                .header(header::AUTHORIZATION, h.auth())
                .header(header::CONTENT_TYPE, "text/plain")
                .body(Body::from(r#"{"name":"x"}"#))
                .unwrap(),
        )
        .await;
    assert_error(
        response,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
}

#[tokio::test]
async fn a_body_over_one_mebibyte_is_too_large() {
    let h = harness().await;
    let huge = format!(
        r#"{{"name": "{}"}}"#,
        "a".repeat(sluice_api::MAX_BODY_BYTES)
    );
    let response = h
        .send(
            Request::post("/v1/live-streams")
                .header(header::AUTHORIZATION, h.auth())
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(huge))
                .unwrap(),
        )
        .await;
    assert_error(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
}

#[tokio::test]
async fn an_id_of_another_kind_in_a_path_is_answered_like_an_unknown_one() {
    let h = harness().await;
    let stream = json_body(h.create_stream(json!({"name": "s"})).await).await["data"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let long = format!("ls_{}", "a".repeat(100));
    for (path, message) in [
        // A real live stream's id where an asset or a session is asked for.
        (format!("/v1/assets/{stream}"), "asset not found"),
        (format!("/v1/sessions/{stream}"), "session not found"),
        (
            "/v1/live-streams/asset_abc".to_owned(),
            "live stream not found",
        ),
        (format!("/v1/live-streams/{long}"), "live stream not found"),
        ("/v1/uploads/ls_abc".to_owned(), "upload not found"),
    ] {
        let response = h.get_with(&path, Some(&h.auth())).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        let body = json_body(response).await;
        assert_eq!(body["error"]["message"], message, "{path}");
    }
    let disable = h
        .send(
            Request::post("/v1/live-streams/ses_abc/disable")
                .header(header::AUTHORIZATION, h.auth())
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_error(disable, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn unknown_ids_paths_and_methods_answer_json_errors() {
    let h = harness().await;
    let unknown = h
        .get_with("/v1/live-streams/ls_nope", Some(&h.auth()))
        .await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let body = json_body(unknown).await;
    assert_eq!(body["error"]["code"], "not_found");
    assert_eq!(body["error"]["message"], "live stream not found");
    // A path segment that is not UTF-8 once decoded is a JSON 400 too.
    for path in ["/v1/live-streams/%FF", "/v1/sessions/%C3%28"] {
        assert_error(
            h.get_with(path, Some(&h.auth())).await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        )
        .await;
    }
    assert_error(
        h.get_with("/nowhere", None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let delete = h
        .send(Request::delete("/healthz").body(Body::empty()).unwrap())
        .await;
    // RFC 9110 §15.5.6: a 405 lists the methods the resource does support.
    assert_eq!(header_str(&delete, header::ALLOW), "GET,HEAD");
    assert_error(delete, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    let put = h
        .send(
            Request::put("/v1/live-streams")
                .header(header::AUTHORIZATION, h.auth())
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(header_str(&put, header::ALLOW), "GET,HEAD,POST");
    assert_error(put, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
}

/// Creates a stream and stores a small HLS tree for it; returns its playback id.
async fn stream_with_media(h: &Harness) -> String {
    let data = json_body(h.create_stream(json!({"name": "s"})).await).await["data"].clone();
    let id = data["id"].as_str().unwrap();
    let master = "#EXTM3U\n#EXT-X-VERSION:7\n".repeat(10);
    for (path, body) in [
        ("master.m3u8", Bytes::from(master)),
        (
            "720p/index.m3u8",
            Bytes::from_static(b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n"),
        ),
        ("720p/init.mp4", Bytes::from_static(b"ftypmoov")),
        ("720p/seg1.m4s", Bytes::from(vec![7u8; 4096])),
        ("audio/seg1.m4a", Bytes::from_static(b"moofmdat")),
    ] {
        let key = ObjectKey::parse(&format!("live/{id}/{path}")).unwrap();
        h.store.put(&key, body).await.unwrap();
    }
    data["playback_ids"][0]["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn hls_objects_are_served_with_their_types_and_caching() {
    let h = harness().await;
    let pid = stream_with_media(&h).await;
    for (path, content_type, cache) in [
        (
            "master.m3u8",
            "application/vnd.apple.mpegurl",
            "private, no-cache",
        ),
        (
            "720p/index.m3u8",
            "application/vnd.apple.mpegurl",
            "no-cache, max-age=1",
        ),
        (
            "720p/init.mp4",
            "video/mp4",
            "public, max-age=31536000, immutable",
        ),
        (
            "720p/seg1.m4s",
            "video/iso.segment",
            "public, max-age=31536000, immutable",
        ),
        (
            "audio/seg1.m4a",
            "audio/mp4",
            "public, max-age=31536000, immutable",
        ),
    ] {
        let response = h
            .send(
                Request::get(format!("/hls/{pid}/{path}"))
                    .header(header::ORIGIN, "https://player.example")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(header_str(&response, header::CONTENT_TYPE), content_type);
        assert_eq!(header_str(&response, header::CACHE_CONTROL), cache);
        assert_eq!(
            header_str(&response, header::ACCESS_CONTROL_ALLOW_ORIGIN),
            "*"
        );
    }
    let segment = body_bytes(h.get_with(&format!("/hls/{pid}/720p/seg1.m4s"), None).await).await;
    assert_eq!(segment, Bytes::from(vec![7u8; 4096]));
}

#[tokio::test]
async fn playlists_are_gzipped_and_segments_are_not() {
    let h = harness().await;
    let pid = stream_with_media(&h).await;
    let get_gzip = |path: String| {
        Request::get(path)
            .header(header::ACCEPT_ENCODING, "gzip")
            .body(Body::empty())
            .unwrap()
    };
    let playlist = h.send(get_gzip(format!("/hls/{pid}/master.m3u8"))).await;
    assert_eq!(header_str(&playlist, header::CONTENT_ENCODING), "gzip");
    let segment = h.send(get_gzip(format!("/hls/{pid}/720p/seg1.m4s"))).await;
    assert!(segment.headers().get(header::CONTENT_ENCODING).is_none());
}

#[tokio::test]
async fn hls_preflight_is_answered_by_cors() {
    let h = harness().await;
    let pid = stream_with_media(&h).await;
    let response = h
        .send(
            Request::options(format!("/hls/{pid}/master.m3u8"))
                .header(header::ORIGIN, "https://player.example")
                .header(header::ACCESS_CONTROL_REQUEST_METHOD, "GET")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        header_str(&response, header::ACCESS_CONTROL_ALLOW_ORIGIN),
        "*"
    );
    assert!(header_str(&response, header::ACCESS_CONTROL_ALLOW_METHODS).contains("GET"));
}

#[tokio::test]
async fn unknown_playback_ids_and_missing_objects_are_not_found() {
    let h = harness().await;
    let pid = stream_with_media(&h).await;
    for uri in [
        "/hls/nosuchplaybackid/master.m3u8".to_owned(),
        format!("/hls/{pid}/1080p/index.m3u8"),
        format!("/hls/{pid}/720p/seg99.m4s"),
        // A directory, and a file type the HLS route does not serve.
        format!("/hls/{pid}/720p"),
        format!("/hls/{pid}/720p/notes.txt"),
    ] {
        let response = h.get_with(&uri, None).await;
        assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
    }
}

#[tokio::test]
async fn path_traversal_never_leaves_the_store() {
    let h = harness().await;
    let pid = stream_with_media(&h).await;
    for uri in [
        format!("/hls/{pid}/../../../secret.txt"),
        format!("/hls/{pid}/%2e%2e/%2e%2e/%2e%2e/secret.m3u8"),
        format!("/hls/{pid}/..%2f..%2f..%2fsecret.m3u8"),
        format!("/hls/{pid}/720p/../../../../secret.m3u8"),
        format!("/hls/{pid}/a/b/c/index.m3u8"),
        format!("/hls/{pid}/%5c..%5csecret.m3u8"),
        format!("/hls/{pid}//etc/passwd.m3u8"),
        "/hls/../objects/master.m3u8".to_owned(),
        "/hls/%2e%2e/master.m3u8".to_owned(),
    ] {
        let response = h.get_with(&uri, None).await;
        let status = response.status();
        assert!(
            status == StatusCode::NOT_FOUND || status == StatusCode::BAD_REQUEST,
            "{uri} answered {status}"
        );
        assert!(!body_bytes(response)
            .await
            .windows(10)
            .any(|w| w == b"top secret"));
    }
}

#[tokio::test]
async fn openapi_document_lists_every_route() {
    let h = harness().await;
    let response = h
        .app
        .clone()
        .oneshot(Request::get("/openapi.json").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let spec = json_body(response).await;
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = spec["paths"].as_object().unwrap();
    let mut routes: Vec<String> = paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| format!("{method} {path}"))
        })
        .collect();
    routes.sort();
    assert_eq!(
        routes,
        [
            "delete /uploads/{id}/{token}",
            "delete /v1/api-keys/{id}",
            "delete /v1/assets/{id}",
            "delete /v1/live-streams/{id}",
            "delete /v1/live-streams/{id}/playback-ids/{playback_id}",
            "delete /v1/live-streams/{id}/simulcast-targets/{target_id}",
            "delete /v1/rooms/{id}",
            "delete /v1/rooms/{id}/composite",
            "delete /v1/rooms/{id}/participants/{identity}",
            "delete /v1/signing-keys/{id}",
            "delete /v1/webhooks/{id}",
            "delete /whip/{live_stream_id}/sessions/{session_id}",
            "get /",
            "get /animated/{file}",
            "get /console/{path}",
            "get /healthz",
            "get /hls/{playback_id}/{path}",
            "get /internal/low-latency/{live_stream_id}/{rendition}/{name}",
            "get /live/{live_stream_id}/publish",
            "get /metrics",
            "get /openapi.json",
            "get /play/{playback_id}",
            "get /readyz",
            "get /rooms/{room_id}/join",
            "get /rtc",
            "get /rtc/validate",
            "get /storyboards/{file}",
            "get /thumbnails/{file}",
            "get /v1/api-keys",
            "get /v1/api-keys/{id}",
            "get /v1/assets",
            "get /v1/assets/{id}",
            "get /v1/assets/{id}/playback-ids",
            "get /v1/assets/{id}/{file}",
            "get /v1/events",
            "get /v1/events/stream",
            "get /v1/live-streams",
            "get /v1/live-streams/{id}",
            "get /v1/live-streams/{id}/health",
            "get /v1/live-streams/{id}/playback-ids",
            "get /v1/live-streams/{id}/playback-ids/{playback_id}",
            "get /v1/live-streams/{id}/sessions",
            "get /v1/live-streams/{id}/simulcast-targets",
            "get /v1/live-streams/{id}/simulcast-targets/{target_id}",
            "get /v1/rooms",
            "get /v1/rooms/search",
            "get /v1/rooms/{id}",
            "get /v1/rooms/{id}/composite",
            "get /v1/rooms/{id}/composites",
            "get /v1/rooms/{id}/participants",
            "get /v1/rooms/{id}/sessions",
            "get /v1/rooms/{id}/sessions/{session_id}/{file}",
            "get /v1/search",
            "get /v1/sessions/{id}",
            "get /v1/signing-keys",
            "get /v1/signing-keys/{id}",
            "get /v1/uploads",
            "get /v1/uploads/{id}",
            "get /v1/webhooks",
            "get /v1/webhooks/{id}",
            "get /v1/webhooks/{id}/deliveries",
            "get /v1/webhooks/{id}/deliveries/{delivery_id}",
            "head /uploads/{id}/{token}",
            "options /uploads/{id}/{token}",
            "patch /uploads/{id}/{token}",
            "patch /v1/live-streams/{id}",
            "patch /v1/rooms/{id}/composite",
            "patch /v1/webhooks/{id}",
            "post /uploads/{id}/{token}",
            "post /v1/api-keys",
            "post /v1/assets",
            "post /v1/assets/{id}/playback-ids",
            "post /v1/live-streams",
            "post /v1/live-streams/{id}/complete",
            "post /v1/live-streams/{id}/disable",
            "post /v1/live-streams/{id}/enable",
            "post /v1/live-streams/{id}/playback-ids",
            "post /v1/live-streams/{id}/reset-stream-key",
            "post /v1/live-streams/{id}/simulcast-targets",
            "post /v1/rooms",
            "post /v1/rooms/{id}/composite",
            "post /v1/rooms/{id}/data",
            "post /v1/rooms/{id}/hls/start",
            "post /v1/rooms/{id}/hls/stop",
            "post /v1/rooms/{id}/livestreams/start",
            "post /v1/rooms/{id}/livestreams/stop",
            "post /v1/rooms/{id}/participants/{identity}/mute",
            "post /v1/rooms/{id}/recordings/start",
            "post /v1/rooms/{id}/recordings/stop",
            "post /v1/rooms/{id}/tokens",
            "post /v1/rooms/{id}/transcription/start",
            "post /v1/rooms/{id}/transcription/stop",
            "post /v1/signing-keys",
            "post /v1/uploads",
            "post /v1/webhooks",
            "post /v1/webhooks/{id}/deliveries/{delivery_id}/replay",
            "post /v1/webhooks/{id}/replay",
            "post /v1/webhooks/{id}/rotate-secret",
            "post /whip/{live_stream_id}",
            "put /uploads/{id}/{token}",
            "put /v1/uploads/{id}/cancel",
        ]
    );
}
