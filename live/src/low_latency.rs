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

/// The shortest hold of a blocking playlist request or a preload-hinted part; a rendition
/// whose target duration is longer holds three target durations (§6.2.5.2 answers 503 then).
pub const BLOCKING_TIMEOUT: Duration = Duration::from_secs(3);

/// Segments whose parts stay in memory after the segment completes: more than the three
/// target durations a playlist lists parts for.
pub const PART_SEGMENTS_KEPT: u64 = 5;

/// Complete segments of each rendition kept in memory, for players that fetch the newest
/// segments before the store holds them.
pub const SEGMENTS_KEPT: usize = 2;

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

    /// A new session's tree, replacing any earlier one of the stream; it is closed and
    /// forgotten when the returned registration is dropped.
    pub(crate) fn open(self: &Arc<Self>, live_stream_id: &LiveStreamId) -> LowLatencyRegistration {
        let tree = Arc::new(LowLatencyTree::default());
        if let Some(previous) = lock(&self.streams).insert(live_stream_id.clone(), tree.clone()) {
            previous.close();
        }
        LowLatencyRegistration {
            streams: self.clone(),
            live_stream_id: live_stream_id.clone(),
            tree,
        }
    }
}

/// A session's tree while it is registered: dropping it ends the tree (its waiting requests
/// are answered) and forgets it, unless a newer session of the stream replaced it already.
pub(crate) struct LowLatencyRegistration {
    streams: Arc<LowLatencyStreams>,
    live_stream_id: LiveStreamId,
    tree: Arc<LowLatencyTree>,
}

impl LowLatencyRegistration {
    pub(crate) fn tree(&self) -> Arc<LowLatencyTree> {
        self.tree.clone()
    }
}

