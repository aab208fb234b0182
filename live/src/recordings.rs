//! The asset side of recording, as the live core sees it. A session of a stream with
//! `record: true` asks for the asset it is recorded into when it starts, keeps every segment
//! while it runs, and hands what it left in the store ([`SessionRecording`]) over when it
//! ends. What becomes of it (copies under the asset, VOD playlists, pictures, `asset.ready`)
//! is the asset side's business: the binary plugs its recorder in here, so the live core never
//! depends on the asset worker.

use async_trait::async_trait;
use sluice_storage::{AssetId, LiveStreamId, SessionId};

use crate::renditions::SessionRecording;

/// Where recorded sessions go.
#[async_trait]
pub trait Recordings: Send + Sync {
    /// Creates the asset session `session_id` of `live_stream_id` is recorded into, and
    /// announces it. `None` (logged) when it cannot be recorded: the session goes on unrecorded.
    async fn start(&self, live_stream_id: &LiveStreamId, session_id: &SessionId)
        -> Option<AssetId>;

    /// Takes the ended session's `recording` into asset `asset_id`. It returns once the
    /// recording no longer needs the stream's live objects (the next session clears them);
    /// the rest may go on in the background, unless `wait` (the server is shutting down and
    /// would drop it). `recording` is `None` when the session never packaged anything.
    async fn seal(
        &self,
        asset_id: &AssetId,
        live_stream_id: &LiveStreamId,
        recording: Option<SessionRecording>,
        wait: bool,
    );

    /// Errors the recordings an earlier run's crash cut off before they were sealed. Only for
    /// a process that alone ingests, at startup.
    async fn error_interrupted(&self);
}
