//! Black-box: abuse a stranger on the network could try, each against a running server over
//! real HTTP or RTMP: made-up methods growing `/metrics`, slow or silent HTTP connections and a
//! flood of them, a read-only key learning an upload's write token, a tus length that wraps
//! around, secrets put in an RTMP application or an import URL, and webhooks aimed at the
//! server's own network.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::vod::{create_upload, patch, url_of, TUS};
use common::{basic_auth, closed_by_server, http_request, wait_for, Launch, Publisher, Server};
use serde_json::{json, Value};

/// How long a test waits for the server to close a connection before failing.
const CLOSE_DEADLINE: Duration = Duration::from_secs(30);

/// Sends `request` as it is on a new connection and returns what the server answered before
/// closing it.
fn raw_exchange(server: &Server, request: &str) -> String {
    let mut socket = TcpStream::connect(("127.0.0.1", server.http_port)).unwrap();
    socket.set_read_timeout(Some(CLOSE_DEADLINE)).unwrap();
    socket.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let _ = socket.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

fn launch_with(config: &str) -> Server {
    Server::launch(Launch {
        config: Some(config.to_owned()),
        ..Launch::default()
    })
}

#[test]
fn made_up_http_methods_share_one_metrics_series() {
    let server = Server::start();
    for i in 0..300 {
        let answer = raw_exchange(
            &server,
            &format!("BREW{i} /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"),
        );
        assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    }
    let metrics = server.get("/metrics").text();
    assert!(
        !metrics.contains("BREW"),
        "a made-up method never becomes a label"
    );
    let other = metrics
        .lines()
        .find(|line| {
            line.starts_with("sluice_http_request_duration_seconds_count{method=\"other\"")
        })
        .unwrap_or_else(|| panic!("no `other` series in:\n{metrics}"));
    assert!(other.ends_with(" 300"), "{other}");
}

#[test]
fn half_sent_headers_and_silent_connections_are_closed() {
    let server = launch_with("[http_server]\nheader_read_timeout_seconds = 1\n");
    let mut half = TcpStream::connect(("127.0.0.1", server.http_port)).unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        .unwrap();
    let silent = TcpStream::connect(("127.0.0.1", server.http_port)).unwrap();
    let started = Instant::now();
    assert!(
        closed_by_server(half, CLOSE_DEADLINE),
        "half-sent headers are cut off"
    );
    assert!(
        closed_by_server(silent, CLOSE_DEADLINE),
        "a silent connection is cut off"
    );
    assert!(started.elapsed() < CLOSE_DEADLINE);
    assert_eq!(server.get("/healthz").status, 200);
}

#[test]
fn connections_beyond_the_cap_are_closed_and_the_server_recovers() {
    let server = launch_with("[http_server]\nmax_connections = 4\n");
    let held: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(("127.0.0.1", server.http_port)).unwrap())
        .collect();
    // The server accepts in order: give it the four before the fifth.
    std::thread::sleep(Duration::from_millis(500));
    let extra = TcpStream::connect(("127.0.0.1", server.http_port)).unwrap();
    assert!(
        closed_by_server(extra, CLOSE_DEADLINE),
        "a fifth connection is closed"
    );
    assert!(server.log().contains("HTTP connection refused"));
    drop(held);
    let health = wait_for("a slot to free up", CLOSE_DEADLINE, || {
        let answer = raw_exchange(
            &server,
            "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        );
        answer.starts_with("HTTP/1.1 200").then_some(answer)
    });
    assert!(health.contains("200 OK"));
}

#[test]
fn a_read_only_key_never_sees_an_upload_url() {
    let server = Server::start();
    let (status, created) = server.api(
        "POST",
        "/v1/api-keys",
        Some(json!({"name": "reader", "permissions": ["assets:read"]})),
    );
    assert_eq!(status, 201, "{created}");
    let reader = basic_auth(
        created["data"]["id"].as_str().unwrap(),
        created["data"]["secret"].as_str().unwrap(),
    );
    let upload = create_upload(&server, json!({}));
    let path = format!("/v1/uploads/{}", upload["id"].as_str().unwrap());

    let (status, read) = server.api_with_authorization(&reader, "GET", &path, None);
    assert_eq!(status, 200, "{read}");
    assert!(read["data"].get("url").is_none(), "{read}");
    let token = url_of(&upload).rsplit('/').next().unwrap().to_owned();
    assert!(!read.to_string().contains(&token));

    let (status, written) = server.api("GET", &path, None);
    assert_eq!(status, 200);
    assert_eq!(written["data"]["url"], upload["url"]);
}

#[test]
fn a_tus_length_past_the_integer_limit_is_refused_and_the_server_stays_up() {
    let server = Server::start();
    let upload = create_upload(&server, json!({"max_size": 100}));
    let url = url_of(&upload);
    let created = http_request("POST", &url, &[TUS, "Upload-Length: 10"], None);
    assert_eq!(created.status, 201, "{}", created.text());
    assert_eq!(patch(&url, 0, &[], b"hello").status, 204);

    let path = url.strip_prefix(&server.url("")).unwrap();
    let answer = raw_exchange(
        &server,
        &format!(
            "PATCH {path} HTTP/1.1\r\nHost: localhost\r\nTus-Resumable: 1.0.0\r\n\
             Content-Type: application/offset+octet-stream\r\nUpload-Offset: 5\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\nworld",
            i64::MAX
        ),
    );
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:?}");
    assert_eq!(server.get("/healthz").status, 200);
    assert_eq!(patch(&url, 5, &[], b"world").status, 204);
}

