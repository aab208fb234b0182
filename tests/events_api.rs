//! Black-box: the event history over real HTTP: `GET /v1/events` pages and filters, and
//! `GET /v1/events/stream` as Server-Sent Events read by curl, resumed with `Last-Event-ID`.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{basic_auth, created_event_ids, hs256_jwt, http_request, Server, API_KEY, API_SECRET};
use serde_json::{json, Value};

/// How long a test waits for an event it expects.
const EVENT_TIMEOUT: Duration = Duration::from_secs(15);

fn error_code(response: &(u16, Value)) -> (u16, &str) {
    (
        response.0,
        response.1["error"]["code"].as_str().unwrap_or_default(),
    )
}

#[test]
fn event_history_pages_oldest_first_and_filters() {
    let server = Server::start();
    let streams: Vec<Value> = (0..3)
        .map(|n| server.create_live_stream(json!({ "name": format!("show {n}") })))
        .collect();

    let (status, first) = server.api("GET", "/v1/events?limit=2", None);
    assert_eq!(status, 200, "{first}");
    let items = first["data"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    for (event, stream) in items.iter().zip(&streams) {
        assert!(event["id"].as_str().unwrap().starts_with("evt_"));
        assert_eq!(event["type"], "live_stream.created");
        assert_eq!(
            event["object"],
            json!({ "type": "live_stream", "id": stream["id"] })
        );
        assert_eq!(event["data"]["id"], stream["id"]);
        assert_eq!(event["data"]["name"], stream["name"]);
        assert!(event["created_at"].is_string());
    }
    let cursor = first["next_cursor"].as_str().unwrap();
    let (status, rest) = server.api("GET", &format!("/v1/events?limit=2&cursor={cursor}"), None);
    assert_eq!(status, 200, "{rest}");
    assert_eq!(rest["data"].as_array().unwrap().len(), 1);
    assert_eq!(rest["data"][0]["object"]["id"], streams[2]["id"]);
    assert!(rest["next_cursor"].is_null());

    assert_eq!(created_event_ids(&server).len(), 3);
    let (status, ended) = server.api("GET", "/v1/events?type=session.ended", None);
    assert_eq!(status, 200);
    assert_eq!(ended["data"], json!([]));
    let one = streams[1]["id"].as_str().unwrap();
    let (status, about_one) = server.api("GET", &format!("/v1/events?object_id={one}"), None);
    assert_eq!(status, 200);
    assert_eq!(about_one["data"].as_array().unwrap().len(), 1);
    assert_eq!(about_one["data"][0]["object"]["id"], one);

    let bad_type = server.api("GET", "/v1/events?type=live_stream.exploded", None);
    assert_eq!(error_code(&bad_type), (400, "invalid_request"));
    assert!(bad_type.1["error"]["message"]
        .as_str()
        .unwrap()
        .contains("live_stream.exploded"));
    for query in ["cursor=evt_unknown", "limit=0", "limit=101", "colour=red"] {
        let response = server.api("GET", &format!("/v1/events?{query}"), None);
        assert_eq!(error_code(&response), (400, "invalid_request"), "{query}");
    }
    let anonymous = http_request("GET", &server.url("/v1/events"), &[], None);
    assert_eq!(anonymous.status, 401);
}

/// One Server-Sent Event as read off the wire.
#[derive(Debug, Clone, PartialEq)]
struct SseEvent {
    id: String,
    event: String,
    data: Value,
}

/// What the reader thread reports.
enum Frame {
    /// The response status line arrived: the server has subscribed.
    Status(u16),
    Event(SseEvent),
}

/// `curl -N` following an event stream; killed on drop.
struct EventStream {
    child: Child,
    frames: mpsc::Receiver<Frame>,
}

impl EventStream {
    /// Opens `path` (with `headers`) and waits for a 200 status line.
    fn open(server: &Server, path: &str, headers: &[&str]) -> EventStream {
        EventStream::open_as(server, API_KEY, API_SECRET, path, headers)
    }

    /// Like [`EventStream::open`], authenticated as API key `key_id`.
    fn open_as(
        server: &Server,
        key_id: &str,
        secret: &str,
        path: &str,
        headers: &[&str],
    ) -> EventStream {
        EventStream::open_with(server, &basic_auth(key_id, secret), path, headers)
    }

    /// Like [`EventStream::open`], with `authorization` as the `Authorization` header value.
    fn open_with(
        server: &Server,
        authorization: &str,
        path: &str,
        headers: &[&str],
    ) -> EventStream {
        let mut command = Command::new("curl");
        command
            .args(["-sN", "-i", "-H"])
            .arg(format!("authorization: {authorization}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for header in headers {
            command.args(["-H", header]);
        }
        let mut child = command.arg(server.url(path)).spawn().expect("curl");
        let stdout = child.stdout.take().unwrap();
        let (sender, frames) = mpsc::channel();
        std::thread::spawn(move || read_frames(BufReader::new(stdout), &sender));
        let stream = EventStream { child, frames };
        match stream.frames.recv_timeout(EVENT_TIMEOUT) {
            Ok(Frame::Status(200)) => stream,
            Ok(Frame::Status(status)) => panic!("event stream answered {status}"),
            _ => panic!("event stream did not answer"),
        }
    }

    fn next(&self) -> SseEvent {
        match self.frames.recv_timeout(EVENT_TIMEOUT) {
            Ok(Frame::Event(event)) => event,
            Ok(Frame::Status(_)) => panic!("a second status line"),
            Err(e) => panic!("no event within {EVENT_TIMEOUT:?}: {e}"),
        }
    }

    /// Whether the server ends the stream within `timeout` (events before the end are
    /// skipped).
    fn ends_within(&self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.frames.recv_timeout(left) {
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return true,
                Err(mpsc::RecvTimeoutError::Timeout) => return false,
            }
        }
    }

    /// The next `count` events' ids.
    fn next_ids(&self, count: usize) -> Vec<String> {
        (0..count).map(|_| self.next().id).collect()
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Parses curl's `-i` output: the status line, headers, then `field: value` lines grouped into
/// events by blank lines (comments, starting with `:`, are keep-alives).
fn read_frames(reader: impl BufRead, sender: &mpsc::Sender<Frame>) {
    let mut lines = reader.lines().map_while(Result::ok);
    let Some(status_line) = lines.next() else {
        return;
    };
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    if sender.send(Frame::Status(status)).is_err() {
        return;
    }
    for line in lines.by_ref() {
        if line.trim().is_empty() {
            break;
        }
    }
    let (mut id, mut event, mut data) = (String::new(), String::new(), String::new());
    for line in lines {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            if !data.is_empty() {
                let parsed = SseEvent {
                    id: std::mem::take(&mut id),
                    event: std::mem::take(&mut event),
                    data: serde_json::from_str(&std::mem::take(&mut data)).expect("JSON data"),
                };
                if sender.send(Frame::Event(parsed)).is_err() {
                    return;
                }
            }
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
        match field {
            "id" => id = value,
            "event" => event = value,
            "data" => data.push_str(&value),
            _ => {}
        }
    }
}

#[test]
fn event_stream_resumes_after_the_last_event_id_without_gap_or_duplicate() {
    let server = Server::start();
    for n in 0..3 {
        server.create_live_stream(json!({ "name": format!("before {n}") }));
    }
    let before = created_event_ids(&server);

    // Resuming after the first event replays the two later ones, then follows live events.
    let resumed = EventStream::open(
        &server,
        "/v1/events/stream",
        &[&format!("Last-Event-ID: {}", before[0])],
    );
    let replayed = resumed.next();
    assert_eq!(replayed.id, before[1]);
    assert_eq!(replayed.event, "live_stream.created");
    assert_eq!(replayed.data["id"], before[1]);
    assert_eq!(replayed.data["type"], "live_stream.created");
    assert_eq!(replayed.data["object"]["type"], "live_stream");
    assert_eq!(resumed.next().id, before[2]);
    let live_stream = server.create_live_stream(json!({ "name": "live 1" }));
    let live = resumed.next();
    assert_eq!(live.data["object"]["id"], live_stream["id"]);
    assert_eq!(live.data["data"]["name"], "live 1");

    // A stream opened from now on sees only what follows.
    let fresh = EventStream::open(&server, "/v1/events/stream", &[]);
    // The query parameter works like the header; with a type filter.
    let filtered = EventStream::open(
        &server,
        &format!(
            "/v1/events/stream?type=live_stream.created&last_event_id={}",
            before[2]
        ),
        &[],
    );
    assert_eq!(filtered.next().id, live.id);

    for n in 2..4 {
        server.create_live_stream(json!({ "name": format!("live {n}") }));
    }
    let all = created_event_ids(&server);
    assert_eq!(all.len(), 6);
    assert_eq!(
        all[..4],
        [before.clone(), vec![live.id.clone()]].concat()[..]
    );
    // Each stream sees exactly the events after its position, in order, each once: the next
    // events after these are the ones of one more stream, not repeats.
    assert_eq!(resumed.next_ids(2), all[4..]);
    assert_eq!(fresh.next_ids(2), all[4..]);
    assert_eq!(filtered.next_ids(2), all[4..]);
    server.create_live_stream(json!({ "name": "last" }));
    let last = created_event_ids(&server).pop().unwrap();
    for stream in [&resumed, &fresh, &filtered] {
        assert_eq!(stream.next().id, last);
    }

    // Resuming from the newest event replays nothing and waits for the next one.
    let caught_up = EventStream::open(
        &server,
        "/v1/events/stream",
        &[&format!("Last-Event-ID: {last}")],
    );
    server.create_live_stream(json!({ "name": "after last" }));
    let after_last = created_event_ids(&server).pop().unwrap();
    assert_eq!(caught_up.next().id, after_last);
    assert_eq!(resumed.next().id, after_last);
}

#[test]
fn event_stream_refuses_an_unknown_last_event_id_or_type() {
    let server = Server::start();
    let auth = format!(
        "authorization: Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{API_KEY}:{API_SECRET}")
        )
    );
    for (headers, query) in [
        (vec![auth.as_str(), "Last-Event-ID: evt_unknown"], ""),
        (vec![auth.as_str()], "?last_event_id=evt_unknown"),
        (vec![auth.as_str()], "?type=nope"),
    ] {
        let response = http_request(
            "GET",
            &server.url(&format!("/v1/events/stream{query}")),
            &headers,
            None,
        );
        assert_eq!(response.status, 400, "{query}: {}", response.text());
        let body: Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(body["error"]["code"], "invalid_request");
    }
    let anonymous = http_request("GET", &server.url("/v1/events/stream"), &[], None);
    assert_eq!(anonymous.status, 401);
}

#[test]
fn an_event_stream_ends_soon_after_its_api_key_is_revoked() {
    let server = Server::start();
    let (status, created) = server.api("POST", "/v1/api-keys", Some(json!({"name": "listener"})));
    assert_eq!(status, 201, "{created}");
    let key_id = created["data"]["id"].as_str().unwrap();
    let secret = created["data"]["secret"].as_str().unwrap();
    let doomed = EventStream::open_as(&server, key_id, secret, "/v1/events/stream", &[]);
    let other = EventStream::open(&server, "/v1/events/stream", &[]);
    server.create_live_stream(json!({ "name": "seen by both" }));
    assert_eq!(doomed.next().event, "live_stream.created");
    assert_eq!(other.next().event, "live_stream.created");

    let (status, _) = server.api("DELETE", &format!("/v1/api-keys/{key_id}"), None);
    assert_eq!(status, 204);
    // Checked every 5 s; the slack covers a slow machine.
    assert!(
        doomed.ends_within(Duration::from_secs(12)),
        "the stream of a revoked key stayed open"
    );
    // Streams of other keys go on.
    let after = server.create_live_stream(json!({ "name": "after" }));
    assert_eq!(other.next().data["object"]["id"], after["id"]);
}

#[test]
fn an_event_stream_ends_soon_after_its_token_expires() {
    let server = Server::start();
    let expires = chrono::Utc::now().timestamp() + 2;
    let token = hs256_jwt(json!({ "apikey": API_KEY, "exp": expires }), API_SECRET);
    let stream = EventStream::open_with(
        &server,
        &format!("Bearer {token}"),
        "/v1/events/stream",
        &[],
    );
    server.create_live_stream(json!({ "name": "seen before expiry" }));
    assert_eq!(stream.next().event, "live_stream.created");
    // Expiry in 2 s, checked every 5 s; the slack covers a slow machine.
    assert!(
        stream.ends_within(Duration::from_secs(15)),
        "the stream of an expired token stayed open"
    );
}
