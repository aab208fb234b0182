//! Room composites on a real database (SQLite, or Postgres when SLUICE_TEST_POSTGRES_URL names
//! a server): created waiting, one running per room (racing starts included), moved forward to
//! active and stopped once each, layout and outputs changed, listed newest first, gone with
//! their room, and their events about the room.

use sluice_storage::test_support::TestDatabase;
use sluice_storage::{
    Db, EventType, LatencyMode, LiveStreamId, NewEvent, NewRoom, NewRoomComposite, Room,
    RoomCompositeId, RoomCompositeLayout, RoomCompositeOutputs, RoomCompositeResolution,
    RoomCompositeStatus, RoomCompositeTarget, SimulcastTargetId, StorageError,
};

async fn fresh_db() -> (TestDatabase, Db) {
    let database = TestDatabase::new();
    let db = Db::connect(database.url()).await.unwrap();
    db.migrate().await.unwrap();
    (database, db)
}

async fn room(db: &Db, name: &str) -> Room {
    db.create_room(&NewRoom::named(name)).await.unwrap()
}

fn composite_of(room: &Room, live_stream: &str) -> NewRoomComposite {
    NewRoomComposite {
        room_id: room.id.clone(),
        live_stream_id: LiveStreamId::parse(live_stream).unwrap(),
        layout: RoomCompositeLayout::Grid,
        resolution: RoomCompositeResolution::P1080,
        latency_mode: LatencyMode::Standard,
        outputs: RoomCompositeOutputs {
            hls: true,
            record: false,
            simulcast_targets: vec![RoomCompositeTarget {
                id: SimulcastTargetId::parse("st_youtube").unwrap(),
                url: "rtmp://a.rtmp.youtube.com/live2".to_owned(),
            }],
        },
    }
}

