//! Black-box: ffmpeg publishes over RTMP; the HLS ladder that comes out is checked with ffprobe
//! and decoded with ffmpeg, the way a viewer's player would meet it.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::live::{sessions, wait_idle};
use common::{decode_cleanly, ffprobe, wait_for, Publisher, Server};
use m3u8_rs::{MasterPlaylist, Playlist};
use serde_json::{json, Value};

const PUBLISH_SECONDS: u32 = 10;

fn master(server: &Server, playback_id: &str) -> Option<MasterPlaylist> {
    let response = server.get(&format!("/hls/{playback_id}/master.m3u8"));
    if response.status != 200 {
        return None;
    }
    match m3u8_rs::parse_playlist_res(&response.body) {
        Ok(Playlist::MasterPlaylist(master)) => Some(master),
        other => panic!("master.m3u8 is not a multivariant playlist: {other:?}"),
    }
}

/// Joins a relative URI onto the directory of the playlist that referenced it.
fn resolve(playlist_uri: &str, uri: &str) -> String {
    match playlist_uri.rsplit_once('/') {
        Some((dir, _)) => format!("{dir}/{uri}"),
        None => uri.to_owned(),
    }
}

/// Downloads a rendition: its init segment and every media segment, as files in `dir`.
/// Returns the paths of `init + segment` concatenations, one per segment, and one whole file.
fn download_rendition(
    server: &Server,
    playback_id: &str,
    playlist_uri: &str,
    dir: &Path,
) -> (Vec<std::path::PathBuf>, std::path::PathBuf) {
    let playlist = server.media_playlist(playback_id, playlist_uri);
    assert!(
        playlist.end_list,
        "{playlist_uri} has no EXT-X-ENDLIST after the stream ended"
    );
    let map = playlist.segments[0]
        .map
        .as_ref()
        .expect("EXT-X-MAP on the first segment");
    let init = server.get(&format!(
        "/hls/{playback_id}/{}",
        resolve(playlist_uri, &map.uri)
    ));
    assert_eq!(init.status, 200);
    assert_eq!(init.header("content-type"), Some("video/mp4"));
    let mut whole = init.body.clone();
    let mut per_segment = Vec::new();
    for (index, segment) in playlist.segments.iter().enumerate() {
        assert!(
            segment.duration <= playlist.target_duration as f32 + 0.5,
            "segment {index} of {playlist_uri} lasts {} s, over the target duration",
            segment.duration
        );
        let body = server.get(&format!(
            "/hls/{playback_id}/{}",
            resolve(playlist_uri, &segment.uri)
        ));
        assert_eq!(body.status, 200, "segment {}", segment.uri);
        assert!(
            body.header("cache-control")
                .unwrap_or_default()
                .contains("max-age"),
            "segments carry a long Cache-Control"
        );
        let path = dir.join(format!("segment-{index}.mp4"));
        std::fs::write(&path, [init.body.as_slice(), body.body.as_slice()].concat()).unwrap();
        per_segment.push(path);
        whole.extend_from_slice(&body.body);
    }
    let whole_path = dir.join("whole.mp4");
    std::fs::write(&whole_path, whole).unwrap();
    (per_segment, whole_path)
}

/// The `avc1.PPCCLL` string ffprobe's view of a stream implies (profile and level only; the
/// constraint byte is compared through the profile name).
fn avc_profile_and_level(stream: &Value) -> (u8, u8) {
    let profile = match stream["profile"].as_str().unwrap_or_default() {
        "High" => 0x64,
        "Main" => 0x4d,
        "Baseline" | "Constrained Baseline" => 0x42,
        other => panic!("unexpected H.264 profile {other}"),
    };
    (profile, stream["level"].as_u64().expect("level") as u8)
}

