//! Direct uploads through the router: `/v1/uploads` and the upload URL (whole-file `PUT` and
//! tus 1.0.0), on a real database and object store, requests sent with
//! `tower::ServiceExt::oneshot`. Broken connections are bodies whose stream fails midway.

mod common;

use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::http::{header, Request, Response, StatusCode};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Value};
use sha1::{Digest, Sha1};
use sluice_storage::{ObjectKey, ObjectStore};
use tokio::sync::mpsc;
use tower::ServiceExt;

use common::{default_ladder, harness, Harness, MAX_UPLOAD_SIZE};

const TUS: (&str, &str) = ("tus-resumable", "1.0.0");
const OFFSET_STREAM: (&str, &str) = ("content-type", "application/offset+octet-stream");

impl Harness {
    async fn send(&self, request: Request<Body>) -> Response<Body> {
        self.app.clone().oneshot(request).await.unwrap()
    }

    /// An authenticated JSON API call; returns the status and the JSON body (`null` if none).
    async fn api(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, self.auth());
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let body = body.map_or(Body::empty(), |body| Body::from(body.to_string()));
        let response = self.send(request.body(body).unwrap()).await;
        let status = response.status();
        let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (status, json)
    }

    /// Creates an upload; returns its `data` and the path of its URL.
    async fn create_upload(&self, body: Value) -> (Value, String) {
        let (status, created) = self.api("POST", "/v1/uploads", Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let url = created["data"]["url"].as_str().unwrap();
        let path = url
            .strip_prefix("http://localhost:8080")
            .unwrap()
            .to_owned();
        (created["data"].clone(), path)
    }

    /// A request to the upload URL (no API key).
    async fn upload_request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Body,
    ) -> Response<Body> {
        let mut request = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request.body(body).unwrap()).await
    }

    async fn head(&self, path: &str) -> Response<Body> {
        self.upload_request("HEAD", path, &[TUS], Body::empty())
            .await
    }

    /// `(type, data)` of the events recorded about `object_id`, oldest first.
    async fn events_about(&self, object_id: &str) -> Vec<(String, Value)> {
        let page = self.db.list_events(100, None).await.unwrap();
        page.items
            .into_iter()
            .filter(|event| event.object.id == object_id)
            .map(|event| (event.event_type, event.data))
            .collect()
    }

    async fn stored_source(&self, upload_id: &str) -> Bytes {
        self.store
            .get(&ObjectKey::new(["uploads", upload_id, "source"]).unwrap())
            .await
            .unwrap()
    }
}

fn header_of<'a>(response: &'a Response<Body>, name: &str) -> Option<&'a str> {
    response
        .headers()
        .get(name)
        .map(|value| value.to_str().unwrap())
}

async fn error_code(response: Response<Body>) -> String {
    let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert!(body["error"]["message"].is_string(), "{body}");
    body["error"]["code"].as_str().unwrap().to_owned()
}

/// Deterministic bytes standing for a video file (the API does not look inside).
fn file_bytes(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 8)) as u8)
        .collect()
}

/// A body that sends `first` and then fails, as a cut connection does.
fn broken_body(first: Vec<u8>) -> Body {
    Body::from_stream(futures_util::stream::iter([
        Ok(Bytes::from(first)),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection reset",
        )),
    ]))
}

fn sha1_header(bytes: &[u8]) -> String {
    format!("sha1 {}", BASE64.encode(Sha1::digest(bytes)))
}

