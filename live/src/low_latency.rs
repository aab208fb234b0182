//! LL-HLS from the packaging node's memory: the playlists and parts of every `low` latency
//! session this process packages, and the waits of blocking playlist reload (RFC 8216bis
//! §6.2.5.2) and of preload hints (§6.2.6).
//!
//! The packaging thread hands each rendition's playlist (with its parts) and each new part to
//! the session's [`LowLatencyTree`]; HTTP handlers read from it and wait on its change signal.
//! Parts never go to the object store: they exist only for the seconds a low-latency player
//! needs them. Segments still go to the store as in every other mode, so the regular playlist
//! there serves players without LL-HLS and every other node.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use sluice_packager::{LivePlaylist, LowLatencyView, RenditionReport, MEDIA_PLAYLIST};
use sluice_storage::LiveStreamId;
use tokio::sync::watch;

/// How long a blocking playlist request or a preload-hinted part is held at most: three
/// target durations of a `low` session's 1 s segments (§6.2.5.2 suggests answering 503 then).
pub const BLOCKING_TIMEOUT: Duration = Duration::from_secs(3);

/// Parts kept in memory per rendition: about 10 s at the default part target, several times
/// what a playlist lists (three target durations). The oldest goes when a new one arrives.
pub const PARTS_KEPT: usize = 32;

/// The low-latency sessions this process packages, by live stream.
#[derive(Default)]
pub struct LowLatencyStreams {
    streams: Mutex<HashMap<LiveStreamId, Arc<LowLatencyTree>>>,
}

impl LowLatencyStreams {
    /// The tree of the stream's session being packaged here, if it is a low-latency one.
    pub fn get(&self, live_stream_id: &LiveStreamId) -> Option<Arc<LowLatencyTree>> {
        lock(&self.streams).get(live_stream_id).cloned()
    }

    /// A new session's tree, replacing any earlier one of the stream.
    pub(crate) fn open(&self, live_stream_id: &LiveStreamId) -> Arc<LowLatencyTree> {
        let tree = Arc::new(LowLatencyTree::default());
        if let Some(previous) = lock(&self.streams).insert(live_stream_id.clone(), tree.clone()) {
            previous.close();
        }
        tree
    }

    /// Ends `tree` (its waiting requests are answered) and forgets it, unless a newer session
    /// of the stream replaced it already.
    pub(crate) fn close(&self, live_stream_id: &LiveStreamId, tree: &Arc<LowLatencyTree>) {
        tree.close();
        let mut streams = lock(&self.streams);
        if streams
            .get(live_stream_id)
            .is_some_and(|current| Arc::ptr_eq(current, tree))
        {
            streams.remove(live_stream_id);
        }
    }
}

/// One session's renditions as low-latency players see them.
pub struct LowLatencyTree {
    state: Mutex<TreeState>,
    /// Bumped on every change; waiters re-check on each bump.
    changed: watch::Sender<u64>,
}

impl Default for LowLatencyTree {
    fn default() -> Self {
        LowLatencyTree {
            state: Mutex::default(),
            changed: watch::channel(0).0,
        }
    }
}

#[derive(Default)]
struct TreeState {
    /// By directory (`v0`, `a0`).
    renditions: BTreeMap<String, RenditionState>,
    /// The session is over: nothing more will come.
    closed: bool,
}

struct RenditionState {
    playlist: LivePlaylist,
    /// The most recent parts, by object name, oldest first.
    parts: VecDeque<(String, Bytes)>,
}

/// A blocking playlist request (§6.2.5.2): `_HLS_msn`, with `_HLS_part` when given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockingRequest {
    pub msn: u64,
    pub part: Option<u64>,
}

/// What a playlist request gets.
#[derive(Debug, PartialEq, Eq)]
pub enum PlaylistAnswer {
    /// The playlist, rendered once it holds what was asked for (or the session ended).
    Playlist(Vec<u8>),
    /// No such rendition in this session.
    NotFound,
    /// `_HLS_msn` lies more than two segments ahead of the last one (§6.2.5.2: 400).
    TooFarAhead,
    /// What was asked for did not arrive in time (§6.2.5.2: 503).
    TimedOut,
}

