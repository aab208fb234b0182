//! The API router on a real database (SQLite, or Postgres when `SLUICE_TEST_POSTGRES_URL` is
//! set) and a real object store in a temporary directory, with one admin API key.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;
use sluice_api::{router, AppState, Metrics, UploadSettings, Uploads};
use sluice_storage::test_support::TestDatabase;
use sluice_storage::{Db, EventBus, LocalStore, Permission, SecretBox, MASTER_KEY_LEN};
use tokio::sync::watch;

pub mod rooms;

/// Largest upload the harness's server accepts, in bytes.
pub const MAX_UPLOAD_SIZE: i64 = 64 * 1024 * 1024;

pub struct Harness {
    pub dir: tempfile::TempDir,
    _database: TestDatabase,
    pub app: Router,
    pub db: Db,
    pub store: Arc<LocalStore>,
    pub events: EventBus,
    pub key_id: String,
    pub secret: String,
    _stop_sweeper: watch::Sender<bool>,
}

pub fn default_ladder() -> Value {
    serde_json::to_value(sluice_media::Ladder::DEFAULT).unwrap()
}

pub async fn harness() -> Harness {
    harness_with_rooms(None).await
}

/// The harness with `rooms` as the process's room engine (`None`: it runs none).
pub async fn harness_with_rooms(rooms: Option<Arc<dyn sluice_rooms::RoomControl>>) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::new();
    let db = Db::connect(database.url())
        .await
        .unwrap()
        .with_secret_box(SecretBox::new([3; MASTER_KEY_LEN]));
    db.migrate().await.unwrap();
    let (key, secret) = db
        .create_api_key("test", &[Permission::Admin])
        .await
        .unwrap();
    // The store is a subdirectory so a traversal would find `secret.txt` one level up.
    std::fs::write(dir.path().join("secret.txt"), "top secret").unwrap();
    let store = Arc::new(LocalStore::new(dir.path().join("objects")));
    let events = EventBus::new(db.clone());
    let state = AppState {
        db: db.clone(),
        store: store.clone(),
        events: events.clone(),
        public_url: "http://localhost:8080/".to_owned(),
        rtmp_url: "rtmp://localhost:1935/live".to_owned(),
        // The binary resolves hosts under its address policy; here only the scheme is checked.
        simulcast_url_validator: Arc::new(|url: String| {
            Box::pin(async move {
                match url.split_once("://") {
                    Some(("rtmp" | "rtmps", _)) => Ok(()),
                    _ => Err("the scheme must be rtmp or rtmps".to_owned()),
                }
            })
        }),
        metrics: Metrics::new(),
        jwt_audience: sluice_api::DEFAULT_JWT_AUDIENCE.to_owned(),
        jwt_max_lifetime_s: sluice_api::DEFAULT_JWT_MAX_LIFETIME_S,
        uploads: Uploads::new(UploadSettings {
            spool_dir: dir.path().join("spool"),
            max_size: MAX_UPLOAD_SIZE,
            default_timeout_s: 3600,
            sweep_interval: Duration::from_millis(200),
        }),
        images: None,
        whip: None,
        low_latency: None,
        packaged_here: None,
        node_token: None,
        playback_ids: Default::default(),
        viewers: Default::default(),
        speech_unavailable: None,
        rooms,
        rooms_ws_url: "ws://localhost:8080".to_owned(),
    };
    // Times out expired uploads, as `sluice serve` does, until the harness is dropped.
    let (stop_sweeper, stopping) = watch::channel(false);
    sluice_api::spawn_upload_sweeper(state.clone(), stopping);
    Harness {
        dir,
        _database: database,
        app: router(state),
        db,
        store,
        events,
        key_id: key.id,
        secret,
        _stop_sweeper: stop_sweeper,
    }
}

/// `Authorization: Basic …` for `key`:`secret`.
pub fn basic(key: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{key}:{secret}")))
}

impl Harness {
    /// `Authorization` header value of the harness's admin key.
    pub fn auth(&self) -> String {
        basic(&self.key_id, &self.secret)
    }
}
