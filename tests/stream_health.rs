//! Black-box: the health check explains what is wrong with an encoder. Publishers made with
//! ffmpeg with a 10 s key frame interval, B-frames on a passthrough rendition, a variable frame
//! rate and a bitrate spike each raise their warning (a `live_stream.warning` event and an
//! entry in `GET /v1/live-streams/{id}/health`) within one key frame interval of the problem
//! starting; a clean publisher raises none.

mod common;

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::{wait_for, Publisher, Server};
use serde_json::{json, Value};

/// 30 fps, key frames every 2 s, no B-frames, constant bitrate: what the health check wants.
const CLEAN: [&str; 12] = [
    "-g",
    "60",
    "-keyint_min",
    "60",
    "-sc_threshold",
    "0",
    "-bf",
    "0",
    "-b:v",
    "600k",
    "-maxrate",
    "600k",
];

/// Slack on "within one key frame interval": the publisher's start and a loaded machine.
const SLACK: Duration = Duration::from_secs(3);

struct Watched {
    server: Server,
    id: String,
    _publisher: Publisher,
}

/// Publishes 40 s to a new stream with `ladder`, encoded with `encoding`.
fn publish(ladder: Value, encoding: &[&str]) -> Watched {
    let server = Server::start();
    let stream = server.create_live_stream(json!({"name": "health", "ladder": ladder}));
    let id = stream["id"].as_str().unwrap().to_owned();
    let url = server.rtmp_url(stream["stream_key"].as_str().unwrap());
    let publisher = Publisher::start_encoded(&url, "320x240", 30, 40, encoding);
    Watched {
        server,
        id,
        _publisher: publisher,
    }
}

impl Watched {
    fn health(&self) -> Value {
        let (status, body) =
            self.server
                .api("GET", &format!("/v1/live-streams/{}/health", self.id), None);
        assert_eq!(status, 200, "{body}");
        body["data"].clone()
    }

    /// The stream's `live_stream.warning` events, oldest first.
    fn warnings(&self) -> Vec<Value> {
        let (status, page) =
            self.server
                .api("GET", "/v1/events?type=live_stream.warning&limit=100", None);
        assert_eq!(status, 200, "{page}");
        let mut warnings: Vec<Value> = page["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|event| event["data"]["live_stream_id"] == self.id.as_str())
            .map(|event| event["data"].clone())
            .collect();
        warnings.reverse();
        warnings
    }

    /// When the session began, as the server recorded it.
    fn session_start(&self) -> DateTime<Utc> {
        let (status, page) = self.server.api(
            "GET",
            &format!("/v1/live-streams/{}/sessions", self.id),
            None,
        );
        assert_eq!(status, 200, "{page}");
        page["data"][0]["started_at"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// Waits for the warning `code` and checks it was first seen within `within` of the
    /// session's start plus `problem_from` (when the publisher's problem began).
    fn expect_warning(&self, code: &str, problem_from: Duration, within: Duration) -> Value {
        let warning = wait_for(
            &format!("a {code} warning"),
            Duration::from_secs(60),
            || self.warnings().into_iter().find(|w| w["code"] == code),
        );
        assert!(
            !warning["message"].as_str().unwrap_or_default().is_empty(),
            "{warning}"
        );
        let since: DateTime<Utc> = warning["since"].as_str().unwrap().parse().unwrap();
        let after_start = (since - self.session_start()).to_std().unwrap_or_default();
        assert!(
            after_start <= problem_from + within + SLACK,
            "{code} seen {after_start:?} after the session began, the problem began at \
             {problem_from:?}: {warning}"
        );
        let health = self.health();
        assert_eq!(health["status"], "warning", "{health}");
        assert!(
            health["warnings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|w| w["code"] == code),
            "{health}"
        );
        warning
    }
}

#[test]
fn a_clean_publisher_is_healthy_and_raises_no_warning() {
    let watched = publish(json!(["source"]), &CLEAN);
    let health = wait_for("four health samples", Duration::from_secs(60), || {
        let health = watched.health();
        (health["samples"].as_array().unwrap().len() >= 4).then_some(health)
    });
    assert_eq!(health["status"], "healthy", "{health}");
    assert_eq!(health["warnings"], json!([]), "{health}");
    let last = &health["samples"].as_array().unwrap()[3];
    let video_kbps = last["video_kbps"].as_f64().unwrap();
    assert!(
        (200.0..1200.0).contains(&video_kbps),
        "600 kb/s sent: {last}"
    );
    let frame_rate = last["frame_rate"].as_f64().unwrap();
    assert!((25.0..35.0).contains(&frame_rate), "30 fps sent: {last}");
    assert_eq!(watched.warnings(), Vec::<Value>::new());
}

#[test]
fn a_ten_second_key_frame_interval_is_reported_within_one_interval() {
    let mut encoding = CLEAN;
    encoding[1] = "300";
    encoding[3] = "300";
    let watched = publish(json!(["source"]), &encoding);
    let warning = watched.expect_warning(
        "keyframe_interval_long",
        Duration::ZERO,
        Duration::from_secs(10),
    );
    assert!(
        warning["message"]
            .as_str()
            .unwrap()
            .contains("Keyframe Interval"),
        "names the OBS setting: {warning}"
    );
}

#[test]
fn b_frames_on_a_passthrough_rendition_are_reported_within_one_interval() {
    let mut encoding = CLEAN;
    encoding[7] = "2";
    let watched = publish(json!(["source"]), &encoding);
    watched.expect_warning(
        "b_frames_passthrough",
        Duration::ZERO,
        Duration::from_secs(2),
    );
}

#[test]
fn a_variable_frame_rate_is_reported_within_one_interval() {
    // From frame 300 (10 s) on, frames come 50 ms and 17 ms apart in turn.
    let mut encoding = CLEAN.to_vec();
    encoding.extend([
        "-vf",
        "settb=1/1000,setpts='if(gte(N,300),N+0.5*mod(N,2),N)/30/TB'",
        "-fps_mode",
        "passthrough",
    ]);
    let watched = publish(json!(["source"]), &encoding);
    watched.expect_warning(
        "variable_frame_rate",
        Duration::from_secs(10),
        Duration::from_secs(2),
    );
}

#[test]
fn a_bitrate_spike_is_reported_within_one_interval() {
    // The clean GOP at constant quality (no bitrate cap), so heavy noise from 12 s on sends
    // the bitrate up many times over.
    let mut encoding = CLEAN[..8].to_vec();
    encoding.extend([
        "-crf",
        "30",
        "-vf",
        "noise=alls=100:allf=t:enable='gte(t,12)'",
    ]);
    let watched = publish(json!(["source"]), &encoding);
    watched.expect_warning(
        "bitrate_spike",
        Duration::from_secs(12),
        Duration::from_secs(2),
    );
}
