//! Behaviour of the metadata repository on a real database: a SQLite file, or a fresh Postgres
//! database when SLUICE_TEST_POSTGRES_URL names a server (see `sluice_storage::test_support`).

use serde_json::json;
use sluice_media::Ladder;
use sluice_storage::test_support::TestDatabase;
use sluice_storage::{
    secret_hash, Db, DbEngine, HealthSample, HealthWarning, HealthWarningCode, LiveStreamId,
    LiveStreamSettings, LiveStreamStatus, Permission, PlaybackPolicy, SecretBox, SessionId,
    SessionOrigin, SigningAlgorithm, StorageError, StreamHealth, MASTER_KEY_LEN,
};

const MASTER_KEY: [u8; MASTER_KEY_LEN] = [42; MASTER_KEY_LEN];

fn origin(client_addr: &str, encoder: Option<&str>) -> SessionOrigin {
    SessionOrigin {
        client_addr: client_addr.to_owned(),
        protocol: "rtmp",
        encoder: encoder.map(str::to_owned),
        app: Some("live".to_owned()),
    }
}

/// A migrated SQLite database in `dir`, for tests that look at its files.
async fn sqlite_db(dir: &tempfile::TempDir) -> Db {
    let url = format!("sqlite://{}/sluice.db?mode=rwc", dir.path().display());
    let db = Db::connect(&url)
        .await
        .unwrap()
        .with_secret_box(SecretBox::new(MASTER_KEY));
    db.migrate().await.unwrap();
    db
}

async fn fresh_db() -> (TestDatabase, Db) {
    let database = TestDatabase::new();
    let db = Db::connect(database.url())
        .await
        .unwrap()
        .with_secret_box(SecretBox::new(MASTER_KEY));
    db.migrate().await.unwrap();
    (database, db)
}

fn files_containing(dir: &std::path::Path, needle: &str) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            std::fs::read(path)
                .unwrap()
                .windows(needle.len())
                .any(|window| window == needle.as_bytes())
        })
        .collect()
}

#[tokio::test]
async fn migrating_twice_is_harmless() {
    let (_database, db) = fresh_db().await;
    db.migrate().await.unwrap();
    assert_eq!(db.count_api_keys().await.unwrap(), 0);
}

#[tokio::test]
async fn sqlite_database_runs_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_db(&dir).await;
    assert_eq!(db.engine(), DbEngine::Sqlite);
    db.create_api_key("probe", &[Permission::Admin])
        .await
        .unwrap();
    assert!(dir.path().join("sluice.db-wal").exists());
}

#[tokio::test]
async fn api_key_secrets_are_kept_hashed_and_sealed_never_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_db(&dir).await;
    let (key, secret) = db
        .create_api_key("ci", &[Permission::LiveWrite, Permission::LiveRead])
        .await
        .unwrap();
    assert!(key.id.starts_with("ak_"));
    assert_eq!(key.name, "ci");
    assert_eq!(
        key.permissions,
        [Permission::LiveWrite, Permission::LiveRead]
    );
    assert!(key.revoked_at.is_none());
    assert_eq!(secret.len(), 40);
    assert!(secret.chars().all(|c| c.is_ascii_alphanumeric()));

    assert_eq!(
        db.verify_api_key_secret(&key.id, &secret).await.unwrap(),
        Some(key.clone())
    );
    assert_eq!(
        db.verify_api_key_secret(&key.id, "wrong").await.unwrap(),
        None
    );
    assert_eq!(
        db.verify_api_key_secret("ak_unknown", &secret)
            .await
            .unwrap(),
        None
    );
    let (found, jwt_secret) = db.api_key_jwt_secret(&key.id).await.unwrap().unwrap();
    assert_eq!(found, key);
    assert_eq!(jwt_secret, secret.as_bytes());
    assert!(db.api_key_jwt_secret("ak_unknown").await.unwrap().is_none());
    assert_eq!(db.get_api_key(&key.id).await.unwrap(), Some(key));

    // Neither the secret nor its hash's preimage is readable from the files: only the hash is.
    drop(db);
    assert!(files_containing(dir.path(), &secret).is_empty());
    assert!(!files_containing(dir.path(), &secret_hash(&secret)).is_empty());
}

