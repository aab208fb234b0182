//! The live upload stage: the packaging thread hands every object of a session to an
//! [`UploadQueue`] and goes on at once; one async task per session ([`SessionUploader`]) stores
//! them in order.
//!
//! - Segments and init segments are first written to a spool file under the [`Spool`]'s
//!   directory (`<spool_dir>/<session_id>/`); the file is removed only once the store accepted
//!   it. The spool has a disk quota across all sessions of the process: a segment that would
//!   exceed it is refused at once (the packager then does not list it) and the stream goes on.
//! - Playlists are kept in memory and queued behind everything queued before them, so a stored
//!   playlist never lists a segment that is not stored yet. A newer version of a playlist
//!   replaces an older one still waiting (it moves to the back of the queue, behind the
//!   segments it lists).
//! - Deletes of evicted segments go through the same queue, so they follow their upload.
//! - A failed upload is retried, with jittered exponential backoff, until it succeeds: nothing
//!   behind it is stored meanwhile, which keeps the order. Only the end of a session bounds
//!   this: [`SessionUploader::finish`] waits a grace period, then logs every object it could
//!   not store and removes their spool files.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sluice_storage::Metrics;
use sluice_storage::{Db, ObjectKey, ObjectStore, SessionId, StoreError};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use sluice_storage::backoff::full_jitter_delay;

/// First retry delay ceiling after a failed upload; it doubles with every failure.
const RETRY_BASE: Duration = Duration::from_millis(200);
/// Cap of the retry delay: a store that comes back is used again within this.
const RETRY_CAP: Duration = Duration::from_secs(5);

/// The process's live segment spool: where segments wait for the store, and the disk quota
/// shared by every session.
pub struct Spool {
    root: PathBuf,
    max_bytes: u64,
    used_bytes: AtomicU64,
    refused_segments: AtomicU64,
    metrics: Metrics,
    retry_base: Duration,
    retry_cap: Duration,
}

impl Spool {
    /// A spool under `root` holding at most `max_bytes` at a time.
    pub fn new(root: PathBuf, max_bytes: u64, metrics: Metrics) -> Arc<Spool> {
        Arc::new(Spool {
            root,
            max_bytes,
            used_bytes: AtomicU64::new(0),
            refused_segments: AtomicU64::new(0),
            metrics,
            retry_base: RETRY_BASE,
            retry_cap: RETRY_CAP,
        })
    }

    /// Starts the uploader of session `session_id`: the queue the packaging thread fills, and
    /// the handle that drains it at the end. Call inside the runtime (it spawns a task).
    pub fn start_session(
        self: &Arc<Self>,
        store: Arc<dyn ObjectStore>,
        session_id: &str,
    ) -> std::io::Result<(UploadQueue, SessionUploader)> {
        let dir = self.root.join(session_id);
        std::fs::create_dir_all(&dir)?;
        let shared = Arc::new(Shared::default());
        let task = tokio::spawn(upload_in_order(shared.clone(), self.clone(), store));
        let queue = UploadQueue {
            shared: shared.clone(),
            spool: self.clone(),
            dir: dir.clone(),
            next_file: AtomicU64::new(0),
        };
        let uploader = SessionUploader {
            shared,
            spool: self.clone(),
            dir,
            task,
        };
        Ok((queue, uploader))
    }

    /// Removes the spool directories of sessions that are not open (left by a crashed run: an
    /// ended session's segments are of no use any more). Directories of open sessions, which
    /// another process sharing the spool may be writing, are kept.
    pub async fn remove_stale(&self, db: &Db) {
        let Ok(mut entries) = tokio::fs::read_dir(&self.root).await else {
            return;
        };
        let mut removed = 0;
        while let Ok(Some(entry)) = entries.next_entry().await {
            let name = entry.file_name();
            // A directory not named after a session belongs to none: it is stale too.
            let session = SessionId::parse(&name.to_string_lossy()).ok();
            let found = match &session {
                Some(id) => db.get_session(id).await,
                None => Ok(None),
            };
            let open = match found {
                Ok(session) => session.is_some_and(|session| session.ended_at.is_none()),
                Err(e) => {
                    warn!(error = %e, "Could not look up a spooled session; its files are kept.");
                    true
                }
            };
            if !open {
                match tokio::fs::remove_dir_all(entry.path()).await {
                    Ok(()) => removed += 1,
                    Err(e) => {
                        warn!(path = %entry.path().display(), error = %e, "Could not remove a stale spool directory.")
                    }
                }
            }
        }
        if removed > 0 {
            info!(
                sessions = removed,
                "Removed the spooled segments of sessions an earlier run left."
            );
        }
    }