#[tokio::test]
async fn composites_are_created_waiting_got_and_listed_newest_first() {
    let (_database, db) = fresh_db().await;
    let standup = room(&db, "standup").await;
    let new = composite_of(&standup, "ls_first");
    let first = db.create_room_composite(&new).await.unwrap();
    assert!(first.id.starts_with("rcmp_"), "{}", first.id);
    assert_eq!(
        (&first.room_id, &first.live_stream_id, &first.outputs),
        (&standup.id, &new.live_stream_id, &new.outputs)
    );
    assert_eq!(first.status, RoomCompositeStatus::Waiting);
    assert_eq!((first.started_at, first.stopped_at), (None, None));
    assert_eq!(
        db.get_room_composite(&first.id).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        db.running_room_composite(&standup.id).await.unwrap(),
        Some(first.clone())
    );

    db.mark_room_composite_stopped(&first.id).await.unwrap();
    let mut second = composite_of(&standup, "ls_second");
    second.layout = RoomCompositeLayout::Speaker;
    second.resolution = RoomCompositeResolution::P720;
    second.latency_mode = LatencyMode::Low;
    let second = db.create_room_composite(&second).await.unwrap();
    assert_eq!(
        (second.layout, second.resolution, second.latency_mode),
        (
            RoomCompositeLayout::Speaker,
            RoomCompositeResolution::P720,
            LatencyMode::Low
        )
    );

    let page = db.list_room_composites(&standup.id, 1, None).await.unwrap();
    assert_eq!(page.items, std::slice::from_ref(&second));
    let cursor = page.next_cursor.unwrap();
    let rest = db
        .list_room_composites(&standup.id, 10, Some(&cursor))
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert_eq!(rest.items[0].id, first.id);
    assert_eq!(rest.items[0].status, RoomCompositeStatus::Stopped);
    assert_eq!(rest.next_cursor, None);

    let other = room(&db, "other").await;
    assert!(db
        .list_room_composites(&other.id, 10, None)
        .await
        .unwrap()
        .items
        .is_empty());
    assert_eq!(db.running_room_composite(&other.id).await.unwrap(), None);
    let missing = sluice_storage::RoomId::parse("room_missing").unwrap();
    assert!(db
        .list_room_composites(&missing, 10, None)
        .await
        .unwrap_err()
        .is_not_found());
    assert_eq!(
        db.get_room_composite(&RoomCompositeId::parse("rcmp_missing").unwrap())
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn a_room_has_one_running_composite_at_a_time() {
    let (_database, db) = fresh_db().await;
    let standup = room(&db, "standup").await;
    let running = db
        .create_room_composite(&composite_of(&standup, "ls_a"))
        .await
        .unwrap();
    let second = db
        .create_room_composite(&composite_of(&standup, "ls_b"))
        .await
        .unwrap_err();
    assert!(
        matches!(&second, StorageError::Conflict { detail, .. }
            if detail == "the room already has a composite running"),
        "{second:?}"
    );
    // An active one guards the room too; another room is not affected.
    db.mark_room_composite_active(&running.id).await.unwrap();
    assert!(db
        .create_room_composite(&composite_of(&standup, "ls_b"))
        .await
        .unwrap_err()
        .is_conflict());
    let other = room(&db, "other").await;
    db.create_room_composite(&composite_of(&other, "ls_c"))
        .await
        .unwrap();

    // Once stopped, the room may have a new one.
    db.mark_room_composite_stopped(&running.id).await.unwrap();
    let next = db
        .create_room_composite(&composite_of(&standup, "ls_d"))
        .await
        .unwrap();
    assert_eq!(
        db.running_room_composite(&standup.id)
            .await
            .unwrap()
            .map(|c| c.id),
        Some(next.id)
    );

    let mut orphan = composite_of(&standup, "ls_e");
    orphan.room_id = sluice_storage::RoomId::parse("room_missing").unwrap();
    assert!(db
        .create_room_composite(&orphan)
        .await
        .unwrap_err()
        .is_not_found());
}

#[tokio::test]
async fn of_racing_starts_for_one_room_exactly_one_wins() {
    let (_database, db) = fresh_db().await;
    let standup = room(&db, "standup").await;
    let starts = (0..8).map(|i| {
        let db = db.clone();
        let new = composite_of(&standup, &format!("ls_race{i}"));
        tokio::spawn(async move { db.create_room_composite(&new).await })
    });
    let mut won = 0;
    for start in starts {
        match start.await.unwrap() {
            Ok(_) => won += 1,
            Err(err) => assert!(err.is_conflict(), "{err:?}"),
        }
    }
    assert_eq!(won, 1);
}

#[tokio::test]
async fn composites_move_forward_once_waiting_active_stopped() {
    let (_database, db) = fresh_db().await;
    let standup = room(&db, "standup").await;
    let composite = db
        .create_room_composite(&composite_of(&standup, "ls_a"))
        .await
        .unwrap();

    let active = db
        .mark_room_composite_active(&composite.id)
        .await
        .unwrap()
        .expect("waiting turns active");
    assert_eq!(active.status, RoomCompositeStatus::Active);
    let started_at = active.started_at.expect("started_at set");
    assert!(started_at >= composite.created_at);
    assert_eq!(active.stopped_at, None);
    assert_eq!(
        db.mark_room_composite_active(&composite.id).await.unwrap(),
        None,
        "already active"
    );

    let stopped = db
        .mark_room_composite_stopped(&composite.id)
        .await
        .unwrap()
        .expect("active turns stopped");
    assert_eq!(stopped.status, RoomCompositeStatus::Stopped);
    assert_eq!(stopped.started_at, Some(started_at));
    assert!(stopped.stopped_at.unwrap() >= started_at);
    // Stopping again, or activating a stopped one, changes nothing.
    assert_eq!(
        db.mark_room_composite_stopped(&composite.id).await.unwrap(),
        None
    );
    assert_eq!(
        db.mark_room_composite_active(&composite.id).await.unwrap(),
        None
    );
    assert_eq!(
        db.get_room_composite(&composite.id).await.unwrap(),
        Some(stopped)
    );
    assert_eq!(db.running_room_composite(&standup.id).await.unwrap(), None);

    // A waiting one stops without ever starting.
    let waiting = db
        .create_room_composite(&composite_of(&standup, "ls_b"))
        .await
        .unwrap();
    let stopped = db
        .mark_room_composite_stopped(&waiting.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stopped.started_at, None);
    assert!(stopped.stopped_at.is_some());

    // One that does not exist is left alone.
    let missing = RoomCompositeId::parse("rcmp_missing").unwrap();
    assert_eq!(db.mark_room_composite_active(&missing).await.unwrap(), None);
    assert_eq!(
        db.mark_room_composite_stopped(&missing).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn layout_and_outputs_are_changed() {
    let (_database, db) = fresh_db().await;
    let standup = room(&db, "standup").await;
    let composite = db
        .create_room_composite(&composite_of(&standup, "ls_a"))
        .await
        .unwrap();
    let changed = db
        .set_room_composite_layout(&composite.id, RoomCompositeLayout::Single)
        .await
        .unwrap();
    assert_eq!(changed.layout, RoomCompositeLayout::Single);
    let outputs = RoomCompositeOutputs {
        hls: true,
        record: false,
        simulcast_targets: vec![RoomCompositeTarget {
            id: SimulcastTargetId::parse("st_twitch").unwrap(),
            url: "rtmps://live.twitch.tv/app".to_owned(),
        }],
    };
    let changed = db
        .set_room_composite_outputs(&composite.id, &outputs)
        .await
        .unwrap();
    assert_eq!(changed.outputs, outputs);
    assert_eq!(changed.layout, RoomCompositeLayout::Single);
    assert_eq!(
        db.get_room_composite(&composite.id).await.unwrap(),
        Some(changed)
    );

    let missing = RoomCompositeId::parse("rcmp_missing").unwrap();
    assert!(db
        .set_room_composite_layout(&missing, RoomCompositeLayout::Grid)
        .await
        .unwrap_err()
        .is_not_found());
    assert!(db
        .set_room_composite_outputs(&missing, &outputs)
        .await
        .unwrap_err()
        .is_not_found());
}

#[tokio::test]
async fn composites_go_with_their_room() {
    let (_database, db) = fresh_db().await;
    let standup = room(&db, "standup").await;
    let composite = db
        .create_room_composite(&composite_of(&standup, "ls_a"))
        .await
        .unwrap();
    db.delete_room(&standup.id).await.unwrap();
    assert_eq!(db.get_room_composite(&composite.id).await.unwrap(), None);
    // A new room of the same name starts with no history.
    let again = room(&db, "standup").await;
    assert_eq!(db.running_room_composite(&again.id).await.unwrap(), None);
    db.create_room_composite(&composite_of(&again, "ls_b"))
        .await
        .unwrap();
}

#[tokio::test]
async fn composite_events_are_about_the_room_and_carry_the_composite() {
    let (_database, db) = fresh_db().await;
    let standup = room(&db, "standup").await;
    let composite = db
        .create_room_composite(&composite_of(&standup, "ls_a"))
        .await
        .unwrap();
    for (event_type, name) in [
        (EventType::RoomCompositeStarted, "room.composite.started"),
        (EventType::RoomCompositeStopped, "room.composite.stopped"),
    ] {
        assert_eq!(event_type.as_str(), name);
        assert_eq!(EventType::parse(name), Some(event_type));
        assert!(event_type.is_about_room());
        let event = db
            .record_event(&NewEvent::about_room_composite(event_type, &composite))
            .await
            .unwrap();
        assert_eq!(event.event_type, name);
        assert_eq!(
            (event.object.object_type.as_str(), event.object.id.as_str()),
            ("room", standup.id.as_str())
        );
        assert_eq!(
            event.data,
            serde_json::json!({
                "id": composite.id,
                "room_id": standup.id,
                "live_stream_id": "ls_a",
                "layout": "grid",
                "resolution": "1080p",
                "latency_mode": "standard",
                "outputs": {
                    "hls": true,
                    "record": false,
                    "simulcast_targets": [
                        {"id": "st_youtube", "url": "rtmp://a.rtmp.youtube.com/live2"}
                    ]
                },
                "status": "waiting",
                "created_at": composite.created_at,
                "started_at": null,
                "stopped_at": null,
            })
        );
    }
}
