//! Importing an asset's source from an `http(s)` URL into a local file, without letting the
//! URL reach into the server's own network (SSRF).
//!
//! Each hop of the request is checked before it is made:
//!
//! * only `http` and `https` URLs are fetched;
//! * the host is resolved here, and every address it resolves to that is not a public
//!   unicast address ([`forbidden_range`]: loopback, RFC 1918 private, CGNAT 100.64/10,
//!   link-local 169.254/16 (cloud metadata at 169.254.169.254) and fe80::/10, unique local
//!   fc00::/7, unspecified, multicast, broadcast, documentation, benchmarking and reserved
//!   ranges, and the IPv4-mapped, NAT64 and 6to4 forms of those) is refused unless the
//!   allowlist admits it;
//! * the connection goes to the address that was checked (the client is pinned to it, so a
//!   second DNS answer cannot swap in another one), never through a proxy;
//! * redirects are followed here, at most [`MAX_REDIRECTS`], each new location checked the
//!   same way;
//! * the body is streamed to the file and cut off past the size limit, and the whole import
//!   and each connection attempt have time limits.
//!
//! The allowlist (`[import] allow_hosts`) names what may be fetched even though it is not
//! public: a host name as written in URLs (`"media.internal"`, or `"localhost:8080"` for one
//! port only), an address (`"127.0.0.1"`, `"[::1]:8080"`, `"10.1.2.3:9000"`), or a network
//! in CIDR form (`"10.20.0.0/16"`, `"fd00::/8"`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use ipnet::IpNet;
use reqwest::header::{CONTENT_LENGTH, LOCATION};
use reqwest::{StatusCode, Url};
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

/// One entry of the allowlist.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Allowed {
    /// A host name as written in URLs, on one port or any.
    Host { name: String, port: Option<u16> },
    /// An address, on one port or any.
    Address { ip: IpAddr, port: Option<u16> },
    /// Every address of a network, on any port.
    Network(IpNet),
}

impl Allowed {
    fn parse(entry: &str) -> Result<Self, String> {
        let entry = entry.trim();
        if entry.contains('/') {
            return entry
                .parse::<IpNet>()
                .map(Allowed::Network)
                .map_err(|_| format!("{entry:?} is not a network in CIDR form"));
        }
        if let Ok(ip) = entry.trim_matches(['[', ']']).parse::<IpAddr>() {
            return Ok(Allowed::Address { ip, port: None });
        }
        if let Ok(address) = entry.parse::<SocketAddr>() {
            return Ok(Allowed::Address {
                ip: address.ip(),
                port: Some(address.port()),
            });
        }
        let (name, port) = match entry.rsplit_once(':') {
            Some((name, port)) => {
                let port = port
                    .parse::<u16>()
                    .map_err(|_| format!("{entry:?} has an invalid port"))?;
                (name, Some(port))
            }
            None => (entry, None),
        };
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
        if !valid {
            return Err(format!(
                "{entry:?} is not a host name, an address or a network"
            ));
        }
        Ok(Allowed::Host {
            name: name.to_ascii_lowercase(),
            port,
        })
    }

    fn admits(&self, host: &str, address: SocketAddr) -> bool {
        let port_matches = |port: &Option<u16>| port.is_none_or(|p| p == address.port());
        match self {
            Allowed::Host { name, port } => name == host && port_matches(port),
            Allowed::Address { ip, port } => {
                canonical(*ip) == canonical(address.ip()) && port_matches(port)
            }
            Allowed::Network(network) => {
                network.contains(&address.ip()) || network.contains(&canonical(address.ip()))
            }
        }
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is; others as they are.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// The kind of non-public range `ip` is in, or `None` for a public unicast address.
pub fn forbidden_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, _, _) => "unspecified",
        (10, _, _) => "private",
        (100, 64..=127, _) => "shared (carrier-grade NAT)",
        (127, _, _) => "loopback",
        (169, 254, _) => "link-local",
        (172, 16..=31, _) => "private",
        (192, 0, 0) => "reserved",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (192, 88, 99) => "reserved",
        (192, 168, _) => "private",
        (198, 18..=19, _) => "benchmarking",
        (224..=239, _, _) => "multicast",
        _ if ip.is_broadcast() => "broadcast",
        (240..=255, _, _) => "reserved",
        _ => return None,
    })
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return forbidden_v4(v4);
    }
    let segments = ip.segments();
    // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) carry an IPv4 address that may be private.
    let embedded = |high: u16, low: u16| {
        Ipv4Addr::new((high >> 8) as u8, high as u8, (low >> 8) as u8, low as u8)
    };
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return forbidden_v4(embedded(segments[6], segments[7]));
    }
    if segments[0] == 0x2002 {
        return forbidden_v4(embedded(segments[1], segments[2]));
    }
    Some(match segments[0] {
        _ if ip.is_unspecified() => "unspecified",
        _ if ip.is_loopback() => "loopback",
        // ::/96 (IPv4-compatible, deprecated) and the rest of ::/8.
        0x0000..=0x00ff => "reserved",
        // 100::/64, the discard prefix.
        0x0100 if segments[1..4] == [0, 0, 0] => "reserved",
        // 2001::/32 (Teredo) tunnels to any IPv4 address.
        0x2001 if segments[1] == 0 => "reserved",
        0x2001 if segments[1] == 0x0db8 => "documentation",
        0xfc00..=0xfdff => "unique local",
        0xfe80..=0xfebf => "link-local",
        // fec0::/10, the deprecated site-local range.
        0xfec0..=0xfeff => "site-local",
        0xff00..=0xffff => "multicast",
        _ => return None,
    })
}