    /// Bytes spooled and not yet stored, across all sessions.
    pub fn used_bytes(&self) -> u64 {
        self.used_bytes.load(Ordering::Acquire)
    }

    /// Takes `bytes` of the quota; false (and nothing taken) when they do not fit.
    fn reserve(&self, bytes: u64) -> bool {
        let reserved = self
            .used_bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes)
                    .filter(|total| *total <= self.max_bytes)
            });
        match reserved {
            Ok(used) => {
                self.metrics.live_spool_bytes(used + bytes);
                true
            }
            Err(_) => false,
        }
    }

    fn release(&self, bytes: u64) {
        let before = self.used_bytes.fetch_sub(bytes, Ordering::AcqRel);
        self.metrics.live_spool_bytes(before.saturating_sub(bytes));
    }

    fn retry_delay(&self, failures: u32) -> Duration {
        full_jitter_delay(
            self.retry_base,
            self.retry_cap,
            failures,
            &mut rand::thread_rng(),
        )
    }
}

/// Whether a spooled object is a media segment a playlist lists (its upload latency is
/// measured up to the stored playlist) or an init segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpoolKind {
    Segment,
    Init,
}

/// What storing one queued entry means.
#[derive(Clone)]
enum Work {
    /// Upload a spool file, then remove it and give its bytes back to the quota.
    Spooled {
        path: PathBuf,
        bytes: u64,
        kind: SpoolKind,
    },
    /// Upload a playlist held in memory.
    Playlist(Bytes),
    /// Delete an evicted segment.
    Delete,
}

#[derive(Clone)]
struct Upload {
    key: ObjectKey,
    work: Work,
    queued_at: Instant,
}

#[derive(Default)]
struct QueueState {
    uploads: VecDeque<Upload>,
    /// The front entry is being stored (or waits for its retry): it is not coalesced away.
    front_busy: bool,
    /// No more entries will come.
    closed: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<QueueState>,
    wake: Notify,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, QueueState> {
        // Every update is a push, pop or flag store: the queue stays consistent even if a
        // holder panicked.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn push(&self, upload: Upload) {
        let mut state = self.state();
        if matches!(upload.work, Work::Playlist(_)) {
            let first_idle = usize::from(state.front_busy);
            let older = state
                .uploads
                .iter()
                .skip(first_idle)
                .position(|queued| queued.key == upload.key)
                .map(|at| at + first_idle);
            if let Some(at) = older {
                state.uploads.remove(at);
            }
        }
        state.uploads.push_back(upload);
        drop(state);
        self.wake.notify_one();
    }

    fn close(&self) {
        self.state().closed = true;
        self.wake.notify_one();
    }
}

/// The packaging thread's side of a session's uploader: every call returns at once.
pub struct UploadQueue {
    shared: Arc<Shared>,
    spool: Arc<Spool>,
    /// The session's spool directory.
    dir: PathBuf,
    next_file: AtomicU64,
}

