//! Simulcast targets on a real database (SQLite, or Postgres when SLUICE_TEST_POSTGRES_URL names
//! a server): created with a sealed stream key, listed per stream, state written back, deleted
//! with their stream.

use sluice_media::Ladder;
use sluice_storage::test_support::TestDatabase;
use sluice_storage::{
    Db, LiveStreamId, LiveStreamSettings, NewSimulcastTarget, SecretBox, SimulcastTargetStatus,
    StorageError, MASTER_KEY_LEN,
};

async fn fresh_db() -> (TestDatabase, Db) {
    let database = TestDatabase::new();
    let db = Db::connect(database.url())
        .await
        .unwrap()
        .with_secret_box(SecretBox::new([7; MASTER_KEY_LEN]));
    db.migrate().await.unwrap();
    (database, db)
}

fn target(url: &str, key: &str) -> NewSimulcastTarget {
    NewSimulcastTarget {
        url: url.to_owned(),
        stream_key: key.to_owned(),
        rendition: "source".to_owned(),
        passthrough: true,
    }
}

#[tokio::test]
async fn targets_are_created_listed_updated_and_deleted() {
    let (_database, db) = fresh_db().await;
    let stream = db
        .create_live_stream("s", &Ladder::default(), &LiveStreamSettings::default())
        .await
        .unwrap();
    let other = db
        .create_live_stream("t", &Ladder::default(), &LiveStreamSettings::default())
        .await
        .unwrap();
    let first = db
        .create_simulcast_target(&stream.id, &target("rtmp://a.example/live2", "key-a"))
        .await
        .unwrap();
    assert!(first.id.starts_with("st_"));
    assert_eq!(
        (first.status, first.bytes_sent, first.stream_key.as_str()),
        (SimulcastTargetStatus::Idle, 0, "key-a")
    );
    let second = db
        .create_simulcast_target(&stream.id, &target("rtmps://b.example:443/rtmp", "key-b"))
        .await
        .unwrap();
    db.create_simulcast_target(&other.id, &target("rtmp://c.example/app", "key-c"))
        .await
        .unwrap();
    let listed = db.list_simulcast_targets(&stream.id).await.unwrap();
    assert_eq!(listed, vec![first.clone(), second.clone()]);
    assert_eq!(db.count_simulcast_targets(&stream.id).await.unwrap(), 2);

    let updated = db
        .set_simulcast_target_state(
            &first.id,
            SimulcastTargetStatus::Errored,
            Some("refused"),
            1234,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.status, SimulcastTargetStatus::Errored);
    assert_eq!(updated.last_error.as_deref(), Some("refused"));
    assert_eq!(updated.bytes_sent, 1234);
    assert!(updated.updated_at >= first.updated_at);
    assert_eq!(
        db.get_simulcast_target(&first.id).await.unwrap(),
        Some(updated.clone())
    );

    let deleted = db.delete_simulcast_target(&first.id).await.unwrap();
    assert_eq!(deleted, updated);
    assert!(db.get_simulcast_target(&first.id).await.unwrap().is_none());
    assert!(matches!(
        db.delete_simulcast_target(&first.id).await,
        Err(StorageError::NotFound { .. })
    ));
    // State written for a target deleted meanwhile is dropped, not an error.
    assert!(db
        .set_simulcast_target_state(&first.id, SimulcastTargetStatus::Live, None, 1)
        .await
        .unwrap()
        .is_none());

    db.delete_live_stream(&stream.id).await.unwrap();
    assert!(db.get_simulcast_target(&second.id).await.unwrap().is_none());
    assert_eq!(db.list_simulcast_targets(&other.id).await.unwrap().len(), 1);
}

#[tokio::test]
async fn targets_need_an_existing_stream_and_the_master_key() {
    let (database, db) = fresh_db().await;
    assert!(matches!(
        db.create_simulcast_target(
            &LiveStreamId::parse("ls_missing").unwrap(),
            &target("rtmp://a/b", "k")
        )
        .await,
        Err(StorageError::NotFound { .. })
    ));
    let stream = db
        .create_live_stream("s", &Ladder::default(), &LiveStreamSettings::default())
        .await
        .unwrap();
    let created = db
        .create_simulcast_target(&stream.id, &target("rtmp://a/b", "the-key"))
        .await
        .unwrap();
    let wrong_key = Db::connect(database.url())
        .await
        .unwrap()
        .with_secret_box(SecretBox::new([8; MASTER_KEY_LEN]));
    assert!(matches!(
        wrong_key.get_simulcast_target(&created.id).await,
        Err(StorageError::SealedSecret { .. })
    ));
}