#[tokio::test]
async fn revoked_keys_stop_verifying_at_once() {
    let (_database, db) = fresh_db().await;
    let (key, secret) = db.create_api_key("ci", &[Permission::Admin]).await.unwrap();
    db.revoke_api_key(&key.id).await.unwrap();
    let revoked = db
        .verify_api_key_secret(&key.id, &secret)
        .await
        .unwrap()
        .unwrap();
    let revoked_at = revoked.revoked_at.expect("revocation recorded");
    db.revoke_api_key(&key.id).await.unwrap();
    assert_eq!(
        db.get_api_key(&key.id).await.unwrap().unwrap().revoked_at,
        Some(revoked_at),
        "revoking twice keeps the first time"
    );
    assert!(db
        .api_key_jwt_secret(&key.id)
        .await
        .unwrap()
        .unwrap()
        .0
        .revoked_at
        .is_some());
    assert!(db
        .revoke_api_key("ak_unknown")
        .await
        .unwrap_err()
        .is_not_found());
    assert_eq!(db.count_api_keys().await.unwrap(), 1);
}

#[tokio::test]
async fn a_key_is_usable_until_it_is_revoked() {
    let (_database, db) = fresh_db().await;
    let (key, _) = db.create_api_key("ci", &[Permission::Admin]).await.unwrap();
    let (other, _) = db.create_api_key("other", &[]).await.unwrap();
    assert!(db.api_key_is_usable(&key.id).await.unwrap());
    db.revoke_api_key(&key.id).await.unwrap();
    assert!(!db.api_key_is_usable(&key.id).await.unwrap());
    assert!(db.api_key_is_usable(&other.id).await.unwrap());
    assert!(!db.api_key_is_usable("ak_unknown").await.unwrap());
}

#[tokio::test]
async fn inserting_an_existing_api_key_replaces_its_secret_but_never_unrevokes_it() {
    let (_database, db) = fresh_db().await;
    let first = db
        .insert_api_key("envkey", "first-secret", "env")
        .await
        .unwrap();
    assert!(first.revoked_at.is_none());
    db.revoke_api_key("envkey").await.unwrap();
    let revoked_at = db.get_api_key("envkey").await.unwrap().unwrap().revoked_at;
    assert!(revoked_at.is_some());
    let key = db
        .insert_api_key("envkey", "second-secret", "env renamed")
        .await
        .unwrap();
    assert_eq!(key.name, "env renamed");
    assert_eq!(key.permissions, [Permission::Admin]);
    assert_eq!(key.created_at, first.created_at);
    assert_eq!(key.revoked_at, revoked_at, "a revoked key stays revoked");
    assert!(!db.api_key_is_usable("envkey").await.unwrap());
    assert!(db
        .verify_api_key_secret("envkey", "first-secret")
        .await
        .unwrap()
        .is_none());
    assert!(db
        .verify_api_key_secret("envkey", "second-secret")
        .await
        .unwrap()
        .is_some());
    assert_eq!(db.count_api_keys().await.unwrap(), 1);
}

#[tokio::test]
async fn api_keys_are_listed_a_page_at_a_time() {
    let (_database, db) = fresh_db().await;
    let mut ids = Vec::new();
    for name in ["a", "b", "c"] {
        ids.push(db.create_api_key(name, &[]).await.unwrap().0.id);
    }
    let first = db.list_api_keys(2, None).await.unwrap();
    assert_eq!(
        first.items.iter().map(|k| &k.id).collect::<Vec<_>>(),
        [&ids[0], &ids[1]]
    );
    let second = db
        .list_api_keys(2, first.next_cursor.as_deref())
        .await
        .unwrap();
    assert_eq!(second.items.len(), 1);
    assert_eq!(second.items[0].id, ids[2]);
    assert_eq!(second.next_cursor, None);
    assert!(matches!(
        db.list_api_keys(2, Some("ak_nope")).await,
        Err(StorageError::InvalidCursor(_))
    ));
}

#[tokio::test]
async fn a_wrong_master_key_is_a_clear_error() {
    let (database, db) = fresh_db().await;
    db.create_api_key("ci", &[Permission::Admin]).await.unwrap();
    let url = database.url();
    let other = Db::connect(url)
        .await
        .unwrap()
        .with_secret_box(SecretBox::new([7; MASTER_KEY_LEN]));
    other.migrate().await.unwrap();
    let error = other.check_master_key().await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("does not open with this master key"),
        "{error}"
    );
    db.check_master_key().await.unwrap();
    let without_key = Db::connect(url).await.unwrap();
    assert!(matches!(
        without_key.create_api_key("x", &[]).await,
        Err(StorageError::MasterKeyMissing)
    ));
}

