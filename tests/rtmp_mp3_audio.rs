//! Black-box: a publisher sending MP3 audio (what the ffmpeg CLI's FLV muxer sends when no
//! `-c:a` is given) gets an AAC-LC audio rendition that players can decode.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{decode_cleanly, ffprobe, wait_for, Server};
use m3u8_rs::{AlternativeMediaType, Playlist};
use serde_json::json;

const PUBLISH_SECONDS: u32 = 8;

#[test]
fn mp3_audio_is_transcoded_to_an_aac_rendition() {
    let server = Server::start();
    let stream = server.create_live_stream(json!({"name": "mp3 audio", "ladder": ["source"]}));
    let playback_id = stream["playback_ids"][0]["id"].as_str().unwrap().to_owned();
    let id = stream["id"].as_str().unwrap().to_owned();
    let mut publisher = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i"])
        .arg(format!(
            "testsrc2=size=640x360:rate=30:duration={PUBLISH_SECONDS}"
        ))
        .args(["-f", "lavfi", "-i"])
        .arg(format!(
            "sine=frequency=440:sample_rate=44100:duration={PUBLISH_SECONDS}"
        ))
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "60"])
        .args(["-pix_fmt", "yuv420p", "-ac", "2"])
        .args(["-c:a", "libmp3lame", "-b:a", "128k", "-f", "flv"])
        .arg(server.rtmp_url(stream["stream_key"].as_str().unwrap()))
        .stdin(Stdio::null())
        .spawn()
        .expect("start ffmpeg");

    let input = wait_for(
        "the session input description",
        Duration::from_secs(20),
        || {
            let (_, body) = server.api("GET", &format!("/v1/live-streams/{id}"), None);
            let input = &body["data"]["current_session"]["input"];
            (!input.is_null()).then(|| input.clone())
        },
    );
    assert_eq!(input["audio_codec"], "mp3", "input: {input}");
    assert_eq!(input["audio_sample_rate"], 44_100, "input: {input}");
    assert_eq!(input["audio_channels"], 2, "input: {input}");
    assert!(publisher.wait().unwrap().success(), "ffmpeg publish failed");

    server.ended_playlist(&playback_id, "a0/index.m3u8");
    let master_text = server
        .get(&format!("/hls/{playback_id}/master.m3u8"))
        .text();
    let Ok(Playlist::MasterPlaylist(master)) = m3u8_rs::parse_playlist_res(master_text.as_bytes())
    else {
        panic!("master.m3u8 is not a multivariant playlist: {master_text}");
    };
    let audio = master
        .alternatives
        .iter()
        .find(|media| media.media_type == AlternativeMediaType::Audio)
        .unwrap_or_else(|| panic!("an EXT-X-MEDIA audio rendition: {master_text}"));
    // The master playlist hands the viewer a playback session (`?vs=`) on each URI.
    let audio_uri = audio.uri.as_deref().unwrap_or_default();
    assert_eq!(audio_uri.split('?').next(), Some("a0/index.m3u8"));
    for variant in &master.variants {
        let codecs = variant.codecs.as_deref().unwrap_or_default();
        assert!(codecs.contains("mp4a.40.2"), "AAC-LC in {codecs}");
    }

    let playlist = server.media_playlist(&playback_id, "a0/index.m3u8");
    assert!(playlist.end_list);
    let init_uri = &playlist.segments[0].map.as_ref().expect("EXT-X-MAP").uri;
    let init = server.get(&format!("/hls/{playback_id}/a0/{init_uri}"));
    assert_eq!(init.status, 200);
    let mut whole = init.body;
    for segment in &playlist.segments {
        let body = server.get(&format!("/hls/{playback_id}/a0/{}", segment.uri));
        assert_eq!(body.status, 200, "segment {}", segment.uri);
        whole.extend_from_slice(&body.body);
    }
    let work = tempfile::tempdir().unwrap();
    let path = work.path().join("audio.mp4");
    std::fs::write(&path, whole).unwrap();

    let probe = ffprobe(&path, &["-show_streams", "-show_format"]);
    let stream = &probe["streams"][0];
    assert_eq!(stream["codec_name"], "aac", "{probe}");
    assert_eq!(stream["profile"], "LC", "{probe}");
    assert_eq!(stream["sample_rate"], "44100", "{probe}");
    assert_eq!(stream["channels"], 2, "{probe}");
    let seconds: f64 = probe["format"]["duration"]
        .as_str()
        .expect("duration")
        .parse()
        .unwrap();
    assert!(
        (seconds - f64::from(PUBLISH_SECONDS)).abs() < 1.5,
        "audio lasts {seconds} s of {PUBLISH_SECONDS}"
    );
    decode_cleanly(&path);
}
