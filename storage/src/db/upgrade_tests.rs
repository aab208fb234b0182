//! Upgrading a database made by the first schema only: keys, streams and sessions survive, on
//! SQLite and on Postgres (a [`TestDatabase`]), and on SQLite no secret stays in clear anywhere
//! in the database files. Assets made before transcripts existed load and become ready as
//! before, and the transcripts, rooms, room composites and room transcripts migrations roll
//! back and apply again.

use sea_orm::{ConnectionTrait, Statement};
use sea_orm_migration::{MigratorTrait, SchemaManager};
use serde_json::json;
use sluice_media::Ladder;

use crate::migration::Migrator;
use crate::model::{
    AssetInput, AssetSettings, GeneratedSubtitles, LadderCodec, NewAsset, NewRoomTranscriptLine,
    Permission, PlaybackPolicy, RoomTranscription, TranscriptLine, TRANSCRIBE_JOB_KIND,
};
use crate::test_support::TestDatabase;
use crate::{AssetId, Db, LiveStreamId, SecretBox, SessionId, MASTER_KEY_LEN};

/// Migrations before `m20261207_000012_transcripts`.
const BEFORE_TRANSCRIPTS: u32 = 11;
/// Migrations before `m20261207_000013_rooms`.
const BEFORE_ROOMS: u32 = 12;
/// Migrations before `m20261207_000014_room_composites`.
const BEFORE_ROOM_COMPOSITES: u32 = 13;
/// Migrations before `m20261207_000015_room_transcripts`.
const BEFORE_ROOM_TRANSCRIPTS: u32 = 14;

const ACTIVE_SECRET: &str = "LegacyActiveSecret0123456789abcdefghijkl";
const REVOKED_SECRET: &str = "LegacyRevokedSecret0123456789abcdefghijk";

/// Rolls `db` back to its first `before` migrations, the later ones undone newest first.
async fn roll_back_to(db: &Db, before: u32) {
    let since = u32::try_from(Migrator::migrations().len()).unwrap() - before;
    Migrator::down(&db.conn, Some(since)).await.unwrap();
}

async fn execute(db: &Db, sql: &str) {
    db.conn
        .execute(Statement::from_string(db.conn.get_database_backend(), sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

fn files_containing(dir: &std::path::Path, needle: &[u8]) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            std::fs::read(path)
                .unwrap()
                .windows(needle.len())
                .any(|window| window == needle)
        })
        .map(|path| path.display().to_string())
        .collect()
}

