//! sluice-storage: where Sluice keeps things.
//!
//! - [`ObjectStore`], [`LocalStore`] and [`S3Store`]: media objects (segments, playlists) under validated
//!   [`ObjectKey`]s.
//! - [`EventBus`]: domain events, recorded in the database and fanned out to subscribers.
//! - [`Db`]: the metadata database (sea-orm; SQLite by default or Postgres, one schema)
//!   with its migrations, returning the plain domain types of [`model`].
//! - [`layout`]: the object-key layout, every key built from server-made ids.
//! - [`Metrics`]: the server's Prometheus series, recorded into by every component.
//! - [`backoff`]: the retry delays of webhook deliveries and live uploads.
//!
//! This crate knows no media code.

pub mod backoff;
mod db;
mod entities;
mod event_bus;
mod ids;
pub mod layout;
mod local_store;
mod metrics;
mod migration;
pub mod model;
mod object_store;
mod s3_store;
mod secret_box;
#[cfg(test)]
mod store_conformance;
#[cfg(feature = "test-support")]
pub mod test_support;

pub use db::{redact_database_url, Db, DbEngine, Record, StorageError, MAX_PAGE_SIZE};
pub use event_bus::EventBus;
pub use ids::{
    AssetId, InvalidId, LiveStreamId, RoomCompositeId, RoomId, RoomSessionId, SessionId,
    SimulcastTargetId, TrackId, UploadId,
};
pub use local_store::{LocalStore, DEFAULT_DATA_DIR};
pub use metrics::Metrics;
pub use model::{
    ApiKey, ApiKeyPage, Asset, AssetInput, AssetPage, AssetSettings, AssetStatus, AttemptOutcome,
    Captions, ClaimedDelivery, DeliveryStatus, Dvr, DvrMode, Event, EventFilter, EventPage,
    EventType, GeneratedSubtitles, HealthSample, HealthWarning, HealthWarningCode, Job, JobStatus,
    LadderCodec, LatencyMode, LiveStream, LiveStreamChanges, LiveStreamFilter, LiveStreamPage,
    LiveStreamSettings, LiveStreamStatus, NewAsset, NewEvent, NewJob, NewRoom, NewRoomComposite,
    NewRoomTranscriptLine, NewSimulcastTarget, NewUpload, NewWebhookEndpoint, Permission,
    PlaybackId, PlaybackPolicy, Room, RoomComposite, RoomCompositeLayout, RoomCompositeOutputs,
    RoomCompositePage, RoomCompositeResolution, RoomCompositeStatus, RoomCompositeTarget, RoomPage,
    RoomSearchHit, RoomSession, RoomSessionPage, RoomSessionParticipant, RoomTranscriptLine,
    RoomTranscription, SearchHit, Session, SessionOrigin, SessionPage, SigningAlgorithm,
    SigningKey, SigningKeyPage, SimulcastTarget, SimulcastTargetStatus, StreamHealth, Transcript,
    TranscriptLine, TranscriptStatus, Upload, UploadPage, UploadStatus, WebhookAttempt,
    WebhookDelivery, WebhookDeliveryPage, WebhookEndpoint, WebhookEndpointPage,
    WebhookEndpointUpdate, ASSET_JOB_KIND, DEFAULT_JOB_MAX_ATTEMPTS, DEFAULT_ROOM_EMPTY_TIMEOUT_S,
    DEFAULT_ROOM_MAX_PARTICIPANTS, MAX_DVR_WINDOW_S, MAX_RECONNECT_WINDOW_S, MAX_TRANSCRIPT_LINES,
    MIN_DVR_WINDOW_S, SOURCE_RENDITION, TRANSCRIBE_JOB_KIND,
};
pub use object_store::{InvalidKey, ObjectKey, ObjectStore, Playback, StoreError};
pub use s3_store::{
    S3Config, S3Credentials, S3SetupError, S3Store, MULTIPART_PART_SIZE, MULTIPART_THRESHOLD,
};
pub use secret_box::{secret_hash, SecretBox, SecretBoxError, MASTER_KEY_LEN};
