//! Black-box: authentication and authorisation over real HTTP against the real binary: API
//! JWT checks, permissions, `/v1/api-keys`, the `sluice keys` CLI, signing keys, playback ids
//! and signed HLS playback of a stream published over RTMP.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use common::{
    basic_auth, create_signing_key, hs256_jwt, http_get, playback_token, wait_for, Publisher,
    Server, API_KEY, API_SECRET,
};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use m3u8_rs::Playlist;
use serde_json::{json, Value};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Asserts an error response: its status, code, and that its message mentions `words`.
fn assert_error(response: (u16, Value), status: u16, code: &str, words: &str) {
    let (got, body) = response;
    assert_eq!(got, status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(words),
        "message {message:?} should mention {words:?}"
    );
}

#[test]
fn api_jwts_are_refused_with_the_reason() {
    let server = Server::start();
    let get = |token: &str| {
        server.api_with_authorization(&bearer(token), "GET", "/v1/live-streams", None)
    };
    let exp = now() + 300;

    for aud in [
        None,
        Some(json!("sluice")),
        Some(json!(["other", "sluice"])),
    ] {
        let mut claims = json!({"apikey": API_KEY, "exp": exp});
        if let Some(aud) = aud {
            claims["aud"] = aud;
        }
        let (status, body) = get(&hs256_jwt(claims.clone(), API_SECRET.as_bytes()));
        assert_eq!(status, 200, "{claims}: {body}");
    }

    // `alg: none`, unsigned (CVE-2015-9235).
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(json!({"apikey": API_KEY, "exp": exp}).to_string())
    );
    assert_error(get(&none), 401, "unauthorized", "HS256");

    // RS256/HS256 confusion: an RS256 token, and an HS256 token keyed with a public key.
    let signing_key = create_signing_key(&server, "RS256");
    let rs256 = encode(
        &Header::new(Algorithm::RS256),
        &json!({"apikey": API_KEY, "exp": exp}),
        &EncodingKey::from_rsa_pem(signing_key["private_key"].as_str().unwrap().as_bytes())
            .unwrap(),
    )
    .unwrap();
    assert_error(get(&rs256), 401, "unauthorized", "HS256");
    let public_pem = signing_key["public_key"].as_str().unwrap();
    let confused = hs256_jwt(
        json!({"apikey": API_KEY, "exp": exp}),
        public_pem.as_bytes(),
    );
    assert_error(get(&confused), 401, "unauthorized", "signature");

    let expired = hs256_jwt(
        json!({"apikey": API_KEY, "exp": now() - 3600}),
        API_SECRET.as_bytes(),
    );
    assert_error(get(&expired), 401, "unauthorized", "expired");
    let early = hs256_jwt(
        json!({"apikey": API_KEY, "exp": exp + 3600, "nbf": now() + 3600}),
        API_SECRET.as_bytes(),
    );
    assert_error(get(&early), 401, "unauthorized", "not yet valid");
    let wrong_aud = hs256_jwt(
        json!({"apikey": API_KEY, "exp": exp, "aud": "someone-else"}),
        API_SECRET.as_bytes(),
    );
    assert_error(get(&wrong_aud), 401, "unauthorized", "audience");
    let unknown = hs256_jwt(
        json!({"apikey": "ak_nobody", "exp": exp}),
        API_SECRET.as_bytes(),
    );
    assert_error(get(&unknown), 401, "unauthorized", "unknown API key");
    let no_exp = hs256_jwt(json!({"apikey": API_KEY}), API_SECRET.as_bytes());
    assert_error(get(&no_exp), 401, "unauthorized", "exp");
    for claims in [
        json!({"apikey": API_KEY, "exp": now() + 2 * 24 * 3600}),
        json!({"apikey": API_KEY, "exp": u64::MAX}),
        // Issued a year ago and valid for a year: refused on its last day too.
        json!({"apikey": API_KEY, "iat": now() - 365 * 24 * 3600, "exp": now() + 3600}),
    ] {
        let long_lived = hs256_jwt(claims, API_SECRET.as_bytes());
        assert_error(get(&long_lived), 401, "unauthorized", "lifetime too long");
    }
    let bad_permission = hs256_jwt(
        json!({"apikey": API_KEY, "exp": exp, "permissions": ["root"]}),
        API_SECRET.as_bytes(),
    );
    assert_error(get(&bad_permission), 401, "unauthorized", "permission");
}

