//! sluice-storage: where Sluice keeps things.
//!
//! - [`ObjectStore`] and [`LocalStore`]: media objects (segments, playlists) under validated
//!   [`ObjectKey`]s.
//! - [`EventBus`]: domain events, recorded in the database and fanned out to subscribers.
//! - [`Db`]: the metadata database (sea-orm; SQLite by default or Postgres, one schema)
//!   with its migrations, returning the plain domain types of [`model`].
//!
//! This crate knows no media code.

mod db;
mod entities;
mod event_bus;
mod ids;
mod local_store;
mod migration;
pub mod model;
mod object_store;
mod secret_box;
#[cfg(feature = "test-support")]
pub mod test_support;

pub use db::{redact_database_url, Db, DbEngine, Record, StorageError, MAX_PAGE_SIZE};
pub use event_bus::EventBus;
pub use local_store::LocalStore;
pub use model::{
    ApiKey, ApiKeyPage, Asset, AssetPage, AssetStatus, AttemptOutcome, ClaimedDelivery,
    DeliveryStatus, Dvr, DvrMode, Event, EventFilter, EventPage, EventType, Job, JobStatus,
    LatencyMode, LiveStream, LiveStreamChanges, LiveStreamFilter, LiveStreamPage,
    LiveStreamSettings, LiveStreamStatus, NewAsset, NewEvent, NewJob, NewUpload,
    NewWebhookEndpoint, Permission, PlaybackId, PlaybackPolicy, Session, SessionOrigin,
    SessionPage, SigningAlgorithm, SigningKey, SigningKeyPage, Upload, UploadPage, UploadStatus,
    WebhookAttempt, WebhookDelivery, WebhookDeliveryPage, WebhookEndpoint, WebhookEndpointPage,
    WebhookEndpointUpdate, ASSET_JOB_KIND, DEFAULT_JOB_MAX_ATTEMPTS, MAX_DVR_WINDOW_S,
    MAX_RECONNECT_WINDOW_S, MIN_DVR_WINDOW_S,
};
pub use object_store::{InvalidKey, ObjectKey, ObjectStore, StoreError};
pub use secret_box::{secret_hash, SecretBox, SecretBoxError, MASTER_KEY_LEN};