/// Fills a first-schema database at `url` with two keys (one revoked), two streams and three
/// sessions, upgrades it, and checks that all of them survive with the new schema's rules.
async fn upgrade_first_schema_database(url: &str) {
    let old = Db::connect(url).await.unwrap();
    Migrator::up(&old.conn, Some(1)).await.unwrap();
    execute(
        &old,
        &format!(
            "INSERT INTO api_keys (id, secret, name, created_at, revoked_at) VALUES \
             ('ak_active', '{ACTIVE_SECRET}', 'ci', '2025-01-02 03:04:05.123456+00:00', NULL), \
             ('ak_revoked', '{REVOKED_SECRET}', 'old', '2025-01-02 03:04:06+00:00', \
              '2025-02-01 00:00:00+00:00')"
        ),
    )
    .await;
    execute(
        &old,
        "INSERT INTO live_streams (id, name, stream_key, playback_id, ladder, status, \
           active_session_id, created_at, updated_at) VALUES \
         ('ls_one', 'One', 'streamkeyone', 'playbackone', '[]', 'idle', NULL, \
          '2025-01-03 00:00:00+00:00', '2025-01-03 00:00:00+00:00'), \
         ('ls_two', 'Two', 'streamkeytwo', 'playbacktwo', '[]', 'idle', NULL, \
          '2025-01-04 00:00:00+00:00', '2025-01-04 00:00:00+00:00')",
    )
    .await;
    execute(
        &old,
        "INSERT INTO sessions (id, live_stream_id, started_at, ended_at, client_addr, encoder, \
           input, bytes_received, frames_dropped) VALUES \
         ('ses_a', 'ls_one', '2025-01-03 01:00:00+00:00', '2025-01-03 02:00:00+00:00', \
          '127.0.0.1:5000', 'obs', '{\"width\": 1280}', 1000, 3), \
         ('ses_b', 'ls_one', '2025-01-03 03:00:00+00:00', '2025-01-03 04:00:00+00:00', \
          '127.0.0.1:5001', NULL, NULL, 2000, 0), \
         ('ses_c', 'ls_two', '2025-01-04 01:00:00+00:00', NULL, '127.0.0.1:5002', NULL, NULL, \
          0, 0)",
    )
    .await;
    drop(old);

    let db = Db::connect(url)
        .await
        .unwrap()
        .with_secret_box(SecretBox::new([9; MASTER_KEY_LEN]));
    db.migrate().await.unwrap();
    db.check_master_key().await.unwrap();

    let key = db
        .verify_api_key_secret("ak_active", ACTIVE_SECRET)
        .await
        .unwrap()
        .expect("the old key still authenticates");
    assert_eq!(key.name, "ci");
    assert_eq!(key.permissions, [Permission::Admin]);
    assert!(key.revoked_at.is_none());
    assert_eq!(
        key.created_at.to_rfc3339(),
        "2025-01-02T03:04:05.123456+00:00"
    );
    let (_, jwt_secret) = db.api_key_jwt_secret("ak_active").await.unwrap().unwrap();
    assert_eq!(jwt_secret, ACTIVE_SECRET.as_bytes());
    let revoked = db
        .verify_api_key_secret("ak_revoked", REVOKED_SECRET)
        .await
        .unwrap()
        .unwrap();
    assert!(revoked.revoked_at.is_some(), "a revoked key stays revoked");
    assert!(db
        .verify_api_key_secret("ak_active", REVOKED_SECRET)
        .await
        .unwrap()
        .is_none());

    for (stream_id, playback_id) in [("ls_one", "playbackone"), ("ls_two", "playbacktwo")] {
        let stream_id = LiveStreamId::parse(stream_id).unwrap();
        let stream = db.get_live_stream(&stream_id).await.unwrap().unwrap();
        let ids = db.list_playback_ids(&stream.id).await.unwrap();
        assert_eq!(ids.len(), 1);
        assert_eq!(ids[0].id, playback_id);
        assert_eq!(ids[0].policy, PlaybackPolicy::Public);
    }
    let session = db
        .get_session(&SessionId::parse("ses_a").unwrap())
        .await
        .unwrap()
        .expect("ses_a kept");
    assert_eq!(session.live_stream_id, "ls_one");
    assert_eq!(session.bytes_received, 1000);
    assert_eq!(session.frames_dropped, 3);
    assert_eq!(session.encoder.as_deref(), Some("obs"));
    assert_eq!(session.input, Some(serde_json::json!({"width": 1280})));
    assert!(db
        .get_session(&SessionId::parse("ses_b").unwrap())
        .await
        .unwrap()
        .is_some());
    assert!(db
        .get_session(&SessionId::parse("ses_c").unwrap())
        .await
        .unwrap()
        .unwrap()
        .ended_at
        .is_none());

    // The rebuilt tables keep their constraints: sessions still cascade from their stream, and
    // stream keys stay unique.
    execute(&db, "DELETE FROM live_streams WHERE id = 'ls_two'").await;
    assert!(db
        .get_session(&SessionId::parse("ses_c").unwrap())
        .await
        .unwrap()
        .is_none());
    assert!(db.get_playback_id("playbacktwo").await.unwrap().is_none());
    assert!(db
        .conn
        .execute_unprepared(
            "INSERT INTO live_streams (id, name, stream_key, ladder, status, created_at, \
             updated_at) VALUES ('ls_dup', 'D', 'streamkeyone', '[]', 'idle', \
             '2025-01-05 00:00:00+00:00', '2025-01-05 00:00:00+00:00')"
        )
        .await
        .is_err());
    assert!(db
        .conn
        .execute_unprepared("SELECT playback_id FROM live_streams")
        .await
        .is_err());

    // A database migrated again is left alone.
    db.migrate().await.unwrap();
}

#[tokio::test]
async fn first_schema_database_upgrades_with_keys_streams_and_sessions_intact() {
    let database = TestDatabase::new();
    upgrade_first_schema_database(database.url()).await;
}

#[tokio::test]
async fn upgraded_sqlite_files_hold_no_plaintext_secret() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/sluice.db?mode=rwc", dir.path().display());
    upgrade_first_schema_database(&url).await;
    for secret in [ACTIVE_SECRET, REVOKED_SECRET] {
        assert_eq!(
            files_containing(dir.path(), secret.as_bytes()),
            Vec::<String>::new(),
            "no plaintext secret in the database files"
        );
    }
}

