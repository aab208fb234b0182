//! The object store goes away for 30 s in the middle of a live stream: the stream goes on, and
//! once the store is back every segment the packager produced is stored and listed, with
//! contiguous media sequence numbers.
//!
//! The outage is made on the local store: its root directory is moved away and a regular file
//! put in its place, so every write fails (ENOTDIR) until the directory is moved back.

mod common;

use std::time::{Duration, Instant};

use common::{wait_for, Launch, Publisher, Server};
use serde_json::json;

/// How long the store stays away.
const OUTAGE: Duration = Duration::from_secs(30);
/// Length of the publish: the outage sits in its middle.
const PUBLISH_SECONDS: u32 = 60;

/// Keys of the segments the packager spooled, from the server's log (in spooling order).
fn spooled_segments(log: &str) -> Vec<String> {
    log.lines()
        .filter(|line| line.contains("Live segment spooled."))
        .filter_map(|line| {
            line.split_whitespace()
                .find_map(|field| field.strip_prefix("key="))
                .map(str::to_owned)
        })
        .collect()
}

#[test]
fn a_store_outage_mid_stream_loses_no_segment() {
    let server = Server::launch(Launch {
        // A window longer than the stream: every segment stays listed, none is evicted.
        config: Some("[live]\nplaylist_window = 200\n".to_owned()),
        ..Launch::default()
    });
    let stream = server.create_live_stream(json!({"name": "outage", "ladder": ["source"]}));
    let id = stream["id"].as_str().unwrap().to_owned();
    let playback_id = stream["playback_ids"][0]["id"].as_str().unwrap().to_owned();
    let publisher = Publisher::start(
        &server.rtmp_url(stream["stream_key"].as_str().unwrap()),
        "640x360",
        30,
        PUBLISH_SECONDS,
    );
    let started = Instant::now();
    wait_for("three listed segments", Duration::from_secs(30), || {
        let text = server
            .get(&format!("/hls/{playback_id}/v0/index.m3u8"))
            .text();
        (text.matches("#EXTINF").count() >= 3).then_some(())
    });

    // The store goes away.
    let objects = server.data_dir.path().join("objects");
    let away = server.data_dir.path().join("objects.away");
    std::fs::rename(&objects, &away).unwrap();
    std::fs::write(&objects, b"the store is down").unwrap();
    let spooled_before = spooled_segments(&server.log()).len();
    std::thread::sleep(OUTAGE);
    let spooled_during = spooled_segments(&server.log()).len() - spooled_before;
    std::fs::remove_file(&objects).unwrap();
    std::fs::rename(&away, &objects).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(u64::from(PUBLISH_SECONDS)),
        "the outage ended before the publish did"
    );
    // The stream went on: segments were cut and spooled all through the outage.
    assert!(
        spooled_during >= 10,
        "{spooled_during} segments spooled in 30 s of outage"
    );

    assert!(publisher.wait(), "the publisher streamed to the end");
    wait_for("the stream to go idle", Duration::from_secs(60), || {
        let (_, body) = server.api("GET", &format!("/v1/live-streams/{id}"), None);
        (body["data"]["status"] == "idle").then_some(())
    });
    let log = server.log();
    assert!(
        log.contains("Live upload failed; retrying."),
        "the outage was seen by the uploader"
    );
    assert!(!log.contains("not stored"), "nothing was given up");
    assert!(!log.contains("segment refused"), "nothing was refused");
    assert_eq!(
        log.matches("Publisher connected.").count(),
        1,
        "one session from start to end"
    );

    let spooled = spooled_segments(&log);
    let mut listed_total = 0;
    for rendition in ["v0", "a0"] {
        let playlist = server.media_playlist(&playback_id, &format!("{rendition}/index.m3u8"));
        assert!(playlist.end_list, "{rendition} ended");
        assert_eq!(playlist.media_sequence, 0, "{rendition} starts at 0");
        let prefix = format!("live/{id}/{rendition}/");
        let produced: Vec<&str> = spooled
            .iter()
            .filter_map(|key| key.strip_prefix(&prefix))
            .collect();
        let listed: Vec<&str> = playlist
            .segments
            .iter()
            .map(|segment| segment.uri.as_str())
            .collect();
        assert_eq!(
            listed, produced,
            "{rendition}: every produced segment listed, in order"
        );
        // Segment names carry the segmenter's sequence number: contiguous from 0.
        for (expected, uri) in listed.iter().enumerate() {
            let number: usize = uri
                .rsplit_once('-')
                .and_then(|(_, rest)| rest.split('.').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("sequence number in {uri}"));
            assert_eq!(number, expected, "{rendition}: contiguous sequence");
            assert!(
                objects.join(&prefix).join(uri).is_file(),
                "{prefix}{uri} is stored"
            );
            let response = server.get(&format!("/hls/{playback_id}/{rendition}/{uri}"));
            assert_eq!(response.status, 200, "{uri} plays");
        }
        listed_total += listed.len();
    }
    assert_eq!(listed_total, spooled.len());
    // About one video and one audio segment every 2 s of the minute.
    assert!(listed_total >= 50, "{listed_total} segments");
    let spool = server.data_dir.path().join("spool").join("live");
    assert_eq!(
        std::fs::read_dir(&spool)
            .map(|dir| dir.count())
            .unwrap_or(0),
        0,
        "the spool is empty"
    );
    let metrics = server.get("/metrics").text();
    assert!(
        metrics.lines().any(
            |line| line.starts_with("sluice_live_upload_failures_total ") && !line.ends_with(" 0")
        ),
        "failures counted:\n{metrics}"
    );
}
