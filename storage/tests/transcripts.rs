//! Transcripts on a fresh database (SQLite, or Postgres when `SLUICE_TEST_POSTGRES_URL` is
//! set): an asset made with generated subtitles has a preparing transcript per language; its
//! becoming ready queues one transcription job, its erroring errors them; a transcript's lines are stored in time order
//! and replaced whole; search finds the lines of ready transcripts only, best first, and no
//! query a person can type makes it fail.

use chrono::Utc;
use serde_json::json;
use sluice_media::Ladder;
use sluice_storage::test_support::TestDatabase;
use sluice_storage::{
    Asset, AssetId, AssetInput, AssetSettings, Db, GeneratedSubtitles, JobStatus, LadderCodec,
    LiveStreamSettings, NewAsset, NewUpload, PlaybackPolicy, SearchHit, SessionOrigin, TrackId,
    Transcript, TranscriptLine, TranscriptStatus, ASSET_JOB_KIND, DEFAULT_JOB_MAX_ATTEMPTS,
    MAX_TRANSCRIPT_LINES, TRANSCRIBE_JOB_KIND,
};

async fn fresh_db() -> (TestDatabase, Db) {
    let database = TestDatabase::new();
    let db = Db::connect(database.url()).await.unwrap();
    db.migrate().await.unwrap();
    (database, db)
}

fn subtitles(entries: &[(&str, &str)]) -> Vec<GeneratedSubtitles> {
    entries
        .iter()
        .map(|(language_code, name)| GeneratedSubtitles {
            language_code: (*language_code).to_owned(),
            name: (*name).to_owned(),
        })
        .collect()
}

fn settings(generated_subtitles: Vec<GeneratedSubtitles>) -> AssetSettings {
    AssetSettings {
        playback_policy: vec![PlaybackPolicy::Public],
        ladder: Ladder::default(),
        codecs: vec![LadderCodec::H264],
        passthrough: None,
        generated_subtitles,
    }
}

fn url_asset(generated_subtitles: Vec<GeneratedSubtitles>) -> NewAsset {
    NewAsset {
        input: AssetInput::Url {
            url: "https://example.com/a.mp4".to_owned(),
        },
        settings: Some(settings(generated_subtitles)),
        playback_policies: vec![PlaybackPolicy::Public],
    }
}

fn line(start_ms: i64, end_ms: i64, text: &str) -> TranscriptLine {
    TranscriptLine {
        start_ms,
        end_ms,
        text: text.to_owned(),
    }
}

/// A ready asset with one ready English transcript holding `lines`.
async fn transcribed_asset(db: &Db, lines: &[TranscriptLine]) -> (Asset, Transcript) {
    let asset = db
        .create_asset(&url_asset(subtitles(&[("en", "English (generated)")])))
        .await
        .unwrap();
    db.set_asset_ready(&asset.id, &json!([])).await.unwrap();
    let track = db.transcripts_of(&asset.id).await.unwrap().remove(0);
    let ready = db
        .set_transcript_ready(&track.id, lines)
        .await
        .unwrap()
        .unwrap();
    (asset, ready)
}

fn texts(hits: &[SearchHit]) -> Vec<&str> {
    hits.iter().map(|hit| hit.text.as_str()).collect()
}

#[tokio::test]
async fn an_asset_made_with_generated_subtitles_has_a_preparing_transcript_per_language() {
    let (_database, db) = fresh_db().await;
    let asset = db
        .create_asset(&url_asset(subtitles(&[
            ("en", "English"),
            ("fr", "Français"),
            ("en", "English again"),
        ])))
        .await
        .unwrap();
    assert_eq!(
        asset.settings.as_ref().unwrap().generated_subtitles.len(),
        3,
        "the settings are kept as asked"
    );
    let transcripts = db.transcripts_of(&asset.id).await.unwrap();
    let made: Vec<_> = transcripts
        .iter()
        .map(|t| (t.language_code.as_str(), t.name.as_str(), t.status))
        .collect();
    assert_eq!(
        made,
        [
            ("en", "English", TranscriptStatus::Preparing),
            ("fr", "Français", TranscriptStatus::Preparing),
        ],
        "one per language, the first asked kept, in the order asked"
    );
    for transcript in &transcripts {
        assert!(transcript.id.starts_with("track_"), "{}", transcript.id);
        assert_eq!(transcript.asset_id, asset.id);
        assert_eq!(transcript.error, None);
        assert!(db
            .transcript_lines(&transcript.id)
            .await
            .unwrap()
            .is_empty());
    }

    let plain = db.create_asset(&url_asset(Vec::new())).await.unwrap();
    assert!(db.transcripts_of(&plain.id).await.unwrap().is_empty());
    let other = db
        .create_asset(&url_asset(subtitles(&[("de", "Deutsch")])))
        .await
        .unwrap();
    assert_eq!(
        db.transcripts_of(&other.id)
            .await
            .unwrap()
            .iter()
            .map(|t| t.language_code.as_str())
            .collect::<Vec<_>>(),
        ["de"]
    );
}

