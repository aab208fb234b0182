//! Black-box: WebRTC ingest over WHIP. The HTTP side's refusals and CORS, a publisher whose
//! DTLS never completes, and headless Chromium going live through the publish page with its
//! fake camera and microphone: the HLS ladder appears, ffprobe and hls.js read it, and closing
//! the tab ends the session within the no-media timeout.

mod common;

use std::path::Path;
use std::time::Duration;

use common::live::wait_idle;
use common::whip::{browser_offer, error_of, BrowserPublisher};
use common::{ffprobe, http_request, play_with_hlsjs, wait_for, Launch, Server};
use serde_json::{json, Value};

/// Short WHIP timeouts so the suites see sessions end quickly.
const WHIP_CONFIG: &str =
    "[whip]\npublic_ip = \"127.0.0.1\"\nconnect_timeout_seconds = 3\nmedia_timeout_seconds = 4\n";

fn whip_server() -> Server {
    Server::launch(Launch {
        config: Some(WHIP_CONFIG.to_owned()),
        ..Launch::default()
    })
}

fn live_stream(server: &Server, body: Value) -> (String, String) {
    let stream = server.create_live_stream(body);
    (
        stream["id"].as_str().unwrap().to_owned(),
        stream["stream_key"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn bad_whip_requests_get_clear_json_errors() {
    let mut server = whip_server();
    let (id, key) = live_stream(&server, json!({"name": "whip errors"}));
    let (status, stream) = server.api("GET", &format!("/v1/live-streams/{id}"), None);
    assert_eq!(status, 200);
    assert_eq!(
        stream["data"]["whip_url"],
        server.url(&format!("/whip/{id}"))
    );
    let offer = browser_offer(&["VP8", "H264"]);

    let wrong_key = server.whip_offer(&id, "not-the-key", &offer);
    assert_eq!(wrong_key.status, 401);
    assert_eq!(error_of(&wrong_key).0, "unauthorized");
    let no_key = http_request(
        "POST",
        &server.url(&format!("/whip/{id}")),
        &["Content-Type: application/sdp"],
        Some(offer.as_bytes()),
    );
    assert_eq!(no_key.status, 401);

    let unknown = server.whip_offer("ls_doesnotexist", &key, &offer);
    assert_eq!(
        (unknown.status, error_of(&unknown).0.as_str()),
        (404, "not_found")
    );

    let not_sdp_type = http_request(
        "POST",
        &server.url(&format!("/whip/{id}")),
        &[
            "Content-Type: text/plain",
            &format!("Authorization: Bearer {key}"),
        ],
        Some(offer.as_bytes()),
    );
    assert_eq!(not_sdp_type.status, 415);

    for (body, status, code, needle) in [
        (
            "hello, this is not SDP".to_owned(),
            400,
            "invalid_request",
            "v=0",
        ),
        (
            "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n".to_owned(),
            400,
            "invalid_request",
            "no media",
        ),
        (
            offer.split("m=video").next().unwrap().to_owned(),
            400,
            "invalid_request",
            "no video",
        ),
        (
            browser_offer(&["VP9", "AV1"]),
            406,
            "not_acceptable",
            "VP9, AV1",
        ),
    ] {
        let response = server.whip_offer(&id, &key, &body);
        let (got_code, message) = error_of(&response);
        assert_eq!(
            (response.status, got_code.as_str()),
            (status, code),
            "{message}"
        );
        assert!(message.contains(needle), "{message:?} names {needle:?}");
    }
    // SDP that passes the first look but that the WebRTC stack cannot answer (no ICE
    // credentials, no fingerprint).
    let bare = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=rtpmap:96 VP8/90000\r\n";
    let response = server.whip_offer(&id, &key, bare);
    assert_eq!(response.status, 400, "{}", response.text());
    let (_, message) = error_of(&response);
    assert!(
        message.starts_with("malformed SDP offer") && !message.contains("0x"),
        "a plain message, no parser internals: {message:?}"
    );

    // CORS preflight from a page on another origin, on the endpoint and on a session.
    for path in [format!("/whip/{id}"), format!("/whip/{id}/sessions/whs_x")] {
        let preflight = http_request(
            "OPTIONS",
            &server.url(&path),
            &[
                "Origin: https://studio.example",
                "Access-Control-Request-Method: POST",
                "Access-Control-Request-Headers: authorization, content-type",
            ],
            None,
        );
        assert_eq!(preflight.status, 200);
        assert_eq!(preflight.header("access-control-allow-origin"), Some("*"));
        let methods = preflight
            .header("access-control-allow-methods")
            .unwrap_or_default();
        assert!(
            methods.contains("POST") && methods.contains("DELETE"),
            "{methods}"
        );
        let headers = preflight
            .header("access-control-allow-headers")
            .unwrap_or_default();
        assert!(headers.contains("authorization"), "{headers}");
    }
    // A cross-origin POST can read the session's Location.
    let exposed = http_request(
        "POST",
        &server.url(&format!("/whip/{id}")),
        &[
            "Origin: https://studio.example",
            "Content-Type: application/sdp",
            "Authorization: Bearer nope",
        ],
        Some(offer.as_bytes()),
    );
    let exposed = exposed
        .header("access-control-expose-headers")
        .unwrap_or_default()
        .to_owned();
    assert!(
        exposed.contains("location") && exposed.contains("etag"),
        "{exposed}"
    );

    // Trickle ICE is not offered; unknown sessions are 404.
    let session_url = server.url(&format!("/whip/{id}/sessions/whs_unknown"));
    let bearer = format!("Authorization: Bearer {key}");
    let patch = http_request(
        "PATCH",
        &session_url,
        &[&bearer, "Content-Type: application/trickle-ice-sdpfrag"],
        Some(b"a=end-of-candidates\r\n"),
    );
    assert_eq!(patch.status, 405);
    let delete = http_request("DELETE", &session_url, &[&bearer], None);
    assert_eq!(
        (delete.status, error_of(&delete).0.as_str()),
        (404, "not_found")
    );

    // The publish page exists for live streams only, and holds no key.
    let page = server.get(&format!("/live/{id}/publish"));
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .unwrap_or_default()
        .starts_with("text/html"));
    assert!(page.text().contains("RTCPeerConnection") && !page.text().contains(&key));
    assert_eq!(server.get("/live/ls_doesnotexist/publish").status, 404);

    // A disabled stream refuses with 403.
    let (status, _) = server.api("POST", &format!("/v1/live-streams/{id}/disable"), None);
    assert_eq!(status, 200);
    let disabled = server.whip_offer(&id, &key, &offer);
    assert_eq!(
        (disabled.status, error_of(&disabled).0.as_str()),
        (403, "forbidden")
    );
    assert!(server.is_running(), "no request brought the server down");
}

#[test]
fn a_publisher_whose_dtls_never_completes_ends_its_session_cleanly() {
    let mut server = whip_server();
    let (id, key) = live_stream(&server, json!({"name": "silent peer"}));
    let answer = server.whip_offer(&id, &key, &browser_offer(&["H264"]));
    assert_eq!(answer.status, 201, "{}", answer.text());
    assert_eq!(answer.header("content-type"), Some("application/sdp"));
    let location = answer.header("location").unwrap().to_owned();
    assert!(
        location.starts_with(&format!("/whip/{id}/sessions/whs_")),
        "{location}"
    );
    let sdp = answer.text();
    assert!(
        sdp.starts_with("v=0") && sdp.contains("a=ice-lite"),
        "{sdp}"
    );
    assert!(
        sdp.contains("typ host") && sdp.contains("127.0.0.1"),
        "{sdp}"
    );
    assert!(
        sdp.contains("H264/90000") && sdp.contains("opus/48000"),
        "{sdp}"
    );
    // Lost packets are asked for again (NACK), and keyframes with PLI.
    assert!(
        sdp.contains(" nack\r\n") && sdp.contains(" nack pli\r\n"),
        "{sdp}"
    );

    // The session is recorded as a WebRTC one while it waits.
    let (_, stream) = server.api("GET", &format!("/v1/live-streams/{id}"), None);
    assert_eq!(stream["data"]["current_session"]["protocol"], "webrtc");
    // A second publisher is refused meanwhile.
    let second = server.whip_offer(&id, &key, &browser_offer(&["VP8"]));
    assert_eq!(second.status, 409);

    // Datagrams of every kind the port demultiplexes (STUN, DTLS, RTP/RTCP first bytes) but
    // with garbage bodies, from an address no session knows: dropped, nothing breaks.
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for index in 0..300u32 {
        let mut datagram = vec![[0x00, 0x01, 0x16, 0x17, 0x80, 0x90, 0xc8][index as usize % 7]];
        for _ in 0..(index % 200) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            datagram.push(state as u8);
        }
        socket
            .send_to(&datagram, ("127.0.0.1", server.http_port))
            .unwrap();
    }
    assert_eq!(server.get("/healthz").status, 200);

    // No ICE, no DTLS: the session ends after the connect timeout (3 s), the stream is free
    // again, well before the default reconnect window (60 s) could have ended it.
    wait_idle(&server, &id, Duration::from_secs(40));
    let (_, stream) = server.api("GET", &format!("/v1/live-streams/{id}"), None);
    assert!(
        stream["data"]["current_session"]["ended_at"].is_string(),
        "{stream}"
    );
    assert!(
        server
            .log()
            .contains("ICE and DTLS did not complete within 3 s"),
        "a clear log line"
    );
    // The session URL is gone with it.
    let gone = http_request(
        "DELETE",
        &server.url(&location),
        &[&format!("Authorization: Bearer {key}")],
        None,
    );
    assert_eq!(gone.status, 404);
    assert!(server.is_running());
}

#[test]
fn chromium_goes_live_with_vp8_through_the_publish_page_and_closing_the_tab_ends_the_session() {
    go_live_from_chromium("vp8", false);
}

#[test]
fn chromium_goes_live_with_h264_through_the_publish_page_and_stop_ends_the_session() {
    go_live_from_chromium("h264", true);
}

#[test]
fn delete_ends_a_webrtc_session_waiting_in_its_reconnect_window() {
    let server = whip_server();
    let (id, key) = live_stream(
        &server,
        json!({"name": "browser", "ladder": ["360p"], "reconnect_window_s": 600}),
    );
    let mut browser = BrowserPublisher::start(
        &server.url(&format!("/live/{id}/publish?codec=vp8")),
        &key,
        4,
        false,
    );
    let report = browser.next_report();
    assert_eq!(report["state"], "live", "{report}\n{}", server.log());
    // The tab closes without DELETE: after the no-media timeout the session waits for its
    // publisher to come back, and the stream stays active.
    assert_eq!(browser.next_report()["state"], "closed");
    assert!(browser.wait());
    wait_for(
        "the session to wait for its publisher",
        Duration::from_secs(20),
        || {
            server
                .log()
                .contains("the session is reconnecting")
                .then_some(())
        },
    );
    let (_, stream) = server.api("GET", &format!("/v1/live-streams/{id}"), None);
    assert_eq!(stream["data"]["status"], "active", "{stream}");

    // The page's session resource, as its Location named it.
    let log = server.log();
    let whip_session = log
        .split("whip_session=")
        .nth(1)
        .and_then(|rest| {
            rest.split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                .next()
        })
        .expect("the WHIP session id in the log");
    let deleted = http_request(
        "DELETE",
        &server.url(&format!("/whip/{id}/sessions/{whip_session}")),
        &[&format!("Authorization: Bearer {key}")],
        None,
    );
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    // Ended by DELETE, not by its 600 s window.
    wait_idle(&server, &id, Duration::from_secs(60));
    assert!(server
        .log()
        .contains("reason=\"the publisher ended its WHIP session\""));
}

/// Chromium publishes `codec` video and Opus through the publish page; the ladder is checked
/// with ffprobe and hls.js, then the tab is closed, after pressing Stop (DELETE) when `stop`.
fn go_live_from_chromium(codec: &str, stop: bool) {
    let server = whip_server();
    let (id, key) = live_stream(
        &server,
        // No reconnect window: a closed tab ends the session after the no-media timeout.
        json!({"name": "browser", "ladder": ["480p", "360p"], "reconnect_window_s": 0}),
    );
    let (_, stream) = server.api("GET", &format!("/v1/live-streams/{id}"), None);
    let playback_id = stream["data"]["playback_ids"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let mut browser = BrowserPublisher::start(
        &server.url(&format!("/live/{id}/publish?codec={codec}")),
        &key,
        25,
        stop,
    );
    let report = browser.next_report();
    assert_eq!(report["state"], "live", "{report}\n{}", server.log());

    wait_for(
        "three segments in the first rendition",
        Duration::from_secs(40),
        || {
            let response = server.get(&format!("/hls/{playback_id}/v0/index.m3u8"));
            (response.status == 200 && response.text().matches("#EXTINF").count() >= 3)
                .then_some(())
        },
    );
    let (_, stream) = server.api("GET", &format!("/v1/live-streams/{id}"), None);
    let session = &stream["data"]["current_session"];
    assert_eq!(session["protocol"], "webrtc");
    assert_eq!(session["input"]["audio_codec"], "opus", "{session}");
    assert_eq!(session["input"]["video_codec"], codec, "{session}");

    let master = server.url(&format!("/hls/{playback_id}/master.m3u8"));
    let probe = ffprobe(Path::new(&master), &["-show_streams"]);
    let streams = probe["streams"].as_array().unwrap();
    assert!(streams.iter().any(|s| s["codec_name"] == "h264"), "{probe}");
    assert!(streams.iter().any(|s| s["codec_name"] == "aac"), "{probe}");
    let report = play_with_hlsjs(&master, 3.0);
    assert!(report["levels"].as_u64().unwrap_or(0) >= 2, "{report}");

    // Stop sends DELETE and the session ends at once; a tab closed without it ends the session
    // after the no-media timeout (4 s here); the log line below says which ended it.
    assert_eq!(browser.next_report()["state"], "closed");
    assert!(browser.wait());
    wait_idle(&server, &id, Duration::from_secs(60));
    let reason = if stop {
        "reason=\"the publisher sent DELETE\""
    } else {
        "no media for 4 s"
    };
    assert!(
        server.log().contains(reason),
        "the log says why: {reason}\n{}",
        server.log()
    );
    let playlist = server
        .get(&format!("/hls/{playback_id}/v0/index.m3u8"))
        .text();
    assert!(playlist.contains("#EXT-X-ENDLIST"), "{playlist}");
    let (_, sessions) = server.api("GET", &format!("/v1/live-streams/{id}/sessions"), None);
    assert!(
        sessions["data"][0]["bytes_received"].as_u64().unwrap_or(0) > 10_000,
        "{sessions}"
    );
}
