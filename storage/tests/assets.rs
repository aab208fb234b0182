//! Assets and direct uploads on a fresh database (SQLite, or Postgres when
//! `SLUICE_TEST_POSTGRES_URL` is set): an asset is created with its playback ids and its
//! processing job; the worker's progress and outcome apply only while it is preparing;
//! listing is newest first; deletion cancels the job and takes the playback ids along; an
//! upload's offset moves only from where it stands, and a complete upload becomes exactly one
//! asset.

use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use sluice_media::Ladder;
use sluice_storage::test_support::TestDatabase;
use sluice_storage::{
    AssetId, AssetInput, AssetSettings, AssetStatus, Db, JobStatus, LadderCodec, NewAsset,
    NewUpload, PlaybackPolicy, SessionId, UploadStatus, ASSET_JOB_KIND,
};

async fn fresh_db() -> (TestDatabase, Db) {
    let database = TestDatabase::new();
    let db = Db::connect(database.url()).await.unwrap();
    db.migrate().await.unwrap();
    (database, db)
}

fn settings(playback_policy: Vec<PlaybackPolicy>) -> AssetSettings {
    AssetSettings {
        playback_policy,
        ladder: Ladder::default(),
        codecs: vec![LadderCodec::H264],
        passthrough: None,
        generated_subtitles: Vec::new(),
    }
}

fn url_asset(policies: Vec<PlaybackPolicy>) -> NewAsset {
    NewAsset {
        input: AssetInput::Url {
            url: "https://example.com/a.mp4".to_owned(),
        },
        settings: Some(settings(policies.clone())),
        playback_policies: policies,
    }
}

#[tokio::test]
async fn an_asset_is_created_with_its_playback_ids_and_job() {
    let (_database, db) = fresh_db().await;
    let asset = db
        .create_asset(&url_asset(vec![
            PlaybackPolicy::Public,
            PlaybackPolicy::Signed,
        ]))
        .await
        .unwrap();
    assert!(asset.id.starts_with("asset_"), "{}", asset.id);
    assert_eq!(asset.status, AssetStatus::Preparing);
    assert_eq!(asset.tracks, json!([]));
    assert!(!asset.playable);
    assert_eq!(
        asset.source_key().unwrap().as_str(),
        format!("assets/{}/source", asset.id)
    );

    let playback_ids = db.asset_playback_ids(&asset.id).await.unwrap();
    let policies: Vec<_> = playback_ids.iter().map(|p| p.policy).collect();
    assert_eq!(policies, [PlaybackPolicy::Public, PlaybackPolicy::Signed]);
    let found = db
        .get_playback_id(&playback_ids[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.asset_id.as_deref(), Some(asset.id.as_str()));
    assert_eq!(found.live_stream_id, None);

    let jobs = db.jobs_for_subject(&asset.id).await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].kind, ASSET_JOB_KIND);
    assert_eq!(jobs[0].status, JobStatus::Queued);
    let claimed = db
        .claim_job("w1", &[ASSET_JOB_KIND], Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.subject_id, asset.id);
}