#[tokio::test]
async fn uploads_and_recordings_get_the_transcripts_asked_for() {
    let (_database, db) = fresh_db().await;
    let upload = db
        .create_upload(&NewUpload {
            settings: settings(subtitles(&[("es", "Español")])),
            max_size: 10,
            expires_at: Utc::now() + chrono::Duration::hours(1),
        })
        .await
        .unwrap();
    db.set_upload_length(&upload.id, 1, None).await.unwrap();
    db.advance_upload(&upload.id, 0, 1).await.unwrap();
    let (_, asset) = db.complete_upload(&upload.id).await.unwrap().unwrap();
    let transcripts = db.transcripts_of(&asset.id).await.unwrap();
    assert_eq!(transcripts.len(), 1);
    assert_eq!(transcripts[0].language_code, "es");

    let stream = db
        .create_live_stream(
            "recorded",
            &Ladder::default(),
            &LiveStreamSettings {
                record: true,
                generated_subtitles: subtitles(&[("en", "English"), ("en", "twice")]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        db.get_live_stream(&stream.id)
            .await
            .unwrap()
            .unwrap()
            .generated_subtitles,
        subtitles(&[("en", "English"), ("en", "twice")])
    );
    let origin = SessionOrigin {
        client_addr: "127.0.0.1:5000".to_owned(),
        protocol: "rtmp",
        encoder: None,
        app: Some("live".to_owned()),
    };
    let session = db.start_session(&stream.id, &origin).await.unwrap();
    let recording = db
        .create_recording_asset(&stream.id, &session.id)
        .await
        .unwrap();
    assert_eq!(recording.settings, None);
    let transcripts = db.transcripts_of(&recording.id).await.unwrap();
    assert_eq!(transcripts.len(), 1);
    assert_eq!(transcripts[0].name, "English");
    assert_eq!(transcripts[0].status, TranscriptStatus::Preparing);
    // A recording still has no processing job until it is sealed.
    assert!(db.jobs_for_subject(&recording.id).await.unwrap().is_empty());
    db.set_asset_ready(&recording.id, &json!([])).await.unwrap();
    let jobs = db.jobs_for_subject(&recording.id).await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].kind, TRANSCRIBE_JOB_KIND);
}

