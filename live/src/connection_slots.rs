//! A cap on the connections one client may hold open at once (RTMP handshakes included), so
//! one host cannot exhaust the server's sockets or memory; the RTMP and HTTP listeners each
//! keep one. A client is an IPv4 address or an IPv6 /64 network
//! ([`sluice_ingest::peers::client_of`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use sluice_ingest::peers::client_of;

/// Open connections per client, shared by the accept loop and the connections.
pub type OpenConnections = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// One open connection counted against its address; released on drop.
pub struct ConnectionSlot {
    per_ip: OpenConnections,
    ip: IpAddr,
}

impl ConnectionSlot {
    /// Counts a connection from `ip`, or returns `None` when it already has `limit` open.
    pub fn take(per_ip: &OpenConnections, ip: IpAddr, limit: usize) -> Option<Self> {
        let ip = client_of(ip);
        let mut counts = per_ip.lock().unwrap_or_else(PoisonError::into_inner);
        let open = counts.entry(ip).or_insert(0);
        if *open >= limit {
            return None;
        }
        *open += 1;
        Some(ConnectionSlot {
            per_ip: per_ip.clone(),
            ip,
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut counts = self.per_ip.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(open) = counts.get_mut(&self.ip) {
            *open -= 1;
            if *open == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_slots_cap_one_address_and_are_released_on_drop() {
        let per_ip = OpenConnections::default();
        let ip: IpAddr = [192, 0, 2, 7].into();
        let other: IpAddr = [192, 0, 2, 8].into();
        let first = ConnectionSlot::take(&per_ip, ip, 2).expect("first");
        let second = ConnectionSlot::take(&per_ip, ip, 2).expect("second");
        assert!(
            ConnectionSlot::take(&per_ip, ip, 2).is_none(),
            "third refused"
        );
        let elsewhere = ConnectionSlot::take(&per_ip, other, 2).expect("other address");
        drop(first);
        let again = ConnectionSlot::take(&per_ip, ip, 2).expect("a slot came back");
        drop((second, again, elsewhere));
        assert!(per_ip.lock().unwrap().is_empty(), "no entry left behind");
    }

    #[test]
    fn ipv6_addresses_of_one_64_share_their_slots() {
        let per_ip = OpenConnections::default();
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let elsewhere: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        let first = ConnectionSlot::take(&per_ip, a, 1).expect("first");
        assert!(
            ConnectionSlot::take(&per_ip, b, 1).is_none(),
            "same /64 refused"
        );
        let other = ConnectionSlot::take(&per_ip, elsewhere, 1).expect("another /64");
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        let v4 = ConnectionSlot::take(&per_ip, mapped, 1).expect("mapped IPv4");
        assert!(ConnectionSlot::take(&per_ip, [192, 0, 2, 7].into(), 1).is_none());
        drop((first, other, v4));
    }
}