#[tokio::test]
async fn legacy_keys_need_the_master_key_to_upgrade() {
    let database = TestDatabase::new();
    let db = Db::connect(database.url()).await.unwrap();
    Migrator::up(&db.conn, Some(1)).await.unwrap();
    execute(
        &db,
        "INSERT INTO api_keys (id, secret, name, created_at) \
         VALUES ('ak_x', 'secret', 'x', '2025-01-02 03:04:05+00:00')",
    )
    .await;
    let error = db.migrate().await.unwrap_err();
    assert!(
        error.to_string().contains("no master key"),
        "clear error: {error}"
    );
    // With the key, the same database upgrades.
    let db = db.with_secret_box(SecretBox::new([1; MASTER_KEY_LEN]));
    db.migrate().await.unwrap();
    assert!(db
        .verify_api_key_secret("ak_x", "secret")
        .await
        .unwrap()
        .is_some());
}

/// On Postgres only: processes sharing one SQLite file are started one after the other (see
/// docs/DEPLOYMENT.md).
#[tokio::test]
async fn processes_starting_together_migrate_a_new_postgres_database_once() {
    let Some(database) = TestDatabase::postgres_from_env() else {
        return;
    };
    let mut starting = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let url = database.url().to_owned();
        starting.spawn(async move { Db::connect(&url).await?.migrate().await });
    }
    for started in starting.join_all().await {
        started.unwrap();
    }
}

#[tokio::test]
async fn an_asset_whose_settings_predate_generated_subtitles_still_loads() {
    let database = TestDatabase::new();
    let db = Db::connect(database.url()).await.unwrap();
    Migrator::up(&db.conn, Some(BEFORE_TRANSCRIPTS))
        .await
        .unwrap();
    // The settings as stored before `generated_subtitles` existed.
    let settings = json!({
        "playback_policy": ["public"],
        "ladder": serde_json::to_value(Ladder::default()).unwrap(),
        "codecs": ["h264"],
        "passthrough": "kept",
    });
    execute(
        &db,
        &format!(
            "INSERT INTO assets (id, status, error, progress, input, settings, duration_ms, \
               tracks, source_metadata, renditions, playable, created_at, updated_at) VALUES \
             ('asset_old', 'preparing', NULL, 0, '{{\"type\": \"url\", \"url\": \"https://e.com/a\"}}', \
              '{settings}', NULL, '[]', '{{}}', '[]', false, '2026-01-02 03:04:05+00:00', \
              '2026-01-02 03:04:05+00:00')"
        ),
    )
    .await;
    db.migrate().await.unwrap();

    let id = AssetId::parse("asset_old").unwrap();
    let asset = db
        .get_asset(&id)
        .await
        .unwrap()
        .expect("the old asset loads");
    let loaded = asset.settings.expect("with its settings");
    assert_eq!(loaded.passthrough.as_deref(), Some("kept"));
    assert_eq!(loaded.generated_subtitles, []);
    assert!(db.transcripts_of(&id).await.unwrap().is_empty());
    db.set_asset_ready(&id, &json!([])).await.unwrap().unwrap();
    assert!(
        db.jobs_for_subject(&id).await.unwrap().is_empty(),
        "nothing to transcribe"
    );

    // Settings without subtitles are still stored without the field.
    let new = db
        .create_asset(&NewAsset {
            input: AssetInput::Url {
                url: "https://e.com/b".to_owned(),
            },
            settings: Some(AssetSettings {
                generated_subtitles: Vec::new(),
                ..loaded
            }),
            playback_policies: Vec::new(),
        })
        .await
        .unwrap();
    let stored = db
        .conn
        .query_one(Statement::from_string(
            db.conn.get_database_backend(),
            format!("SELECT settings FROM assets WHERE id = '{}'", new.id),
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<String>("", "settings")
        .unwrap();
    assert!(!stored.contains("generated_subtitles"), "{stored}");
}

#[tokio::test]
async fn the_transcripts_migration_rolls_back_and_applies_again() {
    let database = TestDatabase::new();
    let db = Db::connect(database.url()).await.unwrap();
    db.migrate().await.unwrap();
    let new = NewAsset {
        input: AssetInput::Url {
            url: "https://e.com/a".to_owned(),
        },
        settings: Some(AssetSettings {
            playback_policy: vec![PlaybackPolicy::Public],
            ladder: Ladder::default(),
            codecs: vec![LadderCodec::H264],
            passthrough: None,
            generated_subtitles: vec![GeneratedSubtitles {
                language_code: "en".to_owned(),
                name: "English".to_owned(),
            }],
        }),
        playback_policies: Vec::new(),
    };
    let asset = db.create_asset(&new).await.unwrap();
    db.set_asset_ready(&asset.id, &json!([])).await.unwrap();
    let track = db.transcripts_of(&asset.id).await.unwrap().remove(0);
    let lines = [TranscriptLine {
        start_ms: 0,
        end_ms: 1_000,
        text: "hello there".to_owned(),
    }];
    db.set_transcript_ready(&track.id, &lines).await.unwrap();

    // Back to before transcripts, rolling back the migrations that came after it too.
    roll_back_to(&db, BEFORE_TRANSCRIPTS).await;
    let schema = SchemaManager::new(&db.conn);
    for table in ["transcripts", "transcript_lines", "transcript_search"] {
        assert!(!schema.has_table(table).await.unwrap(), "{table} dropped");
    }
    assert!(db.get_asset(&asset.id).await.unwrap().is_some());

    db.migrate().await.unwrap();
    assert!(db.transcripts_of(&asset.id).await.unwrap().is_empty());
    assert!(db.search_transcripts("hello", 10).await.unwrap().is_empty());
    let again = db.create_asset(&new).await.unwrap();
    db.set_asset_ready(&again.id, &json!([])).await.unwrap();
    let jobs = db.jobs_for_subject(&again.id).await.unwrap();
    assert!(jobs.iter().any(|job| job.kind == TRANSCRIBE_JOB_KIND));
    let track = db.transcripts_of(&again.id).await.unwrap().remove(0);
    db.set_transcript_ready(&track.id, &lines).await.unwrap();
    let hits = db.search_transcripts("hello", 10).await.unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].track_id, track.id);
}

