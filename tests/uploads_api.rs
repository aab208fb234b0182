//! Direct uploads against the real binary: a clip made by ffmpeg sent with one `PUT`, and a tus
//! 1.0.0 upload whose connection is cut mid-body and resumed, with curl and a raw socket.
//! The completed file must land byte for byte at `uploads/{id}/source` in the data directory.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sluice_media::fixtures::ffmpeg_clip;

use common::live::event_types;
use common::vod::{create_upload, patch, patch_and_hang_up, tus_head, url_of, OFFSET_STREAM, TUS};
use common::{http_request, wait_for, Launch, Server};

/// A 2-second 320x240 H.264/AAC MP4 made by ffmpeg from lavfi sources.
fn clip(dir: &std::path::Path) -> Vec<u8> {
    let path = ffmpeg_clip(
        dir,
        "clip.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            "2",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-c:a",
            "aac",
        ],
    );
    std::fs::read(path).unwrap()
}

fn source_path(server: &Server, upload_id: &str) -> PathBuf {
    server
        .objects_dir()
        .join("uploads")
        .join(upload_id)
        .join("source")
}

#[test]
fn a_clip_sent_with_one_put_becomes_an_asset() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    let file = clip(work.path());
    let upload = create_upload(
        &server,
        json!({"new_asset_settings": {"passthrough": "clip"}}),
    );
    let id = upload["id"].as_str().unwrap();
    assert_eq!(upload["status"], "waiting");

    let response = http_request(
        "PUT",
        &url_of(&upload),
        &["Content-Type: video/mp4"],
        Some(&file),
    );
    assert_eq!(response.status, 200, "{}", response.text());
    let body: Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(body["data"]["status"], "asset_created");
    let asset_id = body["data"]["asset_id"].as_str().unwrap().to_owned();
    assert_eq!(std::fs::read(source_path(&server, id)).unwrap(), file);

    let (status, asset) = server.api("GET", &format!("/v1/assets/{asset_id}"), None);
    assert_eq!(status, 200, "{asset}");
    assert_eq!(
        asset["data"]["input"],
        json!({"type": "upload", "upload_id": id})
    );
    assert_eq!(asset["data"]["new_asset_settings"]["passthrough"], "clip");
    let (_, fetched) = server.api("GET", &format!("/v1/uploads/{id}"), None);
    assert_eq!(fetched["data"]["asset_id"], asset_id.as_str());

    assert_eq!(
        event_types(&server, id),
        ["upload.created", "upload.asset_created"]
    );
    assert_eq!(event_types(&server, &asset_id)[0], "asset.created");

    // The URL is the credential: a wrong token finds nothing, and no API key is needed.
    let wrong = url_of(&upload).rsplit_once('/').unwrap().0.to_owned() + "/wrong";
    let response = http_request("PUT", &wrong, &[], Some(b"x"));
    assert_eq!(response.status, 404);
    assert!(
        response.text().contains("\"not_found\""),
        "{}",
        response.text()
    );
}

