//! Concurrent viewers of each live stream and asset, counted from playback requests: a viewer
//! is a playback session that fetched something within the last [`VIEWER_WINDOW`].
//!
//! A playback session is named by the `vs` query parameter the master playlist hands to every
//! playlist it lists (module `hls`), so players behind one address stay apart; a request
//! without it (a player given a media playlist's URL) is named by its client address and
//! `User-Agent`. Only answered requests count. Counts are of the requests this process
//! answers: several api nodes each count their own (the sum of their `/metrics` is an upper
//! bound, since a player whose requests are spread over nodes counts on each), and a CDN in
//! front answers most requests itself. At most [`MAX_TRACKED_VIEWERS`] sessions are tracked, so made-up `vs` values
//! cannot grow memory: past that, new sessions go uncounted until old ones expire.

use std::collections::HashMap;
use std::convert::Infallible;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};
use sluice_storage::{AssetId, LiveStreamId};

/// How recently a playback session must have fetched to count as watching.
pub const VIEWER_WINDOW: Duration = Duration::from_secs(30);
/// Playback sessions tracked at most, across all streams and assets.
pub const MAX_TRACKED_VIEWERS: usize = 100_000;
/// How often expired sessions are swept out of the counts.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// Characters of a `vs` value (hex of 64 random bits).
const SESSION_CHARS: usize = 16;

/// What is being watched.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Watched {
    LiveStream(LiveStreamId),
    Asset(AssetId),
}

/// One playback session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ViewerKey {
    /// The `vs` a master playlist handed out.
    Session(u64),
    /// A hash of the client's address and `User-Agent`.
    Client(u64),
}

impl ViewerKey {
    /// The session a `vs` value names, when it is one this server could have made.
    pub fn from_session(vs: &str) -> Option<Self> {
        let hex = vs.len() == SESSION_CHARS && vs.bytes().all(|byte| byte.is_ascii_hexdigit());
        hex.then(|| u64::from_str_radix(vs, 16).ok())
            .flatten()
            .map(Self::Session)
    }

    /// A client without a session: its address and `User-Agent`.
    pub fn from_client(address: Option<IpAddr>, user_agent: Option<&[u8]>) -> Self {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        address.hash(&mut hasher);
        user_agent.hash(&mut hasher);
        Self::Client(hasher.finish())
    }
}

/// A request's `User-Agent`, taken alone (extracting the whole header map would copy it on
/// every HLS request).
pub struct UserAgent(pub Option<HeaderValue>);

impl<S: Send + Sync> FromRequestParts<S> for UserAgent {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(UserAgent(parts.headers.get(header::USER_AGENT).cloned()))
    }
}

/// A fresh `vs` value for a master playlist to hand out.
pub fn new_session() -> String {
    format!("{:0width$x}", rand::random::<u64>(), width = SESSION_CHARS)
}

/// Current viewers, shared by every handler of a process.
#[derive(Clone, Default)]
pub struct Viewers(Arc<Mutex<Tracked>>);

#[derive(Default)]
struct Tracked {
    last_seen: HashMap<(Watched, ViewerKey), Instant>,
    counts: HashMap<Watched, u64>,
    swept: Option<Instant>,
}

impl Viewers {
    /// Notes that `viewer` fetched something of `watched` at `now`.
    pub fn seen(&self, watched: Watched, viewer: ViewerKey, now: Instant) {
        let mut tracked = self.lock();
        tracked.sweep(now);
        let Tracked {
            last_seen, counts, ..
        } = &mut *tracked;
        let full = last_seen.len() >= MAX_TRACKED_VIEWERS;
        match last_seen.entry((watched, viewer)) {
            std::collections::hash_map::Entry::Occupied(mut entry) => {
                entry.insert(now);
            }
            std::collections::hash_map::Entry::Vacant(entry) if !full => {
                *counts.entry(entry.key().0.clone()).or_default() += 1;
                entry.insert(now);
            }
            std::collections::hash_map::Entry::Vacant(_) => {}
        }
    }

    /// Viewers of `watched` now.
    pub fn count(&self, watched: &Watched, now: Instant) -> u64 {
        let mut tracked = self.lock();
        tracked.sweep(now);
        tracked.counts.get(watched).copied().unwrap_or(0)
    }

    /// Viewers of `watched` now.
    pub fn of(&self, watched: &Watched) -> u64 {
        self.count(watched, Instant::now())
    }

    /// Viewers of all live streams and of all assets now.
    pub fn totals(&self, now: Instant) -> (u64, u64) {
        let mut tracked = self.lock();
        tracked.sweep(now);
        tracked
            .counts
            .iter()
            .fold((0, 0), |(live, assets), (watched, count)| match watched {
                Watched::LiveStream(_) => (live + count, assets),
                Watched::Asset(_) => (live, assets + count),
            })
    }