impl UploadQueue {
    /// Writes `body` to a spool file and queues its upload to `key`. False when it was refused:
    /// the quota is full or the spool file could not be written (both logged); the caller must
    /// not list it then.
    pub fn spool(&self, key: ObjectKey, body: &[u8], kind: SpoolKind) -> bool {
        let bytes = body.len() as u64;
        if !self.spool.reserve(bytes) {
            let refused = self.spool.refused_segments.fetch_add(1, Ordering::AcqRel) + 1;
            self.spool.metrics.live_segment_refused();
            warn!(
                key = %key,
                bytes,
                spooled_bytes = self.spool.used_bytes(),
                quota_bytes = self.spool.max_bytes,
                refused_so_far = refused,
                "Live spool full: segment refused and not listed; the stream goes on."
            );
            return false;
        }
        let number = self.next_file.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!("{number:010}.spool"));
        if let Err(e) = std::fs::write(&path, body) {
            self.spool.release(bytes);
            // A partial file may be left; it is not queued, so remove it now.
            let _ = std::fs::remove_file(&path);
            warn!(key = %key, path = %path.display(), error = %e, "Could not write a spool file: segment not listed.");
            return false;
        }
        if kind == SpoolKind::Segment {
            debug!(key = %key, bytes, "Live segment spooled.");
        }
        self.shared.push(Upload {
            key,
            work: Work::Spooled { path, bytes, kind },
            queued_at: Instant::now(),
        });
        true
    }

    /// Queues a playlist behind everything queued so far, replacing a waiting older version.
    pub fn playlist(&self, key: ObjectKey, body: Bytes) {
        self.shared.push(Upload {
            key,
            work: Work::Playlist(body),
            queued_at: Instant::now(),
        });
    }

    /// Queues the delete of an object behind everything queued so far.
    pub fn delete(&self, key: ObjectKey) {
        self.shared.push(Upload {
            key,
            work: Work::Delete,
            queued_at: Instant::now(),
        });
    }
}

impl Drop for UploadQueue {
    fn drop(&mut self) {
        self.shared.close();
    }
}

/// The end of a session's uploader: waits for its queue to drain.
pub struct SessionUploader {
    shared: Arc<Shared>,
    spool: Arc<Spool>,
    dir: PathBuf,
    task: JoinHandle<()>,
}

/// What [`SessionUploader::finish`] could not store.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Unstored {
    pub keys: Vec<String>,
}

impl SessionUploader {
    /// Waits until every queued object is stored, for at most `grace` (counted from now), then
    /// gives up on the rest: each one is logged, its spool file removed and its quota released.
    /// The session's spool directory is removed.
    pub async fn finish(mut self, grace: Duration) -> Unstored {
        self.shared.close();
        let unstored = match tokio::time::timeout(grace, &mut self.task).await {
            Ok(_) => Unstored::default(),
            Err(_) => {
                self.task.abort();
                let _ = (&mut self.task).await;
                self.abandon_queue(grace).await
            }
        };
        if let Err(e) = tokio::fs::remove_dir_all(&self.dir).await {
            debug!(path = %self.dir.display(), error = %e, "Could not remove the session's spool directory.");
        }
        unstored
    }

    async fn abandon_queue(&self, grace: Duration) -> Unstored {
        let abandoned: Vec<Upload> = self.shared.state().uploads.drain(..).collect();
        let mut keys = Vec::with_capacity(abandoned.len());
        for upload in abandoned {
            let action = match &upload.work {
                Work::Spooled { path, bytes, .. } => {
                    self.spool.release(*bytes);
                    remove_spool_file(path).await;
                    "upload"
                }
                Work::Playlist(_) => "upload",
                Work::Delete => "delete",
            };
            warn!(key = %upload.key, action, "Live object not stored: the store did not accept it before the session ended.");
            keys.push(upload.key.to_string());
        }
        warn!(
            unstored = keys.len(),
            grace_seconds = grace.as_secs_f64(),
            "The live session ended with objects the store did not accept."
        );
        Unstored { keys }
    }
}

