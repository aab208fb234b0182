//! Black-box: the first start with no key configured creates an API key, stores it privately
//! under the data directory and prints it once with a curl line and the OBS settings.

mod common;

use common::{Launch, Server};
use serde_json::json;

fn value_of<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .find_map(|line| line.trim().strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} in:\n{text}"))
        .trim()
}

#[test]
fn first_start_prints_a_working_api_key_once() {
    let server = Server::launch(Launch {
        api_key_from_env: false,
        ..Launch::default()
    });
    let log = server.log();
    assert_eq!(
        log.matches("Sluice created your API key").count(),
        1,
        "{log}"
    );
    let key = value_of(&log, "key:").to_owned();
    let secret = value_of(&log, "secret:").to_owned();
    assert!(log.contains(&format!("curl -u {key}:{secret}")), "{log}");
    assert!(
        log.contains(&format!(
            "Server:     rtmp://127.0.0.1:{}/live",
            server.rtmp_port
        )),
        "OBS server URL: {log}"
    );

    let stored = server.data_dir.path().join("api-key.txt");
    let text = std::fs::read_to_string(&stored).unwrap();
    assert!(text.contains(&format!("SLUICE_API_KEY={key}")));
    assert!(text.contains(&format!("SLUICE_API_SECRET={secret}")));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&stored).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "api-key.txt is readable by its owner only");
    }

    let (status, body) = server.api_as(
        &key,
        &secret,
        "POST",
        "/v1/live-streams",
        Some(json!({"name": "first"})),
    );
    assert_eq!(status, 201, "{body}");

    let server = server.restart();
    let log = server.log();
    assert_eq!(
        log.matches("Sluice created your API key").count(),
        1,
        "printed once: {log}"
    );
    let (status, body) = server.api_as(&key, &secret, "GET", "/v1/live-streams", None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"].as_array().map(Vec::len), Some(1), "{body}");
}
