//! Black-box: concurrent viewers are counted from playback requests. Real hls.js players in
//! Chromium watch a live stream; the API and `/metrics` count them, then count them gone.

mod common;

use std::time::Duration;

use common::live::live_stream;
use common::{play_with_audience, wait_for, Publisher, Server};
use serde_json::json;

const PLAYERS: usize = 20;
/// How long the players watch: long enough for the count to be read while they all play.
const WATCH_S: u64 = 45;

/// `sluice_viewers{kind="live_stream"}` in `/metrics`.
fn live_viewers_metric(server: &Server) -> Option<u64> {
    server
        .get("/metrics")
        .text()
        .lines()
        .find_map(|line| line.strip_prefix("sluice_viewers{kind=\"live_stream\"} "))
        .and_then(|value| value.trim().parse().ok())
}

#[test]
fn twenty_players_count_as_twenty_viewers_then_none_after_they_stop() {
    let server = Server::start();
    let stream = server.create_live_stream(json!({"name": "audience", "ladder": ["source"]}));
    let id = stream["id"].as_str().unwrap().to_owned();
    let playback_id = stream["playback_ids"][0]["id"].as_str().unwrap().to_owned();
    let _publisher = Publisher::start(
        &server.rtmp_url(stream["stream_key"].as_str().unwrap()),
        "160x90",
        15,
        150,
    );
    wait_for("two segments to play from", Duration::from_secs(60), || {
        let response = server.get(&format!("/hls/{playback_id}/v0/index.m3u8"));
        (response.status == 200 && response.text().matches("#EXTINF").count() >= 2).then_some(())
    });
    // This test's own client read a media playlist without a playback session: it counts
    // as one viewer, told apart by its address and User-Agent.
    assert_eq!(
        live_stream(&server, &id)["viewers"],
        1,
        "the test's own client"
    );

    let url = server.url(&format!("/hls/{playback_id}/master.m3u8"));
    let audience = std::thread::spawn(move || play_with_audience(&url, PLAYERS, WATCH_S));
    let counted = wait_for(
        "every player to be counted",
        Duration::from_secs(WATCH_S),
        || {
            let viewers = live_stream(&server, &id)["viewers"].as_u64().unwrap();
            (viewers > PLAYERS as u64).then_some(viewers)
        },
    );
    let watching = PLAYERS as u64 + 1;
    assert_eq!(counted, watching, "each player counts once");
    assert_eq!(live_viewers_metric(&server), Some(watching));
    let (_, health) = server.api("GET", &format!("/v1/live-streams/{id}/health"), None);
    assert_eq!(health["data"]["viewers"], watching, "{health}");

    let report = audience.join().expect("the players' thread");
    let playing = report["maxTimes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|time| time.as_f64().unwrap_or(0.0) > 1.0)
        .count();
    assert_eq!(playing, PLAYERS, "every player played: {report}");

    // A viewer counts while it fetched within the last 30 s (this test's client included).
    wait_for(
        "the stopped players to stop counting",
        Duration::from_secs(90),
        || (live_stream(&server, &id)["viewers"] == 0).then_some(()),
    );
    assert_eq!(live_viewers_metric(&server), Some(0));
}
