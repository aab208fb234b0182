//! Black-box: live transcription of a room. A room created with `transcription` runs with two
//! LiveKit participants in headless Chromium: one's microphone plays speech made by espeak-ng
//! (`-v en-us -s 130`) over and over, the other's is silent. The silent one's SDK receives the
//! speaker's lines as `TranscriptionReceived` segments (partial ones first, then final ones
//! under the same id) naming the speaker and their microphone track. Stopping the
//! transcription stops the lines and publishes `room.transcription.stopped`; starting it again
//! transcribes the same session on. The room's composite has live captions made of the same
//! lines, led by the speaker's name. When everyone leaves, the room ends and its transcription
//! with it; the session's transcript then holds the speaker's lines in order (WebVTT, SRT, text
//! and JSON), and nothing from the silent one, and room search finds a spoken word in it.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::live::event_types;
use common::participants::Participants;
use common::speech::spoken;
use common::{room_token, wait_for, Launch, Server};
use serde_json::{json, Value};

/// Rooms announce loopback, as the room tests do.
const ROOMS_CONFIG: &str = "[rooms]\npublic_ip = \"127.0.0.1\"\nudp_port = 0\n";
/// What the speaker says.
const SPEECH: &str = "Welcome to the garden show. Today we are planting tomatoes and \
    sunflowers near the river.";
/// How long speech may take to come back as lines on a loaded 2-core machine.
const HEARD_TIMEOUT: Duration = Duration::from_secs(120);

fn words(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| word.len() > 2)
        .map(str::to_lowercase)
        .collect()
}

/// Whether `texts` together hold at least 60 % of the words spoken.
fn recalls_the_speech<'a>(texts: impl IntoIterator<Item = &'a str>) -> bool {
    let spoken = words(SPEECH);
    let heard = words(&texts.into_iter().collect::<Vec<_>>().join(" "));
    spoken.intersection(&heard).count() * 10 >= spoken.len() * 6
}

/// The transcription segments the participant at `index` received.
fn segments(participants: &mut Participants, server: &Server, index: u64) -> Vec<Value> {
    let reply = participants.send(server, json!({"cmd": "segments", "index": index}));
    reply["segments"].as_array().unwrap().clone()
}

fn finals(segments: &[Value]) -> Vec<&Value> {
    segments.iter().filter(|s| s["final"] == true).collect()
}

