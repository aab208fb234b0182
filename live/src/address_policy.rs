//! Which network addresses a user-supplied URL may reach (SSRF protection), shared by URL
//! imports and restreaming targets.
//!
//! [`AddressPolicy::resolve`] resolves a host here and returns the first address it may
//! connect to: every address that is not a public unicast address ([`forbidden_range`]:
//! loopback, RFC 1918 private, CGNAT 100.64/10, link-local 169.254/16 (cloud metadata at
//! 169.254.169.254) and fe80::/10, unique local fc00::/7, unspecified, multicast, broadcast,
//! documentation, benchmarking and reserved ranges, and the IPv4-mapped, NAT64 and 6to4 forms of
//! those) is refused unless the allowlist admits it. Callers connect to the address returned,
//! so a second DNS answer cannot swap in another one.
//!
//! The allowlist (`allow_hosts` in the `[import]` and `[restream]` sections) names what may be
//! reached even though it is not public: a host name as written in URLs (`"media.internal"`, or
//! `"localhost:8080"` for one port only), an address (`"127.0.0.1"`, `"[::1]:8080"`,
//! `"10.1.2.3:9000"`), or a network in CIDR form (`"10.20.0.0/16"`, `"fd00::/8"`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::IpNet;

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

/// The allowlist and the rules above, for one kind of URL.
#[derive(Clone, Debug, Default)]
pub struct AddressPolicy {
    allowed: Vec<Allowed>,
}

impl AddressPolicy {
    /// A policy admitting `allow_hosts` (see the module documentation); a malformed entry is an
    /// error naming it.
    pub fn new(allow_hosts: &[String]) -> Result<Self, String> {
        let allowed = allow_hosts
            .iter()
            .map(|entry| Allowed::parse(entry))
            .collect::<Result<_, _>>()?;
        Ok(AddressPolicy { allowed })
    }

    /// Resolves `host` (a name or an address literal, `[…]` for IPv6) and returns the address
    /// to connect to on `port`, or why not, in a sentence about `what` ("the input URL").
    pub async fn resolve(&self, what: &str, host: &str, port: u16) -> Result<SocketAddr, String> {
        let host = host.to_ascii_lowercase();
        let literal = host.trim_matches(['[', ']']).parse::<IpAddr>();
        let addresses: Vec<SocketAddr> = match literal {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|e| format!("{what}'s host {host} does not resolve: {e}"))?
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
                            "{what} resolves to {article} {range} address ({}), which is not allowed",
                            canonical(address.ip())
                        )
                    });
                }
                _ => return Ok(address),
            }
        }
        Err(refusal.unwrap_or_else(|| format!("{what}'s host {host} resolves to no address")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[tokio::test]
    async fn resolution_refuses_what_the_allowlist_does_not_admit() {
        let open = AddressPolicy::default();
        let refusal = open
            .resolve("the target URL", "127.0.0.1", 1935)
            .await
            .unwrap_err();
        assert_eq!(
            refusal,
            "the target URL resolves to a loopback address (127.0.0.1), which is not allowed"
        );
        assert!(open.resolve("the target URL", "[::1]", 1).await.is_err());
        let allowing = AddressPolicy::new(&["127.0.0.1:1935".to_owned()]).unwrap();
        assert_eq!(
            allowing.resolve("the target URL", "127.0.0.1", 1935).await,
            Ok("127.0.0.1:1935".parse().unwrap())
        );
        assert!(allowing
            .resolve("the target URL", "127.0.0.1", 1936)
            .await
            .is_err());
        assert!(AddressPolicy::new(&["not a host".to_owned()]).is_err());
    }
}