#[test]
fn a_configured_jwt_audience_replaces_the_default() {
    let server = Server::launch(common::Launch {
        config: Some("[auth]\njwt_audience = \"video-api\"\n".to_owned()),
        ..common::Launch::default()
    });
    let token = |aud: &str| {
        hs256_jwt(
            json!({"apikey": API_KEY, "exp": now() + 60, "aud": aud}),
            API_SECRET.as_bytes(),
        )
    };
    let (status, _) = server.api_with_authorization(
        &bearer(&token("video-api")),
        "GET",
        "/v1/live-streams",
        None,
    );
    assert_eq!(status, 200);
    assert_error(
        server.api_with_authorization(&bearer(&token("sluice")), "GET", "/v1/live-streams", None),
        401,
        "unauthorized",
        "audience",
    );
}

#[test]
fn permissions_limit_keys_and_tokens_never_exceed_their_key() {
    let server = Server::start();
    assert_error(
        server.api(
            "POST",
            "/v1/api-keys",
            Some(json!({"name": "x", "permissions": ["live:read", "everything"]})),
        ),
        400,
        "invalid_request",
        "everything",
    );
    let (status, created) = server.api(
        "POST",
        "/v1/api-keys",
        Some(json!({"name": "viewer", "permissions": ["live:read"]})),
    );
    assert_eq!(status, 201, "{created}");
    let key = created["data"]["id"].as_str().unwrap().to_owned();
    let secret = created["data"]["secret"].as_str().unwrap().to_owned();
    assert_eq!(created["data"]["permissions"], json!(["live:read"]));
    let reader = basic_auth(&key, &secret);

    let (status, _) = server.api_with_authorization(&reader, "GET", "/v1/live-streams", None);
    assert_eq!(status, 200);
    assert_error(
        server.api_with_authorization(
            &reader,
            "POST",
            "/v1/live-streams",
            Some(json!({"name": "no"})),
        ),
        403,
        "forbidden",
        "live:write",
    );
    for path in ["/v1/api-keys", "/v1/signing-keys"] {
        assert_error(
            server.api_with_authorization(&reader, "GET", path, None),
            403,
            "forbidden",
            "admin",
        );
    }
    // A token asking for more than its key holds gets only what the key holds.
    let greedy = hs256_jwt(
        json!({"apikey": key, "exp": now() + 60, "permissions": ["admin", "live:write"]}),
        secret.as_bytes(),
    );
    assert_error(
        server.api_with_authorization(
            &bearer(&greedy),
            "POST",
            "/v1/live-streams",
            Some(json!({"name": "no"})),
        ),
        403,
        "forbidden",
        "live:write",
    );
    let (status, _) =
        server.api_with_authorization(&bearer(&greedy), "GET", "/v1/live-streams", None);
    assert_eq!(status, 200);

    // An admin key's token narrowed to live:read reads but cannot write.
    let narrowed = hs256_jwt(
        json!({"apikey": API_KEY, "exp": now() + 60, "permissions": ["live:read"]}),
        API_SECRET.as_bytes(),
    );
    let (status, _) =
        server.api_with_authorization(&bearer(&narrowed), "GET", "/v1/live-streams", None);
    assert_eq!(status, 200);
    assert_error(
        server.api_with_authorization(
            &bearer(&narrowed),
            "POST",
            "/v1/live-streams",
            Some(json!({"name": "no"})),
        ),
        403,
        "forbidden",
        "live:write",
    );

    // The permission granted lets the request through.
    let (status, writer) = server.api(
        "POST",
        "/v1/api-keys",
        Some(json!({"name": "publisher", "permissions": ["live:write", "live:read"]})),
    );
    assert_eq!(status, 201);
    let (status, body) = server.api_with_authorization(
        &basic_auth(
            writer["data"]["id"].as_str().unwrap(),
            writer["data"]["secret"].as_str().unwrap(),
        ),
        "POST",
        "/v1/live-streams",
        Some(json!({"name": "yes"})),
    );
    assert_eq!(status, 201, "{body}");
}

