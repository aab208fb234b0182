//! Who a network peer is, for the caps every listener applies (RTMP connections here, HTTP
//! connections and image renders in the server), and how refused peers are logged.

use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Least time between two warnings about refused peers of one listener.
const REFUSAL_WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// The client an address belongs to: an IPv4 address (also when mapped into IPv6) or the /64
/// network of an IPv6 address (one host is usually given a whole /64, so counting its
/// addresses one by one would be no cap at all).
pub fn client_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
    }
}

/// Counts refused peers and says when to warn about them: at most once every ten seconds,
/// so a flood of refusals is not also a flood of log lines.
#[derive(Debug, Default)]
pub struct RefusalLog {
    refused: u64,
    warned_at: Option<Instant>,
}

impl RefusalLog {
    /// Counts one refusal at `now`; returns the refusals so far when a warning is due.
    pub fn refused(&mut self, now: Instant) -> Option<u64> {
        self.refused += 1;
        let due = self
            .warned_at
            .is_none_or(|at| now.saturating_duration_since(at) >= REFUSAL_WARNING_INTERVAL);
        due.then(|| {
            self.warned_at = Some(now);
            self.refused
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_their_64_and_mapped_ipv4_is_ipv4() {
        let client = |text: &str| client_of(text.parse().unwrap()).to_string();
        assert_eq!(client("2001:db8:1:2:ffff::9"), "2001:db8:1:2::");
        assert_eq!(client("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(client("192.0.2.7"), "192.0.2.7");
    }

    #[test]
    fn refusals_are_warned_about_at_most_every_ten_seconds() {
        let mut log = RefusalLog::default();
        let start = Instant::now();
        assert_eq!(log.refused(start), Some(1));
        assert_eq!(log.refused(start + Duration::from_secs(1)), None);
        assert_eq!(log.refused(start + Duration::from_secs(11)), Some(3));
    }
}
