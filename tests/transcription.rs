//! Black-box: generated subtitles. Speech made by espeak-ng at test time (`-v en-us -s 130`,
//! after 3 s of silence) is muxed with a test picture by the ffmpeg CLI and uploaded with
//! `generated_subtitles`; once the asset is ready, the worker recognises the speech with the
//! installed Moonshine library (`make test` installs it). The text track must become ready
//! with most of the spoken words at the right times, in every transcript form, in the master
//! playlist as a WebVTT rendition that ffmpeg reads and hls.js in headless Chromium lists and
//! shows, and in search. Silence, a tone, a file without audio and a server without the
//! library each get the answer a person expects.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::live::{event_types, recorded_assets};
use common::speech::spoken;
use common::vod::{get_asset, put_asset, settled};
use common::{http_get, play_with_hlsjs, wait_for, Launch, Server};
use serde_json::{json, Value};
use sluice_media::fixtures::ffmpeg_clip;

/// What espeak-ng says.
const SPEECH: &str = "Welcome to the garden show. Today we are planting tomatoes and \
    sunflowers near the river. Water the seedlings every morning and keep the soil warm.";
/// Silence before the speech starts, in seconds.
const LEADING_SILENCE_S: f64 = 3.0;
/// Time an asset of a few seconds may take to prepare and transcribe on a busy 2-core machine.
const TIMEOUT: Duration = Duration::from_secs(300);

/// One rung, small: the tests are about the audio.
fn settings(extra: Value) -> Value {
    let mut settings = json!({
        "playback_policy": ["public"],
        "ladder": [{"name": "180p", "height": 180, "bitrate_kbps": 300}],
    });
    settings
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    settings
}

/// A 320x180 test picture as long as the audio `audio_args` give (an ffmpeg input), with that
/// audio as AAC, in MP4.
fn clip_with_audio(dir: &Path, name: &str, audio_args: &[&str], audio_filter: &str) -> Vec<u8> {
    std::fs::read(clip_file(dir, name, audio_args, audio_filter)).unwrap()
}

/// [`clip_with_audio`], as a file.
fn clip_file(dir: &Path, name: &str, audio_args: &[&str], audio_filter: &str) -> PathBuf {
    let mut args = vec!["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=15"];
    args.extend_from_slice(audio_args);
    args.extend_from_slice(&[
        "-filter:a",
        audio_filter,
        "-shortest",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-b:a",
        "96k",
    ]);
    ffmpeg_clip(dir, name, &args)
}

/// The talk: [`SPEECH`] after [`LEADING_SILENCE_S`] of silence, and 2 s more of silence.
fn talk(dir: &Path) -> PathBuf {
    let wav = spoken(dir, SPEECH);
    let delay = format!(
        "adelay={}:all=1,apad=pad_dur=2",
        (LEADING_SILENCE_S * 1000.0) as u64
    );
    clip_file(dir, "talk.mp4", &["-i", wav.to_str().unwrap()], &delay)
}

/// Whether the recognised `lines` hold at least 60 % of the spoken words; the words heard.
fn recalled(lines: &[Value]) -> BTreeSet<String> {
    let text: Vec<&str> = lines.iter().map(|l| l["text"].as_str().unwrap()).collect();
    let spoken = words(SPEECH);
    let heard = words(&text.join(" "));
    let recalled = spoken.intersection(&heard).count();
    assert!(
        recalled * 10 >= spoken.len() * 6,
        "at least 60 % of the spoken words ({recalled} of {}): {text:?}",
        spoken.len()
    );
    heard
}

/// Lowercase words of at least four letters.
fn words(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !c.is_alphabetic())
        .filter(|word| word.chars().count() >= 4)
        .map(str::to_lowercase)
        .collect()
}

