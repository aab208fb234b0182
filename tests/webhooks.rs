//! Black-box: webhooks against a real HTTP receiver on a loopback port. The receiver fails
//! (500), then hangs past the delivery timeout, then accepts: every event is still delivered,
//! signed with the endpoint's secret; attempts show in the deliveries API; replays re-send;
//! deliveries queued while the receiver is down survive a restart of the server.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{created_event_ids, wait_for, Launch, Server};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

/// Short timeouts and retries, so failures and recoveries play out in seconds.
const WEBHOOK_CONFIG: &str = "[webhooks]\n\
    timeout_seconds = 1\n\
    retry_base_seconds = 0.5\n\
    retry_max_interval_seconds = 2\n";
/// How long a hanging receiver keeps a request open: well past the delivery timeout.
const HANG: Duration = Duration::from_secs(4);
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Fail,
    Hang,
    Accept,
}

/// One request the receiver accepted.
#[derive(Debug, Clone)]
struct Received {
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header"))
    }
}

/// A webhook receiver: a plain HTTP/1.1 server on a thread per connection.
struct Receiver {
    port: u16,
    mode: Arc<Mutex<Mode>>,
    accepted: Arc<Mutex<Vec<Received>>>,
    requests: Arc<Mutex<usize>>,
    stop: Arc<AtomicBool>,
}

impl Receiver {
    fn start(mode: Mode) -> Receiver {
        Self::on(TcpListener::bind("127.0.0.1:0").unwrap(), mode)
    }

