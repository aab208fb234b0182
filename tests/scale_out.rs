//! Black-box: several `sluice serve --role …` processes sharing one database and one object
//! store: Postgres and an S3 bucket under `make test-scale`, else one SQLite file and the
//! shared objects directory of one data directory.
//!
//! - One `api` process and two `worker` processes: six uploads are each prepared once, and the
//!   job of a worker killed with SIGKILL mid-transcode is finished by the other one once its
//!   lease runs out.
//! - One `ingest` process and one `api` process: the api's event stream and webhooks carry
//!   the live events the ingest process records, and disabling or deleting a live stream
//!   through the api kicks its publisher off the ingest process.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::cluster::{database_url, Node};
use common::vod::{get_asset, put_asset, settled};
use common::{wait_for, Launch, Publisher, Server, API_KEY, API_SECRET};
use serde_json::{json, Value};
use sluice_media::fixtures::ffmpeg_clip;
use sluice_storage::{Db, JobStatus};

/// The api process runs no worker; every process reads this file, the workers its short lease
/// (a killed worker's job is taken over 10 s after its last heartbeat: short enough for the
/// test, long enough that a live worker's heartbeat delayed on a loaded machine keeps its job).
const CLUSTER_CONFIG: &str = "role = \"api\"\n\
    [worker]\nlease_seconds = 10\n\
    [webhooks]\nretry_base_seconds = 0.5\nretry_max_interval_seconds = 1\n";

/// An H.264 MP4 of `seconds` of the test pattern at `size`, made by ffmpeg.
fn clip(dir: &std::path::Path, name: &str, seconds: u32, size: &str) -> Vec<u8> {
    let seconds = seconds.to_string();
    let source = format!("testsrc2=size={size}:rate=25");
    let path = ffmpeg_clip(
        dir,
        name,
        &[
            "-f",
            "lavfi",
            "-i",
            &source,
            "-t",
            &seconds,
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ],
    );
    std::fs::read(path).unwrap()
}

#[test]
fn two_workers_prepare_six_uploads_once_each_and_finish_a_killed_workers_job() {
    let work = tempfile::tempdir().unwrap();
    let launch = Launch {
        config: Some(CLUSTER_CONFIG.to_owned()),
        ..Launch::default()
    };
    let api = Server::launch(launch.clone());
    let ladder = json!({"ladder": [{"name": "180p", "height": 180, "bitrate_kbps": 300}]});
    // Queued before any worker runs, oldest first: the long one is claimed first. Its progress
    // is recorded with each heartbeat (a third of the lease), so it is long enough to be seen
    // part-way and killed well before its end even on a fast machine.
    let long = put_asset(
        &api,
        &clip(work.path(), "long.mp4", 300, "640x360"),
        ladder.clone(),
    );
    let short_clip = clip(work.path(), "short.mp4", 2, "320x240");
    let short: Vec<String> = (0..5)
        .map(|_| put_asset(&api, &short_clip, ladder.clone()))
        .collect();
    assert_eq!(
        get_asset(&api, &long)["progress"],
        0,
        "the api process prepares nothing"
    );

    let mut workers = [
        Node::start(&api, &launch, "worker"),
        Node::start(&api, &launch, "worker"),
    ];
    for worker in &workers {
        assert_eq!(worker.get("/healthz").status, 200);
        assert_eq!(
            worker.get("/v1/assets").status,
            404,
            "a worker serves no API"
        );
    }
    wait_for(
        "the long asset to be part-way",
        Duration::from_secs(120),
        || {
            let asset = get_asset(&api, &long);
            (asset["progress"].as_u64() >= Some(10)).then_some(())
        },
    );
    let holder = workers
        .iter()
        .position(|worker| worker.log().contains(&long))
        .expect("a worker prepares the long asset");
    workers[holder].kill();
    let at_kill = get_asset(&api, &long);
    assert_eq!(
        at_kill["status"], "preparing",
        "killed mid-transcode: {at_kill}"
    );
    let survivor = &workers[1 - holder];

    for id in short.iter().chain([&long]) {
        let asset = settled(&api, id, Duration::from_secs(300));
        assert_eq!(asset["status"], "ready", "{asset}\n{}", survivor.log());
    }
    assert!(
        survivor.log().contains(&long),
        "the surviving worker finished the long asset"
    );

    // Each asset was prepared by exactly one job: one attempt, or two for the one whose
    // worker was killed.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let db = runtime
        .block_on(Db::connect(&database_url(&api, &launch)))
        .unwrap();
    for id in short.iter().chain([&long]) {
        let jobs = runtime.block_on(db.jobs_for_subject(id)).unwrap();
        assert_eq!(jobs.len(), 1, "{id}");
        assert_eq!(jobs[0].status, JobStatus::Succeeded, "{id}");
        let attempts = if id == &long { 2 } else { 1 };
        assert_eq!(jobs[0].attempts, attempts, "{id}: {:?}", jobs[0]);
    }
    let (_, events) = api.api("GET", "/v1/events?type=asset.ready&limit=100", None);
    let mut ready: Vec<&str> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["object"]["id"].as_str().unwrap())
        .collect();
    ready.sort_unstable();
    let mut expected: Vec<&str> = short.iter().chain([&long]).map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(ready, expected, "one asset.ready per asset");
}

