//! `cargo bench --bench ll_split [-- SECONDS]`: what serving LL-HLS through an api node costs,
//! when the api node forwards to the ingest node packaging the session (docs/DEPLOYMENT.md,
//! "Low-latency HLS"). Results in docs/BENCHMARKS.md.
//!
//! An `api` process and an `ingest` process share one data directory (database, objects,
//! master key); ffmpeg publishes one `low` latency stream (a passthrough ladder) to the ingest
//! process. For every part of `v0` for SECONDS (default 60), two blocking requests for it are
//! sent together, before it exists: one to the api node as a player sends it (playback id
//! checked, then forwarded), one straight to the ingest node's internal route with the node
//! token. How much later the api node's answer arrives is the forwarding's cost, on loopback.

mod common;

use std::time::{Duration, Instant};

use common::{looping_publisher, make_source, part_of, BenchServer};
use sluice_storage::SecretBox;

fn main() {
    let seconds: u64 = std::env::args()
        .skip(1)
        .find(|arg| !arg.starts_with('-'))
        .map(|arg| arg.parse().expect("SECONDS is a whole number"))
        .unwrap_or(60);
    let work = tempfile::tempdir().expect("temporary directory");
    let source = make_source(work.path(), "854x480", 30);
    let data = work.path().join("data");
    let api = BenchServer::start_role(&data, None, "api");
    let ingest = BenchServer::start_role(&data, None, "ingest");
    let node_token = SecretBox::load_or_create(&data.join("master.key"))
        .expect("the master key the processes made")
        .node_token()
        .to_owned();
    let created = api.api(
        "/v1/live-streams",
        Some(r#"{"name": "split", "ladder": ["source"], "latency_mode": "low"}"#),
    );
    let id = created["data"]["id"].as_str().expect("live stream id");
    let key = created["data"]["stream_key"].as_str().expect("stream key");
    let playback_id = created["data"]["playback_ids"][0]["id"]
        .as_str()
        .expect("playback id");
    let url = format!("rtmp://127.0.0.1:{}/live/{key}", ingest.rtmp_port);
    let mut publisher = looping_publisher(&source, &url, None);
    let through_api = format!("{}/hls/{playback_id}/v0/index.m3u8", api.base);
    let direct = format!("{}/internal/low-latency/{id}/v0/index.m3u8", ingest.base);

    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let costs = runtime.block_on(async {
        let client = reqwest::Client::new();
        let mut next = None;
        let deadline = Instant::now() + Duration::from_secs(60);
        while next.is_none() {
            assert!(Instant::now() < deadline, "no parts through the api node");
            tokio::time::sleep(Duration::from_millis(200)).await;
            if let Ok(response) = client.get(&through_api).send().await {
                next = response
                    .text()
                    .await
                    .ok()
                    .and_then(|body| hinted_part(&body));
            }
        }
        let mut costs = Vec::new();
        let until = Instant::now() + Duration::from_secs(seconds);
        while Instant::now() < until {
            let (msn, part) = next.expect("a hinted part");
            let forwarded = timed(
                client
                    .get(format!("{through_api}?_HLS_msn={msn}&_HLS_part={part}"))
                    .send(),
            );
            let straight = timed(
                client
                    .get(format!("{direct}?msn={msn}&part={part}"))
                    .bearer_auth(&node_token)
                    .send(),
            );
            let ((forwarded_at, _), (straight_at, body)) = tokio::join!(forwarded, straight);
            costs.push(
                forwarded_at
                    .saturating_duration_since(straight_at)
                    .as_secs_f64()
                    * 1e3,
            );
            next = body
                .as_deref()
                .and_then(hinted_part)
                .or(Some((msn, part + 1)));
        }
        costs
    });
    let _ = publisher.kill();
    let _ = publisher.wait();
    let mut costs = costs;
    costs.sort_by(f64::total_cmp);
    let at = |q: f64| costs[((costs.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "forwarding through the api node, over {} parts: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        costs.len(),
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    );
}

/// When the response to `request` has arrived whole, and its body when it is a 200.
async fn timed(
    request: impl std::future::Future<Output = reqwest::Result<reqwest::Response>>,
) -> (Instant, Option<String>) {
    let body = match request.await {
        Ok(response) if response.status().is_success() => response.text().await.ok(),
        _ => None,
    };
    (Instant::now(), body)
}

/// (msn, part) of the part a playlist's preload hint names.
fn hinted_part(playlist: &str) -> Option<(u64, u64)> {
    let line = playlist
        .lines()
        .find(|line| line.starts_with("#EXT-X-PRELOAD-HINT:"))?;
    part_of(line.split("URI=\"").nth(1)?.split('"').next()?)
}
