//! Black-box: GStreamer's `rtmp2sink` (a second, independent RTMP client implementation)
//! publishes H.264 + AAC; the ladder comes out playable.

mod common;

use common::{decode_cleanly, Server};
use serde_json::json;
use std::process::{Command, Stdio};

#[test]
fn gstreamer_rtmp2sink_publish_becomes_a_playable_ladder() {
    let server = Server::start();
    let stream =
        server.create_live_stream(json!({"name": "gstreamer", "ladder": ["source", "360p"]}));
    let playback_id = stream["playback_ids"][0]["id"].as_str().unwrap();
    let location = server.rtmp_url(stream["stream_key"].as_str().unwrap());
    let pipeline = format!(
        "videotestsrc is-live=true num-buffers=240 \
         ! video/x-raw,width=854,height=480,framerate=30/1 \
         ! x264enc key-int-max=60 bitrate=1200 speed-preset=ultrafast ! h264parse \
         ! flvmux name=mux streamable=true ! rtmp2sink location={location} \
         audiotestsrc is-live=true num-buffers=375 ! audioconvert ! audioresample \
         ! avenc_aac ! aacparse ! mux."
    );
    let status = Command::new("gst-launch-1.0")
        .args(["-q", "-e"])
        .args(pipeline.split_whitespace())
        .stdin(Stdio::null())
        .status()
        .expect("gst-launch-1.0 (make test installs GStreamer)");
    assert!(status.success(), "GStreamer publish failed");

    // The audio playlist is the last one a session ends: then every rendition has ended.
    server.ended_playlist(playback_id, "a0/index.m3u8");
    let master = server
        .get(&format!("/hls/{playback_id}/master.m3u8"))
        .text();
    assert_eq!(master.matches("#EXT-X-STREAM-INF").count(), 2, "{master}");
    assert!(master.contains("RESOLUTION=854x480"), "{master}");
    assert!(master.contains("RESOLUTION=640x360"), "{master}");
    assert!(master.contains("mp4a.40.2"), "{master}");

    // ffmpeg plays the whole master playlist (video and audio) without an error.
    decode_cleanly(server.url(&format!("/hls/{playback_id}/master.m3u8")));
}