#[test]
fn a_transcribed_room_sends_each_speakers_lines_to_its_clients_and_keeps_the_sessions_transcript() {
    let dir = tempfile::tempdir().unwrap();
    let speech = spoken(dir.path(), SPEECH);
    let server = Server::launch(Launch {
        config: Some(ROOMS_CONFIG.to_owned()),
        ..Launch::default()
    });
    let (status, room) = server.api(
        "POST",
        "/v1/rooms",
        // Closed as soon as its last participant leaves.
        Some(json!({"name": "garden", "transcription": {"language": "en"}, "empty_timeout_s": 0})),
    );
    assert_eq!(status, 201, "{room}");
    assert_eq!(room["data"]["transcription"], json!({"language": "en"}));
    let room_id = room["data"]["id"].as_str().unwrap().to_owned();

    // Its composite (small: the machine also recognises speech) gets the lines as captions.
    let (status, composite) = server.api(
        "POST",
        &format!("/v1/rooms/{room_id}/composite"),
        Some(json!({"resolution": "720p", "outputs": {"hls": true}})),
    );
    assert_eq!(status, 201, "{composite}");
    let playback_id = composite["data"]["playback_ids"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let mut participants = Participants::start(&server, &room_id);
    let speaker = participants.send(
        &server,
        json!({"cmd": "join", "token": room_token(&server, &room_id, "speaker"),
            "color": "#dc2828", "gain": 0.8, "speech": speech, "pause": 3}),
    );
    let microphone = speaker["microphone"].as_str().unwrap().to_owned();
    participants.send(
        &server,
        json!({"cmd": "join", "token": room_token(&server, &room_id, "listener"),
            "color": "#2828dc", "tone": 440, "gain": 0.0}),
    );

    // The listener's SDK hears the speaker, line by line.
    let deadline = Instant::now() + HEARD_TIMEOUT;
    let heard = loop {
        let heard = segments(&mut participants, &server, 1);
        if recalls_the_speech(finals(&heard).iter().map(|s| s["text"].as_str().unwrap())) {
            break heard;
        }
        assert!(
            Instant::now() < deadline,
            "the listener heard {heard:#?}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_secs(2));
    };
    for segment in &heard {
        assert_eq!(segment["participant"], "speaker", "{segment}");
        assert_eq!(segment["track"], microphone.as_str(), "{segment}");
        assert_eq!(segment["language"], "en", "{segment}");
        let (start, end) = (
            segment["startTime"].as_u64().unwrap(),
            segment["endTime"].as_u64().unwrap(),
        );
        assert!(start <= end && end < 600_000, "{segment}");
    }
    let partial = heard
        .iter()
        .find(|s| s["final"] == false)
        .unwrap_or_else(|| panic!("a partial segment before the final ones: {heard:#?}"));
    assert!(
        finals(&heard).iter().any(|s| s["id"] == partial["id"]),
        "a partial segment becomes final under its id: {heard:#?}"
    );
    // The speaker's own SDK gets its lines too.
    assert!(!finals(&segments(&mut participants, &server, 0)).is_empty());

    // The composite's live captions carry the same lines, led by the speaker's name.
    let subtitles = format!("/hls/{playback_id}/subs/en/index.m3u8");
    let captioned = wait_for("the composite's captions", HEARD_TIMEOUT, || {
        let playlist = server.get(&subtitles);
        if playlist.status != 200 {
            return None;
        }
        let cues: Vec<String> = playlist
            .text()
            .lines()
            .filter(|line| line.ends_with(".vtt"))
            .flat_map(|uri| {
                let segment = server.get(&subtitles.replace("index.m3u8", uri)).text();
                segment
                    .lines()
                    .filter(|line| line.starts_with("SPEAKER: "))
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect();
        recalls_the_speech(cues.iter().map(String::as_str)).then_some(cues)
    });
    assert!(
        server
            .get(&format!("/hls/{playback_id}/master.m3u8"))
            .text()
            .contains("TYPE=SUBTITLES"),
        "the composite's master playlist lists its captions: {captioned:?}"
    );

    // Stopped: no more lines, the event says so, the setting is off.
    let (status, stopped) = server.api(
        "POST",
        &format!("/v1/rooms/{room_id}/transcription/stop"),
        None,
    );
    assert_eq!(status, 200, "{stopped}");
    assert_eq!(stopped["data"]["transcription"], Value::Null);
    let session_id = stopped["data"]["active_session"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let stops = |server: &Server| {
        event_types(server, &room_id)
            .iter()
            .filter(|t| *t == "room.transcription.stopped")
            .count()
    };
    wait_for(
        "room.transcription.stopped",
        Duration::from_secs(30),
        || (stops(&server) == 1).then_some(()),
    );
    let after_stop = finals(&segments(&mut participants, &server, 1)).len();
    std::thread::sleep(Duration::from_secs(10));
    assert_eq!(
        finals(&segments(&mut participants, &server, 1)).len(),
        after_stop,
        "no line after the stop"
    );

    // Started again: the same session is transcribed on.
    let (status, started) = server.api(
        "POST",
        &format!("/v1/rooms/{room_id}/transcription/start"),
        Some(json!({"language": "en"})),
    );
    assert_eq!(status, 200, "{started}");
    assert_eq!(started["data"]["transcription"], json!({"language": "en"}));
    wait_for("lines after the restart", HEARD_TIMEOUT, || {
        (finals(&segments(&mut participants, &server, 1)).len() > after_stop).then_some(())
    });

    // Everyone leaves, so the room ends: the transcription stops with it and the transcript
    // is complete.
    drop(participants);
    wait_for("the second stop", Duration::from_secs(60), || {
        (stops(&server) == 2).then_some(())
    });
    let transcript = |file: &str| {
        let response =
            server.get_authorized(&format!("/v1/rooms/{room_id}/sessions/{session_id}/{file}"));
        assert_eq!(response.status, 200, "{file}: {}", response.text());
        response.text()
    };
    let json: Value = serde_json::from_str(&transcript("transcript.json")).unwrap();
    let lines = json["data"]["lines"].as_array().unwrap();
    assert!(
        recalls_the_speech(lines.iter().map(|l| l["text"].as_str().unwrap())),
        "{lines:#?}"
    );
    let mut last_start = 0.0;
    for line in lines {
        assert_eq!(line["participant"]["identity"], "speaker", "{line}");
        assert_eq!(line["participant"]["name"], "SPEAKER", "{line}");
        assert_eq!(line["track_sid"], microphone.as_str(), "{line}");
        let (start, end) = (
            line["start"].as_f64().unwrap(),
            line["end"].as_f64().unwrap(),
        );
        assert!(start >= last_start && start <= end && end < 600.0, "{line}");
        last_start = start;
    }
    let final_texts: BTreeSet<&str> = finals(&heard)
        .iter()
        .map(|s| s["text"].as_str().unwrap())
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| final_texts.contains(l["text"].as_str().unwrap())),
        "the stored lines are the ones the clients got: {lines:#?} {final_texts:?}"
    );
    let vtt = transcript("transcript.vtt");
    assert!(vtt.starts_with("WEBVTT\n\n"), "{vtt}");
    assert!(vtt.contains(" --> ") && vtt.contains("SPEAKER: "), "{vtt}");
    assert!(transcript("transcript.srt").contains("SPEAKER: "));
    assert_eq!(
        transcript("transcript.txt").lines().count(),
        lines.len(),
        "one text line per line"
    );
    let missing = server.get_authorized(&format!(
        "/v1/rooms/{room_id}/sessions/rsess_none/transcript.json"
    ));
    assert_eq!(missing.status, 404);

    // Search finds a spoken word in the session, said by the speaker.
    let (status, found) = server.api("GET", "/v1/rooms/search?q=tomatoes", None);
    assert_eq!(status, 200, "{found}");
    let hits = found["data"].as_array().unwrap();
    assert!(!hits.is_empty(), "{found}");
    for hit in hits {
        assert_eq!(hit["session_id"], session_id.as_str(), "{hit}");
        assert_eq!(hit["participant"]["identity"], "speaker", "{hit}");
        assert!(
            hit["text"]
                .as_str()
                .unwrap()
                .to_lowercase()
                .contains("tomato"),
            "{hit}"
        );
    }
}