#[test]
fn api_keys_show_their_secret_once_and_revocation_takes_effect_at_once() {
    let server = Server::start();
    let (status, created) = server.api("POST", "/v1/api-keys", Some(json!({"name": "ci"})));
    assert_eq!(status, 201, "{created}");
    let data = &created["data"];
    let id = data["id"].as_str().unwrap().to_owned();
    let secret = data["secret"].as_str().unwrap().to_owned();
    assert!(id.starts_with("ak_"));
    assert_eq!(secret.len(), 40);
    assert_eq!(data["permissions"], json!(["admin"]));

    let (status, fetched) = server.api("GET", &format!("/v1/api-keys/{id}"), None);
    assert_eq!(status, 200);
    assert_eq!(fetched["data"]["name"], "ci");
    assert_eq!(fetched["data"]["revoked_at"], Value::Null);
    assert!(fetched["data"].get("secret").is_none(), "{fetched}");
    let (status, listed) = server.api("GET", "/v1/api-keys?limit=100", None);
    assert_eq!(status, 200);
    let keys = listed["data"].as_array().unwrap();
    assert!(keys.iter().any(|key| key["id"] == id.as_str()));
    assert!(keys.iter().any(|key| key["id"] == API_KEY));
    assert!(
        !listed.to_string().contains(&secret) && keys.iter().all(|k| k.get("secret").is_none()),
        "no secret in the list: {listed}"
    );
    assert_error(
        server.api("POST", "/v1/api-keys", Some(json!({"name": ""}))),
        400,
        "invalid_request",
        "name",
    );
    assert_error(
        server.api("GET", "/v1/api-keys/ak_nobody", None),
        404,
        "not_found",
        "API key",
    );

    let as_new_key = basic_auth(&id, &secret);
    let token = hs256_jwt(json!({"apikey": id, "exp": now() + 300}), secret.as_bytes());
    let (status, _) = server.api_with_authorization(&as_new_key, "GET", "/v1/live-streams", None);
    assert_eq!(status, 200);
    let (status, _) =
        server.api_with_authorization(&bearer(&token), "GET", "/v1/live-streams", None);
    assert_eq!(status, 200);

    let (status, _) = server.api("DELETE", &format!("/v1/api-keys/{id}"), None);
    assert_eq!(status, 204);
    assert_error(
        server.api_with_authorization(&as_new_key, "GET", "/v1/live-streams", None),
        401,
        "unauthorized",
        "revoked",
    );
    assert_error(
        server.api_with_authorization(&bearer(&token), "GET", "/v1/live-streams", None),
        401,
        "unauthorized",
        "revoked",
    );
    let (_, fetched) = server.api("GET", &format!("/v1/api-keys/{id}"), None);
    assert!(fetched["data"]["revoked_at"].is_string(), "{fetched}");
    assert_error(
        server.api("DELETE", "/v1/api-keys/ak_nobody", None),
        404,
        "not_found",
        "API key",
    );

    // A key may revoke itself.
    let (_, other) = server.api("POST", "/v1/api-keys", Some(json!({"name": "self"})));
    let self_auth = basic_auth(
        other["data"]["id"].as_str().unwrap(),
        other["data"]["secret"].as_str().unwrap(),
    );
    let path = format!("/v1/api-keys/{}", other["data"]["id"].as_str().unwrap());
    let (status, _) = server.api_with_authorization(&self_auth, "DELETE", &path, None);
    assert_eq!(status, 204);
    assert_error(
        server.api_with_authorization(&self_auth, "GET", "/v1/live-streams", None),
        401,
        "unauthorized",
        "revoked",
    );

    // Neither the bootstrap secret nor a created one is stored in clear.
    for entry in std::fs::read_dir(server.data_dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if !path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("sluice.db")
        {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        for secret in [API_SECRET, secret.as_str()] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{} holds a secret in clear",
                path.display()
            );
        }
    }
}