impl LowLatencyTree {
    /// Takes rendition `dir`'s playlist as it is now and, when one was just made, a part.
    pub(crate) fn update(&self, dir: &str, playlist: &LivePlaylist, part: Option<(String, Bytes)>) {
        {
            let mut state = lock(&self.state);
            let rendition =
                state
                    .renditions
                    .entry(dir.to_owned())
                    .or_insert_with(|| RenditionState {
                        playlist: playlist.clone(),
                        parts: VecDeque::new(),
                    });
            rendition.playlist = playlist.clone();
            if let Some(part) = part {
                rendition.parts.push_back(part);
                while rendition.parts.len() > PARTS_KEPT {
                    rendition.parts.pop_front();
                }
            }
        }
        self.changed.send_modify(|version| *version += 1);
    }

    /// Ends the tree: waiting requests get what there is.
    pub(crate) fn close(&self) {
        lock(&self.state).closed = true;
        self.changed.send_modify(|version| *version += 1);
    }

    /// Rendition `dir`'s low-latency playlist: at once without `blocking`, else once it lists
    /// the part (or the whole segment, without `part`) asked for, the session ends, or
    /// `timeout` passes. `skip` asks for a delta update; `uri` maps every URI in it.
    pub async fn playlist(
        &self,
        dir: &str,
        blocking: Option<BlockingRequest>,
        skip: bool,
        uri: &(dyn Fn(&str) -> String + Sync),
        timeout: Duration,
    ) -> PlaylistAnswer {
        let mut changes = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            {
                let state = lock(&self.state);
                let Some(rendition) = state.renditions.get(dir) else {
                    return PlaylistAnswer::NotFound;
                };
                let playlist = &rendition.playlist;
                let ready = match blocking {
                    None => true,
                    Some(request) => {
                        // The open segment is `next`; its successor may be asked for too.
                        if request.msn > playlist.next_media_sequence() + 1 {
                            return PlaylistAnswer::TooFarAhead;
                        }
                        match request.part {
                            Some(part) => playlist.has_part(request.msn, part),
                            None => request.msn < playlist.next_media_sequence(),
                        }
                    }
                };
                if ready || state.closed || playlist.is_ended() {
                    let reports = sibling_reports(&state, dir);
                    let view = LowLatencyView {
                        skip,
                        reports: &reports,
                        uri,
                    };
                    return PlaylistAnswer::Playlist(playlist.render_low_latency(&view));
                }
            }
            if tokio::time::timeout_at(deadline, changes.changed())
                .await
                .is_err()
            {
                return PlaylistAnswer::TimedOut;
            }
        }
    }

    /// Part `name` of rendition `dir`. One the playlist announces as its preload hint is
    /// waited for up to `timeout` (§6.2.6: the server holds the request until it is ready).
    pub async fn part(&self, dir: &str, name: &str, timeout: Duration) -> Option<Bytes> {
        let mut changes = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            {
                let state = lock(&self.state);
                let rendition = state.renditions.get(dir)?;
                if let Some((_, body)) = rendition.parts.iter().find(|(n, _)| n == name) {
                    return Some(body.clone());
                }
                if state.closed || rendition.playlist.preload_hint() != Some(name) {
                    return None;
                }
            }
            tokio::time::timeout_at(deadline, changes.changed())
                .await
                .ok()?
                .ok()?;
        }
    }
}

/// EXT-X-RENDITION-REPORT of every other rendition (§4.4.5.4).
fn sibling_reports(state: &TreeState, dir: &str) -> Vec<RenditionReport> {
    state
        .renditions
        .iter()
        .filter(|(other, _)| other.as_str() != dir)
        .filter_map(|(other, rendition)| {
            let (last_msn, last_part) = rendition.playlist.last_part()?;
            Some(RenditionReport {
                uri: format!("../{other}/{MEDIA_PLAYLIST}"),
                last_msn,
                last_part,
            })
        })
        .collect()
}

