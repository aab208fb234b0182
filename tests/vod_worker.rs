//! Black-box: the asset worker inside `sluice serve`, and `sluice worker` as a process of its
//! own beside a `sluice serve` whose in-process worker is switched off, on the same database
//! and objects. Assets are imported through `POST /v1/assets` from a URL served by this test. The separate worker is killed with SIGKILL in the middle of the transcode and
//! started again, and the asset must end ready, with no duplicate output and no working files
//! left, and play through the server's HLS delivery.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::vod::{get_asset, settled};
use common::{decode_cleanly, files_under, wait_for, Launch, Server};
use serde_json::json;
use sluice_media::fixtures::ffmpeg_clip;
use sluice_storage::{Db, JobStatus};

/// Serves `body` at `http://127.0.0.1:PORT/clip.mp4` from a thread of its own; returns the URL.
fn serve_file(body: Vec<u8>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async move {
            let body: &'static [u8] = Vec::leak(body);
            let app = axum::Router::new()
                .route("/clip.mp4", axum::routing::get(move || async move { body }));
            listener.set_nonblocking(true).unwrap();
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    format!("http://{address}/clip.mp4")
}

/// Starts `sluice worker` on the server's data directory, database and configuration.
fn start_worker(server: &Server, launch: &Launch, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let data_dir = server.data_dir.path();
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command
        .arg("worker")
        .env("SLUICE_DATA_DIR", data_dir)
        .env("SLUICE_CONFIG", data_dir.join("sluice.toml"))
        .env("SLUICE_LOG", "info,sluice=debug")
        .env_remove("DATABASE_URL")
        .env_remove("SLUICE_API_KEY")
        .env_remove("SLUICE_API_SECRET")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    if let Some(database) = &launch.database {
        command.env("DATABASE_URL", database.url());
    }
    launch.storage_env(&mut command);
    command.spawn().expect("start sluice worker")
}

fn database_url(server: &Server, launch: &Launch) -> String {
    match &launch.database {
        Some(database) => database.url().to_owned(),
        None => format!(
            "sqlite://{}?mode=rwc",
            server.data_dir.path().join("sluice.db").display()
        ),
    }
}

/// Imports `url` through the API with a small ladder; returns the asset's id and playback id.
fn create_asset(server: &Server, url: &str) -> (String, String) {
    let (status, body) = server.api(
        "POST",
        "/v1/assets",
        Some(json!({
            "input": url,
            "ladder": [
                {"name": "360p", "height": 360, "bitrate_kbps": 800},
                {"name": "180p", "height": 180, "bitrate_kbps": 300}
            ],
        })),
    );
    assert_eq!(status, 201, "{body}");
    let id = body["data"]["id"].as_str().unwrap().to_owned();
    let playback_id = body["data"]["playback_ids"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    (id, playback_id)
}

#[test]
fn the_server_prepares_assets_in_its_own_process_by_default() {
    let work = tempfile::tempdir().unwrap();
    let clip = ffmpeg_clip(
        work.path(),
        "clip.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=30",
            "-t",
            "4",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ],
    );
    let url = serve_file(std::fs::read(&clip).unwrap());
    let launch = Launch {
        config: Some("[import]\nallow_hosts = [\"127.0.0.1\"]\n".to_owned()),
        ..Launch::default()
    };
    let server = Server::launch(launch);
    let (id, playback_id) = create_asset(&server, &url);
    let ready = settled(&server, &id, Duration::from_secs(120));
    assert_eq!(ready["status"], "ready", "{ready}\n{}", server.log());
    assert_eq!(ready["progress"], 100);
    assert_eq!(ready["playable"], true);
    let renditions = ready["renditions"].as_array().unwrap();
    assert_eq!(renditions.len(), 2, "video only: no audio rendition");
    assert_eq!(renditions[1]["name"], "180p");
    assert_eq!(ready["tracks"][0]["type"], "video");
    decode_cleanly(server.url(&format!("/hls/{playback_id}/v0/index.m3u8")));
    let (_, events) = server.api("GET", "/v1/events?limit=100", None);
    let types: Vec<&str> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["object"]["id"] == id.as_str())
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(types.contains(&"asset.ready"), "{types:?}");
}