#[tokio::test]
async fn an_upload_is_created_with_checked_settings_and_defaults() {
    let h = harness().await;
    let (upload, path) = h.create_upload(json!({})).await;
    assert_eq!(upload["status"], "waiting");
    assert_eq!(upload["max_size"], MAX_UPLOAD_SIZE);
    assert!(upload["asset_id"].is_null() && upload["error"].is_null());
    let id = upload["id"].as_str().unwrap();
    assert!(id.starts_with("upload_"), "{id}");
    assert!(path.starts_with(&format!("/uploads/{id}/")), "{path}");
    assert_eq!(
        upload["new_asset_settings"],
        json!({"playback_policy": ["public"], "ladder": default_ladder(), "codecs": ["h264"],
               "passthrough": null})
    );
    let expires_at: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(upload["expires_at"].clone()).unwrap();
    let in_an_hour = chrono::Utc::now() + chrono::Duration::hours(1);
    assert!(
        (expires_at - in_an_hour).num_seconds().abs() < 60,
        "{expires_at}"
    );

    let (upload, _) = h
        .create_upload(json!({
            "new_asset_settings": {"playback_policy": ["signed", "public"],
                "ladder": [{"name": "360p", "height": 360, "bitrate_kbps": 800}], "codecs": ["av1", "h264"],
                "passthrough": "order-7"},
            "max_size": 1000, "timeout": 60}))
        .await;
    assert_eq!(upload["max_size"], 1000);
    assert_eq!(
        upload["new_asset_settings"],
        json!({"playback_policy": ["signed", "public"],
               "ladder": [{"name": "360p", "height": 360, "bitrate_kbps": 800, "max_fps": 60}],
               "codecs": ["h264", "av1"], "passthrough": "order-7"})
    );

    for (body, field) in [
        (json!({"max_size": 0}), "max_size"),
        (json!({"max_size": MAX_UPLOAD_SIZE + 1}), "max_size"),
        (json!({"timeout": 0}), "timeout"),
        (json!({"timeout": 604_801}), "timeout"),
        (json!({"new_asset_settings": {"codecs": ["av1"]}}), "codecs"),
        (
            json!({"new_asset_settings": {"codecs": ["h264", "h264"]}}),
            "codecs",
        ),
        (json!({"new_asset_settings": {"codecs": ["vp9"]}}), "vp9"),
        (
            json!({"new_asset_settings": {"playback_policy": ["private"]}}),
            "private",
        ),
        (json!({"new_asset_settings": {"ladder": "best"}}), "ladder"),
        (
            json!({"new_asset_settings": {"passthrough": "x".repeat(256)}}),
            "passthrough",
        ),
        (json!({"new_asset_settings": {"colour": "blue"}}), "colour"),
        (json!({"max_size": 10, "extra": 1}), "extra"),
    ] {
        let (status, error) = h.api("POST", "/v1/uploads", Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {error}");
        assert_eq!(error["error"]["code"], "invalid_request");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{body}: {message}");
    }
}

#[tokio::test]
async fn uploads_are_listed_without_urls_got_with_them_and_cancelled_once() {
    let h = harness().await;
    let (first, first_path) = h.create_upload(json!({})).await;
    let (second, _) = h.create_upload(json!({})).await;
    let first_id = first["id"].as_str().unwrap();

    let (status, listed) = h.api("GET", "/v1/uploads?limit=1", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["data"][0]["id"], second["id"], "newest first");
    assert!(listed["data"][0].get("url").is_none(), "{listed}");
    let cursor = listed["next_cursor"].as_str().unwrap();
    let (_, rest) = h
        .api("GET", &format!("/v1/uploads?limit=1&cursor={cursor}"), None)
        .await;
    assert_eq!(rest["data"][0]["id"], first["id"]);

    let (status, got) = h.api("GET", &format!("/v1/uploads/{first_id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["data"]["url"], first["url"]);
    let (status, _) = h.api("GET", "/v1/uploads/upload_nobody", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, cancelled) = h
        .api("PUT", &format!("/v1/uploads/{first_id}/cancel"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["data"]["status"], "cancelled");
    let (status, again) = h
        .api("PUT", &format!("/v1/uploads/{first_id}/cancel"), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    let response = h.head(&first_path).await;
    assert_eq!(response.status(), StatusCode::GONE);
    let response = h
        .upload_request("PUT", &first_path, &[], Body::from("abc"))
        .await;
    assert_eq!(response.status(), StatusCode::GONE);

    let events = h.events_about(first_id).await;
    let types: Vec<&str> = events.iter().map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(types, ["upload.created", "upload.cancelled"]);
    for (_, data) in &events {
        assert!(data.get("url").is_none(), "no token in events: {data}");
        assert_eq!(data["id"], first_id);
    }
}

#[tokio::test]
async fn a_whole_file_put_becomes_an_asset() {
    let h = harness().await;
    let (upload, path) = h.create_upload(json!({"max_size": 100_000})).await;
    let id = upload["id"].as_str().unwrap();
    let file = file_bytes(70_000);

    let wrong_token = format!("/uploads/{id}/not-the-token");
    let response = h
        .upload_request("PUT", &wrong_token, &[], Body::from(file.clone()))
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = h
        .upload_request(
            "PUT",
            &path,
            &[("content-length", "100001")],
            Body::from(vec![0; 10]),
        )
        .await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_code(response).await, "payload_too_large");
    let response = h
        .upload_request(
            "PUT",
            &path,
            &[],
            Body::from_stream(futures_util::stream::iter([Ok::<_, std::io::Error>(
                Bytes::from_static(b"abc"),
            )])),
        )
        .await;
    assert_eq!(response.status(), StatusCode::LENGTH_REQUIRED);

    let length = file.len().to_string();
    let response = h
        .upload_request(
            "PUT",
            &path,
            &[("content-length", &length)],
            Body::from(file.clone()),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value =
        serde_json::from_slice(&to_bytes(response.into_body(), usize::MAX).await.unwrap()).unwrap();
    assert_eq!(body["data"]["status"], "asset_created", "{body}");
    let asset_id = body["data"]["asset_id"].as_str().unwrap();
    assert_eq!(h.stored_source(id).await, file);
    assert!(
        !h.dir
            .path()
            .join("spool")
            .join(format!("{id}.part"))
            .exists(),
        "the spool file is moved to the object store"
    );

    let (status, asset) = h.api("GET", &format!("/v1/assets/{asset_id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(asset["data"]["status"], "preparing");
    assert_eq!(
        asset["data"]["input"],
        json!({"type": "upload", "upload_id": id})
    );
    assert_eq!(
        asset["data"]["new_asset_settings"],
        upload["new_asset_settings"]
    );
    assert_eq!(asset["data"]["playback_ids"][0]["policy"], "public");

    let response = h
        .upload_request(
            "PUT",
            &path,
            &[("content-length", &length)],
            Body::from(file.clone()),
        )
        .await;
    assert_eq!(
        response.status(),
        StatusCode::CONFLICT,
        "a complete upload takes no more"
    );

    let types: Vec<String> = h
        .events_about(id)
        .await
        .into_iter()
        .map(|(kind, _)| kind)
        .collect();
    assert_eq!(types, ["upload.created", "upload.asset_created"]);
    let asset_events = h.events_about(asset_id).await;
    assert_eq!(asset_events[0].0, "asset.created");
    assert_eq!(asset_events[0].1["id"], asset_id);
}

#[tokio::test]
async fn tus_announces_itself_and_checks_its_headers() {
    let h = harness().await;
    let (_, path) = h.create_upload(json!({"max_size": 5000})).await;

    let options = h.upload_request("OPTIONS", &path, &[], Body::empty()).await;
    assert_eq!(options.status(), StatusCode::NO_CONTENT);
    assert_eq!(header_of(&options, "tus-version"), Some("1.0.0"));
    assert_eq!(header_of(&options, "tus-max-size"), Some("5000"));
    let extensions = header_of(&options, "tus-extension").unwrap();
    for extension in ["creation", "checksum", "expiration", "termination"] {
        assert!(extensions.contains(extension), "{extensions}");
    }
    assert_eq!(
        header_of(&options, "tus-checksum-algorithm"),
        Some("sha1,sha256")
    );
    let preflight = h
        .upload_request(
            "OPTIONS",
            &path,
            &[
                ("origin", "https://app.example"),
                ("access-control-request-method", "PATCH"),
                (
                    "access-control-request-headers",
                    "tus-resumable,upload-offset",
                ),
            ],
            Body::empty(),
        )
        .await;
    assert_eq!(preflight.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        header_of(&preflight, "access-control-allow-origin"),
        Some("*")
    );
    assert!(header_of(&preflight, "access-control-allow-methods")
        .unwrap()
        .contains("PATCH"));
    assert_eq!(
        header_of(&preflight, "access-control-allow-headers"),
        Some("tus-resumable,upload-offset")
    );

    let no_version = h
        .upload_request("POST", &path, &[("upload-length", "100")], Body::empty())
        .await;
    assert_eq!(no_version.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(header_of(&no_version, "tus-version"), Some("1.0.0"));
    assert_eq!(error_code(no_version).await, "precondition_failed");

    for (headers, status) in [
        (vec![TUS], StatusCode::BAD_REQUEST),
        (vec![TUS, ("upload-length", "-3")], StatusCode::BAD_REQUEST),
        (vec![TUS, ("upload-length", "0")], StatusCode::BAD_REQUEST),
        (
            vec![TUS, ("upload-defer-length", "1")],
            StatusCode::BAD_REQUEST,
        ),
        (
            vec![TUS, ("upload-length", "10"), ("upload-metadata", "name !!")],
            StatusCode::BAD_REQUEST,
        ),
        (
            vec![TUS, ("upload-length", "5001")],
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ] {
        let response = h
            .upload_request("POST", &path, &headers, Body::empty())
            .await;
        assert_eq!(response.status(), status, "{headers:?}");
    }

    let created = h
        .upload_request(
            "POST",
            &path,
            &[
                TUS,
                ("upload-length", "100"),
                ("upload-metadata", "filename YS5tcDQ="),
            ],
            Body::empty(),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(
        header_of(&created, "location"),
        Some(format!("http://localhost:8080{path}").as_str())
    );
    assert_eq!(header_of(&created, "tus-resumable"), Some("1.0.0"));
    let expires = header_of(&created, "upload-expires").unwrap();
    assert!(expires.ends_with(" GMT"), "{expires}");
    let again = h
        .upload_request(
            "POST",
            &path,
            &[TUS, ("upload-length", "100")],
            Body::empty(),
        )
        .await;
    assert_eq!(
        again.status(),
        StatusCode::CREATED,
        "declaring the same length again"
    );
    let other = h
        .upload_request(
            "POST",
            &path,
            &[TUS, ("upload-length", "99")],
            Body::empty(),
        )
        .await;
    assert_eq!(other.status(), StatusCode::CONFLICT);

    let head = h.head(&path).await;
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(header_of(&head, "upload-offset"), Some("0"));
    assert_eq!(header_of(&head, "upload-length"), Some("100"));
    assert_eq!(
        header_of(&head, "upload-metadata"),
        Some("filename YS5tcDQ=")
    );
    assert_eq!(header_of(&head, "cache-control"), Some("no-store"));
    assert!(header_of(&head, "upload-expires").is_some());
    let head = h.upload_request("HEAD", &path, &[], Body::empty()).await;
    assert_eq!(head.status(), StatusCode::PRECONDITION_FAILED);

    for (headers, status) in [
        (
            vec![OFFSET_STREAM, ("upload-offset", "0")],
            StatusCode::PRECONDITION_FAILED,
        ),
        (
            vec![
                TUS,
                ("content-type", "application/octet-stream"),
                ("upload-offset", "0"),
            ],
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (vec![TUS, OFFSET_STREAM], StatusCode::BAD_REQUEST),
        (
            vec![TUS, OFFSET_STREAM, ("upload-offset", "5")],
            StatusCode::CONFLICT,
        ),
        (
            vec![
                TUS,
                OFFSET_STREAM,
                ("upload-offset", "0"),
                ("upload-checksum", "md5 AAAA"),
            ],
            StatusCode::BAD_REQUEST,
        ),
        (
            vec![
                TUS,
                OFFSET_STREAM,
                ("upload-offset", "0"),
                ("content-length", "101"),
            ],
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ] {
        let response = h
            .upload_request("PATCH", &path, &headers, Body::from(vec![1; 3]))
            .await;
        assert_eq!(response.status(), status, "{headers:?}");
    }
    let unknown = h
        .upload_request(
            "HEAD",
            "/uploads/upload_nobody/token",
            &[TUS],
            Body::empty(),
        )
        .await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_tus_upload_resumes_after_a_broken_connection_and_checks_checksums() {
    let h = harness().await;
    let (upload, path) = h.create_upload(json!({})).await;
    let id = upload["id"].as_str().unwrap();
    let file = file_bytes(300_000);
    let length = file.len().to_string();
    let created = h
        .upload_request(
            "POST",
            &path,
            &[TUS, ("upload-length", &length)],
            Body::empty(),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);

    // The connection breaks after 120 000 bytes: they are kept.
    let _ = h
        .upload_request(
            "PATCH",
            &path,
            &[TUS, OFFSET_STREAM, ("upload-offset", "0")],
            broken_body(file[..120_000].to_vec()),
        )
        .await;
    let head = h.head(&path).await;
    assert_eq!(header_of(&head, "upload-offset"), Some("120000"));

    // With a checksum, a broken body is discarded whole: it cannot be verified.
    let _ = h
        .upload_request(
            "PATCH",
            &path,
            &[
                TUS,
                OFFSET_STREAM,
                ("upload-offset", "120000"),
                ("upload-checksum", &sha1_header(&file[120_000..])),
            ],
            broken_body(file[120_000..200_000].to_vec()),
        )
        .await;
    assert_eq!(
        header_of(&h.head(&path).await, "upload-offset"),
        Some("120000")
    );

    // A wrong checksum: 460 and the chunk is discarded.
    let mismatch = h
        .upload_request(
            "PATCH",
            &path,
            &[
                TUS,
                OFFSET_STREAM,
                ("upload-offset", "120000"),
                ("upload-checksum", &sha1_header(b"something else")),
            ],
            Body::from(file[120_000..200_000].to_vec()),
        )
        .await;
    assert_eq!(mismatch.status().as_u16(), 460);
    assert_eq!(error_code(mismatch).await, "checksum_mismatch");
    assert_eq!(
        header_of(&h.head(&path).await, "upload-offset"),
        Some("120000")
    );

    let stale = h
        .upload_request(
            "PATCH",
            &path,
            &[TUS, OFFSET_STREAM, ("upload-offset", "0")],
            Body::from(file.clone()),
        )
        .await;
    assert_eq!(stale.status(), StatusCode::CONFLICT);

    let middle = h
        .upload_request(
            "PATCH",
            &path,
            &[
                TUS,
                OFFSET_STREAM,
                ("upload-offset", "120000"),
                ("upload-checksum", &sha1_header(&file[120_000..200_000])),
            ],
            Body::from(file[120_000..200_000].to_vec()),
        )
        .await;
    assert_eq!(middle.status(), StatusCode::NO_CONTENT);
    assert_eq!(header_of(&middle, "upload-offset"), Some("200000"));

    // A body running past Upload-Length is refused and nothing of it kept.
    let mut too_long = file[200_000..].to_vec();
    too_long.extend_from_slice(b"extra");
    let overflow = h
        .upload_request(
            "PATCH",
            &path,
            &[TUS, OFFSET_STREAM, ("upload-offset", "200000")],
            Body::from_stream(futures_util::stream::iter([Ok::<_, std::io::Error>(
                Bytes::from(too_long),
            )])),
        )
        .await;
    assert_eq!(overflow.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        header_of(&h.head(&path).await, "upload-offset"),
        Some("200000")
    );

    let last = h
        .upload_request(
            "PATCH",
            &path,
            &[TUS, OFFSET_STREAM, ("upload-offset", "200000")],
            Body::from(file[200_000..].to_vec()),
        )
        .await;
    assert_eq!(last.status(), StatusCode::NO_CONTENT);
    assert_eq!(header_of(&last, "upload-offset"), Some(length.as_str()));
    assert_eq!(h.stored_source(id).await, file, "byte-identical");

    let head = h.head(&path).await;
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(header_of(&head, "upload-offset"), Some(length.as_str()));
    let (_, got) = h.api("GET", &format!("/v1/uploads/{id}"), None).await;
    assert_eq!(got["data"]["status"], "asset_created");
    let more = h
        .upload_request(
            "PATCH",
            &path,
            &[TUS, OFFSET_STREAM, ("upload-offset", &length)],
            Body::from(vec![0; 1]),
        )
        .await;
    assert_eq!(more.status(), StatusCode::CONFLICT);
}

#[tokio::test]
async fn one_request_writes_an_upload_at_a_time() {
    let h = harness().await;
    let (upload, path) = h.create_upload(json!({})).await;
    let id = upload["id"].as_str().unwrap();
    let created = h
        .upload_request(
            "POST",
            &path,
            &[TUS, ("upload-length", "1000")],
            Body::empty(),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);

    let (sender, receiver) = mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    let slow_body = Body::from_stream(futures_util::stream::unfold(
        receiver,
        |mut receiver| async move { receiver.recv().await.map(|chunk| (chunk, receiver)) },
    ));
    let first = {
        let app = h.app.clone();
        let request = Request::patch(path.as_str())
            .header(TUS.0, TUS.1)
            .header(OFFSET_STREAM.0, OFFSET_STREAM.1)
            .header("upload-offset", "0")
            .body(slow_body)
            .unwrap();
        tokio::spawn(async move { app.oneshot(request).await.unwrap() })
    };
    sender.send(Ok(Bytes::from(vec![7; 400]))).await.unwrap();
    // The first request holds the upload until its body ends; it is writing once it has opened
    // the spool file.
    let spool = h.dir.path().join("spool").join(format!("{id}.part"));
    for _ in 0..250 {
        if spool.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(spool.exists(), "the first PATCH opened the spool file");
    let second = h
        .upload_request(
            "PATCH",
            &path,
            &[TUS, OFFSET_STREAM, ("upload-offset", "0")],
            Body::from(vec![1; 10]),
        )
        .await;
    assert_eq!(second.status(), StatusCode::LOCKED);
    assert_eq!(error_code(second).await, "locked");
    drop(sender);
    let first = first.await.unwrap();
    assert_eq!(first.status(), StatusCode::NO_CONTENT);
    assert_eq!(header_of(&first, "upload-offset"), Some("400"));
}

#[tokio::test]
async fn an_expired_upload_times_out_and_loses_its_bytes() {
    let h = harness().await;
    let (upload, path) = h.create_upload(json!({"timeout": 1})).await;
    let id = upload["id"].as_str().unwrap();
    let created = h
        .upload_request(
            "POST",
            &path,
            &[TUS, ("upload-length", "1000")],
            Body::empty(),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let patched = h
        .upload_request(
            "PATCH",
            &path,
            &[TUS, OFFSET_STREAM, ("upload-offset", "0")],
            Body::from(vec![5; 100]),
        )
        .await;
    assert_eq!(patched.status(), StatusCode::NO_CONTENT);
    let spool = h.dir.path().join("spool").join(format!("{id}.part"));
    assert!(spool.exists());

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let response = h
        .upload_request(
            "PATCH",
            &path,
            &[TUS, OFFSET_STREAM, ("upload-offset", "100")],
            Body::from(vec![5; 100]),
        )
        .await;
    assert_eq!(response.status(), StatusCode::GONE);
    assert_eq!(h.head(&path).await.status(), StatusCode::GONE);
    let (_, got) = h.api("GET", &format!("/v1/uploads/{id}"), None).await;
    assert_eq!(got["data"]["status"], "timed_out");
    assert!(got["data"]["error"]["message"].is_string(), "{got}");
    assert!(!spool.exists(), "an expired upload's spool file is removed");
    let types: Vec<String> = h
        .events_about(id)
        .await
        .into_iter()
        .map(|(kind, _)| kind)
        .collect();
    assert_eq!(types, ["upload.created", "upload.errored"]);
}

#[tokio::test]
async fn the_sweeper_times_out_uploads_nobody_touches() {
    let h = harness().await;
    let (upload, _) = h.create_upload(json!({"timeout": 1})).await;
    let id = upload["id"].as_str().unwrap();
    let mut status = Value::Null;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (_, got) = h.api("GET", &format!("/v1/uploads/{id}"), None).await;
        status = got["data"]["status"].clone();
        if status == "timed_out" {
            break;
        }
    }
    assert_eq!(status, "timed_out");
}

#[tokio::test]
async fn tus_termination_cancels_the_upload() {
    let h = harness().await;
    let (upload, path) = h.create_upload(json!({})).await;
    let response = h.upload_request("DELETE", &path, &[], Body::empty()).await;
    assert_eq!(response.status(), StatusCode::PRECONDITION_FAILED);
    let response = h
        .upload_request("DELETE", &path, &[TUS], Body::empty())
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(h.head(&path).await.status(), StatusCode::GONE);
    let (_, got) = h
        .api(
            "GET",
            &format!("/v1/uploads/{}", upload["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(got["data"]["status"], "cancelled");
}

#[tokio::test]
async fn an_upload_asking_for_no_playback_ids_becomes_an_asset_without_any() {
    let h = harness().await;
    let (upload, path) = h
        .create_upload(json!({"new_asset_settings": {"playback_policy": []}}))
        .await;
    assert_eq!(upload["new_asset_settings"]["playback_policy"], json!([]));
    let file = file_bytes(1_000);
    let response = h
        .upload_request(
            "PUT",
            &path,
            &[("content-length", &file.len().to_string())],
            Body::from(file),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value =
        serde_json::from_slice(&to_bytes(response.into_body(), usize::MAX).await.unwrap()).unwrap();
    let asset_id = body["data"]["asset_id"].as_str().unwrap();
    let (status, asset) = h.api("GET", &format!("/v1/assets/{asset_id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(asset["data"]["playback_ids"], json!([]));
    assert!(asset["data"]["playback_url"].is_null());
}