    fn on(listener: TcpListener, mode: Mode) -> Receiver {
        let receiver = Receiver {
            port: listener.local_addr().unwrap().port(),
            mode: Arc::new(Mutex::new(mode)),
            accepted: Arc::default(),
            requests: Arc::default(),
            stop: Arc::default(),
        };
        let (mode, accepted, requests, stop) = (
            receiver.mode.clone(),
            receiver.accepted.clone(),
            receiver.requests.clone(),
            receiver.stop.clone(),
        );
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let (mode, accepted, requests) = (mode.clone(), accepted.clone(), requests.clone());
                std::thread::spawn(move || serve(stream, &mode, &accepted, &requests));
            }
        });
        receiver
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks", self.port)
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn accepted(&self) -> Vec<Received> {
        self.accepted.lock().unwrap().clone()
    }

    fn requests(&self) -> usize {
        *self.requests.lock().unwrap()
    }

    /// How many times each event id was accepted.
    fn accepted_counts(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for request in self.accepted() {
            *counts
                .entry(request.header("sluice-event-id").to_owned())
                .or_default() += 1;
        }
        counts
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(
    stream: TcpStream,
    mode: &Mutex<Mode>,
    accepted: &Mutex<Vec<Received>>,
    requests: &Mutex<usize>,
) {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return;
    }
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    let length = headers
        .get("content-length")
        .and_then(|value| value.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    assert!(request_line.starts_with("POST /hooks "), "{request_line}");
    *requests.lock().unwrap() += 1;
    let mut stream = reader.into_inner();
    let mode = *mode.lock().unwrap();
    let answer = match mode {
        Mode::Fail => "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\nconnection: close\r\n\r\nnope",
        Mode::Hang => {
            std::thread::sleep(HANG);
            return;
        }
        Mode::Accept => {
            accepted.lock().unwrap().push(Received { headers, body });
            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
        }
    };
    let _ = stream.write_all(answer.as_bytes());
}

/// Checks `Sluice-Signature: t=…,v1=…` against the secret, as a receiver would.
fn verify_signature(request: &Received, secret: &str) {
    let header = request.header("sluice-signature");
    let (t, v1) = header.split_once(',').expect("t=…,v1=…");
    let timestamp: u64 = t.strip_prefix("t=").unwrap().parse().unwrap();
    let signature = v1.strip_prefix("v1=").unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(&request.body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    assert_eq!(
        signature,
        expected,
        "signature of {}",
        request.header("sluice-event-id")
    );
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        now.abs_diff(timestamp) < 300,
        "signature timestamp is current"
    );
}

fn launch() -> Server {
    Server::launch(Launch {
        config: Some(WEBHOOK_CONFIG.to_owned()),
        ..Launch::default()
    })
}

fn create_webhook(server: &Server, body: Value) -> Value {
    let (status, json) = server.api("POST", "/v1/webhooks", Some(body));
    assert_eq!(status, 201, "create webhook: {json}");
    json["data"].clone()
}

fn deliveries(server: &Server, webhook_id: &str) -> Vec<Value> {
    let (status, page) = server.api(
        "GET",
        &format!("/v1/webhooks/{webhook_id}/deliveries?limit=100"),
        None,
    );
    assert_eq!(status, 200, "{page}");
    page["data"].as_array().unwrap().clone()
}

/// Waits until the receiver has accepted every one of `event_ids`, then checks each accepted
/// request as a receiver would.
fn wait_for_all(receiver: &Receiver, event_ids: &[String], secret: &str) {
    let wanted: BTreeSet<&String> = event_ids.iter().collect();
    wait_for("every event to be delivered", DELIVERY_TIMEOUT, || {
        let counts = receiver.accepted_counts();
        wanted
            .iter()
            .all(|id| counts.contains_key(*id))
            .then_some(())
    });
    for request in receiver.accepted() {
        verify_signature(&request, secret);
        assert_eq!(request.header("content-type"), "application/json");
        assert!(request.header("user-agent").starts_with("Sluice-Webhooks/"));
        assert!(request.header("sluice-delivery-id").starts_with("whd_"));
        let event: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(event["id"], request.header("sluice-event-id"));
        assert_eq!(event["type"], "live_stream.created");
        assert_eq!(event["object"]["type"], "live_stream");
        assert_eq!(event["data"]["id"], event["object"]["id"]);
    }
}

#[test]
fn deliveries_survive_failing_and_hanging_receivers_and_can_be_replayed() {
    let server = launch();
    let receiver = Receiver::start(Mode::Fail);
    let webhook = create_webhook(
        &server,
        json!({ "url": receiver.url(), "events": ["live_stream.created"], "description": "test" }),
    );
    let id = webhook["id"].as_str().unwrap().to_owned();
    let secret = webhook["secret"].as_str().unwrap().to_owned();
    assert!(id.starts_with("wh_"));
    assert!(secret.starts_with("whsec_"));

    // The receiver answers 500: every attempt fails with that status.
    for n in 0..3 {
        server.create_live_stream(json!({ "name": format!("failing {n}") }));
    }
    wait_for("attempts answered 500", DELIVERY_TIMEOUT, || {
        let deliveries = deliveries(&server, &id);
        (deliveries.len() == 3
            && deliveries.iter().all(|d| {
                d["status"] == "pending"
                    && d["attempt_count"].as_u64().unwrap() >= 1
                    && d["last_status_code"] == 500
                    && d["next_attempt_at"].is_string()
            }))
        .then_some(())
    });

    // The receiver hangs: attempts time out, and the API answers meanwhile.
    receiver.set(Mode::Hang);
    let requests_before = receiver.requests();
    wait_for("a request to hang", DELIVERY_TIMEOUT, || {
        (receiver.requests() > requests_before).then_some(())
    });
    for n in 0..2 {
        server.create_live_stream(json!({ "name": format!("hanging {n}") }));
    }
    let (status, streams) = server.api("GET", "/v1/live-streams", None);
    assert_eq!(status, 200);
    assert_eq!(streams["data"].as_array().unwrap().len(), 5);
    wait_for("an attempt to time out", DELIVERY_TIMEOUT, || {
        deliveries(&server, &id)
            .iter()
            .flat_map(|d| d["attempts"].as_array().unwrap().clone())
            .any(|attempt| {
                attempt["status_code"].is_null()
                    && attempt["error"]
                        .as_str()
                        .is_some_and(|e| e.contains("timed out"))
            })
            .then_some(())
    });

    // The receiver recovers: every event arrives, signed.
    receiver.set(Mode::Accept);
    let events = created_event_ids(&server);
    assert_eq!(events.len(), 5);
    wait_for_all(&receiver, &events, &secret);
    let delivered = wait_for(
        "deliveries to be marked delivered",
        DELIVERY_TIMEOUT,
        || {
            let deliveries = deliveries(&server, &id);
            deliveries
                .iter()
                .all(|d| d["status"] == "delivered")
                .then_some(deliveries)
        },
    );
    assert_eq!(
        delivered
            .iter()
            .map(|d| d["event_id"].as_str().unwrap().to_owned())
            .collect::<BTreeSet<_>>(),
        events.iter().cloned().collect::<BTreeSet<_>>()
    );
    let failing = &delivered[0];
    assert_eq!(failing["webhook_id"], id.as_str());
    assert_eq!(failing["event_type"], "live_stream.created");
    assert_eq!(failing["last_status_code"], 200);
    assert!(failing["next_attempt_at"].is_null());
    assert!(failing["delivered_at"].is_string());
    let attempts = failing["attempts"].as_array().unwrap();
    assert_eq!(
        attempts.len() as u64,
        failing["attempt_count"].as_u64().unwrap()
    );
    assert_eq!(attempts[0]["status_code"], 500);
    assert_eq!(attempts.last().unwrap()["status_code"], 200);
    assert!(attempts
        .iter()
        .all(|a| a["duration_ms"].is_u64() && a["started_at"].is_string()));

    // One delivery, by id, with its attempts.
    let delivery_id = failing["id"].as_str().unwrap();
    let (status, one) = server.api(
        "GET",
        &format!("/v1/webhooks/{id}/deliveries/{delivery_id}"),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(one["data"]["attempts"], failing["attempts"]);

    // Replaying a delivered delivery sends it again, under the same event id.
    let first_event = failing["event_id"].as_str().unwrap().to_owned();
    let (status, replayed) = server.api(
        "POST",
        &format!("/v1/webhooks/{id}/deliveries/{delivery_id}/replay"),
        None,
    );
    assert_eq!(status, 202, "{replayed}");
    assert_eq!(replayed["data"]["status"], "pending");
    wait_for("the replayed delivery", DELIVERY_TIMEOUT, || {
        (receiver.accepted_counts()[&first_event] >= 2).then_some(())
    });

    // Replaying a range queues new deliveries of that event and every later one.
    let (status, range) = server.api(
        "POST",
        &format!("/v1/webhooks/{id}/replay"),
        Some(json!({ "since": events[3] })),
    );
    assert_eq!(status, 202, "{range}");
    assert_eq!(range["data"]["queued"], 2);
    wait_for("the replayed range", DELIVERY_TIMEOUT, || {
        let counts = receiver.accepted_counts();
        (counts[&events[3]] >= 2 && counts[&events[4]] >= 2).then_some(())
    });
    wait_for_all(&receiver, &events, &secret);

    // The metrics count what the receiver saw: deliveries (replays included) and failures.
    let metrics = server.get("/metrics").text();
    let counter = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /metrics:\n{metrics}"))
    };
    assert!(counter("sluice_webhook_deliveries_total") >= 8.0);
    assert!(counter("sluice_webhook_delivery_failures_total") >= 2.0);

    let (status, bad) = server.api(
        "POST",
        &format!("/v1/webhooks/{id}/replay"),
        Some(json!({ "since": "evt_unknown" })),
    );
    assert_eq!(status, 400, "{bad}");
    let (status, _) = server.api(
        "POST",
        &format!("/v1/webhooks/{id}/deliveries/whd_unknown/replay"),
        None,
    );
    assert_eq!(status, 404);
}

#[test]
fn deliveries_queued_while_the_receiver_is_down_arrive_after_a_restart() {
    // A port with nothing listening yet: connections are refused until the receiver starts.
    let reserved = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = reserved.local_addr().unwrap().port();
    drop(reserved);

    let server = launch();
    let webhook = create_webhook(
        &server,
        json!({ "url": format!("http://127.0.0.1:{port}/hooks") }),
    );
    let id = webhook["id"].as_str().unwrap().to_owned();
    let secret = webhook["secret"].as_str().unwrap().to_owned();
    for n in 0..3 {
        server.create_live_stream(json!({ "name": format!("offline {n}") }));
    }
    let events = created_event_ids(&server);
    wait_for("refused attempts", DELIVERY_TIMEOUT, || {
        let deliveries = deliveries(&server, &id);
        (deliveries.len() == 3
            && deliveries.iter().all(|d| {
                d["status"] == "pending"
                    && d["last_status_code"].is_null()
                    && d["last_error"].as_str().is_some_and(|e| !e.is_empty())
            }))
        .then_some(())
    });

    let server = server.restart();
    let receiver = Receiver::on(
        TcpListener::bind(("127.0.0.1", port)).unwrap(),
        Mode::Accept,
    );
    wait_for_all(&receiver, &events, &secret);
    wait_for(
        "deliveries to be marked delivered",
        DELIVERY_TIMEOUT,
        || {
            deliveries(&server, &id)
                .iter()
                .all(|d| d["status"] == "delivered")
                .then_some(())
        },
    );
}

#[test]
fn webhook_endpoints_are_validated_updated_and_deleted() {
    let server = launch();
    for (body, field) in [
        (json!({ "url": "ftp://example.com/hooks" }), "url"),
        (json!({ "url": "not a url" }), "url"),
        (
            json!({ "url": "http://example.com", "events": ["live_stream.exploded"] }),
            "live_stream.exploded",
        ),
        (
            json!({ "url": "http://example.com", "secret": "mine" }),
            "secret",
        ),
        (json!({ "events": [] }), "url"),
    ] {
        let (status, error) = server.api("POST", "/v1/webhooks", Some(body.clone()));
        assert_eq!(status, 400, "{body}: {error}");
        assert_eq!(error["error"]["code"], "invalid_request");
        assert!(
            error["error"]["message"].as_str().unwrap().contains(field),
            "{body}: {error}"
        );
    }

    let webhook = create_webhook(
        &server,
        json!({ "url": "http://127.0.0.1:9/hooks", "events": ["live_stream.created", "live_stream.created"] }),
    );
    let id = webhook["id"].as_str().unwrap().to_owned();
    assert_eq!(webhook["events"], json!(["live_stream.created"]));
    assert_eq!(webhook["enabled"], true);
    assert!(webhook["description"].is_null());
    let (status, fetched) = server.api("GET", &format!("/v1/webhooks/{id}"), None);
    assert_eq!(status, 200);
    assert_eq!(fetched["data"], webhook);
    create_webhook(&server, json!({ "url": "https://example.com/second" }));
    let (status, page) = server.api("GET", "/v1/webhooks?limit=1", None);
    assert_eq!(status, 200);
    assert_eq!(page["data"][0]["id"], id.as_str());
    assert!(page["next_cursor"].is_string());

    // A disabled endpoint gets no delivery for a new event.
    let (status, disabled) = server.api(
        "PATCH",
        &format!("/v1/webhooks/{id}"),
        Some(json!({ "enabled": false, "description": "paused" })),
    );
    assert_eq!(status, 200, "{disabled}");
    assert_eq!(disabled["data"]["enabled"], false);
    assert_eq!(disabled["data"]["description"], "paused");
    server.create_live_stream(json!({ "name": "unseen" }));
    assert!(deliveries(&server, &id).is_empty());
    let (status, enabled) = server.api(
        "PATCH",
        &format!("/v1/webhooks/{id}"),
        Some(json!({ "enabled": true, "description": null, "events": [] })),
    );
    assert_eq!(status, 200);
    assert!(enabled["data"]["description"].is_null());
    assert_eq!(enabled["data"]["events"], json!([]));
    server.create_live_stream(json!({ "name": "seen" }));
    assert_eq!(deliveries(&server, &id).len(), 1);
    let (status, bad) = server.api(
        "PATCH",
        &format!("/v1/webhooks/{id}"),
        Some(json!({ "events": ["nope"] })),
    );
    assert_eq!(status, 400, "{bad}");

    let (status, rotated) = server.api("POST", &format!("/v1/webhooks/{id}/rotate-secret"), None);
    assert_eq!(status, 200);
    assert_ne!(rotated["data"]["secret"], webhook["secret"]);

    let (status, _) = server.api("DELETE", &format!("/v1/webhooks/{id}"), None);
    assert_eq!(status, 204);
    for (method, path) in [
        ("GET", format!("/v1/webhooks/{id}")),
        ("DELETE", format!("/v1/webhooks/{id}")),
        ("GET", format!("/v1/webhooks/{id}/deliveries")),
        ("PATCH", format!("/v1/webhooks/{id}")),
    ] {
        let body = (method == "PATCH").then(|| json!({ "enabled": true }));
        let (status, error) = server.api(method, &path, body);
        assert_eq!(status, 404, "{method} {path}");
        assert_eq!(error["error"]["code"], "not_found");
    }
}
