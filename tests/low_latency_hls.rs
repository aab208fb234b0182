//! LL-HLS of a `low` latency stream published over RTMP by ffmpeg or over WHIP by Chromium,
//! read over HTTP as a player does and judged by the strict checker
//! (`sluice_packager::ll_hls_conformance`): parts, preload hints, rendition reports, blocking
//! reload, delta updates, signed playback and the end of the stream; then watched by hls.js in
//! its low-latency mode.

mod common;

use std::time::{Duration, Instant};

use common::whip::BrowserPublisher;
use common::{create_signing_key, playback_token, wait_for, Launch, Publisher, Server};
use serde_json::json;
use sluice_packager::ll_hls_conformance::{self as ll, MediaPlaylist};

const RENDITIONS: [&str; 3] = ["v0", "v1", "a0"];

/// A low-latency stream with a transcoded rung and a passthrough one, its playlists keeping
/// 12 s (so delta updates have segments to skip).
fn low_latency_stream(server: &Server) -> (String, String, String) {
    let stream = server.create_live_stream(json!({
        "name": "low", "ladder": ["360p", "source"], "latency_mode": "low",
        "dvr": {"mode": "window", "window_s": 12}
    }));
    (
        stream["id"].as_str().unwrap().to_owned(),
        stream["stream_key"].as_str().unwrap().to_owned(),
        stream["playback_ids"][0]["id"].as_str().unwrap().to_owned(),
    )
}

fn fetch(server: &Server, playback_id: &str, rendition: &str, query: &str) -> (u16, String) {
    let response = server.get(&format!("/hls/{playback_id}/{rendition}/index.m3u8{query}"));
    let status = response.status;
    (status, response.text())
}

/// The rendition's playlist, which must pass every single-playlist rule.
fn checked(server: &Server, playback_id: &str, rendition: &str, query: &str) -> MediaPlaylist {
    let (status, text) = fetch(server, playback_id, rendition, query);
    assert_eq!(status, 200, "{rendition}{query}: {text}");
    ll::check(&text).unwrap_or_else(|errors| panic!("{rendition}{query}: {errors:#?}\n{text}"))
}

