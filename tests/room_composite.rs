//! Black-box: a room's composite. LiveKit participants in headless Chromium each publish a
//! canvas of one colour and a sine tone; the composite is a live stream, played by hls.js, whose
//! HLS shows each colour in its grid tile (frames decoded with ffmpeg, tile positions from the
//! layout the compositor uses) and whose audio carries every tone. A fourth participant
//! re-flows the grid, one leaving frees its tile, the speaker layout follows the louder
//! participant, a participant whose browser is killed does not stall the composite. Stopping it
//! ends its session: the recording becomes a ready asset as long as the session, and the
//! nginx-rtmp simulcast target received audio and video as long too. A composite started on an
//! empty room waits for its first participant, a room has one at a time, and one whose room
//! ends stops with it.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::live::{event_types, live_stream, recorded_assets, sessions, wait_idle};
use common::participants::Participants;
use common::restream::{Nginx, LOOPBACK_TARGETS_CONFIG};
use common::{ffprobe, room_token, wait_for, Launch, Server};
use serde_json::json;
use sluice_compositor::layout::{place, Tile};
use sluice_compositor::{Layout, Member};

/// Rooms announce loopback, as the room tests do.
const ROOMS_CONFIG: &str = "[rooms]\npublic_ip = \"127.0.0.1\"\nudp_port = 0\n";
/// The canvas of the tests' composites (720p keeps the ladder light on a small machine).
const CANVAS: (u32, u32) = (1280, 720);
/// How long what the composite shows may take to reach its HLS (segments, a loaded machine).
const SHOWN_TIMEOUT: Duration = Duration::from_secs(90);

/// A participant's colour and tone.
struct Look {
    identity: &'static str,
    css: &'static str,
    rgb: [u8; 3],
    tone: f64,
}

const LOOKS: [Look; 4] = [
    Look {
        identity: "red",
        css: "#dc2828",
        rgb: [220, 40, 40],
        tone: 440.0,
    },
    Look {
        identity: "green",
        css: "#28c828",
        rgb: [40, 200, 40],
        tone: 660.0,
    },
    Look {
        identity: "blue",
        css: "#2828dc",
        rgb: [40, 40, 220],
        tone: 1000.0,
    },
    Look {
        identity: "yellow",
        css: "#dcdc28",
        rgb: [220, 220, 40],
        tone: 1300.0,
    },
];

fn look(identity: &str) -> &'static Look {
    LOOKS.iter().find(|l| l.identity == identity).unwrap()
}

/// Joins a participant with its colour and tone.
fn join(
    participants: &mut Participants,
    server: &Server,
    room_id: &str,
    identity: &str,
    gain: f64,
) {
    let look = look(identity);
    let token = room_token(server, room_id, identity);
    let reply = participants.send(
        server,
        json!({"cmd": "join", "token": token, "color": look.css, "tone": look.tone, "gain": gain}),
    );
    assert_eq!(reply["identity"], identity, "{reply}");
}

/// One picture of the composite's top rendition, as RGB.
struct Picture {
    width: u32,
    rgb: Vec<u8>,
}

impl Picture {
    /// The mean colour of a 9×9 square around a point.
    fn colour_at(&self, (x, y): (u32, u32)) -> [u8; 3] {
        let mut sum = [0u32; 3];
        let mut count = 0;
        for dy in 0..9 {
            for dx in 0..9 {
                let (px, py) = ((x + dx).saturating_sub(4), (y + dy).saturating_sub(4));
                let at = ((py * self.width + px) * 3) as usize;
                for (total, value) in sum.iter_mut().zip(&self.rgb[at..at + 3]) {
                    *total += u32::from(*value);
                }
                count += 1;
            }
        }
        sum.map(|s| (s / count) as u8)
    }
}

/// The first picture of the newest segment of the composite's top rendition (`v0`).
fn newest_picture(server: &Server, playback_id: &str) -> Option<Picture> {
    let output = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-live_start_index",
            "-1",
            "-i",
        ])
        .arg(server.url(&format!("/hls/{playback_id}/v0/index.m3u8")))
        .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .ok()?;
    let (width, height) = CANVAS;
    (output.status.success() && output.stdout.len() == (width * height * 3) as usize).then_some(
        Picture {
            width,
            rgb: output.stdout,
        },
    )
}