#[tokio::test]
async fn progress_and_outcome_apply_only_while_preparing() {
    let (_database, db) = fresh_db().await;
    let asset = db.create_asset(&url_asset(vec![])).await.unwrap();
    db.set_asset_progress(&asset.id, 140).await.unwrap();
    let tracks = json!([{"type": "video", "codec": "h264"}]);
    db.set_asset_probed(&asset.id, Some(3_000), &tracks, &json!({"format": "mp4"}))
        .await
        .unwrap();
    db.set_asset_playable(&asset.id).await.unwrap();
    let now = db.get_asset(&asset.id).await.unwrap().unwrap();
    assert_eq!(now.progress, 100);
    assert_eq!(now.duration_ms, Some(3_000));
    assert_eq!(now.tracks, tracks);
    assert!(now.playable);

    let renditions = json!([{"name": "360p"}]);
    let ready = db
        .set_asset_ready(&asset.id, &renditions)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ready.status, AssetStatus::Ready);
    assert_eq!(ready.renditions, renditions);
    // A late failure report (a worker that lost its lease) changes nothing.
    assert!(db
        .set_asset_errored(&asset.id, "late")
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        db.get_asset(&asset.id).await.unwrap().unwrap().status,
        AssetStatus::Ready
    );

    let other = db.create_asset(&url_asset(vec![])).await.unwrap();
    let errored = db
        .set_asset_errored(&other.id, "the file is not a video")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(errored.status, AssetStatus::Errored);
    assert_eq!(errored.error.as_deref(), Some("the file is not a video"));
    assert!(db
        .set_asset_errored(&AssetId::parse("asset_missing").unwrap(), "x")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn a_retried_asset_is_reset_to_unplayable_until_its_playlists_are_back() {
    let (_database, db) = fresh_db().await;
    let asset = db.create_asset(&url_asset(vec![])).await.unwrap();
    db.set_asset_playable(&asset.id).await.unwrap();
    db.set_asset_progress(&asset.id, 40).await.unwrap();
    db.reset_asset_output(&asset.id).await.unwrap();
    let reset = db.get_asset(&asset.id).await.unwrap().unwrap();
    assert!(!reset.playable);
    assert_eq!(reset.progress, 0);
    assert_eq!(reset.status, AssetStatus::Preparing);

    db.set_asset_ready(&asset.id, &json!([])).await.unwrap();
    db.reset_asset_output(&asset.id).await.unwrap();
    let ready = db.get_asset(&asset.id).await.unwrap().unwrap();
    assert!(ready.playable, "a ready asset is left alone");
    assert_eq!(ready.progress, 100);
}

#[tokio::test]
async fn assets_list_newest_first_by_status_and_delete_with_their_job() {
    let (_database, db) = fresh_db().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            db.create_asset(&url_asset(vec![PlaybackPolicy::Public]))
                .await
                .unwrap()
                .id,
        );
    }
    db.set_asset_errored(&ids[0], "bad").await.unwrap();
    let first = db.list_assets(2, None, None, None).await.unwrap();
    assert_eq!(
        first.items.iter().map(|a| &a.id).collect::<Vec<_>>(),
        [&ids[2], &ids[1]]
    );
    let second = db
        .list_assets(2, first.next_cursor.as_deref(), None, None)
        .await
        .unwrap();
    assert_eq!(second.items[0].id, ids[0]);
    assert_eq!(second.next_cursor, None);
    let errored = db
        .list_assets(10, None, Some(AssetStatus::Errored), None)
        .await
        .unwrap();
    assert_eq!(errored.items.len(), 1);

    let playback_id = db.asset_playback_ids(&ids[1]).await.unwrap()[0].id.clone();
    assert!(db.delete_asset(&ids[1]).await.unwrap());
    assert!(!db.delete_asset(&ids[1]).await.unwrap());
    assert!(db.get_asset(&ids[1]).await.unwrap().is_none());
    assert!(db.get_playback_id(&playback_id).await.unwrap().is_none());
    let jobs = db.jobs_for_subject(&ids[1]).await.unwrap();
    assert_eq!(jobs[0].status, JobStatus::Cancelled);
}

