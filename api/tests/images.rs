//! The image routes on the real router, database and object store, without a renderer: what
//! the asset worker stored is served (the poster, the storyboard with its WebVTT rewritten to
//! point at the sprite's URL), with caching headers; which playback ids and assets have
//! images; and bad parameters. Rendering is tested against the real server in
//! `tests/images_http.rs`.

mod common;

use axum::body::{to_bytes, Body};
use axum::http::{header, Request, Response, StatusCode};
use bytes::Bytes;
use serde_json::{json, Value};
use sluice_storage::{AssetId, AssetInput, NewAsset, ObjectKey, ObjectStore, PlaybackPolicy};
use tower::ServiceExt;

use common::{harness, Harness};

const STORED_VTT: &str =
    "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nstoryboard.jpg#xywh=0,0,160,90\n\n\
    00:00:01.000 --> 00:00:01.500\nstoryboard.jpg#xywh=160,0,160,90\n";

async fn get(h: &Harness, uri: &str, if_none_match: Option<&str>) -> Response<Body> {
    let mut request = Request::get(uri);
    if let Some(etag) = if_none_match {
        request = request.header(header::IF_NONE_MATCH, etag);
    }
    h.app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap()
}

async fn body_bytes(response: Response<Body>) -> Bytes {
    to_bytes(response.into_body(), usize::MAX).await.unwrap()
}

fn header_str<'a>(response: &'a Response<Body>, name: &header::HeaderName) -> &'a str {
    response
        .headers()
        .get(name)
        .map_or("", |value| value.to_str().unwrap())
}

/// Asserts a JSON error: status, code, and words of its message.
async fn assert_error(response: Response<Body>, status: StatusCode, code: &str, words: &str) {
    assert_eq!(response.status(), status);
    let body: Value = serde_json::from_slice(&body_bytes(response).await).unwrap();
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(words), "{message:?} should say {words:?}");
}

/// An asset with one playback id of `policy`, its job cancelled (no worker here), ready
/// unless `ready` is false, 1.5 s long. Returns its id and playback id.
async fn asset(h: &Harness, policy: PlaybackPolicy, ready: bool) -> (String, String) {
    let asset =
        h.db.create_asset(&NewAsset {
            input: AssetInput::Url {
                url: "https://example.com/clip.mp4".to_owned(),
            },
            settings: None,
            playback_policies: vec![policy],
        })
        .await
        .unwrap();
    h.db.cancel_jobs_for(&asset.id).await.unwrap();
    h.db.set_asset_probed(&asset.id, Some(1500), &json!([]), &json!({}))
        .await
        .unwrap();
    if ready {
        h.db.set_asset_ready(&asset.id, &json!([])).await.unwrap();
    }
    let playback_id = h.db.asset_playback_ids(&asset.id).await.unwrap()[0]
        .id
        .clone();
    (asset.id.to_string(), playback_id)
}

/// Stores what the asset worker writes under `assets/{id}/images/`.
async fn store_worker_images(h: &Harness, asset_id: &str) {
    for (name, body) in [
        ("poster.jpg", Bytes::from_static(b"poster bytes")),
        ("storyboard.jpg", Bytes::from_static(b"sprite bytes")),
        ("storyboard.vtt", Bytes::from_static(STORED_VTT.as_bytes())),
    ] {
        let key = ObjectKey::new(["assets", asset_id, "images", name]).unwrap();
        h.store.put(&key, body).await.unwrap();
    }
}

