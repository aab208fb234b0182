//! `/v1/assets` through the router: URL imports, listing, playback ids and deletion, on a real
//! database and object store.

mod common;

use axum::body::{to_bytes, Body};
use axum::http::{header, Request, StatusCode};
use bytes::Bytes;
use serde_json::{json, Value};
use sluice_storage::{AssetId, ObjectKey, ObjectStore};
use tower::ServiceExt;

use common::{default_ladder, harness, Harness};

impl Harness {
    async fn api(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, self.auth());
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let body = body.map_or(Body::empty(), |body| Body::from(body.to_string()));
        let response = self
            .app
            .clone()
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (status, json)
    }

    async fn import(&self, body: Value) -> Value {
        let (status, created) = self.api("POST", "/v1/assets", Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        created["data"].clone()
    }
}

#[tokio::test]
async fn a_url_import_creates_a_preparing_asset() {
    let h = harness().await;
    let asset = h
        .import(json!({"input": "https://example.com/films/a.mp4", "passthrough": "p-1"}))
        .await;
    let id = asset["id"].as_str().unwrap();
    assert!(id.starts_with("asset_"), "{id}");
    assert_eq!(asset["status"], "preparing");
    assert_eq!(asset["progress"], 0);
    assert!(asset["error"].is_null() && asset["duration"].is_null());
    assert_eq!(asset["playable"], false);
    assert_eq!(
        asset["input"],
        json!({"type": "url", "url": "https://example.com/films/a.mp4"})
    );
    assert_eq!(
        asset["new_asset_settings"],
        json!({"playback_policy": ["public"], "ladder": default_ladder(), "codecs": ["h264"],
               "passthrough": "p-1"})
    );
    let playback_id = asset["playback_ids"][0]["id"].as_str().unwrap();
    assert_eq!(asset["playback_ids"][0]["policy"], "public");
    assert_eq!(
        asset["playback_url"],
        format!("http://localhost:8080/hls/{playback_id}/master.m3u8")
    );
    let events = h.db.list_events(100, None).await.unwrap().items;
    let created = events
        .iter()
        .find(|event| event.event_type == "asset.created")
        .expect("asset.created recorded");
    assert_eq!(created.data, asset);

    let signed = h
        .import(
            json!({"input": "http://203.0.113.9:8080/v.mov", "playback_policy": ["signed"],
                       "codecs": ["h264", "av1"]}),
        )
        .await;
    assert_eq!(signed["playback_ids"][0]["policy"], "signed");
    assert!(
        signed["playback_url"].is_null(),
        "no public id, no playback URL"
    );
    assert_eq!(
        signed["new_asset_settings"]["codecs"],
        json!(["h264", "av1"])
    );
}