#[test]
fn a_revoked_environment_key_stays_revoked_after_a_restart() {
    let server = Server::start();
    let (status, created) = server.api("POST", "/v1/api-keys", Some(json!({"name": "other"})));
    assert_eq!(status, 201, "{created}");
    let other = basic_auth(
        created["data"]["id"].as_str().unwrap(),
        created["data"]["secret"].as_str().unwrap(),
    );
    let (status, _) = server.api("DELETE", &format!("/v1/api-keys/{API_KEY}"), None);
    assert_eq!(status, 204);
    assert_error(
        server.api("GET", "/v1/live-streams", None),
        401,
        "unauthorized",
        "revoked",
    );

    // Restarted with the same SLUICE_API_KEY/SLUICE_API_SECRET, the key is still refused,
    // and the log says why.
    let server = server.restart();
    assert_error(
        server.api("GET", "/v1/live-streams", None),
        401,
        "unauthorized",
        "revoked",
    );
    let token = hs256_jwt(json!({"apikey": API_KEY, "exp": now() + 60}), API_SECRET);
    assert_error(
        server.api_with_authorization(&bearer(&token), "GET", "/v1/live-streams", None),
        401,
        "unauthorized",
        "revoked",
    );
    let log = server.log();
    assert!(
        log.contains("SLUICE_API_KEY is revoked"),
        "a warning about the revoked key: {log}"
    );
    let (_, fetched) =
        server.api_with_authorization(&other, "GET", &format!("/v1/api-keys/{API_KEY}"), None);
    assert!(fetched["data"]["revoked_at"].is_string(), "{fetched}");
}