#[tokio::test]
async fn an_upload_advances_from_its_offset_and_completes_into_one_asset() {
    let (_database, db) = fresh_db().await;
    let upload = db
        .create_upload(&NewUpload {
            settings: settings(vec![PlaybackPolicy::Signed]),
            max_size: 1_000,
            expires_at: Utc::now() + chrono::Duration::hours(1),
        })
        .await
        .unwrap();
    assert!(upload.id.starts_with("upload_"));
    assert_eq!(upload.status, UploadStatus::Waiting);
    assert!(upload.token.len() >= 32);
    // Not complete before its length is declared and reached.
    assert!(db.complete_upload(&upload.id).await.unwrap().is_none());

    assert!(db
        .set_upload_length(&upload.id, 10, Some("filename YS5tcDQ="))
        .await
        .unwrap());
    assert!(!db.set_upload_length(&upload.id, 20, None).await.unwrap());
    assert!(db.advance_upload(&upload.id, 0, 6).await.unwrap());
    assert!(
        !db.advance_upload(&upload.id, 0, 4).await.unwrap(),
        "stale offset"
    );
    assert!(db.complete_upload(&upload.id).await.unwrap().is_none());
    assert!(db.advance_upload(&upload.id, 6, 10).await.unwrap());

    let (done, asset) = db.complete_upload(&upload.id).await.unwrap().unwrap();
    assert_eq!(done.status, UploadStatus::AssetCreated);
    assert_eq!(done.asset_id.as_deref(), Some(asset.id.as_str()));
    assert_eq!(done.metadata.as_deref(), Some("filename YS5tcDQ="));
    assert_eq!(asset.upload_id(), Some(&upload.id));
    assert_eq!(
        asset.source_key().unwrap().as_str(),
        format!("uploads/{}/source", upload.id)
    );
    let policies: Vec<_> = db
        .asset_playback_ids(&asset.id)
        .await
        .unwrap()
        .iter()
        .map(|p| p.policy)
        .collect();
    assert_eq!(policies, [PlaybackPolicy::Signed]);
    // Completing twice makes no second asset.
    assert!(db.complete_upload(&upload.id).await.unwrap().is_none());
    assert_eq!(
        db.list_assets(10, None, None, None)
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    assert!(!db.advance_upload(&upload.id, 10, 11).await.unwrap());
    assert!(!db
        .set_upload_status(&upload.id, UploadStatus::Cancelled, None)
        .await
        .unwrap());
}

#[tokio::test]
async fn uploads_expire_and_end_only_once() {
    let (_database, db) = fresh_db().await;
    let past = db
        .create_upload(&NewUpload {
            settings: settings(vec![PlaybackPolicy::Public]),
            max_size: 10,
            expires_at: Utc::now() - chrono::Duration::seconds(5),
        })
        .await
        .unwrap();
    let future = db
        .create_upload(&NewUpload {
            settings: settings(vec![PlaybackPolicy::Public]),
            max_size: 10,
            expires_at: Utc::now() + chrono::Duration::hours(1),
        })
        .await
        .unwrap();
    let expired = db.expired_uploads(Utc::now()).await.unwrap();
    assert_eq!(
        expired.iter().map(|u| &u.id).collect::<Vec<_>>(),
        [&past.id]
    );
    assert!(db
        .set_upload_status(&past.id, UploadStatus::TimedOut, Some("expired"))
        .await
        .unwrap());
    assert!(db.expired_uploads(Utc::now()).await.unwrap().is_empty());
    let page = db.list_uploads(10, None).await.unwrap();
    assert_eq!(
        page.items.iter().map(|u| &u.id).collect::<Vec<_>>(),
        [&future.id, &past.id]
    );
    assert_eq!(page.items[1].status, UploadStatus::TimedOut);
}

#[tokio::test]
async fn an_asset_whose_last_worker_died_is_found_abandoned() {
    let (_database, db) = fresh_db().await;
    let asset = db.create_asset(&url_asset(vec![])).await.unwrap();
    let lease = Duration::from_millis(100);
    // Every attempt's worker dies (its lease runs out); the claim after the last fails the job.
    for _ in 0..sluice_storage::DEFAULT_JOB_MAX_ATTEMPTS {
        let claimed = db.claim_job("w", &[ASSET_JOB_KIND], lease).await.unwrap();
        assert!(claimed.is_some());
        tokio::time::sleep(lease + Duration::from_millis(50)).await;
    }
    assert!(db
        .claim_job("w", &[ASSET_JOB_KIND], lease)
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        db.jobs_for_subject(&asset.id).await.unwrap()[0].status,
        JobStatus::Failed
    );
    // An asset whose job is still queued is not abandoned.
    db.create_asset(&url_asset(vec![])).await.unwrap();

    let abandoned = db.abandoned_assets().await.unwrap();
    let ids: Vec<_> = abandoned.iter().map(|(a, _)| a.id.as_str()).collect();
    assert_eq!(ids, [asset.id.as_str()]);
    let reason = abandoned[0].1.as_deref().unwrap();
    assert!(reason.contains("lease of worker w expired"), "{reason}");
}

#[tokio::test]
async fn a_recorded_session_gets_an_asset_without_a_job_listed_under_its_stream() {
    let (_database, db) = fresh_db().await;
    let stream = db
        .create_live_stream("recorded", &Ladder::default(), &Default::default())
        .await
        .unwrap();
    let origin = sluice_storage::SessionOrigin {
        client_addr: "127.0.0.1:5000".to_owned(),
        protocol: "rtmp",
        encoder: None,
        app: Some("live".to_owned()),
    };
    let session = db.start_session(&stream.id, &origin).await.unwrap();
    db.create_asset(&url_asset(vec![PlaybackPolicy::Public]))
        .await
        .unwrap();

    let asset = db
        .create_recording_asset(&stream.id, &session.id)
        .await
        .unwrap();
    assert_eq!(asset.status, AssetStatus::Preparing);
    assert_eq!(asset.live_stream_id.as_deref(), Some(stream.id.as_str()));
    assert_eq!(asset.session_id.as_deref(), Some(session.id.as_str()));
    assert_eq!(
        asset.input,
        AssetInput::LiveStream {
            live_stream_id: stream.id.clone(),
            session_id: session.id.clone(),
        }
    );
    assert_eq!(asset.settings, None);
    assert!(
        db.jobs_for_subject(&asset.id).await.unwrap().is_empty(),
        "the live packager makes a recording, not the worker"
    );
    let policies: Vec<_> = db
        .asset_playback_ids(&asset.id)
        .await
        .unwrap()
        .into_iter()
        .map(|id| id.policy)
        .collect();
    assert_eq!(policies, [PlaybackPolicy::Public], "the stream's policies");
    let session = db.get_session(&session.id).await.unwrap().unwrap();
    assert_eq!(session.asset_id.as_deref(), Some(asset.id.as_str()));

    let listed = db
        .list_assets(10, None, None, Some(&stream.id))
        .await
        .unwrap();
    assert_eq!(
        listed.items.iter().map(|a| &a.id).collect::<Vec<_>>(),
        [&asset.id]
    );
    assert_eq!(
        db.list_assets(10, None, None, None)
            .await
            .unwrap()
            .items
            .len(),
        2
    );

    db.set_asset_recorded(&asset.id, 12_000, &json!([{"type": "video"}]))
        .await
        .unwrap();
    let asset = db.get_asset(&asset.id).await.unwrap().unwrap();
    assert_eq!(asset.duration_ms, Some(12_000));
    assert!(db
        .create_recording_asset(&stream.id, &SessionId::parse("ses_missing").unwrap())
        .await
        .is_err());
}
