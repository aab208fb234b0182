//! Video-on-demand helpers for black-box tests: direct uploads (PUT and tus), waiting for an
//! asset to settle, and reading a VOD HLS tree on disk (the output of `sluice transcode`, or
//! an asset's objects under the server's data directory) with m3u8-rs and ffprobe.

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use m3u8_rs::{MasterPlaylist, MediaPlaylist, MediaPlaylistType, Playlist, VariantStream};
use serde_json::Value;

use super::{ffprobe, http_request, wait_for, HttpResponse, Server};

pub const TUS: &str = "Tus-Resumable: 1.0.0";
pub const OFFSET_STREAM: &str = "Content-Type: application/offset+octet-stream";

/// Creates an upload; returns its `data`.
pub fn create_upload(server: &Server, body: Value) -> Value {
    let (status, created) = server.api("POST", "/v1/uploads", Some(body));
    assert_eq!(status, 201, "{created}");
    created["data"].clone()
}

pub fn url_of(upload: &Value) -> String {
    upload["url"].as_str().unwrap().to_owned()
}

pub fn tus_head(url: &str) -> HttpResponse {
    http_request("HEAD", url, &[TUS], None)
}

pub fn patch(url: &str, offset: usize, extra: &[&str], body: &[u8]) -> HttpResponse {
    let offset = format!("Upload-Offset: {offset}");
    let mut headers = vec![TUS, OFFSET_STREAM, offset.as_str()];
    headers.extend_from_slice(extra);
    http_request("PATCH", url, &headers, Some(body))
}