#[tokio::test]
async fn created_live_stream_is_idle_and_found_by_every_id() {
    let (_database, db) = fresh_db().await;
    let ladder = Ladder::from_request(&json!(["720p"])).unwrap();
    let stream = db
        .create_live_stream("Studio A", &ladder, &LiveStreamSettings::default())
        .await
        .unwrap();
    assert!(stream.id.starts_with("ls_"));
    assert_eq!(stream.name, "Studio A");
    assert_eq!(stream.ladder, ladder);
    assert_eq!(stream.status, LiveStreamStatus::Idle);
    assert!(stream.stream_key.len() >= 32);
    let playback_ids = db.list_playback_ids(&stream.id).await.unwrap();
    assert_eq!(
        playback_ids.len(),
        1,
        "one public playback id comes with a stream"
    );
    assert_eq!(playback_ids[0].policy, PlaybackPolicy::Public);
    assert_eq!(
        playback_ids[0].live_stream_id.as_deref(),
        Some(stream.id.as_str())
    );
    assert_ne!(stream.stream_key, playback_ids[0].id);

    assert_eq!(
        db.get_live_stream(&stream.id).await.unwrap(),
        Some(stream.clone())
    );
    assert_eq!(
        db.find_by_stream_key(&stream.stream_key).await.unwrap(),
        Some(stream.clone())
    );
    assert_eq!(
        db.get_playback_id(&playback_ids[0].id).await.unwrap(),
        Some(playback_ids[0].clone())
    );
    assert_eq!(
        db.get_live_stream(&LiveStreamId::parse("ls_nope").unwrap())
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        db.find_by_stream_key(&playback_ids[0].id).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn listing_pages_through_streams_in_creation_order() {
    let (_database, db) = fresh_db().await;
    let mut created = Vec::new();
    for i in 0..5 {
        created.push(
            db.create_live_stream(
                &format!("s{i}"),
                &Ladder::default(),
                &LiveStreamSettings::default(),
            )
            .await
            .unwrap()
            .id,
        );
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = db
            .list_live_streams(2, cursor.as_deref(), None)
            .await
            .unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(page.items.into_iter().map(|s| s.id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let all = db.list_live_streams(5, None, None).await.unwrap();
    assert_eq!(all.next_cursor, None);
    let all: Vec<_> = all.items.into_iter().map(|s| s.id).collect();
    // Pages join up to the single full listing, which holds every stream once.
    assert_eq!(seen, all);
    let (mut seen_sorted, mut created_sorted) = (seen.clone(), created.clone());
    seen_sorted.sort();
    created_sorted.sort();
    assert_eq!(seen_sorted, created_sorted);
    assert!(matches!(
        db.list_live_streams(2, Some("ls_gone"), None).await,
        Err(StorageError::InvalidCursor(_))
    ));
}

#[tokio::test]
async fn session_lifecycle_is_recorded_and_linked_to_its_stream() {
    let (_database, db) = fresh_db().await;
    let stream = db
        .create_live_stream("s", &Ladder::default(), &LiveStreamSettings::default())
        .await
        .unwrap();
    assert_eq!(stream.active_session_id, None);

    let session = db
        .start_session(
            &stream.id,
            &origin("192.0.2.7:50123", Some("FMLE/3.0 (compatible; obs)")),
        )
        .await
        .unwrap();
    assert!(session.id.starts_with("ses_"));
    assert_eq!(session.input, None);
    let active = db
        .set_live_stream_status(&stream.id, LiveStreamStatus::Active, Some(&session.id))
        .await
        .unwrap();
    assert_eq!(active.status, LiveStreamStatus::Active);
    assert_eq!(
        active.active_session_id.as_deref(),
        Some(session.id.as_str())
    );

    let input = json!({"video": {"codec": "avc1.64001f", "width": 1280, "height": 720}});
    db.update_session_input(&session.id, &input, 123_456, 7)
        .await
        .unwrap();
    let current = db.get_session(&session.id).await.unwrap().unwrap();
    assert_eq!(current.input, Some(input));
    assert_eq!(current.bytes_received, 123_456);
    assert_eq!(current.frames_dropped, 7);
    assert_eq!(current.client_addr, "192.0.2.7:50123");

    let ended = db.end_session(&session.id).await.unwrap();
    let ended_at = ended.ended_at.unwrap();
    assert_eq!(
        db.end_session(&session.id).await.unwrap().ended_at,
        Some(ended_at)
    );
    let idle = db
        .set_live_stream_status(&stream.id, LiveStreamStatus::Idle, None)
        .await
        .unwrap();
    assert_eq!(idle.active_session_id, None);
}

#[tokio::test]
async fn the_newest_open_session_names_where_its_parts_are_served() {
    let (_database, db) = fresh_db().await;
    let stream = db
        .create_live_stream("s", &Ladder::default(), &LiveStreamSettings::default())
        .await
        .unwrap();
    assert_eq!(db.live_packager_url(&stream.id).await.unwrap(), None);
    let orphan = db
        .start_session(&stream.id, &origin("192.0.2.7:50123", None))
        .await
        .unwrap();
    db.set_session_packager(&orphan.id, "http://ingest-1:8080")
        .await
        .unwrap();
    assert_eq!(
        db.live_packager_url(&stream.id).await.unwrap().as_deref(),
        Some("http://ingest-1:8080")
    );
    // A newer session without parts in memory hides an older one left open by a crash.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let regular = db
        .start_session(&stream.id, &origin("192.0.2.7:50124", None))
        .await
        .unwrap();
    assert_eq!(db.live_packager_url(&stream.id).await.unwrap(), None);
    db.set_session_packager(&regular.id, "http://ingest-2:8080")
        .await
        .unwrap();
    assert_eq!(
        db.live_packager_url(&stream.id).await.unwrap().as_deref(),
        Some("http://ingest-2:8080")
    );
    db.end_session(&regular.id).await.unwrap();
    db.end_session(&orphan.id).await.unwrap();
    assert_eq!(db.live_packager_url(&stream.id).await.unwrap(), None);
}

#[tokio::test]
async fn a_sessions_health_is_kept_as_last_judged() {
    let (_database, db) = fresh_db().await;
    let stream = db
        .create_live_stream("s", &Ladder::default(), &LiveStreamSettings::default())
        .await
        .unwrap();
    let session = db
        .start_session(&stream.id, &origin("192.0.2.7:50123", None))
        .await
        .unwrap();
    assert_eq!(db.session_health(&session.id).await.unwrap(), None);
    let since = chrono::DateTime::parse_from_rfc3339("2026-06-01T10:00:04.120Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let health = StreamHealth {
        warnings: vec![HealthWarning {
            code: HealthWarningCode::KeyframeIntervalLong,
            message: "No key frame for 4.1 s".to_owned(),
            since,
        }],
        samples: vec![HealthSample {
            at: since,
            video_kbps: 2480.5,
            audio_kbps: 128.0,
            frame_rate: 30.0,
            keyframe_interval_s: None,
            frames_dropped: 3,
        }],
    };
    db.set_session_health(&session.id, &health).await.unwrap();
    assert_eq!(db.session_health(&session.id).await.unwrap(), Some(health));
    db.set_session_health(&session.id, &StreamHealth::default())
        .await
        .unwrap();
    assert_eq!(
        db.session_health(&session.id).await.unwrap(),
        Some(StreamHealth::default()),
        "the latest judgement replaces the one before"
    );
}

#[tokio::test]
async fn operations_on_unknown_records_are_not_found() {
    let (_database, db) = fresh_db().await;
    assert!(db
        .start_session(
            &LiveStreamId::parse("ls_nope").unwrap(),
            &origin("addr", None)
        )
        .await
        .unwrap_err()
        .is_not_found());
    assert!(db
        .set_live_stream_status(
            &LiveStreamId::parse("ls_nope").unwrap(),
            LiveStreamStatus::Active,
            None
        )
        .await
        .unwrap_err()
        .is_not_found());
    assert!(db
        .update_session_input(&SessionId::parse("ses_nope").unwrap(), &json!({}), 0, 0)
        .await
        .unwrap_err()
        .is_not_found());
    assert!(db
        .end_session(&SessionId::parse("ses_nope").unwrap())
        .await
        .unwrap_err()
        .is_not_found());
    assert_eq!(
        db.get_session(&SessionId::parse("ses_nope").unwrap())
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn startup_reset_idles_streams_and_ends_sessions_left_by_a_crash() {
    let (_database, db) = fresh_db().await;
    let live = db
        .create_live_stream("live", &Ladder::default(), &LiveStreamSettings::default())
        .await
        .unwrap();
    let idle = db
        .create_live_stream("idle", &Ladder::default(), &LiveStreamSettings::default())
        .await
        .unwrap();
    let session = db
        .start_session(&live.id, &origin("addr", None))
        .await
        .unwrap();
    db.set_live_stream_status(&live.id, LiveStreamStatus::Active, Some(&session.id))
        .await
        .unwrap();

    assert_eq!(db.reset_stale_active_streams().await.unwrap(), 1);
    let live = db.get_live_stream(&live.id).await.unwrap().unwrap();
    assert_eq!(live.status, LiveStreamStatus::Idle);
    assert_eq!(live.active_session_id, None);
    assert_eq!(
        db.get_live_stream(&idle.id).await.unwrap().unwrap().status,
        LiveStreamStatus::Idle
    );
    assert!(db
        .end_session(&session.id)
        .await
        .unwrap()
        .ended_at
        .is_some());
    assert_eq!(db.reset_stale_active_streams().await.unwrap(), 0);
}

#[tokio::test]
async fn data_survives_reconnecting() {
    let database = TestDatabase::new();
    let id = {
        let db = Db::connect(database.url())
            .await
            .unwrap()
            .with_secret_box(SecretBox::new(MASTER_KEY));
        db.migrate().await.unwrap();
        db.create_api_key("kept", &[]).await.unwrap();
        db.create_live_stream("kept", &Ladder::default(), &LiveStreamSettings::default())
            .await
            .unwrap()
            .id
    };
    let db = Db::connect(database.url())
        .await
        .unwrap()
        .with_secret_box(SecretBox::new(MASTER_KEY));
    db.migrate().await.unwrap();
    assert_eq!(db.get_live_stream(&id).await.unwrap().unwrap().name, "kept");
}

#[tokio::test]
async fn only_one_of_two_racing_publishers_claims_a_stream() {
    let (_database, db) = fresh_db().await;
    let stream = db
        .create_live_stream("race", &Ladder::default(), &LiveStreamSettings::default())
        .await
        .unwrap();
    let (first, second) = tokio::join!(
        db.claim_live_stream(&stream.id),
        db.claim_live_stream(&stream.id)
    );
    assert_eq!(
        [first.unwrap(), second.unwrap()]
            .iter()
            .filter(|won| **won)
            .count(),
        1
    );
    let claimed = db.get_live_stream(&stream.id).await.unwrap().unwrap();
    assert_eq!(claimed.status, LiveStreamStatus::Active);
    db.set_live_stream_status(&stream.id, LiveStreamStatus::Idle, None)
        .await
        .unwrap();
    assert!(db.claim_live_stream(&stream.id).await.unwrap());
    assert!(!db
        .claim_live_stream(&LiveStreamId::parse("ls_unknown").unwrap())
        .await
        .unwrap());
}

#[tokio::test]
async fn events_are_recorded_in_order_and_paged() {
    use sluice_storage::{EventType, NewEvent};
    let (_database, db) = fresh_db().await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let event = db
            .record_event(&NewEvent::new(
                EventType::LiveStreamCreated,
                &format!("ls_{n}"),
                json!({ "n": n }),
            ))
            .await
            .unwrap();
        assert!(event.id.starts_with("evt_"));
        assert_eq!(event.event_type, "live_stream.created");
        assert_eq!(event.object.object_type, "live_stream");
        ids.push(event.id);
    }
    let first = db.list_events(2, None).await.unwrap();
    assert_eq!(
        first.items.iter().map(|e| &e.id).collect::<Vec<_>>(),
        vec![&ids[0], &ids[1]]
    );
    let rest = db
        .list_events(10, first.next_cursor.as_deref())
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 3);
    assert_eq!(rest.items[2].data, json!({ "n": 4 }));
    assert!(rest.next_cursor.is_none());
    assert!(matches!(
        db.list_events(10, Some("evt_unknown")).await,
        Err(StorageError::InvalidCursor(_))
    ));
    assert_eq!(
        EventType::parse("session.ended"),
        Some(EventType::SessionEnded)
    );
    assert_eq!(EventType::parse("session.nope"), None);
}

#[tokio::test]
async fn playback_ids_are_added_listed_and_deleted_per_stream() {
    let (_database, db) = fresh_db().await;
    let stream = db
        .create_live_stream("s", &Ladder::default(), &LiveStreamSettings::default())
        .await
        .unwrap();
    let other = db
        .create_live_stream("o", &Ladder::default(), &LiveStreamSettings::default())
        .await
        .unwrap();
    let public = db.list_playback_ids(&stream.id).await.unwrap().remove(0);
    let signed = db
        .create_playback_id(&stream.id, PlaybackPolicy::Signed)
        .await
        .unwrap();
    assert_eq!(signed.policy, PlaybackPolicy::Signed);
    assert_eq!(signed.live_stream_id.as_deref(), Some(stream.id.as_str()));
    assert_eq!(
        db.list_playback_ids(&stream.id).await.unwrap(),
        [public.clone(), signed.clone()]
    );
    assert_eq!(
        db.get_playback_id(&signed.id).await.unwrap(),
        Some(signed.clone())
    );
    // A playback id is deleted only through its own stream.
    assert!(db
        .delete_playback_id(&other.id, &signed.id)
        .await
        .unwrap_err()
        .is_not_found());
    db.delete_playback_id(&stream.id, &signed.id).await.unwrap();
    db.delete_playback_id(&stream.id, &public.id).await.unwrap();
    assert!(db.list_playback_ids(&stream.id).await.unwrap().is_empty());
    assert!(db.get_playback_id(&signed.id).await.unwrap().is_none());
    assert!(db
        .delete_playback_id(&stream.id, &signed.id)
        .await
        .unwrap_err()
        .is_not_found());
    assert!(db
        .create_playback_id(
            &LiveStreamId::parse("ls_nope").unwrap(),
            PlaybackPolicy::Public
        )
        .await
        .unwrap_err()
        .is_not_found());
}

#[tokio::test]
async fn lifecycle_changes_keys_disabling_filters_and_deletion() {
    use sluice_storage::{LatencyMode, LiveStreamChanges, LiveStreamFilter};
    let (_database, db) = fresh_db().await;
    let stream = db
        .create_live_stream("show", &Ladder::default(), &LiveStreamSettings::default())
        .await
        .unwrap();
    assert_eq!(stream.reconnect_window_s, 60);
    assert!(!stream.disabled && !stream.record);

    let changed = db
        .update_live_stream(
            &stream.id,
            &LiveStreamChanges {
                name: Some("renamed".to_owned()),
                latency_mode: Some(LatencyMode::Low),
                reconnect_window_s: Some(0),
                record: Some(true),
                ..LiveStreamChanges::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(changed.name, "renamed");
    assert_eq!(changed.latency_mode, LatencyMode::Low);
    assert_eq!(changed.reconnect_window_s, 0);
    assert!(changed.record);
    assert_eq!(changed.ladder, stream.ladder);

    let reset = db.reset_stream_key(&stream.id).await.unwrap();
    assert_ne!(reset.stream_key, stream.stream_key);
    assert!(db
        .find_by_stream_key(&stream.stream_key)
        .await
        .unwrap()
        .is_none());

    let other = db
        .create_live_stream("other", &Ladder::default(), &LiveStreamSettings::default())
        .await
        .unwrap();
    db.set_live_stream_disabled(&stream.id, true).await.unwrap();
    assert!(!db.claim_live_stream(&stream.id).await.unwrap());
    let ids = |page: sluice_storage::LiveStreamPage| {
        page.items.into_iter().map(|s| s.id).collect::<Vec<_>>()
    };
    assert_eq!(
        ids(db
            .list_live_streams(10, None, Some(LiveStreamFilter::Disabled))
            .await
            .unwrap()),
        vec![stream.id.clone()]
    );
    assert_eq!(
        ids(db
            .list_live_streams(10, None, Some(LiveStreamFilter::Idle))
            .await
            .unwrap()),
        vec![other.id.clone()]
    );
    db.set_live_stream_disabled(&stream.id, false)
        .await
        .unwrap();
    assert!(db.claim_live_stream(&stream.id).await.unwrap());
    assert_eq!(
        ids(db
            .list_live_streams(10, None, Some(LiveStreamFilter::Active))
            .await
            .unwrap()),
        vec![stream.id.clone()]
    );
    // Disabled while its publisher is still being disconnected: listed as disabled only.
    db.set_live_stream_disabled(&stream.id, true).await.unwrap();
    assert!(db
        .list_live_streams(10, None, Some(LiveStreamFilter::Active))
        .await
        .unwrap()
        .items
        .is_empty());
    db.set_live_stream_disabled(&stream.id, false)
        .await
        .unwrap();

    let mut sessions = Vec::new();
    for n in 0..3 {
        let session = db
            .start_session(&stream.id, &origin(&format!("192.0.2.1:{n}"), None))
            .await
            .unwrap();
        assert_eq!(session.protocol, "rtmp");
        assert_eq!(session.app.as_deref(), Some("live"));
        sessions.push(session.id);
    }
    let first = db.list_sessions(&stream.id, 2, None).await.unwrap();
    assert_eq!(first.items.len(), 2);
    assert_eq!(first.items[0].id, sessions[2], "newest first");
    let rest = db
        .list_sessions(&stream.id, 2, first.next_cursor.as_deref())
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert_eq!(rest.items[0].id, sessions[0]);
    assert!(rest.next_cursor.is_none());

    db.delete_live_stream(&stream.id).await.unwrap();
    assert!(db.get_live_stream(&stream.id).await.unwrap().is_none());
    assert!(db.get_session(&sessions[0]).await.unwrap().is_none());
    assert!(db
        .delete_live_stream(&stream.id)
        .await
        .unwrap_err()
        .is_not_found());
    assert!(db
        .list_sessions(&stream.id, 10, None)
        .await
        .unwrap_err()
        .is_not_found());
}

#[tokio::test]
async fn the_url_scheme_picks_the_backend() {
    let (database, db) = fresh_db().await;
    let expected = if database.url().starts_with("postgres") {
        DbEngine::Postgres
    } else {
        DbEngine::Sqlite
    };
    assert_eq!(db.engine(), expected);
    db.ping().await.unwrap();
    assert_eq!(
        DbEngine::from_url("postgresql://u@h/d").unwrap(),
        DbEngine::Postgres
    );
    for url in ["mysql://u:p@h/d", "/var/lib/sluice.db", ""] {
        let error = Db::connect(url).await.unwrap_err();
        assert!(
            matches!(error, StorageError::UnsupportedDatabaseUrl(_)),
            "{url}: {error}"
        );
        assert!(!error.to_string().contains(":p@"), "{error}");
    }
}

#[test]
fn logged_database_urls_hide_their_password() {
    use sluice_storage::redact_database_url;
    assert_eq!(
        redact_database_url("postgres://sluice:hunter2@db.example.com:5432/sluice"),
        "postgres://sluice:***@db.example.com:5432/sluice"
    );
    assert_eq!(
        redact_database_url("postgres://sluice@localhost/sluice"),
        "postgres://sluice@localhost/sluice"
    );
    assert_eq!(
        redact_database_url("sqlite:///var/lib/sluice/sluice.db?mode=rwc"),
        "sqlite:///var/lib/sluice/sluice.db?mode=rwc"
    );
    assert!(!redact_database_url("postgres://u:secret@[bad/").contains("secret"));
}

#[tokio::test]
async fn signing_keys_keep_their_public_half_until_deleted() {
    let (_database, db) = fresh_db().await;
    let pem = "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n";
    let es = db
        .create_signing_key(SigningAlgorithm::ES256, pem)
        .await
        .unwrap();
    let rs = db
        .create_signing_key(SigningAlgorithm::RS256, pem)
        .await
        .unwrap();
    assert!(es.id.starts_with("sk_"));
    assert_eq!(es.algorithm, SigningAlgorithm::ES256);
    assert_eq!(es.public_key_pem, pem);
    assert_eq!(db.get_signing_key(&rs.id).await.unwrap(), Some(rs.clone()));
    let page = db.list_signing_keys(1, None).await.unwrap();
    assert_eq!(page.items, std::slice::from_ref(&es));
    let page = db
        .list_signing_keys(1, page.next_cursor.as_deref())
        .await
        .unwrap();
    assert_eq!(page.items, std::slice::from_ref(&rs));
    assert_eq!(page.next_cursor, None);
    db.delete_signing_key(&es.id).await.unwrap();
    assert!(db.get_signing_key(&es.id).await.unwrap().is_none());
    assert!(db
        .delete_signing_key(&es.id)
        .await
        .unwrap_err()
        .is_not_found());
}
