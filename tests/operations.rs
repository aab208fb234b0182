//! Black-box: the operations endpoints of a running server: `/metrics` reflects a real RTMP
//! publish and the API traffic, `/readyz` follows the object store's health.

mod common;

use std::time::Duration;

use common::{wait_for, Publisher, Server};
use serde_json::json;

/// The value of the sample line `series` (name and labels, exactly) in a metrics scrape.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.parse().ok())
}

fn scrape(server: &Server) -> String {
    let response = server.get("/metrics");
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(
        response
            .header("content-type")
            .is_some_and(|kind| kind.starts_with("application/openmetrics-text")),
        "{:?}",
        response.headers
    );
    response.text()
}

#[test]
fn metrics_count_a_real_publish_and_time_api_routes() {
    let server = Server::start();
    let stream = server.create_live_stream(json!({"name": "metered", "ladder": ["source"]}));
    let id = stream["id"].as_str().unwrap();
    let (status, _) = server.api("GET", &format!("/v1/live-streams/{id}"), None);
    assert_eq!(status, 200);

    let publisher = Publisher::start(
        &server.rtmp_url(stream["stream_key"].as_str().unwrap()),
        "640x360",
        30,
        6,
    );
    let live = wait_for(
        "the publish to show in /metrics",
        Duration::from_secs(20),
        || {
            let text = scrape(&server);
            (sample(&text, "sluice_live_streams_active") == Some(1.0)
                && sample(&text, "sluice_ingest_bytes_total").is_some_and(|bytes| bytes > 0.0))
            .then_some(text)
        },
    );
    assert!(
        sample(&live, "sluice_ingest_bitrate_bits_per_second").is_some_and(|bits| bits > 0.0),
        "{live}"
    );
    assert!(publisher.wait(), "ffmpeg published without error");

    let ended = wait_for(
        "the session to end in /metrics",
        Duration::from_secs(20),
        || {
            let text = scrape(&server);
            (sample(&text, "sluice_live_streams_active") == Some(0.0)).then_some(text)
        },
    );
    assert_eq!(
        sample(&ended, "sluice_sessions_started_total"),
        Some(1.0),
        "{ended}"
    );
    // A 6 s publish at several hundred kbit/s: well over 100 kB arrived.
    assert!(
        sample(&ended, "sluice_ingest_bytes_total").is_some_and(|bytes| bytes > 100_000.0),
        "{ended}"
    );
    assert_eq!(
        sample(&ended, "sluice_ingest_bitrate_bits_per_second"),
        Some(0.0)
    );
    assert!(sample(&ended, "sluice_frames_dropped_total").is_some());
    // Every segment was stored and listed, and nothing is left in the spool.
    assert!(
        sample(&ended, "sluice_live_segment_upload_seconds_count").is_some_and(|n| n >= 2.0),
        "{ended}"
    );
    assert_eq!(sample(&ended, "sluice_live_spool_bytes"), Some(0.0));
    assert_eq!(
        sample(
            &ended,
            r#"sluice_http_request_duration_seconds_count{method="GET",route="/v1/live-streams/{id}",status="2xx"}"#
        ),
        Some(1.0),
        "{ended}"
    );
    assert!(
        sample(
            &ended,
            r#"sluice_http_request_duration_seconds_count{method="POST",route="/v1/live-streams",status="2xx"}"#
        )
        .is_some(),
        "{ended}"
    );
    assert!(!ended.contains(id), "ids never become labels:\n{ended}");
}

#[test]
fn readyz_follows_the_object_store() {
    let server = Server::start();
    let ready = server.get("/readyz");
    assert_eq!(ready.status, 200, "{}", ready.text());
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&ready.body).unwrap(),
        json!({"status": "ready"})
    );

    // A plain file where the objects directory was: no write can succeed, not even as root.
    let objects = server.data_dir.path().join("objects");
    std::fs::remove_dir_all(&objects).unwrap();
    std::fs::write(&objects, "not a directory").unwrap();
    let broken = server.get("/readyz");
    assert_eq!(broken.status, 503, "{}", broken.text());
    let body: serde_json::Value = serde_json::from_slice(&broken.body).unwrap();
    assert_eq!(body["error"]["code"], "not_ready", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("object store"), "{message}");
    assert_eq!(
        server.get("/healthz").status,
        200,
        "liveness does not depend on storage"
    );

    std::fs::remove_file(&objects).unwrap();
    assert_eq!(server.get("/readyz").status, 200);
    assert!(server.log().contains("Readiness: the object store fails."));
}

#[test]
fn the_log_names_the_database_backend_but_never_its_password() {
    let launch = common::Launch::default();
    let Some(database) = launch.database.clone() else {
        let server = Server::launch(launch);
        assert!(server.log().contains("backend=sqlite"), "{}", server.log());
        return;
    };
    // The test server trusts loopback clients, so any password gets in: it must not be logged.
    let url = database
        .url()
        .replacen("postgres://postgres@", "postgres://postgres:hunter2@", 1);
    assert!(url.contains(":hunter2@"), "{url}");
    let server = Server::launch(common::Launch {
        database: None,
        config: Some(format!("database_url = \"{url}\"\n")),
        ..launch
    });
    let log = server.log();
    assert!(log.contains("backend=postgres"), "{log}");
    assert!(!log.contains("hunter2"), "{log}");
    let (status, _) = server.api("GET", "/v1/live-streams", None);
    assert_eq!(status, 200);
}

#[test]
fn an_unsupported_database_url_stops_the_server_with_a_clear_error() {
    let data_dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("serve")
        .env("SLUICE_DATA_DIR", data_dir.path())
        .env("SLUICE_HTTP", "127.0.0.1:0")
        .env("SLUICE_RTMP", "127.0.0.1:0")
        .env_remove("SLUICE_CONFIG")
        .env("DATABASE_URL", "mysql://sluice:hunter2@localhost/sluice")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unsupported database URL scheme \"mysql\""),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}
