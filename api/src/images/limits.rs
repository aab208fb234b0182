//! What bounds the work strangers can ask of the image routes: a render budget per client (a
//! token bucket, for renders only: cached images cost nothing), and the renders cached per
//! asset, dropped least recently used first past a byte and a count bound. Plain data
//! structures with the time passed in, so their rules are tested without a clock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Renders a client may ask for at once before its budget runs out.
pub const RENDER_BURST: f64 = 60.0;
/// Renders a client's budget regains per second.
pub const RENDERS_PER_SECOND: f64 = 1.0;
/// Clients whose budgets are remembered; past it, full budgets are forgotten first, then the
/// client that rendered longest ago.
const MAX_TRACKED_CLIENTS: usize = 10_000;
/// Bytes of renders cached per asset.
pub const MAX_CACHED_BYTES_PER_ASSET: u64 = 64 << 20;
/// Renders cached per asset.
pub const MAX_CACHED_RENDERS_PER_ASSET: usize = 2_000;

/// The render budgets of clients, by address.
#[derive(Debug, Default)]
pub struct RenderBudgets {
    clients: HashMap<IpAddr, Budget>,
}

#[derive(Debug, Clone, Copy)]
struct Budget {
    tokens: f64,
    at: Instant,
}

impl Budget {
    fn refilled(self, now: Instant) -> f64 {
        let gained = now.saturating_duration_since(self.at).as_secs_f64() * RENDERS_PER_SECOND;
        (self.tokens + gained).min(RENDER_BURST)
    }
}

impl RenderBudgets {
    /// Spends one render of `client`'s budget (a client as `sluice_ingest::peers::client_of`
    /// names it), or says how long until it has one again.
    pub fn spend(&mut self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        if self.clients.len() >= MAX_TRACKED_CLIENTS && !self.clients.contains_key(&client) {
            self.clients
                .retain(|_, budget| budget.refilled(now) < RENDER_BURST);
            if self.clients.len() >= MAX_TRACKED_CLIENTS {
                // Every tracked client is spending: the one idle longest starts afresh, so a
                // crowd of addresses cannot lock newcomers out.
                let idlest = self.clients.iter().min_by_key(|(_, budget)| budget.at);
                if let Some(idlest) = idlest.map(|(address, _)| *address) {
                    self.clients.remove(&idlest);
                }
            }
        }
        let budget = self.clients.entry(client).or_insert(Budget {
            tokens: RENDER_BURST,
            at: now,
        });
        let tokens = budget.refilled(now);
        if tokens < 1.0 {
            return Err(Duration::from_secs_f64((1.0 - tokens) / RENDERS_PER_SECOND));
        }
        *budget = Budget {
            tokens: tokens - 1.0,
            at: now,
        };
        Ok(())
    }
}

/// The renders cached per asset, to bound them.
#[derive(Debug, Default)]
pub struct CachedRenders {
    by_asset: HashMap<String, AssetRenders>,
    /// Ticks at each use; an entry's tick orders it for eviction.
    clock: u64,
}

#[derive(Debug, Default)]
struct AssetRenders {
    /// Cache key → (bytes, last use).
    entries: HashMap<String, (u64, u64)>,
    bytes: u64,
}

impl CachedRenders {
    /// Notes that `key` of `asset_id` (`bytes` long) was served or stored; returns the keys to
    /// delete so the asset's renders stay within bounds (never `key` itself).
    pub fn touch(&mut self, asset_id: &str, key: &str, bytes: u64) -> Vec<String> {
        self.clock += 1;
        let tick = self.clock;
        let renders = self.by_asset.entry(asset_id.to_owned()).or_default();
        if let Some((old, _)) = renders.entries.insert(key.to_owned(), (bytes, tick)) {
            renders.bytes -= old;
        }
        renders.bytes += bytes;
        let mut evicted = Vec::new();
        while renders.bytes > MAX_CACHED_BYTES_PER_ASSET
            || renders.entries.len() > MAX_CACHED_RENDERS_PER_ASSET
        {
            let Some(oldest) = renders
                .entries
                .iter()
                .filter(|(name, _)| name.as_str() != key)
                .min_by_key(|(_, (_, used))| *used)
                .map(|(name, _)| name.clone())
            else {
                break;
            };
            if let Some((size, _)) = renders.entries.remove(&oldest) {
                renders.bytes -= size;
            }
            evicted.push(oldest);
        }
        evicted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_spends_its_burst_then_waits_for_the_refill() {
        let mut budgets = RenderBudgets::default();
        let start = Instant::now();
        let client: IpAddr = [198, 51, 100, 7].into();
        for _ in 0..RENDER_BURST as usize {
            budgets.spend(client, start).unwrap();
        }
        let wait = budgets.spend(client, start).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert!(
            budgets.spend([198, 51, 100, 8].into(), start).is_ok(),
            "others unaffected"
        );
        budgets
            .spend(client, start + Duration::from_secs(1))
            .unwrap();
    }

    #[test]
    fn an_assets_renders_stay_within_bytes_least_recently_used_first() {
        let mut cached = CachedRenders::default();
        let third = MAX_CACHED_BYTES_PER_ASSET / 3;
        assert!(cached.touch("asset_a", "one", third).is_empty());
        assert!(cached.touch("asset_a", "two", third).is_empty());
        assert!(cached.touch("asset_a", "three", third).is_empty());
        // "one" is used again, so "two" is now the oldest.
        assert!(cached.touch("asset_a", "one", third).is_empty());
        assert_eq!(cached.touch("asset_a", "four", third), ["two"]);
        assert!(
            cached.touch("asset_b", "one", third).is_empty(),
            "per asset"
        );
        // One render larger than the bound keeps itself and drops the rest.
        let mut dropped = cached.touch("asset_a", "huge", MAX_CACHED_BYTES_PER_ASSET + 1);
        dropped.sort();
        assert_eq!(dropped, ["four", "one", "three"]);
    }
}