#[test]
fn keys_cli_creates_lists_and_revokes_keys_of_a_servers_data_dir() {
    let server = Server::start();
    let output = server.sluice_cli(
        &[
            "keys",
            "create",
            "--name",
            "from cli",
            "--permissions",
            "live:read",
        ],
        &[],
    );
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let field = |name: &str| {
        stdout
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .map(|value| value.trim().to_owned())
            .unwrap_or_else(|| panic!("no {name} in {stdout}"))
    };
    let key = field("key:");
    let secret = field("secret:");
    assert!(key.starts_with("ak_"));
    assert!(stdout.contains("shown only now"), "{stdout}");

    // The running server accepts the key at once, with the permissions it was given.
    let auth = basic_auth(&key, &secret);
    let (status, _) = server.api_with_authorization(&auth, "GET", "/v1/live-streams", None);
    assert_eq!(status, 200);
    assert_error(
        server.api_with_authorization(
            &auth,
            "POST",
            "/v1/live-streams",
            Some(json!({"name": "x"})),
        ),
        403,
        "forbidden",
        "live:write",
    );

    let listed = server.sluice_cli(&["keys", "list"], &[]);
    assert!(listed.status.success());
    let listed = String::from_utf8_lossy(&listed.stdout).to_string();
    let line = listed
        .lines()
        .find(|line| line.starts_with(&key))
        .unwrap_or_else(|| panic!("{key} listed: {listed}"));
    assert!(line.contains("from cli") && line.contains("live:read") && line.contains("active"));
    assert!(listed.contains(API_KEY), "{listed}");
    assert!(!listed.contains(&secret), "no secret in the list");

    let revoked = server.sluice_cli(&["keys", "revoke", &key], &[]);
    assert!(revoked.status.success());
    assert_error(
        server.api_with_authorization(&auth, "GET", "/v1/live-streams", None),
        401,
        "unauthorized",
        "revoked",
    );
    let listed = server.sluice_cli(&["keys", "list"], &[]);
    let listed = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(listed
        .lines()
        .any(|line| line.starts_with(&key) && line.contains("revoked")));

    let unknown = server.sluice_cli(&["keys", "revoke", "ak_nobody"], &[]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no API key ak_nobody"));
    let bad = server.sluice_cli(
        &["keys", "create", "--name", "x", "--permissions", "root"],
        &[],
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown permission"));

    // Another master key cannot open the stored secrets: a clear error, not a crash.
    let wrong_key = STANDARD.encode([7u8; 32]);
    let refused = server.sluice_cli(&["keys", "list"], &[("SLUICE_MASTER_KEY", &wrong_key)]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("master key"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn signing_keys_return_their_private_key_once() {
    let server = Server::start();
    let (status, defaulted) = server.api("POST", "/v1/signing-keys", Some(json!({})));
    assert_eq!(status, 201, "{defaulted}");
    assert_eq!(defaulted["data"]["algorithm"], "ES256");
    // No body at all is the same as `{}`.
    let (status, bodiless) = server.api("POST", "/v1/signing-keys", None);
    assert_eq!(status, 201, "{bodiless}");
    assert_eq!(bodiless["data"]["algorithm"], "ES256");
    assert!(bodiless["data"]["private_key"]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN PRIVATE KEY-----"));
    // A body still needs its JSON Content-Type, and unknown fields are still refused.
    let untyped = common::http_request(
        "POST",
        &server.url("/v1/signing-keys"),
        &[&format!(
            "authorization: {}",
            basic_auth(API_KEY, API_SECRET)
        )],
        Some(br#"{"algorithm": "RS256"}"#),
    );
    assert_eq!(untyped.status, 415, "{}", untyped.text());
    assert_error(
        server.api(
            "POST",
            "/v1/signing-keys",
            Some(json!({"algorithm": "ES256", "curve": "P-384"})),
        ),
        400,
        "invalid_request",
        "curve",
    );
    for algorithm in ["ES256", "RS256"] {
        let key = create_signing_key(&server, algorithm);
        let id = key["id"].as_str().unwrap();
        assert!(id.starts_with("sk_"));
        assert_eq!(key["algorithm"], algorithm);
        assert!(key["private_key"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(key["public_key"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----"));
        let (status, fetched) = server.api("GET", &format!("/v1/signing-keys/{id}"), None);
        assert_eq!(status, 200);
        assert_eq!(fetched["data"]["public_key"], key["public_key"]);
        assert!(fetched["data"].get("private_key").is_none());
        let (_, listed) = server.api("GET", "/v1/signing-keys", None);
        assert!(listed["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["id"] == id));
        assert!(!listed.to_string().contains("PRIVATE KEY"));
        let (status, _) = server.api("DELETE", &format!("/v1/signing-keys/{id}"), None);
        assert_eq!(status, 204);
        assert_error(
            server.api("GET", &format!("/v1/signing-keys/{id}"), None),
            404,
            "not_found",
            "signing key",
        );
    }
    assert_error(
        server.api(
            "POST",
            "/v1/signing-keys",
            Some(json!({"algorithm": "HS256"})),
        ),
        400,
        "invalid_request",
        "HS256",
    );
}

#[test]
fn playback_ids_are_managed_per_live_stream() {
    let server = Server::start();
    let stream = server.create_live_stream(json!({"name": "ids"}));
    let id = stream["id"].as_str().unwrap();
    let public = stream["playback_ids"][0].clone();
    assert_eq!(public["policy"], "public");
    let base = format!("/v1/live-streams/{id}/playback-ids");

    let (status, created) = server.api("POST", &base, Some(json!({"policy": "signed"})));
    assert_eq!(status, 201, "{created}");
    let signed = created["data"].clone();
    assert_eq!(signed["policy"], "signed");
    let (_, listed) = server.api("GET", &base, None);
    assert_eq!(listed["data"], json!([public, signed]));
    let (_, fetched) = server.api("GET", &format!("/v1/live-streams/{id}"), None);
    assert_eq!(fetched["data"]["playback_ids"], json!([public, signed]));
    let signed_id = signed["id"].as_str().unwrap();
    let (status, one) = server.api("GET", &format!("{base}/{signed_id}"), None);
    assert_eq!(status, 200);
    assert_eq!(one["data"], signed);

    assert_error(
        server.api("POST", &base, Some(json!({"policy": "secret"}))),
        400,
        "invalid_request",
        "policy",
    );
    assert_error(
        server.api(
            "POST",
            "/v1/live-streams/ls_nope/playback-ids",
            Some(json!({"policy": "public"})),
        ),
        404,
        "not_found",
        "live stream",
    );
    let other = server.create_live_stream(json!({"name": "other"}));
    assert_error(
        server.api(
            "GET",
            &format!(
                "/v1/live-streams/{}/playback-ids/{signed_id}",
                other["id"].as_str().unwrap()
            ),
            None,
        ),
        404,
        "not_found",
        "playback id",
    );

    for playback_id in [public["id"].as_str().unwrap(), signed_id] {
        let (status, _) = server.api("DELETE", &format!("{base}/{playback_id}"), None);
        assert_eq!(status, 204);
        assert_eq!(
            server
                .get(&format!("/hls/{playback_id}/master.m3u8"))
                .status,
            404
        );
    }
    let (_, listed) = server.api("GET", &base, None);
    assert_eq!(listed["data"], json!([]));
    assert_error(
        server.api("DELETE", &format!("{base}/{signed_id}"), None),
        404,
        "not_found",
        "playback id",
    );
}

/// The URIs of a playlist's children: variants and renditions, or init and media segments.
fn child_uris(body: &[u8]) -> Vec<String> {
    match m3u8_rs::parse_playlist_res(body).expect("a playlist") {
        Playlist::MasterPlaylist(master) => master
            .variants
            .iter()
            .map(|variant| variant.uri.clone())
            .chain(
                master
                    .alternatives
                    .iter()
                    .filter_map(|media| media.uri.clone()),
            )
            .collect(),
        Playlist::MediaPlaylist(media) => media
            .segments
            .iter()
            .flat_map(|segment| {
                segment
                    .map
                    .iter()
                    .map(|map| map.uri.clone())
                    .chain([segment.uri.clone()])
            })
            .collect(),
    }
}

#[test]
fn signed_playback_needs_a_valid_token_and_carries_it_to_every_uri() {
    let server = Server::start();
    let stream = server.create_live_stream(json!({"name": "signed"}));
    let stream_id = stream["id"].as_str().unwrap();
    let public_id = stream["playback_ids"][0]["id"].as_str().unwrap().to_owned();
    let (status, created) = server.api(
        "POST",
        &format!("/v1/live-streams/{stream_id}/playback-ids"),
        Some(json!({"policy": "signed"})),
    );
    assert_eq!(status, 201);
    let signed_id = created["data"]["id"].as_str().unwrap().to_owned();
    let es256 = create_signing_key(&server, "ES256");
    let rs256 = create_signing_key(&server, "RS256");

    let _publisher = Publisher::start(
        &server.rtmp_url(stream["stream_key"].as_str().unwrap()),
        "640x360",
        30,
        60,
    );
    // The public playback id plays without a token, as before.
    let public_master = wait_for(
        "the public master playlist",
        Duration::from_secs(30),
        || {
            let response = server.get(&format!("/hls/{public_id}/master.m3u8"));
            (response.status == 200).then_some(response)
        },
    );
    // Written for its viewer (a playback session on every playlist it lists): no cache may
    // share it.
    assert_eq!(
        public_master.header("cache-control"),
        Some("private, no-cache")
    );
    assert!(!public_master.text().contains("token="));
    assert!(public_master.text().contains("index.m3u8?vs="));

    let master_path = format!("/hls/{signed_id}/master.m3u8");
    let missing = server.get(&master_path);
    assert_eq!(missing.status, 401, "{}", missing.text());
    assert!(missing.text().contains("unauthorized"));
    // No Basic challenge: a browser playing the stream must not pop up a login dialog.
    assert_eq!(
        missing.header("www-authenticate"),
        Some("Bearer realm=\"sluice playback\"")
    );

    let exp = now() + 600;
    let good = playback_token(
        &es256,
        json!({"sub": signed_id, "aud": "video", "exp": exp}),
    );
    let with_token = |path: &str, token: &str| server.get(&format!("{path}?token={token}"));
    for (why, token) in [
        (
            "another playback id",
            playback_token(
                &es256,
                json!({"sub": public_id, "aud": "video", "exp": exp}),
            ),
        ),
        (
            "expired",
            playback_token(
                &es256,
                json!({"sub": signed_id, "aud": "video", "exp": now() - 3600}),
            ),
        ),
        (
            "thumbnail",
            playback_token(
                &es256,
                json!({"sub": signed_id, "aud": "thumbnail", "exp": exp}),
            ),
        ),
        ("malformed", "not.a.token".to_owned()),
        (
            // Signed by the RS256 key but naming the ES256 key's kid.
            "algorithm",
            {
                let mut header = Header::new(Algorithm::RS256);
                header.kid = Some(es256["id"].as_str().unwrap().to_owned());
                encode(
                    &header,
                    &json!({"sub": signed_id, "aud": "video", "exp": exp}),
                    &EncodingKey::from_rsa_pem(rs256["private_key"].as_str().unwrap().as_bytes())
                        .unwrap(),
                )
                .unwrap()
            },
        ),
    ] {
        let response = with_token(&master_path, &token);
        assert_eq!(response.status, 403, "{why}: {}", response.text());
        let body: Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(body["error"]["code"], "forbidden", "{why}");
    }

    // A token without one of its required claims is refused naming that claim.
    for (claim, claims) in [
        ("sub", json!({"aud": "video", "exp": exp})),
        ("aud", json!({"sub": signed_id, "exp": exp})),
        ("exp", json!({"sub": signed_id, "aud": "video"})),
    ] {
        let response = with_token(&master_path, &playback_token(&es256, claims));
        assert_eq!(response.status, 403, "no {claim}: {}", response.text());
        let body: Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(
            body["error"]["message"],
            format!("playback token lacks the required {claim} claim"),
            "{body}"
        );
    }

    let master = with_token(&master_path, &good);
    assert_eq!(master.status, 200, "{}", master.text());
    assert_eq!(master.header("cache-control"), Some("private, no-cache"));
    let renditions = child_uris(&master.body);
    assert!(!renditions.is_empty());
    let suffix = format!("?token={good}");
    for uri in &renditions {
        assert!(
            uri.contains(&format!("{suffix}&vs=")),
            "{uri} carries the token and the viewer's session"
        );
    }

    // Follow the rewritten URIs down to a segment, as a player would.
    let rendition = &renditions[0];
    let media = wait_for(
        "segments in the signed playlist",
        Duration::from_secs(30),
        || {
            let response = server.get(&format!("/hls/{signed_id}/{rendition}"));
            assert_eq!(response.status, 200, "{}", response.text());
            let uris = child_uris(&response.body);
            (uris.len() >= 2).then_some(uris)
        },
    );
    let directory = rendition.split('/').next().unwrap();
    for uri in &media {
        assert!(uri.ends_with(&suffix), "{uri} carries the token");
    }
    for uri in &media[..2] {
        let response = server.get(&format!("/hls/{signed_id}/{directory}/{uri}"));
        assert_eq!(response.status, 200, "{uri}: {}", response.text());
        assert!(!response.body.is_empty());
        assert_eq!(
            response.header("cache-control"),
            Some("private, max-age=31536000, immutable")
        );
        let bare = uri.split('?').next().unwrap();
        let tokenless = server.get(&format!("/hls/{signed_id}/{directory}/{bare}"));
        assert_eq!(tokenless.status, 401, "{bare} without a token");
    }

    let rs_token = playback_token(
        &rs256,
        json!({"sub": signed_id, "aud": "video", "exp": exp}),
    );
    assert_eq!(with_token(&master_path, &rs_token).status, 200);

    // Deleting the signing key revokes every token it signed.
    let (status, _) = server.api(
        "DELETE",
        &format!("/v1/signing-keys/{}", es256["id"].as_str().unwrap()),
        None,
    );
    assert_eq!(status, 204);
    let revoked = with_token(&master_path, &good);
    assert_eq!(revoked.status, 403);
    assert!(revoked.text().contains("signing key"), "{}", revoked.text());
    assert_eq!(with_token(&master_path, &rs_token).status, 200);
    // The public id is unaffected by tokens entirely.
    assert_eq!(
        http_get(&server.url(&format!("/hls/{public_id}/master.m3u8"))).status,
        200
    );
}