#[test]
fn a_low_latency_stream_serves_ll_hls_that_keeps_every_rule_while_live_and_ends_cleanly() {
    let server = Server::start();
    let (id, key, playback_id) = low_latency_stream(&server);
    let publisher = Publisher::start(&server.rtmp_url(&key), "640x360", 30, 30);

    // Nine segments: enough for a delta update to skip some.
    wait_for("nine segments", Duration::from_secs(90), || {
        let (status, text) = fetch(&server, &playback_id, "v0", "");
        let playlist = (status == 200).then(|| ll::parse(&text).ok()).flatten()?;
        (playlist.segments.len() >= 9).then_some(())
    });

    // Every rendition keeps the rules and reports its siblings.
    let playlists: Vec<MediaPlaylist> = RENDITIONS
        .iter()
        .map(|rendition| checked(&server, &playback_id, rendition, ""))
        .collect();
    for (index, rendition) in RENDITIONS.iter().enumerate() {
        let own = checked(&server, &playback_id, rendition, "");
        let siblings: Vec<(String, MediaPlaylist)> = RENDITIONS
            .iter()
            .filter(|other| *other != rendition)
            .map(|other| {
                let sibling = checked(&server, &playback_id, other, "");
                (format!("../{other}/index.m3u8"), sibling)
            })
            .collect();
        let siblings: Vec<(&str, &MediaPlaylist)> =
            siblings.iter().map(|(uri, p)| (uri.as_str(), p)).collect();
        ll::check_rendition_reports(&own, &siblings)
            .unwrap_or_else(|errors| panic!("{rendition}: {errors:#?}"));
        ll::check_successor(&playlists[index], &own)
            .unwrap_or_else(|errors| panic!("{rendition}: {errors:#?}"));
    }

    // Every part listed is where INDEPENDENT says a key frame is (audio: every sample is one).
    for (rendition, playlist) in RENDITIONS.iter().zip(&playlists) {
        let every_sample_sync = *rendition == "a0";
        let parts = playlist
            .segments
            .iter()
            .flat_map(|segment| &segment.parts)
            .chain(&playlist.open_parts);
        for part in parts {
            let response = server.get(&format!("/hls/{playback_id}/{rendition}/{}", part.uri));
            if response.status == 404 {
                continue; // Older than the parts kept in memory since the playlist was read.
            }
            assert_eq!(response.status, 200, "{rendition}/{}", part.uri);
            ll::check_part_independence(part, &response.body, every_sample_sync)
                .unwrap_or_else(|error| panic!("{rendition}/{}: {error}", part.uri));
        }
    }

    // A blocking request for the next part is answered once it exists, and the part the
    // preload hint named is it.
    let before = checked(&server, &playback_id, "v0", "");
    let (msn, part) = before.last_part().expect("parts listed");
    let asked = Instant::now();
    let after = checked(
        &server,
        &playback_id,
        "v0",
        &format!("?_HLS_msn={msn}&_HLS_part={}", part + 1),
    );
    assert!(
        after.has_part(msn, part + 1),
        "the answer lists the part asked for"
    );
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "answered before timing out"
    );
    ll::check_successor(&before, &after).unwrap_or_else(|errors| panic!("{errors:#?}"));
    let hint = &after.preload_hints[0].uri;
    let hinted = server.get(&format!("/hls/{playback_id}/v0/{hint}"));
    assert_eq!(hinted.status, 200, "the hinted part, held until it exists");
    let next = checked(&server, &playback_id, "v0", "");
    let listed = next
        .segments
        .iter()
        .flat_map(|segment| &segment.parts)
        .chain(&next.open_parts)
        .any(|part| &part.uri == hint);
    assert!(listed, "the hinted part became a listed part");

    // A delta update is the full playlist of the same moment less the skipped segments.
    let (full, delta) = wait_for(
        "a full and a delta playlist of one moment",
        Duration::from_secs(30),
        || {
            let at = checked(&server, &playback_id, "v0", "").last_part()?;
            let query = format!("?_HLS_msn={}&_HLS_part={}", at.0, at.1 + 1);
            let (_, full) = fetch(&server, &playback_id, "v0", &query);
            let (_, delta) = fetch(
                &server,
                &playback_id,
                "v0",
                &format!("{query}&_HLS_skip=YES"),
            );
            let (full_now, delta_now) = (ll::parse(&full).ok()?, ll::parse(&delta).ok()?);
            let same = full_now.last_part() == delta_now.last_part()
                && full_now.rendition_reports == delta_now.rendition_reports;
            same.then_some((full, delta))
        },
    );
    assert!(delta.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS="), "{delta}");
    ll::check_delta(&full, &delta).unwrap_or_else(|errors| panic!("{errors:#?}"));

    // Requests the protocol refuses.
    let last = checked(&server, &playback_id, "v0", "").next_msn();
    let (status, _) = fetch(
        &server,
        &playback_id,
        "v0",
        &format!("?_HLS_msn={}", last + 3),
    );
    assert_eq!(status, 400, "more than two segments ahead");
    let (status, _) = fetch(
        &server,
        &playback_id,
        "v0",
        &format!("?_HLS_msn={}&_HLS_part=20", last + 1),
    );
    assert_eq!(status, 400, "past the Advance Part Limit");
    let (status, _) = fetch(&server, &playback_id, "v0", "?_HLS_part=1");
    assert_eq!(status, 400, "a part without its segment");
    let (status, _) = fetch(&server, &playback_id, "v0", "?_HLS_skip=maybe");
    assert_eq!(status, 400);

    // Once the publisher is gone the session ends (no reconnect window in low latency) and a
    // request blocking for a part that never comes gets the ended playlist.
    assert!(publisher.wait(), "ffmpeg publish failed");
    let ended = wait_for("the ended playlist", Duration::from_secs(30), || {
        let (status, text) = fetch(
            &server,
            &playback_id,
            "v0",
            &format!("?_HLS_msn={}", last + 1),
        );
        (status == 200 && text.contains("#EXT-X-ENDLIST")).then_some(text)
    });
    assert!(m3u8_rs::parse_media_playlist_res(ended.as_bytes()).is_ok());
    let (status, _) = server.api("GET", &format!("/v1/live-streams/{id}"), None);
    assert_eq!(status, 200);
}

/// The median of `values`.
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

