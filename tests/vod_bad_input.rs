//! Black-box: bad and odd files uploaded to the real server. A zero-byte file is refused as it
//! arrives (the upload stays open for a real one). A text file named `.mp4`, an MP4 cut off
//! before its `moov`, a header claiming a 100000×100000 picture, 64 audio streams, and ten
//! hours of silent audio under a single video frame each end as an `errored` asset with a
//! reason a person understands, or as a correct asset where the file is merely odd; a good clip uploaded among them still becomes ready, the server keeps running,
//! and no working file is left behind.

mod common;

use std::path::Path;
use std::time::Duration;

use common::vod::{create_upload, put_asset, settled, url_of};
use common::{http_request, Server};
use serde_json::{json, Value};
use sluice_media::fixtures::ffmpeg_clip;

/// Time the whole batch may take to settle on a busy 2-core machine.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(300);

/// A small, good H.264/AAC clip.
fn good_clip(dir: &Path) -> Vec<u8> {
    let path = ffmpeg_clip(
        dir,
        "good.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x180:rate=25:duration=2",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=2",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
        ],
    );
    std::fs::read(path).unwrap()
}

/// An MP4 written with its `moov` at the end (ffmpeg's default), cut at 60 %.
fn truncated_mp4(dir: &Path) -> Vec<u8> {
    let whole = std::fs::read(ffmpeg_clip(
        dir,
        "whole.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x180:rate=25:duration=3",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
        ],
    ))
    .unwrap();
    let moov = whole.windows(4).position(|w| w == b"moov").unwrap();
    assert!(moov > whole.len() / 2, "the moov box comes last");
    whole[..whole.len() * 6 / 10].to_vec()
}

/// A one-second MJPEG AVI whose BITMAPINFOHEADER claims 100000×100000 pictures.
fn huge_header_avi(dir: &Path) -> Vec<u8> {
    let mut avi = std::fs::read(ffmpeg_clip(
        dir,
        "small.avi",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=64x64:rate=5:duration=1",
            "-c:v",
            "mjpeg",
        ],
    ))
    .unwrap();
    // strf: "strf", size, then biSize, biWidth, biHeight (little-endian 32-bit).
    let strf = avi.windows(4).position(|w| w == b"strf").unwrap();
    for offset in [strf + 12, strf + 16] {
        avi[offset..offset + 4].copy_from_slice(&100_000i32.to_le_bytes());
    }
    avi
}

/// One second of tone in 64 audio streams (Matroska, PCM).
fn many_streams(dir: &Path) -> Vec<u8> {
    let mut args: Vec<String> = ["-f", "lavfi", "-i", "sine=duration=1"]
        .map(String::from)
        .to_vec();
    for _ in 0..64 {
        args.extend(["-map".to_owned(), "0:a".to_owned()]);
    }
    args.extend(["-c:a", "pcm_s16le"].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    std::fs::read(ffmpeg_clip(dir, "streams.mkv", &args)).unwrap()
}

/// Ten hours of silent AAC under a single black video frame (MP4). The audio is one silent
/// ADTS frame repeated, so making the file costs no encoding.
fn ten_hours_of_silence(dir: &Path) -> Vec<u8> {
    let one = std::fs::read(ffmpeg_clip(
        dir,
        "second.aac",
        &[
            "-f",
            "lavfi",
            "-i",
            "anullsrc=r=8000:cl=mono",
            "-t",
            "1",
            "-c:a",
            "aac",
            "-f",
            "adts",
        ],
    ))
    .unwrap();
    // ADTS frames carry their length in bits 30..43 of their header; skip the encoder's first
    // frames (priming) and repeat a steady one.
    let mut frames = Vec::new();
    let mut at = 0;
    while at + 7 <= one.len() {
        let length = (usize::from(one[at + 3] & 3) << 11)
            | (usize::from(one[at + 4]) << 3)
            | (usize::from(one[at + 5]) >> 5);
        frames.push(&one[at..at + length]);
        at += length;
    }
    let frame = frames[3];
    let count = 10 * 3600 * 8000 / 1024;
    std::fs::write(dir.join("long.aac"), frame.repeat(count)).unwrap();
    let picture = ffmpeg_clip(
        dir,
        "picture.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "color=c=black:s=320x240:r=30",
            "-frames:v",
            "1",
            "-c:v",
            "libx264",
        ],
    );
    let long = dir.join("long.aac");
    std::fs::read(ffmpeg_clip(
        dir,
        "ten-hours.mp4",
        &[
            "-i",
            picture.to_str().unwrap(),
            "-i",
            long.to_str().unwrap(),
            "-c",
            "copy",
            "-map",
            "0:v",
            "-map",
            "1:a",
        ],
    ))
    .unwrap()
}