/// Locks, going on with the data of a holder that panicked (every update leaves it whole).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use sluice_packager::PartEntry;

    const WAIT: Duration = Duration::from_secs(10);

    fn plain(uri: &str) -> String {
        uri.to_owned()
    }

    fn part(uri: &str) -> PartEntry {
        PartEntry {
            uri: uri.to_owned(),
            duration_secs: 0.3,
            independent: false,
        }
    }

    /// A tree whose `v0` has one complete segment (0) and part 0 of segment 1.
    fn tree() -> (Arc<LowLatencyTree>, LivePlaylist) {
        let tree = Arc::new(LowLatencyTree::default());
        let mut playlist = LivePlaylist::new(1, 6, "init.mp4".into()).with_parts(0.334);
        playlist.push_part(
            part("s-0.0.m4s"),
            Utc.timestamp_opt(0, 0).unwrap(),
            "s-0.1.m4s".into(),
        );
        playlist.push_segment("s-0.m4s".into(), 0.3, Utc.timestamp_opt(0, 0).unwrap());
        playlist.set_preload_hint("s-1.0.m4s".into());
        playlist.push_part(
            part("s-1.0.m4s"),
            Utc.timestamp_opt(1, 0).unwrap(),
            "s-1.1.m4s".into(),
        );
        tree.update(
            "v0",
            &playlist,
            Some(("s-1.0.m4s".into(), Bytes::from_static(b"p"))),
        );
        (tree, playlist)
    }

    fn request(msn: u64, part: u64) -> Option<BlockingRequest> {
        Some(BlockingRequest {
            msn,
            part: Some(part),
        })
    }

    #[tokio::test]
    async fn a_blocking_request_is_answered_when_the_part_arrives() {
        let (tree, mut playlist) = tree();
        let waiting = tokio::spawn({
            let tree = tree.clone();
            async move {
                tree.playlist("v0", request(1, 1), false, &plain, WAIT)
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiting.is_finished(),
            "part 1 of segment 1 does not exist yet"
        );
        playlist.push_part(
            part("s-1.1.m4s"),
            Utc.timestamp_opt(1, 0).unwrap(),
            "s-1.2.m4s".into(),
        );
        tree.update(
            "v0",
            &playlist,
            Some(("s-1.1.m4s".into(), Bytes::from_static(b"q"))),
        );
        let PlaylistAnswer::Playlist(body) = waiting.await.unwrap() else {
            panic!("a playlist");
        };
        assert!(String::from_utf8(body)
            .unwrap()
            .contains("URI=\"s-1.1.m4s\""));
    }

    #[tokio::test]
    async fn requests_too_far_ahead_unknown_or_never_satisfied_are_refused() {
        let (tree, _) = tree();
        let short = Duration::from_millis(50);
        assert_eq!(
            tree.playlist("v0", request(3, 0), false, &plain, short)
                .await,
            PlaylistAnswer::TooFarAhead
        );
        assert_eq!(
            tree.playlist("v9", None, false, &plain, short).await,
            PlaylistAnswer::NotFound
        );
        assert_eq!(
            tree.playlist("v0", request(2, 0), false, &plain, short)
                .await,
            PlaylistAnswer::TimedOut
        );
    }

    #[tokio::test]
    async fn a_closed_tree_answers_waiting_requests_with_what_it_has() {
        let (tree, _) = tree();
        let streams = LowLatencyStreams::default();
        let id = LiveStreamId::parse("ls_1").unwrap();
        let waiting = tokio::spawn({
            let tree = tree.clone();
            async move {
                tree.playlist("v0", request(2, 0), false, &plain, WAIT)
                    .await
            }
        });
        let hinted = tokio::spawn({
            let tree = tree.clone();
            async move { tree.part("v0", "s-1.1.m4s", WAIT).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        streams.close(&id, &tree);
        assert!(matches!(
            waiting.await.unwrap(),
            PlaylistAnswer::Playlist(_)
        ));
        assert_eq!(hinted.await.unwrap(), None);
    }

    #[tokio::test]
    async fn parts_are_served_from_memory_and_only_the_hinted_one_is_waited_for() {
        let (tree, _) = tree();
        assert_eq!(
            tree.part("v0", "s-1.0.m4s", WAIT).await,
            Some(Bytes::from_static(b"p"))
        );
        // Not the preload hint: answered at once.
        assert_eq!(tree.part("v0", "s-7.0.m4s", WAIT).await, None);
    }

    #[test]
    fn a_new_session_replaces_the_streams_tree_and_the_old_one_cannot_remove_it() {
        let streams = LowLatencyStreams::default();
        let id = LiveStreamId::parse("ls_1").unwrap();
        let first = streams.open(&id);
        let second = streams.open(&id);
        streams.close(&id, &first);
        assert!(Arc::ptr_eq(&streams.get(&id).unwrap(), &second));
        streams.close(&id, &second);
        assert!(streams.get(&id).is_none());
    }
}