#[tokio::test]
async fn the_stored_poster_is_served_with_an_etag_and_public_caching() {
    let h = harness().await;
    let (asset_id, playback_id) = asset(&h, PlaybackPolicy::Public, true).await;
    store_worker_images(&h, &asset_id).await;

    let response = get(&h, &format!("/thumbnails/{playback_id}.jpg"), None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header_str(&response, &header::CONTENT_TYPE), "image/jpeg");
    assert_eq!(
        header_str(&response, &header::CACHE_CONTROL),
        "public, max-age=86400"
    );
    let etag = header_str(&response, &header::ETAG).to_owned();
    assert!(etag.starts_with('"') && etag.len() > 10, "{etag}");
    assert_eq!(&body_bytes(response).await[..], b"poster bytes");

    let again = get(&h, &format!("/thumbnails/{playback_id}.jpg"), Some(&etag)).await;
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(header_str(&again, &header::ETAG), etag);
    assert!(body_bytes(again).await.is_empty());
    let changed = get(
        &h,
        &format!("/thumbnails/{playback_id}.jpg"),
        Some("\"other\""),
    )
    .await;
    assert_eq!(changed.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_stored_storyboard_points_at_its_sprite_by_url() {
    let h = harness().await;
    let (asset_id, playback_id) = asset(&h, PlaybackPolicy::Public, true).await;
    store_worker_images(&h, &asset_id).await;

    let response = get(&h, &format!("/storyboards/{playback_id}.vtt"), None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        header_str(&response, &header::CONTENT_TYPE),
        "text/vtt; charset=utf-8"
    );
    let vtt = String::from_utf8(body_bytes(response).await.to_vec()).unwrap();
    let sprite = format!("http://localhost:8080/storyboards/{playback_id}.jpg");
    assert_eq!(
        vtt,
        STORED_VTT.replace("storyboard.jpg", &sprite),
        "cue URIs are absolute, everything else as stored"
    );

    let response = get(&h, &format!("/storyboards/{playback_id}.jpg"), None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header_str(&response, &header::CONTENT_TYPE), "image/jpeg");
    assert_eq!(&body_bytes(response).await[..], b"sprite bytes");
}

#[tokio::test]
async fn images_need_a_ready_asset_and_a_renderer_to_render() {
    let h = harness().await;
    let (_, preparing) = asset(&h, PlaybackPolicy::Public, false).await;
    assert_error(
        get(&h, &format!("/thumbnails/{preparing}.jpg"), None).await,
        StatusCode::CONFLICT,
        "conflict",
        "still being prepared",
    )
    .await;

    let (errored_id, errored) = asset(&h, PlaybackPolicy::Public, false).await;
    h.db.set_asset_errored(&AssetId::parse(&errored_id).unwrap(), "not a video")
        .await
        .unwrap();
    assert_error(
        get(&h, &format!("/animated/{errored}.gif"), None).await,
        StatusCode::CONFLICT,
        "conflict",
        "could not be processed",
    )
    .await;

    // A ready asset without stored images: rendering needs a renderer, which this router
    // lacks.
    let (_, ready) = asset(&h, PlaybackPolicy::Public, true).await;
    assert_error(
        get(&h, &format!("/thumbnails/{ready}.png?time=1"), None).await,
        StatusCode::NOT_FOUND,
        "not_found",
        "makes no images",
    )
    .await;

    let created = h
        .app
        .clone()
        .oneshot(
            Request::post("/v1/live-streams")
                .header(header::AUTHORIZATION, h.auth())
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(json!({"name": "studio"}).to_string()))
                .unwrap(),
        )
        .await
        .unwrap();
    let stream: Value = serde_json::from_slice(&body_bytes(created).await).unwrap();
    let live = stream["data"]["playback_ids"][0]["id"].as_str().unwrap();
    assert_error(
        get(&h, &format!("/thumbnails/{live}.jpg"), None).await,
        StatusCode::NOT_FOUND,
        "not_found",
        "images are made only of assets",
    )
    .await;
    assert_error(
        get(&h, "/storyboards/nosuchid.vtt", None).await,
        StatusCode::NOT_FOUND,
        "not_found",
        "no such playback id",
    )
    .await;
}

#[tokio::test]
async fn bad_parameters_are_named() {
    let h = harness().await;
    let (_, id) = asset(&h, PlaybackPolicy::Public, true).await;
    for (uri, words) in [
        (
            format!("/thumbnails/{id}.jpg?width=8"),
            "width must be a whole number of pixels from 16 to 4096",
        ),
        (format!("/thumbnails/{id}.jpg?height=abc"), "height must be"),
        (
            format!("/thumbnails/{id}.jpg?time=-2"),
            "time must be a number of seconds",
        ),
        (
            format!("/thumbnails/{id}.jpg?fit_mode=zoom"),
            "fit_mode must be preserve, crop, pad or stretch",
        ),
        (
            format!("/thumbnails/{id}.jpg?size=3"),
            "unknown parameter \"size\"",
        ),
        (
            format!("/thumbnails/{id}.jpg?time=1&time=2"),
            "\"time\" is given more than once",
        ),
        (
            format!("/thumbnails/{id}.bmp"),
            "thumbnails are jpg, png or webp",
        ),
        (
            format!("/storyboards/{id}.gif"),
            "storyboards are vtt, or jpg, png or webp sprites",
        ),
        (
            format!("/storyboards/{id}.vtt?width=3"),
            "unknown parameter \"width\"",
        ),
        (
            format!("/animated/{id}.mp4"),
            "animated previews are gif or webp",
        ),
        (
            format!("/animated/{id}.gif?fps=31"),
            "fps must be a whole number of frames per second from 1 to 30",
        ),
        (
            format!("/animated/{id}.gif?width=641"),
            "width must be a whole number of pixels from 16 to 640",
        ),
        (
            format!("/animated/{id}.gif?start=2&end=1"),
            "end must come after start",
        ),
        (
            format!("/animated/{id}.gif?start=1&end=12"),
            "end must be at most 10 s after start",
        ),
    ] {
        assert_error(
            get(&h, &uri, None).await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            words,
        )
        .await;
    }
    assert_error(
        get(&h, &format!("/thumbnails/{id}"), None).await,
        StatusCode::NOT_FOUND,
        "not_found",
        "{playback_id}.{format}",
    )
    .await;
}

#[tokio::test]
async fn a_signed_playback_id_needs_a_token() {
    let h = harness().await;
    let (asset_id, signed) = asset(&h, PlaybackPolicy::Signed, true).await;
    store_worker_images(&h, &asset_id).await;
    let response = get(&h, &format!("/thumbnails/{signed}.jpg"), None).await;
    assert_eq!(
        header_str(&response, &header::WWW_AUTHENTICATE),
        "Bearer realm=\"sluice playback\""
    );
    assert_error(response, StatusCode::UNAUTHORIZED, "unauthorized", "signed").await;
    assert_error(
        get(
            &h,
            &format!("/storyboards/{signed}.vtt?token=nonsense"),
            None,
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
        "malformed playback token",
    )
    .await;
}
