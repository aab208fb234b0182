//! Black-box: the REST API over real HTTP: Basic and JWT auth, and JSON errors with the right
//! status codes.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::{basic_auth, hs256_jwt, http_request, Server, API_KEY, API_SECRET};
use serde_json::{json, Value};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn error_code(body: &[u8]) -> String {
    let json: Value = serde_json::from_slice(body).unwrap_or_else(|e| {
        panic!(
            "error body is JSON ({e}): {}",
            String::from_utf8_lossy(body)
        )
    });
    json["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn bearer_jwts_are_checked_and_errors_are_json() {
    let server = Server::start();
    let url = server.url("/v1/live-streams");
    let bearer = |token: &str| format!("authorization: Bearer {token}");

    let valid = hs256_jwt(json!({"apikey": API_KEY, "exp": now() + 60}), API_SECRET);
    let response = http_request("GET", &url, &[&bearer(&valid)], None);
    assert_eq!(response.status, 200, "{}", response.text());

    let create = http_request(
        "POST",
        &url,
        &[&bearer(&valid), "content-type: application/json"],
        Some(br#"{"name": "by token"}"#),
    );
    assert_eq!(create.status, 201, "{}", create.text());

    let expired = hs256_jwt(json!({"apikey": API_KEY, "exp": now() - 3600}), API_SECRET);
    let wrong_secret = hs256_jwt(
        json!({"apikey": API_KEY, "exp": now() + 60}),
        "not-the-secret",
    );
    let unknown_key = hs256_jwt(
        json!({"apikey": "ak_nobody", "exp": now() + 60}),
        API_SECRET,
    );
    // `alg: none`, unsigned (CVE-2015-9235).
    let none = format!(
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.",
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            json!({"apikey": API_KEY, "exp": now() + 60}).to_string()
        )
    );
    for bad in [expired, wrong_secret, unknown_key, none] {
        let response = http_request("GET", &url, &[&bearer(&bad)], None);
        assert_eq!(response.status, 401, "{bad}: {}", response.text());
        assert_eq!(error_code(&response.body), "unauthorized");
    }

    let anonymous = http_request("GET", &url, &[], None);
    assert_eq!(anonymous.status, 401);
    assert!(anonymous.header("www-authenticate").is_some());
    assert_eq!(error_code(&anonymous.body), "unauthorized");

    let basic = format!("authorization: {}", basic_auth(API_KEY, API_SECRET));
    let json_body = "content-type: application/json";
    let malformed = http_request("POST", &url, &[&basic, json_body], Some(b"{\"name\": "));
    assert_eq!(malformed.status, 400);
    assert_eq!(error_code(&malformed.body), "invalid_request");

    let huge = vec![b' '; 2 * 1024 * 1024];
    let too_big = http_request("POST", &url, &[&basic, json_body], Some(&huge));
    assert_eq!(too_big.status, 413);
    assert_eq!(error_code(&too_big.body), "payload_too_large");

    let bad_ladder = http_request(
        "POST",
        &url,
        &[&basic, json_body],
        Some(br#"{"name": "x", "ladder": ["8k"]}"#),
    );
    assert_eq!(bad_ladder.status, 400, "{}", bad_ladder.text());
    assert!(
        bad_ladder.text().contains("ladder"),
        "{}",
        bad_ladder.text()
    );

    let unknown = http_request(
        "GET",
        &server.url("/v1/live-streams/ls_nope"),
        &[&basic],
        None,
    );
    assert_eq!(unknown.status, 404);
    assert_eq!(error_code(&unknown.body), "not_found");
}

/// Fills an OpenAPI path template with placeholder values: `/v1/live-streams/{id}` →
/// `/v1/live-streams/x`.
fn placeholder_path(template: &str) -> String {
    template
        .split('/')
        .map(|part| if part.starts_with('{') { "x" } else { part })
        .collect::<Vec<_>>()
        .join("/")
}

#[test]
fn every_documented_operation_is_served() {
    let server = Server::start();
    let response = server.get("/openapi.json");
    assert_eq!(response.status, 200);
    let spec: Value = serde_json::from_slice(&response.body).unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = spec["paths"].as_object().unwrap();
    let mut api_operations = 0;
    for (template, item) in paths {
        for method in item.as_object().unwrap().keys() {
            let url = server.url(&placeholder_path(template));
            let response = http_request(&method.to_uppercase(), &url, &[], None);
            if template.starts_with("/v1/") {
                // Authentication wraps matched routes only: an unrouted path or method would
                // answer the router's 404/405 instead.
                assert_eq!(
                    response.status, 401,
                    "{method} {template} is documented but not served"
                );
                api_operations += 1;
            } else {
                assert_ne!(response.status, 405, "{method} {template}");
            }
        }
    }
    assert!(
        api_operations >= 10,
        "{api_operations} API operations documented"
    );
    assert!(
        paths.contains_key("/openapi.json"),
        "the document describes itself"
    );
}