/// Sends a `PATCH` to the upload URL `url` announcing the whole remaining `body` but writes
/// only its first `sent` bytes, then closes the connection.
pub fn patch_and_hang_up(server: &Server, url: &str, offset: usize, body: &[u8], sent: usize) {
    let path = url.strip_prefix(&server.url("")).unwrap();
    let mut socket = TcpStream::connect(("127.0.0.1", server.http_port)).unwrap();
    let head = format!(
        "PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTus-Resumable: 1.0.0\r\n\
         Content-Type: application/offset+octet-stream\r\nUpload-Offset: {offset}\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    socket.write_all(head.as_bytes()).unwrap();
    socket.write_all(&body[..sent]).unwrap();
    socket.flush().unwrap();
    // Give the server the bytes before the connection goes.
    std::thread::sleep(Duration::from_millis(300));
    socket.shutdown(std::net::Shutdown::Both).unwrap();
}

/// The asset an upload became, once it did.
pub fn asset_of_upload(server: &Server, upload_id: &str) -> String {
    wait_for("the upload's asset", Duration::from_secs(30), || {
        let (_, upload) = server.api("GET", &format!("/v1/uploads/{upload_id}"), None);
        upload["data"]["asset_id"].as_str().map(str::to_owned)
    })
}

/// Sends `body` with one `PUT` to a new upload with `settings`; returns the asset id.
pub fn put_asset(server: &Server, body: &[u8], settings: Value) -> String {
    let upload = create_upload(
        server,
        serde_json::json!({ "new_asset_settings": settings }),
    );
    let response = http_request("PUT", &url_of(&upload), &[], Some(body));
    assert!(
        (200..300).contains(&response.status),
        "PUT answered {}: {}",
        response.status,
        response.text()
    );
    asset_of_upload(server, upload["id"].as_str().unwrap())
}

pub fn get_asset(server: &Server, id: &str) -> Value {
    let (status, asset) = server.api("GET", &format!("/v1/assets/{id}"), None);
    assert_eq!(status, 200, "{asset}");
    asset["data"].clone()
}

/// The asset once it is no longer `preparing`.
pub fn settled(server: &Server, id: &str, timeout: Duration) -> Value {
    wait_for("the asset to settle", timeout, || {
        let asset = get_asset(server, id);
        (asset["status"] != "preparing").then_some(asset)
    })
}

/// Where the server keeps an asset's HLS tree, as files.
pub fn asset_hls_dir(server: &Server, asset_id: &str) -> PathBuf {
    server
        .objects_dir()
        .join("assets")
        .join(asset_id)
        .join("hls")
}

/// The multivariant playlist of the tree in `dir`: its variants without the I-frame ones, and
/// the I-frame variants apart.
pub fn master_and_i_frames(dir: &Path) -> (MasterPlaylist, Vec<VariantStream>) {
    let bytes = std::fs::read(dir.join("master.m3u8")).expect("master.m3u8 is written");
    match m3u8_rs::parse_playlist_res(&bytes) {
        Ok(Playlist::MasterPlaylist(mut master)) => {
            let (i_frames, variants) = master.variants.into_iter().partition(|v| v.is_i_frame);
            master.variants = variants;
            (master, i_frames)
        }
        other => panic!("master.m3u8 is a multivariant playlist: {other:?}"),
    }
}

/// The multivariant playlist of the tree in `dir`, without its I-frame variants.
pub fn master(dir: &Path) -> MasterPlaylist {
    master_and_i_frames(dir).0
}

/// A media playlist, checked to be a complete VOD playlist with an init segment.
pub fn vod_playlist(dir: &Path, uri: &str) -> MediaPlaylist {
    let bytes = std::fs::read(dir.join(uri)).unwrap_or_else(|e| panic!("{uri}: {e}"));
    let Ok(Playlist::MediaPlaylist(playlist)) = m3u8_rs::parse_playlist_res(&bytes) else {
        panic!("{uri} is a media playlist");
    };
    assert_eq!(
        playlist.playlist_type,
        Some(MediaPlaylistType::Vod),
        "{uri}"
    );
    assert!(playlist.end_list, "{uri} ends with EXT-X-ENDLIST");
    assert!(!playlist.segments.is_empty(), "{uri} lists segments");
    assert!(playlist.segments[0].map.is_some(), "{uri} has EXT-X-MAP");
    playlist
}

pub fn total_seconds(playlist: &MediaPlaylist) -> f64 {
    playlist
        .segments
        .iter()
        .map(|s| f64::from(s.duration))
        .sum()
}

/// Writes each segment of the playlist at `uri` behind its init segment, as a file ffmpeg can
/// open alone, and the whole rendition as one file; returns (segments, whole).
pub fn playable_files(dir: &Path, uri: &str, scratch: &Path) -> (Vec<PathBuf>, PathBuf) {
    let playlist = vod_playlist(dir, uri);
    let base = dir.join(uri).parent().unwrap().to_owned();
    let init_uri = &playlist.segments[0].map.as_ref().unwrap().uri;
    let init = std::fs::read(base.join(init_uri)).unwrap();
    let tag = uri.replace('/', "-");
    let mut whole = init.clone();
    let mut segments = Vec::new();
    for (index, segment) in playlist.segments.iter().enumerate() {
        let data = std::fs::read(base.join(&segment.uri)).unwrap();
        let path = scratch.join(format!("{tag}-{index}.mp4"));
        std::fs::write(&path, [init.as_slice(), &data].concat()).unwrap();
        segments.push(path);
        whole.extend_from_slice(&data);
    }
    let whole_path = scratch.join(format!("{tag}-all.mp4"));
    std::fs::write(&whole_path, whole).unwrap();
    (segments, whole_path)
}

/// Presentation times (seconds) of the keyframes of the video in `file`.
pub fn keyframe_times(file: &Path) -> Vec<f64> {
    let probed = ffprobe(
        file,
        &[
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts_time,flags",
        ],
    );
    let mut times: Vec<f64> = probed["packets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["flags"].as_str().unwrap_or("").contains('K'))
        .map(|p| p["pts_time"].as_str().unwrap().parse().unwrap())
        .collect();
    times.sort_by(f64::total_cmp);
    times
}

/// Names of the entries of `dir`, sorted.
pub fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
