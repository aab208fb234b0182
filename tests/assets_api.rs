//! `/v1/assets` against the real binary: URL imports are checked before anything is fetched,
//! and assets are listed, fetched, given playback ids and deleted with their objects.

mod common;

use serde_json::{json, Value};

use common::{http_request, Launch, Server};

fn import(server: &Server, body: Value) -> Value {
    let (status, created) = server.api("POST", "/v1/assets", Some(body));
    assert_eq!(status, 201, "{created}");
    created["data"].clone()
}

#[test]
fn url_imports_are_checked_before_anything_is_fetched() {
    let server = Server::start();
    for input in [
        json!("ftp://example.com/a.mp4"),
        json!("/videos/a.mp4"),
        json!("videos/a.mp4"),
        json!("file:///etc/passwd"),
        json!("https://"),
        json!(42),
    ] {
        let (status, error) = server.api("POST", "/v1/assets", Some(json!({"input": input})));
        assert_eq!(status, 400, "{input}: {error}");
        assert_eq!(error["error"]["code"], "invalid_request");
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .contains("input"),
            "{error}"
        );
    }
    let (status, error) = server.api(
        "POST",
        "/v1/assets",
        Some(json!({"input": "https://example.com/a.mp4", "ladder": [{"name": "x"}]})),
    );
    assert_eq!(status, 400, "{error}");
    assert!(error["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("ladder"));
    let (status, listed) = server.api("GET", "/v1/assets", None);
    assert_eq!(status, 200);
    assert_eq!(listed["data"], json!([]), "nothing was created");
}

#[test]
fn assets_are_listed_fetched_and_deleted() {
    // No worker: the imports (of hosts that do not resolve here) stay `preparing`.
    let server = Server::launch(Launch {
        config: Some("[worker]\nenabled = false\n".into()),
        ..Launch::default()
    });
    let first = import(
        &server,
        json!({"input": "https://example.com/one.mp4", "ladder": ["360p"]}),
    );
    let second = import(
        &server,
        json!({"input": "https://example.com/two.mp4", "playback_policy": ["signed"]}),
    );
    assert_eq!(first["status"], "preparing");
    assert_eq!(
        first["input"],
        json!({"type": "url", "url": "https://example.com/one.mp4"})
    );
    let playback_id = first["playback_ids"][0]["id"].as_str().unwrap();
    assert_eq!(
        first["playback_url"],
        server.url(&format!("/hls/{playback_id}/master.m3u8"))
    );

    let (_, listed) = server.api("GET", "/v1/assets", None);
    let ids: Vec<&Value> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|asset| &asset["id"])
        .collect();
    assert_eq!(ids, [&second["id"], &first["id"]], "newest first");
    let (_, preparing) = server.api("GET", "/v1/assets?status=preparing&limit=1", None);
    assert_eq!(preparing["data"][0]["id"], second["id"]);
    assert!(preparing["next_cursor"].is_string());
    let (_, ready) = server.api("GET", "/v1/assets?status=ready", None);
    assert_eq!(ready["data"], json!([]));

    let second_id = second["id"].as_str().unwrap();
    let (status, added) = server.api(
        "POST",
        &format!("/v1/assets/{second_id}/playback-ids"),
        Some(json!({"policy": "public"})),
    );
    assert_eq!(status, 201, "{added}");
    let (_, fetched) = server.api("GET", &format!("/v1/assets/{second_id}"), None);
    assert_eq!(fetched["data"]["playback_ids"].as_array().unwrap().len(), 2);
    assert!(fetched["data"]["playback_url"]
        .as_str()
        .unwrap()
        .contains(added["data"]["id"].as_str().unwrap()));

    let first_id = first["id"].as_str().unwrap();
    let objects = server.objects_dir().join("assets").join(first_id);
    std::fs::create_dir_all(objects.join("hls")).unwrap();
    std::fs::write(objects.join("hls/master.m3u8"), "#EXTM3U\n").unwrap();
    let (status, _) = server.api("DELETE", &format!("/v1/assets/{first_id}"), None);
    assert_eq!(status, 204);
    assert!(!objects.join("hls/master.m3u8").exists());
    let (status, error) = server.api("GET", &format!("/v1/assets/{first_id}"), None);
    assert_eq!(status, 404);
    assert_eq!(error["error"]["message"], "asset not found");
    let (_, events) = server.api("GET", "/v1/events?limit=100", None);
    let deleted = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|event| event["type"] == "asset.deleted")
        .expect("asset.deleted recorded");
    assert_eq!(deleted["object"]["id"], first_id);

    // The asset routes need an API key.
    let unauthenticated = http_request("GET", &server.url("/v1/assets"), &[], None);
    assert_eq!(unauthenticated.status, 401);
}