/// Downloads sources from URLs, under the rules of the module documentation.
#[derive(Clone, Debug)]
pub struct Importer {
    allowed: Vec<Allowed>,
    max_size: u64,
    timeout: Duration,
    connect_timeout: Duration,
}

impl Importer {
    /// An importer admitting `allow_hosts` (see the module documentation), refusing files
    /// over `max_size` bytes, with `timeout` for a whole import and `connect_timeout` for
    /// each connection. A malformed allowlist entry is an error naming it.
    pub fn new(
        allow_hosts: &[String],
        max_size: u64,
        timeout: Duration,
        connect_timeout: Duration,
    ) -> Result<Self, String> {
        let allowed = allow_hosts
            .iter()
            .map(|entry| Allowed::parse(entry))
            .collect::<Result<_, _>>()?;
        Ok(Importer {
            allowed,
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
            .ok_or_else(|| ImportError::Refused("the input URL has no host".to_owned()))?
            .to_ascii_lowercase();
        let port = url.port_or_known_default().unwrap_or(80);
        let literal = host.trim_matches(['[', ']']).parse::<IpAddr>();
        let addresses: Vec<SocketAddr> = match literal {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|e| {
                    ImportError::Refused(format!(
                        "the input URL's host {host} does not resolve: {e}"
                    ))
                })?
                .collect(),
        };
        let mut refusal = None;
        for address in addresses {
            let admitted = self.allowed.iter().any(|a| a.admits(&host, address));
            match forbidden_range(address.ip()) {
                Some(range) if !admitted => {
                    refusal.get_or_insert_with(|| {
                        let article = if range.starts_with(['a', 'e', 'i', 'o', 'u']) {
                            "an"
                        } else {
                            "a"
                        };
                        format!(
                            "the input URL resolves to {article} {range} address ({}), which is not allowed",
                            canonical(address.ip())
                        )
                    });
                }
                _ => return Ok(address),
            }
        }
        Err(ImportError::Refused(refusal.unwrap_or_else(|| {
            format!("the input URL's host {host} resolves to no address")
        })))
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

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn non_public_addresses_are_classified() {
        for (address, range) in [
            ("0.0.0.0", "unspecified"),
            ("10.0.0.5", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("100.64.0.1", "shared (carrier-grade NAT)"),
            ("100.127.255.254", "shared (carrier-grade NAT)"),
            ("127.0.0.1", "loopback"),
            ("127.8.9.10", "loopback"),
            ("169.254.169.254", "link-local"),
            ("192.0.0.8", "reserved"),
            ("192.0.2.1", "documentation"),
            ("198.18.0.1", "benchmarking"),
            ("224.0.0.1", "multicast"),
            ("240.0.0.1", "reserved"),
            ("255.255.255.255", "broadcast"),
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("::ffff:10.0.0.5", "private"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "link-local"),
            ("::127.0.0.1", "reserved"),
            ("64:ff9b::a9fe:a9fe", "link-local"),
            ("2002:c0a8:0101::1", "private"),
            ("2001:0:4136:e378::1", "reserved"),
            ("2001:db8::1", "documentation"),
            ("100::1", "reserved"),
            ("fc00::1", "unique local"),
            ("fd12:3456::1", "unique local"),
            ("fe80::1", "link-local"),
            ("fec0::1", "site-local"),
            ("ff02::1", "multicast"),
        ] {
            assert_eq!(forbidden_range(ip(address)), Some(range), "{address}");
        }
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.0.1",
            "172.32.0.1",
            "192.169.0.1",
            "2606:4700::1111",
            "2a00:1450::1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:0808:0808::1",
        ] {
            assert_eq!(forbidden_range(ip(public)), None, "{public}");
        }
    }

    #[test]
    fn allowlist_entries_are_hosts_addresses_or_networks() {
        let parse = |entry: &str| Allowed::parse(entry).unwrap();
        let at = |text: &str| text.parse::<SocketAddr>().unwrap();
        assert!(parse("LocalHost:8080").admits("localhost", at("127.0.0.1:8080")));
        assert!(!parse("localhost:8080").admits("localhost", at("127.0.0.1:8081")));
        assert!(parse("media.internal").admits("media.internal", at("10.1.1.1:443")));
        assert!(!parse("media.internal").admits("other.internal", at("10.1.1.1:443")));
        assert!(parse("127.0.0.1").admits("x", at("127.0.0.1:1")));
        assert!(parse("127.0.0.1").admits("x", at("[::ffff:127.0.0.1]:1")));
        assert!(parse("10.1.2.3:9000").admits("x", at("10.1.2.3:9000")));
        assert!(!parse("10.1.2.3:9000").admits("x", at("10.1.2.3:9001")));
        assert!(parse("[::1]:8080").admits("x", at("[::1]:8080")));
        assert!(parse("::1").admits("x", at("[::1]:1")));
        assert!(parse("10.20.0.0/16").admits("x", at("10.20.3.4:80")));
        assert!(!parse("10.20.0.0/16").admits("x", at("10.21.3.4:80")));
        assert!(parse("fd00::/8").admits("x", at("[fd00::5]:80")));
        for bad in ["10.0.0.0/33", "host:port", "", "a b", "http://x"] {
            assert!(Allowed::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

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