/// The error message of an errored asset.
fn error_of(asset: &Value) -> String {
    assert_eq!(asset["status"], "errored", "{asset}");
    asset["error"]["message"].as_str().unwrap().to_owned()
}

#[test]
fn bad_files_error_clearly_while_good_ones_go_through() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    let settings = json!({"playback_policy": ["public"]});

    // An empty file is refused as it arrives; the upload waits for a real one.
    let upload = create_upload(&server, json!({ "new_asset_settings": settings }));
    let empty = http_request("PUT", &url_of(&upload), &[], Some(&[]));
    assert_eq!(empty.status, 400, "{}", empty.text());
    assert!(
        empty.text().contains("the file is empty"),
        "{}",
        empty.text()
    );
    let (_, upload) = server.api(
        "GET",
        &format!("/v1/uploads/{}", upload["id"].as_str().unwrap()),
        None,
    );
    assert_eq!(upload["data"]["status"], "waiting", "{upload}");

    let text = b"This is a shopping list, not a video.\nEggs\nMilk\n".repeat(20);
    let uploads: Vec<(&str, Vec<u8>)> = vec![
        ("text named .mp4", text),
        ("truncated mp4", truncated_mp4(work.path())),
        ("good", good_clip(work.path())),
        ("huge header", huge_header_avi(work.path())),
        ("64 audio streams", many_streams(work.path())),
        ("ten hours of silence", ten_hours_of_silence(work.path())),
    ];
    let assets: Vec<(&str, String)> = uploads
        .iter()
        .map(|(name, body)| (*name, put_asset(&server, body, settings.clone())))
        .collect();
    let settled: Vec<(&str, Value)> = assets
        .iter()
        .map(|(name, id)| (*name, settled(&server, id, SETTLE_TIMEOUT)))
        .collect();
    for (name, asset) in &settled {
        eprintln!("{name}: {} {}", asset["status"], asset["error"]);
    }
    let outcome = |wanted: &str| &settled.iter().find(|(name, _)| *name == wanted).unwrap().1;

    let text = error_of(outcome("text named .mp4"));
    assert!(text.contains("not a media file"), "{text}");
    let truncated = error_of(outcome("truncated mp4"));
    assert!(truncated.contains("damaged or truncated"), "{truncated}");
    let streams = error_of(outcome("64 audio streams"));
    assert!(
        streams.contains("64 streams") && streams.contains("16"),
        "{streams}"
    );
    let silence = error_of(outcome("ten hours of silence"));
    assert!(
        silence.contains("the video lasts 0.03 s but the file lasts 10:00:00"),
        "{silence}"
    );

    // The header lies; the pictures are 64×64 and become a correct asset.
    let huge = outcome("huge header");
    assert_eq!(huge["status"], "ready", "{huge}");
    assert_eq!(huge["renditions"][0]["width"], 64, "{huge}");

    let good = outcome("good");
    assert_eq!(good["status"], "ready", "{good}");
    let playback_id = good["playback_ids"][0]["id"].as_str().unwrap();
    let master = server.get(&format!("/hls/{playback_id}/master.m3u8"));
    assert_eq!(master.status, 200);

    assert_eq!(
        server.get("/healthz").status,
        200,
        "the server kept running"
    );
    let work_dir = server.data_dir.path().join("work");
    let left: Vec<_> = std::fs::read_dir(&work_dir)
        .map(|entries| entries.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "working files left: {left:?}");
}