#[tokio::test]
async fn url_imports_need_an_absolute_http_url_and_valid_settings() {
    let h = harness().await;
    for (body, field) in [
        (json!({"input": "ftp://example.com/a.mp4"}), "input"),
        (json!({"input": "/films/a.mp4"}), "input"),
        (json!({"input": "a.mp4"}), "input"),
        (json!({"input": "file:///etc/passwd"}), "input"),
        (json!({"input": 7}), "input"),
        (json!({}), "input"),
        (
            json!({"input": "https://example.com/a.mp4", "codecs": ["av1"]}),
            "codecs",
        ),
        (
            json!({"input": "https://example.com/a.mp4", "ladder": 3}),
            "ladder",
        ),
        (
            json!({"input": "https://example.com/a.mp4", "max_size": 3}),
            "max_size",
        ),
    ] {
        let (status, error) = h.api("POST", "/v1/assets", Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {error}");
        assert_eq!(error["error"]["code"], "invalid_request");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{body}: {message}");
    }
}

#[tokio::test]
async fn assets_are_listed_newest_first_and_by_status() {
    let h = harness().await;
    let first = h
        .import(json!({"input": "https://example.com/1.mp4"}))
        .await;
    let second = h
        .import(json!({"input": "https://example.com/2.mp4"}))
        .await;
    h.db.set_asset_errored(
        &AssetId::parse(first["id"].as_str().unwrap()).unwrap(),
        "not a video",
    )
    .await
    .unwrap();

    let (status, page) = h.api("GET", "/v1/assets?limit=1", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["data"][0]["id"], second["id"]);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, rest) = h
        .api("GET", &format!("/v1/assets?limit=1&cursor={cursor}"), None)
        .await;
    assert_eq!(rest["data"][0]["id"], first["id"]);
    assert_eq!(rest["data"][0]["error"], json!({"message": "not a video"}));

    let (_, errored) = h.api("GET", "/v1/assets?status=errored", None).await;
    let ids: Vec<&Value> = errored["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["id"])
        .collect();
    assert_eq!(ids, [&first["id"]]);
    let (_, preparing) = h.api("GET", "/v1/assets?status=preparing", None).await;
    assert_eq!(preparing["data"][0]["id"], second["id"]);
    let (status, _) = h.api("GET", "/v1/assets?status=done", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn asset_playback_ids_are_added_and_listed() {
    let h = harness().await;
    let asset = h
        .import(json!({"input": "https://example.com/1.mp4"}))
        .await;
    let id = asset["id"].as_str().unwrap();
    let path = format!("/v1/assets/{id}/playback-ids");
    let (status, added) = h
        .api("POST", &path, Some(json!({"policy": "signed"})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    assert_eq!(added["data"]["policy"], "signed");
    let (status, listed) = h.api("GET", &path, None).await;
    assert_eq!(status, StatusCode::OK);
    let policies: Vec<&Value> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["policy"])
        .collect();
    assert_eq!(policies, ["public", "signed"]);
    let (status, _) = h.api("POST", &path, Some(json!({"policy": "open"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    for method in ["GET", "POST"] {
        let (status, error) = h
            .api(
                method,
                "/v1/assets/asset_nobody/playback-ids",
                (method == "POST").then(|| json!({"policy": "public"})),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method}");
        assert_eq!(error["error"]["message"], "asset not found");
    }
}

#[tokio::test]
async fn deleting_an_asset_removes_its_objects_and_its_upload() {
    let h = harness().await;
    let (status, upload) = h.api("POST", "/v1/uploads", Some(json!({}))).await;
    assert_eq!(status, StatusCode::CREATED);
    let url = upload["data"]["url"].as_str().unwrap();
    let path = url.strip_prefix("http://localhost:8080").unwrap();
    let response = h
        .app
        .clone()
        .oneshot(
            Request::put(path)
                .header(header::CONTENT_LENGTH, "5")
                .body(Body::from("video"))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let upload_id = upload["data"]["id"].as_str().unwrap();
    let (_, upload) = h
        .api("GET", &format!("/v1/uploads/{upload_id}"), None)
        .await;
    let asset_id = upload["data"]["asset_id"].as_str().unwrap();
    let rendition = ObjectKey::new(["assets", asset_id, "hls", "master.m3u8"]).unwrap();
    h.store
        .put(&rendition, Bytes::from_static(b"#EXTM3U\n"))
        .await
        .unwrap();
    let source = ObjectKey::new(["uploads", upload_id, "source"]).unwrap();
    assert_eq!(h.store.get(&source).await.unwrap(), "video");

    let (status, _) = h
        .api("DELETE", &format!("/v1/assets/{asset_id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(h.store.get(&rendition).await.unwrap_err().is_not_found());
    assert!(h.store.get(&source).await.unwrap_err().is_not_found());
    let (status, _) = h.api("GET", &format!("/v1/assets/{asset_id}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = h
        .api("DELETE", &format!("/v1/assets/{asset_id}"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let events = h.db.list_events(100, None).await.unwrap().items;
    let deleted = events
        .iter()
        .find(|event| event.event_type == "asset.deleted")
        .expect("asset.deleted recorded");
    assert_eq!(deleted.data["id"], asset_id);
}