#[test]
fn a_tus_upload_resumes_after_its_connection_is_cut() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    let file = clip(work.path());
    let upload = create_upload(&server, json!({"max_size": file.len() + 10}));
    let id = upload["id"].as_str().unwrap();
    let url = url_of(&upload);

    let options = http_request("OPTIONS", &url, &[], None);
    assert_eq!(options.status, 204);
    assert_eq!(options.header("Tus-Version"), Some("1.0.0"));
    assert!(options
        .header("Tus-Checksum-Algorithm")
        .unwrap()
        .contains("sha1"));

    let too_long = format!("Upload-Length: {}", file.len() + 11);
    let refused = http_request("POST", &url, &[TUS, &too_long], None);
    assert_eq!(refused.status, 413, "{}", refused.text());
    let length = format!("Upload-Length: {}", file.len());
    let created = http_request("POST", &url, &[TUS, &length], None);
    assert_eq!(created.status, 201, "{}", created.text());
    assert_eq!(created.header("Location"), Some(url.as_str()));
    assert!(created.header("Upload-Expires").unwrap().ends_with("GMT"));

    // Half the file, then the connection is cut: what arrived is kept.
    let half = file.len() / 2;
    patch_and_hang_up(&server, &url, 0, &file, half);
    let offset = wait_for(
        "the cut PATCH to be recorded",
        Duration::from_secs(20),
        || {
            let response = tus_head(&url);
            assert_eq!(response.status, 200);
            let offset: usize = response.header("Upload-Offset").unwrap().parse().unwrap();
            (offset == half).then_some(offset)
        },
    );
    let resumed_at = tus_head(&url);
    assert_eq!(
        resumed_at.header("Upload-Length"),
        Some(file.len().to_string().as_str())
    );
    assert_eq!(resumed_at.header("Cache-Control"), Some("no-store"));

    let wrong_offset = patch(&url, 0, &[], &file);
    assert_eq!(wrong_offset.status, 409, "{}", wrong_offset.text());
    let no_version = http_request(
        "PATCH",
        &url,
        &[OFFSET_STREAM, &format!("Upload-Offset: {offset}")],
        Some(&file[offset..]),
    );
    assert_eq!(no_version.status, 412);

    let bad_sum = format!("Upload-Checksum: sha1 {}", BASE64.encode([0u8; 20]));
    let mismatch = patch(&url, offset, &[&bad_sum], &file[offset..]);
    assert_eq!(mismatch.status, 460, "{}", mismatch.text());
    assert_eq!(
        tus_head(&url).header("Upload-Offset"),
        Some(half.to_string().as_str())
    );

    let good_sum = format!(
        "Upload-Checksum: sha256 {}",
        BASE64.encode(Sha256::digest(&file[offset..]))
    );
    let rest = patch(&url, offset, &[&good_sum], &file[offset..]);
    assert_eq!(rest.status, 204, "{}", rest.text());
    assert_eq!(
        rest.header("Upload-Offset"),
        Some(file.len().to_string().as_str())
    );
    assert_eq!(
        std::fs::read(source_path(&server, id)).unwrap(),
        file,
        "byte-identical"
    );
    assert!(!server
        .data_dir
        .path()
        .join("uploads")
        .join(format!("{id}.part"))
        .exists());

    let (_, fetched) = server.api("GET", &format!("/v1/uploads/{id}"), None);
    assert_eq!(fetched["data"]["status"], "asset_created");
    let asset_id = fetched["data"]["asset_id"].as_str().unwrap();
    let (status, _) = server.api("GET", &format!("/v1/assets/{asset_id}"), None);
    assert_eq!(status, 200);
    assert_eq!(
        event_types(&server, id),
        ["upload.created", "upload.asset_created"]
    );

    // A whole-file PUT larger than max_size is refused before its body is read.
    let small = create_upload(&server, json!({"max_size": 1000}));
    let response = http_request("PUT", &url_of(&small), &[], Some(&file));
    assert_eq!(response.status, 413, "{}", response.text());
}

#[test]
fn an_expired_upload_is_gone_with_its_bytes() {
    let server = Server::launch(Launch {
        config: Some("[uploads]\nsweep_interval_seconds = 0.2\n".to_owned()),
        ..Launch::default()
    });
    // Long enough for the first PATCH to arrive in time on a loaded machine.
    let upload = create_upload(&server, json!({"timeout": 5}));
    let id = upload["id"].as_str().unwrap();
    let url = url_of(&upload);
    let created = http_request("POST", &url, &[TUS, "Upload-Length: 1000"], None);
    assert_eq!(created.status, 201);
    let first = patch(&url, 0, &[], &[9; 400]);
    assert_eq!(first.status, 204, "{}", first.text());
    let spool = server
        .data_dir
        .path()
        .join("uploads")
        .join(format!("{id}.part"));
    assert_eq!(std::fs::metadata(&spool).unwrap().len(), 400);

    // The sweeper marks the upload timed out, removes its spool file, then records
    // `upload.errored`: once that event is there, the rest is done.
    wait_for("the upload to time out", Duration::from_secs(60), || {
        let (_, fetched) = server.api("GET", &format!("/v1/uploads/{id}"), None);
        (fetched["data"]["status"] == "timed_out"
            && event_types(&server, id).contains(&"upload.errored".to_owned()))
        .then_some(())
    });
    assert!(!spool.exists(), "the spool file goes with the upload");
    assert_eq!(tus_head(&url).status, 410);
    let late = patch(&url, 400, &[], &[9; 600]);
    assert_eq!(late.status, 410, "{}", late.text());
    assert!(late.text().contains("\"gone\""), "{}", late.text());
    assert_eq!(
        event_types(&server, id),
        ["upload.created", "upload.errored"]
    );
}
