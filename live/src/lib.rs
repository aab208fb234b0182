//! sluice-live: the live session core. It knows publishers only through a protocol-neutral
//! interface ([`Publisher`], [`PublisherEvent`], [`PublishRequest`]); RTMP (`rtmp`) and WHIP
//! ([`whip`]) are adapters beside each other, and a new kind of publisher (a room's composite,
//! SRT) is one more. Below the interface the core is the same for all of them:
//!
//! * `session`: the life of a session. Policy lives here, not in the protocol crates: a
//!   publish request names a stream key, which is looked up in the database; unknown keys,
//!   disabled streams and streams that already have a publisher are refused with a clear log
//!   line. Its stages, in order: `authorise` (claim or resume), `open_session`, `run_session`
//!   (media through the `start_gate` into the pipeline), `wait_for_reconnect`,
//!   `close_session`.
//! * `start_gate`: the verdicts on a publisher's tracks and first packets (wait, start,
//!   refuse).
//! * `pipeline`: the decode-once ladder (transcoder), the packaging thread ([`renditions`]:
//!   CMAF segments and live playlists, sans-IO, handed to a [`renditions::TreeOutput`]) and the
//!   spool and `uploader` that store them in order.
//! * `reconnect`: a session outlives a publisher that vanishes (its connection drops, fails or
//!   times out without the encoder unpublishing) by the stream's `reconnect_window_s`: its
//!   packaging stays alive and the stream stays claimed and `active`, and
//!   `live_stream.disconnected` is published. A publish with the same stream key inside the
//!   window resumes the session (`live_stream.connected`, then `live_stream.active` once media
//!   flows; no new `session.started`), its playlists carrying EXT-X-DISCONTINUITY. Otherwise,
//!   when the window closes, or at once when the control plane or shutdown stops it, the
//!   session ends: `session.ended`, `live_stream.idle`, and a recorded session is handed to
//!   [`Recordings`]. A returning publisher whose source plans to other renditions ends the
//!   session and starts a new one. An encoder that unpublishes ("stop streaming") ends its
//!   session at once.
//! * `session_control`: running sessions follow the event bus and end when the control plane
//!   disables, re-keys, deletes or completes their stream.
//! * [`captions`]: a stream with live captions gets a WebVTT subtitles rendition recognised
//!   from its audio beside the others, on a thread of its own so it never holds them back.
//! * [`restream`]: while a publisher is connected, its media is also pushed to the stream's
//!   simulcast targets; a returning publisher's targets connect again.
//!
//! The core depends on media, ingest, transcoder, packager, storage and transcribe only. What belongs to
//! other parts of the server reaches it through two ports the binary fills in: the API's JSON
//! forms of the objects its events carry ([`EventViews`]) and the asset side that makes
//! recorded sessions into assets ([`Recordings`]).

pub mod address_policy;
pub mod captions;
pub mod config;
pub mod connection_slots;
mod event_views;
pub mod health;
pub mod low_latency;
mod pipeline;
mod publisher;
mod reconnect;
mod recordings;
pub mod renditions;
pub mod restream;
mod rtmp;
mod session;
mod session_control;
#[cfg(test)]
mod session_tests;
mod start_gate;
#[cfg(test)]
mod test_support;
mod uploader;
pub mod whip;

pub use event_views::EventViews;
pub use publisher::{PublishRequest, Publisher, PublisherEvent};
pub use recordings::Recordings;
pub use renditions::{RecordedRendition, RecordedSegment, SessionRecording};

use std::sync::Arc;
use std::time::Duration;

use sluice_storage::{Db, EventBus, Metrics, ObjectStore};
use sluice_transcribe::Speech;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::warn;

use crate::config::LiveConfig;
use connection_slots::OpenConnections;
use reconnect::Reconnecting;
use restream::RestreamSettings;
use session_control::RunningSessions;
use uploader::Spool;

/// How long a shutdown waits for live sessions to flush their last segments and playlists.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The live core: runs one session per accepted publisher, whatever its protocol (RTMP through
/// [`LiveService::run`], WHIP through [`whip::WhipService`], any other adapter through
/// [`LiveService::publish`]).
pub struct LiveService {
    db: Db,
    store: Arc<dyn ObjectStore>,
    spool: Arc<Spool>,
    events: EventBus,
    metrics: Metrics,
    config: LiveConfig,
    shutdown: watch::Receiver<bool>,
    /// Open RTMP connections per client address.
    per_ip: OpenConnections,
    /// Sessions of this process, stopped by control events.
    running: RunningSessions,
    /// Sessions waiting for their publisher to come back.
    reconnecting: Reconnecting,
    recordings: Arc<dyn Recordings>,
    views: Arc<dyn EventViews>,
    restream: Arc<RestreamSettings>,
    /// The low-latency sessions packaged here, which HTTP serves LL-HLS from.
    low_latency: Arc<low_latency::LowLatencyStreams>,
    /// This node's internal base URL, recorded on its low-latency sessions so that api nodes
    /// forward LL-HLS requests here; `None` when other nodes cannot reach it.
    packager_url: Option<String>,
    /// The speech engine live captions are recognised with.
    speech: Arc<Speech>,
}

impl LiveService {
    /// A service whose sessions end cleanly once `shutdown` turns `true`; its events show
    /// objects through `views` and its recorded sessions go to `recordings`; other nodes reach
    /// its low-latency parts at `packager_url`.
    // Each argument is a separate piece of the server's wiring, all given once in `serve`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        db: Db,
        store: Arc<dyn ObjectStore>,
        events: EventBus,
        metrics: Metrics,
        config: LiveConfig,
        restream: RestreamSettings,
        views: Arc<dyn EventViews>,
        recordings: Arc<dyn Recordings>,
        shutdown: watch::Receiver<bool>,
        packager_url: Option<String>,
        speech: Arc<Speech>,
    ) -> Arc<Self> {
        Arc::new(LiveService {
            reconnecting: Reconnecting::default(),
            recordings,
            views,
            db,
            store,
            spool: Spool::new(config.spool_dir(), config.spool_max_bytes, metrics.clone()),
            events,
            metrics,
            config,
            shutdown,
            per_ip: Arc::default(),
            running: RunningSessions::default(),
            restream: Arc::new(restream),
            low_latency: Arc::default(),
            packager_url,
            speech,
        })
    }

    /// The low-latency sessions this process packages, for HTTP to serve LL-HLS from.
    pub fn low_latency(&self) -> Arc<low_latency::LowLatencyStreams> {
        self.low_latency.clone()
    }

    /// Clears what a crashed earlier run left: spool directories of sessions no longer open
    /// and, when this process alone ingests (`sole`: nothing is being sealed anywhere else),
    /// recordings that were never sealed. Call at startup, after stale sessions were ended.
    pub async fn recover(&self, sole: bool) {
        if sole {
            self.recordings.error_interrupted().await;
        }
        self.spool.remove_stale(&self.db).await;
    }
}

/// Waits up to [`SHUTDOWN_GRACE`] for `tasks` (publishers' connections, of `what` kind) to end
/// their sessions, then drops those still running.
async fn drain_or_abort<T: 'static>(tasks: &mut JoinSet<T>, what: &str) {
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            remaining = tasks.len(),
            "{what} did not end in time; dropping them."
        );
        tasks.abort_all();
    }
}