#[tokio::test]
async fn the_rooms_migration_rolls_back_and_applies_again() {
    let database = TestDatabase::new();
    let db = Db::connect(database.url()).await.unwrap();
    db.migrate().await.unwrap();
    let room = db
        .create_room(&crate::model::NewRoom::named("standup"))
        .await
        .unwrap();
    let session = db.start_room_session(&room.id, "http://n:1").await.unwrap();
    db.record_participant_joined(&session.id, &room.id, "PA_a", "alice", "")
        .await
        .unwrap();

    // Back to before rooms, rolling back the migrations that came after it too.
    roll_back_to(&db, BEFORE_ROOMS).await;
    let schema = SchemaManager::new(&db.conn);
    for table in [
        "rooms",
        "room_sessions",
        "room_participants",
        "room_composites",
        "room_transcript_lines",
        "room_transcript_search",
    ] {
        assert!(!schema.has_table(table).await.unwrap(), "{table} dropped");
    }

    db.migrate().await.unwrap();
    assert!(db.get_room_by_name("standup").await.unwrap().is_none());
    let again = db
        .create_room(&crate::model::NewRoom::named("standup"))
        .await
        .unwrap();
    // The column defaults hold for rows written without them.
    execute(
        &db,
        "INSERT INTO rooms (id, name, created_at, updated_at) \
         VALUES ('room_raw', 'raw', '2026-12-07T00:00:00Z', '2026-12-07T00:00:00Z')",
    )
    .await;
    let raw = db.get_room_by_name("raw").await.unwrap().unwrap();
    assert_eq!(
        (
            raw.max_participants,
            raw.empty_timeout_s,
            raw.metadata.as_str()
        ),
        (100, 300, "")
    );
    let session = db
        .start_room_session(&again.id, "http://n:1")
        .await
        .unwrap();
    db.record_participant_joined(&session.id, &again.id, "PA_a", "alice", "")
        .await
        .unwrap();
}

