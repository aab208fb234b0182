//! Black-box: files uploaded to the real server become ready assets. Clips made by the ffmpeg
//! CLI at test time are sent by one `PUT` or by tus with the connection cut half-way; once
//! `ready`, the asset's ladder is checked on disk with m3u8-rs and ffprobe (resolutions, CODECS
//! against the streams, keyframes aligned across rungs, durations within a frame of the
//! source, I-frame playlists), its pictures over HTTP (thumbnail size and the picture at
//! `time=`, the storyboard), and hls.js in headless Chromium plays it.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::vod::{
    asset_hls_dir, create_upload, keyframe_times, master, master_and_i_frames, patch,
    patch_and_hang_up, playable_files, put_asset, settled, total_seconds, tus_head, url_of,
    vod_playlist, TUS,
};
use common::{decode_cleanly, ffprobe, http_request, play_with_hlsjs, wait_for, Server};
use serde_json::{json, Value};
use sluice_media::fixtures::ffmpeg_clip;

/// Time an asset of a few seconds may take to prepare on a busy 2-core machine.
const PREPARE_TIMEOUT: Duration = Duration::from_secs(240);

/// 6 s of 854x480 at 30 fps — red, then green, then blue, 2 s each — with a 440 Hz tone.
fn colour_clip(dir: &Path) -> Vec<u8> {
    let path = ffmpeg_clip(
        dir,
        "colours.mp4",
        &[
            "-filter_complex",
            "color=c=red:s=854x480:r=30:d=2[a];color=c=lime:s=854x480:r=30:d=2[b];\
             color=c=blue:s=854x480:r=30:d=2[c];[a][b][c]concat=n=3:v=1:a=0[v]",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000:duration=6",
            "-map",
            "[v]",
            "-map",
            "0:a",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
        ],
    );
    std::fs::read(path).unwrap()
}

/// The average colour of a picture file, as ffmpeg scales it down to one pixel.
fn average_colour(picture: &Path) -> [u8; 3] {
    let output = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(picture)
        .args([
            "-vf",
            "scale=1:1",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ])
        .output()
        .expect("ffmpeg runs");
    assert!(output.status.success());
    [output.stdout[0], output.stdout[1], output.stdout[2]]
}

/// The profile_idc and level_idc of `file`'s video, as ffprobe reads them.
fn probed_avc_profile_and_level(file: &Path) -> (u8, u8) {
    let probed = ffprobe(
        file,
        &[
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=profile,level",
        ],
    );
    let stream = &probed["streams"][0];
    let profile = match stream["profile"].as_str().unwrap() {
        "High" => 100,
        "Main" => 77,
        "Baseline" | "Constrained Baseline" => 66,
        other => panic!("unexpected profile {other}"),
    };
    (profile, stream["level"].as_u64().unwrap() as u8)
}