#[tokio::test]
async fn a_ready_asset_with_transcripts_to_make_queues_one_transcription_job() {
    let (_database, db) = fresh_db().await;
    let asset = db
        .create_asset(&url_asset(subtitles(&[
            ("en", "English"),
            ("fr", "French"),
        ])))
        .await
        .unwrap();
    let kinds = |jobs: &[sluice_storage::Job]| -> Vec<String> {
        jobs.iter().map(|job| job.kind.clone()).collect()
    };
    assert_eq!(
        kinds(&db.jobs_for_subject(&asset.id).await.unwrap()),
        [ASSET_JOB_KIND],
        "nothing to transcribe before the asset is ready"
    );

    db.set_asset_ready(&asset.id, &json!([]))
        .await
        .unwrap()
        .unwrap();
    let jobs = db.jobs_for_subject(&asset.id).await.unwrap();
    assert_eq!(kinds(&jobs), [ASSET_JOB_KIND, TRANSCRIBE_JOB_KIND]);
    let transcribe = &jobs[1];
    assert_eq!(transcribe.subject_id, asset.id);
    assert_eq!(transcribe.status, JobStatus::Queued);
    assert_eq!(transcribe.max_attempts, DEFAULT_JOB_MAX_ATTEMPTS);
    assert_eq!(transcribe.payload, json!({}));

    // A second report of readiness changes nothing and queues nothing.
    assert!(db
        .set_asset_ready(&asset.id, &json!([]))
        .await
        .unwrap()
        .is_none());
    assert_eq!(db.jobs_for_subject(&asset.id).await.unwrap().len(), 2);
    let claimed = db
        .claim_job(
            "w",
            &[TRANSCRIBE_JOB_KIND],
            std::time::Duration::from_secs(60),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.id, transcribe.id);

    // Nothing to transcribe: no job.
    let plain = db.create_asset(&url_asset(Vec::new())).await.unwrap();
    db.set_asset_ready(&plain.id, &json!([]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        kinds(&db.jobs_for_subject(&plain.id).await.unwrap()),
        [ASSET_JOB_KIND]
    );
    // Only transcripts still preparing count.
    let done = db
        .create_asset(&url_asset(subtitles(&[("en", "English")])))
        .await
        .unwrap();
    let track = db.transcripts_of(&done.id).await.unwrap().remove(0);
    db.set_transcript_errored(&track.id, "no speech")
        .await
        .unwrap()
        .unwrap();
    db.set_asset_ready(&done.id, &json!([]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        kinds(&db.jobs_for_subject(&done.id).await.unwrap()),
        [ASSET_JOB_KIND]
    );
}

#[tokio::test]
async fn an_asset_that_errors_errors_its_preparing_transcripts_and_queues_nothing() {
    let (_database, db) = fresh_db().await;
    let asset = db
        .create_asset(&url_asset(subtitles(&[("en", "English")])))
        .await
        .unwrap();
    let errored = db
        .set_asset_errored(&asset.id, "not a video")
        .await
        .unwrap();
    assert!(errored.is_some());
    let transcripts = db.transcripts_of(&asset.id).await.unwrap();
    assert_eq!(transcripts[0].status, TranscriptStatus::Errored);
    assert!(
        transcripts[0]
            .error
            .as_deref()
            .unwrap()
            .contains("could not be prepared"),
        "{transcripts:?}"
    );
    assert!(db
        .jobs_for_subject(&asset.id)
        .await
        .unwrap()
        .iter()
        .all(|job| job.kind != TRANSCRIBE_JOB_KIND));
}

#[tokio::test]
async fn lines_are_stored_in_time_order_without_empty_ones_and_replaced_whole() {
    let (_database, db) = fresh_db().await;
    let asset = db
        .create_asset(&url_asset(subtitles(&[("en", "English")])))
        .await
        .unwrap();
    let track = db.transcripts_of(&asset.id).await.unwrap().remove(0);
    let lines = [
        line(2_500, 4_000, "and then the second"),
        line(0, 1_200, "First words."),
        line(1_200, 1_300, "   "),
        line(1_300, 2_500, "  spaced out  "),
        line(4_000, 4_100, ""),
    ];
    let ready = db
        .set_transcript_ready(&track.id, &lines)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ready.status, TranscriptStatus::Ready);
    assert_eq!(ready.error, None);
    assert!(ready.updated_at >= track.updated_at);
    assert_eq!(ready.created_at, track.created_at);
    assert_eq!(
        db.transcript_lines(&track.id).await.unwrap(),
        [
            line(0, 1_200, "First words."),
            line(1_300, 2_500, "  spaced out  "),
            line(2_500, 4_000, "and then the second"),
        ]
    );

    let again = [line(10, 20, "only this")];
    db.set_transcript_ready(&track.id, &again)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(db.transcript_lines(&track.id).await.unwrap(), again);

    let errored = db
        .set_transcript_errored(&track.id, "the model crashed")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(errored.status, TranscriptStatus::Errored);
    assert_eq!(errored.error.as_deref(), Some("the model crashed"));
    assert!(db.transcript_lines(&track.id).await.unwrap().is_empty());
    // A later success clears the error.
    let ready = db
        .set_transcript_ready(&track.id, &again)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ready.error, None);

    let gone = TrackId::parse("track_missing").unwrap();
    assert!(db
        .set_transcript_ready(&gone, &again)
        .await
        .unwrap()
        .is_none());
    assert!(db
        .set_transcript_errored(&gone, "x")
        .await
        .unwrap()
        .is_none());
    assert!(db.transcript_lines(&gone).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_transcript_keeps_at_most_its_first_lines() {
    let (_database, db) = fresh_db().await;
    let lines: Vec<_> = (0..MAX_TRANSCRIPT_LINES as i64 + 5)
        .map(|n| line(n * 10, n * 10 + 10, "la"))
        .collect();
    let (_, track) = transcribed_asset(&db, &lines).await;
    let stored = db.transcript_lines(&track.id).await.unwrap();
    assert_eq!(stored.len(), MAX_TRANSCRIPT_LINES);
    assert_eq!(stored.last(), lines.get(MAX_TRANSCRIPT_LINES - 1));
}

#[tokio::test]
async fn search_finds_the_line_a_word_is_in_with_its_times() {
    let (_database, db) = fresh_db().await;
    let (asset, track) = transcribed_asset(
        &db,
        &[
            line(0, 1_500, "Welcome to the show."),
            line(1_500, 3_000, "Today we are cooking Risotto with mushrooms."),
            line(3_000, 4_000, "The rice needs stirring."),
        ],
    )
    .await;
    let hits = db.search_transcripts("risotto", 10).await.unwrap();
    assert_eq!(
        hits,
        [SearchHit {
            asset_id: asset.id.clone(),
            track_id: track.id.clone(),
            language_code: "en".to_owned(),
            start_ms: 1_500,
            end_ms: 3_000,
            text: "Today we are cooking Risotto with mushrooms.".to_owned(),
        }]
    );
    // Every word is needed, in any order and case, in any of their English forms.
    assert_eq!(
        texts(&db.search_transcripts("MUSHROOM cook", 10).await.unwrap()),
        ["Today we are cooking Risotto with mushrooms."]
    );
    assert!(db
        .search_transcripts("mushrooms rice", 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        texts(&db.search_transcripts("stirred rice", 10).await.unwrap()),
        ["The rice needs stirring."]
    );
    assert!(db.search_transcripts("pasta", 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn search_puts_the_best_match_first_then_asset_and_time() {
    let (_database, db) = fresh_db().await;
    let (_, _) = transcribed_asset(
        &db,
        &[
            line(
                0,
                1_000,
                "a long line that mentions a guitar once among many other words",
            ),
            line(1_000, 2_000, "guitar guitar guitar"),
            line(2_000, 3_000, "nothing here"),
        ],
    )
    .await;
    let hits = db.search_transcripts("guitar", 10).await.unwrap();
    assert_eq!(
        texts(&hits),
        [
            "guitar guitar guitar",
            "a long line that mentions a guitar once among many other words",
        ]
    );

    // Equal matches come by asset, then time.
    let (first, _) = transcribed_asset(
        &db,
        &[line(5_000, 6_000, "violin"), line(1_000, 2_000, "violin")],
    )
    .await;
    let (second, _) = transcribed_asset(&db, &[line(0, 1_000, "violin")]).await;
    let hits = db.search_transcripts("violin", 10).await.unwrap();
    let mut expected = vec![
        (first.id.clone(), 1_000),
        (first.id.clone(), 5_000),
        (second.id.clone(), 0),
    ];
    expected.sort();
    let found: Vec<_> = hits
        .iter()
        .map(|hit| (hit.asset_id.clone(), hit.start_ms))
        .collect();
    assert_eq!(found, expected);
}

#[tokio::test]
async fn search_returns_at_most_a_hundred_hits() {
    let (_database, db) = fresh_db().await;
    let lines: Vec<_> = (0..150)
        .map(|n| line(n * 1_000, n * 1_000 + 1_000, "drums"))
        .collect();
    transcribed_asset(&db, &lines).await;
    assert_eq!(
        db.search_transcripts("drums", 1_000).await.unwrap().len(),
        100
    );
    assert_eq!(db.search_transcripts("drums", 7).await.unwrap().len(), 7);
    let first = db.search_transcripts("drums", 0).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].start_ms, 0);
}

#[tokio::test]
async fn search_ignores_transcripts_not_ready_and_deleted_assets() {
    let (_database, db) = fresh_db().await;
    let (kept, _) = transcribed_asset(&db, &[line(0, 1_000, "piano kept")]).await;
    let (deleted, _) = transcribed_asset(&db, &[line(0, 1_000, "piano deleted")]).await;
    let (failed, failed_track) = transcribed_asset(&db, &[line(0, 1_000, "piano failed")]).await;
    let preparing = db
        .create_asset(&url_asset(subtitles(&[("en", "English")])))
        .await
        .unwrap();
    assert_eq!(db.search_transcripts("piano", 10).await.unwrap().len(), 3);

    db.set_transcript_errored(&failed_track.id, "bad audio")
        .await
        .unwrap();
    assert!(db.delete_asset(&deleted.id).await.unwrap());
    let hits = db.search_transcripts("piano", 10).await.unwrap();
    assert_eq!(texts(&hits), ["piano kept"]);
    assert_eq!(hits[0].asset_id, kept.id);
    assert!(db.transcripts_of(&deleted.id).await.unwrap().is_empty());
    assert_eq!(
        db.jobs_for_subject(&deleted.id)
            .await
            .unwrap()
            .iter()
            .map(|job| job.status)
            .collect::<Vec<_>>(),
        [JobStatus::Cancelled, JobStatus::Cancelled],
        "the deleted asset's jobs, transcription included, are cancelled"
    );
    assert_ne!(failed.id, preparing.id);
    assert_eq!(
        db.transcripts_of(&preparing.id).await.unwrap()[0].status,
        TranscriptStatus::Preparing
    );
}

#[tokio::test]
async fn hostile_queries_never_fail() {
    let (_database, db) = fresh_db().await;
    transcribed_asset(
        &db,
        &[
            line(0, 1_000, "Please drop the table; then near the door."),
            line(1_000, 2_000, "Café au lait in 東京, naïve and OR AND NOT."),
            line(2_000, 3_000, "It's a well-known fact"),
        ],
    )
    .await;
    let long = "lorem ipsum \"dolor\" (sit) * amet; ".repeat(300);
    let unbroken = "x'\"*-".repeat(2_000);
    let queries = [
        "",
        "   ",
        "\"",
        "\"\"",
        "'",
        "'; drop table x;--",
        "'; DROP TABLE transcripts;--",
        "NEAR(",
        "NEAR(drop table, 2)",
        "*",
        "drop*",
        "a OR",
        "AND",
        "OR",
        "NOT",
        "-drop",
        "drop -table",
        "text:drop",
        "track_id : \"x\"",
        "{text} : drop",
        "^drop",
        "drop + table",
        "(((",
        ")",
        "\"unbalanced quote",
        "\\",
        "%_%",
        "東京",
        "café",
        "🎉🎉",
        "\u{0}",
        "ा",
        "a\u{301}",
        &long,
        &unbroken,
    ];
    for query in queries {
        let hits = db
            .search_transcripts(query, 10)
            .await
            .unwrap_or_else(|e| panic!("{query:?}: {e}"));
        assert!(hits.len() <= 3, "{query:?}");
    }
    for empty in ["", "   ", "\"", "'", "*", "(((", "🎉🎉", "-- ;"] {
        assert!(
            db.search_transcripts(empty, 10).await.unwrap().is_empty(),
            "{empty:?} holds no word"
        );
    }
    // Words in hostile company are still found; syntax is taken as plain words.
    assert_eq!(
        texts(
            &db.search_transcripts("'; drop table x;--", 10)
                .await
                .unwrap()
        ),
        Vec::<&str>::new(),
        "every word is needed: there is no x"
    );
    assert_eq!(
        texts(&db.search_transcripts("'; drop table;--", 10).await.unwrap()),
        ["Please drop the table; then near the door."]
    );
    assert_eq!(
        texts(&db.search_transcripts("NEAR( door", 10).await.unwrap()),
        ["Please drop the table; then near the door."]
    );
    assert_eq!(
        texts(&db.search_transcripts("\"lait", 10).await.unwrap()),
        ["Café au lait in 東京, naïve and OR AND NOT."]
    );
    assert_eq!(
        texts(&db.search_transcripts("東京", 10).await.unwrap()),
        ["Café au lait in 東京, naïve and OR AND NOT."]
    );
    assert_eq!(
        texts(&db.search_transcripts("café", 10).await.unwrap()),
        ["Café au lait in 東京, naïve and OR AND NOT."]
    );
    assert_eq!(
        texts(&db.search_transcripts("well-known", 10).await.unwrap()),
        ["It's a well-known fact"]
    );
}

#[tokio::test]
async fn a_transcript_of_a_missing_asset_is_never_listed() {
    let (_database, db) = fresh_db().await;
    let missing = AssetId::parse("asset_missing").unwrap();
    assert!(db.transcripts_of(&missing).await.unwrap().is_empty());
}