/// Webhook requests' JSON bodies, received by a local HTTP server on a thread of its own.
struct WebhookReceiver {
    url: String,
    received: Arc<Mutex<Vec<Value>>>,
}

impl WebhookReceiver {
    fn start() -> WebhookReceiver {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        let received: Arc<Mutex<Vec<Value>>> = Arc::default();
        let sink = received.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(async move {
                let app = axum::Router::new().route(
                    "/hooks",
                    axum::routing::post(move |axum::Json(body): axum::Json<Value>| async move {
                        sink.lock().unwrap().push(body);
                    }),
                );
                listener.set_nonblocking(true).unwrap();
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app).await.unwrap();
            });
        });
        WebhookReceiver { url, received }
    }

    /// The types of the events received about `object_id`.
    fn types_for(&self, object_id: &str) -> BTreeSet<String> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|event| event["object"]["id"] == object_id)
            .map(|event| event["type"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// `curl -N` following the api's event stream into a file; killed on drop.
struct EventStream {
    child: Child,
    path: std::path::PathBuf,
}

impl EventStream {
    fn open(server: &Server, dir: &std::path::Path) -> EventStream {
        let path = dir.join("events.sse");
        let child = Command::new("curl")
            .args(["-sN", "-u", &format!("{API_KEY}:{API_SECRET}")])
            .arg(server.url("/v1/events/stream"))
            .stdout(std::fs::File::create(&path).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("curl");
        // The stream says it is open before the first event.
        wait_for("the event stream to open", Duration::from_secs(10), || {
            std::fs::read_to_string(&path)
                .unwrap()
                .contains(": open")
                .then_some(())
        });
        EventStream { child, path }
    }

    /// Every event received so far, in order.
    fn events(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.path)
            .unwrap()
            .lines()
            .filter_map(|line| line.strip_prefix("data: "))
            .map(|data| serde_json::from_str(data).unwrap())
            .collect()
    }

    /// Waits until an event of `event_type` about `object_id` arrives.
    fn wait_for_event(&self, event_type: &str, object_id: &str) {
        wait_for(
            &format!("{event_type} on the api's event stream"),
            Duration::from_secs(30),
            || {
                self.events()
                    .iter()
                    .any(|event| event["type"] == event_type && event["object"]["id"] == object_id)
                    .then_some(())
            },
        );
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Publishes to `node` until the live stream is active, as the api process reports it.
fn go_live(api: &Server, node: &Node, stream: &Value) -> Publisher {
    let key = stream["stream_key"].as_str().unwrap();
    let publisher = Publisher::start(&node.rtmp_url(key), "320x240", 25, 120);
    let id = stream["id"].as_str().unwrap();
    wait_for("the stream to be active", Duration::from_secs(60), || {
        let (_, now) = api.api("GET", &format!("/v1/live-streams/{id}"), None);
        (now["data"]["status"] == "active").then_some(())
    });
    publisher
}

fn wait_kicked(publisher: &mut Publisher, node: &Node) {
    wait_for(
        "the publisher to be kicked off the ingest process",
        Duration::from_secs(30),
        || publisher.exited(),
    );
    assert!(
        node.log().contains("Stopping the session."),
        "{}",
        node.log()
    );
}

#[test]
fn an_api_process_streams_and_kicks_the_live_sessions_of_an_ingest_process() {
    let work = tempfile::tempdir().unwrap();
    let launch = Launch {
        config: Some(CLUSTER_CONFIG.to_owned()),
        ..Launch::default()
    };
    let api = Server::launch(launch.clone());
    let ingest = Node::start(&api, &launch, "ingest");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", api.rtmp_port)).is_err(),
        "the api process takes no RTMP"
    );
    assert_eq!(ingest.get("/readyz").status, 200);
    assert_eq!(
        ingest.get("/v1/live-streams").status,
        404,
        "ingest serves no API"
    );
    assert!(ingest.get("/metrics").text().contains("sluice_"));

    let receiver = WebhookReceiver::start();
    let (status, webhook) = api.api("POST", "/v1/webhooks", Some(json!({"url": receiver.url})));
    assert_eq!(status, 201, "{webhook}");
    let events = EventStream::open(&api, work.path());

    // Disabling through the api ends the session on the ingest process.
    let first = api.create_live_stream(json!({"name": "across processes"}));
    let first_id = first["id"].as_str().unwrap();
    let mut publisher = go_live(&api, &ingest, &first);
    events.wait_for_event("live_stream.active", first_id);
    let (status, body) = api.api(
        "POST",
        &format!("/v1/live-streams/{first_id}/disable"),
        None,
    );
    assert_eq!(status, 200, "{body}");
    wait_kicked(&mut publisher, &ingest);
    events.wait_for_event("live_stream.idle", first_id);

    // So does deleting it.
    let second = api.create_live_stream(json!({"name": "deleted while live"}));
    let second_id = second["id"].as_str().unwrap();
    let mut publisher = go_live(&api, &ingest, &second);
    let (status, body) = api.api("DELETE", &format!("/v1/live-streams/{second_id}"), None);
    assert_eq!(status, 204, "{body}");
    wait_kicked(&mut publisher, &ingest);
    events.wait_for_event("live_stream.deleted", second_id);

    // Webhooks carry the events of both processes, each once.
    let want = |types: &[&str]| {
        types
            .iter()
            .map(|t| (*t).to_owned())
            .collect::<BTreeSet<_>>()
    };
    wait_for(
        "the webhooks of the first stream",
        Duration::from_secs(30),
        || {
            let got = receiver.types_for(first_id);
            want(&[
                "live_stream.created",
                "live_stream.connected",
                "live_stream.active",
                "live_stream.disabled",
                "live_stream.disconnected",
                "live_stream.idle",
            ])
            .is_subset(&got)
            .then_some(())
        },
    );
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for event in receiver.received.lock().unwrap().iter() {
        *seen
            .entry(event["id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert!(seen.values().all(|&count| count == 1), "{seen:?}");
    // The event stream has each event once too, in history order, whichever process
    // recorded it.
    let streamed: Vec<String> = events
        .events()
        .iter()
        .map(|event| event["id"].as_str().unwrap().to_owned())
        .collect();
    let (_, history) = api.api("GET", "/v1/events?limit=100", None);
    let recorded: Vec<String> = history["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["id"].as_str().unwrap().to_owned())
        .skip_while(|id| *id != streamed[0])
        .take(streamed.len())
        .collect();
    assert_eq!(
        streamed, recorded,
        "the history from the first streamed event on"
    );
}

#[test]
fn an_api_process_serves_the_ll_hls_an_ingest_process_packages_in_memory() {
    use sluice_packager::ll_hls_conformance as ll;

    let launch = Launch {
        config: Some(CLUSTER_CONFIG.to_owned()),
        ..Launch::default()
    };
    let api = Server::launch(launch.clone());
    let mut ingest = Node::start(&api, &launch, "ingest");
    let stream = api.create_live_stream(json!({
        "name": "low across processes", "ladder": ["source"], "latency_mode": "low"
    }));
    let id = stream["id"].as_str().unwrap();
    let playback_id = stream["playback_ids"][0]["id"].as_str().unwrap();
    let _publisher = go_live(&api, &ingest, &stream);
    let playlist_path = format!("/hls/{playback_id}/v0/index.m3u8");

    // The api node's playlist has the parts only the ingest node's memory holds.
    let playlist = wait_for(
        "parts through the api node",
        Duration::from_secs(60),
        || {
            let response = api.get(&playlist_path);
            let text = (response.status == 200).then(|| response.text())?;
            let playlist = ll::check(&text).ok()?;
            playlist.last_part().is_some().then_some(playlist)
        },
    );

    // A blocking request through the api node is held until the next part exists.
    let (msn, part) = playlist.last_part().unwrap();
    let response = api.get(&format!(
        "{playlist_path}?_HLS_msn={msn}&_HLS_part={}",
        part + 1
    ));
    assert_eq!(response.status, 200, "{}", response.text());
    let after = ll::check(&response.text()).unwrap_or_else(|errors| panic!("{errors:#?}"));
    assert!(
        after.has_part(msn, part + 1),
        "the answer lists the part asked for"
    );
    ll::check_successor(&playlist, &after).unwrap_or_else(|errors| panic!("{errors:#?}"));

    // The hinted part comes through the api node too, once it exists.
    let hint = &after.preload_hints[0].uri;
    let hinted = api.get(&format!("/hls/{playback_id}/v0/{hint}"));
    assert_eq!(hinted.status, 200, "the hinted part");
    assert!(!hinted.body.is_empty());

    // Refusals keep their meaning across the hop.
    let far = api.get(&format!("{playlist_path}?_HLS_msn={}", msn + 10));
    assert_eq!(far.status, 400, "{}", far.text());

    // The ingest node answers only its peers, who present the node token.
    let internal = format!("/internal/low-latency/{id}/v0/index.m3u8");
    assert_eq!(ingest.get(&internal).status, 401);

    // With the ingest node gone, the api node answers from the store: the regular playlist
    // (once two segments are complete, the first is surely stored).
    wait_for("two complete segments", Duration::from_secs(60), || {
        let response = api.get(&playlist_path);
        let playlist = ll::parse(&response.text()).ok()?;
        (playlist.segments.len() >= 2).then_some(())
    });
    ingest.kill();
    let response = api.get(&playlist_path);
    assert_eq!(response.status, 200, "{}", response.text());
    let text = response.text();
    assert!(
        text.contains("#EXT-X-TARGETDURATION") && !text.contains("#EXT-X-PART-INF"),
        "{text}"
    );
}