#[test]
fn a_worker_killed_mid_transcode_resumes_cleanly_after_a_restart() {
    let work = tempfile::tempdir().unwrap();
    let clip = ffmpeg_clip(
        work.path(),
        "clip.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=30",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            // Progress is recorded with each heartbeat (a third of the lease): long enough to
            // be seen part-way and killed well before its end even on a fast machine.
            "180",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
        ],
    );
    let url = serve_file(std::fs::read(&clip).unwrap());

    let launch = Launch {
        config: Some(
            "[worker]\nenabled = false\nlease_seconds = 10\n\n[import]\nallow_hosts = [\"127.0.0.1\"]\n"
                .to_owned(),
        ),
        ..Launch::default()
    };
    let server = Server::launch(launch.clone());
    let (id, playback_id) = create_asset(&server, &url);
    let log = work.path().join("worker.log");
    let mut first = start_worker(&server, &launch, &log);
    // Killed once it is playable and part of the way through, long before the end.
    let reached = wait_for(
        "the first worker to be mid-way",
        Duration::from_secs(120),
        || {
            let now = get_asset(&server, &id);
            (now["playable"] == true && now["progress"].as_u64() >= Some(20)).then_some(now)
        },
    );
    first.kill().unwrap();
    first.wait().unwrap();
    let objects = server.objects_dir().join("assets").join(&id);
    assert_eq!(reached["status"], "preparing");
    assert!(
        get_asset(&server, &id)["progress"].as_u64() < Some(95),
        "the worker was killed mid-transcode:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(objects.join("hls/master.m3u8").exists());

    let mut second = start_worker(&server, &launch, &log);
    let ready = settled(&server, &id, Duration::from_secs(240));
    let worker_log = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(ready["status"], "ready", "{ready}\n{worker_log}");
    // The jobs queue has no API: read it in the shared database.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let db = runtime
        .block_on(Db::connect(&database_url(&server, &launch)))
        .unwrap();
    let jobs = runtime.block_on(db.jobs_for_subject(&id)).unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].status, JobStatus::Succeeded);
    assert_eq!(jobs[0].attempts, 2, "taken over after the kill");

    // No duplicate output: every file of a rendition is its init segment, its playlists or a
    // segment its playlist lists, once.
    for rendition in ["v0", "v1", "a0"] {
        let dir = objects.join("hls").join(rendition);
        let playlist = std::fs::read(dir.join("index.m3u8")).unwrap();
        let Ok(m3u8_rs::Playlist::MediaPlaylist(playlist)) = m3u8_rs::parse_playlist_res(&playlist)
        else {
            panic!("{rendition}/index.m3u8 is a media playlist");
        };
        assert!(playlist.end_list);
        let mut expected: BTreeSet<String> =
            playlist.segments.iter().map(|s| s.uri.clone()).collect();
        assert_eq!(expected.len(), playlist.segments.len(), "{rendition}");
        expected.insert("init.mp4".to_owned());
        expected.insert("index.m3u8".to_owned());
        if rendition != "a0" {
            expected.insert("iframes.m3u8".to_owned());
        }
        assert_eq!(files_under(&dir), expected, "{rendition}");
    }
    let top: BTreeSet<String> = files_under(&objects)
        .into_iter()
        .filter(|name| !name.starts_with("hls/v") && !name.starts_with("hls/a0"))
        .collect();
    assert_eq!(
        top,
        [
            "hls/master.m3u8",
            "images/poster.jpg",
            "images/storyboard.jpg",
            "images/storyboard.vtt",
            "source"
        ]
        .map(String::from)
        .into(),
    );
    let work_dir = server.data_dir.path().join("work");
    assert!(
        !work_dir.exists() || files_under(&work_dir).is_empty(),
        "no working files are left: {:?}",
        files_under(&work_dir)
    );
    let (_, events) = server.api("GET", "/v1/events?limit=100", None);
    let ready_events = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "asset.ready" && e["object"]["id"] == id.as_str())
        .count();
    assert_eq!(ready_events, 1);

    // It plays through the server.
    let master = server.get(&format!("/hls/{playback_id}/master.m3u8"));
    assert_eq!(master.status, 200);
    assert!(master.text().contains("#EXT-X-I-FRAME-STREAM-INF:"));
    decode_cleanly(server.url(&format!("/hls/{playback_id}/v1/index.m3u8")));

    second.kill().unwrap();
    second.wait().unwrap();
}