/// `GET path` with the test's API key, the body as it comes (the transcripts are not all JSON).
/// The asset's text tracks.
fn text_tracks(asset: &Value) -> Vec<Value> {
    asset["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|track| track["type"] == "text")
        .cloned()
        .collect()
}

/// The asset's only text track once it is no longer `preparing`.
fn settled_track(server: &Server, asset_id: &str) -> Value {
    wait_for("the text track to settle", TIMEOUT, || {
        let tracks = text_tracks(&get_asset(server, asset_id));
        assert_eq!(tracks.len(), 1, "one text track: {tracks:?}");
        (tracks[0]["status"] != "preparing").then(|| tracks[0].clone())
    })
}

/// Uploads `body` with English subtitles asked for and waits for the asset to be ready.
fn upload_with_subtitles(server: &Server, body: &[u8]) -> Value {
    let id = put_asset(
        server,
        body,
        settings(json!({"generated_subtitles": [{"language_code": "en"}]})),
    );
    let asset = settled(server, &id, TIMEOUT);
    assert_eq!(asset["status"], "ready", "{asset}");
    asset
}

#[test]
fn spoken_words_become_a_subtitles_rendition_a_transcript_and_search_hits() {
    let dir = tempfile::tempdir().unwrap();
    let clip = std::fs::read(talk(dir.path())).unwrap();
    let server = Server::start();

    let asset = upload_with_subtitles(&server, &clip);
    let asset_id = asset["id"].as_str().unwrap();
    let duration = asset["duration"].as_f64().unwrap();
    let track = settled_track(&server, asset_id);
    assert_eq!(track["status"], "ready", "{track}");
    assert_eq!(track["language_code"], "en");
    assert_eq!(track["name"], "English (generated)");
    assert_eq!(track["text_type"], "subtitles");
    assert_eq!(track["text_source"], "generated_vod");
    assert!(
        event_types(&server, asset_id).contains(&"asset.track.ready".to_owned()),
        "asset.track.ready published"
    );

    // The transcript: most words, at the right times.
    let transcript = server.get_authorized(&format!("/v1/assets/{asset_id}/transcript.json"));
    assert_eq!(transcript.status, 200, "{}", transcript.text());
    let transcript: Value = serde_json::from_str(&transcript.text()).unwrap();
    let lines = transcript["data"]["lines"].as_array().unwrap().clone();
    assert!(!lines.is_empty(), "lines recognised: {transcript}");
    let text: Vec<&str> = lines.iter().map(|l| l["text"].as_str().unwrap()).collect();
    let heard = recalled(&lines);
    let first_start = lines[0]["start"].as_f64().unwrap();
    assert!(
        (LEADING_SILENCE_S - 1.0..LEADING_SILENCE_S + 1.5).contains(&first_start),
        "the first line starts when the speech does ({LEADING_SILENCE_S} s), not at {first_start}"
    );
    let mut previous_end = 0.0;
    for line in &lines {
        let (start, end) = (
            line["start"].as_f64().unwrap(),
            line["end"].as_f64().unwrap(),
        );
        // The recogniser's lines may share a few tens of milliseconds at a pause.
        assert!(
            start >= previous_end - 0.25 && end > start,
            "lines in order: {lines:?}"
        );
        assert!(
            end <= duration + 0.5,
            "a line ends within the asset: {line}"
        );
        previous_end = end;
    }

    // The other forms.
    let vtt = server.get_authorized(&format!("/v1/assets/{asset_id}/transcript.vtt"));
    assert_eq!(vtt.header("content-type"), Some("text/vtt; charset=utf-8"));
    assert!(vtt.text().starts_with("WEBVTT\n"), "{}", vtt.text());
    let srt = server.get_authorized(&format!("/v1/assets/{asset_id}/transcript.srt"));
    assert!(srt.text().starts_with("1\n00:00:0"), "{}", srt.text());
    assert!(srt.text().contains(" --> "), "{}", srt.text());
    let txt = server.get_authorized(&format!("/v1/assets/{asset_id}/transcript.txt"));
    assert_eq!(txt.text().lines().count(), lines.len(), "{}", txt.text());
    assert_eq!(
        server
            .get_authorized(&format!("/v1/assets/{asset_id}/transcript.pdf"))
            .status,
        404
    );
    assert_eq!(
        server
            .get_authorized(&format!(
                "/v1/assets/{asset_id}/transcript.json?language_code=fr"
            ))
            .status,
        404
    );

    // The HLS rendition: listed on every variant, read by ffmpeg, shown by hls.js.
    let playback_url = asset["playback_url"].as_str().unwrap().to_owned();
    let master = http_get(&playback_url).text();
    assert!(
        master.contains("TYPE=SUBTITLES") && master.contains("LANGUAGE=\"en\""),
        "{master}"
    );
    for variant in master
        .lines()
        .filter(|l| l.starts_with("#EXT-X-STREAM-INF"))
    {
        assert!(variant.contains("SUBTITLES=\"subs\""), "{variant}");
    }
    let subtitles_url = playback_url.replace("master.m3u8", "subs/en/index.m3u8");
    let read = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i", &subtitles_url])
        .args(["-f", "webvtt", "-"])
        .output()
        .expect("ffmpeg runs");
    let read_back = String::from_utf8_lossy(&read.stdout).to_lowercase();
    assert!(
        read.status.success(),
        "{}",
        String::from_utf8_lossy(&read.stderr)
    );
    let heard_by_ffmpeg = words(&read_back);
    assert!(
        heard.iter().all(|word| heard_by_ffmpeg.contains(word)),
        "ffmpeg reads every recognised word from the playlist: {read_back}"
    );
    let report = play_with_hlsjs(&playback_url, (LEADING_SILENCE_S + 4.0).min(duration - 1.0));
    assert_eq!(
        report["subtitleTracks"],
        json!([{"name": "English (generated)", "lang": "en"}]),
        "{report}"
    );
    let shown = report["cues"].as_array().unwrap();
    assert!(!shown.is_empty(), "hls.js showed cues: {report}");
    for cue in shown {
        assert!(
            text.contains(&cue.as_str().unwrap()),
            "a recognised line: {cue}"
        );
    }

    // Search: a recognised word is found with its line and time.
    let word = heard.iter().max_by_key(|w| w.len()).unwrap();
    let (status, found) = server.api("GET", &format!("/v1/search?q={word}"), None);
    assert_eq!(status, 200, "{found}");
    let hit = &found["data"][0];
    assert_eq!(hit["asset_id"], asset_id, "{found}");
    assert_eq!(hit["language_code"], "en");
    let line = lines
        .iter()
        .find(|line| line["start"] == hit["start"])
        .unwrap_or_else(|| panic!("the hit is a line of the transcript: {hit}"));
    assert_eq!(line["text"], hit["text"]);
    assert!(hit["text"]
        .as_str()
        .unwrap()
        .to_lowercase()
        .contains(word.as_str()));
    let thumbnail = http_get(hit["thumbnail_url"].as_str().unwrap());
    assert_eq!(thumbnail.status, 200, "{hit}");
    assert_eq!(thumbnail.header("content-type"), Some("image/jpeg"));
    let (_, nothing) = server.api("GET", "/v1/search?q=xylophone", None);
    assert_eq!(nothing["data"], json!([]));
    let (status, _) = server.api("GET", "/v1/search?q=%20", None);
    assert_eq!(status, 400);
}

#[test]
fn each_recording_of_a_live_stream_gets_the_subtitles_the_stream_asks_for() {
    let dir = tempfile::tempdir().unwrap();
    let talk = talk(dir.path());
    let server = Server::start();
    let stream = server.create_live_stream(json!({
        "name": "talk show",
        "ladder": [{"name": "180p", "height": 180, "bitrate_kbps": 300}],
        "record": true,
        "reconnect_window_s": 0,
        "generated_subtitles": [{"language_code": "en", "name": "English (auto)"}],
    }));
    let stream_id = stream["id"].as_str().unwrap();
    assert_eq!(
        stream["generated_subtitles"],
        json!([{"language_code": "en", "name": "English (auto)"}])
    );
    let published = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re", "-i"])
        .arg(&talk)
        .args(["-c", "copy", "-f", "flv"])
        .arg(server.rtmp_url(stream["stream_key"].as_str().unwrap()))
        .status()
        .expect("ffmpeg runs");
    assert!(published.success(), "ffmpeg published the talk");

    let asset_id = wait_for("the recording", TIMEOUT, || {
        recorded_assets(&server, stream_id)
            .first()
            .map(|asset| asset["id"].as_str().unwrap().to_owned())
    });
    assert_eq!(settled(&server, &asset_id, TIMEOUT)["status"], "ready");
    let track = settled_track(&server, &asset_id);
    assert_eq!(track["status"], "ready", "{track}");
    assert_eq!(track["name"], "English (auto)");
    let transcript = server.get_authorized(&format!("/v1/assets/{asset_id}/transcript.json"));
    let transcript: Value = serde_json::from_str(&transcript.text()).unwrap();
    recalled(transcript["data"]["lines"].as_array().unwrap());

    // Turned off, the next recordings get none.
    let (status, updated) = server.api(
        "PATCH",
        &format!("/v1/live-streams/{stream_id}"),
        Some(json!({"generated_subtitles": []})),
    );
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["data"]["generated_subtitles"], json!([]));
}