#[test]
fn a_key_put_in_the_rtmp_application_never_reaches_the_log() {
    let server = Server::start();
    let secret = "sk9Qw7Zr2LmXv4Tb";
    let url = format!("rtmp://127.0.0.1:{}/{secret}/stream", server.rtmp_port);
    let publisher = Publisher::start(&url, "160x90", 10, 2);
    assert!(
        !publisher.wait(),
        "a publish to an unknown application fails"
    );
    wait_for("the refusal to be logged", CLOSE_DEADLINE, || {
        server.log().contains("Refused publish.").then_some(())
    });
    let log = server.log();
    assert!(
        !log.contains(secret),
        "the application is not logged:\n{log}"
    );
}

#[test]
fn an_import_url_is_shown_without_its_credentials_or_signature() {
    let server = Server::start();
    let (status, created) = server.api(
        "POST",
        "/v1/assets",
        Some(json!({"input": "https://ann:hunter2@media.example.com/a.mp4?X-Amz-Signature=f00d"})),
    );
    assert_eq!(status, 201, "{created}");
    let shown =
        json!({"type": "url", "url": "https://media.example.com/a.mp4?X-Amz-Signature=redacted"});
    assert_eq!(created["data"]["input"], shown);
    let id = created["data"]["id"].as_str().unwrap();
    let (_, fetched) = server.api("GET", &format!("/v1/assets/{id}"), None);
    assert_eq!(fetched["data"]["input"], shown);
    let (_, events) = server.api("GET", "/v1/events?limit=100", None);
    let text = events.to_string();
    assert!(text.contains(id), "{text}");
    assert!(
        !text.contains("hunter2") && !text.contains("f00d"),
        "{text}"
    );
}

#[test]
fn webhooks_to_the_servers_own_network_are_refused_when_asked() {
    let server = launch_with(
        "[webhooks]\ndeny_private = true\ntimeout_seconds = 1\nretry_base_seconds = 0.2\n\
         retry_max_interval_seconds = 1\n",
    );
    let receiver = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = receiver.local_addr().unwrap().port();
    receiver.set_nonblocking(true).unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    std::thread::spawn(move || loop {
        match receiver.accept() {
            Ok(_) => {
                counted.fetch_add(1, Ordering::SeqCst);
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    });
    let (status, webhook) = server.api(
        "POST",
        "/v1/webhooks",
        Some(json!({"url": format!("http://127.0.0.1:{port}/hook"), "events": ["live_stream.created"]})),
    );
    assert_eq!(status, 201, "{webhook}");
    let webhook_id = webhook["data"]["id"].as_str().unwrap().to_owned();
    server.create_live_stream(json!({"name": "noticed"}));

    let error = wait_for("a refused attempt", CLOSE_DEADLINE, || {
        let (_, page) = server.api(
            "GET",
            &format!("/v1/webhooks/{webhook_id}/deliveries"),
            None,
        );
        page["data"]
            .as_array()?
            .iter()
            .flat_map(|delivery| delivery["attempts"].as_array().cloned().unwrap_or_default())
            .find_map(|attempt: Value| attempt["error"].as_str().map(str::to_owned))
    });
    assert!(
        error.contains("loopback") && error.contains("not allowed"),
        "{error}"
    );
    assert_eq!(connections.load(Ordering::SeqCst), 0, "nothing reached it");
}

#[test]
fn an_rtmp_peer_not_yet_publishing_cannot_send_large_messages() {
    let server = Server::start();
    let mut socket = server.rtmp_handshaken();
    // A video message of 1 MiB announced on chunk stream 4, then the start of its payload.
    socket
        .write_all(&[0x04, 0, 0, 0, 0x10, 0, 0, 0x09, 1, 0, 0, 0])
        .unwrap();
    let _ = socket.write_all(&[0x17; 100]);
    assert!(
        closed_by_server(socket, Duration::from_secs(5)),
        "cut off at once, long before the idle timeout"
    );
    assert_eq!(server.get("/healthz").status, 200);
}

#[test]
fn rtmp_connections_beyond_the_global_cap_are_closed() {
    let server = launch_with("[live]\nrtmp_max_connections = 2\nrtmp_max_connections_per_ip = 2\n");
    let held = [server.rtmp_handshaken(), server.rtmp_handshaken()];
    let extra = TcpStream::connect(("127.0.0.1", server.rtmp_port)).unwrap();
    assert!(closed_by_server(extra, Duration::from_secs(5)));
    assert!(server.log().contains("the server holds as many as allowed"));
    drop(held);
}