#[tokio::test]
async fn the_room_composites_migration_rolls_back_and_applies_again() {
    let database = TestDatabase::new();
    let db = Db::connect(database.url()).await.unwrap();
    db.migrate().await.unwrap();
    let room = db
        .create_room(&crate::model::NewRoom::named("standup"))
        .await
        .unwrap();
    let new = crate::model::NewRoomComposite {
        room_id: room.id.clone(),
        live_stream_id: LiveStreamId::parse("ls_composite").unwrap(),
        layout: crate::model::RoomCompositeLayout::Grid,
        resolution: crate::model::RoomCompositeResolution::P1080,
        latency_mode: crate::model::LatencyMode::Standard,
        outputs: crate::model::RoomCompositeOutputs {
            hls: true,
            record: true,
            simulcast_targets: Vec::new(),
        },
    };
    db.create_room_composite(&new).await.unwrap();

    // Back to before room composites, rolling back the migrations that came after it too.
    roll_back_to(&db, BEFORE_ROOM_COMPOSITES).await;
    let schema = SchemaManager::new(&db.conn);
    assert!(!schema.has_table("room_composites").await.unwrap());
    // The room is kept (read with SQL: the model's columns include later migrations').
    assert!(db
        .conn
        .query_one(Statement::from_string(
            db.conn.get_database_backend(),
            format!("SELECT id FROM rooms WHERE id = '{}'", room.id),
        ))
        .await
        .unwrap()
        .is_some());

    db.migrate().await.unwrap();
    assert_eq!(db.running_room_composite(&room.id).await.unwrap(), None);
    let again = db.create_room_composite(&new).await.unwrap();
    // The guard on running composites is back too.
    assert!(db
        .create_room_composite(&new)
        .await
        .unwrap_err()
        .is_conflict());
    db.mark_room_composite_stopped(&again.id).await.unwrap();
    db.create_room_composite(&new).await.unwrap();
}

#[tokio::test]
async fn the_room_transcripts_migration_rolls_back_and_applies_again() {
    let database = TestDatabase::new();
    let db = Db::connect(database.url()).await.unwrap();
    db.migrate().await.unwrap();
    let transcribed = crate::model::NewRoom {
        transcription: Some(RoomTranscription {
            language: "en".to_owned(),
        }),
        ..crate::model::NewRoom::named("standup")
    };
    let room = db.create_room(&transcribed).await.unwrap();
    let session = db.start_room_session(&room.id, "http://n:1").await.unwrap();
    let lines = [NewRoomTranscriptLine {
        participant_sid: "PA_a".to_owned(),
        participant_identity: "alice".to_owned(),
        participant_name: "Alice".to_owned(),
        track_sid: "TR_a".to_owned(),
        start_ms: 0,
        end_ms: 1_000,
        text: "the budget is ready".to_owned(),
    }];
    db.append_room_transcript_lines(&session.id, &room.id, &lines)
        .await
        .unwrap();
    let doomed = db
        .create_room(&crate::model::NewRoom::named("doomed"))
        .await
        .unwrap();
    let doomed_session = db
        .start_room_session(&doomed.id, "http://n:1")
        .await
        .unwrap();

    // The room transcripts migration is the newest.
    roll_back_to(&db, BEFORE_ROOM_TRANSCRIPTS).await;
    let schema = SchemaManager::new(&db.conn);
    for table in ["room_transcript_lines", "room_transcript_search"] {
        assert!(!schema.has_table(table).await.unwrap(), "{table} dropped");
    }
    assert!(!schema.has_column("rooms", "transcription").await.unwrap());
    // Rooms and their sessions are kept, and deleting a session no longer touches the search
    // index (SQLite's trigger went too).
    let mut kept: Vec<String> = db
        .conn
        .query_all(Statement::from_string(
            db.conn.get_database_backend(),
            "SELECT id FROM room_sessions",
        ))
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get("", "id").unwrap())
        .collect();
    kept.sort();
    let mut expected = vec![session.id.to_string(), doomed_session.id.to_string()];
    expected.sort();
    assert_eq!(kept, expected);
    execute(
        &db,
        &format!("DELETE FROM rooms WHERE id = '{}'", doomed.id),
    )
    .await;

    db.migrate().await.unwrap();
    let again = db.get_room(&room.id).await.unwrap().expect("the room kept");
    assert_eq!(again.transcription, None, "an existing room starts off");
    assert!(db
        .room_transcript_lines(&session.id)
        .await
        .unwrap()
        .is_empty());
    assert!(db
        .search_room_transcripts("budget", 10)
        .await
        .unwrap()
        .is_empty());
    let on = db
        .set_room_transcription(&room.id, transcribed.transcription.as_ref())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(on.transcription, transcribed.transcription);
    assert_eq!(
        db.append_room_transcript_lines(&session.id, &room.id, &lines)
            .await
            .unwrap(),
        1
    );
    let hits = db.search_room_transcripts("budgets", 10).await.unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].session_id, session.id);
    // The cascade and the search index's cleanup are back.
    db.delete_room(&room.id).await.unwrap();
    assert!(db
        .search_room_transcripts("budget", 10)
        .await
        .unwrap()
        .is_empty());
}