/// A cue: its start time in seconds and its text.
type TimedCue = (f64, String);

/// The cues of a WebVTT segment.
fn cues_of(vtt: &str) -> Vec<TimedCue> {
    let seconds = |stamp: &str| {
        let parts: Vec<f64> = stamp
            .trim()
            .split(':')
            .map(|part| part.parse().unwrap())
            .collect();
        parts.iter().fold(0.0, |total, part| total * 60.0 + part)
    };
    let mut cues = Vec::new();
    let mut lines = vtt.lines().map(str::to_owned);
    while let Some(line) = lines.next() {
        if let Some((start, _)) = line.split_once(" --> ") {
            let text = lines.next().unwrap_or_default();
            cues.push((seconds(start), text));
        }
    }
    cues
}

/// Publishes the talk over RTMP to a live stream with captions in `latency_mode`, reading its
/// live subtitle playlist while it runs; returns the cues seen while the publisher ran and all
/// of them once the session ended.
fn captions_of_a_live_talk(
    server: &Server,
    talk: &Path,
    latency_mode: &str,
) -> (Vec<TimedCue>, Vec<TimedCue>) {
    let stream = server.create_live_stream(json!({
        "name": format!("captioned {latency_mode}"),
        "ladder": [{"name": "180p", "height": 180, "bitrate_kbps": 300}],
        "latency_mode": latency_mode,
        "reconnect_window_s": 0,
        "captions": {"language": "en"},
    }));
    assert_eq!(
        stream["captions"],
        json!({"language": "en", "name": "English (live)"})
    );
    let playback_id = stream["playback_ids"][0]["id"].as_str().unwrap();
    let master_url = server.url(&format!("/hls/{playback_id}/master.m3u8"));
    let subtitles_url = server.url(&format!("/hls/{playback_id}/subs/en/index.m3u8"));
    let mut publisher = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re", "-i"])
        .arg(talk)
        .args(["-c", "copy", "-f", "flv"])
        .arg(server.rtmp_url(stream["stream_key"].as_str().unwrap()))
        .spawn()
        .expect("ffmpeg runs");
    let mut seen: Vec<TimedCue> = Vec::new();
    let mut fetched = BTreeSet::new();
    let mut listed_in_master = false;
    let mut read = |seen: &mut Vec<TimedCue>| {
        let playlist = http_get(&subtitles_url);
        if playlist.status != 200 {
            return;
        }
        for uri in playlist.text().lines().filter(|l| l.ends_with(".vtt")) {
            if fetched.insert(uri.to_owned()) {
                let url = subtitles_url.replace("index.m3u8", uri);
                seen.extend(cues_of(&http_get(&url).text()));
            }
        }
    };
    while publisher.try_wait().unwrap().is_none() {
        read(&mut seen);
        listed_in_master |= http_get(&master_url).text().contains("TYPE=SUBTITLES");
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(publisher.wait().unwrap().success(), "ffmpeg published");
    let while_live = seen.clone();
    wait_for("the captions playlist to end", TIMEOUT, || {
        read(&mut seen);
        http_get(&subtitles_url)
            .text()
            .contains("#EXT-X-ENDLIST")
            .then_some(())
    });
    read(&mut seen);
    assert!(
        listed_in_master,
        "the master playlist listed the captions while live"
    );
    assert!(
        http_get(&master_url).text().contains("TYPE=SUBTITLES"),
        "the ended session's master playlist still lists its captions"
    );
    (while_live, seen)
}

#[test]
fn a_live_stream_with_captions_gets_cues_in_its_live_subtitle_playlist_in_every_latency_mode() {
    let dir = tempfile::tempdir().unwrap();
    let talk = talk(dir.path());
    let server = Server::start();
    for latency_mode in ["standard", "low"] {
        let (while_live, all) = captions_of_a_live_talk(&server, &talk, latency_mode);
        assert!(
            !while_live.is_empty(),
            "{latency_mode}: cues while the stream ran: {all:?}"
        );
        let lines: Vec<Value> = all.iter().map(|(_, text)| json!({"text": text})).collect();
        recalled(&lines);
        let first = all[0].0;
        assert!(
            (LEADING_SILENCE_S - 1.0..LEADING_SILENCE_S + 1.5).contains(&first),
            "{latency_mode}: the first cue is timed when the speech starts: {all:?}"
        );
    }
}

#[test]
fn silence_and_a_tone_give_ready_tracks_and_a_file_without_audio_an_errored_one() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start();
    let silent = clip_with_audio(
        dir.path(),
        "silent.mp4",
        &["-f", "lavfi", "-i", "anullsrc=r=48000:cl=stereo:d=6"],
        "anull",
    );
    let tone = clip_with_audio(
        dir.path(),
        "tone.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000:duration=6",
        ],
        "anull",
    );
    let mute = std::fs::read(ffmpeg_clip(
        dir.path(),
        "mute.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x180:rate=15:duration=4",
        ]
        .iter()
        .chain(&[
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ])
        .copied()
        .collect::<Vec<_>>(),
    ))
    .unwrap();

    let silent = upload_with_subtitles(&server, &silent);
    let tone = upload_with_subtitles(&server, &tone);
    let mute = upload_with_subtitles(&server, &mute);
    for asset in [&silent, &tone] {
        let id = asset["id"].as_str().unwrap();
        let track = settled_track(&server, id);
        assert_eq!(track["status"], "ready", "{track}");
        let vtt = server.get_authorized(&format!("/v1/assets/{id}/transcript.vtt"));
        assert_eq!(vtt.status, 200);
        assert!(vtt.text().starts_with("WEBVTT"), "{}", vtt.text());
    }
    let transcript = server.get_authorized(&format!(
        "/v1/assets/{}/transcript.json",
        silent["id"].as_str().unwrap()
    ));
    let transcript: Value = serde_json::from_str(&transcript.text()).unwrap();
    assert_eq!(
        transcript["data"]["lines"],
        json!([]),
        "silence says nothing"
    );

    let mute_id = mute["id"].as_str().unwrap();
    let track = settled_track(&server, mute_id);
    assert_eq!(track["status"], "errored", "{track}");
    assert_eq!(
        track["error"]["message"], "the asset has no audio to transcribe",
        "{track}"
    );
    assert!(event_types(&server, mute_id).contains(&"asset.track.errored".to_owned()));
    let (status, body) = server.api("GET", &format!("/v1/assets/{mute_id}/transcript.vtt"), None);
    assert_eq!(status, 409, "{body}");
    // The asset itself stays ready and playable.
    assert_eq!(get_asset(&server, mute_id)["status"], "ready");
}