#[test]
fn hlsjs_and_shaka_play_a_low_latency_stream_for_a_minute_each_at_a_steady_latency_without_stalling(
) {
    let server = Server::start();
    let stream = server.create_live_stream(json!({
        "name": "low", "ladder": ["360p"], "latency_mode": "low"
    }));
    let key = stream["stream_key"].as_str().unwrap();
    let playback_id = stream["playback_ids"][0]["id"].as_str().unwrap();
    let publisher = Publisher::start(&server.rtmp_url(key), "640x360", 30, 200);
    wait_for("the multivariant playlist", Duration::from_secs(60), || {
        (server
            .get(&format!("/hls/{playback_id}/master.m3u8"))
            .status
            == 200)
            .then_some(())
    });
    let url = server.url(&format!("/hls/{playback_id}/master.m3u8"));
    // One after the other: two browsers beside the ladder would starve a two-core machine.
    for player in ["hlsjs", "shaka"] {
        let report = common::watch_live(player, &url, 60);
        let latencies: Vec<f64> = report["latencies"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|latency| latency.as_f64())
            .collect();
        assert!(latencies.len() >= 60, "{player} played: {report}");
        assert_eq!(report["stalls"], 0, "{player} never stalled: {report}");
        assert!(
            report["parts"].as_u64().unwrap() > 0,
            "{player} loaded parts: {report}"
        );
        // Steady: the latency of the last third does not drift from that of the middle third.
        let third = latencies.len() / 3;
        let (middle, last) = (
            median(&latencies[third..2 * third]),
            median(&latencies[2 * third..]),
        );
        assert!(
            (last - middle).abs() < 1.0,
            "{player}'s latency drifted from {middle:.2} s to {last:.2} s: {report}"
        );
        println!(
            "{player}: latency median {:.2} s over {} samples",
            median(&latencies),
            latencies.len()
        );
    }
    drop(publisher);
}

#[test]
fn a_browser_publishing_over_whip_gets_ll_hls_whose_every_uri_carries_the_playback_token() {
    let server = Server::launch(Launch {
        config: Some("[whip]\npublic_ip = \"127.0.0.1\"\n".to_owned()),
        ..Launch::default()
    });
    let stream = server.create_live_stream(json!({
        "name": "browser", "ladder": ["360p"], "latency_mode": "low"
    }));
    let id = stream["id"].as_str().unwrap();
    let key = stream["stream_key"].as_str().unwrap();
    let (status, created) = server.api(
        "POST",
        &format!("/v1/live-streams/{id}/playback-ids"),
        Some(json!({"policy": "signed"})),
    );
    assert_eq!(status, 201);
    let signed_id = created["data"]["id"].as_str().unwrap().to_owned();
    let signing_key = create_signing_key(&server, "ES256");
    let exp = chrono::Utc::now().timestamp() + 600;
    let token = playback_token(
        &signing_key,
        json!({"sub": signed_id, "aud": "video", "exp": exp}),
    );

    let mut browser = BrowserPublisher::start(
        &server.url(&format!("/live/{id}/publish?codec=vp8")),
        key,
        30,
        true,
    );
    assert_eq!(browser.next_report()["state"], "live", "{}", server.log());
    let query = format!("?token={token}");
    wait_for("three segments", Duration::from_secs(60), || {
        let (status, text) = fetch(&server, &signed_id, "v0", &query);
        let playlist = (status == 200).then(|| ll::parse(&text).ok()).flatten()?;
        (playlist.segments.len() >= 3).then_some(())
    });
    let (at_msn, at_part) = checked(&server, &signed_id, "v0", &query)
        .last_part()
        .expect("parts listed");
    let playlist = checked(
        &server,
        &signed_id,
        "v0",
        &format!("{query}&_HLS_msn={at_msn}&_HLS_part={}", at_part + 1),
    );
    let uris: Vec<&String> = playlist
        .segments
        .iter()
        .flat_map(|segment| {
            std::iter::once(&segment.uri)
                .chain(segment.map_uri.as_ref())
                .chain(segment.parts.iter().map(|part| &part.uri))
        })
        .chain(playlist.open_parts.iter().map(|part| &part.uri))
        .chain(playlist.preload_hints.iter().map(|hint| &hint.uri))
        .chain(playlist.rendition_reports.iter().map(|report| &report.uri))
        .collect();
    assert!(uris.len() > 10, "{uris:?}");
    for uri in &uris {
        assert!(uri.ends_with(&query), "{uri} carries the token");
    }
    let part = playlist.open_parts.last().or_else(|| {
        playlist
            .segments
            .last()
            .and_then(|segment| segment.parts.last())
    });
    let part = part.expect("a part").uri.clone();
    let name = part.trim_end_matches(&query);
    assert_eq!(
        server.get(&format!("/hls/{signed_id}/v0/{part}")).status,
        200
    );
    assert_eq!(
        server.get(&format!("/hls/{signed_id}/v0/{name}")).status,
        401,
        "a part needs the token"
    );
    assert_eq!(browser.next_report()["state"], "closed");
    assert!(browser.wait());
}
