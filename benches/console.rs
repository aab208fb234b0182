//! `cargo bench --bench console`: the console measured with Lighthouse (npm, pinned in
//! `benches/node/`) in headless Chromium against the release server holding 1,000 assets.
//!
//! The assets: 995 URL imports the worker refuses (a loopback address), then 5 uploads of a
//! 4 s clip that become ready, so the newest page of the list holds posters as well as
//! errored assets. Lighthouse (`benches/node/lighthouse.mjs`, its default mobile settings:
//! simulated slow 4G, a 4x slower CPU) then measures the console's first page load and the
//! asset list of a signed-in person. Goals: performance ≥ 90 and accessibility ≥ 95 on both.
//! Results in docs/BENCHMARKS.md.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{curl, make_source, BenchServer, API_KEY, API_SECRET};
use serde_json::Value;

const ASSETS: usize = 1000;
const READY_ASSETS: usize = 5;

fn main() {
    let work = tempfile::tempdir().expect("work directory");
    let clip = make_source(work.path(), "640x360", 4);
    let server = BenchServer::start(&work.path().join("data"));

    for _ in 0..ASSETS - READY_ASSETS {
        let asset = server.api(
            "/v1/assets",
            Some(r#"{"input": "http://127.0.0.1:9/refused.mp4"}"#),
        );
        assert!(asset["data"]["id"].is_string(), "import: {asset}");
    }
    let mut ready = Vec::new();
    for n in 0..READY_ASSETS {
        let upload = server.api(
            "/v1/uploads",
            Some(&format!(
                r#"{{"new_asset_settings": {{"playback_policy": ["public"], "passthrough": "clip {n}.mp4"}}}}"#
            )),
        );
        let url = upload["data"]["url"].as_str().expect("upload url");
        curl(&["-T", clip.to_str().unwrap(), url]);
        ready.push(upload["data"]["id"].as_str().unwrap().to_owned());
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let preparing = server.api("/v1/assets?status=preparing&limit=1", None);
        let ready_count = server.api("/v1/assets?status=ready&limit=100", None)["data"]
            .as_array()
            .map_or(0, Vec::len);
        if preparing["data"].as_array().is_some_and(Vec::is_empty) && ready_count == READY_ASSETS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "assets did not settle: {preparing}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    eprintln!("{ASSETS} assets ({READY_ASSETS} ready); measuring with Lighthouse");

    let output = Command::new("node")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/benches/node/lighthouse.mjs"
        ))
        .args([&server.base, API_KEY, API_SECRET])
        .output()
        .expect("run node benches/node/lighthouse.mjs (make bench installs it)");
    assert!(
        output.status.success(),
        "lighthouse failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: Value =
        serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("a JSON report");
    println!("| page | performance | accessibility | best practices | FCP | LCP | TBT | CLS | transferred |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for page in ["first_load", "asset_list"] {
        let r = &report[page];
        println!(
            "| {page} | {} | {} | {} | {} ms | {} ms | {} ms | {:.3} | {} KiB |",
            r["performance"],
            r["accessibility"],
            r["best_practices"],
            r["first_contentful_paint_ms"],
            r["largest_contentful_paint_ms"],
            r["total_blocking_time_ms"],
            r["cumulative_layout_shift"].as_f64().unwrap_or(f64::NAN),
            r["transfer_bytes"].as_u64().unwrap_or(0) / 1024,
        );
        let failed = &r["failed_accessibility_audits"];
        if failed.as_array().is_some_and(|list| !list.is_empty()) {
            println!("  {page}: accessibility audits not passed: {failed}");
        }
    }
}