/// The session's upload task: stores the queue's front entry until it succeeds, then the next.
async fn upload_in_order(shared: Arc<Shared>, spool: Arc<Spool>, store: Arc<dyn ObjectStore>) {
    // Completion instants of segments stored but not yet listed by a stored playlist, per
    // directory (`live/{id}/v0`).
    let mut awaiting_listing: HashMap<String, Vec<Instant>> = HashMap::new();
    let mut failures: u32 = 0;
    loop {
        let next = {
            let mut state = shared.state();
            match state.uploads.front().cloned() {
                Some(upload) => {
                    state.front_busy = true;
                    Some(upload)
                }
                None if state.closed => return,
                None => None,
            }
        };
        let Some(upload) = next else {
            shared.wake.notified().await;
            continue;
        };
        match store_one(store.as_ref(), &upload).await {
            Ok(()) => {
                if failures > 0 {
                    info!(key = %upload.key, failures, "Live upload succeeded after retries.");
                    failures = 0;
                }
                {
                    let mut state = shared.state();
                    state.uploads.pop_front();
                    state.front_busy = false;
                }
                let directory = parent_of(&upload.key);
                match &upload.work {
                    Work::Spooled { path, bytes, kind } => {
                        // Released before the await, so an abort cannot leak the quota.
                        spool.release(*bytes);
                        remove_spool_file(path).await;
                        if *kind == SpoolKind::Segment {
                            awaiting_listing
                                .entry(directory.to_owned())
                                .or_default()
                                .push(upload.queued_at);
                        }
                    }
                    Work::Playlist(_) => {
                        for completed in awaiting_listing.remove(directory).unwrap_or_default() {
                            spool
                                .metrics
                                .live_segment_listed(completed.elapsed().as_secs_f64());
                        }
                    }
                    Work::Delete => {}
                }
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                spool.metrics.live_upload_failed();
                let delay = spool.retry_delay(failures);
                warn!(key = %upload.key, error = %e, failures, retry_in_ms = delay.as_millis() as u64, "Live upload failed; retrying.");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

async fn store_one(store: &dyn ObjectStore, upload: &Upload) -> Result<(), StoreError> {
    match &upload.work {
        Work::Spooled { path, .. } => store.put_file(&upload.key, path).await,
        Work::Playlist(body) => store.put(&upload.key, body.clone()).await,
        Work::Delete => store.delete(&upload.key).await,
    }
}

/// The key without its last segment: the directory a segment and its playlist share.
fn parent_of(key: &ObjectKey) -> &str {
    key.as_str()
        .rsplit_once('/')
        .map_or("", |(parent, _)| parent)
}

async fn remove_spool_file(path: &Path) {
    if let Err(e) = tokio::fs::remove_file(path).await {
        warn!(path = %path.display(), error = %e, "Could not remove a spool file.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::NotingStore;

    /// A store root, a spool and a way to take the store down: its root directory is moved
    /// away and a regular file put in its place, so every write fails with ENOTDIR.
    struct Rig {
        _temp: tempfile::TempDir,
        objects: PathBuf,
        spool_root: PathBuf,
        store: Arc<NotingStore>,
        spool: Arc<Spool>,
        metrics: Metrics,
    }

    impl Rig {
        fn new(max_bytes: u64) -> Rig {
            let temp = tempfile::tempdir().unwrap();
            let objects = temp.path().join("objects");
            std::fs::create_dir_all(&objects).unwrap();
            let spool_root = temp.path().join("spool");
            let metrics = Metrics::new();
            let spool = Arc::new(Spool {
                retry_base: Duration::from_millis(5),
                retry_cap: Duration::from_millis(40),
                ..Arc::into_inner(Spool::new(spool_root.clone(), max_bytes, metrics.clone()))
                    .unwrap()
            });
            let store = Arc::new(NotingStore::new(&objects));
            Rig {
                _temp: temp,
                objects,
                spool_root,
                store,
                spool,
                metrics,
            }
        }

        fn start(&self) -> (UploadQueue, SessionUploader) {
            self.spool
                .start_session(self.store.clone(), "ses_test")
                .unwrap()
        }

        fn store_down(&self) {
            std::fs::rename(&self.objects, self.objects.with_extension("away")).unwrap();
            std::fs::write(&self.objects, b"not a directory").unwrap();
        }

        fn store_up(&self) {
            std::fs::remove_file(&self.objects).unwrap();
            std::fs::rename(self.objects.with_extension("away"), &self.objects).unwrap();
        }

        fn stored(&self, key: &str) -> Option<Vec<u8>> {
            std::fs::read(self.objects.join(key)).ok()
        }

        fn spool_files(&self) -> usize {
            std::fs::read_dir(self.spool_root.join("ses_test"))
                .map(|dir| dir.count())
                .unwrap_or(0)
        }

        fn metric(&self, series: &str) -> f64 {
            let text = self.metrics.encode();
            text.lines()
                .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
                .unwrap_or_else(|| panic!("{series} missing from:\n{text}"))
                .parse()
                .unwrap()
        }

        /// Waits until `series` is at least `floor`.
        async fn metric_reaches(&self, series: &str, floor: f64) {
            let deadline = Instant::now() + Duration::from_secs(10);
            while self.metric(series) < floor {
                assert!(Instant::now() < deadline, "{series} never reached {floor}");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }

    fn key(text: &str) -> ObjectKey {
        ObjectKey::parse(text).unwrap()
    }

    #[tokio::test]
    async fn a_playlist_is_stored_only_after_its_segments_and_failures_are_retried() {
        let rig = Rig::new(1 << 20);
        rig.store_down();
        let (queue, uploader) = rig.start();
        assert!(queue.spool(key("live/ls/v0/init.mp4"), b"init", SpoolKind::Init));
        assert!(queue.spool(key("live/ls/v0/s-0.m4s"), b"zero", SpoolKind::Segment));
        queue.playlist(key("live/ls/v0/index.m3u8"), Bytes::from("lists s-0"));
        assert!(queue.spool(key("live/ls/v0/s-1.m4s"), b"one", SpoolKind::Segment));
        queue.playlist(key("live/ls/v0/index.m3u8"), Bytes::from("lists s-0 s-1"));
        queue.playlist(key("live/ls/master.m3u8"), Bytes::from("master"));

        // The store refuses: the upload is retried, nothing behind it is stored, and every
        // segment stays in the spool.
        rig.metric_reaches("sluice_live_upload_failures_total", 3.0)
            .await;
        assert!(rig.store.accepted().is_empty());
        assert_eq!(rig.spool_files(), 3);
        assert_eq!(rig.spool.used_bytes(), 11);
        assert_eq!(rig.metric("sluice_live_spool_bytes"), 11.0);

        rig.store_up();
        drop(queue);
        assert_eq!(
            uploader.finish(Duration::from_secs(10)).await,
            Unstored::default()
        );
        // The first playlist was replaced by the newer one while it waited, which went to the
        // back, behind the segment it lists.
        assert_eq!(
            rig.store.accepted(),
            [
                "put live/ls/v0/init.mp4",
                "put live/ls/v0/s-0.m4s",
                "put live/ls/v0/s-1.m4s",
                "put live/ls/v0/index.m3u8",
                "put live/ls/master.m3u8",
            ]
        );
        assert_eq!(rig.stored("live/ls/v0/s-1.m4s").unwrap(), b"one");
        assert_eq!(
            rig.stored("live/ls/v0/index.m3u8").unwrap(),
            b"lists s-0 s-1"
        );
        // Spool files are gone once stored, and the quota is back.
        assert_eq!(rig.spool_files(), 0);
        assert!(!rig.spool_root.join("ses_test").exists());
        assert_eq!(rig.spool.used_bytes(), 0);
        assert_eq!(rig.metric("sluice_live_spool_bytes"), 0.0);
        // Both segments were listed by the stored playlist; the init segment is not counted.
        assert_eq!(rig.metric("sluice_live_segment_upload_seconds_count"), 2.0);
    }

    #[tokio::test]
    async fn a_spool_file_is_removed_only_once_the_store_accepted_it() {
        let rig = Rig::new(1 << 20);
        rig.store_down();
        let (queue, uploader) = rig.start();
        assert!(queue.spool(key("live/ls/v0/s-0.m4s"), b"zero", SpoolKind::Segment));
        rig.metric_reaches("sluice_live_upload_failures_total", 2.0)
            .await;
        assert_eq!(rig.spool_files(), 1, "kept while the store refuses it");
        rig.store_up();
        let deadline = Instant::now() + Duration::from_secs(10);
        while rig.spool_files() > 0 {
            assert!(Instant::now() < deadline, "the spool file stayed");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(rig.stored("live/ls/v0/s-0.m4s").unwrap(), b"zero");
        drop(queue);
        uploader.finish(Duration::from_secs(10)).await;
    }

    #[tokio::test]
    async fn evictions_follow_the_upload_of_what_they_delete() {
        let rig = Rig::new(1 << 20);
        let (queue, uploader) = rig.start();
        assert!(queue.spool(key("live/ls/v0/s-0.m4s"), b"zero", SpoolKind::Segment));
        queue.delete(key("live/ls/v0/s-0.m4s"));
        assert!(queue.spool(key("live/ls/v0/s-1.m4s"), b"one", SpoolKind::Segment));
        drop(queue);
        uploader.finish(Duration::from_secs(10)).await;
        assert_eq!(
            rig.store.accepted(),
            [
                "put live/ls/v0/s-0.m4s",
                "delete live/ls/v0/s-0.m4s",
                "put live/ls/v0/s-1.m4s",
            ]
        );
        assert_eq!(rig.stored("live/ls/v0/s-0.m4s"), None);
        assert_eq!(rig.stored("live/ls/v0/s-1.m4s").unwrap(), b"one");
    }

    #[tokio::test]
    async fn a_segment_over_the_quota_is_refused_at_once_and_the_next_that_fits_is_taken() {
        let rig = Rig::new(10);
        rig.store_down();
        let (queue, uploader) = rig.start();
        assert!(queue.spool(key("live/ls/v0/s-0.m4s"), b"eight by", SpoolKind::Segment));
        assert!(!queue.spool(key("live/ls/v0/s-1.m4s"), b"too big", SpoolKind::Segment));
        assert_eq!(rig.spool.used_bytes(), 8);
        assert_eq!(rig.spool_files(), 1, "a refused segment is not spooled");
        assert_eq!(rig.metric("sluice_live_segments_refused_total"), 1.0);
        // The quota is shared by every session of the process.
        let (other_queue, other_uploader) = rig
            .spool
            .start_session(rig.store.clone(), "ses_other")
            .unwrap();
        assert!(!other_queue.spool(key("live/lt/v0/s-0.m4s"), b"abc", SpoolKind::Segment));
        assert!(other_queue.spool(key("live/lt/v0/s-0.m4s"), b"ab", SpoolKind::Segment));

        rig.store_up();
        drop((queue, other_queue));
        uploader.finish(Duration::from_secs(10)).await;
        other_uploader.finish(Duration::from_secs(10)).await;
        assert_eq!(rig.spool.used_bytes(), 0);
        assert_eq!(rig.stored("live/ls/v0/s-1.m4s"), None);
        // Once stored, the space is free again.
        let (queue, uploader) = rig.start();
        assert!(queue.spool(key("live/ls/v0/s-2.m4s"), b"too big", SpoolKind::Segment));
        drop(queue);
        uploader.finish(Duration::from_secs(10)).await;
        assert_eq!(rig.stored("live/ls/v0/s-2.m4s").unwrap(), b"too big");
    }

    #[tokio::test]
    async fn finishing_waits_for_the_grace_then_reports_and_removes_what_was_not_stored() {
        let rig = Rig::new(1 << 20);
        rig.store_down();
        let (queue, uploader) = rig.start();
        assert!(queue.spool(key("live/ls/v0/s-0.m4s"), b"zero", SpoolKind::Segment));
        queue.playlist(key("live/ls/v0/index.m3u8"), Bytes::from("lists s-0"));
        drop(queue);
        let started = Instant::now();
        let unstored = uploader.finish(Duration::from_millis(300)).await;
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert_eq!(
            unstored.keys,
            ["live/ls/v0/s-0.m4s", "live/ls/v0/index.m3u8"]
        );
        assert!(!rig.spool_root.join("ses_test").exists());
        assert_eq!(rig.spool.used_bytes(), 0);
        assert_eq!(rig.metric("sluice_live_spool_bytes"), 0.0);
        rig.store_up();
        assert!(rig.store.accepted().is_empty());
    }
}
