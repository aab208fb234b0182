//! Importing an asset's source from an `http(s)` URL into a local file, without letting the
//! URL reach into the server's own network (SSRF).
//!
//! Each hop of the request is checked before it is made:
//!
//! * only `http` and `https` URLs are fetched;
//! * the host is resolved here, and every address it resolves to that is not a public
//!   unicast address is refused unless the allowlist admits it (see
//!   [`sluice_live::address_policy`]);
//! * the connection goes to the address that was checked (the client is pinned to it, so a
//!   second DNS answer cannot swap in another one), never through a proxy;
//! * redirects are followed here, at most [`MAX_REDIRECTS`], each new location checked the
//!   same way;
//! * the body is streamed to the file and cut off past the size limit, and the whole import
//!   and each connection attempt have time limits.
//!
//! The allowlist is `[import] allow_hosts`.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use reqwest::header::{CONTENT_LENGTH, LOCATION};
use reqwest::{StatusCode, Url};
use sluice_live::address_policy::AddressPolicy;
use tokio::io::AsyncWriteExt;

/// Redirects followed before giving up.
pub const MAX_REDIRECTS: usize = 5;
const USER_AGENT: &str = concat!("Sluice-Import/", env!("CARGO_PKG_VERSION"));

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The URL cannot be imported, and trying again will not change that (a refused
    /// address, a 404, a file over the size limit, …). The message is for the asset's owner.
    #[error("{0}")]
    Refused(String),
    /// A failure that may pass: the network, the remote server's 5xx, the local disk.
    #[error("{0}")]
    Transient(String),
}

/// Downloads sources from URLs, under the rules of the module documentation.
#[derive(Clone, Debug)]
pub struct Importer {
    addresses: AddressPolicy,
    max_size: u64,
    timeout: Duration,
    connect_timeout: Duration,
}

impl Importer {
    /// An importer admitting `allow_hosts` (see [`sluice_live::address_policy`]), refusing files
    /// over `max_size` bytes, with `timeout` for a whole import and `connect_timeout` for
    /// each connection. A malformed allowlist entry is an error naming it.
    pub fn new(
        allow_hosts: &[String],
        max_size: u64,
        timeout: Duration,
        connect_timeout: Duration,
    ) -> Result<Self, String> {
        Ok(Importer {
            addresses: AddressPolicy::new(allow_hosts)?,
            max_size,
            timeout,
            connect_timeout,
        })
    }

    /// Downloads `url` into `destination` (created or truncated); returns its size in bytes.
    /// On error, `destination` may hold part of the body: the caller removes it.
    pub async fn download(&self, url: &str, destination: &Path) -> Result<u64, ImportError> {
        let url = Url::parse(url)
            .map_err(|e| ImportError::Refused(format!("the input URL is not valid: {e}")))?;
        match tokio::time::timeout(self.timeout, self.follow(url, destination)).await {
            Ok(result) => result,
            Err(_) => Err(ImportError::Transient(format!(
                "downloading the input URL took longer than {} s",
                self.timeout.as_secs()
            ))),
        }
    }