impl Drop for LowLatencyRegistration {
    fn drop(&mut self) {
        self.tree.close();
        let mut streams = lock(&self.streams.streams);
        if streams
            .get(&self.live_stream_id)
            .is_some_and(|current| Arc::ptr_eq(current, &self.tree))
        {
            streams.remove(&self.live_stream_id);
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
    /// Counts the changes.
    version: u64,
    /// The last public render of each rendition, full and delta, with the version it shows:
    /// every viewer waiting for the same part gets the same bytes, rendered once.
    renders: HashMap<(String, bool), (u64, Bytes)>,
}

#[derive(Default)]
struct RenditionState {
    /// The playlist as last handed over; rendered outside the lock.
    playlist: Option<Arc<LivePlaylist>>,
    /// Recent parts: the media sequence number they were listed under, name, bytes.
    parts: VecDeque<(u64, String, Bytes)>,
    /// Init segments of the session, by name.
    inits: HashMap<String, Bytes>,
    /// The newest complete segments, by name, oldest first.
    segments: VecDeque<(String, Bytes)>,
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
    Playlist(Bytes),
    /// No such rendition in this session.
    NotFound,
    /// `_HLS_msn` lies more than two segments ahead of the last one, or `_HLS_part` past the
    /// Advance Part Limit (§6.2.5.2: 400).
    TooFarAhead,
    /// What was asked for did not arrive in time (§6.2.5.2: 503).
    TimedOut,
}

/// What a media object is to the tree.
pub(crate) enum MediaObject {
    Init,
    Segment,
}

impl LowLatencyTree {
    /// Takes rendition `dir`'s playlist as it is now and the parts it lists since the last
    /// update.
    pub(crate) fn update(&self, dir: &str, playlist: &LivePlaylist, parts: Vec<(String, Bytes)>) {
        // Copied outside the lock, so readers never wait on it.
        let snapshot = Arc::new(playlist.clone());
        let msn = snapshot.next_media_sequence();
        {
            let mut state = lock(&self.state);
            state.version += 1;
            let rendition = state.renditions.entry(dir.to_owned()).or_default();
            rendition.playlist = Some(snapshot);
            rendition
                .parts
                .extend(parts.into_iter().map(|(name, body)| (msn, name, body)));
            while rendition
                .parts
                .front()
                .is_some_and(|(of, _, _)| of + PART_SEGMENTS_KEPT < msn)
            {
                rendition.parts.pop_front();
            }
        }
        self.changed.send_modify(|version| *version += 1);
    }

    /// Keeps an init segment or a complete segment of rendition `dir` as it goes to the store.
    pub(crate) fn keep(&self, dir: &str, name: &str, kind: MediaObject, body: Bytes) {
        let mut state = lock(&self.state);
        let rendition = state.renditions.entry(dir.to_owned()).or_default();
        match kind {
            MediaObject::Init => {
                rendition.inits.insert(name.to_owned(), body);
            }
            MediaObject::Segment => {
                rendition.segments.push_back((name.to_owned(), body));
                while rendition.segments.len() > SEGMENTS_KEPT {
                    rendition.segments.pop_front();
                }
            }
        }
    }

    /// Ends the tree: waiting requests get what there is.
    pub(crate) fn close(&self) {
        {
            let mut state = lock(&self.state);
            state.closed = true;
            state.version += 1;
        }
        self.changed.send_modify(|version| *version += 1);
    }

    /// Rendition `dir`'s low-latency playlist: at once without `blocking`, else once it lists
    /// the part (or the whole segment, without `part`) asked for, or the session ends; 503
    /// after [`BLOCKING_TIMEOUT`] or three target durations. `skip` asks for a delta update;
    /// `uri_query` (`?token=…` for signed playback, else empty) goes after every URI in it.
    pub async fn playlist(
        &self,
        dir: &str,
        blocking: Option<BlockingRequest>,
        skip: bool,
        uri_query: &str,
    ) -> PlaylistAnswer {
        let mut changes = self.changed.subscribe();
        let mut deadline = None;
        loop {
            let (playlist, reports, version) = {
                let state = lock(&self.state);
                let Some(playlist) = state
                    .renditions
                    .get(dir)
                    .and_then(|rendition| rendition.playlist.clone())
                else {
                    return PlaylistAnswer::NotFound;
                };
                let ended = state.closed || playlist.is_ended();
                let ready = match blocking {
                    _ if ended => true,
                    None => true,
                    // The open segment is `next`; its successor may be asked for too.
                    Some(request) if request.msn > playlist.next_media_sequence() + 1 => {
                        return PlaylistAnswer::TooFarAhead;
                    }
                    Some(BlockingRequest {
                        msn,
                        part: Some(part),
                    }) if playlist.part_too_far_ahead(msn, part) => {
                        return PlaylistAnswer::TooFarAhead;
                    }
                    Some(BlockingRequest {
                        msn,
                        part: Some(part),
                    }) => playlist.has_part(msn, part),
                    Some(BlockingRequest { msn, part: None }) => {
                        msn < playlist.next_media_sequence()
                    }
                };
                if ready && uri_query.is_empty() {
                    let key = (dir.to_owned(), skip);
                    if let Some((_, body)) =
                        state.renders.get(&key).filter(|(v, _)| *v == state.version)
                    {
                        return PlaylistAnswer::Playlist(body.clone());
                    }
                }
                let reports = ready.then(|| sibling_reports(&state, dir));
                (playlist, reports, state.version)
            };
            if let Some(reports) = reports {
                let uri = |name: &str| format!("{name}{uri_query}");
                let view = LowLatencyView {
                    skip,
                    reports: &reports,
                    uri: &uri,
                };
                let body = Bytes::from(playlist.render_low_latency(&view));
                if uri_query.is_empty() {
                    let mut state = lock(&self.state);
                    // Only a render of the current state is worth keeping.
                    if state.version == version {
                        state
                            .renders
                            .insert((dir.to_owned(), skip), (version, body.clone()));
                    }
                }
                return PlaylistAnswer::Playlist(body);
            }
            let deadline = *deadline
                .get_or_insert_with(|| tokio::time::Instant::now() + hold_limit(&playlist));
            if tokio::time::timeout_at(deadline, changes.changed())
                .await
                .is_err()
            {
                return PlaylistAnswer::TimedOut;
            }
        }
    }

    /// Media object `name` of rendition `dir` from memory: a part, an init segment or one of
    /// the newest segments. The part the playlist announces as its preload hint is waited for
    /// (§6.2.6: the server holds the request until it exists), up to the hold limit.
    pub async fn media(&self, dir: &str, name: &str) -> Option<Bytes> {
        let mut changes = self.changed.subscribe();
        let mut deadline = None;
        loop {
            let playlist = {
                let state = lock(&self.state);
                let rendition = state.renditions.get(dir)?;
                let found = rendition
                    .parts
                    .iter()
                    .find(|(_, n, _)| n == name)
                    .map(|(_, _, body)| body)
                    .or_else(|| rendition.inits.get(name))
                    .or_else(|| {
                        rendition
                            .segments
                            .iter()
                            .find(|(n, _)| n == name)
                            .map(|(_, body)| body)
                    });
                if let Some(body) = found {
                    return Some(body.clone());
                }
                let playlist = rendition.playlist.clone()?;
                if state.closed || playlist.preload_hint() != Some(name) {
                    return None;
                }
                playlist
            };
            let deadline = *deadline
                .get_or_insert_with(|| tokio::time::Instant::now() + hold_limit(&playlist));
            tokio::time::timeout_at(deadline, changes.changed())
                .await
                .ok()?
                .ok()?;
        }
    }
}

/// How long a request is held at most: three target durations, [`BLOCKING_TIMEOUT`] at least.
fn hold_limit(playlist: &LivePlaylist) -> Duration {
    BLOCKING_TIMEOUT.max(Duration::from_secs(3 * playlist.target_duration_secs()))
}

/// EXT-X-RENDITION-REPORT of every other rendition (§4.4.5.4).
fn sibling_reports(state: &TreeState, dir: &str) -> Vec<RenditionReport> {
    state
        .renditions
        .iter()
        .filter(|(other, _)| other.as_str() != dir)
        .filter_map(|(other, rendition)| {
            let (last_msn, last_part) = rendition.playlist.as_ref()?.last_part()?;
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

    fn part(uri: &str) -> PartEntry {
        PartEntry {
            uri: uri.to_owned(),
            duration_secs: 0.3,
            independent: false,
        }
    }

    fn at(secs: i64) -> chrono::DateTime<Utc> {
        Utc.timestamp_opt(secs, 0).unwrap()
    }

    fn bytes(text: &'static str) -> Bytes {
        Bytes::from_static(text.as_bytes())
    }

    /// A tree whose `v0` has one complete segment (0, one part) and part 0 of segment 1.
    fn tree() -> (Arc<LowLatencyTree>, LivePlaylist) {
        let tree = Arc::new(LowLatencyTree::default());
        let mut playlist = LivePlaylist::new(1, 6, "init.mp4".into()).with_parts(0.334);
        playlist.push_part(part("s-0.0.m4s"), at(0), "s-0.1.m4s".into());
        playlist.push_segment("s-0.m4s".into(), 0.3, at(0));
        playlist.set_preload_hint("s-1.0.m4s".into());
        playlist.push_part(part("s-1.0.m4s"), at(1), "s-1.1.m4s".into());
        tree.update(
            "v0",
            &playlist,
            vec![
                ("s-0.0.m4s".into(), bytes("a")),
                ("s-1.0.m4s".into(), bytes("p")),
            ],
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
            async move { tree.playlist("v0", request(1, 1), false, "").await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiting.is_finished(),
            "part 1 of segment 1 does not exist yet"
        );
        playlist.push_part(part("s-1.1.m4s"), at(1), "s-1.2.m4s".into());
        tree.update("v0", &playlist, vec![("s-1.1.m4s".into(), bytes("q"))]);
        let PlaylistAnswer::Playlist(body) = waiting.await.unwrap() else {
            panic!("a playlist");
        };
        assert!(String::from_utf8(body.to_vec())
            .unwrap()
            .contains("URI=\"s-1.1.m4s\""));
    }

    #[tokio::test]
    async fn a_part_past_a_complete_segments_last_is_the_next_segments_first() {
        let (tree, _) = tree();
        // Segment 0 has one part: its "part 1" is part 0 of segment 1, listed.
        assert!(matches!(
            tree.playlist("v0", request(0, 1), false, "").await,
            PlaylistAnswer::Playlist(_)
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn requests_too_far_ahead_unknown_or_never_satisfied_are_refused() {
        let (tree, _) = tree();
        assert_eq!(
            tree.playlist("v0", request(3, 0), false, "").await,
            PlaylistAnswer::TooFarAhead
        );
        assert_eq!(
            tree.playlist("v0", request(1, 100), false, "").await,
            PlaylistAnswer::TooFarAhead,
            "past the Advance Part Limit"
        );
        assert_eq!(
            tree.playlist("v9", None, false, "").await,
            PlaylistAnswer::NotFound
        );
        let asked = tokio::time::Instant::now();
        assert_eq!(
            tree.playlist("v0", request(2, 0), false, "").await,
            PlaylistAnswer::TimedOut
        );
        assert_eq!(
            asked.elapsed(),
            BLOCKING_TIMEOUT,
            "three 1 s target durations"
        );
    }

    #[tokio::test]
    async fn an_ended_session_answers_waiting_requests_with_what_it_has() {
        let streams = Arc::new(LowLatencyStreams::default());
        let id = LiveStreamId::parse("ls_1").unwrap();
        let registration = streams.open(&id);
        let tree = registration.tree();
        let (_, playlist) = self::tree();
        tree.update("v0", &playlist, Vec::new());
        let waiting = tokio::spawn({
            let tree = tree.clone();
            async move { tree.playlist("v0", request(2, 0), false, "").await }
        });
        let hinted = tokio::spawn({
            let tree = tree.clone();
            async move { tree.media("v0", "s-1.1.m4s").await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(registration);
        assert!(matches!(
            waiting.await.unwrap(),
            PlaylistAnswer::Playlist(_)
        ));
        assert_eq!(hinted.await.unwrap(), None);
        assert!(streams.get(&id).is_none(), "forgotten once ended");
        // Even a request far ahead gets the ended playlist.
        assert!(matches!(
            tree.playlist("v0", request(9, 0), false, "").await,
            PlaylistAnswer::Playlist(_)
        ));
    }

    #[tokio::test]
    async fn parts_inits_and_new_segments_come_from_memory_and_only_the_hint_is_waited_for() {
        let (tree, _) = tree();
        tree.keep("v0", "init.mp4", MediaObject::Init, bytes("i"));
        for n in 0..3 {
            tree.keep(
                "v0",
                &format!("s-{n}.m4s"),
                MediaObject::Segment,
                bytes("s"),
            );
        }
        assert_eq!(tree.media("v0", "s-1.0.m4s").await, Some(bytes("p")));
        assert_eq!(tree.media("v0", "init.mp4").await, Some(bytes("i")));
        assert_eq!(tree.media("v0", "s-2.m4s").await, Some(bytes("s")));
        assert_eq!(
            tree.media("v0", "s-0.m4s").await,
            None,
            "only the newest are kept"
        );
        // Not the preload hint: answered at once.
        assert_eq!(tree.media("v0", "s-7.0.m4s").await, None);
    }

    #[test]
    fn parts_of_old_segments_leave_memory() {
        let (tree, mut playlist) = tree();
        for msn in 1..=PART_SEGMENTS_KEPT + 2 {
            playlist.push_segment(format!("s-{msn}.m4s"), 0.3, at(msn as i64));
            tree.update("v0", &playlist, Vec::new());
        }
        let state = lock(&tree.state);
        let names: Vec<&str> = state.renditions["v0"]
            .parts
            .iter()
            .map(|(_, name, _)| name.as_str())
            .collect();
        assert!(names.is_empty(), "{names:?}");
    }

    #[test]
    fn a_new_session_replaces_the_streams_tree_and_the_old_one_cannot_remove_it() {
        let streams = Arc::new(LowLatencyStreams::default());
        let id = LiveStreamId::parse("ls_1").unwrap();
        let first = streams.open(&id);
        let second = streams.open(&id);
        let second_tree = second.tree();
        drop(first);
        assert!(Arc::ptr_eq(&streams.get(&id).unwrap(), &second_tree));
        drop(second);
        assert!(streams.get(&id).is_none());
    }

    #[tokio::test]
    async fn public_viewers_of_one_version_share_one_render_and_signed_ones_get_their_token() {
        let (tree, mut playlist) = tree();
        let render = |answer| match answer {
            PlaylistAnswer::Playlist(body) => body,
            other => panic!("{other:?}"),
        };
        let first = render(tree.playlist("v0", None, false, "").await);
        let second = render(tree.playlist("v0", request(1, 0), false, "").await);
        assert_eq!(first.as_ptr(), second.as_ptr(), "rendered once");
        let signed = render(tree.playlist("v0", None, false, "?token=t").await);
        assert!(String::from_utf8(signed.to_vec())
            .unwrap()
            .contains("URI=\"s-1.0.m4s?token=t\""));
        playlist.push_part(part("s-1.1.m4s"), at(1), "s-1.2.m4s".into());
        tree.update("v0", &playlist, Vec::new());
        let third = render(tree.playlist("v0", None, false, "").await);
        assert_ne!(third, first, "a new version renders again");
    }
}
