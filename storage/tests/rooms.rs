//! Real-time rooms on a real database (SQLite, or Postgres when SLUICE_TEST_POSTGRES_URL names a
//! server): rooms created, listed and deleted with their sessions, unique names, concurrent
//! first joins getting one room, sessions with their participants, and a restarted node ending
//! the sessions it left open.

use std::collections::HashSet;

use sluice_storage::test_support::TestDatabase;
use sluice_storage::{
    Db, EventType, NewRoom, RoomId, RoomSessionId, StorageError, DEFAULT_ROOM_EMPTY_TIMEOUT_S,
    DEFAULT_ROOM_MAX_PARTICIPANTS,
};

const NODE_A: &str = "http://10.0.0.5:8080";
const NODE_B: &str = "http://10.0.0.6:8080";

async fn fresh_db() -> (TestDatabase, Db) {
    let database = TestDatabase::new();
    let db = Db::connect(database.url()).await.unwrap();
    db.migrate().await.unwrap();
    (database, db)
}

#[tokio::test]
async fn rooms_are_created_got_listed_and_deleted() {
    let (_database, db) = fresh_db().await;
    let standup = db.create_room(&NewRoom::named("standup")).await.unwrap();
    assert!(standup.id.starts_with("room_"), "{}", standup.id);
    assert_eq!(
        (
            standup.name.as_str(),
            standup.max_participants,
            standup.empty_timeout_s,
            standup.metadata.as_str()
        ),
        (
            "standup",
            DEFAULT_ROOM_MAX_PARTICIPANTS,
            DEFAULT_ROOM_EMPTY_TIMEOUT_S,
            ""
        )
    );
    assert_eq!(standup.created_at, standup.updated_at);
    let town_hall = db
        .create_room(&NewRoom {
            name: "Town hall 2027".to_owned(),
            max_participants: Some(0),
            empty_timeout_s: Some(86_400),
            metadata: Some(r#"{"topic":"all hands"}"#.to_owned()),
            transcription: None,
        })
        .await
        .unwrap();
    assert_eq!(town_hall.max_participants, 0);
    assert_eq!(town_hall.empty_timeout_s, 86_400);
    assert_eq!(town_hall.metadata, r#"{"topic":"all hands"}"#);
    let third = db.create_room(&NewRoom::named("third")).await.unwrap();

    assert_eq!(
        db.get_room(&standup.id).await.unwrap(),
        Some(standup.clone())
    );
    assert_eq!(
        db.get_room_by_name("Town hall 2027").await.unwrap(),
        Some(town_hall.clone())
    );
    assert_eq!(db.get_room_by_name("town hall 2027").await.unwrap(), None);
    assert_eq!(
        db.get_room(&RoomId::parse("room_missing").unwrap())
            .await
            .unwrap(),
        None
    );

    let first_page = db.list_rooms(2, None).await.unwrap();
    assert_eq!(first_page.items, vec![standup.clone(), town_hall.clone()]);
    let cursor = first_page.next_cursor.expect("a second page");
    let second_page = db.list_rooms(2, Some(&cursor)).await.unwrap();
    assert_eq!(second_page.items, vec![third.clone()]);
    assert_eq!(second_page.next_cursor, None);
    assert!(matches!(
        db.list_rooms(2, Some("room_unknown")).await,
        Err(StorageError::InvalidCursor(_))
    ));

    // Deleting a room takes its sessions and their participants with it.
    let session = db.start_room_session(&standup.id, NODE_A).await.unwrap();
    db.record_participant_joined(
        &session.id,
        &standup.id,
        "PA_aaaaaaaaaaaa",
        "alice",
        "Alice",
    )
    .await
    .unwrap();
    db.delete_room(&standup.id).await.unwrap();
    assert_eq!(db.get_room(&standup.id).await.unwrap(), None);
    assert!(matches!(
        db.delete_room(&standup.id).await,
        Err(StorageError::NotFound { .. })
    ));
    assert!(matches!(
        db.list_room_sessions(&standup.id, 10, None).await,
        Err(StorageError::NotFound { .. })
    ));
    assert_eq!(db.active_room_session(&standup.id).await.unwrap(), None);
    // The engine ending what the deletion took is not an error.
    db.record_participant_left("PA_aaaaaaaaaaaa").await.unwrap();
    db.end_room_session(&session.id).await.unwrap();
    // The name is free again.
    db.create_room(&NewRoom::named("standup")).await.unwrap();
    assert_eq!(db.list_rooms(10, None).await.unwrap().items.len(), 3);
}

#[tokio::test]
async fn a_second_room_of_a_name_is_a_conflict() {
    let (_database, db) = fresh_db().await;
    db.create_room(&NewRoom::named("standup")).await.unwrap();
    let error = db
        .create_room(&NewRoom {
            max_participants: Some(5),
            ..NewRoom::named("standup")
        })
        .await
        .unwrap_err();
    assert!(error.is_conflict(), "{error:?}");
    assert_eq!(
        error.to_string(),
        r#"a room named "standup" already exists"#
    );
    assert_eq!(db.list_rooms(10, None).await.unwrap().items.len(), 1);
}

#[tokio::test]
async fn concurrent_first_joins_of_a_name_get_one_room() {
    let (_database, db) = fresh_db().await;
    assert_eq!(db.room_for_join("lobby", false).await.unwrap(), None);
    let joins = (0..8).map(|_| {
        let db = db.clone();
        tokio::spawn(async move { db.room_for_join("lobby", true).await })
    });
    let mut rooms = Vec::new();
    for join in joins {
        rooms.push(join.await.unwrap().unwrap().expect("a room"));
    }
    let ids: HashSet<_> = rooms.iter().map(|room| room.id.clone()).collect();
    assert_eq!(ids.len(), 1, "{rooms:?}");
    assert_eq!(rooms[0].max_participants, DEFAULT_ROOM_MAX_PARTICIPANTS);
    assert_eq!(db.list_rooms(10, None).await.unwrap().items.len(), 1);
    // An existing room is found whether or not joins may create rooms.
    assert_eq!(
        db.room_for_join("lobby", false).await.unwrap(),
        Some(rooms[0].clone())
    );
}

#[tokio::test]
async fn sessions_record_their_participants_and_end() {
    let (_database, db) = fresh_db().await;
    let room = db.create_room(&NewRoom::named("standup")).await.unwrap();
    let other = db.create_room(&NewRoom::named("other")).await.unwrap();
    assert!(db
        .list_room_sessions(&room.id, 10, None)
        .await
        .unwrap()
        .items
        .is_empty());
    assert_eq!(db.active_room_session(&room.id).await.unwrap(), None);
    assert!(matches!(
        db.start_room_session(&RoomId::parse("room_missing").unwrap(), NODE_A)
            .await,
        Err(StorageError::NotFound { .. })
    ));

    let first = db.start_room_session(&room.id, NODE_A).await.unwrap();
    assert!(first.id.starts_with("rsess_"), "{}", first.id);
    assert_eq!(
        (
            first.room_id.clone(),
            first.node_url.as_str(),
            first.ended_at
        ),
        (room.id.clone(), NODE_A, None)
    );
    db.record_participant_joined(&first.id, &room.id, "PA_alice000000", "alice", "Alice")
        .await
        .unwrap();
    db.record_participant_joined(&first.id, &room.id, "PA_bob00000000", "bob", "")
        .await
        .unwrap();
    assert!(db
        .record_participant_joined(&first.id, &room.id, "PA_bob00000000", "bob", "")
        .await
        .unwrap_err()
        .is_conflict());
    assert!(db
        .record_participant_joined(
            &RoomSessionId::parse("rsess_missing").unwrap(),
            &room.id,
            "PA_carol000000",
            "carol",
            ""
        )
        .await
        .unwrap_err()
        .is_not_found());
    db.record_participant_left("PA_bob00000000").await.unwrap();
    db.record_participant_left("PA_unknown0000").await.unwrap();

    let active = db
        .active_room_session(&room.id)
        .await
        .unwrap()
        .expect("running");
    assert_eq!(active.id, first.id);
    assert_eq!(active.participants_present(), 1);
    let [alice, bob] = &active.participants[..] else {
        panic!("two participants: {active:?}");
    };
    assert_eq!(
        (
            alice.sid.as_str(),
            alice.identity.as_str(),
            alice.name.as_str()
        ),
        ("PA_alice000000", "alice", "Alice")
    );
    assert_eq!(alice.left_at, None);
    let bob_left = bob.left_at.expect("bob left");
    assert!(bob_left >= bob.joined_at);
    // Leaving again keeps the first time.
    db.record_participant_left("PA_bob00000000").await.unwrap();
    let again = db.active_room_session(&room.id).await.unwrap().unwrap();
    assert_eq!(again.participants[1].left_at, Some(bob_left));
    assert_eq!(db.active_room_session(&other.id).await.unwrap(), None);

    db.end_room_session(&first.id).await.unwrap();
    assert_eq!(db.active_room_session(&room.id).await.unwrap(), None);
    let ended = db.list_room_sessions(&room.id, 10, None).await.unwrap();
    let [ended] = &ended.items[..] else {
        panic!("one session: {ended:?}");
    };
    let ended_at = ended.ended_at.expect("ended");
    // Alice was still in the room: she left when it ended; Bob keeps his own time.
    assert_eq!(ended.participants[0].left_at, Some(ended_at));
    assert_eq!(ended.participants[1].left_at, Some(bob_left));
    db.end_room_session(&first.id).await.unwrap();
    assert_eq!(
        db.list_room_sessions(&room.id, 10, None)
            .await
            .unwrap()
            .items[0]
            .ended_at,
        Some(ended_at)
    );

    // Newest first, a page at a time, each session with only its own participants.
    let second = db.start_room_session(&room.id, NODE_B).await.unwrap();
    db.record_participant_joined(&second.id, &room.id, "PA_carol000000", "carol", "Carol")
        .await
        .unwrap();
    let third = db.start_room_session(&room.id, NODE_A).await.unwrap();
    let page = db.list_room_sessions(&room.id, 2, None).await.unwrap();
    assert_eq!(
        page.items.iter().map(|s| &s.id).collect::<Vec<_>>(),
        vec![&third.id, &second.id]
    );
    assert!(page.items[0].participants.is_empty());
    assert_eq!(page.items[1].participants.len(), 1);
    assert_eq!(page.items[1].participants[0].identity, "carol");
    let rest = db
        .list_room_sessions(&room.id, 2, page.next_cursor.as_deref())
        .await
        .unwrap();
    assert_eq!(
        rest.items.iter().map(|s| &s.id).collect::<Vec<_>>(),
        vec![&first.id]
    );
    assert_eq!(rest.next_cursor, None);
    assert!(matches!(
        db.list_room_sessions(&room.id, 2, Some("rsess_unknown"))
            .await,
        Err(StorageError::InvalidCursor(_))
    ));

    // Two open sessions: the newest is the running one; listing many rooms gives one each.
    let running = db.active_room_session(&room.id).await.unwrap().unwrap();
    assert_eq!(running.id, third.id);
    let other_session = db.start_room_session(&other.id, NODE_B).await.unwrap();
    let mut actives = db
        .active_room_sessions(&[room.id.clone(), other.id.clone()])
        .await
        .unwrap();
    actives.sort_by(|a, b| a.id.cmp(&b.id));
    let mut expected = vec![third.id.clone(), other_session.id.clone()];
    expected.sort();
    assert_eq!(
        actives.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
        expected
    );
    assert!(db.active_room_sessions(&[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_restarted_node_ends_the_sessions_it_left_open() {
    let (_database, db) = fresh_db().await;
    let one = db.create_room(&NewRoom::named("one")).await.unwrap();
    let two = db.create_room(&NewRoom::named("two")).await.unwrap();
    let three = db.create_room(&NewRoom::named("three")).await.unwrap();
    let on_a = db.start_room_session(&one.id, NODE_A).await.unwrap();
    let also_on_a = db.start_room_session(&two.id, NODE_A).await.unwrap();
    let on_b = db.start_room_session(&three.id, NODE_B).await.unwrap();
    let ended_on_a = db.start_room_session(&three.id, NODE_A).await.unwrap();
    db.end_room_session(&ended_on_a.id).await.unwrap();
    for (session, room, sid) in [
        (&on_a, &one, "PA_a1"),
        (&also_on_a, &two, "PA_a2"),
        (&on_b, &three, "PA_b1"),
    ] {
        db.record_participant_joined(&session.id, &room.id, sid, sid, "")
            .await
            .unwrap();
    }

    let ended_at_of = |sessions: &sluice_storage::RoomSessionPage| {
        sessions
            .items
            .iter()
            .find(|s| s.id == ended_on_a.id)
            .and_then(|s| s.ended_at)
    };
    let ended_before = ended_at_of(&db.list_room_sessions(&three.id, 10, None).await.unwrap());
    assert!(ended_before.is_some());

    assert_eq!(db.end_room_sessions_of_node(NODE_A).await.unwrap(), 2);
    assert_eq!(db.active_room_session(&one.id).await.unwrap(), None);
    assert_eq!(db.active_room_session(&two.id).await.unwrap(), None);
    for room in [&one, &two] {
        let sessions = db.list_room_sessions(&room.id, 10, None).await.unwrap();
        let session = &sessions.items[0];
        assert_eq!(session.participants[0].left_at, session.ended_at);
        assert!(session.ended_at.is_some());
    }
    // The other node's session runs on, its participant still in it.
    let running = db.active_room_session(&three.id).await.unwrap().unwrap();
    assert_eq!(running.id, on_b.id);
    assert_eq!(running.participants_present(), 1);
    // The session that had ended keeps its time.
    assert_eq!(
        ended_at_of(&db.list_room_sessions(&three.id, 10, None).await.unwrap()),
        ended_before
    );
    assert_eq!(db.end_room_sessions_of_node(NODE_A).await.unwrap(), 0);
    assert_eq!(
        db.end_room_sessions_of_node("http://unknown:1")
            .await
            .unwrap(),
        0
    );
}

#[test]
fn room_events_are_named_and_about_the_room() {
    for (event_type, name) in [
        (EventType::RoomCreated, "room.created"),
        (EventType::RoomDeleted, "room.deleted"),
        (EventType::RoomStarted, "room.started"),
        (EventType::RoomFinished, "room.finished"),
        (EventType::RoomSessionStarted, "room.session.started"),
        (EventType::RoomSessionEnded, "room.session.ended"),
        (EventType::ParticipantJoined, "participant.joined"),
        (EventType::ParticipantLeft, "participant.left"),
        (EventType::TrackPublished, "track.published"),
        (EventType::TrackUnpublished, "track.unpublished"),
        (EventType::TrackMuted, "track.muted"),
        (EventType::TrackUnmuted, "track.unmuted"),
    ] {
        assert_eq!(event_type.as_str(), name);
        assert_eq!(EventType::parse(name), Some(event_type));
        assert_eq!(event_type.object_type(), "room", "{name}");
        assert!(event_type.is_about_room());
    }
    assert_eq!(EventType::AssetTrackReady.object_type(), "asset");
    assert!(!EventType::SessionStarted.is_about_room());
    let names: HashSet<_> = EventType::ALL.iter().map(|t| t.as_str()).collect();
    assert_eq!(names.len(), EventType::ALL.len());
}