    fn lock(&self) -> MutexGuard<'_, Tracked> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Tracked {
    /// Drops the sessions that stopped fetching, at most once per [`SWEEP_EVERY`].
    fn sweep(&mut self, now: Instant) {
        if self
            .swept
            .is_some_and(|swept| now.saturating_duration_since(swept) < SWEEP_EVERY)
        {
            return;
        }
        self.swept = Some(now);
        let counts = &mut self.counts;
        self.last_seen.retain(|(watched, _), seen| {
            let fresh = now.saturating_duration_since(*seen) < VIEWER_WINDOW;
            if !fresh {
                if let Some(count) = counts.get_mut(watched) {
                    *count -= 1;
                    if *count == 0 {
                        counts.remove(watched);
                    }
                }
            }
            fresh
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(n: u8) -> Watched {
        Watched::LiveStream(LiveStreamId::parse(&format!("ls_{n}")).unwrap())
    }

    #[test]
    fn each_playback_session_counts_once_however_often_it_fetches() {
        let viewers = Viewers::default();
        let start = Instant::now();
        for second in 0..20 {
            for session in 0..3 {
                viewers.seen(
                    stream(1),
                    ViewerKey::Session(session),
                    start + Duration::from_secs(second),
                );
            }
        }
        assert_eq!(
            viewers.count(&stream(1), start + Duration::from_secs(20)),
            3
        );
        assert_eq!(viewers.count(&stream(2), start), 0);
    }

    #[test]
    fn a_session_that_stopped_fetching_stops_counting_after_the_window() {
        let viewers = Viewers::default();
        let start = Instant::now();
        viewers.seen(stream(1), ViewerKey::Session(1), start);
        viewers.seen(
            stream(1),
            ViewerKey::Session(2),
            start + Duration::from_secs(20),
        );
        let later = start + VIEWER_WINDOW + Duration::from_secs(1);
        assert_eq!(viewers.count(&stream(1), later), 1);
        assert_eq!(viewers.count(&stream(1), later + VIEWER_WINDOW), 0);
        assert_eq!(viewers.totals(later + VIEWER_WINDOW), (0, 0));
    }

    #[test]
    fn live_streams_and_assets_are_totalled_apart() {
        let viewers = Viewers::default();
        let now = Instant::now();
        viewers.seen(stream(1), ViewerKey::Session(1), now);
        viewers.seen(stream(2), ViewerKey::Session(1), now);
        viewers.seen(
            Watched::Asset(AssetId::parse("asset_1").unwrap()),
            ViewerKey::Client(7),
            now,
        );
        assert_eq!(viewers.totals(now), (2, 1));
    }

    #[test]
    fn made_up_sessions_past_the_cap_go_uncounted() {
        let viewers = Viewers::default();
        let now = Instant::now();
        for session in 0..(MAX_TRACKED_VIEWERS as u64 + 10) {
            viewers.seen(stream(1), ViewerKey::Session(session), now);
        }
        assert_eq!(viewers.count(&stream(1), now), MAX_TRACKED_VIEWERS as u64);
        // Known sessions keep counting, and room comes back as sessions expire.
        let later = now + VIEWER_WINDOW + Duration::from_secs(1);
        viewers.seen(stream(2), ViewerKey::Session(1), later);
        assert_eq!(viewers.count(&stream(2), later), 1);
    }

    #[test]
    fn only_session_values_this_server_could_make_are_read() {
        let made = new_session();
        assert_eq!(made.len(), SESSION_CHARS);
        assert!(ViewerKey::from_session(&made).is_some());
        assert_eq!(
            ViewerKey::from_session("00000000000000ff"),
            Some(ViewerKey::Session(255))
        );
        for bad in [
            "",
            "ff",
            "zzzzzzzzzzzzzzzz",
            "00000000000000fff",
            "+000000000000000",
        ] {
            assert_eq!(ViewerKey::from_session(bad), None, "{bad}");
        }
    }

    #[test]
    fn clients_without_a_session_are_told_apart_by_address_and_agent() {
        let a = ViewerKey::from_client(Some([127, 0, 0, 1].into()), Some(b"VLC"));
        let b = ViewerKey::from_client(Some([127, 0, 0, 2].into()), Some(b"VLC"));
        let c = ViewerKey::from_client(Some([127, 0, 0, 1].into()), Some(b"hls.js"));
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            a,
            ViewerKey::from_client(Some([127, 0, 0, 1].into()), Some(b"VLC"))
        );
    }
}
