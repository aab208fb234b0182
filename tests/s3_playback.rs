//! Black-box: a server whose objects are in S3 (the s3s-fs server of scripts/test-s3.sh):
//! the startup health check, the redirect and public playback modes, and deleting a stream's
//! objects from the bucket. Run by `make test-s3`, which fails them when the S3 server's
//! environment is missing; elsewhere they are skipped.

mod common;

use std::sync::Arc;

use common::{files_under, http_get, Launch, Server, TestStorage};
use serde_json::json;

/// The test bucket, or `None` (skip) when the S3 server's environment is not set.
fn bucket() -> Option<String> {
    match std::env::var("SLUICE_TEST_S3_BUCKET") {
        Ok(bucket) if !bucket.is_empty() => Some(bucket),
        _ if std::env::var_os("SLUICE_TEST_REQUIRE_S3").is_some() => {
            panic!("SLUICE_TEST_REQUIRE_S3 is set but SLUICE_TEST_S3_BUCKET is not")
        }
        _ => {
            eprintln!("skipped: no S3 server (see scripts/test-s3.sh)");
            None
        }
    }
}

const PLAYLIST: &str = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n\
    #EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:2.000,\nseg0.m4s\n\
    #EXTINF:2.000,\nseg1.m4s\n";

/// A server on a prefix of its own in the test bucket, playing back as `storage_config`
/// (the `[storage]` section) says, with one live stream whose rendition `v0` holds a playlist,
/// an init segment and two segments; returns the server, the stream id and its playback id.
fn server_with_segments(bucket: &str, storage_config: &str) -> (Server, String, String) {
    let server = Server::launch(Launch {
        config: Some(format!("[storage]\n{storage_config}\n")),
        storage: Some(Arc::new(TestStorage::under(&format!(
            "s3://{bucket}/playback"
        )))),
        ..Launch::default()
    });
    let stream = server.create_live_stream(json!({"name": "s3"}));
    let id = stream["id"].as_str().unwrap().to_owned();
    let playback_id = stream["playback_ids"][0]["id"].as_str().unwrap().to_owned();
    // s3s-fs keeps objects as files: writing them there is storing them.
    let rendition = server.objects_dir().join("live").join(&id).join("v0");
    std::fs::create_dir_all(&rendition).unwrap();
    std::fs::write(rendition.join("index.m3u8"), PLAYLIST).unwrap();
    std::fs::write(rendition.join("init.mp4"), b"init bytes").unwrap();
    std::fs::write(rendition.join("seg0.m4s"), b"segment zero").unwrap();
    std::fs::write(rendition.join("seg1.m4s"), b"segment one").unwrap();
    (server, id, playback_id)
}

#[test]
fn redirect_playback_sends_segments_to_presigned_urls() {
    let Some(bucket) = bucket() else {
        return;
    };
    let (server, _, playback_id) =
        server_with_segments(&bucket, "playback = \"redirect\"\npresign_seconds = 120");

    // Playlists are still served by the API, as stored.
    let playlist = server.get(&format!("/hls/{playback_id}/v0/index.m3u8"));
    assert_eq!(playlist.status, 200);
    assert_eq!(playlist.text(), PLAYLIST);

    for (name, body) in [
        ("seg0.m4s", &b"segment zero"[..]),
        ("init.mp4", &b"init bytes"[..]),
    ] {
        let response = server.get(&format!("/hls/{playback_id}/v0/{name}"));
        assert_eq!(response.status, 302, "{name}");
        assert_eq!(response.header("cache-control"), Some("no-store"));
        let location = response.header("location").unwrap();
        assert!(location.contains("X-Amz-Signature="), "{location}");
        assert!(location.contains("X-Amz-Expires=120"), "{location}");
        let fetched = http_get(location);
        assert_eq!(fetched.status, 200, "{location}: {}", fetched.text());
        assert_eq!(fetched.body, body, "{name}");
    }
}

#[test]
fn public_playback_points_playlists_at_the_base_url_and_delete_empties_the_bucket() {
    let Some(bucket) = bucket() else {
        return;
    };
    let (server, id, playback_id) = server_with_segments(
        &bucket,
        "playback = \"public\"\npublic_base_url = \"https://cdn.example/media/\"",
    );
    let playlist = server.get(&format!("/hls/{playback_id}/v0/index.m3u8"));
    assert_eq!(playlist.status, 200);
    let text = playlist.text();
    let objects = server.objects_dir();
    let prefix = objects.file_name().unwrap().to_str().unwrap();
    let base = format!("https://cdn.example/media/playback/{prefix}/live/{id}/v0");
    assert!(
        text.contains(&format!("#EXT-X-MAP:URI=\"{base}/init.mp4\"")),
        "{text}"
    );
    assert!(text.contains(&format!("\n{base}/seg0.m4s\n")), "{text}");
    assert!(text.contains(&format!("\n{base}/seg1.m4s\n")), "{text}");
    // Asked of the server anyway, a segment is still served.
    let segment = server.get(&format!("/hls/{playback_id}/v0/seg1.m4s"));
    assert_eq!(
        (segment.status, &segment.body[..]),
        (200, &b"segment one"[..])
    );

    let stream_objects = objects.join("live").join(&id);
    assert_eq!(files_under(&stream_objects).len(), 4);
    let (status, _) = server.api("DELETE", &format!("/v1/live-streams/{id}"), None);
    assert_eq!(status, 204);
    common::wait_for(
        "the stream's objects to leave the bucket",
        std::time::Duration::from_secs(10),
        || files_under(&stream_objects).is_empty().then_some(()),
    );
}

#[test]
fn a_missing_bucket_stops_the_server_with_a_clear_message() {
    if bucket().is_none() {
        return;
    }
    let data_dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("serve")
        .env("SLUICE_DATA_DIR", data_dir.path())
        .env("SLUICE_HTTP", "127.0.0.1:0")
        .env("SLUICE_RTMP", "127.0.0.1:0")
        .env_remove("SLUICE_CONFIG")
        .env_remove("DATABASE_URL")
        .env("SLUICE_STORAGE", "s3://no-such-bucket/x")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap();
    assert!(
        stderr.contains("bucket \"no-such-bucket\" does not exist at")
            && stderr.contains(&endpoint),
        "{stderr}"
    );
}