fn close(colour: [u8; 3], expected: [u8; 3]) -> bool {
    colour
        .iter()
        .zip(expected)
        .all(|(got, want)| got.abs_diff(want) <= 60)
}

/// The tiles the compositor places for `identities` (join order) in `layout`.
fn tiles(layout: Layout, identities: &[&str], speaker: Option<&str>) -> Vec<Tile> {
    let members: Vec<Member> = identities
        .iter()
        .map(|identity| Member {
            id: identity.to_string(),
            name: identity.to_uppercase(),
            camera: Some(format!("{identity}-camera")),
            screen_share: None,
            microphone: Some(format!("{identity}-microphone")),
        })
        .collect();
    place(layout, CANVAS.0, CANVAS.1, &members, speaker)
}

/// Waits until the composite shows each of `identities` in its tile of `layout`.
fn wait_until_shown(
    server: &Server,
    playback_id: &str,
    layout: Layout,
    identities: &[&str],
    speaker: Option<&str>,
) {
    let expected = tiles(layout, identities, speaker);
    let deadline = Instant::now() + SHOWN_TIMEOUT;
    let mut last = Vec::new();
    while Instant::now() < deadline {
        if let Some(picture) = newest_picture(server, playback_id) {
            last = expected
                .iter()
                .map(|tile| {
                    let identity = identities[tile.member];
                    let colour = picture.colour_at(tile.rect.centre());
                    (identity, tile.rect, colour)
                })
                .collect();
            if last
                .iter()
                .all(|(identity, _, colour)| close(*colour, look(identity).rgb))
            {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!(
        "the composite did not show {identities:?} in {layout:?}; last seen (identity, tile, colour): {last:?}\n{}",
        server.log()
    );
}

/// Power of `frequency` in `samples` (16 kHz mono), relative to the signal's total power.
fn tone_share(samples: &[f64], frequency: f64) -> f64 {
    let omega = 2.0 * std::f64::consts::PI * frequency / 16_000.0;
    let coefficient = 2.0 * omega.cos();
    let (mut previous, mut before) = (0.0, 0.0);
    for sample in samples {
        let current = sample + coefficient * previous - before;
        before = previous;
        previous = current;
    }
    let power = previous * previous + before * before - coefficient * previous * before;
    let total: f64 = samples.iter().map(|s| s * s).sum::<f64>() * samples.len() as f64 / 2.0;
    power / total.max(f64::EPSILON)
}

/// Two seconds of the composite's audio from its newest segment, 16 kHz mono.
fn newest_audio(server: &Server, playback_id: &str) -> Vec<f64> {
    let output = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-live_start_index",
            "-3",
            "-i",
        ])
        .arg(server.url(&format!("/hls/{playback_id}/master.m3u8")))
        .args([
            "-map", "0:a:0", "-t", "2", "-ac", "1", "-ar", "16000", "-f", "s16le", "-",
        ])
        .output()
        .expect("ffmpeg");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
        .stdout
        .chunks_exact(2)
        .map(|pair| f64::from(i16::from_le_bytes([pair[0], pair[1]])) / 32768.0)
        .collect()
}

/// Waits until the composite's newest audio carries the tone of each of `identities` (and no
/// tone where none is sent).
fn wait_until_heard(server: &Server, playback_id: &str, identities: &[&str]) {
    let deadline = Instant::now() + SHOWN_TIMEOUT;
    let mut last = Vec::new();
    while Instant::now() < deadline {
        let audio = newest_audio(server, playback_id);
        last = identities
            .iter()
            .map(|identity| (*identity, tone_share(&audio, look(identity).tone)))
            .collect();
        last.push(("none at 1700 Hz", tone_share(&audio, 1700.0)));
        let heard = last[..identities.len()]
            .iter()
            .all(|(_, share)| *share > 0.05);
        if heard && last[identities.len()].1 < 0.01 {
            return;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    panic!(
        "the composite's audio did not carry {identities:?}; last shares: {last:?}\n{}",
        server.log()
    );
}

fn newest_sequence(server: &Server, playback_id: &str) -> u64 {
    let playlist = server.media_playlist(playback_id, "v0/index.m3u8");
    playlist.media_sequence + playlist.segments.len() as u64
}

#[test]
fn a_room_composite_shows_hears_and_follows_its_participants_and_records_and_restreams_them() {
    let mut nginx = Nginx::start();
    let server = Server::launch(Launch {
        config: Some(format!("{ROOMS_CONFIG}{LOOPBACK_TARGETS_CONFIG}")),
        ..Launch::default()
    });
    let (status, room) = server.api(
        "POST",
        "/v1/rooms",
        Some(json!({"name": "panel", "empty_timeout_s": 600})),
    );
    assert_eq!(status, 201, "{room}");
    let room_id = room["data"]["id"].as_str().unwrap().to_owned();

    // Started on an empty room: the composite waits, its stream idle.
    let (status, composite) = server.api(
        "POST",
        &format!("/v1/rooms/{room_id}/composite"),
        Some(json!({
            "layout": "grid",
            "resolution": "720p",
            "outputs": {
                "hls": true,
                "record": true,
                "simulcast_targets": [{"url": nginx.url(), "stream_key": "panel"}],
            },
        })),
    );
    assert_eq!(status, 201, "{composite}");
    let composite = composite["data"].clone();
    assert_eq!(composite["status"], "waiting", "{composite}");
    let stream_id = composite["live_stream_id"].as_str().unwrap().to_owned();
    let playback_id = composite["playback_ids"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(live_stream(&server, &stream_id)["status"], "idle");

    // Three participants: the grid shows their colours, the mix carries their tones.
    let mut participants = Participants::start(&server, &room_id);
    for identity in ["red", "green", "blue"] {
        join(&mut participants, &server, &room_id, identity, 0.2);
    }
    wait_until_shown(
        &server,
        &playback_id,
        Layout::Grid,
        &["red", "green", "blue"],
        None,
    );
    let (_, running) = server.api("GET", &format!("/v1/rooms/{room_id}/composite"), None);
    assert_eq!(running["data"]["status"], "active", "{running}");
    wait_until_heard(&server, &playback_id, &["red", "green", "blue"]);
    // A player plays it as any live stream.
    let master = server.url(&format!("/hls/{playback_id}/master.m3u8"));
    let played = common::watch_live("hlsjs", &master, 10);
    assert!(
        played["maxTime"].as_f64().unwrap_or(0.0) > 5.0,
        "hls.js played the composite: {played}"
    );

    // A fourth re-flows the grid; one leaving frees its tile.
    join(&mut participants, &server, &room_id, "yellow", 0.2);
    wait_until_shown(
        &server,
        &playback_id,
        Layout::Grid,
        &["red", "green", "blue", "yellow"],
        None,
    );
    participants.send(&server, json!({"cmd": "leave", "index": 0}));
    wait_until_shown(
        &server,
        &playback_id,
        Layout::Grid,
        &["green", "blue", "yellow"],
        None,
    );

    // The speaker layout: the one who talks loudest takes the stage.
    let (status, patched) = server.api(
        "PATCH",
        &format!("/v1/rooms/{room_id}/composite"),
        Some(json!({"layout": "speaker"})),
    );
    assert_eq!(status, 200, "{patched}");
    for (index, gain) in [(1, 0.0), (2, 0.5), (3, 0.0)] {
        participants.send(
            &server,
            json!({"cmd": "gain", "index": index, "gain": gain}),
        );
    }
    wait_until_shown(
        &server,
        &playback_id,
        Layout::Speaker,
        &["green", "blue", "yellow"],
        Some("blue"),
    );

    // A participant whose browser dies: the composite goes on.
    participants.send(&server, json!({"cmd": "kill", "index": 3}));
    let before = newest_sequence(&server, &playback_id);
    wait_for(
        "segments after a participant's browser died",
        SHOWN_TIMEOUT,
        || (newest_sequence(&server, &playback_id) >= before + 3).then_some(()),
    );

    // Stopped: the session ends, the recording is sealed, the target got it all.
    let (status, body) = server.api("DELETE", &format!("/v1/rooms/{room_id}/composite"), None);
    assert_eq!(status, 204, "{body}");
    wait_idle(&server, &stream_id, Duration::from_secs(60));
    let session = sessions(&server, &stream_id)[0].clone();
    let session_seconds =
        (chrono::DateTime::parse_from_rfc3339(session["ended_at"].as_str().unwrap()).unwrap()
            - chrono::DateTime::parse_from_rfc3339(session["started_at"].as_str().unwrap())
                .unwrap())
        .num_milliseconds() as f64
            / 1000.0;
    let asset = wait_for(
        "the recording to be ready",
        Duration::from_secs(120),
        || {
            recorded_assets(&server, &stream_id)
                .into_iter()
                .find(|asset| asset["status"] == "ready")
        },
    );
    let recorded = asset["duration"].as_f64().unwrap();
    assert!(
        (recorded - session_seconds).abs() < 4.0,
        "recording {recorded} s, session {session_seconds} s"
    );
    let (_, stopped) = server.api("GET", &format!("/v1/rooms/{room_id}/composites"), None);
    assert_eq!(stopped["data"][0]["status"], "stopped", "{stopped}");
    let types = event_types(&server, &room_id);
    for expected in ["room.composite.started", "room.composite.stopped"] {
        assert!(
            types.iter().any(|t| t == expected),
            "{expected} in {types:?}"
        );
    }

    nginx.stop();
    let probe = ffprobe(
        &nginx.recording("panel"),
        &["-show_entries", "stream=codec_type:format=duration"],
    );
    let kinds: Vec<&str> = probe["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["codec_type"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"video") && kinds.contains(&"audio"),
        "{probe}"
    );
    let restreamed: f64 = probe["format"]["duration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (restreamed - session_seconds).abs() < 5.0,
        "restreamed {restreamed} s, session {session_seconds} s"
    );
}

#[test]
fn a_composite_is_started_once_per_room_and_stops_when_its_room_ends() {
    let server = Server::launch(Launch {
        config: Some(ROOMS_CONFIG.to_owned()),
        ..Launch::default()
    });
    let (status, room) = server.api(
        "POST",
        "/v1/rooms",
        Some(json!({"name": "short", "empty_timeout_s": 2})),
    );
    assert_eq!(status, 201, "{room}");
    let room_id = room["data"]["id"].as_str().unwrap().to_owned();
    let body = json!({"resolution": "720p", "outputs": {"hls": true}});
    let (status, composite) = server.api(
        "POST",
        &format!("/v1/rooms/{room_id}/composite"),
        Some(body.clone()),
    );
    assert_eq!(status, 201, "{composite}");
    let stream_id = composite["data"]["live_stream_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let playback_id = composite["data"]["playback_ids"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, again) = server.api(
        "POST",
        &format!("/v1/rooms/{room_id}/composite"),
        Some(body),
    );
    assert_eq!(status, 409, "{again}");

    let mut participants = Participants::start(&server, &room_id);
    join(&mut participants, &server, &room_id, "red", 0.2);
    wait_until_shown(&server, &playback_id, Layout::Grid, &["red"], None);

    // The last one leaves: after its empty timeout the room ends, and its composite with it.
    participants.send(&server, json!({"cmd": "leave", "index": 0}));
    wait_idle(&server, &stream_id, Duration::from_secs(60));
    let stopped = wait_for("the composite to stop", Duration::from_secs(30), || {
        let (_, composites) = server.api("GET", &format!("/v1/rooms/{room_id}/composites"), None);
        (composites["data"][0]["status"] == "stopped").then_some(composites)
    });
    assert!(!stopped["data"][0]["stopped_at"].is_null(), "{stopped}");
    let (status, none) = server.api("GET", &format!("/v1/rooms/{room_id}/composite"), None);
    assert_eq!(status, 404, "{none}");
    assert!(event_types(&server, &room_id)
        .iter()
        .any(|t| t == "room.composite.stopped"));
}