fn event_types(server: &Server, object_id: &str) -> Vec<String> {
    let (status, events) = server.api("GET", "/v1/events?limit=100", None);
    assert_eq!(status, 200);
    events["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["object"]["id"] == object_id)
        .map(|event| event["type"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn an_uploaded_clip_becomes_an_aligned_ladder_with_pictures_that_hlsjs_plays() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    let clip = colour_clip(work.path());
    let asset_id = put_asset(&server, &clip, json!({"playback_policy": ["public"]}));
    let asset = settled(&server, &asset_id, PREPARE_TIMEOUT);
    assert_eq!(asset["status"], "ready", "{asset}");
    assert_eq!(asset["progress"], 100);
    let duration = asset["duration"].as_f64().unwrap();
    assert!((duration - 6.0).abs() <= 1.0 / 30.0 + 0.001, "{asset}");
    let tracks = asset["tracks"].as_array().unwrap();
    let video = tracks
        .iter()
        .find(|t| t["type"] == "video")
        .expect("a video track");
    assert_eq!(
        (video["width"].as_u64(), video["height"].as_u64()),
        (Some(854), Some(480))
    );
    assert!(tracks.iter().any(|t| t["type"] == "audio"), "{asset}");
    let types = event_types(&server, &asset_id);
    assert!(types.contains(&"asset.created".to_owned()), "{types:?}");
    assert!(types.contains(&"asset.ready".to_owned()), "{types:?}");

    // The ladder on disk: the default ladder's rungs up to 480p.
    let hls = asset_hls_dir(&server, &asset_id);
    let (master, i_frames) = master_and_i_frames(&hls);
    let video_variants: Vec<_> = master.variants.iter().collect();
    let sizes: Vec<_> = video_variants
        .iter()
        .map(|v| v.resolution.map(|r| (r.width, r.height)).unwrap())
        .collect();
    assert_eq!(sizes, [(854, 480), (640, 360)]);
    assert_eq!(
        i_frames.len(),
        video_variants.len(),
        "an I-frame playlist per rung"
    );
    assert_eq!(master.alternatives.len(), 1, "one audio rendition");

    let scratch = work.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let mut keyframes = Vec::new();
    for variant in &video_variants {
        let average = variant.average_bandwidth.expect("AVERAGE-BANDWIDTH");
        assert!(average > 0 && average <= variant.bandwidth, "{variant:?}");
        let playlist = vod_playlist(&hls, &variant.uri);
        let total = total_seconds(&playlist);
        assert!(
            (total - 6.0).abs() <= 1.0 / 30.0 + 0.001,
            "{} lasts {total} s",
            variant.uri
        );
        let (segments, whole) = playable_files(&hls, &variant.uri, &scratch);
        for segment in &segments {
            let first = keyframe_times(segment);
            assert!(!first.is_empty(), "{} has a keyframe", segment.display());
        }
        decode_cleanly(&whole);
        // CODECS names the profile and level the stream has.
        let codecs = variant.codecs.as_deref().unwrap();
        let avc = codecs
            .split(',')
            .find(|c| c.starts_with("avc1."))
            .expect(codecs);
        let (profile, level) = probed_avc_profile_and_level(&whole);
        assert_eq!(
            u8::from_str_radix(&avc[5..7], 16).unwrap(),
            profile,
            "{codecs}"
        );
        assert_eq!(
            u8::from_str_radix(&avc[9..11], 16).unwrap(),
            level,
            "{codecs}"
        );
        keyframes.push(keyframe_times(&whole));
    }
    assert_eq!(keyframes[0], keyframes[1], "keyframes line up across rungs");

    // Pictures: the thumbnail at 3 s is green and as wide as asked; the storyboard exists.
    let playback_id = asset["playback_ids"][0]["id"].as_str().unwrap();
    let thumbnail = server.get(&format!("/thumbnails/{playback_id}.jpg?time=3&width=160"));
    assert_eq!(thumbnail.status, 200, "{}", thumbnail.text());
    let picture = work.path().join("thumbnail.jpg");
    std::fs::write(&picture, &thumbnail.body).unwrap();
    let probed = ffprobe(&picture, &["-show_entries", "stream=width,height"]);
    assert_eq!(probed["streams"][0]["width"], 160);
    let [red, green, blue] = average_colour(&picture);
    assert!(
        green > 200 && red < 60 && blue < 60,
        "green at 3 s: {red},{green},{blue}"
    );
    let storyboard = server.get(&format!("/storyboards/{playback_id}.vtt"));
    assert_eq!(storyboard.status, 200);
    assert!(storyboard.text().starts_with("WEBVTT"));
    assert!(storyboard.text().contains("#xywh="));

    let report = play_with_hlsjs(&server.url(&format!("/hls/{playback_id}/master.m3u8")), 3.0);
    assert!(report["levels"].as_u64().unwrap_or(0) >= 2, "{report}");
}

#[test]
fn a_rotated_phone_clip_sent_by_tus_with_a_cut_comes_out_upright() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    // A landscape picture the player must show turned a quarter (phone held upright). The MP4
    // muxer turns a `rotate` tag into a display matrix only on a stream copy.
    let landscape = ffmpeg_clip(
        work.path(),
        "landscape.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x180:rate=30:duration=3",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-pix_fmt",
            "yuv420p",
        ],
    );
    let path = ffmpeg_clip(
        work.path(),
        "phone.mp4",
        &[
            "-i",
            landscape.to_str().unwrap(),
            "-c",
            "copy",
            "-metadata:s:v:0",
            "rotate=90",
        ],
    );
    let file = std::fs::read(path).unwrap();
    let upload = create_upload(&server, json!({"new_asset_settings": {}}));
    let url = url_of(&upload);
    let length = format!("Upload-Length: {}", file.len());
    let created = http_request("POST", &url, &[TUS, &length], None);
    assert_eq!(created.status, 201, "{}", created.text());
    let half = file.len() / 2;
    patch_and_hang_up(&server, &url, 0, &file, half);
    let offset: usize = wait_for("the cut PATCH to be kept", Duration::from_secs(20), || {
        let offset: usize = tus_head(&url).header("Upload-Offset")?.parse().ok()?;
        (offset > 0).then_some(offset)
    });
    let rest = patch(&url, offset, &[], &file[offset..]);
    assert_eq!(rest.status, 204, "{}", rest.text());
    let asset_id = common::vod::asset_of_upload(&server, upload["id"].as_str().unwrap());

    let asset = settled(&server, &asset_id, PREPARE_TIMEOUT);
    assert_eq!(asset["status"], "ready", "{asset}");
    let hls = asset_hls_dir(&server, &asset_id);
    let master = master(&hls);
    assert!(master.alternatives.is_empty(), "no audio rendition");
    let video = &asset["tracks"][0];
    // A quarter turn (its direction follows ffmpeg's reading of the tag).
    assert_eq!(video["rotation"].as_u64().unwrap() % 180, 90, "{asset}");
    let variant = master.variants.iter().find(|v| !v.is_i_frame).unwrap();
    let size = variant.resolution.unwrap();
    assert_eq!((size.width, size.height), (180, 320), "portrait");
    let scratch = work.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let (_, whole) = playable_files(&hls, &variant.uri, &scratch);
    decode_cleanly(&whole);
    let probed: Value = ffprobe(
        &whole,
        &["-show_entries", "stream=width,height:stream_side_data"],
    );
    assert_eq!(probed["streams"][0]["width"], 180, "{probed}");
    assert_eq!(probed["streams"][0]["height"], 320, "{probed}");
}

#[test]
fn an_asset_asking_for_av1_gets_av1_twins_in_the_same_master() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    let path = ffmpeg_clip(
        work.path(),
        "small.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x180:rate=30:duration=2",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-pix_fmt",
            "yuv420p",
        ],
    );
    let settings = json!({
        "codecs": ["h264", "av1"],
        "ladder": [{"name": "180p", "height": 180, "bitrate_kbps": 300}],
    });
    let asset_id = put_asset(&server, &std::fs::read(path).unwrap(), settings);
    let asset = settled(&server, &asset_id, PREPARE_TIMEOUT);
    assert_eq!(asset["status"], "ready", "{asset}");
    let codecs: Vec<&str> = asset["renditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["codec"].as_str().unwrap())
        .collect();
    assert_eq!(codecs, ["h264", "av1"], "{asset}");

    let hls = asset_hls_dir(&server, &asset_id);
    let master = master(&hls);
    let variants: Vec<_> = master.variants.iter().filter(|v| !v.is_i_frame).collect();
    assert_eq!(variants.len(), 2);
    assert!(variants[0].codecs.as_deref().unwrap().starts_with("avc1."));
    assert!(
        variants[1]
            .codecs
            .as_deref()
            .unwrap()
            .starts_with("av01.0."),
        "{variants:?}"
    );
    let scratch = work.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let (_, av1) = playable_files(&hls, &variants[1].uri, &scratch);
    decode_cleanly(&av1);
    let probed = ffprobe(&av1, &["-show_entries", "stream=codec_name,width,height"]);
    assert_eq!(probed["streams"][0]["codec_name"], "av1", "{probed}");
    assert_eq!(probed["streams"][0]["width"], 320, "{probed}");
}