#[test]
fn a_two_hour_audio_file_is_transcribed_with_bounded_memory_and_its_progress_shown() {
    let dir = tempfile::tempdir().unwrap();
    let wav = spoken(dir.path(), SPEECH);
    let wav = wav.to_str().unwrap();
    // Speech, two hours of silence, the speech again: the last line must be timed two hours in.
    let long = ffmpeg_clip(
        dir.path(),
        "long.m4a",
        &[
            "-i",
            wav,
            "-f",
            "lavfi",
            "-i",
            "anullsrc=r=16000:cl=mono:d=7200",
            "-i",
            wav,
            "-filter_complex",
            "[0:a]aresample=16000[a];[2:a]aresample=16000[c];[a][1:a][c]concat=n=3:v=0:a=1",
            "-c:a",
            "aac",
            "-b:a",
            "24k",
        ],
    );
    let server = Server::start();
    let id = put_asset(
        &server,
        &std::fs::read(&long).unwrap(),
        json!({"generated_subtitles": [{"language_code": "en"}]}),
    );
    let asset = settled(&server, &id, Duration::from_secs(900));
    assert_eq!(asset["status"], "ready", "{asset}");
    let duration = asset["duration"].as_f64().unwrap();
    assert!(duration > 7200.0, "{duration}");
    let mut progress_seen = BTreeSet::new();
    let track = wait_for("the text track to settle", Duration::from_secs(900), || {
        let track = text_tracks(&get_asset(&server, &id))[0].clone();
        progress_seen.insert(track["progress"].as_u64().unwrap());
        (track["status"] != "preparing").then_some(track)
    });
    assert_eq!(track["status"], "ready", "{track}");
    assert!(
        progress_seen.iter().any(|p| (1..100).contains(p)),
        "progress between 0 and 100 was shown: {progress_seen:?}"
    );
    let transcript = server.get_authorized(&format!("/v1/assets/{id}/transcript.json"));
    let transcript: Value = serde_json::from_str(&transcript.text()).unwrap();
    let lines = transcript["data"]["lines"].as_array().unwrap();
    let last = lines.last().expect("lines").clone();
    let speech_s = duration - 7200.0;
    assert!(
        last["start"].as_f64().unwrap() > 7200.0 && last["start"].as_f64().unwrap() < duration,
        "the last line is the speech after two hours ({speech_s:.1} s of speech): {last}"
    );
    // The whole file's samples in memory would be 460 MB more (two hours of 16 kHz f32); the
    // server, the speech model and its runtime peaked at about 250 MiB when this was written.
    let peak_mib = server.peak_rss_kib() / 1024;
    eprintln!("The server peaked at {peak_mib} MiB.");
    assert!(peak_mib < 600, "the server peaked at {peak_mib} MiB");
}

#[test]
fn without_the_speech_library_subtitles_are_refused_clearly_and_uploads_still_work() {
    let server = Server::launch(Launch {
        config: Some("[transcription]\nlibrary_dir = \"/nonexistent/moonshine\"\n".to_owned()),
        ..Launch::default()
    });
    assert!(
        server
            .log()
            .contains("Generated subtitles and live captions are off"),
        "one log line says so: {}",
        server.log()
    );
    let (status, body) = server.api(
        "POST",
        "/v1/uploads",
        Some(json!({"new_asset_settings": {"generated_subtitles": [{"language_code": "en"}]}})),
    );
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "transcription_unavailable");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("not installed") && message.contains("install-deps.sh"),
        "{message}"
    );
    let (status, body) = server.api(
        "POST",
        "/v1/assets",
        Some(json!({"input": "https://example.com/a.mp4", "generated_subtitles": [{"language_code": "en"}]})),
    );
    assert_eq!(status, 503, "{body}");
    let (status, body) = server.api("POST", "/v1/uploads", Some(json!({})));
    assert_eq!(status, 201, "{body}");
}