#[test]
fn ffmpeg_publish_becomes_an_aligned_adaptive_ladder() {
    let server = Server::start();
    let stream = server.create_live_stream(json!({"name": "ladder test"}));
    assert_eq!(stream["status"], "idle");
    assert_eq!(
        stream["rtmp_url"],
        format!("rtmp://127.0.0.1:{}/live", server.rtmp_port)
    );
    let playback_id = stream["playback_ids"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(stream["playback_ids"][0]["policy"], "public");
    let key = stream["stream_key"].as_str().unwrap();
    let id = stream["id"].as_str().unwrap();

    let publisher = Publisher::start(&server.rtmp_url(key), "854x480", 30, PUBLISH_SECONDS);

    let live = wait_for(
        "the live stream to turn active",
        Duration::from_secs(20),
        || {
            let (_, body) = server.api("GET", &format!("/v1/live-streams/{id}"), None);
            (body["data"]["status"] == "active"
                && !body["data"]["current_session"]["input"].is_null())
            .then(|| body["data"].clone())
        },
    );
    let input = &live["current_session"]["input"];
    assert_eq!(input["width"], 854, "input description: {live}");
    assert_eq!(input["height"], 480);

    let first_master = wait_for("the master playlist", Duration::from_secs(30), || {
        master(&server, &playback_id)
    });
    let response = server.get(&format!("/hls/{playback_id}/master.m3u8"));
    assert_eq!(
        response.header("content-type"),
        Some("application/vnd.apple.mpegurl")
    );
    assert_eq!(response.header("access-control-allow-origin"), Some("*"));
    assert!(
        first_master.variants.len() >= 2,
        "an adaptive ladder: {first_master:?}"
    );

    assert!(publisher.wait(), "ffmpeg publish failed");
    wait_idle(&server, id, Duration::from_secs(30));

    let master = master(&server, &playback_id).expect("master playlist after the end");
    let audio = master
        .alternatives
        .iter()
        .find(|media| media.media_type == m3u8_rs::AlternativeMediaType::Audio)
        .expect("audio as an EXT-X-MEDIA rendition");
    let work = tempfile::tempdir().unwrap();
    let mut keyframe_times: BTreeMap<String, Vec<i64>> = BTreeMap::new();

    for (index, variant) in master.variants.iter().enumerate() {
        let codecs = variant.codecs.as_deref().expect("CODECS");
        let resolution = variant.resolution.expect("RESOLUTION");
        assert!(
            variant.frame_rate.is_some(),
            "FRAME-RATE on {}",
            variant.uri
        );
        assert!(
            variant.average_bandwidth.is_some(),
            "AVERAGE-BANDWIDTH on {}",
            variant.uri
        );
        assert!(variant.bandwidth >= variant.average_bandwidth.unwrap());
        assert!(codecs.contains("mp4a.40.2"), "audio codec in {codecs}");
        assert_eq!(variant.audio.as_deref(), Some(audio.group_id.as_str()));
        assert!(resolution.height <= 480, "never above the source");

        let dir = work.path().join(format!("v{index}"));
        std::fs::create_dir_all(&dir).unwrap();
        let (segments, whole) = download_rendition(&server, &playback_id, &variant.uri, &dir);
        assert!(
            segments.len() >= 3,
            "{} segments in {}",
            segments.len(),
            variant.uri
        );

        let probe = ffprobe(&whole, &["-show_streams"]);
        let video = &probe["streams"][0];
        assert_eq!(video["codec_name"], "h264");
        assert_eq!(video["width"].as_u64(), Some(resolution.width));
        assert_eq!(video["height"].as_u64(), Some(resolution.height));
        let (profile, level) = avc_profile_and_level(video);
        let declared = codecs
            .split(',')
            .find(|codec| codec.starts_with("avc1."))
            .expect("avc1 codec string");
        assert_eq!(
            &declared[5..7],
            format!("{profile:02x}"),
            "profile in {declared}"
        );
        assert_eq!(
            &declared[9..11],
            format!("{level:02x}"),
            "level in {declared}"
        );

        let mut starts = Vec::new();
        for segment in &segments {
            let packets = ffprobe(
                segment,
                &[
                    "-select_streams",
                    "v",
                    "-show_entries",
                    "packet=pts,flags",
                    "-read_intervals",
                    "%+#1",
                ],
            );
            let first = &packets["packets"][0];
            assert!(
                first["flags"].as_str().unwrap_or_default().starts_with('K'),
                "{} does not start with a keyframe",
                segment.display()
            );
            starts.push(first["pts"].as_i64().expect("pts"));
        }
        keyframe_times.insert(variant.uri.clone(), starts);
        decode_cleanly(&whole);
    }

    let mut rungs = keyframe_times.values();
    let reference = rungs.next().unwrap();
    let frames_dropped = &sessions(&server, id)[0]["frames_dropped"];
    for other in rungs {
        assert_eq!(
            other, reference,
            "every rung cuts its segments at the same instants ({frames_dropped} frames dropped \
             by a ladder that did not keep up in real time): {keyframe_times:?}"
        );
    }

    let dir = work.path().join("audio");
    std::fs::create_dir_all(&dir).unwrap();
    let audio_uri = audio.uri.as_deref().expect("audio rendition URI");
    let (_, audio_whole) = download_rendition(&server, &playback_id, audio_uri, &dir);
    let probe = ffprobe(&audio_whole, &["-show_streams", "-show_format"]);
    assert_eq!(probe["streams"][0]["codec_name"], "aac");
    let seconds: f64 = probe["format"]["duration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (seconds - f64::from(PUBLISH_SECONDS)).abs() < 2.5,
        "audio lasts {seconds} s of {PUBLISH_SECONDS}"
    );
    decode_cleanly(&audio_whole);
}

/// The media playlist of the stream's first rendition once a live session's lists `segments`
/// segments (an ended session's playlist does not count).
fn first_rendition_playlist(
    server: &Server,
    playback_id: &str,
    segments: usize,
) -> m3u8_rs::MediaPlaylist {
    wait_for("segments in the playlist", Duration::from_secs(60), || {
        let response = server.get(&format!("/hls/{playback_id}/v0/index.m3u8"));
        if response.status != 200 {
            return None;
        }
        let playlist = m3u8_rs::parse_media_playlist_res(&response.body).ok()?;
        (!playlist.end_list && playlist.segments.len() >= segments).then_some(playlist)
    })
}

#[test]
fn a_reduced_latency_stream_is_cut_into_one_second_segments_from_its_next_session() {
    let server = Server::start();
    let stream = server.create_live_stream(json!({
        "name": "reduced", "ladder": ["360p"], "latency_mode": "reduced"
    }));
    let playback_id = stream["playback_ids"][0]["id"].as_str().unwrap();
    let key = stream["stream_key"].as_str().unwrap();
    let id = stream["id"].as_str().unwrap();

    let publisher = Publisher::start(&server.rtmp_url(key), "640x360", 30, 12);
    let reduced = first_rendition_playlist(&server, playback_id, 4);
    assert_eq!(reduced.target_duration, 1);
    for segment in &reduced.segments[..reduced.segments.len() - 1] {
        // Each cut at the forced IDR a second after the last (the publisher's own GOP is 2 s).
        assert!(
            (0.75..=1.25).contains(&segment.duration),
            "a {} s segment: {reduced:?}",
            segment.duration
        );
    }
    // Changing the mode while live applies from the next session.
    let (status, _) = server.api(
        "PATCH",
        &format!("/v1/live-streams/{id}"),
        Some(json!({"latency_mode": "standard"})),
    );
    assert_eq!(status, 200);
    let still = first_rendition_playlist(&server, playback_id, 5);
    assert_eq!(still.target_duration, 1, "the live session keeps its mode");
    assert!(publisher.wait(), "ffmpeg publish failed");
    wait_idle(&server, id, Duration::from_secs(30));

    let publisher = Publisher::start(&server.rtmp_url(key), "640x360", 30, 8);
    let standard = first_rendition_playlist(&server, playback_id, 2);
    assert_eq!(standard.target_duration, 2);
    assert!(
        standard.segments[0].duration > 1.5,
        "2 s segments: {standard:?}"
    );
    assert!(publisher.wait(), "ffmpeg publish failed");
}

/// The picture types (`I`, `P`, `B`) of the first rendition of an ended stream, in order.
fn picture_types(server: &Server, playback_id: &str) -> Vec<String> {
    let work = tempfile::tempdir().unwrap();
    let (_, whole) = download_rendition(server, playback_id, "v0/index.m3u8", work.path());
    let probe = ffprobe(
        &whole,
        &["-select_streams", "v", "-show_entries", "frame=pict_type"],
    );
    probe["frames"]
        .as_array()
        .expect("frames")
        .iter()
        .map(|frame| frame["pict_type"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn a_low_latency_stream_is_encoded_without_b_frames_unlike_a_standard_one() {
    let server = Server::start();
    let streams: Vec<Value> = ["low", "standard"]
        .iter()
        .map(|mode| {
            server.create_live_stream(json!({
                "name": mode, "ladder": ["360p"], "latency_mode": mode
            }))
        })
        .collect();
    let publishers: Vec<Publisher> = streams
        .iter()
        .map(|stream| {
            let key = stream["stream_key"].as_str().unwrap();
            Publisher::start(&server.rtmp_url(key), "640x360", 30, 5)
        })
        .collect();
    for publisher in publishers {
        assert!(publisher.wait(), "ffmpeg publish failed");
    }
    let types: Vec<Vec<String>> = streams
        .iter()
        .map(|stream| {
            wait_idle(
                &server,
                stream["id"].as_str().unwrap(),
                Duration::from_secs(30),
            );
            picture_types(&server, stream["playback_ids"][0]["id"].as_str().unwrap())
        })
        .collect();
    let (low, standard) = (&types[0], &types[1]);
    assert!(low.len() >= 60, "{} pictures", low.len());
    assert!(
        !low.iter().any(|kind| kind == "B"),
        "no B-frames in low latency: {low:?}"
    );
    assert!(
        standard.iter().any(|kind| kind == "B"),
        "the standard stream keeps its B-frames: {standard:?}"
    );
}