    /// Requests `url`, following redirects, and streams the final answer to `destination`.
    async fn follow(&self, mut url: Url, destination: &Path) -> Result<u64, ImportError> {
        for _ in 0..=MAX_REDIRECTS {
            let response = self.request(&url).await?;
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(LOCATION)
                    .and_then(|value| value.to_str().ok())
                    .ok_or_else(|| {
                        ImportError::Refused(format!(
                            "the input URL answered HTTP {status} without a valid Location"
                        ))
                    })?;
                url = url.join(location).map_err(|e| {
                    ImportError::Refused(format!(
                        "the input URL redirects to an invalid location: {e}"
                    ))
                })?;
                continue;
            }
            if !status.is_success() {
                let message = format!("the input URL answered HTTP {status}");
                return Err(
                    if status.is_server_error()
                        || status == StatusCode::TOO_MANY_REQUESTS
                        || status == StatusCode::REQUEST_TIMEOUT
                    {
                        ImportError::Transient(message)
                    } else {
                        ImportError::Refused(message)
                    },
                );
            }
            return self.save(response, destination).await;
        }
        Err(ImportError::Refused(format!(
            "the input URL redirects more than {MAX_REDIRECTS} times"
        )))
    }

    /// Checks `url` and makes one request to the checked address, without following a
    /// redirect.
    async fn request(&self, url: &Url) -> Result<reqwest::Response, ImportError> {
        let address = self.checked_address(url).await?;
        let host = url.host_str().unwrap_or_default();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(self.connect_timeout)
            .user_agent(USER_AGENT)
            // Pins the connection to the address checked above (for a host name; an address
            // in the URL is connected to as it is).
            .resolve(host, address)
            .build()
            .map_err(|e| ImportError::Transient(format!("cannot build an HTTP client: {e}")))?;
        client.get(url.clone()).send().await.map_err(|e| {
            // reqwest's message ends with the whole URL, credentials and signature included;
            // the asset's error (shown in the API, events and webhooks) must not.
            let e = e.without_url();
            let mut message = format!("cannot download the input URL: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            ImportError::Transient(message)
        })
    }

    /// Resolves the host of `url` and returns the address to connect to, or why the URL may
    /// not be fetched.
    async fn checked_address(&self, url: &Url) -> Result<SocketAddr, ImportError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ImportError::Refused(format!(
                "the input URL's scheme {:?} is not allowed: only http and https are",
                url.scheme()
            )));
        }
        let host = url
            .host_str()
            .ok_or_else(|| ImportError::Refused("the input URL has no host".to_owned()))?;
        let port = url.port_or_known_default().unwrap_or(80);
        self.addresses
            .resolve("the input URL", host, port)
            .await
            .map_err(ImportError::Refused)
    }

    /// Streams the body of `response` into `destination`, within the size limit.
    async fn save(
        &self,
        mut response: reqwest::Response,
        destination: &Path,
    ) -> Result<u64, ImportError> {
        let too_large = || {
            ImportError::Refused(format!(
                "the input file is larger than the limit of {} bytes",
                self.max_size
            ))
        };
        let declared = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|length| length > self.max_size) {
            return Err(too_large());
        }
        let disk = |e: std::io::Error| {
            ImportError::Transient(format!("cannot write {}: {e}", destination.display()))
        };
        let mut file = tokio::fs::File::create(destination).await.map_err(disk)?;
        let mut written = 0u64;
        loop {
            let chunk = response.chunk().await.map_err(|e| {
                let e = e.without_url();
                ImportError::Transient(format!("the download of the input URL broke off: {e}"))
            })?;
            let Some(chunk) = chunk else { break };
            written += chunk.len() as u64;
            if written > self.max_size {
                return Err(too_large());
            }
            file.write_all(&chunk).await.map_err(disk)?;
        }
        file.flush().await.map_err(disk)?;
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header;
    use axum::response::IntoResponse;
    use axum::routing::get;

    /// A local HTTP server: `/file` (the body), `/to?url` (a redirect to `url`), `/loop` (a
    /// redirect to itself), `/missing` (404) and `/flaky` (503).
    async fn serve(body: &'static [u8]) -> SocketAddr {
        let app = axum::Router::new()
            .route("/file", get(move || async move { body }))
            .route(
                "/to",
                get(|uri: axum::http::Uri| async move {
                    let target = uri.query().unwrap_or_default().to_owned();
                    (axum::http::StatusCode::FOUND, [(header::LOCATION, target)]).into_response()
                }),
            )
            .route(
                "/loop",
                get(|| async { (axum::http::StatusCode::FOUND, [(header::LOCATION, "/loop")]) }),
            )
            .route(
                "/flaky",
                get(|| async { axum::http::StatusCode::SERVICE_UNAVAILABLE }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        address
    }

    fn importer(allow: &[&str], max_size: u64) -> Importer {
        let allow: Vec<String> = allow.iter().map(|s| (*s).to_owned()).collect();
        Importer::new(
            &allow,
            max_size,
            Duration::from_secs(30),
            Duration::from_secs(5),
        )
        .unwrap()
    }

    async fn refusal(importer: &Importer, url: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        match importer.download(url, &dir.path().join("source")).await {
            Err(ImportError::Refused(message)) => message,
            other => panic!("{url}: {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_failed_download_never_repeats_the_urls_secrets() {
        // A port nobody listens on: the connection is refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://ann:hunter2@127.0.0.1:{port}/a.mp4?X-Amz-Signature=f00d");
        let dir = tempfile::tempdir().unwrap();
        let importer = importer(&["127.0.0.1"], 1 << 20);
        match importer.download(&url, &dir.path().join("source")).await {
            Err(ImportError::Transient(message)) => {
                assert!(
                    message.starts_with("cannot download the input URL"),
                    "{message}"
                );
                assert!(
                    !message.contains("hunter2") && !message.contains("f00d"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_local_server_is_refused_unless_allowed() {
        const BODY: &[u8] = b"not really a video, but bytes all the same";
        let server = serve(BODY).await;
        let port = server.port();
        let file = format!("http://127.0.0.1:{port}/file");

        assert_eq!(
            refusal(&importer(&[], 1 << 20), &file).await,
            "the input URL resolves to a loopback address (127.0.0.1), which is not allowed"
        );
        let by_name = format!("http://localhost:{port}/file");
        assert!(refusal(&importer(&[], 1 << 20), &by_name)
            .await
            .contains("loopback address"));

        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("source");
        for allow in ["127.0.0.1", "127.0.0.0/8"] {
            let size = importer(&[allow], 1 << 20)
                .download(&file, &target)
                .await
                .unwrap();
            assert_eq!(size, BODY.len() as u64);
            assert_eq!(std::fs::read(&target).unwrap(), BODY);
        }
        let allowed_by_name = importer(&[&format!("localhost:{port}")], 1 << 20);
        allowed_by_name.download(&by_name, &target).await.unwrap();
        // The name is allowed, the same server by address is not.
        assert!(refusal(&allowed_by_name, &file).await.contains("loopback"));

        assert_eq!(
            refusal(&importer(&["127.0.0.1"], 10), &file).await,
            "the input file is larger than the limit of 10 bytes"
        );
        assert!(refusal(
            &importer(&["127.0.0.1"], 1 << 20),
            &format!("http://127.0.0.1:{port}/missing")
        )
        .await
        .contains("HTTP 404"));
        let flaky = importer(&["127.0.0.1"], 1 << 20)
            .download(&format!("http://127.0.0.1:{port}/flaky"), &target)
            .await;
        assert!(matches!(flaky, Err(ImportError::Transient(m)) if m.contains("HTTP 503")));
    }

    #[tokio::test]
    async fn every_redirect_is_checked() {
        let server = serve(b"bytes").await;
        let allowed = importer(&["127.0.0.1"], 1 << 20);
        let to = |target: &str| format!("http://{server}/to?{target}");

        assert_eq!(
            refusal(&allowed, &to("http://10.0.0.5/video.mp4")).await,
            "the input URL resolves to a private address (10.0.0.5), which is not allowed"
        );
        assert_eq!(
            refusal(&allowed, &to("http://169.254.169.254/latest/meta-data/")).await,
            "the input URL resolves to a link-local address (169.254.169.254), which is not allowed"
        );
        assert!(refusal(&allowed, &to("http://[::ffff:192.168.0.1]/"))
            .await
            .contains("private address (192.168.0.1)"));
        assert!(refusal(&allowed, &to("file:///etc/passwd"))
            .await
            .contains("scheme \"file\" is not allowed"));
        assert_eq!(
            refusal(&allowed, &format!("http://{server}/loop")).await,
            "the input URL redirects more than 5 times"
        );
        // A relative redirect to an allowed place is followed.
        let dir = tempfile::tempdir().unwrap();
        let size = allowed
            .download(&to("/file"), &dir.path().join("source"))
            .await
            .unwrap();
        assert_eq!(size, 5);
    }

    #[tokio::test]
    async fn only_http_urls_are_fetched() {
        let none = importer(&[], 1 << 20);
        assert!(refusal(&none, "ftp://example.com/a.mp4")
            .await
            .contains("scheme \"ftp\" is not allowed"));
        assert!(refusal(&none, "not a url")
            .await
            .starts_with("the input URL is not valid"));
        assert!(refusal(&none, "http://0.0.0.0:1/")
            .await
            .contains("unspecified"));
    }
}
